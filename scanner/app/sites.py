"""Many sites, one answer: the phones of each ``[sites.NAME]`` collected by that site's Dask workers.

How a scan with ``--dask ADDR`` runs (docs/sites.md):

1. **Plan, before anything is sent** (``scanner.core.sites``): every phone goes to the one site
   that matches it or stays with the coordinator (two sites matching one phone is refused, naming
   both); each site's phones are cut into shards of at most ``shard_phones``.
2. **Ask the cluster**: the scheduler must answer (else ``SchedulerUnreachable``: nothing is
   written), every worker must run this trustscan version (else ``WorkerVersionRefused``, both
   versions named), and a site with phones but no worker is said up front.
3. **One Dask task per shard**, pinned with ``resources={"site-NAME": 1}``. It runs the same
   collector as a single machine (``scanner.app.collect.collect``) for its phones' per-phone files
   and pages, with the per-node limits split between the shards that run at once
   (``share_limits``: the coordinator never runs more shards of a site than the site had workers
   at start, so the sum holds). The worker's profile has no TVS members and no ``tvs_allow``: the
   probes are the coordinator's, once for the whole scan.
4. **Results come back in two steps**: the shard's manifest lines and the names of its blobs, then
   only the blobs the coordinator does not hold yet (content-addressed: a fleet's few distinct
   trust lists cross the wire once). Both steps run on the worker that holds the result.
5. **The coordinator finishes** with the same collector, resuming the evidence directory the
   shards filled (``scanner.app.resume``): the nodes' cluster-level lists, the phones no site
   matched, and the TVS probes, planned from every source config, the sites' included. The
   analysis and reports are then the ones ``scan`` writes for a single machine.

Faults. A worker that dies mid-shard: Dask runs the shard again on another worker of the site if
there is one. A site left with no worker for ``site_grace`` seconds (or with none from the start),
or a shard that fails (``KilledWorker``, a worker of another version): its phones get a manifest
line ``refused``, ``not sent: SITE_UNAVAILABLE: site NAME: reason``, for every planned file and
page, so they are UNKNOWN, never dropped, and ``--resume`` asks them again.

``distributed`` is imported only here and only when a scan uses it: the base install works without
the ``dask`` extra.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from scanner import __version__
from scanner.app.collect import CollectionResult, Observer, collect, plan_summary
from scanner.app.resume import ResumePoint, resume_point
from scanner.core.errors import ParseError
from scanner.core.evidence import Attempt, Outcome, TransportKind
from scanner.core.findings import Code
from scanner.core.inventory import Inventory, Phone
from scanner.core.plan import phone_file_specs
from scanner.core.profile import Profile
from scanner.core.ratelimit import Limits
from scanner.core.sites import (
    MAX_SHARD_PHONES,
    Assignment,
    Shard,
    assign,
    parallel_shards,
    plan_shards,
    share_limits,
    version_problems,
)
from scanner.store.atomicfile import write_atomic
from scanner.store.evidence import EvidenceReader, EvidenceWriter, write_discovery

__all__ = [
    "DaskOptions",
    "SchedulerUnreachable",
    "SitesError",
    "WorkerVersionRefused",
    "collect_sites",
    "dry_run_sites",
    "run_shard",
]

SITES_RECORD = "sites.json"  # beside the manifest: which site and worker collected which shard
# How often the coordinator looks at its shards and at the site workers: a shard takes seconds to
# minutes, so a fifth of a second costs nothing and notices a lost site promptly.
POLL_SECONDS = 0.2
# Fetching a finished shard's lines and blobs from its worker: a few MB on a WAN link.
FETCH_TIMEOUT = 120.0
# A shard whose results could not be fetched (its worker left between the two steps) is submitted
# again this many times in all before its phones are given up as SITE_UNAVAILABLE.
SHARD_TRIES = 3


class SitesError(Exception):
    """A ``--dask`` scan that cannot start: the reason names what to fix (CLI exit 64)."""


class SchedulerUnreachable(SitesError):
    """The scheduler did not answer: nothing was collected."""


class WorkerVersionRefused(SitesError):
    """A worker runs another trustscan version (both versions named)."""


@dataclass(frozen=True, slots=True)
class DaskOptions:
    address: str  # tcp://HOST:8786 or tls://HOST:8786
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    connect_timeout: float = 10.0
    shard_phones: int = MAX_SHARD_PHONES
    # A site with phones and no worker this long (at start, or after its last worker left): its
    # remaining shards are given up (their phones UNKNOWN, asked again by --resume).
    site_grace: float = 30.0

    def security(self) -> Any:
        """``distributed.security.Security`` from the three files, or None (plain TCP)."""
        files = {"--dask-tls-ca": self.tls_ca, "--dask-tls-cert": self.tls_cert, "--dask-tls-key": self.tls_key}
        given = {k: v for k, v in files.items() if v}
        tls = self.address.startswith("tls://")
        if not given and not tls:
            return None
        if len(given) != len(files):
            missing = ", ".join(k for k in files if k not in given)
            raise SitesError(f"TLS to the Dask scheduler needs the CA, certificate and key files: give {missing}")
        if not tls:
            raise SitesError(f"--dask {self.address}: with TLS files the address must start with tls://")
        for flag, path in given.items():
            if not Path(path).is_file():
                raise SitesError(f"{flag} {path}: no such file")
        from distributed.security import Security

        return Security(  # type: ignore[no-untyped-call]
            tls_ca_file=self.tls_ca, tls_client_cert=self.tls_cert, tls_client_key=self.tls_key,
            require_encryption=True,
        )


# ---------------------------------------------------------------------------------------------
# On the worker


@dataclass(frozen=True, slots=True)
class ShardTask:
    """Everything a worker needs for one shard (pickled to it)."""

    site: str
    index: int
    version: str  # the coordinator's trustscan version: a worker of another one refuses
    profile: Profile  # without TVS members or tvs_allow: the probes are the coordinator's
    phones: tuple[Phone, ...]
    limits: Limits  # this shard's share of the per-node limits
    ca_bundle: str | None = None
    # With --resume: what is already answered for these phones (asked again: the rest).
    done_files: frozenset[tuple[str | None, str, str, str]] = frozenset()
    done_web: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ShardOutput:
    """A finished shard, held on its worker until the coordinator took what it needs."""

    site: str
    index: int
    worker: str
    lines: tuple[bytes, ...]  # manifest lines of the shard's phones
    blobs: Mapping[str, bytes]  # every blob those lines name
    seconds: float
    by_outcome: Mapping[str, int]


def _worker_address() -> str:
    with contextlib.suppress(Exception):  # not on a worker (a direct call in a test)
        from distributed import get_worker

        return str(get_worker().address)
    return "local"


def _worker_version() -> str:
    return __version__


def run_shard(task: ShardTask) -> ShardOutput:
    """Collect one shard on this worker (in a worker thread: its own event loop) into a temporary
    evidence directory, and keep its phones' lines and blobs in memory for the coordinator."""
    if task.version != __version__:
        raise WorkerVersionRefused(
            f"worker {_worker_address()} runs trustscan {__version__}, the coordinator {task.version}"
        )
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f"trustscan-shard-{task.site}-{task.index}-"))
    try:
        resume = None
        if task.done_files or task.done_web:
            resume = ResumePoint(keep=(), done_files=task.done_files, done_web=task.done_web,
                                 done_tvs=frozenset(), shared={})
        asyncio.run(collect(task.profile, tmp / "evidence", inventory=Inventory(task.phones, ()),
                            limits=task.limits, ca_bundle=task.ca_bundle, resume=resume))
        reader = EvidenceReader(tmp / "evidence")
        lines: list[bytes] = []
        blobs: dict[str, bytes] = {}
        outcomes: collections.Counter[str] = collections.Counter()
        for a in reader.attempts():
            if a.phone is None:
                continue  # cluster-level files and TVS: the coordinator fetches its own, once
            lines.append(a.to_json())
            outcomes[a.outcome.value] += 1
            if a.blob is not None and a.blob not in blobs:
                with contextlib.suppress(OSError, ValueError, ParseError):
                    blobs[a.blob] = reader.blob(a.blob)  # a damaged one: the analysis will say so
        return ShardOutput(task.site, task.index, _worker_address(), tuple(lines), blobs,
                           round(time.monotonic() - t0, 3), dict(outcomes))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def shard_manifest(out: ShardOutput) -> tuple[tuple[bytes, ...], tuple[str, ...], dict[str, Any]]:
    """Step one of the way back: the lines, the names of the blobs, the figures (run where the
    shard's result is)."""
    meta = {"worker": out.worker, "seconds": out.seconds, "by_outcome": dict(out.by_outcome)}
    return out.lines, tuple(out.blobs), meta


