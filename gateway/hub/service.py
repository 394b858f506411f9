"""The hub at work: routing each request of a platform, broadcast through the outbox,
GET All, proxied command results, HubClientInfo pushes and the still-alive check.

What a request becomes (transport_and_format, Message Routing; :func:`ocpi.hub.routing.route`
decides):

* **directed** (``OCPI-to-*`` names a party, or open routing finds it from the object):
  sent at once, to the receiver's platform over HTTP or to a hosted CPO in-process, and
  its answer passed back unchanged (status, body, pagination). A receiver that cannot
  be reached is the sender's 4002/4003: it keeps the request and sends it again.
* **broadcast** (``OCPI-to-*`` = the hub, or open routing of a push of locations,
  tariffs or tokens): each receiving platform gets its copy through the durable outbox
  (body bytes and ``X-Correlation-ID`` unchanged, ``OCPI-from-*`` the hub's party as
  the spec's Broadcast Push says, ``OCPI-to-*`` the receiver); hosted CPOs take theirs
  in-process at once. Answered 1000 once every copy is stored.
* **GET All** (a list on a Sender interface with ``OCPI-to-*`` = the hub): the combined
  list of every CPO the requester may see (:mod:`ocpi.hub.getall`).
* a **command result** posted to a proxied ``response_url``: stored in the outbox for
  the eMSP that sent the command, answered 1000.

Between platforms of different OCPI versions (2.1.1, 2.2.1, 2.3.0; the hosted CPOs are
2.2.1) the message is converted on the way (:mod:`ocpi.hub.translate`): a directed
request and its answer at once (2001 to the sender when the receiver's version cannot
express it), a broadcast copy by the outbox at delivery (FAILED, naming the field, when it
cannot), GET All pages object by object (left out, still counted). Between platforms of
the same version bytes are passed on as above, unparsed. A 2.1.1 platform (with neither
routing headers nor a hub role) is routed by open routing from its one party: an eMSP,
or a CPO when the operator said so (``Partner.v211_role``), whose sessions and CDRs go
to the eMSP of their ``auth_id`` (:meth:`Hub._v211_owner_hint`).

Open routing finds the receiver from the object: the ``cdr_token`` owner of a pushed
session or CDR, else what the :class:`~gateway.hub.links.OwnerIndex` learnt from earlier
pushes (a location's CPO, a token's eMSP, a session's eMSP and CPO), else a hosted
location's CPO.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from multidict import MultiDict
from pydantic import BaseModel
from yarl import URL

import ocpi.v221
from gateway.domain.clock import Clock, IdFactory
from gateway.hub.directory import (
    LOCAL_PLATFORM,
    HostedParty,
    HubDirectory,
    registered_hub_partner,
)
from gateway.hub.links import OwnerIndex, StoredResponseUrls
from gateway.hub.rules import RuleBook
from gateway.leases import LEASES
from gateway.roaming.outbox import META_RAW_BODY, Outbox, routing_meta
from gateway.roaming.partners import Partner, PartnerKind, PartnerRegistry, TokenMatch, partner_of
from gateway.roaming.pushes import wire_json
from gateway.roaming.versioning import META_OBJECT, META_VERSION
from gateway.storage.base import Document, OutboxItem, Store
from ocpi.hub.clientinfo import (
    ClientInfoPush,
    StillAliveChecker,
    client_info_page,
    forwarder_probe,
    party_infos,
    plan_pushes,
    plan_resync,
)
from ocpi.hub.forward import (
    ForwardedResponse,
    Forwarder,
    LocalRequest,
    SentObserver,
    receiver_url,
)
from ocpi.hub.getall import PageFetcher, TargetPage, forwarder_page_fetcher, get_all_page
from ocpi.hub.http1 import Http1Client
from ocpi.hub.local import local_handler
from ocpi.hub.response_url import ResponseUrlProxy
from ocpi.hub.routing import (
    CPO_INTERFACE,
    Broadcast,
    Forward,
    GetAll,
    HubRequest,
    Local,
    PartyNotOwnedError,
    RouterConfig,
    Target,
    eligible_targets,
    route,
)
from ocpi.hub.routing import Decision as RoutingDecision
from ocpi.hub.translate import (
    V211,
    V221,
    V230,
    Origin,
    answer_kind,
    embedded_location,
    read,
    request_kind,
    write,
)
from ocpi.server import (
    STATUS_CODE_KEY,
    OcpiRequestContext,
    Operation,
    ocpi_context,
    ocpi_response,
    paginated_response,
    parse_page,
    validate_input,
)
from ocpi.transport import (
    LINK_HEADER,
    HubError,
    InvalidParametersError,
    MethodNotAllowedError,
    NotFoundError,
    OcpiError,
    PartyId,
    ServerError,
    UnknownReceiverError,
    UnknownTokenError,
    envelope,
    is_success,
    json_dumps,
    json_loads,
    parse_page_request,
)
from ocpi.v221 import (
    EVSE,
    AuthorizationInfo,
    CdrToken,
    CommandResult,
    Connector,
    Location,
    Role,
    Tariff,
    Token,
)
from ocpi.v221.enums import ConnectionStatus, InterfaceRole, ModuleID
from ocpi.v221.patch import PATCH_MODELS
from ocpi.v221.types import OcpiModel, unknown_enum_value
from ocpi.versions import NotExpressible

RESPONSE_URL = "response_url"

log = logging.getLogger(__name__)

ROUTED_MODULES: tuple[str, ...] = (
    ModuleID.LOCATIONS,
    ModuleID.TARIFFS,
    ModuleID.SESSIONS,
    ModuleID.CDRS,
    ModuleID.TOKENS,
    ModuleID.COMMANDS,
    ModuleID.CHARGING_PROFILES,
)
"""The modules the hub routes (both interfaces of each)."""

# Modules whose requests carry a ``response_url`` for a later result, which the hub
# proxies (mod_commands; mod_charging_profiles: in the body of a PUT, as a query
# parameter of a GET or DELETE).
_ASYNC_RESULT_MODULES: frozenset[str] = frozenset({ModuleID.COMMANDS, ModuleID.CHARGING_PROFILES})

# Client Owned Objects: on a Receiver interface the URL starts with the owner's
# {country_code}/{party_id} (transport_and_format, Client Owned Object Push).
_OWNED_IN_URL = frozenset(
    {ModuleID.LOCATIONS, ModuleID.TARIFFS, ModuleID.SESSIONS, ModuleID.CDRS, ModuleID.TOKENS}
)
_WRITES = frozenset({"PUT", "PATCH", "POST", "DELETE"})
MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class HubConfig:
    party: PartyId
    base_url: str
    """The hub's version URL, e.g. ``https://gw.example.com/ocpi/hub/2.2.1``."""
    request_timeout: float = 15.0
    silence: timedelta = timedelta(minutes=5)
    response_url_ttl: timedelta = timedelta(hours=1)
    open_get_list_is_get_all: bool = False
    # How long the owner index keeps whose session it routed (OwnerIndex.purge).
    session_index_retention: timedelta = timedelta(days=90)

    def endpoint(self, module: str, interface: InterfaceRole) -> str:
        return f"{self.base_url}/{module}/{interface.value.lower()}"

    def versioned_endpoint(self, version: str, module: str, interface: InterfaceRole) -> str:
        """The hub's URL of an interface in ``version`` (2.1.1: one URL per module)."""
        base = self.base_url.rsplit("/", 1)[0] + "/" + version
        if version == V211:
            return f"{base}/{module}"
        return f"{base}/{module}/{interface.value.lower()}"


LocalOwner = Callable[[str, str], Awaitable[PartyId | None]]
"""``async (kind, object id) -> hosted owner``: a hosted CPO's location, for open routing."""

StatusListener = Callable[[PartyId], Awaitable[None]]
ActivityListener = Callable[[str, datetime], None]
CheckListener = Callable[[], Awaitable[None]]

# The statuses the still-alive check decides (the operator's are PLANNED / SUSPENDED).
_ALIVE_STATUSES = (ConnectionStatus.CONNECTED, ConnectionStatus.OFFLINE)


