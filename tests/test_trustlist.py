"""The trust-file parser on real vectors, on every prefix of them, and on hostile input."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core import trustlist as T
from scanner.core.errors import ParseError

VECTORS = ["CTLFile-cucm-tokenless.tlv", "ITLFile-certutils.tlv"]


@pytest.mark.parametrize("name", VECTORS)
def test_real_vector_facts(name: str, vector_bytes: Callable[[str], bytes], trust_list_expected: dict[str, Any]) -> None:
    exp = trust_list_expected[name]
    data = vector_bytes(name)
    tf = T.parse(data, strict=True)
    h = tf.header
    assert len(data) == exp["bytes"]
    d = tf.digests()
    assert (d.md5, d.sha1, d.sha256) == (exp["md5"], exp["sha1"], exp["sha256"])
    assert h.version_str == exp["version"]
    assert h.length == exp["header_length"]
    assert h.digest_code == exp["digest_code"]
    assert h.signer_name == exp["signer_name"]
    assert h.signer_serial_hex == exp["signer_serial"]
    assert h.filename == exp["filename"]
    assert h.timestamp == exp["timestamp"]
    assert [(r.role, r.subject, r.serial_hex, r.certificate is not None) for r in tf.records] == [
        (e["role"], e["subject"], e["serial"], e["has_certificate"]) for e in exp["records"]
    ]
    assert tf.kind is (T.Kind.CTL if name.startswith("CTL") else T.Kind.ITL)
    assert tf.issues == ()


def test_ctl_header_details(vector_bytes: Callable[[str], bytes]) -> None:
    tf = T.parse(vector_bytes("CTLFile-cucm-tokenless.tlv"))
    h = tf.header
    assert h.padding == 1  # one 0x0D byte closes the real CUCM header
    assert h.signer_version is None
    assert h.signature is not None and len(h.signature) == 128
    assert h.signature_modulus == 1 and h.signature_algorithm == 0
    assert [r.dns_name for r in tf.records][:3] == ["gigantic-6", "gigantic-6", "gigantic-7"]
    assert tf.records[0].ip_address == "10.35.48.106"
    assert [r.role_name for r in tf.records] == ["SAST", "CCM+TFTP", "CCM+TFTP", "CAPF", "SAST", "CCM+TFTP"]


def test_itl_signer_version(vector_bytes: Callable[[str], bytes]) -> None:
    tf = T.parse(vector_bytes("ITLFile-certutils.tlv"))
    assert tf.header.signer_version == (1, 0)
    assert tf.header.padding == 0
    assert tf.records[3].public_key is not None and len(tf.records[3].public_key) == 526


@pytest.mark.parametrize("name", VECTORS)
def test_serialize_reproduces_real_bytes(name: str, vector_bytes: Callable[[str], bytes]) -> None:
    data = vector_bytes(name)
    assert T.serialize(T.parse(data)) == data


@pytest.mark.parametrize("name", VECTORS)
def test_every_prefix_parses_or_raises_parse_error(name: str, vector_bytes: Callable[[str], bytes]) -> None:
    data = vector_bytes(name)
    outcomes = {"ok": 0, "error": 0}
    for n in range(len(data)):
        try:
            tf = T.parse(data[:n], name_hint=name)
        except ParseError as exc:
            assert exc.offset is not None and 0 <= exc.offset <= n
            outcomes["error"] += 1
        else:
            # A prefix that ends exactly on a record boundary is a valid, shorter list.
            assert T.serialize(tf) == data[:n]
            outcomes["ok"] += 1
    # Record boundaries only: one shorter list per record (incl. the header alone).
    assert outcomes["ok"] == len(T.parse(data).records)


@pytest.mark.parametrize(
    ("data", "offset", "fragment"),
    [
        (b"", 0, "too short"),
        (b"\x02\x00\x02\x01\x02\x02\x00\x02\x00\x0a", 0, "wrong magic"),
        (b"<?xml version='1.0'?><device/>", 0, "wrong magic"),
        (b"\x01\x00\x03\x01\x02\x00\x02\x00\x02\x00\x0a", 0, "version TLV"),
        (b"\x01\x00\x02\x01\x02\x03\x00\x02\x00\x0a", 5, "header length"),
        (b"\x01\x00\x02\x01\x02\x02\x00\x02\x00\x05", 8, "smaller"),
        (b"\x01\x00\x02\x01\x02\x02\x00\x02\x01\x00", 8, "past the end"),
    ],
)
def test_malformed_headers(data: bytes, offset: int, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        T.parse(data)
    assert info.value.offset == offset
    assert fragment in info.value.reason


def _header(extra: bytes = b"", pad_to: int = 4) -> bytes:
    body = b"\x0c\x00\x04sig!" + b"\x07\x00\x04\x08\x00\x01\x01" + b"\x0e\x00\x0cITLFile.tlv\x00" + extra
    size = 10 + len(body)
    pad = -size % pad_to
    size += pad
    return b"\x01\x00\x02\x01\x02\x02\x00\x02" + size.to_bytes(2, "big") + body + b"\x0d" * pad


def _record(*tlvs: tuple[int, bytes]) -> bytes:
    body = b"".join(bytes([t]) + len(v).to_bytes(2, "big") + v for t, v in tlvs)
    return b"\x01\x00\x02" + (5 + len(body)).to_bytes(2, "big") + body


def test_unknown_tags_are_kept_and_reported() -> None:
    data = _header(b"\x63\x00\x01z") + _record((4, b"\x00\x15"), (99, b"??"), (3, b"CN=x\x00"))
    tf = T.parse(data, strict=True)
    assert tf.header.unknown_tags == ((0x63, data.index(b"\x63\x00\x01z")),)
    assert tf.records[0].unknown_tags == (99,)
    assert tf.records[0].role == T.Role.TVS
    assert tf.records[0].subject == "CN=x"
    assert T.serialize(tf) == data


def test_records_without_length_are_refused() -> None:
    data = _header() + b"\x03\x00\x02x\x00"
    with pytest.raises(ParseError, match="must start with its length") as info:
        T.parse(data)
    assert info.value.offset == len(_header())


def test_record_length_too_long_or_short() -> None:
    good = _record((4, b"\x00\x00"), (3, b"CN=a\x00"))
    short = good[:3] + (len(good) - 4).to_bytes(2, "big") + good[5:]
    with pytest.raises(ParseError, match="crosses the end of its record"):
        T.parse(_header() + short)
    long_ = good[:3] + (len(good) + 5).to_bytes(2, "big") + good[5:] + _record((4, b"\x00\x00"))
    with pytest.raises(ParseError, match="inside the record"):
        T.parse(_header() + long_)
    with pytest.raises(ParseError, match="past the end"):
        T.parse(_header() + good[:3] + (len(good) + 50).to_bytes(2, "big") + good[5:])


def test_nested_container_past_the_header() -> None:
    # A container (tag 7) that claims more bytes than the header has left.
    bad = b"\x01\x00\x02\x01\x02\x02\x00\x02\x00\x10\x07\x00\x20\x08\x00\x01\x01"
    with pytest.raises(ParseError, match="overruns") as info:
        T.parse(bad + bytes(40))
    assert info.value.offset == 10


def test_lenient_and_strict() -> None:
    # No digest tag and a duplicated filename: tolerated and reported, refused when strict.
    body = b"\x0c\x00\x01s" + b"\x0e\x00\x02a\x00" + b"\x0e\x00\x02b\x00"
    size = 10 + len(body)
    data = b"\x01\x00\x02\x01\x02\x02\x00\x02" + size.to_bytes(2, "big") + body
    tf = T.parse(data, name_hint="ITLFile.tlv")
    reasons = [i.reason for i in tf.issues]
    assert any("duplicate header tag 14" in r for r in reasons)
    assert any("no digest" in r for r in reasons)
    assert tf.header.filename == "a"
    with pytest.raises(ParseError, match="duplicate header tag 14"):
        T.parse(data, name_hint="ITLFile.tlv", strict=True)


def test_newer_major_version_is_tolerated_but_reported() -> None:
    data = bytearray(_header())
    data[3] = 3
    tf = T.parse(bytes(data))
    assert tf.header.version == (3, 2)
    assert any("version 3.2" in i.reason for i in tf.issues)


def test_sgn_payload_and_kind() -> None:
    body = b"\x0c\x00\x02ss" + b"\x07\x00\x04\x08\x00\x01\x01" + b"\x0e\x00\x1cSEP001122334455.cnf.xml.sgn\x00"
    size = 10 + len(body)
    pad = -size % 4
    head = b"\x01\x00\x02\x01\x00\x02\x00\x02" + (size + pad).to_bytes(2, "big") + body + b"\x0d" * pad
    tf = T.parse(head + b"<device></device>")
    assert tf.kind is T.Kind.SGN
    assert tf.payload == b"<device></device>"
    assert tf.records == ()
    assert T.serialize(tf) == head + b"<device></device>"


def test_enc_sgn_header() -> None:
    enc = (
        b"\x10\x00\x2f"  # ENCRYPTION_INFO
        + b"\x11\x00\x1c" + b"\x12\x00\x01\x00" + b"\x13\x00\x10" + bytes(range(16)) + b"\x14\x00\x02\x00\x05"
        + b"\x15\x00\x0d" + b"\x16\x00\x01\x00" + b"\x17\x00\x02\x00\x80" + b"\x18\x00\x01\x01"
    )
    body = b"\x0c\x00\x02ss" + b"\x07\x00\x04\x08\x00\x01\x01" + enc + b"\x1a\x00\x01\x01" + b"\x1b\x00\x02hh"
    size = 10 + len(body)
    pad = -size % 4
    head = b"\x01\x00\x02\x02\x00\x02\x00\x02" + (size + pad).to_bytes(2, "big") + body + b"\x0d" * pad
    tf = T.parse(head + b"\x99" * 32, name_hint="SEP001122334455.cnf.xml.enc.sgn")
    assert tf.kind is T.Kind.ENC_SGN
    assert tf.header.version == (2, 0)
    assert tf.payload == b"\x99" * 32
    enc_info = tf.header.encryption
    assert enc_info is not None and enc_info.plaintext_hash == b"hh"
    assert (enc_info.iv, enc_info.pad_count, enc_info.key_size, enc_info.key_algorithm) == (bytes(range(16)), 5, 128, 1)
    assert T.serialize(tf) == head + b"\x99" * 32


def test_size_limit() -> None:
    data = _header() + _record((9, bytes(60000))) * 18
    with pytest.raises(ParseError, match="exceeds"):
        T.parse(data)


def test_not_bytes() -> None:
    with pytest.raises(ParseError):
        T.parse("text")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_only_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        T.parse(b"\x01\x00\x02\x01\x02\x02\x00\x02" + data)
    with contextlib.suppress(ParseError):
        T.parse(data)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_fuzz_mutated_vectors(vector_bytes: Callable[[str], bytes], data: st.DataObject) -> None:
    raw = bytearray(vector_bytes(data.draw(st.sampled_from(VECTORS))))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        tf = T.parse(bytes(raw))
    except ParseError:
        return
    assert T.serialize(tf) == bytes(raw)


# -- signature_facts: the two header facts the collector needs, without parse_header -------------


def _facts_or_error(data: bytes) -> object:
    try:
        return T.signature_facts(data)
    except ParseError:
        return "error"


def _header_facts_or_error(data: bytes) -> object:
    try:
        h = T.parse_header(data)
    except ParseError:
        return "error"
    return h.digest_code, h.signature_span


@pytest.mark.parametrize("name", VECTORS)
def test_signature_facts_match_parse_header_on_real_files(name: str, vector_bytes: Callable[[str], bytes]) -> None:
    data = vector_bytes(name)
    h = T.parse_header(data)
    assert h.signature_span is not None
    assert T.signature_facts(data) == (h.digest_code, h.signature_span)
    assert T.header_length(data) == h.length


def test_signature_facts_match_parse_header_on_odd_headers() -> None:
    # No signature, no digest, a duplicate digest (the first wins), an .enc.sgn header.
    cases = [
        _header(),
        _header(b"\x08\x00\x01\x02"),
        _header(b"\x08\x00\x01\x03\x08\x00\x01\x01\x0c\x00\x03sig"),
        _header(b"\x08\x00\x00\x0c\x00\x00"),
    ]
    for data in cases:
        assert _facts_or_error(data) == _header_facts_or_error(data)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_fuzz_signature_facts_agree_with_parse_header(vector_bytes: Callable[[str], bytes], data: st.DataObject) -> None:
    raw = bytearray(vector_bytes(data.draw(st.sampled_from(VECTORS))))
    length = T.header_length(bytes(raw))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, length - 1))  # mutate the header only
        raw[pos] = data.draw(st.integers(0, 255))
    assert _facts_or_error(bytes(raw)) == _header_facts_or_error(bytes(raw))


# -- Round trip: serialize(parse(x)) == x, one case table (h11's SIMPLE_CASES) ------------------


def _raw_header(body: bytes) -> bytes:
    return b"\x01\x00\x02\x01\x02\x02\x00\x02" + (10 + len(body)).to_bytes(2, "big") + body


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + len(value).to_bytes(2, "big") + value


ROUND_TRIP_CASES: dict[str, tuple[bytes, str | None]] = {
    # id: (file bytes, name hint)
    "minimal header": (_raw_header(b""), None),
    "padded header": (_header(), None),
    "unknown tags kept": (_header(b"\x63\x00\x01z") + _record((4, b"\x00\x15"), (99, b"??")), None),
    "empty container": (_raw_header(_tlv(3, b"") + _tlv(12, b"s")), None),
    # Issue 9: a zero-length TLV or a padding byte that ends a header container was put after
    # the container, which then serialized shorter than it was.
    "zero-length TLV ends a container": (_raw_header(_tlv(3, _tlv(4, b"a") + _tlv(5, b"")) + _tlv(12, b"s")), None),
    "zero-length TLV alone in a container": (_raw_header(_tlv(3, _tlv(5, b""))), None),
    "padding byte ends a container": (_raw_header(_tlv(3, _tlv(4, b"a") + b"\x0d") + _tlv(12, b"s")), None),
    "zero-length TLV ends nested containers": (_raw_header(_tlv(7, _tlv(9, _tlv(10, b"")))), None),
    "padding byte ends nested containers": (_raw_header(_tlv(7, _tlv(8, b"\x01") + _tlv(9, b"\x0d\x0d"))), None),
    # In a record, tag 13 is no padding byte: an empty one is 3 bytes and must stay so.
    "empty tag 13 in a record": (_header() + _record((4, b"\x00\x00"), (13, b"")), None),
    "sgn payload": (_raw_header(_tlv(12, b"s") + _tlv(14, b"SEP001122334455.cnf.xml.sgn\x00")) + b"<device/>", None),
}


@pytest.mark.parametrize("case", sorted(ROUND_TRIP_CASES))
def test_round_trip_table(case: str) -> None:
    data, hint = ROUND_TRIP_CASES[case]
    tf = T.parse(data, name_hint=hint)
    assert T.serialize(tf) == data


def test_zero_length_tlv_and_padding_stay_in_their_container() -> None:
    data, _ = ROUND_TRIP_CASES["zero-length TLV ends a container"]
    (container,) = [f for f in T.parse(data).header.fields if f.tag == 3]
    assert [(c.tag, c.value) for c in container.children] == [(4, b"a"), (5, b"")]
    data, _ = ROUND_TRIP_CASES["padding byte ends a container"]
    tf = T.parse(data)
    (container,) = [f for f in tf.header.fields if f.tag == 3]
    assert [c.tag for c in container.children] == [4, 13]
    assert tf.header.padding == 1


# Well-formed header bodies as trees: containers (3, 7, 9) holding leaves, zero-length leaves and
# padding bytes in any position, so that every "what ends a container" case is generated.
_leaf = st.one_of(
    st.builds(_tlv, st.sampled_from([4, 5, 6, 8, 10, 11, 12, 14, 15, 28, 99]), st.binary(max_size=6)),
    st.just(b"\x0d"),
)
_body = st.recursive(
    st.lists(_leaf, max_size=4).map(b"".join),
    lambda inner: st.lists(
        st.one_of(_leaf, st.builds(_tlv, st.sampled_from([3, 7, 9]), inner)), max_size=4
    ).map(b"".join),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(body=_body, records=st.lists(st.builds(lambda v: _record((13, v)), st.binary(max_size=3)), max_size=2))
def test_round_trip_structured_headers(body: bytes, records: list[bytes]) -> None:
    data = _raw_header(body) + b"".join(records)
    try:
        tf = T.parse(data, name_hint="ITLFile.tlv")
    except ParseError:  # nesting deeper than the kernel allows
        return
    assert T.serialize(tf) == data
