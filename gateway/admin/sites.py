"""Admin API for site load management (``gateway.smart``): sites and their limits.

- ``PUT /sites/{site_id}``: create or replace a site (201 / 200); ``GET`` shows it with
  its live ``allocation`` (each session's limit and draw, each charger's limit in force,
  the totals and the headroom per phase); ``DELETE`` (204); ``GET /sites`` lists them.
- ``POST /sites/{site_id}/limits``: a time-bounded limit (``start``, ``end``, ``limit``
  in ``unit`` A per phase, kW or W), 201; ``GET`` lists them;
  ``DELETE /sites/{site_id}/limits/{limit_id}`` (204).

Bad input: 4xx with ``{"error", "field"}`` naming the field, as everywhere in the API.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, Field

from gateway.admin import openapi as api
from gateway.admin.http import ApiError, read_body, respond
from gateway.admin.schemas import _Body
from gateway.keys import CLOCK, IDS, STORE
from gateway.smart import sites as docs
from gateway.smart.allocator import IEC_MINIMUM, SiteLimit
from gateway.smart.manager import SITES, SiteManager
from gateway.storage.base import Document

Current = Annotated[Decimal, Field(gt=0, le=10_000, max_digits=8, decimal_places=1)]
Weight = Annotated[Decimal, Field(gt=0, le=1000, max_digits=8)]
Name = Annotated[str, Field(min_length=1, max_length=48)]


class EvseEntry(_Body):
    charger_id: Name
    evse_id: int = Field(default=1, ge=1, le=1000)
    max_current: Current = Field(description="rated, A per phase")
    phases: Literal[1, 3] | None = Field(default=None, description="default: the site's")
    phase: Literal["L1", "L2", "L3"] = Field(default="L1", description="of a 1-phase EVSE")
    weight: Weight | None = None


class Weights(_Body):
    token_group: dict[Name, Weight] = {}
    partner: dict[Name, Weight] = Field(default={}, description='"CC*PID" of the eMSP')


class SiteBody(_Body):
    capacity: Annotated[Decimal, Field(ge=0, le=1_000_000, max_digits=10, decimal_places=3)]
    capacity_unit: Literal["A", "kW"] = "A"
    phases: Literal[1, 3] = 3
    voltage: Annotated[Decimal, Field(gt=0, le=1000)] = Decimal(230)
    min_current: Current = IEC_MINIMUM
    max_current: Current | None = None
    policy: Literal["equal", "priority"] = "equal"
    weights: Weights = Weights()
    suspend_ratio: Annotated[Decimal, Field(gt=0, lt=1)] = Decimal("0.5")
    suspend_after: int = Field(default=120, ge=1, le=86400, description="seconds")
    evses: list[EvseEntry] = Field(default=[], max_length=1000)


class LimitBody(_Body):
    start: AwareDatetime
    end: AwareDatetime
    limit: Annotated[Decimal, Field(ge=0, le=1_000_000, max_digits=12, decimal_places=3)]
    unit: Literal["A", "kW", "W"] = "A"


def _site_id(request: web.Request) -> str:
    site_id = request.match_info["site_id"]
    if not 1 <= len(site_id) <= 48 or "/" in site_id:
        raise ApiError(400, "site id must be 1 to 48 characters, without '/'", "site_id")
    return site_id


def _manager(request: web.Request) -> SiteManager:
    return request.config_dict[SITES]


def _check(body: SiteBody) -> None:
    """What one field cannot say alone (422 naming the field)."""
    if body.max_current is not None and body.max_current < body.min_current:
        raise ApiError(422, "max_current: below min_current", "max_current")
    seen: set[tuple[str, int]] = set()
    wiring: dict[str, tuple[int, str]] = {}
    for i, e in enumerate(body.evses):
        where = f"evses.{i}"
        if (e.charger_id, e.evse_id) in seen:
            raise ApiError(422, f"{where}: charger_id and evse_id listed twice", where)
        seen.add((e.charger_id, e.evse_id))
        if e.max_current < body.min_current:
            raise ApiError(422, f"{where}.max_current: below min_current", f"{where}.max_current")
        phases = e.phases or body.phases
        if phases > body.phases:
            raise ApiError(
                422, f"{where}.phases: a 3-phase EVSE on a 1-phase site", f"{where}.phases"
            )
        if body.phases == 1 and e.phase != "L1":
            raise ApiError(422, f"{where}.phase: a 1-phase site has L1 only", f"{where}.phase")
        # The charger is the unit of account (one station-wide limit): its EVSEs share
        # its wiring.
        wired = (phases, e.phase if phases == 1 else "L1")
        if wiring.setdefault(e.charger_id, wired) != wired:
            raise ApiError(
                422,
                f"{where}: the EVSEs of one charger must be wired alike (phases, phase)",
                f"{where}.phases",
            )


def _site_data(body: SiteBody) -> dict[str, Any]:
    data = body.model_dump(mode="json")
    for e in data["evses"]:
        if e["phases"] is None:
            e["phases"] = body.phases
    return data


def _limit(site_id: str, limit_id: str, body: LimitBody) -> SiteLimit:
    if body.end <= body.start:
        raise ApiError(422, "end: not after start", "end")
    value = body.limit
    return SiteLimit(
        id=limit_id,
        start=body.start,
        end=body.end,
        amperes=value if body.unit == "A" else None,
        watts=value * 1000 if body.unit == "kW" else value if body.unit == "W" else None,
        source="admin",
    )


async def _site_view(request: web.Request, doc: Document) -> dict[str, Any]:
    return {
        "id": doc.key,
        **doc.data,
        "allocation": await _manager(request).view(doc.key),
    }


def site_routes() -> list[api.Operation]:
    async def list_sites(request: web.Request) -> web.Response:
        store = request.config_dict[STORE]
        page, _ = await store.sites.list(limit=1000)
        return respond([{"id": d.key, **d.data} for d in sorted(page, key=lambda d: d.key)])

    async def get_site(request: web.Request) -> web.Response:
        site_id = _site_id(request)
        doc = await request.config_dict[STORE].sites.get(site_id)
        if doc is None:
            raise ApiError(404, f"site {site_id!r} not found")
        return respond(await _site_view(request, doc))

    async def put_site(request: web.Request) -> web.Response:
        site_id = _site_id(request)
        body: SiteBody = await read_body(request, SiteBody)
        _check(body)
        store = request.config_dict[STORE]
        # A charger answers to one grid connection: one site each.
        mine = {e.charger_id for e in body.evses}
        for other in await SiteManager.all_documents(store.sites):
            if other.key == site_id:
                continue
            taken = mine & {str(e["charger_id"]) for e in other.data.get("evses", [])}
            if taken:
                raise ApiError(
                    409, f"charger {sorted(taken)[0]!r} is on site {other.key!r} already", "evses"
                )
        existing = await store.sites.get(site_id)
        doc = Document(site_id, _site_data(body), request.config_dict[CLOCK].now(), owner=None)
        await store.sites.put(doc)
        await _manager(request).changed(site_id)
        return respond(await _site_view(request, doc), 200 if existing else 201)

    async def delete_site(request: web.Request) -> web.Response:
        site_id = _site_id(request)
        if not await _manager(request).delete_site(site_id):
            raise ApiError(404, f"site {site_id!r} not found")
        return web.Response(status=204)

    async def list_limits(request: web.Request) -> web.Response:
        site_id = _site_id(request)
        store = request.config_dict[STORE]
        site_doc = await store.sites.get(site_id)
        if site_doc is None:
            raise ApiError(404, f"site {site_id!r} not found")
        site = docs.site_from_data(site_id, site_doc.data)
        page, _ = await store.site_limits.list(owner=site_id, limit=1000)
        now = request.config_dict[CLOCK].now()
        limits = sorted((docs.limit_from_data(d.data) for d in page), key=lambda x: (x.start, x.id))
        return respond([docs.limit_view(x, site, now) for x in limits])

    async def post_limit(request: web.Request) -> web.Response:
        site_id = _site_id(request)
        body: LimitBody = await read_body(request, LimitBody)
        store = request.config_dict[STORE]
        site_doc = await store.sites.get(site_id)
        if site_doc is None:
            raise ApiError(404, f"site {site_id!r} not found")
        limit = _limit(site_id, request.config_dict[IDS].new_id(), body)
        now = request.config_dict[CLOCK].now()
        await store.site_limits.put(
            Document(docs.limit_key(site_id, limit.id), docs.limit_to_data(limit), now, site_id)
        )
        await _manager(request).changed(site_id)
        site = docs.site_from_data(site_id, site_doc.data)
        return respond(docs.limit_view(limit, site, now), 201)

    async def delete_limit(request: web.Request) -> web.Response:
        site_id = _site_id(request)
        limit_id = request.match_info["limit_id"]
        if not await request.config_dict[STORE].site_limits.delete(
            docs.limit_key(site_id, limit_id)
        ):
            raise ApiError(404, f"limit {limit_id!r} of site {site_id!r} not found")
        await _manager(request).changed(site_id)
        return web.Response(status=204)

    site = {"site_id": "1 to 48 characters, without '/'"}
    return [
        api.get("/sites", list_sites, "Every site"),
        api.get(
            "/sites/{site_id}",
            get_site,
            "One site with its live allocation",
            path_params=site,
            errors={404: "no such site"},
        ),
        api.put(
            "/sites/{site_id}",
            put_site,
            "Create or replace a site",
            path_params=site,
            body=SiteBody,
            statuses={200: "replaced", 201: "created"},
            errors={409: "one of its chargers is on another site"},
        ),
        api.delete(
            "/sites/{site_id}",
            delete_site,
            "Forget a site, its limits and state (its chargers' site profile is cleared)",
            path_params=site,
            statuses={204: "deleted"},
            errors={404: "no such site"},
        ),
        api.get(
            "/sites/{site_id}/limits",
            list_limits,
            "The site's demand-response limits, by start",
            path_params=site,
            errors={404: "no such site"},
        ),
        api.post(
            "/sites/{site_id}/limits",
            post_limit,
            "Add a time-bounded limit on the site's capacity",
            path_params=site,
            body=LimitBody,
            statuses={201: "added"},
            errors={404: "no such site"},
        ),
        api.delete(
            "/sites/{site_id}/limits/{limit_id}",
            delete_limit,
            "Lift a limit now",
            path_params=site,
            statuses={204: "lifted"},
            errors={404: "no such site or limit"},
        ),
    ]
