"""The sans-IO read client, driven by scripted datagrams and a fake clock (no sockets, no sleep)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scanner.core.evidence import Outcome
from scanner.core.tftp.client import (
    BACKOFF_CAP,
    JITTER,
    MAX_STRAY_REPLIES,
    NegotiatedOptions,
    TftpReadClient,
    TftpResult,
    outcome_for_error,
)
from scanner.core.tftp.packets import (
    Ack,
    ErrorPacket,
    Packet,
    ReadRequest,
    decode,
    encode_data,
    encode_error,
    encode_oack,
)
from scanner.core.tftp.server import ServerReadTransfer, ServerSettings

TID = ("127.0.0.1", 40000)  # the server's transfer port
OTHER = ("127.0.0.1", 40001)  # some other source
ALL_OPTIONS = (("blksize", "1428"), ("tsize", "0"), ("timeout", "1"), ("windowsize", "8"))


class MidRandom(random.Random):
    """random() always 0.5: the jitter factor is exactly 1, so waits are exact."""

    def random(self) -> float:
        return 0.5


def make(filename: str = "ITLFile.tlv", **kw: Any) -> TftpReadClient:
    kw.setdefault("rng", MidRandom())
    client = TftpReadClient(filename, **kw)
    client.start(0.0)
    return client


def sent(client: TftpReadClient, now: float = 0.0) -> list[tuple[Packet, Any]]:
    return [(decode(data), addr) for data, addr in client.datagrams_to_send(now)]


def result(client: TftpReadClient) -> TftpResult:
    assert client.result is not None
    assert client.get_timer() is None
    return client.result


def oack(client: TftpReadClient, now: float = 0.0, **options: Any) -> None:
    client.receive_datagram(encode_oack(options), TID, now)


def data(client: TftpReadClient, block: int, payload: bytes, now: float = 0.0, addr: Any = TID) -> None:
    client.receive_datagram(encode_data(block, payload), addr, now)


# -- the request -----------------------------------------------------------------------------


def test_request_carries_all_options() -> None:
    client = make()
    assert sent(client) == [(ReadRequest("ITLFile.tlv", "octet", ALL_OPTIONS), None)]
    assert client.get_timer() == 1.0


def test_request_without_options() -> None:
    client = make(blksize=None, windowsize=None, tsize=False, timeout=0.5)
    assert sent(client) == [(ReadRequest("ITLFile.tlv", "octet"), None)]
    # 512 and 1 are the RFC 1350 values: not worth asking for.
    client = make(blksize=512, windowsize=1, tsize=False, timeout=0.5)
    assert sent(client) == [(ReadRequest("ITLFile.tlv", "octet"), None)]


def test_timeout_option_is_whole_seconds() -> None:
    (packet, _), *_ = sent(make(timeout=2.7, blksize=None, windowsize=None, tsize=False))
    assert packet == ReadRequest("ITLFile.tlv", "octet", (("timeout", "2"),))
    (packet, _), *_ = sent(make(timeout=900.0, blksize=None, windowsize=None, tsize=False))
    assert packet == ReadRequest("ITLFile.tlv", "octet", (("timeout", "255"),))


@pytest.mark.parametrize(
    "kw",
    [
        {"blksize": 7},
        {"blksize": 65465},
        {"windowsize": 0},
        {"windowsize": 65},
        {"timeout": 0.0},
        {"timeout": float("nan")},
        {"max_retries": -1},
        {"max_size": -1},
    ],
)
def test_bad_arguments(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TftpReadClient("f", **kw)
    with pytest.raises(ValueError):
        TftpReadClient("")


def test_start_twice_is_a_bug() -> None:
    client = make()
    with pytest.raises(RuntimeError):
        client.start(1.0)


# -- negotiation -----------------------------------------------------------------------------


def test_full_negotiation_one_window() -> None:
    content = bytes(range(256)) * 20  # 5120 bytes: 3 full blocks of 1428 and 836
    client = make()
    sent(client)
    oack(client, 0.01, blksize=1428, tsize=len(content), timeout=1, windowsize=8)
    assert sent(client) == [(Ack(0), TID)]
    for i in range(4):
        data(client, i + 1, content[i * 1428 : (i + 1) * 1428], 0.02)
    # One window: only the short last block is ACKed, and the transfer is done at once.
    assert sent(client) == [(Ack(4), TID)]
    res = result(client)
    assert res.ok and res.outcome is Outcome.OK
    assert res.data == content
    assert (res.size, res.blocks, res.retransmissions, res.duplicates) == (5120, 4, 0, 0)
    assert res.options == NegotiatedOptions(oack=True, blksize=1428, windowsize=8, timeout=1, tsize=5120)
    assert res.peer == TID
    assert res.elapsed == pytest.approx(0.02)
    assert res.error_code is None and res.message == ""


def test_window_of_two_acks_every_second_block() -> None:
    client = make(blksize=8, windowsize=2, tsize=False, timeout=0.5)
    sent(client)
    oack(client, blksize=8, windowsize=2)
    sent(client)
    acks = []
    for block in range(1, 6):
        data(client, block, b"x" * 8)
        acks += [p.block for p, _ in sent(client) if isinstance(p, Ack)]
    data(client, 6, b"end")
    acks += [p.block for p, _ in sent(client) if isinstance(p, Ack)]
    assert acks == [2, 4, 6]
    assert result(client).data == b"x" * 40 + b"end"


def test_no_oack_falls_back_to_rfc1350() -> None:
    client = make()
    sent(client)
    data(client, 1, b"a" * 512)
    assert sent(client) == [(Ack(1), TID)]
    data(client, 2, b"b" * 100)
    assert sent(client) == [(Ack(2), TID)]
    res = result(client)
    assert res.ok and res.data == b"a" * 512 + b"b" * 100
    assert res.options == NegotiatedOptions(oack=False, blksize=512, windowsize=1)


def test_no_oack_but_a_block_larger_than_512_is_a_protocol_error() -> None:
    client = make()
    sent(client)
    data(client, 1, b"a" * 1428)
    (packet, addr), *_ = sent(client)
    assert isinstance(packet, ErrorPacket) and packet.code == 4 and addr == TID
    assert result(client).outcome is Outcome.PROTOCOL_ERROR


def test_oack_with_a_subset_of_options() -> None:
    client = make()
    sent(client)
    oack(client, blksize=1024)
    assert sent(client) == [(Ack(0), TID)]
    data(client, 1, b"z" * 1024)
    data(client, 2, b"z")
    # windowsize was not acknowledged, so it is 1: every block is ACKed.
    assert [p for p, _ in sent(client)] == [Ack(1), Ack(2)]
    res = result(client)
    assert res.options == NegotiatedOptions(oack=True, blksize=1024, windowsize=1)
    assert res.size == 1025


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"blksize": 1500}, "blksize 1500 outside 8..1428"),
        ({"blksize": 4}, "blksize 4"),
        ({"windowsize": 9}, "windowsize 9 outside 1..8"),
        ({"windowsize": 0}, "windowsize 0"),
        ({"timeout": 3}, "timeout 3 differs"),
        ({"tsize": -1}, "tsize value '-1' is not a decimal number"),
        ({"tsize": "1_000"}, "is not a decimal number"),
        ({"multicast": 1}, "not requested"),
        ({"blksize": "big"}, "blksize value 'big' is not a decimal number"),
    ],
)
def test_unacceptable_oack_is_refused_with_error_8(options: dict[str, Any], words: str) -> None:
    client = make()
    sent(client)
    oack(client, **options)
    [(packet, addr)] = sent(client)
    assert isinstance(packet, ErrorPacket) and packet.code == 8 and addr == TID
    res = result(client)
    assert res.outcome is Outcome.PROTOCOL_ERROR
    assert words in res.message


def test_error_8_to_the_request_retries_without_options() -> None:
    client = make()
    sent(client)
    client.receive_datagram(encode_error(8, "no options here"), TID, 0.1)
    assert sent(client) == [(ReadRequest("ITLFile.tlv", "octet"), None)]
    assert client.get_timer() == pytest.approx(1.1)
    data(client, 1, b"ok", 0.2, addr=OTHER)  # the new request gets a new TID
    assert result(client).ok and result(client).peer == OTHER
    # Only once: a second ERROR 8 ends the transfer.
    client = make()
    client.receive_datagram(encode_error(8), TID, 0.1)
    client.receive_datagram(encode_error(8), TID, 0.2)
    assert result(client).outcome is Outcome.PROTOCOL_ERROR


def test_duplicate_oack_means_ack_0_was_lost() -> None:
    client = make()
    sent(client)
    oack(client, blksize=1428)
    assert sent(client) == [(Ack(0), TID)]
    oack(client, blksize=1428)
    assert sent(client) == [(Ack(0), TID)]
    data(client, 1, b"done")
    oack(client, blksize=1428)  # too late to matter
    res = result(client)
    assert res.ok and res.retransmissions == 1 and res.duplicates == 1


def test_oack_after_plain_data_is_a_protocol_error() -> None:
    client = make()
    data(client, 1, b"x" * 512)
    sent(client)
    oack(client, blksize=1428)
    assert result(client).outcome is Outcome.PROTOCOL_ERROR


# -- ends of files ---------------------------------------------------------------------------


def test_exact_multiple_of_blksize_needs_an_empty_last_block() -> None:
    client = make(blksize=None, windowsize=None, tsize=False, timeout=0.5)
    sent(client)
    data(client, 1, b"a" * 512)
    data(client, 2, b"b" * 512)
    assert client.result is None  # a full block is never the last
    data(client, 3, b"")
    assert [p for p, _ in sent(client)] == [Ack(1), Ack(2), Ack(3)]
    res = result(client)
    assert res.ok and res.size == 1024 and res.blocks == 3


def test_empty_file() -> None:
    client = make()
    sent(client)
    oack(client, tsize=0)
    data(client, 1, b"")
    res = result(client)
    assert res.ok and res.data == b"" and res.blocks == 1


def test_tsize_mismatch_catches_a_truncated_transfer() -> None:
    client = make()
    sent(client)
    oack(client, blksize=1428, tsize=5000)
    sent(client)
    data(client, 1, b"x" * 1000)
    res = result(client)
    assert res.outcome is Outcome.PROTOCOL_ERROR
    assert "ended at 1000 bytes" in res.message and "tsize 5000" in res.message
    assert res.data == b"" and res.size == 1000


# -- loss and duplicates ---------------------------------------------------------------------


def test_duplicate_data_is_re_acked_not_appended() -> None:
    client = make(blksize=None, windowsize=None, tsize=False, timeout=0.5)
    sent(client)
    data(client, 1, b"a" * 512)
    data(client, 1, b"a" * 512)  # our ACK 1 was lost; the server resent block 1
    assert [p for p, _ in sent(client)] == [Ack(1), Ack(1)]
    data(client, 2, b"b")
    res = result(client)
    assert res.data == b"a" * 512 + b"b"
    assert res.duplicates == 1 and res.retransmissions == 1


def test_lost_window_ack_is_answered_once_per_resent_window() -> None:
    client = make(blksize=8, windowsize=4, tsize=False, timeout=0.5)
    sent(client)
    oack(client, blksize=8, windowsize=4)
    sent(client)
    for block in range(1, 5):
        data(client, block, bytes([block]) * 8)
    assert sent(client) == [(Ack(4), TID)]
    # ACK 4 was lost: the server times out and resends the whole window.
    for block in range(1, 5):
        data(client, block, bytes([block]) * 8, 1.0)
    assert sent(client) == [(Ack(4), TID)]  # one re-ACK, triggered by block 4 only
    data(client, 5, b"end", 1.1)
    res = result(client)
    assert res.data == b"".join(bytes([b]) * 8 for b in range(1, 5)) + b"end"
    assert res.duplicates == 4 and res.retransmissions == 1


def test_lost_data_in_a_window_acks_the_last_in_order_block() -> None:
    client = make(blksize=8, windowsize=4, tsize=False, timeout=0.5)
    sent(client)
    oack(client, blksize=8, windowsize=4)
    sent(client)
    data(client, 1, b"1" * 8)
    data(client, 3, b"3" * 8)  # block 2 was lost
    data(client, 4, b"4" * 8)
    # One immediate ACK of block 1 (RFC 7440: the server restarts the window after it).
    assert sent(client) == [(Ack(1), TID)]
    for block in (2, 3, 4, 5):
        data(client, block, str(block).encode() * 8)
    assert sent(client) == [(Ack(5), TID)]
    data(client, 6, b"")
    res = result(client)
    assert res.data == b"".join(str(b).encode() * 8 for b in range(1, 6))
    assert res.duplicates == 2


def test_lost_data_with_nothing_after_it_is_recovered_by_the_timer() -> None:
    client = make(blksize=8, windowsize=4, tsize=False, timeout=0.5)
    sent(client)
    oack(client, 0.0, blksize=8, windowsize=4)
    sent(client)
    data(client, 1, b"1" * 8, 0.1)
    assert client.get_timer() == pytest.approx(0.6)  # progress re-arms at the base timeout
    client.handle_timer(0.3)  # early: nothing happens
    assert sent(client) == []
    client.handle_timer(0.6)
    assert sent(client) == [(Ack(1), TID)]  # the last in-order block
    assert client.get_timer() == pytest.approx(1.6)  # second wait doubles


def test_lost_ack_0_is_resent_by_the_timer() -> None:
    client = make(timeout=1.0)
    sent(client)
    oack(client, 0.5, blksize=1428)
    sent(client)
    assert client.get_timer() == pytest.approx(1.5)
    client.handle_timer(1.5)
    assert sent(client) == [(Ack(0), TID)]


# -- transfer IDs ----------------------------------------------------------------------------


def test_locks_on_the_first_reply_and_answers_strays_with_error_5() -> None:
    client = make(blksize=None, windowsize=None, tsize=False, timeout=0.5)
    sent(client)
    data(client, 1, b"a" * 512)  # from TID: lock
    assert sent(client) == [(Ack(1), TID)]
    data(client, 1, b"evil" * 128, addr=OTHER)  # e.g. the reply to a retransmitted RRQ
    [(packet, addr)] = sent(client)
    assert isinstance(packet, ErrorPacket) and packet.code == 5 and addr == OTHER
    assert packet.message == "Unknown transfer ID"
    client.receive_datagram(encode_error(1), OTHER, 0.0)  # an ERROR is never answered
    client.receive_datagram(b"\xff garbage", OTHER, 0.0)
    assert [p.code for p, _ in sent(client) if isinstance(p, ErrorPacket)] == [5]
    data(client, 2, b"b")
    res = result(client)
    assert res.ok and res.data == b"a" * 512 + b"b" and res.peer == TID


def test_stray_replies_are_capped() -> None:
    client = make()
    data(client, 1, b"a" * 512)
    sent(client)
    for port in range(100):
        data(client, 1, b"x", addr=("127.0.0.1", 50000 + port))
    assert len(sent(client)) == MAX_STRAY_REPLIES


def test_ipv6_peer_matches_on_host_and_port() -> None:
    client = make(blksize=None, windowsize=None, tsize=False, timeout=0.5)
    sent(client)
    data(client, 1, b"a" * 512, addr=("::1", 4000, 0, 0))
    data(client, 2, b"b", addr=("::1", 4000, 0, 0))
    assert result(client).ok


def test_a_first_reply_from_another_host_is_a_stray() -> None:
    """Only the host the request went to can give the first reply: otherwise a neighbouring
    node's late DATA would be stored under the requested name."""
    client = make(blksize=None, windowsize=None, tsize=False, timeout=0.5, server_host="127.0.0.1")
    sent(client)
    neighbour = ("127.0.0.2", TID[1])
    data(client, 1, b"not yours", addr=neighbour)  # a perfect first reply, from the wrong host
    client.receive_datagram(encode_oack({"tsize": 9}), neighbour, 0.0)
    client.receive_datagram(encode_error(1), neighbour, 0.0)  # not even a "not found"
    packets = sent(client)
    assert [(p.code, a) for p, a in packets if isinstance(p, ErrorPacket)] == [(5, neighbour)] * 2
    assert client.result is None and not client.peer_locked
    data(client, 1, b"yours")
    res = result(client)
    assert res.ok and res.data == b"yours" and res.peer == TID and res.strays == 3


