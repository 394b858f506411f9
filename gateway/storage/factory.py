"""Choose the backend: Redis when a URL is configured, else SQLite in the data dir."""

from __future__ import annotations

from pathlib import Path

from gateway.storage.base import Store
from gateway.storage.redis import open_redis_store
from gateway.storage.sqlite import open_sqlite_store

SQLITE_FILE_NAME = "gateway.sqlite3"


async def open_store(*, data_dir: Path, redis_url: str | None, redis_prefix: str = "gw:") -> Store:
    if redis_url:
        return await open_redis_store(redis_url, prefix=redis_prefix)
    return await open_sqlite_store(data_dir / SQLITE_FILE_NAME)
