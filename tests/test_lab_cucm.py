"""The lab's AXL and RisPort70 served over HTTPS (scanner.lab.serve + scanner.lab.cucm_api), asked
by trustscan's own client (scanner.app.discover + scanner.net.soap_client): every phone and node,
the 1,000-device cap, the rate fault, a wrong password, a slow publisher, the tomcat certificate.

Labs here use network base 52 (127.52.x.x, 127.62.x.x, phones 127.142.x.x)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from scanner.app.discover import AXL_PATH, RISPORT_PATH, DiscoveryError, discover_cluster, discover_fleet
from scanner.core.cucm import risport
from scanner.core.cucm.settings import AxlSettings
from scanner.core.cucm.soap import SoapFault, parse_response
from scanner.core.inventory import parse_inventory
from scanner.lab.cucm_api import CucmApi, LabDevice, LabNode, api_from_json
from scanner.lab.scenario import parse_scenario
from scanner.lab.testing import built_lab, serving
from scanner.net.soap_client import SoapClient, ssl_context_for
from scanner.store.profiles import load_profile

BASE = 52
SOURCE_PUB = f"127.{BASE}.0.1"
DEST_PUB = f"127.{BASE + 10}.0.1"
SLOW = 0.4
API = parse_scenario(
    f"""
name = "api"
[[faults]]
name = "phone-unregistered"
count = 4
[[faults]]
name = "phone-failover"
count = 3
[[faults]]
name = "risport-rate-limit"
per_minute = 3
[[faults]]
name = "axl-slow"
node = "dst-pub"
delay = {SLOW}
""",
    "api.toml",
)


def _lab() -> Path:
    return built_lab(API, phones=40, base=BASE)


def _lab_json(d: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((d / "lab.json").read_text())
    return data


def _password(d: Path, cluster: str) -> str:
    return (d / "secrets" / f"{cluster}-axl.password").read_text().splitlines()[0]


def _settings(d: Path, host: str = SOURCE_PUB, **kw: Any) -> AxlSettings:
    base: dict[str, Any] = dict(
        host=host, port=8443, user="trustscan-ro", password_file=d / "secrets" / "source-axl.password",
        ca_bundle=d / "pki" / "api-ca.pem", risport_per_minute=15.0, timeout=20.0,
    )
    base.update(kw)
    return AxlSettings(**base)


def _client(settings: AxlSettings, password: str) -> SoapClient:
    return SoapClient(settings, password, ssl_context_for(settings))


def test_axl_and_risport_list_every_phone_node_and_setting() -> None:
    d = _lab()
    lab = _lab_json(d)
    phones = {p["name"]: p for p in lab["phones"]}

    async def go() -> Any:
        async with serving(d) as server:
            settings = _settings(d)
            async with _client(settings, _password(d, "source")) as client:
                found = await discover_cluster("source", settings, client)
            return found, [s for s in server.services if s.kind == "AXL"]

    found, announced = asyncio.run(go())
    assert sorted((s.address, s.port) for s in announced) == [(SOURCE_PUB, 8443), (DEST_PUB, 8443)]
    got = {p.name: p for p in found.discovery.phones}
    assert set(got) == set(phones)
    for name, p in got.items():
        lp = phones[name]
        assert (p.description, p.device_pool, p.device_type) == (
            lp["description"], lp["pool"], "Cisco " + lp["model"].removeprefix("CP-")
        )
        if lp["fault"] == "phone-unregistered":
            # No address (the last one may be another phone's now), and the reason names it.
            assert p.ip is None and "UnRegistered" in (p.no_address or "") and "last seen at 127.142." in (p.no_address or "")
        else:
            assert p.ip == lp["ip"], name  # failed-over phones too: the newer, Registered entry
    assert sum(1 for p in lab["phones"] if p["fault"] == "phone-failover") == 3
    assert found.discovery.registered == 40 - 4
    # The nodes as CUCM lists them (named by address), with their services; the publisher first.
    assert [(n.name, n.publisher, n.tftp, n.tvs) for n in found.nodes] == [
        (SOURCE_PUB, True, True, False),
        (f"127.{BASE}.0.2", False, True, False),
        *[(f"127.{BASE}.1.{i}", False, False, True) for i in (1, 2, 3)],
    ]
    assert (found.settings.mixed_mode, found.settings.rollback_to_pre_8) == (True, False)
    # A 10.5 source refuses schema 12.5 (HTTP 599 with its list); the client settles on 10.5.
    assert found.axl_version == "10.5"


def test_a_fleet_discovery_finds_the_nodes_the_manual_profile_names_and_the_csv_addresses() -> None:
    """Both ways into a scan: profile.toml with discovery, and profile-manual.toml with the CSV,
    name the same nodes (address and ports) and give every phone the same address (none for the
    unregistered ones)."""
    d = _lab()
    profile = load_profile(d / "profile.toml")
    manual = load_profile(d / "profile-manual.toml")
    assert all(c.axl is not None and not c.tftp and not c.tvs for c in profile.clusters)
    assert all(c.axl is None for c in manual.clusters)

    async def go() -> Any:
        async with serving(d):
            return await discover_fleet(profile, {c: _password(d, c) for c in ("source", "destination")})

    fleet = asyncio.run(go())
    for name in ("source", "destination"):
        done, hand = getattr(fleet.profile, name), getattr(manual, name)
        assert sorted((n.address, n.tftp_port, n.http_port) for n in done.tftp) == sorted(
            (n.address, n.tftp_port, n.http_port) for n in hand.tftp
        )
        assert sorted((n.address, n.port) for n in done.tvs) == sorted((n.address, n.port) for n in hand.tvs)
    csv = parse_inventory((d / "inventory.csv").read_bytes())
    assert not csv.issues
    assert {p.name: p.ip for p in fleet.inventory.phones} == {p.name: p.ip for p in csv.phones}
    assert sum(1 for p in csv.phones if p.ip is None) == 4


def test_a_wrong_password_is_http_401_and_stops_discovery_naming_cluster_and_host() -> None:
    d = _lab()
    wrong = "not-" + _password(d, "source")

    async def go() -> Any:
        async with serving(d) as server:
            settings = _settings(d)
            async with _client(settings, wrong) as client:
                reply = await client.post(AXL_PATH, b"<x/>", "CUCM:DB ver=10.5 executeSQLQuery")
                with pytest.raises(DiscoveryError) as info:
                    await discover_cluster("source", settings, client)
            return reply, str(info.value), list(server.apis["source"].requests)

    reply, text, requests = asyncio.run(go())
    assert reply.status == 401 and reply.error is None and b"401" in reply.body
    assert "cluster source" in text and f"{SOURCE_PUB}:8443" in text and "HTTP 401" in text
    assert wrong not in text and _password(d, "source") not in text
    assert requests == []  # refused before any API work


def test_the_wrong_password_fault_writes_a_password_the_publisher_refuses() -> None:
    sc = parse_scenario('name = "wrong-pw"\n[[faults]]\nname = "axl-wrong-password"\ncluster = "source"\n', "w.toml")
    d = built_lab(sc, phones=5, base=BASE)
    lab = _lab_json(d)
    assert _password(d, "source") != lab["clusters"]["source"]["cucm"]["users"]["trustscan-ro"]
    assert _password(d, "destination") == lab["clusters"]["destination"]["cucm"]["users"]["trustscan-ro"]
    key = json.loads((d / "answer-key.json").read_text())
    assert key["refused"]["exit"] == 64 and f"{SOURCE_PUB}:8443" in key["refused"]["message"]
    assert key["verdict"] == "GO"  # what profile-manual.toml (no discovery) gives

    async def go() -> str:
        async with serving(d):
            settings = _settings(d)
            async with _client(settings, _password(d, "source")) as client:
                with pytest.raises(DiscoveryError) as info:
                    await discover_cluster("source", settings, client)
            return str(info.value)

    text = asyncio.run(go())
    assert all(word in text for word in key["refused"]["message"])


def test_risport_answers_the_rate_fault_past_its_per_minute() -> None:
    d = _lab()
    names = [p["name"] for p in _lab_json(d)["phones"]][:5]

    async def go() -> Any:
        async with serving(d) as server:
            settings = _settings(d)
            async with _client(settings, _password(d, "source")) as client:
                replies = [
                    await client.post(RISPORT_PATH, risport.select_request(names), risport.SOAP_ACTION) for _ in range(5)
                ]
            api = server.apis["source"]
            return replies, api.per_minute, api.risport_in_window(time.monotonic()), api.risport_per_window()

    replies, per_minute, in_window, most = asyncio.run(go())
    assert per_minute == 3  # the scenario's risport-rate-limit, not CUCM's default 15
    assert [r.status for r in replies] == [200, 200, 200, 500, 500]
    for r in replies[3:]:
        fault = parse_response(r.body, what="test")
        assert isinstance(fault, SoapFault) and risport.is_rate_limited(fault)
    assert in_window == most == 5  # the lab counts refused requests too: they were asked


def test_a_slow_publisher_answers_after_its_delay() -> None:
    d = _lab()

    async def timed(host: str, cluster: str) -> float:
        settings = _settings(d, host=host, password_file=d / "secrets" / f"{cluster}-axl.password")
        async with _client(settings, _password(d, cluster)) as client:
            started = time.monotonic()
            reply = await client.post(AXL_PATH, b"<x/>", "CUCM:DB ver=12.5 executeSQLQuery")
            assert reply.error is None and reply.status is not None
            return time.monotonic() - started

    async def go() -> tuple[float, float]:
        async with serving(d):
            return await timed(DEST_PUB, "destination"), await timed(SOURCE_PUB, "source")

    slow, fast = asyncio.run(go())
    assert slow >= SLOW
    assert fast < slow


def test_the_tomcat_certificate_verifies_with_the_lab_ca_for_the_publisher_address_only() -> None:
    d = _lab()
    ca = str(d / "pki" / "api-ca.pem")

    async def handshake(server_hostname: str, cafile: str | None) -> str:
        ctx = ssl.create_default_context(cafile=cafile)
        try:
            _, writer = await asyncio.open_connection(SOURCE_PUB, 8443, ssl=ctx, server_hostname=server_hostname)
        except ssl.SSLCertVerificationError as exc:
            return f"refused: {exc.verify_message}"
        writer.close()
        await writer.wait_closed()
        return "ok"

    async def go() -> tuple[str, str, str, Any]:
        async with serving(d):
            right = await handshake(SOURCE_PUB, ca)
            other = await handshake(f"127.{BASE}.0.2", ca)  # another node's address: not in the SAN
            unknown = await handshake(SOURCE_PUB, None)  # the system's CAs do not know the lab's
            settings = _settings(d, ca_bundle=None)
            async with _client(settings, _password(d, "source")) as client:
                reply = await client.post(AXL_PATH, b"<x/>", "CUCM:DB ver=10.5 executeSQLQuery")
            return right, other, unknown, reply

    right, other, unknown, reply = asyncio.run(go())
    assert right == "ok"
    assert other.startswith("refused") and "mismatch" in other.lower()
    assert unknown.startswith("refused")
    assert reply.status is None and reply.error is not None and "not trusted" in reply.error


# -- CucmApi without sockets -----------------------------------------------------------------------


def _auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_risport_cuts_an_answer_at_1000_devices_and_counts_them_all() -> None:
    nodes = (LabNode("127.0.0.1", publisher=True, tftp=True), LabNode("127.0.0.2", tftp=True))
    devices = [
        LabDevice(f"SEP{0x0A0000000000 + i:012X}", node=nodes[i % 2].name, addresses=(f"127.9.{i // 250}.{i % 250 + 1}",),
                  failed_over_from=nodes[(i + 1) % 2].name if i % 10 == 0 else None)
        for i in range(1200)
    ]
    api = CucmApi("source", devices, nodes, {"u": "p"})
    asked = [d.name for d in devices[:1000]]
    status, body = api.answer(RISPORT_PATH, _auth("u", "p"), risport.select_request(asked))
    assert status == 200
    parsed = parse_response(body, what="t")
    assert not isinstance(parsed, SoapFault)
    answer = risport.parse_select(parsed, what="t")
    assert len(answer.registrations) == 1000  # 1,000 names + 100 older entries: cut at the cap
    assert answer.total_found == 1000  # ... while the count says how many devices were found
    listed = {r.name for r in answer.registrations}
    assert 0 < len(set(asked) - listed) < 100  # the last names did not fit
    status, _ = api.answer(RISPORT_PATH, _auth("u", "wrong"), risport.select_request(asked))
    assert status == 401


def test_the_rate_window_slides_with_the_clock() -> None:
    now = [100.0]
    api = CucmApi("source", [LabDevice("SEP0A0000000001", node="n")], [LabNode("n", True, True)], {"u": "p"},
                  per_minute=2, clock=lambda: now[0])
    body = risport.select_request(["SEP0A0000000001"])

    def ask() -> int:
        now[0] += 1
        return api.answer(RISPORT_PATH, _auth("u", "p"), body)[0]

    assert [ask(), ask(), ask()] == [200, 200, 500]
    now[0] += 60  # the first two leave the 60-second window
    assert ask() == 200


def test_api_from_lab_json_round_trips_the_database() -> None:
    d = _lab()
    lab = _lab_json(d)
    src = api_from_json("source", lab["clusters"]["source"]["cucm"])
    dst = api_from_json("destination", lab["clusters"]["destination"]["cucm"])
    assert len(src.devices) == 40 and dst.devices == []
    assert src.versions[0] == "10.5" and dst.versions[0] == "12.5"
    assert {d.status for d in src.devices} == {"Registered", "UnRegistered"}
    failed = [d for d in src.devices if d.failed_over_from]
    assert len(failed) == 3 and all(d.failed_over_from != d.node for d in failed)
    assert dst.per_minute == 15 and src.per_minute == 3


def test_a_scan_of_the_wrong_password_lab_is_refused_as_its_answer_key_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The answer key's ``refused`` against the real command: ``scan`` with profile.toml stops
    with exit 64 naming the cluster and the publisher, and writes no report."""
    from scanner.cli.main import main
    from scanner.lab.answer import refusal_differences

    d = built_lab("axl-wrong-password", phones=6, base=BASE)
    key = json.loads((d / "answer-key.json").read_text())

    async def go() -> int:
        async with serving(d):
            args = ["scan", "--profile", str(d / "profile.toml"), "--out", str(tmp_path / "scan"),
                    "--no-history", "--no-progress"]
            return await asyncio.to_thread(main, args)

    code = asyncio.run(go())
    err = capsys.readouterr().err
    assert refusal_differences(key, code, err) == [], err
    assert not (tmp_path / "scan" / "report.json").exists()
    assert _password(d, "source") not in err


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        ('name = "axl-slow"\nnode = "src-sub1"\n', "faults[0].node: must be one of src-pub, dst-pub"),
        ('name = "axl-slow"\nnode = "src-pub"\ndelay = 31\n', "faults[0].delay"),
        ('name = "risport-rate-limit"\nper_minute = 0\n', "faults[0].per_minute"),
        ('name = "risport-rate-limit"\nnode = "src-pub"\n', "takes no node"),
        ('name = "axl-wrong-password"\ncluster = "both"\n', "faults[0].cluster: must be one of source, destination"),
        ('name = "phone-unregistered"\n', "needs fraction"),
    ],
)
def test_the_discovery_faults_refuse_bad_parameters(fault: str, needle: str) -> None:
    from scanner.lab.errors import LabError

    with pytest.raises(LabError) as info:
        parse_scenario(f'name = "bad"\n[[faults]]\n{fault}', "bad.toml")
    assert needle in str(info.value) and "bad.toml" in str(info.value)
