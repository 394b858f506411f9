"""Admin API of the message trail (gateway.trail): ``GET /trail``.

``GET /trail?charger_id=&partner=&transaction_id=&action=&from=&to=&limit=&cursor=&order=``
answers a page ``{"entries": [...], "next_cursor": ...}`` (follow ``next_cursor`` until it
is null); ``format=ndjson`` (or ``Accept: application/x-ndjson``) streams every matching
entry instead, one JSON object per line (``limit`` then bounds the total). ``from`` is
inclusive, ``to`` exclusive (RFC 3339 times with their zone); ``order=desc`` gives the
newest first. ``transaction_id`` is an OCPP transaction id as the charger knows it, or
the id of a transaction of ``GET /transactions`` (then its charger's frames with its
OCPP id). A bad parameter: 400 naming it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import AwareDatetime, Field
from typing_extensions import TypedDict

from gateway.admin import openapi as api
from gateway.admin.http import ApiError, read_query, respond
from gateway.admin.schemas import _Body
from gateway.keys import STORE
from gateway.storage.base import Store, TrailEntry

NDJSON = "application/x-ndjson"
_EXPORT_PAGE = 1000

Text = Field(default=None, min_length=1, max_length=256)


class TrailQuery(_Body):
    charger_id: str | None = Text
    partner: str | None = Text
    transaction_id: str | None = Text
    action: str | None = Field(
        default=None, min_length=1, max_length=64, description="OCPP action or OCPI module"
    )
    from_: AwareDatetime | None = Field(default=None, alias="from", description="inclusive")
    to: AwareDatetime | None = Field(default=None, description="exclusive")
    limit: int | None = Field(
        default=None, ge=1, le=1000, description="page size (100); with ndjson, the total"
    )
    cursor: str | None = Field(default=None, pattern=r"^[0-9]{32}$", description="next_cursor")
    order: Literal["asc", "desc"] = "asc"
    format: Literal["json", "ndjson"] | None = None


class TrailEntryView(TypedDict):
    id: str
    at: str
    protocol: str
    direction: str
    charger_id: str | None
    partner: str | None
    action: str | None
    message_type: str | None
    message_id: str | None
    correlation_id: str | None
    status: str | None
    ocpi_status: int | None
    method: str | None
    path: str | None
    size: int
    transaction_id: str | None
    body: str | None
    truncated: bool


class TrailPage(TypedDict):
    entries: list[TrailEntryView]
    next_cursor: str | None


def _time(value: datetime) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def entry_view(entry: TrailEntry) -> TrailEntryView:
    return {
        "id": entry.id,
        "at": _time(entry.at),
        "protocol": entry.protocol,
        "direction": entry.direction,
        "charger_id": entry.charger_id,
        "partner": entry.partner,
        "action": entry.action,
        "message_type": entry.message_type,
        "message_id": entry.message_id,
        "correlation_id": entry.correlation_id,
        "status": entry.status,
        "ocpi_status": entry.ocpi_status,
        "method": entry.method,
        "path": entry.path,
        "size": entry.size,
        "transaction_id": entry.transaction_id,
        "body": entry.body,
        "truncated": entry.truncated,
    }


async def _filters(store: Store, q: TrailQuery) -> dict[str, object] | None:
    """The store's filters; None when nothing can match."""
    charger_id, tx = q.charger_id, q.transaction_id
    if tx is not None:
        known = await store.transactions.get(tx)
        if known is not None:  # the gateway's id: its charger's frames with its OCPP id
            if charger_id is not None and charger_id != known.charger_id:
                return None
            charger_id, tx = known.charger_id, known.ocpp_id
    return {
        "charger_id": charger_id,
        "partner": q.partner,
        "transaction_id": tx,
        "action": q.action,
        "since": q.from_,
        "until": q.to,
        "newest_first": q.order == "desc",
    }


async def get_trail(request: web.Request) -> web.StreamResponse:
    q: TrailQuery = read_query(request, TrailQuery)
    if q.from_ is not None and q.to is not None and q.to <= q.from_:
        raise ApiError(400, "to: must be later than from", "to")
    store = request.config_dict[STORE]
    filters = await _filters(store, q)
    wants_ndjson = q.format == "ndjson" or (
        q.format is None and NDJSON in request.headers.get("Accept", "")
    )
    if wants_ndjson:
        return await _export(request, store, filters, q)
    if filters is None:
        return respond(TrailPage(entries=[], next_cursor=None))
    try:
        entries, cursor = await store.trail.query(
            **filters,  # type: ignore[arg-type]
            after=q.cursor,
            limit=q.limit or 100,
        )
    except ValueError as exc:
        raise ApiError(400, f"cursor: {exc}", "cursor") from None
    return respond(TrailPage(entries=[entry_view(e) for e in entries], next_cursor=cursor))


async def _export(
    request: web.Request, store: Store, filters: dict[str, object] | None, q: TrailQuery
) -> web.StreamResponse:
    """Every matching entry, one JSON object per line, read page by page as it goes."""
    response = web.StreamResponse(headers={"Content-Type": NDJSON, "Cache-Control": "no-store"})
    await response.prepare(request)
    left = q.limit
    cursor = q.cursor
    while filters is not None and (left is None or left > 0):
        page_size = _EXPORT_PAGE if left is None else min(left, _EXPORT_PAGE)
        entries, cursor = await store.trail.query(
            **filters,  # type: ignore[arg-type]
            after=cursor,
            limit=page_size,
        )
        if entries:
            lines = "".join(json.dumps(entry_view(e)) + "\n" for e in entries)
            await response.write(lines.encode())
        if left is not None:
            left -= len(entries)
        if cursor is None:
            break
    await response.write_eof()
    return response


def trail_routes() -> list[api.Operation]:
    return [
        api.get(
            "/trail",
            get_trail,
            "The message trail: OCPP frames and OCPI requests and responses",
            description="Filters combine; `from` inclusive, `to` exclusive; follow "
            "`next_cursor` until null. `format=ndjson` (or `Accept: application/x-ndjson`) "
            "streams every matching entry, one JSON object per line.",
            query=TrailQuery,
            response=TrailPage,
        ),
    ]
