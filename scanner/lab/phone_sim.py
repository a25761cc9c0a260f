"""The phone's side of a cutover (spec migration-readiness.md §1), sans-IO: an independent model
of what a phone does with the bytes it holds and the bytes the destination serves, so that the
lab's outcome can disagree with the scanner's predictions (``scanner.core.readiness`` is not
used on purpose).

Inputs: the CTL and ITL the phone holds (bytes or None), what it downloaded from the
destination (CTL, ITL, signed config; None for "not served"), and what each TVS member of its
*current* config answered (``TvsContact``: the server certificate the TLS handshake presented
and the query answers). The driver (``scanner.lab.cutover``) gathers those contacts first, for
every signer the phone might ask about; this module decides which of them the phone uses.

The decisions, in §1's order:

1. CTL (when the destination serves one): accepted if its signature verifies with a certificate
   the phone holds with role SAST (in its CTL or ITL); else TVS: the first member whose TCP
   connection succeeded and whose server certificate is a TVS (21) record of the installed
   ITL is asked about the signer; an answer with role SAST (0) whose certificate verifies the
   signature accepts it. Otherwise "Trust List update failed" and the old lists stay.
2. ITL: verified against the lists now held (SAST records, and the TFTP/CCM+TFTP records of the
   CTL: the seed's step 9 verifies the ITL "against the CTL, which holds the destination's
   CallManager certificate") or vouched by TVS as in step 1.
3. Config ``.sgn``: its signer must be a TFTP or CCM+TFTP record of the new ITL or CTL.

At each step the certificate whose key verified the file (held, or returned by TVS) must be
valid at the cutover's time: the spec has phones refuse a list or config signed by an expired
certificate (trust-files.md, known failures row 13).

Paths that bypass TVS: no CTL and no ITL (trust on first use: accept, with a warning), and a
*blank* ITL held with no CTL (the source's rollback: no TVS and no TFTP records; the phone
accepts any new list).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from scanner.core.errors import ParseError
from scanner.core.trustlist import Digest, Role, TrustFile, parse
from scanner.core.verify import load_certificate, name_key

__all__ = [
    "Download",
    "Held",
    "Outcome",
    "PhoneResult",
    "QueryAnswer",
    "TvsContact",
    "query_key",
    "run_phone",
    "signers_to_ask",
]

_HASHES: dict[Digest, type[hashes.HashAlgorithm]] = {
    Digest.SHA1: hashes.SHA1,
    Digest.SHA256: hashes.SHA256,
    Digest.SHA512: hashes.SHA512,
}
_CONFIG_ROLES = (Role.TFTP, Role.CCM_TFTP)


class Outcome(enum.StrEnum):
    MIGRATED = "migrated"
    UPDATE_FAILED = "update-failed"  # "Trust List update failed": old lists kept
    CONFIG_REJECTED = "config-rejected"  # lists installed, the signed config not trusted
    NOT_PROVISIONED = "not-provisioned"  # the destination has no config for the phone


@dataclass(frozen=True, slots=True)
class Held:
    ctl: bytes | None
    itl: bytes | None


@dataclass(frozen=True, slots=True)
class Download:
    ctl: bytes | None
    itl: bytes | None
    config: bytes | None  # SEP<MAC>.cnf.xml.sgn
    server: str = ""  # the destination TFTP address that served them (console lines)
    ctl_name: str = "CTLFile.tlv"  # what was fetched (CTLSEP<MAC>.tlv or the fallback)
    itl_name: str = "ITLFile.tlv"


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    status: int | None  # 0 valid, 1 invalid, None: no answer (connection closed)
    certificate: bytes | None
    roles: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TvsContact:
    """One TVS member of the phone's current config, as the driver reached it."""

    address: str
    port: int
    server_cert: bytes | None  # DER from the handshake; None: the connection failed
    error: str | None = None
    answers: Mapping[tuple[bytes, str], QueryAnswer] = field(default_factory=dict)  # by query_key


@dataclass(frozen=True, slots=True)
class PhoneResult:
    outcome: Outcome
    ctl: bytes | None  # the lists now held
    itl: bytes | None
    status_lines: tuple[str, ...]  # the phone's Status messages (text only, no time stamp)
    console: tuple[str, ...]  # console log messages (the seed's "SECUREAPP-..." texts)
    reason: str = ""


PHONE_ITL_MAX_BYTES = 64 * 1024
PHONE_ITL_MAX_CERTS = 39


