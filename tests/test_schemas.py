"""Every machine output against its committed schema, on real outputs: a served lab (base 77) is
scanned with every format, analysed again with ``--from`` (once as it was, once with another
policy and a shorter inventory), diffed, and its trust files inspected.

SARIF is also validated against the SARIF 2.1.0 JSON Schema itself
(tests/data/sarif-schema-2.1.0.json: the OASIS TC's file, oasis-tcs/sarif-spec
sarif-2.1/schema/sarif-schema-2.1.0.json at e0583813964ec43cea53b6b531b402866095ed1f).
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from scanner.cli.demo import serving_subprocess
from scanner.cli.main import main
from scanner.lab.testing import TEST_BASE
from scanner.report import sarif_report
from scanner.report.schema import SCHEMAS, render
from scanner.store.evidence import EvidenceReader

ROOT = Path(__file__).resolve().parents[1]
SARIF_SCHEMA = orjson.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_bytes())
ALL_FORMATS = "json,jsonl,csv,html,sarif,junit"


def committed(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads((ROOT / "schema" / name).read_bytes())
    return doc


def validate(doc: Any, name: str) -> None:
    schema = committed(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(doc)


def lines(text: str | bytes) -> list[Any]:
    return [orjson.loads(x) for x in (text.splitlines() if isinstance(text, bytes) else text.encode().splitlines())]


@dataclass(frozen=True)
class Runs:
    lab: Path
    live: Path  # the live scan's output directory
    again: Path  # scan --from the live evidence, same inputs
    other: Path  # scan --from with another policy and a shorter inventory
    live_json: list[Any]  # what scan --json printed on stdout
    other_json: list[Any]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    capsys_free = pytest.MonkeyPatch()  # the module fixture cannot use capsys: capture by hand
    root = tmp_path_factory.mktemp("schemas")
    lab = root / "lab"
    assert main(["lab", "build", "--out", str(lab), "--phones", "30", "--scenario", "mixed", "--seed", "7",
                 "--base", str(TEST_BASE)]) == 0
    common = ["--profile", str(lab / "profile.toml"), "--no-history", "--no-progress", "--format", ALL_FORMATS,
              "--json"]
    inv = str(lab / "inventory.csv")
    short = root / "short.csv"
    rows = (lab / "inventory.csv").read_text().splitlines(keepends=True)
    short.write_text("".join(rows[:-3]))  # another inventory (phones may still come from discovery)
    policy = root / "policy.toml"
    policy.write_text('required_checks = ["C1", "C3"]\n')  # fewer checks: some phones "fixed"
    outs: dict[str, list[Any]] = {}

    def scan(name: str, *argv: str) -> None:
        import io
        import sys

        buf = io.BytesIO()
        stdout = io.TextIOWrapper(buf, encoding="utf-8")
        capsys_free.setattr(sys, "stdout", stdout)
        try:
            code = main(["scan", *common, "--out", str(root / name), *argv])
            stdout.flush()
        finally:
            capsys_free.undo()
        assert code in (0, 1, 2), code
        outs[name] = lines(buf.getvalue())

    with serving_subprocess(lab):
        scan("live", "--inventory", inv)
    scan("again", "--inventory", inv, "--from", str(root / "live" / "evidence"))
    scan("other", "--inventory", str(short), "--policy", str(policy), "--from", str(root / "live" / "evidence"))
    return Runs(lab, root / "live", root / "again", root / "other", outs["live"], outs["other"])


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_committed_schemas_are_what_the_code_defines(name: str) -> None:
    assert (ROOT / "schema" / name).read_bytes() == render(name), (
        "run: python -m scanner.report.schema --write schema"
    )
    jsonschema.Draft202012Validator.check_schema(committed(name))


def test_report_and_devices_jsonl(runs: Runs) -> None:
    for out in (runs.live, runs.again, runs.other):
        report = orjson.loads((out / "report.json").read_bytes())
        validate(report, "report.schema.json")
        records = lines((out / "devices.jsonl").read_bytes())
        for r in records:
            validate(r, "devices-line.schema.json")
        assert [r["type"] for r in records] == ["device"] * len(report["devices"]) + ["summary"]
        # A device line is the report's device object plus its type, nothing else. The lines come
        # in the order the phones were decided (while collecting: as they finished), the report
        # in inventory order.
        def by_name(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return sorted(rows, key=lambda d: d["name"])

        assert by_name([{k: v for k, v in r.items() if k != "type"} for r in records[:-1]]) == by_name(
            report["devices"])
        assert records[-1]["verdict"] == report["verdict"]


def test_scan_json_summary_line(runs: Runs) -> None:
    for printed, out in ((runs.live_json, runs.live), (runs.other_json, runs.other)):
        assert len(printed) == 1
        validate(printed[0], "scan-summary.schema.json")
        report = orjson.loads((out / "report.json").read_bytes())
        assert printed[0]["summary"] == report["summary"]
        assert set(printed[0]["reports"]) == {*ALL_FORMATS.split(","), "remediation"}  # remediation.csv goes with csv


def test_diff_json_records(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = main(["diff", "--json", str(runs.live / "report.json"), str(runs.other / "report.json")])
    out, err = capsys.readouterr()
    records = lines(out)
    for r in records:
        validate(r, "diff-record.schema.json")
    assert [r["type"] for r in records][-1] == "summary" and records[-1]["type"] not in [
        r["type"] for r in records[:-1]
    ]
    kinds = Counter(r["change"] for r in records[:-1])
    s = records[-1]
    assert kinds["fixed"] > 0, kinds  # fewer required checks: phones blocked only by the others
    assert s["phones"] == {k: kinds[k] for k in s["phones"]}
    assert s["policy_changed"] is True and s["inventory_changed"] is True
    for side, out in (("old", runs.live), ("new", runs.other)):
        report = orjson.loads((out / "report.json").read_bytes())
        assert s["verdict"][side] == report["verdict"] and s["total"][side] == len(report["devices"])
        assert {k: c[side] for k, c in s["counts"].items()} == report["summary"]["counts"]
    assert code == (1 if s["worse"] else 0)
    assert "different policies" in err and "different inventories" in err


def test_inspect_json_lines(runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in (runs.lab / "tftp").rglob("*") if p.is_file())[:40]
    assert any(f.endswith(".tlv") for f in files) and any(f.endswith(".sgn") for f in files)
    bad = tmp_path / "ITLFile.tlv"
    bad.write_bytes(b"\x01\x00\x02\x01")  # a header cut short: malformed
    capsys.readouterr()
    main(["inspect", "--json", "--trust-store", str(runs.lab / "trust"), *files, str(bad),
          str(tmp_path / "missing.tlv")])
    records = lines(capsys.readouterr().out)
    assert len(records) == len(files) + 2
    for r in records:
        validate(r, "inspect.schema.json")
    assert records[-2]["kind"] is None and records[-1]["kind"] is None and "md5" not in records[-1]
    assert any(r.get("kind") == "itl" for r in records) and any(r.get("kind") == "sgn" for r in records)


def sarif(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads((out / "report.sarif").read_bytes())
    return doc


def test_sarif_is_valid_sarif_2_1_0(runs: Runs) -> None:
    validator = jsonschema.Draft4Validator(SARIF_SCHEMA, format_checker=jsonschema.FormatChecker())
    for out in (runs.live, runs.other):
        validator.validate(sarif(out))
    # The rendering with an exit code and a command line too.
    report = orjson.loads((runs.live / "report.json").read_bytes())
    validator.validate(orjson.loads(sarif_report.render(report, command_line=["trustscan", "scan"], exit_code=1)))


def test_sarif_locations_fingerprints_and_invocation(runs: Runs) -> None:
    doc = sarif(runs.live)
    run = doc["runs"][0]
    report = orjson.loads((runs.live / "report.json").read_bytes())
    results = run["results"]
    assert len(results) == sum(len(c["findings"]) for c in report["clusters"].values()) + sum(
        len(d["findings"]) for d in report["devices"]
    )
    for r in results:
        assert r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert len(r["partialFingerprints"][sarif_report.FINGERPRINT]) == 64
        assert run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
    # A finding on a phone's trust file on a source node: located at that file on that node, and
    # the evidence blob it was judged on is where the location says.
    ctl = next(r for r in results if r["ruleId"] == "SRC_CTL_INVALID")
    loc = ctl["locations"][0]["physicalLocation"]["artifactLocation"]
    ev = ctl["properties"]["evidence"]
    assert ev["cluster"] == "source" and ev["file"].startswith("CTLSEP") and ev["file"].endswith(".tlv")
    assert loc["uriBaseId"] == "SOURCE" and loc["uri"] == f"{ev['node']}/{ev['file']}"
    # Evidence format 2 keeps blobs in blobs.pack: the location names the pack and the record's hash.
    sha = loc["properties"]["sha256"]
    assert loc["properties"]["evidencePack"] == "blobs.pack" and (runs.live / "evidence" / "blobs.pack").is_file()
    assert hashlib.sha256(EvidenceReader(runs.live / "evidence").blob(sha)).hexdigest() == sha
    assert "SOURCE" in run["originalUriBaseIds"]
    # A phone finding without a file is placed at the inventory, a cluster one at the profile.
    stale = next(r for r in results if r["ruleId"] == "PHONE_TRUST_STALE")
    assert stale["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        (runs.lab / "inventory.csv").as_uri()
    )
    tvs = next(r for r in results if r["ruleId"] == "TVS_UNREACHABLE"
               and r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "cluster/source")
    assert tvs["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (runs.lab / "profile.toml").as_uri()
    rule = next(x for x in run["tool"]["driver"]["rules"] if x["id"] == "SRC_CTL_INVALID")
    assert rule["fullDescription"]["text"] and rule["defaultConfiguration"]["level"] == "error"
    # The invocation: when the run started and ended, and that it succeeded (results are not failures).
    (inv,) = run["invocations"]
    assert inv["executionSuccessful"] is True
    assert inv["startTimeUtc"].endswith("Z") and inv["endTimeUtc"] >= inv["startTimeUtc"]


def test_sarif_fingerprints_are_stable_across_runs(runs: Runs) -> None:
    def prints(out: Path) -> Counter[tuple[str, str]]:
        return Counter((r["ruleId"], r["partialFingerprints"][sarif_report.FINGERPRINT])
                       for r in sarif(out)["runs"][0]["results"])

    live, again = prints(runs.live), prints(runs.again)
    assert live == again
    # Distinct problems get distinct fingerprints: one per result, except a finding repeated
    # word for word (none in this lab).
    assert all(n == 1 for n in live.values()), [k for k, n in live.items() if n > 1]


def test_sarif_invocation_redacts_secrets_and_takes_the_exit_code() -> None:
    report = {"tool": {"version": "x"}, "verdict": "GO", "summary": {}, "devices": [], "clusters": {},
              "run": {"started": "2026-06-01T10:00:00+02:00", "finished": "2026-06-01T08:30:00.5+00:00"}}
    argv = ["trustscan", "scan", "--axl-password", "hunter2", "--api-token=abc123", "--profile", "p.toml",
            "--from", "https://admin:s3cret@cucm.example/evidence"]
    (inv,) = orjson.loads(sarif_report.render(report, command_line=argv, exit_code=2))["runs"][0]["invocations"]
    text = orjson.dumps(inv).decode()
    for secret in ("hunter2", "abc123", "s3cret"):
        assert secret not in text
    assert inv["exitCode"] == 2 and "--profile p.toml" in inv["commandLine"] and "admin:" in inv["commandLine"]
    assert inv["arguments"][0] == "scan"
    assert (inv["startTimeUtc"], inv["endTimeUtc"]) == ("2026-06-01T08:00:00.000Z", "2026-06-01T08:30:00.500Z")
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(orjson.loads(sarif_report.render(report, command_line=argv)))
    (plain,) = orjson.loads(sarif_report.render(report, command_line=[]))["runs"][0]["invocations"]
    assert "exitCode" not in plain and "commandLine" not in plain


def test_junit_counts_on_every_suite(runs: Runs) -> None:
    report = orjson.loads((runs.live / "report.json").read_bytes())
    root = ET.parse(runs.live / "junit.xml").getroot()
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["migration-readiness", "clusters"]
    for el in [root, *suites]:
        for attr in ("tests", "failures", "errors", "skipped"):
            assert el.get(attr) is not None and int(el.get(attr, "")) >= 0, (el.get("name"), attr)
    for s in suites:  # each suite's counts are its cases'
        cases = s.findall("testcase")
        assert int(s.get("tests", "")) == len(cases)
        assert int(s.get("failures", "")) == sum(c.find("failure") is not None for c in cases)
        assert int(s.get("skipped", "")) == sum(c.find("skipped") is not None for c in cases)
    c = report["summary"]["counts"]
    assert suites[0].get("failures") == str(c["NOT_READY"]) and suites[0].get("skipped") == str(c["UNKNOWN"])
    assert suites[1].get("tests") == str(len(report["clusters"]))
    assert root.get("tests") == str(len(report["devices"]) + len(report["clusters"]))


def test_clusters_suite_counts_a_cluster_blocker() -> None:
    from scanner.report.junit_report import render as junit

    finding = {"code": "SRC_ITL_INVALID", "severity": "BLOCKER", "message": "m", "evidence": {}}
    report = {"devices": [], "clusters": {"source": {"findings": [finding]}, "destination": {"findings": []}}}
    suite = ET.fromstring(junit(report)).findall("testsuite")[1]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")


@pytest.mark.parametrize(
    ("name", "doc"),
    [
        ("devices-line.schema.json", {"type": "device", "name": "SEPA"}),  # most keys missing
        ("devices-line.schema.json", {"type": "phone", "verdict": "GO", "total": 0, "counts": {}, "top_reasons": [],
                                      "cluster_blockers": [], "why": ""}),
        ("diff-record.schema.json", {"type": "phone", "name": "SEPA", "change": "broken", "old": "READY",
                                     "new": "NOT_READY", "old_reasons": [], "new_reasons": [], "extra": 1}),
        ("scan-summary.schema.json", {"verdict": "MAYBE", "summary": {}, "reports": {}, "exit_code": 0}),
        ("inspect.schema.json", {"path": "x", "kind": "pdf"}),
    ],
)
def test_schemas_refuse_what_is_not_an_output(name: str, doc: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate(doc, name)


def test_no_output_holds_a_password(runs: Runs) -> None:
    secrets = [p.read_text().strip() for p in sorted((runs.lab / "secrets").glob("*.password"))]
    if not secrets:
        pytest.skip("this lab has no AXL passwords")
    assert all(len(s) >= 8 for s in secrets)  # long enough not to occur by chance
    for out in (runs.live, runs.again, runs.other):
        for path in out.iterdir():
            if path.is_file():
                data = path.read_bytes()
                assert not any(s.encode() in data for s in secrets), path
    assert not any(s in orjson.dumps(runs.live_json).decode() for s in secrets)
