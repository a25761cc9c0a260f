"""The evidence directory: content-addressed blobs, the manifest, redaction of configs."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core.devconfig import redact_config_xml
from scanner.core.errors import ParseError
from scanner.core.evidence import Attempt, Outcome, Stored, prepare_for_storage
from scanner.core.trustlist import Digest, parse
from scanner.lab.builder import build_signed_file
from scanner.lab.testing import built_lab
from scanner.store.blobpack import PACK
from scanner.store.evidence import EvidenceReader, EvidenceWriter, blob_path
from tests.evidence_damage import cut_pack, damage_blob, stored_blobs
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
    assert stored_blobs(tmp_path / "ev") == sorted(hashlib.sha256(b).hexdigest() for b in (itl, b"other"))
    assert not (tmp_path / "ev" / "blobs").exists()  # format 2: one pack, no file per blob
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["blobs.pack", "collection.json", "manifest.jsonl"]
    r = EvidenceReader(tmp_path / "ev")
    rows = list(r.attempts())
    assert len(rows) == 1001
    assert r.content(rows[0]) == itl
    assert rows[-1].outcome is Outcome.NOT_FOUND and r.content(rows[-1]) is None
    assert r.summary()["evidence_format"] == 2 and r.summary()["tool_version"] == "test"


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
    damage_blob(tmp_path, sha)
    with pytest.raises(ParseError, match="does not match"):
        r.blob(sha)
    with pytest.raises(FileNotFoundError):
        r.blob("ab" * 32)  # named by no record: missing, not damaged
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
    cut_pack(tmp_path / "ev", (tmp_path / "ev" / PACK).stat().st_size - 3)  # a kill mid-record
    with pytest.raises(FileNotFoundError):
        EvidenceReader(tmp_path / "ev").blob(sha)


def test_a_torn_format_1_blob_is_refused_by_the_reader(tmp_path: Path) -> None:
    data = b"the whole file"
    sha = hashlib.sha256(data).hexdigest()
    EvidenceWriter(tmp_path / "ev").close()
    blob_path(tmp_path / "ev", sha).parent.mkdir(parents=True)
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


# --- what is stored of a config, byte for byte ------------------------------------------------
#
# The expected bytes below are what the scanner has always stored for these inputs (computed
# before evidence.py's own fast redactor and devconfig's were made one): redaction must keep
# them exactly, since blobs are content-addressed and reports quote line numbers.

_CASES = [
    (b"<a><SSHPASSWORD>x1</SSHPASSWORD></a>", b"<a><SSHPASSWORD>********</SSHPASSWORD></a>"),
    (b"<a><p:adminPassword>x</p:adminPassword></a>", b"<a><p:adminPassword>********</p:adminPassword></a>"),
    (b'<a><sshPassword a="1">x</sshPassword ></a>', b'<a><sshPassword a="1">********</sshPassword ></a>'),
    (b"<a><sshPassword><![CDATA[p<w]]></sshPassword></a>", b"<a><sshPassword>********</sshPassword></a>"),
    (b"<a><sshPassword/><b>k</b></a>", b"<a><sshPassword/><b>k</b></a>"),
    (b"<a><sshPassword>  </sshPassword></a>", b"<a><sshPassword>  </sshPassword></a>"),
    (b'<line authPassword="pw" name="n"/>', b'<line authPassword="********" name="n"/>'),
    (b"<line password='pw'>", b"<line password='********'>"),
    (
        b"<a><ccmSecret>s</ccmSecret><authString>123</authString></a>",
        b"<a><ccmSecret>********</ccmSecret><authString>********</authString></a>",
    ),
    (b"<a><sshPassword>hunter2", b"<a><sshPassword>********"),
    (b"<a><sshPassword>hunter2<b>k</b>", b"<a><sshPassword>********<b>k</b>"),
    (b'<a adminPassword="pw', b'<a adminPassword="********'),
    (b"<!-- <sshPassword>old</sshPassword> --><a/>", b"<!-- <sshPassword>********</sshPassword> --><a/>"),
    (b"<a x='1'><b>text</b><c", b"<a x='1'><b>text</b><c"),
    (
        b"<a><psk>k</psk><wpaPsk>k2</wpaPsk><pskMode>1</pskMode><b>bypass</b></a>",
        b"<a><psk>********</psk><wpaPsk>********</wpaPsk><pskMode>1</pskMode><b>bypass</b></a>",
    ),
    (
        b"<a><sshPassword>x</sshPassword ><sshPassword>y</sshPassword></a>",
        b"<a><sshPassword>********</sshPassword ><sshPassword>********</sshPassword></a>",
    ),
    (b"<a><sshPassword>x</sshpassword></a>", b"<a><sshPassword>********</sshpassword></a>"),
    (b"<a><sshPassword>x<sshPassword>y</sshPassword></a>", b"<a><sshPassword>********</sshPassword></a>"),
    (b"<a>password</a>", b"<a>password</a>"),
    (b"password<a/>", b"password<a/>"),
    (b"", b""),
    (
        "<?xml version='1.0' encoding='UTF-16'?><a><sshPassword>w</sshPassword></a>".encode("utf-16"),
        "<?xml version='1.0' encoding='UTF-16'?><a><sshPassword>********</sshPassword></a>".encode("utf-16"),
    ),
]


@pytest.mark.parametrize(("xml", "stored"), _CASES)
def test_redaction_stores_what_it_always_stored(xml: bytes, stored: bytes) -> None:
    assert redact_config_xml(xml) == stored
    s = prepare_for_storage("SEP001122334455.cnf.xml", xml)
    assert (s.data, s.redacted, s.signed_digest) == (stored, stored != xml, None)


# SHA-256 of what is stored for each file of tests/data/configs (as stored before the change above).
_FIXTURE_STORED = {
    "SEP00562B0431AA.cnf.xml": "425ca8b444bb748a5fe851874daa51d05ac171655a816b0de11a3cc6cea46544",
}


def test_fixture_configs_are_stored_as_they_always_were() -> None:
    folder = Path(__file__).parent / "data" / "configs"
    assert sorted(p.name for p in folder.iterdir()) == sorted(_FIXTURE_STORED)
    for name, digest in _FIXTURE_STORED.items():
        stored = prepare_for_storage(name, (folder / name).read_bytes())
        assert stored.redacted and hashlib.sha256(stored.data).hexdigest() == digest, name


def test_the_lab_configs_lose_their_secret_value_and_nothing_else() -> None:
    """Every config of a built lab: the stored bytes are the served bytes with the one value the
    lab writes a secret into (``<sshPassword>``) replaced; a signed one keeps its header and
    records the digest its signature covers."""
    lab = built_lab("mixed")
    ssh = re.compile(rb"<sshPassword>([^<]+)</sshPassword>")
    configs = sorted((lab / "tftp").glob("*/SEP*.cnf.xml*"))
    assert len(configs) > 50
    for path in configs:
        served = path.read_bytes()
        secrets = ssh.findall(served)
        assert len(secrets) == 1, path
        expected = served.replace(b"<sshPassword>%s</sshPassword>" % secrets[0], b"<sshPassword>********</sshPassword>")
        stored = prepare_for_storage(path.name, served)
        assert stored.data == expected and stored.redacted, path
        assert secrets[0] not in stored.data
        if path.name.endswith(".sgn"):
            tf = parse(served)
            assert stored.data[: tf.header.length] == served[: tf.header.length]
            alg, digest = (stored.signed_digest or ":").split(":")
            assert hashlib.new(alg, tf.signed_message).hexdigest() == digest, path
        else:
            assert stored.signed_digest is None


def test_the_real_world_vectors_are_stored_as_received() -> None:
    """Trust lists and phone pages carry no secret: stored byte for byte, never redacted."""
    vectors = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
    files = sorted(p for p in vectors.rglob("*") if p.is_file() and p.suffix in (".tlv", ".html"))
    if not files:
        pytest.skip(f"real-world vectors not found at {vectors} (the shared/ folder sits beside the repo)")
    for path in files:
        data = path.read_bytes()
        assert prepare_for_storage(path.name, data) == Stored(data, False, None), path


_GENERATED_PIECES = [
    b"<a>", b"</a>", b"<b x='1'>", b"<sshPassword>", b"</sshPassword>", b"<sshPassword/>",
    b"<adminPassword>", b"</adminPassword>", b"<psk>", b"</psk>", b"<pskMode>", b"</pskMode>",
    b"hunter2", b"  ", b"<![CDATA[", b"]]>", b"<!--", b"-->", b'<c password="p">', b"<", b">",
    b"secret", b"<ccmSecret >", b"</ccmSecret>", b"\n", b"<p:authString>", b"</p:authString>",
]  # fmt: skip
# SHA-256 over (length, bytes) of what was stored for each of the 3,000 documents below.
_GENERATED_STORED = "a2a789d670a5c87bb269e4eb5f3be2645367e108a96ca40f7ee9ce9a4aef9a7c"


def test_generated_documents_are_stored_as_they_always_were() -> None:
    """Broken, nested, unclosed and commented secrets in every order (a fixed pseudo-random set)."""
    rng = random.Random(10)
    h = hashlib.sha256()
    for _ in range(3000):
        doc = b"".join(rng.choice(_GENERATED_PIECES) for _ in range(rng.randint(0, 25)))
        out = redact_config_xml(doc)
        h.update(len(out).to_bytes(4, "big") + out)
    assert h.hexdigest() == _GENERATED_STORED


# Pieces that hold the secret only as a secret's value, and pieces of noise around them.
_CARRIERS = [
    b"<sshPassword>hunter2</sshPassword>",
    b"<p:authString>hunter2</p:authString >",
    b'<c password="hunter2">',
    b"<line x='1' wpaPsk='hunter2'/>",
    b"<ccmSecret><![CDATA[hunter2]]></ccmSecret>",
]
_NOISE = [
    b"<a>", b"</a>", b"<b x='1'>", b"<sshPassword>", b"</sshPassword>", b"<sshPassword/>", b"  ",
    b"<![CDATA[", b"]]>", b"<!--", b"-->", b"<", b">", b"'", b'"', b"secret", b"\n", b"<pskMode>",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_CARRIERS + _NOISE), max_size=25))
def test_no_secret_value_survives_whatever_surrounds_it(pieces: list[bytes]) -> None:
    xml = b"".join(pieces)
    stored = prepare_for_storage("SEP001122334455.cnf.xml", xml)
    assert b"hunter2" not in stored.data
    assert stored.redacted or not any(p in _CARRIERS for p in pieces)  # noise alone may be, too


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


def test_lines_read_back_share_their_recurring_strings() -> None:
    # The analysis holds every attempt of the fleet: names that recur on every line are one object,
    # and an unredacted blob's name is the file's SHA-256 object (equal values, less memory).
    sha = hashlib.sha256(b"x").hexdigest()
    lines = [
        Attempt(phone="SEP001122334455", cluster="source", node=node, transport="http",
                file="SEP001122334455.cnf.xml.sgn", outcome=Outcome.OK, size=1, sha256=sha, duration=0.1,
                blob=sha).to_json()
        for node in ("pub", "sub1")
    ]
    a, b = (Attempt.from_json(line) for line in lines)
    assert a.phone is b.phone and a.file is b.file and a.cluster is b.cluster
    assert a.blob == a.sha256 == sha and a.blob is a.sha256
    assert Attempt.from_json(a.to_json()) == a
