"""TFTP packet codec: bytes in, frozen packets out, and back (RFC 1350, RFC 2347 OACK).

Wire formats (all integers big-endian)::

    RRQ/WRQ  | 01/02 | filename | 0 | mode | 0 | opt1 | 0 | value1 | 0 | ... |   RFC 1350, RFC 2347
    DATA     | 03 | block (2) | 0..blksize bytes |                                RFC 1350
    ACK      | 04 | block (2) |                                                  RFC 1350
    ERROR    | 05 | code (2) | message | 0 |                                     RFC 1350
    OACK     | 06 | opt1 | 0 | value1 | 0 | ... |                                RFC 2347

``decode`` raises :class:`scanner.core.errors.ParseError` naming the byte offset of the offending
field, and no other exception, for any input (a hypothesis test holds it to that). Requests are
decoded strictly, since a server must not guess what a malformed request meant; an ERROR
packet is decoded leniently (a missing final NUL or bytes after it are tolerated), because an
ERROR is the last thing a peer says and its code matters more than its framing.

Strings: a filename is decoded as Latin-1, so any byte string round-trips and a lookup never
fails on decoding; mode, option names and option values must be ASCII (RFC 2347 defines them
as NUL-terminated ASCII). Option names are case-insensitive (RFC 2347) and are lowercased on
decoding; a name given twice is rejected, as there is no rule for which one would win.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from scanner.core.errors import ParseError

__all__ = [
    "MAX_BLOCK",
    "Ack",
    "Data",
    "ErrorCode",
    "ErrorPacket",
    "Opcode",
    "OptionAck",
    "Options",
    "Packet",
    "ReadRequest",
    "WriteRequest",
    "decode",
    "encode",
    "encode_ack",
    "encode_data",
    "encode_error",
    "encode_oack",
    "encode_rrq",
    "encode_wrq",
    "error_name",
    "opcode_of",
    "option_int",
]

# Block numbers are a 16-bit field (RFC 1350); transfers longer than this roll over to 0.
MAX_BLOCK = 0xFFFF


class Opcode(IntEnum):
    RRQ = 1
    WRQ = 2
    DATA = 3
    ACK = 4
    ERROR = 5
    OACK = 6  # RFC 2347


class ErrorCode(IntEnum):
    """ERROR codes 0-7 from RFC 1350 and 8 from RFC 2347."""

    NOT_DEFINED = 0
    FILE_NOT_FOUND = 1
    ACCESS_VIOLATION = 2
    DISK_FULL = 3
    ILLEGAL_OPERATION = 4
    UNKNOWN_TID = 5
    FILE_EXISTS = 6
    NO_SUCH_USER = 7
    OPTION_REFUSED = 8

    @property
    def description(self) -> str:
        return _ERROR_NAMES[self]


# The texts as the RFCs word them; also the default message of an ERROR we send.
_ERROR_NAMES: dict[int, str] = {
    ErrorCode.NOT_DEFINED: "Not defined, see error message (if any)",
    ErrorCode.FILE_NOT_FOUND: "File not found",
    ErrorCode.ACCESS_VIOLATION: "Access violation",
    ErrorCode.DISK_FULL: "Disk full or allocation exceeded",
    ErrorCode.ILLEGAL_OPERATION: "Illegal TFTP operation",
    ErrorCode.UNKNOWN_TID: "Unknown transfer ID",
    ErrorCode.FILE_EXISTS: "File already exists",
    ErrorCode.NO_SUCH_USER: "No such user",
    ErrorCode.OPTION_REFUSED: "Option negotiation refused",
}


def opcode_of(data: bytes) -> int | None:
    """The opcode field of a datagram (compare with ``Opcode``), or None if it is too short to
    have one; nothing else is decoded."""
    if len(data) < 2:
        return None
    return (data[0] << 8) | data[1]


def error_name(code: int) -> str:
    """The RFC name of an ERROR code, or ``"error code N"`` for codes no RFC defines."""
    return _ERROR_NAMES.get(code, f"error code {code}")


# Option pairs in the order they appear on the wire; a tuple keeps packets hashable.
Options = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ReadRequest:
    filename: str
    mode: str = "octet"
    options: Options = ()
    opcode: ClassVar[Opcode] = Opcode.RRQ

    def option(self, name: str) -> str | None:
        return _lookup(self.options, name)


@dataclass(frozen=True, slots=True)
class WriteRequest:
    filename: str
    mode: str = "octet"
    options: Options = ()
    opcode: ClassVar[Opcode] = Opcode.WRQ

    def option(self, name: str) -> str | None:
        return _lookup(self.options, name)


@dataclass(frozen=True, slots=True)
class Data:
    block: int
    payload: bytes
    opcode: ClassVar[Opcode] = Opcode.DATA


@dataclass(frozen=True, slots=True)
class Ack:
    block: int
    opcode: ClassVar[Opcode] = Opcode.ACK


@dataclass(frozen=True, slots=True)
class ErrorPacket:
    code: int
    message: str = ""
    opcode: ClassVar[Opcode] = Opcode.ERROR

    @property
    def name(self) -> str:
        return error_name(self.code)


@dataclass(frozen=True, slots=True)
class OptionAck:
    options: Options = ()
    opcode: ClassVar[Opcode] = Opcode.OACK

    def option(self, name: str) -> str | None:
        return _lookup(self.options, name)


Packet = ReadRequest | WriteRequest | Data | Ack | ErrorPacket | OptionAck


# Option values are decimal numbers in every RFC that defines one; ten digits hold any of them
# (tsize of a 4 GB file included) and keep an absurd value from becoming a huge int.
MAX_OPTION_DIGITS = 10


def option_int(text: str) -> int | None:
    """An option value as a non-negative int, or None unless it is 1-10 ASCII decimal digits.

    Stricter than ``int()``, which would also take "+5", " 5" and "1_000".
    """
    if 0 < len(text) <= MAX_OPTION_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None


def _lookup(options: Options, name: str) -> str | None:
    wanted = name.lower()
    for key, value in options:
        if key.lower() == wanted:
            return value
    return None


# --------------------------------------------------------------------------------------------
# Encoding. Arguments are ours, not the network's: a bad one is a programming error and raises
# ValueError (UnicodeEncodeError for a filename outside Latin-1 is a ValueError too).

_HEADER = struct.Struct("!HH")  # opcode + block (DATA/ACK) or opcode + code (ERROR)
_OPCODE = struct.Struct("!H")
_ACK_PREFIX = _OPCODE.pack(Opcode.ACK)
_DATA_PREFIX = _OPCODE.pack(Opcode.DATA)

OptionsIn = Mapping[str, str | int] | Iterable[tuple[str, str | int]]


def _field(text: str, what: str, encoding: str) -> bytes:
    raw = text.encode(encoding)
    if b"\0" in raw:
        raise ValueError(f"{what} contains a NUL byte: {text!r}")
    return raw + b"\0"


def _option_bytes(options: OptionsIn) -> bytes:
    pairs = options.items() if isinstance(options, Mapping) else options
    out = []
    for name, value in pairs:
        if not name:
            raise ValueError("empty option name")
        out.append(_field(name, "option name", "ascii"))
        out.append(_field(str(value), f"option {name} value", "ascii"))
    return b"".join(out)


def _check_u16(value: int, what: str) -> None:
    if not 0 <= value <= MAX_BLOCK:
        raise ValueError(f"{what} {value} outside 0..65535")


def encode_rrq(filename: str, mode: str = "octet", options: OptionsIn = ()) -> bytes:
    return _request(Opcode.RRQ, filename, mode, options)


def encode_wrq(filename: str, mode: str = "octet", options: OptionsIn = ()) -> bytes:
    return _request(Opcode.WRQ, filename, mode, options)


def _request(opcode: Opcode, filename: str, mode: str, options: OptionsIn) -> bytes:
    if not filename:
        raise ValueError("empty filename")
    if not mode:
        raise ValueError("empty mode")
    return (
        _OPCODE.pack(opcode)
        + _field(filename, "filename", "latin-1")
        + _field(mode, "mode", "ascii")
        + _option_bytes(options)
    )


def encode_data(block: int, payload: bytes) -> bytes:
    # Hot path of the server: two concatenations and no validation beyond int.to_bytes's own
    # range check (OverflowError for a block outside 0..65535).
    return _DATA_PREFIX + block.to_bytes(2, "big") + payload


def encode_ack(block: int) -> bytes:
    return _ACK_PREFIX + block.to_bytes(2, "big")


def encode_error(code: int, message: str | None = None) -> bytes:
    """An ERROR packet; ``message`` defaults to the RFC name of ``code``. Non-ASCII is replaced."""
    _check_u16(code, "error code")
    text = error_name(code) if message is None else message
    raw = text.encode("ascii", "replace").replace(b"\0", b"?")
    return _HEADER.pack(Opcode.ERROR, code) + raw + b"\0"


def encode_oack(options: OptionsIn) -> bytes:
    return _OPCODE.pack(Opcode.OACK) + _option_bytes(options)


def encode(packet: Packet) -> bytes:
    """Encode any packet object; the inverse of :func:`decode`."""
    match packet:
        case ReadRequest() | WriteRequest():
            return _request(packet.opcode, packet.filename, packet.mode, packet.options)
        case Data():
            _check_u16(packet.block, "block")
            return encode_data(packet.block, packet.payload)
        case Ack():
            _check_u16(packet.block, "block")
            return encode_ack(packet.block)
        case ErrorPacket():
            return encode_error(packet.code, packet.message)
        case OptionAck():
            return encode_oack(packet.options)
    raise TypeError(f"not a TFTP packet: {packet!r}")  # pragma: no cover - exhaustive match


# --------------------------------------------------------------------------------------------
# Decoding.


def decode(data: bytes) -> Packet:
    """Decode one datagram. Raises ``ParseError`` (with the offset) for anything malformed."""
    size = len(data)
    if size < 2:
        raise ParseError(f"datagram of {size} bytes is shorter than the 2-byte opcode", 0)
    opcode = (data[0] << 8) | data[1]
    # DATA and ACK first: they are nearly all the traffic.
    if opcode == Opcode.DATA:
        if size < 4:
            raise ParseError("DATA packet truncated inside the block number", 2)
        return Data((data[2] << 8) | data[3], bytes(data[4:]))
    if opcode == Opcode.ACK:
        if size < 4:
            raise ParseError("ACK packet truncated inside the block number", 2)
        if size > 4:
            raise ParseError(f"{size - 4} trailing bytes after ACK", 4)
        return Ack((data[2] << 8) | data[3])
    if opcode == Opcode.ERROR:
        if size < 4:
            raise ParseError("ERROR packet truncated inside the error code", 2)
        end = data.find(b"\0", 4)
        raw = data[4:] if end < 0 else data[4:end]
        return ErrorPacket((data[2] << 8) | data[3], bytes(raw).decode("ascii", "replace"))
    if opcode in (Opcode.RRQ, Opcode.WRQ):
        fields = _split_fields(data, 2)
        if len(fields) < 2:
            what = "filename" if not fields else "mode"
            raise ParseError(f"request has no {what}", size)
        (name_at, name_raw), (mode_at, mode_raw) = fields[0], fields[1]
        if not name_raw:
            raise ParseError("empty filename", name_at)
        mode = _ascii(mode_raw, mode_at, "mode").lower()
        if not mode:
            raise ParseError("empty mode", mode_at)
        options = _options(fields[2:])
        filename = bytes(name_raw).decode("latin-1")
        if opcode == Opcode.RRQ:
            return ReadRequest(filename, mode, options)
        return WriteRequest(filename, mode, options)
    if opcode == Opcode.OACK:
        return OptionAck(_options(_split_fields(data, 2)))
    raise ParseError(f"unknown opcode {opcode}", 0)


def _split_fields(data: bytes, start: int) -> list[tuple[int, bytes]]:
    """NUL-terminated fields from ``start`` to the end: ``(offset, raw bytes)`` pairs."""
    fields = []
    pos = start
    size = len(data)
    while pos < size:
        end = data.find(b"\0", pos)
        if end < 0:
            raise ParseError("field is not NUL-terminated", pos)
        fields.append((pos, data[pos:end]))
        pos = end + 1
    return fields


def _ascii(raw: bytes, offset: int, what: str) -> str:
    try:
        return bytes(raw).decode("ascii")
    except UnicodeDecodeError as exc:
        raise ParseError(f"{what} is not ASCII", offset + exc.start) from None


def _options(fields: list[tuple[int, bytes]]) -> Options:
    if len(fields) % 2:
        offset, raw = fields[-1]
        raise ParseError(f"option {bytes(raw)!r} has no value", offset)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i in range(0, len(fields), 2):
        name_at, name_raw = fields[i]
        value_at, value_raw = fields[i + 1]
        name = _ascii(name_raw, name_at, "option name").lower()
        if not name:
            raise ParseError("empty option name", name_at)
        if name in seen:
            raise ParseError(f"option {name!r} given twice", name_at)
        seen.add(name)
        out.append((name, _ascii(value_raw, value_at, f"option {name!r} value")))
    return tuple(out)
