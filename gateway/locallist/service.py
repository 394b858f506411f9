"""Each charger's local authorization list: built, sent, kept in sync, recorded.

What a charger holds is recorded per charger in ``Store.local_lists`` (a document keyed
by the charger id): the version last sent and last acknowledged, the last answer, and
each token on the list with what it says (status, expiry, parent), so that a later
update sends exactly what differs and the count and the truncation are known.

Token changes (admin token PUT/DELETE, an eMSP's token PUT/PATCH) are noted in
``Store.local_list_changes`` (a document per token uid, its time the change's), after the
token itself is written: whoever reads the note reads the new token.

Who sends: everything for a charger is driven by the process holding its connection
(``held``), never by a once-per-cluster job. That process alone sees the charger connect,
where the version check must happen anyway; the work spreads over the processes like the
chargers; a process that dies takes nothing with it (its chargers reconnect elsewhere,
where the check catches up from the stored record). Each process looks at the change
notes every ``interval`` seconds (one range read, empty most of the time; at once after
a change it noted itself) and updates the lists of its chargers. The operator's
``sync`` and a charger's configuration change may run on any process (the commands go
through the router): a per-charger lease (``local-list-<hash>``) and a per-process lock
keep two updates of one charger from interleaving.

Updates (OCPP 1.6 section 5.15 / 2.0.1 D01):

- at each connection: GetLocalListVersion; a version other than the one the charger last
  acknowledged (or no record) means a full update, else a differential one catches up;
- a full update sends the tokens that may charge (Accepted), at most the charger's
  maximum (1.6 ``LocalAuthListMaxLength``; 2.0.1 reports it only as a characteristic, so
  the setting bounds it), the most recently used first; what is left out is logged and
  recorded. Split into messages of at most the charger's ``SendLocalListMaxLength``
  (1.6) / ``ItemsPerMessage`` and ``BytesPerMessage`` (2.0.1): the first Full, the rest
  Differential (a second Full would replace the first), each its own version;
- a differential update sends what changed: a token that may charge, a token the charger
  holds that may not any more (Blocked, Expired, Invalid), and the removal of one that
  is gone (deleted, or a whitelist of NEVER). A VersionMismatch or Failed answer brings
  a full update; NotSupported is recorded and the charger left alone until it connects
  again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from aiohttp import web

from gateway.domain.clock import Clock, format_timestamp, parse_timestamp
from gateway.domain.commands import (
    CommandResult,
    CommandSender,
    GetConfiguration,
    GetLocalListVersion,
    GetVariables,
    LocalListEntry,
    LocalListStatus,
    SendLocalList,
    VariableRef,
)
from gateway.domain.device_model import ComponentVariable, DeviceModelQuery, GetReport
from gateway.domain.errors import (
    ChargerNotConnected,
    ChargerRejected,
    CommandNotSupported,
    DomainError,
    Unavailable,
)
from gateway.domain.events import (
    ChargerBooted,
    ChargerConfigured,
    ChargerOffline,
    ChargerOnline,
    Event,
)
from gateway.domain.models import Charger, LocalToken, OcppVersion, token_key
from gateway.storage.base import Document, LeaseStore, Store

log = logging.getLogger(__name__)

# Change notes are read from this long before a charger's last update: notes written by
# processes whose clocks run a little behind are not missed (re-reading one is harmless:
# only what differs from the recorded list is sent).
CLOCK_MARGIN = timedelta(seconds=30)
# "Most recently used first": transactions of this many days, at most this many.
USAGE_DAYS = 90
USAGE_MAX_TRANSACTIONS = 20_000
# Left-out token uids shown to the operator (the count is whole).
LEFT_OUT_SHOWN = 20
# Longest id token per version (1.6 CiString20; 2.0.1 identifierString 36; 2.1 255).
ID_LIMIT = {OcppVersion.V16: 20, OcppVersion.V201: 36, OcppVersion.V21: 255}
# A SendLocalList frame around its entries ([2,"<uuid>","SendLocalList",{...}]), bytes.
FRAME_OVERHEAD = 200
# Parallel updates when many chargers need one after a token change.
PARALLEL = 8
_PAGE = 500


class TokenSource(Protocol):
    """The eMSPs' tokens that may be on local lists (whitelist other than NEVER), in
    domain terms (implemented by ``gateway.roaming.tokens.OfflineTokens``)."""

    async def entries(self) -> list[LocalListEntry]:
        """Every pushed token whose whitelist allows offline use."""
        ...

    async def entry(self, uid: str) -> LocalListEntry | None:
        """The token ``uid`` as a list entry; None when it may not be on a list."""
        ...


class Busy(DomainError):
    """Another update of the charger's list is under way."""


