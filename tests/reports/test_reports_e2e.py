"""Reports against a scenario with known totals: real 1.6 charge points over WebSockets,
a real eMSP receiving a priced CDR, an injected clock so that periods and uptime are exact.
Both backends. Every figure is checked to the Wh, the cent and the second, and against
what the store holds (transactions, CDR documents)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
from ocpp.v16 import call as call16

from gateway.keys import HISTORY
from tests.conftest import ADMIN_TOKEN, FakeClock, Gateway, GatewayFactory
from tests.roaming.emsp import EmspPlatform, token_header
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect

DAY1 = "2026-11-23"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _mv(ts: str, wh: str) -> list[dict[str, Any]]:
    return [{"timestamp": ts, "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}]}]


async def _world(gateways: GatewayFactory, emsp: EmspPlatform, clock: FakeClock) -> tuple[Gateway, str]:
    gw = await gateways.start(clock=clock)
    _, partner = await gw.admin("POST", "/partners", {"name": "eMSP"})
    status, _ = await gw.admin(
        "POST", f"/partners/{partner['id']}/register", {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a}
    )
    assert status == 200
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    await gw.admin("PUT", "/chargers/CP-A", {"location_id": "LOC1", "evses": [{"ocpp_id": 1, "evse_uid": "CP-A-1"}]})
    await gw.admin("PUT", "/chargers/CP-B", {"evses": [{"ocpp_id": 1, "evse_uid": "CP-B-1"}, {"ocpp_id": 2, "evse_uid": "CP-B-2"}]})
    await gw.admin("PUT", "/tokens/TAG-OK", {"valid": True})
    assert emsp.cpo_token is not None
    async with aiohttp.ClientSession() as s, s.put(
        f"{gw.url}/ocpi/2.2.1/tokens/NL/EMS/DRIVER1", json=emsp.token("DRIVER1"), headers=token_header(emsp.cpo_token)
    ) as r:
        assert r.status == 201
    return gw, str(partner["id"])


async def _offline(gw: Gateway, cp_id: str) -> None:
    for _ in range(250):
        state = await gw.store.charger_states.get(cp_id)
        if state is not None and not state.connected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{cp_id} not recorded offline")


async def _scenario(gw: Gateway, clock: FakeClock) -> None:
    """Day 1 (2026-11-23 UTC) and day 2, known to the second (the gateway's clock moved
    with the chargers' timestamps):

    CP-A (LOC1, one EVSE): online 08:00; Faulted (GroundFailure) 12:00-12:30, reported
    twice; session 1 (DRIVER1, roaming, priced) 10:00-11:00, 10,000 -> 15,000 Wh,
    charging until 10:40, parked after; session 2 (TAG-OK, local) 23:30 - day 2 01:00,
    20,000 -> 21,234 Wh, charging until 00:30; offline at day 2 02:00.
    CP-B (no location, two EVSEs): online from 06:00 day 1 to the end; a session (TAG-OK)
    on EVSE 2 07:00-07:30, 0 -> 501 Wh; EVSE 2 Faulted (OverCurrentFailure) 18:00 - day 2
    06:00.
    """
    clock.current = at("2026-11-23T06:00:00")
    async with connect(gw.ws_url, "CP-B", "1.6") as b:
        await b.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="B"))
        for c in (1, 2):
            await b.call(call16.StatusNotification(connector_id=c, error_code="NoError", status="Available"))
        clock.current = at("2026-11-23T07:00:00")
        start = await b.call(call16.StartTransaction(connector_id=2, id_tag="TAG-OK", meter_start=0, timestamp="2026-11-23T07:00:00Z"))
        await b.call(call16.MeterValues(connector_id=2, transaction_id=start.transaction_id, meter_value=_mv("2026-11-23T07:20:00Z", "500.5")))
        clock.current = at("2026-11-23T07:30:00")
        await b.call(call16.StopTransaction(meter_stop=501, timestamp="2026-11-23T07:30:00Z", transaction_id=start.transaction_id))

        clock.current = at("2026-11-23T08:00:00")
        async with connect(gw.ws_url, "CP-A", "1.6") as a:
            await a.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="A"))
            await a.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
            clock.current = at("2026-11-23T10:00:00")
            assert (await a.call(call16.Authorize(id_tag="DRIVER1"))).id_tag_info["status"] == "Accepted"
            s1 = await a.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=10_000, timestamp="2026-11-23T10:00:00Z"))
            tx = s1.transaction_id
            for ts, wh in (("10:10", "11000"), ("10:20", "12500"), ("10:40", "15000")):
                clock.current = at(f"2026-11-23T{ts}:00")
                await a.call(call16.MeterValues(connector_id=1, transaction_id=tx, meter_value=_mv(f"2026-11-23T{ts}:00Z", wh)))
            clock.current = at("2026-11-23T11:00:00")
            await a.call(call16.StopTransaction(meter_stop=15_000, timestamp="2026-11-23T11:00:00Z", transaction_id=tx))

            clock.current = at("2026-11-23T12:00:00")
            await a.call(call16.StatusNotification(connector_id=1, error_code="GroundFailure", status="Faulted"))
            clock.current = at("2026-11-23T12:10:00")  # the same fault again: not a new one
            await a.call(call16.StatusNotification(connector_id=1, error_code="GroundFailure", status="Faulted"))
            clock.current = at("2026-11-23T12:30:00")
            await a.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))

            clock.current = at("2026-11-23T18:00:00")
            await b.call(call16.StatusNotification(connector_id=2, error_code="OverCurrentFailure", status="Faulted"))

            clock.current = at("2026-11-23T23:30:00")
            s2 = await a.call(call16.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=20_000, timestamp="2026-11-23T23:30:00Z"))
            clock.current = at("2026-11-24T00:30:00")
            await a.call(call16.MeterValues(connector_id=1, transaction_id=s2.transaction_id, meter_value=_mv("2026-11-24T00:30:00Z", "21234")))
            clock.current = at("2026-11-24T01:00:00")
            await a.call(call16.StopTransaction(meter_stop=21_234, timestamp="2026-11-24T01:00:00Z", transaction_id=s2.transaction_id))
            clock.current = at("2026-11-24T02:00:00")
        await _offline(gw, "CP-A")
        clock.current = at("2026-11-24T06:00:00")
        await b.call(call16.StatusNotification(connector_id=2, error_code="NoError", status="Available"))
        clock.current = at("2026-11-25T00:00:00")
        await gw.app[HISTORY].flush()
    clock.current = at("2026-11-25T00:00:00")


async def _report(gw: Gateway, kind: str, **params: str) -> tuple[int, Any]:
    query = {"from": DAY1, "to": "2026-11-25", "period": "day"} | params
    return await gw.admin("GET", f"/reports/{kind}", params=query)


def _rows(body: Any, *keys: str) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(r[k] for k in ("period_start", *keys)): r for r in body["rows"]}


async def test_reports_match_a_scenario_with_known_totals(gateways: GatewayFactory, emsp: EmspPlatform) -> None:
    clock = FakeClock()
    gw, partner_id = await _world(gateways, emsp, clock)
    await _scenario(gw, clock)
    d1, d2 = "2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z"

    # -- usage per charger and day ------------------------------------------------------
    status, body = await _report(gw, "usage", by="charger")
    assert status == 200, body
    assert body["columns"][:3] == ["period_start", "period_end", "charger_id"]
    rows = _rows(body, "charger_id")
    assert set(rows) == {(d1, "CP-A"), (d2, "CP-A"), (d1, "CP-B"), (d2, "CP-B")}
    a1, a2, b1 = rows[(d1, "CP-A")], rows[(d2, "CP-A")], rows[(d1, "CP-B")]
    assert a1["period_end"] == d2
    # Sessions and energy count on the day they started: 5,000 + 1,234 Wh.
    assert (a1["sessions"], a1["energy_kwh"]) == (2, "6.234")
    assert (a2["sessions"], a2["energy_kwh"]) == (0, "0.000")
    # Charging 10:00-10:40 and 23:30-24:00; parked 10:40-11:00. Day 2: 00:00-00:30, 00:30-01:00.
    assert (a1["charging_seconds"], a1["parking_seconds"]) == (2400 + 1800, 1200)
    assert (a2["charging_seconds"], a2["parking_seconds"]) == (1800, 1800)
    assert a1["utilization"] == str((Decimal(4200) / 86400).quantize(Decimal("0.0001")))  # 0.0486
    # CP-B: 501 Wh (its meter value 500.5 is not its stop); charging 07:00-07:30 on two EVSEs.
    assert (b1["sessions"], b1["energy_kwh"], b1["charging_seconds"], b1["evses"]) == (1, "0.501", 1800, 2)
    assert b1["utilization"] == str((Decimal(1800) / (2 * 86400)).quantize(Decimal("0.0001")))
    # The figures agree with the stored transactions, to the Wh.
    stored = await gw.store.transactions.list(limit=100)
    assert sum(tx.energy_wh for tx in stored) == Decimal("6234") + Decimal("501")
    assert sum(Decimal(r["energy_kwh"]) for r in body["rows"]) * 1000 == sum(tx.energy_wh for tx in stored)

    # -- per EVSE and per location over the whole range ----------------------------------
    status, body = await _report(gw, "usage", by="evse", period="range")
    evses = {(r["charger_id"], r["evse_id"]): r for r in body["rows"]}
    assert set(evses) == {("CP-A", "1"), ("CP-B", "1"), ("CP-B", "2")}
    assert evses[("CP-B", "2")]["evse_uid"] == "CP-B-2"
    assert (evses[("CP-B", "1")]["sessions"], evses[("CP-B", "2")]["sessions"]) == (0, 1)
    status, body = await _report(gw, "usage", by="location", period="range")
    locations = {r["location_id"]: r for r in body["rows"]}
    assert locations["LOC1"]["energy_kwh"] == "6.234" and locations[""]["energy_kwh"] == "0.501"
    assert locations["LOC1"]["charging_seconds"] == 6000

    # -- revenue per partner, against the stored CDRs, to the cent -----------------------
    status, body = await _report(gw, "revenue", by="partner")
    assert status == 200, body
    assert [(r["period_start"], r["partner_id"], r["currency"], r["cdrs"]) for r in body["rows"]] == [(d1, partner_id, "EUR", 1)]
    row = body["rows"][0]
    # 5 kWh at 0.35 excl. VAT, 21 % VAT: 1.75 / 2.12.
    assert (row["energy_kwh"], row["revenue_excl_vat"], row["revenue_incl_vat"]) == ("5.000", "1.75", "2.12")
    docs, _ = await gw.store.cdrs.list(owner=partner_id)
    cdrs = [json.loads(d.data["cdr"], parse_float=Decimal) for d in docs]
    assert sum(Decimal(str(c["total_cost"]["excl_vat"])) for c in cdrs) == Decimal(row["revenue_excl_vat"])
    assert sum(Decimal(str(c["total_cost"]["incl_vat"])) for c in cdrs) == Decimal(row["revenue_incl_vat"])
    status, body = await _report(gw, "usage", by="partner", period="range")
    partners = {r["partner_id"]: r for r in body["rows"]}
    assert partners[partner_id]["energy_kwh"] == "5.000" and partners[""]["energy_kwh"] == "1.735"
    assert partners[""]["utilization"] is None

    # -- uptime, from the stored history --------------------------------------------------
    status, body = await _report(gw, "uptime", by="charger")
    assert status == 200, body
    rows = _rows(body, "charger_id")
    # CP-A day 1: unknown until 08:00; down 12:00-12:30. Day 2: up until 02:00, then offline.
    a1, a2 = rows[(d1, "CP-A")], rows[(d2, "CP-A")]
    assert (a1["observed_seconds"], a1["up_seconds"], a1["unknown_seconds"]) == (57600, 55800, 28800)
    assert a1["uptime"] == "0.9688"  # 55,800 / 57,600 = 0.96875, half to even
    assert (a2["observed_seconds"], a2["up_seconds"], a2["uptime"]) == (86400, 7200, "0.0833")
    # CP-B, two EVSEs from 06:00: EVSE 2 faulted 18:00 - day 2 06:00.
    b1, b2 = rows[(d1, "CP-B")], rows[(d2, "CP-B")]
    assert (b1["observed_seconds"], b1["up_seconds"]) == (2 * 64800, 64800 + 43200)
    assert (b2["observed_seconds"], b2["up_seconds"]) == (2 * 86400, 86400 + 64800)
    status, body = await _report(gw, "uptime", by="evse", period="range")
    evses = {(r["charger_id"], r["evse_id"]): r for r in body["rows"]}
    assert evses[("CP-B", "1")]["up_seconds"] == 64800 + 86400
    assert evses[("CP-B", "2")]["up_seconds"] == 43200 + 64800

    # -- faults by error code ---------------------------------------------------------------
    status, body = await _report(gw, "faults", by="charger")
    faults = [(r["period_start"], r["charger_id"], r["error_code"], r["faults"]) for r in body["rows"]]
    assert faults == [(d1, "CP-A", "GroundFailure", 1), (d1, "CP-B", "OverCurrentFailure", 1)]

    # -- CSV: the same rows ------------------------------------------------------------------
    async with aiohttp.ClientSession() as s, s.get(
        f"{gw.url}/admin/reports/usage",
        params={"from": DAY1, "to": "2026-11-25", "period": "day", "format": "csv"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ) as r:
        assert r.status == 200
        assert r.content_type == "text/csv"
        assert "attachment" in r.headers["Content-Disposition"]
        table = list(csv.DictReader(io.StringIO(await r.text())))
    _, body = await _report(gw, "usage", by="charger")
    assert [{k: ("" if v is None else str(v)) for k, v in row.items()} for row in body["rows"]] == table

    # -- periods in a time zone: Amsterdam's day 1 starts at 23:00 UTC the day before --------
    status, body = await _report(gw, "usage", by="charger", tz="Europe/Amsterdam", **{"from": "2026-11-23", "to": "2026-11-24"})
    assert status == 200, body
    assert body["rows"][0]["period_start"] == "2026-11-23T00:00:00+01:00"
    a = _rows(body, "charger_id")[("2026-11-23T00:00:00+01:00", "CP-A")]
    # 23:30 UTC is 00:30 on the 24th in Amsterdam: only session 1 is in.
    assert (a["sessions"], a["energy_kwh"], a["charging_seconds"]) == (1, "5.000", 2400)


async def test_bad_report_requests_name_the_field(gateways: GatewayFactory) -> None:
    gw = await gateways.start()
    cases = [
        ("usage", {"to": "2026-11-25"}, 400, "from"),
        ("usage", {"from": "yesterday", "to": "2026-11-25"}, 400, "from"),
        ("usage", {"from": "2026-11-25", "to": "2026-11-24"}, 400, "to"),
        ("usage", {"from": "2026-11-24", "to": "2026-11-25", "by": "planet"}, 400, "by"),
        ("uptime", {"from": "2026-11-24", "to": "2026-11-25", "by": "partner"}, 400, "by"),
        ("usage", {"from": "2026-11-24", "to": "2026-11-25", "tz": "Mars/Olympus"}, 400, "tz"),
        ("usage", {"from": "2026-11-24", "to": "2026-11-25", "period": "hour"}, 400, "period"),
        ("usage", {"from": "1900-01-01", "to": "2199-01-01", "period": "day"}, 400, "from"),
        ("usage", {"from": "1971-01-01", "to": "2199-01-01", "period": "day"}, 400, "period"),
        ("usage", {"from": "2026-11-24", "to": "2026-11-25", "colour": "red"}, 400, "colour"),
        ("usage", {"from": "2026-11-24", "to": "2026-11-25", "format": "xml"}, 400, "format"),
        ("weather", {"from": "2026-11-24", "to": "2026-11-25"}, 404, "kind"),
    ]
    for kind, params, status, field in cases:
        got, body = await gw.admin("GET", f"/reports/{kind}", params=params)
        assert (got, body.get("field")) == (status, field), (kind, params, body)
        assert body["error"]
    got, body = await gw.admin("GET", "/reports")
    assert got == 200 and set(body) == {"usage", "revenue", "uptime", "faults"}
    assert body["uptime"]["by"] == ["charger", "evse", "location"]
