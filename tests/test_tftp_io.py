"""The asyncio adapters end to end: ``tftp_fetch`` against ``TftpServer`` on 127.0.0.1, port 0.

Every test runs on asyncio's default loop and on uvloop; descriptor counts from /proc/self/fd
prove that no path leaks a socket.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import os
import random
import socket
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

import pytest
import uvloop

from scanner.core.evidence import Outcome
from scanner.core.tftp.client import NegotiatedOptions, TftpResult
from scanner.core.tftp.server import ServerOutcome, ServerSettings, ServerTransferResult
from scanner.lab.tftp_server import ServerStats, TftpFaults, TftpServer, serve_tftp
from scanner.net.tftp_io import TftpSocketPool, _local_host, tftp_fetch

T = TypeVar("T")


class Runner(Protocol):
    def __call__(self, coro: Coroutine[Any, Any, T], /) -> T: ...


HOST = "127.0.0.1"
RNG = random.Random(2024)
FILES = {
    "empty": b"",
    "one": b"1",
    "511": RNG.randbytes(511),
    "512": RNG.randbytes(512),
    "513": RNG.randbytes(513),
    "1428": RNG.randbytes(1428),
    "ITLFile.tlv": RNG.randbytes(5 * 1024),
    "3x1428": RNG.randbytes(3 * 1428),
    "big": RNG.randbytes(100_000),
}
# Fast timers for tests: the server retransmits after 50 ms. Client timeouts below 1 s leave
# the RFC 2349 option out, so the server keeps this setting.
FAST = ServerSettings(timeout=0.05, max_retries=8)


def run_asyncio(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def run_uvloop(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    return run_uvloop if request.param == "uvloop" else run_asyncio


def fd_count() -> int:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    return len(os.listdir("/proc/self/fd"))


async def settle() -> None:
    # Transports close their sockets one loop iteration after close().
    for _ in range(3):
        await asyncio.sleep(0)


def black_hole() -> socket.socket:
    """A bound UDP socket that never answers: the server that does not reply."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    return sock


def test_byte_exact_with_and_without_options(run: Runner) -> None:
    async def main() -> None:
        async with TftpServer(FILES.get, settings=FAST) as server:
            plain: dict[str, Any] = {"blksize": None, "windowsize": None, "tsize": False}
            jobs = [tftp_fetch(HOST, server.port, name, timeout=0.2) for name in FILES]
            jobs += [tftp_fetch(HOST, server.port, name, timeout=0.2, **plain) for name in FILES]
            results = await asyncio.gather(*jobs)
        n = len(FILES)
        for res, name in zip(results, list(FILES) * 2, strict=True):
            assert res.outcome is Outcome.OK, res
            assert res.data == FILES[name] and res.size == len(FILES[name])
            assert res.filename == name and res.peer is not None and res.peer[1] != server.port
        for res in results[:n]:
            assert res.options == NegotiatedOptions(True, 1428, 8, None, res.size)
            assert res.blocks == res.size // 1428 + 1
        for res in results[n:]:
            assert res.options == NegotiatedOptions(False, 512, 1)
            assert res.blocks == res.size // 512 + 1
        assert server.stats.ok == 2 * n and server.active == 0

    run(main())


def test_options_negotiated_down_by_the_server(run: Runner) -> None:
    async def main() -> TftpResult:
        settings = ServerSettings(timeout=0.05, max_blksize=1024, max_windowsize=4)
        async with TftpServer(FILES.get, settings=settings) as server:
            return await tftp_fetch(HOST, server.port, "big", blksize=1428, windowsize=16, timeout=0.2)

    res = run(main())
    assert res.ok and res.data == FILES["big"]
    assert res.options == NegotiatedOptions(True, 1024, 4, None, 100_000)


def test_timeout_option_is_echoed(run: Runner) -> None:
    async def main() -> TftpResult:
        async with TftpServer(FILES.get) as server:
            return await tftp_fetch(HOST, server.port, "ITLFile.tlv", timeout=2.0)

    res = run(main())
    assert res.ok and res.options.timeout == 2


