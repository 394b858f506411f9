"""Choose the backend: Redis when a URL is configured, else SQLite in the data dir."""

from __future__ import annotations

from pathlib import Path

from gateway.storage.base import Store
from gateway.storage.redis import DEFAULT_RETRY_SECONDS, open_redis_store
from gateway.storage.sqlite import open_sqlite_store

SQLITE_FILE_NAME = "gateway.sqlite3"


async def open_store(
    *,
    data_dir: Path,
    redis_url: str | None,
    redis_prefix: str = "gw:",
    retry_seconds: float = DEFAULT_RETRY_SECONDS,
) -> Store:
    """``retry_seconds``: how long a Redis command waits for a lost connection."""
    if redis_url:
        return await open_redis_store(redis_url, prefix=redis_prefix, retry_seconds=retry_seconds)
    return await open_sqlite_store(data_dir / SQLITE_FILE_NAME)
