"""Sites without Dask: ``[sites.NAME]`` parsing, matching phones to sites, shard planning, the
politeness split and the version check (``scanner.core.sites``, ``scanner.core.profile``)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from scanner.core.errors import ParseError
from scanner.core.inventory import Phone
from scanner.core.profile import Profile, parse_profile
from scanner.core.ratelimit import Limits
from scanner.core.sites import (
    SITE_NAME_RULE,
    Assignment,
    Site,
    SiteConflict,
    assign,
    parallel_shards,
    plan_shards,
    share_limits,
    site_name_problem,
    version_problems,
)

BASE = b"""
[clusters.source]
mode = "mixed"
trust_stores = { phone-sast-trust = "s", callmanager-trust = "c" }

[[clusters.source.tftp]]
name = "src-pub"
address = "127.0.1.1"

[clusters.destination]
mode = "non-secure"

[[clusters.destination.tftp]]
name = "dst-pub"
address = "127.0.2.1"
"""


def parse(extra: str) -> Profile:
    return parse_profile(BASE + extra.encode(), base_dir=Path("/lab"))


def phone(i: int, pool: str | None = None, ip: str | None = None) -> Phone:
    return Phone(f"SEP{i:012X}", ip=ip, device_pool=pool)


# --- profile -------------------------------------------------------------------------------------


def test_profile_sites_parsed_in_order_with_pools_and_prefixes() -> None:
    p = parse("""
[sites.paris]
device_pools = ["DP-Paris", " DP-Paris-2 "]

