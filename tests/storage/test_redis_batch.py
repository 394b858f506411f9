"""The Redis command batcher: pipelining, order, error isolation, NOSCRIPT recovery,
connection loss, timeouts, cancellation and draining on close.

Every Redis test uses its own key prefix and client name: other runs share the server.
Nothing here flushes the script cache (server-wide): a script nobody loaded yet (a body
with a fresh UUID in a comment) stands in for a flushed cache.
"""

from __future__ import annotations

import asyncio
import enum
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.storage.base import StorageError
from gateway.storage.redis import open_redis_store
from gateway.storage.redis_batch import (
    CommandBatcher,
    ProtocolError,
    ReplyError,
    RespParser,
    Script,
    pack,
)

from .conftest import delete_prefix
from .samples import full_charger

# -- packing and parsing (no server) ------------------------------------------------------


class Colour(enum.StrEnum):
    RED = "red"


def test_pack_encodes_every_argument_kind() -> None:
    packed = pack(("SET", b"k\x00", 42, -1.5, "é", Colour.RED))
    assert packed == (
        b"*6\r\n$3\r\nSET\r\n$2\r\nk\x00\r\n$2\r\n42\r\n$4\r\n-1.5\r\n$2\r\n\xc3\xa9\r\n$3\r\nred\r\n"
    )


@pytest.mark.parametrize("bad", [True, None, object(), [1]])
def test_pack_refuses_other_arguments(bad: Any) -> None:
    with pytest.raises(TypeError, match="argument"):
        pack(("SET", "k", bad))


STREAM = (
    b"+OK\r\n"
    b":-42\r\n"
    b"$5\r\nhe\r\nl\r\n"  # bulk strings may hold CRLF
    b"$0\r\n\r\n"
    b"$-1\r\n"
    b"*-1\r\n"
    b"*0\r\n"
    b"-ERR wrong kind\r\n"
    b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n*1\r\n*0\r\n"
    b"*2\r\n-NOSCRIPT x\r\n+y\r\n"
)
REPLIES = [
    b"OK",
    -42,
    b"he\r\nl",
    b"",
    None,
    None,
    [],
    ReplyError("ERR wrong kind"),
    [1, [b"a", None], [[]]],
    [ReplyError("NOSCRIPT x"), b"y"],
]


def test_parser_reads_every_resp2_type() -> None:
    assert RespParser().feed(STREAM) == REPLIES


def test_parser_resumes_at_any_split() -> None:
    for cut in range(len(STREAM) + 1):
        parser = RespParser()
        assert parser.feed(STREAM[:cut]) + parser.feed(STREAM[cut:]) == REPLIES, cut
    parser = RespParser()
    got: list[Any] = []
    for i in range(len(STREAM)):
        got += parser.feed(STREAM[i : i + 1])
    assert got == REPLIES


def test_parser_resumes_a_long_array_without_losing_elements() -> None:
    items = [b"x" * (i % 50) for i in range(5000)]
    data = b"*5000\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in items)
    parser = RespParser()
    got: list[Any] = []
    for start in range(0, len(data), 4096):
        got += parser.feed(data[start : start + 4096])
    assert got == [items]


@pytest.mark.parametrize("garbage", [b"?what\r\n", b":12x\r\n", b"$abc\r\n"])
def test_parser_refuses_garbage(garbage: bytes) -> None:
    with pytest.raises(ProtocolError):
        RespParser().feed(garbage)


# -- against Redis --------------------------------------------------------------------------


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    prefix = f"gwtest:{uuid.uuid4().hex}:"
    yield prefix
    await delete_prefix(redis_url, prefix)


@pytest.fixture
def name() -> str:
    return f"gwtest-batch-{uuid.uuid4().hex}"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def batcher(redis_url: str, name: str) -> AsyncIterator[CommandBatcher]:
    batcher = await CommandBatcher.connect(redis_url, client_name=name, socket_timeout=5)
    await batcher.command("PING")  # the first batch (script preloads) is done
    yield batcher
    await batcher.close()


def fresh_script(body: str) -> Script:
    """A script the server cannot have cached: what a SCRIPT FLUSH leaves."""
    return Script(f"-- {uuid.uuid4().hex}\n{body}")


async def connection_of(client: aioredis.Redis, name: str) -> dict[str, Any]:
    found = [c for c in await client.client_list() if c.get("name") == name]
    assert len(found) == 1, found
    return found[0]


