"""The fault catalog: every way the lab can break a migration, by name.

Each fault says what it targets (a fraction of phones, one node, or a whole cluster), which
readiness check (C1..C8, docs/readiness.md) it breaks, and the finding codes (docs/finding-codes.md) the
answer key gives the phones it affects. Check "discovery" marks the faults of the publisher's AXL
and RisPort70 (scanner.lab.cucm_api): what discovery must cope with, not readiness findings. ``docs/lab.md`` is the long form of this table; the
derivation itself is ``scanner.lab.answer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from scanner.core.findings import Code

Scope = Literal["phone", "node", "cluster"]
# What a node-scoped fault may target.
NodeKind = Literal["tftp", "src-tftp", "dst-tftp", "src-tvs", "publisher"]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: Literal["float", "int", "str", "protocols"]
    default: object
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True, slots=True)
class FaultDef:
    name: str
    scope: Scope
    check: str  # C1..C8, "evidence", "transport" or "discovery"
    summary: str
    codes: tuple[Code, ...]  # codes on the affected phones (see answer.py for the exact rule)
    readiness: str  # what it does to an affected phone: NOT_READY / UNKNOWN / READY (warning) / none
    node_kind: NodeKind | None = None
    params: tuple[Param, ...] = field(default_factory=tuple)
    needs: tuple[str, ...] = ()  # preconditions on the scenario, checked by scenario.py


_PROTOCOLS = Param(
    "protocols",
    "protocols",
    ("tftp", "http"),
    choices=("tftp", "http"),
    help="which of the node's services suffer the fault",
)

CATALOG: dict[str, FaultDef] = {
    f.name: f
    for f in (
        # -- phones -------------------------------------------------------------------------
        FaultDef(
            "phone-stale-itl",
            "phone",
            "C2",
            "the phone holds an older ITL of its TFTP node (offline during a certificate change): its "
            "ITL signature on the web page differs from the ITL served",
            (Code.PHONE_TRUST_STALE,),
            "NOT_READY",
        ),
        FaultDef(
            "phone-stale-ctl",
            "phone",
            "C2",
            "the phone holds a CTL from before a CallManager certificate change: it trusts nothing of the "
            "destination's, so the phone migrates through TVS with its (current) ITL",
            (Code.PHONE_TRUST_STALE,),
            "READY (warning)",
            needs=("source-mixed",),
        ),
        FaultDef(
            "phone-trust-update-failed",
            "phone",
            "C2",
            "status messages end with 'Trust List Update Failed'; the phone kept its previous ITL",
            (Code.PHONE_TRUST_STALE, Code.PHONE_TRUST_UPDATE_FAILED),
            "NOT_READY",
        ),
        FaultDef(
            "phone-src-itl-invalid",
            "phone",
            "C1",
            "the source serves this phone an ITLSEP<MAC>.tlv with a broken signature (the phone still "
            "holds the good generic ITL, refusing the broken one)",
            (Code.PHONE_TRUST_STALE, Code.SRC_ITL_INVALID),
            "READY (warning)",
        ),
        FaultDef(
            "phone-src-ctl-invalid",
            "phone",
            "C1",
            "the source serves this phone a CTLSEP<MAC>.tlv with a broken signature (the phone still "
            "holds the good generic CTL, refusing the broken one)",
            (Code.PHONE_TRUST_STALE, Code.SRC_CTL_INVALID),
            "READY (warning)",
            needs=("source-mixed",),
        ),
        FaultDef(
            "tvs-not-configured",
            "phone",
            "C4",
            "the phone's source config has no <TVS> members (it only got XMLDefault, CSCti64589)",
            (Code.TVS_NOT_CONFIGURED,),
            "NOT_READY",
        ),
        FaultDef(
            "dest-not-provisioned",
            "phone",
            "C6",
            "the destination has no SEP<MAC>.cnf.xml(.sgn) for the phone",
            (Code.DEST_NOT_PROVISIONED,),
            "NOT_READY",
        ),
        FaultDef(
            "dest-config-signer-unknown",
            "phone",
            "C6",
            "the destination's SEP<MAC>.cnf.xml.sgn for the phone is signed by a retired CallManager "
            "key that is in no destination trust list",
            (Code.DEST_CONFIG_SIGNER_UNKNOWN,),
            "NOT_READY",
        ),
        FaultDef(
            "sha512-unsupported-model",
            "phone",
            "C7",
            "the destination signs with SHA-512 and the phone is a model that cannot verify it "
            "(the fault sets the destination's TFTP File Signature Algorithm to SHA-512)",
            (Code.DIGEST_UNSUPPORTED,),
            "NOT_READY",
        ),
        FaultDef(
            "web-access-off",
            "phone",
            "evidence",
            "web access disabled: nothing listens on the phone's web port (connection refused)",
            (Code.PHONE_EVIDENCE_MISSING,),
            "UNKNOWN",
        ),
        FaultDef(
            "phone-web-stall",
            "phone",
            "evidence",
            "the phone's web server accepts connections and never answers",
            (Code.PHONE_EVIDENCE_MISSING,),
            "UNKNOWN",
        ),
        FaultDef(
            "phone-unregistered",
            "phone",
            "evidence",
            "the phone is not registered: RisPort70 says UnRegistered with its last-known address "
            "(another phone's by now, or its own old one), its web server is off, and the CSV export "
            "has no IP address for it",
            (Code.PHONE_EVIDENCE_MISSING,),
            "UNKNOWN",
        ),
        FaultDef(
            "phone-failover",
            "phone",
            "discovery",
            "the phone failed over: RisPort70 lists it on two nodes, the older entry UnRegistered",
            (),
            "none (discovery must keep the newer, Registered entry)",
        ),
        # -- nodes --------------------------------------------------------------------------
        FaultDef(
            "axl-slow",
            "node",
            "discovery",
            "the publisher's AXL and RisPort70 answer every request after a delay",
            (),
            "none (discovery must wait)",
            node_kind="publisher",
            params=(Param("delay", "float", 2.0, 0.0, 30.0, help="seconds before each answer"),),
        ),
        FaultDef(
            "tvs-down",
            "node",
            "C4",
            "a source TVS service is down (nothing listens on its port)",
            (Code.TVS_UNREACHABLE,),
            "NOT_READY if every TVS the phone lists is faulty, else READY (warning)",
            node_kind="src-tvs",
        ),
        FaultDef(
            "tvs-cert-not-in-itl",
            "node",
            "C4",
            "a source TVS presents a regenerated certificate that no ITL contains",
            (Code.TVS_CERT_NOT_IN_ITL,),
            "NOT_READY if every TVS the phone lists is faulty, else READY (warning)",
            node_kind="src-tvs",
        ),
        FaultDef(
            "dest-node-mismatch",
            "node",
            "C5",
            "one destination TFTP node serves an older CTL than the others (same signer, older time)",
            (Code.NODE_MISMATCH,),
            "READY (warning)",
            node_kind="dst-tftp",
            needs=("destination-mixed",),
        ),
        FaultDef(
            "node-dead",
            "node",
            "transport",
            "a TFTP node is down: nothing listens on its TFTP or HTTP port",
            (Code.FETCH_FAILED,),
            "UNKNOWN (source node: its phones; destination node: every phone)",
            node_kind="tftp",
        ),
        FaultDef(
            "node-error",
            "node",
            "transport",
            "a TFTP node answers every TFTP read with ERROR 2 and every HTTP GET with 500",
            (Code.FETCH_FAILED,),
            "as node-dead when every protocol the profile's transport uses is hit, else none",
            node_kind="tftp",
            params=(_PROTOCOLS,),
        ),
        FaultDef(
            "node-stall",
            "node",
            "transport",
            "a TFTP node takes requests and never answers (TFTP silence, HTTP hangs): timeouts",
            (Code.FETCH_FAILED,),
            "as node-error",
            node_kind="tftp",
            params=(_PROTOCOLS,),
        ),
        FaultDef(
            "node-truncate",
            "node",
            "transport",
            "a TFTP node sends only the first bytes of every file (TFTP: tsize says the full size; "
            "HTTP: Content-Length says the full size and the connection closes early)",
            (Code.FETCH_FAILED,),
            "as node-error",
            node_kind="tftp",
            params=(_PROTOCOLS, Param("bytes", "int", 700, 0, 1 << 20, help="bytes sent before stopping")),
        ),
        FaultDef(
            "node-loss",
            "node",
            "transport",
            "a TFTP node drops a share of its outgoing TFTP datagrams",
            (),
            "none (a scanner must retransmit)",
            node_kind="tftp",
            params=(Param("loss", "float", 0.05, 0.0, 0.2, help="probability a datagram is dropped"),),
        ),
        FaultDef(
            "node-delay",
            "node",
            "transport",
            "a TFTP node delays every TFTP datagram and HTTP response",
            (),
            "none",
            node_kind="tftp",
            params=(Param("delay", "float", 0.05, 0.0, 2.0, help="seconds"),),
        ),
        # -- clusters -----------------------------------------------------------------------
        FaultDef(
            "src-rollback",
            "cluster",
            "C3",
            "'Prepare Cluster for Rollback to pre-8.0' is True on the source: every source node serves "
            "a blank ITL (CAPF only) and every phone holds it",
            (Code.SRC_ROLLBACK_ACTIVE, Code.SRC_MIXED_MODE_ROLLBACK, Code.TVS_CERT_NOT_IN_ITL),
            "NOT_READY if the source is in mixed mode; READY by the rollback path (SRC_ROLLBACK_ACTIVE "
            "only) if it is not",
        ),
        FaultDef(
            "itlrecovery-not-imported",
            "cluster",
            "C5",
            "the destination's ITLRecovery certificate (signer of its CTL and ITL) is in neither source "
            "trust store",
            (Code.DEST_SIGNER_UNTRUSTED, Code.ITLRECOVERY_NOT_IMPORTED),
            "NOT_READY",
            needs=("destination-12",),
        ),
        FaultDef(
            "dest-node-cert-not-imported",
            "cluster",
            "C5",
            "only some destination TFTP nodes' CallManager certificates were imported into the source: "
            "the given node's (signer of its ITL before 12.0) is in neither source trust store; it stops "
            "phones only where the destination is not in mixed mode (else its CTL vouches for the ITL)",
            (Code.DEST_SIGNER_UNTRUSTED,),
            "NOT_READY",
            node_kind="dst-tftp",
            needs=("destination-pre-12",),
        ),
        FaultDef(
            "dest-signer-not-phone-sast",
            "cluster",
            "C5",
            "the destination's signer certificates were imported into the source's CallManager-trust "
            "only, not Phone-SAST-trust (TVS will not vouch for them as SAST)",
            (Code.DEST_SIGNER_NOT_PHONE_SAST,),
            "NOT_READY",
        ),
        FaultDef(
            "dest-itl-invalid",
            "cluster",
            "C6",
            "a destination node serves a broken ITL (signature byte flipped, or the file cut in half)",
            (Code.DEST_ITL_INVALID,),
            "NOT_READY",
            node_kind="dst-tftp",
            params=(Param("how", "str", "signature", choices=("signature", "truncated")),),
        ),
        FaultDef(
            "dest-ctl-invalid",
            "cluster",
            "C6",
            "a destination node serves a broken CTL (signature byte flipped, or the file cut in half)",
            (Code.DEST_CTL_INVALID,),
            "NOT_READY",
            node_kind="dst-tftp",
            needs=("destination-mixed",),
            params=(Param("how", "str", "signature", choices=("signature", "truncated")),),
        ),
        FaultDef(
            "dest-itl-too-large",
            "cluster",
            "C7",
            "the destination's ITLs carry 40 extra certificates: over 64 KB and over 39 certificates",
            (Code.ITL_TOO_LARGE,),
            "NOT_READY",
        ),
        FaultDef(
            "dest-signer-expired",
            "cluster",
            "C7",
            "the destination's trust-list signer certificate expired on 2025-06-30",
            (Code.CERT_EXPIRED,),
            "NOT_READY",
        ),
        FaultDef(
            "dest-non-secure",
            "cluster",
            "C1",
            "the destination is not in mixed mode (no CTL) while the source is: phones keep the "
            "source CTL until it is deleted by hand",
            (Code.SRC_CTL_WITHOUT_DEST_CTL,),
            "NOT_READY",
            needs=("source-mixed",),
        ),
        FaultDef(
            "no-rollback-path",
            "cluster",
            "C8",
            "the source's signers were never imported into the destination's Phone-SAST-trust",
            (Code.NO_ROLLBACK_PATH,),
            "READY (warning)",
        ),
        FaultDef(
            "risport-rate-limit",
            "cluster",
            "discovery",
            "another application uses most of the source's RisPort70 budget: past per_minute "
            "requests in any 60 s the publisher answers the 'Exceeded allowed rate' fault (the "
            "profile still says 15 per minute)",
            (),
            "none (discovery must wait and ask the same batch again)",
            params=(Param("per_minute", "int", 5, 1, 15, help="requests per minute the publisher allows"),),
        ),
        FaultDef(
            "axl-wrong-password",
            "cluster",
            "discovery",
            "the password file the profile names holds a wrong password: the publisher answers "
            "HTTP 401, the scan is refused (exit 64) naming the cluster and host",
            (),
            "none: the scan is refused (answer-key.json 'refused'); profile-manual.toml scans as usual",
            params=(Param("cluster", "str", "source", choices=("source", "destination")),),
        ),
        FaultDef(
            "trust-store-missing",
            "cluster",
            "evidence",
            "the source's trust stores were not exported: the profile names none",
            (Code.TRUST_STORE_MISSING,),
            "UNKNOWN",
        ),
    )
}


def describe(name: str) -> FaultDef:
    return CATALOG[name]
