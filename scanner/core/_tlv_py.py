"""The TLV kernel in pure Python: the readable specification, and the fallback.

``scanner/_fasttlv.pyx`` implements exactly this function; a differential property test holds
the two to the same triples and the same errors at the same offsets on arbitrary bytes.

Wire format: one tag byte, a 2-byte big-endian length, the value.
In a header (``header=True``) two exceptions apply: tag 0x0D is a single padding byte with no
length, and tags 3, 7 and 9 (and, in .enc.sgn headers, 16, 17 and 21) are containers
whose value is itself a run of TLVs that must fill the container exactly. Outside a header those tags are ordinary (record tag 9 is a DER
certificate, not a container).
"""

from __future__ import annotations

from array import array

from scanner.core.errors import ParseError

PADDING_TAG = 0x0D
CONTAINER_TAGS = frozenset({3, 7, 9, 16, 17, 21})
# Containers nest at most two deep in every known file (7 wraps 9). Allow a little more so a
# future producer does not break us, but bound the recursion an attacker could ask for.
MAX_CONTAINER_DEPTH = 4


def split(data: bytes, start: int = 0, end: int = -1, header: bool = False) -> array[int]:
    """Split ``data[start:end]`` into TLVs: a flat ``array('q')`` of ``tag, value_offset,
    value_length`` for each TLV in file order (``scanner.core.tlv.triples`` iterates it as tuples).

    Offsets are absolute into ``data``. ``end=-1`` means ``len(data)``. With ``header=True`` the
    padding tag 0x0D yields ``(13, offset_after_tag, 0)`` and a container yields its own triple
    followed by the triples of its contents (depth first, in file order). Raises
    ``ParseError`` naming the offset of the offending TLV on any overrun.
    """
    size = len(data)
    if end < 0 or end > size:
        end = size
    if start < 0 or start > end:
        raise ParseError("start offset outside the data", start)
    out: array[int] = array("q")
    # Stack of container ends still open; the walk may not cross one.
    limits: list[int] = []
    limit = end
    pos = start
    while True:
        while pos == limit and limits:
            limit = limits.pop()
        if pos >= limit:
            break
        tag = data[pos]
        if header and tag == PADDING_TAG:
            out.extend((tag, pos + 1, 0))
            pos += 1
            continue
        if pos + 3 > limit:
            raise ParseError(f"truncated TLV: tag {tag} needs a 2-byte length", pos)
        length = (data[pos + 1] << 8) | data[pos + 2]
        value = pos + 3
        if value + length > limit:
            raise ParseError(
                f"tag {tag} length {length} overruns its {'container' if limits else 'region'} "
                f"by {value + length - limit} bytes",
                pos,
            )
        out.extend((tag, value, length))
        if header and tag in CONTAINER_TAGS:
            if len(limits) >= MAX_CONTAINER_DEPTH:
                raise ParseError(f"containers nested deeper than {MAX_CONTAINER_DEPTH}", pos)
            limits.append(limit)
            limit = value + length
            pos = value
        else:
            pos = value + length
    return out
