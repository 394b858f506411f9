"""The gateway's OCPI servers: versions, version details and credentials, in OCPI 2.1.1,
2.2.1 and 2.3.0, and each version's module routes.

Two URL spaces, each for the partners of one :class:`PartnerKind`: ``/ocpi`` for
bilateral peers (the gateway is their CPO; module routes from ``ocpi.server`` builders
with providers from this package, and for 2.1.1 and 2.3.0 from
:mod:`ocpi.version_adapters` over the same providers) and ``/ocpi/hub`` for the
platforms of the hub (module routes from ``gateway.hub``). A token is only good in its
own space.

Every version is listed at ``{mount}/versions``, with its details at ``{mount}/{version}``
and its credentials at ``{mount}/{version}/credentials``: a partner registers in the
version whose credentials it POSTs to, and switches by a PUT on another version's
(:mod:`gateway.roaming.partners`). A registered partner is served in its version only:
a module URL of another version is answered with status 3002 (Unsupported version),
HTTP 200; the versions, every version's details and credentials stay open to it (that is
how it changes version).

Versions, version details and credentials are configuration modules: their requests
and responses carry no routing headers (transport_and_format, Message Routing).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import BaseModel

import ocpi.v230 as v230
from gateway import logs
from gateway.roaming.partners import (
    OCPI_VERSION,
    PartnerKind,
    PartnerRegistry,
    RegistrationError,
    TokenMatch,
    credentials_in,
    credentials_model,
    partner_of,
)
from ocpi.server import (
    OcpiRequestContext,
    Operation,
    configuration_module,
    ocpi_context,
    ocpi_middleware,
    ocpi_response,
    operation_routes,
    parse_body,
)
from ocpi.transport import (
    InvalidParametersError,
    ServerError,
    UnableToUseClientApiError,
    UnauthorizedError,
    UnsupportedVersionError,
)
from ocpi.v221 import Endpoint, Version, VersionDetails
from ocpi.v221.enums import InterfaceRole
from ocpi.versions import SUPPORTED_VERSIONS, NotExpressible, version_key
from ocpi.versions import v211 as conv211

REGISTRY = web.AppKey("ocpi_registry", PartnerRegistry)

# The interface the CPO serves of each module (2.2.1 version details); 2.1.1 drops it.
CPO_INTERFACES: Mapping[str, InterfaceRole] = {
    "locations": InterfaceRole.SENDER,
    "tariffs": InterfaceRole.SENDER,
    "sessions": InterfaceRole.SENDER,
    "cdrs": InterfaceRole.SENDER,
    "tokens": InterfaceRole.RECEIVER,
    "commands": InterfaceRole.RECEIVER,
    "chargingprofiles": InterfaceRole.RECEIVER,
    "payments": InterfaceRole.RECEIVER,  # 2.3.0 only (gateway.roaming.payments)
}


@dataclass(frozen=True, slots=True)
class ServedVersion:
    """One OCPI version of a URL space: its endpoints for the version details, in the
    internal (2.2.1) form with their full URLs (credentials included), and its module
    routes, relative to ``{mount}/{version}``."""

    version: str
    endpoints: Sequence[Endpoint]
    routes: Sequence[web.RouteDef] = field(default=())


def credentials_endpoints(version_url: str) -> list[Endpoint]:
    """The credentials module (both interfaces, as 2.2.1 lists it) of a version."""
    url = f"{version_url}/credentials"
    return [
        Endpoint(identifier="credentials", role=InterfaceRole.SENDER, url=url),
        Endpoint(identifier="credentials", role=InterfaceRole.RECEIVER, url=url),
    ]


def cpo_version(
    version_url: str, version: str, operations: Mapping[str, Sequence[Operation]]
) -> ServedVersion:
    """A version of the CPO interface: ``operations`` by module identifier (each served
    below ``/{module}``)."""
    endpoints = credentials_endpoints(version_url) + [
        Endpoint(identifier=module, role=CPO_INTERFACES[module], url=f"{version_url}/{module}")
        for module in operations
    ]
    routes = [
        route
        for module, ops in operations.items()
        for route in operation_routes(ops, prefix=f"/{module}")
    ]
    return ServedVersion(version, endpoints, routes)


def emsp_party(context: OcpiRequestContext) -> tuple[str, str]:
    """``(country_code, party_id)`` of the eMSP a request comes from: its first EMSP
    party (a 2.1.1 partner has one), else its first party."""
    partner = partner_of(context.party)
    parties = partner.parties("EMSP") or partner.parties()
    if not parties:
        raise InvalidParametersError("the partner has no party to act for")
    return parties[0]


def version_details(version: str, endpoints: Sequence[Endpoint]) -> BaseModel:
    """The version details object of ``version`` (2.1.1: one endpoint per module, no
    role; 2.3.0: as 2.2.1)."""
    internal = VersionDetails(version=version, endpoints=list(endpoints))
    if version == "2.1.1":
        return conv211.version_details_to_v211(internal)
    if version == "2.3.0":
        return v230.VersionDetails.model_validate(internal.to_wire())
    return internal


_T = TypeVar("_T")


def _match(request: web.Request) -> TokenMatch:
    party = ocpi_context(request).party
    assert isinstance(party, TokenMatch)
    return party


def _registry(request: web.Request) -> PartnerRegistry:
    return request.config_dict[REGISTRY]


class KeptValue(Generic[_T]):
    """The value under ``key`` in a request's applications, found at the first request
    that has it and then kept: for what the composition root opens once at start-up and
    a URL space reads at every request (``config_dict`` chains the applications' mappings
    anew at each lookup). One per application."""

    __slots__ = ("_key", "_value")

    def __init__(self, key: web.AppKey[_T]) -> None:
        self._key = key
        self._value: _T | None = None

    def get(self, request: web.Request) -> _T | None:
        value = self._value
        if value is None:
            value = self._value = request.config_dict.get(self._key)
        return value

    def __call__(self, request: web.Request) -> _T:
        value = self.get(request)
        if value is None:
            raise KeyError(self._key)  # not opened: a server error, as a lookup's
        return value


# Request paths whose part below the mount build_ocpi_app's checks keep.
_PATHS_KEPT = 1024


def build_ocpi_app(
    base_url: str,
    endpoints: Sequence[Endpoint],
    module_routes: Sequence[web.RouteDef] = (),
    *,
    kind: PartnerKind = PartnerKind.PEER,
    mount: str = "/ocpi",
    authenticated: Callable[[web.Request, TokenMatch], None] | None = None,
    versions: Sequence[ServedVersion] = (),
) -> web.Application:
    """The OCPI app mounted at ``mount``, for the partners of ``kind``. ``endpoints``
    lists every 2.2.1 module we serve (version details); ``module_routes`` are their
    routes, relative to ``{mount}/2.2.1``. ``versions`` adds other versions (2.1.1,
    2.3.0); without them only 2.2.1 is served. The :class:`PartnerRegistry` is looked
    up under :data:`REGISTRY` at the first request (the composition root opens it at
    start-up) and kept. ``authenticated`` is called with each request of a registered
    partner that passed every check, just before its handler (what a middleware after
    the OCPI one would do, without a layer of its own on every request)."""
    served: dict[str, ServedVersion] = {
        OCPI_VERSION: ServedVersion(OCPI_VERSION, endpoints, module_routes)
    }
    served.update({v.version: v for v in versions})
    unknown = set(served) - set(SUPPORTED_VERSIONS)
    if unknown:
        raise ValueError(f"no OCPI {', '.join(sorted(unknown))} here")
    order = sorted(served, key=version_key)
    # What a token A may reach: only what registration needs (credentials.asciidoc).
    # The token in our credentials POST, before the partner answered it: what the
    # partner checks first (it fetches our versions and endpoints with that token).
    provisional_paths = {"/versions"} | {f"/{v}{tail}" for v in served for tail in ("", "/")}
    registration_paths = provisional_paths | {f"/{v}/credentials" for v in served}

    # Each path's part below the mount and its segments (the version guard's), kept:
    # bounded, emptied when full.
    relative: dict[str, tuple[str, tuple[str, ...]]] = {}

    def below_mount(path: str) -> tuple[str, tuple[str, ...]]:
        found = relative.get(path)
        if found is None:
            if len(relative) >= _PATHS_KEPT:
                relative.clear()
            rest = path.removeprefix(mount)
            found = relative[path] = (rest, tuple(rest.strip("/").split("/")))
        return found

    registry_of = KeptValue(REGISTRY)

    async def resolve(token: str, request: web.Request) -> TokenMatch | None:
        match = registry_of(request).match(token)
        if match is None or match.partner.kind is not kind:
            return None
        path = below_mount(request.path)[0]
        if match.provisional and path not in provisional_paths:
            return None
        if match.registration and path not in registration_paths:
            return None
        logs.partner.set(match.partner.id)  # on this request's log lines (gateway.logs)
        return match

    def version_guard(request: web.Request, match: Any) -> None:
        # A registered partner uses the modules of its own version only (checked by the
        # OCPI middleware once the request is authenticated, before the handler).
        if isinstance(match, TokenMatch) and not match.registration:
            parts = below_mount(request.path)[1]
            if len(parts) >= 2 and parts[0] in served and parts[1] != "credentials":
                registered = match.partner.ocpi_version
                if parts[0] != registered:
                    raise UnsupportedVersionError(
                        f"registered in OCPI {registered}: use {mount}/{registered}/..., or "
                        f"PUT credentials at {mount}/{parts[0]}/credentials to switch"
                    )
            if authenticated is not None:
                authenticated(request, match)

    async def versions_list(request: web.Request) -> web.Response:
        return ocpi_response([Version(version=v, url=f"{base_url}{mount}/{v}") for v in order])

    middleware = ocpi_middleware(resolve, public_origin=base_url, check=version_guard)
    app = web.Application(middlewares=[middleware])
    table: list[tuple[str, str, Handler]] = []

    def route(method: str, path: str, handler: Handler, *, head: bool = False) -> None:
        if head:  # and HEAD, answered by the sub-application only
            app.router.add_get(path, handler)
        else:
            app.router.add_route(method, path, handler)
        table.append((method, path, handler))

    route("GET", "/versions", configuration_module(versions_list), head=True)
    for version in order:
        _add_version(route, served[version], kind)
    app[DIRECT] = DirectRoutes(mount, middleware, tuple(table))
    return app


@dataclass(frozen=True, slots=True)
class DirectRoutes:
    """The routes of an application of :func:`build_ocpi_app` (method, path below its
    mount, handler) and its OCPI middleware, for :func:`mount_ocpi_app`."""

    mount: str
    middleware: Middleware
    routes: tuple[tuple[str, str, Handler], ...]


DIRECT = web.AppKey("ocpi.direct_routes", DirectRoutes)


def mount_ocpi_app(parent: web.Application, app: web.Application) -> None:
    """``app`` (:func:`build_ocpi_app`'s) mounted on ``parent`` at its mount, and each of
    its routes also on ``parent``'s router, the OCPI middleware run as part of the
    handler. A request one of those takes is resolved once and runs under one
    application's middleware chain (aiohttp resolves a sub-application's path again in
    its router and runs a frame of its own for each application on the way: about 2.5
    µs a request, tests/bench/README.md). What they do not take (a path no route has, a
    method the path does not allow, HEAD) goes on to the sub-application as before:
    its 404 and 405 are OCPI envelopes, the token checked first. The handlers see the
    parent as ``request.app`` (they keep nothing in their own application), and only the
    parent's ``on_response_prepare`` runs for them: ``app`` must have none."""
    if len(app.on_response_prepare):
        raise ValueError("an OCPI application served from its parent's router has no signals")
    direct = app[DIRECT]
    parent.add_subapp(direct.mount, app)
    for method, path, handler in direct.routes:
        # update_wrapper: the handler's marks (configuration_module) stay readable.
        wrapped = functools.update_wrapper(
            functools.partial(direct.middleware, handler=handler), handler
        )
        parent.router.add_route(method, direct.mount + path, wrapped)


