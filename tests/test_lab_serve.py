"""lab serve on loopback: TFTP and HTTP byte-exact, phone pages, TVS TLS, faults, clean stop."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from scanner.core.tftp.client import Outcome
from scanner.core.trustlist import parse
from scanner.lab.errors import LabError
from scanner.lab.serve import LabServer
from scanner.lab.testing import built_lab, serving
from scanner.net.tftp_io import tftp_fetch


def _lab(d: Path) -> dict[str, Any]:
    lab: dict[str, Any] = json.loads((d / "lab.json").read_text())
    return lab


def _node(lab: dict[str, Any], name: str) -> dict[str, Any]:
    for cluster in lab["clusters"].values():
        for n in cluster["tftp"] + cluster["tvs"]:
            if n["name"] == name and ("tftp_port" in n or "cert" in n):
                found: dict[str, Any] = n
                return found
    raise KeyError(name)


def _tftp_node(lab: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for c in lab["clusters"].values() for n in c["tftp"] if n["name"] == name)


def _tvs_node(lab: dict[str, Any], cluster: str, name: str) -> dict[str, Any]:
    return next(n for n in lab["clusters"][cluster]["tvs"] if n["name"] == name)


async def _http(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.read()


def test_tftp_and_http_byte_exact() -> None:
    d = built_lab("healthy")
    lab = _lab(d)
    node = _tftp_node(lab, "src-sub1")
    phone = lab["phones"][0]

    async def go() -> None:
        async with serving(d):
            for name, disk in (
                ("ITLFile.tlv", "ITLFile.tlv"),
                (f"ITLSEP{phone['mac']}.tlv", "ITLFile.tlv"),  # per-phone alias, resolved at serve time
                (f"CTLSEP{phone['mac']}.tlv", "CTLFile.tlv"),
                (f"{phone['name']}.cnf.xml.sgn", f"{phone['name']}.cnf.xml.sgn"),
                (f"{phone['name']}.cnf.xml", None),
                ("ConfigFileCacheList.txt", "ConfigFileCacheList.txt"),
            ):
                if disk is None:  # the unsigned config: the .sgn's payload
                    sgn = parse((d / "tftp/src-sub1" / f"{name}.sgn").read_bytes())
                    want = sgn.payload
                else:
                    want = (d / "tftp/src-sub1" / disk).read_bytes()
                res = await tftp_fetch(node["address"], node["tftp_port"], name, blksize=1428, timeout=0.5)
                assert res.outcome is Outcome.OK, res
                assert res.data == want
                status, body = await _http(f"http://{node['address']}:{node['http_port']}/{name}")
                assert (status, body) == (200, want)
            res = await tftp_fetch(node["address"], node["tftp_port"], "nope.xml", timeout=0.5)
            assert res.outcome is Outcome.NOT_FOUND
            status, _ = await _http(f"http://{node['address']}:{node['http_port']}/nope.xml")
            assert status == 404

    asyncio.run(go())


def test_phone_pages_show_installed_itl() -> None:
    phonepage = pytest.importorskip("scanner.core.phonepage")
    d = built_lab("healthy")
    lab = _lab(d)
    web = lab["web_port"]
    phone = next(p for p in lab["phones"] if p["tftp"][0].endswith(".0.2"))  # a phone of src-sub1
    itl_sha1 = hashlib.sha1((d / "tftp/src-sub1/ITLFile.tlv").read_bytes()).hexdigest()
    ctl_sha1 = hashlib.sha1((d / "tftp/src-sub1/CTLFile.tlv").read_bytes()).hexdigest()

    async def go() -> None:
        async with serving(d):
            base = f"http://{phone['ip']}:{web}"
            for path in (
                "/NetworkConfiguration",
                "/CGI/Java/Serviceability?adapter=device.statistics.configuration",
            ):
                status, body = await _http(base + path)
                assert status == 200
                page = phonepage.parse_network_page(body)
                assert page.device_name == phone["name"]
                assert page.model == phone["model"]
                assert page.itl_signature == itl_sha1
                assert page.ctl_signature == ctl_sha1
                assert len(page.tvs) == 3
                assert page.tftp_servers[0] == phone["tftp"][0]
            status, body = await _http(
                base + "/CGI/Java/Serviceability?adapter=device.settings.status.messages"
            )
            assert status == 200
            messages = phonepage.parse_status_messages(body)
            assert messages.trust_update_failed is False

    asyncio.run(go())


def test_mixed_faults_on_the_wire() -> None:
    d = built_lab("mixed", phones=60)
    lab = _lab(d)
    web = lab["web_port"]
    off = next(p for p in lab["phones"] if p["web"] == "off")
    failed = next(p for p in lab["phones"] if p["status"] == "failed")
    sub1 = _tftp_node(lab, "src-sub1")  # node-error on TFTP only
    dpub = _tftp_node(lab, "dst-pub")  # node-truncate on TFTP only

    async def go() -> None:
        async with serving(d):
            with pytest.raises(aiohttp.ClientConnectionError):
                await _http(f"http://{off['ip']}:{web}/NetworkConfiguration")
            _, body = await _http(
                f"http://{failed['ip']}:{web}/CGI/Java/Serviceability?adapter=device.settings.status.messages"
            )
            assert b"Trust List Update Failed" in body
            res = await tftp_fetch(sub1["address"], sub1["tftp_port"], "ITLFile.tlv", timeout=0.3, retries=1)
            assert res.outcome is not Outcome.OK
            status, body = await _http(f"http://{sub1['address']}:{sub1['http_port']}/ITLFile.tlv")
            assert status == 200 and body == (d / "tftp/src-sub1/ITLFile.tlv").read_bytes()
            res = await tftp_fetch(dpub["address"], dpub["tftp_port"], "ITLFile.tlv", timeout=0.3, retries=1)
            assert res.outcome is not Outcome.OK
            stalled = next(p for p in lab["phones"] if p["web"] == "stall")
            timeout = aiohttp.ClientTimeout(total=0.5)
            async with aiohttp.ClientSession(timeout=timeout) as s:
                with pytest.raises(TimeoutError):
                    async with s.get(f"http://{stalled['ip']}:{web}/NetworkConfiguration") as r:
                        await r.read()
            tvs = _tvs_node(lab, "source", "src-sub2")  # down
            with pytest.raises(OSError):
                await asyncio.open_connection(tvs["address"], tvs["port"])

    asyncio.run(go())


def _client_ctx(d: Path, *, cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=1")  # like a phone: offer the old AES256-SHA too
    if cert:
        ctx.load_cert_chain(d / "pki/phone.pem", d / "pki/phone.key")
    return ctx


async def _tvs_cert(address: str, port: int, ctx: ssl.SSLContext) -> tuple[bytes, str, str]:
    _reader, writer = await asyncio.open_connection(address, port, ssl=ctx)
    try:
        sslobj = writer.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True)
        return der, sslobj.version(), sslobj.cipher()[0]
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("tls13", [False, True])
def test_tvs_presents_its_cert(tls13: bool) -> None:
    from scanner.core.trustlist import Role, parse

    d = built_lab("mixed", phones=60)
    lab = _lab(d)
    itl = parse((d / "tftp/src-pub/ITLFile.tlv").read_bytes())
    tvs_in_itl = {r.certificate for r in itl.records if r.role == Role.TVS}

    async def go() -> None:
        async with serving(d, tls13=tls13):
            good = _tvs_node(lab, "source", "src-pub")
            der, version, cipher = await _tvs_cert(good["address"], good["port"], _client_ctx(d))
            expected = x509.load_pem_x509_certificate((d / good["cert"]).read_bytes())
            assert der == expected.public_bytes(Encoding.DER)
            assert der in tvs_in_itl
            if tls13:
                assert version == "TLSv1.3"
            else:
                assert (version, cipher) == ("TLSv1.2", "AES256-SHA")
            bad = _tvs_node(lab, "source", "src-sub1")  # tvs-cert-not-in-itl
            der, _, _ = await _tvs_cert(bad["address"], bad["port"], _client_ctx(d))
            assert der not in tvs_in_itl

    asyncio.run(go())


def test_port_in_use_names_it_and_leaves_nothing_open() -> None:
    d = built_lab("healthy")
    lab = _lab(d)
    node = _tftp_node(lab, "dst-sub1")
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind((node["address"], node["http_port"]))
    blocker.listen()

    async def go() -> None:
        server = LabServer(d)
        with pytest.raises(LabError, match=rf"{node['address']}:{node['http_port']}/tcp is already in use"):
            await server.start()
        # Everything opened before the failure was closed: the same services bind again.
        blocker.close()
        async with serving(d):
            pass

    try:
        asyncio.run(go())
    finally:
        blocker.close()


@pytest.mark.parametrize("what", ["missing", "partial", "no-lab-json", "bad-address"])
def test_bad_lab_directory(tmp_path: Path, what: str) -> None:
    d = tmp_path / "lab"
    if what == "partial":
        d.mkdir()
        (d / ".lab-partial").write_text("x")
    elif what == "no-lab-json":
        d.mkdir()
    elif what == "bad-address":
        src = built_lab("healthy")
        import shutil

        shutil.copytree(src, d)
        lab = _lab(d)
        lab["phones"][3]["ip"] = "10.0.0.5"
        (d / "lab.json").write_text(json.dumps(lab))
    with pytest.raises(LabError) as exc:
        LabServer(d)
    message = str(exc.value)
    if what == "bad-address":
        assert "phones[3].ip" in message and "10.0.0.5" in message and "127.0.0.0/8" in message
    elif what == "partial":
        assert "half-built" in message
    else:
        assert str(d) in message


# -- I/O errors are never "not found" ------------------------------------------------------------


def test_read_error_is_500_and_tftp_error_0_then_served(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first read of each file fails with EMFILE (as at 20,000 phones in one process): HTTP
    answers 500 and TFTP ERROR 0, each naming the reason; nothing is cached, so the next request
    for the same file gets it (the failure used to become a cached 404)."""
    from scanner.lab import serve

    d = built_lab("healthy")
    lab = _lab(d)
    node = _tftp_node(lab, "dst-pub")
    phones = lab["phones"]
    failed: set[str] = set()
    original = serve.NodeFiles._read_file

    def flaky(self: serve.NodeFiles, name: str) -> bytes | None:
        if name not in failed:
            failed.add(name)
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), name)
        return original(self, name)

    monkeypatch.setattr(serve.NodeFiles, "_read_file", flaky)
    http_name, tftp_name = (f"{p['name']}.cnf.xml.sgn" for p in phones[:2])

    async def go() -> None:
        async with serving(d):
            url = f"http://{node['address']}:{node['http_port']}/{http_name}"
            status, body = await _http(url)
            assert status == 500 and os.strerror(errno.EMFILE).encode() in body
            status, body = await _http(url)
            assert (status, body) == (200, (d / "tftp/dst-pub" / http_name).read_bytes())
            res = await tftp_fetch(node["address"], node["tftp_port"], tftp_name, timeout=0.5, retries=1)
            assert res.outcome is not Outcome.NOT_FOUND and res.error_code == 0
            assert os.strerror(errno.EMFILE) in res.message
            res = await tftp_fetch(node["address"], node["tftp_port"], tftp_name, timeout=0.5)
            assert res.outcome is Outcome.OK and res.data == (d / "tftp/dst-pub" / tftp_name).read_bytes()

    asyncio.run(go())


