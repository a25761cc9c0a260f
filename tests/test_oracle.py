"""The oracle on the mixed scenario: scan a served lab, cut every phone over with the lab's own
migrating phones (scanner/lab/phone_sim.py, written from the spec rather than from the readiness
checks), verify, and hold the prediction to the outcome. bench/bench_oracle.py runs every scenario.

What must hold: every phone predicted READY MIGRATED; every phone predicted NOT_READY is STUCK,
except the disagreement found and explained in docs/lab.md ("The oracle"): the lab's stale lists
differ from the served ones only in their time stamp, so a phone holding one migrates although
C2 (PHONE_TRUST_STALE) blocks it. A new kind of disagreement fails this test."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from scanner.cli.demo import serving_subprocess
from scanner.cli.main import main
from scanner.report.prediction_diff import compare

pytestmark = pytest.mark.slow


def test_every_phone_predicted_ready_migrates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "lab"
    assert main(["lab", "build", "--out", str(lab), "--phones", "300", "--scenario", "mixed", "--seed", "3",
                 "--base", "48"]) == 0
    with serving_subprocess(lab):
        main(["scan", "--profile", str(lab / "profile.toml"), "--out", str(tmp_path / "scan"), "--no-history",
              "--no-progress", "--format", "json"])
        assert main(["lab", "cutover", str(lab)]) == 0
        code = main(["verify", "--profile", str(lab / "profile.toml"), "--out", str(tmp_path / "verify"),
                     "--no-progress"])
    capsys.readouterr()
    report = orjson.loads((tmp_path / "scan" / "report.json").read_bytes())
    doc = orjson.loads((tmp_path / "verify" / "verification.json").read_bytes())
    rows, summary = compare(report, doc, scan_where="scan", verification_where="verify")
    assert len(rows) == 300 and summary.only_in_scan == summary.only_in_verification == 0
    assert summary.counts["missed"] == 0, [r.as_dict() for r in rows if r.verdict == "missed"]
    ready = sum(1 for d in report["devices"] if d["readiness"] == "READY")
    assert ready > 150 and summary.counts["agree"] >= ready
    odd = [r.as_dict() for r in rows if r.verdict == "overcautious" and "PHONE_TRUST_STALE" not in r.predicted_codes]
    assert not odd, odd
    assert code == 1  # phones are STUCK: the TVS-unreachable ones, among others
    stuck = [d for d in doc["devices"] if d["outcome"] == "STUCK"]
    assert stuck and all(d["reasons"] for d in stuck)
