"""AXL (CUCM's Administrative XML API), read-only and sans-IO: the phone list, the cluster's nodes
and the services they run, and the two enterprise parameters that readiness check C3 cares about.

Which operation. Everything is one operation, ``executeSQLQuery``, because it is the one that
AXL schemas 10.5 to 15.0 all answer the same way: ``listPhone``'s returned tags differ between
schema versions (the owner, the security profile), while the tables queried here (``device``,
``typemodel``, ``typedeviceprotocol``, ``devicepool``, ``securityprofile``, ``enduser``,
``processnode``, ``processnodeservice``, ``typeservice``, ``processconfig``) and their columns are
the same in every version. Answers come back as ``<row>`` elements whose children are named by
the (lower-cased) column names; an empty element is an empty value.

Paging. AXL refuses an answer above 8 MB ("Query request too large. Total rows matched: N rows.
Suggestive Row Fetch: less than M rows"), so the phone list is read in pages with Informix's
``SELECT SKIP n FIRST m`` in name order. A page of 1,000 rows is about 300 KB; when a cluster's
answer is refused anyway, the next page asks for half of what the fault suggests.

Versions. A CUCM release accepts a few schema versions (15 takes 15.0, 14.0, 12.5 and 12.0; 10.5
takes 10.0 down to 9.0); an unsupported one is answered with HTTP 599 and "Incorrect axl version.
Supported axl versions are ...". ``supported_versions`` reads that list so the caller can retry
once with the highest version listed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from scanner.core.cucm.soap import SoapFault, children, envelope, local_name
from scanner.core.errors import ParseError

__all__ = [
    "DEFAULT_VERSION",
    "PAGE_ROWS",
    "AxlPhone",
    "ClusterNode",
    "ClusterSettings",
    "Fault",
    "classify_fault",
    "next_page_rows",
    "node_service_query",
    "nodes_from_rows",
    "phone_page_query",
    "phones_from_rows",
    "rows",
    "settings_from_rows",
    "settings_query",
    "sql_request",
    "supported_versions",
]

# The schema version asked for first: CUCM 12.5, 14 and 15 all accept 12.5; 10.5 and 11.5 answer
# 599 with their list and the caller retries once with the highest version in it.
DEFAULT_VERSION = "12.5"
PAGE_ROWS = 1000
# A page is never asked smaller than this: a cluster whose rows are so large that 50 do not fit
# in 8 MB has something wrong that paging will not fix.
MIN_PAGE_ROWS = 50

SERVICE_TFTP = "Cisco Tftp"
SERVICE_TVS = "Cisco Trust Verification Service"
# The pseudo-node that holds the enterprise-wide settings; it is not a server.
ENTERPRISE_NODE = "EnterpriseWideData"
PARAM_SECURITY_MODE = "ClusterSecurityMode"  # 0 non-secure, 1 mixed mode
# "Prepare Cluster for Rollback to pre-8.0" (8.0's code name was Grayback).
PARAM_ROLLBACK = "RollBackToPreGrayback"

_VERSION = re.compile(r"^\d{1,2}\.\d$")
_SUPPORTED = re.compile(r"supported\s+axl\s+versions?([^<\n]*)", re.IGNORECASE)
_VERSION_TOKEN = re.compile(r"\b\d{1,2}\.(?:\d|x)\b")
_TOO_LARGE = re.compile(r"suggest\w*\s+row\s+fetch:?\s*less\s+than\s*(\d+)", re.IGNORECASE)

# Selected columns → the names ``AxlPhone`` gives them. Aliases are lower case because AXL
# answers with lower-cased names whatever the query says.
_PHONE_COLUMNS = ("name", "description", "model", "protocol", "devicepool", "securityprofile", "owner")


def sql_request(sql: str, version: str = DEFAULT_VERSION) -> tuple[bytes, str]:
    """The request body and its SOAPAction header value for one ``executeSQLQuery``."""
    if not _VERSION.match(version):
        raise ValueError(f"not an AXL schema version: {version!r} (e.g. 12.5)")
    body = f"<ns:executeSQLQuery><sql>{escape(sql)}</sql></ns:executeSQLQuery>"
    data = envelope(body, prefix="ns", namespace=f"http://www.cisco.com/AXL/API/{version}")
    return data, f'"CUCM:DB ver={version} executeSQLQuery"'


def phone_page_query(skip: int, first: int) -> str:
    """One page of the cluster's phones (device class 1), in name order, with the names of their
    model, protocol, device pool, security profile and owner (empty when unset)."""
    if skip < 0 or first < 1:
        raise ValueError(f"bad page: skip {skip}, first {first}")
    return (
        f"SELECT SKIP {skip} FIRST {first} d.name, d.description, tm.name AS model, "
        "tdp.name AS protocol, dp.name AS devicepool, sp.name AS securityprofile, eu.userid AS owner "
        "FROM device d "
        "LEFT JOIN typemodel tm ON tm.enum = d.tkmodel "
        "LEFT JOIN typedeviceprotocol tdp ON tdp.enum = d.tkdeviceprotocol "
        "LEFT JOIN devicepool dp ON dp.pkid = d.fkdevicepool "
        "LEFT JOIN securityprofile sp ON sp.pkid = d.fksecurityprofile "
        "LEFT JOIN enduser eu ON eu.pkid = d.fkenduser "
        "WHERE d.tkclass = 1 ORDER BY d.name"
    )


def node_service_query() -> str:
    """Every CUCM node of the cluster with each TFTP or TVS service activated on it (one row per
    node and service; a node with neither comes back once with an empty service)."""
    return (
        "SELECT pn.name AS node, pn.tknodeusage AS usage, ts.name AS service "
        "FROM processnode pn "
        "LEFT JOIN processnodeservice pns ON pns.servername = pn.name AND pns.isactive = 't' "
        f"AND pns.tkservice IN (SELECT enum FROM typeservice WHERE name IN ('{SERVICE_TFTP}', '{SERVICE_TVS}')) "
        "LEFT JOIN typeservice ts ON ts.enum = pns.tkservice "
        f"WHERE pn.name != '{ENTERPRISE_NODE}' AND pn.tkprocessnoderole = 1 ORDER BY pn.name"
    )


def settings_query() -> str:
    return (
        "SELECT paramname, paramvalue FROM processconfig "
        f"WHERE paramname IN ('{PARAM_SECURITY_MODE}', '{PARAM_ROLLBACK}')"
    )


def rows(answer: Element, *, what: str) -> list[dict[str, str]]:
    """The rows of an ``executeSQLQueryResponse``: column name (lower case) → text ("" if empty)."""
    if local_name(answer.tag) != "executeSQLQueryResponse":
        raise ParseError(f"{what}: expected executeSQLQueryResponse, got <{local_name(answer.tag)}>")
    ret = next(children(answer, "return"), None)
    if ret is None:
        raise ParseError(f"{what}: executeSQLQueryResponse without <return>")
    return [
        {local_name(col.tag).lower(): (col.text or "").strip() for col in row}
        for row in children(ret, "row")
    ]


@dataclass(frozen=True, slots=True)
class AxlPhone:
    name: str
    description: str = ""
    model: str = ""  # "Cisco 8861"
    protocol: str = ""  # "SIP" / "SCCP"
    device_pool: str = ""
    security_profile: str = ""
    owner: str = ""


def phones_from_rows(found: Sequence[dict[str, str]]) -> tuple[list[AxlPhone], list[str]]:
    """Phones from rows of ``phone_page_query``, and warnings: a column this AXL version did not
    return (its field stays empty), a row without a name (skipped)."""
    warnings: list[str] = []
    phones: list[AxlPhone] = []
    missing = sorted({c for r in found for c in _PHONE_COLUMNS if c not in r} - {"name"}) if found else []
    if missing:
        warnings.append(f"AXL answered without the column(s) {', '.join(missing)}: left empty")
    for r in found:
        name = r.get("name", "")
        if not name:
            warnings.append("AXL returned a phone row without a name: skipped")
            continue
        phones.append(
            AxlPhone(
                name=name.upper(),
                description=r.get("description", ""),
                model=r.get("model", ""),
                protocol=r.get("protocol", ""),
                device_pool=r.get("devicepool", ""),
                security_profile=r.get("securityprofile", ""),
                owner=r.get("owner", ""),
            )
        )
    return phones, warnings


@dataclass(frozen=True, slots=True)
class ClusterNode:
    name: str  # the node's name in CUCM: the host name or address its phones use
    publisher: bool
    tftp: bool
    tvs: bool


def nodes_from_rows(found: Sequence[dict[str, str]]) -> list[ClusterNode]:
    by_name: dict[str, dict[str, bool]] = {}
    for r in found:
        name = r.get("node", "")
        if not name or name == ENTERPRISE_NODE:
            continue
        n = by_name.setdefault(name, {"publisher": False, "tftp": False, "tvs": False})
        n["publisher"] |= r.get("usage", "") == "0"  # tknodeusage 0 = Publisher, 1 = Subscriber
        n["tftp"] |= r.get("service", "") == SERVICE_TFTP
        n["tvs"] |= r.get("service", "") == SERVICE_TVS
    return [ClusterNode(name, **flags) for name, flags in by_name.items()]


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """What AXL says of the cluster's security; None where the parameter was not found."""

    mixed_mode: bool | None
    rollback_to_pre_8: bool | None


