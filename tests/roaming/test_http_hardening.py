"""Hostile request bodies at the real app's HTTP endpoints: the bilateral OCPI interface
(``/ocpi``, a registered eMSP's token), the hub (``/ocpi/hub``, a registered platform's
token) and the admin API.

* JSON nested about a thousand levels deep in 2 KB is refused with HTTP 400 and a JSON
  reason (OCPI: an envelope with status 2000), never a 500; the server goes on serving.
* A body that trickles in slower than ``request_read_timeout`` gets 408 and the
  connection is closed; the server goes on serving.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.conftest import Gateway, GatewayFactory
from tests.hub.platform import Platform
from tests.hub.test_gateway_hub import free_port, join
from tests.roaming.emsp import EmspPlatform, token_header

READ_TIMEOUT = 0.5
DEEP_ARRAY = b"[" * 1000 + b"]" * 1000  # 2 KB, 1,000 levels
DEEP_OBJECT = b'{"a":' * 400 + b"1" + b"}" * 400


@dataclass
class World:
    gateway: Gateway
    emsp: EmspPlatform  # registered bilaterally at /ocpi
    platform: Platform  # registered at the hub, /ocpi/hub


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    # One backend is enough: nothing here reaches the store.
    factory = GatewayFactory(tmp_path, "sqlite")
    emsp = EmspPlatform()
    platform = Platform("eMSP Hub", "EMSP", [("NL", "EM1")])
    await emsp.start()
    await platform.start()
    try:
        gateway = await factory.start(port=free_port(), request_read_timeout=READ_TIMEOUT)
        _, partner = await gateway.admin("POST", "/partners", {"name": "eMSP"})
        status, _ = await gateway.admin(
            "POST",
            f"/partners/{partner['id']}/register",
            {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a},
        )
        assert status == 200 and emsp.cpo_token is not None
        await join(gateway, platform)
        yield World(gateway, emsp, platform)
    finally:
        await platform.stop()
        await emsp.stop()
        await factory.close()


def _ocpi_token(world: World) -> dict[str, str]:
    assert world.emsp.cpo_token is not None
    return token_header(world.emsp.cpo_token)


def _hub_headers(world: World) -> dict[str, str]:
    assert world.platform.hub_token is not None
    return token_header(world.platform.hub_token) | {
        "OCPI-from-country-code": "NL",
        "OCPI-from-party-id": "EM1",
        "OCPI-to-country-code": "ZZ",
        "OCPI-to-party-id": "GWY",
    }


def _targets(world: World) -> list[tuple[str, str, dict[str, str], bool]]:
    """(method, URL, headers, answers with an OCPI envelope)"""
    base = world.gateway.url
    admin = world.gateway.admin_headers
    hub = f"{base}/ocpi/hub/2.2.1"
    return [
        ("PUT", f"{base}/ocpi/2.2.1/tokens/NL/EMS/T1", _ocpi_token(world), True),
        ("POST", f"{base}/ocpi/2.2.1/commands/START_SESSION", _ocpi_token(world), True),
        ("PUT", f"{base}/ocpi/2.2.1/credentials", _ocpi_token(world), True),
        ("PUT", f"{hub}/tokens/receiver/NL/EM1/T1", _hub_headers(world), True),
        ("POST", f"{hub}/commands/receiver/START_SESSION", _hub_headers(world), True),
        ("PUT", f"{base}/admin/chargers/CP1", admin, False),
        ("PUT", f"{base}/admin/locations/L1", admin, False),
        ("PUT", f"{base}/admin/tariffs/T1", admin, False),
        ("POST", f"{base}/admin/partners", admin, False),
        ("POST", f"{base}/admin/hub/rules", admin, False),
    ]


async def _still_serving(world: World) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(
            f"{world.gateway.url}/ocpi/2.2.1/locations", headers=_ocpi_token(world)
        ) as r:
            assert r.status == 200 and (await r.json())["status_code"] == 1000
        async with s.get(
            f"{world.gateway.url}/admin/chargers", headers=world.gateway.admin_headers
        ) as r:
            assert r.status == 200


async def test_deeply_nested_json_is_a_400_with_a_reason(world: World) -> None:
    async with aiohttp.ClientSession() as s:
        for method, url, headers, ocpi in _targets(world):
            for body in (DEEP_ARRAY, DEEP_OBJECT):
                sent = headers | {"Content-Type": "application/json"}
                async with s.request(method, url, data=body, headers=sent) as r:
                    assert r.status == 400, (method, url, await r.text())
                    answer = await r.json()
                    if ocpi:
                        assert answer["status_code"] == 2000, (url, answer)
                        assert "nested" in answer["status_message"], answer
                        assert "timestamp" in answer
                    else:
                        assert "nested" in answer["error"], (url, answer)
    await _still_serving(world)


async def test_nesting_within_the_bound_is_read(world: World) -> None:
    # 60 levels: parsed, and refused only for what it is (not a token), with 2001.
    body = b'{"uid": ' + b"[" * 60 + b"]" * 60 + b"}"
    async with aiohttp.ClientSession() as s, s.put(
        f"{world.gateway.url}/ocpi/2.2.1/tokens/NL/EMS/T1",
        data=body,
        headers=_ocpi_token(world) | {"Content-Type": "application/json"},
    ) as r:
        answer = await r.json()
        assert (r.status, answer["status_code"]) == (200, 2001), answer


async def _trickle(
    method: str, url: str, headers: dict[str, str], *, to_eof: bool = True
) -> tuple[bytes, bool]:
    """Sends the headers and then the body a byte at a time, far slower than the read
    timeout; returns what the server sent (everything up to its closing the connection,
    or only the response head unless ``to_eof``) and whether the body was still not
    complete then."""
    target = URL(url)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    body = json.dumps({"name": "x" * 200}).encode()
    head = [f"{method} {target.raw_path_qs} HTTP/1.1", f"Host: {target.host}:{target.port}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
    writer.write("\r\n".join(head).encode() + body[:5])
    await writer.drain()
    complete = asyncio.Event()

    async def drip() -> None:
        for i in range(5, len(body)):
            await asyncio.sleep(READ_TIMEOUT / 5)
            if writer.is_closing():
                return
            writer.write(body[i : i + 1])
        complete.set()

    dripping = asyncio.create_task(drip())
    try:
        async with asyncio.timeout(20):
            if to_eof:
                # To EOF: the server closed the connection. A byte of ours still on its
                # way when the server closed makes its kernel answer RST, which may end
                # the read with ECONNRESET after the answer arrived: what came is kept.
                chunks: list[bytes] = []
                with contextlib.suppress(ConnectionResetError):
                    while chunk := await reader.read(65536):
                        chunks.append(chunk)
                answer = b"".join(chunks)
            else:
                answer = await reader.readuntil(b"\r\n\r\n")
    finally:
        dripping.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return answer, not complete.is_set()


async def test_a_body_trickling_in_gets_408_and_the_connection_closed(world: World) -> None:
    base = world.gateway.url
    cases = [
        ("PUT", f"{base}/ocpi/2.2.1/tokens/NL/EMS/T1", _ocpi_token(world), True),
        ("PUT", f"{base}/ocpi/hub/2.2.1/tokens/receiver/NL/EM1/T1", _hub_headers(world), True),
        ("POST", f"{base}/admin/partners", world.gateway.admin_headers, False),
    ]
    for method, url, headers, ocpi in cases:
        answer, cut_short = await _trickle(method, url, headers)
        assert cut_short, url
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), (url, answer[:200])
        assert b"connection: close" in head.lower(), head
        reason = json.loads(body)
        if ocpi:
            assert reason["status_code"] == 2000 and "timeout" in reason["status_message"].lower()
        else:
            assert "timeout" in reason["error"].lower()
    await _still_serving(world)


async def test_unauthenticated_requests_are_refused_before_their_body(world: World) -> None:
    # The body is only waited for once the token is known good: a wrong token gets 401
    # at once, whatever the body is doing.
    base = world.gateway.url
    wrong = "Token " + base64.b64encode(b"not-a-token").decode()
    for url, headers in (
        (f"{base}/ocpi/2.2.1/tokens/NL/EMS/T1", {"Authorization": wrong}),
        (f"{base}/admin/partners", {"Authorization": "Bearer wrong"}),
    ):
        answer, _ = await _trickle("PUT", url, headers, to_eof=False)
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    await _still_serving(world)


async def test_a_whole_body_within_the_timeout_is_served(world: World) -> None:
    token: dict[str, Any] = world.emsp.token("FAST1")
    async with aiohttp.ClientSession() as s, s.put(
        f"{world.gateway.url}/ocpi/2.2.1/tokens/NL/EMS/FAST1",
        json=token,
        headers=_ocpi_token(world),
    ) as r:
        assert r.status == 201, await r.text()
