"""``profile.toml``: the two clusters, their TFTP and TVS nodes, how to reach phones, politeness limits.

Pure: :func:`parse_profile` takes the file's bytes and the directory relative paths are resolved
against; :func:`load_profile` is the one convenience that reads a file. Every problem raises
``ParseError`` naming the key (``clusters.source.tftp[1].address``) and, when the TOML reader or
a cheap text search can tell, the line.

Format (the lab writes it; these keys are a contract)::

    [clusters.source]
    mode = "mixed"                      # "mixed" | "non-secure"
    version = "12.5"                    # optional
    transport = "http-first"            # "http-first" (default) | "tftp" | "http" | "both"
    trust_stores = { phone-sast-trust = "stores/src-phone-sast" }   # optional; dirs

    [[clusters.source.tftp]]
    name = "src-pub"
    address = "127.0.1.1"              # hostname or IP
    tftp_port = 69                     # optional
    http_port = 6970                   # optional

    [[clusters.source.tvs]]
    name = "src-pub"
    address = "127.0.1.1"
    port = 2445                        # optional

    [clusters.destination]  ...

    # Instead of (or beside) the node tables: the publisher's AXL, which lists the phones, the
    # nodes and their TFTP/TVS services (scanner.app.discover). A node given by hand still wins.
    [clusters.source.axl]
    host = "cucm-pub.example.com"
    user = "trustscan-ro"
    password_env = "TRUSTSCAN_SOURCE_AXL_PASSWORD"   # or password_file = "secrets/source.pw"
    ca_bundle = "tomcat-ca.pem"                      # or verify = false (warned at every run)
    # port = 8443, version = "12.5", risport_per_minute = 15, timeout = 60

    discovered_ports = { tftp = 69, http = 6970, tvs = 2445 }   # optional: the discovered nodes' ports

    [phones]
    web_port = 80                      # optional
    web_scheme = "http"                # optional: "http" | "https"

    [limits]                           # optional; see scanner.core.ratelimit.Limits for each default
    per_node_concurrency = 64
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from scanner.core.cucm.settings import AxlSettings
from scanner.core.errors import ParseError
from scanner.core.ratelimit import Limits
from scanner.core.sites import Site, site_name_problem

__all__ = [
    "CLUSTER_NAMES",
    "Cluster",
    "ClusterMode",
    "DiscoveredPorts",
    "PhoneAccess",
    "Profile",
    "TftpNode",
    "Transport",
    "TvsNode",
    "parse_profile",
]

# A profile is a hand-written page of TOML; 1 MiB is far beyond any real one and bounds what a
# mistaken path (a firmware image, a log) makes us read.
MAX_PROFILE_BYTES = 1 << 20
# DNS names are at most 253 characters (RFC 1035 §2.3.4); each label 63.
MAX_HOSTNAME = 253
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")

CLUSTER_NAMES = ("source", "destination")
DEFAULT_TFTP_PORT = 69
DEFAULT_HTTP_PORT = 6970  # CUCM serves the TFTP file set over HTTP here; phones try it first
DEFAULT_TVS_PORT = 2445
DEFAULT_WEB_PORT = 80
AXL_DEFAULT_PORT = 8443


class ClusterMode(StrEnum):
    MIXED = "mixed"
    NON_SECURE = "non-secure"


class Transport(StrEnum):
    """How the files of a cluster are fetched from each TFTP node.

    ``http-first``: HTTP 6970, then TFTP when HTTP gives no definite answer (what phones do).
    ``tftp`` / ``http``: only that one. ``both``: both, and the bytes are compared
    (``NODE_MISMATCH`` when they differ).
    """

    HTTP_FIRST = "http-first"
    TFTP = "tftp"
    HTTP = "http"
    BOTH = "both"


@dataclass(frozen=True, slots=True)
class TftpNode:
    name: str
    address: str
    tftp_port: int = DEFAULT_TFTP_PORT
    http_port: int = DEFAULT_HTTP_PORT


@dataclass(frozen=True, slots=True)
class TvsNode:
    name: str
    address: str
    port: int = DEFAULT_TVS_PORT


@dataclass(frozen=True, slots=True)
class DiscoveredPorts:
    """The ports of the nodes AXL lists (AXL names nodes, not ports): CUCM's own unless the
    profile says otherwise (a lab, or a node behind port translation)."""

    tftp: int = DEFAULT_TFTP_PORT
    http: int = DEFAULT_HTTP_PORT
    tvs: int = DEFAULT_TVS_PORT


@dataclass(frozen=True, slots=True)
class TvsAllow:
    """One ``tvs_allow`` entry: an address, network or host name, and the one port allowed."""

    text: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    host: str | None  # a host name, matched literally (never resolved)
    port: int

    def allows(self, address: str, port: int) -> bool:
        if port != self.port:
            return False
        if self.network is not None:
            try:
                return ipaddress.ip_address(address) in self.network
            except ValueError:
                return False
        return self.host is not None and address.lower().rstrip(".") == self.host


def parse_tvs_allow(text: str) -> TvsAllow | None:
    """``"10.1.1.0/24"``, ``"10.1.1.5:2446"``, ``"[::1]:2446"``, ``"tvs.example.com"``; None if not one."""
    t = text.strip()
    port = DEFAULT_TVS_PORT
    host = t
    if t.startswith("["):
        inner, sep, rest = t[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        host, tail = inner, rest[1:]
        if rest:
            if not tail.isdigit() or not 1 <= int(tail) <= 65535:
                return None
            port = int(tail)
    elif t.count(":") == 1:
        host, tail = t.split(":")
        if not tail.isdigit() or not 1 <= int(tail) <= 65535:
            return None
        port = int(tail)
    try:
        return TvsAllow(t, ipaddress.ip_network(host, strict=False), None, port)
    except ValueError:
        pass
    if "/" in host or not is_valid_host(host):
        return None
    return TvsAllow(t, None, host.lower().rstrip("."), port)


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str  # "source" or "destination"
    mode: ClusterMode
    version: str | None
    transport: Transport
    trust_stores: tuple[tuple[str, Path], ...]  # (store name, absolute directory)
    tftp: tuple[TftpNode, ...]
    tvs: tuple[TvsNode, ...]
    # TVS addresses that phones' configs may name beyond ``tvs`` and that the scanner may probe
    # (``scanner.core.tvs_targets``): IP addresses, networks ("10.1.1.0/24") or host names, each with
    # an optional port (":2446", "[::1]:2446"; default 2445).
    tvs_allow: tuple[TvsAllow, ...] = ()
    # The publisher's AXL/RisPort70 (None: nodes and phones only as the profile and inventory say).
    axl: AxlSettings | None = None
    discovered_ports: DiscoveredPorts = DiscoveredPorts()

    @property
    def mixed(self) -> bool:
        return self.mode is ClusterMode.MIXED


@dataclass(frozen=True, slots=True)
class PhoneAccess:
    web_port: int = DEFAULT_WEB_PORT
    web_scheme: str = "http"


@dataclass(frozen=True, slots=True)
class Profile:
    path: Path | None
    sha256: str  # of the profile file's bytes: the evidence records which profile produced it
    source: Cluster
    destination: Cluster
    phones: PhoneAccess
    limits: Limits
    sites: tuple[Site, ...] = ()  # [sites.NAME]: phones collected by a site's Dask worker (docs/sites.md)

    @property
    def clusters(self) -> tuple[Cluster, Cluster]:
        return (self.source, self.destination)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy of what was loaded, for ``collection.json``."""
        return {
            "path": None if self.path is None else str(self.path),
            "sha256": self.sha256,
            "clusters": {c.name: _cluster_snapshot(c) for c in self.clusters},
            "phones": dataclasses.asdict(self.phones),
            "limits": dataclasses.asdict(self.limits),
            # Only when there are sites: the snapshots of profiles without them stay as they were.
            **({"sites": {s.name: s.snapshot() for s in self.sites}} if self.sites else {}),
        }


