"""Log lines as text or JSON with their context (gateway.logs): escaped in both formats,
and the context set at the edges of a real gateway."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import aiohttp
import pytest
from ocpp.v16 import call as call16

from gateway import logs
from tests.conftest import GatewayFactory
from tests.sim import connect

EVIL = "CP\r\nFAKE 2026 INFO forged\u2028\ud800"


@pytest.fixture
def captured() -> Iterator[dict[str, io.StringIO]]:
    """A text and a JSON handler on the root logger, at INFO, for the test's duration."""
    streams = {"text": io.StringIO(), "json": io.StringIO()}
    root = logging.getLogger()
    handlers = [logs.make_handler(name, stream) for name, stream in streams.items()]
    level = root.level
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield streams
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_context_fields_and_escaping_in_both_formats(captured: dict[str, io.StringIO]) -> None:
    token = logs.charger_id.set(EVIL)
    tx = logs.transaction_id.set("42")
    try:
        logging.getLogger("gateway.test").warning("seen %s", "a\r\nb")
    finally:
        logs.charger_id.reset(token)
        logs.transaction_id.reset(tx)
    (text,) = _lines(captured["text"])  # one record, one line
    text.encode("utf-8")  # writable: no lone surrogate left
    assert "seen a\\x0d\\x0ab" in text
    assert "[charger_id=CP\\x0d\\x0aFAKE 2026 INFO forged\\u2028\\ud800 transaction_id=42]" in text
    (line,) = _lines(captured["json"])
    assert line.isascii()
    record = json.loads(line)
    assert record["charger_id"] == EVIL  # exact, once decoded
    assert record["transaction_id"] == "42"
    assert record["message"] == "seen a\\x0d\\x0ab"
    assert (record["level"], record["logger"]) == ("WARNING", "gateway.test")
    assert record["time"].endswith("Z")
    assert "partner" not in record and "request_id" not in record


def test_tracebacks_stay_one_json_line(captured: dict[str, io.StringIO]) -> None:
    try:
        raise ValueError("EVIL\r\nline")
    except ValueError:
        logging.getLogger("gateway.test").exception("failed")
    (line,) = _lines(captured["json"])
    record = json.loads(line)
    assert "Traceback (most recent call last)" in record["exception"]
    assert "EVIL\\x0d\\x0aline" in record["exception"]


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        logs.make_handler("xml")


async def test_a_gateway_names_the_charger_and_transaction(
    gateways: GatewayFactory, captured: dict[str, io.StringIO]
) -> None:
    gw = await gateways.start()
    # A refused id with CR/LF: its log line carries it escaped, as the context field too.
    async with aiohttp.ClientSession() as s, s.get(f"{gw.url}/ocpp/CP%0D%0AX") as r:
        assert r.status == 400
    refused = [json.loads(x) for x in _lines(captured["json"]) if "refused charge point id" in x]
    assert [r["charger_id"] for r in refused] == ["CP\r\nX"]
    assert any("[charger_id=CP\\x0d\\x0aX]" in x for x in _lines(captured["text"]))

    await gw.admin("PUT", "/chargers/CP-LOG", {"evses": [{"ocpp_id": 1, "evse_uid": "E1"}]})
    async with connect(gw.ws_url, "CP-LOG", "1.6") as cp:
        # Refused (not a storable meter value): logged at INFO within the CALL's context.
        await cp._connection.send(
            '[2,"m1","MeterValues",{"connectorId":1,"transactionId":77,"meterValue":[]}]'
        )
        await cp.call(call16.Heartbeat())
    rejected = [
        json.loads(x) for x in _lines(captured["json"]) if "MeterValues" in x and "rejected" in x
    ]
    assert rejected, _lines(captured["json"])
    assert (rejected[0]["charger_id"], rejected[0]["transaction_id"]) == ("CP-LOG", "77")