def settings_from_rows(found: Sequence[dict[str, str]]) -> ClusterSettings:
    values = {r.get("paramname", "").lower(): r.get("paramvalue", "").strip().lower() for r in found}
    mode = values.get(PARAM_SECURITY_MODE.lower())
    rollback = values.get(PARAM_ROLLBACK.lower())
    return ClusterSettings(
        mixed_mode=None if mode is None else mode == "1",
        rollback_to_pre_8=None if rollback is None else rollback in ("t", "true", "1", "yes"),
    )


@dataclass(frozen=True, slots=True)
class Fault:
    """What an AXL fault means for the caller."""

    kind: str  # "too_large" (ask a smaller page), "busy" (retry later), "error"
    message: str
    suggested_rows: int | None = None


def classify_fault(fault: SoapFault) -> Fault:
    text = f"{fault.message} {fault.detail}"
    if "query request too large" in text.lower():
        m = _TOO_LARGE.search(text)
        return Fault("too_large", fault.message, int(m.group(1)) if m else None)
    if "maximum axl memory allocation consumed" in text.lower():
        return Fault("busy", fault.message)
    return Fault("error", fault.message or fault.code)


def next_page_rows(current: int, fault: Fault) -> int | None:
    """The page size to ask after a "too large" fault; None when paging cannot help."""
    target = (fault.suggested_rows or current) // 2
    target = min(target, current // 2)
    return target if target >= MIN_PAGE_ROWS else None


def supported_versions(text: str) -> list[str]:
    """The schema versions an HTTP 599 answer lists ("... Supported axl versions are 12.x, 14.0
    and 15.0"), highest first; ``x`` wildcards become ``.5`` and ``.0`` both."""
    m = _SUPPORTED.search(text)
    if not m:
        return []
    found: set[str] = set()
    for token in _VERSION_TOKEN.findall(m.group(1)):
        found |= {token[:-1] + "5", token[:-1] + "0"} if token.endswith("x") else {token}
    return sorted(found, key=lambda v: tuple(int(p) for p in v.split(".")), reverse=True)
