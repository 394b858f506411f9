"""Composition root: builds the aiohttp application from :class:`Settings`.

Every resource lives in the app under a ``web.AppKey`` and is opened and closed
by a ``cleanup_ctx`` (aiohttp's "No Singletons Please"); nothing is module-level.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import secrets
import signal
import socket
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway import logs
from gateway.admin.api import admin_routes
from gateway.authorization import LocalListAuthorizer
from gateway.charging.profiles import PROFILES, OperatorProfiles
from gateway.cluster.node import ClusterNode
from gateway.cluster.ownership import ChargerRegistry, sweep_forever
from gateway.cluster.router import CommandRouter
from gateway.csms.core import CentralSystem
from gateway.csms.endpoint import EndpointConfig, OcppEndpoint
from gateway.csms.security import server_ssl_context
from gateway.csms.validation import SchemaValidators
from gateway.dashboard.web import add_dashboard
from gateway.demand.ven import Ven, VenConfig
from gateway.domain.authorization import ChainAuthorizer
from gateway.domain.clock import Clock, IdFactory, SystemClock, UuidFactory
from gateway.domain.errors import Unavailable
from gateway.domain.events import EventBus
from gateway.health import add_health
from gateway.hub.directory import HostedParty
from gateway.hub.server import build_hub_app, hub_version_url
from gateway.hub.service import HUB, Hub, HubConfig, hub_checks_ctx
from gateway.keys import (
    ADMIN_TOKEN,
    AUTHORIZER,
    BUS,
    CLOCK,
    CLUSTER,
    CSMS,
    ENDPOINT,
    HISTORY,
    HTTP,
    IDS,
    ROUTER,
    SETTINGS,
    STORE,
)
from gateway.leases import LEASES, Leases, holder_id
from gateway.locallist.service import LOCAL_LISTS, LocalLists
from gateway.memory import native_trimmer, releaser
from gateway.monitoring import METRICS, add_metrics
from gateway.pki import certificate_issuers, certificates_ctx
from gateway.refresh import refresh_ctx
from gateway.reports.recorder import StatusRecorder, purge_forever
from gateway.roaming.catalog import (
    LOCATION_OBJECT,
    LocationService,
    Party,
    TariffService,
    initial_push,
)
from gateway.roaming.charging_profiles import ChargingProfilesReceiver
from gateway.roaming.commands import CommandsReceiver
from gateway.roaming.location_pages import NOTICE as LOCATION_NOTICE
from gateway.roaming.outbox import OUTBOX, OUTBOX_WORKER, RetryPolicy, make_outbox_ctx
from gateway.roaming.partners import OCPI_VERSION, OurIdentity, PartnerRegistry
from gateway.roaming.payments import MODULE as PAYMENTS_MODULE
from gateway.roaming.payments import (
    PAYMENTS,
    PaymentsService,
    PaymentsSlot,
    payments_operations,
    with_preauthorize,
)
from gateway.roaming.providers import PROVIDERS, CpoProviders
from gateway.roaming.pushes import PLANNER, PushPlanner
from gateway.roaming.server import (
    REGISTRY,
    ServedVersion,
    build_ocpi_app,
    cpo_version,
    emsp_party,
    mount_ocpi_app,
)
from gateway.roaming.sessions import SESSION_OBJECT, SessionService
from gateway.roaming.tokens import (
    OfflineTokens,
    RoamingAuthorizer,
    TokenDirectory,
    TokensReceiver,
)
from gateway.roaming.vault import SecretKeyError, TokenVault, load_token_vault
from gateway.settings import ConfigError, Settings
from gateway.smart.manager import SITES, SiteManager
from gateway.storage.base import StorageError
from gateway.storage.factory import open_store
from gateway.trail import add_trail
from ocpi.hub.http1 import Http1Client
from ocpi.server import (
    READ_TIMEOUT_KEY,
    Operation,
    cdrs_sender_operations,
    cdrs_sender_routes,
    charging_profiles_receiver_operations,
    charging_profiles_receiver_routes,
    commands_receiver_operations,
    commands_receiver_routes,
    locations_sender_operations,
    locations_sender_routes,
    sessions_sender_operations,
    sessions_sender_routes,
    tariffs_sender_operations,
    tariffs_sender_routes,
    tokens_receiver_operations,
    tokens_receiver_routes,
)
from ocpi.transport import PartyId, json_dumps
from ocpi.v221 import BusinessDetails, CredentialsRole, Endpoint, InterfaceRole, ModuleID, Role
from ocpi.version_adapters import CpoModules, cpo_operations

log = logging.getLogger(__name__)

# WebSocket close code 1001 "going away": the server is shutting down (RFC 6455 7.4.1).
CLOSE_GOING_AWAY = 1001


def load_admin_token(settings: Settings) -> tuple[str, bool]:
    """The admin bearer token and whether it was generated just now."""
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value(), False
    path = settings.data_dir / "admin_token"
    if path.is_file():
        return path.read_text().strip(), False
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    # Written whole to a private file, then linked into place: two first starts at once
    # never see a half-written token, and the one that loses the race reads the winner's.
    fd, scratch = tempfile.mkstemp(dir=settings.data_dir, prefix=".admin_token.")
    try:
        with os.fdopen(fd, "w") as f:  # mkstemp: mode 0600
            f.write(token + "\n")
        try:
            os.link(scratch, path)
        except FileExistsError:
            return path.read_text().strip(), False
    finally:
        os.unlink(scratch)
    return token, True


def token_vault(settings: Settings) -> TokenVault:
    """The key for the tokens we send to partners (:mod:`gateway.roaming.vault`)."""
    key = settings.secret_key.get_secret_value() if settings.secret_key is not None else None
    return load_token_vault(key, settings.data_dir, shared_storage=settings.uses_redis)


async def _core_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = await open_store(
        data_dir=settings.data_dir,
        redis_url=settings.redis_url,
        redis_prefix=settings.redis_prefix,
        retry_seconds=settings.storage_retry_seconds,
        redis_sentinel=settings.redis_sentinel(),
        writer_processes=settings.writer_processes,
    )
    app[STORE] = store
    node_id = holder_id(app[IDS])
    # The once-per-cluster background jobs run under leases in the store (gateway.leases).
    app[LEASES] = Leases(store.leases, node_id, settings.lease_seconds)
    # Messages between the processes sharing the store (gateway.cluster): subscribed
    # before anything can change, so that no change made by another process is missed.
    node = ClusterNode(store.messages, node_id)
    try:
        await node.start()
    except BaseException:
        await store.close()
        raise
    app[CLUSTER] = node
    authorizer = ChainAuthorizer([LocalListAuthorizer(store.tokens, app[CLOCK])])
    app[AUTHORIZER] = authorizer
    # Which process holds each charger (gateway.cluster.ownership), kept with the
    # leases' TTL.
    registry = ChargerRegistry(store.owners, node, app[CLOCK], settings.lease_seconds)
    csms = CentralSystem(
        store=store,
        bus=app[BUS],
        authorizer=authorizer,
        clock=app[CLOCK],
        ids=app[IDS],
        heartbeat_interval=settings.heartbeat_interval,
        heartbeat_grace=settings.heartbeat_grace,
        ownership=registry,
        profile_report_timeout=settings.profile_report_timeout,
    )
    registry.attach(csms)
    csms.device_model.alerts_kept = settings.device_alerts_kept
    app[CSMS] = csms
    router = CommandRouter(
        csms, node, registry, store.charger_states, app[IDS], settings.call_timeout
    )
    app[ROUTER] = router
    app[ENDPOINT] = OcppEndpoint(
        csms,
        SchemaValidators(),
        EndpointConfig(
            auto_register=settings.auto_register,
            require_client_cert=settings.tls_client_ca is not None,
            cn_is_charger_id=settings.tls_cn_is_charger_id,
            max_frame_bytes=settings.max_frame_bytes,
            call_timeout=settings.call_timeout,
            unauthenticated_per_minute=settings.unauthenticated_per_minute,
            unauthenticated_per_address=settings.unauthenticated_per_address,
        ),
        trim=releaser(store.backend.release_memory, native=native_trimmer()),
    )
    renewals = asyncio.create_task(registry.run_renewals(), name="ownership-renewals")
    # Chargers a process left recorded as connected when it died (or, with one process,
    # the previous run) are recorded offline once per cluster: at each gain of the lease
    # (so at the start of a one-process gateway) and every 4 TTLs.
    sweep = app[LEASES].start(
        "chargers",
        lambda: sweep_forever(csms, store.charger_states, registry, 4 * settings.lease_seconds),
    )
    yield
    await sweep.stop()
    renewals.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await renewals
    await router.close()
    await registry.close()
    await node.stop()
    await store.close()


def our_identity(settings: Settings) -> OurIdentity:
    roles = [
        CredentialsRole(
            role=Role.CPO,
            business_details=BusinessDetails(name=p.name, website=p.website),
            party_id=p.party_id,
            country_code=p.country_code,
        )
        for p in settings.parties
    ]
    return OurIdentity(versions_url=f"{settings.base_url}/ocpi/versions", roles=roles)


def retry_policy(settings: Settings) -> RetryPolicy:
    """Pushes are retried with backoff up to ``outbox_retry_cap`` apart for
    ``outbox_give_up_hours``: a partner's outage of a weekend must not turn its CDRs
    into work for the operator."""
    return RetryPolicy(
        cap=settings.outbox_retry_cap,
        max_attempts=None,
        max_age=timedelta(hours=settings.outbox_give_up_hours),
    )


def hub_identity(settings: Settings) -> OurIdentity:
    role = CredentialsRole(
        role=Role.HUB,
        business_details=BusinessDetails(name=settings.hub_name),
        party_id=settings.hub_party_id,
        country_code=settings.hub_country_code,
    )
    return OurIdentity(versions_url=f"{settings.base_url}/ocpi/hub/versions", roles=[role])


def ocpi_endpoints(settings: Settings) -> list[Endpoint]:
    """The modules the gateway serves, for its OCPI version details."""
    base = f"{settings.base_url}/ocpi/{OCPI_VERSION}"
    modules = [
        ("credentials", InterfaceRole.SENDER),
        ("credentials", InterfaceRole.RECEIVER),
        ("locations", InterfaceRole.SENDER),
        ("tariffs", InterfaceRole.SENDER),
        ("tokens", InterfaceRole.RECEIVER),
        ("sessions", InterfaceRole.SENDER),
        ("cdrs", InterfaceRole.SENDER),
        ("commands", InterfaceRole.RECEIVER),
        ("chargingprofiles", InterfaceRole.RECEIVER),
    ]
    return [Endpoint(identifier=m, role=r, url=f"{base}/{m}") for m, r in modules]


def ocpi_routes(providers: CpoProviders) -> list[web.RouteDef]:
    return [
        *locations_sender_routes(providers),
        *tariffs_sender_routes(providers),
        *tokens_receiver_routes(providers),
        *sessions_sender_routes(providers),
        *cdrs_sender_routes(providers),
        *commands_receiver_routes(providers),
        *charging_profiles_receiver_routes(providers),
    ]


def ocpi_other_versions(
    settings: Settings, providers: CpoProviders, clock: Clock, payments: PaymentsSlot
) -> list[ServedVersion]:
    """The CPO interface in OCPI 2.1.1 and 2.3.0: the same providers, through the
    version adapters (ocpi.version_adapters); 2.3.0 adds the Payments module."""
    modules = CpoModules(
        providers, providers, providers, providers, providers, providers, providers
    )
    served = []
    for version in ("2.1.1", "2.3.0"):
        operations = cpo_operations(version, modules, party_of=emsp_party, now=clock.now)
        if version == "2.3.0":
            operations[PAYMENTS_MODULE] = payments_operations(payments)
            operations["tariffs"] = with_preauthorize(operations["tariffs"], payments)
        served.append(cpo_version(f"{settings.base_url}/ocpi/{version}", version, operations))
    return served


def local_operations(
    providers: CpoProviders,
) -> dict[tuple[str, InterfaceRole], list[Operation]]:
    """The hosted CPOs' module operations, for the hub to call in-process."""
    return {
        (ModuleID.LOCATIONS, InterfaceRole.SENDER): locations_sender_operations(providers),
        (ModuleID.TARIFFS, InterfaceRole.SENDER): tariffs_sender_operations(providers),
        (ModuleID.TOKENS, InterfaceRole.RECEIVER): tokens_receiver_operations(providers),
        (ModuleID.SESSIONS, InterfaceRole.SENDER): sessions_sender_operations(providers),
        (ModuleID.CDRS, InterfaceRole.SENDER): cdrs_sender_operations(providers),
        (ModuleID.COMMANDS, InterfaceRole.RECEIVER): commands_receiver_operations(providers),
        (ModuleID.CHARGING_PROFILES, InterfaceRole.RECEIVER): (
            charging_profiles_receiver_operations(providers)
        ),
    }


