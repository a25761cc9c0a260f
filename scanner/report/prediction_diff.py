"""``trustscan diff report.json verification.json``: where the pre-cutover prediction and the
post-cutover outcome disagree, phone by phone.

A disagreement is a phone predicted READY that is STUCK (the scan missed something), or one
predicted NOT_READY that MIGRATED (the scan blocked a phone that was fine). The rest agree or say
nothing: READY and MIGRATED, NOT_READY and STUCK agree (whether for the reason predicted is shown
beside it, not judged: the page shows symptoms, the scan names causes); a phone predicted
UNKNOWN, or NOT_MOVED or UNKNOWN after, was not tested by the cutover.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scanner.core.errors import ParseError

__all__ = ["Prediction", "PredictionSummary", "compare", "is_verification"]


def is_verification(doc: Any) -> bool:
    return isinstance(doc, Mapping) and "verification_version" in doc


@dataclass(frozen=True, slots=True)
class Prediction:
    name: str
    predicted: str  # READY / NOT_READY / UNKNOWN
    outcome: str  # MIGRATED / STUCK / NOT_MOVED / UNKNOWN
    predicted_codes: tuple[str, ...]
    outcome_reasons: tuple[str, ...]

    @property
    def verdict(self) -> str:
        if self.predicted == "READY" and self.outcome == "STUCK":
            return "missed"  # predicted READY, did not make it
        if self.predicted == "NOT_READY" and self.outcome == "MIGRATED":
            return "overcautious"  # predicted a blocker, made it
        if (self.predicted, self.outcome) in (("READY", "MIGRATED"), ("NOT_READY", "STUCK")):
            return "agree"
        return "untested"

    def as_dict(self) -> dict[str, Any]:
        return {"type": "prediction", "name": self.name, "verdict": self.verdict, "predicted": self.predicted,
                "outcome": self.outcome, "predicted_codes": list(self.predicted_codes),
                "outcome_reasons": list(self.outcome_reasons)}


@dataclass(frozen=True, slots=True)
class PredictionSummary:
    counts: Mapping[str, int]  # by verdict
    only_in_scan: int
    only_in_verification: int

    @property
    def disagree(self) -> int:
        return self.counts.get("missed", 0) + self.counts.get("overcautious", 0)

    def as_dict(self) -> dict[str, Any]:
        return {"type": "prediction_summary", "counts": dict(self.counts), "disagree": self.disagree,
                "only_in_scan": self.only_in_scan, "only_in_verification": self.only_in_verification}

    def render(self) -> str:
        c = self.counts
        return (f"  Prediction vs outcome: {c.get('agree', 0)} agree, {c.get('missed', 0)} predicted READY but STUCK, "
                f"{c.get('overcautious', 0)} predicted NOT_READY but MIGRATED, {c.get('untested', 0)} untested; "
                f"{self.only_in_scan} only in the scan, {self.only_in_verification} only in the verification\n"
                f"  Result: {'DISAGREE' if self.disagree else 'AGREE'}")


def _devices(doc: Any, where: str, key: str) -> dict[str, dict[str, Any]]:
    try:
        return {d["name"]: dict(d) for d in doc["devices"] if isinstance(d, Mapping) and key in d}
    except (KeyError, TypeError):
        raise ParseError("no 'devices' list", path=where) from None


def compare(scan: Any, verification: Any, *, scan_where: str, verification_where: str) -> tuple[list[Prediction], PredictionSummary]:
    """Every phone in both, in the scan's order; the disagreements are the ``missed`` and
    ``overcautious`` ones."""
    before = _devices(scan, scan_where, "readiness")
    after = _devices(verification, verification_where, "outcome")
    rows = [
        Prediction(name, d["readiness"], after[name]["outcome"], tuple(d.get("codes") or ()),
                   tuple(after[name].get("reasons") or ()))
        for name, d in before.items() if name in after
    ]
    counts: dict[str, int] = {"agree": 0, "missed": 0, "overcautious": 0, "untested": 0}
    for r in rows:
        counts[r.verdict] += 1
    return rows, PredictionSummary(counts, len(set(before) - set(after)), len(set(after) - set(before)))
