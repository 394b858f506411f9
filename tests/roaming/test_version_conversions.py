"""What the outbox sends a 2.1.1 or 2.3.0 partner: the PATCH conversions and
:func:`gateway.roaming.versioning.outgoing`, the object each stored body becomes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ocpi.v211 as v211
import ocpi.v221 as v221
import ocpi.v230 as v230
from gateway.roaming.versioning import outgoing
from ocpi.transport import json_dumps, json_loads
from ocpi.versions import NotExpressible
from ocpi.versions.patches import patch_to_v211
from ocpi.versions.v211 import (
    connector_to_v211,
    evse_to_v211,
    location_to_v211,
    session_to_v211,
)
from tests.ocpi.model_strategies import objects
from tests.ocpi.openapi import validate_against_openapi

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _wire(model: Any) -> Any:
    return json_loads(json_dumps(model))


def _full_or_error(convert: Any, *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    try:
        return _wire(convert(*args, **kwargs)), None
    except NotExpressible as exc:
        return None, exc.field


@SETTINGS
@given(objects(v221.EVSE))
def test_an_evse_patch_of_every_field_says_what_the_put_says(evse: v221.EVSE) -> None:
    full, error = _full_or_error(evse_to_v211, evse)
    patch = v221.EVSEPatch.model_validate(evse.to_wire())
    converted, patch_error = _full_or_error(patch_to_v211, patch)
    assert patch_error == error
    if full is not None:
        assert converted == full
        v211.EVSEPatch.model_validate(converted)


@SETTINGS
@given(objects(v221.Connector))
def test_a_connector_patch_of_every_field_says_what_the_put_says(connector: v221.Connector) -> None:
    full, error = _full_or_error(connector_to_v211, connector)
    converted, patch_error = _full_or_error(patch_to_v211, v221.ConnectorPatch.model_validate(connector.to_wire()))
    assert patch_error == error
    if converted is not None:
        # An empty tariff_ids is tariff_id null in a PATCH ("none"), left out of a PUT.
        assert {k: v for k, v in converted.items() if v is not None} == full


@SETTINGS
@given(objects(v221.Location))
def test_a_location_patch_says_what_the_put_says(location: v221.Location) -> None:
    """Every field of the converted PATCH is the PUT's (the PUT fills in what 2.1.1
    requires and the 2.2.1 object lacks: a patch leaves those unchanged)."""
    full, error = _full_or_error(location_to_v211, location)
    converted, patch_error = _full_or_error(patch_to_v211, v221.LocationPatch.model_validate(location.to_wire()))
    if error is not None:
        assert patch_error == error
        return
    assert patch_error is None and full is not None
    assert {k: v for k, v in full.items() if k in converted} == converted


@SETTINGS
@given(objects(v221.Session, exclude={"RESERVATION"}), st.booleans())
def test_a_session_patch_says_what_the_put_says(session: v221.Session, with_total: bool) -> None:
    location = _location_of(session)
    full = _wire(session_to_v211(session, location=location))
    fields = {k: v for k, v in session.to_wire().items() if k not in ("location_id", "evse_uid", "connector_id", "charging_periods")}
    if not with_total:
        fields.pop("total_cost", None)
    converted = _wire(patch_to_v211(v221.SessionPatch.model_validate(fields)))
    assert {k: v for k, v in full.items() if k in converted} == converted
    assert set(converted) >= {"kwh", "status", "auth_id", "last_updated"}


def _location_of(session: v221.Session) -> v221.Location:
    return v221.Location.model_validate(
        {
            "country_code": session.country_code, "party_id": session.party_id, "id": session.location_id, "publish": True,
            "address": "Main 1", "city": "Utrecht", "country": "NLD", "coordinates": {"latitude": "52.090000", "longitude": "5.110000"},
            "time_zone": "Europe/Amsterdam", "last_updated": "2026-11-23T08:00:00Z",
            "evses": [{"uid": session.evse_uid, "status": "CHARGING", "last_updated": "2026-11-23T08:00:00Z", "connectors": [
                {"id": session.connector_id, "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE",
                 "max_voltage": 230, "max_amperage": 32, "last_updated": "2026-11-23T08:00:00Z"}]}],
        }
    )


def test_session_patch_fields_2_1_1_cannot_say() -> None:
    base = {"last_updated": "2026-11-23T10:00:00Z"}
    for name, value in (("location_id", "LOC2"), ("evse_uid", "E2"), ("connector_id", "2")):
        with pytest.raises(NotExpressible) as caught:
            patch_to_v211(v221.SessionPatch.model_validate(base | {name: value}))
        assert caught.value.field == name
    period = {"start_date_time": "2026-11-23T10:00:00Z", "dimensions": [{"type": "ENERGY", "volume": 1}]}
    with pytest.raises(NotExpressible) as caught:
        patch_to_v211(v221.SessionPatch.model_validate(base | {"charging_periods": [period]}))
    assert caught.value.field == "charging_periods"
    # No period to add is no change; a period of dimensions 2.1.1 lacks adds nothing either.
    power = {"start_date_time": "2026-11-23T10:00:00Z", "dimensions": [{"type": "POWER", "volume": 11}]}
    for periods in ([], [power]):
        assert _wire(patch_to_v211(v221.SessionPatch.model_validate(base | {"charging_periods": periods}))) == base
    with pytest.raises(NotExpressible) as caught:
        patch_to_v211(v221.LocationPatch.model_validate(base | {"publish": False}))
    assert caught.value.field == "publish"


def test_nulls_keep_their_2_1_1_names() -> None:
    base = {"last_updated": "2026-11-23T10:00:00Z"}
    patch = v221.SessionPatch.model_validate(base | {"total_cost": None, "end_date_time": None, "authorization_reference": None})
    assert _wire(patch_to_v211(patch)) == base | {"total_cost": None, "end_datetime": None}
    patch = v221.ConnectorPatch.model_validate(base | {"tariff_ids": None, "max_electric_power": None})
    assert _wire(patch_to_v211(patch)) == base | {"tariff_id": None}
    patch = v221.LocationPatch.model_validate(base | {"parking_type": None, "postal_code": None, "state": None})
    assert _wire(patch_to_v211(patch)) == base | {"type": "UNKNOWN", "postal_code": ""}


# ---------------------------------------------------------------- outgoing()

STAMP = "2026-11-23T10:00:00Z"


async def test_2_2_1_and_unknown_kinds_are_sent_as_stored() -> None:
    body = {"status": "CHARGING", "last_updated": STAMP}
    assert await outgoing("2.2.1", "EVSEPatch", body) is body
    assert await outgoing("2.1.1", None, body) is body
    assert await outgoing("2.1.1", "Something", body) is body


async def test_outgoing_session_patch_in_each_version() -> None:
    body = {"kwh": 7, "status": "ACTIVE", "last_updated": STAMP, "total_cost": {"excl_vat": 2.45, "incl_vat": 2.96}}
    old = await outgoing("2.1.1", "SessionPatch", body)
    assert isinstance(old, v211.SessionPatch)
    assert _wire(old) == {"kwh": 7, "status": "ACTIVE", "last_updated": STAMP, "total_cost": Decimal("2.45")}
    new = await outgoing("2.3.0", "SessionPatch", body)
    assert isinstance(new, v230.SessionPatch)
    wire = _wire(new)
    assert wire["total_cost"] == {"before_taxes": Decimal("2.45"), "taxes": [{"name": "VAT", "amount": Decimal("0.51")}]}
    validate_against_openapi("sessions", "SessionPatch", wire, version="2.3.0")


async def test_outgoing_command_results() -> None:
    for result, old in (("ACCEPTED", "ACCEPTED"), ("TIMEOUT", "TIMEOUT"), ("FAILED", "REJECTED"), ("EVSE_OCCUPIED", "REJECTED")):
        body = {"result": result, "message": [{"language": "en", "text": "why"}]}
        assert _wire(await outgoing("2.1.1", "CommandResult", body)) == {"result": old}
        new = _wire(await outgoing("2.3.0", "CommandResult", body))
        assert new == body
        validate_against_openapi("commands", "CommandResult", new, version="2.3.0")


async def test_what_2_1_1_cannot_say_is_named() -> None:
    with pytest.raises(NotExpressible) as caught:
        await outgoing("2.1.1", "ChargingProfileResult", {"result": "ACCEPTED"})
    assert caught.value.field == "chargingprofiles"
    # The Location a 2.1.1 Session embeds must be found.
    session = {
        "country_code": "ZZ", "party_id": "GWY", "id": "S1", "start_date_time": STAMP, "kwh": 0,
        "cdr_token": {"country_code": "DE", "party_id": "OLD", "uid": "U1", "type": "RFID", "contract_id": "U1"},
        "auth_method": "WHITELIST", "location_id": "GONE", "evse_uid": "E1", "connector_id": "1",
        "currency": "EUR", "status": "ACTIVE", "last_updated": STAMP,
    }

    async def nowhere(location_id: str) -> None:
        return None

    with pytest.raises(NotExpressible) as caught:
        await outgoing("2.1.1", "Session", session, locations=nowhere)
    assert caught.value.field == "location_id"
    # A stored body that is not what it says it is: never sent as it is.
    with pytest.raises(NotExpressible) as caught:
        await outgoing("2.3.0", "Session", session | {"kwh": "lots"})
    assert caught.value.field == "kwh"
    with pytest.raises(NotExpressible) as caught:
        await outgoing("9.9", "Session", session)
    assert caught.value.field == "version"


async def test_outgoing_charging_profile_results_in_2_3_0() -> None:
    profile = {
        "start_date_time": STAMP,
        "charging_profile": {"charging_rate_unit": "A", "charging_profile_period": [{"start_period": 0, "limit": 16}]},
    }
    for kind, body, schema in (
        ("ChargingProfileResult", {"result": "ACCEPTED"}, "ChargingProfileResult"),
        ("ClearProfileResult", {"result": "UNKNOWN"}, "ClearProfileResult"),
        ("ActiveChargingProfileResult", {"result": "ACCEPTED", "profile": profile}, "ActiveChargingProfileResult"),
        ("ActiveChargingProfile", profile, "ActiveChargingProfile"),
    ):
        wire = _wire(await outgoing("2.3.0", kind, body))
        assert wire == json_loads(json_dumps(body))
        validate_against_openapi("chargingprofiles", schema, wire, version="2.3.0")
        with pytest.raises(NotExpressible):
            await outgoing("2.1.1", kind, body)