async def _history_ctx(app: web.Application) -> AsyncIterator[None]:
    # The status history of the uptime and fault reports (gateway.reports): written in
    # batches off the chargers' path; its retention once per cluster.
    store, clock = app[STORE], app[CLOCK]
    recorder = StatusRecorder(store.status_history, clock)
    app[HISTORY] = recorder
    app[BUS].listen(recorder.record, *recorder.EVENTS)
    recorder.start()
    days = app[SETTINGS].status_history_days
    job = app[LEASES].start(
        "status-history", lambda: purge_forever(store.status_history, clock, days)
    )
    yield
    await job.stop()
    await recorder.close()


async def _profiles_ctx(app: web.Application) -> AsyncIterator[None]:
    # The operator's charging profiles, sent again when a charger boots or reconnects.
    store = app[STORE]
    profiles = OperatorProfiles(
        store.charging_profiles,
        store.transactions,
        app[ROUTER],
        app[CLOCK],
        app[IDS],
        online_settle=app[SETTINGS].reconnect_settle,
    )
    app[PROFILES] = profiles
    app[BUS].subscribe(profiles.on_event, *profiles.EVENTS)
    yield
    await profiles.close()


async def _local_lists_ctx(app: web.Application) -> AsyncIterator[None]:
    # Local authorization lists (gateway.locallist): driven by the process holding each
    # charger; any process may update one through the router, under a per-charger lease.
    settings, csms = app[SETTINGS], app[CSMS]
    lists = LocalLists(
        app[STORE],
        app[ROUTER],
        app[CLOCK],
        app[LEASES].store,
        app[LEASES].holder,
        enabled=settings.local_list,
        max_entries=settings.local_list_max_entries,
        interval=settings.local_list_interval,
        lease_ttl=max(60.0, 4 * settings.call_timeout),
        settle=settings.reconnect_settle,
        held=lambda: [c.charger_id for c in csms.connections()],
    )
    app[LOCAL_LISTS] = lists
    app[BUS].subscribe(lists.on_event, *lists.EVENTS)
    loop = asyncio.create_task(lists.run(), name="local-lists")
    yield
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    await lists.close()


