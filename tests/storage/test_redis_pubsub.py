"""Redis subscriptions outlive connection losses (``RedisSubscription``).

The subscribing store goes through :class:`RedisProxy`, whose connections a test cuts
(the shared Redis server itself is never disturbed); messages are published by a second
store connected to Redis directly, so that publishing is never what the loss affects.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.storage.base import Store, Subscription
from gateway.storage.redis import open_redis_store

from .conftest import delete_prefix
from .redis_proxy import RedisProxy

pytestmark = pytest.mark.redis

LOGGER = "gateway.storage.redis_pubsub"


async def _until(condition: Callable[[], bool], what: str, bound: float = 10.0) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {bound} s"
        await asyncio.sleep(0.01)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.gaps = 0

    def __call__(self, channel: str, message: bytes) -> None:
        self.messages.append((channel, message))

    def gap(self) -> None:
        self.gaps += 1


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[RedisProxy]:
    proxy = RedisProxy(redis_url)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def stores(redis_url: str, proxy: RedisProxy) -> AsyncIterator[tuple[Store, Store]]:
    """(through the proxy, direct): the same keys, two ways to reach them."""
    prefix = f"gwtest:{uuid.uuid4().hex}:"
    proxied = await open_redis_store(proxy.url, prefix=prefix)
    direct = await open_redis_store(redis_url, prefix=prefix)
    yield proxied, direct
    await proxied.close()
    await direct.close()
    await delete_prefix(redis_url, prefix)


async def _subscribe(store: Store, channels: list[str], inbox: Inbox) -> Subscription:
    sub = store.messages.subscribe(channels, inbox, inbox.gap)
    await asyncio.wait_for(sub.ready(), 10)
    return sub


async def _send_until_received(publisher: Store, inbox: Inbox, message: bytes) -> None:
    """Publish once the subscription is back (counted by Redis), then wait for it."""
    messages = publisher.messages
    deadline = time.monotonic() + 10
    while (await messages.subscribers(["node:a"]))[0] != 1:
        assert time.monotonic() < deadline, "the subscription did not come back"
        await asyncio.sleep(0.02)
    assert await messages.publish("node:a", message) == 1
    await _until(lambda: ("node:a", message) in inbox.messages, f"delivery of {message!r}")


def _pubsub_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


def _assert_one_warning_per_loss(caplog: pytest.LogCaptureFixture, losses: int) -> None:
    records = _pubsub_records(caplog)
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == losses, [r.getMessage() for r in warnings]
    assert all("subscription lost" in r.getMessage() for r in warnings)
    # An outage, not a bug: one line each, no traceback anywhere.
    assert not any(r.exc_info or r.stack_info for r in records)
    assert "Traceback" not in caplog.text


async def test_the_subscription_comes_back_after_each_connection_loss(
    stores: tuple[Store, Store], proxy: RedisProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    proxied, direct = stores
    inbox = Inbox()
    sub = await _subscribe(proxied, ["node:a"], inbox)
    try:
        await _send_until_received(direct, inbox, b"before")
        for loss in (1, 2, 3):
            proxy.kill()
            await _until(lambda: inbox.gaps == loss, f"on_gap after loss {loss}")  # noqa: B023
            await _send_until_received(direct, inbox, f"after {loss}".encode())
        assert inbox.messages == [
            ("node:a", b"before"),
            ("node:a", b"after 1"),
            ("node:a", b"after 2"),
            ("node:a", b"after 3"),
        ]
        assert inbox.gaps == 3
    finally:
        await sub.close()
    _assert_one_warning_per_loss(caplog, 3)
    backs = [r for r in _pubsub_records(caplog) if "back after" in r.getMessage()]
    assert len(backs) == 3


async def test_one_warning_and_one_gap_however_many_attempts_fail(
    stores: tuple[Store, Store], proxy: RedisProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    proxied, direct = stores
    inbox = Inbox()
    sub = await _subscribe(proxied, ["node:a"], inbox)
    try:
        accepted = proxy.accepted
        proxy.cut()  # refused until restored: the subscription keeps trying
        await _until(lambda: proxy.accepted >= accepted + 3, "three attempts to subscribe")
        # Published during the outage: lost (that is what on_gap is for).
        assert await direct.messages.publish("node:a", b"lost") == 0
        assert inbox.gaps == 0  # not back yet
        proxy.restore()
        await _until(lambda: inbox.gaps == 1, "on_gap once back")
        await _send_until_received(direct, inbox, b"after")
        assert inbox.messages == [("node:a", b"after")]
        assert inbox.gaps == 1
    finally:
        await sub.close()
    _assert_one_warning_per_loss(caplog, 1)


async def test_a_connection_that_stops_answering_is_replaced(
    stores: tuple[Store, Store], proxy: RedisProxy, caplog: pytest.LogCaptureFixture
) -> None:
    # Redis answers nothing (a server gone without closing the connection): the
    # subscription's PINGs go unanswered, and it subscribes again on a new connection.
    caplog.set_level(logging.INFO, logger=LOGGER)
    proxied, direct = stores
    inbox = Inbox()
    sub = await _subscribe(proxied, ["node:a"], inbox)
    try:
        proxy.drop_replies = True
        await _until(
            lambda: any("subscription lost" in r.getMessage() for r in _pubsub_records(caplog)),
            "the unanswered PINGs noticed",
            bound=30,
        )
        proxy.drop_replies = False
        await _until(lambda: inbox.gaps == 1, "on_gap once back")
        await _send_until_received(direct, inbox, b"after")
        assert inbox.messages == [("node:a", b"after")]
    finally:
        await sub.close()
    _assert_one_warning_per_loss(caplog, 1)


async def test_a_listener_that_raises_does_not_end_the_subscription(
    stores: tuple[Store, Store], caplog: pytest.LogCaptureFixture
) -> None:
    _, direct = stores
    received: list[bytes] = []
    gaps: list[None] = []

    def listener(channel: str, message: bytes) -> None:
        if message.startswith(b"bad"):
            raise RuntimeError("a listener's bug")
        received.append(message)

    sub = direct.messages.subscribe(["node:a"], listener, lambda: gaps.append(None))
    await asyncio.wait_for(sub.ready(), 10)
    try:
        for message in (b"1", b"bad 1", b"2", b"bad 2", b"3"):
            assert await direct.messages.publish("node:a", message) == 1
        await _until(lambda: received == [b"1", b"2", b"3"], "the messages after the bad ones")
        assert await direct.messages.subscribers(["node:a"]) == [1]
    finally:
        await sub.close()
    assert gaps == []  # the subscription itself never failed
    failures = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert len(failures) == 2
    assert all(r.exc_info is not None for r in failures)  # a bug: with its traceback
