"""Storage write benchmark: writes/s and CPU µs per write, for each backend.

    .venv/bin/python tests/bench/bench_storage.py [--writes 3000] [--concurrency 1 100]

Two writes are measured, the two an OCPP message most often causes: a transaction
``save`` with one meter reading (MeterValues) and a connector ``put``
(StatusNotification); and the roaming path: a session document ``put`` that
enqueues one outbox item, and that item's ``complete`` (two writes). Each runs with 1 writer (one message at a time: the latency
bound case) and with many concurrent writers (a busy gateway; SQLite group-commits
them). CPU is ``time.process_time()``: every thread of this process, kernel time
included (SQLite's fsync), but not the Redis server's own CPU.

Redis: ``GATEWAY_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/15), keys under a
fresh prefix deleted afterwards; skipped when unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import redis.asyncio as aioredis

from gateway.domain.models import (
    ConnectorState,
    ConnectorStatus,
    Measurand,
    MeterReading,
    Transaction,
)
from gateway.storage.base import Document, OutboxItem, StorageError, Store
from gateway.storage.redis import open_redis_store
from gateway.storage.redis_keys import RedisKeys
from gateway.storage.sqlite import open_sqlite_store

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
CHARGERS = 1000


@asynccontextmanager
async def sqlite_store(synchronous: Literal["FULL", "NORMAL"]) -> AsyncIterator[Store]:
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        store = await open_sqlite_store(Path(tmp) / "gateway.sqlite3", synchronous=synchronous)
        try:
            yield store
        finally:
            await store.close()


@asynccontextmanager
async def redis_store(url: str) -> AsyncIterator[Store]:
    prefix = f"gwbench:{uuid.uuid4().hex}:"
    store = await open_redis_store(url, prefix=prefix)
    try:
        yield store
    finally:
        await store.close()
        client = aioredis.Redis.from_url(url)
        keys = [key async for key in client.scan_iter(RedisKeys(prefix).match_all(), 1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        await client.aclose()


async def measure(
    label: str, writes: int, concurrency: int, write: Callable[[int], Awaitable[None]]
) -> None:
    for i in range(min(200, writes)):  # warm up: connections, caches, statement cache
        await write(i)
    counter = iter(range(writes))

    async def worker() -> None:
        for i in counter:
            await write(i)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"  {label:<28} x{concurrency:<4} {writes / wall:>9,.0f} writes/s"
        f"  {cpu / writes * 1e6:>7.1f} µs CPU/write"
    )


async def bench(store: Store, writes: int, concurrencies: list[int]) -> None:
    now = datetime.now(UTC)
    txs = [
        Transaction(
            id=f"tx-{c}",
            charger_id=f"CP-{c}",
            ocpp_id=str(c),
            evse_id=1,
            connector_id=1,
            started_at=now,
            meter_start_wh=Decimal("1000"),
        )
        for c in range(CHARGERS)
    ]
    for tx in txs:
        await store.transactions.create(tx)

    async def save_with_reading(i: int) -> None:
        tx = txs[i % CHARGERS]
        value = Decimal(1000 + i)
        reading = MeterReading(now, Measurand.ENERGY_WH, value, context="Sample.Periodic")
        await store.transactions.save(replace(tx, meter_stop_wh=value), [reading])

    async def put_connector(i: int) -> None:
        status = ConnectorStatus.CHARGING if i % 2 else ConnectorStatus.AVAILABLE
        await store.connectors.put(ConnectorState(f"CP-{i % CHARGERS}", 1, 1, status, now))

    item_ids = itertools.count()  # outbox ids are never reused (measure() repeats i)

    async def session_put_enqueue_complete(i: int) -> None:
        key = f"NL/ABC/S{i % CHARGERS}"
        item = OutboxItem(
            id=f"item-{next(item_ids)}",
            partner_id="partner-1",
            ordering_key=f"session:{key}",
            method="PATCH",
            url=f"https://partner.example/ocpi/2.2.1/sessions/{key}",
            body={"kwh": i / 1000, "last_updated": now.isoformat()},
            created_at=now,
            next_attempt_at=now,
        )
        doc = Document(key, {"id": key, "kwh": i / 1000, "status": "ACTIVE"}, now, "NL*ABC")
        await store.sessions.put(doc, enqueue=[item])
        await store.outbox.complete(item.id)

    for concurrency in concurrencies:
        await measure("transaction save + 1 reading", writes, concurrency, save_with_reading)
        await measure("connector put", writes, concurrency, put_connector)
        await measure(
            "session put+item, complete", writes, concurrency, session_put_enqueue_complete
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=3000, help="writes per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 100])
    args = parser.parse_args()

    modes: tuple[Literal["FULL", "NORMAL"], ...] = ("FULL", "NORMAL")
    for synchronous in modes:
        print(f"sqlite (WAL, synchronous={synchronous})")
        async with sqlite_store(synchronous) as store:
            await bench(store, args.writes, args.concurrency)

    url = os.environ.get("GATEWAY_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        async with redis_store(url) as store:
            print(f"redis ({url}; Python client CPU only)")
            await bench(store, args.writes, args.concurrency)
    except StorageError as exc:
        print(f"redis: skipped ({exc})")


if __name__ == "__main__":
    asyncio.run(main())
