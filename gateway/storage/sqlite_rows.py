"""The SQL the SQLite writers run, importing only the standard library: the connection's
set-up and the multi-row INSERTs, used by the stores' threads (:mod:`gateway.storage.sqlite`)
and by the writer processes (:mod:`gateway.storage.writer_child`), which import this and
:mod:`gateway.storage.trail_rows` only, so that each starts in tens of milliseconds and
holds a few MiB rather than the gateway's models.

Imports: the standard library only.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, Final

_BUSY_TIMEOUT_S: Final = 10.0
# The writer processes' framing, both ways (gateway.storage.sqlite_process): a job number
# and a length, then that many bytes.
HEADER: Final = struct.Struct("<II")


def _bind_null(value: None) -> None:
    return None


def _connect(
    path: Path, synchronous: str, *, read_only: bool, cached_statements: int = 128
) -> sqlite3.Connection:
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    # The sqlite3 module "adapts" every parameter that is not an int, float, str or
    # bytearray, None included: with no adapter registered for its type it looks for
    # PrepareProtocol.__adapt__, whose absence raises (and formats) an AttributeError it
    # then clears, at every NULL bound. The trail binds several per message (about 5 % of
    # the gateway's instructions per OCPP message, tests/bench/README.md). An adapter for
    # None (None as it is: still bound as NULL) is found by one lookup instead. It is the
    # process's sqlite3 module's registry, set here, before the first statement of any
    # store; registering it again is harmless.
    sqlite3.register_adapter(type(None), _bind_null)
    # isolation_level=None: no implicit transactions, the writer issues BEGIN/COMMIT.
    # check_same_thread=False: opened here (a helper thread), used only by its worker.
    conn = sqlite3.connect(
        path,
        timeout=_BUSY_TIMEOUT_S,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=cached_statements,
    )
    try:
        if read_only:
            conn.execute("PRAGMA query_only = ON")
        else:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                # An OperationalError: the store that opens it says it cannot open the file.
                raise sqlite3.OperationalError(f"{path}: cannot switch to WAL mode (got {mode!r})")
            # Bound the WAL file after a burst (it is reused, not shrunk, otherwise).
            conn.execute("PRAGMA journal_size_limit = 67108864")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
    except BaseException:
        conn.close()
        raise
    return conn


# Rows a multi-row INSERT holds (:class:`_RowInsert`): a run of rows goes in by statements
# of 32, 16, 8, 4, 2 and 1 rows, so that one table needs at most six statements (a
# prepared statement of 32 rows of 11 columns holds about 37 kB). 999 parameters is the
# fewest a statement may have on any SQLite (3.32 raised the default bound to 32,766).
_ROWS_PER_INSERT: Final = (32, 16, 8, 4, 2, 1)
_MAX_PARAMETERS: Final = 999


class _RowInsert:
    """An INSERT of one row (``head VALUES values tail``; ``tail``: an upsert's
    ``ON CONFLICT`` clause) and the same for several rows at once (``sql[n]`` for each
    of ``sizes``). Several rows a statement rather than one statement a row: the sqlite3
    module gives up the GIL around each statement and must take it back after, and
    with the event loop busy the writer thread waited for it once per row, costing both
    threads a hand-off each time (tests/bench/README.md)."""

    __slots__ = ("sizes", "sql")

    def __init__(self, head: str, values: str, tail: str = "") -> None:
        width = values.count("?")
        self.sizes = tuple(n for n in _ROWS_PER_INSERT if n == 1 or n * width <= _MAX_PARAMETERS)
        self.sql = {n: f"{head} VALUES " + ", ".join([values] * n) + tail for n in self.sizes}


def _chunks(count: int, sizes: tuple[int, ...]) -> Iterator[tuple[int, int]]:
    """``(start, rows)`` of each statement that writes ``count`` rows, largest first."""
    start = 0
    for per in sizes:
        while count - start >= per:
            yield start, per
            start += per


def _insert_rows(conn: sqlite3.Connection, spec: _RowInsert, rows: Sequence[Sequence[Any]]) -> None:
    """``rows`` by ``spec``, in their order, in as few statements as ``spec.sizes`` allow."""
    for start, per in _chunks(len(rows), spec.sizes):
        conn.execute(spec.sql[per], list(chain.from_iterable(rows[start : start + per])))


# The status history's rows (gateway.storage.sqlite_history): charger, time key, slot, data.
INSERT_STATUS: Final = _RowInsert(
    "INSERT INTO status_history (charger_id, at, slot, data)", "(?, ?, ?, ?)"
)


def append_status(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """The status history's write of ``rows`` (charger, time key, slot, data), by its
    writer thread and by its writer process alike."""
    _insert_rows(conn, INSERT_STATUS, rows)
