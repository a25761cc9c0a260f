"""``trustscan scan``: collect (or read archived evidence), analyse, write the reports; a summary
on stderr and an exit code out.

Exit codes (scanner/cli/exitcodes.py): 0 GO, 1 NO_GO, 2 INCOMPLETE, 64 usage or bad input,
70 internal error, 130 interrupted; the reason for a non-zero code is always printed.
``--fail-on`` moves the threshold (see :func:`fail_on`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.cli import output, runner
from scanner.cli.exitcodes import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_NO_GO, EXIT_OK, EXIT_USAGE
from scanner.cli.output import Stop, err, internal_error, json_line, note, verbose
from scanner.cli.progress import Mode, analysis_bar, collection_bar, mode_for
from scanner.cli.timeparse import iso_time
from scanner.core.errors import ParseError

if TYPE_CHECKING:
    from scanner.app.analysis import AnalysisOptions
    from scanner.app.discover import FleetDiscovery
    from scanner.app.resume import ResumePoint
    from scanner.app.streaming import AnalysisProcess
    from scanner.core.inventory import Inventory
    from scanner.core.policy import Policy
    from scanner.core.profile import Profile
    from scanner.core.ratelimit import Limits

VERDICT_EXIT = {"GO": EXIT_OK, "NO_GO": EXIT_NO_GO, "INCOMPLETE": EXIT_INCOMPLETE}
VERDICTS = ("NO_GO", "INCOMPLETE")  # the verdict thresholds of --fail-on (GO never fails)
SEVERITIES = ("BLOCKER", "WARNING", "INFO")  # finding severities, worst first


def _formats(text: str) -> list[str]:
    from scanner.app.analysis import FORMATS, OPTIONAL_FORMATS

    known = FORMATS + OPTIONAL_FORMATS
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in known]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"formats are a comma-separated subset of {','.join(known)}")
    return items


# --fail-on ------------------------------------------------------------------------------------


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
        code, why = EXIT_OK, "verdict INCOMPLETE does not fail --fail-on NO_GO"
    elif code:
        why = f"verdict {verdict}"
    if gate.severity is not None and code == EXIT_OK:
        n = findings_at_least(report, gate.severity)
        if n:
            code, why = EXIT_NO_GO, (f"{n} finding{'s' if n != 1 else ''} of severity {gate.severity} or worse "
                                     f"(--fail-on {gate})")
    return code, why


# The command ----------------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "scan",
        help="collect, analyse and report migration readiness",
        description="Collect evidence from both clusters and the phones (or read archived evidence with "
        "--from), decide per phone READY/NOT_READY/UNKNOWN and GO/NO_GO/INCOMPLETE, write report.json, "
        "devices.jsonl, matrix.csv and report.html. Exit codes: 0 GO, 1 NO_GO, 2 INCOMPLETE, 64 usage or bad "
        "input, 70 internal error; --fail-on moves the threshold.",
    )
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
    p.add_argument("--now", type=iso_time, default=None, metavar="ISO8601", help="judge validity at this time")
    p.add_argument("--history", metavar="PATH", help="history database (SQLite; default: ~/.local/state/trustscan)")
    p.add_argument("--no-history", action="store_true", help="do not record this scan")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--progress-json", action="store_true",
                   help="progress as JSON lines on stderr (for wrappers; see scanner/cli/progress.py)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    # The collector's politeness limits, as ``trustscan collect`` takes them (the profile's
    # [limits] otherwise): lifting them shows the scanner's own ceiling (bench/bench_scan.py).
    from scanner.cli.collect import _positive_float, _positive_int

    p.add_argument("--concurrency", type=_positive_int, metavar="N",
                   help="max requests in flight per TFTP node (default: the profile's limits)")
    p.add_argument("--rate", type=_positive_float, metavar="R",
                   help="max new requests per second per TFTP node (default: the profile's limits)")
    p.add_argument("--burst", type=_positive_int, metavar="N", help="token bucket size (default: the profile's limits)")
    p.add_argument("--web-concurrency", type=_positive_int, metavar="N",
                   help="phones whose web pages are fetched at once (default: the profile's limits)")
    p.add_argument("--no-streaming", action="store_true",
                   help="decide the phones only after the collection (by default a second process decides "
                   "each phone as its evidence completes; see docs/performance.md)")
    p.add_argument("--fail-on", type=fail_on, default=None, metavar="LEVEL",
                   help="when to exit non-zero: NO_GO (only NO_GO fails, exit 1), INCOMPLETE (the default: "
                   "NO_GO exits 1, INCOMPLETE 2), and/or a finding severity BLOCKER, WARNING or INFO (exit 1 "
                   "also when the verdict is GO but some finding is that severe or worse), e.g. INCOMPLETE,WARNING")
    add_dask_options(p)


# --dask (issue 14, docs/sites.md): the options and their DaskOptions; `collect` takes them too.
def add_dask_options(p: Any) -> None:
    p.add_argument("--dask", metavar="ADDR", default=None,
                   help="collect each [sites.NAME]'s phones on that site's Dask workers through the scheduler "
                   "at ADDR (tcp://HOST:8786 or tls://HOST:8786; docs/sites.md)")
    p.add_argument("--dask-tls-ca", metavar="PEM", default=None, help="CA that signed the Dask cluster's certificates")
    p.add_argument("--dask-tls-cert", metavar="PEM", default=None, help="this client's certificate (tls:// only)")
    p.add_argument("--dask-tls-key", metavar="PEM", default=None, help="this client's private key (tls:// only)")
    p.add_argument("--dask-site-grace", metavar="S", type=float, default=30.0,
                   help="seconds a site with phones may be without a worker before its phones are given up as "
                   "UNKNOWN (SITE_UNAVAILABLE; --resume asks them again); default 30")
    p.add_argument("--dask-connect-timeout", metavar="S", type=float, default=10.0,
                   help="seconds to reach the scheduler before giving up (exit 64, nothing sent); default 10")


def dask_options(args: Any) -> Any:
    """``scanner.app.sites.DaskOptions`` from the command line, or None without ``--dask``."""
    if not getattr(args, "dask", None):
        return None
    from scanner.app.sites import DaskOptions

    return DaskOptions(args.dask, args.dask_tls_ca, args.dask_tls_cert, args.dask_tls_key,
                       connect_timeout=args.dask_connect_timeout, site_grace=args.dask_site_grace)


@dataclass(frozen=True, slots=True)
class ScanRequest:
    """What ``trustscan scan`` was asked to do: its options, by name (``demo`` builds one too)."""

    profile: str
    out: str | None
    inventory: str | None = None
    evidence: str | None = None  # --from: analyse this evidence directory instead of collecting
    resume: str | None = None  # finish the scan whose --out was this directory
    formats: list[str] | None = None  # None: the default formats
    policy: str | None = None
    now: dt.datetime | None = None
    history: str | None = None
    no_history: bool = False
    no_progress: bool = False
    progress_json: bool = False
    json: bool = False
    fail_on: FailOn | None = None
    # Overrides of the profile's [limits] (None: the profile's).
    concurrency: int | None = None
    rate: float | None = None
    burst: int | None = None
    web_concurrency: int | None = None
    dask: Any = None  # scanner.app.sites.DaskOptions: the sites' phones on Dask workers (--dask)
    no_streaming: bool = False  # decide the phones after the collection, not beside it


def run(args: argparse.Namespace) -> int:
    return scan(
        ScanRequest(
            profile=args.profile, out=args.out, inventory=args.inventory, evidence=args.evidence,
            resume=args.resume, formats=args.format, policy=args.policy, now=args.now, history=args.history,
            no_history=args.no_history, no_progress=args.no_progress, progress_json=args.progress_json,
            json=args.json, fail_on=args.fail_on, concurrency=args.concurrency, rate=args.rate,
            burst=args.burst, web_concurrency=args.web_concurrency, dask=dask_options(args),
            no_streaming=args.no_streaming,
        )
    )


@dataclass(frozen=True, slots=True)
class _Inputs:
    """The files named on the command line, read and checked."""

    profile: Profile
    policy: Policy
    inventory: Inventory | None
    inventory_sha256: str | None
    run_meta: dict[str, Any] = field(default_factory=dict)  # what the report says about the inputs
    fleet: FleetDiscovery | None = None  # what AXL/RisPort70 found, when the profile has AXL


@dataclass(frozen=True, slots=True)
class _Plan:
    """Where the evidence and the reports go, and whether (and from where) to collect."""

    out: Path
    evidence: Path
    collect: bool
    resume: ResumePoint | None = None


def scan(req: ScanRequest) -> int:
    started = time.time()  # the run's start in the report: discovery and collection included
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
        streaming = None
        if plan.collect:
            inputs.run_meta.setdefault("started", started)
            streaming = _start_streaming(req, inputs, plan)
            try:
                _collect(req, inputs, plan, streaming)
            except BaseException:
                if streaming is not None:
                    streaming.stop()
                raise
        return _analyse_and_report(req, inputs, plan, streaming)
    except Stop as stop:  # --dask: the scheduler, a worker or the sites refused before anything was sent
        err(str(stop))
        return stop.code
    except KeyboardInterrupt:
        err(f"interrupted; evidence so far is in {plan.evidence}: finish it with --resume {plan.out}")
        return EXIT_INTERRUPTED
    except Exception:  # the one boundary where anything unexpected becomes exit 70
        return internal_error()


def _read_inputs(req: ScanRequest) -> _Inputs:
    """Profile, policy and inventory; ParseError (or FileNotFoundError) for what is wrong with them."""
    from scanner.store.profiles import load_profile

    profile = load_profile(req.profile)
    policy = _load_policy(req.policy)
    if not req.inventory:
        return _Inputs(profile, policy, None, None)
    inventory, sha = _read_inventory(req.inventory)
    # What the reviewer needs to see in the report: which rows were left out, and why.
    meta = {"inventory": req.inventory, "inventory_sha256": sha,
            "inventory_issues": [str(issue) for issue in inventory.issues]}
    return _Inputs(profile, policy, inventory, sha, meta)


def _discovered(req: ScanRequest, inputs: _Inputs) -> _Inputs:
    """With AXL in the profile: the profile completed with the discovered nodes and the
    discovered phones as the inventory. Re-analysis (``--from``) and ``--resume`` read them back
    from the evidence's discovery record; a new scan asks the clusters (after the output
    directory passed its checks, so that a wrong ``--out`` contacts nothing)."""
    import dataclasses

    from scanner.app.discover import uses_discovery
    from scanner.cli.discover import fleet_for_run, summary
    from scanner.store.evidence import DISCOVERY

    if not uses_discovery(inputs.profile):
        return inputs
    _, evidence = _directories(req)
    reuse = bool(req.evidence) or bool(req.resume and (evidence / DISCOVERY).is_file())
    if not reuse and (evidence / "manifest.jsonl").exists():
        return inputs  # _plan refuses this directory; nothing is asked
    csv_meta = None if inputs.inventory is None else {
        "path": req.inventory, "sha256": inputs.inventory_sha256, "phones": len(inputs.inventory.phones)}
    fleet = fleet_for_run(inputs.profile, inputs.inventory, csv_meta, evidence=evidence if reuse else None)
    assert fleet is not None
    meta = dict(inputs.run_meta) | {"discovery": summary(fleet)}
    return dataclasses.replace(inputs, profile=fleet.profile, inventory=fleet.inventory,
                               inventory_sha256=fleet.inventory_sha256, run_meta=meta, fleet=fleet)


def _load_policy(path: str | None) -> Policy:
    from scanner.core.policy import default_policy, parse_policy

    if path is None:
        return default_policy()
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read policy: {exc.strerror or exc}", path=path) from None
    return parse_policy(data, path=path)


def _read_inventory(path: str) -> tuple[Inventory, str]:
    """The inventory and the SHA-256 of its bytes; the rows it refused are printed as warnings."""
    from scanner.core.inventory import parse_inventory

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read inventory: {exc.strerror or exc}", path=path) from None
    sha = hashlib.sha256(raw).hexdigest()
    inventory = parse_inventory(raw, path=path)
    for issue in inventory.issues:
        err(f"warning: inventory: {issue}")
    if not inventory.phones:
        raise ParseError("the inventory has no usable phone (every row was refused)", path=path)
    return inventory, sha


def _plan(req: ScanRequest, inputs: _Inputs) -> _Plan:
    """Check the output and evidence directories against what was asked; Stop for a bad choice."""
    out, evidence = _directories(req)
    if req.resume:
        point = _resume_point(evidence, out, inputs)
        return _Plan(out, evidence, collect=point is not None, resume=point)
    if req.evidence:
        if not (evidence / "manifest.jsonl").is_file():
            hint = ""
            if (evidence / "evidence" / "manifest.jsonl").is_file():
                hint = f"; it is a scan's output directory: give --from {evidence / 'evidence'}"
            raise Stop(EXIT_USAGE, f"{evidence} is not an evidence directory (no manifest.jsonl){hint}")
        return _Plan(out, evidence, collect=False)
    if (evidence / "manifest.jsonl").exists():
        raise Stop(EXIT_USAGE, f"{evidence} already holds evidence: choose a new --out, finish it with "
                   f"--resume {out}, or analyse it with --from {evidence}")
    return _Plan(out, evidence, collect=True)


def _directories(req: ScanRequest) -> tuple[Path, Path]:
    """The reports' directory and the evidence directory."""
    resume = req.resume
    if resume and (req.evidence or (req.out and Path(req.out) != Path(resume))):
        raise Stop(EXIT_USAGE, "--resume DIR continues the scan in DIR: give neither --from nor another --out")
    out_dir = resume or req.out
    if not out_dir:
        raise Stop(EXIT_USAGE, "--out DIR is required (or --resume DIR to finish an earlier scan)")
    out = Path(out_dir)
    evidence = Path(req.evidence) if req.evidence else out / "evidence"
    if resume and not (evidence / "manifest.jsonl").is_file() and (out / "manifest.jsonl").is_file():
        evidence, out = out, out.parent  # pointed at the evidence directory itself
    return out, evidence


