"""Charging profiles and schedules between the domain and OCPP 1.6 / 2.0.1 / 2.1 (pure).

The two versions carry almost the same profile: 1.6 ``csChargingProfiles`` (section
7.8, ChargingProfile) and 2.0.1 ``ChargingProfileType``. They differ in:

- the station-wide purpose: 1.6 ``ChargePointMaxProfile``, 2.0.1
  ``ChargingStationMaxProfile`` (the domain's ``STATION_MAX``); it is set on
  connectorId / evseId 0 (1.6 section 3.13.2, 2.0.1 K01.FR.38);
- 2.0.1 ``ChargingStationExternalConstraints``: reported by a charger, never set by the
  CSMS (K01.FR.22), and unknown to 1.6;
- the profile id: 1.6 ``chargingProfileId``, 2.0.1 ``id``; 2.0.1 also gives each
  schedule an ``id`` (required) and a list of up to three schedules (ISO 15118 offers;
  one is sent, and the first of a report is kept);
- ``transactionId``: 1.6 an integer, 2.0.1 a string of up to 36 characters.

2.1 sends the 2.0.1 profile unchanged (its ``ChargingProfileType`` is a superset), but
reads more: a schedule period's ``limit`` is optional (absent under the V2X operation
modes, ``operationMode`` other than ChargingOnly), ``limit_L2``/``limit_L3`` give
per-phase limits, and the purposes PriorityCharging and LocalGeneration and the kind
Dynamic are new. The domain holds a charging limit per period: a per-phase limit is
read as the lowest phase's (A) or the sum of the phases (W); a profile the domain
cannot hold (a new purpose or kind, a period without a charging limit) is left out of
a report, and a composite schedule without one is unreadable.

Limits go out with one decimal at most, rounded DOWN (1.6 schema ``multipleOf 0.1``;
2.0.1 "accepts at most one digit fraction"): a charger never gets more than was asked.

Outgoing payloads are snake_case dicts (the ``ocpp`` library's call dataclasses turn
them into camelCase); incoming ones (answers, ReportChargingProfiles) are camelCase.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from gateway.domain.charging import (
    ChargingProfile,
    ChargingSchedule,
    CompositeSchedule,
    ProfileKind,
    ProfilePurpose,
    RateUnit,
    RecurrencyKind,
    ReportedProfile,
    SchedulePeriod,
)
from gateway.domain.clock import format_timestamp, parse_timestamp
from gateway.domain.errors import CommandNotSupported
from gateway.domain.models import OcppVersion

TENTH = Decimal("0.1")
# 1.6 transactionId is a (32-bit) integer; 2.0.1 IdentifierString of at most 36.
INT32_MAX = 2**31 - 1
MAX_TX_ID_201 = 36

_STATION_MAX = {
    OcppVersion.V16: "ChargePointMaxProfile",
    OcppVersion.V201: "ChargingStationMaxProfile",
    OcppVersion.V21: "ChargingStationMaxProfile",
}
_PURPOSES_IN = {
    "ChargePointMaxProfile": ProfilePurpose.STATION_MAX,
    "ChargingStationMaxProfile": ProfilePurpose.STATION_MAX,
    "TxDefaultProfile": ProfilePurpose.TX_DEFAULT,
    "TxProfile": ProfilePurpose.TX,
    "ChargingStationExternalConstraints": ProfilePurpose.EXTERNAL_CONSTRAINTS,
}


class ProfileFormatError(ValueError):
    """A charger's profile or schedule that the domain cannot hold (a bad number or time)."""


def round_down(value: Decimal) -> Decimal:
    """``value`` to a multiple of 0.1, never above it (8.19 -> 8.1, -0.01 -> -0.1)."""
    return value.quantize(TENTH, rounding=ROUND_FLOOR)


def _number(value: Decimal) -> float:
    # A float with one decimal: its shortest repr is that decimal ("7.4"), which both
    # the library's encoder and the schema's multipleOf check (as a Decimal) accept.
    return float(round_down(value))


