"""Soak of TFTP collection under loss: does any stored file carry another file's bytes?

What it does, so that the figures can be trusted:

* **Lab**: one ``trustscan lab build`` (scenario ``healthy`` on its own loopback network) of
  ``--phones`` phones, served by ``trustscan lab serve`` in a second process. For each loss
  rate and run, the lab is served with the ``node-loss`` fault (TFTP only) on all four TFTP
  nodes and a fresh loss seed (a served copy of the lab: symlinks to the build, its own
  ``lab.json``; the lab's code is not touched). ``node-loss`` drops what the *server* sends.
* **Scanner**: the real path: ``scanner.app.collect.collect`` (workers, per-node limits, the pooled
  TFTP sockets, evidence written), every cluster forced to transport ``tftp``, then
  ``scanner.app.analysis.analyse`` for the per-phone verdicts.
* **Wrong bytes**: every ``ok`` TFTP attempt in the manifest is compared, by SHA-256 of the
  bytes as received, with the bytes the lab serves for that (node, name) (the lab server's own
  lookup, ``scanner.lab.serve.NodeFiles``). The lab's files are distinct per node (each node
  signs its own) and per phone for configs; per-phone ``CTLSEP``/``ITLSEP`` names resolve to
  the node's list, so a mix between two phones' lists *on one node* would be byte-identical
  and harmless; every other mix (another node, another kind, another phone's config) shows.
  Must be 0.
* **Verdict changes**: each phone's readiness against a loss-free run of the same lab. Loss may
  only make a phone ``UNKNOWN`` (a file that never came): counted apart as ``unknown``. Any
  other change (``READY`` <-> ``NOT_READY``...) is a verdict change. Must be 0.

    .venv/bin/python bench/bench_soak.py                     # 20 runs × 10/20/30 %, 300 phones
    .venv/bin/python bench/bench_soak.py --runs 5 --phones 300 --json

``--json`` prints one JSON object as the last line. Exit status 1 if any wrong bytes or verdict
change was seen.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The lab served in its own process, as the collection bench serves it (this directory is on
# sys.path when a bench is run as a script).
from bench_collect import Served

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
# The soak lab's loopback network (lab "network.base"): apart from the other benches' and tests'.
BASE = 65
NODES = ("src-pub", "src-sub1", "dst-pub", "dst-sub1")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_lab(work: Path, phones: int) -> Path:
    lab = work / f"lab-soak-{phones}"
    if (lab / "lab.json").is_file():
        return lab
    scenario = work / "soak.toml"
    scenario.write_text(
        f'name = "soak"\ndescription = "bench_soak: healthy fleet"\n[network]\nbase = {BASE}\n'
    )
    t = time.monotonic()
    cmd = [sys.executable, "-m", "scanner", "lab", "build", "--out", str(lab), "--phones", str(phones)]
    subprocess.run([*cmd, "--scenario", str(scenario), "--quiet"], check=True, cwd=ROOT)
    log(f"built a lab of {phones} phones in {time.monotonic() - t:.1f} s: {lab}")
    return lab


def lossy_copy(lab: Path, dest: Path, loss: float, seed: str) -> Path:
    """``dest``: the lab's files (symlinked) with a ``lab.json`` whose TFTP nodes drop ``loss``."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for entry in lab.iterdir():
        if entry.name != "lab.json":
            (dest / entry.name).symlink_to(entry.resolve())
    doc = json.loads((lab / "lab.json").read_text())
    doc["seed"] = seed
    for cluster in doc["clusters"].values():
        for node in cluster["tftp"]:
            faults = dict(node.get("faults", {}))
            if loss > 0:
                faults["node-loss"] = {"loss": loss, "protocols": ["tftp"]}
            node["faults"] = faults
    (dest / "lab.json").write_text(json.dumps(doc))
    return dest


def expected(lab: Path, cache: dict[tuple[str, str], str | None], node: str, name: str) -> str | None:
    """SHA-256 of what ``node`` serves as ``name``, by the lab server's own lookup (cached)."""
    from scanner.lab.serve import NodeFiles

    key = (node, name)
    if key not in cache:
        files = _node_files.get(node)
        if files is None:
            files = _node_files[node] = NodeFiles(lab / "tftp" / node)
        data = files.lookup(name)
        cache[key] = None if data is None else hashlib.sha256(data).hexdigest()
    return cache[key]


_node_files: dict[str, Any] = {}


