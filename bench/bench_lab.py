"""Benchmark: `trustscan lab serve` at scale.

Builds (or reuses) a lab of N phones, runs ``lab serve`` in a child process pinned to one CPU,
and measures from this process (pinned to the other CPU when there is one):

* start-up time to ``ready`` and the server's peak RSS (VmHWM) with every phone listening;
* TFTP transfers/s of a 5,000-byte file with blksize 1428 (4 DATA blocks) over many concurrent
  transfers (the scanner's own ``tftp_fetch``, so the client side costs CPU too);
* HTTP requests/s: phone Network-setup pages across many phone addresses, keep-alive.

    python bench/bench_lab.py [--phones 10000] [--lab DIR] [--seconds 5] [--json]

``--json`` prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from scanner.core.tftp.client import Outcome
from scanner.lab.build import build_lab
from scanner.lab.scenario import BUILTIN
from scanner.net.tftp_io import tftp_fetch

FILE_NAME = "bench-5k.bin"
FILE_SIZE = 5000


def _ensure_lab(path: Path | None, phones: int) -> Path:
    if path is not None and (path / "lab.json").is_file():
        return path
    out = path or Path(tempfile.mkdtemp(prefix="bench-lab-")) / "lab"
    t = time.perf_counter()
    build_lab(out, BUILTIN["healthy"], phones=phones, seed="1")
    print(f"built {phones} phones in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return out


def _vm_hwm_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(m.group(1)) if m else 0


async def _tftp_load(host: str, port: int, seconds: float, concurrency: int) -> dict[str, Any]:
    ok = failed = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal ok, failed
        while time.perf_counter() < stop_at:
            res = await tftp_fetch(
                host, port, FILE_NAME, blksize=1428, windowsize=None, timeout=1.0, retries=3
            )
            if res.outcome is Outcome.OK and len(res.data or b"") == FILE_SIZE:
                ok += 1
            else:
                failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "transfers": ok,
        "failed": failed,
        "seconds": round(elapsed, 2),
        "per_second": round(ok / elapsed),
    }


async def _http_load(urls: list[str], seconds: float, concurrency: int) -> dict[str, Any]:
    ok = failed = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=4)

    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(offset: int) -> None:
            nonlocal ok, failed
            i = offset
            while time.perf_counter() < stop_at:
                try:
                    async with session.get(urls[i % len(urls)]) as r:
                        await r.read()
                        ok += r.status == 200
                        failed += r.status != 200
                except aiohttp.ClientError:
                    failed += 1
                i += concurrency

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"requests": ok, "failed": failed, "seconds": round(elapsed, 2), "per_second": round(ok / elapsed)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phones", type=int, default=10000)
    ap.add_argument("--lab", type=Path, default=None, help="reuse (or build into) this lab directory")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    lab_dir = _ensure_lab(args.lab, args.phones)
    lab = json.loads((lab_dir / "lab.json").read_text())
    node = lab["clusters"]["source"]["tftp"][0]
    (lab_dir / node["dir"] / FILE_NAME).write_bytes(os.urandom(FILE_SIZE))

    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpus = cpus[0], (cpus[1:] or cpus)
    cmd = [sys.executable, "-m", "scanner", "lab", "serve", str(lab_dir)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        preexec_fn=lambda: os.sched_setaffinity(0, {server_cpu}),
    )
    os.sched_setaffinity(0, set(client_cpus))
    out: dict[str, Any] = {"phones": len(lab["phones"])}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ready"):
                break
        else:
            raise SystemExit("lab serve exited before 'ready'")
        out["startup_s"] = round(time.perf_counter() - t0, 2)
        out["serve_rss_after_start_mib"] = round(_vm_hwm_kib(proc.pid) / 1024, 1)
        tftp = asyncio.run(_tftp_load(node["address"], node["tftp_port"], args.seconds, args.concurrency))
        out["tftp_5k_blksize1428"] = tftp
        web = lab["web_port"]
        urls = [
            f"http://{p['ip']}:{web}/NetworkConfiguration" for p in lab["phones"][:2000] if p["web"] == "on"
        ]
        out["http_phone_pages"] = asyncio.run(_http_load(urls, args.seconds, args.concurrency))
        node_url = f"http://{node['address']}:{node['http_port']}/{FILE_NAME}"
        out["http_node_file"] = asyncio.run(_http_load([node_url], args.seconds, args.concurrency))
        out["serve_peak_rss_mib"] = round(_vm_hwm_kib(proc.pid) / 1024, 1)
        out["server_cpu"] = server_cpu
        out["client_cpus"] = client_cpus
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        (lab_dir / node["dir"] / FILE_NAME).unlink(missing_ok=True)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
