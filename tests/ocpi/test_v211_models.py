"""OCPI 2.1.1 wire models, checked against the 2.1.1 specification text: every object's
fields, types, lengths and cardinalities as the spec's tables give them (transcribed
below), every enum's values, the spec's JSON examples (parsed and written back
unchanged; the few that are not valid as published are refused, naming the fields), and
bad input refused with a message naming the field."""

from __future__ import annotations

import types
import typing
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

import ocpi.v211 as v
from ocpi.transport import format_validation_error, json_dumps, json_loads
from ocpi.v211 import enums

EXAMPLES = Path(__file__).parent / "examples_v211"

# The object tables of the OCPI 2.1.1 specification (release-2.1.1-bugfixes branch:
# credentials.md, version_information_endpoint.md, types.md, mod_locations.md,
# mod_sessions.md, mod_cdrs.md, mod_tariffs.md, mod_tokens.md, mod_commands.md):
# "Object.field  type  cardinality". "choice" marks the two fields of Hours' "Choice:
# one of two" (regular_hours *, twentyfourseven 1).
SPEC = """
Credentials.token string(64) 1
Credentials.url URL 1
Credentials.business_details BusinessDetails 1
Credentials.party_id string(3) 1
Credentials.country_code string(2) 1
Version.version VersionNumber 1
Version.url URL 1
VersionDetails.version VersionNumber 1
VersionDetails.endpoints Endpoint +
Endpoint.identifier ModuleID 1
Endpoint.url URL 1
DisplayText.language string(2) 1
DisplayText.text string(512) 1
Location.id string(39) 1
Location.type LocationType 1
Location.name string(255) ?
Location.address string(45) 1
Location.city string(45) 1
Location.postal_code string(10) 1
Location.country string(3) 1
Location.coordinates GeoLocation 1
Location.related_locations AdditionalGeoLocation *
Location.evses EVSE *
Location.directions DisplayText *
Location.operator BusinessDetails ?
Location.suboperator BusinessDetails ?
Location.owner BusinessDetails ?
Location.facilities Facility *
Location.time_zone string(255) ?
Location.opening_times Hours ?
Location.charging_when_closed boolean ?
Location.images Image *
Location.energy_mix EnergyMix ?
Location.last_updated DateTime 1
EVSE.uid string(39) 1
EVSE.evse_id string(48) ?
EVSE.status Status 1
EVSE.status_schedule StatusSchedule *
EVSE.capabilities Capability *
EVSE.connectors Connector +
EVSE.floor_level string(4) ?
EVSE.coordinates GeoLocation ?
EVSE.physical_reference string(16) ?
EVSE.directions DisplayText *
EVSE.parking_restrictions ParkingRestriction *
EVSE.images Image *
EVSE.last_updated DateTime 1
Connector.id string(36) 1
Connector.standard ConnectorType 1
Connector.format ConnectorFormat 1
Connector.power_type PowerType 1
Connector.voltage int 1
Connector.amperage int 1
Connector.tariff_id string(36) ?
Connector.terms_and_conditions URL ?
Connector.last_updated DateTime 1
AdditionalGeoLocation.latitude string(10) 1
AdditionalGeoLocation.longitude string(11) 1
AdditionalGeoLocation.name DisplayText ?
BusinessDetails.name string(100) 1
BusinessDetails.website URL ?
BusinessDetails.logo Image ?
EnergyMix.is_green_energy boolean 1
EnergyMix.energy_sources EnergySource *
EnergyMix.environ_impact EnvironmentalImpact *
EnergyMix.supplier_name string(64) ?
EnergyMix.energy_product_name string(64) ?
EnergySource.source EnergySourceCategory 1
EnergySource.percentage number 1
EnvironmentalImpact.source EnvironmentalImpactCategory 1
EnvironmentalImpact.amount number 1
ExceptionalPeriod.period_begin DateTime 1
ExceptionalPeriod.period_end DateTime 1
GeoLocation.latitude string(10) 1
GeoLocation.longitude string(11) 1
Hours.regular_hours RegularHours choice*
Hours.twentyfourseven boolean choice1
Hours.exceptional_openings ExceptionalPeriod *
Hours.exceptional_closings ExceptionalPeriod *
Image.url URL 1
Image.thumbnail URL ?
Image.category ImageCategory 1
Image.type string(4) 1
Image.width int(5) ?
Image.height int(5) ?
RegularHours.weekday int(1) 1
RegularHours.period_begin string(5) 1
RegularHours.period_end string(5) 1
StatusSchedule.period_begin DateTime 1
StatusSchedule.period_end DateTime ?
StatusSchedule.status Status 1
Session.id string(36) 1
Session.start_datetime DateTime 1
Session.end_datetime DateTime ?
Session.kwh number 1
Session.auth_id string(36) 1
Session.auth_method AuthMethod 1
Session.location Location 1
Session.meter_id string(255) ?
Session.currency string(3) 1
Session.charging_periods ChargingPeriod *
Session.total_cost number ?
Session.status SessionStatus 1
Session.last_updated DateTime 1
CDR.id CiString(36) 1
CDR.start_date_time DateTime 1
CDR.stop_date_time DateTime 1
CDR.auth_id string(36) 1
CDR.auth_method AuthMethod 1
CDR.location Location 1
CDR.meter_id string(255) ?
CDR.currency string(3) 1
CDR.tariffs Tariff *
CDR.charging_periods ChargingPeriod +
CDR.total_cost number 1
CDR.total_energy number 1
CDR.total_time number 1
CDR.total_parking_time number ?
CDR.remark string(255) ?
CDR.last_updated DateTime 1
CdrDimension.type CdrDimensionType 1
CdrDimension.volume number 1
ChargingPeriod.start_date_time DateTime 1
ChargingPeriod.dimensions CdrDimension +
Tariff.id string(36) 1
Tariff.currency string(3) 1
Tariff.tariff_alt_text DisplayText *
Tariff.tariff_alt_url URL ?
Tariff.elements TariffElement +
Tariff.energy_mix EnergyMix ?
Tariff.last_updated DateTime 1
PriceComponent.type TariffDimensionType 1
PriceComponent.price number 1
PriceComponent.step_size int 1
TariffElement.price_components PriceComponent +
TariffElement.restrictions TariffRestrictions ?
TariffRestrictions.start_time string(5) ?
TariffRestrictions.end_time string(5) ?
TariffRestrictions.start_date string(10) ?
TariffRestrictions.end_date string(10) ?
TariffRestrictions.min_kwh number ?
TariffRestrictions.max_kwh number ?
TariffRestrictions.min_power number ?
TariffRestrictions.max_power number ?
TariffRestrictions.min_duration int ?
TariffRestrictions.max_duration int ?
TariffRestrictions.day_of_week DayOfWeek *
AuthorizationInfo.allowed Allowed 1
AuthorizationInfo.location LocationReferences ?
AuthorizationInfo.info DisplayText ?
Token.uid string(36) 1
Token.type TokenType 1
Token.auth_id string(36) 1
Token.visual_number string(64) ?
Token.issuer string(64) 1
Token.valid boolean 1
Token.whitelist WhitelistType 1
Token.language string(2) ?
Token.last_updated DateTime 1
LocationReferences.location_id string(39) 1
LocationReferences.evse_uids string(39) *
LocationReferences.connector_ids string(36) *
CommandResponse.result CommandResponseType 1
ReserveNow.response_url URL 1
ReserveNow.token Token 1
ReserveNow.expiry_date DateTime 1
ReserveNow.reservation_id int 1
ReserveNow.location_id string(39) 1
ReserveNow.evse_uid string(39) ?
StartSession.response_url URL 1
StartSession.token Token 1
StartSession.location_id string(39) 1
StartSession.evse_uid string(39) ?
StopSession.response_url URL 1
StopSession.session_id string(36) 1
UnlockConnector.response_url URL 1
UnlockConnector.location_id string(39) 1
UnlockConnector.evse_uid string(39) 1
UnlockConnector.connector_id string(36) 1
"""

