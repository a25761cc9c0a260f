"""Collection: fetch every file, page and certificate the readiness checks need, politely.

What is fetched (spec/migration-readiness.md):

* per TFTP node of each cluster, once: ``CTLFile.tlv`` and ``ITLFile.tlv`` (C5 and the
  fallbacks of C1); on the source nodes, ``ConfigFileCacheList.txt`` when there is no inventory
  (discovery: the TFTP service's list of the configs it serves names the phones);
* per phone, from every source node: ``CTLSEP<MAC>.tlv`` (mixed mode only; fallback
  ``CTLFile.tlv``), ``ITLSEP<MAC>.tlv`` (fallback ``ITLFile.tlv``), ``SEP<MAC>.cnf.xml.sgn``
  (fallback ``SEP<MAC>.cnf.xml``); from every destination node: ``SEP<MAC>.cnf.xml.sgn``
  (fallback ``.cnf.xml``). A fallback to a cluster-level file reuses that file's one fetch;
* per phone with an address: its web pages (``scanner.net.phone_web``), one at a time;
* per TVS address (the profile's, and every one named in a source config), once: the server
  certificate (``scanner.net.tvs_probe``).

How (architecture: errors become data at one boundary, lazily fed workers):

* A generator plans jobs; ``Limits.workers`` workers share one iterator over it and each takes
  the next job when it is free. Memory holds the jobs in progress, not the plan: flat as the
  fleet grows.
* Every network attempt passes its node's gate: a semaphore of ``per_node_concurrency``, a
  token bucket of ``per_node_rate`` (``scanner.core.ratelimit`` explains the defaults) whose
  starts are released together on pacing ticks, and a ``NodeHealth`` per node and transport:
  only ``dead_after`` consecutive timeouts mark it dead, after which its jobs are recorded as
  ``timeout`` without sending (one probe per interval). ``job_timeout`` (``asyncio.timeout``)
  is the hard ceiling of each attempt.
* Transport per cluster: ``http-first`` (6970, then TFTP when HTTP gives no definite answer),
  ``tftp``, ``http``, ``both`` (both, and ``mismatch`` is recorded when the bytes differ: the
  analysis reports NODE_MISMATCH).
* Every attempt is one manifest line; an unexpected exception is a ``bug`` line with its
  traceback and the scan goes on. Every planned phone gets its lines whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import math
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scanner import __version__
from scanner.app.resume import ResumePoint
from scanner.core.content_check import check_fetched
from scanner.core.devconfig import tvs_addresses
from scanner.core.errors import ParseError
from scanner.core.evidence import Attempt, Outcome, TransportKind, prepare_for_storage
from scanner.core.findings import Code
from scanner.core.inventory import Inventory, Phone, merge_discovered, read_config_cache_list
from scanner.core.plan import CACHE_LIST, CLUSTER_FILES, FileSpec, phone_file_specs
from scanner.core.profile import Cluster, Profile, TftpNode, Transport
from scanner.core.ratelimit import Limits, NodeHealth, TokenBucket
from scanner.core.trustlist import header_length
from scanner.core.tvs_targets import Scope, config_signed_by, scope_of
from scanner.store.evidence import EvidenceReader, EvidenceWriter, write_discovery

__all__ = [
    "CLUSTER_FILES",
    "CollectionResult",
    "DryRun",
    "DryRunRow",
    "EvidenceListener",
    "FileJob",
    "Progress",
    "TvsJob",
    "WebJob",
    "collect",
    "dry_run",
    "phone_file_specs",
    "plan_jobs",
]

# The progress observer is called at most this often (and once at the end): a terminal redraw
# per file would cost more CPU than the file.
PROGRESS_INTERVAL = 0.1
# Rate-limited starts are released together on pacing ticks (``pacing_tick``): the longest
# tick, at most this long, whose starts per node stay within 3/4 of the token bucket's burst.
MAX_PACING_TICK = 0.1
PACING_SHARE_OF_BURST = 0.75
MAX_TVS_ADDRESSES = 256  # a cluster has at most a few dozen nodes; more is a hostile config
# Configs kept per allow-listed TVS address until their signatures can be checked: any one that
# verifies admits the address (a few, so memory stays bounded whatever the fleet).
CONFIGS_PER_CANDIDATE = 4


# ---------------------------------------------------------------------------------------------
# The plan (pure)


@dataclass(frozen=True, slots=True)
class FileJob:
    phone: str | None
    cluster: Cluster
    node: TftpNode
    spec: FileSpec


@dataclass(frozen=True, slots=True)
class WebJob:
    phone: Phone


@dataclass(frozen=True, slots=True)
class TvsJob:
    cluster: str | None
    name: str
    address: str
    port: int


Job = FileJob | WebJob | TvsJob


def cluster_jobs(profile: Profile) -> Iterator[FileJob]:
    """Every node's cluster-level files (its CTL and ITL)."""
    for cluster in profile.clusters:
        for node in cluster.tftp:
            for fname in CLUSTER_FILES:
                yield FileJob(None, cluster, node, FileSpec(fname))


def phone_jobs(profile: Profile, phone: Phone) -> Iterator[Job]:
    """One phone's jobs: every node's files for it, then its web pages."""
    for cluster in profile.clusters:
        specs = phone_file_specs(cluster, phone)
        for node in cluster.tftp:
            for spec in specs:
                yield FileJob(phone.name, cluster, node, spec)
    yield WebJob(phone)


def plan_jobs(profile: Profile, phones: Iterable[Phone]) -> Iterator[Job]:
    """Cluster-level files first, then per phone: every node's files, then its web pages."""
    yield from cluster_jobs(profile)
    for phone in phones:
        yield from phone_jobs(profile, phone)


def count_jobs(profile: Profile, phones: Sequence[Phone]) -> int:
    n = sum(len(c.tftp) * len(CLUSTER_FILES) for c in profile.clusters)
    for cluster in profile.clusters:
        per_phone = len(phone_file_specs(cluster, Phone("SEP000000000000")))
        n += per_phone * len(cluster.tftp) * len(phones)
    return n + len(phones)


