"""The answer key: per phone READY / NOT_READY / UNKNOWN and its finding codes, derived from the
faults injected (an oracle independent of any scanner). The rules are documented in docs/lab.md
("Answer key") and kept deliberately simple:

* every code has one effect class: BLOCKER (NOT_READY), UNKNOWN (evidence missing) or WARNING;
* a phone is NOT_READY if it has any blocker, else UNKNOWN if it has any unknown, else READY;
* cluster-level codes are listed on every phone they affect (spec §3);
* a TVS finding on node N is listed on a phone whose source config lists N as a TVS member; it
  is a blocker only when every TVS member the phone lists is faulty;
* a transport fault on a TFTP node matters only if it breaks every protocol the cluster's
  ``transport`` uses; then it is FETCH_FAILED (UNKNOWN) for the phones that depend on that node
  (source node: the phones whose TFTP Server 1 it is; destination node: every phone).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from scanner.lab.scenario import Scenario, effective_shapes

BLOCKERS = frozenset(
    {
        "SRC_MIXED_MODE_ROLLBACK",
        "DEST_SIGNER_UNTRUSTED",
        "DEST_SIGNER_NOT_PHONE_SAST",
        "ITLRECOVERY_NOT_IMPORTED",
        "ITL_TOO_LARGE",
        "CERT_EXPIRED",
        "SRC_ITL_MISSING",
        "SRC_ITL_INVALID",
        "SRC_CTL_INVALID",
        "PHONE_TRUST_STALE",
        "PHONE_TRUST_UPDATE_FAILED",
        "TVS_NOT_CONFIGURED",
        "DEST_NOT_PROVISIONED",
        "DEST_CONFIG_SIGNER_UNKNOWN",
        "DEST_ITL_INVALID",
        "DEST_CTL_INVALID",
        "DIGEST_UNSUPPORTED",
        "SRC_CTL_WITHOUT_DEST_CTL",
    }
)
UNKNOWNS = frozenset({"PHONE_EVIDENCE_MISSING", "FETCH_FAILED", "TRUST_STORE_MISSING"})
WARNINGS = frozenset({"SRC_ROLLBACK_ACTIVE", "NODE_MISMATCH", "NO_ROLLBACK_PATH", "CERT_EXPIRING"})
# TVS_UNREACHABLE and TVS_CERT_NOT_IN_ITL: blocker or warning per phone (see module docstring).

# Which cluster a cluster-level code is filed under in answer-key.json "clusters".
_CLUSTER_OF = {
    "SRC_ROLLBACK_ACTIVE": "source",
    "SRC_MIXED_MODE_ROLLBACK": "source",
    "TVS_UNREACHABLE": "source",
    "TVS_CERT_NOT_IN_ITL": "source",
    "TRUST_STORE_MISSING": "source",
    "DEST_SIGNER_UNTRUSTED": "destination",
    "DEST_SIGNER_NOT_PHONE_SAST": "destination",
    "ITLRECOVERY_NOT_IMPORTED": "destination",
    "ITL_TOO_LARGE": "destination",
    "CERT_EXPIRED": "destination",
    "NO_ROLLBACK_PATH": "destination",
}

_PHONE_FAULT_CODES = {
    "phone-stale-itl": ("PHONE_TRUST_STALE",),
    "phone-stale-ctl": ("PHONE_TRUST_STALE",),
    "phone-trust-update-failed": ("PHONE_TRUST_STALE", "PHONE_TRUST_UPDATE_FAILED"),
    "phone-src-itl-invalid": ("PHONE_TRUST_STALE", "SRC_ITL_INVALID"),
    "phone-src-ctl-invalid": ("PHONE_TRUST_STALE", "SRC_CTL_INVALID"),
    "tvs-not-configured": ("TVS_NOT_CONFIGURED",),
    "dest-not-provisioned": ("DEST_NOT_PROVISIONED",),
    "dest-config-signer-unknown": ("DEST_CONFIG_SIGNER_UNKNOWN",),
    "sha512-unsupported-model": ("DIGEST_UNSUPPORTED",),
    "web-access-off": ("PHONE_EVIDENCE_MISSING",),
    "phone-web-stall": ("PHONE_EVIDENCE_MISSING",),
}

_CLUSTER_FAULT_CODES = {
    "itlrecovery-not-imported": ("DEST_SIGNER_UNTRUSTED", "ITLRECOVERY_NOT_IMPORTED"),
    "dest-node-cert-not-imported": ("DEST_SIGNER_UNTRUSTED",),
    "dest-signer-not-phone-sast": ("DEST_SIGNER_NOT_PHONE_SAST",),
    "dest-itl-invalid": ("DEST_ITL_INVALID",),
    "dest-ctl-invalid": ("DEST_CTL_INVALID",),
    "dest-itl-too-large": ("ITL_TOO_LARGE",),
    "dest-signer-expired": ("CERT_EXPIRED",),
    "no-rollback-path": ("NO_ROLLBACK_PATH",),
    "trust-store-missing": ("TRUST_STORE_MISSING",),
    "dest-node-mismatch": ("NODE_MISMATCH",),
}

_BREAKING = ("node-error", "node-stall", "node-truncate")


@dataclass(frozen=True, slots=True)
class PhoneFacts:
    """What the oracle needs to know about one phone."""

    name: str
    primary_tftp: str  # source TFTP node the phone uses (and whose ITL it holds)
    tvs_members: tuple[str, ...]  # source TVS node names in its source config (empty if none)
    fault: str | None  # the phone fault applied to it, if any


def node_broken(scenario: Scenario, node: str) -> bool:
    """Whether transport faults make the node's files unobtainable under the cluster's transport."""
    src, dst = effective_shapes(scenario)
    transport = (src if node.startswith("src-") else dst).transport
    broken: set[str] = set()
    for f in scenario.faults:
        if f.node != node:
            continue
        if f.name == "node-dead":
            return True
        if f.name in _BREAKING:
            broken.update(f.param("protocols"))
    if transport == "http-first":
        return {"http", "tftp"} <= broken
    if transport == "both":
        return bool(broken)
    return transport in broken


def base_codes(scenario: Scenario, phone: PhoneFacts) -> tuple[set[str], set[str]]:
    """(codes, blocking TVS codes) from node and cluster faults, before the phone's own fault."""
    src, dst = effective_shapes(scenario)
    codes: set[str] = set()
    for f in scenario.faults:
        if f.name in _CLUSTER_FAULT_CODES:
            codes.update(_CLUSTER_FAULT_CODES[f.name])
    if src.mode == "mixed" and dst.mode != "mixed":
        # The shape itself (or the dest-non-secure fault): phones keep the source CTL.
        codes.add("SRC_CTL_WITHOUT_DEST_CTL")
    rollback = bool(scenario.uses("src-rollback"))
    if rollback:
        codes.add("SRC_ROLLBACK_ACTIVE")
        if src.mode == "mixed":
            codes.add("SRC_MIXED_MODE_ROLLBACK")
    # Transport: the phone's own source node, and every destination node.
    for node in {phone.primary_tftp, "dst-pub", "dst-sub1"}:
        if node_broken(scenario, node):
            codes.add("FETCH_FAILED")
    # TVS.
    tvs_codes: dict[str, set[str]] = {m: set() for m in phone.tvs_members}
    for f in scenario.faults:
        if f.name == "tvs-down" and f.node in tvs_codes:
            tvs_codes[f.node].add("TVS_UNREACHABLE")
        elif f.name == "tvs-cert-not-in-itl" and f.node in tvs_codes:
            tvs_codes[f.node].add("TVS_CERT_NOT_IN_ITL")
    if rollback and src.mode == "mixed":
        for m in tvs_codes:
            tvs_codes[m].add("TVS_CERT_NOT_IN_ITL")
    tvs_found = set().union(*tvs_codes.values()) if tvs_codes else set()
    codes |= tvs_found
    rollback_path = rollback and src.mode != "mixed"
    all_bad = bool(tvs_codes) and all(tvs_codes.values())
    blocking_tvs = tvs_found if all_bad and not rollback_path else set()
    return codes, blocking_tvs


