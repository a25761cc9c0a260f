"""report.html without a browser: the page's structure, parsed with the standard library's
HTMLParser. tests/test_html_browser.py checks what only a layout engine can (widths, overlap,
scroll position)."""

from __future__ import annotations

import copy
import re
import sqlite3
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson

from scanner.report import html_report
from scanner.report.html_report import CODE_CHECKS, SEVERITY_COLORS, TrendPoint
from tests.test_scan_reports import run_analysis

LONG = "PHONE_TRUST_UPDATE_FAILED"


def rich_report(tmp_path: Path) -> dict[str, Any]:
    """The analysed fleet of tests/test_scan_reports.py, plus what the change board saw on main:
    a cluster-level TVS_UNREACHABLE WARNING that is a BLOCKER on two phones and a WARNING on one
    (UNKNOWN: a timeout),
    a long reason code, a finding whose evidence names no check (a repeated C8 finding), evidence
    with node, file, hash, certificate and trust store, and refused inventory rows."""
    report: dict[str, Any] = copy.deepcopy(run_analysis(tmp_path).report)
    base = report["devices"][0]
    report["clusters"]["source"]["findings"] = [{
        "code": "TVS_UNREACHABLE", "severity": "WARNING", "message": "TVS tvs0:2445 refused",
        "evidence": {"cluster": "source", "tvs": "tvs0", "address": "127.1.0.11:2445", "outcome": "refused"},
    }]
    extra = []
    for i, (sev, check) in enumerate((("BLOCKER", "FAIL"), ("BLOCKER", "FAIL"), ("WARNING", "UNKNOWN"))):
        d = copy.deepcopy(base)
        d.update(name=f"SEPBAD00000000{i}", readiness="NOT_READY" if sev == "BLOCKER" else "UNKNOWN")
        d["checks"] = dict(d["checks"], C4=check, C2="FAIL" if i == 0 else "PASS")
        d["findings"] = [{"code": "TVS_UNREACHABLE", "severity": sev,
                          "message": "no TVS of the phone is reachable: tvs0 (127.1.0.11:2445)",
                          "evidence": {"check": "C4", "unreachable": ["tvs0 (127.1.0.11:2445)"]}},
                         {"code": "NO_ROLLBACK_PATH", "severity": "WARNING",
                          "message": "the source signers are not in the destination trust stores",
                          "evidence": {"cluster": "destination", "store": "Phone-SAST-trust",
                                       "subject": "CN=ITLRECOVERY_src", "serial": "0A1B"}}]
        if i == 0:
            d["findings"].append({"code": LONG, "severity": "BLOCKER", "message": "the last trust event failed",
                                  "evidence": {"check": "C2", "node": "s1", "file": "ITLSEP001122334400.tlv",
                                               "served_sha1": "ab" * 20, "phone_hash": "cd" * 20}})
        # A phone's reasons: its blockers, or (UNKNOWN, the timed-out TVS) what left a check unknown.
        d["reasons"] = [f["code"] for f in d["findings"] if f["severity"] == "BLOCKER"] or ["TVS_UNREACHABLE"]
        d["codes"] = [f["code"] for f in d["findings"]]
        extra.append(d)
    report["devices"] += extra
    report["summary"]["total"] = len(report["devices"])
    report["summary"]["counts"] = {v: sum(d["readiness"] == v for d in report["devices"])
                                   for v in ("READY", "NOT_READY", "UNKNOWN")}
    report["run"]["inventory_issues"] = ["inv.csv: line 7: no Device Name", "inv.csv: line 9: duplicate SEPA"]
    report["run"]["discovery"] = {"source": "axl", "clusters": 2}
    return report


