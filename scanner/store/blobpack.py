"""An append-only pack of content-addressed blobs: one file for every blob of an evidence directory.

One file per blob cost about 2 ms of collector CPU per phone (a file creation, a directory entry
and an inode each); appending a record to one open file costs a ``write``. The pack keeps what the
files gave: every blob is checked against its SHA-256 on every read, it is readable with nothing
but the format below, and a kill at any moment leaves a readable prefix.

Format (``DIR/blobs.pack``): records back to back, each a 48-byte header then the bytes::

    offset  size  field
    0       4     magic  b"TSBk"
    4       8     length of the body, unsigned big-endian
    12      32    SHA-256 of the body (raw digest, not hex)
    44      4     CRC-32 of bytes 0-43, unsigned big-endian (a damaged header is seen as such)
    48      len   the body: the stored bytes

Reading it without trustscan (Python, standard library only)::

    import hashlib, struct, zlib
    data = open("blobs.pack", "rb").read()
    at = 0
    while at + 48 <= len(data):
        magic, size, sha, crc = struct.unpack_from(">4sQ32sI", data, at)
        if magic != b"TSBk" or zlib.crc32(data[at:at + 44]) != crc or at + 48 + size > len(data):
            break  # a torn tail (or a damaged header: trustscan looks for the next good one)
        body = data[at + 48:at + 48 + size]
        print(sha.hex(), size, hashlib.sha256(body).digest() == sha)
        at += 48 + size

Damage and what it costs:

* a record cut by a kill (short header or short body) can only be the last one: it ends the
  readable pack, every record before it stays readable, and a writer continuing the directory
  (``--resume``) truncates it before appending;
* a damaged body reads as damaged evidence for that blob alone (its SHA-256 does not match);
* a damaged header (its CRC fails) hides that one record: the scan looks for the next header whose
  magic and CRC check, so the records after it stay readable.

The index (SHA-256 to offset) is rebuilt by reading the headers on open: one ``pread`` of 48
bytes per record. This module does the file I/O of the pack and nothing else; what a missing or
damaged blob means is for ``scanner.store.evidence`` and the analysis.
"""

from __future__ import annotations

import hashlib
import os
import struct
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["HEADER", "MAGIC", "PACK", "PackReader", "PackWriter", "Record", "scan"]

PACK = "blobs.pack"
MAGIC = b"TSBk"
_HEAD = struct.Struct(">4sQ32s")
_CRC = struct.Struct(">I")
HEADER = _HEAD.size + _CRC.size  # 48
# Bytes read at a time when looking for the next good header after a damaged one.
_RESYNC_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Record:
    offset: int  # of the header
    sha256: bytes  # the digest the header names (raw)
    length: int

    @property
    def body(self) -> int:
        return self.offset + HEADER

    @property
    def end(self) -> int:
        return self.offset + HEADER + self.length


def header(data: bytes, digest: bytes) -> bytes:
    head = _HEAD.pack(MAGIC, len(data), digest)
    return head + _CRC.pack(zlib.crc32(head))


def _parse_header(raw: bytes, offset: int) -> Record | None:
    if len(raw) < HEADER or raw[:4] != MAGIC:
        return None
    _magic, length, digest = _HEAD.unpack_from(raw)
    if _CRC.unpack_from(raw, _HEAD.size)[0] != zlib.crc32(raw[: _HEAD.size]):
        return None
    return Record(offset, digest, length)


def _resync(fd: int, start: int, size: int) -> int | None:
    """The offset of the next header that checks, from ``start`` on (None: there is none)."""
    at = start
    while at < size:
        chunk = os.pread(fd, _RESYNC_CHUNK + HEADER, at)
        if not chunk:
            return None
        i = chunk.find(MAGIC)
        while 0 <= i < _RESYNC_CHUNK:
            rec = _parse_header(os.pread(fd, HEADER, at + i), at + i)
            if rec is not None and rec.end <= size:
                return at + i
            i = chunk.find(MAGIC, i + 1)
        at += _RESYNC_CHUNK
    return None


def scan(fd: int, start: int = 0) -> tuple[list[Record], int, int]:
    """The records from ``start`` to the end of the file behind ``fd``.

    Returns (records, end of the last whole record, bytes skipped over damaged headers). A record
    whose header checks but whose body runs past the end of the file is a torn tail (a kill
    mid-write, or a writer still writing): it ends the scan and is not counted as skipped."""
    size = os.fstat(fd).st_size
    records: list[Record] = []
    at = end = start
    skipped = 0
    while at + HEADER <= size:
        rec = _parse_header(os.pread(fd, HEADER, at), at)
        if rec is None:
            nxt = _resync(fd, at + 1, size)
            if nxt is None:
                break
            skipped += nxt - at
            at = nxt
            continue
        if rec.end > size:
            break
        records.append(rec)
        at = end = rec.end
    return records, end, skipped


