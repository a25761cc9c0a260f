"""The reports of ``trustscan verify``: ``verification.json`` (everything), ``devices.jsonl`` (a line
per phone, then the summary), ``matrix.csv`` (a row per phone) and ``report.html`` (one page:
counts, then the phones that did not make it first, each with its reason), and with the CSV
``remediation.csv`` (what to do for each STUCK or UNKNOWN phone).

Device strings come from phones and nodes: the HTML escapes them (Jinja2 autoescape) and the CSV
defuses formula cells as ``matrix.csv`` of ``scan`` does.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
import orjson

from scanner.core.verification import FleetSummary, Migration, PhoneMigration
from scanner.report import remediation
from scanner.report.csv_report import _safe
from scanner.report.files import write_atomic

__all__ = ["FORMATS", "VERIFICATION_VERSION", "build", "write"]

VERIFICATION_VERSION = 1
FORMATS = ("json", "jsonl", "csv", "html")
# Worst first: what the reader must act on comes first on the page.
ORDER = {Migration.STUCK: 0, Migration.UNKNOWN: 1, Migration.NOT_MOVED: 2, Migration.MIGRATED: 3}


def device_dict(r: PhoneMigration) -> dict[str, Any]:
    return {
        "name": r.name, "model": r.model, "ip": r.ip, "device_pool": r.device_pool,
        "outcome": r.outcome.value, "reasons": list(r.reasons),
        "facts": {k: v for k, v in r.facts.items()},
    }


def build(results: Sequence[PhoneMigration], summary: FleetSummary, run: dict[str, Any]) -> dict[str, Any]:
    return {
        "verification_version": VERIFICATION_VERSION,
        "outcome": summary.outcome.value,
        "summary": {"total": summary.total, "counts": dict(summary.counts), "why": summary.why},
        "devices": [device_dict(r) for r in results],
        "run": run,
    }


_PAGE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trustscan verify: {{ doc.outcome }}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;max-width:1200px}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
.MIGRATED{color:#1b6e2d}.STUCK{color:#a11}.UNKNOWN{color:#8a5a00}.NOT_MOVED{color:#555}
.counts span{display:inline-block;margin-right:1.5em}
</style></head><body>
<h1>Post-cutover verification: <span class="{{ 'STUCK' if doc.outcome == 'STUCK' else 'MIGRATED' if doc.outcome == 'DONE' else 'UNKNOWN' }}">{{ doc.outcome }}</span></h1>
<p>{{ doc.summary.why }}</p>
<p class="counts">{% for k, v in doc.summary.counts.items() %}<span class="{{ k }}">{{ k }}: <b>{{ v }}</b></span>{% endfor %}</p>
<p>Run: started {{ doc.run.started }}, finished {{ doc.run.finished }}; evidence {{ doc.run.evidence }}</p>
{% if doc.run.evidence_issues %}<h2>Evidence issues</h2><ul>{% for i in doc.run.evidence_issues %}<li>{{ i }}</li>{% endfor %}</ul>{% endif %}
<table><thead><tr><th>Phone</th><th>Outcome</th><th>Reason</th><th>TFTP</th><th>ITL from</th><th>CTL from</th><th>Pool</th><th>Address</th></tr></thead><tbody>
{% for d in devices %}<tr><td>{{ d.name }}</td><td class="{{ d.outcome }}">{{ d.outcome }}</td><td>{{ d.reasons|join('; ') }}</td>
<td>{{ (d.facts.tftp or [])|join(', ') }}</td><td>{{ d.facts.itl_from or '' }}</td><td>{{ d.facts.ctl_from or '' }}</td><td>{{ d.device_pool or '' }}</td><td>{{ d.ip or '' }}</td></tr>
{% endfor %}</tbody></table></body></html>
""")


def render_html(doc: dict[str, Any]) -> str:
    devices = sorted(doc["devices"], key=lambda d: (ORDER[Migration(d["outcome"])], d["name"]))
    return _PAGE.render(doc=doc, devices=devices)


def render_csv(doc: dict[str, Any]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["device", "model", "ip", "device_pool", "outcome", "reasons", "tftp", "itl_from", "ctl_from"])
    for d in doc["devices"]:
        f = d["facts"]
        row = [d["name"], d["model"] or "", d["ip"] or "", d["device_pool"] or "", d["outcome"], "; ".join(d["reasons"]),
               " ".join(f.get("tftp") or []), f.get("itl_from") or "", f.get("ctl_from") or ""]
        w.writerow([_safe(str(v)) for v in row])
    return buf.getvalue().encode("utf-8")


def write(doc: dict[str, Any], out: Path, formats: Sequence[str] = FORMATS) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if "json" in formats:
        paths["json"] = out / "verification.json"
        write_atomic(paths["json"], orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    if "jsonl" in formats:
        paths["jsonl"] = out / "devices.jsonl"
        lines = [orjson.dumps(d) for d in doc["devices"]]
        lines.append(orjson.dumps({"type": "summary", "outcome": doc["outcome"], **doc["summary"]}))
        write_atomic(paths["jsonl"], b"\n".join(lines) + b"\n")
    if "csv" in formats:
        paths["csv"] = out / "matrix.csv"
        write_atomic(paths["csv"], render_csv(doc))
        paths["remediation"] = remediation.write(remediation.from_verification(doc), out)
    if "html" in formats:
        paths["html"] = out / "report.html"
        write_atomic(paths["html"], render_html(doc).encode("utf-8"))
    return paths
