"""The roaming story end to end: a real eMSP server, the real app, simulated chargers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from gateway.domain.models import IdToken, Transaction, TransactionStatus
from gateway.roaming.providers import PROVIDERS
from gateway.roaming.sessions import SessionService
from gateway.storage.base import StorageError
from tests.conftest import FakeClock, Gateway, GatewayFactory
from tests.ocpi.openapi import validate_against_openapi
from tests.roaming.emsp import EmspPlatform, token_header
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.02)
    return result


class EmspClient:
    """The eMSP side calling the gateway, with whatever token it holds."""

    def __init__(self, gateway: Gateway, token: str) -> None:
        self.gateway = gateway
        self.token = token

    async def call(self, method: str, url: str, body: Any = None) -> tuple[int, dict[str, str], dict[str, Any]]:
        url = url.replace(self.gateway.settings.base_url, self.gateway.url)
        async with aiohttp.ClientSession() as s, s.request(method, url, json=body, headers=token_header(self.token)) as r:
            return r.status, dict(r.headers), await r.json()


async def _setup(gw: Gateway, emsp: EmspPlatform) -> EmspClient:
    # The operator creates the partner and hands token A and the versions URL to the eMSP.
    _, partner = await gw.admin("POST", "/partners", {"name": "eMSP"})
    client = EmspClient(gw, partner["token_a"])
    _, _, versions = await client.call("GET", partner["our_versions_url"])
    _, _, details = await client.call("GET", next(v["url"] for v in versions["data"] if v["version"] == "2.2.1"))
    endpoints = {(e["identifier"], e["role"]): e["url"] for e in details["data"]["endpoints"]}
    status, _, creds = await client.call("POST", endpoints[("credentials", "SENDER")], emsp.credentials(emsp.token_b))
    assert (status, creds["status_code"]) == (200, 1000)
    client.token = creds["data"]["token"]
    emsp.cpo_token = client.token
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC2", LOCATION))[0] == 201
    for cp_id in ("CP16", "CP201"):
        await gw.admin("PUT", f"/chargers/{cp_id}", {"location_id": "LOC1", "evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1", "evse_id": f"ZZ*GWY*E{cp_id}"}]})
    return client


def fail_cdr_once(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The next CDR fails once as a store error would (no real store fails on demand for
    one call); the transaction ids it failed for."""
    real_cdr = SessionService._cdr
    failures: list[str] = []

    async def failing_once(self: SessionService, tx: Transaction, *args: Any) -> None:
        if not failures:
            failures.append(tx.id)
            raise StorageError("the store is briefly unavailable")
        await real_cdr(self, tx, *args)

    monkeypatch.setattr(SessionService, "_cdr", failing_once)
    return failures


