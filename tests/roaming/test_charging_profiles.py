"""OCPI ChargingProfiles on the CPO side, end to end: a real eMSP (an aiohttp OCPI server,
tests/roaming/charging_profiles_emsp.py) sets, reads and clears a profile on its
driver's session at the gateway; simulated chargers (tests/sim.py) over real
WebSockets apply it; each result arrives at the eMSP's response_url, checked against
the official OpenAPI description. Both storage backends."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from gateway.domain import commands as cmd
from gateway.domain.charging import ProfilePurpose, constant_limit
from gateway.keys import ROUTER
from gateway.roaming.providers import PROVIDERS
from gateway.storage.base import OutboxStatus
from tests.conftest import Gateway, GatewayFactory
from tests.ocpi.openapi import validate_envelope
from tests.roaming.charging_profiles_emsp import ProfilesEmsp
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import boot, connect

PROFILE_16A = {
    "charging_rate_unit": "A",
    "charging_profile_period": [{"start_period": 0, "limit": 16}],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (result := check()):
            await asyncio.sleep(0.02)
    return result


class ShiftedClock:
    """The real time plus a shift the test moves forward."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift


@pytest.fixture
async def emsp() -> AsyncIterator[ProfilesEmsp]:
    platform = ProfilesEmsp()
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


async def world(gateways: GatewayFactory, emsp: ProfilesEmsp, **settings: Any) -> Gateway:
    """A gateway (its own URLs right: a free port) with the eMSP registered, a location
    with a 1.6 and a 2.0.1 charger, and the eMSP's token DRIVER1 pushed."""
    gw = await gateways.start(port=free_port(), outbox_poll_interval=0.2, **settings)
    _, partner = await gw.admin("POST", "/partners", {"name": "Smart eMSP"})
    status, _ = await gw.admin(
        "POST",
        f"/partners/{partner['id']}/register",
        {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a},
    )
    assert status == 200
    await emsp.learn_cpo(f"{gw.settings.base_url}/ocpi/versions")
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    for cp_id in ("CP16", "CP201"):
        evses = [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}, {"ocpp_id": 2, "evse_uid": f"{cp_id}-2"}]
        await gw.admin("PUT", f"/chargers/{cp_id}", {"location_id": "LOC1", "evses": evses})
    tokens = emsp.cpo_endpoints[("tokens", "RECEIVER")]
    for uid in ("DRIVER1", "DRIVER2"):
        answer = await emsp._call("PUT", f"{tokens}/NL/SCP/{uid}", emsp.token(uid))
        assert answer["status_code"] == 1000, answer
    return gw


async def session_of(emsp: ProfilesEmsp, count: int = 1) -> str:
    """The id of the ``count``-th session the gateway pushed to the eMSP."""
    ids = await eventually(lambda: list(emsp.sessions) if len(emsp.sessions) >= count else None)
    return str(ids[count - 1])


def response(answer: dict[str, Any]) -> str:
    """The ChargingProfileResponse's result, the envelope checked against OpenAPI."""
    body = {k: v for k, v in answer.items() if k != "http_status"}
    validate_envelope(body, "chargingprofiles", "ChargingProfileResponse")
    assert answer["http_status"] == 200 and answer["status_code"] == 1000, answer
    return str(answer["data"]["result"])


async def settled(gw: Gateway) -> None:
    """Every item the gateway stored has been delivered."""

    async def pending() -> bool:
        return not await gw.store.outbox.list(status=OutboxStatus.PENDING, limit=1)

    async with asyncio.timeout(15):
        while not await pending():
            await asyncio.sleep(0.02)
    assert await gw.store.outbox.list(status=OutboxStatus.FAILED, limit=1) == []


# -- the Receiver interface's answers -----------------------------------------------------


