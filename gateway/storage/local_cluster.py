"""Ownership and messages of a one-process store (SQLite): kept in memory.

A SQLite data dir serves one process (its lock file refuses a second), so no other
process can ever ask who holds a charger or listen to a message: both live in this
process's memory with the same semantics as on Redis (one contract suite), expiry
measured by an injected monotonic clock. Everything here is lost with the process, as
the connections it describes are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from gateway.storage.base import Listener, Owner, check_channel, check_owner
from gateway.storage.codec import utc


class LocalOwnershipStore:
    def __init__(
        self, check: Callable[[], Awaitable[None]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._check = check  # StorageError once the store is closed, as every store call
        self._clock = clock
        self._owners: dict[str, tuple[Owner, float]] = {}  # charger id -> (owner, expires)

    async def claim(self, charger_id: str, node: str, since: datetime, ttl: float) -> str | None:
        check_owner(charger_id, node, ttl)
        since = utc(since, "since")  # naive refused, and aware UTC back, as on Redis
        await self._check()
        current = self._current(charger_id)
        self._owners[charger_id] = (Owner(node, since, since), self._clock() + ttl)
        if current is None or current.node == node:
            return None
        return current.node

    async def renew(
        self,
        node: str,
        charger_ids: Sequence[str],
        ttl: float,
        heartbeats: Sequence[datetime | None] = (),
    ) -> list[str]:
        check_owner("-", node, ttl)
        beats = [None if b is None else utc(b, "heartbeat") for b in heartbeats]
        await self._check()
        lost = []
        expires = self._clock() + ttl
        for i, charger_id in enumerate(charger_ids):
            current = self._current(charger_id)
            if current is None or current.node != node:
                lost.append(charger_id)
                continue
            beat = beats[i] if i < len(beats) else None
            if beat is not None:
                current = Owner(current.node, current.since, beat)
            self._owners[charger_id] = (current, expires)
        return lost

    async def release(self, charger_id: str, node: str) -> bool:
        check_owner(charger_id, node)
        await self._check()
        current = self._current(charger_id)
        if current is None or current.node != node:
            return False
        del self._owners[charger_id]
        return True

    async def owners(self, charger_ids: Sequence[str]) -> list[Owner | None]:
        await self._check()
        return [self._current(c) for c in charger_ids]

    def _current(self, charger_id: str) -> Owner | None:
        entry = self._owners.get(charger_id)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._owners[charger_id]
            return None
        return entry[0]


class _LocalSubscription:
    def __init__(self, messages: LocalMessageStore, channels: Sequence[str], listener: Listener):
        self._messages = messages
        self.channels = tuple(channels)
        self.listener = listener

    async def ready(self) -> None:
        await self._messages.check()

    async def close(self) -> None:
        self._messages.drop(self)


class LocalMessageStore:
    """Messages to the subscribers of this process, delivered from the event loop in the
    order published (``call_soon``), never within the publisher's call."""

    def __init__(self, check: Callable[[], Awaitable[None]] | None = None) -> None:
        self._check = check  # StorageError once the store is closed, as every store call
        self._subscriptions: list[_LocalSubscription] = []

    async def publish(self, channel: str, message: bytes) -> int:
        check_channel(channel)
        await self.check()
        loop = asyncio.get_running_loop()
        received = 0
        for sub in list(self._subscriptions):
            if channel in sub.channels:
                loop.call_soon(sub.listener, channel, message)
                received += 1
        return received

    async def subscribers(self, channels: Sequence[str]) -> list[int]:
        for channel in channels:
            check_channel(channel)
        await self.check()
        return [sum(c in sub.channels for sub in self._subscriptions) for c in channels]

    def subscribe(
        self, channels: Sequence[str], listener: Listener, on_gap: Callable[[], None]
    ) -> _LocalSubscription:
        del on_gap  # nothing is ever lost in memory
        for channel in channels:
            check_channel(channel)
        sub = _LocalSubscription(self, channels, listener)
        self._subscriptions.append(sub)
        return sub

    async def check(self) -> None:
        if self._check is not None:
            await self._check()

    def drop(self, sub: _LocalSubscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)
