"""profile.toml: the keys the lab writes, defaults, and a clear error naming each bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.core.errors import ParseError
from scanner.core.profile import ClusterMode, Transport, is_valid_host, parse_profile
from scanner.core.ratelimit import Limits
from scanner.store.profiles import load_profile

GOOD = b"""
[clusters.source]
mode = "mixed"
version = "11.5"
trust_stores = { phone-sast-trust = "stores/src-sast", callmanager-trust = "stores/src-cm" }

[[clusters.source.tftp]]
name = "src-pub"
address = "127.0.1.1"

[[clusters.source.tftp]]
name = "src-sub"
address = "cucm-sub.example.com"
tftp_port = 1069
http_port = 16970

[[clusters.source.tvs]]
name = "src-pub"
address = "127.0.1.1"

[clusters.destination]
mode = "non-secure"
transport = "both"

[[clusters.destination.tftp]]
name = "dst-pub"
address = "::1"

[phones]
web_port = 8080
web_scheme = "https"

[limits]
per_node_concurrency = 8
per_node_rate = 50
"""


def parse(data: bytes) -> object:
    return parse_profile(data, base_dir=Path("/lab"))


def test_good_profile_with_defaults() -> None:
    p = parse_profile(GOOD, base_dir=Path("/lab"))
    assert p.source.mode is ClusterMode.MIXED and p.source.mixed
    assert p.source.version == "11.5"
    assert p.source.transport is Transport.HTTP_FIRST  # the default
    assert p.destination.transport is Transport.BOTH
    assert dict(p.source.trust_stores)["phone-sast-trust"] == Path("/lab/stores/src-sast")
    pub, sub = p.source.tftp
    assert (pub.tftp_port, pub.http_port) == (69, 6970)
    assert (sub.address, sub.tftp_port, sub.http_port) == ("cucm-sub.example.com", 1069, 16970)
    assert p.source.tvs[0].port == 2445
    assert p.destination.tvs == ()
    assert (p.phones.web_port, p.phones.web_scheme) == (8080, "https")
    assert p.limits.per_node_concurrency == 8
    assert p.limits.per_node_rate == 50.0 and isinstance(p.limits.per_node_rate, float)
    assert p.limits.dead_after == Limits().dead_after
    assert len(p.sha256) == 64
    snap = p.snapshot()
    assert snap["clusters"]["destination"]["transport"] == "both"


def test_load_profile_resolves_paths_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "profile.toml").write_bytes(GOOD)
    p = load_profile(tmp_path / "profile.toml")
    assert dict(p.source.trust_stores)["callmanager-trust"] == (tmp_path / "stores/src-cm").resolve()
    assert p.path == tmp_path / "profile.toml"


def test_missing_file_is_a_parse_error(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="cannot read profile"):
        load_profile(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("old", "new", "message", "line"),
    [
        (
            b'transport = "both"',
            b'transport = "ftp"',
            "clusters.destination.transport: unknown value 'ftp'",
            23,
        ),
        (b'mode = "non-secure"', b'mode = "secure"', "clusters.destination.mode: unknown value", 22),
        (b'mode = "non-secure"\n', b"", "clusters.destination.mode: missing", 21),
        (b'name = "src-sub"\n', b"", r"clusters.source.tftp\[1\].name: missing", 11),
        (b'address = "cucm-sub.example.com"', b'address = "bad host!"', r"tftp\[1\].address: not an IP", 13),
        (b"tftp_port = 1069", b"tftp_port = 70000", r"tftp\[1\].tftp_port: must be a port", 14),
        (b"web_port = 8080", b"web_port = true", "phones.web_port: must be a port", 30),
        (b'web_scheme = "https"', b'web_scheme = "ftp"', "phones.web_scheme: unknown value", 31),
        (b"per_node_rate = 50", b"per_node_rate = -1", "limits: per_node_rate must be a positive", 33),
        (b"per_node_rate = 50", b"per_node_speed = 50", "limits.per_node_speed: unknown key", 35),
        (b"per_node_rate = 50", b'per_node_rate = "x"', "limits.per_node_rate: must be a float", 35),
        (b'version = "11.5"', b'trasnport = "tftp"', "clusters.source.trasnport: unknown key", 4),
    ],
)
def test_bad_profiles_name_the_key(old: bytes, new: bytes, message: str, line: int) -> None:
    assert old in GOOD
    with pytest.raises(ParseError, match=message) as info:
        parse(GOOD.replace(old, new, 1))
    assert info.value.line == line, str(info.value)


def test_missing_cluster_and_nodes() -> None:
    with pytest.raises(ParseError, match=r"clusters\.destination: missing"):
        parse(GOOD.split(b"[clusters.destination]")[0])
    no_nodes = b'[clusters.source]\nmode = "mixed"\n[clusters.destination]\nmode = "mixed"\n'
    with pytest.raises(ParseError, match=r"clusters.source.tftp: missing") as info:
        parse(no_nodes)
    assert info.value.line == 1
    with pytest.raises(ParseError, match="clusters: missing"):
        parse(b"[phones]\n")


def test_duplicate_node_names_and_bad_toml() -> None:
    dup = GOOD.replace(b'name = "src-sub"', b'name = "src-pub"')
    with pytest.raises(ParseError, match="appears twice"):
        parse(dup)
    with pytest.raises(ParseError, match="not valid TOML") as info:
        parse(b"[clusters.source\nmode=1\n")
    assert info.value.line == 1


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("cucm.example.com", True),
        ("cucm", True),
        ("a-b.c.", True),
        ("10.0.0.256", False),
        ("-bad.example", False),
        ("under_score.example", False),
        ("", False),
        ("a..b", False),
    ],
)
def test_hosts(host: str, ok: bool) -> None:
    assert is_valid_host(host) is ok
