"""The one at-rest encoding of the domain entities, shared by every backend.

Each entity is encoded to a JSON-able dict and back:

- ``Decimal`` as its exact string (``str(Decimal)`` round-trips bit for bit);
  floats are refused rather than silently rounded;
- ``datetime`` as ISO 8601 UTC with microseconds and a ``Z`` suffix, always 27
  characters, so that the text also sorts in time order; naive datetimes are
  refused with :class:`NaiveDatetimeError`;
- enums by value (validated on the way in, so nothing undecodable is stored);
- nested values (``IdToken``, ``EvseConfig``) as nested dicts and lists;
- roaming documents and outbox items carry JSON the callers built: it is checked
  (:func:`check_json`) so that what comes back is exactly what went in.

Decoders read optional fields with ``.get`` so that a record written before a
field existed still decodes (the field takes its default).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Final, TypeVar

from gateway.domain.clock import ensure_utc
from gateway.domain.models import (
    Charger,
    ChargerState,
    ConnectorState,
    ConnectorStatus,
    EvseConfig,
    IdToken,
    LocalToken,
    Measurand,
    MeterReading,
    OcppVersion,
    TokenType,
    Transaction,
    TransactionStatus,
)
from gateway.jsontext import compact
from gateway.storage.base import Document, OutboxItem, OutboxStatus

JsonDict = dict[str, Any]
_E = TypeVar("_E", bound=Enum)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A stateless, compact encoder (the C fast path of the json module, built once).
_dumps = compact


class NaiveDatetimeError(ValueError):
    """A datetime without a timezone was given to a store; times must be aware (UTC)."""


def dumps(value: JsonDict) -> str:
    return _dumps(value)


def loads(text: str | bytes) -> JsonDict:
    result: JsonDict = json.loads(text)
    return result


# -- scalars -------------------------------------------------------------------------


def utc(value: datetime, field: str) -> datetime:
    """``value`` as aware UTC; :class:`NaiveDatetimeError` naming ``field`` if naive."""
    try:
        return ensure_utc(value)
    except ValueError as exc:
        raise NaiveDatetimeError(f"{field}: {exc}") from None


def encode_time(value: datetime, field: str) -> str:
    return utc_text(utc(value, field))


def utc_text(value: datetime) -> str:
    """:func:`encode_time` of a time already made aware UTC (:func:`utc`): what
    ``isoformat(timespec="microseconds")`` writes, "+00:00" as "Z", from one %-format
    (isoformat goes through C's printf and the tzinfo's offset: a third of the time)."""
    return _MICROSECONDS % (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


_MICROSECONDS: Final = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"


def _opt_time(value: datetime | None, field: str) -> str | None:
    return None if value is None else encode_time(value, field)


def decode_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _opt_decode_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def time_key(value: datetime, field: str) -> int:
    """Integer microseconds since the Unix epoch (UTC): the sortable index key of a time.

    Exact as a Redis sorted-set score (a double) until the year 2255.
    """
    return utc_key(utc(value, field))


def utc_key(value: datetime) -> int:
    """:func:`time_key` of a time already made aware UTC (:func:`utc`)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _decimal(value: object, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"{field}: expected Decimal, got {type(value).__name__} (would not be exact)")


def _opt_decode_decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _enum(kind: type[_E], value: _E, field: str) -> Any:
    if type(value) is kind:  # a member already (the usual): its value, without kind(value)
        return value._value_
    try:
        return kind(value).value
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not a {kind.__name__}") from None


def check_page(limit: int, offset: int) -> None:
    """Validate the paging arguments of a listing (the same rule for every backend)."""
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must be >= 0 (got limit={limit}, offset={offset})")


# -- chargers --------------------------------------------------------------------------


def _encode_evse(evse: EvseConfig) -> JsonDict:
    return {
        "ocpp_id": evse.ocpp_id,
        "evse_uid": evse.evse_uid,
        "evse_id": evse.evse_id,
        "connectors": list(evse.connectors),
    }


def _decode_evse(data: Mapping[str, Any]) -> EvseConfig:
    return EvseConfig(
        ocpp_id=data["ocpp_id"],
        evse_uid=data["evse_uid"],
        evse_id=data.get("evse_id"),
        connectors=tuple(data.get("connectors", (1,))),
    )


