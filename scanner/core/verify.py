"""Signatures and certificates of trust files: the only module that
uses cryptography's primitives.

A file's signature is RSA PKCS#1 v1.5 over the whole file with the signature TLV cut out, with
the digest of header tag 8. The signer is looked for by serial (and issuer) among the SAST
records, then among all records, then in trust stores the caller gives; the result says which
certificate verified and whether it holds role SAST in the file — the two questions a phone asks.

No I/O: trust stores are built from bytes (``TrustStore.from_files``); reading directories is the
caller's job (``scanner.store.trust_stores``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from scanner.core.errors import ParseError
from scanner.core.findings import Code, Finding, Severity
from scanner.core.trustlist import Digest, Record, Role, TrustFile

_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    Digest.SHA1: hashes.SHA1,
    Digest.SHA256: hashes.SHA256,
    Digest.SHA512: hashes.SHA512,
}

# Parsed certificates are shared across every file that embeds them (a fleet holds a handful of
# distinct certificates thousands of times); the cap bounds memory against hostile inputs.
_CERT_CACHE_SIZE = 4096
_cert_cache: OrderedDict[bytes, CertReading] = OrderedDict()
_cert_lock = threading.Lock()


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


@dataclass(frozen=True, slots=True)
class CertReading:
    """Everything the scanner reads from one certificate, read at once; or why it could not be.

    The one boundary between untrusted certificate bytes and cryptography: cryptography parses
    lazily, so a certificate that loads may still raise later, on ``.version``, ``public_key()``
    (an unknown key OID), a name attribute or ``serial_number`` (a negative serial warns, then
    overflows our conversion). :func:`read_certificate` touches every fact the scanner uses
    inside one ``try``; past it nobody calls cryptography on that certificate again, so nothing
    can raise later. ``error`` set means ``cert``, ``facts``, ``key`` and ``record_key`` are None.
    ``cert`` is kept for identity and for what callers pass on (``StoredCert``); read the facts
    from here, not from it (its extensions, for one, were never touched and may still raise).
    """

    der: bytes = field(repr=False)
    error: str | None
    cert: x509.Certificate | None = field(default=None, repr=False, compare=False)
    facts: CertFacts | None = None
    key: PublicKeyTypes | None = field(default=None, repr=False, compare=False)
    serial: bytes | None = None  # as trust files store it: big-endian magnitude
    record_key: bytes | None = field(default=None, repr=False)  # the key as record tag 7 holds it
    signature: bytes | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()  # what cryptography warned about while reading it

    @property
    def ok(self) -> bool:
        return self.error is None


def _der_serial_sign(der: bytes) -> int | None:
    """The sign of the serial (-1, 0, 1) in ``Certificate.tbsCertificate``, read from the DER
    before cryptography sees it; ``None`` when the bytes do not have that shape (cryptography
    then says why).

    Why: cryptography emits a ``CryptographyDeprecationWarning`` when it loads a certificate
    with a serial that is not positive (RFC 5280 §4.1.2.2 forbids it) and says it will refuse
    them. A warning cannot be turned into data without ``warnings.catch_warnings``, which is
    process-global and not thread-safe; reading the sign first keeps the boundary pure."""

    def header(pos: int) -> tuple[int, int, int] | None:  # (tag, content start, content length)
        if pos + 2 > len(der):
            return None
        tag, first = der[pos], der[pos + 1]
        pos += 2
        if first < 0x80:
            return tag, pos, first
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > len(der):
            return None
        return tag, pos + n, int.from_bytes(der[pos : pos + n], "big")

    cert = header(0)
    if cert is None or cert[0] != 0x30:
        return None
    tbs = header(cert[1])
    if tbs is None or tbs[0] != 0x30:
        return None
    item = header(tbs[1])
    if item is not None and item[0] == 0xA0:  # [0] EXPLICIT version
        item = header(item[1] + item[2])
    if item is None or item[0] != 0x02 or item[2] == 0 or item[1] + item[2] > len(der):
        return None
    content = der[item[1] : item[1] + item[2]]
    if content[0] & 0x80:
        return -1
    return 0 if not any(content) else 1


# cryptography also *warns* about oddities it tolerates (a country name that is not 2 letters,
# a serial that is not positive); under ``-W error`` a warning is an exception. Reading is done
# with warnings recorded, so the outcome is the same whatever the process's warning filters and
# nothing is printed for a phone's certificate. ``catch_warnings`` swaps process-global state:
# the lock keeps two readings from interleaving it (a warning another thread raises meanwhile
# is recorded here and dropped: a rare loss, never a wrong result).
_read_lock = threading.Lock()


def _read(der: bytes) -> CertReading:
    with _read_lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reading = _read_facts(der)
    if caught and reading.ok:
        return dataclasses.replace(reading, warnings=tuple(str(w.message) for w in caught))
    return reading


def _read_facts(der: bytes) -> CertReading:
    sign = _der_serial_sign(der)
    if sign is not None and sign <= 0:
        return CertReading(der, "serial number is negative or zero (RFC 5280 requires a positive serial)")
    try:
        cert = x509.load_der_x509_certificate(der)
        cert.version  # noqa: B018 - lazily checked by cryptography: touch it inside the boundary
        n = cert.serial_number
        if n <= 0:  # the DER walk above did not see the serial; cryptography did
            raise ValueError("serial number is negative or zero (RFC 5280 requires a positive serial)")
        serial = n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")
        key = cert.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            key_type, key_size = "RSA", key.key_size
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key_type, key_size = f"EC-{key.curve.name}", key.curve.key_size
        else:
            key_type, key_size = type(key).__name__.removesuffix("PublicKey") or "unknown", None
        subject, issuer = cert.subject, cert.issuer
        facts = CertFacts(
            subject=cert_name(subject),
            issuer=cert_name(issuer),
            serial=serial.hex(),
            key_type=key_type,
            key_size=key_size,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            sha1=hashlib.sha1(der, usedforsecurity=False).hexdigest(),
            sha256=hashlib.sha256(der).hexdigest(),
            self_signed=issuer == subject,
        )
        return CertReading(der, None, cert, facts, key, serial, _key_form(key), cert.signature)
    except Exception as exc:  # the boundary: whatever cryptography raises is data
        return CertReading(der, _reason(exc))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or "no detail"
    if isinstance(exc, UnsupportedAlgorithm):
        return f"unsupported algorithm: {text}"
    if isinstance(exc, x509.InvalidVersion):
        return f"invalid X.509 version: {text}"
    if type(exc) is ValueError:  # cryptography's message says it all ("error parsing asn1 value...")
        return text
    return f"{type(exc).__name__}: {text}"


def read_certificate(der: bytes) -> CertReading:
    """One certificate's facts, read once per process; never raises (see :class:`CertReading`)."""
    der = bytes(der)
    with _cert_lock:
        hit = _cert_cache.get(der)
        if hit is not None:
            _cert_cache.move_to_end(der)
            return hit
    reading = _read(der)
    with _cert_lock:
        _cert_cache[der] = reading
        if len(_cert_cache) > _CERT_CACHE_SIZE:
            _cert_cache.popitem(last=False)
    return reading


