"""Reading a profile file: the bytes from disk, handed to ``scanner.core.profile.parse_profile``."""

from __future__ import annotations

from pathlib import Path

from scanner.core.errors import ParseError
from scanner.core.profile import MAX_PROFILE_BYTES, Profile, parse_profile


def load_profile(path: str | Path) -> Profile:
    """Read and validate ``path``; relative paths inside are relative to its directory."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = fh.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise ParseError(f"cannot read profile: {exc.strerror or exc}", path=str(p)) from None
    if len(data) > MAX_PROFILE_BYTES:
        raise ParseError(f"profile larger than {MAX_PROFILE_BYTES} bytes", path=str(p))
    try:
        return parse_profile(data, base_dir=p.resolve().parent, path=p)
    except ParseError as exc:
        raise exc.with_path(str(p)) from None