class Page(HTMLParser):
    """Elements by id, the text of each table's cells, and every element's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.ids: dict[str, str] = {}
        self.cells: dict[str, list[list[str]]] = {}
        self.tags: list[tuple[str, dict[str, str]]] = []
        self._table: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if "id" in a:
            self.ids[a["id"]] = tag
        if tag == "table":
            self._table.append(a.get("id", f"table{len(self.cells)}"))
            self.cells.setdefault(self._table[-1], [])
        elif tag == "tr" and self._table:
            self.cells[self._table[-1]].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        if tag not in ("wbr", "br", "meta", "input", "link"):
            self.stack.append((tag, a))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.cells[self._table[-1]][-1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "table" and self._table:
            self._table.pop()
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> Page:
    p = Page()
    p.feed(html)
    return p


def test_page_structure(tmp_path: Path) -> None:
    report = rich_report(tmp_path)
    html = html_report.render(report)
    page = parse(html)
    # Self-contained: no element loads anything from elsewhere.
    for tag, a in page.tags:
        for attr in ("src", "href"):
            assert not re.match(r"(https?:)?//", a.get(attr, "")), (tag, a)
        assert tag not in ("link", "iframe", "img") or a.get("src", "").startswith("data:"), tag
    # Every chart label carries its full text on hover, and the long code is whole in the markup.
    labels = [a for tag, a in page.tags if "bar-label" in a.get("class", "")]
    assert labels and all(a.get("title") for a in labels)
    assert LONG in {a["title"] for a in labels}
    # Reason bars are coloured by severity: the TVS_UNREACHABLE bar has a BLOCKER and a WARNING segment.
    segs = [a for tag, a in page.tags if a.get("class") == "seg" and a["title"].startswith("TVS_UNREACHABLE:")]
    assert {s["title"].split()[-1] for s in segs} == {"BLOCKER", "WARNING"}
    for s in segs:
        assert SEVERITY_COLORS[s["title"].split()[-1]] in s["style"]
    # The drill-down is a dialog, its raw JSON folded in <details>.
    assert page.ids["detail"] == "dialog" and page.ids["detail-raw"] == "details"
    assert page.ids["detail-evidence"] == "table"


def test_cluster_findings_say_which_phones_and_why(tmp_path: Path) -> None:
    page = parse(html_report.render(rich_report(tmp_path)))
    rows = page.cells["cluster-table"]
    head, body = rows[0], rows[1:]
    tvs = [dict(zip(head, r, strict=True)) for r in body if "TVS_UNREACHABLE" in r]
    assert len(tvs) == 1
    row = tvs[0]
    assert row["Severity (cluster)"] == "WARNING" and row["Check"] == "C4"
    effect = row["Effect on phones"]
    assert "BLOCKER on 2 phone(s): SEPBAD000000000, SEPBAD000000001" in effect
    assert "WARNING on 1 phone(s): SEPBAD000000002" in effect
    assert "not already SAST-trusted" in effect  # the why, from docs/readiness.md's C4


def test_no_empty_check_and_check_table_matches_docs(tmp_path: Path) -> None:
    report = rich_report(tmp_path)
    html = html_report.render(report)
    data = orjson.loads(re.search(r'<script id="report-data" type="application/json">(.*?)</script>', html,
                                  re.S).group(1))  # type: ignore[union-attr]
    checks = [f["check"] for d in data["devices"] for f in d["findings"]]
    assert checks and all(checks)
    assert "C8" in checks  # the NO_ROLLBACK_PATH finding has no check in its evidence
    # CODE_CHECKS is docs/readiness.md's table: each code listed under a check there maps to it.
    doc = (Path(__file__).resolve().parents[1] / "docs" / "readiness.md").read_text()
    from_doc: dict[str, set[str]] = {}
    for line in doc.splitlines():
        m = re.match(r"\| (C\d) \|", line)
        if m:
            for code in re.findall(r"`([A-Z][A-Z0-9_]+)`", "|".join(line.split("|")[3:])):
                from_doc.setdefault(code, set()).add(m.group(1))
    from_doc.pop("EVIDENCE_MISSING", None)
    assert {c: set(v) for c, v in CODE_CHECKS.items()} == from_doc


def test_trend_has_dates_values_sizes_and_marks_other_runs(tmp_path: Path) -> None:
    points = [TrendPoint("2026-11-01T02:00:00+00:00", 0.5, 20000, 10000, "p1"),
              TrendPoint("2026-11-02T02:00:00+00:00", 0.75, 7, 5, "p1"),
              TrendPoint("2026-11-03T02:00:00+00:00", 0.8, 20000, 16000, "p2")]
    svg = html_report.trend_chart(points, total=20000, profile="p2")
    for text in ("2026-11-01", "2026-11-03", "50%", "80%", "n=20000", "n=7"):
        assert text in svg
    page = parse(svg)
    marked = [r for r in page.cells["table0"] if r and "not 20000" in r[-1]]
    assert len(marked) == 1 and "7" in marked[0]
    assert "another profile" in svg
    # Two-tuples (the history's old shape) still draw, with the size said to be unknown.
    assert "size not recorded" in html_report.trend_chart([("2026-11-01T02:00:00+00:00", 0.5),
                                                           ("2026-11-02T02:00:00+00:00", 0.6)])


def test_history_trend_reads_sizes_from_the_history(tmp_path: Path) -> None:
    from scanner.store.history import History

    run_analysis(tmp_path)
    report = orjson.loads((tmp_path / "out" / "report.json").read_bytes())
    bigger = copy.deepcopy(report)
    bigger["devices"] += [dict(report["devices"][0], name="SEPFEEDFEEDFEED")]
    bigger["summary"]["total"] = 5
    with History(tmp_path / "h.sqlite") as h:
        h.record(bigger, "elsewhere/report.json")
    points = html_report.history_trend(report)
    assert [p.total for p in points] == [4, 5]
    with sqlite3.connect(tmp_path / "h.sqlite") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 2  # read, never written
    html = html_report.render(report, points)
    assert "n=4" in html and "n=5" in html and "5 phones, not 4" in html


def test_run_metadata_and_inventory_warnings(tmp_path: Path) -> None:
    report = rich_report(tmp_path)
    page = parse(html_report.render(report))
    assert "inventory-notice" in page.ids
    html = html_report.render(report)
    assert "<li>inv.csv: line 7: no Device Name</li>" in html
    assert "<dt>discovery</dt><dd><dl class=\"meta\"><dt>source</dt><dd>axl</dd>" in html
    started = report["run"]["started"][:19].replace("T", " ")
    assert f"<dt>started</dt><dd>{started} UTC</dd>" in html
    assert "<dt>whole run (started → finished)</dt><dd>" + started[:16] in html
