"""Evidence blob storage: µs per blob stored and read back, one file per blob (format 1) beside the
append-only pack (format 2, ``scanner.store.blobpack``).

Blobs of realistic sizes, all distinct: configs 2-8 KB (40%), phone pages 10-20 KB (45%), trust
lists 5-60 KB (15%), each with a manifest line, as the collector writes them. "files" is the
format 1 writer as it was (one ``open(O_EXCL)``/``write``/``close`` per blob in ``blobs/ab/``);
"pack" is today's ``EvidenceWriter``. The digests are computed before the clock starts (the
collector has them already for the manifest and passes them to ``store``). Reads go through ``EvidenceReader.blob`` (hash checked) on
both, including the reader's open (the pack's index scan), from a warm page cache: this measures
CPU, not the disk.

    .venv/bin/python bench/bench_store.py [--blobs 20000] [--repeat 2] [--dir /tmp/x] [--json]

The last line with --json: {"blobs": N, "bytes": B, "files": {...}, "pack": {...}} with µs per
blob (CPU and wall) for store and read, the best of the repeats.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanner.core.evidence import EVIDENCE_FORMAT, Attempt, Outcome  # noqa: E402
from scanner.store.evidence import BLOBS, MANIFEST, PACK, SUMMARY, EvidenceReader, EvidenceWriter  # noqa: E402

KINDS = (("config", 2_000, 8_000, 0.40), ("page", 10_000, 20_000, 0.45), ("trust list", 5_000, 60_000, 0.15))


def blobs(n: int, seed: int = 15) -> list[bytes]:
    rnd = random.Random(seed)
    pool = rnd.randbytes(1 << 20)
    out = []
    for i in range(n):
        _kind, lo, hi, _ = rnd.choices(KINDS, weights=[k[3] for k in KINDS])[0]
        size = rnd.randint(lo, hi)
        at = rnd.randrange(0, len(pool) - size)
        out.append(i.to_bytes(8, "big") + pool[at : at + size - 8])  # distinct: a counter in front
    return out


def _line(i: int, sha: str) -> Attempt:
    return Attempt(phone=f"SEP{i:012X}", cluster="source", node="pub", transport="tftp", file=f"f{i}",
                   outcome=Outcome.OK, size=None, sha256=sha, duration=0.01, blob=sha)


class FilesWriter(EvidenceWriter):
    """The format 1 ``store``: one file per blob, written in place (as the writer did until format 2)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._blobs = os.fspath(self.root / BLOBS)
        self._made_dirs: set[str] = set()

    def store(self, data: bytes, *, sha256: str | None = None) -> str:
        digest = hashlib.sha256(data).digest() if sha256 is None else bytes.fromhex(sha256)
        sha = digest.hex() if sha256 is None else sha256
        if digest in self._known:
            return sha
        self._known.add(digest)
        sub = sha[:2]
        directory = f"{self._blobs}/{sub}"
        if sub not in self._made_dirs:
            os.makedirs(directory, exist_ok=True)
            self._made_dirs.add(sub)
        fd = os.open(f"{directory}/{sha}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        self.blobs_written += 1
        return sha


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def run(kind: str, data: list[bytes], where: Path) -> dict[str, float]:
    root = where / kind
    shutil.rmtree(root, ignore_errors=True)
    # Hashes and manifest lines made before the clock starts: the collector hashes every file
    # for the manifest anyway and passes the digest to ``store``; what is timed is the storing.
    shas = [hashlib.sha256(b).hexdigest() for b in data]
    lines = [_line(i, sha) for i, sha in enumerate(shas)]

    def store() -> None:
        w = FilesWriter(root) if kind == "files" else EvidenceWriter(root)
        for b, sha, a in zip(data, shas, lines, strict=True):
            w.store(b, sha256=sha)
            w.record(a)
        w.close({"tool_version": "bench"})
        if kind == "files":  # as format 1 wrote it, so the reader takes it for one
            doc = json.loads((root / SUMMARY).read_bytes())
            (root / SUMMARY).write_text(json.dumps({**doc, "evidence_format": 1}))
            (root / PACK).unlink()  # left empty by the base class; format 1 had none

    def read() -> None:
        r = EvidenceReader(root)
        for sha in shas:
            r.blob(sha)

    os.sync()
    s_cpu, s_wall = _timed(store)
    r_cpu, r_wall = _timed(read)
    o_cpu, _ = _timed(EvidenceReader(root).pack.refresh)  # the pack's index scan alone (none: files)
    assert (root / MANIFEST).is_file()
    n = len(data)
    return {
        "store_cpu_us": s_cpu / n * 1e6, "store_wall_us": s_wall / n * 1e6,
        "read_cpu_us": r_cpu / n * 1e6, "read_wall_us": r_wall / n * 1e6, "index_cpu_ms": o_cpu * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blobs", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary directory)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    data = blobs(args.blobs)
    total = sum(map(len, data))
    where = Path(tempfile.mkdtemp(prefix="bench_store.", dir=args.dir))
    best: dict[str, dict[str, float]] = {}
    try:
        for rep in range(args.repeat):
            for kind in ("files", "pack"):
                got = run(kind, data, where)
                print(f"run {rep + 1} {kind:5}  store {got['store_cpu_us']:7.1f} µs CPU {got['store_wall_us']:7.1f} µs "
                      f"wall   read {got['read_cpu_us']:7.1f} µs CPU {got['read_wall_us']:7.1f} µs wall  (per blob)")
                prev = best.setdefault(kind, got)
                for k, v in got.items():
                    prev[k] = min(prev[k], v)
                shutil.rmtree(where / kind)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    print(f"{args.blobs} distinct blobs, {total / 1e6:.0f} MB, evidence format {EVIDENCE_FORMAT}; best of {args.repeat}:")
    print(f"{'':12}{'files':>10}{'pack':>10}{'ratio':>8}")
    for k in ("store_cpu_us", "store_wall_us", "read_cpu_us", "read_wall_us"):
        f, p = best["files"][k], best["pack"][k]
        print(f"{k:12}{f:10.1f}{p:10.1f}{f / p:7.1f}x")
    print(f"{'index_cpu_ms':12}{'-':>10}{best['pack']['index_cpu_ms']:10.1f}   (the pack's scan on open, in read)")
    if args.json:
        out: dict[str, Any] = {"blobs": args.blobs, "bytes": total,
                               **{k: {m: round(v, 1) for m, v in best[k].items()} for k in best}}
        print(json.dumps(out))


if __name__ == "__main__":
    main()
