"""The peak RSS a scan reports (`scan --json`'s ``peak_rss_mb``) is its own, not its parent's.

Linux keeps ``ru_maxrss`` across fork and exec: a scan started by a large process (the benchmark,
after comparing a big fleet with its answer key) used to report that process's peak as its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

CHILD = (
    "import orjson, resource; from scanner.cli.scan import _peak_rss_mb; "
    "print(orjson.dumps({'reported': _peak_rss_mb(), "
    "'ru_maxrss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}).decode())"
)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="Linux /proc only")
def test_a_scan_started_by_a_large_process_reports_its_own_peak() -> None:
    ballast = bytearray(300 << 20)  # this process: 300 MB more, all touched
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])
    got = orjson.loads(subprocess.run([sys.executable, "-c", CHILD], capture_output=True, check=True).stdout)
    del ballast
    # The child's ru_maxrss carries this process's peak (the inheritance the report must not show)...
    assert got["ru_maxrss_mb"] >= 300
    # ...while what it reports is the peak of its own program, far below it.
    assert got["reported"]["scan"] < 200
