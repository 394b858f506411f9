"""The pure conversions of the ChargingProfiles Receiver: OCPI profile <-> domain
profile (property tests), charger answers -> OCPI results, every OCPI object checked
against the official OpenAPI description."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain import commands as cmd
from gateway.domain.charging import (
    ChargingSchedule,
    CompositeSchedule,
    ProfileKind,
    ProfilePurpose,
    RateUnit,
    SchedulePeriod,
)
from gateway.roaming.charging_profiles import (
    UnusableProfile,
    active_from_composite,
    clear_result,
    distinct_periods,
    get_result,
    ocpi_limit,
    ocpi_profile,
    profile_number,
    set_result,
    tx_profile,
)
from ocpi.transport import json_dumps, json_loads
from ocpi.v221 import ChargingProfile
from tests.ocpi.openapi import validate_against_openapi

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

tenths = st.integers(min_value=0, max_value=10_000_000).map(lambda n: Decimal(n) / 10)
starts = st.lists(st.integers(min_value=1, max_value=86_400), max_size=6, unique=True).map(
    lambda xs: [0, *sorted(xs)]
)
moments = st.integers(min_value=0, max_value=10**9).map(
    lambda ms: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
)


@st.composite
def ocpi_profiles(draw: st.DrawFn) -> ChargingProfile:
    """Profiles OCPP can carry: periods from 0 in increasing order, limits with at most
    one decimal (mod_charging_profiles: "Accepts at most one digit fraction")."""
    periods = [{"start_period": s, "limit": draw(tenths)} for s in draw(starts)]
    data: dict[str, Any] = {
        "charging_rate_unit": draw(st.sampled_from(["A", "W"])),
        "charging_profile_period": periods,
    }
    if draw(st.booleans()):
        data["start_date_time"] = draw(moments)
    if draw(st.booleans()):
        data["duration"] = draw(st.integers(min_value=0, max_value=7 * 86_400))
    if draw(st.booleans()):
        data["min_charging_rate"] = draw(tenths)
    return ChargingProfile.model_validate(data)


def wire(model: Any) -> Any:
    return json_loads(json_dumps(model))


@settings(max_examples=200, deadline=None)
@given(ocpi_profiles(), st.text(min_size=1, max_size=36), st.integers(0, 2**31 - 1))
def test_ocpi_profile_round_trips_through_the_domain(
    profile: ChargingProfile, session_id: str, tx_number: int
) -> None:
    domain = tx_profile(
        profile, profile_id=profile_number(session_id), transaction_id=str(tx_number)
    )
    assert domain.purpose is ProfilePurpose.TX
    assert domain.transaction_id == str(tx_number)
    assert domain.id == profile_number(session_id) and 1 <= domain.id < 2**31
    # "If absent the profile will be relative to start of charging."
    expected = ProfileKind.ABSOLUTE if profile.start_date_time else ProfileKind.RELATIVE
    assert domain.kind is expected
    assert domain.schedule.unit is RateUnit(str(profile.charging_rate_unit))
    back = ocpi_profile(domain.schedule)
    assert back == profile
    validate_against_openapi("chargingprofiles", "ChargingProfile", wire(back))


@given(st.text(min_size=1, max_size=36))
def test_profile_number_is_stable_and_case_insensitive(session_id: str) -> None:
    # CiString: the same session, whatever the case, has the same profile.
    assert profile_number(session_id) == profile_number(session_id.upper())
    assert profile_number(session_id) == profile_number(session_id.lower().upper())


@given(st.decimals(min_value=0, max_value=10**7, allow_nan=False, places=4))
def test_ocpi_limit_is_one_decimal_never_above(value: Decimal) -> None:
    limit = ocpi_limit(value)
    assert limit <= value < limit + Decimal("0.1")
    assert limit == limit.quantize(Decimal("0.1"))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3600), st.decimals(0, 1000, allow_nan=False, places=3)),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(list(RateUnit)),
    st.one_of(st.none(), moments),
)
def test_active_profile_from_any_composite_schedule(
    raw: list[tuple[int, Decimal]], unit: RateUnit, start: datetime | None
) -> None:
    """Whatever a charger reports: distinct increasing starts, each limit the last
    reported for its second rounded down to a tenth, a valid ActiveChargingProfile."""
    periods = tuple(SchedulePeriod(s, limit) for s, limit in raw)
    composite = CompositeSchedule(1, start, ChargingSchedule(unit, periods, duration=900))
    active = active_from_composite(composite, NOW)
    assert active.start_date_time == (start or NOW)
    inner = active.charging_profile
    assert inner.start_date_time is None  # relative to the ActiveChargingProfile's start
    got = [(p.start_period, p.limit) for p in inner.charging_profile_period or []]
    assert [s for s, _ in got] == sorted({s for s, _ in raw})
    last = {s: limit for s, limit in raw}
    assert all(last[s] - Decimal("0.1") < limit <= last[s] for s, limit in got)
    validate_against_openapi("chargingprofiles", "ActiveChargingProfile", wire(active))


def test_distinct_periods_keep_the_last_of_a_second() -> None:
    periods = [
        SchedulePeriod(0, Decimal(32)),
        SchedulePeriod(0, Decimal(16)),
        SchedulePeriod(60, Decimal(8)),
    ]
    assert distinct_periods(periods) == [
        SchedulePeriod(0, Decimal(16)),
        SchedulePeriod(60, Decimal(8)),
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"charging_rate_unit": "A"}, "at least one period"),
        ({"charging_rate_unit": "A", "charging_profile_period": []}, "at least one period"),
        (
            {
                "charging_rate_unit": "A",
                "charging_profile_period": [{"start_period": 5, "limit": 6}],
            },
            "should be 0",
        ),
        (
            {
                "charging_rate_unit": "A",
                "charging_profile_period": [
                    {"start_period": 0, "limit": 6},
                    {"start_period": 0, "limit": 8},
                ],
            },
            "increase",
        ),
        (
            {
                "charging_rate_unit": "W",
                "charging_profile_period": [{"start_period": 0, "limit": -1}],
            },
            "negative",
        ),
        (
            {
                "charging_rate_unit": "W",
                "duration": -5,
                "charging_profile_period": [{"start_period": 0, "limit": 1}],
            },
            "duration",
        ),
    ],
)
def test_profiles_ocpp_cannot_take(data: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnusableProfile, match=reason):
        tx_profile(ChargingProfile.model_validate(data), profile_id=1, transaction_id="7")


S = cmd.CommandStatus


@pytest.mark.parametrize(
    ("status", "set_to", "clear_to"),
    [
        (S.ACCEPTED, "ACCEPTED", "ACCEPTED"),
        (S.REJECTED, "REJECTED", "REJECTED"),
        (S.NOT_SUPPORTED, "REJECTED", "REJECTED"),
        (S.UNKNOWN, "REJECTED", "UNKNOWN"),
    ],
)
def test_charger_answers_as_results(status: cmd.CommandStatus, set_to: str, clear_to: str) -> None:
    answer = cmd.CommandResult(status)
    for body, expected, schema in (
        (set_result(answer), set_to, "ChargingProfileResult"),
        (clear_result(answer), clear_to, "ClearProfileResult"),
    ):
        assert wire(body) == {"result": expected}
        validate_against_openapi("chargingprofiles", schema, wire(body))


def test_composite_schedule_answers_as_active_profile_results() -> None:
    schedule = ChargingSchedule(RateUnit.WATTS, (SchedulePeriod(0, Decimal("7400.06")),), 600)
    accepted = cmd.CommandResult(S.ACCEPTED, schedule=CompositeSchedule(1, NOW, schedule))
    body = wire(get_result(accepted, NOW))
    assert body == {
        "result": "ACCEPTED",
        "profile": {
            "start_date_time": "2026-11-23T12:00:00Z",
            "charging_profile": {
                "duration": 600,
                "charging_rate_unit": "W",
                "charging_profile_period": [{"start_period": 0, "limit": 7400}],
            },
        },
    }
    validate_against_openapi("chargingprofiles", "ActiveChargingProfileResult", body)
    # Accepted without a schedule: no profile known; refused: REJECTED.
    assert wire(get_result(cmd.CommandResult(S.ACCEPTED), NOW)) == {"result": "UNKNOWN"}
    assert wire(get_result(cmd.CommandResult(S.REJECTED), NOW)) == {"result": "REJECTED"}
