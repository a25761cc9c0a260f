"""Evidence directory -> analysis -> every report format, without a network.

The evidence is written with the collector's own writer from the in-memory world of
tests/fleet.py, so the adapter (scanner.app.assemble) and the writers are tested on real bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from scanner.app.analysis import AnalysisOptions, analyse
from scanner.cli.main import main
from scanner.core.errors import ParseError
from scanner.core.evidence import Attempt, Outcome
from scanner.core.inventory import Phone
from scanner.core.policy import default_policy
from scanner.core.profile import parse_profile
from scanner.report import html_report
from scanner.report.diff import diff, rows_from_report
from scanner.report.schema import render as render_schema
from scanner.report.schema import report_schema
from scanner.store.evidence import EvidenceWriter
from tests.fleet import MAC, NAME, base_world, der
from tests.pki import NOW

PROFILE = b"""
[clusters.source]
mode = "mixed"
trust_stores = { "Phone-SAST-trust" = "trust/src/Phone-SAST-trust", "CallManager-trust" = "trust/src/CallManager-trust" }
[[clusters.source.tftp]]
name = "s1"
address = "127.1.0.1"
[[clusters.source.tftp]]
name = "s2"
address = "127.1.0.2"
[[clusters.source.tvs]]
name = "tvs0"
address = "127.1.0.11"
[clusters.destination]
mode = "mixed"
[[clusters.destination.tftp]]
name = "d1"
address = "127.2.0.1"
[[clusters.destination.tftp]]
name = "d2"
address = "127.2.0.2"
[phones]
web_port = 8080
"""

EVIL = "<script>alert(1)</script>"


def page_html(itl_sha1: str, ctl_sha1: str, model: str = "CP-8841") -> bytes:
    def spaced(h: str) -> str:
        return " ".join(h[i : i + 2].upper() for i in range(0, len(h), 2))

    return (
        f"<html><body><h2>Network setup</h2><b>Cisco IP Phone {model}</b><table>"
        f"<tr><td>Host name</td><td>{NAME}</td></tr>"
        f"<tr><td>Security mode</td><td>Non secure</td></tr>"
        f"<tr><td>CTL file</td><td>Installed</td></tr><tr><td>CTL signature</td><td>{spaced(ctl_sha1)}</td></tr>"
        f"<tr><td>ITL file</td><td>Installed</td></tr><tr><td>ITL signature</td><td>{spaced(itl_sha1)}</td></tr>"
        f"</table></body></html>"
    ).encode()


def write_world(root: Path, *, phones: int = 3, evil_phone: bool = True) -> tuple[Path, list[Phone]]:
    w = base_world()
    from scanner.core.trustlist import FileDigests

    for store, certs in (
        ("Phone-SAST-trust", [w.d_rec.certificate, *(s.certificate for s in w.d_cm)]),
        ("CallManager-trust", [s.certificate for s in w.d_cm]),
    ):
        d = root / "trust" / "src" / store
        d.mkdir(parents=True)
        for i, c in enumerate(certs):
            (d / f"{i}.der").write_bytes(der(c))
    (root / "profile.toml").write_bytes(PROFILE)
    ev = root / "evidence"
    names = [NAME] + [f"SEP{MAC[:-2]}{i:02X}" for i in range(1, phones)]
    with EvidenceWriter(ev) as wr:

        def put(phone: str | None, cluster: str | None, node: str | None, transport: str, name: str,
                data: bytes | None, outcome: Outcome = Outcome.OK, address: str | None = None) -> None:
            blob = wr.store(data) if data is not None else None
            import hashlib

            sha = hashlib.sha256(data).hexdigest() if data is not None else None
            wr.record(Attempt(phone=phone, cluster=cluster, node=node, transport=transport, file=name,
                              outcome=outcome, size=None if data is None else len(data), sha256=sha,
                              duration=0.01, address=address, blob=blob))

        for (cluster, node, fname), data in w.files.items():
            if fname in ("CTLFile.tlv", "ITLFile.tlv"):
                put(None, cluster, node, "http", fname, data)
        for t, addr in zip(w.tvs, ("127.1.0.11", "127.1.0.12"), strict=True):
            put(None, "source", addr, "tvs", "server-certificate", der(t), address=f"{addr}:2445")
        itl = w.files[("source", "s1", "ITLFile.tlv")]
        ctl = w.files[("source", "s1", "CTLFile.tlv")]
        for i, name in enumerate(names):
            for (cluster, node, fname), data in w.files.items():
                if fname.startswith(NAME):
                    # Every phone gets the same config bytes (a test shortcut; names differ).
                    put(name, cluster, node, "http", fname.replace(NAME, name), data)
                if fname in ("CTLFile.tlv", "ITLFile.tlv") and cluster == "source":
                    put(name, cluster, node, "http", fname[:3] + name + ".tlv", None, Outcome.NOT_FOUND)
            if i == 1:
                put(name, None, "127.100.0.2", "web", "network-setup", None, Outcome.DISABLED)
            else:
                html = page_html(FileDigests.of(itl).sha1, FileDigests.of(ctl).sha1,
                                 model=EVIL if (evil_phone and i == 2) else "CP-8841")
                put(name, None, f"127.100.0.{i + 1}", "web", "network-setup", html)
        wr.close({"tool": "trustscan", "profile": {"sha256": "0" * 64}})
    inventory = [
        Phone(n, "desk", "Cisco 8841", f"127.100.0.{i + 1}", EVIL if (evil_phone and i == 2) else "DP-<b>HQ</b>")
        for i, n in enumerate(names)
    ]
    inventory.append(Phone("SEP00000000FFFF", "never collected", "Cisco 7945", "127.100.9.9", "DP-X"))
    return ev, inventory


def run_analysis(tmp_path: Path, **kw: Any) -> Any:
    ev, inventory = write_world(tmp_path)
    profile = parse_profile(PROFILE, base_dir=tmp_path, path=tmp_path / "profile.toml")
    opts = AnalysisOptions(profile=profile, evidence=ev, out=tmp_path / "out", policy=default_policy(),
                           now=NOW, inventory=inventory, history=tmp_path / "h.sqlite", **kw)
    return analyse(opts)


def test_reports_from_evidence(tmp_path: Path) -> None:
    outcome = run_analysis(tmp_path)
    report = outcome.report
    written = orjson.loads((tmp_path / "out" / "report.json").read_bytes())
    jsonschema.validate(written, report_schema())
    # The outcome's rows are read back from devices.jsonl (scanner/report/rows.py): the same report.
    assert report == written and list(report["devices"]) == written["devices"]
    by = {d["name"]: d for d in report["devices"]}
    assert by[NAME]["readiness"] == "READY", by[NAME]["findings"]
    assert by[f"SEP{MAC[:-2]}01"]["readiness"] == "UNKNOWN"
    assert by[f"SEP{MAC[:-2]}01"]["reasons"] == ["PHONE_EVIDENCE_MISSING"]
    # In the inventory but never collected: still in the report, UNKNOWN, never READY.
    assert by["SEP00000000FFFF"]["readiness"] == "UNKNOWN"
    assert report["verdict"] == "INCOMPLETE"
    assert report["summary"]["counts"] == {"READY": 2, "NOT_READY": 0, "UNKNOWN": 2}
    assert any("another profile" in w for w in outcome.warnings)
    # The committed schema is what the code defines.
    committed = Path(__file__).resolve().parents[1] / "schema" / "report.schema.json"
    assert committed.read_bytes() == render_schema(), "run: python -m scanner.report.schema > schema/report.schema.json"

    lines = (tmp_path / "out" / "devices.jsonl").read_bytes().splitlines()
    objs = [orjson.loads(x) for x in lines]
    assert [o["type"] for o in objs] == ["device"] * 4 + ["summary"]
    assert objs[-1]["verdict"] == "INCOMPLETE"

    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "matrix.csv").read_text())))
    assert [r["device"] for r in rows] == [d["name"] for d in report["devices"]]
    assert rows[0]["C1"] == "PASS" and rows[1]["reasons"] == "PHONE_EVIDENCE_MISSING"

    html = (tmp_path / "out" / "report.html").read_text()
    assert EVIL not in html and "<b>HQ</b>" not in html  # escaped everywhere
    assert "\\u003cscript\\u003e" in html
    assert "http://" not in html.replace("http-equiv", "") and "https://" not in html  # fetches nothing


def test_scan_from_evidence_cli_and_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ev, inventory = write_world(tmp_path)
    inv = tmp_path / "inventory.csv"
    inv.write_text("Device Name,Description,Device Type,IP Address,Device Pool\n" + "".join(
        f"{p.name},{p.description},{p.device_type},{p.ip},DP-HQ\n" for p in inventory
    ))
    args = ["scan", "--profile", str(tmp_path / "profile.toml"), "--inventory", str(inv), "--from", str(ev),
            "--history", str(tmp_path / "h.sqlite"), "--now", NOW.isoformat()]
    assert main([*args, "--out", str(tmp_path / "r1")]) == 2  # INCOMPLETE
    err = capsys.readouterr().err
    assert "Verdict: INCOMPLETE" in err and "report.html" in err
    assert main([*args, "--out", str(tmp_path / "r2"), "--format", "json,sarif,junit"]) == 2
    assert not (tmp_path / "r2" / "report.html").exists()
    sarif = orjson.loads((tmp_path / "r2" / "report.sarif").read_bytes())
    assert sarif["version"] == "2.1.0"
    assert "PHONE_EVIDENCE_MISSING" in {r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    import xml.etree.ElementTree as ET

    suite = ET.parse(tmp_path / "r2" / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("skipped") == "2" and suite.get("failures") == "0"
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "r3"), "--format", "pdf"])
    assert main(["diff", str(tmp_path / "r1" / "report.json"), str(tmp_path / "r2" / "report.json")]) == 0
    assert "No phone changed" in capsys.readouterr().out
    assert main(["diff", "--history", str(tmp_path / "h.sqlite"), "history:previous", "history:latest"]) == 0
    capsys.readouterr()


def test_diff_lists_changes_and_refuses_other_versions(tmp_path: Path) -> None:
    old = {"schema_version": 1, "devices": [{"name": "SEPA", "readiness": "READY", "reasons": []},
                                           {"name": "SEPB", "readiness": "UNKNOWN", "reasons": ["X"]}]}
    new = {"schema_version": 1, "devices": [{"name": "SEPA", "readiness": "NOT_READY", "reasons": ["PHONE_TRUST_STALE"]},
                                           {"name": "SEPC", "readiness": "READY", "reasons": []}]}
    changes = {c.name: c.kind for c in diff(rows_from_report(old, "o"), rows_from_report(new, "n"))}
    assert changes == {"SEPA": "broken", "SEPB": "removed", "SEPC": "added"}
    with pytest.raises(ParseError, match="schema version 9"):
        rows_from_report({"schema_version": 9, "devices": []}, "future.json")


def test_corrupt_history_is_recreated(tmp_path: Path) -> None:
    (tmp_path / "h.sqlite").write_bytes(b"this is not sqlite" * 100)
    outcome = run_analysis(tmp_path)
    assert any("unreadable" in w for w in outcome.warnings)
    assert outcome.history_run == 1
    assert list(tmp_path.glob("h.sqlite.corrupt-*"))


def test_missing_trust_store_is_unknown_not_a_crash(tmp_path: Path) -> None:
    ev, inventory = write_world(tmp_path, evil_phone=False)
    import shutil

    shutil.rmtree(tmp_path / "trust" / "src" / "Phone-SAST-trust")
    profile = parse_profile(PROFILE, base_dir=tmp_path, path=tmp_path / "profile.toml")
    out = analyse(AnalysisOptions(profile=profile, evidence=ev, out=tmp_path / "o", policy=default_policy(),
                                  now=NOW, inventory=inventory[:1], history=None))
    d = out.report["devices"][0]
    assert d["readiness"] == "UNKNOWN" and "TRUST_STORE_MISSING" in d["codes"]
    assert d["checks"]["C5"] == "UNKNOWN"
    assert any("Phone-SAST-trust" in w for w in out.warnings)


def test_html_handles_many_rows_quickly() -> None:
    devices = [
        {"name": f"SEP{i:012X}", "model": "CP-8841", "ip": None, "device_pool": "DP", "readiness": "READY",
         "checks": dict.fromkeys(("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"), "PASS"),
         "reasons": [], "codes": [], "findings": [], "facts": {}}
        for i in range(10_000)
    ]
    report = {"verdict": "GO", "summary": {"total": 10_000, "counts": {"READY": 10_000, "NOT_READY": 0, "UNKNOWN": 0},
                                           "why": "ok", "top_reasons": [], "cluster_blockers": []},
              "devices": devices, "clusters": {"source": {"findings": []}, "destination": {"findings": []}},
              "tool": {"version": "x", "kernel": "python"}, "run": {"started": dt.datetime.now(dt.UTC).isoformat()},
              "policy": {}}
    html = html_report.render(report)
    assert html.count("SEP") >= 10_000 and len(html) < 8_000_000


def test_inventory_issues_reach_report_json_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ev, inventory = write_world(tmp_path, evil_phone=False)
    inv = tmp_path / "inventory.csv"
    inv.write_text("Device Name,IP Address\n" + "".join(f"{p.name},{p.ip}\n" for p in inventory)
                   + "SEP00112233,127.0.0.9\nCSFJDOE,\n" + f"{inventory[0].name},127.0.0.1\n")
    args = ["scan", "--profile", str(tmp_path / "profile.toml"), "--inventory", str(inv), "--from", str(ev),
            "--no-history", "--now", NOW.isoformat(), "--out", str(tmp_path / "r")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "warning: inventory:" in err
    report = orjson.loads((tmp_path / "r" / "report.json").read_bytes())
    jsonschema.validate(report, report_schema())
    n = len(inventory) + 2
    issues = report["run"]["inventory_issues"]
    assert len(issues) == 3
    assert issues[0].startswith(f"{inv}: line {n}") and "invalid MAC" in issues[0]
    assert f"line {n + 1}" in issues[1] and "not MAC-based" in issues[1]
    assert f"line {n + 2}" in issues[2] and "duplicate device" in issues[2]
    assert report["run"]["inventory"] == str(inv) and len(report["run"]["inventory_sha256"]) == 64
    html = (tmp_path / "r" / "report.html").read_text()
    section = html.split('<ul class="inventory-issues">', 1)[1].split("</ul>", 1)[0]
    assert section.count("<li>") == 3
    assert f"line {n + 1}" in section and "&#39;CSFJDOE&#39;" in section


def test_html_inventory_issues_none() -> None:
    report = {"verdict": "GO", "summary": {"total": 0, "counts": {"READY": 0, "NOT_READY": 0, "UNKNOWN": 0},
                                           "why": "ok", "top_reasons": [], "cluster_blockers": []},
              "devices": [], "clusters": {}, "tool": {"version": "x", "kernel": "python"},
              "run": {"inventory_issues": []}, "policy": {}}
    html = html_report.render(report)
    assert "inventory issues (rows left out)</dt><dd>none</dd>" in html
    report["run"] = {"inventory_issues": ['inv.csv: line 3: say "hi" \\ <b>']}
    html = html_report.render(report)
    assert '<li>inv.csv: line 3: say &#34;hi&#34; \\ &lt;b&gt;</li>' in html
