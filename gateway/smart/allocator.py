"""The site allocator: pure functions, no I/O, no clock (times are passed in).

Accounting unit: the charger. Each charger of a site holds one limit from load
management, a ChargingStationMaxProfile (amperes per phase) on EVSE 0: the charger keeps
its total draw within it whatever else it holds (a partner's TxProfile included) and
whether or not the gateway can reach it. A charger counts on each site phase it is wired
to, at its *counted* limit:

- the last limit it accepted, or its rated maximum (the sum of its EVSEs') when no
  limit of ours is known to be in force (never limited, or rebooted: profiles may be
  lost);
- while a limit is sent and not answered, or was sent and never answered, the higher of
  the old and the new one (it may have applied either).

Idle chargers count like the others: a car that plugs in draws at once what its charger
allows. A charger that is offline, that rejected its last limit or did not answer it is
*pinned*: it keeps counting at its counted limit and the others share what is left.

:func:`allocate` gives every session on a reachable charger its limit: sessions that
can get the minimum (IEC 61851: 6 A) are admitted by priority, then first come; the
others are paused (0) and queued. The admitted share the rest by weighted max-min
fairness (progressive filling, per phase), each up to its maximum (the EVSE's rating,
the site's per-session maximum, or a suspended car's cap). Leftover capacity goes to idle
EVSEs, up to the minimum each, so that a car plugging in starts at once. Every limit is
rounded down to 0.1 A (OCPP 1.6 ``chargingRateUnit`` A: multiples of 0.1).

:func:`plan` turns targets into steps: lowers first, then raises. The runtime sends the
lowers (all at once: each only lowers), waits for every answer, and plans again: raises
are only ever planned when no lower is left, so once they are sent (counted at their new
value from that moment) the counted limits sum to at most the targets', within capacity.
A failed step pins its charger and the runtime plans again. :func:`begin` and
:func:`finish` are the state changes of a step; :func:`phase_loads` what is counted.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

PHASES = ("L1", "L2", "L3")
TENTH = Decimal("0.1")
ZERO = Decimal(0)
ONE = Decimal(1)
# The minimum current of IEC 61851-1 (a lower PWM duty cycle means "do not charge").
IEC_MINIMUM = Decimal(6)
# A suspended car gets its draw plus this, and is resumed once it draws within
# RESUME_MARGIN of that cap (meter noise below it does not resume it).
SUSPEND_HEADROOM = Decimal(1)
RESUME_MARGIN = Decimal("0.5")


def round_down(value: Decimal) -> Decimal:
    """To a multiple of 0.1 A, never above ``value`` (never below 0)."""
    return max(ZERO, value.quantize(TENTH, rounding=ROUND_FLOOR))


class Policy(enum.StrEnum):
    EQUAL = "equal"  # every session weighs 1
    PRIORITY = "priority"  # weights per EVSE, token group and partner: the highest applies


@dataclass(frozen=True, slots=True)
class Evse:
    """An EVSE behind the site's grid connection."""

    charger_id: str
    evse_id: int
    max_current: Decimal  # rated, A per phase
    phases: int = 3  # 1 or 3
    phase: str = "L1"  # the site phase a one-phase EVSE is wired to
    weight: Decimal | None = None  # policy PRIORITY: this EVSE's weight

    def site_phases(self) -> tuple[str, ...]:
        return PHASES if self.phases == 3 else (self.phase,)


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    capacity: Decimal  # A per phase (a capacity in kW is converted by gateway.smart.sites)
    phases: int = 3  # of the grid connection: 1 (L1) or 3
    evses: tuple[Evse, ...] = ()
    min_current: Decimal = IEC_MINIMUM
    max_current: Decimal | None = None  # per session
    policy: Policy = Policy.EQUAL
    token_group_weights: Mapping[str, Decimal] = field(default_factory=dict)
    partner_weights: Mapping[str, Decimal] = field(default_factory=dict)
    # A car drawing under suspend_ratio x its limit for suspend_after gives the rest away.
    suspend_ratio: Decimal = Decimal("0.5")
    suspend_after: timedelta = timedelta(minutes=2)
    voltage: Decimal = Decimal(230)  # phase to neutral, for kW and W conversions

    def site_phases(self) -> tuple[str, ...]:
        return PHASES[: self.phases]

    def chargers(self) -> dict[str, ChargerSpec]:
        """The site's chargers: their phases (the union of their EVSEs') and rating."""
        out: dict[str, ChargerSpec] = {}
        for e in self.evses:
            spec = out.get(e.charger_id)
            phases = tuple(sorted(set(e.site_phases()) | set(spec.phases if spec else ())))
            rated = e.max_current + (spec.rated if spec else ZERO)
            out[e.charger_id] = ChargerSpec(e.charger_id, phases, rated)
        return out

    def evse(self, charger_id: str, evse_id: int) -> Evse | None:
        for e in self.evses:
            if e.charger_id == charger_id and e.evse_id == evse_id:
                return e
        return None


