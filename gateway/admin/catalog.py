"""Admin API for the operator's OCPI locations and tariffs."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway.admin import openapi as api
from gateway.admin.http import ApiError, parse_json, respond
from gateway.roaming.catalog import (
    _EVSE_EXTRA_FIELDS,
    CatalogError,
    LocationService,
    TariffInUse,
    TariffService,
)
from gateway.roaming.providers import PROVIDERS
from ocpi.transport import PageRequest
from ocpi.v221 import Location, Tariff


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    data = parse_json(raw) if raw.strip() else None
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    return data


def _optional(schema: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """``schema`` with the properties ``names`` no longer required."""
    schema["required"] = [r for r in schema.get("required", []) if r not in names]
    return schema


# The operator's bodies are OCPI objects without what the gateway sets itself (the id is
# the path's, last_updated the time of the PUT, the party the hosted one unless named):
# their schemas are made from the models the services validate them with.
_SET_HERE = {"id", "last_updated", "country_code", "party_id"}


def _tariff_body(schema: dict[str, Any], _components: Mapping[str, Any]) -> dict[str, Any]:
    schema["title"] = "TariffBody"
    return _optional(schema, _SET_HERE)


def _location_body(schema: dict[str, Any], components: Mapping[str, Any]) -> dict[str, Any]:
    evse = api.referenced(schema["properties"]["evses"], components)
    connector = copy.deepcopy(api.referenced(evse["properties"]["connectors"], components))
    connector = _optional(connector, {"last_updated"})
    schema = _optional(schema, _SET_HERE)
    schema["title"] = "LocationBody"
    schema["properties"]["connectors"] = {
        "type": "array",
        "items": connector,
        "description": "the connectors of every EVSE of the location's chargers",
    }
    own = {
        "type": "object",
        "properties": {
            "connectors": {"type": "array", "items": connector},
            **{k: v for k, v in evse["properties"].items() if k in _EVSE_EXTRA_FIELDS},
        },
        "additionalProperties": False,
    }
    schema["properties"]["evses"] = {
        "description": (
            "by EVSE uid: its own connectors and the EVSE fields the operator sets (uid, "
            "evse_id and status come from the chargers), or an OCPI list of EVSEs"
        ),
        "anyOf": [
            {"type": "object", "additionalProperties": own},
            {"type": "array", "items": {"type": "object", "required": ["uid"]}},
        ],
    }
    schema["additionalProperties"] = False  # "not a field of a location"
    return schema


def _id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not 1 <= len(value) <= 36 or not value.isprintable():  # OCPI CiString(36)
        raise ApiError(400, f"{name}: 1 to 36 printable characters", name)
    return value


def _wire(model: Any) -> Any:
    return json.loads(model.to_json())


def _locations(request: web.Request) -> LocationService:
    service = request.config_dict[PROVIDERS].locations
    if service is None:
        raise ApiError(503, "not started")
    return service


def _tariffs(request: web.Request) -> TariffService:
    service = request.config_dict[PROVIDERS].tariffs
    if service is None:
        raise ApiError(503, "not started")
    return service


async def put_location(request: web.Request) -> web.Response:
    location_id = _id(request, "location_id")
    body = await _json_object(request)
    try:
        location, created = await _locations(request).put(location_id, body)
    except CatalogError as exc:
        raise ApiError(422, str(exc), exc.field) from None
    return respond(_wire(location), 201 if created else 200)


async def get_location(request: web.Request) -> web.Response:
    location_id = _id(request, "location_id")
    location = await _locations(request).get(location_id)
    if location is None:
        raise ApiError(404, f"location {location_id!r} not found")
    return respond(_wire(location))


async def list_locations(request: web.Request) -> web.Response:
    locations, _ = await _locations(request).page(PageRequest(limit=10_000))
    return respond([_wire(loc) for loc in locations])


async def put_tariff(request: web.Request) -> web.Response:
    tariff_id = _id(request, "tariff_id")
    body = await _json_object(request)
    try:
        tariff, created = await _tariffs(request).put(tariff_id, body)
    except CatalogError as exc:
        raise ApiError(422, str(exc), exc.field) from None
    return respond(_wire(tariff), 201 if created else 200)


async def get_tariff(request: web.Request) -> web.Response:
    tariff_id = _id(request, "tariff_id")
    tariff = await _tariffs(request).get(tariff_id)
    if tariff is None:
        raise ApiError(404, f"tariff {tariff_id!r} not found")
    return respond(_wire(tariff))


async def delete_tariff(request: web.Request) -> web.Response:
    tariff_id = _id(request, "tariff_id")
    try:
        deleted = await _tariffs(request).delete(tariff_id)
    except TariffInUse as exc:
        raise ApiError(409, str(exc), exc.field) from None
    if not deleted:
        raise ApiError(404, f"tariff {tariff_id!r} not found")
    return web.Response(status=204)


async def list_tariffs(request: web.Request) -> web.Response:
    tariffs, _ = await _tariffs(request).page(PageRequest(limit=10_000))
    return respond([_wire(t) for t in tariffs])


def catalog_routes() -> list[api.Operation]:
    location = {"location_id": "OCPI CiString(36)"}
    tariff = {"tariff_id": "OCPI CiString(36)"}
    down = {503: "not started"}
    return [
        api.get(
            "/locations",
            list_locations,
            "Every location, as partners get it (OCPI 2.2.1 Location)",
            response=list[Location],
            errors=down,
        ),
        api.get(
            "/locations/{location_id}",
            get_location,
            "One location (OCPI 2.2.1 Location, EVSEs from its chargers)",
            path_params=location,
            response=Location,
            errors={**down, 404: "no such location"},
        ),
        api.put(
            "/locations/{location_id}",
            put_location,
            "Create or replace a location (pushed to the partners that may see it)",
            path_params=location,
            body=api.Derived("LocationBody", Location, _location_body),
            response=Location,
            statuses={200: "replaced", 201: "created"},
            errors=down,
        ),
        api.get(
            "/tariffs",
            list_tariffs,
            "Every tariff (OCPI 2.2.1 Tariff)",
            response=list[Tariff],
            errors=down,
        ),
        api.get(
            "/tariffs/{tariff_id}",
            get_tariff,
            "One tariff",
            path_params=tariff,
            response=Tariff,
            errors={**down, 404: "no such tariff"},
        ),
        api.put(
            "/tariffs/{tariff_id}",
            put_tariff,
            "Create or replace a tariff (checked as the pricer will use it; pushed)",
            path_params=tariff,
            body=api.Derived("TariffBody", Tariff, _tariff_body),
            response=Tariff,
            statuses={200: "replaced", 201: "created"},
            errors=down,
        ),
        api.delete(
            "/tariffs/{tariff_id}",
            delete_tariff,
            "Delete a tariff no location uses",
            path_params=tariff,
            statuses={204: "deleted"},
            errors={**down, 404: "no such tariff", 409: "locations still use it"},
        ),
    ]
