"""A charger on a site gets its share after its boot is answered, not the moment it
connects: a charger may refuse requests before its BootNotification is answered (found by
tests/bench/bench_smart.py: 20 of 1,000 chargers got their limit first)."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.conftest import Gateway
from tests.sim import nothing_before_boot, until_connected


async def test_the_site_limit_comes_after_the_boot_answer(gateway: Gateway) -> None:
    for cid in ("BF-1", "BF-2"):
        assert (
            await gateway.admin(
                "PUT", f"/chargers/{cid}", {"evses": [{"ocpp_id": 1, "evse_uid": f"{cid}-1"}]}
            )
        )[0] == 201
    site = {
        "capacity": 40,
        "phases": 3,
        "evses": [{"charger_id": c, "evse_id": 1, "max_current": 32} for c in ("BF-1", "BF-2")],
    }
    assert (await gateway.admin("PUT", "/sites/BF", site))[0] == 201
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(f"{gateway.ws_url}/ocpp/BF-1", protocols=("ocpp1.6",)) as ws,
    ):
        # Connected, not booted: nothing yet (this failed in CI 1 run in 20 or fewer: a
        # rebalance then raced the boot, see the test below).
        await nothing_before_boot(ws)
        await ws.send_str(
            json.dumps(
                [
                    2,
                    "boot-1",
                    "BootNotification",
                    {"chargePointVendor": "V", "chargePointModel": "M"},
                ]
            )
        )
        first = json.loads((await ws.receive(timeout=10)).data)
        assert first[:2] == [3, "boot-1"], first
        call = json.loads((await ws.receive(timeout=10)).data)
        assert call[0] == 2 and call[2] == "SetChargingProfile", call
        await ws.send_str(json.dumps([3, call[1], {"status": "Accepted"}]))
        await asyncio.sleep(0)


async def test_a_site_change_while_a_charger_waits_for_its_boot_leaves_it_alone(
    gateway: Gateway,
) -> None:
    # The race behind the rare failure above, made certain: the site is read again (an
    # operator's change) after the charger connected and before it booted. Its stored
    # state says connected; its share must still wait for the boot (or the settle time).
    assert (
        await gateway.admin("PUT", "/chargers/BW-1", {"evses": [{"ocpp_id": 1, "evse_uid": "BW-1-1"}]})
    )[0] == 201
    site = {
        "capacity": 40,
        "phases": 3,
        "evses": [{"charger_id": "BW-1", "evse_id": 1, "max_current": 32}],
    }
    assert (await gateway.admin("PUT", "/sites/BW", site))[0] == 201
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(f"{gateway.ws_url}/ocpp/BW-1", protocols=("ocpp1.6",)) as ws,
    ):
        await until_connected(gateway, "BW-1")
        assert (await gateway.admin("PUT", "/sites/BW", site | {"capacity": 32}))[0] == 200
        await nothing_before_boot(ws)
        await ws.send_str(
            json.dumps(
                [2, "boot-1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
            )
        )
        assert json.loads((await ws.receive(timeout=10)).data)[:2] == [3, "boot-1"]
        call = json.loads((await ws.receive(timeout=10)).data)
        assert call[0] == 2 and call[2] == "SetChargingProfile", call
        await ws.send_str(json.dumps([3, call[1], {"status": "Accepted"}]))
        await asyncio.sleep(0)
