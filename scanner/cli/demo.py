"""``trustscan demo``: build a lab, serve it from a second process, scan it, write the reports.

What a new user runs first (``make demo``): the whole product on the built-in simulated fleet,
on loopback only, with the summary and the path of ``report.html`` at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from scanner.cli import lab, scan
from scanner.cli.exitcodes import EXIT_OK, EXIT_USAGE

PROG = "trustscan demo"
# lab serve prints "ready" once every listener of every process is up: a second for 10,000 phones
# in one process, about 20 s for 100,000 in six; it gives its workers 300 s
# (scanner.lab.serve.WORKER_READY_TIMEOUT), so we wait a little longer than that.
READY_TIMEOUT = 330.0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="build a simulated fleet, serve it, scan it, write the reports",
        description="Builds a lab (two simulated CUCM clusters and N phones on 127.0.0.0/8), serves it from "
        "a second process, scans it and writes the reports. Exit codes as for scan.",
    )
    p.add_argument("--phones", type=int, default=2000, metavar="N", help="phones in the fleet (default 2000)")
    p.add_argument("--scenario", default="mixed", metavar="NAME", help="lab scenario (default mixed)")
    p.add_argument("--seed", default="1", help="lab seed (same seed, same fleet)")
    p.add_argument("--out", default="demo-out", metavar="DIR", help="where the lab and reports go")
    p.add_argument(
        "--base", type=int, default=None, metavar="OCTET",
        help="second octet of the lab's loopback addresses (default: the scenario's, 10), to run two demos at once",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    out = _fresh_out(Path(args.out).resolve())
    lab_dir, scan_dir = out / "lab", out / "scan"
    _say(f"building a lab of {args.phones} phones, scenario {args.scenario!r} …")
    code = lab.build(
        lab.BuildRequest(out=str(lab_dir), scenario=args.scenario, phones=args.phones, seed=str(args.seed),
                         base=args.base)
    )
    if code != EXIT_OK:
        return code
    try:
        with serving_subprocess(lab_dir):
            _say("lab serving on 127.0.0.0/8; scanning …")
            code = scan.scan(
                scan.ScanRequest(profile=str(lab_dir / "profile.toml"), inventory=_inventory(lab_dir),
                                 out=str(scan_dir), history=str(out / "history.sqlite"),
                                 no_progress=args.no_progress)
            )
    except LabNotReady as exc:
        _say(f"the lab server did not start:\n{exc}")
        return EXIT_USAGE
    report = scan_dir / "report.html"
    if report.exists():
        print(f"\nThe report: {report}\n(the lab's answer key, for comparison: {lab_dir / 'answer-key.json'})",
              file=sys.stderr)
    return code


def _inventory(lab_dir: Path) -> str | None:
    """The lab's CSV only when its profile cannot discover the phones: a lab profile with AXL is
    scanned the way a user with a publisher address and credentials scans (no CSV at all)."""
    from scanner.app.discover import uses_discovery
    from scanner.store.profiles import load_profile

    if uses_discovery(load_profile(lab_dir / "profile.toml")):
        return None
    return str(lab_dir / "inventory.csv")


def _fresh_out(out: Path) -> Path:
    """``out``, created; a demo is a fresh run each time: an earlier one is moved aside rather
    than mixed with this one."""
    if (out / "scan" / "evidence" / "manifest.jsonl").exists() or (out / "lab").exists():
        old = out.with_name(f"{out.name}.old-{int(time.time())}")
        out.rename(old)
        _say(f"previous demo moved to {old}")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    """Every line of ``stream`` into ``lines`` (None at EOF); bounded in what it keeps: once
    nobody reads (after ready) the queue is not fed any more, only the pipe is emptied."""
    with contextlib.suppress(OSError, ValueError):  # the pipe is closed when the block ends
        for line in stream:
            if lines.qsize() < 10_000:
                lines.put(line)
    lines.put(None)


class LabNotReady(RuntimeError):
    """``lab serve`` exited or stayed silent; the message holds its last output."""


@contextlib.contextmanager
def serving_subprocess(lab: Path) -> Iterator[subprocess.Popen[str]]:
    """``trustscan lab serve LAB`` in a second process (its own core), until the block ends."""
    server = subprocess.Popen(
        [sys.executable, "-m", "scanner", "lab", "serve", str(lab)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    drain: threading.Thread | None = None
    try:
        assert server.stdout is not None
        # One reader thread for the whole life of the pipe: it hands lines to us until "ready"
        # (so the deadline holds even while lab serve is silent), then only drains (lab serve and
        # its workers share the pipe; a full pipe would block the server mid-scan).
        lines: queue.Queue[str | None] = queue.Queue()
        drain = threading.Thread(target=_read_lines, args=(server.stdout, lines), daemon=True)
        drain.start()
        _wait_until_ready(lines)
        yield server
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if drain is not None:
            drain.join(10)  # EOF once lab serve's workers, which share the pipe, have stopped too
        if server.stdout is not None and (drain is None or not drain.is_alive()):
            server.stdout.close()


def _wait_until_ready(lines: queue.Queue[str | None]) -> None:
    """Return at lab serve's ``ready`` line; LabNotReady, with its last output, when it ends
    (EOF) or stays silent for READY_TIMEOUT first."""
    deadline = time.monotonic() + READY_TIMEOUT
    seen: list[str] = []
    while True:
        left = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(0.0, left)) if left > 0 else None
        except queue.Empty:
            line = None
        if line is None:
            raise LabNotReady("".join(seen[-20:]) or f"no 'ready' from lab serve in {READY_TIMEOUT:g} s")
        seen.append(line)
        if line.startswith("ready"):
            return
