"""Read trust stores from disk: a directory of PEM/DER certificate files per store (I/O adapter)."""

from __future__ import annotations

from pathlib import Path

from scanner.core.errors import ParseError
from scanner.core.verify import TrustStore

CERT_SUFFIXES = (".pem", ".der", ".crt", ".cer")
# An exported trust store holds tens to a few hundred certificates of ~2 KB; refuse files that
# cannot be certificates rather than read them into memory.
MAX_CERT_FILE_SIZE = 1 << 20


def load_trust_store(directory: str | Path, name: str | None = None) -> TrustStore:
    """Every certificate file in ``directory`` (not recursive). A missing directory raises
    ``FileNotFoundError``; an unreadable file becomes an error in the store, naming the path."""
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"trust store directory not found: {path}")
    files: list[tuple[str, bytes]] = []
    errors: list[ParseError] = []
    for entry in sorted(path.iterdir()):
        if not entry.is_file() or entry.suffix.lower() not in CERT_SUFFIXES:
            continue
        if entry.stat().st_size > MAX_CERT_FILE_SIZE:
            errors.append(ParseError(f"larger than {MAX_CERT_FILE_SIZE} bytes", path=str(entry)))
            continue
        files.append((str(entry), entry.read_bytes()))
    store = TrustStore.from_files(name or path.name, files)
    if errors:
        store = TrustStore(store.name, store.certs, store.errors + tuple(errors))
    return store
