"""What every command writes the same way: messages on stderr, JSON lines on stdout, the trace
of an internal error."""

from __future__ import annotations

import sys
import traceback
from typing import Any

import orjson

from scanner.cli.exitcodes import EXIT_INTERNAL

# 0 with -q (errors only), 1 by default, 2 with -v (each phase's figures too). Set once by
# scanner.cli.main from the command line: the CLI alone touches process-wide state.
VERBOSITY = 1


def err(message: str, prog: str = "trustscan") -> None:
    """``prog: message`` on stderr: errors, always; warnings (``warning: …``) unless -q."""
    if VERBOSITY == 0 and message.startswith("warning:"):
        return
    print(f"{prog}: {message}", file=sys.stderr)


def note(message: str, prog: str = "trustscan") -> None:
    """What the run is doing or found (``resuming …``, ``discovered …``): not with -q."""
    if VERBOSITY >= 1:
        print(f"{prog}: {message}", file=sys.stderr)


def verbose(message: str, prog: str = "trustscan") -> None:
    """Detail for -v: figures of each phase."""
    if VERBOSITY >= 2:
        print(f"{prog}: {message}", file=sys.stderr)


def json_line(doc: Any) -> None:
    """``doc`` as one line of JSON on stdout (bytes, through the buffer: orjson writes UTF-8)."""
    sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE))


def internal_error(prog: str = "trustscan") -> int:
    """Report the exception being handled, with its trace, and return the exit code for it.
    Called at the one boundary of a command where anything unexpected becomes exit 70."""
    err("internal error (please report it with this trace):\n" + traceback.format_exc(), prog)
    return EXIT_INTERNAL


class Stop(Exception):
    """Ends a command before it does its work: ``str(stop)`` is the message for stderr, ``code``
    the exit code (usually 64, bad input; 0 when there is simply nothing to do)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
