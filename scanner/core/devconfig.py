"""Phone configuration files: ``SEP<MAC>.cnf.xml`` and the XML payload of a ``.cnf.xml.sgn``.

Sans-IO: :func:`parse_device_config` takes the XML bytes (the ``.sgn`` header already stripped by
the trust-list layer) and returns a :class:`DeviceConfig`; :func:`redact_config_xml` returns the same
bytes with every password-like element value replaced, for storing as evidence. Spec: trust-files.md
sections 4.1 and 4.2.

Hardening. A config file comes from a TFTP/HTTP server we do not control, so the XML is parsed by
expat set up by defusedxml (its ``DefusedExpatBuilder``) with DTDs, entity declarations and external
entities refused: no "billion laughs" expansion, no file or network access through ``SYSTEM``
entities. CUCM never writes a DTD into a phone config, so refusing them loses nothing. Why not
``defusedxml.ElementTree.fromstring``: it parses with namespace processing on, and real CUCM files
carry ``xsi:type="axl:XIPPhone"`` on the root with no ``xmlns:xsi`` declaration, which a
namespace-aware parser rejects ("unbound prefix"). The namespace-free builder reads them, and (unlike
defusedxml's SAX reader) does not import ``urllib.request``/``socket`` into a module that must stay
free of I/O. Every failure is a :class:`~scanner.core.errors.ParseError`, with the 1-based line where
expat or the offending element says so.

Secrets. CUCM writes ``sshPassword``, ``adminPassword``, ``phonePassword`` and others in clear into
the config. Nothing this module returns carries their values: :class:`DeviceConfig` only lists the
names of the elements that held one (``redacted_fields``).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar
from xml.parsers.expat import ErrorString, ExpatError

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.expatbuilder import DefusedExpatBuilder

from scanner.core.errors import ParseError

# Real SEP<MAC>.cnf.xml files are 10-60 KB (the largest hold dozens of lines and phone services);
# 1 MiB is ~20x headroom. The cap bounds memory and CPU spent on a hostile or broken server's reply
# before expat ever sees it.
MAX_CONFIG_BYTES = 1 << 20

# What a redacted value becomes, in the evidence bytes and in DeviceConfig.vendor_config.
REDACTED = "********"

# Element or attribute names (local part, compared case-insensitively) whose values are secrets.
# Any name containing one of these substrings: sshPassword, adminPassword, phonePassword,
# authPassword (SIP line digest password), wlanPassword, ccmSecret, ...
_SECRET_SUBSTRINGS = ("password", "passwd", "secret", "passphrase")
# Exact names of known secrets that do not say "password": the CAPF authentication string and
# wireless pre-shared keys (8821-style configs).
_SECRET_NAMES = frozenset(
    {"authstring", "authenticationstring", "capfauthstring", "psk", "presharedkey", "wpapsk", "sharedkey"}
)

_SECURITY_MODE_NAMES = {1: "non-secure", 2: "authenticated", 3: "encrypted"}
# transportLayerProtocol: 1 TCP, 2 UDP, 3 TLS per usecallmanager [S2]; CUCM writes 4, which no
# public source explains, so it gets no name (None) rather than a guess.
_TRANSPORT_NAMES = {1: "TCP", 2: "UDP", 3: "TLS"}
_CAPF_AUTH_MODE_NAMES = {
    0: "none-pending",
    1: "auth-string",
    2: "null-string",
    3: "lsc-then-mic",
    4: "mic",
}
# webAccess and sshAccess are inverted flags in Cisco's vendorConfig: 0 = enabled, 1 = disabled.
# Spec 4.2 names the elements but gives no values. Decision: follow public CUCM provisioning
# examples and AXL updatePhone notes, which agree that both are inverted ("0 = enabled"); CUCM's
# own 12.5 output [S23] carries <webAccess>1</webAccess> in commonConfig/enterpriseConfig.
# Any other value is reported raw with *_enabled = None (unknown), never guessed. settingsAccess
# and webProtocol are kept raw only: public sources disagree on their codes.
_INVERTED_FLAG = {0: True, 1: False}

# Where per-phone access settings live, most specific first: the phone's product-specific
# settings (vendorConfig) override the common phone profile (commonConfig), which overrides the
# enterprise phone configuration (enterpriseConfig). Anything found elsewhere is the last resort.
_ACCESS_SECTIONS = ("vendorconfig", "commonconfig", "enterpriseconfig")


_T = TypeVar("_T")


# Both name functions run once per element and attribute of every config (about 130 elements a
# phone) on a few hundred distinct names: memoised, they cost a dict lookup. Bounded, so that a
# hostile file with endless distinct names cannot grow them.
@lru_cache(maxsize=4096)
def _local(name: str) -> str:
    """Local part of a qualified name, lower-cased (``axl:Foo`` -> ``foo``)."""
    return name.rpartition(":")[2].lower()


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether an element or attribute called ``name`` holds a secret that must never be kept."""
    local = _local(name)
    return local in _SECRET_NAMES or any(s in local for s in _SECRET_SUBSTRINGS)


