"""The evidence record: one ``Attempt`` per fetched file, its ``Outcome``, and what is stored of it.

The directory that holds these records is written and read by ``scanner.store.evidence``.

Layout (``EVIDENCE_FORMAT`` = 1)::

    DIR/collection.json      summary: tool version, profile snapshot with hashes, times, counts
    DIR/manifest.jsonl       one JSON object per attempt (``Attempt``), in completion order
    DIR/blobs/ab/abcd...     file bytes, content-addressed by the SHA-256 of the stored bytes

Content addressing: 10,000 phones served the same ITL store it once; the manifest line of each
phone points at the blob. A blob's name is its SHA-256, so a reader can check every blob.

Redaction (field notes, lesson 10: passwords never stored): phone configs are stored with the
values of secret elements replaced (``scanner.core.devconfig.redact_config_xml``).

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
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

import orjson

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
EVIDENCE_FORMAT = 1


class Outcome(StrEnum):
    """The result of one attempt; the manifest's vocabulary.

    The first six are the issue's; ``disabled`` is a phone whose web server is off (an answer,
    unlike ``refused`` or ``timeout``); ``skipped`` is an attempt not made for a stated reason
    (no IP address for the phone); ``bug`` is an unexpected exception in the scanner, with its
    traceback in ``error``, recorded so the scan goes on.
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


@dataclass(frozen=True, slots=True)
class Attempt:
    """One manifest line."""

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
        return cls(**args)


_STR = (str,)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "phone": _STR, "cluster": _STR, "node": _STR, "transport": _STR, "file": _STR, "size": (int,),
    "sha256": _STR, "duration": (int, float), "error": _STR, "address": _STR, "blob": _STR,
    "redacted": (bool,), "signed_digest": _STR, "started": (int, float),
}
_REQUIRED = frozenset({"transport", "file", "duration"})
_SIGNED_DIGEST = re.compile(r"[a-z0-9_]{1,16}:(?:[0-9a-f]{2}){16,64}")

# The manifest says "bytes" (the name); the attribute cannot shadow the builtin type.
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
    if lower.endswith(".cnf.xml") or lower.endswith(".xml"):
        red = redact(data)
        return Stored(red, red != data, None)
    if lower.endswith(".cnf.xml.sgn") and not lower.endswith(".enc.sgn"):
        return _prepare_sgn(data)
    return Stored(data, False, None)


# ---------------------------------------------------------------------------------------------
# Redaction, fast path
#
# ``scanner.core.devconfig.redact_config_xml`` walks every start tag of a config in Python (about
# 0.5 ms for a 5 KB config: more than the rest of a file's collection put together). Its output
# differs from its input only where a secret *name* occurs: a secret element's value or a secret
# attribute's value. Every secret name contains one of ``_NEEDLES`` (case-insensitively), so:
#
# * no needle anywhere: the output is the input (a few memchr-speed searches);
# * every needle inside the name of a simple tag, ``<name>``, ``<name/>`` or ``</name>`` (no
#   attributes, no spaces), and every secret ``<name>`` followed by a value without ``<`` and its
#   ``</name>``: the reference's walk visits exactly those tags and changes only those values,
#   which is done here directly;
# * anything else (a needle in an attribute, in text, in a comment; a secret element holding
#   markup or CDATA or left unclosed; a UTF-16/32 file; a file over 1 MiB): the reference runs.
#
# tests/test_evidence.py holds the two to the same output on the lab's configs, the vectors and
# generated documents.


def _needles() -> tuple[bytes, ...]:
    from scanner.core.devconfig import _SECRET_NAMES, _SECRET_SUBSTRINGS

    words = sorted({w.lower() for w in (*_SECRET_SUBSTRINGS, *_SECRET_NAMES)}, key=len)
    # Keep only words that do not contain a shorter one: finding "psk" finds "wpapsk" too.
    kept: list[str] = []
    for w in words:
        if not any(k in w for k in kept):
            kept.append(w)
    return tuple(w.encode("ascii") for w in kept)


def _needle_groups(needles: tuple[bytes, ...]) -> tuple[tuple[bytes, tuple[bytes, ...]], ...]:
    # Needles that share a 4-byte prefix are found with one search for the prefix, each hit then
    # checked against the group's needles ("pass" finds passwd, password and passphrase): a
    # search over a config costs more than the checks of its few hits.
    groups: dict[bytes, list[bytes]] = {}
    for n in needles:
        groups.setdefault(n[:4], []).append(n)
    return tuple(
        (prefix if len(members) > 1 else members[0], tuple(members)) for prefix, members in groups.items()
    )


