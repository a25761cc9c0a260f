"""Helpers for tests that need a lab: built once per process and scenario, served in-process.

    from scanner.lab.testing import built_lab, serving
    lab_dir = built_lab("mixed", phones=40)
    async with serving(lab_dir) as server: ...

Keys come from one ``KeyFactory`` per seed (memory + the disk cache of ``scanner.lab.pki``), so
only the first lab of a process pays for key generation. Labs live in a temporary directory
removed at exit. Test labs use network base 77 (127.77.x.x, 127.87.x.x, 127.167.x.x) so they do not
collide with a `trustscan lab serve` running with the default base.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from scanner.lab.build import build_lab
from scanner.lab.pki import KeyFactory
from scanner.lab.scenario import BUILTIN, Scenario
from scanner.lab.serve import LabServer

__all__ = ["TEST_BASE", "built_lab", "key_factory", "serving"]

TEST_BASE = 77
_root: Path | None = None
_keys: dict[str, KeyFactory] = {}
_built: dict[tuple[str, int, str, int], Path] = {}


def _tmp() -> Path:
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="trustscan-lab-"))
        atexit.register(shutil.rmtree, _root, True)
    return _root


def key_factory(seed: str = "1") -> KeyFactory:
    if seed not in _keys:
        _keys[seed] = KeyFactory(seed)
    return _keys[seed]


def built_lab(scenario: str | Scenario, *, phones: int = 30, seed: str = "1", base: int = TEST_BASE) -> Path:
    """A lab directory for ``scenario`` (a built-in name or a Scenario), built once per process."""
    sc = BUILTIN[scenario] if isinstance(scenario, str) else scenario
    sc = dataclasses.replace(sc, base=base)
    key = (sc.name if isinstance(scenario, str) else repr(sc), phones, seed, base)
    if key not in _built:
        out = _tmp() / f"{sc.name}-{phones}-{seed}-{len(_built)}"
        build_lab(out, sc, phones=phones, seed=seed, keys=key_factory(seed))
        _built[key] = out
    return _built[key]


@contextlib.asynccontextmanager
async def serving(
    directory: Path, *, tls13: bool = False, phones_per_process: int | None = None
) -> AsyncIterator[LabServer]:
    """Serve ``directory`` in the running loop (its phones beyond ``phones_per_process`` in
    worker processes) until the block ends."""
    server = LabServer(directory, tls13=tls13, phones_per_process=phones_per_process)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
