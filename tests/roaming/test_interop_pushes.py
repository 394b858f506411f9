"""Issue 9, the money path of pushes, against a strict eMSP (tests/roaming/strict_emsp.py):
the real gateway on both backends, chargers bound over the admin API and connected as
real OCPP chargers.

1. A partner knows an EVSE before it gets a PATCH of it: a charger bound after the
   location was pushed, a new evse_uid, an EVSE moved to another location all reach the
   partner by PUT first; a PATCH the partner answers "unknown" becomes a PUT of the
   location; a partner that registers gets the tariffs and locations at once.
2. Partner URLs are used exactly as given (trailing slash kept), a 307 to the slash form
   is followed, any other redirect is retried and then surfaced.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from ocpp.v16 import call as call16

from tests.conftest import FakeClock, Gateway, GatewayFactory
from tests.roaming.emsp import token_header
from tests.roaming.strict_emsp import BASE, StrictEmsp
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check`` (sync or async) until it is truthy; its value."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if isinstance(result, Awaitable):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.02)


@pytest.fixture
async def strict() -> AsyncIterator[StrictEmsp]:
    emsp = StrictEmsp()
    await emsp.start()
    try:
        yield emsp
    finally:
        await emsp.stop()


async def register(gw: Gateway, emsp: StrictEmsp) -> str:
    """The eMSP registers with the gateway (credentials handshake); returns the token it
    then calls the gateway with."""
    _, partner = await gw.admin("POST", "/partners", {"name": "strict eMSP"})
    headers = token_header(partner["token_a"])
    async with aiohttp.ClientSession() as s:
        async with s.get(partner["our_versions_url"].replace(gw.settings.base_url, gw.url), headers=headers) as r:
            versions = await r.json()
        async with s.get(next(v["url"] for v in versions["data"] if v["version"] == "2.2.1").replace(gw.settings.base_url, gw.url), headers=headers) as r:
            details = await r.json()
        creds = next(e["url"] for e in details["data"]["endpoints"] if e["identifier"] == "credentials")
        async with s.post(
            creds.replace(gw.settings.base_url, gw.url), json=emsp.credentials(emsp.token_b), headers=headers
        ) as r:
            answer = await r.json()
    assert answer["status_code"] == 1000, answer
    return str(answer["data"]["token"])


async def bind(gw: Gateway, cp_id: str, location_id: str, evse_uid: str) -> None:
    status, body = await gw.admin(
        "PUT", f"/chargers/{cp_id}", {"location_id": location_id, "evses": [{"ocpp_id": 1, "evse_uid": evse_uid}]}
    )
    assert status in (200, 201), body


async def status(cp: Any, value: str) -> None:
    await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status=value))


async def outbox(gw: Gateway, state: str) -> list[dict[str, Any]]:
    code, items = await gw.admin("GET", f"/outbox?status={state}")
    assert code == 200
    return list(items)


async def all_delivered(gw: Gateway) -> bool:
    return not await outbox(gw, "pending") and not await outbox(gw, "failed")


def patches(emsp: StrictEmsp, path_end: str) -> list[Any]:
    return [r for r in emsp.received if r.method == "PATCH" and r.path.endswith(path_end)]


def assert_put_before_every_patch(emsp: StrictEmsp) -> None:
    """Every EVSE PATCH the partner took came after a PUT of its location that held it."""
    for i, r in enumerate(emsp.received):
        if r.method != "PATCH" or not r.path.startswith(f"{BASE}/locations/") or r.answered != 200:
            continue
        location_id, uid = r.path.split("/")[-2:]
        puts = [
            p for p in emsp.received[:i]
            if p.method == "PUT" and p.answered == 200 and p.path.endswith(f"/{location_id}")
            and uid in {e["uid"] for e in p.body.get("evses") or []}
        ]
        assert puts, f"PATCH {r.path} before any PUT of {location_id} with EVSE {uid}"


# ------------------------------------------------------------------ 1. PUT before PATCH


async def test_evses_bound_renamed_and_moved_after_the_location_push_reach_a_strict_partner(
    gateways: GatewayFactory, strict: StrictEmsp
) -> None:
    gw = await gateways.start(outbox_poll_interval=0.05)
    await register(gw, strict)
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC2", LOCATION))[0] == 201
    await eventually(lambda: {"LOC1", "LOC2"} <= set(strict.locations))
    assert strict.locations["LOC1"]["evses"] == {}  # nothing bound yet

    # A charger bound after the location was pushed: the partner gets the location again,
    # now with the EVSE, before any PATCH of its status.
    await bind(gw, "CP1", "LOC1", "CP1-1")
    await eventually(lambda: strict.evse_status("LOC1", "CP1-1") == "UNKNOWN")
    async with connect(gw.ws_url, "CP1", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await status(cp, "Available")
        await eventually(lambda: strict.evse_status("LOC1", "CP1-1") == "AVAILABLE")
        await status(cp, "Preparing")
        await eventually(lambda: strict.evse_status("LOC1", "CP1-1") == "CHARGING")
        assert patches(strict, "/LOC1/CP1-1")  # statuses went as PATCHes, taken

        # A new evse_uid on the same charger: the old EVSE is REMOVED, the new one PUT.
        await bind(gw, "CP1", "LOC1", "CP1-NEW")
        await eventually(lambda: strict.evse_status("LOC1", "CP1-NEW") == "CHARGING")
        assert [r.body["status"] for r in patches(strict, "/LOC1/CP1-1")][-1] == "REMOVED"
        await status(cp, "Available")
        await eventually(lambda: strict.evse_status("LOC1", "CP1-NEW") == "AVAILABLE")

        # The EVSE moves to another location.
        await bind(gw, "CP1", "LOC2", "CP1-NEW")
        await eventually(lambda: strict.evse_status("LOC2", "CP1-NEW") == "AVAILABLE")
        # LOC1 (another ordering key) lost it: PATCHed REMOVED, then PUT without it.
        await eventually(lambda: strict.locations["LOC1"]["evses"] == {})
        assert patches(strict, "/LOC1/CP1-NEW")[-1].body["status"] == "REMOVED"
        await status(cp, "Faulted")
        await eventually(lambda: strict.evse_status("LOC2", "CP1-NEW") == "OUTOFORDER")

    # Unbinding (deleting) the charger takes its EVSE out of the location.
    assert (await gw.admin("DELETE", "/chargers/CP1"))[0] == 204
    await eventually(lambda: "CP1-NEW" not in strict.locations["LOC2"]["evses"])
    await eventually(lambda: all_delivered(gw))
    assert strict.rejected() == []
    assert_put_before_every_patch(strict)


async def test_a_partner_that_registers_gets_tariffs_and_locations_at_once(
    gateways: GatewayFactory, strict: StrictEmsp
) -> None:
    gw = await gateways.start(outbox_poll_interval=0.05)
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    await bind(gw, "CP1", "LOC1", "CP1-1")
    async with connect(gw.ws_url, "CP1", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await status(cp, "Available")
        # Nothing changes after it registers, yet it has everything it may see.
        await register(gw, strict)
        await eventually(lambda: strict.evse_status("LOC1", "CP1-1") == "AVAILABLE")
        await eventually(lambda: "AC-STD" in strict.tariffs)
        assert strict.tariffs["AC-STD"]["currency"] == "EUR"
        # Then status changes come as PATCHes of what it has.
        await status(cp, "Charging")
        await eventually(lambda: strict.evse_status("LOC1", "CP1-1") == "CHARGING")
    await eventually(lambda: all_delivered(gw))
    assert patches(strict, "/LOC1/CP1-1")
    assert strict.rejected() == []
    assert_put_before_every_patch(strict)


async def test_a_patch_answered_unknown_location_becomes_a_put_of_the_location(
    gateways: GatewayFactory, strict: StrictEmsp
) -> None:
    gw = await gateways.start(outbox_poll_interval=0.05)
    await register(gw, strict)
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    await bind(gw, "CP1", "LOC1", "CP1-1")
    async with connect(gw.ws_url, "CP1", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await status(cp, "Available")
        await eventually(lambda: strict.evse_status("LOC1", "CP1-1") == "AVAILABLE")
        await eventually(lambda: all_delivered(gw))

        strict.forget()  # restored from an old backup: it no longer has LOC1
        await status(cp, "Charging")
        await eventually(lambda: strict.evse_status("LOC1", "CP1-1") == "CHARGING")
        await status(cp, "Available")
        await eventually(lambda: strict.evse_status("LOC1", "CP1-1") == "AVAILABLE")
    await eventually(lambda: all_delivered(gw))
    # The PATCH got 404 / 2003; the same attempt PUT the whole location, and the PATCH is
    # done (superseded), not failed: the next status went as a PATCH again.
    [unknown] = strict.rejected()
    assert (unknown.method, unknown.path, unknown.answered) == ("PATCH", f"{BASE}/locations/ZZ/GWY/LOC1/CP1-1", 404)
    after = strict.received[strict.received.index(unknown) + 1 :]
    assert (after[0].method, after[0].path) == ("PUT", f"{BASE}/locations/ZZ/GWY/LOC1")
    assert [e["status"] for e in after[0].body["evses"]] == ["CHARGING"]
    assert (after[1].method, after[1].body["status"], after[1].answered) == ("PATCH", "AVAILABLE", 200)
    done = await outbox(gw, "done")
    superseded = [i for i in done if i["method"] == "PATCH" and i["attempts"] == 0 and i["url"].endswith("/CP1-1")]
    assert len(superseded) >= 2
    assert_put_before_every_patch(strict)


# ------------------------------------------------------------------ 2. URLs as given


@pytest.mark.parametrize("advertise_slash", [True, False], ids=["advertised-with-slash", "307-to-slash"])
async def test_cdr_reaches_a_partner_whose_endpoints_end_with_a_slash(
    gateways: GatewayFactory, advertise_slash: bool
) -> None:
    strict = StrictEmsp(advertise_slash=advertise_slash)
    await strict.start()
    try:
        gw = await gateways.start(outbox_poll_interval=0.05)
        token = await register(gw, strict)
        assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
        assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
        await bind(gw, "CP1", "LOC1", "CP1-1")
        await _charge(gw, token, strict)
        [cdr] = await eventually(lambda: strict.cdrs)
        assert cdr["total_energy"] == 5
        await eventually(lambda: all_delivered(gw))
        cdr_posts = [(r.path, r.answered) for r in strict.received if r.method == "POST"]
        if advertise_slash:
            assert cdr_posts == [(f"{BASE}/cdrs/", 200)]
        else:  # followed with the same method and body
            assert cdr_posts == [(f"{BASE}/cdrs", 307), (f"{BASE}/cdrs/", 200)]
        # Object URLs have exactly one slash between the endpoint and the segments.
        assert all("//" not in r.path for r in strict.received)
        assert strict.taken("sessions", "PUT") and strict.taken("locations", "PUT")
        assert strict.rejected() == []
    finally:
        await strict.stop()


async def test_another_redirect_is_retried_then_surfaced(gateways: GatewayFactory) -> None:
    strict = StrictEmsp(redirect_cdrs=302)
    await strict.start()
    try:
        clock = FakeClock()
        gw = await gateways.start(clock=clock, outbox_poll_interval=0.05)
        token = await register(gw, strict)
        assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
        assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
        await bind(gw, "CP1", "LOC1", "CP1-1")
        await _charge(gw, token, strict)

        async def cdr_item() -> dict[str, Any] | None:
            code, items = await gw.admin("GET", "/outbox?partner_id=" + await _partner_id(gw))
            assert code == 200
            return next((i for i in items if i["module"] == "cdrs" and i["attempts"] >= 1), None)

        item = await eventually(cdr_item)
        # Retried, not failed: a 302 may be the partner moving its endpoints.
        assert item["status"] == "pending"
        assert "HTTP 302 redirect to '/ocpi/2.2.1/elsewhere/' not followed" in item["last_error"]
        # Still refused when the give-up age (GATEWAY_OUTBOX_GIVE_UP_HOURS) has passed:
        # failed for the operator, with the error shown.
        clock.advance(gw.settings.outbox_give_up_hours * 3600 + 1)
        failed = await eventually(lambda: outbox(gw, "failed"))
        assert [i["module"] for i in failed] == ["cdrs"]
        assert failed[0]["last_error"].startswith("gave up after ")
        assert "HTTP 302" in failed[0]["last_error"]
        assert strict.cdrs == []
    finally:
        await strict.stop()


async def _partner_id(gw: Gateway) -> str:
    _, partners = await gw.admin("GET", "/partners")
    return str(partners[0]["id"])


async def _charge(gw: Gateway, token: str, emsp: StrictEmsp) -> None:
    """The eMSP pushes its driver's token; the driver charges 5 kWh at CP1 (OCPP 1.6)."""
    async with aiohttp.ClientSession() as s, s.put(
        f"{gw.url}/ocpi/2.2.1/tokens/NL/STR/DRIVER1", json=emsp.token("DRIVER1"), headers=token_header(token)
    ) as r:
        assert r.status in (200, 201), await r.text()
    async with connect(gw.ws_url, "CP1", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        start = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=1000, timestamp="2026-11-23T10:00:00Z")
        )
        assert start.id_tag_info["status"] == "Accepted"
        await cp.call(
            call16.StopTransaction(meter_stop=6000, timestamp="2026-11-23T11:00:00Z", transaction_id=start.transaction_id)
        )
