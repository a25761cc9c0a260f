"""Build the Cython TLV kernel; fall back to the pure-Python twin when it cannot be built.

The project metadata lives in pyproject.toml. This file exists only because the compiled
kernel is optional: a machine without a C compiler (or without Cython) still gets a working
install, with a warning, and ``scanner.core.tlv.KERNEL`` then reports ``"python"``.
"""

from __future__ import annotations

import os
import sys
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that turns a failed compile into a warning instead of a failed install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # compiler missing, Cython missing, ...
            self._warn(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        msg = (
            f"trustscan: the compiled TLV kernel could not be built ({exc!r}); "
            "falling back to the pure-Python kernel (slower, same results)."
        )
        warnings.warn(msg, stacklevel=1)
        print(f"WARNING: {msg}", file=sys.stderr)


def extensions() -> list[Extension]:
    if os.environ.get("SCANNER_NO_EXTENSIONS") == "1":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("WARNING: Cython not available; trustscan uses the pure-Python TLV kernel", file=sys.stderr)
        return []
    return list(
        cythonize(
            [Extension("scanner._fasttlv", ["scanner/_fasttlv.pyx"])],
            compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
            quiet=True,
        )
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