def test_ten_percent_loss_still_byte_exact(run: Runner) -> None:
    async def main() -> tuple[list[TftpResult], ServerStats]:
        faults = TftpFaults(loss=0.1, seed=11)
        async with TftpServer(FILES.get, faults=faults, settings=FAST) as server:
            names = ["ITLFile.tlv", "3x1428", "big", "512"] * 6
            jobs = [
                tftp_fetch(HOST, server.port, name, timeout=0.05, retries=10, rng=random.Random(i))
                for i, name in enumerate(names)
            ]
            jobs += [
                tftp_fetch(
                    HOST, server.port, "ITLFile.tlv", blksize=None, windowsize=None, timeout=0.05, retries=10
                )
                for _ in range(6)
            ]
            return list(await asyncio.gather(*jobs)), server.stats

    results, stats = run(main())
    assert all(r.outcome is Outcome.OK for r in results), [r for r in results if not r.ok]
    for res in results:
        assert res.data == FILES[res.filename]
    assert stats.dropped > 10
    assert sum(r.retransmissions for r in results) > 0


def test_not_found_is_not_a_timeout(run: Runner) -> None:
    async def main() -> tuple[TftpResult, TftpResult, TftpResult]:
        hole = black_hole()
        with hole:
            async with TftpServer(FILES.get) as server:
                missing = await tftp_fetch(HOST, server.port, "SEP001122334455.cnf.xml", timeout=0.2)
            silent = await tftp_fetch(HOST, hole.getsockname()[1], "ITLFile.tlv", timeout=0.02, retries=2)
            async with TftpServer(FILES.get, max_active=0) as busy:  # Maximum Serving Count reached
                dropped = await tftp_fetch(HOST, busy.port, "ITLFile.tlv", timeout=0.02, retries=1)
                assert busy.stats.busy == 2
        return missing, silent, dropped

    missing, silent, dropped = run(main())
    assert missing.outcome is Outcome.NOT_FOUND
    assert (missing.error_code, missing.message) == (1, "File not found")
    assert silent.outcome is Outcome.TIMEOUT and silent.error_code is None
    assert silent.retransmissions == 2 and silent.elapsed > 0.02 * (1 + 2 + 4) * 0.8
    assert dropped.outcome is Outcome.TIMEOUT


def test_error_reply_fault_is_refused(run: Runner) -> None:
    async def main() -> TftpResult:
        faults = TftpFaults(error_reply=(2, "Access violation: lab says no"))
        async with TftpServer(FILES.get, faults=faults) as server:
            return await tftp_fetch(HOST, server.port, "ITLFile.tlv", timeout=0.2)

    res = run(main())
    assert res.outcome is Outcome.REFUSED
    assert (res.error_code, res.message) == (2, "Access violation: lab says no")


def test_truncate_fault_is_caught_by_tsize(run: Runner) -> None:
    async def main() -> tuple[TftpResult, TftpResult]:
        async with TftpServer(FILES.get, faults=TftpFaults(truncate=3000), settings=FAST) as server:
            with_tsize = await tftp_fetch(HOST, server.port, "ITLFile.tlv", timeout=0.2)
            without = await tftp_fetch(HOST, server.port, "ITLFile.tlv", tsize=False, timeout=0.2)
        return with_tsize, without

    with_tsize, without = run(main())
    assert with_tsize.outcome is Outcome.PROTOCOL_ERROR and "tsize 5120" in with_tsize.message
    # Without tsize a truncated file is indistinguishable from a short one: ask for tsize.
    assert without.ok and without.data == FILES["ITLFile.tlv"][:3000]


