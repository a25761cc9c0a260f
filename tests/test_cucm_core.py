"""scanner.core.cucm: SOAP envelopes, AXL rows, RisPort70 registrations and the inventory they
make, sans-IO, against the shapes in tests/data/cucm (see its README)."""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
import pytest

from scanner.core.cucm import axl, risport
from scanner.core.cucm.discovery import combine
from scanner.core.cucm.soap import MAX_SOAP_BYTES, SoapFault, parse_response
from scanner.core.errors import ParseError
from scanner.core.inventory import parse_inventory

DATA = Path(__file__).parent / "data" / "cucm"


def _answer(name: str) -> Element | SoapFault:
    return parse_response((DATA / name).read_bytes(), what=name)


def _element(name: str) -> Element:
    answer = _answer(name)
    assert isinstance(answer, Element), answer
    return answer


# --- SOAP -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not XML"),
        (b"<html><body>401 Unauthorized</body></html>", "not a SOAP envelope"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "refused XML"),
        (b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"/>', "without a Body"),
        (b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>', "empty SOAP Body"),
    ],
)
def test_bad_answers_are_refused_with_the_reason(data: bytes, why: str) -> None:
    with pytest.raises(ParseError, match=why) as info:
        parse_response(data, what="AXL answer from pub:8443")
    assert "AXL answer from pub:8443" in str(info.value)


def test_an_oversized_answer_is_refused_before_parsing() -> None:
    with pytest.raises(ParseError, match="more than"):
        parse_response(b" " * (MAX_SOAP_BYTES + 1), what="RisPort70 answer")


def test_a_fault_is_data() -> None:
    fault = _answer("axl_too_large.xml")
    assert isinstance(fault, SoapFault)
    assert fault.code == "soapenv:Server" and fault.message.startswith("Query request too large")
    assert "executeSQLQuery" in fault.detail


# --- AXL ------------------------------------------------------------------------------------


def test_sql_request_is_an_executesqlquery_envelope_with_the_sql_escaped() -> None:
    body, action = axl.sql_request("SELECT name FROM device WHERE name LIKE 'SEP%' AND 1 < 2", "14.0")
    assert action == '"CUCM:DB ver=14.0 executeSQLQuery"'
    doc = SafeET.fromstring(body)
    (call,) = list(doc.find("{http://schemas.xmlsoap.org/soap/envelope/}Body") or [])
    assert call.tag == "{http://www.cisco.com/AXL/API/14.0}executeSQLQuery"
    assert call.findtext("sql") == "SELECT name FROM device WHERE name LIKE 'SEP%' AND 1 < 2"
    with pytest.raises(ValueError, match="schema version"):
        axl.sql_request("SELECT 1", "14.0; DROP")


def test_phone_rows_become_phones_with_every_field() -> None:
    phones, warnings = axl.phones_from_rows(axl.rows(_element("axl_phones.xml"), what="t"))
    assert warnings == []
    assert [p.name for p in phones] == ["SEP001122334455", "SEPAABBCCDDEEFF", "CSFJSMITH", "SEP665544332211"]
    first = phones[0]
    assert (first.model, first.protocol, first.device_pool, first.owner) == ("Cisco 8861", "SIP", "DP-Sydney", "jsmith")
    assert first.security_profile == "Cisco 8861 - Standard SIP Secure Profile"
    assert phones[1].description == "" and phones[3].description == "Lobby & stairs"


def test_a_column_the_version_lacks_is_a_warning_and_an_empty_field() -> None:
    phones, warnings = axl.phones_from_rows([{"name": "sep001122334455", "model": "Cisco 8861"}])
    assert phones[0].name == "SEP001122334455" and phones[0].owner == ""
    assert len(warnings) == 1 and "owner" in warnings[0] and "securityprofile" in warnings[0]


def test_the_page_query_pages_in_name_order() -> None:
    q = axl.phone_page_query(2000, 1000)
    assert q.startswith("SELECT SKIP 2000 FIRST 1000 ") and q.endswith("ORDER BY d.name")
    assert "d.tkclass = 1" in q
    with pytest.raises(ValueError):
        axl.phone_page_query(-1, 10)


