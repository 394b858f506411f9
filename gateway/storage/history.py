"""The at-rest encoding of status history entries (:class:`~gateway.storage.base.StatusEntry`),
shared by both backends, and the checks every store applies before writing one."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

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


# The history's flush encodes entries for up to ENCODE_SLICE seconds between two turns of
# the event loop, checking the time every ENCODE_CHUNK entries (:func:`encode_all`).
ENCODE_SLICE: Final = 0.002
ENCODE_CHUNK: Final = 32


async def encode_all(entries: Sequence[StatusEntry]) -> list[tuple[int, str]]:
    """Each entry's time key and stored JSON, in order (``ValueError`` as :func:`encode`,
    before anything is written), letting the event loop go every :data:`ENCODE_SLICE`
    seconds: the history's flush of a second's changes (thousands of entries at 10,000
    chargers) otherwise held every charger's answer for up to 20 ms once a second
    (``tests/bench/README.md``, the steady rate's p99). By time, not by count: with the
    loop saturated, each turn given up waits behind every charger's frames (tens of ms),
    and a flush let go every few entries fell behind what it had to write."""
    rows: list[tuple[int, str]] = []
    clock = time.perf_counter
    until = clock() + ENCODE_SLICE
    for start in range(0, len(entries), ENCODE_CHUNK):
        if clock() > until:
            await asyncio.sleep(0)
            until = clock() + ENCODE_SLICE
        rows += [encode_row(entry) for entry in entries[start : start + ENCODE_CHUNK]]
    return rows


_KIND: Final = {kind: kind.value for kind in StatusKind}
_STATUS: Final = frozenset(status.value for status in ConnectorStatus)
_BOUND: Final = 2**63
_text = json.encoder.encode_basestring_ascii  # what the json module writes a str as


def encode_row(entry: StatusEntry) -> tuple[int, str]:
    """``(codec.time_key(entry.at), codec.dumps(encode(entry)))``, the same checks and the
    same text (``tests/storage/test_history_encoding.py``), at a third of the cost: the time
    made UTC once and the JSON written directly when every field has its plain type (the
    history's flush encodes every status change of the fleet; the others go the long
    way)."""
    try:
        kind = _KIND.get(entry.kind)
    except TypeError:  # unhashable: the long way refuses it
        kind = None
    cid, evse, connector = entry.charger_id, entry.evse_id, entry.connector_id
    status, error, detail = entry.status, entry.error_code, entry.detail
    if (
        kind is None
        or type(cid) is not str
        or not cid
        or not (evse is None or (type(evse) is int and -_BOUND <= evse < _BOUND))
        or not (connector is None or (type(connector) is int and -_BOUND <= connector < _BOUND))
        or not (status is None or (type(status) is str and status in _STATUS))
        or not (error is None or type(error) is str)
        or not (detail is None or type(detail) is str)
        or (kind == "connector" and (evse is None or connector is None or status is None))
    ):
        return codec.time_key(entry.at, "StatusEntry.at"), codec.dumps(encode(entry))
    at = codec.utc(entry.at, "StatusEntry.at")  # once, for the key and the text
    parts = [f'{{"charger_id":{_text(cid)},"at":"{codec.utc_text(at)}","kind":"{kind}"']
    if evse is not None:
        parts.append(f',"evse_id":{evse}')
    if connector is not None:
        parts.append(f',"connector_id":{connector}')
    if status is not None:
        parts.append(f',"status":{_text(status)}')
    if error is not None:
        parts.append(f',"error_code":{_text(error)}')
    if detail is not None:
        parts.append(f',"detail":{_text(detail)}')
    parts.append("}")
    return codec.utc_key(at), "".join(parts)


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
