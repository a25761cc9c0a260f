"""The one ISO 8601 parser of the command line (``--now``)."""

from __future__ import annotations

import argparse
import datetime as dt


def iso_time(text: str) -> dt.datetime:
    """``text`` as an aware time; a time without a zone is taken as UTC. For argparse's ``type=``."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
