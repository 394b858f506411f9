"""Locations and Tariffs: the operator's records, served to partners and pushed on change.

A location record holds the operator's OCPI Location fields (without EVSEs), the
OCPI connectors of its EVSEs and the EVSE statuses last pushed. EVSEs come from
the chargers bound to the location (``Charger.location_id``); their status is
live from OCPP (see ``locations``). mod_locations: new objects are pushed with
PUT, status changes with PATCH of the EVSE.

A receiver must have an object before it gets a PATCH of it (mod_locations: PUT
creates, PATCH updates). The record therefore also remembers, per receiver
(:attr:`PushTarget.key`), the EVSE uids of the last full Location it was sent
(``known_by``): a receiver that lacks the location or one of its EVSEs (a charger
bound after the location was pushed, a new ``evse_uid``, a partner that registered
or became reachable later) gets the whole Location by PUT, on the same ordering key
and so before any later PATCH; only the others get the PATCH. An EVSE that left the
location is PATCHed ``REMOVED`` first (mod_locations: EVSEs are not deleted). The
PATCHes name their full object, so a receiver that still answers "unknown object"
gets the Location by PUT instead (the outbox worker, :func:`full_object_meta`). A
partner that has just registered gets every tariff and location it may see
(:func:`initial_push`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import ValidationError

from gateway.domain.clock import Clock
from gateway.domain.events import (
    ChargerConfigured,
    ChargerOffline,
    ChargerOnline,
    ConnectorStatusChanged,
    Event,
)
from gateway.domain.models import Charger, EvseConfig
from gateway.roaming.location_pages import LocationPages
from gateway.roaming.locations import ChargerView, build_location, evse_status
from gateway.roaming.outbox import full_object_meta
from gateway.roaming.partners import Partner, PartnerListener, PartnerStatus
from gateway.roaming.pushes import PushPlanner, PushTarget
from gateway.roaming.versioning import LOCATION_KIND
from gateway.storage.base import Document, DocumentStore, OutboxItem, Store
from ocpi.tariffs import TariffError, compile_tariff, tariff_from_ocpi_dict
from ocpi.transport import (
    PageRequest,
    PartyId,
    RawJson,
    format_datetime,
    format_validation_error,
    join_url,
    json_loads,
)
from ocpi.v221 import EVSE, Connector, Location, Tariff

log = logging.getLogger(__name__)

# What a PATCH of a location or EVSE names as its full object (the outbox worker asks
# LocationService.get for it when the receiver answers "unknown object").
LOCATION_OBJECT = LOCATION_KIND  # its builder also gives 2.1.1 sessions their Location
_PAGE = 200  # records per page when pushing everything to a partner

_NOT_IN_BODY = {"id", "evses", "last_updated"}
_EVSE_EXTRA_FIELDS = {
    "capabilities",
    "floor_level",
    "coordinates",
    "physical_reference",
    "directions",
    "parking_restrictions",
    "images",
    "status_schedule",
}


class CatalogError(ValueError):
    """The operator's record is invalid; ``field`` names the offending field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Party:
    country_code: str
    party_id: str

    @property
    def owner(self) -> str:
        return f"{self.country_code}*{self.party_id}"


def _validate(model: type[Any], data: Any, prefix: str = "") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message = format_validation_error(exc, prefix=prefix)
        raise CatalogError(message, message.split(":", 1)[0]) from None


class TariffInUse(CatalogError):
    """A tariff that locations still reference cannot be deleted (``used_by``: their ids)."""

    def __init__(self, message: str, used_by: Sequence[str]) -> None:
        super().__init__(message, "tariff_id")
        self.used_by = list(used_by)


def _check_time_zone(name: str) -> None:
    # The pricer evaluates every time restriction in the location's local time: a name
    # zoneinfo does not know would leave each session there without a CDR.
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CatalogError(
            f"time_zone: {name!r} is not an IANA time zone (such as Europe/Amsterdam)",
            "time_zone",
        ) from None


