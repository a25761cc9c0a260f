"""``--resume``: what an unfinished evidence directory already holds, and what is left to do.

A job (one file from one node, one phone's pages, one TVS probe) is **done** when its last answer
is definite: ``ok``, or ``not_found`` (with the fallback answered too when there is one), or for
phone pages ``disabled``/``skipped``. A definite answer is kept: asking again would only repeat it,
and every request we do not send is one a booting phone does not have to wait behind. Everything
else (``timeout``, ``refused``, ``protocol_error``, ``bug``, and jobs with no line at all) is asked
again. The lines of done jobs are kept in order; the lines of jobs to redo are dropped from the
live manifest (the whole previous manifest stays on record as ``manifest.prev-N.jsonl``).

Refused: a directory from another profile or another inventory (the difference is named), and a
run with nothing left to do (said so, with the counts). Reading only: the writer
(``EvidenceWriter(resume_keep=...)``) switches the manifest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.core.errors import ParseError
from scanner.core.evidence import Attempt, Outcome, TransportKind
from scanner.core.inventory import Phone
from scanner.core.plan import CACHE_LIST, CLUSTER_FILES, phone_file_specs
from scanner.core.profile import Profile, snapshot_difference
from scanner.store.evidence import MANIFEST, EvidenceReader

__all__ = ["NothingToResume", "ResumePoint", "ResumeRefused", "resume_point"]

DEFINITE = frozenset({Outcome.OK, Outcome.NOT_FOUND})
DEFINITE_WEB = frozenset({Outcome.OK, Outcome.NOT_FOUND, Outcome.DISABLED, Outcome.SKIPPED, Outcome.TOO_LARGE})

FileKey = tuple[str | None, str, str, str]  # (phone or None, cluster, node, primary file name)


class ResumeRefused(ParseError):
    """The directory cannot be resumed with this profile and inventory (the reason names why)."""


class NothingToResume(Exception):
    """Every planned job already has a definite answer."""


@dataclass(frozen=True, slots=True)
class ResumePoint:
    keep: tuple[bytes, ...]  # manifest lines kept, in their order
    done_files: frozenset[FileKey]
    done_web: frozenset[str]
    done_tvs: frozenset[tuple[str, int]]
    shared: Mapping[tuple[str, str, str], Attempt]  # cluster-level files answered: (cluster, node, file)
    kept: tuple[Attempt, ...] = field(repr=False, default=())  # the kept lines, parsed
    phones: tuple[str, ...] | None = None  # discovered scope recorded by the plan
    started: float | None = None
    resumed: tuple[float, ...] = ()
    redo: int = 0  # attempts that will be asked again


def resume_point(root: Path, profile: Profile, inventory_sha256: str | None) -> ResumePoint:
    reader = EvidenceReader(root)  # FileNotFoundError: not an evidence directory
    summary = reader.summary()
    snap = summary.get("profile") if isinstance(summary.get("profile"), dict) else None
    if snap is not None and snap.get("sha256") != profile.sha256:
        diff = snapshot_difference(snap, profile.snapshot())
        if diff:  # the same settings in another file (a comment changed) may resume
            raise ResumeRefused(
                "collected with another profile: " + "; ".join(diff[:5])
                + (f" (and {len(diff) - 5} more)" if len(diff) > 5 else ""),
                path=str(root / "collection.json"),
            )
    inv = summary.get("inventory") if isinstance(summary.get("inventory"), dict) else None
    old_inv = None if inv is None else inv.get("sha256")
    if summary and old_inv != inventory_sha256:
        what = "no inventory" if old_inv is None else f"inventory sha256 {str(old_inv)[:12]}…"
        now = "no inventory" if inventory_sha256 is None else f"sha256 {inventory_sha256[:12]}…"
        raise ResumeRefused(
            f"collected with {what}, resumed with {now}: the phones in scope would differ",
            path=str(root / "collection.json"),
        )
    plan_raw = summary.get("plan")
    plan: dict[str, Any] = plan_raw if isinstance(plan_raw, dict) else {}
    phones = plan.get("phones") if isinstance(plan.get("phones"), list) else None

    lines = _manifest_lines(root)
    attempts = list(reader.attempts())
    if len(attempts) != len(lines):  # a bad line: keep the two lists aligned by re-reading
        lines, attempts = _aligned(lines)
    point = _decide(profile, lines, attempts, phones)
    started = summary.get("started")
    resumed = summary.get("resumed") or []
    point = dataclasses.replace(
        point,
        phones=None if phones is None else tuple(str(p) for p in phones),
        started=started if isinstance(started, int | float) else None,
        resumed=tuple(r for r in resumed if isinstance(r, int | float)),
    )
    if summary.get("state") == "complete" and point.redo == 0:
        raise NothingToResume(
            f"{root}: the collection finished and every one of its {len(attempts)} attempts has a definite "
            "answer: nothing to resume (analyse it with scan --from)"
        )
    return point


def _manifest_lines(root: Path) -> list[bytes]:
    with (root / MANIFEST).open("rb") as fh:
        return [line for line in fh if line.strip()]


def _aligned(lines: list[bytes]) -> tuple[list[bytes], list[Attempt]]:
    keep_lines: list[bytes] = []
    keep: list[Attempt] = []
    for line in lines:
        try:
            a = Attempt.from_json(line)
        except (ValueError, TypeError, KeyError):
            continue  # a torn or foreign line: its job has no answer and is asked again
        keep_lines.append(line)
        keep.append(a)
    return keep_lines, keep


def _decide(
    profile: Profile, lines: list[bytes], attempts: list[Attempt], phones: Iterable[str] | None
) -> ResumePoint:
    from scanner.net.phone_web import PAGES  # the page names only; nothing is fetched here

    web_pages = PAGES
    clusters = {c.name: c for c in profile.clusters}
    # Per (phone, cluster, node, file): ok if any attempt was (``both`` fetches two transports),
    # else the last attempt's outcome (``http-first`` records HTTP's failure before TFTP's answer).
    last: dict[tuple[str | None, str, str, str], Outcome] = {}
    key_of: list[tuple[str, Any]] = []  # per line: ("file", FileKey) / ("web", phone) / ("tvs", addr)
    web: dict[str, dict[str, Outcome]] = {}  # phone -> page name -> outcome
    tvs_ok: set[tuple[str, int]] = set()
    for a in attempts:
        if a.transport == TransportKind.TVS.value:
            host, _, port = (a.address or "").rpartition(":")
            addr = (host.strip("[]"), int(port) if port.isascii() and port.isdigit() else 2445)
            if a.outcome is Outcome.OK:
                tvs_ok.add(addr)
            key_of.append(("tvs", addr))
        elif a.transport == TransportKind.WEB.value and a.phone is not None:
            web.setdefault(a.phone, {})[a.file] = a.outcome
            key_of.append(("web", a.phone))
        elif a.cluster in clusters and a.node is not None:
            k = (a.phone, a.cluster, a.node, a.file)
            if last.get(k) is not Outcome.OK:
                last[k] = a.outcome
            if a.phone is None:
                key_of.append(("file", (None, a.cluster, a.node, a.file)))
            else:
                primary = next(
                    (sp.primary for sp in phone_file_specs(clusters[a.cluster], Phone(a.phone))
                     if a.file in (sp.primary, sp.fallback)),
                    a.file,
                )
                key_of.append(("file", (a.phone, a.cluster, a.node, primary)))
        else:
            key_of.append(("other", None))

    def file_done(key: FileKey) -> bool:
        phone, cluster, node, primary = key
        first = last.get((phone, cluster, node, primary))
        if first is None or first not in DEFINITE:
            return False
        if first is Outcome.OK or phone is None:
            return True
        fallback = next(
            (s.fallback for s in phone_file_specs(clusters[cluster], Phone(phone)) if s.primary == primary), None
        )
        if fallback is None:
            return True
        # A fallback to the node's generic list reuses the cluster-level fetch: done when that is.
        answer = last.get((None, cluster, node, fallback)) if fallback in CLUSTER_FILES else None
        answer = last.get((phone, cluster, node, fallback), answer)
        return answer in DEFINITE

    done_files = {k for kind, k in key_of if kind == "file" and file_done(k)}
    # A phone's pages are done when every page has a line and each is a definite answer (a run
    # cut off between two pages' lines leaves the phone to be asked again).
    done_web = {
        # Every page every phone is asked for (an optional page, such as the security page of the
        # models that keep their hashes there, is not one: counting lines would let it stand in
        # for a page that was never fetched).
        p for p, outs in web.items()
        if {s.name for s in web_pages} <= set(outs) and all(o in DEFINITE_WEB for o in outs.values())
    }
    keep: list[bytes] = []
    kept: list[Attempt] = []
    redo = 0
    for line, a, (kind, key) in zip(lines, attempts, key_of, strict=True):
        if (
            (kind == "file" and key in done_files)
            or (kind == "web" and key in done_web)
            or (kind == "tvs" and a.outcome is Outcome.OK)
        ):
            keep.append(line)
            kept.append(a)
        elif not (kind == "tvs" and a.outcome is Outcome.SKIPPED):
            # (An address refused by the TVS scope is decided again from the configs, never asked.)
            redo += 1
    # Planned jobs with no line at all are "redo" too (the run stopped before them).
    planned = _planned_count(profile, phones)
    answered = len({k for k in done_files if k[0] is not None}) if planned is not None else 0
    if planned is not None:
        redo += max(0, planned - answered)
    shared = {
        (a.cluster or "", a.node or "", a.file): a
        for a in kept
        if a.phone is None and a.transport != TransportKind.TVS.value and a.file in (*CLUSTER_FILES, CACHE_LIST)
    }
    return ResumePoint(
        keep=tuple(keep),
        done_files=frozenset(done_files),
        done_web=frozenset(done_web),
        done_tvs=frozenset(tvs_ok),
        shared=shared,
        kept=tuple(kept),
        redo=redo,
    )


def _planned_count(profile: Profile, phones: Iterable[str] | None) -> int | None:
    if phones is None:
        return None
    n = 0
    for p in phones:
        for cluster in profile.clusters:
            n += len(phone_file_specs(cluster, Phone(p))) * len(cluster.tftp)
    return n
