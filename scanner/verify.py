"""Signatures and certificates of trust files (spec/trust-files.md §2): the only module that
uses cryptography's primitives.

A file's signature is RSA PKCS#1 v1.5 over the whole file with the signature TLV cut out, with
the digest of header tag 8. The signer is looked for by serial (and issuer) among the SAST
records, then among all records, then in trust stores the caller gives; the result says which
certificate verified and whether it holds role SAST in the file — the two questions a phone asks.

No I/O: trust stores are built from bytes (``TrustStore.from_files``); reading directories is the
caller's job (``scanner.storeio``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from scanner.errors import ParseError
from scanner.trustlist import Digest, Record, Role, TrustFile

_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    Digest.SHA1: hashes.SHA1,
    Digest.SHA256: hashes.SHA256,
    Digest.SHA512: hashes.SHA512,
}

# Parsed certificates are shared across every file that embeds them (a fleet holds a handful of
# distinct certificates thousands of times); the cap bounds memory against hostile inputs.
_CERT_CACHE_SIZE = 4096
_cert_cache: OrderedDict[bytes, x509.Certificate | None] = OrderedDict()
_cert_lock = threading.Lock()


def load_certificate(der: bytes) -> x509.Certificate | None:
    """A DER certificate, parsed once per process; ``None`` when it is not a certificate."""
    with _cert_lock:
        if der in _cert_cache:
            _cert_cache.move_to_end(der)
            return _cert_cache[der]
    try:
        cert: x509.Certificate | None = x509.load_der_x509_certificate(der)
    except ValueError:
        cert = None
    with _cert_lock:
        _cert_cache[der] = cert
        if len(_cert_cache) > _CERT_CACHE_SIZE:
            _cert_cache.popitem(last=False)
    return cert


def serial_bytes(cert: x509.Certificate) -> bytes:
    """The serial as trust files store it: big-endian magnitude bytes (§1.7)."""
    n = cert.serial_number
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


_NAME_SPLIT = re.compile(r"\s*[;,]\s*")


def name_key(name: str | None) -> frozenset[tuple[str, str]]:
    """A comparable form of a distinguished name as producers write it: Cisco's ``;``-joined
    CN-first, certutils' comma-joined DER order, eToken lower-case keys with quotes (§1.7)."""
    if not name:
        return frozenset()
    parts = set()
    for item in _NAME_SPLIT.split(name.strip().strip("\x00")):
        if "=" not in item:
            continue
        key, _, value = item.partition("=")
        parts.add((key.strip().lower(), value.strip().strip('"').strip().lower()))
    return frozenset(parts)


def cert_name(name: x509.Name) -> str:
    """RFC 4514 form, for display only (never compared as a string)."""
    return name.rfc4514_string()


@dataclass(frozen=True, slots=True)
class CertFacts:
    subject: str
    issuer: str
    serial: str
    key_type: str
    key_size: int | None
    not_before: dt.datetime
    not_after: dt.datetime
    sha1: str
    sha256: str
    self_signed: bool

    def expired(self, now: dt.datetime) -> bool:
        return now > self.not_after

    def expires_within(self, now: dt.datetime, window: dt.timedelta) -> bool:
        return now <= self.not_after <= now + window


def cert_facts(cert: x509.Certificate) -> CertFacts:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key_type, key_size = "RSA", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_type, key_size = f"EC-{key.curve.name}", key.curve.key_size
    else:
        key_type, key_size = type(key).__name__.removesuffix("PublicKey") or "unknown", None
    der = cert.public_bytes(serialization.Encoding.DER)
    return CertFacts(
        subject=cert_name(cert.subject),
        issuer=cert_name(cert.issuer),
        serial=serial_bytes(cert).hex(),
        key_type=key_type,
        key_size=key_size,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha1=hashlib.sha1(der, usedforsecurity=False).hexdigest(),
        sha256=hashlib.sha256(der).hexdigest(),
        self_signed=cert.issuer == cert.subject,
    )


# --- Trust stores -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredCert:
    store: str
    path: str
    der: bytes
    cert: x509.Certificate = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class TrustStore:
    """Certificates an administrator exported (PEM or DER files), e.g. ``Phone-SAST-trust``."""

    name: str
    certs: tuple[StoredCert, ...]
    errors: tuple[ParseError, ...] = ()

    @classmethod
    def from_files(cls, name: str, files: Iterable[tuple[str, bytes]]) -> TrustStore:
        """Build a store from ``(path, bytes)`` pairs; a file may hold several PEM blocks.
        Unreadable files become ``errors`` naming the path, never an exception."""
        certs: list[StoredCert] = []
        errors: list[ParseError] = []
        for path, data in files:
            try:
                loaded = _load_cert_file(data)
            except ParseError as exc:
                errors.append(exc.with_path(path))
                continue
            for der, cert in loaded:
                certs.append(StoredCert(name, path, der, cert))
        return cls(name, tuple(certs), tuple(errors))

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256(self.name.encode())
        for c in self.certs:
            h.update(c.der)
        return h.hexdigest()

    def find(self, serial: bytes | None, issuer: str | None) -> list[StoredCert]:
        if serial is None:
            return []
        key = name_key(issuer)
        out = []
        for c in self.certs:
            if serial_bytes(c.cert) != serial:
                continue
            if (
                key
                and name_key(cert_name(c.cert.issuer)) != key
                and not _cisco_name_match(key, c.cert.issuer)
            ):
                continue
            out.append(c)
        return out

    def contains(self, der: bytes) -> bool:
        return any(c.der == der for c in self.certs)