def readiness_of(codes: Iterable[str], blocking_tvs: Iterable[str]) -> str:
    codes = set(codes)
    if codes & BLOCKERS or set(blocking_tvs):
        return "NOT_READY"
    if codes & UNKNOWNS:
        return "UNKNOWN"
    return "READY"


def phone_answer(scenario: Scenario, phone: PhoneFacts) -> tuple[str, list[str]]:
    codes, blocking = base_codes(scenario, phone)
    if phone.fault is not None:
        codes.update(_PHONE_FAULT_CODES[phone.fault])
    return readiness_of(codes, blocking), sorted(codes)


def answer_key(scenario: Scenario, seed: str, phones: Sequence[PhoneFacts]) -> dict[str, Any]:
    devices: dict[str, dict[str, Any]] = {}
    clusters: dict[str, set[str]] = {"source": set(), "destination": set()}
    for p in phones:
        readiness, codes = phone_answer(scenario, p)
        devices[p.name] = {"readiness": readiness, "codes": codes}
        for code in codes:
            if code in _CLUSTER_OF:
                clusters[_CLUSTER_OF[code]].add(code)
    # Cluster-level codes that hold even when no phone lists them.
    for f in scenario.faults:
        for code in _CLUSTER_FAULT_CODES.get(f.name, ()):
            if code == "NODE_MISMATCH":
                clusters["destination"].add(code)
            elif code in _CLUSTER_OF:
                clusters[_CLUSTER_OF[code]].add(code)
        if f.name == "tvs-down":
            clusters["source"].add("TVS_UNREACHABLE")
        if f.name == "tvs-cert-not-in-itl":
            clusters["source"].add("TVS_CERT_NOT_IN_ITL")
    cluster_blocker = any(code in BLOCKERS for cs in clusters.values() for code in cs)
    states = {d["readiness"] for d in devices.values()}
    if "NOT_READY" in states or cluster_blocker:
        verdict = "NO_GO"
    elif "UNKNOWN" in states or any(code in UNKNOWNS for cs in clusters.values() for code in cs):
        verdict = "INCOMPLETE"
    else:
        verdict = "GO"
    counts = {
        s: sum(1 for d in devices.values() if d["readiness"] == s) for s in ("READY", "NOT_READY", "UNKNOWN")
    }
    return {
        "verdict": verdict,
        "counts": counts,
        "devices": devices,
        "clusters": {k: sorted(v) for k, v in clusters.items()},
        "scenario": scenario.name,
        "seed": seed,
    }