def load_certificate(der: bytes) -> x509.Certificate | None:
    """A DER certificate whose facts can all be read, parsed once per process; ``None`` when it
    is not one (:func:`read_certificate` says why)."""
    return read_certificate(der).cert


def serial_bytes(cert: x509.Certificate) -> bytes:
    """The serial as trust files store it: big-endian magnitude bytes.

    For certificates we made or that passed :func:`load_certificate` (serial positive)."""
    n = cert.serial_number
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


_NAME_SPLIT = re.compile(r"\s*[;,]\s*")


def name_key(name: str | None) -> frozenset[tuple[str, str]]:
    """A comparable form of a distinguished name as producers write it: Cisco's ``;``-joined
    CN-first, certutils' comma-joined DER order, eToken lower-case keys with quotes."""
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


class CertificateUnreadable(ValueError):
    """``cert_facts`` on a certificate whose facts cannot be read (use :func:`read_certificate`)."""


def cert_facts(cert: x509.Certificate) -> CertFacts:
    """The facts of a certificate that :func:`load_certificate` returned (or that we built)."""
    reading = read_certificate(cert.public_bytes(serialization.Encoding.DER))
    if reading.facts is None:
        raise CertificateUnreadable(reading.error or "unreadable certificate")
    return reading.facts


# --- Trust stores -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredCert:
    store: str
    path: str
    der: bytes
    cert: x509.Certificate = field(repr=False, compare=False)

    @property
    def reading(self) -> CertReading:
        return read_certificate(self.der)


