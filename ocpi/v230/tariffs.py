"""OCPI 2.3.0 Tariffs module objects (mod_tariffs.asciidoc).

These are the wire models; :mod:`ocpi.tariffs` prices sessions from its own types.

Changed in 2.3.0: ``tax_included`` (required) says whether the prices include taxes
(``PriceComponent.price`` was "excl. VAT" in 2.2.1); ``min_price``/``max_price`` are a
:class:`PriceLimit` (``before_taxes``/``after_taxes``); ``preauthorize_amount`` is what a
payment terminal reserves (Payments module); ``TariffRestrictions.booking`` marks an
element that prices a booking (2.3.0 OpenAPI, Bookings module); TariffType is closed.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from ocpi.v230.enums import (
    BookingRestrictionType,
    DayOfWeek,
    ReservationRestrictionType,
    TariffDimensionType,
    TariffType,
    TaxIncluded,
)
from ocpi.v230.locations import EnergyMix
from ocpi.v230.types import (
    URL,
    CiString36,
    CountryCode,
    CurrencyCode,
    DateTime,
    DisplayText,
    Int,
    Number,
    OcpiModel,
    PartyIdStr,
)

__all__ = [
    "BookingRestrictionType",
    "DayOfWeek",
    "PriceComponent",
    "PriceLimit",
    "ReservationRestrictionType",
    "Tariff",
    "TariffDimensionType",
    "TariffElement",
    "TariffRestrictions",
    "TariffType",
    "TaxIncluded",
]

TimeOfDay = Annotated[str, StringConstraints(pattern=r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")]
LocalDate = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]


class PriceComponent(OcpiModel):
    type: TariffDimensionType
    price: Number
    vat: Number | None = None
    step_size: Int


class TariffRestrictions(OcpiModel):
    start_time: TimeOfDay | None = None
    end_time: TimeOfDay | None = None
    start_date: LocalDate | None = None
    end_date: LocalDate | None = None
    min_kwh: Number | None = None
    max_kwh: Number | None = None
    min_current: Number | None = None
    max_current: Number | None = None
    min_power: Number | None = None
    max_power: Number | None = None
    min_duration: Int | None = None
    max_duration: Int | None = None
    day_of_week: list[DayOfWeek] | None = None
    reservation: ReservationRestrictionType | None = None
    booking: BookingRestrictionType | None = None


class PriceLimit(OcpiModel):
    """mod_tariffs PriceLimit: a Tariff's minimum or maximum cost."""

    before_taxes: Number
    after_taxes: Number | None = None


class TariffElement(OcpiModel):
    price_components: Annotated[list[PriceComponent], Field(min_length=1)]
    restrictions: TariffRestrictions | None = None


class Tariff(OcpiModel):
    country_code: CountryCode
    party_id: PartyIdStr
    id: CiString36
    currency: CurrencyCode
    type: TariffType | None = None
    tariff_alt_text: list[DisplayText] | None = None
    tariff_alt_url: URL | None = None
    min_price: PriceLimit | None = None
    max_price: PriceLimit | None = None
    preauthorize_amount: Number | None = None
    tax_included: TaxIncluded
    elements: Annotated[list[TariffElement], Field(min_length=1)]
    start_date_time: DateTime | None = None
    end_date_time: DateTime | None = None
    energy_mix: EnergyMix | None = None
    last_updated: DateTime
