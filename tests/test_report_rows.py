"""The fleet's rows held as JSON (scanner/report/rows.py) and the writers that write them one at
a time: the same bytes as writing the whole report at once, rows read back in report order, and
no devices.jsonl left behind when it was not asked for."""

from __future__ import annotations

import copy
import pickle
import re
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core.policy import CHECKS
from scanner.report import csv_report, html_report, json_report
from scanner.report.jsonl_report import DeviceStream
from scanner.report.rows import DeviceRows
from tests.test_html_page import rich_report
from tests.test_scan_reports import run_analysis

ROWS = [{"name": f"SEP{i:012X}", "readiness": "READY", "findings": [{"code": "X", "message": "a\nb <c>"}]}
        for i in range(5)]


@pytest.mark.parametrize("write", [True, False], ids=["devices.jsonl", "memory"])
def test_rows_read_back_in_report_order(tmp_path: Path, write: bool) -> None:
    stream = DeviceStream(tmp_path, write=write)
    numbers = [stream.device(r) for r in ROWS]
    assert numbers == [0, 1, 2, 3, 4]
    stream.summary({"verdict": "GO"})
    stream.close()
    assert (tmp_path / "devices.jsonl").exists() == write
    order = [3, 0, 4, 1, 2]  # decided in one order, reported in another
    rows = stream.rows(order)
    assert isinstance(rows, DeviceRows)
    expected = [ROWS[n] for n in order]
    assert len(rows) == 5 and list(rows) == expected and rows == expected
    assert rows[0] == ROWS[3] and rows[-1] == ROWS[2] and rows[1:3] == [ROWS[0], ROWS[4]]
    rows[0]["readiness"] = "NOT_READY"  # a decoded copy: the held row does not change
    assert rows[0]["readiness"] == "READY"
    copied = copy.deepcopy({"devices": rows})["devices"]
    assert isinstance(copied, list) and copied == expected
    # What the analysis process sends the scan's process: the rows, not a copy of them as dicts.
    again = pickle.loads(pickle.dumps(rows))
    assert list(again) == expected
    if write:
        assert len(pickle.dumps(rows)) < 600
    assert rows != expected[:4] and rows != [*expected[:4], ROWS[0]]


def test_rows_need_a_file_and_offsets_or_the_lines() -> None:
    with pytest.raises(ValueError, match="a path with its offsets, or the held lines"):
        DeviceRows([0])
    with pytest.raises(ValueError):
        DeviceRows([0], path=Path("devices.jsonl"))


def test_a_damaged_row_names_the_file_and_offset(tmp_path: Path) -> None:
    stream = DeviceStream(tmp_path)
    for r in ROWS[:2]:
        stream.device(r)
    stream.close()
    data = bytearray((tmp_path / "devices.jsonl").read_bytes())
    second = data.index(b"\n") + 1
    data[second] = ord("!")
    (tmp_path / "devices.jsonl").write_bytes(bytes(data))
    rows = stream.rows([0, 1])
    assert rows[0] == ROWS[0]
    with pytest.raises(ValueError, match=rf"devices\.jsonl, offset {second}: a report row that is not JSON"):
        list(rows)


