"""eMSP tokens: the Tokens Receiver, and authorization of roaming drivers at a charger."""

from __future__ import annotations

from typing import Any

import aiohttp
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from tests.conftest import Gateway, GatewayFactory
from tests.roaming.emsp import EmspPlatform, token_header
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect


async def _setup(gateway: Gateway, emsp: EmspPlatform) -> None:
    _, partner = await gateway.admin("POST", "/partners", {"name": "eMSP"})
    status, _ = await gateway.admin(
        "POST", f"/partners/{partner['id']}/register", {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a}
    )
    assert status == 200
    assert (await gateway.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gateway.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    status, _ = await gateway.admin("PUT", "/chargers/CP1", {"location_id": "LOC1", "evses": [{"ocpp_id": 1, "evse_uid": "CP1-1"}]})
    assert status == 201


async def _ocpi(gateway: Gateway, emsp: EmspPlatform, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    assert emsp.cpo_token is not None
    async with aiohttp.ClientSession() as s, s.request(
        method, f"{gateway.url}/ocpi/2.2.1/tokens{path}", json=body, headers=token_header(emsp.cpo_token)
    ) as r:
        return r.status, await r.json()


async def test_tokens_receiver(gateway: Gateway, emsp: EmspPlatform) -> None:
    await _setup(gateway, emsp)
    token = emsp.token("04AABBCCDD")
    status, body = await _ocpi(gateway, emsp, "PUT", "/NL/EMS/04AABBCCDD?type=RFID", token)
    assert (status, body["status_code"]) == (201, 1000)
    status, body = await _ocpi(gateway, emsp, "PUT", "/NL/EMS/04AABBCCDD", token)
    assert status == 200
    status, body = await _ocpi(gateway, emsp, "GET", "/NL/EMS/04aabbccdd?type=RFID")
    assert (status, body["data"]["uid"]) == (200, "04AABBCCDD")
    status, body = await _ocpi(
        gateway, emsp, "PATCH", "/NL/EMS/04AABBCCDD?type=RFID", {"valid": False, "last_updated": "2026-11-23T09:00:00Z"}
    )
    assert (status, body["status_code"]) == (200, 1000)
    _, body = await _ocpi(gateway, emsp, "GET", "/NL/EMS/04AABBCCDD")
    assert body["data"]["valid"] is False
    # Bad input, each named.
    status, body = await _ocpi(gateway, emsp, "PUT", "/NL/EMS/04AABBCCDD", token | {"whitelist": "SOMETIMES"})
    assert body["status_code"] == 2001
    assert "whitelist" in body["status_message"]
    status, body = await _ocpi(gateway, emsp, "PUT", "/NL/EMS/OTHER", token)
    assert body["status_code"] == 2001
    assert "uid" in body["status_message"]
    # A platform cannot push tokens of a party it does not own.
    foreign = token | {"country_code": "DE", "party_id": "XYZ"}
    status, body = await _ocpi(gateway, emsp, "PUT", "/DE/XYZ/04AABBCCDD", foreign)
    assert body["status_code"] == 2001
    assert "party" in body["status_message"]
    status, body = await _ocpi(gateway, emsp, "PATCH", "/NL/EMS/NOPE", {"valid": True, "last_updated": "2026-11-23T09:00:00Z"})
    assert (status, body["status_code"]) == (404, 2004)
    status, body = await _ocpi(gateway, emsp, "PATCH", "/NL/EMS/04AABBCCDD", {"valid": True})
    assert body["status_code"] == 2001
    assert "last_updated" in body["status_message"]


async def test_roaming_authorization(gateway: Gateway, emsp: EmspPlatform) -> None:
    await _setup(gateway, emsp)
    await _ocpi(gateway, emsp, "PUT", "/NL/EMS/WL-ALWAYS", emsp.token("WL-ALWAYS", "ALWAYS"))
    await _ocpi(gateway, emsp, "PUT", "/NL/EMS/WL-BLOCKED", emsp.token("WL-BLOCKED", "ALWAYS", valid=False))
    await _ocpi(gateway, emsp, "PUT", "/NL/EMS/WL-NEVER", emsp.token("WL-NEVER", "NEVER"))
    await _ocpi(gateway, emsp, "PUT", "/NL/EMS/WL-NEVER2", emsp.token("WL-NEVER2", "NEVER"))
    emsp.authorize = {"WL-NEVER": "ALLOWED", "RT-NEW": "ALLOWED", "WL-NEVER2": "BLOCKED"}
    async with connect(gateway.ws_url, "CP1", "1.6") as cp:
        async def status_of(uid: str) -> str:
            return str((await cp.call(call16.Authorize(id_tag=uid))).id_tag_info["status"])

        assert await status_of("WL-ALWAYS") == "Accepted"
        assert await status_of("WL-BLOCKED") == "Blocked"
        assert emsp.authorize_requests == []  # whitelisted: no call to the eMSP
        assert await status_of("WL-NEVER") == "Accepted"
        assert await status_of("WL-NEVER2") == "Blocked"
        assert await status_of("RT-NEW") == "Accepted"  # unknown here, known at the eMSP
        assert await status_of("RT-NOBODY") == "Invalid"
        uid, where = emsp.authorize_requests[0]
        assert uid == "WL-NEVER"
        assert where == {"location_id": "LOC1", "evse_uids": ["CP1-1"]}
    # The eMSP's answer was kept: the new token is now known.
    status, body = await _ocpi(gateway, emsp, "GET", "/NL/EMS/RT-NEW")
    assert (status, body["data"]["uid"]) == (200, "RT-NEW")


async def test_authorization_when_emsp_is_slow(gateways: GatewayFactory, emsp: EmspPlatform) -> None:
    gateway = await gateways.start(realtime_auth_timeout=0.3)
    await _setup(gateway, emsp)
    await _ocpi(gateway, emsp, "PUT", "/NL/EMS/OFFLINE-OK", emsp.token("OFFLINE-OK", "ALLOWED_OFFLINE"))
    await _ocpi(gateway, emsp, "PUT", "/NL/EMS/NEVER", emsp.token("NEVER", "NEVER"))
    emsp.authorize = {"OFFLINE-OK": "ALLOWED", "NEVER": "ALLOWED", "RT-SLOW": "ALLOWED"}
    emsp.authorize_delay = 2.0
    async with connect(gateway.ws_url, "CP1", "2.0.1") as cp:
        async def status_of(uid: str) -> str:
            answer = await cp.call(call201.Authorize(id_token={"idToken": uid, "type": "ISO14443"}))
            return str(answer.id_token_info["status"])

        # The eMSP would say ALLOWED to all three, but only after the budget: the
        # documented fallbacks apply (ALLOWED_OFFLINE charges, NEVER and unknown do not).
        assert await status_of("OFFLINE-OK") == "Accepted"
        assert await status_of("NEVER") == "Invalid"
        assert await status_of("RT-SLOW") == "Invalid"
        assert {uid for uid, _ in emsp.authorize_requests} == {"OFFLINE-OK", "NEVER", "RT-SLOW"}
