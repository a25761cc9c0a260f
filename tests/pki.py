"""Small PKI for tests: RSA/EC certificates made once per session (key generation is slow)."""

from __future__ import annotations

import datetime as dt
import functools

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from scanner.lab.builder import Signer

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@functools.cache
def rsa_key(bits: int = 2048, which: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(which: int = 0) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_cert(
    cn: str,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    issuer_key: rsa.RSAPrivateKey | None = None,
    issuer_cn: str | None = None,
    days: int = 3650,
    start: dt.datetime = NOW - dt.timedelta(days=30),
    serial: int | None = None,
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Voice"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "UC"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    issuer = name if issuer_cn is None else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)])
    signing_key = issuer_key or key
    assert isinstance(signing_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .sign(signing_key, hashes.SHA256())
    )


@functools.cache
def signer(cn: str = "ITLRecovery_pub", bits: int = 2048) -> Signer:
    key = rsa_key(bits, hash(cn) % 3)
    return Signer(make_cert(cn, key), key)
