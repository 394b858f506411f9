"""Reports over the store: reads page by page, one charger at a time, and yields each
group's rows once the group is complete (see the package docstring)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from gateway.domain.models import Charger, MeterReading, Transaction
from gateway.reports.compute import (
    Aggregate,
    By,
    GroupKey,
    HistoryFolder,
    Kind,
    Row,
    initial_state,
)
from gateway.reports.periods import BucketIndex
from gateway.reports.request import ReportRequest
from gateway.storage.base import Document, StatusEntry, StatusKind, Store

# Reads per store call: transactions (each with its readings and CDR fetched at once),
# status history entries.
TX_PAGE = 200
HISTORY_PAGE = 2000
# How long before ``from`` a session may have started and still have charging or parking
# time in the range (longer ones count from this far back only).
LOOKBACK = timedelta(days=7)

Progress = Callable[[int, int], None]


def _location(charger: Charger) -> str:
    return charger.location_id or ""


class _Keys:
    def __init__(self, by: By, charger: Charger) -> None:
        self.by = by
        self.charger = charger
        self.uids = {e.ocpp_id: e.evse_uid for e in charger.evses}

    def of(self, evse: int, partner: str = "") -> GroupKey:
        if self.by is By.CHARGER:
            return (self.charger.id,)
        if self.by is By.EVSE:
            return (self.charger.id, str(evse), self.uids.get(evse, ""))
        if self.by is By.LOCATION:
            return (_location(self.charger),)
        return (partner,)


def evse_ids(charger: Charger) -> tuple[int, ...]:
    """The charger's EVSEs as configured (one when none is)."""
    return tuple(e.ocpp_id for e in charger.evses) or (1,)


async def report_rows(
    store: Store, request: ReportRequest, now: datetime, progress: Progress | None = None
) -> AsyncIterator[Row]:
    """The report's rows: groups in order (charger id; EVSE; location id; partner id),
    buckets in time order within each. ``progress(done, total)`` after each charger."""
    agg = Aggregate(request.kind, request.by, BucketIndex(list(request.buckets)), now)
    chargers = await store.chargers.list()
    if request.by is By.LOCATION:
        chargers.sort(key=lambda c: (_location(c), c.id))
    total = len(chargers)
    for n, charger in enumerate(chargers):
        keys = _Keys(request.by, charger)
        own: list[GroupKey] = []
        if request.by is not By.PARTNER:
            for evse in evse_ids(charger):
                key = keys.of(evse)
                agg.group(key).evses += 1
                if key not in own:
                    own.append(key)
        if request.kind in (Kind.USAGE, Kind.REVENUE):
            await _transactions(store, request, agg, keys)
        else:
            await _history(store, request, agg, keys)
        if progress is not None:
            progress(n + 1, total)
        if request.by in (By.CHARGER, By.EVSE):
            # Keys met in the data only (an EVSE not configured) come after the others.
            own += sorted(k for k in agg.groups if k not in own)
            for key in own:
                for row in agg.rows(key):
                    yield row
                agg.groups.pop(key, None)
        elif request.by is By.LOCATION:
            # Chargers come by location: a location is complete at its last charger.
            following = chargers[n + 1] if n + 1 < total else None
            if following is None or _location(following) != _location(charger):
                for key in list(agg.groups):
                    for row in agg.rows(key):
                        yield row
                agg.groups.clear()
    if request.by is By.PARTNER:
        for key in sorted(agg.groups):
            for row in agg.rows(key):
                yield row


async def _transactions(store: Store, request: ReportRequest, agg: Aggregate, keys: _Keys) -> None:
    usage = request.kind is Kind.USAGE
    since = request.start - LOOKBACK if usage else request.start
    want_cdrs = request.kind is Kind.REVENUE or request.by is By.PARTNER
    seen: set[str] = set()
    offset = 0
    while True:
        page = await store.transactions.list(
            charger_id=keys.charger.id, since=since, until=request.end, limit=TX_PAGE, offset=offset
        )
        offset += len(page)
        # Offsets shift by one when a transaction starts while we read (it comes first,
        # newest first): a transaction seen twice is skipped, none can be missed.
        fresh = [tx for tx in page if tx.id not in seen]
        seen.update(tx.id for tx in fresh)
        readings: Sequence[list[MeterReading] | None] = [None] * len(fresh)
        cdrs: Sequence[Document | None] = [None] * len(fresh)
        if usage:
            readings = await asyncio.gather(*(store.transactions.readings(t.id) for t in fresh))
        if want_cdrs:
            cdrs = await asyncio.gather(*(store.cdrs.get(t.id) for t in fresh))
        for tx, tx_readings, cdr in zip(fresh, readings, cdrs, strict=True):
            partner = ""
            if request.by is By.PARTNER:
                partner = await _partner(store, tx, cdr)
            key = keys.of(tx.evse_id, partner)
            if usage:
                agg.add_transaction(key, tx, tx_readings or ())
            elif cdr is not None and "cdr" in cdr.data:
                agg.add_cdr(key, _cdr_json(cdr))
        if len(page) < TX_PAGE:
            return


async def _partner(store: Store, tx: Transaction, cdr: Document | None) -> str:
    """The roaming partner of a transaction: its CDR's, else its session's (a session's
    id is its transaction's unless a START_SESSION chose it; those are found once their
    CDR exists); "" for a transaction no partner is part of."""
    if cdr is not None and cdr.owner:
        return str(cdr.owner)
    session = await store.sessions.get(tx.id)
    if session is not None and isinstance(session.data.get("partner_id"), str):
        return str(session.data["partner_id"])
    return ""


def _cdr_json(doc: Document) -> dict[str, Any]:
    raw = doc.data["cdr"]
    if isinstance(raw, str):
        parsed: dict[str, Any] = json.loads(raw, parse_float=Decimal)
        return parsed
    return dict(raw)


async def _history(store: Store, request: ReportRequest, agg: Aggregate, keys: _Keys) -> None:
    history = store.status_history
    cid = keys.charger.id
    before: list[StatusEntry] = []
    offset = 0
    while True:  # back from ``from`` to the newest connection entry: the state then
        page = await history.list(
            cid, until=request.start, newest_first=True, offset=offset, limit=HISTORY_PAGE
        )
        offset += len(page)
        stop = next((i for i, e in enumerate(page) if e.kind is not StatusKind.CONNECTOR), None)
        before += page if stop is None else page[: stop + 1]
        if stop is not None or len(page) < HISTORY_PAGE:
            break
    folder = HistoryFolder(
        agg, evse_ids(keys.charger), keys.of, initial_state(before), request.start
    )
    offset = 0
    while True:
        page = await history.list(
            cid, since=request.start, until=request.end, offset=offset, limit=HISTORY_PAGE
        )
        offset += len(page)
        for entry in page:
            folder.feed(entry)
        if len(page) < HISTORY_PAGE:
            break
    folder.finish(request.end)