# ---------------------------------------------------------------------------------------------
# Models


@dataclass(frozen=True, slots=True)
class TvsMember:
    """One ``<TVS><members><member>``: a Trust Verification Service the phone asks (TCP 2445)."""

    address: str | None
    port: int | None
    priority: int | None


@dataclass(frozen=True, slots=True)
class CallManagerMember:
    """One ``<callManagerGroup><members><member><callManager>``: a call-control server."""

    priority: int | None
    name: str | None
    description: str | None
    process_node_name: str | None
    ethernet_phone_port: int | None
    sip_port: int | None
    secured_sip_port: int | None


@dataclass(frozen=True, slots=True)
class CapfServer:
    """One ``<capfList><capf>``: a Certificate Authority Proxy Function server (TCP 3804)."""

    process_node_name: str | None
    phone_port: int | None


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """The security-relevant content of one phone config (spec 4.2). Missing elements are None/().

    Integer settings are kept raw (what the file says) with derived readable names as properties,
    so an unexpected code is visible rather than silently mapped.
    """

    root_tag: str
    device_name: str | None
    device_protocol: str | None
    full_config: bool | None
    device_security_mode: int | None
    transport_layer_protocol: int | None
    device_pool_name: str | None
    call_manager_group_name: str | None
    call_managers: tuple[CallManagerMember, ...]
    tvs: tuple[TvsMember, ...]
    capf_auth_mode: int | None
    capf_servers: tuple[CapfServer, ...]
    cert_hash: str | None
    encr_config: bool | None
    load_information: str | None
    inactive_load_information: str | None
    load_server: str | None
    web_access: int | None
    ssh_access: int | None
    settings_access: int | None
    web_protocol: int | None
    services_use_https: bool | None
    version_stamp: str | None
    urls: tuple[tuple[str, str], ...]
    vendor_config: tuple[tuple[str, str], ...]
    redacted_fields: tuple[str, ...]

    @property
    def device_security_mode_name(self) -> str | None:
        """``non-secure`` / ``authenticated`` / ``encrypted``; None when absent or unknown."""
        return _name_of(_SECURITY_MODE_NAMES, self.device_security_mode)

    @property
    def transport_layer_protocol_name(self) -> str | None:
        """``TCP`` / ``UDP`` / ``TLS``; None for absent or undocumented codes (CUCM's 4)."""
        return _name_of(_TRANSPORT_NAMES, self.transport_layer_protocol)

    @property
    def capf_auth_mode_name(self) -> str | None:
        """Readable ``capfAuthMode`` (spec 4.2); None when absent or unknown."""
        return _name_of(_CAPF_AUTH_MODE_NAMES, self.capf_auth_mode)

    @property
    def web_access_enabled(self) -> bool | None:
        """The phone's web server per this config (0 = enabled, 1 = disabled); None = unknown."""
        return _name_of(_INVERTED_FLAG, self.web_access)

    @property
    def ssh_access_enabled(self) -> bool | None:
        """The phone's SSH server per this config (0 = enabled, 1 = disabled); None = unknown."""
        return _name_of(_INVERTED_FLAG, self.ssh_access)

    @property
    def is_secure(self) -> bool | None:
        """Whether the device security profile is authenticated or encrypted (mode 2 or 3)."""
        if self.device_security_mode not in _SECURITY_MODE_NAMES:
            return None
        return self.device_security_mode != 1


def _name_of(table: dict[int, _T], code: int | None) -> _T | None:
    return None if code is None else table.get(code)


# ---------------------------------------------------------------------------------------------
# A tiny element tree built from SAX events, with the line of each start tag