async def until_lost(batcher: CommandBatcher) -> None:
    """Until the batcher saw its connection close (else the next command may fail)."""
    for _ in range(500):
        if batcher.stats.connections_lost:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the batcher never saw its connection close")


async def wait_for_command(client: aioredis.Redis, name: str, cmd: str) -> dict[str, Any]:
    """The batcher's connection once the server runs ``cmd`` on it (e.g. a BLPOP)."""
    for _ in range(500):
        conn = await connection_of(client, name)
        if conn.get("cmd") == cmd:
            return conn
        await asyncio.sleep(0.01)
    raise AssertionError(f"{name} never ran {cmd}")


@pytest.mark.redis
async def test_concurrent_commands_go_as_one_pipeline_in_order(
    batcher: CommandBatcher, prefix: str
) -> None:
    before = batcher.stats.batches
    results = await asyncio.gather(
        *(batcher.command("RPUSH", prefix + "list", i) for i in range(300)),
        batcher.command("LRANGE", prefix + "list", 0, -1),
    )
    assert batcher.stats.batches == before + 1
    assert results[:300] == list(range(1, 301))  # each RPUSH saw the ones before it
    assert results[300] == [str(i).encode() for i in range(300)]


@pytest.mark.redis
async def test_batches_are_capped_and_flushed_while_there_is_backlog(
    redis_url: str, name: str, prefix: str
) -> None:
    batcher = await CommandBatcher.connect(redis_url, client_name=name, max_batch=100)
    try:
        await batcher.command("PING")
        before = batcher.stats.batches
        counts = await asyncio.gather(*(batcher.command("INCR", prefix + "n") for i in range(1050)))
        assert counts == list(range(1, 1051))
        assert batcher.stats.largest_batch == 100
        assert batcher.stats.batches - before == 11
    finally:
        await batcher.close()


@pytest.mark.redis
async def test_a_lone_command_is_sent_at_once(batcher: CommandBatcher) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(20):
        assert await batcher.command("PING") == b"PONG"
    assert loop.time() - start < 1  # no batching delay (20 sequential round trips)


@pytest.mark.redis
async def test_each_callers_write_is_seen_by_its_next_read(
    batcher: CommandBatcher, prefix: str
) -> None:
    async def caller(i: int) -> None:
        key = f"{prefix}k{i % 7}"  # callers share keys: only each caller's order matters
        for round_ in range(20):
            value = f"{i}.{round_}"
            assert await batcher.command("HSET", key, str(i), value) in (0, 1)
            assert await batcher.command("HGET", key, str(i)) == value.encode()

    await asyncio.gather(*(caller(i) for i in range(50)))


@pytest.mark.redis
async def test_a_failing_command_fails_only_its_caller(
    batcher: CommandBatcher, prefix: str
) -> None:
    failing = Script("return redis.error_reply('refused by ' .. ARGV[1])")
    crashing = Script("return redis.call('INCR', KEYS[1])")  # on a string: run-time error
    before = batcher.stats.batches
    results = await asyncio.gather(
        batcher.command("SET", prefix + "s", "text"),
        batcher.command("HSET", prefix + "s", "f", "v"),  # WRONGTYPE
        batcher.evalsha(failing, [], ["me"]),
        batcher.evalsha(crashing, [prefix + "s"], []),
        batcher.command("NOSUCHCOMMAND"),
        batcher.command("GET", prefix + "s"),
        batcher.command("INCR", prefix + "n"),
        return_exceptions=True,
    )
    assert batcher.stats.batches - before <= 2  # one, and one more for the NOSCRIPT retries
    ok, wrongtype, refused, crashed, unknown, value, count = results
    assert ok == b"OK"
    assert isinstance(wrongtype, StorageError)
    assert "WRONGTYPE" in str(wrongtype)
    assert isinstance(refused, StorageError)
    assert "refused by me" in str(refused)
    assert isinstance(crashed, StorageError)
    assert isinstance(unknown, StorageError)
    assert all(str(e).startswith("Redis: ") for e in (wrongtype, refused, crashed, unknown))
    assert value == b"text"
    assert count == 1
    # and the connection is still fine
    assert await batcher.command("GET", prefix + "s") == b"text"


@pytest.mark.redis
async def test_an_unencodable_argument_fails_at_once_and_alone(
    batcher: CommandBatcher, prefix: str
) -> None:
    good = batcher.command("SET", prefix + "a", 1)
    with pytest.raises(TypeError):
        batcher.command("SET", prefix + "b", True)  # type: ignore[arg-type]
    assert await good == b"OK"
    assert await batcher.command("EXISTS", prefix + "b") == 0


