"""The fast HTML walk of phonepage against the stdlib HTMLParser path it replaces.

Every input must give the same PhonePage / StatusMessages (dataclass equality) through both, or the
same exception type: the real vectors, tests/data/phone-pages, the fuzz crash corpus (hostile
input), the lab's rendering of every phone of the mixed scenario in every page kind, and mutated
pages (hypothesis). Pages outside the fast walk's subset fall back to the stdlib path.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.core import phonepage as P
from scanner.core.phonepage import PageKind, parse_phone_page_stdlib

ROOT = Path(__file__).resolve().parent.parent
_DIRS = (ROOT.parent / "shared" / "vectors" / "phone-pages", Path("/work/shared/vectors/phone-pages"))
VECTORS = next((d for d in _DIRS if d.is_dir()), _DIRS[-1])
PAGE_FILES = sorted(
    [p for p in VECTORS.glob("*") if p.suffix in (".html", ".xml")]
    + [p for p in (ROOT / "tests" / "data" / "phone-pages").glob("*") if p.suffix in (".html", ".xml")]
)
CRASHERS = sorted(p for p in (ROOT / "tests" / "data" / "crashers").rglob("*") if p.is_file())

_READERS: tuple[tuple[str, Callable[[Any], object], PageKind | None], ...] = (
    ("phone", P.parse_phone_page, None),
    ("network", P.parse_network_page, PageKind.NETWORK_SETUP),
    ("security", P.parse_security_page, PageKind.SECURITY),
    ("status", P.parse_status_messages, PageKind.STATUS_MESSAGES),
)


def _outcome(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except Exception as exc:  # the exception type is the outcome compared
        return type(exc)


def assert_same(page: object) -> None:
    for name, fast, kind in _READERS:
        new = _outcome(lambda fast=fast: fast(page))  # type: ignore[misc]
        old = _outcome(lambda kind=kind: parse_phone_page_stdlib(page, kind))  # type: ignore[arg-type, misc]
        assert new == old, f"{name}: fast {new!r} != stdlib {old!r}"
    assert _outcome(lambda: P.detect_page(page)) == _outcome(  # type: ignore[arg-type]
        lambda: P._kind(P._document(page, P._tokenize))  # type: ignore[arg-type]
    )


def test_inputs_found() -> None:
    assert len([p for p in PAGE_FILES if p.parent == VECTORS]) >= 4
    assert CRASHERS


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda p: p.name)
def test_vector_same_both_ways(path: Path) -> None:
    data = path.read_bytes()
    assert_same(data)
    assert_same(data.decode("utf-8", errors="replace"))


def test_real_html_vectors_take_the_fast_path() -> None:
    # The fast path must actually be used on real pages, or the comparison proves nothing.
    html = [p for p in PAGE_FILES if p.suffix == ".html"]
    assert html and all(P.fast_path_accepts(p.read_bytes()) for p in html)


@pytest.mark.parametrize("path", CRASHERS, ids=lambda p: f"{p.parent.name}/{p.name[:12]}")
def test_crash_corpus_same_both_ways(path: Path) -> None:
    assert_same(path.read_bytes())


def _lab_pages() -> list[tuple[str, str]]:
    from scanner.lab import pages as lab_pages
    from scanner.lab.testing import built_lab
    from scanner.net.phone_web import PAGES, SECURITY_PAGE

    lab = json.loads((built_lab("mixed") / "lab.json").read_text(encoding="utf-8"))
    paths = [path for spec in (*PAGES, SECURITY_PAGE) for path in spec.paths]
    out: list[tuple[str, str]] = []
    for phone in lab["phones"]:
        for kind in lab_pages.PAGE_KINDS:
            shaped = {**phone, "pages": kind}
            for path in paths:
                route, _, query = path.partition("?")
                key, _, value = query.partition("=")
                got = lab_pages.render(route, {key: value} if key else {}, shaped, lab.get("trust_variants", {}))
                if got is not None and got[0] == 200:
                    out.append((f"{phone['name']}:{kind}:{path}", got[2]))
    return out


def test_lab_pages_same_both_ways() -> None:
    pages = _lab_pages()
    kinds = {name.split(":")[1] for name, _ in pages}
    assert kinds == {"html", "xml", "dx", "security-page"}
    for name, body in pages:
        try:
            assert_same(body)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc
    html = [body for _, body in pages if not body.lstrip().startswith("<?xml")]
    assert html and all(P.fast_path_accepts(body) for body in html)


# --- fallback: markup outside the subset goes to the stdlib path ------------------------------

_BASE = (VECTORS / "cisco-CP-8841.html").read_text(encoding="utf-8", errors="replace") if VECTORS.is_dir() else ""


@pytest.mark.parametrize(
    "insert",
    [
        "<![CDATA[x]]>",
        "<?php x ?>",
        "<!-- a -- b -->",
        '<a title="x>y">',
        "<td a=b/c>",
        "<title>a<b>c</title>",
        "<noscript>",
        "<p/ >",
        "<!-- x --->",
    ],
)
def test_outside_the_subset_falls_back_with_the_same_result(insert: str) -> None:
    if not _BASE:
        pytest.skip("no vectors")
    at = _BASE.find("<TR>", len(_BASE) // 2)
    page = _BASE[:at] + insert + _BASE[at:]
    assert not P.fast_path_accepts(page)
    assert_same(page)


# --- mutated pages -------------------------------------------------------------------------------

_SEEDS = [p.read_text(encoding="utf-8", errors="replace") for p in PAGE_FILES if p.suffix == ".html"]
_SNIPPETS = [
    "<", ">", "&", "&amp;", "&nbsp;", "&#x2D;", "&lt", "</td>", "<td>", "<tr>", "</tr>", "<table>",
    "</table>", "<br>", "<br/>", "<a href=x>", "</a>", "<!--", "-->", "<!-- c -->", "<script>", "</script>",
    "<title>", "</title>", "<!DOCTYPE html>", "<b>", "</b>", "\n", " ", ":", "CTL file", "9:52:58p ",
    "<TD/>", "<td x='1' y=\"2\">", "<![", "<?x?>", "</", "<a\n", "Trust List update failed",
]


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    page = draw(st.sampled_from(_SEEDS)) if _SEEDS else "<html><body>ITL File</body></html>"
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(page)))
        op = draw(st.integers(0, 2))
        if op == 0:
            page = page[:at] + draw(st.sampled_from(_SNIPPETS)) + page[at:]
        elif op == 1:
            page = page[:at] + page[at + draw(st.integers(1, 40)) :]
        else:
            page = page[:at] + draw(st.text(max_size=8)) + page[at:]
    return page


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_pages_same_both_ways(page: str) -> None:
    assert_same(page)
    assert_same(page.encode("utf-8", errors="surrogatepass"))


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="<>/&;!-abtrdTR=\"' \n:p", max_size=200))
def test_markup_soup_same_both_ways(page: str) -> None:
    assert_same(page)


def test_fast_result_is_a_dataclass_like_the_old() -> None:
    if not _BASE:
        pytest.skip("no vectors")
    new = P.parse_network_page(_BASE)
    assert dataclasses.is_dataclass(new) and new.fields
