"""The message trail on SQLite: a database file of its own beside the main one.

``gateway-trail.sqlite3`` next to ``gateway.sqlite3``, with its own writer and reader
threads (the same group commit as :mod:`gateway.storage.sqlite`): the trail's batches,
its pruning and its bulk never queue behind or in front of the writes a charger waits
for, and its commits skip the fsync (``synchronous=NORMAL``: safe against ``kill -9``,
the last commits may be lost on a power cut, which is acceptable for a diagnostic
trail and not for billing data). The main database's lock covers it (same data dir).

One table, ``entries``, a column per field; the entry's id is ``(at, seq)``
(``trail_codec``), ``seq`` the rowid (not AUTOINCREMENT, which costs a write per insert:
a rowid can only come back once the newest entries were pruned too, and then with a
later ``at``, so ids never repeat). Indexes: time (``at``, and the rowid SQLite appends
to every index), and per charger, partner and transaction id (partial: only the rows
that have one), each ordered by time as the admin query reads them.

Cost (tests/bench/README.md, the message trail): an append is one job of the writer
thread per batch; the rows are built there (:meth:`SqliteTrailStore.append_records`)
from the trail's plain tuples, with no JSON: the event loop only hands the batch over.
A frame without a body is inserted by a statement that binds only what a frame has
(Python's sqlite3 binds a None about ten times slower than a string: it goes through
the adapter lookup). The charger index is most of the remaining cost (its inserts land
all over the tree); a batch is one transaction, so a charger's rows share pages.

A trail file of an older gateway (one table ``trail``: the filtered columns and the
entry's JSON) is converted when opened, in one transaction.
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
from gateway.storage.sqlite import _connect, _read_batch, _Worker, _write_batch

_COLUMNS: Final = (
    "at, protocol, direction, charger_id, partner, action, message_type, message_id,"
    " correlation_id, status, ocpi_status, method, path, size, transaction_id, body,"
    " truncated"
)
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL,"
    " protocol TEXT NOT NULL, direction TEXT NOT NULL, charger_id TEXT, partner TEXT,"
    " action TEXT, message_type TEXT, message_id TEXT, correlation_id TEXT, status TEXT,"
    " ocpi_status INTEGER, method TEXT, path TEXT, size INTEGER NOT NULL,"
    " transaction_id TEXT, body TEXT, truncated INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS entries_by_time ON entries (at)",
    "CREATE INDEX IF NOT EXISTS entries_by_charger ON entries (charger_id, at)"
    " WHERE charger_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS entries_by_partner ON entries (partner, at)"
    " WHERE partner IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS entries_by_transaction ON entries (transaction_id, at)"
    " WHERE transaction_id IS NOT NULL",
)
# An older gateway's table: the entry's JSON list is trail_codec's (positions from 0).
_CONVERT_V1: Final = (
    f"INSERT INTO entries (seq, {_COLUMNS}) SELECT seq, at,"
    + ", ".join(f"json_extract(data, '$[{i}]')" for i in range(1, 17))
    + " FROM trail ORDER BY seq",
    "DROP TABLE trail",
)
_INSERT: Final = f"INSERT INTO entries ({_COLUMNS}) VALUES ({', '.join('?' * 17)})"
# A frame without its body: protocol, partner, correlation_id, ocpi_status, method,
# path, body and truncated are known (or the columns' defaults).
_INSERT_FRAME: Final = (
    "INSERT INTO entries (at, protocol, direction, charger_id, action, message_type,"
    " message_id, status, size, transaction_id) VALUES (?, 'ocpp', ?, ?, ?, ?, ?, ?, ?, ?)"
)
_CHECKPOINT_PAGES: Final = 8000
_EPOCH: Final = trail_codec._EPOCH
_MICROSECOND: Final = timedelta(microseconds=1)


def trail_path(database: Path) -> Path:
    """Where the trail of the database at ``database`` lives."""
    return database.with_name(f"{database.stem}-trail{database.suffix}")


def _tune(conn: sqlite3.Connection) -> None:
    """Checkpoint every 8,000 pages (32 MB of WAL) rather than SQLite's 1,000: the
    charger index's inserts land all over its tree, so that a commit rewrites pages that
    the commits before it wrote too; a checkpoint copies each page once however often it
    was written since the last (measured: tests/bench/README.md, the message trail)."""
    conn.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")


def _create(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)
    old = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'trail'"
    ).fetchone()
    if old is not None:
        for statement in _CONVERT_V1:
            conn.execute(statement)


def _rows(records: Iterable[TrailRecord]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The records as runs of rows, each run for one statement, in the records' order
    (the rowid is the append order)."""
    runs: list[tuple[str, list[tuple[Any, ...]]]] = []
    frames: list[tuple[Any, ...]] | None = None
    others: list[tuple[Any, ...]] | None = None
    epoch, micro, micros = _EPOCH, _MICROSECOND, trail_codec.micros
    for r in records:
        at = r[0]
        try:
            us = (at - epoch) // micro
        except TypeError:
            us = micros(at)  # raises NaiveDatetimeError
        if us < 0:
            micros(at)  # raises ValueError (older than 1970)
        if (
            r[15] is None  # no body
            and r[1] == "ocpp"
            and r[4] is None
            and r[8] is None
            and r[10] is None
            and r[11] is None
            and r[12] is None
            and not r[16]
        ):
            if frames is None:
                frames, others = [], None
                runs.append((_INSERT_FRAME, frames))
            frames.append((us, r[2], r[3], r[5], r[6], r[7], r[9], r[13], r[14]))
        else:
            if others is None:
                others, frames = [], None
                runs.append((_INSERT, others))
            others.append((us, *r[1:]))
    return runs


