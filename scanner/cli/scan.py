"""``trustscan scan`` and ``trustscan diff``: argv in, a summary on stderr, an exit code out.

Exit codes of ``scan``: 0 GO, 1 NO_GO, 2 INCOMPLETE, 64 usage or bad input, 70 internal error;
the reason for a non-zero code is always printed. ``--fail-on`` moves the threshold (see
:func:`fail_on`). Exit codes of ``diff``: 0 nothing worse, 1 some phone or the fleet got worse,
64 usage or bad input, 70 internal error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from scanner.core.errors import ParseError

EXIT_GO, EXIT_NO_GO, EXIT_INCOMPLETE = 0, 1, 2
EXIT_USAGE, EXIT_INTERNAL = 64, 70
VERDICT_EXIT = {"GO": EXIT_GO, "NO_GO": EXIT_NO_GO, "INCOMPLETE": EXIT_INCOMPLETE}


def _err(msg: str) -> None:
    print(f"trustscan: {msg}", file=sys.stderr)


def _iso(text: str) -> dt.datetime:
    try:
        v = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return v if v.tzinfo else v.replace(tzinfo=dt.UTC)


def _formats(text: str) -> list[str]:
    from scanner.app.analysis import FORMATS, OPTIONAL_FORMATS

    known = FORMATS + OPTIONAL_FORMATS
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in known]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"formats are a comma-separated subset of {','.join(known)}")
    return items


VERDICTS = ("NO_GO", "INCOMPLETE")  # the verdict thresholds of --fail-on (GO never fails)
SEVERITIES = ("BLOCKER", "WARNING", "INFO")  # finding severities, worst first


@dataclass(frozen=True, slots=True)
class FailOn:
    """``--fail-on``: which verdict fails the run, and which finding severity fails it too."""

    verdict: str = "INCOMPLETE"  # the default: NO_GO exits 1, INCOMPLETE 2
    severity: str | None = None

    def __str__(self) -> str:
        return ",".join([self.verdict] + ([self.severity] if self.severity else []))


def fail_on(text: str) -> FailOn:
    """``NO_GO``, ``INCOMPLETE``, ``BLOCKER``, ``WARNING``, ``INFO``, or one verdict and one
    severity joined by a comma (``NO_GO,WARNING``); case does not matter."""
    items = [t.strip().upper().replace("-", "_") for t in text.split(",") if t.strip()]
    verdicts = [t for t in items if t in VERDICTS]
    severities = [t for t in items if t in SEVERITIES]
    bad = [t for t in items if t not in VERDICTS and t not in SEVERITIES]
    if bad or not items or len(verdicts) > 1 or len(severities) > 1:
        raise argparse.ArgumentTypeError(
            f"--fail-on takes a verdict ({', '.join(VERDICTS)}) and/or a finding severity "
            f"({', '.join(SEVERITIES)}), e.g. NO_GO or INCOMPLETE,WARNING; got {text!r}"
        )
    return FailOn(verdicts[0] if verdicts else "INCOMPLETE", severities[0] if severities else None)


def findings_at_least(report: dict[str, Any], severity: str) -> int:
    """How many findings (phones' and clusters') are of ``severity`` or worse."""
    worst = set(SEVERITIES[: SEVERITIES.index(severity) + 1])
    n = sum(1 for d in report["devices"] for f in d["findings"] if f["severity"] in worst)
    return n + sum(1 for c in report["clusters"].values() for f in c["findings"] if f["severity"] in worst)


def exit_code(report: dict[str, Any], gate: FailOn | None) -> tuple[int, str | None]:
    """The exit code of a scan and, when it is not 0 or differs from the verdict's, why."""
    verdict = report["verdict"]
    gate = gate or FailOn()
    code = VERDICT_EXIT[verdict]
    why = None
    if verdict == "INCOMPLETE" and gate.verdict == "NO_GO":
        code, why = EXIT_GO, "verdict INCOMPLETE does not fail --fail-on NO_GO"
    elif code:
        why = f"verdict {verdict}"
    if gate.severity is not None and code == EXIT_GO:
        n = findings_at_least(report, gate.severity)
        if n:
            code, why = EXIT_NO_GO, (f"{n} finding{'s' if n != 1 else ''} of severity {gate.severity} or worse "
                                     f"(--fail-on {gate})")
    return code, why


