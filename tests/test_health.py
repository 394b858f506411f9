"""GET /health/live and /health/ready on the real app, on both storage backends."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from tests.conftest import (
    REDIS_URL,
    Gateway,
    GatewayFactory,
    _redis_available,
    backend_settings,
    require_redis_or_skip,
)
from tests.storage.redis_proxy import RedisProxy


async def _get(gw: Gateway, path: str, **kwargs: Any) -> tuple[int, Any, CIMultiDictProxy[str]]:
    async with aiohttp.ClientSession() as s, s.get(f"{gw.url}{path}", **kwargs) as resp:
        return resp.status, await resp.json(), resp.headers


async def _poll_ready(gw: Gateway, status: int, bound: float = 10.0) -> Any:
    """Polls /health/ready until it answers ``status``; its body."""
    async with asyncio.timeout(bound):
        while True:
            code, body, _ = await _get(gw, "/health/ready")
            if code == status:
                return body
            await asyncio.sleep(0.05)


async def test_live_and_ready_without_a_token(gateway: Gateway) -> None:
    status, body, headers = await _get(gateway, "/health/live")
    assert (status, body) == (200, {"status": "ok"})
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Cache-Control"] == "no-store"
    status, body, _ = await _get(gateway, "/health/ready")
    assert (status, body) == (200, {"status": "ready"})


async def test_ready_answers_head_and_ignores_a_body(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.head(f"{gateway.url}/health/ready") as resp:
            assert resp.status == 200
        # A probe that sends a body (it should not) is answered all the same.
        async with s.get(f"{gateway.url}/health/ready", data=b"x" * 10_000) as resp:
            assert (resp.status, await resp.json()) == (200, {"status": "ready"})
        async with s.post(f"{gateway.url}/health/ready") as resp:
            assert resp.status == 405


async def test_not_ready_once_shutdown_starts_live_still_ok(gateway: Gateway) -> None:
    await gateway.admin("PUT", "/chargers/CP-HEALTH", {})
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gateway.url}/ocpp/CP-HEALTH", protocols=("ocpp1.6",))
        await ws.send_str('[2,"1","Heartbeat",{}]')
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT
        # What runner.cleanup() does once it stopped listening: the on_shutdown handlers
        # (readiness off first, then every charger closed with 1001).
        await gateway.app.shutdown()
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1001
        await ws.close()
    status, body, _ = await _get(gateway, "/health/ready")
    assert (status, body) == (503, {"status": "unavailable", "reason": "shutting down"})
    status, body, _ = await _get(gateway, "/health/live")
    assert (status, body) == (200, {"status": "ok"})


async def test_not_ready_when_storage_is_closed(gateway: Gateway) -> None:
    await gateway.store.close()  # any later use fails, as a dead backend would
    status, body, _ = await _get(gateway, "/health/ready")
    assert (status, body) == (503, {"status": "unavailable", "reason": "storage unavailable"})
    status, _, _ = await _get(gateway, "/health/live")
    assert status == 200


async def test_not_ready_while_redis_is_unreachable(tmp_path: Path) -> None:
    require_redis_or_skip(await _redis_available())
    gateways = GatewayFactory(tmp_path, "redis")
    proxy = RedisProxy(REDIS_URL)
    await proxy.start()
    try:
        settings = backend_settings(
            "redis", tmp_path, redis_url=proxy.url, storage_retry_seconds=0.2
        )
        gw = await gateways.start(settings)
        assert (await _get(gw, "/health/ready"))[:2] == (200, {"status": "ready"})
        proxy.cut()
        body = await _poll_ready(gw, 503)
        assert body == {"status": "unavailable", "reason": "storage unavailable"}
        assert (await _get(gw, "/health/live"))[0] == 200
        proxy.restore()
        assert await _poll_ready(gw, 200) == {"status": "ready"}
    finally:
        await gateways.close()
        await proxy.close()
