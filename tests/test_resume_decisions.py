"""Which jobs a resumed run keeps (scanner.app.resume), on hand-made manifests: no network."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from scanner.app.resume import NothingToResume, resume_point
from scanner.core.evidence import Attempt, Outcome
from scanner.core.profile import parse_profile
from scanner.store.evidence import EvidenceWriter

PHONE = "SEP001122334455"
PROFILE = b"""[clusters.source]
mode = "non-secure"
transport = "both"
[[clusters.source.tftp]]
name = "s1"
address = "127.0.0.1"
[clusters.destination]
mode = "non-secure"
[[clusters.destination.tftp]]
name = "d1"
address = "127.0.0.2"
"""


def line(phone: str | None, cluster: str | None, node: str | None, transport: str, file: str,
         outcome: Outcome) -> Attempt:
    return Attempt(phone=phone, cluster=cluster, node=node, transport=transport, file=file, outcome=outcome,
                   size=None, sha256=None, duration=0.0)


def write(tmp: Path, attempts: list[Attempt], state: str = "interrupted", phones: tuple[str, ...] = (PHONE,)
          ) -> tuple[Path, object]:
    profile = parse_profile(PROFILE, base_dir=tmp)
    ev = tmp / "ev"
    with EvidenceWriter(ev) as w:
        for a in attempts:
            w.record(a)
    (ev / "collection.json").write_bytes(orjson.dumps({
        "evidence_format": 1, "state": state, "profile": profile.snapshot(), "inventory": None,
        "counts": {"attempts": len(attempts)}, "plan": {"phones": list(phones)},
    }))
    return ev, profile


def test_both_transports_keep_an_ok_answer_and_pages_need_every_line(tmp_path: Path) -> None:
    attempts = [
        # "both": HTTP had the file, TFTP timed out: the final answer was ok, it is kept.
        line(PHONE, "source", "s1", "http", f"ITL{PHONE}.tlv", Outcome.OK),
        line(PHONE, "source", "s1", "tftp", f"ITL{PHONE}.tlv", Outcome.TIMEOUT),
        # The config timed out on both: asked again.
        line(PHONE, "source", "s1", "http", f"{PHONE}.cnf.xml.sgn", Outcome.TIMEOUT),
        line(PHONE, "source", "s1", "tftp", f"{PHONE}.cnf.xml.sgn", Outcome.TIMEOUT),
        # Only the first of the phone's pages has its line: the phone's pages are asked again.
        line(PHONE, None, "127.0.0.9", "web", "network-setup", Outcome.OK),
    ]
    ev, profile = write(tmp_path, attempts)
    point = resume_point(ev, profile, None)  # type: ignore[arg-type]
    assert (PHONE, "source", "s1", f"ITL{PHONE}.tlv") in point.done_files
    assert (PHONE, "source", "s1", f"{PHONE}.cnf.xml.sgn") not in point.done_files
    assert PHONE not in point.done_web
    assert len(point.keep) == 2  # the two lines of the ITL job


def test_a_finished_run_with_only_definite_answers_has_nothing_to_resume(tmp_path: Path) -> None:
    attempts = [line(None, "source", "s1", "tftp", "CTLFile.tlv", Outcome.NOT_FOUND),
                line(None, "destination", "d1", "tftp", "ITLFile.tlv", Outcome.OK),
                line(None, "source", "10.0.0.1", "tvs", "server-certificate", Outcome.SKIPPED)]
    ev, profile = write(tmp_path, attempts, state="complete", phones=())
    with pytest.raises(NothingToResume, match="nothing to resume"):
        resume_point(ev, profile, None)  # type: ignore[arg-type]
