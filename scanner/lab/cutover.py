"""``trustscan lab cutover``: move phones of a *served* lab to the destination and run each one's
side of the cutover (``scanner.lab.phone_sim``) with real bytes: the destination's files over
HTTP 6970, the source TVS over TLS with the phone's client certificate.

The result is a state overlay in the lab directory, read by the phone web pages of ``lab
serve`` (``Overlay``)::

    state/phones.json       {"format": 1, "variants": {name: page facts},
                             "phones": {device: {ctl, itl, tftp, outcome, reason,
                                                 status_lines, console}}}
    state/lists/<sha1>.tlv  the bytes of each trust list a phone now holds (a second cutover,
                            e.g. back to the source, starts from them)

Written atomically (a temporary file renamed over the old one), merged with the phones an
earlier cutover moved. A new list's variant name is ``sha1:<hex>``.

What the phone holds before its first move is named by lab.json's variant; its bytes are found
among the lab's served trust lists by the variant's SHA-1 (the page facts carry it). The stale
variants of the ``phone-stale-*`` faults are on no node (the builder keeps them in memory): the
current list with the same records stands in for their decisions (``_Lists.held``); a variant
with no such stand-in cannot be simulated: the phone is reported ``unsimulated`` and not moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import ssl
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from scanner.core.devconfig import tvs_addresses
from scanner.core.errors import ParseError
from scanner.core.trustlist import parse
from scanner.core.tvs.codec import Framer, Message, encode, query_request
from scanner.lab.build import HELD_LISTS, SHA512_UNSUPPORTED, _page_facts
from scanner.lab.errors import LabError
from scanner.lab.overlay import LISTS_DIR, STATE_FILE, STATE_FORMAT
from scanner.lab.phone_sim import (
    Download,
    Held,
    PhoneResult,
    QueryAnswer,
    TvsContact,
    query_key,
    run_phone,
    signers_to_ask,
)
from scanner.lab.serve import load_lab

__all__ = ["CutoverSummary", "cutover", "select_phones"]

DEFAULT_CONCURRENCY = 32
# The seed's phone had its TVS answer 4 ms after the query; a lab under load gets more.
TVS_TIMEOUT = 10.0
HTTP_TIMEOUT = 15.0
UNSIMULATED = "unsimulated"


@dataclass(frozen=True, slots=True)
class CutoverSummary:
    counts: Mapping[str, int]
    problems: tuple[str, ...]  # phones not simulated, with the reason


def select_phones(lab: Mapping[str, Any], *, pool: str | None = None, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The phones a cutover moves: a device pool, named devices (every name must exist), or all."""
    phones: list[dict[str, Any]] = list(lab["phones"])
    if pool is not None:
        chosen = [p for p in phones if p.get("pool") == pool]
        if not chosen:
            pools = sorted({str(p.get("pool")) for p in phones})
            raise LabError(f"no phone in device pool {pool!r} (pools: {', '.join(pools)})")
        return chosen
    if names is not None:
        wanted = [n.strip() for n in names if n.strip() and not n.strip().startswith("#")]
        by_name = {p["name"]: p for p in phones}
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
            raise LabError(f"the lab has no phone named {', '.join(unknown[:5])}{more}")
        return [by_name[n] for n in dict.fromkeys(wanted)]
    return phones


def _read_state(d: Path) -> dict[str, Any]:
    path = d / STATE_FILE
    if not path.is_file():
        return {"format": STATE_FORMAT, "variants": {}, "phones": {}}
    try:
        state: dict[str, Any] = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise LabError(f"{path}: not valid JSON: {exc}") from None
    if state.get("format") != STATE_FORMAT:
        raise LabError(f"{path}: state format {state.get('format')!r}, expected {STATE_FORMAT}")
    return state


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class _Lists:
    """Trust-list bytes by SHA-1: every CTL/ITL the lab's nodes serve, and the overlay's."""

    def __init__(self, d: Path, lab: Mapping[str, Any]) -> None:
        self.d = d
        self.by_sha1: dict[str, bytes] = {}
        for cluster in lab["clusters"].values():
            for node in cluster["tftp"]:
                for f in (d / node["dir"]).glob("*.tlv"):
                    data = f.read_bytes()
                    self.by_sha1.setdefault(hashlib.sha1(data).hexdigest(), data)
        for lists in (d / HELD_LISTS, d / LISTS_DIR):
            if lists.is_dir():
                for f in lists.glob("*.tlv"):
                    self.by_sha1.setdefault(f.stem, f.read_bytes())

    def held(self, variant: str | None, variants: Mapping[str, Any]) -> tuple[bool, bytes | None]:
        """(known, bytes) of a variant: (True, None) for "no list"; (False, None) when the lab
        has no bytes with the variant's SHA-1 (a lab built before ``HELD_LISTS`` existed)."""
        if not variant:
            return True, None
        facts = variants.get(variant)
        if not facts:
            return False, None
        data = self.by_sha1.get(str(facts["sha1"]))
        return data is not None, data


