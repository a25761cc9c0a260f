"""CTL / ITL / .sgn / .enc.sgn: what the bytes mean.

The TLV kernel (``scanner.core.tlv``) only finds boundaries; this module gives them meaning and keeps
every byte: a parsed file serializes back to exactly the bytes it came from, because each TLV is
kept raw in file order (``Field``) and the semantic attributes are derived from those.

No I/O here: functions take ``bytes`` and return models or raise ``ParseError``.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from scanner.core import tlv
from scanner.core.errors import ParseError

# --- Limits, each with its reason ---------------------------------------------------------------
# Phones refuse an ITL over 64 KB (> 39 certificates, Cisco's CUCM security guide); a scanner must
# still read such a file to report ITL_TOO_LARGE, so allow 16x that before refusing outright.
MAX_TRUST_LIST_SIZE = 1 << 20
# A signed config (.sgn) carries a phone config of a few KB; firmware .sgn files are not fetched
# by the scanner. 4 MiB is far above any config and still bounds memory per file.
MAX_SIGNED_FILE_SIZE = 4 << 20
# The smallest header that can hold tags 1 and 2 (5 bytes each).
MIN_HEADER_LENGTH = 10
# A record of a real file holds one certificate (~1-2 KB); the smallest possible record is its
# length TLV alone (5 bytes), so 1 MiB bounds the count at ~200k: cap well below to keep the
# work per hostile file small. Real files hold < 40 (64 KB phone limit).
MAX_RECORDS = 4096
# Header timestamps are Unix seconds (header tag 15, 4 bytes); beyond year 9999 no datetime exists.
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MAX_TIMESTAMP = int((dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC) - _EPOCH).total_seconds())


class Role(enum.IntEnum):
    """Record role ("function") codes."""

    SAST = 0
    CCM = 1
    CCM_TFTP = 2
    TFTP = 3
    CAPF = 4
    SRST = 5
    APP_SERVER = 7
    TVS = 21

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS: dict[Role, str] = {
    Role.SAST: "SAST",
    Role.CCM: "CCM",
    Role.CCM_TFTP: "CCM+TFTP",
    Role.TFTP: "TFTP",
    Role.CAPF: "CAPF",
    Role.SRST: "SRST",
    Role.APP_SERVER: "APP-SERVER",
    Role.TVS: "TVS",
}


def role_name(code: int) -> str:
    """A role code's name, or ``"UNKNOWN(<n>)"`` for codes no source documents."""
    try:
        return Role(code).label
    except ValueError:
        return f"UNKNOWN({code})"


class Digest(enum.IntEnum):
    """Header tag 8 digest codes."""

    SHA1 = 1
    SHA256 = 2
    SHA512 = 3

    @property
    def hash_name(self) -> str:
        return {Digest.SHA1: "sha1", Digest.SHA256: "sha256", Digest.SHA512: "sha512"}[self]


class Kind(enum.StrEnum):
    CTL = "ctl"
    ITL = "itl"
    SGN = "sgn"
    ENC_SGN = "enc.sgn"


class HeaderTag(enum.IntEnum):
    VERSION = 1
    HEADER_LENGTH = 2
    SIGNER_INFO = 3
    SIGNER_NAME = 4
    SERIAL_NUMBER = 5
    ISSUER_NAME = 6
    SIGNATURE_INFO = 7
    DIGEST_ALGORITHM = 8
    SIGNATURE_ALGORITHM_INFO = 9
    SIGNATURE_ALGORITHM = 10
    SIGNATURE_MODULUS = 11
    SIGNATURE = 12
    PADDING = 13
    FILENAME = 14
    TIMESTAMP = 15
    ENCRYPTION_INFO = 16
    IV_INFO = 17
    IV_UNKNOWN = 18
    IV = 19
    PAD_COUNT = 20
    KEY_INFO = 21
    KEY_UNKNOWN = 22
    KEY_SIZE = 23
    KEY_ALGORITHM = 24
    ENCRYPTED_KEY = 25
    PLAINTEXT_HASH_ALGORITHM = 26
    PLAINTEXT_HASH = 27
    SIGNER_VERSION = 28


