"""Locations and Tariffs: the operator's records, served to partners and pushed on change.

A location record holds the operator's OCPI Location fields (without EVSEs), the
OCPI connectors of its EVSEs and the EVSE statuses last pushed. EVSEs come from
the chargers bound to the location (``Charger.location_id``); their status is
live from OCPP (see ``locations``). mod_locations: new objects are pushed with
PUT, status changes with PATCH of the EVSE.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gateway.domain.clock import Clock
from gateway.domain.events import ConnectorStatusChanged, Event
from gateway.domain.models import Charger
from gateway.roaming.locations import ChargerView, build_location, evse_status
from gateway.roaming.pushes import PushPlanner
from gateway.storage.base import Document, Store
from ocpi.transport import (
    PageRequest,
    PartyId,
    format_datetime,
    format_validation_error,
    json_loads,
)
from ocpi.v221 import EVSE, Connector, Location, Tariff

log = logging.getLogger(__name__)

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
    ) -> None:
        self._store = store
        self._planner = planner
        self._clock = clock
        self._parties = list(parties)
        self._notify = notify
        # One update at a time per record: pushed statuses are read-modify-write.
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)


class LocationService(_OperatorRecords):
    # -- the operator's record ------------------------------------------------

    async def put(self, location_id: str, body: dict[str, Any]) -> tuple[Location, bool]:
        """Create or replace a location from the admin API; returns it and whether it is new."""
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
        await self._check_tariffs([*default, *(c for cs in own.values() for c in cs)])
        connectors = {uid: [json.loads(c.to_json()) for c in cs] for uid, cs in own.items() if cs}
        async with self._locks[location_id]:
            existing = await self._store.locations.get(location_id)
            data = {
                "location": template.to_json(),
                "default_connectors": [json.loads(c.to_json()) for c in default],
                "connectors": connectors,
                "extras": extras,
                "pushed_status": (existing.data.get("pushed_status", {}) if existing else {}),
            }
            location = await self._build(data)
            data["pushed_status"] = {e.uid: str(e.status) for e in location.evses or []}
            path = f"/{party.country_code}/{party.party_id}/{location_id}"
            items = self._planner.broadcast(
                "locations", "PUT", path, location, location_id, _owner(location)
            )
            await self._store.locations.put(
                Document(location_id, data, location.last_updated, party.owner), enqueue=items
            )
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
            by_location = await self._chargers_by_location()
        return [await self._view(c) for c in by_location.get(location_id, [])]

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

    async def page(self, page: PageRequest) -> tuple[list[Location], int]:
        docs, total = await self._store.locations.list(
            date_from=page.date_from, date_to=page.date_to, offset=page.offset, limit=page.limit
        )
        by_location = await self._chargers_by_location()
        return [await self._build(d.data, by_location) for d in docs], total

    # -- live status ------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        if not isinstance(event, ConnectorStatusChanged):
            return
        charger = await self._store.chargers.get(event.state.charger_id)
        if charger is None or charger.location_id is None:
            return
        async with self._locks[charger.location_id]:
            doc = await self._store.locations.get(charger.location_id)
            if doc is None:
                return
            # Only this charger's EVSEs can have changed.
            view = await self._view(charger)
            pushed: dict[str, str] = dict(doc.data.get("pushed_status", {}))
            template = Location.model_validate(json_loads(doc.data["location"]))
            now = self._clock.now()
            items = []
            for evse in charger.evses:
                status = str(evse_status(evse, view))
                if pushed.get(evse.evse_uid) == status:
                    continue
                pushed[evse.evse_uid] = status
                path = f"/{template.country_code}/{template.party_id}/{template.id}/{evse.evse_uid}"
                body = {"status": status, "last_updated": format_datetime(now)}
                items += self._planner.broadcast(
                    "locations", "PATCH", path, body, template.id, _owner(template)
                )
            if not items and pushed == doc.data.get("pushed_status", {}):
                return
            data = dict(doc.data) | {"pushed_status": pushed}
            await self._store.locations.put(Document(doc.key, data, now, doc.owner), enqueue=items)
        self._notify()


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
        existing = await self._store.tariffs.get(tariff_id)
        path = f"/{party.country_code}/{party.party_id}/{tariff_id}"
        items = self._planner.broadcast("tariffs", "PUT", path, tariff, tariff_id, _owner(tariff))
        await self._store.tariffs.put(
            Document(tariff_id, {"tariff": tariff.to_json()}, tariff.last_updated, party.owner),
            enqueue=items,
        )
        self._notify()
        return tariff, existing is None

    async def get(self, tariff_id: str) -> Tariff | None:
        doc = await self._store.tariffs.get(tariff_id)
        return None if doc is None else Tariff.model_validate(json_loads(doc.data["tariff"]))

    async def delete(self, tariff_id: str) -> bool:
        tariff = await self.get(tariff_id)
        if tariff is None:
            return False
        path = f"/{tariff.country_code}/{tariff.party_id}/{tariff_id}"
        items = self._planner.broadcast("tariffs", "DELETE", path, None, tariff_id, _owner(tariff))
        deleted = await self._store.tariffs.delete(tariff_id, enqueue=items)
        self._notify()
        return deleted

    async def page(self, page: PageRequest) -> tuple[list[Tariff], int]:
        docs, total = await self._store.tariffs.list(
            date_from=page.date_from, date_to=page.date_to, offset=page.offset, limit=page.limit
        )
        return [Tariff.model_validate(json_loads(d.data["tariff"])) for d in docs], total
