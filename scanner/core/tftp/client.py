"""Sans-IO TFTP client: one octet-mode read transfer as a state machine with an injected clock.

The adapter (``scanner.net.tftp_io``) feeds datagrams and time in and sends what comes out;
this module never touches a socket or a clock of its own (aioquic style)::

    client = TftpReadClient("ITLFile.tlv")
    client.start(now)
    loop:
        for data, addr in client.datagrams_to_send(now): send (addr None = the server's port 69)
        on datagram: client.receive_datagram(data, addr, now)
        at client.get_timer(): client.handle_timer(now)
    until client.result is not None

Behaviour, with the reasons:

* Options (RFC 2347): blksize (RFC 2348), tsize and timeout (RFC 2349), windowsize (RFC 7440)
  are requested together. A server that answers with DATA instead of OACK ignored them all:
  the transfer falls back to 512-byte blocks, one block per window, no tsize. An OACK may carry
  a subset; a value above the one requested (blksize, windowsize), a timeout other than the one
  requested (RFC 2349 says the server echoes it), or an option never requested is a protocol
  error answered with ERROR 8. An ERROR 8 in reply to the request makes the client ask once
  more with no options at all.
* Transfer ID (RFC 1350 §4): the server answers from a new port. The client locks on to the
  source of the first DATA or OACK; any other source gets ERROR 5 and is otherwise ignored.
  With ``server_host`` (the host the request went to; the adapter always gives it), a first
  reply is taken only from that host: a datagram from any other address is a stray (ERROR 5),
  however well it would fit. A DATA block other than 1 cannot be a first reply (it is an
  earlier transfer's, sent to a port we reuse) and is a stray too. Datagrams that arrive before
  the lock and cannot be decoded are ignored (they come from no peer yet). Strays and ignored
  datagrams are counted (``TftpResult.strays``) and mentioned if the transfer times out.
* Retransmission: before the first reply the RRQ is re-sent, afterwards the last ACK; each wait
  is ``timeout * 2**attempt`` capped at ``BACKOFF_CAP × timeout``, scaled by a random factor in
  ``1 ± JITTER`` so that thousands of concurrent transfers do not retransmit in lockstep. The
  attempt count resets whenever a new in-order block arrives. ``max_retries`` retransmissions
  without progress, then one last wait, and the outcome is ``timeout``.
* Windows (RFC 7440): the client ACKs the last block of each window, and the short last block.
  A block from beyond a gap triggers one immediate ACK of the last in-order block (the server
  restarts the window from there); a timeout re-ACKs the last in-order block too.
* Duplicates: a repeated DATA is never appended twice. A repeat of the block last ACKed means
  that ACK was lost and is answered with the ACK again; other repeats are counted and dropped
  (the server resends whole windows, and one re-ACK per window is enough).
* Block numbers roll over from 65535 to 0, as tftp-hpa and most servers do by default.
* Size cap: a tsize above ``max_size``, or data that would exceed it, aborts with ERROR 3
  ("Disk full or allocation exceeded", the code RFC 2349 suggests) and outcome ``too_large``.
* tsize: if the server announced a size, a transfer that ends at any other size is a protocol
  error; that is how a truncated transfer is caught.
* The end: the short last block is ACKed and the transfer is done at once. RFC 1350 suggests the
  receiver "dally" to re-ACK in case that final ACK is lost; we do not: the file is complete
  here, and a server that misses the final ACK only retransmits its last block a few times and
  gives up. Dallying would hold a socket for seconds per transfer at fleet scale.

Outcomes for an ERROR from the server (``outcome_for_error``): 1 File not found is
``not_found``, a definite answer kept apart from ``timeout``. 0 (not defined; servers use it
for "busy" and policy refusals), 2 Access violation, 3 Disk full, 6 File exists and 7 No such
user are ``refused``: the server is alive and declined. 4 Illegal operation, 5 Unknown transfer
ID and 8 Option refused (after the no-options retry) are ``protocol_error``: the two sides
disagree about the protocol. Unknown codes are ``refused``.

Outcomes are the evidence record's (``scanner.core.evidence.Outcome``), the one vocabulary of
every layer: a transfer ends ``ok``, ``not_found``, ``timeout``, ``refused``, ``too_large`` or
``protocol_error``, never one of the others. ``Outcome`` is importable from here too.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import Enum
from typing import Any

from scanner.core.errors import ParseError
from scanner.core.evidence import Outcome
from scanner.core.tftp.packets import (
    Data,
    ErrorCode,
    ErrorPacket,
    Opcode,
    OptionAck,
    decode,
    encode_ack,
    encode_error,
    encode_rrq,
    error_name,
    opcode_of,
    option_int,
)

__all__ = [
    "BACKOFF_CAP",
    "DEFAULT_BLKSIZE",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_WINDOWSIZE",
    "JITTER",
    "Address",
    "NegotiatedOptions",
    "Outcome",
    "TftpReadClient",
    "TftpResult",
    "outcome_for_error",
]

Address = tuple[Any, ...]  # (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6

# RFC 1350 block size, used whenever the server does not acknowledge a blksize option.
RFC1350_BLKSIZE = 512
# RFC 2348 bounds on blksize.
MIN_BLKSIZE = 8
MAX_BLKSIZE = 65464
# 1428 keeps DATA (1428 + 4 TFTP + 8 UDP + 20 IPv4 = 1460) inside a 1500-byte MTU with room for a
# VPN or VLAN header: anything from 1428 up to 1468 (the plain 1500-byte MTU's limit) avoids IP
# fragmentation, which firewalls between sites often drop.
DEFAULT_BLKSIZE = 1428
# RFC 7440 allows 1..65535, but tftp-hpa refuses more than 64 and a small window keeps a burst
# from overrunning a phone-sized receive buffer: 8 × 1428 bytes is about 11 KB in flight.
DEFAULT_WINDOWSIZE = 8
MAX_WINDOWSIZE = 64
# RFC 2349: the timeout option is a whole number of seconds in 1..255.
MIN_TIMEOUT_OPTION = 1
MAX_TIMEOUT_OPTION = 255
# Trust lists are tens of KB and phone configs rarely exceed 100 KB; 4 MiB leaves room for
# any of them while refusing firmware images fetched by mistake.
DEFAULT_MAX_SIZE = 4 * 1024 * 1024
# Waits grow as timeout × 2**attempt up to this multiple of timeout (1 s base: 1, 2, 4, 8, 8 s).
BACKOFF_CAP = 8
# ± this fraction of random spread on every wait, so that transfers started together drift apart.
JITTER = 0.2
# Replies (ERROR 5) sent to stray sources per transfer: RFC 1350 asks for one per stray packet,
# the cap keeps a flood of strays from making us a reflector.
MAX_STRAY_REPLIES = 16



_PROTOCOL_CODES = frozenset({ErrorCode.ILLEGAL_OPERATION, ErrorCode.UNKNOWN_TID, ErrorCode.OPTION_REFUSED})


def outcome_for_error(code: int) -> Outcome:
    """The outcome of a transfer that the server ended with ERROR ``code`` (see module doc)."""
    if code == ErrorCode.FILE_NOT_FOUND:
        return Outcome.NOT_FOUND
    if code in _PROTOCOL_CODES:
        return Outcome.PROTOCOL_ERROR
    return Outcome.REFUSED


@dataclass(frozen=True, slots=True)
class NegotiatedOptions:
    """What the transfer ran with. ``oack`` False: the server ignored options (RFC 1350 rules)."""

    oack: bool
    blksize: int
    windowsize: int
    timeout: int | None = None  # the server's retransmission interval, if it acknowledged one
    tsize: int | None = None  # the size the server announced, if it did


_NO_OPTIONS = NegotiatedOptions(oack=False, blksize=RFC1350_BLKSIZE, windowsize=1)


@dataclass(frozen=True, slots=True)
class TftpResult:
    """How one read transfer ended. ``data`` holds the file for ``ok`` and is empty otherwise."""

    filename: str
    outcome: Outcome
    data: bytes = b""
    error_code: int | None = None  # code of the ERROR packet the server sent, if it sent one
    message: str = ""  # the server's ERROR text, or what went wrong here; "" for ok
    size: int = 0  # bytes received in order (also for failed transfers)
    blocks: int = 0  # distinct DATA blocks received in order
    retransmissions: int = 0  # datagrams we sent again (RRQ or ACK)
    duplicates: int = 0  # DATA blocks received but not used (repeats, or beyond a gap)
    options: NegotiatedOptions = _NO_OPTIONS
    peer: Address | None = None  # the server's transfer address (its TID), once known
    elapsed: float = 0.0  # seconds from start() to the end
    strays: int = 0  # datagrams that were not this transfer's (ignored; see the module doc)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def expected_size(self) -> int | None:
        """The size the server announced (RFC 2349 tsize in its OACK), or None. An ``ok``
        transfer's ``data`` has exactly this length (a mismatch is ``protocol_error``)."""
        return self.options.tsize


