"""A real OCPI 2.2.1 (or 2.3.0: ``version``) platform for the hub tests: an aiohttp
server with its own credentials, one or more parties, that registers at the gateway's
hub and records every request it receives. Every object it is sent is checked against
its version's official OpenAPI schema (``invalid`` lists what is not; such a request is
answered 2001, as a strict platform would).

As a CPO it serves a Locations Sender list (paginated), a Tokens Receiver, a Commands
Receiver and a Sessions Receiver-side nothing; as an eMSP it serves the Receiver
interfaces of locations, tariffs, sessions and CDRs, a Tokens Sender (real-time
authorization) and a Commands Sender (results). Every platform has a HubClientInfo
Receiver.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

from ocpi.transport import envelope, json_dumps, json_loads
from tests.ocpi.openapi import openapi_errors

CPO_ENDPOINTS = [
    ("locations", "SENDER"),
    ("tokens", "RECEIVER"),
    ("commands", "RECEIVER"),
    ("sessions", "SENDER"),
    ("cdrs", "SENDER"),
    ("tariffs", "SENDER"),
    ("chargingprofiles", "RECEIVER"),
]
EMSP_ENDPOINTS = [
    ("locations", "RECEIVER"),
    ("tariffs", "RECEIVER"),
    ("sessions", "RECEIVER"),
    ("cdrs", "RECEIVER"),
    ("tokens", "SENDER"),
    ("commands", "SENDER"),
    ("chargingprofiles", "SENDER"),
]


# (module, interface, method, number of path segments) -> the OpenAPI schema of the body
SCHEMAS = {
    ("locations", "receiver", "PUT", 3): "Location",
    ("locations", "receiver", "PUT", 4): "EVSE",
    ("locations", "receiver", "PUT", 5): "Connector",
    ("locations", "receiver", "PATCH", 3): "LocationPatch",
    ("locations", "receiver", "PATCH", 4): "EVSEPatch",
    ("locations", "receiver", "PATCH", 5): "ConnectorPatch",
    ("tariffs", "receiver", "PUT", 3): "Tariff",
    ("sessions", "receiver", "PUT", 3): "Session",
    ("sessions", "receiver", "PATCH", 3): "SessionPatch",
    ("cdrs", "receiver", "POST", 0): "CDR",
    ("tokens", "receiver", "PUT", 3): "Token",
    ("tokens", "receiver", "PATCH", 3): "TokenPatch",
    ("tokens", "sender", "POST", 2): "LocationReferences",
    ("commands", "sender", "POST", 1): "CommandResult",
}
_COMMAND_SCHEMAS = {
    "START_SESSION": "StartSession",
    "STOP_SESSION": "StopSession",
    "RESERVE_NOW": "ReserveNow",
    "CANCEL_RESERVATION": "CancelReservation",
    "UNLOCK_CONNECTOR": "UnlockConnector",
}


def token_header(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


def _ok(data: Any = None, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json_dumps(envelope(data)),
        status=status,
        content_type="application/json",
        headers=headers,
    )


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]
    body: Any


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: dict[str, Any]


@dataclass
class Platform:
    """One platform; ``role`` is CPO or EMSP, ``parties`` its (country_code, party_id)."""

    name: str
    role: str
    parties: list[tuple[str, str]]
    token_b: str = field(default_factory=lambda: "plat-b-" + secrets.token_hex(8))
    # The token A its operator hands the hub's operator, for the hub to register here.
    token_a: str = field(default_factory=lambda: "plat-a-" + secrets.token_hex(8))
    hub_token: str | None = None  # what we send to call the hub
    url: str = ""
    received: list[Received] = field(default_factory=list)
    # CPO side: its locations (served on GET, pushed by push_location).
    locations: list[dict[str, Any]] = field(default_factory=list)
    page_limit: int = 2
    # eMSP side: uid -> allowed for real-time authorization.
    authorize: dict[str, str] = field(default_factory=dict)
    hub_endpoints: dict[tuple[str, str], str] = field(default_factory=dict)
    runner: web.AppRunner | None = None
    on_command: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None
    delay: float = 0.0  # seconds before answering a locations GET (a slow platform)
    # CPO side: called (in the background) with each charging profile request received.
    on_profile: Callable[[Received], Awaitable[None]] | None = None
    version: str = "2.2.1"
    # Sender lists served on GET (module -> objects), besides ``locations``.
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)  # bodies its version's schema refuses

    @property
    def party(self) -> tuple[str, str]:
        return self.parties[0]

    def credentials(self, token: str) -> dict[str, Any]:
        return {
            "token": token,
            "url": f"{self.url}/ocpi/versions",
            "roles": [
                {
                    "role": self.role,
                    "business_details": {"name": self.name},
                    "country_code": cc,
                    "party_id": pid,
                }
                for cc, pid in self.parties
            ],
        }

    def _token(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Token "):
            return None
        try:
            return base64.b64decode(header[6:], validate=True).decode()
        except ValueError:
            return header[6:]

    def _authorized(self, request: web.Request, *, registration: bool = False) -> bool:
        token = self._token(request)
        return token == self.token_b or (registration and token == self.token_a)

    def endpoints(self) -> list[tuple[str, str]]:
        own = CPO_ENDPOINTS if self.role == "CPO" else EMSP_ENDPOINTS
        return [
            ("credentials", "SENDER"),
            ("credentials", "RECEIVER"),
            ("hubclientinfo", "RECEIVER"),
            *own,
        ]

    def module_url(self, module: str, role: str) -> str:
        return f"{self.url}/ocpi/{self.version}/{module}/{role.lower()}"

    def schema_problems(self, module: str, role: str, method: str, rest: str, body: Any) -> list[str]:
        """Why ``body`` is not the object its URL takes in this platform's version."""
        parts = [p for p in rest.split("/") if p]
        schema = SCHEMAS.get((module, role, method, len(parts)))
        if (module, role, method) == ("commands", "receiver", "POST") and len(parts) == 1:
            schema = _COMMAND_SCHEMAS.get(parts[0])
        if schema is None or body is None:
            return []
        return [f"{method} {module}/{rest} {schema}: {e}" for e in openapi_errors(module, schema, body, version=self.version)]

    def app(self) -> web.Application:
        app = web.Application()

        async def versions(request: web.Request) -> web.Response:
            if not self._authorized(request, registration=True):
                return web.Response(status=401)
            return _ok([{"version": self.version, "url": f"{self.url}/ocpi/{self.version}"}])

        async def details(request: web.Request) -> web.Response:
            if not self._authorized(request, registration=True):
                return web.Response(status=401)
            endpoints = [
                {
                    "identifier": m,
                    "role": r,
                    "url": self.module_url(m, r)
                    if m != "credentials"
                    else f"{self.url}/ocpi/{self.version}/credentials",
                }
                for m, r in self.endpoints()
            ]
            return _ok({"version": self.version, "endpoints": endpoints})

        async def module(request: web.Request) -> web.StreamResponse:
            if not self._authorized(request):
                return web.Response(status=401)
            raw = await request.read()
            received = Received(
                request.method,
                request.path,
                dict(request.query),
                request.headers,
                json_loads(raw) if raw else None,
            )
            mod, role, rest = (
                request.match_info["module"],
                request.match_info["role"],
                request.match_info["rest"],
            )
            problems = self.schema_problems(mod, role, request.method, rest, received.body)
            if problems:
                self.invalid += problems
                return web.json_response(
                    {"status_code": 2001, "status_message": "; ".join(problems)[:500], "timestamp": "2026-11-23T08:00:00Z"}
                )
            self.received.append(received)
            if role == "sender" and request.method == "GET" and not rest.strip("/") and mod in self.lists:
                return self._page(request, self.lists[mod])
            if (mod, role, request.method) == ("locations", "sender", "GET") and self.delay:
                await asyncio.sleep(self.delay)
            if (mod, role, request.method) == ("locations", "sender", "GET") and not rest.strip(
                "/"
            ):
                return self._location_page(request)
            if (mod, role, request.method) == ("locations", "sender", "GET"):
                loc_id = rest.strip("/").split("/")[0]
                found = next((loc for loc in self.locations if loc["id"] == loc_id), None)
                if found is None:
                    unknown = {
                        "status_code": 2003,
                        "status_message": f"Unknown location {loc_id}",
                        "timestamp": "2026-11-23T08:00:00Z",
                    }
                    return web.json_response(unknown, status=404)
                return _ok(found)
            if (mod, role) == ("tokens", "sender") and rest.endswith("/authorize"):
                uid = rest.strip("/").split("/")[0]
                cc, pid = self.party
                token = {
                    "country_code": cc,
                    "party_id": pid,
                    "uid": uid,
                    "type": "RFID",
                    "contract_id": f"{cc}-{pid}-C{uid[-5:]}",
                    "issuer": self.name,
                    "valid": True,
                    "whitelist": "ALLOWED",
                    "last_updated": "2026-11-23T08:00:00Z",
                }
                return _ok(
                    {
                        "allowed": self.authorize.get(uid, "NOT_ALLOWED"),
                        "token": token,
                        "authorization_reference": f"REF-{uid}",
                    }
                )
            if (mod, role) == ("chargingprofiles", "receiver"):
                if self.on_profile is not None:
                    asyncio.get_running_loop().create_task(self.on_profile(received))
                return _ok({"result": "ACCEPTED", "timeout": 30})
            if (mod, role, request.method) == ("commands", "receiver", "POST"):
                if self.on_command is not None:
                    command = rest.strip("/")
                    asyncio.get_running_loop().create_task(self.on_command(command, received.body))
                return _ok({"result": "ACCEPTED", "timeout": 30})
            if request.method == "PUT" and mod in ("tokens", "locations", "sessions", "tariffs"):
                return _ok(None, 201)
            return _ok(None)

        async def post_credentials(request: web.Request) -> web.Response:
            # The hub registers here with our token A (its operator got it from ours).
            if self._token(request) != self.token_a:
                return web.Response(status=401)
            theirs = json_loads(await request.read())
            self.hub_token = theirs["token"]
            self.received.append(Received("POST", request.path, {}, request.headers, theirs))
            return _ok(self.credentials(self.token_b))

        v = self.version
        app.router.add_post(f"/ocpi/{v}/credentials", post_credentials)
        app.router.add_get("/ocpi/versions", versions)
        app.router.add_get(f"/ocpi/{v}", details)
        app.router.add_route("*", f"/ocpi/{v}/{{module}}/{{role}}{{rest:.*}}", module)
        return app

    def _location_page(self, request: web.Request) -> web.Response:
        return self._page(request, self.locations)

    def _page(self, request: web.Request, objects: list[dict[str, Any]]) -> web.Response:
        offset = int(request.query.get("offset", "0"))
        limit = min(int(request.query.get("limit", str(self.page_limit))), self.page_limit)
        page = objects[offset : offset + limit]
        headers = {"X-Total-Count": str(len(objects)), "X-Limit": str(self.page_limit)}
        if offset + len(page) < len(objects):
            nxt = request.url.update_query({"offset": str(offset + len(page)), "limit": str(limit)})
            headers["Link"] = f'<{nxt}>; rel="next"'
        return _ok(page, headers=headers)

    async def start(self, port: int = 0) -> None:
        self.runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # -- calling the hub -----------------------------------------------------------

    async def register(self, versions_url: str, token_a: str) -> None:
        """The credentials handshake with the hub, as the platform's operator would."""
        self.hub_token = token_a
        versions = await self.call("GET", versions_url)
        details = await self.call("GET", next(v["url"] for v in versions.body["data"] if v["version"] == self.version))
        self.hub_endpoints = {
            (e["identifier"], e["role"]): e["url"] for e in details.body["data"]["endpoints"]
        }
        reply = await self.call(
            "POST", self.hub_endpoints[("credentials", "SENDER")], self.credentials(self.token_b)
        )
        assert reply.body["status_code"] == 1000, reply.body
        if self.version == "2.3.0":  # the hub's party as hub_party_id, the parties it reaches as roles
            assert reply.body["data"]["hub_party_id"]
        else:
            assert [r["role"] for r in reply.body["data"]["roles"]] == ["HUB"]
        self.hub_token = reply.body["data"]["token"]

    async def call(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        to: tuple[str, str] | None = None,
        sender: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        assert self.hub_token is not None
        sent = token_header(self.hub_token) | (headers or {})
        frm = sender or self.party
        sent |= {"OCPI-from-country-code": frm[0], "OCPI-from-party-id": frm[1]}
        if to is not None:
            sent |= {"OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1]}
        data = None if body is None else json_dumps(body).encode()
        if data is not None:
            sent["Content-Type"] = "application/json"
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, url, data=data, headers=sent) as r,
        ):
            return Reply(r.status, r.headers, json_loads(await r.read()))

    def hub_url(self, module: str, role: str) -> str:
        return self.hub_endpoints[(module, role)]

    def got(self, module: str, method: str | None = None) -> list[Received]:
        return [
            r
            for r in self.received
            if r.path.startswith(f"/ocpi/{self.version}/{module}/")
            and (method is None or r.method == method)
        ]