@dataclass(frozen=True, slots=True)
class ChargerSpec:
    id: str
    phases: tuple[str, ...]
    rated: Decimal  # the sum of its EVSEs' ratings, A per phase


@dataclass(frozen=True, slots=True)
class Session:
    """An active transaction on one of the site's EVSEs."""

    id: str
    charger_id: str
    evse_id: int
    started_at: datetime
    token_group: str | None = None
    partner: str | None = None
    draw: Decimal | None = None  # A per phase, from its latest meter values
    suspended_cap: Decimal | None = None  # set while suspended (see observe_draw)
    under_since: datetime | None = None  # drawing well under its limit since


@dataclass(frozen=True, slots=True)
class ChargerLimit:
    """What load management knows of a charger's limit."""

    in_force: Decimal | None = None  # last accepted; None: none known (counts as rated)
    pending: Decimal | None = None  # sent and not (or never) answered
    online: bool = False
    failed: bool = False  # rejected or did not answer its last limit: pinned

    def counted(self, rated: Decimal) -> Decimal:
        held = rated if self.in_force is None else self.in_force
        return held if self.pending is None else max(held, self.pending)

    @property
    def controllable(self) -> bool:
        # A pending limit (never answered) keeps counting at the higher of the two until
        # a later one is accepted; the charger itself may be sent a new one.
        return self.online and not self.failed


class SessionStatus(enum.StrEnum):
    CHARGING = "charging"
    SUSPENDED = "suspended"  # drawing well under its share: capped near its draw
    PAUSED = "paused"  # could not get the minimum: 0 A, queued
    UNREACHABLE = "unreachable"  # its charger is pinned: it keeps what it holds


@dataclass(frozen=True, slots=True)
class SessionLimit:
    limit: Decimal | None  # None: unknown (its charger is pinned)
    status: SessionStatus


@dataclass(frozen=True, slots=True)
class Allocation:
    capacity: Decimal  # A per phase, after demand-response limits
    targets: dict[str, Decimal]  # per reachable charger: its station-wide limit
    sessions: dict[str, SessionLimit]
    queue: tuple[str, ...]  # paused sessions, in the order they get capacity back
    idle: dict[tuple[str, int], Decimal]  # what each idle EVSE may draw when a car plugs in


@dataclass(frozen=True, slots=True)
class Step:
    charger_id: str
    limit: Decimal
    counted_before: Decimal

    @property
    def lowers(self) -> bool:
        return self.limit <= self.counted_before


@dataclass(frozen=True, slots=True)
class Plan:
    lowers: tuple[Step, ...]
    raises: tuple[Step, ...]

    @property
    def steps(self) -> tuple[Step, ...]:
        """What to send now: the lowers, or, when none is left, the raises."""
        return self.lowers or self.raises


def weight_of(site: Site, session: Session) -> Decimal:
    if site.policy is Policy.EQUAL:
        return ONE
    weights = []
    evse = site.evse(session.charger_id, session.evse_id)
    if evse is not None and evse.weight is not None:
        weights.append(evse.weight)
    if session.token_group is not None and session.token_group in site.token_group_weights:
        weights.append(site.token_group_weights[session.token_group])
    if session.partner is not None and session.partner in site.partner_weights:
        weights.append(site.partner_weights[session.partner])
    return max(weights, default=ONE)


def session_max(site: Site, session: Session) -> Decimal:
    """The most a session may get: its EVSE's rating, the site's per-session maximum, a
    suspended car's cap."""
    evse = site.evse(session.charger_id, session.evse_id)
    cap = evse.max_current if evse is not None else ZERO
    if site.max_current is not None:
        cap = min(cap, site.max_current)
    if session.suspended_cap is not None:
        cap = min(cap, session.suspended_cap)
    return cap


def phase_loads(site: Site, chargers: Mapping[str, ChargerLimit]) -> dict[str, Decimal]:
    """The counted limits summed per site phase (a charger counts on each of its phases)."""
    loads = dict.fromkeys(site.site_phases(), ZERO)
    for spec in site.chargers().values():
        counted = chargers.get(spec.id, ChargerLimit()).counted(spec.rated)
        for p in spec.phases:
            loads[p] = loads.get(p, ZERO) + counted
    return loads


