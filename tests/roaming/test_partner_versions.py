"""The gateway as CPO calls each partner in the OCPI version it registered in.

Real aiohttp eMSP receivers of OCPI 2.1.1 and 2.3.0 (tests/roaming/emsp_versions.py,
which check every body against that version's models with no field it lacks, and for
2.3.0 the official OpenAPI schemas), registered directly or by the credentials
handshake, beside the 2.2.1 one of tests/roaming/emsp.py, and simulated OCPP chargers:
locations, tariffs, EVSE status PATCHes, real-time authorization, the session
PUT/PATCH and CDR of a charge, command results, and a push a version cannot express
failing visibly in the outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from ocpp.v16 import call as call16

from gateway.roaming.server import REGISTRY
from gateway.roaming.tokens import TokenDirectory
from gateway.storage.base import OutboxStatus
from tests.conftest import FakeClock, Gateway, GatewayFactory
from tests.ocpi.openapi import validate_against_openapi
from tests.roaming.emsp import EmspPlatform
from tests.roaming.emsp_versions import VersionedEmsp, check, register_directly, schema_of
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.02)
    return result


def _now(value: Any) -> Callable[[], Awaitable[Any]]:
    async def check() -> Any:
        return value()

    return check


def _mv(ts: str, wh: str) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": ts,
            "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}],
        }
    ]


@pytest.fixture(params=["2.1.1", "2.3.0"])
async def other(request: pytest.FixtureRequest) -> AsyncIterator[VersionedEmsp]:
    """An eMSP of another version than 2.2.1."""
    async with VersionedEmsp(
        str(request.param), party_id="OLD" if request.param == "2.1.1" else "NEW"
    ) as platform:
        yield platform


async def _register_221(gw: Gateway, emsp: EmspPlatform) -> str:
    _, partner = await gw.admin("POST", "/partners", {"name": "eMSP 2.2.1"})
    status, _ = await gw.admin(
        "POST",
        f"/partners/{partner['id']}/register",
        {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a},
    )
    assert status == 200
    return str(partner["id"])


async def _catalog(gw: Gateway) -> None:
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    status, _ = await gw.admin(
        "PUT",
        "/chargers/CP16",
        {
            "location_id": "LOC1",
            "evses": [{"ocpp_id": 1, "evse_uid": "CP16-1", "evse_id": "ZZ*GWY*E16"}],
        },
    )
    assert status == 201


async def test_charge_by_an_emsp_of_another_version(
    gateways: GatewayFactory, emsp: EmspPlatform, other: VersionedEmsp
) -> None:
    """Side by side with a 2.2.1 eMSP: the catalog and EVSE statuses reach each in its own
    version; a driver of the other eMSP is authorized in real time in its version, and the
    session (PUT, PATCH, PUT) and CDR of the charge reach it in that version only."""
    clock = FakeClock()
    gw = await gateways.start(clock=clock, outbox_poll_interval=0.2)
    await _register_221(gw, emsp)
    partner_id = await register_directly(gw, other)
    await _catalog(gw)
    version = other.version

    # Tariff and location, each in its version.
    [tariff] = await eventually(_now(lambda: other.taken("tariffs", "PUT")))
    assert tariff.path == f"{other.base}/tariffs/ZZ/GWY/AC-STD"
    await eventually(
        _now(lambda: [r for r in other.taken("locations", "PUT") if r.body.get("evses")])
    )
    location = other.taken("locations", "PUT")[-1].body
    if version == "2.1.1":
        assert "country_code" not in location and location["type"] == "UNKNOWN"
        assert location["evses"][0]["connectors"][0]["voltage"] == 230
        assert tariff.body["elements"][0]["price_components"][0] == {
            "type": "ENERGY",
            "price": Decimal("0.35"),
            "step_size": 1,
        }
    else:
        assert location["country_code"] == "ZZ"
        assert tariff.body["tax_included"] == "NO"
    await eventually(_now(lambda: emsp.pushes("locations", "PUT")))
    validate_against_openapi("locations", "Location", emsp.pushes("locations", "PUT")[-1][2])

    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        await cp.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Available")
        )
        await cp.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing")
        )

        # The EVSE status PATCH reaches both, each in its version.
        def charging(received: list[Any]) -> list[Any]:
            return [
                r
                for r in received
                if r[0] == "PATCH"
                and r[1].endswith("/locations/ZZ/GWY/LOC1/CP16-1")
                and (r[2] or {}).get("status") == "CHARGING"
            ]

        await eventually(_now(lambda: charging(other.received)))
        await eventually(_now(lambda: charging(emsp.received)))

        # A driver of the other eMSP, unknown to the gateway: every eMSP is asked, the
        # other one in its version, and allows it.
        other.authorize["OTHER-DRIVER"] = "ALLOWED"
        answer = await cp.call(call16.Authorize(id_tag="OTHER-DRIVER"))
        assert answer.id_tag_info["status"] == "Accepted"
        asked = other.taken("tokens", "POST")[0]
        assert asked.path == f"{other.base}/tokens/OTHER-DRIVER/authorize?type=RFID"
        uid, refs = other.authorize_requests[0]
        assert uid == "OTHER-DRIVER"
        assert refs == {"location_id": "LOC1", "evse_uids": ["CP16-1"]}

        start = await cp.call(
            call16.StartTransaction(
                connector_id=1,
                id_tag="OTHER-DRIVER",
                meter_start=1000,
                timestamp="2026-11-23T10:00:00Z",
            )
        )
        assert start.id_tag_info["status"] == "Accepted"
        await eventually(_now(lambda: other.taken("sessions", "PUT")))
        clock.advance(61)  # session PATCHes go at most once a minute
        await cp.call(
            call16.MeterValues(
                connector_id=1,
                transaction_id=start.transaction_id,
                meter_value=_mv("2026-11-23T10:30:00Z", "8000"),
            )
        )
        await eventually(_now(lambda: other.taken("sessions", "PATCH")))
        clock.advance(61)
        await cp.call(
            call16.StopTransaction(
                meter_stop=11_000,
                timestamp="2026-11-23T11:00:00Z",
                transaction_id=start.transaction_id,
            )
        )
        [cdr] = await eventually(_now(lambda: other.taken("cdrs", "POST")))

    sessions = other.taken("sessions")
    assert [r.method for r in sessions] == ["PUT", "PATCH", "PUT"]
    put, patch, final = (r.body for r in sessions)
    assert patch["kwh"] == 7
    assert final["status"] == "COMPLETED"
    cdr_body = cdr.body
    assert cdr.path == f"{other.base}/cdrs"
    if version == "2.1.1":
        # 2.1.1: the driver by auth_id, the location embedded with the EVSE and connector
        # used, totals as plain numbers excluding VAT.
        assert put["auth_id"] == "OTHER-DRIVER"
        assert put["location"]["id"] == "LOC1"
        assert [e["uid"] for e in put["location"]["evses"]] == ["CP16-1"]
        assert "start_datetime" in put and "cdr_token" not in put
        assert patch["total_cost"] == Decimal("2.45")
        assert cdr_body["total_cost"] == Decimal("3.5")
        assert cdr_body["location"]["evses"][0]["evse_id"] == "ZZ*GWY*E16"
        assert "stop_date_time" in cdr_body
        # 2.1.1 has no routing headers.
        assert other.routing_headers() == set()
    else:
        assert put["cdr_token"]["uid"] == "OTHER-DRIVER"
        assert put["authorization_reference"] == "AUTH-OTHER-DRIVER"
        assert patch["total_cost"] == {
            "before_taxes": Decimal("2.45"),
            "taxes": [{"name": "VAT", "amount": Decimal("0.51")}],
        }
        assert cdr_body["total_cost"]["before_taxes"] == Decimal("3.5")
        assert other.routing_headers() == {
            "OCPI-from-country-code",
            "OCPI-from-party-id",
            "OCPI-to-country-code",
            "OCPI-to-party-id",
        }
    # Every body the other eMSP received was valid in its version; the 2.2.1 eMSP got no
    # session of this driver.
    assert other.invalid == []
    assert emsp.pushes("sessions") == [] and emsp.pushes("cdrs") == []
    # Every push delivered: the last is marked done once the eMSP's answer is read, just
    # after the eMSP saw it.
    async def delivered() -> Any:
        items = await gw.store.outbox.list(partner_id=partner_id)
        return items if {i.status for i in items} == {OutboxStatus.DONE} else None

    items = await eventually(delivered)
    # The outbox keeps the internal form (converted at delivery), and the version.
    assert {(i.meta or {}).get("ocpi_version") for i in items} == {version}


async def test_a_push_the_version_cannot_express_fails_visibly(
    gateways: GatewayFactory, emsp: EmspPlatform
) -> None:
    """A connector standard 2.1.1 lacks: the 2.1.1 eMSP's Location PUT is FAILED at once,
    naming the field, never sent; the 2.2.1 eMSP gets it."""
    gw = await gateways.start(outbox_poll_interval=0.2)
    async with VersionedEmsp("2.1.1") as old:
        await _register_221(gw, emsp)
        partner_id = await register_directly(gw, old)
        gbt = LOCATION | {"connectors": [LOCATION["connectors"][0] | {"standard": "GBT_AC"}]}
        assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
        assert (await gw.admin("PUT", "/locations/LOC9", gbt))[0] == 201
        await gw.admin(
            "PUT",
            "/chargers/CP9",
            {"location_id": "LOC9", "evses": [{"ocpp_id": 1, "evse_uid": "CP9-1"}]},
        )

        async def failed() -> list[Any]:
            _, items = await gw.admin("GET", f"/outbox?status=failed&partner_id={partner_id}")
            return list(items)

        items = await eventually(failed)
        assert {i["module"] for i in items} == {"locations"}
        error = items[0]["last_error"]
        assert "evses[0].connectors[0].standard" in error and "2.1.1" in error
        # The location went out before it had an EVSE; the EVSE's connector never did.
        assert [r for r in old.taken("locations") if r.body.get("evses")] == []
        assert old.invalid == []  # nor any other body 2.1.1 lacks a field for
        assert old.taken("tariffs", "PUT")  # what 2.1.1 can say still goes
        await eventually(
            _now(lambda: [r for r in emsp.pushes("locations", "PUT") if r[2]["id"] == "LOC9"])
        )


async def test_command_result_in_the_version_of_the_sender(
    gateways: GatewayFactory, other: VersionedEmsp
) -> None:
    """UNLOCK_CONNECTOR sent in the partner's version: the charger's answer goes to the
    response_url as a 2.1.1 CommandResponse, or a 2.3.0 CommandResult."""
    gw = await gateways.start(outbox_poll_interval=0.2)
    await register_directly(gw, other)
    await _catalog(gw)
    respond = f"{other.url}{other.base}/commands/UNLOCK_CONNECTOR/42"
    body = {
        "response_url": respond,
        "location_id": "LOC1",
        "evse_uid": "CP16-1",
        "connector_id": "1",
    }
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        # In the partner's version, with the token it calls us with in that version's form.
        status, _, answer = await other.call(
            "POST", f"{gw.url}/ocpi/{other.version}/commands/UNLOCK_CONNECTOR", body
        )
        assert status == 200, answer
        assert answer["data"]["result"] == "ACCEPTED"
        [result] = await eventually(_now(lambda: other.taken("commands", "POST")))
    assert result.path.endswith("/UNLOCK_CONNECTOR/42")
    assert result.body == {"result": "ACCEPTED"}
    assert other.invalid == []


async def test_a_patch_of_an_unknown_object_becomes_a_put_in_the_version(
    gateways: GatewayFactory, other: VersionedEmsp
) -> None:
    """The eMSP answers every PATCH "unknown object": the EVSE status PATCH is replaced by
    the whole Location, and the session PATCH by the whole session, in its version (a
    2.1.1 session with its Location embedded)."""
    clock = FakeClock()
    gw = await gateways.start(clock=clock, outbox_poll_interval=0.2)
    await register_directly(gw, other)
    await _catalog(gw)
    await eventually(
        _now(lambda: [r for r in other.taken("locations", "PUT") if r.body.get("evses")])
    )
    other.forget = True
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        await cp.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing")
        )

        def relocated() -> list[Any]:
            return [
                r
                for r in other.taken("locations", "PUT")
                if r.body.get("evses") and r.body["evses"][0]["status"] == "CHARGING"
            ]

        [(_, path, _)] = await eventually(_now(relocated))
        assert path == f"{other.base}/locations/ZZ/GWY/LOC1"
        other.authorize["FORGOTTEN"] = "ALLOWED"
        start = await cp.call(
            call16.StartTransaction(
                connector_id=1, id_tag="FORGOTTEN", meter_start=0, timestamp="2026-11-23T10:00:00Z"
            )
        )
        assert start.id_tag_info["status"] == "Accepted"
        await eventually(_now(lambda: other.taken("sessions", "PUT")))
        clock.advance(61)
        await cp.call(
            call16.MeterValues(
                connector_id=1,
                transaction_id=start.transaction_id,
                meter_value=_mv("2026-11-23T10:30:00Z", "3000"),
            )
        )
        await eventually(_now(lambda: len(other.taken("sessions", "PUT")) == 2))
    methods = [r.method for r in other.taken("sessions")]
    assert methods == ["PUT", "PATCH", "PUT"]
    replaced = other.taken("sessions", "PUT")[1].body
    assert replaced["kwh"] == 3
    if other.version == "2.1.1":
        assert replaced["location"]["evses"][0]["uid"] == "CP16-1"
    assert other.invalid == []


async def test_tokens_pulled_from_an_emsp_in_its_version(
    gateways: GatewayFactory, other: VersionedEmsp
) -> None:
    """GET tokens (two pages) in the eMSP's version: kept as pushed tokens of its party,
    a token of another party left out; a charger's driver is then accepted without asking."""
    gw = await gateways.start()
    partner_id = await register_directly(gw, other)
    await _catalog(gw)
    other.tokens = [
        other.token("PULL-1"),
        other.token("PULL-2", valid=False),
        other.token("PULL-3", "NEVER"),
    ]
    if other.version != "2.1.1":
        other.tokens.append(other.token("FOREIGN") | {"party_id": "XXX"})
    # Through the admin API, as an operator would (the puller below it).
    assert await gw.admin("POST", f"/partners/{partner_id}/tokens/pull") == (
        200,
        {"partner_id": partner_id, "kept": 3},
    )
    status, body = await gw.admin("POST", "/partners/nobody/tokens/pull")
    assert status == 404 and "nobody" in body["error"]
    _, pending = await gw.admin("POST", "/partners", {"name": "not registered yet"})
    status, body = await gw.admin("POST", f"/partners/{pending['id']}/tokens/pull")
    assert status == 409 and "not registered" in body["error"]
    status, body = await gw.admin(
        "POST", f"/partners/{partner_id}/tokens/pull", {"date_from": "2026-01-01T00:00:00"}
    )
    assert status == 422 and "date_from" in str(body)
    assert len([r for r in other.received if r.method == "GET"]) == 2  # two pages
    directory = TokenDirectory(gw.store)
    [pulled] = await directory.by_uid("PULL-1")
    assert (pulled.partner_id, pulled.source) == (partner_id, "push")
    assert (pulled.token.country_code, pulled.token.party_id) == (
        other.country_code,
        other.party_id,
    )
    assert pulled.token.contract_id == f"{other.country_code}-{other.party_id}-CULL-1"
    assert await directory.by_uid("FOREIGN") == []
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        assert (await cp.call(call16.Authorize(id_tag="PULL-1"))).id_tag_info[
            "status"
        ] == "Accepted"
        assert (await cp.call(call16.Authorize(id_tag="PULL-2"))).id_tag_info["status"] == "Blocked"
    assert other.authorize_requests == []


