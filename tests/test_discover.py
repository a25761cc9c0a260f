"""scanner.app.discover against the lab's AXL and RisPort70 (scanner.lab.cucm_api), without
sockets: the lab's answers are called directly and time is virtual (sleeps advance the clock)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from dataclasses import replace

import pytest

from scanner.app.discover import ClusterDiscovery, DiscoveryError, discover_cluster
from scanner.core.cucm.settings import AxlSettings
from scanner.lab.cucm_api import CucmApi, LabDevice, LabNode
from scanner.net.soap_client import SoapReply

PASSWORD = "s3cret-Pa55!"
NODES = (LabNode("cucm-pub", publisher=True, tftp=True, tvs=True), LabNode("cucm-sub1", tftp=True, tvs=True), LabNode("cucm-sub2", tvs=True))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Poster:
    """What ``SoapClient.post`` does, minus the socket: basic auth header, then the lab's answer."""

    def __init__(self, api: CucmApi, user: str, password: str, clock: Clock) -> None:
        self.api, self.clock = api, clock
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    async def post(self, path: str, body: bytes, soap_action: str) -> SoapReply:
        self.clock.now += 0.2  # a round trip
        headers: Mapping[str, str] = {"Authorization": self.auth, "SOAPAction": soap_action}
        status, data = self.api.answer(path, headers, body)
        return SoapReply(status, data, None)


def _devices(n: int) -> list[LabDevice]:
    out = []
    for i in range(n):
        name = f"SEP{0x0A0000000000 + i:012X}"
        d = LabDevice(name, description=f"phone {i}", device_pool=f"DP-{i % 3}", node=NODES[i % 2].name,
                      addresses=(f"127.9.{i // 250}.{i % 250 + 1}",), timestamp=1_764_000_000 + i)
        if i % 500 == 7:
            d = replace(d, status="UnRegistered")  # last address kept by the node
        if i % 500 == 9:
            d = replace(d, node=None)  # never registered since the nodes started
        if i % 400 == 3:
            d = replace(d, failed_over_from="cucm-sub2")
        if i == 11:
            d = replace(d, addresses=("::1",))
        out.append(d)
    out.append(LabDevice("CSFJSMITH", model="Cisco Unified Client Services Framework", node="cucm-pub", addresses=("127.9.99.1",)))
    return out


def _expected_calls(devices: list[LabDevice]) -> int:
    """One call per batch of 1,000 names, and one more for each batch whose answer the lab cut at
    1,000 entries (a failed-over phone takes two), which the client asks again for what is missing."""
    names = sorted(d.name for d in devices if d.name.startswith("SEP"))
    by = {d.name: d for d in devices}
    calls = 0
    for i in range(0, len(names), 1000):
        entries = sum(1 + (by[n].failed_over_from is not None) for n in names[i : i + 1000] if by[n].node is not None)
        calls += 1 + (entries > 1000)
    return calls


def _settings(**kw: object) -> AxlSettings:
    base = dict(host="127.0.0.1", user="axlreader", password_env="TRUSTSCAN_AXL_PASSWORD", risport_per_minute=15.0)
    base.update(kw)
    return AxlSettings(**base)  # type: ignore[arg-type]


def _run(api: CucmApi, clock: Clock, *, password: str = PASSWORD, **kw: object) -> ClusterDiscovery:
    poster = Poster(api, "axlreader", password, clock)
    return asyncio.run(discover_cluster("source", _settings(**kw), poster, sleep=clock.sleep, clock=clock))


def _api(clock: Clock, n: int = 2500, **kw: object) -> CucmApi:
    return CucmApi("source", _devices(n), NODES, {"axlreader": PASSWORD}, clock=clock, **kw)  # type: ignore[arg-type]


