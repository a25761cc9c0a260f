"""``trustscan diff OLD NEW``: which phones changed verdict between two scans, and why.

OLD and NEW are ``report.json`` files or history runs (``history:latest``, ``history:previous``,
``history:<id>``). A report of an unknown schema version is refused with the version named.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from scanner.errors import ParseError
from scanner.report.model import SCHEMA_VERSION

Rows = dict[str, tuple[str, list[str]]]


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
        if self.new == "READY":
            return "fixed"
        if self.old == "READY":
            return "broken"
        return "changed"


def rows_from_report(doc: Any, where: str) -> Rows:
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise ParseError("not a trustscan report (no schema_version)", path=where)
    version = doc["schema_version"]
    if version != SCHEMA_VERSION:
        raise ParseError(
            f"report schema version {version!r} is not supported by this trustscan (reads version "
            f"{SCHEMA_VERSION})",
            path=where,
        )
    try:
        return {d["name"]: (d["readiness"], list(d.get("reasons", []))) for d in doc["devices"]}
    except (KeyError, TypeError) as exc:
        raise ParseError(f"report devices are malformed: {exc}", path=where) from None


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


def render_text(changes: list[Change]) -> str:
    if not changes:
        return "No phone changed verdict or reasons."
    lines = []
    order = {"broken": 0, "changed": 1, "added": 2, "removed": 3, "fixed": 4}
    for c in sorted(changes, key=lambda c: (order[c.kind], c.name)):
        reasons = " ".join(c.new_reasons) if c.new is not None else ""
        was = f" (was {' '.join(c.old_reasons)})" if c.old_reasons and c.old_reasons != c.new_reasons else ""
        lines.append(f"{c.kind:<8} {c.name:<18} {c.old or '-':>9} -> {c.new or '-':<9} {reasons}{was}".rstrip())
    counts: dict[str, int] = {}
    for c in changes:
        counts[c.kind] = counts.get(c.kind, 0) + 1
    lines.append(", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: order[kv[0]])))
    return "\n".join(lines)
