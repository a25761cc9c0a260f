"""Sans-IO TFTP server side: decide what to do with a request, then run one read transfer.

Used by the simulated lab; kept as careful as the client because the client's tests lean on
it. The adapter (``scanner.lab.tftp_server.TftpServer``) owns the sockets, one new socket per
transfer (its TID, as real servers do), and injects faults by dropping or delaying what this
state machine asks it to send; the state machine only has to stay correct under loss.

* ``decide(datagram, lookup)`` parses what arrived at the well-known port: a read request for
  a file that exists becomes ``Serve``, anything refusable becomes ``Reject`` (an ERROR to send
  from a fresh TID, as tftp-hpa does), and a datagram that is not a request is ``None``: RFC 1350
  gives nothing to answer it with, and answering garbage would make the server a reflector.
  ``lookup`` returns None (or raises ``FileNotFoundError``) for ERROR 1 "File not found"; any
  other ``OSError`` it raises is ERROR 0 with the reason, never "not found".
* ``ServerReadTransfer`` negotiates options the way tftp-hpa does: blksize 8..65464 clamped to
  the server's maximum, tsize answered with the size, timeout 1..255 echoed, windowsize clamped
  to 64; options it cannot parse are left out of the OACK (RFC 2347 lets a server ignore them).
  With options it sends OACK and waits for ACK 0; without, DATA 1 goes out at once with 512-byte
  blocks and a window of one.
* ACKs: the ACK of the last block of the window, or of any block inside it (RFC 7440: the client
  saw a gap), moves the window on and the next window goes out at once. A duplicate of the ACK
  already received is ignored: resending on a duplicate ACK is the Sorcerer's Apprentice bug
  (RFC 1123 §4.2.3.1), where a delayed DATA makes both sides double every packet from then on.
  Lost DATA is therefore recovered by the retransmission timer, which resends the whole
  unacknowledged window (or the OACK) every ``timeout`` seconds, ``max_retries`` times.
* Transfer IDs: datagrams from any address other than the client's get ERROR 5 (unless they
  are ERRORs themselves) and do not disturb the transfer. An ERROR from the client ends the
  transfer (``aborted``); garbage or a wrong opcode from it gets ERROR 4 and ends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from scanner.core.errors import ParseError
from scanner.core.tftp.client import (
    MAX_BLKSIZE,
    MAX_STRAY_REPLIES,
    MAX_TIMEOUT_OPTION,
    MAX_WINDOWSIZE,
    MIN_BLKSIZE,
    MIN_TIMEOUT_OPTION,
    RFC1350_BLKSIZE,
    Address,
)
from scanner.core.tftp.packets import (
    Ack,
    ErrorCode,
    ErrorPacket,
    Opcode,
    Options,
    ReadRequest,
    WriteRequest,
    decode,
    encode_data,
    encode_error,
    encode_oack,
    opcode_of,
    option_int,
)

__all__ = [
    "Reject",
    "Serve",
    "ServerOutcome",
    "ServerReadTransfer",
    "ServerSettings",
    "ServerTransferResult",
    "decide",
    "to_netascii",
]

_REQUEST_OPCODES = frozenset({Opcode.RRQ, Opcode.WRQ})


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Server-wide behaviour. The defaults are tftp-hpa's."""

    timeout: float = 1.0  # retransmission interval when the client sends no timeout option
    max_retries: int = 5  # timer-driven retransmissions before the transfer is abandoned
    max_blksize: int = MAX_BLKSIZE  # tftp-hpa -B; 1468 would model a server that caps to the MTU
    max_windowsize: int = MAX_WINDOWSIZE  # tftp-hpa refuses more than 64
    options: bool = True  # False: an RFC 1350-only server that never sends OACK

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError("timeout must be positive")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not MIN_BLKSIZE <= self.max_blksize <= MAX_BLKSIZE:
            raise ValueError(f"max_blksize outside {MIN_BLKSIZE}..{MAX_BLKSIZE}")
        if not 1 <= self.max_windowsize <= 0xFFFF:
            raise ValueError("max_windowsize outside 1..65535")


