"""The OCPI credentials handshake, both directions, against a real eMSP server."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.conftest import Gateway
from tests.ocpi.openapi import validate_against_openapi
from tests.roaming.emsp import EmspPlatform, token_header


async def _ocpi(method: str, url: str, token: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.request(method, url, json=body, headers=token_header(token)) as r:
        return r.status, await r.json()


async def test_emsp_registers_with_gateway(gateway: Gateway, emsp: EmspPlatform) -> None:
    status, partner = await gateway.admin("POST", "/partners", {"name": "eMSP One"})
    assert status == 201
    assert partner["status"] == "PENDING"
    token_a = partner["token_a"]
    versions_url = partner["our_versions_url"]
    assert versions_url == f"{gateway.settings.base_url}/ocpi/versions"
    assert len(token_a) >= 22  # at least 128 bits

    status, body = await _ocpi("GET", versions_url.replace(gateway.settings.base_url, gateway.url), token_a)
    assert (status, body["status_code"]) == (200, 1000)
    details_url = next(v["url"] for v in body["data"] if v["version"] == "2.2.1").replace(gateway.settings.base_url, gateway.url)
    status, body = await _ocpi("GET", details_url, token_a)
    assert body["data"]["version"] == "2.2.1"
    validate_against_openapi("versions", "VersionDetails", body["data"])
    creds_url = details_url + "/credentials"

    # Token A opens nothing but registration.
    status, body = await _ocpi("PUT", creds_url, token_a, emsp.credentials(emsp.token_b))
    assert (status, body["status_code"]) == (405, 2000)

    status, body = await _ocpi("POST", creds_url, token_a, emsp.credentials(emsp.token_b))
    assert (status, body["status_code"]) == (200, 1000), body
    ours = body["data"]
    validate_against_openapi("credentials", "Credentials", ours)
    token_c = ours["token"]
    assert token_c != token_a
    assert {(r["country_code"], r["party_id"], r["role"]) for r in ours["roles"]} == {("ZZ", "GWY", "CPO")}

    # Token A is spent; token C works; POST again is 405.
    assert (await _ocpi("GET", creds_url, token_a))[0] == 401
    status, body = await _ocpi("GET", creds_url, token_c)
    assert (status, body["data"]["token"]) == (200, token_c)
    assert (await _ocpi("POST", creds_url, token_c, emsp.credentials(emsp.token_b)))[0] == 405

    _, view = await gateway.admin("GET", f"/partners/{partner['id']}")
    assert view["status"] == "REGISTERED"
    assert view["parties"] == [{"country_code": "NL", "party_id": "EMS", "role": "EMSP"}]
    assert "token_a" not in view
    assert {e["module"] for e in view["endpoints"]} >= {"locations", "sessions", "cdrs", "commands"}

    # PUT rotates the token the eMSP uses to call us.
    status, body = await _ocpi("PUT", creds_url, token_c, emsp.credentials(emsp.token_b))
    assert status == 200
    token_c2 = body["data"]["token"]
    assert token_c2 != token_c
    assert (await _ocpi("GET", creds_url, token_c))[0] == 401

    # DELETE unregisters; the token stops working.
    status, body = await _ocpi("DELETE", creds_url, token_c2)
    assert (status, body["status_code"]) == (200, 1000)
    assert (await _ocpi("GET", creds_url, token_c2))[0] == 401
    _, view = await gateway.admin("GET", f"/partners/{partner['id']}")
    assert view["status"] == "UNREGISTERED"


async def test_registration_refused_when_partner_unreachable(gateway: Gateway, emsp: EmspPlatform) -> None:
    _, partner = await gateway.admin("POST", "/partners", {"name": "eMSP One"})
    creds_url = f"{gateway.url}/ocpi/2.2.1/credentials"
    bad = emsp.credentials("wrong-token")  # our calls to their versions will get 401
    status, body = await _ocpi("POST", creds_url, partner["token_a"], bad)
    assert body["status_code"] == 3001
    assert "versions" in body["status_message"]
    # Still pending: the token A can be used again.
    _, view = await gateway.admin("GET", f"/partners/{partner['id']}")
    assert view["status"] == "PENDING"
    status, body = await _ocpi("POST", creds_url, partner["token_a"], {"token": "x"})
    # Valid JSON that reached the OCPI layer: HTTP 200 with the OCPI error (status_codes).
    assert (status, body["status_code"]) == (200, 2001)
    assert "url" in body["status_message"]


async def test_gateway_registers_at_emsp(gateway: Gateway, emsp: EmspPlatform) -> None:
    _, partner = await gateway.admin("POST", "/partners", {"name": "eMSP Two"})
    status, view = await gateway.admin(
        "POST", f"/partners/{partner['id']}/register", {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a}
    )
    assert status == 200, view
    assert view["status"] == "REGISTERED"
    assert emsp.cpo_token is not None
    # The eMSP can now call us with the token we gave it.
    status, body = await _ocpi("GET", f"{gateway.url}/ocpi/2.2.1/credentials", emsp.cpo_token)
    assert (status, body["data"]["token"]) == (200, emsp.cpo_token)
    # Registering twice is refused.
    status, body = await gateway.admin(
        "POST", f"/partners/{partner['id']}/register", {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a}
    )
    assert status == 409


async def test_gateway_registration_errors(gateway: Gateway, emsp: EmspPlatform) -> None:
    _, partner = await gateway.admin("POST", "/partners", {"name": "eMSP Three"})
    path = f"/partners/{partner['id']}/register"
    status, body = await gateway.admin("POST", path, {"versions_url": f"{emsp.url}/ocpi/versions", "token": "nope"})
    assert status == 502
    assert "401" in body["error"]
    status, body = await gateway.admin("POST", path, {"versions_url": "not a url", "token": "x"})
    assert (status, body["field"]) == (422, "versions_url")
    status, _ = await gateway.admin("POST", "/partners/unknown/register", {"versions_url": emsp.url, "token": "x"})
    assert status == 404


async def test_unknown_token_is_401(gateway: Gateway) -> None:
    status, body = await _ocpi("GET", f"{gateway.url}/ocpi/versions", "made-up")
    assert (status, body["status_code"]) == (401, 2000)
    async with aiohttp.ClientSession() as s, s.get(f"{gateway.url}/ocpi/versions") as r:
        assert r.status == 401
