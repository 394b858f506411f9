"""Admin API for roaming partners: create (token A), register at a partner, list, delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field, HttpUrl

from gateway.admin.http import ApiError, read_body, respond
from gateway.admin.schemas import _Body
from gateway.roaming.partners import (
    Partner,
    PartnerKind,
    PartnerRegistry,
    PartnerStatus,
    RegistrationError,
)
from gateway.roaming.server import REGISTRY
from ocpi.transport import MethodNotAllowedError, UnsupportedVersionError


class PartnerBody(_Body):
    name: str = Field(min_length=1, max_length=100)
    kind: PartnerKind = Field(
        default=PartnerKind.PEER,
        description="PEER: bilateral (the gateway is its CPO); HUB: a platform on the hub",
    )


class RegisterBody(_Body):
    versions_url: HttpUrl
    token: str = Field(min_length=1, max_length=64, description="the partner's token A")


def partner_view(p: Partner, registry: PartnerRegistry) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "kind": p.kind.value,
        "status": p.status.value,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "versions_url": p.versions_url,
        "version": p.version,
        "parties": [
            {key: r.get(key) for key in ("country_code", "party_id", "role")} for r in p.roles
        ],
        "endpoints": [{"module": e.module, "role": e.role, "url": e.url} for e in p.endpoints],
    }
    if p.status is PartnerStatus.PENDING:
        # What the operator hands the partner, out of band, to register with us (with
        # the token A, which only the answer to the creation shows: just its hash is kept).
        view["our_versions_url"] = registry.identity_for(p.kind).versions_url
    return view


def partner_routes() -> list[web.RouteDef]:
    def _registry(request: web.Request) -> PartnerRegistry:
        return request.config_dict[REGISTRY]

    def _get(request: web.Request) -> Partner:
        partner = _registry(request).get(request.match_info["partner_id"])
        if partner is None:
            raise ApiError(404, f"partner {request.match_info['partner_id']!r} not found")
        return partner

    async def create(request: web.Request) -> web.Response:
        b: PartnerBody = await read_body(request, PartnerBody)
        registry = _registry(request)
        try:
            partner, token_a = await registry.create(b.name, b.kind)
        except RegistrationError as exc:
            raise ApiError(409, str(exc), "kind") from None
        return respond(partner_view(partner, registry) | {"token_a": token_a}, 201)

    async def list_all(request: web.Request) -> web.Response:
        registry = _registry(request)
        return respond([partner_view(p, registry) for p in registry.all()])

    async def get_one(request: web.Request) -> web.Response:
        return respond(partner_view(_get(request), _registry(request)))

    async def delete(request: web.Request) -> web.Response:
        partner = _get(request)
        await _registry(request).delete(partner.id)
        return web.Response(status=204)

    async def register(request: web.Request) -> web.Response:
        partner = _get(request)
        b: RegisterBody = await read_body(request, RegisterBody)
        registry = _registry(request)
        try:
            registered = await registry.register_at(partner.id, str(b.versions_url), b.token)
        except MethodNotAllowedError as exc:
            raise ApiError(409, str(exc)) from None
        except UnsupportedVersionError as exc:
            raise ApiError(422, str(exc)) from None
        except RegistrationError as exc:
            raise ApiError(502, f"registration failed: {exc}") from None
        return respond(partner_view(registered, registry))

    return [
        web.post("/partners", create),
        web.get("/partners", list_all),
        web.get("/partners/{partner_id}", get_one),
        web.delete("/partners/{partner_id}", delete),
        web.post("/partners/{partner_id}/register", register),
    ]
