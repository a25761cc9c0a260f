"""Deterministic lab PKI: keys and self-signed certificates that depend only on (seed, label).

A lab built twice with the same seed must be byte-identical, so keys cannot come from OpenSSL's
random generator. RSA primes are found here with a seeded ``random.Random`` and Miller-Rabin; EC
keys are derived from a seeded integer; ECDSA certificate signatures use RFC 6979 deterministic
signing; RSA PKCS#1 v1.5 signatures are deterministic by nature.

Finding 1024-bit primes in Python takes ~0.4 s each, so generated keys are cached on disk (PEM,
keyed by a hash of seed, label and size) in ``$TRUSTSCAN_LAB_KEY_CACHE`` or
``$XDG_CACHE_HOME/trustscan/lab-keys``; set the variable to an empty string to disable the cache.
A cached key is the same key the generator would make, so the cache never changes the output.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import random
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["LAB_EPOCH", "CertAndKey", "KeyFactory", "make_ca_cert", "make_cert", "make_server_cert"]

# Every lab certificate starts here, so that builds on different days are identical.
LAB_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
# CUCM gives ITLRecovery 20 years on a fresh install; the lab gives every
# certificate 20 years so that a lab built today still works in a decade.
VALID_UNTIL = dt.datetime(2044, 1, 1, tzinfo=dt.UTC)
# The "expired signer" fault: a fixed date in the past (before the lab code was written).
EXPIRED_AT = dt.datetime(2025, 6, 30, tzinfo=dt.UTC)

_SMALL_PRIMES = [p for p in range(3, 20000, 2) if all(p % d for d in range(3, int(p**0.5) + 1, 2))]
_MR_ROUNDS = 24
_RSA_SIZES = (1024, 2048, 4096)
_CURVES: dict[str, ec.EllipticCurve] = {"secp256r1": ec.SECP256R1(), "secp384r1": ec.SECP384R1()}


def _rng(seed: str, label: str) -> random.Random:
    digest = hashlib.sha256(f"trustscan-lab\0{seed}\0{label}".encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _probable_prime(n: int, rng: random.Random) -> bool:
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(_MR_ROUNDS):
        a = rng.randrange(2, n - 1)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, rng: random.Random, e: int) -> int:
    while True:
        # Top two bits set so that p*q has exactly 2*bits bits; odd.
        n = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if (n - 1) % e and _probable_prime(n, rng):
            return n


def deterministic_rsa_key(seed: str, label: str, bits: int) -> rsa.RSAPrivateKey:
    if bits not in _RSA_SIZES:
        raise ValueError(f"RSA key size {bits}: use one of {_RSA_SIZES}")
    rng = _rng(seed, f"rsa{bits}:{label}")
    e = 65537
    while True:
        p = _prime(bits // 2, rng, e)
        q = _prime(bits // 2, rng, e)
        if p != q and (p * q).bit_length() == bits:
            break
    if p < q:
        p, q = q, p
    phi = (p - 1) * (q - 1)
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=d % (p - 1),
        dmq1=d % (q - 1),
        iqmp=pow(q, -1, p),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    )
    return numbers.private_key()


def deterministic_ec_key(seed: str, label: str, curve: str) -> ec.EllipticCurvePrivateKey:
    c = _CURVES[curve]
    rng = _rng(seed, f"ec-{curve}:{label}")
    order_bits = c.key_size
    value = rng.getrandbits(order_bits - 1) | 1
    return ec.derive_private_key(value, c)


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _cache_dir() -> Path | None:
    env = os.environ.get("TRUSTSCAN_LAB_KEY_CACHE")
    if env is not None:
        return Path(env) if env else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trustscan" / "lab-keys"


class KeyFactory:
    """Keys by (seed, label): made once, remembered in memory and in the disk cache."""

    def __init__(self, seed: str, cache_dir: Path | str | None = "default") -> None:
        self.seed = seed
        self._cache = _cache_dir() if cache_dir == "default" else (Path(cache_dir) if cache_dir else None)
        self._memory: dict[tuple[str, str], PrivateKey] = {}

    def key(self, label: str, kind: str) -> PrivateKey:
        """``kind`` is ``rsa1024``/``rsa2048``/``rsa4096`` or an EC curve name (``secp256r1``)."""
        ident = (label, kind)
        if ident in self._memory:
            return self._memory[ident]
        digest = hashlib.sha256(f"{self.seed}\0{label}\0{kind}".encode()).hexdigest()[:32]
        path = self._cache / f"{kind}-{digest}.pem" if self._cache is not None else None
        key: PrivateKey | None = None
        if path is not None and path.is_file():
            try:
                loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except ValueError:
                loaded = None
            if isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                key = loaded
        if key is None:
            if kind.startswith("rsa"):
                key = deterministic_rsa_key(self.seed, label, int(kind[3:]))
            elif kind in _CURVES:
                key = deterministic_ec_key(self.seed, label, kind)
            else:
                raise ValueError(f"unknown key kind {kind!r}")
            if path is not None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(f".tmp{os.getpid()}")
                    tmp.write_bytes(
                        key.private_bytes(
                            serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption(),
                        )
                    )
                    tmp.replace(path)
                except OSError:
                    pass  # a read-only home only costs time
        self._memory[ident] = key
        return key


@dataclass(frozen=True, slots=True)
class CertAndKey:
    certificate: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def rsa_key(self) -> rsa.RSAPrivateKey:
        if not isinstance(self.key, rsa.RSAPrivateKey):
            raise TypeError("this certificate has an EC key; trust files are signed with RSA keys only")
        return self.key


def make_cert(
    key: PrivateKey,
    *,
    common_name: str,
    organization: str,
    unit: str,
    serial: int,
    not_before: dt.datetime = LAB_EPOCH,
    not_after: dt.datetime = VALID_UNTIL,
    issuer: CertAndKey | None = None,
    ca: bool = False,
) -> x509.Certificate:
    """A CUCM-style certificate (self-signed unless ``issuer``), its name in DER order C, ST, L, O,
    OU, CN (the trust files print CN first regardless: see the "cisco" name style in builder.py)."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NZ"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Auckland"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Auckland"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    signer_key = issuer.key if issuer is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if isinstance(signer_key, ec.EllipticCurvePrivateKey):
        return builder.sign(signer_key, hashes.SHA256(), ecdsa_deterministic=True)
    return builder.sign(signer_key, hashes.SHA256())