# The enum tables of the same text, values in the spec's order.
SPEC_ENUMS: dict[str, list[str]] = {
    "VersionNumber": ["2.0", "2.1", "2.1.1"],
    "ModuleID": ["cdrs", "commands", "credentials", "locations", "sessions", "tariffs", "tokens"],
    "Capability": [
        "CHARGING_PROFILE_CAPABLE",
        "CREDIT_CARD_PAYABLE",
        "REMOTE_START_STOP_CAPABLE",
        "RESERVABLE",
        "RFID_READER",
        "UNLOCK_CAPABLE",
    ],
    "ConnectorFormat": ["SOCKET", "CABLE"],
    "ConnectorType": [
        "CHADEMO",
        *(f"DOMESTIC_{c}" for c in "ABCDEFGHIJKL"),
        "IEC_60309_2_single_16",
        "IEC_60309_2_three_16",
        "IEC_60309_2_three_32",
        "IEC_60309_2_three_64",
        "IEC_62196_T1",
        "IEC_62196_T1_COMBO",
        "IEC_62196_T2",
        "IEC_62196_T2_COMBO",
        "IEC_62196_T3A",
        "IEC_62196_T3C",
        "TESLA_R",
        "TESLA_S",
    ],
    "EnergySourceCategory": [
        "NUCLEAR",
        "GENERAL_FOSSIL",
        "COAL",
        "GAS",
        "GENERAL_GREEN",
        "SOLAR",
        "WIND",
        "WATER",
    ],
    "EnvironmentalImpactCategory": ["NUCLEAR_WASTE", "CARBON_DIOXIDE"],
    "Facility": [
        "HOTEL",
        "RESTAURANT",
        "CAFE",
        "MALL",
        "SUPERMARKET",
        "SPORT",
        "RECREATION_AREA",
        "NATURE",
        "MUSEUM",
        "BUS_STOP",
        "TAXI_STAND",
        "TRAIN_STATION",
        "AIRPORT",
        "CARPOOL_PARKING",
        "FUEL_STATION",
        "WIFI",
    ],
    "ImageCategory": [
        "CHARGER",
        "ENTRANCE",
        "LOCATION",
        "NETWORK",
        "OPERATOR",
        "OTHER",
        "OWNER",
    ],
    "LocationType": [
        "ON_STREET",
        "PARKING_GARAGE",
        "UNDERGROUND_GARAGE",
        "PARKING_LOT",
        "OTHER",
        "UNKNOWN",
    ],
    "ParkingRestriction": ["EV_ONLY", "PLUGGED", "DISABLED", "CUSTOMERS", "MOTORCYCLES"],
    "PowerType": ["AC_1_PHASE", "AC_3_PHASE", "DC"],
    "Status": [
        "AVAILABLE",
        "BLOCKED",
        "CHARGING",
        "INOPERATIVE",
        "OUTOFORDER",
        "PLANNED",
        "REMOVED",
        "RESERVED",
        "UNKNOWN",
    ],
    "SessionStatus": ["ACTIVE", "COMPLETED", "INVALID", "PENDING"],
    "AuthMethod": ["AUTH_REQUEST", "WHITELIST"],
    "CdrDimensionType": ["ENERGY", "FLAT", "MAX_CURRENT", "MIN_CURRENT", "PARKING_TIME", "TIME"],
    "DayOfWeek": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"],
    "TariffDimensionType": ["ENERGY", "FLAT", "PARKING_TIME", "TIME"],
    "Allowed": ["ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED"],
    "TokenType": ["OTHER", "RFID"],
    "WhitelistType": ["ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"],
    "CommandResponseType": ["NOT_SUPPORTED", "REJECTED", "ACCEPTED", "TIMEOUT", "UNKNOWN_SESSION"],
    "CommandType": ["RESERVE_NOW", "START_SESSION", "STOP_SESSION", "UNLOCK_CONNECTOR"],
}


