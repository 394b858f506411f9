"""open_store: SQLite in the data dir by default, Redis when a URL is given."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.domain.models import Charger
from gateway.storage.factory import open_store
from gateway.storage.redis_keys import RedisKeys

from .conftest import delete_prefix


async def test_sqlite_in_the_data_dir_by_default(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = await open_store(data_dir=data_dir, redis_url=None)
    try:
        await store.chargers.put(Charger(id="CP-1"))
        assert (data_dir / "gateway.sqlite3").is_file()
    finally:
        await store.close()
    store = await open_store(data_dir=data_dir, redis_url=None)
    try:
        assert await store.chargers.get("CP-1") == Charger(id="CP-1")
    finally:
        await store.close()


@pytest.mark.redis
async def test_redis_when_a_url_is_given(tmp_path: Path, redis_url: str) -> None:
    prefix = f"gwtest:{uuid.uuid4().hex}:"
    store = await open_store(data_dir=tmp_path, redis_url=redis_url, redis_prefix=prefix)
    try:
        await store.chargers.put(Charger(id="CP-1"))
        client = aioredis.Redis.from_url(redis_url)
        try:
            assert await client.hexists(RedisKeys(prefix).chargers, "CP-1")
        finally:
            await client.aclose()
        assert not (tmp_path / "gateway.sqlite3").exists()
    finally:
        await store.close()
        await delete_prefix(redis_url, prefix)
