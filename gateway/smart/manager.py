"""The site load manager: one allocator per site, run by the holder of the ``sites`` lease.

Why one lease for all sites rather than one per site: an allocation is pure and cheap
(microseconds per session), and its commands go through the command router, which
reaches a charger on any process, so one process can serve every site; a lease per site
would cost each process an acquire per site every ``ttl / 3`` and would make every
process find out which one holds which site before forwarding an event. The state is
stored per site (``Store.site_states``), so splitting the sites over several leases later
changes nothing stored.

Every process subscribes :meth:`SiteManager.on_event` to its event bus (a charger's
events are published where its connection is). The holder handles them at once; the
others forward those of chargers on a site to the holder over the cluster's ``changes``
channel. Lost messages are made good by a resync from the store every ``resync``
seconds (active transactions, connected chargers, sites and limits).

Rebalancing (per site, one at a time): allocate, plan, mark the steps pending in the
stored state, send them (each a ChargingStationMaxProfile on EVSE 0 with the site's
profile id, through the injected :class:`CommandSender`), record each answer, and plan
again until nothing is left to do (see :mod:`gateway.smart.allocator` for why this never
lets the limits in force sum above the capacity). A charger that boots is counted at its
rating (it may have lost its profiles) and gets its share first; one that reconnects, is
re-sent its limit if need be; one that goes offline keeps counting at what it holds. The
holder wakes every ``tick`` seconds: demand-response limits start and end within that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from aiohttp import web

from gateway.domain.charging import ProfilePurpose, constant_limit
from gateway.domain.clock import Clock
from gateway.domain.commands import (
    ClearChargingProfile,
    CommandSender,
    CommandStatus,
    SetChargingProfile,
)
from gateway.domain.errors import (
    ChargerNotConnected,
    ChargerRejected,
    ChargerTimeout,
    CommandNotSupported,
    Unavailable,
)
from gateway.domain.events import (
    ChargerBooted,
    ChargerOffline,
    ChargerOnline,
    Event,
    TransactionEnded,
    TransactionStarted,
    TransactionUpdated,
)
from gateway.domain.models import ChargerState, Measurand, MeterReading, Transaction
from gateway.smart import sites as docs
from gateway.smart.allocator import (
    ZERO,
    Allocation,
    ChargerLimit,
    Outcome,
    Session,
    Site,
    SiteLimit,
    allocate,
    amperes,
    begin,
    capacity_at,
    evse_targets,
    finish,
    observe_draw,
    phase_loads,
    plan,
)
from gateway.storage.base import Document, StorageError, Store

log = logging.getLogger(__name__)

# How long a charger that connected is given to boot before it gets its share anyway.
ONLINE_GRACE = 2.0

# The profile load management installs on every charger of a site (EVSE 0): one id, so
# that each new limit replaces the last; a stack level above the operator's usual 0.
SITE_PROFILE_ID = 1_000_000_001
SITE_STACK_LEVEL = 1
# On a charger with several EVSEs on the site, each EVSE also gets a TxDefaultProfile
# with its session's share (id EVSE_PROFILE_BASE + EVSE id, same stack level): the
# station-wide limit keeps the site safe, these make the charger share it as allocated.
EVSE_PROFILE_BASE = 1_000_000_100
EVENT = "site-event"
CHANGED = "sites-changed"


class Messenger(Protocol):
    """The cluster's broadcast channel (``gateway.cluster.node.ClusterNode``)."""

    def on(self, kind: str, handler: Callable[[dict[str, Any]], None]) -> None: ...
    async def broadcast(self, message: dict[str, Any]) -> None: ...


# Called with a charger id once it accepted a new limit (the OCPI side tells the eMSPs
# of its sessions their new ActiveChargingProfile).
LimitChanged = Callable[[str], Awaitable[Any]]


