"""Write a file atomically: a reader (or a crash) never sees half of it.

The temporary file is created with mode 0o666, so the process's umask decides the final mode,
as for every other file trustscan writes (``tempfile.mkstemp`` would force 0600 on reports
only; the user's umask is the one policy for all outputs).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: Path, data: bytes | Iterable[bytes], *, fsync: bool = True) -> None:
    """``data``: the bytes, or the pieces of them in order (a fleet's report is written row by
    row, so that it is never held whole in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # another writer's temporary name: draw again
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, bytes | bytearray | memoryview):
                f.write(data)
            else:
                for piece in data:
                    f.write(piece)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
