"""The blob pack (``scanner.store.blobpack``) behind the evidence directory: round trip, a pack
cut at every offset, flipped bytes, a resumed writer after a torn tail, format 1 directories, and
kills at random moments."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest

from scanner.core.errors import ParseError
from scanner.core.evidence import Attempt, Outcome
from scanner.store.blobpack import HEADER, PACK, PackReader, PackWriter, header
from scanner.store.evidence import FLUSH_EVERY, MANIFEST, SUMMARY, EvidenceReader, EvidenceWriter, blob_path
from tests.evidence_damage import damage_blob, remove_blob, stored_blobs


def body(i: int) -> bytes:
    """Distinct bytes per blob, of varied sizes (0 to a few KB)."""
    return hashlib.sha256(str(i).encode()).digest() * ((i * 7919) % 97) + str(i).encode()


def line(i: int, sha: str | None) -> Attempt:
    return Attempt(
        phone=f"SEP{i:012X}", cluster="source", node="pub", transport="tftp", file=f"f{i}.tlv",
        outcome=Outcome.OK if sha else Outcome.NOT_FOUND, size=None, sha256=sha, duration=0.01, blob=sha,
    )


def write(root: Path, n: int, *, cap: int | None = None, flush_every: int = FLUSH_EVERY) -> list[str]:
    with EvidenceWriter(root, flush_every=flush_every) as w:
        shas = []
        for i in range(n):
            sha = w.store(body(i)[:cap])
            shas.append(sha)
            w.record(line(i, sha))
    return shas


def test_round_trip_and_one_copy_each(tmp_path: Path) -> None:
    shas = write(tmp_path / "ev", 300, flush_every=7)
    assert len(set(shas)) == 300
    r = EvidenceReader(tmp_path / "ev")
    rows = list(r.attempts())
    assert [r.content(a) for a in rows] == [body(i) for i in range(300)]
    assert stored_blobs(tmp_path / "ev") == sorted(shas)
    size = sum(HEADER + len(body(i)) for i in range(300))
    assert (tmp_path / "ev" / PACK).stat().st_size == size


def test_the_documented_format_reads_the_pack(tmp_path: Path) -> None:
    # The module docstring's stand-alone reader, run as written: "readable offline" is a promise
    # about that text, not about this package.
    import scanner.store.blobpack as mod

    doc = mod.__doc__ or ""
    code = doc.split("standard library only)::\n", 1)[1].split("\n\n", 1)[0]
    shas = write(tmp_path / "ev", 20)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path / "ev", capture_output=True, check=True
    ).stdout.decode().split("\n")
    assert [x.split()[0] for x in out if x] == shas
    assert all(x.endswith("True") for x in out if x)


def _records(root: Path) -> list[tuple[int, int]]:
    pack = PackReader(root / PACK)
    pack.refresh()
    return [(r.offset, r.end) for r in pack.records()]


def test_a_pack_cut_anywhere_keeps_the_blobs_before_the_cut(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    shas = write(ev, 12, cap=120)  # small records: every offset of the last ones is a few hundred
    whole = (ev / PACK).read_bytes()
    bounds = _records(ev)
    cut_dir = tmp_path / "cut"
    cut_dir.mkdir()
    (cut_dir / MANIFEST).write_bytes((ev / MANIFEST).read_bytes())
    # Every offset from the start of the fourth-last record to the end, and every 7th before.
    offsets = sorted({*range(0, bounds[-4][0], 7), *range(bounds[-4][0], len(whole) + 1)})
    for cut in offsets:
        (cut_dir / PACK).write_bytes(whole[:cut])
        r = EvidenceReader(cut_dir)
        for sha, (start, end) in zip(shas, bounds, strict=True):
            if end <= cut:
                assert r.blob(sha) == whole[start + HEADER:end], cut
            else:
                with pytest.raises(FileNotFoundError):
                    r.blob(sha)


def test_a_flipped_byte_damages_that_blob_alone(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    shas = write(ev, 5)
    whole = (ev / PACK).read_bytes()
    start, end = _records(ev)[2]
    for at in range(start, end):
        flipped = bytearray(whole)
        flipped[at] ^= 0x01
        (ev / PACK).write_bytes(bytes(flipped))
        r = EvidenceReader(ev)
        for i, sha in enumerate(shas):
            if i != 2:
                assert r.blob(sha) == body(i), at
            elif at >= start + HEADER:  # in the bytes: there, but not what the manifest names
                with pytest.raises(ParseError, match="does not match"):
                    r.blob(sha)
            else:  # in the header: the record is not found (the scan resumes at the next one)
                with pytest.raises(FileNotFoundError):
                    r.blob(sha)
        assert r.pack.skipped == (0 if at >= start + HEADER else end - start)


def test_the_helpers_damage_and_remove_in_both_layouts(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    shas = write(ev, 4)
    damage_blob(ev, shas[0])
    remove_blob(ev, shas[1])
    r = EvidenceReader(ev)
    with pytest.raises(ParseError):
        r.blob(shas[0])
    with pytest.raises(FileNotFoundError):
        r.blob(shas[1])
    assert r.blob(shas[2]) == body(2) and r.blob(shas[3]) == body(3)


def test_a_resumed_writer_cuts_the_torn_tail_and_appends(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    shas = write(ev, 10)
    good = (ev / PACK).stat().st_size
    with (ev / PACK).open("ab") as fh:  # a kill halfway through the next record
        data = body(10)
        fh.write((header(data, hashlib.sha256(data).digest()) + data)[: HEADER + len(data) // 2])
    keep = (ev / MANIFEST).read_bytes().splitlines()
    w = EvidenceWriter(ev, resume_keep=keep)
    assert (ev / PACK).stat().st_size == good
    assert w.store(body(3)) == shas[3] and w.blobs_written == 0  # already in the pack
    new = [w.store(body(i)) for i in range(10, 15)]
    for i, sha in enumerate(new, 10):
        w.record(line(i, sha))
    w.close()
    r = EvidenceReader(ev)
    assert [r.content(a) for a in r.attempts()] == [body(i) for i in range(15)]
    assert (ev / PACK).stat().st_size == good + sum(HEADER + len(body(i)) for i in range(10, 15))


def _format_1(root: Path, n: int) -> list[str]:
    """A directory as trustscan wrote it before the pack: one file per blob."""
    root.mkdir()
    shas = []
    lines = []
    for i in range(n):
        data = body(i)
        sha = hashlib.sha256(data).hexdigest()
        blob_path(root, sha).parent.mkdir(parents=True, exist_ok=True)
        blob_path(root, sha).write_bytes(data)
        shas.append(sha)
        lines.append(line(i, sha).to_json())
    (root / MANIFEST).write_bytes(b"\n".join(lines) + b"\n")
    (root / SUMMARY).write_bytes(orjson.dumps({"evidence_format": 1, "state": "complete"}))
    return shas


def test_format_1_evidence_still_loads_and_resumes(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    shas = _format_1(ev, 6)
    r = EvidenceReader(ev)
    assert r.summary()["evidence_format"] == 1
    assert [r.content(a) for a in r.attempts()] == [body(i) for i in range(6)]
    damage_blob(ev, shas[1])
    remove_blob(ev, shas[2])
    with pytest.raises(ParseError, match="does not match"):
        r.blob(shas[1])
    with pytest.raises(FileNotFoundError):
        r.blob(shas[2])
    # Resumed: new blobs go to the pack, old ones stay where they were; both read.
    with EvidenceWriter(ev, resume_keep=(ev / MANIFEST).read_bytes().splitlines()) as w:
        for i in range(6, 9):
            w.record(line(i, w.store(body(i))))
    r = EvidenceReader(ev)
    got = {a.file: a for a in r.attempts()}
    for i in (0, 3, 4, 5, 6, 7, 8):
        assert r.content(got[f"f{i}.tlv"]) == body(i)
    assert len(stored_blobs(ev)) == 8  # 9 stored, one of them removed above


def test_a_bigger_format_is_refused(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    _format_1(ev, 1)
    (ev / SUMMARY).write_bytes(orjson.dumps({"evidence_format": 99}))
    with pytest.raises(ParseError, match="not supported"):
        EvidenceReader(ev).summary()


def test_a_reader_sees_records_appended_after_it_opened(tmp_path: Path) -> None:
    w = PackWriter(tmp_path / PACK)
    r = PackReader(tmp_path / PACK)
    assert r.get(b"\0" * 32) == (None, None)
    data = body(1)
    w.append(data, hashlib.sha256(data).digest())
    w.close()
    assert r.get(hashlib.sha256(data).digest())[0] == data


_CHILD = """
import hashlib, sys
from scanner.core.evidence import Attempt, Outcome
from scanner.store.evidence import EvidenceWriter
from tests.test_blobpack import body, line
root, start, flush = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keep = None if start == 0 else open(root + "/manifest.jsonl", "rb").read().splitlines(keepends=True)
w = EvidenceWriter(root, flush_every=flush, resume_keep=keep)
print("ready", flush=True)
i = start
while True:
    sha = w.store(body(i) * (1 + i % 40))
    w.record(line(i, sha))
    i += 1