class _Node:
    __slots__ = ("_shallowest", "attrs", "children", "line", "name", "parts", "tag")

    def __init__(self, tag: str, attrs: dict[str, str], line: int | None) -> None:
        self.tag = tag  # as written, e.g. "sshPassword"
        self.name = _local(tag)  # for matching: case-insensitive, prefix dropped
        self.attrs = attrs
        self.line = line
        self.parts: list[str] = []
        self.children: list[_Node] = []
        self._shallowest: dict[str, _Node] | None = None  # built by the first shallowest() call

    def text(self) -> str | None:
        """Direct character data, whitespace-trimmed; None when empty (tolerates pretty-printing)."""
        value = "".join(self.parts).strip()
        return value or None

    def child(self, name: str) -> _Node | None:
        for node in self.children:
            if node.name == name:
                return node
        return None

    def all(self, name: str) -> list[_Node]:
        return [node for node in self.children if node.name == name]

    def path(self, *names: str) -> _Node | None:
        node: _Node | None = self
        for name in names:
            if node is None:
                return None
            node = node.child(name)
        return node

    def shallowest(self, name: str) -> _Node | None:
        """First element called ``name`` in breadth-first order (a root child wins over a nested one).

        CUCM puts most settings directly under the root, but nested look-alikes exist (for example
        ``addOnModule/loadInformation``); breadth-first picks the root-level one when both exist.
        """
        if self._shallowest is None:
            # One breadth-first pass records each name's first element: a config asks for a dozen
            # names, and a walk per name was a tenth of its parse. Read-only after the parse.
            first: dict[str, _Node] = {}
            queue: deque[_Node] = deque(self.children)
            while queue:
                node = queue.popleft()
                first.setdefault(node.name, node)
                queue.extend(node.children)
            self._shallowest = first
        return self._shallowest.get(name)

    def walk(self) -> Iterator[_Node]:
        """Every element in document order, iteratively (deep nesting must not hit recursion limits)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


class _TreeBuilder(DefusedExpatBuilder):  # type: ignore[misc]  # defusedxml ships no types
    """defusedxml's hardened expat set-up, feeding our own small tree instead of a minidom DOM.

    ``install`` first lets defusedxml put its guards on the expat parser (DTD, entity declarations
    and external references raise), then replaces only the element and text callbacks.
    """

    def __init__(self) -> None:
        super().__init__(forbid_dtd=True, forbid_entities=True, forbid_external=True)
        self.root: _Node | None = None
        self._stack: list[_Node] = []
        self.expat: Any = None

    def install(self, parser: Any) -> None:
        super().install(parser)
        self.expat = parser
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._characters
        # Comments, processing instructions and CDATA markers carry nothing we read.
        parser.CommentHandler = None
        parser.ProcessingInstructionHandler = None
        parser.StartCdataSectionHandler = None
        parser.EndCdataSectionHandler = None

    def line(self) -> int | None:
        line = getattr(self.expat, "CurrentLineNumber", None)
        return line if isinstance(line, int) and line > 0 else None

    def _start(self, name: str, attributes: list[str]) -> None:
        # ordered_attributes (set by the builder): [name1, value1, name2, value2, ...]
        attrs = dict(zip(attributes[::2], attributes[1::2], strict=True)) if attributes else {}
        line = self.expat.CurrentLineNumber  # expat's, always an int >= 1 inside a callback
        node = _Node(name, attrs, line if line > 0 else None)
        if self._stack:
            self._stack[-1].children.append(node)
        elif self.root is None:
            self.root = node
        self._stack.append(node)

    def _end(self, name: str) -> None:
        if self._stack:
            self._stack.pop()

    def _characters(self, content: str) -> None:
        if self._stack:
            self._stack[-1].parts.append(content)


def _as_bytes(data: object, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise ParseError(f"{what}: expected bytes, got {type(data).__name__}")


def _parse_tree(data: bytes) -> _Node:
    if len(data) > MAX_CONFIG_BYTES:
        raise ParseError(
            f"config file too large: {len(data)} bytes (limit {MAX_CONFIG_BYTES})", MAX_CONFIG_BYTES
        )
    head = data.lstrip(b" \t\r\n")
    wide = _wide_codec(data)[0] is not None
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip(b" \t\r\n")
    if not head:
        raise ParseError("empty config file: no XML", 0, line=1)
    if not wide and not head.startswith(b"<"):
        # Typical causes: the .sgn header was not stripped, or this is an encrypted .enc.sgn body.
        raise ParseError(
            "not XML: the payload does not start with '<' (signed-file header left on, or encrypted?)",
            len(data) - len(head),
            line=1,
        )

    builder = _TreeBuilder()
    try:
        builder.getParser().Parse(data, True)
    except DTDForbidden as exc:
        raise ParseError(
            "XML document type declaration (DTD) refused: DTDs can declare entities (entity-expansion "
            "'billion laughs', external entities) and phone configs never contain one",
            line=builder.line(),
        ) from exc
    except EntitiesForbidden as exc:  # pragma: no cover - the DTD guard fires first
        raise ParseError(
            "XML entity declaration refused (entity expansion and external entities are not allowed)",
            line=builder.line(),
        ) from exc
    except ExternalReferenceForbidden as exc:  # pragma: no cover - the DTD guard fires first
        raise ParseError("external XML entity reference refused", line=builder.line()) from exc
    except ExpatError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) and exc.lineno > 0 else None
        column = f" (column {exc.offset + 1})" if isinstance(exc.offset, int) and exc.offset >= 0 else ""
        raise ParseError(f"malformed XML: {ErrorString(exc.code)}{column}", line=line) from exc
    except (ValueError, LookupError) as exc:
        # Other expat/codec refusals (an encoding declaration expat cannot map, and the like):
        # still bad input, so still the one declared error.
        raise ParseError(f"unreadable XML: {exc}", line=builder.line()) from exc
    if builder.root is None:  # pragma: no cover - expat reports "no element found" first
        raise ParseError("no XML root element", line=1)
    return builder.root


# ---------------------------------------------------------------------------------------------
# Value readers: tolerant of whitespace and absence, strict about type (a config that says
# <sipPort>abc</sipPort> is not a CUCM file, and saying so beats guessing)


def _int(node: _Node | None) -> int | None:
    if node is None:
        return None
    text = node.text()
    if text is None:
        return None
    try:
        return int(text, 10)
    except ValueError:
        raise ParseError(f"<{node.tag}>: expected an integer, got {text[:40]!r}", line=node.line) from None


def _int_attr(node: _Node, attr: str) -> int | None:
    raw = next((v for k, v in node.attrs.items() if _local(k) == attr), None)
    if raw is None or not raw.strip():
        return None
    try:
        return int(raw.strip(), 10)
    except ValueError:
        raise ParseError(
            f"<{node.tag} {attr}=...>: expected an integer, got {raw[:40]!r}", line=node.line
        ) from None


_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def _bool(node: _Node | None) -> bool | None:
    if node is None:
        return None
    text = node.text()
    if text is None:
        return None
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ParseError(f"<{node.tag}>: expected true or false, got {text[:40]!r}", line=node.line)


def _str(node: _Node | None) -> str | None:
    if node is None or is_secret_name(node.tag):
        return None
    return node.text()


def _bool_attr(node: _Node | None, attr: str) -> bool | None:
    if node is None:
        return None
    raw = next((v for k, v in node.attrs.items() if _local(k) == attr), None)
    if raw is None:
        return None
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ParseError(f"<{node.tag} {attr}=...>: expected true or false, got {raw[:40]!r}", line=node.line)


_HEX_SEPARATORS = re.compile(r"[\s:]+")
_HEX = re.compile(r"[0-9a-fA-F]+")


def _cert_hash(node: _Node | None) -> str | None:
    """certHash as lower-case hex without separators when it is hex (spec: hex MD5), else as written."""
    text = _str(node)
    if text is None:
        return None
    compact = _HEX_SEPARATORS.sub("", text)
    return compact.lower() if _HEX.fullmatch(compact) else text


_URL_USERINFO = re.compile(r"^(?P<head>[A-Za-z][\w+.-]*://[^/@:\s]*:)(?P<password>[^/@\s]*)@")


def _scrub_url(url: str) -> str:
    """``http://user:pw@host/`` -> ``http://user:********@host/``: a URL may embed a password too."""
    return _URL_USERINFO.sub(lambda m: f"{m.group('head')}{REDACTED}@", url)


