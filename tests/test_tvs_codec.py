"""scanner.core.tvs.codec against the seed's TVS dumps (the "驗證" section of
../shared/seed/migrate-phones-between-secure-clusters.zh-TW.txt, copied below as hex), and bad input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.core.errors import ParseError
from scanner.core.tvs.codec import (
    HEADER,
    Command,
    Framer,
    Message,
    Tag,
    decode,
    encode,
    query_request,
    query_response,
    verify_request,
    verify_response,
)

# TVS log, step 5: the first 50 of the 153 bytes of the phone's query (Cisco's dump stops there).
SEED_REQUEST_HEAD = bytes.fromhex(
    "57 01 03 00 00 00 03 e9 00 8f 01 00 18 01 43 50 2d 38 38 36 31 2d 53 45 50 42 30 30 30 42 34 42"
    " 41 30 41 45 45 03 00 42 43 4e 3d 75 63 6d 31 31 70 75"
)
# The fields the same log decodes from that request.
SUBJECT = "CN=ucm11pub.stormin.local;OU=IST;O=Stormin;L=Brisbane;ST=QLD;C=AU"
ISSUER = "CN=stormin-WIN2012-CA"
SERIAL = bytes.fromhex("24000000179479B8F124AC3F3B000000000017")
# TVS log, step 6: the first 42 of the 1,480 bytes of the answer, and the first 50 bytes of the
# 1,451-byte certificate in it.
SEED_RESPONSE_HEAD = bytes.fromhex(
    "57 01 04 f7 00 00 03 e9 05 be 07 00 01 00 02 05 ab 30 82 05 a7 30 82 04 8f a0 03 02 01 02 02 13"
    " 24 00 00 00 17 94 79 b8 f1 24 ac 3f 3b 00 00 00 00 00"
)
CERT_HEAD = bytes.fromhex(
    "30 82 05 a7 30 82 04 8f a0 03 02 01 02 02 13 24 00 00 00 17 94 79 b8 f1 24 ac 3f 3b 00 00 00 00 00"
    " 17 30 0d 06 09 2a 86 48 86 f7 0d 01 01 0b 05 00 30"
)


def _seed_request() -> bytes:
    return encode(query_request(0x3E9, "CP-8861-SEPB000B4BA0AEE", SUBJECT, ISSUER, SERIAL))


def test_the_seed_request_is_what_the_encoder_writes() -> None:
    data = _seed_request()
    assert len(data) == 153  # "bytes written : 153" in the phone's log
    assert data[:50] == SEED_REQUEST_HEAD
    m = decode(data)
    assert (m.command, m.session_id, m.reserved) == (Command.QUERY_REQUEST, 1001, 0)
    assert (m.device_name, m.subject, m.issuer, m.serial) == ("CP-8861-SEPB000B4BA0AEE", SUBJECT, ISSUER, SERIAL)
    assert int.from_bytes(data[8:10], "big") == 143  # "Length : 143"


def test_the_seed_response_is_what_the_encoder_writes() -> None:
    cert = CERT_HEAD + bytes(1451 - len(CERT_HEAD))
    data = encode(query_response(0x3E9, certificate=cert, roles=(0, 3)))
    assert len(data) == 1480  # "response byte dump ==__, len = 1480"
    assert data[: len(SEED_RESPONSE_HEAD)] == SEED_RESPONSE_HEAD
    assert data[-4:] == bytes.fromhex("00 01 51 80")  # the 86,400 s the phone caches it for
    m = decode(data)
    assert (m.command, m.reserved, m.status, m.roles, m.ttl) == (Command.QUERY_RESPONSE, 0xF7, 0, (0, 3), 86400)
    assert m.certificate == cert


def test_the_truncated_seed_dumps_are_refused_with_the_offset() -> None:
    with pytest.raises(ParseError, match="says 143 body bytes") as info:
        decode(SEED_REQUEST_HEAD)
    assert info.value.offset == 8
    framer = Framer()
    assert framer.feed(SEED_RESPONSE_HEAD) == []  # waits for the rest


def test_an_unknown_certificate_gets_status_invalid_alone() -> None:
    m = decode(encode(query_response(7, certificate=None)))
    assert (m.status, m.certificate, m.roles) == (1, None, None)


def test_unknown_tags_are_kept_and_listed() -> None:
    msg = Message(Command.VERIFY_RESPONSE, 5, ((Tag.STATUS, b"\x00"), (0x42, b"xyz"), (Tag.TTL, b"\x00\x00\x0e\x10")))
    data = encode(msg)
    back = decode(data)
    assert back == msg and back.unknown_tags == (0x42,) and back.ttl == 3600
    assert encode(back) == data


@pytest.mark.parametrize(
    ("data", "offset", "why"),
    [
        (bytes.fromhex("56 01 03 00 00 00 00 01 00 00"), 0, "protocol byte 0x56"),
        (bytes.fromhex("57 02 03 00 00 00 00 01 00 00"), 1, "version 2"),
        (bytes.fromhex("57 01 09 00 00 00 00 01 00 00"), 2, "unknown TVS command 9"),
        (bytes.fromhex("57 01 03 00 00 00 00 01 00 05 01 00 09 41 42"), 10, "claims 9 bytes"),
        (bytes.fromhex("57 01 03 00 00 00 00 01 00 02 01 00"), 10, "truncated TVS element header"),
        (bytes.fromhex("57 01 03"), 3, "shorter than its 10-byte header"),
    ],
)
def test_bad_messages_name_the_offset(data: bytes, offset: int, why: str) -> None:
    with pytest.raises(ParseError, match=why) as info:
        decode(data)
    assert info.value.offset == offset


def test_the_framer_cuts_a_stream_and_stays_broken_after_an_error() -> None:
    a, b = _seed_request(), encode(query_response(0x3E9, certificate=None))
    stream = a + b
    framer = Framer()
    got: list[Message] = []
    for i in range(0, len(stream), 7):
        got += framer.feed(stream[i : i + 7])
    assert [m.command for m in got] == [Command.QUERY_REQUEST, Command.QUERY_RESPONSE]
    with pytest.raises(ParseError) as info:
        framer.feed(b"\x00" * HEADER)
    assert info.value.offset == len(stream)
    with pytest.raises(ParseError, match="already failed"):
        framer.feed(a)


def test_verify_request_and_its_answers() -> None:
    cert = CERT_HEAD + bytes(100)
    req = decode(encode(verify_request(0x3EA, "CP-8861-SEPB000B4BA0AEE", cert)))
    assert (req.command, req.session_id, req.device_name, req.certificate) == (
        Command.VERIFY_REQUEST,
        0x3EA,
        "CP-8861-SEPB000B4BA0AEE",
        cert,
    )
    ok = decode(encode(verify_response(0x3EA, roles=(0,))))
    assert (ok.command, ok.reserved, ok.status, ok.roles, ok.ttl, ok.certificate) == (
        Command.VERIFY_RESPONSE,
        0xF7,
        0,
        (0,),
        86400,
        None,
    )
    bad = decode(encode(verify_response(0x3EA, roles=None)))
    assert (bad.status, bad.roles, bad.ttl, [t for t, _ in bad.elements]) == (1, None, None, [Tag.STATUS])


def test_the_framer_refuses_a_long_body_from_its_header() -> None:
    framer = Framer(max_body=100)
    assert framer.feed(encode(verify_request(1, "CP-8861-SEP000000000000", bytes(60)))) != []
    with pytest.raises(ParseError, match="101 bytes is over the limit of 100") as info:
        framer.feed(bytes.fromhex("57 01 01 00 00 00 00 02 00 65"))  # the header alone
    assert info.value.offset == 10 + 3 + 24 + 3 + 60 + 8 and framer.broken


@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=300)), max_size=8), st.integers(0, 2**32 - 1),
       st.sampled_from(list(Command)), st.integers(0, 255))
def test_round_trip(elements: list[tuple[int, bytes]], session: int, command: Command, reserved: int) -> None:
    m = Message(command, session, tuple(elements), reserved)
    assert decode(encode(m)) == m


@given(st.binary(max_size=400))
def test_any_bytes_decode_or_raise_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        decode(data)
    framer = Framer()
    with contextlib.suppress(ParseError):
        framer.feed(data)
