"""How the analysis runs: each distinct config and page parsed once (a bounded cache that never
changes a result), and the same phone results whichever way the analysis is run.

The evidence is tests/test_scan_reports.py's world (written with the collector's own writer):
every phone gets the same config bytes from every node, so the parse cache is hit for real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from scanner.app.analysis import AnalysisOptions, analyse
from scanner.core.errors import ParseError
from scanner.core.parsecache import ParseCache
from scanner.core.policy import default_policy
from scanner.core.profile import parse_profile
from tests.pki import NOW
from tests.test_scan_reports import PROFILE, write_world


def _analyse(root: Path, out: str, **kw: Any) -> dict[str, Any]:
    ev, inventory = root / "evidence", kw.pop("inventory")
    profile = parse_profile(PROFILE, base_dir=root, path=root / "profile.toml")
    opts = AnalysisOptions(profile=profile, evidence=ev, out=root / out, policy=default_policy(), now=NOW,
                           inventory=inventory, history=None, **kw)
    return analyse(opts).report


def _phones(report: dict[str, Any]) -> list[dict[str, Any]]:
    return report["devices"]


def _jsonl_devices(path: Path) -> list[dict[str, Any]]:
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return sorted((r for r in rows if r["type"] == "device"), key=lambda r: r["name"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("world")
    _, inventory = write_world(root, phones=6)
    return root, inventory


def test_parse_cache_is_hit_and_changes_nothing(world: tuple[Path, Any]) -> None:
    root, inventory = world
    roomy = ParseCache()
    tiny = ParseCache(max_entries=1, max_bytes=1)  # every entry evicted by the next: parse every time
    a = _analyse(root, "roomy", inventory=inventory, parse_cache=roomy)
    b = _analyse(root, "tiny", inventory=inventory, parse_cache=tiny)
    assert _phones(a) == _phones(b)
    assert a["verdict"] == b["verdict"] and a["summary"] == b["summary"] and a["clusters"] == b["clusters"]
    assert _jsonl_devices(root / "roomy" / "devices.jsonl") == _jsonl_devices(root / "tiny" / "devices.jsonl")
    # Every phone's config is the same bytes from each node: parsed (and verified) once.
    assert roomy.hits > 0 and roomy.misses < tiny.misses
    assert len(tiny) <= 1
    assert a["run"]["cache"]["parsed"] == {"distinct": roomy.misses, "reused": roomy.hits}


def test_parse_cache_is_bounded_by_entries_and_bytes() -> None:
    calls: list[bytes] = []

    def parse(data: bytes) -> int:
        calls.append(data)
        return len(data)

    c = ParseCache(max_entries=3, max_bytes=10)
    for i in range(10):
        assert c.get("k", bytes([i]) * 2, parse) == 2
        assert len(c) <= 3 and c.held_bytes <= 10
    assert c.get("k", bytes([9]) * 2, parse) == 2 and c.hits == 1  # the newest stays
    assert c.get("k", bytes([0]) * 2, parse) == 2 and c.misses == 11  # the oldest went
    big = ParseCache(max_entries=100, max_bytes=10)
    for i in range(5):
        big.get("k", bytes([i]) * 4, parse)
    assert big.held_bytes <= 10 and len(big) == 2
    # The same bytes under another kind are another parse.
    assert c.get("other", bytes([0]) * 2, lambda d: -1) == -1


def test_parse_cache_keeps_refusals() -> None:
    n = 0

    def refuse(data: bytes) -> int:
        nonlocal n
        n += 1
        raise ParseError(f"bad {data!r}")

    c = ParseCache()
    for _ in range(3):
        with pytest.raises(ParseError, match="bad"):
            c.get("k", b"x", refuse)
    assert n == 1 and c.hits == 2


def test_worker_process_decides_the_same(world: tuple[Path, Any]) -> None:
    root, inventory = world
    seen: list[str] = []
    one = _analyse(root, "one", inventory=inventory, worker_from_phones=None)
    two = _analyse(root, "two", inventory=inventory, worker_from_phones=1, on_device=lambda r: seen.append(r["name"]))
    assert one["run"]["analysis_worker_cpu_seconds"] is None
    assert two["run"]["analysis_worker_cpu_seconds"] is not None  # the second half was decided there
    assert _phones(one) == _phones(two)
    assert one["verdict"] == two["verdict"] and one["summary"] == two["summary"]
    assert one["clusters"] == two["clusters"]
    # Rows come out in inventory order either way, each once.
    assert seen == [d["name"] for d in one["devices"]]
    a = (root / "one" / "devices.jsonl").read_bytes().splitlines()
    b = (root / "two" / "devices.jsonl").read_bytes().splitlines()
    assert a == b


def _load(ev: Path, inventory: Any) -> Any:
    from scanner.app.assemble import load
    from scanner.store.evidence import EvidenceReader

    return load(EvidenceReader(ev), parse_profile(PROFILE, base_dir=ev.parent, path=ev.parent / "profile.toml"),
                inventory)


def test_archived_evidence_is_indexed_not_held(world: tuple[Path, Any]) -> None:
    from scanner.store.evidence import EvidenceReader, PhoneIndex

    root, inventory = world
    loaded = _load(root / "evidence", inventory)
    # Each phone's attempts are located in the manifest and read back on demand, equal to what
    # reading the whole manifest gives for that phone (in manifest order).
    assert isinstance(loaded.by_phone, PhoneIndex)
    everything = list(EvidenceReader(root / "evidence").attempts())
    names = {a.phone for a in everything if a.phone is not None}
    assert set(loaded.by_phone) == names and len(names) >= 2
    for name in names:
        assert loaded.by_phone[name] == tuple(a for a in everything if a.phone == name)
        assert loaded.by_phone.get(name) == loaded.by_phone[name]  # read again: the same
    assert "SEP000000000000" not in loaded.by_phone and loaded.by_phone.get("SEP000000000000", ()) == ()


def test_a_manifest_line_changed_under_the_analysis_is_missing_evidence(
    world: tuple[Path, Any], tmp_path: Path
) -> None:
    """The index holds offsets: if the manifest changes after it was read, a phone's attempts are
    never taken from whatever line now sits at an offset (another phone's, or junk). They are
    missing, the line is named, and the phone is UNKNOWN."""
    import shutil

    from scanner.app.assemble import one_phone
    from scanner.core.readiness import Evaluator
    from scanner.core.trustcache import TrustFileCache

    root, inventory = world
    ev = tmp_path / "evidence"
    shutil.copytree(root / "evidence", ev)
    shutil.copytree(root / "trust", tmp_path / "trust")
    loaded = _load(ev, inventory)
    victim, other = inventory[0], inventory[1]
    assert len(victim.name) == len(other.name)
    evaluator = Evaluator(loaded.scan, default_policy(), NOW, TrustFileCache(), ParseCache())
    before = evaluator.phone(one_phone(loaded, victim, loaded.by_phone[victim.name]))
    assert before.readiness.value != "UNKNOWN"
    # Rewrite the victim's lines in place, same lengths: the even ones name the other phone, the
    # odd ones are no JSON at all.
    manifest = ev / "manifest.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    changed = 0
    for i, line in enumerate(lines):
        if orjson.loads(line).get("phone") == victim.name:
            lines[i] = (line.replace(victim.name.encode(), other.name.encode()) if changed % 2 == 0
                        else b"#" * (len(line) - 1) + b"\n")
            changed += 1
    assert changed >= 2
    manifest.write_bytes(b"".join(lines))
    got = loaded.by_phone[victim.name]
    assert got == ()
    issues = [i for i in loaded.evidence.issues if "changed during the analysis" in i]
    assert len(issues) == changed and sum("now names" in i for i in issues) == (changed + 1) // 2
    after = evaluator.phone(one_phone(loaded, victim, got))
    assert after.readiness.value == "UNKNOWN"
    # The other phone's own lines are untouched and still read as before.
    assert all(a.phone == other.name for a in loaded.by_phone[other.name])
