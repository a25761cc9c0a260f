"""SOAP 1.1 envelopes for CUCM's read-only APIs (AXL and RisPort70), sans-IO.

Why envelope templates and not a SOAP library: the field's choice, zeep, builds its client from a
WSDL. RisPort70 serves its WSDL, but AXL's comes with Cisco's AXL toolkit, which may not be
redistributed, so a zeep client could not be shipped working. trustscan calls three read-only
operations (AXL ``executeSQLQuery`` and ``getCCMVersion``, RisPort70 ``selectCmDeviceExt``), each a
fixed envelope with one or two values in it; writing those envelopes and reading the answers with
defusedxml is less code than zeep's set-up and keeps lxml and requests out of the dependencies.

Answers come from a server the user trusts but we parse defensively anyway, as the parsers of
phone configs do: at most ``MAX_SOAP_BYTES``, no DTD, no entities (defusedxml), and every failure
is a ``ParseError`` that says what was wrong. A SOAP Fault is data (``SoapFault``), not an error:
the caller decides whether it means "slow down", "wrong version" or "give up".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from scanner.core.errors import ParseError

__all__ = [
    "MAX_SOAP_BYTES",
    "SOAP_ENV",
    "SoapFault",
    "child",
    "children",
    "envelope",
    "local_name",
    "parse_response",
    "text_of",
]

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
# A RisPort70 answer for 1,000 phones is about 2-3 MB (each device item is ~2 KB of XML); an AXL
# page of 1,000 phone rows about 1 MB. 64 MB leaves room for long descriptions and still stops a
# runaway or hostile answer from taking the scanner's memory.
MAX_SOAP_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class SoapFault:
    """A SOAP 1.1 Fault: ``faultcode`` and ``faultstring`` as the server sent them (stripped)."""

    code: str
    message: str
    detail: str = ""


def envelope(body: str, *, prefix: str, namespace: str) -> bytes:
    """A SOAP 1.1 request whose Body holds ``body`` (already-built XML using ``prefix``)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:{prefix}="{escape(namespace)}">'
        f"<soapenv:Header/><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    ).encode()


def local_name(tag: str) -> str:
    """``{namespace}name`` → ``name``: CUCM versions differ in the namespaces they answer with."""
    return tag.rsplit("}", 1)[-1]


def children(element: Element, name: str) -> Iterator[Element]:
    """The direct children called ``name``, whatever their namespace."""
    for c in element:
        if local_name(c.tag) == name:
            yield c


def child(element: Element, name: str) -> Element | None:
    return next(children(element, name), None)


def text_of(element: Element, name: str) -> str:
    """The stripped text of the first child called ``name``; "" when it is absent or empty."""
    c = child(element, name)
    return (c.text or "").strip() if c is not None else ""


def parse_response(data: bytes, *, what: str) -> Element | SoapFault:
    """The first element inside the SOAP Body of ``data``, or the ``SoapFault`` it carries.

    ``what`` names the answer in errors ("AXL answer from 127.0.0.1:8443", ...). Raises
    ``ParseError`` when the answer is not a SOAP envelope: too large, not XML, a DTD or entity
    declaration, no Body, an empty Body.
    """
    if len(data) > MAX_SOAP_BYTES:
        raise ParseError(f"{what}: {len(data)} bytes, more than the {MAX_SOAP_BYTES} accepted", MAX_SOAP_BYTES)
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ParseError(f"{what}: refused XML ({type(exc).__name__}: a DTD or entity declaration)") from None
    except SafeET.ParseError as exc:
        line, _column = exc.position
        raise ParseError(f"{what}: not XML ({exc})", line=line) from None
    except (LookupError, ValueError) as exc:  # an XML declaration naming an unknown encoding
        raise ParseError(f"{what}: not XML ({exc})") from None
    if local_name(root.tag) != "Envelope":
        raise ParseError(f"{what}: not a SOAP envelope (root element <{local_name(root.tag)}>)")
    body = child(root, "Body")
    if body is None:
        raise ParseError(f"{what}: SOAP envelope without a Body")
    first = next(iter(body), None)
    if first is None:
        raise ParseError(f"{what}: empty SOAP Body")
    if local_name(first.tag) == "Fault":
        detail = child(first, "detail")
        detail_text = " ".join(t.strip() for t in detail.itertext() if t.strip()) if detail is not None else ""
        return SoapFault(text_of(first, "faultcode"), text_of(first, "faultstring"), detail_text)
    return first