def _spec_objects() -> dict[str, dict[str, tuple[str, str]]]:
    objects: dict[str, dict[str, tuple[str, str]]] = {}
    for line in SPEC.strip().splitlines():
        path, spec_type, card = line.split()
        obj, field = path.split(".")
        objects.setdefault(obj, {})[field] = (spec_type, card)
    return objects


SPEC_OBJECTS = _spec_objects()
MODELS: dict[str, type[BaseModel]] = {name: getattr(v, name) for name in SPEC_OBJECTS}


def _describe(model: type[BaseModel], name: str) -> tuple[Any, bool, bool, int | None]:
    """(base type, is a list, is optional, max length) of a model field."""
    info = model.model_fields[name]
    metadata: list[Any] = list(info.metadata)
    tp: Any = info.annotation
    optional = is_list = False
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            base, *extra = typing.get_args(tp)
            metadata.extend(extra)
            tp = base
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(tp))
            # open enums are ``X | str``: the enum is the type
            enums_in = [a for a in args if isinstance(a, type) and issubclass(a, StrEnum)]
            tp = enums_in[0] if enums_in else args[0]
        elif origin is list:
            is_list = True
            (tp,) = typing.get_args(tp)
            metadata = [m for m in metadata if not hasattr(m, "min_length")]
        else:
            break
    max_length = None
    for item in metadata:
        # StringConstraints, or pydantic's MaxLen from Field(max_length=...)
        if getattr(item, "max_length", None) is not None:
            max_length = item.max_length
    return tp, is_list, optional or not info.is_required(), max_length


