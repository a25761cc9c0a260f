"""After a cutover (or part of one): did each phone make it? Pure: evidence in, outcomes out.

The evidence is what a collection gathers anyway (``trustscan verify`` runs the same collector as
``scan``): both clusters' CTL/ITL files, each phone's per-phone files, and each phone's own web
pages, which show the hashes of the trust lists it holds, the TFTP servers it uses and its status
messages. A phone is

* ``MIGRATED``: it holds the destination's lists (the ITL, and the CTL when the destination is in
  mixed mode: the page's hash is the SHA-1 or MD5 of a file a destination node serves) and uses a
  destination TFTP node;
* ``STUCK``, with the reason it can see: its last trust-list event is a failure ("Trust List update
  failed" and its variants), it holds the destination's lists but its status messages say it got
  no configuration (not provisioned, or the config's signature refused), it uses a destination TFTP node but still holds the source's lists, it
  holds lists neither cluster serves (every node's file was read), or it uses a TFTP server
  neither cluster lists;
* ``NOT_MOVED``: it uses a source TFTP node and holds the source's lists;
* ``UNKNOWN``: the page is missing or does not show what is needed, or its hashes match nothing
  while some node's list could not be read (it may be that one).

The same principle as the readiness checks: missing evidence never makes MIGRATED or STUCK.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from scanner.core.evidence import Outcome
from scanner.core.readiness import ClusterEvidence, FileEvidence, PhoneEvidence

__all__ = ["FleetOutcome", "Migration", "PhoneMigration", "ServedLists", "judge", "served_lists", "summarize"]

TRUST_FILES = ("CTLFile.tlv", "ITLFile.tlv")
# Status messages that say the phone got no usable configuration after its lists: not
# provisioned ("File Not Found <SEP….cnf.xml.sgn>") or a config whose signer it does not trust
# ("SEP….cnf.xml.sgn verification failed"). Such a phone holds the new lists but does not register.
_CONFIG_FAILED = re.compile(r"(file not found\s*<?\s*SEP[0-9A-F]{12}\.cnf\.xml|SEP[0-9A-F]{12}\.cnf\.xml(\.sgn)?\s+verification failed)", re.I)


class Migration(StrEnum):
    MIGRATED = "MIGRATED"
    STUCK = "STUCK"
    NOT_MOVED = "NOT_MOVED"
    UNKNOWN = "UNKNOWN"


class FleetOutcome(StrEnum):
    """``DONE``: no phone STUCK or UNKNOWN (NOT_MOVED phones are the part not cut over yet);
    ``STUCK``: some phone is; ``INCOMPLETE``: none is STUCK, some is UNKNOWN; ``NOT_STARTED``:
    every phone NOT_MOVED (verified before any cutover: as a scan with nothing READY, it fails).
    Exit 0 / 1 / 2 / 1, as ``scan``'s GO / NO_GO / INCOMPLETE."""

    DONE = "DONE"
    NOT_STARTED = "NOT_STARTED"
    STUCK = "STUCK"
    INCOMPLETE = "INCOMPLETE"


@dataclass(frozen=True, slots=True)
class ServedLists:
    """One cluster's trust lists by the hashes a phone page would show (SHA-1 and MD5 of the
    file), with the node that serves each; and whether every node's lists were read."""

    cluster: str
    by_hash: Mapping[tuple[str, str], str]  # (kind "CTL"/"ITL", hex digest) -> node
    complete: bool
    tftp_addresses: frozenset[str]
    mixed: bool


def _digests(data: bytes) -> tuple[str, str]:
    # The page shows SHA-1 (most models) or MD5 (some older ones) of the whole file.
    return hashlib.sha1(data, usedforsecurity=False).hexdigest(), hashlib.md5(data, usedforsecurity=False).hexdigest()


def _kind(name: str) -> str | None:
    if name.startswith("CTL") and name.endswith(".tlv"):
        return "CTL"
    if name.startswith("ITL") and name.endswith(".tlv"):
        return "ITL"
    return None


def served_lists(cluster: ClusterEvidence, addresses: Iterable[str]) -> ServedLists:
    """``cluster``'s generic CTL/ITL files by hash; ``addresses``: its TFTP nodes' addresses."""
    by_hash: dict[tuple[str, str], str] = {}
    complete = True
    for f in cluster.files:
        kind = _kind(f.name)
        if kind is None:
            continue
        if f.ok:
            assert f.data is not None
            for d in _digests(f.data):
                by_hash.setdefault((kind, d), f.node)
        elif f.outcome != Outcome.NOT_FOUND.value:
            complete = False  # a list that could not be read may be the one a phone holds
    return ServedLists(cluster.name, by_hash, complete, frozenset(a.lower() for a in addresses), cluster.mixed)


@dataclass(frozen=True, slots=True)
class PhoneMigration:
    name: str
    outcome: Migration
    reasons: tuple[str, ...]
    facts: Mapping[str, object] = field(default_factory=dict)
    ip: str | None = None
    device_pool: str | None = None
    model: str | None = None


