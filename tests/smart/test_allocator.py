"""The site allocator on worked examples (the property test covers random histories)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateway.smart.allocator import (
    ChargerLimit,
    Evse,
    Outcome,
    Policy,
    Session,
    SessionLimit,
    SessionStatus,
    Site,
    SiteLimit,
    allocate,
    begin,
    capacity_at,
    finish,
    next_change,
    observe_draw,
    plan,
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
D = Decimal


def site(capacity: str, *evses: Evse, **kw: object) -> Site:
    return Site("s", D(capacity), 3, tuple(evses), **kw)  # type: ignore[arg-type]


def online(*ids: str, limit: str | None = None) -> dict[str, ChargerLimit]:
    return {i: ChargerLimit(None if limit is None else D(limit), online=True) for i in ids}


def tx(sid: str, cid: str, at: int = 0, **kw: object) -> Session:
    return Session(sid, cid, 1, T0 + timedelta(seconds=at), **kw)  # type: ignore[arg-type]


def test_equal_share_rounded_down_to_a_tenth() -> None:
    s = site("50", *(Evse(f"c{i}", 1, D(32)) for i in range(3)))
    a = allocate(s, [tx("a", "c0"), tx("b", "c1", 1), tx("c", "c2", 2)], online("c0", "c1", "c2"))
    assert [a.sessions[x].limit for x in "abc"] == [D("16.6")] * 3
    assert sum(a.targets.values()) <= 50


def test_idle_evses_get_the_minimum_from_what_is_left() -> None:
    s = site("40", Evse("c0", 1, D(32)), Evse("c1", 1, D(32)), Evse("c2", 1, D(32)))
    a = allocate(s, [tx("a", "c0")], online("c0", "c1", "c2"))
    assert a.sessions["a"].limit == D(32)
    assert a.idle == {("c1", 1): D(6), ("c2", 1): D(0)}  # 40 - 32 = 8: room for one
    assert a.targets == {"c0": D(32), "c1": D(6), "c2": D(0)}


def test_session_without_the_minimum_is_paused_and_queued_first_come() -> None:
    s = site("13", *(Evse(f"c{i}", 1, D(16)) for i in range(3)))
    a = allocate(
        s, [tx("late", "c2", 5), tx("a", "c0"), tx("b", "c1", 1)], online("c0", "c1", "c2")
    )
    assert a.sessions["a"].limit == D("6.5") and a.sessions["b"].limit == D("6.5")
    assert a.sessions["late"] == SessionLimit(D(0), SessionStatus.PAUSED)
    assert a.queue == ("late",)


def test_priority_weights_token_group_partner_and_evse() -> None:
    s = site(
        "30",
        Evse("c0", 1, D(32)),
        Evse("c1", 1, D(32), weight=D(2)),
        Evse("c2", 1, D(32)),
        policy=Policy.PRIORITY,
        token_group_weights={"fleet": D(3)},
    )
    a = allocate(
        s,
        [tx("a", "c0"), tx("b", "c1"), tx("c", "c2", token_group="fleet")],
        online("c0", "c1", "c2"),
    )
    # 30 A by weights 1:2:3 (each above the minimum of 6): 5 would be under it, so 6, then
    # the remaining 24 by 2:3.
    assert a.sessions["a"].limit == D(6)
    assert a.sessions["b"].limit == D("9.6") and a.sessions["c"].limit == D("14.4")


def test_one_phase_sessions_count_on_their_phase_only() -> None:
    s = site(
        "32",
        Evse("a", 1, D(32), phases=1, phase="L1"),
        Evse("b", 1, D(32), phases=1, phase="L2"),
        Evse("c", 1, D(32), phases=3),
    )
    a = allocate(s, [tx("1", "a"), tx("2", "b"), tx("3", "c")], online("a", "b", "c"))
    # L1: a + c <= 32 and L2: b + c <= 32: 16 each; c's L3 has room but c is frozen by L1/L2.
    assert [a.sessions[x].limit for x in "123"] == [D(16), D(16), D(16)]


def test_an_unreachable_charger_counts_at_what_it_holds_or_its_rating() -> None:
    s = site("40", Evse("c0", 1, D(32)), Evse("c1", 1, D(22)))
    chargers = {"c0": ChargerLimit(D(10), online=False), "c1": ChargerLimit(online=True)}
    a = allocate(s, [tx("a", "c0"), tx("b", "c1")], chargers)
    assert a.sessions["a"].status is SessionStatus.UNREACHABLE
    assert a.sessions["b"].limit == D(22)  # 40 - 10 = 30, capped at its rating
    never_seen = {"c0": ChargerLimit(), "c1": ChargerLimit(online=True)}  # no limit: 32
    assert allocate(s, [tx("b", "c1")], never_seen).sessions["b"].limit == D(8)


def test_plan_lowers_first_and_a_charger_without_limit_gets_one() -> None:
    s = site("40", Evse("c0", 1, D(32)), Evse("c1", 1, D(32)), Evse("c2", 1, D(8)))
    chargers = {
        "c0": ChargerLimit(D(32), online=True),
        "c1": ChargerLimit(D(0), online=True),
        "c2": ChargerLimit(None, online=True),
    }
    a = allocate(s, [tx("a", "c0"), tx("b", "c1", 1), tx("c", "c2", 2)], chargers)
    p = plan(s, chargers, a.targets)
    assert [(x.charger_id, x.limit) for x in p.lowers] == [("c0", D(16)), ("c2", D(8))]
    assert [(x.charger_id, x.limit) for x in p.raises] == [("c1", D(16))]
    assert p.steps == p.lowers


def test_step_outcomes() -> None:
    state = ChargerLimit(D(16), online=True)
    step = plan(site("10", Evse("c", 1, D(32))), {"c": state}, {"c": D(10)}).lowers[0]
    assert begin(state, step).counted(D(32)) == D(16)  # a lower counts at the old limit
    assert finish(begin(state, step), step, Outcome.ACCEPTED).counted(D(32)) == D(10)
    silent = finish(begin(state, step), step, Outcome.NO_ANSWER)
    assert silent.counted(D(32)) == D(16) and not silent.controllable
    rejected = finish(begin(state, step), step, Outcome.REJECTED)
    assert rejected.in_force == D(16) and rejected.failed


def test_suspension_gives_the_share_away_and_back() -> None:
    s = site("40", Evse("c0", 1, D(32)), Evse("c1", 1, D(32)), suspend_after=timedelta(seconds=60))
    car = tx("a", "c0")
    car = observe_draw(s, car, D("3.2"), D(20), T0)
    assert car.suspended_cap is None and car.under_since == T0
    car = observe_draw(s, car, D("3.2"), D(20), T0 + timedelta(seconds=60))
    assert car.suspended_cap == D(6)  # max(minimum, 4 + 1)
    a = allocate(s, [car, tx("b", "c1")], online("c0", "c1"))
    assert a.sessions["a"] == SessionLimit(D(6), SessionStatus.SUSPENDED)
    assert a.sessions["b"].limit == D(32)
    car = observe_draw(s, car, D("5.8"), D(6), T0 + timedelta(seconds=70))
    assert car.suspended_cap is None  # drawing again: its share back
    assert allocate(s, [car, tx("b", "c1")], online("c0", "c1")).sessions["a"].limit == D(20)


def test_demand_response_lowest_wins_within_its_window() -> None:
    s = site("60", Evse("c", 1, D(32)))
    limits = [
        SiteLimit("x", T0, T0 + timedelta(hours=1), amperes=D(40)),
        SiteLimit("y", T0 + timedelta(minutes=10), T0 + timedelta(minutes=20), watts=D(13800)),
        SiteLimit("z", T0 + timedelta(minutes=30), T0 + timedelta(minutes=40), fraction=D("0.25")),
    ]
    assert capacity_at(s, limits, T0 - timedelta(seconds=1)) == D(60)
    assert capacity_at(s, limits, T0) == D(40)
    assert capacity_at(s, limits, T0 + timedelta(minutes=15)) == D(20)  # 13.8 kW / 690 V
    assert capacity_at(s, limits, T0 + timedelta(minutes=35)) == D(15)
    assert capacity_at(s, limits, T0 + timedelta(hours=1)) == D(60)  # end: lifted
    assert next_change(limits, T0) == T0 + timedelta(minutes=10)
