"""Which TVS addresses the scanner may contact (pure: no I/O).

A phone's source config names its TVS servers (``<TVS><members>``), and C4 needs each one's
certificate. But a config is fetched data: an attacker who can plant or alter one must not be able
to make the scanner connect anywhere (the guide: the scanner "contacts only what the profile
names"). So an address from a config is probed only when

* it is a TVS member of the profile (``[[clusters.source.tvs]]``; those are probed anyway), or
* it matches the cluster's ``tvs_allow`` list **and** the config that names it is signed by a
  TFTP (or CCM+TFTP) record of the source's own CTL/ITL: a config whose signature fails, or an
  unsigned one, is never a source of targets.

Anything else is recorded with the address and the config that named it (``TVS_OUTSIDE_PROFILE``)
and never contacted. Host names are compared as written and never resolved here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from enum import StrEnum

from scanner.core.errors import ParseError
from scanner.core.profile import Cluster
from scanner.core.trustlist import Role, parse
from scanner.core.verify import TrustStore, verify

__all__ = ["Scope", "config_signed_by", "scope_of"]

TFTP_ROLES = frozenset({Role.TFTP, Role.CCM_TFTP})


class Scope(StrEnum):
    MEMBER = "member"  # a TVS member of the profile
    ALLOWED = "allowed"  # in tvs_allow: probed if a correctly signed config names it
    OUTSIDE = "outside"  # never contacted


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower().rstrip(".") == b.lower().rstrip(".")


def scope_of(cluster: Cluster, address: str, port: int) -> Scope:
    if any(t.port == port and _same_address(t.address, address) for t in cluster.tvs):
        return Scope.MEMBER
    if any(a.allows(address, port) for a in cluster.tvs_allow):
        return Scope.ALLOWED
    return Scope.OUTSIDE


def config_signed_by(
    name: str, config: bytes, lists: Sequence[bytes], *, signed_digest: bytes | None = None
) -> str | None:
    """None when ``config`` (a ``.cnf.xml.sgn``) is signed by a TFTP record of one of the trust
    ``lists``; else why not, in a few words. ``signed_digest``: the digest of the original signed
    message when ``config`` is the redacted copy kept as evidence."""
    if not name.lower().endswith(".sgn"):
        return "unsigned config"
    ders: set[bytes] = set()
    for data in lists:
        try:
            tf = parse(data)
        except ParseError:
            continue
        if not verify(tf, []).valid:
            continue  # a list that does not verify vouches for nobody
        ders |= {r.certificate for r in tf.records if r.role in TFTP_ROLES and r.certificate}
    if not ders:
        return "no source CTL/ITL with TFTP records to check its signature against"
    try:
        tf = parse(config, name_hint=name)
    except ParseError as exc:
        return f"signed header unreadable: {exc}"
    store = TrustStore.from_files("source TFTP records", [(f"record {i}", d) for i, d in enumerate(sorted(ders))])
    v = verify(tf, [store], signed_digest=signed_digest)
    return None if v.valid else f"signature not verified ({v.reason})"