"""


def _check_prefix(ev: Path) -> int:
    """Every manifest line names a blob that reads back as the bytes written; returns the count."""
    r = EvidenceReader(ev)
    n = 0
    for a in r.attempts():
        i = int(a.file[1:].split(".")[0])
        assert r.content(a) == body(i) * (1 + i % 40), a.file
        n += 1
    return n


def test_killed_writers_leave_a_consistent_prefix(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    rnd = random.Random(15)
    start = 0
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(ev), str(start), str(rnd.choice((1, 5, 64)))],
            stdout=subprocess.PIPE, env=env,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rnd.uniform(0.01, 0.3))  # a random moment, not a timed assertion
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        n = _check_prefix(ev)
        assert n >= start  # resuming keeps every line it was given
        # The next run resumes from the lines written so far (a torn last line is dropped).
        lines = [x for x in (ev / MANIFEST).read_bytes().splitlines(keepends=True) if x.endswith(b"\n")]
        (ev / MANIFEST).write_bytes(b"".join(lines))
        start = len(lines)
    assert start > 0


def test_a_second_copy_stands_in_for_a_damaged_first(tmp_path: Path) -> None:
    data = body(7)
    digest = hashlib.sha256(data).digest()
    w = PackWriter(tmp_path / PACK)
    w.append(data[:-1] + b"?", digest)  # bytes that do not match the name they were stored under
    w.append(data, digest)
    w.close()
    got, rec = PackReader(tmp_path / PACK).get(digest)
    assert got == data and rec is not None and rec.offset == HEADER + len(data)


def test_big_batches_reach_the_pack_before_any_manifest_flush(tmp_path: Path) -> None:
    w = EvidenceWriter(tmp_path / "ev", flush_every=10_000)
    for i in range(3):
        w.store(bytes([i]) * (3 << 20))
    # 9 MB stored, no manifest line written yet: the pack took the first ones (bounded memory).
    assert (tmp_path / "ev" / PACK).stat().st_size >= 2 * (3 << 20)
    assert (tmp_path / "ev" / MANIFEST).stat().st_size == 0
    w.close()
    assert (tmp_path / "ev" / PACK).stat().st_size == 3 * (HEADER + (3 << 20))
