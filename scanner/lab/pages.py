"""A simulated phone's web pages, in the shape of a real CP-8841 (shared/vectors/phone-pages/):
Network setup (installed CTL/ITL signatures, TVS and TFTP lines) and Status messages."""

from __future__ import annotations

from html import escape
from typing import Any

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
    "<TR><TD><B><font color='#FFFFFF'>Device logs</FONT></B></TD></TR><TR>\n"
    '<TD>&nbsp;&nbsp;&nbsp;<a href="/CGI/Java/Serviceability?adapter=device.settings.status.messages">Status messages</A>'
    "</TD></TR>\n</TABLE>\n</TD>\n<td VALIGN=top><DIV ALIGN=center>\n"
    '<TABLE BORDER="0" CELLSPACING="10" CELLPADDING="0">'
)
_TAIL = "</TABLE></DIV></TD></TR></TABLE></BODY></HTML>\n"


def _row(label: str, value: str) -> str:
    return f"<TR><TD><B> {escape(label)}</B></TD><td width=20></TD><TD><B>{escape(value)}</B></TD></TR>"


def _sig(hex_digest: str) -> str:
    return " ".join(hex_digest[i : i + 2].upper() for i in range(0, len(hex_digest), 2)) + " "


def network_page(phone: dict[str, Any], variants: dict[str, Any]) -> str:
    ctl = variants.get(phone["ctl"]) if phone["ctl"] else None
    itl = variants.get(phone["itl"]) if phone["itl"] else None
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
    for i in range(5):
        cms = phone["cms"]
        state = "  Active" if i == 0 else "  Standby" if i == 1 else "   "
        rows.append(_row(f"CUCM server{i + 1}", f"{cms[i]}{state}" if i < len(cms) else ""))
    rows += [
        _row("Security mode", "Non secure"),
        _row("Web access enabled", "Yes"),
        _row("SSH access enabled", "No"),
        _row("CTL file", "Installed" if ctl else "Not installed"),
    ]
    if ctl:
        rows.append(_row("CTL signature", _sig(ctl["sha1"])))
        if ctl.get("capf"):
            rows.append(_row("CAPF server", ctl["capf"].split(";")[0].removeprefix("CN=")))
        for t in ctl["tftp"][:1]:
            rows.append(_row("CUCM server / TFTP server", t))
    rows.append(_row("ITL file", "Installed" if itl else "Not installed"))
    if itl:
        rows.append(_row("ITL signature", _sig(itl["sha1"])))
        if itl.get("capf"):
            rows.append(_row("CAPF server", itl["capf"].split(";")[0].removeprefix("CN=")))
        for t in itl["tvs"]:
            rows.append(_row("TVS", t))
        for t in itl["tftp"]:
            rows.append(_row("CUCM server / TFTP server", t))
    rows += [_row("IP addressing mode", "IPv4 only"), _row("Service Mode", "On-premise")]
    return (
        _HEAD.format(title="Network setup", model=escape(phone["model"]), name=phone["name"])
        + "".join(rows)
        + _TAIL
    )


def status_page(phone: dict[str, Any]) -> str:
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
    body = "".join(f"<TR><td width=20></TD><TD><B>{escape(t)}</B></TD></TR>" for t in lines)
    return _HEAD.format(title="Status messages", model=escape(phone["model"]), name=name) + body + _TAIL


def device_page(phone: dict[str, Any]) -> str:
    rows = [
        _row("MAC address", phone["mac"]),
        _row("Host name", phone["name"]),
        _row("Phone DN", phone["ext"]),
        _row("Version", phone["load"]),
        _row("Model number", phone["model"]),
    ]
    return (
        _HEAD.format(title="Device information", model=escape(phone["model"]), name=phone["name"])
        + "".join(rows)
        + _TAIL
    )
