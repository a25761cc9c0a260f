"""Collection end to end against loopback servers: TFTP (scanner.net.tftp_io) and HTTP 6970
(aiohttp) per node, phone web servers, a TVS that demands a client certificate."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from scanner.app.collect import Progress, collect, dry_run, tvs_addresses_in_config
from scanner.core.evidence import Outcome
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


def test_collect_end_to_end(tmp_path: Path, tvs_files: tuple[Path, Path, bytes]) -> None:
    async def main() -> None:
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
        assert events and events[-1].finished and events[-1].done == events[-1].total
        assert result.phones == 6 and result.by_outcome.get("bug", 0) == 0
        ev = EvidenceReader(tmp_path / "ev")
        rows = list(ev.attempts())
        # every phone of the inventory appears
        assert {r.phone for r in rows} >= set(PHONES)
        by = {(r.phone, r.cluster, r.node, r.transport, r.file): r for r in rows}
        # http-first: HTTP answered, no TFTP needed
        itl = by[(PHONES[0], "source", "src-a", "http", f"ITL{PHONES[0]}.tlv")]
        assert itl.outcome is Outcome.OK and ev.content(itl) == ITL_SRC
        assert not any(r.transport == "tftp" and r.cluster == "source" for r in rows)
        # fallback to the cluster-level CTLFile.tlv, shared (not re-fetched)
        assert by[(PHONES[1], "source", "src-a", "http", f"CTL{PHONES[1]}.tlv")].outcome is Outcome.NOT_FOUND
        shared = by[(PHONES[1], "source", "src-a", "http", "CTLFile.tlv")]
        assert shared.outcome is Outcome.OK and "shared" in (shared.error or "")
        # cluster files, per-phone files, and only the .cnf.xml fallback of phone 3 (the CTL one is shared)
        assert src_a.http_requests == 2 + 6 * 3 + 1
        # .sgn fallback to .cnf.xml
        assert by[(PHONES[3], "source", "src-b", "http", f"{PHONES[3]}.cnf.xml")].outcome is Outcome.OK
        # redaction: no password in any blob; original hash kept
        cfg = by[(PHONES[0], "source", "src-a", "http", f"{PHONES[0]}.cnf.xml.sgn")]
        stored = ev.content(cfg)
        assert stored is not None and b"secret-" not in stored and cfg.redacted and cfg.blob != cfg.sha256
        # destination "both": the ITL differs between HTTP and TFTP
        mism = [r for r in rows if r.error and "NODE_MISMATCH" in r.error]
        assert [(m.node, m.file) for m in mism] == [("dst-a", "ITLFile.tlv")]
        assert result.mismatches == 1
        assert (
            by[(PHONES[2], "destination", "dst-a", "tftp", f"{PHONES[2]}.cnf.xml")].outcome
            is Outcome.NOT_FOUND
        )
        # web pages: phone 0 fetched, phone 1 skipped (no IP)
        assert by[(PHONES[0], None, "127.0.0.1", "web", "network-setup")].outcome is Outcome.OK
        assert by[(PHONES[1], None, None, "web", "network-setup")].outcome is Outcome.SKIPPED
        # TVS: the profile's member and the configs' member are the same address: probed once
        tvs = [r for r in rows if r.transport == "tvs"]
        assert len(tvs) == 1 and tvs[0].outcome is Outcome.OK and ev.content(tvs[0]) == tvs_files[2]
        # identical ITLs stored once
        itl_blobs = {r.blob for r in rows if r.file.startswith("ITLSEP") and r.cluster == "source"}
        assert len(itl_blobs) == 1
        summary = ev.summary()
        assert summary["counts"]["phones"] == 6 and summary["profile"]["sha256"] == profile.sha256

    run(main)


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


def test_tvs_addresses_in_config() -> None:
    data = config("SEP000000000001", 2445).replace(
        b"</members>", b'<member priority="1"><address>tvs2.example.com</address></member></members>'
    )
    assert tvs_addresses_in_config(data) == (("127.0.0.1", 2445), ("tvs2.example.com", 2445))
    assert tvs_addresses_in_config(b"<device/>") == ()


def test_pacing_tick_follows_the_limits() -> None:
    from scanner.app.collect import MAX_PACING_TICK, pacing_tick

    assert pacing_tick(Limits()) == pytest.approx(0.75 * 64 / 500)  # 48 starts per node per tick
    assert pacing_tick(Limits(per_node_rate=10, per_node_burst=64)) == MAX_PACING_TICK
    assert pacing_tick(Limits(per_node_rate=1e6, per_node_burst=1)) == pytest.approx(0.001)


def test_requests_never_outrun_the_token_bucket(tmp_path: Path, tvs_files: tuple[Path, Path, bytes]) -> None:
    """Pacing releases starts in bunches; the bucket must still bound every window of time:
    at most ``burst + rate * window`` requests reach a node in any window."""
    import time

    rate, burst = 100.0, 8
    arrivals: list[float] = []
    phones = [f"SEP0000000001{i:02X}" for i in range(40)]

    async def main() -> None:
        async with tvs_server(tvs_files) as tvs_port:
            src = Node({})
            dst = Node({})
            await src.start()
            await dst.start()
            runner, web_port = await phone_web()
            try:
                original = src.http_files

                class Recording(dict[str, bytes]):
                    def get(self, key: str, default: Any = None) -> Any:
                        arrivals.append(time.monotonic())
                        return original.get(key, default)

                src.http_files = Recording()
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
    assert len(arrivals) > 3 * len(phones)
    arrivals.sort()
    slack = 0.005  # server-side timestamps: a request may arrive a few ms after its release
    for i, start in enumerate(arrivals):
        for j in range(i, len(arrivals)):
            window = arrivals[j] - start
            assert j - i + 1 <= burst + rate * (window + slack) + 1, (i, j, window)


def test_gc_tuning_is_undone_whatever_the_exit_order() -> None:
    import gc

    from scanner.app.collect import _fewer_gc_passes

    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    a, b = _fewer_gc_passes(), _fewer_gc_passes()
    a.__enter__()
    b.__enter__()
    assert gc.get_threshold()[0] >= 20_000
    a.__exit__(None, None, None)  # the first one out is not the last
    b.__exit__(None, None, None)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen
