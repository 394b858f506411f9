"""Embedded default backend: one SQLite database file in WAL mode.

Threads: a dedicated *writer* thread owns the only write connection and applies
writes with group commit: it drains every write queued so far, applies them in
one transaction (each under its own SAVEPOINT, so that one failing write does not
undo the others), commits once, and then hands all the results back to the event
loop with a single ``call_soon_threadsafe``. When writes come one by one at a steady
rate, a write that finds no other queued waits up to ``GROUP_COMMIT_WINDOW`` (1 ms)
for others to share its transaction and commit, but only while writes arrive that
often (after a quiet spell it commits at once); a batch of one single-statement write runs
as one autocommitted statement (no BEGIN/SAVEPOINT/COMMIT round trips). A *reader*
thread owns a second, read-only connection (WAL lets it read while the writer writes)
and serves reads the same way. Point reads by key (a charger, a transaction, a token,
a document, a charger's connectors up to 64) run on the event loop's own read-only
connection instead: a few microseconds from the page cache against a thread hand-off
and two wake-ups (about 150 µs of CPU on a 2-core VM); that connection never waits for
a lock (busy timeout 0), a read SQLite refuses as busy goes to the reader thread. Scans
and reads of several statements always go to the reader thread.

Durability: a write's coroutine returns only after its transaction committed.
With ``synchronous=FULL`` (the default) SQLite fsyncs the WAL at every commit, so
an accepted write survives ``kill -9`` *and* a power loss or kernel crash. The
fsync costs one disk flush per *batch*, not per write, thanks to group commit;
charging transactions are billing data, which is worth that flush.
``synchronous="NORMAL"`` skips the fsync at commit: still safe against ``kill -9``
(the commit is in the OS page cache) but the last commits may be lost on power loss.

One process: the store holds an exclusive ``flock`` on ``<name>.lock`` next to the
database (``data/gateway.lock``) from open to close, so a second gateway on the same
data dir is refused at start (several processes need Redis). The OS drops the lock
when its holder dies, even by ``kill -9``: a stale lock file never blocks a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from itertools import chain, islice
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from gateway.domain.errors import Conflict
from gateway.domain.models import (
    Charger,
    ChargerState,
    ConnectorState,
    ConnectorStatus,
    LocalToken,
    MeterReading,
    Transaction,
    TransactionStatus,
    token_key,
)
from gateway.storage import codec
from gateway.storage.base import (
    Document,
    OutboxItem,
    OutboxStatus,
    StorageError,
    Store,
    check_lease,
)
from gateway.storage.local_cluster import LocalMessageStore, LocalOwnershipStore
from gateway.storage.sqlite_rows import (  # the writer processes' too
    _chunks,
    _connect,
    _insert_rows,
    _RowInsert,
)

_T = TypeVar("_T")
_Job = Callable[[sqlite3.Connection], Any]
_Result = tuple["asyncio.Future[Any]", bool, Any]  # future, ok, value or exception

# Writes applied in one transaction at most; bounds the latency of the first one.
_MAX_BATCH: Final = 512
# Group commit at steady rates: a write that finds no other queued waits this long for
# more to share its transaction and commit (every write still commits before its
# answer), when writes have been coming less than four windows apart on average; a write
# after a quiet spell commits at once. Bounds what any write waits for others.
GROUP_COMMIT_WINDOW: Final = 0.001
# SQLite's primary result codes of a lock refused (an inline read then goes to the reader).
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6
_OCPP16_SEQUENCE: Final = "ocpp16_transaction_id"
_ACTIVE: Final = TransactionStatus.ACTIVE.value
_PENDING: Final = OutboxStatus.PENDING.value
_DONE: Final = OutboxStatus.DONE.value
_FAILED: Final = OutboxStatus.FAILED.value

# Migration N (index N - 1) takes the schema from version N - 1 to N. Append only.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        "CREATE TABLE chargers (id TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID",
        "CREATE TABLE charger_states (id TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID",
        "CREATE TABLE connectors (charger_id TEXT NOT NULL, evse_id INTEGER NOT NULL,"
        " connector_id INTEGER NOT NULL, data TEXT NOT NULL,"
        " PRIMARY KEY (charger_id, evse_id, connector_id)) WITHOUT ROWID",
        # started_at: microseconds since the epoch (codec.time_key), the sort key.
        "CREATE TABLE transactions (id TEXT PRIMARY KEY, charger_id TEXT NOT NULL,"
        " ocpp_id TEXT NOT NULL, started_at INTEGER NOT NULL, status TEXT NOT NULL,"
        " data TEXT NOT NULL)",
        "CREATE UNIQUE INDEX transactions_by_ocpp_id ON transactions (charger_id, ocpp_id)",
        "CREATE INDEX transactions_by_start ON transactions (started_at, id)",
        "CREATE INDEX transactions_by_charger_start ON transactions (charger_id, started_at, id)",
        "CREATE INDEX transactions_active ON transactions (charger_id, started_at, id)"
        f" WHERE status = '{_ACTIVE}'",
        "CREATE TABLE readings (id INTEGER PRIMARY KEY, tx_id TEXT NOT NULL, data TEXT NOT NULL)",
        "CREATE INDEX readings_by_tx ON readings (tx_id)",
        "CREATE TABLE tokens (uid TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID",
        "CREATE TABLE sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        f"INSERT INTO sequences (name, value) VALUES ('{_OCPP16_SEQUENCE}', 0)",
    ),
    (
        # Roaming documents; last_updated: microseconds since the epoch (codec.time_key).
        "CREATE TABLE documents (collection TEXT NOT NULL, key TEXT NOT NULL, owner TEXT,"
        " last_updated INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (collection, key))",
        "CREATE INDEX documents_by_time ON documents (collection, last_updated, key)",
        "CREATE INDEX documents_by_owner ON documents (collection, owner, last_updated, key)",
        # The outbox. seq: the rowid, AUTOINCREMENT so that it is never reused. data: the
        # immutable part of the item (codec.encode_outbox_item); the rest is its state.
        # head = 1 on the lowest-seq item of its ordering_key that is not done (the only
        # one that may be due), maintained by every write, so that due() is one range
        # scan of outbox_due.
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
        " partner_id TEXT NOT NULL, ordering_key TEXT NOT NULL, status TEXT NOT NULL,"
        " head INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL, attempts INTEGER NOT NULL,"
        " last_error TEXT, data TEXT NOT NULL)",
        f"CREATE INDEX outbox_due ON outbox (next_attempt_at, seq)"
        f" WHERE head = 1 AND status = '{_PENDING}'",
        f"CREATE INDEX outbox_undelivered ON outbox (ordering_key, seq) WHERE status <> '{_DONE}'",
        "CREATE INDEX outbox_by_status ON outbox (status, seq)",
        "CREATE INDEX outbox_by_partner ON outbox (partner_id, seq)",
    ),
    (
        # Retention of delivered items. completed_at: microseconds since the epoch, set
        # when an item becomes done; items done before this migration get their
        # next_attempt_at (what complete() without a time uses). outbox_done serves
        # purge_done's scan, oldest completions first.
        "ALTER TABLE outbox ADD COLUMN completed_at INTEGER",
        f"UPDATE outbox SET completed_at = next_attempt_at WHERE status = '{_DONE}'",
        f"CREATE INDEX outbox_done ON outbox (completed_at, seq) WHERE status = '{_DONE}'",
    ),
    (
        # Status history (reports). id: append order (ties of ``at``); at: µs since the
        # epoch; slot: what the entry is the latest state of (StatusEntry.slot), which
        # purge keeps the newest old entry of. Kept in a file of its own since; a table
        # here is moved there at open (gateway.storage.sqlite_history), then dropped.
        "CREATE TABLE status_history (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " charger_id TEXT NOT NULL, at INTEGER NOT NULL, slot TEXT NOT NULL,"
        " data TEXT NOT NULL)",
        "CREATE INDEX status_history_by_charger ON status_history (charger_id, at, id)",
        "CREATE INDEX status_history_by_time ON status_history (at)",
    ),
    (
        # Certificates issued to chargers (gateway.storage.sqlite_certs). issued_at,
        # not_after: µs since the epoch.
        "CREATE TABLE certificates (serial TEXT PRIMARY KEY, charger_id TEXT NOT NULL,"
        " issued_at INTEGER NOT NULL, not_after INTEGER NOT NULL, status TEXT NOT NULL,"
        " data TEXT NOT NULL) WITHOUT ROWID",
        "CREATE INDEX certificates_by_charger ON certificates (charger_id, issued_at, serial)",
        "CREATE INDEX certificates_by_expiry ON certificates (not_after, serial)",
    ),
    (
        # Device models, report states and alerts (gateway.storage.sqlite_device_model).
        # key: VariableKey.text (the order of a listing); search, value_search: what q
        # searches, case-folded by Python (SQLite's lower() folds ASCII only); times µs.
        "CREATE TABLE device_model (charger_id TEXT NOT NULL, key TEXT NOT NULL,"
        " component TEXT NOT NULL, variable TEXT NOT NULL, evse_id INTEGER,"
        " search TEXT NOT NULL, meta TEXT NOT NULL, value TEXT, value_search TEXT NOT NULL,"
        " reboot INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (charger_id, key)) WITHOUT ROWID",
        "CREATE TABLE device_reports (charger_id TEXT NOT NULL, request_id INTEGER NOT NULL,"
        " first_at INTEGER NOT NULL, data TEXT NOT NULL,"
        " PRIMARY KEY (charger_id, request_id)) WITHOUT ROWID",
        "CREATE TABLE device_alerts (charger_id TEXT NOT NULL, seq INTEGER NOT NULL,"
        " match TEXT NOT NULL, raises INTEGER NOT NULL, cleared_at INTEGER,"
        " data TEXT NOT NULL, PRIMARY KEY (charger_id, seq)) WITHOUT ROWID",
    ),
    (
        # Local tokens found case-insensitively (domain.models.token_key): key is the uid
        # with its ASCII letters upper-cased (upper() folds ASCII only). Of uids stored
        # before that differ only in case (the same token to OCPP), the one updated last
        # is kept, then the first in byte order (as Redis's MOVE_TOKEN keeps): the first
        # inserted wins, and updated_at is a fixed-width UTC text (codec.utc_text).
        "CREATE TABLE tokens_by_key (key TEXT PRIMARY KEY, uid TEXT NOT NULL,"
        " data TEXT NOT NULL) WITHOUT ROWID",
        "INSERT OR IGNORE INTO tokens_by_key (key, uid, data)"
        " SELECT upper(uid), uid, data FROM tokens"
        " ORDER BY json_extract(data, '$.updated_at') IS NULL,"
        " json_extract(data, '$.updated_at') DESC, uid",
        "DROP TABLE tokens",
        "ALTER TABLE tokens_by_key RENAME TO tokens",
    ),
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)


async def open_sqlite_store(
    path: Path,
    *,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    writer_processes: bool = False,
) -> Store:
    """Open (creating directories, file and schema as needed) the database at ``path``.

    ``synchronous``: see the module docstring; keep ``FULL`` unless losing the last
    commits on a power loss is acceptable. ``writer_processes``: the message
    trail's and the status history's appends written by processes of their own
    (:mod:`gateway.storage.sqlite_process`).
    """
    database = await _Database.open(path, synchronous)
    # The message trail, in a file of its own (gateway.storage.sqlite_trail, which
    # imports this module's threads: imported here).
    from gateway.storage.sqlite_certs import SqliteCertificateStore
    from gateway.storage.sqlite_device_model import SqliteDeviceModelStore
    from gateway.storage.sqlite_history import (
        HistoryFile,
        SqliteStatusHistoryStore,
        history_path,
    )
    from gateway.storage.sqlite_trail import SqliteTrailStore, trail_path

    try:
        trail = await SqliteTrailStore.open(trail_path(path), writer_process=writer_processes)
    except BaseException:
        await database.close()
        raise
    # The status history, in a file of its own too (gateway.storage.sqlite_history):
    # closed with the main database.
    try:
        history_file = await HistoryFile.open(
            history_path(path), database, path, writer_process=writer_processes
        )
    except BaseException:
        await trail.close()
        await database.close()
        raise
    database.close_first(history_file.close)
    database.release_also(trail.release_memory)
    database.release_also(history_file.release_memory)
    return Store.assemble(
        chargers=SqliteChargerStore(database),
        charger_states=SqliteChargerStateStore(database),
        connectors=SqliteConnectorStore(database),
        transactions=SqliteTransactionStore(database),
        tokens=SqliteTokenStore(database),
        backend=database,
        outbox=SqliteOutboxStore(database),
        documents=lambda name: SqliteDocumentStore(database, name),
        leases=SqliteLeaseStore(database),
        owners=LocalOwnershipStore(database.check_open),
        messages=LocalMessageStore(database.check_open),
        trail=trail,
        status_history=SqliteStatusHistoryStore(history_file),
        certificates=SqliteCertificateStore(database),
        device_model=SqliteDeviceModelStore(database),
    )


# -- threads -----------------------------------------------------------------------------


def _RELEASE(conn: sqlite3.Connection) -> None:
    """Never run: queued in place of a job, it has the worker's connection give back its
    page cache (:meth:`_Worker.release_memory`)."""


class _Worker:
    """A thread owning one connection; runs submitted jobs in batches.

    ``run_batch`` executes a batch of jobs and returns, per job, ``(ok, value)``.
    """

    def __init__(
        self,
        name: str,
        conn: sqlite3.Connection,
        run_batch: Callable[[sqlite3.Connection, list[_Job]], list[tuple[bool, Any]]],
        *,
        window: float = 0.0,
    ) -> None:
        self._conn = conn
        self._run_batch = run_batch
        # Group commit at steady rates (GROUP_COMMIT_WINDOW); 0: none (the trail's
        # writer, whose batches are already large).
        self._window = window
        self._queue: queue.SimpleQueue[
            tuple[_Job | None, asyncio.Future[Any], asyncio.AbstractEventLoop]
        ] = queue.SimpleQueue()
        self._closed = False
        self.batches = 0  # batches run so far (for tests and metrics)
        # Called with each batch's duration (metrics: storage write latency).
        self.observe: Callable[[float], None] | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def run(self, job: Callable[[sqlite3.Connection], _T]) -> asyncio.Future[_T]:
        """Queue ``job``; the returned future resolves on the caller's loop."""
        if self._closed:
            raise StorageError("the SQLite store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._queue.put((job, future, loop))
        return future

    def release_memory(self) -> asyncio.Future[None]:
        """Once the jobs queued so far are done: the connection's page cache given back
        (``PRAGMA shrink_memory``, outside any transaction). A cache refills from the file
        as pages are read again; for memory freed after a burst, not for every batch."""
        return self.run(_RELEASE)

    async def close(self) -> None:
        """Finish every job queued so far, then close the connection and end the thread."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        self._queue.put((None, done, loop))
        await done

    def _take(self) -> list[tuple[_Job | None, asyncio.Future[Any], asyncio.AbstractEventLoop]]:
        """The next batch: every job queued now, up to ``_MAX_BATCH``."""
        get_nowait = self._queue.get_nowait
        items = [self._queue.get()]
        while len(items) < _MAX_BATCH:
            try:
                items.append(get_nowait())
            except queue.Empty:
                break
        return items

    def _linger(
        self,
        items: list[tuple[_Job | None, asyncio.Future[Any], asyncio.AbstractEventLoop]],
        until: float,
    ) -> None:
        """Wait until ``until`` (perf_counter) for more jobs to share the batch: one
        sleep, then whatever came meanwhile (no wake-up per job that arrives)."""
        remaining = until - time.perf_counter()
        if remaining > 0:
            time.sleep(remaining)
        get_nowait = self._queue.get_nowait
        while len(items) < _MAX_BATCH:
            try:
                items.append(get_nowait())
            except queue.Empty:
                break

    def _main(self) -> None:
        _name_os_thread(self._thread.name.removeprefix("gateway-"))
        window = self._window
        # Mean gap between the first jobs of successive batches (an exponential moving
        # average): the writer lingers only while jobs come often enough that another
        # one is likely within the window (a wait costs a wake-up of this thread; a job
        # that joins saves a commit and a wake-up of the event loop).
        gap = 1.0
        previous = time.perf_counter()
        stopping = False
        while not stopping:
            items = self._take()
            if window:
                first = time.perf_counter()
                gap += (first - previous - gap) * 0.25
                previous = first
                # Only a lone write waits: when others are already queued, they share its
                # commit without a wait (a busy writer is never slowed down).
                job = items[0][0]
                if gap < 4 * window and len(items) == 1 and job is not None and job is not _RELEASE:
                    self._linger(items, first + window)
            stopping = self._run(items)
            # Nothing of the batch stays referenced while the thread waits for the next
            # one: its jobs, futures and results (up to _MAX_BATCH of each, the last batch
            # of a burst) would otherwise live on until then, scattered in the memory
            # freed after the burst.
            del items

    def _run(
        self, items: list[tuple[_Job | None, asyncio.Future[Any], asyncio.AbstractEventLoop]]
    ) -> bool:
        """Run one batch and deliver its results; True once the store is closing."""
        stopping = False
        jobs: list[_Job] = []
        futures: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop]] = []
        stop: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop]] = []
        release: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop]] = []
        for job, future, loop in items:
            if job is None:
                stopping = True
                stop.append((future, loop))
            elif job is _RELEASE and not stopping:
                release.append((future, loop))
            elif stopping:  # submitted from another thread after close(): refuse
                _deliver([(future, False, StorageError("the SQLite store is closed"))], loop)
            else:
                jobs.append(job)
                futures.append((future, loop))
        if jobs:
            self.batches += 1
            started = time.perf_counter()
            try:
                outcomes = self._run_batch(self._conn, jobs)
            except Exception as exc:  # a bug: fail the batch rather than hang its callers
                outcomes = [(False, StorageError(f"internal error: {exc!r}")) for _ in jobs]
            observe = self.observe
            if observe is not None:
                observe(time.perf_counter() - started)
            by_loop: dict[asyncio.AbstractEventLoop, list[_Result]] = {}
            for (future, loop), (ok, value) in zip(futures, outcomes, strict=True):
                by_loop.setdefault(loop, []).append((future, ok, value))
            for loop, results in by_loop.items():
                _deliver(results, loop)
        if release:
            # After the batch's commit: a cache page that is dirty cannot be given back.
            try:
                self._conn.execute("PRAGMA shrink_memory")
                outcome: tuple[bool, Any] = (True, None)
            except sqlite3.Error as exc:
                outcome = (False, _as_storage_error(exc))
            for future, loop in release:
                _deliver([(future, *outcome)], loop)
        if stopping:
            self._conn.close()
            for future, loop in stop:
                _deliver([(future, True, None)], loop)
        return stopping


async def reader_after(
    writer: _Worker,
    path: Path,
    synchronous: str,
    name: str,
    setup: Callable[[], Awaitable[object]],
) -> _Worker:
    """Once ``writer`` runs: ``setup`` (the schema, through the writer), then the file's
    read-only connection and its reader thread ``name``. The writer is closed when either
    fails; SQLite's and the system's errors come out as :class:`StorageError`. (The main
    database, the trail and the status history open their files this way.)"""
    try:
        await setup()
        conn = await asyncio.to_thread(_connect, path, synchronous, read_only=True)
    except (sqlite3.Error, OSError) as exc:
        await writer.close()
        raise StorageError(f"cannot open {path}: {exc}") from exc
    except BaseException:
        await writer.close()
        raise
    return _Worker(name, conn, _read_batch)


def _name_os_thread(name: str) -> None:
    """Name the calling thread in the OS too (Linux: its ``comm``, at most 15 bytes), so
    that ``top -H``, ``ps -T`` and ``/proc/<pid>/task`` show which of the gateway's threads
    spends the CPU (Python 3.11 names its threads for Python alone)."""
    path = f"/proc/self/task/{threading.get_native_id()}/comm"
    # Not Linux, or no /proc: the Python name stays.
    with contextlib.suppress(OSError), open(path, "w") as comm:
        comm.write(name[:15])


def _deliver(results: list[_Result], loop: asyncio.AbstractEventLoop) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(_settle, results)


def _settle(results: list[_Result]) -> None:
    for future, ok, value in results:
        if future.done():  # cancelled by its caller
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _as_storage_error(exc: Exception) -> Exception:
    """SQLite's own errors become :class:`StorageError`; the jobs' own errors pass."""
    if isinstance(exc, sqlite3.Error):
        error = StorageError(f"SQLite: {exc}")
        error.__cause__ = exc
        return error
    return exc


class _BatchAborted(Exception):
    pass


def _write_batch(conn: sqlite3.Connection, jobs: list[_Job]) -> list[tuple[bool, Any]]:
    """All jobs in one transaction, each under a savepoint (a job of one statement needs
    none, and consecutive writes of one row each by the same statement share statements:
    see below); one commit (group commit).

    A lone job of one statement (:class:`_Statement`) runs as that statement alone, in
    autocommit: SQLite makes it its own transaction and commits it (fsync and all), or
    rolls it back when it fails, as the savepoint would have; one call into SQLite
    instead of five."""
    if len(jobs) == 1 and isinstance(jobs[0], _Statement):
        try:
            return [(True, jobs[0](conn))]
        except Exception as exc:
            if conn.in_transaction:  # never, in autocommit; a guard against a leak
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            return [(False, _as_storage_error(exc))]
    outcomes: list[tuple[bool, Any]] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        i = 0
        while i < len(jobs):
            job = jobs[i]
            if isinstance(job, _Row):
                run = _rows_from(jobs, i, job.spec)
                if len(run) > 1:
                    _write_rows(conn, run, outcomes)
                    i += len(run)
                    continue
            i += 1
            if isinstance(job, _Statement):
                _write_statement(conn, job, outcomes)
                continue
            conn.execute("SAVEPOINT job")
            try:
                result = job(conn)
            except Exception as exc:
                try:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                except sqlite3.Error as rollback_exc:
                    # SQLite rolled the whole transaction back (I/O error, disk full).
                    raise _BatchAborted(rollback_exc) from exc
                outcomes.append((False, _as_storage_error(exc)))
            else:
                conn.execute("RELEASE job")
                outcomes.append((True, result))
        conn.execute("COMMIT")
    except (sqlite3.Error, _BatchAborted) as exc:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        return [(False, StorageError(f"SQLite write failed, nothing applied: {exc}")) for _ in jobs]
    return outcomes


def _write_statement(
    conn: sqlite3.Connection, job: _Statement, outcomes: list[tuple[bool, Any]]
) -> None:
    """One statement in the batch's transaction, without a savepoint: a statement that
    fails is undone by SQLite alone, the transaction and the statements before it kept
    (sqlite.org/lang_conflict.html, ABORT, the default; none of ours says FAIL, which
    would keep a part). An error that ends the transaction instead (SQLITE_FULL, IOERR,
    NOMEM: sqlite.org/lang_transaction.html, "Response To Errors Within A Transaction")
    aborts the batch, as a failed ROLLBACK TO does. Two calls into SQLite fewer than a
    savepoint, each of which gives up the GIL and waits to take it back."""
    try:
        result = job(conn)
    except Exception as exc:
        if not conn.in_transaction:
            raise _BatchAborted(exc) from exc
        outcomes.append((False, _as_storage_error(exc)))
    else:
        outcomes.append((True, result))


def _rows_from(jobs: list[_Job], start: int, spec: _RowInsert) -> list[_Row]:
    """The run of row writes by ``spec`` from ``jobs[start]`` on."""
    run: list[_Row] = []
    for job in islice(jobs, start, None):
        if not isinstance(job, _Row) or job.spec is not spec:
            break
        run.append(job)
    return run


def _write_rows(
    conn: sqlite3.Connection, run: list[_Row], outcomes: list[tuple[bool, Any]]
) -> None:
    """Consecutive writes of one row by the same statement (:class:`_Row`), in their
    order, several rows a statement (:func:`_insert_rows`): SQLite applies a statement's
    rows one after the other, an upsert's conflict with a row before it included, so the
    rows end as the writes one by one would leave them. A statement that fails is undone
    whole; its rows are then written one by one, so that only the one at fault fails."""
    spec = run[0].spec
    for start, per in _chunks(len(run), spec.sizes):
        chunk = run[start : start + per]
        if per == 1:
            _write_statement(conn, chunk[0], outcomes)
            continue
        try:
            conn.execute(spec.sql[per], list(chain.from_iterable(job.params for job in chunk)))
        except Exception as exc:
            if not conn.in_transaction:
                raise _BatchAborted(exc) from exc
            for job in chunk:
                _write_statement(conn, job, outcomes)
        else:
            outcomes.extend([(True, None)] * per)


def _read_batch(conn: sqlite3.Connection, jobs: list[_Job]) -> list[tuple[bool, Any]]:
    outcomes: list[tuple[bool, Any]] = []
    for job in jobs:
        try:
            outcomes.append((True, job(conn)))
        except Exception as exc:
            outcomes.append((False, _as_storage_error(exc)))
    return outcomes


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    current = 0 if row is None else int(row[0])
    if current > SCHEMA_VERSION:
        raise StorageError(
            f"database schema version {current} is newer than this gateway's {SCHEMA_VERSION}"
        )
    for statements in _MIGRATIONS[current:]:
        for statement in statements:
            conn.execute(statement)
    if row is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
    elif current != SCHEMA_VERSION:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))


def _lock(path: Path) -> int | None:
    """Take the one-process lock of the database at ``path``: the open lock file's
    descriptor (``None`` where there is no ``flock``); StorageError if another store
    holds it."""
    if sys.platform == "win32":
        # No fcntl on Windows; production runs on POSIX, so a developer's Windows
        # machine simply goes without the guard.
        return None
    import fcntl

    lock_path = path.with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    # No O_TRUNC: a refused opener must not erase the holder's pid. Never unlinked
    # either: a process that opened the old file would then lock a different inode.
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            # flock, not fcntl(F_SETLK): its lock belongs to this open file, so a
            # second store in the same process is refused as well.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise StorageError(_in_use(path.parent, os.pread(fd, 32, 0))) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _in_use(data_dir: Path, content: bytes) -> str:
    text = content.decode(errors="replace").strip()
    # Empty while the holder is between its lock and its write.
    pid = int(text) if text.isdigit() else None
    if pid == os.getpid():
        holder = f"another store in this process (pid {pid})"
    else:
        holder = "another ocpi-gateway process" + (f" (pid {pid})" if pid else "")
    return (
        f"{data_dir} is in use by {holder}; SQLite storage serves one process:"
        " use Redis (GATEWAY_REDIS_URL) to run several"
    )


def _unlock(fd: int | None) -> None:
    if fd is not None:
        # Closing the last descriptor of the open file releases the flock.
        os.close(fd)


class _Database:
    """The writer and reader threads of one database file; the store's ``backend``."""

    def __init__(
        self,
        writer: _Worker,
        reader: _Worker,
        lock: int | None,
        inline: sqlite3.Connection | None = None,
    ) -> None:
        self.write = writer.run
        self.read = reader.run
        self._workers = (writer, reader)
        self._lock: int | None = lock
        # The event loop's read-only connection (point reads, see ``lookup``), used only
        # by the thread that opened the store.
        self._inline = inline
        self._inline_thread = threading.get_ident()
        self._closed = False
        self._before_close: list[Callable[[], Awaitable[None]]] = []
        self._release_also: list[Callable[[], Awaitable[None]]] = []

    async def lookup(self, job: Callable[[sqlite3.Connection], _T]) -> _T:
        """A point read (one statement, an indexed key): on the calling thread's own
        connection when that is the loop that opened the store, else by the reader. A
        read SQLite refuses with a lock (busy timeout 0: it never waits) goes to the
        reader, which waits for it as every read does."""
        conn = self._inline
        if conn is None or threading.get_ident() != self._inline_thread:
            if self._closed:
                raise StorageError("the SQLite store is closed")
            return await self.read(job)
        try:
            return job(conn)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF not in (_SQLITE_BUSY, _SQLITE_LOCKED):
                raise _as_storage_error(exc) from None
        except sqlite3.Error as exc:
            raise _as_storage_error(exc) from None
        return await self.read(job)

    async def check_open(self) -> None:
        """StorageError once the store is closed, as every store call (for the stores
        kept in memory: leases, ownership, messages), without a thread hand-off."""
        if self._closed:
            raise StorageError("the SQLite store is closed")

    name = "sqlite"

    def observe_writes(self, observer: Callable[[float], None] | None) -> None:
        self._workers[0].observe = observer

    @property
    def writer_batches(self) -> int:
        """Write transactions committed so far (each holds one or more writes)."""
        return self._workers[0].batches

    @classmethod
    async def open(cls, path: Path, synchronous: str) -> _Database:
        if sqlite3.sqlite_version_info < (3, 24, 0):  # UPSERT
            raise StorageError(f"SQLite {sqlite3.sqlite_version} is too old (need 3.24+)")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        try:
            # First, so that a refused second process touches nothing (no migration).
            # On the loop, not in a thread: a few quick syscalls, and a cancelled open
            # cannot leave a lock behind that nobody releases.
            lock = _lock(path)
        except OSError as exc:
            raise StorageError(f"cannot open {path}: {exc}") from exc
        try:
            try:
                conn = await asyncio.to_thread(_connect, path, synchronous, read_only=False)
            except (sqlite3.Error, OSError) as exc:
                raise StorageError(f"cannot open {path}: {exc}") from exc
            writer = _Worker(
                "gateway-sqlite-writer", conn, _write_batch, window=GROUP_COMMIT_WINDOW
            )
            reader = await reader_after(
                writer, path, synchronous, "gateway-sqlite-reader", lambda: writer.run(_migrate)
            )
        except BaseException:
            _unlock(lock)
            raise
        try:
            inline = _connect(path, synchronous, read_only=True)
            inline.execute("PRAGMA busy_timeout = 0")
        except (sqlite3.Error, OSError) as exc:
            await reader.close()
            await writer.close()
            _unlock(lock)
            raise StorageError(f"cannot open {path}: {exc}") from exc
        except BaseException:
            await reader.close()
            await writer.close()
            _unlock(lock)
            raise
        return cls(writer, reader, lock, inline)

    async def ping(self) -> None:
        # Through the reader, behind whatever reads are queued: a stuck reader thread or
        # an unreadable file shows here. A read of a real table, not ``SELECT 1``, which
        # SQLite answers without touching the database.
        await self.read(_fetch_one("SELECT version FROM schema_version", ()))

    def release_also(self, release: Callable[[], Awaitable[None]]) -> None:
        """``release`` is awaited by :meth:`release_memory` too (the trail's and the status
        history's files)."""
        self._release_also.append(release)

    async def release_memory(self) -> None:
        """Every connection's page cache given back, this file's and those of
        :meth:`release_also` (Backend): up to 2 MiB each, kept full by a busy gateway, so
        a few MiB that stay with the process after a burst of work (10,000 chargers
        closing) unless they are asked back; the next reads fill them again."""
        if self._closed:
            raise StorageError("the SQLite store is closed")
        inline = self._inline
        if inline is not None and threading.get_ident() == self._inline_thread:
            try:
                inline.execute("PRAGMA shrink_memory")
            except sqlite3.Error as exc:
                raise _as_storage_error(exc) from None
        await asyncio.gather(
            *(worker.release_memory() for worker in self._workers),
            *(release() for release in self._release_also),
        )

    def close_first(self, close: Callable[[], Awaitable[None]]) -> None:
        """``close`` is awaited when this database closes, before its own threads end
        (the status history's file)."""
        self._before_close.append(close)

    async def close(self) -> None:
        """Apply every write queued so far, close both connections, then let another
        store open the database."""
        self._closed = True
        closers, self._before_close = self._before_close, []
        try:
            for close in closers:
                await close()
        finally:
            # Closed whatever those raised (the error is the caller's, not swallowed).
            inline, self._inline = self._inline, None
            try:
                if inline is not None:
                    inline.close()
                for worker in self._workers:
                    await worker.close()
            finally:
                lock, self._lock = self._lock, None
                _unlock(lock)


# -- stores ------------------------------------------------------------------------------


class _Statement:
    """A write job of exactly one statement (see :func:`_write_batch`): its result is
    None, or with ``changes`` the number of rows it changed."""

    __slots__ = ("changes", "params", "sql")

    def __init__(self, sql: str, params: Sequence[Any], changes: bool) -> None:
        self.sql = sql
        self.params = params
        self.changes = changes

    def __call__(self, conn: sqlite3.Connection) -> Any:
        rowcount = conn.execute(self.sql, self.params).rowcount
        return rowcount if self.changes else None


def _execute(sql: str, params: Sequence[Any]) -> Callable[[sqlite3.Connection], None]:
    return _Statement(sql, params, False)


def _changes(sql: str, params: Sequence[Any]) -> Callable[[sqlite3.Connection], int]:
    return _Statement(sql, params, True)


class _Row(_Statement):
    """A write job of one row by ``spec`` (:func:`_write_batch` gives consecutive ones
    of the same spec shared statements); its result is None."""

    __slots__ = ("spec",)

    def __init__(self, spec: _RowInsert, params: Sequence[Any]) -> None:
        super().__init__(spec.sql[1], params, False)
        self.spec = spec


def _fetch_one(sql: str, params: Sequence[Any]) -> Callable[[sqlite3.Connection], str | None]:
    def job(conn: sqlite3.Connection) -> str | None:
        row = conn.execute(sql, params).fetchone()
        return None if row is None else str(row[0])

    return job


def _fetch_all(sql: str, params: Sequence[Any]) -> Callable[[sqlite3.Connection], list[str]]:
    def job(conn: sqlite3.Connection) -> list[str]:
        return [row[0] for row in conn.execute(sql, params)]

    return job


def _decode_all(
    sql: str, decode: Callable[[dict[str, Any]], _T]
) -> Callable[[sqlite3.Connection], list[_T]]:
    """Every row's ``data`` decoded in the reader thread, not on the event loop: a whole
    fleet's records (10,000 chargers: about 40 ms of decoding) would hold every charger's
    answer for that long; in the thread, the loop takes its turns between (the GIL's
    switch interval)."""

    def job(conn: sqlite3.Connection) -> list[_T]:
        return [decode(codec.loads(row[0])) for row in conn.execute(sql)]

    return job


class SqliteChargerStore:
    def __init__(self, db: _Database) -> None:
        self._db = db
        # Every placed charger's location (charger id -> location id): read from the table
        # at the first placed(), then kept by this object's own writes. Exact: one
        # process uses the database (its lock file) and every write of the table is
        # this object's. None: not read yet, or dropped after a write whose outcome is
        # not known (it failed or was cancelled: it may have been applied).
        self._placed: dict[str, str] | None = None
        # Writes started so far (a read of the table that saw one start is not kept), and
        # those not finished yet.
        self._writes = 0
        self._in_flight = 0
        self._loading = asyncio.Lock()

    async def put(self, charger: Charger) -> None:
        data = codec.dumps(codec.encode_charger(charger))
        job = _execute(
            "INSERT INTO chargers (id, data) VALUES (?, ?)"
            " ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            (charger.id, data),
        )
        await self._written(job, charger.id, charger.location_id)

    async def get(self, charger_id: str) -> Charger | None:
        data = await self._db.lookup(
            _fetch_one("SELECT data FROM chargers WHERE id = ?", (charger_id,))
        )
        return None if data is None else codec.decode_charger(codec.loads(data))

    async def delete(self, charger_id: str) -> bool:
        job = _changes("DELETE FROM chargers WHERE id = ?", (charger_id,))
        return bool(await self._written(job, charger_id, None))

    async def _written(
        self, job: Callable[[sqlite3.Connection], _T], cid: str, to: str | None
    ) -> _T:
        """``job`` written, and the kept placements moved once it has committed."""
        self._writes += 1
        self._in_flight += 1
        try:
            result = await self._db.write(job)
        except BaseException:
            self._placed = None
            raise
        finally:
            self._in_flight -= 1
        placed = self._placed
        if placed is not None:
            if to is None:
                placed.pop(cid, None)
            else:
                placed[cid] = to
        return result

    async def placed(self, charger_id: str) -> Charger | None:
        # Every connector status change asks (gateway.roaming.catalog): a charger placed
        # nowhere is known from memory, without a read and a decode of its record (35 µs
        # of a status change's 85: tests/bench/README.md).
        placed = self._placed
        if placed is None:
            placed = await self._load()
        if placed is not None and charger_id not in placed:
            return None
        # Placed, or a write is on its way: the record as the table has it.
        charger = await self.get(charger_id)
        return None if charger is None or charger.location_id is None else charger

    async def _load(self) -> dict[str, str] | None:
        async with self._loading:
            if self._placed is not None:
                return self._placed
            if self._in_flight:
                return None
            started = self._writes
            placed = await self._db.read(_placements)
            # Kept only when no write started meanwhile (its change may be missing).
            if started == self._writes and not self._in_flight:
                self._placed = placed
            return placed

    async def list(self) -> list[Charger]:
        return await self._db.read(
            _decode_all("SELECT data FROM chargers ORDER BY id", codec.decode_charger)
        )


def _placements(conn: sqlite3.Connection) -> dict[str, str]:
    """Every placed charger's location, read and decoded in the reader thread."""
    placed: dict[str, str] = {}
    for (data,) in conn.execute("SELECT data FROM chargers"):
        charger = codec.decode_charger(codec.loads(data))
        if charger.location_id is not None:
            placed[charger.id] = charger.location_id
    return placed


# The writes a charger's messages make most (a status, a heartbeat now and then): many
# of them in one batch share statements (_write_batch).
_PUT_CHARGER_STATE: Final = _RowInsert(
    "INSERT INTO charger_states (id, data)",
    "(?, ?)",
    " ON CONFLICT (id) DO UPDATE SET data = excluded.data",
)
_PUT_CONNECTOR: Final = _RowInsert(
    "INSERT INTO connectors (charger_id, evse_id, connector_id, data)",
    "(?, ?, ?, ?)",
    " ON CONFLICT (charger_id, evse_id, connector_id) DO UPDATE SET data = excluded.data",
)


class SqliteChargerStateStore:
    def __init__(self, db: _Database) -> None:
        self._db = db

    async def put(self, state: ChargerState) -> None:
        data = codec.dumps(codec.encode_charger_state(state))
        await self._db.write(_Row(_PUT_CHARGER_STATE, (state.id, data)))

    async def get(self, charger_id: str) -> ChargerState | None:
        data = await self._db.lookup(
            _fetch_one("SELECT data FROM charger_states WHERE id = ?", (charger_id,))
        )
        return None if data is None else codec.decode_charger_state(codec.loads(data))

    async def list(self) -> list[ChargerState]:
        return await self._db.read(
            _decode_all("SELECT data FROM charger_states ORDER BY id", codec.decode_charger_state)
        )

    async def delete(self, charger_id: str) -> None:
        await self._db.write(_execute("DELETE FROM charger_states WHERE id = ?", (charger_id,)))


# Connectors of one charger read on the event loop's connection at most (see list()).
_INLINE_CONNECTORS: Final = 64
_CONNECTORS: Final = (
    "SELECT data FROM connectors WHERE charger_id = ? ORDER BY evse_id, connector_id"
)
_CONNECTORS_INLINE: Final = f"{_CONNECTORS} LIMIT {_INLINE_CONNECTORS + 1}"


class SqliteConnectorStore:
    def __init__(self, db: _Database) -> None:
        self._db = db

    async def put(self, state: ConnectorState) -> None:
        data = codec.dumps(codec.encode_connector(state))
        await self._db.write(
            _Row(_PUT_CONNECTOR, (state.charger_id, state.evse_id, state.connector_id, data))
        )

    async def list(self, charger_id: str) -> list[ConnectorState]:
        # A charger's few connectors are read as a point read is, on the loop's own
        # connection (the location catalog reads them at every status change of a placed
        # charger: a thread hand-off each, before); a charger that reported more than
        # _INLINE_CONNECTORS (an odd or hostile one: connector ids are not bounded) is
        # read by the reader thread, so that the loop never scans a long range.
        rows = await self._db.lookup(_fetch_all(_CONNECTORS_INLINE, (charger_id,)))
        if len(rows) > _INLINE_CONNECTORS:
            rows = await self._db.read(_fetch_all(_CONNECTORS, (charger_id,)))
        return [codec.decode_connector(codec.loads(data)) for data in rows]

    async def set_all(self, charger_id: str, status: ConnectorStatus, at: datetime) -> None:
        at = codec.utc(at, "at")  # refuse a naive time here, in the caller

        def job(conn: sqlite3.Connection) -> None:
            keys = conn.execute(
                "SELECT evse_id, connector_id FROM connectors WHERE charger_id = ?",
                (charger_id,),
            ).fetchall()
            conn.executemany(
                "UPDATE connectors SET data = ?"
                " WHERE charger_id = ? AND evse_id = ? AND connector_id = ?",
                [
                    (
                        codec.dumps(
                            codec.encode_connector(
                                ConnectorState(charger_id, evse_id, connector_id, status, at)
                            )
                        ),
                        charger_id,
                        evse_id,
                        connector_id,
                    )
                    for evse_id, connector_id in keys
                ],
            )

        await self._db.write(job)

    async def delete(self, charger_id: str) -> None:
        await self._db.write(_execute("DELETE FROM connectors WHERE charger_id = ?", (charger_id,)))


_INSERT_READING: Final = _RowInsert("INSERT INTO readings (tx_id, data)", "(?, ?)")
_TX_COLUMNS: Final = "id, charger_id, ocpp_id, started_at, status, data"


def _tx_row(tx: Transaction) -> tuple[str, str, str, int, str, str]:
    data = codec.encode_transaction(tx)
    return (
        tx.id,
        tx.charger_id,
        tx.ocpp_id,
        codec.time_key(tx.started_at, "Transaction.started_at"),
        data["status"],
        codec.dumps(data),
    )


def _reading_rows(tx_id: str, readings: Sequence[MeterReading]) -> list[tuple[str, str]]:
    return [(tx_id, codec.dumps(codec.encode_reading(reading))) for reading in readings]


def _taken(tx: Transaction) -> str:
    return f"({tx.charger_id!r}, {tx.ocpp_id!r}) belongs to another transaction than {tx.id!r}"


def _identity_changed(tx: Transaction) -> str:
    return f"transaction {tx.id!r} exists with another charger_id/ocpp_id (they cannot change)"


class SqliteTransactionStore:
    def __init__(self, db: _Database) -> None:
        self._db = db

    async def create(
        self, tx: Transaction, readings: Sequence[MeterReading] = ()
    ) -> tuple[Transaction, bool]:
        row = _tx_row(tx)
        reading_rows = _reading_rows(tx.id, readings)

        def job(conn: sqlite3.Connection) -> Transaction | None:
            inserted = conn.execute(
                f"INSERT INTO transactions ({_TX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                row,
            ).rowcount
            if inserted:
                if reading_rows:
                    _insert_rows(conn, _INSERT_READING, reading_rows)
                return None
            existing = conn.execute(
                "SELECT data FROM transactions WHERE charger_id = ? AND ocpp_id = ?",
                (tx.charger_id, tx.ocpp_id),
            ).fetchone()
            if existing is None:  # the id exists with another (charger_id, ocpp_id)
                raise Conflict(_identity_changed(tx))
            return codec.decode_transaction(codec.loads(existing[0]))

        existing = await self._db.write(job)
        return (tx, True) if existing is None else (existing, False)

    async def save(self, tx: Transaction, readings: Sequence[MeterReading] = ()) -> None:
        row = _tx_row(tx)
        reading_rows = _reading_rows(tx.id, readings)

        def job(conn: sqlite3.Connection) -> None:
            try:
                changed = conn.execute(
                    f"INSERT INTO transactions ({_TX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at,"
                    " status = excluded.status, data = excluded.data"
                    " WHERE charger_id = excluded.charger_id AND ocpp_id = excluded.ocpp_id",
                    row,
                ).rowcount
            except sqlite3.IntegrityError:  # the unique (charger_id, ocpp_id) index
                raise Conflict(_taken(tx)) from None
            if not changed:  # the id exists with another (charger_id, ocpp_id)
                raise Conflict(_identity_changed(tx))
            if reading_rows:
                _insert_rows(conn, _INSERT_READING, reading_rows)

        await self._db.write(job)

    async def get(self, tx_id: str) -> Transaction | None:
        data = await self._db.lookup(
            _fetch_one("SELECT data FROM transactions WHERE id = ?", (tx_id,))
        )
        return None if data is None else codec.decode_transaction(codec.loads(data))

    async def find(self, charger_id: str, ocpp_id: str) -> Transaction | None:
        data = await self._db.lookup(
            _fetch_one(
                "SELECT data FROM transactions WHERE charger_id = ? AND ocpp_id = ?",
                (charger_id, ocpp_id),
            )
        )
        return None if data is None else codec.decode_transaction(codec.loads(data))

    async def readings(self, tx_id: str) -> list[MeterReading]:
        rows = await self._db.read(
            _fetch_all("SELECT data FROM readings WHERE tx_id = ? ORDER BY id", (tx_id,))
        )
        return [codec.decode_reading(codec.loads(data)) for data in rows]

    async def active(self, charger_id: str) -> list[Transaction]:
        rows = await self._db.read(
            _fetch_all(
                "SELECT data FROM transactions"
                f" WHERE charger_id = ? AND status = '{_ACTIVE}'"
                " ORDER BY started_at DESC, id DESC",
                (charger_id,),
            )
        )
        return [codec.decode_transaction(codec.loads(data)) for data in rows]

    async def count_active(self) -> int:
        found = await self._db.read(
            _fetch_one(f"SELECT COUNT(*) FROM transactions WHERE status = '{_ACTIVE}'", ())
        )
        return int(found or 0)

    async def next_ocpp16_id(self) -> int:
        def job(conn: sqlite3.Connection) -> int:
            conn.execute(
                "UPDATE sequences SET value = value + 1 WHERE name = ?", (_OCPP16_SEQUENCE,)
            )
            row = conn.execute(
                "SELECT value FROM sequences WHERE name = ?", (_OCPP16_SEQUENCE,)
            ).fetchone()
            return int(row[0])

        result: int = await self._db.write(job)
        return result

    async def list(
        self,
        *,
        charger_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Transaction]:
        codec.check_page(limit, offset)
        where: list[str] = []
        params: list[Any] = []
        if charger_id is not None:
            where.append("charger_id = ?")
            params.append(charger_id)
        if since is not None:
            where.append("started_at >= ?")
            params.append(codec.time_key(since, "since"))
        if until is not None:
            where.append("started_at < ?")
            params.append(codec.time_key(until, "until"))
        sql = "SELECT data FROM transactions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?"
        params += (limit, offset)
        rows = await self._db.read(_fetch_all(sql, params))
        return [codec.decode_transaction(codec.loads(data)) for data in rows]


class SqliteTokenStore:
    def __init__(self, db: _Database) -> None:
        self._db = db

    # Found by token_key (case-insensitively, as OCPP compares id tokens).
    async def put(self, token: LocalToken) -> None:
        data = codec.dumps(codec.encode_token(token))
        await self._db.write(
            _execute(
                "INSERT INTO tokens (key, uid, data) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET uid = excluded.uid, data = excluded.data",
                (token_key(token.uid), token.uid, data),
            )
        )

    async def get(self, uid: str) -> LocalToken | None:
        data = await self._db.lookup(
            _fetch_one("SELECT data FROM tokens WHERE key = ?", (token_key(uid),))
        )
        return None if data is None else codec.decode_token(codec.loads(data))

    async def delete(self, uid: str) -> bool:
        return bool(
            await self._db.write(_changes("DELETE FROM tokens WHERE key = ?", (token_key(uid),)))
        )

    async def list(self) -> list[LocalToken]:
        rows = await self._db.read(_fetch_all("SELECT data FROM tokens ORDER BY uid", ()))
        return [codec.decode_token(codec.loads(data)) for data in rows]


# -- roaming: documents and outbox ---------------------------------------------------


def _snapshot(
    job: Callable[[sqlite3.Connection], _T],
) -> Callable[[sqlite3.Connection], _T]:
    """``job`` (on the reader) inside one read transaction: its queries see one snapshot."""

    def wrapped(conn: sqlite3.Connection) -> _T:
        conn.execute("BEGIN")
        try:
            result = job(conn)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")  # read only: ends the snapshot
        return result

    return wrapped


# One outbox row as given to the INSERT: id, partner_id, ordering_key, ordering_key
# (for the head test), next_attempt_at, attempts, last_error, data.
_OutboxRow = tuple[str, str, str, str, int, int, str | None, str]

_INSERT_OUTBOX: Final = (
    "INSERT INTO outbox (id, partner_id, ordering_key, status, head, next_attempt_at,"
    " attempts, last_error, data) VALUES (?, ?, ?, '" + _PENDING + "',"
    " NOT EXISTS (SELECT 1 FROM outbox WHERE ordering_key = ? AND status <> '" + _DONE + "'),"
    " ?, ?, ?, ?)"
)
_OUTBOX_COLUMNS: Final = "seq, status, attempts, last_error, next_attempt_at, data, completed_at"


def _outbox_rows(items: Sequence[OutboxItem]) -> list[_OutboxRow]:
    """Validate and encode new items (before anything is queued for writing)."""
    rows: list[_OutboxRow] = []
    seen: set[str] = set()
    for item in items:
        data = codec.dumps(codec.encode_outbox_item(item))
        if item.id in seen:
            raise Conflict(f"outbox item {item.id!r} is given twice")
        seen.add(item.id)
        next_at = codec.time_key(item.next_attempt_at, "OutboxItem.next_attempt_at")
        rows.append(
            (
                item.id,
                item.partner_id,
                item.ordering_key,
                item.ordering_key,
                next_at,
                item.attempts,
                item.last_error,
                data,
            )
        )
    return rows


def _insert_outbox(conn: sqlite3.Connection, rows: Sequence[_OutboxRow]) -> list[int]:
    """Insert new items (in the caller's job, hence its savepoint); returns their seqs."""
    seqs: list[int] = []
    for row in rows:
        try:
            cursor = conn.execute(_INSERT_OUTBOX, row)
        except sqlite3.IntegrityError:  # the unique id
            raise Conflict(f"outbox item {row[0]!r} already exists") from None
        seqs.append(int(cursor.lastrowid or 0))  # always set after an INSERT
    return seqs


def _stored(items: Sequence[OutboxItem], seqs: Sequence[int]) -> list[OutboxItem]:
    return [
        replace(
            item,
            seq=seq,
            created_at=codec.utc(item.created_at, "OutboxItem.created_at"),
            next_attempt_at=codec.utc(item.next_attempt_at, "OutboxItem.next_attempt_at"),
        )
        for item, seq in zip(items, seqs, strict=True)
    ]


def _decode_outbox(row: Sequence[Any]) -> OutboxItem:
    seq, status, attempts, last_error, next_attempt_at, data, completed_at = row
    return codec.decode_outbox_item(
        codec.loads(data),
        seq=seq,
        status=status,
        attempts=attempts,
        last_error=last_error,
        next_attempt_at=next_attempt_at,
        completed_at=completed_at,
    )


def _fetch_outbox(
    sql: str, params: Sequence[Any]
) -> Callable[[sqlite3.Connection], list[tuple[Any, ...]]]:
    def job(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
        return conn.execute(sql, params).fetchall()

    return job


def _mark_done(
    conn: sqlite3.Connection, seq: int, ordering_key: str, head: int, at: int | None
) -> None:
    """DONE at ``at`` (a time_key; None: its next_attempt_at), and if it headed its key,
    the key's next undelivered item becomes the head."""
    conn.execute(
        f"UPDATE outbox SET status = '{_DONE}', head = 0,"
        " completed_at = COALESCE(?, next_attempt_at) WHERE seq = ?",
        (at, seq),
    )
    if head:
        conn.execute(
            "UPDATE outbox SET head = 1 WHERE seq = (SELECT seq FROM outbox"
            f" WHERE ordering_key = ? AND status <> '{_DONE}' ORDER BY seq LIMIT 1)",
            (ordering_key,),
        )


def _outbox_state(conn: sqlite3.Connection, item_id: str) -> tuple[int, str, str, int] | None:
    """seq, ordering_key, status, head of the item, or None."""
    row = conn.execute(
        "SELECT seq, ordering_key, status, head FROM outbox WHERE id = ?", (item_id,)
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]), str(row[2]), int(row[3]))


