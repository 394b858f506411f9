"""A recording eMSP receiver that speaks OCPI 2.1.1 or 2.3.0, for the outbound tests.

What the gateway as CPO sends it (locations, tariffs, sessions, CDRs, command results,
real-time authorization) is recorded and checked against that version's definitions:

* 2.1.1: the :mod:`ocpi.v211` models (written field by field from the 2.1.1
  specification), with no field the 2.1.1 object does not have (the models ignore
  unknown fields, so they are looked for here: a 2.2.1 ``country_code`` in a 2.1.1
  Location would otherwise pass).
* 2.3.0: the official 2.3.0 OpenAPI schemas (``tests/ocpi/openapi.py``), and the
  :mod:`ocpi.v230` models with no unknown field.

A body that does not validate is answered with OCPI status 2001 (so the gateway's
outbox fails it visibly too) and listed in :attr:`VersionedEmsp.errors`.

The partner is put in the gateway's registry directly (:func:`register_directly`):
REGISTERED in this version, with these endpoints.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

import ocpi.v211 as v211
import ocpi.v230 as v230
from gateway.roaming.partners import PartnerEndpoint, PartnerStatus
from gateway.roaming.server import REGISTRY
from gateway.roaming.vault import hash_token
from ocpi.transport import envelope, format_validation_error, json_dumps, json_loads
from tests.conftest import Gateway
from tests.ocpi.openapi import openapi_errors

# (module, method, number of path segments after the endpoint) -> the object's name
OBJECTS = {
    ("locations", "PUT", 3): "Location",
    ("locations", "PUT", 4): "EVSE",
    ("locations", "PUT", 5): "Connector",
    ("locations", "PATCH", 3): "LocationPatch",
    ("locations", "PATCH", 4): "EVSEPatch",
    ("locations", "PATCH", 5): "ConnectorPatch",
    ("sessions", "PUT", 3): "Session",
    ("sessions", "PATCH", 3): "SessionPatch",
    ("tariffs", "PUT", 3): "Tariff",
    ("cdrs", "POST", 0): "CDR",
}
_MODULES = {"2.1.1": v211, "2.3.0": v230}


def unknown_fields(obj: Any, raw: Any, path: str = "") -> list[str]:
    """Paths of the fields in ``raw`` that the validated ``obj`` has no field for."""
    if isinstance(obj, BaseModel) and isinstance(raw, dict):
        fields = type(obj).model_fields
        found: list[str] = []
        for key, value in raw.items():
            where = f"{path}.{key}" if path else key
            if key not in fields:
                found.append(where)
            else:
                found += unknown_fields(getattr(obj, key), value, where)
        return found
    if isinstance(obj, list) and isinstance(raw, list):
        return [p for i, (o, r) in enumerate(zip(obj, raw, strict=False)) for p in unknown_fields(o, r, f"{path}[{i}]")]
    return []


def check(version: str, module: str, name: str, body: Any) -> list[str]:
    """Why ``body`` is not a ``name`` of ``version`` (empty when it is)."""
    model = getattr(_MODULES[version], name)
    try:
        obj = model.model_validate(body)
    except ValidationError as exc:
        return [f"{name}: {format_validation_error(exc)}"]
    problems = [f"{name}: unknown field {p}" for p in unknown_fields(obj, body)]
    if version == "2.3.0":
        problems += [f"{name} (OpenAPI): {e}" for e in openapi_errors(module, name, body, version="2.3.0")]
    return problems


@dataclass
class VersionedEmsp:
    version: str
    country_code: str = "DE"
    party_id: str = "OLD"
    token: str = field(default_factory=lambda: "emsp-" + secrets.token_hex(8))  # the CPO calls us with it
    received: list[tuple[str, str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    authorize: dict[str, str] = field(default_factory=dict)  # uid -> AllowedType
    authorize_requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)  # served on GET tokens
    # True: every PATCH is answered "unknown object" (HTTP 404, OCPI 2003), as by an
    # eMSP that lost what it was sent.
    forget: bool = False
    runner: web.AppRunner | None = None
    url: str = ""

    @property
    def base(self) -> str:
        return f"/ocpi/emsp/{self.version}"

    def endpoints(self) -> tuple[PartnerEndpoint, ...]:
        modules = [("locations", "RECEIVER"), ("sessions", "RECEIVER"), ("cdrs", "RECEIVER"), ("tariffs", "RECEIVER"), ("tokens", "SENDER"), ("commands", "SENDER")]
        return tuple(PartnerEndpoint(m, r, f"{self.url}{self.base}/{m}") for m, r in modules)

    def roles(self) -> tuple[dict[str, Any], ...]:
        return ({"role": "EMSP", "business_details": {"name": f"eMSP {self.version}"}, "country_code": self.country_code, "party_id": self.party_id},)

    def token_object(self, uid: str, whitelist: str = "ALWAYS", valid: bool = True) -> dict[str, Any]:
        """A Token of ours in this version's shape."""
        if self.version == "2.1.1":
            return {"uid": uid, "type": "RFID", "auth_id": f"{self.country_code}-{self.party_id}-C{uid[-5:]}", "issuer": "eMSP 2.1.1", "valid": valid, "whitelist": whitelist, "last_updated": "2026-11-23T08:00:00Z"}
        return {
            "country_code": self.country_code, "party_id": self.party_id, "uid": uid, "type": "RFID",
            "contract_id": f"{self.country_code}-{self.party_id}-C{uid[-5:]}", "issuer": f"eMSP {self.version}",
            "valid": valid, "whitelist": whitelist, "last_updated": "2026-11-23T08:00:00Z",
        }

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Token "):
            return False
        value = header[6:]
        if self.version == "2.1.1":
            return value == self.token  # 2.1.1: the token as it is
        try:  # 2.2 and later: Base64-encoded
            return base64.b64decode(value, validate=True).decode() == self.token
        except ValueError:
            return False

    def _reject(self, problems: list[str]) -> web.Response:
        self.errors += problems
        return web.Response(text=json_dumps(envelope(None, status_code=2001, status_message="; ".join(problems))), status=400, content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application()

        async def record(request: web.Request) -> web.Response:
            if not self._authorized(request):
                return web.Response(status=401)
            module = request.match_info["module"]
            rest = [s for s in request.match_info["rest"].split("/") if s]
            raw = await request.read()
            body = json_loads(raw) if raw else None
            self.received.append((request.method, request.path, body))
            self.headers.append(dict(request.headers))
            if module == "commands":  # a command result at the response_url
                name = "CommandResponse" if self.version == "2.1.1" else "CommandResult"
            else:
                name = OBJECTS.get((module, request.method, len(rest)), "")
            if name and body is not None:
                problems = check(self.version, module, name, body)
                if problems:
                    return self._reject([f"{request.method} {request.path}: {p}" for p in problems])
            if self.forget and request.method == "PATCH":
                unknown = envelope(None, status_code=2003, status_message="Unknown object")
                return web.Response(text=json_dumps(unknown), status=404, content_type="application/json")
            return web.Response(text=json_dumps(envelope(None)), content_type="application/json")

        async def authorize(request: web.Request) -> web.Response:
            if not self._authorized(request):
                return web.Response(status=401)
            uid = request.match_info["uid"]
            raw = await request.read()
            body = json_loads(raw) if raw else None
            self.authorize_requests.append((uid, dict(request.query), body))
            self.headers.append(dict(request.headers))
            if body is not None:
                problems = check(self.version, "tokens", "LocationReferences", body)
                if problems:
                    return self._reject(problems)
            allowed = self.authorize.get(uid, "NOT_ALLOWED")
            if self.version == "2.1.1":
                data: dict[str, Any] = {"allowed": allowed}  # mod_tokens 2.1.1 AuthorizationInfo
                if body is not None:
                    data["location"] = body
            else:
                token = {
                    "country_code": self.country_code, "party_id": self.party_id, "uid": uid, "type": "RFID",
                    "contract_id": f"{self.country_code}-{self.party_id}-C{uid[-5:]}", "issuer": "eMSP 2.3.0",
                    "valid": True, "whitelist": "NEVER", "last_updated": "2026-11-23T08:00:00Z",
                }
                data = {"allowed": allowed, "token": token, "authorization_reference": f"AUTH-{uid}"}
            return web.Response(text=json_dumps(envelope(data)), content_type="application/json")

        async def tokens(request: web.Request) -> web.Response:
            # mod_tokens Sender GET: paginated (offset/limit, Link to the next page).
            if not self._authorized(request):
                return web.Response(status=401)
            offset = int(request.query.get("offset", "0"))
            limit = min(int(request.query.get("limit", "2")), 2)
            page = self.tokens[offset : offset + limit]
            headers = {"X-Total-Count": str(len(self.tokens)), "X-Limit": "2"}
            if offset + limit < len(self.tokens):
                headers["Link"] = f'<{self.url}{self.base}/tokens?offset={offset + limit}&limit={limit}>; rel="next"'
            self.received.append(("GET", request.path_qs, None))
            return web.Response(text=json_dumps(envelope(page)), headers=headers, content_type="application/json")

        app.router.add_get(f"{self.base}/tokens", tokens)
        app.router.add_post(f"{self.base}/tokens/{{uid}}/authorize", authorize)
        app.router.add_route("*", self.base + "/{module:(locations|sessions|cdrs|tariffs|commands)}{rest:.*}", record)
        return app

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app())
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def pushes(self, module: str, method: str | None = None) -> list[tuple[str, str, Any]]:
        return [r for r in self.received if f"/{module}" in r[1] and (method is None or r[0] == method)]

    def routing_headers(self) -> set[str]:
        """The OCPI-from/to-* header names any request to us carried."""
        return {k for h in self.headers for k in h if re.match(r"(?i)ocpi-(from|to)-", k)}


async def register_directly(gateway: Gateway, emsp: VersionedEmsp) -> str:
    """The partner REGISTERED in ``emsp.version`` straight in the registry (the handshake
    in each version is the inbound side's): token, endpoints, party and version set."""
    registry = gateway.app[REGISTRY]
    partner, _ = await registry.create(f"eMSP {emsp.version}")
    ours = "cpo-" + secrets.token_hex(8)
    registered = replace(
        partner,
        status=PartnerStatus.REGISTERED,
        token_a_hash=None,
        our_token_hash=hash_token(ours),
        their_token=emsp.token,
        versions_url=f"{emsp.url}/ocpi/emsp/versions",
        version=emsp.version,
        endpoints=emsp.endpoints(),
        roles=emsp.roles(),
    )
    await registry._save(registered)
    return partner.id
