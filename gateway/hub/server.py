"""The hub's OCPI URL space, ``/ocpi/hub``: versions, credentials (the hub's role is
HUB), HubClientInfo and, for every routed module, a Sender and a Receiver interface
(``/ocpi/hub/2.2.1/{module}/sender`` and ``.../receiver``, the same in 2.3.0), which a
platform calls as it would call a CPO's or an eMSP's (transport_and_format, Message
Routing). In 2.1.1, which has neither interface roles nor a hub role, one endpoint per
module (``/ocpi/hub/2.1.1/{module}``): to a 2.1.1 eMSP the hub is its CPO, to a 2.1.1
CPO platform (the role the operator gave it) its eMSP."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.hub.service import HUB, ROUTED_MODULES, V211_MODULES, Hub
from gateway.roaming.partners import OCPI_VERSION, PartnerKind, TokenMatch, partner_of
from gateway.roaming.server import (
    KeptValue,
    ServedVersion,
    build_ocpi_app,
    credentials_endpoints,
)
from ocpi.hub.routing import CPO_INTERFACE
from ocpi.server import configuration_module, ocpi_context
from ocpi.v221 import Endpoint
from ocpi.v221.enums import InterfaceRole, ModuleID

HUB_MOUNT = "/ocpi/hub"

HubOf = KeptValue[Hub]


def hub_version_url(base_url: str) -> str:
    return f"{base_url}{HUB_MOUNT}/{OCPI_VERSION}"


def hub_endpoints(base_url: str, version: str = OCPI_VERSION) -> list[Endpoint]:
    """The hub's version details: both interfaces of every routed module."""
    base = f"{base_url}{HUB_MOUNT}/{version}"
    endpoints = [
        Endpoint(
            identifier=ModuleID.CREDENTIALS, role=InterfaceRole.SENDER, url=f"{base}/credentials"
        ),
        Endpoint(
            identifier=ModuleID.CREDENTIALS, role=InterfaceRole.RECEIVER, url=f"{base}/credentials"
        ),
        Endpoint(
            identifier=ModuleID.HUB_CLIENT_INFO,
            role=InterfaceRole.SENDER,
            url=f"{base}/hubclientinfo",
        ),
    ]
    for module in ROUTED_MODULES:
        for role in (InterfaceRole.SENDER, InterfaceRole.RECEIVER):
            url = f"{base}/{module}/{role.value.lower()}"
            endpoints.append(Endpoint(identifier=module, role=role, url=url))
    return endpoints


def _handlers(hub_of: HubOf) -> tuple[Handler, Handler]:
    """The routed modules' handler and HubClientInfo's."""

    async def route(request: web.Request) -> web.StreamResponse:
        return await hub_of(request).handle(request)

    @configuration_module  # no routing headers (transport_and_format, Message Routing)
    async def client_info(request: web.Request) -> web.StreamResponse:
        partner = partner_of(ocpi_context(request).party)
        return hub_of(request).client_infos(partner.id, request)

    return route, client_info


def hub_routes(hub_of: HubOf) -> list[web.RouteDef]:
    route, client_info = _handlers(hub_of)
    return [
        web.get("/hubclientinfo", client_info),
        web.route("*", "/{module}/{interface}", route),
        web.route("*", "/{module}/{interface}/{tail:.*}", route),
    ]


def _activity_noter(hub_of: HubOf) -> Callable[[web.Request, TokenMatch], None]:
    def note_activity(request: web.Request, match: TokenMatch) -> None:
        # Any request of a registered platform shows it is alive (mod_hub_client_info:
        # the still-alive check only probes platforms that have been silent). Called by
        # the hub's OCPI application once the request passed its checks (build_ocpi_app).
        hub = hub_of.get(request)
        if hub is not None:
            hub.note_activity(match.partner.id)

    return note_activity


def hub_endpoints_v211(base_url: str) -> list[Endpoint]:
    """The hub's 2.1.1 version details: one endpoint per module (2.1.1 lists no role: the
    same URLs are the CPO's to a 2.1.1 eMSP and the eMSP's to a 2.1.1 CPO platform)."""
    base = f"{base_url}{HUB_MOUNT}/2.1.1"
    return credentials_endpoints(base) + [
        Endpoint(identifier=module, role=CPO_INTERFACE[module], url=f"{base}/{module}")
        for module in ROUTED_MODULES
        if module in V211_MODULES
    ]


def hub_routes_v211(hub_of: HubOf) -> list[web.RouteDef]:
    route, _ = _handlers(hub_of)
    return [
        web.route("*", "/{module}", route),
        web.route("*", "/{module}/{tail:.*}", route),
    ]


def hub_other_versions(base_url: str, hub_of: HubOf) -> list[ServedVersion]:
    """The hub's 2.1.1 and 2.3.0: versions, version details, credentials and the routed
    modules (the hub translates between the versions, :mod:`ocpi.hub.translate`)."""
    return [
        ServedVersion("2.1.1", hub_endpoints_v211(base_url), hub_routes_v211(hub_of)),
        ServedVersion("2.3.0", hub_endpoints(base_url, "2.3.0"), hub_routes(hub_of)),
    ]


def build_hub_app(base_url: str) -> web.Application:
    hub_of = KeptValue(HUB)  # one per application
    return build_ocpi_app(
        base_url,
        hub_endpoints(base_url),
        hub_routes(hub_of),
        kind=PartnerKind.HUB,
        mount=HUB_MOUNT,
        authenticated=_activity_noter(hub_of),
        versions=hub_other_versions(base_url, hub_of),
    )
