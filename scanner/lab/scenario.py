"""Scenarios: the shape of the two clusters and the faults to inject, built in or from a TOML file.

Format (documented in docs/lab.md)::

    name = "branch-night"
    description = "..."
    phones = 500                      # default phone count (--phones overrides)

    [network]
    base = 10                         # second octet: source 127.10.x.x, destination 127.20.x.x, phones 127.100.x.x

    [source]                          # every key optional
    mode = "mixed"                    # "mixed" | "non-secure"
    version = "10.5"
    key = "rsa1024"                   # rsa1024 | rsa2048 | rsa4096: CallManager, TVS, CAPF, ITLRecovery keys
    ec = false                        # also CallManager-ECDSA certificates (EC records in the trust lists)
    digest = "sha1"                   # "sha1" | "sha512": TFTP File Signature Algorithm
    import = "bulk"                   # how the other cluster's certs were imported here: "bulk" | "manual"
    transport = "http-first"          # written to profile.toml

    [destination]                     # same keys; defaults: mixed, 12.5, rsa2048

    [nodes.src-sub1]                  # optional per-node overrides; addresses must be in 127.0.0.0/8
    address = "127.10.0.2"
    tftp_port = 6969

    [[faults]]
    name = "phone-stale-itl"          # from the catalog (scanner.lab.faults)
    fraction = 0.03                   # phone faults: fraction of the fleet (0..1) or count = N

    [[faults]]
    name = "tvs-down"
    node = "src-sub2"                 # node faults: which node
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from scanner.lab.errors import LabError
from scanner.lab.faults import CATALOG, FaultDef

__all__ = ["BUILTIN", "ClusterShape", "FaultUse", "Scenario", "load_scenario", "parse_scenario"]

MODES = ("mixed", "non-secure")
KEYS = ("rsa1024", "rsa2048", "rsa4096")
DIGESTS = ("sha1", "sha512")
IMPORTS = ("bulk", "manual")
TRANSPORTS = ("http-first", "tftp", "http", "both")


@dataclass(frozen=True, slots=True)
class ClusterShape:
    mode: str
    version: str
    key: str
    ec: bool = False
    digest: str = "sha1"
    import_method: str = "bulk"
    transport: str = "http-first"

    @property
    def major(self) -> float:
        try:
            return float(".".join(self.version.split(".")[:2]))
        except ValueError:
            return 0.0


@dataclass(frozen=True, slots=True)
class FaultUse:
    name: str
    fraction: float | None = None
    count: int | None = None
    node: str | None = None
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def definition(self) -> FaultDef:
        return CATALOG[self.name]

    def param(self, name: str) -> Any:
        for key, value in self.params:
            if key == name:
                return value
        for p in self.definition.params:
            if p.name == name:
                return p.default
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class NodeOverride:
    address: str | None = None
    tftp_port: int | None = None
    http_port: int | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str = ""
    phones: int = 200
    base: int = 10
    source: ClusterShape = ClusterShape("mixed", "10.5", "rsa1024")
    destination: ClusterShape = ClusterShape("mixed", "12.5", "rsa2048")
    faults: tuple[FaultUse, ...] = ()
    nodes: tuple[tuple[str, NodeOverride], ...] = ()
    source_text: str | None = field(default=None, compare=False)

    def uses(self, name: str) -> list[FaultUse]:
        return [f for f in self.faults if f.name == name]


# Node names the lab always creates (see build.py); node faults must name one of these.
SOURCE_TFTP = ("src-pub", "src-sub1")
SOURCE_TVS = ("src-pub", "src-sub1", "src-sub2")
DEST_TFTP = ("dst-pub", "dst-sub1")
PUBLISHERS = ("src-pub", "dst-pub")  # where each cluster's AXL and RisPort70 answer


def _f(name: str, **kw: Any) -> FaultUse:
    params = tuple(sorted((k, v) for k, v in kw.items() if k not in ("fraction", "count", "node")))
    return FaultUse(name, kw.get("fraction"), kw.get("count"), kw.get("node"), params)


_MIXED_FAULTS = (
    _f("phone-stale-itl", fraction=0.03),
    _f("phone-stale-ctl", fraction=0.01),
    _f("phone-trust-update-failed", fraction=0.02),
    _f("phone-src-itl-invalid", fraction=0.005),
    _f("phone-src-ctl-invalid", fraction=0.005),
    _f("tvs-not-configured", fraction=0.01),
    _f("dest-not-provisioned", fraction=0.02),
    _f("dest-config-signer-unknown", fraction=0.01),
    _f("sha512-unsupported-model", fraction=0.02),
    _f("web-access-off", fraction=0.04),
    _f("phone-web-stall", fraction=0.005),
    _f("phone-unregistered", fraction=0.01),
    _f("phone-failover", fraction=0.01),
    _f("tvs-down", node="src-sub2"),
    _f("tvs-cert-not-in-itl", node="src-sub1"),
    _f("dest-node-mismatch", node="dst-sub1"),
    _f("node-loss", node="src-pub", loss=0.05),
    _f("node-delay", node="dst-sub1", delay=0.02),
    _f("node-error", node="src-sub1", protocols=("tftp",)),
    _f("node-truncate", node="dst-pub", protocols=("tftp",), bytes=700),
    _f("node-stall", node="dst-sub1", protocols=("tftp",)),
    _f("no-rollback-path"),
)

BUILTIN: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("healthy", "every phone READY, verdict GO"),
        Scenario(
            "mixed",
            "a realistic night: most phones ready; every phone and node fault present (cluster-wide "
            "blockers, which would fail every phone, have scenarios of their own)",
            faults=_MIXED_FAULTS,
        ),
        Scenario(
            "rollback-mixed-mode", "C3: rollback enabled on a mixed-mode source", faults=(_f("src-rollback"),)
        ),
        Scenario(
            "rollback-path",
            "rollback enabled on a non-secure source: READY by the rollback path",
            source=ClusterShape("non-secure", "10.5", "rsa1024"),
            faults=(_f("src-rollback"),),
        ),
        Scenario("itlrecovery-not-imported", "C5", faults=(_f("itlrecovery-not-imported"),)),
        Scenario(
            "dest-node-cert-not-imported",
            "C5: destination before 12.0 (each node signs its ITL), one node's cert not imported; both "
            "clusters non-secure, so a phone verifies each node's ITL through TVS (in mixed mode the "
            "destination's CTL would vouch for it, the seed's step 9)",
            source=ClusterShape("non-secure", "10.5", "rsa1024"),
            destination=ClusterShape("non-secure", "11.5", "rsa2048"),
            faults=(_f("dest-node-cert-not-imported", node="dst-sub1"),),
        ),
        Scenario("dest-signer-not-phone-sast", "C5", faults=(_f("dest-signer-not-phone-sast"),)),
        Scenario(
            "dest-invalid",
            "C6: broken destination files",
            faults=(
                _f("dest-itl-invalid", node="dst-sub1", how="signature"),
                _f("dest-ctl-invalid", node="dst-pub", how="truncated"),
            ),
        ),
        Scenario("dest-itl-too-large", "C7", faults=(_f("dest-itl-too-large"),)),
        Scenario("dest-signer-expired", "C7", faults=(_f("dest-signer-expired"),)),
        Scenario("dest-non-secure", "mixed source, non-secure destination", faults=(_f("dest-non-secure"),)),
        Scenario(
            "trust-store-missing", "no source trust stores: INCOMPLETE", faults=(_f("trust-store-missing"),)
        ),
        Scenario(
            "tvs",
            "C4 blockers: one TVS down, one presenting a cert not in the ITL",
            faults=(_f("tvs-cert-not-in-itl", node="src-sub2"),),
        ),
        Scenario("node-dead", "a dead source TFTP node", faults=(_f("node-dead", node="src-sub1"),)),
        Scenario(
            "dest-node-dead", "a dead destination TFTP node", faults=(_f("node-dead", node="dst-sub1"),)
        ),
        Scenario(
            "cucm-busy",
            "discovery against a busy source publisher: AXL and RisPort70 answer after 2 s, and "
            "RisPort70 allows 5 requests a minute; every answer as in healthy",
            faults=(_f("axl-slow", node="src-pub", delay=2.0), _f("risport-rate-limit", per_minute=5)),
        ),
        Scenario(
            "axl-wrong-password",
            "the source's AXL password file is wrong: a scan with profile.toml is refused (exit 64, "
            "answer-key.json 'refused'); profile-manual.toml scans as healthy",
            faults=(_f("axl-wrong-password", cluster="source"),),
        ),
    )
}


# ---------------------------------------------------------------------------------------------
# TOML


class _Where:
    """Error messages naming the file, the key and (when a text search finds it) the line."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, key: str) -> int | None:
        parts = key.split(".")
        m = re.fullmatch(r"faults\[(\d+)\](?:\.(\w[\w-]*))?", key)
        if m:
            index, sub = int(m.group(1)), m.group(2)
            seen = -1
            for no, line in enumerate(self.lines, 1):
                if line.strip().startswith("[[faults]]"):
                    seen += 1
                    if seen == index and sub is None:
                        return no
                elif seen == index and sub is not None and re.match(rf"\s*{re.escape(sub)}\s*=", line):
                    return no
                if seen > index:
                    break
            return None
        leaf = parts[-1]
        for no, line in enumerate(self.lines, 1):
            if re.match(rf"\s*\"?{re.escape(leaf)}\"?\s*=", line) or line.strip() == f"[{key}]":
                return no
        return None

    def error(self, key: str, reason: str) -> LabError:
        line = self.line_of(key)
        where = f"{self.path}:{line}" if line is not None else self.path
        return LabError(f"{where}: {key}: {reason}")


