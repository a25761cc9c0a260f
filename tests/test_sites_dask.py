"""Sites on a real Dask cluster (loopback): one served lab, three sites, workers in this process
(and, where a worker must die or run another version, in a second process).

* the merged report of ``scan --dask`` equals a single-machine scan of the same lab (``run``
  aside);
* a site whose only worker is killed mid-shard: its phones are UNKNOWN with SITE_UNAVAILABLE
  naming the site, no phone is missing, and ``--resume`` with a worker back gives the reference;
* TLS between client, scheduler and workers with a throwaway CA;
* a scheduler that does not answer: exit 64 naming it, nothing collected; a worker of another
  trustscan version: refused, both versions named;
* politeness: what each TFTP node saw (the lab's counters) stays within the scan's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from distributed import Scheduler, SpecCluster, Worker
from distributed.security import Security

from scanner import __version__
from scanner.cli.demo import serving_subprocess
from scanner.cli.main import main
from scanner.core.findings import Code
from scanner.lab.serve import LabServer

BASE = "20"  # this module's lab: 127.20.*, 127.30.*, 127.110.*
PHONES = "60"
# Three sites: two by device pool, one by address prefix (the lab's phones 1-7, all of DP-HQ);
# the other DP-HQ phones match no site and stay with the coordinator.
SITES = """
[sites.east]
device_pools = ["DP-EAST"]

[sites.west]
device_pools = ["DP-WEST"]

[sites.hq-low]
prefixes = ["127.110.0.0/29"]
"""
SITE_NAMES = ("east", "west", "hq-low")
SITE_PHONES = {"east": 15, "west": 9, "hq-low": 7}

pytestmark = pytest.mark.slow


def _report(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads((out / "report.json").read_bytes())
    doc.pop("run")
    return doc


def _scan(lab: Path, profile: str, out: Path, *extra: str) -> int:
    return main(["scan", "--profile", str(lab / profile), "--inventory", str(lab / "inventory.csv"),
                 "--no-history", "--no-progress", "--out", str(out), *extra])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("sites")
    lab = root / "lab"
    assert main(["lab", "build", "--out", str(lab), "--phones", PHONES, "--scenario", "mixed", "--seed", "5",
                 "--base", BASE]) == 0
    manual = (lab / "profile-manual.toml").read_text()
    (lab / "profile-sites.toml").write_text(manual + SITES)
    # Slow enough that a worker can be killed mid-shard (the answers are the same, only later).
    (lab / "profile-slow.toml").write_text(manual + SITES + "\n[limits]\nper_node_rate = 30\nper_node_burst = 3\n")
    with serving_subprocess(lab):
        ref = root / "ref"
        _scan(lab, "profile-manual.toml", ref)
        yield lab, _report(ref)


@contextlib.contextmanager
def cluster(workers: dict[str, str], security: Security | None = None) -> Iterator[SpecCluster]:
    """A scheduler and one in-process worker per entry (worker name -> site) on loopback."""
    protocol = "tls://" if security is not None else "tcp://"
    sec: dict[str, Any] = {} if security is None else {"security": security}
    spec = {
        name: {"cls": Worker, "options": {"nthreads": 1, "resources": {f"site-{site}": 1}, "host": "127.0.0.1",
                                          **sec}}
        for name, site in workers.items()
    }
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "port": 0, "dashboard": False,
                                               "protocol": protocol, **sec}}
    with SpecCluster(workers=spec, scheduler=scheduler, security=security) as c:
        c.scale(len(spec))
        yield c


def _every_site_worker() -> dict[str, str]:
    return {f"w-{site}": site for site in SITE_NAMES}


def _devices(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in report["devices"]}


# --- TLS: a throwaway CA, one certificate for everyone (loopback) --------------------------------


def _tls_files(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for 127.0.0.1 (server and client use), as PEM files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trustscan test Dask CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dask.test")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = d / "ca.pem", d / "cert.pem", d / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_three_sites_over_tls_give_the_single_machine_report(
    world: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    lab, reference = world
    ca, cert, key = _tls_files(tmp_path)
    security = Security(tls_ca_file=str(ca), tls_client_cert=str(cert), tls_client_key=str(key),
                        tls_scheduler_cert=str(cert), tls_scheduler_key=str(key), tls_worker_cert=str(cert),
                        tls_worker_key=str(key), require_encryption=True)
    with cluster(_every_site_worker(), security) as c:
        address = c.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        # Without the client's files the scheduler is not reached: nothing is collected.
        assert _scan(lab, "profile-sites.toml", tmp_path / "plain", "--dask", address,
                     "--dask-connect-timeout", "3") == 64
        assert not (tmp_path / "plain" / "evidence" / "manifest.jsonl").exists()
        code = _scan(lab, "profile-sites.toml", tmp_path / "out", "--dask", address, "--dask-tls-ca", str(ca),
                     "--dask-tls-cert", str(cert), "--dask-tls-key", str(key))
    assert code == 1  # the mixed lab is NO_GO, as on one machine
    got = _report(tmp_path / "out")
    assert got == reference
    record = orjson.loads((tmp_path / "out" / "evidence" / "sites.json").read_bytes())
    assert {s["site"] for s in record["shards"]} == set(SITE_NAMES)
    assert all(s["state"] == "done" for s in record["shards"])
    assert record["central_phones"] == int(PHONES) - sum(SITE_PHONES.values())
    assert record["phones"] == SITE_PHONES


# --- faults ----------------------------------------------------------------------------------


@contextlib.contextmanager
def worker_process(address: str, site: str, tmp: Path, version: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``dask worker ADDR --resources site-SITE=1`` in a second process (no nanny: killed, it stays
    dead), its temporary files in ``tmp``; ``version`` pretends another trustscan version."""
    code = "import sys, scanner\n"
    if version is not None:
        code += f"scanner.__version__ = {version!r}\n"
    code += "from distributed.cli.dask_worker import main\nsys.argv[0] = 'dask-worker'\nmain()\n"
    tmp.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, address, "--resources", f"site-{site}=1", "--nworkers", "1", "--nthreads", "1",
         "--no-nanny", "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(tmp)],
        env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def _wait_for_workers(address: str, n: int) -> None:
    from distributed import Client

    with Client(address, timeout=30, set_as_default=False) as client:
        client.wait_for_workers(n, timeout=60)


