"""The routing decision for one request a platform sends to the hub (pure).

The host parses the request (method, module, which interface of the hub was hit, the
path below the module's endpoint, the OCPI-from/to headers) and, for open routing,
derives the receiver from the object where it can (a command's or a location's CPO, a
session's or CDR's eMSP, a token's owner): ``owner_hint``. :func:`route` then answers one
of

* :class:`Forward`: send it to a remote party's platform (``url`` = endpoint + path);
* :class:`Local`: hand it to a party hosted in-process;
* :class:`Broadcast`: push it to every visible, connected party serving the interface;
* :class:`GetAll`: the combined list of every visible, connected party serving the
  Sender interface (see :mod:`ocpi.hub.getall`);

or raises an :class:`~ocpi.transport.OcpiError`:

========================================================== =================================
OCPI-from-* missing and the platform hosts several parties  2001 InvalidParametersError
OCPI-from-* (or the URL's owner) not a party of the platform 4000 PartyNotOwnedError
OCPI-to-* unknown, denied by the rules, wrong role for the
interface, or no endpoint for it                            4001 UnknownReceiverError
receiver not CONNECTED                                      4003 HubConnectionProblemError
OCPI-to = hub with GET, other than a list on a Sender
interface (GET is never broadcast)                          2001 InvalidParametersError
broadcast of a module not in ``broadcast_modules``          2001 InvalidParametersError
open routing of a GET list (GET All needs OCPI-to = hub)    2001 InvalidParametersError
open routing without ``owner_hint`` (not broadcastable)     4001 UnknownReceiverError
configuration module (credentials, versions, hubclientinfo) ValueError: never routed
========================================================== =================================

Which parties serve an interface: for the modules of OCPI 2.2.1 one interface is the
CPO's (``locations``, ``tariffs``, ``sessions``, ``cdrs``: SENDER; ``tokens``,
``commands``, ``chargingprofiles``: RECEIVER) and the other belongs to every other role
except HUB (eMSP, NSP, NAP, SCSP, OTHER). So a CPO's broadcast reaches the eMSP-type
roles and an eMSP's or OTHER's reaches the CPOs, as the spec's Broadcast Push says. For
custom modules any non-hub role serves both; the platform must list the endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from yarl import URL

from ocpi.hub.directory import Party, PartyDirectory
from ocpi.hub.rules import OPEN, RoutingRules, is_allowed
from ocpi.transport import (
    HubConnectionProblemError,
    HubError,
    InvalidParametersError,
    PartyId,
    UnknownReceiverError,
)
from ocpi.v221.enums import ConnectionStatus, InterfaceRole, ModuleID
from ocpi.v221.types import Role

__all__ = [
    "BROADCAST_MODULES",
    "CPO_INTERFACE",
    "UNROUTED_MODULES",
    "Broadcast",
    "Decision",
    "Forward",
    "GetAll",
    "HubRequest",
    "Local",
    "PartyNotOwnedError",
    "RouterConfig",
    "Target",
    "eligible_targets",
    "route",
    "serves",
]

CPO_INTERFACE: dict[str, InterfaceRole] = {
    ModuleID.LOCATIONS: InterfaceRole.SENDER,
    ModuleID.TARIFFS: InterfaceRole.SENDER,
    ModuleID.SESSIONS: InterfaceRole.SENDER,
    ModuleID.CDRS: InterfaceRole.SENDER,
    ModuleID.TOKENS: InterfaceRole.RECEIVER,
    ModuleID.COMMANDS: InterfaceRole.RECEIVER,
    ModuleID.CHARGING_PROFILES: InterfaceRole.RECEIVER,
}
"""The interface the CPO role serves, per standard module."""

UNROUTED_MODULES = frozenset({"versions", ModuleID.CREDENTIALS, ModuleID.HUB_CLIENT_INFO})
"""Configuration modules: platform-to-hub, never routed."""

BROADCAST_MODULES = frozenset({ModuleID.LOCATIONS, ModuleID.TARIFFS, ModuleID.TOKENS})
"""Modules whose pushes may be broadcast by default (never sessions, CDRs, commands:
they concern one party and may carry personal data)."""

_NON_CPO_ROLES = frozenset({Role.EMSP, Role.NSP, Role.NAP, Role.SCSP, Role.OTHER})
_READ_METHODS = frozenset({"GET", "HEAD"})


class PartyNotOwnedError(HubError):
    """4000: the platform spoke for (or pushed an object of) a party it does not own."""


@dataclass(frozen=True, slots=True)
class HubRequest:
    """What routing needs to know of a request.

    ``interface`` is the role of the hub's endpoint that was hit (an eMSP GETting
    locations hits the hub's SENDER interface). ``path`` are the segments below the
    module's endpoint URL (``("NL", "TNM", "LOC1")``; empty for a list). ``url_owner``
    is the ``{country_code}/{party_id}`` of a Client Owned Object URL pushed to a
    Receiver interface: it must be the sending platform's. ``owner_hint`` is the party
    open routing should target, derived by the host from the object.
    """

    method: str
    module: str
    interface: InterfaceRole
    platform_id: str
    path: tuple[str, ...] = ()
    from_party: PartyId | None = None
    to_party: PartyId | None = None
    url_owner: PartyId | None = None
    owner_hint: PartyId | None = None

    @property
    def is_list(self) -> bool:
        """A GET on a Sender interface without path segments: a paginated list."""
        return (
            self.method.upper() in _READ_METHODS
            and self.interface is InterfaceRole.SENDER
            and not self.path
        )


@dataclass(frozen=True, slots=True)
class RouterConfig:
    hub_party: PartyId
    rules: RoutingRules = OPEN
    broadcast_modules: frozenset[str] = BROADCAST_MODULES
    open_get_list_is_get_all: bool = False
    """Treat a GET list without OCPI-to-* as a GET All (lenient towards peers that do
    not set routing headers); strict by default, as the spec asks OCPI-to = hub."""


@dataclass(frozen=True, slots=True)
class Forward:
    """Forward to a remote party: ``endpoint`` is its platform's URL for the interface."""

    sender: PartyId
    target: PartyId
    platform_id: str
    endpoint: str
    path: tuple[str, ...] = ()

    @property
    def url(self) -> URL:
        url = URL(self.endpoint)
        for segment in self.path:
            url = url / segment
        return url


