"""OCPP 1.6J: handlers (frames to domain) and commands (domain to calls).

Payloads arrive schema-valid and camelCase; the conversions to the domain are
the pure ``*_from_*`` / ``*_to_*`` functions, property-tested in tests/csms.
In 1.6 every connector is its own EVSE: domain ``evse_id`` is the connectorId
and ``connector_id`` is 1 (connectorId 0 is the charger as a whole).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from ocpp.v16 import ChargePoint as LibV16ChargePoint
from ocpp.v16 import call
from ocpp.v16.enums import Action

from gateway.csms import locallist
from gateway.csms.connection import OcppConnection, on
from gateway.csms.core import BootInfo, TransactionStart, TransactionStop
from gateway.csms.meter import meter_wh, readings_v16, timestamp
from gateway.csms.profiles import (
    ProfileFormatError,
    composite_from_v16,
    profile_to_v16,
    purpose_to_ocpp,
    station_evse,
)
from gateway.domain import commands as cmd
from gateway.domain.certificates import CertificateKind, RootCertificateKind
from gateway.domain.clock import format_timestamp
from gateway.domain.errors import CommandNotSupported
from gateway.domain.models import (
    AuthorizationResult,
    AuthorizationStatus,
    ConnectorState,
    ConnectorStatus,
    IdToken,
    OcppVersion,
)

log = logging.getLogger(__name__)

# OCPP 1.6 idTag type; 1.6 has no token types, so the domain records this.
ID_TAG = "ISO14443"

# AuthorizationStatus in 1.6 (section 7.2) has no "Unknown": unknown is Invalid.
_AUTH_STATUS = {
    AuthorizationStatus.ACCEPTED: "Accepted",
    AuthorizationStatus.BLOCKED: "Blocked",
    AuthorizationStatus.EXPIRED: "Expired",
    AuthorizationStatus.INVALID: "Invalid",
    AuthorizationStatus.CONCURRENT_TX: "ConcurrentTx",
    AuthorizationStatus.UNKNOWN: "Invalid",
}


def id_tag_info(auth: AuthorizationResult) -> dict[str, Any]:
    info: dict[str, Any] = {"status": _AUTH_STATUS[auth.status]}
    if auth.expiry is not None:
        info["expiryDate"] = format_timestamp(auth.expiry)
    if auth.parent_id:
        info["parentIdTag"] = auth.parent_id[:20]
    return info


def boot_from_v16(payload: dict[str, Any]) -> BootInfo:
    return BootInfo(
        vendor=payload["chargePointVendor"],
        model=payload["chargePointModel"],
        serial_number=(
            payload.get("chargePointSerialNumber") or payload.get("chargeBoxSerialNumber")
        ),
        firmware_version=payload.get("firmwareVersion"),
    )


def status_from_v16(charger_id: str, payload: dict[str, Any], now: Any) -> ConnectorState:
    connector = payload["connectorId"]
    when = timestamp(payload["timestamp"], "timestamp") if payload.get("timestamp") else now
    error = payload["errorCode"]
    return ConnectorState(
        charger_id=charger_id,
        evse_id=connector,
        connector_id=0 if connector == 0 else 1,
        status=ConnectorStatus(payload["status"]),
        timestamp=when,
        error_code=None if error == "NoError" else error,
        info=payload.get("info") or payload.get("vendorErrorCode"),
    )


def start_from_v16(charger_id: str, payload: dict[str, Any]) -> TransactionStart:
    return TransactionStart(
        charger_id=charger_id,
        evse_id=payload["connectorId"],
        connector_id=1,
        timestamp=timestamp(payload["timestamp"], "timestamp"),
        id_token=IdToken(payload["idTag"], ID_TAG),
        meter_start_wh=meter_wh(payload["meterStart"], "meterStart"),
        reservation_id=payload.get("reservationId"),
    )


def stop_from_v16(charger_id: str, payload: dict[str, Any]) -> TransactionStop:
    id_tag = payload.get("idTag")
    return TransactionStop(
        charger_id=charger_id,
        ocpp_id=str(payload["transactionId"]),
        timestamp=timestamp(payload["timestamp"], "timestamp"),
        meter_stop_wh=meter_wh(payload["meterStop"], "meterStop"),
        reason=payload.get("reason", "Local"),  # 1.6 section 6.52: absent means Local
        id_token=IdToken(id_tag, ID_TAG) if id_tag else None,
        readings=readings_v16(payload.get("transactionData") or [], "transactionData"),
    )


# Security whitepaper ExtendedTriggerMessage: the messages 1.6 TriggerMessage lacks.
EXTENDED_TRIGGERS = frozenset({"LogStatusNotification", "SignChargePointCertificate"})
# Security whitepaper CertificateUseEnumType, by the 2.0.1 names the domain uses.
_CERTIFICATE_USE = {
    RootCertificateKind.CSMS_ROOT: "CentralSystemRootCertificate",
    RootCertificateKind.MANUFACTURER_ROOT: "ManufacturerRootCertificate",
}


def _certificate_use(kind: RootCertificateKind) -> str:
    use = _CERTIFICATE_USE.get(kind)
    if use is None:
        raise CommandNotSupported(f"OCPP 1.6 has no {kind.value} (ISO 15118 is 2.0.1 only)")
    return use


def _charge_point_certificate(kind: CertificateKind) -> None:
    if kind is not CertificateKind.CHARGING_STATION:
        raise CommandNotSupported(f"OCPP 1.6 has no {kind.value} (ISO 15118 is 2.0.1 only)")


def command_to_v16(command: cmd.Command) -> Any:
    """The library call dataclass for a domain command (pure)."""
    match command:
        case cmd.StartCharging(id_token=token, evse_id=evse):
            return call.RemoteStartTransaction(id_tag=token[:20], connector_id=evse)
        case cmd.StopCharging(ocpp_transaction_id=tx_id):
            if not tx_id.isdigit():
                raise CommandNotSupported(f"1.6 transaction ids are integers, not {tx_id!r}")
            return call.RemoteStopTransaction(transaction_id=int(tx_id))
        case cmd.UnlockConnector(evse_id=evse):
            return call.UnlockConnector(connector_id=evse)
        case cmd.Reset(hard=hard):
            return call.Reset(type="Hard" if hard else "Soft")
        case cmd.ChangeAvailability(operative=operative, evse_id=evse):
            return call.ChangeAvailability(
                connector_id=evse or 0, type="Operative" if operative else "Inoperative"
            )
        case cmd.GetConfiguration(keys=keys):
            return call.GetConfiguration(key=list(keys) or None)
        case cmd.SetConfiguration(key=key, value=value):
            return call.ChangeConfiguration(key=key, value=value)
        case cmd.TriggerMessage(message=message, evse_id=evse):
            if message in EXTENDED_TRIGGERS:
                # Security whitepaper: the messages TriggerMessage cannot ask for.
                return call.ExtendedTriggerMessage(requested_message=message, connector_id=evse)
            return call.TriggerMessage(requested_message=message, connector_id=evse)
        case cmd.UpdateFirmware(signing_certificate=str(), signature=str()):
            if command.request_id is None:
                raise CommandNotSupported("SignedUpdateFirmware needs a request id")
            firmware = {
                "location": command.location,
                "retrieve_date_time": command.retrieve_at,
                "signing_certificate": command.signing_certificate,
                "signature": command.signature,
            }
            if command.install_at is not None:
                firmware["install_date_time"] = command.install_at
            return call.SignedUpdateFirmware(
                request_id=command.request_id,
                firmware=firmware,
                retries=command.retries,
                retry_interval=command.retry_interval,
            )
        case cmd.UpdateFirmware():
            if command.signing_certificate is not None or command.signature is not None:
                raise CommandNotSupported("signed firmware needs a certificate and a signature")
            return call.UpdateFirmware(
                location=command.location,
                retrieve_date=command.retrieve_at,
                retries=command.retries,
                retry_interval=command.retry_interval,
            )
        case cmd.GetDiagnostics():
            if command.log_type != "DiagnosticsLog":
                raise CommandNotSupported("OCPP 1.6 GetDiagnostics has no security log")
            return call.GetDiagnostics(
                location=command.location,
                start_time=command.start_time,
                stop_time=command.stop_time,
            )
        case cmd.ReserveNow():
            return call.ReserveNow(
                connector_id=command.evse_id or 0,
                expiry_date=command.expiry,
                id_tag=command.id_token[:20],
                reservation_id=command.reservation_id,
            )
        case cmd.CancelReservation(reservation_id=rid):
            return call.CancelReservation(reservation_id=rid)
        case cmd.SetChargingProfile(evse_id=evse, profile=profile):
            # A ChargePointMaxProfile only on connectorId 0 (1.6 section 3.13.2).
            return call.SetChargingProfile(
                connector_id=station_evse(profile.purpose, evse),
                cs_charging_profiles=profile_to_v16(profile),
            )
        case cmd.ClearChargingProfile():
            return call.ClearChargingProfile(
                id=command.profile_id,
                connector_id=command.evse_id,
                charging_profile_purpose=(
                    None
                    if command.purpose is None
                    else purpose_to_ocpp(command.purpose, OcppVersion.V16)
                ),
                stack_level=command.stack_level,
            )
        case cmd.GetCompositeSchedule(evse_id=evse, duration=duration, unit=unit):
            return call.GetCompositeSchedule(
                connector_id=evse,
                duration=duration,
                charging_rate_unit=None if unit is None else unit.value,
            )
        case cmd.GetChargingProfiles():
            raise CommandNotSupported(
                "OCPP 1.6 cannot report the profiles a charger holds: "
                "ask for its composite schedule"
            )
        case cmd.GetVariables() | cmd.SetVariables():
            raise CommandNotSupported("OCPP 1.6 has no device model: use get/set configuration")
        case cmd.CertificateSigned(certificate_chain=chain, certificate_type=kind):
            _charge_point_certificate(kind)
            return call.CertificateSigned(certificate_chain=chain)
        case cmd.TriggerCertificateSigning(certificate_type=kind):
            _charge_point_certificate(kind)
            return call.ExtendedTriggerMessage(requested_message="SignChargePointCertificate")
        case cmd.InstallCertificate(certificate_type=kind, certificate=pem):
            return call.InstallCertificate(certificate_type=_certificate_use(kind), certificate=pem)
        case cmd.GetInstalledCertificateIds(certificate_types=kinds):
            if len(kinds) != 1:
                raise CommandNotSupported(
                    "OCPP 1.6 asks for one certificate type at a time: "
                    "CSMSRootCertificate or ManufacturerRootCertificate"
                )
            return call.GetInstalledCertificateIds(certificate_type=_certificate_use(kinds[0]))
        case cmd.DeleteCertificate():
            return call.DeleteCertificate(
                certificate_hash_data={
                    "hash_algorithm": command.hash_algorithm,
                    "issuer_name_hash": command.issuer_name_hash,
                    "issuer_key_hash": command.issuer_key_hash,
                    "serial_number": command.serial_number,
                }
            )
        case (
            cmd.SendLocalList() | cmd.GetLocalListVersion() | cmd.ClearCache() | cmd.DataTransfer()
        ):
            return locallist.to_v16(command)
    raise CommandNotSupported(f"{type(command).__name__} has no OCPP 1.6 equivalent")


class V16Connection(OcppConnection, LibV16ChargePoint):  # type: ignore[misc]
    version = OcppVersion.V16
    known_actions = frozenset(a.value for a in Action)

    def boot_info(self, payload: dict[str, Any]) -> BootInfo:
        return boot_from_v16(payload)

    @on(Action.status_notification)
    async def on_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        # Without a timestamp of the charger's, the status is as of its receipt.
        state = status_from_v16(self.charger_id, payload, self.last_seen)
        await self.csms.connector_status(state)
        return {}

    @on(Action.authorize)
    async def on_authorize(self, payload: dict[str, Any]) -> dict[str, Any]:
        auth = await self.csms.authorize(self.charger_id, IdToken(payload["idTag"], ID_TAG))
        return {"idTagInfo": id_tag_info(auth)}

    @on(Action.start_transaction)
    async def on_start_transaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        tx, auth = await self.csms.start_transaction(start_from_v16(self.charger_id, payload))
        assert auth is not None  # 1.6 StartTransaction always carries an idTag
        return {"transactionId": int(tx.ocpp_id), "idTagInfo": id_tag_info(auth)}

    @on(Action.stop_transaction)
    async def on_stop_transaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        _, auth = await self.csms.end_transaction(stop_from_v16(self.charger_id, payload))
        return {"idTagInfo": id_tag_info(auth)} if auth is not None else {}

    @on(Action.meter_values)
    async def on_meter_values(self, payload: dict[str, Any]) -> dict[str, Any]:
        readings = readings_v16(payload["meterValue"], "meterValue")
        tx_id = payload.get("transactionId")
        if tx_id is not None and readings:
            await self.csms.update_transaction(self.charger_id, str(tx_id), readings)
        return {}

    @on(Action.data_transfer)
    async def on_data_transfer(self, payload: dict[str, Any]) -> dict[str, Any]:
        # No vendor extension is implemented: 1.6 section 6.16 answers UnknownVendorId.
        return {"status": "UnknownVendorId"}

    @on(Action.diagnostics_status_notification)
    async def on_diagnostics_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.csms.management_report(self.charger_id, "DiagnosticsStatus", payload)
        return {}

    @on(Action.firmware_status_notification)
    async def on_firmware_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.csms.management_report(self.charger_id, "FirmwareStatus", payload)
        return {}

    # -- security whitepaper (edition 3) ---------------------------------------------

    @on(Action.sign_certificate)
    async def on_sign_certificate(self, payload: dict[str, Any]) -> dict[str, Any]:
        # A02/A03: answered at once; the chain follows in CertificateSigned.
        service = self.csms.certificates
        if service is None:
            return {"status": "Rejected"}
        answer = await service.sign_request(
            self.charger_id, payload["csr"], CertificateKind.CHARGING_STATION
        )
        return {"status": "Accepted" if answer.accepted else "Rejected"}

    @on(Action.security_event_notification)
    async def on_security_event(self, payload: dict[str, Any]) -> dict[str, Any]:
        log.warning("charger %s: security event %s", self.charger_id, payload.get("type"))
        await self.csms.management_report(self.charger_id, "SecurityEvent", payload)
        return {}

    @on(Action.signed_firmware_status_notification)
    async def on_signed_firmware_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        # Carries the SignedUpdateFirmware's requestId, as 2.0.1 FirmwareStatusNotification.
        await self.csms.management_report(self.charger_id, "FirmwareStatus", payload)
        return {}

    @on(Action.log_status_notification)
    async def on_log_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.csms.management_report(self.charger_id, "LogStatus", payload)
        return {}

    # -- commands ----------------------------------------------------------

    def to_call(self, command: cmd.Command) -> Any:
        return command_to_v16(command)

    def from_result(self, command: cmd.Command, result: Any) -> cmd.CommandResult:
        answer = super().from_result(command, result)
        if isinstance(command, cmd.GetCompositeSchedule):
            try:
                schedule = composite_from_v16(answer.data, command.evse_id)
            except (ProfileFormatError, KeyError, TypeError, ValueError) as exc:
                log.warning("charger %s: composite schedule not readable: %s", self.charger_id, exc)
                return replace(answer, status=cmd.CommandStatus.REJECTED)
            return replace(answer, schedule=schedule)
        return answer
