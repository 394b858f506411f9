"""The charger ownership registry: which process holds each charger's connection.

- **Claim.** When a charger connects, its process claims it (``owner:{id}`` in Redis:
  node, since, last heartbeat, with a TTL of ``GATEWAY_LEASE_SECONDS``). A claim always
  wins: the newest connection is the charger's (OCPP-J). If another live process held
  it, that process is told (a ``release`` message on its channel) and closes its stale
  connection without recording anything.
- **Renew.** Every ``ttl / 3`` each process renews the records of the chargers it
  holds, in a few script calls (500 chargers each), writing the last heartbeat of those
  that sent one since, so that every process reads the same live state. A record found
  taken by another process means that process holds the charger now (a ``release``
  message was missed): the connection here is closed. A record found expired (this
  process could not reach Redis for a whole TTL) is claimed again.
- **Release.** When a connection ends, the record is deleted if it is still this
  process's; only then is the charger recorded offline (``CentralSystem.disconnected``).
- **Offline sweep** (under the ``chargers`` lease, once per cluster): a process that dies
  (``kill -9``) cannot record its chargers offline. It stops listening on its channel
  at once (the OS closes its Redis connections), and its records expire after the TTL:
  a record whose process no longer listens counts as gone (:meth:`live_owners`). Every
  ``4 * ttl`` the lease holder marks offline the chargers stored as connected that no
  live process holds, which tells the roaming side (EVSEs UNKNOWN). It also runs at
  each gain of the lease, which, at the start of a one-process gateway, records offline
  the chargers the previous run left connected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from gateway.cluster.node import ClusterNode
from gateway.csms.core import CentralSystem
from gateway.domain.clock import Clock
from gateway.domain.errors import Unavailable
from gateway.storage.base import ChargerStateStore, Owner, OwnershipStore, StorageError

log = logging.getLogger(__name__)

RELEASE = "release"
# Chargers renewed between two turns of the event loop: at 10,000 chargers one renewal
# of them all held every charger's answer for about 20 ms (tests/bench/README.md).
RENEW_CHUNK = 1000


class ChargerRegistry:
    """This process's side of the registry; the central system's :class:`Ownership`."""

    def __init__(self, owners: OwnershipStore, node: ClusterNode, clock: Clock, ttl: float) -> None:
        self._owners = owners
        self._node = node
        self._clock = clock
        self.ttl = ttl
        self._csms: CentralSystem | None = None
        self._beats_written: dict[str, datetime] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        node.on(RELEASE, self._on_release)

    def attach(self, csms: CentralSystem) -> None:
        self._csms = csms

    # -- the central system's Ownership ---------------------------------------------

    async def claim(self, charger_id: str) -> None:
        previous = await self._owners.claim(charger_id, self._node.id, self._clock.now(), self.ttl)
        self._beats_written.pop(charger_id, None)
        if previous is not None:
            # Told at once; should the message be lost, that process finds out at its
            # next renew. False: it is gone (its record simply expired into ours).
            try:
                told = await self._node.send(previous, {"type": RELEASE, "charger_id": charger_id})
            except StorageError as exc:
                told = False
                log.warning("charger %s: could not tell %s it moved: %s", charger_id, previous, exc)
            log.info(
                "charger %s taken over from %s%s",
                charger_id,
                previous,
                "" if told else " (gone)",
            )

    async def release(self, charger_id: str) -> bool:
        self._beats_written.pop(charger_id, None)
        return await self._owners.release(charger_id, self._node.id)

    async def live_owners(self, charger_ids: Sequence[str]) -> list[Owner | None]:
        """The owner of each charger, None where the record is gone or its process no
        longer listens (it died: its record has not expired yet)."""
        found = await self._owners.owners(charger_ids)
        nodes = {o.node for o in found if o is not None and o.node != self._node.id}
        alive = await self._node.alive(nodes) if nodes else set()
        alive.add(self._node.id)
        return [o if o is not None and o.node in alive else None for o in found]

    # -- renewals ---------------------------------------------------------------------

    async def _renew_some(self, csms: CentralSystem, ids: list[str]) -> set[str]:
        """One chunk of :meth:`renew`: the chargers whose records were lost."""
        beats: list[datetime | None] = []
        for charger_id in ids:
            beat = csms.heartbeat_of(charger_id)
            beats.append(
                None if beat is None or beat == self._beats_written.get(charger_id) else beat
            )
        lost = set(await self._owners.renew(self._node.id, ids, self.ttl, beats))
        for charger_id, beat in zip(ids, beats, strict=True):
            if beat is not None and charger_id not in lost:
                self._beats_written[charger_id] = beat
        return lost

    async def renew(self) -> None:
        """Extend the records of the chargers connected here (see the module docstring)."""
        csms = self._require()
        ids = [c.charger_id for c in csms.connections()]
        if not ids:
            return
        lost: set[str] = set()
        for start in range(0, len(ids), RENEW_CHUNK):
            if start:
                await asyncio.sleep(0)
            lost |= await self._renew_some(csms, ids[start : start + RENEW_CHUNK])
        if not lost:
            return
        lost_ids = sorted(lost)
        for charger_id, owner in zip(lost_ids, await self._owners.owners(lost_ids), strict=True):
            if csms.connection(charger_id) is None:
                continue  # closed meanwhile
            if owner is None:
                # Expired: this process could not renew for a whole TTL (a Redis outage).
                # The connection is still here and good: claim the charger again.
                log.warning("charger %s: ownership had expired; claimed again", charger_id)
                await self.claim(charger_id)
            elif owner.node != self._node.id:
                await csms.handed_over(charger_id)

    async def run_renewals(self) -> None:
        """Renew every ``ttl / 3`` until cancelled; an outage is logged once per run."""
        failing = False
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self.renew()
            except (StorageError, Unavailable) as exc:
                if not failing:
                    log.warning("charger ownership: cannot renew (%s); trying again", exc)
                failing = True
                continue
            except Exception:
                log.exception("charger ownership: renew failed")
                continue
            if failing:
                log.info("charger ownership: renewing again")
            failing = False

    # -- messages ---------------------------------------------------------------------

    def _on_release(self, message: dict[str, Any]) -> None:
        charger_id = message.get("charger_id")
        if not isinstance(charger_id, str) or not charger_id:
            return
        task = asyncio.create_task(self._release_if_moved(charger_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _release_if_moved(self, charger_id: str) -> None:
        csms = self._require()
        if csms.connection(charger_id) is None:
            return
        try:
            # Checked, not assumed: the charger may have come back here since.
            [owner] = await self._owners.owners([charger_id])
        except (StorageError, Unavailable) as exc:
            log.warning("charger %s: ownership not checked (%s); next renew will", charger_id, exc)
            return
        if owner is not None and owner.node != self._node.id:
            await csms.handed_over(charger_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _require(self) -> CentralSystem:
        if self._csms is None:
            raise RuntimeError("ChargerRegistry.attach(csms) first")
        return self._csms


async def sweep_offline(
    csms: CentralSystem, states: ChargerStateStore, registry: ChargerRegistry
) -> list[str]:
    """Record offline every charger stored as connected that no process holds (see the
    module docstring); answer their ids."""
    every = await states.list()
    if not every:
        return []
    swept = []
    found = await registry.live_owners([s.id for s in every])
    for state, owner in zip(every, found, strict=True):
        if not state.connected:
            if owner is not None:
                # Recorded offline by a process that lost the charger to another just as
                # its connection ended (the writes crossed): the holder's claim is the truth.
                await states.put(replace(state, connected=True))
            continue
        if owner is not None or csms.connection(state.id) is not None:
            continue  # held (here: a record that expired is claimed again at the renew)
        await csms.mark_offline(state.id, "the process holding it is gone", state)
        # A connection that came in while this one was recorded (it claimed the charger
        # after the check above) must not stay recorded offline: its claim is the truth.
        [now] = await registry.live_owners([state.id])
        if now is not None:
            fresh = await states.get(state.id)
            if fresh is not None and not fresh.connected:
                await states.put(replace(fresh, connected=True))
            continue
        swept.append(state.id)
    return swept


async def sweep_forever(
    csms: CentralSystem, states: ChargerStateStore, registry: ChargerRegistry, period: float
) -> None:
    """The ``chargers`` lease's job: a sweep at once, then every ``period`` seconds."""
    while True:
        try:
            swept = await sweep_offline(csms, states, registry)
        except (StorageError, Unavailable) as exc:
            log.warning("offline sweep: %s; trying again in %g s", exc, period)
        except Exception:
            log.exception("offline sweep failed; trying again in %g s", period)
        else:
            if swept:
                log.info("recorded %d chargers offline that no process holds", len(swept))
        await asyncio.sleep(period)