def _side(kind: str, shown: str | None, phone_files: Sequence[FileEvidence], lists: Sequence[ServedLists]) -> tuple[str | None, bool]:
    """Which cluster serves the list whose hash the page shows (None: neither), and whether that
    answer is certain (every list that could be it was read)."""
    if not shown:
        return None, False
    shown = shown.lower()
    certain = True
    for sl in lists:
        if (kind, shown) in sl.by_hash:
            return sl.cluster, True
        certain &= sl.complete
    for f in phone_files:  # the phone's own CTLSEP/ITLSEP files
        if _kind(f.name) != kind:
            continue
        if f.ok:
            assert f.data is not None
            if shown in _digests(f.data):
                return f.cluster, True
        elif f.outcome != Outcome.NOT_FOUND.value:
            certain = False
    return None, certain


def judge(phone: PhoneEvidence, src: ServedLists, dst: ServedLists) -> PhoneMigration:
    """One phone's outcome and the reasons for it."""

    def out(outcome: Migration, *reasons: str, **facts: object) -> PhoneMigration:
        return PhoneMigration(phone.name, outcome, reasons, facts, phone.ip, phone.device_pool, phone.model)

    page = phone.page
    if page is None or phone.page_outcome not in (None, Outcome.OK.value):
        why = phone.page_detail or phone.page_outcome or "not fetched"
        return out(Migration.UNKNOWN, f"no network page from the phone: {why}")
    status = phone.status
    tftp = [a.lower() for a in page.tftp_servers if a]
    in_dst = any(a in dst.tftp_addresses for a in tftp)
    in_src = any(a in src.tftp_addresses for a in tftp)
    itl, itl_certain = _side("ITL", page.itl_signature if page.itl_installed else None, phone.files, (dst, src))
    ctl, ctl_certain = _side("CTL", page.ctl_signature if page.ctl_installed else None, phone.files, (dst, src))
    facts: dict[str, object] = {"tftp": tftp, "itl_from": itl, "ctl_from": ctl,
                                "last_trust_event": status.last_trust_event if status is not None else None}
    if status is not None and status.trust_update_failed:
        return out(Migration.STUCK, f"the phone's last trust-list event is a failure: {status.last_trust_event!r}", **facts)
    holds_dst = itl == dst.cluster and (ctl == dst.cluster if dst.mixed else ctl in (None, dst.cluster))
    holds_src = itl == src.cluster
    if not tftp:
        return out(Migration.UNKNOWN, "the phone's page shows no TFTP server", **facts)
    if in_dst and holds_dst:
        failed = [m.text for m in (status.messages if status is not None else ()) if _CONFIG_FAILED.search(m.text)]
        if failed:
            return out(Migration.STUCK, f"holds the destination's trust lists but got no configuration: {failed[-1]!r}",
                       **facts)
        return out(Migration.MIGRATED, "holds the destination's trust lists and uses its TFTP node(s)", **facts)
    if in_dst and holds_src:
        return out(Migration.STUCK, "uses the destination's TFTP node(s) but still holds the source's trust lists", **facts)
    if in_src and holds_src and not in_dst:
        return out(Migration.NOT_MOVED, "uses the source's TFTP node(s) and holds its trust lists", **facts)
    if not in_src and not in_dst:
        return out(Migration.STUCK, f"uses TFTP server(s) {', '.join(tftp)}, which neither cluster lists", **facts)
    if in_src and holds_dst:
        return out(Migration.STUCK, "holds the destination's trust lists but uses the source's TFTP node(s)", **facts)
    # The lists match neither cluster (or the page shows none).
    if page.itl_installed is None or (page.itl_installed and not page.itl_signature):
        return out(Migration.UNKNOWN, "the phone's page does not show the hash of its ITL", **facts)
    if not (itl_certain and (ctl_certain or not page.ctl_installed)):
        return out(Migration.UNKNOWN, "the phone's trust lists match nothing read, and some node's lists could not be read", **facts)
    if itl is None and ctl is None:
        return out(Migration.STUCK, "holds trust lists neither cluster serves", **facts)

    def where(kind: str, side: str | None) -> str:
        return f"the {side}'s {kind}" if side else f"a {kind} neither cluster serves"

    return out(Migration.STUCK, f"holds {where('ITL', itl)} but {where('CTL', ctl)}: the lists were not both replaced", **facts)


@dataclass(frozen=True, slots=True)
class FleetSummary:
    outcome: FleetOutcome
    counts: Mapping[str, int]
    total: int
    why: str


def summarize(results: Sequence[PhoneMigration]) -> FleetSummary:
    counts = {m.value: 0 for m in Migration}
    for r in results:
        counts[r.outcome.value] += 1
    if counts[Migration.STUCK]:
        outcome, why = FleetOutcome.STUCK, f"{counts[Migration.STUCK]} phone(s) STUCK"
    elif counts[Migration.UNKNOWN]:
        outcome, why = FleetOutcome.INCOMPLETE, f"{counts[Migration.UNKNOWN]} phone(s) UNKNOWN"
    elif results and counts[Migration.NOT_MOVED] == len(results):
        outcome, why = FleetOutcome.NOT_STARTED, f"none of the {len(results)} phone(s) has moved yet"
    else:
        moved = counts[Migration.MIGRATED]
        outcome, why = FleetOutcome.DONE, f"{moved} phone(s) MIGRATED, {counts[Migration.NOT_MOVED]} not moved yet"
    return FleetSummary(outcome, counts, len(results), why)
