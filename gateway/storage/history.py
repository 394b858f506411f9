"""The at-rest encoding of status history entries (:class:`~gateway.storage.base.StatusEntry`),
shared by both backends, and the checks every store applies before writing one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.domain.models import ConnectorStatus
from gateway.storage import codec
from gateway.storage.base import StatusEntry, StatusKind


def check_entry(entry: StatusEntry) -> None:
    """``ValueError`` (a naive time: ``NaiveDatetimeError``) for an entry no report could
    read: a connector entry without its EVSE, connector or a known status, or an empty
    charger id."""
    if not entry.charger_id:
        raise ValueError("a status entry needs a charger id")
    codec.utc(entry.at, "StatusEntry.at")
    kind = StatusKind(entry.kind)
    if kind is StatusKind.CONNECTOR:
        if entry.evse_id is None or entry.connector_id is None or entry.status is None:
            raise ValueError("a connector status entry needs evse_id, connector_id and status")
        ConnectorStatus(entry.status)
    for value in (entry.evse_id, entry.connector_id):
        if value is not None and not -(2**63) <= value < 2**63:
            raise ValueError(f"{value} does not fit in 64 bits")


def encode(entry: StatusEntry) -> dict[str, Any]:
    check_entry(entry)
    data: dict[str, Any] = {
        "charger_id": entry.charger_id,
        "at": codec.encode_time(entry.at, "StatusEntry.at"),
        "kind": StatusKind(entry.kind).value,
    }
    optional = {
        "evse_id": entry.evse_id,
        "connector_id": entry.connector_id,
        "status": entry.status,
        "error_code": entry.error_code,
        "detail": entry.detail,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    return data


def decode(data: Mapping[str, Any]) -> StatusEntry:
    return StatusEntry(
        charger_id=data["charger_id"],
        at=codec.decode_time(data["at"]),
        kind=StatusKind(data["kind"]),
        evse_id=data.get("evse_id"),
        connector_id=data.get("connector_id"),
        status=data.get("status"),
        error_code=data.get("error_code"),
        detail=data.get("detail"),
    )
