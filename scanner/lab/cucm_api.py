"""The lab's AXL and RisPort70: what a CUCM publisher answers to trustscan's read-only requests,
with the behaviour of real ones.

* Basic authentication: a wrong user or password is HTTP 401 with an HTML page (as Tomcat sends).
* AXL: the schema versions the cluster's release accepts; another is HTTP 599 "Incorrect axl
  version. Supported axl versions are ..."; ``executeSQLQuery`` answers the queries trustscan
  sends (recognised by their tables: the lab has no SQL engine) and refuses a page of more than
  ``max_rows`` rows with AXL's "Query request too large" fault.
* RisPort70: ``selectCmDeviceExt`` by name, at most 1,000 devices per answer (the rest cut off,
  ``TotalDevicesFound`` still counting them), one ``CmNodes`` item per node, a phone that failed
  over listed by both nodes (the older entry UnRegistered), unregistered phones with their last
  address; past ``per_minute`` requests in any 60 seconds, the "Exceeded allowed rate" fault.

Sans-IO like the rest of the lab's answers: ``answer(path, headers, body)`` returns the status and
the bytes; ``scanner.lab.serve`` puts it behind its HTTPS listener. Every request is logged with
its time (``requests``), so that a test can count what the lab saw per minute.

``api_from_json`` makes one from a cluster's ``cucm`` table in lab.json (written by
``scanner.lab.build``; docs/lab.md has the layout); ``device_json`` is the per-device form there
(the status, protocol and failover fields are left out at their default: a 100,000-phone
lab.json stays smaller).
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET

from scanner.core.cucm.soap import SOAP_ENV, local_name

__all__ = ["CucmApi", "LabDevice", "LabNode", "api_from_json", "device_from_json", "device_json", "model_enum", "versions_for_release"]

RISPORT_CAP = 1000
DEFAULT_VERSIONS = ("15.0", "14.0", "12.5", "12.0")
WINDOW = 60.0
HTML_401 = b"<html><head><title>HTTP Status 401 - Unauthorized</title></head><body><h1>HTTP Status 401</h1></body></html>"


@dataclass(frozen=True, slots=True)
class LabNode:
    name: str
    publisher: bool = False
    tftp: bool = False
    tvs: bool = False


@dataclass(frozen=True, slots=True)
class LabDevice:
    """One phone as the cluster's database and its nodes know it."""

    name: str
    description: str = ""
    model: str = "Cisco 8861"
    model_enum: int = 36670
    protocol: str = "SIP"
    device_pool: str = ""
    security_profile: str = ""
    owner: str = ""
    node: str | None = None  # the node it registered with; None: RisPort70 knows nothing of it
    status: str = "Registered"
    addresses: tuple[str, ...] = ()
    timestamp: int = 1_764_000_000
    failed_over_from: str | None = None  # an older UnRegistered entry on this node
    active_load: str = "sip88xx.14-2-1-0201-15"


