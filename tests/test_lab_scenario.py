"""Scenario files, bad input, the TOML writer, HTTP-side transport faults, the CLI entry points."""

from __future__ import annotations

import argparse
import asyncio
import json
import tomllib
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.cli.lab import add_parser as add_lab_parser
from scanner.cli.lab import run as run_lab
from scanner.lab import tomlw
from scanner.lab.answer import BLOCKERS, UNKNOWNS, WARNINGS
from scanner.lab.errors import LabError
from scanner.lab.faults import CATALOG
from scanner.lab.scenario import BUILTIN, parse_scenario
from scanner.lab.testing import built_lab, serving

GOOD = """
name = "night"
phones = 40

[source]
mode = "mixed"
key = "rsa1024"

[destination]
version = "12.5"

[[faults]]
name = "phone-stale-itl"
fraction = 0.1

[[faults]]
name = "tvs-down"
node = "src-sub2"
"""


def test_good_scenario_file() -> None:
    sc = parse_scenario(GOOD, "night.toml")
    assert sc.name == "night" and sc.phones == 40
    assert [f.name for f in sc.faults] == ["phone-stale-itl", "tvs-down"]
    assert sc.faults[0].fraction == 0.1 and sc.faults[1].node == "src-sub2"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            '[[faults]]\nname = "phone-melts"\nfraction = 0.1\n',
            "night.toml:2: faults[0].name: unknown fault 'phone-melts'",
        ),
        (
            '[[faults]]\nname = "phone-stale-itl"\nfraction = 1.5\n',
            "night.toml:3: faults[0].fraction: must be a number between 0 and 1",
        ),
        ('[[faults]]\nname = "phone-stale-itl"\nfraction = -0.1\n', "faults[0].fraction"),
        ('[[faults]]\nname = "phone-stale-itl"\n', "needs fraction = 0..1 or count = N"),
        (
            '[[faults]]\nname = "tvs-down"\nnode = "dst-pub"\n',
            "faults[0].node: must be one of src-pub, src-sub1, src-sub2",
        ),
        (
            '[[faults]]\nname = "node-loss"\nnode = "src-pub"\nloss = 0.9\n',
            "faults[0].loss: must be between 0 and 0.2",
        ),
        ('[nodes.src-pub]\naddress = "10.1.2.3"\n', "nodes.src-pub.address: 10.1.2.3 is outside 127.0.0.0/8"),
        ("[nodes.src-pub]\ntftp_port = 69\n", "nodes.src-pub.tftp_port: must be a port in 1024..65535"),
        ('[source]\nmode = "secure"\n', "source.mode: must be one of mixed, non-secure"),
        ('[source]\ntrasnport = "tftp"\n', "source.trasnport: unknown key"),
        (
            '[[faults]]\nname = "itlrecovery-not-imported"\n[destination]\nversion = "11.5"\n',
            "needs destination 12",
        ),
        ("phones = [", "not valid TOML"),
    ],
)
def test_bad_scenario(text: str, needle: str) -> None:
    with pytest.raises(LabError) as exc:
        parse_scenario(text, "night.toml")
    assert needle in str(exc.value)


def test_too_many_faulted_phones(tmp_path: Path) -> None:
    from scanner.lab.build import build_lab
    from scanner.lab.testing import key_factory

    text = '[[faults]]\nname = "phone-stale-itl"\ncount = 50\n'
    with pytest.raises(LabError, match=r"faults\[0\] \(phone-stale-itl\): not enough phones"):
        build_lab(tmp_path / "x", parse_scenario(text, "x.toml"), phones=10, keys=key_factory("1"))
    assert not any(tmp_path.iterdir())  # nothing half-built left behind


def test_refuses_to_overwrite_a_non_lab(tmp_path: Path) -> None:
    from scanner.lab.build import build_lab

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LabError, match="not a lab directory"):
        build_lab(tmp_path, BUILTIN["healthy"], phones=2)


