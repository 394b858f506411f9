"""Helpers shared by the admin API's handlers: JSON answers, errors, body and query parsing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from decimal import Decimal
from enum import Enum
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ocpi.transport import JsonTooDeepError, check_json_depth, check_json_text, field_path


class ApiError(Exception):
    def __init__(self, status: int, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def respond(data: Any, status: int = 200) -> web.Response:
    return web.json_response(
        data, status=status, dumps=lambda d: json.dumps(d, default=_json_default)
    )


async def respond_items(items: Sequence[Any], per_turn: int = 64) -> web.Response:
    """:func:`respond` of a list, encoded ``per_turn`` items at a time with a turn of
    the event loop between: the same text (``json.dumps`` of a list is its items' texts
    joined by ``", "``), without holding the loop for a whole fleet's views (10,000
    chargers: 81 ms in one go, tests/bench/README.md, thirteenth round)."""
    parts: list[str] = []
    for start in range(0, len(items), per_turn):
        if start:
            await asyncio.sleep(0)
        parts.extend(
            json.dumps(item, default=_json_default) for item in items[start : start + per_turn]
        )
    return web.Response(text=f"[{', '.join(parts)}]", status=200, content_type="application/json")


def error_response(status: int, reason: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": reason}
    if field:
        body["field"] = field
    return respond(body, status)


def parse_json(raw: bytes) -> Any:
    """The JSON of a request body; 400 with the reason when it is not JSON, or when
    it nests deeper than any body of this API could (refused before parsing, by the
    bound OCPI input has too: the parser and pydantic recurse)."""
    try:
        check_json_depth(raw)
        value = json.loads(raw)
    except JsonTooDeepError as exc:
        raise ApiError(400, f"body is not accepted: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except UnicodeDecodeError:
        raise ApiError(400, "body is not UTF-8") from None
    try:
        check_json_text(raw, value)
    except ValueError as exc:
        raise ApiError(400, f"body is not accepted: {exc}") from None
    return value


async def read_body(request: web.Request, model: type[BaseModel], *, empty_ok: bool = False) -> Any:
    raw = await request.read()
    if not raw.strip():
        if empty_ok:
            raw = b"{}"
        else:
            raise ApiError(400, "a JSON body is required")
    data = parse_json(raw)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = field_path(first["loc"]) or None
        raise ApiError(422, f"{field or 'body'}: {first['msg']}", field) from None


def read_query(request: web.Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = field_path(first["loc"]) or None
        raise ApiError(400, f"{field or 'query'}: {first['msg']}", field) from None
