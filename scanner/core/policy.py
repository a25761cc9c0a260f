"""The readiness policy: which checks are required, the expiry window, the cutover date, the GO
threshold and the model capabilities the checks need. A TOML file a user can change; the shipped
defaults are in ``scanner/data/policy.toml`` (documented in docs/policy.md).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from scanner.core.errors import ParseError

CHECKS = ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8")


@dataclass(frozen=True, slots=True)
class Policy:
    required: frozenset[str]
    expiry_window: dt.timedelta
    cutover: dt.datetime | None  # None: judge validity at scan time
    go_threshold: float  # fraction of phones that must be READY for GO (no NOT_READY allowed)
    sha512_unsupported_models: frozenset[str]
    tvs_timeout_is_failure: bool

    def judge_time(self, now: dt.datetime) -> dt.datetime:
        return self.cutover or now

    def model_lacks_sha512(self, model: str | None) -> bool:
        if not model:
            return False
        m = model.upper().removeprefix("CISCO ").replace(" ", "-")
        if not m.startswith("CP-"):
            m = "CP-" + m
        return m in self.sha512_unsupported_models


def default_policy() -> Policy:
    text = resources.files("scanner").joinpath("data/policy.toml").read_bytes()
    return parse_policy(text, path="<built-in policy>")


def parse_policy(data: bytes, *, path: str | None = None) -> Policy:
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ParseError(f"not a valid TOML policy: {exc}", path=path) from None
    return _from_doc(doc, path)


def _from_doc(doc: dict[str, Any], path: str | None) -> Policy:
    def err(key: str, reason: str) -> ParseError:
        return ParseError(f"{key}: {reason}", path=path)

    allowed = {"required_checks", "expiry_window_days", "cutover", "go_threshold", "models", "tvs"}
    for key in doc:
        if key not in allowed:
            raise err(key, f"unknown key (known: {', '.join(sorted(allowed))})")
    required = doc.get("required_checks", list(CHECKS[:7]))
    if not isinstance(required, list) or any(c not in CHECKS for c in required):
        raise err("required_checks", f"must be a list of {', '.join(CHECKS)}")
    days = doc.get("expiry_window_days", 30)
    if not isinstance(days, int) or days < 0:
        raise err("expiry_window_days", "must be a whole number of days >= 0")
    cutover = doc.get("cutover")
    if cutover is not None:
        if isinstance(cutover, dt.datetime):
            cutover = cutover if cutover.tzinfo else cutover.replace(tzinfo=dt.UTC)
        elif isinstance(cutover, dt.date):
            cutover = dt.datetime(cutover.year, cutover.month, cutover.day, tzinfo=dt.UTC)
        else:
            raise err("cutover", "must be a TOML date or date-time")
    threshold = doc.get("go_threshold", 1.0)
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise err("go_threshold", "must be a fraction between 0 and 1")
    models = doc.get("models", {})
    if not isinstance(models, dict):
        raise err("models", "must be a table")
    sha512 = models.get("sha512_unsupported", [])
    if not isinstance(sha512, list) or not all(isinstance(m, str) for m in sha512):
        raise err("models.sha512_unsupported", "must be a list of model names")
    tvs = doc.get("tvs", {})
    timeout_fails = tvs.get("timeout_is_failure", False) if isinstance(tvs, dict) else False
    return Policy(
        required=frozenset(required),
        expiry_window=dt.timedelta(days=days),
        cutover=cutover,
        go_threshold=float(threshold),
        sha512_unsupported_models=frozenset(m.upper() for m in sha512),
        tvs_timeout_is_failure=bool(timeout_fails),
    )
