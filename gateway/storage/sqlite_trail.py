"""The message trail on SQLite: a database file of its own beside the main one.

``gateway-trail.sqlite3`` next to ``gateway.sqlite3``, with its own writer and reader
threads (the same group commit as :mod:`gateway.storage.sqlite`): the trail's batches,
its pruning and its bulk never queue behind or in front of the writes a charger waits
for, and its commits skip the fsync (``synchronous=NORMAL``: safe against ``kill -9``,
the last commits may be lost on a power cut, which is acceptable for a diagnostic
trail and not for billing data). The main database's lock covers it (same data dir).

The entries are kept in segments (:class:`SqliteTrailStore`): tables ``entries_<n>``,
a column per field, of at most 10,000 entries spanning at most an hour each, listed in
``segments``. The entry's id is ``(at, seq)`` (``trail_codec``), ``seq`` the rowid,
numbered on from the newest segment's ``last_seq`` (never reused: the newest segment is
never dropped). Indexes of a closed segment: time (``at``, and the rowid SQLite appends
to every index), and per charger, partner and transaction id (partial: only the rows
that have one), each ordered by time as the admin query reads them. The newest segment
has none: they are built in one pass when it closes, and a query scans it (10,000 rows,
a few milliseconds to some tens).

Cost (tests/bench/README.md, the message trail): an append is one job of the writer
thread per batch; the rows are built there (:meth:`SqliteTrailStore.append_records`)
from the trail's plain tuples, with no JSON: the event loop only hands the batch over.
A frame without a body is inserted by a statement that binds only what a frame has
(Python's sqlite3 binds a None about ten times slower than a string: it goes through
the adapter lookup). Keeping indexes up to date entry by entry was two thirds of the
writer's cost (the charger index's inserts land all over its tree, nearly a page written
per entry); building them over a closed segment's sorted keys costs a fraction. A full
trail (the default million entries fill within hours) prunes as much as it gains:
dropping a whole segment costs no index delete per entry, which deleting the oldest rows
one by one did (a third of the trail's cost at its bound).

A trail file of an older gateway is converted when opened, in one transaction: one
table ``entries`` becomes the first segment; before that, one table ``trail`` of the
filtered columns and the entry's JSON is converted into it first.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from gateway.storage import codec, trail_codec
from gateway.storage.base import StorageError, TrailEntry, TrailRecord, trail_record
from gateway.storage.sqlite import _Worker, _write_batch, reader_after
from gateway.storage.sqlite_process import ProcessWriter
from gateway.storage.sqlite_rows import _connect
from gateway.storage.trail_rows import (  # the writing, shared with the writer process
    _CACHED_STATEMENTS,
    _COLUMNS,
    _EPOCH,
    _append,
    _segment_schema,
    _table,
    _tune,
)

# Segments: n, the entries it holds now, the oldest and newest ``at`` it ever held (a
# row deleted from it leaves them as bounds), and the highest seq it was given.
_SEGMENTS: Final = (
    "CREATE TABLE IF NOT EXISTS segments (n INTEGER PRIMARY KEY, rows INTEGER NOT NULL,"
    " min_at INTEGER, max_at INTEGER, last_seq INTEGER NOT NULL)"
)
# The trail of the gateway before segments: one table ``entries`` (its indexes are
# named after it), and before that one table ``trail`` of JSON lists (trail_codec's
# positions from 0), converted into ``entries`` first.
_LEGACY_ENTRIES: Final = (
    "CREATE TABLE entries (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL,"
    " protocol TEXT NOT NULL, direction TEXT NOT NULL, charger_id TEXT, partner TEXT,"
    " action TEXT, message_type TEXT, message_id TEXT, correlation_id TEXT, status TEXT,"
    " ocpi_status INTEGER, method TEXT, path TEXT, size INTEGER NOT NULL,"
    " transaction_id TEXT, body TEXT, truncated INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX entries_by_time ON entries (at)",
)
_CONVERT_V1: Final = (
    f"INSERT INTO entries (seq, {_COLUMNS}) SELECT seq, at,"
    + ", ".join(f"json_extract(data, '$[{i}]')" for i in range(1, 17))
    + " FROM trail ORDER BY seq",
    "DROP TABLE trail",
)


def trail_path(database: Path) -> Path:
    """Where the trail of the database at ``database`` lives."""
    return database.with_name(f"{database.stem}-trail{database.suffix}")


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def _create(conn: sqlite3.Connection) -> None:
    if _has_table(conn, "segments"):
        return
    conn.execute(_SEGMENTS)
    if _has_table(conn, "trail"):
        for statement in (*_LEGACY_ENTRIES, *_CONVERT_V1):
            conn.execute(statement)
    if _has_table(conn, "entries"):
        # The older single table becomes the first segment, indexes and all.
        conn.execute(f"ALTER TABLE entries RENAME TO {_table(1)}")
        for name in ("time", "charger", "partner", "transaction"):
            conn.execute(f"DROP INDEX IF EXISTS entries_by_{name}")
        conn.execute(
            "INSERT INTO segments (n, rows, min_at, max_at, last_seq)"
            f" SELECT 1, COUNT(*), MIN(at), MAX(at), COALESCE(MAX(seq), 0) FROM {_table(1)}"
        )
        for statement in _segment_schema(1)[1:]:
            conn.execute(statement)


def _segments(conn: sqlite3.Connection) -> list[tuple[int, int, int | None, int | None]]:
    """(n, rows, min_at, max_at) of every segment, oldest first."""
    return [
        (int(n), int(rows), min_at, max_at)
        for n, rows, min_at, max_at in conn.execute(
            "SELECT n, rows, min_at, max_at FROM segments ORDER BY n"
        )
    ]


def _drop_segment(conn: sqlite3.Connection, n: int) -> None:
    conn.execute(f"DROP TABLE {_table(n)}")
    conn.execute("DELETE FROM segments WHERE n = ?", (n,))


def _prune(conn: sqlite3.Connection, cutoff: int, keep: int, limit: int) -> int:
    """Whole segments first (a DROP TABLE: no index is touched row by row), the newest
    segment row by row (up to ``limit``); answer how many entries went."""
    segments = _segments(conn)
    if not segments:
        return 0
    *closed, (newest, newest_rows, _, _) = segments
    total = sum(rows for _, rows, _, _ in segments)
    deleted = 0
    for n, rows, _, high in closed:
        if high is None or high < cutoff or total > keep:
            _drop_segment(conn, n)
            deleted += rows
            total -= rows
        else:
            break
    if deleted or newest_rows == 0:
        return deleted
    table = _table(newest)
    removed = conn.execute(
        f"DELETE FROM {table} WHERE seq IN"
        f" (SELECT seq FROM {table} WHERE at < ? ORDER BY at, seq LIMIT ?)",
        (cutoff, limit),
    ).rowcount
    room = limit - removed
    excess = min(room, total - removed - keep)
    if excess > 0:
        removed += conn.execute(
            f"DELETE FROM {table} WHERE seq IN (SELECT seq FROM {table} ORDER BY at, seq LIMIT ?)",
            (excess,),
        ).rowcount
    if removed:
        conn.execute("UPDATE segments SET rows = rows - ? WHERE n = ?", (removed, newest))
    return int(removed)


class SqliteTrailStore:
    """The trail in segments: tables ``entries_<n>`` of at most :data:`SEGMENT_ROWS`
    entries spanning at most :data:`SEGMENT_SPAN`, each with its own indexes once
    closed, listed in ``segments``. Appends go to the newest; pruning drops whole segments (a closed
    segment goes when its newest entry is older than the cut-off, or while the trail
    holds more than it may keep), so that a full trail does not pay an index delete per
    entry (measured: a third of its cost); only the newest segment is pruned entry by
    entry. A query runs per segment and merges, newest or oldest segments first, until
    the page is full and no segment left can hold an entry before its last one."""

    def __init__(
        self, writer: _Worker, reader: _Worker, path: Path, *, writer_process: bool = False
    ) -> None:
        self._writer = writer
        self._reader = reader
        # Appends through a process of their own (gateway.storage.writer_child); the
        # writer thread keeps the rest (the schema, pruning).
        self._process = ProcessWriter("trail", path) if writer_process else None

    @classmethod
    async def open(cls, path: Path, *, writer_process: bool = False) -> SqliteTrailStore:
        """``writer_process``: appends are written by a process of their own
        (:mod:`gateway.storage.writer_child`) rather than the writer thread."""
        try:
            conn = await asyncio.to_thread(
                _connect,
                path,
                "NORMAL",
                read_only=False,
                cached_statements=_CACHED_STATEMENTS,
            )
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open {path}: {exc}") from exc
        writer = _Worker("gateway-trail-writer", conn, _write_batch)

        async def setup() -> None:
            await asyncio.to_thread(_tune, conn)
            await writer.run(_create)

        reader = await reader_after(writer, path, "NORMAL", "gateway-trail-reader", setup)
        return cls(writer, reader, path, writer_process=writer_process)

    async def close(self) -> None:
        if self._process is not None:
            await self._process.close()
        await self._writer.close()
        await self._reader.close()

    async def release_memory(self) -> None:
        """Both connections' page caches given back (``_Database.release_memory``)."""
        await asyncio.gather(self._writer.release_memory(), self._reader.release_memory())

    async def append_batch(self, entries: Sequence[TrailEntry]) -> None:
        if entries:
            await self.append_records(lambda: [trail_record(e) for e in entries])

    async def append_records(self, make: Callable[[], Iterable[TrailRecord]]) -> None:
        if self._process is not None:
            records = list(make())
            if records:
                await self._process.append(records)
            return

        def job(conn: sqlite3.Connection) -> None:
            _append(conn, make())  # the rows are built here, in the writer thread

        await self._writer.run(job)

    async def query(
        self,
        *,
        charger_id: str | None = None,
        partner: str | None = None,
        transaction_id: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: str | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> tuple[list[TrailEntry], str | None]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("charger_id", charger_id),
            ("partner", partner),
            ("transaction_id", transaction_id),
            ("action", action),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(trail_codec.clean(value))
        low: int | None = None
        high: int | None = None  # exclusive
        if since is not None:
            low = max(0, codec.time_key(since, "since"))
            where.append("at >= ?")
            params.append(low)
        if until is not None:
            high = max(0, codec.time_key(until, "until"))
            where.append("at < ?")
            params.append(high)
        cursor: tuple[int, int] | None = None
        if after is not None:
            cursor = trail_codec.cursor_parts(after)
            where.append("(at, seq) < (?, ?)" if newest_first else "(at, seq) > (?, ?)")
            params.extend(cursor)
        order = "DESC" if newest_first else "ASC"
        tail = (" WHERE " + " AND ".join(where) if where else "") + (
            f" ORDER BY at {order}, seq {order} LIMIT ?"
        )
        wanted = limit + 1

        def key(row: tuple[Any, ...]) -> tuple[int, int]:
            return (row[1], row[0])

        def job(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            conn.execute("BEGIN")  # one snapshot of the segments and their tables
            try:
                segments = []
                for n, rows, first, last in _segments(conn):
                    if rows == 0 or first is None or last is None:
                        continue
                    if (low is not None and last < low) or (high is not None and first >= high):
                        continue
                    if cursor is not None and (
                        first > cursor[0] if newest_first else last < cursor[0]
                    ):
                        continue
                    segments.append((n, first, last))
                # Oldest first: by their least time; newest first: by their greatest.
                segments.sort(key=lambda s: -s[2] if newest_first else s[1])
                found: list[tuple[Any, ...]] = []
                for n, first, last in segments:
                    if len(found) >= wanted:
                        bound = found[wanted - 1][1]
                        # Every entry of this segment (and of those after it in this
                        # order) sorts after the page's last: done.
                        if (last < bound) if newest_first else (first > bound):
                            break
                    sql = f"SELECT seq, {_COLUMNS} FROM {_table(n)}{tail}"
                    found += conn.execute(sql, (*params, wanted)).fetchall()
                    found.sort(key=key, reverse=newest_first)
                    del found[wanted:]
                return found
            finally:
                conn.execute("COMMIT")

        rows = await self._reader.run(job)
        page = [_entry(row) for row in rows]
        if len(page) > limit:
            page = page[:limit]
            return page, page[-1].id
        return page, None

    async def prune(self, *, before: datetime, keep: int, limit: int = 1000) -> int:
        if limit < 0 or keep < 0:
            raise ValueError("limit and keep must not be negative")
        cutoff = max(0, codec.time_key(before, "before"))

        def job(conn: sqlite3.Connection) -> int:
            return _prune(conn, cutoff, keep, limit)

        result: int = await self._writer.run(job)
        return result

    async def count(self) -> int:
        def job(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT COALESCE(SUM(rows), 0) FROM segments").fetchone()
            return int(row[0])

        result: int = await self._reader.run(job)
        return result


def _entry(row: tuple[Any, ...]) -> TrailEntry:
    seq, at, *fields = row
    entry = TrailEntry(_EPOCH + timedelta(microseconds=at), *fields)
    entry.truncated = bool(entry.truncated)
    entry.id = trail_codec.make_id(at, seq)
    return entry