def scan(lab: Path, out: Path, now: dt.datetime) -> tuple[dict[str, str], list[dict[str, Any]], float]:
    """Collect and analyse; ``({phone: readiness}, TFTP manifest lines, collection seconds)``."""
    from scanner.app.analysis import AnalysisOptions, analyse
    from scanner.app.collect import collect
    from scanner.core.inventory import parse_inventory
    from scanner.core.policy import default_policy
    from scanner.core.profile import Transport
    from scanner.store.profiles import load_profile

    profile = load_profile(lab / "profile-manual.toml")  # nodes by hand: app.collect is given no discovery
    clusters = {c.name: dataclasses.replace(c, transport=Transport.TFTP) for c in profile.clusters}
    profile = dataclasses.replace(profile, source=clusters["source"], destination=clusters["destination"])
    inventory = parse_inventory((lab / "inventory.csv").read_bytes())
    t = time.monotonic()
    asyncio.run(collect(profile, out / "evidence", inventory=inventory))
    seconds = time.monotonic() - t
    verdicts: dict[str, str] = {}

    def on_device(row: dict[str, Any]) -> None:
        verdicts[str(row["name"])] = str(row["readiness"])

    opts = AnalysisOptions(
        profile=profile,
        evidence=out / "evidence",
        out=out / "report",
        policy=default_policy(),
        now=now,
        inventory=inventory.phones,
        formats=("json",),
        history=None,
        on_device=on_device,
    )
    outcome = analyse(opts)
    if not verdicts:
        for row in outcome.report.get("devices", []):
            verdicts[str(row["name"])] = str(row["readiness"])
    lines = [json.loads(x) for x in (out / "evidence" / "manifest.jsonl").read_text().splitlines() if x]
    tftp = [x for x in lines if x.get("transport") == "tftp"]
    return verdicts, tftp, seconds


def compare(
    lab: Path, cache: dict[tuple[str, str], str | None], lines: list[dict[str, Any]]
) -> tuple[int, int, list[str]]:
    """``(files compared, wrong bytes, examples)`` over the ok TFTP attempts."""
    compared = wrong = 0
    examples: list[str] = []
    for a in lines:
        if a.get("outcome") != "ok" or a.get("node") is None:
            continue
        compared += 1
        want = expected(lab, cache, a["node"], a["file"])
        if want != a.get("sha256"):
            wrong += 1
            if len(examples) < 5:
                examples.append(f"{a['node']}/{a['file']} (phone {a.get('phone')})")
    return compared, wrong, examples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phones", type=int, default=300)
    ap.add_argument("--runs", type=int, default=20, help="lossy runs per loss rate")
    ap.add_argument("--loss", default="0.1,0.2,0.3", help="comma-separated loss rates")
    ap.add_argument("--work", type=Path, default=None, help="keep labs here (default: a temp dir)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rates = [float(x) for x in args.loss.split(",") if x]
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    lab = build_lab(work, args.phones)
    cache: dict[tuple[str, str], str | None] = {}
    now = dt.datetime.now(dt.UTC)

    def one(loss: float, seed: str) -> tuple[dict[str, str], list[dict[str, Any]], float]:
        served = lossy_copy(lab, work / "served", loss, seed)
        out = work / "run"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir()
        with Served(served):
            return scan(served, out, now)

    base_verdicts, base_lines, base_s = one(0.0, "soak-baseline")
    compared, wrong, examples = compare(lab, cache, base_lines)
    log(f"loss-free run: {len(base_verdicts)} phones, {compared} files, {wrong} wrong, {base_s:.1f} s")
    rows: list[dict[str, Any]] = []
    exit_code = 1 if wrong else 0
    for loss in rates:
        row: dict[str, Any] = {
            "loss": loss,
            "runs": 0,
            "files_compared": 0,
            "wrong_bytes": 0,
            "verdict_changes": 0,
            "unknown": 0,
            "not_ok": 0,
            "seconds": 0.0,
            "examples": [],
        }
        for run in range(args.runs):
            verdicts, lines, seconds = one(loss, f"soak-{loss}-{run}")
            compared, wrong, examples = compare(lab, cache, lines)
            changes = unknown = 0
            for phone, base in base_verdicts.items():
                now_v = verdicts.get(phone)
                if now_v == base:
                    continue
                if now_v is not None and now_v.upper() == "UNKNOWN":
                    unknown += 1
                else:
                    changes += 1
                    if len(row["examples"]) < 5:
                        row["examples"].append(f"{phone}: {base} -> {now_v}")
            row["runs"] += 1
            row["files_compared"] += compared
            row["wrong_bytes"] += wrong
            row["verdict_changes"] += changes
            row["unknown"] += unknown
            row["not_ok"] += sum(a.get("outcome") != "ok" for a in lines)
            row["seconds"] += seconds
            row["examples"] += examples[: max(0, 5 - len(row["examples"]))]
            log(
                f"loss {loss:.0%} run {run + 1}/{args.runs}: {compared} files, {wrong} wrong bytes, "
                f"{changes} verdict changes, {unknown} unknown, {seconds:.1f} s"
            )
        rows.append(row)
        if row["wrong_bytes"] or row["verdict_changes"]:
            exit_code = 1
    print(
        f"{'loss':>5} {'runs':>5} {'files compared':>15} {'wrong bytes':>12} {'verdict changes':>16} "
        f"{'unknown':>8} {'not ok':>7} {'s/run':>6}"
    )
    for r in rows:
        print(
            f"{r['loss']:>5.0%} {r['runs']:>5} {r['files_compared']:>15} {r['wrong_bytes']:>12} "
            f"{r['verdict_changes']:>16} {r['unknown']:>8} {r['not_ok']:>7} {r['seconds'] / max(1, r['runs']):>6.1f}"
        )
    for r in rows:
        for e in r["examples"]:
            print(f"  {r['loss']:.0%}: {e}")
    if args.json:
        print(json.dumps({"phones": args.phones, "baseline_phones": len(base_verdicts), "rows": rows}))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
