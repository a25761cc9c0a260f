"""A phone's own web pages (spec §5.3): network setup (installed CTL/ITL hashes, TVS list),
status messages (trust-list update failures), device information (model).

The core (``scanner.core.phonepage``) parses them; this adapter fetches them, one request at a time
per phone (an IP phone's web server is small and serves its user too), and says why a page is
missing in terms the readiness analysis can use:

* ``refused``: nothing listens on the web port (TCP reset) — often web access disabled, which
  only the phone's config (``<webAccess>1``) can confirm; the analysis joins the two;
* ``disabled``: the web server answered and says it is off (HTTP 403, or a page that says the
  web access is disabled);
* ``timeout``: no answer at all (phone off, unreachable, filtered);
* ``not_found``: the server answered but has no such page under any known path (model layout).

Every model's pages: each page is tried under its HTML paths first (78xx/88xx Serviceability
adapter, then the older flat names), then under the XML paths ("...X": ``adapterX=``,
``/NetworkConfigurationX``, ``/DeviceInformationX``) of phones that serve only those; the core
parser reads either shape. Models whose network page keeps the trust-list hashes on a separate
security page (the page links to ``adapter=device.statistics.security``, or shows no CTL/ITL line
at all) have that page fetched too, right after the network page, as its own result
(:data:`SECURITY_PAGE`, named ``security``): the evidence keeps each page as received.

Phones use self-signed certificates over HTTPS, so HTTPS fetches do not verify them (the
``HttpFetcher`` for phones is made with ``verify=False``); nothing is sent but GET requests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scanner.core.evidence import Outcome
from scanner.core.phonepage import security_page_wanted
from scanner.net.http_fetch import HttpFetcher, HttpResult

__all__ = ["PAGES", "SECURITY_PAGE", "PageResult", "PageSpec", "fetch_phone_pages", "phone_url"]


@dataclass(frozen=True, slots=True)
class PageSpec:
    name: str  # the "file" name in the manifest
    paths: tuple[str, ...]  # tried in order while the answer is "not found"


# Paths per page, newest layout first: 78xx/88xx serve the Serviceability adapter, 79xx the
# older flat names (SeeYouCM-Thief's fixtures, spec §5.3); then the XML twins ("adapterX=",
# "...X"), which phone scripts read from 79xx models. HTML first: the phones that have it show the
# CTL/ITL lines there, and a phone with HTML pages costs no extra request. "/" (the home page)
# stays last for device information: every phone answers it.
PAGES: tuple[PageSpec, ...] = (
    PageSpec(
        "network-setup",
        (
            "/CGI/Java/Serviceability?adapter=device.statistics.configuration",
            "/NetworkConfiguration",
            "/CGI/Java/Serviceability?adapterX=device.statistics.configuration",
            "/NetworkConfigurationX",
        ),
    ),
    PageSpec(
        "status-messages",
        (
            "/CGI/Java/Serviceability?adapter=device.settings.status.messages",
            "/CGI/Java/Serviceability?adapterX=device.settings.status.messages",
        ),
    ),
    PageSpec(
        "device-information",
        (
            "/CGI/Java/Serviceability?adapter=device.statistics.device",
            "/CGI/Java/Serviceability?adapterX=device.statistics.device",
            "/DeviceInformationX",
            "/",
        ),
    ),
)
# Fetched only when the network page asks for it (``security_page_wanted``), right after it.
SECURITY_PAGE = PageSpec(
    "security",
    (
        "/CGI/Java/Serviceability?adapter=device.statistics.security",
        "/CGI/Java/Serviceability?adapterX=device.statistics.security",
    ),
)
_NETWORK_PAGE = "network-setup"

_DISABLED_TEXT = re.compile(rb"web\s*access\s*(?:is\s*)?disabled", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PageResult:
    page: str
    outcome: Outcome
    data: bytes | None
    url: str
    error: str | None
    duration: float


def phone_url(scheme: str, host: str, port: int, path: str) -> str:
    default = 80 if scheme == "http" else 443
    h = f"[{host}]" if ":" in host else host
    netloc = h if port == default else f"{h}:{port}"
    return f"{scheme}://{netloc}{path}"


def _classify(result: HttpResult) -> tuple[Outcome, str | None]:
    if result.outcome is Outcome.REFUSED and result.status == 403:
        return Outcome.DISABLED, f"{result.error}: web access disabled"
    if result.outcome is Outcome.OK and result.data is not None and _DISABLED_TEXT.search(result.data[:4096]):
        return Outcome.DISABLED, "the page says web access is disabled"
    return result.outcome, result.error


async def fetch_page(
    fetcher: HttpFetcher, scheme: str, host: str, port: int, spec: PageSpec, *, timeout: float, max_size: int
) -> PageResult:
    """One page, trying its paths in order while the answer is ``not_found``."""
    total = 0.0
    last: PageResult | None = None
    for path in spec.paths:
        url = phone_url(scheme, host, port, path)
        r = await fetcher.get(url, timeout=timeout, max_size=max_size)
        total += r.duration
        outcome, error = _classify(r)
        last = PageResult(spec.name, outcome, r.data if outcome is Outcome.OK else None, url, error, total)
        if outcome is not Outcome.NOT_FOUND:
            return last
    assert last is not None
    return last


async def fetch_phone_pages(
    fetcher: HttpFetcher,
    scheme: str,
    host: str,
    port: int,
    *,
    pages: tuple[PageSpec, ...] = PAGES,
    security: PageSpec | None = SECURITY_PAGE,
    timeout: float = 8.0,
    max_size: int = 2 << 20,
) -> list[PageResult]:
    """Every page of one phone, in order, one request at a time. After a page that shows the
    phone cannot answer (timeout, refused, disabled), the remaining pages are not requested:
    they get the same outcome, with a note, so every page still has its line in the manifest.

    ``security`` (None: never) is fetched right after the network page when that page was read
    and sends us there (it links to the security page or shows no CTL/ITL line); it is a result
    of its own, present only then (a phone whose network page holds the hashes has no such line)."""
    results: list[PageResult] = []
    stop: PageResult | None = None
    queue = list(pages)
    while queue:
        spec = queue.pop(0)
        if stop is not None:
            note = f"not requested: {stop.page} was {stop.outcome.value}"
            results.append(
                PageResult(
                    spec.name, stop.outcome, None, phone_url(scheme, host, port, spec.paths[0]), note, 0.0
                )
            )
            continue
        r = await fetch_page(fetcher, scheme, host, port, spec, timeout=timeout, max_size=max_size)
        results.append(r)
        if r.outcome in (Outcome.TIMEOUT, Outcome.REFUSED, Outcome.DISABLED):
            stop = r
        elif (
            security is not None
            and spec.name == _NETWORK_PAGE
            and r.outcome is Outcome.OK
            and r.data is not None
            and security_page_wanted(r.data)
        ):
            queue.insert(0, security)
    return results