# A record's length in the low bits of its index entry: as wide as the header's length field.
_LENGTH_BITS = 64
_LENGTH_MASK = (1 << _LENGTH_BITS) - 1


def _unpacked(digest: bytes, at: int) -> Record:
    return Record(at >> _LENGTH_BITS, digest, at & _LENGTH_MASK)


class PackReader:
    """Reads blobs from a pack, checking each against its SHA-256. A pack that another process
    is still appending to is read too: a blob not in the index makes the reader look at the
    records appended since it last looked."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None
        # digest -> offset << _LENGTH_BITS | length. One int a blob instead of a Record (its object
        # and two ints): the streaming analysis holds the index of the whole fleet's pack, about 7
        # blobs a phone, and this took it from 190 to 138 bytes a blob (docs/performance.md).
        self._index: dict[bytes, int] = {}
        self._copies: dict[bytes, list[Record]] = {}  # a blob stored more than once (rare)
        self._scanned = 0
        self.skipped = 0  # bytes of damaged headers passed over

    def _open(self) -> int | None:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return None
            weakref.finalize(self, os.close, self._fd)
        return self._fd

    def refresh(self) -> None:
        """Index the records appended since the last look."""
        fd = self._open()
        if fd is None:
            return
        records, end, skipped = scan(fd, self._scanned)
        self._scanned = end
        self.skipped += skipped
        for rec in records:
            if rec.sha256 in self._index:
                self._copies.setdefault(rec.sha256, []).append(rec)
            else:
                self._index[rec.sha256] = rec.offset << _LENGTH_BITS | rec.length

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._index

    def __len__(self) -> int:
        return len(self._index)

    def records(self) -> Iterator[Record]:
        """Every indexed record, first copy of each blob, in pack order."""
        return (_unpacked(digest, at) for digest, at in self._index.items())

    def candidates(self, digest: bytes) -> list[Record]:
        at = self._index.get(digest)
        if at is None:
            self.refresh()
            at = self._index.get(digest)
        return [] if at is None else [_unpacked(digest, at), *self._copies.get(digest, ())]

    def read(self, rec: Record) -> bytes:
        fd = self._open()
        if fd is None:
            raise FileNotFoundError(self.path)
        return os.pread(fd, rec.length, rec.body)

    def get(self, digest: bytes) -> tuple[bytes | None, Record | None]:
        """(bytes, record) of the first copy whose bytes match ``digest``; (None, record) when every
        copy is damaged; (None, None) when the pack holds no record of it."""
        found = self.candidates(digest)
        for rec in found:
            data = self.read(rec)
            if len(data) == rec.length and hashlib.sha256(data).digest() == digest:
                return data, rec
        return None, (found[0] if found else None)


class PackWriter:
    """Appends records to a pack. Records are buffered until ``flush`` and written with one
    ``write`` for the batch: the caller flushes the pack before writing anything that names its
    blobs (the manifest), so a name never points past what is on disk."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)  # the umask decides
        self._fd: int | None = fd
        try:
            records, end, _skipped = scan(fd)
            if end < os.fstat(fd).st_size:
                # A torn tail from a killed run: appending after it would leave garbage inside the
                # pack (readable around, but never useful). Damaged headers before ``end`` stay:
                # the records around them are evidence.
                os.ftruncate(fd, end)
        except BaseException:
            os.close(fd)
            raise
        self.existing = {r.sha256 for r in records}  # blobs already in the pack
        self._buffer: list[bytes] = []
        self.buffered = 0  # bytes waiting for ``flush``

    def append(self, data: bytes, digest: bytes) -> None:
        self._buffer.append(header(data, digest))
        self._buffer.append(data)
        self.buffered += HEADER + len(data)

    def flush(self) -> None:
        if not self._buffer or self._fd is None:
            return
        view = memoryview(b"".join(self._buffer))
        self._buffer.clear()
        self.buffered = 0
        while view:  # a regular file takes it whole unless the disk is full; then say so
            n = os.write(self._fd, view)
            view = view[n:]

    def close(self) -> None:
        if self._fd is not None:
            try:
                self.flush()
            finally:
                os.close(self._fd)
                self._fd = None

    @property
    def closed(self) -> bool:
        return self._fd is None
