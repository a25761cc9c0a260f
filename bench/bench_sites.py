"""Many sites, one answer: wall time of one ``scan --dask`` over N sites, beside a single-machine
scan of the same fleet and beside the sum of the sites scanned one after another.

The lab (``healthy``, on base 24 by default) gets a WAN-like delay on every TFTP node, 20 to 80
ms (the lab's ``node-delay`` fault: it delays every TFTP datagram and HTTP answer of the node).
The lab's delay is per node, not per site: every approach crosses it alike, and what a real
branch gains from a worker near its phones (pages fetched on the LAN) is not modelled. Sites are
consecutive address blocks of the lab's phones (``/26``: up to 63 phones each). The Dask workers
run in this process (one per site, one thread each), the lab in a second process: on a
two-core machine the figures say what the plan costs, not what N machines would give.

    .venv/bin/python bench/bench_sites.py [--sites N] [--base OCTET] [--processes] [--json]

``--processes`` runs each worker in its own interpreter (a Dask Nanny) instead of a thread of
this process: with 5 sites it changed little (13.2 s against 11-12.8 s with threads), so the
per-site cost is not the shared GIL. Each shard's own collection takes ~6 s on its worker, against
0.8-1.3 s for the same phones scanned alone and 2.3 s alone at the shard's share of the limits
(12 in flight, 100/s per node): five shards at once slow each other down beyond their limits, for
a reason not found yet (``sites.json`` in the evidence has the shard seconds).

The last line with --json: {"sites", "phones", "single_s", "dask_s", "sequential_sum_s", ...}.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import ipaddress
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanner.cli.demo import serving_subprocess  # noqa: E402
from scanner.cli.main import main  # noqa: E402
from scanner.lab.build import build_lab  # noqa: E402
from scanner.lab.scenario import BUILTIN, FaultUse  # noqa: E402
from scanner.lab.testing import key_factory  # noqa: E402

BLOCK = 64  # addresses per site: a /26
DELAYS = {"src-pub": 0.02, "src-sub1": 0.04, "dst-pub": 0.06, "dst-sub1": 0.08}


def _build(out: Path, sites: int, base: int) -> Path:
    phones = sites * (BLOCK - 1)
    sc = dataclasses.replace(
        BUILTIN["healthy"], base=base,
        faults=tuple(FaultUse("node-delay", node=n, params=(("delay", d),)) for n, d in DELAYS.items()),
    )
    build_lab(out, sc, phones=phones, seed="1", keys=key_factory("1"))
    return out


def _site_prefixes(lab: Path, sites: int) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    rows = list(csv.DictReader((lab / "inventory.csv").read_text().splitlines()))
    first = min(ipaddress.ip_address(r["IP Address"]) for r in rows if r["IP Address"])
    start = ipaddress.ip_network(f"{first}/26", strict=False).network_address
    return [ipaddress.ip_network(f"{start + i * BLOCK}/26") for i in range(sites)]


def _write_site_inventory(lab: Path, prefix: ipaddress.IPv4Network | ipaddress.IPv6Network, out: Path) -> int:
    text = (lab / "inventory.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    keep = [r for r in rows if r["IP Address"] and ipaddress.ip_address(r["IP Address"]) in prefix]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(keep)
    out.write_text(buf.getvalue())
    return len(keep)


def _scan(lab: Path, profile: str, inventory: Path, out: Path, *extra: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    code = main(["-q", "scan", "--profile", str(lab / profile), "--inventory", str(inventory), "--no-history",
                 "--no-progress", "--out", str(out), *extra])
    return code, time.perf_counter() - t0


@contextlib.contextmanager
def _cluster(names: list[str], processes: bool = False) -> Iterator[Any]:
    from distributed import Nanny, Scheduler, SpecCluster, Worker

    # Threads (the default): every worker in this process. Processes (--processes): each worker
    # in its own interpreter (a Nanny), as on separate machines but for the two shared cores.
    cls = Nanny if processes else Worker
    spec = {f"w-{n}": {"cls": cls, "options": {"nthreads": 1, "resources": {f"site-{n}": 1},
                                                  "host": "127.0.0.1"}} for n in names}
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "port": 0, "dashboard": False}}
    with SpecCluster(workers=spec, scheduler=scheduler) as c:  # type: ignore[no-untyped-call]
        yield c


def run(sites: int, base: int, processes: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-sites-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        lab = _build(root / "lab", sites, base)
        build_s = time.perf_counter() - t0
        prefixes = _site_prefixes(lab, sites)
        names = [f"s{i:02d}" for i in range(sites)]
        tables = "".join(f'\n[sites.{n}]\nprefixes = ["{p}"]\n' for n, p in zip(names, prefixes, strict=True))
        (lab / "profile-sites.toml").write_text((lab / "profile-manual.toml").read_text() + tables)
        inventory = lab / "inventory.csv"
        results: dict[str, Any] = {"sites": sites, "build_s": round(build_s, 2),
                                   "workers": "processes" if processes else "threads"}
        with serving_subprocess(lab):
            code, single = _scan(lab, "profile-manual.toml", inventory, root / "single")
            results |= {"single_s": round(single, 2), "single_exit": code}
            with _cluster(names, processes) as c:
                code, dask = _scan(lab, "profile-sites.toml", inventory, root / "dask", "--dask", c.scheduler_address)
            results |= {"dask_s": round(dask, 2), "dask_exit": code}
            per_site: list[float] = []
            for n, p in zip(names, prefixes, strict=True):
                inv = root / f"inv-{n}.csv"
                _write_site_inventory(lab, p, inv)
                _, seconds = _scan(lab, "profile-manual.toml", inv, root / f"seq-{n}")
                per_site.append(seconds)
        same = _devices(root / "single") == _devices(root / "dask")
        results |= {
            "phones": len(json.loads((root / "single" / "report.json").read_bytes())["devices"]),
            "sequential_sum_s": round(sum(per_site), 2),
            "sequential_site_s": [round(s, 2) for s in per_site],
            "dask_equals_single": same,
            "node_delay_ms": {k: int(v * 1000) for k, v in DELAYS.items()},
        }
        return results


def _devices(out: Path) -> Any:
    return json.loads((out / "report.json").read_bytes())["devices"]


def main_bench() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sites", type=int, default=10)
    ap.add_argument("--base", type=int, default=24)
    ap.add_argument("--processes", action="store_true", help="each Dask worker in its own process")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    r = run(args.sites, args.base, args.processes)
    print(f"{r['sites']} sites, {r['phones']} phones, TFTP nodes delayed {r['node_delay_ms']} ms (lab built in "
          f"{r['build_s']} s)")
    print(f"  {'single machine':<28} {r['single_s']:>8.2f} s")
    print(f"  {'--dask, one worker per site':<28} {r['dask_s']:>8.2f} s   (report equal: {r['dask_equals_single']})")
    print(f"  {'sites one after another':<28} {r['sequential_sum_s']:>8.2f} s   (sum of {r['sites']} scans)")
    if args.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main_bench()
