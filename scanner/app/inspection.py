"""``trustscan inspect``: one file's full story, as a JSON-ready dict and as text for a terminal.

Pure: given bytes, a name, trust stores and ``now``; the CLI reads files and prints.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from typing import Any

from scanner.core.filechecks import file_findings
from scanner.core.findings import Code
from scanner.core.trustcache import DEFAULT_CACHE, TrustFileCache
from scanner.core.trustlist import EncryptionInfo, Header, Record, TrustFile
from scanner.core.verify import CertFacts, TrustStore, Verification


class Outcome(enum.Enum):
    """What a set of inspected files comes to, worst first (``trustscan inspect`` exits with it)."""

    MALFORMED = "malformed"  # some file is unreadable or malformed
    UNVERIFIED = "unverified"  # every file parsed; some signature is invalid or could not be verified
    VERIFIED = "verified"  # every file parsed and its signature verified


def inspect_bytes(
    data: bytes,
    path: str,
    *,
    trust_stores: Sequence[TrustStore] = (),
    now: dt.datetime,
    strict: bool = False,
    cache: TrustFileCache = DEFAULT_CACHE,
) -> dict[str, Any]:
    """The ``--json`` object for one file (the text view is rendered from it too)."""
    a = cache.check(data, name_hint=path, strict=strict, trust_stores=trust_stores)
    base: dict[str, Any] = {
        "path": path,
        "bytes": a.digests.size,
        "md5": a.digests.md5,
        "sha1": a.digests.sha1,
        "sha256": a.digests.sha256,
    }
    if a.error is not None or a.file is None:
        err = a.error
        base["kind"] = None
        base["error"] = {
            "offset": err.offset if err else None,
            "reason": err.reason if err else "unknown error",
        }
        return base
    tf, v = a.file, a.verification
    findings = file_findings(tf, v, now)
    base.update(_describe(tf, v))
    base["findings"] = [f.as_dict() for f in findings]
    safe: dict[str, Any] = _json_safe(base)
    return safe


# The widest JSON integers written: 64 bits, what an 8-byte field holds (orjson refuses more;
# many JSON consumers already lose precision past 2^53).
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1


def _json_safe(value: Any) -> Any:
    """The report with every integer beyond 64 bits replaced by ``None``. A lenient parse keeps a
    field of any length (a 9-byte timestamp, a 12-byte role) and reports it as PARSE_TOLERATED;
    the number itself has no meaning then, and must not make the JSON writer fail."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if _INT_MIN <= value <= _INT_MAX else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _describe(tf: TrustFile, v: Verification | None) -> dict[str, Any]:
    """The parsed file: header, signature, records, and the payload or encryption it carries."""
    h = tf.header
    facts = {rc.index: rc.facts for rc in v.records} if v else {}
    errors = {rc.index: rc.cert_error for rc in v.records if rc.cert_error} if v else {}
    out: dict[str, Any] = {
        "kind": tf.kind.value,
        "version": h.version_str,
        "header_length": h.length,
        "digest": h.digest.hash_name if h.digest else None,
        "digest_code": h.digest_code,
        "filename": h.filename,
        "timestamp": h.timestamp,
        "timestamp_iso": h.timestamp_utc.isoformat() if h.timestamp_utc is not None else None,
        "signer_version": f"{h.signer_version[0]}.{h.signer_version[1]}" if h.signer_version else None,
        "padding": h.padding,
        "signer": {"name": h.signer_name, "serial": h.signer_serial_hex, "issuer": h.signer_issuer},
        "signature": _describe_signature(h, v),
        "unknown_header_tags": [{"tag": t, "offset": o} for t, o in h.unknown_tags],
        "records": [_describe_record(i, r, facts.get(i), errors.get(i)) for i, r in enumerate(tf.records)],
    }
    if tf.payload:
        out["payload_bytes"] = len(tf.payload)
    if h.encryption is not None:
        out["encryption"] = _describe_encryption(h.encryption)
    return out


def _describe_signature(h: Header, v: Verification | None) -> dict[str, Any]:
    """Whether the signature verified, why (not), and whose certificate verified it."""
    signer_match = v.signer if v else None
    return {
        "valid": bool(v and v.valid),
        "reason": v.reason if v else "not checked",
        "verified_by_serial": signer_match.serial if signer_match else None,
        "verified_by_subject": signer_match.subject if signer_match else None,
        "verified_by_source": signer_match.source if signer_match else None,
        "verified_by_store": signer_match.store if signer_match else None,
        "signer_has_sast_role": bool(v and v.signer_has_sast_role),
        "length": len(h.signature) if h.signature else 0,
    }