def test_without_server_host_any_host_may_answer_first() -> None:
    client = make(blksize=None, windowsize=None, tsize=False, timeout=0.5)
    sent(client)
    data(client, 1, b"x", addr=("127.0.0.2", 4000))
    assert result(client).ok


@pytest.mark.parametrize("block", [0, 2, 7, 65535])
def test_a_first_reply_is_data_1_or_nothing(block: int) -> None:
    """A later block before the lock is a late datagram of an earlier transfer on this port."""
    client = make(server_host="127.0.0.1")
    sent(client)
    data(client, block, b"x" * 10)
    [(packet, addr)] = sent(client)
    assert isinstance(packet, ErrorPacket) and packet.code == 5 and addr == TID
    assert not client.peer_locked and client.strays == 1
    oack(client, blksize="1428", tsize="3", timeout="1", windowsize="8")
    data(client, 1, b"abc")
    res = result(client)
    assert res.ok and res.data == b"abc" and res.expected_size == 3 and res.strays == 1


def test_expected_size_is_none_without_tsize() -> None:
    client = make(blksize=None, windowsize=None, tsize=False, timeout=0.5)
    data(client, 1, b"abc")
    res = result(client)
    assert res.ok and res.expected_size is None and res.strays == 0


def test_garbage_before_the_lock_is_ignored_then_mentioned() -> None:
    client = make(max_retries=0, timeout=0.5)
    sent(client)
    client.receive_datagram(b"\x00", OTHER, 0.1)
    client.receive_datagram(encode_data(1, b"")[:0] + b"\x00\x04\x00\x01", OTHER, 0.1)  # an ACK
    assert sent(client) == [] and client.result is None
    client.handle_timer(0.5)
    res = result(client)
    assert res.outcome is Outcome.TIMEOUT
    assert "2 stray or undecodable datagrams ignored" in res.message