def _as_rows(report: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The report with its rows in a devices.jsonl, in reverse decision order."""
    stream = DeviceStream(tmp_path / "rows")
    numbers = [stream.device(d) for d in reversed(report["devices"])]
    stream.close()
    return {**report, "devices": stream.rows(list(reversed(numbers)))}


def test_report_json_in_pieces_is_the_whole_document(tmp_path: Path) -> None:
    report = rich_report(tmp_path)
    whole = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    assert json_report.render(report) == whole
    held = _as_rows(report, tmp_path)
    assert json_report.render(held) == whole
    out = tmp_path / "written"
    out.mkdir()
    assert json_report.write(held, out).read_bytes() == whole
    empty = {**report, "devices": []}
    assert json_report.render(empty) == orjson.dumps(empty, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=6), _json, max_size=4), max_size=4), st.dictionaries(
    st.sampled_from(["run", "summary", "verdict"]), _json, max_size=3))
def test_report_json_pieces_for_any_rows(rows: list[dict[str, Any]], head: dict[str, Any]) -> None:
    report = {**head, "devices": rows}
    assert json_report.render(report) == orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def test_matrix_csv_in_pieces(tmp_path: Path) -> None:
    report = rich_report(tmp_path)
    whole = b"".join(csv_report.pieces(report, batch=10**6))
    assert b"".join(csv_report.pieces(report, batch=1)) == whole
    assert b"".join(csv_report.pieces(_as_rows(report, tmp_path), batch=2)) == whole
    assert whole.count(b"\n") == len(report["devices"]) + 1


def _old_cluster_effects(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The page's cluster effects as computed before the rows were read one at a time (every
    phone finding held by code): the oracle for the one-pass version."""
    by_code: dict[str, list[tuple[str, Mapping[str, Any]]]] = defaultdict(list)
    for d in report["devices"]:
        for f in d.get("findings") or ():
            by_code[f["code"]].append((d["name"], f))
    out = []
    for cluster, c in report["clusters"].items():
        for f in c["findings"]:
            ev = f.get("evidence") or {}
            needles = [str(ev[k]) for k in ("address", "tvs", "node") if ev.get(k)]
            hits = by_code.get(f["code"], [])
            named = [h for h in hits if needles and html_report._mentions(h[1], needles)]
            hits = named or hits
            per: dict[str, list[str]] = defaultdict(list)
            seen: set[tuple[str, str]] = set()
            for name, pf in hits:
                if (name, pf["severity"]) not in seen:
                    seen.add((name, pf["severity"]))
                    per[pf["severity"]].append(name)
            out.append((cluster, f["code"], [(s, per[s]) for s in html_report.SEVERITY_ORDER if per.get(s)]))
    return out


def test_cluster_effects_one_pass_equals_the_held_findings(tmp_path: Path) -> None:
    report = rich_report(tmp_path)
    # More phones naming the cluster finding's TVS, one twice, and one of the same code naming none.
    base = report["devices"][-1]
    for i in range(9):
        d = copy.deepcopy(base)
        d["name"] = f"SEPEXTRA{i:07d}"
        if i == 3:  # of the same code, naming no TVS: left out while others name it
            d["findings"][0] = {**d["findings"][0], "message": "no TVS answered", "evidence": {"check": "C4"}}
        if i == 5:
            d["findings"].append(dict(d["findings"][0]))
        report["devices"].append(d)
    effects = html_report.cluster_effects(report)
    got = sorted((e["cluster"], e["finding"]["code"], [(s, n) for s, _, n, _ in e["phones"]]) for e in effects)
    want = sorted((c, code, [(s, names[:html_report.MAX_NAMED]) for s, names in per])
                  for c, code, per in _old_cluster_effects(report))
    assert got == want and any(per for _, _, per in got)
    counts = {(e["cluster"], e["finding"]["code"]): [(s, n, more) for s, n, _, more in e["phones"]] for e in effects}
    assert counts == {(c, code): [(s, len(names), max(0, len(names) - html_report.MAX_NAMED)) for s, names in per]
                      for c, code, per in _old_cluster_effects(report)}


def test_report_html_in_pieces_embeds_every_row(tmp_path: Path) -> None:
    report = rich_report(tmp_path)
    page = html_report.render(report)
    assert "@@trustscan-report-data" not in page
    data = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', page, re.S)
    assert data is not None
    slim = [html_report._slim(d) for d in report["devices"]]
    # The embedded text is what one safe_json of the whole data would be.
    assert data.group(1) == html_report.safe_json({"checks": list(CHECKS), "devices": slim})
    assert "".join(html_report.pieces(_as_rows(report, tmp_path), batch=1)) == page
    assert "".join(html_report.pieces({**report, "devices": []})).count('"devices":[]}') == 1


def test_no_devices_jsonl_unless_asked_for(tmp_path: Path) -> None:
    with_jsonl = run_analysis(tmp_path / "a").report
    outcome = run_analysis(tmp_path / "b", formats=("json", "csv", "html"))
    assert not (tmp_path / "b" / "out" / "devices.jsonl").exists()
    assert "jsonl" not in outcome.paths
    assert outcome.report["devices"] == list(with_jsonl["devices"])
    written = orjson.loads((tmp_path / "b" / "out" / "report.json").read_bytes())
    assert written["devices"] == list(outcome.report["devices"])
