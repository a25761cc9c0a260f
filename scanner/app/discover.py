"""Discovery: a cluster's phones, addresses and nodes from its publisher's AXL and RisPort70.

Read-only: the only AXL operation is ``executeSQLQuery`` with ``SELECT`` statements this module
writes, and RisPort70's ``selectCmDeviceExt``. Polite: one request in flight per cluster; AXL pages
one after another; RisPort70 under a token bucket at the profile's ``risport_per_minute`` (CUCM's
default "Allowed Device Queries Per Minute", 15, unless the profile says otherwise), and when
the cluster answers that the rate is exceeded anyway (another application shares the budget) the
batch waits and is asked again; a batch is never dropped: after ``RISPORT_ATTEMPTS`` refusals its
phones are kept without an address, each with the reason.

What stops a discovery (``DiscoveryError``, exit 64 at the CLI, nothing else contacted): the
publisher refuses the user (HTTP 401/403), its certificate is not trusted, it cannot be reached,
it answers with something that is not AXL, or no AXL schema version both sides speak.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol
from xml.etree.ElementTree import Element

from scanner.core.cucm import axl, risport
from scanner.core.cucm.discovery import Discovery, combine, complete_cluster
from scanner.core.cucm.settings import AxlSettings
from scanner.core.cucm.soap import SoapFault, parse_response
from scanner.core.errors import ParseError
from scanner.core.inventory import Inventory, Phone, inventory_csv
from scanner.core.profile import Profile
from scanner.core.ratelimit import TokenBucket
from scanner.net.soap_client import SoapClient, SoapReply, ssl_context_for
from scanner.store.evidence import DISCOVERY as DISCOVERY_FILE

__all__ = [
    "AXL_PATH",
    "DISCOVERY_FILE",
    "RISPORT_PATH",
    "ClusterDiscovery",
    "DiscoveryError",
    "FleetDiscovery",
    "discover_cluster",
    "discover_fleet",
    "fleet_from_record",
]

# A collection keeps what discovery found as DISCOVERY_FILE (scanner.store.evidence); ``--from``
# and ``--resume`` read it back, so that re-analysis and resumption judge the same phones and
# nodes without asking the cluster again.
DISCOVERY_FORMAT = 1

AXL_PATH = "/axl/"  # the trailing slash is required by CUCM
RISPORT_PATH = "/realtimeservice2/services/RISService70"
# How often one RisPort70 batch is asked again after "rate exceeded" before its phones are given
# up (kept, without an address, with the reason).
RISPORT_ATTEMPTS = 5
# RisPort70 requests go out a little slower than the budget allows: spaced at exactly 60/N s, the
# N+1st request lands on the edge of the first one's minute, and a node's clock or a round trip
# that varies puts it inside (bench/bench_discover.py saw the refusal at 40,000 phones). 2% later
# costs a 40-batch discovery about 3 s and keeps every 60 s window at N.
PACING_MARGIN = 1.02
# The wait after a "rate exceeded" fault, doubled at each refusal: RisPort70's budget is per
# minute, so a wait under a minute may meet the same full window again.
RATE_BACKOFF = 30.0
# AXL "Maximum AXL Memory Allocation Consumed": another client's large query is running.
AXL_BUSY_ATTEMPTS = 4
AXL_BUSY_BACKOFF = 5.0


class DiscoveryError(Exception):
    """Discovery cannot go on: the message names the cluster and the host, never a password."""


class Poster(Protocol):
    async def post(self, path: str, body: bytes, soap_action: str) -> SoapReply: ...


@dataclass(frozen=True, slots=True)
class ClusterDiscovery:
    cluster: str
    discovery: Discovery
    nodes: tuple[axl.ClusterNode, ...]
    settings: axl.ClusterSettings
    axl_version: str
    warnings: tuple[str, ...]
    axl_calls: int
    risport_calls: int
    rate_refusals: int
    seconds: float


@dataclass(slots=True)
class _Run:
    cluster: str
    settings: AxlSettings
    client: Poster
    sleep: Callable[[float], Awaitable[None]]
    clock: Callable[[], float]
    version: str = axl.DEFAULT_VERSION
    warnings: list[str] = field(default_factory=list)
    axl_calls: int = 0
    risport_calls: int = 0
    rate_refusals: int = 0

    def fail(self, why: str) -> DiscoveryError:
        return DiscoveryError(f"cluster {self.cluster}: {why}")

    def _refused(self, reply: SoapReply, api: str) -> DiscoveryError | None:
        if reply.error is not None:
            return self.fail(f"{api} at {self.settings.where()}: {reply.error}")
        if reply.status in (401, 403):
            return self.fail(
                f"{api} at {self.settings.where()} refused the user {self.settings.user!r} "
                f"(HTTP {reply.status}): wrong user or password, or the user lacks the read-only AXL/Serviceability roles"
            )
        return None

    async def sql(self, query: str) -> list[dict[str, str]]:
        """Rows of one ``executeSQLQuery``; negotiates the schema version once; waits out "busy"."""
        busy = 0
        negotiated = False
        while True:
            body, action = axl.sql_request(query, self.version)
            self.axl_calls += 1
            reply = await self.client.post(AXL_PATH, body, action)
            if (err := self._refused(reply, "AXL")) is not None:
                raise err
            if reply.status == 599 and not negotiated:
                offered = axl.supported_versions(reply.body.decode("utf-8", "replace"))
                if not offered:
                    raise self.fail(f"AXL at {self.settings.where()} refused schema {self.version} and named none it supports")
                self.warnings.append(f"cluster {self.cluster}: AXL schema {self.version} not supported; using {offered[0]}")
                self.version, negotiated = offered[0], True
                continue
            answer = self._parse(reply, "AXL")
            if isinstance(answer, SoapFault):
                fault = axl.classify_fault(answer)
                if fault.kind == "busy" and busy < AXL_BUSY_ATTEMPTS:
                    busy += 1
                    await self.sleep(AXL_BUSY_BACKOFF * busy)
                    continue
                raise _AxlFault(fault)
            return axl.rows(answer, what=f"AXL answer from {self.settings.where()}")

    def _parse(self, reply: SoapReply, api: str) -> Element | SoapFault:
        what = f"{api} answer from {self.settings.where()}"
        try:
            return parse_response(reply.body, what=what)
        except ParseError as exc:
            raise self.fail(f"{exc} (HTTP {reply.status})") from None

    async def phones(self) -> list[axl.AxlPhone]:
        found: list[axl.AxlPhone] = []
        skip, page = 0, axl.PAGE_ROWS
        while True:
            try:
                rows = await self.sql(axl.phone_page_query(skip, page))
            except _AxlFault as exc:
                smaller = axl.next_page_rows(page, exc.fault) if exc.fault.kind == "too_large" else None
                if smaller is None:
                    raise self.fail(f"AXL at {self.settings.where()}: {exc.fault.message}") from None
                page = smaller
                continue
            phones, warnings = axl.phones_from_rows(rows)
            found += phones
            self.warnings += [f"cluster {self.cluster}: {w}" for w in warnings if w not in self.warnings]
            if len(rows) < page:
                return found
            skip += len(rows)

    async def optional_sql(self, query: str, what: str) -> list[dict[str, str]]:
        """Rows of a query whose failure loses only its own facts (said as a warning)."""
        try:
            return await self.sql(query)
        except _AxlFault as exc:
            self.warnings.append(f"cluster {self.cluster}: AXL could not list {what}: {exc.fault.message}")
            return []

    async def registrations(self, names: Sequence[str]) -> tuple[dict[str, risport.Registration], dict[str, str]]:
        """Each phone's registration, and for the phones of batches given up, why."""
        per_second = self.settings.risport_per_minute / 60.0 / PACING_MARGIN
        bucket = TokenBucket(per_second, 1, self.clock())
        found: list[risport.Registration] = []
        given_up: dict[str, str] = {}
        retry: tuple[str, ...] = ()
        size, i = risport.MAX_BATCH, 0
        while retry or i < len(names):
            if retry:
                batch, retry = retry, ()
            else:
                batch, i = tuple(names[i : i + size]), i + size
            answer = await self._one_batch(batch, bucket)
            if isinstance(answer, str):
                given_up.update(dict.fromkeys(batch, answer))
                continue
            found += answer.registrations
            self.warnings += [f"cluster {self.cluster}: {w}" for w in answer.warnings]
            # RisPort70 cuts an answer at 1,000 entries, and a phone that failed over takes two:
            # when the node counted more than it sent, the names it did not send are asked again.
            returned = {r.name for r in answer.registrations}
            missing = [n for n in batch if n not in returned]
            if missing and answer.total_found > len(returned) and len(missing) < len(batch):
                retry = tuple(missing)
                # And the next batches are made smaller by the share of entries per phone this
                # one had (each re-ask costs a request of the per-minute budget): with 1% of the
                # phones failed over, 1,000 names never fit and 985 do.
                entries = max(len(answer.registrations), 1)
                size = max(100, min(risport.MAX_BATCH, int(len(returned) * risport.MAX_BATCH / entries) - 5))
        return risport.merge(found), given_up

    async def _one_batch(self, batch: Sequence[str], bucket: TokenBucket) -> risport.SelectAnswer | str:
        """The answer for ``batch``, or why there is none after ``RISPORT_ATTEMPTS`` tries."""
        refusals = 0
        while True:
            wait = bucket.reserve(self.clock())
            if wait > 0:
                await self.sleep(wait)
            self.risport_calls += 1
            reply = await self.client.post(RISPORT_PATH, risport.select_request(batch), risport.SOAP_ACTION)
            if (err := self._refused(reply, "RisPort70")) is not None:
                if reply.error is not None and refusals < RISPORT_ATTEMPTS - 1:
                    refusals += 1  # a lost connection or a slow node: the same batch again
                    await self.sleep(RATE_BACKOFF)
                    continue
                if reply.error is not None:
                    return f"RisPort70 did not answer for this phone's batch: {reply.error}"
                raise err
            answer = self._parse(reply, "RisPort70")
            if isinstance(answer, SoapFault):
                if risport.is_rate_limited(answer) and refusals < RISPORT_ATTEMPTS - 1:
                    refusals += 1
                    self.rate_refusals += 1
                    await self.sleep(RATE_BACKOFF * 2 ** (refusals - 1))
                    continue
                return f"RisPort70 refused this phone's batch {refusals + 1} time(s): {answer.message or answer.code}"
            return risport.parse_select(answer, what=f"RisPort70 answer from {self.settings.where()}")