def _node_of(lab: Mapping[str, Any], address: str) -> dict[str, Any] | None:
    for cluster in lab["clusters"].values():
        for node in cluster["tftp"]:
            if node["address"] == address:
                return dict(node)
    return None


def _current_config(d: Path, lab: Mapping[str, Any], phone: Mapping[str, Any], state: Mapping[str, Any]) -> bytes | None:
    """The config the phone runs now: from the first node of its TFTP servers that has one."""
    for address in phone["tftp"]:
        node = _node_of(lab, address)
        if node is None:
            continue
        for fname in (f"{phone['name']}.cnf.xml.sgn", f"{phone['name']}.cnf.xml"):
            path: Path = d / node["dir"] / fname
            if path.is_file():
                data = path.read_bytes()
                if fname.endswith(".sgn"):
                    try:
                        payload: bytes = parse(data, name_hint=fname).payload
                        return payload
                    except ParseError:
                        return None
                return data
    return None


def _phone_ssl(d: Path) -> ssl.SSLContext:
    # The phone checks the server certificate itself, against its ITL's TVS records
    # (phone_sim): the handshake takes whatever the server presents.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(d / "pki" / "phone.pem", d / "pki" / "phone.key")
    return ctx


async def _contact(
    address: str, port: int, ctx: ssl.SSLContext, device: str, questions: list[tuple[bytes, str, str]]
) -> TvsContact:
    try:
        async with asyncio.timeout(TVS_TIMEOUT):
            reader, writer = await asyncio.open_connection(address, port, ssl=ctx)
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        return TvsContact(address, port, None, f"{type(exc).__name__}: {exc}")
    answers: dict[tuple[bytes, str], QueryAnswer] = {}
    server_cert: bytes | None = None
    try:
        sslobj = writer.get_extra_info("ssl_object")
        server_cert = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        framer = Framer()
        async with asyncio.timeout(TVS_TIMEOUT):
            for session, (serial, subject, issuer) in enumerate(questions, start=1):
                writer.write(encode(query_request(session, device, subject, issuer, serial)))
                await writer.drain()
                got: list[Message] = []
                while not got:
                    data = await reader.read(65536)
                    if not data:
                        break
                    got = framer.feed(data)
                if not got:
                    break
                m = got[0]
                answers[query_key(serial, issuer)] = QueryAnswer(m.status, m.certificate, m.roles or ())
    except (OSError, ssl.SSLError, TimeoutError, ParseError):
        pass  # the questions left unanswered stay so: the phone sees no answer
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return TvsContact(address, port, server_cert, None if server_cert else "no server certificate", answers)


async def _get(session: aiohttp.ClientSession, node: Mapping[str, Any], name: str) -> bytes | None:
    url = f"http://{node['address']}:{node['http_port']}/{name}"
    async with session.get(url) as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        data: bytes = await resp.read()
        return data


def option150(lab: Mapping[str, Any], phone: Mapping[str, Any], *, failover: bool = False) -> list[dict[str, Any]]:
    """The destination TFTP nodes the phone is given at cutover, in its option 150 order.

    Sites spread their phones over the TFTP nodes with the order of option 150 per DHCP scope;
    the lab does the same with the destination as with the source: a phone whose source list
    starts at the source's k-th TFTP node starts at the destination's k-th (DP-EAST's phones
    start at a subscriber on both). So a fault on one destination node reaches the phones that
    use it first, not all of them or none. ``failover``: the phone's first node does not answer
    it (down, or unreachable from its site), so it starts at the next one; the oracle cuts over
    both ways, since the scan's prediction holds for any node a phone may use (C5)."""
    nodes = list(lab["clusters"]["destination"]["tftp"])
    src = [n["address"] for n in lab["clusters"]["source"]["tftp"]]
    first = phone["tftp"][0] if phone.get("tftp") else None
    k = src.index(first) if first in src else 0
    k = (k + int(failover)) % max(1, len(nodes))
    return nodes[k:] + nodes[:k]


async def _download(
    session: aiohttp.ClientSession, lab: Mapping[str, Any], phone: Mapping[str, Any], failover: bool
) -> Download:
    dst = lab["clusters"]["destination"]
    mixed = dst["mode"] == "mixed"
    last: Exception | None = None
    mac = phone["mac"]
    for node in option150(lab, phone, failover=failover):  # the first that answers
        try:
            ctl, ctl_name = None, "CTLFile.tlv"
            if mixed:
                for ctl_name in (f"CTLSEP{mac}.tlv", "CTLFile.tlv"):
                    ctl = await _get(session, node, ctl_name)
                    if ctl is not None:
                        break
            itl, itl_name = None, "ITLFile.tlv"
            for itl_name in (f"ITLSEP{mac}.tlv", "ITLFile.tlv"):
                itl = await _get(session, node, itl_name)
                if itl is not None:
                    break
            config = await _get(session, node, f"{phone['name']}.cnf.xml.sgn")
            return Download(ctl, itl, config, node["address"], ctl_name, itl_name)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            last = exc
    raise LabError(f"{phone['name']}: no destination TFTP node answered over HTTP: {last}")


