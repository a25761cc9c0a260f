"""The streaming analysis: phones decided while the collection goes on, on the second core.

``trustscan scan`` (collecting, on one machine, not resuming) forks an analysis process before
the collector starts. The collector tells it (``EvidenceListener``) when the clusters' own files
and the profile's TVS probes are in, and which phones have every job answered; the lines and
blobs it speaks of are on disk by then. The analysis process reads the manifest as it grows
(``ManifestTail``) and decides those phones at once, writing each to ``devices.jsonl``.

A phone is decided early only when its verdict cannot depend on how the rest of the collection
goes: none of its planned evidence is missing (the reason given for a gap depends on whether the
collection finished), and every TVS member its config names was probed with the cluster files (a
member named only by configs is probed at the end, if at all). The others are decided at the end,
with everything, exactly as ``scan --from`` decides them; the clusters' results (which count
answers over the whole fleet) are made at the end too. If the clusters' evidence at the end is not
what the early verdicts were judged against, the whole evidence is analysed again after the
collection (``analyse``), so a verdict never rests on less than the archived evidence says.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import queue
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from scanner.app.analysis import AnalysisOptions, ScanOutcome, Tally, analyse, profile_issues, write_reports
from scanner.app.assemble import (
    Accumulator,
    BlobCache,
    EvidenceState,
    Loaded,
    axl_settings,
    evidence_state,
    one_phone,
)
from scanner.core.inventory import Phone
from scanner.core.parsecache import ParseCache
from scanner.core.readiness import NOT_COLLECTED, Evaluator, ScanInput, address_key
from scanner.core.trustcache import TrustFileCache
from scanner.report.jsonl_report import DeviceStream
from scanner.report.model import device_dict
from scanner.store.evidence import EvidenceReader, ManifestTail


def same_basis(early: ScanInput, final: ScanInput) -> bool:
    """Whether the clusters' evidence the early verdicts were judged against is the final one's:
    the same cluster files and, for every TVS address probed early, the same probes."""
    for a, b in ((early.source, final.source), (early.destination, final.destination)):
        if a.files != b.files:
            return False
        keys = {(address_key(t.address), t.port) for t in a.tvs}
        if list(a.tvs) != [t for t in b.tvs if (address_key(t.address), t.port) in keys]:
            return False
    return True


class StreamingAnalysis:
    """The analysis process's state: the manifest read so far, the early verdicts, the end."""

    def __init__(self, opts: AnalysisOptions) -> None:
        self.opts = opts
        self.started = time.time()
        self.cpu0 = time.process_time()
        self.parsed = opts.parse_cache if opts.parse_cache is not None else ParseCache()
        self.cache = TrustFileCache()
        self.state = EvidenceState("running")
        self.reader: EvidenceReader | None = None
        self.tail: ManifestTail | None = None
        self.acc: Accumulator | None = None
        self.by_name = {p.name: p for p in opts.inventory or ()}
        # Each phone decided early: its row number in the stream, readiness and reasons (all the
        # reports need of it at the end; its result and row are let go).
        self.early: dict[str, tuple[int, str, tuple[str, ...]]] = {}
        # One tuple for each distinct list of reasons (most phones share theirs with many others),
        # and the inventory's own name strings as keys (the pipe's copies of the names then go).
        self._reasons: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.waiting: list[str] = []
        self.basis: ScanInput | None = None
        self.loaded: Loaded | None = None  # the early basis, as one_phone reads it
        self.evaluator: Evaluator | None = None
        self.early_off = False  # the clusters' evidence had gaps: every phone waits for the end
        self.stream = DeviceStream(opts.out, write="jsonl" in opts.formats)

    def _pull(self, *, final: bool = False) -> Accumulator:
        if self.acc is None:
            self.reader = EvidenceReader(self.opts.evidence)
            self.tail = self.reader.tail()
            self.acc = Accumulator(BlobCache(self.reader), self.state)
        assert self.tail is not None
        for a in self.tail.read(final=final):
            self.acc.add(a)
        return self.acc

    def clusters_ready(self) -> None:
        acc = self._pull()
        assert self.reader is not None
        scratch = EvidenceState("running")
        basis = acc.clusters(self.opts.profile, scratch, "", axl_settings(self.reader, []))
        if scratch.not_collected:
            self.early_off = True
            return
        self.basis = basis
        self.loaded = Loaded(basis, (), {}, acc.reader, (), self.opts.profile, scratch)
        self.evaluator = Evaluator(basis, self.opts.policy, self.opts.now, self.cache, self.parsed)
        waiting, self.waiting = self.waiting, []
        for name in waiting:
            self._decide_early(name)

    def phones_done(self, names: Sequence[str]) -> None:
        self._pull()
        if self.early_off:
            return
        if self.evaluator is None:
            self.waiting += names
            return
        for name in names:
            self._decide_early(name)

    def _decide_early(self, name: str) -> None:
        acc, loaded, evaluator = self.acc, self.loaded, self.evaluator
        assert acc is not None and loaded is not None and evaluator is not None
        attempts = acc.by_phone.get(name)
        if not attempts or name in self.early:
            return
        scratch = EvidenceState("running")
        phone = self.by_name.get(name) or Phone(name)
        evidence = one_phone(dataclasses.replace(loaded, evidence=scratch), phone, attempts, self.parsed)
        if evidence.page_outcome == NOT_COLLECTED or any(f.outcome == NOT_COLLECTED for f in evidence.files):
            return  # a gap (what one_phone counts in scratch.not_collected): why, is known at the end
        result = evaluator.phone(evidence)
        for member in result.facts.get("tvs_members") or ():
            address, _, port = member.rpartition(":")
            known = evaluator.src.tvs_by_address.get(address_key(address), [])
            if not any(str(t.port) == port for t in known):
                return  # probed at the end, if at all
        self.state.damaged.update(scratch.damaged)
        del acc.by_phone[name]
        reasons = tuple(result.reasons)
        reasons = self._reasons.setdefault(reasons, reasons)
        self.early[phone.name] = (self.stream.device(device_dict(result)), result.readiness.value, reasons)

    def finish(self, run_meta: dict[str, Any]) -> ScanOutcome:
        """The collection has ended: the rest of the phones, the clusters, the reports."""
        opts = self.opts
        opts.run_meta.update(run_meta)
        ended = time.time()
        acc = self._pull(final=True)
        assert self.reader is not None and self.tail is not None
        st, summary = evidence_state(self.reader)
        self.state.state = st.state
        self.state.issues[:0] = st.issues
        warnings: list[str] = []
        differences, structural = profile_issues(self.reader, opts)
        warnings += [w for w in differences if w not in structural]
        loaded = acc.loaded(self.reader, opts.profile, opts.inventory, summary,
                            lines=self.tail.lines, issues=self.tail.issues)
        warnings += loaded.store_errors
        evaluator = Evaluator(loaded.scan, opts.policy, opts.now, self.cache, self.parsed)
        if self.early and (self.basis is None or not same_basis(self.basis, loaded.scan)):
            # Not what the early verdicts were judged against: judge everything again, as --from.
            self.stream.close()
            again = dataclasses.replace(opts, parse_cache=None)
            outcome = analyse(again)
            note = ("the clusters' evidence changed after phones were decided during the collection; "
                    "every phone was decided again after it")
            return dataclasses.replace(outcome, warnings=(*outcome.warnings, note))
        clusters = evaluator.cluster_results()
        tally = Tally()
        order: list[int] = []
        early = len(self.early)
        try:
            for phone in loaded.phones:
                got = self.early.pop(phone.name, None)
                if got is None:
                    result = evaluator.phone(one_phone(loaded, phone, loaded.by_phone.get(phone.name, ()), self.parsed))
                    got = (self.stream.device(device_dict(result)), result.readiness.value, tuple(result.reasons))
                number, readiness, reasons = got
                order.append(number)
                tally.add(readiness, reasons)
        except BaseException:
            self.stream.close()
            raise
        return write_reports(
            opts, self.stream, loaded=loaded, evaluator=evaluator, cache=self.cache, parsed=self.parsed,
            tally=tally, order=order, clusters=clusters, warnings=warnings, structural=structural,
            started=self.started, cpu0=self.cpu0,
            run_extra={"streamed": {"decided_while_collecting": early,
                                    "after_collection_seconds": round(time.time() - ended, 3)}},
        )