def _mv(ts: str, wh: str) -> list[dict[str, Any]]:
    return [{"timestamp": ts, "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}]}]


async def test_roaming_end_to_end(gateways: GatewayFactory, emsp: EmspPlatform) -> None:
    clock = FakeClock()
    gateway = await gateways.start(clock=clock)
    client = await _setup(gateway, emsp)
    base = f"{gateway.settings.base_url}/ocpi/2.2.1"

    # Pull locations, paginated, following Link.
    status, headers, page1 = await client.call("GET", f"{base}/locations?limit=1")
    assert headers["X-Total-Count"] == "2"
    link = headers["Link"].split(";")[0].strip("<>")
    _, _, page2 = await client.call("GET", link)
    assert [page1["data"][0]["id"], page2["data"][0]["id"]] == ["LOC1", "LOC2"]
    for loc in page1["data"] + page2["data"]:
        validate_against_openapi("locations", "Location", loc)

    # The eMSP pushes a token.
    status, _, _ = await client.call("PUT", f"{base}/tokens/NL/EMS/DRIVER1", emsp.token("DRIVER1"))
    assert status == 201

    async with connect(gateway.ws_url, "CP16", "1.6") as cp16, connect(gateway.ws_url, "CP201", "2.0.1") as cp201:
        await cp16.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        await cp201.call(call201.BootNotification(charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp"))
        await cp16.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        _, _, evse = await client.call("GET", f"{base}/locations/LOC1/CP16-1")
        assert evse["data"]["status"] == "AVAILABLE"
        # Live status reaches the eMSP as a PATCH, and on GET.
        await cp16.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
        await eventually(lambda: _has(emsp, "PATCH", "/locations/ZZ/GWY/LOC1/CP16-1", "CHARGING"))
        # Party to party: every push names its sender and its (only) receiving party.
        assert set(emsp.routing) == {("ZZ", "GWY", "NL", "EMS")}
        _, _, evse = await client.call("GET", f"{base}/locations/LOC1/CP16-1")
        assert evse["data"]["status"] == "CHARGING"

        # The driver charges at the 1.6 charger.
        assert (await cp16.call(call16.Authorize(id_tag="DRIVER1"))).id_tag_info["status"] == "Accepted"
        start = await cp16.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=1000, timestamp="2026-11-23T10:00:00Z"))
        clock.advance(61)  # session PATCHes go at most once a minute
        await cp16.call(call16.MeterValues(connector_id=1, transaction_id=start.transaction_id, meter_value=_mv("2026-11-23T10:30:00Z", "8000")))
        clock.advance(61)
        await cp16.call(call16.StopTransaction(meter_stop=11_000, timestamp="2026-11-23T11:00:00Z", transaction_id=start.transaction_id))
        cdrs = await eventually(lambda: _async(emsp.pushes("cdrs", "POST")))
        sessions = [r for r in emsp.pushes("sessions") if r[1].endswith("/" + cdrs[0][2]["session_id"])]
        assert [r[0] for r in sessions] == ["PUT", "PATCH", "PUT"]
        assert sessions[1][2]["kwh"] == 7  # 8000 - 1000 Wh
        assert sessions[1][2]["total_cost"] == {"excl_vat": Decimal("2.45"), "incl_vat": Decimal("2.96")}
        assert sessions[-1][2]["status"] == "COMPLETED"
        cdr = cdrs[0][2]
        validate_against_openapi("cdrs", "CDR", cdr)
        # 10 kWh x 0.35 = 3.50 excl. VAT; x 1.21 = 4.235 -> 4.24.
        assert Decimal(str(cdr["total_energy"])) == 10
        assert cdr["total_cost"] == {"excl_vat": Decimal("3.5"), "incl_vat": Decimal("4.24")}

        # An unknown token, authorized in real time at the eMSP.
        emsp.authorize["RT-NEW"] = "ALLOWED"
        answer = await cp201.call(call201.Authorize(id_token={"idToken": "RT-NEW", "type": "ISO14443"}))
        assert answer.id_token_info["status"] == "Accepted"

        # START_SESSION and STOP_SESSION, each with its CommandResult.
        respond = f"{emsp.url}/ocpi/2.2.1/commands/START_SESSION/abc"
        status, _, answer = await client.call(
            "POST", f"{base}/commands/START_SESSION",
            {"response_url": respond, "token": emsp.token("APP-9") | {"type": "APP_USER"}, "location_id": "LOC1", "evse_uid": "CP201-1"},
        )
        assert answer["data"]["result"] == "ACCEPTED"
        await eventually(lambda: _async([r for r in emsp.received if r[1].endswith("/START_SESSION/abc")]))
        remote = cp201.received[-1]
        assert remote[0] == "RequestStartTransaction"
        await cp201.call(
            call201.TransactionEvent(
                event_type="Started", timestamp="2026-11-23T12:00:00Z", trigger_reason="RemoteStart", seq_no=0,
                transaction_info={"transactionId": "TX-APP", "remoteStartId": remote[1]["remote_start_id"]},
                id_token={"idToken": "APP-9", "type": "Central"}, evse={"id": 1, "connectorId": 1},
            )
        )
        session_put = await eventually(lambda: _async([r for r in emsp.pushes("sessions", "PUT") if r[2]["cdr_token"]["uid"] == "APP-9"]))
        assert session_put[0][2]["auth_method"] == "COMMAND"
        status, _, answer = await client.call(
            "POST", f"{base}/commands/STOP_SESSION",
            {"response_url": f"{emsp.url}/ocpi/2.2.1/commands/STOP_SESSION/def", "session_id": session_put[0][2]["id"]},
        )
        assert answer["data"]["result"] == "ACCEPTED"
        results = await eventually(lambda: _async([r for r in emsp.received if r[1].endswith("/STOP_SESSION/def")]))
        assert results[0][2] == {"result": "ACCEPTED"}
        assert cp201.received[-1] == ("RequestStopTransaction", {"transaction_id": "TX-APP"})

    # Every object the eMSP received validates against the official OpenAPI schemas.
    schemas = {
        ("locations", "PUT"): "Location",
        ("tariffs", "PUT"): "Tariff",
        ("sessions", "PUT"): "Session",
        ("cdrs", "POST"): "CDR",
        ("commands", "POST"): "CommandResult",
    }
    checked = set()
    for method, path, body in emsp.received:
        module = path.split("/ocpi/2.2.1/")[1].split("/")[0]
        if (module, method) in schemas:
            validate_against_openapi(module, schemas[(module, method)], body)
            checked.add((module, method))
    assert checked == set(schemas)


async def _async(value: Any) -> Any:
    return value


async def _has(emsp: EmspPlatform, method: str, path_end: str, status: str) -> bool:
    return any(r[0] == method and r[1].endswith(path_end) and (r[2] or {}).get("status") == status for r in emsp.received)


async def test_cdr_survives_partner_outage_and_restart(gateways: GatewayFactory, emsp: EmspPlatform) -> None:
    gw = await gateways.start(outbox_poll_interval=0.2)
    client = await _setup(gw, emsp)
    base = f"{gw.settings.base_url}/ocpi/2.2.1"
    await client.call("PUT", f"{base}/tokens/NL/EMS/DRIVER2", emsp.token("DRIVER2"))
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER2", meter_start=0, timestamp="2026-11-23T10:00:00Z"))
        await eventually(lambda: _async(emsp.pushes("sessions", "PUT")))
        port = emsp.port
        await emsp.stop()  # the eMSP goes down
        await cp.call(call16.StopTransaction(meter_stop=4000, timestamp="2026-11-23T10:30:00Z", transaction_id=start.transaction_id))

    async def attempted() -> bool:
        items = await gw.store.outbox.list(partner_id=None)
        return any(i.module == "cdrs" and i.attempts >= 1 for i in items)

    await eventually(attempted)
    # The gateway restarts while the eMSP is still down.
    settings = gw.settings
    await gateways.stop(gw)
    gw2 = await gateways.start(settings)
    await emsp.start(port)  # the eMSP comes back on its address
    await eventually(lambda: _async(emsp.pushes("cdrs", "POST")), timeout=30)
    await asyncio.sleep(0.5)  # let any duplicate show itself
    cdrs = emsp.pushes("cdrs", "POST")
    assert len(cdrs) == 1
    assert Decimal(str(cdrs[0][2]["total_energy"])) == 4
    items = [i for i in await gw2.store.outbox.list() if i.module == "cdrs"]
    assert [i.status.value for i in items] == ["done"]


async def test_cdr_rebuilt_after_a_crash_between_transaction_and_cdr(gateways: GatewayFactory, emsp: EmspPlatform) -> None:
    """The transaction was stored, then the process died before the bridge saw its end."""
    gw = await gateways.start(outbox_poll_interval=0.2)
    client = await _setup(gw, emsp)
    await client.call("PUT", f"{gw.settings.base_url}/ocpi/2.2.1/tokens/NL/EMS/DRIVER3", emsp.token("DRIVER3"))
    # Written straight to the store, as the central system does before publishing its
    # events; recent enough for the start-up check whatever today's date is.
    now = datetime.now(UTC).replace(microsecond=0)
    tx = Transaction(
        id="tx-crash-1", charger_id="CP16", ocpp_id="77", evse_id=1, connector_id=1,
        started_at=now - timedelta(hours=1), stopped_at=now - timedelta(minutes=15),
        status=TransactionStatus.COMPLETED, id_token=IdToken("DRIVER3"),
        meter_start_wh=Decimal(0), meter_stop_wh=Decimal(6000),
    )
    await gw.store.transactions.create(tx)
    assert emsp.pushes("cdrs") == []
    settings = gw.settings
    await gateways.stop(gw)
    await gateways.start(settings)  # the restart finds it and finishes the job
    cdrs = await eventually(lambda: _async(emsp.pushes("cdrs", "POST")))
    assert len(cdrs) == 1
    assert cdrs[0][2]["id"] == "tx-crash-1"
    assert Decimal(str(cdrs[0][2]["total_energy"])) == 6
    validate_against_openapi("cdrs", "CDR", cdrs[0][2])


async def test_failed_cdr_write_is_retried_while_running(
    gateways: GatewayFactory, emsp: EmspPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails once as the CDR is written (a transient outage, simulated: no real
    store fails on demand); the gateway keeps running and the CDR still goes out, once."""
    gw = await gateways.start(outbox_poll_interval=0.2, session_retry_interval=0.2)
    client = await _setup(gw, emsp)
    await client.call("PUT", f"{gw.settings.base_url}/ocpi/2.2.1/tokens/NL/EMS/DRIVER4", emsp.token("DRIVER4"))
    sessions = gw.app[PROVIDERS].sessions
    assert sessions is not None
    failures = fail_cdr_once(monkeypatch)
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER4", meter_start=0, timestamp="2026-11-23T10:00:00Z"))
        await cp.call(call16.StopTransaction(meter_stop=2000, timestamp="2026-11-23T10:20:00Z", transaction_id=start.transaction_id))
    cdrs = await eventually(lambda: _async(emsp.pushes("cdrs", "POST")))
    assert len(failures) == 1
    await asyncio.sleep(0.5)  # further retry rounds change nothing
    assert [c[2]["total_energy"] for c in emsp.pushes("cdrs", "POST")] == [2]
    assert cdrs[0][2]["id"] == failures[0]