def _expected_python_type(spec_type: str) -> tuple[Any, int | None]:
    if spec_type.startswith(("string(", "CiString(")):
        return str, int(spec_type.split("(")[1].rstrip(")"))
    if spec_type == "URL":
        return str, 255
    if spec_type.startswith("int"):
        return int, None
    simple = {"number": Decimal, "boolean": bool, "DateTime": datetime}
    if spec_type in simple:
        return simple[spec_type], None
    return spec_type, None  # a class or enum: compared by name


def _mismatches(model: type[BaseModel], table: dict[str, tuple[str, str]]) -> list[str]:
    """How ``model`` differs from its spec table (empty when it matches)."""
    if list(model.model_fields) != list(table):
        return [f"fields {list(model.model_fields)} != {list(table)}"]
    found: list[str] = []
    for field, (spec_type, card) in table.items():
        tp, is_list, optional, max_length = _describe(model, field)
        expected, expected_length = _expected_python_type(spec_type)
        name = getattr(tp, "__name__", None)
        if (name != expected) if isinstance(expected, str) else (tp is not expected):
            found.append(f"{field}: type {tp!r}, spec {spec_type}")
        if max_length != expected_length:
            found.append(f"{field}: length {max_length}, spec {spec_type}")
        if is_list != card.endswith(("*", "+")):
            found.append(f"{field}: list {is_list}, spec {card}")
        if optional != (card in ("?", "*") or card.startswith("choice")):
            found.append(f"{field}: optional {optional}, spec {card}")
    return found


@pytest.mark.parametrize("obj", sorted(SPEC_OBJECTS))
def test_model_fields_match_the_spec_table(obj: str) -> None:
    assert _mismatches(MODELS[obj], SPEC_OBJECTS[obj]) == []


@pytest.mark.parametrize(
    ("field", "row", "expected"),
    [
        ("address", ("string(44)", "1"), "address: length 45, spec string(44)"),
        ("name", ("string(255)", "1"), "name: optional True, spec 1"),
        ("evses", ("EVSE", "?"), "evses: list True, spec ?"),
        ("type", ("ParkingType", "1"), "type: type <enum 'LocationType'>, spec ParkingType"),
        ("last_updated", ("number", "1"), "last_updated: type <class 'datetime.datetime'>"),
    ],
)
def test_the_table_check_sees_a_drift(field: str, row: tuple[str, str], expected: str) -> None:
    table = {**SPEC_OBJECTS["Location"], field: row}
    (found,) = _mismatches(v.Location, table)
    assert found.startswith(expected)


def test_every_2_1_1_object_has_a_row_in_the_table() -> None:
    objects = {
        name
        for name in v.__all__
        if isinstance(getattr(v, name), type)
        and issubclass(getattr(v, name), v.OcpiModel)
        and not issubclass(getattr(v, name), v.OcpiPatch)
        and name != "OcpiModel"
    }
    assert objects == set(SPEC_OBJECTS)


@pytest.mark.parametrize("name", sorted(SPEC_ENUMS))
def test_enum_values_match_the_spec(name: str) -> None:
    assert [m.value for m in getattr(enums, name)] == SPEC_ENUMS[name]


def test_hours_wants_one_of_regular_hours_and_twentyfourseven() -> None:
    assert v.Hours.model_validate({"twentyfourseven": True}).twentyfourseven is True
    assert v.Hours.model_validate({"regular_hours": []}).regular_hours == []
    with pytest.raises(ValidationError) as caught:
        v.Hours.model_validate({"exceptional_openings": []})
    assert "twentyfourseven" in format_validation_error(caught.value)


@pytest.mark.parametrize(
    ("patch", "full"),
    [
        (v.LocationPatch, v.Location),
        (v.EVSEPatch, v.EVSE),
        (v.ConnectorPatch, v.Connector),
        (v.SessionPatch, v.Session),
        (v.TokenPatch, v.Token),
        (v.TariffPatch, v.Tariff),
    ],
)
def test_patch_models_have_the_objects_fields_all_optional(
    patch: type[v.OcpiPatch], full: type[v.OcpiModel]
) -> None:
    assert list(patch.model_fields) == [
        "last_updated",
        *(f for f in full.model_fields if f != "last_updated"),
    ]
    assert not any(info.is_required() for info in patch.model_fields.values())
    partial = patch.model_validate({})
    assert partial.to_wire() == {}


# ---------------------------------------------------------------- spec examples

