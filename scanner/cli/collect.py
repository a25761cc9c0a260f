"""``trustscan collect``: argv → ``scanner.app.collect.collect`` → exit code.

Exit codes (scanner/cli/exitcodes.py): 0 collection finished (whatever the phones answered:
outcomes are evidence, not errors), 64 usage or bad input (a bad profile or inventory, an output
directory that already holds evidence), 70 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.cli import output, runner
from scanner.cli.discover import read_inventory
from scanner.cli.exitcodes import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from scanner.cli.output import Stop, internal_error, json_line
from scanner.cli.progress import collection_bar, mode_for
from scanner.cli.scan import add_dask_options, dask_options
from scanner.core.errors import ParseError
from scanner.core.findings import Code
from scanner.core.ratelimit import Limits

if TYPE_CHECKING:
    from scanner.app.collect import CollectionResult, DryRun
    from scanner.app.discover import FleetDiscovery
    from scanner.app.resume import ResumePoint
    from scanner.core.inventory import Inventory
    from scanner.core.profile import Profile

PROG = "trustscan collect"


def add_parser(subparsers: Any) -> None:
    """Add ``collect`` to an ``argparse`` subparsers object (its own parser_class is used)."""
    d = Limits()
    p = subparsers.add_parser(
        "collect",
        help="fetch CTL/ITL/config files, phone pages and TVS certificates into an evidence directory",
        description="Collect the evidence for a migration readiness scan: every phone's CTL/ITL/config "
        "files from every TFTP node of both clusters (HTTP 6970 and/or TFTP), the phones' web pages and "
        "the TVS certificates, politely (per-node limits on by default). Writes DIR/manifest.jsonl, "
        "DIR/collection.json and DIR/blobs.pack. Exit codes: 0 done, 64 usage or bad profile/inventory, "
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
    p.add_argument("--progress-json", action="store_true",
                   help="progress as JSON lines on stderr (for wrappers; see scanner/cli/progress.py)")
    add_dask_options(p)  # --dask and its TLS files (docs/sites.md)


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
    print(f"{PROG}: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        profile = _load_profile(args.profile)
        limits = _limits(profile, args)
        inventory, inv_sha = read_inventory(args.inventory, PROG)
        if args.dry_run:
            # A dry run contacts nothing, AXL included: discovered nodes are named, not counted.
            for c in profile.clusters:
                if c.axl is not None:
                    _err(f"dry run: cluster {c.name}: nodes and phones are discovered at run time from AXL at "
                         f"{c.axl.where()}; only the nodes the profile names are planned below")
            _dry_run(profile, limits, inventory, args.json)
            if args.dask:  # issue 14: the sites' phones and workers (asks the scheduler, nothing else)
                from scanner.app.sites import SitesError, dry_run_sites

                try:
                    lines = runner.run(dry_run_sites(profile, inventory, dask_options(args), limits))
                except (SitesError, ParseError) as exc:
                    raise Stop(EXIT_USAGE, str(exc)) from None
                for line in lines:
                    _err(line)
            return EXIT_OK
        out = Path(args.out)
        point = None
        if not args.resume:
            _refuse_existing_evidence(out)
        fleet = _fleet(args, profile, inventory, inv_sha, out)
        if fleet is not None:
            profile, inventory, inv_sha = fleet.profile, fleet.inventory, fleet.inventory_sha256
        if args.resume:
            point = _resume_point(out, profile, inv_sha)
    except Stop as stop:
        _err(str(stop))
        return stop.code
    try:
        result = _collect(args, profile, limits, inventory, inv_sha, out, point, fleet)
    except Stop as stop:  # --dask: refused before anything was sent
        _err(str(stop))
        return stop.code
    except FileExistsError:
        _err(f"{out} already holds evidence; choose a new directory")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted; the evidence written so far is in " + str(out))
        return EXIT_INTERRUPTED
    except Exception:  # the one boundary where anything unexpected becomes exit 70
        return internal_error(PROG)
    _print_result(result, out, args.json)
    return EXIT_OK


def _fleet(
    args: argparse.Namespace, profile: Profile, inventory: Inventory | None, inv_sha: str | None, out: Path
) -> FleetDiscovery | None:
    """With AXL in the profile: what discovery finds now, or, resuming a run that discovered, what
    it found then (``discovery.json``: the same phones and nodes)."""
    from scanner.cli.discover import fleet_for_run
    from scanner.store.evidence import DISCOVERY

    meta = None if inventory is None else {"path": args.inventory, "sha256": inv_sha, "phones": len(inventory.phones)}
    reuse = bool(args.resume) and (out / DISCOVERY).is_file()
    return fleet_for_run(profile, inventory, meta, evidence=out if reuse else None)


def _load_profile(path: str) -> Profile:
    from scanner.store.profiles import load_profile

    try:
        return load_profile(path)
    except ParseError as exc:
        raise Stop(EXIT_USAGE, f"bad profile: {exc}") from None


def _limits(profile: Profile, args: argparse.Namespace) -> Limits:
    """The profile's limits, with the ones given on the command line instead."""
    return limits_with(profile.limits, concurrency=args.concurrency, rate=args.rate, burst=args.burst,
                       workers=args.workers, web_concurrency=args.web_concurrency)


