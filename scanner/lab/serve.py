"""``trustscan lab serve DIR``: serve a built lab on loopback until stopped.

Per TFTP node, on its own address: TFTP over UDP (``scanner.lab.tftp_server.TftpServer``) and HTTP on
the port standing for 6970. Per phone, on its own address: its web pages (or nothing when web
access is off: connection refused). Per TVS node: a TLS server that presents the node's TVS
certificate and demands a client certificate (TLS 1.2 by default, 1.3 as an option); a TVS that
is down does not listen.

HTTP is two aiohttp low-level ``web.Server`` protocol factories per process (nodes and phones,
which differ only in how long an idle keep-alive connection may stay), bound to every address with
``loop.create_server``: each listener costs one socket, and the handler tells the target by the
local address the connection came to.

Every listening phone holds a descriptor for as long as the lab is served, and the open-files
limit is per process (here 20,000, hard): so the phones are spread over worker processes, each
holding at most its limit minus a reserve for connections (``plan_shares``). The main process
serves the nodes, the TVS servers and the first share; it reports ready only when every worker
listens, and stops them all when it stops (workers also stop when their stdin pipe from it ends,
however it dies).

A file a node has but cannot read now (EMFILE, EIO, ...) is HTTP 500 / TFTP ERROR 0 with the
reason and is read again next time; only a file that is not there is 404 / ERROR 1. (A 20,000-phone
lab once served from one process ran out of descriptors, and its reader cached that as "not
found": 17,815 phones came out DEST_NOT_PROVISIONED.)

Anything that fails at start (a port in use, too few file descriptors, more phones than the
processes, descriptors or memory can hold) closes what was opened, workers included, and raises
``LabError`` naming the address and port, or how many phones fit.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import re
import resource
import ssl
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from scanner.core.tftp.packets import ErrorCode
from scanner.core.trustlist import parse_header
from scanner.lab.build import LAB_FORMAT
from scanner.lab.cucm_api import CucmApi, api_from_json
from scanner.lab.errors import LabError
from scanner.lab.pages import render as render_phone_page
from scanner.lab.scenario import check_loopback
from scanner.lab.tftp_server import TftpFaults, TftpServer
from scanner.lab.tvs_server import load_responder, serve_session

__all__ = ["LabServer", "load_lab", "plan_shares", "raise_nofile_limit"]

_PER_PHONE = re.compile(r"(CTL|ITL)SEP([0-9A-Fa-f]{12})\.tlv")
_READ_CACHE = 4096

# Each listening phone holds one descriptor (its socket) for as long as the lab is served. These
# are the descriptors a process keeps for everything else; running short of them is what made a
# 20,000-phone lab answer "file not found".
# The main process: per TFTP node its request socket, one socket per transfer in flight (the
# scanner allows 64 per node) and as many HTTP connections; 4 nodes x (64 + 64) = 512. Then TVS
# sessions, files being read, two pipes per worker, the interpreter's own (~30): 2,048 leaves
# room for a second client at the same time.
# Phone connections (below) come on top: the main process also serves the first share of phones.
MAIN_RESERVE = 3072
# A worker: the connections accepted on its phones. The scanner has at most 64 phone requests in
# flight (Limits.web_concurrency), but a client keeps a finished phone's connection idle in its
# pool; the server closes it after PHONE_KEEPALIVE, so about (phones/s) x PHONE_KEEPALIVE stay
# open: 500 phones/s x 2 s = 1,000. A stalled phone holds one until the client gives up.
WORKER_RESERVE = 2048
# Idle keep-alive: aiohttp's low-level server default is 3,630 s, which let a 20,000-phone scan
# keep ~1,800 finished phones' connections open in one process and run it out of descriptors.
PHONE_KEEPALIVE = 2.0
NODE_KEEPALIVE = 75.0  # what aiohttp's web.AppRunner uses; a node's clients are few and busy
# Each process is an interpreter with aiohttp and a copy of lab.json (~60 MB before listeners);
# needing more than this many processes means the open-files limit is far too low for the lab.
MAX_PROCESSES = 16
# Memory per phone listener (socket, asyncio server, handler target): about 2 KB measured with
# uvloop at 18,000 listeners in one process; doubled for margin. A worker before its first
# listener: the interpreter with aiohttp (~50 MB) and lab.json parsed (about 6 times its size on
# disk at 20,000 phones; 8 for margin).
LISTENER_BYTES = 4_000
INTERPRETER_BYTES = 60_000_000
LAB_JSON_FACTOR = 8
# A worker binds ~20,000 listeners in a few seconds; on a loaded 2-core machine give it minutes.
WORKER_READY_TIMEOUT = 300.0


def load_lab(directory: str | Path) -> tuple[Path, dict[str, Any]]:
    """Read and check ``DIR/lab.json``; errors name the path at fault."""
    d = Path(directory)
    if not d.is_dir():
        raise LabError(f"{d}: lab directory not found (build one with `trustscan lab build --out {d}`)")
    if (d / ".lab-partial").exists():
        raise LabError(f"{d}: half-built lab (a build did not finish); build it again")
    path = d / "lab.json"
    if not path.is_file():
        raise LabError(f"{path}: missing: {d} is not a built lab (or its build did not finish)")
    try:
        lab: dict[str, Any] = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise LabError(f"{path}: not valid JSON: {exc}") from None
    if lab.get("format") != LAB_FORMAT:
        raise LabError(
            f"{path}: format {lab.get('format')!r}, this trustscan reads format {LAB_FORMAT}; rebuild the lab"
        )
    try:
        for cname, cluster in lab["clusters"].items():
            for i, node in enumerate(cluster["tftp"]):
                check_loopback(node["address"], f"{path}: clusters.{cname}.tftp[{i}].address")
                if not (d / node["dir"]).is_dir():
                    raise LabError(f"{d / node['dir']}: missing: the lab is incomplete; rebuild it")
            for i, tvs in enumerate(cluster["tvs"]):
                check_loopback(tvs["address"], f"{path}: clusters.{cname}.tvs[{i}].address")
                for key in ("cert", "key"):
                    if not (d / tvs[key]).is_file():
                        raise LabError(f"{d / tvs[key]}: missing: the lab is incomplete; rebuild it")
        for i, phone in enumerate(lab["phones"]):
            check_loopback(phone["ip"], f"{path}: phones[{i}].ip")
    except (KeyError, TypeError) as exc:
        raise LabError(f"{path}: malformed lab description (missing {exc}); rebuild the lab") from None
    return d, lab


def raise_nofile_limit() -> int:
    """Raise the soft open-files limit to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main_reserve(limit: int) -> int:
    """Descriptors the main process keeps free for connections: MAIN_RESERVE, or half a low
    limit (a 1,024-descriptor machine still serves a few hundred phones, as before the split)."""
    return min(MAIN_RESERVE, max(256, limit // 2))


def worker_reserve(limit: int) -> int:
    return min(WORKER_RESERVE, max(256, limit // 2))


def plan_shares(
    web: Sequence[str],
    limit: int,
    *,
    phones_per_process: int | None = None,
    system_free: int | None = None,
    memory_free: int | None = None,
    worker_bytes: int = INTERPRETER_BYTES,
) -> list[tuple[int, int]]:
    """Split the phones (each phone's ``web``, in lab order) into ``[start, stop)`` ranges, one per
    process: the first for the main process (at most ``limit - MAIN_RESERVE`` listeners), the
    others for workers (``limit - WORKER_RESERVE`` each), both lowered to ``phones_per_process``.
    Phones with web access off need no listener. Raises ``LabError`` naming how many phones fit
    when the processes, the system's free descriptors or its free memory (each worker costing
    ``worker_bytes`` before its listeners) cannot hold them all."""
    listening = sum(1 for w in web if w != "off")
    main_cap, worker_cap = max(0, limit - main_reserve(limit)), max(0, limit - worker_reserve(limit))
    if phones_per_process is not None:
        main_cap, worker_cap = min(main_cap, phones_per_process), min(worker_cap, phones_per_process)
    fits = main_cap + (MAX_PROCESSES - 1) * worker_cap
    if listening > fits:
        raise LabError(
            f"cannot serve {listening} phone web servers: with an open-files limit of {limit} per "
            f"process (`ulimit -Hn`) and at most {MAX_PROCESSES} processes, {fits} phones fit; "
            "raise the hard limit or build the lab with fewer --phones"
        )
    shares = _split(web, main_cap, worker_cap)
    workers = len(shares) - 1
    if system_free is not None:
        spare = system_free - main_reserve(limit) - workers * worker_reserve(limit)
        if listening > spare:
            raise LabError(
                f"cannot serve {listening} phone web servers: the system has {system_free} file "
                f"descriptors free (/proc/sys/fs/file-nr), so about {max(0, spare)} phones fit"
            )
    if memory_free is not None:
        spare = (memory_free - workers * worker_bytes) // LISTENER_BYTES
        if listening > spare:
            raise LabError(
                f"cannot serve {listening} phone web servers: {memory_free // 2**20} MiB of memory "
                f"available (/proc/meminfo), about {max(0, spare)} phones fit"
            )
    return shares


def _split(web: Sequence[str], first_cap: int, cap: int) -> list[tuple[int, int]]:
    shares: list[tuple[int, int]] = []
    start, held, room = 0, 0, first_cap
    for i, w in enumerate(web):
        if w == "off":
            continue
        if held == room:
            shares.append((start, i))
            start, held, room = i, 0, cap
        held += 1
    shares.append((start, len(web)))
    return shares


def _system_free_descriptors() -> int | None:
    """Descriptors the kernel can still hand out (file-max minus allocated), None if unknown."""
    try:
        allocated, _unused, maximum = (int(x) for x in Path("/proc/sys/fs/file-nr").read_text().split())
    except (OSError, ValueError):
        return None
    return maximum - allocated


def _memory_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclass(slots=True)
class _Worker:
    """A worker process serving the phones ``share`` of the lab; ``listening`` once ready."""

    share: tuple[int, int]
    proc: asyncio.subprocess.Process
    listening: int = 0

    @property
    def what(self) -> str:
        return f"worker pid {self.proc.pid} (phones {self.share[0]}..{self.share[1] - 1})"


async def _reap(w: _Worker) -> None:
    # The worker stops on stdin EOF or SIGTERM within a second; one that does not is killed.
    try:
        await asyncio.wait_for(w.proc.wait(), 10.0)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            w.proc.kill()
        await w.proc.wait()


class NodeFiles:
    """What one TFTP node serves: the files in its directory; per-phone CTLSEP/ITLSEP names fall
    back to the node's CTLFile.tlv / ITLFile.tlv (resolved here, never copied on disk)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.names = frozenset(os.listdir(directory))
        self.generic: dict[str, bytes] = {
            n: (directory / n).read_bytes() for n in ("CTLFile.tlv", "ITLFile.tlv") if n in self.names
        }
        self._read: Callable[[str], bytes | None] = functools.lru_cache(maxsize=_READ_CACHE)(self._read_file)

    def _read_file(self, name: str) -> bytes | None:
        # Only a file that is really gone is "not found" (and may be cached as such). Any other
        # OSError (EMFILE, EIO, ...) propagates: lru_cache keeps no exception, so the next request
        # reads again, and the caller answers 500 / TFTP ERROR 0 meanwhile.
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            return None

    def lookup(self, name: str) -> bytes | None:
        """The bytes served as ``name``, or None when the node has no such file. Raises ``OSError``
        when the file exists but cannot be read now."""
        name = name.lstrip("/")
        data = self.generic.get(name)
        if data is not None:
            return data
        if name in self.names:
            return self._read(name)
        if name.endswith(".cnf.xml") and f"{name}.sgn" in self.names:
            # The unsigned config is the .sgn's payload: stored once, served both ways.
            signed = self._read(f"{name}.sgn")
            return None if signed is None else signed[parse_header(signed).length :]
        m = _PER_PHONE.fullmatch(name)
        if m:
            upper = f"{m.group(1)}SEP{m.group(2).upper()}.tlv"
            if upper in self.names:
                return self._read(upper)
            return self.generic.get(f"{m.group(1)}File.tlv")
        return None


@dataclass(slots=True)
class _HttpTarget:
    kind: str  # "node" | "phone"
    node: NodeFiles | None = None
    faults: dict[str, Any] = field(default_factory=dict)
    phone: dict[str, Any] | None = None


# --- Request counters: what each TFTP node's HTTP (6970) server saw, whoever asked ---------------
# A scan split over many machines must stay as polite as one: a test counts here, on the lab's
# side, each node's requests in flight and their start times (monotonic), so the per-second rate
# is measured where a real node would feel it. Only the node servers in this process are counted
# (they all live in the main process: see LabServer).


@dataclass(slots=True)
class NodeCount:
    starts: list[float] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def max_per_window(self, window: float = 1.0) -> int:
        """The most requests that started within any ``window`` seconds."""
        best, lo = 0, 0
        for hi, t in enumerate(self.starts):
            while t - self.starts[lo] >= window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best


@dataclass(slots=True)
class NodeRequests:
    by_node: dict[str, NodeCount] = field(default_factory=dict)

    @contextlib.contextmanager
    def count(self, node: str) -> Iterator[None]:
        c = self.by_node.setdefault(node, NodeCount())
        c.starts.append(time.monotonic())
        c.in_flight += 1
        c.max_in_flight = max(c.max_in_flight, c.in_flight)
        try:
            yield
        finally:
            c.in_flight -= 1

    def reset(self) -> None:
        self.by_node.clear()


@dataclass(frozen=True, slots=True)
class Service:
    kind: str
    name: str
    address: str
    port: int
    note: str = ""

    def line(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return f"{self.kind:<5} {self.name:<16} {self.address}:{self.port}{note}"


class LabServer:
    """Every service of a lab. ``await start()``, then ``await stop()``.

    One process's open-files limit caps how many phone listeners it can hold (each is a socket),
    so the phones are spread over processes: this one serves the TFTP/HTTP nodes, the TVS servers
    and the first share of phones; each further share goes to a worker process (``lab serve DIR
    --worker START:STOP``, a ``LabServer`` with ``share`` set, which serves only those phones).
    The nodes stay here, in one process, because their per-node state (file cache, the seeded
    loss of ``node-loss``) must be one per node, and a worker then needs no node files at all.
    ``phones_per_process`` lowers the share of every process (tests use it to span processes).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        tls13: bool = False,
        host_check: bool = True,
        phones_per_process: int | None = None,
        share: tuple[int, int] | None = None,
    ) -> None:
        self.dir, self.lab = load_lab(directory)
        self.tls13 = tls13
        if phones_per_process is not None and phones_per_process < 1:
            raise LabError(f"phones per process: must be at least 1 (got {phones_per_process})")
        self.phones_per_process = phones_per_process
        self.share = share
        self.services: list[Service] = []
        self._tftp: list[TftpServer] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._targets: dict[tuple[str, int], _HttpTarget] = {}
        self._stalled: set[asyncio.Future[None]] = set()
        self._http: web.Server | None = None
        self._phone_http: web.Server | None = None
        self._workers: list[_Worker] = []
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False
        self._failed: asyncio.Event | None = None
        self.failure: str | None = None
        self.phones_listening = 0  # in every process of this lab serve, once started
        self.processes = 1
        self.apis: dict[str, CucmApi] = {}  # each cluster's AXL and RisPort70 (their request logs)
        self.node_requests = NodeRequests()  # what each node's HTTP (6970) saw: tests of politeness

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, on_service: Callable[[Service], None] | None = None) -> None:
        """Bind everything; return once every process listens. ``LabError`` names what failed
        (after closing everything opened, workers included)."""
        emit = on_service or (lambda _s: None)
        self._failed = asyncio.Event()
        limit = raise_nofile_limit()
        try:
            if self.share is not None:
                await self._start_worker_share(limit)
            else:
                await self._start_main(limit, emit)
        except BaseException:
            await self.stop()
            raise

    async def _start_worker_share(self, limit: int) -> None:
        assert self.share is not None
        start, stop = self.share
        phones = self.lab["phones"][start:stop]
        listening = sum(1 for p in phones if p["web"] != "off")
        if listening > limit - worker_reserve(limit):
            raise LabError(
                f"worker for phones {start}..{stop - 1}: open-files limit {limit} holds "
                f"{max(0, limit - worker_reserve(limit))} phone listeners, not {listening}"
            )
        self._make_http()
        await self._start_phones(asyncio.get_running_loop(), phones)

    async def _start_main(self, limit: int, emit: Callable[[Service], None]) -> None:
        shares = plan_shares(
            [p["web"] for p in self.lab["phones"]],
            limit,
            phones_per_process=self.phones_per_process,
            system_free=_system_free_descriptors(),
            memory_free=_memory_available(),
            worker_bytes=INTERPRETER_BYTES + LAB_JSON_FACTOR * (self.dir / "lab.json").stat().st_size,
        )
        # Workers first: each needs a second or more to import and bind, in parallel with this one.
        for share in shares[1:]:
            self._workers.append(await self._spawn(share))
        self.processes = len(shares)
        self._make_http()
        await self._start_nodes(emit)
        start, stop = shares[0]
        await self._start_phones(asyncio.get_running_loop(), self.lab["phones"][start:stop])
        mine = self.phones_listening
        await self._await_workers()
        self._emit_web(emit, shares[0], mine, "this process")
        for w in self._workers:
            self._emit_web(emit, w.share, w.listening, f"worker pid {w.proc.pid}")
        for w in self._workers:
            self._watchers.append(asyncio.create_task(self._watch(w)))

    def _make_http(self) -> None:
        # Two protocol factories because idle keep-alive connections hold descriptors: aiohttp's
        # low-level server keeps one for an hour by default. Nodes get what web.AppRunner uses;
        # a phone's few pages come back to back, so its connection may go after PHONE_KEEPALIVE.
        self._http = web.Server(
            self._handle, handler_cancellation=True, access_log=None, keepalive_timeout=NODE_KEEPALIVE
        )
        self._phone_http = web.Server(
            self._handle, handler_cancellation=True, access_log=None, keepalive_timeout=PHONE_KEEPALIVE
        )

    async def _start_nodes(self, emit: Callable[[Service], None]) -> None:
        """Every cluster's TFTP nodes (TFTP and HTTP) and TVS servers, each announced with ``emit``."""
        seed = zlib.crc32(str(self.lab["seed"]).encode())
        for cname, cluster in self.lab["clusters"].items():
            for node in cluster["tftp"]:
                await self._start_tftp_node(cname, node, seed, emit)
            for tvs in cluster["tvs"]:
                await self._start_tvs(cname, tvs, emit)
        await self._start_apis(emit)

    def _announce(self, emit: Callable[[Service], None], service: Service) -> None:
        self.services.append(service)
        emit(service)

    async def _start_tftp_node(
        self, cname: str, node: dict[str, Any], seed: int, emit: Callable[[Service], None]
    ) -> None:
        """One TFTP node: its TFTP server and its HTTP (6970) server, with the node's faults;
        nothing for a node-dead node."""
        faults = node.get("faults", {})
        name, address = node["name"], node["address"]
        if "node-dead" in faults:
            self._announce(
                emit, Service("DEAD", name, address, node["tftp_port"], f"{cname} TFTP node down: nothing listens")
            )
            return
        files = NodeFiles(self.dir / node["dir"])
        tftp_faults, max_active = _tftp_faults(faults, seed)
        server = TftpServer(files.lookup, faults=tftp_faults, max_active=max_active)
        try:
            await server.start(address, node["tftp_port"])
        except OSError as exc:
            server.close()
            raise _bind_error(exc, f"{cname} TFTP node {name}", address, node["tftp_port"], "udp") from None
        self._tftp.append(server)
        self._announce(emit, Service("TFTP", name, address, server.port, _fault_note(faults, "tftp")))
        http_faults = {k: v for k, v in faults.items() if "http" in v.get("protocols", ("http",))}
        await self._listen(
            asyncio.get_running_loop(),
            address,
            node["http_port"],
            _HttpTarget("node", files, http_faults),
            f"{cname} HTTP node {name}",
        )
        self._announce(emit, Service("HTTP", name, address, node["http_port"], _fault_note(faults, "http")))

    async def _start_tvs(self, cname: str, tvs: dict[str, Any], emit: Callable[[Service], None]) -> None:
        """One TVS server (TLS with the node's TVS certificate); nothing for a TVS that is down."""
        if tvs.get("down"):
            self._announce(
                emit, Service("DOWN", tvs["name"], tvs["address"], tvs["port"], f"{cname} TVS down: nothing listens")
            )
            return
        ctx = self._tvs_context(tvs)
        # Each TVS answers from its cluster's trust stores (scanner.lab.tvs_server).
        session = functools.partial(serve_session, load_responder(self.dir, cname))
        try:
            srv = await asyncio.start_server(
                session, tvs["address"], tvs["port"], ssl=ctx, ssl_handshake_timeout=10
            )
        except OSError as exc:
            raise _bind_error(exc, f"{cname} TVS {tvs['name']}", tvs["address"], tvs["port"], "tcp") from None
        self._servers.append(srv)
        self._announce(
            emit, Service("TVS", tvs["name"], tvs["address"], tvs["port"], f"{cname}, TLS 1.{3 if self.tls13 else 2}")
        )

    async def _start_phones(self, loop: asyncio.AbstractEventLoop, phones: list[dict[str, Any]]) -> None:
        port = int(self.lab["web_port"])
        for phone in phones:
            if phone["web"] == "off":
                continue  # web access off: no listener, so connections are refused
            await self._listen(
                loop, phone["ip"], port, _HttpTarget("phone", phone=phone), f"phone {phone['name']} web", phone=True
            )
            self.phones_listening += 1

    def _emit_web(self, emit: Callable[[Service], None], share: tuple[int, int], listening: int, where: str) -> None:
        phones = self.lab["phones"][share[0] : share[1]]
        first, last = (phones[0]["ip"], phones[-1]["ip"]) if phones else ("-", "-")
        off = len(phones) - listening
        self._announce(
            emit,
            Service(
                "WEB",
                f"{listening} phones",
                f"{first}..{last}",
                int(self.lab["web_port"]),
                f"{where}; {off} with web access off: connection refused",
            ),
        )

    # -- worker processes --------------------------------------------------------------------

    async def _spawn(self, share: tuple[int, int]) -> _Worker:
        # The worker is `trustscan lab serve DIR --worker START:STOP` (scanner/cli/lab.py). Its
        # stdin is a pipe only this process writes to: when it goes away, however it dies, the
        # worker reads EOF and stops. stderr is shared, so a worker's complaints reach the user.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "scanner",
            "lab",
            "serve",
            str(self.dir),
            "--worker",
            f"{share[0]}:{share[1]}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,
        )
        return _Worker(share, proc)

    async def _await_workers(self) -> None:
        results = await asyncio.gather(*(self._ready(w) for w in self._workers), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        self.phones_listening += sum(w.listening for w in self._workers)

    async def _ready(self, w: _Worker) -> None:
        assert w.proc.stdout is not None
        try:
            line = await asyncio.wait_for(w.proc.stdout.readline(), WORKER_READY_TIMEOUT)
        except TimeoutError:
            raise LabError(f"{w.what}: not listening after {WORKER_READY_TIMEOUT:.0f} s") from None
        text = line.decode(errors="replace").strip()
        if text.startswith("ready "):
            w.listening = int(text.split()[1])
            return
        if text.startswith("error "):
            raise LabError(text[len("error ") :])
        code = await w.proc.wait()
        raise LabError(f"{w.what}: exited with code {code} before listening (its stderr is above)")

    async def _watch(self, w: _Worker) -> None:
        code = await w.proc.wait()
        # A Ctrl-C in a terminal reaches every process of the group: let this process's own
        # signal handler start the stop before a worker that obeyed it counts as a failure.
        await asyncio.sleep(0.2)
        if not self._stopping and self._failed is not None:
            self.failure = f"{w.what}: exited with code {code} while serving; its phones are gone"
            self._failed.set()

    async def wait_failure(self) -> str:
        """Return (with the reason) when a worker process has died while serving."""
        assert self._failed is not None, "start() first"
        await self._failed.wait()
        return self.failure or "a worker process failed"

    async def _stop_workers(self) -> None:
        for task in self._watchers:
            task.cancel()
        self._watchers.clear()
        workers, self._workers = self._workers, []
        for w in workers:
            if w.proc.stdin is not None:
                w.proc.stdin.close()
            if w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.terminate()
        await asyncio.gather(*(_reap(w) for w in workers))

    async def _listen(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        target: _HttpTarget,
        what: str,
        *,
        phone: bool = False,
    ) -> None:
        factory = self._phone_http if phone else self._http
        assert factory is not None
        try:
            srv = await loop.create_server(factory, host, port, reuse_address=True, backlog=128)
        except OSError as exc:
            raise _bind_error(exc, what, host, port, "tcp") from None
        self._servers.append(srv)
        self._targets[(host, port)] = target

    async def stop(self) -> None:
        self._stopping = True
        await self._stop_workers()
        for t in self._tftp:
            t.close()
        self._tftp.clear()
        for fut in list(self._stalled):
            fut.cancel()
        servers, self._servers = self._servers, []
        for srv in servers:
            srv.close()
        for factory in (self._http, self._phone_http):
            if factory is not None:
                with contextlib.suppress(Exception):
                    await factory.shutdown(0.5)
        for srv in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1.0)

    # -- AXL and RisPort70 --------------------------------------------------------------------

    async def _start_apis(self, emit: Callable[[Service], None]) -> None:
        """Each cluster's publisher API (AXL and RisPort70, ``scanner.lab.cucm_api``) over HTTPS
        with its tomcat certificate, on the publisher's address. A lab built before the API
        existed has no ``cucm`` table: it is served without one, as before."""
        for cname, cluster in self.lab["clusters"].items():
            if "cucm" in cluster:
                await self._start_api(cname, cluster["cucm"], emit)

    async def _start_api(self, cname: str, cucm: dict[str, Any], emit: Callable[[Service], None]) -> None:
        where = f"{self.dir / 'lab.json'}: clusters.{cname}.cucm"
        try:
            address = check_loopback(cucm["publisher"], f"{where}.publisher")
            port = int(cucm["port"])
            api = api_from_json(cname, cucm)
            delay = float(cucm.get("delay", 0.0))
            cert, key = self.dir / cucm["cert"], self.dir / cucm["key"]
        except (KeyError, TypeError, ValueError) as exc:
            raise LabError(f"{where}: malformed ({type(exc).__name__}: {exc}); rebuild the lab") from None
        for path in (cert, key):
            if not path.is_file():
                raise LabError(f"{path}: missing: the lab is incomplete; rebuild it")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise LabError(f"{cert}: cannot load the tomcat certificate and key: {exc}") from None

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            return await self._api(request, api, delay)

        # A factory of its own: the node and phone factories tell their targets by address, and
        # the API's requests are answered by the cluster's CucmApi, not by files.
        factory = web.Server(handle, handler_cancellation=True, access_log=None, keepalive_timeout=NODE_KEEPALIVE)
        try:
            srv = await asyncio.get_running_loop().create_server(
                factory, address, port, ssl=ctx, reuse_address=True, backlog=128, ssl_handshake_timeout=10
            )
        except OSError as exc:
            raise _bind_error(exc, f"{cname} AXL/RisPort70", address, port, "tcp") from None
        self._servers.append(srv)
        self.apis[cname] = api
        note = f"{cname} publisher: /axl/ and RisPort70, HTTPS, user {', '.join(api.users)}"
        note += f", RisPort70 {api.per_minute}/min" + (f", axl-slow delay={delay:g}" if delay else "")
        self._announce(emit, Service("AXL", address, address, port, note))

    async def _api(self, request: web.BaseRequest, api: CucmApi, delay: float) -> web.StreamResponse:
        if delay:
            await asyncio.sleep(delay)  # axl-slow: every answer, the refusals included
        if request.method != "POST":
            return web.Response(status=405, text="HTTP Status 405 - Method Not Allowed\n", headers={"Allow": "POST"})
        body = await request.read()
        status, data = api.answer(request.path, request.headers, body)
        headers = {"WWW-Authenticate": 'Basic realm="Cisco Unified Communications Manager"'} if status == 401 else None
        # SOAP answers (and faults) are XML; Tomcat's own pages (401, 404, AXL's 599) are HTML.
        xml = data.startswith(b"<?xml")
        return web.Response(
            status=status, body=data, content_type="text/xml" if xml else "text/html", charset="utf-8", headers=headers
        )

    # -- TVS ---------------------------------------------------------------------------------

    def _tvs_context(self, tvs: dict[str, Any]) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.dir / tvs["cert"], self.dir / tvs["key"])
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(self.dir / self.lab["mic_ca"])
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3 if self.tls13 else ssl.TLSVersion.TLSv1_2
        # A phone's session with TVS runs on AES256-SHA (the TVS debug log in Cisco's guide to
        # migrating phones between secure clusters shows it): offer it first, then modern suites.
        ctx.set_ciphers("AES256-SHA:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256")
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        return ctx

    # -- HTTP --------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        sock = transport.get_extra_info("sockname") if transport is not None else None
        target = self._targets.get((sock[0], sock[1])) if sock else None
        if target is None:
            return web.Response(status=404, text="no such lab service\n")
        if target.kind == "phone":
            assert target.phone is not None
            return await self._phone(request, target.phone)
        assert target.node is not None
        with self.node_requests.count(sock[0] if sock else ""):
            return await self._node(request, target)

    async def _stall(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stalled.add(fut)
        try:
            await fut
        finally:
            self._stalled.discard(fut)

    async def _phone(self, request: web.BaseRequest, phone: dict[str, Any]) -> web.StreamResponse:
        if phone["web"] == "stall":
            await self._stall()
        # A phone `lab cutover` moved shows its state from DIR/state/ (reloaded when it changes).
        from scanner.lab.overlay import Overlay

        overlay = self.__dict__.get("_cutover_overlay")
        if overlay is None:
            overlay = self.__dict__["_cutover_overlay"] = Overlay(self.dir, self.lab["trust_variants"])
        phone, variants = overlay.apply(phone)
        # The phone's page kind (HTML, XML, DX labels, separate security page) picks the shape.
        page = render_phone_page(request.path, request.query, phone, variants)
        if page is None:
            return web.Response(status=404, text="Not Found\n")
        status, content_type, body = page
        return web.Response(status=status, text=body, content_type=content_type, charset="utf-8")

    async def _node(self, request: web.BaseRequest, target: _HttpTarget) -> web.StreamResponse:
        faults = target.faults
        if "node-delay" in faults:
            await asyncio.sleep(float(faults["node-delay"]["delay"]))
        if "node-stall" in faults:
            await self._stall()
        if "node-error" in faults:
            return web.Response(status=500, text="Internal Server Error\n")
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="read-only\n")
        assert target.node is not None
        try:
            data = target.node.lookup(request.path)
        except OSError as exc:
            # Not a 404: the scanner would take it for a fact about the phone.
            return web.Response(status=500, text=f"Cannot read {request.path}: {exc.strerror or exc}\n")
        if data is None:
            return web.Response(status=404, text="File not found\n")
        if "node-truncate" in faults:
            keep = int(faults["node-truncate"]["bytes"])
            if keep < len(data):
                resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
                resp.content_length = len(data)
                await resp.prepare(request)
                await resp.write(data[:keep])
                if request.transport is not None:
                    request.transport.close()
                return resp
        return web.Response(body=data, content_type="application/octet-stream")