def test_a_site_whose_workers_die_mid_shard_is_retried_then_unknown_then_resumed(
    world: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """Site west has two workers. The one running its shard is killed: Dask runs the shard again
    on the other; that one is killed too: the site has no worker left, its phones are UNKNOWN
    (SITE_UNAVAILABLE), none is dropped; --resume later gives the reference report."""
    lab, reference = world
    out = tmp_path / "out"
    dirs = [tmp_path / "west-1", tmp_path / "west-2"]
    with cluster({"w-east": "east", "w-hq-low": "hq-low"}) as c:
        address = c.scheduler_address
        with worker_process(address, "west", dirs[0]) as w1, worker_process(address, "west", dirs[1]) as w2:
            _wait_for_workers(address, 4)
            procs = dict(zip(dirs, (w1, w2), strict=True))
            started_on: list[Path] = []

            # A shard's temporary directory is its first act (its collector then takes seconds on
            # this lab: the stalled node and page): the worker holding one is mid-shard.
            def kill_mid_shard() -> None:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and len(started_on) < 2:
                    for d, proc in procs.items():
                        if d not in started_on and list(d.glob("trustscan-shard-west-*")):
                            proc.send_signal(signal.SIGKILL)
                            started_on.append(d)
                    time.sleep(0.01)

            killer = threading.Thread(target=kill_mid_shard)
            killer.start()
            code = _scan(lab, "profile-slow.toml", out, "--dask", address, "--dask-site-grace", "1")
            killer.join()
        assert len(started_on) == 2  # the shard began on one worker, then again on the other
        assert code == 1  # NO_GO as before (other sites' phones are NOT_READY); never GO
        got = _devices(_report(out))
        ref = _devices(reference)
        assert set(got) == set(ref)  # no phone dropped
        west_phones = {row["Device Name"] for row in csv.DictReader((lab / "inventory.csv").read_text().splitlines())
                       if row["Device Pool"] == "DP-WEST"}
        assert len(west_phones) == SITE_PHONES["west"]
        for name, d in got.items():
            if name in west_phones:
                assert d["readiness"] == "UNKNOWN", (name, d["readiness"])
                text = orjson.dumps(d).decode()
                assert Code.SITE_UNAVAILABLE.value in text and "site west" in text, text[:2000]
            else:
                assert d["readiness"] == ref[name]["readiness"], name
        record = orjson.loads((out / "evidence" / "sites.json").read_bytes())
        assert [s["state"] for s in record["shards"] if s["site"] == "west"] == ["failed"]

    # Later, with a worker for every site: --resume asks only what is missing, and the report is
    # the single machine's.
    with cluster(_every_site_worker()) as c:
        code = main(["scan", "--profile", str(lab / "profile-slow.toml"), "--inventory", str(lab / "inventory.csv"),
                     "--no-history", "--no-progress", "--resume", str(out), "--dask", c.scheduler_address])
    assert code == 1
    assert _report(out) == reference


def test_scheduler_unreachable_exits_64_naming_it(
    world: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, _ = world
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    code = _scan(lab, "profile-sites.toml", tmp_path / "out", "--dask", address, "--dask-connect-timeout", "1")
    assert code == 64
    assert f"cannot reach the Dask scheduler at {address}" in capsys.readouterr().err
    assert not (tmp_path / "out" / "evidence" / "manifest.jsonl").exists()


def test_a_worker_of_another_version_is_refused_naming_both(
    world: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, _ = world
    with cluster({"w-east": "east"}) as c, worker_process(c.scheduler_address, "west", tmp_path / "w",
                                                           version="0.0.1-other"):
        _wait_for_workers(c.scheduler_address, 2)
        code = _scan(lab, "profile-sites.toml", tmp_path / "out", "--dask", c.scheduler_address)
    assert code == 64
    err = capsys.readouterr().err
    assert "trustscan 0.0.1-other" in err and f"coordinator {__version__}" in err, err
    assert not (tmp_path / "out" / "evidence" / "manifest.jsonl").exists()


def test_two_sites_claiming_a_phone_is_refused_before_anything_is_sent(
    world: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, _ = world
    (lab / "profile-overlap.toml").write_text((lab / "profile-sites.toml").read_text()
                                              + '\n[sites.hq]\ndevice_pools = ["DP-HQ"]\n')
    code = _scan(lab, "profile-overlap.toml", tmp_path / "out", "--dask", "tcp://127.0.0.1:9")
    assert code == 64
    err = capsys.readouterr().err
    assert "sites.hq-low and sites.hq" in err and "matched by more than one site" in err, err
    assert not (tmp_path / "out" / "evidence").exists()


# --- politeness: counted where a node feels it ------------------------------------------------


@contextlib.contextmanager
def served_in_thread(lab: Path) -> Iterator[LabServer]:
    """The lab served by a loop in a thread of this process, so its request counters can be read."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = LabServer(lab)
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(60)
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_each_node_sees_no_more_than_the_scan_limits(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    assert main(["lab", "build", "--out", str(lab), "--phones", "24", "--scenario", "healthy", "--seed", "5",
                 "--base", "22"]) == 0
    concurrency, rate, burst = 6, 9, 3
    # Three sites of about a third of the phones each (by address), so that no shard's share of
    # the limits is left to run alone for long.
    (lab / "profile-sites.toml").write_text(
        (lab / "profile-manual.toml").read_text()
        + '\n[sites.low]\nprefixes = ["127.112.0.0/29"]\n\n[sites.mid]\nprefixes = ["127.112.0.8/29"]\n'
        + '\n[sites.high]\nprefixes = ["127.112.0.16/28"]\n'
        + f"\n[limits]\nper_node_concurrency = {concurrency}\nper_node_rate = {rate}\nper_node_burst = {burst}\n"
    )
    with served_in_thread(lab) as server, cluster({"w-low": "low", "w-mid": "mid", "w-high": "high"}) as c:
        code = _scan(lab, "profile-sites.toml", tmp_path / "out", "--dask", c.scheduler_address)
        counts = dict(server.node_requests.by_node)
    assert code == 0  # healthy: GO
    record = orjson.loads((tmp_path / "out" / "evidence" / "sites.json").read_bytes())
    assert record["parallel_shards"] == 3 and record["shard_limits"] == {
        "per_node_concurrency": 2, "per_node_rate": 3.0, "per_node_burst": 1}
    assert set(counts) == {"127.22.0.1", "127.22.0.2", "127.32.0.1", "127.32.0.2"}
    # The lab counts arrivals, not the collector's starts: three workers, the coordinator and the
    # lab share this process's two cores, so a request may arrive up to ~0.1 s later than it was
    # released; the bound allows for that much (JITTER), and a two-second window keeps it small
    # beside what the buckets allow. Without the split, three shards at the full limits would
    # each be allowed burst + 2 * rate there: about three times the bound.
    window, jitter = 2.0, 0.1
    bound = burst + rate * (window + jitter)
    for node, seen in counts.items():
        assert len(seen.starts) > bound, node  # enough requests for the limits to matter
        assert seen.max_in_flight <= concurrency, (node, seen.max_in_flight)
        assert seen.max_per_window(window) <= bound, (node, seen.max_per_window(window), bound)


def test_dry_run_names_a_site_without_a_worker(
    world: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, _ = world
    with cluster({"w-east": "east"}) as c:
        code = main(["collect", "--profile", str(lab / "profile-sites.toml"), "--inventory",
                     str(lab / "inventory.csv"), "--out", str(tmp_path / "ev"), "--dry-run",
                     "--dask", c.scheduler_address])
    assert code == 0
    err = capsys.readouterr().err
    assert "site east: 15 phones in 1 shards; 1 worker" in err, err
    assert "site west: 9 phones in 1 shards; NO worker with resource site-west" in err, err
    assert "coordinator: 29 phones no site matches" in err, err
