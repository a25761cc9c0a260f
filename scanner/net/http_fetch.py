"""HTTP(S) GET with aiohttp for the TFTP nodes' port 6970 and the phones' web pages.

One ``HttpFetcher`` holds one ``aiohttp.ClientSession``: a keep-alive connection pool (a fleet
scan makes thousands of requests to a few nodes, so reusing connections saves a TCP handshake
per file), a cap on connections per host and in total, per-request timeouts, and a size cap.
Every request asks for the file as it is (``Accept-Encoding: identity``, nothing decompressed):
files are compared and hashed byte for byte.

Why aiohttp for port 6970 too: a hand-written keep-alive client used to serve it, at about
130 µs less CPU per file (``bench/bench_collect.py --transports http``: 170 against 300 µs per
file). On the whole scan (``bench/bench_scan.py --sizes 2000``, default limits, ten runs each
on a shared 2-core machine) that was 11% of the scan's CPU and 9% of its wall time on average
(4 to 23% CPU in single runs): not enough to keep a second HTTP client.

Errors become data here (``HttpResult.outcome``), never exceptions, except a bug:

* 200 → ``ok``; 404 and 410 → ``not_found`` (a definite answer, kept apart from timeouts);
  any other status → ``refused`` (the server is alive and declined: 403, 503 when a CUCM TFTP
  node is at its Maximum Serving Count, ...);
* connection refused, or the name does not resolve → ``refused``;
* no answer in time (connect or read) → ``timeout``;
* Content-Length or body above the cap → ``too_large`` (the body is not read past the cap);
* a malformed response, a dropped connection mid-body, a TLS failure → ``protocol_error``.
"""

from __future__ import annotations

import errno
import ssl
import time
from dataclasses import dataclass

import aiohttp

from scanner.core.evidence import Outcome

__all__ = ["HttpFetcher", "HttpResult", "HttpSettings", "client_ssl_context"]

# Keep idle connections this long: between two files of a scan a connection is idle for
# milliseconds; 30 s outlives pauses (rate limit, dead-node probes) without hoarding sockets.
KEEPALIVE_TIMEOUT = 30.0
# Name lookups are cached for the scan: the same few node names are looked up for every file.
DNS_CACHE_SECONDS = 300
# Read the body in chunks this size when its length is not announced, checking the cap each time.
CHUNK = 64 * 1024
# Error texts are kept this short: aiohttp quotes a bad header line whole (a hostile server's
# 5,000-digit Content-Length would land in every manifest line of the scan).
MAX_ERROR = 240


@dataclass(frozen=True, slots=True)
class HttpSettings:
    total_connections: int = 512
    per_host: int = 64  # the per-node politeness limit (scanner.core.ratelimit.Limits.per_node_concurrency)
    connect_timeout: float = 3.0
    timeout: float = 10.0
    max_size: int = 4 << 20
    # HTTPS: a CA bundle file to verify servers with; ``verify=False`` accepts any certificate
    # (phones present self-signed ones: there is nothing to verify them against).
    ca_bundle: str | None = None
    verify: bool = True


@dataclass(frozen=True, slots=True)
class HttpResult:
    outcome: Outcome
    data: bytes | None
    status: int | None
    error: str | None
    duration: float
    url: str
    # The size the server announced (Content-Length), or None (chunked, read to close, or no
    # answer). An ``ok`` body has exactly this length: a shorter one is ``protocol_error``.
    expected_size: int | None = None


def client_ssl_context(ca_bundle: str | None, verify: bool) -> ssl.SSLContext:
    if not verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=ca_bundle)


