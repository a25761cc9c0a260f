"""Readiness checks on a small in-memory world: one fault at a time, each with its code."""

from __future__ import annotations

import pytest

from scanner.core.findings import Severity
from scanner.core.policy import default_policy, parse_policy
from scanner.core.readiness import CheckStatus, Evaluator, PhoneResult, Readiness, Verdict, summarize
from scanner.core.trustcache import TrustFileCache
from scanner.core.trustlist import Digest, Role
from scanner.lab import builder as B
from tests.fleet import NAME, TS, Scenario, World, base_world, page
from tests.pki import NOW, make_cert, rsa_key


def run(sc: Scenario) -> tuple[PhoneResult, Evaluator]:
    scan, phone = sc.scan()
    ev = Evaluator(scan, default_policy(), NOW, TrustFileCache())
    return ev.phone(phone), ev


def test_healthy_phone_is_ready() -> None:
    r, ev = run(Scenario())
    assert r.readiness is Readiness.READY, r.findings
    assert all(r.checks[c] is CheckStatus.PASS for c in ("C1", "C2", "C3", "C4", "C5", "C6", "C7")), r.checks
    assert r.checks["C8"] is CheckStatus.UNKNOWN  # no destination stores given: advisory only
    assert r.codes == []
    assert r.facts["held_itl_node"] == "s1"
    s = summarize([r], ev.cluster_results(), default_policy())
    assert s.verdict is Verdict.GO


def test_itlrecovery_not_imported() -> None:
    w = base_world()
    r, ev = run(Scenario(sast_store=[s.certificate for s in w.d_cm]))
    assert r.readiness is Readiness.NOT_READY
    assert "ITLRECOVERY_NOT_IMPORTED" in r.codes and r.checks["C5"] is CheckStatus.FAIL
    dest = ev.cluster_results()[1]
    # The CTL's signer needs TVS; the ITL is then verified by the new CTL (the seed's step 9), so
    # the one certificate to import is named once, for the CTL.
    assert {f.evidence["file"] for f in dest.findings if f.code == "ITLRECOVERY_NOT_IMPORTED"} == {"CTLFile.tlv"}
    assert summarize([r], ev.cluster_results(), default_policy()).verdict is Verdict.NO_GO


def test_dest_signer_in_callmanager_trust_only() -> None:
    w = base_world()
    r, _ = run(Scenario(sast_store=[s.certificate for s in w.d_cm], cm_store=[w.d_rec.certificate]))
    assert "DEST_SIGNER_NOT_PHONE_SAST" in r.codes


def test_dest_not_mixed_itl_signer_untrusted() -> None:
    # Destination not in mixed mode (no CTL), source mixed: the CTL stays, and with the ITL signer
    # missing from the store the ITL is refused too.
    other = make_cert("not-the-signer", rsa_key(1024, 3))
    r, _ = run(Scenario(dst_mixed=False, sast_store=[other], cm_store=[other]))
    assert {"SRC_CTL_WITHOUT_DEST_CTL", "ITLRECOVERY_NOT_IMPORTED"} <= set(r.codes)


def test_stale_itl_on_the_phone() -> None:
    stale = page(b"some other ITL bytes", base_world().files[("source", "s1", "CTLFile.tlv")])
    r, _ = run(Scenario(phone_page=stale))
    assert r.readiness is Readiness.NOT_READY
    assert "PHONE_TRUST_STALE" in r.codes and r.checks["C2"] is CheckStatus.FAIL


def test_trust_update_failed_status() -> None:
    r, _ = run(Scenario(status_failed=True))
    assert "PHONE_TRUST_UPDATE_FAILED" in r.codes and r.readiness is Readiness.NOT_READY


@pytest.mark.parametrize("outcome", ["disabled", "timeout", "refused"])
def test_phone_page_missing_is_unknown(outcome: str) -> None:
    r, ev = run(Scenario(page_outcome=outcome))
    assert r.readiness is Readiness.UNKNOWN
    assert r.codes == ["PHONE_EVIDENCE_MISSING"]
    assert r.reasons == ["PHONE_EVIDENCE_MISSING"]
    assert summarize([r], ev.cluster_results(), default_policy()).verdict is Verdict.INCOMPLETE


def test_page_without_trust_fields_is_unknown_not_absent() -> None:
    r, _ = run(Scenario(phone_page=page(None, None, itl_installed=None, ctl_installed=None)))
    assert r.readiness is Readiness.UNKNOWN and "PHONE_EVIDENCE_MISSING" in r.codes


