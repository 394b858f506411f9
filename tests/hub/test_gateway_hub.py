"""The gateway as a roaming hub, end to end: real platforms (aiohttp servers with their
own credentials) register at ``/ocpi/hub`` and reach each other and the hosted CPO,
whose charger speaks OCPP over a real WebSocket."""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from ocpp.v16 import call as call16

from gateway.hub.service import HUB
from gateway.storage.base import OutboxStatus
from ocpi.transport import PartyId
from tests.conftest import FakeClock, Gateway, GatewayFactory
from tests.hub.platform import Platform, token_header
from tests.ocpi.openapi import validate_against_openapi, validate_envelope
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect
from tests.test_metrics import scrape, value

HUB_PARTY = ("ZZ", "HUB")
HOSTED = ("ZZ", "GWY")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (result := check()):
            await asyncio.sleep(0.02)
    return result


def external_location(loc_id: str, cc: str = "BE", pid: str = "CPX") -> dict[str, Any]:
    return {
        "country_code": cc,
        "party_id": pid,
        "id": loc_id,
        "publish": True,
        "address": "Rue Neuve 1",
        "city": "Bruxelles",
        "country": "BEL",
        "coordinates": {"latitude": "50.850000", "longitude": "4.350000"},
        "time_zone": "Europe/Brussels",
        "evses": [
            {
                "uid": f"{loc_id}-E1",
                "status": "AVAILABLE",
                "connectors": [
                    {
                        "id": "1",
                        "standard": "IEC_62196_T2",
                        "format": "SOCKET",
                        "power_type": "AC_3_PHASE",
                        "max_voltage": 230,
                        "max_amperage": 16,
                        "last_updated": "2026-11-23T08:00:00Z",
                    }
                ],
                "last_updated": "2026-11-23T08:00:00Z",
            }
        ],
        "last_updated": "2026-11-23T08:00:00Z",
    }


@dataclass
class World:
    gateway: Gateway
    clock: FakeClock
    emsp1: Platform
    emsp2: Platform
    cpo: Platform
    partner_ids: dict[str, str]


async def join(gateway: Gateway, platform: Platform) -> str:
    """The operator creates a hub partner; the platform registers with its token A."""
    status, partner = await gateway.admin(
        "POST", "/partners", {"name": platform.name, "kind": "HUB"}
    )
    assert status == 201, partner
    assert partner["our_versions_url"].endswith("/ocpi/hub/versions")
    await platform.register(partner["our_versions_url"], partner["token_a"])
    return str(partner["id"])


@pytest.fixture
async def world(gateways: GatewayFactory) -> AsyncIterator[World]:
    clock = FakeClock()
    gateway = await gateways.start(clock=clock, port=free_port())
    emsp1 = Platform("eMSP One", "EMSP", [("NL", "EM1")])
    emsp2 = Platform("eMSP Two", "EMSP", [("DE", "EM2")])
    cpo = Platform("CPO X", "CPO", [("BE", "CPX")])
    cpo.locations = [external_location(i) for i in ("L-A", "L-B", "L-C")]
    for platform in (emsp1, emsp2, cpo):
        await platform.start()
    try:
        ids = {p.name: await join(gateway, p) for p in (emsp1, emsp2, cpo)}
        yield World(gateway, clock, emsp1, emsp2, cpo, ids)
    finally:
        # The gateway first: while it runs, its outbox may open connections to a platform
        # that is shutting down, which then leaks them (unclosed transport warnings).
        await gateways.stop(gateway)
        for platform in (emsp1, emsp2, cpo):
            await platform.stop()


