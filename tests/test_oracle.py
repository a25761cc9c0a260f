"""The oracle on the mixed scenario: scan a served lab, cut every phone over with the lab's own
migrating phones (scanner/lab/phone_sim.py, written from the spec rather than from the readiness
checks), verify, and hold the prediction to the outcome. bench/bench_oracle.py runs every scenario.

What must hold: every phone predicted READY MIGRATED; every phone predicted NOT_READY STUCK. The
disagreements found earlier and what each turned out to be are in docs/lab.md ("The oracle"):
stale lists that differed only in their time stamp (the lab), a stale CTL and a refused per-phone
list that the scan blocked although the phone migrates through TVS with its ITL (the scan), a
destination ITL that the scan required TVS for although the new CTL vouches for it (the scan,
against the seed's step 9). Any new disagreement fails this test."""

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
    odd = [r.as_dict() for r in rows if r.verdict == "overcautious"]
    assert not odd, odd
    # The phones whose held lists the scan now judges warnings (stale CTL, refused per-phone list)
    # are in this lab, READY and migrated: the test sees the relaxed rule, not an empty case.
    stale_ready = [d["name"] for d in report["devices"] if d["readiness"] == "READY"
                   and any(f["code"] == "PHONE_TRUST_STALE" for f in d["findings"])]
    outcome = {d["name"]: d["outcome"] for d in doc["devices"]}
    assert stale_ready and all(outcome[n] == "MIGRATED" for n in stale_ready), stale_ready
    assert code == 1  # phones are STUCK: the TVS-unreachable ones, among others
    stuck = [d for d in doc["devices"] if d["outcome"] == "STUCK"]
    assert stuck and all(d["reasons"] for d in stuck)
