"""A lean HTTP/1.1 keep-alive GET client on asyncio protocols, for plain ``http://`` URLs.

``HttpFetcher`` uses it for the TFTP nodes' port 6970 (``HttpSettings.lean``): a fleet scan makes
one small GET per file to a few hosts, and aiohttp's per-request machinery (request and response
objects, tracing hooks, cookie and redirect handling, a stream reader, a timer context per
timeout) costs several times what the request itself does. This client does only what those
requests need: one ``GET`` per connection at a time (no pipelining), connections kept alive per
host and reused, ``Content-Length``, chunked and read-until-close bodies, and the same outcomes
and error texts as the aiohttp path (``scanner.net.http_fetch`` lists them).

Limits: at most ``per_host`` connections per host and ``total_connections`` in all (a request
waits for a slot, inside its timeout, as with aiohttp); idle connections are dropped after
``KEEPALIVE_TIMEOUT``. The body is never read past the cap. A response to a non-200 status is
returned as soon as its head is in; its connection is kept only if its body had fully arrived.
A request on a reused connection that the server closed before answering (its idle timeout
raced our reuse) is retried once on a new connection: a GET is idempotent.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
import time
from collections import deque
from collections.abc import Callable

from scanner.core.evidence import Outcome
from scanner.net.gate import Slots, Watchdog

__all__ = ["LeanPool", "ParsedUrl", "parse_plain_url"]

KEEPALIVE_TIMEOUT = 30.0
MAX_HEAD = 64 * 1024  # a response head longer than this is not a file server's
_DISCARD_LIMIT = 64 * 1024
# Characters a path may hold to be sent as is (anything else goes to aiohttp, which quotes).
_PATH_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/!$&'()*+,;=:@%")

ParsedUrl = tuple[str, int, str, bytes]  # host, port, path, host header


def parse_plain_url(url: str) -> ParsedUrl | None:
    """``(host, port, path, Host header)`` of a simple ``http://host[:port]/path`` URL, or None
    when the URL has anything else (userinfo, query, fragment, unusual characters)."""
    if not url.startswith("http://"):
        return None
    rest = url[7:]
    slash = rest.find("/")
    netloc, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    if "?" in path or "#" in path:
        return None
    try:
        raw_path = path.encode("ascii")
    except UnicodeEncodeError:
        return None
    if not _PATH_SAFE.issuperset(raw_path):
        return None
    where = _parse_netloc(netloc)
    if where is None:
        return None
    host, port, header = where
    return host, port, path, header


@functools.lru_cache(maxsize=256)
def _parse_netloc(netloc: str) -> tuple[str, int, bytes] | None:
    # Cached: a scan asks the same few nodes for every file.
    if not netloc or "@" in netloc:
        return None
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            return None
        host, tail = netloc[1:end], netloc[end + 1 :]
    else:
        host, _, p = netloc.partition(":")
        tail = f":{p}" if _ else ""
    if tail:
        digits = tail[1:]
        if not tail.startswith(":") or not (digits.isascii() and digits.isdigit()) or len(tail) > 6:
            return None
        port = int(digits)
        if not 0 < port < 65536:
            return None
    else:
        port = 80
    if not host:
        return None
    try:
        header = netloc.encode("ascii")
    except UnicodeEncodeError:
        return None
    return host, port, header


class _Protocol(asyncio.Protocol):
    __slots__ = ("buf", "closed", "error", "idle_since", "key", "transport", "waiter")

    def __init__(self, key: tuple[str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closed = False  # EOF or connection lost: nothing more will arrive
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.idle_since:
            # Bytes on a connection with no request outstanding: never a reply of ours, and
            # buffering them would grow without bound. The connection is not reused.
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            return
        self.buf += data
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is not None and self.error is None:
            self.error = exc
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    async def more(self) -> None:
        """Wait until more bytes, EOF or an error arrive."""
        if self.closed:
            return
        w = self.waiter = asyncio.get_running_loop().create_future()
        await w

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Failure(Exception):
    """A response that ends the request with an outcome (raised inside the reader)."""

    def __init__(self, outcome: Outcome, error: str, status: int | None = None) -> None:
        super().__init__(error)
        self.outcome = outcome
        self.error = error
        self.status = status


class _StaleConnection(Exception):
    """A reused connection closed before any byte of the answer: retry on a new one."""


# (outcome, data, status, error, Content-Length: the size the server announced, or None)
Result = tuple[Outcome, bytes | None, int | None, str | None, int | None]


class LeanPool:
    """Keep-alive connections per ``(host, port)`` and the per-host and total limits."""

    def __init__(self, per_host: int, total: int, connect_timeout: float) -> None:
        self._per_host = per_host
        self._total = Slots(total)
        self._host_slots: dict[tuple[str, int], Slots] = {}
        self._idle: dict[tuple[str, int], deque[_Protocol]] = {}
        self._open: set[_Protocol] = set()
        self._connect_timeout = connect_timeout
        self._watchdog: Watchdog | None = None

    def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
        if self._watchdog is not None:
            self._watchdog.close()

    async def get(self, parsed: ParsedUrl, cap: int, timeout: float, connect_timeout: float) -> Result:
        """``(outcome, data, status, error)``; raises only ``TimeoutError`` (the caller's)."""
        host, port, path, host_header = parsed
        key = (host, port)
        slots = self._host_slots.get(key)
        if slots is None:
            slots = self._host_slots[key] = Slots(self._per_host)
        request = b"GET %s HTTP/1.1\r\nHost: %s\r\nAccept: */*\r\nAccept-Encoding: identity\r\n\r\n" % (
            path.encode("ascii"),
            host_header,
        )
        # The timeout covers the wait for a slot too (as aiohttp's does). A watchdog, not
        # asyncio.timeout: see scanner.net.gate (this is on the per-file path).
        loop = asyncio.get_running_loop()
        wd = self._watchdog
        if wd is None:
            wd = self._watchdog = Watchdog(loop)
        deadline = wd.arm(loop.time() + timeout)
        total = self._total
        took_total = took_host = False
        try:
            if not total.try_take():
                await total.wait()
            took_total = True
            if not slots.try_take():
                await slots.wait()
            took_host = True
            return await self._request(key, request, cap, timeout, connect_timeout)
        except asyncio.CancelledError:
            if wd.disarm(deadline):
                raise TimeoutError from None
            raise
        finally:
            wd.disarm(deadline)
            if took_host:
                slots.give()
            if took_total:
                total.give()

    async def _request(
        self, key: tuple[str, int], request: bytes, cap: int, timeout: float, connect_timeout: float
    ) -> Result:
        conn = self._reuse(key)
        if conn is not None:
            try:
                return await self._exchange(conn, request, cap, reused=True)
            except _StaleConnection:
                pass
        try:
            conn = await self._connect(key, min(timeout, connect_timeout))
        except _Failure as f:
            return f.outcome, None, f.status, f.error, None
        try:
            return await self._exchange(conn, request, cap, reused=False)
        except _StaleConnection:  # not raised for a new connection; for the type checker
            return Outcome.PROTOCOL_ERROR, None, None, "ServerDisconnectedError: Server disconnected", None

    def _reuse(self, key: tuple[str, int]) -> _Protocol | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to have timed out
            if conn.closed or conn.buf or now - conn.idle_since > KEEPALIVE_TIMEOUT:
                self._discard(conn)
                continue
            conn.idle_since = 0.0  # busy again
            return conn
        return None

    def _discard(self, conn: _Protocol) -> None:
        conn.close()
        self._open.discard(conn)

    async def _connect(self, key: tuple[str, int], connect_timeout: float) -> _Protocol:
        loop = asyncio.get_running_loop()
        factory: Callable[[], _Protocol] = lambda: _Protocol(key)  # noqa: E731
        try:
            async with asyncio.timeout(connect_timeout):
                _, conn = await loop.create_connection(factory, key[0], key[1])
        except socket.gaierror as exc:
            raise _Failure(Outcome.REFUSED, f"name resolution failed: {exc}") from None
        except TimeoutError:  # the connect timeout (an OSError subclass): silence, as aiohttp's
            raise _Failure(Outcome.TIMEOUT, "no answer in time") from None
        except OSError as exc:
            if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT):
                raise _Failure(Outcome.TIMEOUT, f"unreachable: {exc}") from None
            raise _Failure(Outcome.REFUSED, f"connect failed: {exc}") from None
        self._open.add(conn)
        return conn

    async def _exchange(self, conn: _Protocol, request: bytes, cap: int, *, reused: bool) -> Result:
        keep = False
        try:
            transport = conn.transport
            assert transport is not None
            transport.write(request)
            outcome, data, status, error, keep, length = await _read_response(conn, cap, reused)
            return outcome, data, status, error, length
        except _Failure as f:
            return f.outcome, None, f.status, f.error, None
        finally:
            if keep:
                conn.idle_since = time.monotonic()
                self._idle.setdefault(conn.key, deque()).append(conn)
            else:
                self._discard(conn)


