"""The answer key: per phone READY / NOT_READY / UNKNOWN and its finding codes, derived from the
faults injected (an oracle independent of any scanner). The rules are documented in docs/lab.md
("Answer key") and kept deliberately simple:

* every code has one effect class: BLOCKER (NOT_READY), UNKNOWN (evidence missing) or WARNING,
  except the codes of the phone faults in ``_PHONE_FAULT_WARNINGS`` (a stale CTL, a broken
  per-phone list the phone refused), which warn on those phones;
* a phone is NOT_READY if it has any blocker, else UNKNOWN if it has any unknown, else READY;
* cluster-level codes are listed on every phone they affect (as the scanner's reports do);
* a TVS finding on node N is listed on a phone whose source config lists N as a TVS member; it
  is a blocker only when every TVS member the phone lists is faulty;
* a transport fault on a TFTP node matters only if it breaks every protocol the cluster's
  ``transport`` uses; then it is FETCH_FAILED (UNKNOWN) for the phones that depend on that node
  (source node: the phones whose TFTP Server 1 it is; destination node: every phone);
* a phone that is not registered (``phone-unregistered``) has no address in either inventory
  (RisPort70 gives none, the CSV cell is empty): its own evidence is missing, as with web access
  off; a phone that failed over (``phone-failover``) is judged as any other;
* ``axl-wrong-password`` makes a scan with ``profile.toml`` a usage error: the key's ``refused``
  says which exit code and which words the message must have; the rest of the key is what
  ``profile-manual.toml`` (no discovery) gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scanner.core.findings import Code
from scanner.core.readiness import Readiness, Verdict
from scanner.lab.scenario import Scenario, effective_shapes

BLOCKERS = frozenset(
    {
        Code.SRC_MIXED_MODE_ROLLBACK,
        Code.DEST_SIGNER_UNTRUSTED,
        Code.DEST_SIGNER_NOT_PHONE_SAST,
        Code.ITLRECOVERY_NOT_IMPORTED,
        Code.ITL_TOO_LARGE,
        Code.CERT_EXPIRED,
        Code.SRC_ITL_MISSING,
        Code.SRC_ITL_INVALID,
        Code.SRC_CTL_INVALID,
        Code.PHONE_TRUST_STALE,
        Code.PHONE_TRUST_UPDATE_FAILED,
        Code.TVS_NOT_CONFIGURED,
        Code.DEST_NOT_PROVISIONED,
        Code.DEST_CONFIG_SIGNER_UNKNOWN,
        Code.DEST_ITL_INVALID,
        Code.DEST_CTL_INVALID,
        Code.DIGEST_UNSUPPORTED,
        Code.SRC_CTL_WITHOUT_DEST_CTL,
    }
)
UNKNOWNS = frozenset({Code.PHONE_EVIDENCE_MISSING, Code.FETCH_FAILED, Code.TRUST_STORE_MISSING})
WARNINGS = frozenset({Code.SRC_ROLLBACK_ACTIVE, Code.NODE_MISMATCH, Code.NO_ROLLBACK_PATH, Code.CERT_EXPIRING})
# TVS_UNREACHABLE and TVS_CERT_NOT_IN_ITL: blocker or warning per phone (see module docstring).

# Which cluster a cluster-level code is filed under in answer-key.json "clusters".
_CLUSTER_OF = {
    Code.SRC_ROLLBACK_ACTIVE: "source",
    Code.SRC_MIXED_MODE_ROLLBACK: "source",
    Code.TVS_UNREACHABLE: "source",
    Code.TVS_CERT_NOT_IN_ITL: "source",
    Code.TRUST_STORE_MISSING: "source",
    Code.DEST_SIGNER_UNTRUSTED: "destination",
    Code.DEST_SIGNER_NOT_PHONE_SAST: "destination",
    Code.ITLRECOVERY_NOT_IMPORTED: "destination",
    Code.ITL_TOO_LARGE: "destination",
    Code.CERT_EXPIRED: "destination",
    Code.NO_ROLLBACK_PATH: "destination",
}

_PHONE_FAULT_CODES = {
    "phone-stale-itl": (Code.PHONE_TRUST_STALE,),
    "phone-stale-ctl": (Code.PHONE_TRUST_STALE,),
    "phone-trust-update-failed": (Code.PHONE_TRUST_STALE, Code.PHONE_TRUST_UPDATE_FAILED),
    "phone-src-itl-invalid": (Code.PHONE_TRUST_STALE, Code.SRC_ITL_INVALID),
    "phone-src-ctl-invalid": (Code.PHONE_TRUST_STALE, Code.SRC_CTL_INVALID),
    "tvs-not-configured": (Code.TVS_NOT_CONFIGURED,),
    "dest-not-provisioned": (Code.DEST_NOT_PROVISIONED,),
    "dest-config-signer-unknown": (Code.DEST_CONFIG_SIGNER_UNKNOWN,),
    "sha512-unsupported-model": (Code.DIGEST_UNSUPPORTED,),
    "web-access-off": (Code.PHONE_EVIDENCE_MISSING,),
    "phone-web-stall": (Code.PHONE_EVIDENCE_MISSING,),
    "phone-unregistered": (Code.PHONE_EVIDENCE_MISSING,),
    "phone-failover": (),
}
# Phone faults whose codes are warnings, not blockers. A phone holding a stale CTL still migrates
# through TVS with its ITL (spec section 1, step 1: the CTL only lets a phone trust a signer
# directly); a phone served a broken per-phone list refuses it and keeps the valid generic list it
# holds, so the broken file is the source's defect, not the phone's (docs/readiness.md, C1 and C2).
_PHONE_FAULT_WARNINGS = {
    "phone-stale-ctl": (Code.PHONE_TRUST_STALE,),
    "phone-src-itl-invalid": (Code.PHONE_TRUST_STALE, Code.SRC_ITL_INVALID),
    "phone-src-ctl-invalid": (Code.PHONE_TRUST_STALE, Code.SRC_CTL_INVALID),
}
# The exit code of a scan refused before anything is contacted (scanner/cli: usage error).
EXIT_REFUSED = 64

_CLUSTER_FAULT_CODES = {
    "itlrecovery-not-imported": (Code.DEST_SIGNER_UNTRUSTED, Code.ITLRECOVERY_NOT_IMPORTED),
    "dest-node-cert-not-imported": (Code.DEST_SIGNER_UNTRUSTED,),
    "dest-signer-not-phone-sast": (Code.DEST_SIGNER_NOT_PHONE_SAST,),
    "dest-itl-invalid": (Code.DEST_ITL_INVALID,),
    "dest-ctl-invalid": (Code.DEST_CTL_INVALID,),
    "dest-itl-too-large": (Code.ITL_TOO_LARGE,),
    "dest-signer-expired": (Code.CERT_EXPIRED,),
    "no-rollback-path": (Code.NO_ROLLBACK_PATH,),
    "trust-store-missing": (Code.TRUST_STORE_MISSING,),
    "dest-node-mismatch": (Code.NODE_MISMATCH,),
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


def base_codes(scenario: Scenario, phone: PhoneFacts) -> tuple[set[Code], set[Code]]:
    """(codes, blocking TVS codes) from node and cluster faults, before the phone's own fault."""
    src, dst = effective_shapes(scenario)
    codes: set[Code] = set()
    for f in scenario.faults:
        if f.name in _CLUSTER_FAULT_CODES:
            codes.update(_CLUSTER_FAULT_CODES[f.name])
    if src.mode == "mixed" and dst.mode != "mixed":
        # The shape itself (or the dest-non-secure fault): phones keep the source CTL.
        codes.add(Code.SRC_CTL_WITHOUT_DEST_CTL)
    rollback = bool(scenario.uses("src-rollback"))
    if rollback:
        codes.add(Code.SRC_ROLLBACK_ACTIVE)
        if src.mode == "mixed":
            codes.add(Code.SRC_MIXED_MODE_ROLLBACK)
    # Transport: the phone's own source node, and every destination node.
    for node in {phone.primary_tftp, "dst-pub", "dst-sub1"}:
        if node_broken(scenario, node):
            codes.add(Code.FETCH_FAILED)
    # TVS.
    tvs_codes: dict[str, set[Code]] = {m: set() for m in phone.tvs_members}
    for f in scenario.faults:
        if f.name == "tvs-down" and f.node in tvs_codes:
            tvs_codes[f.node].add(Code.TVS_UNREACHABLE)
        elif f.name == "tvs-cert-not-in-itl" and f.node in tvs_codes:
            tvs_codes[f.node].add(Code.TVS_CERT_NOT_IN_ITL)
    if rollback and src.mode == "mixed":
        for m in tvs_codes:
            tvs_codes[m].add(Code.TVS_CERT_NOT_IN_ITL)
    tvs_found: set[Code] = set().union(*tvs_codes.values()) if tvs_codes else set()
    codes |= tvs_found
    rollback_path = rollback and src.mode != "mixed"
    all_bad = bool(tvs_codes) and all(tvs_codes.values())
    blocking_tvs = tvs_found if all_bad and not rollback_path else set()
    return codes, blocking_tvs


