"""The one exception the lab raises for bad input: a scenario, a lab directory, an address, a port."""

from __future__ import annotations


class LabError(Exception):
    """A usage problem with the lab. The message names the key, path or address at fault."""