def _disconnected(conn: _Protocol, status: int | None, what: str) -> _Failure:
    exc = conn.error
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return _Failure(Outcome.PROTOCOL_ERROR, f"connection reset: {exc}", status)
    return _Failure(Outcome.PROTOCOL_ERROR, f"ServerDisconnectedError: {what}", status)


async def _read_response(
    conn: _Protocol, cap: int, reused: bool
) -> tuple[Outcome, bytes | None, int | None, str | None, bool, int | None]:
    """One response: ``(outcome, data, status, error, keep the connection, Content-Length)``."""
    buf = conn.buf
    # -- head
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end])
            del buf[: end + 4]
            status, reason, length, chunked, close = _parse_head(head)
            if 100 <= status < 200:
                continue  # an interim response: the real one follows
            break
        if len(buf) > MAX_HEAD:
            raise _Failure(Outcome.PROTOCOL_ERROR, "ClientResponseError: response head too long")
        if conn.closed:
            if reused and not buf:
                raise _StaleConnection
            raise _disconnected(conn, None, "Server disconnected")
        await conn.more()
    no_body = status in (204, 304)
    if status != 200:
        # The answer is the status: do not wait for a body. Keep the connection only when the
        # whole body is already here (a short error page usually is).
        keep = not close
        if no_body or (length is not None and length == len(buf) and length <= _DISCARD_LIMIT):
            buf.clear()
        else:
            keep = False
        if status in (404, 410):
            return Outcome.NOT_FOUND, None, status, f"HTTP {status}", keep, None
        return Outcome.REFUSED, None, status, f"HTTP {status} {reason}".rstrip(), keep, None
    if no_body:
        return Outcome.OK, b"", status, None, not close, None
    # -- body
    if chunked:
        return await _read_chunked(conn, cap, status, close)
    if length is not None:
        if length > cap:
            raise _Failure(Outcome.TOO_LARGE, f"Content-Length {length} > cap {cap}", status)
        while len(buf) < length:
            if conn.closed:
                raise _disconnected(conn, status, "Response payload is not completed")
            await conn.more()
        if len(buf) == length:
            data = bytes(buf)
            buf.clear()
            return Outcome.OK, data, status, None, not close, length
        data = bytes(buf[:length])
        del buf[:length]
        return Outcome.OK, data, status, None, False, length  # bytes beyond it: do not reuse
    # Neither length nor chunked: the body runs to the end of the connection.
    while not conn.closed:
        if len(buf) > cap:
            raise _Failure(Outcome.TOO_LARGE, f"body exceeds cap {cap}", status)
        await conn.more()
    if isinstance(conn.error, OSError):
        raise _disconnected(conn, status, "Response payload is not completed")
    if len(buf) > cap:
        raise _Failure(Outcome.TOO_LARGE, f"body exceeds cap {cap}", status)
    data = bytes(buf)
    buf.clear()
    return Outcome.OK, data, status, None, False, None


