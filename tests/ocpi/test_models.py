"""OCPI 2.2.1 wire models: the spec's examples round-trip unchanged and validate against
the OpenAPI description; the models match the OpenAPI field by field; bad input is
refused naming the field; numbers and timestamps are written as OCPI wants them."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import ocpi.v221 as v
from ocpi.transport import (
    InvalidParametersError,
    format_validation_error,
    json_dumps,
    json_loads,
)
from ocpi.v221 import enums
from tests.ocpi.openapi import (
    openapi_available,
    openapi_errors,
    schema_names,
    validate_against_openapi,
    validate_envelope,
)

EXAMPLES = Path(__file__).parent / "examples"

# file -> (model, key the object is wrapped in, or None)
EXAMPLE_MODELS: dict[str, tuple[type[BaseModel], str | None]] = {
    "cdr_example.json": (v.CDR, None),
    "credentials_example.json": (v.Credentials, None),
    "credentials_example2.json": (v.Credentials, None),
    "credentials_example3.json": (v.Credentials, None),
    "credentials_example4.json": (v.Credentials, None),
    "location_energymix_example_complete.json": (v.EnergyMix, "energy_mix"),
    "location_energymix_example_energy_provider.json": (v.EnergyMix, "energy_mix"),
    "location_energymix_example_simple.json": (v.EnergyMix, "energy_mix"),
    "location_example.json": (v.Location, None),
    "location_example_parking_garage_opening_hours.json": (v.Location, None),
    "location_example_uc2_destination_charger.json": (v.Location, None),
    "location_example_uc3_destination_charger_not_published.json": (v.Location, None),
    "location_example_uc4_limited_visibility.json": (v.Location, None),
    "location_example_uc5_home_charge_point.json": (v.Location, None),
    "location_hours_247_open_exception_closing.json": (v.Hours, None),
    "location_hours_opening_hours_with_exceptional_closing.json": (v.Hours, None),
    "location_hours_opening_hours_with_exceptional_opening.json": (v.Hours, None),
    "location_patch_example_location.json": (v.LocationPatch, None),
    "location_patch_example_remove_evse.json": (v.EVSEPatch, None),
    "location_patch_example_status.json": (v.EVSEPatch, None),
    "location_patch_example_tariff.json": (v.ConnectorPatch, None),
    "location_regularhours_example.json": (v.Hours, "opening_times"),
    "session_example_1_simple_start.json": (v.Session, None),
    "session_example_2_short_finished.json": (v.Session, None),
    "session_patch_example_charging_period.json": (v.SessionPatch, None),
    "session_patch_example_total_cost.json": (v.SessionPatch, None),
    "tariff_10_025kwh_parking_start.json": (v.Tariff, None),
    "tariff_11_not_possible_alt_text.json": (v.Tariff, None),
    "tariff_12_025kwh_min_price.json": (v.Tariff, None),
    "tariff_13_simple_3hour_5parking.json": (v.Tariff, None),
    "tariff_14_step_size.json": (v.Tariff, None),
    "tariff_15_reservation_5_euro_per_hour.json": (v.Tariff, None),
    "tariff_16_reservation_2_euro_fee_5_euro_per_hour.json": (v.Tariff, None),
    "tariff_17_reservation_with_expire_fee.json": (v.Tariff, None),
    "tariff_18_reservation_with_expire_time.json": (v.Tariff, None),
    "tariff_1_simple_2hour.json": (v.Tariff, None),
    "tariff_2_alt_text.json": (v.Tariff, None),
    "tariff_3_alt_url.json": (v.Tariff, None),
    "tariff_4_complex.json": (v.Tariff, None),
    "tariff_5_free_of_charge.json": (v.Tariff, None),
    "tariff_6_025kwh_start_max_price.json": (v.Tariff, None),
    "tariff_8_simple_025kwh.json": (v.Tariff, None),
    "tariff_9_025kwh_start.json": (v.Tariff, None),
    "tariffrestriction_example_max_duration.json": (v.Tariff, None),
    "tariffrestriction_example_max_power.json": (v.Tariff, None),
    "token_example_1_app_user.json": (v.Token, None),
    "token_example_2_full_rfid.json": (v.Token, None),
    "token_patch_example.json": (v.TokenPatch, None),
    "token_put_example.json": (v.Token, None),
    "type_displaytext_example.json": (v.DisplayText, None),
    "version_details_example.json": (v.VersionDetails, None),
    "version_details_example2.json": (v.VersionDetails, None),
}
LIST_EXAMPLES = {"versions_info_example.json": v.Version}
# file -> (model of data, is a list)
ENVELOPE_EXAMPLES: dict[str, tuple[type[BaseModel], bool]] = {
    "transport_and_format_get_token_example.json": (v.Token, False),
    "transport_and_format_get_token_list_example.json": (v.Token, True),
    "transport_and_format_version_details_example.json": (v.VersionDetails, False),
    "transport_and_format_version_info_example.json": (v.Version, True),
}
# Published examples that are not valid OCPI objects, with the fields at fault.
INVALID_EXAMPLES: dict[str, tuple[type[BaseModel], list[str]]] = {
    "location_put_example_add_evse.json": (
        v.EVSE,
        [
            "connectors[0].power_type: Field required",
            "connectors[0].max_voltage: Field required",
            "connectors[0].max_amperage: Field required",
            "connectors[0].last_updated: Field required",
            "physical_reference: Input should be a valid string",
        ],
    ),
    "tariff_put_example.json": (v.Tariff, ["last_updated: Field required"]),
}

# model -> (OpenAPI module, schema name)
OPENAPI_SCHEMAS: dict[type[BaseModel], tuple[str, str]] = {
    v.Location: ("locations", "Location"),
    v.LocationPatch: ("locations", "LocationPatch"),
    v.EVSE: ("locations", "EVSE"),
    v.EVSEPatch: ("locations", "EVSEPatch"),
    v.Connector: ("locations", "Connector"),
    v.ConnectorPatch: ("locations", "ConnectorPatch"),
    v.AdditionalGeoLocation: ("locations", "AdditionalGeoLocation"),
    v.GeoLocation: ("locations", "GeoLocation"),
    v.PublishTokenType: ("locations", "PublishTokenType"),
    v.Hours: ("locations", "Hours"),
    v.RegularHours: ("locations", "RegularHours"),
    v.ExceptionalPeriod: ("locations", "ExceptionalPeriod"),
    v.EnergyMix: ("locations", "EnergyMix"),
    v.EnergySource: ("locations", "EnergySource"),
    v.EnvironmentalImpact: ("locations", "EnvironmentalImpact"),
    v.StatusSchedule: ("locations", "StatusSchedule"),
    v.Session: ("sessions", "Session"),
    v.SessionPatch: ("sessions", "SessionPatch"),
    v.ChargingPreferences: ("sessions", "ChargingPreferences"),
    v.CDR: ("cdrs", "CDR"),
    v.CdrLocation: ("cdrs", "CdrLocation"),
    v.CdrToken: ("cdrs", "CdrToken"),
    v.ChargingPeriod: ("cdrs", "ChargingPeriod"),
    v.CdrDimension: ("cdrs", "CdrDimension"),
    v.SignedData: ("cdrs", "SignedData"),
    v.SignedValue: ("cdrs", "SignedValue"),
    v.Tariff: ("tariffs", "Tariff"),
    v.TariffElement: ("tariffs", "TariffElement"),
    v.PriceComponent: ("tariffs", "PriceComponent"),
    v.TariffRestrictions: ("tariffs", "TariffRestrictions"),
    v.Token: ("tokens", "Token"),
    v.TokenPatch: ("tokens", "TokenPatch"),
    v.AuthorizationInfo: ("tokens", "AuthorizationInfo"),
    v.EnergyContract: ("tokens", "EnergyContract"),
    v.LocationReferences: ("tokens", "LocationReferences"),
    v.CancelReservation: ("commands", "CancelReservation"),
    v.ReserveNow: ("commands", "ReserveNow"),
    v.StartSession: ("commands", "StartSession"),
    v.StopSession: ("commands", "StopSession"),
    v.UnlockConnector: ("commands", "UnlockConnector"),
    v.CommandResponse: ("commands", "CommandResponse"),
    v.CommandResult: ("commands", "CommandResult"),
    v.Credentials: ("credentials", "Credentials"),
    v.CredentialsRole: ("credentials", "CredentialsRole"),
    v.Version: ("versions", "Version"),
    v.VersionDetails: ("versions", "VersionDetails"),
    v.Endpoint: ("versions", "Endpoint"),
    v.ClientInfo: ("hubclientinfo", "ClientInfo"),
    v.SetChargingProfile: ("chargingprofiles", "SetChargingProfile"),
    v.ChargingProfileResponse: ("chargingprofiles", "ChargingProfileResponse"),
    v.ActiveChargingProfileResult: ("chargingprofiles", "ActiveChargingProfileResult"),
    v.ChargingProfileResult: ("chargingprofiles", "ChargingProfileResult"),
    v.ClearProfileResult: ("chargingprofiles", "ClearProfileResult"),
    v.ActiveChargingProfile: ("chargingprofiles", "ActiveChargingProfile"),
    v.ChargingProfile: ("chargingprofiles", "ChargingProfile"),
    v.ChargingProfilePeriod: ("chargingprofiles", "ChargingProfilePeriod"),
    v.BusinessDetails: ("components", "BusinessDetails"),
    v.DisplayText: ("components", "DisplayText"),
    v.Image: ("components", "Image"),
    v.Price: ("components", "Price"),
}

# (module, enum schema) -> enum class
OPENAPI_ENUMS: dict[tuple[str, str], type[StrEnum]] = {
    ("locations", "Status"): enums.Status,
    ("locations", "Capability"): enums.Capability,
    ("locations", "ConnectorFormat"): enums.ConnectorFormat,
    ("locations", "ConnectorType"): enums.ConnectorType,
    ("locations", "PowerType"): enums.PowerType,
    ("locations", "ParkingType"): enums.ParkingType,
    ("locations", "ParkingRestriction"): enums.ParkingRestriction,
    ("locations", "Facility"): enums.Facility,
    ("locations", "EnergySourceCategory"): enums.EnergySourceCategory,
    ("locations", "EnvironmentalImpactCategory"): enums.EnvironmentalImpactCategory,
    ("sessions", "SessionStatus"): enums.SessionStatus,
    ("sessions", "ProfileType"): enums.ProfileType,
    ("sessions", "ChargingPreferencesResponse"): enums.ChargingPreferencesResponse,
    ("cdrs", "AuthMethod"): enums.AuthMethod,
    ("cdrs", "CdrDimensionType"): enums.CdrDimensionType,
    ("tariffs", "TariffType"): enums.TariffType,
    ("tariffs", "TariffDimensionType"): enums.TariffDimensionType,
    ("tariffs", "DayOfWeek"): enums.DayOfWeek,
    ("tariffs", "ReservationRestrictionType"): enums.ReservationRestrictionType,
    ("tokens", "AllowedType"): enums.AllowedType,
    ("tokens", "TokenType"): enums.TokenType,
    ("tokens", "WhitelistType"): enums.WhitelistType,
    ("commands", "CommandResponseType"): enums.CommandResponseType,
    ("commands", "CommandResultType"): enums.CommandResultType,
    ("commands", "CommandType"): enums.CommandType,
    ("versions", "VersionNumber"): enums.VersionNumber,
    ("versions", "InterfaceRole"): enums.InterfaceRole,
    ("versions", "ModuleID"): enums.ModuleID,
    ("hubclientinfo", "ConnectionStatus"): enums.ConnectionStatus,
    ("hubclientinfo", "Role"): enums.Role,
    ("chargingprofiles", "ChargingRateUnit"): enums.ChargingRateUnit,
    ("chargingprofiles", "ChargingProfileResponseType"): enums.ChargingProfileResponseType,
    ("chargingprofiles", "ChargingProfileResultType"): enums.ChargingProfileResultType,
    ("components", "ImageCategory"): enums.ImageCategory,
}

# Deliberate differences from the OpenAPI description, each with its reason.
# (model, field) -> our maxLength: the release-2.2.1-bugfixes errata.
ERRATA_MAX_LENGTH = {
    (v.Location, "address"): 255,  # OpenAPI 45; erratum in mod_locations
    (v.LocationPatch, "address"): 255,
    (v.Location, "state"): 45,  # OpenAPI 20; erratum in mod_locations
    (v.LocationPatch, "state"): 45,
    (v.SignedValue, "plain_data"): 5000,  # OpenAPI 512; erratum in mod_cdrs
}
# Patches may repeat the object's identity (transport_and_format, PATCH); the OpenAPI
# patch schemas leave those properties out (they are still allowed there).
EXTRA_PATCH_FIELDS = {
    v.LocationPatch: {"country_code", "party_id", "id"},
    v.EVSEPatch: {"uid"},
    v.ConnectorPatch: {"id"},
    v.SessionPatch: {"country_code", "party_id", "id"},
}


def load(name: str) -> Any:
    return json_loads((EXAMPLES / name).read_text(encoding="utf-8"))


def wire(model: BaseModel) -> Any:
    """What goes on the wire, read back (numbers as Decimal)."""
    return json_loads(json_dumps(model))


def errors_of(model: type[BaseModel], data: Any) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return format_validation_error(info.value, max_errors=20)


# --------------------------------------------------------------- spec examples


def test_every_example_file_is_mapped() -> None:
    files = {p.name for p in EXAMPLES.glob("*.json")}
    mapped = (
        set(EXAMPLE_MODELS) | set(LIST_EXAMPLES) | set(ENVELOPE_EXAMPLES) | set(INVALID_EXAMPLES)
    )
    assert files == mapped


@pytest.mark.parametrize("name", sorted(EXAMPLE_MODELS))
def test_example_round_trips_unchanged(name: str) -> None:
    model, key = EXAMPLE_MODELS[name]
    original = load(name)
    data = original[key] if key else original
    obj = model.model_validate(data)
    assert wire(obj) == data  # same keys, same digits, same timestamps
    assert model.model_validate(wire(obj)) == obj


@pytest.mark.parametrize("name", sorted(EXAMPLE_MODELS))
def test_example_output_validates_against_openapi(name: str) -> None:
    model, key = EXAMPLE_MODELS[name]
    data = load(name)
    obj = model.model_validate(data[key] if key else data)
    module, schema = OPENAPI_SCHEMAS[model]
    validate_against_openapi(module, schema, obj)


def test_versions_list_example() -> None:
    data = load("versions_info_example.json")
    versions = [v.Version.model_validate(item) for item in data]
    assert [str(x.version) for x in versions] == ["2.1.1", "2.2.1"]
    assert versions[1].version is v.VersionNumber.V2_2_1
    assert [wire(x) for x in versions] == data
    for item in versions:
        validate_against_openapi("versions", "Version", item)


@pytest.mark.parametrize("name", sorted(ENVELOPE_EXAMPLES))
def test_envelope_examples(name: str) -> None:
    model, many = ENVELOPE_EXAMPLES[name]
    body = load(name)
    assert body["status_code"] == 1000
    data = (
        [model.model_validate(x) for x in body["data"]]
        if many
        else model.model_validate(body["data"])
    )
    rebuilt = {**body, "data": data}
    assert json_loads(json_dumps(rebuilt)) == body
    module, schema = OPENAPI_SCHEMAS[model]
    validate_envelope(rebuilt, module, schema, many=many)


@pytest.mark.parametrize("name", sorted(INVALID_EXAMPLES))
def test_invalid_published_examples_are_refused_naming_fields(name: str) -> None:
    model, expected = INVALID_EXAMPLES[name]
    message = errors_of(model, load(name))
    for part in expected:
        assert part in message


# ------------------------------------------------- models versus the OpenAPI files


def _our_max_length(schema: dict[str, Any]) -> int | None:
    if "maxLength" in schema:
        return int(schema["maxLength"])
    for key in ("anyOf", "allOf", "oneOf"):
        for sub in schema.get(key, []):
            found = _our_max_length(sub)
            if found is not None:
                return found
    if "items" in schema:
        return _our_max_length(schema["items"])
    return None


def _openapi_schema(module: str, name: str) -> dict[str, Any]:
    import yaml

    from tests.ocpi.openapi import SPEC_DIR

    path = (
        SPEC_DIR / "components" / "schema.yaml"
        if module == "components"
        else SPEC_DIR / "modules" / module / "schema.yaml"
    )
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


@pytest.mark.skipif(not openapi_available(), reason="no ../shared OpenAPI description")
@pytest.mark.parametrize("model", list(OPENAPI_SCHEMAS), ids=lambda m: m.__name__)
def test_model_fields_match_openapi(model: type[BaseModel]) -> None:
    module, name = OPENAPI_SCHEMAS[model]
    theirs = _openapi_schema(module, name)
    ours = model.model_json_schema()
    their_props: dict[str, Any] = theirs.get("properties", {})
    our_props: dict[str, Any] = ours.get("properties", {})
    extra = set(our_props) - set(their_props) - EXTRA_PATCH_FIELDS.get(model, set())
    assert not extra, f"fields not in the OpenAPI {name}: {extra}"
    assert set(their_props) <= set(our_props), f"missing: {set(their_props) - set(our_props)}"
    assert set(ours.get("required", [])) == set(theirs.get("required", []))
    for field, their in their_props.items():
        their_max = their.get("maxLength") or their.get("items", {}).get("maxLength")
        if their.get("format") == "uri" and their_max is None:
            their_max = 255  # types.asciidoc: URL is a string(255)
        our_max = _our_max_length(our_props[field])
        expected = ERRATA_MAX_LENGTH.get((model, field), their_max)
        assert our_max == expected, f"{name}.{field}: maxLength {our_max}, expected {expected}"
        their_min = their.get("minLength")
        if their_min is not None:
            assert f'"minLength": {their_min}' in json.dumps(our_props[field]), field
        if their.get("type") == "array" and "minItems" in their:
            assert f'"minItems": {their["minItems"]}' in json.dumps(our_props[field]), field


@pytest.mark.skipif(not openapi_available(), reason="no ../shared OpenAPI description")
def test_every_openapi_object_schema_has_a_model() -> None:
    modelled = {(module, name) for module, name in OPENAPI_SCHEMAS.values()}
    modelled |= set(OPENAPI_ENUMS)
    modelled.add(("components", "OCPIResponse"))  # ocpi.transport.envelope
    modelled.add(("components", "StatusCode"))  # ocpi.transport.OcpiStatus
    for module in (
        "locations", "sessions", "cdrs", "tariffs", "tokens", "commands", "credentials",
        "versions", "hubclientinfo", "chargingprofiles", "components",
    ):  # fmt: skip
        for name in schema_names(module):
            assert (module, name) in modelled, f"{module}/{name} has no model"


@pytest.mark.skipif(not openapi_available(), reason="no ../shared OpenAPI description")
@pytest.mark.parametrize(("module", "name"), list(OPENAPI_ENUMS))
def test_enum_values_match_openapi(module: str, name: str) -> None:
    theirs = _openapi_schema(module, name)["enum"]
    assert [m.value for m in OPENAPI_ENUMS[(module, name)]] == [str(x) for x in theirs]


def test_status_codes_match_openapi() -> None:
    from ocpi.transport import OcpiStatus

    if not openapi_available():
        pytest.skip("no ../shared OpenAPI description")
    theirs = _openapi_schema("components", "StatusCode")
    assert [int(s) for s in OcpiStatus] == theirs["enum"]
    for code, text in theirs["x-enumDescriptions"].items():
        assert OcpiStatus(int(code)).description == text


# ------------------------------------------------------------------- bad input


def base_location() -> dict[str, Any]:
    return copy.deepcopy(load("location_example.json"))


def base_token() -> dict[str, Any]:
    return copy.deepcopy(load("token_example_2_full_rfid.json"))


@pytest.mark.parametrize(
    ("model", "data_factory", "mutate", "expected"),
    [
        (
            v.Location,
            base_location,
            lambda d: d["evses"][0].__setitem__("status", "BROKEN"),
            "evses[0].status: Input should be 'AVAILABLE', 'BLOCKED'",
        ),
        (
            v.Location,
            base_location,
            lambda d: d.__setitem__("country_code", "BEL"),
            "country_code: String should have at most 2 characters",
        ),
        (
            v.Location,
            base_location,
            lambda d: d.pop("last_updated"),
            "last_updated: Field required",
        ),
        (
            v.Location,
            base_location,
            lambda d: d["evses"][1].__setitem__("connectors", []),
            "evses[1].connectors: List should have at least 1 item",
        ),
        (
            v.Location,
            base_location,
            lambda d: d["coordinates"].__setitem__("latitude", "51.04"),
            "coordinates.latitude: String should match pattern",
        ),
        (
            v.Location,
            base_location,
            lambda d: d.__setitem__("publish", "yes"),
            "publish: Input should be a valid boolean",
        ),
        (
            v.Location,
            base_location,
            lambda d: d["evses"][0]["connectors"][1].__setitem__("max_voltage", 220.5),
            "evses[0].connectors[1].max_voltage: Input should be an integer",
        ),
        (
            v.Location,
            base_location,
            lambda d: d["evses"][0]["connectors"][1].__setitem__("max_voltage", "220"),
            "evses[0].connectors[1].max_voltage: Input should be an integer",
        ),
        (
            v.Location,
            base_location,
            lambda d: d.__setitem__("id", "x" * 37),
            "id: String should have at most 36 characters",
        ),
        (
            v.Location,
            base_location,
            lambda d: d.__setitem__("id", "Lötzen"),
            "id: CiString should contain printable ASCII characters only",
        ),
        (
            v.Location,
            base_location,
            lambda d: d.__setitem__("last_updated", "2015-06-29 20:39:09"),
            "last_updated: Input should be an RFC 3339 date-time",
        ),
        (
            v.Location,
            base_location,
            lambda d: d.__setitem__("last_updated", "2015-02-30T20:39:09Z"),
            "last_updated: Input should be a valid date-time",
        ),
        (
            v.Location,
            base_location,
            lambda d: d.__setitem__(
                "opening_times",
                {
                    "twentyfourseven": False,
                    "regular_hours": [
                        {"weekday": 8, "period_begin": "08:00", "period_end": "24:00"}
                    ],
                },
            ),
            "opening_times.regular_hours[0].weekday: Input should be less than or equal to 7",
        ),
        (
            v.Token,
            base_token,
            lambda d: d.__setitem__("whitelist", "SOMETIMES"),
            "whitelist: Input should be 'ALWAYS', 'ALLOWED', 'ALLOWED_OFFLINE' or 'NEVER'",
        ),
        (
            v.Token,
            base_token,
            lambda d: d.__setitem__("type", 7),
            "type: Input should be a string (a TokenType value)",
        ),
        (
            v.Token,
            base_token,
            lambda d: d["energy_contract"].pop("supplier_name"),
            "energy_contract.supplier_name: Field required",
        ),
        (
            v.Token,
            base_token,
            lambda d: d.__setitem__("language", "ita"),
            "language: String should have at most 2 characters",
        ),
    ],
)
def test_bad_input_names_the_field(
    model: type[BaseModel], data_factory: Any, mutate: Any, expected: str
) -> None:
    data = data_factory()
    mutate(data)
    assert expected in errors_of(model, data)


def test_number_refuses_strings_booleans_and_non_finite() -> None:
    assert "excl_vat: Input should be a JSON number" in errors_of(v.Price, {"excl_vat": "1.5"})
    assert "excl_vat: Input should be a JSON number" in errors_of(v.Price, {"excl_vat": True})
    assert "excl_vat: Input should be a finite number" in errors_of(
        v.Price, {"excl_vat": Decimal("NaN")}
    )
    with pytest.raises(ValueError, match="NaN"):
        json_loads('{"excl_vat": NaN}')


def test_url_fields_must_be_absolute() -> None:
    message = errors_of(
        v.StopSession, {"response_url": "/commands/STOP_SESSION/1", "session_id": "1"}
    )
    assert "response_url: URL should be absolute (scheme and host)" in message
    too_long = "https://example.com/" + "x" * 240
    assert "response_url: String should have at most 255 characters" in errors_of(
        v.StopSession, {"response_url": too_long, "session_id": "1"}
    )


# ----------------------------------------------------- numbers and timestamps


def test_decimal_is_written_as_a_json_number_with_its_digits() -> None:
    price = v.Price(excl_vat=Decimal("2.50"), incl_vat=Decimal("3.0250"))
    assert price.to_json() == '{"excl_vat":2.50,"incl_vat":3.0250}'
    precise = v.Price(excl_vat=Decimal("0.1000000000000000000001"))
    assert json_loads(precise.to_json()) == {"excl_vat": Decimal("0.1000000000000000000001")}
    assert v.Price.model_validate(json_loads(precise.to_json())) == precise
    # pydantic's own JSON writes numbers too (through float), never strings
    assert json.loads(price.model_dump_json(exclude_none=True)) == {
        "excl_vat": 2.5,
        "incl_vat": 3.025,
    }


def test_float_input_becomes_the_decimal_of_its_shortest_repr() -> None:
    assert v.Price.model_validate({"excl_vat": 0.1}).excl_vat == Decimal("0.1")
    assert v.Price.model_validate({"excl_vat": 5}).excl_vat == Decimal(5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015-06-29T20:39:09Z", datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)),
        ("2015-06-29T20:39:09", datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)),
        ("2016-12-29T17:45:09.2Z", datetime(2016, 12, 29, 17, 45, 9, 200000, tzinfo=UTC)),
        ("2018-01-01T01:08:01.123", datetime(2018, 1, 1, 1, 8, 1, 123000, tzinfo=UTC)),
        ("2018-01-01T03:08:01.123456789+02:00", datetime(2018, 1, 1, 1, 8, 1, 123000, tzinfo=UTC)),
        ("2018-01-01t01:08:01z", datetime(2018, 1, 1, 1, 8, 1, tzinfo=UTC)),
    ],
)
def test_datetime_input(text: str, expected: datetime) -> None:
    parsed = v.ExceptionalPeriod.model_validate(
        {"period_begin": text, "period_end": "2030-01-01T00:00:00Z"}
    ).period_begin
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC), "2015-06-29T20:39:09Z"),
        (datetime(2016, 12, 29, 17, 45, 9, 200000, tzinfo=UTC), "2016-12-29T17:45:09.2Z"),
        (datetime(2018, 1, 1, 1, 8, 1, 123999, tzinfo=UTC), "2018-01-01T01:08:01.123Z"),
        (
            datetime(2018, 1, 1, 3, 8, 1, tzinfo=timezone(timedelta(hours=2))),
            "2018-01-01T01:08:01Z",
        ),
        (datetime(2018, 1, 1, 1, 8, 1), "2018-01-01T01:08:01Z"),
    ],
)
def test_datetime_output_is_utc_with_z(value: datetime, text: str) -> None:
    period = v.StatusSchedule(period_begin=value, status=v.Status.PLANNED)
    assert json_loads(period.to_json())["period_begin"] == text
    assert json.loads(period.model_dump_json(exclude_none=True))["period_begin"] == text
    assert len(text) <= 25  # OCPI DateTime is string(25)


# ------------------------------------------------------- enums and unknown fields


def test_open_enum_keeps_unknown_values_and_closed_enum_refuses_them() -> None:
    data = base_location()
    data["evses"][0]["capabilities"] = ["RESERVABLE", "ISO_15118_2_PLUG_AND_CHARGE"]
    data["facilities"] = ["WIFI"]
    location = v.Location.model_validate(data)
    evse = (location.evses or [])[0]
    assert evse.capabilities == [v.Capability.RESERVABLE, "ISO_15118_2_PLUG_AND_CHARGE"]
    assert isinstance((evse.capabilities or [])[0], v.Capability)
    assert location.facilities == [v.Facility.WIFI]
    assert wire(location)["evses"][0]["capabilities"] == data["evses"][0]["capabilities"]
    details = v.VersionDetails.model_validate(
        {"version": "2.3.0", "endpoints": [{"identifier": "bookings", "role": "SENDER",
                                            "url": "https://example.com/ocpi/bookings"}]}
    )  # fmt: skip
    assert details.version == "2.3.0"
    assert details.endpoints[0].identifier == "bookings"


def test_unknown_fields_are_ignored_and_never_written() -> None:
    data = base_token()
    data["future_field"] = {"anything": 1}
    data["energy_contract"]["extra"] = True
    token = v.Token.model_validate(data)
    out = wire(token)
    assert "future_field" not in out
    assert "extra" not in out["energy_contract"]


# ---------------------------------------------------------------------- PATCH


def test_patch_requires_last_updated_and_writes_only_present_fields() -> None:
    with pytest.raises(InvalidParametersError, match="last_updated: Field required"):
        v.parse_patch(v.Token, {"valid": False})
    patch = v.parse_patch(v.Token, load("token_patch_example.json"))
    assert isinstance(patch, v.TokenPatch)
    assert wire(patch) == {"valid": False, "last_updated": "2019-06-19T02:11:11Z"}
    validate_against_openapi("tokens", "TokenPatch", patch)


def test_apply_patch_merges_and_leaves_the_original_untouched() -> None:
    token = v.Token.model_validate(load("token_put_example.json"))
    before = token.model_copy(deep=True)
    patch = v.TokenPatch.model_validate(load("token_patch_example.json"))
    patched = v.apply_patch(token, patch)
    assert patched.valid is False
    assert patched.last_updated == datetime(2019, 6, 19, 2, 11, 11, tzinfo=UTC)
    assert patched.uid == token.uid and patched.issuer == token.issuer
    assert token == before


def test_apply_patch_is_all_or_nothing() -> None:
    location = v.Location.model_validate(base_location())
    evse = (location.evses or [])[0]
    connector = evse.connectors[0]
    patch = v.ConnectorPatch.model_validate(
        {"max_voltage": None, "tariff_ids": ["12"], "last_updated": "2020-01-01T00:00:00Z"}
    )
    with pytest.raises(InvalidParametersError, match="max_voltage: Field required"):
        v.apply_patch(connector, patch)
    assert connector.tariff_ids == ["11"]
    bad_status = {"status": "GONE", "last_updated": "2020-01-01T00:00:00Z"}
    with pytest.raises(InvalidParametersError, match="status: Input should be"):
        v.parse_patch(v.EVSE, bad_status)


def test_apply_patch_refuses_to_change_identity() -> None:
    token = v.Token.model_validate(load("token_put_example.json"))
    same = v.TokenPatch.model_validate(
        {"uid": token.uid.lower(), "country_code": "nl", "last_updated": "2020-01-01T00:00:00Z"}
    )
    assert v.apply_patch(token, same).uid == token.uid
    other = v.TokenPatch.model_validate({"uid": "X1", "last_updated": "2020-01-01T00:00:00Z"})
    with pytest.raises(InvalidParametersError, match="uid: cannot be changed"):
        v.apply_patch(token, other)
    with pytest.raises(TypeError):
        v.apply_patch(
            token, v.SessionPatch.model_validate({"last_updated": "2020-01-01T00:00:00Z"})
        )


def test_session_patch_appends_charging_periods() -> None:
    session = v.Session.model_validate(load("session_example_2_short_finished.json"))
    periods_before = len(session.charging_periods or [])
    patch = v.SessionPatch.model_validate(load("session_patch_example_charging_period.json"))
    patched = v.apply_patch(session, patch)
    assert len(patched.charging_periods or []) == periods_before + 1
    assert patched.kwh == Decimal("15.00")
    assert patched.total_cost == v.Price(excl_vat=Decimal("0.80"), incl_vat=Decimal("0.88"))
    empty = v.SessionPatch.model_validate(
        {"charging_periods": [], "last_updated": "2020-01-01T00:00:00Z"}
    )
    assert v.apply_patch(session, empty).charging_periods == session.charging_periods


def test_location_helpers_find_evse_and_connector_case_insensitively() -> None:
    data = base_location()
    data["evses"][0]["uid"] = "Evse-A"
    location = v.Location.model_validate(data)
    evse = location.evse("EVSE-a")
    assert evse is not None and evse.uid == "Evse-A"
    assert v.find_connector(evse, "2") is not None
    assert v.find_connector(evse, "3") is None
    assert location.evse("nope") is None


@pytest.mark.skipif(not openapi_available(), reason="no ../shared OpenAPI description")
def test_openapi_helper_is_not_vacuous() -> None:
    data = wire(v.Token.model_validate(base_token()))
    data["whitelist"] = "SOMETIMES"
    data["last_updated"] = "2019-06-19 02:11:11"
    del data["issuer"]
    errors = "\n".join(openapi_errors("tokens", "Token", data))
    assert "'issuer' is a required property" in errors
    assert "SOMETIMES" in errors
    assert "is not a 'date-time'" in errors or "RFC 3339" in errors
    with pytest.raises(AssertionError):
        validate_against_openapi("tokens", "Token", data)