def shard_blobs(out: ShardOutput, wanted: Sequence[str]) -> dict[str, bytes]:
    """Step two: only the blobs the coordinator asked for."""
    return {k: out.blobs[k] for k in wanted if k in out.blobs}


# ---------------------------------------------------------------------------------------------
# On the coordinator


@dataclass(slots=True)
class _ShardState:
    shard: Shard
    tries: int = 0
    future: Any = None
    state: str = "queued"  # queued / running / done / failed
    reason: str | None = None
    worker: str | None = None
    seconds: float | None = None
    lines: int = 0
    blobs_fetched: int = 0
    blob_bytes: int = 0


@dataclass(slots=True)
class _Merge:
    """What the coordinator holds: the blobs it has (by name) and the shard results written."""

    writer: EvidenceWriter
    known: set[str] = field(default_factory=set)


Note = Callable[[str], None]


async def dry_run_sites(profile: Profile, inventory: Inventory | None, options: DaskOptions,
                        limits: Limits | None = None) -> list[str]:
    """What a ``--dask`` collection would do, one line per site and one for the coordinator: the
    phones, the shards, the workers the scheduler knows for the site (a site without one is said
    so), the per-shard share of the node limits. Asks the scheduler only."""
    assignment, shards = _plan(profile, inventory, options)
    client = await _connect(options)
    try:
        workers = _by_site(profile, await _resources(client))
    finally:
        await client.close()
    lim = profile.limits if limits is None else limits
    parallel = parallel_shards(shards, {s: len(w) for s, w in workers.items()}, lim)
    part = share_limits(lim, parallel)
    lines: list[str] = []
    for site in profile.sites:
        phones = assignment.by_site[site.name]
        count = sum(1 for s in shards if s.site == site.name)
        found = workers[site.name]
        who = (f"{len(found)} worker{'s' if len(found) != 1 else ''} ({', '.join(found)})" if found else
               f"NO worker with resource {site.resource}: its phones would be UNKNOWN ({Code.SITE_UNAVAILABLE})"
               if phones else "no worker (none needed)")
        lines.append(f"dry run: site {site.name}: {len(phones)} phones in {count} shards; {who}")
    lines.append(
        f"dry run: coordinator: {len(assignment.central)} phones no site matches, the nodes' own lists and the "
        f"TVS probes; {parallel} shards at once, each at most {part.per_node_concurrency} in flight and "
        f"{part.per_node_rate:g}/s per node"
    )
    return lines


