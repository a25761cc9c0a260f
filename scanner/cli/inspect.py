"""``trustscan inspect``: parse, verify and explain CTL/ITL/.sgn/.enc.sgn files, like CUCM's
``show itl`` / ``show ctl``. The files are read here; ``scanner.app.inspection`` explains them."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from scanner.app.inspection import Outcome, inspect_bytes, outcome, render_text
from scanner.cli.exitcodes import EXIT_MALFORMED, EXIT_OK, EXIT_UNVERIFIED, EXIT_USAGE
from scanner.cli.output import err, json_line
from scanner.cli.timeparse import iso_time
from scanner.core.trustlist import MAX_SIGNED_FILE_SIZE
from scanner.core.verify import TrustStore
from scanner.store.trust_stores import load_trust_store

EXIT_FOR = {Outcome.VERIFIED: EXIT_OK, Outcome.UNVERIFIED: EXIT_UNVERIFIED, Outcome.MALFORMED: EXIT_MALFORMED}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "inspect",
        help="parse, verify and explain CTL/ITL/.sgn/.enc.sgn files",
        description="Parse and verify trust files, like CUCM's 'show itl' / 'show ctl'. Exit codes: 0 all "
        "parsed and verified, 1 some signature invalid or unverifiable, 2 some file unreadable or "
        "malformed, 64 usage.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    p.add_argument(
        "--trust-store",
        action="append",
        default=[],
        metavar="DIR",
        help="directory of PEM/DER certificates to look for the signer in (repeatable)",
    )
    p.add_argument("--strict", action="store_true", help="refuse what a lenient reader tolerates")
    p.add_argument(
        "--now",
        type=iso_time,
        default=None,
        metavar="ISO8601",
        help="judge certificate validity at this time instead of now (e.g. the cutover date)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        stores = _trust_stores(args.trust_store)
    except OSError as exc:  # missing, not a directory, unreadable: a usage error, no traceback
        err(str(exc))
        return EXIT_USAGE
    now = args.now or dt.datetime.now(dt.UTC)
    reports = []
    for name in args.files:
        try:
            data = _read_trust_file(Path(name))
        except OSError as exc:
            report = {"path": name, "kind": None, "error": {"offset": None, "reason": exc.strerror or str(exc)}}
            reports.append(report)
            _emit(args.json, report, unreadable=True)
            continue
        report = inspect_bytes(data, name, trust_stores=stores, now=now, strict=args.strict)
        reports.append(report)
        _emit(args.json, report)
    return EXIT_FOR[outcome(reports)]


def _trust_stores(directories: list[str]) -> list[TrustStore]:
    """The trust stores named by ``--trust-store``, in order; what a store could not read is
    printed as a warning (the rest of the store is still used)."""
    stores = []
    for directory in directories:
        store = load_trust_store(directory)
        for problem in store.errors:
            err(f"warning: trust store {store.name}: {problem}")
        stores.append(store)
    return stores


def _read_trust_file(path: Path) -> bytes:
    """The file's bytes; OSError for what cannot be read and for what is too large to be a trust file."""
    if path.stat().st_size > MAX_SIGNED_FILE_SIZE:
        raise OSError(f"larger than {MAX_SIGNED_FILE_SIZE} bytes; not a trust file")
    return path.read_bytes()


def _emit(as_json: bool, report: dict[str, Any], unreadable: bool = False) -> None:
    if as_json:
        json_line(report)
        sys.stdout.flush()
    elif unreadable:
        print(f"== {report['path']}\n   UNREADABLE: {report['error']['reason']}")
    else:
        print(render_text(report))
