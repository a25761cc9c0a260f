"""Each distinct byte string parsed once: a bounded, content-addressed cache of parse results.

``scanner.core.trustcache`` does this for trust lists (few, shared by every phone, kept for the
whole scan). This is its sibling for everything else a phone brings (its configs, its web
pages) and for the work derived from them (a destination config's verification against a
node's lists): per-phone bytes, mostly distinct, but the same config comes from every TFTP node
of a cluster, and a check may look at the same bytes twice. So the entries are many and short-lived:
the cache is bounded by entries and by the bytes it keeps referenced, least recently used out,
and a result is the same whether it came from the cache or not (parsers here are pure).

Sans-IO and deterministic: no clock, no threads needed (one evaluator per process uses it).
A ``ParseError`` is a result too: it is cached and raised again for the same bytes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

from scanner.core.errors import ParseError

T = TypeVar("T")

# A phone's configs and pages are 5-60 KB each and a phone is decided in one go, so a few hundred
# entries hold every phone in flight many times over; 16 MiB of referenced input bounds the worst
# case (each entry also holds its parse, a few times its input at most).
DEFAULT_MAX_ENTRIES = 512
DEFAULT_MAX_BYTES = 16 << 20


class _Refused:
    """A cached ``ParseError`` (kept apart from results, which may be any value)."""

    __slots__ = ("error",)

    def __init__(self, error: ParseError) -> None:
        self.error = error


def digest(data: bytes) -> str:
    """The content key: the SHA-256 of the bytes, as the evidence's blob names are."""
    return hashlib.sha256(data).hexdigest()


class ParseCache:
    """``get(kind, data, parse)``: ``parse(data)`` once per (kind, content); ``memo(key, size,
    compute)``: any other pure result under a key the caller builds from content digests."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._entries: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, kind: str, data: bytes, parse: Callable[[bytes], T]) -> T:
        """``parse(data)``, or its cached result for these bytes; a cached ``ParseError`` is raised again."""
        return self.memo((kind, digest(data)), len(data), lambda: parse(data))

    def memo(self, key: Hashable, size: int, compute: Callable[[], T]) -> T:
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            value = hit[0]
        else:
            self.misses += 1
            try:
                value = compute()
            except ParseError as exc:
                value = _Refused(exc)
            self._entries[key] = (value, size)
            self._bytes += size
            while len(self._entries) > self._max_entries or (self._bytes > self._max_bytes and len(self._entries) > 1):
                _, (_, gone) = self._entries.popitem(last=False)
                self._bytes -= gone
        if isinstance(value, _Refused):
            raise value.error.with_traceback(None)
        return value  # type: ignore[return-value]  # stored by the same key's compute: a T

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def held_bytes(self) -> int:
        return self._bytes