@pytest.mark.parametrize("bad", [b"\x00", b"\x00\x04\x00\x01", b"\x00\x01f\x00octet\x00"])
def test_garbage_or_wrong_packet_from_the_peer_is_a_protocol_error(bad: bytes) -> None:
    client = make()
    data(client, 1, b"a" * 512)
    sent(client)
    client.receive_datagram(bad, TID, 0.1)
    [(packet, addr)] = sent(client)
    assert isinstance(packet, ErrorPacket) and packet.code == 4 and addr == TID
    assert result(client).outcome is Outcome.PROTOCOL_ERROR


def test_nothing_happens_after_the_end() -> None:
    client = make()
    data(client, 1, b"short")
    sent(client)
    data(client, 2, b"more")
    client.handle_timer(100.0)
    assert sent(client) == []
    assert result(client).data == b"short"


# -- errors from the server ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (0, Outcome.REFUSED),
        (1, Outcome.NOT_FOUND),
        (2, Outcome.REFUSED),
        (3, Outcome.REFUSED),
        (4, Outcome.PROTOCOL_ERROR),
        (5, Outcome.PROTOCOL_ERROR),
        (6, Outcome.REFUSED),
        (7, Outcome.REFUSED),
        (8, Outcome.PROTOCOL_ERROR),
        (99, Outcome.REFUSED),
    ],
)
def test_error_codes_map_to_outcomes(code: int, outcome: Outcome) -> None:
    assert outcome_for_error(code) is outcome