# -- phones spread over processes ----------------------------------------------------------------

MP_BASE = 41  # its own addresses: these tests start worker processes beside other tests' labs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


async def _every_phone_answers(lab: dict[str, Any]) -> int:
    web = lab["web_port"]
    ok = 0
    async with aiohttp.ClientSession() as s:
        for phone in lab["phones"]:
            # XML-page models answer the XML twin only (scanner/lab/pages.py).
            page = "DeviceInformationX" if phone.get("pages") == "xml" else "CGI/Java/Serviceability?adapter=device.statistics.device"
            url = f"http://{phone['ip']}:{web}/{page}"
            if phone["web"] == "off":
                with pytest.raises(aiohttp.ClientConnectionError):
                    await s.get(url)
            elif phone["web"] == "on":
                async with s.get(url) as r:
                    assert r.status == 200 and phone["name"] in await r.text()
                    ok += 1
    return ok


def test_phones_span_three_processes_and_all_answer() -> None:
    d = built_lab("mixed", phones=60, base=MP_BASE)
    lab = _lab(d)
    listening = sum(1 for p in lab["phones"] if p["web"] != "off")

    async def go() -> list[int]:
        async with serving(d, phones_per_process=20) as server:
            assert server.processes == 3 and server.phones_listening == listening
            pids = [w.proc.pid for w in server._workers]
            assert all(_alive(p) for p in pids)
            assert await _every_phone_answers(lab) == sum(1 for p in lab["phones"] if p["web"] == "on")
            # The nodes are still served by this process.
            node = _tftp_node(lab, "src-pub")
            status, _ = await _http(f"http://{node['address']}:{node['http_port']}/ITLFile.tlv")
            assert status == 200
        return pids

    pids = asyncio.run(go())
    assert not any(_alive(p) for p in pids)