async def _read_chunked(
    conn: _Protocol, cap: int, status: int, close: bool
) -> tuple[Outcome, bytes | None, int | None, str | None, bool, int | None]:
    buf = conn.buf
    out = bytearray()
    while True:
        # chunk-size line
        while (nl := buf.find(b"\r\n")) < 0:
            if len(buf) > 4096:
                raise _Failure(Outcome.PROTOCOL_ERROR, "ClientPayloadError: bad chunk size line", status)
            if conn.closed:
                raise _disconnected(conn, status, "Response payload is not completed")
            await conn.more()
        size = _chunk_size(bytes(buf[:nl]), status)
        del buf[: nl + 2]
        if size == 0:
            # trailers, then an empty line
            while True:
                while (nl := buf.find(b"\r\n")) < 0:
                    if len(buf) > MAX_HEAD:
                        raise _Failure(
                            Outcome.PROTOCOL_ERROR, "ClientPayloadError: trailers too long", status
                        )
                    if conn.closed:
                        raise _disconnected(conn, status, "Response payload is not completed")
                    await conn.more()
                empty = nl == 0
                del buf[: nl + 2]
                if empty:
                    break
            return Outcome.OK, bytes(out), status, None, not close and not buf, None
        if len(out) + size > cap:
            raise _Failure(Outcome.TOO_LARGE, f"body exceeds cap {cap}", status)
        while len(buf) < size + 2:
            if conn.closed:
                raise _disconnected(conn, status, "Response payload is not completed")
            await conn.more()
        if buf[size : size + 2] != b"\r\n":
            raise _Failure(Outcome.PROTOCOL_ERROR, "ClientPayloadError: bad chunk end", status)
        out += buf[:size]
        del buf[: size + 2]


_HEADS: dict[bytes, tuple[int, str, int | None, bool, bool]] = {}
HEAD_CACHE_SIZE = 1024
HEAD_CACHE_MAX_BYTES = 1024