@dataclass
class _Runtime:
    site: Site
    limits: list[SiteLimit]
    chargers: dict[str, ChargerLimit]
    sessions: dict[str, Session] = field(default_factory=dict)
    allocation: Allocation | None = None
    capacity: Decimal | None = None
    dirty: bool = True
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    saved_view: str | None = None
    # Something the view shows changed since it was last saved (a draw, a state).
    stale_view: bool = True
    # Per-EVSE limits the chargers accepted; chargers that refused one (not tried again
    # until they boot or the retry interval passes); whether one is still to be sent.
    evse_held: dict[tuple[str, int], Decimal] = field(default_factory=dict)
    evse_refused: set[str] = field(default_factory=set)
    evse_behind: bool = False


class SiteManager:
    def __init__(
        self,
        store: Store,
        sender: CommandSender,
        clock: Clock,
        messenger: Messenger | None = None,
        *,
        tick: float = 1.0,
        resync: float = 30.0,
        retry_failed: float = 30.0,
        online_grace: float = ONLINE_GRACE,
        on_limit_changed: LimitChanged | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._clock = clock
        self._messenger = messenger
        self._tick = tick
        self._resync_every = resync
        self._retry_every = retry_failed
        self._online_grace = online_grace
        self._on_limit_changed = on_limit_changed
        self._held = False
        self._runtimes: dict[str, _Runtime] = {}
        self._wake = asyncio.Event()
        self._index: dict[str, str] | None = None  # charger id -> site id (every process)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_step: datetime | None = None
        if messenger is not None:
            messenger.on(EVENT, self._on_message)
            messenger.on(CHANGED, self._on_changed)

    @property
    def holding(self) -> bool:
        """Whether this process runs the allocators now (holds the ``sites`` lease)."""
        return self._held

    # -- the lease's job --------------------------------------------------------------

    async def run(self) -> None:
        """Run every site's allocator while this process holds the ``sites`` lease."""
        self._held = True
        self._runtimes = {}
        loop = asyncio.get_running_loop()
        next_resync = 0.0
        next_retry = loop.time() + self._retry_every
        try:
            while True:
                now_loop = loop.time()
                try:
                    if now_loop >= next_resync:
                        await self._resync()
                        next_resync = now_loop + self._resync_every
                    if now_loop >= next_retry:
                        self._retry_pinned()
                        next_retry = now_loop + self._retry_every
                    await self._step_all()
                except (Unavailable, StorageError) as exc:
                    log.warning("site load management: %s; trying again", exc)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._tick):
                        await self._wake.wait()
        finally:
            self._held = False
            self._runtimes = {}

    async def _step_all(self) -> None:
        now = self._clock.now()
        last, self._last_step = self._last_step, now
        work = []
        for rt in list(self._runtimes.values()):
            cap = capacity_at(rt.site, rt.limits, now)
            if cap != rt.capacity:
                rt.dirty = True
            if rt.dirty:
                work.append(self._rebalance(rt))
            elif rt.stale_view or _limits_turn(rt, last, now):
                # The view is drawn again only when something it shows changed (a draw,
                # a limit starting or ending), not on every wake for every site.
                work.append(self._save(rt))
        if work:
            results = await asyncio.gather(*work, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError
                ):
                    if isinstance(result, Unavailable | StorageError):
                        log.warning("site rebalance: %s", result)
                    else:
                        log.error("site rebalance failed", exc_info=result)

    def _retry_pinned(self) -> None:
        """Chargers that rejected or did not answer get another chance now and then."""
        for rt in self._runtimes.values():
            if rt.evse_refused or rt.evse_behind:
                rt.evse_refused.clear()
                rt.dirty = True
            for cid, state in rt.chargers.items():
                if state.failed and state.online:
                    # An unanswered limit stays counted (pending) until one is accepted.
                    rt.chargers[cid] = replace(state, failed=False)
                    rt.dirty = True

    async def _resync(self) -> None:
        """Everything from the store: sites, limits, stored state (first time), active
        transactions and connected chargers (events may have been lost)."""
        site_docs = await self._all(self._store.sites)
        limit_docs = await self._all(self._store.site_limits)
        limits: dict[str, list[SiteLimit]] = {}
        for d in limit_docs:
            limits.setdefault(d.owner or "", []).append(docs.limit_from_data(d.data))
        seen: set[str] = set()
        for d in site_docs:
            seen.add(d.key)
            site = docs.site_from_data(d.key, d.data)
            rt = self._runtimes.get(d.key)
            marks: dict[str, dict[str, Any]] = {}
            if rt is None:
                rt, marks = await self._load(site, limits.get(d.key, []))
                self._runtimes[d.key] = rt
            else:
                if rt.site != site or rt.limits != limits.get(d.key, []):
                    rt.dirty = True
                rt.site, rt.limits = site, limits.get(d.key, [])
            await self._refresh(rt, marks)
        for gone in set(self._runtimes) - seen:
            del self._runtimes[gone]
        self._index = self._build_index(site_docs)

    async def _load(
        self, site: Site, limits: list[SiteLimit]
    ) -> tuple[_Runtime, dict[str, dict[str, Any]]]:
        """A site's runtime from its stored state (a takeover continues from what the
        previous holder recorded), and the stored suspension of its sessions."""
        state = await self._store.site_states.get(site.id)
        data = state.data if state is not None else {}
        chargers = docs.chargers_from_state(data)
        rt = _Runtime(site, limits, chargers)
        rt.saved_view = None  # written again once, by the new holder
        return rt, docs.session_marks(data)

    async def _refresh(self, rt: _Runtime, marks: dict[str, dict[str, Any]]) -> None:
        """Connected chargers and active transactions as stored."""
        specs = rt.site.chargers()
        now = self._clock.now()
        for cid in specs:
            state = await self._store.charger_states.get(cid)
            current = rt.chargers.get(cid, ChargerLimit())
            connected = bool(state and state.connected)
            # A charger that has just connected is not given its share here: it sends
            # its BootNotification first and may refuse requests until that is answered
            # (OCPP 2.0.1 B01; a SetChargingProfile reached one before its boot). Its
            # boot, or the online grace for one that reconnected without booting, marks
            # it online (_apply); one already marked stays so while it is connected.
            online = connected and (current.online or self._settled(state, now))
            if current.online != online:
                rt.chargers[cid] = replace(current, online=online)
                rt.dirty = True
        for cid in list(rt.chargers):
            if cid not in specs:
                del rt.chargers[cid]
        active: dict[str, Transaction] = {}
        for cid in specs:
            for tx in await self._store.transactions.active(cid):
                if rt.site.evse(cid, tx.evse_id) is not None:
                    active[tx.id] = tx
        for sid in list(rt.sessions):
            if sid not in active:
                del rt.sessions[sid]
                rt.dirty = True
        for sid, tx in active.items():
            if sid not in rt.sessions:
                session = await self._session(tx)
                mark = marks.get(sid)
                if mark is not None:
                    session = replace(
                        session,
                        suspended_cap=mark["suspended_cap"],
                        under_since=mark["under_since"],
                        draw=mark["draw"],
                    )
                rt.sessions[sid] = session
                rt.dirty = True

    def _settled(self, state: ChargerState | None, now: datetime) -> bool:
        """Whether a connected charger is past its boot: booted on this connection, or
        connected for longer than the online grace (a reconnect without a boot)."""
        if state is None or state.connected_at is None:
            return True
        if state.booted_at is not None and state.booted_at >= state.connected_at:
            return True
        return now - state.connected_at >= timedelta(seconds=self._online_grace)

    async def _session(self, tx: Transaction) -> Session:
        group = partner = None
        if tx.id_token is not None:
            token = await self._store.tokens.get(tx.id_token.uid)
            if token is not None:
                group = token.parent_id
            found, _ = await self._store.ocpi_tokens.list(owner=tx.id_token.uid.upper(), limit=1)
            if found:
                data = found[0].data
                partner = f"{data.get('country_code')}*{data.get('party_id')}"
        return Session(tx.id, tx.charger_id, tx.evse_id, tx.started_at, group, partner)

    async def _rebalance(self, rt: _Runtime) -> None:
        async with rt.lock:
            rt.dirty = False
            changed: set[str] = set()
            for _ in range(4 * len(rt.site.chargers()) + 4):
                rt.capacity = capacity_at(rt.site, rt.limits, self._clock.now())
                rt.allocation = allocate(rt.site, rt.sessions.values(), rt.chargers, rt.capacity)
                steps = plan(rt.site, rt.chargers, rt.allocation.targets).steps
                if not steps:
                    break
                for step in steps:
                    rt.chargers[step.charger_id] = begin(
                        rt.chargers.get(step.charger_id, ChargerLimit()), step
                    )
                # Pending before sending: a process taking over counts it.
                await self._save(rt, force=True)
                outcomes = await asyncio.gather(
                    *(self._send(rt, s.charger_id, s.limit) for s in steps)
                )
                for step, outcome in zip(steps, outcomes, strict=True):
                    current = rt.chargers.get(step.charger_id, ChargerLimit())
                    rt.chargers[step.charger_id] = finish(current, step, outcome)
                    if outcome is Outcome.ACCEPTED and step.limit != current.in_force:
                        changed.add(step.charger_id)
                    if outcome is not Outcome.ACCEPTED:
                        log.warning(
                            "site %s: charger %s: limit %s A %s; it counts at %s A",
                            rt.site.id,
                            step.charger_id,
                            step.limit,
                            outcome,
                            rt.chargers[step.charger_id].counted(
                                rt.site.chargers()[step.charger_id].rated
                            ),
                        )
                await self._save(rt, force=True)
            changed |= await self._send_evse_limits(rt)
            await self._save(rt)
            if self._on_limit_changed is not None:
                for cid in sorted(changed):
                    self._spawn(self._on_limit_changed(cid))

    async def _send_evse_limits(self, rt: _Runtime) -> set[str]:
        """Each EVSE of a multi-EVSE charger its session's share (see
        :func:`evse_targets`), once the station-wide limits are settled. Not needed for
        safety: a failure is logged and tried again at the next rebalance, a refusal
        stops them for that charger until it boots or the retry interval passes.
        Returns the chargers whose sessions' limits changed."""
        if rt.allocation is None:
            return set()
        wanted = evse_targets(rt.site, rt.allocation, rt.sessions.values())
        todo = [
            (key, limit)
            for key, limit in sorted(wanted.items())
            if rt.evse_held.get(key) != limit
            and key[0] not in rt.evse_refused
            and rt.chargers.get(key[0], ChargerLimit()).controllable
        ]
        for key in [k for k in rt.evse_held if k not in wanted]:
            del rt.evse_held[key]
        if not todo:
            rt.evse_behind = False
            return set()
        outcomes = await asyncio.gather(
            *(self._send(rt, cid, limit, evse_id=eid) for (cid, eid), limit in todo)
        )
        changed: set[str] = set()
        behind = False
        for ((cid, eid), limit), outcome in zip(todo, outcomes, strict=True):
            if outcome is Outcome.ACCEPTED:
                rt.evse_held[(cid, eid)] = limit
                changed.add(cid)
            elif outcome is Outcome.REJECTED:
                if cid not in rt.evse_refused:
                    log.warning(
                        "site %s: charger %s refused a per-EVSE limit; it shares its "
                        "station-wide limit among its EVSEs itself",
                        rt.site.id,
                        cid,
                    )
                rt.evse_refused.add(cid)
                rt.evse_held.pop((cid, eid), None)
            else:
                rt.evse_held.pop((cid, eid), None)
                behind = behind or outcome is Outcome.NO_ANSWER
        rt.evse_behind = behind
        rt.stale_view = True
        return changed

    async def _send(
        self, rt: _Runtime, charger_id: str, limit: Decimal, *, evse_id: int = 0
    ) -> Outcome:
        spec = rt.site.chargers()[charger_id]
        if evse_id == 0:
            profile = constant_limit(
                SITE_PROFILE_ID,
                ProfilePurpose.STATION_MAX,
                limit,
                stack_level=SITE_STACK_LEVEL,
                number_phases=len(spec.phases),
            )
        else:
            evse = rt.site.evse(charger_id, evse_id)
            profile = constant_limit(
                EVSE_PROFILE_BASE + evse_id,
                ProfilePurpose.TX_DEFAULT,
                limit,
                stack_level=SITE_STACK_LEVEL,
                number_phases=evse.phases if evse is not None else len(spec.phases),
            )
        try:
            result = await self._sender.send(charger_id, SetChargingProfile(evse_id, profile))
        except ChargerNotConnected:
            return Outcome.OFFLINE
        except (ChargerRejected, CommandNotSupported):
            return Outcome.REJECTED
        except ChargerTimeout:
            return Outcome.NO_ANSWER
        except Exception as exc:  # not known whether it reached the charger
            log.warning("site %s: sending %s its limit failed: %s", rt.site.id, charger_id, exc)
            return Outcome.NO_ANSWER
        return Outcome.ACCEPTED if result.status is CommandStatus.ACCEPTED else Outcome.REJECTED

    async def _save(self, rt: _Runtime, *, force: bool = False) -> None:
        view = self._view(rt)
        # Written when something changed (not each tick for the time stamp alone).
        text = json.dumps(
            _plain({k: v for k, v in view.items() if k != "updated_at"}), sort_keys=True
        )
        rt.stale_view = False
        if not force and text == rt.saved_view:
            return
        data = docs.state_to_data(rt.chargers, rt.sessions, _plain(view))
        await self._store.site_states.put(
            Document(rt.site.id, data, self._clock.now(), owner=rt.site.id)
        )
        rt.saved_view = text

    # -- events -----------------------------------------------------------------------

    # The kinds _message turns into a message (the bus gives this subscriber no other).
    EVENTS = (
        TransactionStarted,
        TransactionUpdated,
        TransactionEnded,
        ChargerBooted,
        ChargerOnline,
        ChargerOffline,
    )

    async def on_event(self, event: Event) -> None:
        """The event bus's subscriber, in every process."""
        message = self._message(event)
        if message is None:
            return
        if self._held:
            if message["kind"] == "online":
                self._spawn(self._apply(message))  # it waits for a boot: not in the connect
            else:
                await self._apply(message)
            return
        index = await self._site_index()
        if message["charger_id"] in index and self._messenger is not None:
            await self._messenger.broadcast(message)

    def _message(self, event: Event) -> dict[str, Any] | None:
        if isinstance(event, TransactionStarted | TransactionEnded):
            tx = event.transaction
            kind = "started" if isinstance(event, TransactionStarted) else "ended"
            return {"type": EVENT, "kind": kind, "charger_id": tx.charger_id, "tx_id": tx.id}
        if isinstance(event, TransactionUpdated):
            draw = _draw(event.readings)
            if draw is None:
                return None
            tx = event.transaction
            return {
                "type": EVENT,
                "kind": "draw",
                "charger_id": tx.charger_id,
                "tx_id": tx.id,
                "evse_id": tx.evse_id,
                "amperes": None if draw[0] is None else str(draw[0]),
                "watts": None if draw[1] is None else str(draw[1]),
            }
        if isinstance(event, ChargerBooted):
            return {"type": EVENT, "kind": "booted", "charger_id": event.state.id}
        if isinstance(event, ChargerOnline):
            return {"type": EVENT, "kind": "online", "charger_id": event.charger_id}
        if isinstance(event, ChargerOffline):
            return {"type": EVENT, "kind": "offline", "charger_id": event.charger_id}
        return None

    def _on_message(self, message: dict[str, Any]) -> None:
        if self._held:
            self._spawn(self._apply(message))

    def _on_changed(self, message: dict[str, Any]) -> None:
        self._index = None
        if self._held:
            site_id = message.get("site_id")
            self._spawn(self._resync_now(site_id if isinstance(site_id, str) else None))

    async def _resync_now(self, site_id: str | None = None) -> None:
        if site_id is None:
            await self._resync()
        else:
            await self._resync_site(site_id)
        self._wake.set()

    async def _resync_site(self, site_id: str) -> None:
        """One site, its limits and its chargers from the store (after the admin API or
        demand response wrote them): the other sites are not read again."""
        doc = await self._store.sites.get(site_id)
        if doc is None:
            self._runtimes.pop(site_id, None)
            self._index = None
            return
        limits = [
            docs.limit_from_data(d.data)
            for d in await self._all(self._store.site_limits, owner=site_id)
        ]
        site = docs.site_from_data(site_id, doc.data)
        rt = self._runtimes.get(site_id)
        marks: dict[str, dict[str, Any]] = {}
        if rt is None:
            rt, marks = await self._load(site, limits)
            self._runtimes[site_id] = rt
        else:
            if rt.site != site or rt.limits != limits:
                rt.dirty = True
            rt.site, rt.limits = site, limits
        await self._refresh(rt, marks)
        rt.stale_view = True

    async def _apply(self, message: dict[str, Any]) -> None:
        if message.get("kind") == "online":
            # A charger that just connected sends its BootNotification first, and may
            # refuse requests until it is answered: its share waits for the boot (which
            # marks it online itself), or this long for one that reconnected without
            # booting (it kept its profiles).
            await asyncio.sleep(self._online_grace)
        cid = str(message.get("charger_id"))
        rt = next((r for r in self._runtimes.values() if cid in r.site.chargers()), None)
        if rt is None:
            return
        kind = message.get("kind")
        state = rt.chargers.get(cid, ChargerLimit())
        if kind == "booted":
            # Its profiles may be lost: counted at its rating until it takes its share.
            rt.chargers[cid] = ChargerLimit(None, state.pending, online=True)
            for key in [k for k in rt.evse_held if k[0] == cid]:
                del rt.evse_held[key]
            rt.evse_refused.discard(cid)
        elif kind == "online":
            rt.chargers[cid] = replace(state, online=True, failed=False)
        elif kind == "offline":
            rt.chargers[cid] = replace(state, online=False)
        elif kind == "started":
            tx = await self._store.transactions.get(str(message["tx_id"]))
            if tx is None or rt.site.evse(cid, tx.evse_id) is None or tx.stopped_at is not None:
                return
            rt.sessions[tx.id] = await self._session(tx)
        elif kind == "ended":
            if rt.sessions.pop(str(message["tx_id"]), None) is None:
                return
        elif kind == "draw":
            self._observe(rt, message)
            return
        else:
            return
        rt.dirty = True
        self._wake.set()

    def _observe(self, rt: _Runtime, message: dict[str, Any]) -> None:
        session = rt.sessions.get(str(message["tx_id"]))
        if session is None:
            return
        evse = rt.site.evse(session.charger_id, session.evse_id)
        if message.get("amperes") is not None:
            draw = Decimal(str(message["amperes"]))
        elif message.get("watts") is not None and evse is not None:
            draw = amperes(Decimal(str(message["watts"])), rt.site, evse.phases)
        else:
            return
        held = rt.allocation.sessions.get(session.id) if rt.allocation else None
        limit = held.limit if held is not None and held.limit is not None else ZERO
        updated = observe_draw(rt.site, session, draw, limit, self._clock.now())
        rt.sessions[session.id] = updated
        rt.stale_view = True
        if updated.suspended_cap != session.suspended_cap:
            log.info(
                "site %s: session %s %s",
                rt.site.id,
                session.id,
                "resumed"
                if updated.suspended_cap is None
                else f"suspended at {updated.suspended_cap} A",
            )
            rt.dirty = True
            self._wake.set()

    # -- what every process offers: the admin API and demand response -------------------

    async def changed(self, site_id: str | None = None) -> None:
        """Sites or limits were written (of ``site_id`` only, when given): the holder
        reads them again."""
        self._index = None
        if self._messenger is not None:
            message: dict[str, Any] = {"type": CHANGED}
            if site_id is not None:
                message["site_id"] = site_id
            await self._messenger.broadcast(message)
        elif self._held:
            await self._resync_now(site_id)

    async def delete_site(self, site_id: str) -> bool:
        doc = await self._store.sites.get(site_id)
        if doc is None or not await self._store.sites.delete(site_id):
            return False
        for limit in await self._all(self._store.site_limits, owner=site_id):
            await self._store.site_limits.delete(limit.key)
        await self._store.site_states.delete(site_id)
        await self.changed()
        # Its chargers are no longer limited by the site (best effort: a charger that
        # is offline keeps the limit until the operator clears it).
        site = docs.site_from_data(site_id, doc.data)
        per_charger: dict[str, list[int]] = {}
        for e in site.evses:
            per_charger.setdefault(e.charger_id, []).append(e.evse_id)
        for cid, evse_ids in per_charger.items():
            ids = [SITE_PROFILE_ID]
            if len(evse_ids) > 1:
                ids += [EVSE_PROFILE_BASE + e for e in sorted(evse_ids)]
            for profile_id in ids:
                with contextlib.suppress(Exception):
                    await self._sender.send(cid, ClearChargingProfile(profile_id=profile_id))
        return True

    async def view(self, site_id: str) -> dict[str, Any] | None:
        """The live allocation as the holder last stored it (at most ``tick`` old)."""
        state = await self._store.site_states.get(site_id)
        if state is None:
            return None
        view = state.data.get("view")
        return view if isinstance(view, dict) else None

    async def site_ids(self) -> list[str]:
        return [d.key for d in await self._all(self._store.sites)]

    async def replace_event_limits(self, event_id: str, limits: Sequence[Any]) -> None:
        """Demand response (``gateway.demand``): ``limits`` (``DemandLimit``s: site_id,
        start, end, fraction or watts) become the whole of event ``event_id``."""
        await self._drop_event(event_id)
        for n, limit in enumerate(limits):
            site_limit = SiteLimit(
                id=f"openadr-{event_id}-{n}",
                start=limit.start,
                end=limit.end,
                watts=limit.watts,
                fraction=limit.fraction,
                source=f"openadr:{event_id}",
            )
            await self._store.site_limits.put(
                Document(
                    docs.limit_key(limit.site_id, site_limit.id),
                    docs.limit_to_data(site_limit),
                    self._clock.now(),
                    owner=limit.site_id,
                )
            )
        await self.changed()

    async def remove_event_limits(self, event_id: str) -> None:
        await self._drop_event(event_id)
        await self.changed()

    async def _drop_event(self, event_id: str) -> None:
        for d in await self._all(self._store.site_limits):
            if d.data.get("source") == f"openadr:{event_id}":
                await self._store.site_limits.delete(d.key)

    def site_power_watts(self, site_id: str) -> Decimal | None:
        """What the site's sessions draw now (W), in the holder only (else None)."""
        rt = self._runtimes.get(site_id)
        if rt is None:
            return None
        total = ZERO
        for s in rt.sessions.values():
            evse = rt.site.evse(s.charger_id, s.evse_id)
            if s.draw is not None and evse is not None:
                total += s.draw * rt.site.voltage * evse.phases
        return total

    # -- helpers ------------------------------------------------------------------------

    async def _site_index(self) -> dict[str, str]:
        if self._index is None:
            self._index = self._build_index(await self._all(self._store.sites))
        return self._index

    @staticmethod
    def _build_index(site_docs: list[Document]) -> dict[str, str]:
        index: dict[str, str] = {}
        for d in site_docs:
            for e in d.data.get("evses", []):
                index[str(e["charger_id"])] = d.key
        return index

    @staticmethod
    async def all_documents(collection: Any, owner: str | None = None) -> list[Document]:
        """Every document of ``collection`` (of ``owner``), page by page."""
        return await SiteManager._all(collection, owner)

    @staticmethod
    async def _all(collection: Any, owner: str | None = None) -> list[Document]:
        out: list[Document] = []
        while True:
            page, total = await collection.list(owner=owner, offset=len(out), limit=1000)
            out.extend(page)
            if not page or len(out) >= total:
                return out

    def _spawn(self, coro: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await coro
            except (Unavailable, StorageError) as exc:
                log.warning("site load management: %s", exc)
            except Exception:
                log.exception("site load management failed")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _view(self, rt: _Runtime) -> dict[str, Any]:
        now = self._clock.now()
        alloc = rt.allocation
        specs = rt.site.chargers()
        loads = phase_loads(rt.site, rt.chargers)
        cap = rt.capacity if rt.capacity is not None else capacity_at(rt.site, rt.limits, now)
        draws = dict.fromkeys(rt.site.site_phases(), ZERO)
        sessions = []
        for s in sorted(rt.sessions.values(), key=lambda s: (s.started_at, s.id)):
            limit = alloc.sessions.get(s.id) if alloc else None
            evse = rt.site.evse(s.charger_id, s.evse_id)
            if s.draw is not None and evse is not None:
                for p in evse.site_phases():
                    draws[p] += s.draw
            sessions.append(
                {
                    "transaction_id": s.id,
                    "charger_id": s.charger_id,
                    "evse_id": s.evse_id,
                    "limit": None if limit is None else limit.limit,
                    "status": None if limit is None else limit.status,
                    "draw": s.draw,
                    "suspended_cap": s.suspended_cap,
                    "token_group": s.token_group,
                    "partner": s.partner,
                }
            )
        return {
            "site_id": rt.site.id,
            "capacity": cap,
            "configured_capacity": rt.site.capacity,
            "limits_in_force": [limit.id for limit in rt.limits if limit.start <= now < limit.end],
            "phases": {
                p: {
                    "capacity": cap,
                    "limits": loads[p],
                    "draw": draws[p],
                    "headroom": cap - loads[p],
                }
                for p in rt.site.site_phases()
            },
            "total_limits": max(loads.values(), default=ZERO),
            "total_draw": max(draws.values(), default=ZERO),
            "headroom": min((cap - v for v in loads.values()), default=cap),
            "chargers": [
                {
                    "charger_id": cid,
                    "online": rt.chargers.get(cid, ChargerLimit()).online,
                    "limit_in_force": rt.chargers.get(cid, ChargerLimit()).in_force,
                    "pending": rt.chargers.get(cid, ChargerLimit()).pending,
                    "pinned": not rt.chargers.get(cid, ChargerLimit()).controllable,
                    "counted": rt.chargers.get(cid, ChargerLimit()).counted(spec.rated),
                    "target": alloc.targets.get(cid) if alloc else None,
                    "evse_limits": {
                        str(eid): held
                        for (c, eid), held in sorted(rt.evse_held.items())
                        if c == cid
                    },
                }
                for cid, spec in sorted(specs.items())
            ],
            "sessions": sessions,
            "queue": list(alloc.queue) if alloc else [],
            "updated_at": now,
        }


def _limits_turn(rt: _Runtime, last: datetime | None, now: datetime) -> bool:
    """Whether a limit of the site started or ended since the last wake (the view lists
    the limits in force)."""
    if last is None:
        return True
    return any(last < t <= now for limit in rt.limits for t in (limit.start, limit.end))


def _draw(readings: Sequence[MeterReading]) -> tuple[Decimal | None, Decimal | None] | None:
    """The latest draw in a batch of readings: Current.Import (A, the highest phase), or
    else Power.Active.Import (W); None when there is neither."""
    current = [r for r in readings if r.measurand is Measurand.CURRENT_A]
    if current:
        latest = max(r.timestamp for r in current)
        return max(r.value for r in current if r.timestamp == latest), None
    power = [r for r in readings if r.measurand is Measurand.POWER_W and r.phase is None]
    if power:
        latest = max(r.timestamp for r in power)
        return None, max(r.value for r in power if r.timestamp == latest)
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


SITES = web.AppKey("sites", SiteManager)
