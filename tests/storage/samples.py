"""Builders of domain entities for the storage tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

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
from gateway.storage.base import Document, OutboxItem

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def full_charger(charger_id: str = "CP-1") -> Charger:
    return Charger(
        id=charger_id,
        password_hash="pbkdf2$sha256$1$salt$hash",
        location_id="LOC-1",
        evses=(
            EvseConfig(ocpp_id=1, evse_uid="UID-1", evse_id="DE*ABC*E1", connectors=(1, 2)),
            EvseConfig(ocpp_id=2, evse_uid="UID-2"),
        ),
        certificate_cn="cp-1.example",
        created_at=T0,
    )


def full_charger_state(charger_id: str = "CP-1") -> ChargerState:
    return ChargerState(
        id=charger_id,
        connected=True,
        ocpp_version=OcppVersion.V201,
        vendor="Vendor",
        model="Model X",
        serial_number="SN-1",
        firmware_version="1.2.3",
        booted_at=at(1),
        last_heartbeat=at(2),
        connected_at=at(0),
        disconnected_at=at(-100),
    )


def connector(
    charger_id: str = "CP-1",
    evse_id: int = 1,
    connector_id: int = 1,
    status: ConnectorStatus = ConnectorStatus.AVAILABLE,
    **fields: Any,
) -> ConnectorState:
    return ConnectorState(charger_id, evse_id, connector_id, status, fields.pop("ts", T0), **fields)


def transaction(
    tx_id: str = "tx-1",
    charger_id: str = "CP-1",
    ocpp_id: str | None = None,
    started_at: datetime = T0,
    **fields: Any,
) -> Transaction:
    """A minimal transaction (every optional field at its default) unless given."""
    return Transaction(
        id=tx_id,
        charger_id=charger_id,
        ocpp_id=tx_id if ocpp_id is None else ocpp_id,
        evse_id=fields.pop("evse_id", 1),
        connector_id=fields.pop("connector_id", 1),
        started_at=started_at,
        **fields,
    )


def full_transaction(tx_id: str = "tx-full", charger_id: str = "CP-1") -> Transaction:
    """Every field set, with Decimals whose exact digits matter."""
    return Transaction(
        id=tx_id,
        charger_id=charger_id,
        ocpp_id="1234567",
        evse_id=2,
        connector_id=3,
        started_at=T0,
        status=TransactionStatus.COMPLETED,
        id_token=IdToken(uid="04A2B3C4D5", type="ISO14443"),
        meter_start_wh=Decimal("12345.6780"),
        meter_stop_wh=Decimal("98765.4321000000000000001"),
        stopped_at=at(3600),
        stop_reason="EVDisconnected",
        stop_id_token=IdToken(uid="stop-token", type="Central"),
        remote_start_id=77,
        reservation_id=88,
        charging_state="SuspendedEV",
        recovered=True,
        updated_at=at(3601),
    )


def reading(i: int = 0, value: str | None = None, **fields: Any) -> MeterReading:
    return MeterReading(
        timestamp=fields.pop("timestamp", at(i)),
        measurand=fields.pop("measurand", Measurand.ENERGY_WH),
        value=Decimal(f"{i}.{i:03d}" if value is None else value),
        **fields,
    )


def full_token(uid: str = "04A2B3C4D5") -> LocalToken:
    return LocalToken(
        uid=uid,
        valid=False,
        expiry=at(86_400),
        parent_id="GROUP-1",
        type=TokenType.APP_USER,
        contract_id="DE-ABC-C12345678-X",
        updated_at=T0,
    )


def document(
    key: str = "LOC-1",
    seconds: float = 0,
    owner: str | None = None,
    data: dict[str, Any] | None = None,
) -> Document:
    """A document updated ``seconds`` after T0; its data names its key unless given."""
    return Document(
        key=key, data={"id": key} if data is None else data, last_updated=at(seconds), owner=owner
    )


def outbox_item(
    item_id: str = "item-1",
    ordering_key: str = "session:NL/ABC/1",
    partner_id: str = "partner-1",
    due_at: datetime = T0,
    **fields: Any,
) -> OutboxItem:
    """A new PUT to the partner, due at ``due_at``; other fields as given."""
    return OutboxItem(
        id=item_id,
        partner_id=partner_id,
        ordering_key=ordering_key,
        method=fields.pop("method", "PUT"),
        url=fields.pop("url", f"https://partner.example/ocpi/2.2.1/sessions/{item_id}"),
        body=fields.pop("body", {"id": item_id}),
        created_at=fields.pop("created_at", T0),
        next_attempt_at=due_at,
        **fields,
    )
