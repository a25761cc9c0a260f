"""``trustscan lab build``: write a lab directory (two clusters, a fleet, the faults, the answer key).

Layout of DIR (docs/lab.md has the long form)::

    lab.json                 what `lab serve` loads: nodes, addresses, ports, faults, phones, and per
                             cluster its CUCM database ("cucm": nodes, services, phones, users)
    profile.toml             the scan profile for both clusters (a contract with scanner.core.profile):
                             each cluster's publisher AXL, nodes found by discovery
    profile-manual.toml      the same clusters with every node written by hand and no AXL (the CSV path)
    inventory.csv            CUCM bulk-administration style phone export
    secrets/<c>-axl.password the AXL password profile.toml names (one line)
    answer-key.json          expected verdict and per-phone readiness and codes
    tftp/<node>/             files each TFTP node serves (per-phone CTLSEP/ITLSEP only when they
                             differ from the node's CTLFile.tlv / ITLFile.tlv: resolved at serve time)
    trust/<cluster>/<store>/ trust stores as exported (PEM), store = CallManager-trust, Phone-SAST-trust
    pki/                     TVS server certificates and keys, a lab MIC CA and a phone client cert,
                             the API CA (api-ca.pem) and each publisher's tomcat certificate

The directory is built beside DIR and renamed into place at the end, so a failed build never
leaves a half-built lab; ``lab.json`` is written last.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from scanner.core.trustlist import Digest, Role, parse
from scanner.lab import tomlw
from scanner.lab.answer import PhoneFacts, answer_key, phone_answer
from scanner.lab.builder import RecordSpec, Signer, build_signed_file, build_trust_list
from scanner.lab.cucm_api import LabDevice, device_json, model_enum, versions_for_release
from scanner.lab.errors import LabError
from scanner.lab.pki import (
    EXPIRED_AT,
    LAB_EPOCH,
    CertAndKey,
    KeyFactory,
    make_ca_cert,
    make_cert,
    make_server_cert,
    serial_for,
)
from scanner.lab.scenario import ClusterShape, Scenario, check_loopback, effective_shapes, validate

__all__ = ["LAB_FORMAT", "BuildResult", "build_lab"]

LAB_FORMAT = 1
DEFAULT_PORTS = {"tftp": 6969, "http": 6970, "tvs": 2445, "web": 8080, "axl": 8443}
# The read-only application user a real deployment gives trustscan (Standard AXL API Access and
# Standard Serviceability Read Only roles), and CUCM's default "Allowed Device Queries Per Minute".
AXL_USER = "trustscan-ro"
RISPORT_PER_MINUTE = 15
# File timestamps (header tag 15): fixed, so builds are reproducible.
FILE_TIME = int((LAB_EPOCH + dt.timedelta(days=400)).timestamp())
STALE_TIME = FILE_TIME - 90 * 86400
# The trust lists phones may hold (current and stale), by SHA-1: what `lab cutover` starts from.
HELD_LISTS = Path("phone-lists")
MISMATCH_TIME = FILE_TIME - 7 * 86400
PHONES_PER_SUBNET = 250
# Phones fill 127.(base+90).0-255.1-250 (64,000 addresses); a bigger fleet spills into the next
# second octets, up to 4 of them (256,000 phones), so 100,000-phone labs fit.
PHONES_PER_OCTET = PHONES_PER_SUBNET * 256
MAX_PHONES = PHONES_PER_OCTET * 4

# Model mix of a typical fleet (Device Type as CUCM exports it, firmware load).
MODELS: tuple[tuple[str, float, str], ...] = (
    ("CP-8841", 0.40, "sip88xx.14-2-1-0101-40"),
    ("CP-8845", 0.15, "sip8845_65.14-2-1-0101-40"),
    ("CP-8851", 0.10, "sip88xx.14-2-1-0101-40"),
    ("CP-8861", 0.10, "sip88xx.14-2-1-0101-40"),
    ("CP-7841", 0.15, "sip78xx.14-2-1-0101-40"),
    ("CP-7821", 0.10, "sip78xx.14-2-1-0101-40"),
)
# Models the lab declares unable to verify SHA-512 signed files (docs/lab.md).
SHA512_UNSUPPORTED = ("CP-8945", "CP-6941")
_LOADS = {"CP-8945": "SCCP894x.9-4-2SR3-1", "CP-6941": "SCCP69xx.9-4-1-3SR3"}
_OUIS = ("00D6FE", "3C5EC3", "B000B4", "6C416A", "F87B20", "0CD0F8")

# Source device pools: (name, share of phones, call manager group = TVS members, TFTP servers).
SRC_POOLS: tuple[tuple[str, int, tuple[str, ...], tuple[str, str]], ...] = (
    ("DP-HQ", 12, ("src-pub", "src-sub1"), ("src-pub", "src-sub1")),
    ("DP-EAST", 5, ("src-sub1", "src-pub"), ("src-sub1", "src-pub")),
    ("DP-WEST", 3, ("src-sub2",), ("src-pub", "src-sub1")),
)
_POOL_CYCLE = [i for i, (_, share, _, _) in enumerate(SRC_POOLS) for _ in range(share)]


@dataclass(frozen=True, slots=True)
class BuildResult:
    path: Path
    phones: int
    seconds: float
    answer: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Addresses


@dataclass(frozen=True, slots=True)
class Node:
    cluster: str  # "source" | "destination"
    name: str
    address: str
    tftp_port: int
    http_port: int


@dataclass(frozen=True, slots=True)
class Tvs:
    cluster: str
    name: str
    address: str
    port: int


def _addresses(s: Scenario) -> tuple[list[Node], list[Tvs]]:
    b = s.base
    over = dict(s.nodes)
    nodes: list[Node] = []
    tvs: list[Tvs] = []
    for cluster, octet, tftp_names, tvs_names in (
        ("source", b, ("src-pub", "src-sub1"), ("src-pub", "src-sub1", "src-sub2")),
        ("destination", b + 10, ("dst-pub", "dst-sub1"), ("dst-pub", "dst-sub1")),
    ):
        for i, name in enumerate(tftp_names, 1):
            o = over.get(name)
            nodes.append(
                Node(
                    cluster,
                    name,
                    (o.address if o and o.address else None) or f"127.{octet}.0.{i}",
                    (o.tftp_port if o and o.tftp_port else None) or DEFAULT_PORTS["tftp"],
                    (o.http_port if o and o.http_port else None) or DEFAULT_PORTS["http"],
                )
            )
        for i, name in enumerate(tvs_names, 1):
            o = over.get(name)
            tvs.append(
                Tvs(
                    cluster,
                    name,
                    f"127.{octet}.1.{i}",
                    (o.port if o and o.port else None) or DEFAULT_PORTS["tvs"],
                )
            )
    return nodes, tvs


def phone_address(base: int, index: int) -> str:
    spill, rest = divmod(index, PHONES_PER_OCTET)
    return f"127.{base + 90 + spill}.{rest // PHONES_PER_SUBNET}.{rest % PHONES_PER_SUBNET + 1}"


# ---------------------------------------------------------------------------------------------
# PKI


@dataclass(slots=True)
class ClusterPki:
    cluster: str
    shape: ClusterShape
    cm: dict[str, CertAndKey] = field(default_factory=dict)
    tvs: dict[str, CertAndKey] = field(default_factory=dict)
    ec: dict[str, CertAndKey] = field(default_factory=dict)
    capf: CertAndKey | None = None
    itlrec: CertAndKey | None = None


def _cert(keys: KeyFactory, label: str, kind: str, cn: str, org: str, unit: str, **kw: Any) -> CertAndKey:
    key = keys.key(label, kind)
    cert = make_cert(
        key,
        common_name=cn,
        organization=org,
        unit=unit,
        serial=serial_for(keys.seed, label + kw.pop("tag", "")),
        **kw,
    )
    return CertAndKey(cert, key)


def _cluster_pki(
    keys: KeyFactory,
    cluster: str,
    shape: ClusterShape,
    nodes: tuple[str, ...],
    tftp: tuple[str, ...],
    *,
    itlrec_expired: bool,
    cm_expired: bool,
) -> ClusterPki:
    org = "Lab Source" if cluster == "source" else "Lab Destination"
    pki = ClusterPki(cluster, shape)
    cm_kw: dict[str, Any] = (
        {"not_before": dt.datetime(2020, 6, 30, tzinfo=dt.UTC), "not_after": EXPIRED_AT} if cm_expired else {}
    )
    for n in nodes:
        pki.cm[n] = _cert(keys, f"{cluster}/{n}/CallManager", shape.key, n, org, "Voice", **cm_kw)
        # TVS keys are 2048-bit even on a 1024-bit cluster: TLS stacks refuse smaller server keys.
        pki.tvs[n] = _cert(keys, f"{cluster}/{n}/TVS", "rsa2048", n, org, "Voice TVS")
    for n in tftp if shape.ec else ():
        pki.ec[n] = _cert(keys, f"{cluster}/{n}/CallManager-ECDSA", "secp384r1", f"{n}-EC", org, "Voice")
    pub = nodes[0]
    pki.capf = _cert(
        keys,
        f"{cluster}/CAPF",
        shape.key,
        f"CAPF-{hashlib.sha1(f'{keys.seed}{cluster}'.encode()).hexdigest()[:8]}",
        org,
        "Voice",
    )
    rec_kw: dict[str, Any] = (
        {"not_before": dt.datetime(2020, 6, 30, tzinfo=dt.UTC), "not_after": EXPIRED_AT}
        if itlrec_expired
        else {}
    )
    pki.itlrec = _cert(
        keys, f"{cluster}/ITLRecovery", shape.key, f"ITLRECOVERY_{pub}", org, "Voice", **rec_kw
    )
    return pki


# ---------------------------------------------------------------------------------------------
# Trust lists


def _digest(shape: ClusterShape) -> Digest:
    return Digest.SHA512 if shape.digest == "sha512" else Digest.SHA1


def _signer(c: CertAndKey) -> Signer:
    return Signer(c.certificate, c.rsa_key)


class TrustLists:
    """The CTL/ITL bytes of one cluster, built once each."""

    def __init__(self, pki: ClusterPki, addr: dict[str, str], tvs_addr: dict[str, str]) -> None:
        self.pki = pki
        self.addr = addr
        self.tvs_addr = tvs_addr
        self.digest = _digest(pki.shape)
        self.modern = pki.shape.major >= 12.0
        self.extra: list[RecordSpec] = []

    def _rec(self, c: CertAndKey, role: int, node: str | None = None, dns: str | None = None) -> RecordSpec:
        ip = self.addr.get(node or "")
        return RecordSpec(c.certificate, role, dns_name=dns or ip or "", ip_address=ip)

    def ctl(self, timestamp: int = FILE_TIME) -> bytes:
        p = self.pki
        assert p.capf is not None and p.itlrec is not None
        nodes = list(p.cm)
        pub = nodes[0]
        recs: list[RecordSpec] = []
        if not self.modern:
            recs.append(self._rec(p.cm[pub], Role.SAST, pub))
        for n in nodes:
            role = Role.CCM_TFTP if n in self.addr else Role.CCM
            recs.append(self._rec(p.cm[n], role, n, dns=n if n not in self.addr else None))
        for n, c in p.ec.items():
            recs.append(self._rec(c, Role.CCM_TFTP, n, dns=f"{self.addr[n]}-EC"))
        recs.append(self._rec(p.capf, Role.CAPF, pub))
        recs.append(self._rec(p.itlrec, Role.SAST, pub))
        signer = p.itlrec if self.modern else p.cm[pub]
        return build_trust_list(
            _signer(signer), recs, filename="CTLFile.tlv", digest=self.digest, timestamp=timestamp
        )

    def itl(
        self, node: str, timestamp: int = FILE_TIME, *, blank: bool = False, extra: bool = False
    ) -> bytes:
        p = self.pki
        assert p.capf is not None and p.itlrec is not None
        pub = next(iter(p.cm))
        signer = p.itlrec if self.modern else p.cm[node]
        recs: list[RecordSpec] = []
        if blank:
            recs.append(self._rec(p.capf, Role.CAPF, pub))
        else:
            if self.modern:
                recs.append(self._rec(p.itlrec, Role.SAST, pub))
            else:
                recs.append(self._rec(p.cm[node], Role.SAST, node))
            recs.append(self._rec(p.cm[node], Role.CCM_TFTP, node))
            if node in p.ec:
                recs.append(self._rec(p.ec[node], Role.CCM_TFTP, node, dns=f"{self.addr[node]}-EC"))
            for n, c in p.tvs.items():
                ip = self.tvs_addr[n]
                recs.append(RecordSpec(c.certificate, Role.TVS, dns_name=ip, ip_address=ip))
            recs.append(self._rec(p.capf, Role.CAPF, pub))
            if not self.modern:
                recs.append(self._rec(p.itlrec, Role.SAST, pub))
            if extra:
                recs.extend(self.extra)
        return build_trust_list(
            _signer(signer), recs, filename="ITLFile.tlv", digest=self.digest, timestamp=timestamp
        )


def break_signature(data: bytes) -> bytes:
    """The same file with the last byte of its signature flipped: parses, does not verify."""
    span = parse(data).header.signature_span
    assert span is not None
    at = span[0] + span[1] - 1
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def truncate_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _page_facts(data: bytes | None) -> dict[str, Any] | None:
    """What a phone's web page shows about a trust list it holds."""
    if data is None:
        return None
    tf = parse(data)
    return {
        "sha1": hashlib.sha1(data).hexdigest(),
        "tvs": [r.dns_name or "" for r in tf.records if r.role == Role.TVS],
        "tftp": [r.dns_name or "" for r in tf.records if r.role in (Role.TFTP, Role.CCM_TFTP)],
        "capf": next((r.subject or "" for r in tf.records if r.role == Role.CAPF), ""),
    }


