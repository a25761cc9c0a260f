"""Phone evidence from every model: XML pages, DX per-interface labels, the separate security page,
CTL records kept apart from the ITL's, and the status texts phones show for trust lists.

Pages under tests/data/phone-pages/ are hand-written (see the README there). The lab's renderings
(scanner/lab/pages.py) are read back without sockets: every page kind must give the same facts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core.errors import ParseError
from scanner.core.evidence import Outcome
from scanner.core.phonepage import (
    MAX_PAGE_CHARS,
    PageFormat,
    PageInterface,
    PageKind,
    PageRecord,
    PhonePage,
    RecordRole,
    StatusMessages,
    TrustEvent,
    classify_trust_message,
    detect_page,
    is_fips_key_size_message,
    merge_security_page,
    parse_network_page,
    parse_phone_page,
    parse_security_page,
    parse_status_messages,
    parse_xml_page,
    security_page_wanted,
)
from scanner.lab import pages as lab_pages
from scanner.net.http_fetch import HttpResult
from scanner.net.phone_web import PAGES, SECURITY_PAGE, fetch_phone_pages

DATA = Path(__file__).parent / "data" / "phone-pages"


def _read(name: str) -> bytes:
    return (DATA / name).read_bytes()


# --- XML pages ----------------------------------------------------------------------------------


def test_xml_network_configuration_page() -> None:
    raw = _read("xml-CP-7945G-NetworkConfigurationX.xml")
    page = parse_network_page(raw)
    assert page.format is PageFormat.XML
    assert page.kind is PageKind.NETWORK_SETUP
    assert detect_page(raw) is PageKind.NETWORK_SETUP
    assert page.model is None  # the network page names no model; DeviceInformationX does
    assert page.device_name == page.host_name == "SEP0C8525A1B2C3"
    assert page.mac_address == "0C8525A1B2C3"
    assert page.ip_address == "10.20.3.44"
    assert page.tftp_servers == ("10.20.0.11", "10.20.0.12")  # the IPv6 "::" is unset
    assert [(cm.address, cm.state) for cm in page.call_managers] == [
        ("cucm1.corp.example", "Active"),
        ("cucm2.corp.example", "Standby"),
    ]
    assert page.security_mode == "Non Secure"
    assert page.web_access is True and page.ssh_access is False
    assert page.ctl_installed is True and page.itl_installed is True
    assert page.ctl_signature == "112233445566778899" + "00aabbccddeeff01234567"
    assert page.ctl_signature_algo == "sha1"
    assert page.itl_signature == "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4"
    assert page.tvs == ("cucm1.corp.example", "cucm2.corp.example")
    assert page.trust_list_tftp == ("cucm1.corp.example", "cucm2-EC.corp.example")
    assert page.capf_servers == ("CAPF-7a1b2c3d",)
    # The CTL's records apart from the ITL's.
    assert page.ctl_records == (
        PageRecord(RecordRole.CAPF, "CAPF-7a1b2c3d"),
        PageRecord(RecordRole.TFTP, "cucm1.corp.example"),
    )
    assert [r.role for r in page.itl_records][:3] == [RecordRole.CAPF, RecordRole.TVS, RecordRole.TVS]
    # The declared iso-8859-1 is honoured for bytes; the fields keep the element names as shown.
    assert ("UserLocale", "Fran\xe7ais_France") in page.fields
    assert ("TFTPServer1", "10.20.0.11") in page.fields
    # Text and bytes give the same facts; so do the dispatching and the XML-only entry points.
    assert parse_network_page(raw.decode("latin-1")) == page
    assert parse_phone_page(raw) == page == parse_xml_page(raw)


def test_xml_itl_records_follow_the_itl_lines() -> None:
    page = parse_network_page(_read("xml-CP-7945G-NetworkConfigurationX.xml"))
    # The ITL's lines run to the last TFTP record; the IPv6 line after them is no record.
    assert page.itl_records == (
        PageRecord(RecordRole.CAPF, "CAPF-7a1b2c3d"),
        PageRecord(RecordRole.TVS, "cucm1.corp.example"),
        PageRecord(RecordRole.TVS, "cucm2.corp.example"),
        PageRecord(RecordRole.TFTP, "cucm1.corp.example"),
        PageRecord(RecordRole.TFTP, "cucm2-EC.corp.example"),
    )


def test_xml_device_information_page() -> None:
    raw = _read("xml-CP-7945G-DeviceInformationX.xml")
    page = parse_phone_page(raw)
    assert isinstance(page, PhonePage)
    assert page.kind is PageKind.DEVICE_INFORMATION and page.format is PageFormat.XML
    assert page.model == "CP-7945G"
    assert page.device_name == "SEP0C8525A1B2C3" and page.mac_address == "0C8525A1B2C3"
    assert page.ctl_installed is None and page.itl_installed is None  # says nothing, not "absent"


def test_xml_without_declaration_is_known_by_its_root_and_xhtml_stays_html() -> None:
    bare = (
        "<NetworkConfiguration><HostName>SEPX</HostName><ITLFile>Installed</ITLFile></NetworkConfiguration>"
    )
    page = parse_network_page(bare)
    assert page.format is PageFormat.XML and page.itl_installed is True and page.host_name == "SEPX"
    xhtml = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n'
        "<html><body><table><tr><td>ITL File</td><td>Installed</td></tr></table></body></html>"
    )
    page = parse_network_page(xhtml)  # an XHTML page's DTD is no reason to refuse it: read as HTML
    assert page.format is PageFormat.HTML and page.itl_installed is True


def test_xml_status_messages_nested_and_flat() -> None:
    raw = _read("xml-status-messages.xml")
    result = parse_phone_page(raw)
    assert isinstance(result, StatusMessages)
    assert result.format is PageFormat.XML
    assert [(m.timestamp, m.text) for m in result.messages] == [
        ("7:58:02a", "Trust List updated"),
        ("7:58:05a", "ITL installed"),
        ("9:14:41p", "TRUST LIST UPDATE FAILED"),
        ("9:14:45p", "SEP0C8525A1B2C3.cnf.xml.sgn"),
    ]  # the <HostName> field is no message
    assert result.trust_update_failed is True
    assert result.last_trust_event == "TRUST LIST UPDATE FAILED"
    assert parse_status_messages(raw) == result


_BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n]>\n'
    "<NetworkConfiguration><HostName>&lol2;</HostName></NetworkConfiguration>"
)
_EXTERNAL = (
    '<?xml version="1.0"?>\n<!DOCTYPE NetworkConfiguration [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    "<NetworkConfiguration><HostName>&x;</HostName></NetworkConfiguration>"
)


@pytest.mark.parametrize(
    ("page", "message"),
    [
        (_BILLION_LAUGHS, "DTD"),
        (_EXTERNAL, "DTD"),
        ('<?xml version="1.0"?>\n<!DOCTYPE NetworkConfiguration>\n<NetworkConfiguration/>', "DTD"),
        (
            '<?xml version="1.0"?>\n<NetworkConfiguration>\n<HostName>x</NetworkConfiguration>',
            "malformed XML",
        ),
        ('<?xml version="1.0"?>\n<NetworkConfiguration><HostName>&undefined;</HostName>', "malformed XML"),
        ('<?xml version="1.0"?>', "malformed XML"),
        ('<?xml version="1.0"?>not xml at all', "malformed XML"),
        ("<NetworkConfiguration>" + "<a>" * 100 + "</a>" * 100 + "</NetworkConfiguration>", "nested deeper"),
    ],
)
def test_bad_xml_is_refused_with_a_clear_error(page: str, message: str) -> None:
    for form in (page, page.encode()):
        for parse in (parse_network_page, parse_status_messages, parse_phone_page, parse_xml_page):
            with pytest.raises(ParseError, match=message) as info:
                parse(form)
            assert str(info.value).startswith(("line ", "XML page")), str(info.value)


def test_bad_xml_errors_name_the_line() -> None:
    with pytest.raises(ParseError) as info:
        parse_network_page(
            '<?xml version="1.0"?>\n<NetworkConfiguration>\n<HostName>x</NetworkConfiguration>'
        )
    assert info.value.line == 3
    with pytest.raises(ParseError) as info:
        parse_network_page(_BILLION_LAUGHS)
    assert info.value.line is not None and info.value.line <= 2


def test_not_xml_and_huge_xml_are_refused() -> None:
    html = _read("security-page-network-setup.html")
    with pytest.raises(ParseError, match="not XML"):
        parse_xml_page(html)
    assert parse_network_page(html).format is PageFormat.HTML  # the general entry point reads it
    huge = '<?xml version="1.0"?><NetworkConfiguration><HostName>' + "x" * MAX_PAGE_CHARS + "</HostName>"
    for form in (huge, huge.encode()):
        with pytest.raises(ParseError, match="too large"):
            parse_xml_page(form)
        with pytest.raises(ParseError, match="too large"):
            parse_network_page(form)


# --- DX series: addresses per interface ---------------------------------------------------------


def test_dx_page_labels_per_interface() -> None:
    raw = _read("dx650-network-configuration.html")
    page = parse_network_page(raw)
    assert page.kind is PageKind.NETWORK_SETUP
    assert page.model == "DX650" and page.device_name == "SEP00EBD5A1B2C3"
    assert page.host_name == "SEP00EBD5A1B2C3"
    assert page.interfaces == (
        PageInterface("ethernet", "00EBD5A1B2C3", "10.30.4.21"),
        PageInterface("wifi", "00EBD5A1B2C4", None),  # 0.0.0.0: no address
    )
    # The interface with the address gives the phone's MAC and address.
    assert page.mac_address == "00EBD5A1B2C3" and page.ip_address == "10.30.4.21"
    assert page.ctl_installed is False and page.itl_installed is True
    assert page.itl_signature == "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
    assert page.itl_records == (
        PageRecord(RecordRole.TVS, "cucm1.corp.example"),
        PageRecord(RecordRole.TFTP, "cucm1.corp.example"),
    )
    assert page.ctl_records == ()
    assert [cm.address for cm in page.call_managers] == ["cucm1.corp.example", "cucm2.corp.example"]


def test_dx_page_on_wifi_takes_the_wifi_address() -> None:
    text = _read("dx650-network-configuration.html").decode()
    text = text.replace("<td>10.30.4.21</td>", "<td>0.0.0.0</td>").replace(
        "<th>Wifi IP Address</th><td>0.0.0.0</td>", "<th>Wi-Fi IP Address</th><td>10.31.0.7</td>"
    )
    page = parse_network_page(text)
    assert page.interfaces == (
        PageInterface("ethernet", "00EBD5A1B2C3", None),
        PageInterface("wifi", "00EBD5A1B2C4", "10.31.0.7"),
    )
    assert page.mac_address == "00EBD5A1B2C4" and page.ip_address == "10.31.0.7"


def test_plain_mac_and_ip_labels_win_over_interfaces() -> None:
    rows = (
        "<tr><td>MAC Address</td><td>AAAAAAAAAAAA</td></tr><tr><td>Ethernet MAC Address</td><td>BBBBBBBBBBBB</td></tr>"
        "<tr><td>IP Address</td><td>10.0.0.1</td></tr><tr><td>Ethernet IP Address</td><td>10.0.0.2</td></tr>"
    )
    page = parse_network_page(f"<html><body><table>{rows}</table></body></html>")
    assert page.mac_address == "AAAAAAAAAAAA" and page.ip_address == "10.0.0.1"
    assert page.interfaces == (PageInterface("ethernet", "BBBBBBBBBBBB", "10.0.0.2"),)


# --- the separate security page -------------------------------------------------------------------


def test_security_page_is_wanted_and_merged() -> None:
    network_raw = _read("security-page-network-setup.html")
    security_raw = _read("security-page-security.html")
    assert security_page_wanted(network_raw) is True  # it links to the security page
    network = parse_network_page(network_raw)
    assert network.links_security_page is True
    assert network.ctl_installed is None and network.itl_installed is None
    security = parse_security_page(security_raw)
    assert security.kind is PageKind.SECURITY and detect_page(security_raw) is PageKind.SECURITY
    merged = merge_security_page(network, security)
    assert merged.kind is PageKind.NETWORK_SETUP
    assert merged.device_name == "SEP5CFC6601A2B3" and merged.ip_address == "10.40.1.9"
    assert merged.ctl_installed is True and merged.itl_installed is True
    assert merged.ctl_signature == "c0ffee00112233445566778899aabbccddeeff01"
    assert merged.itl_signature == "deadbeef00112233445566778899aabbccddeeff"
    assert merged.ctl_signature_algo == merged.itl_signature_algo == "sha1"
    assert merged.tvs == ("cucm1.corp.example", "cucm2.corp.example")
    assert merged.tftp_servers == ("10.40.0.11",)
    # Kept apart: the CTL's TFTP record is not the ITL's.
    assert merged.ctl_records == (
        PageRecord(RecordRole.CAPF, "CAPF-0badf00d"),
        PageRecord(RecordRole.TFTP, "cucm-ctl-only.corp.example"),
    )
    assert PageRecord(RecordRole.TFTP, "cucm-ctl-only.corp.example") not in merged.itl_records
    assert merged.trust_list_tftp == ("cucm-ctl-only.corp.example", "cucm1.corp.example")
    assert merged.fields == network.fields + security.fields


def test_merge_keeps_what_the_network_page_shows() -> None:
    network = parse_network_page(
        "<html><table><tr><td>ITL File</td><td>Installed</td></tr>"
        "<tr><td>ITL Signature</td><td>" + "AB " * 20 + "</td></tr></table></html>"
    )
    security = parse_security_page(
        "<html><p>Security setup</p><p>Cisco IP Phone CP-8865 ( SEPX )</p><table>"
        "<tr><td>ITL File</td><td>Not Installed</td></tr><tr><td>CTL File</td><td>Installed</td></tr>"
        "<tr><td>CTL Signature</td><td>" + "CD " * 16 + "</td></tr></table></html>"
    )
    merged = merge_security_page(network, security)
    assert merged.itl_installed is True and merged.itl_signature == "ab" * 20
    assert merged.ctl_installed is True and merged.ctl_signature == "cd" * 16
    assert merged.ctl_signature_algo == "md5"


def test_security_page_wanted_rules() -> None:
    # A page showing its CTL/ITL lines needs no security page, in either shape.
    assert security_page_wanted(_read("xml-CP-7945G-NetworkConfigurationX.xml")) is False
    assert security_page_wanted(_read("dx650-network-configuration.html")) is False
    assert (
        security_page_wanted("<TITLE>Cisco</TITLE><table><tr><td>CTL File</td><td>x</td></tr></table>")
        is False
    )
    # A page with no CTL/ITL line at all (as a 7945's HTML page): look for the security page.
    assert security_page_wanted("<TITLE>Title</TITLE><table><tr><td>Host Name</td><td>SEPX</td></tr></table>")
    assert security_page_wanted(b"\x00" * 10) is True
    assert security_page_wanted(12345) is False  # type: ignore[arg-type]  # unreadable: not followed


# --- status texts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "event"),
    [
        ("CTL and ITL installed", TrustEvent.INSTALLED),
        ("ctl AND itl INSTALLED", TrustEvent.INSTALLED),
        ("CTL Installed", TrustEvent.INSTALLED),
        ("CTL  installed", TrustEvent.INSTALLED),
        ("ITL installed", TrustEvent.INSTALLED),
        ("ITL Installed", TrustEvent.INSTALLED),
        ("CTL update failed", TrustEvent.FAILED),
        ("CTL Update Failed", TrustEvent.FAILED),
        ("No Trust List installed", TrustEvent.NONE_INSTALLED),
        ("No Trust List Installed", TrustEvent.NONE_INSTALLED),
        ("NO TRUSTLIST INSTALLED", TrustEvent.NONE_INSTALLED),
        ("Trust List update failed", TrustEvent.FAILED),
        ("Trust List Update Failed", TrustEvent.FAILED),
        ("TRUST LIST UPDATE FAILED", TrustEvent.FAILED),
        ("Trust List update failed verification failure", TrustEvent.FAILED),
        ("Trust List Update Failed : Verification Failure", TrustEvent.FAILED),
        ("Trust list update failed - verification failure", TrustEvent.FAILED),
        ("TrustList update failed", TrustEvent.FAILED),
        ("Trust-List  update   failed", TrustEvent.FAILED),
        ("Trust List updated", TrustEvent.UPDATED),
        ("Trust List Updated", TrustEvent.UPDATED),
        ("  trust   list   updated  ", TrustEvent.UPDATED),
        ("Erasing CTL and ITL files", TrustEvent.ERASED),
        ("ERASING CTL AND ITL FILES", TrustEvent.ERASED),
        ("File Not Found <CTLFile.tlv>", TrustEvent.NOT_FOUND),
        ("file not found <ctlfile.tlv>", TrustEvent.NOT_FOUND),
        ("File Not Found  < CTLFile.tlv >", TrustEvent.NOT_FOUND),
        ("Phone failed to register. Cert key size is not FIPS compliant.", None),
    ],
)
def test_every_trust_status_text(text: str, event: TrustEvent | None) -> None:
    assert classify_trust_message(text) is event


@pytest.mark.parametrize(
    ("text", "fips"),
    [
        ("Phone failed to register. Cert key size is not FIPS compliant.", True),
        ("phone failed to register.  cert key-size is not fips compliant", True),
        ("Cert key size is not FIPS compliant", True),
        ("Trust List update failed", False),
        ("FIPS mode enabled", False),
        ("key size 2048", False),
    ],
)
def test_fips_key_size_message(text: str, fips: bool) -> None:
    assert is_fips_key_size_message(text) is fips


def test_status_page_with_every_text() -> None:
    result = parse_status_messages(_read("status-messages-trust-texts.html"))
    events = [(m.text, m.trust_event) for m in result.messages]
    assert events == [
        ("Erasing CTL and ITL files", TrustEvent.ERASED),
        ("No Trust List installed", TrustEvent.NONE_INSTALLED),
        ("File Not Found <CTLFile.tlv>", TrustEvent.NOT_FOUND),
        ("ITL installed", TrustEvent.INSTALLED),
        ("Trust List updated", TrustEvent.UPDATED),
        ("CTL and ITL installed", TrustEvent.INSTALLED),
        ("CTL Installed", TrustEvent.INSTALLED),
        ("CTL update failed", TrustEvent.FAILED),
        ("Trust List Updated", TrustEvent.UPDATED),
        ("Phone failed to register. Cert key size is not FIPS compliant.", None),
        ("Trust List update failed verification failure", TrustEvent.FAILED),
        ("SEP3C5EC3A1B2C3.cnf.xml.sgn", None),
    ]
    assert [m.fips_key_size for m in result.messages].count(True) == 1
    assert result.fips_key_size_rejected is True
    # The last trust event decides (readiness: PHONE_TRUST_UPDATE_FAILED), not the FIPS line.
    assert result.trust_update_failed is True
    assert result.last_trust_event == "Trust List update failed verification failure"
    # Cut after the FIPS line: the last trust event is an update, the FIPS line changes nothing.
    text = _read("status-messages-trust-texts.html").decode()
    cut = (
        text[: text.index("<TR><TD width=20></TD><TD><B>9:14:41p")]
        + "</TABLE></TD></TR></TABLE></BODY></HTML>"
    )
    result = parse_status_messages(cut)
    assert result.trust_update_failed is False and result.last_trust_event_kind is TrustEvent.UPDATED
    assert result.fips_key_size_rejected is True


# --- the lab's page kinds, read back (no sockets) ----------------------------------------------


def _lab() -> tuple[dict[str, Any], Path]:
    from scanner.lab.testing import built_lab

    d = built_lab("mixed")  # builds files only (no sockets); shared with other tests in the process
    return json.loads((d / "lab.json").read_text(encoding="utf-8")), d


# Facts the analysis reads (assemble.py / readiness.py) and the evidence shows.
_FACTS = (
    "device_name",
    "host_name",
    "mac_address",
    "ip_address",
    "web_access",
    "ssh_access",
    "ctl_installed",
    "ctl_signature",
    "ctl_signature_algo",
    "itl_installed",
    "itl_signature",
    "itl_signature_algo",
    "tvs",
    "tftp_servers",
    "trust_list_tftp",
    "capf_servers",
    "call_managers",
    "ctl_records",
    "itl_records",
)


def _get(phone: dict[str, Any], variants: dict[str, Any], path: str, **query: str) -> tuple[str, str] | None:
    got = lab_pages.render(path, query, phone, variants)
    if got is None:
        return None
    status, content_type, body = got
    assert status == 200
    return content_type, body


def _network_facts(phone: dict[str, Any], variants: dict[str, Any]) -> tuple[PhonePage, str]:
    """What a collector reads from this phone: the first network path that answers, then the
    security page when the network page asks for it (as phone_web.fetch_phone_pages does)."""
    spec = next(s for s in PAGES if s.name == "network-setup")
    for path in spec.paths:
        route, _, query = path.partition("?")
        key, _, value = query.partition("=")
        got = _get(phone, variants, route, **({key: value} if key else {}))
        if got is None:
            continue
        page = parse_network_page(got[1])
        if security_page_wanted(got[1]):
            for spath in SECURITY_PAGE.paths:
                route, _, query = spath.partition("?")
                key, _, value = query.partition("=")
                sec = _get(phone, variants, route, **{key: value})
                if sec is not None:
                    page = merge_security_page(page, parse_security_page(sec[1]))
                    break
        return page, path
    raise AssertionError(f"{phone['name']}: no network page under any path")


def _status_facts(phone: dict[str, Any]) -> StatusMessages:
    spec = next(s for s in PAGES if s.name == "status-messages")
    for path in spec.paths:
        route, _, query = path.partition("?")
        key, _, value = query.partition("=")
        got = _get(phone, {}, route, **{key: value})
        if got is not None:
            return parse_status_messages(got[1])
    raise AssertionError(f"{phone['name']}: no status page")


def test_lab_assigns_every_page_kind() -> None:
    lab, _ = _lab()
    kinds = [p["pages"] for p in lab["phones"]]
    assert set(kinds) == set(lab_pages.PAGE_KINDS)
    assert kinds.count("html") == len(kinds) - 3 * (len(kinds) // 10)


def test_every_page_kind_reads_back_the_same_facts() -> None:
    lab, _ = _lab()
    variants = lab["trust_variants"]
    seen: set[tuple[str, bool, str]] = set()
    for phone in lab["phones"]:
        html = dict(phone, pages="html")
        want, _ = _network_facts(html, variants)
        want_status = _status_facts(html)
        # The html kind shows what the phone record says.
        assert want.device_name == phone["name"] and want.ip_address == phone["ip"]
        assert want.mac_address == phone["mac"]
        assert want.ctl_installed is bool(phone["ctl"])
        assert want.itl_signature == variants[phone["itl"]]["sha1"]
        assert want_status.trust_update_failed is (phone["status"] == "failed")
        for kind in lab_pages.PAGE_KINDS:
            as_kind = dict(phone, pages=kind)
            got, path = _network_facts(as_kind, variants)
            for fact in _FACTS:
                assert getattr(got, fact) == getattr(want, fact), (phone["name"], kind, fact)
            status = _status_facts(as_kind)
            assert status.trust_update_failed is want_status.trust_update_failed, (phone["name"], kind)
            assert (status.last_trust_event_kind is TrustEvent.FAILED) is want_status.trust_update_failed
            assert status.fips_key_size_rejected is False
            expected_format = PageFormat.XML if kind == "xml" else PageFormat.HTML
            assert got.format is status.format is expected_format
            seen.add((kind, bool(phone["ctl"]), phone["status"]))
            if kind == "xml":
                assert "adapterX" in path or path.endswith("X")
    # The lab build covers both states of the trust lists for every kind.
    assert {(k, mixed) for k, mixed, _ in seen} == {(k, True) for k in lab_pages.PAGE_KINDS}
    assert {(k, s) for k, _, s in seen} >= {(k, "failed") for k in lab_pages.PAGE_KINDS}


def test_non_mixed_phone_reads_back_the_same_facts() -> None:
    lab, _ = _lab()
    variants = lab["trust_variants"]
    for phone in lab["phones"][:10]:
        for state in ("ok", "failed"):
            plain = dict(phone, ctl=None, status=state, pages="html")
            want, _ = _network_facts(plain, variants)
            assert want.ctl_installed is False and want.ctl_signature is None
            for kind in lab_pages.PAGE_KINDS:
                got, _ = _network_facts(dict(plain, pages=kind), variants)
                assert [getattr(got, f) for f in _FACTS] == [getattr(want, f) for f in _FACTS], kind
                status = _status_facts(dict(plain, pages=kind))
                assert status.trust_update_failed is (state == "failed"), (kind, status.messages)


def test_lab_device_pages_of_every_kind() -> None:
    lab, _ = _lab()
    phone = lab["phones"][0]
    for kind in lab_pages.PAGE_KINDS:
        as_kind = dict(phone, pages=kind)
        spec = next(s for s in PAGES if s.name == "device-information")
        for path in spec.paths:
            route, _, query = path.partition("?")
            key, _, value = query.partition("=")
            got = _get(as_kind, {}, route, **({key: value} if key else {}))
            if got is not None:
                break
        assert got is not None, kind
        page = parse_network_page(got[1])
        assert page.kind is PageKind.DEVICE_INFORMATION, kind
        assert page.model == phone["model"] and page.device_name == phone["name"], kind
        assert page.mac_address == phone["mac"], kind


def test_lab_serves_only_the_paths_of_the_kind() -> None:
    lab, _ = _lab()
    phone, variants = lab["phones"][0], lab["trust_variants"]
    html_path = ("/CGI/Java/Serviceability", {"adapter": "device.statistics.configuration"})
    xml_path = ("/CGI/Java/Serviceability", {"adapterX": "device.statistics.configuration"})
    security_path = ("/CGI/Java/Serviceability", {"adapter": "device.statistics.security"})
    served = {
        kind: tuple(
            lab_pages.render(path, query, dict(phone, pages=kind), variants) is not None
            for path, query in (html_path, xml_path, security_path)
        )
        for kind in lab_pages.PAGE_KINDS
    }
    assert served == {
        "html": (True, False, False),
        "xml": (False, True, False),
        "dx": (True, False, False),
        "security-page": (True, False, True),
    }
    assert lab_pages.render("/nope", {}, phone, variants) is None
    assert lab_pages.render("/CGI/Java/Serviceability", {"adapter": "x"}, phone, variants) is None
    # A record from before page kinds (no "pages" key) renders the HTML.
    old = {k: v for k, v in phone.items() if k != "pages"}
    assert lab_pages.render(*html_path, old, variants) == lab_pages.render(
        *html_path, dict(phone, pages="html"), variants
    )
    got = lab_pages.render(*xml_path, dict(phone, pages="xml"), variants)
    assert got is not None and got[1] == "text/xml" and got[2].startswith("<?xml")


def test_lab_html_kind_is_unchanged() -> None:
    # The html kind's bytes are the lab's original pages: the 8841 layout, the original messages.
    lab, _ = _lab()
    phone, variants = lab["phones"][0], lab["trust_variants"]
    got = lab_pages.render("/NetworkConfiguration", {}, phone, variants)
    assert got is not None
    assert "device.statistics.security" not in got[2]
    assert got[2] == lab_pages.network_page(phone, variants)
    status = lab_pages.render(
        "/CGI/Java/Serviceability", {"adapter": "device.settings.status.messages"}, phone, {}
    )
    assert status is not None and "7:58:02a Trust List Updated" in status[2]


# --- phone_web: the security page is fetched when the network page asks for it ------------------


class _FakeFetcher:
    """Answers GETs from a lab phone's pages.render, without sockets; records the URLs asked."""

    def __init__(self, phone: dict[str, Any], variants: dict[str, Any]) -> None:
        self.phone, self.variants = phone, variants
        self.urls: list[str] = []

    async def get(self, url: str, *, timeout: float, max_size: int) -> HttpResult:
        self.urls.append(url)
        path = url.split("127.0.0.1:8080", 1)[1]
        route, _, query = path.partition("?")
        key, _, value = query.partition("=")
        got = lab_pages.render(route, {key: value} if key else {}, self.phone, self.variants)
        if got is None:
            return HttpResult(Outcome.NOT_FOUND, None, 404, "HTTP 404", 0.001, url)
        return HttpResult(Outcome.OK, got[2].encode(), 200, None, 0.001, url)


