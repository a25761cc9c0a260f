"""Certificates a reader cannot use, made by changing one byte of a good certificate's DER.

Each keeps the DER length, so it can replace a record's certificate (tag 9) in place. They are
what the issue saw from real phones and fuzzing: cryptography raises ``InvalidVersion`` on load,
warns and then overflows on a negative serial, raises ``UnsupportedAlgorithm`` on ``public_key()``
for an unknown key OID, and ``ValueError`` when the bytes are not DER at all.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.pki import make_cert, rsa_key


def _replace_once(der: bytes, old: bytes, new: bytes) -> bytes:
    i = der.index(old)
    return der[:i] + new + der[i + len(old) :]


def bad_version(der: bytes) -> bytes:
    # TBSCertificate [0] EXPLICIT INTEGER 2 (v3) -> 5: no such X.509 version.
    return _replace_once(der, bytes.fromhex("a003020102"), bytes.fromhex("a003020105"))


def negative_serial(der: bytes) -> bytes:
    # The serial made by make_cert(serial=0x1234567890) (5 content bytes): set its sign bit.
    return _replace_once(der, bytes.fromhex("02051234567890"), bytes.fromhex("02059234567890"))


def unknown_key_oid(der: bytes) -> bytes:
    # rsaEncryption 1.2.840.113549.1.1.1 in the SubjectPublicKeyInfo -> 1.2.840.113549.1.1.127.
    # (The signature algorithm is sha256WithRSAEncryption, ...1.1.11: this OID occurs once.)
    return _replace_once(der, bytes.fromhex("06092a864886f70d0101010500"), bytes.fromhex("06092a864886f70d01017f0500"))


def not_der(der: bytes) -> bytes:
    return b"\x04" + der[1:]  # an OCTET STRING, not a SEQUENCE


MUTATIONS: dict[str, Callable[[bytes], bytes]] = {
    "bad-version": bad_version,
    "negative-serial": negative_serial,
    "unknown-key-oid": unknown_key_oid,
    "not-der": not_der,
}


def victim(cn: str = "tvs-broken.example.com") -> x509.Certificate:
    """A good certificate whose serial ``negative_serial`` knows how to find."""
    return make_cert(cn, rsa_key(1024, 2), serial=0x1234567890)


def broken_der(how: str, cert: x509.Certificate | None = None) -> bytes:
    der = (cert or victim()).public_bytes(serialization.Encoding.DER)
    out = MUTATIONS[how](der)
    assert len(out) == len(der) and out != der
    return out
