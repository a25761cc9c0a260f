"""The readiness checks C1-C8 (docs/readiness.md), as pure functions over evidence.

Input: what was collected (``ClusterEvidence`` for each cluster, ``PhoneEvidence`` per phone),
already in memory; no I/O here. Output: per phone a readiness with a status per check and the
findings that explain it; per cluster its findings; per scan a verdict.

How a phone moves at cutover: it fetches the destination's CTL (if the destination is in mixed
mode), then its ITL, then its signed config. Each new list must be signed by a certificate the
phone already trusts with role SAST, or that the source cluster's TVS vouches for (a certificate
in the source's Phone-SAST-trust store, reached over TLS to a TVS whose certificate is in the
phone's ITL). The checks make each link of that chain visible:

- C1 the source's files are valid; C2 the phone holds what the source serves; C3 the source ITL is
  not the blank rollback ITL (in mixed mode); C4 TVS is reachable and trusted; C5 every destination
  signer is trusted directly or through TVS; C6 the destination is provisioned for the phone and
  consistent; C7 nothing known to break phones; C8 a way back (advisory).

What does not depend on the phone is checked once per scan (``_cluster_checks``, into
``ClusterFacts``); then each phone's checks, named for what they check: ``source_lists_valid``
(C1), ``phone_holds_served_lists`` (C2), ``source_itl_not_blank`` (C3),
``destination_signers_trusted`` (C5, which says whether ``tvs_trusted``, C4, is needed),
``destination_provisioned`` (C6), ``within_phone_limits`` (C7); C8 is the cluster's ``_way_back``.
A cluster-level finding is repeated on each phone it affects, so each row explains itself.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scanner.core.cucm.axl import ClusterSettings
from scanner.core.devconfig import DeviceConfig, parse_device_config
from scanner.core.errors import ParseError
from scanner.core.evidence import Outcome
from scanner.core.filechecks import PHONE_MAX_TRUST_LIST_BYTES, PHONE_MAX_TRUST_LIST_CERTS, is_blank_itl
from scanner.core.findings import Code, Finding, Severity
from scanner.core.parsecache import ParseCache, digest
from scanner.core.phonepage import PhonePage, StatusMessages
from scanner.core.policy import CHECKS, Policy
from scanner.core.trustcache import DEFAULT_CACHE, INTERNAL_ERROR, TrustFileCache, TrustFileCheck, kind_hint
from scanner.core.trustlist import Digest, Role, TrustFile, parse
from scanner.core.verify import StoredCert, TrustStore, cert_facts, load_certificate, verify

PHONE_SAST_TRUST = "Phone-SAST-trust"
CALLMANAGER_TRUST = "CallManager-trust"
TFTP_ROLES = frozenset({Role.TFTP, Role.CCM_TFTP})


class CheckStatus(enum.StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    UNKNOWN = "UNKNOWN"


class Readiness(enum.StrEnum):
    READY = "READY"
    NOT_READY = "NOT_READY"
    UNKNOWN = "UNKNOWN"


class Verdict(enum.StrEnum):
    GO = "GO"
    NO_GO = "NO_GO"
    INCOMPLETE = "INCOMPLETE"


class StoreState(enum.StrEnum):
    """Whether a cluster's trust store (Phone-SAST-trust, CallManager-trust) can be consulted."""

    OK = "ok"
    MISSING = "missing"  # the profile names it, but it could not be read
    NOT_CONFIGURED = "not configured"  # the profile names none


# Outcomes of evidence the analysis could not use (scanner.app.assemble), beside the manifest's
# ``Outcome``s: a planned file with no manifest line, and a blob that is missing or does not match
# its hash. Both say nothing about the node or the phone, so they only ever make a check UNKNOWN
# (EVIDENCE_MISSING).
NOT_COLLECTED = "not_collected"
DAMAGED = "damaged"
EVIDENCE_GAPS = frozenset({NOT_COLLECTED, DAMAGED})
# A TVS address the scanner did not contact: outside the profile (scanner.app.collect only probes the
# profile's TVS members and its allow-list: ``skipped``), or never probed. Unknown, never unreachable.
NOT_PROBED = frozenset({NOT_COLLECTED, DAMAGED, Outcome.SKIPPED})
# NODE_NOT_FOUND_RATE: a node answers "not found" for this share of per-phone files more than
# the cluster's best node, over at least this many answers: a sick node (a full disk, an
# exhausted server), not a fleet that is only half provisioned (then every node says so alike).
NOT_FOUND_EXCESS = 0.25
NOT_FOUND_MIN_ANSWERS = 20


# --- Evidence (input) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileEvidence:
    """One fetch of one file from one node: the bytes, or why there are none."""

    cluster: str
    node: str
    name: str
    outcome: str  # an ``Outcome`` value (ok, not_found, timeout, ...), or NOT_COLLECTED or DAMAGED
    data: bytes | None = field(default=None, repr=False)
    transport: str | None = None
    detail: str | None = None
    # Digest of the original signed message when the stored bytes were redacted (the evidence
    # record keeps it: scanner/core/evidence.py).
    signed_digest: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.OK and self.data is not None


@dataclass(frozen=True, slots=True)
class TvsEvidence:
    name: str | None
    address: str
    port: int
    outcome: str
    cert_der: bytes | None = field(default=None, repr=False)
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterEvidence:
    name: str  # "source" or "destination"
    mixed: bool
    nodes: tuple[str, ...]
    files: tuple[FileEvidence, ...]  # CTLFile.tlv / ITLFile.tlv per node (per transport)
    # Store name -> store; None: configured but missing/unreadable. Absent: not configured.
    trust_stores: Mapping[str, TrustStore | None] = field(default_factory=dict)
    tvs: tuple[TvsEvidence, ...] = ()
    # node -> (not found, answered) over the per-phone files asked of it (NODE_NOT_FOUND_RATE).
    file_answers: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # What the cluster's AXL said of its security mode and rollback parameter (None: not asked).
    axl_settings: ClusterSettings | None = None


@dataclass(frozen=True, slots=True)
class PhoneEvidence:
    name: str
    model: str | None = None
    ip: str | None = None
    device_pool: str | None = None
    description: str | None = None
    files: tuple[FileEvidence, ...] = ()  # per-phone files from both clusters
    page: PhonePage | None = None
    page_outcome: str | None = None
    page_detail: str | None = None
    status: StatusMessages | None = None
    status_outcome: str | None = None


# --- Results (output) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhoneResult:
    name: str
    model: str | None
    ip: str | None
    device_pool: str | None
    readiness: Readiness
    checks: Mapping[str, CheckStatus]
    findings: tuple[Finding, ...]
    facts: Mapping[str, Any]

    @property
    def codes(self) -> list[str]:
        return sorted({f.code.value for f in self.findings})

    @property
    def reasons(self) -> list[str]:
        """Codes of the findings that decide the verdict: blockers, else what is unknown."""
        blockers = sorted({f.code.value for f in self.findings if f.severity is Severity.BLOCKER})
        if blockers or self.readiness is not Readiness.UNKNOWN:
            return blockers
        return sorted({f.code.value for f in self.findings if f.evidence.get("unknown")})


@dataclass(frozen=True, slots=True)
class ClusterResult:
    name: str
    findings: tuple[Finding, ...]

    @property
    def blockers(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.BLOCKER)


# --- Each distinct list checked once, shared by every phone --------------------------------------


