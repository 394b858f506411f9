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
from typing import Any

import pytest
import redis.asyncio as aioredis

import gateway
from gateway.domain.models import LocalToken
from gateway.storage import codec
from gateway.storage import redis as redis_backend
from gateway.storage.base import StorageError, Store
from gateway.storage.redis import open_redis_store
from gateway.storage.redis_keys import LAYOUT_VERSION, RedisKeys

from .conftest import delete_prefix
from .samples import (
    at,
    connector,
    document,
    full_charger,
    full_charger_state,
    full_token,
    outbox_item,
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
    await store.locations.put(document("L1", owner="NL*ABC"), enqueue=[outbox_item("i1", "K")])


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
        keys.documents("locations"): "hash",
        keys.document_owners("locations"): "hash",
        keys.documents_by_time("locations"): "zset",
        keys.documents_by_owner("locations", "NL*ABC"): "zset",
        keys.outbox_item("i1"): "hash",
        keys.outbox_seq: "string",
        keys.outbox_all: "zset",
        keys.outbox_status("pending"): "zset",
        keys.outbox_partner("partner-1"): "zset",
        keys.outbox_partner_status("pending", "partner-1"): "zset",
        keys.outbox_key("K"): "zset",
        keys.outbox_due: "zset",
    }
    found = {key: await client.type(key) async for key in client.scan_iter(keys.match_all())}
    assert found == expected
    assert await client.get(keys.schema) == str(LAYOUT_VERSION)
    assert await client.hget(keys.tx_by_ocpp_id("CP-1"), "1") == "tx-1"
    assert await client.zscore(keys.tx_by_start_all, "tx-1") == 1714564800123456
    assert await client.zscore(keys.documents_by_time("locations"), "L1") == 1714564800123456
    assert await client.zrange(keys.outbox_due, 0, -1, withscores=True) == [
        (keys.outbox_due_member(1, "i1"), 1714564800123456)
    ]
    assert await client.hget(keys.outbox_item("i1"), "status") == "pending"


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
def children(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """One Redis contract test run by a child pytest against a Redis that is not there,
    without and with GATEWAY_REQUIRE_REDIS=1 (both children at once, to save time)."""
    test = "tests/storage/test_contract.py::test_charger_round_trips_every_field[redis]"
    base = {key: value for key, value in os.environ.items() if key != "GATEWAY_REQUIRE_REDIS"}
    base["GATEWAY_TEST_REDIS_URL"] = closed_port_url()
    # Each child its own temporary directory: two pytest runs at once under the shared
    # /tmp/pytest-of-<user> both clean up its old directories at exit, and one can find a
    # directory the other is removing (a PytestWarning, an error under filterwarnings).
    temp = tmp_path_factory.mktemp("children")
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "pytest", *FAST, "-q", "-rs", f"--basetemp={temp / name}", test],
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


