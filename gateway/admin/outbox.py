"""Admin API for the push outbox: list and inspect items, replay or discard failed ones.

``GET /outbox?status=&partner_id=&limit=&offset=&include_body=`` lists items by
``seq`` (without their bodies unless ``include_body=true``); ``GET /outbox/{id}`` is
one item with its body; ``POST /outbox/{id}/replay`` (FAILED -> PENDING, due now) and
``POST /outbox/{id}/discard`` (FAILED -> DONE, unblocking its ordering key) answer the
item, 404 for an unknown id and 409 when the item is not FAILED.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from gateway.admin import openapi as api
from gateway.admin.http import ApiError, read_query, respond
from gateway.admin.schemas import _Body
from gateway.admin.views import OutboxItemView
from gateway.roaming.outbox import OUTBOX, Outbox
from gateway.storage.base import OutboxItem, OutboxStatus


class OutboxQuery(_Body):
    status: OutboxStatus | None = None
    partner_id: str | None = Field(default=None, min_length=1)
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
    include_body: bool = False


def outbox_item_view(item: OutboxItem, *, include_body: bool = True) -> OutboxItemView:
    view: OutboxItemView = {
        "id": item.id,
        "seq": item.seq,
        "status": item.status,
        "partner_id": item.partner_id,
        "module": item.module,
        "ordering_key": item.ordering_key,
        "method": item.method,
        "url": item.url,
        "attempts": item.attempts,
        "last_error": item.last_error,
        "created_at": item.created_at,
        "next_attempt_at": item.next_attempt_at,
        "meta": item.meta,
    }
    if include_body:
        view["body"] = item.body
    return view


def outbox_routes() -> list[api.Operation]:
    def _outbox(request: web.Request) -> Outbox:
        return request.config_dict[OUTBOX]

    async def _get(request: web.Request) -> OutboxItem:
        item_id = request.match_info["item_id"]
        item = await _outbox(request).get(item_id)
        if item is None:
            raise ApiError(404, f"outbox item {item_id!r} not found")
        return item

    async def list_items(request: web.Request) -> web.Response:
        q: OutboxQuery = read_query(request, OutboxQuery)
        items = await _outbox(request).list(
            status=q.status, partner_id=q.partner_id, offset=q.offset, limit=q.limit
        )
        return respond([outbox_item_view(i, include_body=q.include_body) for i in items])

    async def get_one(request: web.Request) -> web.Response:
        return respond(outbox_item_view(await _get(request)))

    async def replay(request: web.Request) -> web.Response:
        item = await _get(request)
        outbox = _outbox(request)
        if not await outbox.replay(item.id):
            raise ApiError(409, f"outbox item {item.id!r} is {_status(await outbox.get(item.id))}")
        return respond(outbox_item_view(await _get(request)))

    async def discard(request: web.Request) -> web.Response:
        item = await _get(request)
        outbox = _outbox(request)
        if not await outbox.discard(item.id):
            raise ApiError(409, f"outbox item {item.id!r} is {_status(await outbox.get(item.id))}")
        return respond(outbox_item_view(await _get(request)))

    item = {"item_id": "the push's id"}
    not_failed = {404: "no such push", 409: "the push is not failed"}
    return [
        api.get(
            "/outbox",
            list_items,
            "Pushes to partners, by seq (bodies with include_body=true)",
            query=OutboxQuery,
            response=list[OutboxItemView],
        ),
        api.get(
            "/outbox/{item_id}",
            get_one,
            "One push with its body",
            path_params=item,
            response=OutboxItemView,
            errors={404: "no such push"},
        ),
        api.post(
            "/outbox/{item_id}/replay",
            replay,
            "Retry a failed push now",
            path_params=item,
            response=OutboxItemView,
            errors=not_failed,
        ),
        api.post(
            "/outbox/{item_id}/discard",
            discard,
            "Drop a failed push (the later pushes of its object go on)",
            path_params=item,
            response=OutboxItemView,
            errors=not_failed,
        ),
    ]


def _status(item: OutboxItem | None) -> str:
    if item is None:
        return "gone"
    return f"{item.status.value}, not failed"
