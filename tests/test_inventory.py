"""The CUCM phone export: bad rows named by line, the rest used; discovery lists."""

from __future__ import annotations

import pytest

from scanner.core.errors import ParseError
from scanner.core.inventory import (
    Phone,
    normalise_device_name,
    parse_config_cache_list,
    parse_inventory,
    read_config_cache_list,
)

CSV = (
    "\ufeffDevice Name,Description,Device Type,IP Address,Device Pool\n"
    "SEP001122334455,Lobby,Cisco 8841,127.0.2.1,DP-HQ\n"
    'sep0011223344aa,"Desk, 2nd floor",Cisco 7841,,DP-HQ\n'  # lower case, no IP
    "SEP00112233,Short MAC,Cisco 8841,127.0.2.3,DP-HQ\n"  # line 4: invalid MAC
    "SEP001122334466,Bad IP,Cisco 8841,10.0.0.300,DP-HQ\n"  # line 5: invalid address
    "SEP001122334455,Again,Cisco 8841,127.0.2.9,DP-HQ\n"  # line 6: duplicate of line 2
    "CSFJDOE,Jabber,Cisco Unified Client Services Framework,,DP-HQ\n"  # line 7: not MAC-based
    "\n"
    '"SEP0011223344BB","multi\nline",Cisco 8865,::1,DP-BR\n'  # lines 9-10
    "ATA0011223344CC,ATA,Cisco ATA 191,127.0.2.5,DP-BR\n"  # line 11
    ",no name,Cisco 8841,127.0.2.6,DP-BR\n"  # line 12: empty name
).encode()


def test_rows_and_issues_by_line() -> None:
    inv = parse_inventory(CSV, path="inv.csv")
    assert [p.name for p in inv.phones] == [
        "SEP001122334455",
        "SEP0011223344AA",
        "SEP0011223344BB",
        "ATA0011223344CC",
    ]
    first = inv.phones[0]
    assert first == Phone("SEP001122334455", "Lobby", "Cisco 8841", "127.0.2.1", "DP-HQ", 2)
    assert first.mac == "001122334455"
    assert inv.phones[1].ip is None and inv.phones[1].description == "Desk, 2nd floor"
    assert inv.phones[2].line == 9 and inv.phones[2].ip == "::1"
    by_line = {e.line: str(e) for e in inv.issues}
    assert set(by_line) == {4, 5, 6, 7, 12}
    assert "invalid MAC" in by_line[4] and by_line[4].startswith("inv.csv: line 4")
    assert "invalid IP address '10.0.0.300'" in by_line[5]
    assert "duplicate device SEP001122334455 (first listed on line 2)" in by_line[6]
    assert "not MAC-based" in by_line[7]
    assert "empty device name" in by_line[12]


def test_header_variants() -> None:
    inv = parse_inventory(b"DEVICE_NAME;x\n".replace(b";", b",") + b"SEP00AABBCCDDEE,1\n")
    assert inv.phones[0].name == "SEP00AABBCCDDEE" and inv.phones[0].ip is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty inventory"),
        (b"Name,IP\nSEP001122334455,1.2.3.4\n", "no 'Device Name' column"),
        (b"Device Name,IP Address\n", "only a header row"),
        (b"Device Name,IP Address\n\n\r\n", "only a header row"),
    ],
)
def test_unusable_files(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message) as info:
        parse_inventory(data)
    assert info.value.line == 1


def test_latin1_export() -> None:
    inv = parse_inventory("Device Name,Description\nSEP001122334455,Büro\n".encode("latin-1"))
    assert inv.phones[0].description == "Büro"


def test_normalise() -> None:
    assert normalise_device_name(" sepabcdefabcdef ") == "SEPABCDEFABCDEF"
    with pytest.raises(ValueError, match="invalid MAC"):
        normalise_device_name("SEPXYZ")


def test_config_cache_list() -> None:
    data = (
        b"SEP001122334455.cnf.xml 4711 2024-01-01\r\n"
        b"sep0011223344aa.cnf.xml.sgn 5000\n"
        b"XMLDefault.cnf.xml 100\nSEP001122334455.cnf.xml.sgn 10\nATA0011223344CC.cnf.xml 9\n"
        b"SEPNOTAMAC.cnf.xml\n"
    )
    assert parse_config_cache_list(data) == ("SEP001122334455", "SEP0011223344AA", "ATA0011223344CC")


def test_config_cache_list_path_like_lines_add_no_phantom_phones() -> None:
    data = (
        b"SEP001122334455.cnf.xml 4711\n"
        b"/tmp/SEPAAAAAAAAAAAA.cnf.xml\n"
        b"C:\\\\tftp\\\\SEPBBBBBBBBBBBB.cnf.xml 12\n"
        b"SEPCCCCCCCCCCCC.cnf.xml.bak\n"
        b"XMLDefault.cnf.xml\n"
        b"ATA0011223344CC.cnf.xml.enc.sgn 9\n"
    )
    assert parse_config_cache_list(data) == ("SEP001122334455", "ATA0011223344CC")
    listing = read_config_cache_list(data, path="src-pub/ConfigFileCacheList.txt")
    assert listing.names == ("SEP001122334455", "ATA0011223344CC")
    assert [e.line for e in listing.issues] == [2, 3, 4]
    assert "/tmp/SEPAAAAAAAAAAAA.cnf.xml" in listing.issues[0].reason
    assert all(e.path == "src-pub/ConfigFileCacheList.txt" for e in listing.issues)


@pytest.mark.parametrize(("sep", "word"), [(b";", "semicolon"), (b"\t", "tab"), (b"|", "pipe")])
def test_other_delimiters_are_named(sep: bytes, word: str) -> None:
    data = b"Device Name" + sep + b"IP Address\nSEP001122334455" + sep + b"127.0.0.1\n"
    with pytest.raises(ParseError, match=f"{word}-delimited") as info:
        parse_inventory(data, path="inv.csv")
    assert "no 'Device Name' column" in str(info.value) and str(info.value).startswith("inv.csv: line 1")


def test_no_delimiter_hint_for_a_comma_file_without_the_column() -> None:
    with pytest.raises(ParseError) as info:
        parse_inventory(b"Name;Address,IP\nSEP001122334455,1.2.3.4\n")
    assert "delimited" not in str(info.value)


def test_all_rows_refused_is_not_an_error_here() -> None:
    # The CLIs refuse it (exit 64, "no usable phone"); the parser reports every refused row.
    inv = parse_inventory(b"Device Name\nSEPBAD\n")
    assert inv.phones == () and [e.line for e in inv.issues] == [2]
