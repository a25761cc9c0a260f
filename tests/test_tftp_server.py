"""The sans-IO server side: request decisions, option negotiation, windows, loss, strays."""

from __future__ import annotations

import errno
import os
from typing import Any

import pytest

from scanner.core.tftp.packets import (
    Data,
    ErrorCode,
    ErrorPacket,
    OptionAck,
    Packet,
    ReadRequest,
    decode,
    encode_ack,
    encode_data,
    encode_error,
    encode_rrq,
    encode_wrq,
)
from scanner.core.tftp.server import (
    Reject,
    Serve,
    ServerOutcome,
    ServerReadTransfer,
    ServerSettings,
    ServerTransferResult,
    decide,
    to_netascii,
)

CLIENT = ("127.0.0.1", 50000)
OTHER = ("127.0.0.1", 50001)
FILES = {"ITLFile.tlv": b"itl" * 1000, "empty": b""}


def sent(transfer: ServerReadTransfer) -> list[Packet]:
    out = []
    for datagram, addr in transfer.datagrams_to_send(0.0):
        assert addr == CLIENT
        out.append(decode(datagram))
    return out


def blocks(packets: list[Packet]) -> list[int]:
    return [p.block for p in packets if isinstance(p, Data)]


def transfer(content: bytes, *options: tuple[str, str], mode: str = "octet", **kw: Any) -> ServerReadTransfer:
    machine = ServerReadTransfer(ReadRequest("f", mode, options), content, CLIENT, **kw)
    machine.start(0.0)
    return machine


def ack(machine: ServerReadTransfer, block: int, now: float = 0.0) -> None:
    machine.receive_datagram(encode_ack(block), CLIENT, now)


def finished(machine: ServerReadTransfer) -> ServerTransferResult:
    assert machine.done and machine.result is not None
    assert machine.get_timer() is None
    return machine.result


# -- decide ----------------------------------------------------------------------------------


def test_decide_serves_an_existing_file() -> None:
    decision = decide(encode_rrq("ITLFile.tlv", "octet", {"blksize": 1428}), FILES.get)
    assert decision == Serve(
        ReadRequest("ITLFile.tlv", "octet", (("blksize", "1428"),)), FILES["ITLFile.tlv"]
    )


@pytest.mark.parametrize(
    ("datagram", "code", "words"),
    [
        (encode_rrq("missing.tlv"), 1, "File not found"),
        (encode_wrq("ITLFile.tlv"), 2, "read-only"),
        (encode_rrq("ITLFile.tlv", "mail"), 4, "Unsupported mode 'mail'"),
        (b"\x00\x01ITLFile.tlv", 4, "Malformed request"),
        (b"\x00\x02\x00octet\x00", 4, "empty filename"),
    ],
)
def test_decide_rejects(datagram: bytes, code: int, words: str) -> None:
    decision = decide(datagram, FILES.get)
    assert isinstance(decision, Reject)
    assert decision.code == code and words in decision.message
    assert decode(decision.packet()) == ErrorPacket(code, decision.message)


@pytest.mark.parametrize(
    "datagram", [b"", b"\x00", encode_ack(0), encode_data(1, b"x"), encode_error(5), b"GET /"]
)
def test_decide_ignores_what_is_not_a_request(datagram: bytes) -> None:
    assert decide(datagram, FILES.get) is None


# -- negotiation -----------------------------------------------------------------------------


def test_decide_read_error_is_error_0_not_file_not_found() -> None:
    """A file the server has but cannot read now (here: out of descriptors) is ERROR 0 with the
    reason; a client would take ERROR 1 for a fact about the file (that it does not exist)."""

    def emfile(name: str) -> bytes | None:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), name)

    decision = decide(encode_rrq("SEP0011.cnf.xml.sgn", "octet", {}), emfile)
    assert isinstance(decision, Reject)
    assert decision.code == ErrorCode.NOT_DEFINED
    assert "SEP0011.cnf.xml.sgn" in decision.message and os.strerror(errno.EMFILE) in decision.message
    packet = decode(decision.packet())
    assert isinstance(packet, ErrorPacket) and packet.code == 0


def test_decide_file_not_found_error_is_error_1() -> None:
    def gone(name: str) -> bytes | None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", name)

    decision = decide(encode_rrq("gone.xml", "octet", {}), gone)
    assert isinstance(decision, Reject) and decision.code == ErrorCode.FILE_NOT_FOUND


