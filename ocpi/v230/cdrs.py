"""OCPI 2.3.0 CDRs module objects (mod_cdrs.asciidoc).

``SignedValue.plain_data`` is string(5000) as in the release-2.3.0-bugfixes text (the
OpenAPI description says 512; the spec carries an erratum note).

Changed in 2.3.0: every cost is a :class:`~ocpi.v230.types.Price` with ``before_taxes``
and ``taxes``; ``booking_id`` (2.3.0 OpenAPI, Bookings module) names the booking a CDR
belongs to; CdrDimensionType is closed and has ``RESERVATION_EXPIRES`` and
``RESERVATION_OVERTIME``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ocpi.v230.enums import (
    AuthMethod,
    CdrDimensionType,
    ConnectorFormat,
    ConnectorTypeValue,
    PowerType,
    TokenTypeValue,
)
from ocpi.v230.locations import GeoLocation
from ocpi.v230.tariffs import Tariff
from ocpi.v230.types import (
    ASCII,
    Bool,
    CiString36,
    CountryCode,
    CurrencyCode,
    DateTime,
    Int,
    Max,
    Number,
    OcpiModel,
    PartyIdStr,
    Price,
)

__all__ = [
    "CDR",
    "AuthMethod",
    "CdrDimension",
    "CdrDimensionType",
    "CdrLocation",
    "CdrToken",
    "ChargingPeriod",
    "SignedData",
    "SignedValue",
]

CiString39 = Annotated[str, Max(39), ASCII]


class CdrToken(OcpiModel):
    country_code: CountryCode
    party_id: PartyIdStr
    uid: CiString36
    type: TokenTypeValue
    contract_id: CiString36


class CdrDimension(OcpiModel):
    type: CdrDimensionType
    volume: Number


class ChargingPeriod(OcpiModel):
    start_date_time: DateTime
    dimensions: Annotated[list[CdrDimension], Field(min_length=1)]
    tariff_id: CiString36 | None = None


class CdrLocation(OcpiModel):
    id: CiString36
    name: Annotated[str, Max(255)] | None = None
    address: Annotated[str, Max(45)]
    city: Annotated[str, Max(45)]
    postal_code: Annotated[str, Max(10)] | None = None
    state: Annotated[str, Max(20)] | None = None
    country: Annotated[str, Max(3, min_length=3)]
    coordinates: GeoLocation
    evse_uid: CiString36
    evse_id: Annotated[str, Max(48), ASCII]
    connector_id: CiString36
    connector_standard: ConnectorTypeValue
    connector_format: ConnectorFormat
    connector_power_type: PowerType


class SignedValue(OcpiModel):
    nature: Annotated[str, Max(32), ASCII]
    plain_data: Annotated[str, Max(5000)]
    signed_data: Annotated[str, Max(5000)]


class SignedData(OcpiModel):
    encoding_method: CiString36
    encoding_method_version: Int | None = None
    public_key: Annotated[str, Max(512)] | None = None
    signed_values: Annotated[list[SignedValue], Field(min_length=1)]
    url: Annotated[str, Max(512)] | None = None


class CDR(OcpiModel):
    country_code: CountryCode
    party_id: PartyIdStr
    id: CiString39
    start_date_time: DateTime
    end_date_time: DateTime
    session_id: CiString36 | None = None
    booking_id: CiString36 | None = None
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    cdr_location: CdrLocation
    meter_id: Annotated[str, Max(255)] | None = None
    currency: CurrencyCode
    tariffs: list[Tariff] | None = None
    charging_periods: Annotated[list[ChargingPeriod], Field(min_length=1)]
    signed_data: SignedData | None = None
    total_cost: Price
    total_fixed_cost: Price | None = None
    total_energy: Number
    total_energy_cost: Price | None = None
    total_time: Number
    total_time_cost: Price | None = None
    total_parking_time: Number | None = None
    total_parking_cost: Price | None = None
    total_reservation_cost: Price | None = None
    remark: Annotated[str, Max(255)] | None = None
    invoice_reference_id: CiString39 | None = None
    credit: Bool | None = None
    credit_reference_id: CiString39 | None = None
    home_charging_compensation: Bool | None = None
    last_updated: DateTime
