"""Damage evidence the way disks and kills do, in either blob layout (the pack, or format 1's one
file per blob), for tests that check damaged and missing evidence is reported as such."""

from __future__ import annotations

import os
from pathlib import Path

from scanner.store.blobpack import HEADER, PACK, PackReader
from scanner.store.evidence import BLOBS, blob_path


def stored_blobs(root: Path) -> list[str]:
    """Hex digests of every blob stored in ``root``, pack first then format 1 files, sorted."""
    pack = PackReader(root / PACK)
    pack.refresh()
    shas = {r.sha256.hex() for r in pack.records()}
    if (root / BLOBS).is_dir():
        shas.update(p.name for p in (root / BLOBS).rglob("*") if p.is_file())
    return sorted(shas)


def _record(root: Path, sha: str) -> tuple[int, int] | None:
    pack = PackReader(root / PACK)
    found = pack.candidates(bytes.fromhex(sha))
    return None if not found else (found[0].offset, found[0].length)


def _pwrite(path: Path, data: bytes, offset: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def damage_blob(root: Path, sha: str) -> None:
    """Flip the last byte of the blob's stored bytes: it no longer matches its hash."""
    rec = _record(root, sha)
    if rec is None:
        path = blob_path(root, sha)
        data = path.read_bytes()
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
        return
    offset, length = rec
    at = offset + HEADER + length - 1
    with (root / PACK).open("rb") as fh:
        fh.seek(at)
        byte = fh.read(1)
    _pwrite(root / PACK, bytes([byte[0] ^ 0xFF]), at)


def remove_blob(root: Path, sha: str) -> None:
    """Make the blob missing: its file deleted, or its pack record's header broken."""
    rec = _record(root, sha)
    if rec is None:
        blob_path(root, sha).unlink()
        return
    _pwrite(root / PACK, b"\0" * HEADER, rec[0])


def cut_pack(root: Path, size: int) -> None:
    """The pack as a kill ``size`` bytes into it would leave it."""
    os.truncate(root / PACK, size)
