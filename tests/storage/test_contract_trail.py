"""The message trail's store contract (gateway.storage.base.TrailStore), on both backends."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.storage.base import Store, TrailEntry
from gateway.storage.codec import NaiveDatetimeError

from .conftest import StoreFactory
from .writer_backends import backend_with_writer_processes

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


backend = backend_with_writer_processes  # also SQLite with the appends by a process

def frame(
    seconds: float,
    charger: str | None = "CP-1",
    *,
    action: str = "Heartbeat",
    tx: str | None = None,
    partner: str | None = None,
    body: str | None = None,
    message_id: str | None = None,
    status: str | None = None,
) -> TrailEntry:
    return TrailEntry(
        at=T0 + timedelta(seconds=seconds),
        protocol="ocpp" if partner is None else "ocpi",
        direction="in",
        charger_id=charger,
        partner=partner,
        action=action,
        message_type="CALL",
        message_id=message_id or f"m{seconds}",
        status=status,
        size=42,
        transaction_id=tx,
        body=body,
    )


async def _all(store: Store, **filters: object) -> list[TrailEntry]:
    found: list[TrailEntry] = []
    cursor: str | None = None
    while True:
        page, cursor = await store.trail.query(after=cursor, limit=2, **filters)  # type: ignore[arg-type]
        found += page
        if cursor is None:
            return found


async def test_entries_round_trip_with_every_field(store: Store) -> None:
    entry = TrailEntry(
        at=T0,
        protocol="ocpi",
        direction="out",
        charger_id="CP-9",
        partner="emsp-1",
        action="sessions",
        message_type="response",
        message_id="req-1",
        correlation_id="corr-1",
        status="200",
        ocpi_status=1000,
        method="PUT",
        path="/ocpi/2.2.1/sessions/NL/ABC/1",
        size=1234,
        transaction_id="77",
        body='{"uid": "***1234", "text": "caf\u00e9 \\r\\n"}',
        truncated=True,
    )
    await store.trail.append_batch([entry])
    page, cursor = await store.trail.query()
    assert cursor is None
    assert len(page) == 1 and page[0].id
    assert replace(page[0], id="") == entry


async def test_query_orders_by_time_then_append_order(store: Store) -> None:
    await store.trail.append_batch([frame(5), frame(1), frame(1, action="Authorize")])
    await store.trail.append_batch([frame(3), frame(1, action="StatusNotification")])
    entries = await _all(store)
    assert [(e.at - T0).seconds for e in entries] == [1, 1, 1, 3, 5]
    assert [e.action for e in entries[:3]] == ["Heartbeat", "Authorize", "StatusNotification"]
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    newest, _ = await store.trail.query(newest_first=True, limit=10)
    assert [e.id for e in newest] == [e.id for e in reversed(entries)]


async def test_filters_combine(store: Store) -> None:
    await store.trail.append_batch(
        [
            frame(1, "CP-1", action="StartTransaction"),
            frame(2, "CP-1", action="MeterValues", tx="7"),
            frame(3, "CP-2", action="MeterValues", tx="7"),
            frame(4, None, action="sessions", partner="emsp"),
            frame(5, "CP-1", action="StopTransaction", tx="7"),
        ]
    )
    assert [e.message_id for e in await _all(store, charger_id="CP-1")] == ["m1", "m2", "m5"]
    assert [e.message_id for e in await _all(store, transaction_id="7")] == ["m2", "m3", "m5"]
    assert [e.message_id for e in await _all(store, transaction_id="7", charger_id="CP-1")] == [
        "m2",
        "m5",
    ]
    assert [e.message_id for e in await _all(store, action="MeterValues")] == ["m2", "m3"]
    assert [e.message_id for e in await _all(store, partner="emsp")] == ["m4"]
    assert await _all(store, charger_id="CP-3") == []
    assert await _all(store, partner="emsp", action="locations") == []


async def test_time_range_since_inclusive_until_exclusive(store: Store) -> None:
    await store.trail.append_batch([frame(s) for s in range(6)])
    found = await _all(store, since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=4))
    assert [e.message_id for e in found] == ["m2", "m3"]
    page, _ = await store.trail.query(
        since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=5), newest_first=True
    )
    assert [e.message_id for e in page] == ["m4", "m3", "m2"]


async def test_cursor_pages_both_ways_without_gaps_or_repeats(store: Store) -> None:
    await store.trail.append_batch([frame(s, tx="1" if s % 2 else None) for s in range(7)])
    page, cursor = await store.trail.query(limit=3)
    assert [e.message_id for e in page] == ["m0", "m1", "m2"] and cursor == page[-1].id
    page, cursor = await store.trail.query(limit=3, after=cursor)
    assert [e.message_id for e in page] == ["m3", "m4", "m5"]
    page, cursor = await store.trail.query(limit=3, after=cursor)
    assert [e.message_id for e in page] == ["m6"] and cursor is None
    # Exactly a full last page: no cursor.
    page, cursor = await store.trail.query(limit=3, transaction_id="1")
    assert [e.message_id for e in page] == ["m1", "m3", "m5"] and cursor is None
    back, cursor = await store.trail.query(limit=4, newest_first=True)
    assert [e.message_id for e in back] == ["m6", "m5", "m4", "m3"]
    back, cursor = await store.trail.query(limit=4, newest_first=True, after=cursor)
    assert [e.message_id for e in back] == ["m2", "m1", "m0"] and cursor is None


async def test_bad_arguments_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="cursor"):
        await store.trail.query(after="not-a-cursor")
    with pytest.raises(ValueError, match="limit"):
        await store.trail.query(limit=0)
    with pytest.raises(ValueError, match="1970"):
        await store.trail.append_batch([replace(frame(0), at=datetime(1960, 1, 1, tzinfo=UTC))])
    with pytest.raises(NaiveDatetimeError):
        await store.trail.append_batch([replace(frame(0), at=datetime(2026, 1, 1))])
    assert await store.trail.count() == 0


async def test_prune_by_age_then_by_count_and_indexes_follow(store: Store) -> None:
    await store.trail.append_batch(
        [frame(s, "CP-1" if s < 5 else "CP-2", tx=str(s % 2)) for s in range(10)]
    )
    assert await store.trail.count() == 10
    # Older than T0+3 s: 3 entries.
    assert await store.trail.prune(before=T0 + timedelta(seconds=3), keep=100) == 3
    assert [e.message_id for e in await _all(store)][:1] == ["m3"]
    # Keep 4: the 3 oldest of the 7 left go, at most `limit` per call.
    assert await store.trail.prune(before=T0, keep=4, limit=2) == 2
    assert await store.trail.prune(before=T0, keep=4, limit=2) == 1
    assert await store.trail.prune(before=T0, keep=4, limit=2) == 0
    assert [e.message_id for e in await _all(store)] == ["m6", "m7", "m8", "m9"]
    assert await store.trail.count() == 4
    # The per-charger and per-transaction indexes lost the pruned entries as well.
    assert await _all(store, charger_id="CP-1") == []
    assert [e.message_id for e in await _all(store, transaction_id="1")] == ["m7", "m9"]


async def test_a_reopened_store_keeps_the_trail_and_continues_its_order(
    store_factory: StoreFactory,
) -> None:
    first = await store_factory()
    await first.trail.append_batch([frame(1)])
    await first.close()
    again = await store_factory()
    await again.trail.append_batch([frame(1, action="Authorize")])
    entries = await _all(again)
    assert [e.action for e in entries] == ["Heartbeat", "Authorize"]


async def test_text_with_control_characters_and_non_ascii_round_trips(store: Store) -> None:
    body = '["2","x","DataTransfer",{"data":"line\\r\\nbreak \u2028 \u00e9 \U0001f600"}]'
    await store.trail.append_batch([frame(0, "CP-\u00e9", body=body)])
    page, _ = await store.trail.query(charger_id="CP-\u00e9")
    assert page[0].body == body


async def test_lone_surrogates_are_kept_as_visible_escapes(store: Store) -> None:
    # A message id or transaction id parsed from a frame's JSON may hold one; the rest of
    # the batch must not be lost for it.
    odd = replace(frame(0, tx="t\ud800"), message_id="m\udfff", body="x\ud800")
    await store.trail.append_batch([odd, frame(1)])
    page, _ = await store.trail.query(transaction_id="t\ud800")
    assert [(e.transaction_id, e.message_id, e.body) for e in page] == [
        ("t\\ud800", "m\\udfff", "x\\ud800")
    ]
    assert await store.trail.count() == 2


async def test_append_order_holds_across_kinds_of_entries_at_one_time(store: Store) -> None:
    # Frames without a body, OCPI exchanges and frames with a body are written by
    # different statements on SQLite: the append order must hold across them.
    kinds = [
        frame(0, message_id="a"),
        frame(0, None, partner="emsp", message_id="b"),
        frame(0, body='[2,"c","Heartbeat",{}]', message_id="c"),
        frame(0, message_id="d"),
        frame(0, message_id="e", status="NotImplemented"),
        frame(0, None, partner="emsp", message_id="f"),
    ]
    await store.trail.append_batch(kinds)
    page, _ = await store.trail.query(limit=10)
    assert [replace(e, id="") for e in page] == kinds
    newest, _ = await store.trail.query(limit=10, newest_first=True)
    assert [e.message_id for e in newest] == ["f", "e", "d", "c", "b", "a"]


async def test_a_large_batch_keeps_every_entry_in_order(store: Store) -> None:
    # More entries than one multi-row statement holds (SQLite), of both kinds, one with
    # a lone surrogate late in the batch (the batch is written again, cleaned).
    entries = [
        frame(i // 7, "CP-1" if i % 3 else None, partner=None if i % 3 else "emsp")
        for i in range(450)
    ]
    entries = [replace(e, message_id=f"n{i}") for i, e in enumerate(entries)]
    entries[430] = replace(entries[430], message_id="odd\ud800")
    await store.trail.append_batch(entries)
    assert await store.trail.count() == 450
    found = await _all(store)
    assert [e.message_id for e in found] == [
        f"n{i}" if i != 430 else "odd\\ud800" for i in range(450)
    ]


async def test_long_runs_of_each_kind_keep_every_entry_and_field(store: Store) -> None:
    # On SQLite a run of one kind of entry goes in by statements of several rows each
    # (32, 16, ... 1): runs of lengths that use every size, and one of a single entry,
    # must come back whole and in order.
    entries: list[TrailEntry] = []
    for length, kind in ((100, "frame"), (63, "ocpi"), (1, "frame"), (37, "body"), (2, "ocpi")):
        for _ in range(length):
            i = len(entries)
            entries.append(
                frame(
                    i / 10,
                    None if kind == "ocpi" else f"CP-{i % 5}",
                    partner="emsp" if kind == "ocpi" else None,
                    body=f'[2,"b{i}","Heartbeat",{{}}]' if kind == "body" else None,
                    message_id=f"e{i}",
                    tx=f"tx{i}" if kind == "body" else None,
                )
            )
    await store.trail.append_batch(entries)
    assert await store.trail.count() == len(entries)
    found = await _all(store)
    assert [replace(e, id="") for e in found] == entries
    assert [e.message_id for e in await _all(store, charger_id="CP-3")] == [
        e.message_id for e in entries if e.charger_id == "CP-3"
    ]
