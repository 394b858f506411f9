"""Admin API: a 2.0.1/2.1 charger's device model, its reports, monitors and alerts.

``GET /chargers/{id}/device-model`` searches the stored model (and lists the report
states), ``POST .../device-model/report`` asks the charger for a report (GetBaseReport or
GetReport), the ``monitors`` and ``monitoring-*`` routes set and clear its monitors
(SetVariableMonitoring, ClearVariableMonitoring, SetMonitoringBase, SetMonitoringLevel),
``GET .../alerts`` lists what the monitors raised (NotifyEvent). Values are set with the
``set-variables`` command (``gateway.admin.api``), whose results update the stored model.
Every request to a charger goes through the one command path (``ROUTER``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import TypedDict

from gateway.admin import openapi as api
from gateway.admin.http import ApiError, read_body, read_query, respond
from gateway.domain import device_model as dmm
from gateway.domain.commands import Command, CommandResult
from gateway.domain.device_model import Alert, DeviceModelQuery, DeviceVariable, ReportStatus
from gateway.domain.errors import (
    ChargerNotConnected,
    ChargerRejected,
    ChargerTimeout,
    CommandNotSupported,
)
from gateway.keys import ROUTER, STORE

_MAX_INT = 2_147_483_647  # OCPP integers are 32-bit


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


Name = Annotated[str, Field(min_length=1, max_length=50)]  # 2.0.1 identifierString(50)


# -- bodies and queries -------------------------------------------------------------------


class DeviceModelQueryModel(_Model):
    component: Name | None = Field(default=None, description="a component name, exactly")
    variable: Name | None = Field(default=None, description="a variable name, exactly")
    evse_id: int | None = Field(default=None, ge=0, le=_MAX_INT)
    q: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="case-insensitive part of a component or variable name or instance, or of"
        " the value",
    )
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


class AlertQuery(_Model):
    active: bool | None = Field(
        default=None, description="true: only active alerts; false: only the others"
    )
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


class ComponentVariableBody(_Model):
    component: Name
    variable: Name | None = None
    component_instance: Name | None = None
    variable_instance: Name | None = None
    evse_id: int | None = Field(default=None, ge=0, le=_MAX_INT)
    connector_id: int | None = Field(default=None, ge=1, le=_MAX_INT)

    @model_validator(mode="after")
    def _connector_needs_evse(self) -> ComponentVariableBody:
        if self.connector_id is not None and self.evse_id is None:
            raise ValueError("connector_id needs evse_id")
        return self

    def to_domain(self) -> dmm.ComponentVariable:
        return dmm.ComponentVariable(
            component=self.component,
            variable=self.variable,
            component_instance=self.component_instance,
            evse_id=self.evse_id,
            connector_id=self.connector_id,
            variable_instance=self.variable_instance,
        )


Criterion = Literal["Active", "Available", "Enabled", "Problem"]


class ReportBody(_Model):
    kind: Literal["base", "custom"] = Field(
        description="base: GetBaseReport of report_base; custom: GetReport with the filters"
    )
    report_base: Literal["ConfigurationInventory", "FullInventory", "SummaryInventory"] = (
        "FullInventory"
    )
    component_variables: list[ComponentVariableBody] = Field(default=[], max_length=1000)
    component_criteria: list[Criterion] = Field(default=[], max_length=4)
    request_id: int | None = Field(default=None, ge=0, le=_MAX_INT)

    @model_validator(mode="after")
    def _filters_fit_the_kind(self) -> ReportBody:
        filters = self.component_variables or self.component_criteria
        if self.kind == "custom" and not filters:
            raise ValueError("a custom report needs component_variables or component_criteria")
        if self.kind == "base" and filters:
            raise ValueError("filters are for kind custom (GetReport)")
        if len(set(self.component_criteria)) != len(self.component_criteria):
            raise ValueError("component_criteria must not repeat")
        return self

    def to_command(self) -> dmm.GetBaseReport | dmm.GetReport:
        if self.kind == "base":
            return dmm.GetBaseReport(dmm.ReportBase(self.report_base), self.request_id)
        return dmm.GetReport(
            tuple(c.to_domain() for c in self.component_variables),
            tuple(self.component_criteria),
            self.request_id,
        )


class MonitorBody(ComponentVariableBody):
    variable: Name  # a monitor watches one variable
    type: Literal["UpperThreshold", "LowerThreshold", "Delta", "Periodic", "PeriodicClockAligned"]
    value: Decimal = Field(
        allow_inf_nan=False,
        ge=Decimal("-1e15"),
        le=Decimal("1e15"),
        description="the threshold, the delta, or the interval in seconds (Periodic*)",
    )
    severity: int = Field(ge=0, le=9, description="0 Danger ... 9 Debug")
    transaction: bool = False
    id: int | None = Field(default=None, ge=0, le=_MAX_INT, description="replace this monitor")

    @model_validator(mode="after")
    def _positive_where_needed(self) -> MonitorBody:
        if self.type in ("Periodic", "PeriodicClockAligned") and self.value <= 0:
            raise ValueError("value: a period must be more than 0 seconds")
        if self.type == "Delta" and self.value < 0:
            raise ValueError("value: a delta must not be negative")
        return self

    def to_monitor(self) -> dmm.Monitor:
        return dmm.Monitor(
            self.to_domain(), self.type, self.value, self.severity, self.transaction, self.id
        )


class MonitorsBody(_Model):
    monitors: list[MonitorBody] = Field(min_length=1, max_length=1000)


class ClearMonitorsBody(_Model):
    ids: list[Annotated[int, Field(ge=0, le=_MAX_INT)]] = Field(min_length=1, max_length=1000)


class MonitoringBaseBody(_Model):
    base: Literal["All", "FactoryDefault", "HardWiredOnly"]


class MonitoringLevelBody(_Model):
    severity: int = Field(ge=0, le=9, description="report events of this severity or lower")


# -- views --------------------------------------------------------------------------------


class CharacteristicsView(TypedDict):
    data_type: str
    supports_monitoring: bool
    unit: str | None
    min_limit: Decimal | None
    max_limit: Decimal | None
    values_list: str | None


class DeviceVariableView(TypedDict):
    component: str
    component_instance: str | None
    evse_id: int | None
    connector_id: int | None
    variable: str
    variable_instance: str | None
    attribute_type: str
    value: str | None
    mutability: str | None
    persistent: bool | None
    constant: bool | None
    characteristics: CharacteristicsView | None
    source: str
    reboot_required: bool
    updated_at: datetime


class ReportView(TypedDict):
    request_id: int
    kind: str | None
    requested_at: datetime | None
    answer: str | None
    parts: int
    last_seq_no: int | None
    complete: bool
    missing: list[int]
    variables: int
    updated_at: datetime | None


class DeviceModelView(TypedDict):
    total: int
    variables: list[DeviceVariableView]
    reports: list[ReportView]


class AlertView(TypedDict):
    seq: int
    event_id: int
    timestamp: datetime
    received_at: datetime
    trigger: str
    actual_value: str
    severity: int | None
    tech_code: str | None
    tech_info: str | None
    cleared: bool
    active: bool
    cleared_at: datetime | None
    event_notification_type: str
    component: str
    component_instance: str | None
    evse_id: int | None
    connector_id: int | None
    variable: str
    variable_instance: str | None
    variable_monitoring_id: int | None
    cause: int | None
    transaction_id: str | None


class ChargerAnswer(TypedDict):
    status: str  # the charger's own status (Accepted, Rejected, NotSupported, ...)
    data: dict[str, Any]
    request_id: NotRequired[int]


def variable_view(row: DeviceVariable) -> DeviceVariableView:
    ch = row.characteristics
    return {
        "component": row.key.component,
        "component_instance": row.key.component_instance,
        "evse_id": row.key.evse_id,
        "connector_id": row.key.connector_id,
        "variable": row.key.variable,
        "variable_instance": row.key.variable_instance,
        "attribute_type": row.attribute_type.value,
        "value": row.value,
        "mutability": row.mutability,
        "persistent": row.persistent,
        "constant": row.constant,
        "characteristics": None
        if ch is None
        else {
            "data_type": ch.data_type,
            "supports_monitoring": ch.supports_monitoring,
            "unit": ch.unit,
            "min_limit": ch.min_limit,
            "max_limit": ch.max_limit,
            "values_list": ch.values_list,
        },
        "source": row.source,
        "reboot_required": row.reboot_required,
        "updated_at": row.updated_at,
    }


def report_view(state: ReportStatus) -> ReportView:
    return {
        "request_id": state.request_id,
        "kind": state.kind,
        "requested_at": state.requested_at,
        "answer": state.answer,
        "parts": len(state.seq_nos),
        "last_seq_no": state.last_seq_no,
        "complete": state.complete,
        "missing": state.missing(),
        "variables": state.variables,
        "updated_at": state.updated_at,
    }


def alert_view(alert: Alert) -> AlertView:
    return {
        "seq": alert.seq,
        "event_id": alert.event_id,
        "timestamp": alert.timestamp,
        "received_at": alert.received_at,
        "trigger": alert.trigger,
        "actual_value": alert.actual_value,
        "severity": alert.severity,
        "tech_code": alert.tech_code,
        "tech_info": alert.tech_info,
        "cleared": alert.cleared,
        "active": alert.active,
        "cleared_at": alert.cleared_at,
        "event_notification_type": alert.event_notification_type,
        "component": alert.key.component,
        "component_instance": alert.key.component_instance,
        "evse_id": alert.key.evse_id,
        "connector_id": alert.key.connector_id,
        "variable": alert.key.variable,
        "variable_instance": alert.key.variable_instance,
        "variable_monitoring_id": alert.variable_monitoring_id,
        "cause": alert.cause,
        "transaction_id": alert.transaction_id,
    }


# -- handlers -----------------------------------------------------------------------------


async def _charger(request: web.Request) -> str:
    cp_id = request.match_info["charger_id"]
    if not 1 <= len(cp_id) <= 48:
        raise ApiError(400, "charger id must be 1 to 48 characters", "charger_id")
    if await request.config_dict[STORE].chargers.get(cp_id) is None:
        raise ApiError(404, f"charger {cp_id!r} not found")
    return cp_id


async def _send(request: web.Request, cp_id: str, command: Command) -> ChargerAnswer:
    """Through the one command path; the errors of README "Admin API"."""
    try:
        result: CommandResult = await request.config_dict[ROUTER].send(cp_id, command)
    except ChargerNotConnected as exc:
        raise ApiError(409, str(exc)) from None
    except ChargerTimeout as exc:
        raise ApiError(504, str(exc)) from None
    except ChargerRejected as exc:
        raise ApiError(502, f"charger answered with a CALLERROR: {exc}") from None
    except CommandNotSupported as exc:
        raise ApiError(422, str(exc)) from None
    # The charger's own status word (EmptyResultSet stays EmptyResultSet).
    raw = result.data.get("status")
    answer: ChargerAnswer = {
        "status": raw if isinstance(raw, str) else result.status.value,
        "data": result.data,
    }
    if result.request_id is not None:
        answer["request_id"] = result.request_id
    return answer


async def get_device_model(request: web.Request) -> web.Response:
    q: DeviceModelQueryModel = read_query(request, DeviceModelQueryModel)
    cp_id = await _charger(request)
    store = request.config_dict[STORE].device_model
    query = DeviceModelQuery(q.component, q.variable, q.evse_id, q.q)
    rows, total = await store.query(cp_id, query, limit=q.limit, offset=q.offset)
    view: DeviceModelView = {
        "total": total,
        "variables": [variable_view(r) for r in rows],
        "reports": [report_view(s) for s in await store.reports(cp_id)],
    }
    return respond(view)


async def post_report(request: web.Request) -> web.Response:
    cp_id = await _charger(request)
    body: ReportBody = await read_body(request, ReportBody)
    return respond(await _send(request, cp_id, body.to_command()))


async def get_alerts(request: web.Request) -> web.Response:
    q: AlertQuery = read_query(request, AlertQuery)
    cp_id = await _charger(request)
    alerts = await request.config_dict[STORE].device_model.alerts(
        cp_id, active=q.active, limit=q.limit, offset=q.offset
    )
    return respond([alert_view(a) for a in alerts])


async def post_monitors(request: web.Request) -> web.Response:
    cp_id = await _charger(request)
    body: MonitorsBody = await read_body(request, MonitorsBody)
    command = dmm.SetVariableMonitoring(tuple(m.to_monitor() for m in body.monitors))
    return respond(await _send(request, cp_id, command))


async def clear_monitors(request: web.Request) -> web.Response:
    cp_id = await _charger(request)
    body: ClearMonitorsBody = await read_body(request, ClearMonitorsBody)
    return respond(await _send(request, cp_id, dmm.ClearVariableMonitoring(tuple(body.ids))))


async def monitoring_base(request: web.Request) -> web.Response:
    cp_id = await _charger(request)
    body: MonitoringBaseBody = await read_body(request, MonitoringBaseBody)
    return respond(await _send(request, cp_id, dmm.SetMonitoringBase(body.base)))


async def monitoring_level(request: web.Request) -> web.Response:
    cp_id = await _charger(request)
    body: MonitoringLevelBody = await read_body(request, MonitoringLevelBody)
    return respond(await _send(request, cp_id, dmm.SetMonitoringLevel(body.severity)))


def device_model_routes() -> list[api.Operation]:
    charger = {"charger_id": "the charge point id (1 to 48 characters), as in its WebSocket URL"}
    sent = {**api.CHARGER_ERRORS}
    common: dict[str, Any] = {"path_params": charger, "tag": "device-model"}
    return [
        api.get(
            "/chargers/{charger_id}/device-model",
            get_device_model,
            "The charger's stored device model, searched, and its report states",
            description="Attributes in key order (component, instance, EVSE, connector,"
            " variable, instance, attribute type), paged; `total` counts the matches.",
            query=DeviceModelQueryModel,
            response=DeviceModelView,
            errors={404: "no such charger"},
            **common,
        ),
        api.post(
            "/chargers/{charger_id}/device-model/report",
            post_report,
            "Ask the charger for a report (GetBaseReport or GetReport)",
            description="Answers the charger's answer (Accepted, Rejected, NotSupported,"
            " EmptyResultSet) and the request id; the NotifyReport parts that follow are"
            " stored as they come (their state in GET .../device-model).",
            body=ReportBody,
            response=ChargerAnswer,
            errors=sent,
            **common,
        ),
        api.get(
            "/chargers/{charger_id}/alerts",
            get_alerts,
            "What the charger's monitors reported (NotifyEvent), newest first",
            query=AlertQuery,
            response=list[AlertView],
            errors={404: "no such charger"},
            **common,
        ),
        api.post(
            "/chargers/{charger_id}/monitors",
            post_monitors,
            "Set variable monitors (SetVariableMonitoring)",
            body=MonitorsBody,
            response=ChargerAnswer,
            errors=sent,
            **common,
        ),
        api.post(
            "/chargers/{charger_id}/monitors/clear",
            clear_monitors,
            "Remove monitors by id (ClearVariableMonitoring)",
            body=ClearMonitorsBody,
            response=ChargerAnswer,
            errors=sent,
            **common,
        ),
        api.post(
            "/chargers/{charger_id}/monitoring-base",
            monitoring_base,
            "Reset the monitors to a base (SetMonitoringBase)",
            body=MonitoringBaseBody,
            response=ChargerAnswer,
            errors=sent,
            **common,
        ),
        api.post(
            "/chargers/{charger_id}/monitoring-level",
            monitoring_level,
            "Report events of this severity or more severe (SetMonitoringLevel)",
            body=MonitoringLevelBody,
            response=ChargerAnswer,
            errors=sent,
            **common,
        ),
    ]
