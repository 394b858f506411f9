"""Redis connection losses: what is sent again, what is not, and the retry bound.

Each test runs a real Redis store through :class:`RedisProxy`, which loses answers
(the command ran, its answer never came back), kills connections, refuses them or
lets them hang, so that the shared Redis server itself is never disturbed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis

from gateway.storage.base import OutboxStatus, StorageUnavailable, Store
from gateway.storage.redis import open_redis_store
from gateway.storage.redis_batch import CommandBatcher

from .conftest import delete_prefix
from .redis_proxy import RedisProxy
from .samples import (
    at,
    document,
    full_charger,
    full_token,
    outbox_item,
    reading,
    transaction,
)

pytestmark = pytest.mark.redis

T = TypeVar("T")


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[RedisProxy]:
    proxy = RedisProxy(redis_url)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    prefix = f"gwtest:{uuid.uuid4().hex}:"
    yield prefix
    await delete_prefix(redis_url, prefix)


@pytest.fixture
async def direct(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the server itself (not through the proxy), to look at its state."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def open_store(
    proxy: RedisProxy, prefix: str
) -> AsyncIterator[Callable[..., Awaitable[Store]]]:
    opened: list[Store] = []

    async def open_store(**options: Any) -> Store:
        store = await open_redis_store(proxy.url, prefix=prefix, **options)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_store: Callable[..., Awaitable[Store]]) -> Store:
    return await open_store(retry_seconds=5.0, socket_timeout=5.0)


def batcher(store: Store) -> CommandBatcher:
    db: CommandBatcher = store.backend.db  # type: ignore[attr-defined]
    return db


async def until(check: Callable[[], Any], timeout: float = 5.0) -> None:
    """Until ``check()`` (or what it returns, awaited) is true."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.005)


async def answer_lost(proxy: RedisProxy, store: Store, operation: Awaitable[T]) -> T:
    """Run ``operation`` (one command) so that Redis applies it but its answer is lost
    with the connection; what it returns once the store sent it again."""
    lost_before = batcher(store).stats.connections_lost
    proxy.drop_replies = True
    task = asyncio.ensure_future(operation)
    try:
        await until(lambda: proxy.dropped > 0)  # Redis answers only once it ran it
    finally:
        proxy.drop_replies = False
        proxy.kill()
    result = await task
    assert batcher(store).stats.connections_lost == lost_before + 1
    return result


# -- a lost answer: sent again, with the result of the first time -----------------------


async def test_a_lost_create_answers_created_and_stores_the_readings_once(
    proxy: RedisProxy, store: Store
) -> None:
    tx = transaction("tx-1", ocpp_id="7")
    readings = [reading(1), reading(2)]
    stored, created = await answer_lost(proxy, store, store.transactions.create(tx, readings))
    assert (stored, created) == (tx, True)  # what the bridge's TransactionStarted needs
    assert await store.transactions.readings("tx-1") == readings
    assert batcher(store).stats.resent == 1


async def test_a_lost_save_appends_its_readings_once(proxy: RedisProxy, store: Store) -> None:
    tx = transaction("tx-1")
    await store.transactions.create(tx, [reading(1)])
    later = replace(tx, charging_state="Charging", updated_at=at(60))
    assert (
        await answer_lost(proxy, store, store.transactions.save(later, [reading(2), reading(3)]))
        is None
    )
    assert await store.transactions.readings("tx-1") == [reading(1), reading(2), reading(3)]
    assert await store.transactions.get("tx-1") == later


async def test_a_lost_save_that_did_not_run_is_applied_when_sent_again(
    proxy: RedisProxy, store: Store, direct: aioredis.Redis, prefix: str
) -> None:
    """The other half of the check: the connection died before Redis ran the save."""
    tx = transaction("tx-1")
    await store.transactions.create(tx)
    proxy.cut()  # the save is queued; the connection is gone before it is sent
    later = replace(tx, updated_at=at(60))
    save = asyncio.ensure_future(store.transactions.save(later, [reading(5)]))
    await until(lambda: batcher(store).stats.reconnect_failures >= 2)
    assert await direct.llen(f"{prefix}tx-readings:tx-1") == 0
    proxy.restore()
    await save  # a delay, not an error
    assert await store.transactions.readings("tx-1") == [reading(5)]


async def test_a_lost_number_is_skipped_never_handed_out_twice(
    proxy: RedisProxy, store: Store
) -> None:
    first = await store.transactions.next_ocpp16_id()
    second = await answer_lost(proxy, store, store.transactions.next_ocpp16_id())
    third = await store.transactions.next_ocpp16_id()
    # The lost answer was first + 1: never used, as the contract allows (unique, > 0).
    assert (second, third) == (first + 2, first + 3)


