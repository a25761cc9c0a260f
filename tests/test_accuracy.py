"""Accuracy: for every lab scenario, a live scan of 500 phones gives exactly the lab's answer key
(verdict, and readiness and codes of every phone); and `scan --from` on the archived evidence
gives the same report as the live scan, which decided its phones while collecting.

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
from scanner.lab.answer import compare_report, refusal_differences
from scanner.lab.scenario import BUILTIN

PHONES = int(os.environ.get("TRUSTSCAN_ACCURACY_PHONES", "500"))
SCENARIOS = sorted(BUILTIN)


def _compare(lab: Path, report: dict[str, Any]) -> list[str]:
    return compare_report(orjson.loads((lab / "answer-key.json").read_bytes()), report)


def _secrets(lab: Path) -> list[str]:
    """The lab's AXL passwords: none may appear in any output."""
    return [p.read_text().strip() for p in sorted((lab / "secrets").glob("*"))] if (lab / "secrets").is_dir() else []


def _leaks(root: Path, secrets: list[str], *texts: str) -> list[str]:
    """Every file under ``root`` and every text that holds one of ``secrets``."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}" for s in secrets if s.encode() in data]
    found += [f"output {i}" for i, t in enumerate(texts) for s in secrets if s in t]
    return found


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_live_scan_matches_answer_key(scenario: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The way a user with a publisher address and AXL credentials scans: the profile alone (no
    CSV), the nodes and phones discovered through the lab's AXL and RisPort70."""
    lab = tmp_path / "lab"
    assert main(["lab", "build", "--out", str(lab), "--phones", str(PHONES), "--scenario", scenario, "--seed", "7",
                 "--base", "60"]) == 0
    key = orjson.loads((lab / "answer-key.json").read_bytes())
    out = tmp_path / "scan"
    history = tmp_path / "history.sqlite"
    with serving_subprocess(lab):
        code = main(["scan", "--profile", str(lab / "profile.toml"), "--out", str(out), "--history", str(history),
                     "--no-progress", "--format", "json,jsonl,csv,html,sarif,junit"])
    captured = capsys.readouterr()
    if "refused" in key:  # the scan must stop before contacting anything but the publisher
        assert not refusal_differences(key, code, captured.err), refusal_differences(key, code, captured.err)
        assert not (out / "report.json").exists() and not (out / "evidence" / "manifest.jsonl").exists()
        return
    report = orjson.loads((out / "report.json").read_bytes())
    problems = _compare(lab, report)
    assert not problems, f"{len(problems)} differences, first: " + "\n".join(problems[:10])
    assert code == {"GO": 0, "NO_GO": 1, "INCOMPLETE": 2}[report["verdict"]]
    assert (out / "evidence" / "discovery.json").is_file() and report["run"]["discovery"]["phones"] == PHONES
    secrets = _secrets(lab)
    assert secrets  # the lab has AXL passwords, so the grep below can see a leak
    # Everything the scan wrote (evidence, reports, history) and said; not the lab's own files,
    # which hold the passwords as the cluster does.
    leaks = _leaks(out, secrets, captured.out, captured.err, history.read_bytes().decode("latin-1"))
    assert not leaks, leaks
    # The live scan decided phones while collecting (scanner.app.streaming); the offline
    # re-analysis of the archived evidence (after the collection, from its discovery record)
    # gives the same report, in every scenario.
    streamed = report["run"]["streamed"]
    assert streamed is not None and 0 <= streamed["decided_while_collecting"] <= PHONES
    if scenario in ("healthy", "mixed"):
        assert streamed["decided_while_collecting"] > PHONES // 2
    again = tmp_path / "again"
    assert main(["scan", "--profile", str(lab / "profile.toml"), "--from", str(out / "evidence"),
                 "--out", str(again), "--no-history"]) == code
    capsys.readouterr()
    second = orjson.loads((again / "report.json").read_bytes())
    assert "streamed" not in second["run"]
    for doc in (report, second):
        doc.pop("run")
    assert second == report


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["profile-manual.toml", "profile.toml"])
def test_the_csv_paths_match_the_answer_key_too(profile: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CSV stays supported: nodes by hand with the CSV's addresses, and AXL with the CSV
    filling and overriding what the cluster says."""
    lab = tmp_path / "lab"
    assert main(["lab", "build", "--out", str(lab), "--phones", str(PHONES), "--scenario", "mixed", "--seed", "7",
                 "--base", "60"]) == 0
    out = tmp_path / "scan"
    with serving_subprocess(lab):
        code = main(["scan", "--profile", str(lab / profile), "--inventory", str(lab / "inventory.csv"),
                     "--out", str(out), "--no-history", "--no-progress"])
    capsys.readouterr()
    report = orjson.loads((out / "report.json").read_bytes())
    problems = _compare(lab, report)
    assert not problems, f"{len(problems)} differences, first: " + "\n".join(problems[:10])
    assert code == {"GO": 0, "NO_GO": 1, "INCOMPLETE": 2}[report["verdict"]]
    assert (out / "evidence" / "discovery.json").is_file() == (profile == "profile.toml")
