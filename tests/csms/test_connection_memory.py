"""What a charger's connection leaves behind (issue 15): nothing once it closed.

Start-up freezes what it built and raises the first-generation threshold of the cyclic
garbage collector (``gateway.app._freeze_gc``), so full collections are rare: anything
of a closed connection caught in a reference cycle (the connection, aiohttp's request,
response and transport, a cancelled task and its frames) would stay in memory, every
wave of reconnecting chargers adding to it. These tests run with the collector off: a
closed connection must be freed by reference counting alone.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.sim import boot, connect


async def _freed(ref: weakref.ref[Any], timeout: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while ref() is not None:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_closed_connection_is_freed_without_the_cyclic_collector(
    gateways: Any, version: str, no_cyclic_gc: None
) -> None:
    # A settle time longer than the test: the delayed profile re-send and local-list
    # check of the connection are cancelled by the boot and the disconnection.
    gateway: Gateway = await gateways.start(auto_register=True)
    cp_id = f"MEM-{version}"
    async with connect(gateway.ws_url, cp_id, version) as cp:
        await boot(cp, version)
        conn = gateway.csms.connection(cp_id)
        assert conn is not None
        connection, websocket = weakref.ref(conn), weakref.ref(conn.ws)
        del conn
    assert await _freed(connection), "the closed connection is still referenced"
    assert await _freed(websocket), "its WebSocket response is still referenced"
