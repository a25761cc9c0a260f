"""The lab's TVS (scanner.lab.tvs_server): the responder without sockets (roles from the trust
stores, unknown certificates, bad input), the asyncio session, the fuzz targets on a fixed
seed, and a served lab answering over TLS with the phone's client certificate (base 54)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from fuzz.fuzz_parsers import mutate
from fuzz.targets import TARGETS, run_one
from fuzz.tvs_targets import SEED_DEVICE, SEED_ISSUER, SEED_SERIAL, SEED_SUBJECT, fuzz_certs
from scanner.core.trustlist import Role, parse
from scanner.core.tvs.codec import (
    HEADER,
    Command,
    Framer,
    Message,
    Tag,
    decode,
    encode,
    query_request,
    verify_request,
)
from scanner.lab.scenario import FaultUse, Scenario
from scanner.lab.testing import built_lab, serving
from scanner.lab.tvs_server import (
    MAX_REQUEST_BODY,
    MAX_REQUESTS,
    TvsResponder,
    load_responder,
    serve_session,
    stores_from_certs,
)
from scanner.net.tvs_probe import probe_tvs
from tests.pki import make_cert, rsa_key

BASE = 54  # this file's lab network base (127.54.x.x, ...)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _serial(cert: x509.Certificate) -> bytes:
    n = cert.serial_number
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def _cisco_name(name: x509.Name) -> str:
    """A name as Cisco's files and TVS messages write it: ``key=value`` joined by ``;``."""
    return ";".join(attr.rfc4514_string() for attr in name)


@pytest.fixture(scope="module")
def certs() -> dict[str, bytes]:
    """The seed's signer (serial and issuer of the dump) in both stores; one SAST-only, one
    CallManager-only; one in no store."""
    out = dict(fuzz_certs())
    out["unknown"] = _der(make_cert("stranger", rsa_key(2048, 5), issuer_cn="stormin-WIN2012-CA"))
    return out


@pytest.fixture(scope="module")
def responder(certs: dict[str, bytes]) -> TvsResponder:
    stores = {
        "Phone-SAST-trust": [certs["both"], certs["sast"]],
        "CallManager-trust": [certs["both"], certs["ccm"]],
    }
    return TvsResponder(stores_from_certs(stores))


def _query_for(der: bytes, session: int = 1) -> bytes:
    cert = x509.load_der_x509_certificate(der)
    return encode(
        query_request(
            session, SEED_DEVICE, _cisco_name(cert.subject), _cisco_name(cert.issuer), _serial(cert)
        )
    )


def _one(data: bytes) -> Message:
    return decode(data)


# -- the responder, without sockets -------------------------------------------------------------


def test_the_seed_query_gets_the_seed_answer(responder: TvsResponder, certs: dict[str, bytes]) -> None:
    request = encode(query_request(0x3E9, SEED_DEVICE, SEED_SUBJECT, SEED_ISSUER, SEED_SERIAL))
    assert len(request) == 153  # as the seed's phone wrote it
    out = responder.respond(request)
    m = _one(out)
    # The seed's answer: 57 01 04 f7 | 00 00 03 e9 | length | 07 00 01 00 | 02 <len> <DER> | roles | TTL
    assert out[:8] == bytes.fromhex("57 01 04 f7 00 00 03 e9")
    assert out[HEADER : HEADER + 4] == bytes.fromhex("07 00 01 00")
    assert (m.command, m.session_id, m.status) == (Command.QUERY_RESPONSE, 0x3E9, 0)
    assert m.certificate == certs["both"]
    assert m.roles == (0, 3)  # "{rolecount : 2} {role : 0} {role : 3}"
    assert m.ttl == 86_400 and out[-4:] == bytes.fromhex("00 01 51 80")
    assert len(out) == HEADER + 4 + 3 + len(certs["both"]) + 3 + 2 + 3 + 4


@pytest.mark.parametrize(
    ("which", "roles"), [("sast", (Role.SAST,)), ("ccm", (Role.TFTP,)), ("both", (0, 3))]
)
def test_roles_come_from_the_stores(
    responder: TvsResponder, certs: dict[str, bytes], which: str, roles: tuple[int, ...]
) -> None:
    m = _one(responder.respond(_query_for(certs[which], 5)))
    assert (m.status, m.session_id, m.certificate, m.roles) == (0, 5, certs[which], tuple(roles))
    if which == "ccm":
        assert Role.SAST not in (m.roles or ())  # only in CallManager-trust: never vouched as a signer


def test_an_unknown_certificate_is_invalid(responder: TvsResponder, certs: dict[str, bytes]) -> None:
    m = _one(responder.respond(_query_for(certs["unknown"], 9)))
    assert (m.command, m.session_id, m.status, m.certificate, m.roles, m.ttl) == (
        Command.QUERY_RESPONSE,
        9,
        1,
        None,
        None,
        None,
    )
    v = _one(responder.respond(encode(verify_request(10, SEED_DEVICE, certs["unknown"]))))
    assert (v.command, v.session_id, v.status, v.roles) == (Command.VERIFY_RESPONSE, 10, 1, None)


