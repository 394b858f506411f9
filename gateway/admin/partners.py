"""Admin API for roaming partners: create (token A), register at a partner, list, change a
hub platform's settings, delete, and pull an eMSP's tokens (in the version it registered
in)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import AwareDatetime, Field, HttpUrl

from gateway.admin import openapi as api
from gateway.admin.http import ApiError, read_body, respond
from gateway.admin.schemas import _Body
from gateway.admin.views import PartnerView
from gateway.keys import STORE
from gateway.locallist.service import LOCAL_LISTS
from gateway.roaming.partners import (
    Partner,
    PartnerKind,
    PartnerRegistry,
    PartnerStatus,
    RegistrationError,
    default_time_zone_problem,
)
from gateway.roaming.server import REGISTRY
from gateway.roaming.tokens import TokenPuller
from ocpi.client import OcpiClientError
from ocpi.transport import MethodNotAllowedError, UnsupportedVersionError
from ocpi.v221 import Role

_TIME_ZONE = (
    "kind HUB only: the IANA time zone (such as Europe/Amsterdam) of the Locations its 2.1.1"
    " party sends without one (2.1.1 makes time_zone optional; 2.2.1 and 2.3.0 require it)."
    " null: such a Location is refused (2001 naming time_zone)"
)


class PartnerBody(_Body):
    name: str = Field(min_length=1, max_length=100)
    kind: PartnerKind = Field(
        default=PartnerKind.PEER,
        description="PEER: bilateral (the gateway is its CPO); HUB: a platform on the hub",
    )
    role: Literal["CPO", "EMSP"] = Field(
        default="EMSP",
        description="what its party is if it registers in OCPI 2.1.1, whose credentials"
        " name no role: CPO for a 2.1.1 CPO platform on the hub (kind HUB only); EMSP"
        " otherwise. Platforms of later versions say their roles themselves",
    )
    default_time_zone: str | None = Field(
        default=None,
        max_length=255,
        description=_TIME_ZONE,
    )


class PartnerSettingsBody(_Body):
    default_time_zone: str | None = Field(max_length=255, description=_TIME_ZONE)


class RegisterBody(_Body):
    versions_url: HttpUrl
    token: str = Field(min_length=1, max_length=64, description="the partner's token A")


class TokenPullBody(_Body):
    date_from: AwareDatetime | None = Field(
        default=None, description="only the tokens updated since (all when absent)"
    )


class TokenPullView(_Body):
    partner_id: str
    kept: int = Field(description="tokens stored (new or updated)")


def _check_time_zone(kind: PartnerKind, zone: str | None) -> None:
    # A creation's 422 naming the field (the registry's own check is the 409 of a kind
    # it cannot add).
    problem = default_time_zone_problem(kind, zone)
    if problem is not None:
        raise ApiError(422, problem, "default_time_zone")


def partner_view(p: Partner, registry: PartnerRegistry) -> PartnerView:
    view: PartnerView = {
        "id": p.id,
        "name": p.name,
        "kind": p.kind,
        "status": p.status,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "versions_url": p.versions_url,
        "version": p.version,
        "parties": [
            {
                "country_code": r.get("country_code"),
                "party_id": r.get("party_id"),
                "role": r.get("role"),
            }
            for r in p.roles
        ],
        "endpoints": [{"module": e.module, "role": e.role, "url": e.url} for e in p.endpoints],
        "default_time_zone": p.default_time_zone,
    }
    if p.status is PartnerStatus.PENDING:
        # What the operator hands the partner, out of band, to register with us (with
        # the token A, which only the answer to the creation shows: just its hash is kept).
        view["our_versions_url"] = registry.identity_for(p.kind).versions_url
    return view


def partner_routes() -> list[api.Operation]:
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
        if b.role != Role.EMSP and b.kind is not PartnerKind.HUB:
            raise ApiError(422, "role: a bilateral partner of the CPO gateway is an eMSP", "role")
        _check_time_zone(b.kind, b.default_time_zone)
        try:
            partner, token_a = await registry.create(
                b.name, b.kind, Role(b.role), default_time_zone=b.default_time_zone
            )
        except RegistrationError as exc:
            raise ApiError(409, str(exc), "kind") from None
        view = partner_view(partner, registry)
        view["token_a"] = token_a
        return respond(view, 201)

    async def list_all(request: web.Request) -> web.Response:
        registry = _registry(request)
        return respond([partner_view(p, registry) for p in registry.all()])

    async def get_one(request: web.Request) -> web.Response:
        return respond(partner_view(_get(request), _registry(request)))

    async def change(request: web.Request) -> web.Response:
        partner = _get(request)
        b: PartnerSettingsBody = await read_body(request, PartnerSettingsBody)
        registry = _registry(request)
        try:
            changed = await registry.set_default_time_zone(partner.id, b.default_time_zone)
        except KeyError:  # deleted meanwhile
            raise ApiError(404, f"partner {partner.id!r} not found") from None
        except RegistrationError as exc:
            raise ApiError(422, str(exc), "default_time_zone") from None
        return respond(partner_view(changed, registry))

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

    async def pull_tokens(request: web.Request) -> web.Response:
        partner = _get(request)
        if partner.status is not PartnerStatus.REGISTERED:
            raise ApiError(409, f"partner {partner.id!r} is not registered")
        if partner.endpoint("tokens", "SENDER") is None:
            raise ApiError(409, f"partner {partner.id!r} has no Tokens Sender interface")
        b: TokenPullBody = (
            await read_body(request, TokenPullBody) if request.body_exists else TokenPullBody()
        )
        lists = request.config_dict.get(LOCAL_LISTS)
        puller = TokenPuller(
            request.config_dict[STORE],
            _registry(request),
            on_change=None if lists is None else lists.token_changed,
        )
        date_from: datetime | None = b.date_from
        try:
            kept = await puller.pull(partner.id, date_from=date_from)
        except OcpiClientError as exc:
            raise ApiError(502, f"the partner's tokens could not be read: {exc}") from None
        return respond({"partner_id": partner.id, "kept": kept})

    partner = {"partner_id": "the partner's id, as its creation answered"}
    return [
        api.post(
            "/partners",
            create,
            "Create a partner: the answer holds its token A (shown this once)",
            body=PartnerBody,
            response=PartnerView,
            statuses={201: "created"},
            errors={
                409: "a partner of this kind cannot be added (`field`: kind)",
                422: "role CPO for a PEER partner (`field`: role); default_time_zone not an"
                " IANA time zone, or given for a PEER partner (`field`: default_time_zone)",
            },
        ),
        api.get("/partners", list_all, "Every partner", response=list[PartnerView]),
        api.get(
            "/partners/{partner_id}",
            get_one,
            "One partner",
            path_params=partner,
            response=PartnerView,
            errors={404: "no such partner"},
        ),
        api.patch(
            "/partners/{partner_id}",
            change,
            "Change a hub platform's settings: the time zone of its 2.1.1 Locations that"
            " name none (null: none)",
            path_params=partner,
            body=PartnerSettingsBody,
            response=PartnerView,
            errors={
                404: "no such partner",
                422: "not an IANA time zone, or the partner is not a hub platform"
                " (`field`: default_time_zone)",
            },
        ),
        api.delete(
            "/partners/{partner_id}",
            delete,
            "Forget a partner",
            path_params=partner,
            statuses={204: "deleted"},
            errors={404: "no such partner"},
        ),
        api.post(
            "/partners/{partner_id}/register",
            register,
            "Register at a partner with its versions URL and token A (credentials handshake)",
            path_params=partner,
            body=RegisterBody,
            response=PartnerView,
            errors={
                404: "no such partner",
                409: "the partner refused the method",
                422: "no OCPI version in common",
                502: "the registration failed at the partner",
            },
        ),
        api.post(
            "/partners/{partner_id}/tokens/pull",
            pull_tokens,
            "Fetch an eMSP's tokens (GET on its Tokens Sender interface, in its OCPI"
            " version, paginated) and keep them as if pushed",
            path_params=partner,
            body=TokenPullBody,
            body_required=False,
            response=TokenPullView,
            errors={
                404: "no such partner",
                409: "the partner is not registered or has no Tokens Sender interface",
                502: "the partner failed to answer",
            },
        ),
    ]