class Route(Protocol):
    def __call__(self, method: str, path: str, handler: Handler, *, head: bool = ...) -> None: ...


def _add_version(route: Route, served: ServedVersion, kind: PartnerKind) -> None:
    version = served.version
    details = version_details(version, served.endpoints)
    model = credentials_model(version)

    async def get_details(request: web.Request) -> web.Response:
        return ocpi_response(details)

    def ours(request: web.Request, token: str) -> BaseModel:
        try:
            return _registry(request).our_credentials_in(version, token, kind)
        except NotExpressible as exc:
            raise ServerError(f"our credentials: {exc}") from None

    async def theirs(request: web.Request) -> Any:
        body = await parse_body(request, model)
        try:
            return credentials_in(body, kind)
        except NotExpressible as exc:
            raise InvalidParametersError(str(exc)) from None

    async def get_credentials(request: web.Request) -> web.Response:
        # The token in our credentials is the one the client uses to call us: the one
        # it just presented (only its hash is stored).
        match = _match(request)
        if match.token is None:
            raise UnauthorizedError("no credentials")
        return ocpi_response(ours(request, match.token))

    async def post_credentials(request: web.Request) -> web.Response:
        credentials = await theirs(request)
        try:
            answer = await _registry(request).accept_registration(
                _match(request), credentials, version
            )
        except RegistrationError as exc:
            raise UnableToUseClientApiError(str(exc)) from None
        return ocpi_response(ours(request, answer.token))

    async def put_credentials(request: web.Request) -> web.Response:
        credentials = await theirs(request)
        try:
            answer = await _registry(request).update_registration(
                _match(request), credentials, version
            )
        except RegistrationError as exc:
            raise UnableToUseClientApiError(str(exc)) from None
        return ocpi_response(ours(request, answer.token))

    async def delete_credentials(request: web.Request) -> web.Response:
        await _registry(request).unregister(_match(request))
        return ocpi_response(None)

    route("GET", f"/{version}", configuration_module(get_details), head=True)
    route("GET", f"/{version}/", configuration_module(get_details), head=True)
    cred = f"/{version}/credentials"
    route("GET", cred, configuration_module(get_credentials), head=True)
    route("POST", cred, configuration_module(post_credentials))
    route("PUT", cred, configuration_module(put_credentials))
    route("DELETE", cred, configuration_module(delete_credentials))
    for module_route in served.routes:
        route(module_route.method, f"/{version}{module_route.path}", module_route.handler)
