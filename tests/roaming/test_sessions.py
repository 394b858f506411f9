"""Roaming sessions and CDRs: from OCPP transactions to what the eMSP receives."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from tests.conftest import FakeClock, GatewayFactory
from tests.ocpi.openapi import validate_against_openapi
from tests.roaming.emsp import EmspPlatform, token_header
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect


async def _world(gateways: GatewayFactory, emsp: EmspPlatform, clock: FakeClock) -> Any:
    gw = await gateways.start(clock=clock)
    _, partner = await gw.admin("POST", "/partners", {"name": "eMSP"})
    status, _ = await gw.admin(
        "POST", f"/partners/{partner['id']}/register", {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a}
    )
    assert status == 200
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    for cp_id in ("CP16", "CP201"):
        await gw.admin("PUT", f"/chargers/{cp_id}", {"location_id": "LOC1", "evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]})
    assert emsp.cpo_token is not None
    async with aiohttp.ClientSession() as s, s.put(
        f"{gw.url}/ocpi/2.2.1/tokens/NL/EMS/DRIVER1", json=emsp.token("DRIVER1"), headers=token_header(emsp.cpo_token)
    ) as r:
        assert r.status == 201
    return gw, partner["id"]


def _mv(ts: str, wh: str) -> list[dict[str, Any]]:
    return [{"timestamp": ts, "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}]}]


async def test_roaming_session_and_cdr_16(gateways: GatewayFactory, emsp: EmspPlatform) -> None:
    clock = FakeClock()
    gw, partner_id = await _world(gateways, emsp, clock)
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        assert (await cp.call(call16.Authorize(id_tag="DRIVER1"))).id_tag_info["status"] == "Accepted"
        start = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=10_000, timestamp="2026-11-23T10:00:00Z")
        )
        tx_id = start.transaction_id
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=_mv("2026-11-23T10:10:00Z", "11000")))
        clock.advance(30)  # within the minute: no PATCH
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=_mv("2026-11-23T10:20:00Z", "12500")))
        clock.advance(60)
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=_mv("2026-11-23T10:40:00Z", "15000")))
        # Parked from 10:40 to 11:00: the register does not move.
        await cp.call(call16.StopTransaction(meter_stop=15_000, timestamp="2026-11-23T11:00:00Z", transaction_id=tx_id))

    items = await gw.store.outbox.list(partner_id=partner_id)
    pushes = [(i.module, i.method) for i in items if i.module in ("sessions", "cdrs")]
    assert pushes == [("sessions", "PUT"), ("sessions", "PATCH"), ("sessions", "PUT"), ("cdrs", "POST")]
    first, patch, final, cdr_item = [i for i in items if i.module in ("sessions", "cdrs")]
    assert first.url.endswith("/sessions/ZZ/GWY/" + first.body["id"])
    assert first.body["status"] == "ACTIVE"
    assert first.body["cdr_token"]["uid"] == "DRIVER1"
    assert first.body["auth_method"] == "WHITELIST"
    assert patch.body["kwh"] == 5  # the third reading, 90 s after the PUT
    # The running cost, priced like the CDR: 5 kWh x 0.35 = 1.75 (2.12 incl. 21 % VAT).
    assert patch.body["total_cost"] == {"excl_vat": 1.75, "incl_vat": 2.12}
    assert first.body["total_cost"] == {"excl_vat": 0.0, "incl_vat": 0.0}
    assert final.body["status"] == "COMPLETED"
    assert final.body["kwh"] == 5
    validate_against_openapi("sessions", "Session", final.body)
    assert all(i.ordering_key == first.ordering_key for i in (patch, final))

    cdr = cdr_item.body
    assert cdr_item.url == f"{emsp.url}/ocpi/2.2.1/cdrs"
    validate_against_openapi("cdrs", "CDR", cdr)
    assert cdr["session_id"] == first.body["id"]
    assert cdr["cdr_location"]["evse_uid"] == "CP16-1"
    assert cdr["cdr_location"]["connector_standard"] == "IEC_62196_T2"
    kinds = [[d["type"] for d in p["dimensions"]] for p in cdr["charging_periods"]]
    assert kinds == [["ENERGY", "TIME"], ["PARKING_TIME"]]
    assert Decimal(str(cdr["total_energy"])) == 5
    # 5 kWh at 0.35 excl. VAT, 21 % VAT: 1.75 / 2.1175 -> 2.12 (rounded once, half-up).
    assert cdr["total_cost"] == {"excl_vat": 1.75, "incl_vat": 2.12}
    assert cdr["total_energy_cost"] == {"excl_vat": 1.75, "incl_vat": 2.12}
    assert Decimal(str(cdr["total_parking_time"])) == Decimal("0.3333")
    assert [t["id"] for t in cdr["tariffs"]] == ["AC-STD"]

    # The eMSP can also pull its sessions and CDRs.
    async with aiohttp.ClientSession() as s:
        assert emsp.cpo_token is not None
        async with s.get(f"{gw.url}/ocpi/2.2.1/cdrs", headers=token_header(emsp.cpo_token)) as r:
            pulled = await r.json()
        async with s.get(f"{gw.url}/ocpi/2.2.1/sessions?date_from=2026-01-01T00:00:00Z", headers=token_header(emsp.cpo_token)) as r:
            sessions = await r.json()
    assert [c["id"] for c in pulled["data"]] == [cdr["id"]]
    assert sessions["data"][0]["status"] == "COMPLETED"


async def test_local_token_makes_no_session(gateways: GatewayFactory, emsp: EmspPlatform) -> None:
    gw, partner_id = await _world(gateways, emsp, FakeClock())
    await gw.admin("PUT", "/tokens/LOCAL1", {})
    async with connect(gw.ws_url, "CP201", "2.0.1") as cp:
        await cp.call(call201.BootNotification(charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp"))
        await cp.call(
            call201.TransactionEvent(
                event_type="Started", timestamp="2026-11-23T10:00:00Z", trigger_reason="Authorized", seq_no=0,
                transaction_info={"transactionId": "T-LOCAL"}, id_token={"idToken": "LOCAL1", "type": "ISO14443"},
                evse={"id": 1, "connectorId": 1},
            )
        )
    items = await gw.store.outbox.list(partner_id=partner_id)
    assert [i for i in items if i.module in ("sessions", "cdrs")] == []