def _resume_point(evidence: Path, out: Path, inputs: _Inputs) -> ResumePoint | None:
    """What the interrupted scan in ``out`` still has to ask; None when nothing (then its reports
    are only rewritten)."""
    from scanner.app.resume import NothingToResume, resume_point

    if not (evidence / "manifest.jsonl").is_file():
        raise Stop(EXIT_USAGE, f"{out} holds no scan to resume (no {evidence / 'manifest.jsonl'})")
    try:
        point = resume_point(evidence, inputs.profile, inputs.inventory_sha256)
    except NothingToResume as exc:
        err(str(exc))
        return None
    except ParseError as exc:
        raise Stop(EXIT_USAGE, f"cannot resume: {exc}") from None
    note(f"resuming {evidence}: {len(point.keep)} attempts kept, {point.redo} to ask again")
    return point


def _start_streaming(req: ScanRequest, inputs: _Inputs, plan: _Plan) -> AnalysisProcess | None:
    """The analysis process that decides phones while they are collected (``scanner.app.streaming``);
    None where the analysis runs after the collection: ``--no-streaming``, ``--resume`` (the
    phones' evidence is half old, half new), ``--dask`` (the sites' evidence arrives per shard)."""
    if req.no_streaming or plan.resume is not None or req.dask is not None:
        return None
    from scanner.app.streaming import AnalysisProcess

    return AnalysisProcess.start(_analysis_options(req, inputs, plan))