def snapshot_difference(old: Mapping[str, Any], new: Mapping[str, Any], where: str = "") -> list[str]:
    """What differs between two ``Profile.snapshot()`` documents, one line per dotted key (the
    file's path and hash aside: the same settings in another file are the same profile)."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        if not where and key in ("path", "sha256"):
            continue
        a, b = old.get(key), new.get(key)
        if {type(a), type(b)} <= {type(None), list} and not a and not b:
            continue  # a key written before it existed (None) and its empty default are the same
        name = f"{where}.{key}" if where else key
        if isinstance(a, dict) and isinstance(b, dict):
            out += snapshot_difference(a, b, name)
        elif a != b:
            out.append(f"{name}: {_short(a)} in the evidence, {_short(b)} now")
    return out


def _short(v: Any) -> str:
    import json

    text = json.dumps(v, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _cluster_snapshot(c: Cluster) -> dict[str, Any]:
    return {
        "mode": c.mode.value,
        "version": c.version,
        "transport": c.transport.value,
        "trust_stores": {name: str(path) for name, path in c.trust_stores},
        "tftp": [dataclasses.asdict(n) for n in c.tftp],
        "tvs": [dataclasses.asdict(n) for n in c.tvs],
        "tvs_allow": [a.text for a in c.tvs_allow],
        # How the cluster was asked, never with what password: the variable's name or the file's
        # path only (scanner.core.cucm.settings).
        "axl": None if c.axl is None else _axl_snapshot(c.axl),
        "discovered_ports": None if c.axl is None else dataclasses.asdict(c.discovered_ports),
    }


def _axl_snapshot(a: AxlSettings) -> dict[str, Any]:
    d = dataclasses.asdict(a)
    return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


# ---------------------------------------------------------------------------------------------


def parse_profile(data: bytes, *, base_dir: Path, path: Path | None = None) -> Profile:
    """Validate profile bytes. Raises ``ParseError`` naming the key (and line when known)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"profile is not UTF-8 ({exc.reason})", exc.start) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+)", str(exc))
        raise ParseError(f"not valid TOML: {exc}", line=int(m.group(1)) if m else None) from None
    ctx = _Ctx(text)
    _only_keys(ctx, doc, "", {"clusters", "phones", "limits", "sites"})
    clusters = _table(ctx, doc, "clusters", required=True)
    _only_keys(ctx, clusters, "clusters", set(CLUSTER_NAMES))
    source = _cluster(ctx, clusters, "source", base_dir)
    destination = _cluster(ctx, clusters, "destination", base_dir)
    phones = _phones(ctx, _table(ctx, doc, "phones", required=False))
    limits = _limits(ctx, _table(ctx, doc, "limits", required=False))
    sites = _sites(ctx, _table(ctx, doc, "sites", required=False))
    return Profile(path, hashlib.sha256(data).hexdigest(), source, destination, phones, limits, sites)


