"""Unit tests of the pricing rules, one rule at a time (OCPI 2.2.1 mod_tariffs, mod_cdrs).

Expected figures are written as the arithmetic the rule prescribes on the inputs.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from tariff_helpers import close, component, element, hours, period, tariff, utc

from ocpi.tariffs import (
    BreakdownLine,
    Cdr,
    ChargingPeriod,
    DayOfWeek,
    InvalidCdrError,
    InvalidTariffError,
    LineKind,
    Part,
    Price,
    PricingResult,
    ReservationRestriction,
    Tariff,
    TariffDimension,
    TariffNotApplicableError,
    compile_tariff,
    format_explanation,
    price_cdr,
    price_session,
    tariff_is_active,
)

D = Decimal
AMS = "Europe/Amsterdam"


def price(
    t: Tariff,
    periods: list[ChargingPeriod],
    end: datetime,
    zone: str = "UTC",
    currency: str | None = None,
) -> PricingResult:
    return price_session(
        t,
        periods,
        start_date_time=periods[0].start_date_time,
        end_date_time=end,
        time_zone=zone,
        currency=currency,
    )


def priced_lines(result: PricingResult, dimension: TariffDimension) -> list[BreakdownLine]:
    return [
        line
        for line in result.lines
        if line.dimension is dimension and line.kind in (LineKind.PRICED, LineKind.FLAT)
    ]


# ------------------------------------------------------------------ element selection


def test_each_dimension_takes_the_first_element_that_has_it_and_matches() -> None:
    # mod_tariffs, Tariff object: elements are looked up separately per dimension.
    t = tariff(
        element(component("TIME", "1.00"), component("ENERGY", "0.50"), max_power=D(10)),
        element(component("ENERGY", "0.30")),
        element(component("TIME", "9.99")),
    )
    start = utc("2024-05-06T10:00")
    p = period(start, energy="10", time="1", min_power="20", max_power="20")
    result = price(t, [p], start + timedelta(hours=1))
    # max_power 10 fails (20 kW), so ENERGY comes from element 1; TIME only from elements
    # with a TIME component, the first of which (element 0) also has the failing
    # restriction, so TIME falls to element 2.
    assert [line.element_index for line in priced_lines(result, TariffDimension.ENERGY)] == [1]
    assert [line.element_index for line in priced_lines(result, TariffDimension.TIME)] == [2]
    assert result.totals.total_energy_cost.excl_vat == D("0.30") * 10
    assert result.totals.total_time_cost.excl_vat == D("9.99")


def test_a_dimension_no_element_prices_is_free_and_shown() -> None:
    t = tariff(element(component("TIME", "2.00")))
    start = utc("2024-05-06T10:00")
    result = price(
        t,
        [period(start, time="1"), period(start + timedelta(hours=1), parking_time="0.5")],
        start + timedelta(hours=1, minutes=30),
    )
    assert result.totals.total_parking_cost == Price(D("0.00"), D("0.00"))
    assert result.totals.total_parking_time == D("0.5000")
    unpriced = [line for line in result.lines if line.kind is LineKind.UNPRICED]
    assert [(u.dimension, u.period_index) for u in unpriced] == [(TariffDimension.PARKING_TIME, 1)]


# ------------------------------------------------------------------ FLAT


def test_flat_is_charged_once_per_session() -> None:
    t = tariff(element(component("FLAT", "1.50", vat="20"), component("ENERGY", "0.25")))
    start = utc("2024-05-06T10:00")
    periods = [period(start + timedelta(minutes=15 * i), energy="2") for i in range(4)]
    result = price(t, periods, start + timedelta(hours=1))
    assert len(priced_lines(result, TariffDimension.FLAT)) == 1
    assert result.totals.total_fixed_cost == Price(D("1.50"), D("1.80"))


def test_flat_of_an_element_that_becomes_active_mid_session() -> None:
    # Restrictions make an element "become active" during a session (TariffRestrictions);
    # its FLAT is charged once, from the piece where it first applies.
    t = tariff(element(component("FLAT", "3.00"), start_time=time(18, 0)))
    start = utc("2024-05-06T17:00")
    result = price(t, [period(start, time="2")], start + timedelta(hours=2))
    (flat,) = priced_lines(result, TariffDimension.FLAT)
    assert flat.start == utc("2024-05-06T18:00")
    assert result.totals.total_fixed_cost.excl_vat == D("3.00")

    early = price(t, [period(start, time="0.5")], start + timedelta(minutes=30))
    assert early.totals.total_fixed_cost.excl_vat == 0


# ------------------------------------------------------------------ times of day and dates


@pytest.mark.parametrize(
    ("start_hm", "expected_cheap_kwh"),
    [
        ("21:00", 1),  # 21-22 normal, 22-23 cheap
        ("05:00", 1),  # 05-06 cheap, 06-07 normal
        ("23:00", 2),  # 23-01 cheap across midnight
        ("12:00", 0),
    ],
)
def test_time_window_wrapping_past_midnight(start_hm: str, expected_cheap_kwh: int) -> None:
    # "If end_time < start_time then the period wraps around to the next day."
    t = tariff(
        element(component("ENERGY", "0.10"), start_time=time(22, 0), end_time=time(6, 0)),
        element(component("ENERGY", "0.30")),
    )
    start = utc(f"2024-05-06T{start_hm}")
    result = price(t, [period(start, energy="2")], start + timedelta(hours=2))
    cheap = D(expected_cheap_kwh)
    assert result.totals.total_energy_cost.excl_vat == cheap * D("0.10") + (2 - cheap) * D("0.30")


def test_end_time_0000_means_end_of_day() -> None:
    t = tariff(
        element(component("TIME", "5.00"), start_time=time(20, 0), end_time=time(0, 0)),
        element(component("TIME", "1.00")),
    )
    start = utc("2024-05-06T23:00")
    result = price(t, [period(start, time="2")], start + timedelta(hours=2))
    # 23:00-24:00 at 5.00, 00:00-01:00 at 1.00
    assert result.totals.total_time_cost.excl_vat == D("5.00") + D("1.00")


def test_start_time_alone_runs_to_midnight_and_end_time_alone_from_midnight() -> None:
    t = tariff(
        element(component("TIME", "4.00"), start_time=time(23, 30)),
        element(component("TIME", "2.00"), end_time=time(0, 30)),
        element(component("TIME", "1.00")),
    )
    start = utc("2024-05-06T23:00")
    result = price(t, [period(start, time="2")], start + timedelta(hours=2))
    # 23:00-23:30 at 1, 23:30-24:00 at 4, 00:00-00:30 at 2, 00:30-01:00 at 1 (half hours)
    half = D("0.5")
    assert result.totals.total_time_cost.excl_vat == half * (1 + 4 + 2 + 1)


def test_start_date_inclusive_end_date_exclusive_in_local_time() -> None:
    t = tariff(
        element(
            component("ENERGY", "0.50"), start_date=date(2024, 1, 2), end_date=date(2024, 1, 3)
        ),
        element(component("ENERGY", "0.20")),
    )
    # Amsterdam is UTC+1 in January: local 2024-01-01 23:00 .. 2024-01-03 01:00.
    start = utc("2024-01-01T22:00")
    result = price(t, [period(start, energy="26")], start + timedelta(hours=26), zone=AMS)
    # 1 h before the start date, 24 h on it, 1 h on the end date: 1 kWh per hour.
    assert result.totals.total_energy_cost.excl_vat == 24 * D("0.50") + 2 * D("0.20")
    boundaries = [line.start for line in priced_lines(result, TariffDimension.ENERGY)]
    assert boundaries == [start, utc("2024-01-01T23:00"), utc("2024-01-02T23:00")]


def test_day_of_week_is_the_local_day() -> None:
    t = tariff(
        element(component("TIME", "3.00"), day_of_week=frozenset({DayOfWeek.MONDAY})),
        element(component("TIME", "1.00")),
    )
    # Sunday 2024-05-05 22:00Z-24:00Z is 00:00-02:00 on Monday in Amsterdam (UTC+2).
    start = utc("2024-05-05T22:00")
    local = price(t, [period(start, time="2")], start + timedelta(hours=2), zone=AMS)
    assert local.totals.total_time_cost.excl_vat == 2 * D("3.00")
    in_utc = price(t, [period(start, time="2")], start + timedelta(hours=2), zone="UTC")
    assert in_utc.totals.total_time_cost.excl_vat == 2 * D("1.00")


def test_a_period_crossing_a_time_boundary_is_split_there() -> None:
    t = tariff(
        element(component("TIME", "1.20"), end_time=time(17, 0)),
        element(component("TIME", "2.40")),
    )
    start = utc("2024-05-06T16:30")
    result = price(t, [period(start, time=hours(60))], start + timedelta(hours=1))
    lines = priced_lines(result, TariffDimension.TIME)
    assert [(line.start, line.end) for line in lines] == [
        (start, utc("2024-05-06T17:00")),
        (utc("2024-05-06T17:00"), start + timedelta(hours=1)),
    ]
    assert [line.volume for line in lines] == [D("0.5"), D("0.5")]
    assert result.totals.total_time_cost.excl_vat == D("0.5") * D("1.20") + D("0.5") * D("2.40")


# ------------------------------------------------------------------ energy and duration


def test_kwh_thresholds_split_a_period_by_energy_charged_so_far() -> None:
    # min_kwh inclusive, max_kwh exclusive, over the energy charged in the session so far.
    t = tariff(
        element(component("ENERGY", "0.40"), max_kwh=D(5)),
        element(component("ENERGY", "0.20"), min_kwh=D(5)),
    )
    start = utc("2024-05-06T10:00")
    one = price(t, [period(start, energy="8")], start + timedelta(hours=1))
    assert one.totals.total_energy_cost.excl_vat == 5 * D("0.40") + 3 * D("0.20")
    two = price(
        t,
        [period(start, energy="3"), period(start + timedelta(minutes=30), energy="5")],
        start + timedelta(hours=1),
    )
    assert two.totals.total_energy_cost.excl_vat == (3 + 2) * D("0.40") + 3 * D("0.20")
    # The split sits where the energy crosses 5 kWh, 2/5 into the second period.
    second = [line for line in priced_lines(two, TariffDimension.ENERGY) if line.period_index == 1]
    assert second[1].start == start + timedelta(minutes=30 + 12)


def test_max_kwh_is_exclusive_at_the_boundary() -> None:
    t = tariff(
        element(component("ENERGY", "0.00"), max_kwh=D(1)),
        element(component("ENERGY", "1.00")),
    )
    start = utc("2024-05-06T10:00")
    result = price(
        t,
        [period(start, energy="1"), period(start + timedelta(minutes=10), energy="1")],
        start + timedelta(minutes=20),
    )
    # The first kWh is free; the second period starts at exactly 1 kWh: not below max_kwh.
    assert result.totals.total_energy_cost.excl_vat == D("1.00")


def test_duration_thresholds_split_a_period_and_count_from_session_start() -> None:
    # tariffrestriction_max_duration: free for 30 min, then 0.25/kWh.
    t = tariff(
        element(component("ENERGY", "0.00"), max_duration=1800),
        element(component("ENERGY", "0.25")),
    )
    start = utc("2024-05-06T10:00")
    result = price(t, [period(start, energy="10", time="1")], start + timedelta(hours=1))
    # Half of the hour (and of the energy) is past 30 minutes.
    assert result.totals.total_energy_cost.excl_vat == 5 * D("0.25")


def test_min_duration_counts_parking_time_too() -> None:
    t = tariff(
        element(component("PARKING_TIME", "6.00"), min_duration=3600),
        element(component("TIME", "1.00")),
    )
    start = utc("2024-05-06T10:00")
    result = price(
        t,
        [period(start, time=hours(45)), period(start + timedelta(minutes=45), parking_time="0.5")],
        start + timedelta(minutes=75),
    )
    # Parking 10:45-11:15; the fee applies from 11:00 (60 min after the session start).
    assert result.totals.total_parking_cost.excl_vat == D("0.25") * D("6.00")


# ------------------------------------------------------------------ current and power


def test_current_restrictions_use_the_period_minimum_and_maximum() -> None:
    t = tariff(
        element(component("TIME", "1.00"), max_current=D(32)),
        element(component("TIME", "2.00"), min_current=D(32)),
        element(component("TIME", "9.00")),
    )
    start = utc("2024-05-06T10:00")
    end = start + timedelta(hours=1)

    def cost(**dims: str) -> Decimal:
        result = price(t, [period(start, time="1", **dims)], end)
        return result.totals.total_time_cost.excl_vat

    assert cost(min_current="10", max_current="16") == D("1.00")
    assert cost(min_current="32", max_current="43") == D("2.00")  # min_current inclusive
    assert cost(min_current="20", max_current="40") == D("9.00")  # neither holds throughout
    assert cost(current="16") == D("1.00")  # the average stands in for both extremes


def test_missing_current_makes_a_current_restriction_not_met_with_a_warning() -> None:
    t = tariff(
        element(component("TIME", "1.00"), max_current=D(32)),
        element(component("TIME", "9.00")),
    )
    start = utc("2024-05-06T10:00")
    result = price(t, [period(start, time="1")], start + timedelta(hours=1))
    assert result.totals.total_time_cost.excl_vat == D("9.00")
    assert any("current restrictions are treated as not met" in w for w in result.warnings)


def test_power_restrictions() -> None:
    t = tariff(
        element(component("ENERGY", "0.20"), max_power=D(16)),
        element(component("ENERGY", "0.35"), min_power=D(16), max_power=D(32)),
        element(component("ENERGY", "0.50")),
    )
    start = utc("2024-05-06T10:00")
    result = price(
        t,
        [
            period(start, energy="1", min_power="6", max_power="6"),
            period(start + timedelta(minutes=10), energy="10", min_power="20", max_power="22"),
            period(start + timedelta(minutes=40), energy="10", power="40"),
        ],
        start + timedelta(hours=1),
    )
    assert result.totals.total_energy_cost.excl_vat == D("0.20") + 10 * D("0.35") + 10 * D("0.50")


# ------------------------------------------------------------------ step_size


def test_energy_step_applies_to_the_session_total_at_the_last_price() -> None:
    # mod_cdrs step_size example: 4.3 kWh before 17:00 + 1.1 kWh after = 5.4 -> 5.5 kWh.
    t = tariff(
        element(component("ENERGY", "0.20", step=500), end_time=time(17, 0)),
        element(component("ENERGY", "0.27", step=500)),
    )
    start = utc("2024-05-06T16:00")
    result = price(
        t,
        [period(start, energy="4.3"), period(start + timedelta(hours=1), energy="1.1")],
        start + timedelta(hours=2),
    )
    extra = D("5.5") - D("5.4")
    expected = D("4.3") * D("0.20") + (D("1.1") + extra) * D("0.27")
    assert result.exact.total_energy_cost.excl_vat == expected
    (step,) = [line for line in result.lines if line.kind is LineKind.STEP_SIZE]
    assert (step.volume, step.element_index) == (extra, 1)


def test_time_is_not_rounded_when_parking_follows() -> None:
    t = tariff(
        element(component("TIME", "1.00", step=600), component("PARKING_TIME", "2.00", step=600))
    )
    start = utc("2024-05-06T10:00")
    result = price(
        t,
        [
            period(start, time=hours(21)),
            period(start + timedelta(minutes=21), parking_time=hours(16)),
        ],
        start + timedelta(minutes=37),
    )
    assert close(result.exact.total_time_cost.excl_vat, D(21) / 60 * D("1.00"))
    assert close(result.exact.total_parking_cost.excl_vat, D(20) / 60 * D("2.00"))


def test_time_is_rounded_when_it_is_the_last_time_based_period() -> None:
    # A charge / park / charge session: charging time was priced last, so the step of its
    # component rounds the charging total and parking stays exact ("once for PARKING_TIME
    # and TIME combined", step of "the last time based Price Component").
    t = tariff(
        element(component("TIME", "1.00", step=900), component("PARKING_TIME", "2.00", step=900))
    )
    start = utc("2024-05-06T10:00")
    result = price(
        t,
        [
            period(start, time=hours(10)),
            period(start + timedelta(minutes=10), parking_time=hours(5)),
            period(start + timedelta(minutes=15), time=hours(10)),
        ],
        start + timedelta(minutes=25),
    )
    assert close(result.exact.total_time_cost.excl_vat, D(30) / 60 * D("1.00"))
    assert close(result.exact.total_parking_cost.excl_vat, D(5) / 60 * D("2.00"))


def test_step_size_zero_bills_the_exact_amount() -> None:
    t = tariff(element(component("ENERGY", "0.30", step=0), component("TIME", "1.00", step=0)))
    start = utc("2024-05-06T10:00")
    result = price(t, [period(start, energy="1.2345", time="0.0101")], start + timedelta(hours=1))
    assert result.exact.total_energy_cost.excl_vat == D("1.2345") * D("0.30")
    assert result.exact.total_time_cost.excl_vat == D("0.0101")
    assert not [line for line in result.lines if line.kind is LineKind.STEP_SIZE]


# ------------------------------------------------------------------ VAT, bounds, rounding


def test_vat_per_component_and_no_vat_means_none() -> None:
    t = tariff(
        element(
            component("FLAT", "1.00", vat="20"),
            component("ENERGY", "0.50", vat="0"),
            component("TIME", "2.00"),
        )
    )
    start = utc("2024-05-06T10:00")
    result = price(t, [period(start, energy="2", time="1")], start + timedelta(hours=1))
    assert result.totals.total_fixed_cost == Price(D("1.00"), D("1.20"))
    assert result.totals.total_energy_cost == Price(D("1.00"), D("1.00"))
    assert result.totals.total_time_cost == Price(D("2.00"), D("2.00"))
    assert result.totals.total_cost == Price(D("4.00"), D("4.20"))


def test_min_price_applies_to_each_vat_limb_on_its_own() -> None:
    # "The total cost ... excluding VAT can never be lower than the min_price excluding
    # VAT" and likewise including VAT: here only the incl limb is below its minimum.
    t = tariff(
        element(component("ENERGY", "0.50", vat="10")),
        min_price=Price(D("1.00"), D("1.30")),
    )
    start = utc("2024-05-06T10:00")
    result = price(t, [period(start, energy="2.2")], start + timedelta(hours=1))
    assert result.totals.total_cost == Price(D("1.10"), D("1.30"))
    assert result.totals.total_energy_cost == Price(D("1.10"), D("1.21"))
    (line,) = [line for line in result.lines if line.kind is LineKind.MIN_PRICE]
    assert line.cost == Price(D(0), D("1.30") - D("1.21"))


def test_max_price_caps_each_limb_on_its_own() -> None:
    t = tariff(
        element(component("ENERGY", "0.50", vat="25")),
        max_price=Price(D("10.00"), D("11.00")),
    )
    start = utc("2024-05-06T10:00")
    result = price(t, [period(start, energy="18")], start + timedelta(hours=1))
    # 9.00 excl stays; 11.25 incl is capped at 11.00.
    assert result.totals.total_cost == Price(D("9.00"), D("11.00"))


def test_a_bound_without_incl_vat_bounds_only_the_excl_limb() -> None:
    t = tariff(element(component("ENERGY", "0.50", vat="10")), min_price=Price(D("2.00")))
    start = utc("2024-05-06T10:00")
    result = price(t, [period(start, energy="2")], start + timedelta(hours=1))
    # excl 1.00 is raised to 2.00; incl 1.10 has no bound of its own but cannot be below
    # the excl total (VAT is never negative).
    assert result.totals.total_cost == Price(D("2.00"), D("2.00"))
    big = price(t, [period(start, energy="3.9")], start + timedelta(hours=1))
    assert big.totals.total_cost == Price(D("2.00"), D("2.15"))  # 1.95 excl, 2.145 incl

    capped = tariff(element(component("ENERGY", "0.50", vat="10")), max_price=Price(D("1.00")))
    result = price(capped, [period(start, energy="3")], start + timedelta(hours=1))
    assert result.totals.total_cost == Price(D("1.00"), D("1.65"))


def test_money_is_rounded_once_at_the_end() -> None:
    # Three pieces of 0.004995 each would round to 0.00 one by one; the total is 0.014985.
    t = tariff(element(component("ENERGY", "0.015", step=0)))
    start = utc("2024-05-06T10:00")
    periods = [period(start + timedelta(minutes=10 * i), energy="0.333") for i in range(3)]
    result = price(t, periods, start + timedelta(minutes=30))
    assert all(line.cost.excl_vat < D("0.005") for line in result.lines)
    assert result.totals.total_cost.excl_vat == D("0.01")


def test_rounding_is_half_up() -> None:
    t = tariff(element(component("ENERGY", "0.125", step=0)))
    start = utc("2024-05-06T10:00")
    result = price(t, [period(start, energy="1")], start + timedelta(hours=1))
    assert result.exact.total_cost.excl_vat == D("0.125")
    assert result.totals.total_cost.excl_vat == D("0.13")


@pytest.mark.parametrize(("currency", "places"), [("JPY", 0), ("KWD", 3), ("EUR", 2)])
def test_money_is_rounded_to_the_currency_minor_unit(currency: str, places: int) -> None:
    t = tariff(element(component("ENERGY", "12.3456", step=0)), currency=currency)
    start = utc("2024-05-06T10:00")
    result = price(t, [period(start, energy="1.3")], start + timedelta(hours=1), currency=currency)
    exact = D("12.3456") * D("1.3")
    assert result.totals.total_cost.excl_vat == exact.quantize(
        D(1).scaleb(-places), "ROUND_HALF_UP"
    )
    assert result.totals.total_energy == D("1.3000")


# ------------------------------------------------------------------ tariff validity


def test_a_tariff_outside_its_validity_at_session_start_does_not_apply() -> None:
    t = tariff(
        element(component("ENERGY", "0.25")),
        start_date_time=utc("2024-06-01T00:00"),
        end_date_time=utc("2024-06-30T23:59:59"),
    )
    for start, field in (
        (utc("2024-05-31T23:59"), "start_date_time"),
        (utc("2024-07-01T00:00"), "end_date_time"),
    ):
        with pytest.raises(TariffNotApplicableError) as caught:
            price(t, [period(start, energy="1")], start + timedelta(hours=1))
        assert caught.value.field == field
    assert tariff_is_active(t, utc("2024-06-01T00:00"))
    assert tariff_is_active(t, utc("2024-06-30T23:59:59"))
    # Validity is decided at the start: a session running past end_date_time keeps it.
    late = utc("2024-06-30T23:00")
    result = price(t, [period(late, energy="4")], late + timedelta(hours=2))
    assert result.totals.total_cost.excl_vat == 4 * D("0.25")


# ------------------------------------------------------------------ reservations


def _reservation_tariff(expires_first: bool) -> Tariff:
    expires = element(
        component("TIME", "6.00", step=600), reservation=ReservationRestriction.RESERVATION_EXPIRES
    )
    used = element(
        component("TIME", "3.00", step=600), reservation=ReservationRestriction.RESERVATION
    )
    session = element(component("FLAT", "0.50"), component("ENERGY", "0.25"))
    return tariff(*((expires, used) if expires_first else (used, expires)), session)


@pytest.mark.parametrize("expires_first", [True, False])
def test_expired_reservation_time_uses_the_expires_element_whatever_its_position(
    expires_first: bool,
) -> None:
    # ReservationRestrictionType note: with both, "the time based cost of an expired
    # reservation will be calculated based on the RESERVATION_EXPIRES Tariff Element".
    t = _reservation_tariff(expires_first)
    start = utc("2024-05-06T10:00")
    expired = price(t, [period(start, reservation_time="1.5")], start + timedelta(minutes=90))
    assert expired.reservation_expired is True
    assert expired.totals.total_reservation_cost.excl_vat == D("1.5") * D("6.00")
    assert expired.totals.total_fixed_cost.excl_vat == 0  # no session, no session FLAT

    used = price(
        t,
        [
            period(start, reservation_time=hours(22)),
            period(start + timedelta(minutes=22), energy="20"),
        ],
        start + timedelta(minutes=82),
    )
    assert used.reservation_expired is False
    # 22 min billed in 600 s steps: 30 min at 3.00/h.
    assert used.totals.total_reservation_cost.excl_vat == D("0.5") * D("3.00")
    assert used.totals.total_cost.excl_vat == D("1.50") + D("0.50") + 20 * D("0.25")
    assert {line.part for line in used.lines} == {Part.RESERVATION, Part.SESSION}


def test_reservation_elements_may_only_price_flat_and_time() -> None:
    t = tariff(element(component("ENERGY", "1.00"), reservation=ReservationRestriction.RESERVATION))
    with pytest.raises(InvalidTariffError) as caught:
        compile_tariff(t)
    assert caught.value.field == "elements[0].price_components[0].type"


def test_a_reservation_cannot_follow_the_session() -> None:
    t = _reservation_tariff(True)
    start = utc("2024-05-06T10:00")
    with pytest.raises(InvalidCdrError) as caught:
        price(
            t,
            [
                period(start, energy="2"),
                period(start + timedelta(minutes=5), reservation_time="0.1"),
            ],
            start + timedelta(minutes=20),
        )
    assert caught.value.field == "charging_periods[1].start_date_time"


# ------------------------------------------------------------------ the session as a whole


def test_periods_out_of_order_are_priced_in_time_order() -> None:
    t = tariff(
        element(component("ENERGY", "0.00"), max_kwh=D(1)),
        element(component("ENERGY", "0.30")),
    )
    start = utc("2024-05-06T10:00")
    ordered = [period(start, energy="1"), period(start + timedelta(minutes=30), energy="4")]
    a = price(t, ordered, start + timedelta(hours=1))
    b = price(t, ordered[::-1], start + timedelta(hours=1))
    assert a.totals == b.totals
    assert any("not in time order" in w for w in b.warnings)
    assert not a.warnings


def test_a_period_naming_another_tariff_is_refused() -> None:
    t = tariff(element(component("ENERGY", "0.30")), id="A")
    start = utc("2024-05-06T10:00")
    p = period(start, energy="1")
    other = type(p)(p.start_date_time, p.dimensions, tariff_id="B")
    with pytest.raises(InvalidCdrError) as caught:
        price(t, [other], start + timedelta(hours=1))
    assert caught.value.field == "charging_periods[0].tariff_id"
    same = type(p)(p.start_date_time, p.dimensions, tariff_id="A")
    assert price(t, [same], start + timedelta(hours=1)).totals.total_cost.excl_vat == D("0.30")


def test_a_running_session_is_priced_with_the_periods_so_far() -> None:
    t = tariff(element(component("TIME", "2.00", step=900)))
    start = utc("2024-05-06T10:00")
    so_far = price(t, [period(start, time=hours(20))], start + timedelta(minutes=20))
    assert so_far.totals.total_cost.excl_vat == D("2.00") * D("0.5")  # 20 -> 30 min
    final = price(
        t,
        [period(start, time=hours(20)), period(start + timedelta(minutes=20), time=hours(20))],
        start + timedelta(minutes=40),
    )
    assert final.totals.total_cost.excl_vat == D("2.00") * D("0.75")  # 40 -> 45 min
    assert final.totals.total_time == D("0.6667")


def test_breakdown_adds_up_to_the_exact_totals() -> None:
    t = tariff(
        element(component("FLAT", "1.00", vat="21")),
        element(component("ENERGY", "0.30", vat="21", step=100), end_time=time(17, 0)),
        element(component("ENERGY", "0.40", vat="21", step=100)),
        element(component("PARKING_TIME", "3.00", vat="9", step=300)),
        min_price=Price(D("1.00"), D("1.21")),
    )
    start = utc("2024-05-06T16:20")
    result = price(
        t,
        [
            period(start, energy="12.34", time="1"),
            period(start + timedelta(hours=1), parking_time="0.3"),
        ],
        start + timedelta(hours=1, minutes=18),
        zone=AMS,
    )
    total_excl = sum((line.cost.excl_vat for line in result.lines), D(0))
    total_incl = sum((line.cost.incl_vat or D(0) for line in result.lines), D(0))
    assert (total_excl, total_incl) == tuple(result.exact.total_cost)


def test_price_cdr_takes_the_zone_from_the_cdr_and_checks_the_currency() -> None:
    t = tariff(element(component("TIME", "1.00"), day_of_week=frozenset({DayOfWeek.MONDAY})))
    start = utc("2024-05-05T22:30")  # Monday 00:30 in Amsterdam, still Sunday in UTC
    p = period(start, time="1")
    cdr = Cdr(start, start + timedelta(hours=1), "EUR", (p,), time_zone=AMS)
    assert price_cdr(t, cdr).totals.total_cost.excl_vat == D("1.00")
    assert price_cdr(t, cdr, time_zone="UTC").totals.total_cost.excl_vat == 0
    foreign = Cdr(start, start + timedelta(hours=1), "CHF", (p,), time_zone=AMS)
    with pytest.raises(InvalidCdrError) as caught:
        price_cdr(t, foreign)
    assert caught.value.field == "currency"


# ------------------------------------------------------------------ DST


def test_spring_forward_boundary_in_the_skipped_hour_takes_effect_at_the_jump() -> None:
    # 2025-03-30, Amsterdam: 02:00 CET jumps to 03:00 CEST at 01:00Z. A 02:30 start time
    # never shows on the clock; the element is active from the jump.
    t = tariff(
        element(component("TIME", "10.00"), start_time=time(2, 30), end_time=time(4, 0)),
        element(component("TIME", "1.00")),
    )
    start = utc("2025-03-30T00:00")  # 01:00 CET
    result = price(t, [period(start, time="3")], start + timedelta(hours=3), zone=AMS)
    lines = priced_lines(result, TariffDimension.TIME)
    # 00:00Z-01:00Z (01:00-02:00 CET) at 1; 01:00Z-02:00Z (03:00-04:00 CEST) at 10;
    # 02:00Z-03:00Z (04:00-05:00) at 1.
    assert [(line.start, line.element_index) for line in lines] == [
        (utc("2025-03-30T00:00"), 1),
        (utc("2025-03-30T01:00"), 0),
        (utc("2025-03-30T02:00"), 1),
    ]
    assert result.totals.total_time_cost.excl_vat == 1 + 10 + 1
    assert result.totals.total_time == D(3)  # physical hours, not wall-clock difference


def test_fall_back_hour_happens_twice() -> None:
    # 2025-10-26, Amsterdam: 03:00 CEST falls back to 02:00 CET at 01:00Z, so the local
    # hour 02:00-03:00 lasts two real hours.
    t = tariff(
        element(component("TIME", "10.00"), start_time=time(2, 0), end_time=time(3, 0)),
        element(component("TIME", "1.00")),
    )
    start = utc("2025-10-25T23:00")  # 01:00 CEST
    result = price(t, [period(start, time="4")], start + timedelta(hours=4), zone=AMS)
    assert result.totals.total_time_cost.excl_vat == 2 * 10 + 2 * 1


def test_day_changes_at_a_midnight_that_does_not_exist() -> None:
    # America/Havana, 2024-03-10: 00:00 CST jumps to 01:00 CDT at 05:00Z. The weekday
    # changes from Saturday to Sunday at the jump.
    t = tariff(
        element(component("TIME", "5.00"), day_of_week=frozenset({DayOfWeek.SUNDAY})),
        element(component("TIME", "1.00")),
    )
    start = utc("2024-03-10T04:00")  # Saturday 23:00 CST
    result = price(t, [period(start, time="2")], start + timedelta(hours=2), zone="America/Havana")
    lines = priced_lines(result, TariffDimension.TIME)
    assert [line.start for line in lines] == [start, utc("2024-03-10T05:00")]
    assert result.totals.total_time_cost.excl_vat == 1 + 5


def test_half_hour_dst_shift() -> None:
    # Australia/Lord_Howe moves its clocks by 30 minutes (10:30 -> 11:00 at 15:30Z on
    # 2024-10-05): local 02:00-02:30 is skipped.
    zone = "Australia/Lord_Howe"
    t = tariff(
        element(component("TIME", "4.00"), start_time=time(2, 0), end_time=time(3, 0)),
        element(component("TIME", "1.00")),
    )
    start = utc("2024-10-05T15:00")  # 01:30 local (+10:30)
    result = price(t, [period(start, time="1.5")], start + timedelta(minutes=90), zone=zone)
    local = [
        line.start.astimezone(ZoneInfo(zone)).time()
        for line in priced_lines(result, TariffDimension.TIME)
    ]
    # 01:30-02:00 (+10:30) at 1; the jump lands on 02:30 (+11): 02:30-03:00 at 4; then 1.
    assert local == [time(1, 30), time(2, 30), time(3, 0)]
    assert result.exact.total_time_cost.excl_vat == D("0.5") * 1 + D("0.5") * 4 + D("0.5") * 1


def test_explanation_names_elements_and_local_times() -> None:
    t = tariff(
        element(component("FLAT", "2.50", vat="15")),
        element(component("TIME", "1.00", vat="20", step=900), end_time=time(12, 0)),
        element(component("PARKING_TIME", "5.00", vat="10", step=300)),
    )
    start = utc("2024-05-06T09:30")
    result = price(
        t,
        [
            period(start, time="2.75", energy="10"),
            period(start + timedelta(minutes=165), parking_time="0.7"),
        ],
        start + timedelta(minutes=207),
        zone=AMS,
    )
    text = format_explanation(result)
    assert "e1.c0" in text
    assert "e2.c0" in text
    assert "2024-05-06 11:30:00 CEST" in text  # 09:30Z in Amsterdam
    assert "PARKING_TIME step" in text
    assert f"{result.totals.total_cost.excl_vat}" in text


def test_a_time_tariff_without_time_dimensions_says_so() -> None:
    # Charging time is a TIME dimension (mod_cdrs); it is never guessed from timestamps.
    t = tariff(element(component("TIME", "2.00"), component("ENERGY", "0.20")))
    start = utc("2024-05-06T10:00")
    result = price(t, [period(start, energy="10")], start + timedelta(hours=1))
    assert result.totals.total_time_cost.excl_vat == 0
    assert result.totals.total_time == 1  # the session's duration is still reported
    assert any("no charging period reports a TIME dimension" in w for w in result.warnings)


def test_a_period_reporting_more_time_than_it_lasts_is_priced_as_reported_with_a_warning() -> None:
    # mod_cdrs: volumes are what is billed; the period's span only places it in time.
    t = tariff(element(component("TIME", "6.00", step=0)))
    start = utc("2024-05-06T10:00")
    result = price(
        t,
        [period(start, time=hours(5)), period(start + timedelta(minutes=2), time=hours(5))],
        start + timedelta(minutes=7),
    )
    assert close(result.exact.total_time_cost.excl_vat, D(10) / 60 * D("6.00"))
    assert result.totals.total_time == round(D(7) / 60, 4)
    assert [w for w in result.warnings if "reports" in w] == [
        "charging_periods[0] reports 0.0833 h of TIME/PARKING_TIME but lasts 0.0333 h until "
        "the next period"
    ]
