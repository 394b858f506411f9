"""Wires :mod:`gateway.metrics` into the app: ``GET /metrics`` and what each part counts.

Part of the composition root (like :mod:`gateway.app`, which calls :func:`add_metrics`):
it hands the parts their counters (the central system's ``metrics``, the store's write
observer, the outbox worker's attempt listener, the hub's forward observer) and adds the
gauges read at scrape time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway.csms.device_model import DeviceModelRecorder
from gateway.domain.events import Event, TransactionEnded, TransactionStarted
from gateway.hub.service import HUB
from gateway.keys import BUS, CLOCK, CSMS, SETTINGS, STORE
from gateway.metrics import PREFIX, ClusterGauges, Metrics, metrics_handler
from gateway.roaming.outbox import OUTBOX_WORKER, Delivery
from gateway.roaming.server import REGISTRY
from gateway.storage.base import OutboxStatus
from gateway.trail import EXCHANGES, TRAIL, TrailRecorder

METRICS = web.AppKey("metrics", Metrics)
CLUSTER_GAUGES = web.AppKey("cluster_gauges", ClusterGauges)


def add_metrics(app: web.Application) -> Metrics:
    """The app's metrics, its ``/metrics`` route and the count of OCPI requests served
    (by the trail's middleware when ``add_trail`` came first, else a middleware of its
    own); the parts are wired once they exist (a ``cleanup_ctx``: append this after
    the others)."""
    metrics = Metrics()
    app[METRICS] = metrics
    exchanges = app.get(EXCHANGES)
    if exchanges is not None:  # the trail's middleware counts them (one layer for both)
        exchanges.served = metrics.ocpi_served
    else:
        app.middlewares.append(metrics.ocpi_middleware)
    token = app[SETTINGS].metrics_token
    secret = token.get_secret_value() if token is not None else None

    async def cluster_gauges() -> None:
        if CLUSTER_GAUGES in app:
            await app[CLUSTER_GAUGES].refresh()

    app.router.add_get("/metrics", metrics_handler(metrics, secret, cluster_gauges))
    app.cleanup_ctx.append(_metrics_ctx)
    return metrics


def _trail_counts(trail: TrailRecorder) -> Callable[[], Iterable[Metric]]:
    """The message trail's counters (kept by the recorder as plain ints: its hot path
    adds 1 to an attribute, nothing more)."""

    def collect() -> Iterable[Metric]:
        written = CounterMetricFamily(
            f"{PREFIX}_trail_entries_written",
            "Message trail entries written to the store by this process",
        )
        written.add_metric([], trail.written)
        dropped = CounterMetricFamily(
            f"{PREFIX}_trail_entries_dropped",
            "Message trail entries dropped by this process, by reason (queue_full: the "
            "queue was full, the frame went on without its entry; store_failed: the store "
            "refused or could not take their batch)",
            labels=["reason"],
        )
        dropped.add_metric(["queue_full"], trail.dropped_full)
        dropped.add_metric(["store_failed"], trail.dropped_failed)
        queued = GaugeMetricFamily(
            f"{PREFIX}_trail_queue_entries", "Message trail entries waiting to be written"
        )
        queued.add_metric([], trail.queued)
        yield from (written, dropped, queued)

    return collect


def _device_counts(recorder: DeviceModelRecorder) -> Callable[[], Iterable[Metric]]:
    """The device model's counters (plain ints kept by the recorder)."""

    def collect() -> Iterable[Metric]:
        events = CounterMetricFamily(
            f"{PREFIX}_device_events_received",
            "OCPP 2.0.1/2.1 NotifyEvent events (monitoring alerts and values) received by "
            "this process, by trigger (Alerting, Delta, Periodic) and the monitor's "
            "severity (0 Danger to 9 Debug, none)",
            labels=["trigger", "severity"],
        )
        for (trigger, severity), count in sorted(recorder.events.items()):
            events.add_metric([trigger, severity], count)
        parts = CounterMetricFamily(
            f"{PREFIX}_device_report_parts_received",
            "OCPP 2.0.1/2.1 NotifyReport parts stored as device models by this process",
        )
        parts.add_metric([], recorder.report_parts)
        yield from (events, parts)

    return collect


async def _metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    metrics = app[METRICS]
    store, csms = app[STORE], app[CSMS]
    csms.metrics = metrics.ocpp
    store.backend.observe_writes(metrics.storage_observer(store.backend.name))

    def connected() -> Iterable[Metric]:
        # This process's connections: each charger is connected to one process, so the
        # sum over processes is the cluster's.
        family = GaugeMetricFamily(
            f"{PREFIX}_ocpp_chargers_connected",
            "Chargers connected to this process, by OCPP version",
            labels=["ocpp_version"],
        )
        counts = {"1.6": 0, "2.0.1": 0, "2.1": 0}
        for conn in csms.connections():
            counts[conn.version.value] = counts.get(conn.version.value, 0) + 1
        for version, count in sorted(counts.items()):
            family.add_metric([version], count)
        yield family

    metrics.add_gauges(connected)
    if TRAIL in app:
        metrics.add_gauges(_trail_counts(app[TRAIL]))
    metrics.add_gauges(_device_counts(csms.device_model))

    def on_event(event: Event) -> None:
        if isinstance(event, TransactionStarted):
            metrics.transaction_started()
        elif isinstance(event, TransactionEnded):
            tx = event.transaction
            energy = None
            if tx.meter_start_wh is not None and tx.meter_stop_wh is not None:
                energy = float(tx.meter_stop_wh - tx.meter_start_wh)
            metrics.transaction_ended(energy)

    app[BUS].listen(on_event, TransactionStarted, TransactionEnded)

    worker = app[OUTBOX_WORKER]

    def attempted(delivery: Delivery) -> None:
        metrics.push_attempted(delivery.item.module, delivery.outcome.value)

    worker.on_attempt(attempted)
    if HUB in app:
        app[HUB].on_forward = metrics.hub_forwarded
    registry = app[REGISTRY]

    async def outbox_pending() -> dict[str, tuple[int, datetime | None]]:
        found: dict[str, tuple[int, datetime | None]] = {}
        # Partner ids come from the operator's configuration (registered partners and
        # hub platforms): a bounded label set.
        for partner in registry.all():
            count = await store.outbox.pending_count(partner.id)
            oldest = None
            if count:
                head = await store.outbox.list(
                    status=OutboxStatus.PENDING, partner_id=partner.id, limit=1
                )
                oldest = head[0].created_at if head else None
            found[partner.id] = (count, oldest)
        return found

    # Served by the holder of the "outbox" lease (its worker runs there only): one
    # process of the cluster, so a sum over processes counts each gauge once.
    gauges = ClusterGauges(
        lambda: worker.running,
        store.transactions.count_active,
        outbox_pending,
        app[CLOCK].now,
    )
    app[CLUSTER_GAUGES] = gauges
    metrics.add_gauges(gauges.collect)
    yield
    store.backend.observe_writes(None)