def purpose_to_ocpp(purpose: ProfilePurpose, version: OcppVersion) -> str:
    if purpose is ProfilePurpose.STATION_MAX:
        return _STATION_MAX[version]
    if purpose is ProfilePurpose.EXTERNAL_CONSTRAINTS:
        raise CommandNotSupported(
            "ChargingStationExternalConstraints profiles are set by the charger's own "
            "energy management, never by the central system (OCPP 2.0.1 K01.FR.22)"
        )
    return purpose.value


def schedule_to_ocpp(schedule: ChargingSchedule, schedule_id: int | None = None) -> dict[str, Any]:
    """A chargingSchedule (snake_case); 2.0.1 passes ``schedule_id`` (required there)."""
    out: dict[str, Any] = {}
    if schedule_id is not None:
        out["id"] = schedule_id
    if schedule.start_schedule is not None:
        out["start_schedule"] = format_timestamp(schedule.start_schedule)
    if schedule.duration is not None:
        out["duration"] = schedule.duration
    out["charging_rate_unit"] = schedule.unit.value
    out["charging_schedule_period"] = [
        {
            "start_period": p.start_period,
            "limit": _number(p.limit),
            **({"number_phases": p.number_phases} if p.number_phases is not None else {}),
        }
        for p in schedule.periods
    ]
    if schedule.min_charging_rate is not None:
        out["min_charging_rate"] = _number(schedule.min_charging_rate)
    return out


def _profile_common(profile: ChargingProfile, version: OcppVersion) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stack_level": profile.stack_level,
        "charging_profile_purpose": purpose_to_ocpp(profile.purpose, version),
        "charging_profile_kind": profile.kind.value,
    }
    if profile.recurrency is not None:
        out["recurrency_kind"] = profile.recurrency.value
    if profile.valid_from is not None:
        out["valid_from"] = format_timestamp(profile.valid_from)
    if profile.valid_to is not None:
        out["valid_to"] = format_timestamp(profile.valid_to)
    return out


def profile_to_v16(profile: ChargingProfile) -> dict[str, Any]:
    """1.6 ``csChargingProfiles`` (snake_case)."""
    out = {"charging_profile_id": profile.id, **_profile_common(profile, OcppVersion.V16)}
    tx = profile.transaction_id
    if profile.purpose is ProfilePurpose.TX and tx is not None:
        # 1.6 section 7.8: transactionId is an integer (and only for a TxProfile).
        if not (tx.isascii() and tx.isdigit()) or int(tx) > INT32_MAX:
            raise CommandNotSupported(f"1.6 transaction ids are integers, not {tx[:40]!r}")
        out["transaction_id"] = int(tx)
    out["charging_schedule"] = schedule_to_ocpp(profile.schedule)
    return out


def profile_to_v201(
    profile: ChargingProfile, version: OcppVersion = OcppVersion.V201
) -> dict[str, Any]:
    """2.0.1 ``ChargingProfileType`` (snake_case), its one schedule under the profile's id."""
    out = {"id": profile.id, **_profile_common(profile, version)}
    tx = profile.transaction_id
    if profile.purpose is ProfilePurpose.TX:
        # K01.FR.03: a TxProfile names its transaction.
        if tx is None:
            raise CommandNotSupported(f"a {version} TxProfile needs the transaction id it is for")
        if len(tx) > MAX_TX_ID_201:
            raise CommandNotSupported(
                f"{version} transaction ids are at most {MAX_TX_ID_201} characters"
            )
        out["transaction_id"] = tx
    out["charging_schedule"] = [schedule_to_ocpp(profile.schedule, schedule_id=profile.id)]
    return out


def profile_to_v21(profile: ChargingProfile) -> dict[str, Any]:
    """2.1 ``ChargingProfileType``: the 2.0.1 one, whose fields 2.1 keeps as they were
    (``operationMode`` absent: ChargingOnly, the only mode the domain knows)."""
    return profile_to_v201(profile, OcppVersion.V21)


def station_evse(purpose: ProfilePurpose, evse_id: int) -> int:
    """The EVSE a profile goes on: a station maximum always on 0 (the whole charger)."""
    return 0 if purpose is ProfilePurpose.STATION_MAX else evse_id


