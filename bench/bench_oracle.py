"""The oracle (issue 11): for built-in scenarios, scan a served lab, cut every phone over with the
lab's migrating phones (scanner/lab/phone_sim.py, written from the spec, not from the readiness
checks), verify, and compare the prediction with the outcome phone by phone.

Run by hand: ``python bench/bench_oracle.py [--scenarios mixed,healthy,...] [--phones 500] [--base 46] [--json]``.
Every phone is cut over twice, from the lists it held before: once as option 150 orders it, once
with its first destination TFTP node not answering it (``lab cutover --failover``), since the
scan's prediction is for any destination node the phone may use (C5). A phone's outcome is the
worse of the two (STUCK or NOT_MOVED in either, else UNKNOWN in either, else MIGRATED).

Prints per scenario: the prediction (READY / NOT_READY / UNKNOWN), the outcome (MIGRATED / STUCK /
NOT_MOVED / UNKNOWN), and the disagreements: ``missed`` (predicted READY, STUCK: the scan missed
something) and ``overcautious`` (predicted NOT_READY, MIGRATED), each with the codes predicted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from scanner.cli.demo import serving_subprocess
from scanner.cli.main import main
from scanner.lab.overlay import STATE_FILE
from scanner.lab.scenario import BUILTIN
from scanner.report.prediction_diff import compare


def _quiet(argv: list[str]) -> int:
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return main(argv)


_WORSE = {"STUCK": 3, "NOT_MOVED": 3, "UNKNOWN": 2, "MIGRATED": 1}


def merge_outcomes(first: dict[str, Any], failover: dict[str, Any]) -> dict[str, Any]:
    """One verification document from the two cutovers: per phone the worse outcome, its
    reasons marked with the run that gave them."""
    other = {d["name"]: d for d in failover["devices"]}
    devices = []
    for d in first["devices"]:
        f = other.get(d["name"])
        if f is not None and _WORSE.get(f["outcome"], 0) > _WORSE.get(d["outcome"], 0):
            d = {**f, "reasons": [f"with failover: {r}" for r in f.get("reasons", [])]}
        devices.append(d)
    return {**first, "devices": devices}


def run_one(scenario: str, phones: int, base: int, root: Path) -> dict[str, Any]:
    lab, scan, verify = root / scenario / "lab", root / scenario / "scan", root / scenario / "verify"
    started = time.perf_counter()
    assert _quiet(["lab", "build", "--out", str(lab), "--phones", str(phones), "--scenario", scenario,
                   "--seed", "7", "--base", str(base)]) == 0
    key = orjson.loads((lab / "answer-key.json").read_bytes())
    if "refused" in key:
        return {"scenario": scenario, "skipped": "the scan is refused by design (AXL password)"}
    with serving_subprocess(lab):
        _quiet(["scan", "--profile", str(lab / "profile.toml"), "--out", str(scan), "--no-history", "--no-progress",
                "--format", "json"])
        cut = _quiet(["lab", "cutover", str(lab)])
        _quiet(["verify", "--profile", str(lab / "profile.toml"), "--out", str(verify), "--no-progress"])
        (lab / STATE_FILE).unlink()  # every phone back to the lists it held before the cutover
        _quiet(["lab", "cutover", str(lab), "--failover"])
        _quiet(["verify", "--profile", str(lab / "profile.toml"), "--out", str(verify) + "-failover", "--no-progress"])
    report = orjson.loads((scan / "report.json").read_bytes())
    doc = merge_outcomes(
        orjson.loads((verify / "verification.json").read_bytes()),
        orjson.loads((Path(str(verify) + "-failover") / "verification.json").read_bytes()),
    )
    rows, summary = compare(report, doc, scan_where="report.json", verification_where="verification.json")
    return {
        "scenario": scenario,
        "seconds": round(time.perf_counter() - started, 1),
        "cutover_exit": cut,
        "predicted": dict(Counter(d["readiness"] for d in report["devices"])),
        "outcome": dict(Counter(d["outcome"] for d in doc["devices"])),
        "agreement": dict(summary.counts),
        "disagreements": [r.as_dict() for r in rows if r.verdict in ("missed", "overcautious")],
    }


def main_() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default=",".join(sorted(BUILTIN)))
    ap.add_argument("--phones", type=int, default=500)
    ap.add_argument("--base", type=int, default=46, help="lab base octet (its destination is base+10)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="oracle-") as tmp:
        for name in [s for s in args.scenarios.split(",") if s]:
            r = run_one(name, args.phones, args.base, Path(tmp))
            results.append(r)
            if "skipped" in r:
                print(f"{name:<32} skipped: {r['skipped']}")
                continue
            a = r["agreement"]
            codes = Counter(c for d in r["disagreements"] for c in (d["predicted_codes"] or ["-"]))
            print(f"{name:<32} {r['seconds']:>6.1f}s predicted {r['predicted']} outcome {r['outcome']} "
                  f"agree {a['agree']} missed {a['missed']} overcautious {a['overcautious']} untested {a['untested']}"
                  + (f" codes {dict(codes)}" if codes else ""))
            sys.stdout.flush()
    if args.json:
        print(orjson.dumps(results).decode())


if __name__ == "__main__":
    main_()
