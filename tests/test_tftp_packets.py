"""The TFTP codec: one case table for round trips, exact offsets for malformed packets, and a
property test that ``decode`` raises nothing but ``ParseError`` for any bytes at all."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.core.errors import ParseError
from scanner.core.tftp.packets import (
    Ack,
    Data,
    ErrorCode,
    ErrorPacket,
    OptionAck,
    Packet,
    ReadRequest,
    WriteRequest,
    decode,
    encode,
    encode_ack,
    encode_data,
    encode_error,
    encode_oack,
    encode_rrq,
    encode_wrq,
    error_name,
    option_int,
)

# (packet, its exact bytes): both directions are checked on every row.
SIMPLE_CASES: list[tuple[Packet, bytes]] = [
    (ReadRequest("ITLFile.tlv", "octet"), b"\x00\x01ITLFile.tlv\x00octet\x00"),
    (
        ReadRequest("CTLFile.tlv", "octet", (("blksize", "1428"), ("tsize", "0"))),
        b"\x00\x01CTLFile.tlv\x00octet\x00blksize\x001428\x00tsize\x000\x00",
    ),
    (ReadRequest("a", "netascii"), b"\x00\x01a\x00netascii\x00"),
    (ReadRequest("caf\xe9", "octet"), b"\x00\x01caf\xe9\x00octet\x00"),  # Latin-1 round-trips
    (WriteRequest("up.bin", "octet", (("tsize", "9"),)), b"\x00\x02up.bin\x00octet\x00tsize\x009\x00"),
    (Data(1, b"hello"), b"\x00\x03\x00\x01hello"),
    (Data(65535, b""), b"\x00\x03\xff\xff"),
    (Ack(0), b"\x00\x04\x00\x00"),
    (Ack(258), b"\x00\x04\x01\x02"),
    (ErrorPacket(1, "File not found"), b"\x00\x05\x00\x01File not found\x00"),
    (ErrorPacket(8, ""), b"\x00\x05\x00\x08\x00"),
    (
        OptionAck((("blksize", "1428"), ("windowsize", "8"))),
        b"\x00\x06blksize\x001428\x00windowsize\x008\x00",
    ),
    (OptionAck(()), b"\x00\x06"),
]


@pytest.mark.parametrize(("packet", "wire"), SIMPLE_CASES)
def test_round_trip(packet: Packet, wire: bytes) -> None:
    assert encode(packet) == wire
    assert decode(wire) == packet


def test_encoders_match_generic_encode() -> None:
    assert encode_rrq("f", "octet", {"blksize": 512}) == encode(
        ReadRequest("f", "octet", (("blksize", "512"),))
    )
    assert encode_wrq("f") == encode(WriteRequest("f"))
    assert encode_data(7, b"xy") == encode(Data(7, b"xy"))
    assert encode_ack(7) == encode(Ack(7))
    assert encode_oack([("tsize", 10)]) == encode(OptionAck((("tsize", "10"),)))


def test_error_codes_and_names() -> None:
    names = [error_name(code) for code in range(9)]
    assert names[1] == "File not found"
    assert names[5] == "Unknown transfer ID"
    assert names[8] == "Option negotiation refused"
    assert len(set(names)) == 9
    assert error_name(42) == "error code 42"
    assert ErrorCode(2).description == "Access violation"
    # The default message of an ERROR is the RFC text.
    assert decode(encode_error(ErrorCode.FILE_NOT_FOUND)) == ErrorPacket(1, "File not found")
    assert ErrorPacket(3).name == "Disk full or allocation exceeded"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("1428", 1428),
        ("0009", 9),
        ("9999999999", 9999999999),
        ("", None),
        ("-1", None),
        ("+5", None),
        (" 5", None),
        ("1_000", None),
        ("12345678901", None),
        ("\u0661", None),
        ("5x", None),
    ],
)
def test_option_int_is_strict(text: str, value: int | None) -> None:
    assert option_int(text) == value


def test_option_names_are_case_insensitive() -> None:
    packet = decode(b"\x00\x01f\x00OCTET\x00BlkSize\x00512\x00")
    assert packet == ReadRequest("f", "octet", (("blksize", "512"),))
    assert isinstance(packet, ReadRequest)
    assert packet.option("BLKSIZE") == "512"
    assert packet.option("tsize") is None


def test_error_packet_is_decoded_leniently() -> None:
    assert decode(b"\x00\x05\x00\x01no terminator") == ErrorPacket(1, "no terminator")
    assert decode(b"\x00\x05\x00\x02denied\x00padding\x00") == ErrorPacket(2, "denied")
    assert decode(b"\x00\x05\x00\x00\xffbad") == ErrorPacket(0, "\ufffdbad")
    assert decode(b"\x00\x05\x00\x07") == ErrorPacket(7, "")


@pytest.mark.parametrize(
    ("wire", "offset", "words"),
    [
        (b"", 0, "shorter than the 2-byte opcode"),
        (b"\x00", 0, "shorter than the 2-byte opcode"),
        (b"\x00\x07", 0, "unknown opcode 7"),
        (b"\x01\x01", 0, "unknown opcode 257"),
        (b"\x00\x03\x00", 2, "DATA packet truncated"),
        (b"\x00\x04\x00", 2, "ACK packet truncated"),
        (b"\x00\x04\x00\x01\x00", 4, "trailing bytes after ACK"),
        (b"\x00\x05\x00", 2, "ERROR packet truncated"),
        (b"\x00\x01", 2, "request has no filename"),
        (b"\x00\x01file", 2, "not NUL-terminated"),
        (b"\x00\x01file\x00", 7, "request has no mode"),
        (b"\x00\x01file\x00octet", 7, "not NUL-terminated"),
        (b"\x00\x01\x00octet\x00", 2, "empty filename"),
        (b"\x00\x01f\x00\x00", 4, "empty mode"),
        (b"\x00\x01f\x00oc\xfft\x00", 6, "mode is not ASCII"),
        (b"\x00\x01f\x00octet\x00blksize\x00", 10, "has no value"),
        (b"\x00\x01f\x00octet\x00\x00512\x00", 10, "empty option name"),
        (b"\x00\x01f\x00octet\x00a\x001\x00A\x002\x00", 14, "given twice"),
        (b"\x00\x01f\x00octet\x00blk\x80\x00512\x00", 13, "option name is not ASCII"),
        (b"\x00\x01f\x00octet\x00tsize\x00\xe9\x00", 16, "value is not ASCII"),
        (b"\x00\x06blksize", 2, "not NUL-terminated"),
        (b"\x00\x06blksize\x00", 2, "has no value"),
        (b"\x00\x02f\x00octet\x00x\x00", 10, "has no value"),
    ],
)
def test_malformed_packets_name_the_offset(wire: bytes, offset: int, words: str) -> None:
    with pytest.raises(ParseError) as info:
        decode(wire)
    assert info.value.offset == offset
    assert words in info.value.reason


@pytest.mark.parametrize(("packet", "wire"), SIMPLE_CASES)
def test_every_prefix_parses_or_raises_parse_error(packet: Packet, wire: bytes) -> None:
    for cut in range(len(wire)):
        try:
            decode(wire[:cut])
        except ParseError as exc:
            assert exc.offset is not None and 0 <= exc.offset <= cut


def test_bad_encoder_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="NUL"):
        encode_rrq("a\0b")
    with pytest.raises(ValueError, match="empty filename"):
        encode_rrq("")
    with pytest.raises(ValueError):
        encode_rrq("\u20ac")  # outside Latin-1
    with pytest.raises(ValueError, match="empty option name"):
        encode_oack({"": 1})
    with pytest.raises(ValueError, match=r"outside 0\.\.65535"):
        encode(Ack(70000))
    with pytest.raises(ValueError, match=r"outside 0\.\.65535"):
        encode_error(-1)
    assert encode_error(0, "nul\0inside") == b"\x00\x05\x00\x00nul?inside\x00"


@given(st.binary(max_size=80))
def test_decode_raises_only_parse_error(data: bytes) -> None:
    try:
        packet = decode(data)
    except ParseError as exc:
        assert exc.offset is not None and 0 <= exc.offset <= len(data)
    else:
        # Whatever decodes re-encodes to something that decodes to the same packet.
        assert decode(encode(packet)) == packet


@given(
    st.sampled_from([1, 2, 3, 4, 5, 6]).flatmap(
        lambda op: st.binary(max_size=60).map(lambda b: bytes([0, op]) + b)
    )
)
def test_decode_with_valid_opcodes_raises_only_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        decode(data)


_text = st.text(st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=12)
_options = st.dictionaries(
    _text.map(str.lower), st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=8)
)


@given(
    st.one_of(
        st.builds(
            ReadRequest,
            st.text(st.characters(min_codepoint=1, max_codepoint=255), min_size=1, max_size=20),
            _text.map(str.lower),
            _options.map(lambda d: tuple(d.items())),
        ),
        st.builds(Data, st.integers(0, 65535), st.binary(max_size=600)),
        st.builds(Ack, st.integers(0, 65535)),
        st.builds(
            ErrorPacket, st.integers(0, 65535), st.text(st.characters(min_codepoint=1, max_codepoint=127))
        ),
        st.builds(OptionAck, _options.map(lambda d: tuple(d.items()))),
    )
)
def test_generated_packets_round_trip(packet: Packet) -> None:
    assert decode(encode(packet)) == packet
