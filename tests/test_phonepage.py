"""scanner.core.phonepage: the phones' Network Setup and Status Messages pages, read by field label."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core.errors import ParseError
from scanner.core.phonepage import (
    MAX_PAGE_CHARS,
    PageCallManager,
    PageKind,
    PhonePage,
    StatusMessages,
    TrustEvent,
    classify_trust_message,
    detect_page,
    parse_network_page,
    parse_phone_page,
    parse_status_messages,
)

# Real pages live outside the project (never copied in): /work/shared/vectors next to the repo.
VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "phone-pages"
EXPECTED = VECTORS / "expected.json"
NO_VECTORS = f"real phone-page vectors not found at {VECTORS} (the shared vectors folder is absent)"


def _vector_cases() -> list[Any]:
    if not EXPECTED.is_file():
        return [pytest.param("", {}, marks=pytest.mark.skip(reason=NO_VECTORS), id="no-vectors")]
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    return [pytest.param(name, facts, id=name) for name, facts in sorted(expected.items())]


def _fact(result: PhonePage | StatusMessages, key: str) -> object:
    if key == "page":
        return result.kind.value
    assert hasattr(result, key), f"expected.json lists {key!r}, which {type(result).__name__} does not expose"
    value = getattr(result, key)
    return list(value) if isinstance(value, tuple) else value


# --- the real pages: exactly the facts expected.json lists --------------------------------------


@pytest.mark.parametrize(("name", "facts"), _vector_cases())
def test_vector_page_gives_the_expected_facts(name: str, facts: dict[str, object]) -> None:
    raw = (VECTORS / name).read_bytes()
    for page in (raw, raw.decode("utf-8")):
        result = parse_phone_page(page)
        for key, want in facts.items():
            if key == "note":
                continue
            assert _fact(result, key) == want, f"{name}: {key}"
        assert detect_page(page).value == facts["page"]
        # The specific parser agrees with the dispatching one.
        specific = (
            parse_status_messages(page) if facts["page"] == "status-messages" else parse_network_page(page)
        )
        assert specific == result


@pytest.mark.skipif(not EXPECTED.is_file(), reason=NO_VECTORS)
def test_every_vector_page_is_listed_in_expected_json() -> None:
    listed = set(json.loads(EXPECTED.read_text(encoding="utf-8")))
    on_disk = {path.name for path in VECTORS.glob("*.html")}
    assert on_disk <= listed, f"pages without expected facts: {sorted(on_disk - listed)}"


@pytest.mark.skipif(not EXPECTED.is_file(), reason=NO_VECTORS)
def test_vector_details_beyond_expected_json() -> None:
    p8841 = parse_network_page((VECTORS / "cisco-CP-8841.html").read_bytes())
    assert p8841.ctl_signature_algo == "sha1" and p8841.itl_signature_algo == "sha1"
    # The page enumerates the trust-list records by role; the TFTP one appears under CTL and ITL.
    assert p8841.trust_list_tftp == ("aclucm1-ms.example.com", "ACLUCM2-EC.example.com")
    assert p8841.capf_servers == ("CAPF-1e55d2d1",)
    assert p8841.call_managers[:2] == (
        PageCallManager("cucm02.example.com", "Active"),
        PageCallManager("cucm1.example.com", "Standby"),
    )
    assert p8841.host_name == "SEP3C5EC30DC957" and p8841.ip_address == "172.19.74.102"
    assert ("CTL signature", "BD 03 52 8C 7D 29 17 0B 1A AA D3 E6 3C E7 26 03 01 D9 AE 3B") in p8841.fields

    p7841 = parse_network_page((VECTORS / "cisco-CP-7841.html").read_bytes())
    assert p7841.ctl_signature is None and p7841.ctl_signature_algo is None
    assert p7841.trust_list_tftp == ("cucm.example.com", "cucm02-EC.example.com")
    assert p7841.ssh_access is False

    p7945 = parse_network_page((VECTORS / "cisco-CP-7945G.html").read_bytes())
    assert p7945.tvs == () and p7945.ctl_signature is None and p7945.itl_signature is None
    assert p7945.web_access is True

    ipc = parse_status_messages((VECTORS / "cisco-IPC.html").read_bytes())
    assert ipc.model == "Cisco Communicator"
    assert len(ipc.messages) == 10
    assert ipc.messages[0].timestamp == "9:52:58p"
    assert ipc.messages[0].text == "No Trust List Installed"
    assert ipc.messages[0].trust_event is TrustEvent.NONE_INSTALLED
    assert ipc.messages[-1].text == "CIPCTJARKEWICZ.cnf.xml"  # the last message is not about trust
    assert ipc.last_trust_event_kind is TrustEvent.FAILED
    assert ipc.trust_update_failed is True
    assert ipc.web_access is None


# --- synthetic pages: tolerance ---------------------------------------------------------------


def _page(title: str, rows: str, name: str = "Cisco IP Phone CP-8851 ( SEP001122334455 )") -> str:
    return (
        "<html><body><table><tr><td><a href='/'><img src='logo.png'></a></td>"
        f"<td><p><b>{title}</b><p><b>{name}</b></td></tr>"
        "<tr><td><table><tr><td><a href='/x'>Network setup</a></td></tr>"
        "<tr><td><a href='/y'>Status messages</a></td></tr></table></td>"
        f"<td><table>{rows}</table></td></tr></table></body></html>"
    )


def test_case_entities_spacing_th_labels_and_bold() -> None:
    page = _page(
        "NETWORK CONFIGURATION",
        """
        <tr><th>  CTL&nbsp;FILE : </th><td><b> installed </b></td></tr>
        <tr><TH>ctl SIGNATURE</TH><td width=20></td><td>de ad BE EF 00 11 22 33 44 55 66 77 88 99 aa bb</td></tr>
        <tr><td><B>ITL&#x20;File</B></td><td>Not&#160;Installed</td></tr>
        <tr><td>Security&nbsp;&nbsp;mode</td><td><b>Encrypted</b></td></tr>
        <tr><td>tvs</td><td>tvs&#x2D;1.example.com</td></tr>
        <tr><td>TVS</td><td></td></tr>
        <tr><td>Web Access</td><td>Disabled</td></tr>
        <tr><td>TFTP server 1</td><td>10.0.0.1</td></tr><tr><td>IPv6 TFTP server 1</td><td>2001:db8::1</td></tr>
        <tr><td>TFTP server 2</td><td>::</td></tr>
        """,
    )
    result = parse_network_page(page)
    assert result.kind is PageKind.NETWORK_SETUP
    assert result.model == "CP-8851" and result.device_name == "SEP001122334455"
    assert result.ctl_installed is True
    assert result.ctl_signature == "deadbeef00112233445566778899aabb"
    assert result.ctl_signature_algo == "md5"
    assert (
        result.itl_installed is False and result.itl_signature is None and result.itl_signature_algo is None
    )
    assert result.security_mode == "Encrypted"
    assert result.tvs == ("tvs-1.example.com",)
    assert result.web_access is False
    assert result.tftp_servers == ("10.0.0.1", "2001:db8::1")


@pytest.mark.parametrize(
    ("shown", "installed"),
    [
        ("Installed", True),
        ("installed ", True),
        ("Yes", True),
        ("Not Installed", False),
        ("No CTL installed", False),
        ("None", False),
        ("No", False),
        ("", None),
        ("Pending", None),
    ],
)
def test_installed_values(shown: str, installed: bool | None) -> None:
    result = parse_network_page(_page("Network setup", f"<tr><td>CTL File</td><td>{shown}</td></tr>"))
    assert result.ctl_installed is installed


def test_page_without_trust_fields_is_unknown_not_absent() -> None:
    result = parse_network_page(_page("Network Setup", "<tr><td>Host Name</td><td>SEPAABB</td></tr>"))
    assert result.ctl_installed is None and result.itl_installed is None
    assert result.ctl_signature is None and result.tvs == ()
    assert result.web_access is None and result.security_mode is None


def test_missing_everything() -> None:
    result = parse_phone_page("")
    assert isinstance(result, PhonePage)
    assert result.kind is PageKind.UNKNOWN
    assert result.model is None and result.device_name is None and result.fields == ()


def test_signature_alone_implies_installed_and_odd_signatures_are_not_guessed() -> None:
    rows = (
        "<tr><td>CTL signature</td><td>BD:03:52:8C:7D:29:17:0B:1A:AA:D3:E6:3C:E7:26:03:01:D9:AE:3B</td></tr>"
        "<tr><td>ITL signature</td><td>" + "ab " * 32 + "</td></tr>"
    )
    result = parse_network_page(_page("Network setup", rows))
    assert result.ctl_installed is True
    assert result.ctl_signature == "bd03528c7d29170b1aaad3e63ce7260301d9ae3b"
    assert result.ctl_signature_algo == "sha1"
    assert result.itl_signature == "ab" * 32 and result.itl_signature_algo is None  # 32 bytes: not MD5/SHA-1
    for junk in ("N/A", "BD 03 5", "not a hash", ""):
        bad = parse_network_page(_page("Network setup", f"<tr><td>CTL signature</td><td>{junk}</td></tr>"))
        assert bad.ctl_signature is None and bad.ctl_signature_algo is None and bad.ctl_installed is None


def test_label_value_in_one_cell_and_layout_without_tables() -> None:
    page = (
        "<html><body><h2>Network Configuration</h2><p>Cisco IP Phone CP-7821 ( SEPABCDEF012345 )</p>"
        "<div>CTL file: Installed<br>ITL File : Not installed<br>TVS: tvs-a.example.com<br>"
        "TVS: tvs-b.example.com<br>CDP: SW Port: Yes<br>Web access enabled: yes</div></body></html>"
    )
    result = parse_network_page(page)
    assert result.kind is PageKind.NETWORK_SETUP
    assert result.model == "CP-7821" and result.device_name == "SEPABCDEF012345"
    assert result.ctl_installed is True and result.itl_installed is False
    assert result.tvs == ("tvs-a.example.com", "tvs-b.example.com")
    assert result.web_access is True


def test_label_value_lines_in_one_cell_and_no_menu_in_fields() -> None:
    rows = "<tr><td>CTL File: Installed<br>ITL File: Installed<br/>ITL signature: 00 11<br>Unknown line</td></tr>"
    result = parse_network_page(_page("Network setup", rows))
    assert result.ctl_installed is True and result.itl_installed is True
    assert result.itl_signature == "0011" and result.itl_signature_algo is None
    assert ("Unknown line", "") in result.fields
    # the menu's links and section names are not fields
    assert all(label not in ("Network setup", "Status messages") for label, _ in result.fields)


def test_malformed_real_world_html() -> None:
    # Unclosed rows and cells, stray end tags, uppercase tags, a marked section the stdlib chokes on.
    page = (
        "<HTML><BODY><TABLE><TR><TD>Cisco IP Phone CP-7811 ( SEP0000AAAA1111 )</FONT></FONT>"
        "<TR><TD><B>CTL File<TD>Installed<TR><TD>TVS<TD>cucm-a</TABLE></TD></TABLE>"
        "<![if gte mso 9]><![abc[ x ]]></BODY>"
    )
    result = parse_network_page(page)
    assert result.model == "CP-7811"
    assert result.ctl_installed is True and result.tvs == ("cucm-a",)


def test_heading_absent_kind_from_content() -> None:
    rows = "<tr><td>Security mode</td><td>Non secure</td></tr><tr><td>TFTP server 1</td><td>1.2.3.4</td></tr>"
    assert detect_page(f"<table>{rows}</table>") is PageKind.NETWORK_SETUP
    assert detect_page("<table><tr><td>10:36:07a Trust List updated</td></tr></table>") is (
        PageKind.STATUS_MESSAGES
    )
    assert detect_page("<p>hello</p>") is PageKind.UNKNOWN
    assert detect_page(_page("Device Information", "<tr><td>Model Number</td><td>CP-8851</td></tr>")) is (
        PageKind.DEVICE_INFORMATION
    )


def test_call_manager_lines() -> None:
    rows = (
        "<tr><td>Unified CM 1</td><td>cm-a.example.com   Active</td></tr>"
        "<tr><td>CUCM server2</td><td>cm-b.example.com Standby</td></tr>"
        "<tr><td>Unified CM3</td><td>cm-c.example.com</td></tr>"
        "<tr><td>Unified CM4</td><td>   </td></tr>"
    )
    result = parse_network_page(_page("Network setup", rows))
    assert result.call_managers == (
        PageCallManager("cm-a.example.com", "Active"),
        PageCallManager("cm-b.example.com", "Standby"),
        PageCallManager("cm-c.example.com", None),
    )


# --- status messages ---------------------------------------------------------------------------


def _status_page(*messages: str) -> str:
    rows = "".join(f"<tr><td width=20></td><td><b>{m}</b></td></tr>" for m in messages)
    return _page("Status Messages", rows)


def test_status_messages_last_event_success_after_failure() -> None:
    result = parse_phone_page(
        _status_page(
            "9:00:00a Trust List update failed", "9:05:00a Trust List updated", "9:06:00a SEPX.cnf.xml"
        )
    )
    assert isinstance(result, StatusMessages)
    assert [m.text for m in result.messages] == [
        "Trust List update failed",
        "Trust List updated",
        "SEPX.cnf.xml",
    ]
    assert result.last_trust_event == "Trust List updated"
    assert result.last_trust_event_kind is TrustEvent.UPDATED
    assert result.trust_update_failed is False


def test_status_messages_without_trust_events() -> None:
    result = parse_status_messages(_status_page("1:00:00p TFTP Timeout : SEPX.cnf.xml"))
    assert len(result.messages) == 1
    assert result.last_trust_event is None and result.last_trust_event_kind is None
    assert result.trust_update_failed is False
    assert parse_status_messages(_status_page()).messages == ()


def test_status_messages_formats_entities_and_br_lines() -> None:
    page = _page(
        "status messages",
        "<tr><td>10:36:07 PM ITL installed<br>10:36:09 PM File Not Found &lt;CTLFile.tlv&gt;<br>"
        "22:01:02 CTL&nbsp;update&nbsp;FAILED</td></tr>",
    )
    result = parse_status_messages(page)
    assert [(m.timestamp, m.trust_event) for m in result.messages] == [
        ("10:36:07 PM", TrustEvent.INSTALLED),
        ("10:36:09 PM", TrustEvent.NOT_FOUND),
        ("22:01:02", TrustEvent.FAILED),
    ]
    assert result.messages[1].text == "File Not Found <CTLFile.tlv>"
    assert result.last_trust_event == "CTL update FAILED" and result.trust_update_failed is True


def test_unescaped_angle_brackets_in_a_message_stay_text() -> None:
    result = parse_status_messages(_status_page("3:00:00p File Not Found <CTLFile.tlv>"))
    assert result.messages[0].text == "File Not Found <CTLFile.tlv>"
    assert result.last_trust_event_kind is TrustEvent.NOT_FOUND


@pytest.mark.parametrize(
    ("text", "event"),
    [
        ("CTL and ITL installed", TrustEvent.INSTALLED),
        ("CTL Installed", TrustEvent.INSTALLED),
        ("ITL installed", TrustEvent.INSTALLED),
        ("Trust List Installed", TrustEvent.INSTALLED),
        ("Trust List updated", TrustEvent.UPDATED),
        ("CTL update failed", TrustEvent.FAILED),
        ("Trust List update failed", TrustEvent.FAILED),
        ("ITL update failed", TrustEvent.FAILED),
        ("No Trust List installed", TrustEvent.NONE_INSTALLED),
        ("Erasing CTL and ITL files", TrustEvent.ERASED),
        ("File Not Found <CTLFile.tlv>", TrustEvent.NOT_FOUND),
        ("File not found : ITLSEP001122334455.tlv", TrustEvent.NOT_FOUND),
        ("CTL file not found", TrustEvent.NOT_FOUND),
        ("CTL update failed: file not found", TrustEvent.FAILED),
        ("TFTP Timeout : SEP001122334455.cnf.xml", None),
        ("Phone failed to register. Cert key size is not FIPS compliant.", None),
        ("Registered to cucm1", None),
        ("", None),
    ],
)
def test_classify_trust_message(text: str, event: TrustEvent | None) -> None:
    assert classify_trust_message(text) is event


# --- input handling ---------------------------------------------------------------------------


def test_bytes_inputs_never_fail_to_decode() -> None:
    page = _page("Network setup", "<tr><td>TVS</td><td>tvs-\xe9.example.com</td></tr>")
    latin1 = page.encode("latin-1")  # not valid UTF-8: replaced, the rest still read
    assert parse_network_page(latin1).tvs == ("tvs-\ufffd.example.com",)
    assert parse_network_page(page.encode("utf-16")).tvs == ("tvs-\xe9.example.com",)
    assert parse_network_page(bytearray(page.encode())).tvs == ("tvs-\xe9.example.com",)  # type: ignore[arg-type]
    assert parse_network_page(b"\xff\x00\x80garbage").kind is PageKind.UNKNOWN


def test_not_text_and_too_large_are_parse_errors() -> None:
    with pytest.raises(ParseError):
        parse_phone_page(12345)  # type: ignore[arg-type]
    with pytest.raises(ParseError, match="too large"):
        parse_phone_page("x" * (MAX_PAGE_CHARS + 1))


@pytest.mark.parametrize(
    "unit",
    [
        "<a\n",
        "<a/",
        "<",
        "</",
        "<!",
        "<![",
        "<!--",
        "<td>",
        "<tr>",
        "<table>",
        "<a b='>",
        "&#x",
        "<td>cisco (x",
    ],
)
def test_pathological_markup_is_linear(unit: str) -> None:
    # CPython's HTMLParser is quadratic on some unterminated constructs; 32 KB of "<a\n" once took
    # ~9 s. 256 KB of each must now take well under that.
    page = unit * (256 * 1024 // len(unit))
    start = time.perf_counter()
    parse_phone_page(page)
    assert time.perf_counter() - start < 5.0


def test_module_imports_no_io() -> None:
    code = (
        "import sys, scanner.core.phonepage\n"
        "bad = [m for m in ('asyncio', 'socket', 'ssl', 'aiohttp', 'urllib.request') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- fuzzing: a result or ParseError, never anything else ---------------------------------------

_TOKENS = st.sampled_from(
    [
        "<table>",
        "</table>",
        "<tr>",
        "</tr>",
        "<td>",
        "</td>",
        "<th>",
        "<b>",
        "</b>",
        "<br>",
        "<p>",
        "<a href=x>",
        "</a>",
        "<script>",
        "</script>",
        "<!--",
        "-->",
        "<![CDATA[",
        "]]>",
        "<![if x]>",
        "<![abc[",
        "<!DOCTYPE html>",
        "<?xml?>",
        "&nbsp;",
        "&#x2D;",
        "&#0;",
        "&#xffffffff;",
        "&bogus;",
        "&",
        "<",
        ">",
        "'",
        '"',
        "=",
        " ",
        "\n",
        "CTL file",
        "ITL signature",
        "Installed",
        "Not installed",
        "TVS",
        "TFTP server 1",
        "Security mode",
        "Web access",
        "BD 03 52 8C",
        "Cisco IP Phone CP-8841 ( SEP1 )",
        "Status Messages",
        "Network setup",
        "9:52:58p ",
        "CTL update failed",
        "Trust List updated",
        "File Not Found <CTLFile.tlv>",
        "Unified CM1",
        " Active",
        ":",
    ]
)


def _check(page: str | bytes) -> None:
    try:
        result = parse_phone_page(page)
    except ParseError:
        return
    assert isinstance(result, PhonePage | StatusMessages)
    assert isinstance(detect_page(page), PageKind)
    assert isinstance(parse_network_page(page), PhonePage)
    assert isinstance(parse_status_messages(page), StatusMessages)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_fuzz_arbitrary_text(page: str) -> None:
    _check(page)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_arbitrary_bytes(page: bytes) -> None:
    _check(page)


@settings(max_examples=400, deadline=None)
@given(st.lists(_TOKENS | st.text(max_size=5), max_size=80).map("".join))
def test_fuzz_html_like(page: str) -> None:
    _check(page)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_mutated_page(data: st.DataObject) -> None:
    base = _status_page("9:00:00a CTL update failed") + _page(
        "Network setup", "<tr><td>CTL file</td><td>Installed</td></tr><tr><td>TVS</td><td>a</td></tr>"
    )
    start = data.draw(st.integers(0, len(base)))
    end = data.draw(st.integers(start, min(len(base), start + 40)))
    insert = data.draw(st.lists(_TOKENS, max_size=4).map("".join))
    _check(base[:start] + insert + base[end:])
