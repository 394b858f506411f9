"""Admin API for the operator's OCPI locations and tariffs."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.admin.http import ApiError, parse_json, respond
from gateway.roaming.catalog import CatalogError, LocationService, TariffInUse, TariffService
from gateway.roaming.providers import PROVIDERS
from ocpi.transport import PageRequest


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    data = parse_json(raw) if raw.strip() else None
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    return data


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


def catalog_routes() -> list[web.RouteDef]:
    return [
        web.get("/locations", list_locations),
        web.get("/locations/{location_id}", get_location),
        web.put("/locations/{location_id}", put_location),
        web.get("/tariffs", list_tariffs),
        web.get("/tariffs/{tariff_id}", get_tariff),
        web.put("/tariffs/{tariff_id}", put_tariff),
        web.delete("/tariffs/{tariff_id}", delete_tariff),
    ]