# file -> model of the example (the files are the spec's ```json blocks, as published)
EXAMPLE_MODELS: dict[str, Any] = {
    "credentials_0_example.txt": v.Credentials,
    "mod_cdrs_0_example_of_a_cdr.txt": v.CDR,
    "mod_locations_0_example_a_simple_status_update.txt": v.EVSEPatch,
    "mod_locations_1_example_change_the_location_name.txt": v.LocationPatch,
    "mod_locations_2_example_set_tariff_update.txt": v.ConnectorPatch,
    "mod_locations_3_example_add_an_evse.txt": v.EVSE,
    "mod_locations_4_example_delete_an_evse.txt": v.EVSEPatch,
    "mod_locations_5_example.txt": v.Location,
    "mod_locations_6_simple.txt": v.EnergyMix,
    "mod_locations_7_tariff_name_based.txt": v.EnergyMix,
    "mod_locations_8_complete.txt": v.EnergyMix,
    "mod_locations_9_4_19_1_example.txt": v.Hours,
    "mod_sessions_0_example_update_the_total_cost.txt": v.SessionPatch,
    "mod_sessions_1_simple_session_example_of_a_just_starting_session.txt": v.Session,
    "mod_sessions_2_simple_session_example_of_a_short_finished_session.txt": v.Session,
    "mod_tariffs_0_example_new_tariff_2_euro_per_hour.txt": v.Tariff,
    "mod_tariffs_1_example_change_tariff_to_2_50.txt": v.Tariff,
    "mod_tariffs_2_simple_tariff_example_2_euro_per_hour.txt": v.Tariff,
    "mod_tariffs_3_simple_tariff_example_with_alternative_multi_language_text.txt": v.Tariff,
    "mod_tariffs_4_simple_tariff_example_with_alternative_url.txt": v.Tariff,
    "mod_tariffs_5_complex_tariff_example.txt": v.Tariff,
    "mod_tariffs_6_free_of_charge_tariff_example.txt": v.Tariff,
    "mod_tokens_0_example_put_a_new_token.txt": v.Token,
    "mod_tokens_1_example_invalidate_a_token.txt": v.TokenPatch,
    "mod_tokens_2_example.txt": v.Token,
    "version_information_endpoint_0_example.txt": list[v.Version],
    "version_information_endpoint_1_example.txt": v.VersionDetails,
}

# Examples that are not valid 2.1.1 objects as published, with every fault.
INVALID_EXAMPLES: dict[str, list[str]] = {
    # "country": "BE" where the table says ISO 3166-1 alpha-3; a price as a string.
    "mod_cdrs_0_example_of_a_cdr.txt": [
        "location.country: String should have at least 3 characters",
        "tariffs[0].elements[0].price_components[0].price: Input should be a JSON number",
    ],
    "mod_locations_3_example_add_an_evse.txt": [
        "connectors[0].power_type: Field required",
        "connectors[0].voltage: Field required",
        "connectors[0].amperage: Field required",
        "connectors[0].last_updated: Field required",
        "floor_level: Input should be a valid string",
        "physical_reference: Input should be a valid string",
        "last_updated: Field required",
    ],
    "mod_sessions_1_simple_session_example_of_a_just_starting_session.txt": [
        "location.country: String should have at least 3 characters"
    ],
    "mod_sessions_2_simple_session_example_of_a_short_finished_session.txt": [
        "location.country: String should have at least 3 characters"
    ],
    "mod_tariffs_0_example_new_tariff_2_euro_per_hour.txt": ["last_updated: Field required"],
    "mod_tariffs_1_example_change_tariff_to_2_50.txt": [
        "id: Field required",
        "currency: Field required",
        "last_updated: Field required",
    ],
}


def _example_json(name: str) -> Any:
    """The example's JSON: a leading "PUT To URL: ..." line is the request line, and a
    fragment such as ``"energy_mix": {...}`` is the value of its one key."""
    text = (EXAMPLES / name).read_text().strip()
    if text.startswith(("PUT ", "PATCH ")):
        text = text.split("\n", 1)[1].strip()
    if text.startswith('"'):
        (value,) = json_loads("{" + text + "}").values()
        return value
    return json_loads(text)


def test_every_example_file_is_mapped() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.txt")) == sorted(EXAMPLE_MODELS)