def test_file_not_found() -> None:
    client = make()
    sent(client)
    client.receive_datagram(encode_error(1, "File not found"), TID, 0.2)
    assert sent(client) == []  # an ERROR is not acknowledged
    res = result(client)
    assert res.outcome is Outcome.NOT_FOUND
    assert (res.error_code, res.message, res.data) == (1, "File not found", b"")


def test_error_mid_transfer_keeps_the_count_of_what_arrived() -> None:
    client = make()
    data(client, 1, b"a" * 512)
    client.receive_datagram(encode_error(2, ""), TID, 0.3)
    res = result(client)
    assert res.outcome is Outcome.REFUSED and res.error_code == 2
    assert res.message == "Access violation"  # the RFC name when the server gave no text
    assert res.size == 512 and res.data == b""


# -- size cap --------------------------------------------------------------------------------


def test_tsize_above_the_cap_aborts_before_any_data() -> None:
    client = make(max_size=10_000)
    sent(client)
    oack(client, blksize=1428, tsize=10_001)
    [(packet, addr)] = sent(client)
    assert isinstance(packet, ErrorPacket) and packet.code == 3 and addr == TID
    res = result(client)
    assert res.outcome is Outcome.TOO_LARGE and "10001" in res.message
    assert res.options.tsize == 10_001


