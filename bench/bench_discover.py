"""Benchmark discovery (``scanner.app.discover``): what AXL + RisPort70 cost per phone, and how
long the pacing makes a real cluster take.

Run by hand: ``python bench/bench_discover.py [--sizes 2000,10000,40000] [--per-minute 15] [--json]``.

The lab's AXL and RisPort70 (``scanner.lab.cucm_api``) are called in-process, without sockets,
and time is virtual: each sleep the client makes advances the clock instead of waiting, and each
request costs ``--rtt`` seconds of it. So two figures come out side by side:

* **wall at the cluster's pace**: the virtual time a real publisher would take at
  ``risport_per_minute`` (CUCM's default 15 a minute): one RisPort70 batch of 1,000 names per
  pacing interval, so ``ceil(N/1000) - 1`` intervals plus the round trips; phones/s follows;
* **CPU per phone**: process time of the client (building envelopes, parsing answers, merging),
  and, measured apart, of the lab's answers, so that the client's own cost is visible.

A figure for the served path (HTTPS to ``lab serve``) is the same pacing plus real round trips;
the pacing dominates from the second batch on.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time
from collections.abc import Mapping
from typing import Any

import orjson

from scanner.app.discover import discover_cluster
from scanner.core.cucm.settings import AxlSettings
from scanner.lab.cucm_api import CucmApi, LabDevice, LabNode
from scanner.net.soap_client import SoapReply

PASSWORD = "bench-password"
NODES = (LabNode("127.5.0.1", publisher=True, tftp=True, tvs=True), LabNode("127.5.0.2", tftp=True, tvs=True))


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class Poster:
    def __init__(self, api: CucmApi, clock: VirtualClock, rtt: float) -> None:
        self.api, self.clock, self.rtt = api, clock, rtt
        self.auth = "Basic " + base64.b64encode(f"bench:{PASSWORD}".encode()).decode()
        self.lab_cpu = 0.0

    async def post(self, path: str, body: bytes, soap_action: str) -> SoapReply:
        self.clock.now += self.rtt
        headers: Mapping[str, str] = {"Authorization": self.auth, "SOAPAction": soap_action}
        t = time.process_time()
        status, data = self.api.answer(path, headers, body)
        self.lab_cpu += time.process_time() - t
        return SoapReply(status, data, None)


def _devices(n: int, failover: float) -> list[LabDevice]:
    every = round(1 / failover) if failover > 0 else 0
    return [
        LabDevice(
            f"SEP{0x0B0000000000 + i:012X}",
            description=f"bench phone {i}",
            device_pool=f"DP-{i % 7}",
            node=NODES[i % 2].name,
            addresses=(f"127.{6 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}",),
            timestamp=1_764_000_000 + i,
            status="UnRegistered" if i % 97 == 5 else "Registered",
            # Listed by two nodes (an older UnRegistered entry): two of RisPort70's 1,000 entries.
            failed_over_from=NODES[(i + 1) % 2].name if every and i % every == 3 else None,
        )
        for i in range(n)
    ]


def run_one(n: int, per_minute: float, rtt: float, failover: float) -> dict[str, Any]:
    clock = VirtualClock()
    api = CucmApi("source", _devices(n, failover), NODES, {"bench": PASSWORD}, clock=clock, per_minute=int(per_minute))
    poster = Poster(api, clock, rtt)
    settings = AxlSettings(host="127.5.0.1", user="bench", password_env="X", risport_per_minute=per_minute)
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    found = asyncio.run(discover_cluster("source", settings, poster, sleep=clock.sleep, clock=clock))
    cpu = time.process_time() - t_cpu
    real = time.perf_counter() - t_wall
    client_cpu = cpu - poster.lab_cpu
    assert len(found.discovery.phones) == n, (len(found.discovery.phones), n)
    unregistered = sum(1 for i in range(n) if i % 97 == 5)
    assert found.discovery.registered == n - unregistered
    return {
        "phones": n,
        "axl_calls": found.axl_calls,
        "risport_calls": found.risport_calls,
        "rate_refusals": found.rate_refusals,
        "paced_wall_s": round(clock.now, 1),
        "paced_phones_per_s": round(n / clock.now, 1) if clock.now else None,
        "client_cpu_s": round(client_cpu, 3),
        "client_cpu_us_per_phone": round(client_cpu / n * 1e6, 1),
        "lab_cpu_s": round(poster.lab_cpu, 3),
        "real_s": round(real, 2),
        "risport_max_per_minute_seen": api.risport_per_window(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,10000,40000", help="comma-separated fleet sizes")
    ap.add_argument("--per-minute", type=float, default=15.0, help="RisPort70 requests a minute (CUCM default 15)")
    ap.add_argument("--rtt", type=float, default=0.3, help="virtual seconds per request (a WAN round trip and the node's work)")
    ap.add_argument("--failover", type=float, default=0.01,
                    help="share of phones listed by two nodes (each takes two of an answer's 1,000 entries)")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args()
    rows = [run_one(int(s), args.per_minute, args.rtt, args.failover) for s in args.sizes.split(",") if s.strip()]
    head = f"{'phones':>7} {'AXL':>4} {'RisPort':>7} {'refused':>7} {'paced wall':>10} {'phones/s':>9} {'client CPU':>10} {'us/phone':>9} {'lab CPU':>8} {'max/min':>7}"
    print(f"discovery at risport_per_minute={args.per_minute:g}, rtt {args.rtt:g} s, "
          f"{args.failover:.0%} failed over (virtual time)")
    print(head)
    for r in rows:
        print(f"{r['phones']:>7} {r['axl_calls']:>4} {r['risport_calls']:>7} {r['rate_refusals']:>7} "
              f"{r['paced_wall_s']:>9.1f}s {r['paced_phones_per_s']:>9} {r['client_cpu_s']:>9.2f}s "
              f"{r['client_cpu_us_per_phone']:>9} {r['lab_cpu_s']:>7.2f}s {r['risport_max_per_minute_seen']:>7}")
    if args.json:
        print(orjson.dumps({"per_minute": args.per_minute, "rtt": args.rtt, "failover": args.failover,
                            "rows": rows}).decode())


if __name__ == "__main__":
    main()
