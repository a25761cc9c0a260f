"""A small TOML writer for the files the lab writes (profile.toml): strings, ints, floats, bools,
lists of those, inline tables of strings, tables and arrays of tables. Output reads back with
``tomllib`` to the same data (tested)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else string(k)


def string(s: str) -> str:
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError("TOML floats here must be finite")
        text = repr(v)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(v, str):
        return string(v)
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }" if v else "{}"
    if isinstance(v, Sequence):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _is_table(v: Any) -> bool:
    return isinstance(v, Mapping) and not getattr(v, "inline", False)


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, Mapping) for x in v)


class Inline(dict[str, Any]):
    """A mapping written as an inline table (``{ a = "b" }``) rather than a ``[section]``."""

    inline = True


def dumps(doc: Mapping[str, Any], comments: Mapping[str, str] | None = None) -> str:
    """``comments`` maps a table path (``clusters.source``) to a comment line written above it."""
    lines: list[str] = []
    _emit(doc, [], lines, comments or {})
    return "\n".join(lines).lstrip("\n") + "\n"


def _emit(table: Mapping[str, Any], path: list[str], lines: list[str], comments: Mapping[str, str]) -> None:
    for k, v in table.items():
        if not _is_table(v) and not _is_table_array(v):
            lines.append(f"{key(k)} = {value(v)}")
    for k, v in table.items():
        sub = [*path, k]
        dotted = ".".join(key(p) for p in sub)
        if _is_table(v):
            has_plain = any(not _is_table(x) and not _is_table_array(x) for x in v.values())
            if has_plain or not v:
                lines.append("")
                if ".".join(sub) in comments:
                    lines.append(f"# {comments['.'.join(sub)]}")
                lines.append(f"[{dotted}]")
            _emit(v, sub, lines, comments)
        elif _is_table_array(v):
            for item in v:
                lines.append("")
                lines.append(f"[[{dotted}]]")
                _emit(item, sub, lines, comments)