def test_trust_on_first_use() -> None:
    r, _ = run(Scenario(phone_page=page(None, None), sast_store=[], cm_store=[]))
    assert r.readiness is Readiness.READY
    assert r.codes == ["PHONE_TRUST_ON_FIRST_USE"]


def test_tvs_down_blocks_when_tvs_is_needed() -> None:
    r, ev = run(Scenario(tvs_outcome="refused"))
    assert r.readiness is Readiness.NOT_READY and "TVS_UNREACHABLE" in r.codes
    assert r.checks["C4"] is CheckStatus.FAIL
    assert any(f.code == "TVS_UNREACHABLE" for f in ev.cluster_results()[0].findings)


def test_tvs_timeout_is_unknown_by_default() -> None:
    r, _ = run(Scenario(tvs_outcome="timeout"))
    assert r.readiness is Readiness.UNKNOWN and r.checks["C4"] is CheckStatus.UNKNOWN


def test_tvs_cert_not_in_itl() -> None:
    r, _ = run(Scenario(tvs_cert=make_cert("rogue-tvs", rsa_key(1024, 0))))
    assert "TVS_CERT_NOT_IN_ITL" in r.codes and r.readiness is Readiness.NOT_READY


def test_dest_not_provisioned() -> None:
    over = {("destination", n, f"{NAME}.cnf.xml.sgn"): ("not_found", None) for n in ("d1", "d2")}
    r, _ = run(Scenario(overrides=over))
    assert "DEST_NOT_PROVISIONED" in r.codes and r.checks["C6"] is CheckStatus.FAIL


def test_dest_config_signed_by_unknown_key() -> None:
    from scanner.lab import builder as B

    stranger = B.Signer(make_cert("stranger", rsa_key(1024, 0)), rsa_key(1024, 0))
    bad = B.build_signed_file(stranger, World.config(), filename=f"{NAME}.cnf.xml.sgn", timestamp=1)
    r, _ = run(Scenario(overrides={("destination", "d1", f"{NAME}.cnf.xml.sgn"): ("ok", bad)}))
    assert "DEST_CONFIG_SIGNER_UNKNOWN" in r.codes


def test_fetch_timeouts_are_unknown_not_failures() -> None:
    over = {("destination", n, f"{NAME}.cnf.xml.sgn"): ("timeout", None) for n in ("d1", "d2")}
    r, _ = run(Scenario(overrides=over))
    assert r.readiness is Readiness.UNKNOWN
    assert r.codes == ["FETCH_FAILED"]
    finding = next(f for f in r.findings if f.code == "FETCH_FAILED")
    assert finding.evidence["reasons"] == ["timeout"]


def test_src_itl_invalid_and_missing() -> None:
    w = base_world()
    itl = bytearray(w.files[("source", "s1", "ITLFile.tlv")])
    itl[-5] ^= 0x55
    over = {("source", "s1", "ITLFile.tlv"): ("ok", bytes(itl))}
    r, _ = run(Scenario(overrides=over))
    assert "SRC_ITL_INVALID" in r.codes
    gone = {("source", n, "ITLFile.tlv"): ("not_found", None) for n in ("s1", "s2")}
    r2, _ = run(Scenario(overrides=gone))
    assert "SRC_ITL_MISSING" in r2.codes


def test_sha512_for_a_model_that_cannot_verify_it() -> None:
    w = base_world()
    w512 = World(w.s_pub, w.s_sub, w.tvs, w.capf, w.d_rec, w.d_cm, digest=Digest.SHA512)
    w512.build()
    r, _ = run(Scenario(world=w512, model="CP-7945G"))
    assert "DIGEST_UNSUPPORTED" in r.codes and r.readiness is Readiness.NOT_READY
    r_ok, _ = run(Scenario(world=w512, model="CP-8841"))
    assert r_ok.readiness is Readiness.READY


def test_expired_destination_signer_at_cutover() -> None:
    policy = parse_policy(b"cutover = 2040-01-01\n")
    scan, phone = Scenario().scan()
    r = Evaluator(scan, policy, NOW, TrustFileCache()).phone(phone)
    assert "CERT_EXPIRED" in r.codes and r.checks["C7"] is CheckStatus.FAIL
    assert any(f.severity is Severity.BLOCKER for f in r.findings if f.code == "CERT_EXPIRED")