async def _sites_ctx(app: web.Application) -> AsyncIterator[None]:
    # Site load management (gateway.smart): events from every process, one allocator
    # per site in the holder of the "sites" lease, commands through the router.
    profiles = app[PROVIDERS].charging_profiles
    settings = app[SETTINGS]
    sites = SiteManager(
        app[STORE],
        app[ROUTER],
        app[CLOCK],
        app[CLUSTER],
        tick=settings.site_tick,
        resync=settings.site_resync_interval,
        retry_failed=settings.site_retry_interval,
        online_grace=settings.reconnect_settle,
        on_limit_changed=profiles.charger_limits_changed if profiles is not None else None,
    )
    app[SITES] = sites
    app[BUS].subscribe(sites.on_event, *sites.EVENTS)
    job = app[LEASES].start("sites", sites.run)
    yield
    await job.stop()
    await sites.close()


def ven_config(settings: Settings) -> VenConfig | None:
    """The OpenADR VEN's configuration (None without a VTN); a setting it cannot run with
    raises :class:`ConfigError` (checked before anything is served)."""
    if settings.openadr_vtn_url is None:
        for field in ("openadr_cert", "openadr_key", "openadr_ca_file"):
            if getattr(settings, field) is not None:
                raise ConfigError(field, "needs GATEWAY_OPENADR_VTN_URL as well")
        return None
    if not settings.openadr_vtn_url.startswith(("http://", "https://")):
        raise ConfigError("openadr_vtn_url", "must be an http:// or https:// URL")
    if (settings.openadr_cert is None) != (settings.openadr_key is None):
        raise ConfigError(("openadr_cert", "openadr_key"), "give both or neither")
    for field in ("openadr_cert", "openadr_key", "openadr_ca_file"):
        path = getattr(settings, field)
        if path is not None and not path.is_file():
            raise ConfigError(field, f"no such file: {path}")
    levels = tuple(Decimal(x.strip()) for x in settings.openadr_simple_levels.split(","))
    return VenConfig(
        vtn_url=settings.openadr_vtn_url,
        ven_name=settings.openadr_ven_name,
        cert=settings.openadr_cert,
        key=settings.openadr_key,
        ca_file=settings.openadr_ca_file,
        vtn_fingerprint=settings.openadr_vtn_fingerprint,
        simple_levels=levels,
        report_every=timedelta(seconds=settings.openadr_report_interval),
        sites_every=timedelta(seconds=settings.openadr_report_interval),
    )


