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


class EventBus:
    """In-process fan-out. A failing subscriber is logged and never affects the others."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def publish(self, event: Event) -> None:
        if not self._subscribers:
            return
        results = await asyncio.gather(
            *(s(event) for s in self._subscribers), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Unavailable):
                log.warning("event subscriber failed on %s: %s", type(event).__name__, result)
            elif isinstance(result, BaseException):
                log.error("event subscriber failed on %s", type(event).__name__, exc_info=result)
