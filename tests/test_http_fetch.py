"""HTTP 6970 / phone pages against loopback servers: every failure is an outcome, never a crash."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from scanner.core.evidence import Outcome
from scanner.net.http_fetch import HttpFetcher, HttpResult, HttpSettings
from scanner.net.phone_web import fetch_phone_pages, phone_url
from tests.pki import make_cert, rsa_key

ITL = b"\x01\x00\x02\x01\x02" + bytes(range(256)) * 20


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


async def start_app(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    server = site._server
    assert server is not None
    port: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return runner, port


def tftp_app(connections: list[object]) -> web.Application:
    async def itl(request: web.Request) -> web.Response:
        connections.append(request.transport)
        return web.Response(body=ITL)

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, text="Maximum Serving Count reached")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(body=b"late")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000)

    async def big_chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b"y" * 1000)
        await resp.write_eof()
        return resp

    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "10000"})
        await resp.prepare(request)
        await resp.write(b"z" * 100)
        assert request.transport is not None
        request.transport.close()
        return resp

    app = web.Application()
    app.router.add_get("/ITLFile.tlv", itl)
    app.router.add_get("/busy", busy)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    app.router.add_get("/chunked", big_chunked)
    app.router.add_get("/cut", cut)
    return app


def run(factory: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(factory())  # type: ignore[arg-type]


def test_outcomes() -> None:
    async def main() -> None:
        connections: list[object] = []
        runner, port = await start_app(tftp_app(connections))
        base = f"http://127.0.0.1:{port}"
        try:
            settings = HttpSettings(timeout=0.5, max_size=4096)
            async with HttpFetcher(settings) as f:
                results = await asyncio.gather(
                    *(f.get(f"{base}/ITLFile.tlv", max_size=1 << 20) for _ in range(20))
                )
                assert all(r.outcome is Outcome.OK and r.data == ITL for r in results)
                for _ in range(5):  # sequential requests reuse kept-alive connections
                    assert (await f.get(f"{base}/ITLFile.tlv", max_size=1 << 20)).outcome is Outcome.OK
                assert len({id(c) for c in connections}) <= 20
                r = await f.get(f"{base}/nothing")
                assert (r.outcome, r.status) == (Outcome.NOT_FOUND, 404)
                r = await f.get(f"{base}/busy")
                assert r.outcome is Outcome.REFUSED and r.error == "HTTP 503 Service Unavailable"
                r = await f.get(f"{base}/slow")
                assert r.outcome is Outcome.TIMEOUT and r.duration < 1.5
                r = await f.get(f"{base}/big")
                assert r.outcome is Outcome.TOO_LARGE and "Content-Length 5000" in (r.error or "")
                r = await f.get(f"{base}/chunked")
                assert r.outcome is Outcome.TOO_LARGE and r.data is None
                r = await f.get(f"{base}/cut", max_size=1 << 20)
                assert r.outcome is Outcome.PROTOCOL_ERROR
                r = await f.get(f"http://127.0.0.1:{free_port()}/x")
                assert r.outcome is Outcome.REFUSED
        finally:
            await runner.cleanup()

    run(main)


def test_garbage_and_stalled_servers() -> None:
    async def main() -> None:
        release = asyncio.Event()

        async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1000)
            writer.write(b"\x00\x01garbage that is not HTTP\r\n\r\n")
            await writer.drain()
            writer.close()

        async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1000)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")  # then nothing
            await writer.drain()
            try:
                await release.wait()
            finally:
                writer.close()

        g = await asyncio.start_server(garbage, "127.0.0.1", 0)
        s = await asyncio.start_server(stall, "127.0.0.1", 0)
        try:
            async with HttpFetcher(HttpSettings(timeout=0.5)) as f:
                r = await f.get(f"http://127.0.0.1:{g.sockets[0].getsockname()[1]}/ITLFile.tlv")
                assert r.outcome is Outcome.PROTOCOL_ERROR, r
                r = await f.get(f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}/ITLFile.tlv")
                assert r.outcome is Outcome.TIMEOUT, r
        finally:
            release.set()
            g.close()
            s.close()
            await g.wait_closed()
            await s.wait_closed()

    run(main)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("https")
    key = rsa_key(2048, 2)
    cert = make_cert("127.0.0.1", key)
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return d / "cert.pem", d / "key.pem"


def test_https_with_and_without_verification(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files

    async def main() -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        runner, port = await start_app(tftp_app([]), ctx)
        url = f"https://127.0.0.1:{port}/ITLFile.tlv"
        try:
            async with HttpFetcher(HttpSettings(timeout=2.0)) as f:  # system CAs: self-signed refused
                r = await f.get(url)
                assert r.outcome is Outcome.PROTOCOL_ERROR and "TLS" in (r.error or "")
            async with HttpFetcher(HttpSettings(timeout=2.0, verify=False)) as f:  # phones
                assert (await f.get(url)).data == ITL
        finally:
            await runner.cleanup()

    run(main)


def phone_app(mode: str) -> web.Application:
    async def config(request: web.Request) -> web.Response:
        if mode == "disabled":
            return web.Response(status=403, text="Forbidden")
        if request.query.get("adapter") == "device.statistics.configuration" and mode == "old":
            return web.Response(status=404)
        return web.Response(body=b"<html>CTL signature BD 03</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/CGI/Java/Serviceability", config)
    app.router.add_get("/NetworkConfiguration", config)
    app.router.add_get("/", config)
    return app


def test_phone_pages() -> None:
    async def main() -> None:
        async with HttpFetcher(HttpSettings(timeout=0.5)) as f:
            for mode in ("new", "old", "disabled"):
                runner, port = await start_app(phone_app(mode))
                try:
                    pages = await fetch_phone_pages(f, "http", "127.0.0.1", port, timeout=0.5)
                finally:
                    await runner.cleanup()
                assert [p.page for p in pages] == ["network-setup", "status-messages", "device-information"]
                if mode == "disabled":
                    assert all(p.outcome is Outcome.DISABLED for p in pages)
                    assert "not requested" in (pages[1].error or "")
                else:
                    assert all(p.outcome is Outcome.OK for p in pages)
                if mode == "old":
                    assert pages[0].url.endswith("/NetworkConfiguration")
            pages = await fetch_phone_pages(f, "http", "127.0.0.1", free_port(), timeout=0.5)
            assert [p.outcome for p in pages] == [Outcome.REFUSED] * 3

    run(main)


def test_phone_url() -> None:
    assert phone_url("http", "127.0.0.1", 80, "/x") == "http://127.0.0.1/x"
    assert phone_url("https", "::1", 8443, "/x") == "https://[::1]:8443/x"


# ---------------------------------------------------------------------------------------------
# Keep-alive, bodies, and answers no file server should give


def test_keep_alive_bodies_and_stale_connections() -> None:
    async def main() -> None:
        connections = 0
        writers: list[asyncio.StreamWriter] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            writers.append(writer)
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    path = head.split(b" ")[1]
                    assert b"Accept-Encoding: identity" in head
                    if path == b"/missing":
                        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")
                    elif path == b"/chunked":
                        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                        writer.write(b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n")
                    elif path == b"/http10":
                        writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil close")
                        await writer.drain()
                        writer.close()
                        return
                    elif path == b"/once":  # answers, then drops the connection without saying so
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce")
                        await writer.drain()
                        writer.close()
                        return
                    else:
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(ITL), ITL))
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            async with HttpFetcher(HttpSettings(timeout=1.0)) as f:
                for _ in range(5):
                    r = await f.get(f"{base}/ITLFile.tlv")
                    assert r.outcome is Outcome.OK and r.data == ITL and r.status == 200
                    r = await f.get(f"{base}/missing")
                    assert (r.outcome, r.status, r.error) == (Outcome.NOT_FOUND, 404, "HTTP 404")
                    r = await f.get(f"{base}/chunked")
                    assert r.outcome is Outcome.OK and r.data == b"abcde"
                assert connections == 1  # 404s and chunked bodies keep the connection
                r = await f.get(f"{base}/http10")
                assert r.outcome is Outcome.OK and r.data == b"until close"
                r = await f.get(f"{base}/once")
                assert r.outcome is Outcome.OK and r.data == b"once"
                await asyncio.sleep(0.05)
                # The kept connection was closed by the server: the request goes on a new one.
                r = await f.get(f"{base}/ITLFile.tlv")
                assert r.outcome is Outcome.OK and r.data == ITL
        finally:
            for w in writers:
                w.close()
            server.close()
            await server.wait_closed()
            await asyncio.sleep(0.01)

    run(main)


def test_a_connect_timeout_is_a_timeout_not_a_refusal() -> None:
    """A SYN nobody answers: a listener whose accept queue is full drops it (Linux), so the
    connection attempt hangs as it would towards a filtered node."""

    async def main() -> HttpResult:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        queued: list[socket.socket] = []
        try:
            for _ in range(3):  # more than the queue holds
                s = socket.socket()
                s.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    s.connect(("127.0.0.1", port))
                queued.append(s)
            await asyncio.sleep(0.05)
            async with HttpFetcher(HttpSettings(timeout=5.0, connect_timeout=0.2)) as f:
                return await f.get(f"http://127.0.0.1:{port}/x")
        finally:
            for s in queued:
                s.close()
            listener.close()

    r = asyncio.run(main())
    assert (r.outcome, r.error, r.status) == (Outcome.TIMEOUT, "no answer in time", None)


# -- a response head a file server would never send is a protocol error, never a crash ----------

ABSURD_HEADS = {
    "thousands of digits": b"Content-Length: " + b"9" * 5000,
    "negative": b"Content-Length: -5",
    "signed": b"Content-Length: +5",
    "non-numeric": b"Content-Length: five",
    "empty": b"Content-Length: ",
    "two numbers": b"Content-Length: 5 5",
    "a list": b"Content-Length: 5, 6",
    "duplicated, different": b"Content-Length: 5\r\nContent-Length: 6",
    "duplicated, thousands of digits": b"Content-Length: 5\r\nContent-Length: " + b"5" * 5000,
    # RFC 9110 §8.6 lets a recipient refuse the same length twice, and aiohttp's parser does.
    "duplicated, same": b"Content-Length: 5\r\nContent-Length: 5",
    "non-ASCII digits": "Content-Length: \u0665".encode(),
}
ABSURD_CHUNKS = {
    "0x prefix": b"0x5",
    "signed": b"+5",
    "underscore": b"1_0",
    "thousands of hex digits": b"f" * 5000,
    "empty": b"",
}


async def _raw_server(answers: list[bytes]) -> asyncio.Server:
    """Each connection gets the next answer, then is closed."""
    pending = list(answers)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1000)
        writer.write(pending.pop(0))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _fetch_all(answers: list[bytes]) -> list[HttpResult]:
    """One request per answer, one after the other, each on a new connection."""

    async def main() -> list[HttpResult]:
        server = await _raw_server(answers)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/ITLFile.tlv"
        try:
            async with HttpFetcher(HttpSettings(timeout=2.0)) as f:
                results = []
                for _ in answers:
                    results.append(await f.get(url))
                    await asyncio.sleep(0)  # let the closed connection leave the pool
                return results
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


def _fetch_raw(answer: bytes) -> tuple[Outcome, str | None, int | None]:
    r = _fetch_all([answer])[0]
    return r.outcome, r.error, r.expected_size


@pytest.mark.parametrize("header", list(ABSURD_HEADS.values()), ids=list(ABSURD_HEADS))
def test_an_absurd_content_length_is_a_protocol_error(header: bytes) -> None:
    outcome, error, size = _fetch_raw(b"HTTP/1.1 200 OK\r\n" + header + b"\r\n\r\nhello")
    assert outcome is Outcome.PROTOCOL_ERROR, error
    assert size is None and error is not None and len(error) <= 250  # no 5 KB error texts


@pytest.mark.parametrize("size", list(ABSURD_CHUNKS.values()), ids=list(ABSURD_CHUNKS))
def test_an_absurd_chunk_size_is_a_protocol_error(size: bytes) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    outcome, error, _ = _fetch_raw(head + size + b"\r\nhello\r\n0\r\n\r\n")
    assert outcome is Outcome.PROTOCOL_ERROR, error


def test_content_length_is_the_expected_size() -> None:
    outcome, error, size = _fetch_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    assert (outcome, error, size) == (Outcome.OK, None, 5)
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert _fetch_raw(head) == (Outcome.OK, None, None)


def test_random_heads_give_an_outcome_never_an_exception() -> None:
    """Mutated heads (bytes inserted, cut, long digit runs) end in an outcome: ``ok`` with the body
    as sent, or ``protocol_error``; nothing escapes ``HttpFetcher.get``."""
    base = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close"
    alphabet = b"0123456789:-+ \r\n\t,;abcxHTTP/\x00\xff"
    body = b"5\r\nhello\r\n0\r\n\r\n"
    rng = random.Random(9)
    answers = []
    for _ in range(150):
        head = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(head) + 1)
            op = rng.randrange(3)
            if op == 0:
                head[at:at] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
            elif op == 1:
                del head[at : at + rng.randint(1, 8)]
            else:
                head[at:at] = b"9" * rng.choice((10, 5000))
        answers.append(bytes(head) + b"\r\n\r\n" + body)
    outcomes = set()
    for r in _fetch_all(answers):
        outcomes.add(r.outcome)
        assert r.outcome in (Outcome.OK, Outcome.PROTOCOL_ERROR), r
        assert r.error is None or len(r.error) <= 250
        if r.outcome is Outcome.OK:  # chunked, the announced length, or up to the close
            assert r.data in (b"hello", body[: r.expected_size or len(body)]), r
    assert Outcome.PROTOCOL_ERROR in outcomes  # the mutations do reach the parser
