"""The fuzz targets: one function per parser of untrusted bytes, each with the one exception it
declares (or none: "never raises"), and the seeds each starts from.

Shared by ``fuzz/fuzz_parsers.py`` (the runner: a stdlib mutation loop, or atheris) and by
``tests/test_crash_corpus.py`` (which replays every crasher kept under ``tests/data/crashers``).
Anything a target raises that is not its declared exception is a bug.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from fuzz.tvs_targets import tvs_message, tvs_responder, tvs_seeds
from scanner.app.inspection import inspect_bytes, outcome, render_text
from scanner.core.cucm import axl, risport
from scanner.core.cucm.soap import SoapFault, parse_response
from scanner.core.devconfig import parse_device_config, redact_config_xml
from scanner.core.errors import ParseError
from scanner.core.filechecks import file_findings
from scanner.core.inventory import parse_config_cache_list, parse_inventory, read_config_cache_list
from scanner.core.phonepage import parse_phone_page
from scanner.core.tftp.packets import decode
from scanner.core.tls_sniffer import CertificateSniffer
from scanner.core.trustcache import INTERNAL_ERROR, TrustFileCache
from scanner.core.trustlist import parse, serialize
from scanner.core.verify import TrustStore, verify

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT.parent / "shared" / "vectors"
CRASHERS = ROOT / "tests" / "data" / "crashers"
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)

# A small cache per process: inspect must not be judged on a cached answer to an earlier input
# with the same hash (impossible), but the cache path itself is part of what inspect runs.
_CACHE = TrustFileCache(max_entries=64)


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    run: Callable[[bytes], object]
    declared: tuple[type[BaseException], ...]  # () = must never raise
    seeds: Callable[[], list[bytes]]


def _trust_list(data: bytes) -> None:
    """verify(parse(x)), its findings, and the round trip: what a scan does with a served list."""
    tf = parse(data, name_hint="ITLFile.tlv")
    assert serialize(tf) == data, "a parsed file must serialize back to its bytes"
    v = verify(tf)
    file_findings(tf, v, NOW)
    for rc in v.records:  # the facts must be usable as they are reported
        if rc.facts is not None:
            rc.facts.not_after.isoformat()


def _signed_file(data: bytes) -> None:
    tf = parse(data, name_hint="SEP001122334455.cnf.xml.sgn")
    assert serialize(tf) == data, "a parsed file must serialize back to its bytes"
    file_findings(tf, verify(tf), NOW)


def _inspect(data: bytes) -> None:
    """``trustscan inspect --json`` and its text view, lenient and strict: never raises."""
    for strict in (False, True):
        report = inspect_bytes(data, "ITLFile.tlv", now=NOW, strict=strict, cache=_CACHE)
        reason = report.get("signature", {}).get("reason", "")
        assert INTERNAL_ERROR not in reason, reason  # the cache's last guard hid a bug
        orjson.dumps(report)
        render_text(report)
        outcome([report])


def _trust_store(data: bytes) -> None:
    TrustStore.from_files("fuzz", [("f.pem" if b"-----BEGIN" in data else "f.der", data)])


def _soap(data: bytes) -> None:
    """An AXL or RisPort70 answer, read as discovery reads it: ParseError or data, nothing else."""
    answer = parse_response(data, what="fuzz")
    if isinstance(answer, SoapFault):
        axl.classify_fault(answer)
        risport.is_rate_limited(answer)
        return
    name = answer.tag.rsplit("}", 1)[-1]
    if name == "executeSQLQueryResponse":
        axl.phones_from_rows(axl.rows(answer, what="fuzz"))
    else:
        risport.merge(risport.parse_select(answer, what="fuzz").registrations)


def _tls_sniffer(data: bytes) -> None:
    """The server->client stream, fed whole and then in uneven chunks: never raises."""
    whole = CertificateSniffer()
    whole.feed(data)
    split = CertificateSniffer()
    step = 1 + (data[0] % 7 if data else 0)
    for i in range(0, len(data), step):
        split.feed(data[i : i + step])
    # Chunking must not change what was read.
    assert (whole.certificates, whole.client_cert_requested, whole.version) == (
        split.certificates,
        split.client_cert_requested,
        split.version,
    ) or whole.stopped or split.stopped


def _cache_list(data: bytes) -> None:
    names = parse_config_cache_list(data)
    assert names == read_config_cache_list(data).names
    assert all(len(n) == 15 for n in names)


def _inventory(data: bytes) -> None:
    parse_inventory(data)


# --- Seeds: real files and real-sized lab files ----------------------------------------------


def _files(folder: Path, *suffixes: str) -> list[bytes]:
    if not folder.is_dir():
        return []
    return [p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name.endswith(suffixes)]


def _lab() -> Path | None:
    """A lab built by ``trustscan lab build`` (``FUZZ_LAB=DIR``): real-sized ITLs, CTLs, signed
    configs, cache lists and inventories signed with real keys."""
    import os

    lab = os.environ.get("FUZZ_LAB")
    return Path(lab) if lab and Path(lab).is_dir() else None


def _crashers(name: str) -> list[bytes]:
    return _files(CRASHERS / name, "")


def _tiny_header() -> bytes:
    return b"\x01\x00\x02\x01\x02\x02\x00\x02\x00\x0a"


def trust_seeds() -> list[bytes]:
    seeds = [_tiny_header(), *_files(VECTORS / "trust-lists", ".tlv")]
    lab = _lab()
    if lab is not None:
        by_hash = {s: None for s in _files(lab / "tftp", ".tlv")}  # a lab repeats files per node
        seeds += list(by_hash)
    return seeds + _crashers("trust_list") + _crashers("inspect")


def signed_seeds() -> list[bytes]:
    lab = _lab()
    seeds = [_tiny_header()]
    if lab is not None:
        seeds += _files(lab / "tftp", ".sgn")[:20]
    return seeds + _crashers("signed_file")


def cert_seeds() -> list[bytes]:
    lab = _lab()
    seeds = [b"\x30\x03\x02\x01\x01"]
    if lab is not None:
        seeds += _files(lab / "trust", ".pem", ".der")[:20]
    return seeds + _crashers("trust_store")


def soap_seeds() -> list[bytes]:
    return _files(ROOT / "tests" / "data" / "cucm", ".xml") + _crashers("soap")


def _tls_flight(der: bytes) -> bytes:
    """A TLS 1.2 server flight in plaintext: ServerHello, Certificate, CertificateRequest."""

    def record(body: bytes) -> bytes:
        return b"\x16\x03\x03" + len(body).to_bytes(2, "big") + body

    def message(mtype: int, body: bytes) -> bytes:
        return bytes([mtype]) + len(body).to_bytes(3, "big") + body

    hello = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x35" + b"\x00"
    entry = len(der).to_bytes(3, "big") + der
    certs = len(entry).to_bytes(3, "big") + entry
    request = b"\x01\x01" + b"\x00\x00" + b"\x00\x00"
    flight = message(2, hello) + message(11, certs) + message(13, request) + message(14, b"")
    # Split the handshake across two records, as servers do with large chains.
    return record(flight[:700]) + record(flight[700:])


def tls_seeds() -> list[bytes]:
    lab = _lab()
    ders = [bytes(600)]
    if lab is not None:
        ders = [d for d in _files(lab / "trust", ".der")[:3]] or ders
    return [_tls_flight(d) for d in ders] + [b"\x15\x03\x03\x00\x02\x02\x74"] + _crashers("tls_sniffer")


def cache_list_seeds() -> list[bytes]:
    seeds = [
        b"SEP001122334455.cnf.xml 4711 2024-01-01\r\nXMLDefault.cnf.xml 100\n/tmp/SEPAAAAAAAAAAAA.cnf.xml\n",
    ]
    lab = _lab()
    if lab is not None:
        seeds += _files(lab / "tftp", "ConfigFileCacheList.txt")[:2]
    return seeds + _crashers("cache_list")


def inventory_seeds() -> list[bytes]:
    seeds = [b"Device Name,Description,IP Address\nSEP001122334455,Lab,10.0.0.1\n"]
    lab = _lab()
    if lab is not None and (lab / "inventory.csv").is_file():
        seeds.append((lab / "inventory.csv").read_bytes())
    return seeds + _crashers("inventory")


def _config_seeds() -> list[bytes]:
    return [b"<device><TVS><members/></TVS></device>", *_files(ROOT / "tests" / "data" / "configs", ".xml")]


def _page_seeds() -> list[bytes]:
    return _files(VECTORS / "phone-pages", ".html") or [b"<html><body>ITL File</body></html>"]


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("trust_list", _trust_list, (ParseError,), trust_seeds),
        Target("inspect", _inspect, (), trust_seeds),
        Target("signed_file", _signed_file, (ParseError,), signed_seeds),
        Target("trust_store", _trust_store, (), cert_seeds),
        Target("soap", _soap, (ParseError,), soap_seeds),
        Target("tls_sniffer", _tls_sniffer, (), tls_seeds),
        Target("cache_list", _cache_list, (), cache_list_seeds),
        Target("inventory", _inventory, (ParseError,), inventory_seeds),
        Target("device_config", parse_device_config, (ParseError,), _config_seeds),
        Target("redact_config", redact_config_xml, (ParseError,), _config_seeds),
        Target("phone_page", parse_phone_page, (ParseError,), _page_seeds),
        Target("tftp_packet", decode, (ParseError,), lambda: [b"\x00\x03\x00\x01data", *_crashers("tftp_packet")]),
        Target("tvs_message", tvs_message, (ParseError,), lambda: tvs_seeds() + _crashers("tvs_message")),
        Target("tvs_responder", tvs_responder, (), lambda: tvs_seeds() + _crashers("tvs_responder")),
    )
}


def run_one(target: Target, data: bytes) -> None:
    """Run ``target`` on ``data``: its declared exception is fine, anything else propagates."""
    with contextlib.suppress(*target.declared):  # no declared exception: suppresses nothing
        target.run(data)
