"""The status history on SQLite: a database file of its own beside the main one.

``gateway-history.sqlite3`` next to ``gateway.sqlite3``, with its own writer and reader
threads (``history-writer``, ``history-reader``). The history is written once a second
(:mod:`gateway.reports.recorder`), and a second's entries of a large fleet land all over
its per-charger index: a commit of them writes about a page per entry, tens of
milliseconds at 10,000 chargers and more as the history ages (tests/bench/README.md, the
status history at a steady rate). In the main database that commit held SQLite's one
write lock, and the chargers' own writes (a StatusNotification's connector state, a
transaction) waited behind it; in a file of its own it takes another lock and another
thread. ``synchronous=FULL`` as the main database: the reports are read from it. The
main database's lock covers it (same data dir).

The main database held the history before (``status_history``, schema migration 4, which
still creates it in a new database). When the main database has that table at open, its
content is the history: an older gateway's, or a backup's restored (``ocpi-gateway
backup`` writes the history into the copy). It replaces what this file holds, in one
transaction, before anything else is written, and the table is then dropped from the
main database; a crash in between does it again at the next start, with the same result.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from gateway.storage import codec, history
from gateway.storage.base import StatusEntry, StorageError
from gateway.storage.sqlite import (
    _changes,
    _Database,
    _fetch_all,
    _fetch_one,
    _Worker,
    _write_batch,
    reader_after,
)
from gateway.storage.sqlite_process import ProcessWriter
from gateway.storage.sqlite_rows import _connect, append_status

log = logging.getLogger(__name__)

# The table as the main database's migration 4 created it (the adoption copies rows
# between the two, ids kept). id: append order (ties of ``at``); at: µs since the epoch;
# slot: what the entry is the latest state of (StatusEntry.slot), which purge keeps the
# newest old entry of.
TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS status_history (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " charger_id TEXT NOT NULL, at INTEGER NOT NULL, slot TEXT NOT NULL,"
    " data TEXT NOT NULL)"
)
_SCHEMA: Final = (
    TABLE,
    "CREATE INDEX IF NOT EXISTS status_history_by_charger ON status_history (charger_id, at, id)",
    "CREATE INDEX IF NOT EXISTS status_history_by_time ON status_history (at)",
)
HAS_TABLE: Final = "SELECT name FROM sqlite_schema WHERE type = 'table' AND name = 'status_history'"
_LEGACY_HAS_TABLE: Final = (
    "SELECT name FROM legacy.sqlite_schema WHERE type = 'table' AND name = 'status_history'"
)


def history_path(database: Path) -> Path:
    """Where the status history of the database at ``database`` lives."""
    return database.with_name(f"{database.stem}-history{database.suffix}")


def copy_history(conn: sqlite3.Connection, source: str) -> int:
    """Replace the rows of ``status_history`` on ``conn`` (which has the table) with those
    of schema ``source`` (an attached database), ids and the id sequence kept, in the
    caller's transaction; the number of rows."""
    conn.execute("DELETE FROM main.status_history")
    copied = conn.execute(
        "INSERT INTO main.status_history (id, charger_id, at, slot, data)"
        f" SELECT id, charger_id, at, slot, data FROM {source}.status_history"
    ).rowcount
    # AUTOINCREMENT's high-water mark: an id never handed out again, even after purges.
    conn.execute("DELETE FROM main.sqlite_sequence WHERE name = 'status_history'")
    conn.execute(
        "INSERT INTO main.sqlite_sequence (name, seq) SELECT 'status_history', max("
        f" coalesce((SELECT seq FROM {source}.sqlite_sequence WHERE name = 'status_history'),"
        " 0), coalesce((SELECT max(id) FROM main.status_history), 0))"
    )
    return int(copied)


