"""Bad frames and payloads get the right CALLERROR; the connection and other chargers live on."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from gateway.monitoring import METRICS
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

SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1", "2.1": "ocpp2.1"}

# (frame, expected 1.6 answer (id, code), expected 2.0.1 and 2.1 answer (id, code)):
# OCPP-J 2.1 keeps 2.0.1's rules and codes for these.
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
    ('[2,"' + "i" * 37 + '","Heartbeat",{}]', ("-1", "FormationViolation"), ("-1", "RpcFrameworkError")),
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


# 2.1 against its own schemas: what 2.0.1 refused may pass (id token types are free
# strings of up to 20 characters, id tokens up to 255), and new minimums refuse what
# 2.0.1 took. Expected None: answered with a CALLRESULT.
V21_CASES = [
    ('[2,"p5","RequestStartTransaction",{}]', "p5", "NotSupported", None),
    ('[2,"p6","OpenPeriodicEventStream",{"constantStreamData":{"id":1,"variableMonitoringId":1,"params":{}}}]', "p6", "NotSupported", None),
    ('[2,"p7","NotifyPeriodicEventStream",{"id":1,"pending":0,"basetime":"2026-01-01T00:00:00Z","data":[{"t":0,"v":"1"}]}]', "p7", "NotSupported", None),
    ('[2,"p8","Authorize",{"idToken":{"idToken":"x","type":"VIN"}}]', "p8", None, None),
    ('[2,"p9","Authorize",{"idToken":{"idToken":"' + "x" * 40 + '","type":"ISO14443"}}]', "p9", None, None),
    ('[2,"p10","Authorize",{"idToken":{"idToken":"x","type":"' + "T" * 21 + '"}}]', "p10", "PropertyConstraintViolation", "idToken.type"),
    ('[2,"p11","StatusNotification",{"timestamp":"2026-01-01T00:00:00Z","connectorStatus":"Available","evseId":-1,"connectorId":1}]', "p11", "PropertyConstraintViolation", "evseId"),
    ('[2,"p12","StatusNotification",{"timestamp":"2026-01-01T00:00:00Z","connectorStatus":"Available","evseId":"1","connectorId":1}]', "p12", "TypeConstraintViolation", "evseId"),
    ('[2,"p13","BootNotification",{"reason":"PowerUp","chargingStation":{"model":"m"}}]', "p13", "OccurrenceConstraintViolation", "chargingStation.vendorName"),
    ('[2,"p14","TransactionEvent",{"eventType":"Started","timestamp":"2026-01-01T00:00:00Z","triggerReason":"TariffChanged","seqNo":0,"transactionInfo":{"transactionId":"t1"}}]', "p14", "OccurrenceConstraintViolation", "evse"),
    ('[2,"p15","TransactionEvent",{"eventType":"Started","timestamp":"2026-01-01T00:00:00Z","triggerReason":"Authorized","seqNo":-1,"transactionInfo":{"transactionId":"t1"},"evse":{"id":1}}]', "p15", "PropertyConstraintViolation", "seqNo"),
    ('[2,"p16","FirmwareStatusNotification",{"status":"Installed","statusInfo":{}}]', "p16", "OccurrenceConstraintViolation", "statusInfo.reasonCode"),
    ('[2,"p17","Heartbeat",{"customData":{"vendorId":"v","x":1}}]', "p17", None, None),
]
# The same three 2.1-valid frames refused by 2.0.1.
V201_CASES += [
    ('[2,"n11","Authorize",{"idToken":{"idToken":"x","type":"VIN"}}]', "n11", "PropertyConstraintViolation", "idToken.type"),
    ('[2,"n12","Authorize",{"idToken":{"idToken":"' + "x" * 40 + '","type":"ISO14443"}}]', "n12", "PropertyConstraintViolation", "idToken.idToken"),
    ('[2,"n13","FirmwareStatusNotification",{"status":"Installed","statusInfo":{"reasonCode":"x"}}]', "n13", "FormatViolation", "payload"),
]
EXTRA = {"1.6": V16_CASES, "2.0.1": V201_CASES, "2.1": V21_CASES}


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
async def test_bad_frames(gateway: Gateway, version: str) -> None:
    await _register(gateway, "BAD", "GOOD")
    sub = SUBPROTOCOL[version]
    extra = EXTRA[version]
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
            if want_code is None:
                assert answer[:2] == [3, want_id], (frame, answer)
                continue
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
        # The newest version the charger offers, whatever the order of its offer.
        for offered, chosen in [
            (("ocpp1.6", "ocpp2.0.1"), "ocpp2.0.1"),
            (("ocpp1.6", "ocpp2.0.1", "ocpp2.1"), "ocpp2.1"),
            (("ocpp2.1", "ocpp1.6"), "ocpp2.1"),
            (("ocpp2.0.1", "ocpp2.1"), "ocpp2.1"),
            (("ocpp1.5", "ocpp2.1"), "ocpp2.1"),
        ]:
            ws = await session.ws_connect(f"{gateway.ws_url}/ocpp/NEG", protocols=offered)
            assert ws.protocol == chosen, offered
            # The connection speaks the chosen version: its metrics label and framing.
            answer = await _exchange(ws, '[9,"t","Heartbeat",{}]')
            assert answer[:3] == [4, "t", "MessageTypeNotSupported"], offered
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


STREAM = '{"id":1,"pending":0,"basetime":"2026-01-01T00:00:00Z","data":[{"t":0.5,"v":"230.1"}]}'
# OCPP-J 2.1 4.2.4 / 4.2.5: CALLRESULTERROR and SEND frames are never answered, whatever
# they hold (the gateway has no CALL of its own waiting here).
UNANSWERED_21 = [
    '[5,"r1","FormatViolation","bad answer",{}]',
    '[5,"r2","NoSuchCode","",{}]',
    '[5,"r3"]',
    "[5]",
    '[5,17,"GenericError","",{}]',
    '[5,"' + "r" * 40 + '","GenericError","",{}]',
    '[6,"s1","NotifyPeriodicEventStream",' + STREAM + "]",
    '[6,"s2","NotifyPeriodicEventStream",{"id":1}]',
    '[6,"s3","NotifyPeriodicEventStream",{"id":-1,"pending":0,"basetime":"x","data":[]}]',
    '[6,"s4","Heartbeat",{}]',
    '[6,"s5","FooBar",{}]',
    '[6,"s6","NotifyPeriodicEventStream"]',
    '[6,"s7","NotifyPeriodicEventStream",[]]',
    "[6,null,null,null]",
    '[6,"' + "s" * 40 + '","NotifyPeriodicEventStream",' + STREAM + "]",
]


async def test_callresulterror_and_send_are_never_answered_in_21(gateway: Gateway) -> None:
    await _register(gateway, "UNANS")
    async with aiohttp.ClientSession() as session:
        ws = await _raw(gateway, "UNANS", "ocpp2.1", session)
        for frame in UNANSWERED_21:
            await ws.send_str(frame)
            # The next frame the gateway sends is the Heartbeat's answer: nothing came
            # for the frame before it.
            answer = await _exchange(ws, HEARTBEAT)
            assert answer[:2] == [3, "hb"], (frame, answer)
        await ws.close()
    registry = gateway.app[METRICS].registry

    def count(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"ocpigw_ocpp_{name}_total", labels)

    sends = "sends_received"
    assert count(sends, ocpp_version="2.1", action="NotifyPeriodicEventStream", outcome="handled") == 1
    assert count(sends, ocpp_version="2.1", action="NotifyPeriodicEventStream", outcome="dropped") == 2
    assert count(sends, ocpp_version="2.1", action="unknown", outcome="dropped") == 6
    assert count("callresulterrors", direction="received", code="FormatViolation") == 1
    assert count("callresulterrors", direction="received", code="GenericError") == 2
    assert count("callresulterrors", direction="received", code="other") == 3  # no code
    assert count("callerrors", direction="sent", code="MessageTypeNotSupported") is None


@pytest.mark.parametrize(("version", "code"), [("1.6", "FormationViolation"), ("2.0.1", "MessageTypeNotSupported")])
async def test_message_types_5_and_6_are_unknown_before_21(gateway: Gateway, version: str, code: str) -> None:
    await _register(gateway, "OLD")
    async with aiohttp.ClientSession() as session:
        ws = await _raw(gateway, "OLD", SUBPROTOCOL[version], session)
        answer = await _exchange(ws, '[5,"r1","FormatViolation","bad answer",{}]')
        assert answer[:3] == [4, "r1", code], answer
        answer = await _exchange(ws, '[6,"s1","NotifyPeriodicEventStream",' + STREAM + "]")
        assert answer[:3] == [4, "s1", code], answer
        assert (await _exchange(ws, HEARTBEAT))[0] == 3
        await ws.close()
