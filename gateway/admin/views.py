"""The shapes of the admin API's answers: the view functions are typed to return these
(mypy holds them to it) and the OpenAPI document takes their schemas from them
(``gateway.admin.openapi``). ``TypedDict`` from ``typing_extensions``: pydantic reads
those on Python 3.11."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, NotRequired

from typing_extensions import TypedDict

from gateway.domain.commands import CommandStatus
from gateway.domain.models import (
    ConnectorStatus,
    Measurand,
    OcppVersion,
    TokenType,
    TransactionStatus,
)
from gateway.roaming.partners import PartnerKind, PartnerStatus
from gateway.storage.base import OutboxStatus


class EvseView(TypedDict):
    ocpp_id: int
    evse_uid: str
    evse_id: str | None
    connectors: list[int]


class ConnectorView(TypedDict):
    evse_id: int
    connector_id: int
    status: ConnectorStatus
    error_code: str | None
    info: str | None
    timestamp: datetime


class ChargerView(TypedDict):
    id: str
    location_id: str | None
    serial_number: str | None
    has_password: bool
    evses: list[EvseView]
    connected: bool
    ocpp_version: OcppVersion | None
    vendor: str | None
    model: str | None
    reported_serial_number: str | None
    firmware_version: str | None
    booted_at: datetime | None
    last_heartbeat: datetime | None
    connectors: list[ConnectorView]
    # Its local authorization list setting (None: the gateway's setting).
    local_list: bool | None
    local_list_max_entries: int | None
    # One charger only: the latest notifications and the last firmware, diagnostics and
    # log requests, newest first.
    notifications: NotRequired[dict[str, Any]]
    requests: NotRequired[list[dict[str, Any]]]


class MeterReadingView(TypedDict):
    timestamp: datetime
    measurand: Measurand
    value: Decimal
    phase: str | None
    context: str | None


class TransactionView(TypedDict):
    id: str
    charger_id: str
    ocpp_transaction_id: str
    evse_id: int
    connector_id: int
    status: TransactionStatus
    id_token: str | None
    id_token_type: str | None
    started_at: datetime
    stopped_at: datetime | None
    meter_start_wh: Decimal | None
    meter_stop_wh: Decimal | None
    energy_wh: Decimal | None
    stop_reason: str | None
    remote_start_id: int | None
    charging_state: str | None
    recovered: bool
    meter_readings: NotRequired[list[MeterReadingView]]  # one transaction only


class TokenView(TypedDict):
    uid: str
    valid: bool
    expiry: datetime | None
    parent_id: str | None
    type: TokenType
    contract_id: str | None


class CommandAnswer(TypedDict):
    status: CommandStatus
    data: dict[str, Any]  # the charger's answer, as its OCPP version has it
    request_id: NotRequired[int]  # firmware, diagnostics and log requests


class OutboxItemView(TypedDict):
    id: str
    seq: int
    status: OutboxStatus
    partner_id: str
    module: str | None
    ordering_key: str
    method: str
    url: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    meta: dict[str, Any] | None
    body: NotRequired[dict[str, Any] | None]


class PartyView(TypedDict):
    country_code: str | None
    party_id: str | None
    role: str | None


class EndpointView(TypedDict):
    module: str
    role: str
    url: str


class PartnerView(TypedDict):
    id: str
    name: str
    kind: PartnerKind
    status: PartnerStatus
    created_at: datetime
    updated_at: datetime
    versions_url: str | None
    version: str | None
    parties: list[PartyView]
    endpoints: list[EndpointView]
    # A hub platform's: the time zone of its 2.1.1 Locations that name none.
    default_time_zone: str | None
    # PENDING: what the operator hands the partner to register with the gateway.
    our_versions_url: NotRequired[str]
    # The answer to the creation only: the token A (only its hash is kept).
    token_a: NotRequired[str]
