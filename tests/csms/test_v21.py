"""OCPP 2.1 end to end: the ``ocpp`` library's 2.1 charge point over a real WebSocket to
the real app, with what 2.1 adds to the 2.0.1 messages (free id token types, cost and
limit fields in TransactionEvent, statusInfo in notifications), every remote command
and the smart charging messages.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import aiohttp
from ocpp.v21 import call as call21

from tests.conftest import Gateway, GatewayFactory
from tests.sim import boot, connect

T0 = "2026-11-23T10:00:00Z"
T1 = "2026-11-23T10:15:00Z"
T2 = "2026-11-23T10:30:00Z"


async def _register(gw: Gateway, cp_id: str) -> None:
    status, body = await gw.admin(
        "PUT", f"/chargers/{cp_id}", {"evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]}
    )
    assert status == 201, body
    status, body = await gw.admin("PUT", "/tokens/TAG-OK", {"valid": True})
    assert status == 201, body


def _energy(kwh: str, context: str, ts: str) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": ts,
            "sampledValue": [
                {
                    "value": float(kwh),
                    "context": context,
                    "measurand": "Energy.Active.Import.Register",
                    "unitOfMeasure": {"unit": "kWh"},
                },
                {"value": 11, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}},
            ],
        }
    ]


async def test_ocpp21_full_cycle(gateway: Gateway) -> None:
    await _register(gateway, "CP21")
    async with connect(gateway.ws_url, "CP21", "2.1") as cp:
        assert cp._connection.ws.protocol == "ocpp2.1"
        boot = await cp.call(
            call21.BootNotification(
                charging_station={"model": "Z3", "vendorName": "Acme", "serialNumber": "SN-21"},
                reason="PowerUp",
            )
        )
        assert boot.status == "Accepted" and boot.current_time.endswith("Z")
        assert boot.interval == gateway.settings.heartbeat_interval
        assert (await cp.call(call21.Heartbeat())).current_time.endswith("Z")
        await cp.call(
            call21.StatusNotification(
                timestamp=T0, connector_status="Available", evse_id=1, connector_id=1
            )
        )
        _, view = await gateway.admin("GET", "/chargers/CP21")
        assert view["connected"] and view["ocpp_version"] == "2.1"
        assert (view["vendor"], view["model"], view["reported_serial_number"]) == (
            "Acme",
            "Z3",
            "SN-21",
        )
        assert [(c["evse_id"], c["status"]) for c in view["connectors"]] == [(1, "Available")]
        status, listed = await gateway.admin("GET", "/chargers?ocpp_version=2.1")
        assert status == 200 and [c["id"] for c in listed] == ["CP21"]

        # 2.1 id token types are free strings (IdTokenEnumType became a string).
        auth = await cp.call(call21.Authorize(id_token={"idToken": "TAG-OK", "type": "ISO14443"}))
        assert auth.id_token_info["status"] == "Accepted"
        auth = await cp.call(call21.Authorize(id_token={"idToken": "NOPE", "type": "VIN"}))
        assert auth.id_token_info["status"] in ("Invalid", "Unknown")

        started = await cp.call(
            call21.TransactionEvent(
                event_type="Started",
                timestamp=T0,
                trigger_reason="Authorized",
                seq_no=0,
                transaction_info={
                    "transactionId": "tx-21",
                    "chargingState": "Charging",
                    # 2.1 additions, accepted and not needed by the domain.
                    "operationMode": "ChargingOnly",
                    "transactionLimit": {"maxEnergy": 30000},
                },
                id_token={"idToken": "TAG-OK", "type": "ISO14443"},
                evse={"id": 1, "connectorId": 1},
                meter_value=_energy("10.5", "Transaction.Begin", T0),
            )
        )
        assert started.id_token_info["status"] == "Accepted"
        await cp.call(
            call21.TransactionEvent(
                event_type="Updated",
                timestamp=T1,
                trigger_reason="LimitSet",  # a 2.1 trigger reason
                seq_no=1,
                transaction_info={"transactionId": "tx-21", "chargingState": "SuspendedEV"},
                meter_value=_energy("12.25", "Sample.Periodic", T1),
            )
        )
        await cp.call(
            call21.MeterValues(
                evse_id=1,
                meter_value=[
                    {
                        "timestamp": T1,
                        "sampledValue": [
                            {"value": 16, "measurand": "Current.Import", "phase": "L1"},
                            # A 2.1 measurand the domain does not keep.
                            {"value": 80, "measurand": "Display.PresentSOC"},
                        ],
                    }
                ],
            )
        )
        _, txs = await gateway.admin("GET", "/transactions?charger_id=CP21")
        assert txs[0]["status"] == "Active" and txs[0]["charging_state"] == "SuspendedEV"

        status, answer = await gateway.admin(
            "POST", "/chargers/CP21/commands/remote-stop", {"transaction_id": "tx-21"}
        )
        assert (status, answer["status"]) == (200, "Accepted")
        assert cp.received[-1] == ("RequestStopTransaction", {"transaction_id": "tx-21"})
        ended = await cp.call(
            call21.TransactionEvent(
                event_type="Ended",
                timestamp=T2,
                trigger_reason="RemoteStop",
                seq_no=2,
                transaction_info={"transactionId": "tx-21", "stoppedReason": "Remote"},
                meter_value=_energy("15", "Transaction.End", T2),
            )
        )
        assert ended.total_cost is None  # no tariff, no cost display
        _, txs = await gateway.admin("GET", "/transactions?charger_id=CP21")
        _, tx = await gateway.admin("GET", f"/transactions/{txs[0]['id']}")
        assert tx["status"] == "Completed" and tx["stop_reason"] == "Remote"
        assert (Decimal(tx["meter_start_wh"]), Decimal(tx["meter_stop_wh"])) == (10500, 15000)
        assert Decimal(tx["energy_wh"]) == 4500
        assert tx["id_token"] == "TAG-OK"
        currents = [r for r in tx["meter_readings"] if r["measurand"] == "Current.Import"]
        assert [(r["phase"], Decimal(r["value"])) for r in currents] == [("L1", 16)]

        # Security events, firmware and log notifications (2.1 adds statusInfo).
        await cp.call(
            call21.SecurityEventNotification(type="FirmwareUpdated", timestamp=T2, tech_info="ok")
        )
        status, answer = await gateway.admin(
            "POST",
            "/chargers/CP21/commands/update-firmware",
            {"location": "https://fw.example/z3.bin", "retrieve_at": T0},
        )
        assert (status, answer["status"]) == (200, "Accepted"), answer
        firmware_id = cp.received[-1][1]["request_id"]
        await cp.call(
            call21.FirmwareStatusNotification(
                status="Downloaded",
                request_id=firmware_id,
                status_info={"reasonCode": "OK", "additionalInfo": "all bytes"},
            )
        )
        status, answer = await gateway.admin(
            "POST",
            "/chargers/CP21/commands/get-log",
            {"location": "https://logs.example/up", "log_type": "SecurityLog"},
        )
        assert (status, answer["status"]) == (200, "Accepted"), answer
        log_id = cp.received[-1][1]["request_id"]
        assert cp.received[-1][1]["log_type"] == "SecurityLog"
        await cp.call(
            call21.LogStatusNotification(
                status="Uploaded", request_id=log_id, status_info={"reasonCode": "Done"}
            )
        )
        _, view = await gateway.admin("GET", "/chargers/CP21")
        by_id = {r["request_id"]: r for r in view["requests"]}
        assert by_id[firmware_id]["status"] == "Downloaded"
        assert by_id[log_id]["status"] == "Uploaded"


# Every remote command of the admin API, and what the 2.1 charger receives (snake_case,
# as the library hands it over): the same calls as 2.0.1, validated against 2.1.
COMMANDS: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    (
        "remote-start",
        {"id_token": "TAG-OK", "evse_id": 1, "remote_start_id": 7},
        "RequestStartTransaction",
        {
            "id_token": {"id_token": "TAG-OK", "type": "ISO14443"},
            "remote_start_id": 7,
            "evse_id": 1,
        },
    ),
    (
        "remote-stop",
        {"transaction_id": "tx-9"},
        "RequestStopTransaction",
        {"transaction_id": "tx-9"},
    ),
    (
        "unlock",
        {"evse_id": 1, "connector_id": 2},
        "UnlockConnector",
        {"evse_id": 1, "connector_id": 2},
    ),
    ("reset", {"type": "hard"}, "Reset", {"type": "Immediate"}),
    (
        "change-availability",
        {"operative": False, "evse_id": 1},
        "ChangeAvailability",
        {"operational_status": "Inoperative", "evse": {"id": 1}},
    ),
    (
        "get-variables",
        {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]},
        "GetVariables",
        {
            "get_variable_data": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
            ]
        },
    ),
    (
        "set-variables",
        {
            "variables": [
                {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "60"}
            ]
        },
        "SetVariables",
        {
            "set_variable_data": [
                {
                    "attribute_value": "60",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        },
    ),
    (
        "trigger-message",
        {"message": "StatusNotification", "evse_id": 1},
        "TriggerMessage",
        {"requested_message": "StatusNotification", "evse": {"id": 1}},
    ),
    (
        "update-firmware",
        {"location": "https://fw.example/a.bin", "retrieve_at": T0, "request_id": 5},
        "UpdateFirmware",
        {
            "request_id": 5,
            "firmware": {
                "location": "https://fw.example/a.bin",
                "retrieve_date_time": "2026-11-23T10:00:00.000Z",
            },
        },
    ),
    (
        "get-diagnostics",
        {"location": "https://logs.example/up", "request_id": 6},
        "GetLog",
        {
            "log": {"remote_location": "https://logs.example/up"},
            "log_type": "DiagnosticsLog",
            "request_id": 6,
        },
    ),
    (
        "reserve-now",
        {"reservation_id": 3, "id_token": "TAG-OK", "expiry": T2, "evse_id": 1},
        "ReserveNow",
        {
            "id": 3,
            "expiry_date_time": "2026-11-23T10:30:00.000Z",
            "id_token": {"id_token": "TAG-OK", "type": "ISO14443"},
            "evse_id": 1,
        },
    ),
    ("cancel-reservation", {"reservation_id": 3}, "CancelReservation", {"reservation_id": 3}),
]


async def test_every_remote_command_reaches_a_21_charger(gateway: Gateway) -> None:
    await _register(gateway, "CMD21")
    async with connect(gateway.ws_url, "CMD21", "2.1") as cp:
        await boot(cp, "2.1")
        for name, body, action, received in COMMANDS:
            status, answer = await gateway.admin("POST", f"/chargers/CMD21/commands/{name}", body)
            assert (status, answer["status"]) == (200, "Accepted"), (name, answer)
            got_action, got = cp.received[-1]
            assert got_action == action, name
            # Timestamps: whatever precision the gateway writes, the same instant.
            assert _same(got, received), (name, got)
        # Configuration keys are 1.6: refused with a reason naming the version.
        for name, body in [
            ("get-configuration", {"keys": ["HeartbeatInterval"]}),
            ("set-configuration", {"key": "HeartbeatInterval", "value": "60"}),
        ]:
            status, answer = await gateway.admin("POST", f"/chargers/CMD21/commands/{name}", body)
            assert status == 422 and "2.1" in answer["error"], answer


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return (
            isinstance(got, dict)
            and set(got) == set(want)
            and all(_same(got[k], v) for k, v in want.items())
        )
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(_same(g, w) for g, w in zip(got, want, strict=True))
        )
    if isinstance(want, str) and want.endswith("Z") and isinstance(got, str):
        return datetime.fromisoformat(got) == datetime.fromisoformat(want)
    return bool(got == want)


async def test_the_trail_sees_21_frames_as_their_own_kinds(gateways: GatewayFactory) -> None:
    gw = await gateways.start(trail_flush_interval=0.05, trail_bodies=True)
    await _register(gw, "TR21")
    stream = '{"id":1,"pending":0,"basetime":"2026-01-01T00:00:00Z","data":[{"t":0,"v":"1"}]}'
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gw.ws_url}/ocpp/TR21", protocols=("ocpp2.1",))
        await ws.send_str('[6,"s-1","NotifyPeriodicEventStream",' + stream + "]")
        await ws.send_str('[5,"r-1","FormatViolation","cannot read it",{}]')
        command = asyncio.create_task(
            gw.admin("POST", "/chargers/TR21/commands/reset", {"type": "soft"})
        )
        call = json.loads((await ws.receive(timeout=5)).data)
        await ws.send_str(json.dumps([3, call[1], {"status": "Sometimes"}]))
        assert json.loads((await ws.receive(timeout=5)).data)[0] == 5
        assert (await command)[0] == 502
        await ws.close()

    async def kinds() -> list[tuple[str, str, str | None, str | None]]:
        _, page = await gw.admin("GET", "/trail", params={"charger_id": "TR21", "limit": "50"})
        return [
            (e["direction"], e["message_type"], e["action"], e["status"]) for e in page["entries"]
        ]

    want = [
        ("in", "SEND", "NotifyPeriodicEventStream", None),
        ("in", "CALLRESULTERROR", None, "FormatViolation"),
        ("out", "CALL", "Reset", None),
        ("in", "CALLRESULT", "Reset", None),
        ("out", "CALLRESULTERROR", "Reset", "PropertyConstraintViolation"),
    ]
    # As a set: the gateway's CALL races the frames received before it.
    for _ in range(200):
        if sorted(await kinds(), key=str) == sorted(want, key=str):
            break
        await asyncio.sleep(0.05)
    got = await kinds()
    assert sorted(got, key=str) == sorted(want, key=str), got
