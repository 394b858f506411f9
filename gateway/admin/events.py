"""``GET /admin/events``: what changes at the chargers, as server-sent events.

Each message is ``event: change`` with a JSON ``data`` line naming what changed
(``{"kind": "status", "charger_id": "CP1", ...}``); a reader fetches what it shows
again from the admin API (the store holds the truth, events only say where to look).
Kinds: ``configured`` (registered, replaced, removed), ``booted``, ``online``,
``offline``, ``status`` (a connector), ``transaction`` (started, updated, ended).
``event: resync`` means messages may have been lost (a slow reader whose queue
overflowed, the cluster subscription lost): read everything shown again.
A comment line every :data:`KEEPALIVE` seconds keeps proxies from closing the stream.

The feed subscribes to the process's event bus (``gateway.keys.BUS``), which carries
the events of the chargers connected to this process. With several processes on one
Redis, a charger's events happen where its connection is: each process whose bus has an
event publishes it on the ``dashboard`` channel while some other process has a reader
(it checks the channel's subscribers at most every :data:`WATCHERS_TTL` seconds), and a
process subscribes to that channel while it has readers. So every reader hears every
charger, except that a reader on a process that had none may miss what happened in its
first :data:`WATCHERS_TTL` seconds (its page was read after, or during, them anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gateway.admin import openapi as api
from gateway.domain.events import (
    ChargerBooted,
    ChargerConfigured,
    ChargerOffline,
    ChargerOnline,
    ConnectorStatusChanged,
    Event,
    TransactionEnded,
    TransactionStarted,
    TransactionUpdated,
)
from gateway.domain.models import Transaction
from gateway.keys import BUS, CLOCK, CLUSTER, SETTINGS, STORE
from gateway.storage.base import MessageStore, Subscription

log = logging.getLogger(__name__)

CHANNEL = "dashboard"
KEEPALIVE = 15.0
WATCHERS_TTL = 2.0
# A reader this far behind is told to read everything again rather than queue more.
QUEUE_SIZE = 1000
_RESYNC: dict[str, Any] = {"kind": "resync"}
_CLOSE: dict[str, Any] = {"kind": "close"}


def _tx(kind: str, tx: Transaction) -> dict[str, Any]:
    return {
        "kind": "transaction",
        "event": kind,
        "charger_id": tx.charger_id,
        "transaction_id": tx.id,
    }


def describe(event: object) -> dict[str, Any] | None:
    """The message of a bus event (None: nothing a reader shows, such as an event kind
    added after this was written)."""
    match event:
        case ChargerConfigured(charger_id=cp_id, after=after):
            return {"kind": "configured", "charger_id": cp_id, "removed": after is None}
        case ChargerBooted(state=state):
            return {"kind": "booted", "charger_id": state.id}
        case ChargerOnline(charger_id=cp_id):
            return {"kind": "online", "charger_id": cp_id}
        case ChargerOffline(charger_id=cp_id):
            return {"kind": "offline", "charger_id": cp_id}
        case ConnectorStatusChanged(state=c):
            return {
                "kind": "status",
                "charger_id": c.charger_id,
                "evse_id": c.evse_id,
                "connector_id": c.connector_id,
                "status": c.status,
            }
        case TransactionStarted(transaction=tx):
            return _tx("started", tx)
        case TransactionUpdated(transaction=tx):
            return _tx("updated", tx)
        case TransactionEnded(transaction=tx):
            return _tx("ended", tx)
    return None


class EventFeed:
    """Fans this process's bus events (and, on a shared store, the other processes')
    out to the readers of ``GET /admin/events``."""

    def __init__(self, messages: MessageStore | None, node_id: str) -> None:
        # messages: None when the store is this process's own (SQLite): nothing to share.
        self._messages = messages
        self._node = node_id
        self._readers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._subscription: Subscription | None = None
        self._subscribing: asyncio.Task[None] | None = None
        self._others_checked = float("-inf")
        self._others_watch = False
        self._closed = False

    # -- readers ---------------------------------------------------------------------

    def join(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._readers.add(queue)
        if self._closed:
            queue.put_nowait(_CLOSE)
        self._follow_cluster()
        return queue

    def leave(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._readers.discard(queue)
        self._follow_cluster()

    @property
    def readers(self) -> int:
        return len(self._readers)

    def _deliver(self, message: dict[str, Any]) -> None:
        for queue in self._readers:
            if message is _CLOSE:
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(_CLOSE)
            elif queue.full():
                # Too far behind: drop what it has and tell it to read everything again.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(_RESYNC)
            else:
                queue.put_nowait(message)

    # -- the bus ---------------------------------------------------------------------

    def on_local_event(self, event: Event) -> None:
        """The bus's listener when the store is this process's own: nothing to share, and
        with no reader nothing to describe (the bus calls this at every event, a
        connector's status change at every StatusNotification)."""
        if self._readers:
            self._described(event)

    async def on_event(self, event: Event) -> None:
        """The bus's subscriber on a shared store: also published to the others."""
        message = self._described(event)
        if message is None:
            return
        if self._messages is not None and await self._others_watching():
            payload = json.dumps({"node": self._node, **message}, separators=(",", ":"))
            await self._messages.publish(CHANNEL, payload.encode())

    def _described(self, event: Event) -> dict[str, Any] | None:
        """The event as the feed's readers get it, delivered to this process's readers."""
        message = describe(event)
        if message is not None:
            self._deliver(message)
        return message

    async def _others_watching(self) -> bool:
        assert self._messages is not None
        loop = asyncio.get_running_loop()
        if loop.time() - self._others_checked >= WATCHERS_TTL:
            self._others_checked = loop.time()
            [count] = await self._messages.subscribers([CHANNEL])
            mine = 1 if self._subscription is not None else 0
            self._others_watch = count > mine
        return self._others_watch

    # -- the other processes ---------------------------------------------------------

    def _follow_cluster(self) -> None:
        """Subscribe to the channel while there are readers, unsubscribe without."""
        if self._messages is None or self._closed:
            return
        if self._subscribing is None or self._subscribing.done():
            self._subscribing = asyncio.get_running_loop().create_task(
                self._sync_subscription(), name="dashboard-events"
            )

    async def _sync_subscription(self) -> None:
        assert self._messages is not None
        while not self._closed:
            if self._readers and self._subscription is None:
                sub = self._messages.subscribe([CHANNEL], self._received, self._gap)
                try:
                    await sub.ready()
                except Exception:
                    log.warning("dashboard events: cannot subscribe to other processes' events")
                    await sub.close()
                    await asyncio.sleep(WATCHERS_TTL)
                    continue
                self._subscription = sub
            elif not self._readers and self._subscription is not None:
                sub, self._subscription = self._subscription, None
                await sub.close()
            else:
                return

    def _received(self, channel: str, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            log.warning("dashboard events: unreadable message dropped")
            return
        if not isinstance(message, dict) or message.pop("node", None) == self._node:
            return  # our own, already delivered
        self._deliver(message)

    def _gap(self) -> None:
        self._deliver(_RESYNC)

    def end_streams(self) -> None:
        self._closed = True
        self._deliver(_CLOSE)

    async def close(self) -> None:
        self.end_streams()
        if self._subscribing is not None:
            self._subscribing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._subscribing
        if self._subscription is not None:
            sub, self._subscription = self._subscription, None
            await sub.close()


FEED = web.AppKey("admin_event_feed", EventFeed)


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    """Opens the feed once the store and cluster node are (a ``cleanup_ctx`` after
    the core's)."""
    shared = app[SETTINGS].uses_redis
    feed = EventFeed(app[STORE].messages if shared else None, app[CLUSTER].id)
    app[FEED] = feed
    if shared:
        app[BUS].subscribe(feed.on_event)
    else:
        app[BUS].listen(feed.on_local_event)
    yield
    await feed.close()


async def close_readers(app: web.Application) -> None:
    """``on_shutdown``: end every stream, so that shutting down does not wait on them."""
    if FEED in app:
        app[FEED].end_streams()


async def stream_events(request: web.Request) -> web.StreamResponse:
    feed = request.config_dict[FEED]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            # nginx and others buffer responses unless told not to.
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    queue = feed.join()
    try:
        started = request.config_dict[CLOCK].now().isoformat().replace("+00:00", "Z")
        # retry: the browser's reconnect delay (ms) after the stream breaks.
        await response.write(f"retry: 2000\nevent: hello\ndata: {json.dumps(started)}\n\n".encode())
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), KEEPALIVE)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if message is _CLOSE:
                break
            name = "resync" if message is _RESYNC else "change"
            data = json.dumps(message, separators=(",", ":"))
            await response.write(f"event: {name}\ndata: {data}\n\n".encode())
    except ConnectionResetError:
        pass  # the reader went away
    finally:
        feed.leave(queue)
    return response


def event_routes() -> list[api.Operation]:
    return [
        api.get(
            "/events",
            stream_events,
            "What changes at the chargers, as server-sent events",
            description="`event: change` with JSON data naming what changed (`kind`:"
            " configured, booted, online, offline, status, transaction; `charger_id`);"
            " `event: resync`: read everything again. Read what is shown again from the"
            " other endpoints.",
            content_type="text/event-stream",
        )
    ]
