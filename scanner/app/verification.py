"""``trustscan verify``'s analysis: archived evidence in, every phone's migration outcome out
(``scanner.core.verification`` decides; ``scanner.report.verification_report`` writes)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner.app.assemble import load, phone_evidence
from scanner.core.inventory import Phone
from scanner.core.profile import Profile
from scanner.core.verification import FleetOutcome, FleetSummary, judge, served_lists, summarize
from scanner.report import verification_report
from scanner.store.evidence import EvidenceReader

__all__ = ["VerifyOutcome", "verify"]


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    doc: dict[str, Any]
    paths: dict[str, Path]
    warnings: tuple[str, ...]


def verify(
    profile: Profile,
    evidence: Path,
    out: Path,
    *,
    inventory: Sequence[Phone] | None = None,
    formats: Sequence[str] = verification_report.FORMATS,
    run_meta: dict[str, Any] | None = None,
) -> VerifyOutcome:
    started = time.time()
    reader = EvidenceReader(evidence)
    loaded = load(reader, profile, inventory)
    src = served_lists(loaded.scan.source, (n.address for n in profile.source.tftp))
    dst = served_lists(loaded.scan.destination, (n.address for n in profile.destination.tftp))
    results = [judge(ev, src, dst) for ev in phone_evidence(loaded)]
    summary = summarize(results)
    issues = list(loaded.evidence.fleet_issues())
    if issues and summary.outcome is FleetOutcome.DONE:
        # Evidence that is not all there cannot say the cutover is done.
        summary = FleetSummary(FleetOutcome.INCOMPLETE, summary.counts, summary.total,
                               f"{summary.why}; but the evidence is incomplete: {issues[0]}")
    meta = dict(run_meta or {})
    run = {
        "started": dt.datetime.fromtimestamp(meta.pop("started", started), dt.UTC).isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "profile": str(profile.path) if profile.path else None,
        "profile_sha256": profile.sha256,
        "evidence": str(evidence),
        "evidence_state": loaded.evidence.state,
        "evidence_issues": issues,
        "source_lists_complete": src.complete,
        "destination_lists_complete": dst.complete,
        **meta,
    }
    doc = verification_report.build(results, summary, run)
    paths = verification_report.write(doc, out, formats)
    return VerifyOutcome(doc, paths, tuple([*loaded.store_errors, *(f"evidence: {i}" for i in issues)]))
