"""Store interfaces. Every method is a coroutine; every write is durable when it returns.

Common to every store: a naive datetime is refused with
:class:`gateway.storage.codec.NaiveDatetimeError` (a ``ValueError``), and a float where
a ``Decimal`` belongs with ``TypeError``, before anything is written; times come back
as aware UTC. A backend failure, and any use after ``Store.close()``, raises
:class:`StorageError`. Listings come in the stable order each method gives.
"""

from __future__ import annotations

import builtins
import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gateway.domain.certificates import IssuedCertificate
from gateway.domain.device_model import (
    Alert,
    DeviceModelQuery,
    DeviceVariable,
    ReportStatus,
    ValueUpdate,
)
from gateway.domain.errors import Unavailable
from gateway.domain.models import (
    Charger,
    ChargerState,
    ConnectorState,
    ConnectorStatus,
    LocalToken,
    MeterReading,
    Transaction,
)


class StorageError(Exception):
    """A backend failed; the operation may or may not have been applied."""


class StorageUnavailable(StorageError, Unavailable):
    """The backend could not be reached (within the backend's retry bound): an outage,
    not a bug; worth a one-line warning rather than a traceback."""


class ChargerStore(Protocol):
    """Operator configuration of chargers."""

    async def put(self, charger: Charger) -> None: ...
    async def get(self, charger_id: str) -> Charger | None: ...
    async def delete(self, charger_id: str) -> bool: ...
    async def list(self) -> builtins.list[Charger]:
        """Every charger, by id."""
        ...

    async def placed(self, charger_id: str) -> Charger | None:
        """The charger's record when it is placed at a location (``location_id`` set);
        None when it is placed nowhere or not known. Asked at every connector status
        change: SQLite knows from memory which chargers are placed, and reads only
        theirs."""
        ...


class ChargerStateStore(Protocol):
    """What chargers reported about themselves (boot info, connection, heartbeat)."""

    async def put(self, state: ChargerState) -> None: ...
    async def get(self, charger_id: str) -> ChargerState | None: ...
    async def list(self) -> builtins.list[ChargerState]:
        """Every charger's state, by id."""
        ...

    async def delete(self, charger_id: str) -> None: ...


class ConnectorStore(Protocol):
    async def put(self, state: ConnectorState) -> None: ...
    async def list(self, charger_id: str) -> builtins.list[ConnectorState]:
        """The charger's connectors, by (evse_id, connector_id)."""
        ...

    async def set_all(self, charger_id: str, status: ConnectorStatus, at: datetime) -> None:
        """Set every known connector of the charger to ``status`` (offline -> UNKNOWN).

        Each becomes ``ConnectorState(charger_id, evse_id, connector_id, status, at)``:
        ``error_code`` and ``info`` described the previous status and are cleared.
        """
        ...

    async def delete(self, charger_id: str) -> None: ...