def _describe_record(i: int, r: Record, f: CertFacts | None, cert_error: str | None) -> dict[str, Any]:
    """Record ``i`` as the file states it, with what its certificate says (``f``: None when it
    has none, or none that could be read: then ``cert_error`` says why)."""
    return {
        "index": i,
        "offset": r.offset,
        "length": r.length,
        "role": r.role,
        "role_name": r.role_name,
        "dns_name": r.dns_name,
        "subject": r.subject,
        "issuer": r.issuer,
        "serial": r.serial_hex,
        "ip_address": r.ip_address,
        "has_certificate": r.certificate is not None,
        "key_type": f.key_type if f else None,
        "key_size": f.key_size if f else None,
        "not_before": f.not_before.isoformat() if f else None,
        "not_after": f.not_after.isoformat() if f else None,
        "cert_sha1": f.sha1 if f else None,
        "cert_sha256": f.sha256 if f else None,
        "cert_error": cert_error,
        "unknown_tags": list(r.unknown_tags),
    }


def _describe_encryption(enc: EncryptionInfo) -> dict[str, Any]:
    """An .enc.sgn file's encryption parameters (the key itself only by its length)."""
    return {
        "key_size": enc.key_size,
        "key_algorithm": enc.key_algorithm,
        "iv": enc.iv.hex() if enc.iv else None,
        "pad_count": enc.pad_count,
        "encrypted_key_bytes": len(enc.encrypted_key) if enc.encrypted_key else 0,
    }


def outcome(reports: Sequence[dict[str, Any]]) -> Outcome:
    """MALFORMED if any file is unreadable or malformed, else UNVERIFIED if any signature did not
    verify, else VERIFIED.

    A file with a certificate that cannot be read (CERT_MALFORMED) is malformed in part: it is
    described in full, with the finding, and counts as malformed here."""
    if any("error" in r or any(f["code"] == Code.CERT_MALFORMED for f in r["findings"]) for r in reports):
        return Outcome.MALFORMED
    if any(not r["signature"]["valid"] for r in reports):
        return Outcome.UNVERIFIED
    return Outcome.VERIFIED


def render_text(r: dict[str, Any]) -> str:
    """Like CUCM's ``show itl``: checksums, header, one block per record, then the verdict."""
    lines = [
        f"== {r['path']}",
        f"   Checksums    MD5 {r['md5']}  SHA-1 {r['sha1']}",
        f"                SHA-256 {r['sha256']}",
        f"   Length       {r['bytes']} bytes",
    ]
    if "error" in r:
        err = r["error"]
        where = f" at offset {err['offset']}" if err["offset"] is not None else ""
        lines.append(f"   MALFORMED{where}: {err['reason']}")
        return "\n".join(lines)
    sig = r["signature"]
    lines += [
        f"   Kind         {r['kind'].upper()}   version {r['version']}   header {r['header_length']} bytes"
        + (f"   signer version {r['signer_version']}" if r["signer_version"] else ""),
        f"   File name    {r['filename']}   signed {r['timestamp_iso'] or '-'}",
        f"   Signer       {r['signer']['name']}",
        f"                serial {r['signer']['serial']}   issuer {r['signer']['issuer']}",
        f"   Digest       {r['digest'] or 'unknown (code ' + str(r['digest_code']) + ')'}   "
        f"signature {sig['length'] * 8} bits",
    ]
    for rec in r["records"]:
        lines += _record_lines(rec)
    lines.append(_signature_line(sig))
    for f in r["findings"]:
        lines.append(f"   [{f['severity']}] {f['code']}: {f['message']}")
    return "\n".join(lines)


def _record_lines(rec: dict[str, Any]) -> list[str]:
    """A record in two lines: role and subject, then serial and what else is known of it."""
    detail = f"       serial {rec['serial'] or '-'}"
    if rec["dns_name"]:
        detail += f"  dns {rec['dns_name']}"
    if rec["ip_address"]:
        detail += f"  ip {rec['ip_address']}"
    if rec["key_type"]:
        detail += f"  {rec['key_type']} {rec['key_size']}"
    if rec["not_after"]:
        detail += f"  valid to {rec['not_after'][:10]}"
    if rec["cert_error"]:
        detail += f"  certificate unreadable: {rec['cert_error']}"
    return [f"   #{rec['index']:<2} {rec['role_name']:<10} {rec['subject'] or '-'}", detail]


def _signature_line(sig: dict[str, Any]) -> str:
    if not sig["valid"]:
        return f"   Signature    NOT VERIFIED: {sig['reason']}"
    by = f"{sig['verified_by_subject']} (serial {sig['verified_by_serial']})"
    src = f", from trust store {sig['verified_by_store']}" if sig["verified_by_store"] else ""
    role = "holds role SAST in this file" if sig["signer_has_sast_role"] else "has NO SAST record in this file"
    return f"   Signature    VALID: verified by {by}{src}; {role}"


__all__ = ["Outcome", "inspect_bytes", "outcome", "render_text"]
