"""The start-up resync of sessions is tried again until it goes through: a storage outage
at start must not leave the sessions and CDRs a crash cut off unbuilt.

The loop is driven with a scripted stand-in for the session service (its real behaviour
against both backends is tested in test_crash_sessions and test_cdr_failures); what is
under test here is only the loop's handling of an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from gateway.app import _resync, _store_unsaved
from gateway.storage.base import StorageUnavailable


class ScriptedSessions:
    def __init__(self, resync_failures: int) -> None:
        self.resync_failures = resync_failures
        self.resyncs = 0
        self.retries = 0
        self.expiries = 0
        self.stores = 0
        self.done = asyncio.Event()

    async def resync(self, since: datetime) -> int:
        self.resyncs += 1
        if self.resyncs <= self.resync_failures:
            raise StorageUnavailable("Redis unreachable for 5 s")
        self.done.set()
        return 3

    async def retry_failed(self) -> int:
        self.retries += 1
        return 0

    async def store_unsaved(self) -> int:
        self.stores += 1
        return 0

    async def expire_pending(self) -> int:
        self.expiries += 1
        return 0


async def test_resync_is_retried_after_an_outage_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    sessions = ScriptedSessions(resync_failures=2)
    task = asyncio.create_task(_resync(cast(Any, sessions), datetime(2026, 1, 1, tzinfo=UTC), 0.01))
    try:
        await asyncio.wait_for(sessions.done.wait(), timeout=5)
        expiries = sessions.expiries
        while sessions.expiries < expiries + 2:  # the loop goes on with its expiries
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert sessions.resyncs == 3  # twice refused, then once through, never again
    assert not [r for r in caplog.records if r.exc_info]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("session resync: Redis unreachable" in m for m in messages) == 2
    assert any("rebuilt the sessions/CDRs of 3 transactions" in m for m in messages)


async def test_the_lease_job_retries_failed_sessions_and_every_process_stores_its_own() -> None:
    # The failures are stored: their retry is the "sessions" lease's job (once per
    # cluster), beside the expiries; every process only stores the failures it could not
    # store at the time (kept in memory while the store was out).
    sessions = ScriptedSessions(resync_failures=0)
    job = asyncio.create_task(_resync(cast(Any, sessions), datetime(2026, 1, 1, tzinfo=UTC), 0.01))
    own = asyncio.create_task(_store_unsaved(cast(Any, sessions), 0.01))
    try:
        async with asyncio.timeout(5):
            while sessions.retries < 3 or sessions.stores < 3:
                await asyncio.sleep(0.01)
    finally:
        for task in (job, own):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert sessions.resyncs == 1
    assert sessions.expiries >= sessions.retries - 1  # each round: expiries, then retries
