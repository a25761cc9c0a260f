"""``report.html``: one self-contained page for a change board (inline CSS, JS and SVG; it
fetches nothing). Every device-supplied string is escaped: by Jinja2's autoescape in the markup,
by ``escape`` in the charts built here, by ``textContent`` in the script, and the embedded JSON
has ``<``, ``>`` and ``&`` escaped so no string can close its ``<script>`` element.

The charts are HTML rows (label, bar, count in three grid columns), not SVG text: a label wraps
inside its own column and keeps its full text in ``title``, and the count has a column of its
own, so neither can be clipped or overprinted. Colours follow severity (reasons) or readiness
(the stacked charts), each chart with a legend of its own.

What report.json does not say and this page derives (model.py could carry it later):
- the check of a finding whose evidence has no ``check`` (the cluster findings repeated on a
  phone, e.g. C8): from ``CODE_CHECKS``, the table of docs/readiness.md;
- which phones a cluster finding affects and at which severity: the phones with a finding of the
  same code (narrowed to those naming the cluster finding's node/address when any do);
- the trend's run sizes and profiles: from the history database the report names.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import jinja2
import orjson

from scanner.core.findings import Code
from scanner.core.policy import CHECKS
from scanner.report.files import write_atomic

COLORS = {"READY": "#1b7f3b", "NOT_READY": "#b3261e", "UNKNOWN": "#b26a00"}
SEVERITY_COLORS = {"BLOCKER": "#b3261e", "WARNING": "#b26a00", "INFO": "#5f6670"}
SEVERITY_ORDER = ("BLOCKER", "WARNING", "INFO")
# Rows in a chart before the rest are folded into "other": charts must stay readable.
MAX_BARS = 12
# Phones named per cluster finding before "+N more" (the filter button shows them all).
MAX_NAMED = 6
# Runs in the trend chart (the history keeps more).
TREND_RUNS = 30

# The check each code belongs to, from the FAIL and UNKNOWN columns of docs/readiness.md (a test
# compares the two). A code of several checks lists them all; EVIDENCE_MISSING belongs to any
# check and is left to the finding's own evidence.
CODE_CHECKS: dict[str, tuple[str, ...]] = {  # keyed by Code members (a Code is its str)
    Code.SRC_ITL_INVALID: ("C1",), Code.SRC_CTL_INVALID: ("C1",), Code.SRC_ITL_MISSING: ("C1",),
    Code.FETCH_FAILED: ("C1", "C6"),
    Code.PHONE_TRUST_STALE: ("C2",), Code.PHONE_TRUST_UPDATE_FAILED: ("C2",), Code.PHONE_EVIDENCE_MISSING: ("C2",),
    Code.SRC_MIXED_MODE_ROLLBACK: ("C3",),
    Code.TVS_NOT_CONFIGURED: ("C4",), Code.TVS_CERT_NOT_IN_ITL: ("C4",), Code.TVS_UNREACHABLE: ("C4",),
    Code.DEST_SIGNER_UNTRUSTED: ("C5",), Code.ITLRECOVERY_NOT_IMPORTED: ("C5",), Code.DEST_SIGNER_NOT_PHONE_SAST: ("C5",),
    Code.SRC_CTL_WITHOUT_DEST_CTL: ("C5",), Code.TRUST_STORE_MISSING: ("C5",),
    Code.DEST_NOT_PROVISIONED: ("C6",), Code.DEST_CONFIG_SIGNER_UNKNOWN: ("C6",), Code.DEST_ITL_INVALID: ("C6",),
    Code.DEST_CTL_INVALID: ("C6",),
    Code.ITL_TOO_LARGE: ("C7",), Code.DIGEST_UNSUPPORTED: ("C7",), Code.CERT_EXPIRED: ("C7",),
    Code.NO_ROLLBACK_PATH: ("C8",),
}

# Why a check's cluster-level WARNING can be a phone's BLOCKER (docs/readiness.md, the check's row).
CHECK_WHY = {
    "C4": "a phone needs a working TVS when some destination signer is not already SAST-trusted by that "
          "phone: there the TVS problem is a BLOCKER (C4 FAIL); on a phone that already trusts every "
          "destination signer it stays a WARNING",
    "C5": "a destination signer the phone cannot trust stops that phone; a phone that already trusts it is not held",
    "C6": "the phone is held only when the destination cannot provision it",
    "C8": "advisory by default: no way back for the phones it names",
}
GENERIC_WHY = ("the cluster finding is repeated on each phone it affects, at the severity it has for that phone "
               "(docs/readiness.md)")


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One run of the trend: when, READY share, and (when the history has them) size and profile."""

    when: str
    share: float
    total: int | None = None
    ready: int | None = None
    profile: str | None = None


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("scanner", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
    )


