"""The package's layers, as folders, and what each may import.

    core  <  net, store  <  report  <  app  <  lab  <  cli

``scanner.core`` (parsing, verification, protocol state, readiness) imports nothing of the
package above it and no asyncio, aiohttp or socket; ``net`` (asyncio adapters) and ``store``
(files on disk) import the core only, and not each other; ``report`` adds ``store`` (its writers
write atomically); ``app`` (the collector and the analysis) joins them; ``lab`` (the simulated
clusters) may use everything below ``cli`` and nothing imports it except ``cli``, which dispatches
the ``lab`` and ``demo`` commands.

Each module is imported in a fresh interpreter, so what it pulls in is what it needs, not what an
earlier test happened to import.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import scanner

# Layer name -> the layers it may import (besides itself and the root package).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "net": {"core"},
    "store": {"core"},
    "report": {"core", "store"},
    "app": {"core", "net", "store", "report"},
    "lab": {"core", "net", "store", "report", "app"},
    "cli": {"core", "net", "store", "report", "app", "lab"},
}
# Modules that are not in a layer folder: the package root, its ``python -m`` entry and the
# compiled kernel (its path is fixed by the build, setup.py).
ROOT_MODULES = {"scanner", "scanner.__main__", "scanner._fasttlv"}
# Loaded at run time by a core module, directly or through anything it imports. (``socket`` is not
# here: the standard library's ``email.utils``, which ``cryptography`` loads, imports it; the core's
# own source is checked for it below instead.)
FORBIDDEN_IN_CORE = ("asyncio", "aiohttp", "uvloop")
# Imported by the core's own source: none of these.
FORBIDDEN_IMPORTS_IN_CORE = {"asyncio", "aiohttp", "uvloop", "socket", "selectors", "ssl", "sqlite3", "subprocess"}
# File access in the core's own source: the calls that open or create files.
FILE_CALLS = {"open", "read_bytes", "read_text", "write_bytes", "write_text", "mkdir", "unlink", "replace"}
# The one reviewed exception: the policy shipped inside the package (scanner/data/policy.toml).
FILE_CALL_ALLOWED = {("scanner.core.policy", "read_bytes")}


def _all_modules() -> list[str]:
    found = [m.name for m in pkgutil.walk_packages(scanner.__path__, "scanner.")]
    return sorted(m for m in found if m not in ROOT_MODULES)


MODULES = _all_modules()

_PROBE = (
    "import importlib, json, sys\n"
    "before = set(sys.modules)\n"
    "importlib.import_module(sys.argv[1])\n"
    "print(json.dumps(sorted(set(sys.modules) - before)))\n"
)


def _imports_of(module: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, module], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, f"importing {module} failed:\n{out.stderr}"
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[0] == "scanner" and module not in ROOT_MODULES else None


def test_every_module_is_in_a_layer() -> None:
    assert MODULES, "no modules found under scanner/"
    stray = [m for m in MODULES if _layer(m) not in ALLOWED]
    assert not stray, f"modules outside the layer folders {sorted(ALLOWED)}: {stray}"


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_only_lower_layers(module: str) -> None:
    layer = _layer(module)
    assert layer is not None
    loaded = _imports_of(module)
    above = sorted(
        m for m in loaded if m not in ROOT_MODULES and (lyr := _layer(m)) not in (None, layer) and lyr not in ALLOWED[layer]
    )
    assert not above, f"{module} ({layer}) pulls in a layer it must not use: {above}"
    if layer == "core":
        banned = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN_IN_CORE)
        assert not banned, f"{module} is core but imports {banned}"


def test_probe_sees_a_violation() -> None:
    """The probe itself: a module known to use asyncio is seen doing so (the check can fail)."""
    loaded = _imports_of("scanner.net.tftp_io")
    assert "asyncio" in loaded and "scanner.core.tftp.client" in loaded


def _core_sources() -> list[tuple[str, Path]]:
    root = Path(scanner.__path__[0])
    return [
        ("scanner." + ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"), p)
        for p in sorted((root / "core").rglob("*.py"))
    ]


def _source_violations(module: str, source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [f"line {node.lineno}: imports {n}" for n in names if n.split(".")[0] in FORBIDDEN_IMPORTS_IN_CORE]
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in FILE_CALLS and (module, name) not in FILE_CALL_ALLOWED:
                if name == "replace" and not (isinstance(f, ast.Attribute) and _looks_like_path(f.value)):
                    continue  # str.replace and dataclasses.replace, not Path.replace
                found.append(f"line {node.lineno}: calls {name}()")
    return found


def _looks_like_path(value: ast.expr) -> bool:
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "Path"


@pytest.mark.parametrize(("module", "path"), _core_sources(), ids=lambda v: str(v).rsplit("/", 1)[-1])
def test_core_source_has_no_io(module: str, path: Path) -> None:
    bad = _source_violations(module, path.read_text(encoding="utf-8"))
    assert not bad, f"{path}: the core does no I/O, but " + "; ".join(bad)


def test_source_check_sees_io() -> None:
    """The source check itself: an import of socket and a call of open() are both caught."""
    bad = _source_violations("scanner.core.example", "import socket\nopen('x').read()\n")
    assert bad == ["line 1: imports socket", "line 2: calls open()"]
