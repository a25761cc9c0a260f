"""The evidence directory: content-addressed blobs, the manifest, redaction of configs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

from scanner.builder import build_signed_file
from scanner.errors import ParseError
from scanner.evidence import (
    Attempt,
    EvidenceReader,
    EvidenceWriter,
    Outcome,
    blob_path,
    prepare_for_storage,
)
from scanner.trustlist import Digest, parse
from tests.pki import signer

CONFIG = (
    b'<?xml version="1.0"?><device><sshUserId>admin</sshUserId><sshPassword>hunter2</sshPassword>'
    b'<TVS><members><member priority="0"><port>2445</port><address>127.0.1.1</address></member></members></TVS>'
    b"</device>"
)


def attempt(phone: str | None, file: str, outcome: Outcome = Outcome.OK, **kw: object) -> Attempt:
    base: dict[str, object] = {
        "phone": phone,
        "cluster": "source",
        "node": "pub",
        "transport": "tftp",
        "file": file,
        "outcome": outcome,
        "size": None,
        "sha256": None,
        "duration": 0.01,
    }
    base.update(kw)
    return Attempt(**base)  # type: ignore[arg-type]


def test_identical_bytes_stored_once(tmp_path: Path) -> None:
    itl = b"\x01\x00\x02\x01\x02" + b"x" * 100
    with EvidenceWriter(tmp_path / "ev") as w:
        shas = {w.store(itl) for _ in range(1000)}
        w.store(b"other")
        for i in range(1000):
            sha = w.store(itl)
            w.record(attempt(f"SEP{i:012X}", f"ITLSEP{i:012X}.tlv", size=len(itl), sha256=sha, blob=sha))
        w.record(
            attempt("SEP000000000000", "CTLSEP000000000000.tlv", Outcome.NOT_FOUND, error="File not found")
        )
        w.close({"tool_version": "test"})
    assert len(shas) == 1
    assert w.blobs_written == 2
    blobs = [p for p in (tmp_path / "ev" / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 2 and not any(p.name.startswith(".") for p in blobs)
    r = EvidenceReader(tmp_path / "ev")
    rows = list(r.attempts())
    assert len(rows) == 1001
    assert r.content(rows[0]) == itl
    assert rows[-1].outcome is Outcome.NOT_FOUND and r.content(rows[-1]) is None
    assert r.summary()["evidence_format"] == 1 and r.summary()["tool_version"] == "test"


def test_writer_refuses_existing_evidence(tmp_path: Path) -> None:
    EvidenceWriter(tmp_path).close()
    with pytest.raises(FileExistsError):
        EvidenceWriter(tmp_path)


def test_reader_detects_corruption_and_torn_lines(tmp_path: Path) -> None:
    w = EvidenceWriter(tmp_path)
    sha = w.store(b"abc")
    w.record(attempt("SEP001122334455", "a", sha256=sha, blob=sha))
    w.close()
    with (tmp_path / "manifest.jsonl").open("ab") as fh:
        fh.write(b'{"phone": "SEP0011')  # a crash mid-line
    r = EvidenceReader(tmp_path)
    assert len(list(r.attempts())) == 1
    assert r.summary() == {}  # interrupted: no summary, manifest still usable
    blob_path(tmp_path, sha).write_bytes(b"abd")
    with pytest.raises(ParseError, match="does not match"):
        r.blob(sha)
    with pytest.raises(FileNotFoundError):
        EvidenceReader(tmp_path / "nothing")


def test_round_trip_of_every_field() -> None:
    a = attempt(
        None,
        "ITLFile.tlv",
        Outcome.TIMEOUT,
        error="no reply",
        address="127.0.0.1:69",
        started=1.5,
        redacted=True,
        signed_digest="sha1:00",
    )
    assert Attempt.from_json(a.to_json()) == a


def test_plain_config_is_redacted() -> None:
    s = prepare_for_storage("SEP001122334455.cnf.xml", CONFIG)
    assert s.redacted and b"hunter2" not in s.data and b"127.0.1.1" in s.data
    clean = CONFIG.replace(b"hunter2", b"")
    assert prepare_for_storage("SEP001122334455.cnf.xml", clean).redacted is False


def test_trust_lists_and_pages_stored_as_received() -> None:
    data = b"<sshPassword>x</sshPassword>"  # whatever a .tlv holds, it is not redacted
    assert prepare_for_storage("ITLSEP001122334455.tlv", data).data == data


@pytest.mark.parametrize("digest", [Digest.SHA1, Digest.SHA512])
def test_signed_config_keeps_header_and_verifiable_digest(digest: Digest) -> None:
    s = signer("CallManager_pub")
    sgn = build_signed_file(
        s, CONFIG, filename="SEP001122334455.cnf.xml.sgn", digest=digest, timestamp=1_700_000_000
    )
    stored = prepare_for_storage("SEP001122334455.cnf.xml.sgn", sgn)
    assert stored.redacted and b"hunter2" not in stored.data
    original = parse(sgn)
    red = parse(stored.data)
    assert red.header == original.header  # header bytes unchanged
    assert stored.signed_digest is not None
    alg, hexdigest = stored.signed_digest.split(":")
    assert alg == digest.hash_name
    # The recorded digest verifies against the signer's key although the stored payload changed.
    algorithm = {"sha1": hashes.SHA1(), "sha512": hashes.SHA512()}[alg]
    sig = original.header.signature
    assert sig is not None
    s.key.public_key().verify(sig, bytes.fromhex(hexdigest), padding.PKCS1v15(), utils.Prehashed(algorithm))
    assert hashlib.new(alg, original.signed_message).hexdigest() == hexdigest


def test_unparseable_sgn_is_redacted_as_text() -> None:
    stored = prepare_for_storage("SEP001122334455.cnf.xml.sgn", b"garbage" + CONFIG)
    assert stored.redacted and b"hunter2" not in stored.data and stored.signed_digest is None
