"""What the pricer returns: CDR totals, the exact figures behind them, and the breakdown.

The result types are NamedTuples (immutable and cheap to build: a CDR builder prices every
session, often). The breakdown and the exact figures are only materialised when read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import NamedTuple

from ocpi.tariffs.model import Price, TariffDimension

# ISO 4217 minor units of the currencies that do not have 2 (the default).
# fmt: off
_MINOR_UNITS = {
    **dict.fromkeys(
        (
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
            "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
# fmt: on
QUANTITY_PLACES = 4
_QUANTUM = {places: Decimal(1).scaleb(-places) for places in range(9)}
ZERO = Decimal(0)
# The pricer hands out this very object for every cost that stayed zero, so rounding can
# recognise it by identity (most CDRs have several zero totals).
ZERO_PRICE = Price(ZERO, ZERO)
_ROUNDED_ZERO = {places: Price(q * 0, q * 0) for places, q in _QUANTUM.items()}
_ROUNDED_ZERO_QUANTITY = _QUANTUM[QUANTITY_PLACES] * 0


def money_places(currency: str) -> int:
    """Decimal places of ``currency`` (ISO 4217 minor unit; 2 when not listed)."""
    places = _MINOR_UNITS.get(currency)
    if places is None:
        places = _MINOR_UNITS.get(currency.upper(), 2)
    return places


def round_half_up(value: Decimal, places: int) -> Decimal:
    quantum = _QUANTUM.get(places) or Decimal(1).scaleb(-places)
    return value.quantize(quantum, rounding=ROUND_HALF_UP)


class LineKind(StrEnum):
    PRICED = "priced"  # a piece of a period priced by a tariff element
    UNPRICED = "unpriced"  # volume no element prices: free (mod_tariffs, Tariff object)
    FLAT = "flat"  # the once-per-session FLAT fee
    STEP_SIZE = "step_size"  # the session total rounded up to a step (mod_cdrs, step_size)
    MIN_PRICE = "min_price"  # Tariff.min_price raised the total
    MAX_PRICE = "max_price"  # Tariff.max_price capped the total


class Part(StrEnum):
    SESSION = "session"
    RESERVATION = "reservation"


class BreakdownLine(NamedTuple):
    """One line of a bill's working, with exact (unrounded) money.

    ``period_index`` is the index of the charging period in the input (not sorted) order.
    ``start``/``end`` are the UTC bounds of the piece of that period this line prices:
    a period is cut where a restriction changes value inside it. ``volume`` is kWh for
    ENERGY, hours for TIME and PARKING_TIME (reserved hours in the reservation part), 1
    for FLAT. ``element_index``/``component_index`` point into the tariff's elements.
    """

    kind: LineKind
    part: Part
    dimension: TariffDimension | None
    volume: Decimal
    cost: Price
    period_index: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    element_index: int | None = None
    component_index: int | None = None
    price: Decimal | None = None
    vat: Decimal | None = None
    step_size: int | None = None
    note: str = ""


class CdrTotals(NamedTuple):
    """The OCPI 2.2.1 CDR total fields. Every cost has both VAT limbs set."""

    total_cost: Price
    total_fixed_cost: Price
    total_energy: Decimal
    total_energy_cost: Price
    total_time: Decimal
    total_time_cost: Price
    total_parking_time: Decimal
    total_parking_cost: Price
    total_reservation_cost: Price

    def rounded(self, currency: str) -> CdrTotals:
        """Half-up to the currency's minor unit for money, 4 places for quantities."""
        places = money_places(currency)
        return CdrTotals(
            _round_money(self.total_cost, places),
            _round_money(self.total_fixed_cost, places),
            _round_quantity(self.total_energy),
            _round_money(self.total_energy_cost, places),
            _round_quantity(self.total_time),
            _round_money(self.total_time_cost, places),
            _round_quantity(self.total_parking_time),
            _round_money(self.total_parking_cost, places),
            _round_money(self.total_reservation_cost, places),
        )

    def map(self, fn: Callable[[Decimal], Decimal]) -> CdrTotals:
        """Apply ``fn`` to every figure (both limbs of every cost)."""

        def money(price: Price) -> Price:
            return Price(fn(price.excl_vat), None if price.incl_vat is None else fn(price.incl_vat))

        return CdrTotals(
            money(self.total_cost),
            money(self.total_fixed_cost),
            fn(self.total_energy),
            money(self.total_energy_cost),
            fn(self.total_time),
            money(self.total_time_cost),
            fn(self.total_parking_time),
            money(self.total_parking_cost),
            money(self.total_reservation_cost),
        )

    def to_ocpi_dict(self) -> dict[str, Decimal | dict[str, Decimal]]:
        """The totals under their OCPI CDR field names (values stay ``Decimal``)."""
        out: dict[str, Decimal | dict[str, Decimal]] = {}
        for name in self._fields:
            value: Price | Decimal = getattr(self, name)
            if isinstance(value, Price):
                assert value.incl_vat is not None
                out[name] = {"excl_vat": value.excl_vat, "incl_vat": value.incl_vat}
            else:
                out[name] = value
        return out


