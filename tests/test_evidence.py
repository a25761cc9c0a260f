"""The evidence directory: content-addressed blobs, the manifest, redaction of configs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core.devconfig import redact_config_xml
from scanner.core.errors import ParseError
from scanner.core.evidence import Attempt, Outcome, _redact_fast, prepare_for_storage, redact
from scanner.core.trustlist import Digest, parse
from scanner.lab.builder import build_signed_file
from scanner.store.evidence import EvidenceReader, EvidenceWriter, blob_path
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
        signed_digest="sha1:" + "00" * 20,
    )
    assert Attempt.from_json(a.to_json()) == a


def test_plain_config_is_redacted() -> None:
    s = prepare_for_storage("SEP001122334455.cnf.xml", CONFIG)
    assert s.redacted and b"hunter2" not in s.data and b"127.0.1.1" in s.data
    clean = CONFIG.replace(b"hunter2", b"")
    assert prepare_for_storage("SEP001122334455.cnf.xml", clean).redacted is False


def test_a_torn_blob_left_by_an_interrupted_run_is_rewritten(tmp_path: Path) -> None:
    data = b"the whole file" * 100
    sha = hashlib.sha256(data).hexdigest()
    torn = blob_path(tmp_path / "ev", sha)
    torn.parent.mkdir(parents=True)
    torn.write_bytes(data[:10])  # a crash mid-write, in a directory with no manifest yet
    with EvidenceWriter(tmp_path / "ev") as w:
        assert w.store(data) == sha
        w.record(attempt("SEP001122334455", "ITLSEP001122334455.tlv", size=len(data), sha256=sha, blob=sha))
    assert EvidenceReader(tmp_path / "ev").blob(sha) == data


def test_a_torn_blob_is_refused_by_the_reader(tmp_path: Path) -> None:
    data = b"the whole file"
    with EvidenceWriter(tmp_path / "ev") as w:
        sha = w.store(data)
    blob_path(tmp_path / "ev", sha).write_bytes(data[:5])
    with pytest.raises(ParseError, match="does not match"):
        EvidenceReader(tmp_path / "ev").blob(sha)


def test_a_signed_config_with_a_broken_header_is_still_redacted() -> None:
    sgn = build_signed_file(signer("CallManager_pub"), CONFIG, filename="SEP001122334455.cnf.xml.sgn", timestamp=1)
    for broken in (
        sgn[:8] + b"\xff\xff" + sgn[10:],  # header length runs past the end
        b"\x01\x00\x02junk" + CONFIG,  # NULs up front, no header at all
    ):
        stored = prepare_for_storage("SEP001122334455.cnf.xml.sgn", broken)
        assert b"hunter2" not in stored.data and stored.redacted and stored.signed_digest is None


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


# --- the fast redaction path is the reference's output, byte for byte ------------------------

_CASES = [
    b"<a><SSHPASSWORD>x1</SSHPASSWORD></a>",
    b"<a><p:adminPassword>x</p:adminPassword></a>",
    b'<a><sshPassword a="1">x</sshPassword ></a>',
    b"<a><sshPassword><![CDATA[p<w]]></sshPassword></a>",
    b"<a><sshPassword/><b>k</b></a>",
    b"<a><sshPassword>  </sshPassword></a>",
    b'<line authPassword="pw" name="n"/>',
    b"<line password='pw'>",
    b"<a><ccmSecret>s</ccmSecret><authString>123</authString></a>",
    b"<a><sshPassword>hunter2",
    b"<a><sshPassword>hunter2<b>k</b>",
    b'<a adminPassword="pw',
    b"<!-- <sshPassword>old</sshPassword> --><a/>",
    b"<a x='1'><b>text</b><c",
    b"<a><psk>k</psk><wpaPsk>k2</wpaPsk><pskMode>1</pskMode><b>bypass</b></a>",
    b"<a><sshPassword>x</sshPassword ><sshPassword>y</sshPassword></a>",
    b"<a><sshPassword>x</sshpassword></a>",
    b"<a><sshPassword>x<sshPassword>y</sshPassword></a>",
    b"<a>password</a>",
    b"password<a/>",
    b"",
    CONFIG,
    "<?xml version='1.0' encoding='UTF-16'?><a><sshPassword>w</sshPassword></a>".encode("utf-16"),
]


@pytest.mark.parametrize("xml", _CASES)
def test_fast_redaction_matches_the_reference(xml: bytes) -> None:
    assert redact(xml) == redact_config_xml(xml)


def test_fast_redaction_takes_the_fast_path_on_ordinary_configs() -> None:
    assert _redact_fast(CONFIG) == redact_config_xml(CONFIG)
    fixture = Path(__file__).parent / "data" / "configs"
    for path in sorted(fixture.glob("*.xml")):
        raw = path.read_bytes()
        assert redact(raw) == redact_config_xml(raw), path


_PIECES = st.sampled_from(
    [
        b"<a>",
        b"</a>",
        b"<b x='1'>",
        b"<sshPassword>",
        b"</sshPassword>",
        b"<sshPassword/>",
        b"<adminPassword>",
        b"</adminPassword>",
        b"<psk>",
        b"</psk>",
        b"<pskMode>",
        b"</pskMode>",
        b"hunter2",
        b"  ",
        b"<![CDATA[",
        b"]]>",
        b"<!--",
        b"-->",
        b'<c password="p">',
        b"<",
        b">",
        b"secret",
        b"<ccmSecret >",
        b"</ccmSecret>",
        b"\n",
        b"<p:authString>",
        b"</p:authString>",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=25))
def test_fast_redaction_matches_the_reference_on_generated_documents(pieces: list[bytes]) -> None:
    xml = b"".join(pieces)
    assert redact(xml) == redact_config_xml(xml)


def test_manifest_line_names_every_field_once() -> None:
    from dataclasses import fields

    a = attempt("SEP001122334455", "ITLFile.tlv", size=3, sha256="ab", blob="cd" * 32, started=1.5)
    line = orjson.loads(a.to_json())
    assert set(line) == {"bytes" if f.name == "size" else f.name for f in fields(Attempt)}
    assert Attempt.from_json(a.to_json()) == a


@pytest.mark.parametrize("field,value", [
    ("phone", 5), ("file", 9), ("cluster", ["source"]), ("blob", 12), ("blob", "../../etc/passwd"),
    ("address", 5), ("bytes", "3"), ("redacted", "yes"), ("duration", None), ("started", "now"),
])
def test_a_manifest_line_of_the_wrong_types_is_one_bad_line(tmp_path: Path, field: str, value: object) -> None:
    good = attempt("SEP001122334455", "ITLFile.tlv", size=3, sha256="ab", blob="cd" * 32, started=1.5)
    doc = orjson.loads(good.to_json())
    doc[field] = value
    with pytest.raises(ValueError):
        Attempt.from_json(orjson.dumps(doc))
    # In a manifest: skipped and named, the other lines read.
    ev = tmp_path / "ev"
    with EvidenceWriter(ev) as w:
        w.record(good)
    with (ev / "manifest.jsonl").open("ab") as fh:
        fh.write(orjson.dumps(doc) + b"\n")
        fh.write(good.to_json() + b"\n")
    reader = EvidenceReader(ev)
    assert len(list(reader.attempts())) == 2
    assert len(reader.issues) == 1 and "manifest.jsonl:2" in reader.issues[0]
