"""The message trail end to end: real chargers (``ocpp`` 1.6 and 2.0.1 over WebSockets),
a real OCPI partner, the admin API, both backends; retention and overflow."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from gateway.trail import TRAIL, TrailRecorder
from tests.conftest import FakeClock, Gateway, GatewayFactory
from tests.roaming.emsp import EmspPlatform, token_header
from tests.sim import connect

FAST = {"trail_flush_interval": 0.05, "trail_bodies": True}


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in time; last: {result!r}")
        await asyncio.sleep(0.05)


async def trail(gw: Gateway, **params: Any) -> list[dict[str, Any]]:
    """Every matching entry, following the cursor (pages of 3: the cursor is exercised)."""
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": "3"} | ({"cursor": cursor} if cursor else {})
        status, page = await gw.admin("GET", "/trail", params=query)
        assert status == 200, page
        entries += page["entries"]
        cursor = page["next_cursor"]
        if cursor is None:
            return entries


def shape(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["direction"], e["message_type"], e["action"], e["message_id"]) for e in entries]


async def _register_charger(gw: Gateway, cp_id: str) -> None:
    status, body = await gw.admin(
        "PUT", f"/chargers/{cp_id}", {"evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]}
    )
    assert status == 201, body


async def test_ocpp_16_frames_in_order_with_transaction_and_masked_tokens(
    gateways: GatewayFactory,
) -> None:
    await _ocpp_16_frames(await gateways.start(**FAST))


@pytest.mark.parametrize("backend", ["sqlite"])  # a setting of the SQLite trail
@pytest.mark.parametrize("writer_process", [True, False])
async def test_the_same_frames_written_by_a_process_or_a_thread(
    gateways: GatewayFactory, writer_process: bool
) -> None:
    gw = await gateways.start(**FAST, writer_processes=writer_process)
    await _ocpp_16_frames(gw)
    process = gw.store.trail._process  # type: ignore[attr-defined]
    assert (process is not None and process.pid is not None) is writer_process


async def _ocpp_16_frames(gw: Gateway) -> None:
    """A 1.6 charger's frames, the gateway's own call and a CALLERROR, as the trail shows
    them: order, transaction ids, masked tokens, filters and the NDJSON export."""
    await _register_charger(gw, "CP16")
    await gw.admin("PUT", "/tokens/TAG-OK-0001234", {"valid": True})
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(
            call16.BootNotification(charge_point_vendor="Acme", charge_point_model="X1"),
            unique_id="m-boot",
        )
        await cp.call(call16.Authorize(id_tag="TAG-OK-0001234"), unique_id="m-auth")
        start = await cp.call(
            call16.StartTransaction(
                connector_id=1,
                id_tag="TAG-OK-0001234",
                meter_start=0,
                timestamp="2026-11-23T10:00:00Z",
            ),
            unique_id="m-start",
        )
        status, answer = await gw.admin("POST", "/chargers/CP16/commands/reset", {"type": "soft"})
        assert status == 200, answer
        await cp.call(
            call16.StopTransaction(
                meter_stop=500,
                timestamp="2026-11-23T10:10:00Z",
                transaction_id=start.transaction_id,
            ),
            unique_id="m-stop",
        )
        # A CALL the central system cannot take: answered with a CALLERROR.
        await cp._connection.send('[2,"m-bad","MadeUpAction",{}]')
        await eventually(lambda: _has(gw, charger_id="CP16", action="MadeUpAction", n=2))

    entries = await trail(gw, charger_id="CP16")
    reset = [e for e in entries if e["action"] == "Reset"]
    assert [(e["direction"], e["message_type"]) for e in reset] == [
        ("out", "CALL"),
        ("in", "CALLRESULT"),
    ]
    assert reset[0]["message_id"] == reset[1]["message_id"]
    reset_id = reset[0]["message_id"]
    ours = [
        e
        for e in entries
        if e["message_id"] in {"m-boot", "m-auth", "m-start", "m-stop", "m-bad", reset_id}
    ]
    assert shape(ours) == [
        ("in", "CALL", "BootNotification", "m-boot"),
        ("out", "CALLRESULT", "BootNotification", "m-boot"),
        ("in", "CALL", "Authorize", "m-auth"),
        ("out", "CALLRESULT", "Authorize", "m-auth"),
        ("in", "CALL", "StartTransaction", "m-start"),
        ("out", "CALLRESULT", "StartTransaction", "m-start"),
        ("out", "CALL", "Reset", reset_id),
        ("in", "CALLRESULT", "Reset", reset_id),
        ("in", "CALL", "StopTransaction", "m-stop"),
        ("out", "CALLRESULT", "StopTransaction", "m-stop"),
        ("in", "CALL", "MadeUpAction", "m-bad"),
        ("out", "CALLERROR", "MadeUpAction", "m-bad"),
    ]
    for e in ours:
        assert (e["protocol"], e["charger_id"], e["partner"]) == ("ocpp", "CP16", None)
        # The size is the frame's as it passed (a masked body is shorter).
        masked = "***" in e["body"]
        assert e["size"] > len(e["body"]) if masked else e["size"] == len(e["body"].encode())
        assert not e["truncated"]
        assert e["at"].endswith("Z")
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    error = ours[-1]
    assert error["status"] == "NotImplemented" and json.loads(error["body"])[2] == "NotImplemented"
    # Token ids keep their last 4 characters only.
    auth = ours[2]
    assert json.loads(auth["body"])[3] == {"idTag": "***1234"}
    assert "TAG-OK-0001234" not in json.dumps(entries)
    # The transaction: by the OCPP id as by the gateway's own id.
    tx_ocpp = str(start.transaction_id)
    assert ours[5]["transaction_id"] == tx_ocpp and ours[8]["transaction_id"] == tx_ocpp
    by_ocpp = await trail(gw, transaction_id=tx_ocpp)
    assert shape(by_ocpp) == [
        ("out", "CALLRESULT", "StartTransaction", "m-start"),
        ("in", "CALL", "StopTransaction", "m-stop"),
        ("out", "CALLRESULT", "StopTransaction", "m-stop"),
    ]
    _, txs = await gw.admin("GET", "/transactions?charger_id=CP16")
    assert shape(await trail(gw, transaction_id=txs[0]["id"])) == shape(by_ocpp)
    # Action and time filters, newest first, NDJSON export.
    assert shape(await trail(gw, charger_id="CP16", action="Authorize")) == shape(ours[2:4])
    boot_at = ours[0]["at"]
    assert shape(await trail(gw, charger_id="CP16", to=boot_at)) == []
    newest = await trail(gw, charger_id="CP16", order="desc")
    assert [e["id"] for e in newest] == [e["id"] for e in reversed(entries)]
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            f"{gw.url}/admin/trail",
            params={"charger_id": "CP16"},
            headers={**gw.admin_headers, "Accept": "application/x-ndjson"},
        ) as r,
    ):
        assert r.status == 200 and r.content_type == "application/x-ndjson"
        lines = (await r.text()).splitlines()
    assert [json.loads(line)["id"] for line in lines] == [e["id"] for e in entries]
    status, body = await gw.admin(
        "GET", "/trail", params={"charger_id": "CP16", "format": "ndjson", "limit": "2"}
    )
    assert status == 200  # not JSON: the helper answers None for another content type
    assert body is None


async def _has(gw: Gateway, n: int, **params: Any) -> bool:
    status, page = await gw.admin("GET", "/trail", params={k: str(v) for k, v in params.items()})
    return status == 200 and len(page["entries"]) >= n


async def test_ocpp_201_transaction_event_and_the_gateways_own_calls(
    gateways: GatewayFactory,
) -> None:
    gw = await gateways.start(**FAST)
    await _register_charger(gw, "CP201")
    async with connect(gw.ws_url, "CP201", "2.0.1") as cp:
        await cp.call(
            call201.BootNotification(
                charging_station={"vendor_name": "Acme", "model": "Z"}, reason="PowerUp"
            ),
            unique_id="b-1",
        )
        await cp.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp="2026-11-23T10:00:00Z",
                trigger_reason="Authorized",
                seq_no=0,
                transaction_info={"transaction_id": "TX-201-A"},
                id_token={"id_token": "RFID-99887766", "type": "ISO14443"},
                evse={"id": 1, "connector_id": 1},
            ),
            unique_id="t-1",
        )
        await eventually(lambda: _has(gw, charger_id="CP201", transaction_id="TX-201-A", n=2))
        # At boot the central system asks a 2.0.1 charger whether it shows costs.
        await eventually(lambda: _has(gw, charger_id="CP201", action="GetVariables", n=2))
    tx = await trail(gw, transaction_id="TX-201-A")
    assert shape(tx) == [
        ("in", "CALL", "TransactionEvent", "t-1"),
        ("out", "CALLRESULT", "TransactionEvent", "t-1"),
    ]
    sent = json.loads(tx[0]["body"])[3]
    assert sent["idToken"] == {"idToken": "***7766", "type": "ISO14443"}
    calls = await trail(gw, charger_id="CP201", action="GetVariables")
    assert [(e["direction"], e["message_type"]) for e in calls] == [
        ("out", "CALL"),
        ("in", "CALLRESULT"),
    ]


async def test_ocpi_partner_requests_and_responses(
    gateways: GatewayFactory, emsp: EmspPlatform
) -> None:
    gw = await gateways.start(**FAST)
    _, partner = await gw.admin("POST", "/partners", {"name": "eMSP"})
    pid = partner["id"]
    status, body = await gw.admin(
        "POST",
        f"/partners/{pid}/register",
        {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a},
    )
    assert status == 200, body
    assert emsp.cpo_token is not None
    token = emsp.token("UID-123456789")
    async with (
        aiohttp.ClientSession() as s,
        s.put(
            f"{gw.url}/ocpi/2.2.1/tokens/NL/EMS/UID-123456789",
            json=token,
            headers={
                **token_header(emsp.cpo_token),
                "X-Request-ID": "req-42",
                "X-Correlation-ID": "corr-42",
            },
        ) as r,
    ):
        assert r.status in (200, 201), await r.text()
    await eventually(lambda: _has(gw, partner=pid, action="tokens", n=2))
    entries = await trail(gw, partner=pid)
    assert all(e["protocol"] == "ocpi" and e["partner"] == pid for e in entries)
    sent = [
        (e["direction"], e["message_type"], e["method"], e["action"])
        for e in entries
        if e["direction"] == "out" and e["message_type"] == "request"
    ]
    # The gateway registered at the partner: its versions, their details, its credentials.
    assert sent[:3] == [
        ("out", "request", "GET", "versions"),
        ("out", "request", "GET", "other"),
        ("out", "request", "POST", "credentials"),
    ]
    post = next(e for e in entries if e["method"] == "POST" and e["message_type"] == "request")
    answer = next(
        e
        for e in entries
        if e["message_id"] == post["message_id"] and e["message_type"] == "response"
    )
    assert (answer["direction"], answer["status"], answer["ocpi_status"]) == ("in", "200", 1000)
    # Credentials tokens are never kept, masked or not.
    assert json.loads(post["body"])["token"] == "***"
    assert json.loads(answer["body"])["data"]["token"] == "***"
    assert emsp.token_b not in json.dumps(entries) and emsp.cpo_token not in json.dumps(entries)
    # The token the partner pushed: request in, response out, with its ids.
    put = [e for e in entries if e["action"] == "tokens"]
    assert [
        (e["direction"], e["message_type"], e["message_id"], e["correlation_id"]) for e in put
    ] == [
        ("in", "request", "req-42", "corr-42"),
        ("out", "response", "req-42", "corr-42"),
    ]
    assert put[0]["path"] == "/ocpi/2.2.1/tokens/NL/EMS/***6789"
    assert json.loads(put[0]["body"])["uid"] == "***6789"
    assert (put[1]["status"], put[1]["ocpi_status"]) == (put[1]["status"], 1000)
    assert put[1]["status"] in ("200", "201")
    assert "UID-123456789" not in json.dumps(entries)


def _record(trail: TrailRecorder, charger: str, n: int, action: str = "Heartbeat") -> None:
    for i in range(n):
        trail.ocpp(
            charger, "in", '[2,"x","Heartbeat",{}]', "CALL", f"{charger}-{i}", action, None, None
        )


async def test_retention_by_days_and_by_size(gateways: GatewayFactory) -> None:
    clock = FakeClock(datetime(2026, 5, 1, tzinfo=UTC))
    gw = await gateways.start(
        clock=clock, trail_days=1, trail_max_entries=100, trail_flush_interval=60
    )
    recorder = gw.app[TRAIL]
    _record(recorder, "OLD", 50)
    clock.advance(2 * 86400)
    _record(recorder, "NEW", 120)
    await recorder.flush()
    store = gw.store.trail
    # (The lease's pruning job may run first: the outcome is the same either way.)
    await recorder.prune()
    assert await store.count() == 100
    assert await recorder.prune() == 0
    assert await trail(gw, charger_id="OLD") == []
    kept = [e["message_id"] for e in await trail(gw, charger_id="NEW")]
    assert kept == [f"NEW-{i}" for i in range(20, 120)]


async def test_a_full_queue_drops_and_counts_never_blocks(
    gateways: GatewayFactory, caplog: Any
) -> None:
    gw = await gateways.start(
        trail_queue_entries=100, trail_flush_interval=60, trail_flush_entries=100_000
    )
    await _register_charger(gw, "CP-FULL")
    recorder = gw.app[TRAIL]
    await recorder.flush()
    async with connect(gw.ws_url, "CP-FULL", "1.6") as cp:
        for _ in range(100):  # 200 frames: half of them find the queue full
            await asyncio.wait_for(cp.call(call16.Heartbeat()), 5)
    assert recorder.queued == 100
    assert recorder.dropped_full >= 100
    async with aiohttp.ClientSession() as s, s.get(f"{gw.url}/metrics") as r:
        text = await r.text()
    line = next(
        li
        for li in text.splitlines()
        if li.startswith('ocpigw_trail_entries_dropped_total{reason="queue_full"}')
    )
    assert float(line.split()[-1]) == recorder.dropped_full
    with caplog.at_level("WARNING", logger="gateway.trail"):
        await recorder.flush()
    assert any("dropped, the queue was full" in r.getMessage() for r in caplog.records)
    assert recorder.written >= 100 and recorder.queued == 0


async def test_bad_query_parameters_are_400_naming_the_field(gateways: GatewayFactory) -> None:
    gw = await gateways.start()
    for params, field in [
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"from": "2026-01-01T00:00:00"}, "from"),  # no zone
        ({"to": "yesterday"}, "to"),
        ({"cursor": "abc"}, "cursor"),
        ({"order": "sideways"}, "order"),
        ({"format": "xml"}, "format"),
        ({"charger": "CP1"}, "charger"),
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
    ]:
        status, body = await gw.admin("GET", "/trail", params=params)
        assert (status, body.get("field")) == (400, field), (params, body)
        assert body["error"]


async def test_time_range_and_export_limit(gateways: GatewayFactory) -> None:
    clock = FakeClock(datetime(2026, 5, 1, tzinfo=UTC))
    gw = await gateways.start(clock=clock, trail_flush_interval=60)
    recorder = gw.app[TRAIL]
    for hour in range(5):
        _record(recorder, "CP-T", 1, action=f"A{hour}")
        clock.advance(3600)
    await recorder.flush()
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    window = await trail(
        gw,
        **{
            "from": (t0 + timedelta(hours=1)).isoformat(),
            "to": (t0 + timedelta(hours=3)).isoformat(),
        },
    )
    assert [e["action"] for e in window] == ["A1", "A2"]
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            f"{gw.url}/admin/trail",
            params={"format": "ndjson", "limit": "3", "order": "desc"},
            headers=gw.admin_headers,
        ) as r,
    ):
        rows = [json.loads(line) for line in (await r.text()).splitlines()]
    assert [row["action"] for row in rows] == ["A4", "A3", "A2"]


async def test_trail_off_records_nothing(gateways: GatewayFactory) -> None:
    gw = await gateways.start(trail=False)
    assert TRAIL not in gw.app
    await _register_charger(gw, "CP-OFF")
    async with connect(gw.ws_url, "CP-OFF", "1.6") as cp:
        await cp.call(call16.Heartbeat())
    assert await gw.store.trail.count() == 0
    status, page = await gw.admin("GET", "/trail")
    assert (status, page) == (200, {"entries": [], "next_cursor": None})


async def test_a_received_frame_is_recorded_at_its_receipt(gateways: GatewayFactory) -> None:
    # A connection reads the clock once for a frame it receives and gives that time to the
    # trail; an answer (no time given) is recorded when the recorder takes it.
    clock = FakeClock(datetime(2026, 5, 1, tzinfo=UTC))
    gw = await gateways.start(clock=clock, trail_flush_interval=60)
    recorder = gw.app[TRAIL]
    received = clock.now()
    clock.advance(5)
    frame = '[2,"r1","Heartbeat",{}]'
    recorder.ocpp("CP-R", "in", frame, "CALL", "r1", "Heartbeat", None, None, received)
    recorder.ocpp("CP-R", "out", '[3,"r1",{}]', "CALLRESULT", "r1", "Heartbeat", None, None)
    await recorder.flush()
    entries = await trail(gw, charger_id="CP-R")
    assert shape(entries) == [
        ("in", "CALL", "Heartbeat", "r1"),
        ("out", "CALLRESULT", "Heartbeat", "r1"),
    ]
    assert [datetime.fromisoformat(e["at"]) for e in entries] == [
        received,
        received + timedelta(seconds=5),
    ]