class Hub:
    def __init__(
        self,
        config: HubConfig,
        registry: PartnerRegistry,
        store: Store,
        outbox: Outbox,
        clock: Clock,
        ids: IdFactory,
        client: Http1Client,
        hosted: Sequence[HostedParty],
        operations: Mapping[tuple[str, InterfaceRole], Sequence[Operation]],
        *,
        local_owner: LocalOwner | None = None,
        on_sent: SentObserver | None = None,
    ) -> None:
        self.config = config
        self._registry = registry
        self._outbox = outbox
        self._clock = clock
        self._local_owner = local_owner
        self.directory = HubDirectory(registry, hosted)
        self.rule_book = RuleBook(store.hub_rules, clock, ids)
        self.index = OwnerIndex(store.hub_index)
        self.links = StoredResponseUrls(store.hub_links)
        self._statuses = store.hub_statuses
        # The operator's statuses are changed here (set_status) and read again from the
        # store (a notice, a full reload at start or after a gap): one at a time, else a
        # reload that read the store before a change would undo it in memory after it.
        self._status_lock = asyncio.Lock()
        # The forwarded requests go out through ``client`` (ocpi.hub.http1: a lean
        # keep-alive client, not aiohttp's, for CPU per forward); ``on_sent`` counts them.
        self.forwarder = Forwarder(
            client,
            self._token_of,
            local=local_handler(operations, self.local_context),
            timeout=config.request_timeout,
            versions=self.platform_version,
            on_sent=on_sent,
        )
        # The results come back to the module's Sender interface of the hub, in the
        # version of the CPO that posts them (2.1.1 platforms are eMSPs: none there).
        self.proxies: dict[str, ResponseUrlProxy] = {
            module: ResponseUrlProxy(
                self.links,
                config.endpoint(module, InterfaceRole.SENDER),
                ttl=config.response_url_ttl,
                clock=clock.now,
            )
            for module in _ASYNC_RESULT_MODULES
        }
        self._versioned_proxies: dict[tuple[str, str], ResponseUrlProxy] = {
            (module, V230): ResponseUrlProxy(
                self.links,
                config.versioned_endpoint(V230, module, InterfaceRole.SENDER),
                ttl=config.response_url_ttl,
                clock=clock.now,
            )
            for module in _ASYNC_RESULT_MODULES
        }
        # A 2.1.1 CPO platform posts its command results at the hub's 2.1.1 commands
        # URL (one per module, no interface), where the hub is its eMSP.
        self._versioned_proxies[(ModuleID.COMMANDS, V211)] = ResponseUrlProxy(
            self.links,
            config.versioned_endpoint(V211, ModuleID.COMMANDS, InterfaceRole.SENDER),
            ttl=config.response_url_ttl,
            clock=clock.now,
        )
        self.alive = StillAliveChecker(
            self.directory, forwarder_probe(self.forwarder), silence=config.silence
        )
        # What other processes sharing the store learn of (gateway.refresh).
        self._status_listeners: list[StatusListener] = []
        self._activity_listeners: list[ActivityListener] = []
        self._check_listeners: list[CheckListener] = []
        # Called with the module and the HTTP status of each request routed (None: no
        # answer); the app's metrics count hub forwards by outcome.
        self.on_forward: Callable[[str, int | None], None] | None = None
        # The hub's URL of each interface, by (version, module, interface).
        self._hub_bases: dict[tuple[str, str, InterfaceRole], str] = {}
        self._router_config: RouterConfig | None = None  # for the rules in force

    # -- life cycle --------------------------------------------------------------

    async def start(self) -> None:
        await self.rule_book.load()
        await self._load_statuses()
        self.directory.rebuild(self._clock.now())
        self._registry.on_change(self._on_partner_change)

    async def _load_statuses(self) -> None:
        async with self._status_lock:
            await self._load_statuses_locked()

    async def _load_statuses_locked(self) -> None:
        docs, _ = await self._statuses.list(limit=10_000)
        self.directory.operator_statuses = {
            PartyId.parse(doc.key): ConnectionStatus(doc.data["status"]) for doc in docs
        }

    # -- changes made by another process sharing the store -------------------------
    #
    # Each reads what changed from the store and updates what this process routes
    # with, without pushing anything: the process that made the change has pushed it,
    # once for the cluster.

    def partner_reloaded(self, before: Partner | None, after: Partner | None) -> None:
        """A partner was read again (:meth:`PartnerRegistry.reload`): the directory
        follows the registry."""
        if registered_hub_partner(before) or registered_hub_partner(after):
            self.directory.rebuild(self._clock.now())

    async def reload_status(self, party_id: PartyId) -> None:
        """The operator's status of ``party_id``, read again from the store."""
        async with self._status_lock:
            doc = await self._statuses.get(str(party_id))
            if doc is None:
                self.directory.operator_statuses.pop(party_id, None)
            else:
                status = ConnectionStatus(doc.data["status"])
                self.directory.operator_statuses[party_id] = status
            self._apply_operator_status(party_id)

    async def reload_all(self) -> None:
        """Rules, operator statuses and the directory read again (after messages about
        changes may have been lost); the registry must have been reloaded first."""
        await self.rule_book.load()
        async with self._status_lock:
            await self._load_statuses_locked()
            self.directory.rebuild(self._clock.now())
            for party in self.directory.parties():
                if party.platform_id != LOCAL_PLATFORM:
                    self._apply_operator_status(party.id)

    def _apply_operator_status(self, party_id: PartyId) -> None:
        party = self.directory.party(party_id)
        if party is None or party.platform_id == LOCAL_PLATFORM:
            return
        override = self.directory.operator_statuses.get(party_id)
        current = self.directory.status(party_id)
        if override is not None:
            self.directory.set_status(party_id, override, self._clock.now())
        elif current not in _ALIVE_STATUSES:  # the operator's status was lifted
            self.directory.set_status(party_id, ConnectionStatus.CONNECTED, self._clock.now())

    def on_status_change(self, listener: StatusListener) -> None:
        """Call ``await listener(party_id)`` after the operator's status of a party was
        stored here (:meth:`set_status`); errors are logged."""
        self._status_listeners.append(listener)

    def on_activity(self, listener: ActivityListener) -> None:
        """Call ``listener(platform_id, at)`` for each sign of life of a platform seen by
        this process (:meth:`note_activity`), not for those of :meth:`noted_elsewhere`."""
        self._activity_listeners.append(listener)

    def noted_elsewhere(self, platform_id: str, at: datetime) -> None:
        """A sign of life of ``platform_id`` seen by another process at ``at``."""
        self.alive.note_activity(platform_id, at)

    def on_checked(self, listener: CheckListener) -> None:
        """Call ``await listener()`` after each still-alive round of this process
        (:meth:`check_alive`); errors are logged."""
        self._check_listeners.append(listener)

    def offline_platforms(self) -> list[str]:
        """The platforms the still-alive check has marked OFFLINE here."""
        return sorted(
            platform.id
            for platform in self.directory.platforms()
            if not platform.local
            and any(
                self.directory.status(p.id) is ConnectionStatus.OFFLINE
                for p in self.directory.parties_of(platform.id)
            )
        )

    def apply_alive(self, offline: Sequence[str], at: datetime) -> None:
        """The still-alive check's verdict from the process that runs it: the parties of
        the ``offline`` platforms OFFLINE, those of the others CONNECTED, except where
        the operator's status rules (PLANNED / SUSPENDED)."""
        down = set(offline)
        for platform in self.directory.platforms():
            if platform.local:
                continue
            status = ConnectionStatus.OFFLINE if platform.id in down else ConnectionStatus.CONNECTED
            for party in self.directory.parties_of(platform.id):
                if party.id in self.directory.operator_statuses:
                    continue
                if self.directory.status(party.id) in _ALIVE_STATUSES:
                    self.directory.set_status(party.id, status, at)

    def router_config(self) -> RouterConfig:
        rules = self.rule_book.rules  # immutable: replaced whole when a rule changes
        config = self._router_config
        if config is None or config.rules is not rules:
            config = self._router_config = RouterConfig(
                hub_party=self.config.party,
                rules=rules,
                open_get_list_is_get_all=self.config.open_get_list_is_get_all,
            )
        return config

    async def _on_partner_change(self, before: Partner | None, after: Partner | None) -> None:
        if not (registered_hub_partner(before) or registered_hub_partner(after)):
            return
        if registered_hub_partner(after) and after is not None:
            self.note_activity(after.id)  # registering is a sign of life
        changed, gone = self.directory.rebuild(self._clock.now())
        pushes = plan_pushes([*changed, *gone], self.directory, self.rule_book.rules)
        if (
            after is not None
            and registered_hub_partner(after)
            and not registered_hub_partner(before)
        ):
            # A new platform learns about everyone it may reach.
            pushes = [p for p in pushes if p.platform_id != after.id]
            pushes += plan_resync(after.id, self.directory, self.rule_book.rules)
        await self._enqueue_infos(pushes)

    async def rules_changed(self) -> None:
        """After the operator changed a rule: every connected platform gets the
        ClientInfo list it may now see (a party newly hidden simply stops appearing; the
        rules do not tell a platform who hides from it)."""
        rules = self.rule_book.rules
        pushes: list[ClientInfoPush] = []
        for platform in self.directory.platforms():
            if platform.local or not any(
                self.directory.status(p.id) is ConnectionStatus.CONNECTED
                for p in self.directory.parties_of(platform.id)
            ):
                continue
            pushes += plan_resync(platform.id, self.directory, rules)
        await self._enqueue_infos(pushes)

    async def set_status(self, party_id: PartyId, status: ConnectionStatus) -> bool:
        """The operator's status for a party of a platform (mod_hub_client_info): PLANNED
        or SUSPENDED (nothing is routed to it; the still-alive check leaves it alone),
        or CONNECTED to lift that. Pushed to the platforms that may see the party;
        False when it did not change. KeyError: not a party of a platform; ValueError:
        OFFLINE, which only the still-alive check decides."""
        if status is ConnectionStatus.OFFLINE:
            raise ValueError("OFFLINE is for the still-alive check to decide")
        party = self.directory.party(party_id)
        if party is None or party.platform_id == LOCAL_PLATFORM:
            raise KeyError(str(party_id))
        async with self._status_lock:
            before = self.directory.status(party_id)
            if status is ConnectionStatus.CONNECTED:
                self.directory.operator_statuses.pop(party_id, None)
                await self._statuses.delete(str(party_id))
            else:
                self.directory.operator_statuses[party_id] = status
                now = self._clock.now()
                await self._statuses.put(Document(str(party_id), {"status": status.value}, now))
            self.directory.set_status(party_id, status, self._clock.now())
        for listener in self._status_listeners:
            try:
                await listener(party_id)
            except Exception:
                log.exception("hub: party status listener failed")
        if before is status:
            return False
        infos = party_infos(party, status, self.directory.status_changed_at(party_id))
        await self._enqueue_infos(plan_pushes(infos, self.directory, self.rule_book.rules))
        return True

    # -- still alive ---------------------------------------------------------------

    def note_activity(self, platform_id: str) -> None:
        now = self._clock.now()
        self.alive.note_activity(platform_id, now)
        for listener in self._activity_listeners:
            try:
                listener(platform_id, now)
            except Exception:
                log.exception("hub: activity listener failed")

    async def check_alive(self) -> tuple[list[str], list[str]]:
        """One still-alive round (mod_hub_client_info: a platform silent for 5 minutes
        is probed with a GET on its versions endpoint). Returns the platforms that went
        OFFLINE and those that came back; their status changes are pushed, and a
        platform that came back gets every ClientInfo it may see."""
        report = await self.alive.run_once(self._clock.now())
        rules = self.rule_book.rules
        pushes = plan_pushes(report.changes, self.directory, rules)
        for platform_id in report.came_back:
            pushes = [p for p in pushes if p.platform_id != platform_id]
            pushes += plan_resync(platform_id, self.directory, rules)
        await self._enqueue_infos(pushes)
        for platform_id in report.went_offline:
            log.warning("hub: platform %s does not answer: its parties are OFFLINE", platform_id)
        for listener in self._check_listeners:
            try:
                await listener()
            except Exception:
                log.exception("hub: still-alive listener failed")
        return report.went_offline, report.came_back

    async def run_checks(self, interval: float) -> None:
        """The still-alive check, the purge of expired response URLs and of the session
        entries of the owner index, every ``interval`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check_alive()
                now = self._clock.now()
                await self.links.purge(now)
                await self.index.purge(now - self.config.session_index_retention)
            except Exception:
                log.exception("hub: periodic check failed")

    async def _enqueue_infos(self, pushes: Sequence[ClientInfoPush]) -> None:
        items = [self._info_item(push) for push in pushes]
        if items:
            await self._outbox.store.enqueue(items)
            self._outbox.notify()

    def _info_item(self, push: ClientInfoPush) -> OutboxItem:
        info = push.info
        return self._outbox.make_item(
            push.platform_id,
            "PUT",
            push.url,
            wire_json(info),
            ordering_key=f"{push.platform_id}|hubclientinfo|{info.country_code}*{info.party_id}",
            module=ModuleID.HUB_CLIENT_INFO,
            # No routing meta: hubclientinfo is a configuration module, sent without
            # OCPI-from/to-* (transport_and_format, Message Routing: "routing headers
            # SHALL NOT be used with these modules").
            meta={"kind": "hubclientinfo"},
        )

    # -- what the hub knows ----------------------------------------------------------

    async def _token_of(self, platform_id: str) -> str | None:
        partner = self._registry.get(platform_id)
        if partner is None or not registered_hub_partner(partner):
            return None
        return partner.their_token

    def reach(self, sender: PartyId, module: str, interface: str, partner_id: str) -> list[PartyId]:
        """:class:`gateway.roaming.pushes.Audience`: whom a hosted CPO's pushes and
        questions reach on platform ``partner_id``."""
        return self.directory.reach(
            sender, module, InterfaceRole(interface), partner_id, self.rule_book.rules
        )

    def client_infos(self, platform_id: str, request: web.Request) -> web.Response:
        page = parse_page(request, max_limit=MAX_LIMIT)
        viewer = [p.id for p in self.directory.parties_of(platform_id)]
        objects, total = client_info_page(
            self.directory, page, viewer=viewer, rules=self.rule_book.rules
        )
        return paginated_response(request, objects, total, page)

    async def local_context(self, request: LocalRequest) -> OcpiRequestContext:
        """The context a hosted CPO's operation sees: the sending party's platform as
        the authenticated partner, as if it had called the CPO directly."""
        sender = request.from_party
        platform = self.directory.platform_of(sender) if sender is not None else None
        partner = self._registry.get(platform) if platform is not None else None
        if partner is None or partner.kind is not PartnerKind.HUB:
            raise HubError(f"party {sender} has no platform on this hub")
        target = request.target
        url = URL(self.config.endpoint(target.module, target.interface))
        for segment in target.path:
            url = url / segment
        return OcpiRequestContext(
            party=TokenMatch(partner, registration=False),
            request_id=request.request_id,
            correlation_id=request.correlation_id,
            url=url.with_query(request.query) if request.query else url,
            from_party=request.from_party,
            to_party=request.to_party,
        )

    # -- one request -------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """A request to ``{base}/{module}/{sender|receiver}[/...]``."""
        observe = self.on_forward
        if observe is None:
            return await self._handle(request)
        module = request.match_info.get("module", "")
        status: int | None = None
        try:
            response = await self._handle(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except OcpiError as exc:
            # Refused by the hub itself (an OCPI error, often sent with HTTP 200).
            status = max(exc.http_status, 400)
            raise
        finally:
            observe(module, status)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._route_request(request)
        except HubError as exc:
            if partner_of(ocpi_context(request).party).ocpi_version != V211:
                raise
            # 2.1.1 has no hub status codes (4xxx): a server error naming the hub's.
            raise ServerError(
                f"{exc.message} (hub status {exc.status_code})", http_status=exc.http_status
            ) from None

    async def _route_request(self, request: web.Request) -> web.StreamResponse:
        context = ocpi_context(request)
        partner = partner_of(context.party)
        version = partner.ocpi_version
        module = request.match_info["module"]
        named = request.match_info.get("interface")
        if named is None:
            # 2.1.1: one endpoint per module, no interface role; to a 2.1.1 eMSP the hub
            # is its CPO, to a 2.1.1 CPO platform (the operator's role) its eMSP.
            if module not in V211_MODULES:
                raise NotFoundError(f"the hub does not route the {module} module in 2.1.1")
            interface = CPO_INTERFACE[module]
            if _is_v211_cpo(partner):
                interface = _OTHER_INTERFACE[interface]
        else:
            try:
                interface = InterfaceRole(named.upper())
            except ValueError:
                raise NotFoundError(f"no such interface: {named}") from None
        if module not in ROUTED_MODULES:
            raise NotFoundError(f"the hub does not route the {module} module")
        path = tuple(s for s in request.match_info.get("tail", "").split("/") if s)
        if any(segment in (".", "..") for segment in path):
            # Never a path below the receiver's endpoint: refused rather than resolved.
            raise InvalidParametersError("URL: '.' and '..' are not object ids")
        if not all(_PRINTABLE_ASCII.fullmatch(segment) for segment in path):
            # Object ids, country codes and party ids are CiString (types: printable ASCII).
            raise InvalidParametersError("URL: object ids are printable ASCII")
        raw = await request.read()
        method = request.method.upper()
        if (
            module in _ASYNC_RESULT_MODULES
            and interface is InterfaceRole.SENDER
            and (module == ModuleID.COMMANDS or method == "POST")
        ):
            # A result posted to a proxied response_url (the charging profiles Sender
            # interface also takes PUTs of active profiles: those are routed).
            return await self._async_result(context, partner, module, method, path, raw)
        body = _json_or_none(raw)
        if body is None and raw.strip():
            # status_codes.asciidoc: a body that is not JSON is HTTP 400; the hub does not
            # pass on what no receiver could read.
            raise InvalidParametersError("body: not valid JSON", http_status=400)
        if body is not None and not isinstance(body, dict) and method in _WRITES:
            # Every OCPI request body is an object: none a receiver could take.
            raise InvalidParametersError("body: a JSON object is required")
        url_owner = _url_owner(module, interface, path)
        from_party, to_party = context.from_party, context.to_party
        if version == V211:
            # No routing headers in 2.1.1: open routing, from the platform's one party;
            # a list is the combined list of every CPO (GET All).
            from_party = None
            is_list = method in ("GET", "HEAD") and interface is InterfaceRole.SENDER
            to_party = self.config.party if is_list and not path else None
        hint = None
        if to_party is None:
            hint = await self._owner_hint(module, interface, method, path, body)
            if hint is None and version == V211:
                hint = await self._v211_owner_hint(module, interface, method, body)
            if hint is None and _is_authorize(module, interface, method, path):
                # 2.1.1 names the uid alone: the eMSP the hub knows, else each in turn.
                return await self._authorize_any(
                    request, context, partner, version, path, body, raw
                )
            if (
                hint is None
                and version == V211
                and _is_token_check(module, interface, method, path)
            ):
                return await self._token_at_cpos(request, context, partner, path, raw)
        hub_request = HubRequest(
            method=method,
            module=module,
            interface=interface,
            platform_id=partner.id,
            path=path,
            from_party=from_party,
            to_party=to_party,
            url_owner=url_owner,
            owner_hint=hint,
        )
        decision = route(hub_request, self.directory, self.router_config())
        await self._learn(module, interface, method, path, decision, body)
        if isinstance(decision, GetAll):
            return await self._get_all(request, context, decision, version, module)
        exchange = _Exchange(module, interface, method, path, version, url_owner)
        if isinstance(decision, Broadcast):
            if version == V221:
                _check_broadcast_body(module, method, path, body)
                internal = None
            else:
                internal = await self._read_request(exchange, body, decision.sender)
            return await self._broadcast(request, context, decision, exchange, raw, internal)
        if self.target_version(decision) != version:
            return await self._translated(request, context, decision, exchange, body, raw)
        return await self._directed(request, context, decision, module, interface, raw, version)

    async def _directed(
        self,
        request: web.Request,
        context: OcpiRequestContext,
        target: Target,
        module: str,
        interface: InterfaceRole,
        raw: bytes,
        version: str = V221,
    ) -> web.StreamResponse:
        body: bytes | None = raw or None
        query: Mapping[str, str] = request.query
        if (
            isinstance(target, Forward)
            and module in _ASYNC_RESULT_MODULES
            and interface is InterfaceRole.RECEIVER
        ):
            # The CPO posts the result to the hub, which knows where the sender wants it.
            query = MultiDict(request.query)
            proxy = self._proxy(module, version)
            parties = {"requester": target.sender, "receiver": target.target}
            if request.method.upper() in ("POST", "PUT"):
                body = await proxy.rewrite_command(raw, **parties)
            elif RESPONSE_URL in query:
                query[RESPONSE_URL] = await proxy.proxy(query[RESPONSE_URL], **parties)
        response = await self.forwarder.send(
            target,
            method=request.method,
            correlation_id=context.correlation_id,
            query=query,
            body=body,
            hub_base=self._hub_base(version, module, interface),
        )
        return _web_response(response)

    async def _broadcast(
        self,
        request: web.Request,
        context: OcpiRequestContext,
        decision: Broadcast,
        exchange: _Exchange,
        raw: bytes,
        internal: BaseModel | None,
    ) -> web.StreamResponse:
        method = request.method.upper()
        module = exchange.module
        items: list[OutboxItem] = []
        kind = exchange.request_kind
        if (
            internal is None
            and kind is not None
            and raw.strip()
            and any(self.target_version(t) != exchange.version for t in decision.targets)
        ):
            # A 2.2.1 broadcast (checked, not read) that some receiver takes in another
            # version: read once for all of them.
            internal = validate_input(_internal_model(kind), json_loads(raw))
        for target in decision.targets:
            receiver_version = self.target_version(target)
            if receiver_version != exchange.version:
                items += await self._broadcast_copy(
                    request, context, target, exchange, raw, internal, receiver_version
                )
                continue
            if isinstance(target, Local):
                await self._to_hosted(request, context, target, method, request.query, raw)
                continue
            url = receiver_url(target.endpoint, target.path, request.query)
            path = "/".join(target.path)
            items.append(
                self._outbox.make_item(
                    target.platform_id,
                    method,
                    str(url),
                    None,
                    ordering_key=f"{target.platform_id}|{target.target}|{module}|{path}",
                    module=module,
                    # transport_and_format, Broadcast Push: the Hub sends each copy
                    # with its own party in OCPI-from-*; the URL keeps the owner's.
                    meta={"kind": "hub_broadcast"}
                    | routing_meta(
                        from_party=self.config.party,
                        to_party=target.target,
                        raw_body=raw or None,
                        correlation_id=context.correlation_id,
                    ),
                )
            )
        if items:
            await self._outbox.store.enqueue(items)
            self._outbox.notify()
        return ocpi_response(None)

    async def _get_all(
        self,
        request: web.Request,
        context: OcpiRequestContext,
        decision: GetAll,
        version: str = V221,
        module: str = "",
    ) -> web.StreamResponse:
        page = parse_page_request(request.query, max_limit=MAX_LIMIT)
        fetch = forwarder_page_fetcher(
            self.forwarder,
            correlation_id=context.correlation_id,
            requester=decision.sender,
            query=request.query,
        )
        if version == V211 and module == ModuleID.LOCATIONS:
            fetch = self._noting_owners(fetch)
        if module == ModuleID.TOKENS:
            fetch = self._noting_tokens(fetch)
        translating = any(self.target_version(t) != version for t in decision.targets)
        if translating:
            fetch = self._translating_fetch(fetch, version, module, decision.sender, context)
        combined = await get_all_page(decision.targets, fetch, offset=page.offset, limit=page.limit)
        if combined.failed:
            log.warning(
                "hub: GET All %s left out %s", request.path, ", ".join(map(str, combined.failed))
            )
        if translating:
            # Objects the requester's version cannot express are left out of the page;
            # the headers count them (offsets stay those of the CPOs' lists).
            kept = [obj for obj in combined.objects if obj is not _LEFT_OUT]
            body = json_dumps(envelope(kept)).encode("utf-8")
        else:
            body = combined.body()
        return web.Response(
            body=body,
            headers=combined.headers(context.url),
            content_type="application/json",
        )

    async def _async_result(
        self,
        context: OcpiRequestContext,
        partner: Partner,
        module: str,
        method: str,
        path: tuple[str, ...],
        raw: bytes,
    ) -> web.StreamResponse:
        """A result posted to a proxied response_url (a CommandResult, or a charging
        profile result): kept in the outbox for the party that sent the request."""
        if len(path) != 1:
            raise NotFoundError("not a response URL of this hub")
        if method != "POST":
            raise MethodNotAllowedError("a result is POSTed")
        entry = await self.proxies[module].resolve(path[0])
        if entry.receiver is not None and self.directory.platform_of(entry.receiver) != partner.id:
            # Only the CPO the command went to may answer it; others learn nothing.
            raise NotFoundError("unknown or expired response URL")
        result = _json_or_none(raw)
        posted = partner.ocpi_version
        internal: BaseModel | None = None
        if module == ModuleID.COMMANDS:
            if posted == V221:
                internal = validate_input(CommandResult, result)
            else:
                internal = read("CommandResult", result, posted, self._origin(entry.receiver))
        elif not isinstance(result, dict) or not isinstance(result.get("result"), str):
            raise InvalidParametersError("result: field required")
        platform = self.directory.platform_of(entry.requester)
        if platform is None or platform == LOCAL_PLATFORM:
            raise UnknownReceiverError(f"unknown receiver {entry.requester}")
        wanted = self.platform_version(platform)
        body: Any = None
        meta = {"kind": "hub_result"} | routing_meta(
            from_party=entry.receiver,
            to_party=entry.requester,
            raw_body=raw,
            correlation_id=context.correlation_id,
        )
        if internal is not None and wanted != posted:
            # In the requester's version, converted (and, when 2.1.1 cannot say it,
            # failed visibly) by the outbox at delivery (gateway.roaming.versioning).
            del meta[META_RAW_BODY]
            meta |= {META_VERSION: wanted, META_OBJECT: "CommandResult"}
            body = wire_json(internal)
        item = self._outbox.make_item(
            platform,
            "POST",
            entry.url,
            body,
            ordering_key=f"{platform}|{entry.requester}|{module}|{path[0]}",
            module=module,
            meta=meta,
        )
        await self._outbox.store.enqueue([item])
        self._outbox.notify()
        return ocpi_response(None)

    # -- between versions (ocpi.hub.translate) ------------------------------------------

    def platform_version(self, platform_id: str) -> str:
        """The OCPI version a platform registered in (the hosted CPOs: the internal
        2.2.1 form)."""
        if platform_id == LOCAL_PLATFORM:
            return V221
        partner = self._registry.get(platform_id)
        return V221 if partner is None else partner.ocpi_version

    def target_version(self, target: Target) -> str:
        return V221 if isinstance(target, Local) else self.platform_version(target.platform_id)

    def _hub_base(self, version: str, module: str, interface: InterfaceRole) -> str:
        key = (version, module, interface)
        base = self._hub_bases.get(key)
        if base is None:
            if version == V221:
                base = self.config.endpoint(module, interface)
            else:
                base = self.config.versioned_endpoint(version, module, interface)
            if len(self._hub_bases) < 1024:  # the versions, modules and interfaces
                self._hub_bases[key] = base
        return base

    def _proxy(self, module: str, version: str) -> ResponseUrlProxy:
        """The response_url proxy whose URLs are in ``version`` (the CPO's)."""
        return self._versioned_proxies.get((module, version)) or self.proxies[module]

    async def _read_request(
        self, exchange: _Exchange, body: Any, sender: PartyId, receiver: PartyId | None = None
    ) -> BaseModel | None:
        """A request body of the sender's version in the internal form (2001 naming the
        field when it is not a valid object of that version); None without a body. A
        2.1.1 CPO's Session or CDR gets the token of its ``auth_id`` (``receiver``: the
        eMSP it goes to)."""
        kind = exchange.request_kind
        if kind is None or body is None:
            return None
        owner = exchange.url_owner or sender
        cdr_token = None
        if exchange.version == V211 and receiver is not None and isinstance(body, dict):
            auth_id = body.get("auth_id")
            if isinstance(auth_id, str) and kind in ("Session", "CDR", "SessionPatch"):
                cdr_token = await self._cdr_token(auth_id, receiver)
        return read(kind, body, exchange.version, self._origin(owner, cdr_token=cdr_token))

    def _origin(
        self,
        owner: PartyId | None,
        *,
        uid: str = "",
        token_type: str = "RFID",
        issuer: str = "",
        cdr_token: CdrToken | None = None,
    ) -> Origin:
        """What the objects ``owner`` sends do not say in 2.1.1, read now: with the time
        zone the operator set for its platform (``Partner.default_time_zone``), for its
        Locations that name none."""
        time_zone = None
        platform = None if owner is None else self.directory.platform_of(owner)
        partner = None if platform is None else self._registry.get(platform)
        if partner is not None:
            time_zone = partner.default_time_zone
        return Origin(
            owner=owner,
            now=self._clock.now(),
            uid=uid,
            token_type=token_type,
            issuer=issuer,
            cdr_token=cdr_token,
            time_zone=time_zone,
        )

    async def _cdr_token(self, auth_id: str, emsp: PartyId) -> CdrToken | None:
        """The CdrToken of a 2.1.1 ``auth_id`` at ``emsp``: the uid and type as the hub
        learnt them (tokens pushed, GET All pages, real-time authorizations through the
        hub), else the auth_id as uid and type OTHER (HUB_LOSSY)."""
        known = await self.index.token(auth_id)
        uid, token_type = (auth_id, "OTHER")
        if known is not None and known[0] == emsp:
            uid, token_type = known[1], known[2]
        try:
            return CdrToken.model_validate(
                {
                    "country_code": emsp.country_code,
                    "party_id": emsp.party_id,
                    "uid": uid,
                    "type": token_type,
                    "contract_id": auth_id,
                }
            )
        except ValueError:
            return None

    async def _written(
        self,
        internal: BaseModel,
        version: str,
        *,
        cpo: PartyId,
        on_behalf: PartyId,
        correlation_id: str,
    ) -> Any:
        """``internal`` in ``version`` as JSON (NotExpressible naming the field); a 2.1.1
        Session or CDR embeds the Location read from ``cpo`` now."""
        location = None
        kind = type(internal).__name__
        location_id = embedded_location(kind, internal, version)
        if location_id is not None:
            location = await self._location_of(cpo, location_id, on_behalf, correlation_id)
        return wire_json(write(internal, version, location=location))

    async def _location_of(
        self, cpo: PartyId, location_id: str, on_behalf: PartyId, correlation_id: str
    ) -> Location | None:
        """The CPO's Location (GET through the hub, as ``on_behalf`` would ask it), in the
        internal form; None when it cannot be read."""
        platform = self.directory.platform_of(on_behalf)
        if platform is None:
            return None
        try:
            target = route(
                HubRequest(
                    method="GET",
                    module=ModuleID.LOCATIONS,
                    interface=InterfaceRole.SENDER,
                    platform_id=platform,
                    path=(location_id,),
                    from_party=on_behalf,
                    to_party=cpo,
                ),
                self.directory,
                self.router_config(),
            )
            if not isinstance(target, Forward | Local):
                return None
            answer = await self.forwarder.send(target, method="GET", correlation_id=correlation_id)
            data = _json_or_none(answer.body)
            if not _succeeded(answer) or not isinstance(data, dict):
                return None
            origin = self._origin(cpo)
            found = read("Location", data.get("data"), self.target_version(target), origin)
        except OcpiError as exc:
            log.warning("hub: Location %s of %s cannot be read: %s", location_id, cpo, exc)
            return None
        return found if isinstance(found, Location) else None

    async def _translated(
        self,
        request: web.Request,
        context: OcpiRequestContext,
        target: Target,
        exchange: _Exchange,
        body: Any,
        raw: bytes,
    ) -> web.StreamResponse:
        """A directed request to a receiver of another version: the body converted (a
        message the receiver's version cannot express is the sender's 2001 naming the
        field, at once), the answer's data converted back (3000 when the sender's version
        cannot express it)."""
        module, interface = exchange.module, exchange.interface
        receiver_version = self.target_version(target)
        query: MultiDict[str] = MultiDict(request.query)
        payload: bytes | None = None
        internal = await self._read_request(exchange, body, target.sender, target.target)
        if internal is not None:
            try:
                data = await self._written(
                    internal,
                    receiver_version,
                    cpo=target.sender,
                    on_behalf=target.target,
                    correlation_id=context.correlation_id,
                )
            except NotExpressible as exc:
                raise InvalidParametersError(
                    f"{exc}; {target.target} registered in OCPI {receiver_version}"
                ) from None
            _typed_token_query(internal, query)
            if (
                isinstance(target, Forward)
                and module in _ASYNC_RESULT_MODULES
                and interface is InterfaceRole.RECEIVER
                and isinstance(data, dict)
                and isinstance(data.get(RESPONSE_URL), str)
            ):
                data[RESPONSE_URL] = await self._proxy(module, receiver_version).proxy(
                    data[RESPONSE_URL], requester=target.sender, receiver=target.target
                )
            payload = json_dumps(data).encode("utf-8")
        elif raw.strip():
            payload = raw
        if (
            isinstance(target, Forward)
            and module in _ASYNC_RESULT_MODULES
            and interface is InterfaceRole.RECEIVER
            and RESPONSE_URL in query
        ):
            query[RESPONSE_URL] = await self._proxy(module, receiver_version).proxy(
                query[RESPONSE_URL], requester=target.sender, receiver=target.target
            )
        response = await self.forwarder.send(
            target,
            method=request.method,
            correlation_id=context.correlation_id,
            query=query,
            body=payload,
            hub_base=self._hub_base(exchange.version, module, interface),
        )
        return await self._answer(response, target, exchange, receiver_version, context)

    async def _answer(
        self,
        response: ForwardedResponse,
        target: Target,
        exchange: _Exchange,
        receiver_version: str,
        context: OcpiRequestContext,
    ) -> web.Response:
        """The receiver's answer in the sender's version."""
        headers = response.headers.copy()
        if exchange.version == V211:
            for name in [n for n in headers if n.lower().startswith("ocpi-")]:
                headers.popall(name)
        if isinstance(target, Local) and LINK_HEADER in headers:
            # In-process pages link to the hub's 2.2.1 URLs: the sender's instead.
            ours = self.config.endpoint(exchange.module, exchange.interface)
            theirs = self._hub_base(exchange.version, exchange.module, exchange.interface)
            links = [link.replace(ours, theirs) for link in headers.getall(LINK_HEADER)]
            del headers[LINK_HEADER]
            for link in links:
                headers.add(LINK_HEADER, link)
        found = answer_kind(exchange.module, exchange.interface, exchange.method, exchange.path)
        envelope_ = _json_or_none(response.body)
        data = envelope_.get("data") if isinstance(envelope_, dict) else None
        if found is None or data is None or not isinstance(envelope_, dict):
            return web.Response(status=response.status, body=response.body, headers=headers)
        kind, many = found
        origin = self._origin(
            target.target,
            uid=exchange.path[0] if exchange.path else "",
            token_type=str(context.url.query.get("type", "RFID")),
            issuer=self._issuer(target.target),
        )

        async def convert(obj: Any) -> Any:
            internal = read(kind, obj, receiver_version, origin)
            if isinstance(internal, AuthorizationInfo) and receiver_version != V211:
                # The eMSP's Token: a 2.1.1 CPO's session names only its contract id.
                await self._note_token(internal.token.to_wire(), target.target)
            return await self._written(
                internal,
                exchange.version,
                cpo=target.target,
                on_behalf=target.sender,
                correlation_id=context.correlation_id,
            )

        if many and isinstance(data, list):
            converted = []
            for obj in data:
                try:
                    converted.append(await convert(obj))
                except (NotExpressible, OcpiError) as exc:
                    log.warning(
                        "hub: a %s of %s left out of an OCPI %s answer: %s",
                        kind,
                        target.target,
                        exchange.version,
                        exc,
                    )
            envelope_["data"] = converted
        else:
            try:
                envelope_["data"] = await convert(data)
            except (NotExpressible, OcpiError) as exc:
                raise ServerError(
                    f"the answer of {target.target} (OCPI {receiver_version}) cannot be "
                    f"given in OCPI {exchange.version}: {exc}"
                ) from None
        headers.popall("Content-Type", None)
        return web.Response(
            status=response.status,
            body=json_dumps(envelope_).encode("utf-8"),
            headers=headers,
            content_type="application/json",
        )

    def _issuer(self, party_id: PartyId) -> str:
        platform = self.directory.platform_of(party_id)
        partner = self._registry.get(platform) if platform is not None else None
        return partner.name if partner is not None else str(party_id)

    async def _to_hosted(
        self,
        request: web.Request,
        context: OcpiRequestContext,
        target: Local,
        method: str,
        query: Mapping[str, str],
        body: bytes,
    ) -> None:
        """A broadcast's copy for a hosted CPO: in-process, and durable once that CPO
        has stored it; a refusal is logged (the sender was answered already)."""
        answer = await self.forwarder.send(
            target,
            method=method,
            correlation_id=context.correlation_id,
            query=query,
            body=body or None,
        )
        if not _succeeded(answer):
            log.warning(
                "hub: broadcast %s %s to hosted %s: %s",
                method,
                request.path,
                target.target,
                answer.body[:200],
            )

    async def _broadcast_copy(
        self,
        request: web.Request,
        context: OcpiRequestContext,
        target: Target,
        exchange: _Exchange,
        raw: bytes,
        internal: BaseModel | None,
        receiver_version: str,
    ) -> list[OutboxItem]:
        """One receiver's copy of a broadcast in its own version: a hosted CPO takes the
        internal form at once; a platform's copy is converted by the outbox at delivery,
        where one its version cannot express is FAILED, naming the field."""
        module, method = exchange.module, exchange.method
        query: MultiDict[str] = MultiDict(request.query)
        if internal is not None:
            _typed_token_query(internal, query)
        if isinstance(target, Local):
            body = b"" if internal is None else json_dumps(internal).encode("utf-8")
            await self._to_hosted(request, context, target, method, query, body)
            return []
        url = receiver_url(target.endpoint, target.path, query)
        path = "/".join(target.path)
        meta: dict[str, Any] = {"kind": "hub_broadcast", META_VERSION: receiver_version}
        if internal is not None:
            meta[META_OBJECT] = type(internal).__name__
        return [
            self._outbox.make_item(
                target.platform_id,
                method,
                str(url),
                None if internal is None else wire_json(internal),
                ordering_key=f"{target.platform_id}|{target.target}|{module}|{path}",
                module=module,
                meta=meta
                | routing_meta(
                    from_party=self.config.party,
                    to_party=target.target,
                    correlation_id=context.correlation_id,
                ),
            )
        ]

    def _noting_owners(self, fetch: PageFetcher) -> PageFetcher:
        """``fetch`` noting whose each location is: a 2.1.1 eMSP cannot name the CPO of
        a command's location (no routing headers), the hub finds it by open routing."""

        async def noting(target: Target, offset: int, limit: int) -> TargetPage:
            page = await fetch(target, offset, limit)
            now = self._clock.now()
            for obj in page.objects:
                location_id = obj.get("id") if isinstance(obj, dict) else None
                if isinstance(location_id, str) and isinstance(target, Forward):
                    await self.index.note("location", location_id, target.target, now)
            return page

        return noting

    def _noting_tokens(self, fetch: PageFetcher) -> PageFetcher:
        """``fetch`` noting each token's contract id with its eMSP, uid and type: a 2.1.1
        CPO's sessions and CDRs name only the contract id (:meth:`_cdr_token`)."""

        async def noting(target: Target, offset: int, limit: int) -> TargetPage:
            page = await fetch(target, offset, limit)
            for obj in page.objects:
                await self._note_token(obj, target.target)
            return page

        return noting

    def _translating_fetch(
        self,
        fetch: PageFetcher,
        version: str,
        module: str,
        requester: PartyId,
        context: OcpiRequestContext,
    ) -> PageFetcher:
        """``fetch`` with each target's objects in ``version``; one that version cannot
        express becomes :data:`_LEFT_OUT` (so that offsets still count it)."""
        found = answer_kind(module, InterfaceRole.SENDER, "GET", ())
        kind = found[0] if found is not None else ""

        async def translated(target: Target, offset: int, limit: int) -> TargetPage:
            page = await fetch(target, offset, limit)
            theirs = self.target_version(target)
            if theirs == version or not kind:
                return page
            origin = self._origin(target.target)
            objects: list[Any] = []
            for obj in page.objects:
                try:
                    internal = read(kind, obj, theirs, origin)
                    objects.append(
                        await self._written(
                            internal,
                            version,
                            cpo=target.target,
                            on_behalf=requester,
                            correlation_id=context.correlation_id,
                        )
                    )
                except (NotExpressible, OcpiError) as exc:
                    log.warning(
                        "hub: a %s of %s left out of an OCPI %s GET All page: %s",
                        kind,
                        target.target,
                        version,
                        exc,
                    )
                    objects.append(_LEFT_OUT)
            return TargetPage(objects, page.total)

        return translated

    # -- open routing ---------------------------------------------------------------------

    async def _owner_hint(
        self,
        module: str,
        interface: InterfaceRole,
        method: str,
        path: tuple[str, ...],
        body: Any,
    ) -> PartyId | None:
        if interface is InterfaceRole.RECEIVER:
            if module in (ModuleID.SESSIONS, ModuleID.CDRS) and method in _WRITES:
                owner = _cdr_token_owner(body)
                if owner is None and module == ModuleID.SESSIONS and len(path) >= 3:
                    owner = await self.index.owner("session", "*".join(path[:3]))
                return owner
            if module == ModuleID.CHARGING_PROFILES and path:
                # A session pushed through the hub, else a hosted CPO's own session.
                return await self._owner("session-cpo", path[0])
            if module == ModuleID.COMMANDS and isinstance(body, dict):
                location_id = body.get("location_id")
                if isinstance(location_id, str):
                    return await self._owner("location", location_id)
                session_id = body.get("session_id")
                if isinstance(session_id, str):
                    return await self.index.owner("session-cpo", session_id)
            return None
        if module == ModuleID.TOKENS and len(path) >= 2 and path[1] == "authorize":
            return await self.index.owner("token", path[0])
        if module == ModuleID.LOCATIONS and path:
            return await self._owner("location", path[0])
        return None

    async def _v211_owner_hint(
        self, module: str, interface: InterfaceRole, method: str, body: Any
    ) -> PartyId | None:
        """The eMSP of a 2.1.1 CPO's session or CDR, which names only the token's
        ``auth_id``: the eMSP whose token has that contract id (as the hub learnt it),
        else the party an eMA ID starts with (``NL-EMO-C...``: the eMSP NL*EMO), when
        it is an eMSP on the hub."""
        if interface is not InterfaceRole.RECEIVER or method not in _WRITES:
            return None
        if module not in (ModuleID.SESSIONS, ModuleID.CDRS) or not isinstance(body, dict):
            return None
        auth_id = body.get("auth_id")
        if not isinstance(auth_id, str):
            return None
        owner = await self.index.owner("contract", auth_id)
        if owner is not None:
            return owner
        match = _EMAID.match(auth_id)
        if match is None:
            return None
        party = self.directory.party(PartyId(match[1].upper(), match[2].upper()))
        return party.id if party is not None and Role.EMSP in party.roles else None

    async def _note_token(self, token: Any, owner: PartyId) -> None:
        """Remember a token's contract id (2.1.1 ``auth_id``) with its eMSP, uid and type
        (:meth:`_cdr_token`); ``token`` a Token of any version, as JSON."""
        if not isinstance(token, dict):
            return
        contract = token.get("contract_id", token.get("auth_id"))
        uid, token_type = token.get("uid"), token.get("type", "RFID")
        if isinstance(contract, str) and isinstance(uid, str) and isinstance(token_type, str):
            await self.index.note_token(contract, owner, uid, token_type, self._clock.now())

    async def _authorize_any(
        self,
        request: web.Request,
        context: OcpiRequestContext,
        partner: Partner,
        version: str,
        path: tuple[str, ...],
        body: Any,
        raw: bytes,
    ) -> web.StreamResponse:
        """A real-time authorization for a uid no eMSP is known to own (2.1.1 names the
        uid alone): every eMSP the sender may reach is asked at once, as the gateway
        asks for its own chargers; the first that allows it answers (and is remembered
        as the uid's eMSP), else the first refusal, else 2004 unknown token."""
        hub_request = HubRequest(
            method="POST",
            module=ModuleID.TOKENS,
            interface=InterfaceRole.SENDER,
            platform_id=partner.id,
            path=path,
        )
        decision = route(
            replace(hub_request, to_party=self.config.party, method="GET", path=()),
            self.directory,
            self.router_config(),
        )
        if not isinstance(decision, GetAll) or not decision.targets:
            raise UnknownTokenError(f"unknown token {path[0]}: no eMSP on the hub to ask")
        exchange = _Exchange(ModuleID.TOKENS, InterfaceRole.SENDER, "POST", path, version, None)

        async def ask(target: Target) -> tuple[Target, web.StreamResponse | None]:
            target = replace(target, path=path)
            try:
                if self.target_version(target) != version:
                    answer = await self._translated(request, context, target, exchange, body, raw)
                else:
                    answer = await self._directed(
                        request,
                        context,
                        target,
                        ModuleID.TOKENS,
                        InterfaceRole.SENDER,
                        raw,
                        version,
                    )
            except OcpiError as exc:
                log.info("hub: %s cannot authorize %s: %s", target.target, path[0], exc)
                return target, None
            return target, answer

        refused: web.StreamResponse | None = None
        for next_done in asyncio.as_completed([ask(t) for t in decision.targets]):
            target, answer = await next_done
            if not isinstance(answer, web.Response) or not isinstance(answer.body, bytes):
                continue
            parsed = _json_or_none(answer.body)
            if not isinstance(parsed, dict) or parsed.get("status_code") != 1000:
                continue
            data = parsed.get("data")
            if isinstance(data, dict) and data.get("allowed") == "ALLOWED":
                await self.index.note("token", path[0], target.target, self._clock.now())
                return answer
            refused = refused or answer
        if refused is not None:
            return refused
        raise UnknownTokenError(f"unknown token {path[0]}: no eMSP on the hub knows it")

    async def _token_at_cpos(
        self,
        request: web.Request,
        context: OcpiRequestContext,
        partner: Partner,
        path: tuple[str, ...],
        raw: bytes,
    ) -> web.StreamResponse:
        """A 2.1.1 eMSP's ``GET tokens/{cc}/{pid}/{uid}`` at "its CPO" (mod_tokens 2.1.1:
        the eMSP checks what the CPO holds). Behind the hub there are many CPOs, which
        all got the token by broadcast: they are asked in (country_code, party_id) order
        and the first that holds it answers; none: "unknown object" (HTTP 404, 2000)."""
        hub_request = HubRequest(
            method="GET",
            module=ModuleID.TOKENS,
            interface=InterfaceRole.RECEIVER,
            platform_id=partner.id,
            path=path,
        )
        sender = self.directory.parties_of(partner.id)[0].id
        targets = eligible_targets(hub_request, sender, self.directory, self.router_config())
        owner = _url_owner(ModuleID.TOKENS, InterfaceRole.RECEIVER, path)
        if owner != sender:
            raise PartyNotOwnedError(f"the URL names party {owner}, which is not this platform's")
        exchange = _Exchange(ModuleID.TOKENS, InterfaceRole.RECEIVER, "GET", path, V211, owner)
        for target in targets:
            try:
                if self.target_version(target) != V211:
                    answer = await self._translated(request, context, target, exchange, None, raw)
                else:
                    answer = await self._directed(
                        request, context, target, ModuleID.TOKENS, InterfaceRole.RECEIVER, raw, V211
                    )
            except OcpiError as exc:
                log.info("hub: %s cannot say token %s: %s", target.target, path[-1], exc)
                continue
            if not isinstance(answer, web.Response) or not isinstance(answer.body, bytes):
                continue
            parsed = _json_or_none(answer.body)
            if (
                isinstance(parsed, dict)
                and parsed.get("status_code") == 1000
                and parsed.get("data")
            ):
                return answer
        raise NotFoundError(f"token {path[-1]}: no CPO on the hub holds it")

    async def _owner(self, kind: str, object_id: str) -> PartyId | None:
        owner = await self.index.owner(kind, object_id)
        if owner is None and self._local_owner is not None:
            owner = await self._local_owner(kind, object_id)
        return owner

    async def _learn(
        self,
        module: str,
        interface: InterfaceRole,
        method: str,
        path: tuple[str, ...],
        decision: RoutingDecision,
        body: Any = None,
    ) -> None:
        """Remember who owns what a push carried, for later open routing."""
        if interface is not InterfaceRole.RECEIVER or method != "PUT" or len(path) != 3:
            return
        if isinstance(decision, GetAll):
            return
        sender = decision.sender
        now = self._clock.now()
        if module == ModuleID.LOCATIONS:
            await self.index.note("location", path[2], sender, now)
        elif module == ModuleID.TOKENS:
            await self.index.note("token", path[2], sender, now)
            await self._note_token(body, sender)
        elif module == ModuleID.SESSIONS and isinstance(decision, Forward | Local):
            await self.index.note("session", "*".join(path), decision.target, now)
            await self.index.note("session-cpo", path[2], sender, now)


# -- helpers --------------------------------------------------------------------------

_OTHER_INTERFACE = {
    InterfaceRole.SENDER: InterfaceRole.RECEIVER,
    InterfaceRole.RECEIVER: InterfaceRole.SENDER,
}

# An eMA ID (ISO 15118 / eMI3 contract id): country code, provider id, then the rest,
# with or without separators ("NL-EMO-C12345678-X", "NLEMOC12345678X").
_EMAID = re.compile(r"([A-Za-z]{2})[-*]?([A-Za-z0-9]{3})[-*]?[A-Za-z0-9]")


def _is_v211_cpo(partner: Partner) -> bool:
    """A 2.1.1 platform the operator said is a CPO (its one party's role)."""
    return any(r.get("role") == Role.CPO for r in partner.roles)


def _is_tokens_call(
    call: tuple[str, InterfaceRole, str, tuple[str, ...]],
    interface: InterfaceRole,
    method: str,
    parts: int,
) -> bool:
    """A Tokens module ``call`` (module, interface, method, path) of ``interface`` and
    ``method`` with ``parts`` path segments below the endpoint."""
    module, its_interface, its_method, path = call
    return (
        module == ModuleID.TOKENS
        and its_interface is interface
        and its_method == method
        and len(path) == parts
    )


def _is_token_check(
    module: str, interface: InterfaceRole, method: str, path: tuple[str, ...]
) -> bool:
    call = (module, interface, method, path)
    return _is_tokens_call(call, InterfaceRole.RECEIVER, "GET", 3)


def _is_authorize(
    module: str, interface: InterfaceRole, method: str, path: tuple[str, ...]
) -> bool:
    call = (module, interface, method, path)
    return _is_tokens_call(call, InterfaceRole.SENDER, "POST", 2) and path[1] == "authorize"


V211_MODULES = frozenset(
    {
        ModuleID.LOCATIONS,
        ModuleID.TARIFFS,
        ModuleID.SESSIONS,
        ModuleID.CDRS,
        ModuleID.TOKENS,
        ModuleID.COMMANDS,
    }
)
"""The routed modules a 2.1.1 platform reaches (2.1.1 has no ChargingProfiles)."""

_LEFT_OUT = object()
"""An object of a GET All page that the requester's version cannot express."""


@dataclass(frozen=True, slots=True)
class _Exchange:
    """One request as the sender made it: what the hub converts between versions."""

    module: str
    interface: InterfaceRole
    method: str
    path: tuple[str, ...]
    version: str
    url_owner: PartyId | None

    @property
    def request_kind(self) -> str | None:
        return request_kind(self.module, self.interface, self.method, self.path)


def _internal_model(kind: str) -> type[BaseModel]:
    model = getattr(ocpi.v221, kind)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"no 2.2.1 object {kind}")
    return model