def test_size_cap_aborts_the_server_side_too(run: Runner) -> None:
    async def main() -> tuple[TftpResult, TftpResult, list[ServerTransferResult]]:
        done: list[ServerTransferResult] = []
        server = TftpServer(FILES.get, settings=FAST, on_transfer=done.append)
        await server.start(HOST)
        try:
            by_tsize = await tftp_fetch(HOST, server.port, "big", max_size=50_000, timeout=0.2)
            by_data = await tftp_fetch(HOST, server.port, "big", max_size=50_000, tsize=False, timeout=0.2)
            while server.active:
                await asyncio.sleep(0.01)
        finally:
            await server.stop()
        return by_tsize, by_data, done

    by_tsize, by_data, done = run(main())
    assert by_tsize.outcome is Outcome.TOO_LARGE and by_tsize.size == 0
    assert by_data.outcome is Outcome.TOO_LARGE and 0 < by_data.size <= 50_000
    assert [(r.outcome, r.error_code) for r in done] == [(ServerOutcome.ABORTED, 3)] * 2


def test_delay_fault_and_a_retransmitted_request(run: Runner) -> None:
    # Every server datagram waits 100 ms, so the client's 50 ms timer resends the RRQ and the
    # server starts a second transfer from another port: the client locks on the first reply and
    # sends ERROR 5 to the second, which the server records as aborted.
    async def main() -> tuple[TftpResult, ServerStats]:
        server = await serve_tftp(HOST, 0, FILES.get, faults=TftpFaults(delay=0.1), settings=FAST)
        try:
            res = await tftp_fetch(HOST, server.port, "3x1428", timeout=0.05, retries=6)
            while server.active:
                await asyncio.sleep(0.01)
        finally:
            server.close()
        return res, server.stats

    res, stats = run(main())
    assert res.ok and res.data == FILES["3x1428"]
    assert res.elapsed >= 0.19 and res.retransmissions >= 1  # two delayed hops; uvloop timers are ms-rounded
    assert stats.transfers >= 2 and stats.aborted >= 1 and stats.ok == 1


def test_500_concurrent_transfers_leak_no_sockets(run: Runner) -> None:
    async def main() -> tuple[int, int, list[TftpResult]]:
        before = fd_count()
        async with TftpServer(FILES.get, settings=FAST) as server:
            jobs = [tftp_fetch(HOST, server.port, "ITLFile.tlv", timeout=0.5, retries=8) for _ in range(450)]
            jobs += [tftp_fetch(HOST, server.port, "nope", timeout=0.5) for _ in range(50)]
            results = await asyncio.gather(*jobs)
        await settle()
        return before, fd_count(), list(results)

    before, after, results = run(main())
    assert after == before
    assert [r.outcome for r in results] == [Outcome.OK] * 450 + [Outcome.NOT_FOUND] * 50
    assert all(r.data == FILES["ITLFile.tlv"] for r in results[:450])


def test_cancellation_closes_the_socket(run: Runner) -> None:
    async def main() -> tuple[int, int]:
        complaints: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: complaints.append(context))
        before = fd_count()
        with black_hole() as hole:
            port = hole.getsockname()[1]
            # Cancelled at their first suspension, inside the endpoint's creation...
            early = [asyncio.create_task(tftp_fetch(HOST, port, "x", timeout=0.5)) for _ in range(20)]
            await asyncio.sleep(0)
            for task in early:
                task.cancel()
            await asyncio.gather(*early, return_exceptions=True)
            # ...mid-transfer, and by a timeout.
            tasks = [asyncio.create_task(tftp_fetch(HOST, port, "x", timeout=0.5)) for _ in range(50)]
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await tftp_fetch(HOST, port, "x", timeout=0.5)
            await asyncio.sleep(0.01)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert all(task.cancelled() for task in early + tasks)
        await settle()
        gc.collect()  # an unretrieved future exception would be reported now
        await settle()
        assert complaints == []
        return before, fd_count()

    before, after = run(main())
    assert after == before