def _parse_head(head: bytes) -> tuple[int, str, int | None, bool, bool]:
    """``(status, reason, Content-Length, chunked, close after)`` of a response head.

    Remembered: a file server answers a scan's thousands of requests with a few hundred distinct
    heads (they differ by length, and by date each second). A head that fails is not kept."""
    known = _HEADS.get(head)
    if known is not None:
        return known
    parsed = _parse_head_uncached(head)
    if len(head) <= HEAD_CACHE_MAX_BYTES:  # bounded in bytes too: a hostile server's huge heads
        if len(_HEADS) >= HEAD_CACHE_SIZE:
            _HEADS.clear()
        _HEADS[head] = parsed
    return parsed


# Digits a Content-Length may have: 18 decimal digits is an exabyte, far past any cap, and
# keeps int() well inside Python's 4,300-digit conversion limit (which raises ValueError).
MAX_LENGTH_DIGITS = 18
# Hex digits a chunk size may have (16 = 2**64 - 1 bytes): past any cap, and bounded work.
MAX_CHUNK_DIGITS = 16
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _content_length(value: bytes, status: int) -> int:
    """A Content-Length value: 1 to MAX_LENGTH_DIGITS ASCII digits (RFC 9110 §8.6), nothing
    else: no sign, no spaces inside, no list. Anything else is a protocol error, not a guess."""
    if not 0 < len(value) <= MAX_LENGTH_DIGITS or not (value.isascii() and value.isdigit()):
        shown = value[:40] + (b"..." if len(value) > 40 else b"")
        raise _Failure(Outcome.PROTOCOL_ERROR, f"ClientResponseError: bad Content-Length {shown!r}", status)
    return int(value)


def _chunk_size(line: bytes, status: int) -> int:
    """A chunk-size line's size (RFC 9112 §7.1): hex digits only (int() would also take a sign,
    a 0x prefix, underscores and spaces), extensions after ';' ignored."""
    digits = line.split(b";", 1)[0].strip()
    if not 0 < len(digits) <= MAX_CHUNK_DIGITS or not _HEX.issuperset(digits):
        raise _Failure(Outcome.PROTOCOL_ERROR, "ClientPayloadError: bad chunk size", status)
    return int(digits, 16)


def _parse_head_uncached(head: bytes) -> tuple[int, str, int | None, bool, bool]:
    try:
        return _parse_head_lines(head)
    except _Failure:
        raise
    except (ValueError, IndexError, UnicodeError) as exc:
        # A head this parser did not foresee is the server's fault: an outcome, never a crash
        # (issue 9: an uncaught ValueError made the job a bug and skipped the TFTP fallback).
        raise _Failure(Outcome.PROTOCOL_ERROR, f"ClientResponseError: bad response head ({exc})") from None


def _parse_head_lines(head: bytes) -> tuple[int, str, int | None, bool, bool]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    version = parts[0]
    if (
        len(parts) < 2
        or version not in (b"HTTP/1.1", b"HTTP/1.0")
        or not (len(parts[1]) == 3 and parts[1].isdigit())
    ):
        raise _Failure(Outcome.PROTOCOL_ERROR, f"ClientResponseError: bad status line {lines[0][:80]!r}")
    status = int(parts[1])
    reason = parts[2].decode("latin-1").strip() if len(parts) > 2 else ""
    length: int | None = None
    chunked = False
    close = version == b"HTTP/1.0"
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise _Failure(
                Outcome.PROTOCOL_ERROR, f"ClientResponseError: bad header line {line[:80]!r}", status
            )
        name = name.lower()
        value = value.strip()
        if name == b"content-length":
            n = _content_length(value, status)
            if length is not None and n != length:
                raise _Failure(
                    Outcome.PROTOCOL_ERROR, "ClientResponseError: conflicting Content-Length values", status
                )
            length = n
        elif name == b"transfer-encoding":
            codings = [c.strip() for c in value.lower().split(b",")]
            if codings[-1] != b"chunked" or len(codings) > 1:
                # gzip etc.: bytes we would have to transform, and we asked for identity
                raise _Failure(
                    Outcome.PROTOCOL_ERROR, f"ClientResponseError: Transfer-Encoding {value!r}", status
                )
            chunked = True
        elif name == b"connection":
            tokens = {t.strip() for t in value.lower().split(b",")}
            if b"close" in tokens:
                close = True
            elif b"keep-alive" in tokens:
                close = False
    if chunked:
        length = None  # RFC 9112 §6.3: Transfer-Encoding overrides Content-Length
    return status, reason, length, chunked, close
