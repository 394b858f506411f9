"""Roaming sessions and CDRs from a 2.1 charger are those of a 2.0.1 charger: the same
charge (same token, meter values, times and gateway clock) on one of each, through the
real app to a real eMSP, gives the same OCPI session pushes and CDR but for their ids.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import aiohttp
from ocpp.v21 import call as call21
from ocpp.v201 import call as call201

from tests.conftest import FakeClock, GatewayFactory
from tests.ocpi.openapi import validate_against_openapi
from tests.roaming.emsp import EmspPlatform, token_header
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect

CHARGERS = {"2.0.1": "CP-A", "2.1": "CP-B"}


def _meter(ts: str, wh: int) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": ts,
            "sampledValue": [{"value": float(wh), "measurand": "Energy.Active.Import.Register"}],
        }
    ]


async def _charge(cp: Any, calls: ModuleType, clock: FakeClock, tx_id: str) -> None:
    """One charge: authorized, 5 kWh in 40 minutes, parked for 20."""
    await cp.call(
        calls.BootNotification(charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp")
    )
    token = {"idToken": "DRIVER1", "type": "eMAID"}
    auth = await cp.call(calls.Authorize(id_token=token))
    assert auth.id_token_info["status"] == "Accepted"

    def event(kind: str, seq: int, ts: str, wh: int, **extra: Any) -> Any:
        return calls.TransactionEvent(
            event_type=kind,
            timestamp=ts,
            trigger_reason=extra.pop("trigger", "MeterValuePeriodic"),
            seq_no=seq,
            transaction_info={"transactionId": tx_id} | extra.pop("info", {}),
            meter_value=_meter(ts, wh),
            **extra,
        )

    started = await cp.call(
        event(
            "Started",
            0,
            "2026-11-23T10:00:00Z",
            10_000,
            trigger="Authorized",
            id_token=token,
            evse={"id": 1, "connectorId": 1},
            info={"chargingState": "Charging"},
        )
    )
    assert started.id_token_info["status"] == "Accepted"
    await cp.call(event("Updated", 1, "2026-11-23T10:10:00Z", 11_000))
    clock.advance(30)  # within the minute: no PATCH
    await cp.call(event("Updated", 2, "2026-11-23T10:20:00Z", 12_500))
    clock.advance(60)
    await cp.call(event("Updated", 3, "2026-11-23T10:40:00Z", 15_000))
    await cp.call(
        event(
            "Updated",
            4,
            "2026-11-23T10:40:00Z",
            15_000,
            trigger="ChargingStateChanged",
            info={"chargingState": "EVConnected"},
        )
    )
    await cp.call(
        event(
            "Ended",
            5,
            "2026-11-23T11:00:00Z",
            15_000,
            trigger="EVDeparted",
            info={"stoppedReason": "EVDisconnected"},
        )
    )


# A session's or CDR's own fields that name the charge rather than describe it.
_IDS = {"id", "session_id", "authorization_reference"}


def _without_ids(body: dict[str, Any], evse_uid: str) -> dict[str, Any]:
    return {k: _evse(v, evse_uid) for k, v in body.items() if k not in _IDS}


def _evse(value: Any, evse_uid: str) -> Any:
    """``value`` with the charger's EVSE uid (the only other difference) made neutral."""
    if isinstance(value, dict):
        return {k: _evse(v, evse_uid) for k, v in value.items()}
    if isinstance(value, list):
        return [_evse(v, evse_uid) for v in value]
    return "EVSE" if value == evse_uid else value


async def test_a_21_charge_makes_the_sessions_and_cdr_of_a_201_charge(
    gateways: GatewayFactory, emsp: EmspPlatform
) -> None:
    clock = FakeClock()
    gw = await gateways.start(clock=clock)
    _, partner = await gw.admin("POST", "/partners", {"name": "eMSP"})
    status, _ = await gw.admin(
        "POST",
        f"/partners/{partner['id']}/register",
        {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a},
    )
    assert status == 200
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    for cp_id in CHARGERS.values():
        body = {"location_id": "LOC1", "evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]}
        assert (await gw.admin("PUT", f"/chargers/{cp_id}", body))[0] == 201
    assert emsp.cpo_token is not None
    async with (
        aiohttp.ClientSession() as s,
        s.put(
            f"{gw.url}/ocpi/2.2.1/tokens/NL/EMS/DRIVER1",
            json=emsp.token("DRIVER1"),
            headers=token_header(emsp.cpo_token),
        ) as r,
    ):
        assert r.status == 201

    pushed: dict[str, list[tuple[str, str, Any]]] = {}
    raw: dict[str, list[Any]] = {}
    for version, cp_id in CHARGERS.items():
        seen = {i.id for i in await gw.store.outbox.list(partner_id=partner["id"])}
        async with connect(gw.ws_url, cp_id, version) as cp:
            await _charge(cp, call21 if version == "2.1" else call201, clock, f"T-{cp_id}")
        items = [
            i
            for i in await gw.store.outbox.list(partner_id=partner["id"])
            if i.id not in seen and i.module in ("sessions", "cdrs")
        ]
        pushed[version] = [(i.module, i.method, _without_ids(i.body, f"{cp_id}-1")) for i in items]
        raw[version] = [i.body for i in items]
        clock.advance(3600)  # the next charge starts from the same place in its minute

    old, new = pushed["2.0.1"], pushed["2.1"]
    assert [(m, v) for m, v, _ in new] == [
        ("sessions", "PUT"),
        ("sessions", "PATCH"),
        ("sessions", "PUT"),
        ("cdrs", "POST"),
    ]
    # The gateway's clock moved on by an hour between the two: last_updated and the
    # CDR's own times differ by that and nothing else.
    for (_, _, a), (_, _, b) in zip(old, new, strict=True):
        a, b = _shifted(a), _shifted(b)
        assert a == b
    session, cdr = raw["2.1"][-2], raw["2.1"][-1]
    validate_against_openapi("sessions", "Session", session)
    validate_against_openapi("cdrs", "CDR", cdr)
    assert cdr["session_id"] == session["id"] != raw["2.0.1"][-1]["session_id"]
    assert cdr["cdr_location"]["evse_uid"] == "CP-B-1"
    assert cdr["total_cost"] == {"excl_vat": 1.75, "incl_vat": 2.12}
    assert [[d["type"] for d in p["dimensions"]] for p in cdr["charging_periods"]] == [
        ["ENERGY", "TIME"],
        ["PARKING_TIME"],
    ]


def _shifted(body: Any) -> Any:
    """``body`` without the times the gateway's clock writes (not the charger's)."""
    if isinstance(body, dict):
        return {k: _shifted(v) for k, v in body.items() if k != "last_updated"}
    return body
