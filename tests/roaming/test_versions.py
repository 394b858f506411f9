"""OCPI 2.1.1 and 2.3.0 partners of the CPO interface (issue 14): version negotiation,
registration both ways in each version, credentials PUT switching versions, and every
module pulled or pushed in the partner's version, against real eMSP servers written from
each version's specification (tests/roaming/emsp_versions.py), on both storage backends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from ocpp.v16 import call as call16

import ocpi.v211 as v211
from gateway.roaming.server import REGISTRY
from tests.conftest import FakeClock, Gateway, GatewayFactory
from tests.ocpi.openapi import validate_against_openapi
from tests.roaming.emsp_versions import VersionedEmsp
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect

CPO_MODULES = {"credentials", "locations", "tariffs", "sessions", "cdrs", "tokens", "commands"}


@pytest.fixture(params=["2.1.1", "2.3.0"])
async def vemsp(request: pytest.FixtureRequest) -> AsyncIterator[VersionedEmsp]:
    platform = VersionedEmsp(version=str(request.param))
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.02)
    return result


async def _create(gw: Gateway, name: str = "eMSP") -> dict[str, Any]:
    status, partner = await gw.admin("POST", "/partners", {"name": name})
    assert status == 201
    return dict(partner)


async def _registered_with_gateway(gw: Gateway, emsp: VersionedEmsp) -> str:
    """The eMSP registers with the gateway in its version; the partner id."""
    partner = await _create(gw)
    emsp.rewrite = (gw.settings.base_url, gw.url)
    await emsp.register_with(partner["our_versions_url"], partner["token_a"])
    return str(partner["id"])


# ------------------------------------------------------------------ versions


async def test_versions_lists(gateway: Gateway) -> None:
    for mount in ("/ocpi", "/ocpi/hub"):
        kind = {"/ocpi": "PEER", "/ocpi/hub": "HUB"}[mount]
        status, partner = await gateway.admin("POST", "/partners", {"name": f"p-{kind}", "kind": kind})
        assert status == 201, partner
        probe = VersionedEmsp(version="2.2.1")
        status, _, body = await probe.call("GET", f"{gateway.url}{mount}/versions", token=partner["token_a"])
        assert (status, body["status_code"]) == (200, 1000)
        assert [v["version"] for v in body["data"]] == ["2.1.1", "2.2.1", "2.3.0"]
        for version in body["data"]:
            validate_against_openapi("versions", "Version", version, version="2.3.0")
            assert version["url"] == f"{gateway.settings.base_url}{mount}/{version['version']}"
        details = {}
        for v, encoded in (("2.1.1", False), ("2.2.1", True), ("2.3.0", True)):
            # 2.1.1 peers send the token unencoded, the others Base64: both are taken.
            client = VersionedEmsp(version="2.1.1" if not encoded else "2.3.0")
            status, _, body = await client.call("GET", f"{gateway.url}{mount}/{v}", token=partner["token_a"])
            assert (status, body["status_code"]) == (200, 1000), body
            details[v] = body["data"]
        VersionedEmsp(version="2.1.1").validate("versions", "VersionDetails", details["2.1.1"])
        assert all("role" not in e for e in details["2.1.1"]["endpoints"])
        validate_against_openapi("versions", "VersionDetails", details["2.2.1"])
        validate_against_openapi("versions", "VersionDetails", details["2.3.0"], version="2.3.0")
        for v, data in details.items():
            assert data["version"] == v
            assert all(e["url"].startswith(f"{gateway.settings.base_url}{mount}/{v}/") for e in data["endpoints"])
        if mount == "/ocpi":
            assert {e["identifier"] for e in details["2.1.1"]["endpoints"]} == CPO_MODULES
            assert len(details["2.1.1"]["endpoints"]) == len(CPO_MODULES)  # one per module
            assert {e["identifier"] for e in details["2.3.0"]["endpoints"]} == CPO_MODULES | {"chargingprofiles", "payments"}
            roles = {(e["identifier"], e["role"]) for e in details["2.3.0"]["endpoints"]}
            # 2.3.0 adds the Payments Receiver (gateway.roaming.payments).
            assert roles == {(e["identifier"], e["role"]) for e in details["2.2.1"]["endpoints"]} | {("payments", "RECEIVER")}
        else:
            # The hub routes in every version: to a 2.1.1 platform (an eMSP) it is a CPO;
            # in 2.3.0 both interfaces of each module, as in 2.2.1 (tests/hub).
            assert {e["identifier"] for e in details["2.1.1"]["endpoints"]} == CPO_MODULES
            roles = {(e["identifier"], e["role"]) for e in details["2.3.0"]["endpoints"]}
            assert roles == {(e["identifier"], e["role"]) for e in details["2.2.1"]["endpoints"]}


# -------------------------------------------------------------- registration


async def test_emsp_registers_in_its_version(gateway: Gateway, vemsp: VersionedEmsp) -> None:
    partner = await _create(gateway)
    token_a = partner["token_a"]
    vemsp.rewrite = (gateway.settings.base_url, gateway.url)
    ours = await vemsp.register_with(partner["our_versions_url"], token_a)
    # Our credentials in the eMSP's version (validated there): 2.1.1 one party at the top.
    if vemsp.version == "2.1.1":
        assert (ours["country_code"], ours["party_id"]) == ("ZZ", "GWY")
        assert "roles" not in ours
    else:
        assert [(r["role"], r["country_code"], r["party_id"]) for r in ours["roles"]] == [("CPO", "ZZ", "GWY")]
        assert "hub_party_id" not in ours
    assert ours["url"] == f"{gateway.settings.base_url}/ocpi/versions"
    _, view = await gateway.admin("GET", f"/partners/{partner['id']}")
    assert (view["status"], view["version"]) == ("REGISTERED", vemsp.version)
    assert view["parties"] == [{"country_code": "NL", "party_id": "EMV", "role": "EMSP"}]
    # The gateway fetched the eMSP's endpoints of that version, in the eMSP's token form.
    modules = {(e["module"], e["role"]) for e in view["endpoints"]}
    assert {("locations", "RECEIVER"), ("cdrs", "RECEIVER"), ("tokens", "SENDER")} <= modules
    assert vemsp.refused_auth == 0
    # Token A is spent; token C reads our credentials in that version.
    creds_url = vemsp.cpo_endpoints["credentials"]
    assert (await vemsp.call("GET", creds_url, token=token_a))[0] == 401
    status, _, body = await vemsp.call("GET", creds_url)
    assert (status, body["data"]["token"]) == (200, vemsp.cpo_token)
    vemsp.validate("credentials", "Credentials", body["data"])
    # POST again: 405.
    assert (await vemsp.call("POST", creds_url, vemsp.credentials(vemsp.token_b)))[0] == 405


async def test_registration_in_a_version_the_partner_lacks(gateway: Gateway, vemsp: VersionedEmsp) -> None:
    # The eMSP POSTs to our 2.2.1 credentials but offers only its own version: 3002.
    partner = await _create(gateway)
    url = f"{gateway.url}/ocpi/2.2.1/credentials"
    body = VersionedEmsp(version="2.2.1", url=vemsp.url, party_id="EMV").credentials(vemsp.token_b)
    body["url"] = f"{vemsp.url}/ocpi/emsp/versions"
    status, _, answer = await vemsp.call("POST", url, body, token=partner["token_a"])
    if vemsp.version == "2.1.1":
        # The gateway calls it in the 2.2.1 form (a Base64 token), which it refuses.
        assert (status, answer["status_code"]) == (200, 3001), answer
        assert "401" in answer["status_message"]
    else:
        assert (status, answer["status_code"]) == (200, 3002), answer
        assert vemsp.version in answer["status_message"]
    _, view = await gateway.admin("GET", f"/partners/{partner['id']}")
    assert view["status"] == "PENDING"
    # A 2.1.1 credentials object at the 2.2.1 URL is a 2.2.1 object without roles: 2001.
    one_party = VersionedEmsp(version="2.1.1", url=vemsp.url).credentials(vemsp.token_b)
    status, _, answer = await vemsp.call("POST", url, one_party, token=partner["token_a"])
    assert (status, answer["status_code"]) == (200, 2001)
    assert "roles" in answer["status_message"]


async def test_gateway_registers_at_emsp_in_its_version(gateway: Gateway, vemsp: VersionedEmsp) -> None:
    partner = await _create(gateway)
    status, view = await gateway.admin(
        "POST", f"/partners/{partner['id']}/register",
        {"versions_url": f"{vemsp.url}/ocpi/emsp/versions", "token": vemsp.token_a},
    )
    assert status == 200, view
    assert (view["status"], view["version"]) == ("REGISTERED", vemsp.version)
    assert vemsp.invalid == []
    creds = vemsp.cpo_credentials  # validated by the eMSP in its version
    if vemsp.version == "2.1.1":
        assert (creds["country_code"], creds["party_id"]) == ("ZZ", "GWY")
        # The gateway tried the 2.2 form (Base64) first, then the 2.1.1 one.
        assert vemsp.refused_auth == 1
    else:
        assert {r["role"] for r in creds["roles"]} == {"CPO"}
        assert vemsp.refused_auth == 0
    # The eMSP calls us with the token we sent, in its form.
    status, _, body = await vemsp.call("GET", f"{gateway.url}/ocpi/{vemsp.version}/credentials")
    assert (status, body["status_code"]) == (200, 1000)
    vemsp.validate("credentials", "Credentials", body["data"])
    # The gateway's client for the partner sends its token in the partner's form.
    registry = gateway.app[REGISTRY]
    client = registry.client(registry.get(partner["id"]))
    before = vemsp.refused_auth
    await client.get_list(f"{vemsp.url}/ocpi/emsp/versions", v211.Version)
    assert vemsp.refused_auth == before


@pytest.mark.parametrize(
    ("version", "offers", "chosen"),
    [("2.3.0", ("2.1.1", "2.2.1"), "2.3.0"), ("2.1.1", ("2.0", "2.1"), "2.1.1")],
)
async def test_gateway_picks_the_highest_common_version(
    gateway: Gateway, version: str, offers: tuple[str, ...], chosen: str
) -> None:
    emsp = VersionedEmsp(version=version, also_offers=offers)
    await emsp.start()
    try:
        partner = await _create(gateway)
        status, view = await gateway.admin(
            "POST", f"/partners/{partner['id']}/register",
            {"versions_url": f"{emsp.url}/ocpi/emsp/versions", "token": emsp.token_a},
        )
        assert status == 200, view
        assert view["version"] == chosen
    finally:
        await emsp.stop()


async def test_credentials_put_switches_version(gateway: Gateway) -> None:
    emsp = VersionedEmsp(version="2.1.1")
    await emsp.start()
    try:
        partner_id = await _registered_with_gateway(gateway, emsp)
        status, _, body = await emsp.call("GET", f"{gateway.url}/ocpi/2.1.1/locations")
        assert (status, body["status_code"]) == (200, 1000)
        # Registered in 2.1.1: the 2.3.0 (or 2.2.1) modules are not for it.
        for other in ("2.2.1", "2.3.0"):
            status, _, body = await emsp.call("GET", f"{gateway.url}/ocpi/{other}/locations")
            assert (status, body["status_code"]) == (200, 3002), body
            assert "2.1.1" in body["status_message"]
        # A PUT on the 2.3.0 credentials switches to 2.3.0 (the platform upgraded).
        emsp.version = "2.3.0"
        status, _, body = await emsp.call("PUT", f"{gateway.url}/ocpi/2.3.0/credentials", emsp.credentials(emsp.token_b))
        assert (status, body["status_code"]) == (200, 1000), body
        emsp.validate("credentials", "Credentials", body["data"])
        emsp.cpo_token = body["data"]["token"]
        _, view = await gateway.admin("GET", f"/partners/{partner_id}")
        assert view["version"] == "2.3.0"
        status, _, body = await emsp.call("GET", f"{gateway.url}/ocpi/2.3.0/locations")
        assert (status, body["status_code"]) == (200, 1000)
        status, _, body = await emsp.call("GET", f"{gateway.url}/ocpi/2.1.1/locations")
        assert body["status_code"] == 3002
        # And back to 2.1.1 by a PUT there, while the partner offers 2.1.1 again.
        emsp.version = "2.1.1"
        status, _, body = await emsp.call("PUT", f"{gateway.url}/ocpi/2.1.1/credentials", emsp.credentials(emsp.token_b))
        assert (status, body["status_code"]) == (200, 1000), body
        emsp.validate("credentials", "Credentials", body["data"])
        emsp.cpo_token = body["data"]["token"]
        _, view = await gateway.admin("GET", f"/partners/{partner_id}")
        assert view["version"] == "2.1.1"
        # A PUT in a version the partner does not offer fails, nothing changes
        # (the 2.1.1 platform refuses the 2.3.0 form of the token: 3001).
        status, _, body = await emsp.call("PUT", f"{gateway.url}/ocpi/2.3.0/credentials", VersionedEmsp(version="2.3.0", url=emsp.url).credentials(emsp.token_b))
        assert body["status_code"] == 3001
        _, view = await gateway.admin("GET", f"/partners/{partner_id}")
        assert view["version"] == "2.1.1"
    finally:
        await emsp.stop()


async def test_partners_of_earlier_releases_stay_221(gateway: Gateway) -> None:
    registry = gateway.app[REGISTRY]
    partner, _ = await registry.create("old")
    old = replace(partner, version=None)
    assert old.ocpi_version == "2.2.1"
    assert registry.client(replace(old, their_token="t"))._authorization == "Token dA=="


# ------------------------------------------------------------------- modules


async def _catalog(gw: Gateway) -> None:
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    for location_id in ("LOC1", "LOC2", "LOC3"):
        assert (await gw.admin("PUT", f"/locations/{location_id}", LOCATION))[0] == 201
    await gw.admin("PUT", "/chargers/CP16", {"location_id": "LOC1", "evses": [{"ocpp_id": 1, "evse_uid": "CP16-1", "evse_id": "ZZ*GWY*E16"}]})


def _mv(ts: str, wh: str) -> list[dict[str, Any]]:
    return [{"timestamp": ts, "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}]}]


async def test_modules_in_the_partner_version(gateways: GatewayFactory, vemsp: VersionedEmsp) -> None:
    clock = FakeClock()
    gw = await gateways.start(clock=clock)
    partner_id = await _registered_with_gateway(gw, vemsp)
    await _catalog(gw)
    base = f"{gw.url}/ocpi/{vemsp.version}"

    # Locations, paginated (Link), each validated in the eMSP's version.
    status, headers, page = await vemsp.call("GET", f"{base}/locations?limit=2")
    assert (status, headers["X-Total-Count"], len(page["data"])) == (200, "3", 2)
    locations = await vemsp.get_all(f"{base}/locations?limit=2")
    assert [loc["id"] for loc in locations] == ["LOC1", "LOC2", "LOC3"]
    for location in locations:
        vemsp.validate("locations", "Location", location)
    assert locations[0]["evses"][0]["uid"] == "CP16-1"
    # Twice: the second time from the converted pages kept.
    assert await vemsp.get_all(f"{base}/locations?limit=2") == locations
    status, _, body = await vemsp.call("GET", f"{base}/locations/LOC1")
    vemsp.validate("locations", "Location", body["data"])
    status, _, body = await vemsp.call("GET", f"{base}/locations/LOC1/CP16-1")
    vemsp.validate("locations", "EVSE", body["data"])
    status, _, body = await vemsp.call("GET", f"{base}/locations/LOC1/CP16-1/1")
    vemsp.validate("locations", "Connector", body["data"])
    status, _, body = await vemsp.call("GET", f"{base}/locations/NOPE")
    assert (status, body["status_code"]) == (404, 2003)

    # Tariffs.
    tariffs = await vemsp.get_all(f"{base}/tariffs")
    assert [t["id"] for t in tariffs] == ["AC-STD"]
    for tariff in tariffs:
        vemsp.validate("tariffs", "Tariff", tariff)

    # The eMSP pushes its driver's token in its version: stored, and it authorizes.
    status, _, body = await vemsp.call("PUT", f"{base}/tokens/NL/EMV/DRIVER1", vemsp.token("DRIVER1"))
    assert (status, body["status_code"]) == (201, 1000), body
    status, _, body = await vemsp.call("GET", f"{base}/tokens/NL/EMV/DRIVER1")
    assert (status, body["status_code"]) == (200, 1000), body
    vemsp.validate("tokens", "Token", body["data"])
    assert body["data"]["uid"] == "DRIVER1"
    contract = vemsp.token("DRIVER1").get("auth_id") or vemsp.token("DRIVER1")["contract_id"]
    assert body["data"].get("auth_id", body["data"].get("contract_id")) == contract
    patch = {"valid": True} | ({} if vemsp.version == "2.1.1" else {"last_updated": "2026-11-23T09:00:00Z"})
    status, _, body = await vemsp.call("PATCH", f"{base}/tokens/NL/EMV/DRIVER1", patch)
    assert (status, body["status_code"]) == (200, 1000), body
    # Bad input is named in the eMSP's own terms.
    bad = {k: v for k, v in vemsp.token("DRIVER2").items() if k not in ("auth_id", "contract_id")}
    status, _, body = await vemsp.call("PUT", f"{base}/tokens/NL/EMV/DRIVER2", bad)
    assert body["status_code"] == 2001
    assert ("auth_id" if vemsp.version == "2.1.1" else "contract_id") in body["status_message"]

    # A charge at a 1.6 charger: its session and CDR, pulled in the eMSP's version.
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        assert (await cp.call(call16.Authorize(id_tag="DRIVER1"))).id_tag_info["status"] == "Accepted"
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=1000, timestamp="2026-11-23T10:00:00Z"))
        clock.advance(61)
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=start.transaction_id, meter_value=_mv("2026-11-23T10:30:00Z", "8000")))
        clock.advance(61)
        await cp.call(call16.StopTransaction(meter_stop=11_000, timestamp="2026-11-23T11:00:00Z", transaction_id=start.transaction_id))

    async def cdrs() -> list[Any]:
        return await vemsp.get_all(f"{base}/cdrs")

    [cdr] = await eventually(cdrs)
    vemsp.validate("cdrs", "CDR", cdr)
    sessions = await vemsp.get_all(f"{base}/sessions?date_from=2026-11-23T00:00:00Z")
    assert len(sessions) == 1
    vemsp.validate("sessions", "Session", sessions[0])
    assert sessions[0]["status"] == "COMPLETED"
    if vemsp.version == "2.1.1":
        # 2.1.1 embeds the location with only the EVSE and connector used; totals are numbers.
        assert [e["uid"] for e in sessions[0]["location"]["evses"]] == ["CP16-1"]
        assert sessions[0]["auth_id"] == vemsp.token("DRIVER1")["auth_id"]
        assert cdr["location"]["evses"][0]["evse_id"] == "ZZ*GWY*E16"
        assert str(cdr["total_cost"]) == "3.5"
    else:
        assert cdr["total_cost"]["before_taxes"] == 3.5
        assert sessions[0]["cdr_token"]["uid"] == "DRIVER1"
    status, _, body = await vemsp.call("GET", f"{base}/sessions")
    assert body["status_code"] == 2001  # date_from is required
    assert partner_id


async def test_start_session_reaches_the_charger(gateways: GatewayFactory, vemsp: VersionedEmsp) -> None:
    gw = await gateways.start(clock=FakeClock())
    await _registered_with_gateway(gw, vemsp)
    await _catalog(gw)
    base = f"{gw.url}/ocpi/{vemsp.version}"
    respond = f"{vemsp.url}{vemsp.base}/commands/START_SESSION/42"
    command = {"response_url": respond, "token": vemsp.token("APP-1"), "location_id": "LOC1", "evse_uid": "CP16-1"}
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        status, _, body = await vemsp.call("POST", f"{base}/commands/START_SESSION", command)
        assert (status, body["status_code"]) == (200, 1000), body
        vemsp.validate("commands", "CommandResponse", body["data"])
        assert body["data"]["result"] == "ACCEPTED"
        if vemsp.version == "2.1.1":
            assert body["data"] == {"result": "ACCEPTED"}  # 2.1.1: no timeout, no message
        await eventually(lambda: _true(cp.received and cp.received[-1][0] == "RemoteStartTransaction"))
        assert cp.received[-1] == ("RemoteStartTransaction", {"id_tag": "APP-1", "connector_id": 1})
        # STOP_SESSION of an unknown session.
        stop = {"response_url": respond + "/stop", "session_id": "NOPE"}
        status, _, body = await vemsp.call("POST", f"{base}/commands/STOP_SESSION", stop)
        vemsp.validate("commands", "CommandResponse", body["data"])
        assert body["data"]["result"] == "UNKNOWN_SESSION"
    # 2.1.1 has no CANCEL_RESERVATION: not served.
    status, _, body = await vemsp.call("POST", f"{base}/commands/CANCEL_RESERVATION", {"response_url": respond, "reservation_id": "1"})
    if vemsp.version == "2.1.1":
        assert status == 404
    else:
        assert (status, body["status_code"]) == (200, 1000)
    # A command the version's model refuses is named.
    status, _, body = await vemsp.call("POST", f"{base}/commands/START_SESSION", {"response_url": respond, "location_id": "LOC1"})
    assert body["status_code"] == 2001
    assert "token" in body["status_message"]


async def _true(value: Any) -> Any:
    return value


async def test_a_location_the_version_cannot_express(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    emsp = VersionedEmsp(version="2.1.1")
    await emsp.start()
    try:
        await _registered_with_gateway(gateway, emsp)
        await _catalog(gateway)
        # GB/T is a 2.2 connector standard: 2.1.1 cannot express it.
        gbt = LOCATION | {"connectors": [LOCATION["connectors"][0] | {"standard": "GBT_AC"}]}
        assert (await gateway.admin("PUT", "/locations/LOC2", gbt))[0] == 200
        await gateway.admin("PUT", "/chargers/CP2", {"location_id": "LOC2", "evses": [{"ocpp_id": 1, "evse_uid": "CP2-1"}]})
        base = f"{gateway.url}/ocpi/2.1.1"
        with caplog.at_level(logging.WARNING, logger="ocpi.versions"):
            status, headers, body = await emsp.call("GET", f"{base}/locations?limit=10")
        assert sorted(loc["id"] for loc in body["data"]) == ["LOC1", "LOC3"]
        assert headers["X-Total-Count"] == "3"  # the provider's count: pages stay consistent
        assert any("LOC2" in r.getMessage() and "standard" in r.getMessage() for r in caplog.records)
        # Page by page, nothing is served twice and nothing else is lost.
        assert sorted(loc["id"] for loc in await emsp.get_all(f"{base}/locations?limit=1")) == ["LOC1", "LOC3"]
        status, _, body = await emsp.call("GET", f"{base}/locations/LOC2")
        assert (status, body["status_code"]) == (200, 3000)
        assert "standard" in body["status_message"] and "2.1.1" in body["status_message"]
        # Its EVSE alone is as inexpressible; another location's is served.
        status, _, body = await emsp.call("GET", f"{base}/locations/LOC2/CP2-1")
        assert (status, body["status_code"]) == (200, 3000)
        status, _, body = await emsp.call("GET", f"{base}/locations/LOC1/CP16-1")
        assert (status, body["status_code"]) == (200, 1000)
    finally:
        await emsp.stop()


async def test_221_partner_is_refused_other_versions(gateway: Gateway, emsp: Any) -> None:
    partner = await _create(gateway)
    status, view = await gateway.admin(
        "POST", f"/partners/{partner['id']}/register", {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a}
    )
    assert (status, view["version"]) == (200, "2.2.1")
    probe = VersionedEmsp(version="2.2.1")
    status, _, body = await probe.call("GET", f"{gateway.url}/ocpi/2.1.1/locations", token=emsp.cpo_token)
    assert (status, body["status_code"]) == (200, 3002)
    status, _, body = await probe.call("GET", f"{gateway.url}/ocpi/2.2.1/locations", token=emsp.cpo_token)
    assert (status, body["status_code"]) == (200, 1000)
    # Its credentials in another version are readable (the way to switch is open).
    status, _, body = await probe.call("GET", f"{gateway.url}/ocpi/2.3.0/credentials", token=emsp.cpo_token)
    assert (status, body["status_code"]) == (200, 1000)
    validate_against_openapi("credentials", "Credentials", body["data"], version="2.3.0")


async def test_platform_registers_at_the_hub_in_its_version(gateway: Gateway, vemsp: VersionedEmsp) -> None:
    status, partner = await gateway.admin("POST", "/partners", {"name": "platform", "kind": "HUB"})
    assert status == 201, partner
    vemsp.rewrite = (gateway.settings.base_url, gateway.url)
    ours = await vemsp.register_with(partner["our_versions_url"], partner["token_a"])  # validated
    hub = (gateway.settings.hub_country_code, gateway.settings.hub_party_id)
    if vemsp.version == "2.1.1":
        assert (ours["country_code"], ours["party_id"]) == hub  # the hub's one party
    else:
        # 2.3.0: the hub's party as hub_party_id, the parties it reaches as roles.
        assert ours["hub_party_id"] == "".join(hub)
        assert [(r["role"], r["country_code"], r["party_id"]) for r in ours["roles"]] == [("CPO", "ZZ", "GWY")]
    _, view = await gateway.admin("GET", f"/partners/{partner['id']}")
    assert (view["status"], view["version"]) == ("REGISTERED", vemsp.version)
    # Its token is good at the hub only, and there in its version's credentials.
    status, _, body = await vemsp.call("GET", f"{gateway.url}/ocpi/hub/{vemsp.version}/credentials")
    assert (status, body["status_code"]) == (200, 1000)
    assert (await vemsp.call("GET", f"{gateway.url}/ocpi/{vemsp.version}/credentials"))[0] == 401


async def test_charging_profiles_in_230(gateway: Gateway) -> None:
    emsp = VersionedEmsp(version="2.3.0")
    await emsp.start()
    try:
        await _registered_with_gateway(gateway, emsp)
        base = f"{gateway.url}/ocpi/2.3.0/chargingprofiles"
        request = {
            "charging_profile": {"charging_rate_unit": "A", "charging_profile_period": [{"start_period": 0, "limit": 16}]},
            "response_url": f"{emsp.url}{emsp.base}/chargingprofiles/result/1",
        }
        validate_against_openapi("chargingprofiles", "SetChargingProfile", request, version="2.3.0")
        status, _, body = await emsp.call("PUT", f"{base}/NOPE", request)
        assert (status, body["status_code"]) == (200, 1000), body
        emsp.validate("chargingprofiles", "ChargingProfileResponse", body["data"])
        assert body["data"]["result"] == "UNKNOWN_SESSION"
        status, _, body = await emsp.call("GET", f"{base}/NOPE?duration=900&response_url={request['response_url']}")
        emsp.validate("chargingprofiles", "ChargingProfileResponse", body["data"])
        status, _, body = await emsp.call("DELETE", f"{base}/NOPE?response_url={request['response_url']}")
        emsp.validate("chargingprofiles", "ChargingProfileResponse", body["data"])
        # Named in 2.3.0 terms.
        status, _, body = await emsp.call("PUT", f"{base}/NOPE", {"response_url": request["response_url"]})
        assert body["status_code"] == 2001
        assert "charging_profile" in body["status_message"]
    finally:
        await emsp.stop()


async def test_reserve_now_in_211(gateways: GatewayFactory) -> None:
    emsp = VersionedEmsp(version="2.1.1")
    await emsp.start()
    try:
        gw = await gateways.start(clock=FakeClock())
        await _registered_with_gateway(gw, emsp)
        await _catalog(gw)
        base = f"{gw.url}/ocpi/2.1.1/commands"
        async with connect(gw.ws_url, "CP16", "1.6") as cp:
            await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
            reserve = {
                "response_url": f"{emsp.url}{emsp.base}/commands/RESERVE_NOW/7",
                "token": emsp.token("APP-2"), "expiry_date": "2026-11-23T13:00:00Z",
                "reservation_id": 12, "location_id": "LOC1", "evse_uid": "CP16-1",
            }
            status, _, body = await emsp.call("POST", f"{base}/RESERVE_NOW", reserve)
            assert (status, body["data"]) == (200, {"result": "ACCEPTED"}), body
            await eventually(lambda: _true(cp.received and cp.received[-1][0] == "ReserveNow"))
            assert cp.received[-1][1]["id_tag"] == "APP-2"
            # 2.1.1 reservation ids are integers.
            status, _, body = await emsp.call("POST", f"{base}/RESERVE_NOW", reserve | {"reservation_id": "R-1"})
            assert body["status_code"] == 2001
            assert "reservation_id" in body["status_message"]
    finally:
        await emsp.stop()
