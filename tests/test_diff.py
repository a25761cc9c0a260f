"""``trustscan diff`` for pipelines: exit 1 when something got worse, a summary on stderr and as
the last ``--json`` record, and a word when the two runs used other profiles, policies, inventories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from scanner.cli.main import main
from scanner.core.errors import ParseError
from scanner.report.diff import Change, diff, rows_from_report
from scanner.store.history import History

POLICY = {"required_checks": ["C1"], "expiry_window_days": 30, "cutover": None, "go_threshold": 1.0}


def report(verdict: str, phones: dict[str, str], *, profile: str = "p" * 64, inventory: str | None = "i" * 64,
           policy: dict[str, Any] | None = None, version: Any = 1) -> dict[str, Any]:
    run: dict[str, Any] = {"profile_sha256": profile}
    if inventory is not None:
        run["inventory_sha256"] = inventory
    return {
        "schema_version": version, "verdict": verdict, "run": run, "policy": policy or POLICY,
        "summary": {},
        "devices": [{"name": n, "readiness": r, "reasons": [] if r == "READY" else [f"R_{r}"]}
                    for n, r in phones.items()],
    }


def write(path: Path, doc: dict[str, Any]) -> str:
    path.write_bytes(orjson.dumps(doc))
    return str(path)


def run_diff(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["diff", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_kinds() -> None:
    assert Change("a", "READY", "NOT_READY", [], ["X"]).kind == "broken"
    assert Change("a", "READY", "UNKNOWN", [], ["X"]).kind == "broken"
    assert Change("a", "UNKNOWN", "NOT_READY", ["Y"], ["X"]).kind == "worse"
    assert Change("a", "NOT_READY", "UNKNOWN", ["X"], ["Y"]).kind == "better"
    assert Change("a", "NOT_READY", "READY", ["X"], []).kind == "fixed"
    assert Change("a", "NOT_READY", "NOT_READY", ["X"], ["Y"]).kind == "changed"
    assert Change("a", None, "READY", [], []).kind == "added"
    assert Change("a", "READY", None, [], []).kind == "removed"


def test_nothing_worse_exits_0_with_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write(tmp_path / "old.json", report("NO_GO", {"SEPA": "NOT_READY", "SEPB": "READY"}))
    new = write(tmp_path / "new.json", report("GO", {"SEPA": "READY", "SEPB": "READY", "SEPC": "READY"}))
    code, out, err = run_diff(capsys, old, new)
    assert code == 0
    assert "fixed" in out and "SEPA" in out and "added" in out
    assert "Verdict: NO_GO -> GO" in err
    assert "READY 1 -> 3" in err and "2 -> 3 total" in err
    assert "1 fixed" in err and "1 added" in err and "0 broken" in err
    assert "Result: nothing worse" in err
    assert "Note:" not in err


def test_a_broken_phone_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write(tmp_path / "old.json", report("NO_GO", {"SEPA": "READY", "SEPB": "NOT_READY"}))
    new = write(tmp_path / "new.json", report("NO_GO", {"SEPA": "NOT_READY", "SEPB": "NOT_READY"}))
    code, out, err = run_diff(capsys, old, new)
    assert code == 1
    assert out.startswith("broken") and "1 broken" in err and "Result: WORSE" in err


def test_a_worse_fleet_verdict_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # No phone in both runs got worse, but a removed READY phone and an added UNKNOWN one turn GO
    # into INCOMPLETE: the fleet got worse.
    old = write(tmp_path / "old.json", report("GO", {"SEPA": "READY"}))
    new = write(tmp_path / "new.json", report("INCOMPLETE", {"SEPB": "UNKNOWN"}))
    code, _, err = run_diff(capsys, old, new)
    assert code == 1
    assert "Verdict: GO -> INCOMPLETE  (worse)" in err


def test_json_is_the_changed_phones_then_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write(tmp_path / "old.json", report("NO_GO", {"SEPA": "READY", "SEPB": "UNKNOWN", "SEPD": "READY"}))
    new = write(tmp_path / "new.json", report("NO_GO", {"SEPA": "NOT_READY", "SEPB": "NOT_READY", "SEPD": "READY",
                                                         "SEPE": "READY"}))
    code, out, err = run_diff(capsys, "--json", old, new)
    assert code == 1
    records = [orjson.loads(line) for line in out.splitlines()]
    for r in records:
        jsonschema.validate(r, diff_schema())
    assert [r["type"] for r in records] == ["phone", "phone", "phone", "summary"]
    assert {r["name"]: r["change"] for r in records[:-1]} == {"SEPA": "broken", "SEPB": "worse", "SEPE": "added"}
    s = records[-1]
    assert s["verdict"] == {"old": "NO_GO", "new": "NO_GO"}
    assert s["total"] == {"old": 3, "new": 4}
    assert s["counts"]["READY"] == {"old": 2, "new": 2}
    assert s["counts"]["NOT_READY"] == {"old": 0, "new": 2}
    assert s["phones"]["broken"] == 1 and s["phones"]["worse"] == 1 and s["phones"]["added"] == 1
    assert s["phones"]["fixed"] == 0 and s["phones"]["removed"] == 0
    assert s["worse"] is True and s["fleet_worse"] is False
    assert s["profile_changed"] is False and s["policy_changed"] is False and s["inventory_changed"] is False
    assert "Result: WORSE" in err  # the summary is on stderr with --json too


def test_other_profile_policy_and_inventory_are_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write(tmp_path / "old.json", report("GO", {"SEPA": "READY"}))
    new = write(tmp_path / "new.json", report("GO", {"SEPA": "READY"}, profile="q" * 64, inventory="j" * 64,
                                              policy={**POLICY, "expiry_window_days": 90}))
    code, out, err = run_diff(capsys, "--json", old, new)
    assert code == 0
    s = orjson.loads(out.splitlines()[-1])
    assert s["profile_changed"] is True and s["policy_changed"] is True and s["inventory_changed"] is True
    assert "different profiles; phones are compared by name" in err
    assert "different policies" in err and "different inventories" in err


def test_unrecorded_inventory_is_unknown_not_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write(tmp_path / "old.json", report("GO", {"SEPA": "READY"}, inventory=None))
    new = write(tmp_path / "new.json", report("GO", {"SEPA": "READY"}))
    _, out, _ = run_diff(capsys, "--json", old, new)
    assert orjson.loads(out.splitlines()[-1])["inventory_changed"] is None


@pytest.mark.parametrize(("version", "words"), [(0, "schema version 0 is older"), (7, "schema version 7 is not supported")])
def test_other_schema_versions_are_refused_with_the_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: int, words: str
) -> None:
    old = write(tmp_path / "old.json", report("GO", {"SEPA": "READY"}, version=version))
    new = write(tmp_path / "new.json", report("GO", {"SEPA": "READY"}))
    code, out, err = run_diff(capsys, old, new)
    assert code == 64 and out == ""
    assert words in err and "reads version 1" in err and "old.json" in err
    with pytest.raises(ParseError, match=words):
        rows_from_report(report("GO", {}, version=version), "x.json")


@pytest.mark.parametrize("bad", ["missing.json", "notjson", "dir"])
def test_bad_input_is_64(tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str) -> None:
    (tmp_path / "notjson").write_text("{")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "report.json").write_text("{}")
    good = write(tmp_path / "good.json", report("GO", {}))
    code, _, err = run_diff(capsys, str(tmp_path / bad), good)
    assert code == 64 and err
    if bad == "dir":
        assert f"did you mean {tmp_path / 'dir' / 'report.json'}" in err


def test_history_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "h.sqlite"
    with History(db) as h:
        for doc in (report("GO", {"SEPA": "READY"}), report("NO_GO", {"SEPA": "NOT_READY"})):
            doc["summary"] = {"total": 1, "counts": {"READY": 0, "NOT_READY": 0, "UNKNOWN": 0}}
            h.record(doc, None)
    code, out, err = run_diff(capsys, "--history", str(db), "--json", "history:previous", "history:latest")
    assert code == 1
    s = orjson.loads(out.splitlines()[-1])
    assert s["verdict"] == {"old": "GO", "new": "NO_GO"} and s["phones"]["broken"] == 1
    assert s["profile_changed"] is False and s["policy_changed"] is None
    code, _, err = run_diff(capsys, "--history", str(db), "history:9", "history:latest")
    assert code == 64 and "no history run '9'" in err


def test_diff_function_still_pairs_by_name() -> None:
    old = rows_from_report(report("GO", {"SEPA": "READY", "SEPB": "UNKNOWN"}), "o")
    new = rows_from_report(report("GO", {"SEPA": "NOT_READY", "SEPC": "READY"}), "n")
    assert {c.name: c.kind for c in diff(old, new)} == {"SEPA": "broken", "SEPB": "removed", "SEPC": "added"}


def diff_schema() -> dict[str, Any]:
    schema: dict[str, Any] = orjson.loads(
        (Path(__file__).resolve().parents[1] / "schema" / "diff-record.schema.json").read_bytes()
    )
    return schema


def json_records(capsys: pytest.CaptureFixture[str], old: str, new: str) -> tuple[int, list[dict[str, Any]], str]:
    code, out, err = run_diff(capsys, "--json", old, new)
    records = [orjson.loads(line) for line in out.splitlines()]
    for r in records:
        jsonschema.validate(r, diff_schema())
    assert records and records[-1]["type"] == "summary"
    assert all(r["type"] == "phone" for r in records[:-1])
    return code, records, err


@pytest.mark.parametrize(
    ("old_verdict", "new_verdict", "worse"),
    [("GO", "INCOMPLETE", True), ("GO", "NO_GO", True), ("INCOMPLETE", "NO_GO", True),
     ("NO_GO", "INCOMPLETE", False), ("INCOMPLETE", "GO", False), ("NO_GO", "NO_GO", False)],
)
def test_fleet_verdict_order(tmp_path: Path, capsys: pytest.CaptureFixture[str], old_verdict: str,
                             new_verdict: str, worse: bool) -> None:
    # The phones are the same in both runs: only the verdict moves (e.g. a cluster blocker).
    old = write(tmp_path / "old.json", report(old_verdict, {"SEPA": "READY"}))
    new = write(tmp_path / "new.json", report(new_verdict, {"SEPA": "READY"}))
    code, records, err = json_records(capsys, old, new)
    assert code == (1 if worse else 0)
    assert records[-1]["fleet_worse"] is worse and records[-1]["worse"] is worse
    if worse:
        assert records[-1]["worse_because"] == [f"fleet verdict {old_verdict} -> {new_verdict}"]
        assert f"Result: WORSE (fleet verdict {old_verdict} -> {new_verdict})" in err


def test_an_added_not_ready_phone_is_worse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The fleet was NO_GO already, so the verdict cannot say it: the added blocker must.
    old = write(tmp_path / "old.json", report("NO_GO", {"SEPA": "NOT_READY"}))
    new = write(tmp_path / "new.json", report("NO_GO", {"SEPA": "NOT_READY", "SEPN": "NOT_READY"}))
    code, records, err = json_records(capsys, old, new)
    assert code == 1
    assert records[0] == {"type": "phone", "name": "SEPN", "change": "added", "old": None, "new": "NOT_READY",
                          "old_reasons": [], "new_reasons": ["R_NOT_READY"]}
    s = records[-1]
    assert s["phones"]["added"] == 1 and s["added_not_ready"] == 1 and s["fleet_worse"] is False
    assert s["worse_because"] == ["1 added phone(s) NOT_READY"]
    assert "1 added" in err and "(1 added NOT_READY)" in err


def test_added_unknown_and_removed_phones_are_counted_not_worse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path / "old.json", report("INCOMPLETE", {"SEPA": "READY", "SEPB": "NOT_READY", "SEPC": "UNKNOWN"}))
    new = write(tmp_path / "new.json", report("INCOMPLETE", {"SEPC": "UNKNOWN", "SEPD": "UNKNOWN", "SEPE": "READY"}))
    code, records, err = json_records(capsys, old, new)
    assert code == 0
    s = records[-1]
    assert s["phones"]["removed"] == 2 and s["phones"]["added"] == 2 and s["added_not_ready"] == 0
    assert s["worse"] is False and s["worse_because"] == []
    assert s["counts"]["READY"] == {"old": 1, "new": 1} and s["total"] == {"old": 3, "new": 3}
    assert "2 removed" in err and "Result: nothing worse" in err


def test_an_unexpected_error_is_70(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import scanner.report.diff as diff_module

    def boom(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(diff_module, "summarize", boom)
    old = write(tmp_path / "old.json", report("GO", {"SEPA": "READY"}))
    code, out, err = run_diff(capsys, "--json", old, old)
    assert code == 70 and out == ""
    assert "internal error" in err and "RuntimeError: a bug" in err


def test_the_summary_is_the_last_record_even_with_no_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write(tmp_path / "old.json", report("GO", {"SEPA": "READY"}))
    code, records, _ = json_records(capsys, old, old)
    assert code == 0 and len(records) == 1
    assert records[0]["phones"] == dict.fromkeys(
        ("broken", "worse", "changed", "added", "removed", "better", "fixed"), 0
    )
