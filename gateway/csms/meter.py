"""Meter values of both OCPP versions into domain readings (pure functions).

Energy goes to Wh, power to W (OCPP 1.6 section 7.31 UnitOfMeasure; 2.0.1
UnitOfMeasureType with its power-of-ten ``multiplier``). Measurands the domain
does not track are dropped, as are signed values that carry no number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.csms.errors import PropertyViolation
from gateway.domain.clock import parse_timestamp
from gateway.domain.models import Measurand, MeterReading

_MEASURANDS = {m.value: m for m in Measurand}
# A sample without a measurand is energy (OCPP 1.6 SampledValue); read once, not per sample.
_ENERGY_WH = Measurand.ENERGY_WH.value
# unit -> (domain measurand it is valid for, factor to the domain unit)
_UNITS: dict[str, tuple[Measurand, Decimal]] = {
    "Wh": (Measurand.ENERGY_WH, Decimal(1)),
    "kWh": (Measurand.ENERGY_WH, Decimal(1000)),
    "W": (Measurand.POWER_W, Decimal(1)),
    "kW": (Measurand.POWER_W, Decimal(1000)),
    "A": (Measurand.CURRENT_A, Decimal(1)),
    "Percent": (Measurand.SOC_PERCENT, Decimal(1)),
}
_DEFAULT_UNITS = {
    Measurand.ENERGY_WH: "Wh",
    Measurand.POWER_W: "W",
    Measurand.CURRENT_A: "A",
    Measurand.SOC_PERCENT: "Percent",
}


# Timestamps a charger may report. Before 1970 no charger clock is set (and 1970
# itself is what a lost clock reads, so it stays accepted); year 1 or 9999 with an
# offset cannot even be converted to UTC, and near either end of the date range
# every duration or "two days ago" computed from them would overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# Meter readings of 10^18 or more (an exawatt-hour, in Wh or W) are no meter's: they
# would only overflow the 28-digit Decimal arithmetic of energy and prices.
MAX_READING = Decimal(10) ** 18
# 2.0.1 UnitOfMeasureType.multiplier: a power of ten; kilo, mega and milli are the real ones.
MAX_MULTIPLIER = 9


def timestamp(value: str, field: str) -> datetime:
    try:
        return _time(value)
    except _BadValue as exc:
        raise PropertyViolation.at(field, exc) from None


class _BadValue(ValueError):
    """What is wrong with a value; the caller names its field (only then is the name
    built: a frame's fields are named in errors, not while it is read)."""


def _time(value: str) -> datetime:
    try:
        when = parse_timestamp(value)
    except (ValueError, OverflowError):
        raise _BadValue("not an RFC 3339 date-time") from None
    if not EARLIEST <= when < LATEST:
        raise _BadValue("outside 1970 to 2199")
    return when


def meter_wh(value: Any, field: str) -> Decimal:
    """A 1.6 meterStart / meterStop, bounded like every reading."""
    try:
        number = _number(value)
    except _BadValue as exc:
        raise PropertyViolation.at(field, exc) from None
    if abs(number) >= MAX_READING:
        raise PropertyViolation.at(field, "out of range")
    return number


def _number(value: Any) -> Decimal:
    try:
        # str() first: a float's shortest repr is the number the charger wrote.
        number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise _BadValue("not a number") from None
    if not number.is_finite():
        raise _BadValue("not a finite number")
    if number and number.adjusted() >= 18:
        # Decimal('1e999999') is finite but no store or price computation can use it.
        raise _BadValue("out of range")
    return number


def _sample_field(field: str, i: int, j: int) -> str:
    return f"{field}[{i}].sampledValue[{j}]"


def _reading(
    when: datetime,
    sample: Mapping[str, Any],
    unit: str | None,
    multiplier: int,
    field: str,
    i: int,
    j: int,
) -> MeterReading | None:
    measurand = _MEASURANDS.get(sample.get("measurand", _ENERGY_WH))
    if measurand is None:
        return None
    unit = unit or _DEFAULT_UNITS[measurand]
    unit_measurand, factor = _UNITS.get(unit, (None, Decimal(0)))
    if unit_measurand is not measurand:
        where = _sample_field(field, i, j)
        raise PropertyViolation.at(where, f"unit {unit} does not fit {measurand.value}")
    if abs(multiplier) > MAX_MULTIPLIER:
        where = f"{_sample_field(field, i, j)}.unitOfMeasure.multiplier"
        raise PropertyViolation.at(where, "out of range")
    try:
        value = _number(sample["value"]).scaleb(multiplier) * factor
    except _BadValue as exc:
        where = f"{_sample_field(field, i, j)}.value"
        raise PropertyViolation.at(where, exc) from None
    if abs(value) >= MAX_READING:
        where = f"{_sample_field(field, i, j)}.value"
        raise PropertyViolation.at(where, "out of range")
    return MeterReading(
        timestamp=when,
        measurand=measurand,
        value=value,
        phase=sample.get("phase"),
        context=sample.get("context"),
    )


def _sampled_at(meter_value: Mapping[str, Any], field: str, i: int) -> datetime:
    try:
        return _time(meter_value["timestamp"])
    except _BadValue as exc:
        where = f"{field}[{i}].timestamp"
        raise PropertyViolation.at(where, exc) from None


def readings_v16(meter_values: Iterable[Mapping[str, Any]], field: str) -> list[MeterReading]:
    out: list[MeterReading] = []
    for i, mv in enumerate(meter_values):
        when = _sampled_at(mv, field, i)
        for j, sample in enumerate(mv["sampledValue"]):
            if sample.get("format") == "SignedData":
                continue
            reading = _reading(when, sample, sample.get("unit"), 0, field, i, j)
            if reading is not None:
                out.append(reading)
    return out


def readings_v201(meter_values: Iterable[Mapping[str, Any]], field: str) -> list[MeterReading]:
    out: list[MeterReading] = []
    for i, mv in enumerate(meter_values):
        when = _sampled_at(mv, field, i)
        for j, sample in enumerate(mv["sampledValue"]):
            uom = sample.get("unitOfMeasure") or {}
            reading = _reading(
                when, sample, uom.get("unit"), int(uom.get("multiplier", 0)), field, i, j
            )
            if reading is not None:
                out.append(reading)
    return out
