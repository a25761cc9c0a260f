"""The fleet's report rows held as their JSON lines, not as dicts.

A phone's row is about 1.8 KB as JSON and 6.3 KB as a Python dict (measured on the 2,000-phone
``mixed`` lab's ``devices.jsonl``). The fleet's reports are written at the end, one row at a time,
so the rows are kept where ``devices.jsonl`` already put them (its lines are read back by offset)
or, when that file is not wanted, as their bytes in memory; a row becomes a dict again only while
a writer looks at it. ``DeviceRows`` is what ``report["devices"]`` is after an analysis.
"""

from __future__ import annotations

import copy
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import orjson


def _row(line: bytes, where: str) -> dict[str, Any]:
    try:
        d = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{where}: a report row that is not JSON ({exc})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{where}: a report row that is not an object")
    d.pop("type", None)  # the devices.jsonl line's own key, not the row's
    return d


class DeviceRows(Sequence[dict[str, Any]]):
    """The rows in report order (``order``: the row numbers as ``DeviceStream.device`` gave them).
    Either ``path`` and ``offsets`` (row i is the file's bytes ``offsets[i]:offsets[i + 1]``) or
    ``held`` (row i's line). Each access decodes a new dict: changing it changes nothing here."""

    def __init__(self, order: Sequence[int], *, path: Path | None = None, offsets: array[int] | None = None,
                 held: Sequence[bytes] | None = None) -> None:
        if (path is None) == (held is None) or (path is not None and offsets is None):
            raise ValueError("DeviceRows: a path with its offsets, or the held lines")
        self._order = array("q", order)
        self._path = path
        self._offsets = offsets
        self._held = held

    def __len__(self) -> int:
        return len(self._order)

    def _span(self, i: int) -> tuple[int, int]:
        assert self._offsets is not None
        return self._offsets[i], self._offsets[i + 1]

    def _one(self, n: int) -> dict[str, Any]:
        if self._held is not None:
            return _row(self._held[n], f"report row {n}")
        assert self._path is not None
        start, end = self._span(n)
        with open(self._path, "rb") as f:
            f.seek(start)
            return _row(f.read(end - start), f"{self._path}, offset {start}")

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [self._one(n) for n in self._order[i]]
        return self._one(self._order[i])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._held is not None:
            for n in self._order:
                yield _row(self._held[n], f"report row {n}")
            return
        assert self._path is not None
        with open(self._path, "rb") as f:
            for n in self._order:
                start, end = self._span(n)
                f.seek(start)
                yield _row(f.read(end - start), f"{self._path}, offset {start}")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DeviceRows | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compared by content, like a list

    def __deepcopy__(self, memo: dict[int, Any]) -> list[dict[str, Any]]:
        # A copy is for changing: a plain list of the rows (tests and tools add rows to copies).
        return copy.deepcopy(list(self), memo)

    def __repr__(self) -> str:
        where = str(self._path) if self._path is not None else "memory"
        return f"DeviceRows({len(self)} rows in {where})"
