"""Fixtures of the storage suite: every contract test runs once per backend.

Redis: ``GATEWAY_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``). When it
does not answer, the Redis tests are skipped, or fail when ``GATEWAY_REQUIRE_REDIS=1``
(as CI sets it). Each test gets its own key prefix, deleted afterwards (never FLUSHDB),
so that parallel runs sharing one Redis do not collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from gateway.storage.base import Store
from gateway.storage.redis import open_redis_store
from gateway.storage.redis_keys import RedisKeys
from gateway.storage.sqlite import open_sqlite_store

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"

StoreFactory = Callable[[], Awaitable[Store]]


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis URL, once it answered a PING; else skip (or fail when required)."""
    url = os.environ.get("GATEWAY_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError) as exc:
        reason = f"Redis at {url} is unreachable: {exc}"
        if os.environ.get("GATEWAY_REQUIRE_REDIS") == "1":
            pytest.fail(f"{reason} (GATEWAY_REQUIRE_REDIS=1)", pytrace=False)
        pytest.skip(reason)
    return url


@dataclass(frozen=True)
class Location:
    """Where a test's store lives: a SQLite file, or a Redis URL and key prefix."""

    backend: str
    sqlite_path: Path
    redis_url: str = ""
    redis_prefix: str = ""

    async def open(self) -> Store:
        if self.backend == "sqlite":
            return await open_sqlite_store(self.sqlite_path)
        if self.backend == "sqlite-process":  # trail and history written by processes
            return await open_sqlite_store(self.sqlite_path, writer_processes=True)
        return await open_redis_store(self.redis_url, prefix=self.redis_prefix)


async def delete_prefix(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(RedisKeys(prefix).match_all(), 1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def location(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    sqlite_path = tmp_path / "data" / "gateway.sqlite3"
    if backend in ("sqlite", "sqlite-process"):
        return Location(backend, sqlite_path)
    url = request.getfixturevalue("redis_url")  # only Redis tests depend on Redis
    return Location("redis", sqlite_path, url, f"gwtest:{uuid.uuid4().hex}:")


@pytest.fixture
async def store_factory(location: Location) -> AsyncIterator[StoreFactory]:
    """Opens the test's store (again, for reopen tests); closes all and cleans up after."""
    opened: list[Store] = []

    async def open_store() -> Store:
        store = await location.open()
        opened.append(store)
        return store

    try:
        yield open_store
    finally:
        for store in opened:
            await store.close()
        if location.backend == "redis":
            await delete_prefix(location.redis_url, location.redis_prefix)


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    return await store_factory()