class TransactionStore(Protocol):
    async def create(
        self, tx: Transaction, readings: Sequence[MeterReading] = ()
    ) -> tuple[Transaction, bool]:
        """Store a new transaction unless one with the same (charger_id, ocpp_id) exists.

        Returns the stored transaction and whether it was created. Atomic with the
        readings. Idempotent so that a charger repeating a start after a lost
        answer gets the same transaction (the repeat's readings are dropped).
        ``Conflict`` if ``tx.id`` is already stored for another (charger_id, ocpp_id).
        """
        ...

    async def save(self, tx: Transaction, readings: Sequence[MeterReading] = ()) -> None:
        """Replace the transaction and append readings, atomically.

        Stores it if its id is unknown. (charger_id, ocpp_id) is a transaction's
        identity: ``Conflict``, and nothing written, if the stored transaction has
        another one or another transaction has this one.
        """
        ...

    async def get(self, tx_id: str) -> Transaction | None: ...
    async def find(self, charger_id: str, ocpp_id: str) -> Transaction | None: ...
    async def readings(self, tx_id: str) -> builtins.list[MeterReading]: ...
    async def list(
        self,
        *,
        charger_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[Transaction]:
        """Transactions by start time, newest first; ``since`` inclusive, ``until`` exclusive.

        Equal start times come by id, descending. ``ValueError`` if limit or offset < 0.
        """
        ...

    async def active(self, charger_id: str) -> builtins.list[Transaction]:
        """The charger's ACTIVE transactions, newest first (ordered as ``list``)."""
        ...

    async def count_active(self) -> int:
        """How many transactions are ACTIVE, on every charger (the metrics' gauge)."""
        ...

    async def next_ocpp16_id(self) -> int:
        """A new integer transactionId for OCPP 1.6 (unique, never reused, > 0)."""
        ...


class TokenStore(Protocol):
    async def put(self, token: LocalToken) -> None: ...
    async def get(self, uid: str) -> LocalToken | None: ...
    async def delete(self, uid: str) -> bool: ...
    async def list(self) -> builtins.list[LocalToken]:
        """Every token, by uid."""
        ...


# -- roaming (OCPI) --------------------------------------------------------------------
#
# The OCPI bridge keeps its objects (operator locations and tariffs, partner records,
# eMSP tokens, sessions, CDRs) as JSON documents: storage stays ignorant of the wire
# models, and one well-tested collection type serves every such entity.


@dataclass(frozen=True, slots=True)
class Document:
    """One JSON object of a collection.

    ``key`` is unique within the collection; ``owner`` (optional) is what listings
    filter on (a party such as ``"NL*ABC"`` or a partner id); ``last_updated`` orders
    listings and is what OCPI ``date_from``/``date_to`` filter on.

    ``data`` is plain JSON: ``str``, ``int``, ``float`` (finite), ``bool``, ``None``,
    ``list`` and ``dict`` with ``str`` keys. Anything else (``Decimal``, ``datetime``,
    ``tuple``, an ``int`` key...) would not come back as it went in, so ``put`` refuses
    it with ``TypeError`` (NaN, infinity, nesting deeper than 100: ``ValueError``)
    before writing anything; encode such values (e.g. a Decimal as its string) first.
    """

    key: str
    data: dict[str, Any]
    last_updated: datetime
    owner: str | None = None


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # gave up (permanent error or too many attempts); replayable


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A request to a partner that must eventually be delivered.

    Items with the same ``ordering_key`` (e.g. ``"session:NL/ABC/123"``) are
    delivered strictly in ``seq`` order: only the oldest undelivered item of a key
    (its *head*: the lowest ``seq`` that is not DONE) is ever due, so the PATCHes of
    one session are never reordered. ``body`` and ``meta`` are plain JSON, as
    ``Document.data``.

    ``completed_at``: when the item became DONE (``complete``/``discard``), else None;
    what ``OutboxStore.purge_done`` compares with.
    """

    id: str
    partner_id: str
    ordering_key: str
    method: str
    url: str
    body: dict[str, Any] | None
    created_at: datetime
    next_attempt_at: datetime
    seq: int = 0  # assigned by the store at enqueue: a global, increasing sequence
    attempts: int = 0
    status: OutboxStatus = OutboxStatus.PENDING
    last_error: str | None = None
    module: str | None = None  # e.g. "sessions", for the operator's view
    # What to do with the answer: e.g. {"kind": "command_result", ...}; opaque here.
    meta: dict[str, Any] | None = None
    completed_at: datetime | None = None  # set by the store when the item becomes DONE


class DocumentStore(Protocol):
    """One collection of documents (``Store.locations``, ``Store.sessions``...)."""

    async def put(self, doc: Document, *, enqueue: Sequence[OutboxItem] = ()) -> None:
        """Insert or replace ``doc`` and enqueue ``enqueue``, atomically.

        If the enqueue is refused (see ``OutboxStore.enqueue``), the document is not
        written either.
        """
        ...

    async def get(self, key: str) -> Document | None: ...
    async def delete(self, key: str, *, enqueue: Sequence[OutboxItem] = ()) -> bool:
        """Delete the document and enqueue ``enqueue``, atomically; False if it was absent.

        The items are enqueued only when the document existed (so that a repeated
        delete does not notify the partners twice); nothing is written otherwise.
        """
        ...

    async def list(
        self,
        *,
        owner: str | None = None,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[builtins.list[Document], int]:
        """A page ordered by (last_updated, key) ascending, and the total matching count.

        ``date_from`` inclusive, ``date_to`` exclusive (OCPI pagination). The total
        counts every document matching ``owner``/``date_from``/``date_to`` (ignoring
        ``offset``/``limit``), from the same snapshot as the page. Keys compare by
        code point (= UTF-8 bytes). ``ValueError`` if limit or offset < 0.
        """
        ...


class OutboxStore(Protocol):
    """Requests to partners, delivered in order per ordering key, retried until done.

    State changes: ``complete`` (PENDING or FAILED -> DONE), ``retry_later`` (PENDING
    stays PENDING), ``fail`` (PENDING -> FAILED), ``replay`` (FAILED -> PENDING) and
    ``discard`` (FAILED -> DONE). Applied to an item in another state, or to an
    unknown id, each is a no-op (``replay``/``discard`` then return False): a late
    or repeated call never resurrects a delivered item.

    Completion time: ``complete`` and ``discard`` take the time of the change from the
    caller (``at``, from its injected clock, as every other time the outbox stores), so
    that retention is measured on the same clock as everything else and tests stay
    deterministic. Without ``at`` the item's ``next_attempt_at`` is used (the last time
    the store knows for it: when it was last due). DONE items are kept until
    ``purge_done`` deletes them; PENDING and FAILED items are never deleted.
    """

    async def enqueue(self, items: Sequence[OutboxItem]) -> builtins.list[OutboxItem]:
        """Store new items (assigning ``seq``) atomically; returns them as stored.

        Items get increasing ``seq`` in the order given. Each must be PENDING
        (``ValueError``), without ``completed_at``; ``seq`` is ignored. ``Conflict``,
        and nothing stored, if an id is already stored (DONE items included) or
        repeated. Once ``purge_done`` deleted an item its id is forgotten (no
        tombstone: that would grow without bound again); ids come from an
        ``IdFactory`` (random UUIDs), so reusing one is a caller bug that is then no
        longer detected. ``seq`` values, however, are never reused, purged or not.
        """
        ...

    async def due(self, now: datetime, *, limit: int = 100) -> builtins.list[OutboxItem]:
        """Pending items whose ``next_attempt_at <= now`` and that head their ordering key.

        An ordering key whose oldest undelivered item is FAILED yields nothing until
        that item is replayed or discarded. Ordered by (next_attempt_at, seq).
        ``ValueError`` if limit < 0.
        """
        ...

    async def complete(self, item_id: str, *, at: datetime | None = None) -> None:
        """The item was delivered: DONE; the next item of its key becomes the head.

        ``completed_at`` = ``at``, or the item's ``next_attempt_at`` when None.
        """
        ...

    async def retry_later(self, item_id: str, next_attempt_at: datetime, error: str) -> None:
        """Count an attempt, record the error, and schedule the next one."""
        ...

    async def fail(self, item_id: str, error: str) -> None:
        """Give up on the item (it stays visible as FAILED and blocks its key).

        Counts the attempt that failed and records the error, as ``retry_later``.
        """
        ...

    async def replay(self, item_id: str, now: datetime) -> bool:
        """Make a FAILED item PENDING again, due at ``now``; False when not FAILED.

        ``attempts`` and ``last_error`` are kept (the delivery policy decides what
        they mean).
        """
        ...

    async def discard(self, item_id: str, *, at: datetime | None = None) -> bool:
        """Mark a FAILED item DONE without delivering it (unblocks its key).

        ``completed_at`` as for ``complete``.
        """
        ...

    async def purge_done(self, before: datetime, *, limit: int = 1000) -> int:
        """Delete up to ``limit`` DONE items with ``completed_at < before``; how many.

        The oldest completions go first. PENDING and FAILED items are never deleted,
        and since a DONE item is never a head nor counted by one, ``due`` and the
        order of the remaining items are unaffected. Atomic per call; call again
        while it returns ``limit``. ``ValueError`` if limit < 0.
        """
        ...

    async def pending_count(self, partner_id: str) -> int:
        """How many PENDING items the partner has (the metrics' outbox depth)."""
        ...

    async def get(self, item_id: str) -> OutboxItem | None: ...
    async def list(
        self,
        *,
        status: OutboxStatus | None = None,
        partner_id: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> builtins.list[OutboxItem]:
        """Items by ``seq`` ascending. ``ValueError`` if limit or offset < 0."""
        ...



# -- status history (reports: uptime and faults) -----------------------------------------


class StatusKind(enum.StrEnum):
    """What a :class:`StatusEntry` records: the charger's connection (``online``,
    ``offline``, ``boot``: a BootNotification, which also means connected) or one
    connector's status (``connector``)."""

    ONLINE = "online"
    OFFLINE = "offline"
    BOOT = "boot"
    CONNECTOR = "connector"


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """One change of a charger's connection or of a connector's status, when the gateway
    learned it (``at``, its clock). Connector entries carry ``evse_id``, ``connector_id``,
    ``status`` (a ``ConnectorStatus`` value) and ``error_code`` (1.6 errorCode other than
    NoError); ``detail`` is the offline reason or the connector's info text."""

    charger_id: str
    at: datetime
    kind: StatusKind
    evse_id: int | None = None
    connector_id: int | None = None
    status: str | None = None
    error_code: str | None = None
    detail: str | None = None

    @property
    def slot(self) -> str:
        """What the entry is the latest state of: ``connection``, or ``{evse}:{connector}``."""
        if self.kind is StatusKind.CONNECTOR:
            return f"{self.evse_id}:{self.connector_id}"
        return "connection"


class StatusHistoryStore(Protocol):
    """Per charger, the changes of its connection and connector statuses in time order
    (``gateway.reports``: uptime and faults). Entries of one charger come back ordered
    by (``at``, append order); an entry appended twice (a resend) is harmless to the
    reports, which read states, not counts of entries."""

    async def append(self, entries: Sequence[StatusEntry]) -> None:
        """Store the entries, in the order given (several chargers at once is fine)."""
        ...

    async def list(
        self,
        charger_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        newest_first: bool = False,
        offset: int = 0,
        limit: int = 1000,
    ) -> builtins.list[StatusEntry]:
        """A page of the charger's entries with ``since <= at < until``, oldest first
        (newest first with ``newest_first``). ``ValueError`` if limit or offset < 0."""
        ...

    async def purge(self, before: datetime) -> int:
        """Delete the entries older than ``before``, except each charger's newest one per
        slot (its connection, each connector) among them, so that the state at
        ``before`` stays known; answer how many were deleted."""
        ...

# -- the message trail (gateway.trail) -----------------------------------------------------


# Not frozen, unlike the other records: one is built per frame (in the trail's writer,
# off the charger's path), and a frozen dataclass takes nine times as long to build.
# Treat it as read-only all the same.
@dataclass(slots=True)
class TrailEntry:
    """One OCPP frame or one OCPI request or response, as the gateway sent or received it.

    ``protocol`` is ``ocpp`` or ``ocpi``; ``direction`` ``in`` (to the gateway) or ``out``.
    OCPP: ``charger_id``, ``action``, ``message_type`` (``CALL``, ``CALLRESULT``,
    ``CALLERROR``, ``invalid``), ``message_id``, ``status`` (a CALLERROR's code).
    OCPI: ``partner``, ``action`` (the module), ``message_type`` (``request``,
    ``response``), ``message_id`` (X-Request-ID), ``correlation_id``, ``method``, ``path``,
    ``status`` (a response's HTTP status) and ``ocpi_status`` (its ``status_code``).
    ``size``: bytes of the frame or body; ``body`` (when kept) its text, possibly cut
    (``truncated``). ``id`` is assigned by the store: entries sort by it in (``at``,
    append order), and it is the cursor of :meth:`TrailStore.query`.
    """

    at: datetime
    protocol: str
    direction: str
    charger_id: str | None = None
    partner: str | None = None
    action: str | None = None
    message_type: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    status: str | None = None
    ocpi_status: int | None = None
    method: str | None = None
    path: str | None = None
    size: int = 0
    transaction_id: str | None = None
    body: str | None = None
    truncated: bool = False
    id: str = ""


# A trail entry as a plain tuple, in TrailEntry's field order without ``id``: (at,
# protocol, direction, charger_id, partner, action, message_type, message_id,
# correlation_id, status, ocpi_status, method, path, size, transaction_id, body,
# truncated). What the trail's writer hands the store: no object per frame.
TrailRecord = tuple[
    datetime, str, str, str | None, str | None, str | None, str | None, str | None,
    str | None, str | None, int | None, str | None, str | None, int, str | None,
    str | None, bool,
]  # fmt: skip


def trail_record(entry: TrailEntry) -> TrailRecord:
    e = entry
    return (
        e.at, e.protocol, e.direction, e.charger_id, e.partner, e.action, e.message_type,
        e.message_id, e.correlation_id, e.status, e.ocpi_status, e.method, e.path, e.size,
        e.transaction_id, e.body, e.truncated,
    )  # fmt: skip


class TrailStore(Protocol):
    """The message trail: appended in batches, read by filters with a cursor, pruned by
    age and count. Not durable like the rest (a trail batch may be lost with a crash or
    an outage; the gateway counts such losses)."""

    async def append_batch(self, entries: Sequence[TrailEntry]) -> None:
        """Store the entries (their ``id`` is ignored and assigned), atomically."""
        ...

    async def append_records(self, make: Callable[[], Iterable[TrailRecord]]) -> None:
        """Store the records ``make()`` gives, as :meth:`append_batch` stores entries.
        ``make`` is pure and may run in the store's own thread, off the event loop (the
        SQLite store builds its rows there), so that the caller pays only the hand-off;
        a ``ValueError`` from it stores nothing. Atomic on SQLite; on Redis in scripts of
        at most 500 records, each atomic (a failure leaves the scripts before it stored)."""
        ...

    async def query(
        self,
        *,
        charger_id: str | None = None,
        partner: str | None = None,
        transaction_id: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: str | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> tuple[builtins.list[TrailEntry], str | None]:
        """A page of the entries matching every filter given, ordered by ``id`` (oldest
        first; newest first with ``newest_first``), ``since <= at < until``, after the
        cursor ``after``; and the cursor of the next page, None when no entry follows. A
        page may hold fewer than ``limit`` entries while a cursor is given (a backend
        bounds the entries it looks at per call). ``ValueError`` for a limit < 1 or a
        malformed cursor."""
        ...

    async def prune(self, *, before: datetime, keep: int, limit: int = 1000) -> int:
        """Delete up to ``limit`` entries: those with ``at < before`` first, then the
        oldest while more than ``keep`` remain; answer how many (call again while it
        answers ``limit`` or more). A backend that keeps the trail in segments (SQLite)
        may drop a whole segment at once, more than ``limit``, and keep an expired entry
        until its segment expires (at most an hour); it never keeps more than
        ``keep``."""
        ...

    async def count(self) -> int:
        """How many entries are stored."""
        ...

    async def close(self) -> None: ...


# Lease names are part of Redis key names: fixed words, never ``:``.
LEASE_NAME = re.compile(r"[a-z][a-z0-9-]*")


def check_lease(name: str, holder: str, ttl: float | None = None) -> None:
    """``ValueError`` unless the name is ``[a-z][a-z0-9-]*``, the holder not empty and
    the TTL (when given) from a millisecond to a year."""
    if not LEASE_NAME.fullmatch(name):
        raise ValueError(f"lease name {name!r} is not [a-z][a-z0-9-]*")
    if not holder:
        raise ValueError("a lease holder cannot be empty")
    if ttl is not None and not 0.001 <= ttl <= 366 * 86400:  # NaN and infinity too
        raise ValueError(f"a lease TTL must be from 0.001 s to a year, not {ttl!r}")


# A channel of MessageStore: a word, optionally ":" and a node id (printable, no space).
CHANNEL = re.compile(r"[a-z][a-z0-9-]*(:[!-~]{1,200})?")


def check_channel(channel: str) -> None:
    if not CHANNEL.fullmatch(channel):
        raise ValueError(f"channel {channel!r} is not a word, or a word ':' and a node id")


def check_owner(charger_id: str, node: str, ttl: float | None = None) -> None:
    """``ValueError`` unless the ids are not empty and the TTL from 1 ms to a day."""
    if not charger_id or not node:
        raise ValueError("a charger id and a node id cannot be empty")
    if ttl is not None and not 0.001 <= ttl <= 86400:
        raise ValueError(f"an ownership TTL must be from 0.001 s to a day, not {ttl!r}")


class LeaseStore(Protocol):
    """Named leases: which process of a cluster runs a piece of background work that
    must run once (see ``gateway.leases``). At most one holder per name; a lease not
    renewed within ``ttl`` seconds of its last acquire or renew expires, and is free.

    A holder never extends or ends another holder's lease. Each call is atomic, and
    repeating a call with the same arguments gives the same answer (a lost answer is
    safely asked again). Expiry is measured by the backend's clock (Redis: the server's;
    SQLite, one process only: an injected monotonic clock), never by the domain clock,
    which tests move by hours. Arguments: see :func:`check_lease` (``ValueError``).
    """

    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        """Take the lease if it is free (or expired) for ``ttl`` seconds: True. Already
        ``holder``'s: extended as by ``renew``, True. Another holder's: False."""
        ...

    async def renew(self, name: str, holder: str, ttl: float) -> bool:
        """Extend ``holder``'s lease to ``ttl`` seconds from now: True; False (and nothing
        changed) when it is not ``holder``'s (another's, free or expired)."""
        ...

    async def release(self, name: str, holder: str) -> None:
        """Free the lease if it is ``holder``'s; else nothing."""
        ...

    async def holder(self, name: str) -> str | None:
        """Who holds the lease now; None when it is free (or expired)."""
        ...


class Closeable(Protocol):
    async def close(self) -> None: ...


class Backend(Closeable, Protocol):
    async def ping(self) -> None:
        """Return once the backend answers a trivial request (readiness probes);
        :class:`StorageError` if it does not, or after ``close()``."""
        ...

    name: str  # "sqlite" or "redis" (the metrics' backend label)

    def observe_writes(self, observer: Callable[[float], None] | None) -> None:
        """Call ``observer`` with the duration in seconds of each write: an SQLite write
        transaction (from the writer thread), a Redis pipeline's round trip."""
        ...

    async def release_memory(self) -> None:
        """Give back what the backend keeps only for speed (SQLite: its connections'
        page caches; Redis: nothing), after a burst of work is over; the next requests
        build it again. :class:`StorageError` after ``close()``."""
        ...


@dataclass(frozen=True, slots=True)
class Owner:
    """Who holds a charger's connection (:class:`OwnershipStore`): the process (its node
    id), since when, and the charger's last heartbeat as that process last wrote it."""

    node: str
    since: datetime
    last_heartbeat: datetime | None = None


class OwnershipStore(Protocol):
    """Which process of a cluster holds each charger's connection (``gateway.cluster``).

    An owner record lives ``ttl`` seconds from its last claim or renew (measured by the
    backend's clock, as leases are); a process that dies stops renewing and its records
    expire. A claim always wins (the charger has just connected there: its newest
    connection is the one that counts, OCPP-J) and answers the process that held it
    before, so that the old process can be told to close its connection. Renew and
    release act only on the caller's own records. Each call is atomic and safe to repeat.
    """

    async def claim(self, charger_id: str, node: str, since: datetime, ttl: float) -> str | None:
        """Make ``node`` the owner; the previous owner when it was another node whose record
        had not expired, else None."""
        ...

    async def renew(
        self,
        node: str,
        charger_ids: Sequence[str],
        ttl: float,
        heartbeats: Sequence[datetime | None] = (),
    ) -> list[str]:
        """Extend ``node``'s records of these chargers (and set the last heartbeat of each
        given one, ``heartbeats`` being parallel to ``charger_ids``); answer the ids that
        are no longer ``node``'s (taken by another node, or expired)."""
        ...

    async def release(self, charger_id: str, node: str) -> bool:
        """Delete the record if it is ``node``'s: True; another node's (or none): False."""
        ...

    async def owners(self, charger_ids: Sequence[str]) -> list[Owner | None]:
        """The live owner of each charger (parallel to ``charger_ids``)."""
        ...


Listener = Callable[[str, bytes], None]


class Subscription(Protocol):
    """A running subscription of :meth:`MessageStore.subscribe`."""

    async def ready(self) -> None:
        """Return once the subscription is in place (messages published from now on are
        received); :class:`StorageError` if it could not be set up."""
        ...

    async def close(self) -> None: ...


class MessageStore(Protocol):
    """Messages between the processes of a cluster: fire and forget, to the processes
    subscribed at the time (Redis pub/sub), never stored. Channel names are
    ``[a-z][a-z0-9-]*`` words, optionally followed by ``:`` and a node id; the backend
    places them in its namespace."""

    async def publish(self, channel: str, message: bytes) -> int:
        """Send ``message``; answer how many subscribers received it (0: nobody listens)."""
        ...

    async def subscribers(self, channels: Sequence[str]) -> list[int]:
        """How many subscribers each channel has now (a process that died has none: its
        connection closed with it)."""
        ...

    def subscribe(
        self, channels: Sequence[str], listener: Listener, on_gap: Callable[[], None]
    ) -> Subscription:
        """Call ``listener(channel, message)`` for each message on ``channels``, in order,
        from the event loop. The subscription outlives connection losses: it is set up
        again, and since messages published meanwhile are lost, ``on_gap()`` is called
        once it is back (listeners then re-read what they keep from the store)."""
        ...


# -- certificates the gateway had issued to chargers (gateway.csms.certificates) ----------


class CertificateStore(Protocol):
    """Charger certificates the gateway had issued, by serial (lower-case hex). Kept when
    the charger is removed (a record of what was issued); a revoked one stays, revoked."""

    async def put(self, cert: IssuedCertificate) -> None:
        """Store the certificate, or replace the one with its serial."""
        ...

    async def get(self, serial: str) -> IssuedCertificate | None: ...

    async def for_charger(self, charger_id: str) -> builtins.list[IssuedCertificate]:
        """The charger's certificates, newest issued first (equal times by serial)."""
        ...

    async def expiring(
        self, before: datetime, *, limit: int = 1000
    ) -> builtins.list[IssuedCertificate]:
        """Certificates not revoked with ``not_after < before``, soonest first (equal
        times by serial), at most ``limit``. ``ValueError`` if limit < 0."""
        ...


# -- the 2.0.1/2.1 device model and alerts of each charger (gateway.csms.device_model) ----


class DeviceModelStore(Protocol):
    """Each charger's device model (one record per attribute, :class:`DeviceVariable`,
    keyed by ``VariableKey.text(attribute_type)``), the state of its reports and the
    alerts its monitors raised. Every write of one call is atomic."""

    async def apply_report(
        self,
        charger_id: str,
        request_id: int,
        seq_no: int,
        tbc: bool,
        rows: Sequence[DeviceVariable],
        at: datetime,
    ) -> ReportStatus:
        """One NotifyReport part: upsert ``rows`` (description and value; a reboot mark
        stays) and note the part in the report's state, in one write; the state after it.
        ``ValueError`` for a row of another charger, an empty name, a negative seqNo."""
        ...

    async def note_request(
        self,
        charger_id: str,
        request_id: int,
        *,
        kind: str | None,
        at: datetime,
        answer: str | None = None,
    ) -> None:
        """A report asked for (``answer`` None) or answered: sets kind, time and answer
        of its state, keeping the parts already noted. The newest 20 states per charger
        (by first news of them) are kept."""
        ...

    async def reports(self, charger_id: str) -> builtins.list[ReportStatus]:
        """The charger's report states, newest first news first."""
        ...

    async def update_values(self, charger_id: str, updates: Sequence[ValueUpdate]) -> None:
        """Values the charger accepted: value, time, source and reboot mark of each
        attribute (created without a description when no report named it)."""
        ...

    async def query(
        self, charger_id: str, query: DeviceModelQuery, *, limit: int = 100, offset: int = 0
    ) -> tuple[builtins.list[DeviceVariable], int]:
        """A page of the matching attributes in key order, and how many match in all.
        ``ValueError`` if limit or offset < 0."""
        ...

    async def add_alerts(
        self, charger_id: str, alerts: Sequence[Alert], *, keep: int
    ) -> builtins.list[Alert]:
        """Store ``alerts`` in order (each numbered: ``seq`` grows per charger); one that
        reports a clearing clears the active alerts before it with the same component
        and variable. Only the newest ``keep`` alerts of the charger stay. The alerts as
        stored."""
        ...

    async def alerts(
        self,
        charger_id: str,
        *,
        active: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[Alert]:
        """The charger's alerts, newest first; ``active`` True: only active ones, False:
        only the others."""
        ...

    async def delete(self, charger_id: str) -> None:
        """Forget the charger's device model, report states and alerts."""
        ...


@dataclass(frozen=True, slots=True)
class Store:
    """All entity stores of one backend."""

    chargers: ChargerStore
    charger_states: ChargerStateStore
    connectors: ConnectorStore
    transactions: TransactionStore
    tokens: TokenStore
    backend: Backend
    # Roaming (OCPI): one collection of documents each, and the outbox to partners.
    locations: DocumentStore
    tariffs: DocumentStore
    partners: DocumentStore
    ocpi_tokens: DocumentStore
    sessions: DocumentStore
    cdrs: DocumentStore
    # Hub (OCPI message routing): the operator's routing rules, the proxied command
    # response URLs, where objects routed through the hub belong (open routing) and the
    # party statuses the operator set.
    hub_rules: DocumentStore
    hub_links: DocumentStore
    hub_index: DocumentStore
    hub_statuses: DocumentStore
    # Transactions whose session or CDR update failed, to handle again (by the holder of
    # the "sessions" lease, whichever process it failed in).
    session_retries: DocumentStore
    # Site load management (gateway.smart): the sites (grid connections), their
    # time-bounded demand-response limits (owner: the site id), and each site's
    # allocator state (the limits in force per charger), so that a takeover by another
    # process continues from what the chargers hold.
    sites: DocumentStore
    site_limits: DocumentStore
    site_states: DocumentStore
    # Charging profiles the operator set through the admin API (gateway.charging.profiles):
    # what was asked, when, and the charger's last answer; sent again when it reconnects.
    charging_profiles: DocumentStore
    # Local authorization lists (gateway.locallist): per charger what it holds (key: the
    # charger id), and the token uids changed (key: the uid; last_updated: when).
    local_lists: DocumentStore
    local_list_changes: DocumentStore
    # OCPI 2.3.0 Payments (gateway.storage.payments): the payment terminals of each
    # PTP and the financial advice confirmations they sent (owner: the partner id).
    payment_terminals: DocumentStore
    payment_confirmations: DocumentStore
    payment_tariffs: DocumentStore  # the preauthorize_amount set per tariff id
    outbox: OutboxStore
    # Which process of a cluster runs each once-per-cluster background job.
    leases: LeaseStore
    # Which process holds each charger's connection, and messages between processes.
    owners: OwnershipStore
    messages: MessageStore
    # Every OCPP frame and OCPI request and response (gateway.trail), bounded.
    trail: TrailStore
    # Connection and connector status changes, for the reports (gateway.reports).
    status_history: StatusHistoryStore
    # Certificates issued to chargers (security profile 3).
    certificates: CertificateStore
    # 2.0.1/2.1 device models, their reports and the chargers' alerts.
    device_model: DeviceModelStore

    @classmethod
    def assemble(
        cls,
        *,
        chargers: ChargerStore,
        charger_states: ChargerStateStore,
        connectors: ConnectorStore,
        transactions: TransactionStore,
        tokens: TokenStore,
        backend: Backend,
        outbox: OutboxStore,
        documents: Callable[[str], DocumentStore],
        leases: LeaseStore,
        owners: OwnershipStore,
        messages: MessageStore,
        trail: TrailStore,
        status_history: StatusHistoryStore,
        certificates: CertificateStore,
        device_model: DeviceModelStore,
    ) -> Store:
        """A backend's stores; ``documents(name)`` opens the document collection ``name``
        (each collection is named after its field, so the names live here only)."""
        return cls(
            chargers=chargers,
            charger_states=charger_states,
            connectors=connectors,
            transactions=transactions,
            tokens=tokens,
            backend=backend,
            locations=documents("locations"),
            tariffs=documents("tariffs"),
            partners=documents("partners"),
            ocpi_tokens=documents("ocpi_tokens"),
            sessions=documents("sessions"),
            cdrs=documents("cdrs"),
            hub_rules=documents("hub_rules"),
            hub_links=documents("hub_links"),
            hub_index=documents("hub_index"),
            hub_statuses=documents("hub_statuses"),
            session_retries=documents("session_retries"),
            sites=documents("sites"),
            site_limits=documents("site_limits"),
            site_states=documents("site_states"),
            charging_profiles=documents("charging_profiles"),
            local_lists=documents("local_lists"),
            local_list_changes=documents("local_list_changes"),
            payment_terminals=documents("payment_terminals"),
            payment_confirmations=documents("payment_confirmations"),
            payment_tariffs=documents("payment_tariffs"),
            outbox=outbox,
            leases=leases,
            owners=owners,
            messages=messages,
            trail=trail,
            status_history=status_history,
            certificates=certificates,
            device_model=device_model,
        )

    async def ping(self) -> None:
        """The backend answers (a cheap read); StorageError if not."""
        await self.backend.ping()

    async def close(self) -> None:
        try:
            await self.trail.close()
        finally:
            await self.backend.close()