async def test_a_lost_enqueue_answers_the_seqs_it_stored_and_stores_once(
    proxy: RedisProxy, store: Store
) -> None:
    items = [outbox_item("item-1"), outbox_item("item-2")]
    stored = await answer_lost(proxy, store, store.outbox.enqueue(items))
    listed = await store.outbox.list()
    assert [(i.id, i.seq) for i in listed] == [(i.id, i.seq) for i in stored]
    assert [i.id for i in listed] == ["item-1", "item-2"]


async def test_a_lost_document_put_with_pushes_stores_them_once(
    proxy: RedisProxy, store: Store
) -> None:
    doc = document("LOC-1")
    await answer_lost(proxy, store, store.locations.put(doc, enqueue=[outbox_item("item-1")]))
    assert await store.locations.get("LOC-1") == doc
    assert [i.id for i in await store.outbox.list()] == ["item-1"]


async def test_a_lost_document_delete_with_pushes_answers_true_and_stores_them_once(
    proxy: RedisProxy, store: Store
) -> None:
    await store.locations.put(document("LOC-1"))
    deleted = await answer_lost(
        proxy, store, store.locations.delete("LOC-1", enqueue=[outbox_item("item-1")])
    )
    assert deleted is True
    assert await store.locations.get("LOC-1") is None
    assert [i.id for i in await store.outbox.list()] == ["item-1"]


async def test_a_lost_retry_later_counts_its_attempt_once(proxy: RedisProxy, store: Store) -> None:
    await store.outbox.enqueue([outbox_item("item-1")])
    await answer_lost(proxy, store, store.outbox.retry_later("item-1", at(30), "HTTP 503"))
    item = await store.outbox.get("item-1")
    assert item is not None
    assert (item.attempts, item.last_error, item.next_attempt_at) == (1, "HTTP 503", at(30))


async def test_a_lost_complete_is_done_once(proxy: RedisProxy, store: Store) -> None:
    await store.outbox.enqueue([outbox_item("item-1"), outbox_item("item-2")])
    await answer_lost(proxy, store, store.outbox.complete("item-1", at=at(5)))
    assert [i.id for i in await store.outbox.due(at(10))] == ["item-2"]  # the next head
    assert [i.id for i in await store.outbox.list(status=OutboxStatus.DONE)] == ["item-1"]


async def test_a_lost_record_put_is_sent_again(proxy: RedisProxy, store: Store) -> None:
    await answer_lost(proxy, store, store.chargers.put(full_charger("CP-1")))
    assert await store.chargers.get("CP-1") == full_charger("CP-1")


async def test_a_lost_delete_answers_as_the_first_time(
    proxy: RedisProxy, store: Store, direct: aioredis.Redis, prefix: str
) -> None:
    """A repeat alone would answer "was not there": the first one's marker tells."""
    await store.chargers.put(full_charger("CP-1"))
    await store.tokens.put(full_token("T-1"))
    await store.locations.put(document("LOC-1"))
    assert await answer_lost(proxy, store, store.chargers.delete("CP-1")) is True
    assert await answer_lost(proxy, store, store.tokens.delete("T-1")) is True
    assert await answer_lost(proxy, store, store.locations.delete("LOC-1")) is True
    assert await store.chargers.get("CP-1") is None
    # And one that found nothing still says so.
    assert await answer_lost(proxy, store, store.chargers.delete("CP-1")) is False
    assert await answer_lost(proxy, store, store.locations.delete("LOC-1")) is False
    # The markers (one per delete that removed something) expire by themselves.
    markers = [key async for key in direct.scan_iter(f"{prefix}deleted:*")]
    assert len(markers) == 3
    assert all(0 < ttl <= 65 for ttl in [await direct.ttl(key) for key in markers])


async def test_a_lost_replay_is_not_sent_again_its_caller_is_told(
    proxy: RedisProxy, store: Store
) -> None:
    """A repeat would answer "was not failed": the operator gets StorageUnavailable."""
    await store.outbox.enqueue([outbox_item("item-1")])
    await store.outbox.fail("item-1", "HTTP 400")
    with pytest.raises(StorageUnavailable, match="may or may not have been applied"):
        await answer_lost(proxy, store, store.outbox.replay("item-1", at(60)))
    item = await store.outbox.get("item-1")
    assert item is not None and item.status is OutboxStatus.PENDING  # it was applied
    assert batcher(store).stats.resent == 0


