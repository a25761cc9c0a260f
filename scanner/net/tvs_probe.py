"""Capture a TVS server's certificate over TLS (TCP 2445) without a client certificate.

TVS asks the client (a phone) for its certificate; the scanner has none. What happens then:

* **TLS 1.3**: the server's Certificate arrives (encrypted) in its first flight; the client
  answers with an empty Certificate and its Finished and, from its side, the handshake is
  complete: ``getpeercert(binary_form=True)`` returns the server certificate. The server's
  ``certificate_required`` alert comes afterwards and only spoils the first read.
* **TLS 1.2 and older** (the seed's TVS log shows AES256-SHA): the server's Certificate arrives
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

from scanner.evidence import Outcome

__all__ = ["CertificateSniffer", "TvsProbeResult", "probe_tvs", "tvs_client_context"]

# TLS record header: type(1) version(2) length(2); a record body is at most 2^14 + 2048 bytes
# (RFC 5246 §6.2.3, ciphertext bound); more means this is not TLS.
RECORD_HEADER = 5
MAX_RECORD = (1 << 14) + 2048
# A server's plaintext flight (hello, certificates, key exchange, request) is a few KB; a
# certificate chain of 10 × 2 KB is plenty. 256 KB stops a garbage stream from using memory.
MAX_HANDSHAKE_BYTES = 256 * 1024
# Bytes read per socket read: one server flight fits in a few of these.
READ_SIZE = 64 * 1024

_CONTENT_CCS = 20
_CONTENT_ALERT = 21
_CONTENT_HANDSHAKE = 22
_CONTENT_APPDATA = 23
_HS_SERVER_HELLO = 2
_HS_CERTIFICATE = 11
_HS_CERTIFICATE_REQUEST = 13

_VERSIONS = {b"\x03\x00": "SSLv3", b"\x03\x01": "TLSv1", b"\x03\x02": "TLSv1.1", b"\x03\x03": "TLSv1.2"}
_ALERTS = {
    40: "handshake_failure",
    42: "bad_certificate",
    46: "certificate_unknown",
    48: "unknown_ca",
    70: "protocol_version",
    116: "certificate_required",
}


class CertificateSniffer:
    """Sans-IO: reads the server→client byte stream of a TLS handshake and extracts, from the
    plaintext part (TLS ≤ 1.2), the server's certificate list, whether it asked for a client
    certificate, and any plaintext alert. Stops at the first encrypted record. Never raises."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._hs = bytearray()  # handshake message bytes, reassembled across records
        self._seen = 0
        self.certificates: tuple[bytes, ...] = ()
        self.client_cert_requested = False
        self.alert: str | None = None
        self.version: str | None = None  # from the ServerHello
        self.cipher_suite: int | None = None
        self.stopped = False  # encrypted from here on, or not TLS

    def feed(self, data: bytes) -> None:
        if self.stopped:
            return
        self._seen += len(data)
        if self._seen > MAX_HANDSHAKE_BYTES:
            self.stopped = True
            return
        self._buf += data
        while len(self._buf) >= RECORD_HEADER and not self.stopped:
            ctype = self._buf[0]
            length = int.from_bytes(self._buf[3:5], "big")
            if self._buf[1] != 3 or length > MAX_RECORD:
                self.stopped = True  # not a TLS record
                return
            if len(self._buf) < RECORD_HEADER + length:
                return
            body = bytes(self._buf[RECORD_HEADER : RECORD_HEADER + length])
            del self._buf[: RECORD_HEADER + length]
            if ctype == _CONTENT_HANDSHAKE:
                self._hs += body
                self._messages()
            elif ctype == _CONTENT_ALERT and len(body) == 2:
                self.alert = _ALERTS.get(body[1], f"alert {body[1]}")
            elif ctype in (_CONTENT_CCS, _CONTENT_APPDATA):
                self.stopped = True  # the server's messages are encrypted from here
            else:
                self.stopped = True

    def _messages(self) -> None:
        while len(self._hs) >= 4:
            mtype = self._hs[0]
            length = int.from_bytes(self._hs[1:4], "big")
            if len(self._hs) < 4 + length:
                return
            body = bytes(self._hs[4 : 4 + length])
            del self._hs[: 4 + length]
            if mtype == _HS_CERTIFICATE and not self.certificates:
                self.certificates = _certificate_list(body)
            elif mtype == _HS_CERTIFICATE_REQUEST:
                self.client_cert_requested = True
            elif mtype == _HS_SERVER_HELLO and len(body) >= 35:
                sid = body[34]
                if len(body) >= 37 + sid:
                    self.cipher_suite = int.from_bytes(body[35 + sid : 37 + sid], "big")
                if _is_tls13_hello(body):
                    self.version = "TLSv1.3"
                    self.stopped = True  # everything after ServerHello is encrypted
                else:
                    self.version = _VERSIONS.get(bytes(body[:2]))


def _certificate_list(body: bytes) -> tuple[bytes, ...]:
    """TLS ≤ 1.2 Certificate body: 3-byte list length, then (3-byte length, DER) entries."""
    if len(body) < 3:
        return ()
    total = int.from_bytes(body[:3], "big")
    end = min(3 + total, len(body))
    pos = 3
    certs: list[bytes] = []
    while pos + 3 <= end:
        n = int.from_bytes(body[pos : pos + 3], "big")
        pos += 3
        if pos + n > end:
            break
        certs.append(body[pos : pos + n])
        pos += n
    return tuple(certs)


def _is_tls13_hello(body: bytes) -> bool:
    """ServerHello with a supported_versions extension selecting 0x0304 (RFC 8446 §4.1.3)."""
    try:
        pos = 2 + 32  # legacy_version, random
        sid = body[pos]
        pos += 1 + sid + 2 + 1  # session id, cipher suite, compression
        ext_total = int.from_bytes(body[pos : pos + 2], "big")
        pos += 2
        end = pos + ext_total
        while pos + 4 <= end:
            etype = int.from_bytes(body[pos : pos + 2], "big")
            elen = int.from_bytes(body[pos + 2 : pos + 4], "big")
            if etype == 43 and elen == 2:
                return body[pos + 4 : pos + 6] == b"\x03\x04"
            pos += 4 + elen
    except IndexError:
        return False
    return False


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