@pytest.mark.redis
async def test_noscript_loads_the_script_and_runs_the_command(
    batcher: CommandBatcher, prefix: str, client: aioredis.Redis
) -> None:
    script = fresh_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert await client.script_exists(script.sha) == [False]
    retries = batcher.stats.noscript_retries
    results = await asyncio.gather(
        batcher.command("SET", prefix + "n", 100),
        batcher.evalsha(script, [prefix + "n"], [1]),
        batcher.command("INCRBY", prefix + "n", 10),
        batcher.evalsha(script, [prefix + "n"], [1000]),
    )
    # NOSCRIPT: those two did not run; they ran after the rest of their batch, in order.
    assert results == [b"OK", 111, 110, 1111]
    assert await client.get(prefix + "n") == "1111"
    assert batcher.stats.noscript_retries == retries + 2
    assert await client.script_exists(script.sha) == [True]
    assert await batcher.evalsha(script, [prefix + "n"], [1]) == 1112
    assert batcher.stats.noscript_retries == retries + 2  # loaded now


@pytest.mark.redis
async def test_an_error_of_a_script_retried_after_noscript_reaches_its_caller(
    batcher: CommandBatcher,
) -> None:
    script = fresh_script("return redis.error_reply('no way')")
    with pytest.raises(StorageError, match="no way"):
        await batcher.evalsha(script, [], [])


@pytest.mark.redis
async def test_scripts_given_to_the_batcher_are_loaded_on_connect(
    redis_url: str, name: str, client: aioredis.Redis
) -> None:
    script = fresh_script("return 7")
    batcher = await CommandBatcher.connect(redis_url, client_name=name, scripts=[script])
    try:
        assert await batcher.evalsha(script, [], []) == 7
        assert batcher.stats.noscript_retries == 0
    finally:
        await batcher.close()


@pytest.mark.redis
async def test_connection_loss_fails_the_batch_in_flight_and_reconnects(
    batcher: CommandBatcher, prefix: str, name: str, client: aioredis.Redis
) -> None:
    first = await connection_of(client, name)
    in_flight = [
        batcher.command("SET", prefix + "before", 1),
        batcher.command("BLPOP", prefix + "never", 5),  # holds the batch on the server
        batcher.command("SET", prefix + "after", 1),
    ]
    await wait_for_command(client, name, "blpop")
    queued = [batcher.command("INCR", prefix + "queued") for _ in range(3)]  # next batch
    assert await client.client_kill_filter(_id=first["id"]) == 1

    before, blpop, after = await asyncio.gather(*in_flight, return_exceptions=True)
    assert before == b"OK" or isinstance(before, StorageError)  # may have been answered
    for failed in (blpop, after):
        assert isinstance(failed, StorageError)
        assert "may or may not have been applied" in str(failed)
    assert await client.get(prefix + "after") is None  # never ran, here
    # The commands queued behind it had not been sent: they go on the new connection.
    assert await asyncio.gather(*queued) == [1, 2, 3]
    assert await batcher.command("GET", prefix + "queued") == b"3"
    second = await connection_of(client, name)
    assert second["id"] != first["id"]
    assert batcher.stats.connections == 2
    assert batcher.stats.connections_lost == 1


@pytest.mark.redis
async def test_a_connection_dropped_while_idle_is_replaced(
    batcher: CommandBatcher, prefix: str, name: str, client: aioredis.Redis
) -> None:
    first = await connection_of(client, name)
    await client.client_kill_filter(_id=first["id"])
    await until_lost(batcher)
    assert await batcher.command("SET", prefix + "k", "v") == b"OK"
    assert (await connection_of(client, name))["id"] != first["id"]


@pytest.mark.redis
async def test_a_batch_without_answer_times_out_and_the_next_one_works(
    redis_url: str, name: str, prefix: str
) -> None:
    batcher = await CommandBatcher.connect(redis_url, client_name=name, socket_timeout=0.3)
    try:
        blocked = batcher.command("BLPOP", prefix + "never", 3)
        with pytest.raises(StorageError, match=r"no answer within 0\.3 s"):
            await blocked
        assert await batcher.command("SET", prefix + "k", "v") == b"OK"
        assert batcher.stats.connections == 2
    finally:
        await batcher.close()


