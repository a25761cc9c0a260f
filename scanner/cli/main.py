"""``trustscan``: argv in, library calls, text or JSON out, an exit code back.

The CLI alone prints, reads files named on the command line, picks the event loop and exits;
the library below it does none of that.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from scanner import __version__
from scanner.app.inspection import exit_code, inspect_bytes, render_text
from scanner.core import tlv
from scanner.core.trustlist import MAX_SIGNED_FILE_SIZE
from scanner.core.verify import TrustStore
from scanner.store.trust_stores import load_trust_store

EXIT_USAGE = 64
EXIT_INTERNAL = 70


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on usage errors; trustscan's contract says 64 (sysexits EX_USAGE),
    because 2 already means "malformed input"."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trustscan", description="Pre-migration audit of Cisco IP phone trust lists (CTL/ITL).")
    p.add_argument(
        "--version", action="version", version=f"trustscan {__version__} (TLV kernel: {tlv.KERNEL})"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    ins = sub.add_parser(
        "inspect",
        help="parse, verify and explain CTL/ITL/.sgn/.enc.sgn files",
        description="Parse and verify trust files, like CUCM's 'show itl' / 'show ctl'. Exit codes: 0 all "
        "parsed and verified, 1 some signature invalid or unverifiable, 2 some file unreadable or "
        "malformed, 64 usage.",
    )
    ins.add_argument("files", nargs="+", metavar="FILE")
    ins.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    ins.add_argument(
        "--trust-store",
        action="append",
        default=[],
        metavar="DIR",
        help="directory of PEM/DER certificates to look for the signer in (repeatable)",
    )
    ins.add_argument("--strict", action="store_true", help="refuse what a lenient reader tolerates")
    ins.add_argument(
        "--now",
        type=_iso_time,
        default=None,
        metavar="ISO8601",
        help="judge certificate validity at this time instead of now (e.g. the cutover date)",
    )
    from scanner.cli import scan as scan_cli
    from scanner.cli.collect import add_collect_parser

    add_collect_parser(sub)
    scan_cli.add_parsers(sub)
    from scanner.lab.cli import add_lab_parser

    add_lab_parser(sub)
    from scanner.cli import demo as demo_cli

    demo_cli.add_parser(sub)
    return p


def _iso_time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def cmd_inspect(args: argparse.Namespace) -> int:
    stores: list[TrustStore] = []
    for directory in args.trust_store:
        try:
            store = load_trust_store(directory)
        except OSError as exc:  # missing, not a directory, unreadable: a usage error, no traceback
            print(f"trustscan: {exc}", file=sys.stderr)
            return EXIT_USAGE
        for err in store.errors:
            print(f"trustscan: warning: trust store {store.name}: {err}", file=sys.stderr)
        stores.append(store)
    now = args.now or dt.datetime.now(dt.UTC)
    reports = []
    for name in args.files:
        path = Path(name)
        try:
            if path.stat().st_size > MAX_SIGNED_FILE_SIZE:
                raise OSError(f"larger than {MAX_SIGNED_FILE_SIZE} bytes; not a trust file")
            data = path.read_bytes()
        except OSError as exc:
            report = {"path": name, "kind": None, "error": {"offset": None, "reason": _os_reason(exc)}}
            reports.append(report)
            _emit(args.json, report, unreadable=True)
            continue
        report = inspect_bytes(data, name, trust_stores=stores, now=now, strict=args.strict)
        reports.append(report)
        _emit(args.json, report)
    return exit_code(reports)


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _emit(as_json: bool, report: dict[str, object], unreadable: bool = False) -> None:
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_APPEND_NEWLINE))
        sys.stdout.flush()
    elif unreadable:
        err = report["error"]
        assert isinstance(err, dict)
        print(f"== {report['path']}\n   UNREADABLE: {err['reason']}")
    else:
        print(render_text(report))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "inspect":
            return cmd_inspect(args)
        if args.command == "collect":
            from scanner.cli.collect import run_collect

            return run_collect(args)
        if args.command == "scan":
            from scanner.cli.scan import run_scan

            return run_scan(args)
        if args.command == "demo":
            from scanner.cli.demo import run_demo

            return run_demo(args)
        if args.command == "lab":
            from scanner.lab.cli import run_lab

            return run_lab(args)
        if args.command == "diff":
            from scanner.cli.scan import run_diff

            return run_diff(args)
    except KeyboardInterrupt:
        print("trustscan: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # A reader such as `head` went away: not an error of ours; keep the exit quiet.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the dead stream for exit
        return 0
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE
