"""``trustscan lab build`` and ``trustscan lab serve``: the argv side of the lab.

Wired into the main CLI with ``add_lab_parser(subparsers)`` and ``run_lab(args)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys
import time
from pathlib import Path

from scanner.lab.errors import LabError

__all__ = ["add_lab_parser", "run_lab"]

EXIT_OK = 0
EXIT_USAGE = 64


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
        "--out", required=True, metavar="DIR", help="lab directory to write (replaced if it is a lab)"
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


def _serve(args: argparse.Namespace) -> int:
    from scanner.lab.serve import LabServer

    server = LabServer(args.dir, tls13=args.tls13)  # checks the directory before any socket opens
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Unix
        runner = asyncio.Runner()
    with runner:
        return runner.run(_serve_until_signal(server, args.duration))


async def _serve_until_signal(server: object, duration: float | None) -> int:
    from scanner.lab.serve import LabServer

    assert isinstance(server, LabServer)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = time.perf_counter()
    try:
        await server.start(lambda s: print(s.line(), flush=True))
        print(f"ready ({time.perf_counter() - started:.1f} s)", flush=True)
        if duration is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
        else:
            await stop.wait()
    finally:
        await server.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print("stopped", flush=True)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: ``python -m scanner.lab.cli build|serve ...``."""
    parser = argparse.ArgumentParser(prog="trustscan")
    add_lab_parser(parser.add_subparsers(dest="command"))
    return run_lab(parser.parse_args(["lab", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
