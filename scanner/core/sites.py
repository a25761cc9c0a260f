"""Sites: which phones are collected where, in shards of bounded size, within one politeness budget.

Pure (no I/O): the profile's ``[sites.NAME]`` tables become :class:`Site` values
(``scanner.core.profile``); :func:`assign` gives every phone to at most one site (the phones no
site matches stay with the coordinator); :func:`plan_shards` cuts each site's phones into shards
of at most ``max_phones``; :func:`share_limits` splits the per-node limits between the shards
that may run at once, so that what a TFTP node sees from the whole scan stays within the limits a
single machine would hold (``scanner.core.ratelimit``). ``scanner.app.sites`` runs the shards on
Dask workers.

Site names. A site's shard is pinned to the workers started with ``--resources
"site-NAME=1"``: Dask parses that option as ``NAME=VALUE`` pairs separated by commas or spaces,
so the name must survive it. The rule is :data:`SITE_NAME_RULE`: 1 to 64 of ``A-Z a-z 0-9 _ -``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from scanner.core.errors import ParseError
from scanner.core.inventory import Phone
from scanner.core.ratelimit import Limits

__all__ = [
    "MAX_SHARD_PHONES",
    "SITE_NAME_RULE",
    "Assignment",
    "Shard",
    "Site",
    "SiteConflict",
    "assign",
    "parallel_shards",
    "plan_shards",
    "share_limits",
    "site_name_problem",
    "version_problems",
]

SITE_NAME_RULE = "1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'"
_SITE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
RESOURCE_PREFIX = "site-"
# Phones per shard at most: a shard is one Dask task, its evidence one result. 500 phones hold a
# few MB of configs and pages (about 5 KB per file), small enough to cross the wire in one piece,
# and a lost worker costs at most this many phones' work again.
MAX_SHARD_PHONES = 500
# Conflicts named in the error at most (the rest are counted): the message must stay readable.
MAX_CONFLICTS_SHOWN = 5

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Site:
    """``[sites.NAME]``: its phones are those in one of ``device_pools`` (compared without case,
    as CUCM compares names) or with an address in one of ``prefixes``."""

    name: str
    device_pools: tuple[str, ...] = ()
    prefixes: tuple[Network, ...] = ()

    @property
    def resource(self) -> str:
        """The Dask worker resource that pins this site's shards: ``site-NAME``."""
        return RESOURCE_PREFIX + self.name

    def matches(self, phone: Phone) -> bool:
        if phone.device_pool is not None and phone.device_pool.casefold() in {
            p.casefold() for p in self.device_pools
        }:
            return True
        if phone.ip is None or not self.prefixes:
            return False
        try:
            address = ipaddress.ip_address(phone.ip)
        except ValueError:
            return False
        return any(address in net for net in self.prefixes if net.version == address.version)

    def snapshot(self) -> dict[str, object]:
        return {"device_pools": list(self.device_pools), "prefixes": [str(p) for p in self.prefixes]}


def site_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a site name (None when it can)."""
    if _SITE_NAME.fullmatch(name):
        return None
    return f"site name {name!r} cannot be a Dask resource name: use {SITE_NAME_RULE}"


class SiteConflict(ParseError):
    """A phone matched by more than one site (the message names the phone and the sites)."""


@dataclass(frozen=True, slots=True)
class Assignment:
    by_site: Mapping[str, tuple[Phone, ...]]  # every site of the profile, in its order (maybe empty)
    central: tuple[Phone, ...]  # matched by no site: collected by the coordinator

    def site_of(self) -> dict[str, str]:
        return {p.name: site for site, phones in self.by_site.items() for p in phones}


def assign(sites: Sequence[Site], phones: Iterable[Phone]) -> Assignment:
    """Each phone to the one site that matches it, or to the coordinator. Raises ``SiteConflict``
    naming the phones matched by two or more sites (and those sites) before anything is sent."""
    by_site: dict[str, list[Phone]] = {s.name: [] for s in sites}
    central: list[Phone] = []
    conflicts: list[str] = []
    for phone in phones:
        hits = [s for s in sites if s.matches(phone)]
        if len(hits) > 1:
            conflicts.append(
                f"{phone.name} (pool {phone.device_pool or '-'}, address {phone.ip or '-'}) is matched by "
                + " and ".join(f"sites.{s.name}" for s in hits)
            )
        elif hits:
            by_site[hits[0].name].append(phone)
        else:
            central.append(phone)
    if conflicts:
        more = len(conflicts) - MAX_CONFLICTS_SHOWN
        raise SiteConflict(
            f"{len(conflicts)} phone{'s' if len(conflicts) != 1 else ''} matched by more than one site: "
            + "; ".join(conflicts[:MAX_CONFLICTS_SHOWN])
            + (f"; and {more} more" if more > 0 else "")
            + " (make the sites' device_pools and prefixes disjoint)"
        )
    return Assignment({k: tuple(v) for k, v in by_site.items()}, tuple(central))


@dataclass(frozen=True, slots=True)
class Shard:
    site: str
    index: int  # 0-based within its site
    phones: tuple[Phone, ...]

    @property
    def key(self) -> str:
        return f"{self.site}#{self.index}"


def plan_shards(assignment: Assignment, max_phones: int = MAX_SHARD_PHONES) -> tuple[Shard, ...]:
    """Each site's phones in ``ceil(n / max_phones)`` shards of near-equal size (so a site of 501
    phones gives two of about 250, not 500 and 1), in the inventory's order."""
    if max_phones < 1:
        raise ValueError("max_phones must be >= 1")
    shards: list[Shard] = []
    for site, phones in assignment.by_site.items():
        if not phones:
            continue
        count = math.ceil(len(phones) / max_phones)
        size, extra = divmod(len(phones), count)
        start = 0
        for i in range(count):
            stop = start + size + (1 if i < extra else 0)
            shards.append(Shard(site, i, phones[start:stop]))
            start = stop
    return tuple(shards)


def parallel_shards(shards: Sequence[Shard], workers_per_site: Mapping[str, int], limits: Limits | None = None) -> int:
    """How many shards may run at once: per site, one per worker of the site, at least one per
    site that has shards; and never more than the per-node concurrency or burst, so that each
    running shard's share of them is a whole request (the coordinator submits no more)."""
    per_site: dict[str, int] = {}
    for s in shards:
        per_site[s.site] = per_site.get(s.site, 0) + 1
    wanted = max(1, sum(min(n, max(1, workers_per_site.get(site, 0))) for site, n in per_site.items()))
    if limits is None:
        return wanted
    return max(1, min(wanted, limits.per_node_concurrency, limits.per_node_burst))


def share_limits(limits: Limits, parallel: int) -> Limits:
    """The limits of one of ``parallel`` shards running at once: the per-node concurrency, rate and
    burst divided between them (rounded down), so that their sum stays within the scan's limits
    (``parallel_shards`` keeps ``parallel`` at most the concurrency and the burst, so each share
    is at least 1). Everything else (timeouts, sizes, phones at once) is per shard as it is."""
    if parallel <= 1:
        return limits
    return dataclasses.replace(
        limits,
        per_node_concurrency=max(1, limits.per_node_concurrency // parallel),
        per_node_rate=limits.per_node_rate / parallel,
        per_node_burst=max(1, limits.per_node_burst // parallel),
    )


def version_problems(mine: str, workers: Mapping[str, str | None]) -> list[str]:
    """One line per worker whose trustscan version is not ``mine`` (None: not installed there)."""
    return [
        f"worker {address} runs trustscan {theirs or '(not installed)'}, this coordinator {mine}"
        for address, theirs in sorted(workers.items())
        if theirs != mine
    ]
