"""Evidence that is missing, damaged or refused never gives READY or NOT_READY (issue 9, part 4).

Unit tests on the in-memory world of tests/fleet.py: each gap in turn, each asserting the phone is
UNKNOWN with the finding that names the gap, where main gave a confident (wrong) verdict.
"""

from __future__ import annotations

from collections import Counter

import pytest

from scanner.core.findings import Severity
from scanner.core.policy import default_policy
from scanner.core.readiness import (
    DAMAGED,
    NOT_COLLECTED,
    CheckStatus,
    ClusterEvidence,
    Evaluator,
    PhoneResult,
    Readiness,
    Verdict,
    summarize,
)
from scanner.core.trustcache import TrustFileCache
from tests.fleet import NAME, TS, Scenario, World, base_world
from tests.pki import NOW


def run(sc: Scenario) -> tuple[PhoneResult, Evaluator]:
    scan, phone = sc.scan()
    ev = Evaluator(scan, default_policy(), NOW, TrustFileCache())
    return ev.phone(phone), ev


def test_tvs_never_probed_is_unknown_not_unreachable() -> None:
    # After Ctrl-C before the TVS probes ran, main said NOT_READY with TVS_UNREACHABLE.
    r, ev = run(Scenario(tvs_outcome=NOT_COLLECTED))
    assert r.readiness is Readiness.UNKNOWN, r.findings
    assert r.checks["C4"] is CheckStatus.UNKNOWN
    assert "TVS_UNREACHABLE" not in r.codes and "EVIDENCE_MISSING" in r.codes
    src = ev.cluster_results()[0]
    assert {f.code for f in src.findings} == {"EVIDENCE_MISSING"}


def test_tvs_outside_profile_is_never_unreachable() -> None:
    r, ev = run(Scenario(tvs_outcome="skipped"))
    assert r.readiness is Readiness.UNKNOWN
    assert "TVS_UNREACHABLE" not in r.codes
    assert "TVS_OUTSIDE_PROFILE" in {f.code for f in ev.cluster_results()[0].findings}


def test_one_tvs_probed_bad_another_never_probed_is_unknown() -> None:
    sc = Scenario()
    scan, phone = sc.scan()
    t0, t1 = scan.source.tvs
    tvs = (t0.__class__(t0.name, t0.address, t0.port, "refused"), t1.__class__(t1.name, t1.address, t1.port, NOT_COLLECTED))
    src = ClusterEvidence(scan.source.name, scan.source.mixed, scan.source.nodes, scan.source.files,
                          scan.source.trust_stores, tvs)
    ev = Evaluator(scan.__class__(src, scan.destination), default_policy(), NOW, TrustFileCache())
    r = ev.phone(phone)
    # Whether the phone needs TVS decides the stakes; either way, never FAIL on an unprobed member.
    assert r.checks["C4"] is not CheckStatus.FAIL, r.findings
    assert r.readiness is not Readiness.NOT_READY


def _dest_config(outcomes: dict[str, tuple[str, bytes | None]]) -> Scenario:
    w: World = base_world()
    over: dict[tuple[str, str, str], tuple[str, bytes | None]] = {}
    for node, value in outcomes.items():
        over[("destination", node, f"{NAME}.cnf.xml.sgn")] = value
    del w  # the overrides replace the healthy files
    return Scenario(overrides=over)


def test_destination_config_never_collected_is_not_unprovisioned() -> None:
    # d1 said not found, d2 was never asked (interrupted): main said DEST_NOT_PROVISIONED.
    sc = _dest_config({"d1": ("not_found", None), "d2": (NOT_COLLECTED, None)})
    r, _ = run(sc)
    assert "DEST_NOT_PROVISIONED" not in {f.code for f in r.findings if f.severity is Severity.BLOCKER}
    assert r.readiness is Readiness.UNKNOWN and "EVIDENCE_MISSING" in r.codes


