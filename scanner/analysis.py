"""From an evidence directory to readiness input: the adapter between ``collect`` and the checks.

Reads ``manifest.jsonl`` and the blobs it names (through ``EvidenceReader``), the trust stores the
profile names, and the inventory; produces the ``ClusterEvidence`` of both clusters and, one phone
at a time, ``PhoneEvidence``. Bad blobs or pages become outcomes, never exceptions: one broken
phone never stops the analysis, and every phone in scope comes out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scanner.errors import ParseError
from scanner.evidence import Attempt, EvidenceReader, Outcome, TransportKind
from scanner.inventory import Phone
from scanner.phonepage import PhonePage, StatusMessages, parse_network_page, parse_status_messages
from scanner.profile import Cluster, Profile
from scanner.readiness import ClusterEvidence, FileEvidence, PhoneEvidence, ScanInput, TvsEvidence
from scanner.storeio import load_trust_store
from scanner.verify import TrustStore


@dataclass(frozen=True, slots=True)
class Loaded:
    scan: ScanInput
    phones: tuple[Phone, ...]  # in scope, in inventory order
    by_phone: Mapping[str, tuple[Attempt, ...]]
    reader: BlobCache
    store_errors: tuple[str, ...]


def load_stores(cluster: Cluster) -> tuple[dict[str, TrustStore | None], list[str]]:
    stores: dict[str, TrustStore | None] = {}
    problems: list[str] = []
    for name, directory in cluster.trust_stores:
        try:
            stores[name] = load_trust_store(directory, name)
        except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
            stores[name] = None
            problems.append(f"{cluster.name} trust store {name}: {exc}")
            continue
        store = stores[name]
        if store is not None:
            problems += [f"{cluster.name} trust store {name}: {e}" for e in store.errors]
    return stores, problems


class BlobCache:
    """Many manifest lines name one blob (every phone's ITLSEP is the node's ITL): read and
    check it once. Bounded, least recently used first out."""

    def __init__(self, reader: EvidenceReader, size: int = 512) -> None:
        self.reader = reader
        self.size = size
        self._data: dict[str, bytes] = {}

    def content(self, a: Attempt) -> bytes | None:
        if a.blob is None:
            return None
        hit = self._data.pop(a.blob, None)
        if hit is None:
            hit = self.reader.blob(a.blob)
        self._data[a.blob] = hit
        if len(self._data) > self.size:
            del self._data[next(iter(self._data))]
        return hit


def _file(reader: BlobCache, a: Attempt) -> FileEvidence:
    data = None
    outcome = a.outcome.value
    detail = a.error
    if a.outcome is Outcome.OK:
        try:
            data = reader.content(a)
        except (OSError, ValueError, ParseError) as exc:
            outcome, detail = Outcome.PROTOCOL_ERROR.value, f"evidence blob unreadable: {exc}"
    return FileEvidence(
        a.cluster or "", a.node or "", a.file, outcome, data, a.transport, detail, a.signed_digest
    )


def load(evidence: EvidenceReader, profile: Profile, inventory: Sequence[Phone] | None) -> Loaded:
    reader = BlobCache(evidence)
    by_phone: dict[str, list[Attempt]] = {}
    cluster_files: dict[str, list[FileEvidence]] = {"source": [], "destination": []}
    tvs: dict[str, list[TvsEvidence]] = {"source": [], "destination": []}
    for a in evidence.attempts():
        if a.phone is not None:
            by_phone.setdefault(a.phone, []).append(a)
        elif a.transport == TransportKind.TVS.value:
            cert = None
            if a.outcome is Outcome.OK:
                try:
                    cert = reader.content(a)
                except (OSError, ValueError, ParseError):
                    cert = None
            host, _, port = (a.address or "").rpartition(":")
            tvs.setdefault(a.cluster or "source", []).append(
                TvsEvidence(a.node, host, int(port) if port.isdigit() else 2445,
                            a.outcome.value if cert is not None or a.outcome is not Outcome.OK else "protocol_error",
                            cert, a.error)
            )
        elif a.cluster in cluster_files and a.file in ("CTLFile.tlv", "ITLFile.tlv"):
            cluster_files[a.cluster].append(_file(reader, a))
    problems: list[str] = []
    clusters = {}
    for c in profile.clusters:
        stores, errs = load_stores(c)
        problems += errs
        clusters[c.name] = ClusterEvidence(
            c.name, c.mixed, tuple(n.name for n in c.tftp), tuple(cluster_files[c.name]), stores,
            tuple(tvs.get(c.name, [])),
        )
    phones = tuple(Phone(name) for name in sorted(by_phone)) if inventory is None else tuple(inventory)
    return Loaded(
        ScanInput(clusters["source"], clusters["destination"]),
        phones,
        {k: tuple(v) for k, v in by_phone.items()},
        reader,
        tuple(problems),
    )


def phone_evidence(loaded: Loaded) -> Iterator[PhoneEvidence]:
    """One phone at a time: blobs are read only while its turn lasts (memory stays flat)."""
    for phone in loaded.phones:
        attempts = loaded.by_phone.get(phone.name, ())
        files = []
        page: PhonePage | None = None
        status: StatusMessages | None = None
        page_outcome = status_outcome = None
        page_detail = None
        for a in attempts:
            if a.transport == TransportKind.WEB.value:
                data = None
                if a.outcome is Outcome.OK:
                    try:
                        data = loaded.reader.content(a)
                    except (OSError, ValueError, ParseError):
                        data = None
                if a.file == "status-messages":
                    status_outcome = a.outcome.value
                    if data is not None:
                        try:
                            status = parse_status_messages(data)
                        except ParseError:
                            status_outcome = "protocol_error"
                elif a.file == "network-setup":
                    page_outcome, page_detail = a.outcome.value, a.error
                    if data is not None:
                        try:
                            page = parse_network_page(data)
                        except ParseError as exc:
                            page_outcome, page_detail = "protocol_error", str(exc)
            elif a.cluster in ("source", "destination"):
                files.append(_file(loaded.reader, a))
        if not attempts:
            page_outcome = "not collected"
        yield PhoneEvidence(
            phone.name,
            model=_model(phone.device_type, page),
            ip=phone.ip,
            device_pool=phone.device_pool,
            description=phone.description,
            files=tuple(files),
            page=page,
            page_outcome=page_outcome,
            page_detail=page_detail,
            status=status,
            status_outcome=status_outcome,
        )


def _model(device_type: str | None, page: PhonePage | None) -> str | None:
    """The inventory's "Cisco 8841" as phones name themselves ("CP-8841"); else the page's."""
    if device_type:
        t = device_type.strip()
        if t.lower().startswith("cisco "):
            t = t[6:].strip()
        return t if t.upper().startswith("CP-") else f"CP-{t}"
    return page.model if page is not None else None


def evidence_profile_sha(reader: EvidenceReader) -> str | None:
    try:
        summary = reader.summary()
    except (OSError, ParseError, ValueError):
        return None
    prof = summary.get("profile") if isinstance(summary, dict) else None
    sha = prof.get("sha256") if isinstance(prof, dict) else None
    return sha if isinstance(sha, str) else None


def is_evidence_dir(path: Path) -> bool:
    return (path / "manifest.jsonl").is_file()
