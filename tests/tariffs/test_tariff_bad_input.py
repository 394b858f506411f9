"""Input that is not valid OCPI gets a clear error naming the field, never a silent price."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from tariff_helpers import component, element, period, tariff, utc

from ocpi.tariffs import (
    Cdr,
    CdrDimension,
    CdrDimensionType,
    ChargingPeriod,
    CurrencyMismatchError,
    InvalidArgumentError,
    InvalidCdrError,
    InvalidTariffError,
    Price,
    PriceComponent,
    TariffDimension,
    TariffError,
    cdr_from_ocpi_dict,
    compile_tariff,
    price_cdr,
    price_session,
    tariff_from_ocpi_dict,
)

TARIFF: dict[str, Any] = {
    "country_code": "DE",
    "party_id": "ALL",
    "id": "14",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [
                {"type": "FLAT", "price": Decimal("2.50"), "vat": 15, "step_size": 1}
            ]
        },
        {
            "price_components": [
                {"type": "TIME", "price": Decimal("1.00"), "vat": 20, "step_size": 900}
            ],
            "restrictions": {"start_time": "09:00", "end_time": "18:00", "max_current": 32},
        },
        {
            "price_components": [
                {"type": "ENERGY", "price": Decimal("0.25"), "vat": 10, "step_size": 1}
            ]
        },
    ],
    "last_updated": "2015-06-29T20:39:09Z",
}
CDR: dict[str, Any] = {
    "country_code": "NL",
    "party_id": "EXA",
    "id": "c1",
    "start_date_time": "2019-06-03T09:30:00Z",
    "end_date_time": "2019-06-03T11:00:00Z",
    "currency": "EUR",
    "cdr_location": {"country": "NLD", "time_zone": "Europe/Amsterdam"},
    "charging_periods": [
        {
            "start_date_time": "2019-06-03T09:30:00Z",
            "dimensions": [{"type": "ENERGY", "volume": 10}, {"type": "TIME", "volume": 1}],
        },
        {
            "start_date_time": "2019-06-03T10:30:00Z",
            "dimensions": [{"type": "PARKING_TIME", "volume": Decimal("0.5")}],
        },
    ],
    "last_updated": "2019-06-03T11:00:00Z",
}


def _set(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(document)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


_DELETE = object()


def _price(tariff_doc: dict[str, Any], cdr_doc: dict[str, Any]) -> None:
    price_cdr(tariff_from_ocpi_dict(tariff_doc), cdr_from_ocpi_dict(cdr_doc))


def test_the_valid_documents_price() -> None:
    result = price_cdr(tariff_from_ocpi_dict(TARIFF), cdr_from_ocpi_dict(CDR))
    assert result.totals.total_cost.excl_vat > 0
    assert result.time_zone == "Europe/Amsterdam"


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (
            ("elements", 2, "price_components", 0, "price"),
            Decimal("-0.25"),
            "elements[2].price_components[0].price",
        ),
        (
            ("elements", 2, "price_components", 0, "type"),
            "KWH",
            "elements[2].price_components[0].type",
        ),
        (("elements", 2, "price_components", 0, "vat"), -1, "elements[2].price_components[0].vat"),
        (
            ("elements", 1, "price_components", 0, "step_size"),
            -60,
            "elements[1].price_components[0].step_size",
        ),
        (
            ("elements", 1, "price_components", 0, "step_size"),
            Decimal("1.5"),
            "elements[1].price_components[0].step_size",
        ),
        (
            ("elements", 1, "price_components", 0, "step_size"),
            _DELETE,
            "elements[1].price_components[0].step_size",
        ),
        (
            ("elements", 2, "price_components", 0, "price"),
            "0.25",
            "elements[2].price_components[0].price",
        ),
        (
            ("elements", 2, "price_components", 0, "price"),
            True,
            "elements[2].price_components[0].price",
        ),
        (
            ("elements", 2, "price_components", 0, "price_round"),
            "UP",
            "elements[2].price_components[0].price_round",
        ),
        (
            ("elements", 1, "restrictions", "start_time"),
            "9:00",
            "elements[1].restrictions.start_time",
        ),
        (("elements", 1, "restrictions", "end_time"), "24:00", "elements[1].restrictions.end_time"),
        (
            ("elements", 1, "restrictions", "start_date"),
            "2019-02-30",
            "elements[1].restrictions.start_date",
        ),
        (
            ("elements", 1, "restrictions", "day_of_week"),
            ["MON"],
            "elements[1].restrictions.day_of_week[0]",
        ),
        (("elements", 1, "restrictions", "min_kwh"), -5, "elements[1].restrictions.min_kwh"),
        (
            ("elements", 1, "restrictions", "max_duration"),
            -1,
            "elements[1].restrictions.max_duration",
        ),
        (
            ("elements", 1, "restrictions", "reservation"),
            "MAYBE",
            "elements[1].restrictions.reservation",
        ),
        (("elements", 1, "restrictions", "max_speed"), 3, "elements[1].restrictions.max_speed"),
        (("elements", 1, "price_components"), [], "elements[1].price_components"),
        (("elements",), [], "elements"),
        (("elements",), _DELETE, "elements"),
        (("currency",), "EURO", "currency"),
        (("currency",), _DELETE, "currency"),
        (("min_price",), {"excl_vat": 2, "incl_vat": 1}, "min_price.incl_vat"),
        (("min_price",), {"incl_vat": 1}, "min_price.excl_vat"),
        (("end_date_time",), "tomorrow", "end_date_time"),
    ],
)
def test_invalid_tariff_field_is_named(path: tuple[Any, ...], value: Any, field: str) -> None:
    with pytest.raises(InvalidTariffError) as caught:
        _price(_set(TARIFF, path, value), CDR)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"tariff {field}: ")


def test_min_price_above_max_price_is_refused() -> None:
    doc = _set(TARIFF, ("min_price",), {"excl_vat": 10, "incl_vat": 12})
    doc = _set(doc, ("max_price",), {"excl_vat": 5, "incl_vat": 6})
    with pytest.raises(InvalidTariffError) as caught:
        _price(doc, CDR)
    assert caught.value.field == "min_price.excl_vat"


def test_two_components_of_one_dimension_in_an_element_are_ambiguous() -> None:
    components = [
        {"type": "ENERGY", "price": 1, "step_size": 1},
        {"type": "ENERGY", "price": 2, "step_size": 1},
    ]
    with pytest.raises(InvalidTariffError) as caught:
        _price(_set(TARIFF, ("elements", 2, "price_components"), components), CDR)
    assert caught.value.field == "elements[2].price_components[1].type"


def test_ocpi_211_refuses_221_only_fields() -> None:
    doc = {
        "id": "1",
        "currency": "EUR",
        "elements": [
            {
                "price_components": [{"type": "TIME", "price": 1, "vat": 21, "step_size": 1}],
            }
        ],
    }
    with pytest.raises(InvalidTariffError) as caught:
        tariff_from_ocpi_dict(doc, version="2.1.1")
    assert caught.value.field == "elements[0].price_components[0].vat"
    doc["elements"][0] = {
        "price_components": [{"type": "TIME", "price": 1, "step_size": 1}],
        "restrictions": {"min_current": 16},
    }
    with pytest.raises(InvalidTariffError) as caught:
        tariff_from_ocpi_dict(doc, version="2.1.1")
    assert caught.value.field == "elements[0].restrictions.min_current"


@pytest.mark.parametrize(
    ("path", "value", "field", "error"),
    [
        (
            ("charging_periods", 0, "dimensions", 0, "type"),
            "KWH",
            "charging_periods[0].dimensions[0].type",
            InvalidCdrError,
        ),
        (
            ("charging_periods", 0, "dimensions", 0, "type"),
            "FLAT",
            "charging_periods[0].dimensions[0].type",
            InvalidCdrError,
        ),
        (
            ("charging_periods", 0, "dimensions", 0, "volume"),
            -3,
            "charging_periods[0].dimensions[0].volume",
            InvalidCdrError,
        ),
        (
            ("charging_periods", 0, "dimensions", 0, "volume"),
            "10",
            "charging_periods[0].dimensions[0].volume",
            InvalidCdrError,
        ),
        (
            ("charging_periods", 0, "dimensions", 1, "type"),
            "ENERGY",
            "charging_periods[0].dimensions[1].type",
            InvalidCdrError,
        ),
        (
            ("charging_periods", 0, "dimensions"),
            [],
            "charging_periods[0].dimensions",
            InvalidCdrError,
        ),
        (
            ("charging_periods", 1, "start_date_time"),
            "03/06/2019",
            "charging_periods[1].start_date_time",
            InvalidCdrError,
        ),
        (("charging_periods",), [], "charging_periods", InvalidCdrError),
        (("end_date_time",), "2019-06-03T09:00:00Z", "end_date_time", InvalidCdrError),
        (("end_date_time",), _DELETE, "end_date_time", InvalidCdrError),
        (("currency",), "USD", "currency", CurrencyMismatchError),
        (("cdr_location", "time_zone"), "Mars/Olympus_Mons", "time_zone", InvalidArgumentError),
    ],
)
def test_invalid_cdr_field_is_named(
    path: tuple[Any, ...], value: Any, field: str, error: type[TariffError]
) -> None:
    with pytest.raises(error) as caught:
        _price(TARIFF, _set(CDR, path, value))
    assert caught.value.field == field
    assert field in str(caught.value)


def test_periods_starting_together_overlap_when_they_meter_the_same_quantity() -> None:
    both_energy = _set(
        CDR,
        ("charging_periods", 1),
        {
            "start_date_time": "2019-06-03T09:30:00Z",
            "dimensions": [{"type": "ENERGY", "volume": 2}],
        },
    )
    with pytest.raises(InvalidCdrError) as caught:
        _price(TARIFF, both_energy)
    assert caught.value.field == "charging_periods[1].start_date_time"
    assert "overlaps charging_periods[0]" in str(caught.value)


def test_a_period_cannot_be_reservation_and_charging_at_once() -> None:
    mixed = _set(
        CDR,
        ("charging_periods", 0, "dimensions"),
        [{"type": "RESERVATION_TIME", "volume": 1}, {"type": "ENERGY", "volume": 1}],
    )
    with pytest.raises(InvalidCdrError) as caught:
        _price(TARIFF, mixed)
    assert caught.value.field == "charging_periods[0].dimensions"


def test_hand_built_values_get_the_same_checks() -> None:
    bad_price = tariff(element(component("ENERGY", "-1")))
    with pytest.raises(InvalidTariffError) as caught:
        compile_tariff(bad_price)
    assert caught.value.field == "elements[0].price_components[0].price"

    as_float: Any = 0.25  # a float where the type says Decimal, as untyped callers may pass
    float_price = tariff(element(PriceComponent(TariffDimension.ENERGY, as_float, step_size=1)))
    with pytest.raises(InvalidTariffError) as caught:
        compile_tariff(float_price)
    assert caught.value.field == "elements[0].price_components[0].price"

    t = tariff(element(component("ENERGY", "0.25")))
    naive = datetime(2024, 5, 6, 10, 0)
    with pytest.raises(InvalidCdrError) as caught:
        price_session(
            t,
            [period(naive, energy="1")],
            start_date_time=utc("2024-05-06T10:00"),
            end_date_time=utc("2024-05-06T11:00"),
            time_zone="UTC",
        )
    assert caught.value.field == "charging_periods[0].start_date_time"

    float_volume = ChargingPeriod(
        utc("2024-05-06T10:00"),
        (CdrDimension(CdrDimensionType.ENERGY, as_float),),
    )
    with pytest.raises(InvalidCdrError) as caught:
        price_session(
            t,
            [float_volume],
            start_date_time=utc("2024-05-06T10:00"),
            end_date_time=utc("2024-05-06T11:00"),
            time_zone="UTC",
        )
    assert caught.value.field == "charging_periods[0].dimensions[0].volume"


def test_a_time_zone_is_required_and_must_exist() -> None:
    t = tariff(element(component("ENERGY", "0.25")))
    start = utc("2024-05-06T10:00")
    cdr = Cdr(start, start + timedelta(hours=1), "EUR", (period(start, energy="1"),))
    with pytest.raises(InvalidArgumentError) as caught:
        price_cdr(t, cdr)
    assert caught.value.field == "time_zone"
    with pytest.raises(InvalidArgumentError):
        price_cdr(t, cdr, time_zone="Europe/Atlantis")


def test_floats_from_a_plain_json_decoder_keep_their_decimal_value() -> None:
    # json.loads without parse_float gives 0.1 as a binary float; the parser goes through
    # its shortest repr, so the price is exactly 0.1, not 0.1000000000000000055...
    doc = _set(TARIFF, ("elements", 2, "price_components", 0, "price"), 0.1)
    parsed = tariff_from_ocpi_dict(doc)
    assert parsed.elements[2].price_components[0].price == Decimal("0.1")
    with pytest.raises(InvalidTariffError) as caught:
        tariff_from_ocpi_dict(
            _set(TARIFF, ("elements", 2, "price_components", 0, "price"), float("nan"))
        )
    assert caught.value.field == "elements[2].price_components[0].price"


def test_empty_ranges_are_reported_not_refused() -> None:
    doc = _set(TARIFF, ("elements", 1, "restrictions"), {"min_kwh": 10, "max_kwh": 5})
    result = price_cdr(tariff_from_ocpi_dict(doc), cdr_from_ocpi_dict(CDR))
    assert any("never applies" in w for w in result.warnings)


def test_price_bounds_must_be_consistent() -> None:
    t = tariff(element(component("ENERGY", "0.25")), max_price=Price(Decimal("-1")))
    with pytest.raises(InvalidTariffError) as caught:
        compile_tariff(t)
    assert caught.value.field == "max_price.excl_vat"


def test_implausibly_large_numbers_are_refused_not_overflowed() -> None:
    huge = _set(CDR, ("charging_periods", 0, "dimensions", 0, "volume"), Decimal("1e100"))
    with pytest.raises(InvalidCdrError) as caught:
        _price(TARIFF, huge)
    assert caught.value.field == "charging_periods[0].dimensions[0].volume"
    steep = _set(TARIFF, ("elements", 2, "price_components", 0, "price"), Decimal("1e40"))
    with pytest.raises(InvalidTariffError) as caught:
        _price(steep, CDR)
    assert caught.value.field == "elements[2].price_components[0].price"
