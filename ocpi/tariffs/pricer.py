"""Price a charging session (or a whole CDR) with an OCPI tariff.

Spec references are to OCPI 2.2.1 (ocpi/ocpi, branch release-2.2.1-bugfixes):
``mod_tariffs`` (Tariff object, TariffRestrictions, PriceComponent, reservation notes) and
``mod_cdrs`` (ChargingPeriod, the step_size section, the CDR total fields).

How a session is priced:

1. The charging periods are put in time order. Each ends where the next starts, the last
   at the session end (mod_cdrs, ChargingPeriod.start_date_time). Periods with a
   RESERVATION_TIME dimension form the reservation part, which comes first; the others
   form the session part. Durations (min/max_duration) count from the first period of a
   part, so parking time counts too.
2. A period is cut wherever a restriction can change value inside it: a local time of
   day or date change (in the location's zone, DST included), a duration threshold, or a
   kWh threshold of the energy charged so far. Volumes are spread evenly over the period,
   so each piece gets its share. Each piece is evaluated where it starts (all OCPI
   restriction intervals include their start and exclude their end).
3. For each dimension of each piece, the first element (in tariff order) that has a
   component of that dimension and whose restrictions all hold prices it (mod_tariffs,
   Tariff object). No such element: that volume is free. FLAT is charged once, by the
   first piece for which a FLAT element holds.
4. step_size applies once to session totals (mod_cdrs, step_size): to the priced energy,
   with the step of the last ENERGY component used; and to the priced time of whichever
   of TIME and PARKING_TIME was priced last (charging time is not rounded when parking
   follows), with that component's step. The extra is billed at that component's price.
5. min_price / max_price bound the total, each VAT limb on its own (mod_tariffs notes).
6. Money is rounded once, at the end (half-up to the currency's minor unit).

Everything is computed with ``Decimal`` in a 50-digit context; durations are integer
microseconds.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import (
    ROUND_CEILING,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    getcontext,
    setcontext,
)
from functools import lru_cache, partial
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ocpi.tariffs.clock import DAY_US, HOUR_US, MINUTE_US, US, LocalClock, from_us
from ocpi.tariffs.errors import (
    CurrencyMismatchError,
    InvalidArgumentError,
    InvalidCdrError,
    InvalidTariffError,
    TariffNotApplicableError,
)
from ocpi.tariffs.model import (
    Cdr,
    CdrDimensionType,
    ChargingPeriod,
    DayOfWeek,
    Price,
    PriceComponent,
    ReservationRestriction,
    Tariff,
    TariffDimension,
    TariffRestrictions,
    builder,
)
from ocpi.tariffs.result import (
    _MINOR_UNITS,
    QUANTITY_PLACES,
    ZERO,
    ZERO_PRICE,
    BreakdownLine,
    CdrTotals,
    LineKind,
    Part,
    PricingResult,
    _pricing_result,
    money_places,
)

__all__ = [
    "CompiledTariff",
    "compile_tariff",
    "price_cdr",
    "price_session",
    "tariff_is_active",
]

_CONTEXT = Context(
    prec=50, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)
# _CONTEXT with half-up rounding: ``_HALF_UP.quantize(x, q)`` is ``x.quantize(q,
# rounding=ROUND_HALF_UP)`` inside the pricer's context, without parsing keyword arguments.
_HALF_UP = Context(
    prec=50, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow]
)
_ZERO = ZERO
_ONE = Decimal(1)
_HUNDRED = Decimal(100)
_WH_PER_KWH = Decimal(1000)
_SECONDS_PER_HOUR = Decimal(3600)
_US_PER_HOUR = Decimal(HOUR_US)
# Splitting a period divides volumes into fractions; sums of such shares can carry noise in
# the 40th digit. Totals are cleaned to this many places before step_size rounding (which
# must not bill a whole extra step for 1e-40 s) and before the final rounding.
_CLEAN = Decimal("1e-18")
# A piece narrower than this fraction of its period only exists through that noise (two
# boundaries at the same point computed two ways); it is merged into its neighbour.
_SLIVER = Decimal("1e-24")
# Volumes in hours with 4-6 decimals are off by up to a third of a second; more than this
# between a period's TIME/PARKING_TIME and its length is a contradiction worth a warning.
_TIME_SLACK_US = US
_MILLI = Decimal("0.001")  # how consumed seconds / Wh are shown in a step_size note
_TENTH_MILLI = Decimal("0.0001")  # how hours are shown in warnings
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # to_us(t) is (t - _EPOCH) // _ONE_US
_ONE_US = timedelta(microseconds=1)
# ``_tuple(Price, (a, b))`` is ``Price(a, b)`` without the NamedTuple's Python-level
# __new__ (results build a dozen of them).
_tuple = tuple.__new__
# No price, volume, VAT rate, step or bound in a real tariff or CDR comes near this; above
# it, the 50-digit arithmetic could no longer hold 18 decimals, so such input is refused.
_LIMIT = 10**9
_DECIMAL_LIMIT = Decimal(_LIMIT)  # (a Decimal compares faster with a Decimal than an int)

# Dimension slots in the accumulators.
_FLAT, _ENERGY, _TIME, _PARKING = 0, 1, 2, 3
_DIMENSIONS = (
    TariffDimension.FLAT,
    TariffDimension.ENERGY,
    TariffDimension.TIME,
    TariffDimension.PARKING_TIME,
)
_SLOT = {dim: i for i, dim in enumerate(_DIMENSIONS)}
_METERED_SLOTS = (_ENERGY, _TIME, _PARKING)
_NO_CANDIDATES: tuple[tuple[_Candidate, ...], ...] = ((), (), (), ())
_METERED = (
    CdrDimensionType.ENERGY,
    CdrDimensionType.TIME,
    CdrDimensionType.PARKING_TIME,
    CdrDimensionType.RESERVATION_TIME,
)


# --------------------------------------------------------------------------- compiling


class _Check:
    """One element's restrictions, in the units the pricer evaluates (µs, day numbers)."""

    __slots__ = (
        "day_from",
        "day_to",
        "dow_mask",
        "local",
        "max_current",
        "max_dur",
        "max_kwh",
        "max_power",
        "min_current",
        "min_dur",
        "min_kwh",
        "min_power",
        "pure_local",
        "tod_end",
        "tod_start",
        "tod_wrap",
    )

    def __init__(
        self,
        start_time: time | None,
        end_time: time | None,
        start_date: date | None,
        end_date: date | None,
        days: frozenset[DayOfWeek],
        r: TariffRestrictions,
        pure_local: bool,
    ) -> None:
        # (The restrictions' fields come read already: _compile_restrictions has them.)
        self.day_from = None if start_date is None else start_date.toordinal() - _EPOCH_ORDINAL
        self.day_to = None if end_date is None else end_date.toordinal() - _EPOCH_ORDINAL
        mask = 0
        for day in days:
            mask |= 1 << day.weekday
        mask = self.dow_mask = mask or 0x7F  # no day_of_week: every day
        # start_time/end_time: "If end_time < start_time then the period wraps around to
        # the next day. To stop at end of the day use: 00:00." An absent start is 00:00,
        # an absent end is the end of the day; equal times wrap all the way round.
        start = 0 if start_time is None else _tod_us(start_time)
        end = DAY_US if end_time is None else (_tod_us(end_time) or DAY_US)
        tod_start: int | None = None
        self.tod_end = 0
        self.tod_wrap = False
        if start != end and (start != 0 or end != DAY_US):
            tod_start = start
            self.tod_end = end
            self.tod_wrap = end < start
        self.tod_start = tod_start
        self.local = (
            start_date is not None or end_date is not None or mask != 0x7F or tod_start is not None
        )
        # Whether only the local date and time of day decide this check.
        self.pure_local = pure_local
        if pure_local:  # (most restrictions: times of day, dates, days of the week)
            self.min_kwh = self.max_kwh = self.min_current = self.max_current = None
            self.min_power = self.max_power = self.min_dur = self.max_dur = None
            return
        self.min_kwh, self.max_kwh = r.min_kwh, r.max_kwh
        self.min_current, self.max_current = r.min_current, r.max_current
        self.min_power, self.max_power = r.min_power, r.max_power
        min_duration, max_duration = r.min_duration, r.max_duration
        self.min_dur = None if min_duration is None else min_duration * US
        self.max_dur = None if max_duration is None else max_duration * US

    def is_trivial(self) -> bool:
        return not self.local and self.pure_local


# Microseconds after midnight of each whole minute's time of day (what OCPI's HH:MM gives).
_TOD_US = {time(h, m): h * HOUR_US + m * MINUTE_US for h in range(24) for m in range(60)}


def _tod_us(t: time) -> int:
    if type(t) is time and t.tzinfo is None:
        known = _TOD_US.get(t)
        if known is not None:
            return known
    return t.hour * HOUR_US + t.minute * MINUTE_US + t.second * US + t.microsecond


@dataclass(slots=True, eq=False)  # not frozen: a frozen dataclass is slower to build
class _Candidate:
    element_index: int
    component_index: int
    price: Decimal
    vat: Decimal | None
    vat_factor: Decimal  # 1 + vat/100; 1 when no VAT applies
    step_size: int
    check: _Check | None  # None: no restrictions (besides the part's reservation filter)