async def _demand_ctx(app: web.Application) -> AsyncIterator[None]:
    """The OpenADR VEN (gateway.demand), when a VTN is configured: in the holder of the
    "sites" lease, beside the site manager whose live figures its reports read (a process
    may run several jobs under one lease it holds)."""
    config = ven_config(app[SETTINGS])
    if config is None:
        yield
        return
    sites = app[SITES]
    ven = Ven(config, sites, app[CLOCK], sites)
    job = app[LEASES].start("sites", ven.run)
    yield
    await job.stop()


async def _roaming_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # Its requests are counted by module, method and status (gateway.metrics).
    traces = [app[METRICS].client_trace()] if METRICS in app else []
    http = aiohttp.ClientSession(trace_configs=traces)
    app[HTTP] = http
    registry = PartnerRegistry(
        app[STORE].partners,
        app[CLOCK],
        app[IDS],
        our_identity(settings),
        http,
        vault=token_vault(settings),
        timeout=settings.ocpi_timeout,
        hub_identity=hub_identity(settings),
    )
    try:
        await registry.load()
    except BaseException:  # e.g. SecretKeyError: the gateway does not start
        await http.close()
        raise
    app[REGISTRY] = registry
    planner = PushPlanner(registry, app[CLOCK], app[IDS])
    app[PLANNER] = planner
    parties = [Party(p.country_code, p.party_id) for p in settings.parties]
    providers = app[PROVIDERS]
    notify = _outbox_notifier(app)
    references = asyncio.Lock()  # a location naming a tariff vs the tariff's deletion
    providers.locations = LocationService(
        app[STORE], planner, app[CLOCK], parties, notify, references=references
    )
    providers.tariffs = TariffService(
        app[STORE], planner, app[CLOCK], parties, notify, references=references
    )
    app[BUS].subscribe(providers.locations.on_event, *providers.locations.EVENTS)
    # The Sender's location pages, kept current across processes (location notices).
    pages, node = providers.locations.pages, app[CLUSTER]
    node.on(LOCATION_NOTICE, pages.on_notice)
    node.on_gap(pages.reload)
    pages.announce_with(node.broadcast, node.id)
    pages.start()
    directory = TokenDirectory(app[STORE])
    providers.sessions = SessionService(
        app[STORE], directory, planner, app[CLOCK], app[IDS], notify
    )
    app[BUS].subscribe(providers.sessions.on_event, *providers.sessions.EVENTS)
    # Payment terminals of PTPs; a CDR's invoice_reference_id when the CPO invoices.
    payments = PaymentsService(app[STORE], registry, planner, app[CLOCK], notify)
    app[PAYMENTS].service = payments
    providers.sessions.invoice_reference = payments.invoice_reference
    # Chargers that display costs (2.0.1 TariffCostCtrlr) get them from the tariff engine.
    app[CSMS].cost = providers.sessions
    # Pushed tokens change the chargers' local lists (gateway.locallist).
    providers.tokens = TokensReceiver(
        app[STORE], directory, on_change=app[LOCAL_LISTS].token_changed
    )
    app[LOCAL_LISTS].roaming = OfflineTokens(app[STORE], directory)
    roaming_authorizer = RoamingAuthorizer(
        app[STORE],
        directory,
        registry,
        planner,
        app[CLOCK],
        budget=settings.realtime_auth_timeout,
    )
    if METRICS in app:
        roaming_authorizer.observe = app[METRICS].realtime_authorization
    app[AUTHORIZER].add(roaming_authorizer)
    csms = app[CSMS]
    providers.commands = CommandsReceiver(
        app[STORE],
        app[ROUTER],
        planner,
        notify,
        timeout=int(settings.call_timeout),
        next_request_id=csms.next_request_id,
        remote_starts=providers.sessions,
    )
    providers.charging_profiles = ChargingProfilesReceiver(
        app[STORE],
        app[ROUTER],
        planner,
        registry,
        app[CLOCK],
        notify,
        timeout=int(settings.call_timeout),
        next_request_id=csms.next_request_id,
        min_interval=settings.ocpi_profile_min_interval,
    )
    # Sessions and CDRs a crash may have cut off, rebuilt in the background, and the
    # START_SESSIONs that never started expired: work on the shared storage, so once per
    # cluster, by the holder of the "sessions" lease (the resync runs each time a process
    # gains it: after a start of the whole cluster, and when a survivor takes over).
    sessions, clock = providers.sessions, app[CLOCK]
    interval = settings.session_retry_interval
    resync = app[LEASES].start(
        "sessions", lambda: _resync(sessions, clock.now() - RESYNC_WINDOW, interval)
    )
    # A failed session update is stored for the lease's job to retry; one that could not
    # be stored (the store was out) is kept in this process's memory until it can be.
    retries = asyncio.create_task(_store_unsaved(sessions, interval), name="session-failures")
    yield
    retries.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await retries
    await resync.stop()
    await providers.commands.close()
    await providers.charging_profiles.close()
    await pages.close()
    await http.close()


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    providers = app[PROVIDERS]

    async def local_owner(kind: str, object_id: str) -> PartyId | None:
        if kind == "session-cpo" and providers.sessions is not None:
            # Charging profiles for a hosted CPO's session, by open routing.
            session = await providers.sessions.get(object_id)
            return None if session is None else PartyId(session.country_code, session.party_id)
        if kind != "location" or providers.locations is None:
            return None
        location = await providers.locations.get(object_id)
        return None if location is None else PartyId(location.country_code, location.party_id)

    # The hub's own HTTP client for the requests it forwards (ocpi.hub.http1).
    client = Http1Client()
    hub = Hub(
        HubConfig(
            party=PartyId(settings.hub_country_code, settings.hub_party_id),
            base_url=hub_version_url(settings.base_url),
            request_timeout=settings.ocpi_timeout,
            silence=timedelta(seconds=settings.hub_silence),
            open_get_list_is_get_all=settings.hub_open_get_all,
            session_index_retention=timedelta(days=settings.hub_session_index_days),
        ),
        app[REGISTRY],
        app[STORE],
        app[OUTBOX],
        app[CLOCK],
        app[IDS],
        client,
        [HostedParty(PartyId(p.country_code, p.party_id), p.name) for p in settings.parties],
        local_operations(providers),
        local_owner=local_owner,
        on_sent=app[METRICS].count_sent if METRICS in app else None,
    )
    await hub.start()
    app[HUB] = hub
    # The hosted CPOs push to the hub's platforms as the hub would route their pushes.
    app[PLANNER].audience = hub
    yield
    await client.close()


