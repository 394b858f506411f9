"""Redis backend specifics: key layout, prefixes, pool limits, connection failures."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

import gateway
from gateway.storage.base import StorageError, Store
from gateway.storage.redis import open_redis_store
from gateway.storage.redis_keys import LAYOUT_VERSION, RedisKeys

from .conftest import delete_prefix
from .samples import (
    at,
    connector,
    full_charger,
    full_charger_state,
    full_token,
    reading,
    transaction,
)

REPO_ROOT = Path(gateway.__file__).resolve().parent.parent
# A child pytest without the plugins it does not need here (hypothesis alone takes 2 s).
FAST = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"  # nothing listens there any more


async def test_unreachable_redis_fails_with_storage_error() -> None:
    with pytest.raises(StorageError, match="Redis"):
        await open_redis_store(closed_port_url(), socket_timeout=2)


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    prefix = f"gwtest:{uuid.uuid4().hex}:"
    yield prefix
    await delete_prefix(redis_url, prefix)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def fill(store: Store) -> None:
    """One write of every kind."""
    await store.chargers.put(full_charger())
    await store.charger_states.put(full_charger_state())
    await store.connectors.put(connector())
    await store.tokens.put(full_token())
    await store.transactions.create(transaction("tx-1", ocpp_id="1"), [reading(1)])
    await store.transactions.next_ocpp16_id()


@pytest.mark.redis
async def test_every_key_is_under_the_prefix_as_documented(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    store = await open_redis_store(redis_url, prefix=prefix)
    try:
        await fill(store)
    finally:
        await store.close()
    keys = RedisKeys(prefix)
    expected = {
        keys.schema: "string",
        keys.chargers: "hash",
        keys.charger_states: "hash",
        keys.tokens: "hash",
        keys.connectors("CP-1"): "hash",
        keys.tx("tx-1"): "string",
        keys.tx_readings("tx-1"): "list",
        keys.tx_by_start_all: "zset",
        keys.tx_by_start("CP-1"): "zset",
        keys.tx_by_ocpp_id("CP-1"): "hash",
        keys.tx_active("CP-1"): "set",
        keys.seq_ocpp16: "string",
    }
    found = {key: await client.type(key) async for key in client.scan_iter(keys.match_all())}
    assert found == expected
    assert await client.get(keys.schema) == str(LAYOUT_VERSION)
    assert await client.hget(keys.tx_by_ocpp_id("CP-1"), "1") == "tx-1"
    assert await client.zscore(keys.tx_by_start_all, "tx-1") == 1714564800123456


@pytest.mark.redis
async def test_prefixes_isolate_stores(redis_url: str, prefix: str) -> None:
    one = await open_redis_store(redis_url, prefix=prefix + "one:")
    two = await open_redis_store(redis_url, prefix=prefix + "two:")
    try:
        await fill(one)
        assert await two.chargers.list() == []
        assert await two.transactions.list() == []
        assert await two.transactions.find("CP-1", "1") is None
        assert await two.transactions.next_ocpp16_id() == 1
    finally:
        await one.close()
        await two.close()


@pytest.mark.redis
async def test_scan_pattern_escapes_glob_characters(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    odd = RedisKeys(prefix + "a*[b]?\\:")
    await client.set(odd.prefix + "x", "mine")
    await client.set(prefix + "aZZ[b]?\\:x", "not mine")  # what an unescaped * would match
    await client.set(prefix + "a*b!\\:x", "not mine")  # what unescaped [b]? would match
    assert [key async for key in client.scan_iter(odd.match_all())] == [odd.prefix + "x"]


@pytest.mark.redis
async def test_a_newer_layout_is_refused(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    await client.set(RedisKeys(prefix).schema, LAYOUT_VERSION + 1)
    with pytest.raises(StorageError, match="newer"):
        await open_redis_store(redis_url, prefix=prefix)


@pytest.mark.redis
async def test_more_commands_than_connections_wait_instead_of_failing(
    redis_url: str, prefix: str
) -> None:
    store = await open_redis_store(redis_url, prefix=prefix, max_connections=2)
    try:
        await asyncio.gather(
            *(
                store.transactions.create(transaction(f"t{i}", started_at=at(i)))
                for i in range(100)
            ),
            *(store.connectors.set_all("CP-1", connector().status, at(1)) for _ in range(20)),
        )
        assert len(await store.transactions.list(limit=1000)) == 100
    finally:
        await store.close()


@pytest.fixture(scope="module")
def children() -> dict[str, tuple[int, str]]:
    """One Redis contract test run by a child pytest against a Redis that is not there,
    without and with GATEWAY_REQUIRE_REDIS=1 (both children at once, to save time)."""
    test = "tests/storage/test_contract.py::test_charger_round_trips_every_field[redis]"
    base = {key: value for key, value in os.environ.items() if key != "GATEWAY_REQUIRE_REDIS"}
    base["GATEWAY_TEST_REDIS_URL"] = closed_port_url()
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "pytest", *FAST, "-q", "-rs", test],
            cwd=REPO_ROOT,
            env=base | extra,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, extra in (("optional", {}), ("required", {"GATEWAY_REQUIRE_REDIS": "1"}))
    }
    return {name: (proc.wait(60), proc.communicate()[0]) for name, proc in procs.items()}


def test_unreachable_redis_skips_the_redis_tests_with_a_reason(
    children: dict[str, tuple[int, str]],
) -> None:
    returncode, output = children["optional"]
    assert returncode == 0, output
    assert "1 skipped" in output
    assert "is unreachable" in output


def test_unreachable_redis_fails_the_redis_tests_when_required(
    children: dict[str, tuple[int, str]],
) -> None:
    returncode, output = children["required"]
    assert returncode == 1, output
    assert "1 error" in output
    assert "GATEWAY_REQUIRE_REDIS=1" in output