class _Rules:
    """The candidates of one part (session, or reservation used/expired), per dimension."""

    __slots__ = (
        "candidates",
        "durations",
        "kwh",
        "memo",
        "memo_ok",
        "needs_local",
        "plain",
        "times_of_day",
        "uses_current",
        "uses_power",
    )
    memo: dict[tuple[int, int, int], _Candidate | None]
    memo_ok: tuple[bool, ...]
    needs_local: bool
    plain: bool
    times_of_day: list[int]
    durations: tuple[int, ...]
    kwh: tuple[Decimal, ...]
    uses_current: bool
    uses_power: bool

    def __init__(self, candidates: tuple[tuple[_Candidate, ...], ...]) -> None:
        self.candidates = candidates
        self.memo = {}
        # One pass over the checks: the instants a period must be cut at, and what the
        # pieces must be evaluated with.
        memo_ok = []
        tods = {0}  # local midnight: the date and the day of the week change
        durations: set[int] = set()
        kwh: set[Decimal] = set()
        any_check = needs_local = uses_current = uses_power = False
        for cands in candidates:
            # Where every candidate of a dimension depends on the local date and time of
            # day only, the choice is the same for all pieces in one local day and one
            # interval between the tariff's times of day: remember it (for tariffs with an
            # element per hour, this replaces a scan of dozens of elements per piece).
            checked = mixed = False  # mixed: a check not on local date and time only
            for c in cands:
                chk = c.check
                if chk is None:
                    continue
                checked = True
                if chk.local:
                    needs_local = True
                    if chk.tod_start is not None:
                        tods.add(chk.tod_start)
                        tods.add(chk.tod_end % DAY_US)
                if chk.pure_local:
                    continue
                mixed = True
                for d in (chk.min_dur, chk.max_dur):
                    if d is not None:
                        durations.add(d)
                for k in (chk.min_kwh, chk.max_kwh):
                    if k is not None:
                        kwh.add(k)
                if chk.min_current is not None or chk.max_current is not None:
                    uses_current = True
                if chk.min_power is not None or chk.max_power is not None:
                    uses_power = True
            memo_ok.append(checked and not mixed)
            any_check = any_check or checked
        # No restrictions at all (or no candidates): nothing to remember, no period is ever
        # cut, and the first candidate of a dimension prices all of it (see _run_plain).
        self.plain = not any_check
        if not any_check:
            self.memo_ok = (False,) * len(candidates)
            self.needs_local = False
            self.times_of_day = []
            self.durations = ()
            self.kwh = ()
            self.uses_current = self.uses_power = False
            return
        self.memo_ok = tuple(memo_ok)
        self.needs_local = needs_local
        self.times_of_day = sorted(tods) if needs_local else []
        self.durations = tuple(sorted(durations))
        self.kwh = tuple(sorted(kwh))
        self.uses_current = uses_current
        self.uses_power = uses_power


@dataclass(frozen=True, slots=True)
class CompiledTariff:
    """A validated tariff, pre-arranged for pricing many sessions. Build it once with
    :func:`compile_tariff` and reuse it. Its content never changes; it remembers element
    choices per local time slot as it prices (a bounded cache), which is safe to share
    between threads."""

    tariff: Tariff
    session: _Rules
    reservation: _Rules
    reservation_expired: _Rules
    warnings: tuple[str, ...]


# Rules without candidates (the reservation parts of a tariff without reservation elements):
# nothing is ever remembered in them, so one object serves every tariff.
_NO_RULES = _Rules(_NO_CANDIDATES)
# CompiledTariff(tariff, session, reservation, reservation_expired, warnings), built
# without its generated __init__ (object.__setattr__ per field of a frozen dataclass).
_build_compiled = builder(CompiledTariff)


def compile_tariff(tariff: Tariff) -> CompiledTariff:
    """Validate ``tariff`` and arrange it for pricing.

    Raises :class:`InvalidTariffError` naming the field when the tariff is not valid OCPI
    (negative price or VAT, negative step_size, a dimension twice in one element, a
    reservation element pricing energy or parking, min_price above max_price, ...).
    """
    saved = getcontext()
    setcontext(_CONTEXT)  # as in price_session: no copy of a context per call
    try:
        return _compile(tariff)
    finally:
        setcontext(saved)


def _compile(tariff: Tariff) -> CompiledTariff:
    warnings: list[str] = []
    _validate_tariff_header(tariff)
    if not tariff.elements:
        raise InvalidTariffError("elements", "must have at least 1 element")
    session: tuple[list[_Candidate], ...] = ([], [], [], [])
    # The reservation parts' candidates, made once a reservation element appears (few do).
    used: tuple[list[_Candidate], ...] | None = None
    expires: tuple[list[_Candidate], ...] | None = None
    # Field paths (for errors) are built only when an error is raised.
    for ei, element in enumerate(tariff.elements):
        restrictions = element.restrictions
        if restrictions is None:
            check = reservation = None
        else:
            check = _compile_restrictions(restrictions, ei, warnings)
            reservation = restrictions.reservation
        components = element.price_components
        if not components:
            raise InvalidTariffError(
                f"elements[{ei}].price_components", "must have at least 1 component"
            )
        seen: list[TariffDimension] = []
        for ci, component in enumerate(components):
            kind, price, vat, step = (
                component.type,
                component.price,
                component.vat,
                component.step_size,
            )
            if (
                type(kind) is TariffDimension
                and type(price) is Decimal
                and price.is_finite()
                and 0 <= price <= _LIMIT
                and type(step) is int
                and 0 <= step <= _LIMIT
                and (vat is None or _plausible(vat))
            ):  # the common case of _compile_component's checks, inline
                factor = _ONE if vat is None else _ONE + vat / _HUNDRED
                candidate = _Candidate(ei, ci, price, vat, factor, step, check)
            else:
                candidate = _compile_component(component, ei, ci, check)
            if kind in seen:
                # mod_tariffs: "Only one Price Component per dimension can be active at any
                # point in time"; two in one element would leave the price ambiguous.
                raise InvalidTariffError(
                    f"{_component_path(ei, ci)}.type",
                    f"a second {kind.value} component in one element is ambiguous",
                )
            seen.append(kind)
            slot = _SLOT[kind]
            if reservation is None:
                session[slot].append(candidate)
                continue
            # TariffRestrictions.reservation: "A reservation can only have: FLAT and TIME
            # TariffDimensions, where TIME is for the duration of the reservation."
            if kind is not TariffDimension.FLAT and kind is not TariffDimension.TIME:
                raise InvalidTariffError(
                    f"{_component_path(ei, ci)}.type",
                    f"a reservation element can only price FLAT and TIME, not {kind.value}",
                )
            if used is None or expires is None:
                used, expires = ([], [], [], []), ([], [], [], [])
            if reservation is ReservationRestriction.RESERVATION:
                used[slot].append(candidate)
            else:
                expires[slot].append(candidate)
    # ReservationRestrictionType note: with both RESERVATION and RESERVATION_EXPIRES TIME
    # components, an expired reservation is priced by the RESERVATION_EXPIRES one. Expired
    # reservations therefore look at RESERVATION_EXPIRES elements first (FLAT likewise).
    if used is not None and expires is not None:
        used_rules = _Rules(tuple(tuple(c) for c in used))
        expired_rules = _Rules(tuple(tuple(e + u) for e, u in zip(expires, used, strict=True)))
    else:  # no reservation elements (most tariffs): rules that never hold a candidate
        used_rules = expired_rules = _NO_RULES
    flat, energy, time_, parking = session
    return _build_compiled(
        tariff,
        _Rules((tuple(flat), tuple(energy), tuple(time_), tuple(parking))),
        used_rules,
        expired_rules,
        tuple(warnings),
    )


def _validate_tariff_header(tariff: Tariff) -> None:
    if len(tariff.currency) != 3 or not tariff.currency.isalpha():
        raise InvalidTariffError("currency", f"must be an ISO 4217 code, got {tariff.currency!r}")
    if (
        tariff.start_date_time is None
        and tariff.end_date_time is None
        and tariff.min_price is None
        and tariff.max_price is None
    ):
        return  # most tariffs: nothing else to check
    for name in ("start_date_time", "end_date_time"):
        value = getattr(tariff, name)
        if value is not None and value.tzinfo is None:
            raise InvalidTariffError(name, "must be timezone-aware (OCPI DateTime is UTC)")
    if (
        tariff.start_date_time is not None
        and tariff.end_date_time is not None
        and tariff.end_date_time <= tariff.start_date_time
    ):
        raise InvalidTariffError("end_date_time", "must be after start_date_time")
    for name in ("min_price", "max_price"):
        bound = getattr(tariff, name)
        if bound is None:
            continue
        _non_negative(bound.excl_vat, f"{name}.excl_vat", InvalidTariffError)
        if bound.incl_vat is not None:
            _non_negative(bound.incl_vat, f"{name}.incl_vat", InvalidTariffError)
            if bound.incl_vat < bound.excl_vat:
                raise InvalidTariffError(f"{name}.incl_vat", "must not be below excl_vat")
    low, high = tariff.min_price, tariff.max_price
    if low is not None and high is not None:
        if low.excl_vat > high.excl_vat:
            raise InvalidTariffError("min_price.excl_vat", "must not exceed max_price.excl_vat")
        if low.incl_vat is not None and high.incl_vat is not None and low.incl_vat > high.incl_vat:
            raise InvalidTariffError("min_price.incl_vat", "must not exceed max_price.incl_vat")