class ListOff(DomainError):
    """The local list is off for the charger (setting and charger configuration)."""


@dataclass(slots=True)
class ListRecord:
    """What the gateway knows of one charger's local list (``Store.local_lists``)."""

    charger_id: str
    version_sent: int = 0
    version_acked: int = 0
    last_result: str | None = None
    last_update: str | None = None  # "Full" or "Differential"
    last_sync_at: datetime | None = None
    synced_at: datetime | None = None  # change notes up to here are on the list
    # uid -> what the charger holds for it (signature: status|expiry|parent)
    entries: dict[str, str] = field(default_factory=dict)
    truncated: bool = False
    left_out_count: int = 0
    left_out: list[str] = field(default_factory=list)
    max_entries: int | None = None  # the bound applied (charger's maximum, setting)
    reported_max: int | None = None
    per_message: int | None = None
    bytes_per_message: int | None = None
    reported_version: int | None = None
    error: str | None = None

    def to_doc(self, at: datetime) -> Document:
        data = {
            "version_sent": self.version_sent,
            "version_acked": self.version_acked,
            "last_result": self.last_result,
            "last_update": self.last_update,
            "last_sync_at": _time(self.last_sync_at),
            "synced_at": _time(self.synced_at),
            "entries": self.entries,
            "truncated": self.truncated,
            "left_out_count": self.left_out_count,
            "left_out": self.left_out,
            "max_entries": self.max_entries,
            "reported_max": self.reported_max,
            "per_message": self.per_message,
            "bytes_per_message": self.bytes_per_message,
            "reported_version": self.reported_version,
            "error": self.error,
        }
        return Document(self.charger_id, data, at)

    @classmethod
    def from_doc(cls, doc: Document) -> ListRecord:
        d = doc.data
        return cls(
            charger_id=doc.key,
            version_sent=int(d.get("version_sent", 0)),
            version_acked=int(d.get("version_acked", 0)),
            last_result=d.get("last_result"),
            last_update=d.get("last_update"),
            last_sync_at=_parse(d.get("last_sync_at")),
            synced_at=_parse(d.get("synced_at")),
            entries=dict(d.get("entries") or {}),
            truncated=bool(d.get("truncated", False)),
            left_out_count=int(d.get("left_out_count", 0)),
            left_out=list(d.get("left_out") or []),
            max_entries=d.get("max_entries"),
            reported_max=d.get("reported_max"),
            per_message=d.get("per_message"),
            bytes_per_message=d.get("bytes_per_message"),
            reported_version=d.get("reported_version"),
            error=d.get("error"),
        )

    def view(self, enabled: bool) -> dict[str, Any]:
        """The operator's view (admin API ``GET /admin/chargers/{id}/local-list``)."""
        return {
            "charger_id": self.charger_id,
            "enabled": enabled,
            "version_sent": self.version_sent,
            "version_acked": self.version_acked,
            "charger_version": self.reported_version,
            "last_result": self.last_result,
            "last_update": self.last_update,
            "last_sync_at": self.last_sync_at,
            "entries": len(self.entries),
            "truncated": self.truncated,
            "left_out_count": self.left_out_count,
            "left_out": list(self.left_out),
            "max_entries": self.max_entries,
            "charger_max_entries": self.reported_max,
            "per_message": self.per_message,
            "bytes_per_message": self.bytes_per_message,
            "error": self.error,
        }


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _parse(value: Any) -> datetime | None:
    return parse_timestamp(value) if isinstance(value, str) else None


