"""The streaming analysis (scanner.app.streaming): phones decided while the manifest grows give
the report that the analysis after the collection (``scan --from``) gives on the same evidence,
whatever order the phones finish in; a phone with a gap waits for the end; the manifest read in
pieces reads as the manifest read at once.

No sockets: the collection is replayed from tests/test_scan_reports.py's world, line by line, into
a new evidence directory, and the collector's messages are the test's calls.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from scanner.app.analysis import AnalysisOptions, analyse
from scanner.app.streaming import StreamingAnalysis, same_basis
from scanner.core.evidence import Attempt
from scanner.core.policy import default_policy
from scanner.core.profile import parse_profile
from scanner.core.readiness import NOT_COLLECTED
from scanner.store.blobpack import PACK
from scanner.store.evidence import MANIFEST, SUMMARY, EvidenceReader
from tests.pki import NOW
from tests.test_scan_reports import PROFILE, write_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("world")
    _, inventory = write_world(root, phones=8)
    return root, inventory


def _opts(root: Path, evidence: Path, out: Path, inventory: Any) -> AnalysisOptions:
    profile = parse_profile(PROFILE, base_dir=root, path=root / "profile.toml")
    return AnalysisOptions(profile=profile, evidence=evidence, out=out, policy=default_policy(), now=NOW,
                           inventory=inventory, history=None)


def _lines(evidence: Path) -> list[bytes]:
    return [line + b"\n" for line in (evidence / MANIFEST).read_bytes().splitlines() if line.strip()]


def _replay(
    root: Path, inventory: Any, dest: Path, lines: list[bytes], *, seed: int, late_cluster: bool = False
) -> tuple[dict[str, Any], StreamingAnalysis]:
    """The world's collection again, into ``dest``: the clusters' lines, then each phone's lines
    and its "done", phones in a shuffled order, some "done" before the clusters are ready; the
    collection's own record at the end. Returns the streaming report."""
    src = root / "evidence"
    ev = dest / "evidence"
    ev.mkdir(parents=True)
    shutil.copy(src / PACK, ev / PACK)
    manifest = (ev / MANIFEST).open("ab")
    cluster = [line for line in lines if Attempt.from_json(line).phone is None]
    by_phone: dict[str, list[bytes]] = {}
    for line in lines:
        a = Attempt.from_json(line)
        if a.phone is not None:
            by_phone.setdefault(a.phone, []).append(line)
    analysis = StreamingAnalysis(_opts(root, ev, dest / "stream", inventory))
    order = list(by_phone)
    random.Random(seed).shuffle(order)
    early = order[:2]  # done before the clusters are ready: they wait for them

    def write(chunk: list[bytes]) -> None:
        manifest.write(b"".join(chunk))
        manifest.flush()

    if late_cluster:
        write(cluster[1:])
    else:
        write(cluster)
    for name in early:
        write(by_phone[name])
        analysis.phones_done([name])
    analysis.clusters_ready()
    for name in order[2:]:
        write(by_phone[name])
        analysis.phones_done([name])
    if late_cluster:
        write(cluster[:1])
    manifest.close()
    shutil.copy(src / SUMMARY, ev / SUMMARY)
    return analysis.finish({}).report, analysis


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    for key in ("verdict", "summary", "clusters", "devices"):
        assert a[key] == b[key], key


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return sorted((r for r in rows if r["type"] == "device"), key=lambda r: r["name"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_streaming_gives_the_report_of_the_analysis_after_the_collection(
    world: tuple[Path, Any], tmp_path: Path, seed: int
) -> None:
    root, inventory = world
    lines = _lines(root / "evidence")
    streamed, analysis = _replay(root, inventory, tmp_path, lines, seed=seed)
    after = analyse(_opts(root, tmp_path / "evidence", tmp_path / "after", inventory)).report
    _same(streamed, after)
    # Decided as they finished: every phone of the manifest (the inventory's never-collected
    # phone is decided at the end, with its gaps).
    decided = streamed["run"]["streamed"]["decided_while_collecting"]
    phones_with_lines = {Attempt.from_json(line).phone for line in lines} - {None}
    assert decided == len(phones_with_lines) > 0
    assert _jsonl(tmp_path / "stream" / "devices.jsonl") == _jsonl(tmp_path / "after" / "devices.jsonl")
    assert analysis.early == {}  # every early verdict went into the report


def test_a_phone_with_a_gap_waits_for_the_end(world: tuple[Path, Any], tmp_path: Path) -> None:
    """A phone whose web page line is missing: why it is missing depends on how the collection
    ended, so it is decided at the end (and says so as the analysis after the collection does)."""
    root, inventory = world
    lines = _lines(root / "evidence")
    gap = next(i for i, line in enumerate(lines) if b'"network-setup"' in line and b'"ok"' in line)
    gapped = Attempt.from_json(lines[gap]).phone
    del lines[gap]
    streamed, _ = _replay(root, inventory, tmp_path, lines, seed=4)
    after = analyse(_opts(root, tmp_path / "evidence", tmp_path / "after", inventory)).report
    _same(streamed, after)
    phones_with_lines = {Attempt.from_json(line).phone for line in lines} - {None}
    assert streamed["run"]["streamed"]["decided_while_collecting"] == len(phones_with_lines) - 1
    row = next(d for d in streamed["devices"] if d["name"] == gapped)
    assert row["readiness"] == "UNKNOWN"


def test_clusters_incomplete_when_ready_decides_everything_at_the_end(world: tuple[Path, Any], tmp_path: Path) -> None:
    """A cluster file without its line when the clusters were said to be ready: no phone is
    decided early (each would be judged against a gap), and the report is still the same."""
    root, inventory = world
    lines = _lines(root / "evidence")
    streamed, analysis = _replay(root, inventory, tmp_path, lines, seed=5, late_cluster=True)
    assert analysis.early_off
    after = analyse(_opts(root, tmp_path / "evidence", tmp_path / "after", inventory)).report
    _same(streamed, after)
    assert streamed["run"]["streamed"]["decided_while_collecting"] == 0


def test_same_basis_sees_a_changed_cluster_file_or_probe(world: tuple[Path, Any]) -> None:
    root, inventory = world
    from scanner.app.assemble import load

    loaded = load(EvidenceReader(root / "evidence"), parse_profile(PROFILE, base_dir=root), inventory)
    scan = loaded.scan
    assert same_basis(scan, scan)
    src = scan.source
    changed_file = dataclasses.replace(src.files[0], outcome=NOT_COLLECTED, data=None)
    other = dataclasses.replace(scan, source=dataclasses.replace(src, files=(changed_file, *src.files[1:])))
    assert not same_basis(scan, other) and not same_basis(other, scan)
    changed_probe = dataclasses.replace(src.tvs[0], outcome="timeout", cert_der=None)
    other = dataclasses.replace(scan, source=dataclasses.replace(src, tvs=(changed_probe, *src.tvs[1:])))
    assert not same_basis(scan, other)
    # A probe added at the end (a TVS member named only by configs) changes no early verdict.
    extra = dataclasses.replace(src.tvs[0], address="127.1.0.99")
    other = dataclasses.replace(scan, source=dataclasses.replace(src, tvs=(*src.tvs, extra)))
    assert same_basis(scan, other)


@pytest.mark.parametrize("seed", range(6))
def test_the_manifest_read_in_pieces_reads_as_at_once(tmp_path: Path, world: tuple[Path, Any], seed: int) -> None:
    """Cut anywhere (also mid-line), with a line that is not an attempt and a torn last line."""
    root, _ = world
    body = b"".join(_lines(root / "evidence"))
    body = body.replace(b"\n", b"\nnot json\n", 1) + b'{"phone": "SEP'  # a bad line, a torn tail
    ev = tmp_path / "evidence"
    ev.mkdir()
    (ev / MANIFEST).write_bytes(b"")
    tail = EvidenceReader(ev).tail()
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(body)), 12))
    got: list[Attempt] = []
    at = 0
    with (ev / MANIFEST).open("ab") as fh:
        for cut in [*cuts, len(body)]:
            fh.write(body[at:cut])
            fh.flush()
            at = cut
            got += tail.read()
    got += tail.read(final=True)
    whole = EvidenceReader(ev)
    assert got == list(whole.attempts())
    assert (tail.lines, tail.issues, tail.torn) == (whole.lines, whole.issues, whole.torn)
    assert tail.torn and len(tail.issues) == 2
