"""Thin asyncio adapters for the sans-IO TFTP state machines in ``scanner.core.tftp``.

``tftp_fetch`` reads one file with a ``TftpReadClient`` over one unconnected datagram endpoint
(unconnected because the server answers from a new port, its transfer ID), its own or one lent
by a ``TftpSocketPool`` (the collector's choice: reused across clean transfers, with the
earlier transfers' stray datagrams kept away; see the class). The lab's server is
``scanner.lab.tftp_server``.

These adapters move bytes and time and nothing else: every protocol decision is in the state
machines. The clock is ``loop.time()``. Timers are lazy: one ``call_at`` handle per transfer
that is moved only when the state machine's deadline comes earlier; when it fires early, it
re-arms itself for the real deadline. A transfer that ends before its first timeout (nearly all
of them) thus costs one timer schedule and one cancel, not one per datagram.

Sockets are closed on every path. The client closes its transport in a ``finally`` (success,
ERROR, timeout, cancellation by the caller's ``asyncio.timeout``). Only local failures raise
(``OSError`` from name resolution, socket creation or bind, e.g. EMFILE); everything the network
does becomes a ``TftpResult``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import random
import socket
import time
from collections import deque
from typing import Any, cast

from scanner.core.evidence import Outcome
from scanner.core.tftp.client import (
    DEFAULT_BLKSIZE,
    DEFAULT_MAX_SIZE,
    DEFAULT_WINDOWSIZE,
    Address,
    TftpReadClient,
    TftpResult,
)
from scanner.core.tftp.packets import ErrorCode, Opcode, encode_error, opcode_of

__all__ = ["TftpSocketPool", "family_of", "tftp_fetch"]


# ---------------------------------------------------------------------------------------------
# Client


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _family(ip: IpAddress) -> int:
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def family_of(host: str) -> int | None:
    """The address family of an IP literal, or None for a name."""
    ip = _ip(host)
    return None if ip is None else _family(ip)


async def _resolve(loop: asyncio.AbstractEventLoop, host: str, port: int) -> tuple[int, Address, IpAddress]:
    ip = _ip(host)
    if ip is not None:
        return _family(ip), (host, port), ip
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"no address for {host!r}")
    family, _, _, _, sockaddr = infos[0]
    resolved = _ip(str(sockaddr[0]))
    if resolved is None:  # pragma: no cover - getaddrinfo answers with literals
        raise OSError(f"no IP address for {host!r}")
    return family, tuple(sockaddr), resolved


def _as_received(ip: IpAddress) -> str:
    # How recvfrom spells the address (compressed IPv6, scope kept), so that a reply's source
    # compares equal to the request's destination however the caller wrote it.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # Python < 3.13 writes '::ffff:7f00:1'; recvfrom reports '::ffff:127.0.0.1'.
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def _local_host(family: int, remote: IpAddress, local_host: str | None) -> str:
    if local_host is not None:
        return local_host
    # A loopback target gets a loopback source: nothing outside the machine can reach the socket.
    if remote.is_loopback:
        return "::1" if family == socket.AF_INET6 else "127.0.0.1"
    return "::" if family == socket.AF_INET6 else "0.0.0.0"


class _FetchProtocol(asyncio.DatagramProtocol):
    """Feeds one ``TftpReadClient`` from one datagram transport."""

    def __init__(self, client: TftpReadClient, server: Address, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self.server = server  # where the request goes (the server's well-known port)
        self._loop = loop
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._abandoned = False
        self._owned = True  # False on a pooled socket: the pool closes it, not the transfer
        self.last_error: OSError | None = None
        self.finished: asyncio.Future[TftpResult] = loop.create_future()

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: asyncio's own datagram transport does not subclass the ABC.
        self._transport = cast(asyncio.DatagramTransport, transport)
        if self._abandoned:
            transport.close()

    def attach(self, transport: asyncio.DatagramTransport | None) -> None:
        """Run on a socket someone else owns (a ``TftpSocketPool``'s): ``close`` leaves it open."""
        self._transport = transport
        self._owned = False

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if self.finished.done():
            return
        self._client.receive_datagram(data, addr, self._loop.time())
        self._pump()

    def error_received(self, exc: Exception) -> None:
        # An ICMP error or a failed sendto. Not fatal: the retransmission timer carries on, and
        # a transfer that then times out names the error in its message.
        if isinstance(exc, OSError):
            self.last_error = exc

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if not self.finished.done():
            self.finished.set_exception(exc if exc is not None else ConnectionError("socket closed"))

    # driving the state machine

    def start(self) -> None:
        self._client.start(self._loop.time())
        self._pump()

    def abandon(self) -> None:
        """The caller gave up before the transport was handed over: close it whenever it comes."""
        self._abandoned = True
        self.close()

    def close(self) -> None:
        self._cancel_timer()
        if not self.finished.done():
            # Cancelled from outside: connection_lost must not leave an exception nobody reads.
            self.finished.cancel()
        if self._transport is not None and self._owned:
            self._transport.close()

    def _pump(self) -> None:
        client = self._client
        transport = self._transport
        assert transport is not None
        if transport.is_closing():
            # The pool closed the socket under a running transfer: it ends here, not later in
            # a timer callback that cannot send.
            self.connection_lost(None)
            return
        for data, addr in client.datagrams_to_send(self._loop.time()):
            transport.sendto(data, self.server if addr is None else addr)
        result = client.result
        if result is not None:
            self._cancel_timer()
            if not self.finished.done():
                self.finished.set_result(result)
            return
        deadline = client.get_timer()
        if deadline is None:
            self._cancel_timer()
        elif self._timer is None or deadline < self._timer_at:
            self._cancel_timer()
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline
        # else: the armed handle fires no later than needed and re-arms itself in _on_timer

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._client.get_timer()
        if deadline is None or self.finished.done():
            return
        now = self._loop.time()
        if now < deadline:
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline
            return
        self._client.handle_timer(now)
        self._pump()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def tftp_fetch(
    host: str,
    port: int,
    filename: str,
    *,
    blksize: int | None = DEFAULT_BLKSIZE,
    windowsize: int | None = DEFAULT_WINDOWSIZE,
    timeout: float = 1.0,
    retries: int = 5,
    max_size: int = DEFAULT_MAX_SIZE,
    tsize: bool = True,
    local_host: str | None = None,
    rng: random.Random | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    pool: TftpSocketPool | None = None,
) -> TftpResult:
    """Read ``filename`` from the TFTP server at ``host``:``port``; see ``TftpReadClient``.

    ``local_host`` is the address to bind (port 0); by default loopback for a loopback target
    and the wildcard otherwise. The transfer ends on its own (retries bound it); wrap the call in
    ``asyncio.timeout`` for a hard limit, cancellation closes the socket too.

    ``pool``: take the socket from a ``TftpSocketPool`` (and give it back after a clean
    transfer) instead of opening and closing one per transfer.
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    family, server, ip = await _resolve(loop, host, port)
    client = TftpReadClient(
        filename,
        blksize=blksize,
        windowsize=windowsize,
        timeout=timeout,
        tsize=tsize,
        max_retries=retries,
        max_size=max_size,
        rng=rng,
        # Replies are taken only from the host the request goes to, in the kernel's spelling.
        server_host=_as_received(ip),
    )
    protocol = _FetchProtocol(client, server, loop)
    local = _local_host(family, ip, local_host)
    if pool is not None:
        return await pool.run(loop, family, local, protocol, client)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((local, 0))
        await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
    except asyncio.CancelledError:
        # The only suspension inside the endpoint's creation comes after its transport took the
        # socket, so the transport must be closed, not the socket (uvloop's transport owns the
        # descriptor; closing it underneath hangs loop.close()). asyncio closes its transport
        # itself, uvloop does not (0.23): the protocol closes it when connection_made arrives.
        protocol.abandon()
        raise
    except BaseException:
        sock.close()  # failed before any transport existed: the socket is still ours
        raise
    try:
        protocol.start()
        result = await protocol.finished
    finally:
        protocol.close()
    return _with_socket_error(result, protocol)


def _with_socket_error(result: TftpResult, protocol: _FetchProtocol) -> TftpResult:
    if result.outcome is Outcome.TIMEOUT and protocol.last_error is not None:
        result = dataclasses.replace(
            result, message=f"{result.message}; last socket error: {protocol.last_error}"
        )
    return result


# How long a server's transfer may still send to a client port after our side of it ended: a
# server retransmits its last datagram every timeout (the RFC 2349 option we send: 1 s by
# default) a handful of times (tftp-hpa's and the lab's defaults: 5 retransmissions, about 6 s
# in all). 15 s leaves room for a slower server and a delayed path. Ports are what separates
# transfers, so none is handed to a new transfer while its old transfers may still talk to it.
LINGER = 15.0
# A clean transfer's socket waits this long before serving another transfer. A request the
# network duplicated makes the server run a second transfer we never hear of; its first datagram
# follows the first transfer's within the path's delay (milliseconds), and while the socket waits
# it is refused and its sender barred, instead of being taken for the next transfer's first reply
# (found in review: a config stored under another phone's name). Later retransmissions of that
# transfer are barred once heard. Costs sockets: about (transfers per second) x QUIET of them.
QUIET = 0.5
# Idle sockets kept per local address; beyond that a finished transfer's socket is closed.
POOL_MAX_IDLE = 512
# Senders remembered per socket as barred; beyond that (a flood of spoofed sources) strays are
# dropped silently.
MAX_BARRED = 4096
# Sockets parked at most (each holds a descriptor for up to LINGER seconds); beyond that an
# unclean transfer's socket is closed and its port remembered as dirty instead (see the class).
POOL_MAX_PARKED = 4096
# Binds tried for a socket whose port is not dirty. The kernel picks from ~28,000 ephemeral
# ports, so even with thousands dirty the chance of needing more than a few is negligible.
MAX_BIND_TRIES = 32
# ERROR 5 replies a pooled socket sends between two transfers (as the state machine caps its
# own, MAX_STRAY_REPLIES): a flood of strays must not make us a reflector.
POOL_STRAY_REPLIES = 16

_PortKey = tuple[int, str, int]  # (family, local host, local port)


def _descriptor_caps() -> tuple[int, int]:
    """(idle, parked) socket caps within the process's open-files limit: a quarter of the soft
    limit for each at most, so that the pool never starves the rest of the scan (HTTP
    connections, evidence files) of descriptors, whatever ``ulimit -n`` says."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:
            soft = 1 << 16
    except (ImportError, OSError, ValueError):
        soft = 1024
    if soft <= 0:
        soft = 1024
    share = max(16, soft // 4)
    return min(POOL_MAX_IDLE, share), min(POOL_MAX_PARKED, share)


class _PooledSocket(asyncio.DatagramProtocol):
    """One client socket of a ``TftpSocketPool``: feeds the transfer it currently serves and
    keeps every earlier transfer's datagrams away from it."""

    def __init__(self, pool: TftpSocketPool, family: int, local: str) -> None:
        self.pool = pool
        self.family = family
        self.local = local
        self.port = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.current: _FetchProtocol | None = None
        self.client: TftpReadClient | None = None
        self.sources: set[tuple[Any, Any]] = set()  # TIDs heard from by the current transfer
        # Server TIDs of earlier transfers (and anyone who sent while the socket was idle or
        # parked), with the time until which nothing from them is taken as a first reply.
        self.barred: dict[tuple[Any, Any], float] = {}
        self.refused = 0  # datagrams refused here during the current transfer
        self.parked_until = 0.0  # > 0 while parked: serves no transfer before then
        self.replies = 0
        self.released_at = 0.0  # when its last transfer ended (monotonic)
        self.closed = False
        self.abandoned = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        if self.abandoned:
            transport.close()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        current = self.current
        key = (addr[0], addr[1])
        if current is not None and current.finished.done():
            current = None  # the transfer has its answer; what comes now is a stray (barred below)
        if current is not None:
            client = self.client
            assert client is not None
            if client.peer_locked:
                current.datagram_received(data, addr)  # the state machine answers strays itself
                return
            until = self.barred.get(key)
            if until is None or until <= time.monotonic():
                # Before the lock, the first reply from the request's host is the server's (RFC
                # 1350; the state machine checks the host), unless it is an earlier transfer's.
                self.sources.add(key)
                current.datagram_received(data, addr)
                return
            self.refused += 1
        # A late datagram of an earlier transfer, or anything while idle or parked: its sender
        # stays barred for a while (a retransmitting server would otherwise be taken for the next
        # transfer's reply), and is told RFC 1350 §4 ERROR 5, never an ERROR to an ERROR. With a
        # socket per transfer the closed port would have drawn an ICMP error: it stops either way.
        now = time.monotonic()
        barred = self.barred
        if len(barred) > MAX_BARRED:  # a flood of spoofed senders: forget the expired first
            for k in [k for k, t in barred.items() if t <= now]:
                del barred[k]
            if len(barred) > MAX_BARRED:
                return  # still flooded: drop silently, and send nothing back
        barred[key] = now + self.pool.linger
        self.pool.strays += 1
        if self.transport is None or self.replies >= POOL_STRAY_REPLIES or opcode_of(data) == Opcode.ERROR:
            return
        self.replies += 1
        self.pool.stray_replies += 1
        self.transport.sendto(encode_error(ErrorCode.UNKNOWN_TID), addr)

    def error_received(self, exc: Exception) -> None:
        if self.current is not None:
            self.current.error_received(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        current = self.current
        if current is not None:
            current.connection_lost(exc)

    def retire(self, now: float) -> None:
        """The current transfer ended: bar every TID it heard from, forget expired bars. A server
        that answered from its request port itself (behind some NATs) is not barred: the next
        transfer's request goes to that very port (its transfer is then not clean, see run)."""
        request = self.current.server if self.current is not None else None
        self.current = None
        self.client = None
        until = now + self.pool.linger
        barred = self.barred
        for key in self.sources:
            if request is None or (key[0], key[1]) != (request[0], request[1]):
                barred[key] = until
        self.sources = set()
        self.refused = 0
        self.replies = 0
        self.released_at = now
        if len(barred) > 64:
            for key in [k for k, t in barred.items() if t <= now]:
                del barred[key]

    def close(self) -> None:
        self.closed = True
        current = self.current
        self.current = None
        self.client = None
        if current is not None:
            current.connection_lost(None)  # a running transfer ends now, as a closed socket
        if self.transport is not None:
            self.transport.close()
        else:
            self.abandoned = True


class TftpSocketPool:
    """Client sockets reused across transfers: ``async with TftpSocketPool() as pool`` and pass
    ``pool=pool`` to ``tftp_fetch``.

    A socket per transfer costs a socket, a bind, a poller registration and a close (a dozen
    system calls and an event-loop transport) for a transfer of a handful of datagrams. A pool
    keeps the socket of a transfer that ended cleanly and gives it to the next transfer.

    What tells transfers apart is the client port: the server sends a transfer's datagrams to
    the port its request came from, and DATA carries no file name. A datagram of an earlier
    transfer (a server retransmitting, a duplicate, a reordered OACK) reaching the port while a
    later transfer waits for its first reply would be taken for that reply, and the earlier
    file stored under the later name. So, per port:

    * the first reply is taken only from the host the request went to (the state machine's
      rule), and after it only from that host and the server's TID port;
    * the TIDs a socket's transfers heard from are barred for ``linger`` seconds (a server may
      still retransmit to the port that long): nothing from them is a later transfer's first
      reply, anything from them is answered ERROR 5 (Unknown transfer ID) and counted. A server
      port that comes round again within that time costs one retransmitted request;
    * a socket goes back to the idle list only after a *clean* transfer: outcome ``ok`` or
      ``not_found``, no retransmission (so the server saw one request and started one
      transfer, the one we heard from), no duplicate, no stray, no socket error;
    * after any other transfer (retransmitted request: the server may be running a second
      transfer we never heard of; timeout; cancellation) the socket is *parked* for ``linger``
      seconds: bound, so the kernel cannot give its port to anyone, answering every datagram
      with ERROR 5 (which also frees the straggling transfer's slot at the server sooner), and
      then idle again. Beyond ``max_parked`` such sockets, or when an idle socket is closed, the
      port is remembered as *dirty* for ``linger`` seconds: a new socket whose bind lands on a
      dirty port is parked in turn and another bound.

    Within the process no transfer therefore runs on a port that another transfer used less
    than ``linger`` seconds ago, except a clean transfer's socket, whose one server transfer is
    known and barred. (Ports the kernel gives to other processes are beyond our reach.)

    Counters: ``created`` sockets opened, ``reused`` transfers served by a pooled socket,
    ``parked`` sockets parked, ``dirty_binds`` binds that landed on a dirty port, ``strays``
    datagrams that belonged to no transfer of theirs and were ignored (refused here, or by a
    transfer's state machine: wrong host, wrong TID, not a possible first reply),
    ``stray_replies`` ERROR 5 sent for them by the pool's sockets.

    ``close()`` (or leaving the ``async with``) closes every socket, idle, parked or busy.
    """

    def __init__(
        self,
        max_idle: int | None = None,
        *,
        linger: float = LINGER,
        max_parked: int | None = None,
        quiet: float = QUIET,
    ) -> None:
        idle_cap, parked_cap = _descriptor_caps()
        max_idle = idle_cap if max_idle is None else max_idle
        max_parked = parked_cap if max_parked is None else max_parked
        self._idle: dict[tuple[int, str], deque[_PooledSocket]] = {}
        self._open: set[_PooledSocket] = set()
        self._parked: deque[_PooledSocket] = deque()
        self._dirty: dict[_PortKey, float] = {}
        self._dirty_order: deque[tuple[_PortKey, float]] = deque()
        self._max_idle = max_idle
        self._max_parked = max_parked
        self.linger = linger
        self.quiet = quiet
        self._closed = False
        self.created = 0
        self.reused = 0
        self.parked = 0
        self.dirty_binds = 0
        self.strays = 0
        self.stray_replies = 0

    async def __aenter__(self) -> TftpSocketPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        for ps in list(self._open):
            ps.close()
        self._open.clear()
        self._idle.clear()
        self._parked.clear()

    @property
    def open_sockets(self) -> int:
        return len(self._open)

    @property
    def parked_sockets(self) -> int:
        return len(self._parked)

    def _take_idle(self, family: int, local: str) -> _PooledSocket | None:
        if self._closed:
            raise RuntimeError("TftpSocketPool used after close()")
        if self._parked:
            self._unpark(time.monotonic())
        idle = self._idle.get((family, local))
        now = time.monotonic()
        while idle:
            ps = idle[0]  # the longest idle
            if ps.closed:
                idle.popleft()
                self._open.discard(ps)
                continue
            if now - ps.released_at < self.quiet:
                return None  # none is quiet yet (the rest are younger): a new socket
            idle.popleft()
            self.reused += 1
            return ps
        return None

    def _unpark(self, now: float) -> None:
        # In parking order; a socket parked for a dirty port's shorter remainder may wait behind
        # a later one: at most ``linger`` more, never less than its own time.
        parked = self._parked
        while parked and parked[0].parked_until <= now:
            ps = parked.popleft()
            ps.parked_until = 0.0
            if ps.closed:
                self._open.discard(ps)
                continue
            ps.retire(now)
            self._to_idle(ps, now)

    def _to_idle(self, ps: _PooledSocket, now: float) -> None:
        idle = self._idle.setdefault((ps.family, ps.local), deque())
        if self._closed or ps.closed or len(idle) >= self._max_idle:
            self._close(ps, now)
        else:
            idle.append(ps)

    def _park(self, ps: _PooledSocket, until: float, now: float) -> None:
        if self._closed or ps.closed or len(self._parked) >= self._max_parked:
            self._close(ps, now)
            return
        ps.parked_until = until
        self._parked.append(ps)
        self.parked += 1

    def _close(self, ps: _PooledSocket, now: float) -> None:
        """Close a socket whose port may still be sent to: remembered as dirty until then."""
        ps.close()
        self._open.discard(ps)
        if ps.port and not self._closed:
            key = (ps.family, ps.local, ps.port)
            until = now + self.linger
            self._dirty[key] = until
            self._dirty_order.append((key, until))

    def _is_dirty(self, key: _PortKey, now: float) -> float | None:
        order, dirty = self._dirty_order, self._dirty
        while order and order[0][1] <= now:
            old, expiry = order.popleft()
            if dirty.get(old) == expiry:
                del dirty[old]
        until = dirty.get(key)
        return until if until is not None and until > now else None

    async def _acquire(self, loop: asyncio.AbstractEventLoop, family: int, local: str) -> _PooledSocket:
        for _ in range(MAX_BIND_TRIES):
            ps = await self._open_socket(loop, family, local)
            now = time.monotonic()
            until = self._is_dirty((family, local, ps.port), now)
            if until is None:
                return ps
            # The kernel handed out a port an earlier transfer of ours may still be sent to:
            # hold it until then, so that the next bind cannot get it either.
            self.dirty_binds += 1
            self._park(ps, until, now)
        raise OSError(f"no clean TFTP client port on {local} after {MAX_BIND_TRIES} binds")

    async def _open_socket(self, loop: asyncio.AbstractEventLoop, family: int, local: str) -> _PooledSocket:
        ps = _PooledSocket(self, family, local)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((local, 0))
            ps.port = sock.getsockname()[1]
            await loop.create_datagram_endpoint(lambda: ps, sock=sock)
        except asyncio.CancelledError:
            ps.close()  # see tftp_fetch: the transport owns the socket now, or will
            raise
        except BaseException:
            sock.close()
            raise
        self.created += 1
        self._open.add(ps)
        return ps

    def _release(self, ps: _PooledSocket, clean: bool) -> None:
        now = time.monotonic()
        ps.retire(now)
        if ps.closed or self._closed:
            self._close(ps, now)
            return
        if clean:
            self._to_idle(ps, now)
        else:
            self._park(ps, now + self.linger, now)

    async def run(
        self,
        loop: asyncio.AbstractEventLoop,
        family: int,
        local: str,
        protocol: _FetchProtocol,
        client: TftpReadClient,
    ) -> TftpResult:
        """One transfer (``tftp_fetch`` with ``pool``) on a pooled socket, given back afterwards."""
        # An idle socket without a coroutine (nearly every transfer of a scan); a new one with.
        ps = self._take_idle(family, local) or await self._acquire(loop, family, local)
        protocol.attach(ps.transport)
        ps.current = protocol
        ps.client = client
        clean = False
        try:
            protocol.start()
            result = await protocol.finished
            refused = ps.refused
            self.strays += client.strays
            if refused:
                result = dataclasses.replace(result, strays=result.strays + refused)
            clean = (
                (result.outcome is Outcome.OK or result.outcome is Outcome.NOT_FOUND)
                and result.retransmissions == 0
                and result.duplicates == 0
                and result.strays == 0
                and protocol.last_error is None
                # A server that answered from its request port cannot be barred (the next request
                # goes there): its socket is parked instead of reused.
                and (result.peer is None or tuple(result.peer[:2]) != tuple(protocol.server[:2]))
            )
        finally:
            protocol.close()
            self._release(ps, clean)
        return _with_socket_error(result, protocol)
