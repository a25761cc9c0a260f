"""Accuracy: for every lab scenario, a live scan of 500 phones gives exactly the lab's answer key
(verdict, and readiness and codes of every phone); and `scan --from` on the archived evidence
gives the same report as the live scan.

The lab is served by a separate process (`trustscan lab serve`), as a user would run it, so the
scanner and the servers each have a core. Slow by design (about a minute per dead-node scenario):
marked `slow`, still run by `make test`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from scanner.cli.demo import serving_subprocess
from scanner.cli.main import main
from scanner.lab.answer import compare_report
from scanner.lab.scenario import BUILTIN

PHONES = int(os.environ.get("TRUSTSCAN_ACCURACY_PHONES", "500"))
SCENARIOS = sorted(BUILTIN)


def _compare(lab: Path, report: dict[str, Any]) -> list[str]:
    return compare_report(orjson.loads((lab / "answer-key.json").read_bytes()), report)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_live_scan_matches_answer_key(scenario: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "lab"
    assert main(["lab", "build", "--out", str(lab), "--phones", str(PHONES), "--scenario", scenario, "--seed", "7",
                 "--base", "60"]) == 0
    out = tmp_path / "scan"
    with serving_subprocess(lab):
        code = main(["scan", "--profile", str(lab / "profile.toml"), "--inventory", str(lab / "inventory.csv"),
                     "--out", str(out), "--no-history", "--no-progress"])
    capsys.readouterr()
    report = orjson.loads((out / "report.json").read_bytes())
    problems = _compare(lab, report)
    assert not problems, f"{len(problems)} differences, first: " + "\n".join(problems[:10])
    assert code == {"GO": 0, "NO_GO": 1, "INCOMPLETE": 2}[report["verdict"]]
    if scenario == "mixed":
        # Offline re-analysis of the archived evidence gives the same report.
        again = tmp_path / "again"
        assert main(["scan", "--profile", str(lab / "profile.toml"), "--inventory", str(lab / "inventory.csv"),
                     "--from", str(out / "evidence"), "--out", str(again), "--no-history"]) == code
        capsys.readouterr()
        second = orjson.loads((again / "report.json").read_bytes())
        for doc in (report, second):
            doc.pop("run")
        assert second == report
