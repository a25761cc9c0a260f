"""The pieces every command shares: the event loop it runs on, the one ISO 8601 parser, Stop."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt

import pytest

from scanner.cli import runner
from scanner.cli.exitcodes import EXIT_USAGE
from scanner.cli.output import Stop
from scanner.cli.timeparse import iso_time


def test_run_picks_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert runner.run(loop_module()).startswith("uvloop")


def test_run_leaves_the_process_default_loop_alone() -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    runner.run(loop_module())
    assert asyncio.run(loop_module()).startswith("asyncio")  # no process-wide policy was set


def test_iso_time_takes_a_time_without_zone_as_utc() -> None:
    assert iso_time("2026-03-01T08:00") == dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
    assert iso_time("2026-03-01T08:00+13:00").utcoffset() == dt.timedelta(hours=13)


def test_iso_time_refuses_what_is_not_a_time() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not an ISO 8601 time: 'yesterday'"):
        iso_time("yesterday")


def test_stop_carries_its_exit_code_and_message() -> None:
    stop = Stop(EXIT_USAGE, "bad profile")
    assert stop.code == 64 and str(stop) == "bad profile"
