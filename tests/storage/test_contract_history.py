"""The status history contract (``StatusHistoryStore``), on both backends: time order with
ties in append order, since/until and paging both ways, purge keeping each slot's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.storage import history as encoding
from gateway.storage.base import StatusEntry, StatusKind, Store
from gateway.storage.codec import NaiveDatetimeError
from gateway.storage.history import ENCODE_CHUNK
from tests.loop_turns import turns_during
from tests.storage.conftest import StoreFactory
from tests.storage.writer_backends import backend_with_writer_processes

backend = backend_with_writer_processes  # also SQLite with the appends by a process
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def online(cid: str, minutes: float) -> StatusEntry:
    return StatusEntry(cid, at(minutes), StatusKind.ONLINE)


def status(
    cid: str, minutes: float, value: str, evse: int = 1, error: str | None = None
) -> StatusEntry:
    return StatusEntry(cid, at(minutes), StatusKind.CONNECTOR, evse, 1, value, error)


async def test_entries_round_trip_in_time_order_with_ties_in_append_order(store: Store) -> None:
    entries = [
        StatusEntry("CP-1", at(5), StatusKind.OFFLINE, detail="socket closed"),
        online("CP-1", 0),
        StatusEntry("CP-1", at(0), StatusKind.BOOT),
        status("CP-1", 0, "Faulted", error="GroundFailure"),
        status("CP-1", 0, "Available"),
    ]
    await store.status_history.append(entries[:2])
    await store.status_history.append(entries[2:])
    got = await store.status_history.list("CP-1")
    assert got == [entries[1], entries[2], entries[3], entries[4], entries[0]]
    assert got[3].error_code is None and got[2].error_code == "GroundFailure"
    assert got[0].at.tzinfo is not None
    assert await store.status_history.list("CP-2") == []


async def test_since_inclusive_until_exclusive_and_pages_both_ways(store: Store) -> None:
    await store.status_history.append(
        [status("CP-1", m, "Charging" if m % 2 else "Available") for m in range(10)]
        + [status("CP-2", 3, "Faulted", error="X")]
    )
    history = store.status_history
    window = await history.list("CP-1", since=at(2), until=at(6))
    assert [e.at for e in window] == [at(2), at(3), at(4), at(5)]
    newest = await history.list("CP-1", until=at(6), newest_first=True, limit=2)
    assert [e.at for e in newest] == [at(5), at(4)]
    page2 = await history.list("CP-1", until=at(6), newest_first=True, limit=2, offset=2)
    assert [e.at for e in page2] == [at(3), at(2)]
    assert [e.at for e in await history.list("CP-1", since=at(8))] == [at(8), at(9)]
    assert await history.list("CP-1", limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        await history.list("CP-1", limit=-1)


async def test_purge_keeps_the_newest_old_entry_of_each_slot(store: Store) -> None:
    history = store.status_history
    await history.append(
        [
            online("CP-1", 0),
            status("CP-1", 1, "Faulted", error="E1"),
            status("CP-1", 2, "Available"),
            status("CP-1", 3, "Charging", evse=2),
            StatusEntry("CP-1", at(4), StatusKind.OFFLINE, detail="gone"),
            online("CP-1", 5),
            status("CP-1", 20, "Available"),  # after the cutoff: kept
            online("CP-2", 1),
            online("CP-2", 2),
        ]
    )
    deleted = await history.purge(at(10))
    # CP-1: online@0 and online@5 are one slot (connection), offline@4 too: only @5 stays;
    # evse 1: @2 stays; evse 2: @3 stays. CP-2: @2 stays.
    assert deleted == 4
    kept = [(e.kind.value, e.at) for e in await history.list("CP-1")]
    assert kept == [
        ("connector", at(2)),
        ("connector", at(3)),
        ("online", at(5)),
        ("connector", at(20)),
    ]
    assert [e.at for e in await history.list("CP-2")] == [at(2)]
    assert await history.purge(at(10)) == 0  # a repeat deletes nothing more


async def test_bad_entries_are_refused_before_anything_is_written(store: Store) -> None:
    history = store.status_history
    naive = StatusEntry("CP-1", datetime(2026, 1, 1), StatusKind.ONLINE)
    with pytest.raises(NaiveDatetimeError):
        await history.append([online("CP-1", 0), naive])
    with pytest.raises(ValueError, match="Nope"):
        await history.append([StatusEntry("CP-1", at(0), StatusKind.CONNECTOR, 1, 1, "Nope")])
    with pytest.raises(ValueError, match="evse_id"):
        await history.append([StatusEntry("CP-1", at(0), StatusKind.CONNECTOR)])
    assert await history.list("CP-1") == []


async def test_a_large_append_lets_other_work_run_and_refuses_a_bad_entry_whole(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second's entries at 10,000 chargers are encoded a slice of time at a time
    # (history.encode_all; here a slice of nothing: a chunk at a time): the chargers'
    # answers go out between them; a bad entry in a later chunk still refuses the whole
    # append before anything is written.
    monkeypatch.setattr(encoding, "ENCODE_SLICE", 0.0)
    history = store.status_history
    many = [status(f"CP-{i % 50}", i / 1000, "Available") for i in range(3 * ENCODE_CHUNK)]
    naive = StatusEntry("CP-0", datetime(2026, 1, 1), StatusKind.ONLINE)
    with pytest.raises(NaiveDatetimeError):
        await history.append([*many, naive])
    assert await history.list("CP-0") == []
    _, turns = await turns_during(history.append(many))
    assert turns >= 2
    assert len(await history.list("CP-7")) == sum(e.charger_id == "CP-7" for e in many)


async def test_history_survives_a_reopen(store_factory: StoreFactory) -> None:
    first = await store_factory()
    await first.status_history.append([online("CP-1", 0), status("CP-1", 1, "Faulted")])
    await first.close()
    again = await store_factory()
    assert [e.status for e in await again.status_history.list("CP-1")] == [None, "Faulted"]
