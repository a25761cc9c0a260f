"""The phone inventory: a CUCM Bulk Administration phone export (CSV), or discovery.

Pure: :func:`parse_inventory` takes the CSV bytes. A bad row never sinks the file: it becomes an
issue (``ParseError`` with the 1-based line) and the other rows are used. What is refused:

* a device name that looks like a MAC-based name (``SEP``/``ATA`` prefix) but whose MAC is not
  12 hex digits, an empty device name;
* an IP address that is not an IPv4/IPv6 literal (empty is allowed: the phone is then scanned
  without its web page, and the manifest says so);
* a device listed twice (the second row is refused, naming the first one's line).

Devices that are not MAC-based (Jabber ``CSF``, ``BOT``, ``TCT``... with no CTL/ITL of their own)
are skipped with an issue, because no trust file exists for them on the TFTP servers.

Headers are matched without regard to case, spaces or underscores (``DEVICE NAME``,
``Device Name``, ``device_name``); only the device name column is required.

:func:`parse_config_cache_list` reads a TFTP node's ``ConfigFileCacheList.txt`` (discovery when
there is no inventory): it lists the config files the node caches, one per line, with sizes
and other columns that vary by version; we only keep the bare ``SEP<MAC>.cnf.xml`` names
(:func:`read_config_cache_list` also says which lines only looked like one).
"""

from __future__ import annotations

import csv
import io
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from scanner.core.errors import ParseError

__all__ = [
    "INVENTORY_COLUMNS",
    "CacheList",
    "Inventory",
    "Phone",
    "inventory_csv",
    "normalise_device_name",
    "parse_config_cache_list",
    "parse_inventory",
    "read_config_cache_list",
]

# A CUCM cluster holds at most ~40,000 phones; bulk exports of several clusters stay far below
# 64 MiB. The cap bounds memory for a wrong file passed by mistake.
MAX_INVENTORY_BYTES = 64 << 20
# CUCM device names are at most 15 characters (SEP + 12 hex digits).
MAX_DEVICE_NAME = 15
# Name prefixes whose rest is the MAC address the TFTP file names are built from.
MAC_PREFIXES = ("SEP", "ATA")
_MAC = re.compile(r"[0-9A-F]{12}")
# A cache-list entry is a bare config file name (the node caches files of its own TFTP
# directory, and lists them by name): SEP<MAC>.cnf.xml, optionally .sgn or .enc.sgn.
_CACHE_FILE = re.compile(rb"((?:SEP|ATA)[0-9A-F]{12})\.cnf\.xml(?:\.sgn|\.enc\.sgn)?", re.IGNORECASE)
# Any mention of such a name, to tell a line that is not an entry but looks like one.
_CACHE_MENTION = re.compile(rb"(?:SEP|ATA)[0-9A-F]{12}\.cnf\.xml", re.IGNORECASE)
_CACHE_TOKEN = re.compile(rb"[^\s,;]+")
# A warning quotes at most this much of the line: the list comes from a server, not from us.
_QUOTE = 120

_COLUMNS = {
    "devicename": "name",
    "description": "description",
    "devicetype": "device_type",
    "ipaddress": "ip",
    "ipv4address": "ip",
    "devicepool": "device_pool",
}


@dataclass(frozen=True, slots=True)
class Phone:
    name: str  # "SEP0011223344AA": upper-case, as CUCM names files
    description: str | None = None
    device_type: str | None = None
    ip: str | None = None
    device_pool: str | None = None
    line: int | None = None  # where it came from in the CSV (None: discovered)
    # Why there is no address (``ip`` None), when discovery can tell: "not registered: ...".
    no_address: str | None = None

    @property
    def mac(self) -> str:
        return self.name[3:]


@dataclass(frozen=True, slots=True)
class Inventory:
    phones: tuple[Phone, ...]
    issues: tuple[ParseError, ...]  # rows refused or skipped, each with its line


def _norm_header(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text.strip().lstrip("\ufeff")).lower()


def normalise_device_name(raw: str) -> str:
    """The canonical device name; raises ``ValueError`` with the reason when it is unusable."""
    name = raw.strip().upper()
    if not name:
        raise ValueError("empty device name")
    prefix = name[:3]
    if prefix in MAC_PREFIXES:
        if not _MAC.fullmatch(name[3:]):
            raise ValueError(
                f"invalid MAC in device name {raw.strip()!r}: {prefix} must be followed by 12 hex digits"
            )
        return name
    if len(name) > MAX_DEVICE_NAME:
        raise ValueError(f"device name {raw.strip()!r} is longer than {MAX_DEVICE_NAME} characters")
    raise _NotMacBased(f"device {raw.strip()!r} is not MAC-based (no per-device CTL/ITL): skipped")


class _NotMacBased(ValueError):
    pass


