"""The SQLite status history's two tables (``status_recent``, then ``status_history``, where
the recent entries move together): whatever the point at which entries move from one to
the other, the store answers as the contract says, checked against a plain list of the
entries appended."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.storage import codec, history
from gateway.storage.base import StatusEntry, StatusKind
from gateway.storage.sqlite import (
    SCHEMA_VERSION,
    SqliteStatusHistoryStore,
    _Database,
    open_sqlite_store,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


_entries = st.builds(
    lambda cid, minute, kind, evse, value: (
        StatusEntry(cid, at(minute), StatusKind.CONNECTOR, evse, 1, value)
        if kind is StatusKind.CONNECTOR
        else StatusEntry(cid, at(minute), kind)
    ),
    st.sampled_from(["A", "B"]),
    st.integers(0, 6),  # few minutes: many ties of ``at``, kept in append order
    st.sampled_from([StatusKind.CONNECTOR, StatusKind.CONNECTOR, StatusKind.ONLINE]),
    st.integers(1, 2),
    st.sampled_from(["Available", "Charging", "Faulted"]),
)
_operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(_entries, min_size=1, max_size=5)),
        st.tuples(st.just("purge"), st.integers(0, 7)),
    ),
    max_size=12,
)


@dataclass(frozen=True)
class Query:
    charger_id: str
    since: int | None
    until: int | None
    newest_first: bool
    offset: int
    limit: int


_queries = st.lists(
    st.builds(
        Query,
        st.sampled_from(["A", "B"]),
        st.one_of(st.none(), st.integers(0, 7)),
        st.one_of(st.none(), st.integers(0, 7)),
        st.booleans(),
        st.integers(0, 4),
        st.integers(1, 6),
    ),
    min_size=1,
    max_size=6,
)


class Oracle:
    """The contract on a list: (append number, entry)."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, StatusEntry]] = []
        self.appended = 0

    def append(self, entries: list[StatusEntry]) -> None:
        for entry in entries:
            self.entries.append((self.appended, entry))
            self.appended += 1

    def purge(self, before: datetime) -> int:
        newest: dict[tuple[str, str], tuple[datetime, int]] = {}
        for number, entry in self.entries:
            if entry.at < before:
                key = (entry.charger_id, entry.slot)
                newest[key] = max(newest.get(key, (entry.at, number)), (entry.at, number))
        kept = [
            (number, entry)
            for number, entry in self.entries
            if entry.at >= before or newest[(entry.charger_id, entry.slot)] == (entry.at, number)
        ]
        deleted = len(self.entries) - len(kept)
        self.entries = kept
        return deleted

    def list(self, query: Query) -> list[StatusEntry]:
        chosen = sorted(
            (
                (entry.at, number, entry)
                for number, entry in self.entries
                if entry.charger_id == query.charger_id
                and (query.since is None or entry.at >= at(query.since))
                and (query.until is None or entry.at < at(query.until))
            ),
            key=lambda item: (item[0], item[1]),
            reverse=query.newest_first,
        )
        return [entry for _, _, entry in chosen[query.offset : query.offset + query.limit]]


async def _answers(
    folder: Path,
    settle_at: int,
    operations: list[tuple[str, object]],
    queries: list[Query],
) -> tuple[list[object], list[object]]:
    store = await open_sqlite_store(folder / "gateway.sqlite3")
    try:
        store_ = SqliteStatusHistoryStore(cast(_Database, store.backend), settle_at=settle_at)
        oracle = Oracle()
        got: list[object] = []
        expected: list[object] = []
        for kind, argument in operations:
            if kind == "append":
                entries = cast(list[StatusEntry], argument)
                await store_.append(entries)
                oracle.append(entries)
            else:
                before = at(cast(int, argument))
                got.append(("purged", await store_.purge(before)))
                expected.append(("purged", oracle.purge(before)))
            for query in queries:
                got.append(
                    await store_.list(
                        query.charger_id,
                        since=None if query.since is None else at(query.since),
                        until=None if query.until is None else at(query.until),
                        newest_first=query.newest_first,
                        offset=query.offset,
                        limit=query.limit,
                    )
                )
                expected.append(oracle.list(query))
        return got, expected
    finally:
        await store.close()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([1, 2, 3, 5, 1000]), _operations, _queries)
def test_the_two_tables_answer_as_one_list(
    settle_at: int, operations: list[tuple[str, object]], queries: list[Query]
) -> None:
    """Appends and purges, the recent entries moved after every append (1), every few, or
    never (1000): every page of every query after every step is the oracle's, ties of
    ``at`` in append order across the move, purge's count and survivors included."""
    with TemporaryDirectory() as folder:
        got, expected = asyncio.run(_answers(Path(folder), settle_at, operations, queries))
    assert got == expected


def _tables(path: Path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        history = conn.execute("SELECT count(*) FROM status_history").fetchone()[0]
        recent = conn.execute("SELECT count(*) FROM status_recent").fetchone()[0]
        return int(history), int(recent)
    finally:
        conn.close()


async def test_entries_wait_in_the_recent_table_until_enough_have_come(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    store = await open_sqlite_store(path)
    try:
        store_ = SqliteStatusHistoryStore(cast(_Database, store.backend), settle_at=4)
        await store_.append([StatusEntry("A", at(0), StatusKind.ONLINE)] * 3)
        assert _tables(path) == (0, 3)
        await store_.append([StatusEntry("B", at(1), StatusKind.ONLINE)])
        assert _tables(path) == (4, 0)
        await store_.append([StatusEntry("A", at(2), StatusKind.OFFLINE)])
        assert _tables(path) == (4, 1)
        assert [e.kind for e in await store_.list("A")] == [StatusKind.ONLINE] * 3 + [
            StatusKind.OFFLINE
        ]
    finally:
        await store.close()


async def test_a_database_of_the_previous_version_keeps_its_append_order(tmp_path: Path) -> None:
    """The recent table's ids continue where the history's stopped: entries of the same
    instant written before and after the upgrade stay in the order they came."""
    path = tmp_path / "gateway.sqlite3"
    store = await open_sqlite_store(path)
    old = [StatusEntry("A", at(0), StatusKind.CONNECTOR, 1, 1, s) for s in ("Faulted", "Charging")]
    try:
        conn = sqlite3.connect(path)
        with conn:  # the previous version wrote status_history directly
            conn.executemany(
                "INSERT INTO status_history (charger_id, at, slot, data) VALUES (?, ?, ?, ?)",
                [
                    ("A", codec.time_key(e.at, "at"), e.slot, codec.dumps(history.encode(e)))
                    for e in old
                ],
            )
        conn.close()
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    with conn:  # back to the schema before status_recent
        conn.execute("DROP TABLE status_recent")
        conn.execute("DELETE FROM sqlite_sequence WHERE name = 'status_recent'")
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION - 1,))
    conn.close()

    store = await open_sqlite_store(path)
    try:
        new = StatusEntry("A", at(0), StatusKind.CONNECTOR, 1, 1, "Available")
        await store.status_history.append([new])
        assert await store.status_history.list("A") == [*old, new]
        settling = SqliteStatusHistoryStore(cast(_Database, store.backend), settle_at=1)
        await settling.append([StatusEntry("A", at(0), StatusKind.OFFLINE)])
        assert [e.status for e in await settling.list("A")] == [
            "Faulted",
            "Charging",
            "Available",
            None,
        ]
    finally:
        await store.close()