def _plan(profile: Profile, inventory: Inventory | None, options: DaskOptions) -> tuple[Assignment, tuple[Shard, ...]]:
    if not profile.sites:
        raise SitesError("--dask needs sites: the profile has no [sites.NAME] table (docs/sites.md)")
    if inventory is None:
        raise SitesError("--dask needs the phones up front: give --inventory (or AXL in the profile)")
    assignment = assign(profile.sites, inventory.phones)  # SiteConflict: before anything is sent
    return assignment, plan_shards(assignment, options.shard_phones)


async def collect_sites(
    profile: Profile,
    out: str | Path,
    options: DaskOptions,
    *,
    inventory: Inventory | None,
    inventory_path: str | Path | None = None,
    inventory_sha256: str | None = None,
    observer: Observer | None = None,
    ca_bundle: str | None = None,
    resume: ResumePoint | None = None,
    discovery: Mapping[str, Any] | None = None,
    note: Note | None = None,
    limits: Limits | None = None,
) -> CollectionResult:
    """Collect ``profile``'s phones into the evidence directory ``out``: each site's on its Dask
    workers, the rest here; then the shared files and TVS probes here. Raises ``SitesError``
    (``SchedulerUnreachable``, ``WorkerVersionRefused``) or ``ParseError`` (``SiteConflict``)
    before anything is written; what the network and the workers do later becomes data."""
    say = note or (lambda _m: None)
    root = Path(out)
    assignment, _ = _plan(profile, inventory, options)  # SitesError, SiteConflict: nothing sent yet
    assert inventory is not None  # (_plan refused a run without one)
    site_of = assignment.site_of()
    done_files, done_web = (frozenset(), frozenset()) if resume is None else (resume.done_files, resume.done_web)
    shards = plan_shards(_pending(profile, assignment, done_files, done_web), options.shard_phones)
    lim = profile.limits if limits is None else limits
    started = time.time()

    client = await _connect(options)
    try:
        await _check_versions(client)
        workers = _by_site(profile, await _resources(client))
        for site, phones in assignment.by_site.items():
            if phones and not workers[site]:
                say(f"warning: site {site}: {len(phones)} phones but no Dask worker with resource site-{site} "
                    f"(start one with --resources \"site-{site}=1\"); waiting {options.site_grace:g} s for one")
        parallel = parallel_shards(shards, {s: len(w) for s, w in workers.items()}, lim)
        shard_limits = share_limits(lim, parallel)
        say(f"sites: {len(shards)} shards over {len({s.site for s in shards})} sites, {parallel} at once, "
            f"{len(assignment.central)} phones here; per shard and node at most "
            f"{shard_limits.per_node_concurrency} in flight, {shard_limits.per_node_rate:g}/s")
        worker_profile = _without_tvs(profile)

        def task_for(s: Shard) -> ShardTask:
            names = {p.name for p in s.phones}
            return ShardTask(
                s.site, s.index, __version__, worker_profile, s.phones, shard_limits, ca_bundle,
                frozenset(k for k in done_files if k[0] in names), frozenset(n for n in done_web if n in names),
            )

        # Evidence: new, or the resumed directory with its definite answers kept.
        writer = EvidenceWriter(root, resume_keep=None if resume is None else resume.keep)
        merge = _Merge(writer)
        if resume is not None:
            merge.known.update(a.blob for a in resume.kept if a.blob)
        try:
            if resume is None:
                if discovery is not None:
                    write_discovery(root, dict(discovery))
                writer.checkpoint(_first_summary(profile, inventory, inventory_path, inventory_sha256, started))
            states = await _run_shards(client, shards, task_for, workers, options, merge, say, parallel)
            failed = [st for st in states if st.state == "failed"]
            if failed:
                _record_unavailable(writer, profile, failed, say)
        finally:
            writer.close()
    finally:
        await client.close()

    _write_record(root, states, assignment, parallel, shard_limits)
    # The coordinator's part: every site phone is taken as done (its answers, or its
    # SITE_UNAVAILABLE lines, are the site's); the rest is what a single machine does.
    point = _coordinator_point(root, profile, inventory, inventory_sha256, frozenset(site_of))
    # The coordinator's collector starts with a full token bucket: leaving burst/rate seconds after
    # the shards' last starts keeps any one-second window across the hand-over within the limits
    # (shards' share + the coordinator's burst <= per_node_burst + per_node_rate per second).
    if states:
        await asyncio.sleep(lim.per_node_burst / lim.per_node_rate)
    result = await collect(profile, root, inventory=inventory, inventory_path=inventory_path,
                           inventory_sha256=inventory_sha256, limits=lim, observer=observer, ca_bundle=ca_bundle,
                           resume=point)
    sites_summary = {
        "shards": len(states), "failed": len(failed), "parallel": parallel,
        "phones": {s: len(p) for s, p in assignment.by_site.items()}, "central": len(assignment.central),
    }
    return dataclasses.replace(result, summary={**result.summary, "sites": sites_summary})


