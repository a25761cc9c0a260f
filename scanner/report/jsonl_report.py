"""``devices.jsonl``: one line per phone as soon as it is decided, then one summary line.

A pipeline can stream it while the scan runs, and a file cut short is still valid JSON Lines:
every line is complete (each is written whole and flushed). The last line has
``"type": "summary"``; device lines have ``"type": "device"``.

The stream also keeps the rows for the reports written at the end (``rows``): where each line
starts in the file, or, when devices.jsonl is not among the formats, the lines themselves.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from scanner.report.rows import DeviceRows


def device_line(row: dict[str, Any]) -> bytes:
    """The row as its line of devices.jsonl (with the newline)."""
    return orjson.dumps({"type": "device", **row}, option=orjson.OPT_APPEND_NEWLINE)


class DeviceStream:
    def __init__(self, out: Path, *, write: bool = True) -> None:
        """``write``: write devices.jsonl (else nothing is written and the rows stay in memory)."""
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "devices.jsonl"
        self._f: IO[bytes] | None = open(self.path, "wb") if write else None  # noqa: SIM115 - closed by close()
        self._offsets = array("q", [0])
        self._held: list[bytes] | None = None if write else []
        self.count = 0

    def device(self, row: dict[str, Any]) -> int:
        """Write (or hold) the row; its number, for ``rows``."""
        return self.line(device_line(row))

    def line(self, line: bytes) -> int:
        """Write (or hold) a row already made into its line (``device_line``); its number."""
        if self._f is not None:
            self._f.write(line)
            self._offsets.append(self._offsets[-1] + len(line))
        else:
            assert self._held is not None
            self._held.append(line)
        self.count += 1
        if self.count % 256 == 0 and self._f is not None:
            self._f.flush()
        return self.count - 1

    def summary(self, summary: dict[str, Any]) -> None:
        if self._f is not None:
            self._f.write(orjson.dumps({"type": "summary", **summary}, option=orjson.OPT_APPEND_NEWLINE))
            self._f.flush()

    def rows(self, order: Sequence[int]) -> DeviceRows:
        """The rows numbered ``order``, in that order (read from the file once it is closed)."""
        if self._held is not None:
            return DeviceRows(order, held=self._held)
        return DeviceRows(order, path=self.path, offsets=self._offsets)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()

    def __enter__(self) -> DeviceStream:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
