"""A simulated phone's web pages, in the shapes real phones serve them.

Each phone record carries a page kind (``"pages"`` in lab.json; absent means ``"html"``):

* ``html``: the CP-8841 shape (shared/vectors/phone-pages/): Network setup (installed CTL/ITL
  signatures, TVS and TFTP lines), Status messages, Device information, at the Serviceability
  ``adapter=`` paths and the older flat names.
* ``xml``: only the XML pages (``adapterX=`` paths, ``/NetworkConfigurationX``,
  ``/DeviceInformationX``), one element per field as 79xx phone scripts read them. The HTML paths
  answer 404: a phone that serves both would never be read as XML by a collector that asks for
  the HTML first, so the lab leaves the HTML out to exercise the XML path.
* ``dx``: the DX-series network page, with its addresses labelled per interface ("Ethernet MAC
  Address", "Ethernet IP Address", "Wifi MAC Address", "Wifi IP Address").
* ``security-page``: a network page without the CTL/ITL lines and a menu link to a separate
  security page (``adapter=device.statistics.security``) that holds them.

Status messages use the texts of the 8800 administration guide for the phone's state (the state
itself comes from the phone record: ``ctl`` set when the source is in mixed mode, ``status``
``failed`` after a failed trust-list update). The html kind keeps the lab's original lines; the
other kinds pick one of several realistic variants per phone (deterministically, from its name).
Whatever the kind, a phone's facts are the same: the same trust lists, addresses and last event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from html import escape
from typing import Any

PAGE_KINDS = ("html", "xml", "dx", "security-page")

_SERVICEABILITY = "/CGI/Java/Serviceability"
_NETWORK = "device.statistics.configuration"
_STATUS = "device.settings.status.messages"
_DEVICE = "device.statistics.device"
_SECURITY = "device.statistics.security"

_MENU_SECURITY = (
    '<TR>\n<TD><a href="/CGI/Java/Serviceability?adapter=device.statistics.security">Security</A></TD></TR>\n'
)
_HEAD = (
    '<HTML>\n<HEAD><META http-equiv="Content-Type" content="text/html; charset=utf-8">'
    "<TITLE>Cisco Systems, Inc.</TITLE>\n</HEAD>\n"
    '<BODY bgcolor="#FFFFFF" link="#FFFFFF" vlink="#FFFFFF" alink="#FFFFFF" text="#003031" >'
    '<TABLE BORDER="1" WIDTH="100%" HEIGHT="100%" CELLSPACING="0" CELLPADDING="0" bordercolor="#003031"><TR>\n'
    '<td WIDTH="200" HEIGHT="100" ALIGN=center><A HREF="http://www.cisco.com"><IMG SRC="/FS/Logo.png"></A></TD>'
    '<td HEIGHT="50" bgcolor="#003031"><p ALIGN=center style="margin-top: 0px;"><B><font color="#FFFFFF" size="6">'
    '{title}</FONT></B><p ALIGN=center><B><font color="#FFFFFF" size="4">Cisco IP Phone {model} ( {name} )'
    "</FONT></FONT></B></TD>\n</TR>\n"
    '<TR><td WIDTH="200" ALIGN=center VALIGN=top bgcolor="#003031"><TABLE BORDER="0" CELLSPACING="10" CELLPADDING="0"><TR>\n'
    '<TD><a href="/CGI/Java/Serviceability?adapter=device.statistics.device">Device information</A></TD></TR>\n'
    '<TR>\n<TD><a href="/CGI/Java/Serviceability?adapter=device.statistics.configuration">Network setup</A></TD></TR>\n'
    "{menu}"
    "<TR><TD><B><font color='#FFFFFF'>Device logs</FONT></B></TD></TR><TR>\n"
    '<TD>&nbsp;&nbsp;&nbsp;<a href="/CGI/Java/Serviceability?adapter=device.settings.status.messages">Status messages</A>'
    "</TD></TR>\n</TABLE>\n</TD>\n<td VALIGN=top><DIV ALIGN=center>\n"
    '<TABLE BORDER="0" CELLSPACING="10" CELLPADDING="0">'
)
_TAIL = "</TABLE></DIV></TD></TR></TABLE></BODY></HTML>\n"


def _head(title: str, phone: dict[str, Any], menu: str = "") -> str:
    return _HEAD.format(title=title, model=escape(phone["model"]), name=phone["name"], menu=menu)


def _row(label: str, value: str) -> str:
    return f"<TR><TD><B> {escape(label)}</B></TD><td width=20></TD><TD><B>{escape(value)}</B></TD></TR>"


def _sig(hex_digest: str) -> str:
    return " ".join(hex_digest[i : i + 2].upper() for i in range(0, len(hex_digest), 2)) + " "


def _lists(
    phone: dict[str, Any], variants: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    ctl = variants.get(phone["ctl"]) if phone["ctl"] else None
    itl = variants.get(phone["itl"]) if phone["itl"] else None
    return ctl, itl


def _cm_values(phone: dict[str, Any]) -> list[str]:
    cms = phone["cms"]
    values = []
    for i in range(5):
        state = "  Active" if i == 0 else "  Standby" if i == 1 else "   "
        values.append(f"{cms[i]}{state}" if i < len(cms) else "")
    return values


def _trust_rows(ctl: dict[str, Any] | None, itl: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The CTL/ITL lines as the 8841 lists them (labels as shown, values)."""
    rows = [("CTL file", "Installed" if ctl else "Not installed")]
    if ctl:
        rows.append(("CTL signature", _sig(ctl["sha1"])))
        if ctl.get("capf"):
            rows.append(("CAPF server", ctl["capf"].split(";")[0].removeprefix("CN=")))
        for t in ctl["tftp"][:1]:
            rows.append(("CUCM server / TFTP server", t))
    rows.append(("ITL file", "Installed" if itl else "Not installed"))
    if itl:
        rows.append(("ITL signature", _sig(itl["sha1"])))
        if itl.get("capf"):
            rows.append(("CAPF server", itl["capf"].split(";")[0].removeprefix("CN=")))
        for t in itl["tvs"]:
            rows.append(("TVS", t))
        for t in itl["tftp"]:
            rows.append(("CUCM server / TFTP server", t))
    return rows


