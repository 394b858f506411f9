"""The lease runner (``gateway.leases``) on a real store of each backend: a job runs only
while its holder holds the lease, stops as soon as a renew fails, moves to another holder
when the first stops, and the lease is released on stop.

The processes of a cluster are played by several runners with different holder ids on
one store (the subprocess test is tests/test_leases_processes.py). TTLs are short and
every wait is a bounded poll for a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gateway.domain.clock import UuidFactory
from gateway.leases import LeasedJob, Leases, holder_id
from gateway.storage.base import Store
from gateway.storage.redis import open_redis_store
from gateway.storage.sqlite import open_sqlite_store
from tests.conftest import REDIS_URL, _redis_available, drop_redis_prefix, require_redis_or_skip

TTL = 0.3


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    if backend == "sqlite":
        opened = await open_sqlite_store(tmp_path / "gateway.sqlite3")
        try:
            yield opened
        finally:
            await opened.close()
        return
    require_redis_or_skip(await _redis_available())
    prefix = f"test:{uuid.uuid4().hex}:"
    opened = await open_redis_store(REDIS_URL, prefix=prefix)
    try:
        yield opened
    finally:
        await opened.close()
        await drop_redis_prefix(prefix)


async def until(condition: Callable[[], bool | Awaitable[bool]], bound: float = 5.0) -> None:
    deadline = time.monotonic() + bound
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class Work:
    """A job that counts its runs and knows whether it is running."""

    def __init__(self) -> None:
        self.starts = 0
        self.running = False
        self.cancelled = 0

    async def __call__(self) -> None:
        self.starts += 1
        self.running = True
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running = False


@contextlib.asynccontextmanager
async def runners(store: Store, *jobs: tuple[str, Work]) -> AsyncIterator[list[LeasedJob]]:
    started = [Leases(store.leases, holder, TTL).start("sessions", work) for holder, work in jobs]
    try:
        yield started
    finally:
        for leased in started:
            await leased.stop()


def test_holder_ids_are_unique_and_name_the_process() -> None:
    ids = UuidFactory()
    first, second = holder_id(ids), holder_id(ids)
    assert first != second
    import os
    import socket

    assert first.startswith(f"{socket.gethostname()}:{os.getpid()}:")


async def test_one_runner_runs_the_job_and_another_takes_over_when_it_stops(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.leases")
    work_a, work_b = Work(), Work()
    async with runners(store, ("A", work_a), ("B", work_b)) as (a, b):
        await until(lambda: a.held or b.held)
        first, first_work, second, second_work = (
            (a, work_a, b, work_b) if a.held else (b, work_b, a, work_a)
        )
        await until(lambda: first_work.running)
        # Several renew periods later: still one holder, the other's job never started.
        renewals = 0
        while renewals < 5:
            await asyncio.sleep(TTL / 3)
            renewals += 1
            assert first.held and not second.held
            assert first_work.running and second_work.starts == 0
        assert await store.leases.holder("sessions") == first.holder
        await first.stop()  # a clean shutdown: job cancelled, then the lease released
        assert first_work.cancelled == 1 and not first_work.running
        await until(lambda: second_work.running)
        assert second.held and second.gains == 1
        assert await store.leases.holder("sessions") == second.holder
    assert await store.leases.holder("sessions") is None  # released on stop
    messages = [r.getMessage() for r in caplog.records]
    assert f"lease sessions gained by {first.holder}" in messages
    assert f"lease sessions released by {first.holder}" in messages
    assert f"lease sessions gained by {second.holder}" in messages


async def test_a_failed_renew_cancels_the_job_at_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.leases")
    work = Work()
    async with runners(store, ("A", work)) as (a,):
        await until(lambda: work.running)
        # The lease is lost behind the runner's back (as when it expired during a pause
        # of this process and another process took it).
        await store.leases.release("sessions", "A")
        assert await store.leases.acquire("sessions", "B", 30)
        await until(lambda: not work.running)
        assert not a.held and work.cancelled == 1
        assert "lease sessions lost by A (taken or expired)" in [
            r.getMessage() for r in caplog.records
        ]
        # It keeps trying, and gains it again once B lets go: the job starts afresh.
        await store.leases.release("sessions", "B")
        await until(lambda: work.running)
        assert work.starts == 2 and a.gains == 2


async def test_a_job_that_fails_is_started_again(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.leases")
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        await asyncio.Event().wait()

    leased = Leases(store.leases, "A", TTL).start("hub-checks", flaky)
    try:
        await until(lambda: calls == 2)
        assert leased.held and leased.gains == 1  # the lease was kept meanwhile
    finally:
        await leased.stop()
    failures = [r for r in caplog.records if "the job failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None


async def test_stop_before_the_lease_is_gained_releases_nothing(store: Store) -> None:
    assert await store.leases.acquire("sessions", "B", 30)
    work = Work()
    async with runners(store, ("A", work)) as (a,):
        await asyncio.sleep(TTL / 2)  # at least one attempt, refused
        assert not a.held and work.starts == 0
    assert await store.leases.holder("sessions") == "B"