def _fetch(phone: dict[str, Any], variants: dict[str, Any]) -> tuple[list[Any], list[str]]:
    fake = _FakeFetcher(phone, variants)
    results = asyncio.run(fetch_phone_pages(fake, "http", "127.0.0.1", 8080))  # type: ignore[arg-type]
    return results, fake.urls


def test_fetch_phone_pages_per_kind() -> None:
    lab, _ = _lab()
    phone, variants = lab["phones"][0], lab["trust_variants"]
    names = {}
    requests = {}
    for kind in lab_pages.PAGE_KINDS:
        results, urls = _fetch(dict(phone, pages=kind), variants)
        assert all(r.outcome is Outcome.OK for r in results), (kind, results)
        names[kind] = [r.page for r in results]
        requests[kind] = len(urls)
        network = parse_network_page(results[0].data)
        if kind == "security-page":
            assert results[1].url.endswith("adapter=device.statistics.security")
            network = merge_security_page(network, parse_security_page(results[1].data))
        assert network.itl_signature == variants[phone["itl"]]["sha1"], kind
    base = ["network-setup", "status-messages", "device-information"]
    assert names == {
        "html": base,
        "xml": base,
        "dx": base,
        "security-page": ["network-setup", "security", *base[1:]],
    }
    # An HTML phone costs no more requests than before the XML paths were added.
    assert requests == {"html": 3, "dx": 3, "security-page": 4, "xml": 3 + 2 + 1 + 1}


