"""Fuzz targets for TVS: the message codec (``tvs_message``: decode, re-encode, and the framer fed
in pieces, ``ParseError`` declared) and the lab's responder (``tvs_responder``: a connection fed
any bytes, declared to never raise; whatever it answers must decode as a response).

Registered in ``fuzz/targets.py``. Seeds: the seed article's dumps (the phone's 153-byte query,
rebuilt by the codec from the fields Cisco's TVS log decodes; the first 50 bytes Cisco printed;
the 1,480-byte answer with a certificate of the same length), a verify request, and requests for
the certificates the fuzzing responder holds (one in each store, one in both).
"""

from __future__ import annotations

import datetime as dt
import functools

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scanner.core.tvs.codec import (
    Command,
    Framer,
    Message,
    decode,
    encode,
    query_request,
    query_response,
    verify_request,
)
from scanner.lab.tvs_server import TvsResponder, stores_from_certs

# The seed's query (trust-files.md §3.5): device, subject, issuer, serial as Cisco's TVS log
# decodes them; the codec writes the 153 bytes the phone's log counts.
SEED_DEVICE = "CP-8861-SEPB000B4BA0AEE"
SEED_SUBJECT = "CN=ucm11pub.stormin.local;OU=IST;O=Stormin;L=Brisbane;ST=QLD;C=AU"
SEED_ISSUER = "CN=stormin-WIN2012-CA"
SEED_SERIAL = bytes.fromhex("24000000179479B8F124AC3F3B000000000017")
SEED_REQUEST_HEAD = bytes.fromhex(
    "57 01 03 00 00 00 03 e9 00 8f 01 00 18 01 43 50 2d 38 38 36 31 2d 53 45 50 42 30 30 30 42 34 42"
    " 41 30 41 45 45 03 00 42 43 4e 3d 75 63 6d 31 31 70 75"
)
SEED_CERT_HEAD = bytes.fromhex(
    "30 82 05 a7 30 82 04 8f a0 03 02 01 02 02 13 24 00 00 00 17 94 79 b8 f1 24 ac 3f 3b 00 00 00 00 00"
    " 17 30 0d 06 09 2a 86 48 86 f7 0d 01 01 0b 05 00 30"
)
_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _cert(cn: str, serial: int, issuer_cn: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())  # EC: fast to make at import of the target
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(_START)
        .not_valid_after(_START + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@functools.cache
def fuzz_certs() -> dict[str, bytes]:
    """Certificates of the fuzzing responder: the seed's signer (serial and issuer of the dump)
    in both stores, one only in Phone-SAST-trust, one only in CallManager-trust."""
    return {
        "both": _cert("ucm11pub.stormin.local", int.from_bytes(SEED_SERIAL, "big"), "stormin-WIN2012-CA"),
        "sast": _cert("ITLRECOVERY_dst-pub", 0x1001, "ITLRECOVERY_dst-pub"),
        "ccm": _cert("CAPF-dst", 0x2002, "CAPF-dst"),
    }


@functools.cache
def fuzz_responder() -> TvsResponder:
    c = fuzz_certs()
    stores = {"Phone-SAST-trust": [c["both"], c["sast"]], "CallManager-trust": [c["both"], c["ccm"]]}
    return TvsResponder(stores_from_certs(stores))


def tvs_seeds() -> list[bytes]:
    c = fuzz_certs()
    request = encode(query_request(0x3E9, SEED_DEVICE, SEED_SUBJECT, SEED_ISSUER, SEED_SERIAL))
    seed_cert = SEED_CERT_HEAD + bytes(1451 - len(SEED_CERT_HEAD))  # the answer's 1,451-byte certificate
    answer = encode(query_response(0x3E9, certificate=seed_cert, roles=(0, 3)))
    with_cert = Message(Command.QUERY_REQUEST, 7, ((1, b"\x01" + SEED_DEVICE.encode()), (2, c["sast"])))
    return [
        request,
        SEED_REQUEST_HEAD,
        answer,
        encode(verify_request(0x3EA, SEED_DEVICE, c["ccm"])),
        encode(with_cert),
        request + encode(verify_request(0x3EB, SEED_DEVICE, c["both"])),  # two requests, one stream
    ]


def tvs_message(data: bytes) -> None:
    """decode; the exact bytes back from encode; the framer, fed in uneven pieces, agrees."""
    message = decode(data)
    assert encode(message) == data, "a decoded message must encode back to its bytes"
    framer = Framer()
    got: list[Message] = []
    step = 1 + data[-1] % 13
    for i in range(0, len(data), step):
        got += framer.feed(data[i : i + step])
    assert got == [message], "the framer must cut a whole message as decode reads it"


def tvs_responder(data: bytes) -> None:
    """A connection fed ``data`` whole and in pieces: never raises; every answer is a response
    for a request's session id; once closed it answers nothing more."""
    responder = fuzz_responder()
    whole = responder.session()
    out = whole.feed(data)
    answers = Framer().feed(out)
    assert sum(len(encode(m)) for m in answers) == len(out), "an answer must be whole messages"
    for m in answers:
        assert m.command in (Command.VERIFY_RESPONSE, Command.QUERY_RESPONSE), m
        assert m.status in (0, 1), m
    pieces = responder.session()
    step = 1 + (data[0] % 11 if data else 0)
    split = b"".join(pieces.feed(data[i : i + step]) for i in range(0, len(data), step))
    if whole.error is None:
        assert split == out, "how the bytes arrive must not change the answers"
    else:
        # Fed in pieces, requests before a framing error in a later piece are still answered.
        assert split.startswith(out), (out, split)
    if whole.closed:
        assert whole.feed(data) == b""
