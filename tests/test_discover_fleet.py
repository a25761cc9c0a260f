"""A profile's ``[clusters.<c>.axl]``: parsing, the fleet a discovery finds (nodes added to the
profile, phones as the inventory, the record kept as ``discovery.json``), the inventory CSV
``trustscan discover`` writes, and where the CLI reads passwords. No sockets: the lab's AXL and
RisPort70 (``scanner.lab.cucm_api``) are called directly, with virtual time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from scanner.app.discover import DiscoveryError, FleetDiscovery, discover_fleet, fleet_from_record
from scanner.cli.discover import read_passwords
from scanner.cli.output import Stop
from scanner.core.cucm.axl import ClusterNode
from scanner.core.cucm.discovery import complete_cluster
from scanner.core.cucm.settings import AxlSettings
from scanner.core.errors import ParseError
from scanner.core.inventory import inventory_csv, parse_inventory
from scanner.core.profile import Profile, parse_profile
from scanner.lab.cucm_api import CucmApi, LabDevice, LabNode
from tests.test_discover import PASSWORD, Clock, Poster, _devices

SRC_NODES = (
    LabNode("127.3.0.1", publisher=True, tftp=True, tvs=True),
    LabNode("127.3.0.2", tftp=True, tvs=True),
    LabNode("127.3.1.3", tvs=True),
    LabNode("db-only.example", publisher=False),
)
DST_NODES = (LabNode("127.3.10.1", publisher=True, tftp=True, tvs=True),)

PROFILE = """
[clusters.source]
mode = "mixed"
discovered_ports = { tftp = 6969, http = 6970, tvs = 2445 }
[clusters.source.axl]
host = "127.3.0.1"
user = "axlreader"
password_env = "TRUSTSCAN_TEST_SRC_PW"
ca_bundle = "ca.pem"
risport_per_minute = 15
[[clusters.source.tftp]]
name = "by-hand"
address = "127.3.0.2"
tftp_port = 7069