def _collect(req: ScanRequest, inputs: _Inputs, plan: _Plan, listener: AnalysisProcess | None = None) -> None:
    from scanner.app.collect import collect

    runner.interrupt_on_sigterm()
    cpu0 = time.process_time()
    with collection_bar(_progress_mode(req)) as observer:
        if req.dask is not None:  # issue 14: the sites' phones on their Dask workers (docs/sites.md)
            from scanner.app.sites import SitesError, collect_sites

            try:
                result = runner.run(collect_sites(
                    inputs.profile, plan.evidence, req.dask, inventory=inputs.inventory,
                    inventory_path=req.inventory, inventory_sha256=inputs.inventory_sha256,
                    limits=_limits(req, inputs.profile), observer=observer, resume=plan.resume, note=err,
                    discovery=None if inputs.fleet is None else inputs.fleet.record))
            except (SitesError, ParseError) as exc:  # nothing was sent: said, exit 64
                raise Stop(EXIT_USAGE, str(exc)) from None
        else:
            result = runner.run(
                collect(inputs.profile, plan.evidence, inventory=inputs.inventory, inventory_path=req.inventory,
                        inventory_sha256=inputs.inventory_sha256, limits=_limits(req, inputs.profile),
                        observer=observer, resume=plan.resume,
                        discovery=None if inputs.fleet is None else inputs.fleet.record, listener=listener)
            )
    # This process's CPU in the collection (the report's run section; bench/bench_scan.py).
    inputs.run_meta["collection_cpu_seconds"] = round(time.process_time() - cpu0, 3)
    for issue in result.summary.get("discovery_issues", []):
        err(f"warning: discovery: {issue}")
    if result.dead_nodes:
        err(f"warning: nodes that stopped answering: {', '.join(result.dead_nodes)}")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.by_outcome.items()))
    verbose(f"collected {result.phones} phones, {result.attempts} attempts in {result.duration:.1f} s: {counts}")


