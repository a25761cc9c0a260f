"""TVS probes stay inside the profile (issue 9, part 3).

A fetched config names TVS addresses; only the profile's members, and ``tvs_allow`` addresses named
by a config whose signature verifies with the source's own TFTP records, are contacted. Every other
address is recorded as never contacted; counting listeners prove no connection was made.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from scanner.app.collect import collect
from scanner.core.evidence import Outcome
from scanner.core.inventory import Inventory, Phone
from scanner.core.profile import parse_profile, parse_tvs_allow
from scanner.core.tvs_targets import Scope, config_signed_by, scope_of
from scanner.lab import builder as B
from scanner.store.evidence import EvidenceReader
from tests import test_collect
from tests.fleet import TS, base_world
from tests.test_collect import Node, free_tcp_port, profile_text, tvs_server

tvs_files = test_collect.tvs_files  # the TVS server's certificate and key (a module fixture)

PHONES = ("SEP00000000AA01", "SEP00000000AA02", "SEP00000000AA03")


def _config(name: str, members: list[tuple[str, int]]) -> bytes:
    body = "".join(f"<member><port>{p}</port><address>{a}</address></member>" for a, p in members)
    return f"<device><deviceName>{name}</deviceName><TVS><members>{body}</members></TVS></device>".encode()


class Counter:
    """A TCP listener that only counts who connects."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.connections = 0
        self.port = free_tcp_port()

    async def __aenter__(self) -> Counter:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.connections += 1
            w.close()

        self.server = await asyncio.start_server(handle, self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def test_scope_rules() -> None:
    text = profile_text(['name = "a"\naddress = "127.0.0.1"\n'], ['name = "d"\naddress = "127.0.0.1"\n'],
                        src_transport="http", dst_transport="http", web_port=1, tvs_port=2445)
    text = text.replace(b'transport = "http"\n', b'transport = "http"\ntvs_allow = ["127.0.9.0/24", "[::1]:2446"]\n', 1)
    cluster = parse_profile(text, base_dir=Path(".")).source
    assert scope_of(cluster, "127.0.0.1", 2445) is Scope.MEMBER
    assert scope_of(cluster, "127.0.9.7", 2445) is Scope.ALLOWED
    assert scope_of(cluster, "127.0.9.7", 2446) is Scope.OUTSIDE  # the allowed port only
    assert scope_of(cluster, "::1", 2446) is Scope.ALLOWED
    assert scope_of(cluster, "10.0.0.1", 2445) is Scope.OUTSIDE
    assert scope_of(cluster, "tvs.evil.example", 2445) is Scope.OUTSIDE
    assert parse_tvs_allow("not a host!") is None


def test_config_signature_decides_allowed_targets() -> None:
    w = base_world()
    itl = w.files[("source", "s1", "ITLFile.tlv")]
    xml = _config(PHONES[0], [("127.0.9.1", 2445)])
    good = B.build_signed_file(w.s_pub, xml, filename=f"{PHONES[0]}.cnf.xml.sgn", timestamp=TS)
    assert config_signed_by(f"{PHONES[0]}.cnf.xml.sgn", good, [itl]) is None
    forged = good[:-1] + bytes([good[-1] ^ 1])
    assert config_signed_by(f"{PHONES[0]}.cnf.xml.sgn", forged, [itl]) is not None
    assert config_signed_by(f"{PHONES[0]}.cnf.xml", xml, [itl]) == "unsigned config"
    # Signed by a certificate the source lists do not name as TFTP.
    other = B.build_signed_file(w.d_cm[0], xml, filename=f"{PHONES[0]}.cnf.xml.sgn", timestamp=TS)
    assert config_signed_by(f"{PHONES[0]}.cnf.xml.sgn", other, [itl]) is not None


def test_collection_contacts_only_what_the_profile_names(tmp_path: Path, tvs_files: tuple[Path, Path, bytes]) -> None:
    w = base_world()
    itl = w.files[("source", "s1", "ITLFile.tlv")]

    async def main() -> tuple[int, int, int]:
        async with (
            tvs_server(tvs_files) as member_port,
            Counter("127.0.9.1") as allowed_signed,
            Counter("127.0.9.2") as allowed_forged,
            Counter("127.0.9.3") as outside,
        ):
            def signed(name: str, members: list[tuple[str, int]], *, forge: bool = False) -> bytes:
                # Forged: signed by a key the source's lists do not name as TFTP.
                return B.build_signed_file(w.d_cm[0] if forge else w.s_pub, _config(name, members),
                                           filename=f"{name}.cnf.xml.sgn", timestamp=TS)

            member = ("127.0.0.1", member_port)
            src = {
                "ITLFile.tlv": itl,
                f"{PHONES[0]}.cnf.xml.sgn": signed(PHONES[0], [member, ("127.0.9.1", allowed_signed.port)]),
                f"{PHONES[1]}.cnf.xml.sgn": signed(PHONES[1], [("127.0.9.2", allowed_forged.port)], forge=True),
                f"{PHONES[2]}.cnf.xml.sgn": signed(PHONES[2], [("127.0.9.3", outside.port)]),
            }
            node, dst = Node(src), Node({})
            for n in (node, dst):
                await n.start()
            try:
                text = profile_text([node.toml("s1")], [dst.toml("d1")], src_transport="http",
                                    dst_transport="http", web_port=1, tvs_port=member_port)
                allow = f'tvs_allow = ["127.0.9.1:{allowed_signed.port}", "127.0.9.2:{allowed_forged.port}"]\n'
                text = text.replace(b'transport = "http"\n', b'transport = "http"\n' + allow.encode(), 1)
                text = text.replace(b'mode = "mixed"', b'mode = "non-secure"', 1)
                profile = parse_profile(text, base_dir=tmp_path)
                await collect(profile, tmp_path / "ev", inventory=Inventory(tuple(Phone(p) for p in PHONES), ()))
            finally:
                for n in (node, dst):
                    await n.stop()
            return allowed_signed.connections, allowed_forged.connections, outside.connections

    signed_n, forged_n, outside_n = asyncio.run(main())
    assert signed_n >= 1, "an allowed address named by a correctly signed config is probed"
    assert forged_n == 0, "a config whose signature fails is never a source of targets"
    assert outside_n == 0, "an address outside the profile is never contacted"
    rows = [r for r in EvidenceReader(tmp_path / "ev").attempts() if r.transport == "tvs"]
    by = {r.address: r for r in rows}
    skipped = {a: r.error for a, r in by.items() if r.outcome is Outcome.SKIPPED}
    assert any(a.startswith("127.0.9.3:") for a in skipped)
    assert any(a.startswith("127.0.9.2:") and "signature" in (e or "") for a, e in skipped.items())
    assert all("never contacted" in (e or "") for e in skipped.values())