def _choice(
    w: _Where, table: Mapping[str, Any], key: str, where: str, choices: tuple[str, ...], default: str
) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or value not in choices:
        raise w.error(f"{where}.{key}", f"must be one of {', '.join(choices)} (got {value!r})")
    return value


def _only(w: _Where, table: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            prefix = f"{where}." if where else ""
            raise w.error(f"{prefix}{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _cluster(w: _Where, doc: Mapping[str, Any], name: str, default: ClusterShape) -> ClusterShape:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise w.error(name, "must be a table")
    _only(w, table, name, {"mode", "version", "key", "ec", "digest", "import", "transport"})
    version = table.get("version", default.version)
    if not isinstance(version, str) or not re.fullmatch(r"\d+(\.\d+)*", version):
        raise w.error(f"{name}.version", f'must be a version string such as "12.5" (got {version!r})')
    ec = table.get("ec", default.ec)
    if not isinstance(ec, bool):
        raise w.error(f"{name}.ec", "must be true or false")
    return ClusterShape(
        mode=_choice(w, table, "mode", name, MODES, default.mode),
        version=version,
        key=_choice(w, table, "key", name, KEYS, default.key),
        ec=ec,
        digest=_choice(w, table, "digest", name, DIGESTS, default.digest),
        import_method=_choice(w, table, "import", name, IMPORTS, default.import_method),
        transport=_choice(w, table, "transport", name, TRANSPORTS, default.transport),
    )


def _port(w: _Where, table: Mapping[str, Any], key: str, where: str) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1024 <= value <= 65535:
        raise w.error(f"{where}.{key}", f"must be a port in 1024..65535 (no root needed), got {value!r}")
    return value


def check_loopback(address: str, what: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise LabError(f"{what}: {address!r} is not an IP address") from None
    if not ip.is_loopback or (ip.version == 6 and address != "::1"):
        raise LabError(f"{what}: {address} is outside 127.0.0.0/8: the lab binds loopback addresses only")
    return str(ip)


def _faults(w: _Where, raw: object) -> tuple[FaultUse, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise w.error("faults", "must be an array of tables ([[faults]])")
    out = []
    for i, entry in enumerate(raw):
        where = f"faults[{i}]"
        if not isinstance(entry, dict):
            raise w.error(where, "must be a table")
        name = entry.get("name")
        if not isinstance(name, str):
            raise w.error(where, 'missing name = "<fault>"')
        if name not in CATALOG:
            raise w.error(f"{where}.name", f"unknown fault {name!r} (known: {', '.join(sorted(CATALOG))})")
        d = CATALOG[name]
        allowed = {"name", "fraction", "count", "node"} | {p.name for p in d.params}
        _only(w, entry, where, allowed)
        fraction = entry.get("fraction")
        count = entry.get("count")
        node = entry.get("node")
        if d.scope == "phone":
            if fraction is None and count is None:
                raise w.error(where, f"phone fault {name!r} needs fraction = 0..1 or count = N")
            if fraction is not None and count is not None:
                raise w.error(f"{where}.count", "give fraction or count, not both")
        elif fraction is not None or count is not None:
            key = "fraction" if fraction is not None else "count"
            raise w.error(f"{where}.{key}", f"{d.scope} fault {name!r} takes no {key}")
        if fraction is not None and (
            not isinstance(fraction, int | float) or isinstance(fraction, bool) or not 0.0 <= fraction <= 1.0
        ):
            raise w.error(f"{where}.fraction", f"must be a number between 0 and 1 (got {fraction!r})")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
            raise w.error(f"{where}.count", f"must be a whole number >= 0 (got {count!r})")
        if d.node_kind is None and node is not None:
            raise w.error(f"{where}.node", f"fault {name!r} takes no node")
        if d.node_kind is not None:
            choices = _node_choices(d)
            if not isinstance(node, str) or node not in choices:
                raise w.error(f"{where}.node", f"must be one of {', '.join(choices)} (got {node!r})")
        params: list[tuple[str, Any]] = []
        for p in d.params:
            if p.name not in entry:
                continue
            value = entry[p.name]
            key = f"{where}.{p.name}"
            if p.kind == "float":
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise w.error(key, "must be a number")
                value = float(value)
            elif p.kind == "int":
                if not isinstance(value, int) or isinstance(value, bool):
                    raise w.error(key, "must be a whole number")
            elif p.kind == "str":
                if value not in p.choices:
                    raise w.error(key, f"must be one of {', '.join(p.choices)} (got {value!r})")
            elif p.kind == "protocols":
                if not isinstance(value, list) or not value or any(v not in p.choices for v in value):
                    raise w.error(key, f"must be a non-empty list of {', '.join(p.choices)}")
                value = tuple(sorted(set(value)))
            if p.low is not None and p.high is not None and not p.low <= value <= p.high:
                raise w.error(key, f"must be between {p.low:g} and {p.high:g} (got {value!r})")
            params.append((p.name, value))
        out.append(FaultUse(name, None if fraction is None else float(fraction), count, node, tuple(params)))
    return tuple(out)


def _node_choices(d: FaultDef) -> tuple[str, ...]:
    return {
        "tftp": SOURCE_TFTP + DEST_TFTP,
        "src-tftp": SOURCE_TFTP,
        "dst-tftp": DEST_TFTP,
        "src-tvs": SOURCE_TVS,
        "publisher": PUBLISHERS,
    }[d.node_kind or "tftp"]


def parse_scenario(text: str, path: str = "<scenario>") -> Scenario:
    w = _Where(path, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LabError(f"{path}: not valid TOML: {exc}") from None
    _only(
        w, doc, "", {"name", "description", "phones", "network", "source", "destination", "nodes", "faults"}
    )
    name = doc.get("name", Path(path).stem)
    if not isinstance(name, str) or not name:
        raise w.error("name", "must be a non-empty string")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise w.error("description", "must be a string")
    phones = doc.get("phones", 200)
    if not isinstance(phones, int) or isinstance(phones, bool) or not 1 <= phones <= 60000:
        raise w.error("phones", f"must be a whole number in 1..60000 (got {phones!r})")
    network = doc.get("network", {})
    if not isinstance(network, dict):
        raise w.error("network", "must be a table")
    _only(w, network, "network", {"base"})
    base = network.get("base", 10)
    if not isinstance(base, int) or isinstance(base, bool) or not 1 <= base <= 150:
        raise w.error("network.base", f"must be a whole number in 1..150 (got {base!r})")
    default = Scenario("default")
    nodes_raw = doc.get("nodes", {})
    if not isinstance(nodes_raw, dict):
        raise w.error("nodes", "must be a table of node names")
    nodes: list[tuple[str, NodeOverride]] = []
    known_nodes = set(SOURCE_TVS + DEST_TFTP)
    for node_name, table in sorted(nodes_raw.items()):
        where = f"nodes.{node_name}"
        if node_name not in known_nodes:
            raise w.error(where, f"unknown node (known: {', '.join(sorted(known_nodes))})")
        if not isinstance(table, dict):
            raise w.error(where, "must be a table")
        _only(w, table, where, {"address", "tftp_port", "http_port", "port"})
        address = table.get("address")
        if address is not None:
            if not isinstance(address, str):
                raise w.error(f"{where}.address", "must be a string")
            try:
                address = check_loopback(address, f"{where}.address")
            except LabError as exc:
                raise w.error(f"{where}.address", str(exc).split(": ", 1)[1]) from None
        nodes.append(
            (
                node_name,
                NodeOverride(
                    address,
                    _port(w, table, "tftp_port", where),
                    _port(w, table, "http_port", where),
                    _port(w, table, "port", where),
                ),
            )
        )
    scenario = Scenario(
        name=name,
        description=description,
        phones=phones,
        base=base,
        source=_cluster(w, doc, "source", default.source),
        destination=_cluster(w, doc, "destination", default.destination),
        faults=_faults(w, doc.get("faults")),
        nodes=tuple(nodes),
        source_text=text,
    )
    try:
        return validate(scenario)
    except LabError as exc:
        raise LabError(f"{path}: {exc}") from None


def validate(s: Scenario) -> Scenario:
    """Cross-field rules: fault preconditions, duplicate node faults."""
    seen: set[tuple[str, str | None]] = set()
    effective = effective_shapes(s)
    for i, f in enumerate(s.faults):
        d = f.definition
        key = (f.name, f.node)
        if d.scope != "phone" and key in seen:
            raise LabError(f"faults[{i}]: fault {f.name!r} given twice for the same target")
        seen.add(key)
        for need in d.needs:
            src, dst = effective
            ok = {
                "source-mixed": src.mode == "mixed",
                "destination-mixed": dst.mode == "mixed",
                "destination-12": dst.major >= 12.0,
                "destination-pre-12": dst.major < 12.0,
            }[need]
            if not ok:
                raise LabError(
                    f"faults[{i}]: fault {f.name!r} needs {need.replace('-', ' ')} (see docs/lab.md)"
                )
    return s


def effective_shapes(s: Scenario) -> tuple[ClusterShape, ClusterShape]:
    """The cluster shapes after faults that change them (SHA-512 signing, non-secure destination)."""
    dst = s.destination
    if s.uses("sha512-unsupported-model"):
        dst = replace(dst, digest="sha512")
    if s.uses("dest-non-secure"):
        dst = replace(dst, mode="non-secure")
    return s.source, dst


def load_scenario(name_or_path: str) -> Scenario:
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path]
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        raise LabError(f"unknown scenario {name_or_path!r}: give a TOML file or one of {', '.join(BUILTIN)}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabError(f"{path}: scenario file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabError(f"{path}: cannot read scenario: {exc}") from None
    return parse_scenario(text, str(path))
