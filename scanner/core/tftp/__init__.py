"""Sans-IO TFTP: the packet codec and the client and server state machines.

Nothing here imports asyncio or socket; ``scanner.net.tftp_io`` moves the bytes and the time.
"""

from __future__ import annotations

from scanner.core.tftp.client import NegotiatedOptions, Outcome, TftpReadClient, TftpResult, outcome_for_error
from scanner.core.tftp.packets import ErrorCode, Packet, decode, encode
from scanner.core.tftp.server import (
    Reject,
    Serve,
    ServerOutcome,
    ServerReadTransfer,
    ServerSettings,
    ServerTransferResult,
    decide,
)

__all__ = [
    "ErrorCode",
    "NegotiatedOptions",
    "Outcome",
    "Packet",
    "Reject",
    "Serve",
    "ServerOutcome",
    "ServerReadTransfer",
    "ServerSettings",
    "ServerTransferResult",
    "TftpReadClient",
    "TftpResult",
    "decide",
    "decode",
    "encode",
    "outcome_for_error",
]
