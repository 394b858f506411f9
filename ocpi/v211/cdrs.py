"""OCPI 2.1.1 CDRs module objects (mod_cdrs.md).

Compared with 2.2.1: the token is named by ``auth_id`` only (no CdrToken), the place
is a whole ``location`` (a Location with only the EVSE and connector used) instead of a
CdrLocation, the end is ``stop_date_time``, ``total_cost`` is a plain number excluding
VAT (no Price, no per-dimension totals), ``id`` is a CiString(36), and there are no
``country_code``/``party_id``/``session_id``/``signed_data``/credit fields.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ocpi.v211.enums import AuthMethod, CdrDimensionType
from ocpi.v211.locations import Location
from ocpi.v211.tariffs import Tariff
from ocpi.v211.types import CurrencyCode, DateTime, Id36, Max, Number, OcpiModel

__all__ = ["CDR", "AuthMethod", "CdrDimension", "CdrDimensionType", "ChargingPeriod"]


class CdrDimension(OcpiModel):
    type: CdrDimensionType
    volume: Number


class ChargingPeriod(OcpiModel):
    start_date_time: DateTime
    dimensions: Annotated[list[CdrDimension], Field(min_length=1)]


class CDR(OcpiModel):
    id: Id36
    start_date_time: DateTime
    stop_date_time: DateTime
    auth_id: Id36
    auth_method: AuthMethod
    location: Location
    meter_id: Annotated[str, Max(255)] | None = None
    currency: CurrencyCode
    tariffs: list[Tariff] | None = None
    charging_periods: Annotated[list[ChargingPeriod], Field(min_length=1)]
    total_cost: Number
    total_energy: Number
    total_time: Number
    total_parking_time: Number | None = None
    remark: Annotated[str, Max(255)] | None = None
    last_updated: DateTime
