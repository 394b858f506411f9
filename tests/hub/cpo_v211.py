"""A real OCPI 2.1.1 CPO platform for the hub tests, written from the 2.1.1
specification (release-2.1.1-bugfixes: credentials.md, version_information_endpoint.md,
mod_locations.md, mod_sessions.md, mod_cdrs.md, mod_tariffs.md, mod_tokens.md,
mod_commands.md, transport_and_format.md).

* **Registration**: it registers at a platform in 2.1.1 (:meth:`CpoV211.register_with`:
  versions, version details, credentials POST with its token B), its credentials one
  party at the top level (2.1.1 has no roles), the token unencoded in the Authorization
  header both ways (a Base64 token is refused, HTTP 401).
* **What it serves** (the CPO's side of 2.1.1, one URL per module, no interface roles):
  ``GET locations`` (paginated, ``Link``), ``GET/PUT/PATCH tokens/{cc}/{pid}/{uid}``
  (the eMSPs' tokens), ``POST commands/{command}`` (answered with a CommandResponse; the
  result is POSTed to the ``response_url`` by :attr:`on_command`).
* **Strict**: every body it is sent is validated against the 2.1.1 model with no field
  2.1.1 lacks (``invalid`` lists what is not; answered 2001).

:meth:`CpoV211.call` calls the hub with its token as 2.1.1 sends it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ValidationError

import ocpi.v211 as v211
from ocpi.transport import envelope, format_validation_error, json_dumps, json_loads

BASE = "/ocpi/cpo/2.1.1"
MODULES = ("credentials", "locations", "tariffs", "sessions", "cdrs", "tokens", "commands")
_COMMANDS: dict[str, type[BaseModel]] = {
    "START_SESSION": v211.StartSession,
    "STOP_SESSION": v211.StopSession,
    "RESERVE_NOW": v211.ReserveNow,
    "UNLOCK_CONNECTOR": v211.UnlockConnector,
}


def unknown_fields(obj: Any, raw: Any, path: str = "") -> list[str]:
    """Paths of the fields in ``raw`` the validated ``obj`` has no field for."""
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
        return [
            p
            for i, (o, r) in enumerate(zip(obj, raw, strict=False))
            for p in unknown_fields(o, r, f"{path}[{i}]")
        ]
    return []


def problems_211(model: type[BaseModel], body: Any) -> list[str]:
    """Why ``body`` is not a 2.1.1 ``model`` with only 2.1.1 fields (empty: it is)."""
    try:
        obj = model.model_validate(body)
    except ValidationError as exc:
        return [f"{model.__name__}: {format_validation_error(exc)}"]
    return [f"{model.__name__}: unknown field {p}" for p in unknown_fields(obj, body)]


def _ok(data: Any = None, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json_dumps(envelope(data)), content_type="application/json", headers=headers
    )


@dataclass
class Got:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class CpoV211:
    name: str = "CPO Old"
    country_code: str = "BE"
    party_id: str = "OLD"
    token_b: str = field(default_factory=lambda: "cpo211-b-" + secrets.token_hex(8))
    hub_token: str | None = None  # what we send the hub (its token C)
    hub_endpoints: dict[str, str] = field(default_factory=dict)  # module -> URL
    hub_credentials: dict[str, Any] = field(default_factory=dict)
    locations: list[dict[str, Any]] = field(default_factory=list)
    page_limit: int = 2
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # cc*pid*uid -> Token
    received: list[Got] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    on_command: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None
    rewrite: tuple[str, str] | None = None  # (advertised base URL, where it listens)
    url: str = ""
    _runner: web.AppRunner | None = None

    def credentials(self, token: str) -> dict[str, Any]:
        """2.1.1 credentials: one party, no role."""
        return {
            "token": token,
            "url": f"{self.url}/ocpi/cpo/versions",
            "business_details": {"name": self.name},
            "country_code": self.country_code,
            "party_id": self.party_id,
        }

    def got(self, module: str, method: str | None = None) -> list[Got]:
        return [
            g
            for g in self.received
            if g.path.startswith(f"{BASE}/{module}") and (method is None or g.method == method)
        ]

    # -- the server ---------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        # transport_and_format.md: "Authorization: Token <token>", the token as it is.
        return request.headers.get("Authorization") == f"Token {self.token_b}"

    def _reject(self, what: str, problems: list[str]) -> web.Response:
        self.invalid.append(f"{what}: {'; '.join(problems)}")
        body = envelope(None, status_code=2001, status_message="; ".join(problems)[:500])
        return web.Response(text=json_dumps(body), status=400, content_type="application/json")

    def app(self) -> web.Application:
        async def versions(request: web.Request) -> web.Response:
            if not self._authorized(request):
                return web.Response(status=401)
            return _ok([{"version": "2.1.1", "url": f"{self.url}{BASE}"}])

        async def details(request: web.Request) -> web.Response:
            if not self._authorized(request):
                return web.Response(status=401)
            endpoints = [{"identifier": m, "url": f"{self.url}{BASE}/{m}"} for m in MODULES]
            return _ok({"version": "2.1.1", "endpoints": endpoints})

        async def module(request: web.Request) -> web.StreamResponse:
            if not self._authorized(request):
                return web.Response(status=401)
            raw = await request.read()
            body = json_loads(raw) if raw else None
            mod = request.match_info["module"]
            parts = [p for p in request.match_info["rest"].split("/") if p]
            got = Got(request.method, request.path_qs, body, dict(request.headers))
            if mod == "locations" and request.method == "GET" and not parts:
                self.received.append(got)
                return self._page(request)
            if mod == "tokens" and len(parts) == 3:
                key = "*".join(parts)
                if request.method == "GET":
                    self.received.append(got)
                    return _ok(self.tokens.get(key))
                model = v211.Token if request.method == "PUT" else v211.TokenPatch
                problems = problems_211(model, body)
                if problems:
                    return self._reject(f"{request.method} {request.path}", problems)
                self.received.append(got)
                self.tokens[key] = (
                    body if request.method == "PUT" else self.tokens.get(key, {}) | body
                )
                return _ok()
            if mod == "commands" and request.method == "POST" and len(parts) == 1:
                model = _COMMANDS.get(parts[0])
                if model is None:
                    return self._reject(request.path, [f"no 2.1.1 command {parts[0]}"])
                problems = problems_211(model, body)
                if problems:
                    return self._reject(f"POST {request.path}", problems)
                self.received.append(got)
                if self.on_command is not None:
                    asyncio.get_running_loop().create_task(self.on_command(parts[0], body))
                # mod_commands 2.1.1: the CPO's answer is a CommandResponse.
                return _ok({"result": "ACCEPTED"})
            return web.Response(status=404, text="no such page")

        app = web.Application()
        app.router.add_get("/ocpi/cpo/versions", versions)
        app.router.add_get(BASE, details)
        app.router.add_route("*", BASE + "/{module}{rest:.*}", module)
        return app

    def _page(self, request: web.Request) -> web.Response:
        offset = int(request.query.get("offset", "0"))
        limit = min(int(request.query.get("limit", str(self.page_limit))), self.page_limit)
        page = self.locations[offset : offset + limit]
        headers = {"X-Total-Count": str(len(self.locations)), "X-Limit": str(self.page_limit)}
        if offset + len(page) < len(self.locations):
            nxt = request.url.update_query({"offset": str(offset + len(page)), "limit": str(limit)})
            headers["Link"] = f'<{nxt}>; rel="next"'
        return _ok(page, headers)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the client side ------------------------------------------------------------------

    async def call(
        self, method: str, url: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """A request with the token unencoded (2.1.1): (HTTP status, headers, JSON body)."""
        token = token or self.hub_token
        assert token is not None, "not registered"
        if self.rewrite is not None:
            url = url.replace(*self.rewrite)
        data = None if body is None else json_dumps(body).encode()
        headers = {"Authorization": f"Token {token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, url, data=data, headers=headers) as r,
        ):
            return r.status, dict(r.headers), json_loads(await r.read())

    async def register_with(self, versions_url: str, token_a: str) -> dict[str, Any]:
        """credentials.md: versions, version details, POST credentials with token A."""
        status, _, versions = await self.call("GET", versions_url, token=token_a)
        assert (status, versions["status_code"]) == (200, 1000), versions
        url = next(v["url"] for v in versions["data"] if v["version"] == "2.1.1")
        status, _, details = await self.call("GET", url, token=token_a)
        assert (status, details["status_code"]) == (200, 1000), details
        assert problems_211(v211.VersionDetails, details["data"]) == []
        self.hub_endpoints = {e["identifier"]: e["url"] for e in details["data"]["endpoints"]}
        status, _, answer = await self.call(
            "POST", self.hub_endpoints["credentials"], self.credentials(self.token_b), token=token_a
        )
        assert (status, answer["status_code"]) == (200, 1000), answer
        assert problems_211(v211.Credentials, answer["data"]) == []
        self.hub_credentials = answer["data"]
        self.hub_token = answer["data"]["token"]
        return dict(answer["data"])