# -- html (the 8841 shape) -----------------------------------------------------------------------


def network_page(phone: dict[str, Any], variants: dict[str, Any], *, trust_lines: bool = True) -> str:
    """The 8841's Network setup page; without ``trust_lines`` (the security-page kind) the CTL/ITL
    lines are left to the security page and the menu links to it."""
    ctl, itl = _lists(phone, variants)
    tftp = phone["tftp"]
    rows = [
        _row("MAC address", phone["mac"]),
        _row("Host name", phone["name"]),
        _row("Domain name", "lab.example"),
        _row("DHCP server", "127.0.0.1"),
        _row("BOOTP server", "No"),
        _row("DHCP", "Yes"),
        _row("IP address", phone["ip"]),
        _row("Subnet mask", "255.0.0.0"),
        _row("Default router", "127.0.0.1"),
        _row("Alternate TFTP", "No"),
        _row("TFTP server 1", tftp[0] if tftp else ""),
        _row("TFTP server 2", tftp[1] if len(tftp) > 1 else ""),
    ]
    rows += [_row(f"CUCM server{i + 1}", value) for i, value in enumerate(_cm_values(phone))]
    rows += [
        _row("Security mode", "Non secure"),
        _row("Web access enabled", "Yes"),
        _row("SSH access enabled", "No"),
    ]
    if trust_lines:
        rows += [_row(label, value) for label, value in _trust_rows(ctl, itl)]
    rows += [_row("IP addressing mode", "IPv4 only"), _row("Service Mode", "On-premise")]
    menu = "" if trust_lines else _MENU_SECURITY
    return _head("Network setup", phone, menu) + "".join(rows) + _TAIL


def security_page(phone: dict[str, Any], variants: dict[str, Any]) -> str:
    """The separate security page of the security-page kind: the trust lists and their records."""
    ctl, itl = _lists(phone, variants)
    rows = [_row("Security mode", "Non secure")] + [
        _row(label, value) for label, value in _trust_rows(ctl, itl)
    ]
    return _head("Security setup", phone, _MENU_SECURITY) + "".join(rows) + _TAIL


