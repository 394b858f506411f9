"""The message trail's writing on SQLite, importing only the standard library (and
:mod:`gateway.storage.sqlite_rows`): the segments' schema, a batch's rows and their
INSERTs. Run by the store's writer thread (:mod:`gateway.storage.sqlite_trail`, which has
the rest: opening, pruning, queries) and by the trail's writer process
(:mod:`gateway.storage.writer_child`), which imports no more than this so that it starts
in tens of milliseconds and holds a few MiB. :mod:`gateway.storage.trail_codec` is
imported only on the error paths (a naive or pre-1970 time, a lone surrogate).

Imports: the standard library, ``gateway.storage.sqlite_rows``; ``trail_codec`` lazily.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from gateway.storage.sqlite_rows import _insert_rows, _RowInsert

if TYPE_CHECKING:
    from gateway.storage.base import TrailRecord

_COLUMNS: Final = (
    "at, protocol, direction, charger_id, partner, action, message_type, message_id,"
    " correlation_id, status, ocpi_status, method, path, size, transaction_id, body,"
    " truncated"
)
# A closed segment holds at most this many entries, spanning at most an hour: the unit
# the trail is pruned by (tests/bench/README.md, the message trail).
SEGMENT_ROWS: Final = 10_000
SEGMENT_SPAN: Final = timedelta(hours=1)
_SEGMENT_SPAN_US: Final = SEGMENT_SPAN // timedelta(microseconds=1)


def _table(n: int) -> str:
    return f"entries_{int(n)}"


def _segment_schema(n: int) -> tuple[str, ...]:
    t = _table(n)
    return (
        f"CREATE TABLE {t} (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL,"
        " protocol TEXT NOT NULL, direction TEXT NOT NULL, charger_id TEXT, partner TEXT,"
        " action TEXT, message_type TEXT, message_id TEXT, correlation_id TEXT, status TEXT,"
        " ocpi_status INTEGER, method TEXT, path TEXT, size INTEGER NOT NULL,"
        " transaction_id TEXT, body TEXT, truncated INTEGER NOT NULL DEFAULT 0)",
        f"CREATE INDEX {t}_by_time ON {t} (at)",
        f"CREATE INDEX {t}_by_charger ON {t} (charger_id, at) WHERE charger_id IS NOT NULL",
        f"CREATE INDEX {t}_by_partner ON {t} (partner, at) WHERE partner IS NOT NULL",
        f"CREATE INDEX {t}_by_transaction ON {t} (transaction_id, at)"
        " WHERE transaction_id IS NOT NULL",
    )


# Each kind of row (see _rows) is inserted by one statement: the columns it names and
# what one row's VALUES are.
_INSERTS: Final = (
    # Every column.
    (f"(seq, {_COLUMNS})", "(" + ", ".join("?" * 18) + ")"),
    # A frame without its body: protocol, partner, correlation_id, ocpi_status, method,
    # path, body and truncated are known (or the columns' defaults).
    (
        "(seq, at, protocol, direction, charger_id, action, message_type, message_id,"
        " status, size, transaction_id)",
        "(?, ?, 'ocpp', ?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    # An OCPI entry without its body (the trail's record of a request served or sent and
    # of its answer): protocol, charger_id, transaction_id, body and truncated are known.
    (
        "(seq, at, protocol, direction, partner, action, message_type, message_id,"
        " correlation_id, status, ocpi_status, method, path, size)",
        "(?, ?, 'ocpi', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ),
)
# The trail's writer keeps this many prepared statements (its inserts: up to six sizes of
# each kind per segment, _RowInsert; one of 32 rows holds about 37 kB).
_CACHED_STATEMENTS: Final = 24


def _inserts(n: int) -> tuple[_RowInsert, ...]:
    """The INSERT of each kind of row into segment ``n``, several rows a statement
    (:class:`~gateway.storage.sqlite._RowInsert`: the writer waited for the GIL once per
    row when each had its own)."""
    return tuple(_RowInsert(f"INSERT INTO {_table(n)} {c}", v) for c, v in _INSERTS)


# The kinds of run _rows makes (their statements: _INSERTS).
_OTHER: Final = 0
_FRAME: Final = 1
_EXCHANGE: Final = 2

_CHECKPOINT_PAGES: Final = 8000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)  # trail_codec's
_MICROSECOND: Final = timedelta(microseconds=1)


def _tune(conn: sqlite3.Connection) -> None:
    """Checkpoint every 8,000 pages (32 MB of WAL) rather than SQLite's 1,000: the
    charger index's inserts land all over its tree, so that a commit rewrites pages that
    the commits before it wrote too; a checkpoint copies each page once however often it
    was written since the last (measured: tests/bench/README.md, the message trail)."""
    conn.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")


def _new_segment(conn: sqlite3.Connection, n: int, last_seq: int) -> None:
    """Segment ``n`` (a table without indexes), and the indexes of the segment it
    follows, now closed: built in one pass over sorted keys, which costs a fraction of
    keeping them up to date entry by entry."""
    for statement in _segment_schema(n)[:1]:
        conn.execute(statement)
    if n > 1:
        for statement in _segment_schema(n - 1)[1:]:
            conn.execute(statement.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
    conn.execute(
        "INSERT INTO segments (n, rows, min_at, max_at, last_seq) VALUES (?, 0, NULL, NULL, ?)",
        (n, last_seq),
    )


Runs = list[tuple[int, list[tuple[Any, ...]]]]


def _rows(records: Iterable[TrailRecord], seq: int) -> tuple[Runs, int, int, int]:
    """The records as runs of rows, each run of one kind (:data:`_FRAME`: frames
    without a body; :data:`_EXCHANGE`: OCPI entries without a body; :data:`_OTHER`:
    every column; their columns in :data:`_INSERTS`), in the records' order,
    numbered from ``seq + 1``; and the batch's least and greatest ``at`` and its last
    seq."""
    runs: Runs = []
    run: list[tuple[Any, ...]] = []
    kind = -1
    row: tuple[Any, ...]
    epoch, micro = _EPOCH, _MICROSECOND
    low = high = -1
    for r in records:
        at = r[0]
        try:
            us = (at - epoch) // micro
        except TypeError:
            us = _micros(at)  # raises NaiveDatetimeError
        if us < 0:
            _micros(at)  # raises ValueError (older than 1970)
        if us < low or low < 0:
            low = us
        if us > high:
            high = us
        seq += 1
        if r[15] is not None or r[16]:  # a body
            row_kind, row = _OTHER, (seq, us, *r[1:])
        elif r[1] == "ocpi" and r[3] is None and r[14] is None:
            row_kind = _EXCHANGE
            row = (seq, us, r[2], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13])
        elif (
            r[1] == "ocpp"
            and r[4] is None
            and r[8] is None
            and r[10] is None
            and r[11] is None
            and r[12] is None
        ):
            row_kind = _FRAME
            row = (seq, us, r[2], r[3], r[5], r[6], r[7], r[9], r[13], r[14])
        else:
            row_kind, row = _OTHER, (seq, us, *r[1:])
        if row_kind != kind:
            kind, run = row_kind, []
            runs.append((kind, run))
        run.append(row)
    return runs, low, high, seq


def _micros(at: datetime) -> int:
    """trail_codec.micros, imported on this error path only (see the module doc)."""
    from gateway.storage import trail_codec

    return trail_codec.micros(at)


def _cleaned(row: tuple[Any, ...]) -> tuple[Any, ...]:
    from gateway.storage import trail_codec  # rare (see _append): imported then only

    return tuple(trail_codec.clean(v) if isinstance(v, str) else v for v in row)


def _append(conn: sqlite3.Connection, records: Iterable[TrailRecord]) -> None:
    """In the writer thread: the records into the newest segment, or a new one when the
    newest is full or would span more than :data:`SEGMENT_SPAN`."""
    newest = conn.execute(
        "SELECT n, rows, min_at, last_seq FROM segments ORDER BY n DESC LIMIT 1"
    ).fetchone()
    n, rows, oldest, last_seq = newest if newest is not None else (0, 0, None, 0)
    runs, low, high, seq = _rows(records, last_seq)
    if not runs:
        return
    if (
        newest is None
        or rows >= SEGMENT_ROWS
        or (oldest is not None and max(high, oldest) - min(low, oldest) > _SEGMENT_SPAN_US)
    ):
        n += 1
        _new_segment(conn, n, last_seq)
    inserts = _inserts(n)  # once per batch, not per run: a batch of mixed kinds has many
    conn.execute("SAVEPOINT rows")
    try:
        for kind, batch in runs:
            _insert_rows(conn, inserts[kind], batch)
    except UnicodeEncodeError:
        # A lone surrogate (a JSON escape parsed from a frame) cannot be stored as
        # UTF-8: the batch again with such text as visible escapes (rare).
        conn.execute("ROLLBACK TO rows")
        for kind, batch in runs:
            _insert_rows(conn, inserts[kind], [_cleaned(row) for row in batch])
    conn.execute("RELEASE rows")
    conn.execute(
        "UPDATE segments SET rows = rows + ?, min_at = min(coalesce(min_at, ?), ?),"
        " max_at = max(coalesce(max_at, ?), ?), last_seq = ? WHERE n = ?",
        (seq - last_seq, low, low, high, high, seq, n),
    )
