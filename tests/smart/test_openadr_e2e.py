"""Demand response end to end: the gateway's VEN (GATEWAY_OPENADR_VTN_URL) registers with
a real OpenADR 2.0b VTN on loopback (openleadr's server, tests/demand/vtn.py); an event
halving the site's capacity lowers what the simulated chargers hold while it lasts, and
its end restores their shares; the VTN gets the VEN's optIn and the site's power reports.
Both storage backends; the limits are watched at the chargers' side."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.demand.vtn import Vtn
from tests.sim import EV, boot, connect
from tests.smart.test_sites_e2e import CHARGERS, Watcher, site_body, until, watching

D = Decimal


@pytest.fixture
async def vtn() -> AsyncIterator[Vtn]:
    server = Vtn()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_an_openadr_event_lowers_the_site_and_its_end_restores_it(
    gateways: GatewayFactory, vtn: Vtn
) -> None:
    # Reports (and the look for new sites, which the VEN registers again for) every second.
    gateway: Gateway = await gateways.start(
        openadr_vtn_url=vtn.url, openadr_ven_name="depot-ven", openadr_report_interval=1
    )
    for cid in CHARGERS:
        status, body = await gateway.admin(
            "PUT", f"/chargers/{cid}", {"evses": [{"ocpp_id": 1, "evse_uid": f"{cid}-1"}]}
        )
        assert status == 201, body
    assert (await gateway.admin("PUT", "/tokens/TAG-EV", {"valid": True}))[0] in (200, 201)
    status, body = await gateway.admin("PUT", "/sites/S1", site_body(40))
    assert status == 201, body
    await until(lambda: vtn.registered[:1] == ["depot-ven"])
    async with contextlib.AsyncExitStack() as stack:
        cps: dict[str, Any] = {}
        for cid, version in CHARGERS.items():
            cp = await stack.enter_async_context(connect(gateway.ws_url, cid, version))
            cp.evse_count = 1
            await boot(cp, version)
            cps[cid] = cp
        for cp in cps.values():
            cp.plug(1, EV())
            await cp.start_transaction(1)

        def limits() -> list[Decimal | None]:
            return [cp.station_limit() for cp in cps.values()]

        await until(lambda: limits() == [D("13.3")] * 3)
        start = datetime.now(UTC) + timedelta(seconds=2)
        vtn.add_event(
            "DR-1",
            "LOAD_CONTROL",
            "x-loadControlCapacity",
            [{"dtstart": start, "duration": timedelta(seconds=4), "signal_payload": 0.5}],
            targets_by_type={"resource_id": ["S1"]},
        )
        await until(lambda: ("DR-1", "optIn") in vtn.opts)
        _, listed = await gateway.admin("GET", "/sites/S1/limits")
        assert [entry["source"] for entry in listed] == ["openadr:DR-1"]
        # While it lasts: half the capacity, 20 A, shared (6.6 each, rounded down).
        async with watching(Watcher(cps, D(40))) as watcher:
            await until(lambda: limits() == [D("6.6")] * 3)
            strict = Watcher(cps, D(20))
            async with watching(strict):
                await until(lambda: datetime.now(UTC) > start + timedelta(seconds=3))
            assert strict.violations == [] and strict.samples > 0
            # Its end restores the shares.
            await until(lambda: limits() == [D("13.3")] * 3)
        assert watcher.violations == []
        # The site's power, from the cars' meter values, in the VEN's reports.
        for cp in cps.values():
            await cp.send_meter_values(1)
        await until(lambda: any(site == "S1" and value > 0 for site, value in vtn.reports))