def signature(entry: LocalListEntry) -> str:
    """What a charger holding ``entry`` knows of its token, to compare."""
    status = entry.status.value if entry.status is not None else "-"
    expiry = _time(entry.expires_at) or ""
    return f"{status}|{expiry}|{entry.parent_id or ''}"


def local_entry(token: LocalToken, now: datetime) -> LocalListEntry:
    """A local token as a list entry: Accepted while valid and not expired."""
    if not token.valid:
        status = LocalListStatus.BLOCKED
    elif token.expiry is not None and token.expiry <= now:
        status = LocalListStatus.EXPIRED
    else:
        status = LocalListStatus.ACCEPTED
    return LocalListEntry(
        id_token=token.uid,
        status=status,
        expires_at=token.expiry,
        parent_id=token.parent_id,
        token_type=token.type,
        contract_id=token.contract_id,
    )


def entry_bytes(entry: LocalListEntry) -> int:
    """About how many bytes ``entry`` takes in a 2.0.1 SendLocalList (JSON, with the
    longest token type), to keep a message under BytesPerMessage."""
    info: dict[str, Any] = {"status": entry.status.value if entry.status else ""}
    if entry.expires_at is not None:
        info["cacheExpiryDateTime"] = _time(entry.expires_at)
    if entry.parent_id:
        info["groupIdToken"] = {"idToken": entry.parent_id, "type": "Central"}
    item = {"idToken": {"idToken": entry.id_token, "type": "NoAuthorization"}, "idTokenInfo": info}
    return len(json.dumps(item, separators=(",", ":")).encode()) + 1


def chunks(
    entries: Sequence[LocalListEntry], per_message: int | None, bytes_per_message: int | None
) -> list[list[LocalListEntry]]:
    """``entries`` in messages of at most ``per_message`` entries and about
    ``bytes_per_message`` bytes (at least one entry each); one empty message for none."""
    out: list[list[LocalListEntry]] = []
    current: list[LocalListEntry] = []
    size = FRAME_OVERHEAD
    for entry in entries:
        n = entry_bytes(entry)
        full = per_message is not None and len(current) >= per_message
        too_big = bytes_per_message is not None and size + n > bytes_per_message
        if current and (full or too_big):
            out.append(current)
            current, size = [], FRAME_OVERHEAD
        current.append(entry)
        size += n
    out.append(current)
    return out


