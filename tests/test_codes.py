"""The finding-code registry (``scanner.core.findings.Code``) against its documentation, the
package's source and what the checks emit.

Codes are API: the registry is the one list, docs/finding-codes.md must list exactly its members
(with severities the registry allows), no module may spell a code as a string literal (it names
the member), and nothing code-like bypasses the registry. ``Finding.code`` is typed ``Code``, so
mypy refuses a code built at run time (an f-string) as well.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import scanner
from scanner.core.filechecks import file_findings
from scanner.core.findings import Code, Finding, Severity
from scanner.core.policy import default_policy
from scanner.core.readiness import NOT_COLLECTED, CheckStatus, Evaluator, Readiness, Verdict
from scanner.core.trustcache import TrustFileCache
from scanner.core.trustlist import parse
from scanner.core.verification import FleetOutcome, Migration
from scanner.core.verify import verify
from tests.fleet import NAME, Scenario, base_world, page
from tests.pki import NOW, make_cert, rsa_key

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "finding-codes.md"
PACKAGE = Path(scanner.__path__[0])
REGISTRY_MODULE = PACKAGE / "core" / "findings.py"
CODE_LIKE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
# Upper-case words with underscores that the package spells and that are not finding codes: the
# verdict vocabulary (its own enums), environment variables, and an argparse metavar.
NOT_CODES = (
    {r.value for r in Readiness}
    | {v.value for v in Verdict}
    | {s.value for s in CheckStatus}
    | {m.value for m in Migration}  # trustscan verify's outcomes: vocabulary, not findings
    | {o.value for o in FleetOutcome}
    | {"XDG_STATE_HOME", "XDG_CACHE_HOME", "TRUSTSCAN_LAB_KEY_CACHE", "SCANNER_NO_EXTENSIONS", "EVIDENCE_DIR"}
)


def test_members_are_spelled_as_their_names() -> None:
    assert len(Code) > 30
    for c in Code:
        assert c.value == c.name and CODE_LIKE.fullmatch(c.value), c
        assert c.severities and c.severities <= set(Severity), c
        assert c.meaning.strip(), c
    assert not {c.value for c in Code} & NOT_CODES


# --- The documentation ------------------------------------------------------------------------


def _doc_codes(text: str) -> set[str]:
    return {m for m in re.findall(r"`([^`]+)`", text) if CODE_LIKE.fullmatch(m)}


def _doc_rows(text: str) -> Iterator[tuple[str, str]]:
    """(code, severity column) of each table row that starts with a code."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`[A-Z0-9_]+`", cells[0]):
            yield cells[0].strip("`"), cells[1]


def test_doc_lists_every_code_and_only_codes() -> None:
    doc = _doc_codes(DOC.read_text(encoding="utf-8"))
    registry = {c.value for c in Code}
    assert not registry - doc, f"in the registry, not in {DOC.name}: {sorted(registry - doc)}"
    assert not doc - registry, f"in {DOC.name}, not in the registry: {sorted(doc - registry)}"


def test_doc_severities_are_the_registry_s() -> None:
    rows = list(_doc_rows(DOC.read_text(encoding="utf-8")))
    assert len(rows) >= 15, rows
    for code, column in rows:
        member = Code(code)
        said = {Severity(w) for w in re.findall(r"BLOCKER|WARNING|INFO", column)}
        assert said and said <= member.severities, (code, column, member.severities)
        if "(unknown)" in column:
            assert member.unknown, code


def test_doc_check_sees_a_missing_code() -> None:
    """The documentation check itself: a page without one code, or with an unknown one, differs."""
    text = DOC.read_text(encoding="utf-8")
    registry = {c.value for c in Code}
    assert registry - _doc_codes(text.replace("`ANALYSIS_ERROR`", "")) == {"ANALYSIS_ERROR"}
    assert _doc_codes(text + "\n`NOT_A_CODE_YET`\n") - registry == {"NOT_A_CODE_YET"}


# --- The package's source -----------------------------------------------------------------------