def parse_inventory(data: bytes, *, path: str | None = None) -> Inventory:
    """Parse a CUCM phone export. Raises ``ParseError`` only when no row can be used at all
    (not text, no header, no device name column — with a hint when the file is separated by
    semicolons or tabs — or a header and no row); row problems become ``Inventory.issues``."""
    if len(data) > MAX_INVENTORY_BYTES:
        raise ParseError(f"inventory larger than {MAX_INVENTORY_BYTES} bytes", path=path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # CUCM exports from older releases are Latin-1; every byte decodes.
        text = data.decode("latin-1")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ParseError("empty inventory: no header row", line=1, path=path) from None
    except csv.Error as exc:
        raise ParseError(f"unreadable CSV header: {exc}", line=1, path=path) from None
    columns: dict[str, int] = {}
    for index, title in enumerate(header):
        key = _COLUMNS.get(_norm_header(title))
        if key is not None and key not in columns:
            columns[key] = index
    if "name" not in columns:
        raise ParseError(
            "no 'Device Name' column in the header (a CUCM phone export names it 'Device Name')"
            + _delimiter_hint(header),
            line=1,
            path=path,
        )
    phones: list[Phone] = []
    issues: list[ParseError] = []
    first_line: dict[str, int] = {}
    line = reader.line_num + 1  # the line the next record starts on
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            issues.append(ParseError(f"unreadable CSV row: {exc}", line=line, path=path))
            line = reader.line_num + 1
            continue
        this_line, line = line, reader.line_num + 1
        if not row or all(not cell.strip() for cell in row):
            continue
        try:
            phone = _phone(row, columns, this_line)
        except ParseError as exc:
            issues.append(exc.with_path(path) if path else exc)
            continue
        earlier = first_line.get(phone.name)
        if earlier is not None:
            issues.append(
                ParseError(
                    f"duplicate device {phone.name} (first listed on line {earlier})",
                    line=this_line,
                    path=path,
                )
            )
            continue
        first_line[phone.name] = this_line
        phones.append(phone)
    if not phones and not issues:
        raise ParseError("the inventory lists no phone: only a header row", line=1, path=path)
    return Inventory(tuple(phones), tuple(issues))


_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def _delimiter_hint(header: list[str]) -> str:
    """Why a header with the right words may still have no 'Device Name' column: the file is
    separated by something else than commas (a spreadsheet saved with a locale's ';')."""
    for sep, word in _DELIMITERS.items():
        cells = [c for cell in header for c in cell.split(sep)]
        if len(cells) > len(header) and any(_COLUMNS.get(_norm_header(c)) == "name" for c in cells):
            return (
                f"; the header looks {word}-delimited: trustscan reads comma-separated exports, so "
                f"export the phones again as CSV or replace the {word}s with commas"
            )
    return ""


def _cell(row: list[str], columns: dict[str, int], key: str) -> str | None:
    index = columns.get(key)
    if index is None or index >= len(row):
        return None
    value = row[index].strip()
    return value or None


def _phone(row: list[str], columns: dict[str, int], line: int) -> Phone:
    raw_name = _cell(row, columns, "name") or ""
    try:
        name = normalise_device_name(raw_name)
    except ValueError as exc:
        raise ParseError(str(exc), line=line) from None
    ip = _cell(row, columns, "ip")
    if ip is not None:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise ParseError(f"invalid IP address {ip!r} for {name}", line=line) from None
    return Phone(
        name,
        _cell(row, columns, "description"),
        _cell(row, columns, "device_type"),
        ip,
        _cell(row, columns, "device_pool"),
        line,
    )


@dataclass(frozen=True, slots=True)
class CacheList:
    """What a ``ConfigFileCacheList.txt`` says: device names, and the lines that looked like an
    entry but were not one (each a ``ParseError`` with its 1-based line; a warning, not fatal)."""

    names: tuple[str, ...]
    issues: tuple[ParseError, ...]


def read_config_cache_list(data: bytes, *, path: str | None = None) -> CacheList:
    """Device names in a ``ConfigFileCacheList.txt``, in first-seen order, each once.

    Each line lists one cached file, its name first, then columns that vary by version (size,
    date). Only a token that is exactly a config file name counts: ``/tmp/SEP<MAC>.cnf.xml``, a
    ``SEP<MAC>.cnf.xml.bak`` or a name glued to other text is not a file the node serves to that
    phone, and taking its MAC would add a phantom phone to the scan; such a line is skipped with
    an issue naming its line and text. Lines about other files (``XMLDefault.cnf.xml``) are
    skipped silently."""
    seen: dict[str, None] = {}
    issues: list[ParseError] = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.rstrip(b"\r")
        odd = False
        for token in _CACHE_TOKEN.findall(line):
            m = _CACHE_FILE.fullmatch(token)
            if m is not None:
                seen.setdefault(m.group(1).decode("ascii").upper(), None)
            elif _CACHE_MENTION.search(token):
                odd = True
        if odd:
            text = line.decode("latin-1").strip()
            quoted = text if len(text) <= _QUOTE else text[:_QUOTE] + "..."
            issues.append(
                ParseError(
                    f"not a bare config file name, skipped (no phone taken from it): {quoted!r}",
                    line=number,
                    path=path,
                )
            )
    return CacheList(tuple(seen), tuple(issues))


def parse_config_cache_list(data: bytes) -> tuple[str, ...]:
    """The device names of :func:`read_config_cache_list` (its issues dropped)."""
    return read_config_cache_list(data).names


def merge_discovered(lists: Iterable[tuple[str, ...]]) -> tuple[Phone, ...]:
    """Union of several nodes' discovered device names, as phones without address."""
    seen: dict[str, None] = {}
    for names in lists:
        for name in names:
            seen.setdefault(name, None)
    return tuple(Phone(name) for name in seen)


# What ``inventory_csv`` writes: the columns ``parse_inventory`` reads back, as a CUCM export
# names them, and one for the reviewer ("Note": why a phone has no address) that it ignores.
INVENTORY_COLUMNS = ("Device Name", "Description", "Device Type", "Device Pool", "IP Address", "Note")


def inventory_csv(phones: Iterable[Phone]) -> bytes:
    """The phones as an inventory CSV that :func:`parse_inventory` reads back to the same phones
    (the "Note" column aside): what ``trustscan discover --out`` writes for review."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(INVENTORY_COLUMNS)
    for p in phones:
        w.writerow([p.name, p.description or "", p.device_type or "", p.device_pool or "", p.ip or "", p.no_address or ""])
    return buf.getvalue().encode("utf-8")
