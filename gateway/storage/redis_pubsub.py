"""A Redis pub/sub subscription that outlives connection losses.

redis-py's :class:`~redis.asyncio.client.PubSub` holds one connection. This wraps it in
a task that reads messages and hands each to the listener; when the connection fails
(closed, reset, or no answer to a PING within ``PING_EVERY * 3`` seconds: a server gone
without closing), it logs one warning, subscribes again on a new connection (backoff as
the command batcher's, 50 ms doubling to 1 s) and, once back, calls ``on_gap``: messages
published meanwhile were lost, and the listener's owner re-reads what it keeps.

With Sentinel (``watch``: the batcher's ``on_master_moved``) it also subscribes again
as soon as the Sentinels announce a new master: messages are published there now, and
the old master, if still up, keeps the subscription until it is reconfigured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from redis.asyncio.client import PubSub
from redis.asyncio.connection import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from gateway.storage.base import Listener, StorageError

log = logging.getLogger(__name__)

PING_EVERY = 2.0  # seconds between PINGs on an idle subscription
FIRST_DELAY = 0.05
MAX_DELAY = 1.0


class RedisSubscription:
    """``channels``: Redis channel name -> the name the listener is given."""

    def __init__(
        self,
        pool: ConnectionPool,
        channels: Mapping[str, str],
        listener: Listener,
        on_gap: Callable[[], None],
        watch: Callable[[Callable[[], None]], Callable[[], None]] | None = None,
    ) -> None:
        self._pool = pool
        self._channels = dict(channels)
        self._listener = listener
        self._on_gap = on_gap
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._moved: asyncio.Event | None = None
        self._unwatch: Callable[[], None] | None = None
        if watch is not None:
            self._moved = asyncio.Event()
            self._unwatch = watch(self._moved.set)
        self._task = asyncio.create_task(self._run(), name="redis-subscription")

    async def ready(self) -> None:
        await asyncio.shield(self._ready)

    async def close(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if not self._ready.done():
            self._ready.set_exception(StorageError("Redis: subscription closed"))
            self._ready.exception()  # retrieved: nobody may be waiting

    async def _run(self) -> None:
        delay = FIRST_DELAY
        lost_at: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            pubsub = PubSub(self._pool, ignore_subscribe_messages=True)
            try:
                if self._moved is not None:
                    self._moved.clear()  # this connection asks the Sentinels afresh
                await pubsub.subscribe(*self._channels)
                if not self._ready.done():
                    self._ready.set_result(None)
                if lost_at is not None:
                    log.info("Redis: subscription back after %.1f s", loop.time() - lost_at)
                    lost_at = None
                    self._on_gap()
                delay = FIRST_DELAY
                if self._moved is None:
                    await self._read(pubsub)
                else:
                    await self._read_until_moved(pubsub, self._moved)
            except (RedisError, OSError, TimeoutError) as exc:
                if lost_at is None:
                    lost_at = loop.time()
                    log.warning(
                        "Redis: subscription lost (%s); subscribing again", exc or "timeout"
                    )
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call, unused-ignore]
            await asyncio.sleep(delay)
            delay = min(MAX_DELAY, delay * 2)

    async def _read_until_moved(self, pubsub: PubSub, moved: asyncio.Event) -> None:
        """:meth:`_read` until the Sentinels announce a new master (then ConnectionError)."""
        reading = asyncio.ensure_future(self._read(pubsub))
        announced = asyncio.ensure_future(moved.wait())
        try:
            await asyncio.wait((reading, announced), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reading, announced):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        if not reading.cancelled() and reading.done():
            reading.result()  # what ended it
        raise RedisConnectionError("the Sentinels moved the master")

    async def _read(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        pinged_at = last_heard
        while True:
            message: dict[str, Any] | None = await pubsub.get_message(timeout=PING_EVERY)
            now = loop.time()
            if message is not None:
                last_heard = now
                if message.get("type") == "message":
                    channel = message["channel"]
                    name = self._channels.get(
                        channel.decode() if isinstance(channel, bytes) else channel
                    )
                    if name is not None:
                        try:
                            self._listener(name, message["data"])
                        except Exception:  # a listener's bug must not end the subscription
                            log.exception("subscription listener failed")
            if now - last_heard > PING_EVERY * 3:
                raise TimeoutError("no answer to PING")
            if now - pinged_at >= PING_EVERY:
                pinged_at = now
                await pubsub.ping()
