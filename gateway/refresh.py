"""What each process keeps in memory, kept in step with the changes other processes make.

Several gateway processes may share one store (Redis) behind a load balancer, and any of
them may serve any request. What a process reads from memory rather than the store (the
partners and the digests of their tokens, the hub's directory of parties, its routing
rules and party statuses, the still-alive check's view of platforms) must follow what
the others change. Over the cluster's ``changes`` channel
(:class:`~gateway.cluster.node.ClusterNode`):

- after a change is stored, the process that made it broadcasts a notice naming what
  changed (``{"type": "partner", "id": ...}``, ``hub-rule``, ``hub-status``), and only
  that process runs the change's side effects (the registry's listeners: the initial
  push of locations and tariffs to a new partner, the hub's ClientInfo pushes): once for
  the cluster;
- every other process reads that entity again from the store (``reload``: no listener,
  no push, no notice), in the order the notices came, one at a time;
- when the subscription was lost and is back (notices may be lost), and once at start
  (notices that came before the handlers were registered), everything is read again.

The token a process sends in its credentials POST to a partner (good for our versions
while the POST is in flight, credentials.asciidoc) is announced the same way (its
digest, as stored at rest), since the partner's check may reach any process.

Two kinds of work are not notices of stored changes:

- **the outbox wake-up**: a push stored by a process whose outbox worker does not run
  (another process holds the ``outbox`` lease) broadcasts ``outbox``, and the holder's
  worker polls at once instead of at its next interval; the messages of a burst of
  pushes are coalesced (the first at once, then at most one per ``WAKE_WINDOW`` while
  pushes keep coming);
- **the hub's still-alive check** runs in the holder of the ``hub-checks`` lease, while
  platforms may talk to any process: each process broadcasts the platforms it heard
  from, in one message per ``activity period`` at most (a tenth of the silence that
  triggers a probe, so the holder's view is never that stale); the holder broadcasts its
  verdict (the OFFLINE platforms) after each round, which every process applies to its
  directory (a full verdict each time: a process that started or lost messages since
  has it after one round).

With SQLite (one process) the messages go to this process only and are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.cluster.node import ClusterNode
from gateway.domain.clock import Clock
from gateway.hub.service import HUB, Hub
from gateway.keys import CLOCK, CLUSTER, SETTINGS
from gateway.roaming.outbox import OUTBOX_WORKER, OutboxWorker
from gateway.roaming.partners import Partner, PartnerRegistry
from gateway.roaming.server import REGISTRY
from ocpi.transport import PartyId

log = logging.getLogger(__name__)

PARTNER = "partner"
PROVISIONAL = "partner-token"
RULE = "hub-rule"
STATUS = "hub-status"
ACTIVITY = "hub-activity"
ALIVE = "hub-alive"
OUTBOX = "outbox"
_ALL = "all"  # a reload of everything (not a message type)

# Outbox wake-ups: at most one message per window (the first of a burst at once).
WAKE_WINDOW = 0.02

# After a reload failed (the store is out): everything again, this much later.
RETRY_SECONDS = 1.0


class Refresher:
    """See the module doc. :meth:`start` once the registry (and hub) are loaded,
    :meth:`stop` before the store closes."""

    def __init__(
        self,
        node: ClusterNode,
        registry: PartnerRegistry,
        hub: Hub | None,
        worker: OutboxWorker | None,
        clock: Clock,
        *,
        activity_period: float,
    ) -> None:
        self._node = node
        self._clock = clock
        self._registry = registry
        self._hub = hub
        self._worker = worker
        self._activity_period = activity_period
        # What to read again, in the order the notices came, each once.
        self._pending: dict[tuple[str, str], None] = {}
        self._more = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._reloader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Outbox wake-ups: one message in flight; another after it if pushes came.
        self._waking = False
        self._wake_again = False
        # Platforms heard from since the last activity message, and when.
        self._activity: dict[str, datetime] = {}
        self._activity_due = False
        self.reloads = 0  # entities read again (for tests and diagnostics)
        self.full_reloads = 0

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        node = self._node
        node.on(PARTNER, self._on_notice)
        node.on(RULE, self._on_notice)
        node.on(STATUS, self._on_notice)
        node.on(PROVISIONAL, self._on_provisional)
        node.on(OUTBOX, self._on_outbox)
        node.on(ACTIVITY, self._on_activity)
        node.on(ALIVE, self._on_alive)
        node.on_gap(self._gap)
        self._registry.on_change(self._partner_changed)
        self._registry.on_provisional(self._provisional_changed)
        if self._hub is not None:
            self._hub.rule_book.on_change(self._rule_changed)
            self._hub.on_status_change(self._status_changed)
            self._hub.on_activity(self._heard_from)
            self._hub.on_checked(self._checked)
        if self._worker is not None:
            self._worker.on_notify(self._pushed)
        self._reloader = asyncio.create_task(self._reload_loop(), name="refresh")
        # Notices that came between the first load and the handlers above were dropped.
        self.reload_everything()

    async def stop(self) -> None:
        tasks = [t for t in (self._reloader, *self._tasks) if t is not None]
        self._reloader = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def settled(self) -> None:
        """Return once every notice received so far has been acted on (tests)."""
        await asyncio.sleep(0)  # messages delivered by call_soon are received first
        await self._idle.wait()

    # -- sending -----------------------------------------------------------------------

    async def _broadcast(self, message: dict[str, Any]) -> None:
        try:
            await self._node.broadcast(message | {"from": self._node.id})
        except Exception as exc:
            # The change is stored; the other processes read it at their next full
            # reload (a gap of their subscription, their start).
            log.warning("refresh: could not tell the other processes (%s): %s", message, exc)

    async def _partner_changed(self, before: Partner | None, after: Partner | None) -> None:
        changed = after if after is not None else before
        if changed is not None:
            await self._broadcast({"type": PARTNER, "id": changed.id})

    async def _provisional_changed(self, partner_id: str, digest: str | None) -> None:
        await self._broadcast({"type": PROVISIONAL, "id": partner_id, "digest": digest})

    async def _rule_changed(self, rule_id: str) -> None:
        await self._broadcast({"type": RULE, "id": rule_id})

    async def _status_changed(self, party_id: PartyId) -> None:
        await self._broadcast({"type": STATUS, "id": str(party_id)})

    def _pushed(self) -> None:
        """A push was stored here: the worker that delivers may be another process's."""
        worker = self._worker
        if worker is not None and worker.running:
            return  # this process delivers: its worker was woken
        if self._waking:
            self._wake_again = True
            return
        self._waking = True
        self._spawn(self._send_wake_ups(), "outbox-wake-up")

    async def _send_wake_ups(self) -> None:
        try:
            while True:
                self._wake_again = False
                await self._broadcast({"type": OUTBOX})
                # The pushes of a burst (a hub broadcast, a tariff to ten partners...)
                # meanwhile share the next message: one per window at most.
                await asyncio.sleep(WAKE_WINDOW)
                if not self._wake_again:
                    return
        finally:
            self._waking = False

    def _heard_from(self, platform_id: str, at: datetime) -> None:
        previous = self._activity.get(platform_id)
        if previous is None or at > previous:
            self._activity[platform_id] = at
        if not self._activity_due:
            self._activity_due = True
            self._spawn(self._send_activity(), "hub-activity")

    async def _send_activity(self) -> None:
        try:
            await asyncio.sleep(self._activity_period)
        finally:
            self._activity_due = False
        seen, self._activity = self._activity, {}
        await self._broadcast(
            {"type": ACTIVITY, "seen": {p: at.isoformat() for p, at in seen.items()}}
        )

    async def _checked(self) -> None:
        hub = self._hub
        if hub is not None:
            at = self._clock.now()
            await self._broadcast(
                {"type": ALIVE, "offline": hub.offline_platforms(), "at": at.isoformat()}
            )

    def _spawn(self, work: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- receiving ---------------------------------------------------------------------

    def _mine(self, message: dict[str, Any]) -> bool:
        return message.get("from") == self._node.id

    def _on_notice(self, message: dict[str, Any]) -> None:
        entity = message.get("id")
        if self._mine(message) or not isinstance(entity, str):
            return
        self._queue((str(message["type"]), entity))

    def _gap(self) -> None:
        log.info("refresh: messages from other processes may have been lost; reading again")
        self.reload_everything()

    def reload_everything(self) -> None:
        """Read everything again (also the gap handler: notices may have been lost)."""
        self._pending.clear()
        self._queue((_ALL, ""))
        if self._worker is not None and self._worker.running:
            self._worker.wake()  # an outbox wake-up may have been lost too

    def _queue(self, key: tuple[str, str]) -> None:
        if (_ALL, "") in self._pending:
            return  # the full reload reads this too
        self._pending.pop(key, None)  # read after the notices before it
        self._pending[key] = None
        self._idle.clear()
        self._more.set()

    def _on_provisional(self, message: dict[str, Any]) -> None:
        partner_id, digest = message.get("id"), message.get("digest")
        if self._mine(message) or not isinstance(partner_id, str):
            return
        self._registry.set_provisional(partner_id, digest if isinstance(digest, str) else None)

    def _on_outbox(self, message: dict[str, Any]) -> None:
        del message
        if self._worker is not None and self._worker.running:
            self._worker.wake()

    def _on_activity(self, message: dict[str, Any]) -> None:
        seen = message.get("seen")
        if self._mine(message) or self._hub is None or not isinstance(seen, dict):
            return
        for platform_id, at in seen.items():
            try:
                self._hub.noted_elsewhere(str(platform_id), datetime.fromisoformat(at))
            except (TypeError, ValueError):
                log.warning("refresh: unreadable activity time %r of %s", at, platform_id)

    def _on_alive(self, message: dict[str, Any]) -> None:
        offline, at = message.get("offline"), message.get("at")
        if self._mine(message) or self._hub is None or not isinstance(offline, list):
            return
        try:
            when = datetime.fromisoformat(str(at))
        except ValueError:
            log.warning("refresh: unreadable still-alive time %r", at)
            return
        self._hub.apply_alive([str(p) for p in offline], when)

    # -- reading again -------------------------------------------------------------------

    async def _reload_loop(self) -> None:
        while True:
            await self._more.wait()
            self._more.clear()
            while self._pending:
                key = next(iter(self._pending))
                del self._pending[key]
                try:
                    await self._reload(*key)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "refresh: reading %s %s again failed (%s); everything again in %g s",
                        *key,
                        exc,
                        RETRY_SECONDS,
                    )
                    await asyncio.sleep(RETRY_SECONDS)
                    self._pending.clear()
                    self._pending[(_ALL, "")] = None
            if not self._pending:
                self._idle.set()

    async def _reload(self, kind: str, entity: str) -> None:
        hub = self._hub
        if kind == _ALL:
            await self._registry.reload_all()
            if hub is not None:
                await hub.reload_all()
            self.full_reloads += 1
            return
        if kind == PARTNER:
            before, after = await self._registry.reload(entity)
            if hub is not None:
                hub.partner_reloaded(before, after)
        elif kind == RULE and hub is not None:
            await hub.rule_book.reload(entity)
        elif kind == STATUS and hub is not None:
            await hub.reload_status(PartyId.parse(entity))
        self.reloads += 1


REFRESHER = web.AppKey("refresher", Refresher)


async def refresh_ctx(app: web.Application) -> AsyncIterator[None]:
    """The ``cleanup_ctx`` that keeps this process's partners, hub directory, rules and
    statuses in step with the other processes sharing the store (module doc): after
    the roaming, outbox and hub contexts, before the catalog's initial pushes (whose
    listener then runs after the notice is sent)."""
    silence = app[SETTINGS].hub_silence
    refresher = Refresher(
        app[CLUSTER],
        app[REGISTRY],
        app.get(HUB),
        app.get(OUTBOX_WORKER),
        app[CLOCK],
        activity_period=min(30.0, silence / 10),
    )
    refresher.start()
    app[REFRESHER] = refresher
    yield
    await refresher.stop()
