"""OCPI 2.3.0 Sessions module objects (mod_sessions.asciidoc)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from ocpi.v230.cdrs import CdrToken, ChargingPeriod
from ocpi.v230.enums import (
    AuthMethod,
    ChargingPreferencesResponse,
    ProfileType,
    SessionStatus,
)
from ocpi.v230.types import (
    Bool,
    CiString36,
    CountryCode,
    CurrencyCode,
    DateTime,
    Max,
    Number,
    OcpiModel,
    OcpiPatch,
    PartyIdStr,
    Price,
)

__all__ = [
    "ChargingPreferences",
    "ChargingPreferencesResponse",
    "ProfileType",
    "Session",
    "SessionPatch",
    "SessionStatus",
]


class Session(OcpiModel):
    country_code: CountryCode
    party_id: PartyIdStr
    id: CiString36
    start_date_time: DateTime
    end_date_time: DateTime | None = None
    kwh: Number
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    location_id: CiString36
    evse_uid: CiString36
    connector_id: CiString36
    meter_id: Annotated[str, Max(255)] | None = None
    currency: CurrencyCode
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Price | None = None
    status: SessionStatus
    last_updated: DateTime


class SessionPatch(OcpiPatch):
    """A PATCH of a Session. ``charging_periods`` in a PATCH are *added* to the
    Session's periods (an empty or absent list changes nothing); see
    :func:`ocpi.v230.patch.apply_patch`."""

    identity_fields: ClassVar[tuple[str, ...]] = ("country_code", "party_id", "id")

    country_code: CountryCode | None = None
    party_id: PartyIdStr | None = None
    id: CiString36 | None = None
    start_date_time: DateTime | None = None
    end_date_time: DateTime | None = None
    kwh: Number | None = None
    cdr_token: CdrToken | None = None
    auth_method: AuthMethod | None = None
    authorization_reference: CiString36 | None = None
    location_id: CiString36 | None = None
    evse_uid: CiString36 | None = None
    connector_id: CiString36 | None = None
    meter_id: Annotated[str, Max(255)] | None = None
    currency: CurrencyCode | None = None
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Price | None = None
    status: SessionStatus | None = None


class ChargingPreferences(OcpiModel):
    profile_type: ProfileType
    departure_time: DateTime | None = None
    energy_need: Number | None = None
    discharge_allowed: Bool | None = None
