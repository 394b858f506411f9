"""Sessions and CDRs for roaming drivers, from the central system's transaction events.

A transaction whose token belongs to an eMSP becomes an OCPI Session of the
location's CPO party, pushed only to that eMSP: PUT when it starts, PATCH as meter
values arrive (at most once a minute, and always when the status changes: kwh and
the running ``total_cost``; the periods go with the final PUT), a full PUT when it
is COMPLETED. Then a CDR priced by the tariff engine is POSTed. Each push goes
through the durable outbox in the same write as the record it describes.

A START_SESSION the charger accepted is a PENDING session until its transaction starts;
if none has started ``REMOTE_START_WINDOW`` after the command, the session is INVALID
(``expire_pending``, mod_sessions SessionStatus: "will not become active") and a
transaction that starts later is a session of its own. The command is stored by
charger and token too, so that a 1.6 transaction (no remote start id) finds it after
a restart of the gateway (``_lookup``). A PATCH the eMSP answers
"unknown object" is replaced by a PUT of the whole session (``get``, the outbox's
builder for :data:`SESSION_OBJECT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from gateway.domain.clock import Clock, IdFactory
from gateway.domain.commands import REMOTE_START_WINDOW
from gateway.domain.cost import Cost
from gateway.domain.events import Event, TransactionEnded, TransactionStarted, TransactionUpdated
from gateway.domain.models import MeterReading, Transaction
from gateway.roaming import billing
from gateway.roaming.outbox import full_object_meta
from gateway.roaming.pushes import PushPlanner
from gateway.roaming.tokens import RoamingToken, TokenDirectory
from gateway.storage.base import Document, StorageError, Store
from ocpi.tariffs import TariffError, tariff_from_ocpi_dict, tariff_is_active
from ocpi.transport import (
    PageRequest,
    PartyId,
    format_datetime,
    join_url,
    json_loads,
    parse_datetime,
)
from ocpi.v221 import CDR, Connector, Location, Session, Token

log = logging.getLogger(__name__)

PATCH_EVERY = timedelta(minutes=1)
# The kind of object the outbox rebuilds when a session PATCH finds no session.
SESSION_OBJECT = "session"
DEFAULT_CURRENCY = "EUR"
ZERO_PRICE = {"excl_vat": Decimal("0.00"), "incl_vat": Decimal("0.00")}


@dataclass(frozen=True, slots=True)
class Place:
    """Where a transaction happened, in OCPI terms."""

    location: Location
    evse_uid: str
    evse_id: str
    connector: Connector


@dataclass(frozen=True, slots=True)
class Roaming:
    token: RoamingToken
    partner_id: str
    place: Place


class KeyedLocks:
    """One asyncio lock per key, forgotten once nobody holds or waits for it.

    Popping a lock from a plain dict while a waiter still holds a reference to it (as
    the old per-transaction locks did after TransactionEnded) lets a third task create
    a second lock for the same key and run concurrently with the waiter: the counts
    here keep exactly one lock per key alive while anyone uses it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            _, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass(frozen=True, slots=True)
class RemoteStart:
    """A START_SESSION on its way to a charger (mod_commands StartSession)."""

    partner_id: str
    token: Token
    charger_id: str
    evse_id: int
    remote_start_id: int
    authorization_reference: str | None = None


@dataclass(frozen=True, slots=True)
class FailedCdr:
    """A CDR that could not be built or priced: waits for the operator (admin API)."""

    tx_id: str
    session_id: str | None
    partner_id: str | None
    charger_id: str
    reason: str
    failed_at: datetime
    attempts: int

    def to_json(self) -> dict[str, Any]:
        return {
            "tx_id": self.tx_id,
            "session_id": self.session_id,
            "partner_id": self.partner_id,
            "charger_id": self.charger_id,
            "reason": self.reason,
            "failed_at": format_datetime(self.failed_at),
            "attempts": self.attempts,
        }


class CdrRetryError(Exception):
    """The operator asked to retry a failed CDR that is not (or no longer) failed."""


InvoiceReference = Callable[[str, str, str, str | None], Awaitable[str | None]]