def _component_path(ei: int, ci: int) -> str:
    return f"elements[{ei}].price_components[{ci}]"


def _compile_component(
    component: PriceComponent, ei: int, ci: int, check: _Check | None
) -> _Candidate:
    kind, price, vat, step = component.type, component.price, component.vat, component.step_size
    if not isinstance(kind, TariffDimension):
        raise InvalidTariffError(f"{_component_path(ei, ci)}.type", f"unknown dimension {kind!r}")
    if not _plausible(price):
        _non_negative(price, f"{_component_path(ei, ci)}.price", InvalidTariffError)
    if vat is not None and not _plausible(vat):
        _non_negative(vat, f"{_component_path(ei, ci)}.vat", InvalidTariffError)
    if type(step) is not int and (isinstance(step, bool) or not isinstance(step, int)):
        raise InvalidTariffError(f"{_component_path(ei, ci)}.step_size", "must be an integer")
    if not 0 <= step <= _LIMIT:
        raise InvalidTariffError(
            f"{_component_path(ei, ci)}.step_size",
            f"must be between 0 and {_LIMIT:,}, got {step}",
        )
    factor = _ONE if vat is None else _ONE + vat / _HUNDRED
    return _Candidate(ei, ci, price, vat, factor, step, check)


_AMOUNTS = ("min_kwh", "max_kwh", "min_current", "max_current", "min_power", "max_power")
_RANGES = (
    ("start_date", "end_date"),
    ("min_kwh", "max_kwh"),
    ("min_current", "max_current"),
    ("min_power", "max_power"),
    ("min_duration", "max_duration"),
)


def _compile_restrictions(r: TariffRestrictions, ei: int, warnings: list[str]) -> _Check | None:
    """The restrictions' semantic checks (errors naming the field), their warnings, and
    their :class:`_Check`; None when they restrict nothing."""
    start_time, end_time, start_date, end_date, days = (
        r.start_time,
        r.end_time,
        r.start_date,
        r.end_date,
        r.day_of_week,
    )
    amounts = (
        r.min_kwh is not None
        or r.max_kwh is not None
        or r.min_current is not None
        or r.max_current is not None
        or r.min_power is not None
        or r.max_power is not None
    )
    durations = r.min_duration is not None or r.max_duration is not None
    if not amounts and not durations:
        if start_time is None and end_time is None and start_date is None and end_date is None:
            if not days:
                return None  # restrictions that restrict nothing
        elif start_date is not None and end_date is not None and start_date >= end_date:
            _warn_range(warnings, ei, "start_date", start_date, "end_date", end_date)
        check = _Check(start_time, end_time, start_date, end_date, days, r, True)
        return check if check.local else None
    if amounts:
        for name in _AMOUNTS:
            value = getattr(r, name)
            if value is not None and not _plausible(value):
                _non_negative(value, f"elements[{ei}].restrictions.{name}", InvalidTariffError)
    if durations:
        for name in ("min_duration", "max_duration"):
            value = getattr(r, name)
            rpath = f"elements[{ei}].restrictions"
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidTariffError(f"{rpath}.{name}", "must be an integer number of seconds")
            if value is not None and not 0 <= value <= _LIMIT:
                raise InvalidTariffError(
                    f"{rpath}.{name}", f"must be between 0 and {_LIMIT:,} seconds, got {value}"
                )
    for low, high in _RANGES:
        lo, hi = getattr(r, low), getattr(r, high)
        if lo is not None and hi is not None and lo >= hi:
            _warn_range(warnings, ei, low, lo, high, hi)
    return _Check(start_time, end_time, start_date, end_date, days, r, False)


def _warn_range(warnings: list[str], ei: int, low: str, lo: object, high: str, hi: object) -> None:
    # A range that holds nowhere is legal JSON but cannot be what the CPO meant; say so in
    # every result rather than refuse the tariff (it may come from another party).
    warnings.append(
        f"tariff elements[{ei}].restrictions: {low} {lo} is not below {high} {hi}, "
        "so this element never applies"
    )


def _plausible(value: object) -> bool:
    """What :func:`_non_negative` accepts, for the common case (a plain Decimal)."""
    if type(value) is not Decimal or not isinstance(value, Decimal):  # (isinstance for mypy)
        return False
    return value.is_finite() and 0 <= value <= _LIMIT


def _non_negative(
    value: Decimal, path: str, error: type[InvalidTariffError] | type[InvalidCdrError]
) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise error(path, f"must be a finite Decimal, got {value!r}")
    if value < 0:
        raise error(path, f"must not be negative, got {value}")
    if value > _LIMIT:
        raise error(path, f"is implausibly large ({value}); the limit is {_LIMIT:,}")


def tariff_is_active(tariff: Tariff, at: datetime) -> bool:
    """Whether ``tariff`` is valid at ``at`` (Tariff.start_date_time / end_date_time)."""
    if tariff.start_date_time is not None and at < tariff.start_date_time:
        return False
    return tariff.end_date_time is None or at <= tariff.end_date_time


# --------------------------------------------------------------------------- periods

# Bits for the dimensions a period meters (RESERVATION_TIME excludes the others).
_B_ENERGY, _B_TIME, _B_PARKING, _B_RESERVATION = 1, 2, 4, 8
_METERED_BITS = {
    CdrDimensionType.ENERGY: _B_ENERGY,
    CdrDimensionType.TIME: _B_TIME,
    CdrDimensionType.PARKING_TIME: _B_PARKING,
    CdrDimensionType.RESERVATION_TIME: _B_RESERVATION,
}
_METERED_NAMES = {bit: kind.value for kind, bit in _METERED_BITS.items()}


class _Period:
    """A charging period on the integer-microsecond timeline, with its volumes."""

    __slots__ = (
        "cur_hi",
        "cur_lo",
        "end",
        "energy",
        "index",
        "metered",
        "parking",
        "pow_hi",
        "pow_lo",
        "reservation",
        "start",
        "time",
    )

    def __init__(self, index: int, start: int) -> None:
        self.index = index
        self.start = start
        self.end = start
        self.metered = 0
        self.energy = _ZERO
        self.time = _ZERO
        self.parking = _ZERO
        self.reservation = _ZERO
        self.cur_lo: Decimal | None = None
        self.cur_hi: Decimal | None = None
        self.pow_lo: Decimal | None = None
        self.pow_hi: Decimal | None = None


class _LevelsOf:
    """The current and power levels a period reports, as _Period holds them (see
    _usual_rows)."""

    __slots__ = ("cur_hi", "cur_lo", "pow_hi", "pow_lo")

    def __init__(
        self,
        cur_lo: Decimal | None,
        cur_hi: Decimal | None,
        pow_lo: Decimal | None,
        pow_hi: Decimal | None,
    ) -> None:
        self.cur_lo = cur_lo
        self.cur_hi = cur_hi
        self.pow_lo = pow_lo
        self.pow_hi = pow_hi


# A period reporting no current or power (most); never changed.
_NO_LEVELS = _LevelsOf(None, None, None, None)
# What restrictions on current and power are evaluated with.
_Levels = _Period | _LevelsOf


