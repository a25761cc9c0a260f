"""``trustscan completion``: scripts that the shells accept, naming every command and option."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from scanner.cli.main import COMMANDS, main


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_every_command_and_option_completes(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for command in COMMANDS:
        assert command in script, command
    for option in ("--fail-on", "--progress-json", "--inventory", "--list-scenarios"):
        assert option in script, option
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed here")
    check = subprocess.run([exe, "-n"], input=script, text=True, capture_output=True, check=False)
    assert check.returncode == 0, check.stderr


def test_an_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["completion", "cmd.exe"])
    assert info.value.code == 64 and "invalid choice" in capsys.readouterr().err
