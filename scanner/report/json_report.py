"""``report.json``: the whole report, for pipelines (schema in schema/report.schema.json).

Written in pieces, one phone's row at a time (``pieces``), so that a fleet's report is never
held whole in memory; the bytes are those of ``orjson.dumps(report, OPT_INDENT_2)`` (tested).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from scanner.report.files import write_atomic

_OPTS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
# How the report ends when its devices are left out: build_report puts them last.
_EMPTY_END = b'"devices": []\n}\n'


def pieces(report: dict[str, Any]) -> Iterator[bytes]:
    devices = report["devices"]
    head = orjson.dumps({**report, "devices": []}, option=_OPTS)
    if not head.endswith(_EMPTY_END) or next(reversed(report)) != "devices" or not devices:
        yield orjson.dumps({**report, "devices": list(devices)}, option=_OPTS)
        return
    yield head[: -len(b"[]\n}\n")] + b"[\n"
    sep = b"    "
    for row in devices:
        # A row at depth 2 of the indented document: its own indented lines, four spaces in
        # (orjson escapes newlines inside strings, so every b"\n" here is between lines).
        yield sep + orjson.dumps(row, option=orjson.OPT_INDENT_2).replace(b"\n", b"\n    ")
        sep = b",\n    "
    yield b"\n  ]\n}\n"


def render(report: dict[str, Any]) -> bytes:
    return b"".join(pieces(report))


def write(report: dict[str, Any], out: Path) -> Path:
    path = out / "report.json"
    write_atomic(path, pieces(report))
    return path