class SessionService:
    def __init__(
        self,
        store: Store,
        directory: TokenDirectory,
        planner: PushPlanner,
        clock: Clock,
        ids: IdFactory,
        notify: Callable[[], None],
        *,
        patch_every: timedelta = PATCH_EVERY,
        pending_expiry: timedelta = REMOTE_START_WINDOW,
        pricer: billing.TariffPricer | None = None,
    ) -> None:
        self._store = store
        self._directory = directory
        self._planner = planner
        self._clock = clock
        self._ids = ids
        self._notify = notify
        self._patch_every = patch_every
        self._pending_expiry = pending_expiry
        # Compiled tariffs, kept for the cost updates, PATCHes and CDRs that price with them.
        self._pricer = billing.TariffPricer() if pricer is None else pricer
        # One lock per *session id*: the live events, the start-up resync, the retries and
        # the START_SESSION hooks of one session all take it, and each decides from what
        # is stored once it holds it.
        self._locks = KeyedLocks()
        # Transactions whose event failed and whose failure could not be stored either
        # (the store was out): kept here until store_unsaved() can store them.
        self._unsaved: set[str] = set()
        # The CDR's invoice_reference_id (partner, location, EVSE, authorization
        # reference), when the CPO makes the invoice (gateway.roaming.payments).
        self.invoice_reference: InvoiceReference | None = None

    # -- events -------------------------------------------------------------------

    EVENTS = (TransactionStarted, TransactionUpdated, TransactionEnded)

    async def on_event(self, event: Event) -> None:
        if isinstance(event, TransactionStarted | TransactionUpdated | TransactionEnded):
            tx = event.transaction
            try:
                await self._handle(tx, isinstance(event, TransactionEnded))
            except Exception:
                # A transient failure (the store, a bug) must not cost the eMSP its
                # session or CDR: retry_failed() handles the transaction again.
                await self._failed(tx.id)
                raise

    async def _failed(self, tx_id: str) -> None:
        """Remember a transaction to handle again: in the store, where the holder of the
        "sessions" lease finds it whichever process it failed in (and after this one
        died); in memory while the store cannot take it (``store_unsaved``)."""
        try:
            await self._store.session_retries.put(
                Document(key=tx_id, data={"tx_id": tx_id}, last_updated=self._clock.now())
            )
        except Exception:
            self._unsaved.add(tx_id)

    async def store_unsaved(self) -> int:
        """Store the failures kept in memory (every process, every interval); how many."""
        stored = 0
        for tx_id in sorted(self._unsaved):
            await self._store.session_retries.put(
                Document(key=tx_id, data={"tx_id": tx_id}, last_updated=self._clock.now())
            )
            self._unsaved.discard(tx_id)
            stored += 1
        return stored

    async def retry_failed(self, *, page: int = 200) -> int:
        """Handle again, from the stored transaction, every one whose event failed (once
        per cluster: the "sessions" lease's job); returns how many succeeded (those
        failing again stay for the next call)."""
        done = 0
        offset = 0
        while True:
            docs, _ = await self._store.session_retries.list(offset=offset, limit=page)
            for doc in docs:
                tx = await self._store.transactions.get(doc.key)
                if tx is not None:
                    try:
                        await self._handle(tx, tx.stopped_at is not None, reread=True)
                    except Exception:
                        log.exception("session of transaction %s: retry failed", doc.key)
                        offset += 1
                        continue
                    done += 1
                await self._store.session_retries.delete(doc.key)
            if len(docs) < page:
                return done

    async def _session_key(self, tx: Transaction) -> tuple[str, Document | None]:
        """The session of a transaction, and the START_SESSION record that names it."""
        session_id, index, _ = await self._lookup(tx)
        return session_id, index

    async def _lookup(self, tx: Transaction) -> tuple[str, Document | None, bool]:
        """The session of a transaction, the START_SESSION record that names it, and
        whether the transaction takes that command by its token (its claim record is
        to be written).

        A transaction started by a START_SESSION belongs to the session id chosen before
        the command went to the charger (``remote_start_requested``), so the transaction
        finds it whenever it starts; any other transaction's session id is its own id.
        Either way the id follows from what is stored, and every path that builds the
        session (live event, resync, retry) derives the same.

        2.0.1 echoes the remote start id; a 1.6 StartTransaction has none, and the
        central system's in-memory match of its token is lost with a restart between
        the command and the transaction. So the command is also stored by charger and
        token: a transaction of that token without a remote start id, that started
        within the remote start window and has no session yet, takes it; the claim
        record (by transaction id) keeps it on that session when a later command for
        the same token replaces the token record."""
        if tx.remote_start_id is not None:
            found = await self._command_session(tx, _start_index(tx.charger_id, tx.remote_start_id))
            return (found[0], found[1], False) if found else (tx.id, None, False)
        if tx.id_token is None:
            return tx.id, None, False
        token = await self._store.sessions.get(_token_index(tx.charger_id, tx.id_token.uid))
        if token is None or token.owner != _START_TOKEN:
            return tx.id, None, False  # no command for this token here (most transactions)
        claim = await self._store.sessions.get(_claim_index(tx.id))
        if claim is not None:
            found = await self._command_session(tx, str(claim.data["index"]))
            return (found[0], found[1], False) if found else (tx.id, None, False)
        if not self._within_window(token, tx.started_at):
            return tx.id, None, False
        if await self._store.sessions.get(tx.id) is not None:
            return tx.id, None, False  # it has its own session already: never moved
        key = _start_index(tx.charger_id, int(token.data["remote_start_id"]))
        found = await self._command_session(tx, key)
        return (found[0], found[1], True) if found else (tx.id, None, False)

    async def _command_session(self, tx: Transaction, key: str) -> tuple[str, Document] | None:
        """The session of the START_SESSION record ``key`` if the transaction may be
        (or is) its transaction: not refused, not expired, not another's."""
        index = await self._store.sessions.get(key)
        if index is None or index.owner not in (_START_INDEX, _START_CLOSED):
            return None
        # A refused command, or one whose session expired INVALID, makes no session
        # of a transaction that starts anyway: that is a session of its own.
        if index.data.get("state") in ("refused", "expired"):
            return None
        session_id = str(index.data["session_id"])
        doc = await self._store.sessions.get(session_id)
        if doc is not None and doc.data.get("tx_id") not in (None, tx.id):
            return None  # one command, one transaction: a second one is its own session
        return session_id, index

    def _within_window(self, token: Document, started_at: datetime) -> bool:
        """Whether a transaction that started at ``started_at`` (the charger's clock)
        may be the one the command stored in ``token`` asked for."""
        raw = token.data.get("requested_at")
        requested = parse_datetime(str(raw)) if raw else token.last_updated
        return requested - CLOCK_TOLERANCE <= started_at <= requested + self._pending_expiry

    async def _handle(self, tx: Transaction, ended: bool, *, reread: bool = False) -> bool:
        """Store and push the session (and CDR) of a transaction; False when it is not
        a roaming one (or its token or location is gone).

        ``reread``: the caller's copy may be stale (the resync lists transactions before
        it gets to each); the transaction is read again under the lock."""
        while True:
            session_id, index = await self._session_key(tx)
            async with self._locks.hold(session_id):
                # Decided again under the lock: the START_SESSION's session may have
                # expired INVALID meanwhile (expire_pending), or another transaction may
                # have taken it, and then this transaction is a session of its own,
                # under its own lock.
                again, index, claim = await self._lookup(tx)
                if again != session_id:
                    continue
                if claim and index is not None:
                    # Taken by token: remembered by transaction id, so that its later
                    # events find this session whatever later commands store. Under
                    # the session's lock, before the session names the transaction
                    # (which is what keeps a second transaction off it).
                    await self._store.sessions.put(
                        Document(
                            _claim_index(tx.id),
                            {"index": index.key, "session_id": session_id},
                            self._clock.now(),
                            owner=_START_TOKEN,
                        )
                    )
                if reread:
                    fresh = await self._store.transactions.get(tx.id)
                    if fresh is None:
                        return False
                    tx, ended = fresh, fresh.stopped_at is not None
                try:
                    return await self._handle_locked(session_id, index, tx, ended)
                except StorageError:
                    raise  # transient: retried automatically (retry_failed, resync)
                except Exception as exc:
                    if not ended:
                        raise
                    # The data cannot make a CDR (a location's time zone, a tariff the
                    # pricer refuses...): the operator sees it and retries it once fixed.
                    log.error("transaction %s: no CDR: %s", tx.id, exc)
                    await self._record_failure(tx, session_id, None, _reason(exc))
                    return True

    async def _handle_locked(
        self, session_id: str, index: Document | None, tx: Transaction, ended: bool
    ) -> bool:
        doc = await self._store.sessions.get(session_id)
        partner_id: str | None = index.data.get("partner_id") if index is not None else None
        reference: str | None = index.data.get("authorization_reference") if index else None
        if doc is not None and doc.data.get("status") == "INVALID":
            # Never revived: _session_key gives a later transaction a session of its own.
            log.error("session %s is INVALID; transaction %s is not its", session_id, tx.id)
            return False
        if doc is not None and doc.data.get("pending") and doc.data.get("tx_id") is None:
            # The transaction a START_SESSION asked for: the PENDING session goes ACTIVE.
            partner_id = doc.data.get("partner_id")
            reference = doc.data.get("authorization_reference", reference)
            doc = None
        if doc is not None:
            if doc.data.get("tx_id") not in (None, tx.id):
                log.error("session %s belongs to another transaction than %s", session_id, tx.id)
                return False
            reference = doc.data.get("authorization_reference")
            if doc.data.get("status") == "COMPLETED" or _stored_status(doc) == "COMPLETED":
                # Never back to ACTIVE (a stale copy of the transaction), never a second
                # final PUT: only the CDR may still be missing (a crash in between).
                if not ended or await self._store.cdrs.get(tx.id) is not None:
                    return True
                return await self._cdr_only(doc, tx, reference)
            roaming = await self._roaming(tx, doc.data.get("partner_id"))
            if roaming is None:
                if ended:
                    await self._record_failure(
                        tx,
                        session_id,
                        doc.data.get("partner_id"),
                        "the token or the location of the session is gone",
                    )
                log.warning("session %s: its token or location is gone", session_id)
                return False
            tariff_json = (
                doc.data["tariff"]
                if "tariff" in doc.data
                else await self._tariff(roaming.place, tx.started_at)
            )
        else:
            roaming = await self._roaming(tx, partner_id)
            if roaming is None:
                return False
            if reference is None:
                # mod_sessions authorization_reference: the eMSP's reference from its
                # START_SESSION (above), else from the reservation the transaction used,
                # else from the real-time authorization that let it start.
                reference = await self._reservation_reference(tx, roaming.partner_id)
                reference = reference or tx.authorization_reference
            # The tariff is chosen, and kept, when the session starts: the CDR is priced
            # with the version the driver started under, whatever the operator changes
            # or deletes while it runs.
            tariff_json = await self._tariff(roaming.place, tx.started_at)
        tariff = _decode_tariff(tariff_json)
        readings = await self._store.transactions.readings(tx.id)
        now = self._clock.now()
        session = self._session(
            session_id, tx, readings, roaming, now, tariff, reference, by_command=index is not None
        )
        cc, pid = session.country_code, session.party_id
        sessions_url = self._planner.receiver_url(roaming.partner_id, "sessions")
        items = []
        last_patch = doc.data.get("last_push") if doc else None
        if sessions_url is not None:
            url = join_url(sessions_url, cc, pid, session.id)
            if doc is None or ended:
                items.append(self._item(roaming, "sessions", "PUT", url, session, session.id))
                last_patch = format_datetime(now)
            elif last_patch is None or now - parse_datetime(last_patch) >= self._patch_every:
                body: dict[str, Any] = {
                    "kwh": session.kwh,
                    "status": session.status,
                    "last_updated": session.last_updated,
                }
                if session.total_cost is not None:
                    body["total_cost"] = session.total_cost
                # An eMSP that answers "unknown object" gets the whole session by PUT.
                full = full_object_meta(SESSION_OBJECT, session.id, url)
                items.append(
                    self._item(
                        roaming, "sessions", "PATCH", url, body, session.id, full, "SessionPatch"
                    )
                )
                last_patch = format_datetime(now)
        data: dict[str, Any] = {
            "session": session.to_json(),
            "partner_id": roaming.partner_id,
            "last_push": last_patch,
            "tx_id": tx.id,
            "status": str(session.status),
            "tariff": tariff_json,
        }
        if reference is not None:
            data["authorization_reference"] = reference
        await self._store.sessions.put(
            Document(session_id, data, session.last_updated, roaming.partner_id), enqueue=items
        )
        if ended:
            await self._cdr(tx, readings, roaming, session, tariff)
        self._notify()
        return True

    async def _cdr_only(self, doc: Document, tx: Transaction, reference: str | None) -> bool:
        """The CDR of a session already COMPLETED (its CDR was cut off or had failed)."""
        roaming = await self._roaming(tx, doc.data.get("partner_id"))
        if roaming is None:
            await self._record_failure(
                tx,
                doc.key,
                doc.data.get("partner_id"),
                "the token or the location of the session is gone",
            )
            return False
        tariff_json = (
            doc.data["tariff"]
            if "tariff" in doc.data
            else await self._tariff(roaming.place, tx.started_at)
        )
        session = Session.model_validate(json_loads(doc.data["session"]))
        readings = await self._store.transactions.readings(tx.id)
        await self._cdr(tx, readings, roaming, session, _decode_tariff(tariff_json))
        self._notify()
        return True

    def _item(
        self,
        roaming: Roaming,
        module: str,
        method: str,
        url: str,
        body: Any,
        key: str,
        meta: dict[str, Any] | None = None,
        object_type: str | None = None,
    ) -> Any:
        location, token = roaming.place.location, roaming.token.token
        return self._planner.item(
            roaming.partner_id,
            module,
            method,
            url,
            body,
            key,
            meta,
            from_party=PartyId(location.country_code, location.party_id),
            to_party=PartyId(token.country_code, token.party_id),
            object_type=object_type,
        )

    # -- building -----------------------------------------------------------------

    async def _roaming(self, tx: Transaction, partner_id: str | None = None) -> Roaming | None:
        if tx.id_token is None:
            return None
        tokens = await self._directory.by_uid(tx.id_token.uid)
        if partner_id is not None:
            tokens = [t for t in tokens if t.partner_id == partner_id] or tokens
        token = next((t for t in tokens if t.partner_id), None)
        if token is None or token.partner_id is None:
            return None
        place = await self._place(tx.charger_id, tx.evse_id, tx.connector_id)
        if place is None:
            log.warning(
                "transaction %s of roaming token %s: charger has no location",
                tx.id,
                tx.id_token.uid,
            )
            return None
        return Roaming(token, token.partner_id, place)

    async def cost(self, tx: Transaction) -> Cost | None:
        """What the transaction costs so far (once ended: in all), VAT included, priced as
        its CDR is: with the tariff its roaming session started with, else the tariff of
        its connector when it started (a local session); None when none applies (the
        domain's ``CostQuote``, shown on chargers that display costs)."""
        session_id, _ = await self._session_key(tx)
        doc = await self._store.sessions.get(session_id)
        place = await self._place(tx.charger_id, tx.evse_id, tx.connector_id)
        if place is None:
            return None
        if doc is not None and doc.data.get("tx_id") == tx.id and "tariff" in doc.data:
            tariff = _decode_tariff(doc.data["tariff"])
        else:
            tariff = _decode_tariff(await self._tariff(place, tx.started_at))
        if tariff is None:
            return None
        readings = await self._store.transactions.readings(tx.id)
        # Up to now, or to the charger's latest reading if its clock runs ahead of ours.
        end = tx.stopped_at or max([self._clock.now(), *(r.timestamp for r in readings)])
        periods = billing.charging_periods(billing.segments(tx, readings, end))
        currency = str(tariff["currency"])
        try:
            priced = self._pricer.price(
                tariff,
                periods,
                start=tx.started_at,
                end=end,
                time_zone=place.location.time_zone,
                currency=currency,
            )
        except TariffError as exc:
            log.warning("transaction %s: cannot price for display: %s", tx.id, exc)
            return None
        total = priced.totals.to_ocpi_dict()["total_cost"]
        assert isinstance(total, dict)
        return Cost(total["incl_vat"], currency)

    async def _place(self, charger_id: str, evse_id: int, connector_id: int) -> Place | None:
        charger = await self._store.chargers.get(charger_id)
        if charger is None or charger.location_id is None:
            return None
        doc = await self._store.locations.get(charger.location_id)
        evse = next((e for e in charger.evses if e.ocpp_id == evse_id), None)
        if doc is None or evse is None:
            return None
        location = Location.model_validate(json_loads(doc.data["location"]))
        own = doc.data.get("connectors", {}).get(evse.evse_uid)
        specs = own or doc.data.get("default_connectors", [])
        if not specs:
            return None
        # OCPP connector numbers within the EVSE map to the OCPI connectors in order.
        index = max(
            0,
            min(
                len(specs) - 1,
                evse.connectors.index(connector_id) if connector_id in evse.connectors else 0,
            ),
        )
        connector = Connector.model_validate(specs[index])
        return Place(location, evse.evse_uid, evse.evse_id or evse.evse_uid, connector)

    async def _reservation_reference(self, tx: Transaction, partner_id: str) -> str | None:
        """The authorization_reference of the RESERVE_NOW whose reservation the
        transaction used (the charger reports its reservation id), if that eMSP's."""
        if tx.reservation_id is None:
            return None
        doc = await self._store.sessions.get(reservation_index(tx.charger_id, tx.reservation_id))
        if doc is None or doc.data.get("partner_id") != partner_id:
            return None
        reference = doc.data.get("authorization_reference")
        return None if reference is None else str(reference)

    async def _tariff(self, place: Place, at: datetime) -> str | None:
        """The connector's first tariff valid at ``at``, as stored (its JSON text)."""
        for tariff_id in place.connector.tariff_ids or []:
            doc = await self._store.tariffs.get(tariff_id)
            if doc is None:
                continue
            raw = str(doc.data["tariff"])
            try:
                if tariff_is_active(tariff_from_ocpi_dict(json_loads(raw)), at):
                    return raw
            except TariffError as exc:
                # Refused when stored (TariffService.put); only a record from before that.
                log.error("tariff %s cannot be used: %s", tariff_id, exc)
        return None

    def _session(
        self,
        session_id: str,
        tx: Transaction,
        readings: Sequence[MeterReading],
        roaming: Roaming,
        now: datetime,
        tariff: dict[str, Any] | None,
        reference: str | None = None,
        *,
        by_command: bool = False,
    ) -> Session:
        end = tx.stopped_at or now
        segs = billing.segments(tx, readings, end)
        periods = billing.charging_periods(segs)
        total_cost = None
        currency = DEFAULT_CURRENCY
        if tariff is not None:
            # The running cost so far, priced like the CDR will be (mod_sessions total_cost).
            currency = str(tariff["currency"])
            try:
                priced = self._pricer.price(
                    tariff,
                    periods,
                    start=tx.started_at,
                    end=end,
                    time_zone=roaming.place.location.time_zone,
                    currency=currency,
                )
                total_cost = priced.totals.to_ocpi_dict()["total_cost"]
            except TariffError as exc:
                log.error("session %s: cannot price: %s", tx.id, exc)
        token = roaming.token.token
        # mod_sessions AuthMethod: started by a command, or by a token we had or asked for.
        if tx.remote_start_id is not None or by_command:
            auth_method = "COMMAND"
        elif roaming.token.source == "realtime":
            auth_method = "AUTH_REQUEST"
        else:
            auth_method = "WHITELIST"
        data: dict[str, Any] = {
            "country_code": roaming.place.location.country_code,
            "party_id": roaming.place.location.party_id,
            "id": session_id,
            "start_date_time": tx.started_at,
            "end_date_time": tx.stopped_at,
            "kwh": billing.total_energy_kwh(segs),
            "cdr_token": {
                "country_code": token.country_code,
                "party_id": token.party_id,
                "uid": token.uid,
                "type": token.type,
                "contract_id": token.contract_id,
            },
            "auth_method": auth_method,
            "location_id": roaming.place.location.id,
            "evse_uid": roaming.place.evse_uid,
            "connector_id": roaming.place.connector.id,
            "currency": currency,
            "total_cost": total_cost,
            # mod_sessions: the eMSP's reference from its START_SESSION.
            "authorization_reference": reference,
            "status": "COMPLETED" if tx.stopped_at else "ACTIVE",
            "last_updated": now,
        }
        if tx.stopped_at is not None:
            data["charging_periods"] = periods
        return Session.model_validate({k: v for k, v in data.items() if v is not None})

    async def _cdr(
        self,
        tx: Transaction,
        readings: Sequence[MeterReading],
        roaming: Roaming,
        session: Session,
        tariff: dict[str, Any] | None,
    ) -> None:
        """Build, price, store and queue the CDR; raises when the data cannot make one
        (the caller records that for the operator)."""
        if await self._store.cdrs.get(tx.id) is not None:
            return  # a repeated end: the CDR exists and its POST is queued already
        end = tx.stopped_at or self._clock.now()
        segs = billing.segments(tx, readings, end)
        periods = billing.charging_periods(segs)
        place = roaming.place
        currency = str(tariff["currency"]) if tariff else DEFAULT_CURRENCY
        totals: dict[str, Any]
        remark = None
        if tariff is not None:
            result = self._pricer.price(
                tariff,
                periods,
                start=tx.started_at,
                end=end,
                time_zone=place.location.time_zone,
                currency=currency,
            )
            totals = dict(result.totals.to_ocpi_dict())
        else:
            hours = sum(
                (
                    Decimal(str(d["volume"]))
                    for p in periods
                    for d in p["dimensions"]
                    if d["type"] == "TIME"
                ),
                Decimal(0),
            )
            parking = sum(
                (
                    Decimal(str(d["volume"]))
                    for p in periods
                    for d in p["dimensions"]
                    if d["type"] == "PARKING_TIME"
                ),
                Decimal(0),
            )
            totals = {
                "total_cost": ZERO_PRICE,
                "total_energy": billing.total_energy_kwh(segs),
                "total_time": hours + parking,
                "total_parking_time": parking,
            }
            remark = "No tariff applies to this connector: not priced"
        loc = place.location
        cdr_data: dict[str, Any] = {
            "country_code": loc.country_code,
            "party_id": loc.party_id,
            "id": tx.id,
            "start_date_time": tx.started_at,
            "end_date_time": end,
            "session_id": session.id,
            "cdr_token": session.cdr_token,
            "auth_method": session.auth_method,
            # mod_cdrs: the eMSP's reference, as in the session.
            "authorization_reference": session.authorization_reference,
            "cdr_location": {
                "id": loc.id,
                "name": loc.name,
                "address": loc.address[:45],
                "city": loc.city,
                "postal_code": loc.postal_code,
                "country": loc.country,
                "coordinates": loc.coordinates,
                "evse_uid": place.evse_uid,
                "evse_id": place.evse_id,
                "connector_id": place.connector.id,
                "connector_standard": place.connector.standard,
                "connector_format": place.connector.format,
                "connector_power_type": place.connector.power_type,
            },
            "currency": currency,
            "tariffs": [tariff] if tariff else None,
            "charging_periods": periods,
            "remark": remark,
            "invoice_reference_id": await self._invoice_reference(roaming, session),
            "last_updated": self._clock.now(),
        } | totals
        cdr = CDR.model_validate({k: v for k, v in cdr_data.items() if v is not None})
        items = []
        cdrs_url = self._planner.receiver_url(roaming.partner_id, "cdrs")
        if cdrs_url is not None:
            items.append(self._item(roaming, "cdrs", "POST", cdrs_url, cdr, cdr.id))
        await self._store.cdrs.put(
            Document(
                cdr.id,
                {"cdr": cdr.to_json(), "partner_id": roaming.partner_id},
                cdr.last_updated,
                roaming.partner_id,
            ),
            enqueue=items,
        )
        # A CDR that had failed is now made: its failure record goes (a crash in between
        # leaves a record whose retry finds the CDR and removes it).
        await self._store.cdrs.delete(_failure_key(tx.id))

    async def _invoice_reference(self, roaming: Roaming, session: Session) -> str | None:
        if self.invoice_reference is None:
            return None
        return await self.invoice_reference(
            roaming.partner_id,
            roaming.place.location.id,
            roaming.place.evse_uid,
            session.authorization_reference,
        )

    # -- recovery -------------------------------------------------------------------

    async def resync(self, since: datetime, *, page: int = 200) -> int:
        """Rebuild what a crash may have cut off: a transaction is stored before its
        event reaches this service, so after a restart every recent roaming transaction
        without its session (or, once ended, without its CDR) is handled again.
        A transaction that fails is logged and handled again later (``retry_failed``);
        the ones after it are still handled. Returns how many were handled."""
        handled = 0
        offset = 0
        while True:
            txs = await self._store.transactions.list(since=since, limit=page, offset=offset)
            for tx in txs:
                try:
                    if await self._cut_off(tx) and await self._handle(tx, False, reread=True):
                        handled += 1
                except Exception:
                    log.exception("resync: the session of transaction %s failed", tx.id)
                    await self._failed(tx.id)
            if len(txs) < page:
                return handled
            offset += page

    async def _cut_off(self, tx: Transaction) -> bool:
        """Whether a crash may have left the transaction without its session or CDR (a
        cheap look first; ``_handle`` decides again under the lock from what is stored)."""
        if tx.stopped_at is not None:
            return await self._store.cdrs.get(tx.id) is None
        session_id, _ = await self._session_key(tx)
        doc = await self._store.sessions.get(session_id)
        return doc is None or doc.data.get("tx_id") is None

    # -- CDRs that could not be made ----------------------------------------------------

    async def _record_failure(
        self, tx: Transaction, session_id: str | None, partner_id: str | None, reason: str
    ) -> None:
        key = _failure_key(tx.id)
        previous = await self._store.cdrs.get(key)
        attempts = int(previous.data.get("attempts", 0)) + 1 if previous else 1
        failure = FailedCdr(
            tx.id, session_id, partner_id, tx.charger_id, reason, self._clock.now(), attempts
        )
        await self._store.cdrs.put(Document(key, failure.to_json(), failure.failed_at, FAILED_CDRS))

    async def failed_cdrs(
        self, *, offset: int = 0, limit: int = 100
    ) -> tuple[list[FailedCdr], int]:
        """The CDRs waiting for the operator, oldest failure first, and how many there are."""
        docs, total = await self._store.cdrs.list(owner=FAILED_CDRS, offset=offset, limit=limit)
        return [_failure_from(d) for d in docs], total

    async def failed_cdr(self, tx_id: str) -> FailedCdr | None:
        doc = await self._store.cdrs.get(_failure_key(tx_id))
        return None if doc is None or doc.owner != FAILED_CDRS else _failure_from(doc)

    async def retry_cdr(self, tx_id: str) -> CDR | FailedCdr:
        """Build the failed CDR of transaction ``tx_id`` again (after the operator fixed
        the location or tariff): the CDR, queued for its eMSP, or the new failure.
        ``CdrRetryError`` when no CDR of that transaction is failed."""
        if await self.failed_cdr(tx_id) is None:
            raise CdrRetryError(f"no failed CDR for transaction {tx_id!r}")
        tx = await self._store.transactions.get(tx_id)
        if tx is None or tx.stopped_at is None:
            await self._store.cdrs.delete(_failure_key(tx_id))
            raise CdrRetryError(f"transaction {tx_id!r} is gone or has not ended")
        await self._handle(tx, True, reread=True)
        doc = await self._store.cdrs.get(tx_id)
        if doc is not None:
            await self._store.cdrs.delete(_failure_key(tx_id))
            return CDR.model_validate(json_loads(doc.data["cdr"]))
        failure = await self.failed_cdr(tx_id)
        if failure is None:  # nothing to build any more (no longer a roaming transaction)
            raise CdrRetryError(f"transaction {tx_id!r} has no session to make a CDR of")
        return failure

    # -- sessions started by command -------------------------------------------------

    async def remote_start_requested(self, start: RemoteStart) -> None:
        """A START_SESSION is about to go to the charger: its session id is chosen and
        stored now, before the charger can start the transaction, so the transaction
        always finds it (a charger starts the moment it accepts, often before its answer
        is even processed; a crash may come in between too). A 1.6 transaction carries
        no remote start id: the command is also stored by charger and token, the latest
        one for that token (``_lookup``)."""
        now = self._clock.now()
        await self._store.sessions.put(
            Document(
                _start_index(start.charger_id, start.remote_start_id),
                {
                    "session_id": self._ids.new_id(),
                    "partner_id": start.partner_id,
                    "authorization_reference": start.authorization_reference,
                    "state": "requested",
                },
                now,
                owner=_START_INDEX,
            )
        )
        await self._store.sessions.put(
            Document(
                _token_index(start.charger_id, start.token.uid),
                {"remote_start_id": start.remote_start_id, "requested_at": format_datetime(now)},
                now,
                owner=_START_TOKEN,
            )
        )

    async def remote_start_answered(self, start: RemoteStart, accepted: bool) -> None:
        """The charger answered the START_SESSION. Accepted: a PENDING session until the
        transaction starts (mod_sessions SessionStatus: "This is the initial state. The
        session might never become an active session"), unless it has started already.
        Refused: a transaction the driver starts later with the same token is no
        session of this command."""
        key = _start_index(start.charger_id, start.remote_start_id)
        index = await self._store.sessions.get(key)
        if index is None:
            return
        session_id = str(index.data["session_id"])
        async with self._locks.hold(session_id):
            if await self._store.sessions.get(session_id) is not None:
                return  # the transaction made it ACTIVE first
            index = await self._store.sessions.get(key)
            if index is None or index.owner != _START_INDEX:
                return  # its window passed already (expire_pending): no PENDING now
            if not accepted:
                data = dict(index.data) | {"state": "refused"}
                await self._store.sessions.put(replace(index, data=data))
                return
            await self._pending(start, session_id)
        self._notify()

    async def _pending(self, start: RemoteStart, session_id: str) -> None:
        place = await self._place(start.charger_id, start.evse_id, 1)
        if place is None:
            return
        token = start.token
        now = self._clock.now()
        session = Session.model_validate(
            {
                "country_code": place.location.country_code,
                "party_id": place.location.party_id,
                "id": session_id,
                "start_date_time": now,
                "kwh": 0,
                "cdr_token": {
                    "country_code": token.country_code,
                    "party_id": token.party_id,
                    "uid": token.uid,
                    "type": token.type,
                    "contract_id": token.contract_id,
                },
                "auth_method": "COMMAND",
                "authorization_reference": start.authorization_reference,
                "location_id": place.location.id,
                "evse_uid": place.evse_uid,
                "connector_id": place.connector.id,
                "currency": DEFAULT_CURRENCY,
                "status": "PENDING",
                "last_updated": now,
            }
        )
        items = []
        url = self._planner.receiver_url(start.partner_id, "sessions")
        if url is not None:
            target = join_url(url, session.country_code, session.party_id, session_id)
            items.append(
                self._planner.item(
                    start.partner_id,
                    "sessions",
                    "PUT",
                    target,
                    session,
                    session_id,
                    from_party=PartyId(session.country_code, session.party_id),
                    to_party=PartyId(token.country_code, token.party_id),
                )
            )
        data: dict[str, Any] = {
            "session": session.to_json(),
            "partner_id": start.partner_id,
            "pending": True,
            "status": "PENDING",
        }
        if start.authorization_reference is not None:
            data["authorization_reference"] = start.authorization_reference
        await self._store.sessions.put(
            Document(session_id, data, now, start.partner_id), enqueue=items
        )

    async def expire_pending(self) -> int:
        """Close the START_SESSIONs older than the remote start window (called
        periodically); returns how many PENDING sessions became INVALID.

        mod_sessions SessionStatus INVALID: "will not become active". A command's
        transaction may start within ``REMOTE_START_WINDOW`` (the time a 1.6
        StartTransaction for its token is still matched to it); after that its PENDING
        session is PUT as INVALID, and a transaction that starts later anyway (2.0.1
        echoes the remote start id at any time) is a session of its own. The open
        commands are the index records under ``_START_INDEX``; each is moved to
        ``_START_CLOSED`` once decided, so every call reads only the undecided ones,
        and one that came due while the gateway was down is found at the next call."""
        expired = 0
        while True:
            cutoff = self._clock.now() - self._pending_expiry
            docs, _ = await self._store.sessions.list(owner=_START_INDEX, date_to=cutoff, limit=100)
            for index in docs:
                if await self._close_start(index.key):
                    expired += 1
            if len(docs) < 100:
                return expired

    async def _close_start(self, key: str) -> bool:
        index = await self._store.sessions.get(key)
        if index is None or index.owner != _START_INDEX:
            return False
        session_id = str(index.data["session_id"])
        invalid = False
        async with self._locks.hold(session_id):
            # Under the session's lock, from what is stored: a transaction starting at
            # this moment either made the session ACTIVE already, or finds the command
            # expired and gets a session of its own (_handle decides again under it).
            index = await self._store.sessions.get(key)
            if index is None or index.owner != _START_INDEX:
                return False
            doc = await self._store.sessions.get(session_id)
            state = str(index.data.get("state"))
            if doc is not None and doc.data.get("tx_id") is not None:
                state = "started"
            elif state != "refused":
                state = "expired"
                if doc is not None and doc.data.get("pending"):
                    await self._invalid(doc)
                    invalid = True
            now = self._clock.now()
            closed = Document(key, dict(index.data) | {"state": state}, now, _START_CLOSED)
            await self._store.sessions.put(closed)
        if invalid:
            log.info("session %s: no transaction in the remote start window: INVALID", session_id)
            self._notify()
        return invalid

    async def _invalid(self, doc: Document) -> None:
        """PUT the PENDING session as INVALID (the full object: a PUT creates it at an
        eMSP that missed the PENDING one, where a PATCH would be refused)."""
        now = self._clock.now()
        raw = json_loads(doc.data["session"])
        session = Session.model_validate(raw | {"status": "INVALID", "last_updated": now})
        partner_id = str(doc.data["partner_id"])
        token = session.cdr_token
        items = []
        url = self._planner.receiver_url(partner_id, "sessions")
        if url is not None:
            target = join_url(url, session.country_code, session.party_id, session.id)
            items.append(
                self._planner.item(
                    partner_id,
                    "sessions",
                    "PUT",
                    target,
                    session,
                    session.id,
                    from_party=PartyId(session.country_code, session.party_id),
                    to_party=PartyId(token.country_code, token.party_id),
                )
            )
        data = dict(doc.data) | {
            "session": session.to_json(),
            "pending": False,
            "status": "INVALID",
        }
        await self._store.sessions.put(replace(doc, data=data, last_updated=now), enqueue=items)

    async def get(self, session_id: str) -> Session | None:
        """A session as last stored (what a PATCH the eMSP refused is replaced with)."""
        doc = await self._store.sessions.get(session_id)
        if doc is None or "session" not in doc.data:
            return None  # an index record beside the sessions
        return Session.model_validate(json_loads(doc.data["session"]))

    # -- GET (Sender interfaces) ------------------------------------------------------

    async def sessions_page(self, partner_id: str, page: PageRequest) -> tuple[list[Session], int]:
        docs, total = await self._store.sessions.list(
            owner=partner_id,
            date_from=page.date_from,
            date_to=page.date_to,
            offset=page.offset,
            limit=page.limit,
        )
        return [Session.model_validate(json_loads(d.data["session"])) for d in docs], total

    async def cdrs_page(self, partner_id: str, page: PageRequest) -> tuple[list[CDR], int]:
        docs, total = await self._store.cdrs.list(
            owner=partner_id,
            date_from=page.date_from,
            date_to=page.date_to,
            offset=page.offset,
            limit=page.limit,
        )
        return [CDR.model_validate(json_loads(d.data["cdr"])) for d in docs], total


