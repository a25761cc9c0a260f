"""The cutover state overlay (``scanner.lab.cutover`` writes it) as the phone pages of ``lab
serve`` read it: a phone a cutover moved shows its new TFTP servers, lists and messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

__all__ = ["LISTS_DIR", "STATE_FILE", "STATE_FORMAT", "Overlay"]

STATE_FORMAT = 1
STATE_FILE = Path("state") / "phones.json"
LISTS_DIR = Path("state") / "lists"


class Overlay:
    """The cutover state as the phone pages of ``lab serve`` read it: reloaded when
    state/phones.json changes (several serving processes each hold one)."""

    def __init__(self, directory: Path, variants: dict[str, Any]) -> None:
        self.path = directory / STATE_FILE
        self.base = variants
        self._mtime: int | None = None
        self.phones: dict[str, Any] = {}
        self.variants: dict[str, Any] = variants

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            mtime = None
        if mtime == self._mtime:
            return
        self._mtime = mtime
        if mtime is None:
            self.phones, self.variants = {}, self.base
            return
        try:
            state = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            self._mtime = None  # a reader never sees half a file (atomic rename); retry next time
            return
        self.phones = dict(state.get("phones", {}))
        self.variants = {**self.base, **state.get("variants", {})}

    def apply(self, phone: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the phone as its page shows it now, the variants to render it with)."""
        self._refresh()
        moved = self.phones.get(phone["name"])
        if moved is None:
            return phone, self.variants
        return {**phone, **moved}, self.variants
