"""`trustscan inspect` end to end: text, JSON, exit codes, trust stores."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from scanner import builder as B
from scanner import tlv
from scanner.cli import main
from tests.conftest import TRUST_LISTS
from tests.pki import NOW, signer

TS = int(NOW.timestamp())


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    code = main(["inspect", "--json", *args])
    out = capsys.readouterr().out
    return code, [orjson.loads(line) for line in out.splitlines()]


def test_json_on_real_vectors(capsys: pytest.CaptureFixture[str], trust_list_expected: dict[str, Any]) -> None:
    paths = [str(TRUST_LISTS / n) for n in sorted(trust_list_expected)]
    code, objs = run_json(capsys, *paths)
    assert code == 0
    for obj in objs:
        exp = trust_list_expected[Path(obj["path"]).name]
        assert obj["kind"] == ("ctl" if exp["filename"].startswith("CTL") else "itl")
        assert (obj["md5"], obj["sha1"], obj["sha256"]) == (exp["md5"], exp["sha1"], exp["sha256"])
        assert obj["version"] == "1.2" and obj["header_length"] == exp["header_length"]
        assert obj["digest"] == "sha1"
        assert obj["signer"]["name"] == exp["signer_name"] and obj["signer"]["serial"] == exp["signer_serial"]
        assert obj["signature"] == obj["signature"] | {
            "valid": True,
            "verified_by_serial": exp["signature_valid_with_serial"],
            "signer_has_sast_role": True,
        }
        assert [(r["role"], r["subject"], r["serial"]) for r in obj["records"]] == [
            (e["role"], e["subject"], e["serial"]) for e in exp["records"]
        ]
        assert all(r["not_after"] and r["role_name"] for r in obj["records"])
    ctl = next(o for o in objs if o["kind"] == "ctl")
    expired = [f for f in ctl["findings"] if f["code"] == "CERT_EXPIRED"]
    assert len(expired) == 6 and all(f["severity"] == "WARNING" for f in expired)


def test_malformed_and_missing_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "ITLFile.tlv"
    bad.write_bytes(b"\x01\x00\x02\x01\x02\x02\x00\x02\x00\x40" + b"\x00" * 10)
    code, objs = run_json(capsys, str(bad), str(tmp_path / "missing.tlv"))
    assert code == 2
    assert objs[0]["error"]["offset"] == 8 and "past the end" in objs[0]["error"]["reason"]
    assert objs[1]["error"] == {"offset": None, "reason": "No such file or directory"}


def test_unverifiable_gives_1_and_trust_store_fixes_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sig = signer("tftp2.example.com")
    sgn = tmp_path / "SEP001122334455.cnf.xml.sgn"
    sgn.write_bytes(B.build_signed_file(sig, b"<device/>", filename=sgn.name, timestamp=TS))
    code, objs = run_json(capsys, str(sgn))
    assert code == 1 and objs[0]["kind"] == "sgn" and not objs[0]["signature"]["valid"]
    store = tmp_path / "CallManager-trust"
    store.mkdir()
    (store / "tftp2.pem").write_bytes(sig.certificate.public_bytes(serialization.Encoding.PEM))
    code, objs = run_json(capsys, "--trust-store", str(store), str(sgn))
    assert code == 0
    assert objs[0]["signature"]["verified_by_store"] == "CallManager-trust"


def test_text_output(capsys: pytest.CaptureFixture[str], vector_bytes: Callable[[str], bytes]) -> None:
    vector_bytes("CTLFile-cucm-tokenless.tlv")  # skips with a reason when the vectors are absent
    assert main(["inspect", str(TRUST_LISTS / "CTLFile-cucm-tokenless.tlv")]) == 0
    out = capsys.readouterr().out
    assert "Signature    VALID" in out and "CCM+TFTP" in out and "CERT_EXPIRED" in out


def test_usage_errors_exit_64(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["inspect"])
    assert info.value.code == 64
    assert main([]) == 64
    assert main(["inspect", "--trust-store", str(tmp_path / "nope"), "x"]) == 64
    capsys.readouterr()


def test_version_names_the_kernel() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "scanner", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert f"TLV kernel: {tlv.KERNEL}" in out