def allocate(
    site: Site,
    sessions: Iterable[Session],
    chargers: Mapping[str, ChargerLimit],
    capacity: Decimal | None = None,
) -> Allocation:
    """Every reachable charger's target and every session's limit (module docstring).
    ``capacity``: the site's capacity now (demand-response limits applied), by default
    ``site.capacity``."""
    cap = site.capacity if capacity is None else capacity
    specs = site.chargers()
    remaining = dict.fromkeys(site.site_phases(), cap)
    controllable = {cid for cid in specs if chargers.get(cid, ChargerLimit()).controllable}
    for cid, spec in specs.items():
        if cid not in controllable:
            counted = chargers.get(cid, ChargerLimit()).counted(spec.rated)
            for p in spec.phases:
                remaining[p] -= counted
    results: dict[str, SessionLimit] = {}
    candidates: list[Session] = []
    busy: set[tuple[str, int]] = set()
    for s in sessions:
        evse = site.evse(s.charger_id, s.evse_id)
        if evse is None:
            continue
        if s.charger_id not in controllable:
            results[s.id] = SessionLimit(None, SessionStatus.UNREACHABLE)
            continue
        if (s.charger_id, s.evse_id) in busy:  # two on one EVSE: the newer one is real
            continue
        busy.add((s.charger_id, s.evse_id))
        candidates.append(s)
    # Admission: the minimum for as many as fit, by priority then first come.
    candidates.sort(key=lambda s: (-weight_of(site, s), s.started_at, s.id))
    phases_of = {s.id: _evse(site, s).site_phases() for s in candidates}
    free = dict(remaining)  # for the sessions, once the pinned chargers are counted
    admitted: list[Session] = []
    queue: list[str] = []
    for s in candidates:
        need = min(site.min_current, session_max(site, s))
        if need > 0 and all(remaining[p] >= need for p in phases_of[s.id]):
            for p in phases_of[s.id]:
                remaining[p] -= need
            admitted.append(s)
        else:
            results[s.id] = SessionLimit(ZERO, SessionStatus.PAUSED)
            queue.append(s.id)
    shares = _fill(site, admitted, phases_of, remaining)
    rounded = _round(admitted, shares, phases_of, free)
    targets = dict.fromkeys(controllable, ZERO)
    for s in admitted:
        limit = rounded[s.id]
        status = SessionStatus.SUSPENDED if s.suspended_cap is not None else SessionStatus.CHARGING
        results[s.id] = SessionLimit(limit, status)
        targets[s.charger_id] += limit
    # The leftover after rounding, for idle EVSEs: the minimum each, while it lasts.
    left = dict.fromkeys(site.site_phases(), cap)
    for cid, spec in specs.items():
        used = (
            targets[cid]
            if cid in controllable
            else chargers.get(cid, ChargerLimit()).counted(spec.rated)
        )
        for p in spec.phases:
            left[p] -= used
    idle: dict[tuple[str, int], Decimal] = {}
    for e in site.evses:
        if e.charger_id not in controllable or (e.charger_id, e.evse_id) in busy:
            continue
        give = min(site.min_current, e.max_current)
        if all(left[p] >= give for p in e.site_phases()):
            for p in e.site_phases():
                left[p] -= give
            targets[e.charger_id] += give
            idle[(e.charger_id, e.evse_id)] = give
        else:
            idle[(e.charger_id, e.evse_id)] = ZERO
    for cid in targets:
        targets[cid] = min(targets[cid], specs[cid].rated)
    return Allocation(cap, targets, results, tuple(queue), idle)


def evse_targets(
    site: Site, allocation: Allocation, sessions: Iterable[Session]
) -> dict[tuple[str, int], Decimal]:
    """Per EVSE of each reachable charger with more than one EVSE on the site: the limit
    of its session (0 while paused), or, idle, what it may draw when a car plugs in.

    The station-wide limit alone keeps the site within its capacity, but a charger
    shares it among its EVSEs as it sees fit (a paused session could draw what another
    was given); these per-EVSE limits make it share as the allocator did. They sum to the
    charger's target, so they never ask for more than the station-wide limit allows."""
    per_charger: dict[str, int] = {}
    for e in site.evses:
        per_charger[e.charger_id] = per_charger.get(e.charger_id, 0) + 1
    held: dict[tuple[str, int], Decimal] = {}
    for s in sessions:
        limit = allocation.sessions.get(s.id)
        if limit is not None and limit.limit is not None:
            held[(s.charger_id, s.evse_id)] = limit.limit
    out: dict[tuple[str, int], Decimal] = {}
    for e in site.evses:
        if per_charger[e.charger_id] < 2 or e.charger_id not in allocation.targets:
            continue
        key = (e.charger_id, e.evse_id)
        out[key] = held.get(key, allocation.idle.get(key, ZERO))
    return out


