"""Times written as text by one %-format (``codec.utc_text`` for stored records,
``clock.format_timestamp`` for what chargers are sent): the same text as the
``isoformat`` formulas they replace, for every time, before year 1000 included; and the
same refusal of a naive time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.clock import format_timestamp
from gateway.storage import codec

_ANY_TIME = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
_OFFSETS = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-23 * 60, 23 * 60)
)


@given(_ANY_TIME)
def test_utc_text_is_isoformat_with_a_z(naive: datetime) -> None:
    at = naive.replace(tzinfo=UTC)
    assert codec.utc_text(at) == at.isoformat(timespec="microseconds")[:-6] + "Z"
    assert codec.encode_time(at, "at") == codec.utc_text(at)
    assert codec.decode_time(codec.utc_text(at)) == at


@given(_ANY_TIME, st.one_of(st.just(UTC), _OFFSETS))
def test_format_timestamp_is_utc_isoformat_to_the_millisecond(
    naive: datetime, zone: timezone
) -> None:
    at = naive.replace(tzinfo=zone)
    try:
        utc = at.astimezone(UTC)
    except OverflowError:  # the offset moves it out of datetime's range
        return
    expected = utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert format_timestamp(at) == expected


def test_format_timestamp_examples() -> None:
    at = datetime(2026, 3, 4, 5, 6, 7, 891_999, tzinfo=UTC)
    assert format_timestamp(at) == "2026-03-04T05:06:07.891Z"  # truncated, as isoformat does
    assert format_timestamp(at.replace(microsecond=0)) == "2026-03-04T05:06:07.000Z"
    assert format_timestamp(datetime(999, 1, 1, tzinfo=timezone(timedelta(hours=-1)))) == (
        "0999-01-01T01:00:00.000Z"
    )
    assert codec.utc_text(at) == "2026-03-04T05:06:07.891999Z"
    with pytest.raises(ValueError, match="naive"):
        format_timestamp(datetime(2026, 1, 1))
