"""The phones' own web pages: Network Setup / Network Configuration, Security and Status Messages.

Sans-IO: every function takes the page (``str``, or ``bytes`` as received) and returns values.
The Network Setup page shows the installed CTL and ITL (their whole-file hash); the Status
Messages page, the last trust-list updates.

Pages are read BY FIELD LABEL, never by position: the label cell's text picks the field, the next
non-empty cell on the same table row is its value. Models and firmware differ in layout (a spacer
cell between label and value on 8841/7945, none on 7841), case ("Security mode" / "Security
Mode"), wording ("Unified CM1" / "CUCM server1"), entities (``&#x2D;``, ``&nbsp;``) and which
fields exist at all: a 7945 shows no CTL/ITL lines, so its trust lists are *unknown* (None), which
is not the same as *not installed* (False).

Other page kinds, read into the same facts:

* XML pages (``/DeviceInformationX``, ``/NetworkConfigurationX``,
  ``/CGI/Java/Serviceability?adapterX=...``): a root element (``<NetworkConfiguration>``,
  ``<DeviceInformation>``...) holding one element per field (``<MACAddress>``, ``<HostName>``,
  ``<TFTPServer1>``...). Each element name is split into words ("TFTPServer1" -> "tftp server 1")
  and matched with the same label patterns as the HTML, so both shapes give the same facts. XML is
  parsed by expat set up by defusedxml: DTDs, entity declarations and external references are
  refused with a :class:`~scanner.core.errors.ParseError`, and the size is capped as for HTML.
* Per-interface labels (DX650/DX80: "Ethernet MAC Address", "Ethernet IP Address", "Wifi MAC
  Address", "Wifi IP Address"): :attr:`PhonePage.interfaces`, and the MAC/IP of the interface that
  has an address.
* A separate security page (``adapter=device.statistics.security``) holding the CTL/ITL lines of
  models whose network page lacks them: :func:`needs_security_page` says when to fetch it and
  :func:`merge_security_page` adds its trust-list facts to the network page's.

Where a page lists the records of both trust lists, the lines after "CTL file"/"CTL signature" up
to "ITL file" are the CTL's and those after the ITL lines are the ITL's (:attr:`PhonePage.ctl_records`,
:attr:`PhonePage.itl_records`); the flat ``tvs``/``trust_list_tftp``/``capf_servers`` keep the union.

Why a hand-written walk over ``html.parser.HTMLParser``: the pages are tiny (~10 KB), real phone
HTML is malformed-ish (unclosed ``<TR>``, stray ``</FONT>``), and the stdlib tokenizer is
forgiving, decodes entities and needs no dependency; all we need from it is "rows of text cells".

Errors: the HTML parsers essentially never raise. Bytes are decoded as UTF-8 with undecodable bytes
replaced (every label and value we read is ASCII; a mangled accent in a locale name costs nothing),
so any ``str`` or ``bytes`` gives a result. :class:`~scanner.core.errors.ParseError` is raised only for
input that is not text at all (not ``str``/``bytes``), larger than :data:`MAX_PAGE_CHARS`, or that
starts as XML (an ``<?xml`` declaration, or a known XML page root) and is malformed or carries a DTD.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from html import unescape as _unescape
from html.parser import HTMLParser
from typing import Any, Literal
from xml.parsers.expat import ErrorString, ExpatError

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.expatbuilder import DefusedExpatBuilder

from scanner.core.errors import ParseError

# Real pages are 3-11 KB. 1 MiB is ~100x that; the cap bounds the memory and CPU a hostile or
# broken "phone" can make us spend (parsing is linear, about 1 s per MiB at worst).
MAX_PAGE_CHARS = 1 << 20

SignatureAlgo = Literal["sha1", "md5"]


class PageKind(StrEnum):
    """Which phone page this is (values as in the vectors' expected.json)."""

    NETWORK_SETUP = "network-setup"
    STATUS_MESSAGES = "status-messages"
    DEVICE_INFORMATION = "device-information"
    SECURITY = "security"  # a separate security / trust-list page (adapter=device.statistics.security)
    UNKNOWN = "unknown"


class PageFormat(StrEnum):
    """How the page was written: the HTML pages, or the XML ("...X") pages."""

    HTML = "html"
    XML = "xml"


class TrustEvent(StrEnum):
    """What a status message says about the trust lists."""

    # "CTL and ITL installed", "CTL Installed", "ITL installed", "Trust List Installed"
    INSTALLED = "installed"
    UPDATED = "updated"  # "Trust List updated"
    FAILED = "failed"  # "CTL update failed", "Trust List update failed"
    NONE_INSTALLED = "none-installed"  # "No Trust List installed"
    ERASED = "erased"  # "Erasing CTL and ITL files"
    NOT_FOUND = "not-found"  # "File Not Found <CTLFile.tlv>" (the cluster is not in mixed mode)


class RecordRole(StrEnum):
    """The role of a trust-list record as a page lists it."""

    TFTP = "tftp"  # "TFTP Server", "CUCM server / TFTP server"
    CAPF = "capf"
    TVS = "tvs"


@dataclass(frozen=True, slots=True)
class PageCallManager:
    """One "Unified CM n" / "CUCM server n" line: a call-control server and its state."""

    address: str
    state: str | None  # "Active", "Standby", or None when the page shows no state


@dataclass(frozen=True, slots=True)
class PageInterface:
    """One network interface as a page labelled per interface shows it ("Ethernet MAC Address")."""

    name: str  # "ethernet" or "wifi"
    mac_address: str | None
    ip_address: str | None


@dataclass(frozen=True, slots=True)
class PageRecord:
    """One trust-list record line: its role and the address (or name) shown."""

    role: RecordRole
    address: str


@dataclass(frozen=True, slots=True)
class PhonePage:
    """Facts from a Network Setup / Network Configuration page.

    None means "the page does not say" (field absent, or a value we cannot read), never "no".
    Signatures are lower-case hex without spaces; ``*_signature_algo`` is the hash that size
    implies (20 bytes = SHA-1, 16 bytes = MD5; None for any other size).
    """

    kind: PageKind
    model: str | None
    device_name: str | None
    host_name: str | None
    mac_address: str | None
    ip_address: str | None
    security_mode: str | None
    web_access: bool | None
    ssh_access: bool | None
    ctl_installed: bool | None
    ctl_signature: str | None
    ctl_signature_algo: SignatureAlgo | None
    itl_installed: bool | None
    itl_signature: str | None
    itl_signature_algo: SignatureAlgo | None
    tvs: tuple[str, ...]
    tftp_servers: tuple[str, ...]  # the phone's configured "TFTP Server 1/2" (IPv4 and IPv6)
    trust_list_tftp: tuple[str, ...]  # trust-list records with the TFTP role ("CUCM server / TFTP server")
    capf_servers: tuple[str, ...]
    call_managers: tuple[PageCallManager, ...]
    fields: tuple[tuple[str, str], ...]  # every label/value pair as shown, for evidence
    # Added later, with defaults so that existing constructions keep working:
    interfaces: tuple[PageInterface, ...] = ()  # per-interface labels (DX series), in page order
    ctl_records: tuple[PageRecord, ...] = ()  # the record lines listed under the CTL
    itl_records: tuple[PageRecord, ...] = ()  # the record lines listed under the ITL
    format: PageFormat = PageFormat.HTML
    # The page links to a separate security page (adapter=device.statistics.security).
    links_security_page: bool = False


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """One status message line: its time stamp as shown (phones print no date), text, meaning."""

    timestamp: str | None
    text: str
    trust_event: TrustEvent | None
    # "Phone failed to register. Cert key size is not FIPS compliant." (no trust-list event: the
    # phone refused a certificate's key size, which no trust-list update will fix).
    fips_key_size: bool = False


@dataclass(frozen=True, slots=True)
class StatusMessages:
    """The Status Messages page: every message in page order and the last trust-list event.

    ``trust_update_failed`` is True when the last trust event is a failure, False otherwise
    (including when no message mentions the trust lists: then ``last_trust_event`` is None).
    """

    kind: PageKind
    model: str | None
    device_name: str | None
    messages: tuple[StatusMessage, ...]
    last_trust_event: str | None
    last_trust_event_kind: TrustEvent | None
    trust_update_failed: bool
    web_access: bool | None  # only if the page has a "Web access" field; fetching it proves nothing more
    format: PageFormat = PageFormat.HTML
    fips_key_size_rejected: bool = False  # some message says a certificate's key size is not FIPS compliant


# ---------------------------------------------------------------------------------------------
# Input


def _to_text(html: object) -> str:
    if isinstance(html, str):
        text = html
    elif isinstance(html, bytes | bytearray | memoryview):
        raw = bytes(html)
        if len(raw) > 4 * MAX_PAGE_CHARS:  # no point decoding what will be refused
            raise ParseError(f"page too large: {len(raw)} bytes", MAX_PAGE_CHARS)
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = raw.decode("utf-16", errors="replace")
        else:
            text = raw.decode("utf-8-sig", errors="replace")
    else:
        raise ParseError(f"phone page: expected text or bytes, got {type(html).__name__}")
    if len(text) > MAX_PAGE_CHARS:
        raise ParseError(f"page too large: {len(text)} characters (limit {MAX_PAGE_CHARS})", MAX_PAGE_CHARS)
    return text


# ---------------------------------------------------------------------------------------------
# Tokenizing: the page as rows of cells, each cell a list of text lines

_BLOCK_TAGS = frozenset(
    {"br", "p", "div", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "pre"}
    | {"center", "form", "blockquote", "caption", "thead", "tbody", "tfoot", "body", "html"}
)
# Text never read. Not "head": a page with an unclosed <head> would otherwise lose its body.
_IGNORED_TAGS = frozenset({"script", "style", "title"})


def _clean(text: str) -> str:
    # str.split() also splits on NBSP (&nbsp;) and the other Unicode spaces.
    return " ".join(text.replace("\u200b", "").replace("\ufeff", "").split())


class _Cell:
    __slots__ = ("buf", "lines", "link")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.buf: list[str] = []
        self.link = False

    def newline(self) -> None:
        if self.buf:
            line = _clean("".join(self.buf))
            self.buf.clear()
            if line:
                self.lines.append(line)

    @property
    def text(self) -> str:
        return " ".join(self.lines)


class _Row:
    __slots__ = ("cells", "table")

    def __init__(self, table: int) -> None:
        self.table = table
        self.cells: list[_Cell] = []


class _Table:
    __slots__ = ("cell", "id", "row")

    def __init__(self, table_id: int) -> None:
        self.id = table_id
        self.row: _Row | None = None
        self.cell: _Cell | None = None


class _Tokenizer(HTMLParser):
    """Turns a page into rows of cells in document order (rows are listed when they open)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[_Row] = []
        self._next_id = 1
        self._tables = [_Table(0)]  # the document itself: cells outside any <table>
        self._loose: _Cell | None = None
        self._pending_link = False  # an <a> opened outside any cell: the next loose text is a link
        self._ignored = 0

    # -- structure

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _close_cell(self, table: _Table) -> None:
        if table.cell is not None:
            table.cell.newline()
            table.cell = None

    def _open_row(self, table: _Table) -> _Row:
        self._close_cell(table)
        row = _Row(table.id)
        self.rows.append(row)
        table.row = row
        return row

    def _flush_loose(self) -> None:
        if self._loose is not None:
            self._loose.newline()
            self._loose = None

    def _current_cell(self) -> _Cell | None:
        return self._tables[-1].cell

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _IGNORED_TAGS:
            self._ignored += 1
            return
        table = self._tables[-1]
        if tag == "body":
            self._ignored = 0  # an unclosed <title> (or the like) ends where the body starts
        if tag == "table":
            self._flush_loose()
            self._tables.append(_Table(self._new_id()))
        elif tag == "tr":
            self._flush_loose()
            self._open_row(table)
        elif tag in ("td", "th"):
            self._flush_loose()
            row = table.row if table.row is not None else self._open_row(table)
            self._close_cell(table)
            table.cell = _Cell()
            row.cells.append(table.cell)
        elif tag == "a":
            cell = self._current_cell() or self._loose
            if cell is not None:
                cell.link = True
            else:
                self._pending_link = True
        elif tag in _BLOCK_TAGS:
            cell = self._current_cell()
            if cell is not None:
                cell.newline()
            else:
                self._flush_loose()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <td/> and friends: a void element starts and ends here.
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "hr"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _IGNORED_TAGS:
            self._ignored = max(0, self._ignored - 1)
            return
        table = self._tables[-1]
        if tag in ("td", "th"):
            self._close_cell(table)
        elif tag == "tr":
            self._close_cell(table)
            table.row = None
        elif tag == "table":
            self._close_cell(table)
            if len(self._tables) > 1:  # a stray </table> never closes the document
                self._tables.pop()
        elif tag in _BLOCK_TAGS:
            cell = self._current_cell()
            if cell is not None:
                cell.newline()
            else:
                self._flush_loose()

    def handle_data(self, data: str) -> None:
        if self._ignored:
            return
        cell = self._current_cell()
        if cell is None:
            if self._loose is None:
                if not data.strip():
                    return
                # Text outside any cell (pages laid out with <br>/<div>): its own one-cell row
                # in its own pseudo-table.
                self._loose = _Cell()
                self._loose.link = self._pending_link
                row = _Row(self._new_id())
                row.cells.append(self._loose)
                self.rows.append(row)
            cell = self._loose
        self._pending_link = False
        cell.buf.append(data)

    # The stdlib raises AssertionError on some malformed "<![...[" marked sections (CPython's
    # _markupbase); a phone page has none that matter, so skip them as the bogus comments they are.
    def parse_marked_section(self, i: int, report: bool = True) -> int:
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            return self.parse_bogus_comment(i)

    def finish(self) -> None:
        for table in self._tables:
            self._close_cell(table)
        self._flush_loose()


# Markup that HTMLParser may see as markup: a tag whose name is an HTML-like name, bounded in
# length and free of '<'; a declaration or processing instruction likewise.
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9-]*(?=[\s/>])[^<>]{0,2048}>")
_DECL = re.compile(r"<[!?][^<>]{0,2048}>")
_RAW_TEXT_END = {
    "script": re.compile(r"</script", re.IGNORECASE),
    "style": re.compile(r"</style", re.IGNORECASE),
}


def _defuse_markup(text: str) -> str:
    """Escape every '<' that does not open well-bounded markup, and drop script/style bodies.

    Why: CPython's HTMLParser rescans to the end of the input from each '<' of an unterminated
    construct ("<a\n<a\n<a..."), which is quadratic: 32 KB of that took ~9 s (the CVE-2025-6069
    family; not fixed in every Python we support). After this linear pass every '<' left opens a
    tag closed by a '>' within 2 KB, a complete comment, or a bounded declaration, so the
    tokenizer never looks far ahead. A side benefit: text such as "File Not Found <CTLFile.tlv>"
    written unescaped stays text ("CTLFile.tlv" is no HTML tag name) instead of vanishing as a tag.
    """
    out: list[str] = []
    pos = 0
    size = len(text)
    no_comment_end_from = size + 1  # memo: no "-->" at or after this index
    while pos < size:
        lt = text.find("<", pos)
        if lt < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:lt])
        if text.startswith("<!--", lt):
            end = -1 if lt + 4 >= no_comment_end_from else text.find("-->", lt + 4)
            if end >= 0:
                out.append(text[lt : end + 3])
                pos = end + 3
                continue
            no_comment_end_from = min(no_comment_end_from, lt + 4)
        else:
            match = _TAG.match(text, lt) or _DECL.match(text, lt)
            if match is not None:
                out.append(match.group(0))
                pos = match.end()
                name = re.match(r"<([a-zA-Z]+)", match.group(0))
                raw_end = _RAW_TEXT_END.get(name.group(1).lower()) if name else None
                if raw_end is not None:
                    # Script and style bodies are never read; skipping them here keeps the
                    # tokenizer's raw-text mode from scanning them at all.
                    close = raw_end.search(text, pos)
                    pos = size if close is None else close.start()
                continue
        out.append("&lt;")
        pos = lt + 1
    return "".join(out)


def _tokenize(text: str) -> list[_Row]:
    tokenizer = _Tokenizer()
    try:
        tokenizer.feed(_defuse_markup(text))
        tokenizer.close()
    except AssertionError as exc:  # pragma: no cover - stdlib "should not get here" paths
        raise ParseError(f"HTML tokenizer gave up: {exc}") from exc
    tokenizer.finish()
    return tokenizer.rows


# ---------------------------------------------------------------------------------------------
# The fast path: one regex walk for the markup phone pages actually use

# The subset read without HTMLParser: start/end tags with plain attributes (quoted values free of
# quotes and '<>', unquoted values free of quotes, '=', '/' and '<>'), comments whose body holds no
# "--" (so that every "--\s*>" rule of every CPython finds the same end) and <!DOCTYPE ...>. Any
# other markup makes the fast path refuse the page, which is then read by the stdlib path.
_FAST_START = re.compile(
    r"<([a-zA-Z][a-zA-Z0-9]*)"
    r"(?:\s+[a-zA-Z_:][-a-zA-Z0-9_:.]*(?:\s*=\s*(?:\"[^\"<>]*\"|'[^'<>]*'|[^\s\"'<>=/`]+))?)*"
    r"\s*(/?)>"
)
_FAST_END = re.compile(r"</([a-zA-Z][a-zA-Z0-9]*)\s*>")
_FAST_DOCTYPE = re.compile(r"<!doctype[^<>\"']*>", re.IGNORECASE)
_FAST_MARKUP = re.compile(
    r"<(?:/?[a-zA-Z][a-zA-Z0-9-]*(?=[\s/>])[^<>]{0,2048}>|[!?][^<>]{0,2048}>)"
)  # the union of _TAG and _DECL: what _defuse_markup keeps as markup
# Elements whose content the stdlib reads in a raw-text mode (which differs between CPython
# releases): the fast path accepts them only as "<x ...>" directly followed by "</x>".
_RAW_TEXT = frozenset({"script", "style", "title", "textarea", "plaintext", "xmp", "iframe"})
_RAW_TEXT_ALL = _RAW_TEXT | {"noscript", "noembed", "noframes"}


class _Refused(Exception):
    """The page holds markup outside the fast path's subset."""


def _tokenize_fast(text: str) -> list[_Row] | None:
    """The rows :func:`_tokenize` gives, without HTMLParser, or None for a page outside the subset.

    Walks the raw text once, deciding each '<' as :func:`_defuse_markup` does (markup it keeps,
    or text it escapes), and feeds the same handlers the stdlib tokenizer calls, with the text
    between tags unescaped as ``convert_charrefs`` does (an escaped '<' unescapes to itself, so
    the raw text can be unescaped directly).
    """
    sink = _Tokenizer()
    text_parts: list[str] = []  # the current run of text, raw (a run ends at markup)
    pos = 0
    size = len(text)
    no_comment_end_from = size + 1
    find = text.find
    unescape = _unescape
    raw_elem: str | None = None  # a raw-text element just opened: its end tag must come next

    def flush() -> None:
        if text_parts:
            raw = "".join(text_parts)
            text_parts.clear()
            if raw:
                sink.handle_data(unescape(raw) if "&" in raw else raw)

    try:
        while pos < size:
            lt = find("<", pos)
            if lt < 0:
                text_parts.append(text[pos:])
                break
            if lt > pos:
                text_parts.append(text[pos:lt])
            if text.startswith("<!--", lt):
                end = -1 if lt + 4 >= no_comment_end_from else find("-->", lt + 4)
                if end >= 0:
                    body = text[lt + 4 : end]
                    if "--" in body or body.startswith((">", "->")) or body.endswith("-") or raw_elem:
                        raise _Refused
                    flush()
                    pos = end + 3
                    continue
                no_comment_end_from = min(no_comment_end_from, lt + 4)
                text_parts.append("<")
                pos = lt + 1
                continue
            match = _FAST_MARKUP.match(text, lt)
            if match is None:
                text_parts.append("<")  # _defuse_markup escapes it: text
                pos = lt + 1
                continue
            markup = match.group(0)
            pos = match.end()
            if raw_elem is not None:
                close = _FAST_END.fullmatch(markup)
                if close is None or close.group(1).lower() != raw_elem:
                    raise _Refused
                raw = "".join(text_parts)
                if "<" in raw or "&" in raw:  # raw-text content: read alike only when plain
                    raise _Refused
                flush()
                raw_elem = None
                sink.handle_endtag(close.group(1).lower())
                continue
            start = _FAST_START.fullmatch(markup)
            if start is not None:
                flush()
                tag = start.group(1).lower()
                if start.group(2):
                    if tag in _RAW_TEXT_ALL:
                        raise _Refused
                    sink.handle_startendtag(tag, [])
                    continue
                if tag in _RAW_TEXT_ALL and tag not in _RAW_TEXT:
                    raise _Refused
                sink.handle_starttag(tag, [])
                if tag in _RAW_TEXT:
                    raw_elem = tag
                    raw_end = _RAW_TEXT_END.get(tag)
                    if raw_end is not None:  # script/style bodies: skipped, as _defuse_markup does
                        close_at = raw_end.search(text, pos)
                        pos = size if close_at is None else close_at.start()
                continue
            close = _FAST_END.fullmatch(markup)
            if close is not None:
                flush()
                sink.handle_endtag(close.group(1).lower())
                continue
            if _FAST_DOCTYPE.fullmatch(markup):
                flush()
                continue
            raise _Refused
        if raw_elem is not None and (text_parts or raw_elem not in _RAW_TEXT_END):
            raise _Refused  # an unclosed raw-text element: the stdlib's end-of-input rules apply
        flush()
    except _Refused:
        return None
    sink.finish()
    return sink.rows


def _tokenize_rows(text: str) -> list[_Row]:
    """The page's rows: the fast walk, else (markup outside its subset) the stdlib tokenizer."""
    rows = _tokenize_fast(text)
    return rows if rows is not None else _tokenize(text)


# ---------------------------------------------------------------------------------------------
# The page as a document: heading, label/value pairs


_MAX_HEADING = 300
_HEADING = re.compile(r"^(?P<lead>.*?\bcisco\b.*?)\s*\(\s*(?P<name>[^()\s]+)\s*\)$", re.IGNORECASE)
_MODEL_AFTER_PHONE = re.compile(r"\bphone\s+(?P<model>.+)$", re.IGNORECASE)


def _label_key(label: str) -> str:
    """A label for matching: lower-case, single spaces, no trailing colon."""
    return _clean(label).casefold().rstrip(":").strip()


@dataclass(frozen=True, slots=True)
class _Doc:
    rows: list[_Row]
    pairs: list[tuple[str, str]]  # (label as shown, value) in page order
    keys: list[str]  # per pair, the label as matched (see _label_key / _xml_key)
    title: str | None
    model: str | None
    device_name: str | None
    heading_cell: _Cell | None
    format: PageFormat = PageFormat.HTML
    links_security_page: bool = False

    def values(self, pattern: re.Pattern[str]) -> list[str]:
        return [
            value for key, (_, value) in zip(self.keys, self.pairs, strict=True) if pattern.fullmatch(key)
        ]

    def first(self, pattern: re.Pattern[str]) -> str | None:
        for value in self.values(pattern):
            if value:
                return value
        return None

    def has(self, pattern: re.Pattern[str]) -> bool:
        return any(pattern.fullmatch(key) for key in self.keys)


def _pairs(rows: list[_Row]) -> list[tuple[str, str]]:
    # The menu (a table of links, with bold section names between them) is no field list: a row
    # whose label is a link, or a lone cell in a table holding links, is left out.
    link_tables = {row.table for row in rows for cell in row.cells if cell.link}
    pairs: list[tuple[str, str]] = []
    for row in rows:
        cells = [cell.text for cell in row.cells]
        filled = [i for i, text in enumerate(cells) if text]
        if not filled or row.cells[filled[0]].link:
            continue
        label = cells[filled[0]]
        rest = [cells[i] for i in filled[1:]]
        if rest:
            pairs.append((label, rest[0]))
            continue
        if row.table in link_tables:
            continue
        # A lone cell: a label whose value cell is empty, or "Label: value" lines (one per <br>).
        for line in row.cells[filled[0]].lines:
            head, sep, tail = line.partition(":")
            if sep and tail.strip() and _known_label(head):
                pairs.append((head.strip(), tail.strip()))
            else:
                pairs.append((line, ""))
    return pairs


def _heading(rows: list[_Row]) -> tuple[str | None, str | None, str | None, _Cell | None]:
    """(page title, model, device name, the heading cell) from "Cisco ... Phone MODEL ( NAME )"."""
    previous: str | None = None
    for row in rows:
        for cell in row.cells:
            for index, line in enumerate(cell.lines):
                # Real headings are ~60 characters; the length cap keeps the regex cheap on junk.
                match = _HEADING.match(line) if len(line) <= _MAX_HEADING else None
                if match is None:
                    previous = line
                    continue
                lead = match.group("lead").strip()
                after = _MODEL_AFTER_PHONE.search(lead)
                if after is not None:
                    model: str | None = after.group("model").strip()
                else:
                    model = re.sub(r"^cisco\s+", "", lead, flags=re.IGNORECASE).strip()
                title = cell.lines[index - 1] if index > 0 else previous
                return title, model or None, match.group("name"), cell
    return None, None, None, None


# A link (or any mention) of the separate security page: "...Serviceability?adapter=device.statistics.security".
_SECURITY_LINK = re.compile(r"device\.statistics\.security", re.IGNORECASE)


def _document(html: str | bytes, tokenize: Callable[[str], list[_Row]] = _tokenize_rows) -> _Doc:
    text = _to_text(html)
    if _looks_like_xml(text):
        return _xml_document(html, text)
    rows = tokenize(text)
    title, model, name, heading_cell = _heading(rows)
    pairs = _pairs([row for row in rows if heading_cell not in row.cells])
    keys = [_label_key(label) for label, _ in pairs]
    linked = _SECURITY_LINK.search(text) is not None
    return _Doc(rows, pairs, keys, title, model, name, heading_cell, PageFormat.HTML, linked)


# ---------------------------------------------------------------------------------------------
# XML pages ("/NetworkConfigurationX", "?adapterX=device.statistics.configuration", ...)

# Roots of the phones' XML pages, for recognising one that omits the "<?xml ...?>" declaration.
_XML_ROOTS = frozenset(
    {
        "DeviceInformation",
        "NetworkConfiguration",
        "NetworkSetup",
        "StatusMessages",
        "SecuritySetup",
        "SecurityInformation",
        "Security",
        "TrustList",
    }
)
_LEADING = re.compile(r"(?:\s+|<\?.{0,512}?\?>|<!--.{0,4096}?-->)*", re.DOTALL)
_FIRST_TAG = re.compile(
    r"<(?:!doctype\s+(?P<doctype>[A-Za-z_][\w.:-]*)|(?P<name>[A-Za-z_][\w.:-]*))", re.IGNORECASE
)
# Words of an element name: "TFTPServer1" -> TFTP Server 1, "phoneDN" -> phone DN, "IPv6Address".
_XML_WORDS = re.compile(r"IPv[46]|[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
# Bound on element nesting: the phones' pages are one level deep; this stops a hostile page from
# making the tree walk (and memory) follow a million nested elements.
_MAX_XML_DEPTH = 32


def _looks_like_xml(text: str) -> bool:
    """An XML page: it starts with an ``<?xml`` declaration or with a known page root, and is no
    XHTML page (a ``<!DOCTYPE html>`` or an ``<html>`` root is read as HTML)."""
    head = text[:8192].lstrip("\ufeff \t\r\n")
    declared = head.startswith("<?xml")
    lead = _LEADING.match(head)
    tag = _FIRST_TAG.match(head, lead.end() if lead else 0)
    if tag is None:
        return declared  # "<?xml ...?>" then no element: malformed XML, said so by the XML parser
    name = tag.group("doctype") or tag.group("name")
    if name.casefold() == "html":
        return False
    return declared or name in _XML_ROOTS


def _xml_key(name: str) -> str:
    """An element name as a label key: "TFTPServer1" -> "tftp server 1" (namespace prefix dropped)."""
    return " ".join(_XML_WORDS.findall(name.rpartition(":")[2])).casefold()


class _XmlNode:
    __slots__ = ("children", "name", "parts")

    def __init__(self, name: str) -> None:
        self.name = name
        self.children: list[_XmlNode] = []
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return _clean("".join(self.parts))


class _XmlBuilder(DefusedExpatBuilder):  # type: ignore[misc]  # defusedxml ships no types
    """defusedxml's hardened expat set-up (DTD, entity declarations and external references
    refused), feeding a small tree of element names and texts instead of a minidom DOM. The
    namespace-free builder is used, as in ``devconfig``, because it imports no network modules."""

    def __init__(self) -> None:
        super().__init__(forbid_dtd=True, forbid_entities=True, forbid_external=True)
        self.root: _XmlNode | None = None
        self._stack: list[_XmlNode] = []
        self.expat: Any = None

    def install(self, parser: Any) -> None:
        super().install(parser)
        self.expat = parser
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._characters
        parser.CommentHandler = None
        parser.ProcessingInstructionHandler = None

    def line(self) -> int | None:
        line = getattr(self.expat, "CurrentLineNumber", None)
        return line if isinstance(line, int) and line > 0 else None

    def _start(self, name: str, attributes: list[str]) -> None:
        if len(self._stack) >= _MAX_XML_DEPTH:
            raise ParseError(f"XML page nested deeper than {_MAX_XML_DEPTH} elements", line=self.line())
        node = _XmlNode(name)
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


def _xml_tree(raw: str | bytes) -> _XmlNode:
    builder = _XmlBuilder()
    try:
        builder.getParser().Parse(raw, True)
    except DTDForbidden as exc:
        raise ParseError(
            "XML page: document type declaration (DTD) refused (DTDs can declare entities: entity "
            "expansion, external entities; phone pages never carry one)",
            line=builder.line(),
        ) from exc
    except EntitiesForbidden as exc:  # pragma: no cover - the DTD guard fires first
        raise ParseError("XML page: entity declaration refused", line=builder.line()) from exc
    except ExternalReferenceForbidden as exc:  # pragma: no cover - the DTD guard fires first
        raise ParseError("XML page: external entity reference refused", line=builder.line()) from exc
    except ExpatError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) and exc.lineno > 0 else None
        column = f" (column {exc.offset + 1})" if isinstance(exc.offset, int) and exc.offset >= 0 else ""
        raise ParseError(f"XML page: malformed XML: {ErrorString(exc.code)}{column}", line=line) from exc
    except (ValueError, LookupError) as exc:
        if isinstance(exc, ParseError):
            raise
        raise ParseError(f"XML page: unreadable XML: {exc}", line=builder.line()) from exc
    if builder.root is None:  # pragma: no cover - expat reports "no element found" first
        raise ParseError("XML page: no root element", line=1)
    return builder.root


def _walk(root: _XmlNode) -> Iterator[tuple[_XmlNode, _XmlNode | None]]:
    """(element, parent) in document order, iteratively."""
    stack: list[tuple[_XmlNode, _XmlNode | None]] = [(root, None)]
    while stack:
        node, parent = stack.pop()
        yield node, parent
        stack.extend((child, node) for child in reversed(node.children))


def _xml_document(page: str | bytes, text: str) -> _Doc:
    # Bytes go to expat as received (it honours the declared encoding, "iso-8859-1" on 79xx);
    # text, and UTF-16 bytes already decoded by _to_text, go as text.
    raw: str | bytes = text
    if isinstance(page, bytes | bytearray | memoryview):
        data = bytes(page)
        if not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raw = data
    root = _xml_tree(raw)
    pairs: list[tuple[str, str]] = []
    rows: list[_Row] = []
    for node, parent in _walk(root):
        if node is root:
            continue
        if not node.children:
            pairs.append((node.name, node.text))
        # Message lines: a text element directly under the root, or an element whose children are
        # all text ("<message><time>9:14:41p</time><text>...</text></message>"): one line each.
        line = None
        if parent is root and not node.children:
            # A field ("<HostName>") is no message; any other text element under the root is.
            line = None if _known_key(_xml_key(node.name)) else node.text
        elif node.children and all(not child.children for child in node.children):
            line = " ".join(child.text for child in node.children if child.text)
        if line:
            cell = _Cell()
            cell.lines.append(line)
            row = _Row(1)
            row.cells.append(cell)
            rows.append(row)
    keys = [_xml_key(name) for name, _ in pairs]
    doc = _Doc(rows, pairs, keys, _xml_key(root.name), None, None, None, PageFormat.XML)
    linked = _SECURITY_LINK.search(text) is not None
    return _Doc(
        rows, pairs, keys, doc.title, doc.first(_L_MODEL), doc.first(_L_HOST), None, PageFormat.XML, linked
    )


# ---------------------------------------------------------------------------------------------
# Labels (matched against the lower-cased label, whole label only)

_L_SECURITY_MODE = re.compile(r"security mode")
_L_WEB_ACCESS = re.compile(r"web access(?: enabled)?")
_L_SSH_ACCESS = re.compile(r"ssh access(?: enabled)?")
_L_CTL = re.compile(r"ctl(?: file)?(?: status)?")
_L_ITL = re.compile(r"itl(?: file)?(?: status)?")
_L_CTL_SIG = re.compile(r"ctl(?: file)? (?:signature|hash|checksum)")
_L_ITL_SIG = re.compile(r"itl(?: file)? (?:signature|hash|checksum)")
_L_TVS = re.compile(r"tvs(?: server)?(?: ?\d+)?")
_L_TFTP_N = re.compile(r"(?:ipv6 )?tftp server ?\d+")
# A trust-list record with the TFTP role: "TFTP Server" (7841) or "CUCM server / TFTP server" (8841).
_L_TL_TFTP = re.compile(r"(?:(?:cucm|unified cm|callmanager|call manager)(?: server)? ?/ ?)?tftp server")
_L_CAPF = re.compile(r"capf server(?: ?\d+)?")
_L_CM = re.compile(r"(?:unified cm|cucm server|cucm|callmanager|call manager) ?\d+")
_L_HOST = re.compile(r"host ?name")
_L_MAC = re.compile(r"mac address")
_L_IP = re.compile(r"ip address")
_L_MODEL = re.compile(r"model(?: number)?")
# Per-interface labels (DX650/DX80): "Ethernet MAC Address", "Wifi IP Address".
_INTERFACE = r"(?P<interface>ethernet|wi-?fi|wireless|wlan)"
_L_IF_MAC = re.compile(_INTERFACE + r" mac address")
_L_IF_IP = re.compile(_INTERFACE + r" ip(?:v4)? address")

_KNOWN_LABELS = (
    _L_SECURITY_MODE,
    _L_WEB_ACCESS,
    _L_SSH_ACCESS,
    _L_CTL,
    _L_ITL,
    _L_CTL_SIG,
    _L_ITL_SIG,
    _L_TVS,
    _L_TFTP_N,
    _L_TL_TFTP,
    _L_CAPF,
    _L_CM,
    _L_HOST,
    _L_MAC,
    _L_IP,
    _L_MODEL,
    _L_IF_MAC,
    _L_IF_IP,
)
# Labels that only a network page has (for recognising one without its heading).
_NETWORK_ONLY = (_L_SECURITY_MODE, _L_TFTP_N, _L_CTL, _L_ITL, _L_HOST, _L_MAC, _L_CM, _L_IF_MAC, _L_IF_IP)


def _known_key(key: str) -> bool:
    return any(pattern.fullmatch(key) for pattern in _KNOWN_LABELS)


def _known_label(label: str) -> bool:
    return _known_key(_label_key(label))


# ---------------------------------------------------------------------------------------------
# Values

_YES = frozenset({"yes", "enabled", "enable", "true", "on", "1"})
_NO = frozenset({"no", "disabled", "disable", "false", "off", "0"})
_UNSET = frozenset({"", "::", "0.0.0.0", "none", "---"})


def _yes_no(value: str | None) -> bool | None:
    if value is None:
        return None
    key = value.casefold()
    if key in _YES:
        return True
    if key in _NO:
        return False
    return None


def _installed(value: str | None) -> bool | None:
    if value is None:
        return None
    key = value.casefold()
    if key.startswith(("not", "no ")) or key in {"no", "none", "absent", "missing"}:
        return False
    if "installed" in key or key in {"yes", "present"}:
        return True
    return None


_SIG_SEPARATORS = re.compile(r"[\s:\-]+")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")
_ALGO_BY_SIZE: dict[int, SignatureAlgo] = {20: "sha1", 16: "md5"}


def _signature(value: str | None) -> tuple[str | None, SignatureAlgo | None]:
    if value is None:
        return None, None
    compact = _SIG_SEPARATORS.sub("", value).casefold()
    if not _HEX.fullmatch(compact):
        return None, None
    return compact, _ALGO_BY_SIZE.get(len(compact) // 2)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    # Order kept, repeats dropped: the 8841 lists the same TFTP record under CTL and under ITL.
    seen: dict[str, None] = {}
    for value in values:
        if value.casefold() not in _UNSET:
            seen.setdefault(value, None)
    return tuple(seen)


_CM_STATES = ("not registered", "registered", "active", "standby")


def _call_managers(values: Iterable[str]) -> tuple[PageCallManager, ...]:
    found: list[PageCallManager] = []
    for value in values:
        # "cucm2.example.com  Active": the state, when shown, is the last word(s) of the value.
        address, state = value, None
        low = value.casefold()
        for candidate in _CM_STATES:
            if low.endswith(" " + candidate):
                address, state = value[: -len(candidate)].strip(), value[-len(candidate) :]
                break
        if address.casefold() not in _UNSET:
            found.append(PageCallManager(address, state))
    return tuple(found)


# ---------------------------------------------------------------------------------------------
# Page kind


def _kind(doc: _Doc) -> PageKind:
    title = (doc.title or "").casefold()
    if "status message" in title:
        return PageKind.STATUS_MESSAGES
    if "network" in title and ("setup" in title or "config" in title):
        return PageKind.NETWORK_SETUP
    if "device information" in title:
        return PageKind.DEVICE_INFORMATION
    if "security" in title or "trust list" in title:
        return PageKind.SECURITY
    # No recognisable heading: judge by content.
    if sum(doc.has(pattern) for pattern in _NETWORK_ONLY) >= 2:
        return PageKind.NETWORK_SETUP
    if any(_TIMESTAMPED.match(line) for row in doc.rows for cell in row.cells for line in cell.lines):
        return PageKind.STATUS_MESSAGES
    return PageKind.UNKNOWN


def detect_page(html: str | bytes) -> PageKind:
    """Which page this is: by its heading ("Network Setup", "Status Messages"...), else by content."""
    return _kind(_document(html))


# ---------------------------------------------------------------------------------------------
# Network Setup / Network Configuration


def _interfaces(doc: _Doc) -> tuple[PageInterface, ...]:
    found: dict[str, list[str | None]] = {}
    for key, (_, value) in zip(doc.keys, doc.pairs, strict=True):
        match = _L_IF_MAC.fullmatch(key) or _L_IF_IP.fullmatch(key)
        if match is None:
            continue
        name = "ethernet" if match.group("interface") == "ethernet" else "wifi"
        slot = found.setdefault(name, [None, None])
        index = 0 if match.re is _L_IF_MAC else 1
        if slot[index] is None and value and value.casefold() not in _UNSET:
            slot[index] = value
    return tuple(PageInterface(name, mac, ip) for name, (mac, ip) in found.items())


def _primary(interfaces: tuple[PageInterface, ...]) -> PageInterface | None:
    """The interface the phone is reached on: the first with an address (Ethernet is listed first
    on DX pages), else the first with a MAC."""
    for interface in interfaces:
        if interface.ip_address is not None:
            return interface
    return next((i for i in interfaces if i.mac_address is not None), None)


def _records(doc: _Doc) -> tuple[tuple[PageRecord, ...], tuple[PageRecord, ...]]:
    """The record lines under the CTL lines and under the ITL lines (8841: "CTL file", "CTL
    signature", "CAPF server", "CUCM server / TFTP server", then "ITL file"... "TVS"...). A line
    that is neither a trust-list line nor a record ends the section."""
    ctl: list[PageRecord] = []
    itl: list[PageRecord] = []
    section: list[PageRecord] | None = None
    for key, (_, value) in zip(doc.keys, doc.pairs, strict=True):
        if _L_CTL.fullmatch(key) or _L_CTL_SIG.fullmatch(key):
            section = ctl
            continue
        if _L_ITL.fullmatch(key) or _L_ITL_SIG.fullmatch(key):
            section = itl
            continue
        role = (
            RecordRole.TFTP
            if _L_TL_TFTP.fullmatch(key)
            else RecordRole.CAPF
            if _L_CAPF.fullmatch(key)
            else RecordRole.TVS
            if _L_TVS.fullmatch(key)
            else None
        )
        if role is None:
            section = None
        elif section is not None and value.casefold() not in _UNSET:
            section.append(PageRecord(role, value))
    return tuple(ctl), tuple(itl)


def _network(doc: _Doc) -> PhonePage:
    ctl_signature, ctl_algo = _signature(doc.first(_L_CTL_SIG))
    itl_signature, itl_algo = _signature(doc.first(_L_ITL_SIG))
    ctl_installed = _installed(doc.first(_L_CTL))
    itl_installed = _installed(doc.first(_L_ITL))
    # A phone shows a signature only for a file it holds; use that when the status line is missing.
    if ctl_installed is None and ctl_signature is not None:
        ctl_installed = True
    if itl_installed is None and itl_signature is not None:
        itl_installed = True
    interfaces = _interfaces(doc)
    primary = _primary(interfaces)
    ctl_records, itl_records = _records(doc)
    return PhonePage(
        kind=_kind(doc),
        model=doc.model or doc.first(_L_MODEL),
        device_name=doc.device_name or doc.first(_L_HOST),
        host_name=doc.first(_L_HOST),
        mac_address=doc.first(_L_MAC) or (primary.mac_address if primary else None),
        ip_address=doc.first(_L_IP) or (primary.ip_address if primary else None),
        security_mode=doc.first(_L_SECURITY_MODE),
        web_access=_yes_no(doc.first(_L_WEB_ACCESS)),
        ssh_access=_yes_no(doc.first(_L_SSH_ACCESS)),
        ctl_installed=ctl_installed,
        ctl_signature=ctl_signature,
        ctl_signature_algo=ctl_algo,
        itl_installed=itl_installed,
        itl_signature=itl_signature,
        itl_signature_algo=itl_algo,
        tvs=_unique(doc.values(_L_TVS)),
        tftp_servers=_unique(doc.values(_L_TFTP_N)),
        trust_list_tftp=_unique(doc.values(_L_TL_TFTP)),
        capf_servers=_unique(doc.values(_L_CAPF)),
        call_managers=_call_managers(doc.values(_L_CM)),
        fields=tuple(doc.pairs),
        interfaces=interfaces,
        ctl_records=ctl_records,
        itl_records=itl_records,
        format=doc.format,
        links_security_page=doc.links_security_page,
    )


def parse_network_page(html: str | bytes) -> PhonePage:
    """Read a Network Setup / Network Configuration page (HTML or XML). Missing fields are None / ()."""
    return _network(_document(html))


def parse_security_page(html: str | bytes) -> PhonePage:
    """Read a separate security / trust-list page (``adapter=device.statistics.security``): the
    same fields as a network page (most of them absent), its ``kind`` saying what it was."""
    return _network(_document(html))


# A trust-list line of any page shape: "CTL file", "ITL Signature", "<CTLFile>", "<ITLSignature>"
# (but not "Title"): the word CTL/ITL on its own or as the start of an element name.
_TRUST_WORD = re.compile(r"\b[ci]tl(?:\b|file|sig|status)", re.IGNORECASE)


def security_page_wanted(page: str | bytes) -> bool:
    """Whether a network page sends us to the separate security page: it links to it, or it shows
    no CTL/ITL line at all. A cheap text search (no parse: it runs once per phone while
    collecting); a page that cannot be read as text is not followed."""
    try:
        text = _to_text(page)
    except ParseError:
        return False
    return _SECURITY_LINK.search(text) is not None or _TRUST_WORD.search(text) is None


def merge_security_page(network: PhonePage, security: PhonePage) -> PhonePage:
    """The network page's facts completed with the security page's trust-list facts.

    Each trust-list fact the network page leaves unknown (None, or no records) is taken from the
    security page; where both show one, the network page's stands (it is the page the phone's own
    menu calls the network setup). Lists of servers are joined without repeats; ``fields`` keeps
    both pages' pairs, network page first.
    """

    def pick(a: Any, b: Any) -> Any:
        return a if a is not None else b

    ctl_signature: str | None
    itl_signature: str | None
    if network.ctl_signature is not None:
        ctl_signature, ctl_algo = network.ctl_signature, network.ctl_signature_algo
    else:
        ctl_signature, ctl_algo = security.ctl_signature, security.ctl_signature_algo
    if network.itl_signature is not None:
        itl_signature, itl_algo = network.itl_signature, network.itl_signature_algo
    else:
        itl_signature, itl_algo = security.itl_signature, security.itl_signature_algo
    return replace(
        network,
        security_mode=pick(network.security_mode, security.security_mode),
        ctl_installed=pick(network.ctl_installed, security.ctl_installed),
        ctl_signature=ctl_signature,
        ctl_signature_algo=ctl_algo,
        itl_installed=pick(network.itl_installed, security.itl_installed),
        itl_signature=itl_signature,
        itl_signature_algo=itl_algo,
        tvs=_unique((*network.tvs, *security.tvs)),
        trust_list_tftp=_unique((*network.trust_list_tftp, *security.trust_list_tftp)),
        capf_servers=_unique((*network.capf_servers, *security.capf_servers)),
        ctl_records=network.ctl_records or security.ctl_records,
        itl_records=network.itl_records or security.itl_records,
        fields=network.fields + security.fields,
    )


# ---------------------------------------------------------------------------------------------
# Status Messages

# "9:52:58p", "10:00:54 PM", "21:52:58", optionally after a date ("12/03/2019 10:36:07").
_TIMESTAMPED = re.compile(
    r"^(?P<stamp>(?:\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}\s+)?\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m?\.?)?)"
    r"\s+(?P<text>\S.*)$",
    re.IGNORECASE,
)
_MAX_MESSAGE = 512
# "Trust List", "TrustList", "Trust-List" (firmware and locales differ), "CTL", "ITL".
_MENTIONS_TRUST = re.compile(r"\b(?:ctl|itl|trust[ -]?lists?)\b")
# "File Not Found <CTLFile.tlv>", "ITLSEP<MAC>.tlv not found", "CTL file not found"
_TRUST_FILE_NOT_FOUND = re.compile(
    r"not found.*\b(?:ctl|itl)\w*\.tlv\b|\b(?:ctl|itl)(?:\w*\.tlv| file)\b.*\bnot found"
)
_NONE_INSTALLED = re.compile(r"\bno (?:ctl|itl|trust[ -]?lists?)\b")
_ERASED = re.compile(r"\b(?:eras|delet|remov)")
_UPDATED = re.compile(r"\bupdated?\b")
_INSTALLED = re.compile(r"\binstalled\b")


# "Phone failed to register. Cert key size is not FIPS compliant." (8800 guide's status messages)
_FIPS_KEY_SIZE = re.compile(r"\bkey[ -]?size\b.*\bfips\b|\bfips\b.*\bkey[ -]?size\b")


def is_fips_key_size_message(text: str) -> bool:
    """The message a phone in FIPS mode shows when a certificate's key is too small to register.
    No trust-list event (:func:`classify_trust_message` gives None): it is reported on its own."""
    return _FIPS_KEY_SIZE.search(_clean(text[:_MAX_MESSAGE]).casefold()) is not None


def classify_trust_message(text: str) -> TrustEvent | None:
    """The trust-list meaning of one status message (the firmware's phrases, tolerant of wording).

    The 8800 guide's texts: "CTL and ITL installed", "CTL Installed", "ITL installed" (INSTALLED);
    "Trust List updated" (UPDATED); "CTL update failed", "Trust List update failed" and its
    variants ("... verification failure") (FAILED); "No Trust List installed" (NONE_INSTALLED);
    "Erasing CTL and ITL files" (ERASED); "File Not Found <CTLFile.tlv>" (NOT_FOUND). Case and
    spacing do not matter.
    """
    # Real messages are short; the cap keeps the searches linear on a hostile page's junk.
    key = _clean(text[:_MAX_MESSAGE]).casefold()
    mentions = _MENTIONS_TRUST.search(key) is not None
    if mentions and "fail" in key:
        return TrustEvent.FAILED
    if _TRUST_FILE_NOT_FOUND.search(key):
        return TrustEvent.NOT_FOUND
    if not mentions:
        return None
    if _NONE_INSTALLED.search(key):
        return TrustEvent.NONE_INSTALLED
    if _ERASED.search(key):
        return TrustEvent.ERASED
    if _UPDATED.search(key):
        return TrustEvent.UPDATED
    if _INSTALLED.search(key):
        return TrustEvent.INSTALLED
    return None


def _message_lines(doc: _Doc) -> list[str]:
    """The message lines: content tables (no links: not the menu) holding time-stamped lines.

    Fallbacks, for layouts unlike the real pages: any time-stamped line outside links; and with
    no time stamps at all, every line of the content tables.
    """
    link_tables = {row.table for row in doc.rows for cell in row.cells if cell.link}

    def lines(rows: Iterable[_Row]) -> Iterator[tuple[int, str]]:
        for row in rows:
            for cell in row.cells:
                if cell is doc.heading_cell or cell.link:
                    continue
                for line in cell.lines:
                    yield row.table, line

    content = [(table, line) for table, line in lines(doc.rows) if table not in link_tables]
    stamped_tables = {table for table, line in content if _TIMESTAMPED.match(line)}
    if stamped_tables:
        return [line for table, line in content if table in stamped_tables]
    stamped = [line for _, line in lines(doc.rows) if _TIMESTAMPED.match(line)]
    if stamped:
        return stamped
    return [line for _, line in content if line != doc.title]


def _status(doc: _Doc) -> StatusMessages:
    messages: list[StatusMessage] = []
    for line in _message_lines(doc):
        match = _TIMESTAMPED.match(line)
        stamp, text = (match.group("stamp"), match.group("text")) if match else (None, line)
        messages.append(
            StatusMessage(stamp, text, classify_trust_message(text), is_fips_key_size_message(text))
        )
    last = next((m for m in reversed(messages) if m.trust_event is not None), None)
    return StatusMessages(
        kind=_kind(doc),
        model=doc.model,
        device_name=doc.device_name,
        messages=tuple(messages),
        last_trust_event=last.text if last else None,
        last_trust_event_kind=last.trust_event if last else None,
        trust_update_failed=last is not None and last.trust_event is TrustEvent.FAILED,
        web_access=_yes_no(doc.first(_L_WEB_ACCESS)),
        format=doc.format,
        fips_key_size_rejected=any(m.fips_key_size for m in messages),
    )


def parse_status_messages(html: str | bytes) -> StatusMessages:
    """Read a Status Messages page: all messages in order, and the last trust event."""
    return _status(_document(html))


def parse_phone_page(html: str | bytes) -> PhonePage | StatusMessages:
    """Detect the page kind and parse it: a status page gives :class:`StatusMessages`, any other
    page a :class:`PhonePage` (whose ``kind`` says what it was; unknown pages give mostly None)."""
    doc = _document(html)
    if _kind(doc) is PageKind.STATUS_MESSAGES:
        return _status(doc)
    return _network(doc)


def parse_phone_page_stdlib(html: str | bytes, as_kind: PageKind | None = None) -> PhonePage | StatusMessages:
    """The reference reading, through ``html.parser.HTMLParser`` only (the path used before the
    fast walk; kept so that tests and the benchmark can compare the two on any input).
    ``as_kind`` forces the reading: STATUS_MESSAGES as :func:`parse_status_messages`, any other
    kind as :func:`parse_network_page`; None detects it as :func:`parse_phone_page`."""
    doc = _document(html, _tokenize)
    if as_kind is None:
        as_kind = _kind(doc)
    return _status(doc) if as_kind is PageKind.STATUS_MESSAGES else _network(doc)


def fast_path_accepts(html: str | bytes) -> bool:
    """Whether the fast walk reads this page itself (False: XML, or HTML it hands to the stdlib)."""
    text = _to_text(html)
    return not _looks_like_xml(text) and _tokenize_fast(text) is not None


def parse_xml_page(page: str | bytes) -> PhonePage | StatusMessages:
    """Like :func:`parse_phone_page`, for a page fetched from an XML path ("...X"): a page that is
    not XML is a :class:`ParseError` instead of being read as HTML."""
    if not _looks_like_xml(_to_text(page)):
        raise ParseError("XML page: not XML (no '<?xml' declaration and no known XML page root)", 0)
    return parse_phone_page(page)


__all__ = [
    "MAX_PAGE_CHARS",
    "PageCallManager",
    "PageFormat",
    "PageInterface",
    "PageKind",
    "PageRecord",
    "ParseError",
    "PhonePage",
    "RecordRole",
    "SignatureAlgo",
    "StatusMessage",
    "StatusMessages",
    "TrustEvent",
    "classify_trust_message",
    "detect_page",
    "is_fips_key_size_message",
    "merge_security_page",
    "parse_network_page",
    "parse_phone_page",
    "parse_security_page",
    "parse_status_messages",
    "parse_xml_page",
    "security_page_wanted",
]
