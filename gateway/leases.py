"""Background work that must run in one process of a cluster at a time, under a lease.

Several gateway processes may share one Redis. Some background jobs act on the shared
storage as a whole (the start-up resync of sessions and the expiry of PENDING ones, the
hub's still-alive check): run by every process at once they would do the same work
several times over (and the hub would push each status change once per process). Each
such job runs under a named lease in the store (:class:`~gateway.storage.base.LeaseStore`):

- every process tries to acquire the lease every ``ttl / 3`` seconds; the one that gets
  it starts the job and renews the lease at the same pace;
- a renew that fails (the lease expired or another process has it), or that gets no
  answer before the lease would expire, cancels the job at once: by the time another
  process can acquire the lease this one has stopped;
- when the holder dies (even by ``kill -9``) its lease expires ``ttl`` seconds after its
  last renew, and a survivor takes the job over within about ``ttl + ttl / 3``;
- on shutdown the job is cancelled first, then the lease released, so a survivor takes
  over at its next try rather than after the TTL.

A job is a coroutine function started afresh each time the lease is gained, so whatever
it does first ("once at start") is done once per gain: by the first holder after a
start of the whole cluster and again by each process that takes over (fine for
idempotent work such as the resync). With SQLite (one process) the lease is always
this process's. Gains and losses are logged at INFO, one line each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from gateway.domain.clock import IdFactory
from gateway.storage.base import LeaseStore, StorageError, check_lease

log = logging.getLogger(__name__)

Job = Callable[[], Coroutine[Any, Any, None]]


def holder_id(ids: IdFactory) -> str:
    """This process's holder id: unique (from ``ids``), with the host name and pid so
    that an operator reading a lease key sees which process holds it."""
    return f"{socket.gethostname()}:{os.getpid()}:{ids.new_id()}"


class LeasedJob:
    """One job run only while this process holds the lease ``name``; see the module
    docstring. :meth:`start` it once, :meth:`stop` it at shutdown."""

    def __init__(self, leases: LeaseStore, name: str, holder: str, ttl: float, job: Job) -> None:
        check_lease(name, holder, ttl)
        self.name = name
        self.holder = holder
        self._leases = leases
        self._ttl = ttl
        self._job = job
        self._loop_task: asyncio.Task[None] | None = None
        self._job_task: asyncio.Task[None] | None = None
        self._held_until: float | None = None  # loop time; None: not held
        self._failing = False  # storage errors in a row: logged once
        self._stopping = False
        self.gains = 0  # times this process gained the lease (for tests and diagnostics)

    @property
    def held(self) -> bool:
        return self._held_until is not None

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name=f"lease-{self.name}")

    async def stop(self) -> None:
        """Stop trying, cancel the job, then release the lease if held."""
        # The flag as well as the cancel: a cancel arriving just as an awaited call
        # completes can be lost (asyncio.wait_for in Python 3.11 swallows it), and the
        # loop must end all the same.
        self._stopping = True
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stop_job()
        # Released even when not known to be held: an acquire cancelled after it was
        # sent may have taken the lease all the same (the release checks the holder).
        was_held, self._held_until = self._held_until is not None, None
        try:
            # Bounded: a shutdown during a storage outage must not hang on it (the
            # lease then simply expires).
            async with asyncio.timeout(self._ttl):
                await self._leases.release(self.name, self.holder)
        except (StorageError, TimeoutError) as exc:
            if was_held:
                log.warning("lease %s: not released (%s); it expires by itself", self.name, exc)
        else:
            if was_held:
                log.info("lease %s released by %s", self.name, self.holder)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = self._ttl / 3
        while not self._stopping:
            now = loop.time()
            if self._held_until is None:
                await self._try_acquire(now)
            else:
                await self._renew(now)
            wait = period
            if self._held_until is not None:
                # Never sleep past the moment the lease would expire unrenewed.
                wait = min(period, max(0.0, self._held_until - loop.time()))
            await asyncio.sleep(wait)

    async def _try_acquire(self, now: float) -> None:
        try:
            async with asyncio.timeout(self._ttl):
                got = await self._leases.acquire(self.name, self.holder, self._ttl)
        except (StorageError, TimeoutError) as exc:
            self._storage_failed(exc)
            return
        self._storage_back()
        # Held from the server's point of view until at least now + ttl (it set the
        # expiry after this call was sent); an answer arriving later is worth nothing.
        if not got or self._stopping or asyncio.get_running_loop().time() >= now + self._ttl:
            return  # (stopping: stop() releases it)
        self._held_until = now + self._ttl
        self.gains += 1
        log.info("lease %s gained by %s", self.name, self.holder)
        self._start_job()

    async def _renew(self, now: float) -> None:
        assert self._held_until is not None
        remaining = self._held_until - now
        if remaining > 0:
            renewed: bool | None = None
            try:
                async with asyncio.timeout(remaining):
                    renewed = await self._leases.renew(self.name, self.holder, self._ttl)
            except TimeoutError:
                renewed = None
            except StorageError as exc:
                # Still ours until _held_until: try again, sooner if need be.
                self._storage_failed(exc)
                return
            if renewed:
                self._storage_back()
                self._held_until = now + self._ttl
                self._check_job()
                return
            why = "taken or expired" if renewed is False else "no answer before it expired"
        else:
            why = "expired before it could be renewed"
        # Stop at once: another process may gain the lease from now on.
        self._held_until = None
        await self._stop_job()
        log.info("lease %s lost by %s (%s)", self.name, self.holder, why)

    def _start_job(self) -> None:
        self._job_task = asyncio.create_task(self._job(), name=f"leased-{self.name}")

    def _check_job(self) -> None:
        """A job is meant to run until cancelled: one that ended (a bug) is logged and
        started again, so that the work does not silently stop while the lease is kept."""
        task = self._job_task
        if task is None or not task.done():
            return
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("lease %s: the job failed; starting it again", self.name, exc_info=exc)
        else:
            log.error("lease %s: the job ended; starting it again", self.name)
        self._start_job()

    async def _stop_job(self) -> None:
        task, self._job_task = self._job_task, None
        if task is None:
            return
        task.cancel()
        # Waited for with asyncio.wait, which lets a cancel of this caller through (a
        # suppress(CancelledError) around ``await task`` would swallow it).
        await asyncio.wait({task})
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("lease %s: the job failed", self.name, exc_info=exc)

    def _storage_failed(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            log.warning("lease %s: %s; trying again", self.name, exc or "no answer")

    def _storage_back(self) -> None:
        self._failing = False


class Leases:
    """This process's leases: the store, its holder id and the TTL."""

    def __init__(self, store: LeaseStore, holder: str, ttl: float) -> None:
        self.store = store
        self.holder = holder
        self.ttl = ttl

    def start(self, name: str, job: Job) -> LeasedJob:
        """Run ``job`` whenever this process holds lease ``name``; ``stop()`` the result."""
        leased = LeasedJob(self.store, name, self.holder, self.ttl, job)
        leased.start()
        return leased


LEASES = web.AppKey("leases", Leases)
