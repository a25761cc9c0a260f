"""The lab's phones at cutover (scanner.lab.phone_sim, scanner.lab.cutover): each path of spec
migration-readiness.md §1 on trust lists signed with a small PKI, then a served lab (base 56)
whose phones are cut over and whose web pages show the outcome."""

from __future__ import annotations

import functools
import hashlib
import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from scanner.cli.demo import serving_subprocess
from scanner.cli.main import main
from scanner.core.trustlist import Digest, Role
from scanner.lab.builder import RecordSpec, Signer, build_signed_file, build_trust_list
from scanner.lab.phone_sim import (
    Download,
    Held,
    Outcome,
    QueryAnswer,
    TvsContact,
    query_key,
    run_phone,
    signers_to_ask,
)
from tests.pki import make_cert, rsa_key

BASE = 56  # this file's lab network base (127.56.x.x, ...)
NAME = "SEPB000B4BA0AEE"


def _der(c: x509.Certificate) -> bytes:
    return c.public_bytes(Encoding.DER)


def _signer(cn: str, which: int) -> Signer:
    key = rsa_key(2048, which)
    return Signer(make_cert(cn, key), key)


@dataclass(frozen=True)
class World:
    s_rec: Signer  # source ITLRecovery: signs the source's CTL and ITL
    s_tvs: Signer  # the source TVS server certificate
    d_rec: Signer  # destination ITLRecovery: signs its CTL and ITL
    d_cm: Signer  # destination CallManager: signs configs
    other: Signer  # a certificate nobody trusts
    capf: Signer


@functools.cache
def world() -> World:
    # Distinct `which` values: tests.pki caches keys by (bits, which), so each name has its own key.
    return World(*(_signer(cn, 40 + i) for i, cn in enumerate(
        ("ITLRecovery_src", "tvs-src", "ITLRecovery_dst", "dst-pub", "intruder", "CAPF-lab")
    )))


def _list(signer: Signer, recs: list[tuple[Signer, Role]], fname: str, digest: Digest = Digest.SHA1) -> bytes:
    specs = [RecordSpec(s.certificate, role, dns_name=s.certificate.subject.rfc4514_string()) for s, role in recs]
    return build_trust_list(signer, specs, filename=fname, digest=digest, timestamp=1_700_000_000)


def src_lists(w: World) -> Held:
    ctl = _list(w.s_rec, [(w.s_rec, Role.SAST), (w.capf, Role.CAPF)], "CTLFile.tlv")
    itl = _list(w.s_rec, [(w.s_rec, Role.SAST), (w.s_tvs, Role.TVS), (w.capf, Role.CAPF)], "ITLFile.tlv")
    return Held(ctl, itl)


def dst_download(w: World, *, mixed: bool = True, config_signer: Signer | None = None,
                 digest: Digest = Digest.SHA1) -> Download:
    ctl = _list(w.d_rec, [(w.d_rec, Role.SAST), (w.d_cm, Role.CCM_TFTP)], "CTLFile.tlv", digest) if mixed else None
    itl = _list(w.d_rec, [(w.d_rec, Role.SAST), (w.d_cm, Role.CCM_TFTP), (w.capf, Role.CAPF)], "ITLFile.tlv", digest)
    config = build_signed_file(
        config_signer or w.d_cm, b"<device/>", filename=f"{NAME}.cnf.xml.sgn", timestamp=1_700_000_000
    )
    return Download(ctl, itl, config, "127.0.0.9")