def test_too_large_fault_gives_a_smaller_page() -> None:
    fault = _answer("axl_too_large.xml")
    assert isinstance(fault, SoapFault)
    kind = axl.classify_fault(fault)
    assert (kind.kind, kind.suggested_rows) == ("too_large", 844)
    assert axl.next_page_rows(1000, kind) == 422
    assert axl.next_page_rows(80, kind) is None  # 40 < MIN_PAGE_ROWS: paging cannot help


def test_other_faults_are_classified() -> None:
    busy = axl.classify_fault(SoapFault("soapenv:Server", "Maximum AXL Memory Allocation Consumed. Please retry once requests in progress have completed"))
    assert busy.kind == "busy"
    assert axl.classify_fault(SoapFault("soapenv:Server", "Item not valid")).kind == "error"


@pytest.mark.parametrize(
    ("text", "versions"),
    [
        ("Incorrect axl version. Supported axl versions are 12.x, 14.0 and 15.0", ["15.0", "14.0", "12.5", "12.0"]),
        ("HTTP Status 599 - Incorrect axl version. Supported axl versions: 10.0, 9.1, 9.0", ["10.0", "9.1", "9.0"]),
        ("<html>Internal error</html>", []),
    ],
)
def test_supported_versions_are_read_from_a_599_answer(text: str, versions: list[str]) -> None:
    assert axl.supported_versions(text) == versions


def test_nodes_and_their_services() -> None:
    found = [
        {"node": "cucm-pub", "usage": "0", "service": "Cisco Tftp"},
        {"node": "cucm-pub", "usage": "0", "service": "Cisco Trust Verification Service"},
        {"node": "cucm-sub1", "usage": "1", "service": "Cisco Trust Verification Service"},
        {"node": "cucm-sub2", "usage": "1", "service": ""},
        {"node": "EnterpriseWideData", "usage": "0", "service": ""},
    ]
    nodes = {n.name: n for n in axl.nodes_from_rows(found)}
    assert set(nodes) == {"cucm-pub", "cucm-sub1", "cucm-sub2"}
    assert (nodes["cucm-pub"].publisher, nodes["cucm-pub"].tftp, nodes["cucm-pub"].tvs) == (True, True, True)
    assert (nodes["cucm-sub1"].tftp, nodes["cucm-sub1"].tvs, nodes["cucm-sub2"].tvs) == (False, True, False)


def test_security_settings() -> None:
    s = axl.settings_from_rows([{"paramname": "ClusterSecurityMode", "paramvalue": "1"}, {"paramname": "RollBackToPreGrayback", "paramvalue": "F"}])
    assert (s.mixed_mode, s.rollback_to_pre_8) == (True, False)
    none = axl.settings_from_rows([])
    assert (none.mixed_mode, none.rollback_to_pre_8) == (None, None)


# --- RisPort70 ------------------------------------------------------------------------------


def test_select_request_names_every_phone_of_the_batch() -> None:
    names = [f"SEP{i:012X}" for i in range(3)]
    doc = SafeET.fromstring(risport.select_request(names))
    ns = "{http://schemas.cisco.com/ast/soap}"
    crit = doc.find(f".//{ns}CmSelectionCriteria")
    assert crit is not None
    assert [e.text for e in crit.iter(f"{ns}Item")] == names
    assert crit.findtext(f"{ns}SelectBy") == "Name" and crit.findtext(f"{ns}MaxReturnedDevices") == "1000"
    with pytest.raises(ValueError):
        risport.select_request([f"SEP{i:012X}" for i in range(1001)])


def test_batches_hold_at_most_a_thousand() -> None:
    names = [f"SEP{i:012X}" for i in range(2500)]
    assert [len(b) for b in risport.batches(names)] == [1000, 1000, 500]


def test_registrations_from_two_nodes_merge_by_latest_timestamp() -> None:
    answer = risport.parse_select(_element("risport_two_nodes.xml"), what="t")
    assert answer.total_found == 4 and answer.node_codes == (("cucm-sub1", "Ok"), ("cucm-sub2", "Ok"))
    assert answer.state_info.startswith("<StateInfo>")
    assert len(answer.warnings) == 1 and "not-an-ip" in answer.warnings[0]
    merged = risport.merge(answer.registrations)
    first = merged["SEP001122334455"]
    assert (first.node, first.address, first.model, first.active_load) == ("cucm-sub1", "10.1.1.20", 36670, "sip88xx.14-2-1-0201-15")
    assert first.addresses == ("10.1.1.20", "2001:db8::20")
    moved = merged["SEP665544332211"]  # UnRegistered on sub1 earlier, Registered on sub2 later
    assert (moved.node, moved.registered, moved.address) == ("cucm-sub2", True, "fe80::1")
    down = merged["SEPAABBCCDDEEFF"]
    assert (down.registered, down.address, down.addresses) == (False, None, ("10.1.1.30",))