def _round(
    sessions: list[Session],
    shares: Mapping[str, Decimal],
    phases_of: Mapping[str, tuple[str, ...]],
    free: Mapping[str, Decimal],
) -> dict[str, Decimal]:
    """Shares rounded down to 0.1 A. The filling's level is found by bisection, so a share
    that is exactly a tenth (9.6) may come out a hair under it (9.5999...): such a share
    gets its tenth back where its phases still have room (``sessions`` in priority order;
    ``free``: each phase's capacity left for the sessions, minimums included)."""
    out = {s.id: round_down(shares[s.id]) for s in sessions}
    left = dict(free)
    for s in sessions:
        for p in phases_of[s.id]:
            left[p] -= out[s.id]
    for s in sessions:
        near = round_down(shares[s.id] + Decimal("1e-6"))
        add = near - out[s.id]
        if add > 0 and all(left[p] >= add for p in phases_of[s.id]):
            out[s.id] = near
            for p in phases_of[s.id]:
                left[p] -= add
    return out


def _evse(site: Site, session: Session) -> Evse:
    evse = site.evse(session.charger_id, session.evse_id)
    assert evse is not None
    return evse


def _fill(
    site: Site,
    sessions: list[Session],
    phases_of: Mapping[str, tuple[str, ...]],
    remaining: Mapping[str, Decimal],
) -> dict[str, Decimal]:
    """Weighted max-min fair shares by progressive filling. Each admitted session holds
    its minimum already (taken from ``remaining``); a level t gives session s
    ``min(max_s, max(min_s, w_s * t))``. Raise t until a phase is full or everyone is at
    their maximum; freeze the sessions on full phases; go on with the others."""
    lo_of = {s.id: min(site.min_current, session_max(site, s)) for s in sessions}
    hi_of = {s.id: session_max(site, s) for s in sessions}
    w_of = {s.id: weight_of(site, s) for s in sessions}
    share = dict(lo_of)
    # What each phase can still give above the minimums already taken.
    spare = dict(remaining)
    active = [s.id for s in sessions]

    def at(sid: str, t: Decimal) -> Decimal:
        return min(hi_of[sid], max(lo_of[sid], w_of[sid] * t))

    def fits(t: Decimal) -> bool:
        extra = dict.fromkeys(spare, ZERO)
        for sid in active:
            add = at(sid, t) - share[sid]
            for p in phases_of[sid]:
                extra[p] += add
        # A phase already over (pinned chargers) only stops those who would add to it.
        return all(extra[p] <= max(spare[p], ZERO) for p in spare)

    while active:
        t_hi = max(hi_of[sid] / w_of[sid] for sid in active)
        if fits(t_hi):
            t = t_hi
        else:
            lo, hi = ZERO, t_hi
            for _ in range(40):  # t to ~1e-12 of t_hi: far below the 0.1 A rounding
                mid = (lo + hi) / 2
                if fits(mid):
                    lo = mid
                else:
                    hi = mid
            t = lo
        # Full phases: where raising t any further would not fit.
        probe = t + max(t * Decimal("1e-9"), Decimal("1e-9"))
        extra = dict.fromkeys(spare, ZERO)
        for sid in active:
            add = at(sid, probe) - share[sid]
            for p in phases_of[sid]:
                extra[p] += add
        over = {p for p in spare if extra[p] > max(spare[p], ZERO)}
        still: list[str] = []
        for sid in active:
            new = at(sid, t)
            frozen = new >= hi_of[sid] or any(p in over for p in phases_of[sid])
            if frozen:
                for p in phases_of[sid]:
                    spare[p] -= new - share[sid]
                share[sid] = new
            else:
                still.append(sid)
        if len(still) == len(active):  # nothing froze: numerical corner, stop here
            for sid in active:
                new = at(sid, t)
                for p in phases_of[sid]:
                    spare[p] -= new - share[sid]
                share[sid] = new
            break
        active = still
    return share


