"""The durable push outbox: every request to a partner, delivered eventually and in order.

Wiring (the composition root): append ``make_outbox_ctx(STORE, CLOCK, IDS)`` to
``app.cleanup_ctx`` after the context that opens the :class:`PartnerRegistry`
(under :data:`gateway.roaming.server.REGISTRY`); it puts an :class:`Outbox` under
:data:`OUTBOX` and a running :class:`OutboxWorker` under :data:`OUTBOX_WORKER`, and
stops the worker at shutdown before the store and the HTTP session close.

Producers either call :meth:`Outbox.enqueue`, or, to enqueue atomically with a document
write, build items with :meth:`Outbox.make_item`, pass them to
``DocumentStore.put(doc, enqueue=[...])`` and then call :meth:`Outbox.notify`.

Delivery semantics:

* Items of one ``ordering_key`` go out strictly one after the other in enqueue order
  (the store only ever offers a key's head, and the worker never has two items of one
  key in flight); different keys are delivered concurrently.
* At least once: an item is marked DONE after the partner's success answer; a crash in
  between sends it again. Every attempt of an item carries the item id as
  ``X-Correlation-ID``, so a partner can recognise a repeat; OCPI's PUT/PATCH/DELETE
  pushes are idempotent anyway.
* Retried with exponential backoff and jitter (:class:`RetryPolicy`) while the partner
  is unreachable, times out, answers 5xx, 408, 429, 401 (its credentials may be
  rotating), a redirect the client does not follow (anything but a 307/308 on the same
  origin, which :class:`ocpi.client.OcpiClient` follows) or an OCPI status other than
  1xxx/2xxx (3xxx server errors, 4xxx hub errors), or a 2xx that is not an OCPI
  answer; FAILED once the attempts (or the age) run out, with the last error.
* FAILED at once, with the error, when retrying would never help: another 4xx without
  an OCPI envelope, an OCPI 2xxx client error, an unknown partner or one that is not
  REGISTERED. A FAILED item blocks its key until the operator replays or discards it
  (admin API ``/admin/outbox``).
* A PATCH answered "unknown object" (OCPI 2003 or HTTP 404) whose item names the full
  object (``meta["full_object"]``, see :func:`full_object_meta`) is not failed: the
  worker builds the object's current state with the builder registered for its kind
  (:meth:`OutboxWorker.on_unknown_object`) and sends it by PUT in the same attempt
  (mod_locations: PUT creates, PATCH only updates what the receiver has); the PATCH is
  then DONE, superseded. A PUT that fails is retried or failed as any other attempt.
* In the partner's version: an item that records the version it is for
  (``meta["ocpi_version"]``, set by :class:`gateway.roaming.pushes.PushPlanner`) has its
  internal (2.2.1) body converted to that version at each attempt, the full object of
  the fallback above too (:mod:`gateway.roaming.versioning` says why at delivery); a 2.1.1
  request carries no routing headers. A body that version cannot express is FAILED at
  once with the error naming the field (``NotExpressible``), never sent malformed.

Retention: delivered (DONE) items are kept ``retention`` (7 days by default) after
their completion, for the operator's view, then deleted by the worker: at most once
per ``purge_interval`` of the injected clock (sooner while a backlog remains), a
batch at a time, so that the outbox does not grow without bound. PENDING and FAILED
items are never deleted.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import enum
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from gateway import logs
from gateway.domain.clock import Clock, IdFactory
from gateway.leases import LEASES
from gateway.roaming.partners import Partner, PartnerRegistry, PartnerStatus, RegistrationError
from gateway.roaming.server import REGISTRY
from gateway.roaming.versioning import (
    LOCATION_KIND,
    META_OBJECT,
    META_VERSION,
    full_object_kind,
    has_routing_headers,
    outgoing,
)
from gateway.storage.base import OutboxItem, OutboxStatus, OutboxStore, StorageUnavailable, Store
from ocpi.client import (
    OcpiClientError,
    OcpiHttpError,
    OcpiReply,
    OcpiStatusError,
    OcpiTransportError,
)
from ocpi.transport import PartyId
from ocpi.versions import NotExpressible

__all__ = [
    "DEFAULT_RETENTION",
    "OUTBOX",
    "OUTBOX_WORKER",
    "Delivery",
    "DeliveryHook",
    "Outbox",
    "OutboxWorker",
    "Outcome",
    "RetryPolicy",
    "build_outbox",
    "full_object_meta",
    "is_retryable",
    "make_item",
    "make_outbox_ctx",
    "routing_meta",
]

log = logging.getLogger(__name__)

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_MAX_ERROR_CHARS = 1000
_RETRY_HTTP = frozenset({401, 408, 429})
DEFAULT_RETENTION = timedelta(days=7)
# Item meta keys read at delivery (see routing_meta).
META_FROM = "ocpi_from"
META_TO = "ocpi_to"
META_RAW_BODY = "raw_body"
META_CORRELATION_ID = "correlation_id"
META_FULL_OBJECT = "full_object"
# Answers to a PATCH that mean "the receiver does not have this object".
_UNKNOWN_OBJECT_STATUS = 2003  # status_codes: Unknown Location
_UNKNOWN_OBJECT_HTTP = 404


# ------------------------------------------------------------------ wiring


def build_outbox(
    store: OutboxStore,
    registry: PartnerRegistry,
    clock: Clock,
    ids: IdFactory,
    rng: random.Random | None = None,
    *,
    policy: RetryPolicy | None = None,
    poll_interval: float = 5.0,
    max_in_flight: int = 32,
    request_timeout: float | None = None,
    retention: timedelta | None = DEFAULT_RETENTION,
    purge_interval: float = 3600.0,
) -> tuple[Outbox, OutboxWorker]:
    """An :class:`Outbox` and its (not yet started) :class:`OutboxWorker`, connected so
    that enqueueing wakes the worker. ``retention``: see :class:`OutboxWorker`."""
    worker = OutboxWorker(
        store,
        registry,
        clock,
        rng if rng is not None else random.Random(),
        policy=policy,
        poll_interval=poll_interval,
        max_in_flight=max_in_flight,
        request_timeout=request_timeout,
        retention=retention,
        purge_interval=purge_interval,
    )
    return Outbox(store, clock, ids, notify=worker.notify), worker


def make_outbox_ctx(
    store_key: web.AppKey[Store],
    clock_key: web.AppKey[Clock],
    ids_key: web.AppKey[IdFactory],
    *,
    policy: RetryPolicy | None = None,
    poll_interval: float = 5.0,
    retention_days: float | None = DEFAULT_RETENTION / timedelta(days=1),
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` that runs the outbox worker while the app runs.

    The keys are parameters because ``gateway.keys`` imports the OCPP side, which
    ``gateway.roaming`` must not. The registry is read from :data:`REGISTRY`.
    ``retention_days`` (as ``Settings.outbox_retention_days``): how long DONE items are
    kept; None keeps them forever.
    """
    if retention_days is not None and retention_days <= 0:
        raise ValueError("retention_days must be > 0 (or None: keep forever)")
    retention = None if retention_days is None else timedelta(days=retention_days)

    async def outbox_ctx(app: web.Application) -> AsyncIterator[None]:
        outbox, worker = build_outbox(
            app[store_key].outbox,
            app[REGISTRY],
            app[clock_key],
            app[ids_key],
            policy=policy,
            poll_interval=poll_interval,
            retention=retention,
        )
        app[OUTBOX] = outbox
        app[OUTBOX_WORKER] = worker
        leases = app.get(LEASES)
        if leases is None:  # an app without leases (one process): the worker just runs
            await worker.start()
            try:
                yield
            finally:
                await worker.stop()
            return

        async def deliver() -> None:
            # Under the lease ``outbox``: one process of a cluster delivers, so no push
            # goes out twice; a survivor takes over a dead holder's pending items once
            # its lease expires (an attempt the holder had in flight may then be sent
            # again: at least once, with the same X-Correlation-ID).
            await worker.start()
            try:
                await asyncio.Event().wait()  # until the lease is lost or the app stops
            finally:
                await worker.stop()

        job = leases.start("outbox", deliver)
        try:
            yield
        finally:
            await job.stop()

    return outbox_ctx