def _all_names(tree: ast.AST) -> set[int]:
    """ids of the string constants inside ``__all__ = [...]`` (names of the module's attributes)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            out |= {id(c) for c in ast.walk(node.value) if isinstance(c, ast.Constant)}
    return out


def source_problems(source: str, *, registry_module: bool = False) -> list[str]:
    """Code-like string literals in ``source``: a registry member spelled as a literal (name the
    member instead), or a code-like word that is no member (add it to the registry first)."""
    tree = ast.parse(source)
    skip = _all_names(tree)
    registry = {c.value for c in Code}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in skip:
            continue
        text = node.value
        if not CODE_LIKE.fullmatch(text) or text in NOT_CODES:
            continue
        if text not in registry:
            found.append(f"line {node.lineno}: {text!r} looks like a finding code but is not in the registry")
        elif not registry_module:
            found.append(f"line {node.lineno}: {text!r} spelled as a literal: use Code.{text}")
    return found


def _package_sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _package_sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_source_names_codes_through_the_registry(path: Path) -> None:
    bad = source_problems(path.read_text(encoding="utf-8"), registry_module=path == REGISTRY_MODULE)
    assert not bad, f"{path.relative_to(ROOT)}: " + "; ".join(bad)


def test_source_check_sees_literals() -> None:
    """The source check itself: a literal member, and a code-like word outside the registry, are
    both caught; ``__all__`` entries and the verdict vocabulary are not codes."""
    example = (
        "__all__ = ['NOT_FOUND_EXCESS']\n"
        "Finding('FETCH_FAILED', Severity.WARNING, '')\n"
        "if f.code == 'NEW_IDEA_CODE': pass\n"
        "verdict = 'NO_GO'\n"
    )
    assert source_problems(example) == [
        "line 2: 'FETCH_FAILED' spelled as a literal: use Code.FETCH_FAILED",
        "line 3: 'NEW_IDEA_CODE' looks like a finding code but is not in the registry",
    ]
    assert source_problems(example, registry_module=True) == [
        "line 3: 'NEW_IDEA_CODE' looks like a finding code but is not in the registry",
    ]


# --- What the checks emit -----------------------------------------------------------------------


def _scenarios() -> list[Scenario]:
    w = base_world()
    other = make_cert("not-the-signer", rsa_key(1024, 3))
    stale = page(b"some other ITL bytes", w.files[("source", "s1", "CTLFile.tlv")])
    return [
        Scenario(),
        Scenario(sast_store=[s.certificate for s in w.d_cm]),
        Scenario(sast_store=[s.certificate for s in w.d_cm], cm_store=[w.d_rec.certificate]),
        Scenario(dst_mixed=False, sast_store=[other], cm_store=[other]),
        Scenario(phone_page=stale, status_failed=True),
        Scenario(tvs_outcome="refused"),
        Scenario(tvs_outcome="timeout"),
        Scenario(tvs_outcome=NOT_COLLECTED),
        Scenario(tvs_cert=other),
        Scenario(page_outcome="timeout"),
        Scenario(overrides={("destination", "d1", f"{NAME}.cnf.xml.sgn"): ("not_found", None),
                            ("destination", "d2", f"{NAME}.cnf.xml.sgn"): ("not_found", None)}),
        Scenario(overrides={("source", "s1", "ITLFile.tlv"): ("ok", b"not a trust list")}),
    ]


def _emitted() -> list[Finding]:
    out: list[Finding] = []
    for sc in _scenarios():
        scan, phone = sc.scan()
        ev = Evaluator(scan, default_policy(), NOW, TrustFileCache())
        out += ev.phone(phone).findings
        out += [f for c in ev.cluster_results() for f in c.findings]
    for data in base_world().files.values():
        tf = parse(data)
        out += file_findings(tf, verify(tf), NOW + dt.timedelta(days=3650))
    return out


def registry_problems(found: list[Finding]) -> list[str]:
    """Findings whose severity their code does not allow, or that leave a check unknown when
    their code says it never does."""
    out = []
    for f in found:
        if f.severity not in f.code.severities:
            out.append(f"{f.code} with severity {f.severity}")
        if f.evidence.get("unknown") and not f.code.unknown:
            out.append(f"{f.code} marked unknown")
    return out


def test_emitted_findings_keep_to_the_registry() -> None:
    found = _emitted()
    codes = {f.code for f in found}
    assert len(codes) >= 12, sorted(codes)  # the scenarios reach a good share of the codes
    assert all(isinstance(f.code, Code) for f in found)
    assert not registry_problems(found)


def test_emitted_check_sees_a_wrong_finding() -> None:
    """The check itself: a severity the code does not allow, and an unknown it never is, are caught."""
    assert registry_problems([
        Finding(Code.DIGEST_SHA512, Severity.BLOCKER, "signed with SHA-512"),
        Finding(Code.NODE_MISMATCH, Severity.WARNING, "nodes differ", {"unknown": True}),
    ]) == ["DIGEST_SHA512 with severity BLOCKER", "NODE_MISMATCH marked unknown"]
