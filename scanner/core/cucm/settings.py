"""How to reach one cluster's AXL and RisPort70: the profile's ``[clusters.<name>.axl]`` table.

The password is never in the profile text: ``password_env`` names an environment variable, or
``password_file`` a file holding it (its first line). Only ``scanner.cli`` reads either, at the
moment it starts a discovery; the password then lives in memory and is never written anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scanner.core.cucm.risport import DEFAULT_QUERIES_PER_MINUTE

__all__ = ["AxlSettings"]

DEFAULT_PORT = 8443
# A real publisher answers a page of 1,000 rows in a second or two; a RisPort70 query of 1,000
# phones over every node in a few. 60 s leaves room for a busy cluster without hanging a scan.
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class AxlSettings:
    host: str  # the publisher: AXL answers there, and so does RisPort70 for the whole cluster
    user: str
    port: int = DEFAULT_PORT
    password_env: str | None = None
    password_file: Path | None = None
    ca_bundle: Path | None = None  # PEM file of the CA(s) that signed the cluster's tomcat certificate
    verify: bool = True  # false: no certificate check (said as a warning at every run)
    version: str | None = None  # AXL schema version to ask first; None: DEFAULT_VERSION, then negotiated
    risport_per_minute: float = DEFAULT_QUERIES_PER_MINUTE
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env and password_file")
        if not 0 < self.risport_per_minute <= 600:
            raise ValueError(f"risport_per_minute {self.risport_per_minute} outside (0, 600]")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} outside 1..65535")
        if not 0 < self.timeout <= 600:
            raise ValueError(f"timeout {self.timeout} outside (0, 600]")

    def where(self) -> str:
        return f"{self.host}:{self.port}" if ":" not in self.host else f"[{self.host}]:{self.port}"
