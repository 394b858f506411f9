"""The SQLite status history's own file (``gateway-history.sqlite3``): its writes take
another lock and thread than the chargers' writes, the history an older gateway kept in
the main database moves there at open, and a backup carries it and gives it back."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.cli_ops import backup_sqlite
from gateway.storage import codec, history
from gateway.storage.base import StatusEntry, StatusKind, Store
from gateway.storage.sqlite import open_sqlite_store
from gateway.storage.sqlite_history import TABLE, history_path

from .samples import full_charger
from .test_sqlite import writer_batches

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def status(cid: str, minutes: float, value: str) -> StatusEntry:
    return StatusEntry(cid, T0 + timedelta(minutes=minutes), StatusKind.CONNECTOR, 1, 1, value)


def _put_in_main(path: Path, entries: list[StatusEntry], first_id: int = 1) -> None:
    """The main database's table as an older gateway (or a backup) holds it."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(TABLE)
        conn.executemany(
            "INSERT INTO status_history (id, charger_id, at, slot, data) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    first_id + i,
                    e.charger_id,
                    codec.time_key(e.at, "at"),
                    e.slot,
                    codec.dumps(history.encode(e)),
                )
                for i, e in enumerate(entries)
            ],
        )
    conn.close()


def _main_tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_schema")}
    finally:
        conn.close()


async def _history_of(path: Path, charger_id: str = "CP-1") -> list[StatusEntry]:
    store = await open_sqlite_store(path)
    try:
        return await store.status_history.list(charger_id)
    finally:
        await store.close()


async def test_the_history_is_written_beside_the_main_database(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    store: Store = await open_sqlite_store(path)
    try:
        before = writer_batches(store)
        await store.status_history.append([status("CP-1", 0, "Available")])
        assert writer_batches(store) == before  # not the chargers' writer
        assert await store.status_history.list("CP-1") == [status("CP-1", 0, "Available")]
    finally:
        await store.close()
    assert history_path(path) == tmp_path / "gateway-history.sqlite3"
    conn = sqlite3.connect(history_path(path))
    assert conn.execute("SELECT count(*) FROM status_history").fetchone() == (1,)
    conn.close()
    assert "status_history" not in _main_tables(path)


async def test_an_older_gateways_history_moves_to_its_file_keeping_its_order(
    tmp_path: Path,
) -> None:
    """Ids and the id sequence move too: an entry of the same instant appended after the
    move sorts after the older ones (ties of ``at`` in append order)."""
    path = tmp_path / "gateway.sqlite3"
    store = await open_sqlite_store(path)
    await store.close()
    history_path(path).unlink()  # an older gateway had no such file
    old = [
        status("CP-1", 0, "Faulted"),
        status("CP-1", 0, "Charging"),
        status("CP-2", 1, "Faulted"),
    ]
    _put_in_main(path, old, first_id=40)

    store = await open_sqlite_store(path)
    try:
        assert "status_history" not in _main_tables(path)
        new = status("CP-1", 0, "Available")
        await store.status_history.append([new])
        assert await store.status_history.list("CP-1") == [old[0], old[1], new]
        assert await store.status_history.list("CP-2") == [old[2]]
    finally:
        await store.close()
    conn = sqlite3.connect(history_path(path))
    ids = [row[0] for row in conn.execute("SELECT id FROM status_history ORDER BY id")]
    conn.close()
    assert ids == [40, 41, 42, 43]


async def test_a_restored_main_database_brings_its_history_back(tmp_path: Path) -> None:
    """A backup's table replaces what the history file held since (the restore goes
    back to the backup's state); the move done but the table not yet dropped (a crash
    in between) gives the same history, not twice."""
    path = tmp_path / "gateway.sqlite3"
    store = await open_sqlite_store(path)
    try:
        await store.status_history.append([status("CP-1", 5, "Charging")])
    finally:
        await store.close()
    backup = [status("CP-1", 0, "Available"), status("CP-1", 1, "Preparing")]
    _put_in_main(path, backup)
    assert await _history_of(path) == backup
    assert "status_history" not in _main_tables(path)

    _put_in_main(path, backup)  # as if the drop had not happened
    assert await _history_of(path) == backup


async def test_a_backup_carries_the_history_and_a_restore_gives_it_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = data / "gateway.sqlite3"
    entries = [status("CP-1", m, "Available" if m % 2 else "Charging") for m in range(5)]
    store = await open_sqlite_store(path)
    try:
        await store.status_history.append(entries)
        await store.chargers.delete("nothing")  # the main database in use meanwhile
        copy = tmp_path / "copy.sqlite3"
        backup_sqlite(path, copy)  # while the gateway holds both files
    finally:
        await store.close()
    conn = sqlite3.connect(copy)
    assert conn.execute("SELECT count(*) FROM status_history").fetchone() == (5,)
    assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
    conn.close()

    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy(copy, restored / "gateway.sqlite3")
    assert await _history_of(restored / "gateway.sqlite3") == entries

    # A backup of a database an older gateway left (its table still there, no file of
    # the history beside it) keeps that table as it is.
    older = tmp_path / "older"
    older.mkdir()
    shutil.copy(copy, older / "gateway.sqlite3")
    backup_sqlite(older / "gateway.sqlite3", tmp_path / "copy2.sqlite3")
    conn = sqlite3.connect(tmp_path / "copy2.sqlite3")
    assert conn.execute("SELECT count(*) FROM status_history").fetchone() == (5,)
    conn.close()


def _sqlite_memory() -> int:
    """Bytes SQLite holds in this process, all connections (its own allocator's count)."""
    lib = ctypes.util.find_library("sqlite3")
    assert lib is not None
    used = ctypes.CDLL(lib).sqlite3_memory_used
    used.restype = ctypes.c_int64
    return int(used())


async def test_release_memory_gives_back_the_page_caches_of_the_database_and_its_history(
    tmp_path: Path,
) -> None:
    # The main database, the trail and the status history keep page caches, full after a
    # busy hour; after a burst the OCPP endpoint asks them back (gateway.memory).
    store = await open_sqlite_store(tmp_path / "gateway.sqlite3")
    try:
        for start in range(0, 4000, 500):
            await asyncio.gather(
                *(store.chargers.put(full_charger(f"CP-{i}")) for i in range(start, start + 500))
            )
        await store.status_history.append(
            [status(f"CP-{i}", i / 100, "Available") for i in range(4000)]
        )
        assert len(await store.chargers.list()) == 4000
        assert len(await store.status_history.list("CP-7")) == 1
        before = _sqlite_memory()
        await store.backend.release_memory()
        after = _sqlite_memory()
        # Each connection that wrote or read those pages held up to 2 MiB of them.
        assert before - after > 2 * 2**20, (before, after)
        # Nothing stored went with them.
        assert len(await store.chargers.list()) == 4000
        assert len(await store.status_history.list("CP-3999")) == 1
    finally:
        await store.close()
