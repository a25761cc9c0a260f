"""``trustscan diff OLD NEW``: the phones whose readiness changed between two scans, for people
(text) and pipelines (JSONL and the exit code).

Exit codes (scanner/cli/exitcodes.py): 0 nothing got worse, 1 something got worse (a phone, the
fleet verdict, or an added NOT_READY phone: "worse" is defined in scanner/report/diff.py), 64
usage or bad input (an unreadable or foreign report, another schema version, an unknown history
run), 70 internal error.

With NEW a ``trustscan verify`` result (``verification.json``), the prediction is compared with
the outcome instead (scanner/report/prediction_diff.py): the phones predicted READY that are
STUCK and those predicted NOT_READY that MIGRATED; exit 1 when there is one.

Output: the changed phones on stdout (text, or with ``--json`` one JSON object per line, then the
summary record last; schemas in schema/diff-phone.schema.json and schema/diff-summary.schema.json),
and the summary in words on stderr either way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from scanner.cli.exitcodes import EXIT_OK, EXIT_USAGE, EXIT_WORSE
from scanner.cli.output import err, internal_error, json_line
from scanner.core.errors import ParseError

if TYPE_CHECKING:
    from scanner.report.diff import Side

HISTORY_PREFIX = "history:"


def add_parser(sub: Any) -> None:
    d = sub.add_parser(
        "diff",
        help="phones whose verdict changed between two scans",
        description="OLD and NEW are report.json files or history runs: history:latest, history:previous, "
        "history:<id>. Prints the changed phones (JSONL with --json, then a summary record), and the "
        "summary on stderr. Exit codes: 0 nothing worse, 1 some phone or the fleet verdict got worse "
        "(or an added phone is NOT_READY), 64 usage or bad input, 70 internal error.",
    )
    d.add_argument("old", metavar="OLD")
    d.add_argument("new", metavar="NEW")
    d.add_argument("--history", metavar="PATH", help="history database for history:… references")
    d.add_argument("--json", action="store_true",
                   help="JSONL on stdout: one record per changed phone, then the summary record")


def run(args: argparse.Namespace) -> int:
    from scanner.report.diff import change_dict, diff, render_summary, render_text, summarize

    try:
        if _is_verification(args.new):
            return _prediction(args)
        try:
            old, new = _side(args.old, args.history), _side(args.new, args.history)
        except ParseError as exc:
            err(str(exc))
            return EXIT_USAGE
        changes = diff(old.rows, new.rows)
        summary = summarize(old, new, changes)
        if args.json:
            for c in changes:
                json_line(change_dict(c))
            json_line(summary.as_dict())  # the last record, so `tail -n 1` is the summary
        else:
            print(render_text(changes))
        sys.stdout.flush()
        print(render_summary(summary), file=sys.stderr)
    except BrokenPipeError:
        raise  # a reader such as `head` went away: main keeps that quiet
    except Exception:  # the one boundary where anything unexpected becomes exit 70
        return internal_error()
    return EXIT_WORSE if summary.worse else EXIT_OK


def _is_verification(ref: str) -> bool:
    """NEW is a ``trustscan verify`` result (verification.json): compare prediction and outcome."""
    from scanner.report.prediction_diff import is_verification

    if ref.startswith(HISTORY_PREFIX) or not Path(ref).is_file():
        return False
    try:
        return is_verification(orjson.loads(Path(ref).read_bytes()))
    except (OSError, orjson.JSONDecodeError):
        return False


def _prediction(args: argparse.Namespace) -> int:
    """``diff report.json verification.json``: the phones whose outcome the scan did not predict
    (exit 1 when there is one)."""
    from scanner.report.prediction_diff import compare

    try:
        scan = orjson.loads(Path(args.old).read_bytes())
        verification = orjson.loads(Path(args.new).read_bytes())
        rows, summary = compare(scan, verification, scan_where=args.old, verification_where=args.new)
    except (OSError, orjson.JSONDecodeError, ParseError) as exc:
        err(f"{args.old}: {exc}" if not isinstance(exc, ParseError) else str(exc))
        return EXIT_USAGE
    shown = [r for r in rows if r.verdict in ("missed", "overcautious")]
    for r in shown:
        if args.json:
            json_line(r.as_dict())
        else:
            print(f"{r.name}  predicted {r.predicted} ({' '.join(r.predicted_codes) or 'no findings'}), "
                  f"{r.outcome}: {'; '.join(r.outcome_reasons)}")
    if args.json:
        json_line(summary.as_dict())
    sys.stdout.flush()
    print(summary.render(), file=sys.stderr)
    return EXIT_WORSE if summary.disagree else EXIT_OK


def _side(ref: str, history: str | None) -> Side:
    """One side of the diff: a history run (``history:<run>``) or a report.json file."""
    if ref.startswith(HISTORY_PREFIX):
        return _history_side(ref, ref.removeprefix(HISTORY_PREFIX), history)
    return _report_side(ref)


def _history_side(ref: str, run_ref: str, history: str | None) -> Side:
    """The run's phones from the history database; its policy and inventory from the run's
    report.json when that file is still there and still says the same."""
    from scanner.report.diff import Side, rows_from
    from scanner.store.history import History, default_path

    path = Path(history) if history else default_path()
    if not path.exists():
        raise ParseError(f"no history database at {path}")
    with History(path) as h:
        for w in h.warnings:
            err(f"warning: {w}")
        run = h.resolve(run_ref)
        if run is None:
            raise ParseError(f"no history run {run_ref!r} in {path}")
        rows = rows_from(h.devices(run))
        row = h.db.execute("SELECT verdict, profile_sha256, report_path FROM runs WHERE id = ?", (run,)).fetchone()
    verdict, profile_sha, report_path = row
    policy = inventory_sha = None
    if report_path:
        kept = _kept_report(report_path)
        if kept is not None and kept.profile_sha256 == profile_sha and kept.rows == rows:
            policy, inventory_sha = kept.policy, kept.inventory_sha256
    return Side(ref, rows, verdict, profile_sha, policy, inventory_sha)


def _kept_report(path: str) -> Side | None:
    """The report.json a history run points at, if it can still be read."""
    from scanner.report.diff import side_from_report

    try:
        return side_from_report(orjson.loads(Path(path).read_bytes()), path)
    except (OSError, orjson.JSONDecodeError, ParseError):
        return None


def _report_side(ref: str) -> Side:
    from scanner.report.diff import side_from_report

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
