"""The analysis: an evidence directory in, verdicts and reports out, the run recorded in the history.

It reads evidence that is already on disk (``scanner.app.collect`` fetched it, now or in an
earlier run: ``trustscan scan`` collects first unless given ``--from``); it never contacts a
server. Library code: it prints nothing (``trustscan scan`` does). It streams: each phone is
decided, written to ``devices.jsonl`` and let go before the next.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.app.assemble import load, phone_evidence
from scanner.core.errors import ParseError
from scanner.core.inventory import Phone
from scanner.core.policy import Policy
from scanner.core.profile import Profile, snapshot_difference
from scanner.core.readiness import Evaluator, summarize
from scanner.core.trustcache import TrustFileCache
from scanner.report import csv_report, html_report, json_report, junit_report, remediation, sarif_report
from scanner.report.jsonl_report import DeviceStream
from scanner.report.model import build_report, device_dict, summary_dict
from scanner.store.evidence import EvidenceReader
from scanner.store.history import History

FORMATS = ("json", "jsonl", "csv", "html")
# Written only when asked for (--format ...,sarif,junit): for CI systems.
OPTIONAL_FORMATS = ("sarif", "junit")


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """What the analysis produced: the report (as written to report.json), the files written by
    format, the warnings for the user, and the history run id when the run was recorded."""

    report: dict[str, Any]
    paths: dict[str, Path]
    warnings: tuple[str, ...]
    history_run: int | None = None


@dataclass
class AnalysisOptions:
    """What ``analyse`` reads and writes. ``on_device`` is called with each phone's report row as
    it is decided (bench/bench_soak.py collects verdicts with it)."""

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
    # Called with (phones decided, phones in scope) after each phone: the CLI's progress.
    on_progress: Callable[[int, int], None] | None = None


# What the evidence must agree on with the profile it is analysed with: which nodes and TVS
# servers were asked, and how. (Trust stores, limits and phone access may differ: stores are read
# at analysis time, and re-analysing with a store added is a normal thing to do.)
_STRUCTURAL = (".tftp", ".tvs", ".tvs_allow", ".mode", ".transport")


def _profile_issues(reader: EvidenceReader, opts: AnalysisOptions) -> tuple[list[str], list[str]]:
    """(every difference between the evidence's profile and this one, the structural ones)."""
    try:
        summary = reader.summary()
    except (OSError, ParseError):
        return [], []  # said by the analysis's evidence state
    snap = summary.get("profile")
    if not isinstance(snap, dict) or snap.get("sha256") == opts.profile.sha256:
        return [], []
    lines = [
        f"the evidence in {opts.evidence} was collected with another profile: {d}"
        for d in snapshot_difference(snap, opts.profile.snapshot())
    ]
    structural = [
        line for line in lines
        if any(f"{key}:" in line.rsplit("another profile: ", 1)[1].split(" ", 1)[0] for key in _STRUCTURAL)
    ]
    return lines, structural


def analyse(opts: AnalysisOptions) -> ScanOutcome:
    """Evidence directory in, reports out."""
    started = time.time()
    reader = EvidenceReader(opts.evidence)
    warnings: list[str] = []
    profile_issues, structural = _profile_issues(reader, opts)
    warnings += [w for w in profile_issues if w not in structural]  # the rest are evidence issues
    loaded = load(reader, opts.profile, opts.inventory)
    warnings += loaded.store_errors
    cache = TrustFileCache()
    evaluator = Evaluator(loaded.scan, opts.policy, opts.now, cache)
    clusters = evaluator.cluster_results()
    opts.out.mkdir(parents=True, exist_ok=True)
    devices: list[dict[str, Any]] = []
    results = []
    paths: dict[str, Path] = {}
    in_scope = len(loaded.phones)
    if opts.on_progress is not None:
        opts.on_progress(0, in_scope)
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
            if opts.on_progress is not None:
                opts.on_progress(len(results), in_scope)
        evidence_issues = (*structural, *loaded.evidence.fleet_issues())
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
        # The fix-it list goes with the matrix: both are for the team that fixes phones.
        paths["remediation"] = remediation.write(remediation.from_report(report), opts.out)
    if "html" in opts.formats:
        paths["html"] = html_report.write(report, opts.out, trend)
    if "sarif" in opts.formats:
        paths["sarif"] = sarif_report.write(report, opts.out)
    if "junit" in opts.formats:
        paths["junit"] = junit_report.write(report, opts.out)
    return ScanOutcome(report, paths, tuple(warnings), history_run)