def test_catalog_is_consistent() -> None:
    checks = {f.check for f in CATALOG.values()}
    assert {f"C{i}" for i in range(1, 9)} <= checks
    for f in CATALOG.values():
        for code in f.codes:
            assert code in BLOCKERS | UNKNOWNS | WARNINGS | {"TVS_UNREACHABLE", "TVS_CERT_NOT_IN_ITL"}, code
    every = {f.name for s in BUILTIN.values() for f in s.faults}
    assert every == set(CATALOG), set(CATALOG) - every
    assert (Path(__file__).parents[1] / "docs/lab.md").read_text().count("`") > 0
    doc = (Path(__file__).parents[1] / "docs/lab.md").read_text()
    assert all(f"`{name}`" in doc for name in CATALOG)


_keys = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20),
)


@given(
    st.dictionaries(
        _keys,
        st.one_of(
            _scalars, st.lists(st.integers(), max_size=3), st.dictionaries(_keys, _scalars, max_size=3)
        ),
        max_size=5,
    )
)
def test_toml_writer_round_trips(doc: dict) -> None:
    assert tomllib.loads(tomlw.dumps(doc)) == doc


def test_toml_writer_tables_and_arrays() -> None:
    doc = {"a": {"b": {"x": 1, "s": tomlw.Inline({"k-1": "v"})}, "t": [{"n": "x"}, {"n": "y"}]}}
    assert tomllib.loads(tomlw.dumps(doc)) == {
        "a": {"b": {"x": 1, "s": {"k-1": "v"}}, "t": [{"n": "x"}, {"n": "y"}]}
    }


HTTP_FAULTS = """
name = "http-faults"
[[faults]]
name = "node-error"
node = "src-pub"
[[faults]]
name = "node-truncate"
node = "src-sub1"
bytes = 100
[[faults]]
name = "node-stall"
node = "dst-pub"
"""


def test_http_transport_faults_and_answer() -> None:
    d = built_lab(parse_scenario(HTTP_FAULTS, "http-faults.toml"), phones=8)
    lab = json.loads((d / "lab.json").read_text())
    nodes = {n["name"]: n for c in lab["clusters"].values() for n in c["tftp"]}
    ak = json.loads((d / "answer-key.json").read_text())
    # Both protocols broken on every source node and on a destination node: all phones UNKNOWN.
    assert ak["verdict"] == "INCOMPLETE"
    assert all(v == {"readiness": "UNKNOWN", "codes": ["FETCH_FAILED"]} for v in ak["devices"].values())

    async def go() -> None:
        async with serving(d), aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as s:
            n = nodes["src-pub"]
            async with s.get(f"http://{n['address']}:{n['http_port']}/ITLFile.tlv") as r:
                assert r.status == 500
            n = nodes["src-sub1"]
            with pytest.raises(aiohttp.ClientPayloadError):
                async with s.get(f"http://{n['address']}:{n['http_port']}/ITLFile.tlv") as r:
                    await r.read()
            n = nodes["dst-pub"]
            with pytest.raises(TimeoutError):
                async with s.get(f"http://{n['address']}:{n['http_port']}/ITLFile.tlv") as r:
                    await r.read()

    asyncio.run(go())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trustscan")
    sub = p.add_subparsers(dest="command")
    add_lab_parser(sub)
    return p


def test_cli_build_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scanner.lab import build as build_mod
    from scanner.lab.testing import key_factory

    real = build_mod.build_lab
    monkeypatch.setattr(
        build_mod, "build_lab", lambda *a, **k: real(*a, **{**k, "keys": key_factory(k["seed"])})
    )
    args = _parser().parse_args(["lab", "build", "--out", str(tmp_path / "lab"), "--phones", "5", "--quiet"])
    assert run_lab(args) == 0
    assert (tmp_path / "lab/answer-key.json").is_file()
    bad = tmp_path / "bad.toml"
    bad.write_text('[[faults]]\nname = "nope"\ncount = 1\n')
    args = _parser().parse_args(["lab", "build", "--out", str(tmp_path / "x"), "--scenario", str(bad)])
    assert run_lab(args) == 64
    assert "faults[0].name: unknown fault 'nope'" in capsys.readouterr().err
    args = _parser().parse_args(["lab", "serve", str(tmp_path / "missing")])
    assert run_lab(args) == 64
    assert "lab directory not found" in capsys.readouterr().err
    args = _parser().parse_args(["lab", "build", "--out", str(tmp_path / "y"), "--scenario", "no-such"])
    assert run_lab(args) == 64
    assert "unknown scenario 'no-such'" in capsys.readouterr().err
