"""The only I/O in trustscan: thin asyncio adapters around the sans-IO cores.

Submodules are imported explicitly (``from scanner.net.tftp_io import tftp_fetch``); this package
imports nothing itself, so that loading one adapter does not pull in the others' dependencies.
"""
