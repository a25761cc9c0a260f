"""``report.sarif``: SARIF 2.1.0 for code-scanning dashboards. Each finding code is a stable rule
id (codes are API); each phone or cluster finding is a result located at the device or cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from scanner.report.files import write_atomic

LEVEL = {"BLOCKER": "error", "WARNING": "warning", "INFO": "note"}


def render(report: dict[str, Any]) -> bytes:
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []

    def add(f: dict[str, Any], where: str) -> None:
        rules.setdefault(f["code"], {"id": f["code"], "name": f["code"].title().replace("_", ""),
                                     "shortDescription": {"text": f["code"].replace("_", " ").lower()}})
        results.append({
            "ruleId": f["code"],
            "level": LEVEL.get(f["severity"], "warning"),
            "message": {"text": f["message"]},
            "locations": [{"logicalLocations": [{"name": where, "kind": "module"}]}],
            "properties": {"evidence": f.get("evidence", {})},
        })

    for name, c in report["clusters"].items():
        for f in c["findings"]:
            add(f, f"cluster/{name}")
    for d in report["devices"]:
        for f in d["findings"]:
            add(f, f"device/{d['name']}")
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "trustscan", "version": report["tool"]["version"],
                                "rules": sorted(rules.values(), key=lambda r: r["id"])}},
            "results": results,
            "properties": {"verdict": report["verdict"], "summary": report["summary"]},
        }],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def write(report: dict[str, Any], out: Path) -> Path:
    path = out / "report.sarif"
    write_atomic(path, render(report))
    return path
