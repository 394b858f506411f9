"""A real eMSP for the charging profile tests, written from mod_charging_profiles (2.2.1):
an aiohttp server that registers with a CPO (credentials handshake), receives its
sessions, and implements the ChargingProfiles Sender interface: the results POSTed to
the ``response_url`` it hands out (``/ocpi/2.2.1/chargingprofiles/results/{uid}``) and
the ActiveChargingProfile PUT to ``{chargingprofiles endpoint}/{session_id}``.

Every body it receives on the Sender interface is checked against the official OpenAPI
description (``problems`` lists what did not conform; such a request is answered 2001,
as a strict receiver would).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
from aiohttp import web

from ocpi.transport import json_dumps, json_loads
from tests.ocpi.openapi import openapi_errors
from tests.roaming.serving import Served, ocpi_response, token_header

BASE = "/ocpi/2.2.1"

# The result object each kind of request gets back (the uid's prefix says which).
RESULT_SCHEMAS = {
    "set": "ChargingProfileResult",
    "get": "ActiveChargingProfileResult",
    "clear": "ClearProfileResult",
}


def _answer(data: Any = None, status_code: int = 1000, message: str | None = None) -> web.Response:
    return ocpi_response(data, code=status_code, message=message)


@dataclass
class Received:
    method: str
    path: str
    body: Any
    headers: dict[str, str]

    @property
    def routed(self) -> tuple[str, str]:
        h = self.headers
        return (
            f"{h.get('OCPI-from-country-code')}*{h.get('OCPI-from-party-id')}",
            f"{h.get('OCPI-to-country-code')}*{h.get('OCPI-to-party-id')}",
        )


@dataclass
class ProfilesEmsp(Served):
    country_code: str = "NL"
    party_id: str = "SCP"
    token_a: str = field(default_factory=lambda: "emsp-a-" + secrets.token_hex(8))
    token_b: str = field(default_factory=lambda: "emsp-b-" + secrets.token_hex(8))
    cpo_token: str | None = None
    cpo_endpoints: dict[tuple[str, str], str] = field(default_factory=dict)
    url: str = ""
    # Results at a response_url, by uid; ActiveChargingProfile PUTs, by session id.
    results: dict[str, list[Received]] = field(default_factory=dict)
    active: dict[str, list[Received]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    outage: bool = False  # answered 503 and nothing recorded
    _runner: web.AppRunner | None = None
    runner_options: ClassVar[dict[str, Any]] = {"access_log": None}

    def token(self, uid: str) -> dict[str, Any]:
        return {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "uid": uid,
            "type": "RFID",
            "contract_id": f"{self.country_code}-{self.party_id}-C{uid[-5:]}",
            "issuer": "Smart eMSP",
            "valid": True,
            "whitelist": "ALWAYS",
            "last_updated": "2026-11-23T08:00:00Z",
        }

    def response_url(self, uid: str) -> str:
        return f"{self.url}{BASE}/chargingprofiles/results/{uid}"

    def _authorized(self, request: web.Request, *tokens: str) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Token "):
            return False
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except ValueError:
            decoded = header[6:]
        return decoded in tokens

    def app(self) -> web.Application:
        app = web.Application()

        async def versions(request: web.Request) -> web.Response:
            if not self._authorized(request, self.token_a, self.token_b):
                return web.Response(status=401)
            return _answer([{"version": "2.2.1", "url": f"{self.url}{BASE}"}])

        async def details(request: web.Request) -> web.Response:
            if not self._authorized(request, self.token_a, self.token_b):
                return web.Response(status=401)
            endpoints = [
                ("credentials", "SENDER", "credentials"),
                ("credentials", "RECEIVER", "credentials"),
                ("sessions", "RECEIVER", "sessions"),
                ("cdrs", "RECEIVER", "cdrs"),
                ("tokens", "SENDER", "tokens"),
                ("chargingprofiles", "SENDER", "chargingprofiles"),
            ]
            return _answer(
                {
                    "version": "2.2.1",
                    "endpoints": [
                        {"identifier": m, "role": r, "url": f"{self.url}{BASE}/{p}"}
                        for m, r, p in endpoints
                    ],
                }
            )

        async def credentials(request: web.Request) -> web.Response:
            # The CPO registers here with our token A and gives us its token.
            if not self._authorized(request, self.token_a):
                return web.Response(status=401)
            theirs = json_loads(await request.read())
            self.cpo_token = theirs["token"]
            ours = {
                "token": self.token_b,
                "url": f"{self.url}/ocpi/versions",
                "roles": [
                    {
                        "role": "EMSP",
                        "business_details": {"name": "Smart eMSP"},
                        "party_id": self.party_id,
                        "country_code": self.country_code,
                    }
                ],
            }
            return _answer(ours)

        def received(request: web.Request, raw: bytes) -> Received:
            return Received(
                request.method,
                request.path,
                json_loads(raw) if raw else None,
                {k: v for k, v in request.headers.items() if k.lower().startswith("ocpi-")},
            )

        async def sessions(request: web.Request) -> web.Response:
            if not self._authorized(request, self.token_b):
                return web.Response(status=401)
            body = json_loads(await request.read())
            session_id = request.match_info["session_id"]
            self.sessions[session_id] = self.sessions.get(session_id, {}) | body
            return _answer()

        async def other(request: web.Request) -> web.Response:
            if not self._authorized(request, self.token_b):
                return web.Response(status=401)
            return _answer()

        async def result(request: web.Request) -> web.Response:
            # Sender interface, POST: "Receive the asynchronous response from the Charge
            # Point" at the URL we gave.
            if not self._authorized(request, self.token_b):
                return web.Response(status=401)
            if self.outage:
                return web.Response(status=503)
            uid = request.match_info["uid"]
            got = received(request, await request.read())
            schema = RESULT_SCHEMAS[uid.split("-")[0]]
            errors = openapi_errors("chargingprofiles", schema, got.body)
            if errors:
                self.problems += [f"{uid}: {e}" for e in errors]
                return _answer(status_code=2001, message="; ".join(errors))
            self.results.setdefault(uid, []).append(got)
            return _answer()

        async def active(request: web.Request) -> web.Response:
            # Sender interface, PUT {session_id}: the CPO's updated ActiveChargingProfile.
            if not self._authorized(request, self.token_b):
                return web.Response(status=401)
            if self.outage:
                return web.Response(status=503)
            session_id = request.match_info["session_id"]
            got = received(request, await request.read())
            errors = openapi_errors("chargingprofiles", "ActiveChargingProfile", got.body)
            if errors:
                self.problems += [f"active {session_id}: {e}" for e in errors]
                return _answer(status_code=2001, message="; ".join(errors))
            self.active.setdefault(session_id, []).append(got)
            return _answer()

        app.router.add_get("/ocpi/versions", versions)
        app.router.add_get(BASE, details)
        app.router.add_post(f"{BASE}/credentials", credentials)
        app.router.add_route("PUT", f"{BASE}/sessions/{{cc}}/{{pid}}/{{session_id}}", sessions)
        app.router.add_route("PATCH", f"{BASE}/sessions/{{cc}}/{{pid}}/{{session_id}}", sessions)
        app.router.add_post(f"{BASE}/chargingprofiles/results/{{uid}}", result)
        app.router.add_put(f"{BASE}/chargingprofiles/{{session_id}}", active)
        app.router.add_route("*", f"{BASE}/{{module:(cdrs|tokens)}}{{rest:.*}}", other)
        return app

    # -- calling the CPO's Receiver interface ------------------------------------------

    async def learn_cpo(self, versions_url: str) -> None:
        """The CPO's endpoints, from its version details (after registration)."""
        versions = await self._call("GET", versions_url)
        details = await self._call(
            "GET", next(v["url"] for v in versions["data"] if v["version"] == "2.2.1")
        )
        self.cpo_endpoints = {
            (e["identifier"], e["role"]): e["url"] for e in details["data"]["endpoints"]
        }

    def _profiles_url(self, session_id: str) -> str:
        return f"{self.cpo_endpoints[('chargingprofiles', 'RECEIVER')]}/{session_id}"

    async def _call(
        self, method: str, url: str, body: Any = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        assert self.cpo_token is not None
        headers = token_header(self.cpo_token) | {
            "OCPI-from-country-code": self.country_code,
            "OCPI-from-party-id": self.party_id,
        }
        async with (
            aiohttp.ClientSession() as s,
            s.request(
                method,
                url,
                data=None if body is None else json_dumps(body),
                params=params,
                headers=headers | ({"Content-Type": "application/json"} if body else {}),
            ) as r,
        ):
            answer = dict(json_loads(await r.read()))
            answer["http_status"] = r.status
            return answer

    async def set_profile(self, session_id: str, profile: dict[str, Any], uid: str) -> Any:
        body = {"charging_profile": profile, "response_url": self.response_url(uid)}
        return await self._call("PUT", self._profiles_url(session_id), body)

    async def get_active(self, session_id: str, duration: int, uid: str) -> Any:
        params = {"duration": str(duration), "response_url": self.response_url(uid)}
        return await self._call("GET", self._profiles_url(session_id), params=params)

    async def clear_profile(self, session_id: str, uid: str) -> Any:
        params = {"response_url": self.response_url(uid)}
        return await self._call("DELETE", self._profiles_url(session_id), params=params)

    async def result_of(self, uid: str, timeout: float = 10.0) -> Received:
        async with asyncio.timeout(timeout):
            while not self.results.get(uid):
                await asyncio.sleep(0.02)
        return self.results[uid][0]