def _answer(w: World, roles: tuple[int, ...], status: int = 0) -> dict[tuple[bytes, str], QueryAnswer]:
    c = w.d_rec.certificate
    serial = c.serial_number.to_bytes((c.serial_number.bit_length() + 7) // 8, "big")
    # The key as the phone forms it from the file's header (issuer written the Cisco way).
    ask = signers_to_ask(dst_download(w))
    assert ask and ask[0][0].lstrip(b"\0") == serial.lstrip(b"\0")
    return {query_key(ask[0][0], ask[0][2]): QueryAnswer(status, _der(c), roles)}


def tvs(w: World, roles: tuple[int, ...] | None = (0, 3), *, cert: Signer | None = None) -> TvsContact:
    answers = _answer(w, roles) if roles is not None else {}
    return TvsContact("127.0.0.5", 2445, _der((cert or w.s_tvs).certificate), answers=answers)


def test_signer_already_sast_trusted_needs_no_tvs() -> None:
    w = world()
    held = Held(None, _list(w.s_rec, [(w.s_rec, Role.SAST), (w.d_rec, Role.SAST), (w.s_tvs, Role.TVS)], "ITLFile.tlv"))
    d = dst_download(w)
    r = run_phone(NAME, held, d, [])  # no TVS at all: not needed
    assert r.outcome is Outcome.MIGRATED, r.reason
    assert (r.ctl, r.itl) == (d.ctl, d.itl)
    assert not any("TVS" in line for line in r.console)


def test_tvs_vouches_with_sast_role() -> None:
    w = world()
    d = dst_download(w)
    r = run_phone(NAME, src_lists(w), d, [tvs(w, (0, 3))])
    assert r.outcome is Outcome.MIGRATED, r.reason
    assert (r.ctl, r.itl) == (d.ctl, d.itl)
    assert "Trust List Updated" in r.status_lines and f"{NAME}.cnf.xml.sgn" in r.status_lines
    assert any("Handshake successful" in line for line in r.console)
    assert any("TVS added cert to TVS cache" in line for line in r.console)


def test_tvs_role_3_only_is_refused_and_old_lists_kept() -> None:
    w = world()
    held = src_lists(w)
    r = run_phone(NAME, held, dst_download(w), [tvs(w, (3,))])
    assert r.outcome is Outcome.UPDATE_FAILED
    assert (r.ctl, r.itl) == (held.ctl, held.itl)
    assert "Trust List update failed" in r.status_lines
    assert "without role SAST" in r.reason


def test_tvs_unknown_signer_is_refused() -> None:
    w = world()
    contact = TvsContact("127.0.0.5", 2445, _der(w.s_tvs.certificate),
                         answers={k: QueryAnswer(1, None, ()) for k in _answer(w, ())})
    r = run_phone(NAME, src_lists(w), dst_download(w), [contact])
    assert r.outcome is Outcome.UPDATE_FAILED and "does not know" in r.reason


def test_tvs_unreachable_is_refused() -> None:
    w = world()
    down = TvsContact("127.0.0.5", 2445, None, "ConnectionRefusedError")
    r = run_phone(NAME, src_lists(w), dst_download(w), [down])
    assert r.outcome is Outcome.UPDATE_FAILED and "unreachable" in r.reason
    # A second member that answers is used: the phone tries its TVS servers in order.
    r2 = run_phone(NAME, src_lists(w), dst_download(w), [down, tvs(w)])
    assert r2.outcome is Outcome.MIGRATED, r2.reason


def test_tvs_certificate_not_in_itl_is_refused() -> None:
    w = world()
    r = run_phone(NAME, src_lists(w), dst_download(w), [tvs(w, (0, 3), cert=w.other)])
    assert r.outcome is Outcome.UPDATE_FAILED
    assert "not a TVS record" in r.reason
    assert any("Handshake failed" in line for line in r.console)


def test_no_tvs_configured_is_refused() -> None:
    w = world()
    r = run_phone(NAME, src_lists(w), dst_download(w), [])
    assert r.outcome is Outcome.UPDATE_FAILED and "no TVS server" in r.reason


def test_rollback_blank_itl_accepts_any_new_list() -> None:
    w = world()
    blank = Held(None, _list(w.s_rec, [(w.capf, Role.CAPF)], "ITLFile.tlv"))
    for mixed in (False, True):
        d = dst_download(w, mixed=mixed)
        r = run_phone(NAME, blank, d, [])
        assert r.outcome is Outcome.MIGRATED, r.reason
        assert r.itl == d.itl


def test_rollback_with_a_source_ctl_is_a_blocker() -> None:
    # Spec §1: Rollback blanks the ITL, not the CTL: the CTL must be checked through TVS, and the
    # handshake fails because the blank ITL has no TVS record.
    w = world()
    held = Held(src_lists(w).ctl, _list(w.s_rec, [(w.capf, Role.CAPF)], "ITLFile.tlv"))
    r = run_phone(NAME, held, dst_download(w), [tvs(w)])
    assert r.outcome is Outcome.UPDATE_FAILED and "not a TVS record" in r.reason


def test_trust_on_first_use() -> None:
    w = world()
    d = dst_download(w)
    r = run_phone(NAME, Held(None, None), d, [])
    assert r.outcome is Outcome.MIGRATED and (r.ctl, r.itl) == (d.ctl, d.itl)
    assert any("trust on first use" in line for line in r.console)


def test_config_signer_unknown_is_rejected() -> None:
    w = world()
    r = run_phone(NAME, src_lists(w), dst_download(w, config_signer=w.other), [tvs(w)])
    assert r.outcome is Outcome.CONFIG_REJECTED
    assert r.itl is not None  # the lists were installed; the config was not
    assert f"{NAME}.cnf.xml.sgn verification failed" in r.status_lines


def test_not_provisioned() -> None:
    w = world()
    d = dst_download(w)
    r = run_phone(NAME, src_lists(w), Download(d.ctl, d.itl, None, d.server), [tvs(w)])
    assert r.outcome is Outcome.NOT_PROVISIONED


def test_broken_destination_signature_is_refused_even_if_vouched() -> None:
    w = world()
    d = dst_download(w)
    assert d.ctl is not None
    broken = d.ctl[:-1] + bytes([d.ctl[-1] ^ 0xFF])
    r = run_phone(NAME, src_lists(w), Download(broken, d.itl, d.config), [tvs(w)])
    assert r.outcome is Outcome.UPDATE_FAILED


def test_sha512_on_a_model_that_cannot_verify_it() -> None:
    w = world()
    d = dst_download(w, digest=Digest.SHA512)
    assert run_phone(NAME, src_lists(w), d, [tvs(w)]).outcome is Outcome.MIGRATED
    r = run_phone(NAME, src_lists(w), d, [tvs(w)], sha512=False)
    assert r.outcome is Outcome.UPDATE_FAILED


# -- a served lab ---------------------------------------------------------------------------------


def _page(phone: dict[str, object], port: int) -> str:
    url = f"http://{phone['ip']}:{port}/CGI/Java/Serviceability?adapter=device.statistics.configuration"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


def _sig(data: bytes) -> str:
    h = hashlib.sha1(data).hexdigest()
    return " ".join(h[i : i + 2].upper() for i in range(0, len(h), 2))


def test_served_cutover(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "lab"
    assert main(["lab", "build", "--out", str(lab), "--scenario", "mixed", "--phones", "60",
                 "--base", str(BASE), "--quiet"]) == 0
    meta = json.loads((lab / "lab.json").read_text())
    key = json.loads((lab / "answer-key.json").read_text())["devices"]
    phones = {p["name"]: p for p in meta["phones"]}
    html = [p for p in meta["phones"] if p["pages"] == "html" and p["web"] == "on"]
    ready = next(p for p in html if key[p["name"]]["readiness"] == "READY")
    stuck = next(
        p for p in html
        if key[p["name"]]["readiness"] == "NOT_READY"
        and {"TVS_UNREACHABLE", "TVS_NOT_CONFIGURED"} & set(key[p["name"]]["codes"])
    )
    dst = meta["clusters"]["destination"]["tftp"]
    dst_itl = (lab / dst[0]["dir"] / "ITLFile.tlv").read_bytes()
    bad = tmp_path / "phones.txt"
    bad.write_text("SEPNOSUCHPHONE\n")
    with serving_subprocess(lab):
        before = _page(stuck, meta["web_port"])
        assert main(["lab", "cutover", str(lab), "--phones", str(bad)]) == 64
        assert main(["lab", "cutover", str(lab), "--pool", "DP-NOSUCHPOOL"]) == 64
        assert not (lab / "state").exists()  # bad input moves nothing
        capsys.readouterr()
        assert main(["lab", "cutover", str(lab)]) == 0
        out = capsys.readouterr().out
        counts = {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if line.strip()}
        assert counts["migrated"] >= sum(1 for d in key.values() if d["readiness"] == "READY")
        assert counts["update-failed"] >= 1
        # Every phone ran: the stale lists the builder keeps in memory have stand-ins.
        assert counts["unsimulated"] == 0 and sum(counts.values()) == len(phones)
        page = _page(ready, meta["web_port"])
        assert f"TFTP server 1</B></TD><td width=20></TD><TD><B>{dst[0]['address']}<" in page
        assert _sig(dst_itl) in page
        failed = _page(stuck, meta["web_port"])
        assert f"<B>{dst[0]['address']}<" in failed  # option 150 moved
        old_itl = before.split("ITL signature")[1][:120]
        assert old_itl in failed and _sig(dst_itl) not in failed  # the old lists
        url = f"http://{stuck['ip']}:{meta['web_port']}/CGI/Java/Serviceability?adapter=device.settings.status.messages"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert "Trust List update failed" in resp.read().decode()
        with urllib.request.urlopen(f"http://{stuck['ip']}:{meta['web_port']}/ConsoleLog", timeout=10) as resp:
            console = resp.read().decode()
        assert "SECUREAPP-Trust List update failed" in console
    state = json.loads((lab / "state" / "phones.json").read_text())
    assert state["phones"][ready["name"]]["outcome"] == "migrated"
    assert state["phones"][stuck["name"]]["outcome"] == "update-failed"
    assert set(state["phones"]) == set(phones)


def test_an_itl_larger_than_a_phone_holds_is_refused() -> None:
    """Spec section 1, C7: at most 64 KB and 39 certificates (bench_oracle found the simulated
    phones installing the destination-itl-too-large lists the scan had called NOT_READY)."""
    import dataclasses

    w = world()
    d = dst_download(w)
    held = src_lists(w)
    r = run_phone(NAME, held, dataclasses.replace(d, itl=d.itl + b"\0" * (64 * 1024)), [tvs(w, (0, 3))])
    assert r.outcome is Outcome.UPDATE_FAILED and "larger than the phone can hold" in r.reason
    assert r.itl == held.itl