class _AxlFault(Exception):
    def __init__(self, fault: axl.Fault) -> None:
        super().__init__(fault.message)
        self.fault = fault


async def discover_cluster(
    cluster: str,
    settings: AxlSettings,
    client: Poster,
    csv: Inventory | None = None,
    *,
    phones: bool = True,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ClusterDiscovery:
    """Discover ``cluster``: phones (AXL), registrations (RisPort70), nodes and their TFTP/TVS
    services, the security settings; merged with ``csv`` (``scanner.core.cucm.discovery``).
    ``phones=False`` asks only for the nodes and settings (the destination: its phones are
    judged by the source's list)."""
    started = clock()
    run = _Run(cluster, settings, client, sleep, clock, version=settings.version or axl.DEFAULT_VERSION)
    listed = await run.phones() if phones else []
    nodes = axl.nodes_from_rows(await run.optional_sql(axl.node_service_query(), "its nodes and services"))
    cluster_settings = axl.settings_from_rows(await run.optional_sql(axl.settings_query(), "its security parameters"))
    names = sorted({p.name for p in listed if p.name[:3] in ("SEP", "ATA")})
    regs, given_up = await run.registrations(names) if names else ({}, {})
    phones_found = listed
    found = combine(cluster, phones_found, regs, csv if phones else None)
    no_address = {name: given_up.get(name, why) for name, why in found.no_address.items()}
    found = Discovery(
        tuple(
            dataclasses.replace(p, no_address=given_up[p.name]) if p.ip is None and p.name in given_up else p
            for p in found.phones
        ),
        no_address,
        found.warnings,
        found.registered,
    )
    return ClusterDiscovery(
        cluster=cluster,
        discovery=found,
        nodes=tuple(nodes),
        settings=cluster_settings,
        axl_version=run.version,
        warnings=tuple(run.warnings) + found.warnings,
        axl_calls=run.axl_calls,
        risport_calls=run.risport_calls,
        rate_refusals=run.rate_refusals,
        seconds=clock() - started,
    )


# -- the fleet: both clusters of a profile ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FleetDiscovery:
    """What a profile's ``[clusters.<c>.axl]`` tables found: the profile with the discovered nodes
    added, the source's phones (with the CSV merged in), and the record ``discovery.json`` keeps."""

    profile: Profile
    inventory: Inventory
    record: dict[str, Any]

    @property
    def warnings(self) -> list[str]:
        return list(self.record["warnings"])

    @property
    def inventory_sha256(self) -> str:
        """Of the inventory as ``trustscan discover`` writes it: the same phones give the same hash,
        so a resumed run can tell it judges the phones the interrupted one did."""
        return hashlib.sha256(inventory_csv(self.inventory.phones)).hexdigest()


def uses_discovery(profile: Profile) -> bool:
    return any(c.axl is not None for c in profile.clusters)


ClientFactory = Callable[[AxlSettings, str], AbstractAsyncContextManager[Poster]]


def _soap_client(settings: AxlSettings, password: str) -> AbstractAsyncContextManager[Poster]:
    return SoapClient(settings, password, ssl_context_for(settings))


async def discover_fleet(
    profile: Profile,
    passwords: Mapping[str, str],
    csv: Inventory | None = None,
    csv_meta: Mapping[str, Any] | None = None,
    *,
    client_for: ClientFactory = _soap_client,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> FleetDiscovery:
    """Ask every cluster that has an ``axl`` table: the destination for its nodes and settings, the
    source for those and its phones. ``passwords`` holds one per such cluster (read by the CLI).
    Raises ``DiscoveryError`` (naming the cluster and host) when a cluster cannot be asked."""
    clusters: dict[str, ClusterDiscovery] = {}
    for c in (profile.destination, profile.source):
        if c.axl is None:
            continue
        try:
            client = client_for(c.axl, passwords[c.name])
        except (OSError, ssl.SSLError) as exc:
            raise DiscoveryError(
                f"cluster {c.name}: cannot use the CA bundle {c.axl.ca_bundle}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        async with client as poster:
            clusters[c.name] = await discover_cluster(
                c.name, c.axl, poster, csv if c.name == "source" else None,
                phones=c.name == "source", sleep=sleep, clock=clock,
            )
    where = {c.name: c.axl.where() for c in profile.clusters if c.axl is not None}
    record = _record(clusters, where, csv, csv_meta)
    return fleet_from_record(profile, record, csv_issues=() if csv is None else csv.issues)


def _record(
    clusters: Mapping[str, ClusterDiscovery],
    where: Mapping[str, str],
    csv: Inventory | None,
    csv_meta: Mapping[str, Any] | None,
) -> dict[str, Any]:
    warnings: list[str] = []
    for d in clusters.values():
        warnings += [w for w in d.warnings if w not in warnings]
    source = clusters.get("source")
    phones = source.discovery.phones if source is not None else (csv.phones if csv is not None else ())
    if source is None and csv is not None:
        warnings.append("the source cluster has no [clusters.source.axl]: its phones are the inventory's")
    return {
        "format": DISCOVERY_FORMAT,
        "clusters": {
            name: {
                "publisher": where[name],
                "axl_version": d.axl_version,
                "axl_calls": d.axl_calls,
                "risport_calls": d.risport_calls,
                "rate_refusals": d.rate_refusals,
                "seconds": round(d.seconds, 3),
                "nodes": [dataclasses.asdict(n) for n in d.nodes],
                "settings": dataclasses.asdict(d.settings),
                "phones": len(d.discovery.phones),
                "registered": d.discovery.registered,
                "no_address": len(d.discovery.no_address),
            }
            for name, d in clusters.items()
        },
        "csv": None if csv_meta is None else dict(csv_meta),
        "warnings": warnings,
        "phones": [
            {k: v for k, v in dataclasses.asdict(p).items() if v is not None} for p in phones
        ],
    }


def fleet_from_record(
    profile: Profile, record: Mapping[str, Any], *, csv_issues: Sequence[ParseError] = ()
) -> FleetDiscovery:
    """The profile completed with the nodes a discovery record lists, and its phones: what
    ``discover_fleet`` returns, and what ``--from``/``--resume`` rebuild from ``discovery.json``.
    Raises ``ParseError`` for a record this version cannot read."""
    if not isinstance(record, Mapping) or record.get("format") != DISCOVERY_FORMAT:
        raise ParseError(f"not a discovery record of format {DISCOVERY_FORMAT}", path=DISCOVERY_FILE)
    try:
        completed = {}
        warnings = list(record["warnings"])
        for c in profile.clusters:
            found = record["clusters"].get(c.name)
            if found is None:
                completed[c.name] = c
                continue
            nodes = [axl.ClusterNode(**n) for n in found["nodes"]]
            completed[c.name], more = complete_cluster(c, nodes)
            warnings += [w for w in more if w not in warnings]
        phones = tuple(Phone(**p) for p in record["phones"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise ParseError(f"discovery record damaged ({type(exc).__name__}: {exc})", path=DISCOVERY_FILE) from None
    for c in completed.values():
        if not c.tftp:
            raise DiscoveryError(
                f"cluster {c.name}: no TFTP node: AXL lists none running the TFTP service and the profile names none"
            )
    done = dataclasses.replace(profile, source=completed["source"], destination=completed["destination"])
    rec = dict(record)
    rec["warnings"] = warnings
    return FleetDiscovery(done, Inventory(phones, tuple(csv_issues)), rec)