def _coordinator_point(
    root: Path, profile: Profile, inventory: Inventory, inventory_sha256: str | None, site_phones: frozenset[str]
) -> ResumePoint:
    """What the coordinator's collector takes over from the shards: every line of a site phone
    (its timeouts and SITE_UNAVAILABLE refusals included: a resume point keeps only definite
    answers, and dropping the rest would turn "the site said why" into "never collected"), its
    jobs all taken as done, and the usual resume point for everything else."""
    point = resume_point(root, profile, inventory_sha256)
    others = [(line, a) for line, a in zip(point.keep, point.kept, strict=True) if a.phone not in site_phones]
    site_lines = [a for a in EvidenceReader(root).attempts() if a.phone in site_phones]
    return dataclasses.replace(
        point,
        keep=(*(line for line, _ in others), *(a.to_json() for a in site_lines)),
        kept=(*(a for _, a in others), *site_lines),
        done_files=point.done_files | _file_keys(profile, [p for p in inventory.phones if p.name in site_phones]),
        done_web=point.done_web | site_phones,
    )


def _pending(
    profile: Profile, assignment: Assignment, done_files: frozenset[Any], done_web: frozenset[str]
) -> Assignment:
    """The site phones that still have something to ask (all of them on a new run)."""
    if not done_files and not done_web:
        return assignment
    keep: dict[str, tuple[Phone, ...]] = {}
    for site, phones in assignment.by_site.items():
        keep[site] = tuple(
            p for p in phones if p.name not in done_web or not _file_keys(profile, [p]) <= done_files
        )
    return Assignment(keep, assignment.central)


