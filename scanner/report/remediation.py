"""``remediation.csv``: the fix-it list, one row per thing to do, for the team that fixes phones.

From a scan's report: every cluster finding that is not INFO becomes an action (which certificate,
from which node, into which store of which cluster; the TVS restart on every source node after any
import, as the seed's step 6 says), with the number of phones it holds back; then every phone that
is NOT_READY or UNKNOWN gets its own actions for the codes that are the phone's to fix (a code
whose fix is a cluster action points at that row instead of repeating it). From a verification:
every STUCK or UNKNOWN phone, with what to do for the reason it is stuck.

The actions are the Cisco procedures the spec and the seed cite (delete the trust lists on the
phone, import certificates, restart TVS, enable web access); the words name the evidence the
finding carries, never more than it knows.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from scanner.core.findings import Code
from scanner.report.csv_report import _safe
from scanner.report.files import write_atomic

__all__ = ["COLUMNS", "from_report", "from_verification", "render", "write"]

COLUMNS = ("order", "scope", "target", "code", "severity", "action", "node", "file", "certificate", "store", "phones")

Evidence = Mapping[str, Any]

# The reset a phone needs when its lists are wrong (Cisco: "Settings > Admin Settings > Reset
# Settings > Security settings", or delete the CTL/ITL from the phone's Security menu).
ERASE = ("delete the CTL and ITL on the phone (Settings > Admin settings > Reset settings > Security settings, "
         "or Security > Trust list > erase) and let it download the lists again")
RESTART_TVS = "restart the Cisco Trust Verification Service on every source node (so TVS reads the imported certificates)"


def _cert(e: Evidence) -> str:
    subject, serial = e.get("subject") or e.get("signer"), e.get("serial")
    if subject and serial:
        return f"{subject} (serial {serial})"
    if isinstance(e.get("signers"), list):
        return "; ".join(str(s) for s in e["signers"])
    return str(subject or serial or "")


def _where(e: Evidence, default: str = "") -> str:
    return str(e.get("node") or e.get("tvs") or e.get("address") or default)


# Per code: the action, given the finding's evidence; None: the code needs no action of its own.
CLUSTER_ACTIONS: dict[Code, Callable[[Evidence], str]] = {
    Code.DEST_SIGNER_UNTRUSTED: lambda e: (
        f"import the destination signer {_cert(e) or ''} of node {_where(e, 'each destination TFTP node')} into the "
        "source's Phone-SAST-trust and CallManager-trust (Bulk Certificate Management, or upload by hand on the "
        "source publisher)"),
    Code.DEST_SIGNER_NOT_PHONE_SAST: lambda e: (
        f"import the destination signer {_cert(e)} into the source's Phone-SAST-trust too (it is in "
        "CallManager-trust only, which TVS does not vouch for as SAST)"),
    Code.ITLRECOVERY_NOT_IMPORTED: lambda e: (
        "import the destination's ITLRecovery certificate into the source's Phone-SAST-trust (needed from 12.0 on: "
        "it signs the destination's CTL and ITL)"),
    Code.TVS_UNREACHABLE: lambda e: (
        f"make TVS at {e.get('address') or _where(e)} answer phones on TCP 2445 (service started, firewall open) "
        "or remove it from the phones' TVS list"),
    Code.TVS_CERT_NOT_IN_ITL: lambda e: (
        f"the TVS certificate of {_where(e)} ({_cert(e)}) is not in the phones' ITL: let the source TFTP rebuild the "
        "ITL (restart the TFTP service) and have the phones download it before the cutover"),
    Code.SRC_MIXED_MODE_ROLLBACK: lambda e: (
        "set the source's enterprise parameter \"Prepare Cluster for Rollback to pre-8.0\" to False, restart TFTP, "
        "and reset the phones so they download the full ITL again"),
    Code.SRC_ROLLBACK_PENDING: lambda e: (
        "set \"Prepare Cluster for Rollback to pre-8.0\" back to False unless the rollback path is intended"),
    Code.NODE_MISMATCH: lambda e: (
        f"make every node serve the same {e.get('file', 'file')}: restart the TFTP service on the node(s) that differ "
        "(or find why its certificate differs)"),
    Code.NO_ROLLBACK_PATH: lambda e: (
        f"for a way back: import the source signer(s) {_cert(e)} into the destination's Phone-SAST-trust and "
        "CallManager-trust"),
    Code.TRUST_STORE_MISSING: lambda e: (
        f"export the {e.get('store', 'trust store')} of the {e.get('cluster', '')} cluster and name it in the profile, "
        "then scan again"),
    Code.CERT_EXPIRED: lambda e: f"renew the expired certificate {_cert(e)} and regenerate the lists it signs",
    Code.CERT_EXPIRING: lambda e: f"renew {_cert(e)} before the cutover date",
    Code.ITL_TOO_LARGE: lambda e: "remove unused certificates from the trust stores so the ITL fits phones (<= 64 KB, 39 certificates)",
    Code.CLUSTER_MODE_MISMATCH: lambda e: f"correct the profile's mode for the {e.get('cluster', '')} cluster",
    Code.TVS_OUTSIDE_PROFILE: lambda e: (
        f"add {e.get('address', 'the TVS address')} to the profile (its tvs members or tvs_allow) and scan again"),
    Code.NODE_NOT_FOUND_RATE: lambda e: f"check node {_where(e)}: it answers 'not found' for many phones' files",
    Code.EVIDENCE_MISSING: lambda e: "finish the collection (trustscan scan --resume) and scan again",
}

PHONE_ACTIONS: dict[Code, Callable[[Evidence], str]] = {
    Code.PHONE_TRUST_STALE: lambda e: ERASE + f" (it holds a {e.get('file', 'list')} no source node serves)",
    Code.PHONE_TRUST_UPDATE_FAILED: lambda e: ERASE + " (its last trust-list update failed)",
    Code.PHONE_EVIDENCE_MISSING: lambda e: (
        "enable web access on the phone (Product Specific Configuration: Web Access) and make it reachable, "
        "then scan again"),
    Code.DEST_NOT_PROVISIONED: lambda e: "provision the phone on the destination cluster (add the device), then let TFTP build its config",
    Code.DEST_CONFIG_SIGNER_UNKNOWN: lambda e: (
        f"restart the TFTP service on destination node {_where(e)} so its config is signed by a certificate of its ITL"),
    Code.DEST_ITL_INVALID: lambda e: f"restart TFTP on destination node {_where(e)} to rebuild its ITL",
    Code.DEST_CTL_INVALID: lambda e: f"regenerate the destination CTL ({_where(e)}): utils ctl update CTLFile on the publisher",
    Code.SRC_ITL_INVALID: lambda e: f"restart TFTP on source node {_where(e)} to rebuild {e.get('file', 'the ITL')}",
    Code.SRC_CTL_INVALID: lambda e: f"regenerate the source CTL ({e.get('file', 'CTL')}): utils ctl update CTLFile",
    Code.SRC_ITL_MISSING: lambda e: "let the source TFTP build the phone's ITL (restart TFTP), and check the phone's device record",
    Code.TVS_NOT_CONFIGURED: lambda e: "add TVS servers to the phone's source config (its CallManager group / TVS list) and reset it",
    Code.DIGEST_UNSUPPORTED: lambda e: (
        f"sign the destination lists with SHA-256 or upgrade the firmware of the {e.get('model', 'phone')} model"),
    Code.SRC_CTL_WITHOUT_DEST_CTL: lambda e: "delete the CTL on the phone after the move (the destination is not in mixed mode)",
    Code.FETCH_FAILED: lambda e: f"fetch failed ({e.get('outcome') or e.get('reason') or 'see the report'}): scan again",
    Code.CONFIG_REFUSED: lambda e: f"the source config was refused ({e.get('reason', '')}): check {e.get('file', 'it')}",
}

# Cluster findings whose fix is an import into the source's stores: then TVS must be restarted.
IMPORTS = frozenset({Code.DEST_SIGNER_UNTRUSTED, Code.DEST_SIGNER_NOT_PHONE_SAST, Code.ITLRECOVERY_NOT_IMPORTED})
# The "code" of the row that is no finding's but follows from the imports.
RESTART_ROW = "restart TVS"

# Codes whose fix is the cluster's: a phone row points at it rather than repeating it.
CLUSTER_FIXES = frozenset(CLUSTER_ACTIONS)


def _row(order: int, scope: str, target: str, f: Mapping[str, Any], action: str, phones: int | str = "") -> dict[str, Any]:
    e: Evidence = f.get("evidence") or {}
    return {
        "order": order, "scope": scope, "target": target, "code": f["code"], "severity": f["severity"],
        "action": action, "node": str(e.get("node") or e.get("tvs") or ""), "file": str(e.get("file") or ""),
        "certificate": _cert(e), "store": str(e.get("store") or ""), "phones": phones,
    }


def _holds_back(f: Mapping[str, Any]) -> bool:
    """The finding is why its phone is not READY: a blocker, or what made a check UNKNOWN."""
    return f["severity"] == "BLOCKER" or bool((f.get("evidence") or {}).get("unknown"))


def from_report(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The actions of a scan's report: cluster actions first (the most phones held back first),
    then per phone that is not READY its own actions and, in one row, the cluster actions it
    waits for."""
    held: Counter[str] = Counter()
    for d in report["devices"]:
        if d["readiness"] != "READY":
            for code in {f["code"] for f in d["findings"] if _holds_back(f)}:
                held[code] += 1
    cluster_rows: list[dict[str, Any]] = []
    imports = False
    for name, c in report["clusters"].items():
        for f in c["findings"]:
            if f["severity"] == "INFO" or f["code"] not in CLUSTER_ACTIONS:
                continue
            imports |= f["code"] in IMPORTS
            cluster_rows.append(_row(0, "cluster", name, f, CLUSTER_ACTIONS[f["code"]](f.get("evidence") or {}),
                                     held.get(f["code"], 0)))
    cluster_rows.sort(key=lambda r: (-int(r["phones"] or 0), r["target"], r["code"]))
    if imports:
        cluster_rows.append({**dict.fromkeys(COLUMNS, ""), "scope": "cluster", "target": "source",
                             "code": RESTART_ROW, "severity": "BLOCKER", "action": RESTART_TVS})
    for i, r in enumerate(cluster_rows, 1):
        r["order"] = i
    by_code: dict[str, list[int]] = {}
    for r in cluster_rows:
        by_code.setdefault(str(r["code"]), []).append(int(r["order"]))
    rows = list(cluster_rows)
    for d in report["devices"]:
        if d["readiness"] == "READY":
            continue
        seen: set[str] = set()
        waits: list[str] = []
        for f in d["findings"]:
            code = f["code"]
            if code in seen or not _holds_back(f):
                continue
            seen.add(code)
            if code in PHONE_ACTIONS:
                rows.append(_row(0, "phone", d["name"], f, PHONE_ACTIONS[code](f.get("evidence") or {})))
            elif code in CLUSTER_FIXES:
                waits.append(code)
        if waits:
            refs = sorted({n for code in waits for n in by_code.get(code, [])})
            where = f"cluster action(s) {', '.join(map(str, refs))}" if refs else "the cluster findings"
            rows.append({**dict.fromkeys(COLUMNS, ""), "scope": "phone", "target": d["name"], "code": " ".join(waits),
                         "severity": d["readiness"], "action": f"ready once {where} are done ({', '.join(waits)})"})
    for i, r in enumerate(rows, 1):
        r["order"] = i
    return rows


