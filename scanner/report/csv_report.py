"""``matrix.csv``: one row per phone, one column per check, plus readiness and reasons — for the
team fixing phones (sorts and filters in any spreadsheet)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scanner.core.policy import CHECKS
from scanner.report.files import write_atomic

COLUMNS = ["device", "model", "ip", "device_pool", "readiness", *CHECKS, "reasons", "codes", "details"]


def _safe(text: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas; device data is not trusted."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def pieces(report: dict[str, Any], batch: int = 512) -> Iterator[bytes]:
    """The file in pieces of ``batch`` phones: the rows are read one at a time (DeviceRows)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for n, d in enumerate(report["devices"], 1):
        details = " | ".join(f"{f['code']}: {f['message']}" for f in d["findings"] if f["severity"] != "INFO")
        row = [
            d["name"], d["model"] or "", d["ip"] or "", d["device_pool"] or "", d["readiness"],
            *(d["checks"][c] for c in CHECKS), " ".join(d["reasons"]), " ".join(d["codes"]), details,
        ]
        w.writerow([_safe(str(v)) for v in row])
        if n % batch == 0:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


def render(report: dict[str, Any]) -> bytes:
    return b"".join(pieces(report))


def write(report: dict[str, Any], out: Path) -> Path:
    path = out / "matrix.csv"
    write_atomic(path, pieces(report))
    return path
