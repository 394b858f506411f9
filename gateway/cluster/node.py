"""This process as a node of the cluster: its id, its channel and the shared one.

Every message is a JSON object with a ``type``; handlers are registered per type. A
node listens on ``node:{id}`` (what other processes send to it: routed commands, their
results, "close your connection to this charger") and on ``changes`` (what every
process hears: a partner registered, a rule changed...). A message of a type nobody
registered, or one that is not JSON, is logged and dropped (a newer process in the
cluster, or a bug): it never ends the subscription.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from gateway.cluster import wire
from gateway.storage.base import MessageStore, Subscription

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]

CHANGES = "changes"


def node_channel(node: str) -> str:
    return f"node:{node}"


class ClusterNode:
    def __init__(self, messages: MessageStore, node_id: str) -> None:
        self.id = node_id
        self._messages = messages
        self._handlers: dict[str, Handler] = {}
        self._gap_handlers: list[Callable[[], None]] = []
        self._subscription: Subscription | None = None

    def on(self, kind: str, handler: Handler) -> None:
        """Call ``handler(message)`` for each message of ``type`` ``kind`` (one handler
        per kind), from the event loop; it must not block (start a task for long work)."""
        self._handlers[kind] = handler

    def on_gap(self, handler: Callable[[], None]) -> None:
        """Call ``handler()`` when messages may have been lost (the subscription was
        lost and is back): whoever keeps something in memory reads it again."""
        self._gap_handlers.append(handler)

    async def start(self) -> None:
        """Subscribe; return once messages sent from now on reach this node."""
        self._subscription = self._messages.subscribe(
            [node_channel(self.id), CHANGES], self._received, self._gap
        )
        await self._subscription.ready()

    async def stop(self) -> None:
        sub, self._subscription = self._subscription, None
        if sub is not None:
            await sub.close()

    async def send(self, node: str, message: dict[str, Any]) -> bool:
        """Send to one node: False when it does not listen (it is gone)."""
        return await self._messages.publish(node_channel(node), wire.dumps(message)) > 0

    async def alive(self, nodes: Iterable[str]) -> set[str]:
        """The nodes among ``nodes`` that listen now. A process that died (even by
        ``kill -9``) stops listening at once (the OS closes its connection to Redis),
        long before its records expire."""
        wanted = sorted(set(nodes))
        counts = await self._messages.subscribers([node_channel(n) for n in wanted])
        return {n for n, count in zip(wanted, counts, strict=True) if count > 0}

    async def broadcast(self, message: dict[str, Any]) -> None:
        """Send to every node, this one included."""
        await self._messages.publish(CHANGES, wire.dumps(message))

    def _received(self, channel: str, data: bytes) -> None:
        try:
            message = wire.loads(data)
        except wire.WireError as exc:
            log.warning("cluster: unreadable message on %s: %s", channel, exc)
            return
        kind = message.get("type")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            log.warning("cluster: message of unknown type %r on %s dropped", kind, channel)
            return
        handler(message)

    def _gap(self) -> None:
        for handler in self._gap_handlers:
            try:
                handler()
            except Exception:
                log.exception("cluster: gap handler failed")