@pytest.mark.redis
async def test_commands_fail_when_the_server_cannot_be_reached_again(
    redis_url: str, name: str, client: aioredis.Redis
) -> None:
    batcher = await CommandBatcher.connect(redis_url, client_name=name)
    try:
        await batcher.command("PING")
        batcher._pool.connection_kwargs["port"] = free_port()  # reconnects go nowhere
        await client.client_kill_filter(_id=(await connection_of(client, name))["id"])
        await until_lost(batcher)
        with pytest.raises(StorageError, match="Redis: "):
            await batcher.command("PING")
    finally:
        await batcher.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.redis
async def test_unreachable_redis_fails_to_connect_with_storage_error() -> None:
    with pytest.raises(StorageError, match="Redis"):
        await CommandBatcher.connect(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=2)


@pytest.mark.redis
async def test_a_command_cancelled_before_it_is_sent_is_dropped(
    batcher: CommandBatcher, prefix: str
) -> None:
    dropped = batcher.command("SET", prefix + "dropped", 1)
    dropped.cancel()
    assert await batcher.command("EXISTS", prefix + "dropped") == 0


@pytest.mark.redis
async def test_a_caller_cancelled_in_flight_does_not_disturb_the_others(
    batcher: CommandBatcher, prefix: str, name: str, client: aioredis.Redis
) -> None:
    blocked = batcher.command("BLPOP", prefix + "list", 2)
    follower = batcher.command("LPOP", prefix + "list")
    await wait_for_command(client, name, "blpop")
    blocked.cancel()
    await client.rpush(prefix + "list", "a", "b")
    assert await follower == b"b"  # BLPOP took "a"; its answer went nowhere
    assert await batcher.command("PING") == b"PONG"


@pytest.mark.redis
async def test_close_drains_the_queued_commands(redis_url: str, name: str, prefix: str) -> None:
    batcher = await CommandBatcher.connect(redis_url, client_name=name, max_batch=64)
    futures = [batcher.command("RPUSH", prefix + "list", i) for i in range(1000)]
    await batcher.close()
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == list(range(1, 1001))
    with pytest.raises(StorageError, match="closed"):
        batcher.command("PING")
    await batcher.close()  # twice is fine
    check = await CommandBatcher.connect(redis_url)
    try:
        assert await check.command("LLEN", prefix + "list") == 1000
    finally:
        await check.close()


@pytest.mark.redis
async def test_store_close_drains_writes_in_progress(redis_url: str, prefix: str) -> None:
    store = await open_redis_store(redis_url, prefix=prefix)
    writes = [
        asyncio.create_task(store.chargers.put(full_charger(f"CP-{i:03d}"))) for i in range(200)
    ]
    await asyncio.sleep(0)  # each task queued its command
    await store.close()
    await asyncio.gather(*writes)
    again = await open_redis_store(redis_url, prefix=prefix)
    try:
        assert len(await again.chargers.list()) == 200
    finally:
        await again.close()


@pytest.mark.redis
async def test_store_keeps_working_after_its_connection_is_killed(
    redis_url: str, prefix: str, name: str, client: aioredis.Redis
) -> None:
    store = await open_redis_store(redis_url, prefix=prefix, client_name=name)
    try:
        await store.chargers.put(full_charger("CP-1"))
        await client.client_kill_filter(_id=(await connection_of(client, name))["id"])
        await until_lost(store.backend.db)  # type: ignore[attr-defined]
        assert await store.chargers.get("CP-1") == full_charger("CP-1")
        # a new connection: the scripts are there (preloaded), transactions work
        assert await store.transactions.find("CP-1", "1") is None
    finally:
        await store.close()


@pytest.mark.redis
def test_works_on_uvloop(redis_url: str, name: str) -> None:
    """The gateway runs on uvloop: its transports take the batcher's protocol too."""
    uvloop = pytest.importorskip("uvloop")
    prefix = f"gwtest:{uuid.uuid4().hex}:"

    async def scenario() -> None:
        batcher = await CommandBatcher.connect(redis_url, client_name=name)
        try:
            script = fresh_script("return redis.call('INCR', KEYS[1])")
            results = await asyncio.gather(
                *(batcher.evalsha(script, [prefix + "n"], []) for _ in range(10))
            )
            assert sorted(results) == list(range(1, 11))
            await batcher.command("DEL", prefix + "n")
        finally:
            await batcher.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
