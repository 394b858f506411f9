"""OCPI 2.3.0 ChargingProfiles module objects (mod_charging_profiles.asciidoc)."""

from __future__ import annotations

from ocpi.v230.enums import (
    ChargingProfileResponseType,
    ChargingProfileResultType,
    ChargingRateUnit,
)
from ocpi.v230.types import URL, DateTime, Int, Number, OcpiModel

__all__ = [
    "ActiveChargingProfile",
    "ActiveChargingProfileResult",
    "ChargingProfile",
    "ChargingProfilePeriod",
    "ChargingProfileResponse",
    "ChargingProfileResponseType",
    "ChargingProfileResult",
    "ChargingProfileResultType",
    "ChargingRateUnit",
    "ClearProfileResult",
    "SetChargingProfile",
]


class ChargingProfilePeriod(OcpiModel):
    start_period: Int
    limit: Number


class ChargingProfile(OcpiModel):
    start_date_time: DateTime | None = None
    duration: Int | None = None
    charging_rate_unit: ChargingRateUnit
    min_charging_rate: Number | None = None
    charging_profile_period: list[ChargingProfilePeriod] | None = None


class ActiveChargingProfile(OcpiModel):
    start_date_time: DateTime
    charging_profile: ChargingProfile


class SetChargingProfile(OcpiModel):
    charging_profile: ChargingProfile
    response_url: URL


class ChargingProfileResponse(OcpiModel):
    result: ChargingProfileResponseType
    timeout: Int


class ActiveChargingProfileResult(OcpiModel):
    result: ChargingProfileResultType
    profile: ActiveChargingProfile | None = None


class ChargingProfileResult(OcpiModel):
    result: ChargingProfileResultType


class ClearProfileResult(OcpiModel):
    result: ChargingProfileResultType
