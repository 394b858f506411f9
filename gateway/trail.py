"""The message trail: every OCPP frame in and out per charger, every OCPI request and
response per partner, kept for disputes and debugging (``GET /admin/trail``).

Part of the composition root (like :mod:`gateway.monitoring`): :func:`add_trail` gives
the app a :class:`TrailRecorder` (when ``GATEWAY_TRAIL`` is on) and hands it to the
parts: the central system's connections call :meth:`TrailRecorder.ocpp` for each frame
(``gateway.csms.core.FrameTrail``), a middleware records the OCPI requests the gateway
serves, and the partner registry's clients report the requests they send
(``ocpi.client.ExchangeObserver``).

Off the hot path: recording a frame appends a tuple to an in-memory list (the time,
what the connection already knows of the frame, and the frame's size, or its text when
bodies are kept) and returns; no await, no JSON encoding. Without bodies that tuple is
already the stored record (``TrailRecord``). A background task hands the list to the
store (``Store.trail``) every ``GATEWAY_TRAIL_FLUSH_INTERVAL`` seconds, or at once when
``GATEWAY_TRAIL_FLUSH_ENTRIES`` are waiting, with the function that builds the records
that need it (the bodies' token masking and cutting, an OCPI answer's status code): the
SQLite store calls it in its writer thread, so that the event loop pays for a batch
only its hand-off; no object per entry is made on the way.
The list is bounded (``GATEWAY_TRAIL_QUEUE_ENTRIES``): when it is full a new entry is
dropped and counted, never waited for; so is a batch the store refuses (an outage).
Both counts are metrics (``ocpigw_trail_entries_dropped_total{reason}``) and logged
once per flush that saw drops.

Retention: the holder of the ``trail`` lease (gateway.leases; one process per cluster)
deletes every minute what is older than ``GATEWAY_TRAIL_DAYS`` and the oldest beyond
``GATEWAY_TRAIL_MAX_ENTRIES``. Kept bodies are cut to ``GATEWAY_TRAIL_BODY_MAX_BYTES``,
so the trail's size is bounded by about ``max_entries * (body_max_bytes + 300)`` bytes.

Token masking (``GATEWAY_TRAIL_MASK_TOKENS``, on by default): in kept bodies, the OCPP
``idTag``, ``parentIdTag`` and ``idToken`` values, and in the OCPI tokens, sessions,
CDRs and commands modules the ``uid``, ``contract_id`` and ``visual_number`` values (and
a token uid in a tokens URL path) keep only their last 4 characters. OCPI credentials
tokens are always masked whole, and no request header is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Final, cast

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from gateway import logs
from gateway.domain.errors import Unavailable
from gateway.keys import CLOCK, CSMS, SETTINGS, STORE
from gateway.leases import LEASES
from gateway.metrics import ocpi_module
from gateway.roaming.server import REGISTRY
from gateway.settings import Settings
from gateway.storage.base import StorageError, TrailRecord, TrailStore
from ocpi.client import ExchangeObserver
from ocpi.hub.forward import envelope_status
from ocpi.server import CONTEXT_KEY, STATUS_CODE_KEY
from ocpi.transport import CORRELATION_ID_HEADER, REQUEST_ID_HEADER

log = logging.getLogger(__name__)

# Entries per store call (one SQLite transaction; on Redis scripts of 500): larger
# transactions cost less per entry (a charger's index entries share pages).
STORE_BATCH: Final = 10_000
PRUNE_CHUNK: Final = 1000
PRUNE_INTERVAL: Final = 60.0
# An OCPI answer's status_code is read from bodies up to this size by parsing them;
# larger ones (a big GET page) by a search for the field.
_PARSE_LIMIT: Final = 1 << 20
_STATUS_CODE = re.compile(rb'"status_code"\s*:\s*(\d{1,6})')

_OCPP_TOKEN = re.compile(r'("(?:idTag|parentIdTag|idToken)"\s*:\s*")((?:[^"\\]|\\.)*)"')
_OCPI_TOKEN = re.compile(r'("(?:uid|contract_id|visual_number)"\s*:\s*")((?:[^"\\]|\\.)*)"')
_OCPI_SECRET = re.compile(r'("token"\s*:\s*")((?:[^"\\]|\\.)*)"')
# OCPI modules whose bodies carry token ids (a Token, a CdrToken, a command's token).
_TOKEN_MODULES: Final = frozenset({"tokens", "sessions", "cdrs", "commands"})


def mask(value: str) -> str:
    """All but the last 4 characters hidden (a value of 4 or fewer: all of it)."""
    return "***" + value[-4:] if len(value) > 4 else "***"


def _masked(match: re.Match[str]) -> str:
    return f'{match.group(1)}{mask(match.group(2))}"'


def _hidden(match: re.Match[str]) -> str:
    return f'{match.group(1)}***"'


def mask_ocpp(text: str) -> str:
    if "id" not in text:  # neither idTag nor idToken: nothing to look for
        return text
    return _OCPP_TOKEN.sub(_masked, text)


def mask_ocpi(module: str, text: str) -> str:
    if module == "credentials":
        return _OCPI_SECRET.sub(_hidden, text)
    if module in _TOKEN_MODULES:
        return _OCPI_TOKEN.sub(_masked, text)
    return text


def mask_path(module: str, path: str) -> str:
    """A tokens URL names a token uid: ``.../tokens/{cc}/{party}/{uid}`` (receiver) or
    ``.../tokens/{uid}/authorize`` (sender)."""
    if module != "tokens":
        return path
    base, sep, query = path.partition("?")
    segments = base.split("/")
    try:
        at = segments.index("tokens")
    except ValueError:
        return path
    rest = segments[at + 1 :]
    if rest and rest[-1] == "authorize" and len(rest) >= 2:
        index = at + len(rest) - 1
    elif len(rest) >= 3:
        index = at + 3
    else:
        return path
    segments[index] = mask(segments[index])
    return "/".join(segments) + sep + query


def _cut(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit // 4:  # even 4-byte characters fit
        return text, False
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text, False
    return raw[:limit].decode("utf-8", "ignore"), True


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def ocpi_status_of(body: bytes) -> int | None:
    """The ``status_code`` of an OCPI envelope, if ``body`` is one."""
    if not body:
        return None
    if len(body) <= _PARSE_LIMIT:
        return envelope_status(body)
    found = _STATUS_CODE.search(body)
    return int(found.group(1)) if found else None


@dataclass(frozen=True, slots=True)
class TrailConfig:
    bodies: bool = False
    mask_tokens: bool = True
    body_max_bytes: int = 16384
    queue_entries: int = 50_000
    flush_interval: float = 0.5
    flush_entries: int = 10_000
    days: float = 7.0
    max_entries: int = 1_000_000
    prune_interval: float = PRUNE_INTERVAL

    @classmethod
    def from_settings(cls, settings: Settings) -> TrailConfig:
        return cls(
            bodies=settings.trail_bodies,
            mask_tokens=settings.trail_mask_tokens,
            body_max_bytes=settings.trail_body_max_bytes,
            queue_entries=settings.trail_queue_entries,
            flush_interval=settings.trail_flush_interval,
            flush_entries=settings.trail_flush_entries,
            days=settings.trail_days,
            max_entries=settings.trail_max_entries,
        )


# A queued entry is a TrailRecord (gateway.storage.base), stored as it is when it needs no
# building (a frame without its body: the common case), or, marked by None in place of
# ``truncated``, a raw one to build off the loop: its body is the frame's text (OCPP,
# a str) or the OCPI body (bytes), its size -1 (to measure) or the known size.
_Queued = tuple[
    datetime, str, str, str | None, str | None, str | None, str | None, str | None,
    str | None, str | None, int | None, str | None, str | None, int, str | None,
    str | bytes | None, bool | None,
]  # fmt: skip


class TrailRecorder:
    """Queues trail entries and writes them in batches; see the module docstring."""

    def __init__(self, store: TrailStore, now: Callable[[], datetime], config: TrailConfig) -> None:
        self._store = store
        self.now = now
        self.config = config
        self._queue: list[_Queued] = []
        self._capacity = config.queue_entries
        self._flush_at = config.flush_entries
        self._bodies = config.bodies
        self._mask_tokens = config.mask_tokens
        self._wake = asyncio.Event()
        self.written = 0
        self.dropped_full = 0  # queue full
        self.dropped_failed = 0  # the store refused a batch
        self._reported = (0, 0)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- the hot path -------------------------------------------------------------------

    def ocpp(
        self,
        charger_id: str,
        direction: str,
        raw: str,
        message_type: str,
        message_id: str | None,
        action: str | None,
        status: str | None,
        transaction_id: str | None,
        at: datetime | None = None,
    ) -> None:
        """A frame to or from a charger; ``at``: when it was received (the connection has
        just read the clock for it), else now."""
        queue = self._queue
        if len(queue) >= self._capacity:
            self.dropped_full += 1
            return
        if at is None:
            at = self.now()
        if self._bodies:
            queue.append(
                (
                    at, "ocpp", direction, charger_id, None, action, message_type,
                    message_id, None, status, None, None, None, -1, transaction_id, raw, None,
                )
            )  # fmt: skip
        else:
            queue.append(
                (
                    at, "ocpp", direction, charger_id, None, action, message_type,
                    message_id, None, status, None, None, None,
                    len(raw) if raw.isascii() else _size(raw), transaction_id, None, False,
                )
            )  # fmt: skip
        if len(queue) >= self._flush_at:
            self._wake.set()

    def ocpi(
        self,
        at: datetime,
        partner: str | None,
        direction: str,
        message_type: str,
        method: str,
        url: URL,
        request_id: str | None,
        correlation_id: str | None,
        status: str | None,
        ocpi_status: int | None,
        body: bytes | None,
    ) -> None:
        self._ocpi(
            at, partner, direction, message_type, method, ocpi_module(url.path),
            url.raw_path_qs if url.is_absolute() else str(url), request_id, correlation_id,
            status, ocpi_status, body,
        )  # fmt: skip

    def _ocpi(
        self,
        at: datetime,
        partner: str | None,
        direction: str,
        message_type: str,
        method: str,
        module: str,
        path: str,
        request_id: str | None,
        correlation_id: str | None,
        status: str | None,
        ocpi_status: int | None,
        body: bytes | None,
    ) -> None:
        """:meth:`ocpi` with the URL's module and path already read from it."""
        queue = self._queue
        if len(queue) >= self._capacity:
            self.dropped_full += 1
            return
        raw = body or b""
        data: bytes | None = raw
        if not self._bodies and (ocpi_status is not None or message_type == "request"):
            data = None  # nothing to read from it later
        # Already the stored record (False in place of None: nothing to build) when it
        # has no body to keep or read and a path that is not masked (_record's output).
        ready = (
            False
            if data is None and (module != "tokens" or not self._mask_tokens)
            else None
        )
        queue.append(
            (
                at, "ocpi", direction, None, partner, module, message_type, request_id,
                correlation_id, status, ocpi_status, method, path, len(raw), None, data,
                ready,
            )
        )  # fmt: skip
        if len(queue) >= self._flush_at:
            self._wake.set()

    def exchange(
        self,
        arrived: datetime,
        partner: str | None,
        method: str,
        module: str,
        path: str,
        request_id: str | None,
        correlation_id: str | None,
        body: bytes | None,
        reply_id: str | None,
        status: str,
        ocpi_status: int | None,
        out: bytes | None,
    ) -> None:
        """An OCPI request served (``body``) and its answer (``out``): the two entries
        :meth:`_ocpi` queues for them, in one call (as two when one needs building or
        the queue has no room for both)."""
        queue = self._queue
        if (
            self._bodies
            or ocpi_status is None
            or (module == "tokens" and self._mask_tokens)
            or len(queue) + 2 > self._capacity
        ):
            self._ocpi(
                arrived, partner, "in", "request", method, module, path, request_id,
                correlation_id, None, None, body,
            )  # fmt: skip
            self._ocpi(
                self.now(), partner, "out", "response", method, module, path, reply_id,
                correlation_id, status, ocpi_status, out,
            )  # fmt: skip
            return
        # Both already the stored records (see _ocpi): no body kept, nothing to read.
        queue.append(
            (
                arrived, "ocpi", "in", None, partner, module, "request", request_id,
                correlation_id, None, None, method, path, len(body) if body else 0, None,
                None, False,
            )
        )  # fmt: skip
        queue.append(
            (
                self.now(), "ocpi", "out", None, partner, module, "response", reply_id,
                correlation_id, status, ocpi_status, method, path, len(out) if out else 0,
                None, None, False,
            )
        )  # fmt: skip
        if len(queue) >= self._flush_at:
            self._wake.set()

    def partner_observer(self, partner_id: str) -> ExchangeObserver:
        """What the partner registry's clients to ``partner_id`` report to."""
        return _PartnerObserver(self, partner_id)

    # -- off the hot path ---------------------------------------------------------------

    def _record(self, row: _Queued) -> TrailRecord:
        """A raw queued entry built: its size, an OCPI answer's status code, the body kept
        (masked, cut) or not. Pure (it runs in the store's writer thread on SQLite)."""
        (at, protocol, direction, charger, partner, action, kind, message_id, correlation,
         status, ocpi_status, method, path, size, tx, data, _) = row  # fmt: skip
        body: str | None = None
        truncated = False
        config = self.config
        raw = data if isinstance(data, bytes) else None
        if size < 0:
            size = _size(data) if isinstance(data, str) else len(raw or b"")
        if raw is not None and ocpi_status is None and kind == "response":
            ocpi_status = ocpi_status_of(raw)
        if self._bodies and size and data is not None:
            text = raw.decode("utf-8", "replace") if raw is not None else str(data)
            if protocol == "ocpp":
                if config.mask_tokens:
                    text = mask_ocpp(text)
            else:
                # Credentials tokens are secrets: hidden whatever the setting.
                text = (
                    mask_ocpi(action or "", text)
                    if config.mask_tokens
                    else (mask_ocpi("credentials", text) if action == "credentials" else text)
                )
            body, truncated = _cut(text, config.body_max_bytes)
        if path is not None and config.mask_tokens:
            path = mask_path(action or "", path)
        return (
            at, protocol, direction, charger, partner, action, kind, message_id, correlation,
            status, ocpi_status, method, path, size, tx, body, truncated,
        )  # fmt: skip

    def _records(self, rows: list[_Queued]) -> Iterator[TrailRecord]:
        build = self._record
        for row in rows:
            yield cast(TrailRecord, row) if row[16] is not None else build(row)

    async def flush(self) -> None:
        """Write everything queued so far (in batches of ``STORE_BATCH``). The loop only
        hands each batch over: the store builds its rows (on SQLite in its writer thread,
        with the bodies' masking and cutting)."""
        batch, self._queue = self._queue, []
        for start in range(0, len(batch), STORE_BATCH):
            rows = batch[start : start + STORE_BATCH]
            try:
                await self._store.append_records(partial(self._records, rows))
            except (StorageError, Unavailable, ValueError) as exc:
                self.dropped_failed += len(rows)
                log.warning("message trail: %d entries not written: %s", len(rows), exc)
            else:
                self.written += len(rows)
        reported = (self.dropped_full, self.dropped_failed)
        if reported != self._reported:
            full = reported[0] - self._reported[0]
            if full:
                log.warning(
                    "message trail: %d entries dropped, the queue was full (%d in all)",
                    full,
                    reported[0],
                )
            self._reported = reported

    async def run(self) -> None:
        """Flush every ``flush_interval`` seconds, or as soon as ``flush_entries`` wait."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # a bug: the trail must go on (and the charger never waits)
                log.exception("message trail: flush failed")

    async def prune(self) -> int:
        """Delete what is older than ``days`` and the oldest beyond ``max_entries``."""
        before = self.now() - timedelta(days=self.config.days)
        total = 0
        while True:
            deleted = await self._store.prune(
                before=before, keep=self.config.max_entries, limit=PRUNE_CHUNK
            )
            total += deleted
            if deleted < PRUNE_CHUNK:
                return total
            await asyncio.sleep(0)  # let the chargers' frames through between chunks

    async def prune_forever(self) -> None:
        """The ``trail`` lease's job: :meth:`prune` every ``prune_interval`` seconds."""
        while True:
            try:
                deleted = await self.prune()
            except (StorageError, Unavailable) as exc:
                log.warning("message trail: pruning failed: %s", exc)
            else:
                if deleted:
                    log.info("message trail: %d old entries deleted", deleted)
            await asyncio.sleep(self.config.prune_interval)


