"""A 2.1.1 CPO platform on the hub (issue 14): the operator says its role
(``POST /admin/partners {"kind": "HUB", "role": "CPO"}``: 2.1.1 credentials name none),
it registers in 2.1.1 with the real handshake (tests/hub/cpo_v211.py) and the hub is its
eMSP: its location broadcast, its sessions and CDRs routed to the token's eMSP, its
real-time authorization asked of the eMSPs, its GET of tokens a GET All, and an eMSP's
START_SESSION reaching it. The eMSPs are a 2.2.1 and a 2.3.0 platform
(tests/hub/platform.py), which check every body against their version's official
OpenAPI; the 2.1.1 CPO checks every body against the 2.1.1 models, with no field 2.1.1
lacks. Both storage backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

import ocpi.v211 as v211
from tests.conftest import Gateway, GatewayFactory
from tests.hub.cpo_v211 import CpoV211, problems_211
from tests.hub.platform import Platform
from tests.hub.test_gateway_hub import HUB_PARTY, eventually, free_port
from tests.hub.test_hub_versions import routed, settled
from tests.ocpi.openapi import validate_against_openapi

OLD = ("BE", "OLD")


@dataclass
class World:
    gateway: Gateway
    cpo: CpoV211
    e221: Platform
    e230: Platform


def location_211(loc_id: str) -> dict[str, Any]:
    """A 2.1.1 Location (mod_locations.md 2.1.1: ``type``, no country_code/party_id)."""
    return {
        "id": loc_id,
        "type": "ON_STREET",
        "name": "Old Street",
        "address": "Oude Markt 1",
        "city": "Leuven",
        "postal_code": "3000",
        "country": "BEL",
        "coordinates": {"latitude": "50.878000", "longitude": "4.700000"},
        "evses": [
            {
                "uid": f"{loc_id}-E1",
                "evse_id": "BE*OLD*E1",
                "status": "AVAILABLE",
                "connectors": [
                    {
                        "id": "1",
                        "standard": "IEC_62196_T2",
                        "format": "SOCKET",
                        "power_type": "AC_3_PHASE",
                        "voltage": 230,
                        "amperage": 16,
                        "last_updated": "2026-11-23T08:00:00Z",
                    }
                ],
                "last_updated": "2026-11-23T08:00:00Z",
            }
        ],
        "time_zone": "Europe/Brussels",
        "last_updated": "2026-11-23T08:00:00Z",
    }


def session_211(session_id: str, auth_id: str) -> dict[str, Any]:
    """A 2.1.1 Session: the Location embedded with the EVSE and connector used."""
    return {
        "id": session_id,
        "start_datetime": "2026-11-23T10:00:00Z",
        "kwh": 3,
        "auth_id": auth_id,
        "auth_method": "AUTH_REQUEST",
        "location": location_211("L-1"),
        "currency": "EUR",
        "total_cost": 1.05,
        "status": "ACTIVE",
        "last_updated": "2026-11-23T10:05:00Z",
    }


def cdr_211(cdr_id: str, auth_id: str) -> dict[str, Any]:
    """A 2.1.1 CDR: totals plain numbers (excl. VAT), ``stop_date_time``."""
    return {
        "id": cdr_id,
        "start_date_time": "2026-11-23T10:00:00Z",
        "stop_date_time": "2026-11-23T11:00:00Z",
        "auth_id": auth_id,
        "auth_method": "AUTH_REQUEST",
        "location": location_211("L-1"),
        "currency": "EUR",
        "charging_periods": [
            {
                "start_date_time": "2026-11-23T10:00:00Z",
                "dimensions": [{"type": "ENERGY", "volume": 4}],
            }
        ],
        "total_cost": 1.4,
        "total_energy": 4,
        "total_time": 1,
        "last_updated": "2026-11-23T11:00:00Z",
    }


def token_22(
    platform: Platform, uid: str, version_fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    cc, pid = platform.party
    return {
        "country_code": cc,
        "party_id": pid,
        "uid": uid,
        "type": "APP_USER",
        "contract_id": f"{cc}-{pid}-C{uid[-5:]}",
        "issuer": platform.name,
        "valid": True,
        "whitelist": "ALLOWED",
        "last_updated": "2026-11-23T08:00:00Z",
    } | (version_fields or {})


@pytest.fixture
async def world(gateways: GatewayFactory) -> AsyncIterator[World]:
    gateway = await gateways.start(port=free_port())
    cpo = CpoV211()
    e221 = Platform("eMSP Two", "EMSP", [("DE", "EM2")])
    e230 = Platform("eMSP New", "EMSP", [("FR", "EMN")], version="2.3.0")
    await cpo.start()
    for platform in (e221, e230):
        await platform.start()
    try:
        status, partner = await gateway.admin(
            "POST", "/partners", {"name": cpo.name, "kind": "HUB", "role": "CPO"}
        )
        assert status == 201, partner
        cpo.rewrite = (gateway.settings.base_url, gateway.url)
        ours = await cpo.register_with(partner["our_versions_url"], partner["token_a"])
        assert (ours["country_code"], ours["party_id"]) == HUB_PARTY
        status, seen = await gateway.admin("GET", f"/partners/{partner['id']}")
        assert seen["version"] == "2.1.1"
        assert seen["parties"] == [{"country_code": "BE", "party_id": "OLD", "role": "CPO"}]
        for platform in (e221, e230):
            status, partner = await gateway.admin(
                "POST", "/partners", {"name": platform.name, "kind": "HUB"}
            )
            assert status == 201, partner
            await platform.register(partner["our_versions_url"], partner["token_a"])
        yield World(gateway, cpo, e221, e230)
    finally:
        await gateways.stop(gateway)
        await cpo.stop()
        for platform in (e221, e230):
            await platform.stop()
    assert cpo.invalid == [] and e221.invalid == [] and e230.invalid == []


async def test_admin_role_is_checked(world: World) -> None:
    gw = world.gateway
    status, body = await gw.admin("POST", "/partners", {"name": "x", "kind": "PEER", "role": "CPO"})
    assert status == 422 and body.get("field") == "role", body
    status, body = await gw.admin("POST", "/partners", {"name": "x", "kind": "HUB", "role": "HUB"})
    assert status in (400, 422) and "role" in str(body), body


async def test_211_cpo_on_the_hub(world: World) -> None:
    gw, cpo, e221, e230 = world.gateway, world.cpo, world.e221, world.e230
    hub = cpo.hub_endpoints  # to the 2.1.1 CPO the hub is an eMSP: one URL per module
    assert set(hub) == {
        "credentials",
        "locations",
        "tariffs",
        "sessions",
        "cdrs",
        "tokens",
        "commands",
    }

    # -- a location broadcast: each eMSP in its version --------------------------------
    status, headers, body = await cpo.call(
        "PUT", hub["locations"] + "/BE/OLD/L-1", location_211("L-1")
    )
    assert (status, body["status_code"]) == (200, 1000), body
    assert not {k for k in headers if k.lower().startswith("ocpi-")}
    put221 = await eventually(lambda: e221.got("locations", "PUT"))
    put230 = await eventually(lambda: e230.got("locations", "PUT"))
    assert put221[0].path.endswith("/BE/OLD/L-1") and routed(put221[0]) == ("ZZ*HUB", "DE*EM2")
    validate_against_openapi("locations", "Location", put221[0].body)
    validate_against_openapi("locations", "Location", put230[0].body, version="2.3.0")
    assert (put221[0].body["country_code"], put221[0].body["party_id"]) == OLD
    assert put221[0].body["parking_type"] == "ON_STREET"
    assert put221[0].body["evses"][0]["connectors"][0]["max_voltage"] == 230
    # An EVSE PATCH without last_updated (2.1.1 does not require it).
    status, _, body = await cpo.call(
        "PATCH", hub["locations"] + "/BE/OLD/L-1/L-1-E1", {"status": "CHARGING"}
    )
    assert body["status_code"] == 1000, body
    patch = await eventually(lambda: e230.got("locations", "PATCH"))
    assert patch[0].body["status"] == "CHARGING" and "last_updated" in patch[0].body
    await settled(gw)

    # -- a token the 2.2.1 eMSP broadcasts reaches the 2.1.1 CPO in 2.1.1 -------------
    token = token_22(e221, "TOK-22")
    reply = await e221.call(
        "PUT", e221.hub_url("tokens", "RECEIVER") + "/DE/EM2/TOK-22", token, to=HUB_PARTY
    )
    assert reply.body["status_code"] == 1000, reply.body
    await eventually(lambda: cpo.got("tokens", "PUT"))
    held = cpo.tokens["DE*EM2*TOK-22"]
    assert held["auth_id"] == "DE-EM2-COK-22" and held["type"] == "OTHER"  # APP_USER: 2.2 added it
    await settled(gw)

    # -- sessions and CDRs, routed to the token's eMSP ----------------------------------
    # The token the hub saw: its eMSP, uid and type.
    status, _, body = await cpo.call(
        "PUT", hub["sessions"] + "/BE/OLD/S-1", session_211("S-1", "DE-EM2-COK-22")
    )
    assert body["status_code"] == 1000, body
    s221 = e221.got("sessions", "PUT")[-1]
    validate_against_openapi("sessions", "Session", s221.body)
    assert s221.body["cdr_token"] == {
        "country_code": "DE", "party_id": "EM2", "uid": "TOK-22", "type": "APP_USER", "contract_id": "DE-EM2-COK-22",
    }  # fmt: skip
    assert (s221.body["location_id"], s221.body["evse_uid"], s221.body["connector_id"]) == (
        "L-1",
        "L-1-E1",
        "1",
    )
    assert s221.body["total_cost"] == {"excl_vat": Decimal("1.05")} and routed(s221) == (
        "BE*OLD",
        "DE*EM2",
    )
    status, _, body = await cpo.call(
        "PATCH", hub["sessions"] + "/BE/OLD/S-1", {"kwh": 4, "status": "ACTIVE"}
    )
    assert body["status_code"] == 1000, body
    p221 = e221.got("sessions", "PATCH")[-1]
    assert p221.body["kwh"] == 4 and "last_updated" in p221.body
    # A contract the hub never saw: the eMSP its eMA ID names (FR*EMN, in 2.3.0).
    status, _, body = await cpo.call(
        "PUT", hub["sessions"] + "/BE/OLD/S-2", session_211("S-2", "FR-EMN-C00007")
    )
    assert body["status_code"] == 1000, body
    s230 = e230.got("sessions", "PUT")[-1]
    validate_against_openapi("sessions", "Session", s230.body, version="2.3.0")
    assert (
        s230.body["cdr_token"]["uid"] == "FR-EMN-C00007"
        and s230.body["cdr_token"]["type"] == "OTHER"
    )
    # CDRs.
    status, _, body = await cpo.call("POST", hub["cdrs"], cdr_211("CDR-1", "DE-EM2-COK-22"))
    assert body["status_code"] == 1000, body
    c221 = e221.got("cdrs", "POST")[-1]
    validate_against_openapi("cdrs", "CDR", c221.body)
    assert c221.body["cdr_location"]["evse_id"] == "BE*OLD*E1" and c221.body["total_cost"] == {
        "excl_vat": Decimal("1.4")
    }
    status, _, body = await cpo.call("POST", hub["cdrs"], cdr_211("CDR-2", "FR-EMN-C00007"))
    assert body["status_code"] == 1000, body
    c230 = e230.got("cdrs", "POST")[-1]
    validate_against_openapi("cdrs", "CDR", c230.body, version="2.3.0")
    assert (c230.body["country_code"], c230.body["party_id"], c230.body["end_date_time"]) == (
        "BE",
        "OLD",
        "2026-11-23T11:00:00Z",
    )
    # No eMSP to be found: a clear error (2.1.1 has no 4xxx), nothing sent.
    status, _, body = await cpo.call("POST", hub["cdrs"], cdr_211("CDR-3", "12345"))
    assert body["status_code"] == 3000 and "4001" in body["status_message"], body

    # -- real-time authorization of a uid no eMSP pushed: each eMSP asked -----------------
    e221.authorize["RT-1"] = "ALLOWED"
    status, headers, body = await cpo.call(
        "POST", hub["tokens"] + "/RT-1/authorize", {"location_id": "L-1"}
    )
    assert (status, body["status_code"]) == (200, 1000), body
    assert (
        problems_211(v211.AuthorizationInfo, body["data"]) == []
        and body["data"]["allowed"] == "ALLOWED"
    )
    assert not {k for k in headers if k.lower().startswith("ocpi-")}
    asked = [r for r in e221.received if r.path.endswith("/RT-1/authorize")]
    assert asked and asked[0].body == {"location_id": "L-1"}
    # Its eMSP is remembered, with its contract: the session of that charge goes there.
    status, _, body = await cpo.call(
        "PUT", hub["sessions"] + "/BE/OLD/S-3", session_211("S-3", "DE-EM2-CRT-1")
    )
    assert body["status_code"] == 1000, body
    assert e221.got("sessions", "PUT")[-1].body["cdr_token"]["uid"] == "RT-1"
    # Nobody allows it: the first refusal.
    status, _, body = await cpo.call("POST", hub["tokens"] + "/RT-9/authorize")
    assert body["status_code"] == 1000 and body["data"]["allowed"] == "NOT_ALLOWED", body

    # -- START_SESSION from the 2.2.1 eMSP; the result in 2.2.1 ---------------------------
    async def answer(command: str, body: dict[str, Any]) -> None:
        assert command == "START_SESSION"
        # The 2.1.1 CPO posts the result (a CommandResponse) at the hub's 2.1.1 URL.
        assert body["response_url"].startswith(gw.settings.base_url + "/ocpi/hub/2.1.1/commands/")
        _, _, reply = await cpo.call("POST", body["response_url"], {"result": "ACCEPTED"})
        assert reply["status_code"] == 1000, reply

    cpo.on_command = answer
    own = f"{e221.url}/ocpi/2.2.1/commands/sender/START-1"
    command = {"response_url": own, "token": token, "location_id": "L-1", "evse_uid": "L-1-E1"}
    reply = await e221.call(
        "POST", e221.hub_url("commands", "RECEIVER") + "/START_SESSION", command, to=OLD
    )
    assert reply.body["status_code"] == 1000, reply.body
    validate_against_openapi("commands", "CommandResponse", reply.body["data"])
    assert reply.body["data"]["result"] == "ACCEPTED"
    started = cpo.got("commands", "POST")[-1]
    assert (
        started.body["token"]["auth_id"] == "DE-EM2-COK-22" and started.body["location_id"] == "L-1"
    )
    assert not {k for k in started.headers if k.lower().startswith("ocpi-")}
    result = await eventually(lambda: e221.got("commands", "POST"))
    assert result[0].body == {"result": "ACCEPTED"} and routed(result[0]) == ("BE*OLD", "DE*EM2")

    # -- GET All of the eMSPs' tokens, in 2.1.1 -------------------------------------------
    e221.lists["tokens"] = [token_22(e221, "LIST-22")]
    e230.lists["tokens"] = [token_22(e230, "LIST-30")]
    status, headers, body = await cpo.call("GET", hub["tokens"] + "?limit=10")
    assert (status, body["status_code"]) == (200, 1000), body
    assert [(t["uid"], t["auth_id"]) for t in body["data"]] == [
        ("LIST-22", "DE-EM2-CST-22"),
        ("LIST-30", "FR-EMN-CST-30"),
    ]
    for listed in body["data"]:
        assert problems_211(v211.Token, listed) == []
    assert headers["X-Total-Count"] == "2"
    # The hub noted the tokens of the page: a session of LIST-30 carries its uid and type.
    status, _, body = await cpo.call(
        "PUT", hub["sessions"] + "/BE/OLD/S-4", session_211("S-4", "FR-EMN-CST-30")
    )
    assert body["status_code"] == 1000, body
    listed = e230.got("sessions", "PUT")[-1].body["cdr_token"]
    assert (listed["uid"], listed["type"]) == ("LIST-30", "APP_USER")
    await settled(gw)


async def test_a_211_location_without_a_time_zone_takes_the_platforms(world: World) -> None:
    """2.1.1 makes a Location's time_zone optional, 2.2.1 and 2.3.0 require it: the hub
    refuses such a Location (2001 naming time_zone) until the operator sets the time zone
    of the platform's Locations that name none (PATCH /admin/partners/{id}); then each
    eMSP gets it with that time zone."""
    gw, cpo, e221, e230 = world.gateway, world.cpo, world.e221, world.e230
    hub = cpo.hub_endpoints
    bare = location_211("L-TZ")
    del bare["time_zone"]
    status, _, body = await cpo.call("PUT", hub["locations"] + "/BE/OLD/L-TZ", bare)
    assert body["status_code"] == 2001 and "time_zone" in body["status_message"], body
    assert e221.got("locations", "PUT") == [] and e230.got("locations", "PUT") == []

    status, partners = await gw.admin("GET", "/partners")
    (platform,) = [p for p in partners if p["name"] == cpo.name]
    assert platform["default_time_zone"] is None
    url = f"/partners/{platform['id']}"
    status, changed = await gw.admin("PATCH", url, {"default_time_zone": "Europe/Brussels"})
    assert status == 200 and changed["default_time_zone"] == "Europe/Brussels", changed

    status, _, body = await cpo.call("PUT", hub["locations"] + "/BE/OLD/L-TZ", bare)
    assert (status, body["status_code"]) == (200, 1000), body
    put221 = await eventually(lambda: e221.got("locations", "PUT"))
    put230 = await eventually(lambda: e230.got("locations", "PUT"))
    assert put221[0].path.endswith("/BE/OLD/L-TZ")
    assert put221[0].body["time_zone"] == "Europe/Brussels"
    assert put230[0].body["time_zone"] == "Europe/Brussels"
    validate_against_openapi("locations", "Location", put221[0].body)
    validate_against_openapi("locations", "Location", put230[0].body, version="2.3.0")
    # A Location that names its own time zone keeps it.
    own = location_211("L-OWN") | {"time_zone": "Europe/Amsterdam"}
    status, _, body = await cpo.call("PUT", hub["locations"] + "/BE/OLD/L-OWN", own)
    assert body["status_code"] == 1000, body
    got = await eventually(
        lambda: [r for r in e221.got("locations", "PUT") if r.path.endswith("/L-OWN")]
    )
    assert got[0].body["time_zone"] == "Europe/Amsterdam"
    # Read from the platform too: a 2.2.1 eMSP's GET of its locations, in its version.
    cpo.locations = [bare]
    reply = await e221.call("GET", e221.hub_url("locations", "SENDER"), to=OLD)
    assert reply.body["status_code"] == 1000, reply.body
    assert [(x["id"], x["time_zone"]) for x in reply.body["data"]] == [
        ("L-TZ", "Europe/Brussels")
    ]

    # Cleared again (null): refused again.
    status, changed = await gw.admin("PATCH", url, {"default_time_zone": None})
    assert status == 200 and changed["default_time_zone"] is None, changed
    status, _, body = await cpo.call("PUT", hub["locations"] + "/BE/OLD/L-TZ", bare)
    assert body["status_code"] == 2001, body


async def test_the_default_time_zone_is_checked(world: World) -> None:
    gw = world.gateway
    status, partners = await gw.admin("GET", "/partners")
    hub_id = partners[0]["id"]
    for body in ({"default_time_zone": "Mars/Olympus"}, {"default_time_zone": "../etc"}):
        status, answer = await gw.admin("PATCH", f"/partners/{hub_id}", body)
        assert status == 422 and answer.get("field") == "default_time_zone", answer
    status, answer = await gw.admin("PATCH", f"/partners/{hub_id}", {})
    assert status == 422 and "default_time_zone" in str(answer), answer
    status, answer = await gw.admin("PATCH", "/partners/nope", {"default_time_zone": None})
    assert status == 404, answer
    # Set at creation; only for a hub platform.
    status, created = await gw.admin(
        "POST",
        "/partners",
        {"name": "y", "kind": "HUB", "role": "CPO", "default_time_zone": "Europe/Paris"},
    )
    assert status == 201 and created["default_time_zone"] == "Europe/Paris", created
    status, seen = await gw.admin("GET", f"/partners/{created['id']}")
    assert seen["default_time_zone"] == "Europe/Paris"
    status, answer = await gw.admin(
        "POST", "/partners", {"name": "z", "kind": "PEER", "default_time_zone": "Europe/Paris"}
    )
    assert status == 422 and answer.get("field") == "default_time_zone", answer
