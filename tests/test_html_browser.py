"""report.html in a real browser (headless Chromium): it renders, filters, drills down, and the
hostile device strings stay text. Skips with a reason when Chromium is not installed
(`.ci/run` installs Debian's chromium)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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