def _status_lines(phone: dict[str, Any]) -> list[str]:
    """The html kind's messages (the lab's original lines), or what a cutover left."""
    if phone.get("status_lines") is not None:
        return list(phone["status_lines"])
    name = phone["name"]
    lines = [
        "7:58:02a Trust List Updated",
        "7:58:05a ITL installed",
        f"7:58:09a {name}.cnf.xml.sgn",
    ]
    if phone["ctl"]:
        lines.insert(1, "7:58:04a CTL Installed")
    if phone["status"] == "failed":
        lines += ["9:14:41p Trust List Update Failed", f"9:14:45p {name}.cnf.xml.sgn"]
    return lines


def _choice(phone: dict[str, Any], what: str, count: int) -> int:
    digest = hashlib.sha256(f"{phone['name']}/{what}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % count


def _variant_lines(phone: dict[str, Any]) -> list[str]:
    """Realistic variants of the messages for the phone's state (the 8800 guide's texts): how the
    lists got installed varies; a failed phone's last trust event is a failure, any other's not.
    A phone a cutover moved (``scanner.lab.cutover``) shows the messages of that boot."""
    if phone.get("status_lines") is not None:
        return list(phone["status_lines"])
    name = phone["name"]
    mixed = bool(phone["ctl"])
    install = [
        ["Trust List updated", "CTL and ITL installed" if mixed else "ITL installed"],
        [
            "No Trust List installed",
            "Trust List updated",
            *(["CTL Installed"] if mixed else []),
            "ITL installed",
        ],
        [
            "Erasing CTL and ITL files",
            "No Trust List installed",
            "Trust List Updated",
            *(["CTL and ITL installed"] if mixed else ["ITL Installed"]),
        ],
        # Outside mixed mode the phone asks for the CTL and is told there is none.
        [*(["CTL Installed"] if mixed else ["File Not Found <CTLFile.tlv>"]), "ITL installed"],
    ][_choice(phone, "install", 4)]
    stamps = iter(f"7:58:{second:02d}a" for second in range(2, 60, 3))
    lines = [f"{next(stamps)} {text}" for text in install] + [f"7:59:30a {name}.cnf.xml.sgn"]
    if phone["status"] == "failed":
        failure = [
            "Trust List Update Failed",
            "Trust List update failed verification failure",
            "TRUST LIST UPDATE FAILED",
            "Trust List Update Failed : Verification Failure",
            *(["CTL update failed"] if mixed else []),
        ]
        lines += [
            f"9:14:41p {failure[_choice(phone, 'failure', len(failure))]}",
            f"9:14:45p {name}.cnf.xml.sgn",
        ]
    return lines


def status_page(phone: dict[str, Any], lines: list[str] | None = None) -> str:
    body = "".join(
        f"<TR><td width=20></TD><TD><B>{escape(t)}</B></TD></TR>" for t in (lines or _status_lines(phone))
    )
    return _head("Status messages", phone) + body + _TAIL


def device_page(phone: dict[str, Any]) -> str:
    rows = [
        _row("MAC address", phone["mac"]),
        _row("Host name", phone["name"]),
        _row("Phone DN", phone["ext"]),
        _row("Version", phone["load"]),
        _row("Model number", phone["model"]),
    ]
    return _head("Device information", phone) + "".join(rows) + _TAIL


# -- dx (addresses per interface) ----------------------------------------------------------------

_DX_HEAD = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n<body>\n'
    '<div class="header"><h1>{title}</h1><h2>Cisco IP Phone {model} ( {name} )</h2></div>\n'
    '<div class="menu"><ul><li><a href="/CGI/Java/Serviceability?adapter=device.statistics.device">Device Information</a></li>'
    '<li><a href="/CGI/Java/Serviceability?adapter=device.statistics.configuration">Network Configuration</a></li>'
    '<li><a href="/CGI/Java/Serviceability?adapter=device.settings.status.messages">Status Messages</a></li></ul></div>\n'
    '<div class="content"><table class="info">\n'
)
_DX_TAIL = "</table></div>\n</body></html>\n"