@dataclass(frozen=True, slots=True)
class DryRunRow:
    cluster: str
    node: str
    address: str
    transport: str  # "tftp" / "http" / "web" / "tvs"
    requests: int  # at least (every primary answered)
    max_requests: int  # at most (every fallback and second transport used)
    min_seconds: float  # at the rate limit, ignoring latency


@dataclass(frozen=True, slots=True)
class DryRun:
    phones: int | None  # None: discovered at run time
    rows: tuple[DryRunRow, ...]

    @property
    def total(self) -> int:
        return sum(r.requests for r in self.rows)

    @property
    def total_max(self) -> int:
        return sum(r.max_requests for r in self.rows)


def dry_run(profile: Profile, phones: Sequence[Phone] | None) -> DryRun:
    """The requests a collection would send, per node and transport, without sending any."""
    rate = profile.limits.per_node_rate
    rows: list[DryRunRow] = []
    for cluster in profile.clusters:
        for node in cluster.tftp:
            names_min = len(CLUSTER_FILES)
            names_max = len(CLUSTER_FILES)
            if phones is None and cluster.name == "source":
                names_min += 1
                names_max += 1
            if phones is not None:
                specs = phone_file_specs(cluster, Phone("SEP000000000000"))
                names_min += len(specs) * len(phones)
                names_max += sum(2 if s.fallback else 1 for s in specs) * len(phones)
            t = cluster.transport
            address = node.address
            if t in (Transport.HTTP, Transport.HTTP_FIRST, Transport.BOTH):
                rows.append(
                    DryRunRow(
                        cluster.name,
                        node.name,
                        f"{address}:{node.http_port}",
                        "http",
                        names_min,
                        names_max,
                        0.0,
                    )
                )
            if t in (Transport.TFTP, Transport.HTTP_FIRST, Transport.BOTH):
                low = 0 if t is Transport.HTTP_FIRST else names_min
                rows.append(
                    DryRunRow(
                        cluster.name, node.name, f"{address}:{node.tftp_port}", "tftp", low, names_max, 0.0
                    )
                )
        for tvs in cluster.tvs:
            rows.append(DryRunRow(cluster.name, tvs.name, f"{tvs.address}:{tvs.port}", "tvs", 1, 1, 0.0))
    if phones is not None:
        with_ip = sum(1 for p in phones if p.ip)
        rows.append(DryRunRow("phones", "(each phone)", "-", "web", with_ip, with_ip * 5, 0.0))
    # Minimum time per node: its requests at the node's rate (both transports share the gate).
    per_node: Counter[tuple[str, str]] = Counter()
    for r in rows:
        if r.transport in ("http", "tftp"):
            per_node[(r.cluster, r.node)] += r.requests
    return DryRun(
        None if phones is None else len(phones),
        tuple(
            DryRunRow(
                r.cluster,
                r.node,
                r.address,
                r.transport,
                r.requests,
                r.max_requests,
                per_node[(r.cluster, r.node)] / rate if r.transport in ("http", "tftp") else 0.0,
            )
            for r in rows
        ),
    )


def _tvs_block(data: bytes) -> bytes | None:
    """The bytes from a config's first ``<TVS>`` to its ``</TVS>``, as CUCM writes them: the key of
    the collector's memo of TVS lists already decided (``_Collector._note_tvs``), never read for
    addresses. None when there is no such block (the config is then parsed every time)."""
    start = data.find(b"<TVS>")
    if start < 0:
        return None
    end = data.find(b"</TVS>", start)
    return None if end < 0 else data[start:end]


def tvs_addresses_in_config(name: str, data: bytes) -> tuple[tuple[str, int], ...]:
    """``(address, port)`` of each TVS member named by the config file ``name`` (a ``.cnf.xml``,
    or a ``.cnf.xml.sgn`` whose XML follows its signed header): ``scanner.core.devconfig``'s
    reading, the analysis's. A signed file whose header does not parse names none."""
    if name.lower().endswith(".sgn"):
        try:
            data = data[header_length(data) :]
        except ParseError:
            return ()
    return tvs_addresses(data)


# ---------------------------------------------------------------------------------------------
# Progress and results


@dataclass(frozen=True, slots=True)
class Progress:
    total: int  # jobs planned so far (grows when TVS addresses are discovered)
    done: int
    attempts: int  # manifest lines written
    failures: int  # jobs whose final answer was not ok / not_found
    elapsed: float
    finished: bool = False


Observer = Callable[[Progress], None]


class EvidenceListener(Protocol):
    """Told what the evidence on disk is complete for, as the collection goes on (the streaming
    analysis, ``scanner.app.streaming``). Every call comes after the manifest lines and blobs it
    speaks of were written out, so a reader of the directory finds them."""

    def clusters_ready(self) -> None:
        """Every cluster-level file and every TVS member of the profile has its answer."""

    def phones_done(self, names: Sequence[str]) -> None:
        """Every job of these phones has its answer."""


# Phones reported done in one call: one manifest flush and one message for this many phones
# (a phone is about 11 lines, the manifest's own flush comes every 256 lines).
DONE_BATCH = 24


@dataclass(frozen=True, slots=True)
class CollectionResult:
    out: Path
    phones: int
    attempts: int
    by_outcome: dict[str, int]
    mismatches: int
    dead_nodes: tuple[str, ...]
    duration: float
    inventory_issues: int = 0
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Fetched:
    transport: TransportKind
    outcome: Outcome
    data: bytes | None
    error: str | None
    duration: float
    address: str
    started: float


@dataclass(frozen=True, slots=True)
class _Shared:
    """The final answer of a cluster-level file fetch, reused by phones falling back to it."""

    outcome: Outcome
    size: int | None
    sha256: str | None
    blob: str | None
    transport: TransportKind
    address: str
    error: str | None