def _check_priceable(tariff: Tariff) -> None:
    # What the pricer would refuse at the end of every session is refused now.
    try:
        compile_tariff(tariff_from_ocpi_dict(json_loads(tariff.to_json())))
    except TariffError as exc:
        raise CatalogError(str(exc), exc.field or None) from None


def _party(body: dict[str, Any], parties: Sequence[Party]) -> Party:
    cc = body.get("country_code", parties[0].country_code)
    pid = body.get("party_id", parties[0].party_id)
    party = Party(str(cc).upper(), str(pid).upper())
    if party not in parties:
        hosted = ", ".join(p.owner for p in parties)
        raise CatalogError(
            f"country_code/party_id: {party.owner} is not hosted here ({hosted})", "party_id"
        )
    return party


class _OperatorRecords:
    """What the location and tariff services share: records of hosted parties, pushed."""

    def __init__(
        self,
        store: Store,
        planner: PushPlanner,
        clock: Clock,
        parties: Sequence[Party],
        notify: Callable[[], None],
        *,
        references: asyncio.Lock | None = None,
    ) -> None:
        self._store = store
        self._planner = planner
        self._clock = clock
        self._parties = list(parties)
        self._notify = notify
        # Shared by the location and tariff services of one app: locations naming tariffs
        # and tariff deletions are decided one at a time.
        self._references = references or asyncio.Lock()
        # One update at a time per record: pushed statuses are read-modify-write.
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def _push_each_to(
        self,
        records: DocumentStore,
        partner_id: str,
        push_one: Callable[[str, str], Awaitable[bool]],
    ) -> int:
        """``push_one(key, partner_id)`` for every record, a page at a time; how many
        it queued a push for (the outbox worker is woken once, at the end)."""
        pushed = 0
        offset = 0
        while True:
            docs, total = await records.list(offset=offset, limit=_PAGE)
            for listed in docs:
                if await push_one(listed.key, partner_id):
                    pushed += 1
            offset += len(docs)
            if not docs or offset >= total:
                break
        if pushed:
            self._notify()
        return pushed


# What an EVSE of an OCPI Location carries that the gateway takes from the chargers
# bound to the location (uid, evse_id) or from OCPP (status), or stamps itself.
_EVSE_DERIVED_FIELDS = {"uid", "evse_id", "status", "last_updated"}