# ---------------------------------------------------------------------------------------------
# Extraction


def _by_priority(items: list[tuple[int | None, int, _T]]) -> tuple[_T, ...]:
    # Priority order as the phone uses it; ties and missing priorities keep document order.
    items.sort(key=lambda item: (item[0] is None, item[0] if item[0] is not None else 0, item[1]))
    return tuple(item[2] for item in items)


def _tvs(root: _Node) -> tuple[TvsMember, ...]:
    tvs = root.child("tvs") or root.shallowest("tvs")
    members = tvs.child("members") if tvs is not None else None
    if members is None:
        return ()
    found: list[tuple[int | None, int, TvsMember]] = []
    for index, member in enumerate(members.all("member")):
        priority = _int_attr(member, "priority")
        entry = TvsMember(
            address=_str(member.child("address")),
            port=_int(member.child("port")),
            priority=priority,
        )
        found.append((priority, index, entry))
    return _by_priority(found)


# The TVS service's TCP port: where a member that names no <port> is asked.
_TVS_PORT = 2445
# Markup ('<') a config may hold for its TVS members to be read: 5,000 elements with their end
# tags, three times the largest real configs (60 KB, ~1,700 elements). The tree costs ~4 µs per
# element, so MAX_CONFIG_BYTES of empty elements would hold the collector's event loop for over a
# second (measured 1.15 s); at this cap, for at most ~45 ms (10,000 empty elements: 42 ms).
_TVS_MAX_MARKUP = 10_000