def test_verify_requests_get_roles_without_the_certificate(
    responder: TvsResponder, certs: dict[str, bytes]
) -> None:
    for which, roles in (("sast", (0,)), ("ccm", (3,)), ("both", (0, 3))):
        m = _one(responder.respond(encode(verify_request(0x3EA, SEED_DEVICE, certs[which]))))
        assert (m.command, m.session_id, m.reserved, m.status, m.roles, m.ttl) == (
            Command.VERIFY_RESPONSE,
            0x3EA,
            0xF7,
            0,
            roles,
            86_400,
        )
        assert m.certificate is None


def test_a_query_is_matched_by_serial_and_issuer_as_names(
    responder: TvsResponder, certs: dict[str, bytes]
) -> None:
    def status(issuer: str, serial: bytes) -> int | None:
        return _one(responder.respond(encode(query_request(1, SEED_DEVICE, "CN=x", issuer, serial)))).status

    assert status("cn=Stormin-WIN2012-CA", SEED_SERIAL) == 0  # another producer's spelling, same name
    assert status(SEED_ISSUER, b"\x00" + SEED_SERIAL) == 0  # DER's leading zero: the same number
    assert status("CN=another-CA", SEED_SERIAL) == 1  # same serial, another issuer
    assert status(SEED_ISSUER, SEED_SERIAL[:-1]) == 1
    assert status("no attributes", SEED_SERIAL) == 1  # an issuer that names nothing matches nothing
    assert status(SEED_ISSUER, b"") == 1
    # Neither serial nor issuer: a well-framed request that names no certificate gets an answer.
    bare = Message(Command.QUERY_REQUEST, 4, ((Tag.DEVICE_NAME, b"\x01" + SEED_DEVICE.encode()),))
    m = _one(responder.respond(encode(bare)))
    assert (m.session_id, m.status) == (4, 1)
    # A query carrying the DER itself is looked up by its bytes.
    with_cert = Message(Command.QUERY_REQUEST, 6, ((Tag.CERTIFICATE, certs["sast"]),))
    m = _one(responder.respond(encode(with_cert)))
    assert (m.status, m.certificate, m.roles) == (0, certs["sast"], (0,))


def test_unknown_tags_are_ignored_and_the_request_answered(responder: TvsResponder) -> None:
    request = query_request(8, SEED_DEVICE, SEED_SUBJECT, SEED_ISSUER, SEED_SERIAL)
    extra = Message(request.command, 8, ((0x42, b"what?"), *request.elements, (0xEE, b"")))
    session = responder.session()
    m = _one(session.feed(encode(extra)))
    assert (m.status, m.roles) == (0, (0, 3))
    assert (session.closed, session.error) == (False, None)
    assert session.lookups[0].device == SEED_DEVICE


def test_every_prefix_waits_and_the_rest_completes_it(responder: TvsResponder) -> None:
    request = encode(query_request(0x3E9, SEED_DEVICE, SEED_SUBJECT, SEED_ISSUER, SEED_SERIAL))
    for cut in range(len(request)):
        session = responder.session()
        assert session.feed(request[:cut]) == b""
        assert not session.closed, cut
        assert _one(session.feed(request[cut:])).status == 0


def test_two_requests_byte_by_byte(responder: TvsResponder, certs: dict[str, bytes]) -> None:
    stream = _query_for(certs["sast"], 21) + encode(verify_request(22, SEED_DEVICE, certs["unknown"]))
    session = responder.session()
    out = b"".join(session.feed(stream[i : i + 1]) for i in range(len(stream)))
    answers = Framer().feed(out)
    assert [(m.command, m.session_id, m.status) for m in answers] == [
        (Command.QUERY_RESPONSE, 21, 0),
        (Command.VERIFY_RESPONSE, 22, 1),
    ]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (bytes(HEADER), "offset 0: not a TVS message"),
        (b"GET / HTTP/1.1\r\nHost: tvs\r\n\r\n", "offset 0: not a TVS message"),
        (bytes.fromhex("57 02 03 00 00 00 00 01 00 00"), "offset 1: TVS version 2"),
        (bytes.fromhex("57 01 09 00 00 00 00 01 00 00"), "offset 2: unknown TVS command 9"),
        (
            bytes.fromhex("57 01 03 00 00 00 00 01 00 05 01 00 09 41 42"),
            "offset 10: TVS element tag 1 claims 9",
        ),
        (bytes.fromhex("57 01 03 00 00 00 00 01 00 02 01 00"), "offset 10: truncated TVS element header"),
        (encode(Message(Command.QUERY_RESPONSE, 3, ())), "QUERY_RESPONSE (command 4) is not a request"),
        (
            bytes.fromhex("57 01 01 00 00 00 00 01 ff ff"),
            f"offset 8: TVS body of 65535 bytes is over the limit of {MAX_REQUEST_BODY}",
        ),
    ],
)
def test_bad_input_closes_the_connection_with_a_reason(
    responder: TvsResponder, data: bytes, why: str
) -> None:
    session = responder.session()
    assert session.feed(data) == b""
    assert session.closed and session.error is not None and why in session.error, session.error
    assert session.feed(encode(verify_request(1, SEED_DEVICE, b"x"))) == b""  # closed stays closed


