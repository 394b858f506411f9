"""The gateway's OCPI 2.2.1 servers: versions, version details and credentials.

Two URL spaces, each for the partners of one :class:`PartnerKind`: ``/ocpi`` for
bilateral peers (the gateway is their CPO; module routes from ``ocpi.server`` builders
with providers from this package) and ``/ocpi/hub`` for the platforms of the hub
(module routes from ``gateway.hub``). A token is only good in its own space.

Versions, version details and credentials are configuration modules: their requests
and responses carry no routing headers (transport_and_format, Message Routing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from gateway import logs
from gateway.roaming.partners import (
    OCPI_VERSION,
    PartnerKind,
    PartnerRegistry,
    RegistrationError,
    TokenMatch,
)
from ocpi.server import (
    configuration_module,
    ocpi_context,
    ocpi_middleware,
    ocpi_response,
    parse_body,
)
from ocpi.transport import UnableToUseClientApiError, UnauthorizedError
from ocpi.v221 import Credentials, Endpoint, Version, VersionDetails

REGISTRY = web.AppKey("ocpi_registry", PartnerRegistry)

# What a token A may reach: only what registration needs (credentials.asciidoc).
_REGISTRATION_PATHS = frozenset(
    {"/versions", f"/{OCPI_VERSION}", f"/{OCPI_VERSION}/", f"/{OCPI_VERSION}/credentials"}
)
# The token in our credentials POST, before the partner answered it: what the partner
# checks first (credentials.asciidoc, registration: it fetches our versions and
# endpoints with that token before it answers).
_PROVISIONAL_PATHS = frozenset({"/versions", f"/{OCPI_VERSION}", f"/{OCPI_VERSION}/"})


def _match(request: web.Request) -> TokenMatch:
    party = ocpi_context(request).party
    assert isinstance(party, TokenMatch)
    return party


def _registry(request: web.Request) -> PartnerRegistry:
    return request.config_dict[REGISTRY]


def build_ocpi_app(
    base_url: str,
    endpoints: Sequence[Endpoint],
    module_routes: Sequence[web.RouteDef] = (),
    *,
    kind: PartnerKind = PartnerKind.PEER,
    mount: str = "/ocpi",
    middlewares: Sequence[Any] = (),
) -> web.Application:
    """The OCPI app mounted at ``mount``, for the partners of ``kind``. ``endpoints``
    lists every module we serve (version details); ``module_routes`` are their routes,
    relative to ``{mount}/2.2.1``. The :class:`PartnerRegistry` is looked up at request
    time under :data:`REGISTRY` (the composition root opens it). ``middlewares`` run
    inside the OCPI one (the request is authenticated)."""
    details_url = f"{base_url}{mount}/{OCPI_VERSION}"

    async def resolve(token: str, request: web.Request) -> TokenMatch | None:
        match = _registry(request).match(token)
        if match is None or match.partner.kind is not kind:
            return None
        path = request.path.removeprefix(mount)
        if match.provisional and path not in _PROVISIONAL_PATHS:
            return None
        if match.registration and path not in _REGISTRATION_PATHS:
            return None
        logs.partner.set(match.partner.id)  # on this request's log lines (gateway.logs)
        return match

    async def versions(request: web.Request) -> web.Response:
        return ocpi_response([Version(version=OCPI_VERSION, url=details_url)])

    async def version_details(request: web.Request) -> web.Response:
        return ocpi_response(VersionDetails(version=OCPI_VERSION, endpoints=list(endpoints)))

    async def get_credentials(request: web.Request) -> web.Response:
        # The token in our credentials is the one the client uses to call us: the one
        # it just presented (only its hash is stored).
        match = _match(request)
        if match.token is None:
            raise UnauthorizedError("no credentials")
        return ocpi_response(_registry(request).our_credentials(match.token, kind))

    async def post_credentials(request: web.Request) -> web.Response:
        theirs = await parse_body(request, Credentials)
        try:
            ours = await _registry(request).accept_registration(_match(request), theirs)
        except RegistrationError as exc:
            raise UnableToUseClientApiError(str(exc)) from None
        return ocpi_response(ours)

    async def put_credentials(request: web.Request) -> web.Response:
        theirs = await parse_body(request, Credentials)
        try:
            ours = await _registry(request).update_registration(_match(request), theirs)
        except RegistrationError as exc:
            raise UnableToUseClientApiError(str(exc)) from None
        return ocpi_response(ours)

    async def delete_credentials(request: web.Request) -> web.Response:
        await _registry(request).unregister(_match(request))
        return ocpi_response(None)

    app = web.Application(
        middlewares=[ocpi_middleware(resolve, public_origin=base_url), *middlewares]
    )
    app.router.add_get("/versions", configuration_module(versions))
    app.router.add_get(f"/{OCPI_VERSION}", configuration_module(version_details))
    app.router.add_get(f"/{OCPI_VERSION}/", configuration_module(version_details))
    cred = f"/{OCPI_VERSION}/credentials"
    app.router.add_get(cred, configuration_module(get_credentials))
    app.router.add_post(cred, configuration_module(post_credentials))
    app.router.add_put(cred, configuration_module(put_credentials))
    app.router.add_delete(cred, configuration_module(delete_credentials))
    for route in module_routes:
        app.router.add_route(route.method, f"/{OCPI_VERSION}{route.path}", route.handler)
    return app
