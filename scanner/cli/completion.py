"""``trustscan completion SHELL``: the shell completion script for every command and option.

Generated from the same argparse parser the commands use, by ``shtab`` (a small, maintained
library that turns an argparse parser into bash/zsh/tcsh scripts), so a new option completes
without anyone editing a script. Install: ``trustscan completion bash > ~/.local/share/bash-completion/completions/trustscan``
(or ``eval "$(trustscan completion bash)"`` in ``~/.bashrc``); zsh: write it as ``_trustscan`` into
a directory on ``$fpath``.
"""

from __future__ import annotations

import argparse
from typing import Any

from scanner.cli.exitcodes import EXIT_OK

SHELLS = ("bash", "zsh", "tcsh")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "completion",
        help="print the shell completion script (bash, zsh, tcsh)",
        description="Print the completion script for SHELL on stdout. Exit codes: 0 printed, 64 usage.",
    )
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")


def run(args: argparse.Namespace) -> int:
    import shtab

    from scanner.cli.main import build_parser  # the whole parser, this command included

    print(shtab.complete(build_parser(), shell=args.shell), end="")
    return EXIT_OK
