"""``trustscan collect`` argument handling and dry run, through the collect module's add_parser and run."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import pytest

from scanner.cli import collect

PROFILE = b"""
[clusters.source]
mode = "mixed"
[[clusters.source.tftp]]
name = "src-a"
address = "127.0.0.1"
[clusters.destination]
mode = "mixed"
transport = "tftp"
[[clusters.destination.tftp]]
name = "dst-a"
address = "127.0.0.1"
"""


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="trustscan")
    sub = p.add_subparsers(dest="command")
    collect.add_parser(sub)
    return p.parse_args(argv)


def test_dry_run_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "profile.toml").write_bytes(PROFILE)
    (tmp_path / "inv.csv").write_text("Device Name,IP Address\nSEP001122334455,127.0.0.1\nSEPBAD,\n")
    args = parse(
        [
            "collect",
            "--profile",
            str(tmp_path / "profile.toml"),
            "--inventory",
            str(tmp_path / "inv.csv"),
            "--out",
            str(tmp_path / "ev"),
            "--dry-run",
            "--json",
            "--rate",
            "10",
        ]
    )
    assert collect.run(args) == 0
    out, err = capsys.readouterr()
    plan = orjson.loads(out)
    assert plan["phones"] == 1
    rows = {(r["cluster"], r["transport"]): r for r in plan["rows"]}
    assert rows[("source", "http")]["requests"] == 2 + 3
    assert rows[("destination", "tftp")]["requests"] == 2 + 1
    assert rows[("source", "http")]["min_seconds"] == pytest.approx(0.5)
    assert "line 3" in err and "invalid MAC" in err
    assert not (tmp_path / "ev").exists()


def test_bad_profile_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "profile.toml").write_bytes(PROFILE.replace(b'transport = "tftp"', b'transport = "ftp"'))
    args = parse(["collect", "--profile", str(tmp_path / "profile.toml"), "--out", str(tmp_path / "ev")])
    assert collect.run(args) == 64  # bad input, as in every command (2 means INCOMPLETE for scan)
    assert "clusters.destination.transport: unknown value 'ftp'" in capsys.readouterr().err


def test_text_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "profile.toml").write_bytes(PROFILE)
    args = parse(
        ["collect", "--profile", str(tmp_path / "profile.toml"), "--out", str(tmp_path / "ev"), "--dry-run"]
    )
    assert collect.run(args) == 0
    out = capsys.readouterr().out
    assert "discovered at run time" in out and "src-a" in out and "total:" in out


def test_scan_and_collect_take_the_same_limit_overrides() -> None:
    from scanner.cli.scan import ScanRequest, _limits
    from scanner.core.ratelimit import Limits

    base = Limits()
    assert collect.limits_with(base) == base  # nothing given: the profile's limits
    lifted = collect.limits_with(base, concurrency=256, rate=100000.0, burst=4096, web_concurrency=32)
    assert (lifted.per_node_concurrency, lifted.per_node_rate, lifted.per_node_burst, lifted.web_concurrency) == (
        256, 100000.0, 4096, 32)
    assert lifted.workers == base.workers

    class _Profile:
        limits = base

    req = ScanRequest(profile="p.toml", out=None, concurrency=256, rate=100000.0, burst=4096, web_concurrency=32)
    assert _limits(req, _Profile()) == lifted  # type: ignore[arg-type]
    assert _limits(ScanRequest(profile="p.toml", out=None, rate=50.0), _Profile()) == collect.limits_with(  # type: ignore[arg-type]
        base, rate=50.0)
