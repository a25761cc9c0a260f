"""The evidence directory on disk: what ``trustscan collect`` writes and ``scan --from DIR`` reads.

Layout (``EVIDENCE_FORMAT`` = 2)::

    DIR/collection.json      summary: tool version, profile snapshot with hashes, times, counts
    DIR/manifest.jsonl       one JSON object per attempt (``Attempt``), in completion order
    DIR/blobs.pack           file bytes, content-addressed by the SHA-256 of the stored bytes, in
                             one append-only file (the record format: ``scanner.store.blobpack``)
    DIR/discovery.json       when the profile has AXL: the phones and nodes discovery found
                             (``scanner.app.discover``), so re-analysis judges the same ones

Format 1 kept each blob in its own file, ``DIR/blobs/ab/abcd...`` (``blob_path``); the reader
still reads those, so evidence archived by earlier versions loads, and a directory of either
format can be resumed (new blobs then go to the pack).

The records themselves (``Attempt``, ``Outcome``, redaction before storage) are
``scanner.core.evidence``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import weakref
from array import array
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from scanner.core.errors import ParseError
from scanner.core.evidence import EVIDENCE_FORMAT, Attempt
from scanner.store.atomicfile import write_atomic
from scanner.store.blobpack import PACK, PackReader, PackWriter

__all__ = [
    "BLOBS",
    "DISCOVERY",
    "MANIFEST",
    "PACK",
    "READABLE_FORMATS",
    "SUMMARY",
    "EvidenceReader",
    "EvidenceWriter",
    "ManifestTail",
    "PhoneIndex",
    "blob_path",
    "write_discovery",
]

MANIFEST = "manifest.jsonl"
DISCOVERY = "discovery.json"
SUMMARY = "collection.json"
BLOBS = "blobs"  # format 1: one file per blob (read, never written)
# Format 1 differs only in where blobs live, and the reader looks in both places.
READABLE_FORMATS = frozenset({1, EVIDENCE_FORMAT})
# Manifest lines buffered before a write: one write per 256 lines keeps syscalls off the per-file
# cost while a crash loses at most a few hundred lines (each can be re-fetched).
FLUSH_EVERY = 256
# Blob bytes buffered before the pack is written even if no manifest flush is due: bounds the
# writer's memory when many large files arrive between two flushes (writing the pack early is
# always safe; only the manifest must wait for the pack).
PACK_BUFFER = 4 << 20


def blob_path(root: Path, sha256: str) -> Path:
    """Where format 1 kept a blob (one file each); format 2 keeps it in ``DIR/blobs.pack``."""
    return root / BLOBS / sha256[:2] / sha256


class EvidenceWriter:
    """Writes one evidence directory. Not thread-safe; used from the event loop only.

    Refuses a directory that already holds a manifest: evidence is never silently overwritten.
    """

    def __init__(
        self, root: str | Path, *, flush_every: int = FLUSH_EVERY, resume_keep: Sequence[bytes] | None = None
    ) -> None:
        """``resume_keep``: continue the evidence already in ``root`` (``--resume``). The manifest
        becomes these lines (the attempts kept, in their order) and new attempts are appended;
        the previous manifest is kept beside it as ``manifest.prev-N.jsonl``, so no attempt is
        lost from the record. The switch is one atomic rename: a crash at any point leaves a
        complete manifest (the old or the new)."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        if resume_keep is None:
            self._manifest: IO[bytes] = (self.root / MANIFEST).open("xb")
        else:
            self._manifest = self._resume(resume_keep)
        try:
            # Resuming appends to the same pack; a torn tail from the killed run is cut first.
            self._pack = PackWriter(self.root / PACK)
        except BaseException:
            self._manifest.close()
            raise
        self._pending: list[bytes] = []
        self._flush_every = flush_every
        # Digests of blobs in the pack (32 bytes each: 100k ≈ 10 MB); a resumed run does not store
        # again what the pack already holds.
        self._known: set[bytes] = set(self._pack.existing)
        self.blobs_written = 0
        self.blob_bytes = 0
        self.attempts = 0 if resume_keep is None else len(resume_keep)

    def _resume(self, keep: Sequence[bytes]) -> IO[bytes]:
        manifest = self.root / MANIFEST
        n = 1
        while (self.root / f"manifest.prev-{n}.jsonl").exists():
            n += 1
        summary = self.root / SUMMARY
        if summary.is_file():
            # First say the run is running again: a crash from here on must not leave
            # "complete" beside a manifest that is being rewritten.
            with contextlib.suppress(ValueError):
                doc = orjson.loads(summary.read_bytes())
                if isinstance(doc, dict):
                    doc.update(state="running", interrupted=None)
                    write_atomic(summary, orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        if manifest.exists():
            os.link(manifest, self.root / f"manifest.prev-{n}.jsonl")
        body = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in keep)
        write_atomic(manifest, body)
        return manifest.open("ab")

    def store(self, data: bytes, *, sha256: str | None = None) -> str:
        """Write ``data`` as a blob unless an identical one exists; return its SHA-256 (hex).

        ``sha256``: the caller's hex digest of ``data`` when it already computed it (saves a pass)."""
        digest = hashlib.sha256(data).digest() if sha256 is None else bytes.fromhex(sha256)
        sha = digest.hex() if sha256 is None else sha256
        if digest in self._known:
            return sha
        # Buffered, and written to the pack by ``flush`` before the manifest lines that name it:
        # a kill can lose a blob only with every line naming it. Readers check every blob
        # against its name (``EvidenceReader.blob``): a torn or altered record reads as missing
        # or damaged evidence, never as other bytes.
        self._pack.append(data, digest)
        self._known.add(digest)
        if self._pack.buffered >= PACK_BUFFER:
            self._pack.flush()
        self.blobs_written += 1
        self.blob_bytes += len(data)
        return sha

    def record(self, attempt: Attempt) -> None:
        self._pending.append(attempt.to_json())
        self.attempts += 1
        if len(self._pending) >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        self._pack.flush()  # first: the lines below may name these blobs
        if self._pending:
            self._pending.append(b"")
            self._manifest.write(b"\n".join(self._pending))
            self._pending.clear()
            self._manifest.flush()

    def checkpoint(self, summary: dict[str, Any]) -> None:
        """Write ``collection.json`` now (atomically): the plan and state of a run in progress, so
        that a reader of an interrupted run, even one killed without warning, knows what was
        planned and that the run did not finish."""
        self.flush()
        doc = {"evidence_format": EVIDENCE_FORMAT, **summary}
        write_atomic(self.root / SUMMARY, orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))

    def close(self, summary: dict[str, Any] | None = None) -> None:
        """Flush the manifest and write ``collection.json`` (atomically)."""
        try:
            self.flush()
        finally:
            self._pack.close()
            self._manifest.close()
        if summary is not None:
            self.checkpoint(summary)

    def __enter__(self) -> EvidenceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._manifest.closed:
            self.close()


