"""-q / -v and --progress-json: what goes to stderr at each level, and machine-readable progress
for wrappers (one JSON object a line, ending with the phase's ``phase_end``)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from scanner.cli import output
from scanner.cli.main import main
from tests.pki import NOW
from tests.test_scan_reports import write_world


@pytest.fixture(autouse=True)
def _reset_verbosity() -> None:
    yield
    output.VERBOSITY = 1  # main() sets it for the process; the next test starts from the default


def _args(tmp_path: Path) -> list[str]:
    ev, inventory = write_world(tmp_path)
    inv = tmp_path / "inventory.csv"
    inv.write_text("Device Name,IP Address\n" + "".join(f"{p.name},{p.ip}\n" for p in inventory))
    return ["scan", "--profile", str(tmp_path / "profile.toml"), "--inventory", str(inv), "--from", str(ev),
            "--no-history", "--now", NOW.isoformat(), "--format", "json"]


def test_default_quiet_and_verbose_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _args(tmp_path)
    code = main([*args, "--out", str(tmp_path / "r0")])
    normal = capsys.readouterr().err
    assert "analysing" in normal and "Verdict:" in normal and "warning:" in normal
    assert main([*args, "--out", str(tmp_path / "r1"), "-q"]) == code
    quiet = capsys.readouterr().err
    assert "warning:" not in quiet and "analysing" not in quiet and "Phones:" not in quiet
    assert quiet.count("Verdict:") == 1  # -q: errors and the verdict line
    assert f"exit {code}" in quiet  # why a non-zero exit is always said
    assert main(["-v", *args, "--out", str(tmp_path / "r2")]) == code  # before the command too
    loud = capsys.readouterr().err
    assert "analysed" in loud and "Verdict:" in loud and "Per node" in loud


def test_progress_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([*_args(tmp_path), "--out", str(tmp_path / "r"), "--progress-json"])
    lines = [orjson.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    assert lines and all(d["phase"] == "analyse" for d in lines)
    end = lines[-1]
    assert end["event"] == "phase_end" and end["done"] == end["total"] > 0
    assert [d["done"] for d in lines] == sorted(d["done"] for d in lines)


def test_each_bar_keeps_the_total_it_started_with(monkeypatch: pytest.MonkeyPatch) -> None:
    """The collection plans more once it knows more (the TVS probes after the configs): the bar
    that was showing stays at its total and a new one counts the new jobs."""
    import rich.progress

    from scanner.app.collect import Progress as Snap
    from scanner.cli.progress import Mode, collection_bar

    totals: dict[int, set[int]] = {}

    class Recorder:
        def __init__(self, *a: object, **k: object) -> None:
            self.n = 0

        def __enter__(self) -> Recorder:
            return self

        def __exit__(self, *a: object) -> None:
            return None

        def add_task(self, *a: object, **k: object) -> int:
            self.n += 1
            totals[self.n] = set()
            return self.n

        def update(self, task: int, **k: object) -> None:
            if k.get("total") is not None:
                totals[task].add(int(k["total"]))  # type: ignore[call-overload]

    monkeypatch.setattr(rich.progress, "Progress", Recorder)
    with collection_bar(Mode.BAR) as observer:
        assert observer is not None
        for done, total in [(0, 100), (50, 100), (100, 100), (100, 130), (120, 130), (130, 130)]:
            observer(Snap(total=total, done=done, attempts=done, failures=0, elapsed=1.0))
    assert totals == {1: {100}, 2: {30}}
