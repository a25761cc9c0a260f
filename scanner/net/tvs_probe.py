"""Capture a TVS server's certificate over TLS (TCP 2445) without a client certificate.

TVS asks the client (a phone) for its certificate; the scanner has none. What happens then:

* **TLS 1.3**: the server's Certificate arrives (encrypted) in its first flight; the client
  answers with an empty Certificate and its Finished and, from its side, the handshake is
  complete: ``getpeercert(binary_form=True)`` returns the server certificate. The server's
  ``certificate_required`` alert comes afterwards and only spoils the first read.
* **TLS 1.2 and older** (the TVS debug log in Cisco's guide to migrating phones between secure
  clusters shows a phone's session on AES256-SHA): the server's Certificate arrives
  in plaintext before its CertificateRequest; the server aborts the handshake when it receives the
  client's empty Certificate, so the client's ``do_handshake`` fails and Python's ssl module
  refuses ``getpeercert`` on an unfinished handshake. So the handshake is driven through
  ``ssl.MemoryBIO``/``SSLObject`` and every byte the server sends is also fed to a small
  sans-IO TLS record reader (``CertificateSniffer``) that picks the certificate list out of the
  plaintext handshake messages as they arrive.

The probe verifies nothing (CERT_NONE): it collects the certificate for the analysis, which
checks it against the TVS records of the phone's ITL. It allows TLS 1.0 and weak ciphers for
the same reason (old TVS servers); nothing secret is ever sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
import time
import warnings
from dataclasses import dataclass, field

from scanner.core.evidence import Outcome
from scanner.core.tls_sniffer import CertificateSniffer

__all__ = ["TvsProbeResult", "probe_tvs", "tvs_client_context"]

# Bytes read per socket read: one server flight fits in a few of these.
READ_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class TvsProbeResult:
    outcome: Outcome
    certificate: bytes | None  # DER of the server's (leaf) certificate
    chain: tuple[bytes, ...] = field(default=())  # as sent, when seen in plaintext (TLS ≤ 1.2)
    tls_version: str | None = None
    cipher: str | None = None
    client_cert_requested: bool | None = None  # None: not visible (TLS 1.3)
    handshake_completed: bool = False
    error: str | None = None
    duration: float = 0.0


def tvs_client_context() -> ssl.SSLContext:
    """No verification, no client certificate, TLS 1.0 to 1.3, any cipher an old TVS may pick."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        # TLSv1 is deprecated in Python's ssl; 7900-era CUCM TVS still speaks it (spec §3.1).
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:  # an OpenSSL without security levels
        ctx.set_ciphers("ALL")
    return ctx


async def probe_tvs(
    host: str,
    port: int,
    *,
    timeout: float = 8.0,
    context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> TvsProbeResult:
    """Connect, run the TLS handshake as far as the server lets us, return the certificate."""
    start = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            return await _probe(host, port, context or tvs_client_context(), server_hostname, start)
    except TimeoutError:
        return TvsProbeResult(
            Outcome.TIMEOUT, None, error="no answer in time", duration=time.monotonic() - start
        )


async def _probe(
    host: str, port: int, ctx: ssl.SSLContext, server_hostname: str | None, start: float
) -> TvsProbeResult:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError as exc:
        return TvsProbeResult(
            Outcome.REFUSED, None, error=f"connect failed: {exc}", duration=time.monotonic() - start
        )
    except socket.gaierror as exc:
        return TvsProbeResult(
            Outcome.REFUSED, None, error=f"name resolution failed: {exc}", duration=time.monotonic() - start
        )
    except OSError as exc:
        outcome = (
            Outcome.TIMEOUT
            if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT)
            else Outcome.REFUSED
        )
        return TvsProbeResult(
            outcome, None, error=f"connect failed: {exc}", duration=time.monotonic() - start
        )
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_side=False, server_hostname=server_hostname)
    sniffer = CertificateSniffer()
    failure: str | None = None
    done = False
    try:
        while True:
            try:
                tls.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                failure = f"TLS handshake failed: {exc.reason or exc}"
            pending = outgoing.read()
            if pending:
                writer.write(pending)
                try:
                    await writer.drain()
                except ConnectionError as exc:
                    failure = failure or f"connection lost: {exc}"
            if done or failure is not None:
                break
            try:
                data = await reader.read(READ_SIZE)
            except ConnectionError as exc:
                failure = f"connection lost: {exc}"
                break
            if not data:
                incoming.write_eof()
                failure = "server closed the connection during the handshake"
                # One more step lets the TLS layer report an alert it already received.
                try:
                    tls.do_handshake()
                    done, failure = True, None
                except ssl.SSLError as exc:
                    failure = f"TLS handshake failed: {exc.reason or exc}"
                break
            sniffer.feed(data)
            incoming.write(data)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
            await writer.wait_closed()
    duration = time.monotonic() - start
    if done:
        der = tls.getpeercert(binary_form=True)
        cipher = tls.cipher()
        return TvsProbeResult(
            Outcome.OK if der else Outcome.PROTOCOL_ERROR,
            der,
            sniffer.certificates or ((der,) if der else ()),
            tls.version(),
            cipher[0] if cipher else None,
            sniffer.client_cert_requested if sniffer.certificates else None,
            True,
            None if der else "handshake completed without a server certificate",
            duration,
        )
    if sniffer.certificates:
        alert = f" (server alert: {sniffer.alert})" if sniffer.alert else ""
        return TvsProbeResult(
            Outcome.OK,
            sniffer.certificates[0],
            sniffer.certificates,
            sniffer.version,
            None if sniffer.cipher_suite is None else f"0x{sniffer.cipher_suite:04X}",
            sniffer.client_cert_requested,
            False,
            f"certificate captured; the handshake then failed as expected without a client certificate: "
            f"{failure}{alert}",
            duration,
        )
    return TvsProbeResult(
        Outcome.PROTOCOL_ERROR, None, error=failure or "no certificate seen", duration=duration
    )
