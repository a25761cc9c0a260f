"""One scan: collect (or read archived evidence), analyse, write the reports, record history.

Library code: it prints nothing and picks no event loop (``trustscan scan`` does both). The
analysis streams: each phone is decided, written to ``devices.jsonl`` and let go before the next.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.analysis import evidence_profile_sha, load, phone_evidence
from scanner.evidence import EvidenceReader
from scanner.history import History
from scanner.inventory import Phone
from scanner.policy import Policy
from scanner.profile import Profile
from scanner.readiness import Evaluator, summarize
from scanner.report import csv_report, html_report, json_report, junit_report, sarif_report
from scanner.report.jsonl_report import DeviceStream
from scanner.report.model import build_report, device_dict, summary_dict
from scanner.trustcache import AnalysisCache

FORMATS = ("json", "jsonl", "csv", "html")
# Written only when asked for (--format ...,sarif,junit): for CI systems.
OPTIONAL_FORMATS = ("sarif", "junit")


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    report: dict[str, Any]
    paths: dict[str, Path]
    warnings: tuple[str, ...]
    history_run: int | None = None


@dataclass
class AnalysisOptions:
    profile: Profile
    evidence: Path
    out: Path
    policy: Policy
    now: dt.datetime
    inventory: Sequence[Phone] | None = None
    formats: Sequence[str] = FORMATS
    history: Path | None = None
    run_meta: dict[str, Any] = field(default_factory=dict)
    on_device: Callable[[dict[str, Any]], None] | None = None


def analyse(opts: AnalysisOptions) -> ScanOutcome:
    """Evidence directory in, reports out."""
    started = time.time()
    reader = EvidenceReader(opts.evidence)
    warnings: list[str] = []
    sha = evidence_profile_sha(reader)
    if sha is not None and sha != opts.profile.sha256:
        warnings.append(
            f"the evidence in {opts.evidence} was collected with another profile (sha256 {sha[:12]}…, this one "
            f"{opts.profile.sha256[:12]}…): nodes or trust stores may not match"
        )
    loaded = load(reader, opts.profile, opts.inventory)
    warnings += loaded.store_errors
    cache = AnalysisCache()
    evaluator = Evaluator(loaded.scan, opts.policy, opts.now, cache)
    clusters = evaluator.cluster_results()
    opts.out.mkdir(parents=True, exist_ok=True)
    devices: list[dict[str, Any]] = []
    results = []
    paths: dict[str, Path] = {}
    with DeviceStream(opts.out) as stream:
        for ev in phone_evidence(loaded):
            result = evaluator.phone(ev)
            results.append(result)
            row = device_dict(result)
            devices.append(row)
            if "jsonl" in opts.formats:
                stream.device(row)
            if opts.on_device is not None:
                opts.on_device(row)
        evidence_issues = loaded.evidence.fleet_issues()
        summary = summarize(results, clusters, opts.policy, evidence_issues=evidence_issues)
        if "jsonl" in opts.formats:
            stream.summary({"verdict": summary.verdict.value, **summary_dict(summary)})
            paths["jsonl"] = stream.path
    if "jsonl" not in opts.formats:
        stream.path.unlink(missing_ok=True)
    warnings += [f"evidence: {issue}" for issue in evidence_issues]
    finished = time.time()
    run = {
        "started": dt.datetime.fromtimestamp(opts.run_meta.pop("started", started), dt.UTC).isoformat(),
        "finished": dt.datetime.fromtimestamp(finished, dt.UTC).isoformat(),
        "judged_at": evaluator.now.isoformat(),
        "profile": str(opts.profile.path) if opts.profile.path else None,
        "profile_sha256": opts.profile.sha256,
        "evidence": str(opts.evidence),
        "evidence_state": loaded.evidence.state,
        "analysis_seconds": round(finished - started, 3),
        "cache": {"distinct_files": cache.misses, "reused": cache.hits},
        **opts.run_meta,
    }
    report = build_report(summary=summary, clusters=clusters, devices=devices, policy=opts.policy, run=run)
    trend: list[tuple[str, float]] = []
    history_run = None
    if opts.history is not None:
        with History(opts.history) as h:
            warnings += h.warnings
            history_run = h.record(report, str(opts.out / "report.json"))
            trend = h.trend()
        report["run"]["history"] = {"path": str(opts.history), "run_id": history_run}
    if "json" in opts.formats:
        paths["json"] = json_report.write(report, opts.out)
    if "csv" in opts.formats:
        paths["csv"] = csv_report.write(report, opts.out)
    if "html" in opts.formats:
        paths["html"] = html_report.write(report, opts.out, trend)
    if "sarif" in opts.formats:
        paths["sarif"] = sarif_report.write(report, opts.out)
    if "junit" in opts.formats:
        paths["junit"] = junit_report.write(report, opts.out)
    return ScanOutcome(report, paths, tuple(warnings), history_run)