def _operator_location(location_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The operator's body from an OCPI Location as a partner would send it: ``id`` must
    be the path's, ``last_updated`` is ignored (the PUT's time is), and ``evses`` as an
    OCPI list becomes the object keyed by uid (connectors and the EVSE fields the
    operator sets; uid, evse_id and status come from the chargers and OCPP)."""
    body = dict(body)
    if "id" in body:
        given = body.pop("id")
        if given != location_id:
            raise CatalogError(f"id: {given!r} is not the id in the path ({location_id!r})", "id")
    body.pop("last_updated", None)
    evses = body.get("evses")
    if isinstance(evses, list):
        by_uid: dict[str, Any] = {}
        for i, evse in enumerate(evses):
            uid = evse.get("uid") if isinstance(evse, dict) else None
            if not isinstance(uid, str) or not uid:
                raise CatalogError(f"evses[{i}].uid: an EVSE needs its uid", f"evses[{i}].uid")
            if uid in by_uid:
                raise CatalogError(f"evses[{i}].uid: {uid!r} twice", f"evses[{i}].uid")
            by_uid[uid] = {k: v for k, v in evse.items() if k not in _EVSE_DERIVED_FIELDS}
        body["evses"] = by_uid
    _check_connector_list(body.get("connectors"), "connectors")
    if isinstance(body.get("evses"), dict):
        for uid, spec in body["evses"].items():
            if isinstance(spec, dict):
                _check_connector_list(spec.get("connectors"), f"evses.{uid}.connectors")
    return body


def _check_connector_list(value: Any, path: str) -> None:
    """Connectors are a list of objects (each then validated as an OCPI Connector)."""
    if value is None:
        return
    if not isinstance(value, list):
        raise CatalogError(f"{path}: a list of connector objects", path)
    for i, connector in enumerate(value):
        if not isinstance(connector, dict):
            raise CatalogError(f"{path}[{i}]: a connector object", f"{path}[{i}]")


class LocationService(_OperatorRecords):
    def __init__(
        self,
        store: Store,
        planner: PushPlanner,
        clock: Clock,
        parties: Sequence[Party],
        notify: Callable[[], None],
        *,
        references: asyncio.Lock | None = None,
    ) -> None:
        super().__init__(store, planner, clock, parties, notify, references=references)
        # The Sender's pages, kept serialized and current (gateway.roaming.location_pages).
        self.pages = LocationPages(store, self._build_with)

    # -- the operator's record ------------------------------------------------

    async def put(self, location_id: str, body: dict[str, Any]) -> tuple[Location, bool]:
        """Create or replace a location from the admin API; returns it and whether it is new."""
        body = _operator_location(location_id, body)
        unknown = set(body) - (set(Location.model_fields) - _NOT_IN_BODY) - {"connectors", "evses"}
        if unknown:
            name = sorted(unknown)[0]
            raise CatalogError(f"{name}: not a field of a location", name)
        party = _party(body, self._parties)
        now = self._clock.now()
        fields = {k: v for k, v in body.items() if k not in ("connectors", "evses")}
        template = _validate(
            Location,
            fields
            | {
                "country_code": party.country_code,
                "party_id": party.party_id,
                "id": location_id,
                "last_updated": format_datetime(now),
            },
        )
        _check_time_zone(template.time_zone)
        stamp = format_datetime(now)
        default = [
            _validate(Connector, c | {"last_updated": stamp}, f"connectors[{i}].")
            for i, c in enumerate(body.get("connectors") or [])
        ]
        evses_in = body.get("evses") or {}
        if not isinstance(evses_in, dict):
            raise CatalogError("evses: an object keyed by EVSE uid", "evses")
        own: dict[str, list[Connector]] = {}
        extras: dict[str, dict[str, Any]] = {}
        for uid, spec in evses_in.items():
            if not isinstance(spec, dict):
                raise CatalogError(f"evses.{uid}: an object", f"evses.{uid}")
            extra = {k: v for k, v in spec.items() if k != "connectors"}
            unknown_extra = set(extra) - _EVSE_EXTRA_FIELDS
            if unknown_extra:
                name = f"evses.{uid}.{sorted(unknown_extra)[0]}"
                raise CatalogError(f"{name}: not a field the operator sets on an EVSE", name)
            own[uid] = [
                _validate(Connector, c | {"last_updated": stamp}, f"evses.{uid}.connectors[{i}].")
                for i, c in enumerate(spec.get("connectors") or [])
            ]
            # Validate the extra fields by building a throw-away EVSE with them.
            probe = {
                "uid": uid,
                "status": "UNKNOWN",
                "last_updated": stamp,
                "connectors": [_PROBE_CONNECTOR | {"last_updated": stamp}],
            }
            _validate(EVSE, extra | probe, f"evses.{uid}.")
            extras[uid] = extra
        connectors = {uid: [json.loads(c.to_json()) for c in cs] for uid, cs in own.items() if cs}
        # The tariffs named are checked and the location stored under the lock a tariff's
        # DELETE checks its users under: neither can slip between the other's check and
        # write (a location naming a deleted tariff would end in unpriced CDRs).
        async with self._references, self._locks[location_id]:
            await self._check_tariffs([*default, *(c for cs in own.values() for c in cs)])
            existing = await self._store.locations.get(location_id)
            data = {
                "location": template.to_json(),
                "default_connectors": [json.loads(c.to_json()) for c in default],
                "connectors": connectors,
                "extras": extras,
                "pushed_status": (existing.data.get("pushed_status", {}) if existing else {}),
                "known_by": (existing.data.get("known_by", {}) if existing else {}),
            }
            location = await self._build(data)
            data["pushed_status"] = {e.uid: str(e.status) for e in location.evses or []}
            items = self._push_full(
                data, location, self._planner.targets("locations", _owner(location))
            )
            await self._store.locations.put(
                Document(location_id, data, location.last_updated, party.owner), enqueue=items
            )
        self.pages.dirty(location_id)
        self._notify()
        return location, existing is None

    async def _check_tariffs(self, connectors: Sequence[Connector]) -> None:
        for connector in connectors:
            for tariff_id in connector.tariff_ids or []:
                if await self._store.tariffs.get(tariff_id) is None:
                    raise CatalogError(f"tariff_ids: unknown tariff {tariff_id!r}", "tariff_ids")

    # -- building -------------------------------------------------------------

    async def _view(self, charger: Charger) -> ChargerView:
        state = await self._store.charger_states.get(charger.id)
        connected = bool(state and state.connected)
        return ChargerView(charger, connected, await self._store.connectors.list(charger.id))

    async def _chargers_by_location(self) -> dict[str, list[Charger]]:
        # One pass over the chargers for a whole page of locations, not one per location.
        by_location: dict[str, list[Charger]] = defaultdict(list)
        for charger in await self._store.chargers.list():
            if charger.location_id is not None:
                by_location[charger.location_id].append(charger)
        return by_location

    async def _views(
        self, location_id: str, by_location: dict[str, list[Charger]] | None = None
    ) -> list[ChargerView]:
        if by_location is None:
            chargers = await self.pages.chargers_at(location_id)
        else:
            chargers = by_location.get(location_id, [])
        return [await self._view(c) for c in chargers]

    async def _build_with(self, data: dict[str, Any], chargers: list[Charger]) -> Location:
        """The location of record ``data`` with ``chargers`` bound to it (the pages')."""
        location_id = json_loads(data["location"])["id"]
        return await self._build(data, {location_id: chargers})

    async def _build(
        self, data: dict[str, Any], by_location: dict[str, list[Charger]] | None = None
    ) -> Location:
        template = Location.model_validate(json_loads(data["location"]))
        default = [Connector.model_validate(c) for c in data.get("default_connectors", [])]
        own = {
            uid: [Connector.model_validate(c) for c in cs]
            for uid, cs in data.get("connectors", {}).items()
        }
        views = await self._views(template.id, by_location)
        uids = {e.evse_uid for v in views for e in v.charger.evses}
        connectors_for = {uid: own.get(uid) or default for uid in uids}
        return build_location(template, views, connectors_for, data.get("extras", {}))

    async def get(self, location_id: str) -> Location | None:
        doc = await self._store.locations.get(location_id)
        return None if doc is None else await self._build(doc.data)

    async def page_json(self, page: PageRequest) -> tuple[list[RawJson], int]:
        """A page of locations as the Sender serves it (see :mod:`location_pages`)."""
        return await self.pages.page(page)

    async def page(self, page: PageRequest) -> tuple[list[Location], int]:
        docs, total = await self._store.locations.list(
            date_from=page.date_from, date_to=page.date_to, offset=page.offset, limit=page.limit
        )
        by_location = await self._chargers_by_location()
        return [await self._build(d.data, by_location) for d in docs], total

    # -- pushes -----------------------------------------------------------------

    def _push_full(
        self,
        data: dict[str, Any],
        location: Location,
        targets: Sequence[PushTarget],
        *,
        fresh: bool = False,
    ) -> list[OutboxItem]:
        """A PUT of the whole ``location`` to each of ``targets``, preceded by a PATCH
        ``REMOVED`` of each EVSE a target was sent before that is no longer in it
        (none when ``fresh``: the target starts over, e.g. has just registered).
        Records in ``data["known_by"]`` which EVSEs each target now has."""
        known_by: dict[str, list[str]] = dict(data.get("known_by", {}))
        uids = sorted(e.uid for e in location.evses or [])
        owner = _owner(location)
        segments = (location.country_code, location.party_id, location.id)
        stamp = format_datetime(self._clock.now())
        items: list[OutboxItem] = []
        for target in targets:
            gone = [] if fresh else sorted(set(known_by.get(target.key, ())) - set(uids))
            for uid in gone:
                items.append(
                    self._patch(
                        target,
                        (location.country_code, location.party_id, location.id),
                        uid,
                        {"status": "REMOVED", "last_updated": stamp},
                    )
                )
            items.append(
                self._planner.item_for(
                    target, "locations", "PUT", segments, location, location.id, owner
                )
            )
            known_by[target.key] = uids
        data["known_by"] = known_by
        return items

    def _patch(
        self, target: PushTarget, keys: _LocationKeys, uid: str, body: dict[str, Any]
    ) -> OutboxItem:
        """A PATCH of one EVSE that falls back to a PUT of the location when the
        receiver does not know it."""
        country_code, party_id, location_id = keys
        full = full_object_meta(LOCATION_OBJECT, location_id, join_url(target.url, *keys))
        return self._planner.item_for(
            target,
            "locations",
            "PATCH",
            (*keys, uid),
            body,
            location_id,
            PartyId(country_code, party_id),
            full,
            object_type="EVSEPatch",
        )

    def _published(self, data: dict[str, Any], charger: Charger) -> list[EvseConfig]:
        """The charger's EVSEs that are in the location (those with connectors)."""
        default = bool(data.get("default_connectors"))
        own = data.get("connectors", {})
        return [e for e in charger.evses if own.get(e.evse_uid) or default]

    async def sync(self, location_id: str) -> None:
        """The EVSEs of ``location_id`` changed (a charger bound, unbound, or its EVSEs
        replaced): every receiver gets the whole location by PUT, with a fresh
        ``last_updated``, before any later PATCH of it."""
        async with self._locks[location_id]:
            doc = await self._store.locations.get(location_id)
            if doc is None:
                return
            now = self._clock.now()
            template = Location.model_validate(json_loads(doc.data["location"]))
            data = dict(doc.data)
            data["location"] = template.model_copy(update={"last_updated": now}).to_json()
            location = await self._build(data)
            data["pushed_status"] = {e.uid: str(e.status) for e in location.evses or []}
            items = self._push_full(
                data, location, self._planner.targets("locations", _owner(location))
            )
            await self._store.locations.put(
                Document(doc.key, data, location.last_updated, doc.owner), enqueue=items
            )
        self.pages.dirty(location_id)
        self._notify()

    async def push_all_to(self, partner_id: str) -> int:
        """Every location, by PUT, to the receivers of partner ``partner_id`` that may
        see it (a partner that has just registered); returns how many were queued."""
        return await self._push_each_to(self._store.locations, partner_id, self._push_one_to)

    async def _push_one_to(self, location_id: str, partner_id: str) -> bool:
        async with self._locks[location_id]:
            doc = await self._store.locations.get(location_id)
            if doc is None:
                return False
            data = dict(doc.data)
            location = await self._build(data)
            targets = [
                t
                for t in self._planner.targets("locations", _owner(location))
                if t.partner_id == partner_id
            ]
            if not targets:
                return False
            items = self._push_full(data, location, targets, fresh=True)
            await self._store.locations.put(
                Document(doc.key, data, doc.last_updated, doc.owner), enqueue=items
            )
        return True

    # -- live status ------------------------------------------------------------

    # The kinds on_event acts on (the bus gives it no other).
    EVENTS = (ChargerConfigured, ChargerOnline, ChargerOffline, ConnectorStatusChanged)

    async def on_event(self, event: Event) -> None:
        if isinstance(event, ChargerConfigured):
            self.pages.charger_changed(event.before, event.after)
            await self._on_configured(event)
            return
        if isinstance(event, ChargerOnline | ChargerOffline):
            location_id = self.pages.location_of(event.charger_id)
            if location_id is not None:
                self.pages.dirty(location_id)
            return
        if not isinstance(event, ConnectorStatusChanged):
            return
        # A charger placed nowhere stops here (on SQLite without reading its record).
        charger = await self._store.chargers.placed(event.state.charger_id)
        if charger is None or charger.location_id is None:
            return
        try:
            await self._status_changed(event, charger, charger.location_id)
        finally:
            # Whether or not a status changed, the EVSE's last_updated may have.
            self.pages.dirty(charger.location_id)

    async def _status_changed(
        self, event: ConnectorStatusChanged, charger: Charger, location_id: str
    ) -> None:
        async with self._locks[location_id]:
            doc = await self._store.locations.get(location_id)
            if doc is None:
                return
            # Only this charger's EVSEs can have changed.
            view = await self._view(charger)
            published = self._published(doc.data, charger)
            pushed: dict[str, str] = dict(doc.data.get("pushed_status", {}))
            keys = _location_keys(doc.data["location"])
            now = self._clock.now()
            changed: list[tuple[str, str]] = []
            for evse in published:
                status = str(evse_status(evse, view))
                if pushed.get(evse.evse_uid) != status:
                    pushed[evse.evse_uid] = status
                    changed.append((evse.evse_uid, status))
            data = dict(doc.data) | {"pushed_status": pushed}
            known_by: dict[str, list[str]] = data.get("known_by", {})
            mine = {e.evse_uid for e in published}
            targets = self._planner.targets("locations", PartyId(keys[0], keys[1]))
            # A receiver without this location or one of these EVSEs gets it whole.
            lacking = [t for t in targets if not mine <= set(known_by.get(t.key, ()))]
            informed = [t for t in targets if t not in lacking]
            items: list[OutboxItem] = []
            if lacking:
                items += self._push_full(data, await self._build(data), lacking)
            for uid, status in changed:
                body = {"status": status, "last_updated": format_datetime(now)}
                items += [self._patch(t, keys, uid, body) for t in informed]
            if not items and pushed == doc.data.get("pushed_status", {}):
                return
            await self._store.locations.put(Document(doc.key, data, now, doc.owner), enqueue=items)
        self._notify()

    async def _on_configured(self, event: ChargerConfigured) -> None:
        before, after = event.before, event.after
        old = before.location_id if before else None
        new = after.location_id if after else None
        if old == new and (before.evses if before else ()) == (after.evses if after else ()):
            return  # e.g. a new password: nothing partners see
        for location_id in sorted({x for x in (old, new) if x is not None}):
            await self.sync(location_id)


# A location's country code, party id and id: where its pushes go and whose they are.
_LocationKeys = tuple[str, str, str]


def _location_keys(template: str) -> _LocationKeys:
    """The keys of a stored location template, which was validated when it was stored:
    read at every status change of a placed charger, so read without pydantic or the
    ``Decimal`` parse (orjson: about 40 µs less per change, ``tests/bench/README.md``);
    what orjson refuses (a number past a double's range) the json module reads."""
    try:
        data = orjson.loads(template)
    except orjson.JSONDecodeError:
        data = json_loads(template)
    return str(data["country_code"]), str(data["party_id"]), str(data["id"])


def _owner(obj: Location | Tariff) -> PartyId:
    return PartyId(obj.country_code, obj.party_id)


# A stand-in connector to validate EVSE extras when a location has no connectors yet.
_PROBE_CONNECTOR = {
    "id": "1",
    "standard": "IEC_62196_T2",
    "format": "SOCKET",
    "power_type": "AC_3_PHASE",
    "max_voltage": 230,
    "max_amperage": 16,
}


class TariffService(_OperatorRecords):
    async def put(self, tariff_id: str, body: dict[str, Any]) -> tuple[Tariff, bool]:
        party = _party(body, self._parties)
        tariff = _validate(
            Tariff,
            body
            | {
                "country_code": party.country_code,
                "party_id": party.party_id,
                "id": tariff_id,
                "last_updated": format_datetime(self._clock.now()),
            },
        )
        _check_priceable(tariff)
        segments = (party.country_code, party.party_id, tariff_id)
        # Under the lock: an initial push of this tariff never overtakes this one.
        async with self._locks[tariff_id]:
            existing = await self._store.tariffs.get(tariff_id)
            items = self._planner.broadcast(
                "tariffs", "PUT", segments, tariff, tariff_id, _owner(tariff)
            )
            await self._store.tariffs.put(
                Document(tariff_id, {"tariff": tariff.to_json()}, tariff.last_updated, party.owner),
                enqueue=items,
            )
        self._notify()
        return tariff, existing is None

    async def push_all_to(self, partner_id: str) -> int:
        """Every tariff, by PUT, to the receivers of partner ``partner_id`` that may see
        it (a partner that has just registered); returns how many were queued."""
        return await self._push_each_to(self._store.tariffs, partner_id, self._push_one_to)

    async def _push_one_to(self, tariff_id: str, partner_id: str) -> bool:
        async with self._locks[tariff_id]:
            tariff = await self.get(tariff_id)
            if tariff is None:
                return False
            segments = (tariff.country_code, tariff.party_id, tariff.id)
            items = [
                self._planner.item_for(
                    t, "tariffs", "PUT", segments, tariff, tariff.id, _owner(tariff)
                )
                for t in self._planner.targets("tariffs", _owner(tariff))
                if t.partner_id == partner_id
            ]
            if items:
                await self._store.outbox.enqueue(items)
            return bool(items)

    async def get(self, tariff_id: str) -> Tariff | None:
        doc = await self._store.tariffs.get(tariff_id)
        return None if doc is None else Tariff.model_validate(json_loads(doc.data["tariff"]))

    async def delete(self, tariff_id: str) -> bool:
        """Delete a tariff no location references (``TariffInUse`` otherwise).

        Sessions under way do not hold it back: each keeps the tariff it started with
        (``SessionService``), which is also the price its driver was offered, so a
        tariff can be retired as soon as its locations moved on, without waiting for
        sessions that may last days."""
        # Under the tariff's lock, as its PUTs: an initial push to a partner that is
        # registering cannot PUT the tariff again after its DELETE.
        async with self._references, self._locks[tariff_id]:
            tariff = await self.get(tariff_id)
            if tariff is None:
                return False
            used_by = await self._locations_using(tariff_id)
            if used_by:
                raise TariffInUse(
                    f"tariff {tariff_id!r} is used by the connectors of location(s) "
                    f"{', '.join(used_by)}: change their tariff_ids first",
                    used_by,
                )
            path = (tariff.country_code, tariff.party_id, tariff_id)
            items = self._planner.broadcast(
                "tariffs", "DELETE", path, None, tariff_id, _owner(tariff)
            )
            deleted = await self._store.tariffs.delete(tariff_id, enqueue=items)
        self._notify()
        return deleted

    async def _locations_using(self, tariff_id: str) -> list[str]:
        used: list[str] = []
        offset = 0
        while True:
            docs, total = await self._store.locations.list(offset=offset, limit=200)
            for doc in docs:
                specs = [
                    *doc.data.get("default_connectors", []),
                    *(c for cs in doc.data.get("connectors", {}).values() for c in cs),
                ]
                if any(tariff_id in (c.get("tariff_ids") or []) for c in specs):
                    used.append(doc.key)
            offset += len(docs)
            if not docs or offset >= total:
                return used

    async def page(self, page: PageRequest) -> tuple[list[Tariff], int]:
        docs, total = await self._store.tariffs.list(
            date_from=page.date_from, date_to=page.date_to, offset=page.offset, limit=page.limit
        )
        return [Tariff.model_validate(json_loads(d.data["tariff"])) for d in docs], total


def initial_push(locations: LocationService, tariffs: TariffService) -> PartnerListener:
    """A :meth:`PartnerRegistry.on_change` listener: a partner that has just become
    REGISTERED (or changed the endpoints or parties it registered with) gets every
    tariff, then every location, it may see by PUT, not only the later changes."""

    async def on_change(before: Partner | None, after: Partner | None) -> None:
        if after is None or after.status is not PartnerStatus.REGISTERED:
            return
        if (
            before is not None
            and before.status is PartnerStatus.REGISTERED
            and before.endpoints == after.endpoints
            and before.parties() == after.parties()
        ):
            return  # e.g. a token rotation: the partner has everything already
        n_tariffs = await tariffs.push_all_to(after.id)
        n_locations = await locations.push_all_to(after.id)
        log.info(
            "partner %s registered: %d tariffs and %d locations queued for it",
            after.id,
            n_tariffs,
            n_locations,
        )

    return on_change
