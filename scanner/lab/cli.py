"""``trustscan lab build`` and ``trustscan lab serve``: the argv side of the lab.

Wired into the main CLI with ``add_lab_parser(subparsers)`` and ``run_lab(args)``.
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
from pathlib import Path

from scanner.lab.errors import LabError

__all__ = ["add_lab_parser", "run_lab"]

EXIT_OK = 0
EXIT_USAGE = 64
EXIT_FAILED = 70  # lab serve: a worker process died while serving
# How often lab serve checks that its parent is alive (a stop within half a second of its death).
PARENT_POLL = 0.5


def add_lab_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``lab build`` and ``lab serve`` (the subparsers' own parser_class is used)."""
    lab = subparsers.add_parser(
        "lab",
        help="build and serve a simulated pair of CUCM clusters and phones on loopback",
        description="The lab: two simulated CUCM clusters and a fleet of phones on 127.0.0.0/8, with "
        "faults and an answer key (docs/lab.md).",
    )
    sub = lab.add_subparsers(dest="lab_command", metavar="COMMAND")
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


def run_lab(args: argparse.Namespace) -> int:
    try:
        if args.lab_command == "build":
            return _build(args)
        if args.lab_command == "serve":
            return _serve(args)
    except LabError as exc:
        print(f"trustscan lab: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("trustscan lab: give a command: build or serve", file=sys.stderr)
    return EXIT_USAGE


def _build(args: argparse.Namespace) -> int:
    from scanner.lab.build import build_lab
    from scanner.lab.faults import CATALOG
    from scanner.lab.scenario import BUILTIN, load_scenario

    if args.list_scenarios:
        for name, sc in BUILTIN.items():
            print(f"scenario {name:<28} {sc.description}")
        for name, f in CATALOG.items():
            print(f"fault    {name:<28} [{f.scope}, {f.check}] {f.summary}")
        return EXIT_OK
    if not args.out:
        print("trustscan lab: build needs --out DIR (or --list-scenarios on its own)", file=sys.stderr)
        return EXIT_USAGE
    scenario = load_scenario(args.scenario)
    if getattr(args, "base", None) is not None:
        if not 1 <= args.base <= 150:
            print("trustscan lab: --base must be in 1..150", file=sys.stderr)
            return EXIT_USAGE
        scenario = dataclasses.replace(scenario, base=args.base)
    say = (lambda _m: None) if args.quiet else (lambda m: print(f"  {m}", file=sys.stderr))
    result = build_lab(Path(args.out), scenario, phones=args.phones, seed=str(args.seed), progress=say)
    if not args.quiet:
        a = result.answer
        counts = ", ".join(f"{k} {v}" for k, v in a["counts"].items())
        print(
            f"lab {scenario.name!r} seed {args.seed}: {result.phones} phones in {result.path} "
            f"({result.seconds:.1f} s); expected verdict {a['verdict']} ({counts})"
        )
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


def _serve(args: argparse.Namespace) -> int:
    from scanner.lab.serve import LabServer

    # Checks the directory before any socket opens.
    server = LabServer(
        args.dir, tls13=args.tls13, phones_per_process=args.phones_per_process, share=args.worker
    )
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Unix
        runner = asyncio.Runner()
    with runner:
        if args.worker is not None:
            return runner.run(_worker_until_eof(server))
        return runner.run(_serve_until_signal(server, args.duration))


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
                print(f"trustscan lab: parent process {parent} is gone; stopping", file=sys.stderr, flush=True)


async def _serve_until_signal(server: object, duration: float | None) -> int:
    from scanner.lab.serve import LabServer

    assert isinstance(server, LabServer)
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
        failure = asyncio.create_task(server.wait_failure())
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait((failure, stopped), timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        failure.cancel()
        stopped.cancel()
        if failure in done and stopped not in done:
            print(f"trustscan lab: {failure.result()}; stopping", file=sys.stderr, flush=True)
            code = EXIT_FAILED
    finally:
        parent.cancel()
        await server.stop()
        _forget_signals(loop)
    with contextlib.suppress(OSError):  # whoever read our stdout may be gone (see _watch_parent)
        print("stopped", flush=True)
    return code


async def _worker_until_eof(server: object) -> int:
    """A worker of `lab serve`: serve its share of phones, say `ready N` (or `error MESSAGE`) on
    stdout, then serve until SIGINT/SIGTERM or until stdin, a pipe from the main process, ends:
    it ends however the main process dies, even by SIGKILL."""
    from scanner.lab.serve import LabServer

    assert isinstance(server, LabServer)
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


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: ``python -m scanner.lab.cli build|serve ...``."""
    parser = argparse.ArgumentParser(prog="trustscan")
    add_lab_parser(parser.add_subparsers(dest="command"))
    return run_lab(parser.parse_args(["lab", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