@dataclass(frozen=True, slots=True)
class Serve:
    """Start a ``ServerReadTransfer`` for ``request`` with ``content``."""

    request: ReadRequest
    content: bytes


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer the request with this ERROR (from a fresh TID) and forget it."""

    code: int
    message: str

    def packet(self) -> bytes:
        return encode_error(self.code, self.message)


def decide(data: bytes, lookup: Callable[[str], bytes | None]) -> Serve | Reject | None:
    """What to do with a datagram that reached the server's well-known port."""
    if opcode_of(data) not in _REQUEST_OPCODES:
        return None
    try:
        packet = decode(data)
    except ParseError as exc:
        return Reject(ErrorCode.ILLEGAL_OPERATION, f"Malformed request: {exc}")
    if isinstance(packet, WriteRequest):
        return Reject(ErrorCode.ACCESS_VIOLATION, "Access violation: this server is read-only")
    assert isinstance(packet, ReadRequest)
    if packet.mode not in ("octet", "netascii"):
        return Reject(ErrorCode.ILLEGAL_OPERATION, f"Unsupported mode {packet.mode!r}")
    try:
        content = lookup(packet.filename)
    except FileNotFoundError:
        content = None
    except OSError as exc:
        # The server has the file but cannot read it now (EMFILE, EIO, ...): that is not "File
        # not found", which a client takes as a fact about the file. ERROR 0 with the reason.
        return Reject(ErrorCode.NOT_DEFINED, f"Cannot read {packet.filename}: {exc.strerror or exc}")
    if content is None:
        return Reject(ErrorCode.FILE_NOT_FOUND, "File not found")
    return Serve(packet, content)


def to_netascii(data: bytes) -> bytes:
    """RFC 764 NVT line endings, as netascii mode sends them: CR becomes CR NUL, LF becomes CR LF."""
    return data.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")


class ServerOutcome(StrEnum):
    OK = "ok"  # the client ACKed the last block
    TIMEOUT = "timeout"  # retries exhausted
    ABORTED = "aborted"  # the client sent an ERROR
    PROTOCOL_ERROR = "protocol_error"  # the client sent garbage or a wrong packet


@dataclass(frozen=True, slots=True)
class ServerTransferResult:
    filename: str
    outcome: ServerOutcome
    size: int  # bytes of content offered
    blocks: int  # DATA blocks in the file (the short last one included)
    data_sent: int  # DATA datagrams sent, retransmissions included
    retransmissions: int  # datagrams re-sent by the timer (OACK or DATA)
    blksize: int
    windowsize: int
    oack: bool
    error_code: int | None = None  # the client's ERROR code, if it sent one
    message: str = ""
    elapsed: float = 0.0


class _State(Enum):
    IDLE = 0
    OACK_SENT = 1
    SENDING = 2
    DONE = 3


def _addr_key(addr: Address) -> tuple[Any, Any]:
    return (addr[0], addr[1])


def _negotiate(request: ReadRequest, size: int, settings: ServerSettings) -> tuple[int, int, float, Options]:
    """(blksize, windowsize, timeout, OACK options) for ``request``; OACK empty = no options."""
    blksize, windowsize, timeout = RFC1350_BLKSIZE, 1, settings.timeout
    if not settings.options:
        return blksize, windowsize, timeout, ()
    oack: list[tuple[str, str]] = []
    for name, text in request.options:
        value = option_int(text)
        if value is None:
            continue  # unparseable: leave it out of the OACK
        if name == "blksize" and value >= MIN_BLKSIZE:
            blksize = min(value, settings.max_blksize)
            oack.append((name, str(blksize)))
        elif name == "tsize":
            oack.append((name, str(size)))
        elif name == "timeout" and MIN_TIMEOUT_OPTION <= value <= MAX_TIMEOUT_OPTION:
            timeout = float(value)
            oack.append((name, str(value)))
        elif name == "windowsize" and 1 <= value <= 0xFFFF:
            windowsize = min(value, settings.max_windowsize)
            oack.append((name, str(windowsize)))
    return blksize, windowsize, timeout, tuple(oack)