def _ski(key: PrivateKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def _sign(builder: x509.CertificateBuilder, key: PrivateKey) -> x509.Certificate:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    return builder.sign(key, hashes.SHA256())


def make_ca_cert(key: PrivateKey, *, common_name: str, organization: str, serial: int) -> x509.Certificate:
    """A self-signed CA in the shape strict X.509 checkers want (basic constraints and key usage
    critical, a subject key identifier): the lab's stand-in for the CA that signs the clusters'
    tomcat certificates (CUCM's "CA-signed tomcat", which is what a verifying client needs)."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NZ"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(LAB_EPOCH)
        .not_valid_after(VALID_UNTIL)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(_ski(key), critical=False)
    )
    return _sign(builder, key)


def make_server_cert(
    key: PrivateKey,
    *,
    common_name: str,
    organization: str,
    unit: str,
    serial: int,
    issuer: CertAndKey,
    addresses: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = (),
) -> x509.Certificate:
    """A TLS server certificate (a CUCM tomcat certificate) signed by ``issuer``, valid for exactly
    the IP ``addresses`` and ``dns_names`` in its subject alternative name: a client that checks
    host names accepts it at those and nowhere else."""
    if not addresses and not dns_names:
        raise ValueError("a server certificate needs at least one address or DNS name")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NZ"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    san: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    san += [x509.DNSName(d) for d in dns_names]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(LAB_EPOCH)
        .not_valid_after(VALID_UNTIL)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(_ski(key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    )
    return _sign(builder, issuer.key)


def serial_for(seed: str, label: str) -> int:
    """A 16-byte positive certificate serial, the size CUCM gives its certificates' serials."""
    return _rng(seed, f"serial:{label}").getrandbits(127) | (1 << 120)
