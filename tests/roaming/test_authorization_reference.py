"""An eMSP finds the session it started by START_SESSION through its authorization_reference.

mod_commands StartSession.authorization_reference: "this reference will be provided in the
relevant Session and/or CDR". The eMSP here knows nothing but its reference: it looks the
session and the CDR up by it among what the CPO pushed and among what the CPO serves on GET.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from tests.conftest import FakeClock, Gateway, GatewayFactory
from tests.ocpi.openapi import validate_against_openapi
from tests.roaming.emsp import token_header
from tests.roaming.referencing_emsp import ReferencingEmsp
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect


@pytest.fixture
async def emsp() -> AsyncIterator[ReferencingEmsp]:
    platform = ReferencingEmsp()
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


async def _world(gateways: GatewayFactory, emsp: ReferencingEmsp) -> Gateway:
    gw = await gateways.start(clock=FakeClock())
    _, partner = await gw.admin("POST", "/partners", {"name": "eMSP"})
    status, _ = await gw.admin(
        "POST", f"/partners/{partner['id']}/register", {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a}
    )
    assert status == 200
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    for cp_id in ("CP16", "CP201"):
        status, body = await gw.admin("PUT", f"/chargers/{cp_id}", {"location_id": "LOC1", "evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]})
        assert status == 201, body
    assert emsp.cpo_token is not None
    async with aiohttp.ClientSession() as s, s.put(
        f"{gw.url}/ocpi/2.2.1/tokens/NL/EMS/DRIVER1", json=emsp.token("DRIVER1"), headers=token_header(emsp.cpo_token)
    ) as r:
        assert r.status == 201
    return gw


async def _until(check: Any, what: str) -> Any:
    for _ in range(500):
        found = check()
        if found:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _meter(ts: str, wh: str) -> list[dict[str, Any]]:
    return [{"timestamp": ts, "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}]}]


async def _charge_16(gw: Gateway, emsp: ReferencingEmsp, reference: str) -> None:
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        answer = await emsp.start_session(gw.url, "LOC1", "CP16-1", "DRIVER1", reference)
        assert answer["result"] == "ACCEPTED"
        await _until(lambda: [r for r in cp.received if r[0] == "RemoteStartTransaction"], "RemoteStartTransaction")
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=1000, timestamp="2026-11-23T10:00:00Z"))
        assert start.id_tag_info["status"] == "Accepted"
        tx = start.transaction_id
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx, meter_value=_meter("2026-11-23T10:20:00Z", "3000")))
        await cp.call(call16.StopTransaction(meter_stop=5000, timestamp="2026-11-23T10:40:00Z", transaction_id=tx))


async def _charge_201(gw: Gateway, emsp: ReferencingEmsp, reference: str) -> None:
    async with connect(gw.ws_url, "CP201", "2.0.1") as cp:
        await cp.call(call201.BootNotification(charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp"))
        answer = await emsp.start_session(gw.url, "LOC1", "CP201-1", "DRIVER1", reference)
        assert answer["result"] == "ACCEPTED"
        [request] = await _until(lambda: [kw for n, kw in cp.received if n == "RequestStartTransaction"], "RequestStartTransaction")

        def event(kind: str, seq: int, ts: str, wh: str, **extra: Any) -> Any:
            return call201.TransactionEvent(
                event_type=kind, timestamp=ts, trigger_reason=extra.pop("trigger", "MeterValuePeriodic"), seq_no=seq,
                transaction_info={"transactionId": "TX-REF"} | extra.pop("info", {}),
                meter_value=[{"timestamp": ts, "sampledValue": [{"value": float(wh), "measurand": "Energy.Active.Import.Register"}]}],
                **extra,
            )

        await cp.call(event("Started", 0, "2026-11-23T11:00:00Z", "1000", trigger="RemoteStart",
                            info={"remoteStartId": request["remote_start_id"]}, evse={"id": 1, "connectorId": 1},
                            id_token={"idToken": "DRIVER1", "type": "ISO14443"}))
        await cp.call(event("Updated", 1, "2026-11-23T11:20:00Z", "3000"))
        await cp.call(event("Ended", 2, "2026-11-23T11:40:00Z", "5000", info={"stoppedReason": "Remote"}))


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_emsp_finds_its_session_and_cdr_by_reference(
    gateways: GatewayFactory, emsp: ReferencingEmsp, version: str
) -> None:
    gw = await _world(gateways, emsp)
    # A session of the same driver by RFID first: it must not answer to the reference.
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=0, timestamp="2026-11-23T09:00:00Z"))
        await cp.call(call16.StopTransaction(meter_stop=500, timestamp="2026-11-23T09:10:00Z", transaction_id=start.transaction_id))
    reference = f"APP-ORDER-{version}"
    await (_charge_16 if version == "1.6" else _charge_201)(gw, emsp, reference)

    # What the eMSP was pushed: one session and one CDR carry its reference.
    [cdr] = await _until(lambda: emsp.cdrs_by_reference(reference), "the CDR with the reference")
    [session] = emsp.sessions_by_reference(reference)
    assert emsp.command_results(reference) == [{"result": "ACCEPTED"}]
    assert session["status"] == "COMPLETED"
    assert session["auth_method"] == "COMMAND"
    assert str(session["kwh"]) in ("4", "4.0")
    assert cdr["session_id"] == session["id"]
    assert str(cdr["total_energy"]) in ("4", "4.0")
    validate_against_openapi("sessions", "Session", session)
    validate_against_openapi("cdrs", "CDR", cdr)
    # Every push of that session, the PENDING one included, carried the same id.
    states = [b for m, p, b in emsp.received if m == "PUT" and "/sessions/" in p and b.get("authorization_reference") == reference]
    assert [s["status"] for s in states] == ["PENDING", "ACTIVE", "COMPLETED"]
    assert {s["id"] for s in states} == {session["id"]}
    assert len(emsp.cdrs()) == 2  # the RFID session's CDR too, without a reference
    assert next(c for c in emsp.cdrs() if c["id"] != cdr["id"]).get("authorization_reference") is None

    # What the CPO serves on GET: the same session and CDR, found by the same reference.
    [pulled_session] = await emsp.pull_by_reference(gw.url, "sessions", reference)
    [pulled_cdr] = await emsp.pull_by_reference(gw.url, "cdrs", reference)
    assert (pulled_session["id"], pulled_session["status"]) == (session["id"], "COMPLETED")
    assert (pulled_cdr["id"], pulled_cdr["session_id"]) == (cdr["id"], session["id"])
    assert len(await emsp.pull(gw.url, "sessions")) == 2