async def _catalog_pushes_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the outbox and the hub: a PATCH of a location answered "unknown object" is
    replaced by a PUT of the whole location, and a partner that registers gets every
    tariff and location it may see (after the hub has learnt its parties)."""
    providers = app[PROVIDERS]
    locations, tariffs = providers.locations, providers.tariffs
    if locations is not None and tariffs is not None:
        app[OUTBOX_WORKER].on_unknown_object(LOCATION_OBJECT, locations.get)
        app[REGISTRY].on_change(initial_push(locations, tariffs))
    if providers.sessions is not None:  # likewise a session PATCH: a PUT of the session
        app[OUTBOX_WORKER].on_unknown_object(SESSION_OBJECT, providers.sessions.get)
    yield


# Transactions started this recently are checked at start-up (longer sessions are rare).
RESYNC_WINDOW = timedelta(days=2)


async def _resync(sessions: SessionService, since: datetime, retry_interval: float) -> None:
    """The "sessions" lease's job: the resync, then every interval the expiry of PENDING
    sessions and the retry of the session updates that failed."""
    # The resync is tried again every interval until it has gone through (a storage
    # outage at start must not leave the sessions a crash cut off unbuilt).
    resynced = False
    while True:
        if not resynced:
            try:
                handled = await sessions.resync(since)
            except Unavailable as exc:
                log.warning("session resync: %s; trying again in %g s", exc, retry_interval)
            except Exception:
                log.exception("session resync failed; trying again in %g s", retry_interval)
            else:
                resynced = True
                if handled:
                    log.warning(
                        "rebuilt the sessions/CDRs of %d transactions after a restart", handled
                    )
                else:
                    log.info("session resync: no session or CDR to rebuild")
        await asyncio.sleep(retry_interval)
        try:
            await sessions.expire_pending()  # START_SESSIONs that never started: INVALID
        except Unavailable as exc:
            log.warning("expiring pending sessions: %s", exc)
        except Exception:
            log.exception("expiring pending sessions failed")
        # The session updates that failed, in any process (stored), handled again.
        try:
            retried = await sessions.retry_failed()
        except Unavailable as exc:
            log.warning("retrying failed sessions: %s", exc)
        except Exception:
            log.exception("retrying failed sessions failed")
        else:
            if retried:
                log.warning(
                    "handled %d transactions again whose session update had failed", retried
                )


async def _store_unsaved(sessions: SessionService, retry_interval: float) -> None:
    """Every interval, the failures this process could not store (the store was out),
    stored for the "sessions" lease's holder to handle."""
    while True:
        await asyncio.sleep(retry_interval)
        try:
            await sessions.store_unsaved()
        except Unavailable as exc:
            log.warning("storing failed session updates: %s", exc)
        except Exception:
            log.exception("storing failed session updates failed")


