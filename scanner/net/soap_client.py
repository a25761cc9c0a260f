"""POST a SOAP request to a CUCM node over HTTPS with basic authentication: the AXL and RisPort70
adapter. Moves bytes only; ``scanner.core.cucm`` builds the envelopes and reads the answers.

Errors become data (``SoapReply.error``), never exceptions: refused, timed out, TLS refused (the
certificate did not verify against the CA bundle), an answer larger than the cap. The password is
sent only in the ``Authorization`` header and appears in no message this module makes: the error texts
name the host, the path and what went wrong, never the request's headers.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from dataclasses import dataclass
from types import TracebackType

import aiohttp

from scanner.core.cucm.settings import AxlSettings
from scanner.core.cucm.soap import MAX_SOAP_BYTES

__all__ = ["SoapClient", "SoapReply", "ssl_context_for"]

CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class SoapReply:
    status: int | None  # HTTP status; None when no answer came
    body: bytes
    error: str | None  # why there is no usable answer (None: the body is the server's answer)


def ssl_context_for(settings: AxlSettings) -> ssl.SSLContext:
    """The TLS context for a cluster: its CA bundle, the system's CAs, or no check at all when the
    profile says ``verify = false`` (the CLI warns about that at every run). Raises ``OSError`` /
    ``ssl.SSLError`` for a CA bundle that cannot be read."""
    if not settings.verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=str(settings.ca_bundle) if settings.ca_bundle else None)


class SoapClient:
    """One cluster's SOAP session: at most one request in flight (AXL asks clients to wait for
    each answer before the next; RisPort70 is paced by its caller), cookies off so that every
    request authenticates the same way."""

    def __init__(self, settings: AxlSettings, password: str, ssl_context: ssl.SSLContext) -> None:
        self._settings = settings
        # The header is built here, not with aiohttp's BasicAuth/auth= (deprecated in the aiohttp
        # this project installs): RFC 7617, user and password as UTF-8.
        token = base64.b64encode(f"{settings.user}:{password}".encode()).decode("ascii")
        self._authorization = f"Basic {token}"
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._one = asyncio.Semaphore(1)

    async def __aenter__(self) -> SoapClient:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, ssl=self._ssl),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=self._settings.timeout),
        )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, path: str) -> str:
        return f"https://{self._settings.where()}{path}"

    async def post(self, path: str, body: bytes, soap_action: str) -> SoapReply:
        assert self._session is not None, "SoapClient used outside 'async with'"
        where = f"{self._settings.where()}{path}"
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "Accept": "text/xml",
            "SOAPAction": soap_action,
            "Authorization": self._authorization,
        }
        async with self._one:
            try:
                async with self._session.post(self.url(path), data=body, headers=headers) as resp:
                    if resp.content_length is not None and resp.content_length > MAX_SOAP_BYTES:
                        return SoapReply(resp.status, b"", f"{where}: answer of {resp.content_length} bytes is over the cap")
                    data = bytearray()
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        data += chunk
                        if len(data) > MAX_SOAP_BYTES:
                            return SoapReply(resp.status, b"", f"{where}: answer over {MAX_SOAP_BYTES} bytes")
                    return SoapReply(resp.status, bytes(data), None)
            except aiohttp.ClientConnectorCertificateError as exc:
                return SoapReply(None, b"", f"{where}: TLS certificate not trusted ({exc.certificate_error})")
            except aiohttp.ClientSSLError as exc:
                return SoapReply(None, b"", f"{where}: TLS failed ({type(exc).__name__})")
            except aiohttp.ClientConnectorError as exc:
                return SoapReply(None, b"", f"{where}: cannot connect ({exc.strerror or type(exc).__name__})")
            except TimeoutError:
                return SoapReply(None, b"", f"{where}: no answer within {self._settings.timeout:g} s")
            except aiohttp.ClientError as exc:
                return SoapReply(None, b"", f"{where}: {type(exc).__name__}")