class _Ctx:
    """Finds the line of a table or key for error messages (tomllib gives none for values)."""

    def __init__(self, text: str) -> None:
        self._lines = [line.strip() for line in text.splitlines()]

    def line_of(self, dotted: str) -> int | None:
        """Line of ``a.b[1].key``: the key's own line if found, else its table's header line."""
        parts = dotted.split(".") if dotted else []
        for n in range(len(parts), 0, -1):
            header = self._header_line(parts[:n])
            if header is None:
                continue
            if n < len(parts):
                key = parts[n].split("[", 1)[0]
                for i in range(header, len(self._lines)):
                    line = self._lines[i]
                    if line.startswith("["):
                        break
                    if re.match(rf"{re.escape(key)}\s*=", line):
                        return i + 1
            return header
        return None

    def _header_line(self, parts: list[str]) -> int | None:
        m = re.fullmatch(r"(.+)\[(\d+)\]", parts[-1])
        if m:
            header, index = "[[" + ".".join([*parts[:-1], m.group(1)]) + "]]", int(m.group(2))
        else:
            header, index = "[" + ".".join(parts) + "]", 0
        seen = 0
        for i, line in enumerate(self._lines, 1):
            if line.replace(" ", "").split("#", 1)[0] == header:
                if seen == index:
                    return i
                seen += 1
        return None

    def error(self, key: str, reason: str) -> ParseError:
        return ParseError(f"{key}: {reason}" if key else reason, line=self.line_of(key))


def _table(ctx: _Ctx, doc: Mapping[str, Any], key: str, *, required: bool, where: str = "") -> dict[str, Any]:
    full = f"{where}.{key}" if where else key
    value = doc.get(key)
    if value is None:
        if required:
            raise ctx.error(full, "missing (required table)")
        return {}
    if not isinstance(value, dict):
        raise ctx.error(full, f"must be a table, not {type(value).__name__}")
    return value