def encode_charger(charger: Charger) -> JsonDict:
    return {
        "id": charger.id,
        "password_hash": charger.password_hash,
        "location_id": charger.location_id,
        "evses": [_encode_evse(evse) for evse in charger.evses],
        "certificate_cn": charger.certificate_cn,
        "created_at": _opt_time(charger.created_at, "Charger.created_at"),
        "local_list": charger.local_list,
        "local_list_max_entries": charger.local_list_max_entries,
    }


def decode_charger(data: Mapping[str, Any]) -> Charger:
    return Charger(
        id=data["id"],
        password_hash=data.get("password_hash"),
        location_id=data.get("location_id"),
        evses=tuple(_decode_evse(evse) for evse in data.get("evses", ())),
        certificate_cn=data.get("certificate_cn"),
        created_at=_opt_decode_time(data.get("created_at")),
        local_list=data.get("local_list"),
        local_list_max_entries=data.get("local_list_max_entries"),
    )


def encode_charger_state(state: ChargerState) -> JsonDict:
    return {
        "id": state.id,
        "connected": state.connected,
        "ocpp_version": (
            None
            if state.ocpp_version is None
            else _enum(OcppVersion, state.ocpp_version, "ChargerState.ocpp_version")
        ),
        "vendor": state.vendor,
        "model": state.model,
        "serial_number": state.serial_number,
        "firmware_version": state.firmware_version,
        "booted_at": _opt_time(state.booted_at, "ChargerState.booted_at"),
        "last_heartbeat": _opt_time(state.last_heartbeat, "ChargerState.last_heartbeat"),
        "connected_at": _opt_time(state.connected_at, "ChargerState.connected_at"),
        "disconnected_at": _opt_time(state.disconnected_at, "ChargerState.disconnected_at"),
    }


def decode_charger_state(data: Mapping[str, Any]) -> ChargerState:
    version = data.get("ocpp_version")
    return ChargerState(
        id=data["id"],
        connected=data.get("connected", False),
        ocpp_version=None if version is None else OcppVersion(version),
        vendor=data.get("vendor"),
        model=data.get("model"),
        serial_number=data.get("serial_number"),
        firmware_version=data.get("firmware_version"),
        booted_at=_opt_decode_time(data.get("booted_at")),
        last_heartbeat=_opt_decode_time(data.get("last_heartbeat")),
        connected_at=_opt_decode_time(data.get("connected_at")),
        disconnected_at=_opt_decode_time(data.get("disconnected_at")),
    )


# -- connectors ------------------------------------------------------------------------


def encode_connector(state: ConnectorState) -> JsonDict:
    return {
        "charger_id": state.charger_id,
        "evse_id": state.evse_id,
        "connector_id": state.connector_id,
        "status": _enum(ConnectorStatus, state.status, "ConnectorState.status"),
        "timestamp": encode_time(state.timestamp, "ConnectorState.timestamp"),
        "error_code": state.error_code,
        "info": state.info,
    }


def decode_connector(data: Mapping[str, Any]) -> ConnectorState:
    return ConnectorState(
        charger_id=data["charger_id"],
        evse_id=data["evse_id"],
        connector_id=data["connector_id"],
        status=ConnectorStatus(data["status"]),
        timestamp=decode_time(data["timestamp"]),
        error_code=data.get("error_code"),
        info=data.get("info"),
    )


# -- transactions ----------------------------------------------------------------------


def encode_reading(reading: MeterReading) -> JsonDict:
    return {
        "timestamp": encode_time(reading.timestamp, "MeterReading.timestamp"),
        "measurand": _enum(Measurand, reading.measurand, "MeterReading.measurand"),
        "value": _decimal(reading.value, "MeterReading.value"),
        "phase": reading.phase,
        "context": reading.context,
    }


def decode_reading(data: Mapping[str, Any]) -> MeterReading:
    return MeterReading(
        timestamp=decode_time(data["timestamp"]),
        measurand=Measurand(data["measurand"]),
        value=Decimal(data["value"]),
        phase=data.get("phase"),
        context=data.get("context"),
    )


def _encode_id_token(token: IdToken | None) -> JsonDict | None:
    return None if token is None else {"uid": token.uid, "type": token.type}


def _decode_id_token(data: Mapping[str, Any] | None) -> IdToken | None:
    return None if data is None else IdToken(uid=data["uid"], type=data["type"])


