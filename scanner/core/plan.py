"""What a collection asks for, as data (pure: no I/O).

The collector (``scanner.app.collect``) fetches exactly these files, and the analysis
(``scanner.app.assemble``) checks the manifest against them: a file that was planned and has no
manifest line was never collected (an interrupted run), which is evidence of nothing, never of
absence. One definition for both sides, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from scanner.core.inventory import Phone
from scanner.core.profile import Cluster, Profile

__all__ = ["CACHE_LIST", "CLUSTER_FILES", "FileSpec", "phone_file_keys", "phone_file_specs"]

CLUSTER_FILES = ("CTLFile.tlv", "ITLFile.tlv")
CACHE_LIST = "ConfigFileCacheList.txt"


@dataclass(frozen=True, slots=True)
class FileSpec:
    """A file to ask for, and the file a phone falls back to when the node has not got it."""

    primary: str
    fallback: str | None = None


def phone_file_specs(cluster: Cluster, phone: Phone) -> tuple[FileSpec, ...]:
    """The per-phone files fetched from each node of ``cluster``."""
    name = phone.name
    config = FileSpec(f"{name}.cnf.xml.sgn", f"{name}.cnf.xml")
    if cluster.name == "destination":
        return (config,)
    specs = [FileSpec(f"ITL{name}.tlv", "ITLFile.tlv"), config]
    if cluster.mixed:
        # In non-secure mode there is no CTL: asking every node for every phone's would only
        # collect "not found"; the cluster-level CTLFile.tlv fetch already shows it is absent.
        specs.insert(0, FileSpec(f"CTL{name}.tlv", "CTLFile.tlv"))
    return tuple(specs)


def phone_file_keys(profile: Profile, phone: Phone) -> Iterator[tuple[str, str, FileSpec]]:
    """``(cluster, node, spec)`` of every per-phone file planned for ``phone``."""
    for cluster in profile.clusters:
        specs = phone_file_specs(cluster, phone)
        for node in cluster.tftp:
            for spec in specs:
                yield cluster.name, node.name, spec
