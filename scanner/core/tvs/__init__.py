"""The TVS protocol, sans-IO: the message codec (``codec``). Submodules are imported explicitly."""
