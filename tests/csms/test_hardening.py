"""Issue 9, OCPP side: interoperability and hardening against odd chargers.

Chargers are the ``ocpp`` library's ChargePoints (tests/sim.py) or raw aiohttp
WebSockets for frames no library would send, against the real app on both
storage backends. After every bad frame the same socket still answers a valid
CALL, and no log record carries a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from gateway import logsafe
from gateway.csms.identity import charger_id_problem
from gateway.csms.v201 import id_token_type
from gateway.domain.models import TokenType
from tests.conftest import FakeClock, Gateway, GatewayFactory
from tests.sim import Charger16, Charger201, WsAdapter, basic

HEARTBEAT = '[2,"hb","Heartbeat",{}]'
SUB = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1", "2.1": "ocpp2.1"}


# -- helpers -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sim(gw: Gateway, cp_id: str, version: str) -> AsyncIterator[Any]:
    """A library charger of ``version`` running its receive loop while the block runs."""
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gw.ws_url}/ocpp/{cp_id}", protocols=(SUB[version],))
        cp: Any = (Charger201 if version == "2.0.1" else Charger16)(cp_id, WsAdapter(ws))
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
            await ws.close()


async def register(gw: Gateway, *ids: str, password: str | None = None) -> None:
    for cp_id in ids:
        body: dict[str, Any] = {"evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]}
        if password is not None:
            body["password"] = password
        status, answer = await gw.admin("PUT", f"/chargers/{cp_id}", body)
        assert status == 201, answer


async def exchange(ws: aiohttp.ClientWebSocketResponse, frame: str) -> tuple[list[Any], str]:
    """Send ``frame``; the parsed answer and its raw text."""
    await ws.send_str(frame)
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return list(json.loads(msg.data)), str(msg.data)


async def still_answers(ws: aiohttp.ClientWebSocketResponse) -> None:
    answer, _ = await exchange(ws, HEARTBEAT)
    assert answer[:2] == [3, "hb"], answer


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


async def poll(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(100):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def frame(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return json.dumps([2, message_id, action, payload])


# -- 8: 2.0.1 DataTransfer ------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_data_transfer_is_unknown_vendor_in_both_versions(gateway: Gateway) -> None:
    await register(gateway, "DT16", "DT201")
    async with sim(gateway, "DT201", "2.0.1") as cp:
        answer = await cp.call(call201.DataTransfer(vendor_id="com.example", data={"a": 1}))
        assert answer.status == "UnknownVendorId"
    async with sim(gateway, "DT16", "1.6") as cp:
        answer = await cp.call(call16.DataTransfer(vendor_id="com.example", data="x"))
        assert answer.status == "UnknownVendorId"


# -- 9: id token types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token_type", "uid", "contract_id", "expected"),
    [
        (TokenType.RFID, "04A1B2C3", "NL-ABC-C12345678-X", "ISO14443"),
        (TokenType.RFID, "04A1B2C3", None, "ISO14443"),
        (TokenType.APP_USER, "app-7f3a", "NL-ABC-C12345678-X", "Central"),
        (TokenType.AD_HOC_USER, "adhoc-1", "NL-ABC-C00000001-X", "Central"),
        (TokenType.OTHER, "other-1", "NL-ABC-C00000002-X", "Central"),
        (TokenType.RFID, "NLABCC12345678X", "NLABCC12345678X", "eMAID"),
        (TokenType.APP_USER, "NLABCC12345678X", "NLABCC12345678X", "eMAID"),
        (None, "made-up", None, "Central"),
    ],
)
def test_id_token_type_table(
    token_type: TokenType | None, uid: str, contract_id: str | None, expected: str
) -> None:
    assert id_token_type(token_type, uid, contract_id) == expected


async def test_start_and_reservation_carry_the_same_stored_token_type(gateway: Gateway) -> None:
    await register(gateway, "TT1")
    assert (await gateway.admin("PUT", "/tokens/CARD1", {"type": "RFID"}))[0] == 201
    status, _ = await gateway.admin(
        "PUT", "/tokens/NLABCC1234567X", {"type": "RFID", "contract_id": "NLABCC1234567X"}
    )
    assert status == 201
    async with sim(gateway, "TT1", "2.0.1") as cp:
        for uid, expected in (("CARD1", "ISO14443"), ("NLABCC1234567X", "eMAID"), ("NOBODY", "Central")):
            cp.received.clear()
            status, body = await gateway.admin(
                "POST", "/chargers/TT1/commands/remote-start", {"id_token": uid, "evse_id": 1}
            )
            assert status == 200, body
            status, body = await gateway.admin(
                "POST",
                "/chargers/TT1/commands/reserve-now",
                {"reservation_id": 7, "id_token": uid, "expiry": "2030-01-01T00:00:00Z", "evse_id": 1},
            )
            assert status == 200, body
            tokens = {name: kwargs["id_token"] for name, kwargs in cp.received}
            assert tokens["RequestStartTransaction"] == {"id_token": uid, "type": expected}
            assert tokens["ReserveNow"] == {"id_token": uid, "type": expected}


# -- 10: request ids ------------------------------------------------------------------------


async def test_firmware_and_log_requests_get_unique_ids_and_their_notifications(
    gateway: Gateway,
) -> None:
    await register(gateway, "RQ201")
    async with sim(gateway, "RQ201", "2.0.1") as cp:
        ids = []
        for _ in range(2):
            status, body = await gateway.admin(
                "POST",
                "/chargers/RQ201/commands/update-firmware",
                {"location": "https://fw.example/1.bin", "retrieve_at": "2030-01-01T00:00:00Z"},
            )
            assert status == 200, body
            ids.append(body["request_id"])
        status, body = await gateway.admin(
            "POST",
            "/chargers/RQ201/commands/get-log",
            {"location": "https://logs.example/", "log_type": "SecurityLog"},
        )
        assert status == 200, body
        log_id = body["request_id"]
        assert len({*ids, log_id}) == 3
        sent = [(name, kwargs) for name, kwargs in cp.received]
        assert [k["request_id"] for n, k in sent if n == "UpdateFirmware"] == ids
        assert [(k["request_id"], k["log_type"]) for n, k in sent if n == "GetLog"] == [
            (log_id, "SecurityLog")
        ]
        # A caller's own request id is kept.
        status, body = await gateway.admin(
            "POST",
            "/chargers/RQ201/commands/get-log",
            {"location": "https://logs.example/", "request_id": 4242},
        )
        assert (status, body["request_id"]) == (200, 4242)
        assert cp.received[-1][1]["log_type"] == "DiagnosticsLog"

        await cp.call(call201.FirmwareStatusNotification(status="Downloading", request_id=ids[0]))
        await cp.call(call201.FirmwareStatusNotification(status="Installed", request_id=ids[1]))
        await cp.call(call201.LogStatusNotification(status="Uploading", request_id=log_id))

        status, view = await gateway.admin("GET", "/chargers/RQ201")
        assert status == 200
        by_id = {r["request_id"]: r for r in view["requests"]}
        assert by_id[ids[0]]["command"] == "UpdateFirmware"
        assert by_id[ids[0]]["status"] == "Downloading"
        assert by_id[ids[1]]["status"] == "Installed"
        assert by_id[log_id]["command"] == "GetLog"
        assert by_id[log_id]["log_type"] == "SecurityLog"
        assert by_id[log_id]["status"] == "Uploading"
        assert by_id[log_id]["answer"] == "Accepted"
        assert by_id[4242]["status"] is None  # nothing heard about that one yet
        assert [r["request_id"] for r in view["requests"]] == [4242, log_id, ids[1], ids[0]]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_v16_diagnostics_notifications_belong_to_the_latest_request(
    gateway: Gateway,
) -> None:
    await register(gateway, "RQ16")
    async with sim(gateway, "RQ16", "1.6") as cp:
        ids = []
        for _ in range(2):
            status, body = await gateway.admin(
                "POST", "/chargers/RQ16/commands/get-diagnostics", {"location": "ftp://d.example/"}
            )
            assert status == 200, body
            ids.append(body["request_id"])
        assert ids[0] != ids[1]
        status, body = await gateway.admin(
            "POST",
            "/chargers/RQ16/commands/get-log",
            {"location": "ftp://d.example/", "log_type": "SecurityLog"},
        )
        assert status == 422, body
        await cp.call(call16.DiagnosticsStatusNotification(status="Uploaded"))
        _, view = await gateway.admin("GET", "/chargers/RQ16")
        by_id = {r["request_id"]: r for r in view["requests"]}
        assert by_id[ids[1]]["status"] == "Uploaded"
        assert by_id[ids[1]]["command"] == "GetDiagnostics"
        assert by_id[ids[0]]["status"] is None


# -- 11: no registration without a subprotocol ----------------------------------------------


async def test_charger_without_a_supported_subprotocol_is_not_auto_registered(
    gateways: GatewayFactory,
) -> None:
    gw = await gateways.start(auto_register=True)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(f"{gw.ws_url}/ocpp/OLDTIMER", protocols=("ocpp1.5",))
        assert err.value.status == 404
        assert (await gw.admin("GET", "/chargers/OLDTIMER"))[0] == 404
        # With a version it speaks, the same charger is registered.
        ws = await session.ws_connect(f"{gw.ws_url}/ocpp/OLDTIMER", protocols=("ocpp1.6",))
        await still_answers(ws)
        await ws.close()
    assert (await gw.admin("GET", "/chargers/OLDTIMER"))[0] == 200


# -- 12 and 14: deep nesting, bounded answers ----------------------------------------------


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
async def test_nesting_and_sizes_are_answered_within_bounds(
    gateway: Gateway, version: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await register(gateway, "NEST")
    rpc = "FormationViolation" if version == "1.6" else "RpcFrameworkError"
    fmt = "FormationViolation" if version == "1.6" else "FormatViolation"
    unknown_type = "FormationViolation" if version == "1.6" else "MessageTypeNotSupported"
    long_action = "X" * 20_000
    cases: list[tuple[str, str, str]] = [
        # about 1,000 levels in 2 kB: json.loads gives up (RecursionError)
        (_deep(1000), "-1", rpc),
        ('[2,"d1","Heartbeat",{"customData":{"vendorId":"v","x":' + _deep(1000) + "}}]", "-1", rpc),
        # parseable, but deeper than any OCPP payload: refused, with its id
        ('[2,"d2","Heartbeat",{"customData":{"vendorId":"v","x":' + _deep(200) + "}}]", "d2", fmt),
        # a message id longer than 36 characters (OCPP-J) is not echoed either
        (frame("i" * 37, "Heartbeat", {}), "-1", rpc),
        (frame("j" * 5000, "Heartbeat", {}), "-1", rpc),
        (frame("m" * 36, long_action, {}), "m" * 36, "NotImplemented"),
        (frame("u1", "\u00e9" * 5000, {}), "u1", "NotImplemented"),
        (json.dumps(["x" * 20_000, "t1", "Heartbeat", {}]), "t1", unknown_type),
        (json.dumps([[1] * 3000, "t2"]), "t2", unknown_type),
    ]
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gateway.ws_url}/ocpp/NEST", protocols=(SUB[version],))
        # Answers are never answered, whatever their id: the next answer is the heartbeat's.
        for answer_frame in ('[3,"' + "a" * 37 + '",{}]', '[4,"' + "b" * 37 + '","GenericError","x",{}]'):
            await ws.send_str(answer_frame)
            await still_answers(ws)
        for text, want_id, want_code in cases:
            answer, raw = await exchange(ws, text)
            assert answer[:3] == [4, want_id, want_code], (text[:80], answer)
            assert len(raw.encode()) < 1024, (text[:80], len(raw))
            assert "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX" not in raw
            await still_answers(ws)
        await ws.close()
    no_tracebacks(caplog)


# -- 13: values the schemas allow but storage cannot hold --------------------------------

V16_EDGE = [
    ("StatusNotification", {"connectorId": 2**70, "errorCode": "NoError", "status": "Available"}, "PropertyConstraintViolation", "connectorId"),
    ("StatusNotification", {"connectorId": -(2**63) - 1, "errorCode": "NoError", "status": "Available"}, "PropertyConstraintViolation", "connectorId"),
    ("Authorize", {"idTag": "\ud800"}, "PropertyConstraintViolation", "idTag"),
    ("StartTransaction", {"connectorId": 1, "idTag": "A\udfff", "meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"}, "PropertyConstraintViolation", "idTag"),
    ("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 2**64, "timestamp": "2026-01-01T00:00:00Z"}, "PropertyConstraintViolation", "meterStart"),
    ("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 10**18, "timestamp": "2026-01-01T00:00:00Z"}, "PropertyConstraintViolation", "meterStart"),
    ("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": "0001-01-01T00:00:00+01:00"}, "PropertyConstraintViolation", "timestamp"),
    ("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": "9999-12-31T23:59:59-01:00"}, "PropertyConstraintViolation", "timestamp"),
    ("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": "0001-01-01T00:00:00Z"}, "PropertyConstraintViolation", "timestamp"),
    ("StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": "9999-12-31T23:59:59.999Z"}, "PropertyConstraintViolation", "timestamp"),
    ("StopTransaction", {"transactionId": 2**80, "meterStop": 1, "timestamp": "2026-01-01T00:00:00Z"}, "PropertyConstraintViolation", "transactionId"),
    ("MeterValues", {"connectorId": 1, "transactionId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "1e999999"}]}]}, "PropertyConstraintViolation", "meterValue[0].sampledValue[0].value"),
    ("MeterValues", {"connectorId": 1, "transactionId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "NaN"}]}]}, "PropertyConstraintViolation", "meterValue[0].sampledValue[0].value"),
]
TX201 = {"eventType": "Started", "timestamp": "2026-01-01T00:00:00Z", "triggerReason": "Authorized", "seqNo": 0, "transactionInfo": {"transactionId": "t-1"}, "evse": {"id": 1, "connectorId": 1}}
V201_EDGE = [
    ("StatusNotification", {"timestamp": "2026-01-01T00:00:00Z", "connectorStatus": "Available", "evseId": 2**63, "connectorId": 1}, "PropertyConstraintViolation", "evseId"),
    ("StatusNotification", {"timestamp": "0001-01-01T00:30:00+01:00", "connectorStatus": "Available", "evseId": 1, "connectorId": 1}, "PropertyConstraintViolation", "timestamp"),
    ("TransactionEvent", TX201 | {"transactionInfo": {"transactionId": "\udc00"}}, "PropertyConstraintViolation", "transactionInfo.transactionId"),
    ("TransactionEvent", TX201 | {"evse": {"id": 10**25}}, "PropertyConstraintViolation", "evse.id"),
    ("TransactionEvent", TX201 | {"seqNo": 2**64}, "PropertyConstraintViolation", "seqNo"),
    ("TransactionEvent", TX201 | {"meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": 10**30}]}]}, "PropertyConstraintViolation", "meterValue[0].sampledValue[0].value"),
    ("TransactionEvent", TX201 | {"meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": 1e300}]}]}, "PropertyConstraintViolation", "meterValue[0].sampledValue[0].value"),
    ("TransactionEvent", TX201 | {"meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": 5, "unitOfMeasure": {"unit": "Wh", "multiplier": 100000}}]}]}, "PropertyConstraintViolation", "meterValue[0].sampledValue[0].unitOfMeasure.multiplier"),
    ("Authorize", {"idToken": {"idToken": "\ud83d", "type": "ISO14443"}}, "PropertyConstraintViolation", "idToken.idToken"),
    ("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": "9999-12-31T23:59:59-01:00", "sampledValue": [{"value": 1}]}]}, "PropertyConstraintViolation", "meterValue[0].timestamp"),
]


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
async def test_values_storage_cannot_hold_get_a_fitting_callerror(
    gateway: Gateway, version: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await register(gateway, "EDGE")
    cases = V16_EDGE if version == "1.6" else V201_EDGE
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gateway.ws_url}/ocpp/EDGE", protocols=(SUB[version],))
        for i, (action, payload, code, field) in enumerate(cases):
            answer, _ = await exchange(ws, frame(f"e{i}", action, payload))
            assert answer[:3] == [4, f"e{i}", code], (action, payload, answer)
            assert answer[4] == {"field": field}, (action, answer)
            await still_answers(ws)
        # Nothing of it reached storage: the charger's records read back fine.
        status, view = await gateway.admin("GET", "/chargers/EDGE")
        assert status == 200
        assert view["connectors"] == []
        status, txs = await gateway.admin("GET", "/transactions?charger_id=EDGE")
        assert (status, txs) == (200, [])
        # Edge values that fit are stored and read back: a 1970 clock, a 63-bit id.
        if version == "1.6":
            ok = frame("ok", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": "1970-01-01T00:00:00Z"})
        else:
            ok = frame("ok", "StatusNotification", {"timestamp": "1970-01-01T00:00:00+00:00", "connectorStatus": "Available", "evseId": 2**63 - 1, "connectorId": 1})
        answer, _ = await exchange(ws, ok)
        assert answer == [3, "ok", {}]
        status, view = await gateway.admin("GET", "/chargers/EDGE")
        assert view["connectors"][0]["timestamp"].startswith("1970-01-01T00:00:00")
        await ws.close()
    no_tracebacks(caplog)


# -- 15: charge point ids ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cp_id", "ok"),
    [
        ("CP-1", True),
        ("CP A:1", True),
        ("x" * 48, True),
        ("x" * 49, False),
        ("", False),
        ("A/B", False),
        ("A\r\nB", False),
        ("A\x00", False),
        ("A\tB", False),
        ("A\u2028B", False),
        ("A\x85B", False),
    ],
)
def test_charger_id_rule(cp_id: str, ok: bool) -> None:
    assert (charger_id_problem(cp_id) is None) is ok


async def test_invalid_charger_ids_are_refused_everywhere(
    gateways: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gw = await gateways.start(auto_register=True)
    bad = ["EVIL%0D%0A2026-01-01 INFO forged", "A%2FB", "A%00B", "A%09B", "x" * 49]
    async with aiohttp.ClientSession() as session:
        for raw in bad:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await session.ws_connect(f"{gw.ws_url}/ocpp/{raw}", protocols=("ocpp1.6",))
            assert err.value.status == 400, raw
    for raw in bad:
        status, answer = await gw.admin("PUT", f"/chargers/{raw}", {})
        assert status == 400, (raw, answer)
        assert answer["field"] == "charger_id"
    assert (await gw.admin("GET", "/chargers"))[1] == []
    # Nothing of the id reached a log record raw.
    for record in caplog.records:
        assert "\r" not in record.getMessage() and "\n" not in record.getMessage()
    no_tracebacks(caplog)


def test_log_lines_never_carry_raw_control_characters() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.logsafe")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logsafe.install(logger)
        logsafe.install(logger)  # idempotent
        assert len(handler.filters) == 1
        logger.warning("charger %s: hello", "EVIL\r\nINFO forged\x1b[31m\u2028\ud800")
        logger.warning("plain %s", "CP-1")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = out.getvalue().splitlines()
    assert lines == [
        "WARNING charger EVIL\\x0d\\x0aINFO forged\\x1b[31m\\u2028\\ud800: hello",
        "WARNING plain CP-1",
    ]


# -- 18: unauthenticated upgrades per address --------------------------------------------


async def test_unauthenticated_upgrades_per_address_are_bounded(
    gateways: GatewayFactory,
) -> None:
    clock = FakeClock()
    gw = await gateways.start(
        clock=clock, unauthenticated_per_minute=4, unauthenticated_per_address=2
    )
    password = "correct horse battery"
    await register(gw, "OPEN1", "OPEN2", "OPEN3")
    secure = [f"SECURE{i}" for i in range(6)]
    await register(gw, *secure, password=password)
    url = gw.ws_url + "/ocpp/"

    async def refused(session: aiohttp.ClientSession, cp_id: str, **kw: Any) -> int:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(url + cp_id, protocols=("ocpp1.6",), **kw)
        return err.value.status

    async with aiohttp.ClientSession() as session:
        open1 = await session.ws_connect(url + "OPEN1", protocols=("ocpp1.6",))
        open2 = await session.ws_connect(url + "OPEN2", protocols=("ocpp1.6",))
        # Two unauthenticated connections open: the third is refused.
        assert await refused(session, "OPEN3") == 429
        # An unknown id takes the last attempt; then every unauthenticated one is 429.
        assert await refused(session, "STRANGER") == 404
        assert await refused(session, "STRANGER") == 429
        assert await refused(session, "SECURE0", headers=basic("SECURE0", "wrong password!!")) == 429
        assert await refused(session, "BAD%0AID") == 429  # an invalid id is an attempt too
        # Chargers that authenticate, behind the same address, are never refused.
        held = [
            await session.ws_connect(url + cp_id, protocols=("ocpp1.6",), headers=basic(cp_id, password))
            for cp_id in secure
        ]
        for ws in (*held, open1, open2):
            await still_answers(ws)
        # A minute later the attempts are back; a closed connection frees its place.
        clock.advance(60)
        await open1.close()

        async def third_connects() -> bool:
            try:
                ws = await session.ws_connect(url + "OPEN3", protocols=("ocpp1.6",))
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status != 429:
                    raise
                return False
            await still_answers(ws)
            await ws.close()
            return True

        await poll(third_connects, "OPEN3 to connect once OPEN1 closed")
        for ws in (*held, open2):
            await ws.close()


async def test_roaming_start_and_reservation_carry_the_emsp_token_type(
    gateways: GatewayFactory,
) -> None:
    from tests.roaming.emsp import EmspPlatform, token_header
    from tests.roaming.test_catalog import LOCATION, TARIFF

    emsp = EmspPlatform()
    await emsp.start()
    try:
        gw = await gateways.start(clock=FakeClock())
        _, partner = await gw.admin("POST", "/partners", {"name": "eMSP"})
        status, _ = await gw.admin(
            "POST",
            f"/partners/{partner['id']}/register",
            {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a},
        )
        assert status == 200
        assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
        assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
        body = {"location_id": "LOC1", "evses": [{"ocpp_id": 1, "evse_uid": "RT-1"}]}
        assert (await gw.admin("PUT", "/chargers/RT", body))[0] == 201
        assert emsp.cpo_token is not None
        headers = token_header(emsp.cpo_token)
        commands = f"{gw.url}/ocpi/2.2.1/commands"
        async with sim(gw, "RT", "2.0.1") as cp, aiohttp.ClientSession() as s:
            await cp.call(
                call201.BootNotification(
                    charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp"
                )
            )
            for uid, token_type, expected in (("DRIVER1", "RFID", "ISO14443"), ("APP-7", "APP_USER", "Central")):
                cp.received.clear()
                token = emsp.token(uid) | {"type": token_type}
                start = {"response_url": f"{emsp.url}/r/start", "token": token, "location_id": "LOC1", "evse_uid": "RT-1"}
                reserve = {
                    "response_url": f"{emsp.url}/r/reserve",
                    "token": token,
                    "expiry_date": "2030-01-01T00:00:00Z",
                    "reservation_id": f"R-{uid}",
                    "location_id": "LOC1",
                    "evse_uid": "RT-1",
                }
                for name, command in (("START_SESSION", start), ("RESERVE_NOW", reserve)):
                    async with s.post(f"{commands}/{name}", json=command, headers=headers) as r:
                        answer = await r.json()
                        assert answer["data"]["result"] == "ACCEPTED", answer

                async def both_arrived() -> bool:
                    return {n for n, _ in cp.received} >= {"RequestStartTransaction", "ReserveNow"}

                await poll(both_arrived, "the start and the reservation")
                # (The central system also asks a 2.0.1 charger at boot whether it displays
                # costs: GetVariables, not part of this.)
                types = {n: kw["id_token"] for n, kw in cp.received if n != "GetVariables"}
                assert types["RequestStartTransaction"] == {"id_token": uid, "type": expected}
                assert types["ReserveNow"] == {"id_token": uid, "type": expected}
    finally:
        await emsp.stop()


def _nested(levels: int) -> dict[str, Any]:
    payload: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        payload = {"k": payload}
    return payload


def test_depth_bound_is_exact_and_always_checked() -> None:
    from gateway.csms.errors import FormatViolation
    from gateway.csms.validation import MAX_DEPTH, check_storable, needs_edge_check

    check_storable(_nested(MAX_DEPTH))
    deeper = _nested(MAX_DEPTH + 1)
    assert needs_edge_check(json.dumps(deeper))
    with pytest.raises(FormatViolation):
        check_storable(deeper)
    # An ordinary frame is not walked at all.
    assert not needs_edge_check(HEARTBEAT)
    assert not needs_edge_check(frame("a", "Authorize", {"idTag": "04A1B2C3D4E5F6"}))


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.integers(-(10**18), 10**18)
    | st.integers(2**63 - 3, 2**63 + 3)  # the bounds: 19 digits either side
    | st.integers(-(2**63) - 3, -(2**63) + 3)
    | st.text(max_size=8)
    | st.sampled_from(["\ud800", "\udfff", "a\udc00b"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=40,
)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(payload=_JSON, ascii_only=st.booleans())
def test_the_pre_check_never_misses_what_the_walk_refuses(payload: Any, ascii_only: bool) -> None:
    # needs_edge_check decides from the frame's text whether its payload is walked at
    # all: whatever check_storable refuses must be caught by it, as the charger sent it.
    from gateway.csms.errors import OcppRequestError
    from gateway.csms.validation import check_storable, needs_edge_check

    raw = json.dumps([2, "id", "DataTransfer", {"data": payload}], ensure_ascii=ascii_only)
    # A WebSocket text frame is UTF-8: a lone surrogate reaches us escaped, never as is.
    assume(_utf8(raw))
    try:
        check_storable(json.loads(raw)[3])
    except OcppRequestError:
        assert needs_edge_check(raw)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="0123456789", min_size=15, max_size=22),
            st.text(alphabet="[{]}0123456789,", min_size=1, max_size=40),
            st.text(max_size=6),
            st.sampled_from(
                [
                    *("\u0660" * 19, "\uff10" * 19),  # Arabic-Indic and full-width digits
                    *("\\ud800", "\\u00e9", "\\\\u"),  # escapes: a surrogate's, another's, none
                    *("é", "\u20ac", "\U0001f600", "\ud800", ",", "-", "."),
                ]
            ),
            st.just("[" * 17 + "{" * 16),
        ),
        max_size=8,
    ).map("".join)
)
def test_the_pre_check_is_its_three_plain_tests(text: str) -> None:
    # One translation of the text serves the brackets' count and the digit run: the same
    # verdict as the three tests written out (brackets of both kinds, a surrogate escape,
    # 19 ASCII digits as re.search("[0-9]{19}") finds them: other scripts' digits, such as
    # Arabic-Indic and full-width, are no JSON number's), on text with brackets around the
    # bound, digit runs around 19 and characters of every UTF-8 length.
    from gateway.csms.validation import MAX_DEPTH, needs_edge_check

    plain = (
        text.count("[") + text.count("{") > MAX_DEPTH
        or re.search(r"\\u[dD][89a-fA-F]", text) is not None
        or re.search("[0-9]{19}", text) is not None
    )
    assert needs_edge_check(text) == plain
