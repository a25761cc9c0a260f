"""The report as data: what every writer renders, and what ``report.json`` holds verbatim.

``SCHEMA_VERSION`` history:
  1 — first version (verdict, summary, clusters, devices with checks C1-C8 and findings).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from scanner import __version__
from scanner.core import tlv
from scanner.core.findings import Finding
from scanner.core.policy import CHECKS, Policy
from scanner.core.readiness import ClusterResult, PhoneResult, Readiness, Summary
from scanner.report.rows import DeviceRows

SCHEMA_VERSION = 1


def finding_dict(f: Finding) -> dict[str, Any]:
    return {"code": f.code.value, "severity": f.severity.value, "message": f.message, "evidence": _jsonable(f.evidence)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def device_dict(r: PhoneResult) -> dict[str, Any]:
    return {
        "name": r.name,
        "model": r.model or r.facts.get("model_from_page"),
        "ip": r.ip,
        "device_pool": r.device_pool,
        "readiness": r.readiness.value,
        "checks": {c: r.checks[c].value for c in CHECKS},
        "reasons": r.reasons,
        "codes": r.codes,
        "findings": [finding_dict(f) for f in r.findings],
        "facts": _jsonable(r.facts),
    }


def policy_dict(p: Policy) -> dict[str, Any]:
    return {
        "required_checks": sorted(p.required),
        "expiry_window_days": p.expiry_window.days,
        "cutover": p.cutover.isoformat() if p.cutover else None,
        "go_threshold": p.go_threshold,
    }


def summary_dict(s: Summary) -> dict[str, Any]:
    return {
        "total": s.total,
        "counts": {r.value: s.counts.get(r.value, 0) for r in Readiness},
        "top_reasons": [{"code": c, "count": n} for c, n in s.top_reasons],
        "cluster_blockers": list(s.cluster_blockers),
        "why": s.why,
        "evidence_issues": list(s.evidence_issues),
    }


def build_report(
    *,
    summary: Summary,
    clusters: Sequence[ClusterResult],
    devices: Iterable[dict[str, Any]],
    policy: Policy,
    run: Mapping[str, Any],
) -> dict[str, Any]:
    """``devices`` are ``device_dict`` rows (already streamed to devices.jsonl by the caller);
    ``DeviceRows`` stay as they are (the rows as JSON, decoded one at a time by the writers)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "trustscan", "version": __version__, "kernel": tlv.KERNEL},
        "run": _jsonable(dict(run)),
        "policy": policy_dict(policy),
        "verdict": summary.verdict.value,
        "summary": summary_dict(summary),
        "clusters": {c.name: {"findings": [finding_dict(f) for f in c.findings]} for c in clusters},
        "devices": devices if isinstance(devices, DeviceRows) else list(devices),
    }
