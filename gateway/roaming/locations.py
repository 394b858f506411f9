"""OCPI Locations from the operator's location records and the chargers' live state.

Pure functions: the provider and the push logic call them with what they read
from the store. The OCPP to OCPI status mapping (documented in the README):

===========================================  ====================
OCPP 1.6 / 2.0.1 connector status            OCPI EVSE status
===========================================  ====================
Available                                    AVAILABLE
Preparing, Charging, SuspendedEV,            CHARGING (in use)
SuspendedEVSE, Finishing (1.6), Occupied
(2.0.1)
Reserved                                     RESERVED
Unavailable                                  INOPERATIVE
Faulted                                      OUTOFORDER
charger offline, or never reported           UNKNOWN
===========================================  ====================

A 1.6 StatusNotification for connectorId 0 (the whole charger) of Unavailable or
Faulted overrides every EVSE of that charger. An EVSE with several connectors
(2.0.1) is CHARGING when any connector is in use, else the most severe state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.domain.models import Charger, ConnectorState, ConnectorStatus, EvseConfig
from ocpi.v221 import EVSE, Connector, Location
from ocpi.v221.enums import Status

STATUS_MAP: Mapping[ConnectorStatus, Status] = {
    ConnectorStatus.AVAILABLE: Status.AVAILABLE,
    ConnectorStatus.PREPARING: Status.CHARGING,
    ConnectorStatus.CHARGING: Status.CHARGING,
    ConnectorStatus.SUSPENDED_EV: Status.CHARGING,
    ConnectorStatus.SUSPENDED_EVSE: Status.CHARGING,
    ConnectorStatus.FINISHING: Status.CHARGING,
    ConnectorStatus.OCCUPIED: Status.CHARGING,
    ConnectorStatus.RESERVED: Status.RESERVED,
    ConnectorStatus.UNAVAILABLE: Status.INOPERATIVE,
    ConnectorStatus.FAULTED: Status.OUTOFORDER,
    ConnectorStatus.UNKNOWN: Status.UNKNOWN,
}

# For an EVSE whose connectors disagree: the first listed status present wins.
_PRECEDENCE = (
    Status.CHARGING,
    Status.RESERVED,
    Status.OUTOFORDER,
    Status.INOPERATIVE,
    Status.UNKNOWN,
    Status.AVAILABLE,
)


@dataclass(frozen=True, slots=True)
class ChargerView:
    """What the location builder needs of one charger bound to the location."""

    charger: Charger
    connected: bool
    states: Sequence[ConnectorState]


def evse_status(evse: EvseConfig, view: ChargerView) -> Status:
    if not view.connected:
        return Status.UNKNOWN
    whole = next((s for s in view.states if s.evse_id == 0), None)
    if whole is not None and whole.status in (ConnectorStatus.UNAVAILABLE, ConnectorStatus.FAULTED):
        return STATUS_MAP[whole.status]
    mine = [STATUS_MAP[s.status] for s in view.states if s.evse_id == evse.ocpp_id]
    if not mine:
        return Status.UNKNOWN
    return next(status for status in _PRECEDENCE if status in mine)


def evse_last_updated(evse: EvseConfig, view: ChargerView, floor: datetime) -> datetime:
    stamps = [s.timestamp for s in view.states if s.evse_id in (0, evse.ocpp_id)]
    return max([floor, *stamps])


def build_evse(
    evse: EvseConfig,
    view: ChargerView,
    connectors: Sequence[Connector],
    extra: Mapping[str, object],
    config_updated: datetime,
) -> EVSE:
    updated = evse_last_updated(evse, view, config_updated)
    data: dict[str, object] = dict(extra) | {
        "uid": evse.evse_uid,
        "evse_id": evse.evse_id,
        "status": evse_status(evse, view),
        "connectors": list(connectors),
        "last_updated": updated,
    }
    return EVSE.model_validate({k: v for k, v in data.items() if v is not None})


def build_location(
    template: Location,
    views: Iterable[ChargerView],
    connectors_for: Mapping[str, Sequence[Connector]],
    evse_extras: Mapping[str, Mapping[str, object]],
) -> Location:
    """``template`` is the operator's record (no EVSEs); ``connectors_for`` maps an EVSE
    uid to its OCPI connectors; ``evse_extras`` to extra EVSE fields (capabilities,
    floor level, physical reference). An EVSE without connectors is left out: OCPI
    requires at least one."""
    evses: list[EVSE] = []
    for view in views:
        for evse in view.charger.evses:
            connectors = connectors_for.get(evse.evse_uid)
            if not connectors:
                continue
            evses.append(
                build_evse(
                    evse,
                    view,
                    connectors,
                    evse_extras.get(evse.evse_uid, {}),
                    template.last_updated,
                )
            )
    evses.sort(key=lambda e: e.uid)
    last_updated = max([template.last_updated, *(e.last_updated for e in evses)])
    return template.model_copy(update={"evses": evses or None, "last_updated": last_updated})