@dataclass(frozen=True, slots=True)
class ListState:
    """A CTL or ITL as one node serves it, parsed and verified once (``checked``: None when the
    fetch brought no bytes)."""

    fetch: FileEvidence
    checked: TrustFileCheck | None
    # The certificates by role, found once: every phone asks the same lists the same question.
    _by_roles: dict[frozenset[int], frozenset[bytes]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    @property
    def file(self) -> TrustFile | None:
        return self.checked.file if self.checked else None

    @property
    def valid(self) -> bool:
        a = self.checked
        return bool(a and a.file and a.verification and a.verification.valid and a.verification.signer_has_sast_role)

    @property
    def internal_error(self) -> bool:
        """The scanner failed while verifying the file (a bug, caught by the trust-file cache):
        says nothing of the file, so it decides nothing (ANALYSIS_ERROR, unknown)."""
        v = self.checked.verification if self.checked is not None else None
        return v is not None and v.reason.startswith(INTERNAL_ERROR)

    @property
    def problem(self) -> str:
        a = self.checked
        if a is None:
            return f"fetch {self.fetch.outcome}" + (f": {self.fetch.detail}" if self.fetch.detail else "")
        if a.error is not None:
            return f"malformed: {a.error}"
        v = a.verification
        if v is None or not v.valid:
            return f"signature not verified ({v.reason if v else 'not checked'})"
        if not v.signer_has_sast_role:
            return "signer has no SAST record in the file"
        return "valid"

    @property
    def signer_der(self) -> bytes | None:
        a = self.checked
        if a and a.verification and a.verification.signer:
            return a.verification.signer.der
        return None

    def sast_ders(self) -> set[bytes]:
        return self.role_ders(_SAST)

    def role_ders(self, roles: Iterable[int]) -> set[bytes]:
        wanted = frozenset(roles)
        found = self._by_roles.get(wanted)
        if found is None:
            tf = self.file
            found = frozenset(r.certificate for r in tf.records if r.role in wanted and r.certificate) if tf else frozenset()
            self._by_roles[wanted] = found
        return set(found)  # the caller's to change


_SAST = frozenset({Role.SAST})
_NO_LIST = ListState(FileEvidence("", "", "", NOT_COLLECTED), None)


def _config_for_checks(payload: bytes) -> DeviceConfig:
    """A config as the checks read it: without the names of its secret fields (unread here)."""
    return parse_device_config(payload, with_redacted_fields=False)


def final_answer(fetches: Sequence[FileEvidence]) -> FileEvidence:
    """The answer of one file from one node, from its attempts in the order they were made: an
    ok one if any (``both`` fetches HTTP and TFTP; either may have the bytes), else the last
    (``http-first`` records a failed HTTP attempt before the TFTP one that decided)."""
    return next((f for f in fetches if f.ok), fetches[-1])


def _list_state(fe: FileEvidence, cache: TrustFileCache) -> ListState:
    if not fe.ok or fe.data is None:
        return ListState(fe, None)
    return ListState(fe, cache.check(fe.data, name_hint=fe.name))


def _hashes(data: bytes, cache: TrustFileCache) -> tuple[str, str]:
    d = cache.check(data, verify_signature=False).digests
    return d.sha1, d.md5


def _signer_label(state: ListState) -> str:
    a = state.checked
    if a and a.verification and a.verification.signer:
        s = a.verification.signer
        return f"{s.subject} (serial {s.serial})"
    tf = state.file
    return f"{tf.header.signer_name} (serial {tf.header.signer_serial_hex})" if tf else "unknown signer"


def _cert_label(der: bytes) -> dict[str, Any]:
    cert = load_certificate(der)
    if cert is None:
        return {}
    f = cert_facts(cert)
    return {"subject": f.subject, "serial": f.serial, "not_after": f.not_after.isoformat()}


@dataclass
class _Cluster:
    """Everything about one cluster that does not depend on the phone. ``findings`` holds the
    cluster's findings: those of its files (``_cluster_state``), then those of the cluster-level
    checks (``_cluster_checks``)."""

    ev: ClusterEvidence
    ctl: dict[str, ListState] = field(default_factory=dict)  # node -> its CTLFile.tlv
    itl: dict[str, ListState] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    tvs_by_address: dict[str, list[TvsEvidence]] = field(default_factory=dict)

    def store(self, name: str) -> TrustStore | None:
        return self.ev.trust_stores.get(name)

    def store_state(self, name: str) -> StoreState:
        if name not in self.ev.trust_stores:
            return StoreState.NOT_CONFIGURED
        return StoreState.MISSING if self.ev.trust_stores[name] is None else StoreState.OK

    def store_ders(self, name: str) -> set[bytes]:
        s = self.store(name)
        return {c.der for c in s.certs} if s else set()


def _cluster_state(ev: ClusterEvidence, cache: TrustFileCache) -> _Cluster:
    c = _Cluster(ev)
    by_node_file: dict[tuple[str, str], list[FileEvidence]] = {}
    for fe in ev.files:
        by_node_file.setdefault((fe.node, fe.name), []).append(fe)
    for (node, name), fetches in by_node_file.items():
        best = final_answer(fetches)
        target = c.ctl if name.upper().startswith("CTL") else c.itl
        target[node] = state = _list_state(best, cache)
        v = state.checked.verification if state.checked is not None else None
        for f in v.findings if v is not None else ():
            # CERT_MALFORMED of a record other than the signer (the signer's makes the list
            # invalid, which SRC_/DEST_*_INVALID reports per phone): a cluster warning.
            if f.severity is not Severity.BLOCKER:
                c.findings.append(Finding(
                    f.code, f.severity, f"{ev.name} {name} of node {node}: {f.message}",
                    {**f.evidence, "cluster": ev.name, "node": node, "file": name},
                ))
        good = [f for f in fetches if f.ok and f.data is not None]
        if len({f.data for f in good}) > 1:
            c.findings.append(
                Finding(
                    Code.NODE_MISMATCH, Severity.WARNING,
                    f"{ev.name} node {node} serves different {name} over "
                    + " and ".join(sorted({f.transport or '?' for f in good})),
                    {"cluster": ev.name, "node": node, "file": name},
                )
            )
    for t in ev.tvs:
        c.tvs_by_address.setdefault(address_key(t.address), []).append(t)
    c.findings += _not_found_rate(ev)
    # The cluster CTL is one file: every node should serve the same bytes.
    # (Only valid CTLs: a broken one is its own finding, DEST_/SRC_CTL_INVALID.)
    ctl_hashes = {n: s.checked.sha256 for n, s in c.ctl.items() if s.checked and s.valid}
    if len(set(ctl_hashes.values())) > 1:
        c.findings.append(
            Finding(
                Code.NODE_MISMATCH, Severity.WARNING,
                f"{ev.name} TFTP nodes serve different CTL files",
                {"cluster": ev.name, "file": "CTLFile.tlv", "sha256": ctl_hashes},
            )
        )
    return c


def address_key(address: str) -> str:
    """One spelling per address (``FE80::1`` and ``fe80::1`` are one TVS)."""
    try:
        return ipaddress.ip_address(address).compressed
    except ValueError:
        return address.lower().rstrip(".")


def _not_found_rate(ev: ClusterEvidence) -> list[Finding]:
    """Nodes that answer "not found" far more often than the cluster's best node."""
    rates = {n: nf / total for n, (nf, total) in ev.file_answers.items() if total >= NOT_FOUND_MIN_ANSWERS}
    if len(rates) < 2:
        return []
    best = min(rates.values())
    out = []
    for node, rate in sorted(rates.items()):
        if rate - best >= NOT_FOUND_EXCESS:
            nf, total = ev.file_answers[node]
            out.append(Finding(
                Code.NODE_NOT_FOUND_RATE, Severity.WARNING,
                f"{ev.name} node {node} answered \"not found\" for {nf} of {total} phone files ({rate:.0%}); "
                f"the cluster's best node for {best:.0%}: check that node before trusting its phones' "
                "missing-file findings",
                {"cluster": ev.name, "node": node, "not_found": nf, "answered": total,
                 "rate": round(rate, 4), "best_node_rate": round(best, 4)},
            ))
    return out


# --- The cluster-level checks -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DestSigner:
    """Who signs one destination list, and what the source's trust stores say of that signer."""

    node: str
    file: str  # CTLFile.tlv or ITLFile.tlv
    list: ListState
    # The blockers when the source's Phone-SAST-trust does not hold the signer (empty when it
    # does, when the list is invalid, or when the store is missing).
    untrusted: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class ClusterFacts:
    """What the cluster-level checks conclude, for the phone checks to read (``_cluster_checks``)."""

    source_blank_itl: bool  # C3: a source node serves the blank rollback ITL
    dest_signers: tuple[DestSigner, ...]  # C5: per destination node, its CTL (mixed) and ITL
    sast_store: StoreState  # C5: the source's Phone-SAST-trust, what TVS vouches for as SAST
    way_back: CheckStatus  # C8, the same for every phone


def _cluster_checks(src: _Cluster, dst: _Cluster, now: dt.datetime, expiry_window: dt.timedelta) -> ClusterFacts:
    """The checks that do not depend on the phone, once per scan: each step's findings go on its
    cluster's list (a phone that a finding affects repeats it), its conclusions into the facts."""
    for state in (src, dst):
        state.findings += _list_limit_findings(state, now, expiry_window)
        state.findings += _axl_findings(state)
    blank_nodes = _blank_itl_nodes(src)
    src.findings += _rollback_itl_findings(src, blank_nodes)
    # On the rollback path (non-secure source, blank ITL) phones never consult TVS.
    if not (blank_nodes and not src.ev.mixed):
        src.findings += _tvs_probe_findings(src)
    sast_store = src.store_state(PHONE_SAST_TRUST)
    src.findings += _sast_store_findings(sast_store)
    signers = _dest_signers(src, dst, sast_store)
    dst.findings += _once_per_list(f for s in signers for f in s.untrusted)
    way_back, no_way_back = _way_back(src, dst)
    dst.findings += no_way_back
    return ClusterFacts(bool(blank_nodes), signers, sast_store, way_back)


def _list_limit_findings(state: _Cluster, now: dt.datetime, expiry_window: dt.timedelta) -> list[Finding]:
    """C7 at cluster level, per list each node serves: too large for phones, and its signer's
    certificate expired or expiring at the judged time."""
    out: list[Finding] = []
    for kind, lists in (("CTL", state.ctl), ("ITL", state.itl)):
        for node, ls in lists.items():
            tf = ls.file
            if tf is None:
                continue
            certs = sum(1 for r in tf.records if r.certificate)
            if len(tf.data) > PHONE_MAX_TRUST_LIST_BYTES or certs > PHONE_MAX_TRUST_LIST_CERTS:
                out.append(
                    Finding(
                        Code.ITL_TOO_LARGE, Severity.BLOCKER,
                        f"{state.ev.name} node {node} serves a {kind} of {len(tf.data)} bytes with "
                        f"{certs} certificates; phones refuse more than 64 KB or 39 certificates",
                        {"cluster": state.ev.name, "node": node, "file": ls.fetch.name,
                         "bytes": len(tf.data), "certificates": certs},
                    )
                )
            out += _signer_expiry_findings(state, node, ls, now, expiry_window)
    return out


def _signer_expiry_findings(
    state: _Cluster, node: str, ls: ListState, now: dt.datetime, expiry_window: dt.timedelta
) -> list[Finding]:
    der = ls.signer_der
    cert = load_certificate(der) if der is not None else None
    if cert is None:
        return []
    facts = cert_facts(cert)
    ev = {"cluster": state.ev.name, "node": node, "file": ls.fetch.name, "serial": facts.serial,
          "subject": facts.subject, "not_after": facts.not_after.isoformat()}
    if facts.expired(now):
        sev = Severity.BLOCKER if state.ev.name == "destination" else Severity.WARNING
        return [Finding(Code.CERT_EXPIRED, sev,
                        f"{state.ev.name} {ls.fetch.name} of node {node} is signed by {facts.subject}, "
                        f"expired {facts.not_after:%Y-%m-%d}", ev)]
    if facts.expires_within(now, expiry_window):
        return [Finding(Code.CERT_EXPIRING, Severity.WARNING,
                        f"{state.ev.name} {ls.fetch.name} signer {facts.subject} expires "
                        f"{facts.not_after:%Y-%m-%d}", ev)]
    return []


def _blank_itl_nodes(src: _Cluster) -> list[str]:
    return sorted(n for n, ls in src.itl.items() if ls.file and is_blank_itl(ls.file))


def _axl_findings(state: _Cluster) -> list[Finding]:
    """What AXL says against what the profile says: a mode the profile gets wrong would decide
    C3 and C5 on a wrong premise, so it is said (the files themselves still decide)."""
    axl = state.ev.axl_settings
    if axl is None or axl.mixed_mode is None or axl.mixed_mode == state.ev.mixed:
        return []
    says = "mixed" if axl.mixed_mode else "non-secure"
    return [
        Finding(
            Code.CLUSTER_MODE_MISMATCH, Severity.WARNING,
            f"the profile says {state.ev.name} is {'mixed' if state.ev.mixed else 'non-secure'}, but its AXL "
            f"says ClusterSecurityMode is {says}: correct the profile's mode",
            {"cluster": state.ev.name, "profile": "mixed" if state.ev.mixed else "non-secure", "axl": says},
        )
    ]


def _rollback_itl_findings(src: _Cluster, blank_nodes: list[str]) -> list[Finding]:
    """C3 at cluster level: the source serves the blank rollback ITL; in mixed mode, a blocker.
    With AXL: the "Prepare Cluster for Rollback to pre-8.0" parameter set while no node serves the
    blank ITL yet is said too (the files change when the TFTP service rebuilds them)."""
    axl = src.ev.axl_settings
    if not blank_nodes:
        if axl is not None and axl.rollback_to_pre_8:
            return [
                Finding(
                    Code.SRC_ROLLBACK_PENDING, Severity.WARNING,
                    "the source's enterprise parameter \"Prepare Cluster for Rollback to pre-8.0\" is True (AXL) "
                    "but no node serves the blank ITL yet: once the TFTP service rebuilds its files, phones "
                    "download the blank ITL; scan again then",
                    {"cluster": "source", "parameter": "RollBackToPreGrayback", "value": True},
                )
            ]
        return []
    out = [
        Finding(
            Code.SRC_ROLLBACK_ACTIVE, Severity.INFO,
            "source serves the blank rollback ITL: phones that downloaded it accept any new ITL",
            {"cluster": "source", "nodes": blank_nodes},
        )
    ]
    if src.ev.mixed:
        out.append(
            Finding(
                Code.SRC_MIXED_MODE_ROLLBACK, Severity.BLOCKER,
                "source is in mixed mode and serves the blank rollback ITL: phones cannot reach "
                "TVS to verify the destination CTL (set \"Prepare Cluster for Rollback to pre-8.0\" "
                "to False)",
                {"cluster": "source", "nodes": blank_nodes},
            )
        )
    return out


def _tvs_probe_findings(src: _Cluster) -> list[Finding]:
    """C4 at cluster level: each TVS probe that was not made, failed, or found a certificate that
    no source ITL lists with role TVS."""
    itl_tvs_ders = set().union(*(ls.role_ders([Role.TVS]) for ls in src.itl.values())) if src.itl else set()
    out: list[Finding] = []
    for t in src.ev.tvs:
        ev = {"cluster": "source", "tvs": t.name, "address": f"{t.address}:{t.port}"}
        if t.outcome in EVIDENCE_GAPS:
            out.append(
                Finding(Code.EVIDENCE_MISSING, Severity.WARNING,
                        f"TVS {t.name or t.address}:{t.port} was not probed: {t.detail or t.outcome}",
                        ev | {"outcome": t.outcome, "unknown": True})
            )
        elif t.outcome == Outcome.SKIPPED:
            out.append(
                Finding(Code.TVS_OUTSIDE_PROFILE, Severity.WARNING,
                        f"a source config names TVS {t.address}:{t.port}, which is not a TVS member of the "
                        f"profile: never contacted ({t.detail or 'not in the profile'})",
                        ev | {"outcome": t.outcome, "unknown": True})
            )
        elif t.outcome != Outcome.OK or t.cert_der is None:
            out.append(
                Finding(Code.TVS_UNREACHABLE, Severity.WARNING,
                        f"TVS {t.name or t.address}:{t.port} {t.outcome}" + (f" ({t.detail})" if t.detail else ""),
                        ev | {"outcome": t.outcome})
            )
        elif t.cert_der not in itl_tvs_ders:
            out.append(
                Finding(Code.TVS_CERT_NOT_IN_ITL, Severity.WARNING,
                        f"TVS {t.name or t.address} presents a certificate that no source ITL lists with role TVS",
                        ev | _cert_label(t.cert_der))
            )
    return out


def _sast_store_findings(sast_store: StoreState) -> list[Finding]:
    if sast_store is StoreState.OK:
        return []
    return [
        Finding(Code.TRUST_STORE_MISSING, Severity.WARNING,
                f"source {PHONE_SAST_TRUST} store is {sast_store}: destination signers "
                "cannot be checked against what TVS will vouch for",
                {"cluster": "source", "store": PHONE_SAST_TRUST, "unknown": True})
    ]


def _dest_signers(src: _Cluster, dst: _Cluster, sast_store: StoreState) -> tuple[DestSigner, ...]:
    """C5 at cluster level: who signs each destination node's CTL (mixed mode) and ITL, and is
    that signer in the source's stores?"""
    sast, cm = src.store_ders(PHONE_SAST_TRUST), src.store_ders(CALLMANAGER_TRUST)
    out: list[DestSigner] = []
    for node in dst.ev.nodes:
        lists = []
        if dst.ev.mixed and node in dst.ctl:
            lists.append(("CTLFile.tlv", dst.ctl[node]))
        if node in dst.itl:
            lists.append(("ITLFile.tlv", dst.itl[node]))
        for fname, ls in lists:
            untrusted: tuple[Finding, ...] = ()
            if sast_store is StoreState.OK and not (fname == "ITLFile.tlv" and _vouched_by_ctl(dst, node, ls)):
                untrusted = _untrusted_signer_findings(node, fname, ls, sast, cm)
            out.append(DestSigner(node, fname, ls, untrusted))
    return tuple(out)


# The records of a destination CTL that vouch for an ITL signed by that certificate: the seed's
# step 9 shows the phone verify the destination's ITL "against the CTL, which holds the
# destination's CallManager certificate", without asking TVS; before 12.0 each TFTP node signs
# its ITL with its own CallManager certificate, a CCM+TFTP record of the cluster's CTL.
_ITL_SIGNER_ROLES = frozenset({Role.SAST, Role.TFTP, Role.CCM_TFTP})


def _vouched_by_ctl(dst: _Cluster, node: str, itl: ListState) -> bool:
    """Whether the node's valid CTL (mixed mode) lists the signer of its ITL with a role that lets
    a phone that accepted the CTL verify the ITL by it."""
    ctl = dst.ctl.get(node) if dst.ev.mixed else None
    der = itl.signer_der
    return ctl is not None and ctl.valid and der is not None and der in ctl.role_ders(_ITL_SIGNER_ROLES)


def _untrusted_signer_findings(
    node: str, fname: str, ls: ListState, sast: set[bytes], cm: set[bytes]
) -> tuple[Finding, ...]:
    """The blockers for a destination list whose signer the source's Phone-SAST-trust (``sast``)
    does not hold: in CallManager-trust (``cm``) only, or in neither; and, beside the general code,
    the specific cause when the signer is the destination's ITLRecovery."""
    der = ls.signer_der
    if der is None or der in sast:
        return ()  # an invalid destination file: reported per phone as DEST_*_INVALID
    ev = {"cluster": "destination", "node": node, "file": fname} | _cert_label(der)
    label = _signer_label(ls)
    if der in cm:
        return (Finding(Code.DEST_SIGNER_NOT_PHONE_SAST, Severity.BLOCKER,
                        f"destination {fname} of {node} is signed by {label}, which the source has in "
                        "CallManager-trust only: TVS will not vouch for it as SAST",
                        ev | {"store": CALLMANAGER_TRUST}),)
    found = [Finding(Code.DEST_SIGNER_UNTRUSTED, Severity.BLOCKER,
                     f"destination {fname} of {node} is signed by {label}, which is not in the source's "
                     f"{PHONE_SAST_TRUST}", ev | {"store": PHONE_SAST_TRUST})]
    if "ITLRECOVERY" in label.upper():
        # The destination's ITLRecovery certificate was never uploaded to the source's
        # Phone-SAST-trust: a step of the manual import for migrations to 12.x (Cisco's "Migrate
        # Phones Between Secure Clusters", Doc 213407).
        found.append(Finding(Code.ITLRECOVERY_NOT_IMPORTED, Severity.BLOCKER,
                             f"destination ITLRecovery {label} (signer of {fname} of {node}) was not imported "
                             f"into the source's {PHONE_SAST_TRUST}", ev | {"store": PHONE_SAST_TRUST}))
    return tuple(found)


def _once_per_list(found: Iterable[Finding]) -> list[Finding]:
    """One finding per code, node and file: a cluster lists each once; phones that need TVS for
    the list repeat it."""
    out: list[Finding] = []
    for x in found:
        if not any(y.code is x.code and y.evidence.get("node") == x.evidence.get("node")
                   and y.evidence.get("file") == x.evidence.get("file") for y in out):
            out.append(x)
    return out


def _way_back(src: _Cluster, dst: _Cluster) -> tuple[CheckStatus, list[Finding]]:
    """C8: could phones migrate back? The source's signers must be in the destination's
    Phone-SAST-trust and CallManager-trust. UNKNOWN without the destination's Phone-SAST-trust."""
    if dst.store_state(PHONE_SAST_TRUST) is not StoreState.OK:
        return CheckStatus.UNKNOWN, []
    d_sast, d_cm = dst.store_ders(PHONE_SAST_TRUST), dst.store_ders(CALLMANAGER_TRUST)
    missing = sorted({
        _signer_label(ls)
        for ls in [*src.ctl.values(), *src.itl.values()]
        if ls.signer_der is not None and (ls.signer_der not in d_sast or ls.signer_der not in d_cm)
    })
    if not missing:
        return CheckStatus.PASS, []
    return CheckStatus.WARN, [
        Finding(Code.NO_ROLLBACK_PATH, Severity.WARNING,
                "source signers missing from the destination's Phone-SAST-trust/CallManager-trust: "
                "phones could not migrate back: " + "; ".join(missing),
                {"cluster": "destination", "signers": missing})
    ]


# --- The evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScanInput:
    source: ClusterEvidence
    destination: ClusterEvidence


class Evaluator:
    """The cluster-level checks once, at construction; then ``phone`` for one phone at a time (the
    analysis streams: each result is written out before the next phone is read)."""

    def __init__(
        self, scan: ScanInput, policy: Policy, now: dt.datetime, cache: TrustFileCache = DEFAULT_CACHE,
        parsed: ParseCache | None = None,
    ) -> None:
        self.policy = policy
        self.now = policy.judge_time(now)
        self.cache = cache
        # The phones' own bytes (configs), each distinct one parsed and verified once: the same
        # config comes from every node of a cluster.
        self.parsed = parsed if parsed is not None else ParseCache()
        # Per destination node: who may sign its configs (the TFTP records of its lists), built
        # once for the scan rather than per phone (the lists are the cluster's, fixed here).
        self._config_signers: dict[str, tuple[TrustStore, str] | None] = {}
        self.src = _cluster_state(scan.source, cache)
        self.dst = _cluster_state(scan.destination, cache)
        self.facts = _cluster_checks(self.src, self.dst, self.now, policy.expiry_window)

    def cluster_results(self) -> tuple[ClusterResult, ClusterResult]:
        return (
            ClusterResult("source", tuple(self.src.findings)),
            ClusterResult("destination", tuple(self.dst.findings)),
        )

    def phone(self, p: PhoneEvidence) -> PhoneResult:
        run = _PhoneRun(self, p)
        return run.result()

    def signed_config(self, fe: FileEvidence) -> TrustFile:
        """The signed header and payload of a ``.cnf.xml.sgn``, parsed once per distinct bytes
        (``ParseError`` for a malformed one, the same each time)."""
        data = fe.data or b""
        return self.parsed.get(f"sgn:{kind_hint(fe.name)}", data, lambda d: parse(d, name_hint=fe.name))

    def device_config(self, payload: bytes) -> DeviceConfig:
        """A config's XML parsed once per distinct bytes (``ParseError``, the same each time)."""
        return self.parsed.get("cnf.xml", payload, _config_for_checks)

    def config_signers(self, node: str) -> tuple[TrustStore, str] | None:
        """The destination node's TFTP records as a store (and a key naming its certificates),
        or None when neither of its lists was read."""
        if node not in self._config_signers:
            lists = [ls for ls in (self.dst.itl.get(node), self.dst.ctl.get(node)) if ls is not None]
            if not any(ls.checked is not None and ls.file is not None for ls in lists):
                self._config_signers[node] = None
            else:
                trusted: set[bytes] = set()
                for ls in lists:
                    trusted |= ls.role_ders(TFTP_ROLES)
                name = f"{node} ITL/CTL TFTP records"
                store = TrustStore(name, tuple(
                    StoredCert(name, node, der, cert) for der in sorted(trusted) if (cert := load_certificate(der))
                ))
                self._config_signers[node] = (store, digest(b"".join(sorted(trusted))))
        return self._config_signers[node]


@dataclass
class _PhoneRun:
    """One phone's checks as they run (``result``): each check's status only ever worsens
    (``set``), each finding is recorded with the check it explains (``add``)."""

    ev: Evaluator
    p: PhoneEvidence
    checks: dict[str, CheckStatus] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # JSON-able: goes into the report
    # The source CTLs served to this phone, by node (C1 finds them, C2 matches the page's hash).
    src_ctl: dict[str, ListState] = field(default_factory=dict)
    # Per kind ("ITL", "CTL"): source nodes whose list could not be read while another node's
    # was. C1 leaves them here; C2 drops them once the phone's hash matches a list that was read.
    partial_failures: dict[str, list[FileEvidence]] = field(default_factory=dict)
    # Source lists served to this phone that are not valid (kind, code, node, list): C1 finds
    # them, ``_judge_invalid_served`` decides after C2 whether the phone holds them.
    invalid_served: list[tuple[str, Code, str, ListState]] = field(default_factory=list)

    def set(self, check: str, status: CheckStatus) -> None:
        order = [CheckStatus.PASS, CheckStatus.WARN, CheckStatus.UNKNOWN, CheckStatus.FAIL]
        cur = self.checks.get(check, CheckStatus.PASS)
        self.checks[check] = max(cur, status, key=order.index)

    def add(self, check: str, status: CheckStatus, finding: Finding) -> None:
        self.set(check, status)
        ev = dict(finding.evidence)
        ev["check"] = check
        if status is CheckStatus.UNKNOWN:
            ev["unknown"] = True
        self.findings.append(Finding(finding.code, finding.severity, finding.message, ev))

    def files(self, cluster: str, suffix: str) -> list[FileEvidence]:
        return [f for f in self.p.files if f.cluster == cluster and f.name.upper().endswith(suffix.upper())]

    def fetch_failed(self, check: str, fetches: Sequence[FileEvidence], what: str) -> None:
        """UNKNOWN for ``check``: FETCH_FAILED for what the network refused us, EVIDENCE_MISSING
        for what the evidence directory lacks (never collected, or its bytes damaged)."""
        gaps = [f for f in fetches if f.outcome in EVIDENCE_GAPS] or ([] if fetches else [_NO_LIST.fetch])
        failed = [f for f in fetches if f.outcome not in EVIDENCE_GAPS]
        if gaps and all(f.outcome == Outcome.NOT_FOUND for f in failed):
            failed = []  # definite answers beside the gap: the gap alone is why this is unknown
        if failed:
            reasons = sorted({f.outcome for f in failed})
            self.add(check, CheckStatus.UNKNOWN, Finding(
                Code.FETCH_FAILED, Severity.WARNING,
                f"{what}: could not be fetched ({', '.join(reasons)})",
                {"file": what, "reasons": reasons, "nodes": sorted({f.node for f in failed})},
            ))
        if gaps:
            reasons = sorted({f.outcome for f in gaps})
            details = sorted({f.detail for f in gaps if f.detail})
            files = sorted({f"{f.node}/{f.name}" if f.node else f.name or what for f in gaps})
            self.add(check, CheckStatus.UNKNOWN, Finding(
                Code.EVIDENCE_MISSING, Severity.WARNING,
                f"{what}: no usable evidence ({', '.join(reasons)}" + (f": {details[0]}" if details else "") + ")",
                {"file": what, "reasons": reasons, "files": files, "details": details},
            ))

    def _internal_error(self, check: str, ls: ListState) -> None:
        """UNKNOWN for ``check``: the scanner failed on the list (ANALYSIS_ERROR, a bug)."""
        v = ls.checked.verification if ls.checked is not None else None
        self.add(check, CheckStatus.UNKNOWN, Finding(
            Code.ANALYSIS_ERROR, Severity.WARNING,
            f"{ls.fetch.cluster} {ls.fetch.name} from {ls.fetch.node} could not be analysed: "
            f"{v.reason if v else INTERNAL_ERROR}",
            {"cluster": ls.fetch.cluster, "node": ls.fetch.node, "file": ls.fetch.name},
        ))

    def result(self) -> PhoneResult:
        """Every check on the phone, in the order a phone meets the links of its chain (C4 after
        C5: whether TVS is needed depends on the destination's signers)."""
        for c in CHECKS:
            self.checks[c] = CheckStatus.PASS
        src_itls = self.source_lists_valid()
        held = self.phone_holds_served_lists(src_itls)
        self._judge_invalid_served()
        self._unread_source_nodes()
        self.source_itl_not_blank(held)
        needs_tvs = self.destination_signers_trusted(held)
        if not (held.tofu or held.rollback):  # on those paths the phone never asks TVS
            self.tvs_trusted(held, needed=needs_tvs)
        self.destination_provisioned()
        self.within_phone_limits()
        self._repeat_node_mismatch()
        self._destination_gaps()
        self._way_back()
        readiness = self._readiness()
        p = self.p
        return PhoneResult(
            p.name, p.model, p.ip, p.device_pool, readiness, dict(self.checks), tuple(self.findings), self.facts
        )

    def _judge_invalid_served(self) -> None:
        """C1 for a source list that is not valid. A phone refuses such a list and keeps what it
        had (spec section 1: a list that does not verify is not installed), so the list blocks the
        phone only when its web page shows it holding those bytes, or shows nothing to tell. A phone
        whose page shows another hash holds another list (C2 says which): the broken file is the
        source's defect to fix, a warning for this phone; its migration depends on what it holds."""
        page = self.p.page
        for kind, code, node, ls in self.invalid_served:
            shown: str | None = None
            if page is not None:
                shown = page.itl_signature if kind == "ITL" else page.ctl_signature
            data = ls.fetch.data
            holds_other = bool(shown and data is not None and shown.lower() not in _hashes(data, self.ev.cache))
            evidence = {"cluster": "source", "node": node, "file": ls.fetch.name,
                        "sha256": ls.checked.sha256 if ls.checked else None}
            if holds_other:
                self.add("C1", CheckStatus.WARN, Finding(
                    code, Severity.WARNING,
                    f"source {kind} from {node} is not valid: {ls.problem}; the phone does not hold it "
                    f"(its page shows {kind} {shown}): fix the source file, the phone keeps the list it has",
                    evidence | {"phone_hash": shown, "held": False},
                ))
            else:
                self.add("C1", CheckStatus.FAIL, Finding(
                    code, Severity.BLOCKER, f"source {kind} from {node} is not valid: {ls.problem}", evidence,
                ))

    def _unread_source_nodes(self) -> None:
        """Source nodes whose list could not be read, left after C2: which list the phone holds is
        unknown, so a node we could not read may be its node (C1 UNKNOWN)."""
        for kind, gaps in sorted(self.partial_failures.items()):
            self.fetch_failed("C1", gaps, f"source {kind} of node(s) {', '.join(sorted({g.node for g in gaps}))}")

    def _repeat_node_mismatch(self) -> None:
        """Nodes of one cluster that disagree: whichever node the phone uses decides what it gets."""
        for state, check in ((self.ev.src, "C1"), (self.ev.dst, "C6")):
            for f in state.findings:
                if f.code is Code.NODE_MISMATCH:
                    self.add(check, CheckStatus.WARN, f)

    def _destination_gaps(self) -> None:
        """C5 and C7 judge the destination's lists: a list that is an evidence gap (or that the
        scanner failed on) leaves them unknown (C6 carries the finding that says which list and why)."""
        dst = self.ev.dst
        if any(ls.fetch.outcome in EVIDENCE_GAPS or ls.internal_error for ls in [*dst.itl.values(), *dst.ctl.values()]):
            self.set("C5", CheckStatus.UNKNOWN)
            self.set("C7", CheckStatus.UNKNOWN)

    def _way_back(self) -> None:
        """C8 is decided for the cluster; its finding is repeated on every phone."""
        self.checks["C8"] = self.ev.facts.way_back
        for f in self.ev.dst.findings:
            if f.code is Code.NO_ROLLBACK_PATH:
                self.findings.append(f)

    def _readiness(self) -> Readiness:
        if any(s is CheckStatus.FAIL for s in self.checks.values()):
            return Readiness.NOT_READY
        if any(self.checks[c] is CheckStatus.UNKNOWN for c in self.ev.policy.required):
            return Readiness.UNKNOWN
        return Readiness.READY

    def source_lists_valid(self) -> dict[str, ListState]:
        """C1: the source's ITL (and, in mixed mode, CTL) for this phone from every node parses,
        verifies, and its signer holds SAST in the file. Returns the source ITLs the phone may
        hold, by node (C2 matches the phone's hash against them)."""
        src = self.ev.src
        states: dict[str, ListState] = {}
        for kind, generic, per_node in (("ITL", "ITLFile.tlv", src.itl), ("CTL", "CTLFile.tlv", src.ctl)):
            if kind == "CTL" and not src.ev.mixed:
                continue
            by_node, failures = self._served_to_phone(kind, per_node)
            missing_code = Code.SRC_ITL_MISSING if kind == "ITL" else Code.SRC_CTL_INVALID
            invalid_code = Code.SRC_ITL_INVALID if kind == "ITL" else Code.SRC_CTL_INVALID
            if not by_node:
                if failures and any(f.outcome != Outcome.NOT_FOUND for f in failures):
                    self.fetch_failed("C1", failures, f"source {kind}SEP{self.p.name[3:]}.tlv")
                else:
                    self.add("C1", CheckStatus.FAIL, Finding(
                        missing_code, Severity.BLOCKER,
                        f"no source node serves a {kind} for this phone ({kind}SEP<MAC>.tlv nor {generic})",
                        {"cluster": "source", "file": generic},
                    ))
                continue
            for node, ls in sorted(by_node.items()):
                if kind == "ITL" and ls.file is not None and is_blank_itl(ls.file):
                    continue  # the rollback ITL lists no signer to check: C3 judges it
                if ls.internal_error:
                    self._internal_error("C1", ls)
                elif not ls.valid:
                    # Judged after C2 (``_judge_invalid_served``): it blocks only a phone that may hold it.
                    self.invalid_served.append((kind, invalid_code, node, ls))
            if failures and any(f.outcome != Outcome.NOT_FOUND for f in failures):
                # Another node answered: whether this gap matters depends on which node's list
                # the phone holds (decided in C2).
                self.partial_failures[kind] = failures
            if kind == "ITL":
                states = by_node
            else:
                self.src_ctl = by_node
        return states

    def _served_to_phone(
        self, kind: str, per_node: dict[str, ListState]
    ) -> tuple[dict[str, ListState], list[FileEvidence]]:
        """Per source node, the list of ``kind`` it serves this phone: its per-phone file
        (``ITLSEP<MAC>.tlv``), else, when that is not found, the node's generic file; and the
        fetches that leave a node's answer unknown."""
        src = self.ev.src
        mine = [f for f in self.p.files if f.cluster == "source" and f.name.upper().startswith(kind + "SEP")]
        by_node: dict[str, ListState] = {}
        failures: list[FileEvidence] = []
        for node in src.ev.nodes:
            tried = [f for f in mine if f.node == node]
            # One answer per file name (the per-phone CTL/ITL has one name per kind).
            fetches = [final_answer([f for f in tried if f.name == n]) for n in dict.fromkeys(f.name for f in tried)]
            ok = next((f for f in fetches if f.ok), None)
            if ok is not None:
                by_node[node] = _list_state(ok, self.ev.cache)
            elif fetches and all(f.outcome == Outcome.NOT_FOUND for f in fetches):
                fallback = per_node.get(node, _NO_LIST).fetch
                if fallback.ok:
                    by_node[node] = per_node[node]  # the phone falls back to the generic file
                elif fallback.outcome == Outcome.NOT_FOUND:
                    continue  # neither exists on this node
                else:  # the generic file is the phone's; what it holds is unknown
                    failures.extend([*fetches, fallback])
            elif fetches:
                failures.extend(fetches)
            else:  # never asked for this phone (an interrupted collection): not evidence of absence
                failures.append(FileEvidence("source", node, f"{kind}{self.p.name}.tlv", NOT_COLLECTED))
        return by_node, failures

    def phone_holds_served_lists(self, src_itls: dict[str, ListState]) -> _Held:
        """C2: what the phone reports holding (its web page's whole-file hashes) is what the source
        serves it; and its status messages do not end with a failed trust-list update."""
        p, held = self.p, _Held()
        if p.status is not None and p.status.trust_update_failed:
            self.add("C2", CheckStatus.FAIL, Finding(
                Code.PHONE_TRUST_UPDATE_FAILED, Severity.BLOCKER,
                f"the phone's status messages end with a failed trust-list update: {p.status.last_trust_event!r}",
                {"event": p.status.last_trust_event},
            ))
        page = p.page
        if page is None or page.itl_installed is None:
            why = p.page_outcome or NOT_COLLECTED
            if page is not None:
                why = "its web page shows no trust-list fields"
            self.add("C2", CheckStatus.UNKNOWN, Finding(
                Code.PHONE_EVIDENCE_MISSING, Severity.WARNING,
                f"which CTL/ITL the phone holds is unknown: web page {why}"
                + (f" ({p.page_detail})" if p.page_detail else ""),
                {"outcome": why},
            ))
            held.known = False
            return held
        if self.p.model is None and page.model:
            self.facts["model_from_page"] = page.model
        ctl_states = self.src_ctl
        if not page.itl_installed and not page.ctl_installed:
            held.tofu = True
            self.add("C2", CheckStatus.WARN, Finding(
                Code.PHONE_TRUST_ON_FIRST_USE, Severity.WARNING,
                "the phone holds no CTL and no ITL: it will trust the first ITL it gets",
                {},
            ))
            return held
        if page.itl_installed:
            held.itl = self._match(page.itl_signature, src_itls, "ITL")
        if page.ctl_installed and self.ev.src.ev.mixed:
            held.ctl = self._match(page.ctl_signature, ctl_states, "CTL")
        return held

    def _held_generic(
        self, shown: str, served: dict[str, ListState], kind: str
    ) -> tuple[ListState | None, list[FileEvidence]]:
        """The node's generic list (``ITLFile.tlv``/``CTLFile.tlv``) when the phone's hash is that
        list's and the node serves the phone a per-phone file that differs: the phone refused its
        per-phone file or has not fetched it since it changed. It holds a list the scan has, so
        what that list trusts is known. Also returns the generic lists that are evidence gaps (the
        phone's hash may be theirs)."""
        generic = self.ev.src.itl if kind == "ITL" else self.ev.src.ctl
        unseen: list[FileEvidence] = []
        for node, mine in served.items():
            ls = generic.get(node)
            if ls is not None and ls is not mine and ls.fetch.outcome in EVIDENCE_GAPS:
                unseen.append(ls.fetch)
            if ls is None or ls is mine or ls.fetch.data is None or not ls.valid:
                continue
            if shown.lower() in _hashes(ls.fetch.data, self.ev.cache):
                self.facts[f"held_{kind.lower()}_node"] = node
                self.partial_failures.pop(kind, None)
                self.add("C2", CheckStatus.WARN, Finding(
                    Code.PHONE_TRUST_STALE, Severity.WARNING,
                    f"the phone holds node {node}'s generic {ls.fetch.name}, not the {mine.fetch.name} the node "
                    "serves it: the phone refused its own file or has not fetched it since it changed",
                    {"file": kind, "phone_hash": shown, "held_node": node, "held": ls.fetch.name,
                     "served": mine.fetch.name},
                ))
                return ls, []
        return None, unseen

    def _unmatched(self, kind: str, shown: str | None, served: dict[str, ListState]) -> None:
        """The phone's hash matches nothing fetched: stale, unless a node could not be read
        (then its list may be the one the phone holds)."""
        gaps = self.partial_failures.pop(kind, [])
        if gaps:
            self.fetch_failed("C2", gaps, f"source {kind} of node(s) {', '.join(sorted({g.node for g in gaps}))}")
            return
        evidence = {"file": kind, "phone_hash": shown,
                    "served_sha1": sorted({_hashes(s.fetch.data, self.ev.cache)[0] for s in served.values() if s.fetch.data})}
        if kind == "CTL":
            # A CTL only lets the phone trust a signer directly (spec section 1, step 1): a stale
            # one trusts nothing of the destination's, so the phone asks TVS, which it reaches with
            # its ITL (C4). The seed's phone with an unknown signer does exactly that. The stale
            # CTL alone does not stop the migration; C4 and C5 decide it.
            self.add("C2", CheckStatus.WARN, Finding(
                Code.PHONE_TRUST_STALE, Severity.WARNING,
                f"the phone's CTL ({shown or 'no hash shown'}) is not what any source node serves: a stale or "
                "foreign CTL; the phone can vouch for the destination's signer only through TVS (C4)",
                evidence,
            ))
            return
        self.add("C2", CheckStatus.FAIL, Finding(
            Code.PHONE_TRUST_STALE, Severity.BLOCKER,
            f"the phone's {kind} ({shown or 'no hash shown'}) is not what any source node serves: a stale "
            f"or foreign {kind}",
            evidence,
        ))

    def _match(self, shown: str | None, served: dict[str, ListState], kind: str) -> ListState | None:
        if not served:
            return None  # C1 said why (missing, or not fetched)
        # Only what the source serves *this* phone (its per-phone file, or the node's generic file
        # when there is none): a phone holding the generic ITL while its ITLSEP differs is stale.
        if shown is None:
            self.add("C2", CheckStatus.UNKNOWN, Finding(
                Code.PHONE_EVIDENCE_MISSING, Severity.WARNING,
                f"the phone's web page says a {kind} is installed but shows no hash of it",
                {"outcome": "no hash shown", "file": kind},
            ))
            self.partial_failures.pop(kind, None)
            return None
        for ls in served.values():
            if ls.fetch.data is None:
                continue
            sha1, md5 = _hashes(ls.fetch.data, self.ev.cache)
            if shown.lower() in (sha1, md5):
                self.facts[f"held_{kind.lower()}_node"] = ls.fetch.node
                self.partial_failures.pop(kind, None)  # the phone's own list was read: gaps elsewhere do not matter
                return ls
        generic, unseen = self._held_generic(shown, served, kind)
        if generic is not None:
            return generic
        if unseen and kind == "ITL":
            # The phone may hold a node's generic ITL whose bytes the evidence lacks: stale or
            # not is unknown. (A stale CTL only warns, so a gap there changes nothing.)
            self.fetch_failed("C2", unseen, f"source generic ITL of node(s) {', '.join(sorted({f.node for f in unseen}))}")
            self.partial_failures.pop(kind, None)
            return None
        self._unmatched(kind, shown, served)
        return None

    def source_itl_not_blank(self, held: _Held) -> None:
        """C3: the source does not serve the blank rollback ITL (in mixed mode a blocker; else the
        phone that holds it takes the rollback path, READY)."""
        src = self.ev.src
        for f in src.findings:
            if f.code is Code.SRC_MIXED_MODE_ROLLBACK:
                self.add("C3", CheckStatus.FAIL, f)
            elif f.code is Code.SRC_ROLLBACK_ACTIVE:
                holds_blank = held.itl is not None and held.itl.file is not None and is_blank_itl(held.itl.file)
                if src.ev.mixed or holds_blank:
                    # Mixed mode: the blocker above decides. Otherwise the rollback path is open.
                    held.rollback = holds_blank and not src.ev.mixed
                    self.add("C3", CheckStatus.PASS, f)
                else:
                    self.add("C3", CheckStatus.WARN, f)
        gaps = sorted(n for n, ls in src.itl.items() if ls.fetch.outcome in EVIDENCE_GAPS)
        if src.ev.mixed and gaps and not self.ev.facts.source_blank_itl:
            # In mixed mode a blank ITL on any node is a blocker; a node's ITL we never saw may be it.
            self.add("C3", CheckStatus.UNKNOWN, Finding(
                Code.EVIDENCE_MISSING, Severity.WARNING,
                f"source ITLFile.tlv of node(s) {', '.join(gaps)} not in the evidence: whether a source node "
                "serves the blank rollback ITL is unknown",
                {"cluster": "source", "nodes": gaps, "file": "ITLFile.tlv"},
            ))

    def destination_signers_trusted(self, held: _Held) -> bool:
        """C5: each destination node's CTL (mixed mode) and ITL signer is trusted by the phone:
        SAST in the lists it holds, SAST in the destination CTL it has just accepted, or vouched
        for by TVS (in the source's Phone-SAST-trust). For a node's ITL, a TFTP or CCM+TFTP record
        of the node's CTL the phone has just accepted is enough (the seed's step 9: the ITL is
        verified against the new CTL, no TVS); the CTL itself needs SAST or TVS. Every
        destination node counts, since a phone may use any of them. Returns whether the phone
        needs TVS for a signer, or whether that is unknown
        (then C4 decides the phone)."""
        ev = self.ev
        if held.tofu or held.rollback:
            self.set("C5", CheckStatus.PASS)
            return False
        direct = held.sast_ders()
        needs_tvs = False
        any_unknown = False
        dst = ev.dst
        new_ctl: dict[str, ListState] = dst.ctl if dst.ev.mixed else {}
        for signer in ev.facts.dest_signers:
            der = signer.list.signer_der
            if der is None:
                continue  # invalid file: C6
            if der in direct:
                continue
            if signer.file == "ITLFile.tlv" and der in new_ctl.get(signer.node, _NO_LIST).role_ders(_ITL_SIGNER_ROLES):
                continue  # in the destination CTL the phone has just accepted (the seed's step 9)
            if ev.facts.sast_store is not StoreState.OK:
                any_unknown = True
                continue
            if signer.untrusted:
                for f in signer.untrusted:
                    self.add("C5", CheckStatus.FAIL, f)
            else:
                needs_tvs = True  # the source's TVS vouches for it: the phone must reach TVS
        if any_unknown:
            self.add("C5", CheckStatus.UNKNOWN, Finding(
                Code.TRUST_STORE_MISSING, Severity.WARNING,
                f"source {PHONE_SAST_TRUST} store {ev.facts.sast_store}: cannot tell whether TVS will vouch "
                "for the destination signers",
                {"cluster": "source", "store": PHONE_SAST_TRUST},
            ))
        if ev.src.ev.mixed and not ev.dst.ev.mixed:
            self.add("C5", CheckStatus.FAIL, Finding(
                Code.SRC_CTL_WITHOUT_DEST_CTL, Severity.BLOCKER,
                "source is in mixed mode and the destination is not: the phone keeps the source CTL and "
                "rejects the destination's files until the CTL is deleted by hand",
                {},
            ))
        return needs_tvs or any_unknown

    def tvs_trusted(self, held: _Held, *, needed: bool) -> None:
        """C4: the phone's TVS members (from its source config) were probed, and one is reachable
        and presents a certificate that the phone's ITL lists with role TVS. A blocker only when
        ``needed`` (a destination signer is trusted only through TVS); else its problems warn."""
        fail = CheckStatus.FAIL if needed else CheckStatus.WARN
        sev = Severity.BLOCKER if needed else Severity.WARNING
        cfg, refused = self._source_config()
        if cfg is None:
            if refused is not None:
                fe, exc = refused
                self.add("C4", CheckStatus.UNKNOWN if needed else CheckStatus.WARN, Finding(
                    Code.CONFIG_REFUSED, Severity.WARNING,
                    f"the source config {fe.name} from {fe.node} was refused by the parser ({refusal_kind(exc)}): "
                    f"{exc}; its TVS members are unknown",
                    {"cluster": "source", "node": fe.node, "file": fe.name, "reason": refusal_kind(exc),
                     "detail": str(exc)},
                ))
            elif needed:
                fetches = self.files("source", ".cnf.xml.sgn") + self.files("source", ".cnf.xml")
                self.fetch_failed("C4", fetches, f"source config SEP{self.p.name[3:]}.cnf.xml.sgn")
            return
        members = [(m.address, m.port or 2445) for m in cfg.tvs if m.address]
        self.facts["tvs_members"] = [f"{a}:{p}" for a, p in members]
        if not members:
            self.add("C4", fail, Finding(
                Code.TVS_NOT_CONFIGURED, sev, "the phone's source config lists no TVS member", {"cluster": "source"},
            ))
            return
        self._judge_tvs(self._survey_tvs(members, held), needed=needed)

    def _survey_tvs(self, members: Sequence[tuple[str, int]], held: _Held) -> _TvsSurvey:
        """Each TVS member of the phone's config by what its probe found."""
        ev = self.ev
        itl_ders = (
            held.itl.role_ders([Role.TVS]) if held.itl is not None
            else set().union(*(ls.role_ders([Role.TVS]) for ls in ev.src.itl.values()))
        )
        survey = _TvsSurvey()
        for address, port in members:
            known = ev.src.tvs_by_address.get(address_key(address), [])
            probes = [t for t in known if t.port == port]
            probe = next((t for t in probes if t.outcome == Outcome.OK), probes[0] if probes else None)
            label = f"{address}:{port}"
            if probe is None:
                survey.unprobed.append(label + " (not probed)")
            elif probe.outcome in NOT_PROBED:
                why = "outside the profile" if probe.outcome == Outcome.SKIPPED else probe.outcome
                survey.unprobed.append(f"{label} ({why})")
            elif probe.outcome != Outcome.OK or probe.cert_der is None:
                failed = survey.timeouts if probe.outcome == Outcome.TIMEOUT else survey.unreachable
                failed.append(f"{label} ({probe.outcome})")
            elif probe.cert_der in itl_ders:
                survey.good.append(label)
            elif held.itl is None and not (ev.src.itl and all(ls.fetch.ok for ls in ev.src.itl.values())):
                # Which ITL the phone holds is unknown and some source ITL was not read: that
                # one may list this certificate.
                survey.unprobed.append(f"{label} (certificate not checkable: a source ITL is missing)")
            else:
                survey.untrusted.append(label)
        return survey

    def _judge_tvs(self, survey: _TvsSurvey, *, needed: bool) -> None:
        """C4 from the survey: one usable member is enough (the others warn); else what failed,
        a blocker when ``needed``; a member never probed leaves it UNKNOWN, as may a timeout."""
        good, unreachable, timeouts = survey.good, survey.unreachable, survey.timeouts
        untrusted, unprobed = survey.untrusted, survey.unprobed
        fail = CheckStatus.FAIL if needed else CheckStatus.WARN
        sev = Severity.BLOCKER if needed else Severity.WARNING
        if good:
            if unreachable or timeouts or untrusted or unprobed:
                self.add("C4", CheckStatus.WARN, Finding(
                    Code.TVS_UNREACHABLE if unreachable or timeouts or unprobed else Code.TVS_CERT_NOT_IN_ITL,
                    Severity.WARNING,
                    f"TVS {', '.join(good)} usable; not: {', '.join(unreachable + timeouts + unprobed + untrusted)}",
                    {"usable": good, "unreachable": unreachable + timeouts, "untrusted": untrusted,
                     "not_probed": unprobed},
                ))
            return
        if unprobed and not (untrusted or unreachable):
            # Some member was never probed and none seen failed for certain: that member may be
            # the one that works (a phone tries its TVS members in order until one answers).
            self.add("C4", CheckStatus.UNKNOWN if needed else CheckStatus.WARN, Finding(
                Code.EVIDENCE_MISSING, Severity.WARNING,
                f"TVS {', '.join(unprobed)} of the phone's config was not probed"
                + (f"; {', '.join(timeouts)} did not answer" if timeouts else ""),
                {"not_probed": unprobed, "unreachable": timeouts},
            ))
            return
        if unprobed:
            # Every member probed failed, but one was never probed: it may be the one that works.
            fail = CheckStatus.UNKNOWN if needed else CheckStatus.WARN
            sev = Severity.WARNING
            self.add("C4", fail, Finding(
                Code.EVIDENCE_MISSING, Severity.WARNING,
                f"TVS {', '.join(unprobed)} of the phone's config was not probed; the others failed",
                {"not_probed": unprobed},
            ))
        if untrusted:
            self.add("C4", fail, Finding(
                Code.TVS_CERT_NOT_IN_ITL, sev,
                f"TVS {', '.join(untrusted)} presents a certificate that is not in the phone's ITL with role TVS",
                {"untrusted": untrusted},
            ))
        if unreachable or (timeouts and self.ev.policy.tvs_timeout_is_failure):
            self.add("C4", fail, Finding(
                Code.TVS_UNREACHABLE, sev,
                f"no TVS of the phone is reachable: {', '.join(unreachable + timeouts)}",
                {"unreachable": unreachable + timeouts},
            ))
        elif timeouts:
            self.add("C4", CheckStatus.UNKNOWN if needed else CheckStatus.WARN, Finding(
                Code.TVS_UNREACHABLE, Severity.WARNING,
                f"TVS did not answer the scanner: {', '.join(timeouts)} (it may only be out of the scanner's reach)",
                {"unreachable": timeouts},
            ))

    def _source_config(self) -> tuple[DeviceConfig | None, tuple[FileEvidence, ParseError] | None]:
        """The first source config that parses; else the first refusal (file and reason)."""
        refused: tuple[FileEvidence, ParseError] | None = None
        for fe in self.files("source", ".cnf.xml.sgn") + self.files("source", ".cnf.xml"):
            if not fe.ok or fe.data is None:
                continue
            payload = fe.data
            if fe.name.lower().endswith(".sgn"):
                try:
                    payload = self.ev.signed_config(fe).payload
                except ParseError as exc:
                    refused = refused or (fe, ParseError(f"signed header: {exc}"))
                    continue
            try:
                return self.ev.device_config(payload), None
            except ParseError as exc:
                refused = refused or (fe, exc)
        return None, refused

    def destination_provisioned(self) -> None:
        """C6: the destination serves a valid ITL (and, in mixed mode, CTL) on every node, and a
        config for the phone whose ``.sgn`` is signed by a TFTP record of that node's lists."""
        self._destination_lists_valid()
        self._destination_configs()

    def _destination_lists_valid(self) -> None:
        dst = self.ev.dst
        for kind, lists in (("ITL", dst.itl), ("CTL", dst.ctl if dst.ev.mixed else {})):
            for node, ls in sorted(lists.items()):
                if ls.checked is None:
                    if ls.fetch.outcome == Outcome.NOT_FOUND and kind == "CTL":
                        self.add("C6", CheckStatus.FAIL, Finding(
                            Code.DEST_CTL_INVALID, Severity.BLOCKER,
                            f"destination is in mixed mode but {node} serves no CTL", {"node": node},
                        ))
                    elif ls.fetch.outcome == Outcome.NOT_FOUND:
                        self.add("C6", CheckStatus.FAIL, Finding(
                            Code.DEST_ITL_INVALID, Severity.BLOCKER, f"destination node {node} serves no ITL",
                            {"node": node},
                        ))
                    else:
                        self.fetch_failed("C6", [ls.fetch], f"destination {ls.fetch.name} from {node}")
                elif ls.internal_error:
                    self._internal_error("C6", ls)
                elif not ls.valid:
                    self.add("C6", CheckStatus.FAIL, Finding(
                        Code.DEST_ITL_INVALID if kind == "ITL" else Code.DEST_CTL_INVALID, Severity.BLOCKER,
                        f"destination {kind} from {node} is not valid: {ls.problem}",
                        {"cluster": "destination", "node": node, "file": ls.fetch.name},
                    ))

    def _destination_configs(self) -> None:
        """Per node, what a phone gets: the signed config, else (not found) the plain one. None
        on any node is a blocker; a node without one, a warning; a node we could not read, or one
        whose config is not in the evidence, leaves C6 unknown."""
        dst = self.ev.dst
        ok: list[FileEvidence] = []
        missing: list[str] = []
        unknown: list[FileEvidence] = []
        sgn, xml = self.files("destination", ".cnf.xml.sgn"), self.files("destination", ".cnf.xml")
        for node in dst.ev.nodes:
            signed = [final_answer(x) for x in [[f for f in sgn if f.node == node]] if x]
            plain = [final_answer(x) for x in [[f for f in xml if f.node == node]] if x]
            good = [f for f in signed if f.ok] or [f for f in plain if f.ok]
            if good:
                ok.append(good[0])
            elif signed and all(f.outcome == Outcome.NOT_FOUND for f in signed) and all(
                f.outcome == Outcome.NOT_FOUND for f in plain
            ):
                missing.append(node)
            else:
                unknown += [f for f in signed + plain if f.outcome != Outcome.NOT_FOUND] or [
                    FileEvidence("destination", node, f"SEP{self.p.name[3:]}.cnf.xml.sgn", NOT_COLLECTED)
                ]
        gaps = [f for f in unknown if f.outcome in EVIDENCE_GAPS]
        if ok and gaps:
            # A node whose config we never saw may be the one the phone gets (option 150 lists
            # the nodes; it takes the first that answers). A node that did not answer is a real
            # observation and is tolerated as before; absent evidence is not.
            self.fetch_failed("C6", gaps, f"destination config SEP{self.p.name[3:]}.cnf.xml.sgn")
        if not ok:
            if missing and not unknown:
                self.add("C6", CheckStatus.FAIL, Finding(
                    Code.DEST_NOT_PROVISIONED, Severity.BLOCKER,
                    "no destination TFTP node has a config for this phone: it will not register",
                    {"cluster": "destination", "file": f"SEP{self.p.name[3:]}.cnf.xml.sgn"},
                ))
            else:
                self.fetch_failed("C6", unknown, f"destination config SEP{self.p.name[3:]}.cnf.xml.sgn")
            return
        if missing:
            self.add("C6", CheckStatus.WARN, Finding(
                Code.DEST_NOT_PROVISIONED, Severity.WARNING,
                f"destination nodes {', '.join(missing)} have no config for this phone", {"nodes": missing},
            ))
        for fe in ok:
            if not fe.name.lower().endswith(".sgn") or fe.data is None:
                continue
            self._check_dest_config(fe)

    def _check_dest_config(self, fe: FileEvidence) -> None:
        signers = self.ev.config_signers(fe.node)
        if signers is None:
            # Neither of the node's lists was read: who may sign its configs is unknown (C6
            # already says why the lists are missing).
            self.set("C6", CheckStatus.UNKNOWN)
            return
        store, signers_key = signers
        try:
            tf = self.ev.signed_config(fe)
        except ParseError as exc:
            self.add("C6", CheckStatus.FAIL, Finding(
                Code.DEST_CONFIG_SIGNER_UNKNOWN, Severity.BLOCKER,
                f"destination config from {fe.node} is malformed: {exc}",
                {"cluster": fe.cluster, "node": fe.node, "file": fe.name},
            ))
            return
        self.facts.setdefault("dest_config_digest", tf.header.digest.hash_name if tf.header.digest else None)
        signed = None
        if fe.signed_digest and ":" in fe.signed_digest:
            signed = bytes.fromhex(fe.signed_digest.split(":", 1)[1])
        data = fe.data or b""
        # The same config from several nodes whose lists name the same signers: verified once.
        key = ("verify-config", digest(data), kind_hint(fe.name), signers_key, signed)
        try:
            v = self.ev.parsed.memo(key, len(data), lambda: verify(tf, [store], signed_digest=signed))
        except Exception as exc:  # a bug in verify: the config says nothing yet (ANALYSIS_ERROR)
            self.add("C6", CheckStatus.UNKNOWN, Finding(
                Code.ANALYSIS_ERROR, Severity.WARNING,
                f"destination config from {fe.node} could not be analysed: {INTERNAL_ERROR}: "
                f"{type(exc).__name__}: {exc}",
                {"cluster": fe.cluster, "node": fe.node, "file": fe.name},
            ))
            return
        if not v.valid:
            self.add("C6", CheckStatus.FAIL, Finding(
                Code.DEST_CONFIG_SIGNER_UNKNOWN, Severity.BLOCKER,
                f"destination config from {fe.node} is signed by {tf.header.signer_name} "
                f"(serial {tf.header.signer_serial_hex}), not a TFTP record of that node's ITL/CTL",
                {"cluster": fe.cluster, "node": fe.node, "file": fe.name, "serial": tf.header.signer_serial_hex},
            ))

    def within_phone_limits(self) -> None:
        """C7: nothing known to break phones: destination lists within 64 KB and 39 certificates,
        no SHA-512 signature for a model that cannot verify it, signers not expired (destination:
        blocker) or expiring at the judged time."""
        ev = self.ev
        for state in (ev.dst, ev.src):
            for f in state.findings:
                if f.code is Code.ITL_TOO_LARGE and state is ev.dst:
                    self.add("C7", CheckStatus.FAIL, f)
                elif f.code is Code.CERT_EXPIRED:
                    self.add("C7", CheckStatus.FAIL if f.severity is Severity.BLOCKER else CheckStatus.WARN, f)
                elif f.code is Code.CERT_EXPIRING:
                    self.add("C7", CheckStatus.WARN, f)
        model = self.p.model or self.facts.get("model_from_page")
        if ev.policy.model_lacks_sha512(model):
            sha512 = sorted(
                f"{ls.fetch.node}/{ls.fetch.name}"
                for ls in [*ev.dst.itl.values(), *ev.dst.ctl.values()]
                if ls.file is not None and ls.file.header.digest_code == Digest.SHA512
            )
            if self.facts.get("dest_config_digest") == "sha512":
                sha512.append(f"SEP{self.p.name[3:]}.cnf.xml.sgn")
            if sha512:
                self.add("C7", CheckStatus.FAIL, Finding(
                    Code.DIGEST_UNSUPPORTED, Severity.BLOCKER,
                    f"{model} cannot verify SHA-512 signatures, used by the destination's {', '.join(sha512)}",
                    {"model": model, "files": sha512},
                ))


@dataclass
class _TvsSurvey:
    """The phone's TVS members (``address:port``, with why for the failed ones) by what was found."""

    good: list[str] = field(default_factory=list)  # reachable, with a certificate the ITL lists as TVS
    unreachable: list[str] = field(default_factory=list)  # refused, or another failed answer
    timeouts: list[str] = field(default_factory=list)
    untrusted: list[str] = field(default_factory=list)  # a certificate the ITL does not list as TVS
    unprobed: list[str] = field(default_factory=list)  # the scanner never asked: says nothing of the TVS


@dataclass
class _Held:
    """What the phone holds, as far as its web page tells."""

    known: bool = True
    tofu: bool = False
    rollback: bool = False
    itl: ListState | None = None
    ctl: ListState | None = None

    def sast_ders(self) -> set[bytes]:
        out: set[bytes] = set()
        for ls in (self.itl, self.ctl):
            if ls is not None:
                out |= ls.sast_ders()
        return out


# --- The verdict ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summary:
    verdict: Verdict
    counts: Mapping[str, int]
    total: int
    top_reasons: tuple[tuple[str, int], ...]
    cluster_blockers: tuple[str, ...]
    why: str
    evidence_issues: tuple[str, ...] = ()


def refusal_kind(exc: ParseError) -> str:
    """Why a config was refused, in one word: dtd, entity, size, malformed (for CONFIG_REFUSED)."""
    text = str(exc).lower()
    if "dtd" in text or "document type" in text:
        return "dtd"
    if "entity" in text:
        return "entity"
    if "too large" in text:
        return "size"
    return "malformed"


def summarize(
    phones: Sequence[PhoneResult] | Counter[str], clusters: Sequence[ClusterResult], policy: Policy,
    reasons: Counter[str] | None = None, evidence_issues: Sequence[str] = (),
) -> Summary:
    """The fleet's verdict. ``evidence_issues``: reasons the evidence itself is incomplete (an
    interrupted run, a truncated manifest, damaged blobs): the fleet is then never GO."""
    if isinstance(phones, Counter):
        counts = phones
        reason_counts = reasons or Counter()
    else:
        counts = Counter(p.readiness.value for p in phones)
        reason_counts = Counter(code for p in phones for code in p.reasons)
    for r in Readiness:
        counts.setdefault(r.value, 0)
    total = sum(counts.values())
    blockers = tuple(sorted({f.code for c in clusters for f in c.blockers}))
    ready = counts[Readiness.READY.value]
    if counts[Readiness.NOT_READY.value] or blockers:
        verdict = Verdict.NO_GO
        why = (
            f"{counts[Readiness.NOT_READY.value]} phone(s) NOT_READY"
            + (f"; cluster blockers: {', '.join(blockers)}" if blockers else "")
            + (f"; evidence incomplete: {evidence_issues[0]}" if evidence_issues else "")
        )
    elif evidence_issues:
        verdict = Verdict.INCOMPLETE
        why = "evidence incomplete: " + evidence_issues[0] + (
            f" (and {len(evidence_issues) - 1} more issue(s))" if len(evidence_issues) > 1 else ""
        )
    elif total and ready / total >= policy.go_threshold:
        verdict = Verdict.GO
        why = f"{ready} of {total} phones READY and no cluster blocker"
    elif not total:
        verdict = Verdict.INCOMPLETE
        why = "no phone in scope"
    else:
        verdict = Verdict.INCOMPLETE
        why = f"{counts[Readiness.UNKNOWN.value]} phone(s) UNKNOWN: evidence missing"
    return Summary(
        verdict, dict(counts), total, tuple(reason_counts.most_common(10)), blockers, why, tuple(evidence_issues)
    )