def test_merge_prefers_registered_at_equal_timestamps() -> None:
    a = risport.Registration("SEP001122334455", "n1", "UnRegistered", ("10.0.0.1",), timestamp=5)
    b = risport.Registration("SEP001122334455", "n2", "Registered", ("10.0.0.2",), timestamp=5)
    assert risport.merge([a, b])["SEP001122334455"].node == "n2"
    assert risport.merge([b, a])["SEP001122334455"].node == "n2"


def test_the_rate_limit_fault_is_recognised() -> None:
    fault = _answer("risport_rate_fault.xml")
    assert isinstance(fault, SoapFault) and risport.is_rate_limited(fault)
    assert not risport.is_rate_limited(SoapFault("soapenv:Server", "Invalid request"))


# --- The inventory --------------------------------------------------------------------------


def _cluster() -> tuple[list[axl.AxlPhone], dict[str, risport.Registration]]:
    phones, _ = axl.phones_from_rows(axl.rows(_element("axl_phones.xml"), what="t"))
    regs = risport.merge(risport.parse_select(_element("risport_two_nodes.xml"), what="t").registrations)
    return phones, regs


def test_discovery_joins_axl_and_risport() -> None:
    phones, regs = _cluster()
    d = combine("source", phones, regs)
    by = {p.name: p for p in d.phones}
    assert set(by) == {"SEP001122334455", "SEPAABBCCDDEEFF", "SEP665544332211"}  # CSF skipped
    assert any("not MAC-based" in w for w in d.warnings)
    assert (by["SEP001122334455"].ip, by["SEP001122334455"].device_type, by["SEP001122334455"].device_pool) == ("10.1.1.20", "Cisco 8861", "DP-Sydney")
    assert by["SEPAABBCCDDEEFF"].ip is None
    reason = d.no_address["SEPAABBCCDDEEFF"]
    assert "UnRegistered on cucm-sub1" in reason and "10.1.1.30" in reason and "2025-12-01" in reason
    assert d.registered == 2


def test_a_phone_risport_does_not_list_has_a_reason() -> None:
    phones, _ = _cluster()
    d = combine("source", phones, {})
    assert all(p.ip is None for p in d.phones)
    assert d.no_address["SEP001122334455"] == "not registered: RisPort70 lists no registration for it"


def test_the_csv_fills_overrides_and_adds_with_a_warning() -> None:
    phones, regs = _cluster()
    csv = parse_inventory(
        b"Device Name,IP Address,Description\n"
        b"SEPAABBCCDDEEFF,10.9.9.9,\n"
        b"SEP001122334455,,Front desk\n"
        b"SEP0000000000AA,10.9.9.10,not in the cluster\n"
    )
    d = combine("source", phones, regs, csv)
    by = {p.name: p for p in d.phones}
    assert by["SEPAABBCCDDEEFF"].ip == "10.9.9.9" and "SEPAABBCCDDEEFF" not in d.no_address
    assert (by["SEP001122334455"].ip, by["SEP001122334455"].description) == ("10.1.1.20", "Front desk")
    assert "SEP0000000000AA" in by
    assert any("SEP0000000000AA" in w and "line 4" in w for w in d.warnings)


def test_two_phones_at_one_address_are_both_kept_and_named() -> None:
    phones = [axl.AxlPhone("SEP001122334455"), axl.AxlPhone("SEP001122334466")]
    regs = {p.name: risport.Registration(p.name, "n1", "Registered", ("10.0.0.7",), timestamp=1) for p in phones}
    d = combine("destination", phones, regs)
    assert len(d.phones) == 2
    (w,) = [w for w in d.warnings if "10.0.0.7" in w]
    assert "SEP001122334455" in w and "SEP001122334466" in w and "destination" in w