def query_key(serial: bytes | None, issuer: str | None) -> tuple[bytes, str]:
    """How a question to TVS is keyed: the signer's serial magnitude and issuer (normalised)."""
    mag = (serial or b"").lstrip(b"\x00")
    return mag, "|".join(sorted(f"{k}={v}" for k, v in name_key(issuer)))


def _parse(data: bytes | None, hint: str, sha512: bool = True) -> TrustFile | None:
    """The file, or None when it does not parse or (``sha512`` False: a model whose firmware
    cannot verify SHA-512, spec §1 C7) is signed with a digest the phone cannot check."""
    if data is None:
        return None
    try:
        tf = parse(data, name_hint=hint)
    except ParseError:
        return None
    if not sha512 and tf.header.digest is Digest.SHA512:
        return None
    return tf


def _signed_by(tf: TrustFile, der: bytes | None) -> bool:
    """The file's signature verifies with ``der``'s key (RSA PKCS#1 v1.5, the header's digest)."""
    if der is None:
        return False
    h = tf.header
    cert = load_certificate(der)
    if cert is None or h.signature is None or h.digest is None:
        return False
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(h.signature, tf.signed_message, padding.PKCS1v15(), _HASHES[h.digest]())
    except (InvalidSignature, ValueError):
        return False
    return True


def _expired(der: bytes, now: dt.datetime | None) -> str | None:
    """When ``der`` is outside its validity at ``now``: the date it ended (or starts), else None.
    The spec (trust-files.md, known failures row 13; C7 "signer certs not expired at the cutover
    date") has phones refuse a list or config whose signer's certificate has expired. ``now``
    None: no date check (a caller that models no clock)."""
    if now is None:
        return None
    cert = load_certificate(der)
    if cert is None:
        return None
    if cert.not_valid_after_utc < now:
        return f"expired {cert.not_valid_after_utc:%Y-%m-%d}"
    if cert.not_valid_before_utc > now:
        return f"not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
    return None


def _certs(tf: TrustFile | None, *roles: int) -> list[bytes]:
    if tf is None:
        return []
    return [r.certificate for r in tf.records_with_role(*roles) if r.certificate]


def _blank(itl: TrustFile | None) -> bool:
    return itl is not None and not itl.records_with_role(Role.TVS, Role.TFTP, Role.CCM_TFTP)


def signers_to_ask(download: Download) -> list[tuple[bytes, str, str]]:
    """(serial, subject, issuer) of each signer of the downloaded lists the phone may ask TVS
    about: the driver asks each TVS member about all of them, once per connection."""
    out: list[tuple[bytes, str, str]] = []
    for data, hint in ((download.ctl, "CTLFile.tlv"), (download.itl, "ITLFile.tlv")):
        tf = _parse(data, hint)
        if tf is None:
            continue
        h = tf.header
        serial = h.signer_serial
        if serial is None:
            continue
        subject = next(
            (r.subject for r in tf.records if r.serial == serial and r.subject), h.signer_name or ""
        )
        entry = (serial, subject or "", h.signer_issuer or "")
        if entry not in out:
            out.append(entry)
    return out


@dataclass(slots=True)
class _Log:
    status: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def c(self, level: str, text: str) -> None:
        self.console.append(f"{level} {text}")