def test_rollback_in_mixed_mode_source_blocks() -> None:
    from scanner.core.trustlist import Role
    from scanner.lab import builder as B

    w = base_world()
    blank = B.build_trust_list(w.s_pub, [B.RecordSpec(w.capf, Role.CAPF), B.RecordSpec(w.s_pub.certificate, Role.SAST)], timestamp=5)
    over = {("source", n, "ITLFile.tlv"): ("ok", blank) for n in ("s1", "s2")}
    ctl = w.files[("source", "s1", "CTLFile.tlv")]
    r, _ = run(Scenario(overrides=over, phone_page=page(blank, ctl)))
    assert "SRC_MIXED_MODE_ROLLBACK" in r.codes and r.checks["C3"] is CheckStatus.FAIL
    # Non-mixed source with the blank ITL on the phone: the rollback path makes it READY.
    r2, _ = run(Scenario(overrides=over, src_mixed=False, phone_page=page(blank, None), sast_store=[], cm_store=[]))
    assert r2.readiness is Readiness.READY, r2.findings
    assert "SRC_ROLLBACK_ACTIVE" in r2.codes


def test_policy_rejects_unknown_keys() -> None:
    from scanner.core.errors import ParseError

    with pytest.raises(ParseError, match="bogus"):
        parse_policy(b"bogus = 1\n", path="p.toml")
    with pytest.raises(ParseError, match="go_threshold"):
        parse_policy(b"go_threshold = 2\n")


def test_axl_rollback_parameter_and_mode_are_weighed_beside_the_files() -> None:
    """C3 with AXL: the rollback parameter set while the nodes still serve the normal ITL is a
    warning (the files decide C3; the parameter says they are about to change); a profile mode
    that AXL contradicts is said; AXL that agrees adds nothing."""
    import dataclasses

    from scanner.core.cucm.axl import ClusterSettings

    scan, phone = Scenario().scan()

    def with_axl(src: ClusterSettings | None, dst: ClusterSettings | None) -> list[str]:
        s = dataclasses.replace(scan, source=dataclasses.replace(scan.source, axl_settings=src),
                                destination=dataclasses.replace(scan.destination, axl_settings=dst))
        ev = Evaluator(s, default_policy(), NOW, TrustFileCache())
        r = ev.phone(phone)
        assert r.readiness is Readiness.READY, r.findings  # warnings only
        return sorted(f.code for c in ev.cluster_results() for f in c.findings)

    assert with_axl(ClusterSettings(True, False), ClusterSettings(True, None)) == []
    assert with_axl(None, None) == []
    assert with_axl(ClusterSettings(True, True), None) == ["SRC_ROLLBACK_PENDING"]
    assert with_axl(ClusterSettings(True, False), ClusterSettings(False, False)) == ["CLUSTER_MODE_MISMATCH"]


# --- What a phone holds that the source no longer serves (the oracle's findings, docs/lab.md) --------


def test_stale_ctl_is_a_warning_the_phone_migrates_through_tvs() -> None:
    # A CTL only lets the phone trust a signer directly: with a stale one it asks TVS, which it
    # reaches with its current ITL (spec section 1, step 1).
    w = base_world()
    stale = page(w.files[("source", "s1", "ITLFile.tlv")], b"a CTL from before the certificate change")
    r, _ = run(Scenario(phone_page=stale))
    assert r.readiness is Readiness.READY, r.findings
    assert r.checks["C2"] is CheckStatus.WARN
    f = next(f for f in r.findings if f.code == "PHONE_TRUST_STALE")
    assert f.severity is Severity.WARNING and f.evidence["file"] == "CTL"
    # ... and TVS is then what the migration rests on: TVS down blocks it.
    r2, _ = run(Scenario(phone_page=stale, tvs_outcome="refused"))
    assert r2.readiness is Readiness.NOT_READY and r2.checks["C4"] is CheckStatus.FAIL


def _broken(data: bytes) -> bytes:
    b = bytearray(data)
    b[-5] ^= 0x55
    return bytes(b)


