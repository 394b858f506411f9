"""OCPP 2.0.1: handlers (frames to domain) and commands (domain to calls).

2.0.1 separates the connector state (StatusNotification: Available, Occupied,
Reserved, Unavailable, Faulted) from the charging state, which TransactionEvent
carries in ``transactionInfo.chargingState``; the domain keeps both.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from ocpp.v201 import ChargePoint as LibV201ChargePoint
from ocpp.v201 import call, datatypes
from ocpp.v201.enums import Action

from gateway.csms.connection import OcppConnection, on
from gateway.csms.core import BootInfo, TransactionStart, TransactionStop
from gateway.csms.errors import OccurrenceViolation
from gateway.csms.meter import readings_v201, timestamp
from gateway.domain import commands as cmd
from gateway.domain.clock import format_timestamp
from gateway.domain.errors import CommandNotSupported
from gateway.domain.models import (
    AuthorizationResult,
    AuthorizationStatus,
    ConnectorState,
    ConnectorStatus,
    IdToken,
    Measurand,
    MeterReading,
    OcppVersion,
)

log = logging.getLogger(__name__)

_AUTH_STATUS = {
    AuthorizationStatus.ACCEPTED: "Accepted",
    AuthorizationStatus.BLOCKED: "Blocked",
    AuthorizationStatus.EXPIRED: "Expired",
    AuthorizationStatus.INVALID: "Invalid",
    AuthorizationStatus.CONCURRENT_TX: "ConcurrentTx",
    AuthorizationStatus.UNKNOWN: "Unknown",
}


def id_token_info(auth: AuthorizationResult) -> dict[str, Any]:
    info: dict[str, Any] = {"status": _AUTH_STATUS[auth.status]}
    if auth.expiry is not None:
        info["cacheExpiryDateTime"] = format_timestamp(auth.expiry)
    if auth.parent_id:
        info["groupIdToken"] = {"idToken": auth.parent_id[:36], "type": "Central"}
    return info


def token_from_v201(value: dict[str, Any] | None) -> IdToken | None:
    if not value:
        return None
    return IdToken(value["idToken"], value["type"])


def boot_from_v201(payload: dict[str, Any]) -> BootInfo:
    station = payload["chargingStation"]
    return BootInfo(
        vendor=station["vendorName"],
        model=station["model"],
        serial_number=station.get("serialNumber"),
        firmware_version=station.get("firmwareVersion"),
    )


def status_from_v201(charger_id: str, payload: dict[str, Any]) -> ConnectorState:
    return ConnectorState(
        charger_id=charger_id,
        evse_id=payload["evseId"],
        connector_id=payload["connectorId"],
        status=ConnectorStatus(payload["connectorStatus"]),
        timestamp=timestamp(payload["timestamp"], "timestamp"),
    )


def _first_energy(readings: list[MeterReading]) -> Any:
    energy = [r for r in readings if r.measurand is Measurand.ENERGY_WH and r.phase is None]
    return min(energy, key=lambda r: r.timestamp).value if energy else None


def start_from_v201(charger_id: str, payload: dict[str, Any]) -> TransactionStart:
    info = payload["transactionInfo"]
    evse = payload.get("evse")
    if evse is None:
        # E01.FR.16: the first TransactionEvent of a transaction carries the EVSE.
        raise OccurrenceViolation(
            "evse: required in the first event of a transaction", field="evse"
        )
    readings = readings_v201(payload.get("meterValue") or [], "meterValue")
    return TransactionStart(
        charger_id=charger_id,
        evse_id=evse["id"],
        connector_id=evse.get("connectorId", 1),
        timestamp=timestamp(payload["timestamp"], "timestamp"),
        id_token=token_from_v201(payload.get("idToken")),
        meter_start_wh=_first_energy(readings),
        ocpp_id=info["transactionId"],
        remote_start_id=info.get("remoteStartId"),
        reservation_id=payload.get("reservationId"),
        charging_state=info.get("chargingState"),
        readings=readings,
    )


def stop_from_v201(charger_id: str, payload: dict[str, Any]) -> TransactionStop:
    info = payload["transactionInfo"]
    evse = payload.get("evse") or {}
    return TransactionStop(
        charger_id=charger_id,
        ocpp_id=info["transactionId"],
        timestamp=timestamp(payload["timestamp"], "timestamp"),
        meter_stop_wh=None,  # taken from the Transaction.End reading, if any
        reason=info.get("stoppedReason", "Local"),  # E06: absent means Local
        id_token=token_from_v201(payload.get("idToken")),
        readings=readings_v201(payload.get("meterValue") or [], "meterValue"),
        evse_id=evse.get("id"),
        connector_id=evse.get("connectorId"),
    )



def _component(v: cmd.VariableRef) -> datatypes.ComponentType:
    return datatypes.ComponentType(
        name=v.component,
        instance=v.instance,
        evse=datatypes.EVSEType(id=v.evse_id) if v.evse_id is not None else None,
    )


def command_to_v201(command: cmd.Command) -> Any:
    """The library call dataclass for a domain command (pure)."""
    match command:
        case cmd.StartCharging():
            return call.RequestStartTransaction(
                id_token=datatypes.IdTokenType(
                    id_token=command.id_token[:36], type=command.token_type
                ),
                remote_start_id=command.remote_start_id or 0,
                evse_id=command.evse_id,
            )
        case cmd.StopCharging(ocpp_transaction_id=tx_id):
            return call.RequestStopTransaction(transaction_id=tx_id)
        case cmd.UnlockConnector(evse_id=evse, connector_id=connector):
            return call.UnlockConnector(evse_id=evse, connector_id=connector)
        case cmd.Reset(hard=hard):
            return call.Reset(type="Immediate" if hard else "OnIdle")
        case cmd.ChangeAvailability(operative=operative, evse_id=evse):
            return call.ChangeAvailability(
                operational_status="Operative" if operative else "Inoperative",
                evse=datatypes.EVSEType(id=evse) if evse else None,
            )
        case cmd.GetVariables(variables=variables):
            return call.GetVariables(
                get_variable_data=[
                    datatypes.GetVariableDataType(
                        component=_component(v),
                        variable=datatypes.VariableType(name=v.variable),
                        attribute_type=v.attribute_type,
                    )
                    for v in variables
                ]
            )
        case cmd.SetVariables(variables=variables):
            return call.SetVariables(
                set_variable_data=[
                    datatypes.SetVariableDataType(
                        attribute_value=v.value or "",
                        component=_component(v),
                        variable=datatypes.VariableType(name=v.variable),
                        attribute_type=v.attribute_type,
                    )
                    for v in variables
                ]
            )
        case cmd.TriggerMessage(message=message, evse_id=evse):
            return call.TriggerMessage(
                requested_message=message,
                evse=datatypes.EVSEType(id=evse) if evse else None,
            )
        case cmd.UpdateFirmware():
            return call.UpdateFirmware(
                request_id=command.request_id,
                firmware=datatypes.FirmwareType(
                    location=command.location, retrieve_date_time=command.retrieve_at
                ),
                retries=command.retries,
                retry_interval=command.retry_interval,
            )
        case cmd.GetDiagnostics():
            return call.GetLog(
                log=datatypes.LogParametersType(
                    remote_location=command.location,
                    oldest_timestamp=command.start_time,
                    latest_timestamp=command.stop_time,
                ),
                log_type="DiagnosticsLog",
                request_id=command.request_id,
            )
        case cmd.ReserveNow():
            return call.ReserveNow(
                id=command.reservation_id,
                expiry_date_time=command.expiry,
                id_token=datatypes.IdTokenType(id_token=command.id_token[:36], type="eMAID"),
                evse_id=command.evse_id,
            )
        case cmd.CancelReservation(reservation_id=rid):
            return call.CancelReservation(reservation_id=rid)
        case cmd.GetConfiguration() | cmd.SetConfiguration():
            raise CommandNotSupported("OCPP 2.0.1 uses get/set variables, not configuration")
    raise CommandNotSupported(f"{type(command).__name__} has no OCPP 2.0.1 equivalent")


class V201Connection(OcppConnection, LibV201ChargePoint):  # type: ignore[misc]
    version = OcppVersion.V201
    known_actions = frozenset(a.value for a in Action)

    async def _authorize(self, token: IdToken | None, evse_id: int | None) -> dict[str, Any]:
        if token is None:
            return {}
        if token.type == "NoAuthorization":
            return {"idTokenInfo": {"status": "Accepted"}}
        auth = await self.csms.authorize(self.charger_id, token, evse_id)
        return {"idTokenInfo": id_token_info(auth)}

    def boot_info(self, payload: dict[str, Any]) -> BootInfo:
        return boot_from_v201(payload)

    @on(Action.status_notification)
    async def on_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.csms.connector_status(status_from_v201(self.charger_id, payload))
        return {}

    @on(Action.authorize)
    async def on_authorize(self, payload: dict[str, Any]) -> dict[str, Any]:
        result = await self._authorize(token_from_v201(payload["idToken"]), None)
        return result

    @on(Action.transaction_event)
    async def on_transaction_event(self, payload: dict[str, Any]) -> dict[str, Any]:
        event = payload["eventType"]
        info = payload["transactionInfo"]
        token = token_from_v201(payload.get("idToken"))
        evse_id = (payload.get("evse") or {}).get("id")
        if event == "Ended":
            await self.csms.end_transaction(stop_from_v201(self.charger_id, payload))
            return await self._authorize(token, evse_id)
        existing = await self.csms.store.transactions.find(self.charger_id, info["transactionId"])
        if event == "Started" or existing is None:
            # An Updated for a transaction we never saw started (lost Started
            # after an outage) opens it, so that its energy is not lost.
            _, auth = await self.csms.start_transaction(start_from_v201(self.charger_id, payload))
            if existing is None or auth is None:
                return {"idTokenInfo": id_token_info(auth)} if auth is not None else {}
        readings = readings_v201(payload.get("meterValue") or [], "meterValue")
        await self.csms.update_transaction(
            self.charger_id,
            info["transactionId"],
            readings,
            charging_state=info.get("chargingState"),
            id_token=token,
        )
        return await self._authorize(token, evse_id)

    @on(Action.meter_values)
    async def on_meter_values(self, payload: dict[str, Any]) -> dict[str, Any]:
        readings = readings_v201(payload["meterValue"], "meterValue")
        evse_id = payload["evseId"]
        for tx in await self.csms.store.transactions.active(self.charger_id):
            if tx.evse_id == evse_id and readings:
                await self.csms.update_transaction(self.charger_id, tx.ocpp_id, readings)
        return {}

    @on(Action.notify_report)
    async def on_notify_report(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.csms.management_report(self.charger_id, "Report", payload)
        return {}

    @on(Action.notify_event)
    async def on_notify_event(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.csms.management_report(self.charger_id, "Event", payload)
        return {}

    @on(Action.security_event_notification)
    async def on_security_event(self, payload: dict[str, Any]) -> dict[str, Any]:
        log.warning("charger %s: security event %s", self.charger_id, payload.get("type"))
        await self.csms.management_report(self.charger_id, "SecurityEvent", payload)
        return {}

    @on(Action.firmware_status_notification)
    async def on_firmware_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.csms.management_report(self.charger_id, "FirmwareStatus", payload)
        return {}

    @on(Action.log_status_notification)
    async def on_log_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.csms.management_report(self.charger_id, "LogStatus", payload)
        return {}

    # -- commands ----------------------------------------------------------

    def to_call(self, command: cmd.Command) -> Any:
        if isinstance(command, cmd.StartCharging) and command.remote_start_id is None:
            command = replace(command, remote_start_id=self.csms.next_request_id())
        return command_to_v201(command)
