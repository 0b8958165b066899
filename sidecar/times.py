"""Time, in one place: integer ms since the epoch (UTC) inside, RFC 3339 on the wire."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sidecar.errors import InvalidInput

__all__ = ["EPOCH", "format_time", "ms_of", "parse_time", "time_of", "wall_clock_ms"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def time_of(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def ms_of(moment: datetime) -> int:
    return (moment - EPOCH) // _ONE_MS


def format_time(ms: int) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-11-19T12:00:00.000Z``."""
    return time_of(ms).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(field: str, text: str) -> int:
    """An RFC 3339 time with a zone (``2026-11-08T00:00:00Z``) as ms; InvalidInput otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(
            field, f"must be an RFC 3339 time with a zone, like 2026-11-08T00:00:00Z, got {text!r}"
        )
    return ms_of(moment.astimezone(UTC))
