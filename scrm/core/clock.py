"""Time source. Everything that asks "what time is it" goes through a Clock so tests can control it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

UTC = dt.UTC
SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock:
    """Wall clock, timezone-aware (UTC)."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)

    def timestamp(self) -> int:
        return int(self.now().timestamp())


class FrozenClock(Clock):
    """A clock that stands still until told to move: for tests and scripted demos."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware start")

    def now(self) -> dt.datetime:
        return self._now

    def set(self, when: dt.datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("naive datetime")
        self._now = when

    def advance(self, **delta: float) -> dt.datetime:
        self._now += dt.timedelta(**delta)
        return self._now


def from_timestamp(ts: int | float | str) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ts), UTC)


def local(when: dt.datetime, tz: ZoneInfo = SHANGHAI) -> dt.datetime:
    """The same instant in the business timezone (Asia/Shanghai by default)."""
    return when.astimezone(tz)
