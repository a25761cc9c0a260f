"""lab serve on loopback: TFTP and HTTP byte-exact, phone pages, TVS TLS, faults, clean stop."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from scanner.lab.errors import LabError
from scanner.lab.serve import LabServer
from scanner.lab.testing import built_lab, serving
from scanner.net.tftp_io import tftp_fetch
from scanner.tftp.client import Outcome
from scanner.trustlist import parse


def _lab(d: Path) -> dict[str, Any]:
    return json.loads((d / "lab.json").read_text())


def _node(lab: dict[str, Any], name: str) -> dict[str, Any]:
    for cluster in lab["clusters"].values():
        for n in cluster["tftp"] + cluster["tvs"]:
            if n["name"] == name and ("tftp_port" in n or "cert" in n):
                return n
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
    phonepage = pytest.importorskip("scanner.phonepage")
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
    from scanner.trustlist import Role, parse

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