def _stuck_action(reason: str) -> str:
    if "failure" in reason or "update failed" in reason.lower():
        return ERASE + "; then check that the source TVS vouches for the destination's signer (trustscan scan)"
    if "still holds the source" in reason or "neither cluster serves" in reason or "not both replaced" in reason:
        return ERASE
    if "neither cluster lists" in reason or "source's TFTP" in reason:
        return "point the phone's TFTP (DHCP option 150 or its alternate TFTP setting) at the destination's TFTP nodes"
    return "check the phone"


def from_verification(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for d in doc["devices"]:
        reason = "; ".join(d.get("reasons") or [])
        if d["outcome"] == "STUCK":
            action = _stuck_action(reason)
        elif d["outcome"] == "UNKNOWN":
            action = "enable web access on the phone and make it reachable, then verify again"
        else:
            continue
        rows.append({**dict.fromkeys(COLUMNS, ""), "order": len(rows) + 1, "scope": "phone", "target": d["name"],
                     "code": d["outcome"], "severity": "BLOCKER" if d["outcome"] == "STUCK" else "WARNING",
                     "action": f"{action} ({reason})" if reason else action})
    return rows


def render(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_safe(str(r[c])) for c in COLUMNS])
    return buf.getvalue().encode("utf-8")


def write(rows: list[dict[str, Any]], out: Path) -> Path:
    path = out / "remediation.csv"
    write_atomic(path, render(rows))
    return path