def _outbox_notifier(app: web.Application) -> Callable[[], None]:
    """Wakes the outbox worker after a push was stored (it starts after the services)."""

    def notify() -> None:
        if OUTBOX_WORKER in app:
            app[OUTBOX_WORKER].notify()

    return notify


async def _watchdog_ctx(app: web.Application) -> AsyncIterator[None]:
    # Not under a lease: every process checks (and closes) its own chargers' connections.
    csms = app[CSMS]
    period = min(30.0, csms.heartbeat_interval / 2)

    async def watch() -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await csms.check_liveness()
            except Exception:
                log.exception("liveness check failed")

    task = asyncio.create_task(watch(), name="heartbeat-watchdog")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_chargers(app: web.Application) -> None:
    # on_shutdown runs before cleanup, so each charger gets a close frame and its
    # connection's end drains pending CALLs into the still-open store. aiohttp does not
    # know the chargers' connections once their handshake is done (gateway.csms.wsproto):
    # the endpoint closes those left and waits for their ends.
    if CSMS in app:
        await app[CSMS].close_all(CLOSE_GOING_AWAY, "server shutting down")
    if ENDPOINT in app:
        await app[ENDPOINT].close_all(CLOSE_GOING_AWAY, "server shutting down")


async def _ocpp_ws(request: web.Request) -> web.StreamResponse:
    return await request.app[ENDPOINT].handle(request)