def test_destination_config_blob_damaged_is_unknown() -> None:
    sc = _dest_config({"d1": (DAMAGED, None), "d2": (DAMAGED, None)})
    r, _ = run(sc)
    assert r.readiness is Readiness.UNKNOWN
    assert r.checks["C6"] is CheckStatus.UNKNOWN and "EVIDENCE_MISSING" in r.codes


def test_destination_plain_config_counts_when_signed_one_is_not_found() -> None:
    # A node that serves only SEP<MAC>.cnf.xml provisions the phone; main looked only at .sgn.
    sc = _dest_config({"d1": ("not_found", None), "d2": ("not_found", None)})
    sc.overrides[("destination", "d1", f"{NAME}.cnf.xml")] = ("ok", b"<device/>")
    sc.overrides[("destination", "d2", f"{NAME}.cnf.xml")] = ("not_found", None)
    r, _ = run(sc)
    assert "DEST_NOT_PROVISIONED" not in {f.code for f in r.findings if f.severity is Severity.BLOCKER}, r.findings


def test_generic_itl_never_collected_is_not_missing() -> None:
    # ITLSEP not found on every node and the nodes' ITLFile.tlv never collected: main said
    # SRC_ITL_MISSING (a blocker) from absent evidence.
    over: dict[tuple[str, str, str], tuple[str, bytes | None]] = {
        ("source", n, "ITLFile.tlv"): (NOT_COLLECTED, None) for n in ("s1", "s2")
    }
    r, _ = run(Scenario(overrides=over))
    assert "SRC_ITL_MISSING" not in r.codes
    assert r.readiness is Readiness.UNKNOWN and "EVIDENCE_MISSING" in r.codes


def test_refused_source_config_is_its_own_finding() -> None:
    # A config refused for its DTD (XXE, billion laughs) was reported as "FETCH_FAILED ... (ok)".
    w = base_world()
    from scanner.lab import builder as B

    evil = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<device><TVS><members><member><address>&x;</address></member></members></TVS></device>")
    over = {
        ("source", n, f"{NAME}.cnf.xml.sgn"): (
            "ok", B.build_signed_file(w.s_pub, evil, filename=f"{NAME}.cnf.xml.sgn", timestamp=TS))
        for n in ("s1", "s2")
    }
    r, _ = run(Scenario(overrides=over))
    refused = [f for f in r.findings if f.code == "CONFIG_REFUSED"]
    assert refused and refused[0].evidence["reason"] == "dtd", r.findings
    assert not any(f.code == "FETCH_FAILED" and "ok" in f.message for f in r.findings)


def test_node_that_says_not_found_far_more_than_its_peers() -> None:
    scan, _ = Scenario().scan()
    d = scan.destination
    dest = ClusterEvidence(d.name, d.mixed, d.nodes, d.files, d.trust_stores, d.tvs,
                           {"d1": (2, 100), "d2": (90, 100)})
    ev = Evaluator(scan.__class__(scan.source, dest), default_policy(), NOW, TrustFileCache())
    found = [f for f in ev.cluster_results()[1].findings if f.code == "NODE_NOT_FOUND_RATE"]
    assert [f.evidence["node"] for f in found] == ["d2"]
    # A fleet only partly provisioned, alike on every node, is not a sick node.
    dest = ClusterEvidence(d.name, d.mixed, d.nodes, d.files, d.trust_stores, d.tvs,
                           {"d1": (60, 100), "d2": (62, 100)})
    ev = Evaluator(scan.__class__(scan.source, dest), default_policy(), NOW, TrustFileCache())
    assert not [f for f in ev.cluster_results()[1].findings if f.code == "NODE_NOT_FOUND_RATE"]


def test_evidence_issues_keep_the_fleet_from_go() -> None:
    r, ev = run(Scenario())
    assert r.readiness is Readiness.READY
    s = summarize([r], ev.cluster_results(), default_policy(), evidence_issues=["the collection was interrupted"])
    assert s.verdict is Verdict.INCOMPLETE and "interrupted" in s.why
    counts = Counter({"READY": 1})
    assert summarize(counts, ev.cluster_results(), default_policy()).verdict is Verdict.GO


