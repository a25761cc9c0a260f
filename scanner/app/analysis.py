"""The analysis: an evidence directory in, verdicts and reports out, the run recorded in the history.

It reads evidence that is already on disk (``scanner.app.collect`` fetched it, now or in an
earlier run: ``trustscan scan`` collects first unless given ``--from``); it never contacts a
server. Library code: it prints nothing (``trustscan scan`` does). It streams: each phone is
decided, written to ``devices.jsonl`` and let go before the next; the reports that need the whole
fleet are written at the end from what each phone left behind: its readiness and reasons
(``Tally``) and its row as JSON (``scanner.report.rows``), not from the phones' results held.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import multiprocessing
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from scanner.app.assemble import BlobCache, Loaded, load, one_phone
from scanner.core.errors import ParseError
from scanner.core.inventory import Phone
from scanner.core.parsecache import ParseCache
from scanner.core.policy import Policy
from scanner.core.profile import Profile, snapshot_difference
from scanner.core.readiness import ClusterResult, Evaluator, PhoneResult, summarize
from scanner.core.trustcache import TrustFileCache
from scanner.report import csv_report, html_report, json_report, junit_report, remediation, sarif_report
from scanner.report.jsonl_report import DeviceStream, device_line
from scanner.report.model import build_report, device_dict, summary_dict
from scanner.report.rows import DeviceRows
from scanner.store.evidence import EvidenceReader
from scanner.store.history import History

FORMATS = ("json", "jsonl", "csv", "html")
# Written only when asked for (--format ...,sarif,junit): for CI systems.
OPTIONAL_FORMATS = ("sarif", "junit")


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """What the analysis produced: the report (as written to report.json), the files written by
    format, the warnings for the user, and the history run id when the run was recorded."""

    report: dict[str, Any]
    paths: dict[str, Path]
    warnings: tuple[str, ...]
    history_run: int | None = None


@dataclass
class AnalysisOptions:
    """What ``analyse`` reads and writes. ``on_device`` is called with each phone's report row as
    it is decided (bench/bench_soak.py collects verdicts with it)."""

    profile: Profile
    evidence: Path
    out: Path
    policy: Policy
    now: dt.datetime
    inventory: Sequence[Phone] | None = None
    formats: Sequence[str] = FORMATS
    history: Path | None = None
    run_meta: dict[str, Any] = field(default_factory=dict)
    on_device: Callable[[dict[str, Any]], None] | None = None
    # Called with (phones decided, phones in scope) after each phone: the CLI's progress.
    on_progress: Callable[[int, int], None] | None = None
    # The cache of the phones' parsed configs and pages (None: a new one of the default bounds).
    parse_cache: ParseCache | None = None
    # The second core: from this many phones on, the second half of them is decided in a worker
    # process (forked after the evidence is loaded, so nothing is loaded or verified twice) while
    # this one decides the first half. None: never (one process).
    worker_from_phones: int | None = 1000


# What the evidence must agree on with the profile it is analysed with: which nodes and TVS
# servers were asked, and how. (Trust stores, limits and phone access may differ: stores are read
# at analysis time, and re-analysing with a store added is a normal thing to do.)
_STRUCTURAL = (".tftp", ".tvs", ".tvs_allow", ".mode", ".transport")


def profile_issues(reader: EvidenceReader, opts: AnalysisOptions) -> tuple[list[str], list[str]]:
    """(every difference between the evidence's profile and this one, the structural ones)."""
    try:
        summary = reader.summary()
    except (OSError, ParseError):
        return [], []  # said by the analysis's evidence state
    snap = summary.get("profile")
    if not isinstance(snap, dict) or snap.get("sha256") == opts.profile.sha256:
        return [], []
    lines = [
        f"the evidence in {opts.evidence} was collected with another profile: {d}"
        for d in snapshot_difference(snap, opts.profile.snapshot())
    ]
    structural = [
        line for line in lines
        if any(f"{key}:" in line.rsplit("another profile: ", 1)[1].split(" ", 1)[0] for key in _STRUCTURAL)
    ]
    return lines, structural


@dataclass
class Tally:
    """What the fleet's summary needs of the phones: their readiness and their reasons, counted
    in scope order (``summarize`` lists reasons of equal count in the order they were first met)."""

    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, readiness: str, reasons: Sequence[str]) -> None:
        self.counts[readiness] += 1
        self.reasons.update(reasons)


@dataclass(frozen=True, slots=True)
class _Slice:
    """What a worker process sends back for its phones: how many it decided (their rows are in
    the rows file, read back by ``analyse``), what it found missing or damaged in the evidence,
    and its own CPU seconds."""

    decided: int
    not_collected: int
    damaged: Counter[str]
    cpu_seconds: float
    parsed: tuple[int, int]  # the worker's parse cache: (hits, misses) for its phones
    issues: list[str]  # evidence issues it met (a manifest line changed under it: PhoneIndex)


