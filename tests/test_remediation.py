"""remediation.csv: one list of what to do, from a scan or a verification."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from scanner.cli.main import main
from scanner.report import remediation
from tests.pki import NOW
from tests.test_scan_reports import write_world


def _f(code: str, severity: str, **evidence: Any) -> dict[str, Any]:
    return {"code": code, "severity": severity, "message": "", "evidence": evidence}


REPORT = {
    "clusters": {
        "source": {"findings": [_f("TVS_UNREACHABLE", "WARNING", address="10.0.0.3:2445", tvs="10.0.0.3"),
                                _f("SRC_ROLLBACK_ACTIVE", "INFO")]},
        "destination": {"findings": [_f("DEST_SIGNER_NOT_PHONE_SAST", "WARNING", node="dst-pub", subject="CN=dst-pub",
                                        serial="0a0b", store="Phone-SAST-trust")]},
    },
    "devices": [
        {"name": "SEP000000000001", "readiness": "READY", "codes": [], "findings": []},
        {"name": "SEP000000000002", "readiness": "NOT_READY", "codes": ["TVS_UNREACHABLE", "PHONE_TRUST_STALE"],
         "findings": [_f("TVS_UNREACHABLE", "BLOCKER"), _f("PHONE_TRUST_STALE", "BLOCKER", file="ITL")]},
        {"name": "SEP000000000003", "readiness": "NOT_READY", "codes": ["DEST_SIGNER_NOT_PHONE_SAST"],
         "findings": [_f("DEST_SIGNER_NOT_PHONE_SAST", "BLOCKER", node="dst-pub"), _f("TVS_UNREACHABLE", "BLOCKER")]},
        {"name": "SEP000000000004", "readiness": "UNKNOWN", "codes": ["PHONE_EVIDENCE_MISSING"],
         "findings": [_f("PHONE_EVIDENCE_MISSING", "WARNING", unknown=True)]},
    ],
}


def test_cluster_actions_first_then_every_phone_that_is_not_ready() -> None:
    rows = remediation.from_report(REPORT)
    assert [r["order"] for r in rows] == list(range(1, len(rows) + 1))
    cluster = [r for r in rows if r["scope"] == "cluster"]
    assert [r["code"] for r in cluster] == ["TVS_UNREACHABLE", "DEST_SIGNER_NOT_PHONE_SAST", "restart TVS"]
    assert "CN=dst-pub (serial 0a0b)" in cluster[1]["action"] and "Phone-SAST-trust" in cluster[1]["action"]
    assert "every source node" in cluster[2]["action"]  # the seed's step 6, after any import
    assert cluster[0]["phones"] == 2 and cluster[1]["phones"] == 1  # the most phones held back first
    phones = {(r["target"], r["code"]): r for r in rows if r["scope"] == "phone"}
    assert set(t for t, _ in phones) == {"SEP000000000002", "SEP000000000003", "SEP000000000004"}
    assert "delete the CTL and ITL" in phones[("SEP000000000002", "PHONE_TRUST_STALE")]["action"]
    assert "cluster action(s) 1" in phones[("SEP000000000002", "TVS_UNREACHABLE")]["action"]
    assert "web access" in phones[("SEP000000000004", "PHONE_EVIDENCE_MISSING")]["action"]
    assert not any(r["code"] == "SRC_ROLLBACK_ACTIVE" for r in rows)  # INFO: nothing to do


def test_verification_rows_for_stuck_and_unknown_phones() -> None:
    doc = {"devices": [
        {"name": "SEP000000000001", "outcome": "MIGRATED", "reasons": []},
        {"name": "SEP000000000002", "outcome": "STUCK", "reasons": ["the phone's last trust-list event is a failure: 'x'"]},
        {"name": "SEP000000000003", "outcome": "STUCK", "reasons": ["uses TFTP server(s) 10.9.9.9, which neither cluster lists"]},
        {"name": "SEP000000000004", "outcome": "UNKNOWN", "reasons": ["no network page"]},
        {"name": "SEP000000000005", "outcome": "NOT_MOVED", "reasons": []},
    ]}
    rows = {r["target"]: r for r in remediation.from_verification(doc)}
    assert set(rows) == {"SEP000000000002", "SEP000000000003", "SEP000000000004"}
    assert "delete the CTL and ITL" in rows["SEP000000000002"]["action"]
    assert "option 150" in rows["SEP000000000003"]["action"]


def test_a_scan_writes_it_beside_the_matrix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ev, inventory = write_world(tmp_path)
    inv = tmp_path / "inventory.csv"
    inv.write_text("Device Name,IP Address\n" + "".join(f"{p.name},{p.ip}\n" for p in inventory))
    main(["scan", "--profile", str(tmp_path / "profile.toml"), "--inventory", str(inv), "--from", str(ev),
          "--no-history", "--now", NOW.isoformat(), "--out", str(tmp_path / "out")])
    assert "remediation" in capsys.readouterr().err
    report = orjson.loads((tmp_path / "out" / "report.json").read_bytes())
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "remediation.csv").read_text())))
    not_ready = {d["name"] for d in report["devices"] if d["readiness"] != "READY"}
    assert not_ready and not_ready <= {r["target"] for r in rows if r["scope"] == "phone"}
    page = (tmp_path / "out" / "report.html").read_text()
    assert 'id="fix-it"' in page and rows[0]["action"].split(" (")[0][:40] in page.replace("&#39;", "'")


def test_the_page_has_the_fix_it_list() -> None:
    from scanner.report.html_report import fix_list

    fixes = fix_list(REPORT)
    assert [r["code"] for r in fixes["cluster"]][-1] == "restart TVS"
    groups = {g["code"]: g for g in fixes["phones"]}
    assert groups["PHONE_TRUST_STALE"]["count"] == 1 and groups["PHONE_TRUST_STALE"]["phones"] == ["SEP000000000002"]
