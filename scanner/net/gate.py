"""Cheap concurrency limits and deadlines for the per-file path of a fleet scan.

A scan makes tens of thousands of requests, each a handful of datagrams or one small HTTP
exchange, so what asyncio's general-purpose tools cost per request shows in the scanner's CPU
per file (issue 4's budget is 100 µs):

* ``asyncio.Semaphore`` creates a coroutine per ``async with`` even when a slot is free.
  ``Slots`` takes a free slot with one method call and no coroutine (``try_take``), and queues
  only when it must (``wait``), first come, first served.
* ``asyncio.timeout`` schedules and cancels a timer handle per block and walks its state machine
  on entry and exit. ``Watchdog`` keeps every deadline of a loop in one set behind one timer:
  arming and disarming are a set insert and a set removal.

Both follow asyncio's rules: a task past its deadline is cancelled and, at the block's end,
``uncancel``-ed and told ``TimeoutError`` (as ``asyncio.timeout`` does), so an outer
cancellation still propagates; a cancelled waiter never takes a slot.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

__all__ = ["Deadline", "Slots", "Watchdog"]


class Slots:
    """A counting limit: ``if not s.try_take(): await s.wait()`` ... ``s.give()``."""

    __slots__ = ("_waiters", "free")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_take(self) -> bool:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def wait(self) -> None:
        """Wait for a slot and take it (after ``try_take`` said no)."""
        if self.try_take():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.give()  # handed a slot just as we were cancelled: pass it on
            raise

    def give(self) -> None:
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes straight to the waiter
                return
        self.free += 1

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())


class Deadline:
    """One armed deadline (see ``Watchdog.arm``)."""

    __slots__ = ("at", "base", "fired", "settled", "task", "timed_out")

    def __init__(self, task: asyncio.Task[object], at: float) -> None:
        self.task = task
        self.at = at
        # Cancellations already pending when armed: only a cancellation beyond them can be ours.
        self.base = task.cancelling()
        self.fired = False
        self.settled = False
        self.timed_out = False


class Watchdog:
    """Every deadline of one event loop, behind a single timer.

    ::

        d = wd.arm(loop.time() + 40)
        try:
            await work()
        except asyncio.CancelledError:
            if not wd.disarm(d):
                raise  # a real cancellation
            ...  # the deadline passed
        finally:
            wd.disarm(d)

    ``disarm`` may be called more than once; it returns whether the deadline fired with no
    other cancellation pending, and the first call after a firing ``uncancel``-s the task (each
    firing cancels it once). ``close`` drops the timer: deadlines still armed then go
    unenforced until the next ``arm``.

    The one timer is set for the earliest deadline it knows of. Deadlines of a scan are all the
    same length, so a new one is never earlier and arming costs a set insert; the sweep, when the
    timer comes due, fires what is due and sets the timer for the earliest deadline left.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._armed: set[Deadline] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._next = math.inf

    def arm(self, at: float) -> Deadline:
        task = asyncio.current_task(self._loop)
        if task is None:
            raise RuntimeError("Watchdog.arm outside a task")
        d = Deadline(task, at)
        self._armed.add(d)
        if at < self._next:
            self._schedule(at)
        return d

    def disarm(self, d: Deadline) -> bool:
        """Forget ``d``; True when its firing is what cancelled the task (convert to a timeout).

        As ``asyncio.timeout`` does: the firing's cancellation is taken back, and it counts as
        a timeout only if no other cancellation is still pending (a real cancellation that came
        together with the firing must go through)."""
        self._armed.discard(d)
        if d.fired and not d.settled:
            d.settled = True
            d.timed_out = d.task.uncancel() <= d.base
        return d.timed_out

    @property
    def armed(self) -> int:
        return len(self._armed)

    def _schedule(self, at: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._next = at
        self._handle = self._loop.call_at(at, self._sweep)

    def _sweep(self) -> None:
        self._handle = None
        self._next = math.inf
        # The loop may run a timer up to its clock resolution early.
        now = self._loop.time() + _EARLY
        earliest = math.inf
        for d in list(self._armed):
            if d.at <= now:
                self._armed.discard(d)
                d.fired = True
                d.task.cancel()
            elif d.at < earliest:
                earliest = d.at
        if earliest < math.inf:
            self._schedule(earliest)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._next = math.inf


_EARLY = 0.001