def test_every_phone_with_its_address_and_the_reason_when_there_is_none() -> None:
    clock = Clock()
    api = _api(clock)
    found = _run(api, clock)
    phones = {p.name: p for p in found.discovery.phones}
    assert len(phones) == 2500 and "CSFJSMITH" not in phones
    for i, d in enumerate(api.devices[:2500]):
        p = phones[d.name]
        assert (p.description, p.device_pool, p.device_type) == (d.description, d.device_pool, d.model)
        if d.node is None:
            assert p.ip is None and "lists no registration" in found.discovery.no_address[d.name], i
        elif d.status != "Registered":
            assert p.ip is None and "UnRegistered" in found.discovery.no_address[d.name], i
            assert d.addresses[0] in found.discovery.no_address[d.name]  # the last address, as a fact
        else:
            assert p.ip == d.addresses[0] and d.name not in found.discovery.no_address, i
    assert phones["SEP0A000000000B"].ip == "::1"  # IPv6
    assert found.discovery.registered == 2500 - 10
    assert 3 <= found.risport_calls <= _expected_calls(list(api.devices)) and found.rate_refusals == 0


def test_nodes_services_and_security_settings() -> None:
    clock = Clock()
    found = _run(_api(clock, 10), clock)
    assert [(n.name, n.publisher, n.tftp, n.tvs) for n in found.nodes] == [
        ("cucm-pub", True, True, True), ("cucm-sub1", False, True, True), ("cucm-sub2", False, False, True)
    ]
    assert (found.settings.mixed_mode, found.settings.rollback_to_pre_8) == (True, False)


def test_risport_requests_stay_within_the_rate_per_minute() -> None:
    clock = Clock()
    api = _api(clock, 40_000)
    found = _run(api, clock)
    # At least one request per 1,000 names; at most what fixed batches of 1,000 and their re-asks
    # cost (the client shrinks its batches once it has seen how many entries a phone takes).
    assert 40 <= found.risport_calls < _expected_calls(list(api.devices)) and found.rate_refusals == 0
    assert api.risport_per_window() <= 15
    assert len(found.discovery.phones) == 40_000


def test_a_rate_fault_waits_and_asks_the_same_batch_again() -> None:
    clock = Clock()
    api = _api(clock, 5000, per_minute=2)  # another application uses most of the budget
    found = _run(api, clock)
    assert found.rate_refusals > 0 and max(clock.slept) >= 30
    assert found.discovery.registered == 5000 - 20  # no batch lost


def test_a_batch_refused_every_time_keeps_its_phones_with_the_reason() -> None:
    clock = Clock()
    api = _api(clock, 1500, per_minute=0)
    found = _run(api, clock)
    assert len(found.discovery.phones) == 1500
    assert all(p.ip is None for p in found.discovery.phones)
    reasons = set(found.discovery.no_address.values())
    assert len(reasons) == 1 and "Exceeded allowed rate" in next(iter(reasons))


def test_a_wrong_password_stops_with_a_clear_error_and_no_password_in_it() -> None:
    clock = Clock()
    api = _api(clock, 10)
    with pytest.raises(DiscoveryError) as info:
        _run(api, clock, password="wrong-password")
    text = str(info.value)
    assert "cluster source" in text and "127.0.0.1:8443" in text and "HTTP 401" in text and "axlreader" in text
    assert "wrong-password" not in text and PASSWORD not in text
    assert [api_name for _, api_name in api.requests] == []  # refused before any API work
    assert all(kind != "risport" for _, kind in api.requests)


def test_the_schema_version_is_negotiated_once() -> None:
    clock = Clock()
    api = _api(clock, 10, versions=("10.0", "9.1", "9.0"))
    found = _run(api, clock)
    assert found.axl_version == "10.0" and len(found.discovery.phones) == 10
    assert any("schema 12.5 not supported" in w for w in found.warnings)


def test_no_common_version_stops() -> None:
    clock = Clock()
    api = _api(clock, 10, versions=())
    with pytest.raises(DiscoveryError, match="named none"):
        _run(api, clock)


def test_a_page_too_large_is_asked_again_smaller() -> None:
    clock = Clock()
    api = _api(clock, 2300, max_rows=700)
    found = _run(api, clock)
    assert len(found.discovery.phones) == 2300
    assert found.axl_calls > 4  # 1 refused page of 1000, then pages of 350, then nodes and settings
