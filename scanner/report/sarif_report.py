"""``report.sarif``: SARIF 2.1.0 for code-scanning services (GitHub code scanning, SARIF viewers).

Each finding code is a rule (codes are API: scanner/core/findings.py); each phone or cluster
finding is a result. What a service needs to place, deduplicate and date the results:

* **Physical locations.** A finding that names a trust file on a node (its evidence has
  ``node`` and ``file``, or ``files`` entries ``node/file``) is located at that file as the node
  serves it: ``uri`` ``<node>/<file>`` against the base ``SOURCE`` or ``DESTINATION`` (the
  cluster, when the evidence names it) or ``TFTP`` (a node of a cluster the finding does not
  name). Not the evidence blob's path: blobs are content-addressed, so a re-signed ITL would move
  to another path each night and a service would see a new alert where the problem stayed the
  same; the node's file is also what an administrator fixes. The blob is still named, in the
  location's properties, when the evidence gives the file's SHA-256. A finding with no file is
  located at the input that names what it is about: a phone's at the inventory, a cluster's at
  the profile (``run.inventory`` / ``run.profile``, as ``file:`` URIs when absolute); the report
  keeps no line numbers for them, so there is no region.
* **``partialFingerprints``** ``trustscanFinding/v1``: SHA-256 of the phone or cluster, the code
  and the evidence's identity keys (cluster, node, file, TVS, trust store, certificate serial),
  never the message (it carries dates and counts that change every night).
* **``invocations``**: the command line with secrets redacted, the run's start and end (UTC), the
  exit code when the caller knows it, and the evidence and inventory issues as notifications.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import orjson

from scanner.core.devconfig import is_secret_name
from scanner.core.findings import Code
from scanner.report.files import write_atomic

LEVEL = {"BLOCKER": "error", "WARNING": "warning", "INFO": "note"}
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT = "trustscanFinding/v1"
REDACTED = "********"

# The evidence keys that say *which* thing a finding is about (stable from one night to the next).
_IDENTITY_KEYS = ("cluster", "node", "file", "tvs", "store", "serial")
_BASE_FOR_CLUSTER = {"source": "SOURCE", "destination": "DESTINATION"}
_BASES = {
    "SOURCE": "trust and config files as the source cluster's TFTP nodes serve them (<node>/<file>)",
    "DESTINATION": "trust and config files as the destination cluster's TFTP nodes serve them (<node>/<file>)",
    "TFTP": "files as a TFTP node serves them, of a cluster the finding does not name (<node>/<file>)",
    "EVIDENCE": "the run's evidence directory (blobs.pack: records named by their SHA-256)",
}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# user:password@ in a URL on the command line.
_URL_USERINFO = re.compile(r"(://[^/@:\s]*):[^/@\s]*@")


def redact_argv(argv: Sequence[str]) -> list[str]:
    """The command line with every secret replaced by ``********``: the value of an option whose
    name is a secret's (``--axl-password X``, ``--api-token=X``: the names scanner.core.devconfig
    treats as secrets, and tokens, which appear on command lines rather than in phone configs),
    and the password of a URL's userinfo."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if arg.startswith("-") and len(arg) > 1:
            name, eq, _ = arg.lstrip("-").partition("=")
            if _is_secret_option(name):
                if eq:
                    out.append(arg.split("=", 1)[0] + "=" + REDACTED)
                else:
                    out.append(arg)
                    hide_next = True
                continue
        out.append(_URL_USERINFO.sub(rf"\1:{REDACTED}@", arg))
    return out


def _is_secret_option(name: str) -> bool:
    squashed = name.replace("-", "").replace("_", "")
    return is_secret_name(squashed) or "token" in squashed.lower()


def _utc(value: Any) -> str | None:
    """An ISO 8601 time as SARIF writes it (§3.9: UTC, with "Z"); None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _file_uri(path: str) -> str:
    """A path from the report as a URI reference: ``file://`` when absolute, else relative."""
    p = Path(path)
    if p.is_absolute():
        return p.as_uri()
    return quote(PurePosixPath(*p.parts).as_posix())


