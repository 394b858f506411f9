"""A session is priced with the tariff it started with: the operator changing the price,
or moving the location to another tariff and deleting the old one, while a driver charges
does not reprice that driver's CDR (the price the driver was offered)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from ocpp.v16 import call as call16

from tests.conftest import Gateway, GatewayFactory
from tests.roaming.referencing_emsp import ReferencingEmsp
from tests.roaming.test_authorization_reference import _world
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect


@pytest.fixture
async def emsp() -> AsyncIterator[ReferencingEmsp]:
    platform = ReferencingEmsp()
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


def _priced(price: str) -> dict[str, Any]:
    return TARIFF | {"elements": [{"price_components": [{"type": "ENERGY", "price": float(price), "vat": 21.0, "step_size": 1}]}]}


async def _cdr(emsp: ReferencingEmsp) -> dict[str, Any]:
    for _ in range(500):
        if emsp.cdrs():
            (cdr,) = emsp.cdrs()
            return cdr
        await asyncio.sleep(0.01)
    raise AssertionError("no CDR")


async def _charge(gw: Gateway, change: Any) -> None:
    """3 kWh on a 1.6 charger; ``change`` runs in the middle of the session."""
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=1000, timestamp="2026-11-23T10:00:00Z"))
        assert start.id_tag_info["status"] == "Accepted"
        await change()
        await cp.call(call16.StopTransaction(meter_stop=4000, timestamp="2026-11-23T10:30:00Z", transaction_id=start.transaction_id))


async def test_a_price_change_during_the_session_does_not_reprice_it(
    gateways: GatewayFactory, emsp: ReferencingEmsp
) -> None:
    gw = await _world(gateways, emsp)  # AC-STD: 0.35 per kWh excl. VAT

    async def raise_the_price() -> None:
        assert (await gw.admin("PUT", "/tariffs/AC-STD", _priced("0.99")))[0] == 200

    await _charge(gw, raise_the_price)
    cdr = await _cdr(emsp)
    assert Decimal(str(cdr["total_cost"]["excl_vat"])) == Decimal("1.05")  # 3 kWh x 0.35
    assert [t["id"] for t in cdr["tariffs"]] == ["AC-STD"]
    assert Decimal(str(cdr["tariffs"][0]["elements"][0]["price_components"][0]["price"])) == Decimal("0.35")


async def test_a_tariff_deleted_during_the_session_still_prices_it(
    gateways: GatewayFactory, emsp: ReferencingEmsp
) -> None:
    gw = await _world(gateways, emsp)

    async def move_on_and_delete() -> None:
        assert (await gw.admin("PUT", "/tariffs/AC-NEW", _priced("0.50")))[0] == 201
        connectors = [c | {"tariff_ids": ["AC-NEW"]} for c in LOCATION["connectors"]]
        assert (await gw.admin("PUT", "/locations/LOC1", LOCATION | {"connectors": connectors}))[0] == 200
        assert (await gw.admin("DELETE", "/tariffs/AC-STD"))[0] == 204

    await _charge(gw, move_on_and_delete)
    cdr = await _cdr(emsp)
    assert Decimal(str(cdr["total_cost"]["excl_vat"])) == Decimal("1.05")
    assert [t["id"] for t in cdr["tariffs"]] == ["AC-STD"]