TOTAL_FIELDS: tuple[str, ...] = CdrTotals._fields


def _round_money(price: Price, places: int) -> Price:
    if price is ZERO_PRICE:
        return _ROUNDED_ZERO[places]
    quantum = _QUANTUM[places]
    assert price.incl_vat is not None
    return Price(
        price.excl_vat.quantize(quantum, rounding=ROUND_HALF_UP),
        price.incl_vat.quantize(quantum, rounding=ROUND_HALF_UP),
    )


def _round_quantity(value: Decimal) -> Decimal:
    if value is ZERO:
        return _ROUNDED_ZERO_QUANTITY
    return value.quantize(_QUANTUM[QUANTITY_PLACES], rounding=ROUND_HALF_UP)


class PricingResult:
    """Totals rounded once (``totals``), the exact figures (``exact``), and the working
    (``lines``, in time order: reservation part first, then the session, then the step_size
    and min/max adjustments).

    ``warnings`` say where the input was odd but still priceable (a period outside the
    session's start/end, a restriction that could not be evaluated, ...).
    ``reservation_expired`` is None when the CDR has no reservation part.
    Read-only: built by the pricer.
    """

    __slots__ = (
        "_build_lines",
        "_exact",
        "_lines",
        "_tidy",
        "_warnings",
        "currency",
        "reservation_expired",
        "tariff_id",
        "time_zone",
        "totals",
    )

    def __init__(
        self,
        *,
        currency: str,
        tariff_id: str,
        time_zone: str,
        totals: CdrTotals,
        exact: CdrTotals,
        tidy: Callable[[Decimal], Decimal],
        build_lines: Callable[[], tuple[BreakdownLine, ...]],
        warnings: tuple[str, ...] | Callable[[], tuple[str, ...]],
        reservation_expired: bool | None,
    ) -> None:
        self.currency = currency
        self.tariff_id = tariff_id
        self.time_zone = time_zone
        self.totals = totals
        self._warnings = warnings  # or the function that writes them, called once when read
        self.reservation_expired = reservation_expired
        self._exact = exact
        self._tidy: Callable[[Decimal], Decimal] | None = tidy
        self._build_lines: Callable[[], tuple[BreakdownLine, ...]] | None = build_lines
        self._lines: tuple[BreakdownLine, ...] | None = None

    @property
    def exact(self) -> CdrTotals:
        """The totals before the final rounding (and before nothing else)."""
        if self._tidy is not None:
            self._exact = self._exact.map(self._tidy)
            self._tidy = None
        return self._exact

    @property
    def warnings(self) -> tuple[str, ...]:
        warnings = self._warnings
        if not isinstance(warnings, tuple):
            warnings = self._warnings = warnings()
        return warnings

    @property
    def lines(self) -> tuple[BreakdownLine, ...]:
        if self._lines is None:
            assert self._build_lines is not None
            self._lines = self._build_lines()
            self._build_lines = None
        return self._lines

    def __repr__(self) -> str:
        return (
            f"PricingResult(tariff_id={self.tariff_id!r}, currency={self.currency!r}, "
            f"totals={self.totals!r}, warnings={self.warnings!r})"
        )


_new = object.__new__


def _pricing_result(
    currency: str,
    tariff_id: str,
    time_zone: str,
    totals: CdrTotals,
    exact: CdrTotals,
    tidy: Callable[[Decimal], Decimal],
    build_lines: Callable[[], tuple[BreakdownLine, ...]],
    warnings: tuple[str, ...] | Callable[[], tuple[str, ...]],
    reservation_expired: bool | None,
) -> PricingResult:
    """``PricingResult(...)`` for the pricer: the same object, built with positional
    arguments and plain slot stores (a call with nine keyword arguments costs about
    twice as much, and the pricer builds one per CDR)."""
    result = _new(PricingResult)
    result.currency = currency
    result.tariff_id = tariff_id
    result.time_zone = time_zone
    result.totals = totals
    result._warnings = warnings
    result.reservation_expired = reservation_expired
    result._exact = exact
    result._tidy = tidy
    result._build_lines = build_lines
    result._lines = None
    return result