def _file_keys(profile: Profile, phones: Sequence[Phone]) -> frozenset[tuple[str | None, str, str, str]]:
    return frozenset(
        (p.name, c.name, n.name, spec.primary)
        for p in phones for c in profile.clusters for spec in phone_file_specs(c, p) for n in c.tftp
    )


def _without_tvs(profile: Profile) -> Profile:
    """The profile a worker collects with: no TVS member and no allow-list, so it probes nothing
    (a TVS address a config names is recorded as not contacted, and that line is dropped)."""
    return dataclasses.replace(
        profile,
        source=dataclasses.replace(profile.source, tvs=(), tvs_allow=()),
        destination=dataclasses.replace(profile.destination, tvs=(), tvs_allow=()),
    )


async def _connect(options: DaskOptions) -> Any:
    try:
        from distributed import Client
    except ImportError:
        raise SitesError("--dask needs Dask distributed: pip install 'trustscan[dask]'") from None
    security = options.security()
    try:
        return await Client(  # type: ignore[no-untyped-call]
            options.address, asynchronous=True, security=security, timeout=options.connect_timeout,
            set_as_default=False,
        )
    except Exception as exc:  # OSError, TimeoutError, TLS and comm errors: all "cannot reach"
        raise SchedulerUnreachable(
            f"cannot reach the Dask scheduler at {options.address} within {options.connect_timeout:g} s: "
            f"{type(exc).__name__}: {exc}"
        ) from None


async def _resources(client: Any) -> dict[str, Mapping[str, float]]:
    ident = await client.scheduler.identity()
    return {addr: w.get("resources") or {} for addr, w in ident.get("workers", {}).items()}


def _by_site(profile: Profile, resources: Mapping[str, Mapping[str, float]]) -> dict[str, list[str]]:
    return {
        s.name: sorted(addr for addr, res in resources.items() if res.get(s.resource, 0) >= 1)
        for s in profile.sites
    }


async def _check_versions(client: Any) -> None:
    try:
        versions = await client.run(_worker_version)
    except Exception as exc:
        raise WorkerVersionRefused(f"a Dask worker cannot run trustscan {__version__}: {type(exc).__name__}: {exc}") from None
    problems = version_problems(__version__, versions)
    if problems:
        raise WorkerVersionRefused("refused: " + "; ".join(problems) + " (install the same trustscan on every worker)")