def fingerprint(where: str, code: str, evidence: Mapping[str, Any]) -> str:
    """The stable identity of one result: the same problem on the same thing gives the same
    value on every run, whatever the message says."""
    parts = [where, code] + [f"{k}={evidence[k]}" for k in _IDENTITY_KEYS if isinstance(evidence.get(k), str)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _node_files(evidence: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(node, file) pairs the finding names: its ``node`` and ``file``, or its ``files`` entries
    written ``node/file`` (a bare file name there has no node, so no location)."""
    node, name = evidence.get("node"), evidence.get("file")
    if isinstance(node, str) and isinstance(name, str) and name and " " not in name and "/" not in name:
        return [(node, name)]
    out = []
    files = evidence.get("files")
    for entry in files if isinstance(files, list) else []:
        if isinstance(entry, str) and entry.count("/") == 1:
            n, _, f = entry.partition("/")
            if n and f:
                out.append((n, f))
    return out


def _locations(where: str, kind: str, evidence: Mapping[str, Any], run: Mapping[str, Any]) -> list[dict[str, Any]]:
    logical = [{"name": where.partition("/")[2], "fullyQualifiedName": where, "kind": "resource"}]
    cluster = evidence.get("cluster")
    base = _BASE_FOR_CLUSTER.get(cluster, "TFTP") if isinstance(cluster, str) else "TFTP"
    out = []
    for node, name in _node_files(evidence):
        loc: dict[str, Any] = {"uri": f"{quote(node)}/{quote(name)}", "uriBaseId": base}
        sha = evidence.get("sha256")
        if isinstance(sha, str) and _SHA256.match(sha) and "node" in evidence:
            # The bytes the finding was judged on: the record with this SHA-256 in the evidence
            # directory's blobs.pack (evidence format 2; format 1 kept blobs/<sha[:2]>/<sha>).
            loc["properties"] = {"sha256": sha, "evidencePack": "blobs.pack"}
        out.append({"physicalLocation": {"artifactLocation": loc}, "logicalLocations": logical})
    if out:
        return out
    path = run.get("inventory" if kind == "device" else "profile")
    if isinstance(path, str) and path:
        return [{"physicalLocation": {"artifactLocation": {"uri": _file_uri(path)}}, "logicalLocations": logical}]
    return [{"logicalLocations": logical}]


def _rule(code: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"id": code, "name": code.title().replace("_", ""),
                            "shortDescription": {"text": code.replace("_", " ").lower()}}
    known = Code.__members__.get(code)
    if known is not None:
        # The registry's one line is the text docs/finding-codes.md is tested against.
        rule["fullDescription"] = {"text": known.meaning}
        rule["help"] = {"text": f"{code}: {known.meaning}. See docs/finding-codes.md and docs/readiness.md.",
                        "markdown": f"**{code}**: {known.meaning}.\n\nSee `docs/finding-codes.md` and "
                                    "`docs/readiness.md` for the check and what to do."}
        worst = min(known.severities, key=["BLOCKER", "WARNING", "INFO"].index)
        rule["defaultConfiguration"] = {"level": LEVEL[worst]}
        rule["properties"] = {"severities": sorted(s.value for s in known.severities), "unknown": known.unknown}
    return rule


def _invocation(report: Mapping[str, Any], command_line: Sequence[str], exit_code: int | None) -> dict[str, Any]:
    run = report.get("run") or {}
    args = redact_argv(command_line)
    inv: dict[str, Any] = {"executionSuccessful": True}
    # A NO_GO or INCOMPLETE verdict is a result, not a failure of the tool (SARIF §3.20.14: a
    # tool may exit non-zero because of its results and still have succeeded); a run that failed
    # writes no report at all.
    if args:
        inv["commandLine"] = shlex.join(args)
        inv["arguments"] = args[1:]
    for key, field in (("startTimeUtc", "started"), ("endTimeUtc", "finished")):
        t = _utc(run.get(field))
        if t is not None:
            inv[key] = t
    if exit_code is not None:
        inv["exitCode"] = exit_code
    notes = [("evidence", i) for i in (report.get("summary") or {}).get("evidence_issues", [])]
    notes += [("inventory", i) for i in run.get("inventory_issues", [])]
    if notes:
        inv["toolExecutionNotifications"] = [
            {"level": "warning", "message": {"text": f"{what}: {text}"}, "descriptor": {"id": what}}
            for what, text in notes
        ]
    return inv


def render(report: dict[str, Any], *, command_line: Sequence[str] | None = None,
           exit_code: int | None = None) -> bytes:
    """The SARIF log. ``command_line``: the invocation's argv (default: this process's,
    ``sys.argv``, which is the trustscan command that ran the analysis); ``exit_code``: the
    command's exit code, left out when not given (the analysis is written before the command
    knows it)."""
    run = report.get("run") or {}
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []

    def add(f: dict[str, Any], kind: str, name: str) -> None:
        where = f"{kind}/{name}"
        rules.setdefault(f["code"], _rule(f["code"]))
        evidence = f.get("evidence", {})
        results.append({
            "ruleId": f["code"],
            "level": LEVEL.get(f["severity"], "warning"),
            "message": {"text": f["message"]},
            "locations": _locations(where, kind, evidence, run),
            "partialFingerprints": {FINGERPRINT: fingerprint(where, f["code"], evidence)},
            "properties": {"severity": f["severity"], "evidence": evidence},
        })

    for name, c in report["clusters"].items():
        for f in c["findings"]:
            add(f, "cluster", name)
    for d in report["devices"]:
        for f in d["findings"]:
            add(f, "device", d["name"])
    order = sorted(rules)
    index = {code: i for i, code in enumerate(order)}
    for r in results:
        r["ruleIndex"] = index[r["ruleId"]]
    bases: dict[str, Any] = {k: {"description": {"text": v}} for k, v in _BASES.items()}
    evidence_dir = run.get("evidence")
    if isinstance(evidence_dir, str) and Path(evidence_dir).is_absolute():
        bases["EVIDENCE"]["uri"] = Path(evidence_dir).as_uri() + "/"
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "trustscan", "version": report["tool"]["version"],
                                "rules": [rules[k] for k in order]}},
            "invocations": [_invocation(report, sys.argv if command_line is None else command_line, exit_code)],
            "originalUriBaseIds": bases,
            "results": results,
            "properties": {"verdict": report["verdict"], "summary": report["summary"]},
        }],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def write(report: dict[str, Any], out: Path, *, command_line: Sequence[str] | None = None,
          exit_code: int | None = None) -> Path:
    path = out / "report.sarif"
    write_atomic(path, render(report, command_line=command_line, exit_code=exit_code))
    return path
