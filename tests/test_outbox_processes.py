"""The push outbox with two real ``ocpi-gateway serve`` processes on one real Redis: the
worker runs in the holder of the ``outbox`` lease only, so every push made through
either process reaches the eMSP exactly once; when the holder is killed with SIGKILL the
survivor delivers what is pending and what comes next."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from gateway.storage.redis_keys import RedisKeys
from tests.conftest import (
    REDIS_URL,
    _redis_available,
    drop_redis_prefix,
    require_redis_or_skip,
)
from tests.roaming.emsp import EmspPlatform
from tests.roaming.test_catalog import TARIFF
from tests.test_leases_processes import LoggedGateway, cluster_env, until


async def admin(gw: LoggedGateway, method: str, path: str, body: object = None) -> tuple[int, object]:
    async with aiohttp.ClientSession() as s, s.request(method, f"{gw.url}/admin{path}", json=body, headers=gw.headers) as r:
        return r.status, await r.json()


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[LoggedGateway, LoggedGateway, aioredis.Redis, str]]:
    """Gateways A and B (not started) on one Redis prefix, a Redis client; all cleaned up."""
    require_redis_or_skip(await _redis_available())
    prefix = f"test:{uuid.uuid4().hex}:"
    env = cluster_env(prefix, GATEWAY_OUTBOX_POLL_INTERVAL="0.2")
    a, b = (LoggedGateway(tmp_path / f"data-{n}", env, tmp_path / f"{n}.log") for n in "AB")
    client = aioredis.from_url(REDIS_URL)
    try:
        yield a, b, client, prefix
    finally:
        for gw in (a, b):
            if gw.proc is not None and gw.proc.poll() is None:
                gw.kill()
        await client.aclose()
        await drop_redis_prefix(prefix)


async def register(via: LoggedGateway, emsp: EmspPlatform) -> None:
    _, partner = await admin(via, "POST", "/partners", {"name": "eMSP"})
    assert isinstance(partner, dict)
    status, _ = await admin(
        via, "POST", f"/partners/{partner['id']}/register", {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a}
    )
    assert status == 200


async def test_every_push_once_through_either_process_and_after_a_sigkill(
    pair: tuple[LoggedGateway, LoggedGateway, aioredis.Redis, str], emsp: EmspPlatform
) -> None:
    a, b, client, prefix = pair
    await a.start()
    # The partner registers through A; B, started after, loads it.
    await register(a, emsp)
    await b.start()
    gateways = {a.pid: a, b.pid: b}

    async def holder() -> LoggedGateway | None:
        value = await client.get(RedisKeys(prefix).lease("outbox"))
        return None if value is None else gateways[int(value.decode().split(":")[1])]

    async def held() -> bool:
        return await holder() is not None

    async def delivered(n: int) -> bool:
        return len(emsp.pushes("tariffs", "PUT")) >= n

    await until(held)
    for i in range(10):
        status, _ = await admin(a if i % 2 else b, "PUT", f"/tariffs/T{i}", TARIFF)
        assert status == 201
    await until(lambda: delivered(10))

    async def settled() -> bool:
        status, items = await admin(a, "GET", "/outbox?status=pending")
        return status == 200 and items == []

    # Nothing in flight at the kill: a push the partner took but the holder had not yet
    # marked delivered would rightly be sent again (at least once), and the count below
    # checks that nothing else is.
    await until(settled)
    dead = await holder()
    assert dead is not None
    dead.kill()
    survivor = b if dead is a else a
    for i in range(10, 14):
        status, _ = await admin(survivor, "PUT", f"/tariffs/T{i}", TARIFF)
        assert status == 201
    await until(lambda: delivered(14))
    assert await holder() is survivor

    async def survivor_settled() -> bool:
        status, items = await admin(survivor, "GET", "/outbox?status=pending")
        return status == 200 and items == []

    await until(survivor_settled)
    paths = Counter(path for _, path, _ in emsp.pushes("tariffs", "PUT"))
    assert sorted(paths) == sorted(f"/ocpi/2.2.1/tariffs/ZZ/GWY/T{i}" for i in range(14))
    assert set(paths.values()) == {1}, paths  # none twice
    assert survivor.count("lease outbox gained by") == 1  # once: at the takeover


async def test_the_outbox_holder_learns_a_partner_registered_through_another_process(
    pair: tuple[LoggedGateway, LoggedGateway, aioredis.Redis, str], emsp: EmspPlatform
) -> None:
    # B starts first and takes the outbox lease; the partner then registers through A.
    # B's worker has never heard of it: it reads it from the store, never fails the push.
    a, b, client, prefix = pair
    await b.start()

    async def b_holds() -> bool:
        value = await client.get(RedisKeys(prefix).lease("outbox"))
        return value is not None and int(value.decode().split(":")[1]) == b.pid

    await until(b_holds)
    await a.start()
    await register(a, emsp)
    for i in range(3):
        assert (await admin(a, "PUT", f"/tariffs/T{i}", TARIFF))[0] == 201

    async def delivered() -> bool:
        return len(emsp.pushes("tariffs", "PUT")) >= 3

    await until(delivered)
    assert await b_holds()  # B delivered them
    status, failed = await admin(a, "GET", "/outbox?status=failed")
    assert status == 200 and failed == []