@dataclass(frozen=True, slots=True)
class TrustStore:
    """Certificates an administrator exported (PEM or DER files), e.g. ``Phone-SAST-trust``."""

    name: str
    certs: tuple[StoredCert, ...]
    errors: tuple[ParseError, ...] = ()

    @classmethod
    def from_files(cls, name: str, files: Iterable[tuple[str, bytes]]) -> TrustStore:
        """Build a store from ``(path, bytes)`` pairs; a file may hold several PEM blocks.
        Unreadable files, and certificates whose facts cannot be read, become ``errors`` naming
        the path, never an exception."""
        certs: list[StoredCert] = []
        errors: list[ParseError] = []
        for path, data in files:
            found: list[ParseError] = []
            try:
                loaded = _load_cert_file(data, found)
            except ParseError as exc:
                errors.append(exc.with_path(path))
                continue
            errors += [e.with_path(path) for e in found]
            for reading in loaded:
                assert reading.cert is not None  # _load_cert_file keeps readable ones only
                certs.append(StoredCert(name, path, reading.der, reading.cert))
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
            reading = c.reading
            if reading.facts is None or reading.serial != serial:
                continue
            if key and not _names_match(key, reading.facts.issuer):
                continue
            out.append(c)
        return out

    def contains(self, der: bytes) -> bool:
        return any(c.der == der for c in self.certs)


def _names_match(key: frozenset[tuple[str, str]], rfc4514: str) -> bool:
    """A name as a producer wrote it against a certificate's. Cisco writes names with short keys
    (CN, OU, O, L, ST, C) and may drop other attributes: accept when every attribute written is
    in the certificate's name."""
    cert_key = name_key(rfc4514)
    return key == cert_key or (bool(key) and key <= cert_key)


_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.*?)-----END CERTIFICATE-----", re.S)


def _load_cert_file(data: bytes, errors: list[ParseError] | None = None) -> list[CertReading]:
    """The readable certificates of a PEM bundle or a DER file. A bad PEM block is one error in
    ``errors`` (when given; else it raises) and the bundle's other certificates are kept: one odd
    certificate beside a destination signer must not hide the signer."""

    def bad(message: str, offset: int) -> None:
        if errors is None:
            raise ParseError(message, offset)
        errors.append(ParseError(message, offset))

    if b"-----BEGIN" in data:
        out = []
        blocks = 0
        for m in _PEM_BLOCK.finditer(data):
            blocks += 1
            # Base64 decoded here, not by cryptography's PEM loader: the DER then goes through
            # the one certificate boundary (read_certificate) like a record's certificate.
            try:
                der = base64.b64decode(b"".join(m.group(1).split()), validate=True)
            except ValueError as exc:
                bad(f"bad PEM certificate: {exc}", m.start())
                continue
            reading = read_certificate(der)
            if reading.error is not None:
                bad(f"bad PEM certificate: {reading.error}", m.start())
                continue
            out.append(reading)
        if not blocks:
            raise ParseError("no PEM certificate block in the file", 0)
        return out
    reading = read_certificate(data)
    if reading.error is not None:
        raise ParseError(f"neither a PEM nor a readable DER certificate: {reading.error}", 0)
    return [reading]


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
    """One record: its certificate's facts and whether the record agrees with the certificate.

    ``cert_error``: why the record's certificate (tag 9) could not be read; ``facts`` is then
    None and the record offers no key for the signature (see :func:`verify`)."""

    index: int
    role: int | None
    facts: CertFacts | None
    problems: tuple[str, ...]
    cert_error: str | None = None


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
    # Findings verification itself makes, per record: CERT_MALFORMED for each certificate that
    # could not be read (BLOCKER for the signer the header names when nothing verified the
    # file, WARNING otherwise). Callers (inspect, scans) report them as they are.
    findings: tuple[Finding, ...] = ()


def _record_key(rec: Record) -> tuple[PublicKeyTypes | None, bytes | None]:
    """The key a record offers for verification: its certificate's, else (no certificate at
    all) its bare public key. A certificate that is present but unreadable offers nothing: a
    phone verifies with certificates, and the bare key of such a record vouches for nothing."""
    der = rec.certificate
    if der is not None:  # an empty tag 9 too: present, and unreadable
        reading = read_certificate(der)
        return reading.key, der
    pk = rec.public_key
    if pk:
        try:
            return serialization.load_der_public_key(_rsa_spki(pk)), None
        except Exception:  # untrusted key bytes: any failure means "no key"
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
        der = rec.certificate
        reading = read_certificate(der) if der is not None else None
        facts = reading.facts if reading else None
        if reading is not None and facts is not None:
            if rec.serial is not None and rec.serial != reading.serial:
                problems.append(f"record serial {rec.serial.hex()} differs from the certificate's {facts.serial}")
            if rec.signature is not None and rec.signature != reading.signature:
                problems.append("record signature (tag 8) differs from the certificate's signature")
            pk = rec.public_key
            if pk is not None and pk != reading.record_key:
                problems.append("record public key (tag 7) differs from the certificate's key")
            if rec.subject and not _names_agree(rec.subject, facts.subject):
                problems.append(f"record subject {rec.subject!r} differs from the certificate's {facts.subject!r}")
        elif der is None:
            problems.append("record has no certificate (tag 9)")
        cert_error = reading.error if reading is not None else None
        out.append(RecordCheck(i, rec.role, facts, tuple(problems), cert_error))
    return tuple(out)


