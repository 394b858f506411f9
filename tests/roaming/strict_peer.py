"""A strict OCPI 2.2.1 partner for registration tests: a real aiohttp server that, on
receiving a credentials POST, first calls the sender's versions and version details
endpoints with the token in that POST, and answers the POST only if both succeed
(credentials.asciidoc, registration: the server checks the client's token and endpoints
before it answers). Works as a bilateral eMSP and as a platform on a hub."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

from ocpi.transport import envelope, json_dumps, json_loads

# Besides credentials: what the peer implements, as (module, role, path below 2.2.1).
EMSP_MODULES = [
    ("locations", "RECEIVER", "locations"),
    ("tariffs", "RECEIVER", "tariffs"),
    ("sessions", "RECEIVER", "sessions"),
    ("cdrs", "RECEIVER", "cdrs"),
    ("tokens", "SENDER", "tokens"),
    ("commands", "SENDER", "commands"),
    ("hubclientinfo", "RECEIVER", "clientinfo"),
]


def token_header(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


def presented_token(headers: Any) -> str | None:
    header = headers.get("Authorization", "")
    if not header.startswith("Token "):
        return None
    try:
        return base64.b64decode(header[6:], validate=True).decode()
    except ValueError:
        return str(header[6:])


def routing_headers_of(headers: Any) -> dict[str, str]:
    """The OCPI-from-* / OCPI-to-* headers in ``headers`` (case-insensitive)."""
    return {
        k: v for k, v in headers.items() if k.lower().startswith(("ocpi-from-", "ocpi-to-"))
    }


def _ok(data: Any = None, status: int = 200) -> web.Response:
    return web.Response(text=json_dumps(envelope(data)), status=status, content_type="application/json")


def _refuse(message: str) -> web.Response:
    body = {"status_code": 2000, "status_message": message, "timestamp": "2026-11-23T08:00:00Z"}
    return web.Response(text=json_dumps(body), status=400, content_type="application/json")


@dataclass
class Check:
    """One call the peer made to the registering party before answering its POST."""

    url: str
    status: int
    status_code: int | None
    routing_headers: dict[str, str]


@dataclass
class Received:
    method: str
    path: str
    token: str | None
    headers: CIMultiDictProxy[str]
    body: Any


@dataclass
class StrictPeer:
    name: str = "Strict eMSP"
    role: str = "EMSP"
    parties: list[tuple[str, str]] = field(default_factory=lambda: [("NL", "STR")])
    token_a: str = field(default_factory=lambda: "strict-a-" + secrets.token_hex(16))
    token_b: str = field(default_factory=lambda: "strict-b-" + secrets.token_hex(16))
    # Answer the POST with an error even when the checks succeed (the registration fails
    # at the last step).
    refuse_post: bool = False
    url: str = ""
    runner: web.AppRunner | None = None
    # What the registering party gave us in its POST (the token we call it with).
    their_token: str | None = None
    checks: list[Check] = field(default_factory=list)
    # A call outside the versions module made with the token before answering the POST:
    # (url, HTTP status).
    early_call: tuple[str, int] | None = None
    posts: list[Received] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    discovery: list[Received] = field(default_factory=list)

    def credentials(self) -> dict[str, Any]:
        return {
            "token": self.token_b,
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

    def app(self) -> web.Application:
        app = web.Application()
        base = "/ocpi/2.2.1"

        def known(request: web.Request, *tokens: str | None) -> bool:
            token = presented_token(request.headers)
            return token is not None and token in tokens

        async def versions(request: web.Request) -> web.Response:
            self.discovery.append(Received(request.method, request.path, presented_token(request.headers), request.headers, None))
            if not known(request, self.token_a, self.token_b):
                return web.Response(status=401)
            return _ok([{"version": "2.2.1", "url": f"{self.url}{base}"}])

        async def details(request: web.Request) -> web.Response:
            self.discovery.append(Received(request.method, request.path, presented_token(request.headers), request.headers, None))
            if not known(request, self.token_a, self.token_b):
                return web.Response(status=401)
            endpoints = [
                {"identifier": "credentials", "role": role, "url": f"{self.url}{base}/credentials"}
                for role in ("SENDER", "RECEIVER")
            ] + [
                {"identifier": module, "role": role, "url": f"{self.url}{base}/{path}"}
                for module, role, path in EMSP_MODULES
            ]
            return _ok({"version": "2.2.1", "endpoints": endpoints})

        async def post_credentials(request: web.Request) -> web.Response:
            token = presented_token(request.headers)
            body = json_loads(await request.read())
            self.posts.append(Received(request.method, request.path, token, request.headers, body))
            if token != self.token_a:
                return web.Response(status=401)
            if not await self._check_sender(body["url"], body["token"]):
                return _refuse("your versions or version details did not answer with your token")
            if self.refuse_post:
                return _refuse("refused for the test")
            self.their_token = body["token"]
            return _ok(self.credentials())

        async def module(request: web.Request) -> web.Response:
            raw = await request.read()
            token = presented_token(request.headers)
            if token != self.token_b:
                return web.Response(status=401)
            self.received.append(Received(request.method, request.path, token, request.headers, json_loads(raw) if raw else None))
            return _ok(None, 201 if request.method == "PUT" else 200)

        app.router.add_get("/ocpi/versions", versions)
        app.router.add_get(base, details)
        app.router.add_post(f"{base}/credentials", post_credentials)
        app.router.add_route("*", base + "/{module:(locations|tariffs|sessions|cdrs|tokens|commands|clientinfo)}{rest:.*}", module)
        return app

    async def _check_sender(self, versions_url: str, token: str) -> bool:
        """GET the sender's versions, then its 2.2.1 details, with ``token``; then try one
        module outside registration (recorded, not required)."""
        headers = token_header(token)
        async with aiohttp.ClientSession() as s:
            async with s.get(versions_url, headers=headers) as r:
                data = await _json(r)
                self.checks.append(Check(versions_url, r.status, data.get("status_code"), routing_headers_of(r.headers)))
                if r.status != 200 or data.get("status_code") != 1000:
                    return False
            details_url = next(v["url"] for v in data["data"] if v["version"] == "2.2.1")
            async with s.get(details_url, headers=headers) as r:
                data = await _json(r)
                self.checks.append(Check(details_url, r.status, data.get("status_code"), routing_headers_of(r.headers)))
                if r.status != 200 or data.get("status_code") != 1000:
                    return False
            other = next(
                e["url"] for e in data["data"]["endpoints"] if e["identifier"] not in ("credentials",)
            )
            async with s.get(other, headers=headers) as r:
                self.early_call = (other, r.status)
        return True

    async def start(self, port: int = 0) -> None:
        self.runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def got(self, path_part: str, method: str | None = None) -> list[Received]:
        return [r for r in self.received if path_part in r.path and (method is None or r.method == method)]


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = json_loads(await response.read())
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