def test_refused_per_phone_itl_the_phone_keeps_the_generic_one() -> None:
    # The source serves the phone a broken ITLSEP<MAC>.tlv; the phone refused it and still holds
    # the node's generic ITL (its page shows that hash): the broken file warns, the phone is ready.
    w = base_world()
    mine = f"ITL{NAME}.tlv"
    over = {("source", n, mine): ("ok", _broken(w.files[("source", n, "ITLFile.tlv")])) for n in ("s1", "s2")}
    r, _ = run(Scenario(overrides=over))
    assert r.readiness is Readiness.READY, r.findings
    assert r.checks["C1"] is CheckStatus.WARN and r.checks["C2"] is CheckStatus.WARN
    invalid = [f for f in r.findings if f.code == "SRC_ITL_INVALID"]
    assert invalid and all(f.severity is Severity.WARNING and f.evidence["held"] is False for f in invalid)
    stale = next(f for f in r.findings if f.code == "PHONE_TRUST_STALE")
    assert stale.severity is Severity.WARNING and stale.evidence["held"] == "ITLFile.tlv"
    assert r.facts["held_itl_node"] == "s1"


def test_phone_showing_the_broken_per_phone_itl_is_blocked() -> None:
    # Its page shows the hash of the broken file itself: it holds (or reports) what does not verify.
    w = base_world()
    mine = f"ITL{NAME}.tlv"
    broken = {n: _broken(w.files[("source", n, "ITLFile.tlv")]) for n in ("s1", "s2")}
    over = {("source", n, mine): ("ok", b) for n, b in broken.items()}
    shown = page(broken["s1"], w.files[("source", "s1", "CTLFile.tlv")])
    r, _ = run(Scenario(overrides=over, phone_page=shown))
    assert r.readiness is Readiness.NOT_READY and r.checks["C1"] is CheckStatus.FAIL
    assert any(f.code == "SRC_ITL_INVALID" and f.severity is Severity.BLOCKER for f in r.findings)


def _pre12_world(sub_itl_signer_in_ctl: bool) -> tuple[Scenario, Scenario]:
    """Destination before 12.0: each node signs its ITL with its CallManager certificate; the
    source's Phone-SAST-trust lacks the second node's. Returns (mixed, non-secure) scenarios."""
    w = base_world()
    sub = w.d_cm[1]
    itl = B.build_trust_list(
        sub, [B.RecordSpec(sub.certificate, Role.SAST), B.RecordSpec(sub.certificate, Role.CCM_TFTP)],
        timestamp=TS,
    )
    over = {("destination", "d2", "ITLFile.tlv"): ("ok", itl)}
    if not sub_itl_signer_in_ctl:
        ctl = B.build_trust_list(
            w.d_rec, [B.RecordSpec(w.d_rec.certificate, Role.SAST), B.RecordSpec(w.d_cm[0].certificate, Role.CCM_TFTP)],
            filename="CTLFile.tlv", timestamp=TS,
        )
        over |= {("destination", n, "CTLFile.tlv"): ("ok", ctl) for n in ("d1", "d2")}
    sast = [w.d_rec.certificate, w.d_cm[0].certificate]
    itl_src = w.files[("source", "s1", "ITLFile.tlv")]
    return (
        Scenario(overrides=over, sast_store=sast, cm_store=sast),
        Scenario(overrides=over, sast_store=sast, cm_store=sast, src_mixed=False, dst_mixed=False,
                 phone_page=page(itl_src, None)),
    )


def test_destination_itl_vouched_for_by_the_new_ctl() -> None:
    # The seed's step 9: the phone verifies the destination's ITL against the CTL it has just
    # accepted, which holds the node's CallManager certificate (CCM+TFTP): no TVS, no import needed.
    mixed, non_secure = _pre12_world(sub_itl_signer_in_ctl=True)
    r, ev = run(mixed)
    assert r.readiness is Readiness.READY, r.findings
    assert not any(f.code == "DEST_SIGNER_UNTRUSTED" for f in ev.cluster_results()[1].findings)
    # Without a CTL the phone has only TVS for that ITL, and TVS does not know its signer.
    r2, ev2 = run(non_secure)
    assert r2.readiness is Readiness.NOT_READY and r2.checks["C5"] is CheckStatus.FAIL
    untrusted = [f for f in ev2.cluster_results()[1].findings if f.code == "DEST_SIGNER_UNTRUSTED"]
    assert [(f.evidence["node"], f.evidence["file"]) for f in untrusted] == [("d2", "ITLFile.tlv")]


def test_destination_itl_signer_missing_from_the_ctl_still_needs_tvs() -> None:
    mixed, _ = _pre12_world(sub_itl_signer_in_ctl=False)
    r, _ = run(mixed)
    assert r.readiness is Readiness.NOT_READY and "DEST_SIGNER_UNTRUSTED" in r.codes