# Index records share the sessions collection under their own owner, so that session
# listings (by partner) never show them; failed CDRs share the cdrs collection likewise.
_START_INDEX = "index:remote-start"
_START_CLOSED = "index:remote-start:closed"  # its transaction came, or it was refused or expired
# A START_SESSION by charger and token (the latest), and a transaction's claim of one.
_START_TOKEN = "index:remote-start:token"
RESERVATION_INDEX = "index:reservation"
FAILED_CDRS = "failed:cdr"
# How much earlier than the command a 1.6 transaction's own timestamp may be and still be
# its transaction (charger clocks are set from the central system's, not exactly).
CLOCK_TOLERANCE = timedelta(minutes=1)


def _start_index(charger_id: str, remote_start_id: int) -> str:
    return f"remote-start:{charger_id}:{remote_start_id}"


def _token_index(charger_id: str, uid: str) -> str:
    # Quoted: a charger id or token uid holding ':' cannot make two pairs one key.
    return f"remote-start-token:{quote(charger_id, safe='')}:{quote(uid, safe='')}"


def _claim_index(tx_id: str) -> str:
    return f"remote-start-claim:{tx_id}"


def reservation_index(charger_id: str, reservation_number: int) -> str:
    """The key of a RESERVE_NOW's record by what the charger reports of it (the OCPP
    reservation id a transaction that uses it carries)."""
    return f"reservation-number:{charger_id}:{reservation_number}"


