"""Every exit code ``trustscan`` returns, one line each on what it means (README.md, "Exit codes").

``1`` and ``2`` mean different things in different commands, so each meaning has its own name.
``64`` and ``70`` are the BSD sysexits ``EX_USAGE`` and ``EX_SOFTWARE``: a usage error is ``64``
rather than argparse's ``2`` because ``2`` already means INCOMPLETE (scan) and MALFORMED (inspect).
"""

from __future__ import annotations

EXIT_OK = 0  # scan: verdict GO; inspect: every file parsed and verified; diff: nothing got worse; collect, lab: done
EXIT_NO_GO = 1  # scan, demo: verdict NO_GO, or (with --fail-on SEVERITY) a finding that severe or worse
EXIT_INCOMPLETE = 2  # scan, demo: verdict INCOMPLETE (unless --fail-on NO_GO, which lets it pass with 0)
EXIT_UNVERIFIED = 1  # inspect: some signature is invalid or could not be verified
EXIT_MALFORMED = 2  # inspect: some file is unreadable or malformed (an unreadable certificate included)
EXIT_WORSE = 1  # diff: some phone, or the fleet verdict, got worse
EXIT_USAGE = 64  # every command: a usage error or bad input (profile, policy, inventory, scenario, directory)
EXIT_INTERNAL = 70  # scan, collect, diff: an unexpected error, printed with its trace
EXIT_LAB_FAILED = 70  # lab serve: a worker process died while serving (its phones are gone)
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM stopped the command (128 + SIGINT, as a shell reports it)
