"""``trustscan explain FILE...``: what a phone console log or a TVS trace says happened.

Exit codes: 0 every file explained, 64 a file that cannot be read or is in no format the command
knows (said so, with how many lines were understood), 70 internal error.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scanner.cli.exitcodes import EXIT_OK, EXIT_USAGE
from scanner.cli.output import err, internal_error

# A console log or trace excerpt is kilobytes; a whole day of TVS detailed logs some megabytes.
MAX_LOG_BYTES = 64 << 20


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "explain",
        help="say what a phone console log or a TVS trace shows happened",
        description="Read phone console logs and TVS traces (detailed level) and say in a few lines what "
        "happened: which file, which TVS, the handshake, the query and the answer, verified or failed and why. "
        "Exit codes: 0 explained, 64 unreadable or unknown format, 70 internal error.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")


def run(args: argparse.Namespace) -> int:
    from scanner.core.explain import explain

    code = EXIT_OK
    try:
        for name in args.files:
            path = Path(name)
            try:
                if path.stat().st_size > MAX_LOG_BYTES:
                    err(f"{name}: larger than {MAX_LOG_BYTES >> 20} MiB; give an excerpt")
                    code = EXIT_USAGE
                    continue
                text = path.read_bytes().decode("utf-8", "replace")
            except OSError as exc:
                err(f"{name}: cannot read: {exc.strerror or exc}")
                code = EXIT_USAGE
                continue
            ex = explain(text)
            print(ex.render(name))
            if ex.kind == "unknown":
                code = EXIT_USAGE
    except Exception:  # the one boundary where anything unexpected becomes exit 70
        return internal_error()
    return code
