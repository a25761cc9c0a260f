"""The JSON Schemas of every machine output, defined next to the code that writes them.

``schema/<name>`` is each of ``SCHEMAS``, committed; tests/test_schemas.py regenerates them and
compares, and validates real outputs (a served lab scanned with every format) against them.
Regenerate with ``python -m scanner.report.schema --write schema`` (``python -m
scanner.report.schema`` alone prints the report schema, as it always did).

* ``report.schema.json`` — ``report.json``;
* ``devices-line.schema.json`` — one line of ``devices.jsonl``: a phone (``"type": "device"``,
  the report's device object plus the type) or the last line (``"type": "summary"``);
* ``scan-summary.schema.json`` — the line ``trustscan scan --json`` prints on stdout;
* ``inspect.schema.json`` — one line of ``trustscan inspect --json`` (one per file);
* ``diff-record.schema.json`` — one line of ``trustscan diff --json``: a changed phone
  (``"type": "phone"``) or the summary, always last (``"type": "summary"``).

Objects whose keys this code owns are closed (``additionalProperties: false``) so that a test
notices a key added without its schema; the report's ``run`` and the scan line's top level stay
open, as the report schema always had them (other commands add run metadata).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from scanner.core.policy import CHECKS
from scanner.report.model import SCHEMA_VERSION

_STR_OR_NULL: dict[str, Any] = {"type": ["string", "null"]}
_INT_OR_NULL: dict[str, Any] = {"type": ["integer", "null"]}
_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_HEX: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]*$"}
DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://trustscan.invalid/schema/"
READINESS: dict[str, Any] = {"enum": ["READY", "NOT_READY", "UNKNOWN"]}
VERDICT: dict[str, Any] = {"enum": ["GO", "NO_GO", "INCOMPLETE"]}

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
        "readiness": READINESS,
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


SUMMARY: dict[str, Any] = {
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
}


def report_schema() -> dict[str, Any]:
    return {
        "$schema": DRAFT,
        "$id": ID_BASE + "report.schema.json",
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
            "verdict": VERDICT,
            "summary": {"$ref": "#/$defs/summary"},
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
        "$defs": {"finding": FINDING, "device": DEVICE, "summary": SUMMARY},
    }



def _closed(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": False}


def devices_line_schema() -> dict[str, Any]:
    """One line of ``devices.jsonl``. The writer adds ``type`` to the report's device object (and
    to the summary) so that a reader streaming the file tells the last line from a phone without
    guessing from the keys; the schema says so, rather than the writer dropping the one key a
    stream reader needs."""
    device = {**DEVICE, "required": ["type", *DEVICE["required"]],
              "properties": {"type": {"const": "device"}, **DEVICE["properties"]}}
    summary = {**SUMMARY, "required": ["type", "verdict", *SUMMARY["required"]],
               "properties": {"type": {"const": "summary"}, "verdict": VERDICT, **SUMMARY["properties"]}}
    return {
        "$schema": DRAFT,
        "$id": ID_BASE + "devices-line.schema.json",
        "title": "trustscan devices.jsonl line (a phone, or the summary as the last line)",
        "oneOf": [{"$ref": "#/$defs/device_line"}, {"$ref": "#/$defs/summary_line"}],
        "$defs": {"device_line": device, "summary_line": summary, "finding": FINDING},
    }


def scan_summary_schema() -> dict[str, Any]:
    """The line ``trustscan scan --json`` prints on stdout when the reports are written."""
    return {
        "$schema": DRAFT,
        "$id": ID_BASE + "scan-summary.schema.json",
        "title": "trustscan scan --json summary line",
        "type": "object",
        "required": ["verdict", "summary", "reports", "exit_code"],
        "properties": {
            "verdict": VERDICT,
            "summary": {"$ref": "#/$defs/summary"},
            "reports": {
                "type": "object",
                "propertyNames": {"enum": ["html", "json", "jsonl", "csv", "remediation", "sarif", "junit"]},
                "additionalProperties": {"type": "string"},
            },
            "exit_code": {"type": "integer", "minimum": 0, "maximum": 255},
        },
        "$defs": {"summary": SUMMARY},
    }


_INSPECT_DIGESTS: dict[str, Any] = {
    "path": {"type": "string"},
    "bytes": _COUNT,
    "md5": {**_HEX, "minLength": 32, "maxLength": 32},
    "sha1": {**_HEX, "minLength": 40, "maxLength": 40},
    "sha256": {**_HEX, "minLength": 64, "maxLength": 64},
}

_INSPECT_RECORD = _closed(
    ["index", "offset", "length", "role", "role_name", "dns_name", "subject", "issuer", "serial", "ip_address",
     "has_certificate", "key_type", "key_size", "not_before", "not_after", "cert_sha1", "cert_sha256",
     "cert_error", "unknown_tags"],
    {
        "index": _COUNT, "offset": _COUNT, "length": _INT_OR_NULL, "role": _INT_OR_NULL,
        "role_name": {"type": "string"}, "dns_name": _STR_OR_NULL, "subject": _STR_OR_NULL,
        "issuer": _STR_OR_NULL, "serial": _STR_OR_NULL, "ip_address": _STR_OR_NULL,
        "has_certificate": {"type": "boolean"}, "key_type": _STR_OR_NULL, "key_size": _INT_OR_NULL,
        "not_before": _STR_OR_NULL, "not_after": _STR_OR_NULL, "cert_sha1": _STR_OR_NULL,
        "cert_sha256": _STR_OR_NULL, "cert_error": _STR_OR_NULL, "unknown_tags": {"type": "array"},
    },
)

_INSPECT_PARSED = _closed(
    [*_INSPECT_DIGESTS, "kind", "version", "header_length", "digest", "digest_code", "filename", "timestamp",
     "timestamp_iso", "signer_version", "padding", "signer", "signature", "unknown_header_tags", "records",
     "findings"],
    {
        **_INSPECT_DIGESTS,
        "kind": {"enum": ["ctl", "itl", "sgn", "enc.sgn"]},
        "version": {"type": "string"},
        "header_length": _INT_OR_NULL,
        "digest": _STR_OR_NULL,
        "digest_code": _INT_OR_NULL,
        "filename": _STR_OR_NULL,
        "timestamp": _INT_OR_NULL,
        "timestamp_iso": _STR_OR_NULL,
        "signer_version": _STR_OR_NULL,
        "padding": _INT_OR_NULL,
        "signer": _closed(["name", "serial", "issuer"],
                          {"name": _STR_OR_NULL, "serial": _STR_OR_NULL, "issuer": _STR_OR_NULL}),
        "signature": _closed(
            ["valid", "reason", "verified_by_serial", "verified_by_subject", "verified_by_source",
             "verified_by_store", "signer_has_sast_role", "length"],
            {
                "valid": {"type": "boolean"}, "reason": {"type": "string"},
                "verified_by_serial": _STR_OR_NULL, "verified_by_subject": _STR_OR_NULL,
                "verified_by_source": _STR_OR_NULL, "verified_by_store": _STR_OR_NULL,
                "signer_has_sast_role": {"type": "boolean"}, "length": _COUNT,
            },
        ),
        "unknown_header_tags": {
            "type": "array",
            "items": _closed(["tag", "offset"], {"tag": _INT_OR_NULL, "offset": _COUNT}),
        },
        "records": {"type": "array", "items": _INSPECT_RECORD},
        "findings": {"type": "array", "items": {"$ref": "#/$defs/finding"}},
        "payload_bytes": _COUNT,
        "encryption": _closed(
            ["key_size", "key_algorithm", "iv", "pad_count", "encrypted_key_bytes"],
            {"key_size": _INT_OR_NULL, "key_algorithm": _INT_OR_NULL, "iv": _STR_OR_NULL,
             "pad_count": _INT_OR_NULL, "encrypted_key_bytes": _COUNT},
        ),
    },
)

# A file that could not be read (no digests then) or not parsed: what is known, and why not.
_INSPECT_FAILED = _closed(
    ["path", "kind", "error"],
    {
        **_INSPECT_DIGESTS,
        "kind": {"type": "null"},
        "error": _closed(["offset", "reason"], {"offset": _INT_OR_NULL, "reason": {"type": "string"}}),
    },
)


def inspect_schema() -> dict[str, Any]:
    """One line of ``trustscan inspect --json``: a parsed file, or one that could not be read or
    parsed (``kind`` null, ``error`` naming the offset and the reason)."""
    return {
        "$schema": DRAFT,
        "$id": ID_BASE + "inspect.schema.json",
        "title": "trustscan inspect --json line (one file)",
        "oneOf": [{"$ref": "#/$defs/parsed"}, {"$ref": "#/$defs/failed"}],
        "$defs": {"parsed": _INSPECT_PARSED, "failed": _INSPECT_FAILED, "finding": FINDING},
    }


def diff_record_schema() -> dict[str, Any]:
    """One line of ``trustscan diff --json``: a changed phone, or the summary (always the last
    line). scanner/report/diff.py defines the kinds and what "worse" means."""
    from scanner.report.diff import KINDS, READINESS_RANK

    side = {"type": "object", "required": ["old", "new"], "additionalProperties": False}
    verdict_or_null = {"anyOf": [VERDICT, {"type": "null"}]}  # null: the run did not record it
    old_new_verdict = {**side, "properties": {"old": verdict_or_null, "new": verdict_or_null}}
    old_new_count = {**side, "properties": {"old": _COUNT, "new": _COUNT}}
    changed = {"type": ["boolean", "null"]}  # null: a side did not record it
    phone = _closed(
        ["type", "name", "change", "old", "new", "old_reasons", "new_reasons"],
        {
            "type": {"const": "phone"},
            "name": {"type": "string"},
            "change": {"enum": list(KINDS)},
            "old": {"anyOf": [READINESS, {"type": "null"}]},  # null: not in the old run (added)
            "new": {"anyOf": [READINESS, {"type": "null"}]},  # null: not in the new run (removed)
            "old_reasons": {"type": "array", "items": {"type": "string"}},
            "new_reasons": {"type": "array", "items": {"type": "string"}},
        },
    )
    summary = _closed(
        ["type", "old", "new", "verdict", "total", "counts", "phones", "added_not_ready", "profile_changed",
         "policy_changed", "inventory_changed", "fleet_worse", "worse", "worse_because", "notes"],
        {
            "type": {"const": "summary"},
            "old": {"type": "string"},
            "new": {"type": "string"},
            "verdict": old_new_verdict,
            "total": old_new_count,
            "counts": _closed(list(READINESS_RANK), dict.fromkeys(READINESS_RANK, old_new_count)),
            "phones": _closed(list(KINDS), dict.fromkeys(KINDS, _COUNT)),
            "added_not_ready": _COUNT,
            "profile_changed": changed,
            "policy_changed": changed,
            "inventory_changed": changed,
            "fleet_worse": {"type": "boolean"},
            "worse": {"type": "boolean"},
            "worse_because": {"type": "array", "items": {"type": "string"}},
            "notes": {"type": "array", "items": {"type": "string"}},
        },
    )
    return {
        "$schema": DRAFT,
        "$id": ID_BASE + "diff-record.schema.json",
        "title": "trustscan diff --json line (a changed phone, or the summary as the last line)",
        "oneOf": [{"$ref": "#/$defs/phone"}, {"$ref": "#/$defs/summary"}],
        "$defs": {"phone": phone, "summary": summary},
    }


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "report.schema.json": report_schema,
    "devices-line.schema.json": devices_line_schema,
    "scan-summary.schema.json": scan_summary_schema,
    "inspect.schema.json": inspect_schema,
    "diff-record.schema.json": diff_record_schema,
}


def render(name: str = "report.schema.json") -> bytes:
    return orjson.dumps(SCHEMAS[name](), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scanner.report.schema", description=__doc__.splitlines()[0])
    p.add_argument("--write", metavar="DIR", help="write every schema into DIR (the repository's schema/)")
    args = p.parse_args(argv)
    if args.write is None:
        sys.stdout.buffer.write(render())
        return 0
    for name in SCHEMAS:
        (Path(args.write) / name).write_bytes(render(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
