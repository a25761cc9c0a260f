"""Interop with real TFTP software: Debian's tftp-hpa server and client.

* Our client (``scanner.net.tftp_io.tftp_fetch``) against Debian's tftpd-hpa (``in.tftpd``) serving
  a lab's files, byte for byte, with and without options (blksize, tsize, windowsize up to 64:
  tftpd-hpa refuses more; 5.2 does not implement RFC 7440 at all and leaves it out of its OACK,
  which the client must take as a window of 1).
* The lab's files served by tftpd-hpa are identical to what the lab's own TFTP server serves.
* Debian's tftp-hpa client (``tftp``) against the lab's server, verbose, plus the files the curl
  and tftp-hpa tests of ``tests/test_lab_interop.py`` do not cover (per-phone aliases, a signed
  config, a file that ends on a block boundary).

``in.tftpd`` runs in the foreground (``-L``) on a 127.x address and a free high port, chrooted
(``-s``) into a temporary directory holding the materialised files (the lab resolves per-phone
``CTLSEP``/``ITLSEP`` names at serve time, so they are written out here), and is killed on every
path. ``.ci/install-interop.sh`` installs the binaries; without them the tests skip, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.core.evidence import Outcome
from scanner.lab.serve import NodeFiles
from scanner.lab.testing import built_lab, serving
from scanner.net.tftp_io import tftp_fetch

TFTPD = shutil.which("in.tftpd") or ("/usr/sbin/in.tftpd" if os.path.exists("/usr/sbin/in.tftpd") else None)
TFTP_HPA = shutil.which("tftp")
ADDRESS = "127.77.203.1"  # apart from the lab's 127.77.x.0/24 service networks

needs_tftpd = pytest.mark.skipif(
    TFTPD is None, reason="tftpd-hpa (in.tftpd) not installed: run .ci/install-interop.sh"
)
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="in.tftpd --secure needs root to chroot into the served directory"
)
needs_tftp_hpa = pytest.mark.skipif(
    TFTP_HPA is None, reason="tftp-hpa client (tftp) not installed: run .ci/install-interop.sh"
)


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _lab_files() -> tuple[Path, dict[str, bytes]]:
    """A healthy lab and the files its node ``src-pub`` serves, by name, as the lab resolves them."""
    d = built_lab("healthy")
    lab = json.loads((d / "lab.json").read_text())
    node = lab["clusters"]["source"]["tftp"][0]
    files = NodeFiles(d / node["dir"])
    mac = lab["phones"][3]["mac"]
    names = [
        "CTLFile.tlv",
        "ITLFile.tlv",
        f"CTLSEP{mac}.tlv",
        f"ITLSEP{mac}.tlv",
        f"SEP{mac}.cnf.xml.sgn",
        f"SEP{mac}.cnf.xml",
        "XMLDefault.cnf.xml",
        "ConfigFileCacheList.txt",
    ]
    out: dict[str, bytes] = {}
    for name in names:
        data = files.lookup(name)
        assert data is not None, name
        out[name] = data
    return d, out


@contextlib.contextmanager
def tftpd(directory: Path, files: dict[str, bytes]) -> Iterator[tuple[str, int]]:
    """``in.tftpd`` serving ``files`` from ``directory`` on ADDRESS:<free port>, until the block ends."""
    assert TFTPD is not None
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
        (directory / name).chmod(0o644)
    directory.chmod(0o755)  # in.tftpd drops to user tftp after chroot: it must read and search
    port = _free_udp_port(ADDRESS)
    proc = subprocess.Popen(
        [TFTPD, "-L", "-v", "--address", f"{ADDRESS}:{port}", "-s", str(directory)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(proc, port, next(iter(files)))
        yield ADDRESS, port
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def _wait_ready(proc: subprocess.Popen[bytes], port: int, probe: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise RuntimeError(f"in.tftpd exited with {proc.returncode}: {proc.stderr.read().decode()}")
        r = asyncio.run(tftp_fetch(ADDRESS, port, probe, timeout=0.2, retries=0))
        if r.ok:
            return
    raise RuntimeError("in.tftpd did not answer within 10 s")


def _fetch(host: str, port: int, name: str, **kw: object) -> object:
    return asyncio.run(tftp_fetch(host, port, name, timeout=0.5, retries=4, **kw))  # type: ignore[arg-type]


# Option sets: (blksize, windowsize, tsize). None = not requested (RFC 1350 defaults).
OPTION_SETS = [
    pytest.param(None, None, False, id="no-options"),
    pytest.param(None, None, True, id="tsize-only"),
    pytest.param(1428, None, True, id="blksize1428-tsize"),
    pytest.param(8192, None, False, id="blksize8192"),
    pytest.param(1428, 8, True, id="blksize1428-window8-tsize"),
    pytest.param(512, 64, True, id="window64"),
    pytest.param(65464, 16, True, id="blksize-max"),
]


@needs_tftpd
@needs_root
@pytest.mark.parametrize(("blksize", "windowsize", "tsize"), OPTION_SETS)
def test_our_client_against_tftpd_hpa_byte_for_byte(
    tmp_path: Path, blksize: int | None, windowsize: int | None, tsize: bool
) -> None:
    _, files = _lab_files()
    extra = {
        "big.bin": os.urandom(300_000),  # many blocks and windows
        "edge512.bin": os.urandom(512 * 3),  # ends on a block boundary: a 0-byte last block
        "edge1428.bin": os.urandom(1428 * 2),
        "empty.bin": b"",
    }
    served = {**files, **extra}
    with tftpd(tmp_path / "root", served) as (host, port):
        for name, data in served.items():
            r = _fetch(host, port, name, blksize=blksize, windowsize=windowsize, tsize=tsize)
            assert r.ok, (name, r.outcome, r.message)  # type: ignore[attr-defined]
            assert r.data == data, name  # type: ignore[attr-defined]
            opts = r.options  # type: ignore[attr-defined]
            if blksize not in (None, 512) or tsize:
                assert opts.oack, "tftpd-hpa answers options with an OACK"
                assert opts.blksize == (blksize or 512)
                if tsize:
                    assert opts.tsize == len(data)
            # windowsize: honoured (RFC 7440) or left out of the OACK (tftpd-hpa 5.2): either way
            # never above what was asked, and the file is intact.
            assert opts.windowsize <= (windowsize or 1)
        missing = _fetch(host, port, "SEP000000000000.cnf.xml.sgn", blksize=blksize, tsize=tsize)
        assert missing.outcome is Outcome.NOT_FOUND  # type: ignore[attr-defined]


@needs_tftpd
@needs_root
def test_lab_files_served_by_tftpd_hpa_equal_the_labs_own_server(tmp_path: Path) -> None:
    d, files = _lab_files()
    lab = json.loads((d / "lab.json").read_text())
    node = lab["clusters"]["source"]["tftp"][0]

    with tftpd(tmp_path / "root", files) as (host, port):
        from_tftpd = {n: _fetch(host, port, n, blksize=1428, windowsize=8) for n in files}

    async def from_lab() -> dict[str, object]:
        async with serving(d):
            return {
                n: await tftp_fetch(node["address"], node["tftp_port"], n, timeout=0.5, retries=4)
                for n in files
            }

    lab_results = asyncio.run(from_lab())
    for name, data in files.items():
        a, b = from_tftpd[name], lab_results[name]
        assert a.ok and b.ok, name  # type: ignore[attr-defined]
        assert a.data == b.data == data, name  # type: ignore[attr-defined]


async def _tftp_hpa_get(host: str, port: int, name: str, out: Path) -> tuple[int, bytes]:
    assert TFTP_HPA is not None
    proc = await asyncio.create_subprocess_exec(
        TFTP_HPA,
        "-v",
        "-m",
        "binary",
        host,
        str(port),
        "-c",
        "get",
        name,
        str(out),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, output


@needs_tftp_hpa
def test_tftp_hpa_client_fetches_from_the_lab_byte_for_byte(tmp_path: Path) -> None:
    # tests/test_lab_interop.py fetches ITLFile.tlv with this client (and curl, with and without
    # --tftp-blksize); here: per-phone aliases, the signed config, verbose mode. The tftp-hpa 5.2
    # client has no blksize option (it sends a plain RFC 1350 request): 512-byte blocks.
    d, files = _lab_files()
    lab = json.loads((d / "lab.json").read_text())
    node = lab["clusters"]["source"]["tftp"][0]

    async def go() -> None:
        async with serving(d):
            for name, data in files.items():
                out = tmp_path / name
                rc, output = await _tftp_hpa_get(node["address"], node["tftp_port"], name, out)
                assert rc == 0, output
                assert out.read_bytes() == data, (name, output)
                assert b"Received" in output, output  # -v: "Received N bytes in S seconds"

    asyncio.run(go())


@needs_tftpd
@needs_root
@needs_tftp_hpa
def test_tftp_hpa_client_against_tftpd_hpa(tmp_path: Path) -> None:
    """The reference pair agrees on the materialised files: what the other tests compare with."""
    _, files = _lab_files()
    with tftpd(tmp_path / "root", files) as (host, port):
        for name, data in files.items():
            out = tmp_path / f"got-{name}"
            rc, output = asyncio.run(_tftp_hpa_get(host, port, name, out))
            assert rc == 0, output
            assert out.read_bytes() == data, name