class _State(Enum):
    IDLE = 0
    REQUESTING = 1  # RRQ sent, no DATA or OACK yet
    RECEIVING = 2  # locked on to the server's TID
    DONE = 3


def _addr_key(addr: Address) -> tuple[Any, Any]:
    # IPv6 addresses come as 4-tuples; host and port identify the transfer (RFC 1350 TID).
    return (addr[0], addr[1])


class TftpReadClient:
    """One octet-mode read of ``filename``; see the module docstring for the behaviour.

    ``blksize``/``windowsize`` None (or 512 / 1) means "do not ask"; ``tsize`` False leaves the
    tsize option out. ``timeout`` is our retransmission interval in seconds; it is also sent as
    the RFC 2349 timeout option (whole seconds, rounded down) when it is at least one second,
    so that the server retransmits no later than we do. A sub-second timeout cannot be expressed
    in the option, which is then left out and the server keeps its own default.
    """

    def __init__(
        self,
        filename: str,
        *,
        blksize: int | None = DEFAULT_BLKSIZE,
        windowsize: int | None = DEFAULT_WINDOWSIZE,
        timeout: float = 1.0,
        tsize: bool = True,
        max_retries: int = 5,
        max_size: int = DEFAULT_MAX_SIZE,
        rng: random.Random | None = None,
        server_host: str | None = None,
    ) -> None:
        if not filename:
            raise ValueError("empty filename")
        if blksize is not None and not MIN_BLKSIZE <= blksize <= MAX_BLKSIZE:
            raise ValueError(f"blksize {blksize} outside {MIN_BLKSIZE}..{MAX_BLKSIZE} (RFC 2348)")
        if windowsize is not None and not 1 <= windowsize <= MAX_WINDOWSIZE:
            raise ValueError(f"windowsize {windowsize} outside 1..{MAX_WINDOWSIZE}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout {timeout} must be a positive number of seconds")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if max_size < 0:
            raise ValueError("max_size must be >= 0")
        self.filename = filename
        self._timeout = timeout
        self._max_retries = max_retries
        self._max_size = max_size
        # The jitter's random numbers: the caller's generator (tests pass a seeded one), else the
        # random module's own.
        self._random = rng.random if rng is not None else random.random
        self._server_host = server_host

        requested: dict[str, int] = {}
        if blksize is not None and blksize != RFC1350_BLKSIZE:
            requested["blksize"] = blksize
        if tsize:
            requested["tsize"] = 0  # RFC 2349: a reader sends 0, the server answers the size
        if timeout >= MIN_TIMEOUT_OPTION:
            requested["timeout"] = min(int(timeout), MAX_TIMEOUT_OPTION)
        if windowsize is not None and windowsize != 1:
            requested["windowsize"] = windowsize
        self._requested = requested
        self._rrq = encode_rrq(filename, "octet", requested)

        self._state = _State.IDLE
        self._options = _NO_OPTIONS
        self._peer: Address | None = None
        self._peer_key: tuple[Any, Any] | None = None
        self._outbox: list[tuple[bytes, Address | None]] = []
        self._timer: float | None = None
        self._attempt = 0
        self._started = 0.0

        self._chunks: list[bytes] = []
        self._size = 0
        self._blocks = 0
        self._last_block = 0  # wire number of the last in-order block (0 before block 1)
        self._last_ack = b""  # the last ACK sent, re-sent on timeout (b"" before the first)
        self._last_ack_block = -1
        self._since_ack = 0  # in-order blocks received since the last ACK
        self._gap_acked = False  # an ACK for the current gap went out already
        self._retransmissions = 0
        self._duplicates = 0
        self._stray_replies = 0
        self._strays = 0  # datagrams from another TID after the lock (answered or not)
        self._ignored = 0  # datagrams dropped before the lock (no peer yet)
        self._fell_back = False  # the no-options retry after ERROR 8 has been used

        self.result: TftpResult | None = None

    # -- the sans-IO interface ---------------------------------------------------------------

    def start(self, now: float) -> None:
        """Queue the RRQ and arm the retransmission timer."""
        if self._state is not _State.IDLE:
            raise RuntimeError("start() called twice")
        self._started = now
        self._state = _State.REQUESTING
        self._outbox.append((self._rrq, None))
        self._arm(now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address | None]]:
        """Datagrams to send now, in order; address None means the server's request address."""
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        """When ``handle_timer`` wants to be called (clock time), or None when nothing is due."""
        return self._timer

    def handle_timer(self, now: float) -> None:
        if self._timer is None or now < self._timer:
            return
        if self._attempt >= self._max_retries:
            if self._state is _State.REQUESTING:
                why = f"no reply to the request after {self._attempt + 1} tries"
                if self._ignored or self._strays:
                    why += f" ({self._ignored + self._strays} stray or undecodable datagrams ignored)"
            else:
                why = f"no DATA after block {self._blocks} in {self._attempt + 1} waits"
            self._finish(Outcome.TIMEOUT, now, message=why)
            return
        self._attempt += 1
        self._retransmissions += 1
        if self._state is _State.REQUESTING:
            self._outbox.append((self._rrq, None))
        elif self._last_ack_block == self._last_block:
            self._outbox.append((self._last_ack, self._peer))
        else:
            # Mid-window: ACK what arrived in order (RFC 7440), the server restarts after it.
            self._send_ack(self._last_block)
        self._arm(now)

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        state = self._state
        if state is _State.DONE or state is _State.IDLE:
            return
        key = _addr_key(addr)
        if self._peer_key is not None:
            if key != self._peer_key:
                self._stray(data, addr)
                return
        elif self._server_host is not None and addr[0] != self._server_host:
            # Not from the host the request went to: never the reply, however well it fits.
            self._stray(data, addr)
            return
        # DATA, nearly every datagram of a transfer, is read in place without a packet object.
        if len(data) >= 4 and opcode_of(data) == Opcode.DATA:
            if state is _State.REQUESTING:
                if data[2] != 0 or data[3] != 1:
                    # A first reply is DATA 1: a later block is an earlier transfer's.
                    self._stray(data, addr)
                    return
                # DATA instead of OACK: the server ignored every option (RFC 2347).
                self._lock(addr, key, _NO_OPTIONS)
            self._on_data((data[2] << 8) | data[3], data[4:], now)
            return
        try:
            packet = decode(data)
        except ParseError as exc:
            if self._peer_key is None:
                self._ignored += 1
                return
            self._abort_protocol(now, f"undecodable datagram from the server: {exc}")
            return

        if type(packet) is Data:
            if state is _State.REQUESTING:
                if packet.block != 1:
                    self._stray(data, addr)
                    return
                # DATA instead of OACK: the server ignored every option (RFC 2347 §"Negotiation").
                self._lock(addr, key, _NO_OPTIONS)
            self._on_data(packet.block, packet.payload, now)
        elif type(packet) is OptionAck:
            if state is _State.REQUESTING:
                self._on_oack(packet, addr, key, now)
            elif self._options.oack and self._blocks == 0 and self._last_ack:
                # Our ACK 0 was lost and the server sent its OACK again.
                self._duplicates += 1
                self._resend_ack()
            elif not self._options.oack:
                self._abort_protocol(now, "OACK after the server started sending without one")
            # else: a late copy of the OACK while blocks already flow; harmless.
        elif type(packet) is ErrorPacket:
            self._on_error(packet, now)
        else:
            if self._peer_key is None:
                self._ignored += 1  # an ACK/RRQ/WRQ cannot be the server's first reply
                return
            self._abort_protocol(now, f"unexpected {packet.opcode.name} from the server")

    # -- handlers ------------------------------------------------------------------------------

    def _stray(self, data: bytes, addr: Address) -> None:
        # RFC 1350 §4: answer a wrong TID with ERROR 5 and carry on. Never answer an ERROR with
        # an ERROR, or two confused endpoints would bounce errors at each other.
        self._strays += 1
        if opcode_of(data) == Opcode.ERROR:
            return
        if self._stray_replies < MAX_STRAY_REPLIES:
            self._stray_replies += 1
            self._outbox.append((encode_error(ErrorCode.UNKNOWN_TID), addr))

    def _lock(self, addr: Address, key: tuple[Any, Any], options: NegotiatedOptions) -> None:
        self._peer = addr
        self._peer_key = key
        self._options = options
        self._state = _State.RECEIVING
        self._attempt = 0

    def _on_oack(self, oack: OptionAck, addr: Address, key: tuple[Any, Any], now: float) -> None:
        self._lock(addr, key, self._options)
        try:
            options = self._negotiate(oack)
        except _OptionProblem as exc:
            self._send_error(ErrorCode.OPTION_REFUSED, str(exc))
            self._finish(Outcome.PROTOCOL_ERROR, now, message=str(exc))
            return
        self._options = options
        if options.tsize is not None and options.tsize > self._max_size:
            msg = f"server announced tsize {options.tsize}, above the {self._max_size}-byte cap"
            self._send_error(ErrorCode.DISK_FULL, msg)
            self._finish(Outcome.TOO_LARGE, now, message=msg)
            return
        self._send_ack(0)
        self._arm(now)

    def _negotiate(self, oack: OptionAck) -> NegotiatedOptions:
        blksize, windowsize, timeout, tsize = RFC1350_BLKSIZE, 1, None, None
        requested = self._requested
        for name, text in oack.options:
            if name not in requested:
                raise _OptionProblem(f"OACK carries option {name!r} that was not requested")
            value = option_int(text)
            if value is None:
                raise _OptionProblem(f"OACK option {name} value {text!r} is not a decimal number")
            asked = requested[name]
            if name == "blksize":
                if not MIN_BLKSIZE <= value <= asked:
                    raise _OptionProblem(f"OACK blksize {value} outside {MIN_BLKSIZE}..{asked} requested")
                blksize = value
            elif name == "windowsize":
                if not 1 <= value <= asked:
                    raise _OptionProblem(f"OACK windowsize {value} outside 1..{asked} requested")
                windowsize = value
            elif name == "timeout":
                if value != asked:  # RFC 2349: the server must echo the value it was given
                    raise _OptionProblem(f"OACK timeout {value} differs from the {asked} requested")
                timeout = value
            elif name == "tsize":
                tsize = value
        return NegotiatedOptions(True, blksize, windowsize, timeout, tsize)

    def _on_data(self, block: int, payload: bytes, now: float) -> None:
        delta = (block - self._last_block) & 0xFFFF
        window = self._options.windowsize
        if delta == 1:
            blksize = self._options.blksize
            if len(payload) > blksize:
                msg = f"DATA block {block} of {len(payload)} bytes exceeds blksize {blksize}"
                self._abort_protocol(now, msg)
                return
            if self._size + len(payload) > self._max_size:
                msg = f"data exceeds the {self._max_size}-byte cap at block {block}"
                self._send_error(ErrorCode.DISK_FULL, msg)
                self._finish(Outcome.TOO_LARGE, now, message=msg)
                return
            if payload:
                self._chunks.append(payload)
                self._size += len(payload)
            self._blocks += 1
            self._last_block = block
            self._attempt = 0
            self._gap_acked = False
            if len(payload) < blksize:
                self._send_ack(block)
                tsize = self._options.tsize
                if tsize is not None and tsize != self._size:
                    msg = f"transfer ended at {self._size} bytes but the server announced tsize {tsize}"
                    self._finish(Outcome.PROTOCOL_ERROR, now, message=msg)
                else:
                    self._finish(Outcome.OK, now)
                return
            self._since_ack += 1
            if self._since_ack >= window:
                self._send_ack(block)
            self._arm(now)
            return
        self._duplicates += 1
        if delta == 0 or delta > window:
            # A block we already have. If it is the one we last ACKed, that ACK was lost.
            if block == self._last_ack_block:
                self._resend_ack()
        elif not self._gap_acked:
            # A block from beyond a gap: ask the server to restart after our last in-order block.
            self._gap_acked = True
            if self._last_ack_block == self._last_block:
                self._resend_ack()
            else:
                self._send_ack(self._last_block)

    def _on_error(self, packet: ErrorPacket, now: float) -> None:
        if (
            packet.code == ErrorCode.OPTION_REFUSED
            and self._state is _State.REQUESTING
            and self._requested
            and not self._fell_back
        ):
            # The server will not negotiate at all: ask again the RFC 1350 way.
            self._fell_back = True
            self._requested = {}
            self._rrq = encode_rrq(self.filename, "octet")
            self._outbox.append((self._rrq, None))
            self._attempt = 0
            self._arm(now)
            return
        text = packet.message or error_name(packet.code)
        self._finish(outcome_for_error(packet.code), now, message=text, error_code=packet.code)

    # -- helpers -------------------------------------------------------------------------------

    def _send_ack(self, block: int) -> None:
        ack = encode_ack(block)
        self._last_ack = ack
        self._last_ack_block = block
        self._since_ack = 0
        self._outbox.append((ack, self._peer))

    def _resend_ack(self) -> None:
        if self._last_ack:
            self._retransmissions += 1
            self._outbox.append((self._last_ack, self._peer))

    def _send_error(self, code: ErrorCode, message: str) -> None:
        if self._peer is not None:
            self._outbox.append((encode_error(code, message), self._peer))

    def _abort_protocol(self, now: float, message: str) -> None:
        self._send_error(ErrorCode.ILLEGAL_OPERATION, message)
        self._finish(Outcome.PROTOCOL_ERROR, now, message=message)

    def _arm(self, now: float) -> None:
        wait = self._timeout * min(2**self._attempt, BACKOFF_CAP)
        self._timer = now + wait * (1.0 + JITTER * (2.0 * self._random() - 1.0))

    def _finish(
        self, outcome: Outcome, now: float, *, message: str = "", error_code: int | None = None
    ) -> None:
        self._state = _State.DONE
        self._timer = None
        data = b"".join(self._chunks) if outcome is Outcome.OK else b""
        self._chunks = []
        self.result = TftpResult(
            filename=self.filename,
            outcome=outcome,
            data=data,
            error_code=error_code,
            message=message,
            size=self._size,
            blocks=self._blocks,
            retransmissions=self._retransmissions,
            duplicates=self._duplicates,
            options=self._options,
            peer=self._peer,
            elapsed=now - self._started,
            strays=self._strays + self._ignored,
        )

    @property
    def peer_locked(self) -> bool:
        """True once the server's transfer ID (address and port) is known."""
        return self._peer_key is not None

    @property
    def strays(self) -> int:
        """Datagrams that did not belong to this transfer: from another TID or host, or (before
        the lock) undecodable or not a possible first reply."""
        return self._strays + self._ignored


class _OptionProblem(Exception):
    """An OACK the client cannot accept; answered with ERROR 8 (RFC 2347)."""
