"""The local wall clock over UTC microseconds: DST segments and time-of-day boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from ocpi.tariffs.clock import DAY_US, HOUR_US, MINUTE_US, LocalClock, from_us, to_us


def us(text: str) -> int:
    return to_us(datetime.fromisoformat(text).replace(tzinfo=UTC))


def iso(value: int) -> str:
    return from_us(value).strftime("%Y-%m-%dT%H:%M")


def test_microsecond_round_trip() -> None:
    instant = datetime(2024, 3, 31, 1, 2, 3, 456789, tzinfo=UTC)
    assert from_us(to_us(instant)) == instant
    assert to_us(instant.astimezone(ZoneInfo("Asia/Kolkata"))) == to_us(instant)


def test_fixed_offsets_need_no_lookup() -> None:
    assert LocalClock(ZoneInfo("UTC")).fixed_offset == 0
    assert LocalClock(timezone(timedelta(hours=5, minutes=30))).fixed_offset == 330 * MINUTE_US
    assert LocalClock(ZoneInfo("Europe/Amsterdam")).fixed_offset is None


def test_segments_split_at_the_dst_change() -> None:
    clock = LocalClock(ZoneInfo("Europe/Amsterdam"))
    start, end = us("2024-03-30T20:00"), us("2024-03-31T08:00")
    segments = clock.segments(start, end)
    assert [(iso(a), iso(b), off // HOUR_US) for a, b, off in segments] == [
        ("2024-03-30T20:00", "2024-03-31T01:00", 1),
        ("2024-03-31T01:00", "2024-03-31T08:00", 2),
    ]
    # Several days, two changes? Only one per season; a week in summer has one segment.
    summer = clock.segments(us("2024-07-01T00:00"), us("2024-07-08T00:00"))
    assert len(summer) == 1


@pytest.mark.parametrize(
    ("zone", "start", "end", "times", "expected"),
    [
        # Plain day: 17:00 local (CEST, +2) is 15:00Z; midnight is 22:00Z.
        ("Europe/Amsterdam", "2024-06-01T12:00", "2024-06-02T00:00", [17], ["15:00", "22:00"]),
        # Spring forward: 02:30 does not exist; the jump at 01:00Z is the boundary.
        ("Europe/Amsterdam", "2024-03-30T23:30", "2024-03-31T03:00", [2.5], ["01:00"]),
        # Fall back: 02:30 happens twice (00:30Z in CEST, 01:30Z in CET), plus the change.
        (
            "Europe/Amsterdam",
            "2024-10-26T23:00",
            "2024-10-27T03:00",
            [2.5],
            ["00:30", "01:00", "01:30"],
        ),
    ],
)
def test_boundaries(
    zone: str, start: str, end: str, times: list[float], expected: list[str]
) -> None:
    clock = LocalClock(ZoneInfo(zone))
    tods = sorted({0, *(int(h * HOUR_US) for h in times)})
    found = clock.boundaries(clock.segments(us(start), us(end)), tods)
    assert [from_us(b).strftime("%H:%M") for b in found] == expected


def test_boundaries_over_several_days_are_ordered_and_inside() -> None:
    clock = LocalClock(ZoneInfo("America/New_York"))
    start, end = us("2024-03-08T12:00"), us("2024-03-12T12:00")
    tods = [0, 8 * HOUR_US, 20 * HOUR_US]
    found = clock.boundaries(clock.segments(start, end), tods)
    assert found == sorted(found)
    assert all(start < b < end for b in found)
    local = [from_us(b).astimezone(ZoneInfo("America/New_York")) for b in found]
    # Every boundary but the DST change itself falls on a listed local time.
    on_time = [t for t in local if t.hour * HOUR_US + t.minute * MINUTE_US in tods]
    assert len(found) - len(on_time) == 1
    assert (end - start) // DAY_US == 4
