"""``trustscan collect``: argv → ``scanner.app.collect.collect`` → exit code.

This is CLI code (it prints, picks the event loop, reads the files named on the command line);
``scanner/cli/main.py`` wires it in with ``add_collect_parser(sub)`` and dispatches ``collect`` to
``run_collect(args)``.

Exit codes: 0 collection finished (whatever the phones answered: outcomes are evidence, not
errors), 64 usage or bad input (a bad profile or inventory, an output directory that already
holds evidence), 70 internal error — as for ``scan``, where 2 means INCOMPLETE.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import sys
from pathlib import Path
from typing import Any

from scanner.core.errors import ParseError
from scanner.core.ratelimit import Limits

__all__ = ["add_collect_parser", "run_collect"]

EXIT_OK = 0
EXIT_USAGE = 64
EXIT_BAD_INPUT = EXIT_USAGE  # a bad profile or inventory is bad input, as in every command
EXIT_INTERNAL = 70


def add_collect_parser(subparsers: Any) -> None:
    """Add ``collect`` to an ``argparse`` subparsers object (its own parser_class is used)."""
    d = Limits()
    p = subparsers.add_parser(
        "collect",
        help="fetch CTL/ITL/config files, phone pages and TVS certificates into an evidence directory",
        description="Collect the evidence for a migration readiness scan: every phone's CTL/ITL/config "
        "files from every TFTP node of both clusters (HTTP 6970 and/or TFTP), the phones' web pages and "
        "the TVS certificates, politely (per-node limits on by default). Writes DIR/manifest.jsonl, "
        "DIR/collection.json and DIR/blobs/. Exit codes: 0 done, 64 usage or bad profile/inventory, "
        "70 internal error.",
    )
    p.add_argument("--profile", required=True, metavar="P", help="profile.toml (clusters, nodes, limits)")
    p.add_argument(
        "--inventory",
        metavar="CSV",
        help="CUCM phone export; without it, phones are discovered from the "
        "source TFTP nodes' ConfigFileCacheList.txt",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="evidence directory to create (must not hold evidence)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished collection in --out: keep its definite answers, ask the rest again",
    )
    p.add_argument("--dry-run", action="store_true", help="print the planned requests per node and exit")
    p.add_argument(
        "--concurrency",
        type=_positive_int,
        metavar="N",
        help=f"max requests in flight per TFTP node, TFTP and HTTP together (default {d.per_node_concurrency})",
    )
    p.add_argument(
        "--rate",
        type=_positive_float,
        metavar="R",
        help=f"max new requests per second per TFTP node (default {d.per_node_rate:g})",
    )
    p.add_argument(
        "--burst", type=_positive_int, metavar="N", help=f"token bucket size (default {d.per_node_burst})"
    )
    p.add_argument("--workers", type=_positive_int, metavar="N", help=f"worker tasks (default {d.workers})")
    p.add_argument(
        "--web-concurrency",
        type=_positive_int,
        metavar="N",
        help=f"phones whose web pages are fetched at once (default {d.web_concurrency})",
    )
    p.add_argument("--ca-bundle", metavar="PEM", help="CA bundle to verify HTTPS TFTP nodes with")
    p.add_argument(
        "--json", action="store_true", help="print the summary (or the dry-run plan) as JSON on stdout"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _err(message: str) -> None:
    print(f"trustscan collect: {message}", file=sys.stderr)


def run_collect(args: argparse.Namespace) -> int:
    import orjson

    from scanner.app.collect import collect, dry_run
    from scanner.core.inventory import Inventory, parse_inventory
    from scanner.store.profiles import load_profile

    try:
        profile = load_profile(args.profile)
    except ParseError as exc:
        _err(f"bad profile: {exc}")
        return EXIT_BAD_INPUT
    overrides = {
        k: v
        for k, v in (
            ("per_node_concurrency", args.concurrency),
            ("per_node_rate", args.rate),
            ("per_node_burst", args.burst),
            ("workers", args.workers),
            ("web_concurrency", args.web_concurrency),
        )
        if v is not None
    }
    limits = dataclasses.replace(profile.limits, **overrides)
    inventory: Inventory | None = None
    inv_sha: str | None = None
    if args.inventory:
        try:
            data = Path(args.inventory).read_bytes()
        except OSError as exc:
            _err(f"cannot read inventory: {exc.strerror or exc}")
            return EXIT_BAD_INPUT
        inv_sha = hashlib.sha256(data).hexdigest()
        try:
            inventory = parse_inventory(data, path=args.inventory)
        except ParseError as exc:
            _err(f"bad inventory: {exc}")
            return EXIT_BAD_INPUT
        for issue in inventory.issues:
            _err(f"warning: {issue}")
        if not inventory.phones:
            _err("the inventory has no usable phone")
            return EXIT_BAD_INPUT

    if args.dry_run:
        plan = dry_run(
            dataclasses.replace(profile, limits=limits), None if inventory is None else inventory.phones
        )
        if args.json:
            doc = {
                "phones": plan.phones,
                "total": plan.total,
                "total_max": plan.total_max,
                "rows": [dataclasses.asdict(r) for r in plan.rows],
            }
            sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE))
        else:
            _print_plan(plan, limits)
        return EXIT_OK

    out = Path(args.out)
    point = None
    if args.resume:
        from scanner.app.resume import NothingToResume, resume_point

        if not (out / "manifest.jsonl").is_file():
            _err(f"{out} holds no collection to resume (no manifest.jsonl)")
            return EXIT_USAGE
        try:
            point = resume_point(out, profile, inv_sha)
        except NothingToResume as exc:
            _err(str(exc))
            return EXIT_OK
        except ParseError as exc:
            _err(f"cannot resume: {exc}")
            return EXIT_USAGE
        _err(f"resuming {out}: {len(point.keep)} attempts kept, {point.redo} to ask again")
    elif (out / "manifest.jsonl").exists():
        _err(f"{out} already holds evidence; choose a new directory or finish it with --resume")
        return EXIT_USAGE
    show = sys.stderr.isatty() and not args.no_progress

    def start(observer: Any) -> Any:
        return collect(
            profile,
            out,
            inventory=inventory,
            inventory_path=args.inventory,
            inventory_sha256=inv_sha,
            limits=limits,
            observer=observer,
            ca_bundle=args.ca_bundle,
            resume=point,
        )

    try:
        result = _run(start, show)
    except FileExistsError:
        _err(f"{out} already holds evidence; choose a new directory")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted; the evidence written so far is in " + str(out))
        return 130
    except Exception:  # the one boundary where anything unexpected becomes exit 70
        import traceback

        _err("internal error (please report it with this trace):\n" + traceback.format_exc())
        return EXIT_INTERNAL
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(result.summary, option=orjson.OPT_APPEND_NEWLINE))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(result.by_outcome.items()))
        print(
            f"collected {result.phones} phones, {result.attempts} attempts in {result.duration:.1f} s: {counts}"
        )
        if result.mismatches:
            print(f"NODE_MISMATCH: {result.mismatches} files differ between HTTP 6970 and TFTP")
        for node in result.dead_nodes:
            print(f"node considered down at the end: {node}")
        print(f"evidence: {out}")
    for issue in result.summary.get("discovery_issues", []):
        _err(f"warning: discovery: {issue}")
    return EXIT_OK


def _run(start: Any, show: bool) -> Any:
    _install_uvloop()
    _sigterm_interrupts()
    if not show:
        return asyncio.run(start(None))
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from scanner.app.collect import Progress as Snapshot

    console = Console(stderr=True)
    with Progress(
        TextColumn("collect"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7.0f} jobs/s"),
        TextColumn("failures {task.fields[failures]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("collect", total=None, rate=0.0, failures=0)

        def observer(p: Snapshot) -> None:
            rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
            bar.update(task, total=p.total, completed=p.done, rate=rate, failures=p.failures)

        return asyncio.run(start(observer))


def _sigterm_interrupts() -> None:
    # SIGTERM (a scheduler stopping a nightly job) ends the run like Ctrl-C does: the collector
    # unwinds, writes collection.json as "interrupted" and the evidence can be resumed. Without
    # this the default action kills the process with collection.json still saying "running"
    # (which the analysis also handles, only with less to say).
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def _install_uvloop() -> None:
    # uvloop is faster for thousands of sockets; the library never picks the loop, the CLI does.
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _print_plan(plan: Any, limits: Limits) -> None:
    phones = "discovered at run time" if plan.phones is None else str(plan.phones)
    print(
        f"dry run: phones {phones}; per node: {limits.per_node_concurrency} in flight, "
        f"{limits.per_node_rate:g} requests/s (burst {limits.per_node_burst})"
    )
    print(
        f"{'cluster':<12} {'node':<16} {'transport':<9} {'address':<28} {'requests':>9} {'at most':>9} {'min time':>9}"
    )
    for r in plan.rows:
        t = f"{r.min_seconds:.1f}s" if r.min_seconds else "-"
        print(
            f"{r.cluster:<12} {r.node:<16} {r.transport:<9} {r.address:<28} {r.requests:>9} {r.max_requests:>9} {t:>9}"
        )
    print(f"total: {plan.total} requests (at most {plan.total_max} with every fallback)")
