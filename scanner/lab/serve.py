"""``trustscan lab serve DIR``: serve a built lab on loopback until stopped.

Per TFTP node, on its own address: TFTP over UDP (``scanner.net.tftp_io.TftpServer``) and HTTP on
the port standing for 6970. Per phone, on its own address: its web pages (or nothing when web
access is off: connection refused). Per TVS node: a TLS server that presents the node's TVS
certificate and demands a client certificate (TLS 1.2 by default, 1.3 as an option); a TVS that
is down does not listen.

HTTP is one aiohttp low-level ``web.Server`` (one protocol factory) bound to every address with
``loop.create_server``: each listener costs one socket, and the handler tells the target by the
local address the connection came to.

Anything that fails at start (a port in use, too few file descriptors) closes what was opened
and raises ``LabError`` naming the address and port.
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
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from scanner.lab.build import LAB_FORMAT
from scanner.lab.errors import LabError
from scanner.lab.pages import device_page, network_page, status_page
from scanner.lab.scenario import check_loopback
from scanner.net.tftp_io import TftpFaults, TftpServer
from scanner.tftp.packets import ErrorCode
from scanner.trustlist import parse_header

__all__ = ["LabServer", "load_lab", "raise_nofile_limit"]

_PER_PHONE = re.compile(r"(CTL|ITL)SEP([0-9A-Fa-f]{12})\.tlv")
# File descriptors the lab needs beyond one per listening phone: nodes, TVS, TFTP transfer
# sockets in flight, HTTP connections, the interpreter's own.
FD_MARGIN = 512
_READ_CACHE = 4096


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
        try:
            return (self.directory / name).read_bytes()
        except OSError:
            return None

    def lookup(self, name: str) -> bytes | None:
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
    """Every service of a lab in one event loop. ``await start()``, then ``await stop()``."""

    def __init__(self, directory: str | Path, *, tls13: bool = False, host_check: bool = True) -> None:
        self.dir, self.lab = load_lab(directory)
        self.tls13 = tls13
        self.services: list[Service] = []
        self._tftp: list[TftpServer] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._targets: dict[tuple[str, int], _HttpTarget] = {}
        self._stalled: set[asyncio.Future[None]] = set()
        self._http: web.Server | None = None
        self.phones_listening = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, on_service: Callable[[Service], None] | None = None) -> None:
        emit = on_service or (lambda _s: None)
        phones_on = sum(1 for p in self.lab["phones"] if p["web"] != "off")
        limit = raise_nofile_limit()
        needed = phones_on + FD_MARGIN
        if limit < needed:
            raise LabError(
                f"open-files limit {limit} is too low for {phones_on} phone web servers (+{FD_MARGIN}); "
                f"about {max(0, limit - FD_MARGIN)} phones fit: raise `ulimit -n` or build with fewer --phones"
            )
        try:
            await self._start_all(emit)
        except BaseException:
            await self.stop()
            raise

    async def _start_all(self, emit: Callable[[Service], None]) -> None:
        loop = asyncio.get_running_loop()
        self._http = web.Server(self._handle, handler_cancellation=True, access_log=None)
        seed = zlib.crc32(str(self.lab["seed"]).encode())
        for cname, cluster in self.lab["clusters"].items():
            for node in cluster["tftp"]:
                faults = node.get("faults", {})
                name, address = node["name"], node["address"]
                if "node-dead" in faults:
                    s = Service(
                        "DEAD", name, address, node["tftp_port"], f"{cname} TFTP node down: nothing listens"
                    )
                    self.services.append(s)
                    emit(s)
                    continue
                files = NodeFiles(self.dir / node["dir"])
                tftp_faults, max_active = _tftp_faults(faults, seed)
                server = TftpServer(files.lookup, faults=tftp_faults, max_active=max_active)
                try:
                    await server.start(address, node["tftp_port"])
                except OSError as exc:
                    server.close()
                    raise _bind_error(
                        exc, f"{cname} TFTP node {name}", address, node["tftp_port"], "udp"
                    ) from None
                self._tftp.append(server)
                s = Service("TFTP", name, address, server.port, _fault_note(faults, "tftp"))
                self.services.append(s)
                emit(s)
                http_faults = {k: v for k, v in faults.items() if "http" in v.get("protocols", ("http",))}
                await self._listen(
                    loop,
                    address,
                    node["http_port"],
                    _HttpTarget("node", files, http_faults),
                    f"{cname} HTTP node {name}",
                )
                s = Service("HTTP", name, address, node["http_port"], _fault_note(faults, "http"))
                self.services.append(s)
                emit(s)
            for tvs in cluster["tvs"]:
                if tvs.get("down"):
                    s = Service(
                        "DOWN", tvs["name"], tvs["address"], tvs["port"], f"{cname} TVS down: nothing listens"
                    )
                    self.services.append(s)
                    emit(s)
                    continue
                ctx = self._tvs_context(tvs)
                try:
                    srv = await asyncio.start_server(
                        _tvs_session, tvs["address"], tvs["port"], ssl=ctx, ssl_handshake_timeout=10
                    )
                except OSError as exc:
                    raise _bind_error(
                        exc, f"{cname} TVS {tvs['name']}", tvs["address"], tvs["port"], "tcp"
                    ) from None
                self._servers.append(srv)
                s = Service(
                    "TVS",
                    tvs["name"],
                    tvs["address"],
                    tvs["port"],
                    f"{cname}, TLS 1.{3 if self.tls13 else 2}",
                )
                self.services.append(s)
                emit(s)
        port = int(self.lab["web_port"])
        off = 0
        for phone in self.lab["phones"]:
            if phone["web"] == "off":
                off += 1
                continue
            await self._listen(
                loop, phone["ip"], port, _HttpTarget("phone", phone=phone), f"phone {phone['name']} web"
            )
            self.phones_listening += 1
        phones = self.lab["phones"]
        first, last = (phones[0]["ip"], phones[-1]["ip"]) if phones else ("-", "-")
        s = Service(
            "WEB",
            f"{self.phones_listening} phones",
            f"{first}..{last}",
            port,
            f"{off} with web access off: connection refused",
        )
        self.services.append(s)
        emit(s)

    async def _listen(
        self, loop: asyncio.AbstractEventLoop, host: str, port: int, target: _HttpTarget, what: str
    ) -> None:
        assert self._http is not None
        try:
            srv = await loop.create_server(self._http, host, port, reuse_address=True, backlog=128)
        except OSError as exc:
            raise _bind_error(exc, what, host, port, "tcp") from None
        self._servers.append(srv)
        self._targets[(host, port)] = target

    async def stop(self) -> None:
        for t in self._tftp:
            t.close()
        self._tftp.clear()
        for fut in list(self._stalled):
            fut.cancel()
        servers, self._servers = self._servers, []
        for srv in servers:
            srv.close()
        if self._http is not None:
            with contextlib.suppress(Exception):
                await self._http.shutdown(0.5)
        for srv in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1.0)

    # -- TVS ---------------------------------------------------------------------------------

    def _tvs_context(self, tvs: dict[str, Any]) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.dir / tvs["cert"], self.dir / tvs["key"])
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(self.dir / self.lab["mic_ca"])
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3 if self.tls13 else ssl.TLSVersion.TLSv1_2
        # The seed's TVS log shows AES256-SHA; offer it first, then modern suites.
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
        path = request.path
        adapter = request.query.get("adapter", "")
        if path == "/NetworkConfiguration" or (
            path == "/CGI/Java/Serviceability" and adapter == "device.statistics.configuration"
        ):
            body = network_page(phone, self.lab["trust_variants"])
        elif path == "/CGI/Java/Serviceability" and adapter == "device.settings.status.messages":
            body = status_page(phone)
        elif path in ("/", "/DeviceInformation") or (
            path == "/CGI/Java/Serviceability" and adapter == "device.statistics.device"
        ):
            body = device_page(phone)
        else:
            return web.Response(status=404, text="Not Found\n")
        return web.Response(text=body, content_type="text/html", charset="utf-8")

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
        data = target.node.lookup(request.path)
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


async def _tvs_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept the TLS session and read until the client goes away: the lab's TVS speaks no TVS
    protocol; it exists so that a probe sees the server certificate a phone would."""
    try:
        async with asyncio.timeout(10):
            while await reader.read(65536):
                pass
    except (TimeoutError, OSError, ssl.SSLError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


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