def _cisco_name_match(key: frozenset[tuple[str, str]], name: x509.Name) -> bool:
    """Cisco writes names with short keys (CN, OU, O, L, ST, C) and may drop other attributes;
    accept when every attribute Cisco wrote is in the certificate's name."""
    cert_key = name_key(cert_name(name))
    return bool(key) and key <= cert_key


_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.*?)-----END CERTIFICATE-----", re.S)


def _load_cert_file(data: bytes) -> list[tuple[bytes, x509.Certificate]]:
    if b"-----BEGIN" in data:
        out = []
        for m in _PEM_BLOCK.finditer(data):
            try:
                cert = x509.load_pem_x509_certificate(m.group(0))
            except ValueError as exc:
                raise ParseError(f"bad PEM certificate: {exc}", m.start()) from None
            out.append((cert.public_bytes(serialization.Encoding.DER), cert))
        if not out:
            raise ParseError("no PEM certificate block in the file", 0)
        return out
    cert_or_none = load_certificate(data)
    if cert_or_none is None:
        raise ParseError("neither a PEM nor a DER certificate", 0)
    return [(data, cert_or_none)]


# --- Verification -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignerMatch:
    """The certificate whose key verified the file's signature."""

    source: str  # "record" or "trust-store"
    serial: str
    subject: str | None
    record_index: int | None = None
    store: str | None = None
    path: str | None = None
    der: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class RecordCheck:
    """One record: its certificate's facts and whether the record agrees with the certificate."""

    index: int
    role: int | None
    facts: CertFacts | None
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Verification:
    valid: bool
    reason: str
    digest: str | None
    signer: SignerMatch | None
    signer_has_sast_role: bool
    # The header names a signer that is a SAST record of this very file (by serial + issuer).
    header_signer_in_file: bool
    records: tuple[RecordCheck, ...]


def _record_key(rec: Record) -> tuple[object, bytes | None]:
    """The key a record offers for verification: its certificate's, else its bare public key."""
    der = rec.certificate
    if der:
        cert = load_certificate(der)
        if cert is not None:
            return cert.public_key(), der
    pk = rec.public_key
    if pk:
        try:
            return serialization.load_der_public_key(_rsa_spki(pk)), None
        except (ValueError, UnsupportedAlgorithm):
            return None, None
    return None, None


def _rsa_spki(pkcs1: bytes) -> bytes:
    """Wrap a PKCS#1 RSAPublicKey (what Cisco stores in record tag 7) in a SubjectPublicKeyInfo."""
    algo = bytes.fromhex("300d06092a864886f70d0101010500")
    bitstring = b"\x03" + _der_len(len(pkcs1) + 1) + b"\x00" + pkcs1
    body = algo + bitstring
    return b"\x30" + _der_len(len(body)) + body


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _check(
    key: object, signature: bytes, message: bytes, algo: hashes.HashAlgorithm, prehashed: bool = False
) -> bool:
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        if prehashed:
            key.verify(signature, message, padding.PKCS1v15(), utils.Prehashed(algo))
        else:
            key.verify(signature, message, padding.PKCS1v15(), algo)
    except (InvalidSignature, ValueError):
        return False
    return True


def check_records(tf: TrustFile) -> tuple[RecordCheck, ...]:
    """Each record against its own certificate: key, serial, signature and names must agree."""
    out = []
    for i, rec in enumerate(tf.records):
        problems: list[str] = []
        facts = None
        der = rec.certificate
        cert = load_certificate(der) if der else None
        if der and cert is None:
            problems.append("certificate (tag 9) is not a valid DER certificate")
        if cert is not None:
            facts = cert_facts(cert)
            if rec.serial is not None and rec.serial != serial_bytes(cert):
                problems.append(
                    f"record serial {rec.serial.hex()} differs from the certificate's {facts.serial}"
                )
            if rec.signature is not None and rec.signature != cert.signature:
                problems.append("record signature (tag 8) differs from the certificate's signature")
            pk = rec.public_key
            if pk is not None and pk != _record_form(cert):
                problems.append("record public key (tag 7) differs from the certificate's key")
            if rec.subject and not _names_agree(rec.subject, cert.subject):
                problems.append(
                    f"record subject {rec.subject!r} differs from the certificate's {facts.subject!r}"
                )
        elif not der:
            problems.append("record has no certificate (tag 9)")
        out.append(RecordCheck(i, rec.role, facts, tuple(problems)))
    return tuple(out)