def add_scan_arguments(p: argparse.ArgumentParser, *, need_profile: bool = True) -> None:
    if need_profile:
        p.add_argument("--profile", required=True, metavar="P", help="scan profile (TOML), see docs/profile.md")
        p.add_argument("--inventory", metavar="CSV", help="CUCM bulk-administration phone export")
        p.add_argument("--from", dest="evidence", metavar="EVIDENCE_DIR",
                       help="analyse archived evidence instead of collecting")
        p.add_argument("--resume", metavar="DIR",
                       help="finish an interrupted or partial scan whose --out was DIR: keep its definite "
                       "answers, ask the rest again, rewrite its reports")
    p.add_argument("--out", default=None, metavar="DIR", help="where the reports go (required unless --resume)")
    p.add_argument("--format", type=_formats, default=None, metavar="LIST",
                   help="report formats: json,jsonl,csv,html (the default) and sarif,junit")
    p.add_argument("--policy", metavar="FILE", help="readiness policy (TOML; default: the shipped policy)")
    p.add_argument("--now", type=_iso, default=None, metavar="ISO8601", help="judge validity at this time")
    p.add_argument("--history", metavar="PATH", help="history database (SQLite; default: ~/.local/state/trustscan)")
    p.add_argument("--no-history", action="store_true", help="do not record this scan")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--fail-on", type=fail_on, default=None, metavar="LEVEL",
                   help="when to exit non-zero: NO_GO (only NO_GO fails, exit 1), INCOMPLETE (the default: "
                   "NO_GO exits 1, INCOMPLETE 2), and/or a finding severity BLOCKER, WARNING or INFO (exit 1 "
                   "also when the verdict is GO but some finding is that severe or worse), e.g. INCOMPLETE,WARNING")


def add_parsers(sub: Any) -> None:
    scan = sub.add_parser(
        "scan",
        help="collect, analyse and report migration readiness",
        description="Collect evidence from both clusters and the phones (or read archived evidence with "
        "--from), decide per phone READY/NOT_READY/UNKNOWN and GO/NO_GO/INCOMPLETE, write report.json, "
        "devices.jsonl, matrix.csv and report.html. Exit codes: 0 GO, 1 NO_GO, 2 INCOMPLETE, 64 usage or bad "
        "input, 70 internal error; --fail-on moves the threshold.",
    )
    add_scan_arguments(scan)
    d = sub.add_parser(
        "diff",
        help="phones whose verdict changed between two scans",
        description="OLD and NEW are report.json files or history runs: history:latest, history:previous, "
        "history:<id>. Prints the changed phones (JSONL with --json, then a summary record), and the "
        "summary on stderr. Exit codes: 0 nothing worse, 1 some phone or the fleet verdict got worse, "
        "64 usage or bad input, 70 internal error.",
    )
    d.add_argument("old", metavar="OLD")
    d.add_argument("new", metavar="NEW")
    d.add_argument("--history", metavar="PATH", help="history database for history:… references")
    d.add_argument("--json", action="store_true",
                   help="JSONL on stdout: one record per changed phone, then the summary record")


def load_policy(path: str | None) -> Any:
    from scanner.core.policy import default_policy, parse_policy

    if path is None:
        return default_policy()
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read policy: {exc.strerror or exc}", path=path) from None
    return parse_policy(data, path=path)


def history_path(args: argparse.Namespace) -> Path | None:
    from scanner.store.history import default_path

    if getattr(args, "no_history", False):
        return None
    return Path(args.history) if args.history else default_path()


