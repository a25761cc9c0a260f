"""Shared fixtures: the real-world vectors in ../shared/vectors, and both TLV kernels."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scanner.core import tlv

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
TRUST_LISTS = VECTORS / "trust-lists"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real-world vectors not found at {path} (the shared/ folder sits beside the repo)")
    return path


@pytest.fixture(scope="session")
def trust_list_expected() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_need(TRUST_LISTS / "expected.json").read_text())
    return data


@pytest.fixture(scope="session")
def vector_bytes() -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        return _need(TRUST_LISTS / name).read_bytes()

    return read


KERNELS = {"python": tlv.split_py, "cython": tlv.split_c}


@pytest.fixture(params=sorted(KERNELS))
def split(request: pytest.FixtureRequest) -> Callable[..., Any]:
    fn = KERNELS[request.param]
    if fn is None:
        pytest.skip("compiled kernel not built")
    return fn