def encode_transaction(tx: Transaction) -> JsonDict:
    return {
        "id": tx.id,
        "charger_id": tx.charger_id,
        "ocpp_id": tx.ocpp_id,
        "evse_id": tx.evse_id,
        "connector_id": tx.connector_id,
        "started_at": encode_time(tx.started_at, "Transaction.started_at"),
        "status": _enum(TransactionStatus, tx.status, "Transaction.status"),
        "id_token": _encode_id_token(tx.id_token),
        "meter_start_wh": _decimal(tx.meter_start_wh, "Transaction.meter_start_wh"),
        "meter_stop_wh": _decimal(tx.meter_stop_wh, "Transaction.meter_stop_wh"),
        "stopped_at": _opt_time(tx.stopped_at, "Transaction.stopped_at"),
        "stop_reason": tx.stop_reason,
        "stop_id_token": _encode_id_token(tx.stop_id_token),
        "remote_start_id": tx.remote_start_id,
        "reservation_id": tx.reservation_id,
        "charging_state": tx.charging_state,
        "recovered": tx.recovered,
        "updated_at": _opt_time(tx.updated_at, "Transaction.updated_at"),
        "authorization_reference": tx.authorization_reference,
    }


def decode_transaction(data: Mapping[str, Any]) -> Transaction:
    return Transaction(
        id=data["id"],
        charger_id=data["charger_id"],
        ocpp_id=data["ocpp_id"],
        evse_id=data["evse_id"],
        connector_id=data["connector_id"],
        started_at=decode_time(data["started_at"]),
        status=TransactionStatus(data["status"]),
        id_token=_decode_id_token(data.get("id_token")),
        meter_start_wh=_opt_decode_decimal(data.get("meter_start_wh")),
        meter_stop_wh=_opt_decode_decimal(data.get("meter_stop_wh")),
        stopped_at=_opt_decode_time(data.get("stopped_at")),
        stop_reason=data.get("stop_reason"),
        stop_id_token=_decode_id_token(data.get("stop_id_token")),
        remote_start_id=data.get("remote_start_id"),
        reservation_id=data.get("reservation_id"),
        charging_state=data.get("charging_state"),
        recovered=data.get("recovered", False),
        updated_at=_opt_decode_time(data.get("updated_at")),
        # Absent from records written before it was kept.
        authorization_reference=data.get("authorization_reference"),
    )


# -- tokens ----------------------------------------------------------------------------


def encode_token(token: LocalToken) -> JsonDict:
    return {
        "uid": token.uid,
        "valid": token.valid,
        "expiry": _opt_time(token.expiry, "LocalToken.expiry"),
        "parent_id": token.parent_id,
        "type": _enum(TokenType, token.type, "LocalToken.type"),
        "contract_id": token.contract_id,
        "updated_at": _opt_time(token.updated_at, "LocalToken.updated_at"),
    }


def decode_token(data: Mapping[str, Any]) -> LocalToken:
    return LocalToken(
        uid=data["uid"],
        valid=data.get("valid", True),
        expiry=_opt_decode_time(data.get("expiry")),
        parent_id=data.get("parent_id"),
        type=TokenType(data.get("type", TokenType.RFID)),
        contract_id=data.get("contract_id"),
        updated_at=_opt_decode_time(data.get("updated_at")),
    )


# -- roaming: JSON documents and outbox items ------------------------------------------

# Deeper than this is refused (it is also how a circular structure is caught).
MAX_JSON_DEPTH = 100