# The trust-list lines as the 78xx-style pages capitalise them ("TFTP Server" for a TFTP record).
_DX_TRUST_LABELS = {
    "CTL file": "CTL File",
    "CTL signature": "CTL Signature",
    "ITL file": "ITL File",
    "ITL signature": "ITL Signature",
    "CAPF server": "CAPF Server",
    "TVS": "TVS",
    "CUCM server / TFTP server": "TFTP Server",
}


def _dx_row(label: str, value: str) -> str:
    return f'<tr><th class="label">{escape(label)}</th><td class="value">{escape(value)}</td></tr>\n'


def _wifi_mac(mac: str) -> str:
    # The wireless interface has a MAC of its own (the next address); it has no address here.
    return f"{(int(mac, 16) + 1) & 0xFFFFFFFFFFFF:012X}"


def dx_network_page(phone: dict[str, Any], variants: dict[str, Any]) -> str:
    ctl, itl = _lists(phone, variants)
    tftp = phone["tftp"]
    rows = [
        ("Host Name", phone["name"]),
        ("Domain Name", "lab.example"),
        ("Ethernet MAC Address", phone["mac"]),
        ("Ethernet IP Address", phone["ip"]),
        ("Ethernet Subnet Mask", "255.0.0.0"),
        ("Wifi MAC Address", _wifi_mac(phone["mac"])),
        ("Wifi IP Address", "0.0.0.0"),
        ("DHCP Server", "127.0.0.1"),
        ("Alternate TFTP", "No"),
        ("TFTP Server 1", tftp[0] if tftp else ""),
        ("TFTP Server 2", tftp[1] if len(tftp) > 1 else ""),
    ]
    rows += [(f"Unified CM{i + 1}", value) for i, value in enumerate(_cm_values(phone))]
    rows += [("Security Mode", "Non Secure"), ("Web Access Enabled", "Yes"), ("SSH Access Enabled", "No")]
    rows += [(_DX_TRUST_LABELS[label], value) for label, value in _trust_rows(ctl, itl)]
    head = _DX_HEAD.format(title="Network Configuration", model=escape(phone["model"]), name=phone["name"])
    return head + "".join(_dx_row(label, value) for label, value in rows) + _DX_TAIL


def dx_status_page(phone: dict[str, Any]) -> str:
    head = _DX_HEAD.format(title="Status Messages", model=escape(phone["model"]), name=phone["name"])
    return head + "".join(f"<tr><td>{escape(line)}</td></tr>\n" for line in _variant_lines(phone)) + _DX_TAIL


def dx_device_page(phone: dict[str, Any]) -> str:
    rows = [
        ("Ethernet MAC Address", phone["mac"]),
        ("Host Name", phone["name"]),
        ("Phone DN", phone["ext"]),
        ("Version", phone["load"]),
        ("Model Number", phone["model"]),
    ]
    head = _DX_HEAD.format(title="Device Information", model=escape(phone["model"]), name=phone["name"])
    return head + "".join(_dx_row(label, value) for label, value in rows) + _DX_TAIL


# -- xml ("...X" pages) ----------------------------------------------------------------------------

_XML_DECL = '<?xml version="1.0" encoding="iso-8859-1"?>\n'


def _xml(root: str, elements: list[tuple[str, str]]) -> str:
    body = "".join(f"  <{name}>{escape(value, quote=False)}</{name}>\n" for name, value in elements)
    return f"{_XML_DECL}<{root}>\n{body}</{root}>\n"


def xml_network_page(phone: dict[str, Any], variants: dict[str, Any]) -> str:
    ctl, itl = _lists(phone, variants)
    tftp = phone["tftp"]
    elements = [
        ("DHCPServer", "127.0.0.1"),
        ("BOOTPServer", "No"),
        ("MACAddress", phone["mac"]),
        ("HostName", phone["name"]),
        ("DomainName", "lab.example"),
        ("IPAddress", phone["ip"]),
        ("SubNetMask", "255.0.0.0"),
        ("TFTPServer1", tftp[0] if tftp else ""),
        ("TFTPServer2", tftp[1] if len(tftp) > 1 else ""),
        ("DefaultRouter1", "127.0.0.1"),
        ("AltTFTP", "No"),
    ]
    elements += [(f"CallManager{i + 1}", value) for i, value in enumerate(_cm_values(phone))]
    elements += [("SecurityMode", "Non Secure"), ("WebAccess", "Yes"), ("SSHAccess", "No")]
    names = {
        "CTL file": "CTLFile",
        "CTL signature": "CTLSignature",
        "ITL file": "ITLFile",
        "ITL signature": "ITLSignature",
        "CAPF server": "CAPFServer",
        "TVS": "TVS",
        "CUCM server / TFTP server": "TFTPServer",
    }
    elements += [(names[label], value) for label, value in _trust_rows(ctl, itl)]
    return _xml("NetworkConfiguration", elements)


