"""The at-rest encoding of the device model (:mod:`gateway.domain.device_model`), shared by
both backends: an attribute is stored as its description (``meta``: mutability, flags and
the variable's characteristics, which only a report changes) and its value (``value``,
its time and source, which SetVariables and GetVariables change too), so that a value
update never rewrites, or needs to read, what a report described. Also the alerts and
the report states, and the checks every store applies before writing."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from gateway.domain.device_model import (
    Alert,
    AttributeType,
    Characteristics,
    DeviceVariable,
    ReportStatus,
    ValueUpdate,
    VariableKey,
)
from gateway.storage import codec

# Report states kept per charger (the newest by first news of them).
REPORTS_KEPT = 20


def check_charger(charger_id: str) -> None:
    if not charger_id:
        raise ValueError("a device model needs its charger id")


def _key(key: VariableKey) -> dict[str, Any]:
    data: dict[str, Any] = {"c": key.component, "v": key.variable}
    if key.component_instance is not None:
        data["ci"] = key.component_instance
    if key.evse_id is not None:
        data["e"] = key.evse_id
    if key.connector_id is not None:
        data["cn"] = key.connector_id
    if key.variable_instance is not None:
        data["vi"] = key.variable_instance
    return data


def _decode_key(data: Mapping[str, Any]) -> VariableKey:
    return VariableKey(
        component=data["c"],
        variable=data["v"],
        component_instance=data.get("ci"),
        evse_id=data.get("e"),
        connector_id=data.get("cn"),
        variable_instance=data.get("vi"),
    )


def encode_meta(row: DeviceVariable) -> str:
    """The description part of an attribute (its key included, to read it back)."""
    data: dict[str, Any] = {"k": _key(row.key), "t": AttributeType(row.attribute_type).value}
    if row.mutability is not None:
        data["m"] = row.mutability
    if row.persistent is not None:
        data["p"] = row.persistent
    if row.constant is not None:
        data["co"] = row.constant
    ch = row.characteristics
    if ch is not None:
        chars: dict[str, Any] = {"dt": ch.data_type, "sm": ch.supports_monitoring}
        if ch.unit is not None:
            chars["u"] = ch.unit
        if ch.min_limit is not None:
            chars["min"] = str(ch.min_limit)
        if ch.max_limit is not None:
            chars["max"] = str(ch.max_limit)
        if ch.values_list is not None:
            chars["vl"] = ch.values_list
        data["ch"] = chars
    return codec.dumps(data)


def bare_meta(key: VariableKey, attribute_type: AttributeType) -> str:
    """The description of an attribute no report described yet (a value set or read)."""
    return codec.dumps({"k": _key(key), "t": AttributeType(attribute_type).value})


def encode_value(value: str | None, at: Any, source: str) -> str:
    data: dict[str, Any] = {"at": codec.encode_time(at, "updated_at"), "s": source}
    if value is not None:
        data["v"] = value
    return codec.dumps(data)


def row_value(row: DeviceVariable) -> str:
    return encode_value(row.value, row.updated_at, row.source)


def update_value(update: ValueUpdate) -> str:
    return encode_value(update.value, update.at, update.source)


def decode(
    charger_id: str, meta: str | bytes, value: str | bytes | None, reboot: bool
) -> DeviceVariable:
    m = codec.loads(meta)
    v = codec.loads(value) if value is not None else {}
    chars = m.get("ch")
    return DeviceVariable(
        charger_id=charger_id,
        key=_decode_key(m["k"]),
        attribute_type=AttributeType(m["t"]),
        value=v.get("v"),
        updated_at=codec.decode_time(v["at"]) if "at" in v else codec.time_from_key(0),
        mutability=m.get("m"),
        persistent=m.get("p"),
        constant=m.get("co"),
        characteristics=None
        if chars is None
        else Characteristics(
            data_type=chars["dt"],
            supports_monitoring=chars["sm"],
            unit=chars.get("u"),
            min_limit=None if "min" not in chars else Decimal(chars["min"]),
            max_limit=None if "max" not in chars else Decimal(chars["max"]),
            values_list=chars.get("vl"),
        ),
        source=v.get("s", "report"),
        reboot_required=reboot,
    )


def check_row(charger_id: str, row: DeviceVariable) -> None:
    """``ValueError`` for a row no reader could use (another charger's, an empty name, a
    naive time)."""
    if row.charger_id != charger_id:
        raise ValueError(f"a row of charger {row.charger_id!r} among {charger_id!r}'s")
    if not row.key.component or not row.key.variable:
        raise ValueError("component and variable names must not be empty")
    AttributeType(row.attribute_type)
    codec.utc(row.updated_at, "updated_at")


def check_update(update: ValueUpdate) -> None:
    if not update.key.component or not update.key.variable:
        raise ValueError("component and variable names must not be empty")
    AttributeType(update.attribute_type)
    codec.utc(update.at, "at")


def value_search(value: str | None) -> str:
    return (value or "").casefold()


# -- alerts ------------------------------------------------------------------------------


def encode_alert(alert: Alert) -> str:
    """The alert without its ``seq`` and ``cleared_at`` (the store's own, kept apart)."""
    if alert.trigger not in ("Alerting", "Delta", "Periodic"):
        raise ValueError(f"trigger {alert.trigger!r}: Alerting, Delta or Periodic")
    data: dict[str, Any] = {
        "e": alert.event_id,
        "ts": codec.encode_time(alert.timestamp, "timestamp"),
        "tr": alert.trigger,
        "av": alert.actual_value,
        "nt": alert.event_notification_type,
        "k": _key(alert.key),
        "at": codec.encode_time(alert.received_at, "received_at"),
    }
    optional = {
        "cl": alert.cleared or None,
        "sv": alert.severity,
        "tc": alert.tech_code,
        "ti": alert.tech_info,
        "ca": alert.cause,
        "tx": alert.transaction_id,
        "mid": alert.variable_monitoring_id,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    return codec.dumps(data)


def decode_alert(charger_id: str, seq: int, text: str | bytes, cleared_at: int | None) -> Alert:
    d = codec.loads(text)
    return Alert(
        charger_id=charger_id,
        event_id=d["e"],
        timestamp=codec.decode_time(d["ts"]),
        trigger=d["tr"],
        actual_value=d["av"],
        event_notification_type=d["nt"],
        key=_decode_key(d["k"]),
        received_at=codec.decode_time(d["at"]),
        cleared=bool(d.get("cl", False)),
        severity=d.get("sv"),
        tech_code=d.get("tc"),
        tech_info=d.get("ti"),
        cause=d.get("ca"),
        transaction_id=d.get("tx"),
        variable_monitoring_id=d.get("mid"),
        seq=seq,
        cleared_at=None if cleared_at is None else codec.time_from_key(cleared_at),
    )


def check_keep(keep: int) -> None:
    if keep < 1:
        raise ValueError(f"keep must be at least 1, not {keep}")


# -- report states -----------------------------------------------------------------------


def encode_report(status: ReportStatus) -> str:
    data: dict[str, Any] = {"seq": sorted(status.seq_nos), "n": status.variables}
    if status.kind is not None:
        data["kind"] = status.kind
    if status.requested_at is not None:
        data["req"] = codec.encode_time(status.requested_at, "requested_at")
    if status.answer is not None:
        data["ans"] = status.answer
    if status.last_seq_no is not None:
        data["last"] = status.last_seq_no
    if status.updated_at is not None:
        data["upd"] = codec.encode_time(status.updated_at, "updated_at")
    return codec.dumps(data)


def decode_report(charger_id: str, request_id: int, text: str | bytes) -> ReportStatus:
    d = codec.loads(text)
    return ReportStatus(
        charger_id=charger_id,
        request_id=request_id,
        kind=d.get("kind"),
        requested_at=None if "req" not in d else codec.decode_time(d["req"]),
        answer=d.get("ans"),
        seq_nos=frozenset(d.get("seq", ())),
        last_seq_no=d.get("last"),
        variables=d.get("n", 0),
        updated_at=None if "upd" not in d else codec.decode_time(d["upd"]),
    )


def check_report_part(seq_no: int, request_id: int) -> None:
    if seq_no < 0:
        raise ValueError(f"seqNo {seq_no} is negative")
    if request_id < 0:
        raise ValueError(f"requestId {request_id} is negative")
