"""SQLite backend specifics: durability under kill -9, schema, threads, group commit."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import sys
import textwrap
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gateway
from gateway.domain.models import Charger, LocalToken
from gateway.storage import codec
from gateway.storage.base import StorageError, Store
from gateway.storage.sqlite import (
    SCHEMA_VERSION,
    _connect,
    _Row,
    _RowInsert,
    _Statement,
    _write_batch,
    open_sqlite_store,
)

from .samples import (
    at,
    connector,
    document,
    full_charger,
    full_charger_state,
    outbox_item,
    reading,
    transaction,
)

REPO_ROOT = Path(gateway.__file__).resolve().parent.parent

# Eight concurrent writers, each: take a 1.6 id, create a transaction with a reading,
# and print "<tx id> <1.6 id>" once the create returned (= was acknowledged).
WRITER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from decimal import Decimal
    from pathlib import Path

    from gateway.domain.models import Measurand, MeterReading, Transaction
    from gateway.storage.sqlite import open_sqlite_store

    async def main() -> None:
        store = await open_sqlite_store(Path(sys.argv[1]))
        print("ready", flush=True)

        async def writer(w: int) -> None:
            i = 0
            while True:
                n = await store.transactions.next_ocpp16_id()
                now = datetime.now(UTC)
                tx = Transaction(id=f"w{w}-{i}", charger_id=f"CP-{w}", ocpp_id=str(n),
                                 evse_id=1, connector_id=1, started_at=now)
                reading = MeterReading(now, Measurand.ENERGY_WH, Decimal(f"{n}.5"))
                await store.transactions.create(tx, [reading])
                print(tx.id, n, flush=True)
                i += 1

        await asyncio.gather(*(writer(w) for w in range(8)))

    asyncio.run(main())
    """
)


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "kill" / "gateway.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER_SCRIPT,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    acknowledged: dict[str, int] = {}
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ready\n"
        while len(acknowledged) < 300:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            tx_id, n = line.split()
            acknowledged[tx_id.decode()] = int(n)
    finally:
        proc.kill()  # SIGKILL, while the writers keep writing: no clean shutdown at all
        rest, _ = await proc.communicate()
    # Lines printed before the kill landed are acknowledged writes too; a line the kill
    # cut short (no newline yet) was not acknowledged, and may be garbled: skip it.
    complete_lines = rest.decode(errors="replace").split("\n")[:-1]
    for line in complete_lines:
        tx_id, n = line.split()
        acknowledged[tx_id] = int(n)
    assert proc.returncode == -9

    store = await open_sqlite_store(path)
    try:
        for tx_id, n in acknowledged.items():
            tx = await store.transactions.get(tx_id)
            assert tx is not None, f"acknowledged {tx_id} lost"
            assert tx.ocpp_id == str(n)
            assert [r.value for r in await store.transactions.readings(tx_id)] == [
                reading(0, f"{n}.5").value
            ]
        # No 1.6 id is handed out twice across the crash.
        assert await store.transactions.next_ocpp16_id() > max(acknowledged.values())
    finally:
        await store.close()


async def test_creates_the_directories_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "gateway.sqlite3"
    store = await open_sqlite_store(path)
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    conn.close()


async def test_reopen_keeps_the_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    for _ in range(2):
        store = await open_sqlite_store(path)
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    conn.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    store = await open_sqlite_store(path)
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="newer"):
        await open_sqlite_store(path)


