"""Slots and Watchdog (scanner.net.gate): the per-file limits and deadlines of a scan."""

from __future__ import annotations

import asyncio

import pytest

from scanner.net.gate import Slots, Watchdog


def test_slots_take_give_and_queue_in_order() -> None:
    async def main() -> list[str]:
        slots = Slots(2)
        assert slots.try_take() and slots.try_take()
        assert not slots.try_take() and slots.free == 0
        order: list[str] = []

        async def waiter(name: str) -> None:
            await slots.wait()
            order.append(name)
            slots.give()

        tasks = [asyncio.create_task(waiter(n)) for n in ("a", "b", "c")]
        await asyncio.sleep(0)
        assert slots.waiting == 3
        slots.give()  # straight to "a", not to the free count
        assert slots.free == 0 and not slots.try_take()
        await asyncio.gather(*tasks)
        assert slots.free == 1 and slots.waiting == 0
        slots.give()
        assert slots.free == 2
        return order

    assert asyncio.run(main()) == ["a", "b", "c"]


def test_slots_count_is_conserved() -> None:
    async def main() -> None:
        slots = Slots(3)
        held = 0

        async def user() -> None:
            nonlocal held
            if not slots.try_take():
                await slots.wait()
            held += 1
            assert held <= 3
            await asyncio.sleep(0.001)
            held -= 1
            slots.give()

        await asyncio.gather(*(user() for _ in range(50)))
        assert slots.free == 3 and slots.waiting == 0

    asyncio.run(main())


def test_a_cancelled_waiter_takes_no_slot_and_loses_none() -> None:
    async def main() -> None:
        slots = Slots(1)
        assert slots.try_take()
        w = asyncio.create_task(slots.wait())
        await asyncio.sleep(0)
        w.cancel()
        with pytest.raises(asyncio.CancelledError):
            await w
        slots.give()
        assert slots.free == 1 and slots.try_take()
        # Handed the slot and cancelled in the same turn: the slot passes on, not lost.
        w2 = asyncio.create_task(slots.wait())
        await asyncio.sleep(0)
        slots.give()  # resolves w2's future
        w2.cancel()
        with pytest.raises(asyncio.CancelledError):
            await w2
        assert slots.free == 1

    asyncio.run(main())


def test_slots_reject_a_zero_limit() -> None:
    with pytest.raises(ValueError):
        Slots(0)


def test_watchdog_turns_an_expired_deadline_into_timeout() -> None:
    async def main() -> tuple[str, int, float]:
        loop = asyncio.get_running_loop()
        wd = Watchdog(loop)
        t0 = loop.time()
        d = wd.arm(t0 + 0.05)
        try:
            await asyncio.sleep(5)
            outcome = "finished"
        except asyncio.CancelledError:
            assert wd.disarm(d)
            outcome = "timeout"
        finally:
            wd.disarm(d)
        task = asyncio.current_task()
        assert task is not None
        return outcome, task.cancelling(), loop.time() - t0

    outcome, cancelling, elapsed = asyncio.run(main())
    assert outcome == "timeout"
    assert cancelling == 0  # uncancelled: the task may go on awaiting
    assert 0.04 <= elapsed < 1.0


def test_watchdog_leaves_work_that_ends_in_time_alone() -> None:
    async def main() -> tuple[bool, int]:
        loop = asyncio.get_running_loop()
        wd = Watchdog(loop)
        d = wd.arm(loop.time() + 0.05)
        await asyncio.sleep(0.001)
        fired = wd.disarm(d)
        await asyncio.sleep(0.1)  # the timer comes due with nothing armed: no cancellation
        return fired, wd.armed

    assert asyncio.run(main()) == (False, 0)


def test_watchdog_lets_a_real_cancellation_through() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        wd = Watchdog(loop)

        async def guarded() -> None:
            d = wd.arm(loop.time() + 10)
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                if not wd.disarm(d):
                    raise
            finally:
                wd.disarm(d)

        t = asyncio.create_task(guarded())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    asyncio.run(main())


def test_watchdog_serves_many_deadlines_with_one_timer_and_an_earlier_one_moves_it() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        wd = Watchdog(loop)
        results: list[str] = []

        async def job(name: str, limit: float, work: float) -> None:
            d = wd.arm(loop.time() + limit)
            try:
                await asyncio.sleep(work)
                results.append(f"{name}:done")
            except asyncio.CancelledError:
                if not wd.disarm(d):
                    raise
                results.append(f"{name}:timeout")
            finally:
                wd.disarm(d)

        await asyncio.gather(
            job("long", 5.0, 0.02),  # armed first, far away
            job("short", 0.03, 2.0),  # earlier: must fire on time anyway
            job("mid", 0.06, 0.01),
        )
        return sorted(results)

    assert asyncio.run(main()) == ["long:done", "mid:done", "short:timeout"]


def test_watchdog_needs_a_task() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError):
            Watchdog(loop).arm(0.0)
    finally:
        loop.close()


def test_a_real_cancellation_arriving_with_a_firing_goes_through() -> None:
    # The deadline fires and, in the same loop iteration, someone cancels the task for real
    # (a TaskGroup shutting down, Ctrl-C): as with asyncio.timeout, CancelledError wins.
    async def main() -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        wd = Watchdog(loop)
        deadlines = []

        async def guarded() -> str:
            d = wd.arm(loop.time() + 100)
            deadlines.append(d)
            try:
                await asyncio.sleep(10)
                return "done"
            except asyncio.CancelledError:
                if not wd.disarm(d):
                    raise
                return "timeout"
            finally:
                wd.disarm(d)

        outcomes = []
        for real_first in (False, True):
            deadlines.clear()
            t = asyncio.create_task(guarded())
            await asyncio.sleep(0)
            deadlines[0].at = 0.0
            if real_first:
                t.cancel()
                wd._sweep()
            else:
                wd._sweep()
                t.cancel()
            try:
                outcomes.append(await t)
            except asyncio.CancelledError:
                outcomes.append("cancelled")
        return outcomes[0], outcomes[1]

    assert asyncio.run(main()) == ("cancelled", "cancelled")