def readiness_of(codes: Iterable[Code], blocking_tvs: Iterable[Code], warn_only: Iterable[Code] = ()) -> Readiness:
    found = set(codes) - set(warn_only)
    if found & BLOCKERS or set(blocking_tvs):
        return Readiness.NOT_READY
    if found & UNKNOWNS:
        return Readiness.UNKNOWN
    return Readiness.READY


def phone_answer(scenario: Scenario, phone: PhoneFacts) -> tuple[Readiness, list[Code]]:
    codes, blocking = base_codes(scenario, phone)
    warn_only: set[Code] = set()
    if phone.fault is not None:
        # A warning of the phone's fault stays a blocker when a cluster fault gives it too.
        warn_only = set(_PHONE_FAULT_WARNINGS.get(phone.fault, ())) - codes
        codes.update(_PHONE_FAULT_CODES[phone.fault])
    return readiness_of(codes, blocking, warn_only), sorted(codes)


def answer_key(
    scenario: Scenario,
    seed: str,
    phones: Sequence[PhoneFacts],
    *,
    publishers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """answer-key.json: the verdict, the counts, each phone's readiness and codes, each cluster's
    codes (plain strings: the key is read back by tools that know no enum); and ``refused`` when
    a scan with profile.toml must stop before it starts (``publishers``: each cluster's AXL
    ``host:port``, for the words the message names)."""
    devices: dict[str, dict[str, Any]] = {}
    clusters: dict[str, set[Code]] = {"source": set(), "destination": set()}
    for p in phones:
        readiness, codes = phone_answer(scenario, p)
        devices[p.name] = {"readiness": readiness.value, "codes": [c.value for c in codes]}
        for code in codes:
            if code in _CLUSTER_OF:
                clusters[_CLUSTER_OF[code]].add(code)
    # Cluster-level codes that hold even when no phone lists them.
    for f in scenario.faults:
        for code in _CLUSTER_FAULT_CODES.get(f.name, ()):
            if code is Code.NODE_MISMATCH:
                clusters["destination"].add(code)
            elif code in _CLUSTER_OF:
                clusters[_CLUSTER_OF[code]].add(code)
        if f.name == "tvs-down":
            clusters["source"].add(Code.TVS_UNREACHABLE)
        if f.name == "tvs-cert-not-in-itl":
            clusters["source"].add(Code.TVS_CERT_NOT_IN_ITL)
    cluster_blocker = any(code in BLOCKERS for cs in clusters.values() for code in cs)
    states = {d["readiness"] for d in devices.values()}
    if Readiness.NOT_READY in states or cluster_blocker:
        verdict = Verdict.NO_GO
    elif Readiness.UNKNOWN in states or any(code in UNKNOWNS for cs in clusters.values() for code in cs):
        verdict = Verdict.INCOMPLETE
    else:
        verdict = Verdict.GO
    counts = {
        s.value: sum(1 for d in devices.values() if d["readiness"] == s) for s in Readiness
    }
    key: dict[str, Any] = {
        "verdict": verdict.value,
        "counts": counts,
        "devices": devices,
        "clusters": {k: [c.value for c in sorted(v)] for k, v in clusters.items()},
        "scenario": scenario.name,
        "seed": seed,
    }
    for f in scenario.uses("axl-wrong-password"):
        cluster = str(f.param("cluster"))
        where = (publishers or {}).get(cluster, "")
        key["refused"] = {
            "profile": "profile.toml",
            "exit": EXIT_REFUSED,
            "cluster": cluster,
            "publisher": where,
            "message": [f"cluster {cluster}", where, "HTTP 401"] if where else [f"cluster {cluster}", "HTTP 401"],
        }
    return key


def refusal_differences(key: Mapping[str, Any], exit_code: int, message: str) -> list[str]:
    """How a refused scan (its exit code and its error text) differs from the key's ``refused``;
    a key without ``refused`` expects no refusal at all."""
    want = key.get("refused")
    if want is None:
        return [f"the scan was refused (exit {exit_code}) and the key expects a report"]
    problems = []
    if exit_code != want["exit"]:
        problems.append(f"exit {exit_code} != {want['exit']}")
    problems += [f"the message does not name {word!r}: {message[:200]!r}" for word in want["message"] if word not in message]
    return problems


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
