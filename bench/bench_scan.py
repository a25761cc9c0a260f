"""Benchmark: the whole scan against served labs, checked phone by phone against the answer key.

For each size: ``trustscan lab build`` a ``mixed`` lab, ``trustscan lab serve`` it in a second
process (which spreads its phones over worker processes when one process's open-files limit
cannot hold them), run the whole ``trustscan scan`` as a third process, and compare every phone of
its ``report.json`` with ``answer-key.json`` (``scanner.lab.answer``, the accuracy test's
comparison). Per size it prints the phones whose readiness or codes differ (must be 0, the first
few listed), the other differences (verdict, cluster codes), and the scan's wall time, phones/s,
CPU seconds (user + system of the scan process, from ``os.wait4``) and peak RSS; the lab build's
time and the server's CPU seconds beside them.

    python bench/bench_scan.py [--sizes 2000 20000 100000] [--work DIR] [--labs DIR] [--base 33]
                               [--keep] [--json]
                               [--limits default lifted after baseline] [--baseline DIR]

``--json`` prints one JSON object as the last line. Labs and scans go to a temporary directory
under ``--work`` (default /tmp: a 100,000-phone lab is ~3 GB) that is removed at the end unless
``--keep``. Exit code 0 when every size matched its key, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from scanner.lab.answer import compare_report, phone_differences

ROOT = Path(__file__).resolve().parents[1]
SHOWN = 5  # differences listed per size
READY_TIMEOUT = 600.0  # a 100,000-phone lab binds in well under a minute; a busy machine is slower


def log(msg: str) -> None:
    print(f"[bench_scan] {msg}", file=sys.stderr, flush=True)


def build(lab: Path, phones: int, base: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "scanner", "lab", "build", "--out", str(lab), "--phones", str(phones),
         "--scenario", "mixed", "--base", str(base), "--quiet"],
        check=True, cwd=ROOT,
    )
    return time.perf_counter() - started


class Served:
    """``trustscan lab serve LAB`` in its own process group until the block ends. Its output is
    drained by a thread after ``ready`` so that nothing it prints later can block it."""

    def __init__(self, lab: Path, log_path: Path) -> None:
        self.lab = lab
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.startup_s = 0.0
        self.peak_fds = 0

    def __enter__(self) -> Served:
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scanner", "lab", "serve", str(self.lab)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("ready"):
                self.startup_s = time.perf_counter() - started
                threading.Thread(target=self._drain, daemon=True).start()
                return self
            if time.monotonic() > deadline:
                break
        self.__exit__()
        raise RuntimeError(f"lab serve {self.lab} did not get ready:\n{''.join(self.lines[-20:])}")

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def sample_fds(self, stop: threading.Event) -> None:
        """Record, once a second until ``stop``, the most descriptors any lab serve process held
        (a check of the reserves in scanner.lab.serve: the limit here is 20,000 per process)."""
        assert self.proc is not None
        while not stop.wait(1.0):
            for pid in [self.proc.pid, *_children(self.proc.pid)]:
                with contextlib.suppress(OSError):
                    self.peak_fds = max(self.peak_fds, len(os.listdir(f"/proc/{pid}/fd")))

    def cpu(self) -> float:
        """CPU seconds used so far by lab serve and its worker processes (Linux /proc)."""
        assert self.proc is not None
        total = 0.0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            total += _proc_cpu(pid)
        return total

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_path.write_text("".join(self.lines))


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The rate limits lifted: far above what the lab's loopback servers can answer, so that what is
# left is the scanner's own ceiling (web concurrency too: the phones' pages are the other queue).
LIFTED = ["--rate", "100000", "--burst", "4096", "--concurrency", "256", "--web-concurrency", "256"]
# "after": the default limits with the analysis after the collection (--no-streaming), for the
# side-by-side figure of what deciding phones while collecting buys.
# "baseline": the default limits, scanned by the checkout given with --baseline (another revision,
# e.g. `git worktree add /tmp/base HEAD~1`, with its compiled kernel), side by side in one run.
VARIANTS = {"default": [], "lifted": LIFTED, "after": ["--no-streaming"], "baseline": []}
BASELINE: Path | None = None


def scan(lab: Path, out: Path, extra: list[str] | None = None, tree: Path = ROOT) -> dict[str, Any]:
    """The whole ``trustscan scan`` as a child process: wall time, and its own CPU and peak RSS
    from ``os.wait4`` (the rusage of that one child and of the children it waited for, e.g. an
    analysis worker process), and the per-phase CPU from its ``--json`` line."""
    # The hand-written profile and the CSV: what this bench measures is collection and analysis
    # against their politeness floor; discovery (RisPort70 at 15 requests a minute) has its own
    # figures in bench/bench_discover.py.
    argv = [sys.executable, "-m", "scanner", "scan", "--profile", str(lab / "profile-manual.toml"),
            "--inventory", str(lab / "inventory.csv"), "--out", str(out),
            "--no-progress", "--no-history", "--json", *(extra or [])]
    out.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.stdout", "wb") as so, open(out.parent / f"{out.name}.stderr", "wb") as se:
        started = time.perf_counter()
        # `python -m scanner` imports the scanner of its working directory: this checkout's, or
        # the baseline's.
        proc = subprocess.Popen(argv, stdout=so, stderr=se, cwd=tree)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # interrupted (SIGTERM, Ctrl-C): the scan goes too
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen from waiting again
    last = (out.parent / f"{out.name}.stdout").read_bytes().strip().rsplit(b"\n", 1)[-1]
    try:
        line = orjson.loads(last)
    except orjson.JSONDecodeError:
        line = {}  # a scan from before the phases were recorded, or one that failed
    # The scan's own process (its VmHWM, from its --json line) and the largest process it ended
    # (the streaming analysis). Not wait4's ru_maxrss where the line has them: that survives fork
    # and exec, so it starts at this process's own peak, which after comparing a large fleet with
    # its answer key is far above the scan's (1.4 GB reported for a scan under 300 MB).
    by = line.get("peak_rss_mb")
    peak = max(by.values()) if isinstance(by, dict) and by and None not in by.values() else usage.ru_maxrss / 1024
    return {
        "phase_cpu_s": line.get("cpu_seconds") or {},
        "rss_by_process_mb": by,
        "exit_code": proc.returncode,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        # MB: the largest one process (the scan, or its streaming analysis process).
        "peak_rss_mb": peak,
        "stderr_tail": (out.parent / f"{out.name}.stderr").read_text(errors="replace")[-2000:],
    }


def politeness_floor(evidence: Path, rate: float, burst: int) -> tuple[float, int]:
    """The least wall time the per-node token bucket allows: the busiest TFTP node's requests
    (the attempts the manifest records at it, TFTP and HTTP 6970 together: the bucket counts
    both), less the burst it may send at once, at ``rate`` per second. With the defaults (500/s,
    three requests per phone on each source node) that is about N/167 s for N phones. Returns
    (seconds, the busiest node's requests)."""
    from collections import Counter

    from scanner.store.evidence import EvidenceReader

    per_node: Counter[tuple[str, str]] = Counter(
        (a.cluster or "", a.node) for a in EvidenceReader(evidence).attempts()
        if a.node is not None and a.transport in ("tftp", "http")
    )
    busiest = max(per_node.values(), default=0)
    return max(0.0, (busiest - burst) / rate), busiest


def run_size(work: Path, phones: int, base: int, labs: Path | None, variants: list[str]) -> list[dict[str, Any]]:
    lab = (labs or work) / f"lab-{phones}"
    build_s = None
    if labs is not None and (lab / "lab.json").is_file():
        log(f"{phones} phones: reusing the lab in {lab}")
    else:
        log(f"{phones} phones: building the lab in {lab}")
        build_s = round(build(lab, phones, base), 1)
        log(f"{phones} phones: built in {build_s} s; serving")
    results = []
    with Served(lab, work / f"serve-{phones}.log") as server:
        serve_lines = [ln.rstrip() for ln in server.lines if ln.startswith(("WEB", "ready"))]
        for variant in variants:
            log(f"{phones} phones: {serve_lines[-1]}; scanning ({variant} limits)")
            r = _scan_variant(work, lab, phones, server, variant)
            r.update(build_s=build_s, serve_startup_s=round(server.startup_s, 1),
                     serve_processes=sum(1 for ln in serve_lines if ln.startswith("WEB")))
            show(r)
            results.append(r)
    return results


def _scan_variant(work: Path, lab: Path, phones: int, server: Served, variant: str) -> dict[str, Any]:
    out = work / f"scan-{phones}-{variant}"
    cpu0 = server.cpu()
    done = threading.Event()
    sampler = threading.Thread(target=server.sample_fds, args=(done,), daemon=True)
    sampler.start()
    try:
        s = scan(lab, out, VARIANTS[variant], BASELINE if variant == "baseline" and BASELINE else ROOT)
    finally:
        done.set()
        sampler.join()
    serve_cpu = server.cpu() - cpu0
    phase = s["phase_cpu_s"]

    def per_phone_ms(*keys: str) -> float | None:
        vals = [float(v) for k in keys if (v := phase.get(k)) is not None]
        if phase.get(keys[0]) is None:
            return None
        return round(1000 * sum(vals) / phones, 2)

    result: dict[str, Any] = {
        "phones": phones,
        "limits": variant,
        "scan_exit_code": s["exit_code"],
        "wall_s": round(s["wall_s"], 1),
        "phones_per_s": round(phones / s["wall_s"], 1),
        "cpu_s": round(s["cpu_s"], 1),
        "peak_rss_mb": round(s["peak_rss_mb"], 1),
        "rss_by_process_mb": s["rss_by_process_mb"],
        "serve_cpu_s": round(serve_cpu, 1),
        "serve_peak_fds": server.peak_fds,
        # CPU per phone by phase: the scan's own process (process_time around each phase), and for
        # the analysis also a worker process's own CPU when there is one.
        "collection_cpu_ms_per_phone": per_phone_ms("collection"),
        "analysis_cpu_ms_per_phone": per_phone_ms("analysis", "analysis_worker"),
    }
    evidence = out / "evidence"
    if variant in ("default", "after", "baseline") and (evidence / "manifest.jsonl").is_file():
        from scanner.store.evidence import EvidenceReader

        # The limits the collection ran with (the profile's, which may differ from Limits()).
        lim = EvidenceReader(evidence).summary().get("limits") or {}
        floor, busiest = politeness_floor(evidence, float(lim.get("per_node_rate", 500.0)),
                                          int(lim.get("per_node_burst", 64)))
        result.update(politeness_floor_s=round(floor, 1), busiest_node_requests=busiest,
                      wall_over_floor=round(s["wall_s"] / floor, 2) if floor else None)
    report_path = out / "report.json"
    if not report_path.is_file():
        result.update(differences=None, error=f"no report.json (exit {s['exit_code']}): {s['stderr_tail']}")
        return result
    key = orjson.loads((lab / "answer-key.json").read_bytes())
    report = orjson.loads(report_path.read_bytes())
    # The streaming analysis (None after the collection): phones decided while collecting, and
    # the analysis's wall time after the collection ended.
    result["streamed"] = report["run"].get("streamed")
    phone_diffs = phone_differences(key, report)
    others = [p for p in compare_report(key, report) if p not in set(phone_diffs)]
    result.update(
        verdict=report["verdict"],
        key_verdict=key["verdict"],
        differences=len(phone_diffs),
        first_differences=phone_diffs[:SHOWN],
        other_differences=others,
    )
    return result


def _by_process(r: dict[str, Any]) -> str:
    by = r.get("rss_by_process_mb")
    return f" (scan process {by['scan']} MB, analysis process {by['children']} MB)" if by else ""


def show(r: dict[str, Any]) -> None:
    built = "reused" if r.get("build_s") is None else f"{r['build_s']} s"
    print(f"== {r['phones']} phones, {r['limits']} limits (lab build {built}, lab serve ready in "
          f"{r.get('serve_startup_s')} s over {r.get('serve_processes')} process(es))", flush=True)
    if r.get("differences") is None:
        print(f"   ERROR: {r.get('error')}")
        return
    print(f"   phones differing from the answer key (readiness, codes): {r['differences']}")
    for line in r["first_differences"]:
        print(f"     {line}")
    for line in r["other_differences"]:
        print(f"   other difference: {line}")
    print(f"   verdict {r['verdict']} (key {r['key_verdict']}), scan exit code {r['scan_exit_code']}")
    print(f"   wall {r['wall_s']} s, {r['phones_per_s']} phones/s, CPU {r['cpu_s']} s, "
          f"peak RSS {r['peak_rss_mb']} MB{_by_process(r)}; lab serve CPU {r['serve_cpu_s']} s, "
          f"at most {r['serve_peak_fds']} descriptors in one of its processes")
    floor = r.get("politeness_floor_s")
    if floor is not None:
        print(f"   politeness floor {floor} s (busiest node {r['busiest_node_requests']} requests at the default "
              f"rate and burst): wall = {r['wall_over_floor']}x the floor")
    streamed = r.get("streamed")
    if streamed:
        print(f"   decided while collecting: {streamed['decided_while_collecting']} phones; "
              f"analysis after the collection {streamed['after_collection_seconds']} s")
    else:
        print("   analysis after the collection (--no-streaming)")
    print(f"   CPU per phone: collection {r['collection_cpu_ms_per_phone']} ms, "
          f"analysis {r['analysis_cpu_ms_per_phone']} ms", flush=True)


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: servers and temporary labs go too


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 100000], metavar="N")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()), help="parent of the work directory")
    ap.add_argument("--base", type=int, default=33, help="lab network base (127.BASE.x.x ...; default 33)")
    ap.add_argument("--keep", action="store_true", help="keep the labs and scans")
    ap.add_argument("--labs", type=Path, default=None, metavar="DIR",
                    help="reuse the labs DIR/lab-N (built there when missing, never removed)")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ap.add_argument("--limits", nargs="+", choices=list(VARIANTS), default=["default", "lifted", "after"],
                    help="scan at the default limits, with them lifted, with the analysis after the collection "
                         "(the first three by default), and with the --baseline checkout")
    ap.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                    help="another checkout of trustscan (with its kernel built) for the 'baseline' variant")
    args = ap.parse_args()
    global BASELINE
    BASELINE = args.baseline
    if "baseline" in args.limits and (BASELINE is None or not (BASELINE / "scanner").is_dir()):
        ap.error("--limits baseline needs --baseline DIR: a checkout with a scanner/ directory")
    signal.signal(signal.SIGTERM, _sigterm)
    work = Path(tempfile.mkdtemp(prefix="bench-scan-", dir=args.work))
    results: list[dict[str, Any]] = []
    try:
        for n in args.sizes:
            results += run_size(work, n, args.base, args.labs, args.limits)
            if not args.keep:  # a 100,000-phone lab and its evidence are gigabytes: free them now
                for p in work.glob(f"*-{n}"):
                    shutil.rmtree(p, ignore_errors=True)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    ok = all(r.get("differences") == 0 and not r.get("other_differences") for r in results)
    if args.json:
        print(json.dumps({"sizes": results, "all_match": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
