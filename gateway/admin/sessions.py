"""Admin API: the OCPI sessions and CDRs of roaming charges, newest first (read only).

``GET /sessions?limit=&offset=`` and ``GET /cdrs?limit=&offset=`` answer a summary of
each (partner, status, times, energy, cost with its currency), newest change first, with
``X-Total-Count``. The objects themselves are what the partner was sent (OCPI ``GET``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from gateway.admin import openapi as api
from gateway.admin.http import read_query, respond
from gateway.admin.schemas import _Body
from gateway.keys import STORE
from gateway.storage.base import Document, DocumentStore


class PageQuery(_Body):
    limit: int = Field(default=50, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


async def _newest_first(docs: DocumentStore, q: PageQuery) -> tuple[list[Document], int]:
    # Listings are oldest first (OCPI order): the newest page is read from the end.
    _, total = await docs.list(limit=1)
    end = max(total - q.offset, 0)
    start = max(end - q.limit, 0)
    page, total = await docs.list(offset=start, limit=end - start) if end else ([], total)
    return list(reversed(page)), total


def _cost(obj: dict[str, Any]) -> dict[str, Any] | None:
    cost = obj.get("total_cost")
    return cost if isinstance(cost, dict) else None


def session_view(doc: Document) -> dict[str, Any]:
    s = doc.data.get("session", {})
    return {
        "id": doc.key,
        "partner_id": doc.data.get("partner_id"),
        "transaction_id": doc.data.get("tx_id"),
        "status": s.get("status"),
        "start_date_time": s.get("start_date_time"),
        "end_date_time": s.get("end_date_time"),
        "kwh": s.get("kwh"),
        "total_cost": _cost(s),
        "currency": s.get("currency"),
        "location_id": s.get("location_id"),
        "evse_uid": s.get("evse_uid"),
        "last_updated": doc.last_updated,
    }


def cdr_view(doc: Document) -> dict[str, Any]:
    c = doc.data["cdr"]
    location = c.get("cdr_location") or {}
    return {
        "id": doc.key,
        "partner_id": doc.data.get("partner_id"),
        "session_id": c.get("session_id"),
        "start_date_time": c.get("start_date_time"),
        "end_date_time": c.get("end_date_time"),
        "total_energy": c.get("total_energy"),
        "total_time": c.get("total_time"),
        "total_cost": _cost(c),
        "currency": c.get("currency"),
        "location_id": location.get("id"),
        "evse_uid": location.get("evse_uid"),
        "last_updated": doc.last_updated,
    }


async def list_sessions(request: web.Request) -> web.Response:
    q: PageQuery = read_query(request, PageQuery)
    page, total = await _newest_first(request.config_dict[STORE].sessions, q)
    # Session documents of a transaction not yet joined hold only its id: not a session.
    response = respond([session_view(d) for d in page if "session" in d.data])
    response.headers["X-Total-Count"] = str(total)
    return response


async def list_cdrs(request: web.Request) -> web.Response:
    q: PageQuery = read_query(request, PageQuery)
    page, total = await _newest_first(request.config_dict[STORE].cdrs, q)
    # The collection also holds the failed CDRs' records (GET /cdrs/failed).
    response = respond([cdr_view(d) for d in page if "cdr" in d.data])
    response.headers["X-Total-Count"] = str(total)
    return response


def roaming_session_routes() -> list[api.Operation]:
    return [
        api.get(
            "/sessions",
            list_sessions,
            "The OCPI sessions of roaming charges, newest change first",
            query=PageQuery,
        ),
        api.get("/cdrs", list_cdrs, "The CDRs, newest first", query=PageQuery),
    ]
