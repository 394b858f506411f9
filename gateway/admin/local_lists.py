"""Admin API: a charger's local authorization list, its cache and DataTransfer.

``GET /admin/chargers/{id}/local-list`` shows what the gateway recorded of the list
(``gateway.locallist``), ``POST .../local-list/sync`` sends a full update now,
``POST .../clear-cache`` and ``POST .../data-transfer`` carry ClearCache and a
DataTransfer to the charger and answer with its status (and data).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import Field
from typing_extensions import TypedDict

from gateway.admin import openapi as api
from gateway.admin.http import ApiError, read_body, respond
from gateway.admin.schemas import _Body
from gateway.domain.commands import ClearCache, Command, CommandResult, DataTransfer
from gateway.domain.errors import (
    ChargerNotConnected,
    ChargerRejected,
    ChargerTimeout,
    CommandNotSupported,
)
from gateway.domain.models import Charger
from gateway.keys import ROUTER, STORE
from gateway.locallist.service import LOCAL_LISTS, Busy, ListOff, ListRecord

_CHARGER_ID = "the charge point id (1 to 48 characters), as in its WebSocket URL"


class LocalListView(TypedDict):
    """What the gateway recorded of a charger's local authorization list."""

    charger_id: str
    enabled: bool
    version_sent: int
    version_acked: int
    charger_version: int | None
    last_result: str | None
    last_update: str | None
    last_sync_at: datetime | None
    entries: int
    truncated: bool
    left_out_count: int
    left_out: list[str]
    max_entries: int | None
    charger_max_entries: int | None
    per_message: int | None
    bytes_per_message: int | None
    error: str | None


class ChargerAnswer(TypedDict):
    """The charger's answer: its status as it worded it, and the rest of its answer."""

    status: str
    data: Any


class DataTransferBody(_Body):
    vendor_id: str = Field(min_length=1, max_length=255, description="1.6 / 2.0.1 vendorId")
    message_id: str | None = Field(default=None, min_length=1, max_length=50)
    data: Any = Field(
        default=None,
        description="text (1.6 carries text only: other JSON goes as its JSON text), or any"
        " JSON value for 2.0.1",
    )

    def to_command(self) -> DataTransfer:
        if self.data is None or isinstance(self.data, str):
            return DataTransfer(self.vendor_id, self.message_id, self.data)
        text = json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)
        return DataTransfer(self.vendor_id, self.message_id, text, data_is_json=True)


def list_view(record: ListRecord, enabled: bool) -> LocalListView:
    return {
        "charger_id": record.charger_id,
        "enabled": enabled,
        "version_sent": record.version_sent,
        "version_acked": record.version_acked,
        "charger_version": record.reported_version,
        "last_result": record.last_result,
        "last_update": record.last_update,
        "last_sync_at": record.last_sync_at,
        "entries": len(record.entries),
        "truncated": record.truncated,
        "left_out_count": record.left_out_count,
        "left_out": list(record.left_out),
        "max_entries": record.max_entries,
        "charger_max_entries": record.reported_max,
        "per_message": record.per_message,
        "bytes_per_message": record.bytes_per_message,
        "error": record.error,
    }


async def _charger(request: web.Request) -> Charger:
    cp_id = request.match_info["charger_id"]
    if not 1 <= len(cp_id) <= 48:
        raise ApiError(400, "charger id must be 1 to 48 characters", "charger_id")
    charger = await request.config_dict[STORE].chargers.get(cp_id)
    if charger is None:
        raise ApiError(404, f"charger {cp_id!r} not found")
    return charger


def _charger_error(exc: Exception) -> ApiError:
    if isinstance(exc, ChargerNotConnected):
        return ApiError(409, str(exc))
    if isinstance(exc, ChargerTimeout):
        return ApiError(504, str(exc))
    if isinstance(exc, ChargerRejected):
        return ApiError(502, f"charger answered with a CALLERROR: {exc}")
    return ApiError(422, str(exc))


async def _send(request: web.Request, charger_id: str, command: Command) -> CommandResult:
    try:
        # The one command path: a local call, or routed to the process holding it.
        return await request.config_dict[ROUTER].send(charger_id, command)
    except (ChargerNotConnected, ChargerTimeout, ChargerRejected, CommandNotSupported) as exc:
        raise _charger_error(exc) from None


async def get_local_list(request: web.Request) -> web.Response:
    charger = await _charger(request)
    lists = request.config_dict[LOCAL_LISTS]
    record = await lists.record(charger.id)
    return respond(list_view(record, lists.enabled(charger)))


async def sync_local_list(request: web.Request) -> web.Response:
    charger = await _charger(request)
    lists = request.config_dict[LOCAL_LISTS]
    try:
        record = await lists.sync(charger.id, full=True)
    except ListOff as exc:
        raise ApiError(409, f"{exc}: set local_list on the charger or GATEWAY_LOCAL_LIST") from None
    except Busy as exc:
        raise ApiError(409, str(exc)) from None
    except (ChargerNotConnected, ChargerTimeout, ChargerRejected, CommandNotSupported) as exc:
        raise _charger_error(exc) from None
    return respond(list_view(record, True))


async def clear_cache(request: web.Request) -> web.Response:
    charger = await _charger(request)
    result = await _send(request, charger.id, ClearCache())
    answer: ChargerAnswer = {"status": str(result.data.get("status", "")), "data": result.data}
    return respond(answer)


async def data_transfer(request: web.Request) -> web.Response:
    charger = await _charger(request)
    body: DataTransferBody = await read_body(request, DataTransferBody)
    result = await _send(request, charger.id, body.to_command())
    answer: ChargerAnswer = {
        "status": str(result.data.get("status", "")),
        "data": result.data.get("data"),
    }
    return respond(answer)


def local_list_routes() -> list[api.Operation]:
    params = {"charger_id": _CHARGER_ID}
    return [
        api.get(
            "/chargers/{charger_id}/local-list",
            get_local_list,
            "The charger's local authorization list as the gateway last sent it",
            path_params=params,
            response=LocalListView,
            errors={404: "no such charger"},
            tag="local lists",
        ),
        api.post(
            "/chargers/{charger_id}/local-list/sync",
            sync_local_list,
            "Send the charger a full local authorization list now",
            description="Answers with the record once the charger answered every message;"
            " `last_result` is its last answer (Accepted, Failed, VersionMismatch,"
            " NotSupported).",
            path_params=params,
            response=LocalListView,
            errors={
                **api.CHARGER_ERRORS,
                409: "the charger is not connected, its list is off or being updated",
            },
            tag="local lists",
        ),
        api.post(
            "/chargers/{charger_id}/clear-cache",
            clear_cache,
            "Clear the charger's authorization cache (ClearCache)",
            path_params=params,
            response=ChargerAnswer,
            errors=api.CHARGER_ERRORS,
            tag="local lists",
        ),
        api.post(
            "/chargers/{charger_id}/data-transfer",
            data_transfer,
            "Send the charger a DataTransfer; its status and data",
            path_params=params,
            body=DataTransferBody,
            response=ChargerAnswer,
            errors=api.CHARGER_ERRORS,
            tag="local lists",
        ),
    ]