@pytest.mark.parametrize("version", ["2.1.1", "2.3.0"])
async def test_everything_pushed_to_a_partner_that_registered_in_its_version(
    gateways: GatewayFactory, version: str
) -> None:
    """With the eMSP registered through the credentials handshake of its version (not
    directly): the initial tariff and location, the EVSE status, real-time authorization,
    the session and CDR of a charge and a START_SESSION result all reach it in its version
    (its own checks, and no field its version lacks)."""
    clock = FakeClock()
    gw = await gateways.start(clock=clock, outbox_poll_interval=0.2)
    async with VersionedEmsp(version) as platform:
        _, partner = await gw.admin("POST", "/partners", {"name": f"eMSP {version}"})
        platform.rewrite = (gw.settings.base_url, gw.url)
        await platform.register_with(partner["our_versions_url"], partner["token_a"])
        assert gw.app[REGISTRY].get(partner["id"]).version == version
        await _catalog(gw)
        await eventually(_now(lambda: platform.locations.get("LOC1", {}).get("evses")))
        assert "AC-STD" in platform.tariffs
        platform.authorize["RT-1"] = "ALLOWED"
        async with connect(gw.ws_url, "CP16", "1.6") as cp:
            await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
            await cp.call(
                call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing")
            )
            await eventually(_now(lambda: platform.evse_status("LOC1", "CP16-1") == "CHARGING"))
            start = await cp.call(
                call16.StartTransaction(
                    connector_id=1, id_tag="RT-1", meter_start=0, timestamp="2026-11-23T10:00:00Z"
                )
            )
            assert start.id_tag_info["status"] == "Accepted"
            clock.advance(61)
            await cp.call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=start.transaction_id,
                    meter_value=_mv("2026-11-23T10:30:00Z", "5000"),
                )
            )
            clock.advance(61)
            await cp.call(
                call16.StopTransaction(
                    meter_stop=6000,
                    timestamp="2026-11-23T11:00:00Z",
                    transaction_id=start.transaction_id,
                )
            )
            [cdr] = await eventually(_now(lambda: platform.cdrs))
            respond = f"{platform.url}{platform.base}/commands/START_SESSION/7"
            command = {
                "response_url": respond,
                "token": platform.token("APP-1"),
                "location_id": "LOC1",
                "evse_uid": "CP16-1",
            }
            _, _, body = await platform.call(
                "POST", f"{gw.url}/ocpi/{version}/commands/START_SESSION", command
            )
            assert body["data"]["result"] == "ACCEPTED"
            [(_, result)] = await eventually(_now(lambda: platform.results))
        assert result == {"result": "ACCEPTED"}
        [session] = [s for s in platform.sessions.values() if s["status"] == "COMPLETED"]
        assert session["kwh"] == 6
        assert platform.authorize_requests[0][0] == "RT-1"
        if version == "2.1.1":
            assert session["auth_id"] == "RT-1"
            assert cdr["total_cost"] == Decimal("2.1")  # 6 kWh x 0.35, excl. VAT
        else:
            assert session["authorization_reference"] == "AUTH-RT-1"
            assert cdr["total_cost"]["before_taxes"] == Decimal("2.1")
        assert platform.invalid == []
        modules = set()
        for received in platform.received:
            module = received.path.removeprefix(platform.base + "/").split("/")[0]
            parts = received.path.removeprefix(f"{platform.base}/{module}").strip("/").split("/")
            name = schema_of(version, module, received.method, len([p for p in parts if p]))
            if name and received.body is not None:
                assert check(version, module, name, received.body) == [], received
                modules.add((module, received.method))
        assert modules == {
            ("locations", "PUT"),
            ("locations", "PATCH"),
            ("tariffs", "PUT"),
            ("sessions", "PUT"),
            ("sessions", "PATCH"),
            ("cdrs", "POST"),
            ("commands", "POST"),
        }
