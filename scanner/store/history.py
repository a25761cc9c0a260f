"""The nightly history: every scan recorded in one SQLite file, so scans can be compared.

One row per run and one per phone per run (name, readiness, reasons). A corrupt file is moved
aside (``<name>.corrupt-<time>``) and a new one is created, with a warning for the caller to print.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    verdict TEXT NOT NULL,
    total INTEGER NOT NULL,
    ready INTEGER NOT NULL,
    not_ready INTEGER NOT NULL,
    unknown INTEGER NOT NULL,
    profile_sha256 TEXT,
    report_path TEXT
);
CREATE TABLE IF NOT EXISTS devices (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    readiness TEXT NOT NULL,
    reasons TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);
"""


def default_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "trustscan" / "history.sqlite"


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    started: str
    finished: str
    verdict: str
    total: int
    ready: int
    not_ready: int
    unknown: int
    profile_sha256: str | None
    report_path: str | None


class History:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.warnings: list[str] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as exc:
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            with contextlib.suppress(OSError):
                path.rename(aside)
            self.warnings.append(f"history file {path} was unreadable ({exc}); moved to {aside}, started anew")
            self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            db.executescript(SCHEMA)
            db.execute("SELECT count(*) FROM runs").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, report: dict[str, Any], report_path: str | None) -> int:
        s = report["summary"]
        run = report.get("run", {})
        with self.db:
            cur = self.db.execute(
                "INSERT INTO runs (started, finished, verdict, total, ready, not_ready, unknown, profile_sha256,"
                " report_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.get("started", ""), run.get("finished", ""), report["verdict"], s["total"],
                    s["counts"]["READY"], s["counts"]["NOT_READY"], s["counts"]["UNKNOWN"],
                    run.get("profile_sha256"), report_path,
                ),
            )
            run_id = int(cur.lastrowid or 0)
            self.db.executemany(
                "INSERT OR REPLACE INTO devices (run_id, name, readiness, reasons) VALUES (?, ?, ?, ?)",
                ((run_id, d["name"], d["readiness"], orjson.dumps(d["reasons"]).decode()) for d in report["devices"]),
            )
        return run_id

    def runs(self, limit: int = 30) -> list[Run]:
        rows = self.db.execute(
            "SELECT id, started, finished, verdict, total, ready, not_ready, unknown, profile_sha256, report_path"
            " FROM runs ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [Run(*r) for r in reversed(rows)]

    def resolve(self, ref: str) -> int | None:
        """``latest``, ``previous``, or a run id."""
        if ref in ("latest", "previous"):
            rows = self.db.execute("SELECT id FROM runs ORDER BY id DESC LIMIT 2").fetchall()
            index = 0 if ref == "latest" else 1
            return int(rows[index][0]) if len(rows) > index else None
        if ref.isdigit():
            row = self.db.execute("SELECT id FROM runs WHERE id = ?", (int(ref),)).fetchone()
            return int(row[0]) if row else None
        return None

    def devices(self, run_id: int) -> Iterator[tuple[str, str, list[str]]]:
        for name, readiness, reasons in self.db.execute(
            "SELECT name, readiness, reasons FROM devices WHERE run_id = ? ORDER BY name", (run_id,)
        ):
            yield name, readiness, list(orjson.loads(reasons))

    def trend(self, limit: int = 30) -> list[tuple[str, float]]:
        return [(r.finished or r.started, r.ready / r.total if r.total else 0.0) for r in self.runs(limit)]


def device_rows(report: dict[str, Any]) -> Iterable[tuple[str, str, list[str]]]:
    for d in report["devices"]:
        yield d["name"], d["readiness"], list(d["reasons"])
