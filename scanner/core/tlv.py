"""Pick the TLV kernel: the compiled one by default, the pure-Python twin on request or fallback.

``SCANNER_NO_EXTENSIONS=1`` forces the twin (as aiohttp's ``AIOHTTP_NO_EXTENSIONS``). ``KERNEL``
says which one is live (``"cython"`` or ``"python"``); ``trustscan --version`` prints it and a
test fails when the compiled kernel was expected but did not load.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from scanner.core import _tlv_py
from scanner.core.errors import ParseError

SplitFn = Callable[..., "array[int]"]

NO_EXTENSIONS = os.environ.get("SCANNER_NO_EXTENSIONS", "") not in ("", "0")

split_py: SplitFn = _tlv_py.split
split_c: SplitFn | None = None

if not TYPE_CHECKING:
    try:
        from scanner._fasttlv import split as split_c
    except ImportError:  # not built: no compiler at install time, or a source checkout
        split_c = None

if split_c is not None and not NO_EXTENSIONS:
    split: SplitFn = split_c
    KERNEL = "cython"
else:
    split = split_py
    KERNEL = "python"

PADDING_TAG = _tlv_py.PADDING_TAG
CONTAINER_TAGS = _tlv_py.CONTAINER_TAGS


def triples(flat: array[int]) -> Iterator[tuple[int, int, int]]:
    """Iterate a kernel result as ``(tag, value_offset, value_length)`` tuples."""
    it = iter(flat)
    return zip(it, it, it, strict=True)


__all__ = ["CONTAINER_TAGS", "KERNEL", "PADDING_TAG", "ParseError", "split", "split_c", "split_py", "triples"]
