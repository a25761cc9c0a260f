"""Interrupted and damaged evidence, end to end on a served lab.

One lab (``mixed``, 150 phones, rate limited so that a scan lasts several seconds) is served by a
second process for the module, and scanned once without interruption: the reference. Then:

* scans killed at several points (SIGINT, SIGTERM, SIGKILL) and resumed give exactly the
  reference report (``run`` aside), and the partial evidence analysed before resuming gives no
  phone a verdict other than the reference's or UNKNOWN, and the fleet is never GO;
* damaged copies of the reference evidence (a third of the blobs deleted, a blob altered, the
  manifest truncated, a line that is not JSON, the TVS probes missing) give the same guarantee,
  with the evidence issue named;
* ``--resume`` of a finished run says there is nothing to do; with another profile it is refused
  and names the difference.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from scanner.cli.demo import serving_subprocess
from scanner.cli.main import main
from tests.evidence_damage import damage_blob, remove_blob, stored_blobs

pytestmark = pytest.mark.slow

BASE = "66"
PHONES = "150"


def _scan_args(lab: Path, *extra: str) -> list[str]:
    return ["scan", "--profile", str(lab / "profile.toml"), "--inventory", str(lab / "inventory.csv"),
            "--no-history", "--no-progress", *extra]


def _report(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads((out / "report.json").read_bytes())
    doc.pop("run")
    return doc


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("resume")
    lab = root / "lab"
    assert main(["lab", "build", "--out", str(lab), "--phones", PHONES, "--scenario", "mixed", "--seed", "5",
                 "--base", BASE]) == 0
    with (lab / "profile.toml").open("a") as fh:  # slow enough to be interrupted part-way
        fh.write("\n[limits]\nper_node_rate = 80\nper_node_burst = 8\n")
    with serving_subprocess(lab):
        ref = root / "ref"
        main(_scan_args(lab, "--out", str(ref)))
        yield lab, ref, _report(ref)


def _devices(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in report["devices"]}


def assert_no_false_verdict(partial: dict[str, Any], reference: dict[str, Any]) -> int:
    """Every phone is in the partial report; each has the reference's verdict or UNKNOWN, and a
    NOT_READY phone's blockers are among the reference's. Returns how many became UNKNOWN."""
    ref, got = _devices(reference), _devices(partial)
    assert set(got) == set(ref)
    unknown = 0
    for name, d in got.items():
        r = ref[name]
        if d["readiness"] != r["readiness"]:
            assert d["readiness"] == "UNKNOWN", (name, r["readiness"], r["reasons"], d["readiness"], d["reasons"])
            unknown += 1
        if d["readiness"] == "NOT_READY":
            assert set(d["reasons"]) <= set(r["reasons"]), (name, r["reasons"], d["reasons"])
    return unknown


def _wait_for_lines(manifest: Path, lines: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and manifest.read_bytes().count(b"\n") >= lines:
            return
        time.sleep(0.05)
    raise AssertionError(f"the scan ended or stalled before {lines} manifest lines")


@pytest.mark.parametrize(("sig", "share"), [
    (signal.SIGINT, 0.15), (signal.SIGTERM, 0.55), (signal.SIGKILL, 0.35), (signal.SIGKILL, 0.9),
])
def test_interrupted_scan_resumes_to_the_uninterrupted_report(
    world: tuple[Path, Path, dict[str, Any]], tmp_path: Path, sig: signal.Signals, share: float,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lab, ref, reference = world
    total = (ref / "evidence" / "manifest.jsonl").read_bytes().count(b"\n")
    out = tmp_path / "scan"
    proc = subprocess.Popen([sys.executable, "-m", "scanner", *_scan_args(lab, "--out", str(out))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for_lines(out / "evidence" / "manifest.jsonl", int(total * share), proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    summary = orjson.loads((out / "evidence" / "collection.json").read_bytes())
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL and summary["state"] == "running"
    else:
        assert proc.returncode == 130, err.decode()
        assert summary["state"] == "interrupted" and summary["interrupted"]
        assert b"--resume" in err
    # The partial evidence, analysed as it is: nothing false, and the fleet is not GO.
    partial = tmp_path / "partial"
    code = main(_scan_args(lab, "--from", str(out / "evidence"), "--out", str(partial)))
    doc = _report(partial)
    assert doc["verdict"] != "GO" and code in (1, 2)
    assert doc["summary"]["evidence_issues"]
    assert assert_no_false_verdict(doc, reference) > 0
    # Resumed: exactly the uninterrupted report.
    assert main(_scan_args(lab, "--resume", str(out))) == {"GO": 0, "NO_GO": 1, "INCOMPLETE": 2}[
        reference["verdict"]]
    capsys.readouterr()
    assert _report(out) == reference
    assert list((out / "evidence").glob("manifest.prev-*.jsonl")), "the previous manifest stays on record"


def _copy(ref: Path, tmp: Path) -> Path:
    ev = tmp / "evidence"
    shutil.copytree(ref / "evidence", ev)
    return ev


def _analyse(lab: Path, ev: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], str]:
    main(_scan_args(lab, "--from", str(ev), "--out", str(out)))
    return _report(out), capsys.readouterr().err


def test_a_third_of_the_blobs_deleted(world: tuple[Path, Path, dict[str, Any]], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    lab, ref, reference = world
    ev = _copy(ref, tmp_path)
    for sha in stored_blobs(ev)[::3]:
        remove_blob(ev, sha)
    doc, err = _analyse(lab, ev, tmp_path / "out", capsys)
    assert assert_no_false_verdict(doc, reference) > 0
    assert doc["verdict"] != "GO" and "blob" in err
    assert any(f["code"] == "EVIDENCE_MISSING" for d in doc["devices"] for f in d["findings"])


def test_an_altered_blob_is_damaged_evidence(world: tuple[Path, Path, dict[str, Any]], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    lab, ref, reference = world
    ev = _copy(ref, tmp_path)
    lines = [orjson.loads(x) for x in (ev / "manifest.jsonl").read_bytes().splitlines()]
    target = next(x["blob"] for x in lines if x["file"] == "ITLFile.tlv" and x["blob"])
    damage_blob(ev, target)
    doc, err = _analyse(lab, ev, tmp_path / "out", capsys)
    assert_no_false_verdict(doc, reference)
    assert "damaged" in err or "not matching their hash" in err
    assert doc["verdict"] != "GO"


def test_truncated_manifest_warns(world: tuple[Path, Path, dict[str, Any]], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    lab, ref, reference = world
    ev = _copy(ref, tmp_path)
    data = (ev / "manifest.jsonl").read_bytes()
    (ev / "manifest.jsonl").write_bytes(data[: len(data) // 2])  # cut mid-line, too
    doc, err = _analyse(lab, ev, tmp_path / "out", capsys)
    assert assert_no_false_verdict(doc, reference) > 0
    assert "truncated" in err and doc["verdict"] != "GO"


def test_a_manifest_line_that_is_not_json(world: tuple[Path, Path, dict[str, Any]], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    lab, ref, reference = world
    ev = _copy(ref, tmp_path)
    lines = (ev / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    lines[40] = b"{this is not json\n"
    (ev / "manifest.jsonl").write_bytes(b"".join(lines))
    doc, err = _analyse(lab, ev, tmp_path / "out", capsys)
    assert_no_false_verdict(doc, reference)
    assert "manifest.jsonl:41" in err and doc["verdict"] != "GO"


def test_tvs_probes_missing_never_give_not_ready(world: tuple[Path, Path, dict[str, Any]], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # As after Ctrl-C before the probes: main said NOT_READY with TVS_UNREACHABLE for phones whose
    # probe never ran.
    lab, ref, reference = world
    ev = _copy(ref, tmp_path)
    lines = (ev / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    kept = [x for x in lines if orjson.loads(x)["transport"] != "tvs"]
    (ev / "manifest.jsonl").write_bytes(b"".join(kept))
    summary = orjson.loads((ev / "collection.json").read_bytes())
    summary.update(state="interrupted", interrupted="SIGINT (Ctrl-C)")
    summary["counts"]["attempts"] = len(kept)
    (ev / "collection.json").write_bytes(orjson.dumps(summary))
    doc, err = _analyse(lab, ev, tmp_path / "out", capsys)
    assert assert_no_false_verdict(doc, reference) > 0
    assert "interrupted" in err
    ref_tvs = {n for n, d in _devices(reference).items() if "TVS_UNREACHABLE" in d["reasons"]}
    now_tvs = {n for n, d in _devices(doc).items() if "TVS_UNREACHABLE" in d["reasons"]}
    assert now_tvs <= ref_tvs


def test_resume_of_a_finished_run_and_with_another_profile(
    world: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, ref, _ = world
    out = tmp_path / "scan"
    shutil.copytree(ref, out)
    # Only definite answers left: nothing to do, said so, and the reports are rewritten as they were.
    ev = out / "evidence"
    lines = [x for x in (ev / "manifest.jsonl").read_bytes().splitlines(keepends=True)
             if orjson.loads(x)["outcome"] in ("ok", "not_found", "disabled", "skipped")]
    (ev / "manifest.jsonl").write_bytes(b"".join(lines))
    summary = orjson.loads((ev / "collection.json").read_bytes())
    summary["counts"]["attempts"] = len(lines)
    (ev / "collection.json").write_bytes(orjson.dumps(summary))
    main(_scan_args(lab, "--resume", str(out)))
    assert "nothing to resume" in capsys.readouterr().err
    # Another profile: refused, naming what differs.
    other = lab / "other-profile.toml"  # beside the lab's: the same relative trust-store paths
    text = (lab / "profile.toml").read_text().replace("per_node_rate = 80", "per_node_rate = 81")
    other.write_text(text)
    code = main(["scan", "--profile", str(other), "--inventory", str(lab / "inventory.csv"), "--no-history",
                 "--no-progress", "--resume", str(out)])
    err = capsys.readouterr().err
    assert code == 64 and "another profile" in err and "limits.per_node_rate" in err, err
    # And collect --resume on the same: the same refusal.
    assert main(["collect", "--profile", str(other), "--inventory", str(lab / "inventory.csv"),
                 "--out", str(ev), "--resume"]) == 64
    assert os.path.exists(ev / "manifest.jsonl")


def test_evidence_from_another_profile(world: tuple[Path, Path, dict[str, Any]], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    lab, ref, reference = world
    text = (lab / "profile.toml").read_text()
    # Only politeness changed: the same question, a warning, the same answers.
    polite = lab / "polite-profile.toml"
    polite.write_text(text.replace("per_node_rate = 80", "per_node_rate = 40"))
    main(["scan", "--profile", str(polite), "--inventory", str(lab / "inventory.csv"), "--no-history",
          "--no-progress", "--from", str(ref / "evidence"), "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert "another profile: limits.per_node_rate" in err
    doc = _report(tmp_path / "a")
    assert doc["devices"] == reference["devices"] and doc["verdict"] == reference["verdict"]
    # Another node: the evidence answers another question; never GO, the difference named.
    import re

    # The lab's profile discovers its nodes through AXL (the evidence's discovery record says which);
    # the hand-written one names them, so one of its addresses is moved.
    manual = (lab / "profile-manual.toml").read_text() + "\n[limits]\nper_node_rate = 80\nper_node_burst = 8\n"
    moved = lab / "moved-profile.toml"
    moved.write_text(re.sub(r'address = "127\.(\d+)\.0\.2"', r'address = "127.\1.0.99"', manual, count=1))
    main(["scan", "--profile", str(moved), "--inventory", str(lab / "inventory.csv"), "--no-history",
          "--no-progress", "--from", str(ref / "evidence"), "--out", str(tmp_path / "b")])
    capsys.readouterr()
    doc = _report(tmp_path / "b")
    assert any("tftp" in i for i in doc["summary"]["evidence_issues"]), doc["summary"]
    assert doc["verdict"] != "GO"
    assert_no_false_verdict(doc, reference)
