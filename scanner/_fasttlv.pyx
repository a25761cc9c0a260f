# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of scanner.core._tlv_py.split: same signature, docstring and errors.

Only the loop over bytes lives here; every bit of meaning stays in typed Python
(scanner.core.trustlist). The exception class is imported from the Python module so both kernels
raise the very same type. The result is written straight into an ``array('q')`` buffer: no
Python object is created per TLV, which is where the speed over the twin comes from.
"""

from cpython cimport array
import array

from scanner.core.errors import ParseError

cdef enum:
    PADDING_TAG = 0x0D
    MAX_CONTAINER_DEPTH = 4

cdef array.array _TEMPLATE = array.array("q")


def split(data, Py_ssize_t start=0, Py_ssize_t end=-1, bint header=False):
    """Split ``data[start:end]`` into TLVs: a flat ``array('q')`` of ``tag, value_offset,
    value_length`` for each TLV in file order (``scanner.core.tlv.triples`` iterates it as tuples).

    Offsets are absolute into ``data``. ``end=-1`` means ``len(data)``. With ``header=True`` the
    padding tag 0x0D yields ``(13, offset_after_tag, 0)`` and a container yields its own triple
    followed by the triples of its contents (depth first, in file order). Raises
    ``ParseError`` naming the offset of the offending TLV on any overrun.
    """
    cdef const unsigned char[:] buf = data
    cdef Py_ssize_t size = buf.shape[0]
    cdef Py_ssize_t pos, limit, value, length
    cdef Py_ssize_t limits[MAX_CONTAINER_DEPTH]
    cdef int depth = 0
    cdef unsigned char tag
    cdef Py_ssize_t n = 0, cap
    cdef long long* slot
    cdef array.array out
    if end < 0 or end > size:
        end = size
    if start < 0 or start > end:
        raise ParseError("start offset outside the data", start)
    # Start small and double: a real file holds tens to hundreds of TLVs (certificates make
    # them large), and sizing for the worst case (one TLV per 3 bytes) costs a big allocation
    # whose page faults dominate the whole call.
    cap = 3 * 128
    out = array.clone(_TEMPLATE, cap, zero=False)
    limit = end
    pos = start
    while True:
        while pos == limit and depth > 0:
            depth -= 1
            limit = limits[depth]
        if pos >= limit:
            break
        if n + 3 > cap:
            cap = cap * 2
            array.resize(out, cap)
        slot = out.data.as_longlongs + n
        tag = buf[pos]
        if header and tag == PADDING_TAG:
            slot[0] = tag
            slot[1] = pos + 1
            slot[2] = 0
            n += 3
            pos += 1
            continue
        if pos + 3 > limit:
            raise ParseError(f"truncated TLV: tag {tag} needs a 2-byte length", pos)
        length = (<Py_ssize_t>buf[pos + 1] << 8) | buf[pos + 2]
        value = pos + 3
        if value + length > limit:
            raise ParseError(
                f"tag {tag} length {length} overruns its {'container' if depth else 'region'} "
                f"by {value + length - limit} bytes",
                pos,
            )
        slot[0] = tag
        slot[1] = value
        slot[2] = length
        n += 3
        if header and (tag == 3 or tag == 7 or tag == 9 or tag == 16 or tag == 17 or tag == 21):
            if depth >= MAX_CONTAINER_DEPTH:
                raise ParseError(f"containers nested deeper than {MAX_CONTAINER_DEPTH}", pos)
            limits[depth] = limit
            depth += 1
            limit = value + length
            pos = value
        else:
            pos = value + length
    array.resize(out, n)
    return out
