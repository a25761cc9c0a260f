"""Fuzz target: every parser of untrusted bytes may raise ParseError and nothing else.

Run with atheris when it is installed (coverage-guided):
    pip install atheris && python fuzz/fuzz_parsers.py -atheris_runs=200000
Without atheris it runs a time-bounded mutation loop over the real vectors (stdlib only):
    python fuzz/fuzz_parsers.py --seconds 60
Any other exception is a bug: the input is written to fuzz/crash-<sha1> and re-raised.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

from scanner.devconfig import parse_device_config, redact_config_xml
from scanner.errors import ParseError
from scanner.phonepage import parse_phone_page
from scanner.tftp.packets import decode
from scanner.trustlist import parse, serialize

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"


def _trust(data: bytes) -> None:
    tf = parse(data)
    assert serialize(tf) == data, "a parsed file must serialize back to its bytes"


TARGETS: list[Callable[[bytes], object]] = [
    _trust,
    lambda d: parse(d, name_hint="SEP001122334455.cnf.xml.sgn"),
    parse_device_config,
    redact_config_xml,
    parse_phone_page,
    decode,
]


def one_input(data: bytes) -> None:
    if not data:
        return
    target = TARGETS[data[0] % len(TARGETS)]
    try:
        target(data[1:])
    except ParseError:
        pass
    except Exception:
        crash = Path(__file__).parent / f"crash-{hashlib.sha1(data).hexdigest()}"
        crash.write_bytes(data)
        print(f"crash input written to {crash}", file=sys.stderr)
        raise


def _corpus() -> list[bytes]:
    seeds = [b"\x01\x00\x02\x01\x02\x02\x00\x02\x00\x0a", b"<device><TVS/></device>", b"\x00\x03\x00\x01data"]
    for sub in ("trust-lists", "phone-pages"):
        folder = VECTORS / sub
        if folder.is_dir():
            seeds += [p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".tlv", ".html")]
    return seeds


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        if op < 0.5 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.7 and b:
            del b[rng.randrange(len(b)) :]
        elif op < 0.85:
            b[rng.randrange(len(b) + 1) : rng.randrange(len(b) + 1)] = rng.randbytes(rng.randint(1, 8))
        elif b:
            i = rng.randrange(len(b))
            b[i:i] = b[i : i + rng.randint(1, 64)]
    return bytes(b)


def main() -> int:
    try:
        import atheris
    except ImportError:
        atheris = None
    if atheris is not None and "--seconds" not in sys.argv:
        atheris.Setup(sys.argv, one_input)
        atheris.Fuzz()
        return 0
    seconds = float(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 30.0
    rng = random.Random(1)
    corpus = _corpus()
    deadline = time.monotonic() + seconds
    runs = 0
    while time.monotonic() < deadline:
        seed = rng.choice(corpus)
        for t in range(len(TARGETS)):
            one_input(bytes([t]) + _mutate(rng, seed))
            runs += 1
    print(f"{runs} inputs, no exception other than ParseError")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
