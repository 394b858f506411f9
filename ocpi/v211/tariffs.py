"""OCPI 2.1.1 Tariffs module objects (mod_tariffs.md).

Compared with 2.2.1: no ``country_code``/``party_id``/``type``/``min_price``/
``max_price``/``start_date_time``/``end_date_time`` on a Tariff, no ``vat`` on a price
component (2.1.1 prices are excluding VAT), no ``min_current``/``max_current``/
``reservation`` restrictions. :mod:`ocpi.tariffs` prices these tariffs (its parser reads
the 2.1.1 JSON directly).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from ocpi.v211.enums import DayOfWeek, TariffDimensionType
from ocpi.v211.locations import EnergyMix
from ocpi.v211.types import (
    URL,
    CurrencyCode,
    DateTime,
    DisplayText,
    Id36,
    Int,
    Number,
    OcpiModel,
    OcpiPatch,
)

__all__ = [
    "DayOfWeek",
    "PriceComponent",
    "Tariff",
    "TariffDimensionType",
    "TariffElement",
    "TariffPatch",
    "TariffRestrictions",
]

# mod_tariffs 4.5: string(5) "Regex: ([0-1][0-9]|2[0-3]):[0-5][0-9]"; dates string(10)
# "for example: 2015-12-24".
TimeOfDay = Annotated[
    str, StringConstraints(max_length=5, pattern=r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")
]
LocalDate = Annotated[
    str, StringConstraints(max_length=10, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
]


class PriceComponent(OcpiModel):
    """``price`` is excluding VAT (mod_tariffs 4.2)."""

    type: TariffDimensionType
    price: Number
    step_size: Int


class TariffRestrictions(OcpiModel):
    start_time: TimeOfDay | None = None
    end_time: TimeOfDay | None = None
    start_date: LocalDate | None = None
    end_date: LocalDate | None = None
    min_kwh: Number | None = None
    max_kwh: Number | None = None
    min_power: Number | None = None
    max_power: Number | None = None
    min_duration: Int | None = None
    max_duration: Int | None = None
    day_of_week: list[DayOfWeek] | None = None


class TariffElement(OcpiModel):
    price_components: Annotated[list[PriceComponent], Field(min_length=1)]
    restrictions: TariffRestrictions | None = None


class Tariff(OcpiModel):
    id: Id36
    currency: CurrencyCode
    tariff_alt_text: list[DisplayText] | None = None
    tariff_alt_url: URL | None = None
    elements: Annotated[list[TariffElement], Field(min_length=1)]
    energy_mix: EnergyMix | None = None
    last_updated: DateTime


class TariffPatch(OcpiPatch):
    """mod_tariffs 2.2.3 (2.2 removed PATCH from Tariffs)."""

    id: Id36 | None = None
    currency: CurrencyCode | None = None
    tariff_alt_text: list[DisplayText] | None = None
    tariff_alt_url: URL | None = None
    elements: Annotated[list[TariffElement], Field(min_length=1)] | None = None
    energy_mix: EnergyMix | None = None
