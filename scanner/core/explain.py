"""What a phone console log or a TVS trace says happened, in a few lines (``trustscan explain``).

Pure: text in, events out. Two formats, as the seed article shows them (its excerpts are the
test vectors, tests/data/seed-logs/):

* the **phone console log**: ``3287 INF Nov 29 06:33:59.395199 SECUREAPP-Attempting connect to TVS
  server addr [192.168.11.32],`` — a sequence number, a level (NOT/INF/DEB/WRN/ERR), the time, the
  component and its message; a line that does not start so continues the one before (the phone,
  or whoever copied the log, wraps long lines);
* the **TVS trace** (the TVS service's detailed log): ``18:01:06.345 | debug tvsHandleQueryCertReq``,
  with the messages' bytes as ``HEX_DUMP: Len = 153:`` followed by lines of hex pairs, which are
  decoded with the TVS codec where they hold a whole header.

Lines neither format knows are counted, never guessed at; a file in which nothing is understood
is said to be of an unknown format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from scanner.core.errors import ParseError
from scanner.core.tvs import codec

__all__ = ["Event", "Explanation", "explain"]

_CONSOLE = re.compile(r"^(\d+) (NOT|INF|DEB|WRN|ERR|CRI|ALR|EMR) (\w{3} +\d+ \d\d:\d\d:\d\d\.\d+) (.*)$")
_TVS = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) \| (\w+) ?(.*)$")
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2} ?)+$")
# The codec's names for the commands, in the words the report uses.
_COMMANDS = {1: "verify request", 2: "verify response", 3: "query certificate request", 4: "query certificate response"}
ROLE_NAMES = {0: "SAST", 1: "CCM", 2: "CCM+TFTP", 3: "TFTP", 4: "CAPF", 7: "APP-SERVER", 21: "TVS"}


@dataclass(frozen=True, slots=True)
class Event:
    line: int  # 1-based line of the file where the event's record starts
    text: str
    failure: bool = False


@dataclass(slots=True)
class Explanation:
    kind: str  # "phone console log", "TVS trace" or "unknown"
    events: list[Event] = field(default_factory=list)
    understood: list[int] = field(default_factory=list)  # lines of records in a known format
    lines: int = 0
    verdict: str = ""

    def render(self, name: str) -> str:
        head = f"{name}: {self.kind}"
        if self.kind == "unknown":
            return f"{head}: not a phone console log or a TVS trace ({self.lines} lines, none understood)"
        out = [f"{head} ({len(self.understood)} of {self.lines} lines in the format: records at lines {_ranges(self.understood)})"]
        out += [f"  line {e.line}: {'FAILED: ' if e.failure else ''}{e.text}" for e in self.events]
        out.append(f"  => {self.verdict}")
        return "\n".join(out)


def _ranges(numbers: list[int]) -> str:
    """``1-4, 7, 9-12``: where the understood records are."""
    parts: list[str] = []
    for n in sorted(numbers):
        if parts and "-" in parts[-1] and int(parts[-1].split("-")[1]) == n - 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{n}"
        elif parts and "-" not in parts[-1] and int(parts[-1]) == n - 1:
            parts[-1] = f"{parts[-1]}-{n}"
        else:
            parts.append(str(n))
    return ", ".join(parts) or "none"


def _records(lines: list[str], start: re.Pattern[str]) -> Iterable[tuple[int, re.Match[str], str]]:
    """(line, match of the record's first line, the record's whole text with continuations)."""
    current: tuple[int, re.Match[str], list[str]] | None = None
    for i, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        m = start.match(line)
        if m:
            if current is not None:
                yield current[0], current[1], " ".join(current[2])
            current = (i, m, [line])
        elif current is not None and line.strip():
            current[2].append(line.strip())
    if current is not None:
        yield current[0], current[1], " ".join(current[2])


def _console(lines: list[str]) -> Explanation:
    ex = Explanation("phone console log", lines=len(lines))
    ok_lists = failed_lists = 0
    tvs_used = False
    for n, m, text in _records(lines, _CONSOLE):
        ex.understood.append(n)
        msg = text[m.start(4):]
        if (g := re.search(r"GETXXTP.*?\[src=([^\]]+)\]", msg)) is not None:
            ex.events.append(Event(n, f"asks for {g.group(1)}"))
        elif (g := re.search(r"XXTP actualserver \[([^\]]+)\]", msg)) is not None:
            ex.events.append(Event(n, f"the file came from {g.group(1)}"))
        elif (g := re.search(r"XXTP complete - status = (\d+)", msg)) is not None:
            ex.events.append(Event(n, f"transfer complete, status {g.group(1)}", failure=g.group(1) != "100"))
        elif (g := re.search(r"Attempting connect to TVS server addr \[([^\]]+)\]", msg)) is not None:
            tvs_used = True
            ex.events.append(Event(n, f"the signer is not in its lists: connects to TVS {g.group(1)}"))
        elif re.search(r"TCP connect\(\) successful", msg):
            ex.events.append(Event(n, "TCP connection to TVS made"))
        elif re.search(r"connect\(\) failed|Connection refused|connect timed out", msg, re.I):
            ex.events.append(Event(n, f"connection to TVS failed: {msg}", failure=True))
        elif re.search(r"Cert Verification - Certificate is valid", msg):
            ex.events.append(Event(n, "the TVS server's certificate is in its ITL: valid"))
        elif re.search(r"Cert Verification - Certificate is (not valid|invalid)|verification failed", msg, re.I):
            ex.events.append(Event(n, f"the TVS server's certificate was refused: {msg}", failure=True))
        elif re.search(r"Handshake successful", msg):
            ex.events.append(Event(n, "TLS handshake with TVS successful"))
        elif re.search(r"Handshake failed|SSL.*(error|fail)", msg, re.I):
            ex.events.append(Event(n, f"TLS handshake with TVS failed: {msg}", failure=True))
        elif re.search(r"processing TVS Query Certificate request", msg):
            ex.events.append(Event(n, "asks TVS about the certificate (query certificate request)"))
        elif (g := re.search(r"TVS Service receives (\d+) bytes", msg)) is not None:
            ex.events.append(Event(n, f"TVS answered ({g.group(1)} bytes)"))
        elif (g := re.search(r"TVS added cert to TVS cache - expires in (.+)$", msg)) is not None:
            ex.events.append(Event(n, f"TVS vouched for the certificate (cached for {g.group(1)})"))
        elif re.search(r"Hashes match\.\.\. authentication successful", msg):
            ex.events.append(Event(n, "the file's signature verified"))
        elif re.search(r"TL file verified successfully", msg):
            ok_lists += 1
        elif re.search(r"TL file updated", msg):
            ex.events.append(Event(n, "trust list installed"))
        elif re.search(r"trust ?list update failed|TL file verification failed|authentication failed|hashes (do not|don't) match", msg, re.I):
            failed_lists += 1
            ex.events.append(Event(n, f"trust list refused: {msg}", failure=True))
    via = " (the CTL through TVS)" if tvs_used else ""
    if failed_lists:
        ex.verdict = f"{failed_lists} trust list(s) refused: the phone keeps its old lists (\"Trust List update failed\")"
    elif ok_lists:
        ex.verdict = f"{ok_lists} trust list(s) verified and installed{via}"
    elif any(e.failure for e in ex.events):
        ex.verdict = "something failed before any trust list was verified"
    else:
        ex.verdict = "no trust list was verified or refused in this excerpt"
    return ex


def _decode_dump(data: bytes) -> str:
    if data[:2] == b"\x30\x82":
        return "a certificate (DER)"
    try:
        header = codec.decode_header(data)
    except (ParseError, ValueError):
        return f"{len(data)} bytes, not a TVS message header"
    name = _COMMANDS.get(int(header.command), f"command {header.command}")
    return f"{name}, session {header.session}, payload {header.length} bytes"


def _tvs(lines: list[str]) -> Explanation:
    ex = Explanation("TVS trace", lines=len(lines))
    roles: list[int] = []
    found = answered = False
    found_line = 0
    dump: list[str] | None = None
    dump_line = 0
    dump_len = 0

    def end_dump() -> None:
        nonlocal dump
        if dump:
            data = bytes.fromhex("".join(dump))
            shown = f" (the log shows {len(data)} of {dump_len})" if len(data) < dump_len else ""
            ex.events.append(Event(dump_line, f"bytes: {_decode_dump(data)}{shown}"))
        dump = None

    for n, m, text in _records(lines, _TVS):
        ex.understood.append(n)
        msg = m.group(3)
        rest = text[m.start(3):]
        if dump is not None and _HEX.match(msg.strip() or "x"):
            dump.append(msg.replace(" ", ""))
            continue
        end_dump()
        if (g := re.search(r"HEX_DUMP: Len = (\d+)", rest)) is not None:
            dump, dump_line, dump_len = [], n, int(g.group(1))
            tail = rest[g.end():].lstrip(": ").split("debug", 1)[-1].strip()
            if _HEX.match(tail or "x"):
                dump.append(tail.replace(" ", ""))
        elif (g := re.search(r"ipAddrStr \(Phone\) (\S+)", msg)) is not None:
            if not any(e.text.startswith("phone ") for e in ex.events):
                ex.events.append(Event(n, f"phone {g.group(1)} connected"))
        elif (g := re.search(r"Session ciphers - (\S+)", msg)) is not None:
            ex.events.append(Event(n, f"TLS handshake done, cipher {g.group(1)}"))
        elif (g := re.search(r"MsgType : (\S+)", msg)) is not None:
            ex.events.append(Event(n, f"message {g.group(1)}"))
            answered |= "RES" in g.group(1)
        elif (g := re.search(r"(Subject|Issuer) Name is: ?(.*)$", rest)) is not None:
            ex.events.append(Event(n, f"asks about {g.group(1).lower()} {g.group(2).strip()}"))
        elif (g := re.search(r"Serial Number is: ?(.*)$", rest)) is not None:
            ex.events.append(Event(n, f"serial {g.group(1).strip()}"))
        elif (g := re.search(r"Found entry \{rolecount : (\d+)\}", msg)) is not None:
            found, found_line = True, n
        elif (g := re.search(r"\{role : (\d+)\}", msg)) is not None:
            roles.append(int(g.group(1)))
        elif re.search(r"(no entry|not found|Unable to find)", msg, re.I):
            ex.events.append(Event(n, f"the certificate is in none of its stores: {msg}", failure=True))
        elif (g := re.search(r"Number of Certs : (\d+)", msg)) is not None:
            ex.events.append(Event(n, f"answers with {g.group(1)} certificate(s)"))
    end_dump()
    named = ", ".join(f"{ROLE_NAMES.get(r, r)} ({r})" for r in roles)
    if found:
        ex.events.append(Event(found_line, f"found in its stores with role(s) {named}"))
        ex.events.sort(key=lambda e: e.line)
    if found and 0 in roles:
        ex.verdict = "TVS vouched for the certificate with role SAST: the phone can accept what it signs"
    elif found:
        ex.verdict = f"TVS knows the certificate but not as SAST ({named}): the phone refuses a trust list it signs"
    elif any(e.failure for e in ex.events):
        ex.verdict = "TVS did not know the certificate"
    else:
        ex.verdict = "no certificate lookup in this excerpt" + ("; an answer was sent" if answered else "")
    return ex


def explain(text: str) -> Explanation:
    """The events of one log; its kind is the format most of its records are in."""
    lines = text.splitlines()
    console = sum(1 for line in lines if _CONSOLE.match(line))
    tvs = sum(1 for line in lines if _TVS.match(line))
    if not console and not tvs:
        return Explanation("unknown", lines=len(lines))
    return _console(lines) if console >= tvs else _tvs(lines)
