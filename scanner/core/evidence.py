"""The evidence record: one ``Attempt`` per fetched file, its ``Outcome``, and what is stored of it.

The directory that holds these records is written and read by ``scanner.store.evidence``.

Layout (``EVIDENCE_FORMAT`` = 2)::

    DIR/collection.json      summary: tool version, profile snapshot with hashes, times, counts
    DIR/manifest.jsonl       one JSON object per attempt (``Attempt``), in completion order
    DIR/blobs.pack           file bytes, content-addressed by the SHA-256 of the stored bytes

Content addressing: 10,000 phones served the same ITL store it once; the manifest line of each
phone points at the blob. A blob's name is its SHA-256, so a reader can check every blob.

Redaction (passwords are never stored, not even as evidence): phone configs are stored with
the values of secret elements replaced (``scanner.core.devconfig.redact_config_xml``).

* ``SEP<MAC>.cnf.xml``: stored redacted.
* ``SEP<MAC>.cnf.xml.sgn``: the signed header is kept byte for byte and the XML payload after it
  is redacted. That breaks the signature over the stored bytes, so when redaction changed
  anything, the manifest keeps what verification needs from the original: ``sha256`` is always
  the hash of the bytes *as received*, ``blob`` the hash of the bytes stored, and
  ``signed_digest`` (``"<alg>:<hex>"``) the digest of the original signed message (the file
  minus its signature TLV, §2.1), which the header's signature can be checked against with any
  candidate public key (RSA PKCS#1 v1.5 over a pre-hashed digest). The digest reveals nothing
  the stored signature does not already reveal.
* ``.enc.sgn`` payloads are encrypted: stored as received.

Trust lists and phone pages carry no secrets and are stored as received (their whole-file
hashes are what phones display, spec §5.3).
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

import orjson

from scanner.core.devconfig import redact_binary_prefixed, redact_config_xml
from scanner.core.errors import ParseError

__all__ = [
    "EVIDENCE_FORMAT",
    "Attempt",
    "Outcome",
    "Stored",
    "TransportKind",
    "prepare_for_storage",
]

# History: 1 = first version (blobs/, manifest.jsonl, collection.json).
#          2 = blobs in one append-only pack, blobs.pack (scanner.store.blobpack); 1 is still read.
EVIDENCE_FORMAT = 2


class Outcome(StrEnum):
    """The result of one attempt; the manifest's vocabulary.

    The first six are what a transfer can end with (``scanner.core.tftp`` and
    ``scanner.net.http_fetch`` return only these); ``disabled`` is a phone whose web server is
    off (an answer, unlike ``refused`` or ``timeout``); ``skipped`` is an attempt not made for a
    stated reason (no IP address for the phone); ``bug`` is an unexpected exception in the
    scanner, with its traceback in ``error``, recorded so the scan goes on.
    """

    OK = "ok"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    REFUSED = "refused"
    TOO_LARGE = "too_large"
    PROTOCOL_ERROR = "protocol_error"
    DISABLED = "disabled"
    SKIPPED = "skipped"
    BUG = "bug"


class TransportKind(StrEnum):
    TFTP = "tftp"
    HTTP = "http"  # HTTP(S) 6970 of a TFTP node
    WEB = "web"  # the phone's own web server
    TVS = "tvs"


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One manifest line. Built with keywords only: fifteen fields, several of the same type, are
    too many to tell apart by position."""

    phone: str | None  # device name; None for cluster-level files and TVS probes
    cluster: str | None  # "source" / "destination"; None for phone pages
    node: str | None  # TFTP/TVS node name, or the phone's address for web pages
    transport: str  # a TransportKind value
    file: str  # file name, page name ("network-setup"), or "server-certificate" for TVS
    outcome: Outcome
    size: int | None  # bytes as received ("bytes" in the JSON)
    sha256: str | None  # of the bytes as received
    duration: float  # seconds
    error: str | None = None
    address: str | None = None  # host:port or URL
    blob: str | None = None  # SHA-256 of the stored bytes (the blob's name)
    redacted: bool = False
    signed_digest: str | None = None
    started: float | None = None  # Unix time

    def to_json(self) -> bytes:
        # Spelled out (not a loop over ``fields``): one line per attempt, so this is on the per-file
        # path. tests/test_evidence.py checks that it names every field.
        return orjson.dumps(
            {
                "phone": self.phone,
                "cluster": self.cluster,
                "node": self.node,
                "transport": self.transport,
                "file": self.file,
                "outcome": self.outcome,
                "bytes": self.size,
                "sha256": self.sha256,
                "duration": self.duration,
                "error": self.error,
                "address": self.address,
                "blob": self.blob,
                "redacted": self.redacted,
                "signed_digest": self.signed_digest,
                "started": self.started,
            }
        )

    @classmethod
    def from_json(cls, line: bytes | str) -> Attempt:
        obj = orjson.loads(line)
        if not isinstance(obj, dict):
            raise ValueError("manifest line is not an object")
        known = {f.name for f in fields(cls)}
        args: dict[str, Any] = {_FIELD_NAMES.get(str(k), str(k)): v for k, v in obj.items()}
        args = {k: v for k, v in args.items() if k in known}
        args["outcome"] = Outcome(args["outcome"])
        # Every field of the type its readers assume: a line that is JSON but not a manifest line
        # (a number for a name, a list for a cluster) is refused here, as one bad line, instead of
        # raising deep in the analysis and ending the scan.
        for name, types in _FIELD_TYPES.items():
            value = args.get(name)
            if value is None and name not in _REQUIRED:
                continue
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ValueError(f"field {_JSON_NAMES.get(name, name)!r} is {type(value).__name__}, not "
                                 + " or ".join(t.__name__ for t in types))
        blob = args.get("blob")
        if blob is not None and (len(blob) != 64 or blob.strip("0123456789abcdef")):
            raise ValueError(f"field 'blob' is not a SHA-256 hex digest: {blob[:80]!r}")
        digest = args.get("signed_digest")
        if digest is not None and not _SIGNED_DIGEST.fullmatch(digest):
            raise ValueError(f"field 'signed_digest' is not '<algorithm>:<hex>': {digest[:80]!r}")
        # Where attempts are held (the streaming analysis, until their phone is decided; resume):
        # a phone's name and its file names recur on every node, node and cluster names on every
        # line, and an unredacted blob is named by the file's own SHA-256. One string each instead
        # of one per line: 11.8 -> 8.7 KB a phone when the whole fleet's attempts were held (the
        # 2,000-phone lab, docs/performance.md). Equal strings, so nothing else changes.
        for name in _INTERNED:
            value = args.get(name)
            if value is not None:
                args[name] = sys.intern(value)
        if blob is not None and blob == args.get("sha256"):
            args["blob"] = args["sha256"]
        return cls(**args)