class _NodeGate:
    __slots__ = ("bucket", "health", "http_base", "slots", "tftp_address")

    def __init__(self, limits: Limits, node: TftpNode, now: float) -> None:
        self.slots = asyncio.Semaphore(limits.per_node_concurrency)
        self.bucket = TokenBucket(limits.per_node_rate, limits.per_node_burst, now)
        self.health = {
            t: NodeHealth(limits.dead_after, limits.dead_probe_interval)
            for t in (TransportKind.TFTP, TransportKind.HTTP)
        }
        # Formatted once per node, not once per file.
        self.http_base = f"http://{_host(node.address)}:{node.http_port}/"
        self.tftp_address = f"{node.address}:{node.tftp_port}"


def pacing_tick(limits: Limits) -> float:
    """Seconds between the release times of rate-limited starts.

    The token bucket allows ``per_node_burst`` requests at once; releasing the starts of a tick
    together wakes the event loop once for all of them, where a start per token would wake it
    for every request and every reply (the loop's own cost per wake-up then dominates the CPU
    per file: measured, 10 ms ticks cost a third more CPU per file than 100 ms ticks). Three
    quarters of the burst per tick keeps the bunches inside what the bucket, and so the
    politeness policy, already allows: at the defaults (500/s, burst 64) a tick of 96 ms
    releases 48 starts per node, then nothing until the next tick; the rate is unchanged.
    """
    share = PACING_SHARE_OF_BURST * limits.per_node_burst / limits.per_node_rate
    return min(MAX_PACING_TICK, max(0.001, share))


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


# ---------------------------------------------------------------------------------------------
# The collector


