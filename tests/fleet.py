"""A tiny two-cluster world built in memory for readiness unit tests.

Source: like CUCM 10.5 in mixed mode (tokenless CTL signed by the publisher's CallManager cert;
each TFTP node's ITL signed by that node's CallManager cert, with the TVS records). Destination:
like 12.5 in mixed mode (CTL and ITL signed by ITLRecovery). The source's Phone-SAST-trust holds
every destination signer (a completed bulk import). Tests mutate one thing at a time.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from scanner.core.phonepage import PageKind, PhonePage, StatusMessages
from scanner.core.readiness import ClusterEvidence, FileEvidence, PhoneEvidence, ScanInput, TvsEvidence
from scanner.core.trustlist import Digest, FileDigests, Role
from scanner.core.verify import TrustStore
from scanner.lab import builder as B
from tests.pki import NOW, make_cert, rsa_key

TS = int(NOW.timestamp())
MAC = "0011223344AA"
NAME = f"SEP{MAC}"


def der(c: x509.Certificate) -> bytes:
    return c.public_bytes(serialization.Encoding.DER)


@dataclass
class World:
    s_pub: B.Signer
    s_sub: B.Signer
    tvs: list[x509.Certificate]
    capf: x509.Certificate
    d_rec: B.Signer
    d_cm: list[B.Signer]
    digest: Digest = Digest.SHA1
    files: dict[tuple[str, str, str], bytes] = field(default_factory=dict)

    def build(self) -> None:
        f = self.files
        s_ctl = B.build_trust_list(
            self.s_pub,
            [
                B.RecordSpec(self.s_pub.certificate, Role.SAST),
                B.RecordSpec(self.s_pub.certificate, Role.CCM_TFTP),
                B.RecordSpec(self.s_sub.certificate, Role.CCM_TFTP),
                B.RecordSpec(self.capf, Role.CAPF),
            ],
            filename="CTLFile.tlv",
            timestamp=TS,
        )
        for node, signer in (("s1", self.s_pub), ("s2", self.s_sub)):
            f[("source", node, "CTLFile.tlv")] = s_ctl
            f[("source", node, "ITLFile.tlv")] = B.build_trust_list(
                signer,
                [
                    B.RecordSpec(signer.certificate, Role.SAST),
                    B.RecordSpec(signer.certificate, Role.CCM_TFTP),
                    *(B.RecordSpec(t, Role.TVS) for t in self.tvs),
                    B.RecordSpec(self.capf, Role.CAPF),
                ],
                timestamp=TS,
            )
            f[("source", node, f"{NAME}.cnf.xml.sgn")] = B.build_signed_file(
                signer, self.config(), filename=f"{NAME}.cnf.xml.sgn", timestamp=TS
            )
        d_ctl = B.build_trust_list(
            self.d_rec,
            [
                B.RecordSpec(self.d_rec.certificate, Role.SAST),
                *(B.RecordSpec(s.certificate, Role.CCM_TFTP) for s in self.d_cm),
            ],
            filename="CTLFile.tlv",
            timestamp=TS,
            digest=self.digest,
        )
        for i, node in enumerate(("d1", "d2")):
            f[("destination", node, "CTLFile.tlv")] = d_ctl
            f[("destination", node, "ITLFile.tlv")] = B.build_trust_list(
                self.d_rec,
                [
                    B.RecordSpec(self.d_rec.certificate, Role.SAST),
                    B.RecordSpec(self.d_cm[i].certificate, Role.CCM_TFTP),
                ],
                timestamp=TS,
                digest=self.digest,
            )
            f[("destination", node, f"{NAME}.cnf.xml.sgn")] = B.build_signed_file(
                self.d_cm[i], self.config(), filename=f"{NAME}.cnf.xml.sgn", timestamp=TS, digest=self.digest
            )

    @staticmethod
    def config() -> bytes:
        return (
            b"<device><deviceSecurityMode>1</deviceSecurityMode><TVS><members>"
            b'<member priority="0"><port>2445</port><address>127.1.0.11</address></member>'
            b'<member priority="1"><port>2445</port><address>127.1.0.12</address></member>'
            b"</members></TVS><sshPassword>hunter2</sshPassword></device>"
        )


@functools.cache
def base_world() -> World:
    k = [rsa_key(1024, i) for i in range(4)]
    s_pub = B.Signer(make_cert("src-pub", k[0]), k[0])
    s_sub = B.Signer(make_cert("src-sub", k[1]), k[1])
    tvs = [make_cert("src-pub-tvs", k[2]), make_cert("src-sub-tvs", k[2])]
    capf = make_cert("CAPF-src", k[3])
    d_rec = B.Signer(make_cert("ITLRECOVERY_dst-pub", k[2]), k[2])
    d_cm = [B.Signer(make_cert("dst-pub", k[3]), k[3]), B.Signer(make_cert("dst-sub", k[1]), k[1])]
    w = World(s_pub, s_sub, tvs, capf, d_rec, d_cm)
    w.build()
    return w


def store(name: str, certs: list[x509.Certificate]) -> TrustStore:
    return TrustStore.from_files(name, [(f"{name}/{i}.der", der(c)) for i, c in enumerate(certs)])


def page(itl: bytes | None, ctl: bytes | None, **over: object) -> PhonePage:
    base = PhonePage(
        kind=PageKind.NETWORK_SETUP,
        model="CP-8841",
        device_name=NAME,
        host_name=NAME,
        mac_address=MAC,
        ip_address="127.100.0.1",
        security_mode="Non secure",
        web_access=True,
        ssh_access=None,
        ctl_installed=ctl is not None,
        ctl_signature=FileDigests.of(ctl).sha1 if ctl else None,
        ctl_signature_algo="sha1" if ctl else None,
        itl_installed=itl is not None,
        itl_signature=FileDigests.of(itl).sha1 if itl else None,
        itl_signature_algo="sha1" if itl else None,
        tvs=(),
        tftp_servers=(),
        trust_list_tftp=(),
        capf_servers=(),
        call_managers=(),
        fields=(),
    )
    return dataclasses.replace(base, **over)  # type: ignore[arg-type]


def status(failed: bool) -> StatusMessages:
    return StatusMessages(
        kind=PageKind.STATUS_MESSAGES,
        model="CP-8841",
        device_name=NAME,
        messages=(),
        last_trust_event="Trust List update failed" if failed else "Trust List updated",
        last_trust_event_kind=None,
        trust_update_failed=failed,
        web_access=None,
    )


@dataclass
class Scenario:
    """Every knob a test may turn, with the healthy defaults."""

    world: World = field(default_factory=base_world)
    src_mixed: bool = True
    dst_mixed: bool = True
    sast_store: list[x509.Certificate] | None = None  # None: the full bulk import
    cm_store: list[x509.Certificate] | None = None
    tvs_outcome: str = "ok"
    tvs_cert: x509.Certificate | None = None
    phone_page: PhonePage | None = None
    page_outcome: str = "ok"
    status_failed: bool = False
    overrides: dict[tuple[str, str, str], tuple[str, bytes | None]] = field(default_factory=dict)
    model: str = "CP-8841"

    def scan(self) -> tuple[ScanInput, PhoneEvidence]:
        w = self.world
        files = {k: ("ok", v) for k, v in w.files.items()}
        files.update(self.overrides)
        d_signers = [w.d_rec.certificate, *(s.certificate for s in w.d_cm)]
        sast = d_signers if self.sast_store is None else self.sast_store
        cm = [s.certificate for s in w.d_cm] if self.cm_store is None else self.cm_store

        def cluster_files(cluster: str) -> tuple[FileEvidence, ...]:
            out = []
            for (c, node, name), (outcome, data) in files.items():
                if c == cluster and name in ("CTLFile.tlv", "ITLFile.tlv"):
                    if name == "CTLFile.tlv" and not (self.src_mixed if c == "source" else self.dst_mixed):
                        outcome, data = "not_found", None
                    out.append(FileEvidence(c, node, name, outcome, data, transport="http"))
            return tuple(out)

        tvs = tuple(
            TvsEvidence(
                f"tvs{i}",
                f"127.1.0.1{i + 1}",
                2445,
                self.tvs_outcome,
                der(self.tvs_cert or t) if self.tvs_outcome == "ok" else None,
            )
            for i, t in enumerate(w.tvs)
        )
        source = ClusterEvidence(
            "source",
            self.src_mixed,
            ("s1", "s2"),
            cluster_files("source"),
            {
                "Phone-SAST-trust": store("Phone-SAST-trust", sast),
                "CallManager-trust": store("CallManager-trust", cm),
            },
            tvs,
        )
        dest = ClusterEvidence("destination", self.dst_mixed, ("d1", "d2"), cluster_files("destination"), {})
        phone_files = []
        for (c, node, name), (outcome, data) in files.items():
            if name.startswith(NAME):
                phone_files.append(FileEvidence(c, node, name, outcome, data, transport="http"))
        # As the collector asks: each source node for ITLSEP<MAC>.tlv (and CTLSEP in mixed mode);
        # a real CUCM answers "not found" and the phone falls back to the node's generic file.
        for node in ("s1", "s2"):
            for kind in ("ITL", "CTL") if self.src_mixed else ("ITL",):
                key = ("source", node, f"{kind}{NAME}.tlv")
                outcome, data = self.overrides.get(key, ("not_found", None))
                phone_files.append(FileEvidence("source", node, key[2], outcome, data, transport="http"))
        itl = w.files[("source", "s1", "ITLFile.tlv")]
        ctl = w.files[("source", "s1", "CTLFile.tlv")] if self.src_mixed else None
        pg = self.phone_page if self.phone_page is not None else page(itl, ctl)
        phone = PhoneEvidence(
            NAME,
            self.model,
            "127.100.0.1",
            "DP-HQ",
            files=tuple(phone_files),
            page=pg if self.page_outcome == "ok" else None,
            page_outcome=self.page_outcome,
            status=status(self.status_failed),
        )
        return ScanInput(source, dest), phone
