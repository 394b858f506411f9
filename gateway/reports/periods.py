"""Report periods: the buckets of a ``from``/``to`` range by day, ISO week (Monday) or
calendar month, in UTC or in a time zone (pure)."""

from __future__ import annotations

import enum
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

# More buckets than anyone reads (27 years of days); bounds the work of one request.
MAX_BUCKETS = 10_000


class Period(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    RANGE = "range"  # one bucket: the whole from/to range


class TooManyBuckets(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Bucket:
    """One period, clipped to the report's range: ``start``/``end`` in UTC; ``label_start``
    and ``label_end`` the period's own bounds in the report's time zone (not clipped)."""

    start: datetime
    end: datetime
    label_start: datetime
    label_end: datetime

    @property
    def micros(self) -> int:
        return micros(self.end - self.start)


def micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _wall(value: datetime, zone: tzinfo) -> datetime:
    """A naive wall-clock time in ``zone`` to an aware UTC time."""
    return value.replace(tzinfo=zone).astimezone(UTC)


def _floor(local: datetime, period: Period) -> datetime:
    day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period is Period.MONTH:
        return day.replace(day=1)
    return day


def _next(wall: datetime, period: Period) -> datetime:
    if period is Period.DAY:
        return wall + timedelta(days=1)
    if period is Period.WEEK:
        return wall + timedelta(days=7)
    year, month = (wall.year + 1, 1) if wall.month == 12 else (wall.year, wall.month + 1)
    return wall.replace(year=year, month=month)


def buckets(start: datetime, end: datetime, period: Period, zone: tzinfo = UTC) -> list[Bucket]:
    """The buckets covering ``[start, end)``; ``TooManyBuckets`` beyond :data:`MAX_BUCKETS`.
    Local days follow the zone's clock: a day with a DST change lasts 23 or 25 hours."""
    if period is Period.RANGE:
        return [Bucket(start, end, start.astimezone(zone), end.astimezone(zone))]
    out: list[Bucket] = []
    wall = _floor(start.astimezone(zone), period)
    while True:
        following = _next(wall, period)
        b_start, b_end = _wall(wall, zone), _wall(following, zone)
        if b_start >= end:
            return out
        if b_end > start:
            out.append(
                Bucket(
                    max(b_start, start),
                    min(b_end, end),
                    b_start.astimezone(zone),
                    b_end.astimezone(zone),
                )
            )
            if len(out) > MAX_BUCKETS:
                raise TooManyBuckets(
                    f"more than {MAX_BUCKETS} periods; choose a longer period or a shorter range"
                )
        wall = following


class BucketIndex:
    """Which bucket a time falls in, and how an interval splits over the buckets."""

    def __init__(self, items: list[Bucket]) -> None:
        self.items = items
        self._starts = [b.start for b in items]

    def find(self, when: datetime) -> int | None:
        i = bisect_right(self._starts, when) - 1
        if i < 0 or when >= self.items[i].end:
            return None
        return i

    def split(self, start: datetime, end: datetime) -> Iterator[tuple[int, int]]:
        """(bucket index, µs of ``[start, end)`` inside it), for every bucket it overlaps."""
        if end <= start or not self.items:
            return
        i = max(bisect_right(self._starts, start) - 1, 0)
        while i < len(self.items):
            b = self.items[i]
            if b.start >= end:
                return
            lo, hi = max(start, b.start), min(end, b.end)
            if hi > lo:
                yield i, micros(hi - lo)
            i += 1
