"""Exit codes and hints every command agrees on: 64 for every usage or input error, 70 internal,
and the few words that point at the right input (delimiter, --from, --list-scenarios, --fail-on)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson
import pytest

from scanner.cli.main import build_parser, main
from scanner.cli.scan import FailOn, exit_code, fail_on
from tests.pki import NOW
from tests.test_collect_cli import PROFILE
from tests.test_scan_reports import write_world


def _profile(tmp_path: Path, data: bytes = PROFILE) -> str:
    path = tmp_path / "profile.toml"
    path.write_bytes(data)
    return str(path)


def test_collect_bad_profile_is_64_like_scan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _profile(tmp_path, PROFILE.replace(b'transport = "tftp"', b'transport = "ftp"'))
    assert main(["collect", "--profile", bad, "--out", str(tmp_path / "ev")]) == 64
    assert "unknown value 'ftp'" in capsys.readouterr().err
    assert main(["scan", "--profile", bad, "--out", str(tmp_path / "r")]) == 64


@pytest.mark.parametrize("command", ["scan", "collect"])
def test_header_only_inventory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    inv = tmp_path / "inv.csv"
    inv.write_text("Device Name,IP Address\n\n")
    code = main([command, "--profile", _profile(tmp_path), "--inventory", str(inv), "--out", str(tmp_path / "o")])
    assert code == 64
    err = capsys.readouterr().err
    assert "only a header row" in err and str(inv) in err
    assert not (tmp_path / "o" / "evidence").exists() and not (tmp_path / "o" / "manifest.jsonl").exists()


@pytest.mark.parametrize("command", ["scan", "collect"])
def test_inventory_without_a_usable_phone_is_64(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    inv = tmp_path / "inv.csv"
    inv.write_text("Device Name,IP Address\nSEPBAD,\nCSFJDOE,\n")
    code = main([command, "--profile", _profile(tmp_path), "--inventory", str(inv), "--out", str(tmp_path / "o")])
    assert code == 64
    err = capsys.readouterr().err
    assert "no usable phone" in err and "line 2" in err


@pytest.mark.parametrize(("sep", "word"), [(";", "semicolon"), ("\t", "tab")])
def test_delimiter_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str], sep: str, word: str) -> None:
    inv = tmp_path / "inv.csv"
    inv.write_text(f"Device Name{sep}IP Address\nSEP001122334455{sep}127.0.0.1\n")
    assert main(["scan", "--profile", _profile(tmp_path), "--inventory", str(inv), "--out", str(tmp_path / "o")]) == 64
    err = capsys.readouterr().err
    assert "no 'Device Name' column" in err and f"{word}-delimited" in err


def test_from_the_output_directory_suggests_its_evidence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scan1"
    (out / "evidence").mkdir(parents=True)
    (out / "evidence" / "manifest.jsonl").write_text("")
    code = main(["scan", "--profile", _profile(tmp_path), "--from", str(out), "--out", str(tmp_path / "r")])
    assert code == 64
    assert f"give --from {out / 'evidence'}" in capsys.readouterr().err


def test_list_scenarios_needs_no_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "build", "--list-scenarios"]) == 0
    assert "scenario mixed" in capsys.readouterr().out


def test_lab_build_without_out_is_64(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "build"]) == 64
    assert "--out" in capsys.readouterr().err


def test_demo_passes_base_to_lab_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scanner.cli import lab

    seen: list[lab.BuildRequest] = []

    def fake_build(req: lab.BuildRequest) -> int:
        seen.append(req)
        return 64  # stop the demo before it serves anything

    monkeypatch.setattr(lab, "build", fake_build)
    assert main(["demo", "--out", str(tmp_path / "d"), "--base", "42", "--phones", "5"]) == 64
    assert seen[0].base == 42 and seen[0].phones == 5 and seen[0].out == str(tmp_path / "d" / "lab")
    seen.clear()
    assert main(["demo", "--out", str(tmp_path / "e"), "--phones", "5"]) == 64
    assert seen[0].base is None


# --fail-on ------------------------------------------------------------------------------------


def _report(verdict: str, *severities: str, cluster: str | None = None) -> dict[str, Any]:
    findings = [{"code": "X", "severity": s, "message": "", "evidence": {}} for s in severities]
    clusters: dict[str, Any] = {"source": {"findings": []}, "destination": {"findings": []}}
    if cluster:
        clusters["source"]["findings"].append({"code": "Y", "severity": cluster, "message": "", "evidence": {}})
    return {"verdict": verdict, "devices": [{"findings": findings}], "clusters": clusters}


def test_fail_on_parsing() -> None:
    assert fail_on("no_go") == FailOn("NO_GO", None)
    assert fail_on("WARNING") == FailOn("INCOMPLETE", "WARNING")
    assert fail_on("NO_GO,info") == FailOn("NO_GO", "INFO")
    for bad in ("", "GO", "HIGH", "NO_GO,INCOMPLETE", "WARNING,INFO"):
        with pytest.raises(argparse.ArgumentTypeError):
            fail_on(bad)


@pytest.mark.parametrize(
    ("report", "gate", "code"),
    [
        # Without --fail-on: exactly the verdict's code.
        (_report("GO", "WARNING"), None, 0),
        (_report("NO_GO"), None, 1),
        (_report("INCOMPLETE"), None, 2),
        # --fail-on INCOMPLETE is the default.
        (_report("INCOMPLETE"), FailOn("INCOMPLETE"), 2),
        # --fail-on NO_GO: INCOMPLETE passes.
        (_report("INCOMPLETE"), FailOn("NO_GO"), 0),
        (_report("NO_GO"), FailOn("NO_GO"), 1),
        # A severity also fails a GO (exit 1) when a finding is that severe or worse.
        (_report("GO", "WARNING"), FailOn("INCOMPLETE", "WARNING"), 1),
        (_report("GO", "INFO"), FailOn("INCOMPLETE", "WARNING"), 0),
        (_report("GO", "INFO"), FailOn("INCOMPLETE", "INFO"), 1),
        (_report("GO", cluster="BLOCKER"), FailOn("INCOMPLETE", "BLOCKER"), 1),
        (_report("GO"), FailOn("INCOMPLETE", "INFO"), 0),
        # The verdict's code wins over the severity's.
        (_report("INCOMPLETE", "BLOCKER"), FailOn("INCOMPLETE", "BLOCKER"), 2),
        (_report("INCOMPLETE", "BLOCKER"), FailOn("NO_GO", "BLOCKER"), 1),
    ],
)
def test_fail_on_exit_codes(report: dict[str, Any], gate: FailOn | None, code: int) -> None:
    got, why = exit_code(report, gate)
    assert got == code
    assert (why is not None) or got == 0


def test_scan_fail_on_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ev, inventory = write_world(tmp_path)
    inv = tmp_path / "inventory.csv"
    inv.write_text("Device Name,IP Address\n" + "".join(f"{p.name},{p.ip}\n" for p in inventory))
    args = ["scan", "--profile", str(tmp_path / "profile.toml"), "--inventory", str(inv), "--from", str(ev),
            "--no-history", "--now", NOW.isoformat(), "--format", "json", "--json"]
    assert main([*args, "--out", str(tmp_path / "r1")]) == 2  # INCOMPLETE, as without the option
    assert orjson.loads(capsys.readouterr().out)["exit_code"] == 2
    assert main([*args, "--out", str(tmp_path / "r2"), "--fail-on", "NO_GO"]) == 0
    out, err = capsys.readouterr()
    assert orjson.loads(out)["verdict"] == "INCOMPLETE" and "does not fail --fail-on NO_GO" in err
    with pytest.raises(SystemExit) as info:
        main([*args, "--out", str(tmp_path / "r3"), "--fail-on", "HIGH"])
    assert info.value.code == 64
    assert "--fail-on takes a verdict" in capsys.readouterr().err


def test_fail_on_is_in_the_scan_help() -> None:
    text = build_parser()._subparsers._group_actions[0].choices["scan"].format_help()  # type: ignore[union-attr]
    assert "--fail-on" in text and "BLOCKER" in text