# ---------------------------------------------------------------------------------------------
# Config files

_CONFIG = """<?xml version="1.0" encoding="UTF-8"?>
<device xsi:type="axl:XIPPhone" ctiid="{ctiid}" uuid="{{{uuid}}}">
<fullConfig>true</fullConfig>
<deviceProtocol>SIP</deviceProtocol>
<sshUserId>admin</sshUserId>
<sshPassword>{ssh}</sshPassword>
<ipAddressMode>0</ipAddressMode>
<allowAutoConfig>true</allowAutoConfig>
<tzdata><tzolsonversion>2024a</tzolsonversion></tzdata>
<devicePool uuid="{{{pool_uuid}}}">
<revertPriority>0</revertPriority>
<name>{pool}</name>
<dateTimeSetting uuid="{{{dts_uuid}}}"><name>CMLocal</name><dateTemplate>D/M/Y</dateTemplate><timeZone>New Zealand Standard/Daylight Time</timeZone><olsonTimeZone>Pacific/Auckland</olsonTimeZone></dateTimeSetting>
<callManagerGroup>
<name>{cmg}</name>
<tftpDefault>true</tftpDefault>
<members>
{members}</members>
</callManagerGroup>
<srstInfo uuid="{{cd241e11-4a58-4d3d-9661-f06c912a18a3}}"><name>Disable</name><srstOption>Disable</srstOption></srstInfo>
<connectionMonitorDuration>120</connectionMonitorDuration>
</devicePool>
{tvs}<sipProfile><sipProxies><registerWithProxy>true</registerWithProxy></sipProxies><sipCallFeatures><cnfJoinEnabled>true</cnfJoinEnabled></sipCallFeatures><sipStack><sipInviteRetx>6</sipInviteRetx></sipStack><phoneLabel>{label}</phoneLabel><sipLines><line button="1" lineIndex="1"><featureID>9</featureID><featureLabel>{ext}</featureLabel><name>{ext}</name><displayName>{desc}</displayName><contact>{ext}</contact><authName></authName><authPassword></authPassword></line></sipLines><dscpForAudio>184</dscpForAudio><dialTemplate>dialplan.xml</dialTemplate></sipProfile>
<MissedCallLoggingOption>10</MissedCallLoggingOption>
<commonProfile><phonePassword></phonePassword><backgroundImageAccess>true</backgroundImageAccess><callLogBlfEnabled>2</callLogBlfEnabled></commonProfile>
<loadInformation>{load}</loadInformation>
<vendorConfig><disableSpeaker>false</disableSpeaker><pcPort>0</pcPort><settingsAccess>1</settingsAccess><garp>1</garp><voiceVlanAccess>0</voiceVlanAccess><webAccess>{web}</webAccess><sshAccess>0</sshAccess><webProtocol>0</webProtocol><spanToPCPort>1</spanToPCPort><loggingDisplay>1</loggingDisplay><loadServer></loadServer></vendorConfig>
<commonConfig><sshAccess>0</sshAccess><webAccess>{web}</webAccess></commonConfig>
<versionStamp>{stamp}</versionStamp>
<userLocale><name>English_United_States</name><uid>1</uid><langCode>en_US</langCode><version>14.0.0.0(1)</version><winCharSet>iso-8859-1</winCharSet></userLocale>
<networkLocale>United_States</networkLocale>
<networkLocaleInfo><name>United_States</name><version>14.0.0.0(1)</version></networkLocaleInfo>
<deviceSecurityMode>1</deviceSecurityMode>
<idleTimeout>0</idleTimeout>
<authenticationURL>http://{cm0}:8080/ccmcip/authenticate.jsp</authenticationURL>
<directoryURL>http://{cm0}:8080/ccmcip/xmldirectory.jsp</directoryURL>
<servicesURL>http://{cm0}:8080/ccmcip/getservicesmenu.jsp</servicesURL>
<secureAuthenticationURL>https://{cm0}:8443/ccmcip/authenticate.jsp</secureAuthenticationURL>
<secureDirectoryURL>https://{cm0}:8443/ccmcip/xmldirectory.jsp</secureDirectoryURL>
<transportLayerProtocol>2</transportLayerProtocol>
<phonePersonalization>1</phonePersonalization>
<TLSResumptionTimer>3600</TLSResumptionTimer>
<phoneServices useHTTPS="true"><provisioning>0</provisioning><phoneService type="1" category="0"><name>Missed Calls</name><url>Application:Cisco/MissedCalls</url><vendor></vendor><version></version></phoneService></phoneServices>
<certHash></certHash>
<encrConfig>false</encrConfig>
<capfAuthMode>0</capfAuthMode>
<capfList><capf><phonePort>3804</phonePort><processNodeName>{cm0}</processNodeName></capf></capfList>
<ownerId serviceProfileFile="SPDefault.cnf.xml">{user}</ownerId>
</device>
"""