def lease_name(charger_id: str) -> str:
    """The per-charger lease (lease names are ``[a-z][a-z0-9-]*``; charger ids are not)."""
    return "local-list-" + hashlib.sha256(charger_id.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Limits:
    """What the charger reported of its list (None: not reported)."""

    supported: bool
    max_entries: int | None = None
    per_message: int | None = None
    bytes_per_message: int | None = None


class LocalLists:
    """The local lists of the chargers; ``on_event`` to the bus, ``run`` as a task."""

    def __init__(
        self,
        store: Store,
        sender: CommandSender,
        clock: Clock,
        leases: LeaseStore,
        holder: str,
        *,
        enabled: bool,
        max_entries: int,
        interval: float,
        lease_ttl: float,
        settle: float,
        held: Callable[[], Iterable[str]],
    ) -> None:
        self._store = store
        self._sender = sender
        self._clock = clock
        self._leases = leases
        self._holder = holder
        self.enabled_default = enabled
        self.max_entries = max_entries
        self._interval = interval
        self._lease_ttl = lease_ttl
        self._settle = settle
        self._held = held
        self.roaming: TokenSource | None = None  # set when the roaming side is up
        self._locks: dict[str, asyncio.Lock] = {}
        self._wake = asyncio.Event()
        self._looked: datetime | None = None
        self._seen: dict[str, datetime] = {}
        self._retry: set[str] = set()
        self._waiting: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- settings ------------------------------------------------------------------

    def enabled(self, charger: Charger) -> bool:
        return self.enabled_default if charger.local_list is None else charger.local_list

    def _bound(self, charger: Charger, reported: int | None) -> int:
        wanted = charger.local_list_max_entries or self.max_entries
        return wanted if reported is None else min(wanted, reported)

    # -- records ---------------------------------------------------------------------

    async def record(self, charger_id: str) -> ListRecord:
        doc = await self._store.local_lists.get(charger_id)
        return ListRecord.from_doc(doc) if doc is not None else ListRecord(charger_id)

    async def _save(self, record: ListRecord) -> None:
        await self._store.local_lists.put(record.to_doc(self._clock.now()))

    async def forget(self, charger_id: str) -> None:
        """The charger was removed: its record goes too."""
        await self._store.local_lists.delete(charger_id)

    # -- token changes ---------------------------------------------------------------

    async def token_changed(self, uid: str) -> None:
        """Note that token ``uid`` changed (after it was written): the lists holding it,
        or that should, get a differential update."""
        await self._store.local_list_changes.put(Document(uid, {}, self._clock.now()))
        self._wake.set()

    async def _notes_since(self, since: datetime | None) -> list[Document]:
        start = None if since is None else since - CLOCK_MARGIN
        notes: list[Document] = []
        offset = 0
        while True:
            docs, total = await self._store.local_list_changes.list(
                date_from=start, offset=offset, limit=_PAGE
            )
            notes.extend(docs)
            offset += len(docs)
            if not docs or offset >= total:
                return notes

    async def _changed_since(self, since: datetime | None) -> list[str]:
        return [d.key for d in await self._notes_since(since)]

    # -- the desired list ------------------------------------------------------------

    async def _resolve(self, uid: str, now: datetime) -> LocalListEntry | None:
        """What a list should say of ``uid``: the local token wins over an eMSP's."""
        token = await self._store.tokens.get(uid)
        if token is not None:
            return local_entry(token, now)
        if self.roaming is None:
            return None
        return await self.roaming.entry(uid)

    async def _every_token(self, now: datetime) -> dict[str, LocalListEntry]:
        """Every token a list may hold, by :func:`token_key` (OCPP compares id tokens
        case-insensitively: an eMSP's ``abc1`` and a local ``ABC1`` are one token, the
        local one's entry)."""
        out: dict[str, LocalListEntry] = {}
        if self.roaming is not None:
            for entry in await self.roaming.entries():
                out.setdefault(token_key(entry.id_token), entry)
        for token in await self._store.tokens.list():
            out[token_key(token.uid)] = local_entry(token, now)
        return out

    async def _last_used(self, now: datetime) -> dict[str, datetime]:
        """When each token (by :func:`token_key`) last started a transaction (recent ones,
        newest first)."""
        used: dict[str, datetime] = {}
        since = now - timedelta(days=USAGE_DAYS)
        offset = 0
        while offset < USAGE_MAX_TRANSACTIONS:
            page = await self._store.transactions.list(since=since, limit=_PAGE, offset=offset)
            for tx in page:
                if tx.id_token is not None:
                    used.setdefault(token_key(tx.id_token.uid), tx.started_at)
            if len(page) < _PAGE:
                break
            offset += len(page)
        return used

    # -- events and the loop ---------------------------------------------------------

    EVENTS = (ChargerBooted, ChargerOnline, ChargerOffline, ChargerConfigured)

    async def on_event(self, event: Event) -> None:
        match event:
            case ChargerBooted(state=state):
                self._schedule(state.id, 0.0)
            case ChargerOnline(charger_id=charger_id):
                self._schedule(charger_id, self._settle)
            case ChargerOffline(charger_id=charger_id):
                waiting = self._waiting.pop(charger_id, None)
                if waiting is not None:
                    waiting.cancel()
            case ChargerConfigured(charger_id=charger_id, before=before, after=after):
                if after is None:
                    await self.forget(charger_id)
                elif self.enabled(after) and (
                    before is None
                    or not self.enabled(before)
                    or before.local_list_max_entries != after.local_list_max_entries
                ):
                    # Turned on or bounded otherwise: checked now, wherever the charger is
                    # connected (a full update follows a new bound, see _sync).
                    self._schedule(charger_id, 0.0)

    def _schedule(self, charger_id: str, delay: float) -> None:
        waiting = self._waiting.get(charger_id)
        if waiting is not None:
            if delay > 0:
                return  # one is already coming
            waiting.cancel()  # a boot: now rather than after the settle time
        task = asyncio.create_task(self._connected_after(charger_id, delay))
        self._waiting[charger_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connected_after(self, charger_id: str, delay: float) -> None:
        # The task is not held in a local: cancelled (a boot or the charger gone before
        # the settle time), its frame would stay in the CancelledError's traceback and
        # make a cycle with it, left for a rare full collection.
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            self._not_waiting(charger_id)
            await self.sync(charger_id, check=True)
        except ChargerNotConnected:
            pass  # gone again: its next connection checks
        except (DomainError, Unavailable) as exc:
            log.warning("charger %s: local list not checked: %s", charger_id, exc)
            self._retry.add(charger_id)
        finally:
            self._not_waiting(charger_id)

    def _not_waiting(self, charger_id: str) -> None:
        """The current task (a check after a connection) no longer waits to begin."""
        if self._waiting.get(charger_id) is asyncio.current_task():
            del self._waiting[charger_id]

    async def run(self) -> None:
        """Every ``interval`` (at once after a change noted here): the lists of the
        chargers held by this process that a token change concerns."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.tick()
            except Unavailable as exc:
                log.warning("local lists: changes not read: %s", exc)
            except Exception:
                log.exception("local lists: update round failed")

    async def tick(self) -> None:
        now = self._clock.now()
        notes = await self._notes_since(self._looked) if self._looked else []
        first = self._looked is None
        self._looked = now
        # Notes are read again within the clock margin: only new ones start a round.
        changed = [n.key for n in notes if self._seen.get(n.key) != n.last_updated]
        self._seen = {n.key: n.last_updated for n in notes}
        retry, self._retry = self._retry, set()
        if first or not (changed or retry):
            # At start every held charger was checked when it connected.
            return
        # A charger waiting for its own check (it has just connected: after its boot, or
        # the settle time for a reconnect without one) is left to it: it may refuse
        # requests before its BootNotification is answered, and that check sees this change.
        held = set(self._held()) - self._waiting.keys()
        targets = sorted(held if changed else retry & held)
        semaphore = asyncio.Semaphore(PARALLEL)

        async def one(charger_id: str) -> None:
            async with semaphore:
                try:
                    await self.sync(charger_id)
                except ListOff:
                    pass
                except ChargerNotConnected:
                    pass  # its next connection checks
                except Busy:
                    self._retry.add(charger_id)
                except (DomainError, Unavailable) as exc:
                    log.warning("charger %s: local list not updated: %s", charger_id, exc)
                    self._retry.add(charger_id)

        await asyncio.gather(*(one(c) for c in targets))

    # -- one charger -------------------------------------------------------------------

    def _lock(self, charger_id: str) -> asyncio.Lock:
        lock = self._locks.get(charger_id)
        if lock is None:
            lock = self._locks[charger_id] = asyncio.Lock()
        return lock

    async def sync(self, charger_id: str, *, full: bool = False, check: bool = False) -> ListRecord:
        """Update the charger's list: ``full`` a full update; ``check`` first asks its
        version (at a connection); otherwise what changed. Raises ``ListOff``, ``Busy``
        and the command errors (``ChargerNotConnected``, ``ChargerTimeout``...)."""
        charger = await self._store.chargers.get(charger_id)
        if charger is None or not self.enabled(charger):
            raise ListOff(f"the local list is off for charger {charger_id!r}")
        lock = self._lock(charger_id)
        if lock.locked() and not (full or check):
            raise Busy(f"charger {charger_id!r}: its local list is being updated")
        async with lock:
            name = lease_name(charger_id)
            if not await self._leases.acquire(name, self._holder, self._lease_ttl):
                raise Busy(f"charger {charger_id!r}: another process updates its local list")
            try:
                return await self._sync(charger, full=full, check=check)
            finally:
                with contextlib.suppress(Exception):
                    await self._leases.release(name, self._holder)
                if not lock.locked():
                    self._locks.pop(charger_id, None)

    async def _send(self, charger_id: str, command: Any) -> CommandResult:
        await self._leases.renew(lease_name(charger_id), self._holder, self._lease_ttl)
        return await self._sender.send(charger_id, command)

    async def _sync(self, charger: Charger, *, full: bool, check: bool) -> ListRecord:
        record = await self.record(charger.id)
        state = await self._store.charger_states.get(charger.id)
        version = state.ocpp_version if state and state.ocpp_version else OcppVersion.V16
        now = self._clock.now()
        record.error = None
        if check or record.max_entries is None:
            limits = await self._limits(charger.id, version)
            if not limits.supported:
                return await self._not_supported(record, now)
            record.reported_max = limits.max_entries
            record.per_message = limits.per_message
            record.bytes_per_message = limits.bytes_per_message
        elif version is not OcppVersion.V16 and record.reported_max is None:
            # The report asked for at the last check may have come since.
            record.reported_max = await self._entries_max(charger.id, ask=False)
        bound = record.max_entries
        record.max_entries = self._bound(charger, record.reported_max)
        if bound is not None and bound != record.max_entries:
            full = True  # another bound: another choice of tokens
        if check:
            try:
                answer = await self._send(charger.id, GetLocalListVersion())
            except (ChargerRejected, CommandNotSupported) as exc:
                record.error = str(exc)
                return await self._not_supported(record, now)
            reported = answer.data.get("version")
            if not isinstance(reported, int) or reported < 0:
                return await self._not_supported(record, now)  # 1.6: -1, no support
            record.reported_version = reported
            if reported != record.version_acked or record.synced_at is None:
                log.info(
                    "charger %s: local list version %s, %s last acknowledged: full update",
                    charger.id,
                    reported,
                    record.version_acked,
                )
                full = True
        elif record.last_result == "NotSupported" and not full:
            return record  # until it connects again (or the operator asks)
        if full or record.synced_at is None:
            return await self._full(charger, record, version, now)
        return await self._differential(charger, record, version, now)

    async def _not_supported(self, record: ListRecord, now: datetime) -> ListRecord:
        record.last_result = "NotSupported"
        record.last_sync_at = now
        await self._save(record)
        log.info("charger %s: no local authorization list support", record.charger_id)
        return record

    async def _limits(self, charger_id: str, version: OcppVersion) -> Limits:
        """The charger's own bounds (1.6 configuration keys, 2.0.1 LocalAuthListCtrlr)."""
        if version is OcppVersion.V16:
            keys = ("LocalAuthListMaxLength", "SendLocalListMaxLength")
            answer = await self._sender.send(charger_id, GetConfiguration(keys))
            values = {
                str(k.get("key")): k.get("value")
                for k in answer.data.get("configurationKey") or []
                if isinstance(k, dict)
            }
            if "LocalAuthListMaxLength" not in values:
                # No Local Auth List Management profile (1.6 section 9.1).
                return Limits(supported=False)
            return Limits(
                True,
                max_entries=_int(values.get("LocalAuthListMaxLength")),
                per_message=_int(values.get("SendLocalListMaxLength")),
            )
        names = ("Enabled", "ItemsPerMessage", "BytesPerMessage")
        request = GetVariables(tuple(VariableRef("LocalAuthListCtrlr", n) for n in names))
        try:
            answer = await self._sender.send(charger_id, request)
        except CommandNotSupported:
            return Limits(supported=False)
        got: dict[str, str | None] = {}
        for item in answer.data.get("getVariableResult") or []:
            if isinstance(item, dict) and item.get("attributeStatus") == "Accepted":
                got[str((item.get("variable") or {}).get("name"))] = item.get("attributeValue")
        if "ItemsPerMessage" not in got:
            # D01: a station with a local list reports ItemsPerMessage and BytesPerMessage.
            return Limits(supported=False)
        return Limits(
            True,
            max_entries=await self._entries_max(charger_id),
            per_message=_int(got.get("ItemsPerMessage")),
            bytes_per_message=_int(got.get("BytesPerMessage")),
        )

    async def _entries_max(self, charger_id: str, *, ask: bool = True) -> int | None:
        """A 2.0.1 charger's list size: the ``maxLimit`` of LocalAuthListCtrlr.Entries
        (2.0.1 part 2, the variable's characteristics), which only a report carries (a
        GetVariables gives its Actual value, the entries held). Read from the stored
        device model; unknown, a GetReport of that one variable is asked for, and its
        NotifyReport sets it for the next update (until then the setting bounds it)."""
        rows, _ = await self._store.device_model.query(
            charger_id, DeviceModelQuery(component="LocalAuthListCtrlr", variable="Entries")
        )
        for row in rows:
            limit = row.characteristics.max_limit if row.characteristics else None
            if limit is not None and limit >= 0:
                return int(limit)
        if not ask:
            return None
        report = GetReport((ComponentVariable("LocalAuthListCtrlr", "Entries"),))
        try:
            await self._sender.send(charger_id, report)
        except Exception as exc:  # the setting bounds the list meanwhile
            log.info("charger %s: LocalAuthListCtrlr.Entries not reported: %s", charger_id, exc)
        return None

    def _fits(self, uid: str, version: OcppVersion) -> bool:
        return len(uid) <= ID_LIMIT[version]

    async def _full(
        self, charger: Charger, record: ListRecord, version: OcppVersion, now: datetime
    ) -> ListRecord:
        watermark = now
        every = await self._every_token(now)
        usable = [
            e
            for e in every.values()
            if e.status is LocalListStatus.ACCEPTED and self._fits(e.id_token, version)
        ]
        too_long = sorted(
            e.id_token
            for e in every.values()
            if e.status is LocalListStatus.ACCEPTED and not self._fits(e.id_token, version)
        )
        bound = record.max_entries if record.max_entries is not None else self.max_entries
        if len(usable) > bound:
            used = await self._last_used(now)
            oldest = datetime.min.replace(tzinfo=now.tzinfo)
            usable.sort(
                key=lambda e: (
                    -(used.get(token_key(e.id_token), oldest) - oldest).total_seconds(),
                    e.id_token,
                )
            )
        else:
            usable.sort(key=lambda e: e.id_token)
        chosen, left = usable[:bound], [e.id_token for e in usable[bound:]] + too_long
        messages = chunks(chosen, record.per_message, record.bytes_per_message)
        base = max(record.version_sent, record.reported_version or 0)
        held: dict[str, str] = {}
        for index, message in enumerate(messages):
            number = base + index + 1
            command = SendLocalList(number, full=index == 0, entries=tuple(message))
            record.version_sent = number
            record.last_update = "Full" if index == 0 else "Differential"
            status = await self._answer(charger.id, command, record)
            if status != "Accepted":
                if index == 0:
                    record.entries = {}  # what it holds is not known: the next check resends
                    record.synced_at = None
                else:
                    record.entries = held
                record.last_sync_at = now
                await self._save(record)
                return record
            record.version_acked = number
            held.update((e.id_token, signature(e)) for e in message)
        record.entries = held
        record.truncated = bool(left)
        record.left_out_count = len(left)
        record.left_out = left[:LEFT_OUT_SHOWN]
        record.synced_at = watermark
        record.last_sync_at = now
        record.reported_version = record.version_acked
        if left:
            log.info(
                "charger %s: local list holds %d of %d tokens (bound %d, or too long for "
                "OCPP %s); left out: %s%s",
                charger.id,
                len(chosen),
                len(chosen) + len(left),
                bound,
                version,
                ", ".join(left[:LEFT_OUT_SHOWN]),
                "..." if len(left) > LEFT_OUT_SHOWN else "",
            )
        await self._save(record)
        return record

    async def _differential(
        self, charger: Charger, record: ListRecord, version: OcppVersion, now: datetime
    ) -> ListRecord:
        watermark = now
        changed = await self._changed_since(record.synced_at)
        bound = record.max_entries if record.max_entries is not None else self.max_entries
        updates: list[LocalListEntry] = []
        room = bound - len(record.entries)
        left: list[str] = []
        # Tokens compare case-insensitively (token_key): what the charger holds, by key,
        # in the spelling it was sent. Notes of one token in two spellings are one change:
        # the spelling that resolves to an entry (an eMSP's token is found in its own).
        held = {token_key(uid): uid for uid in record.entries}
        resolved: dict[str, tuple[str, LocalListEntry | None]] = {}
        for uid in sorted(set(changed)):
            entry = await self._resolve(uid, now)
            key = token_key(uid)
            if key not in resolved or (resolved[key][1] is None and entry is not None):
                resolved[key] = (uid, entry)
        respelled: dict[str, str] = {}  # the spelling sent -> the one the charger held
        for key in sorted(resolved):
            uid, entry = resolved[key]
            held_uid = held.get(key)
            if entry is not None and not self._fits(uid, version):
                entry = None
            if entry is not None and entry.status is LocalListStatus.ACCEPTED:
                if held_uid is None:
                    if room <= 0:
                        left.append(uid)
                        continue
                    room -= 1
                elif held_uid != entry.id_token:
                    respelled[entry.id_token] = held_uid
                elif record.entries[held_uid] == signature(entry):
                    continue
                updates.append(entry)
            elif held_uid is not None:
                # It may not charge any more: blocked, expired, invalid, or removed
                # (deleted, whitelist NEVER: the charger must ask the central system).
                gone = entry is None
                update = LocalListEntry(held_uid, status=None) if gone else entry
                assert update is not None
                if update.id_token != held_uid:
                    respelled[update.id_token] = held_uid
                elif record.entries[held_uid] == signature(update):
                    continue
                if gone:
                    room += 1
                updates.append(update)
        if not updates:
            record.synced_at = watermark
            if left:
                self._note_left(record, left)
            await self._save(record)
            return record
        base = max(record.version_sent, record.version_acked)
        for index, message in enumerate(
            chunks(updates, record.per_message, record.bytes_per_message)
        ):
            number = base + index + 1
            record.version_sent = number
            record.last_update = "Differential"
            command = SendLocalList(number, full=False, entries=tuple(message))
            status = await self._answer(charger.id, command, record)
            if status in ("VersionMismatch", "Failed"):
                log.info(
                    "charger %s: differential update answered %s: full update",
                    charger.id,
                    status,
                )
                await self._save(record)
                return await self._full(charger, record, version, now)
            if status != "Accepted":
                record.last_sync_at = now
                await self._save(record)
                return record
            record.version_acked = number
            for entry in message:
                if entry.id_token in respelled:  # the charger's entry, now in this spelling
                    record.entries.pop(respelled[entry.id_token], None)
                if entry.status is None:
                    record.entries.pop(entry.id_token, None)
                else:
                    record.entries[entry.id_token] = signature(entry)
                if entry.id_token in record.left_out:  # left out before, on it now
                    record.left_out.remove(entry.id_token)
                    record.left_out_count = max(0, record.left_out_count - 1)
        record.synced_at = watermark
        record.last_sync_at = now
        record.reported_version = record.version_acked
        if left:
            self._note_left(record, left)
        await self._save(record)
        return record

    def _note_left(self, record: ListRecord, left: list[str]) -> None:
        record.truncated = True
        # Notes are read again within the clock margin: count each token once.
        new = [uid for uid in left if uid not in record.left_out]
        record.left_out = sorted(set(record.left_out) | set(left))[:LEFT_OUT_SHOWN]
        record.left_out_count += len(new)
        log.info(
            "charger %s: local list full (%s); not added: %s",
            record.charger_id,
            record.max_entries,
            ", ".join(left[:LEFT_OUT_SHOWN]),
        )

    async def _answer(self, charger_id: str, command: SendLocalList, record: ListRecord) -> str:
        """Send one SendLocalList; the charger's status (NotSupported for a CALLERROR
        saying so), recorded as the last result."""
        try:
            result = await self._send(charger_id, command)
            status = str(result.data.get("status", ""))
        except ChargerRejected as exc:
            if exc.code not in ("NotSupported", "NotImplemented"):
                raise
            status = "NotSupported"
        except CommandNotSupported as exc:
            record.error = str(exc)
            status = "NotSupported"
        record.last_result = status
        return status

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number >= 0 else None


LOCAL_LISTS = web.AppKey("local_lists", LocalLists)
