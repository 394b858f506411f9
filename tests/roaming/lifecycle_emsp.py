"""An eMSP for the session lifecycle tests: a real aiohttp server (``ReferencingEmsp``)
that also

* answers each real-time authorization with a reference of its own (``RT-1``, ``RT-2``,
  ... in the order asked), as an eMSP that ties each authorization to a payment would;
* makes reservations (RESERVE_NOW with an ``authorization_reference``);
* holds sessions strictly, with ``strict_sessions``: a PATCH of a session it does not
  hold is refused (``unknown_answer``: HTTP 404 with OCPI 2001, or HTTP 200 with OCPI
  2003) and not recorded; ``forget_sessions`` loses every session it holds (a partner
  restored from an old backup).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from ocpi.transport import envelope, json_dumps, json_loads
from tests.roaming.emsp import token_header
from tests.roaming.referencing_emsp import ReferencingEmsp

BASE = "/ocpi/2.2.1"


@dataclass
class LifecycleEmsp(ReferencingEmsp):
    strict_sessions: bool = False
    unknown_answer: tuple[int, int] = (404, 2001)  # (HTTP status, OCPI status_code)
    held: dict[str, dict[str, Any]] = field(default_factory=dict)  # session id -> session
    refused: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    references: list[str] = field(default_factory=list)  # real-time references handed out

    def __post_init__(self) -> None:
        self._counter = itertools.count(1)

    def forget_sessions(self) -> None:
        self.held.clear()

    def app(self) -> web.Application:
        app = super().app()

        @web.middleware
        async def lifecycle(request: web.Request, handler: Handler) -> web.StreamResponse:
            path = request.path
            if request.method == "POST" and path.startswith(f"{BASE}/tokens/") and path.endswith("/authorize"):
                return await self._authorize(request)
            if path.startswith(f"{BASE}/sessions/") and self._authorized(request, self.token_b):
                session_id = path.rsplit("/", 1)[1]
                raw = await request.read()
                body = json_loads(raw) if raw else None
                if request.method == "PATCH" and self.strict_sessions and session_id not in self.held:
                    self.refused.append((request.method, path))
                    http, code = self.unknown_answer
                    text = json_dumps(envelope(None, status_code=code, status_message="Unknown session"))
                    return web.Response(text=text, status=http, content_type="application/json")
                if request.method == "PUT":
                    self.held[session_id] = dict(body)
                elif request.method == "PATCH":
                    self.held[session_id] = self.held[session_id] | dict(body)
            return await handler(request)

        app.middlewares.append(lifecycle)
        return app

    async def _authorize(self, request: web.Request) -> web.Response:
        if not self._authorized(request, self.token_b):
            return web.Response(status=401)
        uid = request.match_info.get("uid") or request.path.split("/")[-2]
        raw = await request.read()
        self.authorize_requests.append((uid, json_loads(raw) if raw else None))
        reference = f"RT-{next(self._counter)}"
        self.references.append(reference)
        data = {
            "allowed": self.authorize.get(uid, "NOT_ALLOWED"),
            "token": self.token(uid, "NEVER"),
            "authorization_reference": reference,
        }
        return web.Response(text=json_dumps(envelope(data)), content_type="application/json")

    async def reserve_now(
        self, cpo_url: str, location_id: str, evse_uid: str, uid: str, reservation_id: str, reference: str
    ) -> dict[str, Any]:
        """POST RESERVE_NOW to the CPO; its CommandResponse."""
        assert self.cpo_token is not None
        body = {
            "response_url": f"{self.url}/ocpi/2.2.1/commands/RESERVE_NOW/{reference}",
            "token": self.token(uid),
            "expiry_date": "2026-11-23T14:00:00Z",
            "reservation_id": reservation_id,
            "location_id": location_id,
            "evse_uid": evse_uid,
            "authorization_reference": reference,
        }
        async with aiohttp.ClientSession() as s, s.post(
            f"{cpo_url}/ocpi/2.2.1/commands/RESERVE_NOW", json=body, headers=token_header(self.cpo_token)
        ) as r:
            assert r.status == 200, await r.text()
            answer = json_loads(await r.read())
        assert answer["status_code"] == 1000, answer
        return dict(answer["data"])

    def session_puts(self, session_id: str) -> list[dict[str, Any]]:
        """Every session body PUT for ``session_id`` that it took, in order."""
        return [dict(b) for m, p, b in self.received if m == "PUT" and "/sessions/" in p and p.endswith(f"/{session_id}")]