def test_fetch_phone_pages_security_not_followed_when_off_or_failed() -> None:
    lab, _ = _lab()
    phone, variants = dict(lab["phones"][0], pages="security-page"), lab["trust_variants"]
    fake = _FakeFetcher(phone, variants)
    results = asyncio.run(
        fetch_phone_pages(fake, "http", "127.0.0.1", 8080, security=None)  # type: ignore[arg-type]
    )
    assert [r.page for r in results] == ["network-setup", "status-messages", "device-information"]
    assert not any("security" in u for u in fake.urls)

    class _Down(_FakeFetcher):
        async def get(self, url: str, *, timeout: float, max_size: int) -> HttpResult:
            self.urls.append(url)
            return HttpResult(Outcome.TIMEOUT, None, None, "timed out", timeout, url)

    down = _Down(phone, variants)
    results = asyncio.run(fetch_phone_pages(down, "http", "127.0.0.1", 8080))  # type: ignore[arg-type]
    assert [r.page for r in results] == ["network-setup", "status-messages", "device-information"]
    assert len(down.urls) == 1


def test_dataclass_defaults_keep_old_constructions() -> None:
    # assemble.py and others build nothing new; the added fields have defaults.
    fields = {f.name: f for f in dataclasses.fields(PhonePage)}
    for name in ("interfaces", "ctl_records", "itl_records", "format", "links_security_page"):
        assert fields[name].default is not dataclasses.MISSING