class RecordTag(enum.IntEnum):
    RECORD_LENGTH = 1
    DNS_NAME = 2
    SUBJECT_NAME = 3
    ROLE = 4
    ISSUER_NAME = 5
    SERIAL_NUMBER = 6
    PUBLIC_KEY = 7
    SIGNATURE = 8
    CERTIFICATE = 9
    IP_ADDRESS = 10
    CERTIFICATE_HASH = 11
    HASH_ALGORITHM = 12


KNOWN_HEADER_TAGS = frozenset(int(t) for t in HeaderTag)
KNOWN_RECORD_TAGS = frozenset(int(t) for t in RecordTag)
ENCRYPTION_TAGS = frozenset(range(16, 28))


class Field(NamedTuple):
    """One TLV exactly as in the file. A header container keeps its nested TLVs in ``children``
    (and ``value`` is then empty); the padding tag has an empty value and no length on the wire.

    A NamedTuple rather than a dataclass: a 10 KB ITL holds ~60 of these and building them is the
    larger part of a parse, so construction cost matters (tuple creation is ~4x cheaper)."""

    tag: int
    value: bytes
    offset: int
    children: tuple[Field, ...] = ()

    def walk(self) -> Iterator[Field]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True, slots=True)
class Issue:
    """Something a lenient parse tolerated; ``strict=True`` turns each into a ``ParseError``."""

    offset: int
    reason: str


def _text(raw: bytes | None) -> str | None:
    """Header/record strings are NUL-terminated; decode for display, never for matching."""
    if raw is None:
        return None
    if raw.endswith(b"\x00"):
        raw = raw[:-1]
    return raw.decode("utf-8", errors="replace")


def _first(fields: Iterable[Field], tag: int) -> Field | None:
    for f in fields:
        if f.tag == tag:
            return f
    return None


@dataclass(frozen=True, slots=True)
class Record:
    """One (certificate, role) record; ``fields`` are raw TLVs in file order, tag 1 first."""

    offset: int
    length: int
    fields: tuple[Field, ...]

    def raw(self, tag: int) -> bytes | None:
        f = _first(self.fields, tag)
        return None if f is None else f.value

    @property
    def role(self) -> int | None:
        v = self.raw(RecordTag.ROLE)
        return int.from_bytes(v, "big") if v else None

    @property
    def role_name(self) -> str:
        return "NONE" if self.role is None else role_name(self.role)

    @property
    def dns_name(self) -> str | None:
        return _text(self.raw(RecordTag.DNS_NAME))

    @property
    def subject(self) -> str | None:
        return _text(self.raw(RecordTag.SUBJECT_NAME))

    @property
    def issuer(self) -> str | None:
        return _text(self.raw(RecordTag.ISSUER_NAME))

    @property
    def serial(self) -> bytes | None:
        return self.raw(RecordTag.SERIAL_NUMBER)

    @property
    def serial_hex(self) -> str | None:
        s = self.serial
        return None if s is None else s.hex()

    @property
    def public_key(self) -> bytes | None:
        return self.raw(RecordTag.PUBLIC_KEY)

    @property
    def signature(self) -> bytes | None:
        return self.raw(RecordTag.SIGNATURE)

    @property
    def certificate(self) -> bytes | None:
        return self.raw(RecordTag.CERTIFICATE)

    @property
    def ip_address(self) -> str | None:
        v = self.raw(RecordTag.IP_ADDRESS)
        if v is None or len(v) != 4:
            return None
        return ".".join(str(b) for b in v)

    @property
    def unknown_tags(self) -> tuple[int, ...]:
        return tuple(f.tag for f in self.fields if f.tag not in KNOWN_RECORD_TAGS)


@dataclass(frozen=True, slots=True)
class EncryptionInfo:
    """The .enc.sgn envelope: what is needed to report on it, not to decrypt it."""

    iv: bytes | None
    pad_count: int | None
    key_size: int | None
    key_algorithm: int | None
    encrypted_key: bytes | None
    plaintext_hash_algorithm: int | None
    plaintext_hash: bytes | None


