"""Domain entities. Times are timezone-aware UTC; energy is Wh, power W, current A."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


class OcppVersion(enum.StrEnum):
    V16 = "1.6"
    V201 = "2.0.1"
    V21 = "2.1"


class ConnectorStatus(enum.StrEnum):
    """Union of what OCPP 1.6 and 2.0.1 report, plus UNKNOWN for offline chargers.

    1.6 reports the fine-grained states (Preparing, Charging, SuspendedEV, ...);
    2.0.1 reports only Available/Occupied/Reserved/Unavailable/Faulted, with the
    charging state carried by TransactionEvent.chargingState (see csms.v201).
    """

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    OCCUPIED = "Occupied"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"
    UNKNOWN = "Unknown"


class TransactionStatus(enum.StrEnum):
    ACTIVE = "Active"
    COMPLETED = "Completed"


class Measurand(enum.StrEnum):
    ENERGY_WH = "Energy.Active.Import.Register"
    POWER_W = "Power.Active.Import"
    CURRENT_A = "Current.Import"
    SOC_PERCENT = "SoC"


class TokenType(enum.StrEnum):
    """Where a token came from; matches the OCPI token types."""

    RFID = "RFID"
    APP_USER = "APP_USER"
    AD_HOC_USER = "AD_HOC_USER"
    OTHER = "OTHER"


class AuthorizationStatus(enum.StrEnum):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class EvseConfig:
    """One EVSE of a charger as the operator configured it.

    ``ocpp_id`` is the 1.6 connectorId or the 2.0.1 evseId. ``evse_uid`` and
    ``evse_id`` are the identifiers the roaming side uses (OCPI ``uid`` and the
    eMI3 ``evse_id``); ``connectors`` lists OCPP connector numbers within the EVSE
    (always ``(1,)`` for 1.6, where one connector is one EVSE).
    """

    ocpp_id: int
    evse_uid: str
    evse_id: str | None = None
    connectors: tuple[int, ...] = (1,)


@dataclass(frozen=True, slots=True)
class Charger:
    """A registered charger (operator configuration)."""

    id: str
    password_hash: str | None = None
    location_id: str | None = None
    evses: tuple[EvseConfig, ...] = ()
    # Profile 3: the CN the client certificate must carry; None = the charger id.
    certificate_cn: str | None = None
    created_at: datetime | None = None
    # Local authorization list (gateway.locallist): None follows GATEWAY_LOCAL_LIST; the
    # bound on its entries (None: GATEWAY_LOCAL_LIST_MAX_ENTRIES), under the charger's own.
    local_list: bool | None = None
    local_list_max_entries: int | None = None


@dataclass(frozen=True, slots=True)
class ChargerState:
    """What the gateway learned from the charger itself."""

    id: str
    connected: bool = False
    ocpp_version: OcppVersion | None = None
    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    booted_at: datetime | None = None
    last_heartbeat: datetime | None = None
    connected_at: datetime | None = None
    disconnected_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConnectorState:
    charger_id: str
    evse_id: int
    connector_id: int
    status: ConnectorStatus
    timestamp: datetime
    error_code: str | None = None
    info: str | None = None


@dataclass(frozen=True, slots=True)
class MeterReading:
    timestamp: datetime
    measurand: Measurand
    value: Decimal
    phase: str | None = None
    context: str | None = None


@dataclass(frozen=True, slots=True)
class IdToken:
    uid: str
    type: str = "ISO14443"  # the OCPP token type the charger reported


@dataclass(frozen=True, slots=True)
class Transaction:
    """A charging transaction, durable from the moment the charger reported it.

    ``id`` is the gateway's own identifier; ``ocpp_id`` is what goes on the wire
    (the integer transactionId we assign in 1.6, the charger's string in 2.0.1).
    """

    id: str
    charger_id: str
    ocpp_id: str
    evse_id: int
    connector_id: int
    started_at: datetime
    status: TransactionStatus = TransactionStatus.ACTIVE
    id_token: IdToken | None = None
    meter_start_wh: Decimal | None = None
    meter_stop_wh: Decimal | None = None
    stopped_at: datetime | None = None
    stop_reason: str | None = None
    stop_id_token: IdToken | None = None
    remote_start_id: int | None = None
    reservation_id: int | None = None
    charging_state: str | None = None
    # True when the gateway first heard of it at its end (StopTransaction after an outage).
    recovered: bool = False
    # The reference of the authorization its token got when it started (an eMSP's
    # real-time authorization), for the roaming session and CDR.
    authorization_reference: str | None = None
    updated_at: datetime | None = None

    @property
    def energy_wh(self) -> Decimal | None:
        if self.meter_start_wh is None or self.meter_stop_wh is None:
            return None
        return self.meter_stop_wh - self.meter_start_wh


# OCPP's id tokens are case-insensitive: 1.6's IdToken is a CiString20Type (a "case
# insensitive string", section 7 of the 1.6 specification); 2.0.1's IdTokenType says
# "IdToken is case insensitive", and 2.1's "a case insensitive identifier". They are ASCII
# text: SQLite's upper() folds ASCII letters only, and so does this.
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def token_key(uid: str) -> str:
    """What a local token is stored and found by: ``uid`` with its ASCII letters
    upper-cased, so that a charger's ``abcd01`` finds the token put as ``ABCD01``."""
    return uid.translate(_ASCII_UPPER)


@dataclass(frozen=True, slots=True)
class LocalToken:
    """A token on the operator's local list (admin API); one per :func:`token_key` of its
    uid (the stores match uids case-insensitively; the uid keeps the spelling last put)."""

    uid: str
    valid: bool = True
    expiry: datetime | None = None
    parent_id: str | None = None
    type: TokenType = TokenType.RFID
    contract_id: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationResult:
    status: AuthorizationStatus
    expiry: datetime | None = None
    parent_id: str | None = None
    # Who vouched for the token (``local`` or a partner reference), for audit.
    source: str = "local"
    extra: dict[str, str] = field(default_factory=dict)
    # The authorizer's own reference for this decision (OCPI AuthorizationInfo
    # authorization_reference), carried to the transaction it lets start.
    authorization_reference: str | None = None