class ServerReadTransfer:
    """One read transfer, from the server's transfer socket, to the client at ``peer``.

    ``announced_size`` overrides the tsize reported to the client; the lab's "truncate" fault
    serves a prefix of the file while announcing the full size.
    """

    def __init__(
        self,
        request: ReadRequest,
        content: bytes,
        peer: Address,
        *,
        settings: ServerSettings | None = None,
        announced_size: int | None = None,
    ) -> None:
        settings = settings if settings is not None else ServerSettings()
        if request.mode == "netascii":
            content = to_netascii(content)
        self.filename = request.filename
        self.peer = peer
        self._peer_key = _addr_key(peer)
        self._content = content
        size = len(content) if announced_size is None else announced_size
        self.blksize, self.windowsize, self.timeout, self._oack = _negotiate(request, size, settings)
        self._max_retries = settings.max_retries
        # Every file ends with a short block, an empty one when the size is a multiple of blksize.
        self.total_blocks = len(content) // self.blksize + 1

        self._state = _State.IDLE
        self._outbox: list[tuple[bytes, Address]] = []
        self._timer: float | None = None
        self._retries = 0
        self._acked = 0  # absolute number of the highest block ACKed
        self._sent_upto = 0  # absolute number of the last block of the window in flight
        self._data_sent = 0
        self._retransmissions = 0
        self._stray_replies = 0
        self._started = 0.0
        self.result: ServerTransferResult | None = None

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    def start(self, now: float) -> None:
        if self._state is not _State.IDLE:
            raise RuntimeError("start() called twice")
        self._started = now
        if self._oack:
            self._state = _State.OACK_SENT
            self._outbox.append((encode_oack(self._oack), self.peer))
        else:
            self._state = _State.SENDING
            self._send_window()
        self._timer = now + self.timeout

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        return self._timer

    def handle_timer(self, now: float) -> None:
        if self._timer is None or now < self._timer:
            return
        if self._retries >= self._max_retries:
            where = "ACK 0" if self._state is _State.OACK_SENT else f"ACK of block {self._sent_upto}"
            self._finish(ServerOutcome.TIMEOUT, now, message=f"no {where} after {self._retries + 1} sends")
            return
        self._retries += 1
        self._retransmissions += 1
        if self._state is _State.OACK_SENT:
            self._outbox.append((encode_oack(self._oack), self.peer))
        else:
            self._send_window()
        self._timer = now + self.timeout

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        if self._state is _State.DONE or self._state is _State.IDLE:
            return
        if (addr[0], addr[1]) != self._peer_key:
            if opcode_of(data) != Opcode.ERROR and self._stray_replies < MAX_STRAY_REPLIES:
                self._stray_replies += 1
                self._outbox.append((encode_error(ErrorCode.UNKNOWN_TID), addr))
            return
        try:
            packet = decode(data)
        except ParseError as exc:
            self._protocol_error(now, f"undecodable datagram: {exc}")
            return
        if type(packet) is Ack:
            self._on_ack(packet.block, now)
        elif type(packet) is ErrorPacket:
            self._finish(ServerOutcome.ABORTED, now, message=packet.message, error_code=packet.code)
        else:
            self._protocol_error(now, f"unexpected {packet.opcode.name} from the client")

    def _on_ack(self, block: int, now: float) -> None:
        if self._state is _State.OACK_SENT:
            if block != 0:
                return  # not an answer to the OACK; the timer will resend it
            self._state = _State.SENDING
        else:
            delta = (block - self._acked) & 0xFFFF
            if delta == 0 or delta > self._sent_upto - self._acked:
                return  # duplicate (see Sorcerer's Apprentice above) or for a block never sent
            self._acked += delta
            if self._acked >= self.total_blocks:
                self._finish(ServerOutcome.OK, now)
                return
        self._retries = 0
        self._send_window()
        self._timer = now + self.timeout

    def _send_window(self) -> None:
        blksize = self.blksize
        content = self._content
        first = self._acked + 1
        last = min(self._acked + self.windowsize, self.total_blocks)
        peer = self.peer
        outbox = self._outbox
        for block in range(first, last + 1):
            start = (block - 1) * blksize
            outbox.append((encode_data(block & 0xFFFF, content[start : start + blksize]), peer))
        self._data_sent += last - first + 1
        self._sent_upto = last

    def _protocol_error(self, now: float, message: str) -> None:
        self._outbox.append((encode_error(ErrorCode.ILLEGAL_OPERATION, message), self.peer))
        self._finish(ServerOutcome.PROTOCOL_ERROR, now, message=message)

    def _finish(
        self, outcome: ServerOutcome, now: float, *, message: str = "", error_code: int | None = None
    ) -> None:
        self._state = _State.DONE
        self._timer = None
        self.result = ServerTransferResult(
            filename=self.filename,
            outcome=outcome,
            size=len(self._content),
            blocks=self.total_blocks,
            data_sent=self._data_sent,
            retransmissions=self._retransmissions,
            blksize=self.blksize,
            windowsize=self.windowsize,
            oack=bool(self._oack),
            error_code=error_code,
            message=message,
            elapsed=now - self._started,
        )
