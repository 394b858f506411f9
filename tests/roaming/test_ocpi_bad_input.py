"""Every OCPI endpoint answers bad input with the right status code, naming the field."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import Gateway
from tests.roaming.emsp import EmspPlatform, token_header

# (method, path under /ocpi/2.2.1, body (None: none; bytes: raw), HTTP status, OCPI status,
# text in status_message). status_codes.asciidoc: a request that reached the OCPI layer gets
# HTTP 200 with the OCPI error; a body that is not JSON gets HTTP 400; unknown objects 404.
CREDS = {
    "token": "a-new-token",
    "url": "https://emsp.example/ocpi/versions",
    "roles": [{"role": "EMSP", "business_details": {"name": "x"}, "party_id": "EMS", "country_code": "NL"}],
}
CASES: list[tuple[str, str, Any, int, int, str]] = [
    ("GET", "/locations?limit=-1", None, 200, 2001, "limit"),
    ("GET", "/locations?offset=abc", None, 200, 2001, "offset"),
    ("GET", "/locations?date_from=yesterday", None, 200, 2001, "date_from"),
    ("GET", "/locations/" + "L" * 37, None, 200, 2001, "location_id"),
    ("GET", "/locations/NOPE", None, 404, 2003, "NOPE"),
    ("GET", "/locations/LOC1/NOPE", None, 404, 2003, "LOC1"),
    ("GET", "/sessions", None, 200, 2001, "date_from"),
    ("GET", "/cdrs?date_to=never", None, 200, 2001, "date_to"),
    ("GET", "/tariffs?limit=many", None, 200, 2001, "limit"),
    ("PUT", "/tokens/NL/EMS/T1", b"{not json", 400, 2001, "JSON"),
    ("PUT", "/tokens/NLD/EMS/T1", {}, 200, 2001, "country_code"),
    ("PUT", "/tokens/NL/EMS/T1", {"uid": "T1"}, 200, 2001, "contract_id"),
    ("PATCH", "/tokens/NL/EMS/T1", {"valid": "yes", "last_updated": "2026-11-23T09:00:00Z"}, 200, 2001, "valid"),
    ("GET", "/tokens/NL/EMS/T1?type=" + "X" * 40, None, 200, 2001, "type"),
    ("POST", "/commands/STOP_SESSION", {"session_id": "S1"}, 200, 2001, "response_url"),
    ("POST", "/commands/START_SESSION", {"response_url": "not a url", "location_id": "LOC1"}, 200, 2001, "response_url"),
    ("POST", "/commands/FLY_TO_THE_MOON", {}, 404, 2000, "FLY_TO_THE_MOON"),
    ("POST", "/credentials", {"token": "x"}, 200, 2001, "url"),
    ("POST", "/credentials", CREDS, 405, 2000, "registered"),
    ("DELETE", "/locations", None, 405, 2000, "DELETE"),
]


async def _setup(gateway: Gateway, emsp: EmspPlatform) -> str:
    _, partner = await gateway.admin("POST", "/partners", {"name": "eMSP"})
    status, _ = await gateway.admin(
        "POST", f"/partners/{partner['id']}/register", {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a}
    )
    assert status == 200
    assert emsp.cpo_token is not None
    return emsp.cpo_token


async def test_bad_input(gateway: Gateway, emsp: EmspPlatform) -> None:
    token = await _setup(gateway, emsp)
    async with aiohttp.ClientSession() as s:
        for method, path, body, http, code, text in CASES:
            kwargs: dict[str, Any] = {"headers": token_header(token)}
            if isinstance(body, bytes):
                kwargs["data"] = body
                kwargs["headers"] = kwargs["headers"] | {"Content-Type": "application/json"}
            elif body is not None:
                kwargs["json"] = body
            async with s.request(method, f"{gateway.url}/ocpi/2.2.1{path}", **kwargs) as r:
                answer = await r.json()
                assert (r.status, answer["status_code"]) == (http, code), (method, path, answer)
                assert text.lower() in answer["status_message"].lower(), (method, path, answer)
                assert "timestamp" in answer


@pytest.mark.parametrize("path", ["/locations", "/tariffs", "/sessions", "/cdrs", "/tokens/NL/EMS/T1", "/credentials"])
async def test_missing_or_wrong_token_is_401(gateway: Gateway, emsp: EmspPlatform, path: str) -> None:
    await _setup(gateway, emsp)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{gateway.url}/ocpi/2.2.1{path}") as r:
            assert r.status == 401
            assert (await r.json())["status_code"] == 2000
        async with s.get(f"{gateway.url}/ocpi/2.2.1{path}", headers=token_header("forged")) as r:
            assert r.status == 401
        # The eMSP's own token A (spent at registration) opens nothing either.
        async with s.get(f"{gateway.url}/ocpi/2.2.1{path}", headers=token_header(emsp.token_a)) as r:
            assert r.status == 401
