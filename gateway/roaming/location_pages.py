"""The Locations Sender's pages, kept serialized in memory and current as chargers change.

Building a Location reads its record, every charger bound to it, their connection and
connector states, validates the result and writes it as JSON: milliseconds for a location
of a few chargers, and a page of ten of them per GET. An eMSP pulling the locations of a
large operator pays that on every page, although almost nothing changed since its last
pull. So each process keeps, per location, the JSON of its last build and the key its
page order and date filters use (the record's ``last_updated``, as the store orders it),
and serves pages from that: the cost of a page is a slice and the HTTP write.

What keeps it current (every input of a build):

- a location record written (the admin API, a status change, a charger bound) and a
  charger configured (its location or EVSEs) in this process: :meth:`LocationPages.dirty`
  and :meth:`LocationPages.charger_changed`, called by the
  :class:`~gateway.roaming.catalog.LocationService` once its write is done;
- a connector status change, a charger connecting or going offline in this process:
  the same, from the event bus;
- the same changes in another process sharing the store: that process broadcasts a
  notice ``{"type": "location", "ids": [...], "charger": ..., "to": ...}`` over the
  cluster's ``changes`` channel (the charger and its new location when one was
  configured), and this one marks the locations dirty and moves the charger;
- messages lost (the subscription's gap), and every ``resync`` seconds as a safety net:
  everything is read again.

A dirty location is built again (its record read again: its order key may have moved)
before any page is served, in a background task soon after it was marked, or by the
request that finds it so; a location never built yet is built when a page first shows
it. A page is therefore never older than the changes this process knows of, and never
older than a notice's trip for changes made elsewhere.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from gateway.domain.errors import Unavailable
from gateway.domain.models import Charger
from gateway.storage.base import Document, StorageError, Store
from ocpi.transport import PageRequest, RawJson, json_dumps
from ocpi.v221 import Location

log = logging.getLogger(__name__)

NOTICE = "location"
# Dirty locations are built again this long after the first mark (a burst is one build).
SETTLE_SECONDS = 0.05

# Builds a location from its record and the chargers bound to it.
Build = Callable[[dict[str, Any], list[Charger]], Awaitable[Location]]
# Tells the other processes (the cluster's broadcast): the notice.
Announce = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(slots=True)
class _Entry:
    key: tuple[datetime, str]  # (the record's last_updated, id): the page order
    json: RawJson | None  # None: not built yet


class LocationPages:
    def __init__(self, store: Store, build: Build, *, resync: float = 300.0) -> None:
        self._store = store
        self._build = build
        self._resync_every = resync
        self._entries: dict[str, _Entry] = {}
        self._order: list[tuple[datetime, str]] = []
        self._chargers: dict[str, set[str]] = {}  # location id -> charger ids
        self._location_of: dict[str, str] = {}  # charger id -> location id
        self._dirty: set[str] = set()
        # While a load reads the store: the chargers moved meanwhile (moved again after).
        self._moved: list[tuple[str, str | None]] | None = None
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self._build_lock = asyncio.Lock()
        self._generation = 0  # bumped by a full reload: builds begun before it are dropped
        self._announce: Announce | None = None
        self._own_id: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._settling = False
        self._resyncer: asyncio.Task[None] | None = None
        self.builds = 0  # locations built (for tests and diagnostics)

    # -- wiring -------------------------------------------------------------------

    def announce_with(self, announce: Announce, own_id: str) -> None:
        """Broadcast local changes to the other processes with ``announce`` (notices
        carry ``own_id`` as ``from``: this process's own are not acted on twice)."""
        self._announce = announce
        self._own_id = own_id

    def start(self) -> None:
        self._resyncer = asyncio.create_task(self._resync_loop(), name="location-pages")

    async def close(self) -> None:
        tasks = [t for t in (self._resyncer, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- changes ------------------------------------------------------------------

    def dirty(self, location_id: str) -> None:
        """``location_id`` changed here (its record, a charger's state): built again
        before the next page, and the other processes are told."""
        self._mark(location_id)
        self._tell({"ids": [location_id]})

    def charger_changed(self, before: Charger | None, after: Charger | None) -> None:
        """A charger was registered, replaced or removed here."""
        charger = after or before
        if charger is None:
            return
        old = before.location_id if before else None
        new = after.location_id if after else None
        self._bind(charger.id, new)
        ids = sorted({x for x in (old, new) if x is not None})
        for location_id in ids:
            self._mark(location_id)
        self._tell({"ids": ids, "charger": charger.id, "to": new})

    def location_of(self, charger_id: str) -> str | None:
        """The location a charger is bound to, as this process knows it (None before the
        first page: nothing is kept then)."""
        return self._location_of.get(charger_id)

    def on_notice(self, message: dict[str, Any]) -> None:
        """Another process changed locations (the cluster's ``location`` notice)."""
        ids, charger = message.get("ids"), message.get("charger")
        if not isinstance(ids, list) or message.get("from") == self._own_id:
            return
        if isinstance(charger, str):
            to = message.get("to")
            self._bind(charger, to if isinstance(to, str) else None)
        for location_id in ids:
            if isinstance(location_id, str):
                self._mark(location_id)

    def _mark(self, location_id: str) -> None:
        self._dirty.add(location_id)
        self._settle_soon()

    def reload(self) -> None:
        """Everything is read again at the next page (messages may have been lost)."""
        self._loaded = False
        self._generation += 1

    def _bind(self, charger_id: str, location_id: str | None) -> None:
        if self._moved is not None:
            self._moved.append((charger_id, location_id))
        old = self._location_of.pop(charger_id, None)
        if old is not None:
            self._chargers.get(old, set()).discard(charger_id)
        if location_id is not None:
            self._location_of[charger_id] = location_id
            self._chargers.setdefault(location_id, set()).add(charger_id)

    def _tell(self, notice: dict[str, Any]) -> None:
        announce = self._announce
        if announce is None:
            return

        async def tell() -> None:
            try:
                await announce({"type": NOTICE, "from": self._own_id} | notice)
            except Exception as exc:  # the others read everything at their next resync
                log.warning("locations %s: could not tell the other processes: %s", notice, exc)

        self._spawn(tell())

    # -- pages ----------------------------------------------------------------------

    async def page(self, page: PageRequest) -> tuple[list[RawJson], int]:
        """The page of locations as the store would list them (ordered by the record's
        ``last_updated`` then id; ``date_from`` inclusive, ``date_to`` exclusive), each
        as its JSON, and the total matching the date filters."""
        if not self._loaded:
            await self._ensure_loaded()
        # A build in progress took the dirty ones it builds: wait for it too.
        if self._dirty or self._build_lock.locked():
            await self._build_dirty()
        order = self._order
        lo = 0 if page.date_from is None else bisect.bisect_left(order, (page.date_from, ""))
        hi = len(order) if page.date_to is None else bisect.bisect_left(order, (page.date_to, ""))
        total = max(0, hi - lo)
        start = lo + page.offset
        keys = order[start : min(hi, start + page.limit)] if page.limit > 0 else []
        entries = self._entries
        jsons = [entries[k[1]].json for k in keys]
        missing = [k[1] for k, json in zip(keys, jsons, strict=True) if json is None]
        if missing:
            await self._build_many(missing)
            out = []
            for _, location_id in keys:
                entry = self._entries.get(location_id)
                if entry is not None and entry.json is not None:
                    out.append(entry.json)
            return out, total
        return cast(list[RawJson], jsons), total

    async def _ensure_loaded(self) -> None:
        while not self._loaded:
            async with self._load_lock:
                await self._load_unless_loaded()

    async def _load_unless_loaded(self) -> None:
        """Under the load lock: another page may have loaded while this one waited."""
        if self._loaded:
            return
        generation = self._generation
        # Changes from now on are marked again, and chargers moved are moved again after
        # the snapshot: the reads below may miss them.
        self._dirty = set()
        self._moved = []
        try:
            chargers = await self._store.chargers.list()
            docs = await self._all_locations()
        finally:
            moved, self._moved = self._moved, None
        if generation != self._generation:
            return  # another reload was asked meanwhile: loaded again at once
        self._chargers, self._location_of = {}, {}
        for charger in chargers:
            if charger.location_id is not None:
                self._bind(charger.id, charger.location_id)
        for charger_id, location_id in moved:
            self._bind(charger_id, location_id)
        old = self._entries
        self._entries = {}
        for doc in docs:
            key = (doc.last_updated, doc.key)
            kept = old.get(doc.key)
            # A build whose record did not move since is kept; the others wait.
            json = kept.json if kept is not None and kept.key == key else None
            self._entries[doc.key] = _Entry(key, json)
        self._order = sorted(e.key for e in self._entries.values())
        self._loaded = True

    async def chargers_at(self, location_id: str) -> list[Charger]:
        """The chargers bound to ``location_id``, by id: read one by one from the store,
        found through this process's index (kept as :meth:`page`'s is) rather than by
        reading every charger for each location built."""
        await self._ensure_loaded()
        return await self._bound(location_id)

    async def _bound(self, location_id: str) -> list[Charger]:
        chargers = []
        for charger_id in sorted(self._chargers.get(location_id, ())):
            charger = await self._store.chargers.get(charger_id)
            if charger is not None and charger.location_id == location_id:
                chargers.append(charger)
        return chargers

    async def _all_locations(self) -> list[Document]:
        docs: list[Document] = []
        while True:
            batch, total = await self._store.locations.list(offset=len(docs), limit=1000)
            docs.extend(batch)
            if not batch or len(docs) >= total:
                return docs

    async def _build_dirty(self) -> None:
        async with self._build_lock:
            dirty, self._dirty = self._dirty, set()
            if dirty:
                await self._build_many(sorted(dirty), dirty=True)

    async def _build_many(self, location_ids: Iterable[str], *, dirty: bool = False) -> None:
        """Build each location again. When one fails (the store is out), the dirty ones
        not built yet are dirty again: built at the next page or settle."""
        todo = list(location_ids)
        try:
            await self._build_each(todo)
        except BaseException:
            if dirty:
                self._dirty.update(todo)
            raise

    async def _build_each(self, todo: list[str]) -> None:
        generation = self._generation
        while todo:
            location_id = todo[0]
            doc = await self._store.locations.get(location_id)
            if generation != self._generation or not self._loaded:
                return
            if doc is None:
                self._remove(location_id)
                todo.pop(0)
                continue
            location = await self._build(doc.data, await self._bound(location_id))
            self.builds += 1
            if generation != self._generation or not self._loaded:
                return
            self._put(location_id, (doc.last_updated, doc.key), RawJson(json_dumps(location)))
            todo.pop(0)

    def _put(self, location_id: str, key: tuple[datetime, str], json: RawJson) -> None:
        entry = self._entries.get(location_id)
        if entry is not None and entry.key != key:
            self._remove(location_id)
            entry = None
        if entry is None:
            bisect.insort(self._order, key)
            self._entries[location_id] = _Entry(key, json)
        else:
            entry.json = json

    def _remove(self, location_id: str) -> None:
        entry = self._entries.pop(location_id, None)
        if entry is None:
            return
        i = bisect.bisect_left(self._order, entry.key)
        if i < len(self._order) and self._order[i] == entry.key:
            del self._order[i]

    # -- background -----------------------------------------------------------------

    def _settle_soon(self) -> None:
        if self._settling or not self._loaded:
            return
        self._settling = True

        async def settle() -> None:
            try:
                await asyncio.sleep(SETTLE_SECONDS)
            finally:
                self._settling = False
            await self._build_dirty()

        self._spawn(settle())

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self._resync_every)
            self.reload()
            # Builds are dropped too: a change whose notice was lost without a gap (a
            # status that moved an EVSE's last_updated only) lasts no longer than this.
            for entry in self._entries.values():
                entry.json = None

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except (StorageError, Unavailable) as exc:
                # The store is out: the locations stay dirty, built at the next page.
                log.warning("location pages: not built again yet: %s", exc)
            except Exception:
                log.exception("location pages")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