def _typed_token_query(internal: BaseModel, query: MultiDict[str]) -> None:
    """A Token pushed from 2.1.1 (keyed by uid alone) names its type in the URL of the
    later versions (mod_tokens: ``?type=``, RFID when absent)."""
    if isinstance(internal, Token) and "type" not in query and internal.type != "RFID":
        query["type"] = str(internal.type)


_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")

# What a broadcast PUT carries, by module and number of path segments after the
# receiver's endpoint ({country_code}/{party_id}/{id}[/{evse_uid}[/{connector_id}]]).
_BROADCAST_OBJECTS: dict[tuple[str, int], type[OcpiModel]] = {
    (ModuleID.LOCATIONS, 3): Location,
    (ModuleID.LOCATIONS, 4): EVSE,
    (ModuleID.LOCATIONS, 5): Connector,
    (ModuleID.TARIFFS, 3): Tariff,
    (ModuleID.TOKENS, 3): Token,
}


def _check_broadcast_body(module: str, method: str, path: tuple[str, ...], body: Any) -> None:
    """A broadcast is answered before any receiver sees it (the outbox delivers it), so
    the hub refuses here what no receiver could take: a PUT that is not the module's
    object, a PATCH that is not an object with ``last_updated`` (mod_locations and
    mod_tokens: every PATCH carries it), holds a null (no field of the OpenAPI schemas
    is nullable), is not a valid partial object of its kind (the module's PATCH model:
    a field of the wrong type, named) or holds a value an enum of 2.2.1 lacks."""
    null = _null_at(body) if method in ("PUT", "PATCH") else None
    if null is not None:
        raise InvalidParametersError(f"{null}: null is not a value (an absent field is omitted)")
    if method == "PUT":
        model = _BROADCAST_OBJECTS.get((module, len(path)))
        if model is None:
            raise InvalidParametersError(f"URL: not an object of the {module} module")
        _check_known_values(validate_input(model, body))
    elif method == "PATCH":
        if not isinstance(body, dict):
            raise InvalidParametersError("body: a JSON object")
        if "last_updated" not in body:
            raise InvalidParametersError("last_updated: field required")
        whole = _BROADCAST_OBJECTS.get((module, len(path)))
        patch = PATCH_MODELS.get(whole) if whole is not None else None
        if patch is not None:
            _check_known_values(validate_input(patch, body))