# ---------------------------------------------------------------------------------------------
# Comparing a scan's report with the key (the accuracy test and bench/bench_scan.py share it)


def phone_differences(key: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """One line per phone whose readiness or codes (as a set) differ from the key, in key order;
    a phone missing from either side is a difference too."""
    got = {d["name"]: d for d in report["devices"]}
    problems = []
    for name, exp in key["devices"].items():
        d = got.get(name)
        if d is None:
            problems.append(f"{name}: missing from the report, key {exp['readiness']} {exp['codes']}")
        elif (d["readiness"], sorted(d["codes"])) != (exp["readiness"], sorted(exp["codes"])):
            problems.append(f"{name}: got {d['readiness']} {d['codes']}, key {exp['readiness']} {exp['codes']}")
    problems.extend(f"{name}: in the report, not in the key" for name in got if name not in key["devices"])
    return problems


def compare_report(key: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """Every way ``report`` (a parsed report.json) differs from ``key`` (a parsed answer-key.json):
    the verdict, each phone (``phone_differences``), and each cluster's set of finding codes."""
    problems = []
    if report["verdict"] != key["verdict"]:
        problems.append(f"verdict {report['verdict']} != {key['verdict']}")
    problems.extend(phone_differences(key, report))
    for cluster, codes in key.get("clusters", {}).items():
        mine = sorted({f["code"] for f in report["clusters"][cluster]["findings"]})
        if mine != sorted(codes):
            problems.append(f"cluster {cluster}: got {mine}, key {sorted(codes)}")
    return problems