def _limits(req: ScanRequest, profile: Profile) -> Limits:
    """The profile's limits, with the ones given on the command line instead."""
    from scanner.cli.collect import limits_with

    return limits_with(profile.limits, concurrency=req.concurrency, rate=req.rate, burst=req.burst,
                       web_concurrency=req.web_concurrency)


def _progress_mode(req: ScanRequest) -> Mode:
    return mode_for(no_progress=req.no_progress, progress_json=req.progress_json, quiet=output.VERBOSITY == 0)


def _analysis_options(req: ScanRequest, inputs: _Inputs, plan: _Plan) -> AnalysisOptions:
    from scanner.app.analysis import FORMATS, AnalysisOptions

    return AnalysisOptions(
        profile=inputs.profile, evidence=plan.evidence, out=plan.out, policy=inputs.policy,
        now=req.now or dt.datetime.now(dt.UTC), inventory=None if inputs.inventory is None else inputs.inventory.phones,
        formats=req.formats or FORMATS, history=_history_path(req), run_meta=dict(inputs.run_meta),
    )


def _analyse_and_report(
    req: ScanRequest, inputs: _Inputs, plan: _Plan, streaming: AnalysisProcess | None = None
) -> int:
    from scanner.app.analysis import analyse

    outcome = None
    if streaming is not None:
        got = streaming.finish(dict(inputs.run_meta))
        if isinstance(got, str):
            err(f"warning: the analysis beside the collection failed; analysing the evidence now: {got}")
        else:
            outcome = got
    if outcome is None:
        opts = _analysis_options(req, inputs, plan)
        note(f"analysing {plan.evidence}")
        with analysis_bar(_progress_mode(req)) as counter:
            opts.on_progress = counter
            outcome = analyse(opts)
    verbose(f"analysed {outcome.report['summary']['total']} phones in {outcome.report['run']['analysis_seconds']:.1f} s")
    for w in outcome.warnings:
        err(f"warning: {w}")
    report = outcome.report
    _print_summary(report, outcome.paths)
    if output.VERBOSITY >= 2:
        _print_node_statistics(plan.evidence)
    code, why = exit_code(report, req.fail_on)
    if "sarif" in outcome.paths:  # again, now with the exit code the analysis could not know
        from scanner.report import sarif_report

        sarif_report.write(report, plan.out, exit_code=code)
    if req.json:
        json_line({"verdict": report["verdict"], "summary": report["summary"],
                   "reports": {k: str(v) for k, v in outcome.paths.items()}, "exit_code": code,
                   "cpu_seconds": {k: report["run"].get(f"{k}_cpu_seconds")
                                   for k in ("collection", "analysis", "analysis_worker")},
                   "peak_rss_mb": _peak_rss_mb()})
    if why is not None:
        err(f"exit {code}: {why}")
    return code


