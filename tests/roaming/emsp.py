"""A real eMSP platform for tests: an aiohttp server speaking OCPI 2.2.1."""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ocpi.transport import envelope, json_dumps, json_loads


def token_header(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


def _ok(data: Any = None, status: int = 200) -> web.Response:
    return web.Response(text=json_dumps(envelope(data)), status=status, content_type="application/json")


@dataclass
class EmspPlatform:
    """Receives what a CPO pushes and hands out credentials like a real eMSP would."""

    country_code: str = "NL"
    party_id: str = "EMS"
    token_a: str = field(default_factory=lambda: "emsp-a-" + secrets.token_hex(8))
    token_b: str = field(default_factory=lambda: "emsp-b-" + secrets.token_hex(8))
    received: list[tuple[str, str, Any]] = field(default_factory=list)
    cpo_token: str | None = None  # what we use to call the CPO
    runner: web.AppRunner | None = None
    url: str = ""
    # Real-time authorization: uid -> "ALLOWED" / "BLOCKED" / ...; unknown uids NOT_ALLOWED.
    authorize: dict[str, str] = field(default_factory=dict)
    authorize_delay: float = 0.0
    authorize_requests: list[tuple[str, Any]] = field(default_factory=list)
    # (from country, from party, to country, to party) of each recorded push
    routing: list[tuple[str, ...]] = field(default_factory=list)
    # True: pushes are answered 503 and not recorded (an eMSP outage).
    outage: bool = False

    def token(self, uid: str, whitelist: str = "ALWAYS", valid: bool = True) -> dict[str, Any]:
        return {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "uid": uid,
            "type": "RFID",
            "contract_id": f"{self.country_code}-{self.party_id}-C{uid[-5:]}",
            "issuer": "Test eMSP",
            "valid": valid,
            "whitelist": whitelist,
            "last_updated": "2026-11-23T08:00:00Z",
        }

    def _authorized(self, request: web.Request, *tokens: str) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Token "):
            return False
        value = header[6:]
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except ValueError:
            decoded = value
        return decoded in tokens

    def credentials(self, token: str) -> dict[str, Any]:
        return {
            "token": token,
            "url": f"{self.url}/ocpi/versions",
            "roles": [
                {
                    "role": "EMSP",
                    "business_details": {"name": "Test eMSP"},
                    "party_id": self.party_id,
                    "country_code": self.country_code,
                }
            ],
        }

    def app(self) -> web.Application:
        app = web.Application()
        base = "/ocpi/2.2.1"

        async def versions(request: web.Request) -> web.Response:
            if not self._authorized(request, self.token_a, self.token_b):
                return web.Response(status=401)
            return _ok([{"version": "2.2.1", "url": f"{self.url}{base}"}])

        async def details(request: web.Request) -> web.Response:
            if not self._authorized(request, self.token_a, self.token_b):
                return web.Response(status=401)
            endpoints = [
                ("credentials", "SENDER"),
                ("credentials", "RECEIVER"),
                ("locations", "RECEIVER"),
                ("sessions", "RECEIVER"),
                ("cdrs", "RECEIVER"),
                ("tariffs", "RECEIVER"),
                ("tokens", "SENDER"),
                ("commands", "SENDER"),
            ]
            return _ok(
                {
                    "version": "2.2.1",
                    "endpoints": [
                        {"identifier": m, "role": r, "url": f"{self.url}{base}/{m}"} for m, r in endpoints
                    ],
                }
            )

        async def post_credentials(request: web.Request) -> web.Response:
            # The CPO registers with us using our token A.
            if not self._authorized(request, self.token_a):
                return web.Response(status=401)
            body = json_loads(await request.read())
            self.cpo_token = body["token"]
            return _ok(self.credentials(self.token_b))

        async def record(request: web.Request) -> web.Response:
            if not self._authorized(request, self.token_b):
                return web.Response(status=401)
            if self.outage:
                return web.Response(status=503)
            raw = await request.read()
            self.received.append((request.method, request.path, json_loads(raw) if raw else None))
            self.routing.append(
                tuple(request.headers.get(f"OCPI-{d}-{f}", "") for d in ("from", "to") for f in ("country-code", "party-id"))
            )
            return _ok(None)

        async def authorize(request: web.Request) -> web.Response:
            if not self._authorized(request, self.token_b):
                return web.Response(status=401)
            uid = request.match_info["uid"]
            raw = await request.read()
            self.authorize_requests.append((uid, json_loads(raw) if raw else None))
            if self.authorize_delay:
                await asyncio.sleep(self.authorize_delay)
            allowed = self.authorize.get(uid, "NOT_ALLOWED")
            return _ok({"allowed": allowed, "token": self.token(uid, "NEVER"), "authorization_reference": f"AUTH-{uid}"})

        app.router.add_post(f"{base}/tokens/{{uid}}/authorize", authorize)
        app.router.add_get("/ocpi/versions", versions)
        app.router.add_get(base, details)
        app.router.add_post(f"{base}/credentials", post_credentials)
        app.router.add_route("*", base + "/{module:(locations|sessions|cdrs|tariffs|commands)}{rest:.*}", record)
        return app

    async def start(self, port: int = 0) -> None:
        """Listen on ``port`` (0: any free one; a restart passes the previous port)."""
        self.runner = web.AppRunner(self.app())
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def pushes(self, module: str, method: str | None = None) -> list[tuple[str, str, Any]]:
        return [r for r in self.received if f"/{module}" in r[1] and (method is None or r[0] == method)]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
