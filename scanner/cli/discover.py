"""``trustscan discover``: the phones, addresses and nodes a profile's AXL tables find, written as
an inventory CSV for review; and the discovery step ``scan`` and ``collect`` run before they
collect (:func:`fleet_for_run`).

The one place that reads AXL passwords: from the environment variable or the file the profile
names, at the moment the discovery starts. The password then lives in memory only: it is in no
argument, message, evidence file, report or history row (tests grep every output for it).

Exit codes: 0 written, 64 usage or bad input (a bad profile or inventory; a cluster that refuses
the user, whose certificate is not trusted or that cannot be reached: nothing else is contacted
then), 70 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.cli import runner
from scanner.cli.exitcodes import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from scanner.cli.output import Stop, err, internal_error, json_line, note
from scanner.core.errors import ParseError

if TYPE_CHECKING:
    from scanner.app.discover import FleetDiscovery
    from scanner.core.inventory import Inventory
    from scanner.core.profile import Profile

# The first line of a password file is the password; a file larger than this is not one.
MAX_PASSWORD_FILE = 4096


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "discover",
        help="list a cluster's phones, addresses and nodes from AXL and RisPort70",
        description="Ask each cluster the profile gives an [clusters.<c>.axl] table for its nodes (which run "
        "TFTP and TVS) and the source for its phones (AXL) and their addresses (RisPort70, paced at "
        "risport_per_minute), merge an optional CSV, and write the inventory for review. Read-only. "
        "Exit codes: 0 written, 64 usage, bad input or a cluster that cannot be asked, 70 internal error.",
    )
    p.add_argument("--profile", required=True, metavar="P", help="scan profile (TOML) with [clusters.<c>.axl]")
    p.add_argument("--inventory", metavar="CSV", help="a phone export that fills and overrides what the cluster says")
    p.add_argument("--out", required=True, metavar="CSV", help="where the inventory goes (Device Name, ..., IP Address, Note)")
    p.add_argument("--json", action="store_true", help="print the discovery's summary as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    from scanner.app.discover import uses_discovery
    from scanner.core.inventory import inventory_csv
    from scanner.store.atomicfile import write_atomic
    from scanner.store.profiles import load_profile

    try:
        try:
            profile = load_profile(args.profile)
        except (ParseError, FileNotFoundError) as exc:
            raise Stop(EXIT_USAGE, f"bad profile: {exc}") from None
        if not uses_discovery(profile):
            raise Stop(EXIT_USAGE, f"{args.profile}: no [clusters.source.axl] or [clusters.destination.axl]: nothing to discover")
        csv, meta = read_csv(args.inventory)
        fleet = fleet_for_run(profile, csv, meta)
        assert fleet is not None
        out = Path(args.out)
        try:
            write_atomic(out, inventory_csv(fleet.inventory.phones))
        except OSError as exc:
            raise Stop(EXIT_USAGE, f"cannot write {out}: {exc.strerror or exc}") from None
    except Stop as stop:
        err(str(stop))
        return stop.code
    except KeyboardInterrupt:
        err("interrupted: nothing written")
        return EXIT_INTERRUPTED
    except Exception:  # the one boundary where anything unexpected becomes exit 70
        return internal_error()
    if args.json:
        json_line(summary(fleet) | {"inventory": str(out)})
    else:
        print(f"inventory: {out} ({len(fleet.inventory.phones)} phones)")
    return EXIT_OK


def read_inventory(path: str | None, prog: str = "trustscan") -> tuple[Inventory | None, str | None]:
    """The inventory and the SHA-256 of its bytes (None, None without one); the rows it refused
    are printed as warnings, and an inventory without a usable phone is refused (``Stop``, 64).
    ``collect`` and ``discover`` read theirs so."""
    from scanner.core.inventory import parse_inventory

    if not path:
        return None, None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise Stop(EXIT_USAGE, f"cannot read inventory: {exc.strerror or exc}") from None
    try:
        inventory = parse_inventory(data, path=path)
    except ParseError as exc:
        raise Stop(EXIT_USAGE, f"bad inventory: {exc}") from None
    for issue in inventory.issues:
        err(f"warning: {issue}", prog)
    if not inventory.phones:
        raise Stop(EXIT_USAGE, "the inventory has no usable phone")
    return inventory, hashlib.sha256(data).hexdigest()


def read_csv(path: str | None) -> tuple[Inventory | None, dict[str, Any] | None]:
    """The optional CSV and what the discovery record says of it."""
    inventory, sha = read_inventory(path)
    if inventory is None:
        return None, None
    return inventory, {"path": path, "sha256": sha, "phones": len(inventory.phones)}


def read_passwords(profile: Profile) -> dict[str, str]:
    """Each AXL cluster's password, from where the profile says; ``Stop`` (64) naming the cluster
    and the variable or file when it is not there. The password itself is never in a message."""
    out: dict[str, str] = {}
    for c in profile.clusters:
        a = c.axl
        if a is None:
            continue
        if a.password_env is not None:
            value = os.environ.get(a.password_env)
            if not value:
                raise Stop(EXIT_USAGE, f"cluster {c.name}: the environment variable {a.password_env} "
                           "(clusters." + c.name + ".axl.password_env) is not set or empty")
        else:
            assert a.password_file is not None
            try:
                with a.password_file.open("rb") as f:
                    raw = f.read(MAX_PASSWORD_FILE + 1)
            except OSError as exc:
                raise Stop(EXIT_USAGE, f"cluster {c.name}: cannot read the password file {a.password_file}: "
                           f"{exc.strerror or exc}") from None
            if len(raw) > MAX_PASSWORD_FILE:
                raise Stop(EXIT_USAGE, f"cluster {c.name}: {a.password_file} is larger than a password file can be")
            value = raw.decode("utf-8", "replace").splitlines()[0].strip() if raw.strip() else ""
            if not value:
                raise Stop(EXIT_USAGE, f"cluster {c.name}: the password file {a.password_file} is empty")
        if not a.verify:
            err(f"warning: cluster {c.name}: verify = false: the certificate of {a.where()} is not checked, "
                "so the AXL password goes to whoever answers there")
        out[c.name] = value
    return out


def fleet_for_run(
    profile: Profile,
    csv: Inventory | None,
    csv_meta: dict[str, Any] | None,
    *,
    evidence: Path | None = None,
) -> FleetDiscovery | None:
    """The fleet a run judges when the profile has AXL (None when it has none): read back from
    ``evidence``'s discovery record when there is one (``--from``, ``--resume``: the same phones
    and nodes as the collection), else discovered now. ``Stop`` (64) when it cannot be had."""
    from scanner.app.discover import DiscoveryError, discover_fleet, fleet_from_record, uses_discovery
    from scanner.store.evidence import EvidenceReader

    if not uses_discovery(profile):
        return None
    if evidence is not None:
        try:
            record = EvidenceReader(evidence).discovery()
        except (ParseError, FileNotFoundError) as exc:
            raise Stop(EXIT_USAGE, f"cannot read the discovery record: {exc}") from None
        if record is None:
            raise Stop(EXIT_USAGE, f"{evidence} holds no discovery record (discovery.json), but the profile "
                       "has AXL: analyse it with the profile it was collected with")
        try:
            return fleet_from_record(profile, record)
        except (ParseError, DiscoveryError) as exc:
            raise Stop(EXIT_USAGE, f"{evidence}: {exc}") from None
    passwords = read_passwords(profile)
    try:
        fleet = runner.run(discover_fleet(profile, passwords, csv, csv_meta))
    except DiscoveryError as exc:
        raise Stop(EXIT_USAGE, f"discovery failed: {exc}") from None
    finally:
        passwords.clear()
    for w in fleet.warnings:
        err(f"warning: discovery: {w}")
    for name, c in fleet.record["clusters"].items():
        s = fleet.profile.source if name == "source" else fleet.profile.destination
        phones = f"{c['phones']} phones ({c['registered']} with an address, {c['no_address']} without), " if name == "source" else ""
        note(f"discovered cluster {name} at {c['publisher']}: {phones}{len(s.tftp)} TFTP and {len(s.tvs)} TVS "
            f"nodes; AXL {c['axl_version']}, {c['axl_calls']} AXL and {c['risport_calls']} RisPort70 calls in {c['seconds']:.1f} s")
    return fleet


def summary(fleet: FleetDiscovery) -> dict[str, Any]:
    """The discovery without its phone list: for ``--json`` and the collection summary."""
    return {k: v for k, v in fleet.record.items() if k != "phones"} | {"phones": len(fleet.inventory.phones)}