async def hosted_location(gateway: Gateway) -> None:
    assert (await gateway.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gateway.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    await gateway.admin(
        "PUT",
        "/chargers/CP1",
        {
            "location_id": "LOC1",
            "evses": [{"ocpp_id": 1, "evse_uid": "CP1-1", "evse_id": "ZZ*GWY*ECP1"}],
        },
    )


async def get_all(
    platform: Platform, module: str, limit: int, query: str = ""
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every page of a GET All through the hub, following Link; the objects and totals."""
    url: str | None = f"{platform.hub_url(module, 'SENDER')}?limit={limit}{query}"
    objects: list[dict[str, Any]] = []
    totals: list[str] = []
    while url:
        reply = await platform.call("GET", url, to=HUB_PARTY)
        assert reply.body["status_code"] == 1000, reply.body
        validate_envelope(
            reply.body, "locations" if module == "locations" else None, "Location", many=True
        )
        objects += reply.body["data"]
        totals.append(reply.headers["X-Total-Count"])
        link = reply.headers.get("Link")
        url = link.split(";")[0].strip("<>") if link else None
    return objects, totals


async def settled(gateway: Gateway) -> None:
    """Every push the gateway stored has been delivered (before asserting who did not
    get something: a wrong delivery would have happened by then)."""

    async def pending() -> bool:
        return not await gateway.store.outbox.list(status=OutboxStatus.PENDING, limit=1)

    async with asyncio.timeout(10):
        while not await pending():
            await asyncio.sleep(0.02)
    assert await gateway.store.outbox.list(status=OutboxStatus.FAILED, limit=1) == []


def routed(received: Any) -> tuple[str | None, str | None]:
    h = received.headers
    return (
        f"{h.get('OCPI-from-country-code')}*{h.get('OCPI-from-party-id')}",
        f"{h.get('OCPI-to-country-code')}*{h.get('OCPI-to-party-id')}",
    )


def _mv(ts: str, wh: str) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": ts,
            "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}],
        }
    ]


async def test_version_details_list_both_interfaces(world: World) -> None:
    endpoints = world.emsp1.hub_endpoints
    for module in ("locations", "tariffs", "sessions", "cdrs", "tokens", "commands"):
        assert (module, "SENDER") in endpoints and (module, "RECEIVER") in endpoints
        assert endpoints[(module, "SENDER")] != endpoints[(module, "RECEIVER")]
    assert ("hubclientinfo", "SENDER") in endpoints
    # As served: official schemas, and the hub's credentials say HUB.
    details = await world.emsp1.call("GET", f"{world.gateway.settings.base_url}/ocpi/hub/2.2.1")
    validate_against_openapi("versions", "VersionDetails", details.body["data"])
    credentials = await world.emsp1.call("GET", endpoints[("credentials", "SENDER")])
    validate_against_openapi("credentials", "Credentials", credentials.body["data"])
    assert [
        (r["role"], r["country_code"], r["party_id"]) for r in credentials.body["data"]["roles"]
    ] == [("HUB", "ZZ", "HUB")]
    assert credentials.body["data"]["url"].endswith("/ocpi/hub/versions")
    # A hub platform's token is no good on the bilateral CPO interface, nor the other way.
    reply = await world.emsp1.call("GET", f"{world.gateway.settings.base_url}/ocpi/2.2.1/locations")
    assert reply.status == 401
    status, parties = await world.gateway.admin("GET", "/hub/parties")
    assert status == 200
    assert {(p["party"], p["status"]) for p in parties} == {
        ("NL*EM1", "CONNECTED"),
        ("DE*EM2", "CONNECTED"),
        ("BE*CPX", "CONNECTED"),
        ("ZZ*GWY", "CONNECTED"),
    }


async def test_hub_end_to_end(world: World) -> None:
    gw, emsp1, emsp2, cpo = world.gateway, world.emsp1, world.emsp2, world.cpo
    await hosted_location(gw)

    # GET All: each eMSP sees both CPOs' locations, paginated consistently, owners kept.
    for emsp in (emsp1, emsp2):
        objects, totals = await get_all(emsp, "locations", limit=2)
        assert [(o["country_code"], o["party_id"], o["id"]) for o in objects] == [
            ("BE", "CPX", "L-A"),
            ("BE", "CPX", "L-B"),
            ("BE", "CPX", "L-C"),
            ("ZZ", "GWY", "LOC1"),
        ]
        assert set(totals) == {"4"}
        for obj in objects:
            validate_against_openapi("locations", "Location", obj)

    # Pushes: the hosted CPO's location reached both eMSPs, as the hub routes it.
    for emsp in (emsp1, emsp2):
        put = await eventually(lambda e=emsp: e.got("locations", "PUT"))
        assert put[0].path == "/ocpi/2.2.1/locations/receiver/ZZ/GWY/LOC1"
        assert routed(put[0]) == ("ZZ*GWY", f"{emsp.party[0]}*{emsp.party[1]}")
    # The external CPO broadcasts a new location: every eMSP gets it, through the outbox.
    new_location = external_location("L-D")
    reply = await cpo.call(
        "PUT", cpo.hub_url("locations", "RECEIVER") + "/BE/CPX/L-D", new_location, to=HUB_PARTY
    )
    assert reply.body["status_code"] == 1000
    answered_by = (reply.headers["OCPI-from-country-code"], reply.headers["OCPI-from-party-id"])
    assert answered_by == HUB_PARTY
    for emsp in (emsp1, emsp2):
        got = await eventually(
            lambda e=emsp: [r for r in e.got("locations", "PUT") if r.path.endswith("/BE/CPX/L-D")]
        )
        assert got[0].body == new_location  # passed unchanged, last_updated included
        # Broadcast Push: from the hub, to the receiver; the URL keeps the owner.
        assert routed(got[0]) == ("ZZ*HUB", f"{emsp.party[0]}*{emsp.party[1]}")
        assert got[0].headers["X-Correlation-ID"] == reply.headers["X-Correlation-ID"]
    await settled(gw)
    assert cpo.got("locations", "PUT") == []  # never to itself

    # A token of eMSP 1 authorizes at the external CPO in real time, through the hub.
    emsp1.authorize["TOKEN1"] = "ALLOWED"
    reply = await cpo.call(
        "POST",
        cpo.hub_url("tokens", "SENDER") + "/TOKEN1/authorize?type=RFID",
        {"location_id": "L-A"},
        to=emsp1.party,
    )
    assert reply.body["status_code"] == 1000 and reply.body["data"]["allowed"] == "ALLOWED"
    assert [routed(r) for r in emsp1.got("tokens", "POST")] == [("BE*CPX", "NL*EM1")]
    assert emsp2.got("tokens") == []

    # eMSP 1 broadcasts the token; the hosted charger authorizes it and charges.
    token = {
        "country_code": "NL",
        "party_id": "EM1",
        "uid": "TOKEN1",
        "type": "RFID",
        "contract_id": "NL-EM1-C00001",
        "issuer": "eMSP One",
        "valid": True,
        "whitelist": "ALLOWED",
        "last_updated": "2026-11-23T08:00:00Z",
    }
    reply = await emsp1.call(
        "PUT", emsp1.hub_url("tokens", "RECEIVER") + "/NL/EM1/TOKEN1", token, to=HUB_PARTY
    )
    assert reply.body["status_code"] == 1000
    assert (await eventually(lambda: cpo.got("tokens", "PUT")))[0].body == token
    # Now that the hub has seen the token, the CPO may ask without naming its eMSP.
    reply = await cpo.call(
        "POST", cpo.hub_url("tokens", "SENDER") + "/TOKEN1/authorize", {"location_id": "L-A"}
    )
    assert reply.body["status_code"] == 1000 and reply.body["data"]["allowed"] == "ALLOWED"
    assert len(emsp1.got("tokens", "POST")) == 2 and emsp2.got("tokens") == []
    async with connect(gw.ws_url, "CP1", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        assert (await cp.call(call16.Authorize(id_tag="TOKEN1"))).id_tag_info[
            "status"
        ] == "Accepted"
        start = await cp.call(
            call16.StartTransaction(
                connector_id=1, id_tag="TOKEN1", meter_start=0, timestamp="2026-11-23T10:00:00Z"
            )
        )
        await cp.call(
            call16.MeterValues(
                connector_id=1,
                transaction_id=start.transaction_id,
                meter_value=_mv("2026-11-23T10:30:00Z", "5000"),
            )
        )
        await cp.call(
            call16.StopTransaction(
                meter_stop=10_000,
                timestamp="2026-11-23T11:00:00Z",
                transaction_id=start.transaction_id,
            )
        )
    cdrs = await eventually(lambda: emsp1.got("cdrs", "POST"))
    assert routed(cdrs[0]) == ("ZZ*GWY", "NL*EM1")
    assert cdrs[0].body["total_cost"]["excl_vat"] == 3.5  # 10 kWh at 0.35
    validate_against_openapi("cdrs", "CDR", cdrs[0].body)
    sessions = emsp1.got("sessions")
    assert sessions and {routed(s) for s in sessions} == {("ZZ*GWY", "NL*EM1")}

    # The external CPO's session and CDR find eMSP 1 from the object (open routing).
    session = {
        "country_code": "BE",
        "party_id": "CPX",
        "id": "S-1",
        "start_date_time": "2026-11-23T10:00:00Z",
        "kwh": 3,
        "cdr_token": {
            "country_code": "NL",
            "party_id": "EM1",
            "uid": "TOKEN1",
            "type": "RFID",
            "contract_id": "NL-EM1-C00001",
        },
        "auth_method": "AUTH_REQUEST",
        "location_id": "L-A",
        "evse_uid": "L-A-E1",
        "connector_id": "1",
        "currency": "EUR",
        "status": "ACTIVE",
        "last_updated": "2026-11-23T10:05:00Z",
    }
    reply = await cpo.call("PUT", cpo.hub_url("sessions", "RECEIVER") + "/BE/CPX/S-1", session)
    assert reply.body["status_code"] == 1000, reply.body
    reply = await cpo.call(
        "PATCH",
        cpo.hub_url("sessions", "RECEIVER") + "/BE/CPX/S-1",
        {"kwh": 4, "last_updated": "2026-11-23T10:10:00Z"},
    )
    assert reply.body["status_code"] == 1000, reply.body  # the hub remembers whose session it is
    cdr = {
        "country_code": "BE",
        "party_id": "CPX",
        "id": "CDR-1",
        "start_date_time": "2026-11-23T10:00:00Z",
        "end_date_time": "2026-11-23T11:00:00Z",
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
        "charging_periods": [
            {
                "start_date_time": "2026-11-23T10:00:00Z",
                "dimensions": [{"type": "ENERGY", "volume": 4}],
            }
        ],
        "total_cost": {"excl_vat": 1.4},
        "total_energy": 4,
        "total_time": 1,
        "last_updated": "2026-11-23T11:00:00Z",
    }
    reply = await cpo.call("POST", cpo.hub_url("cdrs", "RECEIVER"), cdr)
    assert reply.body["status_code"] == 1000, reply.body
    assert [r.body["id"] for r in emsp1.got("cdrs", "POST")][-1] == "CDR-1"
    assert [r.method for r in emsp1.got("sessions") if r.path.endswith("/BE/CPX/S-1")] == [
        "PUT",
        "PATCH",
    ]
    # Sessions and CDRs never reach eMSP 2.
    await settled(gw)
    assert emsp2.got("sessions") == [] and emsp2.got("cdrs") == []

    # eMSP 2 starts a session at the external CPO; the result comes back to eMSP 2.
    async def answer(command: str, body: dict[str, Any]) -> None:
        assert command == "START_SESSION"
        assert body["response_url"].startswith(
            gw.settings.base_url + "/ocpi/hub/2.2.1/commands/sender/"
        )
        await cpo.call("POST", body["response_url"], {"result": "ACCEPTED"})

    cpo.on_command = answer
    own_url = f"{emsp2.url}/ocpi/2.2.1/commands/sender/START-1"
    start_session = {
        "response_url": own_url,
        "token": {
            "country_code": "DE",
            "party_id": "EM2",
            "uid": "TOKEN2",
            "type": "APP_USER",
            "contract_id": "DE-EM2-C00002",
            "issuer": "eMSP Two",
            "valid": True,
            "whitelist": "ALLOWED",
            "last_updated": "2026-11-23T08:00:00Z",
        },
        "location_id": "L-A",
    }
    reply = await emsp2.call(
        "POST",
        emsp2.hub_url("commands", "RECEIVER") + "/START_SESSION",
        start_session,
        to=cpo.party,
    )
    assert reply.body["data"]["result"] == "ACCEPTED", reply.body
    results = await eventually(lambda: emsp2.got("commands", "POST"))
    assert results[0].path == "/ocpi/2.2.1/commands/sender/START-1"
    assert results[0].body == {"result": "ACCEPTED"}
    assert routed(results[0]) == ("BE*CPX", "DE*EM2")
    await settled(gw)
    assert emsp1.got("commands") == []


async def test_deny_rule_hides_a_cpo_everywhere(world: World) -> None:
    gw, emsp1, emsp2, cpo = world.gateway, world.emsp1, world.emsp2, world.cpo
    await hosted_location(gw)
    # What eMSP 2 was told before the rule: the hosted CPO and eMSP 1, then the CPO.
    known = len(
        await eventually(
            lambda: (
                emsp2.got("hubclientinfo", "PUT")
                if len(emsp2.got("hubclientinfo", "PUT")) >= 3
                else None
            )
        )
    )
    status, rule = await gw.admin(
        "POST", "/hub/rules", {"action": "deny", "party": "DE*EM2", "counterpart": "BE*CPX"}
    )
    assert status == 201, rule

    # GET All: eMSP 2 sees the hosted CPO only; eMSP 1 both.
    objects, totals = await get_all(emsp2, "locations", limit=2)
    assert [(o["party_id"], o["id"]) for o in objects] == [("GWY", "LOC1")] and totals == ["1"]
    objects, _ = await get_all(emsp1, "locations", limit=10)
    assert len(objects) == 4

    # Broadcast: the CPO's location reaches eMSP 1 only.
    reply = await cpo.call(
        "PUT",
        cpo.hub_url("locations", "RECEIVER") + "/BE/CPX/L-D",
        external_location("L-D"),
        to=HUB_PARTY,
    )
    assert reply.body["status_code"] == 1000
    await eventually(lambda: [r for r in emsp1.got("locations", "PUT") if r.path.endswith("/L-D")])
    # Directed, either way: unknown receiver (4001), as if the CPO were not there.
    reply = await emsp2.call("GET", emsp2.hub_url("locations", "SENDER") + "/L-A", to=cpo.party)
    assert reply.body["status_code"] == 4001
    reply = await cpo.call(
        "PUT",
        cpo.hub_url("locations", "RECEIVER") + "/BE/CPX/L-E",
        external_location("L-E"),
        to=emsp2.party,
    )
    assert reply.body["status_code"] == 4001
    # HubClientInfo: eMSP 2 is not told about the CPO, on GET or in the resync the rule
    # change gave it.
    reply = await emsp2.call("GET", emsp2.hub_url("hubclientinfo", "SENDER"))
    assert {(c["country_code"], c["party_id"]) for c in reply.body["data"]} == {
        ("NL", "EM1"),
        ("ZZ", "GWY"),
    }
    resync = await eventually(
        lambda: (
            emsp2.got("hubclientinfo", "PUT")[known:]
            if len(emsp2.got("hubclientinfo", "PUT")) >= known + 2
            else None
        )
    )
    assert {r.path.rsplit("/", 2)[-2] + "*" + r.path.rsplit("/", 1)[-1] for r in resync} == {
        "NL*EM1",
        "ZZ*GWY",
    }
    # The hosted CPO's pushes still reach both (the rule is about BE*CPX).
    # The location's PUT, then its PUT again once the charger is bound (with the EVSE).
    puts = await eventually(
        lambda: [r for r in emsp2.got("locations", "PUT") if r.body.get("evses")] and emsp2.got("locations", "PUT")
    )
    assert {r.path for r in puts} == {"/ocpi/2.2.1/locations/receiver/ZZ/GWY/LOC1"}
    assert [e["uid"] for e in puts[-1].body["evses"]] == ["CP1-1"]

    # Removing the rule opens the way again.
    assert (await gw.admin("DELETE", f"/hub/rules/{rule['id']}"))[0] == 204
    reply = await emsp2.call("GET", emsp2.hub_url("locations", "SENDER") + "/L-A", to=cpo.party)
    assert reply.body["status_code"] == 1000 and reply.body["data"]["id"] == "L-A"


async def test_from_party_must_be_owned(world: World) -> None:
    emsp1, emsp2, cpo = world.emsp1, world.emsp2, world.cpo
    # eMSP 1 pretends to be eMSP 2, or the CPO.
    for spoofed in (emsp2.party, cpo.party, HOSTED):
        reply = await emsp1.call(
            "GET", emsp1.hub_url("locations", "SENDER") + "/L-A", to=cpo.party, sender=spoofed
        )
        assert reply.body["status_code"] == 4000, reply.body
        assert f"{spoofed[0]}*{spoofed[1]}" in reply.body["status_message"]
    # Pushing an object of another party (the URL names its owner) is refused as well.
    reply = await emsp1.call(
        "PUT", emsp1.hub_url("tokens", "RECEIVER") + "/DE/EM2/T9", {}, to=HUB_PARTY
    )
    assert reply.body["status_code"] == 4000
    assert cpo.got("locations") == [] and cpo.got("tokens") == []


async def test_directed_list_links_point_at_the_hub(world: World) -> None:
    emsp1, cpo = world.emsp1, world.cpo
    url = emsp1.hub_url("locations", "SENDER") + "?limit=2"
    ids: list[str] = []
    while url:
        reply = await emsp1.call("GET", url, to=cpo.party)
        assert reply.body["status_code"] == 1000 and reply.headers["X-Total-Count"] == "3"
        ids += [o["id"] for o in reply.body["data"]]
        link = reply.headers.get("Link")
        url = link.split(";")[0].strip("<>") if link else ""
        assert not url or url.startswith(emsp1.hub_url("locations", "SENDER"))
    assert ids == ["L-A", "L-B", "L-C"]
    # The CPO got its own links back, offset by offset.
    assert [r.query.get("offset", "0") for r in cpo.got("locations", "GET")] == ["0", "2"]


async def test_forwarded_request_ids(world: World) -> None:
    emsp1, cpo = world.emsp1, world.cpo
    reply = await emsp1.call(
        "GET",
        emsp1.hub_url("locations", "SENDER") + "/L-B",
        to=cpo.party,
        headers={"X-Request-ID": "req-emsp1-1", "X-Correlation-ID": "corr-emsp1-1"},
    )
    assert reply.body["data"]["id"] == "L-B"
    (got,) = cpo.got("locations", "GET")
    assert got.headers["X-Correlation-ID"] == "corr-emsp1-1"
    assert got.headers["X-Request-ID"] not in ("req-emsp1-1", "")
    assert routed(got) == ("NL*EM1", "BE*CPX")
    # The answer carries the sender's own ids back.
    assert reply.headers["X-Request-ID"] == "req-emsp1-1"
    assert reply.headers["X-Correlation-ID"] == "corr-emsp1-1"


async def test_receiver_errors_and_hub_errors(world: World) -> None:
    emsp1, cpo = world.emsp1, world.cpo
    # Unknown receiver.
    reply = await emsp1.call("GET", emsp1.hub_url("locations", "SENDER") + "/L-A", to=("FR", "NON"))
    assert reply.body["status_code"] == 4001
    # The receiver's own error passes through (here its 404 envelope for an unknown location).
    reply = await emsp1.call("GET", emsp1.hub_url("locations", "SENDER") + "/NOPE", to=cpo.party)
    assert reply.status == 404 and reply.body["status_code"] == 2003
    assert reply.body["status_message"] == "Unknown location NOPE"
    # The receiver is down: connection problem.
    await cpo.stop()
    reply = await emsp1.call("GET", emsp1.hub_url("locations", "SENDER") + "/L-A", to=cpo.party)
    assert reply.body["status_code"] == 4003
    # Each request the hub sent is counted (its own HTTP client, not aiohttp's traced one).
    samples = await scrape(world.gateway.url)
    sent = "ocpigw_ocpi_requests_sent_total"
    assert value(samples, sent, module="locations", method="GET", status="404") == 1
    assert value(samples, sent, module="locations", method="GET", status="error") == 1


async def test_client_info_pushes_and_still_alive(world: World) -> None:
    gw, clock, emsp1, emsp2, cpo = world.gateway, world.clock, world.emsp1, world.emsp2, world.cpo
    hub = gw.app[HUB]

    def infos(platform: Platform) -> list[tuple[str, str]]:
        return [
            (r.path.rsplit("/", 2)[-2] + "*" + r.path.rsplit("/", 1)[-1], r.body["status"])
            for r in platform.got("hubclientinfo", "PUT")
        ]

    # eMSP 1 joined first: it was given the hosted CPO at once, then each newcomer.
    await eventually(lambda: len(infos(emsp1)) >= 3)
    assert infos(emsp1) == [
        ("ZZ*GWY", "CONNECTED"),
        ("DE*EM2", "CONNECTED"),
        ("BE*CPX", "CONNECTED"),
    ]
    # A configuration module: no routing headers (transport_and_format, Message Routing).
    assert {routed(r) for r in emsp1.got("hubclientinfo", "PUT")} == {("None*None", "None*None")}
    for r in emsp1.got("hubclientinfo", "PUT"):
        validate_against_openapi("hubclientinfo", "ClientInfo", r.body)
    # The CPO joined last: it was given everyone it may reach, itself excluded.
    await eventually(lambda: len(infos(cpo)) >= 3)
    assert sorted(infos(cpo)) == [
        ("DE*EM2", "CONNECTED"),
        ("NL*EM1", "CONNECTED"),
        ("ZZ*GWY", "CONNECTED"),
    ]
    # GET /hubclientinfo, paginated, for any client.
    reply = await emsp2.call("GET", emsp2.hub_url("hubclientinfo", "SENDER") + "?limit=2")
    assert reply.headers["X-Total-Count"] == "3" and len(reply.body["data"]) == 2
    for obj in reply.body["data"]:
        validate_against_openapi("hubclientinfo", "ClientInfo", obj)

    # The CPO goes silent and dies; after 5 minutes the still-alive check probes it.
    await cpo.stop()
    for platform in (emsp1, emsp2):
        await platform.call("GET", platform.hub_url("hubclientinfo", "SENDER"))  # they stay active
    clock.advance(200)
    assert await hub.check_alive() == ([], [])  # not silent long enough yet
    clock.advance(101)
    for platform in (emsp1, emsp2):
        await platform.call("GET", platform.hub_url("hubclientinfo", "SENDER"))
    offline, back = await hub.check_alive()
    assert offline == [world.partner_ids["CPO X"]] and back == []
    await eventually(
        lambda: ("BE*CPX", "OFFLINE") in infos(emsp1) and ("BE*CPX", "OFFLINE") in infos(emsp2)
    )
    _, parties = await gw.admin("GET", "/hub/parties")
    assert {p["party"]: p["status"] for p in parties}["BE*CPX"] == "OFFLINE"
    # Nothing is routed to an OFFLINE party.
    reply = await emsp1.call("GET", emsp1.hub_url("locations", "SENDER") + "/L-A", to=cpo.party)
    assert reply.body["status_code"] == 4003

    # It comes back on the same address: CONNECTED again, and it gets a full resync.
    before = len(infos(cpo))
    await cpo.start(port=int(cpo.url.rsplit(":", 1)[1]))
    clock.advance(301)
    status, report = await gw.admin("POST", "/hub/check-alive")
    assert status == 200 and report["came_back"] == [world.partner_ids["CPO X"]]
    await eventually(lambda: ("BE*CPX", "CONNECTED") in infos(emsp1)[3:])
    await eventually(lambda: len(infos(cpo)) >= before + 3)
    reply = await emsp1.call("GET", emsp1.hub_url("locations", "SENDER") + "/L-A", to=cpo.party)
    assert reply.body["status_code"] == 1000


async def test_platform_leaving_is_suspended(world: World) -> None:
    emsp1, cpo = world.emsp1, world.cpo
    reply = await cpo.call("DELETE", cpo.hub_url("credentials", "SENDER"))
    assert reply.body["status_code"] == 1000
    await eventually(
        lambda: any(r.body["status"] == "SUSPENDED" for r in emsp1.got("hubclientinfo", "PUT"))
    )
    reply = await emsp1.call("GET", emsp1.hub_url("locations", "SENDER") + "/L-A", to=cpo.party)
    assert reply.body["status_code"] == 4001


async def test_realtime_authorization_at_hosted_charger(world: World) -> None:
    gw, emsp1, emsp2 = world.gateway, world.emsp1, world.emsp2
    await hosted_location(gw)
    # eMSP 2 may not work with the hosted CPO: it is never asked.
    status, _ = await gw.admin(
        "POST", "/hub/rules", {"action": "deny", "party": "ZZ*GWY", "counterpart": "DE*EM2"}
    )
    assert status == 201
    emsp1.authorize["RT-1"] = "ALLOWED"
    async with connect(gw.ws_url, "CP1", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        answer = await cp.call(call16.Authorize(id_tag="RT-1"))
        assert answer.id_tag_info["status"] == "Accepted"
        assert (await cp.call(call16.Authorize(id_tag="RT-UNKNOWN"))).id_tag_info[
            "status"
        ] == "Invalid"
    asked = emsp1.got("tokens", "POST")
    assert [r.path for r in asked] == [
        "/ocpi/2.2.1/tokens/sender/RT-1/authorize",
        "/ocpi/2.2.1/tokens/sender/RT-UNKNOWN/authorize",
    ]
    assert {routed(r) for r in asked} == {("ZZ*GWY", "NL*EM1")}
    assert asked[0].body["location_id"] == "LOC1"
    assert emsp2.got("tokens") == []


BAD_REQUESTS = [
    # Dot segments never walk out of the receiver's endpoint (resolved before routing).
    (
        "emsp1",
        "GET",
        "/locations/sender/%2E%2E/credentials",
        {"OCPI-to-country-code": "BE", "OCPI-to-party-id": "CPX"},
        None,
        404,
        2000,
        "interface",
    ),
    # (who, method, path below the hub's version URL, headers, raw body, HTTP, status_code, message part)
    (
        "emsp1",
        "GET",
        "/locations/sender/L-A",
        {"OCPI-to-country-code": "BEL", "OCPI-to-party-id": "CPX"},
        None,
        200,
        2001,
        "OCPI-to-country-code",
    ),
    (
        "emsp1",
        "GET",
        "/locations/sender/L-A",
        {"OCPI-to-country-code": "BE"},
        None,
        200,
        2001,
        "OCPI-to-party-id",
    ),
    ("emsp1", "GET", "/locations/sender", {}, None, 200, 2001, "OCPI-to-*"),
    (
        "emsp1",
        "GET",
        "/locations/sender/L-A",
        {"OCPI-to-country-code": "ZZ", "OCPI-to-party-id": "HUB"},
        None,
        200,
        2001,
        "GET All",
    ),
    ("emsp1", "GET", "/versions/sender", {}, None, 404, 2000, "versions"),
    ("emsp1", "GET", "/locations/middle/L-A", {}, None, 404, 2000, "interface"),
    (
        "emsp1",
        "PUT",
        "/tokens/receiver/NL/EM1/T1",
        {"OCPI-to-country-code": "ZZ", "OCPI-to-party-id": "HUB"},
        b"{not json",
        400,
        2001,
        "body",
    ),
    ("emsp1", "PUT", "/tokens/receiver/NLD/EM1/T1", {}, b"{}", 200, 2001, "country_code"),
    (
        "emsp1",
        "POST",
        "/sessions/receiver/NL/EM1/S1",
        {"OCPI-to-country-code": "ZZ", "OCPI-to-party-id": "HUB"},
        b"{}",
        200,
        2001,
        "broadcast",
    ),
    ("cpo", "PUT", "/sessions/receiver/BE/CPX/S9", {}, b'{"id": "S9"}', 200, 4001, "receiver"),
    (
        "cpo",
        "POST",
        "/commands/sender/not-a-known-id",
        {},
        b'{"result": "ACCEPTED"}',
        404,
        2000,
        "response URL",
    ),
    ("cpo", "GET", "/commands/sender/x", {}, None, 405, 2000, "POST"),
]


@pytest.mark.parametrize(
    ("who", "method", "path", "headers", "raw", "http", "code", "message"), BAD_REQUESTS
)
async def test_bad_requests_get_ocpi_errors(
    world: World,
    who: str,
    method: str,
    path: str,
    headers: dict[str, str],
    raw: bytes | None,
    http: int,
    code: int,
    message: str,
) -> None:
    platform: Platform = getattr(world, who)
    url = f"{world.gateway.settings.base_url}/ocpi/hub/2.2.1{path}"
    sent = (
        token_header(platform.hub_token or "")
        | {"OCPI-from-country-code": platform.party[0], "OCPI-from-party-id": platform.party[1]}
        | headers
    )
    async with aiohttp.ClientSession() as s, s.request(method, url, data=raw, headers=sent) as r:
        body = await r.json()
        assert (r.status, body["status_code"]) == (http, code), body
        assert message in body["status_message"]
    assert platform.got("locations") == [] or who == "cpo"


async def test_hub_admin_api(world: World) -> None:
    gw = world.gateway
    for bad, field in (
        ({"action": "maybe", "party": "NL*EM1", "counterpart": "BE*CPX"}, "action"),
        ({"action": "deny", "party": "NL*EM1!", "counterpart": "BE*CPX"}, "party"),
        ({"action": "deny", "party": "NL*EM1", "counterpart": "NL*EM1"}, "counterpart"),
        ({"action": "deny", "party": "NL*EM1"}, "counterpart"),
    ):
        status, body = await gw.admin("POST", "/hub/rules", bad)
        assert status == 422 and body["field"] == field, body
    status, rule = await gw.admin(
        "POST", "/hub/rules", {"action": "allow", "party": "nl*em1", "counterpart": "ZZ*GWY"}
    )
    assert status == 201 and rule["party"] == "NL*EM1"
    # The same rule again is the same rule.
    assert (
        await gw.admin(
            "POST", "/hub/rules", {"action": "allow", "party": "NL*EM1", "counterpart": "ZZ*GWY"}
        )
    )[1]["id"] == rule["id"]
    status, rules = await gw.admin("GET", "/hub/rules")
    assert status == 200 and [r["id"] for r in rules] == [rule["id"]]
    # An allow list is exclusive: eMSP 1 now sees only the hosted CPO.
    reply = await world.emsp1.call(
        "GET", world.emsp1.hub_url("locations", "SENDER") + "/L-A", to=world.cpo.party
    )
    assert reply.body["status_code"] == 4001
    assert (await gw.admin("DELETE", "/hub/rules/nope"))[0] == 404
    assert (await gw.admin("DELETE", f"/hub/rules/{rule['id']}"))[0] == 204
    status, body = await gw.admin("POST", "/partners", {"name": "x", "kind": "NSP"})
    assert status == 422 and body["field"] == "kind"


async def test_rules_survive_a_restart(gateways: GatewayFactory) -> None:
    port = free_port()
    gw = await gateways.start(port=port)
    status, rule = await gw.admin(
        "POST", "/hub/rules", {"action": "deny", "party": "NL*EM1", "counterpart": "BE*CPX"}
    )
    assert status == 201
    await gateways.stop(gw)
    gw = await gateways.start(gw.settings)  # same data dir / Redis prefix
    status, rules = await gw.admin("GET", "/hub/rules")
    assert [(r["id"], r["action"], r["party"], r["counterpart"]) for r in rules] == [
        (rule["id"], "deny", "NL*EM1", "BE*CPX")
    ]


async def test_command_to_hosted_cpo(world: World) -> None:
    gw, emsp1, emsp2 = world.gateway, world.emsp1, world.emsp2
    await hosted_location(gw)
    async with connect(gw.ws_url, "CP1", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        command = {
            "response_url": f"{emsp2.url}/ocpi/2.2.1/commands/sender/HOSTED-1",
            "token": {
                "country_code": "DE",
                "party_id": "EM2",
                "uid": "APP-2",
                "type": "APP_USER",
                "contract_id": "DE-EM2-C00009",
                "issuer": "eMSP Two",
                "valid": True,
                "whitelist": "ALLOWED",
                "last_updated": "2026-11-23T08:00:00Z",
            },
            "location_id": "LOC1",
            "evse_uid": "CP1-1",
        }
        # Open routing: the hub finds the hosted CPO from the location.
        reply = await emsp2.call(
            "POST", emsp2.hub_url("commands", "RECEIVER") + "/START_SESSION", command
        )
        assert reply.body["status_code"] == 1000 and reply.body["data"]["result"] == "ACCEPTED", (
            reply.body
        )
        results = await eventually(lambda: emsp2.got("commands", "POST"))
        assert cp.received[-1][0] == "RemoteStartTransaction"
    # The hosted CPO answers the eMSP's own URL (no proxy needed in-process).
    assert results[0].path == "/ocpi/2.2.1/commands/sender/HOSTED-1"
    assert results[0].body == {"result": "ACCEPTED"}
    assert routed(results[0]) == ("ZZ*GWY", "DE*EM2")
    pending = await eventually(lambda: emsp2.got("sessions", "PUT"))
    assert pending[0].body["status"] == "PENDING" and routed(pending[0]) == ("ZZ*GWY", "DE*EM2")
    await settled(gw)
    assert emsp1.got("commands") == [] and emsp1.got("sessions") == []


async def test_platforms_with_several_parties_and_claims(world: World) -> None:
    gw, cpo = world.gateway, world.cpo
    multi = Platform("Multi", "EMSP", [("FR", "EMA"), ("FR", "EMB")])
    thief = Platform("Thief", "EMSP", [("NL", "EM1"), ("ZZ", "GWY"), ("FR", "THF")])
    for platform in (multi, thief):
        await platform.start()
    try:
        await join(gw, multi)
        await join(gw, thief)
        _, parties = await gw.admin("GET", "/hub/parties")
        owners = {p["party"]: p["platform"] for p in parties}
        # Both parties of the multi-party platform are routed; claims on taken parties are not.
        assert owners["FR*EMA"] == owners["FR*EMB"] != owners["NL*EM1"]
        assert owners["ZZ*GWY"] == "local" and owners["FR*THF"] != owners["NL*EM1"]
        # Each of its parties may speak for itself.
        for party in multi.parties:
            reply = await multi.call(
                "GET", multi.hub_url("locations", "SENDER") + "/L-A", to=cpo.party, sender=party
            )
            assert reply.body["status_code"] == 1000
            assert routed(cpo.got("locations", "GET")[-1]) == (f"{party[0]}*{party[1]}", "BE*CPX")
        # Without OCPI-from it must say which party is sending.
        url = multi.hub_url("locations", "SENDER") + "/L-A"
        headers = token_header(multi.hub_token or "") | {
            "OCPI-to-country-code": "BE",
            "OCPI-to-party-id": "CPX",
        }
        async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
            body = await r.json()
        assert body["status_code"] == 2001 and "OCPI-from" in body["status_message"]
        # The thief cannot speak for the parties it claimed.
        for claimed in (("NL", "EM1"), ("ZZ", "GWY")):
            reply = await thief.call(
                "GET", thief.hub_url("locations", "SENDER") + "/L-A", to=cpo.party, sender=claimed
            )
            assert reply.body["status_code"] == 4000
    finally:
        for platform in (multi, thief):
            await platform.stop()


@asynccontextmanager
async def pair(
    gateways: GatewayFactory, **settings: Any
) -> AsyncIterator[tuple[Gateway, Platform, Platform]]:
    """A gateway with ``settings``, an eMSP and a CPO (one location, L-A) registered."""
    gw = await gateways.start(port=free_port(), **settings)
    emsp, cpo = Platform("E", "EMSP", [("NL", "EM1")]), Platform("C", "CPO", [("BE", "CPX")])
    cpo.locations = [external_location("L-A")]
    for platform in (emsp, cpo):
        await platform.start()
    try:
        await join(gw, emsp)
        await join(gw, cpo)
        yield gw, emsp, cpo
    finally:
        for platform in (emsp, cpo):
            await platform.stop()


async def test_lenient_get_all_without_routing_headers(gateways: GatewayFactory) -> None:
    async with pair(gateways, hub_open_get_all=True) as (gw, emsp, _):
        await hosted_location(gw)
        reply = await emsp.call("GET", emsp.hub_url("locations", "SENDER"))  # no OCPI-to-*
        assert [o["id"] for o in reply.body["data"]] == ["L-A", "LOC1"]


async def test_registration_token_reaches_only_registration(world: World) -> None:
    gw = world.gateway
    status, partner = await gw.admin("POST", "/partners", {"name": "Later", "kind": "HUB"})
    assert status == 201
    base = f"{gw.settings.base_url}/ocpi/hub"
    headers = token_header(partner["token_a"])
    async with aiohttp.ClientSession() as s:
        for path, expected in (
            ("/versions", 200),
            ("/2.2.1", 200),
            ("/2.2.1/hubclientinfo", 401),
            ("/2.2.1/locations/sender/L-A", 401),
        ):
            async with s.get(base + path, headers=headers) as r:
                assert r.status == expected, path
        # Nor is it any good on the bilateral interface.
        async with s.get(f"{gw.settings.base_url}/ocpi/versions", headers=headers) as r:
            assert r.status == 401


async def test_receiver_timeout_is_4002(gateways: GatewayFactory) -> None:
    async with pair(gateways, ocpi_timeout=0.3) as (_, emsp, cpo):
        cpo.delay = 1.0
        reply = await emsp.call("GET", emsp.hub_url("locations", "SENDER") + "/L-A", to=cpo.party)
        assert reply.body["status_code"] == 4002 and "0.3 s" in reply.body["status_message"]


async def test_charging_profiles_through_the_hub(world: World) -> None:
    gw, emsp1, emsp2, cpo = world.gateway, world.emsp1, world.emsp2, world.cpo
    profile = {
        "charging_rate_unit": "W",
        "charging_profile_period": [{"start_period": 0, "limit": 11000}],
    }

    async def answer(received: Any) -> None:
        # The CPO answers every request at the response_url it was given: the hub's.
        url = (
            received.body["response_url"]
            if received.method == "PUT"
            else received.query["response_url"]
        )
        assert url.startswith(gw.settings.base_url + "/ocpi/hub/2.2.1/chargingprofiles/sender/")
        result: dict[str, Any] = {"result": "ACCEPTED"}
        if received.method == "GET":
            result["profile"] = {
                "start_date_time": "2026-11-23T10:00:00Z",
                "charging_profile": profile,
            }
        await cpo.call("POST", url, result)

    cpo.on_profile = answer
    # The hub learns whose session S-7 is from the CPO's push.
    session = {
        "country_code": "BE",
        "party_id": "CPX",
        "id": "S-7",
        "start_date_time": "2026-11-23T10:00:00Z",
        "kwh": 1,
        "cdr_token": {
            "country_code": "NL",
            "party_id": "EM1",
            "uid": "T7",
            "type": "RFID",
            "contract_id": "NL-EM1-C00007",
        },
        "auth_method": "AUTH_REQUEST",
        "location_id": "L-A",
        "evse_uid": "L-A-E1",
        "connector_id": "1",
        "currency": "EUR",
        "status": "ACTIVE",
        "last_updated": "2026-11-23T10:05:00Z",
    }
    assert (
        await cpo.call("PUT", cpo.hub_url("sessions", "RECEIVER") + "/BE/CPX/S-7", session)
    ).body["status_code"] == 1000
    base = emsp1.hub_url("chargingprofiles", "RECEIVER") + "/S-7"
    # SetChargingProfile by open routing (the session's CPO), the result back to eMSP 1.
    own = f"{emsp1.url}/ocpi/2.2.1/chargingprofiles/sender/SET-1"
    reply = await emsp1.call("PUT", base, {"charging_profile": profile, "response_url": own})
    assert reply.body["status_code"] == 1000 and reply.body["data"]["result"] == "ACCEPTED", (
        reply.body
    )
    (put,) = cpo.got("chargingprofiles", "PUT")
    assert put.body["charging_profile"] == profile and put.body["response_url"] != own
    results = await eventually(lambda: emsp1.got("chargingprofiles", "POST"))
    assert (results[0].path, results[0].body) == (
        "/ocpi/2.2.1/chargingprofiles/sender/SET-1",
        {"result": "ACCEPTED"},
    )
    assert routed(results[0]) == ("BE*CPX", "NL*EM1")
    # GetActiveChargingProfile: response_url is a query parameter.
    own = f"{emsp1.url}/ocpi/2.2.1/chargingprofiles/sender/GET-1"
    reply = await emsp1.call("GET", f"{base}?duration=900&response_url={own}", to=cpo.party)
    assert reply.body["data"]["result"] == "ACCEPTED", reply.body
    (get,) = cpo.got("chargingprofiles", "GET")
    assert get.query["duration"] == "900" and get.query["response_url"] != own
    results = await eventually(
        lambda: [r for r in emsp1.got("chargingprofiles", "POST") if r.path.endswith("/GET-1")]
    )
    assert results[0].body["profile"]["charging_profile"] == profile
    # The CPO pushes the active profile to the eMSP's Sender interface (directed).
    active = {"start_date_time": "2026-11-23T10:10:00Z", "charging_profile": profile}
    reply = await cpo.call(
        "PUT", cpo.hub_url("chargingprofiles", "SENDER") + "/S-7", active, to=emsp1.party
    )
    assert reply.body["status_code"] == 1000, reply.body
    assert [r.body for r in emsp1.got("chargingprofiles", "PUT")] == [active]
    # Nobody else may post a result to those URLs, and eMSP 2 saw none of it.
    reply = await emsp2.call("POST", put.body["response_url"], {"result": "REJECTED"})
    assert reply.body["status_code"] == 2000 and reply.status == 404
    await settled(gw)
    assert emsp2.got("chargingprofiles") == []


async def test_hub_registers_at_a_platform(world: World) -> None:
    """The other way round: the hub's operator registers the hub at a platform with the
    token A the platform's operator gave; the platform is then on the hub as any other."""
    gw, emsp1 = world.gateway, world.emsp1
    cpo2 = Platform("CPO Y", "CPO", [("FR", "CPY")])
    cpo2.locations = [external_location("Y-1", "FR", "CPY")]
    await cpo2.start()
    try:
        status, partner = await gw.admin("POST", "/partners", {"name": "CPO Y", "kind": "HUB"})
        assert status == 201
        status, registered = await gw.admin(
            "POST",
            f"/partners/{partner['id']}/register",
            {"versions_url": f"{cpo2.url}/ocpi/versions", "token": cpo2.token_a},
        )
        assert status == 200 and registered["status"] == "REGISTERED", registered
        (sent,) = [r for r in cpo2.received if r.path == "/ocpi/2.2.1/credentials"]
        assert [(r["role"], r["country_code"], r["party_id"]) for r in sent.body["roles"]] == [
            ("HUB", "ZZ", "HUB")
        ]
        assert sent.body["url"].endswith("/ocpi/hub/versions")
        # The token the hub gave is good at the hub: the platform can use it.
        details = await cpo2.call("GET", sent.body["url"].replace("/versions", "/2.2.1"))
        cpo2.hub_endpoints = {
            (e["identifier"], e["role"]): e["url"] for e in details.body["data"]["endpoints"]
        }
        reply = await cpo2.call("GET", cpo2.hub_url("hubclientinfo", "SENDER"))
        assert reply.body["status_code"] == 1000
        # The others are told about it, and reach it.
        await eventually(
            lambda: any(r.path.endswith("/FR/CPY") for r in emsp1.got("hubclientinfo", "PUT"))
        )
        reply = await emsp1.call(
            "GET", emsp1.hub_url("locations", "SENDER") + "/Y-1", to=("FR", "CPY")
        )
        assert reply.body["status_code"] == 1000 and reply.body["data"]["party_id"] == "CPY"
    finally:
        await cpo2.stop()


async def test_operator_suspends_a_party(world: World, gateways: GatewayFactory) -> None:
    gw, clock, emsp1, cpo = world.gateway, world.clock, world.emsp1, world.cpo
    for bad, expected in (
        (("BE*CPX", {"status": "OFFLINE"}), 422),
        (("FR*NON", {"status": "SUSPENDED"}), 404),
        (("ZZ*GWY", {"status": "SUSPENDED"}), 404),  # hosted parties are the gateway's own
        (("BE*CPX!", {"status": "SUSPENDED"}), 422),
    ):
        status, body = await gw.admin("PUT", f"/hub/parties/{bad[0]}/status", bad[1])
        assert status == expected, body
    await eventually(lambda: len(emsp1.got("hubclientinfo", "PUT")) >= 3)
    status, body = await gw.admin("PUT", "/hub/parties/BE*CPX/status", {"status": "SUSPENDED"})
    assert (status, body["changed"]) == (200, True)
    await eventually(
        lambda: [r for r in emsp1.got("hubclientinfo", "PUT") if r.body["status"] == "SUSPENDED"]
    )
    reply = await emsp1.call("GET", emsp1.hub_url("locations", "SENDER") + "/L-A", to=cpo.party)
    assert reply.body["status_code"] == 4003 and "SUSPENDED" in reply.body["status_message"]
    objects, _ = await get_all(emsp1, "locations", limit=10)
    assert all(o["party_id"] != "CPX" for o in objects)
    # The still-alive check leaves the operator's status alone, and so does a restart.
    clock.advance(400)
    await gw.app[HUB].check_alive()
    await gateways.stop(gw)
    gw = await gateways.start(gw.settings, clock=clock)
    _, parties = await gw.admin("GET", "/hub/parties")
    assert {p["party"]: p["status"] for p in parties}["BE*CPX"] == "SUSPENDED"
    # Lifted: CONNECTED again, told to the others, routed again.
    status, body = await gw.admin("PUT", "/hub/parties/BE*CPX/status", {"status": "CONNECTED"})
    assert (status, body["changed"]) == (200, True)
    reply = await emsp1.call("GET", emsp1.hub_url("locations", "SENDER") + "/L-A", to=cpo.party)
    assert reply.body["status_code"] == 1000
    await eventually(lambda: emsp1.got("hubclientinfo", "PUT")[-1].body["status"] == "CONNECTED")


async def test_a_full_reload_racing_the_operator_leaves_the_operator_s_status(
    world: World,
) -> None:
    """A full reload of the hub (at start, after lost notices) that read the stored
    statuses before the operator changed one must not undo the change in memory after
    it, nor make the change look like none (it failed in CI once, on Redis)."""
    gw, emsp1, cpo = world.gateway, world.emsp1, world.cpo
    hub = gw.app[HUB]
    await eventually(lambda: len(emsp1.got("hubclientinfo", "PUT")) >= 3)
    for target in ("SUSPENDED", "CONNECTED", "PLANNED", "CONNECTED"):
        reloads = [asyncio.create_task(hub.reload_all()) for _ in range(3)]
        await asyncio.sleep(0)
        status, body = await gw.admin("PUT", "/hub/parties/BE*CPX/status", {"status": target})
        assert (status, body["changed"]) == (200, True), (target, body)
        await asyncio.gather(*reloads)
        await hub.reload_all()
        _, parties = await gw.admin("GET", "/hub/parties")
        assert {p["party"]: p["status"] for p in parties}["BE*CPX"] == target
    reply = await emsp1.call("GET", emsp1.hub_url("locations", "SENDER") + "/L-A", to=cpo.party)
    assert reply.body["status_code"] == 1000


async def test_random_requests_never_break_the_hub(world: World) -> None:
    """Several hundred odd requests (seeded): each gets an OCPI envelope, never a server
    error, and the hub still routes afterwards."""
    rng = random.Random(20261124)
    emsp1, cpo = world.emsp1, world.cpo
    modules = [
        "locations",
        "tariffs",
        "sessions",
        "cdrs",
        "tokens",
        "commands",
        "chargingprofiles",
        "hubclientinfo",
        "credentials",
        "x",
    ]
    segments = [
        "",
        "NL",
        "EM1",
        "BE",
        "CPX",
        "L-A",
        "%20",
        "..",
        "START_SESSION",
        "authorize",
        "ü",
        "a" * 40,
        "0",
    ]
    bodies = [
        None,
        b"",
        b"{}",
        b"[]",
        b"null",
        b"{not json",
        b'{"response_url": 5}',
        b'{"cdr_token": {"country_code": "NL"}}',
        b'{"location_id": "L-A"}',
        b"\xff\xfe",
    ]
    parties = [
        None,
        ("NL", "EM1"),
        ("BE", "CPX"),
        ("ZZ", "HUB"),
        ("ZZ", "GWY"),
        ("X", "Y"),
        ("NL", "EM12"),
    ]
    seen: Counter[tuple[int, int]] = Counter()
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            platform = rng.choice([emsp1, cpo])
            method = rng.choice(["GET", "PUT", "PATCH", "POST", "DELETE"])
            path = "/".join(rng.choice(segments) for _ in range(rng.randint(0, 4)))
            module = rng.choice(modules[:7]) if rng.random() < 0.8 else rng.choice(modules)
            url = f"{world.gateway.settings.base_url}/ocpi/hub/2.2.1/{module}/{rng.choice(['sender', 'receiver', 'sender', 'receiver', 'SENDER', 'other'])}/{path}"
            headers = token_header(platform.hub_token or "")
            for direction in ("from", "to"):
                own = direction == "from" and rng.random() < 0.7
                party = platform.party if own else rng.choice(parties)
                if party is not None:
                    (
                        headers[f"OCPI-{direction}-country-code"],
                        headers[f"OCPI-{direction}-party-id"],
                    ) = party
            if rng.random() < 0.3:
                url += (
                    "?offset="
                    + rng.choice(["-1", "x", "5", "99999999999999999999"])
                    + "&limit="
                    + rng.choice(["0", "1", "1000", "y"])
                )
            async with s.request(method, url, data=rng.choice(bodies), headers=headers) as r:
                body = await r.json(content_type=None)
                assert isinstance(body, dict) and isinstance(body.get("status_code"), int), (
                    method,
                    url,
                    body,
                )
                assert r.status < 500 and body["status_code"] != 3000, (method, url, r.status, body)
                seen[(r.status, body["status_code"])] += 1
    reply = await emsp1.call("GET", emsp1.hub_url("locations", "SENDER") + "/L-A", to=cpo.party)
    assert reply.body["status_code"] == 1000
    # The requests went deep enough: routed answers as well as each kind of refusal.
    codes = {code for _, code in seen}
    assert {1000, 2001, 4000, 4001}.issubset(codes), seen


async def test_the_hub_forgets_old_sessions_at_its_checks(gateways: GatewayFactory) -> None:
    """GATEWAY_HUB_SESSION_INDEX_DAYS: at its periodic checks (under the cluster's
    ``hub-checks`` lease) the hub deletes whose session it routed once that is older;
    whose location it routed stays."""
    clock = FakeClock()
    gw = await gateways.start(clock=clock, hub_check_interval=0.05, hub_session_index_days=7)
    index = gw.app[HUB].index
    emsp, cpo = PartyId("NL", "EM1"), PartyId("BE", "CP1")
    await index.note("session", "BE*CP1*S1", emsp, clock.now())
    await index.note("session-cpo", "S1", cpo, clock.now())
    await index.note("location", "L1", cpo, clock.now())
    clock.advance(6 * 86400)
    await asyncio.sleep(0.3)  # several checks: not yet older than 7 days
    assert await index.owner("session", "BE*CP1*S1") == emsp
    clock.advance(2 * 86400)

    async with asyncio.timeout(10):
        while await index.owner("session-cpo", "S1") is not None:
            await asyncio.sleep(0.02)
    assert await index.owner("session", "BE*CP1*S1") is None
    assert await index.owner("location", "L1") == cpo
