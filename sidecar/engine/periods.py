"""Calendar periods (UTC) as the ids that name counters: day, month, lifetime, minute."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from sidecar.catalog.model import Period

__all__ = ["PeriodIds", "minute_id", "month_end_ms", "period_ids", "period_start_ms"]

PERIODS: tuple[Period, ...] = ("day", "month", "lifetime")


def _utc(now_ms: int) -> datetime:
    return datetime.fromtimestamp(now_ms // 1000, tz=UTC)


class PeriodIds:
    """The counter ids in force at one instant."""

    __slots__ = ("day", "lifetime", "month")

    def __init__(self, now_ms: int) -> None:
        moment = _utc(now_ms)
        self.day = moment.strftime("d%Y%m%d")
        self.month = moment.strftime("m%Y%m")
        self.lifetime = "life"

    def of(self, period: Period) -> str:
        return self.by_period()[period]

    def by_period(self) -> dict[str, str]:
        """Period -> counter id, as the scripts take them (``periods``)."""
        return {"day": self.day, "month": self.month, "lifetime": self.lifetime}


def period_ids(now_ms: int) -> PeriodIds:
    """The ids in force at ``now_ms``; formatted once per second, not once per call."""
    return _period_ids_of_second(now_ms // 1000)


@lru_cache(maxsize=4)
def _period_ids_of_second(second: int) -> PeriodIds:
    return PeriodIds(second * 1000)


def minute_id(now_ms: int) -> int:
    """The fixed one-minute window that rate limits count in."""
    return now_ms // 60_000


def month_end_ms(now_ms: int) -> int:
    """Start of the next calendar month (UTC), when a monthly grant expires."""
    moment = _utc(now_ms)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * 1000


def period_start_ms(period: Period, now_ms: int) -> int:
    """When the ``period`` in force at ``now_ms`` began (UTC); 0 for lifetime."""
    moment = _utc(now_ms)
    if period == "lifetime":
        return 0
    start = datetime(moment.year, moment.month, moment.day if period == "day" else 1, tzinfo=UTC)
    return int(start.timestamp()) * 1000