def test_data_beyond_the_cap_aborts() -> None:
    client = make(max_size=1000)
    sent(client)
    data(client, 1, b"a" * 512)
    data(client, 2, b"b" * 512)
    packets = [p for p, _ in sent(client)]
    assert packets[0] == Ack(1)
    assert isinstance(packets[1], ErrorPacket) and packets[1].code == 3
    res = result(client)
    assert res.outcome is Outcome.TOO_LARGE and res.size == 512


def test_a_file_of_exactly_the_cap_is_fine() -> None:
    client = make(max_size=512)
    data(client, 1, b"a" * 512)
    data(client, 2, b"")
    assert result(client).ok


# -- retransmission and retry exhaustion ----------------------------------------------------


def test_rrq_backoff_doubles_up_to_the_cap_then_times_out() -> None:
    client = make(timeout=1.0, max_retries=5)
    deadlines = []
    rrqs = 0
    while client.result is None:
        rrqs += sum(1 for p, addr in sent(client) if isinstance(p, ReadRequest) and addr is None)
        deadline = client.get_timer()
        assert deadline is not None
        deadlines.append(deadline)
        client.handle_timer(deadline)
    # Waits 1, 2, 4, 8, 8, 8 (capped at BACKOFF_CAP × timeout): RRQs at 0, 1, 3, 7, 15, 23.
    assert BACKOFF_CAP == 8
    assert deadlines == [1.0, 3.0, 7.0, 15.0, 23.0, 31.0]
    assert rrqs == 6
    res = result(client)
    assert res.outcome is Outcome.TIMEOUT
    assert res.retransmissions == 5 and res.elapsed == 31.0
    assert "no reply to the request after 6 tries" in res.message