class _Collector:
    def __init__(
        self,
        profile: Profile,
        writer: EvidenceWriter,
        limits: Limits,
        observer: Observer | None,
        ca_bundle: str | None,
        listener: EvidenceListener | None = None,
    ) -> None:
        self.profile = profile
        self.listener = listener
        # What the listener waits for: jobs before the clusters are ready, jobs left per phone,
        # and the phones done since it was last told (see ``_tell``).
        self.before_ready: set[int] = set()
        self.jobs_left: dict[str, int] = {}
        self.phones_finished: list[str] = []
        self.writer = writer
        self.limits = limits
        self.observer = observer
        self.ca_bundle = ca_bundle
        self.loop = asyncio.get_running_loop()
        self.pacing_tick = pacing_tick(limits)
        self.gates: dict[tuple[str, str], _NodeGate] = {}
        self.shared: dict[tuple[str, str, str], asyncio.Future[_Shared]] = {}
        self.tvs_seen: dict[tuple[str, int], TvsJob] = {}  # what will be probed
        self.tvs_candidates: dict[tuple[str, int], list[tuple[str, bytes, bytes | None]]] = {}
        self.tvs_over_cap = 0  # addresses not considered: past MAX_TVS_ADDRESSES
        self.tvs_outside: dict[tuple[str, int], str] = {}  # never contacted, and why
        self.tvs_done: set[tuple[str, int]] = set()  # probed (in this run or the one resumed)
        self.source_lists: dict[tuple[str, str], bytes] = {}  # source CTL/ITL bytes, for config signatures
        # A config's <TVS> block, as bytes -> configs kept for it (-1: none needed); see _note_tvs.
        self.tvs_lists: dict[bytes, int] = {}
        self.resume: ResumePoint | None = None
        self.cache_lists: list[tuple[str, bytes]] = []  # (node, ConfigFileCacheList.txt)
        self.outcomes: Counter[str] = Counter()
        self.mismatches = 0
        self.total = 0
        self.done = 0
        self.failures = 0
        self.t0 = time.monotonic()
        self._last_progress = 0.0
        self.web_slots = asyncio.Semaphore(limits.web_concurrency)
        self.tvs_slots = asyncio.Semaphore(limits.tvs_concurrency)
        from scanner.net.http_fetch import HttpFetcher, HttpSettings

        self.http = HttpFetcher(
            HttpSettings(
                total_connections=max(limits.workers, limits.per_node_concurrency),
                per_host=limits.per_node_concurrency,
                connect_timeout=limits.http_connect_timeout,
                timeout=limits.http_timeout,
                max_size=limits.max_file_size,
                ca_bundle=ca_bundle,
            )
        )
        from scanner.net.tftp_io import TftpSocketPool

        # TFTP client sockets reused across clean transfers (scanner.net.tftp_io explains why
        # that is safe); closed with the collector.
        self.tftp_pool = TftpSocketPool()
        # Phones: self-signed certificates, one connection per phone is all we use.
        self.web = HttpFetcher(
            HttpSettings(
                total_connections=limits.web_concurrency,
                per_host=1,
                connect_timeout=min(limits.http_connect_timeout, limits.web_timeout),
                timeout=limits.web_timeout,
                max_size=limits.max_page_size,
                verify=False,
            )
        )
        for cluster in profile.clusters:
            for node in cluster.tftp:
                self.gates[(cluster.name, node.name)] = _NodeGate(limits, node, self.loop.time())
            for tvs in cluster.tvs:
                self.tvs_seen.setdefault(
                    (tvs.address, tvs.port), TvsJob(cluster.name, tvs.name, tvs.address, tvs.port)
                )
        # The profile's TVS members: probed with the cluster files, before the phones, so that
        # a phone can be judged as soon as its own files are in (the streaming analysis).
        self.profile_tvs = frozenset(self.tvs_seen)

    def profile_tvs_jobs(self) -> list[TvsJob]:
        return [j for key, j in self.tvs_seen.items() if key in self.profile_tvs and key not in self.tvs_done]

    # -- resume --------------------------------------------------------------------------------

    def adopt(self, point: ResumePoint) -> None:
        """Take over what an unfinished run already answered (``scanner.app.resume``): its jobs are
        not asked again, its cluster-level files are reused by phones falling back to them, and
        its source configs and lists still decide which TVS addresses may be probed."""
        self.resume = point
        self.kept_reader = EvidenceReader(self.writer.root)
        for (cluster, node, name), a in point.shared.items():
            fut: asyncio.Future[_Shared] = self.loop.create_future()
            fut.set_result(_Shared(
                a.outcome, a.size, a.sha256, a.blob, TransportKind(a.transport), a.address or "", a.error
            ))
            self.shared[(cluster, node, name)] = fut
        self.tvs_done = set(point.done_tvs)
        self.outcomes.update(a.outcome.value for a in point.kept)
        clusters = {c.name: c for c in self.profile.clusters}
        for a in point.kept:
            if a.outcome is not Outcome.OK or a.blob is None or a.cluster != "source":
                continue
            if a.phone is None and a.file in (*CLUSTER_FILES, CACHE_LIST):
                data = self._kept_blob(a)
                if data is None:
                    continue
                if a.file == CACHE_LIST:
                    self.cache_lists.append((a.node or "", data))
                else:
                    self.source_lists[(a.node or "", a.file)] = data
            elif a.phone is not None and ".cnf.xml" in a.file:
                data = self._kept_blob(a)
                if data is not None:
                    digest = bytes.fromhex(a.signed_digest.split(":", 1)[1]) if a.signed_digest else None
                    self._note_tvs(clusters["source"], a.file, data, digest)

    def _kept_blob(self, a: Attempt) -> bytes | None:
        with contextlib.suppress(OSError, ValueError, ParseError):
            return self.kept_reader.blob(a.blob or "")
        return None  # damaged: the analysis will say so for the file; no TVS candidate from it

    def pending(self, job: Job) -> bool:
        """False for a job the resumed run already answered (counted as done for the progress)."""
        point = self.resume
        if point is None:
            return True
        if isinstance(job, FileJob):
            done = (job.phone, job.cluster.name, job.node.name, job.spec.primary) in point.done_files
        elif isinstance(job, WebJob):
            done = job.phone.name in point.done_web
        else:
            done = (job.address, job.port) in point.done_tvs
        if done:
            self.done += 1
        return not done

    # -- progress ------------------------------------------------------------------------------

    def _progress(self, finished: bool = False) -> None:
        if self.observer is None:
            return
        now = time.monotonic()
        if not finished and now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        self.observer(
            Progress(self.total, self.done, self.writer.attempts, self.failures, now - self.t0, finished)
        )

    def _job_done(self, final: Outcome) -> None:
        self.done += 1
        if final not in (Outcome.OK, Outcome.NOT_FOUND, Outcome.SKIPPED):
            self.failures += 1
        self._progress()

    # -- recording -----------------------------------------------------------------------------

    def _record(self, attempt: Attempt) -> None:
        self.outcomes[attempt.outcome.value] += 1
        self.writer.record(attempt)

    def _record_fetch(
        self, phone: str | None, cluster: str, node: str, name: str, f: _Fetched, mismatch: str | None = None
    ) -> tuple[str | None, str | None]:
        sha = blob = signed = None
        size = None
        redacted = False
        if f.outcome is Outcome.OK and f.data is not None:
            data = f.data
            size = len(data)
            sha = hashlib.sha256(data).hexdigest()
            stored = prepare_for_storage(name, data)
            redacted = stored.redacted
            signed = stored.signed_digest
            blob = self.writer.store(stored.data, sha256=None if redacted else sha)
        error = f.error
        if mismatch is not None:
            error = f"{error}; {mismatch}" if error else mismatch
        self._record(
            Attempt(
                phone=phone,
                cluster=cluster,
                node=node,
                transport=f.transport.value,
                file=name,
                outcome=f.outcome,
                size=size,
                sha256=sha,
                duration=round(f.duration, 6),
                error=error,
                address=f.address,
                blob=blob,
                redacted=redacted,
                signed_digest=signed,
                started=f.started,
            )
        )
        return sha, blob

    # -- network attempts ----------------------------------------------------------------------

    async def _attempt(
        self, cluster: Cluster, node: TftpNode, name: str, transport: TransportKind
    ) -> _Fetched:
        gate = self.gates[(cluster.name, node.name)]
        health = gate.health[transport]
        address = gate.http_base + name if transport is TransportKind.HTTP else gate.tftp_address
        loop = self.loop
        async with gate.slots:
            # Checked with the slot held: jobs queued behind a dying node's slots must see the
            # verdict reached while they waited.
            started = time.time()
            if not health.should_attempt(loop.time()):
                return _Fetched(
                    transport,
                    Outcome.TIMEOUT,
                    None,
                    f"not sent: node {node.name} {transport.value} considered down after "
                    f"{health.consecutive_timeouts} consecutive timeouts (probing every "
                    f"{self.limits.dead_probe_interval:g} s)",
                    0.0,
                    address,
                    started,
                )
            now = loop.time()
            wait = gate.bucket.reserve(now)
            if wait > 0:
                # Rounded up to the next pacing tick: the starts of one tick wake together, so a
                # rate-limited scan handles many transfers per loop wake-up instead of one or two
                # (half the CPU per file). Never earlier than the bucket allows: same rate.
                tick = self.pacing_tick
                await asyncio.sleep(math.ceil((now + wait) / tick) * tick - now)
            t = time.monotonic()
            # The hard ceiling per attempt: the transports bound themselves, this catches what
            # they miss.
            ceiling = asyncio.timeout(self.limits.job_timeout)
            try:
                async with ceiling:
                    outcome, data, error = await self._send(node, name, transport, address)
            except TimeoutError:  # an OSError subclass: caught first
                if ceiling.expired():
                    error = f"no result within {self.limits.job_timeout:g} s"
                else:
                    error = "timed out"
                outcome, data = Outcome.TIMEOUT, None
            except OSError as exc:  # local failure: name resolution, socket creation (EMFILE)
                outcome, data, error = Outcome.REFUSED, None, f"local error: {exc}"
            except Exception:
                # A bug in one transport's code is that attempt's answer, on record with its
                # trace and its own transport; the file's other transport is still tried.
                outcome, data, error = Outcome.BUG, None, traceback.format_exc()
            duration = time.monotonic() - t
        health.record(outcome is Outcome.TIMEOUT, loop.time())
        return _Fetched(transport, outcome, data, error, duration, address, started)

    async def _send(
        self, node: TftpNode, name: str, transport: TransportKind, address: str
    ) -> tuple[Outcome, bytes | None, str | None]:
        """One request by one transport: its outcome, the file, the error."""
        if transport is TransportKind.HTTP:
            r = await self.http.get(address)
            outcome, data, error, announced = r.outcome, r.data, r.error, r.expected_size
        else:
            outcome, data, error, announced = await self._tftp(node, name)
        if outcome is Outcome.OK and data is not None:
            # A file is ok only if it is the file that was asked for (scanner.core.content_check):
            # the announced size, the kind its name says, a signed file naming itself.
            wrong = check_fetched(name, data, expected_size=announced)
            if wrong is not None:
                outcome, data, error = Outcome.PROTOCOL_ERROR, None, f"not the file asked for: {wrong}"
        return outcome, data, error

    async def _tftp(self, node: TftpNode, name: str) -> tuple[Outcome, bytes | None, str | None, int | None]:
        from scanner.net.tftp_io import tftp_fetch

        lim = self.limits
        r = await tftp_fetch(
            node.address,
            node.tftp_port,
            name,
            blksize=lim.tftp_blksize,
            windowsize=lim.tftp_windowsize,
            timeout=lim.tftp_timeout,
            retries=lim.tftp_retries,
            max_size=lim.max_file_size,
            pool=self.tftp_pool,
        )
        return r.outcome, (r.data if r.outcome is Outcome.OK else None), (r.message or None), r.expected_size

    async def _fetch(self, phone: str | None, cluster: Cluster, node: TftpNode, name: str) -> _Fetched:
        """One file by the cluster's transport policy; every attempt recorded; the final answer."""
        t = cluster.transport
        if t is Transport.TFTP:
            f = await self._attempt(cluster, node, name, TransportKind.TFTP)
        elif t is Transport.HTTP:
            f = await self._attempt(cluster, node, name, TransportKind.HTTP)
        elif t is Transport.HTTP_FIRST:
            h = await self._attempt(cluster, node, name, TransportKind.HTTP)
            if h.outcome in (Outcome.OK, Outcome.NOT_FOUND):
                f = h
            else:
                # Phones fall back to TFTP when 6970 gives no answer; so do we.
                self._record_fetch(phone, cluster.name, node.name, name, h)
                f = await self._attempt(cluster, node, name, TransportKind.TFTP)
        else:  # both
            h, f = await asyncio.gather(
                self._attempt(cluster, node, name, TransportKind.HTTP),
                self._attempt(cluster, node, name, TransportKind.TFTP),
            )
            mismatch = None
            if h.outcome is Outcome.OK and f.outcome is Outcome.OK and h.data != f.data:
                self.mismatches += 1
                hs = hashlib.sha256(h.data or b"").hexdigest()
                mismatch = f"{Code.NODE_MISMATCH}: HTTP 6970 served different bytes (sha256 {hs})"
            elif h.outcome is not f.outcome and Outcome.OK in (h.outcome, f.outcome):
                mismatch = f"{Code.NODE_MISMATCH}: HTTP said {h.outcome.value}, TFTP said {f.outcome.value}"
                self.mismatches += 1
            self._record_fetch(phone, cluster.name, node.name, name, h)
            self._record_fetch(phone, cluster.name, node.name, name, f, mismatch)
            # The final answer: TFTP's, unless only HTTP got the file.
            return h if h.outcome is Outcome.OK and f.outcome is not Outcome.OK else f
        return f

    async def _shared_fetch(self, cluster: Cluster, node: TftpNode, name: str) -> _Shared:
        """A cluster-level file: fetched once (recorded with phone null), reused by everyone."""
        key = (cluster.name, node.name, name)
        fut = self.shared.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = self.loop.create_future()
        self.shared[key] = fut
        try:
            f = await self._fetch(None, cluster, node, name)
            if cluster.transport is Transport.BOTH:
                sha = hashlib.sha256(f.data).hexdigest() if f.data is not None else None
                blob = None if sha is None else self._blob_for(name, f.data)
            else:
                sha, blob = self._record_fetch(None, cluster.name, node.name, name, f)
            if f.outcome is Outcome.OK and f.data is not None and name == CACHE_LIST:
                self.cache_lists.append((node.name, f.data))
            if f.outcome is Outcome.OK and f.data is not None and cluster.name == "source" and name in CLUSTER_FILES:
                self.source_lists[(node.name, name)] = f.data
            result = _Shared(
                f.outcome, None if f.data is None else len(f.data), sha, blob, f.transport, f.address, f.error
            )
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters get it through shield
            raise
        fut.set_result(result)
        return result

    def _blob_for(self, name: str, data: bytes | None) -> str | None:
        if data is None:
            return None
        stored = prepare_for_storage(name, data)
        return self.writer.store(stored.data)

    # -- jobs ----------------------------------------------------------------------------------

    async def run_job(self, job: Job) -> None:
        try:
            if isinstance(job, FileJob):
                final = await self._file_job(job)
            elif isinstance(job, WebJob):
                final = await self._web_job(job)
            else:
                final = await self._tvs_job(job)
        except Exception:
            # Errors become data here: the scan goes on, the bug is on record with its trace.
            final = Outcome.BUG
            self._record(self._bug_attempt(job, traceback.format_exc()))
        self._job_done(final)
        if self.listener is not None:
            self._tell(job)

    # -- the listener --------------------------------------------------------------------------

    def tracked_ready(self, jobs: Iterable[Job]) -> Iterator[Job]:
        """``jobs`` (the pending cluster files and profile TVS probes), counted for the listener:
        the clusters are ready when the last of them is answered."""
        if self.listener is None:
            yield from jobs
            return
        pending = list(jobs)
        self.before_ready = {id(job) for job in pending}
        if not pending:
            self._ready()
        yield from pending

    def tracked_phones(self, phones: Iterable[Phone]) -> Iterator[Job]:
        """Every phone's pending jobs, counted per phone for the listener."""
        for phone in phones:
            pending = [job for job in phone_jobs(self.profile, phone) if self.pending(job)]
            if not pending:
                continue
            if self.listener is not None:
                self.jobs_left[phone.name] = len(pending)
            yield from pending

    def _ready(self) -> None:
        assert self.listener is not None
        self.writer.flush()
        self.listener.clusters_ready()

    def _tell(self, job: Job) -> None:
        assert self.listener is not None
        phone = job.phone.name if isinstance(job, WebJob) else getattr(job, "phone", None)
        if phone is None:
            if id(job) in self.before_ready:
                self.before_ready.discard(id(job))
                if not self.before_ready:
                    self._ready()
            return
        left = self.jobs_left.get(phone)
        if left is None:
            return
        if left > 1:
            self.jobs_left[phone] = left - 1
            return
        del self.jobs_left[phone]
        self.phones_finished.append(phone)
        if len(self.phones_finished) >= DONE_BATCH:
            self.tell_done()

    def tell_done(self) -> None:
        """Tell the listener the phones done since it was last told (their lines written first)."""
        if self.listener is None or not self.phones_finished:
            return
        self.writer.flush()
        names, self.phones_finished = self.phones_finished, []
        self.listener.phones_done(names)

    def _bug_attempt(self, job: Job, trace: str) -> Attempt:
        """The manifest line of a job that raised: who and what it was about, outcome ``bug``."""
        address = None
        who: tuple[str | None, str | None, str | None, str, str]
        if isinstance(job, FileJob):
            who = (job.phone, job.cluster.name, job.node.name, TransportKind.TFTP.value, job.spec.primary)
        elif isinstance(job, WebJob):
            who = (job.phone.name, None, job.phone.ip, TransportKind.WEB.value, "network-setup")
        else:
            who = (None, job.cluster, job.name, TransportKind.TVS.value, "server-certificate")
            address = f"{job.address}:{job.port}"
        phone, cluster, node, transport, name = who
        return Attempt(
            phone=phone, cluster=cluster, node=node, transport=transport, file=name, outcome=Outcome.BUG,
            size=None, sha256=None, duration=0.0, error=trace, address=address, started=time.time(),
        )

    async def _file_job(self, job: FileJob) -> Outcome:
        cluster, node, spec = job.cluster, job.node, job.spec
        if job.phone is None:
            return (await self._shared_fetch(cluster, node, spec.primary)).outcome
        f = await self._fetch(job.phone, cluster, node, spec.primary)
        if cluster.transport is not Transport.BOTH:
            self._record_fetch(job.phone, cluster.name, node.name, spec.primary, f)
        if f.outcome is Outcome.OK and cluster.name == "source" and ".cnf.xml" in spec.primary and f.data:
            self._note_tvs(cluster, spec.primary, f.data)
        if f.outcome is not Outcome.NOT_FOUND or spec.fallback is None:
            return f.outcome
        if spec.fallback in CLUSTER_FILES:
            s = await self._shared_fetch(cluster, node, spec.fallback)
            note = "shared: the cluster-level fetch of this node's file (phone=null line) answered"
            self._record(
                Attempt(
                    phone=job.phone,
                    cluster=cluster.name,
                    node=node.name,
                    transport=s.transport.value,
                    file=spec.fallback,
                    outcome=s.outcome,
                    size=s.size,
                    sha256=s.sha256,
                    duration=0.0,
                    error=f"{note}; {s.error}" if s.error else note,
                    address=s.address,
                    blob=s.blob,
                    started=time.time(),
                )
            )
            return s.outcome
        f = await self._fetch(job.phone, cluster, node, spec.fallback)
        if cluster.transport is not Transport.BOTH:
            self._record_fetch(job.phone, cluster.name, node.name, spec.fallback, f)
        if f.outcome is Outcome.OK and cluster.name == "source" and f.data:
            self._note_tvs(cluster, spec.fallback, f.data)
        return f.outcome

    def _note_tvs(
        self, cluster: Cluster, name: str, data: bytes, signed_digest: bytes | None = None
    ) -> None:
        """TVS members named by a source config: candidates, never targets by themselves
        (``scanner.core.tvs_targets``: only the profile's members and, from correctly signed configs,
        its allow-list are contacted)."""
        # Phones of one device pool share the list: it is read and scoped once, and the configs
        # that repeat it byte for byte are not parsed again. A list naming an allowed address is
        # looked at for a few more configs, so that one unsigned or badly signed config that
        # happened to come first does not decide for every phone that names it.
        # Why the memo: reading a config's TVS members parses the whole config (~0.4 ms for 5 KB),
        # a third of the files of a source node. Measured (bench_collect.py --phones 2000, local,
        # TFTP, median of 3): 526 µs CPU per file and 3.34 s wall without it, 345 µs and 2.96 s
        # (the rate limit's floor) with it; the CPU makes a 2,000-files/s scan CPU-bound.
        block = _tvs_block(data)
        seen = None if block is None else self.tvs_lists.get(block)
        if seen is not None and (seen < 0 or seen >= CONFIGS_PER_CANDIDATE):
            return
        members = tvs_addresses_in_config(name, data)
        if not members:
            return
        allowed = False
        for key in members:
            address, port = key
            if key in self.tvs_seen:
                continue
            if key not in self.tvs_candidates and key not in self.tvs_outside and (
                len(self.tvs_candidates) + len(self.tvs_outside) >= MAX_TVS_ADDRESSES
            ):
                self.tvs_over_cap += 1  # a cluster has a few dozen nodes; more is a hostile config
                continue
            scope = scope_of(cluster, address, port)
            if scope is Scope.ALLOWED:
                # Kept until the source lists are in, to check the configs' signatures.
                allowed = True
                configs = self.tvs_candidates.setdefault(key, [])
                if len(configs) < CONFIGS_PER_CANDIDATE:
                    configs.append((name, data, signed_digest))
            elif scope is Scope.OUTSIDE:
                self.tvs_outside.setdefault(key, f"not a TVS member of the profile nor in tvs_allow; named by {name}")
            # Scope.MEMBER with another spelling of a profile address: the profile's job probes it.
        if block is not None:
            self.tvs_lists[block] = (0 if seen is None else seen) + 1 if allowed else -1

    def plan_tvs(self) -> list[TvsJob]:
        """The TVS jobs still to run: the profile's members not yet probed (they run first, with
        the cluster files), then allowed candidates whose config verified. Every address refused
        is recorded (outcome ``skipped``) and never contacted."""
        jobs = [j for key, j in self.tvs_seen.items() if key not in self.tvs_done]
        lists = list(self.source_lists.values())
        for (address, port), configs in self.tvs_candidates.items():
            why: str | None = "no config"
            for name, data, digest in configs:
                reason = config_signed_by(name, data, lists, signed_digest=digest)
                if reason is None:
                    why = None
                    break
                if why == "no config":
                    why = f"in tvs_allow, but named only by configs such as {name}, whose {reason}"
            if why is None:
                job = TvsJob("source", address, address, port)
                self.tvs_seen[(address, port)] = job
                if (address, port) not in self.tvs_done:
                    jobs.append(job)
            else:
                self.tvs_outside[(address, port)] = why
        for (address, port), why in self.tvs_outside.items():
            if (address, port) in self.tvs_done:
                continue
            self._record(Attempt(
                phone=None, cluster="source", node=address, transport=TransportKind.TVS.value,
                file="server-certificate", outcome=Outcome.SKIPPED, size=None, sha256=None, duration=0.0,
                error=f"never contacted: {why}", address=f"{_host(address)}:{port}", started=time.time(),
            ))
        return jobs

    async def _web_job(self, job: WebJob) -> Outcome:
        from scanner.net.phone_web import PAGES, SECURITY_PAGE, fetch_phone_pages, phone_url

        phone = job.phone
        scheme, port = self.profile.phones.web_scheme, self.profile.phones.web_port
        if phone.ip is None:
            for spec in PAGES:
                self._record(
                    Attempt(
                        phone=phone.name,
                        cluster=None,
                        node=None,
                        transport=TransportKind.WEB.value,
                        file=spec.name,
                        outcome=Outcome.SKIPPED,
                        size=None,
                        sha256=None,
                        duration=0.0,
                        error=phone.no_address or "no IP address for this phone in the inventory",
                        started=time.time(),
                    )
                )
            return Outcome.SKIPPED
        started = time.time()
        async with self.web_slots:
            pages = await fetch_phone_pages(
                self.web,
                scheme,
                phone.ip,
                port,
                timeout=self.limits.web_timeout,
                max_size=self.limits.max_page_size,
            )
        final = Outcome.OK
        for p in pages:
            sha = blob = None
            size = None
            if p.data is not None:
                size = len(p.data)
                sha = hashlib.sha256(p.data).hexdigest()
                blob = self.writer.store(p.data, sha256=sha)
            self._record(
                Attempt(
                    phone=phone.name,
                    cluster=None,
                    node=phone.ip,
                    transport=TransportKind.WEB.value,
                    file=p.page,
                    outcome=p.outcome,
                    size=size,
                    sha256=sha,
                    duration=round(p.duration, 6),
                    error=p.error,
                    address=p.url or phone_url(scheme, phone.ip, port, "/"),
                    blob=blob,
                    started=started,
                )
            )
            # The security page is optional (fetched only where the network page points at it),
            # so its absence is no failure of the phone's pages.
            if p.outcome is not Outcome.OK and final is Outcome.OK and p.page != SECURITY_PAGE.name:
                final = p.outcome
        return final

    async def _tvs_job(self, job: TvsJob) -> Outcome:
        from scanner.net.tvs_probe import probe_tvs

        self.tvs_done.add((job.address, job.port))  # planned once: the end's plan_tvs skips it
        started = time.time()
        async with self.tvs_slots:
            r = await probe_tvs(job.address, job.port, timeout=self.limits.tvs_timeout)
        sha = blob = None
        if r.certificate is not None:
            sha = hashlib.sha256(r.certificate).hexdigest()
            blob = self.writer.store(r.certificate, sha256=sha)
        detail = [f"{k}={v}" for k, v in (("tls", r.tls_version), ("cipher", r.cipher)) if v]
        if r.client_cert_requested:
            detail.append("client certificate requested")
        if r.error:
            detail.append(r.error)
        self._record(
            Attempt(
                phone=None,
                cluster=job.cluster,
                node=job.name,
                transport=TransportKind.TVS.value,
                file="server-certificate",
                outcome=r.outcome,
                size=None if r.certificate is None else len(r.certificate),
                sha256=sha,
                duration=round(r.duration, 6),
                error="; ".join(detail) or None,
                address=f"{job.address}:{job.port}",
                blob=blob,
                started=started,
            )
        )
        return r.outcome

    # -- the pool ------------------------------------------------------------------------------

    async def run_pool(self, jobs: Iterable[Job]) -> None:
        # The workers share one iterator over the (lazy) plan: each takes the next job when it is
        # free. Nothing is planned ahead, so memory is flat however large the fleet, and no queue
        # or feeder task costs a put and a get per job. Safe on one event loop: ``next`` runs to
        # completion between awaits, and the plan generators never await.
        plan = iter(jobs)

        async def worker() -> None:
            for job in plan:
                await self.run_job(job)

        async with asyncio.TaskGroup() as tg:
            for _ in range(self.limits.workers):
                tg.create_task(worker())

    def dead_nodes(self) -> tuple[str, ...]:
        return tuple(
            f"{c}/{n}/{t.value}" for (c, n), g in self.gates.items() for t, h in g.health.items() if h.dead
        )


