"""``GATEWAY_METRICS=false``: no metrics at all (no ``/metrics`` route, nothing counted), and
everything else works as with them: what ``bench_ocpp.py --compare-metrics`` measures."""

from __future__ import annotations

import aiohttp

from gateway.keys import CSMS
from gateway.monitoring import METRICS
from tests.conftest import GatewayFactory
from tests.roaming.emsp import EmspPlatform
from tests.sim import boot, connect


async def test_without_metrics_chargers_and_partners_are_served(gateways: GatewayFactory) -> None:
    gw = await gateways.start(metrics=False, auto_register=True)
    assert METRICS not in gw.app
    async with aiohttp.ClientSession() as s, s.get(f"{gw.url}/metrics") as resp:
        assert resp.status == 404
    async with connect(gw.ws_url, "NO-METRICS-1", "1.6") as cp:
        await boot(cp, "1.6")
        _, charger = await gw.admin("GET", "/chargers/NO-METRICS-1")
        assert charger["connected"] is True
    assert type(gw.app[CSMS].metrics).__name__ == "NoMetrics"
    # A partner registers: the OCPI client works without its request counters.
    emsp = EmspPlatform()
    await emsp.start()
    try:
        _, partner = await gw.admin("POST", "/partners", {"name": "eMSP"})
        status, body = await gw.admin(
            "POST",
            f"/partners/{partner['id']}/register",
            {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a},
        )
        assert status == 200, body
    finally:
        await emsp.stop()