def write_discovery(root: str | Path, record: dict[str, Any]) -> None:
    write_atomic(Path(root) / DISCOVERY, orjson.dumps(record, option=orjson.OPT_INDENT_2))


class EvidenceReader:
    """Reads an evidence directory written by ``EvidenceWriter`` (offline re-analysis)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not (self.root / MANIFEST).is_file():
            raise FileNotFoundError(f"{self.root}: no {MANIFEST}: not an evidence directory")
        self.issues: list[str] = []  # set by ``attempts``: lines that could not be read
        self.lines = 0
        self.torn = False
        self.pack = PackReader(self.root / PACK)

    def discovery(self) -> dict[str, Any] | None:
        """The discovery record (None when the collection used no AXL)."""
        path = self.root / DISCOVERY
        if not path.is_file():
            return None
        try:
            doc = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"not JSON: {exc}", path=str(path)) from None
        if not isinstance(doc, dict):
            raise ParseError("not a JSON object", path=str(path))
        return doc

    def summary(self) -> dict[str, Any]:
        path = self.root / SUMMARY
        if not path.is_file():
            return {}  # an interrupted collection: the manifest is still usable
        try:
            doc: dict[str, Any] = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"not JSON: {exc}", path=str(path)) from None
        if not isinstance(doc, dict):
            raise ParseError("not a JSON object", path=str(path))
        fmt = doc.get("evidence_format")
        if fmt not in READABLE_FORMATS:
            raise ParseError(
                f"evidence format {fmt!r} is not supported (expected one of {sorted(READABLE_FORMATS)})",
                path=str(path),
            )
        return doc

    def attempts(self) -> Iterator[Attempt]:
        """Every readable manifest line. A line that is not a valid attempt is skipped and named in
        ``issues`` (its file, line number and reason), never fatal: the analysis then finds that
        attempt's evidence missing and says so for the phone it belonged to. A torn last line (a
        crash mid-write) is counted apart in ``torn``."""
        for _, attempt in self.located():
            yield attempt

    def located(self) -> Iterator[tuple[int, Attempt]]:
        """``attempts``, each with the byte offset of its line in the manifest (for ``PhoneIndex``)."""
        path = self.root / MANIFEST
        self.issues.clear()
        self.lines = 0
        self.torn = False
        offset = 0
        with path.open("rb") as fh:
            for number, line in enumerate(fh, 1):
                at = offset
                offset += len(line)
                if not line.strip():
                    continue
                try:
                    attempt = Attempt.from_json(line)
                except (ValueError, TypeError, KeyError) as exc:
                    if not line.endswith(b"\n"):
                        self.torn = True
                        self.issues.append(f"{path}:{number}: torn last line (the collection was cut off mid-write)")
                        return
                    self.issues.append(f"{path}:{number}: not a manifest line ({exc}); its attempt is missing")
                    continue
                self.lines += 1
                yield at, attempt

    def tail(self) -> ManifestTail:
        """The manifest read as the collector writes it (the streaming analysis)."""
        return ManifestTail(self.root / MANIFEST)

    def blob(self, sha256: str) -> bytes:
        """The stored bytes named ``sha256``, from the pack or (format 1) their own file.

        Raises ``FileNotFoundError`` when neither holds them (missing evidence) and ``ParseError``
        when every stored copy fails its hash (damaged evidence)."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        data, rec = self.pack.get(bytes.fromhex(sha256))
        if data is not None:
            return data
        path = blob_path(self.root, sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if rec is None:
                raise FileNotFoundError(
                    errno.ENOENT, f"no blob {sha256} in {PACK} or {BLOBS}/", os.fspath(self.root)
                ) from None
            data = None
        if data is not None and hashlib.sha256(data).hexdigest() == sha256:
            return data
        where = str(path) if rec is None else f"{self.pack.path}@{rec.offset}"
        raise ParseError("blob content does not match its name (corrupted evidence)", path=where)

    def content(self, attempt: Attempt) -> bytes | None:
        return None if attempt.blob is None else self.blob(attempt.blob)


class ManifestTail:
    """A manifest read while it grows: each ``read`` gives the attempts of the lines completed
    since the last one. Lines are judged as ``EvidenceReader.attempts`` judges them (the same
    ``issues``, ``lines`` and ``torn``), so reading a finished manifest in pieces gives what
    reading it at once gives. A line still being written (no newline yet) waits for the next
    ``read``; with ``final``, the collection has ended and it is the manifest's last line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.issues: list[str] = []
        self.lines = 0
        self.torn = False
        self._number = 0
        self._rest = b""
        self._fh: IO[bytes] | None = None
        self._ended = False

    def read(self, *, final: bool = False) -> list[Attempt]:
        if self._ended:
            return []
        if self._fh is None:
            try:
                self._fh = self.path.open("rb")
            except FileNotFoundError:
                return []
            weakref.finalize(self, self._fh.close)
        chunks = (self._rest + self._fh.read()).split(b"\n")
        self._rest = chunks.pop()
        out: list[Attempt] = []
        for chunk in chunks:
            if not self._line(chunk + b"\n", out):
                return out
        if final:
            self._ended = True
            if self._rest:
                self._line(self._rest, out)
                self._rest = b""
        return out

    def _line(self, line: bytes, out: list[Attempt]) -> bool:
        """False once a torn last line ended the manifest."""
        self._number += 1
        if not line.strip():
            return True
        try:
            out.append(Attempt.from_json(line))
        except (ValueError, TypeError, KeyError) as exc:
            if not line.endswith(b"\n"):
                self.torn = True
                self._ended = True
                self.issues.append(f"{self.path}:{self._number}: torn last line (the collection was cut off mid-write)")
                return False
            self.issues.append(f"{self.path}:{self._number}: not a manifest line ({exc}); its attempt is missing")
            return True
        self.lines += 1
        return True


class PhoneIndex(Mapping[str, tuple[Attempt, ...]]):
    """Each phone's attempts, read back from the manifest when asked for: what the analysis of
    archived evidence holds per phone is the byte offsets of its lines (an ``array`` of 8-byte
    integers), not the decoded attempts (8.7 KB a phone on the 2,000-phone lab). ``scan --from`` of
    6,000 phones peaked at 78.5 MB this way against 132.2 MB before (docs/performance.md).

    A line is decoded as ``EvidenceReader.attempts`` decoded it the first time. If it no longer
    decodes, or names another phone (the manifest was changed while it was being analysed), its
    attempt is left out and the line is named in ``issues``: that phone's evidence is then missing,
    never taken from another line. Lines are read with ``os.pread``, which moves no file position,
    so a forked analysis worker reads through the same descriptor as its parent without the two
    disturbing each other.
    """

    def __init__(self, path: Path, issues: list[str]) -> None:
        self.path = path
        self.issues = issues
        self._offsets: dict[str, array[int]] = {}
        self._fd: int | None = None

    def add(self, phone: str, offset: int) -> None:
        got = self._offsets.get(phone)
        if got is None:
            self._offsets[phone] = got = array("q")
        got.append(offset)

    def __len__(self) -> int:
        return len(self._offsets)

    def __iter__(self) -> Iterator[str]:
        return iter(self._offsets)

    def __contains__(self, phone: object) -> bool:
        return phone in self._offsets

    def __getitem__(self, phone: str) -> tuple[Attempt, ...]:
        offsets = self._offsets[phone]
        out: list[Attempt] = []
        for at in offsets:
            try:
                attempt = Attempt.from_json(self._line(at))
            except (ValueError, TypeError, KeyError) as exc:
                self.issues.append(f"{self.path}: the line at byte {at} changed during the analysis ({exc}); "
                                   "its attempt is missing")
                continue
            if attempt.phone != phone:
                self.issues.append(f"{self.path}: the line at byte {at} changed during the analysis (it now names "
                                   f"{attempt.phone!r}, not {phone!r}); its attempt is missing")
                continue
            out.append(attempt)
        return tuple(out)

    def _line(self, at: int) -> bytes:
        """The line starting at byte ``at``, read from the file as it is now: ``os.pread``, not a
        buffered file object, whose buffer could hand back bytes read before a change."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)  # not inherited by exec (PEP 446)
            weakref.finalize(self, os.close, self._fd)
        size = 4096
        while True:
            data = os.pread(self._fd, size, at)
            end = data.find(b"\n")
            if end >= 0:
                return data[: end + 1]
            if len(data) < size or size >= _MAX_LINE:
                return data  # the last line, or no manifest line (it fails to decode)
            size *= 4


# Far above any line the collector writes (a few hundred bytes; error texts are bounded).
_MAX_LINE = 1 << 20