async def collect(
    profile: Profile,
    out: str | Path,
    *,
    inventory: Inventory | None = None,
    inventory_path: str | Path | None = None,
    inventory_sha256: str | None = None,
    limits: Limits | None = None,
    observer: Observer | None = None,
    ca_bundle: str | None = None,
    resume: ResumePoint | None = None,
    discovery: Mapping[str, Any] | None = None,
    listener: EvidenceListener | None = None,
) -> CollectionResult:
    """Collect the evidence into ``out`` (a new or empty directory, or with ``resume`` the
    directory of an unfinished run, whose finished attempts it keeps). Never raises for what the
    network does; raises ``FileExistsError`` if ``out`` already holds evidence and this is not a
    resume.

    ``collection.json`` is written at the start (state ``running``), again once the phones are
    known (with the plan), and at the end: ``complete``, or ``interrupted`` with the reason. A run
    killed without warning leaves ``running``: the analysis then knows it never finished.

    ``discovery`` is the record of the AXL/RisPort70 discovery that produced ``profile``'s nodes
    and ``inventory`` (``scanner.app.discover``): it is kept as ``discovery.json`` beside the
    manifest, so that ``--from`` and ``--resume`` judge the same phones and nodes.

    ``listener`` is told when the clusters' own evidence is in and as each phone's jobs are all
    answered (``EvidenceListener``): the streaming analysis decides phones while the rest goes on."""
    lim = limits if limits is not None else profile.limits
    started_wall = time.time()
    t0 = time.monotonic()
    writer = EvidenceWriter(out, resume_keep=None if resume is None else resume.keep)
    c = _Collector(profile, writer, lim, observer, ca_bundle, listener)
    phones: Sequence[Phone] = ()
    plan: dict[str, Any] | None = None
    discovery_issues: list[str] = []
    state = "running"
    interrupted: str | None = None

    def summary() -> dict[str, Any]:
        return {
            "tool": "trustscan",
            "tool_version": __version__,
            "state": state,
            "interrupted": interrupted,
            "started": started_wall if resume is None else resume.started,
            "resumed": None if resume is None else [*resume.resumed, started_wall],
            "finished": None if state == "running" else time.time(),
            "duration": round(time.monotonic() - t0, 3),
            "profile": profile.snapshot(),
            "inventory": None
            if inventory is None
            else {
                "path": None if inventory_path is None else str(inventory_path),
                "sha256": inventory_sha256,
                "phones": len(inventory.phones),
                "issues": [str(e) for e in inventory.issues],
            },
            "discovered": inventory is None,
            "discovery_issues": discovery_issues,
            "cluster_discovery": None if discovery is None else discovery["clusters"],
            "limits": _limits_dict(lim),
            "plan": plan,
            "counts": {
                "phones": len(phones),
                "jobs": c.done,
                "attempts": writer.attempts,
                "by_outcome": dict(sorted(c.outcomes.items())),
                "blobs": writer.blobs_written,
                "blob_bytes": writer.blob_bytes,
                "node_mismatches": c.mismatches,
                "tvs_addresses": len(c.tvs_seen),
                "tvs_not_contacted": len(c.tvs_outside),
                "tvs_over_cap": c.tvs_over_cap,
                # Datagrams from a host or port no transfer of ours was talking to (ignored).
                "tftp_strays": c.tftp_pool.strays,
            },
            "dead_nodes": list(c.dead_nodes()),
        }

    try:
        if discovery is not None and resume is None:
            write_discovery(out, dict(discovery))
        writer.checkpoint(summary())
        if resume is not None:
            c.adopt(resume)
        async with c.http, c.web, c.tftp_pool:
            if inventory is not None:
                phones = inventory.phones
            elif resume is not None and resume.phones is not None:
                phones = [Phone(n) for n in resume.phones]
            else:
                # Discovery (no inventory): each source node's ConfigFileCacheList.txt.
                src = profile.source
                c.total = len(src.tftp)
                await c.run_pool(
                    job for job in (FileJob(None, src, n, FileSpec(CACHE_LIST)) for n in src.tftp)
                    if c.pending(job)
                )
                lists = [read_config_cache_list(d, path=f"{node}:{CACHE_LIST}") for node, d in c.cache_lists]
                phones = merge_discovered(found.names for found in lists)
                discovery_issues = [str(issue) for found in lists for issue in found.issues]
            plan = plan_summary(profile, phones, discovered=inventory is None)
            writer.checkpoint(summary())
            tvs_first = c.profile_tvs_jobs()
            first: list[Job] = [*cluster_jobs(profile), *tvs_first]
            c.total += count_jobs(profile, phones) + len(tvs_first)
            c._progress()
            await c.run_pool(itertools.chain(
                c.tracked_ready(job for job in first if c.pending(job)),
                c.tracked_phones(phones),
            ))
            c.tell_done()
            tvs_jobs = c.plan_tvs()
            c.total += len(tvs_jobs)
            await c.run_pool(tvs_jobs)
            c._progress(finished=True)
        state = "complete"
    except BaseException as exc:
        state = "interrupted"
        interrupted = _interruption(exc)
        raise
    finally:
        writer.close(summary())
    duration = time.monotonic() - t0
    return CollectionResult(
        Path(out),
        len(phones),
        writer.attempts,
        dict(c.outcomes),
        c.mismatches,
        c.dead_nodes(),
        duration,
        0 if inventory is None else len(inventory.issues),
        summary(),
    )


