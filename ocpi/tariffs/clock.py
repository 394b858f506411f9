"""UTC instants as integer microseconds, and the location's local wall clock.

Tariff restrictions on times of day, dates and days of the week are in the location's
local time (OCPI 2.2.1 mod_tariffs, TariffRestrictions: "in local time, the time zone
is defined in the time_zone field of the Location"). Durations, TIME and PARKING_TIME
are physical time. So the pricer works on UTC microseconds and asks this module two
questions: what is the local wall clock at an instant, and at which instants inside an
interval does the local clock cross a time of day that matters.

Across a DST change the wall clock jumps. The interval is cut into pieces of constant UTC
offset; the change itself is a boundary, and each piece is searched with its own offset.
So a boundary that falls in the skipped hour (spring) takes effect at the jump, and one
in the repeated hour (autumn) is crossed twice.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta, timezone, tzinfo

US = 1_000_000
MINUTE_US = 60 * US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
# Offsets are sampled this far apart when an interval is long; zones never change offset
# twice within it (tzdata transitions are weeks apart at the least).
_PROBE_US = 6 * HOUR_US
# 1970-01-01 was a Thursday; with Monday = 0 that is weekday 3.
_EPOCH_WEEKDAY = 3
_UNKNOWN: int | None = -(2**62)  # a sentinel no real offset equals


def to_us(instant: datetime) -> int:
    """Microseconds since 1970-01-01T00:00Z of a timezone-aware datetime."""
    return (instant - _EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def weekday_of_day(day: int) -> int:
    """Monday = 0 weekday of the day numbered ``day`` days after 1970-01-01."""
    return (day + _EPOCH_WEEKDAY) % 7


class LocalClock:
    """The wall clock of one time zone, over integer-microsecond UTC instants."""

    __slots__ = ("_hours", "fixed_offset", "tz")

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        # UTC hour -> its offset when constant through the hour, None when it changes
        # inside it. Offsets change at most once in any hour (tzdata transitions are
        # months apart), so equal offsets at both ends mean constant in between.
        self._hours: dict[int, int | None] = {}
        self.fixed_offset: int | None = None
        if isinstance(tz, timezone):
            offset = tz.utcoffset(None)
            self.fixed_offset = offset // _ONE_US
        elif getattr(tz, "key", None) in {"UTC", "Etc/UTC", "Etc/UCT", "Etc/Zulu", "UCT", "Zulu"}:
            self.fixed_offset = 0

    def offset_at(self, us: int) -> int:
        """UTC offset in microseconds at the instant ``us``."""
        if self.fixed_offset is not None:
            return self.fixed_offset
        hour = us // HOUR_US
        cached = self._hours.get(hour, _UNKNOWN)
        if cached is _UNKNOWN:
            first = self._lookup(hour * HOUR_US)
            cached = first if first == self._lookup(hour * HOUR_US + HOUR_US - 1) else None
            if len(self._hours) > 100_000:  # a bounded memo, not a leak
                self._hours.clear()
            self._hours[hour] = cached
        return self._lookup(us) if cached is None else cached

    def _lookup(self, us: int) -> int:
        offset = from_us(us).astimezone(self.tz).utcoffset()
        assert offset is not None
        return offset // _ONE_US

    def segments(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """Cut ``[start, end]`` into ``(from, to, offset)`` pieces of constant UTC offset."""
        first = self.offset_at(start)
        if self.fixed_offset is not None or end <= start:
            return [(start, end, first)]
        if end - start <= _PROBE_US and self.offset_at(end) == first:
            return [(start, end, first)]
        segments = []
        seg_start, seg_offset = start, first
        probe = start
        while probe < end:
            nxt = min(probe + _PROBE_US, end)
            offset = self.offset_at(nxt)
            if offset != seg_offset:
                change = self._transition(probe, nxt, seg_offset)
                segments.append((seg_start, change, seg_offset))
                seg_start, seg_offset = change, self.offset_at(change)
            probe = nxt
        segments.append((seg_start, end, seg_offset))
        return segments

    def _transition(self, lo: int, hi: int, offset_lo: int) -> int:
        """The first instant in ``(lo, hi]`` whose offset differs from ``offset_lo``."""
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.offset_at(mid) == offset_lo:
                lo = mid
            else:
                hi = mid
        return hi

    def boundaries(
        self, segments: list[tuple[int, int, int]], times_of_day: list[int]
    ) -> list[int]:
        """Instants strictly inside the segments' span where the local clock reaches one of
        ``times_of_day`` (microseconds after local midnight, sorted, including 0 for the
        date change), plus the offset changes between segments. Ascending."""
        out: list[int] = []
        overall_start = segments[0][0]
        for seg_start, seg_end, offset in segments:
            if seg_start != overall_start:
                out.append(seg_start)  # a DST change: the wall clock jumps here
            wall_start = seg_start + offset
            wall_end = seg_end + offset
            day = wall_start // DAY_US
            i = bisect_right(times_of_day, wall_start - day * DAY_US)
            while True:
                base = day * DAY_US
                if base >= wall_end:
                    break
                for tod in times_of_day[i:]:
                    wall = base + tod
                    if wall >= wall_end:
                        break
                    out.append(wall - offset)
                day += 1
                i = 0
        return out

    def offset_in(self, segments: list[tuple[int, int, int]], us: int) -> int:
        """The offset of the segment holding ``us`` (segments from :meth:`segments`)."""
        if len(segments) == 1:
            return segments[0][2]
        for seg_start, seg_end, offset in segments:
            if seg_start <= us < seg_end:
                return offset
        return segments[-1][2]