# --- Found in review: each of these gave PASS or FAIL from evidence that was not there ---------


def test_http_first_with_6970_down_judges_the_tftp_answer() -> None:
    # HTTP refused, then TFTP "not found" for every per-phone list: the final answer is "not
    # found" (the phone falls back to the generic list), not an unknown.
    import dataclasses

    scan, phone = Scenario().scan()
    files = []
    for f in phone.files:
        if f.name.startswith(("ITLSEP", "CTLSEP")):
            files.append(dataclasses.replace(f, outcome="refused", transport="http"))
            files.append(dataclasses.replace(f, outcome="not_found", transport="tftp"))
        else:
            files.append(f)
    ev = Evaluator(scan, default_policy(), NOW, TrustFileCache())
    assert ev.phone(dataclasses.replace(phone, files=tuple(files))).readiness is Readiness.READY


def test_both_transports_not_found_and_damaged_is_unknown() -> None:
    import dataclasses

    scan, phone = Scenario().scan()
    dfiles = []
    for f in scan.destination.files:
        if f.node == "d1" and f.name == "ITLFile.tlv":
            dfiles.append(dataclasses.replace(f, outcome="not_found", data=None, transport="http"))
            dfiles.append(dataclasses.replace(f, outcome=DAMAGED, data=None, transport="tftp"))
        else:
            dfiles.append(f)
    dst = dataclasses.replace(scan.destination, files=tuple(dfiles))
    r = Evaluator(scan.__class__(scan.source, dst), default_policy(), NOW, TrustFileCache()).phone(phone)
    assert r.readiness is Readiness.UNKNOWN and "DEST_ITL_INVALID" not in r.codes


def test_one_source_itl_never_collected_leaves_c3_unknown_in_mixed_mode() -> None:
    r, _ = run(Scenario(overrides={("source", "s2", "ITLFile.tlv"): (NOT_COLLECTED, None)}))
    assert r.checks["C3"] is CheckStatus.UNKNOWN and r.readiness is Readiness.UNKNOWN


def test_page_with_an_itl_but_no_hash_is_not_stale() -> None:
    from tests.fleet import page

    w = base_world()
    itl = w.files[("source", "s1", "ITLFile.tlv")]
    r, _ = run(Scenario(phone_page=page(itl, w.files[("source", "s1", "CTLFile.tlv")], itl_signature=None)))
    assert "PHONE_TRUST_STALE" not in r.codes and r.readiness is Readiness.UNKNOWN


def test_one_destination_config_never_collected_is_unknown() -> None:
    r, _ = run(Scenario(overrides={("destination", "d2", f"{NAME}.cnf.xml.sgn"): (NOT_COLLECTED, None)}))
    assert r.readiness is Readiness.UNKNOWN and r.checks["C6"] is CheckStatus.UNKNOWN


def test_destination_lists_never_collected_leave_c5_and_c7_unknown() -> None:
    over: dict[tuple[str, str, str], tuple[str, bytes | None]] = {
        ("destination", n, f): (NOT_COLLECTED, None) for n in ("d1", "d2") for f in ("ITLFile.tlv", "CTLFile.tlv")
    }
    r, _ = run(Scenario(overrides=over))
    assert r.checks["C5"] is CheckStatus.UNKNOWN and r.checks["C7"] is CheckStatus.UNKNOWN
    assert r.checks["C6"] is CheckStatus.UNKNOWN and "DEST_CONFIG_SIGNER_UNKNOWN" not in r.codes


def test_a_bug_in_verify_is_unknown_never_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    # trustcache turns an exception escaping verify into an unverified file; that used to read
    # as SRC_/DEST_*_INVALID (a blocker: NO_GO) for every phone. It is ANALYSIS_ERROR, unknown.
    import scanner.core.trustcache as tc

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(tc, "verify", broken)
    r, _ = run(Scenario())
    assert r.readiness is Readiness.UNKNOWN, r.findings
    assert "ANALYSIS_ERROR" in r.codes
    assert not any(f.severity is Severity.BLOCKER for f in r.findings)