def safe_json(value: Any) -> str:
    raw = orjson.dumps(value).decode("utf-8")
    return raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _label(text: str) -> str:
    """Escaped, with a break opportunity after each ``_`` so a code wraps at its words."""
    return escape(text).replace("_", "_<wbr>")


def _legend(items: Iterable[tuple[str, str]]) -> str:
    return '<ul class="legend">' + "".join(
        f'<li><span class="swatch" style="background:{color}"></span>{escape(name)}</li>' for name, color in items
    ) + "</ul>"


def _rows(rows: Sequence[tuple[str, int, Sequence[tuple[str, int, str]]]], top: int) -> str:
    """Chart rows: (label, total, [(segment name, count, colour)]), bars scaled to ``top``."""
    parts = ['<div class="bars" role="list">']
    for label, total, segments in rows:
        segs = "".join(
            f'<span class="seg" style="width:{100 * n / total:.2f}%;background:{color}" '
            f'title="{escape(label)}: {n} {escape(name)}"></span>'
            for name, n, color in segments if n
        ) if total else ""
        parts.append(
            f'<div class="bar-row" role="listitem"><span class="bar-label" title="{escape(label)}">{_label(label)}</span>'
            f'<span class="bar-track"><span class="bar" style="width:{max(1.0, 100 * total / top):.2f}%">{segs}</span></span>'
            f'<span class="bar-n">{total}</span></div>'
        )
    parts.append("</div>")
    return "".join(parts)


def bar_chart(items: Sequence[tuple[str, int]], color: str = "#3b6fb6") -> str:
    """One colour per chart (kept for callers outside this page)."""
    if not items:
        return '<p class="empty">nothing to show</p>'
    top = max(n for _, n in items) or 1
    return _rows([(label, n, [("", n, color)]) for label, n in items], top)


def severity_chart(items: Sequence[tuple[str, Counter[str]]]) -> str:
    """Reasons, each bar split by the severity the reason has on its phones."""
    if not items:
        return '<p class="empty">nothing to show</p>'
    top = max(sum(c.values()) for _, c in items) or 1
    rows = [(label, sum(c.values()), [(s, c.get(s, 0), SEVERITY_COLORS[s]) for s in SEVERITY_ORDER])
            for label, c in items]
    return _rows(rows, top) + _legend((s, SEVERITY_COLORS[s]) for s in SEVERITY_ORDER)


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
    rows = [(label, sum(c.values()), [(v, c.get(v, 0), COLORS[v]) for v in COLORS]) for label, c in ordered]
    return _rows(rows, top) + _legend(COLORS.items())


def _point(p: TrendPoint | tuple[str, float]) -> TrendPoint:
    return p if isinstance(p, TrendPoint) else TrendPoint(p[0], p[1])


