"""Store.ping: the cheap "does storage answer" call behind GET /health/ready."""

from __future__ import annotations

import uuid

import pytest

from gateway.storage.base import StorageError, StorageUnavailable, Store
from gateway.storage.redis import open_redis_store
from tests.storage.conftest import StoreFactory, delete_prefix
from tests.storage.redis_proxy import RedisProxy


async def test_ping_answers_on_an_open_store(store: Store) -> None:
    assert await store.ping() is None
    # A ping is a read: it leaves no trace a later read would see.
    assert await store.chargers.list() == []


async def test_ping_fails_after_close(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.ping()
    await store.close()
    with pytest.raises(StorageError):
        await store.ping()


@pytest.mark.redis
async def test_redis_ping_fails_while_redis_is_unreachable_and_recovers(redis_url: str) -> None:
    proxy = RedisProxy(redis_url)
    await proxy.start()
    prefix = f"gwtest:{uuid.uuid4().hex}:"
    store = await open_redis_store(proxy.url, prefix=prefix, retry_seconds=0.2)
    try:
        await store.ping()
        proxy.cut()
        # Waits for the connection at most retry_seconds, then reports the outage.
        with pytest.raises(StorageUnavailable):
            await store.ping()
        proxy.restore()
        await store.ping()
    finally:
        await store.close()
        await proxy.close()
        await delete_prefix(redis_url, prefix)
