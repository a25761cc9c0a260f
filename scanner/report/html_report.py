"""``report.html``: one self-contained page for a change board (inline CSS, JS and SVG; it
fetches nothing). Every device-supplied string is escaped: by Jinja2's autoescape in the markup,
by ``textContent`` in the script, and the embedded JSON has ``<``, ``>`` and ``&`` escaped so
no string can close its ``<script>`` element.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import jinja2
import orjson

from scanner.core.policy import CHECKS
from scanner.report.files import write_atomic

COLORS = {"READY": "#1b7f3b", "NOT_READY": "#b3261e", "UNKNOWN": "#b26a00"}
# Rows in a chart before the rest are folded into "other": charts must stay readable.
MAX_BARS = 12


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("scanner", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
    )


def safe_json(value: Any) -> str:
    raw = orjson.dumps(value).decode("utf-8")
    return raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def bar_chart(items: Sequence[tuple[str, int]], color: str = "#3b6fb6") -> str:
    if not items:
        return '<svg width="340" height="30" role="img"><text x="0" y="20" fill="#5f6670">nothing to show</text></svg>'
    top = max(n for _, n in items) or 1
    h = 22 * len(items) + 6
    parts = [f'<svg width="100%" viewBox="0 0 440 {h}" role="img" aria-label="bar chart">']
    for i, (label, n) in enumerate(items):
        y = 4 + i * 22
        w = max(2, int(190 * n / top))
        parts.append(
            f'<text x="0" y="{y + 14}" font-size="12">{escape(label[:26])}</text>'
            f'<rect x="180" y="{y + 2}" width="{w}" height="16" fill="{color}"><title>{escape(label)}: {n}</title></rect>'
            f'<text x="{186 + w}" y="{y + 14}" font-size="12">{n}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def stacked_chart(groups: Mapping[str, Counter[str]]) -> str:
    ordered = sorted(groups.items(), key=lambda kv: -sum(kv[1].values()))
    if len(ordered) > MAX_BARS:
        other: Counter[str] = Counter()
        for _, c in ordered[MAX_BARS - 1 :]:
            other.update(c)
        ordered = [*ordered[: MAX_BARS - 1], ("(other)", other)]
    if not ordered:
        return bar_chart([])
    top = max(sum(c.values()) for _, c in ordered) or 1
    h = 22 * len(ordered) + 26
    parts = [f'<svg width="100%" viewBox="0 0 440 {h}" role="img" aria-label="stacked bar chart">']
    for i, (label, counts) in enumerate(ordered):
        y = 4 + i * 22
        x = 180.0
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{escape(label[:26])}</text>')
        for verdict in ("READY", "NOT_READY", "UNKNOWN"):
            n = counts.get(verdict, 0)
            if not n:
                continue
            w = 190 * n / top
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 2}" width="{max(w, 1):.1f}" height="16" fill="{COLORS[verdict]}">'
                f"<title>{escape(label)}: {n} {verdict}</title></rect>"
            )
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 14}" font-size="12">{sum(counts.values())}</text>')
    ly = h - 8
    for j, verdict in enumerate(("READY", "NOT_READY", "UNKNOWN")):
        parts.append(
            f'<rect x="{180 + j * 80}" y="{ly - 10}" width="10" height="10" fill="{COLORS[verdict]}"/>'
            f'<text x="{194 + j * 80}" y="{ly}" font-size="11">{verdict}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def trend_chart(points: Sequence[tuple[str, float]]) -> str:
    if len(points) < 2:
        return ""
    w, h = 400, 120
    step = (w - 40) / (len(points) - 1)
    coords = [(30 + i * step, 10 + (1 - share) * (h - 30)) for i, (_, share) in enumerate(points)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#3b6fb6"><title>{escape(label)}: {share:.1%}</title></circle>'
        for (x, y), (label, share) in zip(coords, points, strict=True)
    )
    return (
        f'<svg width="100%" viewBox="0 0 {w} {h}" role="img" aria-label="trend">'
        f'<text x="0" y="14" font-size="10">100%</text><text x="0" y="{h - 18}" font-size="10">0%</text>'
        f'<polyline points="{path}" fill="none" stroke="#3b6fb6" stroke-width="2"/>{dots}</svg>'
    )


def _when(iso: str) -> str:
    """``2026-11-27T17:41:36.501314+00:00`` as a person reads it: ``2026-11-27 17:41 UTC``."""
    return iso[:16].replace("T", " ") + " UTC" if len(iso) >= 16 and iso.endswith("+00:00") else iso


def render(report: dict[str, Any], trend: Sequence[tuple[str, float]] = ()) -> str:
    devices = report["devices"]
    reasons: Counter[str] = Counter(code for d in devices for code in d["reasons"])
    by: dict[str, dict[str, Counter[str]]] = {"model": defaultdict(Counter), "pool": defaultdict(Counter),
                                               "node": defaultdict(Counter)}
    for d in devices:
        by["model"][d["model"] or "(unknown)"][d["readiness"]] += 1
        by["pool"][d["device_pool"] or "(none)"][d["readiness"]] += 1
        by["node"][(d.get("facts") or {}).get("held_itl_node") or "(unknown)"][d["readiness"]] += 1
    charts = {
        "reasons": bar_chart(reasons.most_common(MAX_BARS), "#b3261e"),
        "model": stacked_chart(by["model"]),
        "pool": stacked_chart(by["pool"]),
        "node": stacked_chart(by["node"]),
        "trend": trend_chart(trend),
    }
    cluster_findings = [(name, f) for name, c in report["clusters"].items() for f in c["findings"]]
    run = report.get("run", {})
    meta: list[tuple[str, Any]] = [("tool", f"trustscan {report['tool']['version']} (kernel {report['tool']['kernel']})")]
    # Lists of sentences (the inventory's refused rows) stay lists: the template shows one per line.
    meta += [
        (k, v if isinstance(v, str | int | float) or k == "inventory_issues" else orjson.dumps(v).decode())
        for k, v in run.items()
    ]
    meta += [("policy", orjson.dumps(report["policy"]).decode())]
    slim = [
        {k: d.get(k) for k in ("name", "model", "ip", "device_pool", "readiness", "checks", "reasons", "codes",
                               "findings", "facts")}
        for d in devices
    ]
    return _env().get_template("report.html.j2").render(
        verdict=report["verdict"],
        why=report["summary"]["why"],
        summary=report["summary"],
        generated=_when(run.get("finished") or run.get("started") or ""),
        charts=charts,
        cluster_findings=cluster_findings,
        checks=CHECKS,
        meta=meta,
        data_json=safe_json({"checks": list(CHECKS), "devices": slim}),
    )


def write(report: dict[str, Any], out: Path, trend: Sequence[tuple[str, float]] = ()) -> Path:
    path = out / "report.html"
    write_atomic(path, render(report, trend).encode("utf-8"))
    return path
