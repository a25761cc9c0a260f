"""Thin asyncio adapters around the sans-IO cores: TFTP, HTTP, the phones' pages, the TVS probe.

Submodules are imported explicitly (``from scanner.net.tftp_io import tftp_fetch``); this package
imports nothing itself, so that loading one adapter does not pull in the others' dependencies.
"""
