"""Checks on one trust file on its own (what ``trustscan inspect`` reports): signature, signer
role, certificate validity, record consistency, size limits, tolerated oddities.

Pure: takes the parse, the verification and ``now``; returns findings.
"""

from __future__ import annotations

import datetime as dt

from scanner.core.findings import Code, Finding, Severity
from scanner.core.trustlist import Digest, Kind, Role, TrustFile
from scanner.core.verify import Verification

# An ITL over 64 KB (more than 39 certificates) does not load on phones (Cisco's Security Guide
# for CUCM 12.5(1)SU6, chapter "Default Security", its ITL section).
PHONE_MAX_TRUST_LIST_BYTES = 64 * 1024
PHONE_MAX_TRUST_LIST_CERTS = 39
DEFAULT_EXPIRY_WINDOW = dt.timedelta(days=30)


def file_findings(
    tf: TrustFile,
    verification: Verification | None,
    now: dt.datetime,
    *,
    expiry_window: dt.timedelta = DEFAULT_EXPIRY_WINDOW,
) -> list[Finding]:
    """Every finding on ``tf``, in a fixed order: the signature and its signer and each record's
    certificate (these two only when ``verification`` is given), the size limits, the blank ITL,
    the digest, unknown tags, what the lenient parse tolerated."""
    out: list[Finding] = []
    if verification is not None:
        out += signature_findings(tf, verification)
        out += record_findings(verification, now, expiry_window)
    out += size_findings(tf)
    out += blank_itl_findings(tf)
    out += digest_findings(tf)
    out += unknown_tag_findings(tf)
    out += tolerated_findings(tf)
    return out


def signature_findings(tf: TrustFile, verification: Verification) -> list[Finding]:
    """The signature did not verify, or its signer has no SAST record in the file; then what
    ``verify`` found itself (CERT_MALFORMED for every certificate it could not read)."""
    out: list[Finding] = []
    h = tf.header
    if not verification.valid:
        out.append(
            Finding(
                Code.SIGNATURE_INVALID,
                Severity.BLOCKER,
                f"signature not verified: {verification.reason}",
                {"signer_serial": h.signer_serial_hex, "signer_name": h.signer_name},
            )
        )
    elif tf.records and not verification.signer_has_sast_role:
        out.append(
            Finding(
                Code.SIGNER_NOT_SAST,
                Severity.WARNING,
                "the certificate that verified the signature has no SAST record in this file; "
                "phones will not accept a later list signed by it",
                {"serial": verification.signer.serial if verification.signer else None},
            )
        )
    out.extend(verification.findings)
    return out


def record_findings(verification: Verification, now: dt.datetime, expiry_window: dt.timedelta) -> list[Finding]:
    """Per record: fields that differ from its own certificate, and a certificate expired or
    expiring within ``expiry_window`` of ``now``."""
    out: list[Finding] = []
    for rc in verification.records:
        if rc.problems:
            out.append(
                Finding(
                    Code.RECORD_INCONSISTENT,
                    Severity.WARNING,
                    f"record {rc.index}: " + "; ".join(rc.problems),
                    {"record": rc.index},
                )
            )
        if rc.facts is None:
            continue
        ev = {
            "record": rc.index,
            "role": rc.role,
            "serial": rc.facts.serial,
            "subject": rc.facts.subject,
            "not_after": rc.facts.not_after.isoformat(),
        }
        if rc.facts.expired(now):
            out.append(
                Finding(
                    Code.CERT_EXPIRED,
                    Severity.WARNING,
                    f"record {rc.index} certificate {rc.facts.subject} expired on "
                    f"{rc.facts.not_after:%Y-%m-%d}",
                    ev,
                )
            )
        elif rc.facts.expires_within(now, expiry_window):
            out.append(
                Finding(
                    Code.CERT_EXPIRING,
                    Severity.WARNING,
                    f"record {rc.index} certificate {rc.facts.subject} expires on "
                    f"{rc.facts.not_after:%Y-%m-%d}",
                    ev,
                )
            )
    return out


def size_findings(tf: TrustFile) -> list[Finding]:
    """A CTL or ITL too large for phones to load."""
    if tf.kind not in (Kind.CTL, Kind.ITL):
        return []
    certs = sum(1 for r in tf.records if r.certificate)
    if len(tf.data) <= PHONE_MAX_TRUST_LIST_BYTES and certs <= PHONE_MAX_TRUST_LIST_CERTS:
        return []
    return [
        Finding(
            Code.ITL_TOO_LARGE,
            Severity.BLOCKER,
            f"{tf.kind.value.upper()} is {len(tf.data)} bytes with {certs} certificates; phones refuse "
            f"more than {PHONE_MAX_TRUST_LIST_BYTES} bytes or {PHONE_MAX_TRUST_LIST_CERTS} certificates",
            {"bytes": len(tf.data), "certificates": certs},
        )
    ]


def blank_itl_findings(tf: TrustFile) -> list[Finding]:
    """An ITL that is the blank rollback ITL."""
    if tf.kind is not Kind.ITL or not is_blank_itl(tf):
        return []
    return [
        Finding(
            Code.BLANK_ITL,
            Severity.WARNING,
            'ITL has no TVS, TFTP or CallManager records: "Prepare Cluster for Rollback to pre-8.0" '
            "is probably on",
            {"roles": sorted({r.role for r in tf.records if r.role is not None})},
        )
    ]


def digest_findings(tf: TrustFile) -> list[Finding]:
    """A SHA-512 signature, which older phone models cannot verify."""
    if tf.header.digest_code != Digest.SHA512:
        return []
    return [
        Finding(
            Code.DIGEST_SHA512,
            Severity.INFO,
            "file is signed with SHA-512: older phone models cannot verify it",
            {"digest": "sha512"},
        )
    ]


def unknown_tag_findings(tf: TrustFile) -> list[Finding]:
    """Tags no source documents, in the header and then in each record."""
    out = [
        Finding(
            Code.UNKNOWN_TAG,
            Severity.INFO,
            f"unknown header tag {tag} at offset {offset}",
            {"tag": tag, "offset": offset},
        )
        for tag, offset in tf.header.unknown_tags
    ]
    out += [
        Finding(
            Code.UNKNOWN_TAG,
            Severity.INFO,
            f"unknown tag {tag} in record at offset {rec.offset}",
            {"tag": tag, "offset": rec.offset},
        )
        for rec in tf.records
        for tag in rec.unknown_tags
    ]
    return out


def tolerated_findings(tf: TrustFile) -> list[Finding]:
    """What a lenient parse tolerated (``--strict`` refuses the file instead)."""
    return [
        Finding(
            Code.PARSE_TOLERATED,
            Severity.WARNING,
            f"offset {issue.offset}: {issue.reason}",
            {"offset": issue.offset},
        )
        for issue in tf.issues
    ]


def is_blank_itl(tf: TrustFile) -> bool:
    """The rollback ITL ("Prepare Cluster for Rollback to pre-8.0"): its TVS and TFTP sections are
    empty, often only CAPF is left.

    A CCM record also counts as content: a third-party ITL (certutils) lists CallManagers as CCM
    without any TFTP role, and that is not the rollback ITL."""
    roles = {r.role for r in tf.records}
    return not roles & {Role.TVS, Role.TFTP, Role.CCM_TFTP, Role.CCM}
