"""Findings: what a check concluded, with its stable code, severity and evidence.

``Code`` is the registry of every finding code the scanner can emit. Codes are API (reports,
pipelines and the scan history compare them): never renamed or reused, so a new one is added
here first, and docs/finding-codes.md lists each member (tests/test_codes.py holds the two, and
every code-like literal in the package, to the registry).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.StrEnum):
    BLOCKER = "BLOCKER"
    WARNING = "WARNING"
    INFO = "INFO"


_B, _W, _I = Severity.BLOCKER, Severity.WARNING, Severity.INFO


class Code(enum.StrEnum):
    """A finding code: its value is its name (the spelling reports carry). ``severities``: every
    severity a finding with this code may have (several where the context decides, e.g. a
    destination certificate that expired blocks, a source one warns); ``unknown``: its findings can
    leave a check UNKNOWN (evidence the check needs is not there); ``meaning``: one line."""

    severities: frozenset[Severity]
    unknown: bool
    meaning: str

    def __new__(
        cls, value: str, severities: frozenset[Severity], meaning: str, unknown: bool = False
    ) -> Code:
        member = str.__new__(cls, value)
        member._value_ = value
        member.severities = severities
        member.meaning = meaning
        member.unknown = unknown
        return member

    # --- One trust file on its own (``trustscan inspect``; the cluster's lists in a scan) ------
    SIGNATURE_INVALID = "SIGNATURE_INVALID", frozenset({_B}), "the file's signature did not verify"
    SIGNER_NOT_SAST = (
        "SIGNER_NOT_SAST", frozenset({_W}), "the certificate that verified the file has no SAST record in it"
    )
    CERT_EXPIRED = (
        "CERT_EXPIRED", frozenset({_B, _W}),
        "a certificate is past its notAfter at the time judged (a destination signer's blocks)",
    )
    CERT_EXPIRING = "CERT_EXPIRING", frozenset({_W}), "a certificate expires within the expiry window"
    CERT_MALFORMED = (
        "CERT_MALFORMED", frozenset({_B, _W}),
        "a record's certificate cannot be read (a blocker when it is the signer and nothing verified)",
    )
    RECORD_INCONSISTENT = (
        "RECORD_INCONSISTENT", frozenset({_W}), "a record's fields differ from its own embedded certificate"
    )
    ITL_TOO_LARGE = (
        "ITL_TOO_LARGE", frozenset({_B}), "a CTL/ITL over 64 KB or over 39 certificates: phones refuse it"
    )
    BLANK_ITL = (
        "BLANK_ITL", frozenset({_W}), "an ITL with no TVS, TFTP or CallManager records (the rollback ITL)"
    )
    DIGEST_SHA512 = "DIGEST_SHA512", frozenset({_I}), "the file is signed with SHA-512"
    UNKNOWN_TAG = "UNKNOWN_TAG", frozenset({_I}), "a tag no source documents, kept byte for byte"
    PARSE_TOLERATED = "PARSE_TOLERATED", frozenset({_W}), "something a lenient parse tolerated"

    # --- Cluster level (the readiness spec's codes, docs/finding-codes.md) ------------------------
    SRC_ROLLBACK_ACTIVE = "SRC_ROLLBACK_ACTIVE", frozenset({_I}), "the source serves the blank rollback ITL"
    SRC_ROLLBACK_PENDING = (
        "SRC_ROLLBACK_PENDING", frozenset({_W}),
        "AXL says \"Prepare Cluster for Rollback to pre-8.0\" is True, but no source node serves the blank ITL yet",
    )
    CLUSTER_MODE_MISMATCH = (
        "CLUSTER_MODE_MISMATCH", frozenset({_W}),
        "the cluster's security mode in AXL differs from the mode the profile gives",
    )
    SRC_MIXED_MODE_ROLLBACK = (
        "SRC_MIXED_MODE_ROLLBACK", frozenset({_B}),
        "the source is in mixed mode and serves the blank rollback ITL: phones cannot reach TVS",
    )
    DEST_SIGNER_UNTRUSTED = (
        "DEST_SIGNER_UNTRUSTED", frozenset({_B}),
        "a destination list's signer is not in the source's Phone-SAST-trust",
    )
    DEST_SIGNER_NOT_PHONE_SAST = (
        "DEST_SIGNER_NOT_PHONE_SAST", frozenset({_B}),
        "a destination list's signer is in the source's CallManager-trust only",
    )
    ITLRECOVERY_NOT_IMPORTED = (
        "ITLRECOVERY_NOT_IMPORTED", frozenset({_B}),
        "the destination's ITLRecovery certificate is not in the source's Phone-SAST-trust",
    )
    NODE_MISMATCH = (
        "NODE_MISMATCH", frozenset({_W}),
        "a cluster's nodes serve different lists where they should agree, or TFTP and HTTP disagree",
    )
    TVS_UNREACHABLE = (
        "TVS_UNREACHABLE", frozenset({_B, _W}), "a TVS member refused or did not answer", True
    )
    TVS_CERT_NOT_IN_ITL = (
        "TVS_CERT_NOT_IN_ITL", frozenset({_B, _W}),
        "a TVS presents a certificate no ITL lists with role TVS (unknown beside an unprobed member)", True,
    )
    NO_ROLLBACK_PATH = (
        "NO_ROLLBACK_PATH", frozenset({_W}),
        "the source's signers are missing from the destination's stores: no way back (C8)",
    )
    TRUST_STORE_MISSING = (
        "TRUST_STORE_MISSING", frozenset({_W}), "the source's Phone-SAST-trust store was not given", True
    )

    # --- Phone level (the readiness spec's codes) --------------------------------------------------
    SRC_ITL_MISSING = "SRC_ITL_MISSING", frozenset({_B}), "no source node serves an ITL for the phone"
    SRC_ITL_INVALID = "SRC_ITL_INVALID", frozenset({_B, _W}), "the source ITL for the phone is not valid"
    SRC_CTL_INVALID = (
        "SRC_CTL_INVALID", frozenset({_B, _W}),
        "the source CTL for the phone is not valid (or, in mixed mode, missing)",
    )
    PHONE_TRUST_STALE = (
        "PHONE_TRUST_STALE", frozenset({_B, _W}), "the list the phone holds is not what the source serves it"
    )
    PHONE_EVIDENCE_MISSING = (
        "PHONE_EVIDENCE_MISSING", frozenset({_W}),
        "the phone's web page does not say which lists it holds", True,
    )
    PHONE_TRUST_UPDATE_FAILED = (
        "PHONE_TRUST_UPDATE_FAILED", frozenset({_B}), "the phone's status messages end with a failed update"
    )
    TVS_NOT_CONFIGURED = (
        "TVS_NOT_CONFIGURED", frozenset({_B, _W}), "the phone's source config lists no TVS member"
    )
    DEST_NOT_PROVISIONED = (
        "DEST_NOT_PROVISIONED", frozenset({_B, _W}),
        "no (or not every) destination node has a config for the phone",
    )
    DEST_CONFIG_SIGNER_UNKNOWN = (
        "DEST_CONFIG_SIGNER_UNKNOWN", frozenset({_B}),
        "the destination config is not signed by a TFTP record of its node's ITL/CTL",
    )
    DEST_ITL_INVALID = "DEST_ITL_INVALID", frozenset({_B}), "a destination node serves no valid ITL"
    DEST_CTL_INVALID = (
        "DEST_CTL_INVALID", frozenset({_B}), "a mixed-mode destination node serves no valid CTL"
    )
    DIGEST_UNSUPPORTED = (
        "DIGEST_UNSUPPORTED", frozenset({_B}),
        "the destination signs with SHA-512 and the model cannot verify it",
    )
    SRC_CTL_WITHOUT_DEST_CTL = (
        "SRC_CTL_WITHOUT_DEST_CTL", frozenset({_B}),
        "the source is in mixed mode and the destination is not: the phone keeps the source CTL",
    )
    FETCH_FAILED = "FETCH_FAILED", frozenset({_W}), "a file the check needs could not be fetched", True

    # --- Added by trustscan (docs/finding-codes.md) ----------------------------------------------
    PHONE_TRUST_ON_FIRST_USE = (
        "PHONE_TRUST_ON_FIRST_USE", frozenset({_W}),
        "the phone holds no CTL and no ITL: it trusts the first ITL",
    )
    EVIDENCE_MISSING = (
        "EVIDENCE_MISSING", frozenset({_W}),
        "evidence a check needs is not in the evidence directory (never collected, or damaged)", True,
    )
    CONFIG_REFUSED = (
        "CONFIG_REFUSED", frozenset({_W}),
        "the phone's source config was fetched but its parser refused it", True,
    )
    TVS_OUTSIDE_PROFILE = (
        "TVS_OUTSIDE_PROFILE", frozenset({_W}),
        "a source config names a TVS address outside the profile: never contacted", True,
    )
    NODE_NOT_FOUND_RATE = (
        "NODE_NOT_FOUND_RATE", frozenset({_W}),
        "a TFTP node answers \"not found\" far more often than its peers",
    )
    ANALYSIS_ERROR = (
        "ANALYSIS_ERROR", frozenset({_W}),
        "the scanner failed on a file (a bug, caught): the file decides nothing yet", True,
    )
    # Sites (scanner.app.sites, docs/sites.md): in the manifest's error text of the phones it left out.
    SITE_UNAVAILABLE = (
        "SITE_UNAVAILABLE", frozenset({_W}),
        "the phone's site had no worker to collect it (none at start, or its last one died mid-shard)", True,
    )


@dataclass(frozen=True, slots=True)
class Finding:
    code: Code
    severity: Severity
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "severity": self.severity.value,
            "message": self.message,
            "evidence": dict(self.evidence),
        }
