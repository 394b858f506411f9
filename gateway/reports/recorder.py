"""The status history's writer: a subscriber of the domain event bus that turns
connection and connector status events into :class:`StatusEntry` records, queued in
memory and written in batches by a background task (never on the charger's path: the
subscriber only appends to a list). Retention: :func:`purge_forever`, once per cluster.

An entry is stamped with the gateway's clock when the event is handled (a charger's
own clock may be wrong). Entries still queued when the process dies are lost (at most
``interval`` seconds of them); the offline sweep records a dead process's chargers
offline afterwards, so a report sees them down from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from gateway.domain.clock import Clock
from gateway.domain.events import (
    ChargerBooted,
    ChargerOffline,
    ChargerOnline,
    ConnectorStatusChanged,
    Event,
)
from gateway.storage.base import StatusEntry, StatusHistoryStore, StatusKind, StorageError

log = logging.getLogger(__name__)

# Entries kept in memory while the store is away; beyond, the oldest are dropped (logged).
MAX_QUEUED = 100_000


class StatusRecorder:
    def __init__(
        self,
        store: StatusHistoryStore,
        clock: Clock,
        *,
        interval: float = 1.0,
        max_batch: int = 1000,
    ) -> None:
        self._store = store
        self._clock = clock
        self._interval = interval
        self._max_batch = max_batch
        self._queue: list[StatusEntry] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def entry(self, event: Event) -> StatusEntry | None:
        now = self._clock.now()
        match event:
            # The most frequent first: cases are tried in turn.
            case ConnectorStatusChanged(state=c):
                return StatusEntry(
                    c.charger_id,
                    now,
                    StatusKind.CONNECTOR,
                    c.evse_id,
                    c.connector_id,
                    c.status.value,
                    c.error_code,
                    c.info[:200] if c.info else None,
                )
            case ChargerOnline(charger_id=cid):
                return StatusEntry(cid, now, StatusKind.ONLINE)
            case ChargerOffline(charger_id=cid, reason=reason):
                return StatusEntry(cid, now, StatusKind.OFFLINE, detail=reason[:200])
            case ChargerBooted(state=state):
                return StatusEntry(state.id, now, StatusKind.BOOT)
        return None

    # The kinds entry() records (the bus gives record() no other).
    EVENTS = (ChargerOnline, ChargerOffline, ChargerBooted, ConnectorStatusChanged)

    def record(self, event: Event) -> None:
        """The bus's listener: queues the entry, never waits (the store is written in
        batches by the recorder's task)."""
        entry = self.entry(event)
        if entry is None:
            return
        self._queue.append(entry)
        if len(self._queue) > MAX_QUEUED:
            del self._queue[0]
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("status history: %d entries dropped (store away)", self.dropped)
        if len(self._queue) >= self._max_batch:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything queued so far (in batches); StorageError leaves it queued. An
        entry the store refuses (ValueError: a connector id no report could hold, from a
        charger's odd but schema-valid frame) is dropped with a warning, the others kept."""
        async with self._lock:
            while self._queue:
                batch = self._queue[: self._max_batch]
                try:
                    await self._store.append(batch)
                except ValueError:
                    batch = await self._append_one_by_one(batch)
                del self._queue[: len(batch)]

    async def _append_one_by_one(self, batch: list[StatusEntry]) -> list[StatusEntry]:
        for entry in batch:
            try:
                await self._store.append([entry])
            except ValueError as exc:
                self.dropped += 1
                log.warning(
                    "status history: entry of charger %s dropped: %s", entry.charger_id, exc
                )
        return batch

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="status-history")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except StorageError as exc:
                log.warning("status history: write failed, kept for the next try: %s", exc)

    async def close(self, bound: float = 5.0) -> None:
        """Stop the writer and write what is queued (bounded: a store that is away then
        loses those entries, with one warning)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            async with asyncio.timeout(bound):
                await self.flush()
        except (StorageError, TimeoutError) as exc:
            log.warning(
                "status history: %d entries not written at shutdown: %s", len(self._queue), exc
            )


async def purge_forever(
    store: StatusHistoryStore, clock: Clock, retention_days: float, every: float = 3600.0
) -> None:
    """Delete history older than ``retention_days`` now and every ``every`` seconds
    (each charger's state at the cutoff is kept: see ``StatusHistoryStore.purge``)."""
    while True:
        try:
            deleted = await store.purge(clock.now() - timedelta(days=retention_days))
            if deleted:
                log.info(
                    "status history: %d entries older than %g days deleted", deleted, retention_days
                )
        except StorageError as exc:
            log.warning("status history: purge failed, tried again later: %s", exc)
        await asyncio.sleep(every)