async def _run_shards(
    client: Any,
    shards: Sequence[Shard],
    task_for: Callable[[Shard], ShardTask],
    workers_at_start: Mapping[str, Sequence[str]],
    options: DaskOptions,
    merge: _Merge,
    say: Note,
    max_running: int,
) -> list[_ShardState]:
    """Submit each site's shards, at most one per worker the site had at start and at most
    ``max_running`` in all (each holds a share of the node limits); take each result as it
    finishes; give a site's shards up when it has had no worker for ``site_grace``."""
    run_id = uuid.uuid4().hex[:12]
    states = [_ShardState(s) for s in shards]
    queues: dict[str, collections.deque[_ShardState]] = {}
    for st in states:
        queues.setdefault(st.shard.site, collections.deque()).append(st)
    slots = {site: max(1, len(workers_at_start.get(site, ()))) for site in queues}
    running: dict[str, list[_ShardState]] = {site: [] for site in queues}
    lost_since: dict[str, float] = {
        site: time.monotonic() for site in queues if not workers_at_start.get(site)
    }
    had_worker = {site: bool(workers_at_start.get(site)) for site in queues}

    def submit(st: _ShardState) -> None:
        st.tries += 1
        st.state = "running"
        st.future = client.submit(
            run_shard, task_for(st.shard), resources={f"site-{st.shard.site}": 1}, pure=False,
            key=f"trustscan-shard-{run_id}-{st.shard.key}-{st.tries}",
        )

    to_cancel: list[Any] = []

    def give_up(st: _ShardState, reason: str) -> None:
        st.state, st.reason = "failed", reason
        if st.future is not None:
            to_cancel.append(st.future)
            st.future = None
        say(f"warning: site {st.shard.site} shard {st.shard.index}: {len(st.shard.phones)} phones UNKNOWN: {reason}")

    while any(queues.values()) or any(running.values()):
        # Results first: a finished shard frees its slot before the next one is submitted, so
        # the two fetches run on a worker that is otherwise idle.
        for site, active in running.items():
            for st in list(active):
                status = st.future.status
                if status == "finished":
                    active.remove(st)
                    if not await _take(client, st, merge):
                        if st.tries < SHARD_TRIES:
                            queues[site].appendleft(st)
                        else:
                            give_up(st, st.reason or "its results could not be fetched from its worker")
                elif status == "lost" and st.tries < SHARD_TRIES:  # its result's worker died: again
                    active.remove(st)
                    st.future.release()
                    queues[site].appendleft(st)
                elif status in ("error", "cancelled", "lost"):
                    active.remove(st)
                    give_up(st, await _failure(st.future))
        for site, queue in queues.items():
            while queue and len(running[site]) < slots[site] and sum(map(len, running.values())) < max_running:
                st = queue.popleft()
                submit(st)
                running[site].append(st)
        if not any(queues.values()) and not any(running.values()):
            break
        await asyncio.sleep(POLL_SECONDS)
        now_workers = _by_site_names(await _resources(client), queues)
        now = time.monotonic()
        for site in queues:
            if now_workers[site]:
                had_worker[site] = True
                lost_since.pop(site, None)
                continue
            if not (queues[site] or running[site]):
                continue
            since = lost_since.setdefault(site, now)
            if now - since >= options.site_grace:
                why = (
                    f"its last worker left or died and no other worker of the site joined within "
                    f"{options.site_grace:g} s"
                    if had_worker[site]
                    else f"no worker with resource site-{site} joined within {options.site_grace:g} s"
                )
                for st in [*running[site], *queues[site]]:
                    give_up(st, why)
                running[site].clear()
                queues[site].clear()
        if to_cancel:
            await client.cancel(to_cancel)
            to_cancel.clear()
    if to_cancel:
        await client.cancel(to_cancel)
    return states


def _by_site_names(resources: Mapping[str, Mapping[str, float]], sites: Mapping[str, Any]) -> dict[str, bool]:
    return {site: any(res.get(f"site-{site}", 0) >= 1 for res in resources.values()) for site in sites}


async def _failure(future: Any) -> str:
    try:
        await future
    except asyncio.CancelledError:
        return "its task was cancelled"
    except Exception as exc:
        name = type(exc).__name__
        if name == "KilledWorker":
            return "the workers running it died while running it (Dask gave up: KilledWorker)"
        return f"{name}: {exc}"
    return "its task ended without a result"