def test_a_good_request_then_garbage(responder: TvsResponder, certs: dict[str, bytes]) -> None:
    session = responder.session()
    good = _query_for(certs["ccm"], 31)
    assert _one(session.feed(good)).roles == (3,)
    assert session.feed(b"\x16\x03\x01\x00\x05hello") == b""
    assert session.closed and session.error is not None and f"offset {len(good)}" in session.error


def test_requests_per_connection_are_bounded(responder: TvsResponder, certs: dict[str, bytes]) -> None:
    session = responder.session()
    one = encode(verify_request(1, SEED_DEVICE, certs["sast"]))
    answers = Framer().feed(session.feed(one * (MAX_REQUESTS + 5)))
    assert len(answers) == MAX_REQUESTS and session.closed and session.error is None


def test_only_stores_with_a_role_are_accepted() -> None:
    with pytest.raises(ValueError, match=r"no TVS role for trust store.*tomcat-trust"):
        TvsResponder(stores_from_certs({"tomcat-trust": []}))


def test_a_lab_without_stores_knows_nothing(tmp_path: Path, certs: dict[str, bytes]) -> None:
    tvs = load_responder(tmp_path, "source")  # trust-store-missing: no trust/source
    assert _one(tvs.respond(_query_for(certs["both"]))).status == 1


# -- the fuzz targets, on a fixed seed -----------------------------------------------------------


@pytest.mark.parametrize("name", ["tvs_message", "tvs_responder"])
def test_fuzz_targets_on_seeds_and_fixed_mutations(name: str) -> None:
    target = TARGETS[name]
    seeds = target.seeds()
    rng = random.Random(20261202)
    for data in seeds:
        run_one(target, data)
    for _ in range(1500):
        run_one(target, mutate(rng, rng.choice(seeds), seeds))


# -- the asyncio session -------------------------------------------------------------------------


async def _exchange(
    host: str, port: int, data: bytes, ssl_ctx: ssl.SSLContext | None = None, *, want: int = 1
) -> tuple[list[Message], bool]:
    """Send ``data``; read ``want`` answers, or until the server closes (``want=0``): the
    answers and whether the server closed."""
    reader, writer = await asyncio.open_connection(host, port, ssl=ssl_ctx)
    framer = Framer()
    answers: list[Message] = []
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(10):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return answers, True
                answers += framer.feed(chunk)
                if want and len(answers) >= want:
                    return answers, False
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def test_serve_session_answers_times_out_and_survives_garbage(
    responder: TvsResponder, certs: dict[str, bytes]
) -> None:
    async def go() -> None:
        handler = functools.partial(serve_session, responder, read_timeout=0.3)
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            answers, _ = await _exchange("127.0.0.1", port, _query_for(certs["sast"], 77))
            assert [(m.session_id, m.status, m.roles) for m in answers] == [(77, 0, (0,))]
            answers, closed = await _exchange("127.0.0.1", port, b"\xff" * 40, want=0)
            assert (answers, closed) == ([], True)
            # Silence: closed after the read timeout, not held open.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            async with asyncio.timeout(5):
                assert await reader.read(10) == b""
            writer.close()
            answers, _ = await _exchange("127.0.0.1", port, _query_for(certs["ccm"], 78))
            assert [(m.session_id, m.roles) for m in answers] == [(78, (3,))]
        # A client that keeps trickling bytes inside the read timeout is cut at the session's.
        handler = functools.partial(serve_session, responder, read_timeout=0.3, session_timeout=0.8)
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            request = _query_for(certs["sast"], 79)

            async def trickle() -> None:
                with contextlib.suppress(OSError):
                    for byte in request:
                        writer.write(bytes((byte,)))
                        await writer.drain()
                        await asyncio.sleep(0.1)

            t0 = asyncio.get_running_loop().time()
            task = asyncio.create_task(trickle())
            async with asyncio.timeout(5):
                assert await reader.read() == b""  # closed by the server, no answer
            assert asyncio.get_running_loop().time() - t0 < 3.0  # 153 bytes at 0.1 s would be 15 s
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            writer.close()

    asyncio.run(go())


