"""Redis through Sentinel, on real servers: a master, its replica and a Sentinel, each a
``redis-server`` process of the test's own (free ports on 127.0.0.1, files in a tmp
dir; ``redis-server`` from PATH, as CI installs it). The store opens through the
Sentinel, keeps working across a failover (the master killed, or demoted), and its
pub/sub subscription comes back on the new master.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import shutil
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.storage.base import StorageUnavailable, Store
from gateway.storage.redis import open_redis_store
from gateway.storage.redis_batch import CommandBatcher, SentinelTarget
from gateway.storage.redis_keys import RedisKeys

from .samples import full_charger, reading, transaction

pytestmark = pytest.mark.redis

SERVICE = "gwtest"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.02) -> Any:
    """Until ``check()`` (awaited when it is a coroutine) is true; its value."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(every)


@dataclass
class Node:
    name: str
    port: int
    process: asyncio.subprocess.Process
    clients: list[aioredis.Redis] = field(default_factory=list)

    def client(self) -> aioredis.Redis:
        client = aioredis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
        self.clients.append(client)
        return client


class Servers:
    """The ``redis-server`` processes of one test, all stopped at the end."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.nodes: list[Node] = []

    async def start(self, name: str, *args: str, config: str | None = None) -> Node:
        port = _free_port()
        command = [self.binary]
        if config is not None:  # a Sentinel rewrites its file: one of its own
            path = self.directory / f"{name}.conf"
            path.write_text(config.format(port=port))
            command += [str(path), "--sentinel"]
        command += ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        command += ["--logfile", str(self.directory / f"{name}.log"), *args]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        node = Node(name, port, process)
        self.nodes.append(node)
        client = node.client()

        async def answers() -> bool:
            assert process.returncode is None, (self.directory / f"{name}.log").read_text()
            try:
                return bool(await client.ping())
            except (aioredis.ConnectionError, OSError):
                return False

        await until(answers, timeout=10)
        return node

    async def data_node(self, name: str, *args: str) -> Node:
        # No disk, and a replica's first sync at once (Redis 7 waits 5 s by default).
        return await self.start(
            name, "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0", *args
        )

    async def kill(self, node: Node) -> None:
        node.process.send_signal(signal.SIGKILL)
        await node.process.wait()

    async def close(self) -> None:
        for node in self.nodes:
            for client in node.clients:
                await client.aclose()
            if node.process.returncode is None:
                await self.kill(node)


SENTINEL_CONFIG = f"""\
sentinel monitor {SERVICE} 127.0.0.1 {{master}} 1
sentinel down-after-milliseconds {SERVICE} 500
sentinel failover-timeout {SERVICE} 5000
"""


@dataclass
class Cluster:
    servers: Servers
    master: Node
    replica: Node
    sentinel: Node

    async def master_port(self) -> int:
        """The master's port as the Sentinel names it now."""
        address = await self.sentinel.client().sentinel_get_master_addr_by_name(SERVICE)
        return int(address[1])


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("GATEWAY_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is not installed (GATEWAY_REQUIRE_REDIS=1)", pytrace=False)
        pytest.skip("redis-server is not installed")
    servers = Servers(binary, tmp_path)
    try:
        master = await servers.data_node("master")
        replica = await servers.data_node("replica", "--replicaof", "127.0.0.1", str(master.port))
        replica_client = replica.client()
        await until(lambda: _linked(replica_client))
        config = SENTINEL_CONFIG.replace("{master}", str(master.port))
        sentinel = await servers.start("sentinel", config=config)
        sentinel_client = sentinel.client()

        async def knows_the_replica() -> bool:
            # Its INFO heard (the link status comes from it): promotable.
            replicas = await sentinel_client.sentinel_slaves(SERVICE)
            return any(
                r["port"] == replica.port
                and not r["is_sdown"]
                and r.get("master-link-status") == "ok"
                for r in replicas
            )

        await until(knows_the_replica)
        yield Cluster(servers, master, replica, sentinel)
    finally:
        await servers.close()


async def _linked(replica: aioredis.Redis) -> bool:
    info = await replica.info("replication")
    return bool(info.get("master_link_status") == "up")


