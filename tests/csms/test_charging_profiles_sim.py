"""The simulated chargers' smart charging (tests/sim.py): what the other tests rely on.

The chargers' handlers are called as the ``ocpp`` library calls them (snake_case
keyword arguments); the WebSocket side is covered by test_charging_profiles.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.sim import EV, Charger16, Charger201

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _charger16() -> tuple[Charger16, _Clock]:
    cp = Charger16("SIM16", None)  # type: ignore[arg-type]  # no connection needed here
    clock = _Clock()
    cp.clock = clock
    return cp, clock


def _profile16(
    pid: int,
    purpose: str,
    limit: str,
    *,
    stack: int = 0,
    unit: str = "A",
    periods: list[tuple[int, str]] | None = None,
    kind: str = "Absolute",
    **extra: Any,
) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "charging_rate_unit": unit,
        "charging_schedule_period": [
            {"start_period": s, "limit": Decimal(v)} for s, v in (periods or [(0, limit)])
        ],
    }
    schedule.update(extra.pop("schedule", {}))
    return {
        "charging_profile_id": pid,
        "stack_level": stack,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": kind,
        "charging_schedule": schedule,
        **extra,
    }


def _set16(cp: Charger16, connector: int, profile: dict[str, Any]) -> str:
    return str(
        cp.on_set_charging_profile(connector_id=connector, cs_charging_profiles=profile).status
    )


def test_ev_draws_the_smaller_of_its_max_and_the_limit() -> None:
    cp, _ = _charger16()
    ev = cp.plug(1, EV(max_current=Decimal(16)))
    assert cp.draw(1) == 16  # rated 32 A, no profile
    assert _set16(cp, 1, _profile16(1, "TxDefaultProfile", "10")) == "Accepted"
    assert cp.draw(1) == 10
    ev.suspended = True
    assert cp.draw(1) == 0
    ev.suspended = False
    cp.unplug(1)
    assert cp.draws() == {}


def test_highest_stack_level_in_force_wins_and_tx_overrides_default() -> None:
    cp, clock = _charger16()
    cp.plug(1)
    assert _set16(cp, 0, _profile16(1, "TxDefaultProfile", "20")) == "Accepted"
    assert cp.limit(1) == 20  # a default on connector 0 applies to every connector
    # A higher stack level that lasts 10 minutes wins while it lasts.
    high = _profile16(2, "TxDefaultProfile", "8", stack=2, schedule={"duration": 600})
    assert _set16(cp, 0, high) == "Accepted"
    assert cp.limit(1) == 8
    clock.now += timedelta(minutes=11)
    assert cp.limit(1) == 20
    # A TxProfile needs a transaction on its connector (1.6 section 3.13.2).
    assert _set16(cp, 1, _profile16(3, "TxProfile", "6")) == "Rejected"
    cp.transactions[1], cp.tx_started[1] = "7", clock.now
    assert _set16(cp, 1, _profile16(3, "TxProfile", "6", transaction_id=8)) == "Rejected"
    assert _set16(cp, 1, _profile16(3, "TxProfile", "6", transaction_id=7)) == "Accepted"
    assert cp.limit(1) == 6
    assert cp.limit(2) == 20


def test_station_max_caps_each_evse_and_is_shared() -> None:
    cp, _ = _charger16()
    assert _set16(cp, 1, _profile16(1, "ChargePointMaxProfile", "20")) == "Rejected"
    assert _set16(cp, 0, _profile16(1, "ChargePointMaxProfile", "20")) == "Accepted"
    cp.plug(1, EV(max_current=Decimal(16)))
    assert cp.draws() == {1: 16}
    cp.plug(2, EV(max_current=Decimal(32)))
    # 16 + 20 wants more than 20: equal shares, 10 each.
    assert cp.draws() == {1: 10, 2: 10}
    cp.evs[1].max_current = Decimal(4)
    assert cp.draws() == {1: 4, 2: 16}  # what one leaves goes to the other
    assert cp.limit(2) == 20


def test_watts_relative_and_recurring() -> None:
    cp, clock = _charger16()
    # 6900 W on 3 phases at 230 V: 10 A.
    assert _set16(cp, 1, _profile16(1, "TxDefaultProfile", "6900", unit="W")) == "Accepted"
    assert cp.limit(1) == 10
    relative = _profile16(
        2, "TxDefaultProfile", "", stack=1, kind="Relative", periods=[(0, "16"), (3600, "8")]
    )
    assert _set16(cp, 1, relative) == "Accepted"
    assert cp.limit(1) == 16  # no transaction: what a start would get
    cp.transactions[1], cp.tx_started[1] = "1", clock.now
    clock.now += timedelta(hours=2)
    assert cp.limit(1) == 8
    daily = _profile16(
        3,
        "TxDefaultProfile",
        "",
        stack=2,
        kind="Recurring",
        recurrency_kind="Daily",
        periods=[(0, "4")],
        schedule={"start_schedule": "2026-11-20T18:00:00Z", "duration": 3600},
    )
    assert _set16(cp, 1, daily) == "Accepted"
    clock.now = datetime(2026, 11, 25, 18, 30, tzinfo=UTC)
    assert cp.limit(1) == 4
    clock.now = datetime(2026, 11, 25, 19, 30, tzinfo=UTC)
    assert cp.limit(1) == 8


def test_clear_and_composite() -> None:
    cp, _ = _charger16()
    _set16(cp, 0, _profile16(1, "ChargePointMaxProfile", "20"))
    _set16(cp, 1, _profile16(2, "TxDefaultProfile", "", periods=[(0, "16"), (600, "7.46")]))
    answer = cp.on_get_composite_schedule(connector_id=1, duration=3600)
    assert answer.status == "Accepted"
    periods = answer.charging_schedule["chargingSchedulePeriod"]
    # Limits go out with one decimal, rounded down: never above the limit in force.
    assert periods == [{"startPeriod": 0, "limit": 16.0}, {"startPeriod": 600, "limit": 7.4}]
    station = cp.on_get_composite_schedule(connector_id=0, duration=60, charging_rate_unit="W")
    assert station.charging_schedule["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 13800.0}
    ]
    assert cp.on_clear_charging_profile(id=99).status == "Unknown"
    assert (
        cp.on_clear_charging_profile(charging_profile_purpose="TxDefaultProfile").status
        == "Accepted"
    )
    assert list(cp.profiles) == [1]
    assert cp.on_get_composite_schedule(connector_id=9, duration=60).status == "Rejected"


def test_201_rules() -> None:
    cp = Charger201("SIM201", None)  # type: ignore[arg-type]
    cp.clock = _Clock()

    def profile(pid: int, purpose: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": pid,
            "stack_level": 0,
            "charging_profile_purpose": purpose,
            "charging_profile_kind": "Absolute",
            "charging_schedule": [
                {
                    "id": 1,
                    "charging_rate_unit": "A",
                    "charging_schedule_period": [{"start_period": 0, "limit": 12.0}],
                }
            ],
            **extra,
        }

    set_ = cp.on_set_charging_profile
    assert (
        set_(evse_id=1, charging_profile=profile(1, "ChargingStationMaxProfile")).status
        == "Rejected"
    )
    assert (
        set_(evse_id=0, charging_profile=profile(1, "ChargingStationExternalConstraints")).status
        == "Rejected"
    )
    assert set_(evse_id=1, charging_profile=profile(2, "TxProfile")).status == "Rejected"
    cp.transactions[1] = "tx-1"
    assert (
        set_(evse_id=1, charging_profile=profile(2, "TxProfile", transaction_id="tx-1")).status
        == "Accepted"
    )
    assert (
        set_(evse_id=0, charging_profile=profile(1, "ChargingStationMaxProfile")).status
        == "Accepted"
    )
    assert cp.limit(1) == 12
    assert cp.on_get_charging_profiles(request_id=5, charging_profile={}).status == "Accepted"
    assert (
        cp.on_get_charging_profiles(request_id=5, evse_id=2, charging_profile={}).status
        == "NoProfiles"
    )
    cleared = cp.on_clear_charging_profile(charging_profile_criteria={"evse_id": 1})
    assert cleared.status == "Accepted" and list(cp.profiles) == [1]
