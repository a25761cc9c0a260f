"""The core: parsing, verification, protocol state and readiness, with no I/O.

Nothing here imports asyncio, aiohttp or socket, and nothing opens a file (``tests/test_layers.py``
holds the core to that): the bytes come in as arguments and the results go out as values, so
every rule is tested without sockets. The one exception is ``policy.default_policy``, which reads
the policy file shipped inside the package (``scanner/data/policy.toml``), never a user's path.
Submodules are imported explicitly; this package imports nothing itself.
"""