# --- fuzzing the XML path: a result or ParseError, never anything else ---------------------------

_XML_TOKENS = st.sampled_from(
    [
        "<NetworkConfiguration>",
        "</NetworkConfiguration>",
        "<CTLFile>",
        "</CTLFile>",
        "<ITLSignature>",
        "</ITLSignature>",
        "<TVS>",
        "</TVS>",
        "<StatusMessage>",
        "</StatusMessage>",
        "<a/>",
        "<!DOCTYPE x>",
        "<!ENTITY e 'v'>",
        "&e;",
        "&amp;",
        "&#x41;",
        "&#0;",
        "<![CDATA[",
        "]]>",
        "<!--",
        "-->",
        "<?pi x?>",
        "Installed",
        "AB CD",
        "\x00",
        "\ud800",
        "\xe9",
        " ",
        "\n",
        "<",
        ">",
        ":",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_XML_TOKENS, max_size=40),
    st.sampled_from(['<?xml version="1.0"?>', "", "\ufeff<?xml version='1.0' encoding='utf-16'?>"]),
)
def test_fuzz_xml_like(tokens: list[str], declaration: str) -> None:
    text = declaration + "".join(tokens)
    for page in (text, text.encode("utf-8", "surrogatepass")):
        for parse in (parse_phone_page, parse_network_page, parse_status_messages, security_page_wanted):
            with contextlib.suppress(ParseError):
                parse(page)