# What the forked worker decides with: set just before the fork, inherited by the child (a
# certificate-holding evaluator is not picklable, and loading the evidence twice is the cost we
# avoid). The last member is the rows file the worker writes its phones to.
_FORKED: tuple[Loaded, Evaluator, ParseCache, Path, IO[bytes]] | None = None


def _decide(
    loaded: Loaded, evaluator: Evaluator, parsed: ParseCache, phones: Sequence[Phone]
) -> Iterator[PhoneResult]:
    for phone in phones:
        yield evaluator.phone(one_phone(loaded, phone, loaded.by_phone.get(phone.name, ()), parsed))


def _decide_slice(start: int, stop: int) -> _Slice:
    """In the worker: the phones ``start:stop`` of the forked analysis."""
    cpu0 = time.process_time()
    assert _FORKED is not None
    loaded, evaluator, parsed, evidence, rows = _FORKED
    # Its own reader: no file position shared with the parent across the fork.
    loaded = dataclasses.replace(loaded, reader=BlobCache(EvidenceReader(evidence)))
    state = loaded.evidence
    not_collected, damaged, issues = state.not_collected, Counter(state.damaged), len(state.issues)
    hits, misses = parsed.hits, parsed.misses
    n = 0
    for result in _decide(loaded, evaluator, parsed, loaded.phones[start:stop]):
        rows.write(orjson.dumps([result.readiness.value, result.reasons], option=orjson.OPT_APPEND_NEWLINE))
        rows.write(device_line(device_dict(result)))
        n += 1
    rows.flush()
    return _Slice(n, state.not_collected - not_collected, state.damaged - damaged,
                  time.process_time() - cpu0, (parsed.hits - hits, parsed.misses - misses), state.issues[issues:])


def _start_worker(
    loaded: Loaded, evaluator: Evaluator, parsed: ParseCache, evidence: Path, rows: IO[bytes], start: int, stop: int
) -> tuple[concurrent.futures.ProcessPoolExecutor, concurrent.futures.Future[_Slice]] | None:
    """The phones ``start:stop`` decided in a forked worker process, written to ``rows``; None
    where fork is not there."""
    global _FORKED
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    _FORKED = (loaded, evaluator, parsed, evidence, rows)
    try:
        pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        return pool, pool.submit(_decide_slice, start, stop)
    finally:
        _FORKED = None  # the child has its copy (the pool forks on submit)