def _peak_rss_mb() -> dict[str, float] | None:
    """This process's peak RSS, and the largest of the processes it started and has ended (the
    streaming analysis, an analysis worker): bench/bench_scan.py shows which one holds the memory."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    # ru_maxrss is in KiB on Linux (bytes on macOS, where this figure is only a rough one). For
    # this process, Linux's VmHWM where there is one: ru_maxrss survives fork and exec, so a scan
    # started by a large process (bench/bench_scan.py after comparing 100,000 phones) reported
    # that process's peak as its own (1.4 GB for a scan that never held 300 MB).
    own = _high_water_kib()
    if own is None:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"scan": round(own / 1024, 1),
            "children": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def _high_water_kib() -> float | None:
    """This process's peak resident set since it started its program (Linux), in KiB."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1])
    return None


def _history_path(req: ScanRequest) -> Path | None:
    from scanner.store.history import default_path

    if req.no_history:
        return None
    return Path(req.history) if req.history else default_path()


def _print_node_statistics(evidence: Path) -> None:
    """-v: per node and transport, the attempts by outcome and the time they took (from the
    manifest, so it says the same for a collection and for archived evidence)."""
    from collections import Counter, defaultdict

    from scanner.store.evidence import EvidenceReader

    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    seconds: dict[str, float] = defaultdict(float)
    for a in EvidenceReader(evidence).attempts():
        if a.transport == "web":
            where = "phones/web"
        else:
            where = f"{a.cluster or '-'}/{a.node or a.address or '-'}/{a.transport}"
        outcomes[where][a.outcome.value] += 1
        seconds[where] += a.duration or 0.0
    lines = ["  Per node (attempts by outcome, summed duration):"]
    for where in sorted(outcomes):
        c = outcomes[where]
        lines.append(f"    {where:<40} {sum(c.values()):>7}  " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
                     + f"  ({seconds[where]:.1f} s)")
    print("\n".join(lines), file=sys.stderr)


def _print_summary(report: dict[str, Any], paths: dict[str, Path]) -> None:
    if output.VERBOSITY == 0:  # -q: only the verdict line
        print(f"Verdict: {report['verdict']}  ({report['summary']['why']})", file=sys.stderr)
        return
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
    for kind in ("html", "json", "jsonl", "csv", "remediation", "sarif", "junit"):
        if kind in paths:
            lines.append(f"  {kind:>5}: {paths[kind]}")
    print("\n".join(lines), file=sys.stderr)
