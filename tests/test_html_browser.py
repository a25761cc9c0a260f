"""report.html in a real browser (headless Chromium): it renders, filters, drills down, and the
hostile device strings stay text; at 1,280 px its labels are not clipped, counts and legend items
do not overlap, bars take their severity's colour, the matrix fits, and the drill-down dialog
opens and closes (Close, Esc, Back) without moving the page. Screenshots at 1,280 and 1,920 px go
to out/. Skips with a reason when Chromium is not installed
(`.ci/run` installs Debian's chromium)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.test_scan_reports import EVIL, run_analysis

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")

# Flags for a CI machine: no sandbox (the tests run as root) and no background networking (the machine
# has no network; Chromium would otherwise try to reach Google at every start).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# A script appended to the page that drives it like a user: filter to NOT_READY/UNKNOWN rows,
# open a phone, and write what is shown into the DOM, which --dump-dom then prints.
DRIVER = """
<script>
window.addEventListener("load", () => {
  const out = {};
  const rows = () => Array.from(document.querySelectorAll("#matrix tbody tr"));
  out.initial = rows().length;
  const sel = document.getElementById("readiness");
  sel.value = "UNKNOWN"; sel.dispatchEvent(new Event("input"));
  out.unknown = rows().map((r) => r.dataset.name);
  sel.value = ""; sel.dispatchEvent(new Event("input"));
  const f = document.getElementById("filter");
  f.value = "phone_evidence_missing"; f.dispatchEvent(new Event("input"));
  out.filtered = rows().map((r) => r.dataset.name);
  rows()[0].click();
  out.detail = document.getElementById("detail-title").textContent;
  out.scripts = document.scripts.length;
  out.alerted = window.__alerted === true;
  const pre = document.createElement("pre"); pre.id = "test-result"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
window.alert = () => { window.__alerted = true; };
</script>
"""


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_report_in_headless_chromium(tmp_path: Path) -> None:
    import json
    import re

    run_analysis(tmp_path)
    html = (tmp_path / "out" / "report.html").read_text()
    driven = tmp_path / "driven.html"
    driven.write_text(html.replace("</body>", DRIVER + "</body>"))
    done = _chromium("--virtual-time-budget=5000", "--dump-dom", driven.as_uri(), tmp=tmp_path)
    m = re.search(r'<pre id="test-result">(.*?)</pre>', done.stdout)
    assert m, done.stderr[-2000:]
    result = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["initial"] == 4
    assert sorted(result["unknown"]) == ["SEP00000000FFFF", "SEP0011223344AA"[:-2] + "01"]
    assert result["filtered"] == result["unknown"] or set(result["filtered"]) <= set(result["unknown"])
    assert result["detail"].startswith("SEP")
    assert result["alerted"] is False  # the <script> in a device pool never ran
    # The hostile device strings (a model and a device pool of EVIL, a pool of DP-<b>HQ</b>) are
    # on the page as text: escaped in the DOM as rendered, never elements of it; and no <script>
    # element was added to the page's own and the driver's.
    dom = done.stdout.split('<pre id="test-result">')[0]
    for hostile in (EVIL, "<b>HQ</b>"):
        assert hostile not in dom
        assert hostile.replace("<", "&lt;").replace(">", "&gt;") in dom
    assert result["scripts"] == driven.read_text().count("<script")
    shot = tmp_path / "report.png"
    _chromium(
        "--window-size=1400,1000",
        f"--screenshot={shot}",
        (tmp_path / "out" / "report.html").as_uri(),
        tmp=tmp_path,
    )
    assert shot.exists() and shot.stat().st_size > 10_000
    keep = Path(__file__).resolve().parents[1] / "out"
    keep.mkdir(exist_ok=True)
    shutil.copy(shot, keep / "report-screenshot.png")


# What only a layout engine can tell, at the width a change board projects (1,280 px): labels not
# clipped (scrollWidth <= clientWidth, and the full text in title), counts and legend items not
# overlapping (bounding boxes), bars coloured by severity, the matrix within its section, no empty
# Check cell, and the drill-down (a dialog) opening and closing by click, Esc and Back without
# moving the page under it.
LAYOUT = """
<script>
window.__errors = [];
window.addEventListener("error", (e) => window.__errors.push(String(e.message)));
const origError = console.error; console.error = (...a) => { window.__errors.push(a.join(" ")); origError(...a); };
window.addEventListener("load", async () => {
  const out = {}, wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const box = (el) => el.getBoundingClientRect();
  const overlap = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
  out.clipped = Array.from(document.querySelectorAll(".bar-label"))
    .filter((el) => el.scrollWidth > el.clientWidth || el.title !== el.textContent).map((el) => el.title);
  out.labels = document.querySelectorAll(".bar-label").length;
  out.collisions = [];
  for (const row of document.querySelectorAll(".bar-row")) {
    const [label, track, n] = row.children, bar = track.firstElementChild;
    // Boxes apart, and the count's text within its own box (text that overflows its box would print over the next).
    if (overlap(box(n), box(bar)) || overlap(box(n), box(label)) || overlap(box(label), box(bar))
        || n.scrollWidth > n.clientWidth) out.collisions.push(label.title);
  }
  out.legendOverlaps = 0; out.legends = 0;
  for (const ul of document.querySelectorAll("ul.legend")) {
    out.legends += 1;
    const items = Array.from(ul.children);
    for (let i = 0; i < items.length; i++) for (let j = i + 1; j < items.length; j++) if (overlap(box(items[i]), box(items[j]))) out.legendOverlaps += 1;
    for (const li of items) if (li.scrollWidth > li.clientWidth + 1) out.legendOverlaps += 1;
  }
  out.colors = {};
  for (const seg of document.querySelectorAll(".seg")) {
    const sev = seg.title.split(" ").pop();
    (out.colors[sev] = out.colors[sev] || []).includes(getComputedStyle(seg).backgroundColor) || out.colors[sev].push(getComputedStyle(seg).backgroundColor);
  }
  const scroll = document.querySelector(".scroll"), section = scroll.closest("section");
  out.matrixOverflow = scroll.scrollWidth - scroll.clientWidth;
  const reasonsTh = document.querySelector('#matrix th[data-key="reasons"]');
  out.reasonsInside = box(reasonsTh).right <= box(section).right + 0.5;
  out.clusterCheck = Array.from(document.querySelectorAll("#cluster-table tbody tr")).map((tr) => tr.children[2].textContent.trim());
  // Drill-down: every phone, from a scrolled page.
  window.scrollTo(0, 300); await wait(20);
  out.scrollBefore = window.scrollY;
  const dialog = document.getElementById("detail");
  out.emptyCheck = []; out.opened = []; out.scrollWhileOpen = []; out.evidenceRows = 0;
  const rows = () => Array.from(document.querySelectorAll("#matrix tbody tr"));
  for (const [i, how] of rows().map((r, i) => [i, ["esc", "button", "back"][i % 3]])) {
    rows()[i].click(); await wait(20);
    out.opened.push(dialog.open);
    const db = box(dialog);
    out.dialogInView = (out.dialogInView ?? true) && db.top >= 0 && db.bottom <= window.innerHeight && db.left >= 0 && db.right <= window.innerWidth;
    out.scrollWhileOpen.push(window.scrollY);
    for (const tr of document.querySelectorAll("#detail-findings tr")) if (!tr.children[0].textContent.trim()) out.emptyCheck.push(rows()[i].dataset.name);
    out.evidenceRows += document.querySelectorAll("#detail-evidence tbody tr").length;
    out.rawFolded = document.getElementById("detail-raw").open === false && document.getElementById("detail-json").textContent.length > 2;
    if (how === "esc") document.dispatchEvent(new KeyboardEvent("keydown", {key: "Escape", bubbles: true}));
    else if (how === "button") document.getElementById("detail-close").click();
    else history.back();
    // Back is asynchronous: wait for the history to settle (the entry the opening added is gone),
    // as a reader's next click would, so each round starts from the page's own entry.
    for (let t = 0; t < 50 && (dialog.open || location.hash); t++) await wait(20);
    out["closedBy_" + how] = (out["closedBy_" + how] ?? true) && !dialog.open;
  }
  out.scrollAfter = window.scrollY;
  out.hashAfter = location.hash;
  out.errors = window.__errors;
  const pre = document.createElement("pre"); pre.id = "test-result"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def _driven(tmp_path: Path, html: str, driver: str) -> dict[str, Any]:
    import json
    import re

    driven = tmp_path / "layout.html"
    driven.write_text(html.replace("</body>", driver + "</body>"))
    done = _chromium("--window-size=1280,900", "--virtual-time-budget=10000", "--dump-dom", driven.as_uri(),
                     tmp=tmp_path)
    m = re.search(r'<pre id="test-result">(.*?)</pre>', done.stdout)
    assert m, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&")
                                           .replace("&lt;", "<").replace("&gt;", ">"))
    return result


def test_layout_and_drill_down_at_1280(tmp_path: Path) -> None:
    from scanner.report import html_report
    from scanner.report.html_report import SEVERITY_COLORS, TrendPoint
    from tests.test_html_page import rich_report

    report = rich_report(tmp_path)
    trend = [TrendPoint(f"2026-11-{day:02d}T02:00:00+00:00", share, total, None, "p")
             for day, share, total in ((1, 0.4, 7), (2, 0.5, 7), (3, 0.5, 4))]
    html = html_report.render(report, trend)
    r = _driven(tmp_path, html, LAYOUT)
    assert r["labels"] and r["clipped"] == [], r["clipped"]
    assert r["collisions"] == []
    assert r["legends"] and r["legendOverlaps"] == 0

    def rgb(hex_: str) -> str:
        return "rgb({}, {}, {})".format(*(int(hex_[i : i + 2], 16) for i in (1, 3, 5)))

    colors = r["colors"]
    assert colors["BLOCKER"] == [rgb(SEVERITY_COLORS["BLOCKER"])]
    assert colors["WARNING"] == [rgb(SEVERITY_COLORS["WARNING"])]
    assert r["matrixOverflow"] == 0 and r["reasonsInside"] is True
    assert r["clusterCheck"] and all(r["clusterCheck"])
    assert r["opened"] and all(r["opened"])
    assert r["emptyCheck"] == [] and r["dialogInView"] is True
    assert r["evidenceRows"] and r["rawFolded"] is True
    assert r["scrollBefore"] == 300
    assert set(r["scrollWhileOpen"]) == {300} and r["scrollAfter"] == 300
    assert r["hashAfter"] == ""  # each close took back the history entry its opening added
    assert r["closedBy_esc"] is True and r["closedBy_button"] is True and r["closedBy_back"] is True
    assert r["errors"] == []
    keep = Path(__file__).resolve().parents[1] / "out"
    keep.mkdir(exist_ok=True)
    page = tmp_path / "rich.html"
    page.write_text(html)
    for width in (1280, 1920):
        shot = tmp_path / f"report-{width}.png"
        _chromium(f"--window-size={width},1400", f"--screenshot={shot}", page.as_uri(), tmp=tmp_path)
        assert shot.exists() and shot.stat().st_size > 10_000
        shutil.copy(shot, keep / f"report-{width}.png")


def test_twenty_thousand_rows_load(tmp_path: Path) -> None:
    """The 20,000-phone page still renders its first page of rows; the load time is printed
    (run with -s), never asserted: it depends on the machine."""
    import copy

    from scanner.report import html_report
    from tests.test_html_page import rich_report

    report = rich_report(tmp_path)
    base = report["devices"]
    report["devices"] = [dict(copy.deepcopy(base[i % len(base)]), name=f"SEP{i:012X}") for i in range(20_000)]
    driver = """<script>window.addEventListener("load", () => { setTimeout(() => {
      const out = {rows: document.querySelectorAll("#matrix tbody tr").length, ms: Math.round(performance.now())};
      const pre = document.createElement("pre"); pre.id = "test-result"; pre.textContent = JSON.stringify(out);
      document.body.appendChild(pre); }, 0); });</script>"""
    r = _driven(tmp_path, html_report.render(report), driver)
    assert r["rows"] == 250
    print(f"20,000-row report.html: first rows shown {r['ms']} ms after navigation (virtual time)")
