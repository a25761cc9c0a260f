"""The progress bar a collection shows on a terminal (``collect``, ``scan``, ``demo``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scanner.app.collect import Progress as Snapshot

Observer = Callable[["Snapshot"], None]


@contextlib.contextmanager
def collection_bar(show: bool) -> Iterator[Observer | None]:
    """While the block runs, a bar on stderr fed by the observer this yields; None (no bar, no
    observer) when ``show`` is false."""
    if not show:
        yield None
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
        task = bar.add_task("collect", total=None, rate=0.0, failures=0)

        def observer(p: Snapshot) -> None:
            rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
            bar.update(task, total=p.total, completed=p.done, rate=rate, failures=p.failures)

        yield observer
