"""The hub between OCPI versions (issue 14), end to end: a 2.1.1 eMSP, a 2.2.1 eMSP, a
2.3.0 CPO platform and the hosted CPO (the gateway's own charger, speaking OCPP 1.6 over a
real WebSocket). Each platform is a real aiohttp server written from its version's
specification that does the credentials handshake in its version
(tests/roaming/emsp_versions.py for 2.1.1, tests/hub/platform.py for 2.2.1 and 2.3.0) and
checks every object it is sent against its version (2.1.1: the models, with no field
2.1.1 lacks; 2.2.1 and 2.3.0: the official OpenAPI files), answering 2001 otherwise."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from ocpp.v16 import call as call16
from pydantic import BaseModel

import ocpi.v211 as v211
from gateway.storage.base import OutboxStatus
from tests.conftest import FakeClock, Gateway, GatewayFactory
from tests.hub.platform import Platform
from tests.hub.test_gateway_hub import (
    HUB_PARTY,
    _mv,
    eventually,
    external_location,
    free_port,
    get_all,
    hosted_location,
)
from tests.ocpi.openapi import validate_against_openapi
from tests.roaming.emsp_versions import VersionedEmsp
from tests.sim import connect


def unknown_fields(obj: Any, raw: Any, path: str = "") -> list[str]:
    """Paths of the fields in ``raw`` that the validated ``obj`` has no field for (the
    models ignore unknown fields: a 2.2.1 ``country_code`` in a 2.1.1 Location would pass)."""
    if isinstance(obj, BaseModel) and isinstance(raw, dict):
        found: list[str] = []
        for key, value in raw.items():
            where = f"{path}.{key}" if path else key
            if key not in type(obj).model_fields:
                found.append(where)
            else:
                found += unknown_fields(getattr(obj, key), value, where)
        return found
    if isinstance(obj, list) and isinstance(raw, list):
        return [p for i, (o, r) in enumerate(zip(obj, raw, strict=False)) for p in unknown_fields(o, r, f"{path}[{i}]")]
    return []


@dataclass
class Emsp211(VersionedEmsp):
    """The 2.1.1 eMSP, also keeping the headers of each request it gets (2.1.1 has no
    routing headers: none may reach it)."""

    headers: list[dict[str, str]] = field(default_factory=list)

    async def _module(self, request: web.Request) -> web.StreamResponse:
        self.headers.append(dict(request.headers))
        return await super()._module(request)

    def routing_headers(self) -> set[str]:
        return {k for h in self.headers for k in h if re.match(r"(?i)ocpi-(from|to)-", k)}

    def strict(self, name: str, obj: Any) -> None:
        """``obj`` is a 2.1.1 ``name`` with no field 2.1.1 lacks."""
        model = getattr(v211, name)
        assert unknown_fields(model.model_validate(obj), obj) == [], obj


@dataclass
class World:
    gateway: Gateway
    clock: FakeClock
    e211: Emsp211
    e221: Platform
    c230: Platform


def location_230(loc_id: str, standard: str = "IEC_62196_T2") -> dict[str, Any]:
    location = external_location(loc_id)
    location["evses"][0]["connectors"][0]["standard"] = standard
    return location


def session_230(session_id: str, owner: tuple[str, str], uid: str, kwh: float = 3) -> dict[str, Any]:
    return {
        "country_code": "BE",
        "party_id": "CPX",
        "id": session_id,
        "start_date_time": "2026-11-23T10:00:00Z",
        "kwh": kwh,
        "cdr_token": {"country_code": owner[0], "party_id": owner[1], "uid": uid, "type": "RFID", "contract_id": f"{owner[0]}-{owner[1]}-C{uid[-5:]}"},
        "auth_method": "AUTH_REQUEST",
        "location_id": "L-A",
        "evse_uid": "L-A-E1",
        "connector_id": "1",
        "currency": "EUR",
        "total_cost": {"before_taxes": 1.05, "taxes": [{"name": "VAT", "amount": 0.22}]},
        "status": "ACTIVE",
        "last_updated": "2026-11-23T10:05:00Z",
    }


def cdr_230(cdr_id: str, session: dict[str, Any]) -> dict[str, Any]:
    return {
        "country_code": "BE",
        "party_id": "CPX",
        "id": cdr_id,
        "start_date_time": "2026-11-23T10:00:00Z",
        "end_date_time": "2026-11-23T11:00:00Z",
        "session_id": session["id"],
        "cdr_token": session["cdr_token"],
        "auth_method": "AUTH_REQUEST",
        "cdr_location": {
            "id": "L-A",
            "address": "Rue Neuve 1",
            "city": "Bruxelles",
            "country": "BEL",
            "coordinates": {"latitude": "50.850000", "longitude": "4.350000"},
            "evse_uid": "L-A-E1",
            "evse_id": "BE*CPX*E1",
            "connector_id": "1",
            "connector_standard": "IEC_62196_T2",
            "connector_format": "SOCKET",
            "connector_power_type": "AC_3_PHASE",
        },
        "currency": "EUR",
        "charging_periods": [{"start_date_time": "2026-11-23T10:00:00Z", "dimensions": [{"type": "ENERGY", "volume": 4}]}],
        "total_cost": {"before_taxes": 1.4, "taxes": [{"name": "VAT", "amount": 0.29}]},
        "total_energy": 4,
        "total_time": 1,
        "last_updated": "2026-11-23T11:00:00Z",
    }


async def join(gateway: Gateway, name: str) -> dict[str, Any]:
    status, partner = await gateway.admin("POST", "/partners", {"name": name, "kind": "HUB"})
    assert status == 201, partner
    return partner


@pytest.fixture
async def world(gateways: GatewayFactory) -> AsyncIterator[World]:
    clock = FakeClock()
    gateway = await gateways.start(clock=clock, port=free_port())
    e211 = Emsp211(version="2.1.1", country_code="NL", party_id="EMO", name="eMSP Old")
    e221 = Platform("eMSP Two", "EMSP", [("DE", "EM2")])
    c230 = Platform("CPO New", "CPO", [("BE", "CPX")], version="2.3.0")
    c230.locations = [location_230(i) for i in ("L-A", "L-B", "L-C")]
    await e211.start()
    for platform in (e221, c230):
        await platform.start()
    try:
        partner = await join(gateway, "eMSP Old")
        e211.rewrite = (gateway.settings.base_url, gateway.url)
        ours = await e211.register_with(partner["our_versions_url"], partner["token_a"])
        assert (ours["country_code"], ours["party_id"]) == HUB_PARTY  # 2.1.1: the hub's one party
        for platform in (e221, c230):
            partner = await join(gateway, platform.name)
            await platform.register(partner["our_versions_url"], partner["token_a"])
        yield World(gateway, clock, e211, e221, c230)
    finally:
        await gateways.stop(gateway)
        await e211.stop()
        for platform in (e221, c230):
            await platform.stop()
    assert e211.invalid == [] and e221.invalid == [] and c230.invalid == []


async def settled(gateway: Gateway, *, failed: int = 0) -> list[Any]:
    """Every push delivered; the FAILED items (``failed`` of them expected)."""
    async with __import__("asyncio").timeout(10):
        while await gateway.store.outbox.list(status=OutboxStatus.PENDING, limit=1):
            await __import__("asyncio").sleep(0.02)
    items = await gateway.store.outbox.list(status=OutboxStatus.FAILED, limit=100)
    assert len(items) == failed, [i.last_error for i in items]
    return list(items)


def routed(received: Any) -> tuple[str, str]:
    h = received.headers
    return (
        f"{h.get('OCPI-from-country-code')}*{h.get('OCPI-from-party-id')}",
        f"{h.get('OCPI-to-country-code')}*{h.get('OCPI-to-party-id')}",
    )


async def test_hub_between_versions(world: World) -> None:
    gw, e211, e221, c230 = world.gateway, world.e211, world.e221, world.c230
    await hosted_location(gw)
    hub = e211.cpo_endpoints  # to the 2.1.1 eMSP the hub is a CPO: one URL per module
    assert set(hub) == {"credentials", "locations", "tariffs", "sessions", "cdrs", "tokens", "commands"}

    # -- GET All: each in its own version --------------------------------------------
    locations = await e211.get_all(hub["locations"] + "?limit=2")  # no routing headers
    assert [loc["id"] for loc in locations] == ["L-A", "L-B", "L-C", "LOC1"]
    for location in locations:
        e211.strict("Location", location)  # no country_code, party_id, publish...
    objects, totals = await get_all(e221, "locations", limit=2)
    assert [(o["country_code"], o["party_id"], o["id"]) for o in objects] == [
        ("BE", "CPX", "L-A"), ("BE", "CPX", "L-B"), ("BE", "CPX", "L-C"), ("ZZ", "GWY", "LOC1"),
    ]  # fmt: skip
    assert set(totals) == {"4"}  # validated against the 2.2.1 OpenAPI by get_all
    tariffs = await e211.get_all(hub["tariffs"])
    assert [t["id"] for t in tariffs] == ["AC-STD"]
    e211.strict("Tariff", tariffs[0])
    # The CPO's GET All of tokens: the 2.1.1 eMSP's and the 2.2.1 eMSP's, in 2.3.0.
    e211.tokens = [{"uid": "LIST-1"}]
    e221.lists["tokens"] = [
        {"country_code": "DE", "party_id": "EM2", "uid": "LIST-2", "type": "APP_USER", "contract_id": "DE-EM2-C00002",
         "issuer": "eMSP Two", "valid": True, "whitelist": "ALLOWED", "last_updated": "2026-11-23T08:00:00Z"},
    ]  # fmt: skip
    reply = await c230.call("GET", c230.hub_url("tokens", "SENDER"), to=HUB_PARTY)
    assert reply.body["status_code"] == 1000, reply.body
    assert [(t["country_code"], t["party_id"], t["uid"]) for t in reply.body["data"]] == [
        ("DE", "EM2", "LIST-2"), ("NL", "EMO", "LIST-1"),
    ]  # fmt: skip
    for token in reply.body["data"]:
        validate_against_openapi("tokens", "Token", token, version="2.3.0")

    # -- broadcast: the 2.3.0 CPO's new location reaches each eMSP in its version ------
    reply = await c230.call("PUT", c230.hub_url("locations", "RECEIVER") + "/BE/CPX/L-D", location_230("L-D"), to=HUB_PARTY)
    assert reply.body["status_code"] == 1000, reply.body
    got = await eventually(lambda: [r for r in e211.taken("locations", "PUT") if r.path.endswith("/L-D")])
    assert got[0].path == "/ocpi/emsp/2.1.1/locations/BE/CPX/L-D"
    e211.strict("Location", got[0].body)
    # The hosted CPO's own location reached it too (gateway.roaming, in its version).
    e211.strict("Location", e211.locations["LOC1"]["location"])
    put = await eventually(lambda: [r for r in e221.got("locations", "PUT") if r.path.endswith("/L-D")])
    assert routed(put[0]) == ("ZZ*HUB", "DE*EM2")
    patch = {"status": "CHARGING", "last_updated": "2026-11-23T09:00:00Z"}
    reply = await c230.call("PATCH", c230.hub_url("locations", "RECEIVER") + "/BE/CPX/L-D/L-D-E1", patch, to=HUB_PARTY)
    assert reply.body["status_code"] == 1000, reply.body
    await eventually(lambda: e211.taken("locations", "PATCH"))
    assert e211.evse_status("L-D", "L-D-E1") == "CHARGING"
    await settled(gw)

    # The 2.1.1 eMSP pushes a token (no routing headers: open routing, a broadcast to the
    # CPOs): the 2.3.0 CPO gets a 2.3.0 Token of the eMSP's party, the hosted CPO stores it.
    status, headers, body = await e211.call("PUT", hub["tokens"] + "/NL/EMO/TOK211", e211.token("TOK211", whitelist="ALLOWED"))
    assert (status, body["status_code"]) == (200, 1000), body
    assert not {k for k in headers if k.lower().startswith("ocpi-")}  # nothing 2.1.1 lacks
    token_put = await eventually(lambda: c230.got("tokens", "PUT"))
    assert token_put[0].path == "/ocpi/2.3.0/tokens/receiver/NL/EMO/TOK211"
    contract = e211.token("TOK211")["auth_id"]
    assert (token_put[0].body["country_code"], token_put[0].body["contract_id"]) == ("NL", contract)
    assert routed(token_put[0]) == ("ZZ*HUB", "BE*CPX")
    status, _, body = await e211.call("PATCH", hub["tokens"] + "/NL/EMO/TOK211", {"valid": True})
    assert body["status_code"] == 1000, body
    token_patch = await eventually(lambda: c230.got("tokens", "PATCH"))
    assert token_patch[0].body["valid"] is True and "last_updated" in token_patch[0].body
    await settled(gw)

    # -- real-time authorization: the 2.3.0 CPO asks the 2.1.1 eMSP through the hub ---
    e211.authorize["TOK211"] = "ALLOWED"
    reply = await c230.call("POST", c230.hub_url("tokens", "SENDER") + "/TOK211/authorize?type=RFID", {"location_id": "L-A"})
    assert reply.body["status_code"] == 1000, reply.body
    info = reply.body["data"]
    validate_against_openapi("tokens", "AuthorizationInfo", info, version="2.3.0")
    assert info["allowed"] == "ALLOWED" and (info["token"]["country_code"], info["token"]["uid"]) == ("NL", "TOK211")
    assert e211.authorize_requests[-1] == ("TOK211", {"location_id": "L-A"})

    # -- routed pushes: the 2.3.0 CPO's session and CDR, each eMSP in its version -----
    session = session_230("S-1", ("NL", "EMO"), "TOK211")
    reply = await c230.call("PUT", c230.hub_url("sessions", "RECEIVER") + "/BE/CPX/S-1", session)
    assert reply.body["status_code"] == 1000, reply.body
    old = e211.sessions["S-1"]  # validated by the 2.1.1 eMSP
    e211.strict("Session", old)
    assert old["location"]["id"] == "L-A" and [e["uid"] for e in old["location"]["evses"]] == ["L-A-E1"]
    assert old["total_cost"] == Decimal("1.05") and old["auth_id"] == contract
    reply = await c230.call("PATCH", c230.hub_url("sessions", "RECEIVER") + "/BE/CPX/S-1", {"kwh": 4, "last_updated": "2026-11-23T10:10:00Z"})
    assert reply.body["status_code"] == 1000, reply.body
    assert e211.sessions["S-1"]["kwh"] == 4
    reply = await c230.call("POST", c230.hub_url("cdrs", "RECEIVER"), cdr_230("CDR-1", session))
    assert reply.body["status_code"] == 1000, reply.body
    e211.strict("CDR", e211.cdrs[-1])
    assert e211.cdrs[-1]["id"] == "CDR-1" and e211.cdrs[-1]["total_cost"] == Decimal("1.4")
    assert e211.cdrs[-1]["location"]["evses"][0]["evse_id"] == "BE*CPX*E1"
    # The same for the 2.2.1 eMSP: 2.2.1 objects (the taxes summed into incl_vat).
    reply = await c230.call("PUT", c230.hub_url("sessions", "RECEIVER") + "/BE/CPX/S-2", session_230("S-2", ("DE", "EM2"), "TOK22"))
    assert reply.body["status_code"] == 1000, reply.body
    got221 = e221.got("sessions", "PUT")[-1]
    assert got221.body["total_cost"] == {"excl_vat": Decimal("1.05"), "incl_vat": Decimal("1.27")}
    assert routed(got221) == ("BE*CPX", "DE*EM2")
    # A CDR 2.1.1 cannot express (a credit CDR): the sender is told at once, naming it.
    credit = cdr_230("CDR-2", session) | {"credit": True, "credit_reference_id": "CDR-1"}
    reply = await c230.call("POST", c230.hub_url("cdrs", "RECEIVER"), credit)
    assert reply.body["status_code"] == 2001 and "credit" in reply.body["status_message"], reply.body
    assert "2.1.1" in reply.body["status_message"]
    assert [c["id"] for c in e211.cdrs] == ["CDR-1"]

    # -- commands: START_SESSION with its response_url, the result in each version ----
    async def answer(command: str, body: dict[str, Any]) -> None:
        assert command == "START_SESSION"
        # The 2.3.0 CPO posts the result at the hub's 2.3.0 URL.
        assert body["response_url"].startswith(gw.settings.base_url + "/ocpi/hub/2.3.0/commands/sender/")
        reply = await c230.call("POST", body["response_url"].replace(gw.settings.base_url, gw.url), {"result": "EVSE_OCCUPIED"})
        assert reply.body["status_code"] == 1000, reply.body

    c230.on_command = answer
    respond = f"{e211.url}{e211.base}/commands/START_SESSION/1"
    command = {"response_url": respond, "token": e211.token("TOK211"), "location_id": "L-A"}
    status, _, body = await e211.call("POST", hub["commands"] + "/START_SESSION", command)
    assert body == body | {"status_code": 1000, "data": {"result": "ACCEPTED"}}, body  # 2.1.1: no timeout
    results = await eventually(lambda: e211.results)
    # EVSE_OCCUPIED is not a 2.1.1 result: REJECTED, at the eMSP's own URL.
    assert results == [("START_SESSION/1", {"result": "REJECTED"})]
    started = c230.got("commands", "POST")[-1]
    assert started.body["token"]["country_code"] == "NL" and started.body["token"]["contract_id"] == contract
    # The 2.2.1 eMSP's command reaches the 2.3.0 CPO too; its result comes back in 2.2.1.
    own = f"{e221.url}/ocpi/2.2.1/commands/sender/START-2"
    token22 = e221.lists["tokens"][0]
    reply = await e221.call("POST", e221.hub_url("commands", "RECEIVER") + "/START_SESSION", {"response_url": own, "token": token22, "location_id": "L-A"}, to=c230.party)
    assert reply.body["status_code"] == 1000 and reply.body["data"]["result"] == "ACCEPTED", reply.body
    validate_against_openapi("commands", "CommandResponse", reply.body["data"])
    result22 = await eventually(lambda: e221.got("commands", "POST"))
    assert result22[0].body == {"result": "EVSE_OCCUPIED"} and routed(result22[0]) == ("BE*CPX", "DE*EM2")

    # -- the hosted CPO: a 2.1.1 command, then the charge, its session and CDR --------
    async with connect(gw.ws_url, "CP1", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        hosted = {"response_url": f"{e211.url}{e211.base}/commands/START_SESSION/2", "token": e211.token("TOK211"), "location_id": "LOC1", "evse_uid": "CP1-1"}
        status, _, body = await e211.call("POST", hub["commands"] + "/START_SESSION", hosted)
        assert body["data"] == {"result": "ACCEPTED"}, body
        await eventually(lambda: cp.received and cp.received[-1][0] == "RemoteStartTransaction")
        await eventually(lambda: len(e211.results) == 2)
        assert e211.results[-1] == ("START_SESSION/2", {"result": "ACCEPTED"})
        # The token the 2.1.1 eMSP broadcast authorizes at the hosted charger.
        assert (await cp.call(call16.Authorize(id_tag="TOK211"))).id_tag_info["status"] == "Accepted"
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="TOK211", meter_start=0, timestamp="2026-11-23T10:00:00Z"))
        world.clock.advance(61)
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=start.transaction_id, meter_value=_mv("2026-11-23T10:30:00Z", "5000")))
        world.clock.advance(61)
        await cp.call(call16.StopTransaction(meter_stop=10_000, timestamp="2026-11-23T11:00:00Z", transaction_id=start.transaction_id))
    cdr = await eventually(lambda: [c for c in e211.cdrs if c["id"] != "CDR-1"])
    e211.strict("CDR", cdr[0])
    assert cdr[0]["total_cost"] == Decimal("3.5") and cdr[0]["location"]["id"] == "LOC1"  # 10 kWh at 0.35, excl. VAT
    assert [s["status"] for s in e211.sessions.values() if s["location"]["id"] == "LOC1"] == ["COMPLETED"]
    await settled(gw)
    assert e211.routing_headers() == set()  # nothing that reached the 2.1.1 eMSP had them
    assert e221.got("cdrs") == [] and c230.got("sessions") == []


async def test_broadcast_copy_a_version_cannot_express_fails_visibly(world: World) -> None:
    gw, e211, e221, c230 = world.gateway, world.e211, world.e221, world.c230
    # A GB/T connector: 2.2.1 has it, 2.1.1 does not.
    location = location_230("L-G", standard="GBT_AC")
    reply = await c230.call("PUT", c230.hub_url("locations", "RECEIVER") + "/BE/CPX/L-G", location, to=HUB_PARTY)
    assert reply.body["status_code"] == 1000, reply.body
    await eventually(lambda: e221.got("locations", "PUT"))
    failed = await settled(gw, failed=1)
    assert failed[0].partner_id != "" and "standard" in (failed[0].last_error or "")
    assert "2.1.1" in (failed[0].last_error or "")
    assert e211.taken("locations") == []  # never sent malformed
    # GET All: left out of the 2.1.1 eMSP's pages, counted so that paging stays consistent.
    c230.locations.append(location)
    status, headers, body = await e211.call("GET", e211.cpo_endpoints["locations"] + "?limit=10")
    assert status == 200 and [loc["id"] for loc in body["data"]] == ["L-A", "L-B", "L-C"]
    assert headers["X-Total-Count"] == "4"
    # Asked for alone: a clear error naming the field, not a malformed object.
    _, _, body = await e211.call("GET", e211.cpo_endpoints["locations"] + "/L-G")
    assert (status, body["status_code"]) == (200, 3000) and "standard" in body["status_message"], body
    # The 2.2.1 eMSP reads it directly from the 2.3.0 CPO, converted.
    reply = await e221.call("GET", e221.hub_url("locations", "SENDER") + "/L-G", to=c230.party)
    assert reply.body["status_code"] == 1000, reply.body
    validate_against_openapi("locations", "Location", reply.body["data"])


async def test_211_sender_errors_name_the_field(world: World) -> None:
    e211 = world.e211
    hub = e211.cpo_endpoints
    # A 2.1.1 token without auth_id: named in 2.1.1 terms.
    bad = e211.token("BAD1")
    del bad["auth_id"]
    status, _, body = await e211.call("PUT", hub["tokens"] + "/NL/EMO/BAD1", bad)
    assert status == 200 and body["status_code"] == 2001 and "auth_id" in body["status_message"], body
    assert world.c230.got("tokens") == []
    # No chargingprofiles in 2.1.1.
    status, _, body = await e211.call("GET", hub["credentials"].replace("credentials", "chargingprofiles") + "/S1")
    assert status == 404 or body["status_code"] != 1000
    # A command for a location the hub cannot place: no hub status codes in 2.1.1.
    command = {"response_url": f"{e211.url}{e211.base}/commands/START_SESSION/9", "token": e211.token("X1"), "location_id": "NOWHERE"}
    status, headers, body = await e211.call("POST", hub["commands"] + "/START_SESSION", command)
    assert body["status_code"] == 3000 and "4001" in body["status_message"], body
    assert not {k for k in headers if k.lower().startswith("ocpi-")}


async def test_same_version_230_links_and_response_urls_stay_in_230(world: World) -> None:
    gw, c230 = world.gateway, world.c230
    e230 = Platform("eMSP New", "EMSP", [("FR", "EMN")], version="2.3.0")
    await e230.start()
    try:
        partner = await join(gw, e230.name)
        await e230.register(partner["our_versions_url"], partner["token_a"])
        # A directed page of the 2.3.0 CPO: passed on as it is, its next link the hub's 2.3.0 URL.
        reply = await e230.call("GET", e230.hub_url("locations", "SENDER") + "?limit=2", to=c230.party)
        assert reply.body["status_code"] == 1000 and len(reply.body["data"]) == 2
        assert reply.body["data"][0] == c230.locations[0] | reply.body["data"][0]
        link = reply.headers["Link"].split(";")[0].strip("<>")
        assert link.startswith(gw.settings.base_url + "/ocpi/hub/2.3.0/locations/sender")
        reply = await e230.call("GET", link.replace(gw.settings.base_url, gw.url), to=c230.party)
        assert [o["id"] for o in reply.body["data"]] == ["L-C"]

        async def answer(command: str, body: dict[str, Any]) -> None:
            assert body["response_url"].startswith(gw.settings.base_url + "/ocpi/hub/2.3.0/commands/sender/")
            await c230.call("POST", body["response_url"].replace(gw.settings.base_url, gw.url), {"result": "ACCEPTED"})

        c230.on_command = answer
        token = {"country_code": "FR", "party_id": "EMN", "uid": "T30", "type": "EMAID", "contract_id": "FR-EMN-C00030",
                 "issuer": "eMSP New", "valid": True, "whitelist": "ALLOWED", "last_updated": "2026-11-23T08:00:00Z"}  # fmt: skip
        own = f"{e230.url}/ocpi/2.3.0/commands/sender/S30"
        reply = await e230.call("POST", e230.hub_url("commands", "RECEIVER") + "/START_SESSION", {"response_url": own, "token": token, "location_id": "L-A"}, to=c230.party)
        assert reply.body["status_code"] == 1000, reply.body
        results = await eventually(lambda: e230.got("commands", "POST"))
        assert results[0].body == {"result": "ACCEPTED"} and routed(results[0]) == ("BE*CPX", "FR*EMN")
        await settled(gw)
        assert e230.invalid == []
    finally:
        await e230.stop()


async def test_211_emsp_checks_a_token_at_the_cpos(world: World) -> None:
    # mod_tokens 2.1.1: the eMSP may GET a token from "its CPO" to check what it holds.
    # Behind the hub every CPO got it by broadcast: the first CPO that holds it answers
    # (the 2.3.0 CPO of this world answers no object; the hosted CPO stored it).
    e211 = world.e211
    hub = e211.cpo_endpoints
    status, _, body = await e211.call("PUT", hub["tokens"] + "/NL/EMO/TOK-C", e211.token("TOK-C"))
    assert body["status_code"] == 1000, body
    await settled(world.gateway)
    status, headers, body = await e211.call("GET", hub["tokens"] + "/NL/EMO/TOK-C")
    assert (status, body["status_code"]) == (200, 1000), body
    e211.strict("Token", body["data"])
    assert (
        body["data"]["uid"] == "TOK-C" and body["data"]["auth_id"] == e211.token("TOK-C")["auth_id"]
    )
    assert not {k for k in headers if k.lower().startswith("ocpi-")}
    status, _, body = await e211.call("GET", hub["tokens"] + "/NL/EMO/NOPE")
    assert (status, body["status_code"]) == (404, 2000), body
    # Another party's token: not its to check.
    status, _, body = await e211.call("GET", hub["tokens"] + "/DE/EM2/TOK-C")
    assert body["status_code"] != 1000, body
