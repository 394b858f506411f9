"""Sessions and CDRs for roaming drivers, from the central system's transaction events.

A transaction whose token belongs to an eMSP becomes an OCPI Session of the
location's CPO party, pushed only to that eMSP: PUT when it starts, PATCH as meter
values arrive (at most once a minute, and always when the status changes: kwh and
the running ``total_cost``; the periods go with the final PUT), a full PUT when it
is COMPLETED. Then a CDR priced by the tariff engine is POSTed. Each push goes
through the durable outbox in the same write as the record it describes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from gateway.domain.clock import Clock, IdFactory
from gateway.domain.events import Event, TransactionEnded, TransactionStarted, TransactionUpdated
from gateway.domain.models import MeterReading, Transaction
from gateway.roaming import billing
from gateway.roaming.pushes import PushPlanner
from gateway.roaming.tokens import RoamingToken, TokenDirectory
from gateway.storage.base import Document, Store
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
    ) -> None:
        self._store = store
        self._directory = directory
        self._planner = planner
        self._clock = clock
        self._ids = ids
        self._notify = notify
        self._patch_every = patch_every
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._failed: set[str] = set()  # transactions whose event failed, to handle again

    # -- events -------------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        if isinstance(event, TransactionStarted | TransactionUpdated | TransactionEnded):
            tx = event.transaction
            try:
                async with self._locks[tx.id]:
                    await self._handle(tx, isinstance(event, TransactionEnded))
            except Exception:
                # A transient failure (the store, a bug) must not cost the eMSP its
                # session or CDR: retry_failed() handles the transaction again.
                self._failed.add(tx.id)
                raise
            if isinstance(event, TransactionEnded):
                self._locks.pop(tx.id, None)

    async def retry_failed(self) -> int:
        """Handle again, from the stored transaction, every one whose event failed;
        returns how many succeeded (those failing again stay for the next call)."""
        done = 0
        for tx_id in sorted(self._failed):
            tx = await self._store.transactions.get(tx_id)
            if tx is None:
                self._failed.discard(tx_id)
                continue
            try:
                async with self._locks[tx.id]:
                    await self._handle(tx, tx.stopped_at is not None)
            except Exception:
                log.exception("session of transaction %s: retry failed", tx_id)
                continue
            self._failed.discard(tx_id)
            done += 1
        return done

    async def _session_key(self, tx: Transaction) -> str:
        """The session of a transaction: its own id, or the PENDING session of the
        command that started it."""
        if tx.remote_start_id is not None:
            index = await self._store.sessions.get(_start_index(tx.charger_id, tx.remote_start_id))
            if index is not None:
                return str(index.data["session_id"])
        return tx.id

    async def _handle(self, tx: Transaction, ended: bool) -> bool:
        """Store and push the session (and CDR) of a transaction; False when it is not
        a roaming one (or its token or location is gone)."""
        session_id = await self._session_key(tx)
        doc = await self._store.sessions.get(session_id)
        pending_for: str | None = None
        if doc is not None and doc.data.get("pending") and doc.data.get("tx_id") is None:
            # The transaction a START_SESSION asked for: the PENDING session goes ACTIVE.
            pending_for, doc = doc.data.get("partner_id"), None
        if doc is None:
            roaming = await self._roaming(tx, pending_for)
            if roaming is None:
                return False
        else:
            roaming = await self._roaming(tx, doc.data.get("partner_id"))
            if roaming is None:
                log.warning("session %s: its token or location is gone", tx.id)
                return False
        readings = await self._store.transactions.readings(tx.id)
        now = self._clock.now()
        tariff = await self._tariff(roaming.place, tx.started_at)
        session = self._session(session_id, tx, readings, roaming, now, tariff)
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
                items.append(self._item(roaming, "sessions", "PATCH", url, body, session.id))
                last_patch = format_datetime(now)
        data = {
            "session": session.to_json(),
            "partner_id": roaming.partner_id,
            "last_push": last_patch,
            "tx_id": tx.id,
        }
        await self._store.sessions.put(
            Document(session_id, data, session.last_updated, roaming.partner_id), enqueue=items
        )
        if ended:
            await self._cdr(tx, readings, roaming, session)
        self._notify()
        return True

    def _item(
        self, roaming: Roaming, module: str, method: str, url: str, body: Any, key: str
    ) -> Any:
        location, token = roaming.place.location, roaming.token.token
        return self._planner.item(
            roaming.partner_id,
            module,
            method,
            url,
            body,
            key,
            from_party=PartyId(location.country_code, location.party_id),
            to_party=PartyId(token.country_code, token.party_id),
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

    async def _tariff(self, place: Place, at: datetime) -> dict[str, Any] | None:
        for tariff_id in place.connector.tariff_ids or []:
            doc = await self._store.tariffs.get(tariff_id)
            if doc is None:
                continue
            data = json_loads(doc.data["tariff"])
            try:
                if tariff_is_active(tariff_from_ocpi_dict(data), at):
                    return dict(data)
            except TariffError as exc:
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
                priced = billing.price(
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
        if tx.remote_start_id is not None:
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
    ) -> None:
        if await self._store.cdrs.get(tx.id) is not None:
            return  # a repeated end: the CDR exists and its POST is queued already
        end = tx.stopped_at or self._clock.now()
        segs = billing.segments(tx, readings, end)
        periods = billing.charging_periods(segs)
        place = roaming.place
        tariff = await self._tariff(place, tx.started_at)
        currency = str(tariff["currency"]) if tariff else DEFAULT_CURRENCY
        totals: dict[str, Any]
        remark = None
        if tariff is not None:
            result = billing.price(
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

    # -- recovery -------------------------------------------------------------------

    async def resync(self, since: datetime, *, page: int = 200) -> int:
        """Rebuild what a crash may have cut off: a transaction is stored before its
        event reaches this service, so after a restart every recent roaming transaction
        without its session (or, once ended, without its CDR) is handled again.
        Returns how many roaming transactions were handled."""
        handled = 0
        offset = 0
        while True:
            txs = await self._store.transactions.list(since=since, limit=page, offset=offset)
            for tx in txs:
                ended = tx.stopped_at is not None
                if ended and await self._store.cdrs.get(tx.id) is not None:
                    continue
                if not ended and await self._store.sessions.get(await self._session_key(tx)):
                    continue
                async with self._locks[tx.id]:
                    if await self._handle(tx, ended):
                        handled += 1
            if len(txs) < page:
                return handled
            offset += page

    # -- sessions started by command -------------------------------------------------

    async def pending(
        self,
        partner_id: str,
        token: Token,
        charger_id: str,
        evse_id: int,
        remote_start_id: int,
    ) -> None:
        """A START_SESSION the charger accepted: a PENDING session until the transaction
        starts (mod_sessions SessionStatus: "This is the initial state. The session might
        never become an active session")."""
        place = await self._place(charger_id, evse_id, 1)
        if place is None:
            return
        now = self._clock.now()
        session_id = self._ids.new_id()
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
                "location_id": place.location.id,
                "evse_uid": place.evse_uid,
                "connector_id": place.connector.id,
                "currency": DEFAULT_CURRENCY,
                "status": "PENDING",
                "last_updated": now,
            }
        )
        items = []
        url = self._planner.receiver_url(partner_id, "sessions")
        if url is not None:
            target = join_url(url, session.country_code, session.party_id, session_id)
            items.append(
                self._planner.item(
                    partner_id,
                    "sessions",
                    "PUT",
                    target,
                    session,
                    session_id,
                    from_party=PartyId(session.country_code, session.party_id),
                    to_party=PartyId(token.country_code, token.party_id),
                )
            )
        data = {"session": session.to_json(), "partner_id": partner_id, "pending": True}
        await self._store.sessions.put(Document(session_id, data, now, partner_id), enqueue=items)
        await self._store.sessions.put(
            Document(
                _start_index(charger_id, remote_start_id),
                {"session_id": session_id},
                now,
                owner="index:remote-start",
            )
        )
        self._notify()

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


def _start_index(charger_id: str, remote_start_id: int) -> str:
    # Index records share the sessions collection under their own owner, so that
    # session listings (by partner) never show them.
    return f"remote-start:{charger_id}:{remote_start_id}"
