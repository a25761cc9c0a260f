"""Write report files atomically: a reader (or a crash) never sees half a report.json."""

from __future__ import annotations

from scanner.store.atomicfile import write_atomic

__all__ = ["write_atomic"]