def _interruption(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "SIGINT (Ctrl-C)"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled (SIGINT, SIGTERM or the caller)"
    return f"{type(exc).__name__}: {exc}"


def plan_summary(profile: Profile, phones: Sequence[Phone], *, discovered: bool) -> dict[str, Any]:
    """What the run is about to ask for, recorded before it asks: the phones in scope (by name
    when they were discovered, since no inventory will say so later), and the files planned per
    phone and per node. ``scanner.app.assemble`` checks the manifest against it."""
    per_node: dict[str, int] = {}
    per_phone = 0
    for cluster in profile.clusters:
        specs = phone_file_specs(cluster, Phone("SEP000000000000"))
        per_phone += len(specs) * len(cluster.tftp)
        for node in cluster.tftp:
            per_node[f"{cluster.name}/{node.name}"] = len(CLUSTER_FILES) + len(specs) * len(phones)
    return {
        "phone_count": len(phones),
        "phones": [p.name for p in phones] if discovered else None,
        "files_per_phone": per_phone,
        "pages_per_phone": 1,
        "files_per_node": per_node,
        "tvs_members": [f"{t.address}:{t.port}" for c in profile.clusters for t in c.tvs],
        "jobs": count_jobs(profile, phones),
    }


def _limits_dict(lim: Limits) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(lim)