def run_scan(args: argparse.Namespace) -> int:
    from scanner.core.inventory import Inventory, parse_inventory
    from scanner.store.profiles import load_profile

    try:
        profile = load_profile(args.profile)
        policy = load_policy(args.policy)
        inventory: Inventory | None = None
        inv_sha = None
        if args.inventory:
            try:
                raw = Path(args.inventory).read_bytes()
            except OSError as exc:
                raise ParseError(f"cannot read inventory: {exc.strerror or exc}", path=args.inventory) from None
            inv_sha = hashlib.sha256(raw).hexdigest()
            inventory = parse_inventory(raw, path=args.inventory)
            for issue in inventory.issues:
                _err(f"warning: inventory: {issue}")
            if not inventory.phones:
                raise ParseError("the inventory has no usable phone (every row was refused)", path=args.inventory)
    except (ParseError, FileNotFoundError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    run_meta: dict[str, Any] = {}
    if inventory is not None:  # what the reviewer needs to see: which rows were left out, and why
        run_meta = {"inventory": args.inventory, "inventory_sha256": inv_sha,
                    "inventory_issues": [str(issue) for issue in inventory.issues]}
    resume = getattr(args, "resume", None)
    if resume and (args.evidence or (args.out and Path(args.out) != Path(resume))):
        _err("--resume DIR continues the scan in DIR: give neither --from nor another --out")
        return EXIT_USAGE
    if not resume and not args.out:
        _err("--out DIR is required (or --resume DIR to finish an earlier scan)")
        return EXIT_USAGE
    out = Path(resume or args.out)
    evidence = Path(args.evidence) if args.evidence else out / "evidence"
    if resume and not (evidence / "manifest.jsonl").is_file() and (out / "manifest.jsonl").is_file():
        evidence, out = out, out.parent  # pointed at the evidence directory itself
    point = None
    if resume:
        from scanner.app.resume import NothingToResume, resume_point

        if not (evidence / "manifest.jsonl").is_file():
            _err(f"{out} holds no scan to resume (no {evidence / 'manifest.jsonl'})")
            return EXIT_USAGE
        try:
            point = resume_point(evidence, profile, inv_sha)
        except NothingToResume as exc:
            _err(str(exc))
            return analyse_and_report(args, profile, policy, evidence, out,
                                      None if inventory is None else inventory.phones, run_meta)
        except ParseError as exc:
            _err(f"cannot resume: {exc}")
            return EXIT_USAGE
        _err(f"resuming {evidence}: {len(point.keep)} attempts kept, {point.redo} to ask again")
    elif args.evidence:
        if not (evidence / "manifest.jsonl").is_file():
            hint = ""
            if (evidence / "evidence" / "manifest.jsonl").is_file():
                hint = f"; it is a scan's output directory: give --from {evidence / 'evidence'}"
            _err(f"{evidence} is not an evidence directory (no manifest.jsonl){hint}")
            return EXIT_USAGE
    elif (evidence / "manifest.jsonl").exists():
        _err(f"{evidence} already holds evidence: choose a new --out, finish it with --resume {out}, or "
             f"analyse it with --from {evidence}")
        return EXIT_USAGE
    show = sys.stderr.isatty() and not args.no_progress
    try:
        if not args.evidence:
            from scanner.app.collect import collect
            from scanner.cli.collect import _run

            def start(observer: Any) -> Any:
                return collect(profile, evidence, inventory=inventory, inventory_path=args.inventory,
                               inventory_sha256=inv_sha, observer=observer, resume=point)

            result = _run(start, show)
            for issue in result.summary.get("discovery_issues", []):
                _err(f"warning: discovery: {issue}")
            if result.dead_nodes:
                _err(f"warning: nodes that stopped answering: {', '.join(result.dead_nodes)}")
        return analyse_and_report(args, profile, policy, evidence, out,
                                  None if inventory is None else inventory.phones, run_meta)
    except KeyboardInterrupt:
        _err(f"interrupted; evidence so far is in {evidence}: finish it with --resume {out}")
        return 130
    except Exception:  # the one boundary where anything unexpected becomes exit 70
        _err("internal error (please report it with this trace):\n" + traceback.format_exc())
        return EXIT_INTERNAL


def analyse_and_report(
    args: argparse.Namespace, profile: Any, policy: Any, evidence: Path, out: Path, phones: Any,
    run_meta: dict[str, Any] | None = None,
) -> int:
    from scanner.app.analysis import FORMATS, AnalysisOptions, analyse

    opts = AnalysisOptions(
        profile=profile, evidence=evidence, out=out, policy=policy,
        now=args.now or dt.datetime.now(dt.UTC), inventory=phones,
        formats=args.format or FORMATS, history=history_path(args), run_meta=dict(run_meta or {}),
    )
    outcome = analyse(opts)
    for w in outcome.warnings:
        _err(f"warning: {w}")
    report = outcome.report
    print_summary(report, outcome.paths)
    code, why = exit_code(report, getattr(args, "fail_on", None))
    if args.json:
        doc = {"verdict": report["verdict"], "summary": report["summary"],
               "reports": {k: str(v) for k, v in outcome.paths.items()}, "exit_code": code}
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE))
    if why is not None:
        _err(f"exit {code}: {why}")
    return code