_NEEDLES = _needles()
_NEEDLE_GROUPS = _needle_groups(_NEEDLES)
_SIMPLE_TAG = re.compile(rb"<(/?)([A-Za-z_][\w.:-]*)(/?)>")
_FAST_LIMIT = 1 << 20  # devconfig.MAX_CONFIG_BYTES: beyond it, leave everything to the reference


def redact(data: bytes) -> bytes:
    """``scanner.core.devconfig.redact_config_xml(data)``, the same bytes, faster on common configs."""
    fast = _redact_fast(data)
    if fast is not None:
        return fast
    from scanner.core.devconfig import redact_config_xml

    return redact_config_xml(data)


def _redact_fast(data: bytes) -> bytes | None:
    """The redacted bytes, or None when the reference must decide."""
    if not isinstance(data, bytes) or len(data) > _FAST_LIMIT:
        return None
    if b"\x00" in data[:4] or data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None  # UTF-16/32: the reference transcodes
    lowered = data.lower()  # ASCII-only lowering: positions are unchanged
    tags: dict[int, re.Match[bytes]] = {}
    for prefix, group in _NEEDLE_GROUPS:
        i = lowered.find(prefix)
        while i >= 0:
            for needle in group:
                if not lowered.startswith(needle, i):
                    continue
                start = data.rfind(b"<", 0, i)
                if start < 0:
                    return None
                m = tags.get(start)
                if m is None:
                    m = _SIMPLE_TAG.match(data, start)
                    if m is None:
                        return None
                    tags[start] = m
                if i < m.start(2) or i + len(needle) > m.end(2):
                    return None  # not inside a simple tag's name
            i = lowered.find(prefix, i + 1)
    if not tags:
        return data
    out: list[bytes] = []
    pos = 0
    skip_until = -1
    for start in sorted(tags):
        if start < skip_until:
            continue  # the close tag of a value just replaced
        slash, name, self_closing = tags[start].groups()
        if slash or self_closing or not _is_secret(name):
            continue
        value_start = tags[start].end()
        value_end = data.find(b"<", value_start)
        if value_end < 0:
            return None  # unclosed: the reference's truncated-file rule
        close = b"</" + name + b">"
        if data.startswith(close, value_end):
            close_end = value_end + len(close)
        else:
            cm = _close_tag(name).match(data, value_end)
            if cm is None:
                return None  # markup, CDATA or another close tag inside: the reference's walk
            close_end = cm.end()
        if data[value_start:value_end].strip():
            out.append(data[pos:value_start])
            out.append(_REDACTED)
            pos = value_end
        skip_until = close_end
    if not out:
        return data
    out.append(data[pos:])
    return b"".join(out)


_CLOSE_TAGS: dict[bytes, re.Pattern[bytes]] = {}


def _close_tag(name: bytes) -> re.Pattern[bytes]:
    pattern = _CLOSE_TAGS.get(name)
    if pattern is None:
        if len(_CLOSE_TAGS) > 256:
            _CLOSE_TAGS.clear()
        pattern = _CLOSE_TAGS[name] = re.compile(rb"</" + re.escape(name) + rb"\s*>")
    return pattern


_SECRET_CACHE: dict[bytes, bool] = {}


def _is_secret(name: bytes) -> bool:
    # Cached: a fleet's configs repeat the same few dozen element names.
    known = _SECRET_CACHE.get(name)
    if known is None:
        from scanner.core.devconfig import is_secret_name

        known = is_secret_name(name.decode("ascii"))
        if len(name) <= 128:  # element names are short; a hostile one is not kept
            if len(_SECRET_CACHE) > 4096:
                _SECRET_CACHE.clear()
            _SECRET_CACHE[name] = known
    return known


def _redacted_marker() -> bytes:
    from scanner.core.devconfig import REDACTED

    return REDACTED.encode("ascii")


_REDACTED = _redacted_marker()


def _prepare_sgn(data: bytes) -> Stored:
    from scanner.core.trustlist import Digest, header_length, signature_facts

    try:
        length = header_length(data)
    except ParseError:
        return _redact_unsigned(data)
    payload = data[length:]
    red = redact(payload)
    if red is payload or red == payload:
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
    # the reference read it as UTF-16 and find no secret). Errs on the safe side.
    from scanner.core.devconfig import redact_binary_prefixed

    red = redact_binary_prefixed(data)
    return Stored(red, red != data, None)