def _only_keys(ctx: _Ctx, table: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    # Unknown keys are refused: a typo ("trasnport") silently falling back to a default would
    # send a production scan somewhere the user did not mean.
    for key in table:
        if key not in allowed:
            full = f"{where}.{key}" if where else key
            raise ctx.error(full, f"unknown key (expected one of: {', '.join(sorted(allowed))})")


def _str(ctx: _Ctx, table: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    full = f"{where}.{key}"
    value = table.get(key, default)
    if value is None:
        raise ctx.error(full, "missing (required)")
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(full, "must be a non-empty string")
    return value.strip()


def _port(ctx: _Ctx, table: Mapping[str, Any], key: str, where: str, default: int) -> int:
    full = f"{where}.{key}"
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ctx.error(full, f"must be a port number 1..65535, not {value!r}")
    return value


def _enum(
    ctx: _Ctx, table: Mapping[str, Any], key: str, where: str, enum: type[StrEnum], default: str | None
) -> Any:
    full = f"{where}.{key}"
    raw = _str(ctx, table, key, where, default)
    try:
        return enum(raw)
    except ValueError:
        allowed = ", ".join(repr(e.value) for e in enum)
        raise ctx.error(full, f"unknown value {raw!r} (expected one of: {allowed})") from None


def _address(ctx: _Ctx, table: Mapping[str, Any], where: str) -> str:
    address = _str(ctx, table, "address", where)
    if not is_valid_host(address):
        raise ctx.error(f"{where}.address", f"not an IP address or host name: {address!r}")
    return address


def is_valid_host(text: str) -> bool:
    """An IPv4/IPv6 literal or a syntactically valid DNS host name."""
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > MAX_HOSTNAME:
        return False
    labels = name.split(".")
    # An all-numeric dotted name that failed ip_address ("10.0.0.256") is a typo, not a host name.
    if all(label.isdigit() for label in labels):
        return False
    return all(_HOST_LABEL.match(label) for label in labels)


def _cluster(ctx: _Ctx, clusters: Mapping[str, Any], name: str, base_dir: Path) -> Cluster:
    where = f"clusters.{name}"
    table = _table(ctx, clusters, name, required=True, where="clusters")
    _only_keys(
        ctx,
        table,
        where,
        {"mode", "version", "transport", "trust_stores", "tftp", "tvs", "tvs_allow", "axl", "discovered_ports"},
    )
    axl = _axl(ctx, table, where, base_dir)
    mode = _enum(ctx, table, "mode", where, ClusterMode, None)
    version = table.get("version")
    if version is not None and not isinstance(version, str | int | float):
        raise ctx.error(f"{where}.version", 'must be a string such as "12.5"')
    transport = _enum(ctx, table, "transport", where, Transport, Transport.HTTP_FIRST.value)
    stores_raw = _table(ctx, table, "trust_stores", required=False, where=where)
    stores: list[tuple[str, Path]] = []
    for store, rel in stores_raw.items():
        if not isinstance(rel, str) or not rel:
            raise ctx.error(f"{where}.trust_stores.{store}", "must be a directory path (string)")
        stores.append((store, (base_dir / rel).resolve()))
    tftp_raw = table.get("tftp")
    if tftp_raw is None and axl is None:
        raise ctx.error(
            f"{where}.tftp",
            "missing: at least one [[" + where + ".tftp]] node is required, or [" + where + ".axl] to discover them",
        )
    if tftp_raw is None:
        tftp_raw = []
    elif not isinstance(tftp_raw, list) or (not tftp_raw and axl is None):
        raise ctx.error(f"{where}.tftp", "must be a non-empty array of tables ([[" + where + ".tftp]])")
    tftp: list[TftpNode] = []
    for i, entry in enumerate(tftp_raw):
        w = f"{where}.tftp[{i}]"
        if not isinstance(entry, dict):
            raise ctx.error(w, "must be a table")
        _only_keys(ctx, entry, w, {"name", "address", "tftp_port", "http_port"})
        tftp.append(
            TftpNode(
                _str(ctx, entry, "name", w),
                _address(ctx, entry, w),
                _port(ctx, entry, "tftp_port", w, DEFAULT_TFTP_PORT),
                _port(ctx, entry, "http_port", w, DEFAULT_HTTP_PORT),
            )
        )
    _unique(ctx, [n.name for n in tftp], f"{where}.tftp")
    tvs_raw = table.get("tvs", [])
    if not isinstance(tvs_raw, list):
        raise ctx.error(f"{where}.tvs", "must be an array of tables ([[" + where + ".tvs]])")
    tvs: list[TvsNode] = []
    for i, entry in enumerate(tvs_raw):
        w = f"{where}.tvs[{i}]"
        if not isinstance(entry, dict):
            raise ctx.error(w, "must be a table")
        _only_keys(ctx, entry, w, {"name", "address", "port"})
        tvs.append(
            TvsNode(
                _str(ctx, entry, "name", w),
                _address(ctx, entry, w),
                _port(ctx, entry, "port", w, DEFAULT_TVS_PORT),
            )
        )
    _unique(ctx, [n.name for n in tvs], f"{where}.tvs")
    allow_raw = table.get("tvs_allow", [])
    if not isinstance(allow_raw, list):
        raise ctx.error(f"{where}.tvs_allow", 'must be an array of strings such as ["10.1.1.0/24"]')
    allow: list[TvsAllow] = []
    for i, entry in enumerate(allow_raw):
        parsed = parse_tvs_allow(entry) if isinstance(entry, str) else None
        if parsed is None:
            raise ctx.error(
                f"{where}.tvs_allow[{i}]",
                f"not an address, network or host name with an optional port: {entry!r}",
            )
        allow.append(parsed)
    return Cluster(
        name,
        mode,
        None if version is None else str(version),
        transport,
        tuple(stores),
        tuple(tftp),
        tuple(tvs),
        tuple(allow),
        axl,
        _discovered_ports(ctx, table, where, axl),
    )


_AXL_KEYS = {
    "host", "port", "user", "password_env", "password_file", "ca_bundle", "verify", "version",
    "risport_per_minute", "timeout",
}


def _axl(ctx: _Ctx, cluster: Mapping[str, Any], where: str, base_dir: Path) -> AxlSettings | None:
    """``[clusters.<c>.axl]``: how to reach the publisher. A ``password`` key is refused by name:
    a password in the profile text would end up in every copy of the profile."""
    if "axl" not in cluster:
        return None
    w = f"{where}.axl"
    table = _table(ctx, cluster, "axl", required=True, where=where)
    if "password" in table:
        raise ctx.error(
            f"{w}.password",
            "a password is never written in the profile: name an environment variable (password_env) "
            "or a file that holds it (password_file)",
        )
    _only_keys(ctx, table, w, _AXL_KEYS)
    host = _str(ctx, table, "host", w)
    if not is_valid_host(host):
        raise ctx.error(f"{w}.host", f"not an IP address or host name: {host!r}")
    user = _str(ctx, table, "user", w)
    env = table.get("password_env")
    pfile = table.get("password_file")
    for key, value in (("password_env", env), ("password_file", pfile), ("ca_bundle", table.get("ca_bundle"))):
        if value is not None and (not isinstance(value, str) or not value):
            raise ctx.error(f"{w}.{key}", "must be a non-empty string")
    if env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
        raise ctx.error(f"{w}.password_env", f"not an environment variable name: {env!r}")
    if (env is None) == (pfile is None):
        raise ctx.error(w, "give exactly one of password_env and password_file")
    verify = table.get("verify", True)
    if not isinstance(verify, bool):
        raise ctx.error(f"{w}.verify", "must be true or false")
    ca = table.get("ca_bundle")
    if ca is not None and not verify:
        raise ctx.error(f"{w}.ca_bundle", "a CA bundle with verify = false: choose one")
    version = table.get("version")
    if version is not None and not (isinstance(version, str) and re.fullmatch(r"\d+\.\d+", version)):
        raise ctx.error(f"{w}.version", f'must be an AXL schema version such as "12.5", not {version!r}')
    numbers: dict[str, float] = {}
    for key in ("risport_per_minute", "timeout"):
        if key in table:
            value = table[key]
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ctx.error(f"{w}.{key}", f"must be a number, not {value!r}")
            numbers[key] = float(value)
    try:
        return AxlSettings(
            host=host,
            user=user,
            port=_port(ctx, table, "port", w, AXL_DEFAULT_PORT),
            password_env=env,
            password_file=None if pfile is None else (base_dir / pfile).resolve(),
            ca_bundle=None if ca is None else (base_dir / ca).resolve(),
            verify=verify,
            version=version,
            **numbers,
        )
    except ValueError as exc:
        raise ctx.error(w, str(exc)) from None


def _discovered_ports(ctx: _Ctx, cluster: Mapping[str, Any], where: str, axl: AxlSettings | None) -> DiscoveredPorts:
    if "discovered_ports" not in cluster:
        return DiscoveredPorts()
    w = f"{where}.discovered_ports"
    if axl is None:
        raise ctx.error(w, "only means something with [" + where + ".axl] (the nodes it discovers)")
    table = _table(ctx, cluster, "discovered_ports", required=True, where=where)
    _only_keys(ctx, table, w, {"tftp", "http", "tvs"})
    return DiscoveredPorts(
        _port(ctx, table, "tftp", w, DEFAULT_TFTP_PORT),
        _port(ctx, table, "http", w, DEFAULT_HTTP_PORT),
        _port(ctx, table, "tvs", w, DEFAULT_TVS_PORT),
    )


def _unique(ctx: _Ctx, names: list[str], where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ctx.error(where, f"node name {name!r} appears twice")
        seen.add(name)


def _phones(ctx: _Ctx, table: Mapping[str, Any]) -> PhoneAccess:
    _only_keys(ctx, table, "phones", {"web_port", "web_scheme"})
    scheme = _str(ctx, table, "web_scheme", "phones", "http")
    if scheme not in ("http", "https"):
        raise ctx.error("phones.web_scheme", f"unknown value {scheme!r} (expected 'http' or 'https')")
    default_port = DEFAULT_WEB_PORT if scheme == "http" else 443
    return PhoneAccess(_port(ctx, table, "web_port", "phones", default_port), scheme)


def _limits(ctx: _Ctx, table: Mapping[str, Any]) -> Limits:
    defaults = Limits()
    fields = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(Limits)}
    _only_keys(ctx, table, "limits", set(fields))
    values: dict[str, Any] = {}
    for key, value in table.items():
        default = fields[key]
        ok = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (isinstance(default, float) or isinstance(value, int))
        )
        if not ok:
            raise ctx.error(f"limits.{key}", f"must be a {type(default).__name__}, not {value!r}")
        values[key] = float(value) if isinstance(default, float) else value
    try:
        return dataclasses.replace(defaults, **values)
    except ValueError as exc:
        raise ctx.error("limits", str(exc)) from None


# --- [sites.NAME] (scanner.core.sites; docs/sites.md) -------------------------------------------


def _sites(ctx: _Ctx, table: Mapping[str, Any]) -> tuple[Site, ...]:
    """``[sites.NAME]`` tables: ``device_pools`` and/or ``prefixes``, at least one of them."""
    sites: list[Site] = []
    for name, body in table.items():
        where = f"sites.{name}"
        problem = site_name_problem(name)
        if problem is not None:
            raise ctx.error(where, problem)
        if not isinstance(body, dict):
            raise ctx.error(where, f"must be a table, not {type(body).__name__}")
        _only_keys(ctx, body, where, {"device_pools", "prefixes"})
        pools = _strings(ctx, body, "device_pools", where, 'such as ["DP-BRANCH-A"]')
        prefixes: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for i, text in enumerate(_strings(ctx, body, "prefixes", where, 'such as ["10.20.0.0/16"]')):
            try:
                prefixes.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ctx.error(f"{where}.prefixes[{i}]", f"{text!r} is not an address prefix such as 10.20.0.0/16") from None
        if not pools and not prefixes:
            raise ctx.error(where, "selects no phone: give device_pools and/or prefixes")
        sites.append(Site(name, tuple(pools), tuple(prefixes)))
    return tuple(sites)


def _strings(ctx: _Ctx, table: Mapping[str, Any], key: str, where: str, example: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ctx.error(f"{where}.{key}", f"must be an array of non-empty strings {example}")
    return [v.strip() for v in value]
