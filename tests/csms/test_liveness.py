"""Heartbeat watchdog, pipelined CALLs, and slow handlers that must not block answers."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from ocpp.v16 import call as call16

from gateway.domain.models import AuthorizationResult, AuthorizationStatus, IdToken
from gateway.keys import AUTHORIZER
from tests.conftest import FakeClock, GatewayFactory
from tests.sim import connect


async def _register(gw, cp_id: str) -> None:  # type: ignore[no-untyped-def]
    status, _ = await gw.admin("PUT", f"/chargers/{cp_id}", {"evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]})
    assert status == 201


async def test_missed_heartbeats_mark_offline(gateways: GatewayFactory) -> None:
    clock = FakeClock()
    gw = await gateways.start(clock=clock, heartbeat_interval=60, heartbeat_grace=2.0)
    await _register(gw, "CP-HB")
    async with connect(gw.ws_url, "CP-HB", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        clock.advance(100)
        await cp.call(call16.Heartbeat())  # any frame counts as a sign of life
        clock.advance(100)
        assert await gw.csms.check_liveness() == []
        clock.advance(21)  # 121 s of silence > 2 x 60 s
        assert await gw.csms.check_liveness() == ["CP-HB"]
        _, view = await gw.admin("GET", "/chargers/CP-HB")
        assert view["connected"] is False
        assert [c["status"] for c in view["connectors"]] == ["Unknown"]
        assert gw.csms.connection("CP-HB") is None


async def test_pipelined_calls_are_answered_in_order(gateways: GatewayFactory) -> None:
    gw = await gateways.start()
    await _register(gw, "CP-PIPE")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gw.ws_url}/ocpp/CP-PIPE", protocols=("ocpp1.6",))
        # Some chargers send StatusNotification before the BootNotification answer.
        await ws.send_str('[2,"a","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]')
        await ws.send_str('[2,"b","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available"}]')
        await ws.send_str('[2,"c","Heartbeat",{}]')
        answers = [json.loads((await ws.receive(timeout=5)).data) for _ in range(3)]
        assert [a[:2] for a in answers] == [[3, "a"], [3, "b"], [3, "c"]]
        _, view = await gw.admin("GET", "/chargers/CP-PIPE")
        assert view["vendor"] == "V"
        assert view["connectors"][0]["status"] == "Available"
        await ws.close()


class SlowAuthorizer:
    """A partner that takes its time to answer (real-time authorization)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def authorize(self, token: IdToken, *, charger_id: str, evse_id: int | None) -> AuthorizationResult:
        await self.release.wait()
        return AuthorizationResult(AuthorizationStatus.ACCEPTED, source="slow-partner")


async def test_slow_handler_does_not_block_command_answers(gateways: GatewayFactory) -> None:
    gw = await gateways.start()
    slow = SlowAuthorizer()
    gw.app[AUTHORIZER].add(slow)
    await _register(gw, "CP-SLOW")
    async with connect(gw.ws_url, "CP-SLOW", "1.6") as cp:
        pending = asyncio.create_task(cp.call(call16.Authorize(id_tag="ROAMING-1")))
        await asyncio.sleep(0.1)
        assert not pending.done()
        # While the Authorize waits on the partner, a command's answer still gets through.
        status, body = await gw.admin("POST", "/chargers/CP-SLOW/commands/reset", {"type": "soft"})
        assert (status, body["status"]) == (200, "Accepted")
        slow.release.set()
        answer = await asyncio.wait_for(pending, 5)
        assert answer.id_tag_info["status"] == "Accepted"


async def test_command_timeout_gives_504(gateways: GatewayFactory) -> None:
    gw = await gateways.start(call_timeout=0.3)
    await _register(gw, "CP-MUTE")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gw.ws_url}/ocpp/CP-MUTE", protocols=("ocpp1.6",))
        status, body = await gw.admin("POST", "/chargers/CP-MUTE/commands/reset", {})
        assert status == 504
        assert "did not answer" in body["error"]
        # The charger did receive the call; it just never answered.
        frame = json.loads((await ws.receive(timeout=5)).data)
        assert frame[:3] == [2, frame[1], "Reset"]
        # A CALLERROR answer becomes 502 with the charger's code.
        task = asyncio.create_task(gw.admin("POST", "/chargers/CP-MUTE/commands/unlock", {"evse_id": 1}))
        frame = json.loads((await ws.receive(timeout=5)).data)
        await ws.send_str(json.dumps([4, frame[1], "NotSupported", "no unlock here", {}]))
        status, body = await task
        assert status == 502
        assert "NotSupported" in body["error"]
        await ws.close()
