"""``devices.jsonl``: one line per phone as soon as it is decided, then one summary line.

A pipeline can stream it while the scan runs, and a file cut short is still valid JSON Lines:
every line is complete (each is written whole and flushed). The last line has
``"type": "summary"``; device lines have ``"type": "device"``.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson


class DeviceStream:
    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "devices.jsonl"
        self._f: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed by close()/__exit__
        self.count = 0

    def device(self, row: dict[str, Any]) -> None:
        self._f.write(orjson.dumps({"type": "device", **row}, option=orjson.OPT_APPEND_NEWLINE))
        self.count += 1
        if self.count % 256 == 0:
            self._f.flush()

    def summary(self, summary: dict[str, Any]) -> None:
        self._f.write(orjson.dumps({"type": "summary", **summary}, option=orjson.OPT_APPEND_NEWLINE))
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> DeviceStream:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