async def test_an_unusable_path_fails_with_storage_error(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(StorageError):
        await open_sqlite_store(tmp_path / "dir.sqlite3")


def writer_batches(store: Store) -> int:
    return store.backend.writer_batches  # type: ignore[attr-defined, no-any-return]


def reader_batches(store: Store) -> int:
    return store.backend._workers[1].batches  # type: ignore[attr-defined, no-any-return]


async def test_a_chargers_connectors_are_read_on_the_loop_up_to_64(tmp_path: Path) -> None:
    """No thread hand-off for a charger's connectors (a placed charger's every status
    change reads them), unless it has more than 64: then the reader thread reads them."""
    store = await open_sqlite_store(tmp_path / "gateway.sqlite3")
    try:
        for number in range(1, 65):
            await store.connectors.put(connector(connector_id=number))
        before = reader_batches(store)
        assert len(await store.connectors.list("CP-1")) == 64
        assert reader_batches(store) == before
        await store.connectors.put(connector(connector_id=65))
        listed = await store.connectors.list("CP-1")
        assert [state.connector_id for state in listed] == list(range(1, 66))
        assert reader_batches(store) == before + 1
    finally:
        await store.close()


async def test_concurrent_writes_are_group_committed(tmp_path: Path) -> None:
    store = await open_sqlite_store(tmp_path / "gateway.sqlite3")
    try:
        before = writer_batches(store)
        await asyncio.gather(
            *(store.connectors.put(connector(evse_id=i)) for i in range(200)),
            *(store.transactions.create(transaction(f"t{i}"), [reading(i)]) for i in range(200)),
        )
        batches = writer_batches(store) - before
        assert 1 <= batches < 40, f"400 writes took {batches} commits"
        assert len(await store.connectors.list("CP-1")) == 200
        assert len(await store.transactions.list(limit=1000)) == 200
    finally:
        await store.close()


async def test_writes_one_at_a_time_commit_each_and_are_read_back(tmp_path: Path) -> None:
    """A lone single-statement write runs in autocommit and a steady stream of them shares
    commits within the group-commit window; each is applied (and committed: a second
    connection reads it) before its call returns, and point reads on the loop see it."""
    path = tmp_path / "gateway.sqlite3"
    store = await open_sqlite_store(path)
    try:
        for i in range(50):
            charger = full_charger(f"CP-{i}")
            await store.chargers.put(charger)
            assert await store.chargers.get(charger.id) == charger  # the loop's connection
            other = sqlite3.connect(path)
            try:
                row = other.execute("SELECT id FROM chargers WHERE id = ?", (charger.id,))
                assert row.fetchone() == (charger.id,)
            finally:
                other.close()
        tx = transaction("t1")
        await store.transactions.create(tx, [reading(1)])
        assert await store.transactions.find(tx.charger_id, tx.ocpp_id) == tx
        assert await store.transactions.get("t1") == tx
        assert await store.charger_states.get("nobody") is None
        assert await store.chargers.delete("CP-0") is True
        assert await store.chargers.delete("CP-0") is False
    finally:
        await store.close()
    with pytest.raises(StorageError):
        await store.chargers.get("CP-1")
    with pytest.raises(StorageError):
        await store.leases.holder("sessions")


async def test_a_point_read_refused_as_busy_goes_to_the_reader(tmp_path: Path) -> None:
    """The loop's connection never waits for a lock: while another connection holds the
    database exclusively, a point read is served by the reader thread (which waits)."""
    path = tmp_path / "gateway.sqlite3"
    store = await open_sqlite_store(path)
    try:
        charger = full_charger("CP-1")
        await store.chargers.put(charger)
        # An exclusive lock on a WAL database keeps readers out only during recovery;
        # simulate the refusal by making the loop's connection fail as SQLite would.
        database = store.backend
        inline = database._inline  # type: ignore[attr-defined]

        class Busy:
            def execute(self, *_: object) -> None:
                error = sqlite3.OperationalError("database is locked")
                error.sqlite_errorcode = 5
                raise error

        database._inline = Busy()  # type: ignore[attr-defined]
        try:
            assert await store.chargers.get("CP-1") == charger
        finally:
            database._inline = inline  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_the_event_loop_keeps_running_during_writes(tmp_path: Path) -> None:
    """The loop is free while SQLite works: a ticker keeps ticking through 300 writes."""
    store = await open_sqlite_store(tmp_path / "gateway.sqlite3")
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        for i in range(300):
            await store.transactions.save(transaction(), [reading(i)])
    finally:
        stop.set()
        await task
        await store.close()
    assert ticks >= 300


async def test_close_applies_the_writes_queued_before_it(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    store = await open_sqlite_store(path)
    pending = [
        asyncio.create_task(store.transactions.create(transaction(f"t{i}"))) for i in range(100)
    ]
    await asyncio.sleep(0)  # the tasks queue their writes
    await store.close()
    assert all(task.done() and task.result()[1] for task in pending)

    store = await open_sqlite_store(path)
    try:
        assert len(await store.transactions.list(limit=1000)) == 100
    finally:
        await store.close()


async def test_a_cancelled_caller_does_not_break_the_writer(tmp_path: Path) -> None:
    store = await open_sqlite_store(tmp_path / "gateway.sqlite3")
    try:
        task = asyncio.create_task(store.transactions.create(transaction("cancelled")))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The write may or may not have been applied; the store keeps working.
        assert (await store.transactions.create(transaction("next")))[1] is True
        assert await store.transactions.get("next") is not None
    finally:
        await store.close()


def _drop_after_version_3(conn: sqlite3.Connection) -> None:
    """What migrations 4 and later created (status history, certificates, device models;
    the status history's table is gone already: moved to its own file at open)."""
    conn.execute("DROP TABLE IF EXISTS status_history")
    conn.execute("DELETE FROM sqlite_sequence WHERE name = 'status_history'")
    conn.execute("DROP TABLE certificates")
    for table in ("device_model", "device_reports", "device_alerts"):
        conn.execute(f"DROP TABLE {table}")


async def test_a_version_6_database_finds_its_tokens_case_insensitively(tmp_path: Path) -> None:
    """Tokens stored by exact uid before (schema 6) are found by any case after; of uids
    that differ only in case, the one updated last stays, else the first in byte order."""
    path = tmp_path / "gateway.sqlite3"
    store = await open_sqlite_store(path)
    await store.close()
    tokens = [
        LocalToken(uid="aBc"),
        LocalToken(uid="abc", valid=False),
        LocalToken(uid="ABC", contract_id="NL-ABC"),
        LocalToken(uid="Mixed-1"),
        LocalToken(uid="x\u00e9y"),  # not ASCII: only its ASCII letters fold
        LocalToken(uid="NEW-1", updated_at=at(1)),
        LocalToken(uid="new-1", valid=False, updated_at=at(2)),  # updated last: it stays
        LocalToken(uid="New-1", updated_at=None),
    ]
    conn = sqlite3.connect(path)
    with conn:  # the tokens table as schema 6 made it
        conn.execute("DROP TABLE tokens")
        conn.execute("CREATE TABLE tokens (uid TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID")
        for token in tokens:
            data = codec.dumps(codec.encode_token(token))
            conn.execute("INSERT INTO tokens (uid, data) VALUES (?, ?)", (token.uid, data))
        conn.execute("UPDATE schema_version SET version = 6")
    conn.close()

    store = await open_sqlite_store(path)
    try:
        for asked in ("abc", "ABC", "AbC"):
            assert await store.tokens.get(asked) == tokens[2]
        assert await store.tokens.get("MIXED-1") == tokens[3]
        assert await store.tokens.get("X\u00e9Y") == tokens[4]
        assert await store.tokens.get("x\u00c9y") is None  # \u00e9 is not ASCII: not folded
        assert await store.tokens.get("NEW-1") == tokens[6]
        assert [t.uid for t in await store.tokens.list()] == [
            "ABC",
            "Mixed-1",
            "new-1",
            "x\u00e9y",
        ]
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    conn.close()


async def test_a_version_1_database_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    """A database from before the roaming tables gets them, keeping what it holds."""
    path = tmp_path / "gateway.sqlite3"
    store = await open_sqlite_store(path)
    await store.chargers.put(full_charger())
    await store.close()
    conn = sqlite3.connect(path)
    with conn:  # back to what version 1 created
        conn.execute("DROP TABLE documents")
        conn.execute("DROP TABLE outbox")
        conn.execute("DELETE FROM sqlite_sequence WHERE name = 'outbox'")
        _drop_after_version_3(conn)
        conn.execute("UPDATE schema_version SET version = 1")
    conn.close()

    store = await open_sqlite_store(path)
    try:
        assert await store.chargers.get("CP-1") == full_charger()
        await store.locations.put(document("L1"), enqueue=[outbox_item("i1")])
        assert await store.locations.list() == ([document("L1")], 1)
        assert [item.seq for item in await store.outbox.due(at(0))] == [1]
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    conn.close()


async def test_a_document_and_its_items_are_one_write(tmp_path: Path) -> None:
    """put(enqueue=...) is one job of the writer: group-committed with the others."""
    store = await open_sqlite_store(tmp_path / "gateway.sqlite3")
    try:
        before = writer_batches(store)
        await asyncio.gather(
            *(
                store.sessions.put(
                    document(f"S{i}"), enqueue=[outbox_item(f"i{i}-{n}", f"S{i}") for n in range(3)]
                )
                for i in range(100)
            )
        )
        assert 1 <= writer_batches(store) - before < 20
        assert len(await store.outbox.due(at(0), limit=1000)) == 100
    finally:
        await store.close()


async def test_a_version_2_database_gets_completion_times_for_its_done_items(
    tmp_path: Path,
) -> None:
    """Items done before the retention migration are completed at their next_attempt_at
    (what complete() without a time records) and can then be purged."""
    path = tmp_path / "gateway.sqlite3"
    store = await open_sqlite_store(path)
    await store.outbox.enqueue(
        [outbox_item("old", "K", due_at=at(0)), outbox_item("new", "K", due_at=at(50))]
    )
    await store.outbox.complete("old", at=at(500))
    await store.close()
    conn = sqlite3.connect(path)
    with conn:  # back to what version 2 created
        conn.execute("DROP INDEX outbox_done")
        conn.execute("ALTER TABLE outbox DROP COLUMN completed_at")
        _drop_after_version_3(conn)
        conn.execute("UPDATE schema_version SET version = 2")
    conn.close()

    store = await open_sqlite_store(path)
    try:
        old = await store.outbox.get("old")
        assert old is not None and old.completed_at == at(0)
        new = await store.outbox.get("new")
        assert new is not None and new.completed_at is None
        assert await store.outbox.purge_done(at(0)) == 0
        assert await store.outbox.purge_done(at(1)) == 1
        assert [item.id for item in await store.outbox.due(at(50))] == ["new"]
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    # purge_done's scan: a range of the partial index, in its order (no sort).
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT seq FROM outbox INDEXED BY outbox_done"
        " WHERE status = 'done' AND completed_at < 5 ORDER BY completed_at, seq LIMIT 10"
    ).fetchall()
    assert "outbox_done (completed_at<?)" in str(plan)
    assert "TEMP B-TREE" not in str(plan)
    conn.close()


def _batch_db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    conn.execute("INSERT INTO t VALUES (1, 'kept')")
    return conn


def test_a_failing_statement_in_a_batch_fails_alone() -> None:
    """A batch's one-statement writes run without a savepoint each: the one that breaks
    a constraint fails alone (SQLite undoes that statement), the writes before and after
    it, one-statement or not, are committed with the batch."""
    conn = _batch_db()

    def two_rows(c: sqlite3.Connection) -> str:
        c.execute("INSERT INTO t VALUES (5, 'job a')")
        c.execute("INSERT INTO t VALUES (6, 'job b')")
        return "done"

    outcomes = _write_batch(
        conn,
        [
            _Statement("INSERT INTO t VALUES (?, ?)", (2, "two"), False),
            # Two rows, the second one a duplicate: the first is undone with it.
            _Statement("INSERT INTO t VALUES (3, 'three'), (1, 'again')", (), False),
            _Statement("UPDATE t SET v = ? WHERE k = ?", ("ONE", 1), True),
            two_rows,
            _Statement("INSERT INTO t VALUES (?, ?)", (4, None), False),  # NOT NULL
        ],
    )
    assert [ok for ok, _ in outcomes] == [True, False, True, True, False]
    assert outcomes[2][1] == 1  # rows changed
    assert outcomes[3][1] == "done"
    assert isinstance(outcomes[1][1], StorageError)
    assert "UNIQUE" in str(outcomes[1][1])
    assert "NOT NULL" in str(outcomes[4][1])
    assert not conn.in_transaction  # committed
    rows = conn.execute("SELECT k, v FROM t ORDER BY k").fetchall()
    assert rows == [(1, "ONE"), (2, "two"), (5, "job a"), (6, "job b")]


def test_a_statement_that_ends_the_transaction_fails_the_whole_batch() -> None:
    """An error after which SQLite has rolled the whole transaction back (here a conflict
    clause that says so; disk full or an I/O error do the same) fails every write of the
    batch, none applied, rather than committing what came after it alone."""
    conn = _batch_db()
    outcomes = _write_batch(
        conn,
        [
            _Statement("INSERT INTO t VALUES (?, ?)", (2, "two"), False),
            _Statement("INSERT OR ROLLBACK INTO t VALUES (?, ?)", (1, "again"), False),
            _Statement("INSERT INTO t VALUES (?, ?)", (3, "three"), False),
        ],
    )
    assert [ok for ok, _ in outcomes] == [False, False, False]
    assert all("nothing applied" in str(value) for _, value in outcomes)
    assert not conn.in_transaction
    assert conn.execute("SELECT k, v FROM t").fetchall() == [(1, "kept")]


# A row write as the stores make them (an upsert, as a connector's state is put).
_UPSERT = _RowInsert(
    "INSERT INTO t (k, v)", "(?, ?)", " ON CONFLICT (k) DO UPDATE SET v = excluded.v"
)
_PLAIN = _RowInsert("INSERT INTO t (k, v)", "(?, ?)")


def _job(kind: str, key: int, value: str | None) -> Callable[[sqlite3.Connection], object]:
    if kind == "upsert":
        return _Row(_UPSERT, (key, value))
    if kind == "insert":  # fails on a key already there
        return _Row(_PLAIN, (key, value))
    if kind == "update":
        return _Statement("UPDATE t SET v = ? WHERE k = ?", (value, key), True)

    def two(conn: sqlite3.Connection) -> int:  # under a savepoint: both rows or neither
        conn.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", (key + 100, "pair"))
        conn.execute("INSERT INTO t VALUES (?, ?)", (key, value))  # may fail
        return key

    return two


def _alone(
    conn: sqlite3.Connection, job: Callable[[sqlite3.Connection], object]
) -> tuple[bool, object]:
    """The oracle: ``job`` in a transaction of its own, all of it or nothing."""
    conn.execute("BEGIN")
    try:
        result = job(conn)
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK")
        return False, exc
    conn.execute("COMMIT")
    return True, result


_jobs = st.lists(
    st.tuples(
        st.sampled_from(["upsert", "upsert", "upsert", "insert", "update", "two rows"]),
        st.integers(1, 12),
        st.one_of(st.none(), st.text("abc", min_size=1, max_size=3)),  # None: NOT NULL
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(_jobs)
def test_row_writes_in_a_batch_end_as_one_by_one(specs: list[tuple[str, int, str | None]]) -> None:
    """Consecutive row writes of one statement share multi-row statements in a batch
    (32, 16, ... 1 rows), beside one-statement writes and jobs of several statements
    (under a savepoint): the table ends as the same writes applied one at a time leave
    it, and each write succeeds or fails as it would alone (a duplicate key, a NULL)."""
    jobs = [_job(*spec) for spec in specs]
    batched = _batch_db()
    outcomes = _write_batch(batched, jobs)
    alone = _batch_db()
    expected = [_alone(alone, _job(*spec)) for spec in specs]
    assert [ok for ok, _ in outcomes] == [ok for ok, _ in expected]
    assert [value for ok, value in outcomes if ok] == [value for ok, value in expected if ok]
    assert not batched.in_transaction
    query = "SELECT k, v FROM t ORDER BY k"
    assert batched.execute(query).fetchall() == alone.execute(query).fetchall()


def test_a_long_run_of_row_writes_ends_as_one_by_one() -> None:
    """Runs long enough for many of the largest statements, with a NULL deep inside one
    of them (that statement is then written row by row)."""
    rng = random.Random(7)
    specs: list[tuple[str, int, str | None]] = [
        ("upsert", rng.randint(1, 400), "v" if i != 200 else None) for i in range(300)
    ]
    specs += [("insert", k, "w") for k in range(395, 600)]  # some keys there already
    jobs = [_job(*spec) for spec in specs]
    batched = _batch_db()
    outcomes = _write_batch(batched, jobs)
    alone = _batch_db()
    expected = [_alone(alone, _job(*spec))[0] for spec in specs]
    assert [ok for ok, _ in outcomes] == expected
    assert expected.count(False) > 1  # the NULL and the keys taken
    query = "SELECT k, v FROM t ORDER BY k"
    assert batched.execute(query).fetchall() == alone.execute(query).fetchall()


def test_a_run_of_row_writes_that_ends_the_transaction_fails_the_batch() -> None:
    conn = _batch_db()
    rollback = _RowInsert("INSERT OR ROLLBACK INTO t (k, v)", "(?, ?)")
    jobs: list[_Statement] = [_Row(_UPSERT, (2, "two"))]
    jobs += [_Row(rollback, (k, "x")) for k in (3, 4, 1, 5)]  # 1: a duplicate
    outcomes = _write_batch(conn, jobs)
    assert [ok for ok, _ in outcomes] == [False] * 5
    assert all("nothing applied" in str(value) for _, value in outcomes)
    assert conn.execute("SELECT k, v FROM t").fetchall() == [(1, "kept")]


def test_a_multi_row_insert_stays_within_999_parameters() -> None:
    assert _RowInsert("INSERT INTO t (k, v)", "(?, ?)").sizes == (32, 16, 8, 4, 2, 1)
    wide = _RowInsert("INSERT INTO w", "(" + ", ".join("?" * 40) + ")")
    assert wide.sizes == (16, 8, 4, 2, 1)
    assert all(n * 40 <= 999 for n in wide.sizes)
    assert wide.sql[2].count("?") == 80


@pytest.mark.skipif(sys.platform != "linux", reason="thread names in /proc are Linux's")
async def test_the_store_threads_have_names_the_os_shows(tmp_path: Path) -> None:
    """`top -H` and `ps -T` tell the writer and reader threads apart (their comm)."""

    def names() -> list[str]:
        tasks = Path("/proc/self/task")
        return [(task / "comm").read_text().strip() for task in tasks.iterdir()]

    store = await open_sqlite_store(tmp_path / "gateway.sqlite3")
    try:
        await store.chargers.put(full_charger("CP-1"))  # the writer has run its first job
        await store.charger_states.list()  # and the reader
        assert {"sqlite-writer", "sqlite-reader", "trail-writer"} <= set(names())
    finally:
        await store.close()


async def test_a_fleets_records_are_decoded_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Listing every charger (the admin API, the location pages' load) decodes in the
    # reader thread: 10,000 of them on the loop held every charger's answer for 40 ms.
    store = await open_sqlite_store(tmp_path / "gateway.sqlite3")
    try:
        await store.chargers.put(full_charger())
        await store.charger_states.put(full_charger_state())
        threads: set[int] = set()
        for name in ("decode_charger", "decode_charger_state"):
            original = getattr(codec, name)

            def spy(data: Any, original: Any = original) -> Any:
                threads.add(threading.get_ident())
                return original(data)

            monkeypatch.setattr(codec, name, spy)
        assert await store.chargers.list() == [full_charger()]
        assert await store.charger_states.list() == [full_charger_state()]
        assert threads and threading.get_ident() not in threads
    finally:
        await store.close()


async def test_a_charger_placed_nowhere_is_known_from_memory_and_kept_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_sqlite_store(tmp_path / "gateway.sqlite3")
    try:
        chargers = store.chargers
        await chargers.put(full_charger())
        await chargers.put(Charger(id="CP-0"))
        assert await chargers.placed("CP-1") == full_charger()  # the table read once
        db = chargers._db  # type: ignore[attr-defined]

        async def where(charger_id: str) -> str | None:
            charger = await chargers.placed(charger_id)
            return None if charger is None else charger.location_id

        async def no_read(job: Any) -> Any:
            raise AssertionError("read the table")

        with monkeypatch.context() as patched:
            patched.setattr(db, "read", no_read)
            patched.setattr(db, "lookup", no_read)
            assert await chargers.placed("CP-0") is None
            assert await chargers.placed("CP-9") is None
            await chargers.put(full_charger("CP-9"))  # kept by the store's own writes
            await chargers.put(Charger(id="CP-8", location_id="LOC-8"))
            await chargers.put(Charger(id="CP-8"))
            assert await chargers.placed("CP-8") is None
        assert await where("CP-9") == "LOC-1"

        # A write on its way (held here before it reaches the writer): the table's answer
        # until it has committed, the new one after, whether or not the map was read.
        write, gate = db.write, asyncio.Event()

        async def held(job: Any) -> Any:
            await gate.wait()
            return await write(job)

        for dropped in (False, True):
            with monkeypatch.context() as patched:
                patched.setattr(db, "write", held)
                if dropped:
                    chargers._placed = None  # type: ignore[attr-defined]
                to = f"L2-{dropped}"
                moving = asyncio.create_task(chargers.put(replace(full_charger(), location_id=to)))
                await asyncio.sleep(0)
                assert await where("CP-1") == ("LOC-1" if not dropped else "L2-False")
                gate.set()
                await moving
                gate.clear()
            assert await where("CP-1") == to

        # A write that fails may have been applied: what was kept goes, the table tells.
        async def applied_then_failed(job: Any) -> Any:
            await write(job)
            raise StorageError("the answer was lost")

        with monkeypatch.context() as patched:
            patched.setattr(db, "write", applied_then_failed)
            with pytest.raises(StorageError):
                await chargers.put(Charger(id="CP-0", location_id="L3"))
        assert await where("CP-0") == "L3"
    finally:
        await store.close()


def test_none_is_bound_as_null_on_the_stores_connections(tmp_path: Path) -> None:
    # The stores' connections register an adapter for None (a shortcut past the sqlite3
    # module's attribute lookups at every NULL bound): None must still be stored as NULL,
    # not as any value, alone and among other parameters.
    conn = _connect(tmp_path / "null.sqlite3", "FULL", read_only=False)
    try:
        conn.execute("CREATE TABLE t (a, b, c)")
        conn.execute("INSERT INTO t VALUES (?, ?, ?), (?, ?, ?)", (None, 1, "x", "y", None, None))
        rows = conn.execute(
            "SELECT typeof(a), typeof(b), typeof(c) FROM t ORDER BY rowid"
        ).fetchall()
        assert rows == [("null", "integer", "text"), ("text", "null", "null")]
        assert conn.execute("SELECT ? IS NULL", (None,)).fetchone() == (1,)
    finally:
        conn.close()