async def test_a_write_followed_by_a_later_write_of_the_same_record_is_not_repeated(
    proxy: RedisProxy, store: Store, direct: aioredis.Redis, prefix: str
) -> None:
    """Two saves of one transaction in the lost batch: repeating the first after the
    second was applied would fool its check; it fails instead, the second decides."""
    tx = transaction("tx-1")
    await store.transactions.create(tx)
    first = replace(tx, charging_state="Charging", updated_at=at(60))
    second = replace(tx, charging_state="SuspendedEV", updated_at=at(120))
    proxy.drop_replies = True
    saves = [
        asyncio.ensure_future(store.transactions.save(first, [reading(1)])),
        asyncio.ensure_future(store.transactions.save(second, [reading(2)])),
    ]
    try:
        await until(lambda: direct.llen(f"{prefix}tx-readings:tx-1"), timeout=5)
        await until(lambda: proxy.dropped > 0)
        assert await direct.llen(f"{prefix}tx-readings:tx-1") == 2  # one batch: both ran
    finally:
        proxy.drop_replies = False
        proxy.kill()
    with pytest.raises(StorageUnavailable):
        await saves[0]
    await saves[1]
    assert await store.transactions.readings("tx-1") == [reading(1), reading(2)]
    assert await store.transactions.get("tx-1") == second


# -- outages ----------------------------------------------------------------------------


async def test_commands_wait_out_an_outage_shorter_than_the_bound(
    proxy: RedisProxy, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await store.chargers.put(full_charger("CP-1"))
    proxy.cut()
    read = asyncio.ensure_future(store.chargers.get("CP-1"))
    write = asyncio.ensure_future(store.tokens.list())
    await until(lambda: batcher(store).stats.reconnect_failures >= 3)  # with backoff
    assert not read.done()
    proxy.restore()
    assert await read == full_charger("CP-1")
    assert await write == []
    messages = [r.getMessage() for r in caplog.records if r.name == "gateway.storage.redis_batch"]
    # One line when it went (not one per attempt), one when it came back.
    assert len(messages) == 2, messages
    assert "Redis: " in messages[0] and "connected again" in messages[1], messages
    assert all(r.exc_info is None for r in caplog.records)


async def test_an_outage_longer_than_the_bound_fails_then_recovers(
    proxy: RedisProxy, open_store: Callable[..., Awaitable[Store]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = await open_store(retry_seconds=0.3)
    await store.chargers.put(full_charger("CP-1"))
    proxy.cut()
    with pytest.raises(StorageUnavailable, match=r"no connection for 0\.3 s"):
        await store.chargers.put(full_charger("CP-2"))
    assert batcher(store).stats.expired == 1
    proxy.restore()
    await store.chargers.put(full_charger("CP-2"))
    assert [c.id for c in await store.chargers.list()] == ["CP-1", "CP-2"]
    assert all(r.exc_info is None for r in caplog.records)


async def test_a_hanging_server_fails_commands_at_the_bound_not_at_the_socket_timeout(
    proxy: RedisProxy, open_store: Callable[..., Awaitable[Store]]
) -> None:
    store = await open_store(retry_seconds=0.3, socket_timeout=30)
    await store.chargers.put(full_charger("CP-1"))
    proxy.blackhole()  # reconnection attempts hang (until the 30 s socket timeout)
    async with asyncio.timeout(10):  # far below the socket timeout
        with pytest.raises(StorageUnavailable):
            await store.chargers.get("CP-1")
    proxy.restore()  # the hanging attempt is closed, the next one goes through
    assert await store.chargers.get("CP-1") == full_charger("CP-1")


async def test_repeated_kills_under_load_lose_and_duplicate_nothing(
    proxy: RedisProxy, store: Store
) -> None:
    """Many writers while the connection is killed again and again: every write
    returns, and each reading is stored exactly once."""
    await store.transactions.create(transaction("tx-1"))
    sent: list[int] = []

    async def writer(n: int) -> None:
        for i in range(40):
            k = n * 1000 + i
            if n == 0:  # one transaction's readings, in order
                await store.transactions.save(
                    replace(transaction("tx-1"), updated_at=at(k)), [reading(k)]
                )
            else:
                await store.chargers.put(full_charger(f"CP-{k}"))
            sent.append(k)

    writers = [asyncio.ensure_future(writer(n)) for n in range(4)]
    kills = 0
    while not all(w.done() for w in writers) and kills < 25:
        connections = batcher(store).stats.connections
        proxy.kill()
        kills += 1
        await until(
            lambda opened=connections: (
                batcher(store).stats.connections > opened or all(w.done() for w in writers)
            )
        )
    await asyncio.gather(*writers)
    assert len(sent) == 160
    assert [r.value for r in await store.transactions.readings("tx-1")] == [
        reading(k).value for k in range(40)
    ]
    assert len(await store.chargers.list()) == 120
    assert kills > 1