async def test_version_details_unknown_sessions_and_bad_input(
    gateways: GatewayFactory, emsp: ProfilesEmsp
) -> None:
    gw = await world(gateways, emsp)
    assert emsp.cpo_endpoints[("chargingprofiles", "RECEIVER")] == (
        f"{gw.settings.base_url}/ocpi/2.2.1/chargingprofiles"
    )
    # Unknown session: UNKNOWN_SESSION, at once, for each of the three requests.
    assert response(await emsp.set_profile("NOPE", PROFILE_16A, "set-0")) == "UNKNOWN_SESSION"
    assert response(await emsp.get_active("NOPE", 900, "get-0")) == "UNKNOWN_SESSION"
    assert response(await emsp.clear_profile("NOPE", "clear-0")) == "UNKNOWN_SESSION"
    # Bad input: 2001 naming the field or parameter.
    url = f"{emsp.cpo_endpoints[('chargingprofiles', 'RECEIVER')]}/S1"
    cases: list[tuple[str, dict[str, str] | None, Any, str]] = [
        ("GET", {"response_url": emsp.response_url("get-x")}, None, "duration"),
        ("GET", {"duration": "15m", "response_url": emsp.response_url("x")}, None, "duration"),
        ("GET", {"duration": "900"}, None, "response_url"),
        ("GET", {"duration": "900", "response_url": "/relative"}, None, "response_url"),
        ("DELETE", None, None, "response_url"),
        (
            "PUT",
            None,
            {"charging_profile": {"charging_profile_period": []}, "response_url": "http://x/y"},
            "charging_profile.charging_rate_unit",
        ),
        ("PUT", None, {"charging_profile": PROFILE_16A}, "response_url"),
    ]
    for method, params, body, field in cases:
        answer = await emsp._call(method, url, body, params)
        assert answer["status_code"] == 2001, (method, params, answer)
        assert answer["status_message"].startswith(field), answer
    assert emsp.results == {} and emsp.problems == []


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_set_get_and_clear_a_profile(
    gateways: GatewayFactory, emsp: ProfilesEmsp, version: str
) -> None:
    clock = ShiftedClock()
    gw = await world(gateways, emsp, clock=clock)
    cp_id = "CP16" if version == "1.6" else "CP201"
    async with connect(gw.ws_url, cp_id, version) as cp:
        await boot(cp, version)
        cp.plug(1)
        await cp.start_transaction(1, id_tag="DRIVER1")
        session_id = await session_of(emsp)
        assert cp.draw(1) == 32  # the car takes all the EVSE allows

        # PUT: a TxProfile for the session's transaction; the car now draws 16 A.
        assert response(await emsp.set_profile(session_id, PROFILE_16A, "set-1")) == "ACCEPTED"
        assert (await emsp.result_of("set-1")).body == {"result": "ACCEPTED"}
        (held,) = cp.profiles.values()
        assert (held.evse_id, held.purpose, held.transaction_id) == (
            1,
            "TxProfile",
            cp.transactions[1],
        )
        assert held.kind == "Relative" and cp.limit(1) == 16 and cp.draw(1) == 16
        lower = {
            "charging_rate_unit": "A",
            "charging_profile_period": [{"start_period": 0, "limit": 10.5}],
        }
        # Another PUT within GATEWAY_OCPI_PROFILE_MIN_INTERVAL (5 s): TOO_OFTEN, and the
        # charger is not sent it.
        assert response(await emsp.set_profile(session_id, lower, "set-x")) == "TOO_OFTEN"
        assert cp.limit(1) == 16 and "set-x" not in emsp.results
        clock.shift += timedelta(seconds=5)
        # A second PUT replaces the first (same profile id): 10.5 A from now on.
        assert response(await emsp.set_profile(session_id, lower, "set-2")) == "ACCEPTED"
        assert (await emsp.result_of("set-2")).body == {"result": "ACCEPTED"}
        assert len(cp.profiles) == 1 and cp.limit(1) == Decimal("10.5")

        # GET: the charger's composite schedule as the ActiveChargingProfile.
        assert response(await emsp.get_active(session_id, 900, "get-1")) == "ACCEPTED"
        result = (await emsp.result_of("get-1")).body
        assert result["result"] == "ACCEPTED"
        profile = result["profile"]["charging_profile"]
        assert profile["charging_rate_unit"] == "A"
        assert profile["charging_profile_period"] == [{"start_period": 0, "limit": 10.5}]
        assert "start_date_time" in result["profile"]

        # DELETE: the eMSP's profile goes; the car draws all again. Again: UNKNOWN.
        assert response(await emsp.clear_profile(session_id, "clear-1")) == "ACCEPTED"
        assert (await emsp.result_of("clear-1")).body == {"result": "ACCEPTED"}
        assert cp.profiles == {} and cp.draw(1) == 32
        assert response(await emsp.clear_profile(session_id, "clear-2")) == "ACCEPTED"
        assert (await emsp.result_of("clear-2")).body == {"result": "UNKNOWN"}

        # The session ends: its profiles are UNKNOWN_SESSION from then on.
        await cp.stop_transaction(1)
        await eventually(lambda: emsp.sessions[session_id]["status"] == "COMPLETED")
        assert response(await emsp.set_profile(session_id, PROFILE_16A, "set-3")) == (
            "UNKNOWN_SESSION"
        )
        assert response(await emsp.get_active(session_id, 60, "get-3")) == "UNKNOWN_SESSION"
    await settled(gw)
    assert emsp.problems == []
    # Every result came from the CPO party to the eMSP (OCPI-from/to-*).
    assert {r.routed for rs in emsp.results.values() for r in rs} == {("ZZ*GWY", "NL*SCP")}


