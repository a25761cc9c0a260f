"""The TVS (Trust Verification Service) message codec, sans-IO: bytes ↔ ``Message``.

A message (spec trust-files.md §3.2-3.5) is a 10-byte big-endian header and a body of TLVs:

    offset 0  protocol discriminator 0x57
           1  version 1
           2  command: 1 verify request, 2 verify response, 3 query request, 4 query response
           3  a byte of unknown meaning: 0x00 in requests; Cisco's TVS writes 0xF7 in responses,
              the public re-implementation (usecallmanagernz tvsd) 0x00; kept as received
           4  32-bit session (request) id, chosen by the phone and echoed by the server
           8  16-bit length of the body
    body      elements: 8-bit tag, 16-bit length, value

Tags (``Tag``): 1 device name (a 0x01 byte, then ``CP-<model>-SEP<MAC>``), 2 a DER certificate,
3 the subject of the certificate asked about (text + NUL), 4 and 5 its issuer (text + NUL) and
serial number (raw), 7 status (0 valid, 1 invalid), 8 roles (one byte per role, the trust-list
role codes), 9 TTL (32-bit seconds). Tags 4 and 5 are inferred: the seed's query request shows
143 body bytes of which the visible ones are the device name and the subject, and the remaining 47
are exactly an issuer string with its NUL (3 + 22) and a 19-byte serial (3 + 19), the fields the
phone read from the new CTL's signer; Cisco's TVS log prints them in that order. A tag this codec
does not know is kept, byte for byte, and listed in ``Message.unknown_tags``: never an error.

Errors are ``ParseError`` with the offset: not 0x57, another version, a command outside 1-4, a
body shorter than the header says, an element that runs past the body. ``Framer`` cuts a TCP
byte stream into messages and refuses a length over its ``max_body`` (``MAX_BODY`` unless a
server sets less: ``scanner.lab.tvs_server`` does, since a request holds one certificate).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from scanner.core.errors import ParseError

__all__ = [
    "HEADER",
    "MAX_BODY",
    "PROTOCOL",
    "Command",
    "Framer",
    "Message",
    "Tag",
    "decode",
    "encode",
    "query_request",
    "query_response",
    "verify_request",
    "verify_response",
]

PROTOCOL = 0x57
VERSION = 1
HEADER = 10
# The body length field is 16 bits; a certificate is at most a few KB. 65,535 is the hard cap the
# format itself sets; nothing legitimate comes close to it.
MAX_BODY = 0xFFFF
RESPONSE_RESERVED = 0xF7  # what Cisco's TVS writes in byte 3 of a response (seed dump)
DEFAULT_TTL = 86_400  # seconds; "TVS added cert to TVS cache - expires in 24 hours"


class Command(enum.IntEnum):
    VERIFY_REQUEST = 1
    VERIFY_RESPONSE = 2
    QUERY_REQUEST = 3
    QUERY_RESPONSE = 4


class Tag(enum.IntEnum):
    DEVICE_NAME = 1
    CERTIFICATE = 2
    SUBJECT = 3
    ISSUER = 4  # inferred (see the module docstring)
    SERIAL = 5  # inferred
    STATUS = 7
    ROLES = 8
    TTL = 9


STATUS_VALID = 0
STATUS_INVALID = 1
_KNOWN = frozenset(int(t) for t in Tag)


@dataclass(frozen=True, slots=True)
class Message:
    command: Command
    session_id: int
    elements: tuple[tuple[int, bytes], ...]  # (tag, value) in wire order
    reserved: int = 0

    def first(self, tag: int) -> bytes | None:
        return next((v for t, v in self.elements if t == tag), None)

    @property
    def unknown_tags(self) -> tuple[int, ...]:
        return tuple(t for t, _ in self.elements if t not in _KNOWN)

    @property
    def device_name(self) -> str | None:
        v = self.first(Tag.DEVICE_NAME)
        if v is None:
            return None
        return (v[1:] if v[:1] == b"\x01" else v).decode("ascii", "replace")

    @property
    def certificate(self) -> bytes | None:
        return self.first(Tag.CERTIFICATE)

    @property
    def subject(self) -> str | None:
        return _text(self.first(Tag.SUBJECT))

    @property
    def issuer(self) -> str | None:
        return _text(self.first(Tag.ISSUER))

    @property
    def serial(self) -> bytes | None:
        return self.first(Tag.SERIAL)

    @property
    def status(self) -> int | None:
        v = self.first(Tag.STATUS)
        return v[0] if v is not None and len(v) == 1 else None

    @property
    def roles(self) -> tuple[int, ...] | None:
        v = self.first(Tag.ROLES)
        return tuple(v) if v is not None else None

    @property
    def ttl(self) -> int | None:
        v = self.first(Tag.TTL)
        return int.from_bytes(v, "big") if v is not None and len(v) == 4 else None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.rstrip(b"\x00").decode("utf-8", "replace")


def _text_value(text: str) -> bytes:
    return text.encode("utf-8") + b"\x00"


def encode(message: Message) -> bytes:
    body = bytearray()
    for tag, value in message.elements:
        if not 0 <= tag <= 0xFF or len(value) > 0xFFFF:
            raise ValueError(f"element tag {tag} / length {len(value)} does not fit the format")
        body += bytes((tag,)) + len(value).to_bytes(2, "big") + value
    if len(body) > MAX_BODY:
        raise ValueError(f"body of {len(body)} bytes is over {MAX_BODY}")
    header = bytes((PROTOCOL, VERSION, int(message.command), message.reserved & 0xFF))
    return header + message.session_id.to_bytes(4, "big") + len(body).to_bytes(2, "big") + bytes(body)


def _header(data: bytes | bytearray, base: int = 0) -> tuple[Command, int, int, int]:
    if data[0] != PROTOCOL:
        raise ParseError(f"not a TVS message: protocol byte 0x{data[0]:02x}, expected 0x57", base)
    if data[1] != VERSION:
        raise ParseError(f"TVS version {data[1]} is not 1", base + 1)
    try:
        command = Command(data[2])
    except ValueError:
        raise ParseError(f"unknown TVS command {data[2]}", base + 2) from None
    return command, data[3], int.from_bytes(data[4:8], "big"), int.from_bytes(data[8:10], "big")


@dataclass(frozen=True, slots=True)
class Header:
    command: Command
    reserved: int
    session: int
    length: int  # of the body


def decode_header(data: bytes) -> Header:
    """The 10-byte header alone (a log's hex dump is often cut after a few lines)."""
    if len(data) < HEADER:
        raise ParseError(f"TVS header of {len(data)} bytes is shorter than 10", len(data))
    return Header(*_header(data))


def _elements(body: bytes, base: int) -> tuple[tuple[int, bytes], ...]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(body):
        if pos + 3 > len(body):
            raise ParseError(f"truncated TVS element header ({len(body) - pos} of 3 bytes)", base + pos)
        tag = body[pos]
        length = int.from_bytes(body[pos + 1 : pos + 3], "big")
        end = pos + 3 + length
        if end > len(body):
            raise ParseError(
                f"TVS element tag {tag} claims {length} bytes, only {len(body) - pos - 3} left in the body", base + pos
            )
        out.append((tag, bytes(body[pos + 3 : end])))
        pos = end
    return tuple(out)


def decode(data: bytes) -> Message:
    """One whole message (exactly: bytes after the body are an error, as is a short body)."""
    if len(data) < HEADER:
        raise ParseError(f"TVS message of {len(data)} bytes is shorter than its 10-byte header", len(data))
    command, reserved, session, length = _header(data)
    if len(data) - HEADER != length:
        raise ParseError(f"TVS header says {length} body bytes, the message has {len(data) - HEADER}", 8)
    return Message(command, session, _elements(data[HEADER:], HEADER), reserved)


@dataclass(slots=True)
class Framer:
    """Cuts a byte stream into messages: ``feed`` returns the messages completed so far. A
    protocol error is raised once and the framer stays broken (the connection must be closed:
    after a bad header nothing tells where the next message starts)."""

    _buf: bytearray = field(default_factory=bytearray)
    _seen: int = 0  # stream offset of _buf[0], for the error offsets
    broken: bool = False
    # A body length over this is refused as soon as the header arrives, before its bytes are
    # buffered: a server sets what its requests can need (the format itself caps it at MAX_BODY).
    max_body: int = MAX_BODY

    def feed(self, data: bytes) -> list[Message]:
        if self.broken:
            raise ParseError("TVS stream already failed", self._seen)
        self._buf += data
        out: list[Message] = []
        try:
            while len(self._buf) >= HEADER:
                command, reserved, session, length = _header(self._buf, self._seen)
                if length > self.max_body:
                    raise ParseError(
                        f"TVS body of {length} bytes is over the limit of {self.max_body}", self._seen + 8
                    )
                if len(self._buf) < HEADER + length:
                    break
                body = bytes(self._buf[HEADER : HEADER + length])
                out.append(Message(command, session, _elements(body, self._seen + HEADER), reserved))
                del self._buf[: HEADER + length]
                self._seen += HEADER + length
        except ParseError:
            self.broken = True
            raise
        return out


def query_request(
    session_id: int, device: str, subject: str, issuer: str, serial: bytes
) -> Message:
    """What a phone sends to ask TVS about a signer it does not know (seed dump, §3.5)."""
    return Message(
        Command.QUERY_REQUEST,
        session_id,
        (
            (Tag.DEVICE_NAME, b"\x01" + device.encode("ascii")),
            (Tag.SUBJECT, _text_value(subject)),
            (Tag.ISSUER, _text_value(issuer)),
            (Tag.SERIAL, serial),
        ),
    )


def query_response(
    session_id: int,
    *,
    certificate: bytes | None,
    roles: Iterable[int] = (),
    ttl: int = DEFAULT_TTL,
    reserved: int = RESPONSE_RESERVED,
) -> Message:
    """TVS's answer: status valid with the certificate, its roles and the TTL; or status invalid
    alone when TVS does not know the certificate."""
    if certificate is None:
        return Message(Command.QUERY_RESPONSE, session_id, ((Tag.STATUS, bytes((STATUS_INVALID,))),), reserved)
    return Message(
        Command.QUERY_RESPONSE,
        session_id,
        (
            (Tag.STATUS, bytes((STATUS_VALID,))),
            (Tag.CERTIFICATE, certificate),
            (Tag.ROLES, bytes(roles)),
            (Tag.TTL, ttl.to_bytes(4, "big")),
        ),
        reserved,
    )


def verify_request(session_id: int, device: str, certificate: bytes) -> Message:
    """What a phone sends to have TVS vouch for a certificate it holds whole (a server's, in a
    TLS handshake or a signed file's signer): device name and the DER (tvsd, usecallmanagernz)."""
    return Message(
        Command.VERIFY_REQUEST,
        session_id,
        ((Tag.DEVICE_NAME, b"\x01" + device.encode("ascii")), (Tag.CERTIFICATE, certificate)),
    )


def verify_response(
    session_id: int,
    *,
    roles: Iterable[int] | None,
    ttl: int = DEFAULT_TTL,
    reserved: int = RESPONSE_RESERVED,
) -> Message:
    """TVS's answer to a verify request: status valid with the roles and the TTL (no certificate:
    the phone sent it), or status invalid alone (``roles=None``: TVS does not know it)."""
    if roles is None:
        return Message(Command.VERIFY_RESPONSE, session_id, ((Tag.STATUS, bytes((STATUS_INVALID,))),), reserved)
    return Message(
        Command.VERIFY_RESPONSE,
        session_id,
        (
            (Tag.STATUS, bytes((STATUS_VALID,))),
            (Tag.ROLES, bytes(roles)),
            (Tag.TTL, ttl.to_bytes(4, "big")),
        ),
        reserved,
    )
