"""The gateway's TariffPricer: compiled tariffs are kept and reused, never stale."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from gateway.roaming.billing import TariffPricer, price
from ocpi.tariffs import InvalidTariffError

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
END = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
PERIODS = [
    {
        "start_date_time": "2026-11-23T10:00:00Z",
        "dimensions": [
            {"type": "ENERGY", "volume": Decimal("3.0000")},
            {"type": "TIME", "volume": Decimal("0.5000")},
        ],
    }
]


def _tariff(energy_price: str, *, last_updated: str = "2026-11-01T00:00:00Z") -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "GWY",
        "id": "AC-STD",
        "currency": "EUR",
        "elements": [
            {
                "price_components": [
                    {
                        "type": "ENERGY",
                        "price": Decimal(energy_price),
                        "vat": Decimal(21),
                        "step_size": 1,
                    }
                ]
            }
        ],
        "last_updated": last_updated,
    }


def _cost(pricer: TariffPricer, tariff: dict[str, Any]) -> Decimal:
    result = pricer.price(
        tariff, PERIODS, start=START, end=END, time_zone="Europe/Amsterdam", currency="EUR"
    )
    return result.totals.total_cost.excl_vat


def test_a_tariff_is_compiled_once_for_every_price_it_computes() -> None:
    pricer = TariffPricer()
    for _ in range(3):  # decoded afresh each time, as the session service does
        assert _cost(pricer, _tariff("0.35")) == Decimal("1.05")
    assert pricer.compiles == 1
    uncached = price(
        _tariff("0.35"), PERIODS, start=START, end=END, time_zone="Europe/Amsterdam", currency="EUR"
    )
    assert (
        uncached.totals
        == pricer.price(
            _tariff("0.35"),
            PERIODS,
            start=START,
            end=END,
            time_zone="Europe/Amsterdam",
            currency="EUR",
        ).totals
    )


def test_a_changed_tariff_is_not_priced_from_the_stale_compiled_one() -> None:
    pricer = TariffPricer()
    assert _cost(pricer, _tariff("0.35")) == Decimal("1.05")
    # The same id and last_updated (a CPO that does not move it), another price.
    assert _cost(pricer, _tariff("0.99")) == Decimal("2.97")
    # A new last_updated with another price.
    assert _cost(pricer, _tariff("0.50", last_updated="2026-11-02T00:00:00Z")) == Decimal("1.50")
    assert pricer.compiles == 3
    # And back: the first one is compiled again (its entry was replaced), then kept.
    assert _cost(pricer, _tariff("0.35")) == Decimal("1.05")
    assert _cost(pricer, _tariff("0.35")) == Decimal("1.05")
    assert pricer.compiles == 4


def test_a_tariff_changed_in_place_by_the_caller_is_compiled_again() -> None:
    pricer = TariffPricer()
    tariff = _tariff("0.35")
    assert _cost(pricer, tariff) == Decimal("1.05")
    tariff["elements"][0]["price_components"][0]["price"] = Decimal("0.10")
    assert _cost(pricer, tariff) == Decimal("0.30")
    assert pricer.compiles == 2


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    pricer = TariffPricer(size=2)
    a, b, c = (_tariff("0.35", last_updated=f"2026-11-0{day}T00:00:00Z") for day in (1, 2, 3))
    for tariff in (a, b, a, c):  # c drops b, the least recently used
        _cost(pricer, copy.deepcopy(tariff))
    assert len(pricer) == 2 and pricer.compiles == 3
    _cost(pricer, a)
    assert pricer.compiles == 3
    _cost(pricer, b)
    assert pricer.compiles == 4


def test_a_refused_tariff_is_refused_every_time_and_not_kept() -> None:
    pricer = TariffPricer()
    bad = _tariff("-1")
    for _ in range(2):
        with pytest.raises(InvalidTariffError) as refused:
            _cost(pricer, bad)
        assert refused.value.field == "elements[0].price_components[0].price"
    assert len(pricer) == 0 and pricer.compiles == 2
