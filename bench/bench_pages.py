"""Phone page parsing: µs per page, the stdlib HTMLParser path (old) beside the fast walk (new).

Pages: the real vectors (shared/vectors/phone-pages), tests/data/phone-pages, and the lab's
rendering of every phone of a built ``mixed`` lab in every page kind. For reference it also times
a bare tree build by selectolax (lexbor, modest) and lxml.html when installed: that is only the
parse, before any row extraction, i.e. a lower bound of what a library-based reader would cost.

    .venv/bin/python bench/bench_pages.py [--repeat N] [--json]

The last line with --json is a summary: {"kinds": {kind: {"old_us", "new_us", "ratio", ...}}, ...}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanner.core import phonepage as P  # noqa: E402


def _pages() -> dict[str, list[str]]:
    from scanner.lab import pages as lab_pages
    from scanner.lab.testing import built_lab
    from scanner.net.phone_web import PAGES, SECURITY_PAGE

    by_kind: dict[str, list[str]] = defaultdict(list)
    for folder in (Path("/work/shared/vectors/phone-pages"), ROOT / "tests" / "data" / "phone-pages"):
        for path in sorted(folder.glob("*")):
            if path.suffix in (".html", ".xml"):
                by_kind["vectors"].append(path.read_text(encoding="utf-8", errors="replace"))
    lab = json.loads((built_lab("mixed") / "lab.json").read_text(encoding="utf-8"))
    for phone in lab["phones"]:
        for shape in lab_pages.PAGE_KINDS:
            for spec in (*PAGES, SECURITY_PAGE):
                page_path = spec.paths[0] if shape != "xml" else next((p for p in spec.paths if "X" in p), "")
                route, _, query = page_path.partition("?")
                key, _, value = query.partition("=")
                got = lab_pages.render(
                    route, {key: value} if key else {}, {**phone, "pages": shape}, lab.get("trust_variants", {})
                )
                if got is not None and got[0] == 200:
                    by_kind[f"{shape}:{spec.name}"].append(got[2])
    return dict(by_kind)


def _time(fn: Callable[[str], object], pages: list[str], repeat: int) -> float:
    """Best of ``repeat`` runs over all pages, in µs per page."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for page in pages:
            fn(page)
        best = min(best, time.perf_counter() - start)
    return best / len(pages) * 1e6


def _libraries() -> dict[str, Callable[[str], object]]:
    found: dict[str, Callable[[str], object]] = {}
    try:
        from selectolax.lexbor import LexborHTMLParser  # type: ignore[import-not-found]
        from selectolax.parser import HTMLParser as ModestHTMLParser  # type: ignore[import-not-found]

        found["selectolax-lexbor"] = LexborHTMLParser
        found["selectolax-modest"] = ModestHTMLParser
    except ImportError:
        pass
    try:
        import lxml.html  # type: ignore[import-untyped]

        found["lxml.html"] = lxml.html.fromstring
    except ImportError:
        pass
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    kinds = _pages()
    libraries = _libraries()
    old = P.parse_phone_page_stdlib
    new = P.parse_phone_page
    summary: dict[str, Any] = {"kinds": {}}
    mismatches = 0
    head = f"{'kind':34} {'pages':>5} {'old µs':>9} {'new µs':>9} {'ratio':>6}" + "".join(
        f" {name:>18}" for name in libraries
    )
    print(head)
    for kind, pages in sorted(kinds.items()):
        mismatches += sum(old(p) != new(p) for p in pages)
        row: dict[str, Any] = {"pages": len(pages), "old_us": _time(old, pages, args.repeat)}
        row["new_us"] = _time(new, pages, args.repeat)
        row["ratio"] = row["old_us"] / row["new_us"]
        html = [p for p in pages if not p.lstrip().startswith("<?xml")]
        row["fast_path_pages"] = sum(P.fast_path_accepts(p) for p in html)
        for name, build in libraries.items():
            row[f"{name}_parse_only_us"] = _time(build, html, args.repeat) if html else None
        summary["kinds"][kind] = row
        libs = "".join(
            f" {row[f'{n}_parse_only_us']:>18.1f}" if row[f"{n}_parse_only_us"] is not None else f" {'-':>18}"
            for n in libraries
        )
        print(f"{kind:34} {len(pages):>5} {row['old_us']:>9.1f} {row['new_us']:>9.1f} {row['ratio']:>6.2f}{libs}")
    all_pages = [p for pages in kinds.values() for p in pages]
    summary["all"] = {
        "pages": len(all_pages),
        "old_us": _time(old, all_pages, args.repeat),
        "new_us": _time(new, all_pages, args.repeat),
    }
    summary["all"]["ratio"] = summary["all"]["old_us"] / summary["all"]["new_us"]
    # The old path's parts, on the HTML pages: defuse pass and HTMLParser tokenizing.
    html_all = [P._to_text(p) for p in all_pages if not P._looks_like_xml(P._to_text(p))]
    summary["parts_us"] = {
        "defuse_markup": _time(P._defuse_markup, html_all, args.repeat),
        "stdlib_tokenize_incl_defuse": _time(P._tokenize, html_all, args.repeat),
        "fast_tokenize": _time(P._tokenize_fast, html_all, args.repeat),
    }
    summary["mismatches"] = mismatches
    summary["median_ratio"] = statistics.median(r["ratio"] for r in summary["kinds"].values())
    print(
        f"all {summary['all']['pages']} pages: old {summary['all']['old_us']:.1f} µs, new "
        f"{summary['all']['new_us']:.1f} µs per page ({summary['all']['ratio']:.2f}x); parts (HTML): "
        + ", ".join(f"{k} {v:.1f} µs" for k, v in summary["parts_us"].items())
        + f"; old/new mismatches: {mismatches}"
    )
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
