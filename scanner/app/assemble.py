"""From an evidence directory to readiness input: the adapter between ``collect`` and the checks.

Reads ``manifest.jsonl`` and the blobs it names (through ``EvidenceReader``), the trust stores the
profile names, and the inventory; produces the ``ClusterEvidence`` of both clusters and, one phone
at a time, ``PhoneEvidence``. Bad blobs or pages become outcomes, never exceptions: one broken
phone never stops the analysis, and every phone in scope comes out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scanner.core.cucm.axl import ClusterSettings
from scanner.core.errors import ParseError
from scanner.core.evidence import Attempt, Outcome, TransportKind
from scanner.core.inventory import Phone
from scanner.core.parsecache import ParseCache
from scanner.core.phonepage import (
    PhonePage,
    StatusMessages,
    merge_security_page,
    parse_network_page,
    parse_security_page,
    parse_status_messages,
)
from scanner.core.plan import CLUSTER_FILES, phone_file_keys
from scanner.core.profile import Cluster, Profile
from scanner.core.readiness import (
    DAMAGED,
    NOT_COLLECTED,
    ClusterEvidence,
    FileEvidence,
    PhoneEvidence,
    ScanInput,
    TvsEvidence,
)
from scanner.core.verify import TrustStore
from scanner.store.evidence import MANIFEST, EvidenceReader, PhoneIndex
from scanner.store.trust_stores import load_trust_store


@dataclass(slots=True)
class EvidenceState:
    """What an evidence directory says about its own completeness."""

    state: str  # "complete", "interrupted", "running" (never finished: killed), "unknown"
    issues: list[str] = field(default_factory=list)  # each a sentence naming the file and the gap
    damaged: Counter[str] = field(default_factory=Counter)  # blob -> times it could not be read
    not_collected: int = 0  # planned files, pages and probes with no manifest line

    def fleet_issues(self) -> tuple[str, ...]:
        """Reasons the fleet's verdict cannot be GO, whatever the phones say."""
        out = list(self.issues)
        if self.damaged:
            out.append(
                f"{len(self.damaged)} evidence blob(s) missing or not matching their hash "
                f"(e.g. sha256 {next(iter(self.damaged))}); the files they held "
                "count as unknown"
            )
        if self.not_collected:
            out.append(f"{self.not_collected} planned file(s), page(s) or probe(s) were never collected")
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Loaded:
    scan: ScanInput
    phones: tuple[Phone, ...]  # in scope, in inventory order
    by_phone: Mapping[str, tuple[Attempt, ...]]
    reader: BlobCache
    store_errors: tuple[str, ...]
    profile: Profile | None = None
    evidence: EvidenceState = field(default_factory=lambda: EvidenceState("unknown"))


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


def _damaged(state: EvidenceState, a: Attempt, exc: BaseException) -> str:
    state.damaged[a.blob or "?"] += 1
    why = "missing" if isinstance(exc, FileNotFoundError) else str(exc)
    return f"evidence blob {a.blob} damaged ({why}): the fetch succeeded but its bytes are gone"


def _file(reader: BlobCache, a: Attempt, state: EvidenceState) -> FileEvidence:
    data = None
    outcome = a.outcome.value
    detail = a.error
    if a.outcome is Outcome.OK:
        try:
            data = reader.content(a)
        except (OSError, ValueError, ParseError) as exc:
            outcome, detail = DAMAGED, _damaged(state, a, exc)
    return FileEvidence(
        a.cluster or "", a.node or "", a.file, outcome, data, a.transport, detail, a.signed_digest
    )


def evidence_state(evidence: EvidenceReader) -> tuple[EvidenceState, dict[str, Any]]:
    """The run's own account of itself (``collection.json``), as a state and issues."""
    try:
        summary = evidence.summary()
    except (OSError, ParseError) as exc:
        return EvidenceState("unknown", [f"{evidence.root}/collection.json unreadable ({exc})"]), {}
    if not summary:
        return EvidenceState("unknown", [
            f"{evidence.root} has no collection.json: the collection never finished, or the file was lost"
        ]), {}
    state = summary.get("state", "complete")  # evidence from before states were recorded: written at the end
    st = EvidenceState(state if state in ("complete", "interrupted", "running") else "unknown")
    if st.state == "interrupted":
        why = summary.get("interrupted") or "no reason recorded"
        st.issues.append(f"the collection was interrupted ({why}); finish it with --resume")
    elif st.state == "running":
        st.issues.append(
            "the collection never finished (collection.json still says running: the collector was killed or "
            "crashed); finish it with --resume"
        )
    elif st.state == "unknown":
        st.issues.append(f"collection.json has an unknown state {state!r}")
    return st, summary


