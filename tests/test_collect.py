"""Collection end to end against loopback servers: TFTP (scanner.net.tftp_io) and HTTP 6970
(aiohttp) per node, phone web servers, a TVS that demands a client certificate."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from scanner.app.collect import CollectionResult, Progress, collect, dry_run, tvs_addresses_in_config
from scanner.core.evidence import Attempt, Outcome
from scanner.core.inventory import Inventory, Phone
from scanner.core.profile import Profile, parse_profile
from scanner.core.ratelimit import Limits
from scanner.core.trustlist import Role
from scanner.lab import builder as B
from scanner.lab.tftp_server import TftpFaults, TftpServer
from scanner.store.evidence import EvidenceReader
from tests.fleet import TS, base_world
from tests.pki import make_cert, rsa_key

PHONES = [f"SEP0000000000{i:02X}" for i in range(6)]
# Real trust lists and signed configs: the collector stores a file as ok only if it is the file
# asked for (scanner.core.content_check), so placeholders would be refused.
_W = base_world()
ITL_SRC = _W.files[("source", "s1", "ITLFile.tlv")]  # the same bytes for every phone: stored once
CTL_SRC = _W.files[("source", "s1", "CTLFile.tlv")]
ITL_DST = _W.files[("destination", "d1", "ITLFile.tlv")]
ITL_DST_OTHER = _W.files[("destination", "d2", "ITLFile.tlv")]
CTL_DST = _W.files[("destination", "d1", "CTLFile.tlv")]


def config(name: str, tvs_port: int) -> bytes:
    return (
        f"<device><deviceName>{name}</deviceName><sshPassword>secret-{name}</sshPassword>"
        f'<TVS><members><member priority="0"><port>{tvs_port}</port><address>127.0.0.1</address>'
        f"</member></members></TVS></device>"
    ).encode()


def signed(name: str, xml: bytes, signer: B.Signer = _W.s_pub) -> bytes:
    """``xml`` as the node serves ``<name>.cnf.xml.sgn``."""
    return B.build_signed_file(signer, xml, filename=f"{name}.cnf.xml.sgn", timestamp=TS)


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def free_tcp_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


class Node:
    """One TFTP node: the same files over TFTP and HTTP (``http_files`` may differ)."""

    def __init__(
        self,
        files: dict[str, bytes],
        *,
        http_files: dict[str, bytes] | None = None,
        faults: TftpFaults | None = None,
    ) -> None:
        self.files = files
        self.http_files = files if http_files is None else http_files
        self.tftp = TftpServer(files.get, faults=faults)
        self.runner: web.AppRunner | None = None
        self.http_port = 0
        self.http_requests = 0

    async def start(self) -> None:
        await self.tftp.start("127.0.0.1", 0)

        async def handler(request: web.Request) -> web.Response:
            self.http_requests += 1
            data = self.http_files.get(request.match_info["name"])
            if data is None:
                return web.Response(status=404)
            return web.Response(body=data)

        app = web.Application()
        app.router.add_get("/{name}", handler)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        self.tftp.close()
        if self.runner is not None:
            await self.runner.cleanup()

    def toml(self, name: str, *, tftp_port: int | None = None, http_port: int | None = None) -> str:
        return (
            f'name = "{name}"\naddress = "127.0.0.1"\n'
            f"tftp_port = {tftp_port or self.tftp.port}\nhttp_port = {http_port or self.http_port}\n"
        )


@pytest.fixture(scope="module")
def tvs_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes]:
    d = tmp_path_factory.mktemp("tvs")
    key = rsa_key(2048, 1)
    cert = make_cert("TVS_src-pub", key)
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return d / "cert.pem", d / "key.pem", cert.public_bytes(serialization.Encoding.DER)


@contextlib.asynccontextmanager
async def tvs_server(files: tuple[Path, Path, bytes]) -> AsyncIterator[int]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files[0], files[1])
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(files[0])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    asyncio.get_running_loop().set_exception_handler(lambda _l, _c: None)
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def phone_web() -> tuple[web.AppRunner, int]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>ITL signature AA BB</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/CGI/Java/Serviceability", page)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]


def profile_text(
    src: list[str],
    dst: list[str],
    *,
    src_transport: str,
    dst_transport: str,
    web_port: int,
    tvs_port: int,
    limits: str = "",
) -> bytes:
    parts = ['[clusters.source]\nmode = "mixed"\n', f'transport = "{src_transport}"\n']
    parts += [f"[[clusters.source.tftp]]\n{n}" for n in src]
    parts.append(f'[[clusters.source.tvs]]\nname = "src-pub"\naddress = "127.0.0.1"\nport = {tvs_port}\n')
    parts += ['[clusters.destination]\nmode = "mixed"\n', f'transport = "{dst_transport}"\n']
    parts += [f"[[clusters.destination.tftp]]\n{n}" for n in dst]
    parts.append(f'[phones]\nweb_port = {web_port}\nweb_scheme = "http"\n')
    parts.append("[limits]\ntftp_timeout = 0.05\n" + (limits or "tftp_retries = 3\ndead_after = 3\n"))
    return "\n".join(parts).encode()


def run(coro_factory: Callable[[], Any]) -> None:
    asyncio.run(coro_factory())


@dataclass(frozen=True)
class Collected:
    """One collection of six phones over two source nodes (http-first) and one destination node
    (both transports), with phone web servers and a TVS; run once for the tests below."""

    result: CollectionResult
    events: list[Progress]
    ev: EvidenceReader
    rows: list[Attempt]
    by: dict[tuple[str | None, str | None, str | None, str, str], Attempt]
    src_a_http_requests: int
    profile: Profile
    tvs_certificate: bytes


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory, tvs_files: tuple[Path, Path, bytes]) -> Collected:
    tmp_path = tmp_path_factory.mktemp("collected")

    async def main() -> tuple[CollectionResult, list[Progress], Profile, int]:
        async with tvs_server(tvs_files) as tvs_port:
            src_files: dict[str, bytes] = {"CTLFile.tlv": CTL_SRC, "ITLFile.tlv": ITL_SRC}
            for i, name in enumerate(PHONES):
                if i != 1:  # phone 1 has no per-phone CTL: falls back to the cluster's CTLFile.tlv
                    src_files[f"CTL{name}.tlv"] = CTL_SRC
                src_files[f"ITL{name}.tlv"] = ITL_SRC
                if i != 3:
                    src_files[f"{name}.cnf.xml.sgn"] = signed(name, config(name, tvs_port))
                else:  # phone 3: only the unsigned config
                    src_files[f"{name}.cnf.xml"] = config(name, tvs_port)
            dst_files = {"CTLFile.tlv": CTL_DST, "ITLFile.tlv": ITL_DST}
            for i, name in enumerate(PHONES):
                if i != 2:  # phone 2 is not provisioned on the destination
                    dst_files[f"{name}.cnf.xml.sgn"] = signed(name, b"<device>dst</device>", _W.d_cm[0])
            dst_http = dict(dst_files, **{"ITLFile.tlv": ITL_DST_OTHER})
            src_a, src_b = Node(src_files), Node(src_files)
            dst = Node(dst_files, http_files=dst_http)
            runner, web_port = await phone_web()
            for n in (src_a, src_b, dst):
                await n.start()
            try:
                profile = parse_profile(
                    profile_text(
                        [src_a.toml("src-a"), src_b.toml("src-b")],
                        [dst.toml("dst-a")],
                        src_transport="http-first",
                        dst_transport="both",
                        web_port=web_port,
                        tvs_port=tvs_port,
                    ),
                    base_dir=tmp_path,
                )
                phones = tuple(Phone(n, ip="127.0.0.1" if i % 2 == 0 else None) for i, n in enumerate(PHONES))
                events: list[Progress] = []
                result = await collect(
                    profile, tmp_path / "ev", inventory=Inventory(phones, ()), observer=events.append
                )
            finally:
                for n in (src_a, src_b, dst):
                    await n.stop()
                await runner.cleanup()
        return result, events, profile, src_a.http_requests

    result, events, profile, src_a_requests = asyncio.run(main())
    ev = EvidenceReader(tmp_path / "ev")
    rows = list(ev.attempts())
    by = {(r.phone, r.cluster, r.node, r.transport, r.file): r for r in rows}
    return Collected(result, events, ev, rows, by, src_a_requests, profile, tvs_files[2])


def test_progress_ends_finished_with_every_job_done(collected: Collected) -> None:
    last = collected.events[-1]
    assert last.finished and last.done == last.total


def test_every_phone_of_the_inventory_has_lines_and_none_is_a_bug(collected: Collected) -> None:
    assert collected.result.phones == 6
    assert collected.result.by_outcome.get("bug", 0) == 0
    assert {r.phone for r in collected.rows} >= set(PHONES)


def test_http_first_needs_no_tftp_when_http_answers(collected: Collected) -> None:
    itl = collected.by[(PHONES[0], "source", "src-a", "http", f"ITL{PHONES[0]}.tlv")]
    assert itl.outcome is Outcome.OK and collected.ev.content(itl) == ITL_SRC
    assert not any(r.transport == "tftp" and r.cluster == "source" for r in collected.rows)


def test_a_missing_per_phone_ctl_falls_back_to_the_shared_cluster_file(collected: Collected) -> None:
    by = collected.by
    assert by[(PHONES[1], "source", "src-a", "http", f"CTL{PHONES[1]}.tlv")].outcome is Outcome.NOT_FOUND
    shared = by[(PHONES[1], "source", "src-a", "http", "CTLFile.tlv")]
    assert shared.outcome is Outcome.OK and "shared" in (shared.error or "")


def test_a_shared_fallback_is_not_fetched_again(collected: Collected) -> None:
    # The cluster files, three per-phone files of each phone, and only the .cnf.xml fallback of
    # phone 3 (phone 1's CTL fallback is the cluster file already fetched).
    assert collected.src_a_http_requests == 2 + 6 * 3 + 1


def test_a_missing_signed_config_falls_back_to_the_unsigned_one(collected: Collected) -> None:
    assert collected.by[(PHONES[3], "source", "src-b", "http", f"{PHONES[3]}.cnf.xml")].outcome is Outcome.OK


def test_configs_are_stored_without_passwords_and_keep_the_hash_as_received(collected: Collected) -> None:
    cfg = collected.by[(PHONES[0], "source", "src-a", "http", f"{PHONES[0]}.cnf.xml.sgn")]
    stored = collected.ev.content(cfg)
    assert stored is not None and b"secret-" not in stored
    assert cfg.redacted and cfg.blob != cfg.sha256


def test_both_transports_record_a_node_mismatch(collected: Collected) -> None:
    # The destination's ITL differs between HTTP and TFTP.
    mism = [r for r in collected.rows if r.error and "NODE_MISMATCH" in r.error]
    assert [(m.node, m.file) for m in mism] == [("dst-a", "ITLFile.tlv")]
    assert collected.result.mismatches == 1


def test_a_phone_missing_on_the_destination_is_not_found(collected: Collected) -> None:
    row = collected.by[(PHONES[2], "destination", "dst-a", "tftp", f"{PHONES[2]}.cnf.xml")]
    assert row.outcome is Outcome.NOT_FOUND


def test_web_pages_are_fetched_or_skipped_for_a_phone_without_an_address(collected: Collected) -> None:
    assert collected.by[(PHONES[0], None, "127.0.0.1", "web", "network-setup")].outcome is Outcome.OK
    assert collected.by[(PHONES[1], None, None, "web", "network-setup")].outcome is Outcome.SKIPPED


def test_a_tvs_named_by_the_profile_and_the_configs_is_probed_once(collected: Collected) -> None:
    tvs = [r for r in collected.rows if r.transport == "tvs"]
    assert len(tvs) == 1 and tvs[0].outcome is Outcome.OK
    assert collected.ev.content(tvs[0]) == collected.tvs_certificate


def test_identical_files_are_stored_once(collected: Collected) -> None:
    itl_blobs = {r.blob for r in collected.rows if r.file.startswith("ITLSEP") and r.cluster == "source"}
    assert len(itl_blobs) == 1


def test_the_summary_counts_the_phones_and_names_the_profile(collected: Collected) -> None:
    summary = collected.ev.summary()
    assert summary["counts"]["phones"] == 6
    assert summary["profile"]["sha256"] == collected.profile.sha256


def test_dead_node_and_discovery(tmp_path: Path) -> None:
    async def main() -> None:
        files: dict[str, bytes] = {"CTLFile.tlv": CTL_SRC, "ITLFile.tlv": ITL_SRC}
        files["ConfigFileCacheList.txt"] = b"".join(f"{n}.cnf.xml.sgn 100\n".encode() for n in PHONES) + (
            b"/tmp/SEPAAAAAAAAAAAA.cnf.xml 100\n"  # path-like: no phantom phone, a warning
        )
        for name in PHONES:
            files[f"CTL{name}.tlv"] = CTL_SRC
            files[f"ITL{name}.tlv"] = ITL_SRC
            files[f"{name}.cnf.xml.sgn"] = signed(name, b"<device/>")
        good, dst = Node(files), Node({"ITLFile.tlv": ITL_DST})
        for n in (good, dst):
            await n.start()
        dead_tftp, dead_http = free_udp_port(), free_tcp_port()
        try:
            profile = parse_profile(
                profile_text(
                    [good.toml("src-a"), good.toml("src-dead", tftp_port=dead_tftp, http_port=dead_http)],
                    [dst.toml("dst-a")],
                    src_transport="tftp",
                    dst_transport="tftp",
                    web_port=1,
                    tvs_port=free_tcp_port(),
                    limits="tftp_retries = 3\ndead_after = 3\nper_node_concurrency = 2\n",
                ),
                base_dir=tmp_path,
            )
            result = await collect(profile, tmp_path / "ev")  # no inventory: discovery
        finally:
            for n in (good, dst):
                await n.stop()
        rows = list(EvidenceReader(tmp_path / "ev").attempts())
        assert result.phones == 6
        assert {r.phone for r in rows} >= set(PHONES)
        dead = [r for r in rows if r.node == "src-dead"]
        assert dead and all(r.outcome is Outcome.TIMEOUT for r in dead)
        assert any("not sent" in (r.error or "") for r in dead)  # marked dead only after 3 timeouts
        assert sum(1 for r in dead if "not sent" not in (r.error or "")) >= 3
        alive = [r for r in rows if r.node == "src-a" and r.phone is not None]
        assert alive and all(r.outcome is Outcome.OK for r in alive)
        # not found stays not found
        nf = [r for r in rows if r.node == "dst-a" and r.phone is not None]
        assert nf and all(r.outcome is Outcome.NOT_FOUND for r in nf)
        assert "source/src-dead/tftp" in result.dead_nodes
        issues = result.summary["discovery_issues"]
        assert len(issues) == 1 and "line 7" in issues[0] and "/tmp/SEPAAAAAAAAAAAA" in issues[0]
        assert "SEPAAAAAAAAAAAA" not in {r.phone for r in rows}

    run(main)


def test_packet_loss_files_arrive_intact(tmp_path: Path) -> None:
    async def main() -> None:
        # About 10 KB each: several blocks and windows.
        certs = [_W.s_pub.certificate, _W.s_sub.certificate, *_W.tvs, _W.capf] * 3
        big_ctl = B.build_trust_list(_W.s_pub, [B.RecordSpec(c, Role.CCM_TFTP) for c in certs],
                                     filename="CTLFile.tlv", timestamp=TS)
        big_itl = B.build_trust_list(_W.s_pub, [B.RecordSpec(c, Role.TVS) for c in certs], timestamp=TS)
        files: dict[str, bytes] = {"CTLFile.tlv": big_ctl, "ITLFile.tlv": big_itl}
        for name in PHONES:
            files[f"CTL{name}.tlv"] = big_ctl
            files[f"ITL{name}.tlv"] = big_itl
            files[f"{name}.cnf.xml.sgn"] = signed(name, b"<device>" + b"<x>%d</x>" % len(name) * 500 + b"</device>")
        lossy = Node(files, faults=TftpFaults(loss=0.1, seed=7))
        dst = Node({})
        for n in (lossy, dst):
            await n.start()
        try:
            profile = parse_profile(
                profile_text(
                    [lossy.toml("src-a")],
                    [dst.toml("dst-a")],
                    src_transport="tftp",
                    dst_transport="tftp",
                    web_port=1,
                    tvs_port=free_tcp_port(),
                    limits="tftp_retries = 8\ndead_after = 100\n",
                ),
                base_dir=tmp_path,
            )
            await collect(profile, tmp_path / "ev", inventory=Inventory(tuple(Phone(n) for n in PHONES), ()))
        finally:
            for n in (lossy, dst):
                await n.stop()
        ev = EvidenceReader(tmp_path / "ev")
        src = [r for r in ev.attempts() if r.node == "src-a"]
        assert src and all(r.outcome is Outcome.OK for r in src), [
            r for r in src if r.outcome is not Outcome.OK
        ]
        for r in src:
            assert ev.content(r) == files[r.file]

    run(main)


def test_dry_run_counts(tmp_path: Path) -> None:
    node = 'name = "{n}"\naddress = "127.0.0.1"\n'
    profile: Profile = parse_profile(
        profile_text(
            [node.format(n="a"), node.format(n="b")],
            [node.format(n="c")],
            src_transport="http-first",
            dst_transport="both",
            web_port=80,
            tvs_port=2445,
        ),
        base_dir=tmp_path,
    )
    phones = [Phone(n, ip="127.0.0.1") for n in PHONES]
    plan = dry_run(profile, phones)
    rows = {(r.cluster, r.node, r.transport): r for r in plan.rows}
    # source mixed: 3 files per phone + 2 cluster files per node
    assert rows[("source", "a", "http")].requests == 2 + 3 * 6
    assert rows[("source", "a", "tftp")].requests == 0  # http-first: TFTP only as fallback
    assert rows[("source", "a", "tftp")].max_requests == 2 + 6 * 6
    assert rows[("destination", "c", "tftp")].requests == rows[("destination", "c", "http")].requests == 2 + 6
    assert rows[("phones", "(each phone)", "web")].requests == 6
    assert rows[("source", "a", "http")].min_seconds == pytest.approx((2 + 18) / Limits().per_node_rate)
    assert dry_run(profile, None).phones is None


def _with_member(xml: bytes, member: bytes) -> bytes:
    return xml.replace(b"</members>", member + b"</members>")


def test_tvs_addresses_of_a_config_and_of_its_signed_file() -> None:
    name = "SEP000000000001"
    second = b'<member priority="1"><address>tvs2.example.com</address></member>'
    xml = _with_member(config(name, 2446), second)
    want = (("127.0.0.1", 2446), ("tvs2.example.com", 2445))  # no <port>: the TVS port
    assert tvs_addresses_in_config(f"{name}.cnf.xml", xml) == want
    assert tvs_addresses_in_config(f"{name}.cnf.xml.sgn", signed(name, xml)) == want
    assert tvs_addresses_in_config(f"{name}.cnf.xml", b"<device/>") == ()


def test_tvs_addresses_come_in_the_phones_priority_order() -> None:
    xml = (b'<device><TVS><members><member priority="2"><address>b</address></member>'
           b'<member priority="1"><address>a</address><port>2447</port></member></members></TVS></device>')
    assert tvs_addresses_in_config("SEP000000000001.cnf.xml", xml) == (("a", 2447), ("b", 2445))


def test_a_member_without_an_address_or_with_a_port_out_of_range_is_left_out() -> None:
    xml = config("SEP000000000001", 2445)
    for member in (
        b"<member><port>2445</port></member>",
        b"<member><address>x</address><port>70000</port></member>",
        b"<member><address>x</address><port>0</port></member>",
    ):
        found = tvs_addresses_in_config("SEP000000000001.cnf.xml", _with_member(xml, member))
        assert found == (("127.0.0.1", 2445),)


_MIB_ELEMENT = b"<device><x>" + b"a" * (1 << 20) + b"</x>"  # past devconfig.MAX_CONFIG_BYTES
_MARKUP_FLOOD = b"<device>" + b"<a/>" * 100_000  # 400 KB: a hundred times a real config's elements
_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "127.0.0.1"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
           b"<device><TVS><members><member><address>&b;</address></member></members></TVS></device>")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("SEP000000000001.cnf.xml", config("SEP000000000001", 2445)[:-20]),  # truncated: not well-formed
        ("SEP000000000001.cnf.xml", _LAUGHS),  # a DTD (entity expansion): refused, never expanded
        ("SEP000000000001.cnf.xml", config("SEP000000000001", 2445).replace(b"<device>", _MIB_ELEMENT)),
        ("SEP000000000001.cnf.xml", config("SEP000000000001", 2445).replace(b"<device>", _MARKUP_FLOOD)),
        ("SEP000000000001.cnf.xml", config("SEP000000000001", 2445).replace(b"<port>2445", b"<port>twenty")),
        # A name that says signed, bytes with no signed header before the XML.
        ("SEP000000000001.cnf.xml.sgn", b"\x01\x00\x02garbage" + config("SEP000000000001", 2445)),
        ("SEP000000000001.cnf.xml", b"\xff" * 64),
    ],
    ids=["truncated", "dtd", "over-1-MiB", "markup-flood", "port-not-a-number", "sgn-without-header", "binary"],
)
def test_a_config_that_does_not_parse_names_no_tvs(name: str, data: bytes) -> None:
    assert tvs_addresses_in_config(name, data) == ()


@pytest.mark.parametrize("where", ["check_fetched", "prepare_for_storage"])
def test_a_bug_in_the_collector_is_that_files_outcome_and_the_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """An exception in the collector's own code while one file is fetched (the content check) or
    recorded (the redaction) becomes that file's ``bug`` line with its traceback; every other
    phone is collected as if nothing happened."""
    import scanner.app.collect as collect_module

    broken = f"ITL{PHONES[1]}.tlv"
    original = getattr(collect_module, where)

    def raising(name: str, data: bytes, **kw: Any) -> Any:
        if name == broken:
            raise RuntimeError(f"injected into {where}")
        return original(name, data, **kw)

    monkeypatch.setattr(collect_module, where, raising)

    async def main() -> CollectionResult:
        files: dict[str, bytes] = {"CTLFile.tlv": CTL_SRC, "ITLFile.tlv": ITL_SRC}
        for name in PHONES:
            files[f"CTL{name}.tlv"] = CTL_SRC
            files[f"ITL{name}.tlv"] = ITL_SRC
            files[f"{name}.cnf.xml.sgn"] = signed(name, b"<device/>")
        src, dst = Node(files), Node({"ITLFile.tlv": ITL_DST})
        for n in (src, dst):
            await n.start()
        try:
            text = profile_text([src.toml("src-a")], [dst.toml("dst-a")], src_transport="tftp",
                                dst_transport="tftp", web_port=1, tvs_port=free_tcp_port())
            inventory = Inventory(tuple(Phone(n) for n in PHONES), ())
            return await collect(parse_profile(text, base_dir=tmp_path), tmp_path / "ev", inventory=inventory)
        finally:
            for n in (src, dst):
                await n.stop()

    result = asyncio.run(main())
    rows = list(EvidenceReader(tmp_path / "ev").attempts())
    bugs = [r for r in rows if r.outcome is Outcome.BUG]
    assert [(r.phone, r.cluster, r.node, r.file) for r in bugs] == [(PHONES[1], "source", "src-a", broken)]
    trace = bugs[0].error or ""
    assert "Traceback" in trace and f"RuntimeError: injected into {where}" in trace
    assert result.by_outcome["bug"] == 1
    others = [r for r in rows if r.cluster == "source" and r.phone is not None and r.file != broken]
    assert len(others) == 3 * len(PHONES) - 1 and all(r.outcome is Outcome.OK for r in others)
    assert result.summary["state"] == "complete"


def test_pacing_tick_follows_the_limits() -> None:
    from scanner.app.collect import MAX_PACING_TICK, pacing_tick

    assert pacing_tick(Limits()) == pytest.approx(0.75 * 64 / 500)  # 48 starts per node per tick
    assert pacing_tick(Limits(per_node_rate=10, per_node_burst=64)) == MAX_PACING_TICK
    assert pacing_tick(Limits(per_node_rate=1e6, per_node_burst=1)) == pytest.approx(0.001)


def test_requests_never_outrun_the_token_bucket(
    tmp_path: Path, tvs_files: tuple[Path, Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pacing releases starts in bunches; the bucket must still bound them: from the first
    request on, never more than ``burst + rate * elapsed`` requests to a node, and in any window
    at most ``burst + rate * window``, give or take one pacing tick.

    Timed where the collector hands each request to the transport, not where the server receives
    it: the server's clock adds the transport's own latency, and the first requests of a run wait
    for their connections (tens of ms on a busy machine) while later ones reuse them, which can
    push the initial burst into the first pacing tick on the server's side of the wire. The tick
    of slack in windows: an event loop woken late (a busy machine) releases a tick's starts just
    before the next tick's, never earlier than the bucket allows (the first bound has no slack)."""
    import time

    from scanner.app.collect import pacing_tick
    from scanner.net.http_fetch import HttpFetcher

    rate, burst = 100.0, 8
    released: list[float] = []
    phones = [f"SEP0000000001{i:02X}" for i in range(40)]
    src, dst = Node({}), Node({})
    get = HttpFetcher.get

    async def timed_get(self: HttpFetcher, url: str, *args: Any, **kwargs: Any) -> Any:
        if url.startswith(f"http://127.0.0.1:{src.http_port}/"):
            released.append(time.monotonic())
        return await get(self, url, *args, **kwargs)

    monkeypatch.setattr(HttpFetcher, "get", timed_get)

    async def main() -> None:
        async with tvs_server(tvs_files) as tvs_port:
            await src.start()
            await dst.start()
            runner, web_port = await phone_web()
            try:
                profile = parse_profile(
                    profile_text(
                        [src.toml("src-a")],
                        [dst.toml("dst-a")],
                        src_transport="http",
                        dst_transport="http",
                        web_port=web_port,
                        tvs_port=tvs_port,
                        limits=f"per_node_rate = {rate}\nper_node_burst = {burst}\n",
                    ),
                    base_dir=tmp_path,
                )
                result = await collect(
                    profile, tmp_path / "ev", inventory=Inventory(tuple(Phone(n) for n in phones), ())
                )
                assert result.by_outcome.get("bug", 0) == 0
            finally:
                await src.stop()
                await dst.stop()
                await runner.cleanup()

    run(main)
    # CTL and ITL per phone, each falling back to the shared cluster file once, and the config
    # with its .cnf.xml fallback: well over the burst.
    assert len(released) > 3 * len(phones)
    released.sort()
    for j, at in enumerate(released):
        assert j + 1 <= burst + rate * (at - released[0]) + 1, (j, at - released[0])
    tick = pacing_tick(Limits(per_node_rate=rate, per_node_burst=burst))
    for i, start in enumerate(released):
        for j in range(i, len(released)):
            window = released[j] - start
            assert j - i + 1 <= burst + rate * (window + tick) + 1, (i, j, window)