@pytest.mark.parametrize("name", sorted(set(EXAMPLE_MODELS) - set(INVALID_EXAMPLES)))
def test_example_parses_and_writes_back_unchanged(name: str) -> None:
    data = _example_json(name)
    adapter: TypeAdapter[Any] = TypeAdapter(EXAMPLE_MODELS[name])
    parsed = adapter.validate_python(data)
    written = [p.to_wire() for p in parsed] if isinstance(parsed, list) else parsed.to_wire()
    assert json_loads(json_dumps(written)) == data


@pytest.mark.parametrize("name", sorted(INVALID_EXAMPLES))
def test_invalid_published_examples_are_refused_naming_fields(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(EXAMPLE_MODELS[name]).validate_python(_example_json(name))
    message = format_validation_error(caught.value, max_errors=20)
    assert message.split("; ") == INVALID_EXAMPLES[name]


# ------------------------------------------------------------------ bad input

TOKEN = {
    "uid": "012345678",
    "type": "RFID",
    "auth_id": "DE8ACC12E46L89",
    "issuer": "TheNewMotion",
    "valid": True,
    "whitelist": "ALLOWED",
    "last_updated": "2015-06-29T22:39:09Z",
}


@pytest.mark.parametrize(
    ("model", "data", "expected"),
    [
        (v.Token, {**TOKEN, "type": "APP_USER"}, "type: Input should be 'OTHER' or 'RFID'"),
        (v.Token, {**TOKEN, "uid": "x" * 37}, "uid: String should have at most 36 characters"),
        (v.Token, {**TOKEN, "valid": "true"}, "valid: Input should be a valid boolean"),
        (v.Token, {k: x for k, x in TOKEN.items() if k != "auth_id"}, "auth_id: Field required"),
        (v.Token, {**TOKEN, "uid": "caf\u00e9"}, "uid: should contain printable ASCII"),
        (
            v.GeoLocation,
            {"latitude": "51.04759", "longitude": "3.729944"},
            "latitude: String should match pattern",
        ),
        (
            v.GeoLocation,
            {"latitude": "51.047599", "longitude": "3.7299441"},
            "longitude: String should match pattern",
        ),
        (
            v.ReserveNow,
            {
                "response_url": "https://e.example/r",
                "token": TOKEN,
                "expiry_date": "2015-06-29T22:39:09Z",
                "reservation_id": "12",
                "location_id": "LOC1",
            },
            "reservation_id: Input should be an integer",
        ),
        (
            v.CommandResponse,
            {"result": "CANCELED_RESERVATION"},
            "result: Input should be 'NOT_SUPPORTED'",
        ),
        (
            v.Credentials,
            {
                "token": "t",
                "url": "https://e.example/versions",
                "business_details": {"name": "E"},
                "party_id": "EXA",
                "country_code": "NL",
                "roles": [],
            },
            None,
        ),
        (
            v.Credentials,
            {
                "token": "t",
                "url": "https://e.example/versions",
                "roles": [{"role": "CPO"}],
            },
            "business_details: Field required",
        ),
        (v.CdrDimension, {"type": "POWER", "volume": 1}, "type: Input should be 'ENERGY'"),
        (
            v.Endpoint,
            {"identifier": "nltnm-tokens", "url": "https://e.example/t", "role": "SENDER"},
            None,
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    model: type[BaseModel], data: dict[str, Any], expected: str | None
) -> None:
    if expected is None:  # valid: extra fields (a 2.2 ``roles``/``role``) are ignored
        parsed = model.model_validate(data)
        assert "roles" not in parsed.model_dump() and "role" not in parsed.model_dump()
        return
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    assert format_validation_error(caught.value).startswith(expected)


def test_free_text_may_hold_non_ascii_but_identifiers_may_not() -> None:
    location = v.LocationPatch.model_validate({"name": "Stra\u00dfe", "address": "R\u00fce 1"})
    assert location.name == "Stra\u00dfe"
    with pytest.raises(ValidationError):
        v.LocationPatch.model_validate({"id": "L\u00d61"})


def test_authorization_header_is_not_base64_encoded() -> None:
    assert v.authorization_header("ebf3b399-779f") == "Token ebf3b399-779f"


def test_numbers_are_exact_and_datetimes_utc() -> None:
    dim = v.CdrDimension.model_validate({"type": "ENERGY", "volume": 0.1})
    assert dim.volume == Decimal("0.1")
    assert dim.to_json() == '{"type":"ENERGY","volume":0.1}'
    period = v.ChargingPeriod.model_validate(
        {"start_date_time": "2015-06-29T22:39:09", "dimensions": [dim.to_wire()]}
    )
    assert period.to_json().startswith('{"start_date_time":"2015-06-29T22:39:09Z"')
