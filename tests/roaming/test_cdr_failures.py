"""A CDR is never lost silently.

- What the pricer needs is checked when it is stored: a location's ``time_zone`` must be an
  IANA zone, a tariff must be one the pricer takes; a tariff that locations use cannot be
  deleted (409 naming them).
- A CDR that still cannot be built (data from before these checks) is a failed item in the
  admin API with its reason; the operator fixes the data and retries it.
- The start-up resync goes on past a transaction whose CDR fails.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from gateway.domain.models import IdToken, Transaction, TransactionStatus
from gateway.storage.base import Document, OutboxStatus
from tests.conftest import FakeClock, Gateway, GatewayFactory
from tests.ocpi.openapi import validate_against_openapi
from tests.roaming.referencing_emsp import ReferencingEmsp
from tests.roaming.test_authorization_reference import _world
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


async def _until(check: Any, what: str) -> Any:
    for _ in range(500):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def _break_time_zone(gw: Gateway, location_id: str, zone: str) -> None:
    """A location record as stored before time zones were checked."""
    doc = await gw.store.locations.get(location_id)
    location = json.loads(doc.data["location"]) | {"time_zone": zone}
    await gw.store.locations.put(Document(doc.key, doc.data | {"location": json.dumps(location)}, doc.last_updated, doc.owner))


async def _drained(gw: Gateway) -> bool:
    return not await gw.store.outbox.list(status=OutboxStatus.PENDING)


async def test_what_the_pricer_needs_is_checked_when_stored(gateway: Gateway) -> None:
    assert (await gateway.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    for zone in ("Mars/Olympus_Mons", "CEST", "../../etc/passwd", "Europe/Amsterdam "):
        status, body = await gateway.admin("PUT", "/locations/LOC1", LOCATION | {"time_zone": zone})
        assert (status, body["field"]) == (422, "time_zone"), (zone, body)
        assert "IANA" in body["error"]
    assert (await gateway.admin("GET", "/locations/LOC1"))[0] == 404  # nothing stored

    bad_vat = TARIFF | {"elements": [{"price_components": [{"type": "ENERGY", "price": 0.3, "vat": -5, "step_size": 1}]}]}
    status, body = await gateway.admin("PUT", "/tariffs/BAD", bad_vat)
    assert (status, body["field"]) == (422, "elements[0].price_components[0].vat"), body
    bad_date = TARIFF | {"elements": [{"price_components": [{"type": "ENERGY", "price": 0.3, "step_size": 1}], "restrictions": {"start_date": "2026-02-30"}}]}
    status, body = await gateway.admin("PUT", "/tariffs/BAD", bad_date)
    assert (status, body["field"]) == (422, "elements[0].restrictions.start_date"), body
    status, body = await gateway.admin("PUT", "/tariffs/BAD", TARIFF | {"currency": "EU1"})
    assert (status, body["field"]) == (422, "currency"), body
    assert (await gateway.admin("GET", "/tariffs/BAD"))[0] == 404

    # A tariff a location uses stays until the location moves on.
    assert (await gateway.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    assert (await gateway.admin("PUT", "/locations/LOC2", LOCATION | {"evses": {}}))[0] == 201
    status, body = await gateway.admin("DELETE", "/tariffs/AC-STD")
    assert status == 409
    assert "LOC1" in body["error"] and "LOC2" in body["error"]
    assert (await gateway.admin("GET", "/tariffs/AC-STD"))[0] == 200
    free = [{k: v for k, v in LOCATION["connectors"][0].items() if k != "tariff_ids"}]
    for location_id in ("LOC1", "LOC2"):
        assert (await gateway.admin("PUT", f"/locations/{location_id}", LOCATION | {"connectors": free}))[0] == 200
    assert (await gateway.admin("DELETE", "/tariffs/AC-STD"))[0] == 204


async def test_failed_cdr_is_listed_and_retried_after_the_fix(gateways: GatewayFactory, emsp: ReferencingEmsp) -> None:
    gw = await _world(gateways, emsp)
    await _break_time_zone(gw, "LOC1", "Mars/Olympus_Mons")
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=1000, timestamp="2026-11-23T10:00:00Z"))
        await cp.call(call16.StopTransaction(meter_stop=4000, timestamp="2026-11-23T10:30:00Z", transaction_id=start.transaction_id))
    async with connect(gw.ws_url, "CP201", "2.0.1") as cp:
        await cp.call(call201.BootNotification(charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp"))
        for seq, (kind, ts, wh) in enumerate([("Started", "11:00", 0.0), ("Ended", "11:30", 2000.0)]):
            extra: dict[str, Any] = {"evse": {"id": 1, "connectorId": 1}, "id_token": {"idToken": "DRIVER1", "type": "ISO14443"}} if kind == "Started" else {}
            stamp = f"2026-11-23T{ts}:00Z"
            await cp.call(call201.TransactionEvent(
                event_type=kind, timestamp=stamp, trigger_reason="Authorized", seq_no=seq, transaction_info={"transactionId": "TX-F"},
                meter_value=[{"timestamp": stamp, "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}]}], **extra,
            ))

    # The sessions went out; the CDRs could not be made, and the operator sees why.
    status, failed = await gw.admin("GET", "/cdrs/failed")
    assert status == 200
    assert len(failed) == 2
    txs = {t["id"] for t in (await gw.admin("GET", "/transactions"))[1]}
    assert {f["tx_id"] for f in failed} == txs
    for failure in failed:
        assert "time_zone" in failure["reason"] and "Mars/Olympus_Mons" in failure["reason"]
        assert failure["attempts"] == 1 and failure["session_id"] == failure["tx_id"]
    await _until(lambda: _drained(gw), "the sessions to be delivered")
    assert [s["status"] for s in emsp.sessions().values()] == ["COMPLETED", "COMPLETED"]
    assert emsp.cdrs() == []

    # Retrying before the fix fails again, with the reason; the item stays.
    tx_id = failed[0]["tx_id"]
    status, body = await gw.admin("POST", f"/cdrs/failed/{tx_id}/retry")
    assert status == 422 and "time_zone" in body["error"]
    status, one = await gw.admin("GET", f"/cdrs/failed/{tx_id}")
    assert (status, one["attempts"]) == (200, 2)

    # The operator fixes the location and retries: the CDRs are made, priced and sent.
    assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 200
    for failure in failed:
        status, body = await gw.admin("POST", f"/cdrs/failed/{failure['tx_id']}/retry")
        assert status == 200, body
        assert body["status"] == "built" and body["cdr"]["id"] == failure["tx_id"]
    assert (await gw.admin("GET", "/cdrs/failed"))[1] == []
    cdrs = await _until(lambda: _cdrs_once_drained(gw, emsp), "the CDRs at the eMSP")
    assert sorted(Decimal(str(c["total_cost"]["excl_vat"])) for c in cdrs) == [Decimal("0.70"), Decimal("1.05")]
    for cdr in cdrs:
        validate_against_openapi("cdrs", "CDR", cdr)
    status, body = await gw.admin("POST", f"/cdrs/failed/{tx_id}/retry")
    assert status == 404
    assert (await gw.admin("POST", "/cdrs/failed/NOPE/retry"))[0] == 404
    assert (await gw.admin("GET", "/cdrs/failed/NOPE"))[0] == 404


async def _cdrs_once_drained(gw: Gateway, emsp: ReferencingEmsp) -> list[dict[str, Any]]:
    return emsp.cdrs() if await _drained(gw) and len(emsp.cdrs()) == 2 else []


async def test_resync_goes_on_past_a_failing_transaction(gateways: GatewayFactory, emsp: ReferencingEmsp) -> None:
    gw = await _world(gateways, emsp)
    assert (await gw.admin("PUT", "/locations/LOC2", LOCATION | {"evses": {}}))[0] == 201
    assert (await gw.admin("PUT", "/chargers/CPB", {"location_id": "LOC2", "evses": [{"ocpp_id": 1, "evse_uid": "CPB-1"}]}))[0] == 201
    await _break_time_zone(gw, "LOC2", "Atlantis/Capital")
    # Ended transactions a crash cut off before the bridge heard of them; the newest, which
    # the resync meets first, cannot make a CDR.
    t0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    for tx_id, charger, start in (("tx-good", "CP201", t0), ("tx-bad", "CPB", t0 + timedelta(hours=1))):
        tx = Transaction(
            id=tx_id, charger_id=charger, ocpp_id=tx_id.upper(), evse_id=1, connector_id=1, started_at=start,
            status=TransactionStatus.COMPLETED, id_token=IdToken("DRIVER1"), meter_start_wh=Decimal(0),
            meter_stop_wh=Decimal(3000), stopped_at=start + timedelta(minutes=30),
        )
        assert (await gw.store.transactions.create(tx))[1]
    await gateways.stop(gw)
    gw = await gateways.start(gw.settings, clock=FakeClock())  # the restart's resync

    [failure] = await _until(lambda: _failed(gw), "the failed CDR")
    assert failure["tx_id"] == "tx-bad" and "Atlantis/Capital" in failure["reason"]
    await _until(lambda: _cdr_of(gw, emsp, "tx-good"), "the CDR of the transaction after it")


async def _failed(gw: Gateway) -> list[Any]:
    return list((await gw.admin("GET", "/cdrs/failed"))[1])


async def _cdr_of(gw: Gateway, emsp: ReferencingEmsp, tx_id: str) -> bool:
    return await _drained(gw) and [c["id"] for c in emsp.cdrs()] == [tx_id]