[sites.lyon-1]
prefixes = ["10.20.0.0/16", "2001:db8::/32", "10.30.1.7/24"]
device_pools = ["DP-LYON"]
""")
    assert [s.name for s in p.sites] == ["paris", "lyon-1"]
    assert p.sites[0].device_pools == ("DP-Paris", "DP-Paris-2")
    # A host address with a prefix length is taken as its network (strict=False), as ip route does.
    assert p.sites[1].prefixes == (
        ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("10.30.1.0/24"),
    )
    assert p.sites[1].resource == "site-lyon-1"
    assert p.snapshot()["sites"] == {
        "paris": {"device_pools": ["DP-Paris", "DP-Paris-2"], "prefixes": []},
        "lyon-1": {"device_pools": ["DP-LYON"], "prefixes": ["10.20.0.0/16", "2001:db8::/32", "10.30.1.0/24"]},
    }


def test_profile_without_sites_keeps_its_snapshot() -> None:
    p = parse("")
    assert p.sites == ()
    assert "sites" not in p.snapshot()  # old evidence directories still resume with such a profile


@pytest.mark.parametrize(
    ("extra", "where", "words"),
    [
        ('[sites."a b"]\ndevice_pools = ["X"]\n', "sites.a b", "cannot be a Dask resource name"),
        ('[sites."a=1"]\ndevice_pools = ["X"]\n', "sites.a=1", SITE_NAME_RULE),
        (f'[sites.{"x" * 65}]\ndevice_pools = ["X"]\n', "sites.x", SITE_NAME_RULE),
        ("[sites.a]\n", "sites.a", "selects no phone"),
        ('[sites.a]\ndevice_pools = "DP"\n', "sites.a.device_pools", "array of non-empty strings"),
        ('[sites.a]\ndevice_pools = [""]\n', "sites.a.device_pools", "array of non-empty strings"),
        ('[sites.a]\nprefixes = ["10.0.0.0/33"]\n', "sites.a.prefixes[0]", "not an address prefix"),
        ('[sites.a]\npools = ["DP"]\n', "pools", "unknown"),
        ('sites = 3\n', "sites", ""),
    ],
)
def test_bad_sites_are_refused_naming_the_key(extra: str, where: str, words: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(extra)
    message = str(info.value)
    assert where in message and words.lower() in message.lower(), message


@pytest.mark.parametrize("name", ["a", "site_1", "HQ-Paris", "x" * 64, "0"])
def test_site_names_dask_can_carry(name: str) -> None:
    assert site_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "a b", "a,b", "a=b", "é", "x" * 65, "a.b", "a/b"])
def test_site_names_dask_cannot_carry(name: str) -> None:
    problem = site_name_problem(name)
    assert problem is not None and SITE_NAME_RULE in problem


# --- matching --------------------------------------------------------------------------------


SITES = (
    Site("a", device_pools=("DP-A",)),
    Site("b", prefixes=(ipaddress.ip_network("10.2.0.0/16"),)),
    Site("c", device_pools=("DP-C",), prefixes=(ipaddress.ip_network("10.3.0.0/16"),)),
)


def test_each_phone_goes_to_its_site_or_stays_central() -> None:
    phones = [
        phone(1, "dp-a", "192.0.2.1"),  # pool compared without case
        phone(2, None, "10.2.9.9"),
        phone(3, "DP-C"),
        phone(4, "DP-X", "10.3.0.1"),
        phone(5, "DP-X", "10.9.0.1"),  # no site: the coordinator's
        phone(6, None, None),
        phone(7, "DP-X", "not-an-address"),
        phone(8, None, "2001:db8::1"),  # IPv6 never matches an IPv4 prefix
    ]
    got = assign(SITES, phones)
    assert {k: [p.name for p in v] for k, v in got.by_site.items()} == {
        "a": [phones[0].name], "b": [phones[1].name], "c": [phones[2].name, phones[3].name],
    }
    assert [p.name for p in got.central] == [p.name for p in phones[4:]]
    assert got.site_of()[phones[3].name] == "c"


def test_a_site_with_no_phone_is_still_listed() -> None:
    got = assign(SITES, [phone(1, "DP-A")])
    assert got.by_site["b"] == () and got.by_site["c"] == ()


def test_a_phone_matched_by_two_sites_is_refused_naming_both() -> None:
    overlapping = (*SITES, Site("d", prefixes=(ipaddress.ip_network("10.2.3.0/24"),)))
    with pytest.raises(SiteConflict) as info:
        assign(overlapping, [phone(1, "DP-A"), phone(2, None, "10.2.3.4")])
    message = str(info.value)
    assert "SEP000000000002" in message and "sites.b and sites.d" in message
    assert "SEP000000000001" not in message
    assert isinstance(info.value, ParseError)  # the CLI's bad-input path: exit 64


def test_many_conflicts_are_counted_not_all_listed() -> None:
    sites = (Site("a", device_pools=("DP",)), Site("b", device_pools=("dp",)))
    with pytest.raises(SiteConflict) as info:
        assign(sites, [phone(i, "DP") for i in range(12)])
    message = str(info.value)
    assert message.startswith("12 phones matched by more than one site")
    assert "and 7 more" in message and message.count("is matched by") == 5


# --- shards, limits, versions ------------------------------------------------------------------


def test_shards_are_bounded_near_equal_and_keep_every_phone() -> None:
    a = Assignment({"a": tuple(phone(i) for i in range(501)), "b": (), "c": (phone(900),)}, ())
    shards = plan_shards(a, max_phones=250)
    assert [(s.site, s.index, len(s.phones)) for s in shards] == [("a", 0, 167), ("a", 1, 167), ("a", 2, 167),
                                                                   ("c", 0, 1)]
    assert [p for s in shards if s.site == "a" for p in s.phones] == list(a.by_site["a"])
    assert shards[1].key == "a#1"
    with pytest.raises(ValueError):
        plan_shards(a, max_phones=0)


def test_parallel_shards_counts_one_per_worker_of_each_site() -> None:
    a = Assignment({"a": tuple(phone(i) for i in range(10)), "b": tuple(phone(100 + i) for i in range(3))}, ())
    shards = plan_shards(a, max_phones=2)  # a: 5 shards, b: 2
    assert parallel_shards(shards, {"a": 3, "b": 5}) == 3 + 2
    assert parallel_shards(shards, {"a": 0}) == 2  # a site with no worker yet still counts one
    assert parallel_shards((), {}) == 1


def test_share_limits_keeps_the_sum_within_the_scan_limits() -> None:
    lim = Limits(per_node_concurrency=64, per_node_rate=500.0, per_node_burst=50)
    assert share_limits(lim, 1) is lim
    part = share_limits(lim, 3)
    assert part.per_node_concurrency * 3 <= 64 and part.per_node_rate * 3 <= 500.0 + 1e-9
    assert part.per_node_burst * 3 <= 50
    assert part.job_timeout == lim.job_timeout  # only the per-node budget is shared
    tiny = share_limits(Limits(per_node_concurrency=2, per_node_rate=4.0, per_node_burst=1), 8)
    assert tiny.per_node_concurrency == 1 and tiny.per_node_burst == 1 and tiny.per_node_rate == 0.5


def test_version_problems_name_both_versions() -> None:
    assert version_problems("1.2", {"tcp://w1": "1.2"}) == []
    assert version_problems("1.2", {"tcp://w2": "1.1", "tcp://w1": None}) == [
        "worker tcp://w1 runs trustscan (not installed), this coordinator 1.2",
        "worker tcp://w2 runs trustscan 1.1, this coordinator 1.2",
    ]
