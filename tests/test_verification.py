"""After a cutover: MIGRATED / STUCK / NOT_MOVED / UNKNOWN per phone from the same evidence a scan
collects (scanner.core.verification), and the fleet's outcome. No sockets: the in-memory world of
tests/fleet.py, whose nodes are s1/s2 (source) and d1/d2 (destination)."""

from __future__ import annotations

import dataclasses

import pytest

from scanner.core.readiness import FileEvidence
from scanner.core.verification import FleetOutcome, Migration, judge, served_lists, summarize
from tests.fleet import Scenario, page, status

SRC_TFTP = ("127.50.0.1", "127.50.0.2")
DST_TFTP = ("127.50.10.1",)


def _world() -> tuple[object, object, dict[tuple[str, str, str], bytes]]:
    scan, phone = Scenario().scan()
    files = {(f.cluster, f.node, f.name): f.data for c in (scan.source, scan.destination) for f in c.files if f.data}
    return scan, phone, files  # type: ignore[return-value]


def _judge(itl_from: str | None, ctl_from: str | None, tftp: tuple[str, ...], *, failed: bool = False,
           broken_node: bool = False) -> tuple[Migration, tuple[str, ...]]:
    scan, phone, files = _world()
    node = {"source": "s1", "destination": "d1"}
    itl = files[(itl_from, node[itl_from], "ITLFile.tlv")] if itl_from in node else (b"foreign" if itl_from else None)
    ctl = files[(ctl_from, node[ctl_from], "CTLFile.tlv")] if ctl_from in node else None
    ev = dataclasses.replace(phone, page=page(itl, ctl, tftp_servers=tftp), page_outcome="ok",  # type: ignore[arg-type]
                             status=status(failed))
    src_ev, dst_ev = scan.source, scan.destination  # type: ignore[attr-defined]
    if broken_node:
        dst_ev = dataclasses.replace(dst_ev, files=(*dst_ev.files, FileEvidence("destination", "d3", "ITLFile.tlv", "timeout")))
    src, dst = served_lists(src_ev, SRC_TFTP), served_lists(dst_ev, DST_TFTP)
    r = judge(ev, src, dst)
    return r.outcome, r.reasons


@pytest.mark.parametrize(
    ("itl", "ctl", "tftp", "failed", "outcome", "words"),
    [
        ("destination", "destination", DST_TFTP, False, Migration.MIGRATED, "holds the destination"),
        ("source", "source", SRC_TFTP[:1], False, Migration.NOT_MOVED, "source's TFTP"),
        ("source", "source", DST_TFTP, False, Migration.STUCK, "still holds the source"),
        ("source", "source", DST_TFTP, True, Migration.STUCK, "failure"),
        ("destination", "source", DST_TFTP, False, Migration.STUCK, "the destination's ITL but the source's CTL"),
        ("destination", "destination", ("10.9.9.9",), False, Migration.STUCK, "neither cluster lists"),
        ("destination", "destination", SRC_TFTP[:1], False, Migration.STUCK, "uses the source's TFTP"),
        ("foreign", None, DST_TFTP, False, Migration.STUCK, "neither cluster serves"),
        ("destination", "destination", (), False, Migration.UNKNOWN, "no TFTP server"),
    ],
)
def test_each_outcome_with_its_reason(itl: str, ctl: str | None, tftp: tuple[str, ...], failed: bool,
                                      outcome: Migration, words: str) -> None:
    got, reasons = _judge(itl, ctl, tftp, failed=failed)
    assert got is outcome and any(words in r for r in reasons), reasons


def test_lists_that_match_nothing_are_unknown_while_a_node_could_not_be_read() -> None:
    got, reasons = _judge("foreign", None, DST_TFTP, broken_node=True)
    assert got is Migration.UNKNOWN and "could not be read" in reasons[0]


@pytest.mark.parametrize("message", ["File Not Found <SEP112233445566.cnf.xml.sgn>",
                                     "SEP112233445566.cnf.xml.sgn verification failed"])
