"""Identical bytes are parsed and verified once per process: a content-addressed cache.

A fleet of 10,000 phones usually holds a handful of distinct trust lists (every phone of a node
gets the same ITL bytes under its own file name), so the scan pays for each distinct file once.
Results are immutable, so sharing them is safe.

``TrustFileCheck`` is what is known of one file's bytes (named after ``trustlist.TrustFile``, the
parse it holds; signed configs parse to one too); ``TrustFileCache`` is the cache of them. The
word "analysis" is kept for the phase that turns an evidence directory into verdicts
(``scanner.app.analysis``).
"""

from __future__ import annotations

import hashlib
import threading
import traceback
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from scanner.core.errors import ParseError
from scanner.core.trustlist import FileDigests, TrustFile, parse
from scanner.core.verify import TrustStore, Verification, verify

# Distinct files per scan are few (nodes x kinds); configs are per phone but small. 4096 entries
# of at most ~64 KB each bound the cache near 256 MB in the worst case and ~10 MB in practice.
DEFAULT_MAX_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class TrustFileCheck:
    """Everything known about one file's bytes: hashes, the parse (or its error), the verification
    (None when the caller asked for no signature check)."""

    digests: FileDigests
    file: TrustFile | None
    error: ParseError | None
    verification: Verification | None

    @property
    def sha256(self) -> str:
        return self.digests.sha256


class TrustFileCache:
    """``TrustFileCheck``s by content (and by what else changes the result), least recently used
    first out; ``hits`` and ``misses`` go into the report's run section."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._entries: OrderedDict[tuple[str, str | None, bool, tuple[str, ...]], TrustFileCheck] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def check(
        self,
        data: bytes,
        *,
        name_hint: str | None = None,
        strict: bool = False,
        trust_stores: Sequence[TrustStore] = (),
        verify_signature: bool = True,
    ) -> TrustFileCheck:
        sha256 = hashlib.sha256(data).hexdigest()
        # The name only matters when the header does not say what the file is; the trust stores
        # matter only when the file's own records cannot verify it.
        key = (
            sha256,
            kind_hint(name_hint),
            strict,
            tuple(s.fingerprint for s in trust_stores) if verify_signature else ("-",),
        )
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return hit
        result = _check(data, name_hint, strict, trust_stores, verify_signature)
        with self._lock:
            self.misses += 1
            self._entries[key] = result
            if len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return result

    def __len__(self) -> int:
        return len(self._entries)


def kind_hint(name: str | None) -> str | None:
    """What of a file's name changes how it parses (``parse``'s ``name_hint``): the kind it names."""
    if not name:
        return None
    base = name.rsplit("/", 1)[-1].lower()
    for suffix in (".enc.sgn", ".sgn", ".tlv"):
        if base.endswith(suffix):
            return base[:3] + suffix
    return None


def _check(
    data: bytes,
    name_hint: str | None,
    strict: bool,
    trust_stores: Sequence[TrustStore],
    verify_signature: bool,
) -> TrustFileCheck:
    digests = FileDigests.of(data)
    try:
        tf = parse(data, name_hint=name_hint, strict=strict)
    except ParseError as exc:
        return TrustFileCheck(digests, None, exc, None)
    verification = _verify(tf, trust_stores) if verify_signature else None
    return TrustFileCheck(digests, tf, None, verification)


INTERNAL_ERROR = "internal error while verifying (a bug: please report it)"


def _verify(tf: TrustFile, trust_stores: Sequence[TrustStore]) -> Verification:
    """``verify``, with a last guard: it turns every certificate problem into data itself (and is
    fuzzed for it), but one broken phone must never stop a scan, so a bug that still escapes
    becomes an unverified file whose reason names it, for every caller of the cache."""
    try:
        return verify(tf, trust_stores)
    except Exception as exc:  # the boundary of last resort; the fuzz targets fail on this reason
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
        reason = f"{INTERNAL_ERROR}: {type(exc).__name__}: {exc}{where}"
        return Verification(False, reason, None, None, False, False, ())


DEFAULT_CACHE = TrustFileCache()
