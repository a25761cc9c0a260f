"""trustscan explain on the seed's own excerpts (tests/data/seed-logs) and on failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.cli.main import main
from scanner.core.explain import explain

LOGS = Path(__file__).parent / "data" / "seed-logs"


def test_the_seed_phone_log_is_a_ctl_verified_through_tvs_then_an_itl() -> None:
    ex = explain((LOGS / "phone-console.log").read_text())
    assert ex.kind == "phone console log"
    texts = [e.text for e in ex.events]
    assert texts[0] == "asks for CTLSEPB000B4BA0AEE.tlv"
    assert "the signer is not in its lists: connects to TVS 192.168.11.32" in texts
    assert "TLS handshake with TVS successful" in texts and "TVS answered (1480 bytes)" in texts
    assert "asks for ITLSEPB000B4BA0AEE.tlv" in texts and "the file came from 192.168.11.51" in texts
    assert texts.count("trust list installed") == 2 and not any(e.failure for e in ex.events)
    assert ex.verdict == "2 trust list(s) verified and installed (the CTL through TVS)"


def test_the_seed_tvs_trace_decodes_the_query_and_the_roles() -> None:
    ex = explain((LOGS / "tvs-trace.log").read_text())
    assert ex.kind == "TVS trace"
    texts = [e.text for e in ex.events]
    assert "phone 192.168.11.100 connected" in texts and "TLS handshake done, cipher AES256-SHA" in texts
    # The dump of the request: the seed's header bytes, decoded by the codec.
    assert any("query certificate request, session 1001, payload 143 bytes" in t for t in texts)
    assert "asks about issuer CN=stormin-WIN2012-CA" in texts and "serial 24000000179479B8F124AC3F3B000000000017" in texts
    assert "found in its stores with role(s) SAST (0), TFTP (3)" in texts
    assert "role SAST" in ex.verdict


def test_a_refused_list_and_a_failed_handshake_are_failures() -> None:
    log = (
        "100 INF Nov 29 06:33:59.395199 SECUREAPP-Attempting connect to TVS server addr [10.1.1.5],\n"
        "mode [IPv4]\n"
        "101 ERR Nov 29 06:33:59.396011 SECUREAPP-Sec SSL Connection - Handshake failed.\n"
        "102 ERR Nov 29 06:34:00.413031 SECUREAPP-Trust List update failed\n"
    )
    ex = explain(log)
    assert [e.failure for e in ex.events] == [False, True, True]
    assert "refused" in ex.verdict and "Trust List update failed" in ex.verdict
    tvs = "10:00:00.000 | debug tvsHandleQueryCertReq : Serial Number is: 01\n10:00:00.001 | debug No entry found for 01\n"
    t = explain(tvs)
    assert t.events[-1].failure and t.verdict == "TVS did not know the certificate"


def test_unknown_formats_are_said_with_exit_64(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("shopping list\nmilk\n")
    assert main(["explain", str(LOGS / "phone-console.log"), str(tmp_path / "notes.txt"), str(tmp_path / "gone")]) == 64
    out, err = capsys.readouterr()
    assert "notes.txt: unknown: not a phone console log or a TVS trace (2 lines, none understood)" in out
    assert "phone console log (59 of 68 lines in the format: records at lines 1-2, 4" in out
    assert "gone: cannot read" in err
