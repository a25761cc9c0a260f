"""``matrix.csv``: one row per phone, one column per check, plus readiness and reasons — for the
team fixing phones (sorts and filters in any spreadsheet)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from scanner.core.policy import CHECKS
from scanner.report.files import write_atomic

COLUMNS = ["device", "model", "ip", "device_pool", "readiness", *CHECKS, "reasons", "codes", "details"]


def _safe(text: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas; device data is not trusted."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render(report: dict[str, Any]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for d in report["devices"]:
        details = " | ".join(f"{f['code']}: {f['message']}" for f in d["findings"] if f["severity"] != "INFO")
        row = [
            d["name"], d["model"] or "", d["ip"] or "", d["device_pool"] or "", d["readiness"],
            *(d["checks"][c] for c in CHECKS), " ".join(d["reasons"]), " ".join(d["codes"]), details,
        ]
        w.writerow([_safe(str(v)) for v in row])
    return buf.getvalue().encode("utf-8")


def write(report: dict[str, Any], out: Path) -> Path:
    path = out / "matrix.csv"
    write_atomic(path, render(report))
    return path