def test_all_options_are_acknowledged() -> None:
    machine = transfer(
        b"x" * 5000, ("blksize", "1428"), ("tsize", "0"), ("timeout", "3"), ("windowsize", "8")
    )
    assert sent(machine) == [
        OptionAck((("blksize", "1428"), ("tsize", "5000"), ("timeout", "3"), ("windowsize", "8")))
    ]
    assert (machine.blksize, machine.windowsize, machine.timeout) == (1428, 8, 3.0)
    assert machine.get_timer() == 3.0  # the negotiated timeout drives retransmission


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ((("blksize", "100000"),), (("blksize", "1468"),)),  # clamped to the server's maximum
        ((("blksize", "4"),), ()),  # below RFC 2348's 8: ignored
        ((("blksize", "x"),), ()),  # unparseable: ignored
        ((("windowsize", "500"),), (("windowsize", "64"),)),  # tftp-hpa's limit
        ((("windowsize", "0"),), ()),
        ((("timeout", "0"),), ()),  # RFC 2349: 1..255
        ((("timeout", "256"),), ()),
        ((("multicast", "1"), ("tsize", "0")), (("tsize", "3000"),)),  # unknown option ignored
    ],
)
def test_option_limits(options: tuple[tuple[str, str], ...], expected: tuple[tuple[str, str], ...]) -> None:
    machine = transfer(b"x" * 3000, *options, settings=ServerSettings(max_blksize=1468))
    first = sent(machine)
    if expected:
        assert first == [OptionAck(expected)]
    else:
        assert first == [Data(1, b"x" * 512)]  # nothing accepted: RFC 1350 rules


def test_server_without_options_support_sends_data_at_once() -> None:
    machine = transfer(b"y" * 600, ("blksize", "1428"), settings=ServerSettings(options=False))
    assert sent(machine) == [Data(1, b"y" * 512)]
    assert (machine.blksize, machine.windowsize) == (512, 1)
    ack(machine, 1)
    assert sent(machine) == [Data(2, b"y" * 88)]
    ack(machine, 2)
    res = finished(machine)
    assert res.outcome is ServerOutcome.OK and not res.oack and res.blocks == 2


def test_announced_size_overrides_tsize() -> None:
    machine = transfer(b"z" * 10, ("tsize", "0"), announced_size=99)
    assert sent(machine) == [OptionAck((("tsize", "99"),))]


def test_netascii_mode_converts_line_endings() -> None:
    assert to_netascii(b"a\nb\rc\r\n") == b"a\r\nb\r\0c\r\0\r\n"
    machine = transfer(b"one\ntwo\n", ("tsize", "0"), mode="netascii")
    assert sent(machine) == [OptionAck((("tsize", "10"),))]
    ack(machine, 0)
    assert sent(machine) == [Data(1, b"one\r\ntwo\r\n")]


