"""Every output takes the user's umask (report files were once written 0600 while every other
output was 0644)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from scanner.report.files import write_atomic
from scanner.store.evidence import PACK, EvidenceWriter


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_reports_and_evidence_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        write_atomic(tmp_path / "report.json", b"{}")
        with EvidenceWriter(tmp_path / "ev") as w:
            w.store(b"blob bytes")
        (tmp_path / "plain.txt").write_bytes(b"x")  # what open() gives: the reference
    finally:
        os.umask(old)
    want = 0o666 & ~umask
    blob = tmp_path / "ev" / PACK
    for path in (tmp_path / "report.json", blob, tmp_path / "ev" / "manifest.jsonl", tmp_path / "plain.txt"):
        assert stat.S_IMODE(path.stat().st_mode) == want, (path, oct(path.stat().st_mode))
    assert not list(tmp_path.glob(".report.json.*")), "no temporary file left behind"
