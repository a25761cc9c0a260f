"""Benchmark of collection: phones × (CTLSEP, ITLSEP, SEP.cnf.xml.sgn) over TFTP and over HTTP
6970, local and remote site, against the tftpy×40 baseline, in one run.

What it does, so that the figures can be trusted:

* **Files**: a lab (``trustscan lab build``, scenario ``healthy``) of ``--phones`` phones, served
  by a separate process (``trustscan lab serve``) on its own loopback addresses: 2 source and 2
  destination TFTP nodes, each with TFTP and HTTP 6970. Phone *i* is fetched from node *i mod 4*
  (the three files each; every node serves all three for every phone: per-phone CTL/ITL names
  resolve to the node's list), so each node carries a quarter of the fleet.
* **Scanner**: the real collection path, in a fresh interpreter per measurement: the
  collector's workers, per-node semaphore and token bucket at the **default** limits
  (``scanner.core.ratelimit.Limits``), TFTP (blksize 1428, windowsize 8, tsize; pooled sockets) or
  HTTP 6970 (``scanner.net.http_fetch``, keep-alive), the redaction of the configs,
  content-addressed blobs and ``manifest.jsonl`` written to a temporary evidence directory. Only the phone web pages and TVS probes are left out (they are
  not files). CPU = user + system time of that process while collecting; peak RSS = its
  ``ru_maxrss``.
* **Remote site**: a second lab whose four TFTP nodes carry the ``node-delay`` fault. The lab
  delays what the server sends, so ``delay = 0.040`` gives every exchange the 40 ms round trip
  of 20 ms each way (TFTP: every datagram; HTTP: every response).
* **Baseline**: 40 threads, each file a ``tftpy.TftpClient(...).download`` (what the best-known
  public fetcher does: RFC 1350 lock-step, 512-byte blocks, no options), same lab, same files,
  same node spread, its own process. Skipped, with a line saying so, when tftpy is not installed
  (``.venv/bin/pip install tftpy``). In the remote condition lock-step costs ~11 round trips per
  file, so the baseline is timed on the first ``--baseline-phones`` phones (default 500) and
  reported as a rate (it is steady: 40 threads, same file sizes).
* **Floor** (local only): the same files, nodes, limits and pacing fetched by the barest loop
  that can fetch them on the same event loop (``worker_floor``: no state machine, retries,
  checks, hashing, redaction or evidence; a happy path only). Its CPU per file is what the event
  loop and the kernel cost before any of the scanner's own work: the part of the scanner's
  figure that no change to the scanner's Python can remove.
* **Scale** (``--rss-phones``, default 100000): peak RSS of a dry run (inventory parsed, plan
  counted) and of a lazily fed collection at that many phones: the first ``--phones`` are the
  lab's, the rest synthetic MACs (their CTLSEP/ITLSEP resolve to the node's lists, their configs
  are "not found": one more request each), over HTTP with the rate limit lifted (this run
  measures memory, not politeness). Memory that grows with the number of *distinct* files (the
  blob index: 32 bytes + set overhead per blob) is reported per blob so it can be scaled.

    .venv/bin/python bench/bench_collect.py --phones 10000 [--json]
    .venv/bin/python bench/bench_collect.py --phones 1000 --rss-phones 0       # a quick run
    .venv/bin/python bench/bench_collect.py --base 41 --remote-base 42 ...    # other loopback nets

The scanner's CPU includes writing the evidence (a file per distinct blob) into a temporary
directory (``TMPDIR``): on a disk shared with other work, file creation can cost more CPU than
the network; ``TMPDIR=/dev/shm`` measures the collection without the disk's noise.

``--json`` prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
FILES = (("CTL", ".tlv"), ("ITL", ".tlv"), ("", ".cnf.xml.sgn"))
# Loopback networks of the bench labs (lab "network.base"; --base, --remote-base): apart from the
# test helpers' 77 and the default 10, so a lab someone else is serving does not collide.
BASE = {"local": 61, "remote": 63}
REMOTE_DELAY = 0.040  # server-side, per response/datagram: the RTT of 20 ms each way
NODES = ("src-pub", "src-sub1", "dst-pub", "dst-sub1")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Labs


def scenario_text(condition: str) -> str:
    lines = [
        f'name = "bench-{condition}"',
        'description = "bench_collect: healthy fleet"',
        "[network]",
        f"base = {BASE[condition]}",
    ]
    if condition == "remote":
        for node in NODES:
            lines += ["[[faults]]", 'name = "node-delay"', f'node = "{node}"', f"delay = {REMOTE_DELAY}"]
    return "\n".join(lines) + "\n"


def build_lab(work: Path, condition: str, phones: int) -> Path:
    lab = work / f"lab-{condition}-{phones}-net{BASE[condition]}"
    if (lab / "lab.json").is_file():
        return lab
    scenario = work / f"bench-{condition}.toml"
    scenario.write_text(scenario_text(condition))
    t = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "scanner",
            "lab",
            "build",
            "--out",
            str(lab),
            "--phones",
            str(phones),
            "--scenario",
            str(scenario),
            "--quiet",
        ],
        check=True,
        cwd=ROOT,
    )
    log(f"built {condition} lab of {phones} phones in {time.monotonic() - t:.1f} s: {lab}")
    return lab


class Served:
    """``trustscan lab serve DIR`` in its own process, until the block ends."""

    def __init__(self, lab: Path) -> None:
        self.lab = lab
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Served:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scanner", "lab", "serve", str(self.lab)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("ready"):
                return self
        self.__exit__()
        raise RuntimeError(f"lab serve {self.lab} exited before 'ready'")

    def cpu(self) -> float:
        """CPU seconds the server process has used so far (Linux /proc)."""
        assert self.proc is not None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------------------------------
# Measured processes (each a fresh interpreter: its CPU and peak RSS are its own)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _phone_names(lab: Path, count: int) -> list[str]:
    from scanner.core.inventory import parse_inventory

    names = [p.name for p in parse_inventory((lab / "inventory.csv").read_bytes()).phones]
    # Beyond the lab's fleet: synthetic MACs (scale runs only).
    i = 0
    while len(names) < count:
        names.append(f"SEP0BE{i:09X}")
        i += 1
    return names[:count]


def worker_scanner(lab: Path, transport: str, phones: int, unlimited_rate: bool) -> dict[str, Any]:
    import dataclasses

    # Modules the collector imports on first use: loaded before the clock starts, so the figure
    # per file is not the interpreter's one-off import time.
    from scanner.app.collect import FileJob, _Collector
    from scanner.core.plan import FileSpec
    from scanner.core.profile import Transport
    from scanner.core.ratelimit import Limits
    from scanner.store.evidence import EvidenceWriter
    from scanner.store.profiles import load_profile

    try:
        import uvloop
    except ImportError:  # the CLI's choice too: uvloop when available
        uvloop = None  # type: ignore[assignment]
    profile = load_profile(lab / "profile-manual.toml")  # nodes by hand: app.collect is given no discovery
    t = Transport(transport)
    clusters = {c.name: dataclasses.replace(c, transport=t) for c in profile.clusters}
    profile = dataclasses.replace(profile, source=clusters["source"], destination=clusters["destination"])
    limits = Limits()
    if unlimited_rate:
        limits = dataclasses.replace(limits, per_node_rate=1e6, per_node_burst=10_000)
    nodes = [(c, n) for c in profile.clusters for n in c.tftp]
    names = _phone_names(lab, phones)
    rss_before = _rss_mb()

    def jobs() -> Iterator[FileJob]:
        for i, name in enumerate(names):
            cluster, node = nodes[i % len(nodes)]
            for prefix, suffix in FILES:
                yield FileJob(name, cluster, node, FileSpec(f"{prefix}{name}{suffix}"))

    out = Path(tempfile.mkdtemp(prefix="bench-evidence-"))
    try:
        writer = EvidenceWriter(out / "ev")

        async def run() -> tuple[float, float, Any]:
            c = _Collector(profile, writer, limits, None, None)
            async with c.http, c.web, c.tftp_pool:
                cpu0, t0 = _cpu(), time.monotonic()
                await c.run_pool(jobs())
                wall, cpu = time.monotonic() - t0, _cpu() - cpu0
            return wall, cpu, c

        if uvloop is not None:
            wall, cpu, c = uvloop.run(run())
        else:
            wall, cpu, c = asyncio.run(run())
        writer.close()
        result = {
            "files": writer.attempts,
            "ok": c.outcomes.get("ok", 0),
            "by_outcome": dict(c.outcomes),
            "blobs": writer.blobs_written,
            "wall": wall,
            "cpu": cpu,
            "rss_mb": _rss_mb(),
            "rss_before_run_mb": rss_before,
            "loop": "uvloop" if uvloop is not None else "asyncio",
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return result


def worker_tftpy(lab: Path, phones: int) -> dict[str, Any]:
    import io
    import logging
    from concurrent.futures import ThreadPoolExecutor

    import tftpy  # type: ignore[import-not-found, import-untyped, unused-ignore]

    from scanner.store.profiles import load_profile

    logging.getLogger("tftpy").setLevel(logging.CRITICAL)
    profile = load_profile(lab / "profile-manual.toml")  # nodes by hand: app.collect is given no discovery
    nodes = [n for c in profile.clusters for n in c.tftp]
    names = _phone_names(lab, phones)
    work = [(nodes[i % len(nodes)], f"{p}{name}{s}") for i, name in enumerate(names) for p, s in FILES]

    def get(item: tuple[Any, str]) -> bool:
        node, fname = item
        buf = io.BytesIO()
        try:
            tftpy.TftpClient(node.address, node.tftp_port).download(fname, buf, timeout=5)
        except Exception:
            return False
        return len(buf.getvalue()) > 0

    cpu0, t0 = _cpu(), time.monotonic()
    with ThreadPoolExecutor(40) as pool:
        ok = sum(pool.map(get, work))
    wall, cpu = time.monotonic() - t0, _cpu() - cpu0
    return {"files": len(work), "ok": ok, "wall": wall, "cpu": cpu, "rss_mb": _rss_mb()}


def worker_floor(lab: Path, transport: str, phones: int) -> dict[str, Any]:
    """The yardstick: the same files, nodes, limits and pacing as the scanner, fetched by the
    barest loop that can fetch them on this event loop, so the figure per file is what the loop
    and the kernel cost before any of the scanner's own work (no state machine, retransmission,
    validation, caps, redaction, hashing, evidence or manifest; a happy path only, so it is a
    floor to compare against, not a client). TFTP: RRQ with the scanner's options, ACK 0 to the
    OACK, the final ACK; HTTP: keep-alive GETs read by Content-Length."""
    from scanner.app.collect import pacing_tick
    from scanner.core.ratelimit import Limits
    from scanner.store.profiles import load_profile

    try:
        import uvloop
    except ImportError:
        uvloop = None  # type: ignore[assignment]
    lim = Limits()
    profile = load_profile(lab / "profile-manual.toml")  # nodes by hand: app.collect is given no discovery
    nodes = [n for c in profile.clusters for n in c.tftp]
    names = _phone_names(lab, phones)
    work = [(nodes[i % len(nodes)], f"{p}{name}{s}") for i, name in enumerate(names) for p, s in FILES]
    tick = pacing_tick(lim)
    per_tick = max(1, int(lim.per_node_rate * tick)) * len(nodes)
    opts = b"octet\x00blksize\x00%d\x00tsize\x000\x00timeout\x001\x00windowsize\x00%d\x00" % (
        lim.tftp_blksize,
        lim.tftp_windowsize,
    )

    class Tftp(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.t: Any = None
            self.fut: Any = None
            self.chunks: list[bytes] = []

        def connection_made(self, t: Any) -> None:
            self.t = t

        def datagram_received(self, data: bytes, addr: Any) -> None:
            if data[1] == 6:
                self.t.sendto(b"\x00\x04\x00\x00", addr)
            elif data[1] == 3:
                self.chunks.append(data[4:])
                if len(data) - 4 < lim.tftp_blksize:
                    self.t.sendto(b"\x00\x04" + data[2:4], addr)
                    self.fut.set_result(b"".join(self.chunks))
                    self.chunks = []
            else:
                self.fut.set_result(None)

    class Http(asyncio.Protocol):
        def __init__(self) -> None:
            self.t: Any = None
            self.fut: Any = None
            self.buf = bytearray()

        def connection_made(self, t: Any) -> None:
            self.t = t

        def data_received(self, data: bytes) -> None:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15 :].split(b"\r\n", 1)[0]) if i >= 0 else 0
            if len(self.buf) >= end + 4 + length:
                body = bytes(self.buf[end + 4 : end + 4 + length])
                del self.buf[: end + 4 + length]
                self.fut.set_result(body)

    async def run() -> tuple[float, float, int]:
        loop = asyncio.get_running_loop()
        idle: dict[Any, list[Any]] = {}

        async def fetch(node: Any, name: str) -> bool:
            key = node.name
            pool = idle.setdefault(key, [])
            if pool:
                p = pool.pop()
            elif transport == "tftp":
                _, p = await loop.create_datagram_endpoint(Tftp, local_addr=("127.0.0.1", 0))
            else:
                _, p = await loop.create_connection(Http, node.address, node.http_port)
            p.fut = loop.create_future()
            if transport == "tftp":
                p.t.sendto(b"\x00\x01" + name.encode() + b"\x00" + opts, (node.address, node.tftp_port))
            else:
                p.t.write(b"GET /%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (name.encode(), node.address.encode()))
            data = await p.fut
            pool.append(p)
            return data is not None

        ok = 0

        def done(t: asyncio.Task[bool]) -> None:
            nonlocal ok
            ok += bool(t.result())

        cpu0, t0 = _cpu(), time.monotonic()
        tasks: set[asyncio.Task[bool]] = set()
        for start in range(0, len(work), per_tick):
            for node, name in work[start : start + per_tick]:
                task = asyncio.ensure_future(fetch(node, name))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(done)
            await asyncio.sleep(tick)
        while tasks:
            await asyncio.sleep(0.001)
        return time.monotonic() - t0, _cpu() - cpu0, ok

    if uvloop is not None:
        wall, cpu, ok = uvloop.run(run())
    else:
        wall, cpu, ok = asyncio.run(run())
    return {"files": len(work), "ok": ok, "wall": wall, "cpu": cpu, "rss_mb": _rss_mb()}


def worker_dry_run(lab: Path, phones: int) -> dict[str, Any]:
    from scanner.app.collect import count_jobs, dry_run
    from scanner.core.inventory import Phone
    from scanner.store.profiles import load_profile

    profile = load_profile(lab / "profile-manual.toml")  # nodes by hand: app.collect is given no discovery
    rss0 = _rss_mb()
    cpu0 = _cpu()
    fleet = [Phone(n) for n in _phone_names(lab, phones)]
    plan = dry_run(profile, fleet)
    jobs = count_jobs(profile, fleet)
    return {
        "phones": phones,
        "requests_min": plan.total,
        "jobs": jobs,
        "cpu": _cpu() - cpu0,
        "rss_mb": _rss_mb(),
        "rss_before_mb": rss0,
    }


def spawn(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(HERE), *args], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------------------
# Figures


def figures(r: dict[str, Any], phones: int, per_node_files: int | None = None) -> dict[str, Any]:
    out = {
        "phones": phones,
        "files": r["files"],
        "ok": r["ok"],
        "wall_s": round(r["wall"], 2),
        "phones_per_s": round(phones / r["wall"], 1),
        "files_per_s": round(r["files"] / r["wall"], 1),
        "cpu_s": round(r["cpu"], 2),
        "cpu_s_per_1000_files": round(1000 * r["cpu"] / max(1, r["files"]), 4),
        "cpu_us_per_file": round(1e6 * r["cpu"] / max(1, r["files"]), 1),
        "peak_rss_mb": r["rss_mb"],
    }
    if per_node_files is not None:
        out["per_node_files_per_s"] = round(per_node_files / r["wall"], 1)
    for k in ("by_outcome", "loop", "server_cpu_s"):
        if k in r:
            out[k] = r[k]
    return out


def have_tftpy() -> bool:
    try:
        import tftpy  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: servers and temporary labs go too


def main() -> int:
    signal.signal(signal.SIGTERM, _sigterm)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phones", type=int, default=10_000, help="phones per measurement (default 10000)")
    ap.add_argument("--conditions", default="local,remote", help="local,remote (default both)")
    ap.add_argument("--transports", default="tftp,http", help="tftp,http (default both)")
    ap.add_argument(
        "--baseline-phones",
        type=int,
        default=500,
        help="phones for the remote-site baseline (default 500; local uses --phones)",
    )
    ap.add_argument(
        "--rss-phones",
        type=int,
        default=100_000,
        help="phones of the scale (peak RSS) runs; 0 skips them (default 100000)",
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="directory to build (and reuse) the labs in (default: a temporary one)",
    )
    ap.add_argument(
        "--base", type=int, default=BASE["local"], help=f"loopback network of the local lab (default {BASE['local']})"
    )
    ap.add_argument(
        "--remote-base",
        type=int,
        default=BASE["remote"],
        help=f"loopback network of the remote lab (default {BASE['remote']})",
    )
    ap.add_argument("--json", action="store_true", help="one JSON object as the last line")
    ap.add_argument("--worker", choices=("scanner", "tftpy", "dry-run", "floor"), help=argparse.SUPPRESS)
    ap.add_argument("--lab", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--transport", default="tftp", help=argparse.SUPPRESS)
    ap.add_argument("--unlimited-rate", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        if args.worker == "scanner":
            r = worker_scanner(args.lab, args.transport, args.phones, args.unlimited_rate)
        elif args.worker == "tftpy":
            r = worker_tftpy(args.lab, args.phones)
        elif args.worker == "floor":
            r = worker_floor(args.lab, args.transport, args.phones)
        else:
            r = worker_dry_run(args.lab, args.phones)
        print(json.dumps(r))
        return 0

    BASE.update(local=args.base, remote=args.remote_base)
    conditions = [c for c in args.conditions.split(",") if c]
    transports = [t for t in args.transports.split(",") if t]
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-collect-"))
    work.mkdir(parents=True, exist_ok=True)
    tftpy_ok = have_tftpy()
    if not tftpy_ok:
        log("tftpy is not installed: the baseline is SKIPPED (.venv/bin/pip install tftpy)")
    from scanner.core.ratelimit import Limits

    lim = Limits()
    n = args.phones
    result: dict[str, Any] = {
        "bench": "bench_collect",
        "phones": n,
        "files_per_phone": [f"{p}SEP<MAC>{s}" for p, s in FILES],
        "nodes": len(NODES),
        "limits": {
            "per_node_concurrency": lim.per_node_concurrency,
            "per_node_rate": lim.per_node_rate,
            "per_node_burst": lim.per_node_burst,
            "workers": lim.workers,
            "tftp_blksize": lim.tftp_blksize,
            "tftp_windowsize": lim.tftp_windowsize,
        },
        "ceiling_files_per_s": len(NODES) * lim.per_node_rate,
        "ceiling_phones_per_s": round(len(NODES) * lim.per_node_rate / len(FILES), 1),
        "remote_delay_s": REMOTE_DELAY,
        "cpu_count": os.cpu_count(),
        "baseline": "tftpy x40 threads" if tftpy_ok else "skipped: tftpy not installed",
        "conditions": {},
    }
    per_node = (n * len(FILES) + len(NODES) - 1) // len(NODES)
    try:
        for cond in conditions:
            lab = build_lab(work, cond, n)
            res: dict[str, Any] = {}
            with Served(lab) as server:
                for t in transports:
                    s0 = server.cpu()
                    log(f"{cond}: scanner over {t}, {n} phones ...")
                    r = spawn(
                        ["--worker", "scanner", "--lab", str(lab), "--transport", t, "--phones", str(n)]
                    )
                    r["server_cpu_s"] = round(server.cpu() - s0, 2)
                    res[t] = figures(r, n, per_node)
                    log(f"  {res[t]['phones_per_s']} phones/s, {res[t]['cpu_us_per_file']} us CPU/file")
                if cond == "local":
                    res["floor_bare_loop"] = {}
                    for t in transports:
                        log(f"{cond}: floor (bare event loop, no scanner work) over {t}, {n} phones ...")
                        r = spawn(["--worker", "floor", "--lab", str(lab), "--transport", t, "--phones", str(n)])
                        res["floor_bare_loop"][t] = figures(r, n)
                        log(f"  {res['floor_bare_loop'][t]['cpu_us_per_file']} us CPU/file")
                if tftpy_ok:
                    bn = n if cond == "local" else min(n, args.baseline_phones)
                    s0 = server.cpu()
                    log(f"{cond}: baseline tftpy x40 over TFTP, {bn} phones ...")
                    b = spawn(["--worker", "tftpy", "--lab", str(lab), "--phones", str(bn)])
                    b["server_cpu_s"] = round(server.cpu() - s0, 2)
                    res["baseline_tftpy_x40"] = figures(b, bn)
                    log(f"  {res['baseline_tftpy_x40']['phones_per_s']} phones/s")
                    base = res["baseline_tftpy_x40"]["phones_per_s"]
                    res["ratio_phones_per_s"] = {
                        t: round(res[t]["phones_per_s"] / base, 2) for t in transports
                    }
                    res["ratio_cpu_per_file"] = {
                        t: round(res["baseline_tftpy_x40"]["cpu_us_per_file"] / res[t]["cpu_us_per_file"], 2)
                        for t in transports
                    }
            result["conditions"][cond] = res
        if args.rss_phones:
            lab = build_lab(work, "local", n)
            log(f"scale: dry run of {args.rss_phones} phones ...")
            result["scale"] = {
                "dry_run": spawn(["--worker", "dry-run", "--lab", str(lab), "--phones", str(args.rss_phones)])
            }
            with Served(lab):
                log(f"scale: lazily fed collection of {args.rss_phones} phones over HTTP (rate lifted) ...")
                r = spawn(
                    [
                        "--worker",
                        "scanner",
                        "--lab",
                        str(lab),
                        "--transport",
                        "http",
                        "--phones",
                        str(args.rss_phones),
                        "--unlimited-rate",
                    ]
                )
            result["scale"]["collect_http"] = figures(r, args.rss_phones)
            result["scale"]["collect_http"]["blobs"] = r["blobs"]
            result["scale"]["note"] = (
                f"first {n} phones are the lab's, the rest synthetic (configs not found); "
                "the blob index grows ~100 bytes per distinct blob"
            )
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