def tvs_addresses(xml: bytes) -> tuple[tuple[str, int], ...]:
    """``(address, port)`` of each TVS member of a phone config's XML (the ``.sgn`` header already
    stripped): the members ``parse_device_config`` reports as ``tvs``, in the phone's priority
    order, port 2445 when a member names none.

    For the collector, which decides from these which TVS servers to contact, so it never raises:
    a document ``parse_device_config`` would refuse before reading its members (over
    ``MAX_CONFIG_BYTES``, malformed, a DTD) or whose TVS members carry a port or priority that is
    not a number names no address, nor does one with more markup than any real config (see
    ``_TVS_MAX_MARKUP``); a member without an address, or with a port outside 1..65535, is left
    out. Parsed as every config is (hardened expat, see the module doc)."""
    try:
        data = _as_bytes(xml, "config file")
        if data.count(b"<") > _TVS_MAX_MARKUP:
            return ()
        members = _tvs(_parse_tree(data))
    except ParseError:
        return ()
    found: list[tuple[str, int]] = []
    for m in members:
        port = _TVS_PORT if m.port is None else m.port
        if m.address is not None and 1 <= port <= 65535:
            found.append((m.address, port))
    return tuple(found)


def _call_manager_group(root: _Node) -> _Node | None:
    pool = root.child("devicepool")
    group = pool.child("callmanagergroup") if pool is not None else None
    # XMLDefault.cnf.xml carries the group at the root; tolerate it anywhere.
    return group or root.shallowest("callmanagergroup")


def _call_managers(group: _Node | None) -> tuple[CallManagerMember, ...]:
    members = group.child("members") if group is not None else None
    if members is None:
        return ()
    found: list[tuple[int | None, int, CallManagerMember]] = []
    for index, member in enumerate(members.all("member")):
        cm = member.child("callmanager")
        if cm is None:
            continue
        ports = cm.child("ports")
        priority = _int_attr(member, "priority")
        entry = CallManagerMember(
            priority=priority,
            name=_str(cm.child("name")),
            description=_str(cm.child("description")),
            process_node_name=_str(cm.child("processnodename")),
            ethernet_phone_port=_int(ports.child("ethernetphoneport") if ports else None),
            sip_port=_int(ports.child("sipport") if ports else None),
            secured_sip_port=_int(ports.child("securedsipport") if ports else None),
        )
        found.append((priority, index, entry))
    return _by_priority(found)


def _capf_servers(root: _Node) -> tuple[CapfServer, ...]:
    capf_list = root.child("capflist") or root.shallowest("capflist")
    if capf_list is None:
        return ()
    return tuple(
        CapfServer(
            process_node_name=_str(capf.child("processnodename")),
            phone_port=_int(capf.child("phoneport")),
        )
        for capf in capf_list.all("capf")
    )


def _access_setting(root: _Node, name: str) -> _Node | None:
    for section_name in _ACCESS_SECTIONS:
        section = root.child(section_name)
        node = section.child(name) if section is not None else None
        if node is not None and node.text() is not None:
            return node
    return root.shallowest(name)


def _flat_section(section: _Node | None) -> tuple[tuple[str, str], ...]:
    """Leaf settings of a section as (tag, text) in document order; secret values are redacted."""
    if section is None:
        return ()
    pairs: list[tuple[str, str]] = []
    for node in section.children:
        if node.children:
            continue
        text = node.text() or ""
        if is_secret_name(node.tag) and text:
            text = REDACTED
        pairs.append((node.tag, text))
    return tuple(pairs)


def _urls(root: _Node) -> tuple[tuple[str, str], ...]:
    # Service and authentication URLs sit at the root in CUCM files (authenticationURL,
    # secureDirectoryURL, proxyServerURL, ...). HTTPS ones are validated through TVS (spec 4.2).
    pairs: list[tuple[str, str]] = []
    for node in root.children:
        if node.name.endswith("url") and not is_secret_name(node.tag):
            text = node.text()
            if text is not None:
                pairs.append((node.tag, _scrub_url(text)))
    return tuple(pairs)


