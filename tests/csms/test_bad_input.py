"""Bad frames and payloads get the right CALLERROR; the connection and other chargers live on."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import Gateway


async def _register(gw: Gateway, *ids: str) -> None:
    for cp_id in ids:
        status, _ = await gw.admin("PUT", f"/chargers/{cp_id}", {"evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]})
        assert status == 201


async def _raw(gw: Gateway, cp_id: str, subprotocol: str, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
    return await session.ws_connect(f"{gw.ws_url}/ocpp/{cp_id}", protocols=(subprotocol,))


async def _exchange(ws: aiohttp.ClientWebSocketResponse, frame: str) -> list[Any]:
    await ws.send_str(frame)
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return list(json.loads(msg.data))


HEARTBEAT = '[2,"hb","Heartbeat",{}]'

# (frame, expected 1.6 answer (id, code), expected 2.0.1 answer (id, code))
CASES = [
    ("not json", ("-1", "FormationViolation"), ("-1", "RpcFrameworkError")),
    ('{"a": 1}', ("-1", "FormationViolation"), ("-1", "RpcFrameworkError")),
    ("[]", ("-1", "FormationViolation"), ("-1", "RpcFrameworkError")),
    ("[2]", ("-1", "FormationViolation"), ("-1", "RpcFrameworkError")),
    ("[2, 17, \"Heartbeat\", {}]", ("-1", "FormationViolation"), ("-1", "RpcFrameworkError")),
    ('[9,"m1","Heartbeat",{}]', ("m1", "FormationViolation"), ("m1", "MessageTypeNotSupported")),
    ('[2,"m2","Heartbeat"]', ("m2", "FormationViolation"), ("m2", "FormatViolation")),
    ('[2,"m3","Heartbeat",[]]', ("m3", "FormationViolation"), ("m3", "FormatViolation")),
    ('[2,"m4","FooBar",{}]', ("m4", "NotImplemented"), ("m4", "NotImplemented")),
    ('[2,"m6","Heartbeat",{"extra":1}]', ("m6", "FormationViolation"), ("m6", "FormatViolation")),
]
V16_CASES = [
    # A real 1.6 action the central system does not receive: known, not supported.
    ('[2,"m5","RemoteStartTransaction",{"idTag":"x"}]', "m5", "NotSupported", None),
    ('[2,"m7","StatusNotification",{"connectorId":"1","errorCode":"NoError","status":"Available"}]', "m7", "TypeConstraintViolation", "connectorId"),
    ('[2,"m8","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Sleeping"}]', "m8", "PropertyConstraintViolation", "status"),
    ('[2,"m9","StatusNotification",{"connectorId":1,"status":"Available"}]', "m9", "OccurenceConstraintViolation", "errorCode"),
    ('[2,"m10","Authorize",{"idTag":"' + "x" * 21 + '"}]', "m10", "PropertyConstraintViolation", "idTag"),
    ('[2,"m11","StartTransaction",{"connectorId":1,"idTag":"a","meterStart":0,"timestamp":"yesterday"}]', "m11", "PropertyConstraintViolation", "timestamp"),
]
V201_CASES = [
    ('[2,"n5","RequestStartTransaction",{}]', "n5", "NotSupported", None),
    ('[2,"n7","StatusNotification",{"timestamp":"2026-01-01T00:00:00Z","connectorStatus":"Available","evseId":"1","connectorId":1}]', "n7", "TypeConstraintViolation", "evseId"),
    ('[2,"n8","StatusNotification",{"timestamp":"2026-01-01T00:00:00Z","connectorStatus":"Sleeping","evseId":1,"connectorId":1}]', "n8", "PropertyConstraintViolation", "connectorStatus"),
    ('[2,"n9","BootNotification",{"reason":"PowerUp","chargingStation":{"model":"m"}}]', "n9", "OccurrenceConstraintViolation", "chargingStation.vendorName"),
    ('[2,"n10","TransactionEvent",{"eventType":"Started","timestamp":"2026-01-01T00:00:00Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"t1"}}]', "n10", "OccurrenceConstraintViolation", "evse"),
]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_bad_frames(gateway: Gateway, version: str) -> None:
    await _register(gateway, "BAD", "GOOD")
    sub = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    extra = V16_CASES if version == "1.6" else V201_CASES
    async with aiohttp.ClientSession() as session:
        bad = await _raw(gateway, "BAD", sub, session)
        good = await _raw(gateway, "GOOD", sub, session)
        for frame, v16, v201 in CASES:
            want_id, want_code = v16 if version == "1.6" else v201
            answer = await _exchange(bad, frame)
            assert answer[0] == 4, (frame, answer)
            assert (answer[1], answer[2]) == (want_id, want_code), frame
            assert "extra" not in json.dumps(answer[4])  # the payload is not echoed
        for frame, want_id, want_code, field in extra:
            answer = await _exchange(bad, frame)
            assert answer[:3] == [4, want_id, want_code], (frame, answer)
            if field:
                assert answer[4] == {"field": field}
                assert field in answer[3]
        # The connection is still up and answers, and so is the other charger.
        assert (await _exchange(bad, HEARTBEAT))[0] == 3
        assert (await _exchange(good, HEARTBEAT))[0] == 3
        # A binary frame is refused, the connection stays.
        await bad.send_bytes(b"[2,\"b\",\"Heartbeat\",{}]")
        msg = await bad.receive(timeout=5)
        assert json.loads(msg.data)[:2] == [4, "-1"]
        # A frame over the size bound closes that connection (RFC 6455 1009) only.
        await bad.send_str('[2,"big","DataTransfer",{"vendorId":"v","data":"' + "x" * 70_000 + '"}]')
        msg = await bad.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert bad.close_code == 1009
        assert (await _exchange(good, HEARTBEAT))[0] == 3
        await good.close()


async def test_unknown_charger_refused_with_404(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(f"{gateway.ws_url}/ocpp/STRANGER", protocols=("ocpp1.6",))
        assert err.value.status == 404


async def test_auto_register(gateways: Any) -> None:
    gw = await gateways.start(auto_register=True)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gw.ws_url}/ocpp/NEWBIE", protocols=("ocpp1.6",))
        assert (await _exchange(ws, HEARTBEAT))[0] == 3
        await ws.close()
    status, body = await gw.admin("GET", "/chargers/NEWBIE")
    assert status == 200
    assert body["id"] == "NEWBIE"


async def test_subprotocol_negotiation(gateway: Gateway) -> None:
    await _register(gateway, "NEG")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gateway.ws_url}/ocpp/NEG", protocols=("ocpp1.6", "ocpp2.0.1"))
        assert ws.protocol == "ocpp2.0.1"  # 2.0.1 preferred whatever the client's order
        await ws.close()
        ws = await session.ws_connect(f"{gateway.ws_url}/ocpp/NEG", protocols=("ocpp1.5",))
        assert ws.protocol is None
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1002
        await ws.close()


async def test_percent_encoded_charger_id(gateway: Gateway) -> None:
    # Any printable id but "/" (tests/csms/test_hardening.py has the refusals).
    status, _ = await gateway.admin("PUT", "/chargers/CP%20A%3A1", {})
    assert status == 201
    status, body = await gateway.admin("GET", "/chargers/CP%20A%3A1")
    assert body["id"] == "CP A:1"
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gateway.ws_url}/ocpp/CP%20A%3A1", protocols=("ocpp1.6",))
        assert (await _exchange(ws, HEARTBEAT))[0] == 3
        await ws.close()
