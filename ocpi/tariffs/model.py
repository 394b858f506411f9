"""The pricer's own input types: the parts of an OCPI tariff and CDR that decide a price.

These are deliberately not the OCPI wire models: the wire models (one per OCPI version)
are converted into these, so the pricer has one vocabulary for 2.2.1 and 2.1.1 alike.
Field names follow OCPI 2.2.1. Money and quantities are ``Decimal``; instants are
timezone-aware ``datetime``.

The types check nothing themselves: :func:`ocpi.tariffs.pricer.compile_tariff` and the
pricing functions validate them (so that hand-built values get the same checks as parsed
JSON, with the same field paths in the errors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar, cast

_T = TypeVar("_T")


class TariffDimension(StrEnum):
    """OCPI 2.2.1 TariffDimensionType (mod_tariffs, TariffDimensionType enum)."""

    ENERGY = "ENERGY"  # kWh; step_size in Wh
    FLAT = "FLAT"  # once per session
    PARKING_TIME = "PARKING_TIME"  # hours not charging; step_size in seconds
    TIME = "TIME"  # hours charging (or reserved); step_size in seconds


class CdrDimensionType(StrEnum):
    """OCPI 2.2.1 CdrDimensionType (mod_cdrs), plus 2.1.1's FLAT."""

    CURRENT = "CURRENT"
    ENERGY = "ENERGY"
    ENERGY_EXPORT = "ENERGY_EXPORT"
    ENERGY_IMPORT = "ENERGY_IMPORT"
    FLAT = "FLAT"  # OCPI 2.1.1 only; carries no pricing information
    MAX_CURRENT = "MAX_CURRENT"
    MIN_CURRENT = "MIN_CURRENT"
    MAX_POWER = "MAX_POWER"
    MIN_POWER = "MIN_POWER"
    PARKING_TIME = "PARKING_TIME"
    POWER = "POWER"
    RESERVATION_TIME = "RESERVATION_TIME"
    STATE_OF_CHARGE = "STATE_OF_CHARGE"
    TIME = "TIME"


class DayOfWeek(StrEnum):
    """OCPI DayOfWeek; ``weekday`` is Python's ``date.weekday()`` (Monday = 0)."""

    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"

    @property
    def weekday(self) -> int:
        return _DAY_INDEX[self]


_DAY_INDEX = {day: i for i, day in enumerate(DayOfWeek)}


class ReservationRestriction(StrEnum):
    """OCPI 2.2.1 ReservationRestrictionType."""

    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


class Price(NamedTuple):
    """OCPI Price: ``incl_vat`` is optional in OCPI, so it may be None in a tariff's bounds.

    (A NamedTuple rather than a frozen dataclass: results build many, and it is faster.)
    """

    excl_vat: Decimal
    incl_vat: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PriceComponent:
    """OCPI PriceComponent. ``vat`` None means no VAT applies (not the same as 0 %)."""

    type: TariffDimension
    price: Decimal
    step_size: int
    vat: Decimal | None = None


@dataclass(frozen=True, slots=True)
class TariffRestrictions:
    """OCPI 2.2.1 TariffRestrictions. Empty ``day_of_week`` means every day."""

    start_time: time | None = None
    end_time: time | None = None
    start_date: date | None = None
    end_date: date | None = None
    min_kwh: Decimal | None = None
    max_kwh: Decimal | None = None
    min_current: Decimal | None = None
    max_current: Decimal | None = None
    min_power: Decimal | None = None
    max_power: Decimal | None = None
    min_duration: int | None = None
    max_duration: int | None = None
    day_of_week: frozenset[DayOfWeek] = frozenset()
    reservation: ReservationRestriction | None = None


@dataclass(frozen=True, slots=True)
class TariffElement:
    price_components: tuple[PriceComponent, ...]
    restrictions: TariffRestrictions | None = None


@dataclass(frozen=True, slots=True)
class Tariff:
    """An OCPI tariff. ``ocpi_version`` records where it came from (2.1.1 has no VAT)."""

    id: str
    currency: str
    elements: tuple[TariffElement, ...]
    country_code: str | None = None
    party_id: str | None = None
    type: str | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    ocpi_version: str = "2.2.1"


@dataclass(frozen=True, slots=True)
class CdrDimension:
    type: CdrDimensionType
    volume: Decimal


@dataclass(frozen=True, slots=True)
class ChargingPeriod:
    """OCPI ChargingPeriod: it ends where the next one starts (the last at the session end)."""

    start_date_time: datetime
    dimensions: tuple[CdrDimension, ...]
    tariff_id: str | None = None


@dataclass(frozen=True, slots=True)
class Cdr:
    """What pricing needs from an OCPI CDR (or a Session so far).

    ``time_zone`` is the location's IANA zone when the document carried one.
    """

    start_date_time: datetime
    end_date_time: datetime
    currency: str
    charging_periods: tuple[ChargingPeriod, ...]
    id: str | None = None
    country_code: str | None = None
    party_id: str | None = None
    time_zone: str | None = None


def builder(cls: type[_T]) -> Callable[..., _T]:
    """A function of every field of ``cls`` (a frozen dataclass with slots), positional in
    field order, that builds the object ``cls(...)`` would.

    The generated ``__init__`` of a frozen dataclass sets each field through
    ``object.__setattr__``, looked up per field; so did the fast paths before, through
    each slot's descriptor, about twice as fast. This builds a plain object with the same
    slots, stores each field as an attribute (a specialised store), then makes it a
    ``cls`` by assigning ``__class__``, which Python allows between two classes of the same
    layout (same base, same slots): for the 14 fields of a restriction, a quarter of the
    time of the descriptors. Every field is set, so the result is the same object
    ``__init__`` would build: same class, same slot values.
    """
    names = tuple(field.name for field in fields(cast(Any, cls)))
    if tuple(getattr(cls, "__slots__", ())) != names:
        raise TypeError(f"{cls.__name__}: a dataclass with a slot per field, in field order")
    plain = type(f"_{cls.__name__}Slots", (), {"__slots__": names})
    lines = [f"def build({', '.join(names)}):", "    obj = new(plain)"]
    lines += [f"    obj.{name} = {name}" for name in names]
    lines += ["    obj.__class__ = cls", "    return obj"]
    namespace: dict[str, Any] = {"new": object.__new__, "plain": plain, "cls": cls}
    exec("\n".join(lines), namespace)
    return cast(Callable[..., _T], namespace["build"])
