"""RisPort70 (CUCM's real-time information service), read-only and sans-IO: which node each phone
is registered to, its addresses, model and active load, from ``selectCmDeviceExt``.

Batches. One request names at most ``MAX_BATCH`` phones (the service answers at most 1,000
devices per response and truncates the rest, ``TotalDevicesFound`` still counting them).

Rate. The enterprise parameter "Allowed Device Queries Per Minute" (default 15, at most 18) is
shared by every RisPort client of the cluster; past it the answer is a SOAP fault "Exceeded
allowed rate for Reatime information" (Cisco's spelling). The caller paces itself with a token
bucket at ``DEFAULT_QUERIES_PER_MINUTE`` and, on that fault, waits and asks the same batch again.

Several nodes. The answer holds one ``CmNodes/item`` per node, and a phone that registered with
two nodes (after a fail-over) is listed by both, one Registered and one not: the entry with the
latest ``TimeStamp`` is the phone's state (``merge``). An unregistered entry still carries the
last address the node saw; trustscan does not use it as the phone's address (the address may
belong to another phone by now) but keeps it for the reason it gives.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from scanner.core.cucm.soap import SoapFault, child, children, envelope, local_name, text_of
from scanner.core.errors import ParseError

__all__ = [
    "DEFAULT_QUERIES_PER_MINUTE",
    "MAX_BATCH",
    "SOAP_ACTION",
    "Registration",
    "SelectAnswer",
    "batches",
    "is_rate_limited",
    "merge",
    "parse_select",
    "select_request",
]

NAMESPACE = "http://schemas.cisco.com/ast/soap"
SOAP_ACTION = '"selectCmDeviceExt"'
MAX_BATCH = 1000
DEFAULT_QUERIES_PER_MINUTE = 15.0
_RATE_FAULT = "exceeded allowed rate for rea"  # "...Reatime information" (sic) and "...Realtime"


def batches(names: Sequence[str], size: int = MAX_BATCH) -> Iterator[tuple[str, ...]]:
    if not 1 <= size <= MAX_BATCH:
        raise ValueError(f"batch size {size} outside 1..{MAX_BATCH}")
    for i in range(0, len(names), size):
        yield tuple(names[i : i + size])


def select_request(names: Sequence[str], *, state_info: str = "") -> bytes:
    """``selectCmDeviceExt`` for the phones ``names`` (at most ``MAX_BATCH``), on every node, any
    status, any protocol."""
    if not 1 <= len(names) <= MAX_BATCH:
        raise ValueError(f"a RisPort70 request names 1..{MAX_BATCH} devices, not {len(names)}")
    items = "".join(f"<soap:item><soap:Item>{escape(n)}</soap:Item></soap:item>" for n in names)
    body = (
        "<soap:selectCmDeviceExt>"
        f"<soap:StateInfo>{escape(state_info)}</soap:StateInfo>"
        "<soap:CmSelectionCriteria>"
        f"<soap:MaxReturnedDevices>{MAX_BATCH}</soap:MaxReturnedDevices>"
        "<soap:DeviceClass>Phone</soap:DeviceClass>"
        "<soap:Model>255</soap:Model>"  # 255: any model
        "<soap:Status>Any</soap:Status>"
        "<soap:NodeName></soap:NodeName>"
        "<soap:SelectBy>Name</soap:SelectBy>"
        f"<soap:SelectItems>{items}</soap:SelectItems>"
        "<soap:Protocol>Any</soap:Protocol>"
        "<soap:DownloadStatus>Any</soap:DownloadStatus>"
        "</soap:CmSelectionCriteria>"
        "</soap:selectCmDeviceExt>"
    )
    return envelope(body, prefix="soap", namespace=NAMESPACE)


@dataclass(frozen=True, slots=True)
class Registration:
    """One node's view of one phone."""

    name: str
    node: str
    status: str  # Registered, UnRegistered, Rejected, PartiallyRegistered, Unknown
    addresses: tuple[str, ...]  # IPv4 first, then IPv6, as the node listed them
    model: int | None = None  # the typemodel enum (255 = any/unknown)
    protocol: str = ""
    active_load: str = ""
    status_reason: int | None = None
    timestamp: int = 0  # epoch seconds of the node's last change for this phone
    description: str = ""

    @property
    def registered(self) -> bool:
        return self.status == "Registered"

    @property
    def address(self) -> str | None:
        """The address to reach the phone's web pages at: the first IPv4 address, else the first
        IPv6 one; None when the phone is not registered (see the module docstring)."""
        return self.addresses[0] if self.registered and self.addresses else None


