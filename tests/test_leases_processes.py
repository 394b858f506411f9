"""Once-per-cluster background work, with three real ``ocpi-gateway serve`` processes on
one real Redis: each lease ("sessions": the session resync and the PENDING expiry;
"hub-checks": the hub's still-alive check; "outbox": the push worker) has exactly one holder, whose job runs; when
the holder is killed with SIGKILL a survivor gains the lease within about the TTL and
runs the job (its start-up resync logs its line); a clean shutdown releases the leases.

Observed from outside, as an operator would: the lease keys in Redis (the holder id names
the host and pid) and the processes' logs.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from gateway.storage.redis_keys import RedisKeys
from tests.conftest import (
    ADMIN_TOKEN,
    REDIS_URL,
    SECRET_KEY,
    _redis_available,
    drop_redis_prefix,
    require_redis_or_skip,
)
from tests.csms.test_restart import GatewayProcess

TTL = 1.0
LEASES = ("sessions", "hub-checks", "outbox")
RESYNC_LINE = "session resync: no session or CDR to rebuild"


class LoggedGateway(GatewayProcess):
    """A gateway process whose log (stderr) goes to a file the test reads."""

    # What the start-up check's requests verify the server with (aiohttp's default: the
    # system's CAs; an HTTPS gateway's tests give their own CA).
    ssl_context: ssl.SSLContext | bool = True

    def __init__(self, data_dir: Path, env: dict[str, str], log_path: Path) -> None:
        super().__init__(data_dir, env)
        self.log_path = log_path

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            # Popen only forks; the waiting below is asynchronous.
            self.proc = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    async with session.get(
                        f"{self.url}/admin/chargers", headers=self.headers, ssl=self.ssl_context
                    ) as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                assert self.proc.poll() is None, f"gateway exited during start-up: {self.log()}"
                await asyncio.sleep(0.05)
        raise AssertionError("gateway did not start")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def count(self, text: str) -> int:
        return self.log().count(text)


def cluster_env(prefix: str, **settings: str) -> dict[str, str]:
    """The environment of gateway processes sharing one Redis under ``prefix`` (leases of
    TTL seconds, log at INFO), plus ``settings``; no GATEWAY_* of the caller leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return env | {
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_LOG_LEVEL": "INFO",
        "GATEWAY_REDIS_URL": REDIS_URL,
        "GATEWAY_REDIS_PREFIX": prefix,
        "GATEWAY_SECRET_KEY": SECRET_KEY,
        "GATEWAY_LEASE_SECONDS": str(TTL),
    } | settings


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[list[LoggedGateway], RedisKeys]]:
    require_redis_or_skip(await _redis_available())
    prefix = f"test:{uuid.uuid4().hex}:"
    env = cluster_env(prefix, GATEWAY_SESSION_RETRY_INTERVAL="0.2", GATEWAY_HUB_CHECK_INTERVAL="0.2")
    gateways = [
        LoggedGateway(tmp_path / f"data-{name}", env, tmp_path / f"{name}.log") for name in "ABC"
    ]
    try:
        await asyncio.gather(*(gw.start() for gw in gateways))
        yield gateways, RedisKeys(prefix)
    finally:
        for gw in gateways:
            if gw.proc is not None and gw.proc.poll() is None:
                gw.kill()
        await drop_redis_prefix(prefix)


async def until(condition: Callable[[], Awaitable[bool]], bound: float = 10.0) -> None:
    deadline = time.monotonic() + bound
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_each_lease_has_one_holder_and_moves_to_a_survivor_on_sigkill(
    cluster: tuple[list[LoggedGateway], RedisKeys],
) -> None:
    gateways, keys = cluster
    client = aioredis.from_url(REDIS_URL)
    try:

        async def holder(name: str) -> LoggedGateway | None:
            value = await client.get(keys.lease(name))
            if value is None:
                return None
            pid = int(value.decode().split(":")[1])  # host:pid:unique id
            return next(gw for gw in gateways if gw.pid == pid)

        async def held() -> bool:
            return all([await holder(name) is not None for name in LEASES])

        await until(held)
        first = {name: await holder(name) for name in LEASES}
        # Over several renew periods, nobody else gains either lease.
        for _ in range(6):
            await asyncio.sleep(TTL / 3)
            assert {name: await holder(name) for name in LEASES} == first
        for name, gw in first.items():
            assert gw is not None
            pttl = await client.pttl(keys.lease(name))
            assert 0 < pttl <= TTL * 1000  # it expires unless renewed
            gained = [g for g in gateways if g.count(f"lease {name} gained by") > 0]
            assert gained == [gw], name
        resync_holder = first["sessions"]
        assert resync_holder is not None
        await until(resynced(resync_holder))
        assert [g for g in gateways if g.count(RESYNC_LINE)] == [resync_holder]

        # The sessions holder dies: a survivor gains the lease and runs the resync.
        alive = list(gateways)
        for _ in range(2):
            dead = await holder("sessions")
            assert dead is not None
            dead.kill()
            alive.remove(dead)

            async def moved(dead: LoggedGateway = dead) -> bool:
                now = [await holder(name) for name in LEASES]
                return all(gw is not None and gw is not dead for gw in now)

            await until(moved, bound=TTL * 4)
            successor = await holder("sessions")
            assert successor in alive
            assert successor is not None
            await until(resynced(successor))
            assert successor.count("lease sessions gained by") == 1
            for name in LEASES:  # only the survivors could gain it
                assert await holder(name) in alive

        # The last one standing holds both; a clean shutdown releases them at once.
        (last,) = alive
        assert {name: await holder(name) for name in LEASES} == dict.fromkeys(LEASES, last)
        assert last.terminate() == 0
        for name in LEASES:
            assert await client.get(keys.lease(name)) is None
            assert last.count(f"lease {name} released by") == 1
    finally:
        await client.aclose()


def resynced(gw: LoggedGateway) -> Callable[[], Awaitable[bool]]:
    """Whether the process ran the start-up resync (once)."""

    async def check() -> bool:
        return gw.count(RESYNC_LINE) == 1

    return check