def _ask_tvs(
    tf: TrustFile, itl: TrustFile | None, contacts: Sequence[TvsContact], log: _Log, now: dt.datetime | None
) -> tuple[bool, str]:
    """§1 step 1's TVS path: (vouched, why not)."""
    tvs_certs = set(_certs(itl, Role.TVS))
    if not contacts:
        return False, "no TVS server in the phone's current config"
    why = "no TVS server reachable"
    for contact in contacts:
        log.c("INF", f"SECUREAPP-Attempting connect to TVS server addr [{contact.address}], mode [IPv4]")
        if contact.server_cert is None:
            log.c("ERR", f"SECUREAPP-TCP connect() failed, [{contact.address}]: {contact.error or 'no answer'}")
            why = f"TVS {contact.address}:{contact.port} unreachable ({contact.error or 'no answer'})"
            continue
        log.c("INF", "SECUREAPP-TCP connect() successful, " f"[{contact.address}]")
        log.c("DEB", f"SECUREAPP-BIO created with: addr:{contact.address}, port:{contact.port}, mode:IPv4")
        log.c("INF", "SECUREAPP-Sec SSL Connection - TVS.")
        if contact.server_cert not in tvs_certs:
            log.c("ERR", "SECUREAPP-SSL session setup Cert Verification - Certificate is not valid.")
            log.c("ERR", "SECUREAPP-Sec SSL Connection - Handshake failed.")
            why = f"TVS {contact.address} presented a certificate that is not a TVS record of the installed ITL"
            continue
        log.c("INF", "SECUREAPP-SSL session setup Cert Verification - Certificate is valid.")
        log.c("NOT", "SECUREAPP-Sec SSL Connection - Handshake successful.")
        log.c("DEB", "SECUREAPP-TVS process request - processing TVS Query Certificate request.")
        answer = contact.answers.get(query_key(tf.header.signer_serial, tf.header.signer_issuer))
        if answer is None or answer.status is None:
            log.c("ERR", "SECUREAPP-TVS process response - no response from TVS server")
            why = f"TVS {contact.address} did not answer the query"
            continue
        if answer.status != 0 or answer.certificate is None:
            log.c("ERR", "SECUREAPP-TVS process response - certificate not found, status invalid")
            return False, f"TVS {contact.address} does not know the signer"
        log.c("INF", "SECUREAPP-TVS added cert to TVS cache - expires in 24 hours")
        if Role.SAST not in answer.roles:
            roles = ",".join(str(r) for r in answer.roles) or "none"
            log.c("ERR", f"SECUREAPP-TVS cert roles [{roles}] do not include SAST")
            return False, f"TVS {contact.address} knows the signer without role SAST (roles {roles})"
        if not _signed_by(tf, answer.certificate):
            log.c("ERR", "SECUREAPP-Hashes do not match... authentication failed.")
            return False, "the certificate TVS returned does not verify the file"
        when = _expired(answer.certificate, now)
        if when is not None:
            log.c("ERR", f"SECUREAPP-Signer certificate {when}... authentication failed.")
            return False, f"the signer's certificate TVS returned is {when}"
        log.c("NOT", "SECUREAPP-Hashes match... authentication successful.")
        return True, ""
    return False, why


def _accept(
    data: bytes | None,
    hint: str,
    trusted: list[bytes],
    itl_for_tvs: TrustFile | None,
    contacts: Sequence[TvsContact],
    log: _Log,
    sha512: bool,
    now: dt.datetime | None,
) -> tuple[TrustFile | None, str]:
    """A downloaded list: (the parsed file if accepted, why not)."""
    tf = _parse(data, hint, sha512)
    if tf is None:
        return None, f"{hint} does not parse or is signed with a digest this model cannot verify"
    signer = next((der for der in trusted if _signed_by(tf, der)), None)
    if signer is not None:
        when = _expired(signer, now)
        if when is not None:
            log.c("ERR", f"SECUREAPP-Signer certificate {when}... authentication failed.")
            return None, f"{hint}: its signer's certificate is {when}"
        log.c("NOT", "SECUREAPP-Hashes match... authentication successful.")
        return tf, ""
    ok, why = _ask_tvs(tf, itl_for_tvs, contacts, log, now)
    return (tf, "") if ok else (None, why)


def _installed(log: _Log, tf: TrustFile) -> None:
    log.c("NOT", "SECUREAPP-updateFromFile: TL parse to table: CTL_SUCCESS")
    log.c("NOT", "SECUREAPP-updateFromFile: Updating master TL table")
    log.c("DEB", "SECUREAPP-TL file verified successfully.")
    log.c("INF", "SECUREAPP-TL file updated.")


def _getfile(log: _Log, src: str, dest: str, server: str) -> None:
    log.c("NOT", f"dgetfile-GETXXTP [src={src}][dest=/tmp/{dest}][serv={server}][serv6=][sec=0]")