def test_stop_mid_transfer_closes_every_server_socket(run: Runner) -> None:
    async def main() -> tuple[int, int, list[TftpResult]]:
        before = fd_count()
        server = TftpServer(FILES.get, faults=TftpFaults(delay=0.05), settings=FAST)
        await server.start(HOST, 0)
        tasks = [
            asyncio.create_task(tftp_fetch(HOST, server.port, "big", timeout=0.05, retries=1))
            for _ in range(20)
        ]
        while server.active < 20:
            await asyncio.sleep(0.005)
        await server.stop()
        assert server.active == 0
        server.close()  # idempotent
        results = await asyncio.gather(*tasks)
        await settle()
        return before, fd_count(), list(results)

    before, after, results = run(main())
    assert after == before
    assert all(r.outcome is Outcome.TIMEOUT for r in results)


def test_ipv6_loopback(run: Runner) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")

    async def main() -> TftpResult:
        async with TftpServer(FILES.get, settings=FAST) as server:
            await server.stop()
        server = await serve_tftp("::1", 0, FILES.get, settings=FAST)
        try:
            return await tftp_fetch("::1", server.port, "ITLFile.tlv", timeout=0.2)
        finally:
            server.close()

    res = run(main())
    assert res.ok and res.data == FILES["ITLFile.tlv"] and res.peer is not None and res.peer[0] == "::1"


def test_server_misuse(run: Runner) -> None:
    async def main() -> None:
        server = TftpServer(FILES.get)
        with pytest.raises(ValueError, match="IP address literal"):
            await server.start("localhost")
        await server.start(HOST)
        try:
            with pytest.raises(RuntimeError):
                await server.start(HOST)
            assert server.host == HOST and server.port > 0
        finally:
            server.close()

    run(main())


def test_requests_that_are_not_requests_are_ignored(run: Runner) -> None:
    async def main() -> ServerStats:
        async with TftpServer(FILES.get) as server:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((HOST, 0))
                sock.sendto(b"\x00\x04\x00\x01", (HOST, server.port))  # an ACK to port 69
                sock.sendto(b"\x00\x02f\x00octet\x00", (HOST, server.port))  # WRQ: rejected
                while server.stats.requests < 2:
                    await asyncio.sleep(0.005)
            return server.stats

    stats = run(main())
    assert (stats.requests, stats.ignored, stats.rejected) == (2, 1, 1)


def test_local_host_defaults() -> None:
    ip = ipaddress.ip_address
    assert _local_host(socket.AF_INET, ip("127.1.2.3"), None) == "127.0.0.1"
    assert _local_host(socket.AF_INET6, ip("::1"), None) == "::1"
    assert _local_host(socket.AF_INET, ip("192.0.2.1"), None) == "0.0.0.0"
    assert _local_host(socket.AF_INET6, ip("2001:db8::1"), None) == "::"
    assert _local_host(socket.AF_INET, ip("192.0.2.1"), "127.0.0.5") == "127.0.0.5"