def test_backoff_is_jittered_within_bounds() -> None:
    rng = random.Random(1234)
    client = make(timeout=1.0, max_retries=4, rng=rng)
    now = 0.0
    waits = []
    while client.result is None:
        deadline = client.get_timer()
        assert deadline is not None
        waits.append(deadline - now)
        now = deadline
        client.handle_timer(now)
    nominal = [1, 2, 4, 8, 8]
    for wait, base in zip(waits, nominal, strict=True):
        assert base * (1 - JITTER) <= wait <= base * (1 + JITTER)
    assert len(set(waits)) == len(waits)  # really jittered


def test_ack_retransmission_resets_on_progress_and_times_out() -> None:
    client = make(timeout=1.0, max_retries=2, blksize=None, windowsize=None, tsize=False)
    data(client, 1, b"a" * 512, 0.5)
    sent(client)
    client.handle_timer(1.5)
    assert sent(client) == [(Ack(1), TID)]
    data(client, 2, b"b" * 512, 2.0)  # progress: the next wait is the base timeout again
    assert client.get_timer() == pytest.approx(3.0)
    client.handle_timer(3.0)
    client.handle_timer(5.0)
    assert [p for p, _ in sent(client)] == [Ack(2), Ack(2), Ack(2)]
    assert client.result is None
    client.handle_timer(9.0)
    res = result(client)
    assert res.outcome is Outcome.TIMEOUT and "no DATA after block 2" in res.message
    assert res.retransmissions == 3 and res.size == 1024 and res.peer == TID


