"""Builder and verifier: what is built parses back and verifies; tampering is caught."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core import trustlist as T
from scanner.core import verify as V
from scanner.core.filechecks import file_findings
from scanner.core.findings import Severity
from scanner.core.trustcache import TrustFileCache
from scanner.lab import builder as B
from tests import badcerts
from tests.pki import NOW, ec_key, make_cert, rsa_key, signer

TS = int(NOW.timestamp())


def _records(sig: B.Signer) -> list[B.RecordSpec]:
    tvs = make_cert("tvs1.example.com", rsa_key(2048, 1))
    capf = make_cert("CAPF-1234", rsa_key(1024, 2))
    ecc = make_cert("pub-EC.example.com", ec_key())
    return [
        B.RecordSpec(sig.certificate, T.Role.SAST, "pub", "10.0.0.1"),
        B.RecordSpec(sig.certificate, T.Role.CCM_TFTP, "pub", "10.0.0.1"),
        B.RecordSpec(tvs, T.Role.TVS, "tvs1", "10.0.0.2"),
        B.RecordSpec(capf, T.Role.CAPF, "pub"),
        B.RecordSpec(ecc, T.Role.CCM_TFTP, "pub-EC"),
    ]


CASES = [
    # (bits, digest, style, signer_version)
    (1024, T.Digest.SHA1, "cisco", None),
    (2048, T.Digest.SHA256, "cisco", (1, 1)),
    (2048, T.Digest.SHA512, "certutils", (1, 0)),
    (4096, T.Digest.SHA1, "certutils", None),
]


@pytest.mark.parametrize(("bits", "digest", "style", "signer_version"), CASES)
def test_build_parse_verify_roundtrip(bits: int, digest: T.Digest, style: Any, signer_version: Any) -> None:
    sig = signer(f"signer-{bits}", bits)
    specs = _records(sig)
    data = B.build_trust_list(
        sig, specs, filename="CTLFile.tlv", digest=digest, timestamp=TS, style=style, signer_version=signer_version
    )
    tf = T.parse(data, strict=True)
    h = tf.header
    assert tf.kind is T.Kind.CTL
    assert h.length % 4 == 0
    assert h.digest_code == digest
    assert h.signer_version == signer_version
    assert h.timestamp == TS
    assert h.signer_serial == V.serial_bytes(sig.certificate)
    assert h.signature is not None and len(h.signature) == bits // 8
    assert h.signature_modulus == B.MODULUS_CODES[bits]
    assert [r.role for r in tf.records] == [s.role for s in specs]
    assert [r.certificate for r in tf.records] == [
        s.certificate.public_bytes(serialization.Encoding.DER) for s in specs
    ]
    assert tf.records[-1].public_key is not None and tf.records[-1].public_key[0] == 0x04  # X9.62 point
    if style == "cisco":
        assert tf.records[0].ip_address == "10.0.0.1"
        assert tf.records[0].subject == f"CN=signer-{bits};OU=UC;O=Example Voice;C=US"
        assert [f.tag for f in tf.records[0].fields] == list(range(1, 11))
    else:
        assert tf.records[0].subject == f"C=US,O=Example Voice,OU=UC,CN=signer-{bits}"
        assert [f.tag for f in tf.records[0].fields] == [1, 3, 5, 6, 4, 7, 8, 9]
    assert T.serialize(tf) == data
    v = V.verify(tf)
    assert v.valid, v.reason
    assert v.signer is not None and v.signer.record_index == 0
    assert v.signer_has_sast_role and v.header_signer_in_file
    assert all(rc.problems == () for rc in v.records)


def test_sgn_verifies_with_trust_store_only() -> None:
    sig = signer("tftp1.example.com")
    data = B.build_signed_file(sig, b"<device/>", filename="SEP0011AABBCCDD.cnf.xml.sgn", timestamp=TS)
    tf = T.parse(data)
    assert tf.kind is T.Kind.SGN and tf.payload == b"<device/>"
    alone = V.verify(tf)
    assert not alone.valid and "no certificate" in alone.reason
    der = sig.certificate.public_bytes(serialization.Encoding.DER)
    store = V.TrustStore.from_files("CallManager-trust", [("tftp1.der", der)])
    v = V.verify(tf, [store])
    assert v.valid and v.signer is not None
    assert (v.signer.source, v.signer.store, v.signer.path) == ("trust-store", "CallManager-trust", "tftp1.der")
    assert not v.signer_has_sast_role


def test_tampering_breaks_the_signature() -> None:
    sig = signer()
    data = bytearray(B.build_trust_list(sig, _records(sig), timestamp=TS))
    data[-10] ^= 0xFF  # inside the last record's certificate/IP
    tf = T.parse(bytes(data))
    v = V.verify(tf)
    assert not v.valid
    assert "does not verify" in v.reason


def test_signer_without_sast_role_is_reported() -> None:
    sig = signer()
    other = make_cert("tvs9", rsa_key(2048, 1))
    data = B.build_trust_list(
        sig, [B.RecordSpec(sig.certificate, T.Role.CCM_TFTP), B.RecordSpec(other, T.Role.TVS)], timestamp=TS
    )
    v = V.verify(T.parse(data))
    assert v.valid and not v.signer_has_sast_role and not v.header_signer_in_file


def test_wrong_key_signer_in_file_fails() -> None:
    # The file names signer A (and holds A's record) but was signed by B: a real mismatch.
    a, b = signer("A"), signer("B", 1024)
    forged = B.build_trust_list(B.Signer(a.certificate, b.key), [B.RecordSpec(a.certificate, 0)], timestamp=TS)
    v = V.verify(T.parse(forged))
    assert not v.valid


def test_record_inconsistency_is_found() -> None:
    sig = signer()
    data = B.build_trust_list(sig, [B.RecordSpec(sig.certificate, T.Role.SAST)], timestamp=TS, style="certutils")
    tf = T.parse(data)
    rec = tf.records[0]
    fields = tuple(f._replace(value=b"\x01\x02") if f.tag == T.RecordTag.SERIAL_NUMBER else f for f in rec.fields)
    tf2 = dataclasses.replace(tf, records=(dataclasses.replace(rec, fields=fields),))
    problems = V.check_records(tf2)[0].problems
    assert any("serial" in p for p in problems)


def test_real_vectors_verify(vector_bytes: Callable[[str], bytes], trust_list_expected: dict[str, Any]) -> None:
    for name, exp in trust_list_expected.items():
        v = V.verify(T.parse(vector_bytes(name)))
        assert v.valid, (name, v.reason)
        assert v.signer is not None and v.signer.serial == exp["signature_valid_with_serial"]
        assert v.signer_has_sast_role


def test_expired_real_ctl_still_verifies(vector_bytes: Callable[[str], bytes]) -> None:
    v = V.verify(T.parse(vector_bytes("CTLFile-cucm-tokenless.tlv")))
    assert v.valid
    assert all(rc.facts is not None and rc.facts.expired(NOW) for rc in v.records)
    facts = v.records[0].facts
    assert facts is not None and (facts.key_type, facts.key_size) == ("RSA", 1024)


def test_name_key_matches_across_producers() -> None:
    cisco = "CN=gigantic-6.cisco.com;OU=VTG;O=Alpha;L=SJ;ST=CA;C=US"
    rfc = "C=US,ST=CA,L=SJ,O=Alpha,OU=VTG,CN=gigantic-6.cisco.com"
    assert V.name_key(cisco) == V.name_key(rfc)
    assert V.name_key('cn="SAST-ADN008580ef ";ou=IPCBU;o="Cisco Systems') == V.name_key(
        "CN=SAST-ADN008580ef,OU=IPCBU,O=Cisco Systems"
    )


def test_trust_store_errors_name_the_file() -> None:
    store = V.TrustStore.from_files("Phone-SAST-trust", [("junk.pem", b"-----BEGIN CERTIFICATE-----\nxx\n"), ("x.der", b"\x30\x01")])
    assert store.certs == ()
    assert [e.path for e in store.errors] == ["junk.pem", "x.der"]


def test_cache_verifies_identical_bytes_once() -> None:
    sig = signer()
    data = B.build_trust_list(sig, _records(sig), timestamp=TS)
    cache = TrustFileCache()
    results = {id(cache.check(bytes(bytearray(data)), name_hint=f"ITLSEP{i:012X}.tlv")) for i in range(50)}
    assert len(results) == 1
    assert (cache.misses, cache.hits) == (1, 49)
    bad = cache.check(b"junk")
    assert bad.error is not None and bad.file is None


def test_builder_refuses_unsupported_keys() -> None:
    key = rsa_key(3072, 0)
    cert = make_cert("odd", key)
    with pytest.raises(ValueError, match="3072"):
        B.build_trust_list(B.Signer(cert, key), [], timestamp=TS)


# -- Certificates a reader cannot use: findings, never exceptions (issue 9, part 2) --------------


def _itl_with_broken(how: str, *, broken_signer: bool) -> bytes:
    """An ITL signed by ``signer()`` whose SAST record (``broken_signer``) or whose TVS record
    carries a certificate cryptography cannot read."""
    sig = signer()
    tvs = badcerts.victim()
    if broken_signer:
        specs = [
            B.RecordSpec(tvs, T.Role.SAST, "pub", der_override=badcerts.broken_der(how, tvs)),
            B.RecordSpec(sig.certificate, T.Role.TVS),
        ]
        # The victim signs and the header names it; only its (broken) record holds its key, and
        # a record's bare key (tag 7) does not stand in for an unreadable certificate.
        return B.build_trust_list(B.Signer(tvs, rsa_key(1024, 2)), specs, timestamp=TS)
    specs = [
        B.RecordSpec(sig.certificate, T.Role.SAST, "pub"),
        B.RecordSpec(tvs, T.Role.TVS, "tvs1", der_override=badcerts.broken_der(how, tvs)),
    ]
    return B.build_trust_list(sig, specs, timestamp=TS)


@pytest.mark.parametrize("how", sorted(badcerts.MUTATIONS))
def test_broken_record_certificate_is_a_warning(how: str) -> None:
    tf = T.parse(_itl_with_broken(how, broken_signer=False))
    v = V.verify(tf)
    assert v.valid and v.signer is not None and v.signer.record_index == 0
    bad = [f for f in v.findings if f.code == "CERT_MALFORMED"]
    assert len(bad) == 1, v.findings
    assert bad[0].severity is Severity.WARNING
    assert bad[0].evidence["record"] == 1 and bad[0].evidence["reason"]
    assert v.records[1].facts is None and v.records[1].cert_error
    findings = file_findings(tf, v, NOW)
    assert [f.code for f in findings if f.code == "CERT_MALFORMED"] == ["CERT_MALFORMED"]


@pytest.mark.parametrize("how", sorted(badcerts.MUTATIONS))
def test_broken_signer_certificate_is_a_blocker(how: str) -> None:
    tf = T.parse(_itl_with_broken(how, broken_signer=True))
    v = V.verify(tf)
    assert not v.valid
    assert "record 0" in v.reason and "malformed" in v.reason
    bad = [(f.code, f.severity, f.evidence["record"]) for f in v.findings]
    assert bad == [("CERT_MALFORMED", Severity.BLOCKER, 0)]


@pytest.mark.parametrize("how", sorted(badcerts.MUTATIONS))
def test_read_certificate_never_raises(how: str) -> None:
    reading = V.read_certificate(badcerts.broken_der(how))
    assert not reading.ok and reading.cert is None and reading.facts is None and reading.error
    assert V.load_certificate(badcerts.broken_der(how)) is None
    good = V.read_certificate(badcerts.victim().public_bytes(serialization.Encoding.DER))
    assert good.ok and good.facts is not None and good.facts.serial == "1234567890"


@pytest.mark.parametrize("how", ["bad-version", "negative-serial", "unknown-key-oid"])
def test_trust_store_with_broken_certificate(how: str) -> None:
    der = badcerts.broken_der(how)
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
    store = V.TrustStore.from_files("CallManager-trust", [("bad.der", der), ("bad.pem", pem)])
    assert store.certs == ()
    assert [e.path for e in store.errors] == ["bad.der", "bad.pem"]
    sig = signer("tftp1.example.com")
    tf = T.parse(B.build_signed_file(sig, b"<device/>", filename="SEP0011AABBCCDD.cnf.xml.sgn", timestamp=TS))
    assert not V.verify(tf, [store]).valid


def test_scan_goes_on_with_a_broken_certificate_in_a_served_itl() -> None:
    """A served ITL whose signer's certificate cannot be read: the phone is judged (the ITL is
    invalid, the reason says why), nothing raises out of the evaluation."""
    from scanner.core.policy import default_policy
    from scanner.core.readiness import Evaluator
    from tests.fleet import Scenario, base_world

    w = base_world()
    broken = B.build_trust_list(
        w.s_pub,
        [
            B.RecordSpec(w.s_pub.certificate, T.Role.SAST, der_override=badcerts.bad_version(
                w.s_pub.certificate.public_bytes(serialization.Encoding.DER))),
            B.RecordSpec(w.s_pub.certificate, T.Role.CCM_TFTP, der_override=badcerts.not_der(
                w.s_pub.certificate.public_bytes(serialization.Encoding.DER))),
            B.RecordSpec(w.capf, T.Role.CAPF),
        ],
        timestamp=TS,
    )
    scan, phone = Scenario(overrides={("source", "s1", "ITLFile.tlv"): ("ok", broken)}).scan()
    result = Evaluator(scan, default_policy(), NOW, TrustFileCache()).phone(phone)
    invalid = [f for f in result.findings if f.code == "SRC_ITL_INVALID"]
    assert invalid and "malformed certificate" in invalid[0].message, result.findings


def test_certificate_warnings_are_recorded_not_raised() -> None:
    # cryptography warns (UserWarning) on a country name that is not 2 letters; the suite turns
    # warnings into errors, a scan prints them: the reading records them either way.
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = rsa_key(1024, 2)
    with pytest.warns(UserWarning, match="length"):
        name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "USAUSAUS", _validate=False)])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(7).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    reading = V.read_certificate(cert.public_bytes(serialization.Encoding.DER))
    assert reading.ok and reading.facts is not None, reading.error
    assert any("length" in w for w in reading.warnings), reading.warnings


def test_cache_turns_an_escaped_bug_into_an_unverified_file(monkeypatch: pytest.MonkeyPatch) -> None:
    import scanner.core.trustcache as TC

    def boom(*args: object, **kwargs: object) -> V.Verification:
        raise OverflowError("a bug")

    monkeypatch.setattr(TC, "verify", boom)
    sig = signer()
    a = TrustFileCache().check(B.build_trust_list(sig, _records(sig), timestamp=TS))
    assert a.file is not None and a.verification is not None and not a.verification.valid
    assert a.verification.reason.startswith(TC.INTERNAL_ERROR) and "OverflowError: a bug" in a.verification.reason


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_read_certificate_never_raises_on_mutated_der(data: st.DataObject) -> None:
    der = bytearray(badcerts.victim().public_bytes(serialization.Encoding.DER))
    for _ in range(data.draw(st.integers(1, 4))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    reading = V.read_certificate(bytes(der))
    assert reading.ok == (reading.facts is not None) == (reading.key is not None)
    assert reading.ok or reading.error


def test_an_empty_certificate_tag_offers_no_key() -> None:
    # Found in review: an empty tag 9 counted as "no certificate", so the record's bare tag-7 key
    # verified the file with no finding. Present and unreadable offers nothing.
    from tests.fleet import base_world

    w = base_world()
    data = B.build_trust_list(
        w.s_pub,
        [B.RecordSpec(w.s_pub.certificate, T.Role.SAST, der_override=b""), B.RecordSpec(w.capf, T.Role.CAPF)],
        timestamp=TS,
    )
    v = V.verify(T.parse(data), [])
    assert not v.valid
    assert any(f.code == "CERT_MALFORMED" for f in v.findings), v.findings


def test_one_bad_pem_block_keeps_the_bundles_other_certificates() -> None:
    # Found in review: one unreadable block dropped the whole file, so a good destination signer
    # beside it went missing from the store (a false DEST_SIGNER_UNTRUSTED).
    import base64

    from tests.fleet import base_world

    w = base_world()
    good = w.d_rec.certificate.public_bytes(serialization.Encoding.PEM)
    broken = badcerts.bad_version(w.s_pub.certificate.public_bytes(serialization.Encoding.DER))
    bad = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(broken) + b"-----END CERTIFICATE-----\n"
    store = V.TrustStore.from_files("Phone-SAST-trust", [("bundle.pem", bad + good)])
    assert [c.der for c in store.certs] == [w.d_rec.certificate.public_bytes(serialization.Encoding.DER)]
    assert len(store.errors) == 1 and store.errors[0].path == "bundle.pem"
