"""``trustscan lab build`` and ``trustscan lab serve``: the simulated clusters (docs/lab.md).

``lab serve`` runs as long as it is told: until SIGINT/SIGTERM, ``--duration`` or the death of the
process that started it. When a lab needs more phone listeners than one process may open, it
starts its worker processes as ``python -m scanner lab serve DIR --worker START:STOP``
(scanner/lab/serve.py); a worker serves until its stdin, a pipe from the main process, ends.

Exit codes (scanner/cli/exitcodes.py): 0 done, 64 bad input, 70 a worker died while serving.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.cli import runner
from scanner.cli.exitcodes import EXIT_LAB_FAILED, EXIT_OK, EXIT_USAGE
from scanner.lab.errors import LabError

if TYPE_CHECKING:
    from scanner.lab.serve import LabServer

PROG = "trustscan lab"
# How often lab serve checks that its parent is alive (a stop within half a second of its death).
PARENT_POLL = 0.5
BASE_RANGE = range(1, 151)  # --base: the range a scenario file allows for network.base (docs/lab.md)


def add_parser(subparsers: Any) -> None:
    """Add ``lab build`` and ``lab serve`` (the subparsers' own parser_class is used)."""
    lab = subparsers.add_parser(
        "lab",
        help="build and serve a simulated pair of CUCM clusters and phones on loopback",
        description="The lab: two simulated CUCM clusters and a fleet of phones on 127.0.0.0/8, with "
        "faults and an answer key (docs/lab.md).",
    )
    sub = lab.add_subparsers(dest="lab_command", metavar="COMMAND")
    _add_build_parser(sub)
    _add_serve_parser(sub)
    _add_cutover_parser(sub)


def _add_build_parser(sub: Any) -> None:
    b = sub.add_parser(
        "build",
        help="write a lab directory",
        description="Write DIR: profile.toml, inventory.csv, answer-key.json, lab.json, the files each "
        "TFTP node serves, trust stores and TVS certificates. The same --seed gives the same bytes.",
    )
    b.add_argument(
        "--out", default=None, metavar="DIR",
        help="lab directory to write (replaced if it is a lab); required unless --list-scenarios",
    )
    b.add_argument(
        "--phones", type=int, default=None, metavar="N", help="fleet size (default: the scenario's, 200)"
    )
    b.add_argument(
        "--scenario",
        default="healthy",
        metavar="NAME|FILE",
        help="built-in scenario (healthy, mixed, ...; see --list-scenarios) or a TOML file",
    )
    b.add_argument("--seed", default="1", metavar="S", help="fixes keys, fleet layout and fault placement")
    b.add_argument(
        "--list-scenarios", action="store_true", help="print the built-in scenarios and faults, then exit"
    )
    b.add_argument(
        "--base", type=int, default=None, metavar="OCTET",
        help="second octet of the lab's loopback addresses (default 10: 127.10.x.x …), to run two labs at once",
    )
    b.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _add_serve_parser(sub: Any) -> None:
    s = sub.add_parser(
        "serve",
        help="serve a built lab until SIGINT/SIGTERM",
        description="Serve DIR on its loopback addresses: TFTP and HTTP per TFTP node, TLS per TVS node, web "
        "pages per phone. Prints one line per service, then 'ready'.",
    )
    s.add_argument("dir", metavar="DIR")
    s.add_argument(
        "--tls13", action="store_true", help="let TVS servers negotiate TLS 1.3 (default: TLS 1.2 only)"
    )
    s.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this long")
    s.add_argument(
        "--phones-per-process", type=int, default=None, metavar="N",
        help="at most N phone web listeners per process (default: what the open-files limit allows); "
        "the phones are spread over worker processes",
    )
    # Internal: lab serve starts its worker processes as `lab serve DIR --worker START:STOP`.
    s.add_argument("--worker", type=_share, default=None, help=argparse.SUPPRESS)


def _add_cutover_parser(sub: Any) -> None:
    c = sub.add_parser(
        "cutover",
        help="move phones of a served lab to the destination and run their side of the cutover",
        description="Point the selected phones' option 150 at the destination and run each phone "
        "(spec migration-readiness.md section 1) against the lab being served: its pages then show "
        "the destination's TFTP server and the lists it installed, or 'Trust List update failed'.",
    )
    c.add_argument("dir", metavar="DIR")
    which = c.add_mutually_exclusive_group()
    which.add_argument("--pool", default=None, metavar="P", help="only the phones of device pool P")
    which.add_argument("--phones", default=None, metavar="FILE", help="only the devices named in FILE (one a line)")
    c.add_argument(
        "--concurrency", type=int, default=32, metavar="N", help="phones run at once (default 32)"
    )
    c.add_argument(
        "--failover", action="store_true",
        help="each phone's first destination TFTP node does not answer it: it uses the next one of its option 150",
    )


def cutover(directory: str, *, pool: str | None, phones: str | None, concurrency: int, failover: bool = False) -> int:
    """``lab cutover``: counts per outcome on stdout; 0 the cutover ran, 64 bad input, 70 failed."""
    from scanner.lab.cutover import cutover as run_cutover

    if concurrency < 1:
        _err(f"--concurrency must be at least 1 (got {concurrency})")
        return EXIT_USAGE
    names = None
    if phones is not None:
        try:
            names = Path(phones).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            _err(f"{phones}: cannot read the phone list: {exc}")
            return EXIT_USAGE
    try:
        summary = runner.run(
            run_cutover(directory, pool=pool, names=names, concurrency=concurrency, failover=failover)
        )
    except LabError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except (OSError, RuntimeError) as exc:  # the lab is not being served, or broke mid-way
        _err(f"cutover failed: {exc}")
        return EXIT_LAB_FAILED
    for outcome in ("migrated", "update-failed", "config-rejected", "not-provisioned", "unsimulated"):
        print(f"{outcome:<16} {summary.counts.get(outcome, 0)}")
    for problem in summary.problems:
        print(f"  {problem}", file=sys.stderr)
    return EXIT_OK


def _share(text: str) -> tuple[int, int]:
    start, _, stop = text.partition(":")
    try:
        share = int(start), int(stop)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected START:STOP") from None
    if not 0 <= share[0] <= share[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 <= START <= STOP")
    return share


def _err(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    if args.lab_command == "build":
        return build(
            BuildRequest(
                out=args.out, scenario=args.scenario, phones=args.phones, seed=str(args.seed), base=args.base,
                quiet=args.quiet, list_scenarios=args.list_scenarios,
            )
        )
    if args.lab_command == "serve":
        return serve(args.dir, tls13=args.tls13, duration=args.duration,
                     phones_per_process=args.phones_per_process, worker=args.worker)
    if args.lab_command == "cutover":
        return cutover(args.dir, pool=args.pool, phones=args.phones, concurrency=args.concurrency, failover=args.failover)
    _err("give a command: build, serve or cutover")
    return EXIT_USAGE


# lab build ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuildRequest:
    """What ``lab build`` was asked to do (``demo`` builds one too)."""

    out: str | None
    scenario: str = "healthy"  # a built-in scenario's name or a TOML file
    phones: int | None = None  # None: the scenario's
    seed: str = "1"
    base: int | None = None  # None: the scenario's second octet
    quiet: bool = False
    list_scenarios: bool = False


def build(req: BuildRequest) -> int:
    if req.list_scenarios:
        _list_scenarios()
        return EXIT_OK
    if not req.out:
        _err("build needs --out DIR (or --list-scenarios on its own)")
        return EXIT_USAGE
    try:
        return _build(req, req.out)
    except LabError as exc:
        _err(str(exc))
        return EXIT_USAGE


def _list_scenarios() -> None:
    from scanner.lab.faults import CATALOG
    from scanner.lab.scenario import BUILTIN

    for name, sc in BUILTIN.items():
        print(f"scenario {name:<28} {sc.description}")
    for name, f in CATALOG.items():
        print(f"fault    {name:<28} [{f.scope}, {f.check}] {f.summary}")


def _build(req: BuildRequest, out: str) -> int:
    from scanner.lab.build import build_lab
    from scanner.lab.scenario import load_scenario

    scenario = load_scenario(req.scenario)
    if req.base is not None:
        if req.base not in BASE_RANGE:
            _err(f"--base must be in {BASE_RANGE.start}..{BASE_RANGE.stop - 1}")
            return EXIT_USAGE
        scenario = dataclasses.replace(scenario, base=req.base)
    say = (lambda _m: None) if req.quiet else (lambda m: print(f"  {m}", file=sys.stderr))
    result = build_lab(Path(out), scenario, phones=req.phones, seed=req.seed, progress=say)
    if not req.quiet:
        a = result.answer
        counts = ", ".join(f"{k} {v}" for k, v in a["counts"].items())
        print(
            f"lab {scenario.name!r} seed {req.seed}: {result.phones} phones in {result.path} "
            f"({result.seconds:.1f} s); expected verdict {a['verdict']} ({counts})"
        )
    return EXIT_OK


# lab serve ------------------------------------------------------------------------------------


def serve(
    directory: str,
    *,
    tls13: bool = False,
    duration: float | None = None,
    phones_per_process: int | None = None,
    worker: tuple[int, int] | None = None,
) -> int:
    from scanner.lab.serve import LabServer

    try:
        # Checks the directory before any socket opens.
        server = LabServer(directory, tls13=tls13, phones_per_process=phones_per_process, share=worker)
        if worker is not None:
            return runner.run(_worker_until_eof(server))
        return runner.run(_serve_until_stopped(server, duration))
    except LabError as exc:
        _err(str(exc))
        return EXIT_USAGE


def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def _forget_signals(loop: asyncio.AbstractEventLoop) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)


async def _watch_parent(stop: asyncio.Event) -> None:
    """Set ``stop`` when the process that started us dies (we are re-parented: getppid changes),
    so a `lab serve` whose demo or test was killed does not hold the lab's addresses forever."""
    parent = os.getppid()
    if parent == 1:
        return  # started by init (a daemon): there is no parent to outlive
    while not stop.is_set():
        await asyncio.sleep(PARENT_POLL)
        if os.getppid() != parent:
            stop.set()  # first: the parent held our stderr pipe, so the print below may fail
            with contextlib.suppress(OSError):
                _err(f"parent process {parent} is gone; stopping")


async def _serve_until_stopped(server: LabServer, duration: float | None) -> int:
    """Serve, print each service and then ``ready``; stop on SIGINT/SIGTERM, after ``duration``,
    when the parent dies (0) or when a worker process dies (70)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    _stop_on_signals(loop, stop)
    parent = asyncio.create_task(_watch_parent(stop))
    started = time.perf_counter()
    code = EXIT_OK
    try:
        await server.start(lambda s: print(s.line(), flush=True))
        print(f"ready ({time.perf_counter() - started:.1f} s, {server.phones_listening} phones listening "
              f"in {server.processes} process{'es' if server.processes > 1 else ''})", flush=True)
        failure = await _first_of_failure_or_stop(server, stop, duration)
        if failure is not None:
            _err(f"{failure}; stopping")
            code = EXIT_LAB_FAILED
    finally:
        parent.cancel()
        await server.stop()
        _forget_signals(loop)
    with contextlib.suppress(OSError):  # whoever read our stdout may be gone (see _watch_parent)
        print("stopped", flush=True)
    return code


async def _first_of_failure_or_stop(server: LabServer, stop: asyncio.Event, duration: float | None) -> str | None:
    """Wait for a worker's death, ``stop`` or the end of ``duration``; the failure's reason, if
    that came first (and alone)."""
    failure = asyncio.create_task(server.wait_failure())
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait((failure, stopped), timeout=duration, return_when=asyncio.FIRST_COMPLETED)
    failure.cancel()
    stopped.cancel()
    return failure.result() if failure in done and stopped not in done else None


async def _worker_until_eof(server: LabServer) -> int:
    """A worker of `lab serve`: serve its share of phones, say `ready N` (or `error MESSAGE`) on
    stdout, then serve until SIGINT/SIGTERM or until stdin, a pipe from the main process, ends:
    it ends however the main process dies, even by SIGKILL."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    _stop_on_signals(loop, stop)

    def on_stdin() -> None:
        try:
            more = os.read(0, 4096)
        except BlockingIOError:
            return
        except OSError:
            more = b""
        if not more:
            loop.remove_reader(0)
            stop.set()

    loop.add_reader(0, on_stdin)
    try:
        try:
            await server.start()
        except LabError as exc:
            print(f"error {exc}", flush=True)
            return EXIT_USAGE
        print(f"ready {server.phones_listening}", flush=True)
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            loop.remove_reader(0)
        await server.stop()
        _forget_signals(loop)
    return EXIT_OK
