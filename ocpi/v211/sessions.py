"""OCPI 2.1.1 Sessions module objects (mod_sessions.md).

Compared with 2.2.1: ``start_datetime``/``end_datetime`` (no underscore between date
and time), ``auth_id`` instead of a CdrToken, the whole ``location`` (with only the EVSE
and connector used) instead of ``location_id``/``evse_uid``/``connector_id``,
``total_cost`` a plain number excluding VAT, no ``RESERVATION`` status.
"""

from __future__ import annotations

from typing import Annotated

from ocpi.v211.cdrs import ChargingPeriod
from ocpi.v211.enums import AuthMethod, SessionStatus
from ocpi.v211.locations import Location
from ocpi.v211.types import CurrencyCode, DateTime, Id36, Max, Number, OcpiModel, OcpiPatch

__all__ = ["Session", "SessionPatch", "SessionStatus"]


class Session(OcpiModel):
    id: Id36
    start_datetime: DateTime
    end_datetime: DateTime | None = None
    kwh: Number
    auth_id: Id36
    auth_method: AuthMethod
    location: Location
    meter_id: Annotated[str, Max(255)] | None = None
    currency: CurrencyCode
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Number | None = None
    status: SessionStatus
    last_updated: DateTime


class SessionPatch(OcpiPatch):
    """mod_sessions 2.2.3: only the fields that change."""

    id: Id36 | None = None
    start_datetime: DateTime | None = None
    end_datetime: DateTime | None = None
    kwh: Number | None = None
    auth_id: Id36 | None = None
    auth_method: AuthMethod | None = None
    location: Location | None = None
    meter_id: Annotated[str, Max(255)] | None = None
    currency: CurrencyCode | None = None
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Number | None = None
    status: SessionStatus | None = None
