"""Every crasher the fuzzers found, replayed on the live kernel (the suite runs once per kernel).

``tests/data/crashers/<target>/<sha1>`` holds the input as the target received it; the target
(``fuzz/targets.py``) may raise its declared exception (``ParseError`` for the parsers, the
HTTP client's protocol failure for the head parser) or nothing, never anything else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.targets import CRASHERS, TARGETS, run_one


def _cases() -> list[tuple[str, Path]]:
    if not CRASHERS.is_dir():
        return []
    return [
        (folder.name, path)
        for folder in sorted(CRASHERS.iterdir())
        if folder.is_dir()
        for path in sorted(folder.iterdir())
        if path.is_file()
    ]


CASES = _cases()


def test_corpus_is_not_empty_and_names_known_targets() -> None:
    assert CASES, f"no crashers under {CRASHERS}"
    assert {name for name, _ in CASES} <= set(TARGETS)


@pytest.mark.parametrize(("target", "path"), CASES, ids=[f"{t}/{p.name[:12]}" for t, p in CASES])
def test_crasher_replays_cleanly(target: str, path: Path) -> None:
    run_one(TARGETS[target], path.read_bytes())
