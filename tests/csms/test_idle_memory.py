"""What stays in memory once a burst of chargers is over and the gateway idles.

After 10,000 chargers close at once, whatever of the burst is still referenced keeps
the memory freed around it from being given back (pymalloc releases an arena only once
every object in it is gone). A store's thread that waits for its next batch must not
keep the last one (its jobs, futures and results: up to a batch of 512 of each), and the
ends of a storm of closing chargers are recorded a bounded number at a time.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import weakref
from pathlib import Path
from typing import Any, cast

from gateway.csms.endpoint import ENDS_AT_ONCE, EndpointConfig, OcppEndpoint
from gateway.domain.clock import SystemClock
from gateway.memory import native_trimmer, releaser
from gateway.storage.sqlite import _read_batch, _Worker, _write_batch
from tests.csms.test_connection_memory import _freed


class _Row:
    """A job's result that can be watched with a weak reference."""


async def _batch_is_released(worker: _Worker) -> None:
    rows = [_Row()]
    released = weakref.ref(rows[0])

    def job(conn: sqlite3.Connection) -> _Row:
        conn.execute("SELECT 1").fetchone()
        return rows[0]

    assert await worker.run(job) is rows[0]
    rows.clear()
    assert await _freed(released, timeout=2.0), "the idle thread still holds its last batch"


async def test_an_idle_store_thread_keeps_nothing_of_its_last_batch(
    tmp_path: Path, no_cyclic_gc: None
) -> None:
    for name, run_batch in (("writer", _write_batch), ("reader", _read_batch)):
        conn = sqlite3.connect(tmp_path / "db", isolation_level=None, check_same_thread=False)
        worker = _Worker(f"test-sqlite-{name}", conn, run_batch)
        try:
            await _batch_is_released(worker)
        finally:
            await worker.close()


class _Conn:
    def __init__(self, charger_id: str) -> None:
        self.charger_id = charger_id

    def ended(self) -> None:
        pass

    async def stop_worker(self, *, drain: bool) -> None:
        pass


class _Sock:
    def __init__(self, charger_id: str) -> None:
        self.conn: _Conn | None = _Conn(charger_id)
        self.reason = "connection closed"
        self.address: str | None = None


class _Csms:
    """Records the ends, each taking a few turns of the loop (the store's writes)."""

    def __init__(self) -> None:
        self.clock = SystemClock()
        self.running = 0
        self.most = 0
        self.offline: list[str] = []

    async def disconnected(self, conn: _Conn, reason: str) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        for _ in range(3):
            await asyncio.sleep(0)
        self.running -= 1
        self.offline.append(conn.charger_id)


async def test_a_storm_of_ends_is_recorded_a_bounded_number_at_a_time() -> None:
    # 10,000 chargers closing at once each recorded its end at the same time: every
    # call chain (storage, events, their subscribers) alive together, a peak of memory
    # whose arenas the objects that outlive the storm then keep. Every end is still
    # recorded, a bounded number at a time.
    csms = _Csms()
    endpoint = _endpoint(csms, trim=None)
    ids = [f"CP{i}" for i in range(3 * ENDS_AT_ONCE)]
    socks = [_Sock(charger_id) for charger_id in ids]
    endpoint._sockets.update(cast(Any, socks))
    await asyncio.gather(*(endpoint.socket_ended(cast(Any, sock)) for sock in socks))
    assert sorted(csms.offline) == sorted(ids)
    assert csms.most == ENDS_AT_ONCE
    assert not endpoint._sockets
    assert all(sock.conn is None for sock in socks)


def _endpoint(csms: _Csms, trim: Any) -> OcppEndpoint:
    config = EndpointConfig(
        auto_register=True,
        require_client_cert=False,
        cn_is_charger_id=False,
        max_frame_bytes=65536,
        call_timeout=30.0,
    )
    return OcppEndpoint(cast(Any, csms), cast(Any, None), config, trim=trim)


async def _end(endpoint: OcppEndpoint, count: int, prefix: str) -> None:
    socks = [_Sock(f"{prefix}{i}") for i in range(count)]
    endpoint._sockets.update(cast(Any, socks))
    await asyncio.gather(*(endpoint.socket_ended(cast(Any, sock)) for sock in socks))


async def test_a_storm_of_ends_gives_the_freed_memory_back_once_it_is_over() -> None:
    trims: list[float] = []

    async def trim() -> None:
        trims.append(time.monotonic())

    endpoint = _endpoint(_Csms(), trim)
    endpoint.trim_after_ends, endpoint.trim_quiet = 10, 0.05
    await _end(endpoint, 9, "A")
    await asyncio.sleep(0.15)
    assert trims == [] and endpoint.trims == 0  # too few ends: no trim
    await _end(endpoint, 1, "B")  # the tenth
    ended = time.monotonic()
    await _end(endpoint, 30, "C")  # the storm goes on: the trim waits for it to stop
    last = time.monotonic()
    async with asyncio.timeout(5):
        while endpoint.trims == 0:
            await asyncio.sleep(0.01)
    assert len(trims) == 1 and trims[0] > last > ended  # after the storm, not at its 10th end
    await asyncio.sleep(0.15)
    assert endpoint.trims == 1  # once per storm


async def test_shutdown_cancels_a_pending_trim() -> None:
    trims: list[int] = []

    async def trim() -> None:
        trims.append(1)

    endpoint = _endpoint(_Csms(), trim)
    endpoint.trim_after_ends, endpoint.trim_quiet = 1, 10.0
    await _end(endpoint, 1, "A")
    assert endpoint._trimming is not None
    await endpoint.close_all(1001, "server shutting down")
    assert endpoint._trimming is None and trims == []


def test_glibc_malloc_trim_is_found_and_runs() -> None:
    # This machine's Python links glibc (Debian): the trimmer exists and can be called.
    trim = native_trimmer()
    assert trim is not None
    trim()


async def test_the_release_gives_back_the_caches_before_the_heap() -> None:
    # The caches' pages are freed into the C heap: trimmed after, they go back too.
    calls: list[str] = []

    async def cache(name: str) -> None:
        calls.append(name)

    release = releaser(
        lambda: cache("store"), lambda: cache("other"), native=lambda: calls.append("trim")
    )
    await release()
    assert calls == ["store", "other", "trim"]
    await releaser(lambda: cache("alone"), native=None)()
    assert calls[-1] == "alone"
