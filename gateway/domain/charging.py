"""Charging profiles and schedules, version-neutral (smart charging).

A charging profile limits what a charger (its whole station, or one EVSE) may draw over
time: a schedule of periods, each a limit in amperes (per phase) or watts, from an offset
in seconds. The central system turns these into OCPP 1.6 ``csChargingProfiles`` or 2.0.1
``ChargingProfileType`` (``gateway.csms.v16`` / ``v201``); the OCPI side and the site
load manager build only these. Limits are ``Decimal`` (OCPP 1.6 takes multiples of 0.1,
rounded down by the 1.6 conversion: never above what was asked).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


class ProfilePurpose(enum.StrEnum):
    # 1.6 ChargePointMaxProfile: the whole charger's (or, on EVSE 0, the station's) limit.
    STATION_MAX = "ChargingStationMaxProfile"
    # The default for transactions that have no TxProfile of their own.
    TX_DEFAULT = "TxDefaultProfile"
    # One transaction's own limit (it names the transaction).
    TX = "TxProfile"
    # 2.0.1 only: limits from outside the CSMS (a local energy management system), which
    # a charger may report (ReportChargingProfiles) but the CSMS never sets (K01.FR.22).
    EXTERNAL_CONSTRAINTS = "ChargingStationExternalConstraints"


class ProfileKind(enum.StrEnum):
    ABSOLUTE = "Absolute"  # periods from start_schedule
    RECURRING = "Recurring"  # repeats daily or weekly from start_schedule
    RELATIVE = "Relative"  # periods from the start of the transaction


class RecurrencyKind(enum.StrEnum):
    DAILY = "Daily"
    WEEKLY = "Weekly"


class RateUnit(enum.StrEnum):
    AMPERES = "A"  # per phase
    WATTS = "W"


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    start_period: int  # seconds from the start of the schedule
    limit: Decimal  # in the schedule's unit
    number_phases: int | None = None  # None: 3 (OCPP's default)


@dataclass(frozen=True, slots=True)
class ChargingSchedule:
    unit: RateUnit
    periods: tuple[SchedulePeriod, ...]
    duration: int | None = None  # seconds; None: the last period lasts
    start_schedule: datetime | None = None  # Absolute and Recurring profiles
    min_charging_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    id: int
    stack_level: int
    purpose: ProfilePurpose
    kind: ProfileKind
    schedule: ChargingSchedule
    recurrency: RecurrencyKind | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    # The OCPP transaction id a TxProfile is for (1.6: digits; 2.0.1: any string).
    transaction_id: str | None = None


@dataclass(frozen=True, slots=True)
class CompositeSchedule:
    """What a charger says it will do (GetCompositeSchedule), from ``start``."""

    evse_id: int
    start: datetime | None
    schedule: ChargingSchedule


@dataclass(frozen=True, slots=True)
class ReportedProfile:
    """A profile a charger reported it holds (2.0.1 ReportChargingProfiles)."""

    evse_id: int
    source: str  # 2.0.1 ChargingLimitSourceEnumType: CSO, EMS, SO, Other
    profile: ChargingProfile


def constant_limit(
    profile_id: int,
    purpose: ProfilePurpose,
    limit: Decimal,
    unit: RateUnit = RateUnit.AMPERES,
    *,
    stack_level: int = 0,
    number_phases: int | None = None,
    transaction_id: str | None = None,
) -> ChargingProfile:
    """A profile that holds one limit from now on (what load management sends):
    Relative for a transaction's own profile, Absolute without a start otherwise (in
    force at once; OCPP lets an Absolute profile leave ``startSchedule`` out)."""
    kind = ProfileKind.RELATIVE if purpose is ProfilePurpose.TX else ProfileKind.ABSOLUTE
    return ChargingProfile(
        id=profile_id,
        stack_level=stack_level,
        purpose=purpose,
        kind=kind,
        schedule=ChargingSchedule(unit, (SchedulePeriod(0, limit, number_phases),)),
        transaction_id=transaction_id,
    )