async def test_rejected_by_the_charger_offline_and_unusable(
    gateways: GatewayFactory, emsp: ProfilesEmsp
) -> None:
    gw = await world(gateways, emsp)
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await boot(cp, "1.6")
        cp.plug(1)
        await cp.start_transaction(1, id_tag="DRIVER1")
        session_id = await session_of(emsp)
        # The charger refuses: ACCEPTED by the CPO, REJECTED by the charger.
        cp.profile_status = "Rejected"
        assert response(await emsp.set_profile(session_id, PROFILE_16A, "set-1")) == "ACCEPTED"
        assert (await emsp.result_of("set-1")).body == {"result": "REJECTED"}
        assert cp.profiles == {}
        # A profile OCPP cannot take (no period; first period not at 0): REJECTED at once.
        for profile in (
            {"charging_rate_unit": "W"},
            {
                "charging_rate_unit": "W",
                "charging_profile_period": [{"start_period": 60, "limit": 7000}],
            },
        ):
            assert response(await emsp.set_profile(session_id, profile, "set-x")) == "REJECTED"
    # The charger is offline: REJECTED at once.
    async with asyncio.timeout(10):
        while (state := await gw.store.charger_states.get("CP16")) is None or state.connected:
            await asyncio.sleep(0.02)
    assert response(await emsp.set_profile(session_id, PROFILE_16A, "set-2")) == "REJECTED"
    assert response(await emsp.get_active(session_id, 60, "get-2")) == "REJECTED"
    await settled(gw)
    assert set(emsp.results) == {"set-1"} and emsp.problems == []


async def test_another_emsps_session_is_unknown(
    gateways: GatewayFactory, emsp: ProfilesEmsp
) -> None:
    """A session of another partner's driver is not this eMSP's to steer."""
    gw = await world(gateways, emsp)
    other = ProfilesEmsp(party_id="OTH")
    await other.start()
    try:
        _, partner = await gw.admin("POST", "/partners", {"name": "Other eMSP"})
        status, _ = await gw.admin(
            "POST",
            f"/partners/{partner['id']}/register",
            {"versions_url": f"{other.url}/ocpi/versions", "token": other.token_a},
        )
        assert status == 200
        await other.learn_cpo(f"{gw.settings.base_url}/ocpi/versions")
        async with connect(gw.ws_url, "CP16", "1.6") as cp:
            await boot(cp, "1.6")
            cp.plug(1)
            await cp.start_transaction(1, id_tag="DRIVER1")
            session_id = await session_of(emsp)
            answer = await other.set_profile(session_id, PROFILE_16A, "set-1")
            assert response(answer) == "UNKNOWN_SESSION"
            assert cp.profiles == {}
    finally:
        await other.stop()