@pytest.mark.parametrize("kw", [{"loss": 1.5}, {"delay": -1.0}, {"truncate": -1}])
def test_bad_faults(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TftpFaults(**kw)


def test_a_failing_lookup_is_reported_and_answered(run: Runner) -> None:
    def lookup(name: str) -> bytes | None:
        if name == "boom":
            raise KeyError(name)
        return FILES.get(name)

    async def main() -> tuple[TftpResult, TftpResult, list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: seen.append(context))
        async with TftpServer(lookup) as server:
            boom = await tftp_fetch(HOST, server.port, "boom", timeout=0.2)
            fine = await tftp_fetch(HOST, server.port, "one", timeout=0.2)
            assert server.stats.lookup_errors == 1
        return boom, fine, seen

    boom, fine, seen = run(main())
    assert boom.outcome is Outcome.REFUSED and boom.error_code == 0
    assert fine.ok
    assert [type(c["exception"]) for c in seen] == [KeyError]


# ---------------------------------------------------------------------------------------------
# TftpSocketPool


def test_pool_reuses_sockets_and_closes_them_all(run: Runner) -> None:
    async def main() -> tuple[int, int, int, list[TftpResult], TftpSocketPool]:
        before = fd_count()
        async with TftpServer(FILES.get, settings=FAST) as server, TftpSocketPool(quiet=0) as pool:
            results: list[TftpResult] = []
            for _ in range(3):  # waves: the second and third reuse the first's sockets
                jobs = [tftp_fetch(HOST, server.port, name, timeout=0.5, pool=pool) for name in FILES]
                jobs += [tftp_fetch(HOST, server.port, "nope", timeout=0.5, pool=pool)]
                results += await asyncio.gather(*jobs)
            during = fd_count()
        await settle()
        return before, during, fd_count(), results, pool

    before, during, after, results, pool = run(main())
    assert after == before and during > before
    per_wave = len(FILES) + 1
    assert pool.created <= per_wave and pool.reused >= 2 * per_wave
    for i, res in enumerate(results):
        name = [*FILES, "nope"][i % per_wave]
        if name == "nope":
            assert res.outcome is Outcome.NOT_FOUND
        else:
            assert res.outcome is Outcome.OK and res.data == FILES[name], res


def test_pool_parks_sockets_after_unclean_transfers(run: Runner) -> None:
    """A timeout or a cancellation never returns a socket to the idle list: it stays parked
    (bound, so its port cannot be handed out while the server may still send to it)."""

    async def main() -> tuple[int, int, int, int, TftpSocketPool]:
        before = fd_count()
        async with TftpSocketPool() as pool:
            with black_hole() as hole:
                port = hole.getsockname()[1]
                res = await tftp_fetch(HOST, port, "x", timeout=0.02, retries=1, pool=pool)
                assert res.outcome is Outcome.TIMEOUT
                tasks = [
                    asyncio.create_task(tftp_fetch(HOST, port, "x", timeout=0.5, pool=pool)) for _ in range(5)
                ]
                await asyncio.sleep(0.01)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            await settle()
            during, parked = pool.open_sockets, pool.parked_sockets
        await settle()
        return before, fd_count(), during, parked, pool

    before, after, during, parked, pool = run(main())
    assert during == parked == 6 and pool.parked == 6 and pool.reused == 0
    assert after == before  # close() closes parked sockets too


def test_parked_sockets_serve_again_after_the_linger(run: Runner) -> None:
    async def main() -> tuple[TftpResult, TftpResult, TftpSocketPool]:
        async with TftpServer(FILES.get, settings=FAST) as server, TftpSocketPool(linger=0.05, quiet=0) as pool:
            with black_hole() as hole:
                res = await tftp_fetch(HOST, hole.getsockname()[1], "x", timeout=0.02, retries=0, pool=pool)
            assert res.outcome is Outcome.TIMEOUT and pool.parked_sockets == 1
            early = await tftp_fetch(HOST, server.port, "one", timeout=0.5, pool=pool)
            assert pool.created == 2  # the parked socket was not lent
            await asyncio.sleep(0.06)
            late = await tftp_fetch(HOST, server.port, "one", timeout=0.5, pool=pool)
        return early, late, pool

    early, late, pool = run(main())
    assert early.ok and late.ok and late.data == b"1"
    assert pool.reused == 1 and pool.created == 2 and pool.parked_sockets == 0


def test_a_bind_on_a_dirty_port_is_parked_and_another_taken(run: Runner) -> None:
    """A port closed while a server may still send to it is dirty: a new socket that the
    kernel binds to it is held (parked) and another one bound."""

    async def main() -> tuple[TftpResult, int, int, TftpSocketPool]:
        async with TftpServer(FILES.get, settings=FAST) as server, TftpSocketPool(max_parked=0) as pool:
            with black_hole() as hole:
                res = await tftp_fetch(HOST, hole.getsockname()[1], "x", timeout=0.02, retries=0, pool=pool)
            assert res.outcome is Outcome.TIMEOUT and pool.parked_sockets == 0  # no room: closed
            (dirty,) = {key[2] for key in pool._dirty}
            pool._max_parked = 8
            await settle()  # the transport closes its socket one loop iteration later
            real_bind = socket.socket.bind
            forced = []

            def bind(self: socket.socket, address: Any) -> None:
                if not forced and self.type == socket.SOCK_DGRAM and address == (HOST, 0):
                    forced.append(1)
                    address = (HOST, dirty)  # the kernel happens to hand out the dirty port
                real_bind(self, address)

            socket.socket.bind = bind  # type: ignore[method-assign]
            try:
                ok = await tftp_fetch(HOST, server.port, "one", timeout=0.5, pool=pool)
            finally:
                socket.socket.bind = real_bind  # type: ignore[method-assign]
        return ok, dirty, len(forced), pool

    ok, _dirty, forced, pool = run(main())
    assert forced == 1 and ok.ok and ok.data == b"1"
    assert pool.dirty_binds == 1 and pool.created == 3


async def _recv(sock: socket.socket) -> tuple[bytes, Any]:
    for _ in range(500):
        try:
            return sock.recvfrom(2048)
        except BlockingIOError:
            await asyncio.sleep(0.002)
    raise AssertionError("nothing received")


def test_pool_keeps_late_datagrams_of_an_earlier_transfer_away(run: Runner) -> None:
    """A late DATA from the previous transfer's server TID reaches the pooled socket while the
    next transfer waits for its first reply: it is answered ERROR 5, not taken as the reply."""

    async def main() -> tuple[TftpResult, TftpResult, bytes, bytes, TftpSocketPool]:
        plain: dict[str, Any] = {"blksize": None, "windowsize": None, "tsize": False, "timeout": 0.5}
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as requests,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tid,
            black_hole() as hole,
        ):
            for s in (requests, tid):
                s.bind((HOST, 0))
                s.setblocking(False)
            async with TftpSocketPool(quiet=0) as pool:
                # A hand-played server: the request port, and a transfer from TID ``tid``.
                task = asyncio.create_task(
                    tftp_fetch(HOST, requests.getsockname()[1], "one", pool=pool, **plain)
                )
                rrq, client = await _recv(requests)
                assert rrq.startswith(b"\x00\x01one\x00")
                tid.sendto(b"\x00\x03\x00\x011", client)
                first = await task
                ack, _ = await _recv(tid)
                # The next transfer gets the same socket; the old TID sends a late DATA 1.
                task = asyncio.create_task(
                    tftp_fetch(HOST, hole.getsockname()[1], "x", timeout=0.1, retries=1, pool=pool)
                )
                await asyncio.sleep(0.01)
                tid.sendto(b"\x00\x03\x00\x01late", client)
                second = await task
                reply, _ = await _recv(tid)
        return first, second, ack, reply, pool

    first, second, ack, reply, pool = run(main())
    assert first.ok and first.data == b"1" and ack == b"\x00\x04\x00\x01"
    assert pool.created == 1 and pool.reused == 1
    assert second.outcome is Outcome.TIMEOUT and second.data == b"" and second.peer is None
    assert reply[:4] == b"\x00\x05\x00\x05"  # ERROR 5 Unknown transfer ID


