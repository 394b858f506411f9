"""Request bodies of the admin API (pydantic), and their conversion to domain objects."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any, Literal

from cryptography import x509
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.domain import commands as cmd
from gateway.domain.certificates import CertificateKind, RootCertificateKind
from gateway.domain.models import EvseConfig, TokenType


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


Identifier = Annotated[str, Field(min_length=1, max_length=48)]


class EvseBody(_Body):
    ocpp_id: int = Field(ge=1, description="1.6 connectorId / 2.0.1 evseId")
    evse_uid: Identifier = Field(description="OCPI EVSE uid")
    evse_id: str | None = Field(default=None, max_length=48, description="eMI3 EVSE id")
    connectors: list[Annotated[int, Field(ge=1)]] = Field(default=[1], min_length=1)

    def to_domain(self) -> EvseConfig:
        return EvseConfig(
            ocpp_id=self.ocpp_id,
            evse_uid=self.evse_uid,
            evse_id=self.evse_id,
            connectors=tuple(self.connectors),
        )


class ChargerBody(_Body):
    # OCPP 2.0.1 BasicAuthPassword is 16 to 40 characters; 1.6 AuthorizationKey
    # is up to 20 bytes (40 hex digits), possibly binary: give those as password_hex.
    password: str | None = Field(default=None, min_length=16, max_length=40)
    password_hex: str | None = Field(default=None, min_length=2, max_length=80)
    location_id: str | None = Field(default=None, max_length=36)
    serial_number: str | None = Field(
        default=None, max_length=64, description="the CN its profile-3 certificate must carry"
    )
    evses: list[EvseBody] = Field(default=[])
    local_list: bool | None = Field(
        default=None,
        description="send it a local authorization list (null: as GATEWAY_LOCAL_LIST)",
    )
    local_list_max_entries: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="at most this many tokens on its list (null: GATEWAY_LOCAL_LIST_MAX_ENTRIES);"
        " the charger's own maximum bounds it too",
    )

    @field_validator("password_hex")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None:
            bytes.fromhex(value)
        return value

    @field_validator("evses")
    @classmethod
    def _unique(cls, value: list[EvseBody]) -> list[EvseBody]:
        ids = [e.ocpp_id for e in value]
        if len(set(ids)) != len(ids):
            raise ValueError("ocpp_id values must be unique")
        uids = [e.evse_uid for e in value]
        if len(set(uids)) != len(uids):
            raise ValueError("evse_uid values must be unique")
        return value

    def password_bytes(self) -> bytes | None:
        if self.password_hex is not None:
            return bytes.fromhex(self.password_hex)
        if self.password is not None:
            return self.password.encode()
        return None


class TokenBody(_Body):
    valid: bool = True
    expiry: AwareDatetime | None = None
    parent_id: str | None = Field(default=None, max_length=36)
    type: TokenType = TokenType.RFID
    contract_id: str | None = Field(default=None, max_length=36)


class TransactionQuery(_Body):
    charger_id: str | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


# -- commands ---------------------------------------------------------------


class RemoteStart(_Body):
    id_token: str = Field(min_length=1, max_length=36)
    evse_id: int | None = Field(default=None, ge=1)
    remote_start_id: int | None = Field(default=None, ge=1)

    def to_command(self) -> cmd.Command:
        return cmd.StartCharging(self.id_token, self.evse_id, self.remote_start_id)


class RemoteStop(_Body):
    transaction_id: str = Field(min_length=1, max_length=36, description="OCPP transaction id")

    def to_command(self) -> cmd.Command:
        return cmd.StopCharging(self.transaction_id)


class Unlock(_Body):
    evse_id: int = Field(ge=1)
    connector_id: int = Field(default=1, ge=1)

    def to_command(self) -> cmd.Command:
        return cmd.UnlockConnector(self.evse_id, self.connector_id)


class ResetBody(_Body):
    type: Literal["soft", "hard"] = "soft"

    def to_command(self) -> cmd.Command:
        return cmd.Reset(hard=self.type == "hard")


class Availability(_Body):
    operative: bool
    evse_id: int | None = Field(default=None, ge=0)

    def to_command(self) -> cmd.Command:
        return cmd.ChangeAvailability(self.operative, self.evse_id or None)


class GetConfig(_Body):
    keys: list[Annotated[str, Field(max_length=50)]] = []

    def to_command(self) -> cmd.Command:
        return cmd.GetConfiguration(tuple(self.keys))


class SetConfig(_Body):
    key: str = Field(min_length=1, max_length=50)
    value: str = Field(max_length=500)

    def to_command(self) -> cmd.Command:
        return cmd.SetConfiguration(self.key, self.value)


class Variable(_Body):
    component: str = Field(min_length=1, max_length=50)
    variable: str = Field(min_length=1, max_length=50)
    value: str | None = Field(default=None, max_length=1000)
    evse_id: int | None = Field(default=None, ge=0)
    instance: str | None = Field(default=None, max_length=50)  # the component's
    variable_instance: str | None = Field(default=None, max_length=50)
    attribute_type: Literal["Actual", "Target", "MinSet", "MaxSet"] | None = None

    def to_domain(self) -> cmd.VariableRef:
        return cmd.VariableRef(
            self.component,
            self.variable,
            self.value,
            self.evse_id,
            self.instance,
            self.attribute_type,
            self.variable_instance,
        )


class GetVars(_Body):
    variables: list[Variable] = Field(min_length=1)

    def to_command(self) -> cmd.Command:
        return cmd.GetVariables(tuple(v.to_domain() for v in self.variables))


class VariableValue(Variable):
    """A variable to set: its value is required (in the schema, not only in a check)."""

    value: str = Field(max_length=1000)


class SetVars(_Body):
    variables: list[VariableValue] = Field(min_length=1)

    def to_command(self) -> cmd.Command:
        return cmd.SetVariables(tuple(v.to_domain() for v in self.variables))


class Trigger(_Body):
    message: Literal[
        "BootNotification",
        "Heartbeat",
        "MeterValues",
        "StatusNotification",
        "FirmwareStatusNotification",
        "DiagnosticsStatusNotification",
        "LogStatusNotification",
        "TransactionEvent",
    ]
    evse_id: int | None = Field(default=None, ge=1)

    def to_command(self) -> cmd.Command:
        return cmd.TriggerMessage(self.message, self.evse_id)


class Firmware(_Body):
    location: str = Field(min_length=1, max_length=512)
    retrieve_at: AwareDatetime
    retries: int | None = Field(default=None, ge=0)
    retry_interval: int | None = Field(default=None, ge=0)
    # Omitted: a fresh one, shown in the answer (OCPP 2.0.1 requestId is 32-bit).
    request_id: int | None = Field(default=None, ge=0, le=2**31 - 1)
    # Signed firmware (1.6 SignedUpdateFirmware, 2.0.1 L01): both or neither.
    signing_certificate: str | None = Field(
        default=None, min_length=1, max_length=5500, description="PEM"
    )
    signature: str | None = Field(default=None, min_length=1, max_length=800, description="base64")
    install_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _signed_whole(self) -> Firmware:
        if (self.signing_certificate is None) != (self.signature is None):
            raise ValueError("signing_certificate and signature go together")
        return self

    def to_command(self) -> cmd.Command:
        return cmd.UpdateFirmware(
            self.location,
            _rfc3339(self.retrieve_at),
            self.retries,
            self.retry_interval,
            self.request_id,
            self.signing_certificate,
            self.signature,
            _rfc3339(self.install_at) if self.install_at else None,
        )


class Diagnostics(_Body):
    location: str = Field(min_length=1, max_length=512)
    start_time: AwareDatetime | None = None
    stop_time: AwareDatetime | None = None
    # Omitted: a fresh one, shown in the answer (OCPP 2.0.1 requestId is 32-bit).
    request_id: int | None = Field(default=None, ge=0, le=2**31 - 1)

    def to_command(self) -> cmd.Command:
        return cmd.GetDiagnostics(
            self.location,
            _rfc3339(self.start_time) if self.start_time else None,
            _rfc3339(self.stop_time) if self.stop_time else None,
            self.request_id,
        )


class LogRequest(Diagnostics):
    """get-log: 2.0.1 GetLog of either log type (1.6 has the diagnostics log only)."""

    log_type: Literal["DiagnosticsLog", "SecurityLog"] = "DiagnosticsLog"

    def to_command(self) -> cmd.Command:
        command = super().to_command()
        assert isinstance(command, cmd.GetDiagnostics)
        return replace(command, log_type=self.log_type)


class Reserve(_Body):
    reservation_id: int = Field(ge=0)
    id_token: str = Field(min_length=1, max_length=36)
    expiry: AwareDatetime
    evse_id: int | None = Field(default=None, ge=0)

    def to_command(self) -> cmd.Command:
        return cmd.ReserveNow(
            self.reservation_id, self.id_token, _rfc3339(self.expiry), self.evse_id
        )


class CancelReserve(_Body):
    reservation_id: int = Field(ge=0)

    def to_command(self) -> cmd.Command:
        return cmd.CancelReservation(self.reservation_id)


class InstallCertificateBody(_Body):
    certificate_type: Literal[
        "CSMSRootCertificate",
        "ManufacturerRootCertificate",
        "V2GRootCertificate",
        "MORootCertificate",
    ] = Field(description="1.6: CSMSRootCertificate or ManufacturerRootCertificate")
    certificate: str = Field(min_length=1, max_length=5500, description="PEM")

    @field_validator("certificate")
    @classmethod
    def _pem(cls, value: str) -> str:
        try:
            x509.load_pem_x509_certificate(value.encode())
        except ValueError:
            raise ValueError("not a PEM X.509 certificate") from None
        return value

    def to_command(self) -> cmd.Command:
        return cmd.InstallCertificate(RootCertificateKind(self.certificate_type), self.certificate)


class InstalledCertificatesBody(_Body):
    certificate_types: list[
        Literal[
            "CSMSRootCertificate",
            "ManufacturerRootCertificate",
            "V2GRootCertificate",
            "MORootCertificate",
            "V2GCertificateChain",
        ]
    ] = Field(default=[], description="none: every type (2.0.1); 1.6 takes exactly one")

    def to_command(self) -> cmd.Command:
        return cmd.GetInstalledCertificateIds(
            tuple(RootCertificateKind(t) for t in self.certificate_types)
        )


class DeleteCertificateBody(_Body):
    """As GetInstalledCertificateIds answered it (CertificateHashDataType)."""

    hash_algorithm: Literal["SHA256", "SHA384", "SHA512"]
    issuer_name_hash: str = Field(min_length=1, max_length=128)
    issuer_key_hash: str = Field(min_length=1, max_length=128)
    serial_number: str = Field(min_length=1, max_length=40)

    def to_command(self) -> cmd.Command:
        return cmd.DeleteCertificate(
            self.hash_algorithm, self.issuer_name_hash, self.issuer_key_hash, self.serial_number
        )


class RenewCertificateBody(_Body):
    certificate_type: Literal["ChargingStationCertificate", "V2GCertificate"] = (
        "ChargingStationCertificate"
    )

    def to_command(self) -> cmd.Command:
        return cmd.TriggerCertificateSigning(CertificateKind(self.certificate_type))


def _rfc3339(value: datetime) -> str:
    from gateway.domain.clock import format_timestamp

    return format_timestamp(value)


COMMANDS: dict[str, type[Any]] = {
    "remote-start": RemoteStart,
    "remote-stop": RemoteStop,
    "unlock": Unlock,
    "reset": ResetBody,
    "change-availability": Availability,
    "get-configuration": GetConfig,
    "set-configuration": SetConfig,
    "get-variables": GetVars,
    "set-variables": SetVars,
    "trigger-message": Trigger,
    "update-firmware": Firmware,
    "get-diagnostics": Diagnostics,
    "get-log": LogRequest,
    "reserve-now": Reserve,
    "cancel-reservation": CancelReserve,
    "install-certificate": InstallCertificateBody,
    "get-installed-certificate-ids": InstalledCertificatesBody,
    "delete-certificate": DeleteCertificateBody,
    "renew-certificate": RenewCertificateBody,
}