def _cleaned(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(trail_codec.clean(v) if isinstance(v, str) else v for v in row)


class SqliteTrailStore:
    def __init__(self, writer: _Worker, reader: _Worker) -> None:
        self._writer = writer
        self._reader = reader

    @classmethod
    async def open(cls, path: Path) -> SqliteTrailStore:
        try:
            conn = await asyncio.to_thread(_connect, path, "NORMAL", read_only=False)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open {path}: {exc}") from exc
        writer = _Worker("gateway-trail-writer", conn, _write_batch)
        try:
            await asyncio.to_thread(_tune, conn)
            await writer.run(_create)
            conn = await asyncio.to_thread(_connect, path, "NORMAL", read_only=True)
        except (sqlite3.Error, OSError) as exc:
            await writer.close()
            raise StorageError(f"cannot open {path}: {exc}") from exc
        except BaseException:
            await writer.close()
            raise
        return cls(writer, _Worker("gateway-trail-reader", conn, _read_batch))

    async def close(self) -> None:
        await self._writer.close()
        await self._reader.close()

    async def append_batch(self, entries: Sequence[TrailEntry]) -> None:
        if entries:
            await self.append_records(lambda: [trail_record(e) for e in entries])

    async def append_records(self, make: Callable[[], Iterable[TrailRecord]]) -> None:
        def job(conn: sqlite3.Connection) -> None:
            runs = _rows(make())  # here, in the writer thread
            conn.execute("SAVEPOINT rows")
            try:
                for sql, rows in runs:
                    conn.executemany(sql, rows)
            except UnicodeEncodeError:
                # A lone surrogate (a JSON escape parsed from a frame) cannot be stored
                # as UTF-8: the batch again with such text as visible escapes (rare).
                conn.execute("ROLLBACK TO rows")
                for sql, rows in runs:
                    conn.executemany(sql, [_cleaned(row) for row in rows])
            conn.execute("RELEASE rows")

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
        if since is not None:
            where.append("at >= ?")
            params.append(max(0, codec.time_key(since, "since")))
        if until is not None:
            where.append("at < ?")
            params.append(max(0, codec.time_key(until, "until")))
        if after is not None:
            at, seq = trail_codec.cursor_parts(after)
            where.append("(at, seq) < (?, ?)" if newest_first else "(at, seq) > (?, ?)")
            params.extend((at, seq))
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT seq, {_COLUMNS} FROM entries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY at {order}, seq {order} LIMIT ?"
        params.append(limit + 1)

        def job(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(sql, params).fetchall()

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
            deleted = conn.execute(
                "DELETE FROM entries WHERE seq IN"
                " (SELECT seq FROM entries WHERE at < ? ORDER BY at, seq LIMIT ?)",
                (cutoff, limit),
            ).rowcount
            room = limit - deleted
            if room > 0:
                (count,) = conn.execute("SELECT COUNT(*) FROM entries").fetchone()
                excess = min(room, int(count) - keep)
                if excess > 0:
                    deleted += conn.execute(
                        "DELETE FROM entries WHERE seq IN"
                        " (SELECT seq FROM entries ORDER BY at, seq LIMIT ?)",
                        (excess,),
                    ).rowcount
            return int(deleted)

        result: int = await self._writer.run(job)
        return result

    async def count(self) -> int:
        def job(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

        result: int = await self._reader.run(job)
        return result


def _entry(row: tuple[Any, ...]) -> TrailEntry:
    seq, at, *fields = row
    entry = TrailEntry(_EPOCH + timedelta(microseconds=at), *fields)
    entry.truncated = bool(entry.truncated)
    entry.id = trail_codec.make_id(at, seq)
    return entry