_STR = (str,)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "phone": _STR, "cluster": _STR, "node": _STR, "transport": _STR, "file": _STR, "size": (int,),
    "sha256": _STR, "duration": (int, float), "error": _STR, "address": _STR, "blob": _STR,
    "redacted": (bool,), "signed_digest": _STR, "started": (int, float),
}
_REQUIRED = frozenset({"transport", "file", "duration"})
_INTERNED = ("phone", "cluster", "node", "transport", "file")
_SIGNED_DIGEST = re.compile(r"[a-z0-9_]{1,16}:(?:[0-9a-f]{2}){16,64}")

# The manifest line says "bytes" (the name readers of manifest.jsonl see); the attribute cannot
# shadow the builtin type.
_JSON_NAMES = {"size": "bytes"}
_FIELD_NAMES = {v: k for k, v in _JSON_NAMES.items()}


@dataclass(frozen=True, slots=True)
class Stored:
    data: bytes  # what goes into the blob
    redacted: bool
    signed_digest: str | None


def prepare_for_storage(file_name: str, data: bytes) -> Stored:
    """The bytes to store for ``file_name`` (see the module doc for the redaction rules)."""
    lower = file_name.lower()
    if lower.endswith(".xml"):  # SEP<MAC>.cnf.xml, and any other XML a node serves
        red = redact_config_xml(data)
        return Stored(red, red != data, None)
    if lower.endswith(".cnf.xml.sgn"):  # not .cnf.xml.enc.sgn: encrypted, stored as received
        return _prepare_sgn(data)
    return Stored(data, False, None)


def _prepare_sgn(data: bytes) -> Stored:
    from scanner.core.trustlist import Digest, header_length, signature_facts

    try:
        length = header_length(data)
    except ParseError:
        return _redact_unsigned(data)
    payload = data[length:]
    red = redact_config_xml(payload)
    if red == payload:
        return Stored(data, False, None)
    try:
        code, span = signature_facts(data)
    except ParseError:
        return _redact_unsigned(data)
    try:
        alg = "sha1" if code is None else Digest(code).hash_name
    except ValueError:
        alg = "sha1"  # an unknown code: Header.digest is None, as in parse_header
    # The signed message: the file minus its signature TLV (trustlist.TrustFile.signed_message).
    h = hashlib.new(alg)
    if span is None:
        h.update(data)
    else:
        start, size = span
        h.update(memoryview(data)[:start])
        h.update(memoryview(data)[start + size :])
    return Stored(data[:length] + red, True, f"{alg}:{h.hexdigest()}")


def _redact_unsigned(data: bytes) -> Stored:
    # Named .sgn but its header does not parse: the whole file is redacted as text, and as
    # ASCII-compatible text even though it may start with binary (a header's NULs would make
    # redact_config_xml read it as UTF-16 and find no secret). Errs on the safe side.
    red = redact_binary_prefixed(data)
    return Stored(red, red != data, None)