def trend_chart(points: Sequence[TrendPoint | tuple[str, float]], *, total: int | None = None,
                profile: str | None = None) -> str:
    """READY share per run with its date and value; each run's size under its date. A run whose
    size or profile differs from this run's (``total``, ``profile``) is drawn hollow and marked
    in the table beside the chart, so runs of another fleet are never read as a change of this one."""
    pts = [_point(p) for p in points]
    if len(pts) < 2:
        return ""
    w, h, left, bottom = 380, 170, 34, 42
    step = (w - left - 44) / (len(pts) - 1)
    coords = [(left + 20 + i * step, 16 + (1 - p.share) * (h - bottom - 16)) for i, p in enumerate(pts)]

    def other(p: TrendPoint) -> list[str]:
        why = []
        if total is not None and p.total is not None and p.total != total:
            why.append(f"{p.total} phones, not {total}")
        if profile and p.profile and p.profile != profile:
            why.append("another profile")
        return why

    parts = [f'<svg class="trend" width="100%" viewBox="0 0 {w} {h}" role="img" aria-label="READY share per run">']
    for share in (0.0, 0.5, 1.0):
        y = 16 + (1 - share) * (h - bottom - 16)
        parts.append(f'<line x1="{left}" x2="{w - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dfe3e8"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{share:.0%}</text>')
    parts.append('<polyline points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
                 + '" fill="none" stroke="#3b6fb6" stroke-width="2"/>')
    every = max(1, len(pts) // 5)  # at most about five date labels: they must not run together
    for i, ((x, y), p) in enumerate(zip(coords, pts, strict=True)):
        odd = other(p)
        fill = "#fff" if odd else "#3b6fb6"
        size = f"{p.total} phones" if p.total is not None else "size not recorded"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{fill}" stroke="#3b6fb6" stroke-width="2">'
                     f'<title>{escape(_when(p.when))}: {p.share:.1%} READY, {size}'
                     f'{escape("; " + ", ".join(odd)) if odd else ""}</title></circle>')
        if i % every == 0 or i == len(pts) - 1:
            parts.append(f'<text x="{x:.1f}" y="{max(12.0, y - 8):.1f}" font-size="11" text-anchor="middle">{p.share:.0%}</text>'
                         f'<text x="{x:.1f}" y="{h - bottom + 14}" font-size="9" text-anchor="middle">{escape(_when(p.when)[5:10])}</text>'
                         f'<text x="{x:.1f}" y="{h - bottom + 26}" font-size="9" text-anchor="middle" fill="#5f6670">'
                         f'{"n=" + str(p.total) if p.total is not None else ""}{" *" if odd else ""}</text>')
    parts.append("</svg>")
    rows = "".join(
        f'<tr class="{"other-run" if other(p) else ""}"><td>{escape(_when(p.when))}</td><td>{p.share:.1%}</td>'
        f'<td>{p.total if p.total is not None else "not recorded"}</td><td>{escape("; ".join(other(p)) or "")}</td></tr>'
        for p in reversed(pts)
    )
    note = ("hollow points and * mark runs of another size or profile: not comparable with this run"
            if any(other(p) for p in pts) else "every run shown has this run's size and profile")
    return ("".join(parts) + f'<p class="note">{note}</p>'
            '<details class="trend-table"><summary>Runs (newest first)</summary><table><thead><tr><th>Run</th>'
            f'<th>READY</th><th>Phones</th><th>Differs</th></tr></thead><tbody>{rows}</tbody></table></details>')


def _when(iso: str) -> str:
    """``2026-11-27T17:41:36.501314+00:00`` as a person reads it: ``2026-11-27 17:41 UTC``."""
    return iso[:16].replace("T", " ") + " UTC" if len(iso) >= 16 and iso.endswith("+00:00") else iso


def finding_check(f: Mapping[str, Any]) -> str:
    """The check of a finding: its evidence's, else the code's (docs/readiness.md), else "cluster"."""
    ev = f.get("evidence") or {}
    check = ev.get("check") if isinstance(ev, Mapping) else None
    if check:
        return str(check)
    return "/".join(CODE_CHECKS.get(str(f.get("code")), ())) or "cluster"


def _worst(severities: Iterable[str]) -> str:
    s = set(severities)
    return next((x for x in SEVERITY_ORDER if x in s), "WARNING")


def _code_severity(code: str) -> str:
    """A reason with no finding of its code on the phone: the code's one severity, else WARNING."""
    known = Code.__members__.get(code)  # a code's value is its name (scanner/core/findings.py)
    return _worst(str(s) for s in known.severities) if known else "WARNING"


def reason_severities(devices: Sequence[Mapping[str, Any]]) -> list[tuple[str, Counter[str]]]:
    """Each reason with the number of phones per severity it has there (the phone's worst finding of that code)."""
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for d in devices:
        sev: dict[str, set[str]] = defaultdict(set)
        for f in d.get("findings") or ():
            sev[f["code"]].add(f["severity"])
        for code in d["reasons"]:
            per[code][_worst(sev[code]) if sev.get(code) else _code_severity(code)] += 1
    return sorted(per.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:MAX_BARS]


def _mentions(f: Mapping[str, Any], needles: Sequence[str]) -> bool:
    text = f.get("message", "") + orjson.dumps(f.get("evidence") or {}).decode()
    return any(n in text for n in needles)


