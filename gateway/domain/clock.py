"""Injected clock and id factory, so that tests are deterministic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final, Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class IdFactory(Protocol):
    def new_id(self) -> str: ...


class UuidFactory:
    def new_id(self) -> str:
        return uuid.uuid4().hex


def ensure_utc(value: datetime) -> datetime:
    """Normalise an aware datetime to UTC; naive datetimes are a programming error."""
    if value.tzinfo is UTC:  # most are: the clock's, and every time read back
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} (times must be timezone-aware)")
    return value.astimezone(UTC)


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp from a charger into aware UTC.

    A missing offset is read as UTC: OCPP mandates UTC and some 1.6 firmware
    omits the ``Z``.
    """
    value = datetime.fromisoformat(text.replace("z", "Z"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with millisecond precision and a ``Z`` suffix.

    Real chargers reject ``+00:00``; the ``Z`` form is what OCPP-J examples use.
    """
    v = ensure_utc(value)
    # What isoformat(timespec="milliseconds") writes for a UTC time, "+00:00" as "Z": the
    # fields written by one %-format (isoformat goes through C's printf and the tzinfo's
    # offset; a third of the time here, and this runs for every Heartbeat answered).
    return _MILLISECONDS % (
        v.year,
        v.month,
        v.day,
        v.hour,
        v.minute,
        v.second,
        v.microsecond // 1000,
    )


_MILLISECONDS: Final = "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ"
