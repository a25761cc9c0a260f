"""Real software against the lab: curl's tftp:// client; the CLI serve process and its signals;
other cluster shapes (EC records, SHA-512 signing, non-secure clusters)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.core.trustlist import Digest, Role, parse
from scanner.core.verify import verify
from scanner.lab.scenario import BUILTIN, ClusterShape
from scanner.lab.testing import built_lab, serving


def _curl_has_tftp() -> bool:
    curl = shutil.which("curl")
    if curl is None:
        return False
    out = subprocess.run([curl, "--version"], capture_output=True, text=True, check=False).stdout
    return " tftp" in out.lower()


@pytest.mark.skipif(
    not _curl_has_tftp(), reason="curl with tftp:// support not installed (.ci/run installs it)"
)
@pytest.mark.parametrize("blksize", [None, 1428])
def test_curl_tftp_fetches_byte_for_byte(tmp_path: Path, blksize: int | None) -> None:
    d = built_lab("healthy")
    lab = json.loads((d / "lab.json").read_text())
    node = lab["clusters"]["destination"]["tftp"][1]
    mac = lab["phones"][2]["mac"]

    async def go() -> None:
        async with serving(d):
            for name, disk in (("ITLFile.tlv", "ITLFile.tlv"), (f"CTLSEP{mac}.tlv", "CTLFile.tlv")):
                out = tmp_path / name
                cmd = ["curl", "-sS", "--max-time", "10", "-o", str(out)]
                if blksize:
                    cmd += ["--tftp-blksize", str(blksize)]
                cmd.append(f"tftp://{node['address']}:{node['tftp_port']}/{name}")
                proc = await asyncio.create_subprocess_exec(*cmd, stderr=asyncio.subprocess.PIPE)
                _, err = await proc.communicate()
                assert proc.returncode == 0, err
                assert out.read_bytes() == (d / node["dir"] / disk).read_bytes()

    asyncio.run(go())


@pytest.mark.skipif(
    shutil.which("tftp") is None, reason="tftp-hpa client not installed (.ci/run installs it)"
)
def test_tftp_hpa_client_with_blksize(tmp_path: Path) -> None:
    d = built_lab("healthy")
    lab = json.loads((d / "lab.json").read_text())
    node = lab["clusters"]["source"]["tftp"][0]

    async def go() -> None:
        async with serving(d):
            out = tmp_path / "ITLFile.tlv"
            proc = await asyncio.create_subprocess_exec(
                "tftp",
                "-m",
                "binary",
                node["address"],
                str(node["tftp_port"]),
                "-c",
                "get",
                "ITLFile.tlv",
                str(out),
                stderr=asyncio.subprocess.PIPE,
            )
            await proc.communicate()
            assert out.read_bytes() == (d / node["dir"] / "ITLFile.tlv").read_bytes()

    asyncio.run(go())


def test_cli_serve_prints_ready_and_stops_on_sigterm() -> None:
    d = built_lab("healthy", phones=5)
    proc = subprocess.Popen(
        [sys.executable, "-m", "scanner", "lab", "serve", str(d)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("ready"):
                break
        assert any(line.startswith("TFTP  src-pub") for line in lines)
        assert any(line.startswith("TVS   src-sub2") for line in lines)
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert rest.strip().endswith("stopped")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_other_shapes_ec_sha512_non_secure() -> None:
    sc = dataclasses.replace(
        BUILTIN["healthy"],
        name="shapes",
        source=ClusterShape("mixed", "11.5", "rsa2048", ec=True, digest="sha512", import_method="manual"),
        destination=ClusterShape("non-secure", "14.0", "rsa2048", import_method="manual"),
    )
    d = built_lab(sc, phones=4)
    itl = parse((d / "tftp/src-sub1/ITLFile.tlv").read_bytes())
    assert itl.header.digest == Digest.SHA512 and verify(itl).valid
    assert any(r.role == Role.CCM_TFTP and (r.dns_name or "").endswith("-EC") for r in itl.records)
    ctl = parse((d / "tftp/src-pub/CTLFile.tlv").read_bytes())
    assert verify(ctl).valid and sum(1 for r in ctl.records if (r.dns_name or "").endswith("-EC")) == 2
    assert not (d / "tftp/dst-pub/CTLFile.tlv").exists()
    assert verify(parse((d / "tftp/dst-pub/ITLFile.tlv").read_bytes())).valid
    # Manual import: ITLRecovery in Phone-SAST-trust only.
    assert len(list((d / "trust/source/CallManager-trust").glob("*.pem"))) == 2
    assert len(list((d / "trust/source/Phone-SAST-trust").glob("*.pem"))) == 3
    ak = json.loads((d / "answer-key.json").read_text())
    # Mixed source, non-secure destination: phones keep the source CTL.
    assert {(v["readiness"], tuple(v["codes"])) for v in ak["devices"].values()} == {
        ("NOT_READY", ("SRC_CTL_WITHOUT_DEST_CTL",))
    }