@pytest.fixture
async def store(cluster: Cluster) -> AsyncIterator[Store]:
    # A dead Sentinel first in the list: skipped, the next one answers.
    sentinels = (("127.0.0.1", _free_port()), ("127.0.0.1", cluster.sentinel.port))
    store = await open_redis_store(
        "",  # no password, database 0
        prefix=f"gwtest:{uuid.uuid4().hex}:",
        retry_seconds=20.0,
        socket_timeout=5.0,
        sentinel=SentinelTarget(sentinels, SERVICE),
    )
    yield store
    await store.close()


def batcher(store: Store) -> CommandBatcher:
    db: CommandBatcher = store.backend.db  # type: ignore[attr-defined]
    return db


async def charger_ids(store: Store, node: Node) -> set[str]:
    """The chargers of ``store`` on ``node`` (read there directly, not through the store)."""
    keys: RedisKeys = store.backend.keys  # type: ignore[attr-defined]
    return set(await node.client().hkeys(keys.chargers))


class Writer:
    """Stores chargers one after the other until stopped; remembers which it issued
    once ``marked`` (for the failover: those must all be on the new master)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.acknowledged: list[str] = []
        self.issued_after_mark: list[str] = []
        self.marked = False
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            charger_id = f"CP-W{n}"
            if self.marked:
                self.issued_after_mark.append(charger_id)
            await self.store.chargers.put(replace(full_charger(charger_id), location_id=None))
            self.acknowledged.append(charger_id)

    async def finish(self) -> None:
        self.stop.set()
        assert self.task is not None
        await self.task  # raises what a put raised: none may fail


@pytest.fixture
async def writer(store: Store) -> AsyncIterator[Writer]:
    writer = Writer(store)
    yield writer
    if writer.task is not None and not writer.task.done():  # the test failed
        writer.task.cancel()
        with contextlib.suppress(BaseException):
            await writer.task


async def test_opens_through_the_sentinel_and_writes_land_on_the_master(
    cluster: Cluster, store: Store
) -> None:
    await store.chargers.put(full_charger("CP-1"))
    assert await store.chargers.get("CP-1") == full_charger("CP-1")
    assert "CP-1" in await charger_ids(store, cluster.master)
    assert await store.transactions.create(transaction("tx-1"), [reading(1)]) == (
        transaction("tx-1"),
        True,
    )


async def test_the_master_killed_the_store_and_its_subscription_move_to_the_new_master(
    cluster: Cluster, store: Store, writer: Writer
) -> None:
    heard: list[bytes] = []
    gaps: list[None] = []
    subscription = store.messages.subscribe(
        ["news"], lambda _, data: heard.append(data), lambda: gaps.append(None)
    )
    try:
        await subscription.ready()
        assert await store.messages.publish("news", b"before") == 1
        await until(lambda: b"before" in heard)

        writer.start()
        await until(lambda: len(writer.acknowledged) >= 20)
        # What was acknowledged so far reaches the replica before the kill (replication
        # is asynchronous: the last writes could be lost otherwise, README). Not WAIT:
        # it waits for the writes of its own connection only.
        safe = list(writer.acknowledged)
        offset = (await cluster.master.client().info("replication"))["master_repl_offset"]
        replica = cluster.replica.client()
        await until(
            lambda: _info(replica, "replication", lambda i: i["slave_repl_offset"] >= offset)
        )
        await cluster.servers.kill(cluster.master)
        writer.marked = True  # writes from now on: in flight at the kill, or later

        await until(lambda: _is_master(cluster, cluster.replica))  # Sentinel promoted it
        issued = len(writer.issued_after_mark)
        await until(lambda: len(writer.acknowledged) >= len(safe) + issued + 20)
        await writer.finish()  # none failed: each waited for the new master

        on_new_master = await charger_ids(store, cluster.replica)
        assert set(safe) <= on_new_master
        assert set(writer.issued_after_mark) <= on_new_master
        assert batcher(store).stats.connections >= 2
        # Scripts too (loaded on the new connection).
        assert await store.transactions.create(transaction("tx-2"), [reading(1)]) == (
            transaction("tx-2"),
            True,
        )

        # The subscription is back, on the new master: a message published there
        # reaches it, and the listener was told that it missed some meanwhile.
        await until(lambda: _published(store, b"after"), every=0.1)
        await until(lambda: b"after" in heard)
        assert gaps
    finally:
        await subscription.close()


async def test_a_sentinel_failover_moves_the_store_without_a_failed_write(
    cluster: Cluster, store: Store, writer: Writer
) -> None:
    heard: list[bytes] = []
    subscription = store.messages.subscribe(["news"], lambda _, data: heard.append(data), list)
    try:
        await subscription.ready()
        writer.start()
        await until(lambda: len(writer.acknowledged) >= 20)
        connections = batcher(store).stats.connections
        assert await cluster.sentinel.client().sentinel_failover(SERVICE)
        await until(lambda: _is_master(cluster, cluster.replica))
        # The store left the old master on the Sentinel's +switch-master, without
        # waiting for the Sentinel to reconfigure it (seconds later).
        await until(lambda: batcher(store).stats.connections > connections)
        writer.marked = True
        await until(lambda: len(writer.issued_after_mark) >= 20)
        await writer.finish()
        # Those issued from then on are all there (the old master may have taken, and
        # lost, the few before: asynchronous replication, README).
        assert set(writer.issued_after_mark) <= await charger_ids(store, cluster.replica)
        await until(lambda: _published(store, b"after"), every=0.1)
        await until(lambda: b"after" in heard)
    finally:
        await subscription.close()


async def test_a_demoted_master_answering_readonly_sends_the_store_to_the_new_one(
    cluster: Cluster, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The store's connection stays open to a master turned replica, which refuses
    writes with READONLY: they did not run, so they are sent again to the master the
    Sentinel names now (not failed, not left failing forever)."""
    await store.chargers.put(full_charger("CP-1"))
    # The roles swapped behind the store's back, the Sentinel told first.
    await cluster.replica.client().replicaof("NO", "ONE")
    sentinel = cluster.sentinel.client()
    await sentinel.sentinel_remove(SERVICE)
    await sentinel.sentinel_monitor(SERVICE, "127.0.0.1", cluster.replica.port, 1)
    await cluster.master.client().replicaof("127.0.0.1", cluster.replica.port)
    connections = batcher(store).stats.connections

    caplog.set_level(logging.WARNING, "gateway.storage.redis_batch")
    await store.chargers.put(full_charger("CP-2"))
    assert await store.transactions.create(transaction("tx-1"), [reading(1)]) == (
        transaction("tx-1"),
        True,
    )
    assert "CP-2" in await charger_ids(store, cluster.replica)
    assert batcher(store).stats.connections == connections + 1
    assert any("read-only replica" in r.getMessage() for r in caplog.records)


async def test_readonly_past_retry_seconds_fails_the_command(cluster: Cluster) -> None:
    """With nowhere else to go (the Sentinel still names the demoted master), a write
    refused READONLY fails once ``retry_seconds`` is over, as for a lost connection."""
    store = await open_redis_store(
        "",
        prefix=f"gwtest:{uuid.uuid4().hex}:",
        retry_seconds=0.5,
        sentinel=SentinelTarget((("127.0.0.1", cluster.sentinel.port),), SERVICE),
    )
    try:
        # A replica of a server that does not exist: it stays read-only.
        await cluster.master.client().replicaof("127.0.0.1", _free_port())
        with pytest.raises(StorageUnavailable, match="read-only replica"):
            await store.chargers.put(full_charger("CP-1"))
        assert batcher(store).stats.connections >= 2  # it did ask again
    finally:
        await store.close()


async def _info(client: aioredis.Redis, section: str, check: Callable[[Any], bool]) -> bool:
    return check(await client.info(section))


async def _is_master(cluster: Cluster, node: Node) -> bool:
    return await cluster.master_port() == node.port


async def _published(store: Store, message: bytes) -> bool:
    return await store.messages.publish("news", message) == 1