def _stamp(now: dt.datetime, i: int) -> tuple[str, str]:
    t = now + dt.timedelta(milliseconds=37 * i)
    status = t.strftime("%I:%M:%S").lstrip("0") + ("a" if t.hour < 12 else "p")
    console = t.strftime("%b %d %H:%M:%S.") + f"{t.microsecond:06d}"
    return status, console


async def _one(
    d: Path, lab: Mapping[str, Any], phone: Mapping[str, Any], state: Mapping[str, Any], lists: _Lists,
    session: aiohttp.ClientSession, ctx: ssl.SSLContext, variants: Mapping[str, Any], now: dt.datetime,
    failover: bool,
) -> PhoneResult | str:
    known_ctl, ctl = lists.held(phone["ctl"], variants)
    known_itl, itl = lists.held(phone["itl"], variants)
    if not (known_ctl and known_itl):
        missing = phone["ctl"] if not known_ctl else phone["itl"]
        return f"{phone['name']}: the bytes of the list it holds ({missing}) are not in the lab"
    download = await _download(session, lab, phone, failover)
    config = _current_config(d, lab, phone, state)
    members = tvs_addresses(config) if config is not None else ()
    device = f"{phone['model']}-{phone['name']}"
    questions = signers_to_ask(download)
    contacts = [await _contact(a, p, ctx, device, questions) for a, p in members] if questions else []
    sha512 = phone["model"] not in SHA512_UNSUPPORTED
    return run_phone(phone["name"], Held(ctl, itl), download, contacts, sha512=sha512, now=now)


async def cutover(
    directory: str | Path, *, pool: str | None = None, names: Iterable[str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY, now: dt.datetime | None = None, failover: bool = False,
) -> CutoverSummary:
    """Run the selected phones' cutover against the served lab in ``directory``; write the overlay."""
    d, lab = load_lab(directory)
    state = _read_state(d)
    phones = select_phones(lab, pool=pool, names=names)
    variants = {**lab["trust_variants"], **state["variants"]}
    overlaid = [{**p, **state["phones"].get(p["name"], {})} for p in phones]
    lists = _Lists(d, lab)
    ctx = _phone_ssl(d)
    now = now or dt.datetime.now(dt.UTC)
    sem = asyncio.Semaphore(max(1, concurrency))
    results: dict[str, PhoneResult | str] = {}
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def run(p: dict[str, Any]) -> None:
            async with sem:
                try:
                    results[p["name"]] = await _one(d, lab, p, state, lists, session, ctx, variants, now, failover)
                except LabError as exc:
                    results[p["name"]] = str(exc)

        async with asyncio.TaskGroup() as tg:
            for p in overlaid:
                tg.create_task(run(p))

    counts: Counter[str] = Counter()
    problems: list[str] = []
    new_variants: dict[str, Any] = dict(state["variants"])
    for p in overlaid:
        got = results[p["name"]]
        if isinstance(got, str):
            counts[UNSIMULATED] += 1
            problems.append(got)
            continue
        r = got
        counts[r.outcome.value] += 1
        dst_tftp = [n["address"] for n in option150(lab, p, failover=failover)]
        entry: dict[str, Any] = {"outcome": r.outcome.value, "reason": r.reason, "tftp": dst_tftp}
        for what, data in (("ctl", r.ctl), ("itl", r.itl)):
            if data is None:
                entry[what] = None
                continue
            sha1 = hashlib.sha1(data).hexdigest()
            name = next(
                (k for k, v in variants.items() if v and v.get("sha1") == sha1), f"sha1:{sha1}"
            )
            if name not in variants and name not in new_variants:
                new_variants[name] = _page_facts(data)
                path = d / LISTS_DIR / f"{sha1}.tlv"
                if not path.exists():
                    _atomic_write(path, data)
            entry[what] = name
        entry["status_lines"] = [f"{_stamp(now, i)[0]} {t}" for i, t in enumerate(r.status_lines)]
        entry["console"] = [
            f"{3280 + i} {line[:3]} {_stamp(now, i)[1]} {line[4:]}" for i, line in enumerate(r.console)
        ]
        state["phones"][p["name"]] = entry
    state["variants"] = new_variants
    _atomic_write(d / STATE_FILE, orjson.dumps(state, option=orjson.OPT_SORT_KEYS))
    return CutoverSummary(dict(counts), tuple(problems))