def axl_settings(evidence: EvidenceReader, problems: list[str]) -> dict[str, ClusterSettings]:
    """Each discovered cluster's security settings from ``discovery.json`` (none without AXL)."""
    try:
        record = evidence.discovery()
    except ParseError as exc:
        problems.append(f"discovery record unreadable: {exc}")
        return {}
    out: dict[str, ClusterSettings] = {}
    for name, found in ((record or {}).get("clusters") or {}).items():
        s = found.get("settings") if isinstance(found, dict) else None
        if isinstance(s, dict):
            out[name] = ClusterSettings(s.get("mixed_mode"), s.get("rollback_to_pre_8"))
    return out


class Accumulator:
    """The manifest's attempts sorted as they are read: per phone, the clusters' files, the TVS
    probes, and the per-node answer counts. ``load`` feeds it the whole manifest at once; the
    streaming analysis (``scanner.app.streaming``) feeds it lines as the collector writes them and
    takes each phone's attempts out when it decides the phone."""

    def __init__(self, reader: BlobCache, state: EvidenceState, index: PhoneIndex | None = None) -> None:
        self.reader = reader
        self.state = state  # damaged blobs are counted here as they are read
        self.by_phone: dict[str, list[Attempt]] = {}
        # Archived evidence: each phone's lines located in the manifest instead of held (``add``
        # with the line's offset), read back when the phone's turn comes.
        self.index = index
        self.cluster_files: dict[str, list[FileEvidence]] = {"source": [], "destination": []}
        self.tvs: dict[str, list[TvsEvidence]] = {"source": [], "destination": []}
        # Per node: (not found, answered) of the per-phone files' primary names (NODE_NOT_FOUND_RATE).
        self.answers: dict[tuple[str, str], list[int]] = {}
        self._stores: dict[str, tuple[dict[str, TrustStore | None], list[str]]] = {}

    def add(self, a: Attempt, at: int | None = None) -> None:
        """One attempt; ``at``, the offset of its manifest line, where the phones' lines are indexed."""
        if a.phone is not None:
            if self.index is not None:
                if at is None:
                    raise TypeError("an indexed Accumulator is given each phone line's offset")
                self.index.add(a.phone, at)
            else:
                self.by_phone.setdefault(a.phone, []).append(a)
            if (
                a.cluster is not None and a.node is not None and a.outcome in (Outcome.OK, Outcome.NOT_FOUND)
                and a.file.startswith(("SEP", "CTLSEP", "ITLSEP"))
            ):
                    n = self.answers.setdefault((a.cluster, a.node), [0, 0])
                    n[0] += a.outcome is Outcome.NOT_FOUND
                    n[1] += 1
        elif a.transport == TransportKind.TVS.value:
            cert = None
            outcome = a.outcome.value
            detail = a.error
            if a.outcome is Outcome.OK:
                try:
                    cert = self.reader.content(a)
                except (OSError, ValueError, ParseError) as exc:
                    outcome, detail = DAMAGED, _damaged(self.state, a, exc)
                if cert is None and outcome == Outcome.OK.value:
                    outcome = Outcome.PROTOCOL_ERROR.value
            host, _, port = (a.address or "").rpartition(":")
            self.tvs.setdefault(a.cluster or "source", []).append(
                TvsEvidence(a.node, host.strip("[]"), int(port) if port.isascii() and port.isdigit() else 2445, outcome, cert, detail)
            )
        elif a.cluster in self.cluster_files and a.file in CLUSTER_FILES:
            self.cluster_files[a.cluster].append(_file(self.reader, a, self.state))

    def stores(self, cluster: Cluster) -> tuple[dict[str, TrustStore | None], list[str]]:
        """The cluster's trust stores, read once however often the clusters are assembled."""
        if cluster.name not in self._stores:
            self._stores[cluster.name] = load_stores(cluster)
        return self._stores[cluster.name]

    def clusters(
        self, profile: Profile, state: EvidenceState, why: str, settings: Mapping[str, ClusterSettings],
        problems: list[str] | None = None,
    ) -> ScanInput:
        """Both clusters' evidence from what was read so far: a ``not_collected`` entry (counted in
        ``state``) for each planned cluster file and TVS probe with no manifest line."""
        clusters = {}
        for c in profile.clusters:
            stores, errs = self.stores(c)
            if problems is not None:
                problems += errs
            files = list(self.cluster_files[c.name])
            seen = {(f.node, f.name) for f in files}
            for node in c.tftp:
                for fname in CLUSTER_FILES:
                    if (node.name, fname) not in seen:
                        state.not_collected += 1
                        files.append(FileEvidence(c.name, node.name, fname, NOT_COLLECTED, None, None, why))
            probes = list(self.tvs.get(c.name, []))
            probed = {(t.address, t.port) for t in probes}
            for t in c.tvs:
                if (t.address, t.port) not in probed:
                    state.not_collected += 1
                    probes.append(TvsEvidence(t.name, t.address, t.port, NOT_COLLECTED, None, why))
            # Sorted (stably: one job's attempts keep their order): the findings then come out in
            # the same order whatever order the attempts finished in, so a resumed run's report
            # equals an uninterrupted one's.
            files.sort(key=lambda f: (f.node, f.name))
            probes.sort(key=lambda t: (t.address, t.port))
            clusters[c.name] = ClusterEvidence(
                c.name, c.mixed, tuple(n.name for n in c.tftp), tuple(files), stores, tuple(probes),
                {node: (v[0], v[1]) for (cl, node), v in self.answers.items() if cl == c.name},
                settings.get(c.name),
            )
        return ScanInput(clusters["source"], clusters["destination"])

    def loaded(
        self, evidence: EvidenceReader, profile: Profile, inventory: Sequence[Phone] | None,
        summary: Mapping[str, Any], *, lines: int, issues: Sequence[str],
    ) -> Loaded:
        """Everything read, with the gaps the manifest leaves (``lines`` and ``issues``: what the
        manifest's reader counted and could not read)."""
        state = self.state
        state.issues += issues
        counted = (summary.get("counts") or {}).get("attempts") if isinstance(summary.get("counts"), dict) else None
        if isinstance(counted, int) and lines < counted:
            state.issues.append(
                f"{evidence.root}/manifest.jsonl holds {lines} attempts but collection.json counts {counted}: "
                "the manifest was truncated or edited; the missing attempts count as never collected"
            )
        problems: list[str] = []
        settings = axl_settings(evidence, problems)
        scan = self.clusters(profile, state, _why_missing(state), settings, problems)
        by_phone: Mapping[str, tuple[Attempt, ...]] = (
            self.index if self.index is not None else {k: tuple(v) for k, v in self.by_phone.items()}
        )
        phones = _scope(inventory, summary, by_phone, state)
        return Loaded(
            scan,
            phones,
            by_phone,
            self.reader,
            tuple(problems),
            profile,
            state,
        )