def xml_status_page(phone: dict[str, Any]) -> str:
    # No public sample of an XML status page was found: one element per message, its time stamp
    # and text as children (the parser also reads a flat "<status>time text</status>" form).
    body = "".join(
        f"  <StatusMessage><Time>{stamp}</Time><Text>{escape(text, quote=False)}</Text></StatusMessage>\n"
        for stamp, _, text in (line.partition(" ") for line in _variant_lines(phone))
    )
    return f"{_XML_DECL}<StatusMessages>\n  <HostName>{phone['name']}</HostName>\n{body}</StatusMessages>\n"


def xml_device_page(phone: dict[str, Any]) -> str:
    return _xml(
        "DeviceInformation",
        [
            ("MACAddress", phone["mac"]),
            ("HostName", phone["name"]),
            ("phoneDN", phone["ext"]),
            ("appLoadID", phone["load"]),
            ("versionID", phone["load"].partition(".")[2]),
            ("modelNumber", phone["model"]),
        ],
    )


# -- routing ---------------------------------------------------------------------------------------

_HTML = "text/html"
_XML_TYPE = "text/xml"


def _which(path: str, query: Mapping[str, str]) -> tuple[str, bool] | None:
    """(page, is the XML twin) for a request path, or None for no phone page."""
    if path == _SERVICEABILITY:
        for key, xml in (("adapter", False), ("adapterX", True)):
            adapter = query.get(key)
            page = {_NETWORK: "network", _STATUS: "status", _DEVICE: "device", _SECURITY: "security"}.get(
                adapter or ""
            )
            if page is not None:
                return page, xml
        return None
    return {
        "/NetworkConfiguration": ("network", False),
        "/NetworkConfigurationX": ("network", True),
        "/": ("device", False),
        "/DeviceInformation": ("device", False),
        "/DeviceInformationX": ("device", True),
        # The console log excerpt of a cutover (the seed's format; a lab page, not a phone's).
        "/ConsoleLog": ("console", False),
    }.get(path)


def render(
    path: str, query: Mapping[str, str], phone: dict[str, Any], variants: dict[str, Any]
) -> tuple[int, str, str] | None:
    """(HTTP status, content type, body) of one phone page request, or None when this phone has
    no such page (the server answers 404). ``variants`` is lab.json's ``trust_variants``."""
    which = _which(path, query)
    if which is None:
        return None
    page, xml = which
    if page == "console":
        if phone.get("console") is None:
            return None
        return 200, "text/plain", "".join(f"{line}\n" for line in phone["console"])
    kind = phone.get("pages", "html")
    if kind == "xml":
        if not xml or page == "security":
            return None
        body = {
            "network": lambda: xml_network_page(phone, variants),
            "status": lambda: xml_status_page(phone),
            "device": lambda: xml_device_page(phone),
        }[page]()
        return 200, _XML_TYPE, body
    if xml:
        return None
    if kind == "dx":
        if page == "security":
            return None
        body = {
            "network": lambda: dx_network_page(phone, variants),
            "status": lambda: dx_status_page(phone),
            "device": lambda: dx_device_page(phone),
        }[page]()
        return 200, _HTML, body
    if kind == "security-page":
        body = {
            "network": lambda: network_page(phone, variants, trust_lines=False),
            "status": lambda: status_page(phone, _variant_lines(phone)),
            "device": lambda: device_page(phone),
            "security": lambda: security_page(phone, variants),
        }[page]()
        return 200, _HTML, body
    if page == "security":
        return None
    body = {
        "network": lambda: network_page(phone, variants),
        "status": lambda: status_page(phone),
        "device": lambda: device_page(phone),
    }[page]()
    return 200, _HTML, body