# -- from the charger ---------------------------------------------------------------


def _decimal(value: Any, field: str) -> Decimal:
    try:
        # str() first: a float's shortest repr is the number the charger wrote.
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ProfileFormatError(f"{field}: not a number") from None
    if not number.is_finite():
        raise ProfileFormatError(f"{field}: not a finite number")
    return number


def _time(value: Any, field: str) -> Any:
    if value is None:
        return None
    try:
        return parse_timestamp(str(value))
    except (ValueError, OverflowError):
        raise ProfileFormatError(f"{field}: not an RFC 3339 date-time") from None


def _enum(kind: Any, value: Any, field: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ProfileFormatError(f"{field}: unknown value {str(value)[:40]!r}") from None


def _purpose(value: Any, field: str) -> ProfilePurpose:
    purpose = _PURPOSES_IN.get(str(value))
    if purpose is None:
        raise ProfileFormatError(f"{field}: unknown value {str(value)[:40]!r}")
    return purpose


def schedule_from_ocpp(
    data: Mapping[str, Any], field: str = "chargingSchedule"
) -> ChargingSchedule:
    """A camelCase chargingSchedule (either version) in domain terms."""
    periods = tuple(
        SchedulePeriod(
            start_period=int(p["startPeriod"]),
            limit=_decimal(p["limit"], f"{field}.chargingSchedulePeriod[{i}].limit"),
            number_phases=p.get("numberPhases"),
        )
        for i, p in enumerate(data["chargingSchedulePeriod"])
    )
    rate = data.get("minChargingRate")
    return ChargingSchedule(
        unit=_enum(RateUnit, data["chargingRateUnit"], f"{field}.chargingRateUnit"),
        periods=periods,
        duration=data.get("duration"),
        start_schedule=_time(data.get("startSchedule"), f"{field}.startSchedule"),
        min_charging_rate=None if rate is None else _decimal(rate, f"{field}.minChargingRate"),
    )


def profile_from_ocpp(data: Mapping[str, Any], field: str = "chargingProfile") -> ChargingProfile:
    """A camelCase 1.6 csChargingProfiles or 2.0.1 ChargingProfileType in domain terms
    (of a 2.0.1 profile's schedules, the first)."""
    schedule = data["chargingSchedule"]
    if isinstance(schedule, list):
        schedule = schedule[0]
    recurrency = data.get("recurrencyKind")
    tx = data.get("transactionId")
    return ChargingProfile(
        id=int(data["chargingProfileId"] if "chargingProfileId" in data else data["id"]),
        stack_level=int(data["stackLevel"]),
        purpose=_purpose(data["chargingProfilePurpose"], f"{field}.chargingProfilePurpose"),
        kind=_enum(ProfileKind, data["chargingProfileKind"], f"{field}.chargingProfileKind"),
        schedule=schedule_from_ocpp(schedule, f"{field}.chargingSchedule"),
        recurrency=None
        if recurrency is None
        else _enum(RecurrencyKind, recurrency, f"{field}.recurrencyKind"),
        valid_from=_time(data.get("validFrom"), f"{field}.validFrom"),
        valid_to=_time(data.get("validTo"), f"{field}.validTo"),
        transaction_id=None if tx is None else str(tx),
    )


def composite_from_v16(data: Mapping[str, Any], evse_id: int) -> CompositeSchedule | None:
    """A 1.6 GetCompositeSchedule answer (camelCase); None without a schedule (Rejected)."""
    schedule = data.get("chargingSchedule")
    if schedule is None:
        return None
    return CompositeSchedule(
        evse_id=int(data.get("connectorId", evse_id)),
        start=_time(data.get("scheduleStart"), "scheduleStart"),
        schedule=schedule_from_ocpp(schedule),
    )


def composite_from_v201(data: Mapping[str, Any]) -> CompositeSchedule | None:
    """A 2.0.1 GetCompositeSchedule answer (camelCase); None without a schedule (Rejected)."""
    schedule = data.get("schedule")
    if schedule is None:
        return None
    return CompositeSchedule(
        evse_id=int(schedule["evseId"]),
        start=_time(schedule.get("scheduleStart"), "schedule.scheduleStart"),
        schedule=schedule_from_ocpp(
            {k: v for k, v in schedule.items() if k not in ("evseId", "scheduleStart")},
            "schedule",
        ),
    )


def reported_from_v201(payload: Mapping[str, Any]) -> tuple[ReportedProfile, ...]:
    """The profiles of one 2.0.1 ReportChargingProfiles request (camelCase)."""
    evse = int(payload["evseId"])
    source = str(payload["chargingLimitSource"])
    return tuple(
        ReportedProfile(evse, source, profile_from_ocpp(p, f"chargingProfile[{i}]"))
        for i, p in enumerate(payload["chargingProfile"])
    )


# -- OCPP 2.1 readers -----------------------------------------------------------------

# Operation modes under which a period's limit is a charging limit (2.1
# OperationModeEnumType; absent means ChargingOnly).
_CHARGING_MODES = frozenset({"ChargingOnly"})
_KINDS_21 = frozenset(k.value for k in ProfileKind)


def _schedule_v21(data: Mapping[str, Any], field: str) -> dict[str, Any]:
    """A 2.1 schedule with each period's charging limit as ``limit`` (the 2.0.1 form)."""
    unit = data.get("chargingRateUnit")
    periods = []
    for i, period in enumerate(data["chargingSchedulePeriod"]):
        where = f"{field}.chargingSchedulePeriod[{i}]"
        mode = period.get("operationMode", "ChargingOnly")
        if mode not in _CHARGING_MODES:
            raise ProfileFormatError(f"{where}.operationMode: {str(mode)[:40]!r} is not held")
        if "limit" not in period:
            raise ProfileFormatError(f"{where}.limit: absent")
        limit = _decimal(period["limit"], f"{where}.limit")
        phases = [
            _decimal(period[k], f"{where}.{k}") for k in ("limit_L2", "limit_L3") if k in period
        ]
        if phases:
            # The limit is then phase L1's: per phase (A) the lowest holds on every phase,
            # in W the phases add up to the station's power.
            limit = sum(phases, limit) if unit == "W" else min([limit, *phases])
        periods.append({**period, "limit": limit})
    return {**data, "chargingSchedulePeriod": periods}


def _profile_v21(data: Mapping[str, Any], field: str) -> ChargingProfile:
    purpose = data.get("chargingProfilePurpose")
    if purpose not in _PURPOSES_IN:
        raise ProfileFormatError(
            f"{field}.chargingProfilePurpose: {str(purpose)[:40]!r} is not held"
        )
    kind = data.get("chargingProfileKind")
    if kind not in _KINDS_21:
        raise ProfileFormatError(f"{field}.chargingProfileKind: {str(kind)[:40]!r} is not held")
    schedules = data["chargingSchedule"]
    first = _schedule_v21(schedules[0], f"{field}.chargingSchedule[0]")
    return profile_from_ocpp({**data, "chargingSchedule": [first]}, field)


def reported_from_v21(
    payload: Mapping[str, Any],
) -> tuple[tuple[ReportedProfile, ...], tuple[str, ...]]:
    """The profiles of one 2.1 ReportChargingProfiles request the domain can hold, and
    why each other one is left out (``field: reason``)."""
    evse = int(payload["evseId"])
    source = str(payload["chargingLimitSource"])
    held: list[ReportedProfile] = []
    left_out: list[str] = []
    for i, data in enumerate(payload["chargingProfile"]):
        try:
            held.append(ReportedProfile(evse, source, _profile_v21(data, f"chargingProfile[{i}]")))
        except ProfileFormatError as exc:
            left_out.append(str(exc))
    return tuple(held), tuple(left_out)


def composite_from_v21(data: Mapping[str, Any]) -> CompositeSchedule | None:
    """A 2.1 GetCompositeSchedule answer (camelCase); None without a schedule (Rejected)."""
    schedule = data.get("schedule")
    if schedule is None:
        return None
    return composite_from_v201({**data, "schedule": _schedule_v21(schedule, "schedule")})