def load(evidence: EvidenceReader, profile: Profile, inventory: Sequence[Phone] | None) -> Loaded:
    state, summary = evidence_state(evidence)
    acc = Accumulator(BlobCache(evidence), state, PhoneIndex(evidence.root / MANIFEST, state.issues))
    for at, a in evidence.located():
        acc.add(a, at)
    return acc.loaded(evidence, profile, inventory, summary, lines=evidence.lines, issues=evidence.issues)


def _why_missing(state: EvidenceState) -> str:
    if state.state == "complete":
        return "planned but absent from the manifest (a lost or edited manifest line)"
    if state.state == "interrupted":
        return "never collected: the collection was interrupted"
    return "never collected: the collection did not finish"


def _scope(
    inventory: Sequence[Phone] | None, summary: Mapping[str, Any], by_phone: Mapping[str, Any], state: EvidenceState
) -> tuple[Phone, ...]:
    """The phones in scope: the inventory's; else those the collection planned (discovered from the
    cache lists, recorded in collection.json before their files were fetched); else, for evidence
    from before plans were recorded, the phones the manifest names."""
    if inventory is not None:
        return tuple(inventory)
    plan = summary.get("plan")
    names = plan.get("phones") if isinstance(plan, dict) else None
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        extra = sorted(set(by_phone) - set(names))
        return tuple(Phone(n) for n in [*names, *extra])
    if state.state != "complete":
        state.issues.append(
            "the phones in scope are unknown (discovery did not finish and no inventory was given): only phones "
            "that the manifest names are reported"
        )
    return tuple(Phone(name) for name in sorted(by_phone))