def _redacted_fields(root: _Node) -> tuple[str, ...]:
    """Names (never values) of the secret elements and attributes that held a value."""
    nodes = list(root.walk())
    # Whether each element's subtree holds any text, computed bottom-up in one pass (asking each
    # secret element for its subtree text would be quadratic in nesting depth).
    has_text: dict[int, bool] = {}
    for node in reversed(nodes):
        has_text[id(node)] = bool("".join(node.parts).strip()) or any(
            has_text[id(child)] for child in node.children
        )
    names: dict[str, None] = {}
    for node in nodes:
        if is_secret_name(node.tag) and has_text[id(node)]:
            names[node.tag] = None
        for attr, value in node.attrs.items():
            if is_secret_name(attr) and value.strip():
                names[f"{node.tag}@{attr}"] = None
    return tuple(names)


def _device_name(root: _Node) -> str | None:
    # CUCM's SEP<MAC>.cnf.xml usually names no device (the file name does); some generators write
    # a root-level <deviceName> or <name>. Only root children count: <name> is everywhere below.
    for candidate in ("devicename", "name"):
        text = _str(root.child(candidate))
        if text is not None:
            return text
    return None


def parse_device_config(data: bytes, *, with_redacted_fields: bool = True) -> DeviceConfig:
    """Parse a ``SEP<MAC>.cnf.xml`` (or the XML inside its ``.sgn``) into a :class:`DeviceConfig`.

    Raises :class:`~scanner.core.errors.ParseError` (and nothing else) for input that is not a
    well-formed, DTD-free XML document of at most :data:`MAX_CONFIG_BYTES`, or whose known numeric
    or boolean elements hold something else; the error names the line.

    ``with_redacted_fields=False`` leaves ``redacted_fields`` empty: the readiness checks never
    read it, and collecting it is a quarter of the parse (a walk asking every name whether it is
    a secret). Nothing else differs, refusals included (that walk cannot fail).
    """
    root = _parse_tree(_as_bytes(data, "config file"))
    pool = root.child("devicepool")
    group = _call_manager_group(root)
    return DeviceConfig(
        root_tag=root.tag,
        device_name=_device_name(root),
        device_protocol=_str(root.shallowest("deviceprotocol")),
        full_config=_bool(root.shallowest("fullconfig")),
        device_security_mode=_int(root.shallowest("devicesecuritymode")),
        transport_layer_protocol=_int(root.shallowest("transportlayerprotocol")),
        device_pool_name=_str(pool.child("name")) if pool is not None else None,
        call_manager_group_name=_str(group.child("name")) if group is not None else None,
        call_managers=_call_managers(group),
        tvs=_tvs(root),
        capf_auth_mode=_int(root.shallowest("capfauthmode")),
        capf_servers=_capf_servers(root),
        cert_hash=_cert_hash(root.shallowest("certhash")),
        encr_config=_bool(root.shallowest("encrconfig")),
        load_information=_str(root.shallowest("loadinformation")),
        inactive_load_information=_str(root.shallowest("inactiveloadinformation")),
        load_server=_str(_access_setting(root, "loadserver")),
        web_access=_int(_access_setting(root, "webaccess")),
        ssh_access=_int(_access_setting(root, "sshaccess")),
        settings_access=_int(_access_setting(root, "settingsaccess")),
        web_protocol=_int(_access_setting(root, "webprotocol")),
        services_use_https=_bool_attr(root.shallowest("phoneservices"), "usehttps"),
        version_stamp=_str(root.shallowest("versionstamp")),
        urls=_urls(root),
        vendor_config=_flat_section(root.child("vendorconfig")),
        redacted_fields=_redacted_fields(root) if with_redacted_fields else (),
    )


# ---------------------------------------------------------------------------------------------
# Evidence redaction, at the byte level
#
# The stored evidence must be the file as served minus its secrets, byte for byte elsewhere (so
# hashes of unrelated parts and line numbers in reports still match), and it must work on broken
# files too: evidence is often kept precisely because a file did not parse. So this is a small
# scanner over the bytes, not parse-and-reserialise, and it errs towards redacting too much.
#
# The rule, start tag by start tag (``<name ...>``) in document order: a secret attribute's value
# is replaced; a secret element's value is replaced up to its close tag (or through its CDATA
# section, or, when it is never closed, up to the next markup) and the scan goes on after it.
# A start tag holds no '<' but its first byte (quoted values may not hold one), so tags never
# overlap, and a tag whose bytes contain no secret word (_SECRET_WORDS: every secret name
# contains one) comes out unchanged. So only the tags that contain one are visited: a 5 KB
# config costs a few searches (about 35 µs) instead of a Python step per tag (about 470 µs), and
# the collector redacts every config it fetches.