# ------------------------------------------------------------------ items


def make_item(
    ids: IdFactory,
    clock: Clock,
    partner_id: str,
    method: str,
    url: str,
    body: dict[str, Any] | None,
    *,
    ordering_key: str,
    module: str | None,
    meta: dict[str, Any] | None = None,
) -> OutboxItem:
    """A new PENDING item, due now, with a fresh id (its stable identity: the
    ``X-Correlation-ID`` of every attempt). Not stored: pass it to
    ``OutboxStore.enqueue`` or ``DocumentStore.put(doc, enqueue=[...])``."""
    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(sorted(METHODS))}")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url {url!r} is not an absolute http(s) URL")
    if not ordering_key:
        raise ValueError("ordering_key must not be empty")
    now = clock.now()
    return OutboxItem(
        id=ids.new_id(),
        partner_id=partner_id,
        ordering_key=ordering_key,
        method=method,
        url=url,
        body=body,
        created_at=now,
        next_attempt_at=now,
        module=module,
        meta=meta,
    )


class Outbox:
    """What producers and the admin API use: enqueue, inspect, replay, discard."""

    def __init__(
        self,
        store: OutboxStore,
        clock: Clock,
        ids: IdFactory,
        *,
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self._clock = clock
        self._ids = ids
        self._notify = notify

    def notify(self) -> None:
        """Wake the worker: call after ``DocumentStore.put(doc, enqueue=...)``."""
        if self._notify is not None:
            self._notify()

    def make_item(
        self,
        partner_id: str,
        method: str,
        url: str,
        body: dict[str, Any] | None,
        *,
        ordering_key: str,
        module: str | None,
        meta: dict[str, Any] | None = None,
    ) -> OutboxItem:
        """See :func:`make_item`."""
        return make_item(
            self._ids,
            self._clock,
            partner_id,
            method,
            url,
            body,
            ordering_key=ordering_key,
            module=module,
            meta=meta,
        )

    async def enqueue(
        self,
        partner_id: str,
        method: str,
        url: str,
        body: dict[str, Any] | None,
        *,
        ordering_key: str,
        module: str | None,
        meta: dict[str, Any] | None = None,
    ) -> OutboxItem:
        """Store a new item (durable when this returns) and wake the worker."""
        item = self.make_item(
            partner_id, method, url, body, ordering_key=ordering_key, module=module, meta=meta
        )
        (stored,) = await self.store.enqueue([item])
        self.notify()
        return stored

    async def get(self, item_id: str) -> OutboxItem | None:
        return await self.store.get(item_id)

    async def list(
        self,
        *,
        status: OutboxStatus | None = None,
        partner_id: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> builtins.list[OutboxItem]:
        return await self.store.list(
            status=status, partner_id=partner_id, offset=offset, limit=limit
        )

    async def replay(self, item_id: str) -> bool:
        """FAILED -> PENDING, due now, and wake the worker; False when not FAILED."""
        replayed = await self.store.replay(item_id, self._clock.now())
        if replayed:
            self.notify()
        return replayed

    async def discard(self, item_id: str) -> bool:
        """FAILED -> DONE without delivering (unblocks its key); False when not FAILED."""
        discarded = await self.store.discard(item_id, at=self._clock.now())
        if discarded:
            self.notify()  # the key's next item may be due
        return discarded


# ------------------------------------------------------------------ policy


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, and when to give up.

    After the n-th failed attempt the next one waits a random time in
    ``[ceiling * (1 - jitter), ceiling]`` (never less than ``min_delay``), where
    ``ceiling = min(cap, base * factor ** (n - 1))``: ``jitter=1`` is "full jitter".

    The item is FAILED when the attempt count reaches a multiple of ``max_attempts``
    (so a replayed item gets another series of attempts, its backoff starting again
    from ``base``), or, when ``max_age`` is set, once it is older than that (a replayed
    item that old then gets one attempt per replay).
    """

    base: float = 2.0
    factor: float = 2.0
    cap: float = 600.0
    jitter: float = 1.0
    min_delay: float = 1.0
    max_attempts: int | None = 20
    max_age: timedelta | None = None

    def __post_init__(self) -> None:
        if self.base <= 0 or self.factor < 1 or self.cap < self.base:
            raise ValueError("need base > 0, factor >= 1 and cap >= base")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction in [0, 1]")
        if self.min_delay < 0 or self.min_delay > self.cap:
            raise ValueError("need 0 <= min_delay <= cap")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def ceiling(self, attempt: int) -> float:
        """The longest wait after the ``attempt``-th failed attempt (1-based)."""
        series = attempt - 1
        if self.max_attempts is not None:
            series %= self.max_attempts
        return min(self.cap, self.base * self.factor ** min(series, 64))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after the ``attempt``-th failed attempt."""
        ceiling = self.ceiling(attempt)
        return max(self.min_delay, rng.uniform(ceiling * (1 - self.jitter), ceiling))

    def gives_up(self, attempt: int, created_at: datetime, now: datetime) -> bool:
        """Whether the ``attempt``-th failed attempt is the last one."""
        if self.max_attempts is not None and attempt % self.max_attempts == 0:
            return True
        return self.max_age is not None and now - created_at >= self.max_age


def is_retryable(exc: OcpiClientError) -> bool:
    """Whether a failed request may succeed if sent again unchanged (later)."""
    if isinstance(exc, OcpiTransportError):  # includes OcpiTimeoutError
        return True
    if isinstance(exc, OcpiStatusError):
        if exc.http_status in _RETRY_HTTP:
            return True
        # 2xxx: the partner finds the request itself wrong. 3xxx (server) and 4xxx
        # (hub) errors, and codes OCPI does not define, may pass.
        return not 2000 <= exc.status_code < 3000
    if isinstance(exc, OcpiHttpError):
        # 5xx, 408, 429 and 401 (credentials may be rotating) may pass later, and so may
        # a redirect the client did not follow (a partner moving its endpoints); another
        # 4xx would not.
        return (
            exc.http_status >= 500 or exc.http_status in _RETRY_HTTP or 300 <= exc.http_status < 400
        )
    # OcpiInvalidResponseError: a 2xx answer that is not OCPI (a proxy's page, a
    # half-deployed partner): try again, within the attempt budget.
    return True


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, OcpiHttpError) and exc.body:
        text = f"{exc} (body: {exc.body!r})"
    elif isinstance(exc, OcpiClientError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:_MAX_ERROR_CHARS]


# ------------------------------------------------------------------ worker


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # scheduled again at next_attempt_at
    FAILED = "failed"  # gave up: FAILED in the store
    ERROR = "error"  # our own failure (e.g. the store); the item is tried again


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one attempt at an item did."""

    item: OutboxItem
    outcome: Outcome
    error: str | None = None
    next_attempt_at: datetime | None = None
    reply: OcpiReply | None = None
    superseded: bool = False  # a PATCH delivered as a PUT of the full object


DeliveryHook = Callable[[OutboxItem, OcpiReply], Awaitable[None]]
FullObjectBuilder = Callable[[str], Awaitable[Any]]
"""``object id -> the object's current full state`` (a model or JSON), None when it no
longer exists: what a PATCH answered "unknown object" is replaced with."""


class OutboxWorker:
    """Delivers due outbox items with each partner's :class:`OcpiClient`.

    ``start()``/``stop()`` (or ``async with``) run a background loop that takes the due
    items whenever woken (:meth:`notify`, a finished delivery) and at least every
    ``poll_interval`` seconds (for retries that become due). :meth:`run_once` does one
    round in the foreground and waits for it: what tests drive with a fake clock.

    The loop also deletes the items DONE more than ``retention`` ago (None: never), with
    :meth:`purge_if_due` after each poll: one batch of up to ``purge_batch`` items, then
    the next once ``purge_interval`` seconds have passed on the injected clock, or at
    the next poll while full batches show a backlog (e.g. after an upgrade).
    """

    def __init__(
        self,
        store: OutboxStore,
        registry: PartnerRegistry,
        clock: Clock,
        rng: random.Random,
        *,
        policy: RetryPolicy | None = None,
        poll_interval: float = 5.0,
        max_in_flight: int = 32,
        request_timeout: float | None = None,
        stop_timeout: float = 5.0,
        retention: timedelta | None = DEFAULT_RETENTION,
        purge_interval: float = 3600.0,
        purge_batch: int = 1000,
    ) -> None:
        if poll_interval <= 0 or max_in_flight < 1:
            raise ValueError("need poll_interval > 0 and max_in_flight >= 1")
        if retention is not None and retention <= timedelta(0):
            raise ValueError("retention must be positive (or None: keep forever)")
        if purge_interval <= 0 or purge_batch < 1:
            raise ValueError("need purge_interval > 0 and purge_batch >= 1")
        self._store = store
        self._registry = registry
        self._clock = clock
        self._rng = rng
        self.policy = policy or RetryPolicy()
        self.poll_interval = poll_interval
        self.max_in_flight = max_in_flight
        self._request_timeout = request_timeout
        self._stop_timeout = stop_timeout
        self._hooks: dict[str, list[DeliveryHook]] = {}
        self._builders: dict[str, FullObjectBuilder] = {}
        self._wake = asyncio.Event()
        self._notify_listeners: list[Callable[[], None]] = []
        self._attempt_listeners: list[Callable[[Delivery], None]] = []
        self._poll_lock = asyncio.Lock()
        # ordering key -> item id, for every item being delivered, and for finished
        # ones until the next poll begins: a poll whose read began before the
        # delivery's outcome was written could still see the item as due.
        self._busy: dict[str, str] = {}
        self._finished: list[str] = []
        self._tasks: set[asyncio.Task[Delivery]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.retention = retention
        self.purge_interval = purge_interval
        self.purge_batch = purge_batch
        self._next_purge: datetime | None = None  # None: at the first opportunity

    # -- control ---------------------------------------------------------------

    def notify(self) -> None:
        """Something may be due (a push was stored, replayed...): poll now rather than
        at the next interval, and tell the :meth:`on_notify` listeners."""
        self._wake.set()
        for listener in self._notify_listeners:
            try:
                listener()
            except Exception:
                log.exception("outbox: notify listener failed")

    def on_notify(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` at each :meth:`notify`, e.g. to wake the worker of
        another process sharing the store (the one that delivers, while this one's
        worker does not run)."""
        self._notify_listeners.append(listener)

    def wake(self) -> None:
        """Poll now (another process stored a push); the listeners are not told."""
        self._wake.set()

    def on_attempt(self, listener: Callable[[Delivery], None]) -> None:
        """``listener(delivery)`` after each attempt at an item, whatever its outcome
        (the metrics count pushes and failed pushes)."""
        self._attempt_listeners.append(listener)

    def on_delivered(self, kind: str, callback: DeliveryHook) -> None:
        """Call ``callback(item, reply)`` after each successful delivery of an item whose
        ``meta["kind"]`` is ``kind`` (after it is marked DONE; errors are logged)."""
        self._hooks.setdefault(kind, []).append(callback)

    def on_unknown_object(self, kind: str, builder: FullObjectBuilder) -> None:
        """Register how to build the full object of ``kind`` (``meta["full_object"]
        ["kind"]``) when a PATCH of it is answered "unknown object" (module doc)."""
        self._builders[kind] = builder

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def in_flight(self) -> int:
        return sum(1 for task in self._tasks if not task.done())

    async def start(self) -> None:
        if self._loop_task is not None:
            raise RuntimeError("the outbox worker is already started")
        self._loop_task = asyncio.create_task(self._loop(), name="outbox-worker")

    async def stop(self) -> None:
        """Stop polling; wait up to ``stop_timeout`` for deliveries under way, then
        cancel them (their items stay PENDING and go out after the restart)."""
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._stop_timeout)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def __aenter__(self) -> OutboxWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def run_once(self) -> list[Delivery]:
        """Start delivering every due item (one per ordering key) and wait for all of
        them; returns what each attempt did, in the order the store offered them."""
        tasks = await self._poll()
        return list(await asyncio.gather(*tasks)) if tasks else []

    async def run_until_idle(self, max_rounds: int = 1000) -> list[Delivery]:
        """:meth:`run_once` until nothing is due (now, by the clock)."""
        done: list[Delivery] = []
        for _ in range(max_rounds):
            round_ = await self.run_once()
            if not round_:
                break
            done.extend(round_)
        return done

    async def purge_if_due(self) -> int:
        """Delete one batch of the items DONE before ``now - retention``, if a purge is
        due by the clock; returns how many were deleted (0 when none was due)."""
        if self.retention is None:
            return 0
        now = self._clock.now()
        if self._next_purge is not None and now < self._next_purge:
            return 0
        # Set first: a failing store is tried again an interval later, not every poll.
        self._next_purge = now + timedelta(seconds=self.purge_interval)
        deleted = await self._store.purge_done(now - self.retention, limit=self.purge_batch)
        if deleted >= self.purge_batch:
            self._next_purge = now  # a backlog: the next batch at the next poll
        if deleted:
            log.info("outbox: purged %d items delivered before %s", deleted, now - self.retention)
        return deleted

    # -- the loop --------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._poll()
            except StorageUnavailable as exc:  # an outage, not a bug: no traceback
                log.warning("outbox: taking the due items failed: %s", exc)
            except Exception:
                log.exception("outbox: taking the due items failed")
            try:
                await self.purge_if_due()
            except StorageUnavailable as exc:
                log.warning("outbox: purging delivered items failed: %s", exc)
            except Exception:
                log.exception("outbox: purging delivered items failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()

    async def _poll(self) -> list[asyncio.Task[Delivery]]:
        async with self._poll_lock:
            for key in self._finished:
                self._busy.pop(key, None)
            self._finished.clear()
            room = self.max_in_flight - len(self._busy)
            if room <= 0:
                return []
            # The items under way are still due: ask for enough to fill the room.
            items = await self._store.due(self._clock.now(), limit=room + len(self._busy))
            started: list[asyncio.Task[Delivery]] = []
            for item in items:
                if len(started) >= room:
                    break
                if item.ordering_key in self._busy:
                    continue  # one item of a key at a time; its successor comes later
                self._busy[item.ordering_key] = item.id
                task = asyncio.create_task(self._attempt(item), name=f"outbox-{item.id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                started.append(task)
            return started

    async def _attempt(self, item: OutboxItem) -> Delivery:
        delivery = await self._attempt_once(item)
        for listener in self._attempt_listeners:
            listener(delivery)
        return delivery

    async def _attempt_once(self, item: OutboxItem) -> Delivery:
        cooldown = False
        try:
            return await self._deliver(item)
        except Exception as exc:
            # Our own failure (the store, a bug): the item's state is unknown, likely
            # still due. Keep its key for a poll interval so as not to hammer the partner.
            if isinstance(exc, StorageUnavailable):  # an outage, not a bug: no traceback
                log.warning("outbox: handling item %s failed: %s", item.id, exc)
            else:
                log.exception(
                    "outbox: handling item %s (%s %s) failed", item.id, item.method, item.url
                )
            cooldown = True
            return Delivery(item, Outcome.ERROR, _error_text(exc))
        finally:
            if cooldown:
                asyncio.get_running_loop().call_later(
                    self.poll_interval, self._release, item.ordering_key
                )
            else:
                self._release(item.ordering_key)

    def _release(self, ordering_key: str) -> None:
        # Freed at the next poll, whose read begins after the outcome was written.
        self._finished.append(ordering_key)
        self._wake.set()  # the key's next item may be due now

    # -- one delivery ----------------------------------------------------------

    async def _deliver(self, item: OutboxItem) -> Delivery:
        partner = self._registry.get(item.partner_id)
        if partner is None or partner.status is not PartnerStatus.REGISTERED:
            # Another process sharing the store may have registered it since this one
            # loaded its partners: never fail a push for want of hearing of its partner.
            partner = await self._registry.refresh(item.partner_id) or partner
        if partner is None:
            return await self._fail(item, f"partner {item.partner_id} is unknown")
        if partner.status is not PartnerStatus.REGISTERED:
            return await self._fail(
                item, f"partner {partner.id} is unregistered (status {partner.status.value})"
            )
        superseded = False
        try:
            try:
                reply = await self._send(partner, item)
            except OcpiClientError as exc:
                full = await self._full_object(item, exc)
                if full is None:
                    raise
                log.info(
                    "outbox: %s %s answered unknown object (%s); sending the full object by "
                    "PUT %s instead (item %s)",
                    item.method,
                    item.url,
                    exc.message,
                    full[0],
                    item.id,
                )
                reply = await self._send(
                    partner, item, method="PUT", url=full[0], body=full[1], kind=full[2]
                )
                superseded = True
        except (RegistrationError, _Unsendable) as exc:
            return await self._fail(item, str(exc))
        except NotExpressible as exc:
            return await self._fail(item, f"not sent: {exc}")
        except OcpiClientError as exc:
            if is_retryable(exc):
                return await self._retry(item, _error_text(exc))
            return await self._fail(item, _error_text(exc))
        await self._store.complete(item.id, at=self._clock.now())
        log.debug("outbox: delivered %s %s (item %s)", item.method, item.url, item.id)
        await self._run_hooks(item, reply)
        return Delivery(item, Outcome.DELIVERED, reply=reply, superseded=superseded)

    async def _full_object(
        self, item: OutboxItem, exc: OcpiClientError
    ) -> tuple[str, Any, str | None] | None:
        """``(PUT url, body, its META_OBJECT kind)`` that replaces a PATCH answered
        "unknown object", or None (not a PATCH, another error, no builder, or the object
        is gone)."""
        if item.method != "PATCH" or not _is_unknown_object(exc):
            return None
        spec = (item.meta or {}).get(META_FULL_OBJECT)
        if not isinstance(spec, dict):
            return None
        kind, object_id, url = spec.get("kind"), spec.get("id"), spec.get("url")
        if not (isinstance(kind, str) and isinstance(object_id, str) and isinstance(url, str)):
            return None
        builder = self._builders.get(kind)
        if builder is None:
            return None
        body = await builder(object_id)
        return None if body is None else (url, body, full_object_kind(kind, body))

    async def _send(
        self,
        partner: Partner,
        item: OutboxItem,
        *,
        method: str | None = None,
        url: str | None = None,
        body: Any = None,
        kind: str | None = None,
    ) -> OcpiReply:
        """Send ``item`` (or, with ``method``/``url``/``body``, that request in its
        place, with the item's routing headers and correlation id), in the version the
        item records (raises NotExpressible when its body cannot be said in it)."""
        meta = item.meta or {}
        raw = meta.get(META_RAW_BODY) if method is None else None
        version = meta.get(META_VERSION)
        payload = item.body if method is None else body
        if isinstance(version, str) and raw is None:
            payload = await outgoing(
                version,
                meta.get(META_OBJECT) if method is None else kind,
                payload,
                locations=self._builders.get(LOCATION_KIND),
            )
        routed = has_routing_headers(version if isinstance(version, str) else None)
        client = self._registry.client(partner, timeout=self._request_timeout)
        # The log lines of this delivery name the partner (gateway.logs).
        named = logs.partner.set(partner.id)
        try:
            return await client.request(
                method or item.method,
                url or item.url,
                body=payload,
                raw_body=raw.encode("utf-8") if isinstance(raw, str) else None,
                correlation_id=str(meta.get(META_CORRELATION_ID) or item.id),
                from_party=_party(meta.get(META_FROM)) if routed else None,
                to_party=_party(meta.get(META_TO)) if routed else None,
            )
        except (OcpiClientError, asyncio.CancelledError):
            raise
        except Exception as exc:  # e.g. an URL aiohttp refuses: never worth a retry
            raise _Unsendable(f"{type(exc).__name__}: {exc}", item) from exc
        finally:
            logs.partner.reset(named)

    async def _retry(self, item: OutboxItem, error: str) -> Delivery:
        attempt = item.attempts + 1
        now = self._clock.now()
        if self.policy.gives_up(attempt, item.created_at, now):
            return await self._fail(item, f"gave up after {attempt} attempts: {error}")
        at = now + timedelta(seconds=self.policy.delay(attempt, self._rng))
        await self._store.retry_later(item.id, at, error)
        log.info(
            "outbox: %s %s failed (attempt %d), next at %s: %s",
            item.method,
            item.url,
            attempt,
            at.isoformat(),
            error,
        )
        return Delivery(item, Outcome.RETRY, error, next_attempt_at=at)

    async def _fail(self, item: OutboxItem, error: str) -> Delivery:
        error = error[:_MAX_ERROR_CHARS]
        await self._store.fail(item.id, error)
        log.error(
            "outbox: item %s (%s %s, key %s) FAILED: %s",
            item.id,
            item.method,
            item.url,
            item.ordering_key,
            error,
        )
        return Delivery(item, Outcome.FAILED, error)

    async def _run_hooks(self, item: OutboxItem, reply: OcpiReply) -> None:
        kind = (item.meta or {}).get("kind")
        if not isinstance(kind, str):
            return
        for hook in self._hooks.get(kind, ()):
            try:
                await hook(item, reply)
            except Exception:
                log.exception("outbox: %r delivery hook failed for item %s", kind, item.id)


def _party(value: object) -> PartyId | None:
    return PartyId.parse(value) if isinstance(value, str) else None


def _is_unknown_object(exc: OcpiClientError) -> bool:
    if isinstance(exc, OcpiStatusError):
        return exc.status_code == _UNKNOWN_OBJECT_STATUS or exc.http_status == _UNKNOWN_OBJECT_HTTP
    return isinstance(exc, OcpiHttpError) and exc.http_status == _UNKNOWN_OBJECT_HTTP


def full_object_meta(kind: str, object_id: str, url: str) -> dict[str, Any]:
    """``meta`` of a PATCH item naming its full object: if the receiver answers that
    it does not know the object, the builder registered for ``kind``
    (:meth:`OutboxWorker.on_unknown_object`) makes it and it is PUT to ``url``."""
    return {META_FULL_OBJECT: {"kind": kind, "id": object_id, "url": url}}


def routing_meta(
    *,
    from_party: PartyId | None = None,
    to_party: PartyId | None = None,
    raw_body: bytes | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """``meta`` entries that shape the request an item becomes: its OCPI-from/to-*
    routing headers, a body sent byte for byte instead of ``body`` (what a hub passes
    on unchanged), and an X-Correlation-ID other than the item id (the one of the
    request a hub forwards)."""
    meta: dict[str, Any] = {}
    if from_party is not None:
        meta[META_FROM] = str(from_party)
    if to_party is not None:
        meta[META_TO] = str(to_party)
    if raw_body is not None:
        meta[META_RAW_BODY] = raw_body.decode("utf-8")
    if correlation_id is not None:
        meta[META_CORRELATION_ID] = correlation_id
    return meta


class _Unsendable(Exception):
    """The request could not even be sent (not the partner's fault; permanent)."""

    def __init__(self, message: str, item: OutboxItem) -> None:
        super().__init__(f"{item.method} {item.url}: {message}")


OUTBOX = web.AppKey("outbox", Outbox)
OUTBOX_WORKER = web.AppKey("outbox_worker", OutboxWorker)
