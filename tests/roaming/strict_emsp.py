"""A strict OCPI 2.2.1 eMSP for tests: a real aiohttp server that behaves like the
partners of issue 9.

* Its module endpoints are advertised with a trailing slash (``.../cdrs/``), or, with
  ``advertise_slash=False``, without one although it serves them with one: the
  no-slash form of a module's root answers ``307`` to the slash form (what a web
  framework's "append slash" does), carrying the query.
* mod_locations, strictly: a PATCH of a location or EVSE it does not have, and a PUT
  of an EVSE of a location it does not have, are answered HTTP 404 with OCPI status
  2003 "Unknown Location". A path with an empty segment (``locations//NL``) is an
  HTML 404, as any unknown URL.
* ``redirect_cdrs``: the CDR endpoint answers that 3xx (e.g. 302 to another path)
  instead of taking the CDR.

It records every request with what it answered, and keeps the locations (with their
EVSEs and statuses), tariffs, sessions and CDRs it holds, so a test can check that
every PATCH it took was for an object it had first received by PUT.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ocpi.transport import json_loads
from tests.roaming.serving import EMSP_ENDPOINTS as ENDPOINTS
from tests.roaming.serving import Served, not_found, token_of
from tests.roaming.serving import ocpi_response as _ocpi

BASE = "/ocpi/2.2.1"
MODULES = ("locations", "tariffs", "sessions", "cdrs", "commands")


def _unknown_location(what: str) -> web.Response:
    # status_codes: 2003 Unknown Location; HTTP 404 as many receivers answer it.
    return _ocpi(http=404, code=2003, message=f"Unknown Location: {what}")


@dataclass
class Received:
    method: str
    path: str
    body: Any
    answered: int  # the HTTP status it got
    ocpi_from: str = ""
    ocpi_to: str = ""


@dataclass
class StrictEmsp(Served):
    country_code: str = "NL"
    party_id: str = "STR"
    advertise_slash: bool = True
    redirect_cdrs: int | None = None
    token_a: str = field(default_factory=lambda: "strict-a-" + secrets.token_hex(8))
    token_b: str = field(default_factory=lambda: "strict-b-" + secrets.token_hex(8))
    received: list[Received] = field(default_factory=list)
    # location id -> {"location": last full body, "evses": {uid: evse object}}
    locations: dict[str, dict[str, Any]] = field(default_factory=dict)
    tariffs: dict[str, Any] = field(default_factory=dict)
    sessions: dict[str, Any] = field(default_factory=dict)
    cdrs: list[Any] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    # -- what the test reads -------------------------------------------------------

    def endpoint(self, module: str) -> str:
        return f"{self.url}{BASE}/{module}" + ("/" if self.advertise_slash else "")

    def credentials(self, token: str) -> dict[str, Any]:
        return {
            "token": token,
            "url": f"{self.url}/ocpi/versions",
            "roles": [
                {
                    "role": "EMSP",
                    "business_details": {"name": "Strict eMSP"},
                    "party_id": self.party_id,
                    "country_code": self.country_code,
                }
            ],
        }

    def token(self, uid: str) -> dict[str, Any]:
        return {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "uid": uid,
            "type": "RFID",
            "contract_id": f"{self.country_code}-{self.party_id}-C{uid[-5:]}",
            "issuer": "Strict eMSP",
            "valid": True,
            "whitelist": "ALWAYS",
            "last_updated": "2026-11-23T08:00:00Z",
        }

    def rejected(self) -> list[Received]:
        """Requests answered with a 4xx (an unknown object, a wrong URL)."""
        return [r for r in self.received if 400 <= r.answered < 500]

    def taken(self, module: str, method: str | None = None) -> list[Received]:
        """Requests of ``module`` it took (2xx), in order."""
        return [
            r
            for r in self.received
            if r.path.startswith(f"{BASE}/{module}")
            and 200 <= r.answered < 300
            and (method is None or r.method == method)
        ]

    def evse_status(self, location_id: str, uid: str) -> str | None:
        evse = self.locations.get(location_id, {}).get("evses", {}).get(uid)
        return None if evse is None else str(evse.get("status"))

    def forget(self) -> None:
        """Lose every location (a partner restored from an old backup)."""
        self.locations.clear()

    # -- the server ------------------------------------------------------------------

    def _authorized(self, request: web.Request, *tokens: str) -> bool:
        return token_of(request) in tokens

    async def _versions(self, request: web.Request) -> web.Response:
        if not self._authorized(request, self.token_a, self.token_b):
            return web.Response(status=401)
        return _ocpi([{"version": "2.2.1", "url": f"{self.url}{BASE}/"}])

    async def _details(self, request: web.Request) -> web.Response:
        if not self._authorized(request, self.token_a, self.token_b):
            return web.Response(status=401)
        endpoints = [{"identifier": m, "role": r, "url": self.endpoint(m)} for m, r in ENDPOINTS]
        return _ocpi({"version": "2.2.1", "endpoints": endpoints})

    async def _module(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request, self.token_b):
            return web.Response(status=401)
        raw = await request.read()
        body = json_loads(raw) if raw else None
        response = self._answer(request, body)
        self.received.append(
            Received(
                request.method,
                request.path,
                body,
                response.status,
                "*".join(
                    request.headers.get(f"OCPI-from-{f}", "") for f in ("country-code", "party-id")
                ),
                "*".join(
                    request.headers.get(f"OCPI-to-{f}", "") for f in ("country-code", "party-id")
                ),
            )
        )
        return response

    def _answer(self, request: web.Request, body: Any) -> web.Response:
        rest = request.path.removeprefix(BASE + "/")
        module, slash, tail = rest.partition("/")
        if module not in MODULES:
            return not_found()
        if not slash:  # the module root without its slash: "append slash"
            target = request.rel_url.with_path(f"{BASE}/{module}/")
            return web.Response(status=307, headers={"Location": str(target)})
        parts = tail.split("/") if tail else []
        if any(not p for p in parts):
            return not_found()
        if module == "cdrs" and not parts and self.redirect_cdrs is not None:
            return web.Response(
                status=self.redirect_cdrs, headers={"Location": f"{BASE}/elsewhere/"}
            )
        handler = {
            "locations": self._locations,
            "tariffs": self._tariffs,
            "sessions": self._sessions,
            "cdrs": self._cdrs,
            "commands": self._commands,
        }[module]
        return handler(request.method, parts, body)

    def _locations(self, method: str, parts: list[str], body: Any) -> web.Response:
        if len(parts) < 3 or len(parts) > 5:
            return not_found()
        location_id = parts[2]
        held = self.locations.get(location_id)
        if len(parts) == 3:
            if method == "PUT":
                evses = {e["uid"]: e for e in body.get("evses") or []}
                self.locations[location_id] = {"location": body, "evses": evses}
                return _ocpi()
            if method == "PATCH":
                if held is None:
                    return _unknown_location(location_id)
                held["location"] = held["location"] | body
                return _ocpi()
        elif len(parts) == 4:
            uid = parts[3]
            if held is None:
                return _unknown_location(location_id)
            if method == "PUT":
                held["evses"][uid] = body
                return _ocpi()
            if method == "PATCH":
                if uid not in held["evses"]:
                    return _unknown_location(f"{location_id}/{uid}")
                held["evses"][uid] = held["evses"][uid] | body
                return _ocpi()
        return _ocpi(http=405, code=2000, message="not supported here")

    def _tariffs(self, method: str, parts: list[str], body: Any) -> web.Response:
        if len(parts) != 3:
            return not_found()
        if method == "PUT":
            self.tariffs[parts[2]] = body
        elif method == "DELETE":
            self.tariffs.pop(parts[2], None)
        return _ocpi()

    def _sessions(self, method: str, parts: list[str], body: Any) -> web.Response:
        if len(parts) != 3:
            return not_found()
        session_id = parts[2]
        if method == "PUT":
            self.sessions[session_id] = body
        elif method == "PATCH":
            if session_id not in self.sessions:
                return _ocpi(http=404, code=2001, message="Unknown session")
            self.sessions[session_id] = self.sessions[session_id] | body
        return _ocpi()

    def _cdrs(self, method: str, parts: list[str], body: Any) -> web.Response:
        if method != "POST" or parts:
            return not_found()
        self.cdrs.append(body)
        return _ocpi()

    def _commands(self, method: str, parts: list[str], body: Any) -> web.Response:
        return _ocpi()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ocpi/versions", self._versions)
        app.router.add_get(BASE + "/", self._details)
        app.router.add_route("*", BASE + "/{tail:.+}", self._module)
        return app
