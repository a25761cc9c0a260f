"""Politeness toward production servers, sans-IO: limits, a token bucket, node health.

Nothing here sleeps or reads a clock: every method takes ``now`` (seconds, any monotonic
origin) and returns how long the caller must wait, so the policy is unit-tested with numbers
and the asyncio side (``scanner.app.collect``) only sleeps what it is told.

Why the defaults are what they are (``Limits``):

* A CUCM TFTP node serves a bounded number of transfers at once, its "Maximum Serving Count"
  service parameter; Cisco suggests 1,500 for a dedicated single-CPU TFTP server and 3,000 for a
  dual-CPU one (TAC doc 222878), and since 11.5 a handful of worker objects serve a queue of
  that length: a request beyond the count is refused (HTTP 503) or left unanswered. Phones
  booting after an outage must still be served while we scan, so we keep at most
  ``per_node_concurrency = 64`` requests in flight per node: about 4% of the smallest suggested
  count, leaving more than 95% of it to phones. TFTP and HTTP 6970 share the count (one
  service serves both), so they share the limit.
* ``per_node_rate = 500`` requests/s (burst 64) per node: each request costs the TFTP service a
  cache lookup and a send; 500/s is a fraction of what a node serves during a mass re-register
  and lets 10,000 phones × 3 files complete from one node in about a minute. The concurrency
  limit, not the rate, is what binds on a WAN (64 in flight at 40 ms RTT is ~800 files/s).
  The collector releases rate-limited starts together on pacing ticks of at most 3/4 of the
  burst (``scanner.app.collect.pacing_tick``: 96 ms, 48 starts per node, at the defaults): the
  bucket allows such a bunch anyway, and one event-loop wake-up per bunch instead of one per
  request halves the scanner's CPU per file.
* ``dead_after = 8`` consecutive timeouts before a node is treated as down: one lost
  datagram, one slow file or one "not found" never marks it dead (SeeYouCM-Thief's mistake);
  eight in a row at the retransmission schedule is tens of seconds of silence. A dead node's
  remaining jobs are recorded as ``timeout`` without sending, except one probe every
  ``dead_probe_interval`` seconds, which revives it on the first answer.
* Phone web servers are tiny embedded servers: one request at a time per phone, and
  ``web_concurrency`` phones at once across the fleet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Limits", "NodeHealth", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Every politeness and timeout knob; ``[limits]`` in profile.toml overrides any of them."""

    # Per TFTP node, TFTP and HTTP 6970 together (see module doc for the reasons).
    per_node_concurrency: int = 64
    per_node_rate: float = 500.0
    per_node_burst: int = 64
    # Worker tasks pulling jobs; more workers than the sum of node limits only wait on semaphores.
    workers: int = 256
    # Phones: one request at a time per phone (enforced by planning), this many phones at once.
    web_concurrency: int = 64
    # TVS: each member is a production CallManager node; a handful of handshakes at a time.
    tvs_concurrency: int = 4
    # TFTP: first retransmission wait, retransmissions, block and window size (RFC 2348/7440;
    # 1428 avoids IP fragmentation, 8 blocks is ~11 KB in flight, below tftp-hpa's 64 limit).
    tftp_timeout: float = 1.0
    tftp_retries: int = 5
    tftp_blksize: int = 1428
    tftp_windowsize: int = 8
    # HTTP: connecting should take one RTT; a whole 6970 file fetch a few.
    http_connect_timeout: float = 3.0
    http_timeout: float = 10.0
    # Hard ceiling per attempt, above the TFTP retry schedule (1+2+4+8+8+8 s ≈ 31 s with jitter).
    job_timeout: float = 40.0
    web_timeout: float = 8.0
    tvs_timeout: float = 8.0
    # Refuse anything larger: trust lists are < 64 KB on phones, configs a few KB; 4 MiB is the
    # parser's own signed-file limit (scanner.core.trustlist.MAX_SIGNED_FILE_SIZE).
    max_file_size: int = 4 << 20
    # Phone pages are tens of KB; 2 MiB bounds a misbehaving web server.
    max_page_size: int = 2 << 20
    dead_after: int = 8
    dead_probe_interval: float = 30.0

    def __post_init__(self) -> None:
        for name in (
            "per_node_concurrency",
            "per_node_burst",
            "workers",
            "web_concurrency",
            "tvs_concurrency",
            "tftp_blksize",
            "tftp_windowsize",
            "max_file_size",
            "max_page_size",
            "dead_after",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in (
            "per_node_rate",
            "tftp_timeout",
            "http_connect_timeout",
            "http_timeout",
            "job_timeout",
            "web_timeout",
            "tvs_timeout",
            "dead_probe_interval",
        ):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number")
        if self.tftp_retries < 0:
            raise ValueError("tftp_retries must be >= 0")
        if not 8 <= self.tftp_blksize <= 65464:
            raise ValueError("tftp_blksize must be in 8..65464 (RFC 2348)")
        if self.tftp_windowsize > 64:
            raise ValueError("tftp_windowsize must be <= 64 (tftp-hpa refuses more)")


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; one token per request.

    ``reserve(now)`` always takes a token and returns the wait before the request may start
    (0.0 when a token was there). The balance may go negative: callers that reserve are queued
    in reservation order, each told its own start time, with no polling and no lost wake-ups.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def reserve(self, now: float) -> float:
        self._refill(now)
        self._tokens -= 1.0
        if self._tokens >= 0.0:
            return 0.0
        return -self._tokens / self.rate


class NodeHealth:
    """Consecutive-timeout counter with a half-open probe, per node and transport.

    ``record(timed_out, now)`` after every attempt: any answer (even "file not found" or a
    refusal) proves the node alive and resets the count; ``dead_after`` timeouts in a row mark it
    dead. ``should_attempt(now)`` says whether to send at all: always while alive; while dead,
    once per ``probe_interval`` (the probe's answer revives it).
    """

    __slots__ = ("_dead_since", "_last_probe", "consecutive_timeouts", "dead_after", "probe_interval")

    def __init__(self, dead_after: int, probe_interval: float) -> None:
        self.dead_after = dead_after
        self.probe_interval = probe_interval
        self.consecutive_timeouts = 0
        self._dead_since: float | None = None
        self._last_probe = -math.inf

    @property
    def dead(self) -> bool:
        return self._dead_since is not None

    def should_attempt(self, now: float) -> bool:
        if self._dead_since is None:
            return True
        if now - self._last_probe >= self.probe_interval:
            self._last_probe = now
            return True
        return False

    def record(self, timed_out: bool, now: float) -> None:
        if not timed_out:
            self.consecutive_timeouts = 0
            self._dead_since = None
            return
        self.consecutive_timeouts += 1
        if self._dead_since is None and self.consecutive_timeouts >= self.dead_after:
            self._dead_since = now
            self._last_probe = now