def test_pool_refuses_an_oack_from_a_server_port_that_comes_round_again(run: Runner) -> None:
    """An earlier transfer's server TID is barred for the linger: even an OACK from it (a
    retransmitted one may arrive late, reordered) is refused with ERROR 5. If it was the
    server's new transfer on a port that came round again, that costs one retransmission."""

    async def main() -> tuple[TftpResult, TftpResult, bytes, TftpSocketPool]:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as requests,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tid,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tid2,
        ):
            for s in (requests, tid, tid2):
                s.bind((HOST, 0))
                s.setblocking(False)
            port = requests.getsockname()[1]
            async with TftpSocketPool(quiet=0) as pool:
                plain: dict[str, Any] = {"blksize": None, "windowsize": None, "tsize": False}
                task = asyncio.create_task(tftp_fetch(HOST, port, "one", timeout=0.5, pool=pool, **plain))
                _, client = await _recv(requests)
                tid.sendto(b"\x00\x03\x00\x011", client)
                first = await task
                await _recv(tid)  # its ACK
                opts: dict[str, Any] = {"blksize": 1024, "windowsize": None, "tsize": False}
                task = asyncio.create_task(tftp_fetch(HOST, port, "two", timeout=0.1, pool=pool, **opts))
                rrq, client2 = await _recv(requests)
                assert client2 == client and b"blksize\x001024\x00" in rrq
                tid.sendto(b"\x00\x06blksize\x001024\x00", client)  # the same TID again
                refusal, _ = await _recv(tid)
                await _recv(requests)  # the retransmitted request
                tid2.sendto(b"\x00\x06blksize\x001024\x00", client)
                ack0, _ = await _recv(tid2)
                assert ack0 == b"\x00\x04\x00\x00"
                tid2.sendto(b"\x00\x03\x00\x01two", client)
                second = await task
        return first, second, refusal, pool

    first, second, refusal, pool = run(main())
    assert refusal[:4] == b"\x00\x05\x00\x05"
    assert first.ok and second.ok and second.data == b"two" and second.retransmissions == 1
    assert second.strays == 1 and pool.strays == 1
    assert pool.created == 1 and pool.reused == 1


