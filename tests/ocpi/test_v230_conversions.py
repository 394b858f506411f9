"""Conversions between OCPI 2.3.0 and the internal 2.2.1 form (ocpi.versions.v230).

Properties: any valid 2.2.1 object comes back unchanged from 2.2.1 -> 2.3.0 -> 2.2.1 (and
its 2.3.0 form is valid against the 2.3.0 OpenAPI files); a 2.3.0 object whose
information exists in 2.2.1 comes back unchanged from 2.3.0 -> 2.2.1 -> 2.3.0; for any
2.3.0 object, the fields that change on that round trip are exactly the documented lossy
ones (``LOSSY``, the module's table), and what cannot be expressed raises NotExpressible
naming the field, only in the documented cases.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import ocpi.v221 as v221
import ocpi.v230 as v230
from ocpi.transport import json_loads
from ocpi.versions import NotExpressible
from ocpi.versions import v230 as conv
from tests.ocpi.model_strategies import objects
from tests.ocpi.openapi import openapi_available, validate_against_openapi

EXAMPLES = Path(__file__).parent / "examples_v230"
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NEW_VALUES = frozenset().union(*conv.NEW_ENUM_VALUES.values())
LOSSY = {(model, name) for model, name, _ in conv.LOSSY}

# Keep to the OpenAPI files' lengths where the spec's errata allow more (see the model tests).
LIMITS_221: dict[tuple[type[BaseModel] | None, str], st.SearchStrategy[Any]] = {
    (v221.Location, "address"): st.text(max_size=45),
    (v221.Location, "state"): st.text(max_size=20),
    (v221.LocationPatch, "address"): st.text(max_size=45),
    (v221.LocationPatch, "state"): st.text(max_size=20),
    (v221.SignedValue, "plain_data"): st.text(max_size=512),
}
LIMITS_230: dict[tuple[type[BaseModel] | None, str], st.SearchStrategy[Any]] = {
    (v230.Location, "address"): st.text(max_size=45),
    (v230.Location, "state"): st.text(max_size=20),
    (v230.LocationPatch, "address"): st.text(max_size=45),
    (v230.LocationPatch, "state"): st.text(max_size=20),
    (v230.SignedValue, "plain_data"): st.text(max_size=512),
}

# internal model -> (2.3.0 model, OpenAPI module, schema)
PAIRS: dict[type[BaseModel], tuple[type[BaseModel], str, str]] = {
    v221.Location: (v230.Location, "locations", "Location"),
    v221.EVSE: (v230.EVSE, "locations", "EVSE"),
    v221.Connector: (v230.Connector, "locations", "Connector"),
    v221.LocationPatch: (v230.LocationPatch, "locations", "LocationPatch"),
    v221.EVSEPatch: (v230.EVSEPatch, "locations", "EVSEPatch"),
    v221.ConnectorPatch: (v230.ConnectorPatch, "locations", "ConnectorPatch"),
    v221.Session: (v230.Session, "sessions", "Session"),
    v221.SessionPatch: (v230.SessionPatch, "sessions", "SessionPatch"),
    v221.ChargingPreferences: (v230.ChargingPreferences, "sessions", "ChargingPreferences"),
    v221.CDR: (v230.CDR, "cdrs", "CDR"),
    v221.CdrToken: (v230.CdrToken, "cdrs", "CdrToken"),
    v221.Tariff: (v230.Tariff, "tariffs", "Tariff"),
    v221.Token: (v230.Token, "tokens", "Token"),
    v221.TokenPatch: (v230.TokenPatch, "tokens", "TokenPatch"),
    v221.AuthorizationInfo: (v230.AuthorizationInfo, "tokens", "AuthorizationInfo"),
    v221.LocationReferences: (v230.LocationReferences, "tokens", "LocationReferences"),
    v221.CancelReservation: (v230.CancelReservation, "commands", "CancelReservation"),
    v221.ReserveNow: (v230.ReserveNow, "commands", "ReserveNow"),
    v221.StartSession: (v230.StartSession, "commands", "StartSession"),
    v221.StopSession: (v230.StopSession, "commands", "StopSession"),
    v221.UnlockConnector: (v230.UnlockConnector, "commands", "UnlockConnector"),
    v221.CommandResponse: (v230.CommandResponse, "commands", "CommandResponse"),
    v221.CommandResult: (v230.CommandResult, "commands", "CommandResult"),
    v221.SetChargingProfile: (v230.SetChargingProfile, "chargingprofiles", "SetChargingProfile"),
    v221.ChargingProfileResponse: (
        v230.ChargingProfileResponse, "chargingprofiles", "ChargingProfileResponse",
    ),
    v221.ActiveChargingProfileResult: (
        v230.ActiveChargingProfileResult, "chargingprofiles", "ActiveChargingProfileResult",
    ),
    v221.ChargingProfileResult: (
        v230.ChargingProfileResult, "chargingprofiles", "ChargingProfileResult",
    ),
    v221.ClearProfileResult: (v230.ClearProfileResult, "chargingprofiles", "ClearProfileResult"),
    v221.ActiveChargingProfile: (
        v230.ActiveChargingProfile, "chargingprofiles", "ActiveChargingProfile",
    ),
    v221.ChargingProfile: (v230.ChargingProfile, "chargingprofiles", "ChargingProfile"),
    v221.ClientInfo: (v230.ClientInfo, "hubclientinfo", "ClientInfo"),
    v221.Credentials: (v230.Credentials, "credentials", "Credentials"),
}  # fmt: skip

validates = pytest.mark.skipif(
    not (openapi_available("2.2.1") and openapi_available("2.3.0")),
    reason="no ../shared OpenAPI description",
)


def load(name: str) -> Any:
    return json_loads((EXAMPLES / name).read_text(encoding="utf-8"))


def changed_fields(a: BaseModel, b: BaseModel) -> set[tuple[str, str]]:
    """``(object, field)`` of each field that differs between two objects of the same
    model, at the deepest object where the field exists on both sides (a documented lossy
    field is reported as a whole)."""
    out: set[tuple[str, str]] = set()
    name = type(a).__name__.removesuffix("Patch")  # a patch loses what its object loses
    for field in type(a).model_fields:
        x, y = getattr(a, field), getattr(b, field)
        if x == y:
            continue
        if (name, field) in LOSSY:
            out.add((name, field))
        elif isinstance(x, BaseModel) and type(x) is type(y):
            out |= changed_fields(x, y)
        elif (
            isinstance(x, list)
            and isinstance(y, list)
            and len(x) == len(y)
            and all(
                isinstance(i, BaseModel) and type(i) is type(j) for i, j in zip(x, y, strict=True)
            )
        ):
            for i, j in zip(x, y, strict=True):
                out |= changed_fields(i, j)
        else:
            out.add((name, field))
    return out


# ------------------------------------------------- 2.2.1 -> 2.3.0 -> 2.2.1


ROUND_TRIP_221 = [m for m in PAIRS if m not in (v221.Credentials, v221.ClientInfo)]


@validates
@pytest.mark.parametrize("model", ROUND_TRIP_221, ids=lambda m: m.__name__)
def test_internal_objects_come_back_unchanged(model: type[BaseModel]) -> None:
    target, module, schema = PAIRS[model]

    @PROPERTY
    @given(objects(model, LIMITS_221))
    def check(x: BaseModel) -> None:
        y = conv.to_v230(x)
        assert type(y) is target
        validate_against_openapi(module, schema, y, version="2.3.0")
        assert conv.from_v230(y) == x

    check()


@given(objects(v221.ClientInfo))
@PROPERTY
def test_client_info_round_trip_and_hub_role(x: v221.ClientInfo) -> None:
    if x.role is v221.Role.HUB:
        with pytest.raises(NotExpressible) as info:
            conv.client_info_to_v230(x)
        assert info.value.field == "role" and info.value.version == "2.3.0"
    else:
        assert conv.client_info_from_v230(conv.client_info_to_v230(x)) == x


@given(objects(v221.Credentials), st.lists(objects(v230.CredentialsRole), max_size=2))
@PROPERTY
def test_credentials_round_trip(x: v221.Credentials, reachable: list[v230.CredentialsRole]) -> None:
    hubs = [r for r in x.roles if r.role is v221.Role.HUB]
    others = [r for r in x.roles if r.role is not v221.Role.HUB]
    if len(hubs) > 1 or not (others or reachable):
        with pytest.raises(NotExpressible) as info:
            conv.credentials_to_v230(x, reachable=reachable)
        assert info.value.field == "roles"
        return
    y = conv.credentials_to_v230(x, reachable=reachable)
    if openapi_available("2.3.0"):
        validate_against_openapi("credentials", "Credentials", y, version="2.3.0")
    assert y.hub_party_id == (hubs[0].country_code + hubs[0].party_id if hubs else None)
    back = conv.credentials_from_v230(
        y, hub_business_details=hubs[0].business_details if hubs else None
    )
    passed_on = [v221.CredentialsRole.model_validate(r.to_wire()) for r in reachable]
    assert back.roles == hubs + others + passed_on
    assert back.token == x.token and back.url == x.url


# ------------------------------------------------- 2.3.0 -> 2.2.1 -> 2.3.0


def expressible(y: BaseModel) -> BaseModel:
    """``y`` without what the table says 2.2.1 cannot hold: a restatement of the
    documented mappings, independent of the conversion code."""
    data = y.model_dump(mode="python", exclude_none=True)

    def price(p: dict[str, Any]) -> None:
        taxes = p.get("taxes")
        if taxes is not None:
            p["taxes"] = [{"name": "VAT", "amount": sum((t["amount"] for t in taxes), Decimal(0))}]

    def tariff(t: dict[str, Any]) -> bool:
        """Made expressible; False when 2.2.1 cannot hold it at all."""
        t.pop("preauthorize_amount", None)
        t["elements"] = [e for e in t["elements"] if "booking" not in e.get("restrictions", {})]
        has_vat = any("vat" in c for e in t["elements"] for c in e["price_components"])
        expressible = t["tax_included"] != "YES" and bool(t["elements"])
        t["tax_included"] = "NO" if has_vat else "N/A"
        return expressible

    def evse(e: dict[str, Any]) -> None:
        e.pop("parking", None)
        e.pop("accepted_service_providers", None)
        for c in e.get("connectors") or []:
            c.pop("capabilities", None)

    kind = type(y)
    if kind in (v230.Location, v230.LocationPatch):
        data.pop("parking_places", None)
        data.pop("help_phone", None)
        for e in data.get("evses") or []:
            evse(e)
    elif kind in (v230.EVSE, v230.EVSEPatch):
        evse(data)
    elif kind in (v230.Connector, v230.ConnectorPatch):
        data.pop("capabilities", None)
    elif kind in (v230.Session, v230.SessionPatch) and "total_cost" in data:
        price(data["total_cost"])
    elif kind is v230.CDR:
        data.pop("booking_id", None)
        for name in conv._CDR_PRICES:
            if name in data:
                price(data[name])
        data["tariffs"] = [t for t in data.get("tariffs", []) if tariff(t)] or None
    elif kind is v230.Tariff:
        tariff(data)
    return kind.model_validate({k: x for k, x in data.items() if x is not None})


FROM_230 = [m for m, *_ in PAIRS.values() if m not in (v230.Credentials,)]


@validates
@pytest.mark.parametrize("model", FROM_230, ids=lambda m: m.__name__)
def test_2_3_0_objects_lose_only_the_documented_fields(model: type[BaseModel]) -> None:
    internal = next(k for k, (m, *_) in PAIRS.items() if m is model)

    @PROPERTY
    @given(objects(model, LIMITS_230))
    def check(y: BaseModel) -> None:
        if isinstance(y, v230.Tariff) and (
            y.tax_included is v230.TaxIncluded.YES
            or all(e.restrictions and e.restrictions.booking for e in y.elements)
        ):
            with pytest.raises(NotExpressible) as info:
                conv.from_v230(y)
            assert info.value.field in ("tax_included", "elements")
            assert info.value.version == "2.2.1"
            return
        x = conv.from_v230(y)
        assert type(x) is internal
        back = conv.to_v230(x)
        assert changed_fields(y, back) <= LOSSY
        # What 2.2.1 can hold comes back exactly.
        plain = expressible(y)
        assert conv.to_v230(conv.from_v230(plain)) == plain

    check()


@validates
@pytest.mark.parametrize("model", FROM_230, ids=lambda m: m.__name__)
def test_2_3_0_objects_in_2_2_1_validate_against_the_2_2_1_openapi(
    model: type[BaseModel],
) -> None:
    internal = next(k for k, (m, *_) in PAIRS.items() if m is model)
    module, schema = PAIRS[internal][1:]

    @PROPERTY
    @given(objects(model, LIMITS_230, exclude=NEW_VALUES))
    def check(y: BaseModel) -> None:
        try:
            x = conv.from_v230(y)
        except NotExpressible:
            return  # the documented cases, checked above
        validate_against_openapi(module, schema, x, version="2.2.1")

    check()


@given(objects(v230.Credentials))
@PROPERTY
def test_2_3_0_credentials_round_trip(y: v230.Credentials) -> None:
    x = conv.credentials_from_v230(y)
    if y.hub_party_id is not None:
        assert x.roles[0].role is v221.Role.HUB
        assert x.roles[0].country_code + x.roles[0].party_id == y.hub_party_id
        assert x.roles[0].business_details.name == y.hub_party_id
    assert conv.credentials_to_v230(x) == y


# ------------------------------------- each documented loss happens, as written


def _location_with_new_fields() -> v230.Location:
    data = copy.deepcopy(load("location_example.json"))
    data["parking_places"] = [
        {"id": "P1", "vehicle_types": ["PERSONAL_VEHICLE"], "restricted_to_type": False,
         "reservation_required": False}
    ]  # fmt: skip
    data["help_phone"] = "+31201234567"
    evse = data["evses"][0]
    evse["parking"] = [{"parking_id": "P1", "evse_position": "LEFT"}]
    evse["accepted_service_providers"] = ["Example eMSP"]
    evse["connectors"][0]["capabilities"] = ["ISO_15118_2_PLUG_AND_CHARGE"]
    return v230.Location.model_validate(data)


def _tariff(**changes: Any) -> v230.Tariff:
    data = copy.deepcopy(load("tariff_12_025kwh_min_price.json"))
    data.update(changes)
    return v230.Tariff.model_validate(data)


def _cdr(**changes: Any) -> v230.CDR:
    data = copy.deepcopy(load("cdr_example.json"))
    data["tariffs"][0]["tax_included"] = "NO"
    data.update(changes)
    return v230.CDR.model_validate(data)


def _session_with_taxes() -> v230.Session:
    data = copy.deepcopy(load("session_example_2_short_finished.json"))
    data["total_cost"] = {
        "before_taxes": 10,
        "taxes": [
            {"name": "GST", "account_number": "123", "percentage": 5, "amount": 0.5},
            {"name": "QST", "percentage": 9.975, "amount": 0.9975},
        ],
    }
    return v230.Session.model_validate(data)


BOOKING_ELEMENT = {
    "price_components": [{"type": "FLAT", "price": 2, "step_size": 1}],
    "restrictions": {"booking": "BOOKING"},
}
EXAMPLES_OF_LOSS: dict[tuple[str, str], Callable[[], BaseModel]] = {
    ("Price", "taxes"): _session_with_taxes,
    ("Tariff", "tax_included"): lambda: _tariff(
        elements=[{"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]}],
        tax_included="NO",
    ),
    ("Tariff", "preauthorize_amount"): lambda: _tariff(preauthorize_amount=50),
    ("Tariff", "elements"): lambda: _tariff(
        elements=[*load("tariff_12_025kwh_min_price.json")["elements"], BOOKING_ELEMENT]
    ),
    ("CDR", "tariffs"): lambda: _cdr(
        tariffs=[{**load("cdr_example.json")["tariffs"][0], "tax_included": "YES"}]
    ),
    ("CDR", "booking_id"): lambda: _cdr(booking_id="B-1"),
    ("Location", "parking_places"): _location_with_new_fields,
    ("Location", "help_phone"): _location_with_new_fields,
    ("EVSE", "parking"): _location_with_new_fields,
    ("EVSE", "accepted_service_providers"): _location_with_new_fields,
    ("Connector", "capabilities"): _location_with_new_fields,
}


def test_every_lossy_row_is_documented_in_the_module_text() -> None:
    doc = conv.__doc__ or ""
    for model, field, _ in conv.LOSSY:
        assert f"{model}.{field}" in doc or (model, field) == ("Tariff", "elements")
    assert "TariffRestrictions.booking" in doc  # the row behind ("Tariff", "elements")
    assert set(EXAMPLES_OF_LOSS) == LOSSY


@pytest.mark.parametrize("row", sorted(EXAMPLES_OF_LOSS))
def test_each_documented_loss_happens(row: tuple[str, str]) -> None:
    y = EXAMPLES_OF_LOSS[row]()
    back = conv.to_v230(conv.from_v230(y))
    assert row in changed_fields(y, back)
    assert changed_fields(y, back) <= LOSSY


# ------------------------------------------------------------- the details


def test_prices_sum_the_taxes_and_come_back_as_one_vat() -> None:
    session = conv.session_from_v230(_session_with_taxes())
    assert session.total_cost == v221.Price(excl_vat=Decimal(10), incl_vat=Decimal("11.4975"))
    back = conv.session_to_v230(session)
    assert back.total_cost == v230.Price(
        before_taxes=Decimal(10), taxes=[v230.TaxAmount(name="VAT", amount=Decimal("1.4975"))]
    )
    no_vat = conv.session_to_v230(
        session.model_copy(update={"total_cost": v221.Price(excl_vat=Decimal(3))})
    )
    assert no_vat.total_cost == v230.Price(before_taxes=Decimal(3))


def test_tariff_tax_included_and_price_limits() -> None:
    tariff = conv.tariff_from_v230(_tariff())
    assert tariff.min_price == v221.Price(excl_vat=Decimal("0.50"), incl_vat=Decimal("0.55"))
    assert conv.tariff_to_v230(tariff).tax_included is v230.TaxIncluded.NO  # it has a vat
    exclusive = v230.Tariff.model_validate(load("tariff_19_simple_north_american_exclusive.json"))
    assert conv.tariff_to_v230(conv.tariff_from_v230(exclusive)).tax_included is (
        v230.TaxIncluded.NOT_APPLICABLE
    )
    inclusive = v230.Tariff.model_validate(load("tariff_20_simple_north_american_inclusive.json"))
    with pytest.raises(NotExpressible, match=r"^tax_included: prices include taxes") as info:
        conv.tariff_from_v230(inclusive)
    assert info.value.version == "2.2.1"
    with pytest.raises(NotExpressible) as info:
        conv.tariff_from_v230(_tariff(elements=[BOOKING_ELEMENT]))
    assert info.value.field == "elements"


def test_a_cdr_keeps_going_without_the_tariff_2_2_1_cannot_hold() -> None:
    cdr = _cdr(tariffs=[{**load("cdr_example.json")["tariffs"][0], "tax_included": "YES"}])
    internal = conv.cdr_from_v230(cdr)
    assert internal.tariffs is None
    assert internal.total_cost.excl_vat == cdr.total_cost.before_taxes


def test_new_enum_values_are_kept_in_the_internal_form() -> None:
    data = copy.deepcopy(load("location_example.json"))
    data["evses"][0]["connectors"][0]["standard"] = "SAE_J3400"
    data["evses"][0]["parking_restrictions"] = ["TAXIS", "EV_ONLY"]
    internal = conv.location_from_v230(v230.Location.model_validate(data))
    assert internal.evses is not None
    assert internal.evses[0].connectors[0].standard == "SAE_J3400"
    assert internal.evses[0].parking_restrictions == ["TAXIS", v221.ParkingRestriction.EV_ONLY]
    back = conv.location_to_v230(internal)
    assert back.evses is not None
    assert back.evses[0].connectors[0].standard is v230.ConnectorType.SAE_J3400
    assert conv.NEW_ENUM_VALUES["ConnectorType"] >= {"SAE_J3400", "MCS"}


def test_values_closed_in_2_3_0_are_not_expressible() -> None:
    session = v221.Session.model_validate(
        load("session_example_2_short_finished.json") | {"total_cost": {"excl_vat": 1}}
    )
    periods = [
        p.model_copy(update={"dimensions": [v221.CdrDimension(type="X_CUSTOM", volume=Decimal(1))]})
        for p in session.charging_periods or []
    ]
    with pytest.raises(NotExpressible) as info:
        conv.session_to_v230(session.model_copy(update={"charging_periods": periods}))
    assert info.value.field == "charging_periods[0].dimensions[0].type"
    assert info.value.version == "2.3.0"


def test_credentials_hub_party() -> None:
    details = v221.BusinessDetails(name="Example Hub")
    hub = v221.CredentialsRole(
        role=v221.Role.HUB, business_details=details, country_code="NL", party_id="HUB"
    )
    only_hub = v221.Credentials(token="t", url="https://hub.example.com/versions", roles=[hub])
    with pytest.raises(NotExpressible, match="reachable"):
        conv.credentials_to_v230(only_hub)
    cpo = v230.CredentialsRole(
        role=v230.Role.CPO, business_details=v230.BusinessDetails(name="CPO"),
        country_code="DE", party_id="CPO",
    )  # fmt: skip
    y = conv.credentials_to_v230(only_hub, reachable=[cpo])
    assert y.hub_party_id == "NLHUB" and [r.party_id for r in y.roles] == ["CPO"]
    assert conv.credentials_from_v230(y, hub_business_details=details).roles[0] == hub
    two_hubs = only_hub.model_copy(update={"roles": [hub, hub]})
    with pytest.raises(NotExpressible, match="more than one HUB"):
        conv.credentials_to_v230(two_hubs, reachable=[cpo])


def test_patches_keep_present_fields_and_nulls_and_drop_new_ones() -> None:
    only_new = v230.LocationPatch.model_validate(
        {"help_phone": "+3120", "last_updated": "2024-01-01T00:00:00Z"}
    )
    down = conv.patch_from_v230(only_new)
    assert isinstance(down, v221.LocationPatch)
    assert down.to_wire().keys() == {"last_updated"}
    cleared = v230.EVSEPatch.model_validate(
        {"floor_level": None, "parking": None, "last_updated": "2024-01-01T00:00:00Z"}
    )
    assert conv.patch_from_v230(cleared).to_wire() == {
        "floor_level": None, "last_updated": cleared.last_updated,
    }  # fmt: skip
    total = v221.SessionPatch.model_validate(
        {"total_cost": {"excl_vat": 2, "incl_vat": 2.42}, "last_updated": "2024-01-01T00:00:00Z"}
    )
    up = conv.patch_to_v230(total)
    assert isinstance(up, v230.SessionPatch) and up.total_cost is not None
    assert up.total_cost.taxes == [v230.TaxAmount(name="VAT", amount=Decimal("0.42"))]
    assert conv.patch_from_v230(up) == total


def test_objects_without_a_counterpart_are_refused() -> None:
    terminal = v230.Terminal.model_validate(load("payment_terminal_create.json"))
    with pytest.raises(TypeError, match=r"no 2\.2\.1 form of Terminal"):
        conv.from_v230(terminal)
    with pytest.raises(TypeError, match=r"no 2\.3\.0 conversion"):
        conv.to_v230(v221.Hours(twentyfourseven=True))