_MEMBER = """<member priority="{prio}">
<callManager>
<name>{addr}</name>
<description>{name}</description>
<ports><ethernetPhonePort>2000</ethernetPhonePort><sipPort>5060</sipPort><securedSipPort>5061</securedSipPort><mgcpPorts><listen>2427</listen><keepAlive>2428</keepAlive></mgcpPorts></ports>
<processNodeName>{addr}</processNodeName>
</callManager>
</member>
"""

_XMLDEFAULT = """<?xml version="1.0" encoding="UTF-8"?>
<Default>
<callManagerGroup>
<members>
{members}</members>
</callManagerGroup>
<loadInformation6921 model="Cisco 6921">SCCP69xx.9-4-1-3SR3</loadInformation6921>
<loadInformation36670 model="Cisco 8841">sip88xx.14-2-1-0101-40</loadInformation36670>
<loadInformation36224 model="Cisco 8845">sip8845_65.14-2-1-0101-40</loadInformation36224>
<loadInformation36225 model="Cisco 7841">sip78xx.14-2-1-0101-40</loadInformation36225>
<authenticationURL></authenticationURL>
<directoryURL></directoryURL>
<idleURL></idleURL>
<informationURL></informationURL>
<messagesURL></messagesURL>
<proxyServerURL></proxyServerURL>
<servicesURL></servicesURL>
</Default>
"""


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _members(names: tuple[str, ...], addr: dict[str, str]) -> str:
    return "".join(_MEMBER.format(prio=i, addr=addr[n], name=n) for i, n in enumerate(names))


def _tvs_xml(names: tuple[str, ...], tvs: dict[str, Tvs]) -> str:
    if not names:
        return ""
    parts = [
        f'<member priority="{i}"><port>{tvs[n].port}</port><address>{tvs[n].address}</address></member>'
        for i, n in enumerate(names)
    ]
    return "<TVS><members>" + "".join(parts) + "</members></TVS>\n"


# ---------------------------------------------------------------------------------------------
# Phones


@dataclass(slots=True)
class Phone:
    index: int
    name: str
    mac: str
    model: str
    load: str
    ip: str
    pool: int  # index into SRC_POOLS
    description: str
    user: str
    ext: str
    fault: str | None = None
    ssh: str = ""


def _make_phones(rng: random.Random, count: int, base: int) -> list[Phone]:
    weights = [w for _, w, _ in MODELS]
    salt = rng.getrandbits(24)
    phones = []
    used: set[str] = set()
    for i in range(count):
        model, _, load = rng.choices(MODELS, weights)[0]
        oui = _OUIS[i % len(_OUIS)]
        mac = f"{oui}{(i * 2654435761 + salt) & 0xFFFFFF:06X}"
        assert mac not in used
        used.add(mac)
        ext = f"{4000 + i}"
        phones.append(
            Phone(
                index=i,
                name=f"SEP{mac}",
                mac=mac,
                model=model,
                load=load,
                ip=phone_address(base, i),
                pool=_POOL_CYCLE[i % len(_POOL_CYCLE)],
                description=f"Lab phone {ext}",
                user=f"user{i:05d}",
                ext=ext,
                ssh=f"lab-{rng.getrandbits(40):010x}",
            )
        )
    return phones


def _assign_phone_faults(scenario: Scenario, seed: str, phones: list[Phone]) -> None:
    """Each phone gets at most one phone fault, drawn among the phones the node and cluster faults
    leave READY (so the effects stay separable); if none are left, among all phones."""
    uses = [f for f in scenario.faults if f.definition.scope == "phone"]
    if not uses:
        return
    rng = random.Random(hashlib.sha256(f"{seed}/phone-faults".encode()).digest())
    ready = [p for p in phones if phone_answer(scenario, _facts(p, scenario))[0] == "READY"]
    pool = ready or list(phones)
    rng.shuffle(pool)
    n = len(phones)
    at = 0
    for i, f in enumerate(scenario.faults):
        if f.definition.scope != "phone":
            continue
        want = f.count if f.count is not None else (max(1, round((f.fraction or 0) * n)) if f.fraction else 0)
        if at + want > len(pool):
            raise LabError(
                f"faults[{i}] ({f.name}): not enough phones: {want} wanted, {len(pool) - at} left among "
                f"{len(pool)} eligible of {n}; lower the fractions or add phones"
            )
        for p in pool[at : at + want]:
            p.fault = f.name
            if f.name == "sha512-unsupported-model":
                p.model = SHA512_UNSUPPORTED[p.index % len(SHA512_UNSUPPORTED)]
                p.load = _LOADS[p.model]
        at += want


def _facts(p: Phone, scenario: Scenario) -> PhoneFacts:
    _, _, tvs_members, tftp = SRC_POOLS[p.pool]
    if p.fault == "tvs-not-configured":
        tvs_members = ()
    return PhoneFacts(p.name, tftp[0], tvs_members, p.fault)