@web.middleware
def _root_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """The first middleware of every request, not a coroutine (it hands on the next
    step's coroutine for aiohttp to await, without a frame of its own):

    - the OCPP WebSocket route skips the middlewares after this one (none acts on it:
      the trail and metrics of OCPP frames are recorded by the connection itself), so
      that no middleware frame stays suspended for the life of each charger's connection
      (about 0.3 kB each, 1.3 kB per idle charger);
    - a request no route takes (a path outside every URL space, such as the ``/`` a
      client makes of ``/ocpi/2.2.1/tokens/../../..``) gets JSON like every other answer,
      ``{"error": ...}``. The URL spaces answer their own errors (OCPI envelopes, the
      admin API's), authentication first; this only sees the root router's.
    """
    match_info = request.match_info
    if match_info.handler is _ocpp_ws:
        return request.app[ENDPOINT].handle(request)
    if getattr(match_info, "http_exception", None) is None:
        return handler(request)
    return _unrouted(request, handler)


def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    ids: IdFactory | None = None,
    admin_token: str | None = None,
) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024, middlewares=[_root_middleware])
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[IDS] = ids or UuidFactory()
    app[BUS] = EventBus()
    app[ADMIN_TOKEN] = admin_token if admin_token is not None else load_admin_token(settings)[0]
    app[READ_TIMEOUT_KEY] = settings.request_read_timeout  # OCPI bodies (ocpi.server)
    app.cleanup_ctx.append(_core_ctx)
    app.cleanup_ctx.append(_history_ctx)  # closed after the chargers' last statuses
    app.cleanup_ctx.append(_profiles_ctx)
    app.cleanup_ctx.append(certificates_ctx)  # charger certificates (gateway.pki)
    app.cleanup_ctx.append(_local_lists_ctx)  # before the roaming side, which tells it
    app.cleanup_ctx.append(_roaming_ctx)
    app.cleanup_ctx.append(
        make_outbox_ctx(
            STORE,
            CLOCK,
            IDS,
            poll_interval=settings.outbox_poll_interval,
            retention_days=settings.outbox_retention_days,
            policy=retry_policy(settings),
        )
    )
    app.cleanup_ctx.append(_hub_ctx)
    app.cleanup_ctx.append(refresh_ctx)  # after the hub: gateway.refresh
    app.cleanup_ctx.append(_catalog_pushes_ctx)
    app.cleanup_ctx.append(hub_checks_ctx(settings.hub_check_interval))
    app.cleanup_ctx.append(_watchdog_ctx)
    app.cleanup_ctx.append(_sites_ctx)  # after the roaming side: it tells the eMSPs
    app.cleanup_ctx.append(_demand_ctx)  # demand response into the sites' limits
    add_trail(app)  # the message trail: after the parts it records, before the metrics
    if settings.metrics:
        add_metrics(app)  # GET /metrics; its context last: it wires the parts above
    add_health(app)  # first on_shutdown: not ready before the chargers are closed
    add_dashboard(app)  # /dashboard/ and the admin API's event feed (GET /admin/events)
    app.on_shutdown.append(_close_chargers)
    app.router.add_get("/ocpp/{charge_point_id}", _ocpp_ws)
    app.add_subapp("/admin", admin_routes())
    providers = CpoProviders()
    app[PROVIDERS] = providers
    app[PAYMENTS] = PaymentsSlot()  # OCPI 2.3.0 Payments (gateway.roaming.payments)
    # Before /ocpi, whose prefix it shares.
    mount_ocpi_app(app, build_hub_app(settings.base_url))
    mount_ocpi_app(
        app,
        build_ocpi_app(
            settings.base_url,
            ocpi_endpoints(settings),
            ocpi_routes(providers),
            versions=ocpi_other_versions(settings, providers, app[CLOCK], app[PAYMENTS]),
        ),
    )
    return app


