"""Prometheus metrics of one gateway process, served at ``GET /metrics``.

One :class:`Metrics` per app (``build_app`` creates it; the app holds it under
:data:`METRICS`), with its own ``CollectorRegistry``: never the library's global default
registry, so that two apps in one process (the tests) count apart. The parts that count
get it injected as plain callables or through the small protocols of their own packages
(``gateway.csms.core.OcppMetrics``), so that no layer imports what the architecture
forbids; this module depends on ``prometheus_client`` and aiohttp only.

Several processes: each serves its own counters, and Prometheus scrapes every process
(``sum()`` over the ``instance`` label gives the cluster). The gauges that describe the
cluster as a whole (outbox depth and oldest pending item per partner, active
transactions) come from the shared store and are served only by the one process whose
``cluster_gauges`` callable says so (the holder of the "outbox" lease), so summing over
processes never counts them twice.

Label sets are bounded: OCPP actions by the schemas (anything else is ``unknown``),
CALLERROR codes by OCPP-J (anything else ``other``), OCPI modules by OCPI 2.2.1's module
ids (else ``other``), partner ids by the operator's configuration; never a charger id,
a token or an object id.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

PREFIX = "ocpigw"

# OCPI 2.2.1 module identifiers (ModuleID) and the version endpoints: the OCPI label set.
OCPI_MODULES = frozenset(
    {
        "cdrs",
        "chargingprofiles",
        "commands",
        "credentials",
        "hubclientinfo",
        "locations",
        "sessions",
        "tariffs",
        "tokens",
        "versions",
    }
)
_METHODS = frozenset({"GET", "PUT", "PATCH", "POST", "DELETE", "HEAD", "OPTIONS"})

# Every CALLERROR code of OCPP-J 1.6 (4.2.3) and 2.0.1 / 2.1 (4.3), with 1.6's spellings.
OCPP_ERROR_CODES = frozenset(
    {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "FormatViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "OccurrenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
        "RpcFrameworkError",
        "MessageTypeNotSupported",
    }
)

# Round trips of the gateway's CALLs: a charger on a cellular link answers in 0.1-2 s;
# the call timeout (30 s by default) bounds the rest.
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A real-time authorization must fit the charger's patience (a few seconds at most).
AUTH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
# Storage writes: a Redis pipeline takes under a millisecond, an SQLite commit with
# fsync a few; tens of milliseconds mean trouble.
STORAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def ocpi_module(path: str) -> str:
    """The OCPI module a URL path addresses (its first segment that names one), else
    ``other``: the label stays bounded whatever the path holds."""
    for segment in path.split("/"):
        if segment in OCPI_MODULES:
            return segment
    return "other"


_PATHS_KEPT = 4096


def _method(method: str) -> str:
    upper = method.upper()
    return upper if upper in _METHODS else "other"


class OcppCounters:
    """The OCPP side's counters (``gateway.csms.core.OcppMetrics``), on the hot path:
    each label combination's child is resolved once and kept in a dict, so a message
    costs a dict lookup and a counter increment."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._received = Counter(
            f"{PREFIX}_ocpp_calls_received",
            "CALLs received from chargers, by OCPP version, action and outcome (result: "
            "answered with a CALLRESULT, error: with a CALLERROR)",
            ["ocpp_version", "action", "outcome"],
            registry=registry,
        )
        self._sent = Counter(
            f"{PREFIX}_ocpp_calls_sent",
            "CALLs the gateway sent to chargers, by OCPP version, action and outcome "
            "(result, error: a CALLERROR, timeout, closed: the connection ended)",
            ["ocpp_version", "action", "outcome"],
            registry=registry,
        )
        self._errors = Counter(
            f"{PREFIX}_ocpp_callerrors",
            "CALLERROR frames by direction (sent: the gateway's answers, received: the "
            "chargers' answers to the gateway's CALLs) and error code",
            ["direction", "code"],
            registry=registry,
        )
        self._result_errors = Counter(
            f"{PREFIX}_ocpp_callresulterrors",
            "OCPP 2.1 CALLRESULTERROR frames by direction (sent: the gateway refused a "
            "charger's CALLRESULT, received: a charger refused the gateway's) and error code",
            ["direction", "code"],
            registry=registry,
        )
        self._sends = Counter(
            f"{PREFIX}_ocpp_sends_received",
            "OCPP 2.1 SEND messages (unconfirmed, never answered) from chargers, by OCPP "
            "version, action and outcome (handled; dropped: malformed, unknown or invalid)",
            ["ocpp_version", "action", "outcome"],
            registry=registry,
        )
        self._round_trip = Histogram(
            f"{PREFIX}_ocpp_call_duration_seconds",
            "Round trip of the gateway's CALLs to chargers (sent to answer or timeout)",
            ["ocpp_version", "action"],
            buckets=CALL_BUCKETS,
            registry=registry,
        )
        self._received_children: dict[tuple[str, str, str], Any] = {}
        self._sent_children: dict[tuple[str, str, str], Any] = {}
        self._error_children: dict[tuple[str, str], Any] = {}
        self._trip_children: dict[tuple[str, str], Any] = {}
        self._other_children: dict[tuple[str, ...], Any] = {}

    def call_received(self, version: str, action: str, outcome: str) -> None:
        """``action`` is one of the schemas' (or ``unknown``): the caller bounds it."""
        key = (version, action, outcome)
        child = self._received_children.get(key)
        if child is None:
            child = self._received_children[key] = self._received.labels(*key)
        child.inc()

    def call_sent(self, version: str, action: str, outcome: str, seconds: float) -> None:
        key = (version, action, outcome)
        child = self._sent_children.get(key)
        if child is None:
            child = self._sent_children[key] = self._sent.labels(*key)
        child.inc()
        trip = self._trip_children.get(key[:2])
        if trip is None:
            trip = self._trip_children[key[:2]] = self._round_trip.labels(version, action)
        trip.observe(seconds)

    def callerror(self, direction: str, code: str) -> None:
        key = (direction, code if code in OCPP_ERROR_CODES else "other")
        child = self._error_children.get(key)
        if child is None:
            child = self._error_children[key] = self._errors.labels(*key)
        child.inc()

    def callresulterror(self, direction: str, code: str) -> None:
        key = ("resulterror", direction, code if code in OCPP_ERROR_CODES else "other")
        child = self._other_children.get(key)
        if child is None:
            child = self._other_children[key] = self._result_errors.labels(*key[1:])
        child.inc()

    def send_received(self, version: str, action: str, outcome: str) -> None:
        """``action`` is a SEND action of the schemas (or ``unknown``): the caller bounds it."""
        key = ("send", version, action, outcome)
        child = self._other_children.get(key)
        if child is None:
            child = self._other_children[key] = self._sends.labels(*key[1:])
        child.inc()