# -- a served lab ------------------------------------------------------------------------------


def _lab_json(d: Path) -> dict[str, Any]:
    lab: dict[str, Any] = json.loads((d / "lab.json").read_text())
    return lab


def _store(d: Path, cluster: str, name: str) -> set[bytes]:
    return {
        _der(x509.load_pem_x509_certificate(p.read_bytes()))
        for p in sorted((d / "trust" / cluster / name).glob("*.pem"))
    }


def _phone_ctx(d: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=1")  # a phone offers AES256-SHA
    ctx.load_cert_chain(d / "pki/phone.pem", d / "pki/phone.key")
    return ctx


def test_served_tvs_answers_from_the_source_trust_stores() -> None:
    scenario = Scenario(
        "tvs-served",
        "source TVS: src-sub1 presents a certificate no ITL holds, src-sub2 is down",
        faults=(FaultUse("tvs-cert-not-in-itl", node="src-sub1"), FaultUse("tvs-down", node="src-sub2")),
    )
    d = built_lab(scenario, phones=6, base=BASE)
    lab = _lab_json(d)
    tvs = {t["name"]: t for t in lab["clusters"]["source"]["tvs"]}
    sast, cmt = _store(d, "source", "Phone-SAST-trust"), _store(d, "source", "CallManager-trust")
    both = sorted(sast & cmt)
    ccm_only = sorted(cmt - sast)
    assert both and ccm_only, (
        "bulk import: CallManager certificates in both stores, CAPF in CallManager-trust only"
    )
    # The certificate that signs the destination's CTL (12.5: ITLRecovery) is what a phone asks about.
    dst_ctl = parse((d / "tftp/dst-pub/CTLFile.tlv").read_bytes())
    signer = next(r.certificate for r in dst_ctl.records if r.role == Role.SAST and r.certificate in sast)
    stranger = _der(make_cert("CN-not-imported", rsa_key(2048, 6)))
    itl = parse((d / "tftp/src-pub/ITLFile.tlv").read_bytes())
    tvs_in_itl = {r.certificate for r in itl.records if r.role == Role.TVS}

    async def go() -> None:
        async with serving(d):
            ctx = _phone_ctx(d)
            good = tvs["src-pub"]
            stream = (
                _query_for(signer, 0x3E9)
                + _query_for(ccm_only[0], 0x3EA)
                + _query_for(stranger, 0x3EB)
                + encode(verify_request(0x3EC, SEED_DEVICE, ccm_only[0]))
            )
            answers, _ = await _exchange(good["address"], good["port"], stream, ctx, want=4)
            got = [(m.command, m.session_id, m.status, m.roles) for m in answers]
            assert got == [
                (Command.QUERY_RESPONSE, 0x3E9, 0, (0, 3)),
                (Command.QUERY_RESPONSE, 0x3EA, 0, (3,)),
                (Command.QUERY_RESPONSE, 0x3EB, 1, None),
                (Command.VERIFY_RESPONSE, 0x3EC, 0, (3,)),
            ]
            assert answers[0].certificate == signer and answers[0].reserved == 0xF7
            # Garbage: the server closes that connection; the next one is answered.
            answers, closed = await _exchange(
                good["address"], good["port"], b"\x57\x01\x09" + bytes(7), ctx, want=0
            )
            assert (answers, closed) == ([], True)
            # tvs-cert-not-in-itl: a phone would refuse the handshake; the service itself answers.
            bad = tvs["src-sub1"]
            answers, _ = await _exchange(bad["address"], bad["port"], _query_for(both[0], 5), ctx)
            assert [(m.status, m.roles) for m in answers] == [(0, (0, 3))]
            probe = await probe_tvs(bad["address"], bad["port"], timeout=5.0)
            assert probe.certificate is not None and probe.certificate not in tvs_in_itl
            # The scanner's probe still captures the certificate of the answering server.
            probe = await probe_tvs(good["address"], good["port"], timeout=5.0)
            assert probe.certificate in tvs_in_itl
            # tvs-down: nothing listens.
            down = tvs["src-sub2"]
            with pytest.raises(OSError):
                await asyncio.open_connection(down["address"], down["port"])
            # The destination's TVS answers from the destination's stores (the source's certs).
            dst = lab["clusters"]["destination"]["tvs"][0]
            dst_sast = sorted(_store(d, "destination", "Phone-SAST-trust"))
            answers, _ = await _exchange(dst["address"], dst["port"], _query_for(dst_sast[0], 9), ctx)
            assert answers[0].status == 0 and Role.SAST in (answers[0].roles or ())
            answers, _ = await _exchange(dst["address"], dst["port"], _query_for(signer, 10), ctx)
            assert answers[0].status == 1  # its own signer is in no store of its own

    asyncio.run(go())