def _stop(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """End the worker now rather than let the interpreter wait for its half at exit (the pool
    has no public way to end a running task: its processes are)."""
    for proc in list(getattr(pool, "_processes", {}).values()):
        proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def analyse(opts: AnalysisOptions) -> ScanOutcome:
    """Evidence directory in, reports out."""
    started = time.time()
    cpu0 = time.process_time()
    reader = EvidenceReader(opts.evidence)
    warnings: list[str] = []
    differences, structural = profile_issues(reader, opts)
    warnings += [w for w in differences if w not in structural]  # the rest are evidence issues
    loaded = load(reader, opts.profile, opts.inventory)
    warnings += loaded.store_errors
    cache = TrustFileCache()
    # The phones' configs and pages: each distinct one parsed once.
    parsed = opts.parse_cache if opts.parse_cache is not None else ParseCache()
    evaluator = Evaluator(loaded.scan, opts.policy, opts.now, cache, parsed)
    clusters = evaluator.cluster_results()
    opts.out.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    order: list[int] = []  # the phones' row numbers, in scope order
    in_scope = len(loaded.phones)
    if opts.on_progress is not None:
        opts.on_progress(0, in_scope)
    phones = loaded.phones
    split = in_scope
    worker = None
    rows: IO[bytes] | None = None
    if opts.worker_from_phones is not None and in_scope >= max(2, opts.worker_from_phones):
        split = in_scope // 2
        # The worker's phones come back through a file, not as results held until it ends (half
        # the fleet's results at once: scan --from of 6,000 phones peaked at 89.2 MB that way,
        # 78.5 MB this way); unlinked from the start, so nothing is left behind however it ends.
        rows = tempfile.TemporaryFile(dir=opts.out, prefix=".worker-rows-")  # noqa: SIM115 - closed below
        worker = _start_worker(loaded, evaluator, parsed, opts.evidence, rows, split, in_scope)
        if worker is None:
            split = in_scope
    worker_cpu: float | None = None

    def decided(result: PhoneResult) -> None:
        tally.add(result.readiness.value, result.reasons)
        row = device_dict(result)
        order.append(stream.device(row))
        if opts.on_device is not None:
            opts.on_device(row)
        if opts.on_progress is not None:
            opts.on_progress(len(order), in_scope)

    def decided_there(meta: bytes, line: bytes) -> None:
        readiness, reasons = orjson.loads(meta)
        tally.add(readiness, reasons)
        order.append(stream.line(line))
        if opts.on_device is not None:
            row = orjson.loads(line)
            del row["type"]
            opts.on_device(row)
        if opts.on_progress is not None:
            opts.on_progress(len(order), in_scope)

    stream = DeviceStream(opts.out, write="jsonl" in opts.formats)
    try:
        for result in _decide(loaded, evaluator, parsed, phones[:split]):
            decided(result)
        if worker is not None:
            pool, future = worker
            worker = None  # from here on it is ended below, not by the handler
            try:
                part = future.result()
            except concurrent.futures.process.BrokenProcessPool:
                part = None  # the worker died (killed, out of memory): its phones are decided here
            except BaseException:
                _stop(pool)
                raise
            finally:
                pool.shutdown()
            if part is None:
                for result in _decide(loaded, evaluator, parsed, phones[split:]):
                    decided(result)
            else:
                loaded.evidence.not_collected += part.not_collected
                loaded.evidence.issues += part.issues
                for blob, n in part.damaged.items():
                    loaded.evidence.damaged[blob] += n
                worker_cpu = round(part.cpu_seconds, 3)
                parsed.hits += part.parsed[0]
                parsed.misses += part.parsed[1]
                assert rows is not None
                rows.seek(0)
                for _ in range(part.decided):
                    decided_there(rows.readline(), rows.readline())
    except BaseException:
        if worker is not None:  # interrupted (Ctrl-C, SIGTERM): the worker's half is not wanted
            _stop(worker[0])
        stream.close()
        raise
    finally:
        if rows is not None:
            rows.close()
    return write_reports(
        opts, stream, loaded=loaded, evaluator=evaluator, cache=cache, parsed=parsed, tally=tally,
        order=order, clusters=clusters, warnings=warnings, structural=structural, started=started,
        cpu0=cpu0, run_extra={"analysis_worker_cpu_seconds": worker_cpu},
    )


def write_reports(
    opts: AnalysisOptions, stream: DeviceStream, *, loaded: Loaded, evaluator: Evaluator, cache: TrustFileCache,
    parsed: ParseCache, tally: Tally, order: Sequence[int],
    clusters: tuple[ClusterResult, ClusterResult], warnings: list[str], structural: Sequence[str],
    started: float, cpu0: float, run_extra: dict[str, Any],
) -> ScanOutcome:
    """Every phone decided (``tally``, and ``order``: their row numbers in ``stream``, in scope
    order): the fleet's summary, the summary line of ``devices.jsonl`` (``stream``, closed here),
    the run, the history and the reports. The one ending of both analyses, after the collection
    and streaming."""
    paths: dict[str, Path] = {}
    with stream:
        evidence_issues = (*structural, *loaded.evidence.fleet_issues())
        summary = summarize(tally.counts, clusters, opts.policy, tally.reasons, evidence_issues=evidence_issues)
        stream.summary({"verdict": summary.verdict.value, **summary_dict(summary)})
        if "jsonl" in opts.formats:
            paths["jsonl"] = stream.path
    devices: DeviceRows = stream.rows(order)
    warnings += [f"evidence: {issue}" for issue in evidence_issues]
    finished = time.time()
    run = {
        "started": dt.datetime.fromtimestamp(opts.run_meta.pop("started", started), dt.UTC).isoformat(),
        "finished": dt.datetime.fromtimestamp(finished, dt.UTC).isoformat(),
        "judged_at": evaluator.now.isoformat(),
        "profile": str(opts.profile.path) if opts.profile.path else None,
        "profile_sha256": opts.profile.sha256,
        "evidence": str(opts.evidence),
        "evidence_state": loaded.evidence.state,
        "analysis_seconds": round(finished - started, 3),
        # This process's CPU up to the report writers (bench/bench_scan.py divides it by phones).
        "analysis_cpu_seconds": round(time.process_time() - cpu0, 3),
        "analysis_worker_cpu_seconds": None,  # the worker process's own, when there was one
        "cache": {"distinct_files": cache.misses, "reused": cache.hits,
                  "parsed": {"distinct": parsed.misses, "reused": parsed.hits}},
        **run_extra,
        **opts.run_meta,
    }
    report = build_report(summary=summary, clusters=clusters, devices=devices, policy=opts.policy, run=run)
    trend: list[tuple[str, float]] = []
    history_run = None
    if opts.history is not None:
        with History(opts.history) as h:
            warnings += h.warnings
            history_run = h.record(report, str(opts.out / "report.json"))
            trend = h.trend()
        report["run"]["history"] = {"path": str(opts.history), "run_id": history_run}
    if "json" in opts.formats:
        paths["json"] = json_report.write(report, opts.out)
    if "csv" in opts.formats:
        paths["csv"] = csv_report.write(report, opts.out)
        # The fix-it list goes with the matrix: both are for the team that fixes phones.
        paths["remediation"] = remediation.write(remediation.from_report(report), opts.out)
    if "html" in opts.formats:
        paths["html"] = html_report.write(report, opts.out, trend)
    if "sarif" in opts.formats:
        paths["sarif"] = sarif_report.write(report, opts.out)
    if "junit" in opts.formats:
        paths["junit"] = junit_report.write(report, opts.out)
    return ScanOutcome(report, paths, tuple(warnings), history_run)
