"""The message trail on SQLite: a database file of its own beside the main one.

``gateway-trail.sqlite3`` next to ``gateway.sqlite3``, with its own writer and reader
threads (the same group commit as :mod:`gateway.storage.sqlite`): the trail's batches,
its pruning and its bulk never queue behind or in front of the writes a charger waits
for, and its commits skip the fsync (``synchronous=NORMAL``: safe against ``kill -9``,
the last commits may be lost on a power cut, which is acceptable for a diagnostic
trail and not for billing data). The main database's lock covers it (same data dir).

One indexed table; the entry's id is ``(at, seq)`` (``trail_codec``), ``seq`` the rowid
(not AUTOINCREMENT, which costs a write per insert: a rowid can only come back once the
newest entries were pruned too, and then with a later ``at``, so ids never repeat).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from gateway.storage import codec, trail_codec
from gateway.storage.base import StorageError, TrailEntry
from gateway.storage.sqlite import _connect, _read_batch, _Worker, _write_batch

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS trail (seq INTEGER PRIMARY KEY,"
    " at INTEGER NOT NULL, charger_id TEXT, partner TEXT, transaction_id TEXT,"
    " action TEXT, data TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS trail_by_time ON trail (at, seq)",
    "CREATE INDEX IF NOT EXISTS trail_by_charger ON trail (charger_id, at, seq)"
    " WHERE charger_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS trail_by_partner ON trail (partner, at, seq)"
    " WHERE partner IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS trail_by_transaction ON trail (transaction_id, at, seq)"
    " WHERE transaction_id IS NOT NULL",
)


def trail_path(database: Path) -> Path:
    """Where the trail of the database at ``database`` lives."""
    return database.with_name(f"{database.stem}-trail{database.suffix}")


def _create(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)


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
        rows = [
            (
                trail_codec.at_micros(e),
                trail_codec.optional(e.charger_id),
                trail_codec.optional(e.partner),
                trail_codec.optional(e.transaction_id or None),
                trail_codec.optional(e.action),
                trail_codec.encode(e),
            )
            for e in entries
        ]
        if not rows:
            return

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO trail (at, charger_id, partner, transaction_id, action, data)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

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
        sql = "SELECT at, seq, data FROM trail"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY at {order}, seq {order} LIMIT ?"
        params.append(limit + 1)

        def job(conn: sqlite3.Connection) -> list[tuple[int, int, str]]:
            return conn.execute(sql, params).fetchall()

        rows = await self._reader.run(job)
        page = [trail_codec.decode(trail_codec.make_id(at, seq), data) for at, seq, data in rows]
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
                "DELETE FROM trail WHERE seq IN"
                " (SELECT seq FROM trail WHERE at < ? ORDER BY at, seq LIMIT ?)",
                (cutoff, limit),
            ).rowcount
            room = limit - deleted
            if room > 0:
                (count,) = conn.execute("SELECT COUNT(*) FROM trail").fetchone()
                excess = min(room, int(count) - keep)
                if excess > 0:
                    deleted += conn.execute(
                        "DELETE FROM trail WHERE seq IN"
                        " (SELECT seq FROM trail ORDER BY at, seq LIMIT ?)",
                        (excess,),
                    ).rowcount
            return int(deleted)

        result: int = await self._writer.run(job)
        return result

    async def count(self) -> int:
        def job(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT COUNT(*) FROM trail").fetchone()[0])

        result: int = await self._reader.run(job)
        return result
