"""Checks on one trust file on its own (what ``trustscan inspect`` reports): signature, signer
role, certificate validity, record consistency, size limits, tolerated oddities.

Pure: takes the parse, the verification and ``now``; returns findings.
"""

from __future__ import annotations

import datetime as dt

from scanner.core.findings import Finding, Severity
from scanner.core.trustlist import Digest, Kind, Role, TrustFile
from scanner.core.verify import Verification

# Cisco: an ITL over 64 KB (more than 39 certificates) does not load on phones [S10].
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
    out: list[Finding] = []
    h = tf.header
    if verification is not None:
        if not verification.valid:
            out.append(
                Finding(
                    "SIGNATURE_INVALID",
                    Severity.BLOCKER,
                    f"signature not verified: {verification.reason}",
                    {"signer_serial": h.signer_serial_hex, "signer_name": h.signer_name},
                )
            )
        elif tf.records and not verification.signer_has_sast_role:
            out.append(
                Finding(
                    "SIGNER_NOT_SAST",
                    Severity.WARNING,
                    "the certificate that verified the signature has no SAST record in this file; "
                    "phones will not accept a later list signed by it",
                    {"serial": verification.signer.serial if verification.signer else None},
                )
            )
        # CERT_MALFORMED: verify() turned every unreadable certificate into a finding already.
        out.extend(verification.findings)
        for rc in verification.records:
            if rc.problems:
                out.append(
                    Finding(
                        "RECORD_INCONSISTENT",
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
                        "CERT_EXPIRED",
                        Severity.WARNING,
                        f"record {rc.index} certificate {rc.facts.subject} expired on "
                        f"{rc.facts.not_after:%Y-%m-%d}",
                        ev,
                    )
                )
            elif rc.facts.expires_within(now, expiry_window):
                out.append(
                    Finding(
                        "CERT_EXPIRING",
                        Severity.WARNING,
                        f"record {rc.index} certificate {rc.facts.subject} expires on "
                        f"{rc.facts.not_after:%Y-%m-%d}",
                        ev,
                    )
                )
    if tf.kind in (Kind.CTL, Kind.ITL):
        certs = sum(1 for r in tf.records if r.certificate)
        if len(tf.data) > PHONE_MAX_TRUST_LIST_BYTES or certs > PHONE_MAX_TRUST_LIST_CERTS:
            out.append(
                Finding(
                    "ITL_TOO_LARGE",
                    Severity.BLOCKER,
                    f"{tf.kind.value.upper()} is {len(tf.data)} bytes with {certs} certificates; phones refuse "
                    f"more than {PHONE_MAX_TRUST_LIST_BYTES} bytes or {PHONE_MAX_TRUST_LIST_CERTS} certificates",
                    {"bytes": len(tf.data), "certificates": certs},
                )
            )
        if tf.kind is Kind.ITL and is_blank_itl(tf):
            out.append(
                Finding(
                    "BLANK_ITL",
                    Severity.WARNING,
                    'ITL has no TVS, TFTP or CallManager records: "Prepare Cluster for Rollback to pre-8.0" '
                    "is probably on",
                    {"roles": sorted({r.role for r in tf.records if r.role is not None})},
                )
            )
    if h.digest_code == Digest.SHA512:
        out.append(
            Finding(
                "DIGEST_SHA512",
                Severity.INFO,
                "file is signed with SHA-512: older phone models cannot verify it",
                {"digest": "sha512"},
            )
        )
    for tag, offset in h.unknown_tags:
        out.append(
            Finding(
                "UNKNOWN_TAG",
                Severity.INFO,
                f"unknown header tag {tag} at offset {offset}",
                {"tag": tag, "offset": offset},
            )
        )
    for rec in tf.records:
        for tag in rec.unknown_tags:
            out.append(
                Finding(
                    "UNKNOWN_TAG",
                    Severity.INFO,
                    f"unknown tag {tag} in record at offset {rec.offset}",
                    {"tag": tag, "offset": rec.offset},
                )
            )
    for issue in tf.issues:
        out.append(
            Finding(
                "PARSE_TOLERATED",
                Severity.WARNING,
                f"offset {issue.offset}: {issue.reason}",
                {"offset": issue.offset},
            )
        )
    return out


def is_blank_itl(tf: TrustFile) -> bool:
    """The rollback ITL (spec §5.6): its TVS and TFTP sections are empty, often only CAPF is left.

    A CCM record also counts as content: a third-party ITL (certutils) lists CallManagers as CCM
    without any TFTP role, and that is not the rollback ITL."""
    roles = {r.role for r in tf.records}
    return not roles & {Role.TVS, Role.TFTP, Role.CCM_TFTP, Role.CCM}