@pytest.mark.redis
async def test_a_layout_1_keyspace_is_upgraded(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    await client.set(RedisKeys(prefix).schema, 1)
    await client.hset(RedisKeys(prefix).chargers, "CP-1", "{}")
    store = await open_redis_store(redis_url, prefix=prefix)
    try:
        await store.locations.put(document("L1"), enqueue=[outbox_item("i1")])
        assert await store.locations.list() == ([document("L1")], 1)
    finally:
        await store.close()
    assert await client.get(RedisKeys(prefix).schema) == str(LAYOUT_VERSION)


@pytest.mark.redis
async def test_tokens_stored_by_uid_are_moved_to_their_key_at_every_open(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    """Layout 3 kept tokens by their uid as it came; layout 4 by token_key. A layout-3
    keyspace's tokens are found by any case after the next open; of uids that differ only
    in case, the one updated last stays, else the first in byte order (as the SQLite
    migration keeps). A token a layout-3 gateway still running writes meanwhile is moved
    by the next open, over the older one at its key."""
    keys = RedisKeys(prefix)
    tokens = [
        LocalToken(uid="aBc"),
        LocalToken(uid="abc", valid=False),
        LocalToken(uid="ABC", contract_id="NL-ABC"),
        LocalToken(uid="Mixed-1"),
        LocalToken(uid="x\u00e9y"),
        LocalToken(uid="zz"),
        LocalToken(uid="NEW-1", updated_at=at(1)),
        LocalToken(uid="new-1", valid=False, updated_at=at(2)),  # updated last: it stays
    ]
    await client.set(keys.schema, 3)
    for token in tokens:
        await client.hset(keys.tokens, token.uid, codec.dumps(codec.encode_token(token)))
    store = await open_redis_store(redis_url, prefix=prefix)
    try:
        for asked in ("abc", "ABC", "AbC"):
            assert await store.tokens.get(asked) == tokens[2]
        assert await store.tokens.get("mixed-1") == tokens[3]
        assert await store.tokens.get("X\u00e9Y") == tokens[4]
        assert await store.tokens.get("ZZ") == tokens[5]
        assert await store.tokens.get("New-1") == tokens[7]
        assert [t.uid for t in await store.tokens.list()] == [
            "ABC",
            "Mixed-1",
            "new-1",
            "x\u00e9y",
            "zz",
        ]
    finally:
        await store.close()
    assert await client.get(keys.schema) == str(LAYOUT_VERSION)
    fields = set(await client.hkeys(keys.tokens))
    assert fields == {"ABC", "MIXED-1", "NEW-1", "X\u00e9Y", "ZZ"}
    # A gateway of layout 3, still running, writes tokens by their uid as it came: one
    # new, one updated (its older version is at the key), one older than the one there.
    late = LocalToken(uid="late-1")
    updated = LocalToken(uid="mixed-1", valid=False, updated_at=at(5))
    older = LocalToken(uid="new-1", updated_at=at(0))
    for token in (late, updated, older):
        await client.hset(keys.tokens, token.uid, codec.dumps(codec.encode_token(token)))
    store = await open_redis_store(redis_url, prefix=prefix)
    try:
        assert await store.tokens.get("LATE-1") == late
        assert await store.tokens.get("MIXED-1") == updated
        assert await store.tokens.get("NEW-1") == tokens[7]
    finally:
        await store.close()
    assert set(await client.hkeys(keys.tokens)) == fields | {"LATE-1"}


def test_collection_names_are_checked() -> None:
    keys = RedisKeys("gw:")
    assert keys.documents("ocpi_tokens") == "gw:doc:ocpi_tokens"
    for bad in ("a:b", "", "Locations", "1x", "a b"):
        with pytest.raises(ValueError, match="collection"):
            keys.documents(bad)


async def scan(client: aioredis.Redis, keys: RedisKeys) -> dict[str, object]:
    """Every key under the prefix with its content (sorted sets with scores)."""
    found: dict[str, object] = {}
    async for key in client.scan_iter(keys.match_all()):
        kind = await client.type(key)
        if kind == "zset":
            found[key] = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "hash":
            found[key] = await client.hgetall(key)
        else:
            found[key] = await client.get(key)
    return found


@pytest.mark.redis
async def test_indexes_hold_exactly_the_documented_entries(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    """After moves between owners, deletes and every outbox transition, each index
    holds what the layout says and nothing else (no stale members, no empty keys)."""
    store = await open_redis_store(redis_url, prefix=prefix)
    keys = RedisKeys(prefix)
    t0 = 1714564800123456
    try:
        await store.sessions.put(document("S1", 0, owner="A"))
        await store.sessions.put(document("S2", 1, owner="A"))
        await store.sessions.put(document("S1", 2, owner="B"))  # moves from A to B
        await store.sessions.put(document("S2", 3))  # loses its owner
        await store.sessions.put(document("S3", 4, owner="B"))
        await store.sessions.delete("S3")
        await store.outbox.enqueue(
            [
                outbox_item("k1", "K", "P"),
                outbox_item("k2", "K", "P", due_at=at(5)),
                outbox_item("k3", "K", "Q"),
                outbox_item("j1", "J", "P"),
                outbox_item("j2", "J", "P"),
                outbox_item("m1", "M", "Q"),
                outbox_item("d1", "D", "R"),
                outbox_item("d2", "D", "R"),
            ]
        )
        await store.outbox.complete("d1", at=at(1))
        await store.outbox.fail("d2", "400")
        assert await store.outbox.discard("d2", at=at(2)) is True
        assert await store.outbox.purge_done(at(3)) == 2  # no trace of d1, d2 or R left
        await store.outbox.complete("k1", at=at(20))  # k2 heads K
        await store.outbox.retry_later("k2", at(9), "503")
        await store.outbox.fail("j1", "400")  # blocks J
        await store.outbox.complete("m1")  # M drained
        found = await scan(client, keys)
    finally:
        await store.close()

    def item(
        seq: int,
        status: str,
        attempts: int,
        error: str | None,
        due: float,
        done: float | None = None,
    ) -> object:
        state = {
            "seq": str(seq),
            "status": status,
            "attempts": str(attempts),
            "last_error": "null" if error is None else f'"{error}"',
            "next_attempt_at": str(t0 + int(due * 1_000_000)),
        }
        if done is not None:
            state["completed_at"] = str(t0 + int(done * 1_000_000))
        return state

    items = {
        "k1": ("P", "K", item(1, "done", 0, None, 0, 20)),
        "k2": ("P", "K", item(2, "pending", 1, "503", 9)),
        "k3": ("Q", "K", item(3, "pending", 0, None, 0)),
        "j1": ("P", "J", item(4, "failed", 1, "400", 0)),
        "j2": ("P", "J", item(5, "pending", 0, None, 0)),
        "m1": ("Q", "M", item(6, "done", 0, None, 0, 0)),  # done at its next_attempt_at
    }
    for item_id, (partner, okey, state) in items.items():
        stored = found.pop(keys.outbox_item(item_id))
        assert isinstance(stored, dict)
        assert stored.pop("partner_id") == partner
        assert stored.pop("ordering_key") == okey
        assert codec.loads(stored.pop("data"))["id"] == item_id
        assert stored == state

    # The ``deleted`` marker of the delete that removed S3 (it expires by itself).
    markers = [key for key in found if key.startswith(f"{prefix}deleted:")]
    assert [found.pop(key) for key in markers] == ["1"]

    s = at(0).timestamp()  # scores of documents: µs since the epoch

    def score(seconds: float) -> float:
        return float(round((s + seconds) * 1_000_000))

    assert found == {
        keys.schema: str(LAYOUT_VERSION),
        keys.documents("sessions"): {
            "S1": codec.dumps(codec.encode_document(document("S1", 2, owner="B"))),
            "S2": codec.dumps(codec.encode_document(document("S2", 3))),
        },
        keys.document_owners("sessions"): {"S1": "B"},
        keys.documents_by_time("sessions"): [("S1", score(2)), ("S2", score(3))],
        keys.documents_by_owner("sessions", "B"): [("S1", score(2))],
        keys.outbox_seq: "8",
        keys.outbox_all: [(i, float(n)) for n, i in enumerate(items, 1)],
        keys.outbox_status("done"): [("k1", 1.0), ("m1", 6.0)],
        keys.outbox_status("pending"): [("k2", 2.0), ("k3", 3.0), ("j2", 5.0)],
        keys.outbox_status("failed"): [("j1", 4.0)],
        keys.outbox_partner("P"): [("k1", 1.0), ("k2", 2.0), ("j1", 4.0), ("j2", 5.0)],
        keys.outbox_partner("Q"): [("k3", 3.0), ("m1", 6.0)],
        keys.outbox_partner_status("done", "P"): [("k1", 1.0)],
        keys.outbox_partner_status("done", "Q"): [("m1", 6.0)],
        keys.outbox_partner_status("pending", "P"): [("k2", 2.0), ("j2", 5.0)],
        keys.outbox_partner_status("pending", "Q"): [("k3", 3.0)],
        keys.outbox_partner_status("failed", "P"): [("j1", 4.0)],
        keys.outbox_key("K"): [("k2", 2.0), ("k3", 3.0)],
        keys.outbox_key("J"): [("j1", 4.0), ("j2", 5.0)],
        keys.outbox_due: [(keys.outbox_due_member(2, "k2"), score(9))],
        keys.outbox_done: [("m1", score(0)), ("k1", score(20))],
    }


@pytest.mark.redis
async def test_a_layout_2_keyspace_gets_completion_times_for_its_done_items(
    redis_url: str, prefix: str, client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Done items from before layout 3 are indexed (in chunks) at their next_attempt_at,
    or the completed_at they have, before the store claims layout 3; then purgeable."""
    keys = RedisKeys(prefix)
    store = await open_redis_store(redis_url, prefix=prefix)
    try:
        await store.outbox.enqueue(
            [outbox_item(f"d{n}", f"K{n}", due_at=at(n)) for n in range(5)]
            + [outbox_item("pending", "P"), outbox_item("failed", "F")]
        )
        for n in range(5):
            await store.outbox.complete(f"d{n}", at=at(100 + n))
        await store.outbox.fail("failed", "400")
    finally:
        await store.close()
    await client.delete(keys.outbox_done)  # back to layout 2
    for n in range(4):  # d4 keeps the completed_at it has (an interrupted upgrade)
        await client.hdel(keys.outbox_item(f"d{n}"), "completed_at")
    await client.set(keys.schema, 2)

    real = redis_backend._index_done_items

    async def small_chunks(db: Any, keys: RedisKeys) -> None:
        await real(db, keys, chunk=2)

    monkeypatch.setattr(redis_backend, "_index_done_items", small_chunks)
    store = await open_redis_store(redis_url, prefix=prefix)
    try:
        assert await client.get(keys.schema) == str(LAYOUT_VERSION)
        got = [await store.outbox.get(f"d{n}") for n in range(5)]
        assert [item.completed_at if item else None for item in got] == [
            at(0),
            at(1),
            at(2),
            at(3),
            at(104),
        ]
        assert await store.outbox.purge_done(at(2)) == 2
        assert await store.outbox.purge_done(at(1000)) == 3
        assert [item.id for item in await store.outbox.list()] == ["pending", "failed"]
    finally:
        await store.close()
