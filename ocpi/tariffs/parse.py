"""Parsers from OCPI JSON (as decoded dicts) to the pricer's types, for 2.2.1 and 2.1.1.

OCPI 2.1.1 maps losslessly onto the 2.2.1-shaped types: it only lacks fields (VAT,
min/max price, current and reservation restrictions, tariff validity), which stay None.

What is checked here is the JSON shape of every field that decides a price: types,
required fields, enum values, time and date formats. Inside ``price_components`` and
``restrictions`` an unknown key is an error, because ignoring a pricing rule we do not
understand (a roaming hub's rounding extension, say) would silently give a wrong price.
Elsewhere unknown keys are ignored, as OCPI objects routinely carry more fields than
pricing needs. Semantic checks (negative prices, ranges) are made when the tariff is
compiled, so hand-built values get them too.

Numbers: a JSON decoder should be run with ``parse_float=Decimal`` (the CLI does); a
``float`` that slips through is converted through its shortest repr, never its binary
expansion, so ``0.1`` stays ``Decimal("0.1")``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, NoReturn, TypeVar

from ocpi.tariffs.errors import InvalidCdrError, InvalidTariffError, TariffError
from ocpi.tariffs.model import (
    Cdr,
    CdrDimension,
    CdrDimensionType,
    ChargingPeriod,
    DayOfWeek,
    Price,
    PriceComponent,
    ReservationRestriction,
    Tariff,
    TariffDimension,
    TariffElement,
    TariffRestrictions,
    builder,
)

_E = TypeVar("_E", bound=StrEnum)

OcpiVersion = Literal["2.2.1", "2.1.1"]
VERSIONS: tuple[OcpiVersion, ...] = ("2.2.1", "2.1.1")

# OCPI 2.2.1 mod_tariffs TariffRestrictions regexes.
_TIME_RE = re.compile(r"([0-1][0-9]|2[0-3]):[0-5][0-9]")
_DATE_RE = re.compile(r"([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")

_COMPONENT_KEYS: dict[OcpiVersion, frozenset[str]] = {
    "2.2.1": frozenset({"type", "price", "vat", "step_size"}),
    "2.1.1": frozenset({"type", "price", "step_size"}),
}
_RESTRICTION_KEYS_211 = frozenset(
    {
        "start_time",
        "end_time",
        "start_date",
        "end_date",
        "min_kwh",
        "max_kwh",
        "min_power",
        "max_power",
        "min_duration",
        "max_duration",
        "day_of_week",
    }
)
_RESTRICTION_KEYS: dict[OcpiVersion, frozenset[str]] = {
    "2.2.1": _RESTRICTION_KEYS_211 | {"min_current", "max_current", "reservation"},
    "2.1.1": _RESTRICTION_KEYS_211,
}
# OCPI 2.1.1 mod_cdrs CdrDimensionType; 2.2.1 replaced FLAT by the rest of the list.
_CDR_DIMENSIONS: dict[OcpiVersion, frozenset[CdrDimensionType]] = {
    "2.2.1": frozenset(CdrDimensionType) - {CdrDimensionType.FLAT},
    "2.1.1": frozenset(
        {
            CdrDimensionType.ENERGY,
            CdrDimensionType.FLAT,
            CdrDimensionType.MAX_CURRENT,
            CdrDimensionType.MIN_CURRENT,
            CdrDimensionType.PARKING_TIME,
            CdrDimensionType.TIME,
        }
    ),
}


class _Reader:
    """Walks one document, building field paths for the errors it raises."""

    def __init__(self, error: type[TariffError]) -> None:
        self.error = error

    def fail(self, path: str, reason: str) -> NoReturn:
        raise self.error(path, reason)

    def obj(self, value: object, path: str) -> Mapping[str, Any]:
        if type(value) is dict:  # (an ABC isinstance check costs more)
            return value
        if not isinstance(value, Mapping):
            self.fail(path, f"must be a JSON object, got {_kind(value)}")
        return value

    def array(self, value: object, path: str, *, min_items: int = 0) -> Sequence[Any]:
        if type(value) is list and len(value) >= min_items:
            return value
        if not isinstance(value, list | tuple):
            self.fail(path, f"must be a JSON array, got {_kind(value)}")
        if len(value) < min_items:
            self.fail(path, f"must have at least {min_items} item(s)")
        return value

    def required(self, data: Mapping[str, Any], key: str, path: str) -> object:
        value = data.get(key)
        if value is None:
            self.fail(_join(path, key), "is required")
        return value

    def string(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            self.fail(path, f"must be a string, got {_kind(value)}")
        return value

    def number(self, value: object, path: str) -> Decimal:
        if isinstance(value, bool):
            self.fail(path, "must be a number, got a boolean")
        if isinstance(value, int):
            return Decimal(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                self.fail(path, f"must be a finite number, got {value!r}")
            return Decimal(repr(value))
        if isinstance(value, Decimal):
            if not value.is_finite():
                self.fail(path, f"must be a finite number, got {value}")
            return value
        self.fail(path, f"must be a number, got {_kind(value)}")

    def integer(self, value: object, path: str) -> int:
        number = self.number(value, path)
        if number != number.to_integral_value():
            self.fail(path, f"must be an integer, got {number}")
        return int(number)

    def datetime_(self, value: object, path: str) -> datetime:
        text = self.string(value, path)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            self.fail(path, f"must be an RFC 3339 date-time, got {text!r}")
        # OCPI types.asciidoc DateTime: all timestamps are UTC; no designator means UTC.
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)

    def time_of_day(self, value: object, path: str) -> time:
        text = self.string(value, path)
        if not _TIME_RE.fullmatch(text):
            self.fail(path, f"must be a time of day HH:MM (24 h), got {text!r}")
        return time(int(text[:2]), int(text[3:]))

    def date_(self, value: object, path: str) -> date:
        text = self.string(value, path)
        if not _DATE_RE.fullmatch(text):
            self.fail(path, f"must be a date YYYY-MM-DD, got {text!r}")
        try:
            return date.fromisoformat(text)
        except ValueError:
            self.fail(path, f"is not a calendar date: {text!r}")

    def enum(self, enum: type[_E], value: object, path: str) -> _E:
        text = self.string(value, path)
        try:
            return enum(text)
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            self.fail(path, f"unknown value {text!r} (allowed: {allowed})")

    def currency(self, value: object, path: str) -> str:
        # What the pattern below accepts, when written as it must be (three ASCII capitals).
        if (
            type(value) is str
            and len(value) == 3
            and value.isascii()
            and value.isupper()
            and value.isalpha()
        ):
            return value
        text = self.string(value, path)
        if not _CURRENCY_RE.fullmatch(text.upper()):
            self.fail(path, f"must be an ISO 4217 currency code, got {text!r}")
        return text.upper()

    def no_unknown_keys(self, data: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
        for key, value in data.items():
            if key not in allowed and value is not None:
                self.fail(
                    _join(path, key),
                    "is not a field of this OCPI object; refusing to ignore it because it "
                    f"could change the price (known fields: {', '.join(sorted(allowed))})",
                )


def tariff_from_ocpi_dict(data: Mapping[str, Any], *, version: OcpiVersion = "2.2.1") -> Tariff:
    """Parse an OCPI Tariff object (decoded JSON) of the given version."""
    if version not in VERSIONS:
        _check_version(version)
    r = _Reader(InvalidTariffError)
    data = r.obj(data, "")
    elements_raw = data.get("elements")
    if type(elements_raw) is not list or not elements_raw:
        elements_raw = r.array(r.required(data, "elements", ""), "elements", min_items=1)
    dates: dict[str, date] = {}
    elements = tuple(
        [
            _element_fast(raw, version, dates) or _element(r, raw, f"elements[{i}]", version)
            for i, raw in enumerate(elements_raw)
        ]
    )
    tariff_type: str | None = None
    min_price = max_price = None
    start = end = None
    if version == "2.2.1":
        get = data.get
        if get("type") is not None:
            # TariffType is an open enum in the 2.2.1 OpenAPI schema and does not affect price.
            tariff_type = r.string(data["type"], "type")
        if get("min_price") is not None:
            min_price = _price(r, data["min_price"], "min_price")
        if get("max_price") is not None:
            max_price = _price(r, data["max_price"], "max_price")
        if get("start_date_time") is not None:
            start = r.datetime_(data["start_date_time"], "start_date_time")
        if get("end_date_time") is not None:
            end = r.datetime_(data["end_date_time"], "end_date_time")
    tariff_id = data.get("id")
    if type(tariff_id) is not str:
        tariff_id = r.string(r.required(data, "id", ""), "id")
    currency = r.currency(r.required(data, "currency", ""), "currency")
    country_code = data.get("country_code")
    if country_code is not None and type(country_code) is not str:
        country_code = r.string(country_code, "country_code")
    party_id = data.get("party_id")
    if party_id is not None and type(party_id) is not str:
        party_id = r.string(party_id, "party_id")
    # Tariff(id, currency, elements, country_code, party_id, type, min_price, max_price,
    # start_date_time, end_date_time, ocpi_version), see model.builder
    return _build_tariff(
        tariff_id,
        currency,
        elements,
        country_code,
        party_id,
        tariff_type,
        min_price,
        max_price,
        start,
        end,
        version,
    )


def cdr_from_ocpi_dict(data: Mapping[str, Any], *, version: OcpiVersion = "2.2.1") -> Cdr:
    """Parse an OCPI CDR (or Session) object of the given version; totals are ignored.

    2.1.1 calls the end ``stop_date_time``; ``end_date_time`` is accepted there too, as
    some 2.1.1 implementations send it. The location's ``time_zone`` is taken from
    ``cdr_location`` (2.2.1 CdrLocation has none, but some CPOs add it) or ``location``
    (2.1.1 embeds the full Location, which has one).
    """
    if version not in VERSIONS:
        _check_version(version)
    r = _Reader(InvalidCdrError)
    data = r.obj(data, "")
    start = _datetime_fast(data.get("start_date_time")) or r.datetime_(
        r.required(data, "start_date_time", ""), "start_date_time"
    )
    end = _cdr_end(r, data, version)
    periods_raw = data.get("charging_periods")
    if type(periods_raw) is not list or not periods_raw:
        periods_raw = r.array(
            r.required(data, "charging_periods", ""), "charging_periods", min_items=1
        )
    allowed = _CDR_DIMENSIONS[version]
    periods = tuple(
        [
            _period_fast(raw, allowed) or _period(r, raw, f"charging_periods[{i}]", version)
            for i, raw in enumerate(periods_raw)
        ]
    )
    currency = r.currency(r.required(data, "currency", ""), "currency")
    get = data.get
    cdr_id, country_code, party_id = get("id"), get("country_code"), get("party_id")
    if cdr_id is not None and type(cdr_id) is not str:
        cdr_id = r.string(cdr_id, "id")
    if country_code is not None and type(country_code) is not str:
        country_code = r.string(country_code, "country_code")
    if party_id is not None and type(party_id) is not str:
        party_id = r.string(party_id, "party_id")
    time_zone = _time_zone(r, data)
    # Cdr(start_date_time, end_date_time, currency, charging_periods, id, country_code,
    # party_id, time_zone), see model.builder
    return _build_cdr(start, end, currency, periods, cdr_id, country_code, party_id, time_zone)


# --------------------------------------------------------------------------- fast paths
#
# Tariffs and CDRs are parsed many times (a CDR builder parses each tariff it receives and
# every CDR). The ``_Reader`` walk builds a field path for every value it looks at, in case
# it has to name it in an error. The ``*_fast`` functions below take the common shape (plain
# dicts and lists, str, int and Decimal values) without building any path, and give up
# (return None) on anything else; the caller then parses that part again with the
# ``_Reader``, which accepts or refuses it exactly as before, with the same error. So a fast
# path must accept only what the careful one accepts, and build the same values from it.

_TARIFF_DIMENSIONS = {member.value: member for member in TariffDimension}
_CDR_DIMENSION_TYPES = {member.value: member for member in CdrDimensionType}
_DAYS = {member.value: member for member in DayOfWeek}
_RESERVATIONS = {member.value: member for member in ReservationRestriction}
_COMPONENT_KEYS_SET = {version: set(keys) for version, keys in _COMPONENT_KEYS.items()}
_RESTRICTION_KEYS_SET = {version: set(keys) for version, keys in _RESTRICTION_KEYS.items()}
_SEQUENCE = (list, tuple)


# Each takes every field, in the model's order (the calls below name them in comments;
# tests/tariffs/test_builders.py checks each against the model's own constructor).
_build_tariff = builder(Tariff)
_build_cdr = builder(Cdr)
_build_component = builder(PriceComponent)
_build_element = builder(TariffElement)
_build_restrictions = builder(TariffRestrictions)
_build_dimension = builder(CdrDimension)
_build_period = builder(ChargingPeriod)
_AMOUNT_KEYS = ("min_kwh", "max_kwh", "min_current", "max_current", "min_power", "max_power")
_AMOUNT_KEYS_SET = frozenset(_AMOUNT_KEYS)
_NO_AMOUNTS: tuple[Decimal | None, ...] = (None,) * len(_AMOUNT_KEYS)
_EVERY_DAY: frozenset[DayOfWeek] = frozenset()
_INVALID = Decimal("NaN")  # a marker: never a parsed value (NaN is refused)
# Every string _TIME_RE accepts, with its value: one lookup instead of a match and a parse.
_TIMES = {f"{h:02d}:{m:02d}": time(h, m) for h in range(24) for m in range(60)}


def _decimal_fast(value: object) -> Decimal | None:
    """``_Reader.number`` for a finite Decimal or an int (not a bool); None otherwise."""
    kind = type(value)
    if kind is Decimal:
        assert isinstance(value, Decimal)
        return value if value.is_finite() else None
    if kind is int:
        assert isinstance(value, int)
        return Decimal(value)
    return None


def _datetime_fast(value: object) -> datetime | None:
    if type(value) is not str:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    tz = parsed.tzinfo
    if tz is None:
        return parsed.replace(tzinfo=UTC)
    return parsed if tz is UTC else parsed.astimezone(UTC)


def _element_fast(
    raw: object, version: OcpiVersion, dates: dict[str, date]
) -> TariffElement | None:
    if type(raw) is not dict:
        return None
    components_raw = raw.get("price_components")
    if type(components_raw) not in _SEQUENCE or not components_raw:
        return None
    keys = _COMPONENT_KEYS_SET[version]
    components = []
    for data in components_raw:
        if type(data) is not dict or not keys.issuperset(data):
            return None
        kind = data.get("type")
        dimension = _TARIFF_DIMENSIONS.get(kind) if type(kind) is str else None
        price = data.get("price")
        step = data.get("step_size")
        vat = data.get("vat")
        # _decimal_fast, inline: a finite Decimal or an int (not a bool) for price and vat.
        if type(price) is not Decimal or not price.is_finite():
            price = Decimal(price) if type(price) is int else None
        if vat is not None and (type(vat) is not Decimal or not vat.is_finite()):
            vat = Decimal(vat) if type(vat) is int else _INVALID
        if dimension is None or price is None or type(step) is not int or vat is _INVALID:
            return None
        # PriceComponent(type, price, step_size, vat)
        components.append(_build_component(dimension, price, step, vat))
    restrictions = raw.get("restrictions")
    if restrictions is not None:
        restrictions = _restrictions_fast(restrictions, version, dates)
        if restrictions is None:
            return None
    # TariffElement(price_components, restrictions)
    return _build_element(tuple(components), restrictions)


def _restrictions_fast(
    data: object, version: OcpiVersion, dates: dict[str, date]
) -> TariffRestrictions | None:
    """``dates`` remembers the dates already parsed in this tariff (an element per hour of
    a day repeats the same two dates dozens of times)."""
    if type(data) is not dict or not _RESTRICTION_KEYS_SET[version].issuperset(data):
        return None
    get = data.get
    start_time = get("start_time")
    if start_time is not None:
        start_time = _TIMES.get(start_time) if type(start_time) is str else None
        if start_time is None:
            return None
    end_time = get("end_time")
    if end_time is not None:
        end_time = _TIMES.get(end_time) if type(end_time) is str else None
        if end_time is None:
            return None
    start_date = get("start_date")
    if start_date is not None:
        start_date = _date_fast(start_date, dates)
        if start_date is None:
            return None
    end_date = get("end_date")
    if end_date is not None:
        end_date = _date_fast(end_date, dates)
        if end_date is None:
            return None
    amounts: Sequence[Decimal | None] = _NO_AMOUNTS
    if not _AMOUNT_KEYS_SET.isdisjoint(data):  # (most restrictions: no kWh, current, power)
        amounts = found = []
        for key in _AMOUNT_KEYS:  # min/max kWh, current, power
            value = get(key)
            if value is not None:
                value = _decimal_fast(value)
                if value is None:
                    return None
            found.append(value)
    min_duration = get("min_duration")
    max_duration = get("max_duration")
    if (min_duration is not None and type(min_duration) is not int) or (
        max_duration is not None and type(max_duration) is not int
    ):
        return None
    days: frozenset[DayOfWeek] = _EVERY_DAY
    day_names = get("day_of_week")
    if day_names is not None:
        if type(day_names) not in _SEQUENCE:
            return None
        members = []
        for day in day_names:
            member = _DAYS.get(day) if type(day) is str else None
            if member is None:
                return None
            members.append(member)
        days = frozenset(members)
    reservation = get("reservation")
    if reservation is not None:
        reservation = _RESERVATIONS.get(reservation) if type(reservation) is str else None
        if reservation is None:
            return None
    min_kwh, max_kwh, min_current, max_current, min_power, max_power = amounts
    # TariffRestrictions(start_time, end_time, start_date, end_date, min_kwh, max_kwh,
    # min_current, max_current, min_power, max_power, min_duration, max_duration,
    # day_of_week, reservation)
    return _build_restrictions(
        start_time,
        end_time,
        start_date,
        end_date,
        min_kwh,
        max_kwh,
        min_current,
        max_current,
        min_power,
        max_power,
        min_duration,
        max_duration,
        days,
        reservation,
    )


def _date_fast(value: object, dates: dict[str, date]) -> date | None:
    if type(value) is not str:
        return None
    known = dates.get(value)
    if known is not None:
        return known
    if not _DATE_RE.fullmatch(value):
        return None
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        return None
    dates[value] = parsed
    return parsed


def _period_fast(raw: object, allowed: frozenset[CdrDimensionType]) -> ChargingPeriod | None:
    if type(raw) is not dict:
        return None
    start = _datetime_fast(raw.get("start_date_time"))
    dims_raw = raw.get("dimensions")
    if start is None or type(dims_raw) not in _SEQUENCE or not dims_raw:
        return None
    dims = []
    for dim in dims_raw:
        if type(dim) is not dict:
            return None
        kind = dim.get("type")
        if type(kind) is not str:
            return None
        member = _CDR_DIMENSION_TYPES.get(kind)
        volume = _decimal_fast(dim.get("volume"))
        if member is None or member not in allowed or volume is None:
            return None
        dims.append(_build_dimension(member, volume))  # CdrDimension(type, volume)
    tariff_id = raw.get("tariff_id")
    if tariff_id is not None and type(tariff_id) is not str:
        return None
    # ChargingPeriod(start_date_time, dimensions, tariff_id)
    return _build_period(start, tuple(dims), tariff_id)


def _check_version(version: str) -> None:
    if version not in VERSIONS:
        raise ValueError(f"unsupported OCPI version {version!r} (supported: {', '.join(VERSIONS)})")


def _element(r: _Reader, raw: object, path: str, version: OcpiVersion) -> TariffElement:
    data = r.obj(raw, path)
    components_raw = r.array(
        r.required(data, "price_components", path), _join(path, "price_components"), min_items=1
    )
    components = tuple(
        _component(r, c, f"{path}.price_components[{i}]", version)
        for i, c in enumerate(components_raw)
    )
    restrictions = None
    if data.get("restrictions") is not None:
        restrictions = _restrictions(r, data["restrictions"], _join(path, "restrictions"), version)
    return TariffElement(price_components=components, restrictions=restrictions)


def _component(r: _Reader, raw: object, path: str, version: OcpiVersion) -> PriceComponent:
    data = r.obj(raw, path)
    r.no_unknown_keys(data, _COMPONENT_KEYS[version], path)
    vat = None
    if data.get("vat") is not None:
        vat = r.number(data["vat"], _join(path, "vat"))
    return PriceComponent(
        type=r.enum(TariffDimension, r.required(data, "type", path), _join(path, "type")),
        price=r.number(r.required(data, "price", path), _join(path, "price")),
        step_size=r.integer(r.required(data, "step_size", path), _join(path, "step_size")),
        vat=vat,
    )


def _restrictions(r: _Reader, raw: object, path: str, version: OcpiVersion) -> TariffRestrictions:
    data = r.obj(raw, path)
    r.no_unknown_keys(data, _RESTRICTION_KEYS[version], path)

    def get(key: str) -> object:
        return data.get(key)

    def num(key: str) -> Decimal | None:
        value = get(key)
        return None if value is None else r.number(value, _join(path, key))

    def integer(key: str) -> int | None:
        value = get(key)
        return None if value is None else r.integer(value, _join(path, key))

    days: frozenset[DayOfWeek] = frozenset()
    if get("day_of_week") is not None:
        days_path = _join(path, "day_of_week")
        days = frozenset(
            r.enum(DayOfWeek, d, f"{days_path}[{i}]")
            for i, d in enumerate(r.array(get("day_of_week"), days_path))
        )
    start_time = get("start_time")
    end_time = get("end_time")
    start_date = get("start_date")
    end_date = get("end_date")
    reservation = get("reservation")
    return TariffRestrictions(
        start_time=None
        if start_time is None
        else r.time_of_day(start_time, _join(path, "start_time")),
        end_time=None if end_time is None else r.time_of_day(end_time, _join(path, "end_time")),
        start_date=None if start_date is None else r.date_(start_date, _join(path, "start_date")),
        end_date=None if end_date is None else r.date_(end_date, _join(path, "end_date")),
        min_kwh=num("min_kwh"),
        max_kwh=num("max_kwh"),
        min_current=num("min_current"),
        max_current=num("max_current"),
        min_power=num("min_power"),
        max_power=num("max_power"),
        min_duration=integer("min_duration"),
        max_duration=integer("max_duration"),
        day_of_week=days,
        reservation=None
        if reservation is None
        else r.enum(ReservationRestriction, reservation, _join(path, "reservation")),
    )


def _price(r: _Reader, raw: object, path: str) -> Price:
    data = r.obj(raw, path)
    incl = data.get("incl_vat")
    return Price(
        excl_vat=r.number(r.required(data, "excl_vat", path), _join(path, "excl_vat")),
        incl_vat=None if incl is None else r.number(incl, _join(path, "incl_vat")),
    )


def _cdr_end(r: _Reader, data: Mapping[str, Any], version: OcpiVersion) -> datetime:
    if version == "2.2.1":
        return _datetime_fast(data.get("end_date_time")) or r.datetime_(
            r.required(data, "end_date_time", ""), "end_date_time"
        )
    stop = data.get("stop_date_time")
    end = data.get("end_date_time")
    if stop is None and end is None:
        r.fail("stop_date_time", "is required (OCPI 2.1.1 CDR)")
    stop_dt = None if stop is None else r.datetime_(stop, "stop_date_time")
    end_dt = None if end is None else r.datetime_(end, "end_date_time")
    if stop_dt is not None and end_dt is not None and stop_dt != end_dt:
        r.fail("end_date_time", f"contradicts stop_date_time ({stop_dt.isoformat()})")
    result = stop_dt or end_dt
    assert result is not None
    return result


def _period(r: _Reader, raw: object, path: str, version: OcpiVersion) -> ChargingPeriod:
    data = r.obj(raw, path)
    start = r.datetime_(r.required(data, "start_date_time", path), _join(path, "start_date_time"))
    dims_path = _join(path, "dimensions")
    dims_raw = r.array(r.required(data, "dimensions", path), dims_path, min_items=1)
    allowed = _CDR_DIMENSIONS[version]
    dims = []
    for i, raw_dim in enumerate(dims_raw):
        dim_path = f"{dims_path}[{i}]"
        dim = r.obj(raw_dim, dim_path)
        kind = r.enum(CdrDimensionType, r.required(dim, "type", dim_path), _join(dim_path, "type"))
        if kind not in allowed:
            r.fail(
                _join(dim_path, "type"), f"{kind.value} is not an OCPI {version} CdrDimensionType"
            )
        dims.append(
            CdrDimension(
                kind, r.number(r.required(dim, "volume", dim_path), _join(dim_path, "volume"))
            )
        )
    tariff_id = data.get("tariff_id")
    return ChargingPeriod(
        start_date_time=start,
        dimensions=tuple(dims),
        tariff_id=None if tariff_id is None else r.string(tariff_id, _join(path, "tariff_id")),
    )


def _time_zone(r: _Reader, data: Mapping[str, Any]) -> str | None:
    for key in ("cdr_location", "location"):
        location = data.get(key)
        if location is None:
            continue
        if (type(location) is dict or isinstance(location, Mapping)) and location.get(
            "time_zone"
        ) is not None:
            return r.string(location["time_zone"], f"{key}.time_zone")
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float | Decimal):
        return "a number"
    return type(value).__name__
