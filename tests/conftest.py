"""Shared fixtures: a real gateway on a loopback port, on either storage backend."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import settings as hypothesis_settings

from gateway.app import build_app
from gateway.keys import CSMS, STORE
from gateway.settings import Settings
from tests.roaming.emsp import EmspPlatform

# CI runs every property test on the same examples (derandomize), so a landing never
# depends on luck; local runs keep exploring new ones.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ADMIN_TOKEN = "test-admin-token"
# The partner token key of the Redis gateways (required there: processes share storage).
SECRET_KEY = "8PQbVcp1dImfuDdeNmkrxPXNQ7mJ8sYnXx_0dRwD5zk="


async def _redis_available() -> str | None:
    """None when Redis answers, else the reason it does not."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        await asyncio.wait_for(client.ping(), timeout=2)
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await client.aclose()


def require_redis_or_skip(reason: str | None) -> None:
    if reason is None:
        return
    if os.environ.get("GATEWAY_REQUIRE_REDIS") == "1":
        pytest.fail(f"Redis at {REDIS_URL} is required (GATEWAY_REQUIRE_REDIS=1): {reason}")
    pytest.skip(f"no Redis at {REDIS_URL} ({reason}); set GATEWAY_TEST_REDIS_URL")


async def drop_redis_prefix(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@dataclass
class Gateway:
    app: web.Application
    url: str
    ws_url: str
    settings: Settings

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    @property
    def csms(self) -> Any:
        return self.app[CSMS]

    @property
    def store(self) -> Any:
        return self.app[STORE]

    async def admin(
        self, method: str, path: str, json: Any = None, **kwargs: Any
    ) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s, s.request(
            method, f"{self.url}/admin{path}", json=json, headers=self.admin_headers, **kwargs
        ) as resp:
            body = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, body


def backend_settings(backend: str, tmp_path: Path, **overrides: Any) -> Settings:
    extra: dict[str, Any] = {}
    if backend == "redis":
        extra = {"redis_url": REDIS_URL, "redis_prefix": f"test:{uuid.uuid4().hex}:", "secret_key": SECRET_KEY}
    base: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "data_dir": tmp_path / "data", "admin_token": ADMIN_TOKEN}
    return Settings(**(base | extra | overrides))


@dataclass
class GatewayFactory:
    """Starts gateways on free ports; stops them at the end of the test."""

    tmp_path: Path
    backend: str

    def __post_init__(self) -> None:
        self._runners: list[web.AppRunner] = []
        self._prefixes: set[str] = set()

    async def start(
        self, settings: Settings | None = None, *, clock: Any = None, ssl_context: Any = None,
        **overrides: Any,
    ) -> Gateway:
        settings = settings or backend_settings(self.backend, self.tmp_path, **overrides)
        if settings.redis_url:
            self._prefixes.add(settings.redis_prefix)
        app = build_app(settings, clock=clock, admin_token=ADMIN_TOKEN)
        runner = web.AppRunner(app, shutdown_timeout=5)
        await runner.setup()
        # A test that needs the gateway's own URLs right (a hub's) passes a free port.
        site = web.TCPSite(runner, "127.0.0.1", settings.port, ssl_context=ssl_context)
        await site.start()
        self._runners.append(runner)
        port = runner.addresses[0][1]
        scheme = "https" if ssl_context else "http"
        url = f"{scheme}://127.0.0.1:{port}"
        return Gateway(app, url, url.replace("http", "ws", 1), settings)

    async def stop(self, gw: Gateway) -> None:
        for runner in list(self._runners):
            if runner.app is gw.app:
                await runner.cleanup()
                self._runners.remove(runner)

    async def close(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        for prefix in self._prefixes:
            await drop_redis_prefix(prefix)


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def gateways(backend: str, tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    if backend == "redis":
        require_redis_or_skip(await _redis_available())
    factory = GatewayFactory(tmp_path, backend)
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture
async def gateway(gateways: GatewayFactory) -> Gateway:
    return await gateways.start()


@pytest.fixture
async def emsp() -> AsyncIterator[EmspPlatform]:
    """A real eMSP platform (tests/roaming/emsp.py) on a free port, for the roaming tests."""
    platform = EmspPlatform()
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()
