"""Transfers that cannot mix (a stored file never carries another transfer's bytes): every file's
bytes are distinct, so a transfer that stores another transfer's bytes is seen, not hidden by
identical contents.

Many concurrent transfers go through the real ``tftp_io`` pool to two in-process servers on
neighbouring loopback addresses that serve the *same names* with *different bytes* (a source
and a destination node), with seeded loss, duplicated and reordered datagrams, and a stray
server on a third neighbouring address spraying DATA and OACK at the client's sockets. Every
``ok`` result must hold exactly the bytes its own server holds for its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from typing import Any

import pytest

from scanner.core.evidence import Outcome
from scanner.core.tftp.client import TftpResult
from scanner.core.tftp.server import ServerSettings
from scanner.lab.tftp_server import TftpFaults, TftpServer
from scanner.net.tftp_io import TftpSocketPool, tftp_fetch
from tests import test_tftp_io

# Neighbouring loopback addresses, apart from the other tests' and the labs' networks.
NODE_A = "127.0.93.31"
NODE_B = "127.0.93.32"
STRAY = "127.0.93.33"
FAST = ServerSettings(timeout=0.05, max_retries=8)


# The same two event loops as the pool's own tests (a module fixture, shared by name).
Runner = test_tftp_io.Runner
run = test_tftp_io.run


def distinct_files(node: str, names: list[str], rng: random.Random) -> dict[str, bytes]:
    """Each file names its node and itself and carries a nonce: no two files share bytes.
    Sizes span one short block to several windows (blksize 512 when options are refused)."""
    files = {}
    for name in names:
        head = f"{node}/{name}/{rng.getrandbits(64):016x}/".encode()
        files[name] = head + rng.randbytes(rng.choice((0, 40, 300, 600, 1500, 5000, 12000)))
    return files


NAMES = [f"SEP{i:012X}.cnf.xml" for i in range(70)] + [f"ITLSEP{i:012X}.tlv" for i in range(70)]


async def spray(pool: TftpSocketPool, stop: asyncio.Event) -> int:
    """A stray server on a neighbouring address: DATA 1 (a whole short file) and an OACK to
    every client socket of the pool, every millisecond or so."""
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((STRAY, 0))
        sock.setblocking(False)
        while not stop.is_set():
            for ps in list(pool._open):
                transport = ps.transport
                if transport is None or transport.is_closing():
                    continue
                addr = transport.get_extra_info("sockname")
                for packet in (b"\x00\x03\x00\x01STRAY", b"\x00\x06tsize\x005\x00"):
                    with contextlib.suppress(OSError):
                        sock.sendto(packet, addr)
                        sent += 1
            await asyncio.sleep(0.001)
    return sent


async def fetch_all(
    pool: TftpSocketPool, servers: dict[str, TftpServer], jobs: list[tuple[str, str]]
) -> list[tuple[str, str, TftpResult]]:
    gate = asyncio.Semaphore(96)

    async def one(host: str, name: str) -> tuple[str, str, TftpResult]:
        async with gate:
            r = await tftp_fetch(host, servers[host].port, name, timeout=0.1, retries=8, pool=pool)
            return host, name, r

    return await asyncio.gather(*(one(h, n) for h, n in jobs))


@pytest.mark.parametrize("stray", [True, False], ids=["stray", "no-stray"])
def test_no_transfer_stores_another_transfers_bytes(run: Runner, stray: bool) -> None:
    rng = random.Random(9)
    files = {NODE_A: distinct_files(NODE_A, NAMES, rng), NODE_B: distinct_files(NODE_B, NAMES, rng)}
    jobs = [(h, n) for n in NAMES for h in (NODE_A, NODE_B)]
    random.Random(3).shuffle(jobs)

    async def main() -> tuple[list[tuple[str, str, TftpResult]], TftpSocketPool, int]:
        faults = {
            NODE_A: TftpFaults(loss=0.2, duplicate=0.1, jitter=0.02, seed=1),
            NODE_B: TftpFaults(loss=0.2, duplicate=0.1, jitter=0.02, seed=2),
        }
        servers = {h: TftpServer(files[h].get, faults=faults[h], settings=FAST) for h in files}
        stop = asyncio.Event()
        async with TftpSocketPool() as pool:
            for host, server in servers.items():
                await server.start(host)
            sprayer = asyncio.create_task(spray(pool, stop) if stray else asyncio.sleep(0, 0))
            try:
                # Two rounds: the second runs on the sockets (and ports) the first left behind.
                results = await fetch_all(pool, servers, jobs)
                results += await fetch_all(pool, servers, jobs[::-1])
            finally:
                stop.set()
                sprayed = await sprayer
                for server in servers.values():
                    server.close()
        return results, pool, sprayed

    results, pool, sprayed = run(main())
    wrong = [(h, n, r.data[:40]) for h, n, r in results if r.outcome is Outcome.OK and r.data != files[h][n]]
    assert wrong == [], f"{len(wrong)} transfers stored another file's bytes: {wrong[:5]}"
    ok = sum(r.outcome is Outcome.OK for _, _, r in results)
    assert ok >= 0.9 * len(results), [r for _, _, r in results if not r.ok][:5]
    if stray:
        assert sprayed > 0 and pool.strays > 0
        assert sum(r.strays for _, _, r in results) > 0
    # Every ok file was checked against tsize when the server sent one.
    assert all(r.expected_size in (None, len(r.data)) for _, _, r in results if r.ok)


def test_a_stray_server_on_a_neighbouring_address_is_never_the_reply(run: Runner) -> None:
    """A datagram from an address the request was not sent to is refused even when it comes
    first and is a perfect first reply (a whole short file as DATA 1)."""

    async def main() -> tuple[TftpResult, bytes]:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as requests,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stray,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tid,
        ):
            for s, host in ((requests, NODE_A), (stray, STRAY), (tid, NODE_A)):
                s.bind((host, 0))
                s.setblocking(False)
            async with TftpSocketPool() as pool:
                plain: dict[str, Any] = {"blksize": None, "windowsize": None, "tsize": False}
                task = asyncio.create_task(
                    tftp_fetch(NODE_A, requests.getsockname()[1], "f", timeout=0.5, pool=pool, **plain)
                )
                _, client = await recv(requests)
                stray.sendto(b"\x00\x03\x00\x01not yours", client)
                reply, _ = await recv(stray)
                tid.sendto(b"\x00\x03\x00\x01yours", client)
                result = await task
                assert pool.strays == 1
        return result, reply

    result, reply = run(main())
    assert result.ok and result.data == b"yours" and result.strays == 1
    assert reply[:4] == b"\x00\x05\x00\x05"  # ERROR 5 Unknown transfer ID to the stray


def test_a_late_reply_to_an_unclean_transfer_never_reaches_the_next_one(run: Runner) -> None:
    """An unclean transfer (here: its request was sent twice, so the server may run two
    transfers) leaves its socket parked: the port is not handed out again while the server's
    straggling transfer may still send to it, and the straggler is told ERROR 5."""

    async def main() -> tuple[TftpResult, TftpResult, Any, Any, bytes, TftpSocketPool]:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as requests,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tid1,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tid2,
        ):
            for s in (requests, tid1, tid2):
                s.bind((NODE_A, 0))
                s.setblocking(False)
            port = requests.getsockname()[1]
            plain: dict[str, Any] = {"blksize": None, "windowsize": None, "tsize": False}
            async with TftpSocketPool() as pool:
                task = asyncio.create_task(tftp_fetch(NODE_A, port, "a", timeout=0.05, pool=pool, **plain))
                _, first_client = await recv(requests)
                await recv(requests)  # the retransmitted request: a second server transfer
                tid1.sendto(b"\x00\x03\x00\x01a", first_client)
                first = await task
                assert first.ok and first.retransmissions >= 1
                task = asyncio.create_task(tftp_fetch(NODE_A, port, "b", timeout=0.5, pool=pool, **plain))
                _, second_client = await recv(requests)
                # The second transfer of the first request answers late, to the first port.
                tid2.sendto(b"\x00\x03\x00\x01a", first_client)
                reply, _ = await recv(tid2)
                tid1.sendto(b"\x00\x03\x00\x01b", second_client)
                second = await task
        return first, second, first_client, second_client, reply, pool

    _first, second, first_client, second_client, reply, pool = run(main())
    assert second.ok and second.data == b"b"
    assert second_client != first_client
    assert reply[:4] == b"\x00\x05\x00\x05"
    assert pool.strays >= 1


async def recv(sock: socket.socket) -> tuple[bytes, Any]:
    for _ in range(1000):
        try:
            return sock.recvfrom(2048)
        except BlockingIOError:
            await asyncio.sleep(0.002)
    raise AssertionError("nothing received")


# -- check_fetched: is a stored file the one that was asked for? ---------------------------------


def _files() -> dict[str, bytes]:
    from scanner.core.trustlist import Role
    from scanner.lab.builder import RecordSpec, build_signed_file, build_trust_list
    from tests.pki import signer

    s = signer("CallManager_pub")
    recs = [RecordSpec(s.certificate, Role.CCM_TFTP, dns_name="pub")]
    xml = b'<?xml version="1.0" encoding="UTF-8"?>\n<device xsi:type="axl:XIPPhone">\n<a>1</a>\n</device>\n'
    return {
        "CTLFile.tlv": build_trust_list(s, recs, filename="CTLFile.tlv", timestamp=1),
        "ITLFile.tlv": build_trust_list(s, recs, filename="ITLFile.tlv", timestamp=1),
        "SEP001122334455.cnf.xml.sgn": build_signed_file(
            s, xml, filename="SEP001122334455.cnf.xml.sgn", timestamp=1
        ),
        "SEP001122334455.cnf.xml": xml,
        "XMLDefault.cnf.xml": b"<?xml version='1.0'?><!-- x --><Default><b/></Default>",
        "ConfigFileCacheList.txt": b"XMLDefault.cnf.xml\nSEP001122334455.cnf.xml\n",
    }


@pytest.fixture(scope="module")
def good() -> dict[str, bytes]:
    return _files()


def test_the_right_files_pass(good: dict[str, bytes]) -> None:
    from scanner.core.content_check import check_fetched

    g = good
    cases = {
        "CTLFile.tlv": g["CTLFile.tlv"],
        "CTLSEP001122334455.tlv": g["CTLFile.tlv"],  # per-phone names carry the node's list
        "ITLFile.tlv": g["ITLFile.tlv"],
        "ITLSEP001122334455.tlv": g["ITLFile.tlv"],
        "SEP001122334455.cnf.xml.sgn": g["SEP001122334455.cnf.xml.sgn"],
        "sep001122334455.cnf.xml.sgn": g["SEP001122334455.cnf.xml.sgn"],
        "SEP001122334455.cnf.xml": g["SEP001122334455.cnf.xml"],
        "XMLDefault.cnf.xml": g["XMLDefault.cnf.xml"],
        "ConfigFileCacheList.txt": g["ConfigFileCacheList.txt"],
        "SEPAABBCCDDEEFF.cnf.xml": b"<device/>",
        "firmware.loads": b"\x00\x01anything",
    }
    for name, data in cases.items():
        assert check_fetched(name, data, expected_size=None) is None, name
        assert check_fetched(name, data, expected_size=len(data)) is None, name


def test_the_wrong_files_are_named(good: dict[str, bytes]) -> None:
    from scanner.core.content_check import check_fetched

    g = good
    sgn = g["SEP001122334455.cnf.xml.sgn"]
    cases: dict[tuple[str, bytes], str] = {
        ("ITLSEP001122334455.tlv", g["CTLFile.tlv"]): "asked for a ITL",
        ("CTLFile.tlv", g["ITLFile.tlv"]): "asked for a CTL",
        ("ITLFile.tlv", sgn): "asked for a ITL",
        ("CTLFile.tlv", b"<device/>"): "not a trust-file header",
        ("ITLFile.tlv", g["ITLFile.tlv"][:-7] + b"\x01\x00"): "records do not parse",
        ("SEP001122334455.cnf.xml.sgn", g["CTLFile.tlv"]): "names itself 'CTLFile.tlv'",
        ("SEPAABBCCDDEEFF.cnf.xml.sgn", sgn): "names itself 'SEP001122334455.cnf.xml.sgn'",
        ("SEP001122334455.cnf.xml.sgn", b"<device/>"): "not a trust-file header",
        ("SEP001122334455.cnf.xml", g["ITLFile.tlv"]): "not an XML document",
        ("SEP001122334455.cnf.xml", g["XMLDefault.cnf.xml"]): "root is <device>",
        ("SEP001122334455.cnf.xml", b"<device><a>1</a>"): "does not end with </device>",
        ("XMLDefault.cnf.xml", b"STRAY"): "not an XML document",
        ("ConfigFileCacheList.txt", g["ITLFile.tlv"]): "not text",
        ("ConfigFileCacheList.txt", b"\xff\xfe"): "not text",
    }
    for (name, data), words in cases.items():
        reason = check_fetched(name, data, expected_size=None)
        assert reason is not None and words in reason and "\n" not in reason, (name, reason)
    reason = check_fetched("ITLFile.tlv", g["ITLFile.tlv"], expected_size=5)
    assert reason is not None and "announced 5" in reason


def test_check_fetched_never_raises_on_garbage() -> None:
    from scanner.core.content_check import check_fetched

    rng = random.Random(4)
    names = ["CTLFile.tlv", "ITLSEP1.tlv", "SEP1.cnf.xml.sgn", "SEP1.cnf.xml", "ConfigFileCacheList.txt"]
    for _ in range(2000):
        data = rng.randbytes(rng.randrange(64))
        if rng.random() < 0.5:
            data = b"\x01\x00\x02\x01\x02\x02\x00\x02" + data
        for name in names:
            reason = check_fetched(name, data, expected_size=None)
            assert reason is None or isinstance(reason, str)