def _names_agree(written: str, name: x509.Name) -> bool:
    key = name_key(written)
    return not key or key == name_key(cert_name(name)) or _cisco_name_match(key, name)


def _record_form(cert: x509.Certificate) -> bytes:
    """A certificate's key as records store it: PKCS#1 for RSA, X9.62 uncompressed point for EC."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def verify(
    tf: TrustFile, trust_stores: Sequence[TrustStore] = (), *, signed_digest: bytes | None = None
) -> Verification:
    """Verify the file's signature and report who signed it (see the module docstring).

    ``signed_digest``: the digest of the original signed message, for a file whose stored bytes
    were changed after it was received (a config with its passwords redacted): the signature is
    then checked against that digest instead of the bytes at hand."""
    h = tf.header
    records = check_records(tf) if tf.records else ()
    digest = h.digest
    serial, issuer = h.signer_serial, h.signer_issuer
    issuer_key = name_key(issuer)

    def issuer_ok(rec: Record) -> bool:
        rk = name_key(rec.issuer)
        return not issuer_key or not rk or rk == issuer_key

    header_signer_in_file = any(
        r.role == Role.SAST and r.serial == serial and issuer_ok(r) for r in tf.records
    )
    if h.signature is None:
        return Verification(
            False, "the header has no signature", None, None, False, header_signer_in_file, records
        )
    if digest is None:
        reason = f"unsupported digest code {h.digest_code}"
        return Verification(False, reason, None, None, False, header_signer_in_file, records)
    algo = _HASHES[digest]()
    prehashed = signed_digest is not None
    message = signed_digest if signed_digest is not None else tf.signed_message

    # Candidates in the phone's order of preference (§2.5): SAST records naming the header's
    # signer, any record naming it, then every other record, then the caller's trust stores.
    indexed = list(enumerate(tf.records))
    named = [(i, r) for i, r in indexed if r.serial == serial and issuer_ok(r)]
    order = (
        [p for p in named if p[1].role == Role.SAST]
        + [p for p in named if p[1].role != Role.SAST]
        + [p for p in indexed if p not in named]
    )
    tried: set[bytes] = set()
    for i, rec in order:
        key, der = _record_key(rec)
        if key is None:
            continue
        ident = der or (rec.public_key or b"")
        if ident in tried:
            continue
        tried.add(ident)
        if _check(key, h.signature, message, algo, prehashed):
            match = SignerMatch("record", (rec.serial or b"").hex(), rec.subject, record_index=i, der=der)
            return Verification(
                True,
                "signature verified",
                digest.hash_name,
                match,
                _has_sast(tf, der, rec.serial),
                header_signer_in_file,
                records,
            )
    for store in trust_stores:
        named_store = store.find(serial, issuer)
        rest = [c for c in store.certs if c not in named_store]
        for sc in named_store + rest:
            if sc.der in tried:
                continue
            tried.add(sc.der)
            if _check(sc.cert.public_key(), h.signature, message, algo, prehashed):
                match = SignerMatch(
                    "trust-store",
                    serial_bytes(sc.cert).hex(),
                    cert_name(sc.cert.subject),
                    store=store.name,
                    path=sc.path,
                    der=sc.der,
                )
                return Verification(
                    True,
                    f"signature verified with a certificate of trust store {store.name}",
                    digest.hash_name,
                    match,
                    _has_sast(tf, sc.der, serial_bytes(sc.cert)),
                    header_signer_in_file,
                    records,
                )
    if not tried:
        reason = "no certificate to verify with: the signer is not in the file nor in a trust store given"
    else:
        reason = f"signature does not verify with any of {len(tried)} candidate certificate(s)"
    return Verification(False, reason, digest.hash_name, None, False, header_signer_in_file, records)


def _has_sast(tf: TrustFile, der: bytes | None, serial: bytes | None) -> bool:
    for r in tf.records:
        if r.role != Role.SAST:
            continue
        if der is not None and r.certificate == der:
            return True
        if der is None and serial is not None and r.serial == serial:
            return True
    return False


def sign_message(key: rsa.RSAPrivateKey, message: bytes, digest: Digest) -> bytes:
    """RSA PKCS#1 v1.5 over ``message``: what CUCM's TFTP service does when it signs a file."""
    return key.sign(message, padding.PKCS1v15(), _HASHES[digest]())


def record_public_key(cert: x509.Certificate) -> bytes:
    return _record_form(cert)
