"""Write CTL / ITL / .sgn files from certificates and keys, as CUCM (or certutils) does.

Used by the lab to make realistic clusters and by tests to make files with known faults. Two
byte layouts, the header and record tags of scanner/core/trustlist.py in two orders:

- ``"cisco"`` (default): header 1, 2, [28], 3{4,5,6}, 7{8,9{10,11}}, 12, 14, 15, padding;
  records 1..10; names ``CN=..;OU=..;O=..;L=..;ST=..;C=..`` in that fixed order.
- ``"certutils"``: header 1, 2, [28], 3{4,6,5}, 7{...}, 12, 14, 15, padding; records
  1, 3, 5, 6, 4, 7, 8, 9; names comma-joined in the certificate's own order.

The header is padded with tag 0x0D bytes to a multiple of 4, as both producers do.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from scanner.core.trustlist import Digest, Field, HeaderTag, RecordTag, serialize_fields
from scanner.core.verify import record_public_key, serial_bytes, sign_message

Style = Literal["cisco", "certutils"]

# Header tag 11 (in the signature-info tag 9): index of the RSA modulus size: 0 = 512 bits ... 3 = 4096 bits.
MODULUS_CODES = {512: 0, 1024: 1, 2048: 2, 4096: 3}

_CISCO_ORDER = (
    (NameOID.COMMON_NAME, "CN"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "OU"),
    (NameOID.ORGANIZATION_NAME, "O"),
    (NameOID.LOCALITY_NAME, "L"),
    (NameOID.STATE_OR_PROVINCE_NAME, "ST"),
    (NameOID.COUNTRY_NAME, "C"),
)
_SHORT = {oid: short for oid, short in _CISCO_ORDER}


def _value(attr: x509.NameAttribute[Any]) -> str:
    v = attr.value
    return v if isinstance(v, str) else v.hex()


def format_name(name: x509.Name, style: Style = "cisco") -> str:
    """A name as the producer writes it into a trust file."""
    if style == "cisco":
        parts = [
            f"{short}={_value(a)}" for oid, short in _CISCO_ORDER for a in name.get_attributes_for_oid(oid)
        ]
        # Attributes outside Cisco's six keep their DER order after them.
        parts += [f"{a.rfc4514_attribute_name}={_value(a)}" for a in name if a.oid not in _SHORT]
        return ";".join(parts)
    return ",".join(f"{_SHORT.get(a.oid, a.rfc4514_attribute_name)}={_value(a)}" for a in name)


def _cstr(text: str) -> bytes:
    return text.encode("utf-8") + b"\x00"


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class Signer:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class RecordSpec:
    certificate: x509.Certificate
    role: int
    dns_name: str | None = None
    ip_address: str | None = None  # IPv4; Cisco writes it, certutils does not
    # Bytes written as the certificate (tag 9) instead of the certificate's own DER, while the
    # other tags still describe ``certificate``: how tests and fault scenarios make a record
    # whose certificate a reader cannot parse (a wrong version byte, a negative serial...).
    der_override: bytes | None = None

    def fields(self, style: Style) -> tuple[Field, ...]:
        cert = self.certificate
        der = cert.public_bytes(serialization.Encoding.DER) if self.der_override is None else self.der_override
        by_tag: dict[int, bytes] = {
            RecordTag.SUBJECT_NAME: _cstr(format_name(cert.subject, style)),
            RecordTag.ROLE: _u16(self.role),
            RecordTag.ISSUER_NAME: _cstr(format_name(cert.issuer, style)),
            RecordTag.SERIAL_NUMBER: serial_bytes(cert),
            RecordTag.PUBLIC_KEY: record_public_key(cert),
            RecordTag.SIGNATURE: cert.signature,
            RecordTag.CERTIFICATE: der,
        }
        if style == "cisco":
            order: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9, 10)
            by_tag[RecordTag.DNS_NAME] = _cstr(self.dns_name or "")
            if self.ip_address is not None:
                by_tag[RecordTag.IP_ADDRESS] = ipaddress.IPv4Address(self.ip_address).packed
        else:
            order = (3, 5, 6, 4, 7, 8, 9)
        body = [Field(tag, by_tag[tag], 0) for tag in order if tag in by_tag]
        size = 5 + sum(3 + len(f.value) for f in body)
        if size > 0xFFFF:
            raise ValueError(f"record of {size} bytes does not fit the 2-byte record length")
        return (Field(RecordTag.RECORD_LENGTH, _u16(size), 0), *body)


def _header_fields(
    signer: Signer,
    *,
    version: tuple[int, int],
    digest: Digest,
    filename: str,
    timestamp: int,
    style: Style,
    signer_version: tuple[int, int] | None,
    header_length: int,
    signature: bytes,
    padding: int,
) -> list[Field]:
    cert = signer.certificate
    name = _cstr(format_name(cert.subject, style))
    serial = serial_bytes(cert)
    issuer = _cstr(format_name(cert.issuer, style))
    key_bits = signer.key.key_size
    signer_info = (
        (Field(4, name, 0), Field(5, serial, 0), Field(6, issuer, 0))
        if style == "cisco"
        else (Field(4, name, 0), Field(6, issuer, 0), Field(5, serial, 0))
    )
    fields = [
        Field(HeaderTag.VERSION, bytes(version), 0),
        Field(HeaderTag.HEADER_LENGTH, _u16(header_length), 0),
    ]
    if signer_version is not None:
        fields.append(Field(HeaderTag.SIGNER_VERSION, bytes(signer_version), 0))
    fields += [
        Field(HeaderTag.SIGNER_INFO, b"", 0, signer_info),
        Field(
            HeaderTag.SIGNATURE_INFO,
            b"",
            0,
            (
                Field(HeaderTag.DIGEST_ALGORITHM, bytes([digest]), 0),
                Field(
                    HeaderTag.SIGNATURE_ALGORITHM_INFO,
                    b"",
                    0,
                    (
                        Field(HeaderTag.SIGNATURE_ALGORITHM, b"\x00", 0),  # 0 = RSA, the only value seen
                        Field(HeaderTag.SIGNATURE_MODULUS, bytes([MODULUS_CODES[key_bits]]), 0),
                    ),
                ),
            ),
        ),
        Field(HeaderTag.SIGNATURE, signature, 0),
        Field(HeaderTag.FILENAME, _cstr(filename), 0),
        Field(HeaderTag.TIMESTAMP, timestamp.to_bytes(4, "big"), 0),
    ]
    fields += [Field(HeaderTag.PADDING, b"", 0)] * padding
    return fields


def _build(
    signer: Signer,
    body: bytes,
    *,
    version: tuple[int, int],
    digest: Digest,
    filename: str,
    timestamp: int,
    style: Style,
    signer_version: tuple[int, int] | None,
) -> bytes:
    if signer.key.key_size not in MODULUS_CODES or signer.key.key_size < 1024:
        raise ValueError(f"signer key of {signer.key.key_size} bits: use 1024, 2048 or 4096 (header tag 11)")
    if not 0 <= timestamp <= 0xFFFFFFFF:
        raise ValueError("timestamp must fit 4 bytes (seconds since 1970)")
    sig_len = signer.key.key_size // 8

    def header_with(header_length: int, padding: int) -> bytes:
        return serialize_fields(
            _header_fields(
                signer,
                version=version,
                digest=digest,
                filename=filename,
                timestamp=timestamp,
                style=style,
                signer_version=signer_version,
                header_length=header_length,
                signature=bytes(sig_len),
                padding=padding,
            )
        )

    draft = header_with(0, 0)
    padding = -len(draft) % 4
    header_length = len(draft) + padding
    if header_length > 0xFFFF:
        raise ValueError("header does not fit the 2-byte header length")
    header = header_with(header_length, padding)
    # The signature covers the whole file with the signature TLV cut out (scanner/core/verify.py
    # checks it so): sign that, then put
    # the signature in place; the placeholder has the same length, so no offset moves.
    sig_start = header.index(bytes([HeaderTag.SIGNATURE]) + _u16(sig_len) + bytes(sig_len))
    message = header[:sig_start] + header[sig_start + 3 + sig_len :] + body
    signature = sign_message(signer.key, message, digest)
    return header[: sig_start + 3] + signature + header[sig_start + 3 + sig_len :] + body


def build_trust_list(
    signer: Signer,
    records: Sequence[RecordSpec],
    *,
    filename: str = "ITLFile.tlv",
    digest: Digest = Digest.SHA1,
    timestamp: int,
    style: Style = "cisco",
    signer_version: tuple[int, int] | None = None,
    version: tuple[int, int] = (1, 2),
) -> bytes:
    """A CTL or ITL (they share one format; ``filename`` names which) signed by ``signer``."""
    body = b"".join(serialize_fields(r.fields(style), header=False) for r in records)
    return _build(
        signer,
        body,
        version=version,
        digest=digest,
        filename=filename,
        timestamp=timestamp,
        style=style,
        signer_version=signer_version,
    )


def build_signed_file(
    signer: Signer,
    payload: bytes,
    *,
    filename: str,
    digest: Digest = Digest.SHA1,
    timestamp: int,
    style: Style = "cisco",
    version: tuple[int, int] = (1, 0),
) -> bytes:
    """A ``.sgn`` file: the trust-file header, then ``payload`` in plain text (not encrypted)."""
    return _build(
        signer,
        payload,
        version=version,
        digest=digest,
        filename=filename,
        timestamp=timestamp,
        style=style,
        signer_version=None,
    )
