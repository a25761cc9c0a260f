"""Is a fetched file plausibly the file that was asked for? (so that two transfers cannot mix)

A TFTP DATA packet carries no file name, so a transfer that takes another transfer's datagrams
stores the wrong file under the requested name, and nothing downstream would notice: the bytes
parse, they are just someone else's. ``check_fetched`` is the last gate before a fetched file
is called ``ok``: pure (bytes in, a reason or None out), and cheap (a header parse and a few
byte searches, never a signature check or a full XML parse), because it runs once per file.

The rules, in order; the first that fails gives the reason:

1. **Size.** When the server announced a size (TFTP tsize in the OACK, HTTP Content-Length),
   the file has exactly that many bytes.
2. **Trust lists** (a name ending ``.tlv``: ``CTLFile.tlv``, ``ITLFile.tlv``, ``CTLSEP<MAC>.tlv``,
   ``ITLSEP<MAC>.tlv``; the kind is what ``scanner.core.trustlist`` reads from a name: ``CTL*`` is a
   CTL, ``ITL*`` an ITL). The header parses (``trustlist.parse_header``), is not encrypted, and
   its file-name tag (14), when present, names a trust list of the *same kind*: an ITL header
   says ``ITLFile.tlv``, a CTL header ``CTLFile.tlv``; a ``.sgn`` name there is a signed config.
   Per-phone lists carry the generic name (CUCM serves ``ITLSEP<MAC>.tlv`` as the node's ITL),
   so the tag is compared by kind, not by name. A header without the tag is not judged (the
   certutils layout writes none). The records after the header must split into records.
3. **Signed configs** (``*.cnf.xml.sgn``). The header parses, and its file-name tag, when
   present, is the requested name (with or without ``.sgn``; case and directory ignored): a
   signed file names itself, so another phone's config or another kind of file is caught
   here. The payload after the header looks like a config (rule 4).
4. **Configs** (``*.cnf.xml``, and a ``.sgn``'s payload). Optional BOM, whitespace, an XML
   declaration, comments; then the root element; the document ends with that element's
   closing tag (or is one empty element). ``SEP*.cnf.xml`` (a phone's config) must have root
   ``device``, as CUCM writes it; other configs (``XMLDefault.cnf.xml``: root ``Default``) any
   root. A phone config usually names no device (``scanner.core.devconfig`` notes it), so the
   payload is not compared with the requested phone.
5. **ConfigFileCacheList.txt** (any ``.txt``): text, i.e. UTF-8 with no NUL byte.

Any other name is judged by rule 1 alone.

**Wrong versus broken.** Rules 2-5 fail in two ways. A file that *positively is another file*
(its header names another kind or another phone's config, a phone config whose root is not
``device``) is always refused. A file that merely does not parse (no readable header, records
that do not split, no XML) is refused only when the server announced no size: then it could be a
mixed-up transfer. When the server announced a size and the bytes match it, the server has said
"this is the file, this long": it is the node's own broken file, stored as ``ok`` so that the
analysis reports it as what it is (``DEST_CTL_INVALID``, ``SRC_ITL_INVALID``), the truth about
what a phone would download, rather than an UNKNOWN that hides a real blocker.
"""

from __future__ import annotations

import re

from scanner.core import tlv
from scanner.core.errors import ParseError
from scanner.core.trustlist import Header, Kind, detect_kind, kind_from_name, parse_header

__all__ = ["check_fetched"]

# An XML prolog (BOM, whitespace, declaration, comments, processing instructions), then the
# root element's name. Anchored at the start; bounded, so a hostile file costs no more than this.
_ROOT = re.compile(
    rb"(?:\xef\xbb\xbf)?\s*(?:<\?[^>]{0,512}\?>\s*|<!--.{0,4096}?-->\s*|<!DOCTYPE[^>]{0,512}>\s*)*"
    rb"<([A-Za-z_][\w.:-]{0,255})",
    re.DOTALL,
)
# The rest of a root element that closes itself: <device/> or <Default attr="x" />.
_EMPTY_ROOT_REST = re.compile(rb"[^<>]*/>\s*\Z")


def check_fetched(name: str, data: bytes, *, expected_size: int | None) -> str | None:
    """None when ``data`` is plausibly the file ``name`` (as requested, any directory part
    ignored), else a one-line reason; ``expected_size`` is the size the server announced
    (tsize, Content-Length) or None. The rules are in the module docstring."""
    if expected_size is not None and len(data) != expected_size:
        return f"{len(data)} bytes, but the server announced {expected_size}"
    base = name.rsplit("/", 1)[-1]
    lower = base.lower()
    found: str | _Broken | None = None
    if lower.endswith(".tlv"):
        found = _trust_list(lower, data)
    elif lower.endswith(".cnf.xml.sgn"):
        found = _signed_config(base, data)
    elif lower.endswith(".cnf.xml"):
        found = _config(lower, data)
    elif lower.endswith(".txt"):
        found = _text(data)
    if isinstance(found, _Broken):
        # Broken, not wrong: the node's own file when the size it announced is the size we got.
        return None if expected_size is not None else f"{found} (and no size announced to confirm it)"
    return found


class _Broken(str):
    """A reason meaning "does not parse" rather than "is another file" (see the module doc)."""

    __slots__ = ()


def _header(data: bytes) -> Header | _Broken:
    try:
        return parse_header(data)
    except ParseError as exc:
        return _Broken(f"not a trust-file header: {exc}")


def _trust_list(lower: str, data: bytes) -> str | _Broken | None:
    wanted = kind_from_name(lower)  # CTL*, ITL*, ext_ITL*: what trustlist reads from a name
    header = _header(data)
    if isinstance(header, str):
        return header
    if header.encrypted:
        return "an encrypted signed file, not a trust list"
    if header.filename is not None:
        found = detect_kind(header, None)
        if wanted is not None and found is not wanted:
            return f"asked for a {wanted.value.upper()}, got a file whose header names {header.filename!r}"
        if found not in (Kind.CTL, Kind.ITL):
            return f"not a trust list: its header names {header.filename!r}"
    try:
        # Boundaries only (the C kernel): the records must tile the rest of the file.
        tlv.split(data, header.length, -1, False)
    except ParseError as exc:
        return _Broken(f"trust-list records do not parse: {exc}")
    return None


def _signed_config(base: str, data: bytes) -> str | _Broken | None:
    header = _header(data)
    if isinstance(header, str):
        return header
    if header.filename is not None:
        named = header.filename.rsplit("/", 1)[-1].lower()
        asked = base.lower()
        if named not in (asked, asked[: -len(".sgn")]):
            return f"signed file names itself {header.filename!r}, not {base!r}"
    return _config(base[: -len(".sgn")].lower(), data[header.length :])


def _config(lower: str, data: bytes) -> str | _Broken | None:
    m = _ROOT.match(data)
    if m is None:
        return _Broken("not an XML document")
    root = m.group(1)
    if lower.startswith("sep") and root.lower() != b"device":
        return f"a phone config's root is <device>, this one's is <{root.decode('ascii', 'replace')}>"
    if not (data.rstrip().endswith(b"</" + root + b">") or _EMPTY_ROOT_REST.match(data, m.end())):
        return _Broken(f"the XML document does not end with </{root.decode('ascii', 'replace')}>")
    return None


def _text(data: bytes) -> str | None:
    if b"\x00" in data:
        return "not text: it holds NUL bytes"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not text: {exc.reason} at byte {exc.start}"
    return None
