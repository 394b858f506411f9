"""The domain event bus: each consumer is given the kinds of event it named and no other,
listeners inline, a lone subscriber awaited directly, several gathered, and a failing
consumer logged without costing the others their event."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from gateway.domain.errors import Unavailable
from gateway.domain.events import (
    ALL_EVENTS,
    ChargerOffline,
    ChargerOnline,
    ConnectorStatusChanged,
    Event,
    EventBus,
)
from gateway.domain.models import ConnectorState, ConnectorStatus

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
ONLINE = ChargerOnline("CP1", T0)
OFFLINE = ChargerOffline("CP1", T0, "closed")
STATUS = ConnectorStatusChanged(ConnectorState("CP1", 1, 1, ConnectorStatus.CHARGING, T0))


async def test_each_consumer_gets_only_the_kinds_it_named() -> None:
    bus = EventBus()
    got: dict[str, list[Event]] = {"online": [], "status": [], "all": [], "listener": []}

    async def online(event: Event) -> None:
        got["online"].append(event)

    async def status(event: Event) -> None:
        got["status"].append(event)

    async def every(event: Event) -> None:
        got["all"].append(event)

    bus.subscribe(online, ChargerOnline, ChargerOffline)
    bus.subscribe(status, ConnectorStatusChanged)
    bus.subscribe(every)
    bus.listen(got["listener"].append, ConnectorStatusChanged)
    for event in (ONLINE, STATUS, OFFLINE):
        await bus.publish(event)
    assert got == {
        "online": [ONLINE, OFFLINE],
        "status": [STATUS],
        "all": [ONLINE, STATUS, OFFLINE],
        "listener": [STATUS],
    }


async def test_a_consumer_added_later_is_routed_too() -> None:
    bus = EventBus()
    first: list[Event] = []
    later: list[Event] = []
    bus.listen(first.append, ChargerOnline)
    await bus.publish(ONLINE)  # the route of ChargerOnline is now cached
    bus.listen(later.append, ChargerOnline)
    await bus.publish(ONLINE)
    assert (first, later) == ([ONLINE, ONLINE], [ONLINE])


async def test_a_lone_subscriber_runs_in_the_publishers_task() -> None:
    bus = EventBus()
    tasks: list[asyncio.Task[object] | None] = []

    async def lone(event: Event) -> None:
        tasks.append(asyncio.current_task())

    bus.subscribe(lone, ChargerOnline)
    await bus.publish(ONLINE)
    assert tasks == [asyncio.current_task()]


@pytest.mark.parametrize("others", [0, 1], ids=["alone", "with another"])
async def test_a_failing_subscriber_is_logged_and_the_others_still_run(
    others: int, caplog: pytest.LogCaptureFixture
) -> None:
    bus = EventBus()
    got: list[Event] = []

    async def broken(event: Event) -> None:
        raise RuntimeError("boom")

    async def unavailable(event: Event) -> None:
        raise Unavailable("store away")

    def broken_listener(event: Event) -> None:
        raise KeyError("listener")

    async def fine(event: Event) -> None:
        got.append(event)

    bus.listen(broken_listener, ChargerOnline)
    bus.listen(got.append, ChargerOnline)
    bus.subscribe(broken, ChargerOnline)
    bus.subscribe(unavailable, ChargerOffline)
    for _ in range(others):
        bus.subscribe(fine, ChargerOnline, ChargerOffline)
    with caplog.at_level(logging.WARNING, logger="gateway.domain.events"):
        await bus.publish(ONLINE)
        await bus.publish(OFFLINE)
    assert got == [ONLINE] + [ONLINE, OFFLINE] * others
    errors = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("ERROR", "event subscriber failed on ChargerOnline") in errors
    assert errors.count(("ERROR", "event subscriber failed on ChargerOnline")) == 2
    assert ("WARNING", "event subscriber failed on ChargerOffline: store away") in errors


def test_every_event_kind_is_known_to_the_bus() -> None:
    assert set(ALL_EVENTS) == set(Event.__args__)
