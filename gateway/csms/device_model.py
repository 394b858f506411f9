"""The 2.0.1/2.1 device model on the central system's side (OCPP 2.0.1 part 2 blocks B
and N): the calls of the device model commands, NotifyReport parts stored as the
charger's model, NotifyEvent data stored as its alerts, and SetVariables / GetVariables
answers folded into the stored values.

2.1 keeps these messages (its schemas only add monitor kinds and widen descriptions),
so :class:`gateway.csms.v21.V21Connection` reuses all of this through the 2.0.1
handlers and re-types the calls made here.

Each NotifyReport part is one store write (its attributes and the report's state
together), made before the (empty) answer: the charger is held for one write however
large the part, and a part the gateway answered is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol

from ocpp.v201 import call

from gateway.csms.meter import timestamp
from gateway.domain import commands as cmd
from gateway.domain import device_model as dmm
from gateway.domain.clock import Clock
from gateway.domain.device_model import (
    Alert,
    AttributeType,
    Characteristics,
    DeviceVariable,
    ValueUpdate,
    VariableKey,
)
from gateway.storage.base import Store

log = logging.getLogger(__name__)

# Alerts kept per charger unless the app says otherwise (GATEWAY_DEVICE_ALERTS_KEPT).
ALERTS_KEPT = 1000
TRIGGERS = ("Alerting", "Delta", "Periodic")


class CommandConnection(Protocol):
    """What sending a report request needs of a connection (``core.Connection``)."""

    charger_id: str

    async def send_command(self, command: cmd.Command) -> cmd.CommandResult: ...


# -- commands to calls --------------------------------------------------------------------


def _component(target: dmm.ComponentVariable) -> dict[str, Any]:
    component: dict[str, Any] = {"name": target.component}
    if target.component_instance is not None:
        component["instance"] = target.component_instance
    if target.evse_id is not None:
        evse: dict[str, Any] = {"id": target.evse_id}
        if target.connector_id is not None:
            evse["connectorId"] = target.connector_id
        component["evse"] = evse
    return component


def _variable(target: dmm.ComponentVariable) -> dict[str, Any] | None:
    if target.variable is None:
        return None
    variable: dict[str, Any] = {"name": target.variable}
    if target.variable_instance is not None:
        variable["instance"] = target.variable_instance
    return variable


def _number(value: Decimal) -> int | float:
    """A JSON number for a monitor value (the schema's ``number``)."""
    return int(value) if value == value.to_integral_value() else float(value)


def command_to_v201(command: dmm.DeviceModelCommand) -> Any:
    """The library's 2.0.1 call for a device model command (pure)."""
    match command:
        case dmm.GetBaseReport(report_base=base, request_id=request_id):
            if request_id is None:
                raise ValueError("GetBaseReport needs a request id")
            return call.GetBaseReport(request_id=request_id, report_base=base.value)
        case dmm.GetReport(request_id=request_id):
            if request_id is None:
                raise ValueError("GetReport needs a request id")
            selection = []
            for target in command.component_variables:
                entry: dict[str, Any] = {"component": _component(target)}
                variable = _variable(target)
                if variable is not None:
                    entry["variable"] = variable
                selection.append(entry)
            return call.GetReport(
                request_id=request_id,
                component_variable=selection or None,
                component_criteria=list(command.component_criteria) or None,
            )
        case dmm.SetVariableMonitoring(monitors=monitors):
            data = []
            for m in monitors:
                entry = {
                    "value": _number(m.value),
                    "type": m.kind,
                    "severity": m.severity,
                    "component": _component(m.target),
                    "variable": _variable(m.target),
                }
                if m.transaction:
                    entry["transaction"] = True
                if m.id is not None:
                    entry["id"] = m.id
                data.append(entry)
            return call.SetVariableMonitoring(set_monitoring_data=data)
        case dmm.ClearVariableMonitoring(ids=ids):
            return call.ClearVariableMonitoring(id=list(ids))
        case dmm.SetMonitoringBase(base=base):
            return call.SetMonitoringBase(monitoring_base=base)
        case dmm.SetMonitoringLevel(severity=severity):
            return call.SetMonitoringLevel(severity=severity)
    raise TypeError(f"not a device model command: {type(command).__name__}")


# -- messages to domain -------------------------------------------------------------------


def key_from(component: dict[str, Any], variable: dict[str, Any]) -> VariableKey:
    evse = component.get("evse") or {}
    return VariableKey(
        component=component["name"],
        variable=variable["name"],
        component_instance=component.get("instance"),
        evse_id=evse.get("id"),
        connector_id=evse.get("connectorId"),
        variable_instance=variable.get("instance"),
    )


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:  # pragma: no cover - the schema says number
        return None


def rows_from_report(
    charger_id: str, payload: dict[str, Any], clock: Clock
) -> list[DeviceVariable]:
    """Each attribute of each ``reportData`` entry of a NotifyReport (B07/B08)."""
    at = clock.now()
    rows: list[DeviceVariable] = []
    for data in payload.get("reportData") or ():
        key = key_from(data["component"], data["variable"])
        chars = data.get("variableCharacteristics")
        characteristics = (
            None
            if chars is None
            else Characteristics(
                data_type=chars["dataType"],
                supports_monitoring=bool(chars["supportsMonitoring"]),
                unit=chars.get("unit"),
                min_limit=_decimal(chars.get("minLimit")),
                max_limit=_decimal(chars.get("maxLimit")),
                values_list=chars.get("valuesList"),
            )
        )
        for attribute in data.get("variableAttribute") or ():
            rows.append(
                DeviceVariable(
                    charger_id=charger_id,
                    key=key,
                    # Absent type: Actual (2.0.1 VariableAttributeType).
                    attribute_type=AttributeType(attribute.get("type", "Actual")),
                    value=attribute.get("value"),
                    updated_at=at,
                    mutability=attribute.get("mutability"),
                    persistent=attribute.get("persistent"),
                    constant=attribute.get("constant"),
                    characteristics=characteristics,
                )
            )
    return rows


def alerts_from_event(charger_id: str, payload: dict[str, Any], clock: Clock) -> list[Alert]:
    """Each ``eventData`` entry of a NotifyEvent (N07/N08), in order."""
    at = clock.now()
    return [
        Alert(
            charger_id=charger_id,
            event_id=event["eventId"],
            timestamp=timestamp(event["timestamp"], f"eventData[{i}].timestamp"),
            trigger=event["trigger"],
            actual_value=event["actualValue"],
            event_notification_type=event["eventNotificationType"],
            key=key_from(event["component"], event["variable"]),
            received_at=at,
            cleared=bool(event.get("cleared", False)),
            severity=event.get("severity"),
            tech_code=event.get("techCode"),
            tech_info=event.get("techInfo"),
            cause=event.get("cause"),
            transaction_id=event.get("transactionId"),
            variable_monitoring_id=event.get("variableMonitoringId"),
        )
        for i, event in enumerate(payload.get("eventData") or ())
    ]


def _wanted(refs: Iterable[cmd.VariableRef]) -> dict[tuple[Any, ...], cmd.VariableRef]:
    """The variables of a Get/SetVariables by what their results name."""
    return {
        (
            r.component,
            r.instance,
            r.evse_id,
            r.variable,
            r.variable_instance,
            r.attribute_type or "Actual",
        ): r
        for r in refs
    }


def value_updates(
    command: cmd.SetVariables | cmd.GetVariables, data: dict[str, Any], clock: Clock
) -> list[ValueUpdate]:
    """What a SetVariables (B05) or GetVariables (B06) answer says of the stored values.

    SetVariables: Accepted, the attribute now holds the value sent; RebootRequired, it
    holds it once the charger restarts (marked). GetVariables: an Accepted result's
    ``attributeValue``. Results for variables not asked (another central system's) and
    other statuses change nothing.
    """
    at = clock.now()
    wanted = _wanted(command.variables)
    source: Literal["set", "get"] = "set" if isinstance(command, cmd.SetVariables) else "get"
    results = data.get("setVariableResult" if source == "set" else "getVariableResult") or ()
    updates: list[ValueUpdate] = []
    for result in results:
        if not isinstance(result, dict):
            continue
        component, variable = result.get("component") or {}, result.get("variable") or {}
        if "name" not in component or "name" not in variable:
            continue
        attribute = result.get("attributeType", "Actual")
        key = key_from(component, variable)
        ref = wanted.get(
            (
                key.component,
                key.component_instance,
                key.evse_id,
                key.variable,
                key.variable_instance,
                attribute,
            )
        )
        status = result.get("attributeStatus")
        if source == "set":
            if ref is None or ref.value is None or status not in ("Accepted", "RebootRequired"):
                continue
            value: str = ref.value
        else:
            got = result.get("attributeValue")
            if status != "Accepted" or not isinstance(got, str):
                continue
            value = got
        try:
            attribute_type = AttributeType(attribute)
        except ValueError:
            continue
        updates.append(
            ValueUpdate(
                key=key,
                attribute_type=attribute_type,
                value=value,
                at=at,
                source=source,
                reboot_required=status == "RebootRequired",
            )
        )
    return updates


# -- the recorder ---------------------------------------------------------------------------


class DeviceModelRecorder:
    """Stores what chargers report of their device model and alerts; counts the events
    for the metrics (``events``: (trigger, severity) -> count, plain ints read at
    scrape time; severity ``0``..``9`` or ``none``)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        next_request_id: Callable[[], int],
        alerts_kept: int = ALERTS_KEPT,
    ) -> None:
        self.store = store
        self.clock = clock
        self.next_request_id = next_request_id
        self.alerts_kept = alerts_kept
        self.events: dict[tuple[str, str], int] = {}
        self.report_parts = 0

    async def report(self, charger_id: str, payload: dict[str, Any]) -> None:
        request_id, seq_no = payload["requestId"], payload["seqNo"]
        # The schema says integer, which JSON's 1e308 and -5 are: a part numbered so
        # cannot be placed in a report; answered (the charger goes on), not stored.
        if not all(type(n) is int and 0 <= n < 2**31 for n in (request_id, seq_no)):
            log.warning(
                "charger %s: NotifyReport part %r of request %r ignored: not a sequence "
                "number and request id a report can hold",
                charger_id,
                seq_no,
                request_id,
            )
            return
        rows = rows_from_report(charger_id, payload, self.clock)
        try:
            state = await self.store.device_model.apply_report(
                charger_id,
                request_id,
                seq_no,
                bool(payload.get("tbc", False)),
                rows,
                self.clock.now(),
            )
        except ValueError as exc:  # a value the store cannot hold (the store checks)
            log.warning("charger %s: NotifyReport part %s not stored: %s", charger_id, seq_no, exc)
            return
        self.report_parts += 1
        if state.complete:
            log.info(
                "charger %s: report %s complete (%s attributes)",
                charger_id,
                state.request_id,
                state.variables,
            )

    async def event(self, charger_id: str, payload: dict[str, Any]) -> None:
        try:
            alerts = alerts_from_event(charger_id, payload, self.clock)
            await self.store.device_model.add_alerts(charger_id, alerts, keep=self.alerts_kept)
        except ValueError as exc:
            # A schema-valid number no alert can hold (an eventId of 1e308): answered,
            # so that the charger goes on, and not stored.
            log.warning("charger %s: NotifyEvent not stored: %s", charger_id, exc)
            return
        for alert in alerts:
            severity = alert.severity
            label = str(severity) if severity is not None and 0 <= severity <= 9 else "none"
            key = (alert.trigger if alert.trigger in TRIGGERS else "other", label)
            self.events[key] = self.events.get(key, 0) + 1

    async def request_report(
        self, conn: CommandConnection, command: dmm.GetBaseReport | dmm.GetReport
    ) -> cmd.CommandResult:
        """Send a report request under a request id of its own, noted before it goes out
        (the parts may come right behind the answer) and answered with the charger's
        answer (Accepted, Rejected, NotSupported, EmptyResultSet) in ``data``."""
        if command.request_id is None:
            command = replace(command, request_id=self.next_request_id())
        request_id = command.request_id
        assert request_id is not None
        kind = command.report_base.value if isinstance(command, dmm.GetBaseReport) else "custom"
        store = self.store.device_model
        await store.note_request(conn.charger_id, request_id, kind=kind, at=self.clock.now())
        result = await conn.send_command(command)
        answer = result.data.get("status")
        if isinstance(answer, str):
            await store.note_request(
                conn.charger_id, request_id, kind=kind, at=self.clock.now(), answer=answer
            )
        return replace(result, request_id=request_id)

    async def answered(
        self, charger_id: str, command: cmd.Command, result: cmd.CommandResult
    ) -> None:
        """Fold a Get/SetVariables answer into the stored values (never fails the command:
        the charger's answer stands whatever the store does)."""
        if not isinstance(command, cmd.SetVariables | cmd.GetVariables):
            return
        updates = value_updates(command, result.data, self.clock)
        if not updates:
            return
        try:
            await self.store.device_model.update_values(charger_id, updates)
        except Exception as exc:
            log.warning("charger %s: device model values not stored: %s", charger_id, exc)