def phone_evidence(loaded: Loaded, parsed: ParseCache | None = None) -> Iterator[PhoneEvidence]:
    """One phone at a time: blobs are read only while its turn lasts (memory stays flat)."""
    for phone in loaded.phones:
        yield one_phone(loaded, phone, loaded.by_phone.get(phone.name, ()), parsed)


def one_phone(
    loaded: Loaded, phone: Phone, attempts: Sequence[Attempt], parsed: ParseCache | None = None
) -> PhoneEvidence:
    """One phone's evidence from its attempts (its pages parsed once per distinct bytes when
    ``parsed`` is given): what ``phone_evidence`` yields, for a caller that has the attempts."""
    state = loaded.evidence
    why = _why_missing(state)
    cache = parsed if parsed is not None else ParseCache(max_entries=8)
    files: list[FileEvidence] = []
    page: PhonePage | None = None
    security: PhonePage | None = None
    status: StatusMessages | None = None
    page_outcome = status_outcome = None
    page_detail = None
    for a in attempts:
        if a.transport == TransportKind.WEB.value:
            data = None
            outcome, detail = a.outcome.value, a.error
            if a.outcome is Outcome.OK:
                try:
                    data = loaded.reader.content(a)
                except (OSError, ValueError, ParseError) as exc:
                    outcome, detail = DAMAGED, _damaged(state, a, exc)
            if a.file == "status-messages":
                status_outcome = outcome
                if data is not None:
                    try:
                        status = cache.get("status-messages", data, parse_status_messages)
                    except ParseError:
                        status_outcome = Outcome.PROTOCOL_ERROR.value
            elif a.file == "network-setup":
                page_outcome, page_detail = outcome, detail
                if data is not None:
                    try:
                        page = cache.get("network-setup", data, parse_network_page)
                    except ParseError as exc:
                        page_outcome, page_detail = Outcome.PROTOCOL_ERROR.value, str(exc)
            elif a.file == "security" and data is not None:
                # The trust-list lines of models that keep them on a separate security page.
                try:
                    security = cache.get("security", data, parse_security_page)
                except ParseError:
                    security = None  # the network page's facts stand
        elif a.cluster in ("source", "destination"):
            files.append(_file(loaded.reader, a, state))
    if page is not None and security is not None:
        page = merge_security_page(page, security)
    files.sort(key=lambda f: (f.cluster, f.node, f.name))  # stable: see ``load``
    if loaded.profile is not None:
        files += _never_collected(loaded.profile, phone, files, why)
        state.not_collected += sum(1 for f in files if f.outcome == NOT_COLLECTED)
    if page_outcome is None:
        page_outcome, page_detail = NOT_COLLECTED, why
        if phone.ip is not None or not attempts:
            state.not_collected += 1
    return PhoneEvidence(
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


def _never_collected(profile: Profile, phone: Phone, files: Sequence[FileEvidence], why: str) -> list[FileEvidence]:
    """A ``not_collected`` entry for every planned file of ``phone`` with no manifest line: the
    primary name, and the fallback when the primary's last answer was "not found"."""
    last: dict[tuple[str, str, str], str] = {}
    for f in files:
        last[(f.cluster, f.node, f.name)] = f.outcome
    missing: list[FileEvidence] = []
    for cluster, node, spec in phone_file_keys(profile, phone):
        primary = last.get((cluster, node, spec.primary))
        if primary is None:
            missing.append(FileEvidence(cluster, node, spec.primary, NOT_COLLECTED, None, None, why))
        elif (
            primary == Outcome.NOT_FOUND.value
            and spec.fallback is not None
            and spec.fallback not in CLUSTER_FILES  # the node's generic list: judged at cluster level
            and (cluster, node, spec.fallback) not in last
        ):
            missing.append(FileEvidence(cluster, node, spec.fallback, NOT_COLLECTED, None, None, why))
    return missing


def _model(device_type: str | None, page: PhonePage | None) -> str | None:
    """The inventory's "Cisco 8841" as phones name themselves ("CP-8841"); else the page's."""
    if device_type:
        t = device_type.strip()
        if t.lower().startswith("cisco "):
            t = t[6:].strip()
        return t if t.upper().startswith("CP-") else f"CP-{t}"
    return page.model if page is not None else None

