"""Contract, on both backends: a transaction keeps the reference of the authorization
that let it start (``Transaction.authorization_reference``, for its roaming session and
CDR), and records written before that field existed still load, without one."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import redis.asyncio as aioredis

from gateway.domain.models import TransactionStatus
from gateway.storage.base import Store
from gateway.storage.redis_keys import RedisKeys

from .conftest import Location, StoreFactory
from .samples import at, full_transaction, reading, transaction


async def test_reference_round_trips_through_create_and_save(store: Store) -> None:
    tx = replace(full_transaction(), authorization_reference="RT-ü/1")
    stored, created = await store.transactions.create(tx)
    assert created and stored == tx
    assert await store.transactions.get(tx.id) == tx
    assert await store.transactions.find(tx.charger_id, tx.ocpp_id) == tx

    plain = transaction("tx-plain")
    await store.transactions.create(plain)
    assert (await store.transactions.get("tx-plain")) == plain
    assert plain.authorization_reference is None
    # Kept when the transaction is saved again (its end).
    ended = replace(tx, status=TransactionStatus.COMPLETED, stopped_at=at(7200))
    await store.transactions.save(ended, [reading(5)])
    loaded = await store.transactions.get(tx.id)
    assert loaded is not None and loaded.authorization_reference == "RT-ü/1"


async def _drop_field(location: Location, tx_id: str) -> None:
    """Rewrite the stored record as an earlier release wrote it: without the field."""
    if location.backend == "sqlite":
        conn = sqlite3.connect(location.sqlite_path)
        try:
            (raw,) = conn.execute("SELECT data FROM transactions WHERE id = ?", (tx_id,)).fetchone()
            data = json.loads(raw)
            del data["authorization_reference"]
            conn.execute("UPDATE transactions SET data = ? WHERE id = ?", (json.dumps(data), tx_id))
            conn.commit()
        finally:
            conn.close()
        return
    client = aioredis.Redis.from_url(location.redis_url)
    try:
        key = RedisKeys(location.redis_prefix).tx(tx_id)
        data = json.loads(await client.get(key))
        del data["authorization_reference"]
        await client.set(key, json.dumps(data))
    finally:
        await client.aclose()


async def test_records_without_the_field_still_load(
    location: Location, store_factory: StoreFactory
) -> None:
    store = await store_factory()
    tx = replace(full_transaction(), authorization_reference="RT-1")
    await store.transactions.create(tx)
    await store.close()
    await _drop_field(location, tx.id)
    reopened = await store_factory()
    loaded = await reopened.transactions.get(tx.id)
    assert loaded == replace(tx, authorization_reference=None)
    assert await reopened.transactions.list(limit=10) == [loaded]
