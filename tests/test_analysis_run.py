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