def test_worker_port_in_use_names_it_and_leaves_nothing_open() -> None:
    d = built_lab("mixed", phones=60, base=MP_BASE)
    lab = _lab(d)
    phone = [p for p in lab["phones"] if p["web"] == "on"][-1]  # in the last worker's share
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind((phone["ip"], lab["web_port"]))
    blocker.listen()

    async def go() -> None:
        server = LabServer(d, phones_per_process=20)
        with pytest.raises(LabError, match=rf"{phone['ip']}:{lab['web_port']}/tcp is already in use"):
            await server.start()
        assert not server._workers
        blocker.close()
        async with serving(d, phones_per_process=20) as again:
            assert again.processes == 3

    try:
        asyncio.run(go())
    finally:
        blocker.close()


def _serve_cli(d: Path, *extra: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "scanner", "lab", "serve", str(d), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("ready"):
            break
    return proc, lines


def _workers_of(pid: int) -> list[int]:
    return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_cli_serve_stops_every_process(how: str) -> None:
    """`lab serve` reports ready only once every worker listens; SIGTERM/SIGINT stop them all,
    and so does the main process's death (SIGKILL): each worker reads EOF on its stdin pipe."""
    d = built_lab("mixed", phones=60, base=MP_BASE)
    proc, lines = _serve_cli(d, "--phones-per-process", "20")
    try:
        assert lines and "in 3 processes" in lines[-1], "".join(lines)
        assert sum(1 for ln in lines if ln.startswith("WEB")) == 3
        workers = _workers_of(proc.pid)
        assert len(workers) == 2
        assert asyncio.run(_every_phone_answers(_lab(d))) > 0
        proc.send_signal(getattr(signal, how))
        assert proc.wait(10) == (-9 if how == "SIGKILL" else 0)
        assert _gone_within(workers, 5.0), "a worker outlived lab serve"
        rest = proc.stdout.read() if proc.stdout else ""
        if how != "SIGKILL":
            assert rest.strip().endswith("stopped"), rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_cli_serve_stops_when_its_parent_dies(tmp_path: Path) -> None:
    d = built_lab("mixed", phones=60, base=MP_BASE)
    pid_file = tmp_path / "pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT_SCRIPT, str(d), str(pid_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        serve_pid = int(pid_file.read_text())
        pids = [serve_pid, *_workers_of(serve_pid)]
        assert len(pids) == 3
        parent.kill()
        parent.wait()
        assert _gone_within(pids, 5.0), "lab serve outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


# A parent that starts lab serve, writes its pid once ready, then waits to be killed.
PARENT_SCRIPT = """
import subprocess, sys, time
lab, pid_file = sys.argv[1], sys.argv[2]
p = subprocess.Popen([sys.executable, "-m", "scanner", "lab", "serve", lab, "--phones-per-process", "20"],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
for line in p.stdout:
    if line.startswith("ready"):
        break
open(pid_file + ".tmp", "w").write(str(p.pid))
import os; os.rename(pid_file + ".tmp", pid_file)
time.sleep(120)
"""


# -- the plan: how many phones fit ---------------------------------------------------------------


def test_plan_fits_the_limit_per_process() -> None:
    from scanner.lab.serve import MAIN_RESERVE, WORKER_RESERVE, plan_shares

    web = ["on"] * 50_000 + ["off"] * 10
    shares = plan_shares(web, 20_000)
    assert shares[0] == (0, 20_000 - MAIN_RESERVE)
    per_worker = [sum(1 for w in web[a:b] if w != "off") for a, b in shares[1:]]
    assert all(n <= 20_000 - WORKER_RESERVE for n in per_worker)
    assert sum(b - a for a, b in shares) == len(web) and shares[-1][1] == len(web)
    assert plan_shares(["on"] * 10, 20_000) == [(0, 10)]  # a small lab stays in one process
    # A machine with 1,024 descriptors per process still serves a small lab (the fixed
    # reserves once left it none).
    assert plan_shares(["on"] * 300, 1024) == [(0, 300)]
    assert plan_shares(["off", "on", "on", "off", "on"], 20_000, phones_per_process=2) == [(0, 4), (4, 5)]


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        # A low limit keeps half for connections in every process: 1,050 phones in each of 16.
        ({"limit": 2100, "phones_per_process": None}, r"open-files limit of 2100 .* 16800 phones fit"),
        # 200,000 phones at 20,000 per process: the main process and 11 workers, each with its reserve.
        ({"limit": 20_000, "system_free": 100_000}, r"100000 file descriptors free .* about 74400 phones fit"),
        ({"limit": 20_000, "memory_free": 10**9}, r"953 MiB of memory available .* about 85000 phones fit"),
    ],
)
def test_plan_refuses_naming_how_many_fit(kw: dict[str, Any], words: str) -> None:
    from scanner.lab.serve import plan_shares

    with pytest.raises(LabError, match=words):
        plan_shares(["on"] * 200_000, **kw)


def test_cli_serve_stops_when_a_worker_dies() -> None:
    """A worker gone mid-serve takes its phones with it: lab serve says so and stops (exit 70)
    rather than go on serving a lab that answers wrong."""
    d = built_lab("mixed", phones=60, base=MP_BASE)
    proc, lines = _serve_cli(d, "--phones-per-process", "20")
    try:
        assert lines and lines[-1].startswith("ready"), "".join(lines)
        workers = _workers_of(proc.pid)
        os.kill(workers[0], signal.SIGKILL)
        assert proc.wait(10) == 70
        rest = proc.stdout.read() if proc.stdout else ""
        assert f"worker pid {workers[0]}" in rest and "exited with code -9 while serving" in rest, rest
        assert _gone_within(workers, 5.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