def _check_known_values(obj: BaseModel) -> None:
    # Open enums keep values they do not know when read (a newer peer may send one); a
    # broadcast is answered before any receiver sees it, and a receiver that checks the
    # 2.2.1 schemas would refuse such a value: refused here, named.
    unknown = unknown_enum_value(obj)
    if unknown is not None:
        raise InvalidParametersError(f"{unknown}: not a value of OCPI 2.2.1")


def _null_at(value: Any, path: str = "") -> str | None:
    """The path of the first null in a JSON body (``images[1].height``), None if none:
    no field of the OCPI schemas is nullable, so no receiver checking them takes one."""
    if isinstance(value, dict):
        members = [(f"{path}.{key}" if path else str(key), item) for key, item in value.items()]
    elif isinstance(value, list):
        members = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    else:
        return None
    for where, item in members:
        found = where if item is None else _null_at(item, where)
        if found is not None:
            return found
    return None


def _json_or_none(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json_loads(raw)
    except ValueError:
        return None


def _url_owner(module: str, interface: InterfaceRole, path: tuple[str, ...]) -> PartyId | None:
    if interface is not InterfaceRole.RECEIVER or module not in _OWNED_IN_URL or len(path) < 2:
        return None
    country_code, party_id = path[0], path[1]
    if len(country_code) != 2 or len(party_id) != 3:
        raise InvalidParametersError(
            f"country_code/party_id: {country_code!r}/{party_id!r} in the URL is not a party"
        )
    return PartyId(country_code, party_id)


def _cdr_token_owner(body: Any) -> PartyId | None:
    token = body.get("cdr_token") if isinstance(body, dict) else None
    if not isinstance(token, dict):
        return None
    country_code, party_id = token.get("country_code"), token.get("party_id")
    if not isinstance(country_code, str) or not isinstance(party_id, str):
        return None
    if len(country_code) != 2 or len(party_id) != 3:
        return None
    return PartyId(country_code, party_id)


def _succeeded(response: ForwardedResponse) -> bool:
    parsed = _json_or_none(response.body)
    code = parsed.get("status_code") if isinstance(parsed, dict) else None
    return isinstance(code, int) and is_success(code)


def _web_response(response: ForwardedResponse) -> web.Response:
    answer = web.Response(status=response.status, body=response.body, headers=response.headers)
    if response.status_code is not None:
        # Known from the forwarder's check of the envelope: the trail need not parse
        # the body again for it.
        answer[STATUS_CODE_KEY] = response.status_code
    return answer


HUB = web.AppKey("hub", Hub)


def hub_checks_ctx(interval: float) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` running :meth:`Hub.run_checks` (after the hub's own) in the one
    process of a cluster that holds the "hub-checks" lease: a platform is probed, and
    its status change pushed, once, not once per process."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        hub = app[HUB]
        checks = app[LEASES].start("hub-checks", lambda: hub.run_checks(interval))
        yield
        await checks.stop()

    return ctx