@dataclass(frozen=True, slots=True)
class Local:
    """Hand to a party served in-process (no HTTP hop). ``module`` and ``interface``
    say what was addressed, as a :class:`Forward`'s endpoint URL does, so that the
    in-process handler picks the operation (:mod:`ocpi.hub.local`); :func:`route` sets
    them from the request. They repeat the request rather than decide anything, so they
    take no part in equality; their defaults only serve hand-built targets."""

    sender: PartyId
    target: PartyId
    platform_id: str
    path: tuple[str, ...] = ()
    module: str = field(default="", compare=False)
    interface: InterfaceRole = field(default=InterfaceRole.SENDER, compare=False)


Target = Forward | Local


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Push to each target (ordered by country_code, party_id); may be empty. Each
    forwarded copy carries OCPI-from = the hub and OCPI-to = the target."""

    sender: PartyId
    targets: tuple[Target, ...]


@dataclass(frozen=True, slots=True)
class GetAll:
    """Combine the lists of the targets (ordered by country_code, party_id)."""

    sender: PartyId
    targets: tuple[Target, ...]


Decision = Forward | Local | Broadcast | GetAll


def serves(roles: frozenset[Role], module: str, interface: InterfaceRole) -> bool:
    """Whether a party with ``roles`` serves ``interface`` of ``module`` (module doc)."""
    cpo_side = CPO_INTERFACE.get(module)
    if cpo_side is None:
        return bool(roles - {Role.HUB})
    if interface is cpo_side:
        return Role.CPO in roles
    return bool(roles & _NON_CPO_ROLES)


def route(request: HubRequest, directory: PartyDirectory, config: RouterConfig) -> Decision:
    """The routing decision for ``request``; raises an ``OcpiError`` (module doc)."""
    if request.module in UNROUTED_MODULES:
        raise ValueError(f"the {request.module} module is not routed")
    method = request.method.upper()
    sender = _sender(request, directory)
    if request.url_owner is not None and not _owns(directory, request, request.url_owner):
        raise PartyNotOwnedError(
            f"the URL names party {request.url_owner}, which is not one of this platform's"
        )
    to_party = request.to_party
    if to_party is not None and to_party == config.hub_party:
        return _to_hub(request, method, sender, directory, config)
    if to_party is not None:
        return _directed(request, sender, to_party, directory, config)
    # Open routing: no OCPI-to-*.
    if request.is_list:
        if config.open_get_list_is_get_all:
            return GetAll(sender, eligible_targets(request, sender, directory, config))
        raise InvalidParametersError(
            "OCPI-to-* headers missing: a GET All via the hub sets them to the hub's party "
            f"({config.hub_party}); open routing is only for single objects"
        )
    if request.owner_hint is not None:
        return _directed(request, sender, request.owner_hint, directory, config)
    if method not in _READ_METHODS and request.module in config.broadcast_modules:
        return Broadcast(sender, eligible_targets(request, sender, directory, config))
    raise UnknownReceiverError(
        "OCPI-to-* headers missing and the receiver cannot be determined from the request"
    )


def eligible_targets(
    request: HubRequest, sender: PartyId, directory: PartyDirectory, config: RouterConfig
) -> tuple[Target, ...]:
    """Every party other than ``sender`` that serves the request's interface, is
    CONNECTED and allowed with ``sender`` by the rules, ordered by (country_code,
    party_id): the targets of a broadcast and of a GET All."""
    targets: list[Target] = []
    for party in directory.parties():
        if party.id == sender or not serves(party.roles, request.module, request.interface):
            continue
        if directory.status(party.id) is not ConnectionStatus.CONNECTED:
            continue
        if not is_allowed(config.rules, sender, party.id):
            continue
        target = _target(request, sender, party, directory)
        if target is not None:
            targets.append(target)
    return tuple(targets)


# ------------------------------------------------------------------- helpers


def _owns(directory: PartyDirectory, request: HubRequest, party_id: PartyId) -> bool:
    party = directory.party(party_id)
    return party is not None and party.platform_id == request.platform_id


def _sender(request: HubRequest, directory: PartyDirectory) -> PartyId:
    if request.from_party is None:
        own: Sequence[Party] = directory.parties_of(request.platform_id)
        if len(own) == 1:
            return own[0].id
        raise InvalidParametersError(
            "OCPI-from-country-code/OCPI-from-party-id headers missing: this platform "
            "hosts several parties, say which one is sending"
        )
    if not _owns(directory, request, request.from_party):
        raise PartyNotOwnedError(
            f"OCPI-from-* names party {request.from_party}, which is not one of the "
            "parties registered with these credentials"
        )
    return request.from_party


def _to_hub(
    request: HubRequest,
    method: str,
    sender: PartyId,
    directory: PartyDirectory,
    config: RouterConfig,
) -> Decision:
    if method in _READ_METHODS:
        if request.is_list:
            return GetAll(sender, eligible_targets(request, sender, directory, config))
        raise InvalidParametersError(
            "OCPI-to-* is the hub: a GET to the hub is only a GET All (a list on a Sender "
            "interface); GET is never broadcast, address the party or use open routing"
        )
    if request.module not in config.broadcast_modules:
        raise InvalidParametersError(
            f"broadcast push is not allowed for the {request.module} module; address the "
            "receiving party in OCPI-to-*"
        )
    return Broadcast(sender, eligible_targets(request, sender, directory, config))


def _directed(
    request: HubRequest,
    sender: PartyId,
    to_party: PartyId,
    directory: PartyDirectory,
    config: RouterConfig,
) -> Target:
    party = directory.party(to_party)
    # Unknown, denied and unsuitable receivers look the same: the rules do not leak who
    # is connected.
    if party is None or not is_allowed(config.rules, sender, to_party):
        raise UnknownReceiverError(f"unknown receiver {to_party}")
    if not serves(party.roles, request.module, request.interface):
        raise UnknownReceiverError(
            f"receiver {to_party} does not serve the {request.module} "
            f"{request.interface.value} interface"
        )
    target = _target(request, sender, party, directory)
    if target is None:
        raise UnknownReceiverError(
            f"receiver {to_party} does not implement the {request.module} "
            f"{request.interface.value} interface"
        )
    status = directory.status(to_party)
    if status is not ConnectionStatus.CONNECTED:
        raise HubConnectionProblemError(f"receiver {to_party} is {status.value}")
    return target


def _target(
    request: HubRequest, sender: PartyId, party: Party, directory: PartyDirectory
) -> Target | None:
    platform = directory.platform(party.platform_id)
    if platform is None or not platform.implements(request.module, request.interface):
        return None
    if platform.local:
        return Local(
            sender,
            party.id,
            platform.id,
            request.path,
            module=request.module,
            interface=request.interface,
        )
    url = platform.endpoint_url(request.module, request.interface)
    if not url:
        return None
    return Forward(sender, party.id, platform.id, url, request.path)
