"""The TLV kernel and its twin: same triples, same errors at the same offsets."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core import tlv
from scanner.core.errors import ParseError


def test_compiled_kernel_loaded_when_required() -> None:
    # `make test` sets this for its first pass: a silently missing extension must fail there.
    if os.environ.get("TRUSTSCAN_REQUIRE_COMPILED") != "1":
        pytest.skip("TRUSTSCAN_REQUIRE_COMPILED not set")
    assert tlv.split_c is not None, "scanner._fasttlv did not import: the compiled kernel is not built"
    assert tlv.KERNEL == "cython"


def test_no_extensions_env_forces_twin() -> None:
    if os.environ.get("SCANNER_NO_EXTENSIONS") != "1":
        pytest.skip("SCANNER_NO_EXTENSIONS not set")
    assert tlv.KERNEL == "python"
    assert tlv.split is tlv.split_py


def triples(flat: Any) -> list[tuple[int, int, int]]:
    return list(tlv.triples(flat))


def test_plain_tlvs(split: Callable[..., Any]) -> None:
    data = b"\x01\x00\x02ab\x05\x00\x00\x09\x00\x01z"
    assert triples(split(data)) == [(1, 3, 2), (5, 8, 0), (9, 11, 1)]


def test_padding_only_in_header_mode(split: Callable[..., Any]) -> None:
    data = b"\x0d\x0d\x01\x00\x01x"
    assert triples(split(data, 0, -1, True)) == [(13, 1, 0), (13, 2, 0), (1, 5, 1)]
    # Outside a header 0x0D is an ordinary tag with a length.
    assert triples(split(b"\x0d\x00\x01x")) == [(13, 3, 1)]


def test_containers_descend_in_header_mode(split: Callable[..., Any]) -> None:
    inner = b"\x0a\x00\x01\x00\x0b\x00\x01\x01"
    data = b"\x07\x00\x0f\x08\x00\x01\x01\x09\x00\x08" + inner + b"\x0c\x00\x01s"
    assert triples(split(data, 0, -1, True)) == [
        (7, 3, 15),
        (8, 6, 1),
        (9, 10, 8),
        (10, 13, 1),
        (11, 17, 1),
        (12, 21, 1),
    ]
    # Not a container outside a header: tag 9 is a certificate blob.
    assert triples(split(data[:3] + bytes(15))) == [(7, 3, 15)]


def test_start_and_end_bound_the_walk(split: Callable[..., Any]) -> None:
    data = b"XX\x01\x00\x01aYY"
    assert triples(split(data, 2, 6)) == [(1, 5, 1)]


@pytest.mark.parametrize(
    ("data", "header", "offset", "fragment"),
    [
        (b"\x01", False, 0, "truncated"),
        (b"\x01\x00", False, 0, "truncated"),
        (b"\x01\x00\x05abc", False, 0, "overruns"),
        (b"\x01\x00\x01a\x02\x00\x09", False, 4, "overruns"),
        # A container whose child runs past the container's end.
        (b"\x03\x00\x04\x04\x00\x05abcde", True, 3, "overruns its container"),
    ],
)
def test_errors_name_the_offset(
    split: Callable[..., Any], data: bytes, header: bool, offset: int, fragment: str
) -> None:
    with pytest.raises(ParseError) as info:
        split(data, 0, -1, header)
    assert info.value.offset == offset
    assert fragment in info.value.reason


def _nest(depth: int) -> bytes:
    body = b""
    for _ in range(depth):
        body = b"\x07" + len(body).to_bytes(2, "big") + body
    return body


def test_container_depth_is_bounded(split: Callable[..., Any]) -> None:
    limit = 4  # _tlv_py.MAX_CONTAINER_DEPTH
    assert len(list(tlv.triples(split(_nest(limit), 0, -1, True)))) == limit
    with pytest.raises(ParseError, match="nested deeper") as info:
        split(_nest(limit + 1), 0, -1, True)
    assert info.value.offset == 3 * limit


def test_bad_start(split: Callable[..., Any]) -> None:
    with pytest.raises(ParseError):
        split(b"abc", 5)


def _outcome(fn: Callable[..., Any], data: bytes, start: int, end: int, header: bool) -> object:
    try:
        return ("ok", list(fn(data, start, end, header)))
    except ParseError as exc:
        return ("error", exc.offset, exc.reason)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=300), header=st.booleans(), start=st.integers(0, 20), end=st.integers(-1, 320))
def test_differential_kernels_agree(data: bytes, header: bool, start: int, end: int) -> None:
    if tlv.split_c is None:
        pytest.skip("compiled kernel not built")
    assert _outcome(tlv.split_c, data, start, end, header) == _outcome(tlv.split_py, data, start, end, header)


# Structured inputs reach deep paths (containers, padding) more often than random bytes do.
_tlv = st.builds(
    lambda tag, value: bytes([tag]) + len(value).to_bytes(2, "big") + value,
    st.sampled_from([1, 2, 3, 4, 7, 9, 12, 13, 14, 200]),
    st.binary(max_size=12),
)


@settings(max_examples=400, deadline=None)
@given(
    parts=st.lists(st.one_of(_tlv, st.just(b"\x0d"), st.binary(max_size=4)), max_size=12),
    header=st.booleans(),
)
def test_differential_on_structured_input(parts: list[bytes], header: bool) -> None:
    if tlv.split_c is None:
        pytest.skip("compiled kernel not built")
    data = b"".join(parts)
    assert _outcome(tlv.split_c, data, 0, -1, header) == _outcome(tlv.split_py, data, 0, -1, header)


def test_zero_length_tlv_and_padding_end_a_container(split: Callable[..., Any]) -> None:
    # The kernels were right here (issue 9's round-trip bug was in the tree built from these
    # triples): the last child of a container may have its value offset at the container's end.
    data = b"\x03\x00\x07\x04\x00\x01a\x05\x00\x00" + b"\x07\x00\x05\x08\x00\x01\x01\x0d" + b"\x0c\x00\x00"
    assert triples(split(data, 0, -1, True)) == [
        (3, 3, 7),
        (4, 6, 1),
        (5, 10, 0),
        (7, 13, 5),
        (8, 16, 1),
        (13, 18, 0),
        (12, 21, 0),
    ]