def reservation_document(
    charger_id: str,
    reservation_number: int,
    partner_id: str,
    authorization_reference: str | None,
    at: datetime,
) -> Document:
    """What a session needs of a RESERVE_NOW: whose it was and its reference."""
    return Document(
        reservation_index(charger_id, reservation_number),
        {"partner_id": partner_id, "authorization_reference": authorization_reference},
        at,
        owner=RESERVATION_INDEX,
    )


def _failure_key(tx_id: str) -> str:
    return f"failed:{tx_id}"


def _failure_from(doc: Document) -> FailedCdr:
    d = doc.data
    return FailedCdr(
        tx_id=str(d["tx_id"]),
        session_id=d.get("session_id"),
        partner_id=d.get("partner_id"),
        charger_id=str(d["charger_id"]),
        reason=str(d["reason"]),
        failed_at=parse_datetime(str(d["failed_at"])),
        attempts=int(d.get("attempts", 1)),
    )


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def _stored_status(doc: Document) -> str | None:
    """A session record's status (records from before ``status`` was kept: the JSON)."""
    raw = doc.data.get("session")
    return None if raw is None else str(json_loads(raw).get("status"))


def _decode_tariff(raw: str | None) -> dict[str, Any] | None:
    return None if raw is None else dict(json_loads(raw))