def print_summary(report: dict[str, Any], paths: dict[str, Path]) -> None:
    s = report["summary"]
    c = s["counts"]
    lines = [
        "",
        f"  Verdict: {report['verdict']}  ({s['why']})",
        f"  Phones:  {s['total']} total · {c['READY']} READY · {c['NOT_READY']} NOT_READY · {c['UNKNOWN']} UNKNOWN",
    ]
    if s["top_reasons"]:
        lines.append("  Top reasons: " + ", ".join(f"{r['code']} ({r['count']})" for r in s["top_reasons"][:6]))
    if s["cluster_blockers"]:
        lines.append("  Cluster blockers: " + ", ".join(s["cluster_blockers"]))
    for kind in ("html", "json", "jsonl", "csv", "sarif", "junit"):
        if kind in paths:
            lines.append(f"  {kind:>5}: {paths[kind]}")
    print("\n".join(lines), file=sys.stderr)


def run_diff(args: argparse.Namespace) -> int:
    """0 nothing worse, 1 some phone or the fleet got worse, 64 bad input, 70 internal error."""
    from scanner.report.diff import change_dict, diff, render_summary, render_text, summarize

    try:
        old, new = _diff_side(args, args.old), _diff_side(args, args.new)
    except ParseError as exc:
        _err(str(exc))
        return EXIT_USAGE
    try:
        changes = diff(old.rows, new.rows)
        summary = summarize(old, new, changes)
        if args.json:
            for c in changes:
                sys.stdout.buffer.write(orjson.dumps(change_dict(c), option=orjson.OPT_APPEND_NEWLINE))
            sys.stdout.buffer.write(orjson.dumps(summary.as_dict(), option=orjson.OPT_APPEND_NEWLINE))
        else:
            print(render_text(changes))
        sys.stdout.flush()
        print(render_summary(summary), file=sys.stderr)
    except BrokenPipeError:
        raise
    except Exception:  # the one boundary where anything unexpected becomes exit 70
        _err("internal error (please report it with this trace):\n" + traceback.format_exc())
        return EXIT_INTERNAL
    return EXIT_NO_GO if summary.worse else 0


def _diff_side(args: argparse.Namespace, ref: str) -> Any:
    from scanner.report.diff import Side, rows_from, side_from_report
    from scanner.store.history import History, default_path

    if ref.startswith("history:"):
        path = Path(args.history) if args.history else default_path()
        if not path.exists():
            raise ParseError(f"no history database at {path}")
        with History(path) as h:
            for w in h.warnings:
                _err(f"warning: {w}")
            run = h.resolve(ref.split(":", 1)[1])
            if run is None:
                raise ParseError(f"no history run {ref.split(':', 1)[1]!r} in {path}")
            rows = rows_from(h.devices(run))
            row = h.db.execute("SELECT verdict, profile_sha256, report_path FROM runs WHERE id = ?", (run,)).fetchone()
        verdict, profile_sha, report_path = row
        policy = inventory_sha = None
        if report_path:  # the run's report, when it is still there, says what the row does not
            try:
                doc = orjson.loads(Path(report_path).read_bytes())
                kept = side_from_report(doc, report_path)
            except (OSError, orjson.JSONDecodeError, ParseError):
                kept = None
            if kept is not None and kept.profile_sha256 == profile_sha and kept.rows == rows:
                policy, inventory_sha = kept.policy, kept.inventory_sha256
        return Side(ref, rows, verdict, profile_sha, policy, inventory_sha)
    try:
        doc = orjson.loads(Path(ref).read_bytes())
    except IsADirectoryError:
        hint = Path(ref) / "report.json"
        more = f"; did you mean {hint}?" if hint.is_file() else ""
        raise ParseError(f"a directory, not a report.json{more}", path=ref) from None
    except OSError as exc:
        raise ParseError(f"cannot read report: {exc.strerror or exc}", path=ref) from None
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"not JSON: {exc}", path=ref) from None
    return side_from_report(doc, ref)
