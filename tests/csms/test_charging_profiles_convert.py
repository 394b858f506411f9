"""Charging profile commands into OCPP 1.6 / 2.0.1 / 2.1 calls and the answers back (pure).

Every domain profile converts into a payload both the gateway's compiled validators and
the ``ocpp`` library's own validation accept, and comes back as it went in where both
sides hold the information (limits rounded down to 0.1).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.charge_point import remove_nones, snake_to_camel_case
from ocpp.messages import Call, CallResult, _validate_payload

from gateway.csms import v16, v21, v201
from gateway.csms.connection import _RESULT_STATUS
from gateway.csms.profiles import (
    ProfileFormatError,
    composite_from_v16,
    composite_from_v21,
    composite_from_v201,
    profile_from_ocpp,
    reported_from_v21,
    reported_from_v201,
    round_down,
)
from gateway.csms.validation import SchemaValidators
from gateway.domain import commands as cmd
from gateway.domain.charging import (
    ChargingProfile,
    ChargingSchedule,
    ProfileKind,
    ProfilePurpose,
    RateUnit,
    RecurrencyKind,
    SchedulePeriod,
    constant_limit,
)
from gateway.domain.errors import CommandNotSupported
from gateway.domain.models import OcppVersion

VALIDATORS = SchemaValidators()
PROFILE_SETTINGS = settings(max_examples=150, deadline=None)
LIB_VERSION = {OcppVersion.V16: "1.6", OcppVersion.V201: "2.0.1", OcppVersion.V21: "2.1"}
CONVERT = {
    OcppVersion.V16: v16.command_to_v16,
    OcppVersion.V201: v201.command_to_v201,
    OcppVersion.V21: v21.command_to_v21,
}

# Whole milliseconds: what format_timestamp writes.
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
int32 = st.integers(min_value=0, max_value=2**31 - 1)
limits = st.decimals(min_value=Decimal(0), max_value=Decimal(1_000_000), places=3, allow_nan=False)


@st.composite
def schedules(draw: st.DrawFn, *, start: bool | None = None) -> ChargingSchedule:
    starts = sorted(set(draw(st.lists(st.integers(1, 86_400 * 7), max_size=5))))
    periods = tuple(
        SchedulePeriod(s, draw(limits), draw(st.none() | st.integers(1, 3))) for s in [0, *starts]
    )
    has_start = draw(st.booleans()) if start is None else start
    return ChargingSchedule(
        unit=draw(st.sampled_from(RateUnit)),
        periods=periods,
        duration=draw(st.none() | st.integers(1, 86_400 * 30)),
        start_schedule=draw(times) if has_start else None,
        min_charging_rate=draw(st.none() | limits),
    )


@st.composite
def profiles(draw: st.DrawFn) -> ChargingProfile:
    """Profiles as OCPP defines them: Relative without a start, Recurring with its
    recurrency and start, a TxProfile naming its (1.6: integer) transaction."""
    purpose = draw(
        st.sampled_from([p for p in ProfilePurpose if p is not ProfilePurpose.EXTERNAL_CONSTRAINTS])
    )
    kind = draw(st.sampled_from(ProfileKind))
    schedule = draw(
        schedules(
            start=False
            if kind is ProfileKind.RELATIVE
            else True
            if kind is ProfileKind.RECURRING
            else None
        )
    )
    valid_from = draw(st.none() | times)
    return ChargingProfile(
        id=draw(int32),
        stack_level=draw(st.integers(0, 100)),
        purpose=purpose,
        kind=kind,
        schedule=schedule,
        recurrency=draw(st.sampled_from(RecurrencyKind)) if kind is ProfileKind.RECURRING else None,
        valid_from=valid_from,
        valid_to=draw(st.none() | times),
        transaction_id=str(draw(int32)) if purpose is ProfilePurpose.TX else None,
    )


def payload(call: Any) -> dict[str, Any]:
    """What the library sends for a call dataclass (its own conversion)."""
    result: dict[str, Any] = snake_to_camel_case(remove_nones(asdict(call)))
    return result


def assert_valid(
    version: OcppVersion, action: str, body: dict[str, Any], *, response: bool = False
) -> None:
    """Both validations: the gateway's compiled one and the library's (jsonschema)."""
    VALIDATORS.validate(version, action, body, response=response)
    message: Call | CallResult = Call("1", action, body)
    if response:
        message = CallResult("1", body)
        message.action = action
    _validate_payload(message, LIB_VERSION[version])


def rounded(profile: ChargingProfile) -> ChargingProfile:
    schedule = profile.schedule
    return replace(
        profile,
        schedule=replace(
            schedule,
            periods=tuple(replace(p, limit=round_down(p.limit)) for p in schedule.periods),
            min_charging_rate=(
                None
                if schedule.min_charging_rate is None
                else round_down(schedule.min_charging_rate)
            ),
        ),
    )


def _set(version: OcppVersion, evse: int, profile: ChargingProfile) -> dict[str, Any]:
    command = cmd.SetChargingProfile(evse, profile)
    body = payload(CONVERT[version](command))
    assert_valid(version, "SetChargingProfile", body)
    return body


@PROFILE_SETTINGS
@given(profiles(), st.integers(0, 8))
def test_v16_set_is_schema_valid_and_round_trips(profile: ChargingProfile, evse: int) -> None:
    body = _set(OcppVersion.V16, evse, profile)
    expected_evse = 0 if profile.purpose is ProfilePurpose.STATION_MAX else evse
    assert body["connectorId"] == expected_evse
    sent = body["csChargingProfiles"]
    assert sent["chargingProfilePurpose"] == (
        "ChargePointMaxProfile"
        if profile.purpose is ProfilePurpose.STATION_MAX
        else profile.purpose.value
    )
    if profile.purpose is ProfilePurpose.TX:
        assert sent["transactionId"] == int(str(profile.transaction_id))
    # Every limit a multiple of 0.1, never above what was asked.
    for period, asked in zip(
        sent["chargingSchedule"]["chargingSchedulePeriod"], profile.schedule.periods, strict=True
    ):
        assert Decimal(str(period["limit"])) <= asked.limit
        assert asked.limit - Decimal(str(period["limit"])) < Decimal("0.1")
    assert profile_from_ocpp(sent) == rounded(profile)


@PROFILE_SETTINGS
@given(profiles(), st.integers(0, 8))
def test_v201_set_is_schema_valid_and_round_trips(profile: ChargingProfile, evse: int) -> None:
    body = _set(OcppVersion.V201, evse, profile)
    assert body["evseId"] == (0 if profile.purpose is ProfilePurpose.STATION_MAX else evse)
    sent = body["chargingProfile"]
    assert sent["chargingSchedule"][0]["id"] == profile.id  # required by 2.0.1
    if profile.purpose is ProfilePurpose.TX:
        assert sent["transactionId"] == profile.transaction_id
    assert profile_from_ocpp(sent) == rounded(profile)


@PROFILE_SETTINGS
@given(
    st.none() | int32,
    st.none() | st.integers(0, 8),
    st.none()
    | st.sampled_from([p for p in ProfilePurpose if p is not ProfilePurpose.EXTERNAL_CONSTRAINTS]),
    st.none() | st.integers(0, 100),
)
def test_clear_is_schema_valid(
    profile_id: int | None, evse: int | None, purpose: ProfilePurpose | None, stack: int | None
) -> None:
    command = cmd.ClearChargingProfile(profile_id, evse, purpose, stack)
    body16 = payload(v16.command_to_v16(command))
    assert_valid(OcppVersion.V16, "ClearChargingProfile", body16)
    assert body16.get("id") == profile_id and body16.get("connectorId") == evse
    body201 = payload(v201.command_to_v201(command))
    assert_valid(OcppVersion.V201, "ClearChargingProfile", body201)
    assert body201.get("chargingProfileId") == profile_id
    assert body201.get("chargingProfileCriteria", {}).get("evseId") == evse


@PROFILE_SETTINGS
@given(st.integers(0, 8), st.integers(1, 86_400), st.none() | st.sampled_from(RateUnit), int32)
def test_composite_and_get_profiles_are_schema_valid(
    evse: int, duration: int, unit: RateUnit | None, request_id: int
) -> None:
    command = cmd.GetCompositeSchedule(evse, duration, unit)
    assert_valid(OcppVersion.V16, "GetCompositeSchedule", payload(v16.command_to_v16(command)))
    assert_valid(OcppVersion.V201, "GetCompositeSchedule", payload(v201.command_to_v201(command)))
    get = cmd.GetChargingProfiles(request_id, evse, ProfilePurpose.TX_DEFAULT, 2, (4, 5))
    body = payload(v201.command_to_v201(get))
    assert_valid(OcppVersion.V201, "GetChargingProfiles", body)
    assert body["chargingProfile"] == {
        "chargingProfilePurpose": "TxDefaultProfile",
        "stackLevel": 2,
        "chargingProfileId": [4, 5],
    }
    bare = payload(v201.command_to_v201(cmd.GetChargingProfiles(request_id)))
    assert_valid(OcppVersion.V201, "GetChargingProfiles", bare)


def test_version_rules() -> None:
    tx = constant_limit(1, ProfilePurpose.TX, Decimal("16"), transaction_id="abc")
    with pytest.raises(CommandNotSupported, match="integers"):
        v16.command_to_v16(cmd.SetChargingProfile(1, tx))
    with pytest.raises(CommandNotSupported, match="integers"):
        v16.command_to_v16(cmd.SetChargingProfile(1, replace(tx, transaction_id=str(2**31))))
    with pytest.raises(CommandNotSupported, match="transaction id"):
        v201.command_to_v201(cmd.SetChargingProfile(1, replace(tx, transaction_id=None)))
    external = replace(tx, purpose=ProfilePurpose.EXTERNAL_CONSTRAINTS, transaction_id=None)
    for convert in (v16.command_to_v16, v201.command_to_v201):
        with pytest.raises(CommandNotSupported, match=r"K01\.FR\.22"):
            convert(cmd.SetChargingProfile(0, external))
    with pytest.raises(CommandNotSupported, match=r"1\.6"):
        v16.command_to_v16(cmd.GetChargingProfiles(1))
    # A TxDefaultProfile on 1.6 leaves out the transaction id it has no use for.
    default = constant_limit(2, ProfilePurpose.TX_DEFAULT, Decimal("7.99"), transaction_id="9")
    sent = payload(v16.command_to_v16(cmd.SetChargingProfile(1, default)))["csChargingProfiles"]
    assert "transactionId" not in sent
    assert sent["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 7.9}]


# -- answers --------------------------------------------------------------------------

STATUS_TABLE = [
    # (answer status, command it answers, domain status)
    ("Accepted", "SetChargingProfile", cmd.CommandStatus.ACCEPTED),
    ("Rejected", "SetChargingProfile", cmd.CommandStatus.REJECTED),
    ("NotSupported", "SetChargingProfile (1.6)", cmd.CommandStatus.NOT_SUPPORTED),
    ("Accepted", "ClearChargingProfile", cmd.CommandStatus.ACCEPTED),
    ("Unknown", "ClearChargingProfile", cmd.CommandStatus.UNKNOWN),
    ("Accepted", "GetCompositeSchedule", cmd.CommandStatus.ACCEPTED),
    ("Rejected", "GetCompositeSchedule", cmd.CommandStatus.REJECTED),
    ("Accepted", "GetChargingProfiles (2.0.1)", cmd.CommandStatus.ACCEPTED),
    ("NoProfiles", "GetChargingProfiles (2.0.1)", cmd.CommandStatus.ACCEPTED),
]


@pytest.mark.parametrize(("answer", "command", "status"), STATUS_TABLE)
def test_status_mapping(answer: str, command: str, status: cmd.CommandStatus) -> None:
    assert _RESULT_STATUS[answer] is status, command


def test_composite_answers() -> None:
    answer16 = {
        "status": "Accepted",
        "connectorId": 1,
        "scheduleStart": "2026-11-23T12:00:00Z",
        "chargingSchedule": {
            "duration": 3600,
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 16.0},
                {"startPeriod": 600, "limit": 7.4, "numberPhases": 1},
            ],
        },
    }
    assert_valid(OcppVersion.V16, "GetCompositeSchedule", answer16, response=True)
    composite = composite_from_v16(answer16, 1)
    assert composite is not None
    assert composite.evse_id == 1 and composite.start == datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert composite.schedule.duration == 3600 and composite.schedule.unit is RateUnit.AMPERES
    assert composite.schedule.periods == (
        SchedulePeriod(0, Decimal("16.0")),
        SchedulePeriod(600, Decimal("7.4"), 1),
    )
    assert composite_from_v16({"status": "Rejected"}, 1) is None
    answer201 = {
        "status": "Accepted",
        "schedule": {
            "evseId": 2,
            "duration": 60,
            "scheduleStart": "2026-11-23T12:00:00.000Z",
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000}],
        },
    }
    assert_valid(OcppVersion.V201, "GetCompositeSchedule", answer201, response=True)
    composite = composite_from_v201(answer201)
    assert composite is not None and composite.evse_id == 2
    assert composite.schedule.periods == (SchedulePeriod(0, Decimal(11000)),)
    assert composite.schedule.unit is RateUnit.WATTS
    assert composite_from_v201({"status": "Rejected"}) is None


@PROFILE_SETTINGS
@given(st.lists(profiles(), min_size=1, max_size=3), st.integers(0, 8), st.booleans())
def test_report_round_trip(sent: list[ChargingProfile], evse: int, tbc: bool) -> None:
    """What a 2.0.1 charger reports of the profiles it was sent reads back as sent."""
    body = {
        "requestId": 7,
        "chargingLimitSource": "CSO",
        "evseId": evse,
        "tbc": tbc,
        "chargingProfile": [
            payload(v201.command_to_v201(cmd.SetChargingProfile(evse, p)))["chargingProfile"]
            for p in sent
        ],
    }
    assert_valid(OcppVersion.V201, "ReportChargingProfiles", body)
    reported = reported_from_v201(body)
    assert [r.profile for r in reported] == [rounded(p) for p in sent]
    assert {(r.evse_id, r.source) for r in reported} == {(evse, "CSO")}


def test_report_of_external_constraints() -> None:
    body = {
        "requestId": 1,
        "chargingLimitSource": "EMS",
        "evseId": 0,
        "chargingProfile": [
            {
                "id": 90,
                "stackLevel": 0,
                "chargingProfilePurpose": "ChargingStationExternalConstraints",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": [
                    {
                        "id": 1,
                        "chargingRateUnit": "A",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 40}],
                    }
                ],
            }
        ],
    }
    (reported,) = reported_from_v201(body)
    assert reported.source == "EMS"
    assert reported.profile.purpose is ProfilePurpose.EXTERNAL_CONSTRAINTS
    assert reported.profile.schedule.periods[0].limit == 40


@given(limits)
def test_round_down(value: Decimal) -> None:
    down = round_down(value)
    assert down <= value < down + Decimal("0.1")
    assert down == value.quantize(Decimal("0.1"), rounding=ROUND_FLOOR)
    assert (down * 10) == (down * 10).to_integral_value()


# -- OCPP 2.1 ------------------------------------------------------------------------


@PROFILE_SETTINGS
@given(profiles(), st.integers(0, 8))
def test_v21_set_is_schema_valid_and_round_trips(profile: ChargingProfile, evse: int) -> None:
    body = _set(OcppVersion.V21, evse, profile)
    assert body["evseId"] == (0 if profile.purpose is ProfilePurpose.STATION_MAX else evse)
    sent = body["chargingProfile"]
    assert sent["chargingSchedule"][0]["id"] == profile.id
    if profile.purpose is ProfilePurpose.TX:
        assert sent["transactionId"] == profile.transaction_id
    # No operationMode: ChargingOnly, the mode in which a period's limit is a charging limit.
    assert all(
        "operationMode" not in p for p in sent["chargingSchedule"][0]["chargingSchedulePeriod"]
    )
    # What goes to a 2.1 charger is what goes to a 2.0.1 one.
    assert sent == _set(OcppVersion.V201, evse, profile)["chargingProfile"]
    assert profile_from_ocpp(sent) == rounded(profile)


@PROFILE_SETTINGS
@given(
    st.none() | int32,
    st.none() | st.integers(0, 8),
    st.none()
    | st.sampled_from([p for p in ProfilePurpose if p is not ProfilePurpose.EXTERNAL_CONSTRAINTS]),
    st.none() | st.integers(0, 100),
    st.integers(0, 8),
    st.integers(1, 86_400),
    st.none() | st.sampled_from(RateUnit),
)
def test_v21_clear_composite_and_get_profiles_are_schema_valid(
    profile_id: int | None,
    evse: int | None,
    purpose: ProfilePurpose | None,
    stack: int | None,
    any_evse: int,
    duration: int,
    unit: RateUnit | None,
) -> None:
    body = payload(v21.command_to_v21(cmd.ClearChargingProfile(profile_id, evse, purpose, stack)))
    assert_valid(OcppVersion.V21, "ClearChargingProfile", body)
    assert body.get("chargingProfileId") == profile_id
    command = cmd.GetCompositeSchedule(any_evse, duration, unit)
    assert_valid(OcppVersion.V21, "GetCompositeSchedule", payload(v21.command_to_v21(command)))
    get = cmd.GetChargingProfiles(7, evse, purpose, stack, (4, 5))
    assert_valid(OcppVersion.V21, "GetChargingProfiles", payload(v21.command_to_v21(get)))


@PROFILE_SETTINGS
@given(st.lists(profiles(), min_size=1, max_size=3), st.integers(0, 8), st.booleans())
def test_v21_report_round_trip(sent: list[ChargingProfile], evse: int, tbc: bool) -> None:
    """What a 2.1 charger reports of the profiles it was sent reads back as sent."""
    body = {
        "requestId": 7,
        "chargingLimitSource": "CSO",
        "evseId": evse,
        "tbc": tbc,
        "chargingProfile": [
            payload(v21.command_to_v21(cmd.SetChargingProfile(evse, p)))["chargingProfile"]
            for p in sent
        ],
    }
    assert_valid(OcppVersion.V21, "ReportChargingProfiles", body)
    reported, left_out = reported_from_v21(body)
    assert left_out == ()
    assert [r.profile for r in reported] == [rounded(p) for p in sent]


def _v21_profile(purpose: str, kind: str = "Absolute", **period: Any) -> dict[str, Any]:
    return {
        "id": 9,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": "2026-11-23T12:00:00Z",
                "chargingRateUnit": period.pop("unit", "A"),
                "chargingSchedulePeriod": [{"startPeriod": 0, **period}],
            }
        ],
    }


# (profile a 2.1 charger reports, the limit the domain holds, or why it is left out)
V21_REPORTS: list[tuple[dict[str, Any], Decimal | None, str | None]] = [
    (_v21_profile("TxDefaultProfile", limit=16), Decimal(16), None),
    (_v21_profile("TxDefaultProfile", limit=16, operationMode="ChargingOnly"), Decimal(16), None),
    # Per-phase limits: the lowest phase per phase (A), the phases added up (W).
    (_v21_profile("TxDefaultProfile", limit=16, limit_L2=10, limit_L3=12), Decimal(10), None),
    (
        _v21_profile("TxDefaultProfile", unit="W", limit=3000, limit_L2=2000, limit_L3=1000),
        Decimal(6000),
        None,
    ),
    (_v21_profile("ChargingStationExternalConstraints", limit=40), Decimal(40), None),
    (_v21_profile("PriorityCharging", limit=32), None, "chargingProfilePurpose"),
    (_v21_profile("LocalGeneration", limit=32), None, "chargingProfilePurpose"),
    (_v21_profile("TxProfile", "Dynamic", limit=32), None, "chargingProfileKind"),
    (
        _v21_profile("TxDefaultProfile", setpoint=-3000, operationMode="CentralSetpoint"),
        None,
        "operationMode",
    ),
    (
        _v21_profile("TxDefaultProfile", limit=16, operationMode="ExternalLimits"),
        None,
        "operationMode",
    ),
    (_v21_profile("TxDefaultProfile", dischargeLimit=-10), None, "limit"),
]


@pytest.mark.parametrize(("profile", "limit", "reason"), V21_REPORTS)
def test_v21_reports_keep_what_the_domain_holds(
    profile: dict[str, Any], limit: Decimal | None, reason: str | None
) -> None:
    body = {"requestId": 1, "chargingLimitSource": "EMS", "evseId": 1, "chargingProfile": [profile]}
    assert_valid(OcppVersion.V21, "ReportChargingProfiles", body)
    reported, left_out = reported_from_v21(body)
    if reason is None:
        assert left_out == ()
        (held,) = reported
        assert held.profile.schedule.periods[0].limit == limit
    else:
        assert reported == ()
        (why,) = left_out
        assert why.startswith("chargingProfile[0].") and reason in why, why


def test_v21_composite_answers() -> None:
    answer = {
        "status": "Accepted",
        "schedule": {
            "evseId": 1,
            "duration": 600,
            "scheduleStart": "2026-11-23T12:00:00.000Z",
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 16, "limit_L2": 12, "limit_L3": 16},
                {"startPeriod": 300, "limit": 8.5, "operationMode": "ChargingOnly"},
            ],
        },
    }
    assert_valid(OcppVersion.V21, "GetCompositeSchedule", answer, response=True)
    composite = composite_from_v21(answer)
    assert composite is not None and composite.evse_id == 1
    assert composite.schedule.periods == (
        SchedulePeriod(0, Decimal(12)),
        SchedulePeriod(300, Decimal("8.5")),
    )
    assert composite_from_v21({"status": "Rejected"}) is None
    setpoint = {
        **answer["schedule"],
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "setpoint": 10, "operationMode": "CentralSetpoint"}
        ],
    }
    assert_valid(
        OcppVersion.V21,
        "GetCompositeSchedule",
        {"status": "Accepted", "schedule": setpoint},
        response=True,
    )
    with pytest.raises(ProfileFormatError, match="operationMode"):
        composite_from_v21({"status": "Accepted", "schedule": setpoint})


def test_v21_version_rules() -> None:
    tx = constant_limit(1, ProfilePurpose.TX, Decimal("16"), transaction_id="abc")
    with pytest.raises(CommandNotSupported, match=r"2\.1 TxProfile"):
        v21.command_to_v21(cmd.SetChargingProfile(1, replace(tx, transaction_id=None)))
    external = replace(tx, purpose=ProfilePurpose.EXTERNAL_CONSTRAINTS, transaction_id=None)
    with pytest.raises(CommandNotSupported, match=r"K01\.FR\.22"):
        v21.command_to_v21(cmd.SetChargingProfile(0, external))
    with pytest.raises(CommandNotSupported, match=r"OCPP 2\.1"):
        v21.command_to_v21(cmd.GetConfiguration(("HeartbeatInterval",)))
