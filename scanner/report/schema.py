"""The JSON Schema of ``report.json``, defined next to the code that writes the report.

``schema/report.schema.json`` is this, committed; a test regenerates it and compares, and
validates real reports against it. Regenerate with ``python -m scanner.report.schema``.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from scanner.core.policy import CHECKS
from scanner.report.model import SCHEMA_VERSION

_STR_OR_NULL: dict[str, Any] = {"type": ["string", "null"]}

FINDING: dict[str, Any] = {
    "type": "object",
    "required": ["code", "severity", "message", "evidence"],
    "properties": {
        "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
        "severity": {"enum": ["BLOCKER", "WARNING", "INFO"]},
        "message": {"type": "string"},
        "evidence": {"type": "object"},
    },
    "additionalProperties": False,
}

DEVICE: dict[str, Any] = {
    "type": "object",
    "required": ["name", "model", "ip", "device_pool", "readiness", "checks", "reasons", "codes", "findings"],
    "properties": {
        "name": {"type": "string"},
        "model": _STR_OR_NULL,
        "ip": _STR_OR_NULL,
        "device_pool": _STR_OR_NULL,
        "readiness": {"enum": ["READY", "NOT_READY", "UNKNOWN"]},
        "checks": {
            "type": "object",
            "required": list(CHECKS),
            "properties": {c: {"enum": ["PASS", "WARN", "FAIL", "UNKNOWN"]} for c in CHECKS},
            "additionalProperties": False,
        },
        "reasons": {"type": "array", "items": {"type": "string"}},
        "codes": {"type": "array", "items": {"type": "string"}},
        "findings": {"type": "array", "items": {"$ref": "#/$defs/finding"}},
        "facts": {"type": "object"},
    },
    "additionalProperties": False,
}


def report_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://trustscan.invalid/schema/report.schema.json",
        "title": "trustscan readiness report",
        "type": "object",
        "required": ["schema_version", "tool", "run", "policy", "verdict", "summary", "clusters", "devices"],
        "properties": {
            "schema_version": {"const": SCHEMA_VERSION},
            "tool": {
                "type": "object",
                "required": ["name", "version", "kernel"],
                "properties": {
                    "name": {"const": "trustscan"},
                    "version": {"type": "string"},
                    "kernel": {"enum": ["cython", "python"]},
                },
            },
            "run": {"type": "object"},
            "policy": {
                "type": "object",
                "required": ["required_checks", "expiry_window_days", "cutover", "go_threshold"],
            },
            "verdict": {"enum": ["GO", "NO_GO", "INCOMPLETE"]},
            "summary": {
                "type": "object",
                "required": ["total", "counts", "top_reasons", "cluster_blockers", "why"],
                "properties": {
                    "total": {"type": "integer", "minimum": 0},
                    "counts": {
                        "type": "object",
                        "required": ["READY", "NOT_READY", "UNKNOWN"],
                        "additionalProperties": {"type": "integer", "minimum": 0},
                    },
                    "top_reasons": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["code", "count"],
                            "properties": {"code": {"type": "string"}, "count": {"type": "integer"}},
                        },
                    },
                    "cluster_blockers": {"type": "array", "items": {"type": "string"}},
                    "why": {"type": "string"},
                    # Reasons the evidence is incomplete (interrupted run, truncated manifest,
                    # damaged blobs); non-empty means the verdict is never GO. Absent in reports
                    # written before it existed.
                    "evidence_issues": {"type": "array", "items": {"type": "string"}},
                },
            },
            "clusters": {
                "type": "object",
                "required": ["source", "destination"],
                "additionalProperties": {
                    "type": "object",
                    "required": ["findings"],
                    "properties": {"findings": {"type": "array", "items": {"$ref": "#/$defs/finding"}}},
                },
            },
            "devices": {"type": "array", "items": {"$ref": "#/$defs/device"}},
        },
        "$defs": {"finding": FINDING, "device": DEVICE},
    }


def render() -> bytes:
    return orjson.dumps(report_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


if __name__ == "__main__":
    sys.stdout.buffer.write(render())
