"""Domain commands: what the operator or a roaming partner asks a charger to do.

The central system turns each into the OCPP 1.6 or 2.0.1 call of the charger's
version (``gateway.csms.v16`` / ``gateway.csms.v201``); nobody outside ``csms``
builds OCPP messages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from gateway.domain.certificates import CertificateKind, RootCertificateKind
from gateway.domain.charging import (
    ChargingProfile,
    CompositeSchedule,
    ProfilePurpose,
    RateUnit,
    ReportedProfile,
)
from gateway.domain.device_model import (
    ClearVariableMonitoring,
    GetBaseReport,
    GetReport,
    SetMonitoringBase,
    SetMonitoringLevel,
    SetVariableMonitoring,
)
from gateway.domain.models import TokenType

# How long after a remote start the transaction it asked for may still begin: a 1.6
# StartTransaction for that token within it is taken as its result (1.6 has no remote
# start id); after it, the roaming side declares the START_SESSION's session INVALID.
REMOTE_START_WINDOW = timedelta(minutes=10)


class CommandStatus(enum.StrEnum):
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    SCHEDULED = "Scheduled"
    NOT_SUPPORTED = "NotSupported"
    UNKNOWN = "Unknown"


def token_type_of(value: str) -> TokenType:
    """A stored token's type (OCPI's open enum) in domain terms; unknown types are OTHER."""
    try:
        return TokenType(value)
    except ValueError:
        return TokenType.OTHER


@dataclass(frozen=True, slots=True)
class StartCharging:
    """Remote start for ``id_token``.

    ``token_type`` and ``contract_id`` are the token as stored (local list or the
    eMSP's pushed token). Left None, the central system looks the uid up on the
    local list; a uid on no list is a token the central system made up. 2.0.1
    chargers get the matching IdTokenEnumType (``gateway.csms.v201.id_token_type``).
    """

    id_token: str
    evse_id: int | None = None
    remote_start_id: int | None = None
    token_type: TokenType | None = None
    contract_id: str | None = None


@dataclass(frozen=True, slots=True)
class StopCharging:
    ocpp_transaction_id: str


@dataclass(frozen=True, slots=True)
class UnlockConnector:
    evse_id: int
    connector_id: int = 1


@dataclass(frozen=True, slots=True)
class Reset:
    hard: bool = False


@dataclass(frozen=True, slots=True)
class ChangeAvailability:
    operative: bool
    evse_id: int | None = None  # None: the whole charger


@dataclass(frozen=True, slots=True)
class GetConfiguration:
    """1.6 GetConfiguration; for 2.0.1 chargers use :class:`GetVariables`."""

    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SetConfiguration:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class VariableRef:
    component: str
    variable: str
    value: str | None = None
    evse_id: int | None = None
    instance: str | None = None  # the component's instance
    attribute_type: str | None = None
    variable_instance: str | None = None  # the variable's (e.g. TariffCostCtrlr.Enabled[Cost])


@dataclass(frozen=True, slots=True)
class GetVariables:
    variables: tuple[VariableRef, ...]


@dataclass(frozen=True, slots=True)
class SetVariables:
    variables: tuple[VariableRef, ...]


@dataclass(frozen=True, slots=True)
class TriggerMessage:
    message: str  # OCPP name, e.g. "StatusNotification", "MeterValues"
    evse_id: int | None = None


@dataclass(frozen=True, slots=True)
class UpdateFirmware:
    location: str
    retrieve_at: str  # RFC 3339
    retries: int | None = None
    retry_interval: int | None = None
    # None: the central system gives it a fresh one (see CentralSystem.send).
    request_id: int | None = None
    # Signed firmware (1.6 security whitepaper SignedUpdateFirmware; 2.0.1 L01): the PEM
    # certificate the firmware was signed with and the signature (base64), both or none.
    signing_certificate: str | None = None
    signature: str | None = None
    install_at: str | None = None  # RFC 3339


@dataclass(frozen=True, slots=True)
class GetDiagnostics:
    """1.6 GetDiagnostics / 2.0.1 GetLog (a DiagnosticsLog or a SecurityLog)."""

    location: str
    start_time: str | None = None
    stop_time: str | None = None
    # None: the central system gives it a fresh one (see CentralSystem.send).
    request_id: int | None = None
    log_type: Literal["DiagnosticsLog", "SecurityLog"] = "DiagnosticsLog"


@dataclass(frozen=True, slots=True)
class ReserveNow:
    reservation_id: int
    id_token: str
    expiry: str  # RFC 3339
    evse_id: int | None = None
    # As for StartCharging: the same token gets the same 2.0.1 type in both.
    token_type: TokenType | None = None
    contract_id: str | None = None


@dataclass(frozen=True, slots=True)
class CancelReservation:
    reservation_id: int


@dataclass(frozen=True, slots=True)
class SetChargingProfile:
    """Install ``profile`` on EVSE ``evse_id`` (0: the whole charger; a
    ChargingStationMaxProfile goes on 0). 1.6 SetChargingProfile with the EVSE as
    connectorId; 2.0.1 SetChargingProfile (a TxProfile names its transactionId)."""

    evse_id: int
    profile: ChargingProfile


@dataclass(frozen=True, slots=True)
class ClearChargingProfile:
    """Remove the profiles that match every criterion given (none given: all of them).
    1.6 and 2.0.1 ClearChargingProfile; a charger with nothing matching answers Unknown."""

    profile_id: int | None = None
    evse_id: int | None = None
    purpose: ProfilePurpose | None = None
    stack_level: int | None = None


@dataclass(frozen=True, slots=True)
class GetCompositeSchedule:
    """What the charger will allow on EVSE ``evse_id`` (0: the grid connection) for the
    next ``duration`` seconds, all its profiles combined; the answer's
    ``CommandResult.schedule``."""

    evse_id: int
    duration: int
    unit: RateUnit | None = None


@dataclass(frozen=True, slots=True)
class GetChargingProfiles:
    """2.0.1 only: the charger reports the profiles it holds (ReportChargingProfiles,
    collected under ``request_id``) into ``CommandResult.profiles``. 1.6 has no
    equivalent (CommandNotSupported)."""

    request_id: int | None = None
    evse_id: int | None = None
    purpose: ProfilePurpose | None = None
    stack_level: int | None = None
    profile_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class UpdateCost:
    """2.0.1 CostUpdated: the running total cost (VAT included) of a transaction, in the
    currency the charger is configured with (TariffCostCtrlr), for it to display. 1.6 has
    no equivalent (CommandNotSupported)."""

    ocpp_transaction_id: str
    total_cost: Decimal


@dataclass(frozen=True, slots=True)
class CertificateSigned:
    """1.6 (security whitepaper) / 2.0.1 CertificateSigned (A02/A03): the chain a CA issued
    for the charger's SignCertificate, PEM, leaf first. 1.6 knows the charging station
    certificate only."""

    certificate_chain: str
    certificate_type: CertificateKind = CertificateKind.CHARGING_STATION


@dataclass(frozen=True, slots=True)
class TriggerCertificateSigning:
    """Ask the charger for a new key pair and its CSR (renewal, A02): 1.6
    ExtendedTriggerMessage SignChargePointCertificate; 2.0.1 TriggerMessage
    SignChargingStationCertificate or SignV2GCertificate."""

    certificate_type: CertificateKind = CertificateKind.CHARGING_STATION


@dataclass(frozen=True, slots=True)
class InstallCertificate:
    """Install a root certificate (PEM) on the charger (1.6 whitepaper / 2.0.1 M05)."""

    certificate_type: RootCertificateKind
    certificate: str


@dataclass(frozen=True, slots=True)
class GetInstalledCertificateIds:
    """The hashes of the charger's installed certificates of these types (none: every
    type, 2.0.1 M03; 1.6 asks for exactly one type)."""

    certificate_types: tuple[RootCertificateKind, ...] = ()


@dataclass(frozen=True, slots=True)
class DeleteCertificate:
    """Delete an installed certificate, named by its hash data (1.6 whitepaper / 2.0.1
    M04: CertificateHashDataType, as GetInstalledCertificateIds answered it)."""

    hash_algorithm: Literal["SHA256", "SHA384", "SHA512"]
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str


class LocalListStatus(enum.StrEnum):
    """What a local authorization list entry says of its token (1.6 AuthorizationStatus /
    2.0.1 AuthorizationStatusEnumType, the values both have)."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"


