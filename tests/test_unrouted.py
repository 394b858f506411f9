"""A request no route takes still gets JSON, like every other answer (found by the fuzz
suite: ``/ocpi/2.2.1/tokens/../../..`` resolves to ``/``, which answered plain text)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


async def raw_request(gateway: Gateway, target: str) -> tuple[int, dict[str, str], bytes]:
    """Send the request line byte for byte (a client library would resolve the dots)."""
    host, port = gateway.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


async def test_unrouted_requests_get_json(gateway: Gateway) -> None:
    # What a client sends for /ocpi/2.2.1/tokens/../../.. once it resolved the dots: the
    # root, which sends a browser to the dashboard; any other unrouted path gets JSON.
    status, headers, body = await raw_request(gateway, "/")
    assert (status, headers["location"]) == (302, "/dashboard/")
    status, headers, body = await raw_request(gateway, "/nowhere")
    assert status == 404 and headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"error": "no such endpoint"}
    # Sent as it is, dots and all, the path stays in the OCPI URL space, which answers
    # (authentication first) with an envelope.
    status, headers, body = await raw_request(gateway, "/ocpi/2.2.1/tokens/../../../nowhere")
    assert status == 401 and json.loads(body)["status_code"] == 2000

    async with aiohttp.ClientSession() as s, s.get(f"{gateway.url}/nothing/here") as resp:
        assert resp.status == 404
        assert await resp.json() == {"error": "no such endpoint"}
    # A URL space answers its own errors first: the admin API's authentication.
    async with aiohttp.ClientSession() as s, s.get(f"{gateway.url}/admin/nothing") as resp:
        assert resp.status == 401
        assert "error" in await resp.json()
    # A known path with a method it does not take: 405, with Allow.
    async with aiohttp.ClientSession() as s, s.post(f"{gateway.url}/ocpp/CP1") as resp:
        assert resp.status == 405
        assert "GET" in resp.headers["Allow"]
        assert "error" in await resp.json()