class HttpFetcher:
    """``async with HttpFetcher(settings) as f: result = await f.get(url)``."""

    def __init__(self, settings: HttpSettings | None = None) -> None:
        self.settings = settings if settings is not None else HttpSettings()
        self._session: aiohttp.ClientSession | None = None
        s = self.settings
        self._timeout = aiohttp.ClientTimeout(total=s.timeout, sock_connect=s.connect_timeout)

    async def __aenter__(self) -> HttpFetcher:
        s = self.settings
        connector = aiohttp.TCPConnector(
            limit=s.total_connections,
            limit_per_host=s.per_host,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
            ttl_dns_cache=DNS_CACHE_SECONDS,
            ssl=client_ssl_context(s.ca_bundle, s.verify),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            # Files are compared and hashed byte for byte: ask for them untransformed (aiohttp
            # offers gzip and deflate by default), and never transform what comes.
            headers={"Accept-Encoding": "identity"},
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, url: str, *, max_size: int | None = None, timeout: float | None = None) -> HttpResult:
        session = self._session
        if session is None:
            raise RuntimeError("HttpFetcher used outside 'async with'")
        cap = self.settings.max_size if max_size is None else max_size
        t = (
            self._timeout
            if timeout is None
            else aiohttp.ClientTimeout(
                total=timeout, sock_connect=min(timeout, self.settings.connect_timeout)
            )
        )
        start = time.monotonic()
        status: int | None = None
        try:
            async with session.get(url, timeout=t, allow_redirects=False) as resp:
                status = resp.status
                if status in (404, 410):
                    return _result(Outcome.NOT_FOUND, None, status, f"HTTP {status}", start, url)
                if status != 200:
                    reason = f"HTTP {status} {resp.reason or ''}".rstrip()
                    return _result(Outcome.REFUSED, None, status, reason, start, url)
                length = resp.content_length
                if length is not None and length > cap:
                    return _result(
                        Outcome.TOO_LARGE, None, status, f"Content-Length {length} > cap {cap}", start, url
                    )
                if length is not None:
                    data = await resp.read()
                else:
                    buf = bytearray()
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        buf += chunk
                        if len(buf) > cap:
                            return _result(
                                Outcome.TOO_LARGE, None, status, f"body exceeds cap {cap}", start, url
                            )
                    data = bytes(buf)
                if len(data) > cap:
                    return _result(Outcome.TOO_LARGE, None, status, f"body exceeds cap {cap}", start, url)
                if length is not None and len(data) != length:  # aiohttp checks; belt and braces
                    error = f"body of {len(data)} bytes, Content-Length {length}"
                    return _result(Outcome.PROTOCOL_ERROR, None, status, error, start, url)
                return _result(Outcome.OK, data, status, None, start, url, length)
        except TimeoutError:
            return _result(Outcome.TIMEOUT, None, status, "no answer in time", start, url)
        except aiohttp.ClientConnectorDNSError as exc:
            return _result(Outcome.REFUSED, None, status, f"name resolution failed: {exc}", start, url)
        except aiohttp.ClientSSLError as exc:
            return _result(Outcome.PROTOCOL_ERROR, None, status, f"TLS: {exc}", start, url)
        except aiohttp.ClientConnectorError as exc:
            return _connect_error(exc, status, start, url)
        except (
            aiohttp.ClientPayloadError,
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientResponseError,
        ) as exc:
            return _result(Outcome.PROTOCOL_ERROR, None, status, f"{type(exc).__name__}: {exc}", start, url)
        except aiohttp.ClientOSError as exc:
            if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                return _result(Outcome.PROTOCOL_ERROR, None, status, f"connection reset: {exc}", start, url)
            return _result(Outcome.REFUSED, None, status, f"{exc}", start, url)
        except aiohttp.ClientError as exc:
            return _result(Outcome.PROTOCOL_ERROR, None, status, f"{type(exc).__name__}: {exc}", start, url)


def _connect_error(
    exc: aiohttp.ClientConnectorError, status: int | None, start: float, url: str
) -> HttpResult:
    code = exc.os_error.errno if exc.os_error is not None else None
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT):
        # No route or no answer: as good as silence, and retried like it.
        return _result(Outcome.TIMEOUT, None, status, f"unreachable: {exc.os_error}", start, url)
    return _result(Outcome.REFUSED, None, status, f"connect failed: {exc.os_error or exc}", start, url)


def _result(
    outcome: Outcome,
    data: bytes | None,
    status: int | None,
    error: str | None,
    start: float,
    url: str,
    expected_size: int | None = None,
) -> HttpResult:
    if error is not None and len(error) > MAX_ERROR:
        error = error[:MAX_ERROR] + "..."
    return HttpResult(outcome, data, status, error, time.monotonic() - start, url, expected_size)