# ---------------------------------------------------------------------------------------------
# The build


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _pem_files(directory: Path, certs: list[CertAndKey]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for c in certs:
        cn = c.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        _write(directory / f"{cn!s}.pem", c.pem)


def _prepare_out(out: Path) -> Path:
    out = out.resolve()
    if out.exists():
        if not out.is_dir():
            raise LabError(f"{out}: exists and is not a directory")
        if any(out.iterdir()) and not (out / "lab.json").is_file() and not (out / ".lab-partial").exists():
            raise LabError(f"{out}: not empty and not a lab directory; refusing to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    (tmp / ".lab-partial").write_text("lab build in progress\n")
    return tmp


def _finish_out(tmp: Path, out: Path) -> None:
    (tmp / ".lab-partial").unlink()
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_lab(
    out: Path,
    scenario: Scenario,
    *,
    phones: int | None = None,
    seed: str = "1",
    keys: KeyFactory | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build the lab into ``out``. Raises ``LabError`` for bad input."""
    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    validate(scenario)
    count = _phone_count(scenario, phones)
    keys = keys or KeyFactory(seed)
    if keys.seed != seed:
        raise ValueError("key factory seed differs from the build seed")
    src_shape, dst_shape = effective_shapes(scenario)
    nodes, tvs_list = _addresses(scenario)
    for n in nodes:
        check_loopback(n.address, f"node {n.name} address")
    tmp = _prepare_out(out)
    try:
        answer = _build_into(tmp, scenario, count, seed, keys, src_shape, dst_shape, nodes, tvs_list, say)
        _finish_out(tmp, out.resolve())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildResult(out.resolve(), count, time.perf_counter() - started, answer)


def _phone_count(scenario: Scenario, phones: int | None) -> int:
    """The fleet size asked for (or the scenario's), checked against the addresses there are."""
    count = phones if phones is not None else scenario.phones
    if not 1 <= count <= MAX_PHONES:
        raise LabError(f"--phones: must be 1..{MAX_PHONES} (got {count})")
    last_octet = scenario.base + 90 + (count - 1) // PHONES_PER_OCTET
    if last_octet > 255:
        raise LabError(
            f"network.base: {scenario.base} leaves no room for {count} phones at 127.{scenario.base + 90}.x.x"
            f"..127.{last_octet}.x.x"
        )
    return count


@dataclass(frozen=True, slots=True)
class _Clusters:
    """What every step of a build reads: the scenario and both clusters' shape, addresses and PKI."""

    scenario: Scenario
    seed: str
    keys: KeyFactory
    uses: frozenset[str]  # the names of the scenario's faults
    src_shape: ClusterShape
    dst_shape: ClusterShape
    nodes: list[Node]
    tvs_list: list[Tvs]
    src: ClusterPki
    dst: ClusterPki
    addr: dict[str, str]  # TFTP node name -> address
    src_tvs: dict[str, Tvs]  # TVS node name -> TVS, per cluster
    dst_tvs: dict[str, Tvs]


@dataclass(frozen=True, slots=True)
class _TrustFiles:
    """The trust lists a build serves and the ones phones hold."""

    served: dict[str, dict[str, bytes]]  # TFTP node -> file name -> bytes it serves
    variants: dict[str, bytes]  # the trust lists a phone may hold, by the name lab.json gives them
    src_ctl: bytes | None  # the source's CTL (None: the source is not in mixed mode)


def _build_into(
    d: Path,
    scenario: Scenario,
    count: int,
    seed: str,
    keys: KeyFactory,
    src_shape: ClusterShape,
    dst_shape: ClusterShape,
    nodes: list[Node],
    tvs_list: list[Tvs],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Write every file of the lab into ``d``, step by step; the answer key."""
    say("keys and certificates")
    c = _clusters(scenario, seed, keys, src_shape, dst_shape, nodes, tvs_list)
    src_tl, dst_tl = _trust_list_makers(c)

    say("trust lists")
    trust = _trust_files(c, src_tl, dst_tl)

    # Every list a phone may hold, by SHA-1: the stale ones are served by no node, and the
    # migrating phones of `lab cutover` need their bytes.
    (d / HELD_LISTS).mkdir()
    for data in trust.variants.values():
        _write(d / HELD_LISTS / f"{hashlib.sha1(data).hexdigest()}.tlv", data)

    say("phones")
    fleet = _fleet(scenario, seed, count)

    say("configs")
    tftp_dir = d / "tftp"
    for node in nodes:
        (tftp_dir / node.name).mkdir(parents=True)
    phone_records, cache = _write_phone_files(tftp_dir, c, trust, fleet)

    say("node files")
    _write_node_files(tftp_dir, c, trust.served, cache)

    say("trust stores")
    trust_rel = _write_trust_stores(d, c)

    say("pki")
    tvs_files = _write_pki(d / "pki", c)
    tomcat_files = _write_api_pki(d / "pki", c)

    say("profile, inventory, answer key")
    passwords = _axl_passwords(c)
    _write_secrets(d, c, passwords)
    _write(d / "profile.toml", _profile(scenario, src_shape, dst_shape, nodes, tvs_list, trust_rel).encode())
    _write(
        d / "profile-manual.toml",
        _profile_manual(scenario, src_shape, dst_shape, nodes, tvs_list, trust_rel).encode(),
    )
    _write(d / "inventory.csv", _inventory(phone_records).encode())
    answer = answer_key(
        scenario,
        seed,
        [_facts(p, scenario) for p in fleet],
        publishers={k: f"{v}:{DEFAULT_PORTS['axl']}" for k, v in _publishers(nodes).items()},
    )
    _write(d / "answer-key.json", orjson.dumps(answer, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    cucm = {
        cluster: _cucm_json(c, cluster, fleet, tomcat_files[cluster], passwords[cluster])
        for cluster in ("source", "destination")
    }
    lab = _lab_json(c, count, trust.variants, phone_records, tvs_files, cucm)
    _write(d / "lab.json", orjson.dumps(lab, option=orjson.OPT_SORT_KEYS))
    return answer


# -- keys, certificates and trust lists ---------------------------------------------------------


def _clusters(
    scenario: Scenario,
    seed: str,
    keys: KeyFactory,
    src_shape: ClusterShape,
    dst_shape: ClusterShape,
    nodes: list[Node],
    tvs_list: list[Tvs],
) -> _Clusters:
    """Both clusters' keys and certificates, with their addresses."""
    uses = frozenset(f.name for f in scenario.faults)
    src = _cluster_pki(
        keys,
        "source",
        src_shape,
        ("src-pub", "src-sub1", "src-sub2"),
        ("src-pub", "src-sub1"),
        itlrec_expired=False,
        cm_expired=False,
    )
    dst_expired = "dest-signer-expired" in uses
    dst = _cluster_pki(
        keys,
        "destination",
        dst_shape,
        ("dst-pub", "dst-sub1"),
        ("dst-pub", "dst-sub1"),
        itlrec_expired=dst_expired and dst_shape.major >= 12.0,
        cm_expired=dst_expired and dst_shape.major < 12.0,
    )
    return _Clusters(
        scenario=scenario,
        seed=seed,
        keys=keys,
        uses=uses,
        src_shape=src_shape,
        dst_shape=dst_shape,
        nodes=nodes,
        tvs_list=tvs_list,
        src=src,
        dst=dst,
        addr={n.name: n.address for n in nodes},
        src_tvs={t.name: t for t in tvs_list if t.cluster == "source"},
        dst_tvs={t.name: t for t in tvs_list if t.cluster == "destination"},
    )


def _trust_list_makers(c: _Clusters) -> tuple[TrustLists, TrustLists]:
    """The source's and the destination's CTL/ITL makers (with the destination's 45 extra
    application-server records when its ITLs are to be too large)."""
    src_tl = TrustLists(
        c.src,
        {k: v for k, v in c.addr.items() if k.startswith("src-")},
        {k: v.address for k, v in c.src_tvs.items()},
    )
    dst_tl = TrustLists(
        c.dst,
        {k: v for k, v in c.addr.items() if k.startswith("dst-")},
        {k: v.address for k, v in c.dst_tvs.items()},
    )
    if "dest-itl-too-large" in c.uses:
        dst_tl.extra.extend(_app_server_records(c.keys, c.seed))
    return src_tl, dst_tl


def _app_server_records(keys: KeyFactory, seed: str) -> list[RecordSpec]:
    """45 application-server certificates (one key): enough to push an ITL past 64 KB and 39 certificates."""
    app_key = keys.key("destination/bulk-app-server", "rsa2048")
    records = []
    for i in range(45):
        app_cert = make_cert(
            app_key,
            common_name=f"app-server-{i:02d}.lab.example",
            organization="Lab Destination",
            unit="Apps",
            serial=serial_for(seed, f"app-{i}"),
        )
        records.append(RecordSpec(app_cert, Role.APP_SERVER, dns_name=f"app-server-{i:02d}"))
    return records


def _trust_files(c: _Clusters, src_tl: TrustLists, dst_tl: TrustLists) -> _TrustFiles:
    """Each TFTP node's CTLFile.tlv and ITLFile.tlv (broken or older where a fault says so), and
    the source trust lists phones may hold (current and stale)."""
    rollback = "src-rollback" in c.uses
    served: dict[str, dict[str, bytes]] = {n.name: {} for n in c.nodes}
    variants: dict[str, bytes] = {}
    src_ctl = src_tl.ctl() if c.src_shape.mode == "mixed" else None
    # A stale list in the field is one from before a certificate change that the phone never
    # took (the spec's C2: "no stale list from before a cert change"): the stale CTL holds the
    # source's CallManager certificates as they were before they were regenerated, the stale ITL
    # its TVS certificates before theirs were. A list that differed only in its time stamp would
    # change nothing a phone does, and the cutover would then not test the prediction at all.
    ctl_before, itl_before = _before_regeneration(c)
    if src_ctl is not None:
        variants["src-ctl"] = src_ctl
        variants["src-ctl-old"] = TrustLists(ctl_before, src_tl.addr, src_tl.tvs_addr).ctl(STALE_TIME)
    for n in ("src-pub", "src-sub1"):
        current = src_tl.itl(n, blank=rollback)
        variants[f"src-itl:{n}"] = current
        variants[f"src-itl-old:{n}"] = TrustLists(itl_before, src_tl.addr, src_tl.tvs_addr).itl(n, STALE_TIME)
        served[n]["ITLFile.tlv"] = current
        if src_ctl is not None:
            served[n]["CTLFile.tlv"] = src_ctl
    dst_ctl = dst_tl.ctl() if c.dst_shape.mode == "mixed" else None
    too_large = "dest-itl-too-large" in c.uses
    for n in ("dst-pub", "dst-sub1"):
        served[n]["ITLFile.tlv"] = dst_tl.itl(n, extra=too_large)
        if dst_ctl is not None:
            served[n]["CTLFile.tlv"] = dst_ctl
    for f in c.scenario.faults:
        if f.name == "dest-node-mismatch" and f.node:
            served[f.node]["CTLFile.tlv"] = dst_tl.ctl(MISMATCH_TIME)
        elif f.name in ("dest-itl-invalid", "dest-ctl-invalid") and f.node:
            fname = "ITLFile.tlv" if f.name == "dest-itl-invalid" else "CTLFile.tlv"
            how = break_signature if f.param("how") == "signature" else truncate_half
            served[f.node][fname] = how(served[f.node][fname])
    return _TrustFiles(served, variants, src_ctl)


def _before_regeneration(c: _Clusters) -> tuple[ClusterPki, ClusterPki]:
    """The source's certificates as a stale phone last saw them, for its CTL and for its ITL:
    the CTL's CallManager certificates before they were regenerated (before 12.0 the
    publisher's also signed the CTL then), the ITL's TVS certificates before theirs were; each
    with a key of its own. ITLRecovery, which signs from 12.0 on, stays (it outlives
    regenerations: that is its purpose)."""
    src = c.src
    org = "Lab Source"
    old_cm = {n: _cert(c.keys, f"source/{n}/CallManager-before", c.src_shape.key, n, org, "Voice") for n in src.cm}
    old_tvs = {n: _cert(c.keys, f"source/{n}/TVS-before", "rsa2048", n, org, "Voice TVS") for n in src.tvs}
    for_ctl = ClusterPki(
        src.cluster, src.shape, cm=old_cm, tvs=dict(src.tvs), ec=dict(src.ec), capf=src.capf, itlrec=src.itlrec
    )
    for_itl = ClusterPki(
        src.cluster, src.shape, cm=dict(src.cm), tvs=old_tvs, ec=dict(src.ec), capf=src.capf, itlrec=src.itlrec
    )
    return for_ctl, for_itl


# -- the fleet ---------------------------------------------------------------------------------


def _fleet(scenario: Scenario, seed: str, count: int) -> list[Phone]:
    """The phones, each with its phone fault if it drew one."""
    rng = random.Random(hashlib.sha256(f"{seed}/fleet".encode()).digest())
    fleet = _make_phones(rng, count, scenario.base)
    _assign_phone_faults(scenario, seed, fleet)
    return fleet


@dataclass(frozen=True, slots=True)
class _ConfigSigners:
    """Who signs each TFTP node's SEP<MAC>.cnf.xml.sgn files."""

    src: dict[str, Signer]
    dst: dict[str, Signer]
    retired: dict[str, Signer]  # the destination's retired CallManager keys (dest-config-signer-unknown)
    src_digest: Digest
    dst_digest: Digest


def _config_signers(c: _Clusters) -> _ConfigSigners:
    retired: dict[str, Signer] = {}
    if "dest-config-signer-unknown" in c.uses:
        for n in ("dst-pub", "dst-sub1"):
            retired[n] = _signer(
                _cert(
                    c.keys, f"destination/{n}/CallManager-retired", c.dst_shape.key, n, "Lab Destination", "Voice"
                )
            )
    return _ConfigSigners(
        src={n: _signer(c.src.cm[n]) for n in ("src-pub", "src-sub1")},
        dst={n: _signer(c.dst.cm[n]) for n in ("dst-pub", "dst-sub1")},
        retired=retired,
        src_digest=_digest(c.src_shape),
        dst_digest=_digest(c.dst_shape),
    )


def _write_phone_files(
    tftp_dir: Path, c: _Clusters, trust: _TrustFiles, fleet: list[Phone]
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Every phone's signed config on the nodes that serve it and its per-phone trust-list
    overrides; the phones' records for lab.json and each node's ConfigFileCacheList.txt entries."""
    signers = _config_signers(c)
    cache: dict[str, list[str]] = {n.name: ["XMLDefault.cnf.xml"] for n in c.nodes}
    phone_records: list[dict[str, Any]] = []
    for p in fleet:
        src_xml, dst_xml = _config_xml(c, p)
        fname = f"{p.name}.cnf.xml"
        for n in ("src-pub", "src-sub1"):
            _write_signed_config(tftp_dir / n, fname, src_xml, signers.src[n], signers.src_digest)
            cache[n].append(fname)
        if p.fault != "dest-not-provisioned":
            for n in ("dst-pub", "dst-sub1"):
                signer = signers.retired[n] if p.fault == "dest-config-signer-unknown" else signers.dst[n]
                _write_signed_config(tftp_dir / n, fname, dst_xml, signer, signers.dst_digest)
                cache[n].append(fname)
        _write_phone_trust_overrides(tftp_dir, p, trust)
        phone_records.append(_phone_record(c, p, trust.src_ctl is not None))
    return phone_records, cache


def _config_xml(c: _Clusters, p: Phone) -> tuple[bytes, bytes]:
    """The phone's SEP<MAC>.cnf.xml on the source and on the destination (same device, same
    random identifiers drawn from the phone's own seed; different call manager group and TVS)."""
    prng = random.Random(f"{c.seed}/{p.name}")
    pool_name, _, members, _ = SRC_POOLS[p.pool]
    web = "1" if p.fault == "web-access-off" else "0"
    common = {
        "ctiid": 10000 + p.index,
        "uuid": _uuid(prng),
        "ssh": p.ssh,
        "pool_uuid": _uuid(prng),
        "dts_uuid": _uuid(prng),
        "pool": pool_name,
        "label": p.ext,
        "ext": p.ext,
        "desc": p.description,
        "load": p.load,
        "web": web,
        "stamp": f"{FILE_TIME}-{_uuid(prng)}",
        "user": p.user,
    }
    tvs_members = () if p.fault == "tvs-not-configured" else members
    src_xml = _CONFIG.format(
        cmg=f"CMG-{pool_name[3:]}",
        members=_members(members, {**{k: v.address for k, v in c.src_tvs.items()}, **c.addr}),
        tvs=_tvs_xml(tvs_members, c.src_tvs),
        cm0=c.addr.get(members[0], c.src_tvs[members[0]].address),
        **common,
    ).encode()
    dst_members = ("dst-pub", "dst-sub1")
    dst_xml = _CONFIG.format(
        cmg="CMG-DEST",
        members=_members(dst_members, c.addr),
        tvs=_tvs_xml(dst_members, c.dst_tvs),
        cm0=c.addr["dst-pub"],
        **common,
    ).encode()
    return src_xml, dst_xml


def _write_signed_config(node_dir: Path, fname: str, xml: bytes, signer: Signer, digest: Digest) -> None:
    _write(
        node_dir / f"{fname}.sgn",
        build_signed_file(signer, xml, filename=f"{fname}.sgn", digest=digest, timestamp=FILE_TIME),
    )


def _write_phone_trust_overrides(tftp_dir: Path, p: Phone, trust: _TrustFiles) -> None:
    """The per-phone ITLSEP/CTLSEP files with a broken signature the source serves a phone with
    the phone-src-itl-invalid or phone-src-ctl-invalid fault."""
    for n in ("src-pub", "src-sub1"):
        if p.fault == "phone-src-itl-invalid":
            _write(tftp_dir / n / f"ITLSEP{p.mac}.tlv", break_signature(trust.served[n]["ITLFile.tlv"]))
        if p.fault == "phone-src-ctl-invalid" and trust.src_ctl is not None:
            _write(tftp_dir / n / f"CTLSEP{p.mac}.tlv", break_signature(trust.src_ctl))


def _phone_record(c: _Clusters, p: Phone, src_mixed: bool) -> dict[str, Any]:
    """The phone as lab.json describes it to `lab serve`: its web page's state and the trust lists it holds."""
    pool_name, _, members, tftp = SRC_POOLS[p.pool]
    primary = tftp[0]
    itl_variant = (
        f"src-itl-old:{primary}"
        if p.fault in ("phone-stale-itl", "phone-trust-update-failed")
        else f"src-itl:{primary}"
    )
    ctl_variant = None
    if src_mixed:
        ctl_variant = "src-ctl-old" if p.fault == "phone-stale-ctl" else "src-ctl"
    # An unregistered phone (phone-unregistered) is powered off or unplugged: nothing answers.
    web_state = {"web-access-off": "off", "phone-web-stall": "stall", "phone-unregistered": "off"}.get(
        p.fault or "", "on"
    )
    # The shape of its web pages (scanner/lab/pages.py): one phone in ten each serves only the XML
    # pages, the DX-series per-interface labels, or its CTL/ITL lines on a separate security page;
    # the rest the 8841 HTML. By index, so that any lab of ten phones has every kind. The answer
    # key does not depend on it: each kind shows the same facts.
    pages = {3: "xml", 5: "dx", 7: "security-page"}.get(p.index % 10, "html")
    return {
        "name": p.name,
        "mac": p.mac,
        "model": p.model,
        "ip": p.ip,
        "pool": pool_name,
        "description": p.description,
        "user": p.user,
        "ext": p.ext,
        "load": p.load,
        "web": web_state,
        "pages": pages,
        "ctl": ctl_variant,
        "itl": itl_variant,
        "tftp": [c.addr[t] for t in tftp],
        "cms": [c.src_tvs[m].address if m not in c.addr else c.addr[m] for m in members],
        "status": "failed" if p.fault == "phone-trust-update-failed" else "ok",
        "fault": p.fault,
    }


# -- node files, trust stores, PKI, lab.json ---------------------------------------------------


def _write_node_files(
    tftp_dir: Path, c: _Clusters, served: dict[str, dict[str, bytes]], cache: dict[str, list[str]]
) -> None:
    """Each TFTP node's trust lists, XMLDefault.cnf.xml and ConfigFileCacheList.txt."""
    for node in c.nodes:
        nd = tftp_dir / node.name
        for fname, data in served[node.name].items():
            _write(nd / fname, data)
        members = ("src-pub", "src-sub1") if node.cluster == "source" else ("dst-pub", "dst-sub1")
        _write(nd / "XMLDefault.cnf.xml", _XMLDEFAULT.format(members=_members(members, c.addr)).encode())
        _write(nd / "ConfigFileCacheList.txt", ("\n".join(cache[node.name]) + "\n").encode())


def _write_trust_stores(d: Path, c: _Clusters) -> dict[str, dict[str, str]]:
    """Each cluster's trust stores as exported (PEM files: what it imported from the other
    cluster); their directories, relative to ``d``, for the profile. The source's are missing
    with the trust-store-missing fault."""
    stores = {
        "source": _store_contents(c.dst, c.dst_shape, c.src_shape.import_method, c.scenario),
        "destination": _store_contents(c.src, c.src_shape, c.dst_shape.import_method, c.scenario, reverse=True),
    }
    trust_rel: dict[str, dict[str, str]] = {"source": {}, "destination": {}}
    for cluster, by_store in stores.items():
        if cluster == "source" and "trust-store-missing" in c.uses:
            continue
        for store, certs in by_store.items():
            _pem_files(d / "trust" / cluster / store, certs)
            trust_rel[cluster][store] = f"trust/{cluster}/{store}"
    return trust_rel


def _write_pki(pki_dir: Path, c: _Clusters) -> dict[tuple[str, str], tuple[str, str]]:
    """The TVS servers' certificates and keys (a regenerated one for tvs-cert-not-in-itl), the lab
    MIC CA and a phone client certificate; each TVS's (certificate, key) paths for lab.json."""
    tvs_files: dict[tuple[str, str], tuple[str, str]] = {}
    for t in c.tvs_list:
        cluster, name = t.cluster, t.name
        tvs_cert = (c.src if cluster == "source" else c.dst).tvs[name]
        if cluster == "source" and any(
            f.name == "tvs-cert-not-in-itl" and f.node == name for f in c.scenario.faults
        ):
            tvs_cert = _cert(
                c.keys, f"{cluster}/{name}/TVS-regenerated", "rsa2048", name, "Lab Source", "Voice TVS"
            )
        base = pki_dir / cluster
        base.mkdir(parents=True, exist_ok=True)
        _write(base / f"{name}-tvs.pem", tvs_cert.pem)
        _write(base / f"{name}-tvs.key", _key_pem(tvs_cert))
        tvs_files[(cluster, name)] = (f"pki/{cluster}/{name}-tvs.pem", f"pki/{cluster}/{name}-tvs.key")
    mic_ca = _cert(c.keys, "mic-ca", "secp256r1", "Cisco Manufacturing CA (lab)", "Lab", "MIC", ca=True)
    phone_cert = _cert(c.keys, "phone-mic", "secp256r1", "CP-8841-SEP000000000000", "Lab", "MIC", issuer=mic_ca)
    _write(pki_dir / "mic-ca.pem", mic_ca.pem)
    _write(pki_dir / "phone.pem", phone_cert.pem)
    _write(pki_dir / "phone.key", _key_pem(phone_cert))
    return tvs_files


# -- the publishers' AXL and RisPort70 ----------------------------------------------------------

API_CA = "pki/api-ca.pem"


def _secret_path(cluster: str) -> str:
    return f"secrets/{cluster}-axl.password"


def _publishers(nodes: list[Node]) -> dict[str, str]:
    """Each cluster's publisher address: its first TFTP node's (where AXL and RisPort70 answer)."""
    out: dict[str, str] = {}
    for n in nodes:
        out.setdefault(n.cluster, n.address)
    return out


def _write_api_pki(pki_dir: Path, c: _Clusters) -> dict[str, tuple[str, str]]:
    """The API CA and each publisher's tomcat certificate, signed by it and valid for the
    publisher's address only (SAN IP); each cluster's (certificate, key) paths for lab.json. EC
    P-256 keys: CUCM offers tomcat-ECDSA too, and a seeded RSA key costs seconds per build."""
    ca_key = c.keys.key("api-ca", "secp256r1")
    ca = CertAndKey(
        make_ca_cert(ca_key, common_name="trustscan lab API CA", organization="Lab", serial=serial_for(c.keys.seed, "api-ca")),
        ca_key,
    )
    _write(pki_dir / "api-ca.pem", ca.pem)
    out: dict[str, tuple[str, str]] = {}
    for cluster, address in _publishers(c.nodes).items():
        key = c.keys.key(f"{cluster}/tomcat", "secp256r1")
        org = "Lab Source" if cluster == "source" else "Lab Destination"
        cert = make_server_cert(
            key,
            common_name=address,
            organization=org,
            unit="Voice tomcat",
            serial=serial_for(c.keys.seed, f"{cluster}/tomcat"),
            issuer=ca,
            addresses=(address,),
        )
        base = pki_dir / cluster
        base.mkdir(parents=True, exist_ok=True)
        tomcat = CertAndKey(cert, key)
        _write(base / "tomcat.pem", tomcat.pem)
        _write(base / "tomcat.key", _key_pem(tomcat))
        out[cluster] = (f"pki/{cluster}/tomcat.pem", f"pki/{cluster}/tomcat.key")
    return out


def _password(seed: str, label: str) -> str:
    """A 20-character password drawn from the build's seed (the same lab, the same password)."""
    rng = random.Random(hashlib.sha256(f"{seed}/{label}".encode()).digest())
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%+-.=@_"
    return "".join(rng.choice(alphabet) for _ in range(20))


def _axl_passwords(c: _Clusters) -> dict[str, str]:
    return {cluster: _password(c.seed, f"axl-password/{cluster}") for cluster in ("source", "destination")}


def _write_secrets(d: Path, c: _Clusters, passwords: dict[str, str]) -> None:
    """Each cluster's password file (owner-only, as a real secret would be kept); for the
    cluster the axl-wrong-password fault names, a password the publisher does not know."""
    wrong = {str(f.param("cluster")) for f in c.scenario.uses("axl-wrong-password")}
    (d / "secrets").mkdir()
    for cluster, password in passwords.items():
        text = _password(c.seed, f"axl-password-wrong/{cluster}") if cluster in wrong else password
        path = d / _secret_path(cluster)
        path.touch(mode=0o600)
        path.write_text(text + "\n", encoding="utf-8")


def _cucm_json(
    c: _Clusters, cluster: str, fleet: list[Phone], tomcat: tuple[str, str], password: str
) -> dict[str, Any]:
    """One cluster's database as its publisher's AXL and RisPort70 tell it (``scanner.lab.cucm_api``;
    the layout is in docs/lab.md). Nodes are named by address, as many real clusters name them;
    each TVS server is a node of its own with the TVS service (a lab simplification: on a real
    cluster TVS runs on the TFTP/call-processing nodes)."""
    shape = c.src_shape if cluster == "source" else c.dst_shape
    publisher = _publishers(c.nodes)[cluster]
    nodes: list[dict[str, Any]] = [
        {"name": n.address, "publisher": n.address == publisher, "tftp": True, "tvs": False}
        for n in c.nodes
        if n.cluster == cluster
    ]
    nodes += [{"name": t.address, "publisher": False, "tftp": False, "tvs": True} for t in c.tvs_list if t.cluster == cluster]
    rollback = cluster == "source" and "src-rollback" in c.uses
    per_minute = RISPORT_PER_MINUTE
    if cluster == "source":
        for f in c.scenario.uses("risport-rate-limit"):
            per_minute = int(f.param("per_minute"))
    delay = 0.0
    for f in c.scenario.uses("axl-slow"):
        if f.node is not None and c.addr.get(f.node) == publisher:
            delay = float(f.param("delay"))
    return {
        "publisher": publisher,
        "port": DEFAULT_PORTS["axl"],
        "cert": tomcat[0],
        "key": tomcat[1],
        "ca": API_CA,
        "users": {AXL_USER: password},
        "versions": list(versions_for_release(shape.version)),
        "params": {
            "ClusterSecurityMode": "1" if shape.mode == "mixed" else "0",
            "RollBackToPreGrayback": "T" if rollback else "F",
        },
        "per_minute": per_minute,
        "delay": delay,
        "nodes": nodes,
        "devices": [device_json(d) for d in _devices(c, fleet)] if cluster == "source" else [],
    }


def _devices(c: _Clusters, fleet: list[Phone]) -> list[LabDevice]:
    """The source's phones as its database and nodes know them: registered with their pool's
    TFTP Server 1 (its call-processing node here) at their own address; phone-failover: now on
    the pool's second node, an older UnRegistered entry on the first; phone-unregistered:
    UnRegistered, with a last-known address that is another phone's by now (even index) or its
    own old one (odd)."""
    out = []
    n = len(fleet)
    for p in fleet:
        pool_name, _, _, tftp = SRC_POOLS[p.pool]
        model = "Cisco " + p.model.removeprefix("CP-")
        node, failed_over_from = c.addr[tftp[0]], None
        status, addresses, stamp = "Registered", (p.ip,), FILE_TIME + 3600 + p.index
        if p.fault == "phone-failover":
            node, failed_over_from = c.addr[tftp[1]], c.addr[tftp[0]]
        elif p.fault == "phone-unregistered":
            status, stamp = "UnRegistered", FILE_TIME - 3 * 86400 + p.index
            if p.index % 2 == 0 and n > 1:
                addresses = (fleet[(p.index + 1) % n].ip,)
        out.append(
            LabDevice(
                p.name,
                description=p.description,
                model=model,
                model_enum=model_enum(model),
                protocol="SIP",
                device_pool=pool_name,
                security_profile=f"{model} - Standard SIP Non-Secure Profile",
                owner=p.user,
                node=node,
                status=status,
                addresses=addresses,
                timestamp=stamp,
                failed_over_from=failed_over_from,
                active_load=p.load,
            )
        )
    return out


def _lab_json(
    c: _Clusters,
    count: int,
    variants: dict[str, bytes],
    phone_records: list[dict[str, Any]],
    tvs_files: dict[tuple[str, str], tuple[str, str]],
    cucm: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """What `lab serve` loads: nodes, addresses, ports, faults, phones; each cluster's database."""
    faults_by_node = _transport_faults_by_node(c.scenario)
    return {
        "format": LAB_FORMAT,
        "scenario": c.scenario.name,
        "seed": c.seed,
        "phones_count": count,
        "web_port": DEFAULT_PORTS["web"],
        "clusters": {
            cluster: {**_cluster_json(c, cluster, shape, faults_by_node, tvs_files), "cucm": cucm[cluster]}
            for cluster, shape in (("source", c.src_shape), ("destination", c.dst_shape))
        },
        "mic_ca": "pki/mic-ca.pem",
        "trust_variants": {k: _page_facts(v) for k, v in variants.items()},
        "phones": phone_records,
    }


def _cluster_json(
    c: _Clusters,
    cluster: str,
    shape: ClusterShape,
    faults_by_node: dict[str, dict[str, Any]],
    tvs_files: dict[tuple[str, str], tuple[str, str]],
) -> dict[str, Any]:
    """One cluster in lab.json: its TFTP nodes with their transport faults, its TVS servers."""
    return {
        "mode": shape.mode,
        "version": shape.version,
        "transport": shape.transport,
        "tftp": [
            {
                "name": n.name,
                "address": n.address,
                "tftp_port": n.tftp_port,
                "http_port": n.http_port,
                "dir": f"tftp/{n.name}",
                "faults": faults_by_node.get(n.name, {}),
            }
            for n in c.nodes
            if n.cluster == cluster
        ],
        "tvs": [
            {
                "name": t.name,
                "address": t.address,
                "port": t.port,
                "cert": tvs_files[(cluster, t.name)][0],
                "key": tvs_files[(cluster, t.name)][1],
                "down": any(f.name == "tvs-down" and f.node == t.name for f in c.scenario.faults)
                and cluster == "source",
            }
            for t in c.tvs_list
            if t.cluster == cluster
        ],
    }


def _transport_faults_by_node(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """The transport faults (node-dead, node-loss, ...) each TFTP node injects, with their parameters."""
    faults_by_node: dict[str, dict[str, Any]] = {}
    for f in scenario.faults:
        if f.definition.check == "transport" and f.node:
            entry = faults_by_node.setdefault(f.node, {})
            entry[f.name] = {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in [(p.name, f.param(p.name)) for p in f.definition.params]
            }
    return faults_by_node


def _key_pem(c: CertAndKey) -> bytes:
    return c.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _store_contents(
    other: ClusterPki, other_shape: ClusterShape, method: str, scenario: Scenario, *, reverse: bool = False
) -> dict[str, list[CertAndKey]]:
    """What an administrator imported from the other cluster (bulk = method 1, manual = method 2).

    Bulk (Cisco doc 215539): CallManager and ITLRecovery -> Phone-SAST-trust and CallManager-trust,
    CAPF -> CallManager-trust. Manual (doc 213407): CallManager of every TFTP node ->
    CallManager-trust and Phone-SAST-trust; ITLRecovery -> Phone-SAST-trust.
    """
    assert other.itlrec is not None and other.capf is not None
    cms = list(other.cm.values())
    sast = [*cms, other.itlrec]
    cmt = [*cms, other.itlrec, other.capf] if method == "bulk" else list(cms)
    uses = {f.name for f in scenario.faults}
    if reverse:
        if "no-rollback-path" in uses:
            sast = []
        return {"CallManager-trust": cmt, "Phone-SAST-trust": sast}
    modern = other_shape.major >= 12.0
    if "itlrecovery-not-imported" in uses:
        sast = [c for c in sast if c is not other.itlrec]
        cmt = [c for c in cmt if c is not other.itlrec]
    for f in scenario.faults:
        if f.name == "dest-node-cert-not-imported" and f.node:
            gone = other.cm[f.node]
            sast = [c for c in sast if c is not gone]
            cmt = [c for c in cmt if c is not gone]
    if "dest-signer-not-phone-sast" in uses:
        signers = [other.itlrec] if modern else cms
        sast = [c for c in sast if all(c is not s for s in signers)]
        cmt = cmt + [s for s in signers if all(s is not c for c in cmt)]
    return {"CallManager-trust": cmt, "Phone-SAST-trust": sast}


def _profile(
    scenario: Scenario,
    src: ClusterShape,
    dst: ClusterShape,
    nodes: list[Node],
    tvs: list[Tvs],
    trust: dict[str, dict[str, str]],
) -> str:
    """profile.toml: each cluster's publisher AXL (which lists the nodes and, for the source, the
    phones); a node is written by hand only where the scenario gives it ports other than the
    ones discovered nodes get (``discovered_ports``): a hand-written node wins over the one AXL
    lists at its address."""
    over = dict(scenario.nodes)
    publishers = _publishers(nodes)
    clusters: dict[str, Any] = {}
    for cluster, shape in (("source", src), ("destination", dst)):
        table: dict[str, Any] = {"mode": shape.mode, "version": shape.version, "transport": shape.transport}
        if trust[cluster]:
            table["trust_stores"] = tomlw.Inline(trust[cluster])
        table["discovered_ports"] = tomlw.Inline(
            {"tftp": DEFAULT_PORTS["tftp"], "http": DEFAULT_PORTS["http"], "tvs": DEFAULT_PORTS["tvs"]}
        )
        table["axl"] = {
            "host": publishers[cluster],
            "port": DEFAULT_PORTS["axl"],
            "user": AXL_USER,
            "password_file": _secret_path(cluster),
            "ca_bundle": API_CA,
            "risport_per_minute": RISPORT_PER_MINUTE,
        }
        hand_tftp = [
            {"name": n.name, "address": n.address, "tftp_port": n.tftp_port, "http_port": n.http_port}
            for n in nodes
            if n.cluster == cluster and (o := over.get(n.name)) is not None and (o.tftp_port or o.http_port)
        ]
        hand_tvs = [
            {"name": t.name, "address": t.address, "port": t.port}
            for t in tvs
            if t.cluster == cluster and (o := over.get(t.name)) is not None and o.port
        ]
        if hand_tftp:
            table["tftp"] = hand_tftp
        if hand_tvs:
            table["tvs"] = hand_tvs
        clusters[cluster] = table
    doc = {"clusters": clusters, "phones": {"web_port": DEFAULT_PORTS["web"], "web_scheme": "http"}}
    header = (
        f"# trustscan lab profile: scenario {scenario.name!r}. Written by `trustscan lab build`;\n"
        "# the nodes come from each publisher's AXL (`trustscan lab serve` answers it on port "
        f"{DEFAULT_PORTS['axl']}, loopback only).\n"
        "# profile-manual.toml is the same lab with every node by hand, for `--inventory inventory.csv`.\n"
    )
    return header + tomlw.dumps(doc)


def _profile_manual(
    scenario: Scenario,
    src: ClusterShape,
    dst: ClusterShape,
    nodes: list[Node],
    tvs: list[Tvs],
    trust: dict[str, dict[str, str]],
) -> str:
    """profile-manual.toml: every TFTP and TVS node by hand and no AXL (the profile of a site
    whose publisher trustscan may not ask: phones from ``--inventory inventory.csv``)."""
    clusters: dict[str, Any] = {}
    for cluster, shape in (("source", src), ("destination", dst)):
        table: dict[str, Any] = {"mode": shape.mode, "version": shape.version, "transport": shape.transport}
        if trust[cluster]:
            table["trust_stores"] = tomlw.Inline(trust[cluster])
        table["tftp"] = [
            {"name": n.name, "address": n.address, "tftp_port": n.tftp_port, "http_port": n.http_port}
            for n in nodes
            if n.cluster == cluster
        ]
        table["tvs"] = [
            {"name": t.name, "address": t.address, "port": t.port} for t in tvs if t.cluster == cluster
        ]
        clusters[cluster] = table
    doc = {"clusters": clusters, "phones": {"web_port": DEFAULT_PORTS["web"], "web_scheme": "http"}}
    header = (
        f"# trustscan lab profile: scenario {scenario.name!r}, nodes by hand (no AXL discovery: use\n"
        "# with --inventory inventory.csv). Written by `trustscan lab build`;\n"
        "# `trustscan lab serve` serves exactly these addresses and ports (loopback only).\n"
    )
    return header + tomlw.dumps(doc)


def _inventory(phones: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(
        [
            "Device Name",
            "Description",
            "Device Type",
            "Device Pool",
            "IP Address",
            "Directory Number 1",
            "Owner User ID",
        ]
    )
    for p in phones:
        w.writerow(
            [
                p["name"],
                p["description"],
                "Cisco " + p["model"].removeprefix("CP-"),
                p["pool"],
                # A real export has no address for a phone that is not registered.
                "" if p["fault"] == "phone-unregistered" else p["ip"],
                p["ext"],
                p["user"],
            ]
        )
    return buf.getvalue()