[clusters.destination]
mode = "mixed"
[clusters.destination.axl]
host = "127.3.10.1"
user = "axlreader"
password_file = "secrets/dst.pw"
"""


def _profile(text: str = PROFILE, base: Path = Path("/lab")) -> Profile:
    return parse_profile(text.encode(), base_dir=base)


# -- the profile ---------------------------------------------------------------------------------


def test_axl_tables_parse_with_paths_resolved_and_nodes_optional() -> None:
    p = _profile()
    assert p.source.axl == AxlSettings(
        host="127.3.0.1", user="axlreader", password_env="TRUSTSCAN_TEST_SRC_PW", ca_bundle=Path("/lab/ca.pem"),
        risport_per_minute=15.0,
    )
    assert p.destination.axl is not None and p.destination.axl.password_file == Path("/lab/secrets/dst.pw")
    assert p.destination.tftp == () and [n.name for n in p.source.tftp] == ["by-hand"]
    assert (p.source.discovered_ports.tftp, p.destination.discovered_ports.tftp) == (6969, 69)
    snap = orjson.dumps(p.snapshot()).decode()
    assert "TRUSTSCAN_TEST_SRC_PW" in snap and "secrets/dst.pw" in snap  # where, never what


@pytest.mark.parametrize(
    ("change", "key", "why"),
    [
        (('password_env = "TRUSTSCAN_TEST_SRC_PW"', 'password = "hunter2"'), "clusters.source.axl.password", "never written"),
        (('password_env = "TRUSTSCAN_TEST_SRC_PW"', 'password_env = "not a name"'), "password_env", "not an environment"),
        (('password_env = "TRUSTSCAN_TEST_SRC_PW"', ""), "clusters.source.axl", "exactly one"),
        (('host = "127.3.0.1"', 'host = "bad host!"'), "clusters.source.axl.host", "not an IP address"),
        (('ca_bundle = "ca.pem"', 'ca_bundle = "ca.pem"\nverify = false'), "ca_bundle", "choose one"),
        (("risport_per_minute = 15", "risport_per_minute = 0"), "clusters.source.axl", "risport_per_minute"),
        (("risport_per_minute = 15", 'version = "fifteen"'), "version", "schema version"),
        (("risport_per_minute = 15", "colour = 1"), "colour", "unknown"),
    ],
)
def test_bad_axl_tables_name_the_key(change: tuple[str, str], key: str, why: str) -> None:
    with pytest.raises(ParseError) as exc:
        _profile(PROFILE.replace(*change, 1))
    assert key in str(exc.value) and why in str(exc.value)
    assert "hunter2" not in str(exc.value)


def test_without_axl_a_cluster_still_needs_its_tftp_nodes() -> None:
    text = PROFILE.split("[clusters.destination.axl]")[0]
    with pytest.raises(ParseError, match=r"clusters\.destination\.tftp.*\[clusters\.destination\.axl\]"):
        _profile(text)
    no_axl = text.split("[clusters.source.axl]")[0] + '[[clusters.source.tftp]]\nname = "a"\naddress = "127.3.0.1"\n'
    with pytest.raises(ParseError, match=r"clusters\.source\.discovered_ports.*only means something"):
        _profile(no_axl + PROFILE.split("password_env")[1].split("[clusters.destination]")[1].join(["[clusters.destination]", ""]))


# -- the nodes -----------------------------------------------------------------------------------


def test_discovered_nodes_join_the_hand_written_ones_which_win() -> None:
    p = _profile()
    nodes = [ClusterNode(n.name, n.publisher, n.tftp, n.tvs) for n in SRC_NODES]
    done, warnings = complete_cluster(p.source, nodes)
    assert [(n.name, n.address, n.tftp_port) for n in done.tftp] == [
        ("by-hand", "127.3.0.2", 7069),  # as written, not duplicated
        ("127.3.0.1", "127.3.0.1", 6969),
    ]
    assert [(n.address, n.port) for n in done.tvs] == [("127.3.0.1", 2445), ("127.3.0.2", 2445), ("127.3.1.3", 2445)]
    assert warnings == ()
    _, warnings = complete_cluster(p.source, [ClusterNode("no such node!", True, True, True)])
    assert any("not a host name" in w for w in warnings) and any("no node running the TFTP" in w for w in warnings)


# -- the fleet, against the lab's APIs -----------------------------------------------------------


def _apis(clock: Clock, n: int = 1500) -> dict[str, CucmApi]:
    devices = [d if d.node is None else LabDevice(**{**{f: getattr(d, f) for f in d.__slots__}, "node": SRC_NODES[i % 2].name})  # type: ignore[arg-type]
               for i, d in enumerate(_devices(n))]
    return {
        "127.3.0.1": CucmApi("source", devices, SRC_NODES, {"axlreader": PASSWORD}, clock=clock),
        "127.3.10.1": CucmApi("destination", [], DST_NODES, {"axlreader": "other-" + PASSWORD}, clock=clock),
    }


def _fleet(apis: dict[str, CucmApi], clock: Clock, passwords: dict[str, str], csv: bytes | None = None) -> FleetDiscovery:
    @contextlib.asynccontextmanager
    async def client_for(settings: AxlSettings, password: str) -> AsyncIterator[Poster]:
        yield Poster(apis[settings.host], settings.user, password, clock)

    inventory = None if csv is None else parse_inventory(csv, path="extra.csv")
    return asyncio.run(discover_fleet(_profile(), passwords, inventory, None if csv is None else {"path": "extra.csv"},
                                      client_for=client_for, sleep=clock.sleep, clock=clock))


PASSWORDS = {"source": PASSWORD, "destination": "other-" + PASSWORD}


def test_the_fleet_is_the_source_phones_and_both_clusters_nodes() -> None:
    clock = Clock()
    apis = _apis(clock)
    fleet = _fleet(apis, clock, PASSWORDS)
    assert len(fleet.inventory.phones) == 1500
    assert [n.address for n in fleet.profile.destination.tftp] == ["127.3.10.1"]
    assert {n.address for n in fleet.profile.source.tftp} == {"127.3.0.1", "127.3.0.2"}
    rec = fleet.record
    assert rec["clusters"]["source"]["phones"] == 1500 and rec["clusters"]["destination"]["phones"] == 0
    assert rec["clusters"]["destination"]["risport_calls"] == 0  # the destination's phones are not asked
    assert rec["clusters"]["source"]["settings"] == {"mixed_mode": True, "rollback_to_pre_8": False}
    unregistered = [p for p in fleet.inventory.phones if p.ip is None]
    assert unregistered and all(p.no_address and p.no_address.startswith("not registered") for p in unregistered)
    assert PASSWORD not in orjson.dumps(rec).decode()


def test_the_record_gives_back_the_same_fleet_and_refuses_damage(tmp_path: Path) -> None:
    clock = Clock()
    fleet = _fleet(_apis(clock, 300), clock, PASSWORDS)
    again = fleet_from_record(_profile(), orjson.loads(orjson.dumps(fleet.record)))
    assert again.profile == fleet.profile and again.inventory.phones == fleet.inventory.phones
    assert again.inventory_sha256 == fleet.inventory_sha256
    with pytest.raises(ParseError, match="format"):
        fleet_from_record(_profile(), {"format": 99})
    broken = dict(fleet.record, phones=[{"name": "SEP001122334455", "colour": "red"}])
    with pytest.raises(ParseError, match="damaged"):
        fleet_from_record(_profile(), broken)


def test_a_wrong_password_stops_with_the_cluster_and_host_named() -> None:
    clock = Clock()
    with pytest.raises(DiscoveryError) as exc:
        _fleet(_apis(clock, 10), clock, {"source": PASSWORD, "destination": "wrong"})
    text = str(exc.value)
    assert "cluster destination" in text and "127.3.10.1:8443" in text and "401" in text and "wrong" not in text.split("user")[0]


def test_the_csv_fills_and_overrides_and_its_extra_phones_are_warned() -> None:
    clock = Clock()
    csv = (b"Device Name,Description,IP Address\r\nSEP0A0000000007,from the csv,127.3.200.7\r\n"
           b"SEP0A0000000000,,\r\nSEPFFFFFFFFFFFF,not in the cluster,127.3.200.9\r\n")
    fleet = _fleet(_apis(clock, 100), clock, PASSWORDS, csv)
    by = {p.name: p for p in fleet.inventory.phones}
    assert by["SEP0A0000000007"].ip == "127.3.200.7" and by["SEP0A0000000007"].no_address is None
    assert by["SEP0A0000000007"].description == "from the csv"
    assert by["SEP0A0000000000"].description == "phone 0"  # an empty cell does not erase
    assert "SEPFFFFFFFFFFFF" in by and any("SEPFFFFFFFFFFFF" in w and "not in the cluster" in w for w in fleet.warnings)


def test_the_inventory_csv_reads_back_to_the_same_phones() -> None:
    clock = Clock()
    fleet = _fleet(_apis(clock, 200), clock, PASSWORDS)
    back = parse_inventory(inventory_csv(fleet.inventory.phones), path="discovered.csv")
    assert back.issues == ()
    strip = [(p.name, p.description, p.device_type, p.device_pool, p.ip) for p in fleet.inventory.phones]
    assert [(p.name, p.description, p.device_type, p.device_pool, p.ip) for p in back.phones] == strip
    text = inventory_csv(fleet.inventory.phones).decode()
    assert "not registered" in text  # the reviewer sees why an address is missing


# -- passwords -----------------------------------------------------------------------------------


def test_passwords_come_from_the_named_variable_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "dst.pw").write_text("file-secret\nignored second line\n")
    p = _profile(base=tmp_path)
    monkeypatch.delenv("TRUSTSCAN_TEST_SRC_PW", raising=False)
    with pytest.raises(Stop) as exc:
        read_passwords(p)
    assert exc.value.code == 64 and "TRUSTSCAN_TEST_SRC_PW" in str(exc.value) and "cluster source" in str(exc.value)
    monkeypatch.setenv("TRUSTSCAN_TEST_SRC_PW", "env-secret")
    assert read_passwords(p) == {"source": "env-secret", "destination": "file-secret"}
    (tmp_path / "secrets" / "dst.pw").write_text("\n")
    with pytest.raises(Stop, match="empty"):
        read_passwords(p)