def _serve(opts: AnalysisOptions, conn: Connection, theirs: Connection) -> None:
    """The analysis process: messages from the collector's process until the end, or until that
    process is gone (its end of the pipe, copied here by the fork, is closed first: else this
    process would hold it open and never see the pipe end when the scan is killed)."""
    theirs.close()
    # Ctrl-C reaches the whole process group: the scan's process decides what it means (it ends
    # this one); this one must not die half-way through a write on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()

    def pump() -> None:
        # Drains the pipe as fast as messages come, so the collector's sends never block its
        # event loop (a stalled loop would turn into timeouts, which are evidence).
        try:
            while True:
                inbox.put(conn.recv())
        except (EOFError, OSError):
            inbox.put(("eof",))

    threading.Thread(target=pump, daemon=True).start()
    try:
        analysis = StreamingAnalysis(opts)
        while True:
            msg = inbox.get()
            if msg[0] == "ready":
                analysis.clusters_ready()
            elif msg[0] == "phones":
                analysis.phones_done(msg[1])
            elif msg[0] == "end":
                conn.send(("done", analysis.finish(msg[1])))
                return
            else:
                return  # the scan's process is gone
    except BaseException:
        conn.send(("error", traceback.format_exc()))


class AnalysisProcess:
    """The scan's side of the analysis process: the collector's ``EvidenceListener``."""

    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.broken: str | None = None

    @classmethod
    def start(cls, opts: AnalysisOptions) -> AnalysisProcess | None:
        """Forked now, before the collector's threads and event loop exist; None where the
        platform cannot fork (the analysis then runs after the collection)."""
        if "fork" not in multiprocessing.get_all_start_methods():
            return None
        ctx = multiprocessing.get_context("fork")
        ours, theirs = ctx.Pipe()
        process = ctx.Process(target=_serve, args=(opts, theirs, ours), name="trustscan-analysis", daemon=True)
        process.start()
        theirs.close()
        return cls(process, ours)

    def _send(self, msg: tuple[Any, ...]) -> None:
        if self.broken is not None:
            return
        try:
            self.conn.send(msg)
        except OSError as exc:  # the analysis process died: the analysis runs after the collection
            self.broken = f"the analysis process is gone ({exc})"

    def clusters_ready(self) -> None:
        self._send(("ready",))

    def phones_done(self, names: Sequence[str]) -> None:
        self._send(("phones", list(names)))

    def finish(self, run_meta: dict[str, Any]) -> ScanOutcome | str:
        """The outcome, or why there is none (then the caller analyses the evidence itself)."""
        self._send(("end", run_meta))
        if self.broken is not None:
            self.stop()
            return self.broken
        try:
            kind, value = self.conn.recv()
        except (EOFError, OSError):
            kind, value = "error", f"the analysis process ended without an outcome (exit {self.process.exitcode})"
        self.stop()
        if kind == "done" and isinstance(value, ScanOutcome):
            return value
        return str(value)

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=10)
        self.conn.close()
