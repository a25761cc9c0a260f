"""``trustscan verify``: after a cutover (or part of one), which phones made it.

Collects as ``scan`` does (or reads archived evidence with ``--from``): both clusters' trust lists
and every phone's web pages; then each phone is MIGRATED, STUCK (with the reason it can see),
NOT_MOVED or UNKNOWN (``scanner.core.verification``). Writes ``verification.json``,
``devices.jsonl``, ``matrix.csv`` and ``report.html``. ``trustscan diff`` of the pre-cutover
``report.json`` and this ``verification.json`` lists the phones whose outcome the prediction did
not foresee.

Exit codes, as ``scan``'s: 0 no phone STUCK or UNKNOWN (NOT_MOVED phones are the part not cut
over yet), 1 some phone STUCK or none moved at all, 2 some UNKNOWN (or the evidence is incomplete), 64 usage or bad
input, 70 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from scanner.cli import output
from scanner.cli.exitcodes import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_NO_GO, EXIT_OK, EXIT_USAGE
from scanner.cli.output import Stop, err, internal_error, json_line, note
from scanner.cli.scan import ScanRequest, _collect, _discovered, _plan, _read_inputs
from scanner.core.errors import ParseError

OUTCOME_EXIT = {"DONE": EXIT_OK, "STUCK": EXIT_NO_GO, "NOT_STARTED": EXIT_NO_GO, "INCOMPLETE": EXIT_INCOMPLETE}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="after a cutover: which phones migrated, which are stuck and why",
        description="Collect (or read with --from) both clusters' trust lists and the phones' pages, and say per "
        "phone MIGRATED, STUCK (with the reason), NOT_MOVED or UNKNOWN. Writes verification.json, devices.jsonl, "
        "matrix.csv and report.html into --out. Exit codes: 0 none STUCK or UNKNOWN, 1 some STUCK, 2 some "
        "UNKNOWN, 64 usage or bad input, 70 internal error.",
    )
    p.add_argument("--profile", required=True, metavar="P", help="scan profile (TOML), see docs/profile.md")
    p.add_argument("--inventory", metavar="CSV", help="phone export (with AXL in the profile: fills and overrides)")
    p.add_argument("--from", dest="evidence", metavar="EVIDENCE_DIR", help="verify archived evidence instead of collecting")
    p.add_argument("--out", required=True, metavar="DIR", help="where the reports go (the evidence in DIR/evidence)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--progress-json", action="store_true", help="progress as JSON lines on stderr")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    req = ScanRequest(profile=args.profile, out=args.out, inventory=args.inventory, evidence=args.evidence,
                      no_history=True, no_progress=args.no_progress, progress_json=args.progress_json, json=args.json)
    started = time.time()
    try:
        inputs = _read_inputs(req)
    except (ParseError, FileNotFoundError) as exc:
        err(str(exc))
        return EXIT_USAGE
    try:
        inputs = _discovered(req, inputs)
        plan = _plan(req, inputs)
    except Stop as stop:
        err(str(stop))
        return stop.code
    try:
        if plan.collect:
            _collect(req, inputs, plan)
        return _verify(req, inputs, plan, started)
    except KeyboardInterrupt:
        err(f"interrupted; evidence so far is in {plan.evidence}")
        return EXIT_INTERRUPTED
    except Exception:  # the one boundary where anything unexpected becomes exit 70
        return internal_error()


def _verify(req: ScanRequest, inputs: Any, plan: Any, started: float) -> int:
    from scanner.app.verification import verify

    note(f"verifying {plan.evidence}")
    meta = dict(inputs.run_meta)
    if plan.collect:
        meta["started"] = started
    result = verify(inputs.profile, plan.evidence, plan.out,
                    inventory=None if inputs.inventory is None else inputs.inventory.phones, run_meta=meta)
    for w in result.warnings:
        err(f"warning: {w}")
    doc = result.doc
    code = OUTCOME_EXIT[doc["outcome"]]
    if output.VERBOSITY:
        c = doc["summary"]["counts"]
        lines = ["", f"  Outcome: {doc['outcome']}  ({doc['summary']['why']})",
                 f"  Phones:  {doc['summary']['total']} total · {c['MIGRATED']} MIGRATED · {c['STUCK']} STUCK · "
                 f"{c['NOT_MOVED']} NOT_MOVED · {c['UNKNOWN']} UNKNOWN"]
        lines += [f"  {k:>5}: {v}" for k, v in result.paths.items()]
        import sys

        print("\n".join(lines), file=sys.stderr)
    if req.json:
        json_line({"outcome": doc["outcome"], "summary": doc["summary"],
                   "reports": {k: str(v) for k, v in result.paths.items()}, "exit_code": code})
    if code:
        err(f"exit {code}: {doc['summary']['why']}")
    return code
