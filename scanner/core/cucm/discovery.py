"""The inventory a cluster gives: AXL's phone list ∪ RisPort70's registrations ∪ an optional CSV.

* AXL says which phones exist (name, description, model, device pool, ...).
* RisPort70 says where each one is: its address while it is registered. A phone that is not
  registered gets no address (the last one a node saw may belong to another phone by now) and a
  reason that says so, which the report shows for its phone-side evidence.
* The CSV, when given, fills and overrides: a non-empty cell wins over what the cluster said (the
  user's correction); a phone in the CSV but not in the cluster is kept, with a warning, since the
  user asked for it.

Two phones at one address are both kept and the address is named in a warning: one of the two
records is stale, and judging a phone by another phone's pages is what must never happen, so the
collector's page check (the page must name the phone's own MAC) settles which one it is.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from scanner.core.cucm.axl import AxlPhone, ClusterNode
from scanner.core.cucm.risport import Registration
from scanner.core.inventory import Inventory, Phone, normalise_device_name
from scanner.core.profile import Cluster, TftpNode, TvsNode, is_valid_host

__all__ = ["Discovery", "combine", "complete_cluster"]


@dataclass(frozen=True, slots=True)
class Discovery:
    phones: tuple[Phone, ...]
    # Why a phone has no address, by name (not registered, not listed by RisPort70).
    no_address: Mapping[str, str]
    warnings: tuple[str, ...]
    registered: int  # phones with an address from RisPort70


def _when(timestamp: int) -> str:
    if timestamp <= 0:
        return "at an unknown time"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _no_address_reason(reg: Registration | None) -> str:
    if reg is None:
        return "not registered: RisPort70 lists no registration for it"
    last = f", last seen at {reg.addresses[0]}" if reg.addresses else ""
    return f"not registered: RisPort70 says {reg.status} on {reg.node or 'no node'} since {_when(reg.timestamp)}{last}"


def _from_cluster(p: AxlPhone, reg: Registration | None) -> Phone:
    return Phone(
        name=p.name,
        description=p.description or None,
        device_type=p.model or None,
        ip=reg.address if reg is not None else None,
        device_pool=p.device_pool or None,
        no_address=None if reg is not None and reg.address is not None else _no_address_reason(reg),
    )


def _overridden(phone: Phone, row: Phone) -> Phone:
    return replace(
        phone,
        description=row.description or phone.description,
        device_type=row.device_type or phone.device_type,
        ip=row.ip or phone.ip,
        device_pool=row.device_pool or phone.device_pool,
        line=row.line,
        no_address=None if (row.ip or phone.ip) else phone.no_address,
    )


def combine(
    cluster: str,
    axl_phones: Sequence[AxlPhone],
    registrations: Mapping[str, Registration],
    csv: Inventory | None = None,
) -> Discovery:
    """The phones of ``cluster`` (its name, for the warnings) in AXL's order, then the CSV's own."""
    warnings: list[str] = []
    phones: dict[str, Phone] = {}
    not_mac = 0
    for p in axl_phones:
        try:
            name = normalise_device_name(p.name)
        except ValueError:
            not_mac += 1  # Jabber (CSF), Spark (BOT), ...: no CTL/ITL of their own on TFTP
            continue
        if name in phones:
            warnings.append(f"cluster {cluster}: AXL listed {name} twice: kept once")
            continue
        phones[name] = _from_cluster(replace(p, name=name), registrations.get(name))
    if not_mac:
        warnings.append(f"cluster {cluster}: {not_mac} device(s) of class Phone are not MAC-based (no CTL/ITL): skipped")
    for row in csv.phones if csv is not None else ():
        if row.name in phones:
            phones[row.name] = _overridden(phones[row.name], row)
        else:
            warnings.append(f"cluster {cluster}: {row.name} (inventory line {row.line}) is not in the cluster's phone list: kept")
            phones[row.name] = row
    for name, ph in phones.items():
        if ph.ip is None and ph.no_address is None:
            phones[name] = replace(ph, no_address="no IP address in the inventory, and the cluster does not list it")
    no_address = {name: ph.no_address or "" for name, ph in phones.items() if ph.ip is None}
    by_address: dict[str, list[str]] = defaultdict(list)
    for name, ph in phones.items():
        if ph.ip is not None:
            by_address[ph.ip].append(name)
    for address, names in by_address.items():
        if len(names) > 1:
            warnings.append(f"cluster {cluster}: {len(names)} phones have the address {address}: {', '.join(names)}")
    registered = sum(1 for name in phones if (r := registrations.get(name)) is not None and r.address is not None)
    return Discovery(tuple(phones.values()), no_address, tuple(warnings), registered)


def _same_host(a: str, b: str) -> bool:
    return a.lower().rstrip(".") == b.lower().rstrip(".")


def complete_cluster(cluster: Cluster, nodes: Sequence[ClusterNode]) -> tuple[Cluster, tuple[str, ...]]:
    """``cluster`` with the TFTP and TVS nodes AXL lists added, at the profile's
    ``discovered_ports``; and warnings. A node the profile names by hand (matched by its address
    or its name) stays as written: the user may know a port or an address AXL cannot tell. The
    node's CUCM name is the host name or address its phones use, so it is both the name and the
    address here."""
    warnings: list[str] = []
    ports = cluster.discovered_ports
    tftp = list(cluster.tftp)
    tvs = list(cluster.tvs)

    def known(host: str, hand: Sequence[TftpNode] | Sequence[TvsNode]) -> bool:
        return any(_same_host(host, n.address) or _same_host(host, n.name) for n in hand)

    usable_tftp = 0
    for node in nodes:
        if not is_valid_host(node.name):
            warnings.append(f"cluster {cluster.name}: AXL names a node {node.name!r} that is not a host name or address: skipped")
            continue
        usable_tftp += node.tftp
        if node.tftp and not known(node.name, cluster.tftp):
            tftp.append(TftpNode(node.name, node.name, ports.tftp, ports.http))
        if node.tvs and not known(node.name, cluster.tvs):
            tvs.append(TvsNode(node.name, node.name, ports.tvs))
    if not usable_tftp and cluster.axl is not None:
        warnings.append(f"cluster {cluster.name}: AXL lists no node running the TFTP service")
    return replace(cluster, tftp=tuple(tftp), tvs=tuple(tvs)), tuple(warnings)
