"""Property tests of the pure conversions between OCPP payloads and the domain."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.charge_point import remove_nones, snake_to_camel_case

from gateway.csms import v16, v201
from gateway.csms.errors import OcppRequestError, PropertyViolation
from gateway.csms.meter import meter_wh, readings_v16, readings_v201
from gateway.csms.validation import SchemaValidators
from gateway.domain import commands as cmd
from gateway.domain.clock import format_timestamp, parse_timestamp
from gateway.domain.errors import CommandNotSupported
from gateway.domain.models import (
    AuthorizationResult,
    AuthorizationStatus,
    ConnectorStatus,
    Measurand,
    OcppVersion,
)

VALIDATORS = SchemaValidators()
CONVERTER_SETTINGS = settings(max_examples=60, deadline=None)

utc_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
ids = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
small = st.integers(min_value=1, max_value=100)
stamp = utc_times.map(format_timestamp)

commands = st.one_of(
    st.builds(cmd.StartCharging, ids, st.none() | small, st.none() | small),
    st.builds(cmd.StopCharging, st.integers(1, 2**31 - 1).map(str) | ids),
    st.builds(cmd.UnlockConnector, small, small),
    st.builds(cmd.Reset, st.booleans()),
    st.builds(cmd.ChangeAvailability, st.booleans(), st.none() | small),
    st.builds(cmd.GetConfiguration, st.lists(ids, max_size=3).map(tuple)),
    st.builds(cmd.SetConfiguration, ids, ids),
    st.builds(
        cmd.GetVariables,
        st.lists(st.builds(cmd.VariableRef, ids, ids, st.none(), st.none() | small), min_size=1, max_size=3).map(tuple),
    ),
    st.builds(
        cmd.SetVariables,
        st.lists(st.builds(cmd.VariableRef, ids, ids, ids, st.none() | small), min_size=1, max_size=3).map(tuple),
    ),
    st.builds(cmd.TriggerMessage, st.sampled_from(["Heartbeat", "StatusNotification", "MeterValues", "BootNotification"]), st.none() | small),
    st.builds(cmd.UpdateFirmware, st.just("https://fw.example/x.bin"), stamp, st.none() | small, st.none() | small, small),
    st.builds(cmd.GetDiagnostics, st.just("ftp://logs.example/"), st.none() | stamp, st.none() | stamp, small),
    st.builds(cmd.ReserveNow, small, ids, stamp, st.none() | small),
    st.builds(cmd.CancelReservation, small),
)


def _wire(payload: Any) -> dict[str, Any]:
    return dict(snake_to_camel_case(remove_nones(asdict(payload))))


@CONVERTER_SETTINGS
@given(commands)
def test_commands_become_schema_valid_calls(command: cmd.Command) -> None:
    for version, convert in ((OcppVersion.V16, v16.command_to_v16), (OcppVersion.V201, v201.command_to_v201)):
        if version is OcppVersion.V201 and isinstance(command, cmd.StartCharging):
            command = cmd.StartCharging(command.id_token, command.evse_id, command.remote_start_id or 1)
        try:
            payload = convert(command)
        except CommandNotSupported:
            # Only the commands that have no equivalent in that version may be refused.
            assert (version, type(command)) in {
                (OcppVersion.V16, cmd.GetVariables),
                (OcppVersion.V16, cmd.SetVariables),
                (OcppVersion.V201, cmd.GetConfiguration),
                (OcppVersion.V201, cmd.SetConfiguration),
            } or (version is OcppVersion.V16 and isinstance(command, cmd.StopCharging))
            continue
        VALIDATORS.validate(version, type(payload).__name__, _wire(payload))


@CONVERTER_SETTINGS
@given(st.sampled_from(list(AuthorizationStatus)), st.none() | utc_times, st.none() | ids)
def test_authorization_answers_are_schema_valid(status: AuthorizationStatus, expiry: datetime | None, parent: str | None) -> None:
    auth = AuthorizationResult(status, expiry=expiry, parent_id=parent)
    VALIDATORS.validate(OcppVersion.V16, "Authorize", {"idTagInfo": v16.id_tag_info(auth)}, response=True)
    VALIDATORS.validate(OcppVersion.V201, "Authorize", {"idTokenInfo": v201.id_token_info(auth)}, response=True)
    # 1.6 has no Unknown: a token nobody knows is Invalid there.
    expected = "Invalid" if status is AuthorizationStatus.UNKNOWN else status.value
    assert v16.id_tag_info(auth)["status"] == expected


@CONVERTER_SETTINGS
@given(utc_times)
def test_timestamps_round_trip_with_z(when: datetime) -> None:
    text = format_timestamp(when)
    assert text.endswith("Z")
    assert parse_timestamp(text) == when.replace(microsecond=when.microsecond // 1000 * 1000)


@CONVERTER_SETTINGS
@given(utc_times, st.integers(-12, 14))
def test_offsets_normalise_to_utc(when: datetime, hours: int) -> None:
    local = when.astimezone(timezone(timedelta(hours=hours)))
    assert parse_timestamp(local.isoformat()) == when
    # OCPP wants UTC; firmware that omits the offset means UTC.
    assert parse_timestamp(when.replace(tzinfo=None).isoformat()) == when


decimals = st.decimals(min_value=Decimal(0), max_value=Decimal("1e9"), places=3, allow_nan=False)


@CONVERTER_SETTINGS
@given(decimals, st.sampled_from([("Wh", 1), ("kWh", 1000)]), utc_times)
def test_v16_energy_units(value: Decimal, unit: tuple[str, int], when: datetime) -> None:
    name, factor = unit
    [reading] = readings_v16(
        [{"timestamp": format_timestamp(when), "sampledValue": [{"value": str(value), "unit": name}]}], "meterValue"
    )
    assert reading.measurand is Measurand.ENERGY_WH
    assert reading.value == value * factor


@CONVERTER_SETTINGS
@given(decimals, st.integers(-3, 3), st.sampled_from([("W", 1), ("kW", 1000)]))
def test_v201_multiplier_and_units(value: Decimal, multiplier: int, unit: tuple[str, int]) -> None:
    name, factor = unit
    [reading] = readings_v201(
        [
            {
                "timestamp": "2026-01-01T00:00:00Z",
                "sampledValue": [
                    {"value": float(value), "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": name, "multiplier": multiplier}}
                ],
            }
        ],
        "meterValue",
    )
    assert reading.measurand is Measurand.POWER_W
    assert reading.value == Decimal(str(float(value))).scaleb(multiplier) * factor


def test_untracked_measurands_dropped_and_wrong_units_refused() -> None:
    sampled = [
        {"value": "230", "measurand": "Voltage", "unit": "V"},
        {"value": "1", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
        {"value": "signed", "format": "SignedData"},
    ]
    readings = readings_v16([{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": sampled}], "meterValue")
    assert [(r.measurand, r.value) for r in readings] == [(Measurand.ENERGY_WH, Decimal(1000))]
    with pytest.raises(PropertyViolation) as err:
        readings_v16([{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "1", "unit": "A"}]}], "meterValue")
    assert err.value.field == "meterValue[0].sampledValue[0]"
    with pytest.raises(OcppRequestError) as err2:
        readings_v16([{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "x1"}]}], "transactionData")
    assert err2.value.field == "transactionData[0].sampledValue[0].value"


OK_SAMPLE = {"value": "1"}


@pytest.mark.parametrize(
    ("meter_values", "field", "description"),
    [
        ([{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [OK_SAMPLE]}, {"timestamp": "yesterday", "sampledValue": [OK_SAMPLE]}], "meterValue[1].timestamp", "meterValue[1].timestamp: not an RFC 3339 date-time"),
        ([{"timestamp": "1969-12-31T23:59:59Z", "sampledValue": [OK_SAMPLE]}], "meterValue[0].timestamp", "meterValue[0].timestamp: outside 1970 to 2199"),
        ([{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [OK_SAMPLE, {"value": "7", "measurand": "Power.Active.Import", "unit": "Wh"}]}], "meterValue[0].sampledValue[1]", "meterValue[0].sampledValue[1]: unit Wh does not fit Power.Active.Import"),
        ([{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [OK_SAMPLE]}, {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [OK_SAMPLE, {"value": "abc"}]}], "meterValue[1].sampledValue[1].value", "meterValue[1].sampledValue[1].value: not a number"),
        ([{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "Infinity"}]}], "meterValue[0].sampledValue[0].value", "meterValue[0].sampledValue[0].value: not a finite number"),
        ([{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "1e18"}]}], "meterValue[0].sampledValue[0].value", "meterValue[0].sampledValue[0].value: out of range"),
        ([{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "1000000000000000", "unit": "kWh"}]}], "meterValue[0].sampledValue[0].value", "meterValue[0].sampledValue[0].value: out of range"),
    ],
)
def test_a_bad_reading_is_refused_naming_its_field(meter_values: list[dict[str, Any]], field: str, description: str) -> None:
    with pytest.raises(PropertyViolation) as err:
        readings_v16(meter_values, "meterValue")
    assert (err.value.field, err.value.description) == (field, description)


def test_a_bad_meter_start_is_refused_naming_its_field() -> None:
    with pytest.raises(PropertyViolation) as err:
        meter_wh("many", "meterStart")
    assert (err.value.field, err.value.description) == ("meterStart", "meterStart: not a number")


@pytest.mark.parametrize("status", ["Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing", "Reserved", "Unavailable", "Faulted"])
def test_every_v16_status_maps(status: str) -> None:
    state = v16.status_from_v16("CP", {"connectorId": 2, "errorCode": "NoError", "status": status}, datetime(2026, 1, 1, tzinfo=UTC))
    assert state.status is ConnectorStatus(status)
    assert (state.evse_id, state.connector_id, state.error_code) == (2, 1, None)


@pytest.mark.parametrize("status", ["Available", "Occupied", "Reserved", "Unavailable", "Faulted"])
def test_every_v201_status_maps(status: str) -> None:
    state = v201.status_from_v201(
        "CP", {"timestamp": "2026-01-01T00:00:00Z", "connectorStatus": status, "evseId": 3, "connectorId": 2}
    )
    assert state.status is ConnectorStatus(status)
    assert (state.evse_id, state.connector_id) == (3, 2)
