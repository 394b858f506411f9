"""Choose the backend: Redis when a URL (or Sentinel) is configured, else SQLite in the
data dir."""

from __future__ import annotations

from pathlib import Path

from gateway.storage.base import Store
from gateway.storage.redis import DEFAULT_RETRY_SECONDS, open_redis_store
from gateway.storage.redis_batch import SentinelTarget
from gateway.storage.sqlite import open_sqlite_store

SQLITE_FILE_NAME = "gateway.sqlite3"


async def open_store(
    *,
    data_dir: Path,
    redis_url: str | None,
    redis_prefix: str = "gw:",
    retry_seconds: float = DEFAULT_RETRY_SECONDS,
    redis_sentinel: SentinelTarget | None = None,
    writer_processes: bool = False,
) -> Store:
    """``retry_seconds``: how long a Redis command waits for a lost connection;
    ``redis_sentinel``: Redis through Sentinel (``redis_url`` may then be empty);
    ``writer_processes``: on SQLite, the message trail and the status history written by
    processes of their own (:mod:`gateway.storage.sqlite_process`)."""
    if redis_sentinel is not None:
        return await open_redis_store(
            redis_url or "",
            prefix=redis_prefix,
            retry_seconds=retry_seconds,
            sentinel=redis_sentinel,
        )
    if redis_url:
        return await open_redis_store(redis_url, prefix=redis_prefix, retry_seconds=retry_seconds)
    return await open_sqlite_store(data_dir / SQLITE_FILE_NAME, writer_processes=writer_processes)