@pytest.mark.parametrize(
    "kw", [{"timeout": 0}, {"max_retries": -1}, {"max_blksize": 7}, {"max_windowsize": 0}]
)
def test_bad_settings(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ServerSettings(**kw)


# -- windows and ACKs ------------------------------------------------------------------------


def test_oack_then_ack_0_then_windows() -> None:
    content = bytes(range(100))
    machine = transfer(content, ("blksize", "10"), ("windowsize", "4"))
    assert sent(machine) == [OptionAck((("blksize", "10"), ("windowsize", "4")))]
    ack(machine, 3)  # not an answer to the OACK
    assert sent(machine) == []
    ack(machine, 0)
    assert blocks(sent(machine)) == [1, 2, 3, 4]
    ack(machine, 4)
    assert blocks(sent(machine)) == [5, 6, 7, 8]
    ack(machine, 8)
    window = sent(machine)
    # 100 bytes = 10 full blocks, so an empty 11th block ends the file.
    assert window == [Data(9, content[80:90]), Data(10, content[90:100]), Data(11, b"")]
    ack(machine, 11)
    res = finished(machine)
    assert res.outcome is ServerOutcome.OK
    assert (res.blocks, res.data_sent, res.retransmissions) == (11, 11, 0)


def test_partial_ack_restarts_the_window_after_it() -> None:
    machine = transfer(b"q" * 100, ("blksize", "10"), ("windowsize", "4"))
    sent(machine)
    ack(machine, 0)
    sent(machine)
    ack(machine, 2)  # the client lost block 3
    assert blocks(sent(machine)) == [3, 4, 5, 6]


def test_duplicate_ack_is_ignored_no_sorcerers_apprentice() -> None:
    machine = transfer(b"s" * 2000)
    assert blocks(sent(machine)) == [1]
    ack(machine, 1)
    assert blocks(sent(machine)) == [2]
    ack(machine, 1)  # a delayed duplicate: resending block 2 would double every packet from now on
    assert sent(machine) == []
    ack(machine, 9)  # an ACK for a block never sent
    assert sent(machine) == []
    ack(machine, 2)
    assert blocks(sent(machine)) == [3]


def test_timer_resends_the_unacknowledged_window_then_gives_up() -> None:
    machine = transfer(
        b"t" * 100, ("blksize", "10"), ("windowsize", "3"), settings=ServerSettings(max_retries=2)
    )
    sent(machine)
    ack(machine, 0, 0.1)
    sent(machine)
    ack(machine, 2, 0.2)  # partial: window restarts at 3
    assert blocks(sent(machine)) == [3, 4, 5]
    assert machine.get_timer() == pytest.approx(1.2)
    machine.handle_timer(1.0)  # early
    assert sent(machine) == []
    machine.handle_timer(1.2)
    assert blocks(sent(machine)) == [3, 4, 5]
    machine.handle_timer(2.2)
    assert blocks(sent(machine)) == [3, 4, 5]
    machine.handle_timer(3.2)
    res = finished(machine)
    assert res.outcome is ServerOutcome.TIMEOUT and res.retransmissions == 2
    assert "ACK of block 5" in res.message and res.elapsed == pytest.approx(3.2)


def test_timer_resends_the_oack() -> None:
    machine = transfer(b"o", ("tsize", "0"))
    sent(machine)
    machine.handle_timer(1.0)
    assert sent(machine) == [OptionAck((("tsize", "1"),))]


def test_block_numbers_wrap_on_the_wire() -> None:
    content = b"w" * (8 * 65536 + 8)  # absolute blocks 1..65537 full, 65538 empty
    machine = transfer(content, ("blksize", "8"), ("windowsize", "64"))
    sent(machine)
    ack(machine, 0)
    wire: list[int] = []
    while not machine.done:
        window = blocks(sent(machine))
        wire += window
        ack(machine, window[-1])
    assert len(wire) == 65538
    assert wire[65534:65538] == [65535, 0, 1, 2]
    assert finished(machine).outcome is ServerOutcome.OK


# -- strays, errors, garbage -----------------------------------------------------------------


def test_stray_sources_get_error_5_and_change_nothing() -> None:
    machine = transfer(b"a" * 1000)
    sent(machine)
    machine.receive_datagram(encode_ack(1), OTHER, 0.0)
    machine.receive_datagram(encode_error(5), OTHER, 0.0)  # never answer an ERROR
    out = machine.datagrams_to_send(0.0)
    assert [(decode(d), a) for d, a in out] == [(ErrorPacket(5, "Unknown transfer ID"), OTHER)]
    ack(machine, 1)
    assert blocks(sent(machine)) == [2]


def test_client_error_aborts() -> None:
    machine = transfer(b"a" * 1000)
    sent(machine)
    machine.receive_datagram(encode_error(3, "too large"), CLIENT, 0.5)
    assert sent(machine) == []
    res = finished(machine)
    assert res.outcome is ServerOutcome.ABORTED and res.error_code == 3 and res.message == "too large"


@pytest.mark.parametrize("bad", [b"\x00", encode_data(1, b"x"), encode_rrq("f")])
def test_garbage_from_the_client_is_answered_with_error_4(bad: bytes) -> None:
    machine = transfer(b"a" * 1000)
    sent(machine)
    machine.receive_datagram(bad, CLIENT, 0.0)
    [packet] = sent(machine)
    assert isinstance(packet, ErrorPacket) and packet.code == 4
    assert finished(machine).outcome is ServerOutcome.PROTOCOL_ERROR


def test_nothing_happens_after_the_end_or_before_the_start() -> None:
    machine = ServerReadTransfer(ReadRequest("f"), b"", CLIENT)
    machine.receive_datagram(encode_ack(0), CLIENT, 0.0)
    assert machine.datagrams_to_send(0.0) == []
    machine.start(0.0)
    with pytest.raises(RuntimeError):
        machine.start(0.0)
    assert sent(machine) == [Data(1, b"")]
    ack(machine, 1)
    ack(machine, 1)
    machine.handle_timer(99.0)
    assert sent(machine) == []
    assert finished(machine).outcome is ServerOutcome.OK