def limits_with(
    limits: Limits, *, concurrency: int | None = None, rate: float | None = None, burst: int | None = None,
    workers: int | None = None, web_concurrency: int | None = None,
) -> Limits:
    """``limits`` with the command-line options that were given (None: keep the profile's);
    ``collect`` and ``scan`` take the same ones."""
    overrides: dict[str, Any] = {
        k: v
        for k, v in (
            ("per_node_concurrency", concurrency),
            ("per_node_rate", rate),
            ("per_node_burst", burst),
            ("workers", workers),
            ("web_concurrency", web_concurrency),
        )
        if v is not None
    }
    return dataclasses.replace(limits, **overrides)


def _resume_point(out: Path, profile: Profile, inv_sha: str | None) -> ResumePoint:
    """Where the unfinished collection in ``out`` stands: what to keep and what to ask again."""
    from scanner.app.resume import NothingToResume, resume_point

    if not (out / "manifest.jsonl").is_file():
        raise Stop(EXIT_USAGE, f"{out} holds no collection to resume (no manifest.jsonl)")
    try:
        point = resume_point(out, profile, inv_sha)
    except NothingToResume as exc:
        raise Stop(EXIT_OK, str(exc)) from None
    except ParseError as exc:
        raise Stop(EXIT_USAGE, f"cannot resume: {exc}") from None
    _err(f"resuming {out}: {len(point.keep)} attempts kept, {point.redo} to ask again")
    return point


def _refuse_existing_evidence(out: Path) -> None:
    """Refuse an ``out`` that already holds evidence (a new collection would mix with it)."""
    if (out / "manifest.jsonl").exists():
        raise Stop(EXIT_USAGE, f"{out} already holds evidence; choose a new directory or finish it with --resume")


def _collect(
    args: argparse.Namespace,
    profile: Profile,
    limits: Limits,
    inventory: Inventory | None,
    inv_sha: str | None,
    out: Path,
    point: ResumePoint | None,
    fleet: FleetDiscovery | None,
) -> CollectionResult:
    from scanner.app.collect import collect

    runner.interrupt_on_sigterm()
    mode = mode_for(no_progress=args.no_progress, progress_json=args.progress_json, quiet=output.VERBOSITY == 0)
    with collection_bar(mode) as observer:
        if args.dask:  # issue 14: the sites' phones on their Dask workers (docs/sites.md)
            from scanner.app.sites import SitesError, collect_sites

            try:
                return runner.run(collect_sites(
                    profile, out, dask_options(args), inventory=inventory, inventory_path=args.inventory,
                    inventory_sha256=inv_sha, limits=limits, observer=observer, ca_bundle=args.ca_bundle,
                    resume=point, note=_err, discovery=None if fleet is None else fleet.record))
            except (SitesError, ParseError) as exc:
                raise Stop(EXIT_USAGE, str(exc)) from None
        return runner.run(
            collect(
                profile,
                out,
                inventory=inventory,
                inventory_path=args.inventory,
                inventory_sha256=inv_sha,
                limits=limits,
                observer=observer,
                ca_bundle=args.ca_bundle,
                resume=point,
                discovery=None if fleet is None else fleet.record,
            )
        )


def _print_result(result: CollectionResult, out: Path, as_json: bool) -> None:
    if as_json:
        json_line(result.summary)
    else:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(result.by_outcome.items()))
        print(
            f"collected {result.phones} phones, {result.attempts} attempts in {result.duration:.1f} s: {counts}"
        )
        if result.mismatches:
            print(f"{Code.NODE_MISMATCH}: {result.mismatches} files differ between HTTP 6970 and TFTP")
        for node in result.dead_nodes:
            print(f"node considered down at the end: {node}")
        print(f"evidence: {out}")
    for issue in result.summary.get("discovery_issues", []):
        _err(f"warning: discovery: {issue}")


def _dry_run(profile: Profile, limits: Limits, inventory: Inventory | None, as_json: bool) -> None:
    from scanner.app.collect import dry_run

    plan = dry_run(dataclasses.replace(profile, limits=limits), None if inventory is None else inventory.phones)
    if as_json:
        json_line(
            {
                "phones": plan.phones,
                "total": plan.total,
                "total_max": plan.total_max,
                "rows": [dataclasses.asdict(r) for r in plan.rows],
            }
        )
    else:
        _print_plan(plan, limits)


def _print_plan(plan: DryRun, limits: Limits) -> None:
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
