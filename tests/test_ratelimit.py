"""The politeness policy, with numbers for time: no sleeping."""

from __future__ import annotations

import pytest

from scanner.core.ratelimit import Limits, NodeHealth, TokenBucket


def test_bucket_burst_then_rate() -> None:
    b = TokenBucket(rate=10.0, burst=3, now=0.0)
    assert [b.reserve(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    # Reservations queue: each is told its own start time, 1/rate apart.
    assert b.reserve(0.0) == pytest.approx(0.1)
    assert b.reserve(0.0) == pytest.approx(0.2)
    # Time passes: debt is paid back before new tokens accrue.
    assert b.reserve(0.25) == pytest.approx(0.05)
    assert b.reserve(10.0) == 0.0
    # Saved up to the burst only, minus the one just taken: two more at once, then the rate.
    assert [b.reserve(10.0) for _ in range(2)] == [0.0, 0.0]
    assert b.reserve(10.0) == pytest.approx(0.1)


def test_bucket_long_run_rate() -> None:
    b = TokenBucket(rate=100.0, burst=1, now=0.0)
    now = 0.0
    for _ in range(1000):
        now += b.reserve(now)
    assert now == pytest.approx(9.99)


def test_bucket_clock_going_backwards_is_harmless() -> None:
    b = TokenBucket(rate=1.0, burst=1, now=5.0)
    assert b.reserve(5.0) == 0.0
    assert b.reserve(4.0) == pytest.approx(1.0)


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0.0, 1, 0.0)


def test_health_one_failure_never_kills() -> None:
    h = NodeHealth(dead_after=3, probe_interval=10.0)
    for _ in range(2):
        h.record(True, 0.0)
    h.record(False, 0.0)  # a "not found" is an answer: alive
    h.record(True, 0.0)
    h.record(True, 0.0)
    assert not h.dead and h.should_attempt(0.0)
    h.record(True, 1.0)
    assert h.dead


def test_health_probe_and_revival() -> None:
    h = NodeHealth(dead_after=1, probe_interval=10.0)
    h.record(True, 100.0)
    assert h.dead
    assert not h.should_attempt(105.0)
    assert h.should_attempt(110.0)  # one probe per interval
    assert not h.should_attempt(110.5)
    h.record(True, 111.0)  # the probe timed out too: still dead
    assert h.dead and not h.should_attempt(115.0)
    assert h.should_attempt(120.0)
    h.record(False, 120.1)  # the probe got an answer
    assert not h.dead and h.should_attempt(120.2)


def test_limits_validation() -> None:
    assert Limits().per_node_concurrency >= 1
    with pytest.raises(ValueError, match="windowsize"):
        Limits(tftp_windowsize=65)
    with pytest.raises(ValueError, match="per_node_rate"):
        Limits(per_node_rate=float("inf"))
    with pytest.raises(ValueError, match="workers"):
        Limits(workers=0)