def plan(site: Site, chargers: Mapping[str, ChargerLimit], targets: Mapping[str, Decimal]) -> Plan:
    """The steps from the limits in force to ``targets``: lowers (the biggest first), then
    raises. A charger with no limit of ours known gets one even when its target equals
    its rating, so that it holds a limit of its own when the gateway loses it."""
    specs = site.chargers()
    lowers: list[Step] = []
    raises: list[Step] = []
    for cid, target in targets.items():
        state = chargers.get(cid, ChargerLimit())
        if not state.controllable or cid not in specs:
            continue
        counted = state.counted(specs[cid].rated)
        if target < counted or (target == counted and state.in_force is None):
            lowers.append(Step(cid, target, counted))
        elif target > counted:
            raises.append(Step(cid, target, counted))
    lowers.sort(key=lambda s: (s.limit - s.counted_before, s.charger_id))
    raises.sort(key=lambda s: (s.limit - s.counted_before, s.charger_id))
    return Plan(tuple(lowers), tuple(raises))


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # the charger said no: its old limit stays
    NO_ANSWER = "no_answer"  # it may have applied the new limit or not
    OFFLINE = "offline"  # not sent: the charger is not connected


def begin(state: ChargerLimit, step: Step) -> ChargerLimit:
    """The step is about to be sent: counted at the higher of old and new from now. An
    earlier send still unanswered may have been applied too: it keeps counting."""
    pending = step.limit if state.pending is None else max(state.pending, step.limit)
    return replace(state, pending=pending)


def finish(state: ChargerLimit, step: Step, outcome: Outcome) -> ChargerLimit:
    if outcome is Outcome.ACCEPTED:
        # The same profile id replaces whatever an earlier unanswered send installed.
        return replace(state, in_force=step.limit, pending=None, failed=False)
    if outcome is Outcome.REJECTED:
        # Its old limit stays; after an earlier unanswered send that old limit may be the
        # unanswered one, so it keeps counting (the higher: safe, if wasteful).
        return replace(state, pending=state.pending if state.failed else None, failed=True)
    if outcome is Outcome.NO_ANSWER:
        return replace(state, failed=True)  # pending kept: counted at max(old, new)
    return replace(state, pending=None, online=False)


def observe_draw(
    site: Site, session: Session, draw: Decimal, limit: Decimal, now: datetime
) -> Session:
    """A new meter reading of ``session`` (``draw``, A per phase) under ``limit``. A car
    drawing under ``suspend_ratio`` of its limit for ``suspend_after`` is suspended: capped
    at its draw (rounded up) plus a headroom, at least the minimum; a suspended car
    drawing within the margin of its cap has its share back."""
    session = replace(session, draw=draw)
    if session.suspended_cap is not None:
        if draw >= session.suspended_cap - RESUME_MARGIN:
            return replace(session, suspended_cap=None, under_since=None)
        return session
    if limit <= 0 or draw >= limit * site.suspend_ratio:
        return replace(session, under_since=None)
    since = session.under_since or now
    if now - since < site.suspend_after:
        return replace(session, under_since=since)
    cap = max(site.min_current, draw.to_integral_value(rounding=ROUND_CEILING) + SUSPEND_HEADROOM)
    if cap >= limit:  # suspending would not free anything
        return replace(session, under_since=since)
    return replace(session, suspended_cap=cap, under_since=None)


def amperes(watts: Decimal, site: Site, phases: int | None = None) -> Decimal:
    """Watts as amperes per phase on ``phases`` phases (the site's by default)."""
    n = site.phases if phases is None else phases
    return watts / (site.voltage * n)


@dataclass(frozen=True, slots=True)
class SiteLimit:
    """A time-bounded limit on a site's capacity (demand response), in force from
    ``start`` (inclusive) to ``end`` (exclusive): amperes per phase, watts, or a fraction of
    the site's capacity (exactly one of them). Overlapping limits: the lowest wins."""

    id: str
    start: datetime
    end: datetime
    amperes: Decimal | None = None
    watts: Decimal | None = None
    fraction: Decimal | None = None
    source: str = "admin"  # or "openadr:<event id>"

    def amperes_on(self, site: Site) -> Decimal:
        if self.amperes is not None:
            return self.amperes
        if self.watts is not None:
            return amperes(self.watts, site)
        assert self.fraction is not None
        return site.capacity * self.fraction


def capacity_at(site: Site, limits: Iterable[SiteLimit], now: datetime) -> Decimal:
    """The site's capacity at ``now``: its own, or the lowest limit in force, rounded down."""
    cap = site.capacity
    for limit in limits:
        if limit.start <= now < limit.end:
            cap = min(cap, limit.amperes_on(site))
    return round_down(cap)


def next_change(limits: Iterable[SiteLimit], now: datetime) -> datetime | None:
    """When the capacity may change next (a limit starts or ends after ``now``)."""
    times = [t for limit in limits for t in (limit.start, limit.end) if t > now]
    return min(times, default=None)