_OPEN_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)")
# The rest of a start tag: quoted values (which may not contain '<' in XML) or other bytes, up
# to '>'. A '<', an unbalanced quote or the end of data before '>' means a broken tag.
_TAG_REST = re.compile(rb"""(?:"[^"<]*"|'[^'<]*'|[^<>"'])*""")
_ATTR = re.compile(rb"""(?<![\w.:-])(?P<name>[A-Za-z_][\w.:-]*)\s*=\s*(?:"(?P<dq>[^"<]*)|'(?P<sq>[^'<]*))""")
# What may follow ``</name`` in a close tag.
_CLOSE_REST = re.compile(rb"\s*>")
_REDACTED_BYTES = REDACTED.encode("ascii")


def _secret_words() -> tuple[bytes, ...]:
    """The words of ``is_secret_name``, lower-case, without those that contain a shorter one
    (finding "psk" finds "wpapsk" too): every secret name contains one of them."""
    words = sorted({*_SECRET_SUBSTRINGS, *_SECRET_NAMES}, key=len)
    kept: list[str] = []
    for word in words:
        if not any(k in word for k in kept):
            kept.append(word)
    return tuple(w.encode("ascii") for w in kept)


# Searched for one by one: a few bytes.find calls cost a quarter of one regex alternation.
_SECRET_WORDS = _secret_words()


def _redact_attrs(tag: bytes) -> bytes:
    def repl(m: re.Match[bytes]) -> bytes:
        name = m.group("name").decode("ascii")
        group = "dq" if m.group("dq") is not None else "sq"
        value = m.group(group)
        if not is_secret_name(name) or not value.strip():
            return m.group(0)
        start, end = m.span(group)
        base = m.start(0)
        whole = m.group(0)
        return whole[: start - base] + _REDACTED_BYTES + whole[end - base :]

    return _ATTR.sub(repl, tag)


def _secret_tags(data: bytes) -> list[tuple[int, int, bytes, bool]]:
    """``(start, end, name, complete)`` of every start tag whose bytes contain a secret word, in
    document order. ``complete``: it ends with '>'; a broken one runs to the next '<' (or the end)."""
    size = len(data)
    # bytes.lower() lowers ASCII letters only: positions do not move. Names are ASCII.
    lowered = data.lower()
    hits: list[int] = []
    for word in _SECRET_WORDS:
        at = lowered.find(word)
        while at >= 0:
            hits.append(at)
            at = lowered.find(word, at + 1)
    hits.sort()
    found: list[tuple[int, int, bytes, bool]] = []
    seen_until = -1
    for at in hits:
        if at < seen_until:
            continue  # the same '<' as the word before: that tag is decided
        # The only '<' a tag holding this word can start with is the last one before it. Words
        # up to the next '<' share it, so each stretch of the file is searched once.
        start = data.rfind(b"<", 0, at)
        nxt = data.find(b"<", at)
        seen_until = size if nxt < 0 else nxt
        if start < 0:
            continue
        m = _OPEN_TAG.match(data, start)
        if m is None:
            continue  # a close tag, comment, declaration or text
        rest = _TAG_REST.match(data, m.end())
        assert rest is not None  # the pattern matches the empty string
        end = rest.end()
        complete = end < size and data[end] == 0x3E  # '>'
        if complete:
            end += 1
        else:
            nxt = data.find(b"<", end)
            end = size if nxt < 0 else nxt
        if at < end:
            found.append((start, end, m.group(1), complete))
    return found


def _close_tag_at(data: bytes, name: bytes, pos: int) -> int:
    """Where the first ``</name>`` (white space allowed before '>') at or after ``pos`` starts, or -1."""
    opener = b"</" + name
    at = data.find(opener, pos)
    while at >= 0 and _CLOSE_REST.match(data, at + len(opener)) is None:
        at = data.find(opener, at + 1)
    return at


