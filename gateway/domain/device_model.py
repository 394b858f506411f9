"""The OCPP 2.0.1/2.1 device model of a charger, as the central system keeps it.

A charger describes itself as components (``EVSE``, ``Connector``, ``OCPPCommCtrlr``...,
optionally with an instance and an EVSE/connector) holding variables (optionally with an
instance), each with up to four attributes (Actual, Target, MinSet, MaxSet) and one set of
characteristics (unit, data type, limits, values list, whether it can be monitored): OCPP
2.0.1 part 2 block B, NotifyReport ``reportData``. One :class:`DeviceVariable` is one
attribute of one variable, the unit the store upserts. Also here: the state of a report
(:class:`ReportStatus`: which parts of a NotifyReport series came), the alerts the
charger's monitors raise (:class:`Alert`, NotifyEvent, block N) and the device model
commands (GetBaseReport, GetReport, monitoring).

Pure: the standard library only.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal


class AttributeType(enum.StrEnum):
    """2.0.1 AttributeEnumType."""

    ACTUAL = "Actual"
    TARGET = "Target"
    MIN_SET = "MinSet"
    MAX_SET = "MaxSet"


@dataclass(frozen=True, slots=True, order=True)
class VariableKey:
    """Where a variable is: component (name, instance, EVSE, connector) and variable
    (name, instance). ``evse_id`` None: the component belongs to the whole charger."""

    component: str
    variable: str
    component_instance: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    variable_instance: str | None = None

    def text(self, attribute_type: AttributeType | str) -> str:
        """The key of one attribute, as both stores hold and order it: a JSON list, so no
        name can be mistaken for a separator; EVSE and connector numbers zero-padded so
        that text order is numeric order (a component without EVSE first)."""
        return json.dumps(
            [
                self.component,
                self.component_instance or "",
                "" if self.evse_id is None else f"{self.evse_id:010d}",
                "" if self.connector_id is None else f"{self.connector_id:010d}",
                self.variable,
                self.variable_instance or "",
                str(attribute_type),
            ],
            ensure_ascii=False,
            separators=(",", ":"),
        )

    def search_text(self) -> str:
        """What ``q`` searches besides the value: the names and instances, case-folded."""
        parts = (self.component, self.component_instance, self.variable, self.variable_instance)
        return "\x00".join(p.casefold() for p in parts if p)


@dataclass(frozen=True, slots=True)
class Characteristics:
    """2.0.1 VariableCharacteristicsType (one per variable, whatever its attributes)."""

    data_type: str
    supports_monitoring: bool
    unit: str | None = None
    min_limit: Decimal | None = None
    max_limit: Decimal | None = None
    values_list: str | None = None  # comma-separated, as the charger sends it


@dataclass(frozen=True, slots=True)
class DeviceVariable:
    """One attribute of one variable of a charger's device model.

    ``value`` None: not known (a report may leave a write-only value out). ``source``:
    what last told the gateway the value (``report``, ``set``: a SetVariables the charger
    accepted, ``get``: a GetVariables answer). ``reboot_required``: a SetVariables was
    answered RebootRequired and no later one accepted at once.
    """

    charger_id: str
    key: VariableKey
    attribute_type: AttributeType
    value: str | None
    updated_at: datetime
    mutability: str | None = None  # ReadOnly, WriteOnly, ReadWrite (None: not reported)
    persistent: bool | None = None
    constant: bool | None = None
    characteristics: Characteristics | None = None
    source: Literal["report", "set", "get"] = "report"
    reboot_required: bool = False

    @property
    def sort_key(self) -> str:
        return self.key.text(self.attribute_type)


@dataclass(frozen=True, slots=True)
class ValueUpdate:
    """A value the charger accepted (SetVariables, GetVariables): only the value, its
    time, source and reboot mark change; what a report told of the variable stays."""

    key: VariableKey
    attribute_type: AttributeType
    value: str
    at: datetime
    source: Literal["set", "get"]
    reboot_required: bool = False


@dataclass(frozen=True, slots=True)
class DeviceModelQuery:
    """A search of one charger's device model: every criterion given must hold. ``q``: a
    case-insensitive substring of a component or variable name or instance, or of the
    value."""

    component: str | None = None
    variable: str | None = None
    evse_id: int | None = None
    q: str | None = None

    def matches(self, row: DeviceVariable) -> bool:
        key = row.key
        if self.component is not None and key.component != self.component:
            return False
        if self.variable is not None and key.variable != self.variable:
            return False
        if self.evse_id is not None and key.evse_id != self.evse_id:
            return False
        if self.q:
            needle = self.q.casefold()
            value = (row.value or "").casefold()
            return needle in key.search_text() or needle in value
        return True


@dataclass(frozen=True, slots=True)
class ReportStatus:
    """How far a report (GetBaseReport / GetReport, or one the charger sent unasked) came.

    ``kind``: the report base (ConfigurationInventory, FullInventory, SummaryInventory),
    ``custom`` for GetReport, None when the gateway did not ask for it. NotifyReport
    parts carry ``seqNo`` from 0 and ``tbc`` true on all but the last: the report is
    complete once the last came and every part before it.
    """

    charger_id: str
    request_id: int
    kind: str | None = None
    requested_at: datetime | None = None
    answer: str | None = None  # the charger's answer to the request
    seq_nos: frozenset[int] = frozenset()
    last_seq_no: int | None = None  # of the part with tbc false
    variables: int = 0  # attributes received (repeats counted again)
    updated_at: datetime | None = None

    @property
    def complete(self) -> bool:
        # Counted, not compared with range(last + 1): a charger's seqNo may be any int
        # (a fuzzed 2**31 once made that set and the process ran out of memory).
        last = self.last_seq_no
        if last is None or last < 0 or len(self.seq_nos) != last + 1:
            return False
        return min(self.seq_nos) == 0 and max(self.seq_nos) == last

    def missing(self, at_most: int = 20) -> list[int]:
        """Parts not received below the highest known one (the first ``at_most``)."""
        top = self.last_seq_no if self.last_seq_no is not None else max(self.seq_nos, default=-1)
        out: list[int] = []
        for n in range(top + 1):
            if n not in self.seq_nos:
                out.append(n)
                if len(out) >= at_most:
                    break
        return out


@dataclass(frozen=True, slots=True)
class Alert:
    """One NotifyEvent ``eventData`` entry (2.0.1 N07/N08), kept per charger.

    ``seq``: the store's arrival number (0 before it is stored). An Alerting event that
    does not itself report a clearing is *active* until an event with ``cleared`` true
    for the same component and variable arrives (then ``cleared_at``); Delta and
    Periodic events report values, never an active condition.
    """

    charger_id: str
    event_id: int
    timestamp: datetime
    trigger: str  # Alerting, Delta, Periodic
    actual_value: str
    event_notification_type: str  # HardWiredNotification, HardWiredMonitor, ...
    key: VariableKey
    received_at: datetime
    cleared: bool = False
    severity: int | None = None  # of the monitor (0 most severe)
    tech_code: str | None = None
    tech_info: str | None = None
    cause: int | None = None
    transaction_id: str | None = None
    variable_monitoring_id: int | None = None
    seq: int = 0
    cleared_at: datetime | None = None

    @property
    def raises(self) -> bool:
        """Whether it raises a condition that stays until cleared."""
        return self.trigger == "Alerting" and not self.cleared

    @property
    def active(self) -> bool:
        return self.raises and self.cleared_at is None

    @property
    def match(self) -> str:
        """What a clearing event must name to clear it: component and variable."""
        return self.key.text("")


# -- commands (gateway.domain.commands lists them among the others) -----------------------


class ReportBase(enum.StrEnum):
    CONFIGURATION_INVENTORY = "ConfigurationInventory"
    FULL_INVENTORY = "FullInventory"
    SUMMARY_INVENTORY = "SummaryInventory"


@dataclass(frozen=True, slots=True)
class GetBaseReport:
    """2.0.1 B07: the charger reports its device model (NotifyReport) under ``request_id``
    (None: the central system gives it a fresh one)."""

    report_base: ReportBase = ReportBase.FULL_INVENTORY
    request_id: int | None = None


@dataclass(frozen=True, slots=True)
class ComponentVariable:
    """A component, optionally one of its variables (GetReport / ClearVariableMonitoring
    filters: ``variable`` None means every variable of the component)."""

    component: str
    variable: str | None = None
    component_instance: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    variable_instance: str | None = None


@dataclass(frozen=True, slots=True)
class GetReport:
    """2.0.1 B08: a report of the variables named (``component_variables``) and/or of the
    components with the criteria (Active, Available, Enabled, Problem)."""

    component_variables: tuple[ComponentVariable, ...] = ()
    component_criteria: tuple[str, ...] = ()
    request_id: int | None = None


@dataclass(frozen=True, slots=True)
class Monitor:
    """One SetMonitoringData entry (2.0.1 N04): ``kind`` UpperThreshold, LowerThreshold,
    Delta, Periodic or PeriodicClockAligned; ``value`` the threshold, delta or interval
    (seconds); ``severity`` 0 (Danger) to 9 (Debug). ``id`` set: replace that monitor."""

    target: ComponentVariable
    kind: str
    value: Decimal
    severity: int
    transaction: bool = False
    id: int | None = None


@dataclass(frozen=True, slots=True)
class SetVariableMonitoring:
    monitors: tuple[Monitor, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class ClearVariableMonitoring:
    """2.0.1 N06: remove the monitors with these ids."""

    ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SetMonitoringBase:
    """2.0.1 N03: All, FactoryDefault or HardWiredOnly."""

    base: Literal["All", "FactoryDefault", "HardWiredOnly"]


@dataclass(frozen=True, slots=True)
class SetMonitoringLevel:
    """2.0.1 N05: the charger reports only events of ``severity`` or more severe (lower)."""

    severity: int


DeviceModelCommand = (
    GetBaseReport
    | GetReport
    | SetVariableMonitoring
    | ClearVariableMonitoring
    | SetMonitoringBase
    | SetMonitoringLevel
)