@dataclass(frozen=True, slots=True)
class Header:
    fields: tuple[Field, ...]
    length: int
    version: tuple[int, int]
    digest_code: int | None
    signer_name: str | None
    signer_serial: bytes | None
    signer_issuer: str | None
    signature: bytes | None
    # Where the signature TLV starts and how many bytes it spans (3 + len): the signed message is
    # the file with exactly these bytes cut out.
    signature_span: tuple[int, int] | None
    signature_algorithm: int | None
    signature_modulus: int | None
    filename: str | None
    timestamp: int | None
    signer_version: tuple[int, int] | None
    padding: int
    unknown_tags: tuple[tuple[int, int], ...]  # (tag, offset)
    encrypted: bool = False  # any .enc.sgn envelope tag (16-27) present

    @property
    def timestamp_utc(self) -> dt.datetime | None:
        """The timestamp as a UTC time; ``None`` when absent or out of range (a lenient parse
        keeps an 8-byte tag 15 whole, e.g. ``ffffffffffffffff``, and no datetime holds it)."""
        ts = self.timestamp
        if ts is None or ts > _MAX_TIMESTAMP:
            return None
        return _EPOCH + dt.timedelta(seconds=ts)

    @property
    def version_str(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def digest(self) -> Digest | None:
        try:
            return None if self.digest_code is None else Digest(self.digest_code)
        except ValueError:
            return None

    @property
    def signer_serial_hex(self) -> str | None:
        return None if self.signer_serial is None else self.signer_serial.hex()

    @property
    def encryption(self) -> EncryptionInfo | None:
        tags = {f.tag: f.value for top in self.fields for f in top.walk()}
        if not ENCRYPTION_TAGS & tags.keys():
            return None

        def num(tag: int) -> int | None:
            v = tags.get(tag)
            return int.from_bytes(v, "big") if v else None

        return EncryptionInfo(
            iv=tags.get(HeaderTag.IV),
            pad_count=num(HeaderTag.PAD_COUNT),
            key_size=num(HeaderTag.KEY_SIZE),
            key_algorithm=num(HeaderTag.KEY_ALGORITHM),
            encrypted_key=tags.get(HeaderTag.ENCRYPTED_KEY),
            plaintext_hash_algorithm=num(HeaderTag.PLAINTEXT_HASH_ALGORITHM),
            plaintext_hash=tags.get(HeaderTag.PLAINTEXT_HASH),
        )


@dataclass(frozen=True, slots=True)
class TrustFile:
    """A parsed CTL, ITL, .sgn or .enc.sgn file.

    ``records`` is empty for .sgn / .enc.sgn, whose bytes after the header are ``payload``.
    ``data`` is the exact input; ``issues`` what a lenient parse tolerated.
    """

    kind: Kind
    header: Header
    records: tuple[Record, ...]
    payload: bytes
    data: bytes = field(repr=False)
    issues: tuple[Issue, ...] = ()

    @property
    def signed_message(self) -> bytes:
        """The bytes the signature covers: the whole file minus the signature TLV."""
        span = self.header.signature_span
        if span is None:
            return self.data
        start, size = span
        return self.data[:start] + self.data[start + size :]

    def records_with_role(self, *roles: int) -> tuple[Record, ...]:
        return tuple(r for r in self.records if r.role in roles)

    def digests(self) -> FileDigests:
        return FileDigests.of(self.data)


@dataclass(frozen=True, slots=True)
class FileDigests:
    """Whole-file hashes: phones display MD5 or SHA-1 of what they hold (on their Network Setup page)."""

    md5: str
    sha1: str
    sha256: str
    size: int

    @classmethod
    def of(cls, data: bytes) -> FileDigests:
        return cls(
            md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
            sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )


# --- Parsing ------------------------------------------------------------------------------------


def _u(value: bytes) -> int:
    return int.from_bytes(value, "big")


_new_field = tuple.__new__  # Field(...) goes through a Python-level __new__; this does not


def _tree(data: bytes, flat: array[int]) -> tuple[tuple[Field, ...], list[Field]]:
    """Rebuild the container tree from the kernel's flat, depth-first triples.

    Returns the top-level fields and, alongside, every leaf in file order (what the semantic
    lookups want, without walking the tree again)."""
    root: list[Field] = []
    leaves: list[Field] = []
    # Each open container: (its tag, value offset, end offset, children so far).
    stack: list[tuple[int, int, int, list[Field]]] = []
    containers = tlv.CONTAINER_TAGS
    pad = tlv.PADDING_TAG
    for tag, off, length in tlv.triples(flat):
        # Close the containers this TLV starts at or past the end of. Compare where the TLV
        # *starts*, not its value offset: a zero-length TLV (or a padding byte, 1 byte on the
        # wire) that ends a container has its value offset at the container's end, and would
        # otherwise be put after the container instead of inside it.
        start = off - 1 if tag == pad else off - 3  # in a header, tag 13 is always the pad byte
        while stack and start >= stack[-1][2]:
            ctag, coff, _end, kids = stack.pop()
            node = _new_field(Field, (ctag, b"", coff - 3, tuple(kids)))
            (stack[-1][3] if stack else root).append(node)
        if tag in containers:
            stack.append((tag, off, off + length, []))
            continue
        if tag == pad and length == 0:
            leaf = _new_field(Field, (tag, b"", off - 1, ()))
        else:
            leaf = _new_field(Field, (tag, data[off : off + length], off - 3, ()))
        leaves.append(leaf)
        (stack[-1][3] if stack else root).append(leaf)
    while stack:
        ctag, coff, _end, kids = stack.pop()
        node = _new_field(Field, (ctag, b"", coff - 3, tuple(kids)))
        (stack[-1][3] if stack else root).append(node)
    return tuple(root), leaves


def _header_length(data: bytes) -> int:
    """Check the two fixed leading TLVs (version, header length) and return the header length."""
    if len(data) < MIN_HEADER_LENGTH:
        raise ParseError(f"file too short for a trust-file header ({len(data)} bytes)", 0)
    if data[0] != HeaderTag.VERSION:
        raise ParseError(f"wrong magic: first tag is {data[0]}, a trust-file header starts with tag 1", 0)
    if data[1:3] != b"\x00\x02":
        raise ParseError(f"version TLV must be 2 bytes long, not {_u(data[1:3])}", 0)
    if data[5] != HeaderTag.HEADER_LENGTH or data[6:8] != b"\x00\x02":
        raise ParseError("second TLV must be the 2-byte header length (tag 2)", 5)
    length = _u(data[8:10])
    if length < MIN_HEADER_LENGTH:
        raise ParseError(f"header length {length} is smaller than the fixed header TLVs", 8)
    if length > len(data):
        raise ParseError(f"header length {length} runs past the end of the file ({len(data)} bytes)", 8)
    return length


def header_length(data: bytes) -> int:
    """The header length of a trust file or signed file (tag 2), after checking the two fixed
    leading TLVs; raises ``ParseError``. The payload of a ``.sgn`` file starts there."""
    return _header_length(data)


def signature_facts(data: bytes) -> tuple[int | None, tuple[int, int] | None]:
    """``(digest code, signature span)`` of the header, what ``parse_header`` would report as
    ``Header.digest_code`` and ``Header.signature_span``, without building the header.

    The collector needs only these two facts for every redacted config (to record the digest of
    the original signed message); ``parse_header`` builds every field and costs five times more.
    Same rules: leaves only, the first occurrence of a tag wins. Raises ``ParseError``."""
    length = _header_length(data)
    flat = tlv.split(data, 0, length, True)
    containers = tlv.CONTAINER_TAGS
    digest_code: int | None = None
    span: tuple[int, int] | None = None
    seen_digest = False
    for tag, off, size in tlv.triples(flat):
        if tag in containers:
            continue
        if tag == HeaderTag.DIGEST_ALGORITHM and not seen_digest:
            seen_digest = True
            digest_code = _u(data[off : off + size]) if size else None
        elif tag == HeaderTag.SIGNATURE and span is None:
            span = (off - 3, 3 + size)
    return digest_code, span


def parse_header(data: bytes, *, strict: bool = False, issues: list[Issue] | None = None) -> Header:
    """Parse just the header of any trust file; ``data`` may be the whole file."""
    length = _header_length(data)
    fields, leaves = _tree(data, tlv.split(data, 0, length, True))
    found: dict[int, Field] = {}
    unknown: list[tuple[int, int]] = []
    padding = 0
    problems: list[Issue] = [] if issues is None else issues
    for f in leaves:
        tag = f.tag
        if tag == tlv.PADDING_TAG:
            padding += 1
        elif tag not in KNOWN_HEADER_TAGS:
            unknown.append((tag, f.offset))
        elif tag in found:
            problems.append(Issue(f.offset, f"duplicate header tag {tag}; the first one is used"))
        else:
            found[tag] = f

    def value(tag: int) -> bytes | None:
        f = found.get(tag)
        return None if f is None else f.value

    def number(tag: int, size: int) -> int | None:
        f = found.get(tag)
        if f is None:
            return None
        if len(f.value) != size:
            problems.append(Issue(f.offset, f"header tag {tag} should be {size} byte(s), is {len(f.value)}"))
            if not f.value:
                return None
        return _u(f.value)

    sig = found.get(HeaderTag.SIGNATURE)
    if sig is None:
        problems.append(Issue(length, "header has no signature (tag 12)"))
    digest_code = number(HeaderTag.DIGEST_ALGORITHM, 1)
    if digest_code is None:
        problems.append(Issue(length, "header has no digest algorithm (tag 8)"))
    elif digest_code not in (1, 2, 3):
        problems.append(Issue(found[HeaderTag.DIGEST_ALGORITHM].offset, f"unknown digest code {digest_code}"))
    sv = value(HeaderTag.SIGNER_VERSION)
    ts = number(HeaderTag.TIMESTAMP, 4)
    if strict and problems:
        raise ParseError(problems[0].reason, problems[0].offset)
    return Header(
        fields=fields,
        length=length,
        version=(data[3], data[4]),
        digest_code=digest_code,
        signer_name=_text(value(HeaderTag.SIGNER_NAME)),
        signer_serial=value(HeaderTag.SERIAL_NUMBER),
        signer_issuer=_text(value(HeaderTag.ISSUER_NAME)),
        signature=None if sig is None else sig.value,
        signature_span=None if sig is None else (sig.offset, 3 + len(sig.value)),
        signature_algorithm=number(HeaderTag.SIGNATURE_ALGORITHM, 1),
        signature_modulus=number(HeaderTag.SIGNATURE_MODULUS, 1),
        filename=_text(value(HeaderTag.FILENAME)),
        timestamp=ts,
        signer_version=(sv[0], sv[1]) if sv is not None and len(sv) == 2 else None,
        padding=padding,
        unknown_tags=tuple(unknown),
        encrypted=not ENCRYPTION_TAGS.isdisjoint(found),
    )


def parse_records(data: bytes, start: int, *, issues: list[Issue]) -> tuple[Record, ...]:
    """Records from ``start`` to the end: each begins with tag 1 whose value is its total size."""
    flat = tlv.split(data, start, -1, False)
    records: list[Record] = []
    rec_start = start
    rec_end = start
    current: list[Field] = []
    size = len(data)
    new = _new_field
    for tag, off, length in tlv.triples(flat):
        tlv_start = off - 3
        if tlv_start == rec_end:
            if current:
                records.append(Record(rec_start, rec_end - rec_start, tuple(current)))
                current = []
            if tag != RecordTag.RECORD_LENGTH:
                raise ParseError(f"record must start with its length (tag 1), found tag {tag}", tlv_start)
            if length != 2:
                raise ParseError(f"record length TLV must be 2 bytes, is {length}", tlv_start)
            declared = (data[off] << 8) | data[off + 1]
            if declared < 5:
                raise ParseError(f"record length {declared} is smaller than its own length TLV", tlv_start)
            if tlv_start + declared > size:
                raise ParseError(
                    f"record length {declared} runs {tlv_start + declared - size} bytes past the end",
                    tlv_start,
                )
            if len(records) >= MAX_RECORDS:
                raise ParseError(f"more than {MAX_RECORDS} records", tlv_start)
            rec_start, rec_end = tlv_start, tlv_start + declared
        elif off + length > rec_end:
            raise ParseError(
                f"record tag {tag} crosses the end of its record (record at {rec_start} is "
                f"{rec_end - rec_start} bytes)",
                tlv_start,
            )
        elif tag == 1:
            raise ParseError(
                f"a record length (tag 1) inside the record at {rec_start}: its declared length is wrong",
                tlv_start,
            )
        current.append(new(Field, (tag, data[off : off + length], tlv_start, ())))
    if current:
        records.append(Record(rec_start, rec_end - rec_start, tuple(current)))
    return tuple(records)


def _kind_from_name(name: str | None) -> Kind | None:
    if not name:
        return None
    base = name.rsplit("/", 1)[-1].lower()
    if base.endswith(".enc.sgn"):
        return Kind.ENC_SGN
    if base.endswith(".sgn"):
        return Kind.SGN
    if base.endswith(".tlv"):
        if base.startswith("ctl"):
            return Kind.CTL
        if base.startswith("itl") or base.startswith("ext_itl"):
            return Kind.ITL
    return None


kind_from_name = _kind_from_name  # what a file name says it is (public: content_check uses it)


def detect_kind(header: Header, name_hint: str | None = None) -> Kind:
    """Decide what a file is: the encryption tags, then the header filename, then the caller's
    file name, and finally the header version (certutils: 1.x trust lists, 2.0 .enc.sgn)."""
    if header.encrypted:
        return Kind.ENC_SGN
    for name in (header.filename, name_hint):
        kind = _kind_from_name(name)
        if kind is not None:
            if kind is Kind.ENC_SGN:
                return Kind.SGN  # no encryption tags: it is a signed-only file
            return kind
    return Kind.ITL if header.filename is None and name_hint is None else Kind.SGN


def parse(data: bytes, *, name_hint: str | None = None, strict: bool = False) -> TrustFile:
    """Parse a CTL, ITL, .sgn or .enc.sgn file.

    Unknown tags are kept and reported (``Header.unknown_tags``, ``Record.unknown_tags``), never
    fatal. ``strict=True`` also refuses what a lenient reader tolerates (duplicate or missing
    header tags, odd sizes, an unknown digest code, a header version other than 1.x/2.x).
    Raises ``ParseError`` (and nothing else) naming the offset and the reason.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ParseError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    issues: list[Issue] = []
    header = parse_header(data, strict=strict, issues=issues)
    kind = detect_kind(header, name_hint)
    if header.version[0] not in (1, 2):
        issues.append(Issue(3, f"header version {header.version_str}: only 1.x and 2.x are known"))
    if kind in (Kind.CTL, Kind.ITL):
        if len(data) > MAX_TRUST_LIST_SIZE:
            raise ParseError(
                f"trust list of {len(data)} bytes exceeds the {MAX_TRUST_LIST_SIZE}-byte limit", 0
            )
        records = parse_records(data, header.length, issues=issues)
        payload = b""
    else:
        if len(data) > MAX_SIGNED_FILE_SIZE:
            raise ParseError(
                f"signed file of {len(data)} bytes exceeds the {MAX_SIGNED_FILE_SIZE}-byte limit", 0
            )
        records = ()
        payload = data[header.length :]
    if strict and issues:
        raise ParseError(issues[0].reason, issues[0].offset)
    return TrustFile(kind, header, records, payload, data, tuple(issues))


# --- Serializing --------------------------------------------------------------------------------


def _emit(out: bytearray, f: Field, header: bool) -> None:
    # The one-byte padding tag exists only in headers; in a record, tag 13 with an empty value
    # is an ordinary TLV of 3 bytes (tag, 0x0000).
    if header and f.tag == tlv.PADDING_TAG and not f.value and not f.children:
        out.append(f.tag)
        return
    if f.children:
        inner = bytearray()
        for child in f.children:
            _emit(inner, child, header)
        body: bytes | bytearray = inner
    else:
        body = f.value
    if len(body) > 0xFFFF:
        raise ValueError(f"tag {f.tag} value of {len(body)} bytes does not fit a 2-byte length")
    out.append(f.tag)
    out += len(body).to_bytes(2, "big")
    out += body


def serialize_fields(fields: Iterable[Field], *, header: bool = True) -> bytes:
    """TLVs back to bytes; ``header=False`` for record fields (no padding tag there)."""
    out = bytearray()
    for f in fields:
        _emit(out, f, header)
    return bytes(out)


def serialize(tf: TrustFile) -> bytes:
    """The bytes of a parsed file, rebuilt from its fields: equal to the input for any file
    ``parse`` accepted (a property the tests hold on every real vector)."""
    parts = [serialize_fields(tf.header.fields)]
    parts.extend(serialize_fields(r.fields, header=False) for r in tf.records)
    parts.append(tf.payload)
    return b"".join(parts)