def run_phone(
    name: str, held: Held, download: Download, contacts: Sequence[TvsContact], *, sha512: bool = True,
    now: dt.datetime | None = None,
) -> PhoneResult:
    """One phone's reboot onto the destination (see the module docstring). ``sha512``: the
    model's firmware verifies SHA-512 signatures (a file it cannot verify is refused). ``now``:
    the cutover's time, against which signer certificates must be valid (None: not checked)."""
    log = _Log()
    old_ctl, old_itl = _parse(held.ctl, "CTLFile.tlv"), _parse(held.itl, "ITLFile.tlv")
    # No list at all, or only a blank ITL (rollback) with no CTL: nothing to check against.
    tofu = old_ctl is None and old_itl is None
    rollback = old_ctl is None and _blank(old_itl)
    open_door = tofu or rollback

    def failed(why: str, ctl: bytes | None, itl: bytes | None) -> PhoneResult:
        log.c("ERR", f"SECUREAPP-Trust List update failed: {why}")
        log.status.append("Trust List update failed")
        return PhoneResult(Outcome.UPDATE_FAILED, ctl, itl, tuple(log.status), tuple(log.console), why)

    sast_held = _certs(old_ctl, Role.SAST) + _certs(old_itl, Role.SAST)
    new_ctl: TrustFile | None = old_ctl
    if download.ctl is not None:
        _getfile(log, download.ctl_name, "CTLFile.tlv", download.server)
        if open_door:
            tf = _parse(download.ctl, "CTLFile.tlv", sha512)
            if tf is None:
                return failed("CTLFile.tlv does not parse or its digest is not supported", held.ctl, held.itl)
            log.c("WRN", "SECUREAPP-No trust list to verify against: " + ("trust on first use" if tofu else "blank ITL (rollback)"))
            new_ctl = tf
        else:
            tf, why = _accept(download.ctl, "CTLFile.tlv", sast_held, old_itl, contacts, log, sha512, now)
            if tf is None:
                return failed(f"CTL: {why}", held.ctl, held.itl)
            new_ctl = tf
        _installed(log, new_ctl)
        log.status.append("CTL Installed")
    ctl_bytes = new_ctl.data if new_ctl is not None else None

    if download.itl is None:
        return failed("the destination serves no ITL", ctl_bytes, held.itl)
    _getfile(log, download.itl_name, "ITLFile.tlv", download.server)
    # A phone's trust-list store holds at most 64 KB and 39 certificates (spec section 1, C7;
    # Cisco's ITL size limit): a larger ITL is refused whatever its signature.
    big = _parse(download.itl, "ITLFile.tlv")
    if len(download.itl) > PHONE_ITL_MAX_BYTES or (big is not None and len(big.records) > PHONE_ITL_MAX_CERTS):
        return failed(f"ITLFile.tlv of {len(download.itl)} bytes is larger than the phone can hold", ctl_bytes, held.itl)
    if open_door:
        tf = _parse(download.itl, "ITLFile.tlv", sha512)
        if tf is None:
            return failed("ITLFile.tlv does not parse or its digest is not supported", ctl_bytes, held.itl)
        if download.ctl is None:
            log.c("WRN", "SECUREAPP-No trust list to verify against: " + ("trust on first use" if tofu else "blank ITL (rollback)"))
        new_itl = tf
    else:
        trusted = (
            _certs(new_ctl, Role.SAST, Role.TFTP, Role.CCM_TFTP) + _certs(old_itl, Role.SAST)
        )
        tf2, why = _accept(download.itl, "ITLFile.tlv", trusted, old_itl, contacts, log, sha512, now)
        if tf2 is None:
            return failed(f"ITL: {why}", ctl_bytes, held.itl)
        new_itl = tf2
    _installed(log, new_itl)
    log.status.append("ITL installed")
    log.status.insert(0, "Trust List Updated")

    if download.config is None:
        log.c("ERR", f"dgetfile-XXTP complete - status = 404 [{name}.cnf.xml.sgn]")
        log.status.append(f"File Not Found <{name}.cnf.xml.sgn>")
        return PhoneResult(
            Outcome.NOT_PROVISIONED, ctl_bytes, new_itl.data, tuple(log.status), tuple(log.console),
            "the destination has no config for the phone",
        )
    _getfile(log, f"{name}.cnf.xml.sgn", f"{name}.cnf.xml.sgn", download.server)
    cfg = _parse(download.config, f"{name}.cnf.xml.sgn", sha512)
    signers = _certs(new_itl, *_CONFIG_ROLES) + _certs(new_ctl, *_CONFIG_ROLES)
    signer = None if cfg is None else next((der for der in signers if _signed_by(cfg, der)), None)
    when = None if signer is None else _expired(signer, now)
    if cfg is None or signer is None or when is not None:
        why = (
            "config does not parse" if cfg is None
            else "config signer is not a TFTP record of the new ITL or CTL" if signer is None
            else f"config signer's certificate is {when}"
        )
        log.c("ERR", f"SECUREAPP-{name}.cnf.xml.sgn: authentication failed: {why}")
        log.status.append(f"{name}.cnf.xml.sgn verification failed")
        return PhoneResult(
            Outcome.CONFIG_REJECTED, ctl_bytes, new_itl.data, tuple(log.status), tuple(log.console), why
        )
    log.c("NOT", "SECUREAPP-Hashes match... authentication successful.")
    log.status.append(f"{name}.cnf.xml.sgn")
    return PhoneResult(Outcome.MIGRATED, ctl_bytes, new_itl.data, tuple(log.status), tuple(log.console))
