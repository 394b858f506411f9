"""Answers a charger sends (CALLRESULT / CALLERROR) and the frame size bound.

Found by the fuzz suite: answers to calls the gateway never made were queued without
bound (a charger could grow the gateway's memory), and a frame of exactly
``GATEWAY_MAX_FRAME_BYTES`` was closed although only larger frames should be.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest

from gateway.monitoring import METRICS
from tests.conftest import Gateway
from tests.csms.test_hardening import SUB, exchange, no_tracebacks, register, still_answers

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
async def test_unsolicited_answers_are_dropped_and_a_real_command_still_works(
    gateway: Gateway, version: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await register(gateway, "ANS")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gateway.ws_url}/ocpp/ANS", protocols=(SUB[version],))
        # A flood of answers to calls the gateway never made.
        for i in range(2000):
            await ws.send_str(json.dumps([3, f"never-{i}", {"status": "Accepted"}]))
            await ws.send_str(json.dumps([4, f"nope-{i}", "GenericError", "", {}]))
        await still_answers(ws)
        conn = gateway.csms.connection("ANS")
        assert conn is not None
        queue = conn._responses
        assert queue is None or queue.qsize() == 0, "unsolicited answers were kept"

        # A real command: the charger first answers with a wrong id, then twice with the
        # right one; the command gets the right answer and the repeat is dropped.
        action = "ChangeAvailability"
        body: dict[str, Any] = (
            {"operative": False} if version == "1.6" else {"operative": False, "evse_id": 1}
        )
        command = asyncio.create_task(
            gateway.admin("POST", "/chargers/ANS/commands/change-availability", body)
        )
        msg = await ws.receive(timeout=5)
        call = json.loads(msg.data)
        assert call[0] == 2 and call[2] == action, call
        await ws.send_str(json.dumps([3, "someone-else", {"status": "Rejected"}]))
        await ws.send_str(json.dumps([3, call[1], {"status": "Accepted"}]))
        await ws.send_str(json.dumps([3, call[1], {"status": "Rejected"}]))
        status, answer = await command
        assert status == 200, answer
        assert answer["status"] == "Accepted", answer
        await still_answers(ws)
        queue = conn._responses
        assert queue is None or queue.qsize() == 0
        await ws.close()
    no_tracebacks(caplog)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_frame_of_exactly_the_maximum_size_is_taken(gateway: Gateway) -> None:
    limit = gateway.settings.max_frame_bytes
    await register(gateway, "BIG")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gateway.ws_url}/ocpp/BIG", protocols=("ocpp1.6",))
        head = '[2,"big","DataTransfer",{"vendorId":"v","data":"'
        tail = '"}]'
        exact = head + "x" * (limit - len(head) - len(tail)) + tail
        assert len(exact.encode()) == limit
        answer, _ = await exchange(ws, exact)
        assert answer[:2] == [3, "big"], answer
        await still_answers(ws)
        # One byte more is over the bound: closed with 1009 (message too big).
        await ws.send_str(exact.replace('"data":"', '"data":"y', 1))
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert ws.close_code == 1009
        await ws.close()


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_are_not_json(gateway: Gateway, version: str, literal: str) -> None:
    # Found by the fuzz soak: a 2.0.1 meter value of NaN passed the schema (a number).
    await register(gateway, "NAN")
    rpc = "FormationViolation" if version == "1.6" else "RpcFrameworkError"
    payload = (
        '{"connectorId":1,"meterValue":[{"timestamp":"2026-01-01T00:00:00Z","sampledValue":[{"value":"1"}]}],"x":' + literal + "}"
        if version == "1.6"
        else '{"evseId":1,"meterValue":[{"timestamp":"2026-01-01T00:00:00Z","sampledValue":[{"value":' + literal + "}]}]}"
    )
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gateway.ws_url}/ocpp/NAN", protocols=(SUB[version],))
        answer, _ = await exchange(ws, '[2,"n1","MeterValues",' + payload + "]")
        assert answer[:3] == [4, "-1", rpc], answer
        await still_answers(ws)
        await ws.close()


async def test_a_charger_id_with_a_colon_cannot_have_a_password(gateway: Gateway) -> None:
    # RFC 7617: a Basic auth user name cannot hold ':'; such a charger could never log in.
    status, answer = await gateway.admin(
        "PUT", "/chargers/CP:1", {"password": "a-password-of-20-chars", "evses": []}
    )
    assert status == 422 and answer["field"] == "password", answer
    status, answer = await gateway.admin("PUT", "/chargers/CP:1", {"evses": []})
    assert status == 201, answer  # without a password it is a valid id


# -- OCPP-J 2.1: CALLRESULTERROR ---------------------------------------------------------

# A charger's answer to ChangeAvailability, and what a 2.1 gateway sends back for it:
# the CALLRESULTERROR's code and field (OCPP-J 2.1 4.2.4; codes as for a CALLERROR).
INVALID_RESULTS = [
    ('{"status": "Maybe"}', "PropertyConstraintViolation", "status"),
    ('{"status": 1}', "TypeConstraintViolation", "status"),
    ("{}", "OccurrenceConstraintViolation", "status"),
    ('{"status": "Accepted", "extra": 1}', "FormatViolation", "payload"),
    ('{"status": "Accepted", "statusInfo": {"reasonCode": "' + "r" * 21 + '"}}', "PropertyConstraintViolation", "statusInfo.reasonCode"),
    ("[]", "FormatViolation", None),
    ('"Accepted"', "FormatViolation", None),
]


async def _command_and_its_call(
    gateway: Gateway, ws: aiohttp.ClientWebSocketResponse
) -> tuple[asyncio.Task[tuple[int, Any]], list[Any]]:
    command = asyncio.create_task(
        gateway.admin(
            "POST", "/chargers/ANS/commands/change-availability", {"operative": False, "evse_id": 1}
        )
    )
    msg = await ws.receive(timeout=5)
    call = json.loads(msg.data)
    assert call[0] == 2 and call[2] == "ChangeAvailability", call
    return command, call


@pytest.mark.parametrize(("result", "code", "field"), INVALID_RESULTS)
async def test_an_invalid_answer_from_a_21_charger_gets_a_callresulterror(
    gateway: Gateway, result: str, code: str, field: str | None
) -> None:
    await register(gateway, "ANS")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gateway.ws_url}/ocpp/ANS", protocols=("ocpp2.1",))
        command, call = await _command_and_its_call(gateway, ws)
        await ws.send_str(f'[3,"{call[1]}",{result}]')
        refusal = json.loads((await ws.receive(timeout=5)).data)
        assert refusal[:3] == [5, call[1], code], refusal
        assert refusal[4] == ({"field": field} if field else {}), refusal
        assert "extra" not in refusal[3] and len(json.dumps(refusal)) < 1024
        # The command fails on the refusal (the charger's answer is never taken), and the
        # connection goes on: the refusal is not answered, nor is it answered again.
        status, answer = await command
        assert status == 502 and "invalid answer" in answer["error"], answer
        await ws.send_str(f'[3,"{call[1]}",{{"status":"Accepted"}}]')  # too late: dropped
        await still_answers(ws)
        await ws.close()
    registry = gateway.app[METRICS].registry
    labels = {"direction": "sent", "code": code}
    assert registry.get_sample_value("ocpigw_ocpp_callresulterrors_total", labels) == 1
    labels = {"ocpp_version": "2.1", "action": "ChangeAvailability", "outcome": "invalid"}
    assert registry.get_sample_value("ocpigw_ocpp_calls_sent_total", labels) == 1


async def test_a_20_charger_invalid_answer_gets_no_frame(gateway: Gateway) -> None:
    # OCPP-J 2.0.1 has no CALLRESULTERROR: the command fails, nothing is sent.
    await register(gateway, "ANS")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gateway.ws_url}/ocpp/ANS", protocols=("ocpp2.0.1",))
        command, call = await _command_and_its_call(gateway, ws)
        await ws.send_str(f'[3,"{call[1]}",{{"status":"Maybe"}}]')
        status, _ = await command
        assert status == 502
        await still_answers(ws)  # the next frame is the heartbeat's answer
        await ws.close()


async def test_a_callresulterror_for_a_waiting_call_fails_it_and_is_not_answered(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    await register(gateway, "ANS")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gateway.ws_url}/ocpp/ANS", protocols=("ocpp2.1",))
        command, call = await _command_and_its_call(gateway, ws)
        await ws.send_str(json.dumps([5, call[1], "InternalError", "could not", {}]))
        status, answer = await command
        assert status == 502 and "InternalError" in answer["error"], answer
        await still_answers(ws)
        await ws.close()
    assert any("CALLRESULTERROR" in r.getMessage() for r in caplog.records)
    registry = gateway.app[METRICS].registry
    labels = {"direction": "received", "code": "InternalError"}
    assert registry.get_sample_value("ocpigw_ocpp_callresulterrors_total", labels) == 1