def _prepare_period(index: int, period: ChargingPeriod, tariff_id: str) -> _Period:
    start = period.start_date_time
    if start.tzinfo is None:
        raise InvalidCdrError(
            f"charging_periods[{index}].start_date_time",
            "must be timezone-aware (OCPI DateTime is UTC)",
        )
    if period.tariff_id is not None and period.tariff_id != tariff_id:
        raise InvalidCdrError(
            f"charging_periods[{index}].tariff_id",
            f"names tariff {period.tariff_id!r}, but the tariff being applied is {tariff_id!r}",
        )
    p = _Period(index, (start - _EPOCH) // _ONE_US)  # to_us
    if not period.dimensions:
        raise InvalidCdrError(f"charging_periods[{index}].dimensions", "must not be empty")
    # The kinds seen so far: metered ones are the bits of p.metered; the others are in
    # ``seen`` (made only once one appears).
    seen: set[CdrDimensionType] | None = None
    current = power = None
    for di, dim in enumerate(period.dimensions):
        kind, volume = dim.type, dim.volume
        # The common case first: an energy, time or parking quantity not seen before, with
        # a plausible volume (else the checks below, in their order).
        bit = _METERED_BITS.get(kind) if type(kind) is CdrDimensionType else None
        if (
            bit is not None
            and not p.metered & bit
            and type(volume) is Decimal
            and volume.is_finite()
            and 0 <= volume <= _LIMIT
        ):
            p.metered |= bit
            if bit == _B_ENERGY:
                p.energy = volume
            elif bit == _B_TIME:
                p.time = volume
            elif bit == _B_PARKING:
                p.parking = volume
            else:
                p.reservation = volume
            continue
        twice = (seen is not None and kind in seen) or (bit is not None and p.metered & bit)
        if twice or not isinstance(kind, CdrDimensionType):
            path = f"charging_periods[{index}].dimensions[{di}].type"
            if twice:
                raise InvalidCdrError(path, f"{kind.value} appears twice in one period")
            raise InvalidCdrError(path, f"unknown dimension {kind!r}")
        if seen is None:
            seen = set()
        seen.add(kind)
        if not isinstance(volume, Decimal) or not volume.is_finite() or abs(volume) > _LIMIT:
            raise InvalidCdrError(
                f"charging_periods[{index}].dimensions[{di}].volume",
                f"must be a finite Decimal of at most {_LIMIT:,}, got {volume!r}",
            )
        bit = _METERED_BITS.get(kind)
        if bit is not None:
            if volume < 0:
                # ENERGY may be negative for feed-in (mod_cdrs CdrDimensionType), but OCPI
                # 2.2.1 tariffs have no price for it: refuse rather than bill a negative sum.
                raise InvalidCdrError(
                    f"charging_periods[{index}].dimensions[{di}].volume",
                    f"{kind.value} must not be negative, got {volume}",
                )
            p.metered |= bit
            if bit == _B_ENERGY:
                p.energy = volume
            elif bit == _B_TIME:
                p.time = volume
            elif bit == _B_PARKING:
                p.parking = volume
            else:
                p.reservation = volume
        elif kind is CdrDimensionType.MIN_CURRENT:
            p.cur_lo = volume
        elif kind is CdrDimensionType.MAX_CURRENT:
            p.cur_hi = volume
        elif kind is CdrDimensionType.CURRENT:
            current = volume
        elif kind is CdrDimensionType.MIN_POWER:
            p.pow_lo = volume
        elif kind is CdrDimensionType.MAX_POWER:
            p.pow_hi = volume
        elif kind is CdrDimensionType.POWER:
            power = volume
    # min_current holds when the current never drops below it during the period, so it is
    # compared with the period's minimum; max_current with its maximum (the restriction
    # "MUST no longer be active when the charging current raises above"). The average
    # (CURRENT / POWER) stands in for a missing extreme.
    if current is not None:
        p.cur_lo = current if p.cur_lo is None else p.cur_lo
        p.cur_hi = current if p.cur_hi is None else p.cur_hi
    if power is not None:
        p.pow_lo = power if p.pow_lo is None else p.pow_lo
        p.pow_hi = power if p.pow_hi is None else p.pow_hi
    if p.metered & _B_RESERVATION and p.metered != _B_RESERVATION:
        raise InvalidCdrError(
            f"charging_periods[{index}].dimensions",
            "a period is either reservation (RESERVATION_TIME) or charging/parking, not both",
        )
    return p


# A warning: its text, or the figures and the function that writes it (see _outside_text).
_Warning = str | tuple[Callable[..., str], tuple[object, ...]]


class _Timeline:
    __slots__ = ("reservation", "session", "warnings")

    def __init__(
        self, reservation: list[_Period], session: list[_Period], warnings: list[_Warning]
    ) -> None:
        self.reservation = reservation
        self.session = session
        self.warnings = warnings


def _timeline(periods: Sequence[ChargingPeriod], start: int, end: int, tariff_id: str) -> _Timeline:
    if not periods:
        raise InvalidCdrError("charging_periods", "must have at least 1 period")
    ordered = [_prepare_period(i, period, tariff_id) for i, period in enumerate(periods)]
    warnings: list[_Warning] = []
    if len(ordered) > 1 and any(a.start > b.start for a, b in pairwise(ordered)):
        ordered.sort(key=_start_of)  # stable: equal starts keep their input order
        warnings.append("charging_periods are not in time order; they are priced in time order")
    reservation: list[_Period] = []
    session: list[_Period] = []
    previous: _Period | None = None
    for k, p in enumerate(ordered):
        if previous is not None:
            previous.end = p.start  # "A period ends when the next period starts"
            if previous.start == p.start:
                _check_overlap(ordered, k)
        if p.metered == _B_RESERVATION:
            if session:
                # TariffRestrictions.reservation: a reservation "ends when the driver starts
                # charging", so it cannot follow the session.
                raise InvalidCdrError(
                    f"charging_periods[{p.index}].start_date_time",
                    f"a reservation period starts at {_iso(p.start)}, after the session "
                    f"started (charging_periods[{session[0].index}])",
                )
            reservation.append(p)
        else:
            session.append(p)
        if p.start < start or p.start > end:
            warnings.append((_outside_text, (p.index, p.start, start, end)))
        previous = p
    last = ordered[-1]
    if end >= last.start:
        last.end = end
    else:
        # "The last period ends when the session ends": here the session ends before the
        # last period starts. Take the period's own duration rather than guess a price.
        hours = last.time + last.parking + last.reservation
        last.end = last.start + int((hours * _US_PER_HOUR).to_integral_value())
        warnings.append((_ends_early_text, (end, last.start, last.end)))
    for p in ordered:
        # Volumes are what is billed; a period reporting more time than it lasts is
        # priced as reported, but the operator should see the contradiction.
        if p.time or p.parking or p.reservation:
            reported = (p.time + p.parking + p.reservation) * _US_PER_HOUR
            if reported > p.end - p.start + _TIME_SLACK_US:
                lasts = Decimal(p.end - p.start) / _US_PER_HOUR
                warnings.append((_overlong_text, (p.index, reported / _US_PER_HOUR, lasts)))
    return _Timeline(reservation, session, warnings)


# Warnings about the charging periods are written when the result's warnings are read
# (most results are never explained): the list holds the figures and these functions.
def _outside_text(index: int, at: int, start: int, end: int) -> str:
    return (
        f"charging_periods[{index}] starts at {_iso(at)}, outside the session "
        f"({_iso(start)} to {_iso(end)}); durations count from the first period"
    )


def _ends_early_text(end: int, last_start: int, last_end: int) -> str:
    return (
        f"end_date_time {_iso(end)} is before the last charging period starts "
        f"({_iso(last_start)}); that period is taken to end after its own "
        f"TIME/PARKING_TIME volume, at {_iso(last_end)}"
    )


def _overlong_text(index: int, reported: Decimal, lasts: Decimal) -> str:
    return (
        f"charging_periods[{index}] reports {_hours(reported)} h "
        f"of TIME/PARKING_TIME but lasts {_hours(lasts)} h until the next period"
    )


def _warning_texts(warnings: list[_Warning]) -> tuple[str, ...]:
    """The warnings as text, each once, in order."""
    return tuple(dict.fromkeys(w if type(w) is str else _format_warning(w) for w in warnings))


def _format_warning(warning: _Warning) -> str:
    if isinstance(warning, str):
        return warning
    write, figures = warning
    return write(*figures)


def _start_of(p: _Period) -> int:
    return p.start


def _check_overlap(ordered: list[_Period], k: int) -> None:
    """Periods end where the next one starts, so they can only overlap by starting at the
    same instant; two such periods metering the same quantity count it twice."""
    p = ordered[k]
    j = k - 1
    while j >= 0 and ordered[j].start == p.start:
        shared = p.metered & ordered[j].metered
        if shared:
            names = ", ".join(name for bit, name in _METERED_NAMES.items() if shared & bit)
            raise InvalidCdrError(
                f"charging_periods[{p.index}].start_date_time",
                f"overlaps charging_periods[{ordered[j].index}]: both start at "
                f"{_iso(p.start)} and both report {names}",
            )
        j -= 1


# A charging period as the pricer reads the usual ones: (index, start µs, end µs, energy kWh,
# time h, parking h, current and power levels).
_Row = tuple[int, int, int, Decimal, Decimal, Decimal, _Levels]
_ENERGY_KIND = CdrDimensionType.ENERGY
_TIME_KIND = CdrDimensionType.TIME
_PARKING_KIND = CdrDimensionType.PARKING_TIME
_RESERVATION_KIND = CdrDimensionType.RESERVATION_TIME
# Where a current or power dimension goes in a period's list of levels (see _usual_rows).
_LEVEL_COLUMN = {
    CdrDimensionType.MIN_CURRENT: 0,
    CdrDimensionType.MAX_CURRENT: 1,
    CdrDimensionType.CURRENT: 2,
    CdrDimensionType.MIN_POWER: 3,
    CdrDimensionType.MAX_POWER: 4,
    CdrDimensionType.POWER: 5,
}


def _usual_rows(
    periods: Sequence[ChargingPeriod],
    start: int,
    end: int,
    tariff_id: str,
    warnings: list[_Warning],
) -> tuple[list[_Row], list[_Row]] | None:
    """The charging periods as rows, straight from the parsed CDR, when they are the usual
    kind: timezone-aware, in strict time order, none starting after the session ends
    (``end``, µs), no other tariff named, only ENERGY, TIME, PARKING_TIME,
    RESERVATION_TIME, current and power dimensions (each at most once, with a plausible
    volume, none negative; reservation periods first, with nothing else metered). Such
    periods are exactly those :func:`_timeline` accepts without sorting them, with the
    same starts, ends (each where the next starts, the last at the session end: mod_cdrs,
    ChargingPeriod), volumes, levels and parts, and the same warnings, appended to
    ``warnings`` (a period starting before the session, one reporting more time than it
    lasts). Returned as the reservation part's rows (the reserved hours in the time
    column) and the session part's. None for anything else (the caller then takes the
    careful path, which sorts, and names what it refuses).
    """
    if not periods:
        return None
    starts: list[int] = []
    volumes: list[tuple[Decimal, Decimal, Decimal, _Levels]] = []
    reserved = 0  # how many periods of the reservation part come first
    previous: int | None = None
    zero, limit = _ZERO, _DECIMAL_LIMIT
    for period in periods:
        at = period.start_date_time
        if at.tzinfo is None or (period.tariff_id is not None and period.tariff_id != tariff_id):
            return None
        s = (at - _EPOCH) // _ONE_US  # to_us
        # Equal starts (possible overlaps), disorder and a period after the session's end
        # are the careful path's, with their warnings or errors.
        if s > end or (previous is not None and s <= previous):
            return None
        previous = s
        dimensions = period.dimensions
        if not dimensions:
            return None
        energy = hours = parking = zero
        seen = 0
        levels: list[Decimal | None] | None = None  # MIN_, MAX_ and CURRENT, then POWER
        for dimension in dimensions:
            kind, volume = dimension.type, dimension.volume
            if type(volume) is not Decimal or not volume.is_finite() or not zero <= volume <= limit:
                return None
            if kind is _ENERGY_KIND and not seen & _B_ENERGY:
                seen |= _B_ENERGY
                energy = volume
            elif kind is _TIME_KIND and not seen & _B_TIME:
                seen |= _B_TIME
                hours = volume
            elif kind is _PARKING_KIND and not seen & _B_PARKING:
                seen |= _B_PARKING
                parking = volume
            elif kind is _RESERVATION_KIND and not seen & _B_RESERVATION:
                seen |= _B_RESERVATION
                hours = volume  # reserved hours: the reservation's TIME components price them
            else:
                column = _LEVEL_COLUMN.get(kind)
                if column is None:  # another kind (STATE_OF_CHARGE ...) or one seen twice
                    return None
                if levels is None:
                    levels = [None, None, None, None, None, None]
                elif levels[column] is not None:
                    return None
                levels[column] = volume
        if seen & _B_RESERVATION:
            # A reservation period meters nothing else and precedes the session (the
            # careful path refuses anything else, naming it).
            if seen != _B_RESERVATION or reserved != len(starts):
                return None
            reserved += 1
        starts.append(s)
        volumes.append((energy, hours, parking, _NO_LEVELS if levels is None else _levels(levels)))
    # The careful path's warnings, in its order: periods starting before the session, then
    # periods reporting more TIME/PARKING_TIME than they last.
    for index, s in enumerate(starts):
        if s < start:
            warnings.append((_outside_text, (index, s, start, end)))
    starts.append(end)  # the last period ends when the session ends
    rows: list[_Row] = []
    for index, (energy, hours, parking, held) in enumerate(volumes):
        s, e = starts[index], starts[index + 1]
        if hours or parking:
            reported = (hours + parking) * _US_PER_HOUR
            if reported > e - s + _TIME_SLACK_US:
                lasts = Decimal(e - s) / _US_PER_HOUR
                warnings.append((_overlong_text, (index, reported / _US_PER_HOUR, lasts)))
        rows.append((index, s, e, energy, hours, parking, held))
    return rows[:reserved], rows[reserved:]


def _levels(found: list[Decimal | None]) -> _LevelsOf:
    """A period's levels from its MIN_/MAX_/CURRENT and MIN_/MAX_/POWER, as
    _prepare_period sets them: the average stands in for a missing extreme."""
    cur_lo, cur_hi, current, pow_lo, pow_hi, power = found
    if current is not None:
        cur_lo = current if cur_lo is None else cur_lo
        cur_hi = current if cur_hi is None else cur_hi
    if power is not None:
        pow_lo = power if pow_lo is None else pow_lo
        pow_hi = power if pow_hi is None else pow_hi
    return _LevelsOf(cur_lo, cur_hi, pow_lo, pow_hi)


# --------------------------------------------------------------------------- pricing

# A line of the working as the pricer records it; turned into a BreakdownLine when read:
# (kind, slot or None, volume, excl, incl, period index, from µs, to µs, candidate, note);
# a step_size line's note is (consumed, billed, unit), a min/max_price line's the function that
# writes it, until it is read.
_StepNote = tuple[Decimal, Decimal, str]
_RawLine = tuple[
    LineKind,
    int | None,
    Decimal,
    Decimal,
    Decimal,
    int | None,
    int | None,
    int | None,
    "_Candidate | None",
    str | _StepNote | Callable[[], str],
]


class _PartPricer:
    """Prices the periods of one part (session or reservation) and keeps the working."""

    __slots__ = (
        "billable",
        "clock",
        "excl",
        "flat_done",
        "incl",
        "last",
        "last_time_slot",
        "lines",
        "origin",
        "part",
        "rules",
        "split",
        "warnings",
    )

    def __init__(
        self,
        rules: _Rules,
        part: Part,
        clock: LocalClock,
        origin: int,
        warnings: list[_Warning],
    ) -> None:
        self.rules = rules
        self.part = part
        self.clock = clock
        self.origin = origin
        self.warnings = warnings
        self.lines: list[_RawLine] = []
        self.excl = [_ZERO, _ZERO, _ZERO, _ZERO]
        self.incl = [_ZERO, _ZERO, _ZERO, _ZERO]
        self.billable = [_ZERO, _ZERO, _ZERO, _ZERO]
        self.last: list[_Candidate | None] = [None, None, None, None]
        self.last_time_slot: int | None = None
        self.flat_done = False
        self.split = False  # a period was cut: sums may carry division noise

    def run(self, periods: list[_Period]) -> None:
        # (A session part whose rules are plain is priced by _run_plain instead: _price.)
        if self.part is Part.RESERVATION:
            for p in periods:
                # Reservation elements price the reserved time with their TIME component.
                self._period(p.index, p.start, p.end, p, _ZERO, _ZERO, p.reservation, _ZERO)
            return
        so_far = _ZERO
        for p in periods:
            self._period(p.index, p.start, p.end, p, so_far, p.energy, p.time, p.parking)
            so_far += p.energy

    def run_rows(self, rows: list[_Row]) -> None:
        """A part from rows (see _usual_rows): as :meth:`run`. A reservation row has no
        energy and its reserved hours in the time column, so it is priced as run prices a
        reservation period."""
        so_far = _ZERO
        for index, s, e, energy, hours, parking, levels in rows:
            self._period(index, s, e, levels, so_far, energy, hours, parking)
            so_far += energy

    def _run_plain(self, periods: list[_Row]) -> None:
        """The session part when no element of it has restrictions (most tariffs): no
        restriction can change value inside a period, so none is cut (one piece each),
        and "the first tariff element with a matching price component" (mod_tariffs,
        Tariff object) of each dimension is simply its first candidate; FLAT is charged
        once, by the first period. What _period and _piece would record, without them.
        The periods come as rows (see _usual_rows), in time order."""
        flat, energy_c, time_c, parking_c = [c[0] if c else None for c in self.rules.candidates]
        # Each metered dimension: its slot, what prices it, and its column in a row.
        metered = ((_ENERGY, energy_c, 3), (_TIME, time_c, 4), (_PARKING, parking_c, 5))
        lines = self.lines
        excl, incl, billable, last = self.excl, self.incl, self.billable, self.last
        for row in periods:
            index, s, e = row[0], row[1], row[2]
            if flat is not None and not self.flat_done:
                self.flat_done = True
                price, factor = flat.price, flat.vat_factor
                excl[_FLAT] += price
                incl[_FLAT] += price * factor
                lines.append(
                    (LineKind.FLAT, _FLAT, _ONE, price, price * factor, index, s, e, flat, "")
                )
            for slot, found, column in metered:
                volume: Decimal = row[column]  # type: ignore[assignment]  # (columns 3-5)
                if not volume:  # (volumes are never negative: _usual_rows, _prepare_period)
                    continue
                if found is None:
                    lines.append(
                        (
                            LineKind.UNPRICED,
                            slot,
                            volume,
                            _ZERO,
                            _ZERO,
                            index,
                            s,
                            e,
                            None,
                            "no element applies: free",
                        )
                    )
                    continue
                billable[slot] += volume
                last[slot] = found
                if slot != _ENERGY:
                    self.last_time_slot = slot
                cost = volume * found.price
                # x * Decimal(1) is x, digits and exponent (x has at most 50 digits already).
                with_vat = cost if found.vat_factor is _ONE else cost * found.vat_factor
                excl[slot] += cost
                incl[slot] += with_vat
                lines.append(
                    (LineKind.PRICED, slot, volume, cost, with_vat, index, s, e, found, "")
                )

    def _period(
        self,
        index: int,
        s: int,
        e: int,
        p: _Levels,
        e0: Decimal,
        energy: Decimal,
        hours: Decimal,
        parking: Decimal,
    ) -> None:
        """Price period ``index`` (``s`` to ``e`` µs; ``p``: its current and power levels),
        cut where a restriction can change value inside it."""
        rules = self.rules
        span = e - s
        segments = None
        cuts: list[int] = []
        if rules.needs_local:
            segments = self.clock.segments(s, e)
            if span > 0:
                cuts = self.clock.boundaries(segments, rules.times_of_day)
        if span > 0 and rules.durations:
            origin = self.origin
            extra = [origin + d for d in rules.durations if s < origin + d < e]
            if extra:
                cuts = sorted(set(cuts).union(extra))
        kwh_cuts = [k for k in rules.kwh if e0 < k < e0 + energy] if rules.kwh else []
        if (rules.uses_current or rules.uses_power) and self.part is Part.SESSION:
            self._warn_unknown_levels(index, p, energy, hours)
        if not cuts and not kwh_cuts:
            self._piece(index, p, s, e, s, e0, energy, hours, parking, segments)
            return
        self.split = True
        # Merge both kinds of cut by their position in the period (0..1). Each piece is
        # evaluated at the last time cut and the last energy cut at or before its start.
        events: list[tuple[Decimal, int | None, Decimal | None]] = []
        if cuts:
            dspan = Decimal(span)
            events.extend((Decimal(t - s) / dspan, t, None) for t in cuts)
        events.extend(((k - e0) / energy, None, k) for k in kwh_cuts)
        events.sort(key=_position)
        pieces: list[tuple[Decimal, Decimal, int, Decimal]] = []
        f_start, t_anchor, e_anchor = _ZERO, s, e0
        for f, t, k in events:
            if f - f_start > _SLIVER:
                pieces.append((f_start, f, t_anchor, e_anchor))
                f_start = f
            if t is not None:
                t_anchor = t
            if k is not None:
                e_anchor = k
        if _ONE - f_start > _SLIVER or not pieces:
            pieces.append((f_start, _ONE, t_anchor, e_anchor))
        else:
            a, _, ta, ea = pieces[-1]
            pieces[-1] = (a, _ONE, ta, ea)
        left_e, left_t, left_p = energy, hours, parking
        last = len(pieces) - 1
        dspan = Decimal(span)
        for n, (fa, fb, ta, ea) in enumerate(pieces):
            if n == last:
                pe, pt, pp = left_e, left_t, left_p
            else:
                width = fb - fa
                pe, pt, pp = energy * width, hours * width, parking * width
                left_e, left_t, left_p = left_e - pe, left_t - pt, left_p - pp
            wall_a = s + int((fa * dspan).to_integral_value())
            wall_b = e if n == last else s + int((fb * dspan).to_integral_value())
            self._piece(index, p, wall_a, wall_b, ta, ea, pe, pt, pp, segments)

    def _warn_unknown_levels(self, index: int, p: _Levels, energy: Decimal, hours: Decimal) -> None:
        if energy <= 0 and hours <= 0:
            return  # parking: no current is expected
        if self.rules.uses_current and (p.cur_lo is None or p.cur_hi is None):
            self.warnings.append(
                f"charging_periods[{index}] has no MIN_CURRENT/MAX_CURRENT/CURRENT dimension; "
                "current restrictions are treated as not met"
            )
        if self.rules.uses_power and (p.pow_lo is None or p.pow_hi is None):
            self.warnings.append(
                f"charging_periods[{index}] has no MIN_POWER/MAX_POWER/POWER dimension; "
                "power restrictions are treated as not met"
            )

    def _piece(
        self,
        index: int,
        p: _Levels,
        wall_a: int,
        wall_b: int,
        t_anchor: int,
        kwh: Decimal,
        energy: Decimal,
        hours: Decimal,
        parking: Decimal,
        segments: list[tuple[int, int, int]] | None,
    ) -> None:
        rules = self.rules
        day = tod = weekday = interval = 0
        if rules.needs_local:
            assert segments is not None
            wall = t_anchor + self.clock.offset_in(segments, t_anchor)
            day = wall // DAY_US
            tod = wall - day * DAY_US
            weekday = (day + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
            interval = bisect_right(rules.times_of_day, tod)
        elapsed = t_anchor - self.origin
        candidates = rules.candidates
        memo_ok = rules.memo_ok
        lines = self.lines
        if not self.flat_done and candidates[_FLAT]:
            if memo_ok[_FLAT]:
                flat = self._memo(_FLAT, day, tod, weekday, interval, p)
            else:
                flat = _first(candidates[_FLAT], day, tod, weekday, elapsed, kwh, p)
            if flat is not None:
                self.flat_done = True
                self.excl[_FLAT] += flat.price
                self.incl[_FLAT] += flat.price * flat.vat_factor
                lines.append(
                    (
                        LineKind.FLAT,
                        _FLAT,
                        _ONE,
                        flat.price,
                        flat.price * flat.vat_factor,
                        index,
                        wall_a,
                        wall_b,
                        flat,
                        "",
                    )
                )
        for slot in _METERED_SLOTS:
            volume = energy if slot == _ENERGY else hours if slot == _TIME else parking
            if volume <= 0:
                continue
            cands = candidates[slot]
            if not cands:
                found = None
            elif cands[0].check is None:  # an unrestricted first element prices it all
                found = cands[0]
            elif memo_ok[slot]:
                found = self._memo(slot, day, tod, weekday, interval, p)
            else:
                found = _first(cands, day, tod, weekday, elapsed, kwh, p)
            if found is None:
                lines.append(
                    (
                        LineKind.UNPRICED,
                        slot,
                        volume,
                        _ZERO,
                        _ZERO,
                        index,
                        wall_a,
                        wall_b,
                        None,
                        "no element applies: free",
                    )
                )
                continue
            self.billable[slot] += volume
            self.last[slot] = found
            if slot != _ENERGY:
                self.last_time_slot = slot
            excl = volume * found.price
            # x * Decimal(1) is x, digits and exponent (x has at most 50 digits already).
            incl = excl if found.vat_factor is _ONE else excl * found.vat_factor
            self.excl[slot] += excl
            self.incl[slot] += incl
            lines.append(
                (LineKind.PRICED, slot, volume, excl, incl, index, wall_a, wall_b, found, "")
            )

    def _memo(
        self, slot: int, day: int, tod: int, weekday: int, interval: int, p: _Levels
    ) -> _Candidate | None:
        memo = self.rules.memo
        key = (slot, day, interval)
        try:
            return memo[key]
        except KeyError:
            pass
        # Only local restrictions are looked at, so elapsed time and energy do not matter.
        found = _first(self.rules.candidates[slot], day, tod, weekday, 0, _ZERO, p)
        if len(memo) > 50_000:  # bounded: one entry per local day and interval
            memo.clear()
        memo[key] = found
        return found

    def apply_step_size(self) -> None:
        """mod_cdrs step_size: once per session for ENERGY, once for TIME and PARKING_TIME
        combined, on the session total, with the step of the last component used."""
        energy = self.last[_ENERGY]
        if energy is not None and energy.step_size > 0:
            self._round_up(_ENERGY, energy, _WH_PER_KWH, "Wh")
        slot = self.last_time_slot
        if slot is not None:
            # Only the dimension priced last is rounded: "the charging duration is not
            # rounded up, as it is followed by another time based period".
            component = self.last[slot]
            assert component is not None
            if component.step_size > 0:
                self._round_up(slot, component, _SECONDS_PER_HOUR, "s")

    def _round_up(self, slot: int, c: _Candidate, per_unit: Decimal, unit: str) -> None:
        consumed = self.billable[slot] * per_unit
        if self.split:
            consumed = consumed.quantize(_CLEAN)
        step = Decimal(c.step_size)
        billed = (consumed / step).to_integral_value(ROUND_CEILING) * step
        extra = billed - consumed
        if extra <= 0:
            return
        volume = extra / per_unit
        excl = volume * c.price
        incl = excl * c.vat_factor
        self.excl[slot] += excl
        self.incl[slot] += incl
        # The note is written when the lines are read (most results are never explained).
        note = (consumed, billed, unit)
        self.lines.append((LineKind.STEP_SIZE, slot, volume, excl, incl, None, None, None, c, note))

    def totals(self) -> tuple[Price, Price, Price, Price]:
        """FLAT, ENERGY, TIME and PARKING_TIME costs of this part (ZERO_PRICE if none)."""
        excl, incl = self.excl, self.incl
        if self.split:
            quantize = _CONTEXT.quantize
            excl = [quantize(x, _CLEAN) for x in excl]
            incl = [quantize(x, _CLEAN) for x in incl]
        # ZERO_PRICE where nothing was ever added (the accumulators still hold _ZERO).
        zero, zero_price = _ZERO, ZERO_PRICE
        e0, e1, e2, e3 = excl
        i0, i1, i2, i3 = incl
        return (
            zero_price if e0 is zero and i0 is zero else _tuple(Price, (e0, i0)),
            zero_price if e1 is zero and i1 is zero else _tuple(Price, (e1, i1)),
            zero_price if e2 is zero and i2 is zero else _tuple(Price, (e2, i2)),
            zero_price if e3 is zero and i3 is zero else _tuple(Price, (e3, i3)),
        )


def _cost(excl: Decimal, incl: Decimal) -> Price:
    if excl is _ZERO and incl is _ZERO:  # nothing was ever added
        return ZERO_PRICE
    return Price(excl, incl)


def _position(event: tuple[Decimal, int | None, Decimal | None]) -> Decimal:
    return event[0]


def _first(
    candidates: tuple[_Candidate, ...],
    day: int,
    tod: int,
    weekday: int,
    elapsed: int,
    kwh: Decimal,
    p: _Levels,
) -> _Candidate | None:
    """The first candidate whose restrictions all hold (a logical AND, mod_tariffs)."""
    for c in candidates:
        k = c.check
        if k is None:
            return c
        if k.local:
            if k.day_from is not None and day < k.day_from:
                continue
            if k.day_to is not None and day >= k.day_to:
                continue
            if not (k.dow_mask >> weekday) & 1:
                continue
            if k.tod_start is not None:
                if k.tod_wrap:
                    if k.tod_end <= tod < k.tod_start:
                        continue
                elif not k.tod_start <= tod < k.tod_end:
                    continue
        if k.min_dur is not None and elapsed < k.min_dur:
            continue
        if k.max_dur is not None and elapsed >= k.max_dur:
            continue
        if k.min_kwh is not None and kwh < k.min_kwh:
            continue
        if k.max_kwh is not None and kwh >= k.max_kwh:
            continue
        if k.min_current is not None and (p.cur_lo is None or p.cur_lo < k.min_current):
            continue
        if k.max_current is not None and (p.cur_hi is None or p.cur_hi >= k.max_current):
            continue
        if k.min_power is not None and (p.pow_lo is None or p.pow_lo < k.min_power):
            continue
        if k.max_power is not None and (p.pow_hi is None or p.pow_hi >= k.max_power):
            continue
        return c
    return None


# --------------------------------------------------------------------------- entry points


def price_session(
    tariff: Tariff | CompiledTariff,
    charging_periods: Sequence[ChargingPeriod],
    *,
    start_date_time: datetime,
    end_date_time: datetime,
    time_zone: str | tzinfo,
    currency: str | None = None,
    reservation_expired: bool | None = None,
) -> PricingResult:
    """Price the charging periods of a session (or CDR) from start to end.

    ``time_zone`` is the location's IANA zone (or a tzinfo): restrictions on times of day,
    dates and days of the week are evaluated in it. ``currency``, when given, must be the
    tariff's. ``reservation_expired`` says whether a reservation (periods with a
    RESERVATION_TIME dimension) expired unused; None infers it: expired when no charging
    period follows the reservation. A running session is priced the same way, with the
    periods so far and ``end_date_time`` = now.

    Raises a :class:`~ocpi.tariffs.errors.TariffError` subclass naming the field when the
    input is not valid OCPI or the tariff does not apply at ``start_date_time``.
    """
    return _enter(
        tariff,
        charging_periods,
        start_date_time,
        end_date_time,
        time_zone,
        currency,
        reservation_expired,
    )


def price_cdr(
    tariff: Tariff | CompiledTariff,
    cdr: Cdr,
    *,
    time_zone: str | tzinfo | None = None,
    reservation_expired: bool | None = None,
) -> PricingResult:
    """Price a whole CDR. The time zone defaults to the one the CDR's location carries."""
    zone = time_zone if time_zone is not None else cdr.time_zone
    if zone is None:
        raise InvalidArgumentError(
            "time_zone", "the CDR's location has no time_zone; the location's zone must be given"
        )
    return _enter(
        tariff,
        cdr.charging_periods,
        cdr.start_date_time,
        cdr.end_date_time,
        zone,
        cdr.currency,
        reservation_expired,
    )


def _enter(
    tariff: Tariff | CompiledTariff,
    periods: Sequence[ChargingPeriod],
    start_dt: datetime,
    end_dt: datetime,
    time_zone: str | tzinfo,
    currency: str | None,
    reservation_expired: bool | None,
) -> PricingResult:
    """price_session and price_cdr: compile if needed, resolve the zone, price in the
    pricer's decimal context."""
    compiled = tariff if type(tariff) is CompiledTariff else _compiled(tariff)
    if type(time_zone) is str:
        known = _ZONES.get(time_zone)
        zone_name, clock = known if known is not None else _resolve_zone(time_zone)
    else:
        zone_name, clock = _resolve_zone(time_zone)
    # The pricer's own decimal context, without copying one per call (localcontext does):
    # pricing never yields, so swapping the thread's context in and out is safe.
    saved = getcontext()
    setcontext(_CONTEXT)
    try:
        return _price(
            compiled,
            periods,
            start_dt,
            end_dt,
            clock,
            zone_name,
            currency,
            reservation_expired,
        )
    finally:
        setcontext(saved)


def _compiled(tariff: Tariff | CompiledTariff) -> CompiledTariff:
    return tariff if isinstance(tariff, CompiledTariff) else compile_tariff(tariff)


_ZONES: dict[str, tuple[str, LocalClock]] = {}


def _resolve_zone(time_zone: str | tzinfo) -> tuple[str, LocalClock]:
    if isinstance(time_zone, str):
        known = _ZONES.get(time_zone)
        if known is not None:
            return known
        try:
            zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidArgumentError(
                "time_zone", f"unknown IANA time zone {time_zone!r}"
            ) from exc
        known = (time_zone, LocalClock(zone))
        if len(_ZONES) < 1024:
            _ZONES[time_zone] = known
        return known
    if isinstance(time_zone, tzinfo):
        return str(getattr(time_zone, "key", time_zone)), _clock_for(time_zone)
    raise InvalidArgumentError("time_zone", f"must be an IANA name or a tzinfo, got {time_zone!r}")


@lru_cache(maxsize=256)
def _clock_for(zone: tzinfo) -> LocalClock:
    return LocalClock(zone)


def _price(
    compiled: CompiledTariff,
    periods: Sequence[ChargingPeriod],
    start_dt: datetime,
    end_dt: datetime,
    clock: LocalClock,
    zone_name: str,
    currency: str | None,
    reservation_expired: bool | None,
) -> PricingResult:
    tariff = compiled.tariff
    if start_dt.tzinfo is None or end_dt.tzinfo is None:
        name = "start_date_time" if start_dt.tzinfo is None else "end_date_time"
        raise InvalidCdrError(name, "must be timezone-aware (OCPI DateTime is UTC)")
    if end_dt < start_dt:
        raise InvalidCdrError(
            "end_date_time", f"is before start_date_time ({start_dt.isoformat()})"
        )
    if currency is not None and currency != tariff.currency and currency.upper() != tariff.currency:
        raise CurrencyMismatchError(
            "currency", f"is {currency!r} but tariff {tariff.id!r} is in {tariff.currency!r}"
        )
    valid_from, valid_to = tariff.start_date_time, tariff.end_date_time
    if (valid_from is not None or valid_to is not None) and not tariff_is_active(tariff, start_dt):
        field = (
            "start_date_time"
            if tariff.start_date_time is not None and start_dt < tariff.start_date_time
            else "end_date_time"
        )
        raise TariffNotApplicableError(
            field,
            f"tariff {tariff.id!r} is valid from {_iso_dt(tariff.start_date_time)} to "
            f"{_iso_dt(tariff.end_date_time)}; the session started at {start_dt.isoformat()}",
        )
    start, end = (start_dt - _EPOCH) // _ONE_US, (end_dt - _EPOCH) // _ONE_US  # to_us
    # The usual CDR is priced straight from its periods (_usual_rows); anything else goes
    # through the timeline, which sorts, splits off the reservation, warns and refuses.
    warnings: list[_Warning] = list(compiled.warnings)
    usual = _usual_rows(periods, start, end, tariff.id, warnings)
    reserved_rows: list[_Row] = []
    rows: list[_Row] = []
    reserved: list[_Period] = []
    charged: list[_Period] = []
    if usual is not None:
        reserved_rows, rows = usual
    else:
        timeline = _timeline(periods, start, end, tariff.id)
        warnings = timeline.warnings
        if compiled.warnings:
            warnings[:0] = compiled.warnings
        reserved, charged = timeline.reservation, timeline.session

    zero = ZERO_PRICE
    expired: bool | None = None
    reservation = None
    reservation_cost = zero
    if reserved_rows or reserved:
        if reservation_expired is not None:
            expired = reservation_expired
        else:
            expired = not rows and not charged
        rules = compiled.reservation_expired if expired else compiled.reservation
        origin = reserved_rows[0][1] if reserved_rows else reserved[0].start
        reservation = _PartPricer(rules, Part.RESERVATION, clock, origin, warnings)
        if reserved_rows:
            reservation.run_rows(reserved_rows)
        else:
            reservation.run(reserved)
        reservation.apply_step_size()
        # total_reservation_cost: "all the cost related to a reservation ..., including
        # fixed price components".
        costs = reservation.totals()
        reservation_cost = Price(
            sum((c.excl_vat for c in costs), _ZERO),
            sum((c.incl_vat or _ZERO for c in costs), _ZERO),
        )

    session = None
    fixed = energy_cost = time_cost = parking_cost = zero
    total_time = total_energy = total_parking = _ZERO
    if rows or charged:
        if rows:
            session = _PartPricer(compiled.session, Part.SESSION, clock, rows[0][1], warnings)
            if compiled.session.plain:
                session._run_plain(rows)
            else:
                session.run_rows(rows)
        else:
            session = _PartPricer(compiled.session, Part.SESSION, clock, charged[0].start, warnings)
            rows = [(p.index, p.start, p.end, p.energy, p.time, p.parking, p) for p in charged]
            if compiled.session.plain:  # periods out of order, overlapping, odd dimensions ...
                session._run_plain(rows)
            else:
                session.run(charged)
        session.apply_step_size()
        fixed, energy_cost, time_cost, parking_cost = session.totals()
        timed = False  # whether any period reports charging time
        for _, _, _, energy, hours, parking, _ in rows:
            if energy:
                total_energy += energy
            if hours:
                timed = True
            if parking:
                total_parking += parking
        if compiled.session.candidates[_TIME] and not timed:
            # Charging time comes from TIME dimensions only (mod_cdrs CdrDimensionType); a
            # CDR without them cannot be billed for it, which the operator should know.
            warnings.append(
                "the tariff prices TIME but no charging period reports a TIME dimension; "
                "no charging time is billed"
            )
        # CDR.total_time: "Total duration of the charging session (including the duration
        # of charging and not charging)": wall clock from the first period to the end.
        total_time = Decimal(rows[-1][2] - rows[0][1]) / _US_PER_HOUR

    adjustments: list[_RawLine] = []
    excl = (
        fixed.excl_vat
        + energy_cost.excl_vat
        + time_cost.excl_vat
        + parking_cost.excl_vat
        + reservation_cost.excl_vat
    )
    incl = (
        (fixed.incl_vat or _ZERO)
        + (energy_cost.incl_vat or _ZERO)
        + (time_cost.incl_vat or _ZERO)
        + (parking_cost.incl_vat or _ZERO)
        + (reservation_cost.incl_vat or _ZERO)
    )
    if tariff.min_price is not None or tariff.max_price is not None:
        excl, incl = _bound(tariff, excl, incl, adjustments)

    exact = _tuple(  # CdrTotals(...), without the NamedTuple's Python-level __new__
        CdrTotals,
        (
            _tuple(Price, (excl, incl)),
            fixed,
            total_energy,
            energy_cost,
            total_time,
            time_cost,
            total_parking,
            parking_cost,
            reservation_cost,
        ),
    )
    if (session is not None and session.split) or (reservation is not None and reservation.split):
        exact = _cleaned(exact, session is not None and session.split)
    parts = [part for part in (reservation, session) if part is not None]

    def build_lines() -> tuple[BreakdownLine, ...]:
        out = [_materialise(line, part.part) for part in parts for line in part.lines]
        out.extend(_materialise(line, Part.SESSION) for line in adjustments)
        return tuple(out)

    return _pricing_result(
        tariff.currency,
        tariff.id,
        zone_name,
        _rounded(exact, tariff.currency),
        exact,
        _tidy,
        build_lines,
        partial(_warning_texts, warnings) if warnings else (),
        expired,
    )


def _materialise(line: _RawLine, part: Part) -> BreakdownLine:
    kind, slot, volume, excl, incl, index, wall_a, wall_b, c, note = line
    if callable(note):  # a min/max_price note
        note = note()
    elif not isinstance(note, str):
        assert c is not None
        consumed, billed, unit = note
        shown = consumed.quantize(_MILLI, context=_HALF_UP)
        note = (
            f"{_plain(shown)} {unit} billed as {_plain(billed)} {unit} "
            f"(step_size {c.step_size} {unit})"
        )
    return BreakdownLine(
        kind=kind,
        part=part,
        dimension=None if slot is None else _DIMENSIONS[slot],
        volume=_tidy(volume),
        cost=Price(_tidy(excl), _tidy(incl)),
        period_index=index,
        start=None if wall_a is None else from_us(wall_a),
        end=None if wall_b is None else from_us(wall_b),
        element_index=None if c is None else c.element_index,
        component_index=None if c is None else c.component_index,
        price=None if c is None else c.price,
        vat=None if c is None else c.vat,
        step_size=None if c is None else c.step_size,
        note=note,
    )


def _bound(
    tariff: Tariff, excl: Decimal, incl: Decimal, lines: list[_RawLine]
) -> tuple[Decimal, Decimal]:
    """Tariff.min_price / max_price: "they both apply": each VAT limb is bounded on its
    own. A bound without incl_vat leaves the incl limb alone, except that a total incl.
    VAT is never below the total excl. VAT (VAT is never negative): raising the excl limb
    to min_price raises the incl limb at least as far."""
    low, high = tariff.min_price, tariff.max_price
    if low is not None:
        new_excl = max(excl, low.excl_vat)
        new_incl = incl if low.incl_vat is None else max(incl, low.incl_vat)
        new_incl = max(new_incl, new_excl)
        if new_excl != excl or new_incl != incl:
            lines.append(_bound_line(LineKind.MIN_PRICE, new_excl - excl, new_incl - incl, low))
            excl, incl = new_excl, new_incl
    if high is not None:
        # incl >= excl here and max_price.incl_vat >= max_price.excl_vat (validated), so
        # capping each limb keeps incl >= excl.
        new_excl = min(excl, high.excl_vat)
        new_incl = incl if high.incl_vat is None else min(incl, high.incl_vat)
        if new_excl != excl or new_incl != incl:
            lines.append(_bound_line(LineKind.MAX_PRICE, new_excl - excl, new_incl - incl, high))
            excl, incl = new_excl, new_incl
    return excl, incl


def _bound_line(kind: LineKind, d_excl: Decimal, d_incl: Decimal, bound: Price) -> _RawLine:
    # The note is written when the lines are read (most results are never explained).
    note = partial(_bound_note, kind, bound)
    return (kind, None, _ZERO, d_excl, d_incl, None, None, None, None, note)


def _bound_note(kind: LineKind, bound: Price) -> str:
    incl = "" if bound.incl_vat is None else f" / {_plain(bound.incl_vat)} incl. VAT"
    return f"{kind.value} {_plain(bound.excl_vat)} excl. VAT{incl}"


def _cleaned(exact: CdrTotals, session_clean: bool) -> CdrTotals:
    """``exact.map(_clean)``: every figure to 18 places (in the pricer's context).
    ``session_clean``: the session part's four costs are already (its totals() cleaned
    them: a cut session), and quantizing them again would give the very same figures."""
    # Every cost the pricer builds has both limbs set (incl_vat is never None here).
    q: Callable[[Decimal | None, Decimal], Decimal] = _CONTEXT.quantize  # type: ignore[assignment]
    c = _CLEAN
    cost, fixed, energy, energy_cost, time_, time_cost, parking, parking_cost, reserved = exact
    if not session_clean:
        fixed = _tuple(Price, (q(fixed[0], c), q(fixed[1], c)))
        energy_cost = _tuple(Price, (q(energy_cost[0], c), q(energy_cost[1], c)))
        time_cost = _tuple(Price, (q(time_cost[0], c), q(time_cost[1], c)))
        parking_cost = _tuple(Price, (q(parking_cost[0], c), q(parking_cost[1], c)))
    return _tuple(
        CdrTotals,
        (
            _tuple(Price, (q(cost[0], c), q(cost[1], c))),
            fixed,
            q(energy, c),
            energy_cost,
            q(time_, c),
            time_cost,
            q(parking, c),
            parking_cost,
            _tuple(Price, (q(reserved[0], c), q(reserved[1], c))),
        ),
    )


# Rounded figures: what CdrTotals.rounded gives inside the pricer's context.
_QUANTA = {places: Decimal(1).scaleb(-places) for places in range(9)}
_ROUNDED_ZEROS = {places: Price(q * 0, q * 0) for places, q in _QUANTA.items()}
_QUANTITY_QUANTUM = _QUANTA[QUANTITY_PLACES]
_ROUNDED_ZERO_QUANTITY = _QUANTITY_QUANTUM * 0


def _rounded(exact: CdrTotals, currency: str) -> CdrTotals:
    """``exact.rounded(currency)``: money half-up to the currency's minor unit, quantities
    to 4 places; a cost that stayed ``ZERO_PRICE`` (most do) is a shared rounded zero."""
    # money_places(currency), inline for the usual upper-case code
    places = _MINOR_UNITS.get(currency, 2) if currency.isupper() else money_places(currency)
    m, zero = _QUANTA[places], _ROUNDED_ZEROS[places]
    qty, qty_zero = _QUANTITY_QUANTUM, _ROUNDED_ZERO_QUANTITY
    q: Callable[[Decimal | None, Decimal], Decimal] = _HALF_UP.quantize  # type: ignore[assignment]
    cost, fixed, energy, energy_cost, time_, time_cost, parking, parking_cost, reserved = exact
    return _tuple(
        CdrTotals,
        (
            zero if cost is ZERO_PRICE else _tuple(Price, (q(cost[0], m), q(cost[1], m))),
            zero if fixed is ZERO_PRICE else _tuple(Price, (q(fixed[0], m), q(fixed[1], m))),
            qty_zero if energy is ZERO else q(energy, qty),
            zero
            if energy_cost is ZERO_PRICE
            else _tuple(Price, (q(energy_cost[0], m), q(energy_cost[1], m))),
            qty_zero if time_ is ZERO else q(time_, qty),
            zero
            if time_cost is ZERO_PRICE
            else _tuple(Price, (q(time_cost[0], m), q(time_cost[1], m))),
            qty_zero if parking is ZERO else q(parking, qty),
            zero
            if parking_cost is ZERO_PRICE
            else _tuple(Price, (q(parking_cost[0], m), q(parking_cost[1], m))),
            zero
            if reserved is ZERO_PRICE
            else _tuple(Price, (q(reserved[0], m), q(reserved[1], m))),
        ),
    )


def _tidy(value: Decimal) -> Decimal:
    """Exact figure without the cleaning noise and trailing zeros (never an exponent)."""
    value = value.quantize(_CLEAN, context=_CONTEXT)
    if value == value.to_integral_value():
        return value.quantize(_ONE, context=_CONTEXT)
    return value.normalize(_CONTEXT)


def _plain(value: Decimal) -> str:
    return format(_tidy(value), "f")


def _hours(value: Decimal) -> str:
    # In the pricer's context (half-up), also when written after pricing.
    return _plain(_HALF_UP.quantize(value, _TENTH_MILLI))


def _iso(us: int) -> str:
    return from_us(us).isoformat().replace("+00:00", "Z")


def _iso_dt(value: datetime | None) -> str:
    return "(open)" if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")