def _create(conn: sqlite3.Connection, main: Path) -> None:
    """The schema, then the main database's history when it has one (see the module
    doc): on the writer's connection, in a helper thread before the writer's own starts
    (ATTACH needs autocommit)."""
    for statement in _SCHEMA:
        conn.execute(statement)
    conn.execute("ATTACH DATABASE ? AS legacy", (str(main),))
    try:
        if conn.execute(_LEGACY_HAS_TABLE).fetchone() is not None:
            # BEGIN, not IMMEDIATE: that would take the main database's write lock too.
            conn.execute("BEGIN")
            try:
                copied = copy_history(conn, "legacy")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            log.info("status history: %d entries moved from %s to its own file", copied, main)
    finally:
        conn.execute("DETACH DATABASE legacy")


def _drop_legacy(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TABLE IF EXISTS status_history")
    conn.execute("DELETE FROM sqlite_sequence WHERE name = 'status_history'")


class HistoryFile:
    """The writer and reader threads of the history's database file, and the process
    that appends when ``writer_process`` (:mod:`gateway.storage.sqlite_process`; the
    writer thread keeps the schema and the purge)."""

    def __init__(self, writer: _Worker, reader: _Worker, appender: ProcessWriter | None) -> None:
        self.write = writer.run
        self.read = reader.run
        self.appender = appender
        self._workers = (writer, reader)

    @classmethod
    async def open(
        cls, path: Path, main: _Database, main_path: Path, *, writer_process: bool = False
    ) -> HistoryFile:
        try:
            conn = await asyncio.to_thread(_connect, path, "FULL", read_only=False)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open {path}: {exc}") from exc
        try:
            await asyncio.to_thread(_create, conn, main_path)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error | OSError):
                raise StorageError(f"cannot open {path}: {exc}") from exc
            raise
        writer = _Worker("gateway-history-writer", conn, _write_batch)

        async def setup() -> None:
            # Moved (or nothing to move): the main database's table goes.
            if await main.read(_fetch_one(HAS_TABLE, ())) is not None:
                await main.write(_drop_legacy)

        reader = await reader_after(writer, path, "FULL", "gateway-history-reader", setup)
        return cls(writer, reader, ProcessWriter("history", path) if writer_process else None)

    async def close(self) -> None:
        if self.appender is not None:
            await self.appender.close()
        for worker in self._workers:
            await worker.close()

    async def release_memory(self) -> None:
        """Both connections' page caches given back (``_Database.release_memory``)."""
        await asyncio.gather(*(worker.release_memory() for worker in self._workers))


class SqliteStatusHistoryStore:
    def __init__(self, db: HistoryFile) -> None:
        self._db = db

    async def append(self, entries: Sequence[StatusEntry]) -> None:
        if not entries:
            return
        rows = [
            (entry.charger_id, key, entry.slot, data)
            for entry, (key, data) in zip(entries, await history.encode_all(entries), strict=True)
        ]
        if self._db.appender is not None:
            await self._db.appender.append(rows)
            return

        await self._db.write(lambda conn: append_status(conn, rows))

    async def list(
        self,
        charger_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        newest_first: bool = False,
        offset: int = 0,
        limit: int = 1000,
    ) -> list[StatusEntry]:
        codec.check_page(limit, offset)
        sql = "SELECT data FROM status_history WHERE charger_id = ?"
        params: list[Any] = [charger_id]
        if since is not None:
            sql += " AND at >= ?"
            params.append(codec.time_key(since, "since"))
        if until is not None:
            sql += " AND at < ?"
            params.append(codec.time_key(until, "until"))
        order = "DESC" if newest_first else "ASC"
        sql += f" ORDER BY at {order}, id {order} LIMIT ? OFFSET ?"
        rows = await self._db.read(_fetch_all(sql, [*params, limit, offset]))
        return [history.decode(codec.loads(data)) for data in rows]

    async def purge(self, before: datetime) -> int:
        cutoff = codec.time_key(before, "before")
        deleted: int = await self._db.write(
            _changes(
                # The newest old entry of each (charger, slot) stays: the state at the
                # cutoff (rank 1 by at, then append order).
                "DELETE FROM status_history WHERE at < ? AND id NOT IN ("
                " SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY charger_id, slot"
                " ORDER BY at DESC, id DESC) AS rank FROM status_history WHERE at < ?)"
                " WHERE rank = 1)",
                (cutoff, cutoff),
            )
        )
        return deleted
