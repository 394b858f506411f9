"""Domain events the central system publishes after it has stored what they describe.

Consumers (the OCPI bridge, smart charging) subscribe through :class:`EventBus`.
An event is a notification, not the record: the store holds the truth, so a
consumer that misses events (restart) can rebuild from the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from gateway.domain.errors import Unavailable
from gateway.domain.models import (
    Charger,
    ChargerState,
    ConnectorState,
    MeterReading,
    Transaction,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChargerBooted:
    state: ChargerState


@dataclass(frozen=True, slots=True)
class ChargerConfigured:
    """The operator registered, replaced or removed a charger (``before``/``after`` None
    when it did not exist / no longer exists): its location binding or EVSEs may have
    changed."""

    charger_id: str
    before: Charger | None
    after: Charger | None


@dataclass(frozen=True, slots=True)
class ChargerOnline:
    charger_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ChargerOffline:
    charger_id: str
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectorStatusChanged:
    state: ConnectorState


@dataclass(frozen=True, slots=True)
class TransactionStarted:
    transaction: Transaction


@dataclass(frozen=True, slots=True)
class TransactionUpdated:
    transaction: Transaction
    readings: tuple[MeterReading, ...]


@dataclass(frozen=True, slots=True)
class TransactionEnded:
    transaction: Transaction


Event = (
    ChargerBooted
    | ChargerConfigured
    | ChargerOnline
    | ChargerOffline
    | ConnectorStatusChanged
    | TransactionStarted
    | TransactionUpdated
    | TransactionEnded
)
Subscriber = Callable[[Event], Awaitable[None]]
Listener = Callable[[Event], None]
EventKind = type[Event]

ALL_EVENTS: tuple[EventKind, ...] = (
    ChargerBooted,
    ChargerConfigured,
    ChargerOnline,
    ChargerOffline,
    ConnectorStatusChanged,
    TransactionStarted,
    TransactionUpdated,
    TransactionEnded,
)


class EventBus:
    """In-process fan-out. A failing subscriber is logged and never affects the others.

    Each consumer names the kinds of event it acts on, and is given only those: the
    central system publishes on the chargers' path (a StatusNotification is answered
    once its event has been handled), where a task per consumer and event, most of them
    returning at once, cost more than the rest of the message (issue 15's profiles).
    A *listener* is a plain function called inline (it must not block: it queues, counts
    or hands over); a *subscriber* is a coroutine function, awaited directly when it is
    the only one for an event and gathered with the others otherwise.
    """

    def __init__(self) -> None:
        self._subscribers: list[tuple[Subscriber, tuple[EventKind, ...]]] = []
        self._listeners: list[tuple[Listener, tuple[EventKind, ...]]] = []
        self._routes: dict[type, tuple[tuple[Listener, ...], tuple[Subscriber, ...]]] = {}

    def subscribe(self, subscriber: Subscriber, *kinds: EventKind) -> None:
        """``subscriber`` is awaited for each event of ``kinds`` (every kind if none)."""
        self._subscribers.append((subscriber, kinds or ALL_EVENTS))
        self._routes.clear()

    def listen(self, listener: Listener, *kinds: EventKind) -> None:
        """``listener`` is called inline for each event of ``kinds`` (every kind if none)."""
        self._listeners.append((listener, kinds or ALL_EVENTS))
        self._routes.clear()

    def _route(self, kind: type) -> tuple[tuple[Listener, ...], tuple[Subscriber, ...]]:
        route = (
            tuple(f for f, kinds in self._listeners if kind in kinds),
            tuple(f for f, kinds in self._subscribers if kind in kinds),
        )
        self._routes[kind] = route
        return route

    async def publish(self, event: Event) -> None:
        route = self._routes.get(type(event))
        if route is None:
            route = self._route(type(event))
        listeners, subscribers = route
        for listener in listeners:
            try:
                listener(event)
            except Exception as exc:
                _failed(event, exc)
        if not subscribers:
            return
        if len(subscribers) == 1:
            try:
                await subscribers[0](event)
            except Exception as exc:
                _failed(event, exc)
            return
        results = await asyncio.gather(*(s(event) for s in subscribers), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                _failed(event, result)


def _failed(event: Event, exc: BaseException) -> None:
    if isinstance(exc, Unavailable):
        log.warning("event subscriber failed on %s: %s", type(event).__name__, exc)
    else:
        log.error("event subscriber failed on %s", type(event).__name__, exc_info=exc)
