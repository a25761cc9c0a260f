"""Sans-IO reader of a TLS server's plaintext handshake: its certificate list, whether it asks for a
client certificate, its alerts and its version.

``scanner.net.tvs_probe`` feeds it every byte a TVS server sends while Python's ssl module drives
the handshake; its module docstring says why the certificate must be picked out of the records
(TLS 1.2 servers abort the handshake before Python's ssl module would hand it over).
"""

from __future__ import annotations

__all__ = ["CertificateSniffer"]

# TLS record header: type(1) version(2) length(2); a record body is at most 2^14 + 2048 bytes
# (RFC 5246 §6.2.3, ciphertext bound); more means this is not TLS.
RECORD_HEADER = 5
MAX_RECORD = (1 << 14) + 2048
# A server's plaintext flight (hello, certificates, key exchange, request) is a few KB; a
# certificate chain of 10 × 2 KB is plenty. 256 KB stops a garbage stream from using memory.
MAX_HANDSHAKE_BYTES = 256 * 1024
_CONTENT_CCS = 20
_CONTENT_ALERT = 21
_CONTENT_HANDSHAKE = 22
_CONTENT_APPDATA = 23
_HS_SERVER_HELLO = 2
_HS_CERTIFICATE = 11
_HS_CERTIFICATE_REQUEST = 13

_VERSIONS = {b"\x03\x00": "SSLv3", b"\x03\x01": "TLSv1", b"\x03\x02": "TLSv1.1", b"\x03\x03": "TLSv1.2"}
_ALERTS = {
    40: "handshake_failure",
    42: "bad_certificate",
    46: "certificate_unknown",
    48: "unknown_ca",
    70: "protocol_version",
    116: "certificate_required",
}


class CertificateSniffer:
    """Sans-IO: reads the server→client byte stream of a TLS handshake and extracts, from the
    plaintext part (TLS ≤ 1.2), the server's certificate list, whether it asked for a client
    certificate, and any plaintext alert. Stops at the first encrypted record. Never raises."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._hs = bytearray()  # handshake message bytes, reassembled across records
        self._seen = 0
        self.certificates: tuple[bytes, ...] = ()
        self.client_cert_requested = False
        self.alert: str | None = None
        self.version: str | None = None  # from the ServerHello
        self.cipher_suite: int | None = None
        self.stopped = False  # encrypted from here on, or not TLS

    def feed(self, data: bytes) -> None:
        if self.stopped:
            return
        self._seen += len(data)
        if self._seen > MAX_HANDSHAKE_BYTES:
            self.stopped = True
            return
        self._buf += data
        while len(self._buf) >= RECORD_HEADER and not self.stopped:
            ctype = self._buf[0]
            length = int.from_bytes(self._buf[3:5], "big")
            if self._buf[1] != 3 or length > MAX_RECORD:
                self.stopped = True  # not a TLS record
                return
            if len(self._buf) < RECORD_HEADER + length:
                return
            body = bytes(self._buf[RECORD_HEADER : RECORD_HEADER + length])
            del self._buf[: RECORD_HEADER + length]
            if ctype == _CONTENT_HANDSHAKE:
                self._hs += body
                self._messages()
            elif ctype == _CONTENT_ALERT and len(body) == 2:
                self.alert = _ALERTS.get(body[1], f"alert {body[1]}")
            elif ctype in (_CONTENT_CCS, _CONTENT_APPDATA):
                self.stopped = True  # the server's messages are encrypted from here
            else:
                self.stopped = True

    def _messages(self) -> None:
        while len(self._hs) >= 4:
            mtype = self._hs[0]
            length = int.from_bytes(self._hs[1:4], "big")
            if len(self._hs) < 4 + length:
                return
            body = bytes(self._hs[4 : 4 + length])
            del self._hs[: 4 + length]
            if mtype == _HS_CERTIFICATE and not self.certificates:
                self.certificates = _certificate_list(body)
            elif mtype == _HS_CERTIFICATE_REQUEST:
                self.client_cert_requested = True
            elif mtype == _HS_SERVER_HELLO and len(body) >= 35:
                sid = body[34]
                if len(body) >= 37 + sid:
                    self.cipher_suite = int.from_bytes(body[35 + sid : 37 + sid], "big")
                if _is_tls13_hello(body):
                    self.version = "TLSv1.3"
                    self.stopped = True  # everything after ServerHello is encrypted
                else:
                    self.version = _VERSIONS.get(bytes(body[:2]))


def _certificate_list(body: bytes) -> tuple[bytes, ...]:
    """TLS ≤ 1.2 Certificate body: 3-byte list length, then (3-byte length, DER) entries."""
    if len(body) < 3:
        return ()
    total = int.from_bytes(body[:3], "big")
    end = min(3 + total, len(body))
    pos = 3
    certs: list[bytes] = []
    while pos + 3 <= end:
        n = int.from_bytes(body[pos : pos + 3], "big")
        pos += 3
        if pos + n > end:
            break
        certs.append(body[pos : pos + n])
        pos += n
    return tuple(certs)


def _is_tls13_hello(body: bytes) -> bool:
    """ServerHello with a supported_versions extension selecting 0x0304 (RFC 8446 §4.1.3)."""
    try:
        pos = 2 + 32  # legacy_version, random
        sid = body[pos]
        pos += 1 + sid + 2 + 1  # session id, cipher suite, compression
        ext_total = int.from_bytes(body[pos : pos + 2], "big")
        pos += 2
        end = pos + ext_total
        while pos + 4 <= end:
            etype = int.from_bytes(body[pos : pos + 2], "big")
            elen = int.from_bytes(body[pos + 2 : pos + 4], "big")
            if etype == 43 and elen == 2:
                return body[pos + 4 : pos + 6] == b"\x03\x04"
            pos += 4 + elen
    except IndexError:
        return False
    return False
