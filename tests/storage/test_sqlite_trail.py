"""The SQLite trail's own file: its segments (rotated by size and time span, queried
and merged in order, pruned whole), and the trails written by older gateways (one table
of JSON entries; one table of columns) converted when the store opens them, ids and
fields kept."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.storage import trail_rows
from gateway.storage.base import Store, TrailEntry
from gateway.storage.sqlite import open_sqlite_store
from gateway.storage.sqlite_trail import trail_path

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
US = int(T0.timestamp()) * 1_000_000


def _old_trail(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE trail (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, charger_id TEXT,"
        " partner TEXT, transaction_id TEXT, action TEXT, data TEXT NOT NULL)"
    )
    conn.execute("CREATE INDEX trail_by_time ON trail (at, seq)")
    rows = [
        (7, US, "CP-1", None, "77", "MeterValues",
         [US, "ocpp", "in", "CP-1", None, "MeterValues", "CALL", "m1", None, None, None,
          None, None, 120, "77", '[2,"m1","MeterValues",{}]', False]),
        (9, US + 5, None, "emsp", None, "sessions",
         [US + 5, "ocpi", "out", None, "emsp", "sessions", "response", "r1", "c1", "200",
          1000, "PUT", "/ocpi/2.2.1/sessions/NL/ABC/1", 42, None, "caf\u00e9", True]),
    ]  # fmt: skip
    conn.executemany(
        "INSERT INTO trail VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(*row[:6], json.dumps(row[6], ensure_ascii=False)) for row in rows],
    )
    conn.commit()
    conn.close()


async def test_an_older_trail_file_is_converted(tmp_path: Path) -> None:
    database = tmp_path / "gateway.sqlite3"
    _old_trail(trail_path(database))
    store = await open_sqlite_store(database)
    try:
        page, cursor = await store.trail.query()
        assert cursor is None
        assert [e.id for e in page] == [f"{US:016d}{7:016d}", f"{US + 5:016d}{9:016d}"]
        meter, session = page
        assert (meter.at, meter.charger_id, meter.transaction_id, meter.size) == (
            T0, "CP-1", "77", 120,
        )  # fmt: skip
        assert (meter.body, meter.truncated, meter.partner) == (
            '[2,"m1","MeterValues",{}]', False, None,
        )  # fmt: skip
        assert (session.partner, session.ocpi_status, session.method, session.body) == (
            "emsp", 1000, "PUT", "caf\u00e9",
        )  # fmt: skip
        assert session.truncated is True and session.correlation_id == "c1"
        by_tx, _ = await store.trail.query(transaction_id="77")
        assert [e.message_id for e in by_tx] == ["m1"]
        # New entries follow the converted ones.
        await store.trail.append_batch([meter])
        assert await store.trail.count() == 3
    finally:
        await store.close()
    conn = sqlite3.connect(trail_path(database))
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert {"trail", "entries"}.isdisjoint(tables) and "entries_1" in tables


def _frame(seconds: float, charger: str = "CP-1", action: str = "Heartbeat") -> TrailEntry:
    return TrailEntry(
        at=T0 + timedelta(seconds=seconds),
        protocol="ocpp",
        direction="in",
        charger_id=charger,
        action=action,
        message_type="CALL",
        message_id=f"m{seconds}-{charger}",
        size=10,
    )


def _tables(database: Path) -> set[str]:
    conn = sqlite3.connect(trail_path(database))
    try:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()


@pytest.fixture
async def segmented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Path, Store]]:
    """A store whose trail segments close at three entries."""
    monkeypatch.setattr(trail_rows, "SEGMENT_ROWS", 3)  # read by _append, in the thread
    database = tmp_path / "gateway.sqlite3"
    store = await open_sqlite_store(database)
    try:
        yield database, store
    finally:
        await store.close()


async def _walk(store: Store, **filters: Any) -> list[TrailEntry]:
    found: list[TrailEntry] = []
    cursor: str | None = None
    while True:
        page, cursor = await store.trail.query(after=cursor, limit=3, **filters)
        found += page
        if cursor is None:
            return found


async def test_segments_rotate_by_size_and_span_and_queries_merge_them(
    segmented: tuple[Path, Store],
) -> None:
    database, store = segmented
    # Batches out of time order, times repeating across segments, and one batch
    # more than an hour after the one before (a new segment though the last is not
    # full): segments of 3, 5 (the second's first batch found it empty), 1 and 2.
    batches = [
        [_frame(5), _frame(1, "CP-2"), _frame(3)],
        [_frame(2), _frame(1, "CP-2", "Authorize")],
        [_frame(4, "CP-2"), _frame(6), _frame(0)],
        [_frame(3, action="StatusNotification")],
        [_frame(7200), _frame(7201, "CP-2")],
    ]
    expected: list[TrailEntry] = []
    for batch in batches:
        await store.trail.append_batch(batch)
        expected += batch
    # Append order breaks ties of time: a stable sort of what was appended.
    expected.sort(key=lambda e: e.at)
    assert await store.trail.count() == len(expected)
    tables = _tables(database)
    assert {"entries_1", "entries_2", "entries_3", "entries_4"} <= tables
    # Closed segments have all their indexes, the newest none (a query scans it).
    assert "entries_3_by_charger" in tables and "entries_1_by_transaction" in tables
    assert "entries_3_by_time" in tables and "entries_4_by_time" not in tables

    def ids(entries: list[TrailEntry]) -> list[str | None]:
        return [e.message_id for e in entries]

    assert ids(await _walk(store)) == ids(expected)
    assert ids(await _walk(store, newest_first=True)) == ids(expected)[::-1]
    for charger in ("CP-1", "CP-2"):
        mine = [e for e in expected if e.charger_id == charger]
        assert ids(await _walk(store, charger_id=charger)) == ids(mine)
        assert ids(await _walk(store, charger_id=charger, newest_first=True)) == ids(mine[::-1])
    window = [e for e in expected if T0 + timedelta(seconds=2) <= e.at < T0 + timedelta(days=2)]
    assert ids(
        await _walk(store, since=T0 + timedelta(seconds=2), until=T0 + timedelta(days=2))
    ) == ids(window)
    found = await _walk(store)
    assert [e.id for e in found] == sorted(e.id for e in found)
    assert len({e.id for e in found}) == len(found)


async def test_pruning_drops_whole_closed_segments_and_ids_are_never_reused(
    segmented: tuple[Path, Store],
) -> None:
    database, store = segmented
    for start in range(0, 9, 3):  # three segments of three
        await store.trail.append_batch([_frame(s) for s in range(start, start + 3)])
    await store.trail.append_batch([_frame(9)])  # the fourth, newest
    assert {"entries_1", "entries_4"} <= _tables(database)
    # Older than T0+4 s: the first segment (newest entry 2 s) goes whole; the second
    # (3 to 5 s) holds a newer entry and stays, entry 3 s with it.
    assert await store.trail.prune(before=T0 + timedelta(seconds=4), keep=100) == 3
    assert [e.message_id for e in await _walk(store)][:1] == ["m3-CP-1"]
    assert "entries_1" not in _tables(database)
    # Keep 5 of 7: a whole segment goes (4 are left: at most `keep`), in one call
    # however small the limit.
    assert await store.trail.prune(before=T0, keep=5, limit=1) == 3
    assert await store.trail.prune(before=T0, keep=5, limit=1) == 0
    assert await store.trail.count() == 4
    # Keep 1: the last closed segment goes whole, the newest (one entry) stays.
    assert await store.trail.prune(before=T0, keep=1, limit=2) == 3
    await store.trail.append_batch([_frame(10), _frame(11)])  # into the newest
    assert await store.trail.count() == 3
    # Only the newest segment is left: pruned entry by entry, within the limit.
    assert await store.trail.prune(before=T0, keep=1, limit=1) == 1
    assert await store.trail.prune(before=T0, keep=1, limit=5) == 1
    assert await store.trail.prune(before=T0, keep=1, limit=5) == 0
    remaining = await _walk(store)
    assert [e.message_id for e in remaining] == ["m11-CP-1"]
    await store.trail.append_batch([_frame(11)])
    after = await _walk(store)
    assert len(after) == 2 and after[0].id < after[1].id
    assert after[1].id not in {e.id for e in remaining}
    await store.close()  # closing twice (the fixture's) is harmless
    # Reopened: the numbering goes on after the newest segment's last seq.
    again = await open_sqlite_store(database)
    try:
        await again.trail.append_batch([_frame(12)])
        seqs = [int(e.id[16:]) for e in await _walk(again)]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3
        assert seqs[-1] > seqs[-2]
    finally:
        await again.close()


async def test_a_single_table_trail_becomes_the_first_segment(tmp_path: Path) -> None:
    database = tmp_path / "gateway.sqlite3"
    conn = sqlite3.connect(trail_path(database))
    conn.executescript(
        "CREATE TABLE entries (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL,"
        " protocol TEXT NOT NULL, direction TEXT NOT NULL, charger_id TEXT, partner TEXT,"
        " action TEXT, message_type TEXT, message_id TEXT, correlation_id TEXT, status TEXT,"
        " ocpi_status INTEGER, method TEXT, path TEXT, size INTEGER NOT NULL,"
        " transaction_id TEXT, body TEXT, truncated INTEGER NOT NULL DEFAULT 0);"
        "CREATE INDEX entries_by_time ON entries (at);"
        "CREATE INDEX entries_by_charger ON entries (charger_id, at)"
        " WHERE charger_id IS NOT NULL;"
    )
    conn.executemany(
        "INSERT INTO entries (seq, at, protocol, direction, charger_id, action, size)"
        " VALUES (?, ?, 'ocpp', 'in', ?, 'Heartbeat', 5)",
        [(40, US, "CP-1"), (41, US + 1, "CP-2"), (42, US + 2, "CP-1")],
    )
    conn.commit()
    conn.close()
    store = await open_sqlite_store(database)
    try:
        assert await store.trail.count() == 3
        mine, _ = await store.trail.query(charger_id="CP-1")
        assert [int(e.id[16:]) for e in mine] == [40, 42]
        await store.trail.append_batch([_frame(9)])
        page, _ = await store.trail.query(newest_first=True, limit=1)
        assert int(page[0].id[16:]) == 43
    finally:
        await store.close()
    tables = _tables(database)
    assert "entries" not in tables and "entries_by_charger" not in tables
    assert "entries_1_by_charger" in tables
