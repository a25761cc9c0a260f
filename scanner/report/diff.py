"""``trustscan diff OLD NEW``: which phones changed between two scans, and whether it got worse.

OLD and NEW are ``report.json`` files or history runs (``history:latest``, ``history:previous``,
``history:<id>``). A report of another schema version is refused with both versions named.

Phones are compared by name, whatever the profiles, policies or inventories of the two runs;
when those differ the summary says so (a pipeline should know that the comparison mixes them).

A phone present in both runs is

* ``broken`` — it was READY and is not any more (READY -> NOT_READY or UNKNOWN);
* ``worse`` — UNKNOWN before, NOT_READY now;
* ``fixed`` — it is READY now and was not;
* ``better`` — NOT_READY before, UNKNOWN now;
* ``changed`` — same readiness, other reasons;

and a phone in only one run is ``added`` or ``removed``.

**Worse**, precisely (``trustscan diff`` exits 1, the summary's ``worse`` is true, and
``worse_because`` lists which of these held):

1. some phone is ``broken`` or ``worse``: READY -> NOT_READY, READY -> UNKNOWN, UNKNOWN -> NOT_READY;
2. the fleet verdict got worse: GO -> INCOMPLETE, GO -> NO_GO, INCOMPLETE -> NO_GO (a side whose
   verdict is not recorded never counts);
3. some ``added`` phone is NOT_READY.

Not worse, but counted: a ``removed`` phone (whatever it was: leaving the inventory is a change
of scope, not a phone getting worse, and if it was the fleet's last READY phone the verdict says
so), and an ``added`` phone that is READY or UNKNOWN.

Why an added NOT_READY phone counts: a migration fleet usually sits at NO_GO for weeks while its
blockers are worked down, so the fleet verdict cannot move further and rule 2 never fires; a
phone that joins already NOT_READY is one more blocker than last night, which is what a nightly
gate exists to catch (the kind stays ``added``: the phone did not change, the fleet did). An added UNKNOWN phone is not: its evidence is missing (often a phone that was
not yet reachable), which makes the fleet INCOMPLETE or keeps it so, and rule 2 covers that
where it matters; a pipeline that wants more reads ``counts`` in the summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scanner.core.errors import ParseError
from scanner.report.model import SCHEMA_VERSION

Rows = dict[str, tuple[str, list[str]]]

READINESS_RANK = {"READY": 0, "UNKNOWN": 1, "NOT_READY": 2}
VERDICT_RANK = {"GO": 0, "INCOMPLETE": 1, "NO_GO": 2}
KINDS = ("broken", "worse", "changed", "added", "removed", "better", "fixed")
WORSE_KINDS = ("broken", "worse")


@dataclass(frozen=True, slots=True)
class Change:
    name: str
    old: str | None  # None: the phone was not in the old scan
    new: str | None
    old_reasons: list[str]
    new_reasons: list[str]

    @property
    def kind(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        if self.new == "READY" and self.old != "READY":
            return "fixed"
        if self.old == "READY" and self.new != "READY":
            return "broken"
        up = READINESS_RANK.get(self.new, 1) - READINESS_RANK.get(self.old, 1)
        if up > 0:
            return "worse"
        if up < 0:
            return "better"
        return "changed"


@dataclass(frozen=True, slots=True)
class Side:
    """One scan as the diff sees it: its phones and what it was run with (None: not recorded)."""

    ref: str
    rows: Rows
    verdict: str | None = None
    profile_sha256: str | None = None
    policy: Any = None
    inventory_sha256: str | None = None
    schema_version: int | None = None

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(READINESS_RANK, 0)
        for readiness, _ in self.rows.values():
            out[readiness] = out.get(readiness, 0) + 1
        return out


@dataclass(frozen=True, slots=True)
class DiffSummary:
    old: Side
    new: Side
    phones: dict[str, int]
    notes: list[str] = field(default_factory=list)
    added_not_ready: int = 0  # added phones that are NOT_READY (rule 3 in the module docstring)

    @property
    def fleet_worse(self) -> bool:
        o, n = self.old.verdict, self.new.verdict
        return o in VERDICT_RANK and n in VERDICT_RANK and VERDICT_RANK[n] > VERDICT_RANK[o]

    @property
    def worse_because(self) -> list[str]:
        """Which rules of "worse" (module docstring) held, in words; empty: nothing got worse."""
        out = [f"{self.phones[k]} phone(s) {k}" for k in WORSE_KINDS if self.phones[k]]
        if self.fleet_worse:
            out.append(f"fleet verdict {self.old.verdict} -> {self.new.verdict}")
        if self.added_not_ready:
            out.append(f"{self.added_not_ready} added phone(s) NOT_READY")
        return out

    @property
    def worse(self) -> bool:
        return bool(self.worse_because)

    def changed(self, attr: str) -> bool | None:
        """Whether ``attr`` differs between the sides; None when a side did not record it."""
        a, b = getattr(self.old, attr), getattr(self.new, attr)
        if a is None or b is None:
            return None
        return bool(a != b)

    def as_dict(self) -> dict[str, Any]:
        oc, nc = self.old.counts(), self.new.counts()
        return {
            "type": "summary",
            "old": self.old.ref,
            "new": self.new.ref,
            "verdict": {"old": self.old.verdict, "new": self.new.verdict},
            "total": {"old": len(self.old.rows), "new": len(self.new.rows)},
            "counts": {k: {"old": oc[k], "new": nc[k]} for k in READINESS_RANK},
            "phones": dict(self.phones),
            "added_not_ready": self.added_not_ready,
            "profile_changed": self.changed("profile_sha256"),
            "policy_changed": self.changed("policy"),
            "inventory_changed": self.changed("inventory_sha256"),
            "fleet_worse": self.fleet_worse,
            "worse": self.worse,
            "worse_because": self.worse_because,
            "notes": list(self.notes),
        }


def check_version(doc: Any, where: str) -> int:
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise ParseError("not a trustscan report (no schema_version)", path=where)
    version = doc["schema_version"]
    if version == SCHEMA_VERSION:
        return SCHEMA_VERSION
    if isinstance(version, int) and not isinstance(version, bool) and version < SCHEMA_VERSION:
        raise ParseError(
            f"report schema version {version} is older: this trustscan reads version "
            f"{SCHEMA_VERSION}; scan again, or diff with the trustscan that wrote it",
            path=where,
        )
    raise ParseError(
        f"report schema version {version!r} is not supported by this trustscan (reads version "
        f"{SCHEMA_VERSION}); use a newer trustscan",
        path=where,
    )


def rows_from_report(doc: Any, where: str) -> Rows:
    check_version(doc, where)
    try:
        return {d["name"]: (d["readiness"], list(d.get("reasons", []))) for d in doc["devices"]}
    except (KeyError, TypeError) as exc:
        raise ParseError(f"report devices are malformed: {exc}", path=where) from None


def side_from_report(doc: Any, where: str) -> Side:
    rows = rows_from_report(doc, where)
    run = doc.get("run") if isinstance(doc.get("run"), dict) else {}
    verdict = doc.get("verdict")
    return Side(
        where,
        rows,
        verdict if isinstance(verdict, str) else None,
        run.get("profile_sha256"),
        doc.get("policy"),
        run.get("inventory_sha256"),
        SCHEMA_VERSION,
    )


def rows_from(items: Iterable[tuple[str, str, list[str]]]) -> Rows:
    return {name: (readiness, reasons) for name, readiness, reasons in items}


def diff(old: Rows, new: Rows) -> list[Change]:
    out = []
    for name in sorted(old.keys() | new.keys()):
        o, n = old.get(name), new.get(name)
        if o is not None and n is not None and o[0] == n[0] and o[1] == n[1]:
            continue
        out.append(
            Change(name, o[0] if o else None, n[0] if n else None, o[1] if o else [], n[1] if n else [])
        )
    return out


def summarize(old: Side, new: Side, changes: list[Change]) -> DiffSummary:
    phones = dict.fromkeys(KINDS, 0)
    for c in changes:
        phones[c.kind] += 1
    added_not_ready = sum(c.kind == "added" and c.new == "NOT_READY" for c in changes)
    s = DiffSummary(old, new, phones, added_not_ready=added_not_ready)
    if s.changed("profile_sha256"):
        s.notes.append("the two runs used different profiles; phones are compared by name")
    if s.changed("policy"):
        s.notes.append("the two runs used different policies")
    if s.changed("inventory_sha256"):
        s.notes.append("the two runs used different inventories")
    return s


def change_dict(c: Change) -> dict[str, Any]:
    return {"type": "phone", "name": c.name, "change": c.kind, "old": c.old, "new": c.new,
            "old_reasons": c.old_reasons, "new_reasons": c.new_reasons}


def render_text(changes: list[Change]) -> str:
    if not changes:
        return "No phone changed verdict or reasons."
    lines = []
    order = {k: i for i, k in enumerate(KINDS)}
    for c in sorted(changes, key=lambda c: (order[c.kind], c.name)):
        reasons = " ".join(c.new_reasons) if c.new is not None else ""
        was = f" (was {' '.join(c.old_reasons)})" if c.old_reasons and c.old_reasons != c.new_reasons else ""
        lines.append(f"{c.kind:<8} {c.name:<18} {c.old or '-':>9} -> {c.new or '-':<9} {reasons}{was}".rstrip())
    return "\n".join(lines)


def render_summary(s: DiffSummary) -> str:
    """The few lines a change board or a pipeline log needs (``trustscan diff`` prints them on stderr)."""
    d = s.as_dict()
    v = d["verdict"]
    lines = [
        f"  Verdict: {v['old'] or '?'} -> {v['new'] or '?'}" + ("  (worse)" if s.fleet_worse else ""),
        "  Phones:  " + " · ".join(
            [f"{d['total']['old']} -> {d['total']['new']} total"]
            + [f"{k} {c['old']} -> {c['new']}" for k, c in d["counts"].items()]
        ),
        "  Changed: " + ", ".join(f"{n} {k}" for k, n in d["phones"].items()),
    ]
    if s.added_not_ready:
        lines[-1] += f" ({s.added_not_ready} added NOT_READY)"
    lines += [f"  Note: {n}" for n in s.notes]
    lines.append(f"  Result: WORSE ({'; '.join(s.worse_because)})" if s.worse else "  Result: nothing worse")
    return "\n".join(lines)