@dataclass(frozen=True, slots=True)
class SelectAnswer:
    total_found: int
    registrations: tuple[Registration, ...]
    node_codes: tuple[tuple[str, str], ...]  # (node, ReturnCode) for every node listed
    state_info: str
    warnings: tuple[str, ...]


def is_rate_limited(fault: SoapFault) -> bool:
    return _RATE_FAULT in f"{fault.message} {fault.detail}".lower()


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _addresses(device: Element) -> tuple[list[str], list[str]]:
    """(usable addresses, IPv4 first; warnings for the ones that are not addresses)."""
    v4: list[str] = []
    v6: list[str] = []
    bad: list[str] = []
    holder = child(device, "IPAddress")
    for item in children(holder, "item") if holder is not None else ():
        raw = text_of(item, "IP")
        if not raw:
            continue
        try:
            ip = ipaddress.ip_address(raw.split("%", 1)[0])
        except ValueError:
            bad.append(raw[:60])
            continue
        (v4 if ip.version == 4 else v6).append(str(ip))
    return v4 + v6, bad


def parse_select(answer: Element, *, what: str) -> SelectAnswer:
    """Read a ``selectCmDeviceResponse`` (the answer to ``selectCmDeviceExt``)."""
    if local_name(answer.tag) not in ("selectCmDeviceResponse", "selectCmDeviceExtResponse"):
        raise ParseError(f"{what}: expected selectCmDeviceResponse, got <{local_name(answer.tag)}>")
    ret = child(answer, "selectCmDeviceReturn")
    result = child(ret, "SelectCmDeviceResult") if ret is not None else None
    if ret is None or result is None:
        raise ParseError(f"{what}: no selectCmDeviceReturn/SelectCmDeviceResult")
    total = _int(text_of(result, "TotalDevicesFound"))
    warnings: list[str] = []
    regs: list[Registration] = []
    codes: list[tuple[str, str]] = []
    nodes = child(result, "CmNodes")
    for node in children(nodes, "item") if nodes is not None else ():
        node_name = text_of(node, "Name")
        codes.append((node_name, text_of(node, "ReturnCode")))
        devices = child(node, "CmDevices")
        for dev in children(devices, "item") if devices is not None else ():
            name = text_of(dev, "Name").upper()
            if not name:
                warnings.append(f"{what}: a device without a name on node {node_name!r}: skipped")
                continue
            addresses, bad = _addresses(dev)
            warnings += [f"{what}: {name} on {node_name}: {b!r} is not an IP address" for b in bad]
            regs.append(
                Registration(
                    name=name,
                    node=node_name,
                    status=text_of(dev, "Status") or "Unknown",
                    addresses=tuple(addresses),
                    model=_int(text_of(dev, "Model")),
                    protocol=text_of(dev, "Protocol"),
                    active_load=text_of(dev, "ActiveLoadID"),
                    status_reason=_int(text_of(dev, "StatusReason")),
                    timestamp=_int(text_of(dev, "TimeStamp")) or 0,
                    description=text_of(dev, "Description"),
                )
            )
    state = child(ret, "StateInfo")
    return SelectAnswer(
        total_found=total if total is not None else len(regs),
        registrations=tuple(regs),
        node_codes=tuple(codes),
        state_info=(state.text or "") if state is not None else "",
        warnings=tuple(warnings),
    )


def merge(registrations: Iterable[Registration]) -> dict[str, Registration]:
    """Each phone's state: of the entries for one name, the one with the latest timestamp; at the
    same timestamp a Registered entry wins over one that is not (the node that holds the phone
    now has the fresher view)."""
    best: dict[str, Registration] = {}
    for r in registrations:
        seen = best.get(r.name)
        if seen is None or (r.timestamp, r.registered) > (seen.timestamp, seen.registered):
            best[r.name] = r
    return best
