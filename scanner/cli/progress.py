"""How long phases show their progress on stderr (``collect``, ``scan``, ``demo``): a bar on a
terminal, JSON lines for wrappers (``--progress-json``), or nothing.

JSON lines (one object a line, on stderr so that stdout stays the command's own output)::

    {"event": "progress", "phase": "collect", "done": 1200, "total": 6010, "failures": 3, "elapsed": 4.1}
    {"event": "phase_end", "phase": "collect", "done": 6010, "total": 6010, "failures": 3, "elapsed": 18.7}

``phase`` is ``collect`` or ``analyse``; a ``progress`` line at most every ``JSON_EVERY`` seconds,
a ``phase_end`` line when the phase is over. The collection's ``total`` grows when it plans more
(the TVS addresses the configs name are planned after the configs are read); on a terminal each
such step gets a bar of its own, whose total is fixed.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from scanner.app.collect import Progress as Snapshot

Observer = Callable[["Snapshot"], None]
Counter = Callable[[int, int], None]  # (done, total) of the analysis

# Seconds between two JSON progress lines: a wrapper wants a pulse, not a firehose.
JSON_EVERY = 1.0


class Mode(StrEnum):
    BAR = "bar"  # on a terminal
    JSON = "json"
    OFF = "off"


def mode_for(*, no_progress: bool, progress_json: bool, quiet: bool) -> Mode:
    if progress_json:
        return Mode.JSON
    if no_progress or quiet or not sys.stderr.isatty():
        return Mode.OFF
    return Mode.BAR


def _json(event: str, phase: str, **fields: Any) -> None:
    sys.stderr.buffer.write(orjson.dumps({"event": event, "phase": phase, **fields}, option=orjson.OPT_APPEND_NEWLINE))
    sys.stderr.flush()


@contextlib.contextmanager
def collection_bar(mode: Mode | bool) -> Iterator[Observer | None]:
    """While the block runs, the collection's progress fed by the observer this yields; None (no
    observer) when the mode is off. ``True``/``False`` mean bar/off (the older callers)."""
    if mode is True:
        mode = Mode.BAR
    if mode is False or mode is Mode.OFF:
        yield None
        return
    if mode is Mode.JSON:
        last = [0.0]

        def emit(p: Snapshot) -> None:
            now = time.monotonic()
            if p.finished or now - last[0] >= JSON_EVERY:
                last[0] = now
                _json("phase_end" if p.finished else "progress", "collect", done=p.done, total=p.total,
                      failures=p.failures, elapsed=round(p.elapsed, 3))

        yield emit
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("collect"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7.0f} jobs/s"),
        TextColumn("failures {task.fields[failures]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        # Each bar's total is fixed when it appears: the collection plans more jobs once it knows
        # more (the phones after the cache lists, the TVS addresses after the configs), and then
        # the finished bar stays as it is and a new one counts the jobs just planned.
        tasks = [bar.add_task("collect", total=None, rate=0.0, failures=0)]
        offset, total = 0, -1  # where the current bar starts, and its end

        def observer(p: Snapshot) -> None:
            nonlocal offset, total
            rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
            if total < 0 or (p.total > total and p.done < total):
                total = p.total  # the first plan, or planned while its jobs still run: this bar
            elif p.total > total:
                bar.update(tasks[-1], total=total - offset, completed=total - offset)
                offset, total = total, p.total
                tasks.append(bar.add_task("collect", total=None, rate=0.0, failures=0))
            bar.update(tasks[-1], total=total - offset, completed=p.done - offset, rate=rate, failures=p.failures)

        yield observer


@contextlib.contextmanager
def analysis_bar(mode: Mode) -> Iterator[Counter | None]:
    """The analysis's progress: phones decided of the phones in scope."""
    if mode is Mode.OFF:
        yield None
        return
    started = time.monotonic()
    if mode is Mode.JSON:
        last = [0.0]

        def emit(done: int, total: int) -> None:
            now = time.monotonic()
            if done >= total or now - last[0] >= JSON_EVERY:
                last[0] = now
                _json("phase_end" if done >= total else "progress", "analyse", done=done, total=total,
                      elapsed=round(now - started, 3))

        yield emit
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("analyse"), BarColumn(), MofNCompleteColumn(), TextColumn("phones"), TimeElapsedColumn(),
        console=Console(stderr=True), transient=False,
    ) as bar:
        task = bar.add_task("analyse", total=None)
        shown = [0.0]

        def update(done: int, total: int) -> None:
            now = time.monotonic()
            if done >= total or now - shown[0] >= 0.1:  # rich redraws at 10 Hz anyway
                shown[0] = now
                bar.update(task, total=total, completed=done)

        yield update