# -- against the server state machine, in memory ---------------------------------------------


def run_pair(
    content: bytes, client: TftpReadClient, *, settings: ServerSettings | None = None, loss: float = 0.0
) -> TftpResult:
    """Shuttle datagrams between client and server machines with a fake clock and seeded loss."""
    rng = random.Random(7)
    client_addr = ("127.0.0.1", 5555)
    now = 0.0
    server: ServerReadTransfer | None = None
    while client.result is None:
        moved = False
        for datagram, _ in client.datagrams_to_send(now):
            moved = True
            if loss and rng.random() < loss:
                continue
            if server is None:
                request = decode(datagram)
                assert isinstance(request, ReadRequest)
                server = ServerReadTransfer(request, content, client_addr, settings=settings)
                server.start(now)
            else:
                server.receive_datagram(datagram, client_addr, now)
        if server is not None:
            for datagram, _ in server.datagrams_to_send(now):
                moved = True
                if not (loss and rng.random() < loss):
                    client.receive_datagram(datagram, TID, now)
        if moved:
            continue  # answers to deliver before time moves on
        timers = [t for t in (client.get_timer(), server.get_timer() if server else None) if t is not None]
        now = min(timers)
        client.handle_timer(now)
        if server is not None:
            server.handle_timer(now)
    return client.result


def test_block_numbers_roll_over_past_65535() -> None:
    content = bytes(range(256)) * 2049 + b"tail"  # 524548 bytes: 65568 full blocks of 8, and a short one
    client = TftpReadClient("big", blksize=8, windowsize=64, tsize=True, timeout=1.0, max_size=1 << 20)
    client.start(0.0)
    res = run_pair(content, client)
    assert res.ok and res.data == content
    assert res.blocks == len(content) // 8 + 1 > 65536


@pytest.mark.parametrize("windowsize", [None, 4])
def test_pair_under_loss_stays_byte_exact(windowsize: int | None) -> None:
    content = random.Random(3).randbytes(20_000)
    client = TftpReadClient(
        "f", blksize=512, windowsize=windowsize, timeout=1.0, max_retries=20, rng=random.Random(5)
    )
    client.start(0.0)
    res = run_pair(content, client, settings=ServerSettings(timeout=1.0, max_retries=20), loss=0.1)
    assert res.ok and res.data == content
    assert res.retransmissions > 0


def test_sans_io_core_imports_no_io() -> None:
    # The architecture's first rule: the protocol core never imports an I/O module.
    code = (
        "import sys, scanner.core.tftp, scanner.core.tftp.client, scanner.core.tftp.server, scanner.core.tftp.packets\n"
        "bad = sorted(m for m in ('asyncio', 'socket', 'selectors', 'aiohttp', 'scanner.net') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


# -- the OACK verdict cache ------------------------------------------------------------------


def test_the_oack_verdict_depends_on_what_was_requested() -> None:
    # The same OACK bytes: accepted from a client that asked for windowsize 8, refused from one
    # that asked for 4 (a server may not raise a value).
    ok = make(windowsize=8)
    sent(ok)
    oack(ok, windowsize=8)
    assert sent(ok) == [(Ack(0), TID)]
    refused = make(windowsize=4)
    sent(refused)
    oack(refused, windowsize=8)
    [(packet, _)] = sent(refused)
    assert isinstance(packet, ErrorPacket) and packet.code == 8
    assert "windowsize 8 outside 1..4" in result(refused).message


def test_transfers_end_with_the_manifests_outcomes() -> None:
    # One vocabulary in every layer: the collector records a transfer's outcome as it is.
    from scanner.core import evidence, tftp

    assert tftp.Outcome is evidence.Outcome