class _PartnerObserver:
    """One client's reports of its requests to one partner (``ocpi.client``)."""

    __slots__ = ("_partner", "_recorder")

    def __init__(self, recorder: TrailRecorder, partner: str) -> None:
        self._recorder = recorder
        self._partner = partner

    def sent(
        self, method: str, url: URL, request_id: str, correlation_id: str, body: bytes | None
    ) -> None:
        recorder = self._recorder
        recorder.ocpi(
            recorder.now(), self._partner, "out", "request", method, url, request_id,
            correlation_id, None, None, body,
        )  # fmt: skip

    def answered(
        self,
        method: str,
        url: URL,
        request_id: str,
        correlation_id: str,
        http_status: int | None,
        body: bytes | None,
        error: str | None,
    ) -> None:
        recorder = self._recorder
        status = str(http_status) if http_status is not None else (error or "error")
        recorder.ocpi(
            recorder.now(), self._partner, "in", "response", method, url, request_id,
            correlation_id, status, None, body,
        )  # fmt: skip


TRAIL = web.AppKey("trail", TrailRecorder)


def _partner_id(request: web.Request) -> str | None:
    context = request.get(CONTEXT_KEY)
    party = getattr(context, "party", None)
    partner = getattr(party, "partner", None)
    value = getattr(partner, "id", None)
    return value if isinstance(value, str) else None