@dataclass(frozen=True, slots=True)
class LocalListEntry:
    """One token of a local authorization list (1.6 AuthorizationData / 2.0.1
    AuthorizationData). ``status`` None, in a differential update only: the charger
    removes the token from its list (1.6 section 5.15: no idTagInfo; 2.0.1 D01: no
    idTokenInfo). ``token_type`` and ``contract_id`` give a 2.0.1 charger the token's
    IdTokenEnumType as for remote starts; ``parent_id`` is the 1.6 parentIdTag / 2.0.1
    groupIdToken."""

    id_token: str
    status: LocalListStatus | None = LocalListStatus.ACCEPTED
    expires_at: datetime | None = None
    parent_id: str | None = None
    token_type: TokenType | None = None
    contract_id: str | None = None


@dataclass(frozen=True, slots=True)
class SendLocalList:
    """1.6 / 2.0.1 SendLocalList: ``full`` replaces the charger's list with ``entries``,
    else they update it (Differential). The charger answers Accepted, Failed,
    VersionMismatch or (1.6) NotSupported, kept as is in ``CommandResult.data``."""

    version: int
    full: bool
    entries: tuple[LocalListEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class GetLocalListVersion:
    """The version of the charger's local list: ``CommandResult.data["version"]`` (1.6:
    -1 when the charger has no local list support, 0 when it holds none)."""


@dataclass(frozen=True, slots=True)
class ClearCache:
    """Empty the charger's authorization cache (1.6 / 2.0.1 ClearCache)."""


@dataclass(frozen=True, slots=True)
class DataTransfer:
    """A vendor-specific message from the central system (1.6 / 2.0.1 DataTransfer);
    the charger's status and data are in ``CommandResult.data``. 1.6 carries ``data`` as
    text; with ``data_is_json`` it is JSON text that a 2.0.1 charger gets as the JSON
    value (1.6: as the text)."""

    vendor_id: str
    message_id: str | None = None
    data: str | None = None
    data_is_json: bool = False


Command = (
    StartCharging
    | StopCharging
    | UnlockConnector
    | Reset
    | ChangeAvailability
    | GetConfiguration
    | SetConfiguration
    | GetVariables
    | SetVariables
    | TriggerMessage
    | UpdateFirmware
    | GetDiagnostics
    | ReserveNow
    | CancelReservation
    | SetChargingProfile
    | ClearChargingProfile
    | GetCompositeSchedule
    | GetChargingProfiles
    | UpdateCost
    | CertificateSigned
    | TriggerCertificateSigning
    | InstallCertificate
    | GetInstalledCertificateIds
    | DeleteCertificate
    # The device model (2.0.1/2.1 blocks B and N; gateway.domain.device_model).
    | GetBaseReport
    | GetReport
    | SetVariableMonitoring
    | ClearVariableMonitoring
    | SetMonitoringBase
    | SetMonitoringLevel
    # Local authorization lists and cache, DataTransfer (gateway.locallist).
    | SendLocalList
    | GetLocalListVersion
    | ClearCache
    | DataTransfer
)


@dataclass(frozen=True, slots=True)
class CommandResult:
    status: CommandStatus
    # The charger's answer, version-specific detail kept for the operator.
    data: dict[str, Any] = field(default_factory=dict)
    # The requestId a firmware, diagnostics or log request went out with.
    request_id: int | None = None
    # GetCompositeSchedule: the schedule the charger answered (None when it rejected).
    schedule: CompositeSchedule | None = None
    # GetChargingProfiles: what the charger reported (ReportChargingProfiles).
    profiles: tuple[ReportedProfile, ...] = ()


class CommandSender(Protocol):
    """Sends a domain command to a connected charger (implemented by the central system).

    Raises ``ChargerNotConnected``, ``ChargerTimeout``, ``ChargerRejected`` or
    ``CommandNotSupported`` from :mod:`gateway.domain.errors`.
    """

    async def send(self, charger_id: str, command: Command) -> CommandResult: ...
