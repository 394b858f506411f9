"""Charging profiles end to end: the admin API, the real app on both storage backends,
and simulated 1.6 / 2.0.1 / 2.1 chargers (tests/sim.py) over real WebSockets that apply what
they receive (the EV on an EVSE draws what its limit allows)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.sim import EV, boot, connect

VERSIONS = ["1.6", "2.0.1", "2.1"]


async def until(condition: Callable[[], Awaitable[bool] | bool], bound: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + bound
    while True:
        value = condition()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def register(gw: Gateway, cp_id: str, evses: int = 2) -> None:
    status, body = await gw.admin(
        "PUT",
        f"/chargers/{cp_id}",
        {"evses": [{"ocpp_id": i, "evse_uid": f"{cp_id}-{i}"} for i in range(1, evses + 1)]},
    )
    assert status == 201, body
    status, body = await gw.admin("PUT", "/tokens/TAG-EV", {"valid": True})
    assert status in (200, 201), body




def body(evse: int, purpose: str, limit: str | int, **extra: Any) -> dict[str, Any]:
    schedule = {"unit": "A", "periods": [{"start_period": 0, "limit": limit}]}
    schedule.update(extra.pop("schedule", {}))
    return {"evse_id": evse, "purpose": purpose, "schedule": schedule, **extra}


@pytest.mark.parametrize("version", VERSIONS)
async def test_set_read_clear_through_the_admin_api(gateway: Gateway, version: str) -> None:
    await register(gateway, "SC1")
    base = "/chargers/SC1/charging-profiles"
    async with connect(gateway.ws_url, "SC1", version) as cp:
        await boot(cp, version)
        if version != "1.6":
            cp.report_chunk = 1  # one ReportChargingProfiles per profile, tbc between

        status, view = await gateway.admin(
            "PUT", f"{base}/1", body(0, "ChargingStationMaxProfile", 20)
        )
        assert status == 201, view
        assert view["charger"]["status"] == "Accepted"
        assert cp.station_limit() == 20
        # Limits go out rounded down to 0.1: never above what was asked.
        status, view = await gateway.admin("PUT", f"{base}/2", body(1, "TxDefaultProfile", "10.07"))
        assert (status, view["charger"]["status"]) == (201, "Accepted"), view
        assert view["asked"]["schedule"]["periods"][0]["limit"] == "10.07"
        assert cp.limit(1) == Decimal("10.0")

        # The EV on EVSE 1 draws what its limit allows, and the meter says so.
        cp.plug(1, EV(max_current=Decimal(32)))
        tx = await cp.start_transaction(1)
        assert cp.draw(1) == 10
        status, view = await gateway.admin(
            "PUT", f"{base}/3", body(1, "TxProfile", 6, transaction_id=tx)
        )
        assert (status, view["charger"]["status"]) == (201, "Accepted"), view
        assert cp.draw(1) == 6
        assert await cp.send_meter_values(1) == 6
        _, txs = await gateway.admin("GET", "/transactions?charger_id=SC1")
        _, detail = await gateway.admin("GET", f"/transactions/{txs[0]['id']}")
        currents = {
            Decimal(r["value"])
            for r in detail["meter_readings"]
            if r["measurand"] == "Current.Import"
        }
        assert currents == {6}

        # Replacing a profile answers 200; what was asked stands beside the charger's answer.
        status, view = await gateway.admin("PUT", f"{base}/2", body(1, "TxDefaultProfile", 8))
        assert status == 200, view
        status, view = await gateway.admin("GET", f"{base}/2")
        assert status == 200
        assert view["asked"]["purpose"] == "TxDefaultProfile"
        assert view["charger"]["status"] == "Accepted" and view["charger"]["answered_at"]
        status, listing = await gateway.admin("GET", base)
        assert [p["profile_id"] for p in listing["profiles"]] == [1, 2, 3]

        status, composite = await gateway.admin(
            "GET", "/chargers/SC1/composite-schedule?evse_id=1&duration=600&unit=A"
        )
        assert status == 200, composite
        assert composite["status"] == "Accepted"
        assert composite["schedule"]["evse_id"] == 1 and composite["schedule"]["unit"] == "A"
        assert Decimal(composite["schedule"]["periods"][0]["limit"]) == 6

        if version != "1.6":
            status, listing = await gateway.admin("GET", f"{base}?from_charger=true")
            assert status == 200, listing
            assert listing["reports_complete"] is True
            reported = {(r["evse_id"], r["profile_id"], r["source"]) for r in listing["reported"]}
            assert reported == {(0, 1, "CSO"), (1, 2, "CSO"), (1, 3, "CSO")}
            assert (
                next(r for r in listing["reported"] if r["profile_id"] == 3)["profile"][
                    "transaction_id"
                ]
                == tx
            )
        else:
            status, answer = await gateway.admin("GET", f"{base}?from_charger=true")
            assert status == 422, answer

        status, answer = await gateway.admin("DELETE", f"{base}/3")
        assert (status, answer["charger"]["status"]) == (200, "Accepted"), answer
        assert cp.draw(1) == 8
        status, answer = await gateway.admin("DELETE", f"{base}/3")
        assert status == 404, answer
        status, answer = await gateway.admin("DELETE", f"{base}?purpose=TxDefaultProfile")
        assert (status, answer["removed"]) == (200, [2]), answer
        assert sorted(cp.profiles) == [1]
        assert cp.draw(1) == 20
        status, listing = await gateway.admin("GET", base)
        assert [p["profile_id"] for p in listing["profiles"]] == [1]
        await cp.stop_transaction(1)


async def test_admin_validation(gateway: Gateway) -> None:
    await register(gateway, "SC2")
    base = "/chargers/SC2/charging-profiles"
    cases: list[tuple[str, Any, int, str | None]] = [
        ("/1", body(1, "ChargingStationMaxProfile", 10), 422, "evse_id"),
        ("/1", body(1, "TxProfile", 10), 422, "transaction_id"),
        ("/1", body(1, "TxDefaultProfile", 10, transaction_id="7"), 422, "transaction_id"),
        ("/1", body(1, "TxDefaultProfile", 10, kind="Recurring"), 422, "recurrency"),
        ("/1", body(1, "TxDefaultProfile", -1), 422, "schedule.periods[0].limit"),
        ("/1", body(1, "Other", 10), 422, "purpose"),
        (
            "/1",
            body(
                1, "TxDefaultProfile", 10, schedule={"periods": [{"start_period": 5, "limit": 1}]}
            ),
            422,
            "schedule.periods",
        ),
        ("/x", body(1, "TxDefaultProfile", 10), 400, "profile_id"),
    ]
    for path, payload, code, field in cases:
        status, answer = await gateway.admin("PUT", base + path, payload)
        assert (status, answer.get("field")) == (code, field), (payload, answer)
    status, answer = await gateway.admin(
        "PUT", "/chargers/NOPE/charging-profiles/1", body(1, "TxDefaultProfile", 1)
    )
    assert status == 404, answer
    status, answer = await gateway.admin("GET", "/chargers/SC2/composite-schedule?evse_id=1")
    assert (status, answer["field"]) == (400, "duration"), answer
    # The charger is not connected: a query cannot be answered.
    status, answer = await gateway.admin(
        "GET", "/chargers/SC2/composite-schedule?evse_id=1&duration=60"
    )
    assert status == 409, answer
    status, answer = await gateway.admin("GET", f"{base}/1")
    assert status == 404, answer


@pytest.mark.parametrize("version", VERSIONS)
async def test_sent_again_after_reconnect_reboot_and_offline(
    gateway: Gateway, version: str
) -> None:
    await register(gateway, "SC3")
    base = "/chargers/SC3/charging-profiles"
    async with connect(gateway.ws_url, "SC3", version) as cp:
        await boot(cp, version)
        status, view = await gateway.admin("PUT", f"{base}/10", body(1, "TxDefaultProfile", 12))
        assert (status, view["charger"]["status"]) == (201, "Accepted"), view
        status, view = await gateway.admin("PUT", f"{base}/11", body(2, "TxDefaultProfile", 9))
        assert status == 201, view
        # A reboot loses the profiles; the BootNotification brings them back at once.
        cp.profiles.clear()
        await boot(cp, version)
        await until(lambda: sorted(cp.profiles) == [10, 11])
        assert cp.limit(1) == 12

    async def disconnected() -> bool:
        _, charger = await gateway.admin("GET", "/chargers/SC3")
        return charger["connected"] is False

    await until(disconnected)
    # Offline: stored, not sent (202), and one removed is cleared when the charger comes.
    status, view = await gateway.admin(
        "PUT", f"{base}/12", body(0, "ChargingStationMaxProfile", 16)
    )
    assert (status, view["charger"]["status"]) == (202, "NotSent"), view
    status, answer = await gateway.admin("DELETE", f"{base}/11")
    assert status == 202, answer
    status, listing = await gateway.admin("GET", base)
    assert [p["profile_id"] for p in listing["profiles"]] == [12, 10]
    assert listing["clearing"] == [11]

    # Reconnects without a boot (a network drop): sent after the settle time.
    async with connect(gateway.ws_url, "SC3", version) as cp:
        def cleared() -> list[dict[str, Any]]:
            return [kw for name, kw in cp.received if name == "ClearChargingProfile"]

        # The clear may come after the sets: wait for both (the test once read too soon).
        await until(lambda: sorted(cp.profiles) == [10, 12] and bool(cleared()))
        await asyncio.sleep(0.2)  # a second clear, if one were sent, arrives by now
        assert len(cleared()) == 1
        assert cleared()[0].get("id", cleared()[0].get("charging_profile_id")) == 11
        assert cp.station_limit() == 16

        async def answered() -> bool:
            _, view = await gateway.admin("GET", f"{base}/12")
            return bool(view["charger"]["status"] == "Accepted")

        await until(answered)
        status, listing = await gateway.admin("GET", base)
        assert listing["clearing"] == []


@pytest.mark.parametrize("version", VERSIONS)
async def test_charger_that_rejects(gateway: Gateway, version: str) -> None:
    await register(gateway, "SC4")
    base = "/chargers/SC4/charging-profiles"
    async with connect(gateway.ws_url, "SC4", version) as cp:
        await boot(cp, version)
        cp.profile_status = "Rejected"
        status, view = await gateway.admin("PUT", f"{base}/5", body(1, "TxDefaultProfile", 7))
        assert (status, view["charger"]["status"]) == (201, "Rejected"), view
        assert cp.profiles == {}
        if version == "1.6":
            cp.profile_status = "NotSupported"
            status, view = await gateway.admin("PUT", f"{base}/5", body(1, "TxDefaultProfile", 7))
            assert (status, view["charger"]["status"]) == (200, "NotSupported"), view
        # A TxProfile for a transaction the charger does not run: rejected by it.
        cp.profile_status = None
        status, view = await gateway.admin(
            "PUT", f"{base}/6", body(1, "TxProfile", 7, transaction_id="123")
        )
        assert (status, view["charger"]["status"]) == (201, "Rejected"), view
        # What its version cannot carry is refused and not kept.
        if version == "1.6":
            status, answer = await gateway.admin(
                "PUT", f"{base}/7", body(1, "TxProfile", 7, transaction_id="abc")
            )
            assert status == 422, answer
            status, _ = await gateway.admin("GET", f"{base}/7")
            assert status == 404
        # Once it takes profiles, a boot sends the stored one again.
        await boot(cp, version)
        await until(lambda: 5 in cp.profiles)


@pytest.mark.parametrize("version", VERSIONS)
async def test_callerror_and_timeout_are_kept_and_sent_again(
    gateways: GatewayFactory, version: str
) -> None:
    gateway = await gateways.start(call_timeout=1)
    await register(gateway, "SC5")
    base = "/chargers/SC5/charging-profiles"
    async with connect(gateway.ws_url, "SC5", version) as cp:
        await boot(cp, version)
        handlers = cp.route_map["SetChargingProfile"]
        accept = handlers["_on_action"]

        def failing(**kwargs: Any) -> Any:
            raise RuntimeError("profile storage full")  # the library answers a CALLERROR

        async def slow(**kwargs: Any) -> Any:
            await asyncio.sleep(2)
            return accept(**kwargs)

        handlers["_on_action"] = failing
        status, answer = await gateway.admin("PUT", f"{base}/8", body(1, "TxDefaultProfile", 11))
        assert status == 502, answer
        status, view = await gateway.admin("GET", f"{base}/8")
        assert view["charger"]["status"] == "CallError" and view["charger"]["detail"], view

        handlers["_on_action"] = slow
        status, answer = await gateway.admin("PUT", f"{base}/9", body(2, "TxDefaultProfile", 7))
        assert status == 504, answer
        status, view = await gateway.admin("GET", f"{base}/9")
        assert view["charger"]["status"] == "Timeout", view

        # Both stay stored and go again at the next boot.
        handlers["_on_action"] = accept
        await until(lambda: 9 in cp.profiles)  # the late one was applied all the same
        cp.profiles.clear()
        await boot(cp, version)
        await until(lambda: sorted(cp.profiles) == [8, 9])

        async def both_accepted() -> bool:
            _, listing = await gateway.admin("GET", base)
            return {p["charger"]["status"] for p in listing["profiles"]} == {"Accepted"}

        await until(both_accepted)