def test_new_lists_without_a_configuration_are_stuck(message: str) -> None:
    from scanner.core.phonepage import StatusMessage

    scan, phone, files = _world()
    st = status(False)
    st = dataclasses.replace(st, messages=(*st.messages, StatusMessage("10:00:00", message, None)))
    ev = dataclasses.replace(phone, page=page(files[("destination", "d1", "ITLFile.tlv")],  # type: ignore[arg-type]
                                              files[("destination", "d1", "CTLFile.tlv")], tftp_servers=DST_TFTP),
                             page_outcome="ok", status=st)
    r = judge(ev, served_lists(scan.source, SRC_TFTP), served_lists(scan.destination, DST_TFTP))  # type: ignore[attr-defined]
    assert r.outcome is Migration.STUCK and "no configuration" in r.reasons[0] and message in r.reasons[0]


def test_no_page_is_unknown_never_migrated() -> None:
    scan, phone, _ = _world()
    ev = dataclasses.replace(phone, page=None, page_outcome="timeout", page_detail="no answer in 10 s")  # type: ignore[arg-type]
    r = judge(ev, served_lists(scan.source, SRC_TFTP), served_lists(scan.destination, DST_TFTP))  # type: ignore[attr-defined]
    assert r.outcome is Migration.UNKNOWN and "no answer in 10 s" in r.reasons[0]


def test_fleet_outcome() -> None:
    scan, phone, _ = _world()
    src, dst = served_lists(scan.source, SRC_TFTP), served_lists(scan.destination, DST_TFTP)  # type: ignore[attr-defined]
    make = {o: dataclasses.replace(judge(phone, src, dst), outcome=o) for o in Migration}  # type: ignore[arg-type]
    assert summarize([make[Migration.MIGRATED], make[Migration.NOT_MOVED]]).outcome is FleetOutcome.DONE
    assert summarize([make[Migration.NOT_MOVED]] * 3).outcome is FleetOutcome.NOT_STARTED  # nothing moved yet
    assert summarize([make[Migration.MIGRATED], make[Migration.UNKNOWN]]).outcome is FleetOutcome.INCOMPLETE
    s = summarize([make[Migration.UNKNOWN], make[Migration.STUCK]])
    assert s.outcome is FleetOutcome.STUCK and s.counts["STUCK"] == 1 and s.total == 2


def test_prediction_diff_names_the_phones_the_scan_did_not_foresee(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    import orjson

    from scanner.cli.main import main

    def dev(name: str, readiness: str, codes: list[str]) -> dict[str, object]:
        return {"name": name, "readiness": readiness, "codes": codes}

    def out(name: str, outcome: str, reason: str) -> dict[str, object]:
        return {"name": name, "outcome": outcome, "reasons": [reason], "facts": {}}

    d = Path(str(tmp_path))
    (d / "report.json").write_bytes(orjson.dumps({"schema_version": 1, "devices": [
        dev("SEP000000000001", "READY", []), dev("SEP000000000002", "READY", []),
        dev("SEP000000000003", "NOT_READY", ["TVS_UNREACHABLE"]), dev("SEP000000000004", "NOT_READY", ["X"]),
        dev("SEP000000000005", "UNKNOWN", []), dev("SEP000000000006", "READY", [])]}))
    (d / "verification.json").write_bytes(orjson.dumps({"verification_version": 1, "devices": [
        out("SEP000000000001", "MIGRATED", "ok"), out("SEP000000000002", "STUCK", "update failed"),
        out("SEP000000000003", "MIGRATED", "ok"), out("SEP000000000004", "STUCK", "update failed"),
        out("SEP000000000005", "STUCK", "x"), out("SEP000000000007", "NOT_MOVED", "x")]}))
    assert main(["diff", str(d / "report.json"), str(d / "verification.json"), "--json"]) == 1
    records = [orjson.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["verdict"]) for r in records[:-1]] == [("SEP000000000002", "missed"), ("SEP000000000003", "overcautious")]
    s = records[-1]
    assert s["type"] == "prediction_summary" and s["counts"] == {"agree": 2, "missed": 1, "overcautious": 1, "untested": 1}
    assert (s["only_in_scan"], s["only_in_verification"]) == (1, 1)
    (d / "v2.json").write_bytes(orjson.dumps({"verification_version": 1, "devices": [out("SEP000000000001", "MIGRATED", "ok")]}))
    assert main(["diff", str(d / "report.json"), str(d / "v2.json")]) == 0
    assert "Result: AGREE" in capsys.readouterr().err