def _redact_ascii_compatible(data: bytes) -> bytes:
    tags = _secret_tags(data)
    if not tags:
        return data
    out = bytearray()
    pos = 0
    size = len(data)
    no_close_from: dict[bytes, int] = {}
    no_cdata_end_from = size + 1
    for start, tag_end, raw_name, complete in tags:
        if start < pos:
            continue  # inside a secret value already replaced
        out += data[pos:start]
        tag = data[start:tag_end]
        out += _redact_attrs(tag)
        pos = tag_end
        if not is_secret_name(raw_name.decode("ascii")) or (complete and tag.endswith(b"/>")):
            continue
        # Searches that found nothing are remembered (pos only grows), so a file of a thousand
        # unclosed <sshPassword> tags costs one scan, not a thousand.
        close = -1
        if pos < no_close_from.get(raw_name, size + 1):
            close = _close_tag_at(data, raw_name, pos)
            if close < 0:
                no_close_from[raw_name] = pos
        if close >= 0:
            stop = close
        elif data.startswith(b"<![CDATA[", pos):
            cdata_end = data.find(b"]]>", pos) if pos < no_cdata_end_from else -1
            if cdata_end < 0:
                no_cdata_end_from = min(no_cdata_end_from, pos)
            stop = size if cdata_end < 0 else cdata_end + 3
        else:
            # No end tag (truncated file): the value runs to the next markup, which a value
            # cannot contain.
            nxt = data.find(b"<", pos)
            stop = size if nxt < 0 else nxt
        if data[pos:stop].strip():
            out += _REDACTED_BYTES
            pos = stop
    out += data[pos:]
    return bytes(out)


def redact_config_xml(data: bytes) -> bytes:
    """The config bytes with every secret element's value and secret attribute replaced by ``********``.

    Secret = element or attribute whose name contains "password" (any case: sshPassword,
    adminPassword, phonePassword, authPassword...) or another known secret (see
    :func:`is_secret_name`). Everything else is left byte-for-byte as it was; empty values stay
    empty (there is nothing to hide, and "no password set" is itself an audit finding). Works on
    malformed and truncated files too, erring towards over-redaction; never parses entities.
    UTF-16 and UTF-32 files (with or without BOM) are redacted in, and returned in, their encoding.
    """
    raw = _as_bytes(data, "config file")
    codec, bom = _wide_codec(raw)
    if codec is None:
        # UTF-8, ASCII and the ISO-8859 family keep '<', quotes and tag names as single ASCII bytes.
        return _redact_ascii_compatible(raw)
    body = raw[len(bom) :]
    try:
        text = body.decode(codec, errors="surrogatepass")
    except UnicodeDecodeError:  # truncated file: keep what decodes, mark the rest
        text = body.decode(codec, errors="replace")
    as_utf8 = text.encode("utf-8", errors="surrogatepass")
    redacted = _redact_ascii_compatible(as_utf8).decode("utf-8", errors="surrogatepass")
    return bom + redacted.encode(codec, errors="surrogatepass")


def redact_binary_prefixed(data: bytes) -> bytes:
    """``redact_config_xml`` for XML behind a binary prefix (a signed file whose header does not
    parse): the bytes are taken as ASCII-compatible whatever the first bytes hold, since a
    binary header's NULs would otherwise read as a UTF-16/32 file and hide every secret."""
    return _redact_ascii_compatible(_as_bytes(data, "config file"))


def _wide_codec(raw: bytes) -> tuple[str | None, bytes]:
    """UTF-16/UTF-32 codec and BOM of ``raw``, or (None, b"") for ASCII-compatible data.

    XML in an ASCII-compatible encoding never starts with a NUL byte, so NULs among the first
    bytes mean a wide encoding without BOM. expat reads UTF-16 but not UTF-32; UTF-32 is still
    recognised here so that its secrets are redacted in evidence all the same.
    """
    for bom, codec in (
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    ):
        if raw.startswith(bom):
            return codec, bom
    head = raw[:4]
    if len(head) == 4 and head[0] != 0 and head[1:] == b"\x00\x00\x00":
        return "utf-32-le", b""
    if len(head) == 4 and head[:3] == b"\x00\x00\x00" and head[3] != 0:
        return "utf-32-be", b""
    if len(head) >= 2 and head[1] == 0 and head[0] != 0:
        return "utf-16-le", b""
    if len(head) >= 2 and head[0] == 0 and head[1] != 0:
        return "utf-16-be", b""
    return None, b""


__all__ = [
    "MAX_CONFIG_BYTES",
    "REDACTED",
    "CallManagerMember",
    "CapfServer",
    "DeviceConfig",
    "ParseError",
    "TvsMember",
    "is_secret_name",
    "parse_device_config",
    "redact_binary_prefixed",
    "redact_config_xml",
    "tvs_addresses",
]
