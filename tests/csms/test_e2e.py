"""End to end: simulated 1.6J and 2.0.1 chargers against the running app, both backends."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from tests.conftest import Gateway
from tests.sim import connect

T0 = "2026-11-23T10:00:00Z"
T1 = "2026-11-23T10:15:00Z"
T2 = "2026-11-23T10:30:00Z"


async def _register(gw: Gateway, cp_id: str, evses: int = 1) -> None:
    status, body = await gw.admin(
        "PUT",
        f"/chargers/{cp_id}",
        {"evses": [{"ocpp_id": i, "evse_uid": f"{cp_id}-{i}"} for i in range(1, evses + 1)]},
    )
    assert status == 201, body
    status, body = await gw.admin("PUT", "/tokens/TAG-OK", {"valid": True})
    assert status == 201, body


async def _eventually(check: Any, timeout: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_ocpp16_full_cycle(gateway: Gateway) -> None:
    await _register(gateway, "CP16")
    async with connect(gateway.ws_url, "CP16", "1.6") as cp:
        boot = await cp.call(
            call16.BootNotification(
                charge_point_vendor="Acme", charge_point_model="X1", firmware_version="1.2.3"
            )
        )
        assert boot.status == "Accepted"
        assert boot.interval == gateway.settings.heartbeat_interval
        assert boot.current_time.endswith("Z")
        hb = await cp.call(call16.Heartbeat())
        assert hb.current_time.endswith("Z")

        await cp.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Available")
        )
        _, view = await gateway.admin("GET", "/chargers/CP16")
        assert view["connected"] is True
        assert view["ocpp_version"] == "1.6"
        assert (view["vendor"], view["model"], view["firmware_version"]) == ("Acme", "X1", "1.2.3")
        assert [(c["evse_id"], c["status"]) for c in view["connectors"]] == [(1, "Available")]

        ok = await cp.call(call16.Authorize(id_tag="TAG-OK"))
        assert ok.id_tag_info["status"] == "Accepted"
        # An idTag is a CiString20 (case-insensitive): a reader that sends lower case.
        ok = await cp.call(call16.Authorize(id_tag="tag-Ok"))
        assert ok.id_tag_info["status"] == "Accepted"
        unknown = await cp.call(call16.Authorize(id_tag="NOPE"))
        assert unknown.id_tag_info["status"] == "Invalid"

        start = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=1000, timestamp=T0)
        )
        assert start.id_tag_info["status"] == "Accepted"
        tx_id = start.transaction_id
        assert isinstance(tx_id, int) and tx_id > 0
        # A repeated StartTransaction (answer lost) gets the same transaction back.
        again = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=1000, timestamp=T0)
        )
        assert again.transaction_id == tx_id

        await cp.call(
            call16.MeterValues(
                connector_id=1,
                transaction_id=tx_id,
                meter_value=[
                    {
                        "timestamp": T1,
                        "sampledValue": [
                            {"value": "3.5", "unit": "kWh", "measurand": "Energy.Active.Import.Register"},
                            {"value": "7400", "measurand": "Power.Active.Import", "unit": "W"},
                            {"value": "32", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
                            {"value": "55", "measurand": "SoC", "unit": "Percent", "location": "EV"},
                        ],
                    }
                ],
            )
        )
        # Remote management while the transaction runs.
        status, answer = await gateway.admin(
            "POST", "/chargers/CP16/commands/remote-stop", {"transaction_id": str(tx_id)}
        )
        assert (status, answer["status"]) == (200, "Accepted")
        assert cp.received[-1] == ("RemoteStopTransaction", {"transaction_id": tx_id})

        stop = await cp.call(
            call16.StopTransaction(
                meter_stop=6000,
                timestamp=T2,
                transaction_id=tx_id,
                reason="Remote",
                id_tag="TAG-OK",
                transaction_data=[
                    {
                        "timestamp": T2,
                        "sampledValue": [{"value": "6000", "context": "Transaction.End"}],
                    }
                ],
            )
        )
        assert stop.id_tag_info["status"] == "Accepted"

        status, txs = await gateway.admin("GET", "/transactions?charger_id=CP16")
        assert status == 200 and len(txs) == 1
        status, tx = await gateway.admin("GET", f"/transactions/{txs[0]['id']}")
        assert status == 200
        assert tx["status"] == "Completed"
        assert tx["ocpp_transaction_id"] == str(tx_id)
        assert Decimal(tx["meter_start_wh"]) == 1000
        assert Decimal(tx["meter_stop_wh"]) == 6000
        assert Decimal(tx["energy_wh"]) == 5000
        assert tx["stop_reason"] == "Remote"
        assert tx["started_at"] == "2026-11-23T10:00:00Z"
        readings = {(r["measurand"], r["phase"]): Decimal(r["value"]) for r in tx["meter_readings"]}
        assert readings[("Energy.Active.Import.Register", None)] in (Decimal(3500), Decimal(6000))
        assert readings[("Power.Active.Import", None)] == 7400
        assert readings[("Current.Import", "L1")] == 32
        assert readings[("SoC", None)] == 55
        energy = sorted(
            Decimal(r["value"])
            for r in tx["meter_readings"]
            if r["measurand"] == "Energy.Active.Import.Register"
        )
        assert energy == [3500, 6000]

        for name, body, action in [
            ("remote-start", {"id_token": "TAG-OK", "evse_id": 1}, "RemoteStartTransaction"),
            ("unlock", {"evse_id": 1}, "UnlockConnector"),
            ("reset", {"type": "hard"}, "Reset"),
            ("get-configuration", {"keys": ["HeartbeatInterval"]}, "GetConfiguration"),
            ("set-configuration", {"key": "HeartbeatInterval", "value": "60"}, "ChangeConfiguration"),
        ]:
            status, answer = await gateway.admin("POST", f"/chargers/CP16/commands/{name}", body)
            assert (status, answer["status"]) == (200, "Accepted"), (name, answer)
            assert cp.received[-1][0] == action
        assert cp.received[-4][1] == {"connector_id": 1}
        assert cp.received[-3][1] == {"type": "Hard"}
        assert cp.received[-5][1] == {"id_tag": "TAG-OK", "connector_id": 1}

        cp.unlock_status = "UnlockFailed"
        status, answer = await gateway.admin("POST", "/chargers/CP16/commands/unlock", {"evse_id": 1})
        assert (status, answer["status"]) == (200, "Rejected")

        # 2.0.1-only commands are refused for a 1.6 charger with a reason.
        status, answer = await gateway.admin(
            "POST",
            "/chargers/CP16/commands/get-variables",
            {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]},
        )
        assert status == 422 and "1.6" in answer["error"]

    async def offline() -> bool:
        _, view = await gateway.admin("GET", "/chargers/CP16")
        return not view["connected"] and view["connectors"][0]["status"] == "Unknown"

    await _eventually(offline)


async def test_ocpp201_full_cycle(gateway: Gateway) -> None:
    await _register(gateway, "CP201")
    async with connect(gateway.ws_url, "CP201", "2.0.1") as cp:
        boot = await cp.call(
            call201.BootNotification(
                charging_station={"model": "Y2", "vendorName": "Acme", "serialNumber": "SN-9"},
                reason="PowerUp",
            )
        )
        assert boot.status == "Accepted"
        assert boot.current_time.endswith("Z")
        await cp.call(call201.Heartbeat())
        await cp.call(
            call201.StatusNotification(
                timestamp=T0, connector_status="Available", evse_id=1, connector_id=1
            )
        )
        _, view = await gateway.admin("GET", "/chargers/CP201")
        assert view["connected"] and view["ocpp_version"] == "2.0.1"
        assert view["reported_serial_number"] == "SN-9"
        assert [(c["evse_id"], c["connector_id"], c["status"]) for c in view["connectors"]] == [
            (1, 1, "Available")
        ]
        auth = await cp.call(call201.Authorize(id_token={"idToken": "TAG-OK", "type": "ISO14443"}))
        assert auth.id_token_info["status"] == "Accepted"
        # IdTokenType: "IdToken is case insensitive".
        auth = await cp.call(call201.Authorize(id_token={"idToken": "tag-ok", "type": "ISO14443"}))
        assert auth.id_token_info["status"] == "Accepted"
        auth = await cp.call(call201.Authorize(id_token={"idToken": "NOPE", "type": "ISO14443"}))
        assert auth.id_token_info["status"] in ("Invalid", "Unknown")

        def energy(wh: str, context: str, ts: str) -> list[dict[str, Any]]:
            return [
                {
                    "timestamp": ts,
                    "sampledValue": [
                        {
                            "value": float(wh),
                            "context": context,
                            "measurand": "Energy.Active.Import.Register",
                            "unitOfMeasure": {"unit": "kWh"},
                        },
                        {"value": 11, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}},
                    ],
                }
            ]

        started = await cp.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp=T0,
                trigger_reason="Authorized",
                seq_no=0,
                transaction_info={"transactionId": "tx-abc", "chargingState": "Charging"},
                id_token={"idToken": "TAG-OK", "type": "ISO14443"},
                evse={"id": 1, "connectorId": 1},
                meter_value=energy("10.5", "Transaction.Begin", T0),
            )
        )
        assert started.id_token_info["status"] == "Accepted"
        await cp.call(
            call201.TransactionEvent(
                event_type="Updated",
                timestamp=T1,
                trigger_reason="MeterValuePeriodic",
                seq_no=1,
                transaction_info={"transactionId": "tx-abc", "chargingState": "SuspendedEV"},
                meter_value=energy("12.25", "Sample.Periodic", T1),
            )
        )
        _, txs = await gateway.admin("GET", "/transactions?charger_id=CP201")
        assert txs[0]["status"] == "Active" and txs[0]["charging_state"] == "SuspendedEV"

        status, answer = await gateway.admin(
            "POST", "/chargers/CP201/commands/remote-stop", {"transaction_id": "tx-abc"}
        )
        assert (status, answer["status"]) == (200, "Accepted")
        assert cp.received[-1] == ("RequestStopTransaction", {"transaction_id": "tx-abc"})

        await cp.call(
            call201.TransactionEvent(
                event_type="Ended",
                timestamp=T2,
                trigger_reason="RemoteStop",
                seq_no=2,
                transaction_info={"transactionId": "tx-abc", "stoppedReason": "Remote"},
                meter_value=energy("15", "Transaction.End", T2),
            )
        )
        _, txs = await gateway.admin("GET", "/transactions?charger_id=CP201")
        _, tx = await gateway.admin("GET", f"/transactions/{txs[0]['id']}")
        assert tx["status"] == "Completed"
        assert Decimal(tx["meter_start_wh"]) == 10500
        assert Decimal(tx["meter_stop_wh"]) == 15000
        assert Decimal(tx["energy_wh"]) == 4500
        assert tx["stop_reason"] == "Remote"
        assert tx["id_token"] == "TAG-OK"
        powers = [Decimal(r["value"]) for r in tx["meter_readings"] if r["measurand"] == "Power.Active.Import"]
        assert powers == [11000, 11000, 11000]

        for name, body, action in [
            ("remote-start", {"id_token": "TAG-OK", "evse_id": 1, "remote_start_id": 7}, "RequestStartTransaction"),
            ("unlock", {"evse_id": 1, "connector_id": 1}, "UnlockConnector"),
            ("reset", {"type": "soft"}, "Reset"),
            (
                "get-variables",
                {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]},
                "GetVariables",
            ),
        ]:
            status, answer = await gateway.admin("POST", f"/chargers/CP201/commands/{name}", body)
            assert (status, answer["status"]) == (200, "Accepted"), (name, answer)
            assert cp.received[-1][0] == action
        assert cp.received[-4][1]["remote_start_id"] == 7
        # TAG-OK is an RFID card on the local list: its stored type, not Central (issue 9).
        assert cp.received[-4][1]["id_token"] == {"id_token": "TAG-OK", "type": "ISO14443"}
        assert cp.received[-2][1] == {"type": "OnIdle"}


async def test_stop_for_unknown_transaction_is_recorded(gateway: Gateway) -> None:
    await _register(gateway, "CP-LATE")
    async with connect(gateway.ws_url, "CP-LATE", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        stop = await cp.call(
            call16.StopTransaction(
                meter_stop=9000,
                timestamp=T2,
                transaction_id=4242,
                transaction_data=[
                    {"timestamp": T0, "sampledValue": [{"value": "2000", "context": "Transaction.Begin"}]}
                ],
            )
        )
        assert stop.id_tag_info is None
    _, txs = await gateway.admin("GET", "/transactions?charger_id=CP-LATE")
    assert len(txs) == 1
    tx = txs[0]
    assert tx["recovered"] is True and tx["status"] == "Completed"
    assert tx["ocpp_transaction_id"] == "4242"
    assert Decimal(tx["energy_wh"]) == 7000
    assert tx["started_at"] == "2026-11-23T10:00:00Z"
    assert tx["stop_reason"] == "Local"


async def test_reconnect_replaces_old_connection(gateway: Gateway) -> None:
    await _register(gateway, "CP-RE")
    async with connect(gateway.ws_url, "CP-RE", "1.6") as first:
        await first.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        async with connect(gateway.ws_url, "CP-RE", "2.0.1") as second:
            await second.call(call201.Heartbeat())
            assert first._connection.ws.closed or await _eventually(
                lambda: _closed(first), timeout=3
            )
            _, view = await gateway.admin("GET", "/chargers/CP-RE")
            assert view["connected"] is True and view["ocpp_version"] == "2.0.1"
            assert gateway.csms.connection("CP-RE").version == "2.0.1"


async def _closed(cp: Any) -> bool:
    return bool(cp._connection.ws.closed)


async def test_commands_to_offline_charger_give_409(gateway: Gateway) -> None:
    await _register(gateway, "CP-OFF")
    status, body = await gateway.admin("POST", "/chargers/CP-OFF/commands/reset", {})
    assert status == 409 and "not connected" in body["error"]
    status, body = await gateway.admin("POST", "/chargers/NOPE/commands/reset", {})
    assert status == 404


async def test_delete_charger_disconnects_and_forgets(gateway: Gateway) -> None:
    await _register(gateway, "CP-DEL")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gateway.ws_url}/ocpp/CP-DEL", protocols=("ocpp1.6",))
        await ws.send_str('[2,"b","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]')
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT
        status, _ = await gateway.admin("DELETE", "/chargers/CP-DEL")
        assert status == 204
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == 1000  # a normal close, with the reason in msg.extra
        await ws.close()
        assert (await gateway.admin("GET", "/chargers/CP-DEL"))[0] == 404
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(f"{gateway.ws_url}/ocpp/CP-DEL", protocols=("ocpp1.6",))
        assert err.value.status == 404
    await asyncio.sleep(0.1)  # the closed connection's own end has run by now
    assert await gateway.store.charger_states.get("CP-DEL") is None
    assert await gateway.store.connectors.list("CP-DEL") == []
    assert (await gateway.admin("DELETE", "/chargers/CP-DEL"))[0] == 404