def _tftp_faults(faults: dict[str, Any], seed: int) -> tuple[TftpFaults, int | None]:
    loss = float(faults.get("node-loss", {}).get("loss", 0.0))
    delay = float(faults.get("node-delay", {}).get("delay", 0.0))
    error = None
    if "tftp" in faults.get("node-error", {}).get("protocols", ()):
        error = (int(ErrorCode.ACCESS_VIOLATION), "Access violation")
    truncate = None
    if "tftp" in faults.get("node-truncate", {}).get("protocols", ()):
        truncate = int(faults["node-truncate"]["bytes"])
    max_active = 0 if "tftp" in faults.get("node-stall", {}).get("protocols", ()) else None
    return TftpFaults(loss=loss, delay=delay, seed=seed, error_reply=error, truncate=truncate), max_active


def _fault_note(faults: dict[str, Any], protocol: str) -> str:
    notes = []
    for name, params in faults.items():
        protocols = params.get("protocols", ("tftp", "http"))
        if protocol not in protocols:
            continue
        if name == "node-loss" and protocol == "http":
            continue
        extra = ", ".join(f"{k}={v}" for k, v in params.items() if k != "protocols")
        notes.append(f"{name}{f' {extra}' if extra else ''}")
    return "; ".join(notes)


def _bind_error(exc: OSError, what: str, host: str, port: int, proto: str) -> LabError:
    if exc.errno == errno.EADDRINUSE:
        return LabError(f"{what}: {host}:{port}/{proto} is already in use (another `lab serve`?)")
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return LabError(f"{what}: out of file descriptors binding {host}:{port}/{proto}: raise `ulimit -n`")
    return LabError(f"{what}: cannot bind {host}:{port}/{proto}: {exc.strerror or exc}")
