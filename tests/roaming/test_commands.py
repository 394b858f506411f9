"""OCPI commands from an eMSP become OCPP calls; results go back to its response_url."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from ocpp.v16 import call as call16

from tests.conftest import FakeClock, GatewayFactory
from tests.roaming.emsp import EmspPlatform, token_header
from tests.roaming.test_sessions import _world
from tests.sim import connect


async def _command(gw: Any, emsp: EmspPlatform, name: str, body: dict[str, Any]) -> dict[str, Any]:
    assert emsp.cpo_token is not None
    async with aiohttp.ClientSession() as s, s.post(
        f"{gw.url}/ocpi/2.2.1/commands/{name}", json=body, headers=token_header(emsp.cpo_token)
    ) as r:
        assert r.status == 200
        return dict(await r.json())


async def _results(gw: Any, partner_id: str, count: int) -> list[Any]:
    for _ in range(250):
        items = [i for i in await gw.store.outbox.list(partner_id=partner_id) if i.module == "commands"]
        if len(items) >= count:
            return items
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} command results")


async def test_commands(gateways: GatewayFactory, emsp: EmspPlatform) -> None:
    gw, partner_id = await _world(gateways, emsp, FakeClock())
    respond = f"{emsp.url}/ocpi/2.2.1/commands/START_SESSION/1"
    token = emsp.token("APP-USER-1") | {"type": "APP_USER"}
    # The charger is offline: rejected at once.
    answer = await _command(gw, emsp, "START_SESSION", {"response_url": respond, "token": token, "location_id": "LOC1", "evse_uid": "CP16-1"})
    assert answer["data"]["result"] == "REJECTED"
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        answer = await _command(gw, emsp, "START_SESSION", {"response_url": respond, "token": token, "location_id": "LOC1", "evse_uid": "CP16-1"})
        assert answer["data"]["result"] == "ACCEPTED"
        assert answer["data"]["timeout"] == 30
        [result] = await _results(gw, partner_id, 1)
        assert result.url == respond
        assert result.method == "POST"
        assert result.body == {"result": "ACCEPTED"}
        assert cp.received[-1] == ("RemoteStartTransaction", {"id_tag": "APP-USER-1", "connector_id": 1})

        # Accepted by the charger: a PENDING session, until the transaction starts.
        [pending] = [i for i in await gw.store.outbox.list(partner_id=partner_id) if i.module == "sessions"]
        assert pending.body["status"] == "PENDING"
        assert pending.body["auth_method"] == "COMMAND"
        answer = await _command(gw, emsp, "STOP_SESSION", {"response_url": respond, "session_id": pending.body["id"]})
        assert answer["data"]["result"] == "REJECTED"  # nothing to stop yet
        # The charger starts: the same session becomes ACTIVE, for the eMSP of the command's token.
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="APP-USER-1", meter_start=0, timestamp="2026-11-23T12:00:00Z"))
        assert start.id_tag_info["status"] == "Accepted"
        sessions = [i for i in await gw.store.outbox.list(partner_id=partner_id) if i.module == "sessions"]
        assert [(i.method, i.body["status"]) for i in sessions] == [("PUT", "PENDING"), ("PUT", "ACTIVE")]
        assert sessions[1].body["id"] == pending.body["id"]
        assert sessions[1].body["auth_method"] == "COMMAND"
        session_id = pending.body["id"]
        answer = await _command(gw, emsp, "STOP_SESSION", {"response_url": respond + "/stop", "session_id": session_id})
        assert answer["data"]["result"] == "ACCEPTED"
        await _results(gw, partner_id, 2)
        assert cp.received[-1] == ("RemoteStopTransaction", {"transaction_id": start.transaction_id})
        answer = await _command(gw, emsp, "STOP_SESSION", {"response_url": respond, "session_id": "NOPE"})
        assert answer["data"]["result"] == "UNKNOWN_SESSION"

        cp.unlock_status = "UnlockFailed"
        answer = await _command(gw, emsp, "UNLOCK_CONNECTOR", {"response_url": respond + "/u", "location_id": "LOC1", "evse_uid": "CP16-1", "connector_id": "1"})
        assert answer["data"]["result"] == "ACCEPTED"
        results = await _results(gw, partner_id, 3)
        assert results[-1].body == {"result": "REJECTED"}

        answer = await _command(gw, emsp, "RESERVE_NOW", {"response_url": respond + "/r", "token": token, "expiry_date": "2026-11-23T13:00:00Z", "reservation_id": "RES-1", "location_id": "LOC1", "evse_uid": "CP16-1"})
        assert answer["data"]["result"] == "ACCEPTED"
        await _results(gw, partner_id, 4)
        reserve = cp.received[-1]
        assert reserve[0] == "ReserveNow"
        assert reserve[1]["id_tag"] == "APP-USER-1"
        answer = await _command(gw, emsp, "CANCEL_RESERVATION", {"response_url": respond + "/c", "reservation_id": "RES-1"})
        assert answer["data"]["result"] == "ACCEPTED"
        results = await _results(gw, partner_id, 5)
        assert cp.received[-1] == ("CancelReservation", {"reservation_id": reserve[1]["reservation_id"]})
        assert results[-1].body == {"result": "ACCEPTED"}
        answer = await _command(gw, emsp, "CANCEL_RESERVATION", {"response_url": respond + "/c", "reservation_id": "OTHER"})
        assert answer["data"]["result"] == "REJECTED"

    # Bad input is named.
    bad = await _command(gw, emsp, "START_SESSION", {"response_url": respond, "location_id": "LOC1"})
    assert bad["status_code"] == 2001
    assert "token" in bad["status_message"]