def test_a_duplicated_request_cannot_feed_the_next_transfer(run: Runner) -> None:
    """The network duplicates our request: the server runs a second transfer we never hear of,
    whose DATA 1 arrives 30 ms after the first transfer ended cleanly. With a socket reused at
    once it was taken for the next transfer's first reply, and phone A's config stored as phone
    B's (found in review; check_fetched cannot tell two phones' plain configs apart). The quiet
    time keeps the socket away from new transfers until such a late reply has come and been
    barred."""

    async def main() -> tuple[TftpResult, TftpResult, TftpSocketPool, bool, bytes]:
        plain: dict[str, Any] = {"blksize": None, "windowsize": None, "tsize": False}
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as requests,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tid,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tid2,
        ):
            for s in (requests, tid, tid2):
                s.bind((HOST, 0))
                s.setblocking(False)
            port = requests.getsockname()[1]
            async with TftpSocketPool() as pool:
                task = asyncio.create_task(tftp_fetch(HOST, port, "A", timeout=0.3, pool=pool, **plain))
                _, client = await _recv(requests)
                tid.sendto(b"\x00\x03\x00\x01<device>A</device>", client)
                first = await task
                await _recv(tid)  # its ACK
                # The next transfer starts at once; the duplicate's DATA 1 comes 30 ms later.
                task = asyncio.create_task(tftp_fetch(HOST, port, "B", timeout=0.3, pool=pool, **plain))
                _, client_b = await _recv(requests)
                await asyncio.sleep(0.03)
                # To the first transfer's port: the old code had given it to B, which took this
                # for B's reply. Now the port is idle and quiet: refused, barred, answered ERROR 5.
                tid.sendto(b"\x00\x03\x00\x01<device>A</device>", client)
                refusal, _ = await _recv(tid)
                tid2.sendto(b"\x00\x03\x00\x01<device>B</device>", client_b)
                second = await task
        return first, second, pool, client != client_b, refusal

    first, second, pool, fresh_port, refusal = run(main())
    assert fresh_port, "a socket whose transfer just ended is not handed to the next one"
    assert refusal[:4] == b"\x00\x05\x00\x05" and pool.strays >= 1
    assert first.ok and first.data == b"<device>A</device>"
    assert second.ok and second.data == b"<device>B</device>", second
    assert pool.created == 2 and pool.reused == 0
