"""Locations and tariffs: operator records, GET by a registered eMSP, pushes planned on change."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from ocpp.v16 import call as call16

from gateway.storage.base import OutboxStatus
from tests.conftest import Gateway
from tests.ocpi.openapi import validate_against_openapi
from tests.roaming.emsp import EmspPlatform, token_header
from tests.sim import connect

LOCATION = {
    "publish": True,
    "name": "Depot Noord",
    "address": "Stationsplein 1",
    "city": "Utrecht",
    "postal_code": "3511ED",
    "country": "NLD",
    "coordinates": {"latitude": "52.089444", "longitude": "5.110278"},
    "time_zone": "Europe/Amsterdam",
    "connectors": [
        {"id": "1", "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE",
         "max_voltage": 230, "max_amperage": 32, "tariff_ids": ["AC-STD"]}
    ],
    "evses": {"CP1-1": {"floor_level": "-1", "capabilities": ["RFID_READER", "REMOTE_START_STOP_CAPABLE"]}},
}
TARIFF = {
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": 0.35, "vat": 21.0, "step_size": 1}]}],
}


async def _register(gateway: Gateway, emsp: EmspPlatform) -> str:
    _, partner = await gateway.admin("POST", "/partners", {"name": "eMSP"})
    status, _ = await gateway.admin(
        "POST", f"/partners/{partner['id']}/register", {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a}
    )
    assert status == 200
    return str(partner["id"])


async def _ocpi_get(gateway: Gateway, path: str, token: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(f"{gateway.url}/ocpi/2.2.1{path}", headers=token_header(token)) as r:
        return r.status, dict(r.headers), await r.json()


async def test_locations_and_tariffs(gateway: Gateway, emsp: EmspPlatform) -> None:
    partner_id = await _register(gateway, emsp)
    assert emsp.cpo_token is not None
    status, body = await gateway.admin("PUT", "/tariffs/AC-STD", TARIFF)
    assert status == 201, body
    validate_against_openapi("tariffs", "Tariff", body)
    # A connector may only reference known tariffs.
    bad = LOCATION | {"connectors": [LOCATION["connectors"][0] | {"tariff_ids": ["NOPE"]}]}
    status, body = await gateway.admin("PUT", "/locations/LOC1", bad)
    assert (status, body["field"]) == (422, "tariff_ids")
    status, body = await gateway.admin("PUT", "/locations/LOC1", LOCATION | {"address": None})
    assert status == 422
    assert body["field"] == "address"
    status, body = await gateway.admin("PUT", "/locations/LOC1", LOCATION | {"colour": "red"})
    assert (status, body["field"]) == (422, "colour")

    status, location = await gateway.admin("PUT", "/locations/LOC1", LOCATION)
    assert status == 201, location
    # Chargers are bound to locations that exist.
    await gateway.admin("PUT", "/chargers/CP1", {"location_id": "LOC1", "evses": [{"ocpp_id": 1, "evse_uid": "CP1-1", "evse_id": "ZZ*GWY*E1"}]})
    status, location = await gateway.admin("GET", "/locations/LOC1")
    assert status == 200, location
    assert location["evses"][0]["status"] == "UNKNOWN"  # the charger never connected
    validate_against_openapi("locations", "Location", location)
    for i in range(2, 5):
        status, _ = await gateway.admin("PUT", f"/locations/LOC{i}", LOCATION)
        assert status == 201

    # The eMSP pulls, paginated.
    status, headers, page = await _ocpi_get(gateway, "/locations?limit=2", emsp.cpo_token)
    assert (status, page["status_code"]) == (200, 1000)
    assert headers["X-Total-Count"] == "4"
    assert [loc["id"] for loc in page["data"]] == ["LOC1", "LOC2"]
    assert "offset=2" in headers["Link"]
    status, _, one = await _ocpi_get(gateway, "/locations/LOC1/CP1-1/1", emsp.cpo_token)
    assert one["data"]["tariff_ids"] == ["AC-STD"]
    status, _, missing = await _ocpi_get(gateway, "/locations/NOPE", emsp.cpo_token)
    assert (status, missing["status_code"]) == (404, 2003)
    status, _, tariffs = await _ocpi_get(gateway, "/tariffs", emsp.cpo_token)
    assert [t["id"] for t in tariffs["data"]] == ["AC-STD"]

    # Live status: the charger connects and reports; the location follows.
    async with connect(gateway.ws_url, "CP1", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        _, _, live = await _ocpi_get(gateway, "/locations/LOC1/CP1-1", emsp.cpo_token)
        assert live["data"]["status"] == "CHARGING"
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))

    # Pushes are queued durably for the eMSP: PUT tariff, PUT location, PATCH statuses.
    def summary(items: list[Any]) -> list[tuple[str, str, Any]]:
        return [(i.method, i.url.removeprefix(f"{emsp.url}/ocpi/2.2.1"), (i.body or {}).get("status")) for i in items]

    for _ in range(100):  # the disconnect is handled after the socket closes
        items = await gateway.store.outbox.list(partner_id=partner_id)
        seen = summary(items)
        if seen[-1][2] == "UNKNOWN":
            break
        await asyncio.sleep(0.02)
    assert ("PUT", "/tariffs/ZZ/GWY/AC-STD", None) in seen
    assert ("PUT", "/locations/ZZ/GWY/LOC1", None) in seen
    patches = [s for s in seen if s[0] == "PATCH"]
    # CHARGING once (the repeated status changes nothing), then UNKNOWN when it disconnects.
    assert patches[0] == ("PATCH", "/locations/ZZ/GWY/LOC1/CP1-1", "CHARGING")
    assert patches[-1][2] == "UNKNOWN"
    assert len([p for p in patches if p[2] == "CHARGING"]) == 1
    assert all(i.status in (OutboxStatus.PENDING, OutboxStatus.DONE) for i in items)

    # A tariff the locations use stays (409 naming them); one nobody uses goes, pushed.
    status, body = await gateway.admin("DELETE", "/tariffs/AC-STD")
    assert status == 409 and "LOC1" in body["error"]
    assert (await gateway.admin("PUT", "/tariffs/SPARE", TARIFF))[0] == 201
    status, _ = await gateway.admin("DELETE", "/tariffs/SPARE")
    assert status == 204
    items = await gateway.store.outbox.list(partner_id=partner_id)
    assert items[-1].method == "DELETE"
    assert items[-1].url.endswith("/tariffs/ZZ/GWY/SPARE")