ServedCounter = Callable[[str, str, str, int], None]
"""``(path, module, method, HTTP status)``: counts an OCPI request served
(``gateway.metrics.Metrics.ocpi_served``)."""

# Paths whose OCPI module is kept (ocpi_module of each): bounded, emptied when full.
_MODULES_KEPT: Final = 1024


class OcpiExchanges:
    """The one middleware of the OCPI requests the gateway serves (every path under
    ``/ocpi/``): puts its X-Request-ID and X-Correlation-ID on the log lines of its
    handling, records the request and its answer in the message trail (``recorder``,
    set while the trail runs: the partner once the OCPI middleware authenticated the
    request, the body only then, as read by it) and counts it in the metrics
    (``served``, set when metrics are on). One layer for both, the URL's module read
    once (and kept per path)."""

    def __init__(self) -> None:
        self.recorder: TrailRecorder | None = None
        self.served: ServedCounter | None = None
        # :func:`~gateway.metrics.ocpi_module` of each path seen, kept (bounded, least
        # recently used dropped first).
        self.module = functools.lru_cache(maxsize=_MODULES_KEPT)(ocpi_module)

    @web.middleware
    def middleware(self, request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        # Not a coroutine: what it has nothing to record (a path outside /ocpi/, or the
        # trail and metrics both off) goes on without a middleware frame of its own.
        path = request.path
        if not path.startswith("/ocpi/"):
            return handler(request)
        headers = request.headers
        request_id = headers.get(REQUEST_ID_HEADER)
        correlation_id = headers.get(CORRELATION_ID_HEADER)
        logs.request_id.set(request_id)
        logs.correlation_id.set(correlation_id)
        if self.recorder is None and self.served is None:
            return handler(request)
        return self._observed(request, handler, request_id, correlation_id)

    async def _observed(
        self,
        request: web.Request,
        handler: Handler,
        request_id: str | None,
        correlation_id: str | None,
    ) -> web.StreamResponse:
        recorder = self.recorder
        arrived = recorder.now() if recorder is not None else None
        answer: web.StreamResponse | None = None
        try:
            answer = await handler(request)
            return answer
        except web.HTTPException as exc:
            answer = exc
            raise
        finally:
            body = None
            partner = None
            if recorder is not None:
                partner = _partner_id(request)
                if partner is not None and request.body_exists:
                    # Already read (and bounded in time) by the OCPI middleware: from
                    # its cache.
                    with contextlib.suppress(Exception):
                        body = await request.read()
            # Counted and recorded just after the answer is written (the next turn of
            # the loop, before any answer can reach the partner): not on its latency.
            asyncio.get_running_loop().call_soon(
                self._after, request, answer, arrived, partner, body, request_id,
                correlation_id,
            )  # fmt: skip

    def _after(
        self,
        request: web.Request,
        answer: web.StreamResponse | None,
        arrived: datetime | None,
        partner: str | None,
        body: bytes | None,
        request_id: str | None,
        correlation_id: str | None,
    ) -> None:
        method, module = request.method, self.module(request.path)
        served, recorder = self.served, self.recorder
        if served is not None:
            served(request.path, module, method, answer.status if answer is not None else 500)
        if recorder is not None and arrived is not None:
            _record(
                recorder, request, answer, arrived, partner, body, method, module,
                request_id, correlation_id,
            )  # fmt: skip


def _record(
    recorder: TrailRecorder,
    request: web.Request,
    answer: web.StreamResponse | None,
    arrived: datetime,
    partner: str | None,
    body: bytes | None,
    method: str,
    module: str,
    request_id: str | None,
    correlation_id: str | None,
) -> None:
    """The trail's two entries of a request served and its answer."""
    path = str(request.rel_url)
    status = str(answer.status) if answer is not None else "500"
    out: bytes | None = None
    ocpi_status: int | None = None
    if isinstance(answer, web.Response):
        ocpi_status = answer.get(STATUS_CODE_KEY)
        raw = answer.body
        out = raw if isinstance(raw, bytes) else None
    reply_id = answer.headers.get(REQUEST_ID_HEADER) if answer is not None else None
    recorder.exchange(
        arrived, partner, method, module, path, request_id, correlation_id, body,
        reply_id or request_id, status, ocpi_status, out,
    )  # fmt: skip


EXCHANGES = web.AppKey("ocpi_exchanges", OcpiExchanges)


def add_trail(app: web.Application) -> None:
    """The middleware of the OCPI requests served (:class:`OcpiExchanges`: the trail's
    entries, it does nothing for them while the trail is off; the metrics' count, once
    ``add_metrics`` hands it theirs) and the trail's context (append after the core,
    roaming and hub contexts: it wires their parts)."""
    exchanges = OcpiExchanges()
    app[EXCHANGES] = exchanges
    app.middlewares.append(exchanges.middleware)
    app.cleanup_ctx.append(_trail_ctx)


async def _trail_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.trail:
        yield
        return
    recorder = TrailRecorder(app[STORE].trail, app[CLOCK].now, TrailConfig.from_settings(settings))
    app[TRAIL] = recorder
    exchanges = app[EXCHANGES]
    exchanges.recorder = recorder
    csms, registry = app[CSMS], app[REGISTRY]
    csms.trail = recorder
    registry.observer = recorder.partner_observer
    writer = asyncio.create_task(recorder.run(), name="trail-writer")
    pruner = app[LEASES].start("trail", recorder.prune_forever)
    yield
    await pruner.stop()
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    csms.trail = None
    registry.observer = None
    exchanges.recorder = None
    await recorder.flush()  # the frames of the chargers closed at shutdown