class _NotJson(Exception):
    """Raised deep inside ``check_json``; carries the path back up to where it started."""

    def __init__(self, error: type[Exception], message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.path: list[str] = []


def check_json(value: object, field: str) -> None:
    """Refuse what would not come back unchanged from a JSON round trip.

    Allowed: ``str``, ``int``, ``float`` (finite), ``bool``, ``None``, and ``list`` and
    ``dict`` (with ``str`` keys) of those. ``TypeError`` for anything else (``Decimal``,
    ``datetime``, ``tuple``, ``set``, non-``str`` keys...), ``ValueError`` for NaN or
    infinity and for nesting deeper than :data:`MAX_JSON_DEPTH`; the message names the
    offending path, e.g. ``Document.data['a'][2]``.
    """
    try:
        _check_json(value, 0)
    except _NotJson as exc:
        raise exc.error(f"{field}{''.join(reversed(exc.path))}: {exc.message}") from None


def _check_json(value: object, depth: int) -> None:
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _NotJson(ValueError, f"{value!r} is not valid JSON")
        return
    if isinstance(value, dict | list) and depth >= MAX_JSON_DEPTH:
        raise _NotJson(ValueError, f"nested deeper than {MAX_JSON_DEPTH} levels (or circular)")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotJson(TypeError, f"key {key!r} is a {type(key).__name__}, not a str")
            try:
                _check_json(item, depth + 1)
            except _NotJson as exc:
                exc.path.append(f"[{key!r}]")
                raise
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            try:
                _check_json(item, depth + 1)
            except _NotJson as exc:
                exc.path.append(f"[{index}]")
                raise
        return
    raise _NotJson(
        TypeError,
        f"a {type(value).__name__} is not JSON (str, int, float, bool, None, list, dict only)",
    )


def _check_str(value: object, field: str, *, optional: bool = False) -> None:
    if isinstance(value, str) or (optional and value is None):
        return
    expected = "str or None" if optional else "str"
    raise TypeError(f"{field}: expected {expected}, got {type(value).__name__}")


def time_from_key(key: int) -> datetime:
    """The aware UTC datetime of a :func:`time_key` (exact, to the microsecond)."""
    return _EPOCH + timedelta(microseconds=key)


def encode_document(doc: Document) -> JsonDict:
    """Validate and encode a document; ``data`` must pass :func:`check_json`."""
    _check_str(doc.key, "Document.key")
    _check_str(doc.owner, "Document.owner", optional=True)
    if not isinstance(doc.data, dict):
        raise TypeError(f"Document.data: expected dict, got {type(doc.data).__name__}")
    check_json(doc.data, "Document.data")
    return {
        "key": doc.key,
        "owner": doc.owner,
        "last_updated": encode_time(doc.last_updated, "Document.last_updated"),
        "data": doc.data,
    }


def decode_document(data: Mapping[str, Any]) -> Document:
    return Document(
        key=data["key"],
        data=data["data"],
        last_updated=decode_time(data["last_updated"]),
        owner=data.get("owner"),
    )


def encode_outbox_item(item: OutboxItem) -> JsonDict:
    """Validate a *new* item and encode its immutable part.

    Its state (``seq``, ``status``, ``attempts``, ``last_error``, ``next_attempt_at``,
    ``completed_at``) is kept by the backends in columns or hash fields of their own,
    so that a state change is a few small updates; :func:`decode_outbox_item` puts both
    back together.
    Validates the state too: a new item is PENDING (``ValueError`` otherwise), with
    ``attempts >= 0``, an aware ``next_attempt_at`` and no ``completed_at``.
    """
    for name in ("id", "partner_id", "ordering_key", "method", "url"):
        _check_str(getattr(item, name), f"OutboxItem.{name}")
    _check_str(item.module, "OutboxItem.module", optional=True)
    _check_str(item.last_error, "OutboxItem.last_error", optional=True)
    for name in ("body", "meta"):
        value = getattr(item, name)
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"OutboxItem.{name}: expected dict or None, got {type(value).__name__}")
        check_json(value, f"OutboxItem.{name}")
    if item.status != OutboxStatus.PENDING:
        raise ValueError(f"OutboxItem.status: a new item is pending, not {item.status!r}")
    if not isinstance(item.attempts, int) or isinstance(item.attempts, bool) or item.attempts < 0:
        raise ValueError(f"OutboxItem.attempts: expected an int >= 0, got {item.attempts!r}")
    utc(item.next_attempt_at, "OutboxItem.next_attempt_at")
    if item.completed_at is not None:
        raise ValueError("OutboxItem.completed_at: a new item is not completed")
    return {
        "id": item.id,
        "partner_id": item.partner_id,
        "ordering_key": item.ordering_key,
        "method": item.method,
        "url": item.url,
        "body": item.body,
        "created_at": encode_time(item.created_at, "OutboxItem.created_at"),
        "module": item.module,
        "meta": item.meta,
    }


def decode_outbox_item(
    data: Mapping[str, Any],
    *,
    seq: int,
    status: str,
    attempts: int,
    last_error: str | None,
    next_attempt_at: int,
    completed_at: int | None = None,
) -> OutboxItem:
    """An item from its immutable part and its state (``next_attempt_at``,
    ``completed_at``: time_keys)."""
    return OutboxItem(
        id=data["id"],
        partner_id=data["partner_id"],
        ordering_key=data["ordering_key"],
        method=data["method"],
        url=data["url"],
        body=data.get("body"),
        created_at=decode_time(data["created_at"]),
        next_attempt_at=time_from_key(next_attempt_at),
        seq=seq,
        attempts=attempts,
        status=OutboxStatus(status),
        last_error=last_error,
        module=data.get("module"),
        meta=data.get("meta"),
        completed_at=None if completed_at is None else time_from_key(completed_at),
    )
