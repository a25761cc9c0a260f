"""Fuzz the parsers of untrusted bytes: each target may raise its declared exception and nothing
else (``fuzz/targets.py`` lists them: trust_list = verify(parse(x)), inspect, soap (AXL and
RisPort70 answers), tls_sniffer, cache_list, inventory, and the older parsers).

Two modes:

* built-in (stdlib only, the default without atheris): a seeded mutation loop over real files
  (``../shared/vectors``, a lab built with ``trustscan lab build``: ``FUZZ_LAB=DIR``)::

      python fuzz/fuzz_parsers.py --target trust_list --runs 100000

  Every input that raises something undeclared is written to ``tests/data/crashers/<target>/``
  (named by its SHA-1; distinct failures only) and the loop goes on; the exit code is 1 when
  any crasher was found. ``tests/test_crash_corpus.py`` replays that directory on both kernels.

* atheris (coverage-guided; ``pip install atheris`` in a separate venv)::

      python fuzz/fuzz_parsers.py --atheris --target inspect -atheris_runs=100000

  The scanner's modules are imported inside ``atheris.instrument_imports()`` so that coverage
  of their Python code guides the mutations (the compiled TLV kernel is native code and is not
  instrumented: run with ``SCANNER_NO_EXTENSIONS=1`` to have the twin's loop guide it too). The
  seeds (real-sized files) are written to a temporary corpus directory given to libFuzzer. The
  first crasher is saved as above and stops the run, as libFuzzer does.
"""

from __future__ import annotations

import hashlib
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `fuzz.targets` from a checkout

# libFuzzer's default max_len is the largest seed; say it: a CTL/ITL the scanner accepts is up
# to 1 MiB, real ones 5-70 KB.
MAX_LEN = 96 * 1024


def _save(target: str, data: bytes, crashers: Path) -> Path:
    folder = crashers / target
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / hashlib.sha1(data, usedforsecurity=False).hexdigest()
    path.write_bytes(data)
    return path


def _signature(exc: BaseException) -> tuple[str, str]:
    """What makes two failures the same bug: the exception type and where it was raised."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f"{tb[-1].filename}:{tb[-1].lineno}" if tb else "?"
    return type(exc).__name__, where


def mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """Byte flips, truncations, insertions, duplications and splices; plus TLV-shaped edits
    (an empty TLV, a padding byte, a length field changed) that reach the container paths."""
    b = bytearray(data)
    if b and rng.random() < 0.5:
        # In place only: the framing (record and TLV lengths) mostly survives, so the input gets
        # past the parser to what reads the values: certificates, names, timestamps.
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256) if rng.random() < 0.5 else b[i] ^ (1 << rng.randrange(8))
        return bytes(b[:MAX_LEN])
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        if op < 0.35 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.45 and b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op < 0.55 and b:
            del b[rng.randrange(len(b)) :]
        elif op < 0.65:
            i, j = sorted((rng.randrange(len(b) + 1), rng.randrange(len(b) + 1)))
            b[i:j] = rng.randbytes(rng.randint(0, 8))
        elif op < 0.75 and b:
            i = rng.randrange(len(b))
            b[i:i] = b[i : i + rng.randint(1, 64)]
        elif op < 0.77 and b:
            i = rng.randrange(len(b))  # a long run: long numbers, long names, deep nesting
            b[i:i] = b[i : i + rng.randint(1, 4)] * rng.choice([64, 600, 5000])
        elif op < 0.82:
            i = rng.randrange(len(b) + 1)
            b[i:i] = rng.choice([bytes([rng.randrange(32)]) + b"\x00\x00", b"\x0d", b"\x00", b"\xff" * 8])
        elif op < 0.92 and len(b) > 3:
            i = rng.randrange(len(b) - 2)  # a plausible 2-byte length, off by a little
            n = int.from_bytes(b[i : i + 2], "big") + rng.choice([-3, -1, 1, 3, 0x80])
            b[i : i + 2] = (n & 0xFFFF).to_bytes(2, "big")
        elif others:
            other = rng.choice(others)
            if other:
                i = rng.randrange(len(other))
                k = rng.randrange(len(b) + 1)
                b[k:k] = other[i : i + rng.randint(1, 256)]
    return bytes(b[:MAX_LEN])


def _builtin(targets: ModuleType, names: list[str], runs: int, seconds: float | None, seed: int) -> int:
    rng = random.Random(seed)
    found: dict[tuple[str, str, str], Path] = {}
    for name in names:
        target = targets.TARGETS[name]
        seeds = target.seeds()
        t0 = time.monotonic()
        done = 0
        while done < runs and (seconds is None or time.monotonic() - t0 < seconds):
            data = mutate(rng, rng.choice(seeds), seeds) if done >= len(seeds) else seeds[done]
            done += 1
            try:
                targets.run_one(target, data)
            except Exception as exc:
                key = (name, *_signature(exc))
                if key not in found:
                    found[key] = _save(name, data, targets.CRASHERS)
                    print(f"{name}: {key[1]} at {key[2]}: {exc!r:.200} -> {found[key]}", file=sys.stderr)
        took = time.monotonic() - t0
        bugs = sum(1 for k in found if k[0] == name)
        print(f"{name}: {done} inputs in {took:.1f}s, {bugs} distinct crasher(s)", flush=True)
    return 1 if found else 0


def _atheris(argv: list[str], name: str) -> int:
    import atheris

    with atheris.instrument_imports(include=["scanner", "fuzz"]):
        from fuzz import targets
    target = targets.TARGETS[name]
    corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    for s in target.seeds():
        (corpus / hashlib.sha1(s, usedforsecurity=False).hexdigest()).write_bytes(s)

    def one_input(data: bytes) -> None:
        try:
            targets.run_one(target, data)
        except Exception:
            path = _save(name, data, targets.CRASHERS)
            print(f"crash input written to {path}", file=sys.stderr)
            raise

    args = [argv[0], *argv[1:]]
    if not any(a.startswith("-max_len=") for a in args):
        args.append(f"-max_len={MAX_LEN}")
    atheris.Setup([*args, str(corpus)], one_input)
    atheris.Fuzz()
    return 0


def _opt(argv: list[str], flag: str) -> str | None:
    if flag in argv:
        i = argv.index(flag)
        value = argv[i + 1]
        del argv[i : i + 2]
        return value
    return None


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv if argv is None else argv)
    target = _opt(args, "--target")
    runs = _opt(args, "--runs")
    seconds = _opt(args, "--seconds")
    seed = _opt(args, "--seed")
    use_atheris = "--atheris" in args
    if use_atheris:
        args.remove("--atheris")
        if target is None:
            print("--atheris needs --target NAME (one target per libFuzzer run)", file=sys.stderr)
            return 64
        return _atheris(args, target)
    from fuzz import targets

    names = [target] if target else sorted(targets.TARGETS)
    unknown = [n for n in names if n not in targets.TARGETS]
    if unknown:
        print(f"unknown target(s) {unknown}; known: {sorted(targets.TARGETS)}", file=sys.stderr)
        return 64
    # Without --runs or --seconds: a short smoke run of every target.
    n_runs = int(runs) if runs else (10**12 if seconds else 2000)
    return _builtin(targets, names, n_runs, float(seconds) if seconds else None, int(seed or 1))


if __name__ == "__main__":
    raise SystemExit(main())
