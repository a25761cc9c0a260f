"""lab build: determinism, the shape of both clusters' files, each fault's effect, the answer key."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from scanner.core.devconfig import parse_device_config
from scanner.core.filechecks import is_blank_itl
from scanner.core.trustlist import Digest, Role, parse
from scanner.core.verify import verify
from scanner.lab.build import SHA512_UNSUPPORTED, build_lab
from scanner.lab.scenario import BUILTIN, parse_scenario
from scanner.lab.testing import TEST_BASE, built_lab, key_factory
from scanner.store.trust_stores import load_trust_store


def _tree_hashes(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def _lab(d: Path) -> dict:
    return json.loads((d / "lab.json").read_text())


def _answer(d: Path) -> dict:
    return json.loads((d / "answer-key.json").read_text())


def _served(d: Path, node: str, name: str) -> bytes:
    return (d / "tftp" / node / name).read_bytes()


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    sc = dataclasses.replace(BUILTIN["mixed"], base=TEST_BASE)
    keys = key_factory("1")
    a = build_lab(tmp_path / "a", sc, phones=40, seed="1", keys=keys)
    b = build_lab(tmp_path / "b", sc, phones=40, seed="1", keys=keys)
    assert a.answer == b.answer
    assert _tree_hashes(a.path) == _tree_hashes(b.path)
    c = build_lab(tmp_path / "c", sc, phones=40, seed="2", keys=key_factory("2"))
    assert _tree_hashes(c.path) != _tree_hashes(a.path)
    # Rebuilding over an existing lab replaces it; nothing partial is left beside it.
    build_lab(tmp_path / "a", sc, phones=40, seed="1", keys=keys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]


def test_healthy_answer_key_all_ready() -> None:
    d = built_lab("healthy")
    ak = _answer(d)
    assert ak["verdict"] == "GO"
    assert ak["scenario"] == "healthy" and ak["seed"] == "1"
    assert len(ak["devices"]) == 30
    assert all(v == {"readiness": "READY", "codes": []} for v in ak["devices"].values())
    assert ak["clusters"] == {"source": [], "destination": []}


def test_source_is_tokenless_10_5_destination_is_12_5() -> None:
    d = built_lab("healthy")
    ctl = parse(_served(d, "src-pub", "CTLFile.tlv"))
    assert _served(d, "src-sub1", "CTLFile.tlv") == ctl.data
    v = verify(ctl)
    assert v.valid and v.signer_has_sast_role
    assert ctl.header.signer_name is not None and ctl.header.signer_name.startswith("CN=src-pub;")
    assert [r.role for r in ctl.records].count(Role.SAST) == 2  # publisher CallManager + ITLRecovery
    for node in ("src-pub", "src-sub1"):
        itl = parse(_served(d, node, "ITLFile.tlv"))
        assert verify(itl).valid and verify(itl).signer_has_sast_role
        assert itl.header.signer_name is not None and itl.header.signer_name.startswith(f"CN={node};")
        assert len(itl.records_with_role(Role.TVS)) == 3
        assert len(itl.records_with_role(Role.CCM_TFTP)) == 1
        assert len(itl.records_with_role(Role.CAPF)) == 1
    for node in ("dst-pub", "dst-sub1"):
        for name in ("CTLFile.tlv", "ITLFile.tlv"):
            tf = parse(_served(d, node, name))
            assert verify(tf).valid
            assert tf.header.signer_name is not None and tf.header.signer_name.startswith(
                "CN=ITLRECOVERY_dst-pub;"
            )
            assert tf.header.digest == Digest.SHA1
    # Each node signs configs with its own CallManager key.
    lab = _lab(d)
    mac = lab["phones"][0]["name"]
    for node in ("src-pub", "dst-sub1"):
        sgn = parse(_served(d, node, f"{mac}.cnf.xml.sgn"))
        assert sgn.header.signer_name is not None and sgn.header.signer_name.startswith(f"CN={node};")
        cfg = parse_device_config(sgn.payload)
        assert cfg.tvs and all(t.address and t.address.startswith("127.") for t in cfg.tvs)
        assert "sshPassword" in cfg.redacted_fields
    cache = _served(d, "dst-pub", "ConfigFileCacheList.txt").decode().split()
    assert f"{mac}.cnf.xml" in cache


def test_trust_stores_bulk_import() -> None:
    d = built_lab("healthy")
    sast = load_trust_store(d / "trust/source/Phone-SAST-trust")
    assert len(sast.certs) == 3  # dst-pub, dst-sub1 CallManager + ITLRecovery
    cmt = load_trust_store(d / "trust/source/CallManager-trust")
    assert len(cmt.certs) == 4  # + CAPF (bulk import)
    assert (
        len(load_trust_store(d / "trust/destination/Phone-SAST-trust").certs) == 4
    )  # 3 CallManager + ITLRecovery


def test_profile_and_inventory_contract() -> None:
    d = built_lab("healthy")
    # profile-manual.toml: every node by hand, no AXL (the CSV path); profile.toml: see below.
    prof = tomllib.loads((d / "profile-manual.toml").read_text())
    assert all("axl" not in c for c in prof["clusters"].values())
    src = prof["clusters"]["source"]
    assert src["mode"] == "mixed" and src["version"] == "10.5" and src["transport"] == "http-first"
    assert set(src["trust_stores"]) == {"CallManager-trust", "Phone-SAST-trust"}
    assert [n["name"] for n in src["tftp"]] == ["src-pub", "src-sub1"]
    assert len(src["tvs"]) == 3 and len(prof["clusters"]["destination"]["tftp"]) == 2
    addresses = [n["address"] for c in prof["clusters"].values() for n in c["tftp"] + c["tvs"]]
    assert len(set(addresses)) == len(addresses) and all(a.startswith("127.") for a in addresses)
    assert prof["phones"] == {"web_port": 8080, "web_scheme": "http"}
    profile_mod = pytest.importorskip("scanner.store.profiles")
    loaded = profile_mod.load_profile(d / "profile-manual.toml")
    assert loaded is not None and all(c.axl is None for c in loaded.clusters)
    header = (d / "inventory.csv").read_text().splitlines()[0]
    assert header.startswith("Device Name,Description,Device Type,Device Pool,IP Address")


def _phones_with(d: Path, fault: str) -> list[dict]:
    found = [p for p in _lab(d)["phones"] if p["fault"] == fault]
    assert found, f"no phone has {fault}"
    return found


def test_mixed_most_ready_and_every_phone_fault_present() -> None:
    d = built_lab("mixed", phones=60)
    ak = _answer(d)
    assert ak["verdict"] == "NO_GO"
    assert ak["counts"]["READY"] > 30
    faults = {p["fault"] for p in _lab(d)["phones"]} - {None}
    assert faults == {f.name for f in BUILTIN["mixed"].faults if f.definition.scope == "phone"}


def test_phone_fault_effects() -> None:
    d = built_lab("mixed", phones=60)
    lab = _lab(d)
    variants = lab["trust_variants"]
    ak = _answer(d)["devices"]
    for p in _phones_with(d, "phone-stale-itl") + _phones_with(d, "phone-trust-update-failed"):
        node = "src-pub" if p["tftp"][0].endswith(".0.1") else "src-sub1"
        assert variants[p["itl"]]["sha1"] != hashlib.sha1(_served(d, node, "ITLFile.tlv")).hexdigest()
        assert "PHONE_TRUST_STALE" in ak[p["name"]]["codes"] and ak[p["name"]]["readiness"] == "NOT_READY"
    for p in _phones_with(d, "phone-src-itl-invalid"):
        for node in ("src-pub", "src-sub1"):
            assert not verify(parse(_served(d, node, f"ITLSEP{p['mac']}.tlv"))).valid
    for p in _phones_with(d, "dest-not-provisioned"):
        assert not (d / "tftp/dst-pub" / f"{p['name']}.cnf.xml.sgn").exists()
        assert "DEST_NOT_PROVISIONED" in ak[p["name"]]["codes"]
    itl_serials = {r.serial for r in parse(_served(d, "dst-pub", "ITLFile.tlv")).records}
    for p in _phones_with(d, "dest-config-signer-unknown"):
        sgn = parse(_served(d, "dst-pub", f"{p['name']}.cnf.xml.sgn"))
        assert sgn.header.signer_serial not in itl_serials
    for p in _phones_with(d, "tvs-not-configured"):
        cfg = parse_device_config(parse(_served(d, "src-pub", f"{p['name']}.cnf.xml.sgn")).payload)
        assert cfg.tvs == ()
        assert set(ak[p["name"]]["codes"]) == {"TVS_NOT_CONFIGURED", "NODE_MISMATCH", "NO_ROLLBACK_PATH"}
    for p in _phones_with(d, "sha512-unsupported-model"):
        assert p["model"] in SHA512_UNSUPPORTED
    assert parse(_served(d, "dst-pub", "ITLFile.tlv")).header.digest == Digest.SHA512
    for p in _phones_with(d, "web-access-off"):
        assert p["web"] == "off"
        assert (
            parse_device_config(parse(_served(d, "src-pub", f"{p['name']}.cnf.xml.sgn")).payload).web_access
            == 1
        )
        assert ak[p["name"]]["readiness"] == "UNKNOWN"


def test_mixed_node_faults() -> None:
    d = built_lab("mixed", phones=60)
    lab = _lab(d)
    # dest-node-mismatch: the two destination nodes serve different (both valid) CTLs.
    a, b = _served(d, "dst-pub", "CTLFile.tlv"), _served(d, "dst-sub1", "CTLFile.tlv")
    assert a != b and verify(parse(a)).valid and verify(parse(b)).valid
    tvs = {t["name"]: t for t in lab["clusters"]["source"]["tvs"]}
    assert tvs["src-sub2"]["down"] is True
    ak = _answer(d)["devices"]
    west = [p for p in lab["phones"] if p["pool"] == "DP-WEST" and p["fault"] is None]
    assert west and all(ak[p["name"]]["readiness"] == "NOT_READY" for p in west)
    assert all("TVS_UNREACHABLE" in ak[p["name"]]["codes"] for p in west)
    hq = [p for p in lab["phones"] if p["pool"] == "DP-HQ" and p["fault"] is None]
    assert hq and all(ak[p["name"]]["readiness"] == "READY" for p in hq)
    assert all("TVS_CERT_NOT_IN_ITL" in ak[p["name"]]["codes"] for p in hq)
    assert len(load_trust_store(d / "trust/destination/Phone-SAST-trust").certs) == 0  # no-rollback-path


@pytest.mark.parametrize(
    ("scenario", "readiness", "codes"),
    [
        (
            "rollback-mixed-mode",
            "NOT_READY",
            ["SRC_MIXED_MODE_ROLLBACK", "SRC_ROLLBACK_ACTIVE", "TVS_CERT_NOT_IN_ITL"],
        ),
        ("rollback-path", "READY", ["SRC_ROLLBACK_ACTIVE"]),
        ("itlrecovery-not-imported", "NOT_READY", ["DEST_SIGNER_UNTRUSTED", "ITLRECOVERY_NOT_IMPORTED"]),
        ("dest-node-cert-not-imported", "NOT_READY", ["DEST_SIGNER_UNTRUSTED"]),
        ("dest-signer-not-phone-sast", "NOT_READY", ["DEST_SIGNER_NOT_PHONE_SAST"]),
        ("dest-invalid", "NOT_READY", ["DEST_CTL_INVALID", "DEST_ITL_INVALID"]),
        ("dest-itl-too-large", "NOT_READY", ["ITL_TOO_LARGE"]),
        ("dest-signer-expired", "NOT_READY", ["CERT_EXPIRED"]),
        ("dest-non-secure", "NOT_READY", ["SRC_CTL_WITHOUT_DEST_CTL"]),
        ("trust-store-missing", "UNKNOWN", ["TRUST_STORE_MISSING"]),
    ],
)
def test_cluster_scenarios(scenario: str, readiness: str, codes: list[str]) -> None:
    d = built_lab(scenario, phones=6)
    ak = _answer(d)
    assert {(v["readiness"], tuple(v["codes"])) for v in ak["devices"].values()} == {
        (readiness, tuple(codes))
    }
    expected = {"READY": "GO", "NOT_READY": "NO_GO", "UNKNOWN": "INCOMPLETE"}[readiness]
    assert ak["verdict"] == expected
    _check_cluster_files(d, scenario)


def _check_cluster_files(d: Path, scenario: str) -> None:
    src_sast = d / "trust/source/Phone-SAST-trust"
    if scenario.startswith("rollback"):
        for node in ("src-pub", "src-sub1"):
            assert is_blank_itl(parse(_served(d, node, "ITLFile.tlv")))
        assert (d / "tftp/src-pub/CTLFile.tlv").exists() == (scenario == "rollback-mixed-mode")
    elif scenario == "itlrecovery-not-imported":
        subjects = [c.cert.subject.rfc4514_string() for c in load_trust_store(src_sast).certs]
        assert not any("ITLRECOVERY" in s for s in subjects)
    elif scenario == "dest-node-cert-not-imported":
        itl = parse(_served(d, "dst-sub1", "ITLFile.tlv"))
        assert itl.header.signer_name is not None and itl.header.signer_name.startswith("CN=dst-sub1;")
        store = load_trust_store(src_sast)
        assert not store.find(itl.header.signer_serial, itl.header.signer_issuer)
    elif scenario == "dest-signer-not-phone-sast":
        ctl = parse(_served(d, "dst-pub", "CTLFile.tlv"))
        assert not load_trust_store(src_sast).find(ctl.header.signer_serial, ctl.header.signer_issuer)
        assert load_trust_store(d / "trust/source/CallManager-trust").find(
            ctl.header.signer_serial, ctl.header.signer_issuer
        )
    elif scenario == "dest-invalid":
        assert not verify(parse(_served(d, "dst-sub1", "ITLFile.tlv"))).valid
        with pytest.raises(ValueError):
            parse(_served(d, "dst-pub", "CTLFile.tlv"), strict=True)
    elif scenario == "dest-itl-too-large":
        itl = _served(d, "dst-pub", "ITLFile.tlv")
        assert len(itl) > 64 * 1024 and sum(1 for r in parse(itl).records if r.certificate) > 39
    elif scenario == "dest-signer-expired":
        ctl = parse(_served(d, "dst-pub", "CTLFile.tlv"))
        signer = verify(ctl).signer
        assert signer is not None
    elif scenario == "dest-non-secure":
        assert not (d / "tftp/dst-pub/CTLFile.tlv").exists()
    elif scenario == "trust-store-missing":
        assert "trust_stores" not in tomllib.loads((d / "profile.toml").read_text())["clusters"]["source"]


# -- the publishers' AXL and RisPort70: profile.toml, lab.json "cucm", PKI, secrets --------------


def _node_set(nodes: tuple[Any, ...]) -> set[tuple[Any, ...]]:
    return {(n.address, getattr(n, "tftp_port", None), getattr(n, "http_port", None), getattr(n, "port", None)) for n in nodes}


def _discovered(d: Path, profile_name: str = "profile.toml") -> dict[str, Any]:
    """Each cluster of ``profile_name`` completed with the nodes its lab.json database lists,
    as discovery completes it (scanner.core.cucm.discovery.complete_cluster)."""
    from scanner.core.cucm.axl import ClusterNode
    from scanner.core.cucm.discovery import complete_cluster
    from scanner.store.profiles import load_profile

    profile = load_profile(d / profile_name)
    lab = _lab(d)
    out = {}
    for c in profile.clusters:
        nodes = [ClusterNode(**n) for n in lab["clusters"][c.name]["cucm"]["nodes"]]
        out[c.name], warnings = complete_cluster(c, nodes)
        assert warnings == ()
    return out


def test_profile_discovers_through_each_publisher_axl() -> None:
    from scanner.store.profiles import load_profile

    d = built_lab("healthy")
    lab = _lab(d)
    prof = tomllib.loads((d / "profile.toml").read_text())
    for name, octet in (("source", TEST_BASE), ("destination", TEST_BASE + 10)):
        table = prof["clusters"][name]
        assert "tftp" not in table and "tvs" not in table  # every node comes from AXL
        assert table["discovered_ports"] == {"tftp": 6969, "http": 6970, "tvs": 2445}
        assert table["axl"] == {
            "host": f"127.{octet}.0.1", "port": 8443, "user": "trustscan-ro",
            "password_file": f"secrets/{name}-axl.password", "ca_bundle": "pki/api-ca.pem", "risport_per_minute": 15,
        }
        secret = d / table["axl"]["password_file"]
        assert secret.stat().st_mode & 0o077 == 0
        assert secret.read_text().splitlines() == [lab["clusters"][name]["cucm"]["users"]["trustscan-ro"]]
    loaded = load_profile(d / "profile.toml")
    assert all(c.axl is not None and c.axl.ca_bundle == d / "pki/api-ca.pem" for c in loaded.clusters)
    # What discovery adds is exactly what the manual profile names (by address and ports).
    manual = load_profile(d / "profile-manual.toml")
    for name, done in _discovered(d).items():
        hand = getattr(manual, name)
        assert _node_set(done.tftp) == _node_set(hand.tftp) and _node_set(done.tvs) == _node_set(hand.tvs)


def test_a_node_with_ports_of_its_own_is_written_by_hand() -> None:
    sc = parse_scenario('name = "ports"\n[nodes.src-sub1]\ntftp_port = 7069\n[nodes.src-sub2]\nport = 2446\n', "p.toml")
    d = built_lab(sc, phones=4)
    prof = tomllib.loads((d / "profile.toml").read_text())
    src = prof["clusters"]["source"]
    assert src["tftp"] == [{"name": "src-sub1", "address": f"127.{TEST_BASE}.0.2", "tftp_port": 7069, "http_port": 6970}]
    assert src["tvs"] == [{"name": "src-sub2", "address": f"127.{TEST_BASE}.1.3", "port": 2446}]
    assert "tftp" not in prof["clusters"]["destination"]
    done = _discovered(d)["source"]
    # The hand-written node wins over the one AXL lists at its address: no duplicate, its port.
    assert sorted((n.address, n.tftp_port) for n in done.tftp) == [(f"127.{TEST_BASE}.0.1", 6969), (f"127.{TEST_BASE}.0.2", 7069)]
    assert sorted((n.address, n.port) for n in done.tvs) == [
        (f"127.{TEST_BASE}.1.1", 2445), (f"127.{TEST_BASE}.1.2", 2445), (f"127.{TEST_BASE}.1.3", 2446)
    ]


def test_cluster_database_settings_follow_the_scenario() -> None:
    def params(scenario: str, cluster: str) -> dict[str, str]:
        found: dict[str, str] = _lab(built_lab(scenario, phones=6))["clusters"][cluster]["cucm"]["params"]
        return found

    assert params("healthy", "source") == {"ClusterSecurityMode": "1", "RollBackToPreGrayback": "F"}
    assert params("rollback-mixed-mode", "source") == {"ClusterSecurityMode": "1", "RollBackToPreGrayback": "T"}
    assert params("rollback-path", "source") == {"ClusterSecurityMode": "0", "RollBackToPreGrayback": "T"}
    assert params("rollback-path", "destination")["RollBackToPreGrayback"] == "F"
    assert params("dest-non-secure", "destination")["ClusterSecurityMode"] == "0"
    busy = _lab(built_lab("cucm-busy", phones=6))["clusters"]
    assert (busy["source"]["cucm"]["per_minute"], busy["source"]["cucm"]["delay"]) == (5, 2.0)
    assert (busy["destination"]["cucm"]["per_minute"], busy["destination"]["cucm"]["delay"]) == (15, 0.0)


def test_cluster_database_lists_nodes_by_address_and_every_source_phone() -> None:
    d = built_lab("mixed", phones=60)
    lab = _lab(d)
    src = lab["clusters"]["source"]["cucm"]
    tftp = [n["address"] for n in lab["clusters"]["source"]["tftp"]]
    tvs = [t["address"] for t in lab["clusters"]["source"]["tvs"]]
    assert src["nodes"] == [
        *({"name": a, "publisher": i == 0, "tftp": True, "tvs": False} for i, a in enumerate(tftp)),
        *({"name": a, "publisher": False, "tftp": False, "tvs": True} for a in tvs),
    ]
    assert src["publisher"] == tftp[0] and src["port"] == 8443
    assert lab["clusters"]["destination"]["cucm"]["devices"] == []
    devices = {x["name"]: x for x in src["devices"]}
    assert set(devices) == {p["name"] for p in lab["phones"]}
    rows = {r["Device Name"]: r for r in csv.DictReader(io.StringIO((d / "inventory.csv").read_text()))}
    ak = _answer(d)
    for p in lab["phones"]:
        dev = devices[p["name"]]
        assert dev["model"] == "Cisco " + p["model"].removeprefix("CP-") and dev["device_pool"] == p["pool"]
        assert dev["node"] in tftp and dev["owner"] == p["user"]
        if p["fault"] == "phone-unregistered":
            assert dev["status"] == "UnRegistered" and p["web"] == "off"
            assert rows[p["name"]]["IP Address"] == ""  # a real export has none either
            got = ak["devices"][p["name"]]
            assert got["readiness"] == "UNKNOWN" and "PHONE_EVIDENCE_MISSING" in got["codes"]
        else:
            assert "status" not in dev and dev["addresses"] == [p["ip"]] == [rows[p["name"]]["IP Address"]]
        if p["fault"] == "phone-failover":
            assert dev["failed_over_from"] in tftp and dev["failed_over_from"] != dev["node"]
            assert ak["devices"][p["name"]]["readiness"] == "READY"
    assert {p["fault"] for p in lab["phones"]} >= {"phone-unregistered", "phone-failover"}
    others = {p["ip"] for p in lab["phones"] if p["fault"] != "phone-unregistered"}
    last = [devices[p["name"]]["addresses"][0] for p in lab["phones"] if p["fault"] == "phone-unregistered"]
    assert any(a in others for a in last)  # a last-known address another phone has now


def test_tomcat_certificates_are_signed_by_the_api_ca_for_the_publisher_only() -> None:
    from cryptography import x509

    d = built_lab("healthy")
    ca = x509.load_pem_x509_certificate((d / "pki/api-ca.pem").read_bytes())
    for name in ("source", "destination"):
        cucm = _lab(d)["clusters"][name]["cucm"]
        cert = x509.load_pem_x509_certificate((d / cucm["cert"]).read_bytes())
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == [cucm["publisher"]]
        assert (d / cucm["key"]).is_file()


def test_the_wrong_password_scenario_refuses_profile_toml_only() -> None:
    from scanner.lab.answer import refusal_differences

    d = built_lab("axl-wrong-password", phones=6)
    ak = _answer(d)
    assert ak["verdict"] == "GO" and ak["refused"]["profile"] == "profile.toml"
    message = f"discovery failed: cluster source: AXL at 127.{TEST_BASE}.0.1:8443 refused the user 'trustscan-ro' (HTTP 401)"
    assert refusal_differences(ak, 64, message) == []
    assert refusal_differences(ak, 1, message) == ["exit 1 != 64"]
    assert len(refusal_differences(ak, 64, "cluster destination: HTTP 401")) == 2
    assert refusal_differences(_answer(built_lab("healthy")), 64, message) != []