async def _unrouted(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc is not getattr(request.match_info, "http_exception", None):
            raise
        reason = "no such endpoint" if exc.status == 404 else exc.reason
        return web.Response(
            status=exc.status,
            text=json_dumps({"error": reason}),
            content_type="application/json",
            headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
        )


def _freeze_gc(app: web.Application) -> None:
    # Objects alive after start-up never die; freezing them keeps full
    # collections from walking 10,000 connections (300-400 ms pauses measured).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


async def _on_startup(app: web.Application) -> None:
    _freeze_gc(app)


def _event_loop() -> asyncio.AbstractEventLoop:
    # uvloop cuts the server's CPU per OCPP message by about a third (tests/bench).
    try:
        import uvloop
    except ImportError:  # not on every platform; the standard loop works too
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _storage_setting(settings: Settings) -> str:
    """The setting to name when the store cannot be opened."""
    if settings.redis_sentinels is not None:
        return "redis_sentinels"
    return "redis_url" if settings.uses_redis else "data_dir"


def _storage_name(settings: Settings) -> str:
    if settings.redis_sentinels is not None:
        return f"redis via Sentinel {settings.redis_sentinel_service}"
    return "redis" if settings.uses_redis else f"sqlite in {settings.data_dir}"


def run_server(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT. A setting the gateway cannot start with raises
    :class:`ConfigError` before anything is served (the command line turns it into one
    line); "listening on" is logged once the port accepts connections."""
    ssl_context = _ssl_context(settings)
    ven_config(settings)  # a VEN setting it cannot run with: one line, before anything
    settings.redis_sentinel()  # a Sentinel setting it cannot use: one line, at once
    certificate_issuers(settings, SystemClock())  # a CA it cannot load: one line, at once
    # Text or JSON lines, with the charger, partner, OCPI request and transaction they
    # are about, and no raw control characters from input (gateway.logs, gateway.logsafe).
    logs.configure(settings.log_level, settings.log_format, sys.stderr)
    if not settings.uses_redis or settings.admin_token is None:
        _check_data_dir(settings.data_dir)
    sockets = _listening_sockets(settings.host, settings.port)
    try:
        try:
            token_vault(settings)  # a missing or malformed key: one line, before anything runs
        except SecretKeyError as exc:
            raise ConfigError((), str(exc)) from None  # the message names the key's setting
        try:
            token, generated = load_admin_token(settings)
        except OSError as exc:
            raise ConfigError("data_dir", f"cannot keep the admin token there: {exc}") from None
        if generated:
            # Printed once, at the start that created it; it is kept in the data dir.
            print(f"admin API token (saved in {Path(settings.data_dir) / 'admin_token'}): {token}")
            sys.stdout.flush()
        app = build_app(settings, admin_token=token)
        app.on_startup.append(_on_startup)
        with asyncio.Runner(loop_factory=_event_loop) as runner:
            runner.run(_serve(app, settings, sockets, ssl_context))
    finally:
        for sock in sockets:
            sock.close()
    return 0


async def _serve(
    app: web.Application,
    settings: Settings,
    sockets: list[socket.socket],
    ssl_context: ssl.SSLContext | None,
) -> None:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=15)
    try:
        try:
            await runner.setup()
        except StorageError as exc:
            # Opening the store is the first thing the start-up does.
            raise ConfigError(_storage_setting(settings), str(exc)) from None
        except SecretKeyError as exc:  # a stored token the key does not open: a wrong key
            raise ConfigError((), str(exc)) from None
        sites = listening_sites(runner, sockets, ssl_context, settings)
        for site in sites:
            await site.start()
        log.info(
            "ocpi-gateway listening on %s (public URL %s; storage: %s)",
            ", ".join(site.name for site in sites),
            settings.base_url,
            _storage_name(settings),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            # Windows has no loop signal handlers; Ctrl-C still ends the run there.
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        # Stops listening, closes every charger (1001), waits for the handlers, then
        # runs the cleanup contexts (the store last).
        await runner.cleanup()


def listening_sites(
    runner: web.AppRunner,
    sockets: list[socket.socket],
    ssl_context: ssl.SSLContext | None,
    settings: Settings,
) -> list[web.SockSite]:
    """A site per bound socket, with the accept queue of ``GATEWAY_LISTEN_BACKLOG``."""
    return [
        web.SockSite(runner, sock, ssl_context=ssl_context, backlog=settings.listen_backlog)
        for sock in sockets
    ]


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.tls_cert is None:
        if settings.tls_client_ca is not None:
            raise ConfigError("tls_client_ca", "needs a TLS certificate and key as well")
        if settings.tls_key is not None:
            raise ConfigError("tls_key", "needs a TLS certificate as well")
        return None
    if settings.tls_key is None:
        raise ConfigError("tls_key", "required with a TLS certificate")
    for field in ("tls_cert", "tls_key", "tls_client_ca"):
        path = getattr(settings, field)
        if path is not None and not path.is_file():
            raise ConfigError(field, f"no such file: {path}")
    try:
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        probe.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(("tls_cert", "tls_key"), f"cannot use them together: {exc}") from None
    try:
        return server_ssl_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError("tls_client_ca", f"not a PEM CA bundle: {exc}") from None


def _check_data_dir(data_dir: Path) -> None:
    """The data dir exists (it is created) and takes new files."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        problem = f"{data_dir} is not a writable directory ({reason})"
        raise ConfigError("data_dir", problem) from None


def _listening_sockets(host: str, port: int) -> list[socket.socket]:
    """The sockets to serve on, bound (not yet listening) before anything else starts, so
    that a port in use is reported before the store is opened; one per address ``host``
    resolves to, as asyncio's create_server would bind."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError("host", f"cannot resolve {host!r}: {exc}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if os.name == "posix":
                # As asyncio does: a restart binds while old connections are in TIME_WAIT.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                # "::" and "0.0.0.0" both listed: each family on its own socket.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        where = f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError("port", f"{where} is already in use") from None
        if exc.errno == errno.EACCES:
            raise ConfigError("port", f"no permission to listen on {where}") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError("host", f"{host} is not an address of this machine") from None
        raise ConfigError(("host", "port"), f"cannot listen on {where}: {exc}") from None
    return sockets