def cluster_effects(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each cluster finding with the phones it holds: those with a finding of the same code,
    narrowed to those naming its node or address when any do; counted per severity there.
    One pass over the phones, keeping only (phone, severity) pairs: the rows are read one at a
    time (scanner/report/rows.py) and their findings are not held."""
    targets: list[tuple[str, Mapping[str, Any], list[str]]] = []
    by_code: dict[str, list[int]] = defaultdict(list)
    for cluster, c in report["clusters"].items():
        for f in c["findings"]:
            ev = f.get("evidence") or {}
            by_code[f["code"]].append(len(targets))
            targets.append((cluster, f, [str(ev[k]) for k in ("address", "tvs", "node") if ev.get(k)]))
    # Per cluster finding, ordered sets of (phone, severity): of every phone with its code, and
    # of those naming its node or address.
    hits: list[dict[tuple[str, str], None]] = [{} for _ in targets]
    named: list[dict[tuple[str, str], None]] = [{} for _ in targets]
    for d in report["devices"]:
        for pf in d.get("findings") or ():
            for i in by_code.get(pf["code"], ()):
                key = (d["name"], pf["severity"])
                hits[i][key] = None
                needles = targets[i][2]
                if needles and _mentions(pf, needles):
                    named[i][key] = None
    out: list[dict[str, Any]] = []
    for (cluster, f, _), every, naming in zip(targets, hits, named, strict=True):
        per: dict[str, list[str]] = defaultdict(list)
        for name, severity in naming or every:
            per[severity].append(name)
        check = finding_check(f)
        out.append({
            "cluster": cluster, "finding": f, "check": check,
            "phones": [(s, len(per[s]), per[s][:MAX_NAMED], max(0, len(per[s]) - MAX_NAMED))
                       for s in SEVERITY_ORDER if per.get(s)],
            "why": CHECK_WHY.get(check.split("/")[0], GENERIC_WHY),
            "meaning": _meaning(f["code"]),
        })
    # Blockers first: the reader looks for what stops the migration.
    out.sort(key=lambda e: (0 if any(p[0] == "BLOCKER" for p in e["phones"]) or e["finding"]["severity"] == "BLOCKER"
                            else 1, -sum(p[1] for p in e["phones"])))
    return out


def _meaning(code: str) -> str:
    known = Code.__members__.get(code)
    return known.meaning if known else ""


def _meta_value(key: str, v: Any) -> Any:
    """Run metadata as a person reads it: times as dates, one level of mapping as rows."""
    if isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00", v):
        return _when(v) if key not in ("started", "finished") else v[:19].replace("T", " ") + " UTC"
    if isinstance(v, Mapping):
        return [(str(k), x if isinstance(x, str | int | float) or x is None else orjson.dumps(x).decode())
                for k, x in v.items()]
    if isinstance(v, str | int | float) or v is None:
        return v
    return orjson.dumps(v).decode()


def _span(started: Any, finished: Any) -> str:
    import datetime as dt

    try:
        a, b = dt.datetime.fromisoformat(str(started)), dt.datetime.fromisoformat(str(finished))
    except ValueError:
        return ""
    secs = (b - a).total_seconds()
    took = f"{secs:.1f} s" if secs < 120 else f"{secs / 60:.1f} min"
    return f"{_when(str(started))} → {_when(str(finished))} ({took})"


def run_meta(report: Mapping[str, Any]) -> list[tuple[str, Any]]:
    run = report.get("run", {})
    tool = report["tool"]
    meta: list[tuple[str, Any]] = [("tool", f"trustscan {tool['version']} (kernel {tool['kernel']})")]
    # Lists of sentences (the inventory's refused rows) stay lists: the template shows one per line.
    meta += [(k, v if k == "inventory_issues" else _meta_value(k, v)) for k, v in run.items()]
    span = _span(run.get("started"), run.get("finished"))
    if span:  # ``started`` is the run's start: collection and discovery when this run collected
        meta.insert(1, ("whole run (started → finished)", span))
    if "inventory_issues" not in run:
        meta.append(("inventory_issues", []))
    meta.append(("policy", _meta_value("policy", report["policy"])))
    return meta


# Where the page's data goes in the rendered template: the rows are written there one at a time.
_DATA_MARK = "@@trustscan-report-data-" + secrets.token_hex(8) + "@@"
_SLIM = ("name", "model", "ip", "device_pool", "readiness", "checks", "reasons", "codes", "findings", "facts")


def _slim(d: Mapping[str, Any]) -> dict[str, Any]:
    s = {k: d.get(k) for k in _SLIM}
    # The check of each finding, derived where the evidence has none.
    s["findings"] = [dict(f, check=finding_check(f)) for f in s["findings"] or ()]
    return s


def pieces(report: dict[str, Any], trend: Sequence[TrendPoint | tuple[str, float]] = (),
           batch: int = 256) -> Iterator[str]:
    """The page in pieces: the embedded data (every phone's row) is written ``batch`` phones at a
    time, the same text as ``safe_json`` of the whole (tested), so the page is never held whole."""
    devices = report["devices"]
    by: dict[str, dict[str, Counter[str]]] = {"model": defaultdict(Counter), "pool": defaultdict(Counter),
                                               "node": defaultdict(Counter)}
    for d in devices:
        by["model"][d["model"] or "(unknown)"][d["readiness"]] += 1
        by["pool"][d["device_pool"] or "(none)"][d["readiness"]] += 1
        by["node"][(d.get("facts") or {}).get("held_itl_node") or "(unknown)"][d["readiness"]] += 1
    run = report.get("run", {})
    charts = {
        "reasons": severity_chart(reason_severities(devices)),
        "model": stacked_chart(by["model"]),
        "pool": stacked_chart(by["pool"]),
        "node": stacked_chart(by["node"]),
        "trend": trend_chart(trend, total=len(devices), profile=run.get("profile_sha256")),
    }
    page = _env().get_template("report.html.j2").render(
        verdict=report["verdict"],
        why=report["summary"]["why"],
        summary=report["summary"],
        generated=_when(run.get("finished") or run.get("started") or ""),
        charts=charts,
        cluster_effects=cluster_effects(report),
        checks=CHECKS,
        meta=run_meta(report),
        inventory_issues=run.get("inventory_issues") or [],
        fixes=fix_list(report),
        data_json=_DATA_MARK,
    )
    before, after = page.split(_DATA_MARK)  # exactly once: the template's one data element
    yield before + safe_json({"checks": list(CHECKS)})[:-1] + ',"devices":['
    part: list[str] = []
    for n, d in enumerate(devices):
        part.append(("," if n else "") + safe_json(_slim(d)))
        if len(part) == batch:
            yield "".join(part)
            part = []
    yield "".join(part) + "]}" + after


def render(report: dict[str, Any], trend: Sequence[TrendPoint | tuple[str, float]] = ()) -> str:
    return "".join(pieces(report, trend))


def fix_list(report: Mapping[str, Any]) -> dict[str, Any]:
    """The fix-it list (scanner/report/remediation.py) as the page shows it: every cluster action,
    and the phones' actions grouped by code (remediation.csv has every row)."""
    from scanner.report import remediation

    rows = remediation.from_report(report)
    by_code: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["scope"] == "phone":
            by_code[str(r["code"])].append(r)
    phone_groups = sorted(
        ({"code": code, "count": len(rs), "action": rs[0]["action"], "phones": [r["target"] for r in rs[:MAX_NAMED]]}
         for code, rs in by_code.items()),
        key=lambda g: -int(g["count"]),
    )
    return {"cluster": [r for r in rows if r["scope"] == "cluster"], "phones": phone_groups}


def history_trend(report: Mapping[str, Any], limit: int = TREND_RUNS) -> list[TrendPoint]:
    """The trend with each run's size and profile, from the history database the report names;
    empty when it names none or it cannot be read (the page then has what it was given)."""
    import sqlite3

    path = ((report.get("run") or {}).get("history") or {}).get("path")
    if not path or not Path(path).is_file():
        return []
    try:
        # Read-only: the page never changes the history (store.history owns its schema and repairs).
        with sqlite3.connect(f"file:{Path(path).as_posix()}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT started, finished, total, ready, profile_sha256 FROM runs"
                              " ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    except sqlite3.Error:
        return []
    return [TrendPoint(finished or started, ready / total if total else 0.0, total, ready, profile)
            for started, finished, total, ready, profile in reversed(rows)]


def write(report: dict[str, Any], out: Path, trend: Sequence[TrendPoint | tuple[str, float]] = ()) -> Path:
    path = out / "report.html"
    rich = history_trend(report) if trend else []
    write_atomic(path, (p.encode("utf-8") for p in pieces(report, rich if len(rich) == len(trend) else trend)))
    return path
