"""OCPP connector status to OCPI EVSE status, and Location building (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.models import Charger, ConnectorState, ConnectorStatus, EvseConfig
from gateway.roaming.locations import STATUS_MAP, ChargerView, build_location, evse_status
from ocpi.transport import json_loads
from ocpi.v221 import Connector, Location
from ocpi.v221.enums import Status
from tests.ocpi.openapi import validate_against_openapi

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
EVSE1 = EvseConfig(ocpp_id=1, evse_uid="E1", evse_id="ZZ*GWY*E1", connectors=(1, 2))


def _state(evse: int, status: ConnectorStatus, connector: int = 1, minutes: int = 0) -> ConnectorState:
    return ConnectorState("CP", evse, connector, status, T0 + timedelta(minutes=minutes))


EXPECTED = {
    "Available": "AVAILABLE",
    "Preparing": "CHARGING",
    "Charging": "CHARGING",
    "SuspendedEV": "CHARGING",
    "SuspendedEVSE": "CHARGING",
    "Finishing": "CHARGING",
    "Occupied": "CHARGING",
    "Reserved": "RESERVED",
    "Unavailable": "INOPERATIVE",
    "Faulted": "OUTOFORDER",
    "Unknown": "UNKNOWN",
}


@pytest.mark.parametrize(("ocpp", "ocpi"), sorted(EXPECTED.items()))
def test_status_table(ocpp: str, ocpi: str) -> None:
    view = ChargerView(Charger("CP", evses=(EVSE1,)), True, [_state(1, ConnectorStatus(ocpp))])
    assert evse_status(EVSE1, view) == Status(ocpi)


def test_table_is_complete() -> None:
    assert set(STATUS_MAP) == set(ConnectorStatus)
    assert {s.value for s in ConnectorStatus} == set(EXPECTED)


def test_offline_and_unreported_are_unknown() -> None:
    charger = Charger("CP", evses=(EVSE1,))
    assert evse_status(EVSE1, ChargerView(charger, False, [_state(1, ConnectorStatus.AVAILABLE)])) is Status.UNKNOWN
    assert evse_status(EVSE1, ChargerView(charger, True, [])) is Status.UNKNOWN


@pytest.mark.parametrize(("whole", "expected"), [("Unavailable", "INOPERATIVE"), ("Faulted", "OUTOFORDER"), ("Available", "CHARGING")])
def test_connector_zero_overrides(whole: str, expected: str) -> None:
    view = ChargerView(
        Charger("CP", evses=(EVSE1,)), True, [_state(0, ConnectorStatus(whole), 0), _state(1, ConnectorStatus.CHARGING)]
    )
    assert evse_status(EVSE1, view) == Status(expected)


@given(st.lists(st.sampled_from(list(ConnectorStatus)), min_size=1, max_size=4))
def test_multi_connector_evse(statuses: list[ConnectorStatus]) -> None:
    states = [_state(1, s, connector=i + 1) for i, s in enumerate(statuses)]
    result = evse_status(EVSE1, ChargerView(Charger("CP", evses=(EVSE1,)), True, states))
    mapped = {STATUS_MAP[s] for s in statuses}
    assert result in mapped
    if Status.CHARGING in mapped:
        assert result is Status.CHARGING
    if mapped == {Status.AVAILABLE}:
        assert result is Status.AVAILABLE


def test_build_location_validates_against_openapi() -> None:
    template = Location.model_validate(
        json_loads(
            """{"country_code": "ZZ", "party_id": "GWY", "id": "LOC1", "publish": true,
            "name": "Depot", "address": "Main street 1", "city": "Utrecht", "postal_code": "3511AA",
            "country": "NLD", "coordinates": {"latitude": "52.090737", "longitude": "5.121420"},
            "time_zone": "Europe/Amsterdam", "last_updated": "2026-11-23T08:00:00Z"}"""
        )
    )
    connector = Connector.model_validate(
        {"id": "1", "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE",
         "max_voltage": 230, "max_amperage": 32, "tariff_ids": ["T1"], "last_updated": "2026-11-23T08:00:00Z"}
    )
    other = EvseConfig(ocpp_id=2, evse_uid="E2")
    no_connectors = EvseConfig(ocpp_id=3, evse_uid="E3")
    view = ChargerView(
        Charger("CP", location_id="LOC1", evses=(EVSE1, other, no_connectors)),
        True,
        [_state(1, ConnectorStatus.CHARGING, minutes=30), _state(2, ConnectorStatus.AVAILABLE, minutes=5)],
    )
    location = build_location(template, [view], {"E1": [connector], "E2": [connector]}, {"E1": {"floor_level": "-1"}})
    assert [(e.uid, e.status) for e in location.evses or []] == [("E1", Status.CHARGING), ("E2", Status.AVAILABLE)]
    assert location.last_updated == T0 + timedelta(minutes=30)
    assert (location.evses or [])[0].floor_level == "-1"
    validate_against_openapi("locations", "Location", json_loads(location.to_json()))
