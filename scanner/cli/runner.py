"""The one place that picks the event loop: uvloop when it is installed, asyncio's own otherwise.

uvloop is faster with thousands of sockets (a collection, a served lab of 100,000 phones); the
library below the command line never picks the loop.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop maker, or None (asyncio's default loop) when uvloop is not installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Unix
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a new loop of the chosen kind, then close the loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def interrupt_on_sigterm() -> None:
    """Make SIGTERM end the process the way Ctrl-C does, by raising KeyboardInterrupt.

    A scheduler stopping a nightly job sends SIGTERM: the collector then unwinds, writes
    collection.json as "interrupted" and the evidence can be resumed. Without this the default
    action kills the process with collection.json still saying "running" (which the analysis also
    handles, only with less to say).

    While an ``asyncio.Runner`` runs (the collection), SIGTERM goes to the handler it installed
    for SIGINT, which cancels the main task: the loop unwinds and the run ends in KeyboardInterrupt.
    Raising KeyboardInterrupt from here instead could land inside one of uvloop's transport
    callbacks, which catches it, logs "Fatal error on transport" and goes on: the signal was then
    lost and the scan ran to its end (tests/test_resume.py saw exit 1 instead of 130).
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        on_sigint = signal.getsignal(signal.SIGINT)
        if callable(on_sigint) and on_sigint is not signal.default_int_handler:
            on_sigint(signal.SIGINT, frame)  # asyncio.Runner's: cancels the main task
            return
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