@dataclass(slots=True)
class CucmApi:
    cluster: str
    devices: Sequence[LabDevice]
    nodes: Sequence[LabNode]
    users: Mapping[str, str]  # user → password
    versions: tuple[str, ...] = DEFAULT_VERSIONS
    params: Mapping[str, str] = field(default_factory=lambda: {"ClusterSecurityMode": "1", "RollBackToPreGrayback": "F"})
    max_rows: int = 5000  # a phone page above this is "too large" (AXL's 8 MB, scaled to the lab)
    per_minute: int = 15
    clock: Callable[[], float] = time.monotonic
    requests: list[tuple[float, str]] = field(default_factory=list)  # (time, "axl" | "risport")
    _recent: collections.deque[float] = field(default_factory=collections.deque)
    _by_name: dict[str, LabDevice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_name = {d.name: d for d in self.devices}

    # --- the HTTP surface --------------------------------------------------------------------

    def answer(self, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        if not self._authorised(headers.get("Authorization", "")):
            return 401, HTML_401
        if path.rstrip("/") == "/axl":
            self.requests.append((self.clock(), "axl"))
            return self._axl(headers, body)
        if path == "/realtimeservice2/services/RISService70":
            self.requests.append((self.clock(), "risport"))
            return self._risport(body)
        return 404, b"<html><body>HTTP Status 404 - Not Found</body></html>"

    def _authorised(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return self.users.get(user) == password

    # --- AXL -----------------------------------------------------------------------------------

    def _axl(self, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        m = re.search(r"ver=(\d+\.\d)", headers.get("SOAPAction", ""))
        ns = re.search(rb"http://www\.cisco\.com/AXL/API/(\d+\.\d)", body)
        version = m.group(1) if m else (ns.group(1).decode() if ns else "")
        if version not in self.versions:
            listed = ", ".join(self.versions)
            return 599, f"<html><body>Incorrect axl version. Supported axl versions are {listed}</body></html>".encode()
        try:
            call = _body_element(body)
        except ValueError as exc:
            return 500, _fault("soapenv:Client", str(exc))
        if local_name(call.tag) != "executeSQLQuery":
            return 500, _fault("soapenv:Client", f"the lab answers executeSQLQuery only, not {local_name(call.tag)}")
        sql = " ".join((call.findtext("sql") or "").split())
        return self._sql(sql, version)

    def _sql(self, sql: str, version: str) -> tuple[int, bytes]:
        low = sql.lower()
        if "from device d" in low:
            page = re.match(r"select skip (\d+) first (\d+) ", low)
            skip, first = (int(page.group(1)), int(page.group(2))) if page else (0, len(self.devices))
            if first > self.max_rows:
                total = len(self.devices)
                text = f"Query request too large. Total rows matched: {total} rows. Suggestive Row Fetch: less than {self.max_rows} rows"
                return 500, _fault("soapenv:Server", text, axl=True)
            chosen = sorted(self.devices, key=lambda d: d.name)[skip : skip + first]
            rows = [
                {"name": d.name, "description": d.description, "model": d.model, "protocol": d.protocol,
                 "devicepool": d.device_pool, "securityprofile": d.security_profile, "owner": d.owner}
                for d in chosen
            ]
        elif "from processnode pn" in low:
            rows = []
            for n in self.nodes:
                services = [s for s, on in (("Cisco Tftp", n.tftp), ("Cisco Trust Verification Service", n.tvs)) if on]
                for s in services or [""]:
                    rows.append({"node": n.name, "usage": "0" if n.publisher else "1", "service": s})
        elif "from processconfig" in low:
            rows = [{"paramname": k, "paramvalue": v} for k, v in self.params.items()]
        else:
            return 500, _fault("soapenv:Server", f"the lab does not know this query: {sql[:80]}", axl=True)
        return 200, _sql_answer(rows, version)

    # --- RisPort70 -----------------------------------------------------------------------------

    def _risport(self, body: bytes) -> tuple[int, bytes]:
        now = self.clock()
        while self._recent and self._recent[0] <= now - WINDOW:
            self._recent.popleft()
        if len(self._recent) >= self.per_minute:
            return 500, _fault(
                "soapenv:Server.generalException",
                "AxisFault: Exceeded allowed rate for Reatime information. Current allowed rate for "
                f"realtime information is {self.per_minute} requests per minute.",
            )
        self._recent.append(now)
        try:
            call = _body_element(body)
        except ValueError as exc:
            return 500, _fault("soapenv:Client", str(exc))
        names = [(e.text or "").strip().upper() for e in call.iter() if local_name(e.tag) == "Item"]
        found = [self._by_name[n] for n in names if n in self._by_name and self._by_name[n].node is not None]
        return 200, self._select_answer(found)

    def _select_answer(self, found: Sequence[LabDevice]) -> bytes:
        per_node: dict[str, list[tuple[LabDevice, str, int]]] = {n.name: [] for n in self.nodes}
        entries = 0
        for d in found:
            listed = [(d, d.node or "", d.status, d.timestamp)]
            if d.failed_over_from:
                listed.append((d, d.failed_over_from, "UnRegistered", d.timestamp - 3600))
            for dev, node, status, ts in listed:
                if entries >= RISPORT_CAP:
                    break
                per_node.setdefault(node, []).append((_with_status(dev, status), node, ts))
                entries += 1
        items = []
        for node, devs in per_node.items():
            code = "Ok" if devs else "NotFound"
            dev_xml = "".join(_device_xml(d, ts) for d, _, ts in devs)
            items.append(
                f"<item><ReturnCode>{code}</ReturnCode><Name>{escape(node)}</Name><NoChange>false</NoChange>"
                f"<CmDevices>{dev_xml}</CmDevices></item>"
            )
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>'
            '<ns1:selectCmDeviceResponse xmlns:ns1="http://schemas.cisco.com/ast/soap"><selectCmDeviceReturn>'
            f"<SelectCmDeviceResult><TotalDevicesFound>{len(found)}</TotalDevicesFound>"
            f"<CmNodes>{''.join(items)}</CmNodes></SelectCmDeviceResult>"
            "<StateInfo></StateInfo></selectCmDeviceReturn></ns1:selectCmDeviceResponse>"
            "</soapenv:Body></soapenv:Envelope>"
        ).encode()

    def risport_in_window(self, end: float) -> int:
        """RisPort70 requests the lab saw in the 60 seconds up to ``end``."""
        return sum(1 for t, api in self.requests if api == "risport" and end - WINDOW < t <= end)

    def risport_per_window(self) -> int:
        """The most RisPort70 requests the lab saw in any 60-second window."""
        times = [t for t, api in self.requests if api == "risport"]
        best, start = 0, 0
        for end, t in enumerate(times):
            while times[start] <= t - WINDOW:
                start += 1
            best = max(best, end - start + 1)
        return best


# RisPort70 reports the model as its typemodel enum. The three the lab's XMLDefault.cnf.xml names
# (scanner/lab/build.py) keep those numbers; the others are lab numbers. Discovery takes the model
# from AXL's name (``typemodel.name``), never from this number.
_MODEL_ENUMS = {
    "Cisco 8841": 36670,
    "Cisco 8845": 36224,
    "Cisco 7841": 36225,
    "Cisco 8851": 36671,
    "Cisco 8861": 36672,
    "Cisco 7821": 36226,
    "Cisco 8945": 36227,
    "Cisco 6941": 36228,
}
UNKNOWN_MODEL = 255  # RisPort70's "any model"


def versions_for_release(release: str) -> tuple[str, ...]:
    """The AXL schema versions a CUCM release accepts, newest first: its own and the few before
    it (15 takes 15.0 down to 12.0; a 10.5 cluster answers 599 to trustscan's first 12.5 and the
    client negotiates down to 10.5)."""
    ladder = ("15.0", "14.0", "12.5", "12.0", "11.5", "11.0", "10.5", "10.0", "9.1", "9.0")
    try:
        major = float(".".join(release.split(".")[:2]))
    except ValueError:
        return DEFAULT_VERSIONS
    own = [v for v in ladder if float(v) <= major]
    return tuple(own[:5]) if own else DEFAULT_VERSIONS


def model_enum(model: str) -> int:
    return _MODEL_ENUMS.get(model, UNKNOWN_MODEL)


_DEVICE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(LabDevice)}


# Left out of lab.json at their default: what nearly every phone of a fleet has.
_OMITTED_AT_DEFAULT = frozenset({"status", "protocol", "failed_over_from"})


def device_json(d: LabDevice) -> dict[str, Any]:
    """``d`` as lab.json keeps it: every field, except the few of ``_OMITTED_AT_DEFAULT`` that are
    at their default (a Registered SIP phone that never failed over)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(LabDevice):
        value = getattr(d, f.name)
        if f.name in _OMITTED_AT_DEFAULT and value == _DEVICE_DEFAULTS[f.name]:
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def device_from_json(raw: Mapping[str, Any]) -> LabDevice:
    """Raises ``KeyError``/``TypeError`` for a damaged entry (lab serve names the lab file)."""
    known = {k: v for k, v in raw.items() if k in _DEVICE_DEFAULTS}
    if "addresses" in known:
        known["addresses"] = tuple(known["addresses"])
    return LabDevice(**known)


def api_from_json(cluster: str, cucm: Mapping[str, Any], *, clock: Callable[[], float] = time.monotonic) -> CucmApi:
    """The ``CucmApi`` of one cluster from its lab.json ``cucm`` table."""
    return CucmApi(
        cluster,
        [device_from_json(d) for d in cucm.get("devices", ())],
        [LabNode(n["name"], bool(n.get("publisher")), bool(n.get("tftp")), bool(n.get("tvs"))) for n in cucm["nodes"]],
        dict(cucm["users"]),
        versions=tuple(cucm.get("versions") or DEFAULT_VERSIONS),
        params=dict(cucm["params"]),
        max_rows=int(cucm.get("max_rows", 5000)),
        per_minute=int(cucm.get("per_minute", 15)),
        clock=clock,
    )


def _with_status(d: LabDevice, status: str) -> LabDevice:
    return d if status == d.status else replace(d, status=status)


def _device_xml(d: LabDevice, timestamp: int) -> str:
    ips = "".join(
        f"<item><IP>{escape(a)}</IP><IPAddrType>{'ipv6' if ':' in a else 'ipv4'}</IPAddrType>"
        "<Attribute>AdministrativeAndSignaling</Attribute></item>"
        for a in d.addresses
    )
    return (
        f"<item><Name>{escape(d.name)}</Name><DeviceClass>Phone</DeviceClass><Model>{d.model_enum}</Model>"
        f"<Status>{d.status}</Status><StatusReason>{0 if d.status == 'Registered' else 13}</StatusReason>"
        f"<Description>{escape(d.description)}</Description><TimeStamp>{timestamp}</TimeStamp>"
        f"<Protocol>{d.protocol}</Protocol><ActiveLoadID>{escape(d.active_load)}</ActiveLoadID>"
        f"<IPAddress>{ips}</IPAddress></item>"
    )


def _body_element(body: bytes) -> Element:
    try:
        root: Element = SafeET.fromstring(body, forbid_dtd=True)
    except Exception as exc:  # the lab answers a bad request with a fault, as Axis does
        raise ValueError(f"not a SOAP request ({type(exc).__name__})") from None
    env_body = next((c for c in root if local_name(c.tag) == "Body"), None)
    first: Element | None = next(iter(env_body), None) if env_body is not None else None
    if first is None:
        raise ValueError("SOAP request without a Body element")
    return first


def _fault(code: str, message: str, *, axl: bool = False) -> bytes:
    detail = (
        f"<detail><axlError><axlcode>-1</axlcode><axlmessage>{escape(message)}</axlmessage>"
        "<request>executeSQLQuery</request></axlError></detail>"
        if axl
        else ""
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>'
        f"<soapenv:Fault><faultcode>{code}</faultcode><faultstring>{escape(message)}</faultstring>{detail}"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    ).encode()


def _sql_answer(rows: Sequence[Mapping[str, str]], version: str) -> bytes:
    out = "".join(
        "<row>" + "".join(f"<{k}>{escape(v)}</{k}>" if v else f"<{k}/>" for k, v in r.items()) + "</row>"
        for r in rows
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>'
        f'<ns:executeSQLQueryResponse xmlns:ns="http://www.cisco.com/AXL/API/{version}"><return>{out}</return>'
        "</ns:executeSQLQueryResponse></soapenv:Body></soapenv:Envelope>"
    ).encode()
