"""The lab's TVS (Trust Verification Service): answers verify and query requests from a cluster's
trust stores, sans-IO (``TvsResponder``, ``TvsSession``), and the asyncio adapter the TLS
listener of ``lab serve`` runs for every connection (``serve_session``).

What it knows: the certificates of the cluster's trust stores as the lab wrote them
(``trust/<cluster>/<store>/*.pem``, ``scanner.lab.build._write_trust_stores``), each store giving
its certificates one role (``STORE_ROLES``):

* ``Phone-SAST-trust`` -> SAST (0): spec migration-readiness.md §1 ("a cert in Phone-SAST-trust
  comes back with role SAST") and trust-files.md §2.4 (an upload to Phone-SAST-trust came back
  as ``{role : 0}``);
* ``CallManager-trust`` -> TFTP (3): the seed's TVS log shows a certificate uploaded to both
  stores found with ``{rolecount : 2} {role : 0} {role : 3}``; 0 is Phone-SAST-trust's, so 3 is
  CallManager-trust's. Never SAST: a certificate only there is not vouched for as a signer.

A certificate in several stores gets every store's role, in ascending order (the seed's log
order). Nothing else is known: the cluster's own certificates are not in its trust stores, and
the phone asks TVS about the other cluster's signers, which is what the stores hold.

Requests (codec: ``scanner.core.tvs.codec``):

* **verify request (1)**: device name and a whole DER certificate (tvsd, usecallmanagernz). Looked
  up by its exact bytes. Answer: verify response (2), status valid with roles and TTL, or status
  invalid alone.
* **query request (3)**: what the seed's phone sends: device name, subject, issuer, serial of the
  signer it read from the new CTL/ITL. Looked up as Cisco's TVS does, by serial and issuer (its
  "Unique MAP ID" is serial hex + issuer string; the issuer is compared as a name, attribute by
  attribute, through ``scanner.core.verify.TrustStore.find``, since producers write names
  differently); the subject is not part of the key. A query that carries a DER certificate
  (tag 2) instead is looked up by its bytes. Answer: query response (4), status valid with the
  certificate, roles and TTL (the seed's 1,480-byte answer), or status invalid alone.

A request that cannot name a certificate (no serial or no issuer, no certificate) is answered
status invalid: it is well framed, so the phone gets an answer for its session id. A stream that
cannot be framed (another protocol byte or version, a command outside 1-4, an element running past
its body, a length over ``MAX_REQUEST_BODY``), a response command sent to the server, or more than
``MAX_REQUESTS`` requests on one connection close the connection: after a bad header nothing tells
where the next message starts (``TvsSession.error`` says why, with the stream offset).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scanner.core.errors import ParseError
from scanner.core.trustlist import Role
from scanner.core.tvs.codec import (
    DEFAULT_TTL,
    RESPONSE_RESERVED,
    Command,
    Framer,
    Message,
    encode,
    query_response,
    verify_response,
)
from scanner.core.verify import TrustStore, name_key
from scanner.store.trust_stores import load_trust_store

__all__ = [
    "MAX_REQUESTS",
    "MAX_REQUEST_BODY",
    "READ_TIMEOUT",
    "SESSION_TIMEOUT",
    "STORE_ROLES",
    "Lookup",
    "TvsResponder",
    "TvsSession",
    "load_responder",
    "serve_session",
    "stores_from_certs",
]

STORE_ROLES: Mapping[str, Role] = {"Phone-SAST-trust": Role.SAST, "CallManager-trust": Role.TFTP}
# A request carries one certificate at most: the seed's is 1,451 bytes, a 4096-bit RSA certificate
# with long names stays under 3 KB; with device name, subject and issuer 16 KiB is ample, and a
# client cannot make the server buffer the 64 KiB the length field allows.
MAX_REQUEST_BODY = 16 * 1024
# A phone asks about the signers of what it just downloaded (CTL, ITL, config): a few requests
# per connection; more is not a phone.
MAX_REQUESTS = 32
# An idle connection is closed after this long (what the listener did before it spoke TVS; a
# phone sends its request right after the handshake).
READ_TIMEOUT = 10.0
# A whole connection: the seed's phone had its answer 4 ms after sending its query; a client
# trickling bytes inside READ_TIMEOUT must not hold a connection (and a descriptor) for ever.
SESSION_TIMEOUT = 60.0
READ_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Lookup:
    """One answered request, for tests and traces: what was asked and what was found."""

    command: Command
    session_id: int
    device: str | None
    certificate: bytes | None  # the DER found (None: unknown)
    roles: tuple[int, ...]


class TvsResponder:
    """A cluster's TVS: its trust stores, by store name. One per cluster, shared by its
    connections; ``session()`` gives the per-connection state. Pure: no I/O."""

    def __init__(
        self,
        stores: Mapping[str, TrustStore],
        *,
        ttl: int = DEFAULT_TTL,
        reserved: int = RESPONSE_RESERVED,
        max_body: int = MAX_REQUEST_BODY,
        max_requests: int = MAX_REQUESTS,
    ) -> None:
        unknown = sorted(set(stores) - set(STORE_ROLES))
        if unknown:
            raise ValueError(
                f"no TVS role for trust store(s) {', '.join(unknown)} (known: {', '.join(STORE_ROLES)})"
            )
        # Phone-SAST-trust first: when a serial and issuer match several certificates, the one
        # TVS would vouch for as a signer is the one returned.
        order = sorted(stores, key=list(STORE_ROLES).index)
        self.stores: tuple[tuple[TrustStore, Role], ...] = tuple((stores[n], STORE_ROLES[n]) for n in order)
        self.ttl = ttl
        self.reserved = reserved
        self.max_body = max_body
        self.max_requests = max_requests

    def roles_of(self, der: bytes) -> tuple[int, ...]:
        """The roles TVS gives a certificate (ascending); () when no store holds it."""
        return tuple(sorted({int(role) for store, role in self.stores if store.contains(der)}))

    def find(self, serial: bytes | None, issuer: str | None) -> bytes | None:
        """The certificate a query names by serial and issuer, as TVS keys them; None if unknown.
        Both are needed (Cisco's key is serial + issuer): an issuer with no ``key=value``
        attribute names nothing."""
        if not serial or not name_key(issuer):
            return None
        # Trust files store the serial's magnitude; a phone that sent DER's leading zero means
        # the same number.
        magnitude = serial.lstrip(b"\x00") or b"\x00"
        for store, _role in self.stores:
            found = store.find(magnitude, issuer)
            if found:
                return found[0].der
        return None

    def answer(self, request: Message) -> tuple[Message | None, Lookup | None]:
        """The response to one request; (None, None) for a command a server does not accept
        (a response): the caller closes the connection."""
        if request.command is Command.VERIFY_REQUEST:
            der = request.certificate
            roles = self.roles_of(der) if der else ()
            known = der if roles else None
            response = verify_response(
                request.session_id, roles=roles if roles else None, ttl=self.ttl, reserved=self.reserved
            )
        elif request.command is Command.QUERY_REQUEST:
            der = request.certificate if request.certificate else self.find(request.serial, request.issuer)
            roles = self.roles_of(der) if der else ()
            known = der if roles else None
            response = query_response(
                request.session_id, certificate=known, roles=roles, ttl=self.ttl, reserved=self.reserved
            )
        else:
            return None, None
        return response, Lookup(request.command, request.session_id, request.device_name, known, roles)

    def session(self) -> TvsSession:
        return TvsSession(self)

    def respond(self, data: bytes) -> bytes:
        """What a fresh connection would send back for ``data`` (the bytes of one or more
        requests, or anything else): never raises."""
        return self.session().feed(data)


@dataclass(slots=True)
class TvsSession:
    """One connection: ``feed`` the bytes received, send back what it returns; once ``closed``,
    close the connection (``error`` says why, or is None after ``MAX_REQUESTS`` answers).
    ``feed`` never raises."""

    responder: TvsResponder
    closed: bool = False
    error: str | None = None
    lookups: list[Lookup] = field(default_factory=list)
    _framer: Framer = field(init=False)

    def __post_init__(self) -> None:
        self._framer = Framer(max_body=self.responder.max_body)

    def feed(self, data: bytes) -> bytes:
        if self.closed:
            return b""
        try:
            messages = self._framer.feed(data)
        except ParseError as exc:
            # Messages completed before the bad bytes in the same chunk are lost with them: the
            # framer raises for the chunk. A phone sends one request and waits, so none are.
            self._close(f"protocol error at stream offset {exc.offset}: {exc.reason}")
            return b""
        out = bytearray()
        for message in messages:
            if len(self.lookups) >= self.responder.max_requests:
                self.closed = True  # no error: the client had its answers
                break
            response, lookup = self.responder.answer(message)
            if response is None or lookup is None:
                self._close(f"{message.command.name} (command {int(message.command)}) is not a request")
                break
            try:
                out += encode(response)
            except ValueError as exc:  # a stored certificate over 64 KiB cannot be sent
                self._close(f"cannot encode the answer: {exc}")
                break
            self.lookups.append(lookup)
        return bytes(out)

    def _close(self, why: str) -> None:
        self.closed = True
        self.error = why


def load_responder(lab_dir: Path, cluster: str) -> TvsResponder:
    """The TVS of ``cluster`` in a built lab: its stores under ``trust/<cluster>/``. A store the
    lab did not write (the ``trust-store-missing`` fault removes the source's) is empty."""
    stores: dict[str, TrustStore] = {}
    for name in STORE_ROLES:
        directory = lab_dir / "trust" / cluster / name
        stores[name] = load_trust_store(directory, name) if directory.is_dir() else TrustStore(name, ())
    return TvsResponder(stores)


async def serve_session(
    responder: TvsResponder,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    read_timeout: float = READ_TIMEOUT,
    session_timeout: float = SESSION_TIMEOUT,
) -> None:
    """One TLS connection (the handshake is done): read, answer, until the client closes, goes
    quiet for ``read_timeout``, the connection is ``session_timeout`` old, or the session
    closes. Nothing escapes: a transport failure or a timeout ends the session like a close."""
    session = responder.session()
    try:
        async with asyncio.timeout(session_timeout):
            while not session.closed:
                async with asyncio.timeout(read_timeout):
                    data = await reader.read(READ_SIZE)
                if not data:
                    break
                out = session.feed(data)
                if out:
                    writer.write(out)
                    await writer.drain()
    except (TimeoutError, OSError, ssl.SSLError, EOFError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def stores_from_certs(by_store: Mapping[str, Iterable[bytes]]) -> dict[str, TrustStore]:
    """Trust stores from DER certificates by store name (tests and fuzzing: no files)."""
    return {
        name: TrustStore.from_files(name, [(f"{name}/{i}.der", der) for i, der in enumerate(ders)])
        for name, ders in by_store.items()
    }