async def test_results_arrive_after_an_emsp_outage(
    gateways: GatewayFactory, emsp: ProfilesEmsp
) -> None:
    gw = await world(gateways, emsp)
    async with connect(gw.ws_url, "CP201", "2.0.1") as cp:
        await boot(cp, "2.0.1")
        cp.plug(2)
        await cp.start_transaction(2, id_tag="DRIVER1")
        session_id = await session_of(emsp)
        await settled(gw)
        emsp.outage = True  # the eMSP's server answers 503 from now on
        assert response(await emsp.set_profile(session_id, PROFILE_16A, "set-1")) == "ACCEPTED"
        assert response(await emsp.clear_profile(session_id, "clear-1")) == "ACCEPTED"

        async def attempted() -> bool:
            items = await gw.store.outbox.list(partner_id=None)
            return any(i.module == "chargingprofiles" and i.attempts >= 1 for i in items)

        async with asyncio.timeout(15):
            while not await attempted():
                await asyncio.sleep(0.05)
        assert emsp.results == {}
        emsp.outage = False
        assert (await emsp.result_of("set-1", timeout=30)).body == {"result": "ACCEPTED"}
        assert (await emsp.result_of("clear-1", timeout=30)).body["result"] in (
            "ACCEPTED",
            "UNKNOWN",  # the clear may reach the charger before the set (concurrent tasks)
        )
    await settled(gw)
    assert emsp.problems == []


async def test_active_profile_pushed_when_site_limits_change(
    gateways: GatewayFactory, emsp: ProfilesEmsp
) -> None:
    """The hook for site load management: once the eMSP has set a profile on a session,
    a change of the session's limit for another reason is PUT to its Sender interface
    (the charger's composite schedule); never for a session it did not set one on."""
    gw = await world(gateways, emsp)
    receiver = gw.app[PROVIDERS].charging_profiles
    assert receiver is not None
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await boot(cp, "1.6")
        cp.plug(1)
        cp.plug(2)
        tx1 = await cp.start_transaction(1, id_tag="DRIVER1")
        await cp.start_transaction(2, id_tag="DRIVER2")
        sessions = [await session_of(emsp, 1), await session_of(emsp, 2)]
        # A session that did not start by command has its transaction's id.
        txs = {s: await gw.store.transactions.get(s) for s in sessions}
        steered = next(s for s, tx in txs.items() if tx is not None and tx.ocpp_id == tx1)
        (other,) = set(sessions) - {steered}
        assert response(await emsp.set_profile(steered, PROFILE_16A, "set-1")) == "ACCEPTED"
        await emsp.result_of("set-1")
        # Site load management lowers the station to 12 A (what its allocator would send),
        # then tells the receiver.
        site = constant_limit(900, ProfilePurpose.STATION_MAX, Decimal(12))
        answer = await gw.app[ROUTER].send("CP16", cmd.SetChargingProfile(0, site))
        assert answer.status is cmd.CommandStatus.ACCEPTED
        assert await receiver.active_profile_changed(steered, site.schedule)
        assert not await receiver.active_profile_changed(other, site.schedule)
        (update,) = await eventually(lambda: emsp.active.get(steered))
        assert update.routed == ("ZZ*GWY", "NL*SCP")
        periods = update.body["charging_profile"]["charging_profile_period"]
        assert periods == [{"start_period": 0, "limit": 12}]
        assert other not in emsp.active
        # Or told of the whole charger: each of its sessions an eMSP steers (one here).
        assert await receiver.charger_limits_changed("CP16") == 1
        await eventually(lambda: len(emsp.active[steered]) == 2)
        assert emsp.active[steered][1].body["charging_profile"] == update.body["charging_profile"]
        assert await receiver.charger_limits_changed("CP201") == 0
    await settled(gw)
    assert emsp.problems == []
