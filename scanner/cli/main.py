"""``trustscan``: builds the parser from the commands' own and dispatches argv to one of them.

Each command is a module of this package with ``add_parser(subparsers)`` and ``run(args) -> int``;
the exit codes are in scanner/cli/exitcodes.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from scanner import __version__
from scanner.cli import collect, completion, demo, diff, discover, explain, inspect, lab, output, scan, verify
from scanner.cli.exitcodes import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from scanner.core import tlv

# In the order `trustscan --help` lists them.
COMMANDS = {"inspect": inspect, "discover": discover, "collect": collect, "scan": scan, "verify": verify, "diff": diff, "explain": explain, "lab": lab, "demo": demo,
            "completion": completion}


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
    _verbosity_options(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS.values():
        command.add_parser(sub)
    for sp in sub.choices.values():  # -q/-v before or after the command, as users type them
        _verbosity_options(sp, suppress=True)
    return p


def _verbosity_options(p: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    g = p.add_mutually_exclusive_group()
    default = argparse.SUPPRESS if suppress else None  # a subcommand's absent flag keeps the top's
    g.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="errors only: no progress, notes, warnings or summary on stderr")
    g.add_argument("-v", "--verbose", action="store_true", default=default,
                   help="also each phase's figures on stderr")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    output.VERBOSITY = 0 if args.quiet else 2 if args.verbose else 1
    run: Callable[[argparse.Namespace], int] = COMMANDS[args.command].run
    try:
        return run(args)
    except KeyboardInterrupt:
        print("trustscan: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # A reader such as `head` went away: not an error of ours; keep the exit quiet.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the dead stream for exit
        return EXIT_OK
