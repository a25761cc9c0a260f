"""Benchmark: fetch N phones × (CTLSEP, ITLSEP, SEP.cnf.xml.sgn) over TFTP and HTTP 6970.

The files are served by a separate process (``--serve`` mode of this script: the project's
``TftpServer`` and an aiohttp app on loopback; the lab will replace it). The scanner side runs the
same transport stack and politeness as ``scanner.collect`` (per-node semaphore + token bucket at
the default ``Limits``), and reports phones/s, files/s, CPU seconds per 1,000 files (this
process only) and peak RSS. ``--remote`` adds the TFTP server's delay fault (40 ms before every
datagram it sends, i.e. a 40 ms RTT; HTTP has no delay fault yet). The tftpy×40 baseline runs
when tftpy is installed (``pip install tftpy`` in the venv).

    python bench/bench_collect.py --phones 2000 [--remote] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

FILE_SIZE = 5000  # a typical ITL / signed config is a few KB


def files_for(n: int) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for i in range(n):
        name = f"SEP{i:012X}"
        body = (name.encode() * (FILE_SIZE // 15 + 1))[:FILE_SIZE]
        files[f"CTL{name}.tlv"] = body
        files[f"ITL{name}.tlv"] = body[::-1]
        files[f"{name}.cnf.xml.sgn"] = body
    return files


async def serve(n: int, delay: float) -> None:
    from aiohttp import web

    from scanner.net.tftp_io import TftpFaults, TftpServer

    files = files_for(n)
    tftp = TftpServer(files.get, faults=TftpFaults(delay=delay))
    await tftp.start("127.0.0.1", 0)

    async def handler(request: web.Request) -> web.Response:
        data = files.get(request.match_info["name"])
        return web.Response(status=404) if data is None else web.Response(body=data)

    app = web.Application()
    app.router.add_get("/{name}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    print(json.dumps({"tftp": tftp.port, "http": http_port}), flush=True)
    await asyncio.Event().wait()


async def scanner_fetch(n: int, transport: str, tftp_port: int, http_port: int) -> dict[str, Any]:
    from scanner.net.http_fetch import HttpFetcher, HttpSettings
    from scanner.net.tftp_io import tftp_fetch
    from scanner.ratelimit import Limits, TokenBucket

    lim = Limits()
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(lim.per_node_concurrency)
    bucket = TokenBucket(lim.per_node_rate, lim.per_node_burst, loop.time())
    names = [
        f"{p}SEP{i:012X}{s}"
        for i in range(n)
        for p, s in (("CTL", ".tlv"), ("ITL", ".tlv"), ("", ".cnf.xml.sgn"))
    ]
    ok = 0
    async with HttpFetcher(HttpSettings(per_host=lim.per_node_concurrency)) as http:

        async def one(name: str) -> None:
            nonlocal ok
            async with slots:
                wait = bucket.reserve(loop.time())
                if wait > 0:
                    await asyncio.sleep(wait)
                if transport == "tftp":
                    r = await tftp_fetch("127.0.0.1", tftp_port, name, timeout=lim.tftp_timeout)
                    ok += r.ok
                else:
                    h = await http.get(f"http://127.0.0.1:{http_port}/{name}")
                    ok += h.data is not None

        it = iter(names)

        async def worker() -> None:
            for name in it:
                await one(name)

        cpu0, t0 = time.process_time(), time.monotonic()
        async with asyncio.TaskGroup() as tg:
            for _ in range(lim.workers):
                tg.create_task(worker())
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    return {"files": len(names), "ok": ok, "wall": wall, "cpu": cpu}


def baseline(n: int, tftp_port: int) -> dict[str, Any] | None:
    try:
        import tftpy  # type: ignore[import-not-found]
    except ImportError:
        return None
    import io
    import logging

    logging.getLogger("tftpy").setLevel(logging.CRITICAL)
    names = [
        f"{p}SEP{i:012X}{s}"
        for i in range(n)
        for p, s in (("CTL", ".tlv"), ("ITL", ".tlv"), ("", ".cnf.xml.sgn"))
    ]

    def get(name: str) -> bool:
        buf = io.BytesIO()
        try:
            tftpy.TftpClient("127.0.0.1", tftp_port).download(name, buf, timeout=5)
        except Exception:
            return False
        return len(buf.getvalue()) == FILE_SIZE

    cpu0, t0 = time.process_time(), time.monotonic()
    with ThreadPoolExecutor(40) as pool:
        ok = sum(pool.map(get, names))
    return {"files": len(names), "ok": ok, "wall": time.monotonic() - t0, "cpu": time.process_time() - cpu0}


def figures(r: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        **r,
        "phones_per_s": round(n / r["wall"], 1),
        "files_per_s": round(r["files"] / r["wall"], 1),
        "cpu_s_per_1000_files": round(1000 * r["cpu"] / r["files"], 4),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phones", type=int, default=2000)
    ap.add_argument("--remote", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--delay", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.phones, args.delay))
        return 0
    delay = 0.04 if args.remote else 0.0
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--phones", str(args.phones), "--delay", str(delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
        out: dict[str, Any] = {"phones": args.phones, "condition": "remote" if args.remote else "local"}
        for transport in ("tftp", "http"):
            out[transport] = figures(
                asyncio.run(scanner_fetch(args.phones, transport, ports["tftp"], ports["http"])), args.phones
            )
        base = baseline(args.phones, ports["tftp"])
        if base is not None:
            out["baseline_tftpy_x40"] = figures(base, args.phones)
            out["ratio_tftp_phones_per_s"] = round(
                out["tftp"]["phones_per_s"] / out["baseline_tftpy_x40"]["phones_per_s"], 2
            )
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    finally:
        server.terminate()
        server.wait()
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
