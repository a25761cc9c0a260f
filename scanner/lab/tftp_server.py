"""The lab's TFTP server: ``ServerReadTransfer`` state machines (``scanner.core.tftp.server``) on
non-blocking UDP sockets, one fresh socket per transfer as real servers do, with the faults the
simulated lab injects (``TftpFaults``).

It reads with ``loop.add_reader`` and plain non-blocking ``recvfrom``/``sendto`` instead of
transports: a transfer is a handful of datagrams and a transport per transfer costs more than the
transfer itself. That needs a selector-based loop (asyncio's default on Unix, or uvloop), not the
Windows proactor loop. A transfer's socket is closed the moment its state machine is done, and
``close()`` closes every socket still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scanner.core.tftp.client import Address
from scanner.core.tftp.packets import ErrorCode
from scanner.core.tftp.server import (
    Reject,
    ServerOutcome,
    ServerReadTransfer,
    ServerSettings,
    ServerTransferResult,
    decide,
)
from scanner.net.tftp_io import family_of

__all__ = ["ServerStats", "TftpFaults", "TftpServer", "serve_tftp"]

# Receive buffer asked for the server's request socket: a burst of thousands of RRQs (a fleet
# scan starting) must queue, not be dropped. The kernel caps it at net.core.rmem_max.
REQUEST_RCVBUF = 4 * 1024 * 1024
# Largest UDP payload over IPv4 (65535 - 20 IP - 8 UDP); no TFTP datagram can be longer.
MAX_DATAGRAM = 65507
# Datagrams read per wake-up before yielding to the loop, so that one busy socket cannot starve
# the others. 64 is a full RFC 7440 window at tftp-hpa's limit.
READ_BATCH = 64


@dataclass(frozen=True, slots=True)
class TftpFaults:
    """Faults the lab server injects. All off by default.

    ``loss``: probability that any outgoing datagram is dropped (drawn from ``random.Random(seed)``,
    so a run is repeatable). ``delay``: seconds every outgoing datagram waits before it is sent.
    ``error_reply``: answer every request with this ERROR ``(code, message)`` instead of serving
    it. ``truncate``: serve only the first N bytes of every file while announcing the full size
    in tsize, as a server whose file changed mid-transfer would. ``duplicate``: probability that a
    datagram that was sent goes out twice (a network duplicating it). ``jitter``: each copy waits
    an extra random 0..jitter seconds, so that datagrams overtake one another (reordering).
    """

    loss: float = 0.0
    delay: float = 0.0
    seed: int = 0
    error_reply: tuple[int, str] | None = None
    truncate: int | None = None
    duplicate: float = 0.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError("loss must be a probability in 0..1")
        if not 0.0 <= self.duplicate <= 1.0:
            raise ValueError("duplicate must be a probability in 0..1")
        if self.delay < 0 or self.jitter < 0:
            raise ValueError("delay and jitter must be >= 0")
        if self.truncate is not None and self.truncate < 0:
            raise ValueError("truncate must be >= 0")


@dataclass(slots=True)
class ServerStats:
    """Counters since start; read them while the server runs or after it stopped."""

    requests: int = 0  # datagrams that reached the request port
    ignored: int = 0  # of those, not a request (RFC 1350 gives no answer)
    rejected: int = 0  # answered with ERROR: not found, malformed, WRQ, fault mode
    not_found: int = 0  # of the rejected, "File not found"
    busy: int = 0  # dropped because max_active transfers were running
    lookup_errors: int = 0  # the lookup callable raised; answered with ERROR 0
    transfers: int = 0  # transfers started
    ok: int = 0
    timeouts: int = 0
    aborted: int = 0  # the client sent an ERROR
    protocol_errors: int = 0
    sent: int = 0  # datagrams handed to the kernel
    dropped: int = 0  # datagrams dropped by the loss fault
    duplicated: int = 0  # extra copies sent by the duplicate fault
    send_errors: int = 0  # sendto failures (full buffer, closed socket): the same as loss


class _Transfer:
    """One server transfer: its socket, its state machine, its lazy timer."""

    __slots__ = ("fd", "machine", "server", "sock", "timer", "timer_at")

    def __init__(self, server: TftpServer, sock: socket.socket, machine: ServerReadTransfer) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.machine = machine
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0


class TftpServer:
    """A read-only TFTP server over the sans-IO ``ServerReadTransfer``; for the lab and tests.

    ``lookup(filename)`` returns the file's bytes or None for "File not found". ``max_active``
    models CUCM's "Maximum Serving Count": requests beyond it are dropped unanswered, so the
    client sees a timeout. ``on_transfer`` is called with each finished transfer's result.
    """

    def __init__(
        self,
        lookup: Callable[[str], bytes | None],
        *,
        faults: TftpFaults | None = None,
        settings: ServerSettings | None = None,
        max_active: int | None = None,
        on_transfer: Callable[[ServerTransferResult], None] | None = None,
    ) -> None:
        self._lookup = lookup
        self.faults = faults if faults is not None else TftpFaults()
        self.settings = settings if settings is not None else ServerSettings()
        self._max_active = max_active
        self._on_transfer = on_transfer
        self._rng = random.Random(self.faults.seed)
        self._loss = self.faults.loss
        self._delay = self.faults.delay
        self._duplicate = self.faults.duplicate
        self._jitter = self.faults.jitter
        self.stats = ServerStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._family: int = socket.AF_INET
        self._host = ""
        self._port = 0
        self._transfers: set[_Transfer] = set()
        self._delayed: set[asyncio.TimerHandle] = set()

    # lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Bind the request socket on ``host`` (an IP literal) and ``port``; return the bound port."""
        if self._sock is not None:
            raise RuntimeError("server already started")
        family = family_of(host)
        if family is None:
            raise ValueError(f"host must be an IP address literal, not {host!r}")
        loop = asyncio.get_running_loop()
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            # A smaller buffer than asked only means more drops under a burst.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, REQUEST_RCVBUF)
            sock.bind((host, port))
            loop.add_reader(sock.fileno(), self._on_request)
        except BaseException:
            sock.close()
            raise
        self._loop = loop
        self._sock = sock
        self._family = family
        self._host = host
        self._port = sock.getsockname()[1]
        return self._port

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def active(self) -> int:
        """Transfers in progress (each holds one socket)."""
        return len(self._transfers)

    def close(self) -> None:
        """Close every socket and cancel every timer now. Idempotent."""
        loop = self._loop
        sock, self._sock = self._sock, None
        if sock is not None and loop is not None:
            loop.remove_reader(sock.fileno())
            sock.close()
        for transfer in list(self._transfers):
            self._end(transfer)
        for handle in self._delayed:
            handle.cancel()
        self._delayed.clear()

    async def stop(self) -> None:
        self.close()

    async def __aenter__(self) -> TftpServer:
        if self._sock is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # requests

    def _on_request(self) -> None:
        sock = self._sock
        if sock is None:
            return
        stats = self.stats
        for _ in range(READ_BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. a queued ICMP error; nothing to read this time
            stats.requests += 1
            try:
                decision = decide(data, self._lookup)
            except Exception as exc:
                # A bug in the caller's lookup: report it through the loop, answer like a server
                # with an internal error, and keep serving the others.
                assert self._loop is not None
                self._loop.call_exception_handler(
                    {"message": "TFTP lookup failed", "exception": exc, "request": data}
                )
                stats.lookup_errors += 1
                self._send_reject(Reject(ErrorCode.NOT_DEFINED, "Internal server error").packet(), addr)
                continue
            if decision is None:
                stats.ignored += 1
                continue
            if self.faults.error_reply is not None:
                code, message = self.faults.error_reply
                decision = Reject(code, message)
            if isinstance(decision, Reject):
                stats.rejected += 1
                if decision.code == ErrorCode.FILE_NOT_FOUND:
                    stats.not_found += 1
                self._send_reject(decision.packet(), addr)
                continue
            if self._max_active is not None and len(self._transfers) >= self._max_active:
                stats.busy += 1
                continue
            content = decision.content
            announced = None
            truncate = self.faults.truncate
            if truncate is not None and truncate < len(content):
                announced, content = len(content), content[:truncate]
            machine = ServerReadTransfer(
                decision.request, content, addr, settings=self.settings, announced_size=announced
            )
            try:
                tsock = self._transfer_socket()
            except OSError:
                stats.send_errors += 1  # out of descriptors: as if the request was lost
                continue
            transfer = _Transfer(self, tsock, machine)
            assert self._loop is not None
            self._loop.add_reader(transfer.fd, self._on_transfer_readable, transfer)
            self._transfers.add(transfer)
            stats.transfers += 1
            machine.start(self._loop.time())
            self._pump(transfer)

    def _transfer_socket(self) -> socket.socket:
        # A fresh port on the same address the request came to: the transfer ID (RFC 1350 §4).
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((self._host, 0))
        except BaseException:
            sock.close()
            raise
        return sock

    def _send_reject(self, packet: bytes, addr: Address) -> None:
        # Errors go out from a fresh TID too, as tftp-hpa sends them, and are never retransmitted.
        if self._loss and self._rng.random() < self._loss:
            self.stats.dropped += 1
            return
        if self._delay or self._jitter:
            self._later(self._reject_now, packet, addr)
        else:
            self._reject_now(packet, addr)

    def _reject_now(self, packet: bytes, addr: Address) -> None:
        try:
            sock = self._transfer_socket()
        except OSError:
            self.stats.send_errors += 1
            return
        with sock:
            try:
                sock.sendto(packet, addr)
                self.stats.sent += 1
            except OSError:
                self.stats.send_errors += 1

    # transfers

    def _on_transfer_readable(self, transfer: _Transfer) -> None:
        machine = transfer.machine
        sock = transfer.sock
        assert self._loop is not None
        now = self._loop.time()
        for _ in range(READ_BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            machine.receive_datagram(data, addr, now)
            if machine.done:
                break
        self._pump(transfer)

    def _pump(self, transfer: _Transfer) -> None:
        machine = transfer.machine
        loop = self._loop
        assert loop is not None
        sock = transfer.sock
        stats = self.stats
        for data, addr in machine.datagrams_to_send(loop.time()):
            if self._loss and self._rng.random() < self._loss:
                stats.dropped += 1
                continue
            copies = 1
            if self._duplicate and self._rng.random() < self._duplicate:
                copies = 2
                stats.duplicated += 1
            for _ in range(copies):
                if self._delay or self._jitter:
                    self._later(self._send_now, sock, data, addr)
                else:
                    try:
                        sock.sendto(data, addr)
                        stats.sent += 1
                    except OSError:
                        stats.send_errors += 1
        if machine.done:
            self._end(transfer)
            return
        deadline = machine.get_timer()
        if deadline is None:
            return
        if transfer.timer is None or deadline < transfer.timer_at:
            if transfer.timer is not None:
                transfer.timer.cancel()
            transfer.timer = loop.call_at(deadline, self._on_transfer_timer, transfer)
            transfer.timer_at = deadline

    def _on_transfer_timer(self, transfer: _Transfer) -> None:
        transfer.timer = None
        machine = transfer.machine
        deadline = machine.get_timer()
        if deadline is None or transfer not in self._transfers:
            return
        assert self._loop is not None
        now = self._loop.time()
        if now < deadline:
            transfer.timer = self._loop.call_at(deadline, self._on_transfer_timer, transfer)
            transfer.timer_at = deadline
            return
        machine.handle_timer(now)
        self._pump(transfer)

    def _end(self, transfer: _Transfer) -> None:
        if transfer not in self._transfers:
            return
        self._transfers.discard(transfer)
        if transfer.timer is not None:
            transfer.timer.cancel()
            transfer.timer = None
        assert self._loop is not None
        self._loop.remove_reader(transfer.fd)
        transfer.sock.close()
        result = transfer.machine.result
        if result is None:
            return  # closed by close() mid-transfer
        stats = self.stats
        if result.outcome is ServerOutcome.OK:
            stats.ok += 1
        elif result.outcome is ServerOutcome.TIMEOUT:
            stats.timeouts += 1
        elif result.outcome is ServerOutcome.ABORTED:
            stats.aborted += 1
        else:
            stats.protocol_errors += 1
        if self._on_transfer is not None:
            self._on_transfer(result)

    # delayed sends (the delay fault)

    def _later(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            assert handle is not None
            self._delayed.discard(handle)
            callback(*args)

        delay = self._delay
        if self._jitter:
            delay += self._jitter * self._rng.random()
        handle = self._loop.call_later(delay, fire)
        self._delayed.add(handle)

    def _send_now(self, sock: socket.socket, data: bytes, addr: Address) -> None:
        try:
            sock.sendto(data, addr)  # OSError if the transfer ended (socket closed) meanwhile
            self.stats.sent += 1
        except OSError:
            self.stats.send_errors += 1


async def serve_tftp(
    host: str,
    port: int,
    lookup: Callable[[str], bytes | None],
    *,
    faults: TftpFaults | None = None,
    settings: ServerSettings | None = None,
    max_active: int | None = None,
) -> TftpServer:
    """Start a ``TftpServer`` on ``host``:``port`` (0 for any) and return it; ``server.port`` is bound."""
    server = TftpServer(lookup, faults=faults, settings=settings, max_active=max_active)
    await server.start(host, port)
    return server