async def _take(client: Any, st: _ShardState, merge: _Merge) -> bool:
    """Fetch a finished shard's lines, then only the blobs the coordinator lacks, from the worker
    holding the result; write them into the evidence. False when the worker went away between."""
    fut = st.future
    try:
        holders = await client.who_has(fut)
        where = list(holders.get(fut.key, ())) or None
        lines, names, meta = await asyncio.wait_for(
            client.submit(shard_manifest, fut, workers=where, allow_other_workers=False, pure=False),
            FETCH_TIMEOUT,
        )
        wanted = [n for n in names if n not in merge.known]
        blobs: dict[str, bytes] = {}
        if wanted:
            blobs = await asyncio.wait_for(
                client.submit(shard_blobs, fut, wanted, workers=where, allow_other_workers=False, pure=False),
                FETCH_TIMEOUT,
            )
    except Exception as exc:
        st.reason = f"its results could not be fetched: {type(exc).__name__}: {exc}"
        return False
    finally:
        fut.release()
        st.future = None
    for name, data in blobs.items():
        stored = merge.writer.store(data)  # hashed again here: a wrong name is never trusted
        if stored == name:
            merge.known.add(name)
            st.blobs_fetched += 1
            st.blob_bytes += len(data)
    for line in lines:
        merge.writer.record(Attempt.from_json(line))
    merge.writer.flush()
    st.state, st.lines, st.worker, st.seconds = "done", len(lines), meta["worker"], meta["seconds"]
    return True


def _record_unavailable(writer: EvidenceWriter, profile: Profile, failed: Sequence[_ShardState], say: Note) -> None:
    """Every planned file and page of the failed shards' phones: a ``refused`` line naming the
    site and the reason (nothing was sent), so that each phone is UNKNOWN and asked again by
    ``--resume``."""
    from scanner.net.phone_web import PAGES  # page names only: nothing is fetched

    now = time.time()
    for st in failed:
        error = f"not sent: {Code.SITE_UNAVAILABLE}: site {st.shard.site}: {st.reason}"
        for phone in st.shard.phones:
            for cluster in profile.clusters:
                for spec in phone_file_specs(cluster, phone):
                    for node in cluster.tftp:
                        writer.record(Attempt(
                            phone=phone.name, cluster=cluster.name, node=node.name,
                            transport=TransportKind.TFTP.value, file=spec.primary, outcome=Outcome.REFUSED,
                            size=None, sha256=None, duration=0.0, error=error, started=now,
                        ))
            for page in PAGES:
                writer.record(Attempt(
                    phone=phone.name, cluster=None, node=phone.ip, transport=TransportKind.WEB.value,
                    file=page.name, outcome=Outcome.REFUSED, size=None, sha256=None, duration=0.0,
                    error=error, started=now,
                ))
    say(f"warning: {sum(len(st.shard.phones) for st in failed)} phones of sites "
        f"{', '.join(sorted({st.shard.site for st in failed}))} were not collected ({Code.SITE_UNAVAILABLE}); "
        "finish them later with --resume")


def _first_summary(
    profile: Profile, inventory: Inventory, inventory_path: str | Path | None, sha: str | None, started: float
) -> dict[str, Any]:
    """``collection.json`` while the shards run: what the coordinator's collector, resuming this
    directory, checks (profile, inventory) and later rewrites."""
    return {
        "tool": "trustscan", "tool_version": __version__, "state": "running", "interrupted": None,
        "started": started, "resumed": None, "finished": None, "duration": 0.0,
        "profile": profile.snapshot(),
        "inventory": {"path": None if inventory_path is None else str(inventory_path), "sha256": sha,
                      "phones": len(inventory.phones), "issues": [str(e) for e in inventory.issues]},
        "discovered": False, "discovery_issues": [], "cluster_discovery": None,
        "limits": dataclasses.asdict(profile.limits),
        "plan": plan_summary(profile, inventory.phones, discovered=False),
        "counts": {}, "dead_nodes": [],
    }


def _write_record(
    root: Path, states: Sequence[_ShardState], assignment: Assignment, parallel: int, limits: Limits
) -> None:
    doc = {
        "parallel_shards": parallel,
        "shard_limits": {"per_node_concurrency": limits.per_node_concurrency,
                         "per_node_rate": limits.per_node_rate, "per_node_burst": limits.per_node_burst},
        "phones": {site: len(p) for site, p in assignment.by_site.items()},
        "central_phones": len(assignment.central),
        "shards": [
            {"site": st.shard.site, "index": st.shard.index, "phones": len(st.shard.phones), "state": st.state,
             "reason": st.reason, "worker": st.worker, "tries": st.tries, "seconds": st.seconds,
             "lines": st.lines, "blobs_fetched": st.blobs_fetched, "blob_bytes": st.blob_bytes}
            for st in states
        ],
    }
    write_atomic(root / SITES_RECORD, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
