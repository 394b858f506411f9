"""What a report is asked for, and the checks of its parameters (pure), shared by the
admin API and the command line so both refuse the same input with the same words."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.reports.compute import ALLOWED_BY, By, Kind
from gateway.reports.periods import Bucket, Period, TooManyBuckets, buckets


class ReportInputError(ValueError):
    """A parameter a report cannot be made with: ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ReportRequest:
    kind: Kind
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    by: By
    period: Period
    zone: tzinfo
    zone_name: str
    buckets: tuple[Bucket, ...]


def _choice(enum_type: type[Kind] | type[By] | type[Period], field: str, value: str) -> str:
    allowed = [m.value for m in enum_type]
    if value not in allowed:
        raise ReportInputError(field, f"must be one of {', '.join(allowed)}, not {value[:40]!r}")
    return value


def _zone(name: str) -> tzinfo:
    if name in ("UTC", "Z", ""):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ReportInputError(
            "tz", f"unknown time zone {name[:60]!r} (an IANA name such as Europe/Amsterdam)"
        ) from None


def _time(field: str, text: str | None, zone: tzinfo) -> datetime:
    if not text:
        raise ReportInputError(field, "required (an RFC 3339 time or a date, YYYY-MM-DD)")
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            value = datetime(day.year, day.month, day.day)
        else:
            value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ReportInputError(
            field, f"not an RFC 3339 time or a date (YYYY-MM-DD): {text[:40]!r}"
        ) from None
    if value.tzinfo is None:  # a local time in the report's zone
        value = value.replace(tzinfo=zone)
    try:
        result = value.astimezone(UTC)
    except OverflowError:
        raise ReportInputError(field, f"out of range: {text[:40]!r}") from None
    if not 1970 <= result.year < 2200:
        raise ReportInputError(field, "must be from 1970 to 2199")
    return result


def parse_request(kind: str, params: Mapping[str, str]) -> ReportRequest:
    """A report request from text parameters (``from``, ``to``, ``by``, ``period``,
    ``tz``); :class:`ReportInputError` naming the first bad one."""
    report = Kind(_choice(Kind, "kind", kind))
    zone_name = params.get("tz") or "UTC"
    zone = _zone(zone_name)
    start = _time("from", params.get("from"), zone)
    end = _time("to", params.get("to"), zone)
    if end <= start:
        raise ReportInputError("to", "must be later than from")
    by = By(_choice(By, "by", params.get("by") or By.CHARGER.value))
    if by not in ALLOWED_BY[report]:
        allowed = ", ".join(b.value for b in ALLOWED_BY[report])
        raise ReportInputError("by", f"{report.value} reports are by {allowed}, not {by.value}")
    period = Period(_choice(Period, "period", params.get("period") or Period.RANGE.value))
    try:
        items = buckets(start, end, period, zone)
    except TooManyBuckets as exc:
        raise ReportInputError("period", str(exc)) from None
    return ReportRequest(report, start, end, by, period, zone, zone_name, tuple(items))
