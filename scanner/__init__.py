"""trustscan: pre-migration audit of Cisco IP phone trust lists between secure CUCM clusters."""

from __future__ import annotations

__version__ = "0.1.0"