class SqliteDocumentStore:
    """One collection: the rows of ``documents`` with that ``collection``."""

    def __init__(self, db: _Database, collection: str) -> None:
        self._db = db
        self._collection = collection

    async def put(self, doc: Document, *, enqueue: Sequence[OutboxItem] = ()) -> None:
        data = codec.dumps(codec.encode_document(doc))
        row = (
            self._collection,
            doc.key,
            doc.owner,
            codec.time_key(doc.last_updated, "Document.last_updated"),
            data,
        )
        outbox_rows = _outbox_rows(enqueue)

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO documents (collection, key, owner, last_updated, data)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (collection, key) DO UPDATE SET"
                " owner = excluded.owner, last_updated = excluded.last_updated,"
                " data = excluded.data",
                row,
            )
            _insert_outbox(conn, outbox_rows)

        await self._db.write(job)

    async def get(self, key: str) -> Document | None:
        data = await self._db.lookup(
            _fetch_one(
                "SELECT data FROM documents WHERE collection = ? AND key = ?",
                (self._collection, key),
            )
        )
        return None if data is None else codec.decode_document(codec.loads(data))

    async def delete(self, key: str, *, enqueue: Sequence[OutboxItem] = ()) -> bool:
        outbox_rows = _outbox_rows(enqueue)
        params = (self._collection, key)

        def job(conn: sqlite3.Connection) -> bool:
            deleted = conn.execute(
                "DELETE FROM documents WHERE collection = ? AND key = ?", params
            ).rowcount
            if deleted:
                _insert_outbox(conn, outbox_rows)
            return bool(deleted)

        result: bool = await self._db.write(job)
        return result

    async def list(
        self,
        *,
        owner: str | None = None,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[Document], int]:
        codec.check_page(limit, offset)
        where = ["collection = ?"]
        params: list[Any] = [self._collection]
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if date_from is not None:
            where.append("last_updated >= ?")
            params.append(codec.time_key(date_from, "date_from"))
        if date_to is not None:
            where.append("last_updated < ?")
            params.append(codec.time_key(date_to, "date_to"))
        condition = " AND ".join(where)

        def job(conn: sqlite3.Connection) -> tuple[list[str], int]:
            total = conn.execute(
                f"SELECT COUNT(*) FROM documents WHERE {condition}", params
            ).fetchone()[0]
            rows = conn.execute(
                f"SELECT data FROM documents WHERE {condition}"
                " ORDER BY last_updated, key LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
            return [row[0] for row in rows], int(total)

        rows, total = await self._db.read(_snapshot(job))
        return [codec.decode_document(codec.loads(data)) for data in rows], total


class SqliteOutboxStore:
    def __init__(self, db: _Database) -> None:
        self._db = db

    async def enqueue(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        rows = _outbox_rows(items)
        if not rows:
            return []
        seqs: list[int] = await self._db.write(lambda conn: _insert_outbox(conn, rows))
        return _stored(items, seqs)

    async def due(self, now: datetime, *, limit: int = 100) -> list[OutboxItem]:
        codec.check_page(limit, 0)
        rows = await self._db.read(
            _fetch_outbox(
                # INDEXED BY: without statistics the planner prefers outbox_by_status,
                # which would also walk the pending items queued behind every head.
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox INDEXED BY outbox_due"
                f" WHERE head = 1 AND status = '{_PENDING}' AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at, seq LIMIT ?",
                (codec.time_key(now, "now"), limit),
            )
        )
        return [_decode_outbox(row) for row in rows]

    async def complete(self, item_id: str, *, at: datetime | None = None) -> None:
        done_at = None if at is None else codec.time_key(at, "at")

        def job(conn: sqlite3.Connection) -> None:
            state = _outbox_state(conn, item_id)
            if state is not None and state[2] != _DONE:
                _mark_done(conn, state[0], state[1], state[3], done_at)

        await self._db.write(job)

    async def retry_later(self, item_id: str, next_attempt_at: datetime, error: str) -> None:
        next_at = codec.time_key(next_attempt_at, "next_attempt_at")
        await self._db.write(
            _execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
                f" WHERE id = ? AND status = '{_PENDING}'",
                (error, next_at, item_id),
            )
        )

    async def fail(self, item_id: str, error: str) -> None:
        await self._db.write(
            _execute(
                f"UPDATE outbox SET status = '{_FAILED}', attempts = attempts + 1,"
                f" last_error = ? WHERE id = ? AND status = '{_PENDING}'",
                (error, item_id),
            )
        )

    async def replay(self, item_id: str, now: datetime) -> bool:
        at = codec.time_key(now, "now")
        changed = await self._db.write(
            _changes(
                f"UPDATE outbox SET status = '{_PENDING}', next_attempt_at = ?"
                f" WHERE id = ? AND status = '{_FAILED}'",
                (at, item_id),
            )
        )
        return bool(changed)

    async def discard(self, item_id: str, *, at: datetime | None = None) -> bool:
        done_at = None if at is None else codec.time_key(at, "at")

        def job(conn: sqlite3.Connection) -> bool:
            state = _outbox_state(conn, item_id)
            if state is None or state[2] != _FAILED:
                return False
            _mark_done(conn, state[0], state[1], state[3], done_at)
            return True

        result: bool = await self._db.write(job)
        return result

    async def purge_done(self, before: datetime, *, limit: int = 1000) -> int:
        codec.check_page(limit, 0)
        cutoff = codec.time_key(before, "before")
        if limit == 0:
            return 0
        deleted: int = await self._db.write(
            _changes(
                # Only done rows: never a head, never in outbox_undelivered or outbox_due,
                # so no other row's state changes. AUTOINCREMENT: seqs stay unused.
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox INDEXED BY"
                f" outbox_done WHERE status = '{_DONE}' AND completed_at < ?"
                " ORDER BY completed_at, seq LIMIT ?)",
                (cutoff, limit),
            )
        )
        return deleted

    async def pending_count(self, partner_id: str) -> int:
        found = await self._db.read(
            _fetch_one(
                f"SELECT COUNT(*) FROM outbox WHERE partner_id = ? AND status = '{_PENDING}'",
                (partner_id,),
            )
        )
        return int(found or 0)

    async def get(self, item_id: str) -> OutboxItem | None:
        rows = await self._db.read(
            _fetch_outbox(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (item_id,))
        )
        return _decode_outbox(rows[0]) if rows else None

    async def list(
        self,
        *,
        status: OutboxStatus | None = None,
        partner_id: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[OutboxItem]:
        codec.check_page(limit, offset)
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(OutboxStatus(status).value)
        if partner_id is not None:
            where.append("partner_id = ?")
            params.append(partner_id)
        sql = f"SELECT {_OUTBOX_COLUMNS} FROM outbox"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq LIMIT ? OFFSET ?"
        rows = await self._db.read(_fetch_outbox(sql, [*params, limit, offset]))
        return [_decode_outbox(row) for row in rows]


class SqliteLeaseStore:
    """Leases of the one process that may use a SQLite data dir (the lock file refuses
    a second): kept in memory, since no other process can ever ask; a lease the process
    held before a restart is gone with it, as an expired one. Same semantics as the
    Redis leases (one contract suite), expiry measured by ``clock`` (monotonic seconds,
    injected for tests), never by the domain clock."""

    def __init__(self, database: _Database, clock: Callable[[], float] = time.monotonic) -> None:
        self._database = database
        self._clock = clock
        self._leases: dict[str, tuple[str, float]] = {}  # name -> (holder, expires at)

    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        check_lease(name, holder, ttl)
        await self._open()
        current = self._current(name)
        if current is not None and current != holder:
            return False
        self._leases[name] = (holder, self._clock() + ttl)
        return True

    async def renew(self, name: str, holder: str, ttl: float) -> bool:
        check_lease(name, holder, ttl)
        await self._open()
        if self._current(name) != holder:
            return False
        self._leases[name] = (holder, self._clock() + ttl)
        return True

    async def release(self, name: str, holder: str) -> None:
        check_lease(name, holder)
        await self._open()
        if self._current(name) == holder:
            del self._leases[name]

    async def holder(self, name: str) -> str | None:
        check_lease(name, "-")
        await self._open()
        return self._current(name)

    def _current(self, name: str) -> str | None:
        lease = self._leases.get(name)
        if lease is None:
            return None
        if lease[1] <= self._clock():
            del self._leases[name]
            return None
        return lease[0]

    async def _open(self) -> None:
        # StorageError once the store is closed, like the others (the leases themselves
        # need no database).
        await self._database.check_open()