class _Scraped(Collector):
    """Gauges read when Prometheus scrapes (nothing on any hot path)."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


class Metrics:
    """Every metric of one gateway process; see the module docstring."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.ocpp = OcppCounters(r)
        self._energy = Counter(
            f"{PREFIX}_energy_delivered_watt_hours",
            "Energy of the transactions ended (meter stop minus meter start), in Wh",
            registry=r,
        )
        self._transactions = Counter(
            f"{PREFIX}_transactions",
            "Transactions by event (started, ended) in this process",
            ["event"],
            registry=r,
        )
        self._ocpi_served = Counter(
            f"{PREFIX}_ocpi_requests_served",
            "OCPI requests answered, by API (cpo, hub), module, method and HTTP status",
            ["api", "module", "method", "status"],
            registry=r,
        )
        self._served_children: dict[tuple[str, str, str, int], Any] = {}
        self._ocpi_sent_children: dict[tuple[str, str, str], Any] = {}
        # The module of each path sent to (the hub forwards to the same few, object by
        # object), kept until _PATHS_KEPT of them, then built anew.
        self._sent_modules: dict[str, str] = {}
        self._hub_children: dict[tuple[str, str], Any] = {}
        self._ocpi_sent = Counter(
            f"{PREFIX}_ocpi_requests_sent",
            "OCPI requests sent to partners, by module, method and HTTP status (timeout, "
            "error: no HTTP answer)",
            ["module", "method", "status"],
            registry=r,
        )
        self._pushes = Counter(
            f"{PREFIX}_ocpi_push_attempts",
            "Outbox deliveries by module and outcome (delivered; retry: failed, tried "
            "again later; failed: given up; error: the gateway's own failure)",
            ["module", "outcome"],
            registry=r,
        )
        self._hub = Counter(
            f"{PREFIX}_hub_forwards",
            "Requests the hub routed, by module and outcome (ok, rejected: a 4xx answer, "
            "failed: a 5xx answer or no answer)",
            ["module", "outcome"],
            registry=r,
        )
        self._auth = Histogram(
            f"{PREFIX}_ocpi_realtime_authorization_duration_seconds",
            "Real-time authorizations at an eMSP (OCPI tokens POST .../authorize), by "
            "outcome (answered, failed)",
            ["outcome"],
            buckets=AUTH_BUCKETS,
            registry=r,
        )
        self._storage = Histogram(
            f"{PREFIX}_storage_write_duration_seconds",
            "Storage writes: an SQLite write transaction (its commit included) or a "
            "Redis pipeline round trip, by backend",
            ["backend"],
            buckets=STORAGE_BUCKETS,
            registry=r,
        )
        self._gauges: list[Callable[[], Iterable[Metric]]] = []
        r.register(_Scraped(self._collect_gauges))

    # -- scrape-time gauges -----------------------------------------------------

    def add_gauges(self, collect: Callable[[], Iterable[Metric]]) -> None:
        """Metrics computed when scraped (from memory; see :meth:`refresh` for the store)."""
        self._gauges.append(collect)

    def _collect_gauges(self) -> Iterable[Metric]:
        for collect in self._gauges:
            try:
                yield from collect()
            except Exception:  # a gauge that fails must not cost the scrape the rest
                log.exception("metrics: collecting gauges failed")

    # -- callables for the parts that count -------------------------------------

    def transaction_started(self) -> None:
        self._transactions.labels("started").inc()

    def transaction_ended(self, energy_wh: float | None) -> None:
        self._transactions.labels("ended").inc()
        if energy_wh is not None and energy_wh > 0:
            self._energy.inc(energy_wh)

    def push_attempted(self, module: str | None, outcome: str) -> None:
        label = module if module in OCPI_MODULES else "other"
        self._pushes.labels(label, outcome).inc()

    def hub_forwarded(self, module: str, status: int | None) -> None:
        if status is None or status >= 500:
            outcome = "failed"
        elif status >= 400:
            outcome = "rejected"
        else:
            outcome = "ok"
        key = (module if module in OCPI_MODULES else "other", outcome)
        child = self._hub_children.get(key)
        if child is None:
            child = self._hub_children[key] = self._hub.labels(*key)
        child.inc()

    def realtime_authorization(self, seconds: float, answered: bool) -> None:
        self._auth.labels("answered" if answered else "failed").observe(seconds)

    def storage_observer(self, backend: str) -> Callable[[float], None]:
        """What the store calls with the duration of each write (possibly from its
        writer thread: prometheus_client's metrics are thread-safe)."""
        return self._storage.labels(backend).observe

    # -- OCPI requests ------------------------------------------------------------

    @web.middleware
    async def ocpi_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Counts every request under ``/ocpi/`` by module, method and status."""
        path = request.path
        if not path.startswith("/ocpi/"):
            return await handler(request)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self.ocpi_served(path, ocpi_module(path), request.method, status)

    def ocpi_served(self, path: str, module: str, method: str, status: int) -> None:
        """Count one OCPI request served: ``path`` under ``/ocpi/``, ``module`` its
        :func:`ocpi_module` (the message trail's middleware counts through this when
        both are on: it reads the module once for both)."""
        # Each label combination's child resolved once (as OcppCounters does): bounded
        # by the label sets (modules, methods, HTTP statuses).
        key = (
            "hub" if path.startswith("/ocpi/hub/") else "cpo",
            module,
            _method(method),
            status,
        )
        child = self._served_children.get(key)
        if child is None:
            child = self._served_children[key] = self._ocpi_served.labels(*key)
        child.inc()

    def client_trace(self) -> aiohttp.TraceConfig:
        """For the OCPI client session: counts each request sent by module (from the URL:
        OCPI URLs name their module), method and HTTP status."""
        trace = aiohttp.TraceConfig()

        async def end(
            session: aiohttp.ClientSession,
            context: SimpleNamespace,
            params: aiohttp.TraceRequestEndParams,
        ) -> None:
            self.count_sent(params.method, params.url.path, str(params.response.status))

        async def failed(
            session: aiohttp.ClientSession,
            context: SimpleNamespace,
            params: aiohttp.TraceRequestExceptionParams,
        ) -> None:
            error = params.exception
            status = "timeout" if isinstance(error, TimeoutError) else "error"
            self.count_sent(params.method, params.url.path, status)

        trace.on_request_end.append(end)
        trace.on_request_exception.append(failed)
        trace.freeze()
        return trace

    def count_sent(self, method: str, path: str, status: str) -> None:
        """One OCPI request sent (the aiohttp client's trace above; the hub's forwarding
        client calls it itself): status is the HTTP status, "timeout" or "error"."""
        # Resolved once per label combination (bounded: modules, methods, statuses), as
        # ocpi_served does: labels() per request was a measurable share of a hub forward.
        module = self._sent_modules.get(path)
        if module is None:
            if len(self._sent_modules) >= _PATHS_KEPT:
                self._sent_modules.clear()
            module = self._sent_modules[path] = ocpi_module(path)
        key = (module, _method(method), status)
        child = self._ocpi_sent_children.get(key)
        if child is None:
            child = self._ocpi_sent_children[key] = self._ocpi_sent.labels(*key)
        child.inc()

    # -- the endpoint -------------------------------------------------------------

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class ClusterGauges:
    """The cluster-wide gauges, read from the shared store at scrape time by the one
    process ``serving()`` says serves them: active transactions, and per partner the
    pending outbox items and the age of the oldest."""

    def __init__(
        self,
        serving: Callable[[], bool],
        active_transactions: Callable[[], Awaitable[int]],
        outbox_pending: Callable[[], Awaitable[dict[str, tuple[int, datetime | None]]]],
        now: Callable[[], datetime],
    ) -> None:
        self._serving = serving
        self._active = active_transactions
        self._pending = outbox_pending
        self._now = now
        self._latest: list[Metric] = []

    async def refresh(self) -> None:
        """Reads the store (the scrape handler awaits this before rendering)."""
        if not self._serving():
            self._latest = []
            return
        active = GaugeMetricFamily(
            f"{PREFIX}_transactions_active",
            "Transactions in progress in the whole cluster (served by one process: the "
            "holder of the outbox lease)",
        )
        active.add_metric([], await self._active())
        depth = GaugeMetricFamily(
            f"{PREFIX}_outbox_pending_items",
            "Pushes waiting in the outbox, per partner (whole cluster, served by the "
            "holder of the outbox lease)",
            labels=["partner"],
        )
        age = GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_pending_age_seconds",
            "Age of the oldest push waiting in the outbox, per partner (0 when none)",
            labels=["partner"],
        )
        now = self._now()
        for partner, (count, oldest) in sorted((await self._pending()).items()):
            depth.add_metric([partner], count)
            seconds = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
            age.add_metric([partner], seconds)
        self._latest = [active, depth, age]

    def collect(self) -> Sequence[Metric]:
        return self._latest


def check_token(request: web.Request, expected: str | None) -> None:
    """Raises 401 unless ``expected`` is None or the request bears it."""
    if expected is None:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        raise web.HTTPUnauthorized(
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'}, text="unauthorized"
        )


def metrics_handler(
    metrics: Metrics, token: str | None, before: Callable[[], Awaitable[None]] | None = None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``GET /metrics``: the text format, after ``before`` (the store's gauges)."""

    async def handle(request: web.Request) -> web.Response:
        check_token(request, token)
        if before is not None:
            try:
                await before()
            except Exception as exc:  # the store is out: the process's own counters still
                log.warning("metrics: cluster gauges not read: %s", exc)
        body = metrics.exposition()
        return web.Response(
            body=body,
            headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
        )

    return handle