def _names_agree(written: str, rfc4514: str) -> bool:
    key = name_key(written)
    return not key or _names_match(key, rfc4514)


def _key_form(key: PublicKeyTypes) -> bytes:
    """A key as records store it: PKCS#1 for RSA, X9.62 uncompressed point for EC."""
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _malformed_findings(
    records: tuple[RecordCheck, ...], signer_indexes: set[int], valid: bool
) -> tuple[Finding, ...]:
    out = []
    for rc in records:
        if rc.cert_error is None:
            continue
        blocks = not valid and rc.index in signer_indexes
        out.append(
            Finding(
                Code.CERT_MALFORMED,
                Severity.BLOCKER if blocks else Severity.WARNING,
                f"record {rc.index} certificate cannot be read: {rc.cert_error}"
                + ("; it is the signer the header names, so the file cannot be verified" if blocks else ""),
                {
                    "record": rc.index,
                    # A role is 2 bytes; a longer value a lenient parse kept is no role,
                    # and an integer past 64 bits would break the JSON writers.
                    "role": rc.role if rc.role is not None and rc.role <= 0xFFFF else None,
                    "reason": rc.cert_error,
                    "signer": rc.index in signer_indexes,
                },
            )
        )
    return tuple(out)


def verify(
    tf: TrustFile, trust_stores: Sequence[TrustStore] = (), *, signed_digest: bytes | None = None
) -> Verification:
    """Verify the file's signature and report who signed it (see the module docstring).

    ``signed_digest``: the digest of the original signed message, for a file whose stored bytes
    were changed after it was received (a config with its passwords redacted): the signature is
    then checked against that digest instead of the bytes at hand.

    Never raises on what the file holds: a certificate that cannot be read is a CERT_MALFORMED
    finding in ``Verification.findings`` (and the reason, when it was the named signer's)."""
    h = tf.header
    records = check_records(tf) if tf.records else ()
    digest = h.digest
    serial, issuer = h.signer_serial, h.signer_issuer
    issuer_key = name_key(issuer)

    def issuer_ok(rec: Record) -> bool:
        rk = name_key(rec.issuer)
        return not issuer_key or not rk or rk == issuer_key

    indexed = list(enumerate(tf.records))
    named = [(i, r) for i, r in indexed if r.serial == serial and issuer_ok(r)]
    named_indexes = {i for i, _ in named}
    header_signer_in_file = any(r.role == Role.SAST for _, r in named)

    def result(valid: bool, reason: str, digest_name: str | None = None, match: SignerMatch | None = None,
               has_sast: bool = False) -> Verification:
        if not valid:
            broken = [rc for rc in records if rc.index in named_indexes and rc.cert_error is not None]
            if broken:
                reason += (
                    f"; the signer the header names (record {broken[0].index}) has a malformed "
                    f"certificate: {broken[0].cert_error}"
                )
        findings = _malformed_findings(records, named_indexes, valid)
        return Verification(valid, reason, digest_name, match, has_sast, header_signer_in_file, records, findings)

    if h.signature is None:
        return result(False, "the header has no signature")
    if digest is None:
        return result(False, f"unsupported digest code {h.digest_code}")
    algo = _HASHES[digest]()
    prehashed = signed_digest is not None
    message = signed_digest if signed_digest is not None else tf.signed_message

    # Candidates in the phone's order of preference: SAST records naming the header's
    # signer, any record naming it, then every other record, then the caller's trust stores.
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
            return result(True, "signature verified", digest.hash_name, match, _has_sast(tf, der, rec.serial))
    for store in trust_stores:
        named_store = store.find(serial, issuer)
        rest = [c for c in store.certs if c not in named_store]
        for sc in named_store + rest:
            if sc.der in tried:
                continue
            tried.add(sc.der)
            reading = sc.reading
            if reading.facts is None:  # a StoredCert built by a caller around an unreadable one
                continue
            if _check(reading.key, h.signature, message, algo, prehashed):
                match = SignerMatch(
                    "trust-store",
                    reading.facts.serial,
                    reading.facts.subject,
                    store=store.name,
                    path=sc.path,
                    der=sc.der,
                )
                return result(
                    True,
                    f"signature verified with a certificate of trust store {store.name}",
                    digest.hash_name,
                    match,
                    _has_sast(tf, sc.der, reading.serial),
                )
    if not tried:
        reason = "no certificate to verify with: the signer is not in the file nor in a trust store given"
    else:
        reason = f"signature does not verify with any of {len(tried)} candidate certificate(s)"
    return result(False, reason, digest.hash_name)


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
    return _key_form(cert.public_key())
