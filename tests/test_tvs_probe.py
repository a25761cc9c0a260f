"""TVS probe: the server certificate is captured although the server demands a client
certificate we do not have, under TLS 1.2 (handshake fails) and TLS 1.3 (client side completes)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from scanner.core.evidence import Outcome
from scanner.core.tls_sniffer import CertificateSniffer
from scanner.net.tvs_probe import probe_tvs
from tests.pki import make_cert, rsa_key


@pytest.fixture(scope="module")
def server_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes]:
    d = tmp_path_factory.mktemp("tvs")
    key = rsa_key(2048, 1)
    cert = make_cert("TVS_src-pub", key)
    der = cert.public_bytes(serialization.Encoding.DER)
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return d / "cert.pem", d / "key.pem", der


def server_context(
    files: tuple[Path, Path, bytes], version: ssl.TLSVersion, cipher: str | None = None
) -> ssl.SSLContext:
    cert, key, _ = files
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.minimum_version = ctx.maximum_version = version
    if cipher:
        ctx.set_ciphers(cipher)
    # Demand a client certificate, as TVS does; trust only our own cert as CA so nothing passes.
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cert)
    return ctx


async def _serve(ctx: ssl.SSLContext) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.read(100)
        writer.close()

    loop = asyncio.get_running_loop()
    # Handshake failures on the server side are expected: keep them out of the loop's log.
    loop.set_exception_handler(lambda _loop, _ctx: None)
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    return server, server.sockets[0].getsockname()[1]


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("version", "cipher"),
    [(ssl.TLSVersion.TLSv1_2, None), (ssl.TLSVersion.TLSv1_2, "AES256-SHA"), (ssl.TLSVersion.TLSv1_3, None)],
)
def test_certificate_captured_despite_client_cert_demand(
    server_files: tuple[Path, Path, bytes], version: ssl.TLSVersion, cipher: str | None
) -> None:
    async def main() -> None:
        server, port = await _serve(server_context(server_files, version, cipher))
        async with server:
            result = await probe_tvs("127.0.0.1", port, timeout=5.0)
        assert result.outcome is Outcome.OK, result
        assert result.certificate == server_files[2]
        if version is ssl.TLSVersion.TLSv1_2:
            assert not result.handshake_completed
            assert result.client_cert_requested is True
            assert result.tls_version == "TLSv1.2"
            assert result.error is not None and "certificate captured" in result.error
            if cipher:
                assert result.cipher == "0x0035"  # TLS_RSA_WITH_AES_256_CBC_SHA
        else:
            assert result.handshake_completed and result.tls_version == "TLSv1.3"

    run(main())


def test_refused_and_timeout() -> None:
    async def main() -> None:
        # A port nobody listens on: bind, note the port, close.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        r = await probe_tvs("127.0.0.1", port, timeout=2.0)
        assert r.outcome is Outcome.REFUSED
        # A server that accepts and never speaks TLS: the handshake stalls until our timeout.
        release = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await release.wait()
            finally:
                writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        async with server:
            r = await probe_tvs("127.0.0.1", server.sockets[0].getsockname()[1], timeout=0.3)
            assert r.outcome is Outcome.TIMEOUT
            release.set()
            await asyncio.sleep(0.01)

    run(main())


def test_garbage_server_is_a_protocol_error() -> None:
    async def main() -> None:
        async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 10)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(garbage, "127.0.0.1", 0)
        async with server:
            r = await probe_tvs("127.0.0.1", server.sockets[0].getsockname()[1], timeout=2.0)
        assert r.outcome is Outcome.PROTOCOL_ERROR and r.certificate is None

    run(main())


def _record(ctype: int, body: bytes) -> bytes:
    return bytes([ctype, 3, 3]) + len(body).to_bytes(2, "big") + body


def _hs(mtype: int, body: bytes) -> bytes:
    return bytes([mtype]) + len(body).to_bytes(3, "big") + body


def _split(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_sniffer_reassembles_across_records_and_reads(chunk: int) -> None:
    certs = [b"A" * 300, b"B" * 20]
    entries = b"".join(len(c).to_bytes(3, "big") + c for c in certs)
    cert_msg = _hs(11, len(entries).to_bytes(3, "big") + entries)
    hello = _hs(2, b"\x03\x03" + b"r" * 32 + b"\x00" + b"\x00\x35" + b"\x00")
    stream = hello + cert_msg + _hs(13, b"\x01\x01\x00\x00") + _hs(14, b"")
    # The handshake messages split over two records, mid-message.
    records = _record(22, stream[:100]) + _record(22, stream[100:]) + _record(21, b"\x02\x28")
    s = CertificateSniffer()
    for piece in _split(records, chunk):
        s.feed(piece)
    assert s.certificates == tuple(certs)
    assert s.client_cert_requested and s.version == "TLSv1.2" and s.cipher_suite == 0x35
    assert s.alert == "handshake_failure"


def test_sniffer_never_raises_on_garbage() -> None:
    s = CertificateSniffer()
    s.feed(b"\x16\x03\x03\x00\x05" + b"\x0b\xff\xff\xff\x00")  # a certificate message claiming 16 MB
    s.feed(b"\x16\x03\x03\x00\x04" + b"\x0b\x00\x00\x00")
    assert s.certificates == ()
    s2 = CertificateSniffer()
    s2.feed(b"GET / HTTP/1.1\r\n")
    assert s2.stopped and s2.certificates == ()
