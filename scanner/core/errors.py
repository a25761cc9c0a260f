"""The one exception type every trustscan parser raises on bad input.

Kept in its own tiny module (no imports) so that the Cython kernel, the pure-Python twin and
every parser share the very same class: callers catch ``ParseError`` and nothing else.
"""

from __future__ import annotations


class ParseError(ValueError):
    """Malformed input: names the reason and where (byte offset, or line for text formats).

    ``offset`` is a byte offset into the file; ``line`` is a 1-based line for XML/CSV/TOML input.
    ``path`` is filled in by whoever knows the file name (parsers are given bytes, not paths).
    """

    def __init__(
        self,
        reason: str,
        offset: int | None = None,
        *,
        line: int | None = None,
        path: str | None = None,
    ) -> None:
        self.reason = reason
        self.offset = offset
        self.line = line
        self.path = path
        super().__init__(reason)

    def with_path(self, path: str) -> ParseError:
        """The same error naming ``path``; used at the boundary that knows the file name."""
        return ParseError(self.reason, self.offset, line=self.line, path=path)

    def __str__(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        if self.line is not None:
            where.append(f"line {self.line}")
        prefix = ": ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.reason, self.offset, self.line, self.path))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParseError):
            return NotImplemented
        return (self.reason, self.offset, self.line, self.path) == (
            other.reason,
            other.offset,
            other.line,
            other.path,
        )

    def __hash__(self) -> int:
        return hash((self.reason, self.offset, self.line, self.path))


def _rebuild(reason: str, offset: int | None, line: int | None, path: str | None) -> ParseError:
    return ParseError(reason, offset, line=line, path=path)
