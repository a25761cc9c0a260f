"""``report.json``: the whole report, for pipelines (schema in schema/report.schema.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from scanner.report.files import write_atomic


def render(report: dict[str, Any]) -> bytes:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def write(report: dict[str, Any], out: Path) -> Path:
    path = out / "report.json"
    write_atomic(path, render(report))
    return path
