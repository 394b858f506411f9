"""Property test of the site allocator: random arrivals, departures, suspensions, charger
failures (no answer, rejected, offline, reboot), capacity changes and demand-response
limits; after every step of every plan the limits in force never sum above the capacity
on any phase, the gateway's accounting is never below what the chargers really hold, and
no charger holds a limit between 0 and the minimum.

The chargers' side is modelled apart from the allocator's state (``held``: what each
charger really applies; None: no limit, it may draw its rating), so that the checks are
made against what the chargers hold, not against what the allocator believes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gateway.smart.allocator import (
    ZERO,
    ChargerLimit,
    Evse,
    Outcome,
    Policy,
    Session,
    Site,
    SiteLimit,
    allocate,
    begin,
    capacity_at,
    evse_targets,
    finish,
    observe_draw,
    phase_loads,
    plan,
)

MIN = Decimal(6)
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

evse_specs = st.tuples(
    st.sampled_from([Decimal(16), Decimal(32), Decimal("13.5")]),
    st.sampled_from([(3, "L1"), (1, "L1"), (1, "L2"), (1, "L3")]),
    st.sampled_from([None, Decimal(1), Decimal(3)]),
)
# A charger: one EVSE, or two on the same phases.
charger_specs = st.tuples(evse_specs, st.booleans())


class SiteMachine(RuleBasedStateMachine):
    @initialize(
        chargers=st.lists(charger_specs, min_size=1, max_size=6),
        capacity=st.integers(min_value=0, max_value=120),
        policy=st.sampled_from(list(Policy)),
        max_current=st.sampled_from([None, Decimal(10), Decimal(20)]),
    )
    def setup(
        self,
        chargers: list[tuple[tuple[Decimal, tuple[int, str], Decimal | None], bool]],
        capacity: int,
        policy: Policy,
        max_current: Decimal | None,
    ) -> None:
        evses: list[Evse] = []
        for i, ((rating, (phases, phase), weight), two) in enumerate(chargers):
            for evse_id in (1, 2) if two else (1,):
                evses.append(Evse(f"cp{i}", evse_id, rating, phases, phase, weight))
        self.site = Site(
            "s",
            Decimal(capacity),
            3,
            tuple(evses),
            max_current=max_current,
            policy=policy,
            token_group_weights={"fleet": Decimal(2)},
            suspend_after=timedelta(seconds=60),
        )
        self.specs = self.site.chargers()
        # What load management knows; what the chargers really hold (None: no limit).
        self.state = {cid: ChargerLimit(online=True) for cid in self.specs}
        self.held: dict[str, Decimal | None] = dict.fromkeys(self.specs)
        self.mode = dict.fromkeys(self.specs, "ok")  # ok, reject, silent, offline
        self.sessions: dict[str, Session] = {}
        self.limits: list[SiteLimit] = []
        self.now = T0
        self.seq = 0
        self.rebalance(None)

    # -- the chargers' side ---------------------------------------------------------

    def true_load(self) -> dict[str, Decimal]:
        loads = dict.fromkeys(self.site.site_phases(), ZERO)
        for cid, spec in self.specs.items():
            held = self.held[cid]
            for p in spec.phases:
                loads[p] += spec.rated if held is None else held
        return loads

    def capacity(self) -> Decimal:
        return capacity_at(self.site, self.limits, self.now)

    def check(self, before: dict[str, Decimal]) -> dict[str, Decimal]:
        """After a step: accounting covers reality; the sum stays within capacity, or
        (above it after a drop, or pinned chargers alone above it) does not grow."""
        cap = self.capacity()
        for cid, spec in self.specs.items():
            held = self.held[cid]
            real = spec.rated if held is None else held
            assert self.state[cid].counted(spec.rated) >= real, (cid, self.state[cid], held)
            assert held is None or held == 0 or held >= MIN, (cid, held)
        loads = phase_loads(self.site, self.state)
        for p, load in loads.items():
            assert load <= cap or load <= before[p], (p, load, cap, before[p])
        true = self.true_load()
        for p in loads:
            assert true[p] <= loads[p]
        return loads

    def send(self, cid: str, limit: Decimal, applied: bool) -> Outcome:
        mode = self.mode[cid]
        if mode == "offline":
            return Outcome.OFFLINE
        if mode == "reject":
            return Outcome.REJECTED
        if mode == "silent":
            if applied:  # it applied the limit; the answer was lost
                self.held[cid] = limit
            return Outcome.NO_ANSWER
        self.held[cid] = limit
        return Outcome.ACCEPTED

    def rebalance(self, data: st.DataObject | None) -> None:
        """What the runtime does: plan, send the lowers (all at once), wait for every
        answer, plan again; then the raises. Answers come back in any order."""
        loads = self.check(phase_loads(self.site, self.state))
        for _ in range(4 * len(self.specs) + 4):
            allocation = allocate(self.site, self.sessions.values(), self.state, self.capacity())
            for s in allocation.sessions.values():
                assert s.limit is None or s.limit == 0 or s.limit >= MIN
            for target in allocation.targets.values():
                assert target == target.quantize(Decimal("0.1"))
            steps = plan(self.site, self.state, allocation.targets).steps
            if not steps:
                break
            for step in steps:
                self.state[step.charger_id] = begin(self.state[step.charger_id], step)
                loads = self.check(loads)
            order = list(steps)
            if data is not None:
                order = data.draw(st.permutations(order))
            for step in order:
                applied = data.draw(st.booleans()) if data is not None else True
                outcome = self.send(step.charger_id, step.limit, applied)
                self.state[step.charger_id] = finish(self.state[step.charger_id], step, outcome)
                loads = self.check(loads)
        else:
            raise AssertionError("the plan did not settle")
        # Settled: within capacity unless the pinned chargers alone are above it.
        cap = self.capacity()
        pinned = dict.fromkeys(loads, ZERO)
        for cid, spec in self.specs.items():
            if not self.state[cid].controllable:
                for p in spec.phases:
                    pinned[p] += self.state[cid].counted(spec.rated)
        for p, load in phase_loads(self.site, self.state).items():
            assert load <= max(cap, pinned[p]), (p, load, cap, pinned[p])
        self.allocation = allocation

    # -- events -------------------------------------------------------------------

    @rule(data=st.data(), which=st.integers(min_value=0, max_value=11), fleet=st.booleans())
    def arrive(self, data: st.DataObject, which: int, fleet: bool) -> None:
        evse = self.site.evses[which % len(self.site.evses)]
        if any(
            s.charger_id == evse.charger_id and s.evse_id == evse.evse_id
            for s in self.sessions.values()
        ):
            return
        self.seq += 1
        self.now += timedelta(seconds=1)
        sid = f"tx{self.seq}"
        self.sessions[sid] = Session(
            sid, evse.charger_id, evse.evse_id, self.now, token_group="fleet" if fleet else None
        )
        self.rebalance(data)

    @precondition(lambda self: bool(self.sessions))
    @rule(data=st.data(), which=st.integers(min_value=0, max_value=11))
    def depart(self, data: st.DataObject, which: int) -> None:
        sid = sorted(self.sessions)[which % len(self.sessions)]
        del self.sessions[sid]
        self.rebalance(data)

    @precondition(lambda self: bool(self.sessions))
    @rule(
        data=st.data(),
        which=st.integers(min_value=0, max_value=11),
        draw=st.sampled_from([ZERO, Decimal(2), Decimal("7.5"), Decimal(32)]),
        later=st.sampled_from([0, 30, 61]),
    )
    def meter(self, data: st.DataObject, which: int, draw: Decimal, later: int) -> None:
        """A meter reading: a car drawing well under its limit long enough is suspended;
        one that draws again gets its share back."""
        sid = sorted(self.sessions)[which % len(self.sessions)]
        self.now += timedelta(seconds=later)
        limit = self.allocation.sessions.get(sid)
        current = limit.limit if limit is not None and limit.limit is not None else ZERO
        self.sessions[sid] = observe_draw(
            self.site, self.sessions[sid], min(draw, current), current, self.now
        )
        self.rebalance(data)

    @rule(
        data=st.data(),
        which=st.integers(min_value=0, max_value=5),
        mode=st.sampled_from(["ok", "reject", "silent", "offline"]),
    )
    def charger_fails(self, data: st.DataObject, which: int, mode: str) -> None:
        """The charger starts rejecting, stops answering, or goes offline (the gateway
        learns it when a send finds it gone, or from the disconnection)."""
        cid = sorted(self.specs)[which % len(self.specs)]
        self.mode[cid] = mode
        if mode == "offline":
            self.state[cid] = replace(self.state[cid], online=False)
        self.rebalance(data)

    @rule(data=st.data(), which=st.integers(min_value=0, max_value=5), reboot=st.booleans())
    def charger_back(self, data: st.DataObject, which: int, reboot: bool) -> None:
        """It reconnects (keeping its profiles), or reboots (a charger that forgets its
        profiles counts at its rating from its boot on)."""
        cid = sorted(self.specs)[which % len(self.specs)]
        self.mode[cid] = "ok"
        if reboot:
            self.held[cid] = None
            self.state[cid] = ChargerLimit(online=True, pending=self.state[cid].pending)
        else:
            self.state[cid] = replace(self.state[cid], online=True, failed=False)
        self.rebalance(data)

    @rule(data=st.data(), capacity=st.integers(min_value=0, max_value=120))
    def capacity_change(self, data: st.DataObject, capacity: int) -> None:
        self.site = replace(self.site, capacity=Decimal(capacity))
        self.rebalance(data)

    @rule(
        data=st.data(),
        amperes=st.integers(min_value=0, max_value=80),
        start=st.integers(min_value=0, max_value=120),
        length=st.integers(min_value=1, max_value=300),
    )
    def demand_response(self, data: st.DataObject, amperes: int, start: int, length: int) -> None:
        begin_at = self.now + timedelta(seconds=start)
        self.seq += 1
        self.limits.append(
            SiteLimit(
                f"l{self.seq}", begin_at, begin_at + timedelta(seconds=length), Decimal(amperes)
            )
        )
        self.rebalance(data)

    @rule(data=st.data(), seconds=st.sampled_from([1, 10, 60, 200]))
    def time_passes(self, data: st.DataObject, seconds: int) -> None:
        """Limits start and end (the runtime rebalances at each)."""
        self.now += timedelta(seconds=seconds)
        self.rebalance(data)

    @invariant()
    def minimum_or_paused(self) -> None:
        for limit in self.allocation.sessions.values():
            assert limit.limit is None or limit.limit == 0 or limit.limit >= MIN

    @invariant()
    def evse_limits_within_the_charger(self) -> None:
        """Per-EVSE limits of a two-EVSE charger: each session's own limit (0 paused),
        each within its EVSE's rating and at least the minimum or 0, and together no
        more than the charger's station-wide target."""
        per_evse = evse_targets(self.site, self.allocation, self.sessions.values())
        sums: dict[str, Decimal] = {}
        for (cid, evse_id), limit in per_evse.items():
            evse = self.site.evse(cid, evse_id)
            assert evse is not None and limit <= evse.max_current
            assert limit == 0 or limit >= min(MIN, evse.max_current), (cid, evse_id, limit)
            sums[cid] = sums.get(cid, ZERO) + limit
        for cid, total in sums.items():
            assert total <= self.allocation.targets[cid], (cid, total)
        for s in self.sessions.values():
            held = self.allocation.sessions.get(s.id)
            key = (s.charger_id, s.evse_id)
            if key in per_evse and held is not None and held.limit is not None:
                assert per_evse[key] == held.limit


SiteMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSiteAllocator = SiteMachine.TestCase
