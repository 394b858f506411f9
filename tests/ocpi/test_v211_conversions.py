"""Conversions between OCPI 2.1.1 and the internal 2.2.1 form (ocpi.versions.v211):
property tests with realistic random objects. A 2.2.1 object whose information exists in
2.1.1 survives 2.2.1 → 2.1.1 → 2.2.1 unchanged; a 2.1.1 object survives 2.1.1 → 2.2.1
→ 2.1.1 unchanged; for any 2.2.1 object, either the conversion refuses it with
NotExpressible, or the round trip changes only the fields documented as lossy."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ocpi.v211 as old
from ocpi import v221 as new
from ocpi.hub.translate import Origin, read
from ocpi.transport import InvalidParametersError, PartyId
from ocpi.versions import NotExpressible
from ocpi.versions import v211 as conv
from ocpi.versions.objects import from_version

SETTINGS = settings(max_examples=40, deadline=None)

ASCII = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
TEXT = st.characters(min_codepoint=0x20, max_codepoint=0x17F, exclude_categories=("Cs",))


def ident(max_size: int = 36) -> st.SearchStrategy[str]:
    return st.text(ASCII, min_size=1, max_size=max_size)


def text(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    return st.text(TEXT, min_size=min_size, max_size=max_size)


def values(enum_cls: Any) -> list[str]:
    return [m.value for m in enum_cls]


SHARED = {
    "capabilities": values(old.Capability),
    "facilities": values(old.Facility),
    "standards": values(old.ConnectorType),
    "power_types": values(old.PowerType),
    "parking": ["ON_STREET", "PARKING_GARAGE", "UNDERGROUND_GARAGE", "PARKING_LOT"],
    "dimensions": ["ENERGY", "MAX_CURRENT", "MIN_CURRENT", "PARKING_TIME", "TIME"],
}

timestamps = st.datetimes(
    min_value=datetime(2010, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
money = st.decimals(min_value=0, max_value=10**5, places=2)
amounts = st.decimals(min_value=0, max_value=10**4, places=4)
urls = st.sampled_from(["https://cpo.example/t", "https://example.com/img/logo.jpg"])
country3 = st.sampled_from(["NLD", "BEL", "DEU", "FRA"])
coordinate6 = st.fixed_dictionaries(
    {
        "latitude": st.from_regex(r"-?[0-8][0-9]\.[0-9]{6}", fullmatch=True),
        "longitude": st.from_regex(r"-?1?[0-7][0-9]\.[0-9]{6}", fullmatch=True),
    }
)
coordinate_any = st.fixed_dictionaries(
    {
        "latitude": st.from_regex(r"-?[0-8][0-9]\.[0-9]{5,7}", fullmatch=True).filter(
            lambda s: len(s) <= 10
        ),
        "longitude": st.from_regex(r"-?1?[0-7][0-9]\.[0-9]{5,7}", fullmatch=True).filter(
            lambda s: len(s) <= 11
        ),
    }
)
display = st.fixed_dictionaries(
    {"language": st.sampled_from(["en", "nl", "de"]), "text": text(60, 1)}
)
image = st.fixed_dictionaries(
    {
        "url": urls,
        "category": st.sampled_from(values(old.ImageCategory)),
        "type": st.sampled_from(["jpeg", "png"]),
    },
    optional={"thumbnail": urls, "width": st.integers(0, 99999)},
)
business = st.fixed_dictionaries({"name": text(100, 1)}, optional={"website": urls, "logo": image})
periods_of_time = st.fixed_dictionaries({"period_begin": timestamps, "period_end": timestamps})
regular = st.fixed_dictionaries(
    {
        "weekday": st.integers(1, 7),
        "period_begin": st.sampled_from(["08:00", "09:30"]),
        "period_end": st.sampled_from(["18:00", "23:59"]),
    }
)
hours = st.fixed_dictionaries(
    {"twentyfourseven": st.booleans()},
    optional={
        "regular_hours": st.lists(regular, max_size=3),
        "exceptional_openings": st.lists(periods_of_time, max_size=2),
        "exceptional_closings": st.lists(periods_of_time, max_size=2),
    },
)


def energy_mix(category_key: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"is_green_energy": st.booleans()},
        optional={
            "energy_sources": st.lists(
                st.fixed_dictionaries(
                    {
                        "source": st.sampled_from(values(old.EnergySourceCategory)),
                        "percentage": amounts,
                    }
                ),
                max_size=3,
            ),
            "environ_impact": st.lists(
                st.fixed_dictionaries(
                    {
                        category_key: st.sampled_from(values(old.EnvironmentalImpactCategory)),
                        "amount": amounts,
                    }
                ),
                max_size=2,
            ),
            "supplier_name": text(64),
        },
    )


# ------------------------------------------------------------- 2.2.1 objects


def connector_221(full: bool) -> st.SearchStrategy[dict[str, Any]]:
    optional: dict[str, Any] = {
        "tariff_ids": st.lists(ident(), min_size=1, max_size=3 if full else 1),
        "terms_and_conditions": urls,
    }
    if full:
        optional["max_electric_power"] = st.integers(1000, 350000)
    return st.fixed_dictionaries(
        {
            "id": ident(),
            "standard": st.sampled_from(values(new.ConnectorType) if full else SHARED["standards"]),
            "format": st.sampled_from(values(new.ConnectorFormat)),
            "power_type": st.sampled_from(values(new.PowerType) if full else SHARED["power_types"]),
            "max_voltage": st.integers(100, 1000),
            "max_amperage": st.integers(6, 500),
            "last_updated": timestamps,
        },
        optional=optional,
    )


def evse_221(full: bool) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "uid": ident(),
            "status": st.sampled_from(values(new.Status)),
            "connectors": st.lists(
                connector_221(full), min_size=1, max_size=2, unique_by=lambda c: c["id"].upper()
            ),
            "last_updated": timestamps,
        },
        optional={
            "evse_id": st.from_regex(r"NL\*TNM\*E[0-9]{5}", fullmatch=True),
            "status_schedule": st.lists(
                st.fixed_dictionaries(
                    {"period_begin": timestamps, "status": st.sampled_from(values(new.Status))},
                    optional={"period_end": timestamps},
                ),
                max_size=2,
            ),
            "capabilities": st.lists(
                st.sampled_from(values(new.Capability) if full else SHARED["capabilities"]),
                max_size=3,
            ),
            "floor_level": st.sampled_from(["-1", "0", "2"]),
            "coordinates": coordinate_any if full else coordinate6,
            "physical_reference": text(16),
            "directions": st.lists(display, max_size=2),
            "parking_restrictions": st.lists(
                st.sampled_from(values(new.ParkingRestriction)), max_size=2
            ),
            "images": st.lists(image, max_size=1),
        },
    )


def _uid(evse: dict[str, Any]) -> str:
    return str(evse["uid"]).upper()


def location_221(full: bool, *, with_evses: bool = False) -> st.SearchStrategy[new.Location]:
    required: dict[str, Any] = {}
    if with_evses:
        required["evses"] = st.lists(evse_221(full), min_size=1, max_size=2, unique_by=_uid)
    optional: dict[str, Any] = {
        "name": text(255),
        "postal_code": text(10, 1),
        "related_locations": st.lists(
            (coordinate_any if full else coordinate6).map(dict), max_size=2
        ),
        "parking_type": st.sampled_from(values(new.ParkingType) if full else SHARED["parking"]),
        "evses": st.lists(evse_221(full), max_size=3, unique_by=_uid),
        "directions": st.lists(display, max_size=2),
        "operator": business,
        "owner": business,
        "facilities": st.lists(
            st.sampled_from(values(new.Facility) if full else SHARED["facilities"]), max_size=3
        ),
        "opening_times": hours,
        "charging_when_closed": st.booleans(),
        "images": st.lists(image, max_size=2),
        "energy_mix": energy_mix("category"),
    }
    if full:
        optional["state"] = text(20)
    return st.fixed_dictionaries(
        {
            "country_code": st.sampled_from(["NL", "BE"]),
            "party_id": st.sampled_from(["TNM", "BEC"]),
            "id": ident(),
            "publish": st.booleans() if full else st.just(True),
            "address": text(60 if full else 45),
            "city": text(45),
            "country": country3,
            "coordinates": coordinate_any if full else coordinate6,
            "time_zone": st.sampled_from(["Europe/Amsterdam", "Europe/Brussels"]),
            "last_updated": timestamps,
            **required,
        },
        optional={k: x for k, x in optional.items() if k not in required},
    ).map(new.Location.model_validate)


def token_221(full: bool) -> st.SearchStrategy[new.Token]:
    optional: dict[str, Any] = {"visual_number": text(64), "language": st.just("nl")}
    if full:
        optional |= {
            "group_id": ident(),
            "default_profile_type": st.sampled_from(values(new.ProfileType)),
            "energy_contract": st.fixed_dictionaries({"supplier_name": text(64)}),
        }
    return st.fixed_dictionaries(
        {
            "country_code": st.just("DE"),
            "party_id": st.just("TNM"),
            "uid": ident(),
            "type": st.sampled_from(values(new.TokenType) if full else ["RFID", "OTHER"]),
            "contract_id": ident(),
            "issuer": text(64),
            "valid": st.booleans(),
            "whitelist": st.sampled_from(values(new.WhitelistType)),
            "last_updated": timestamps,
        },
        optional=optional,
    ).map(new.Token.model_validate)


def restrictions(full: bool) -> st.SearchStrategy[dict[str, Any]]:
    optional: dict[str, Any] = {
        "start_time": st.sampled_from(["08:00", "18:30"]),
        "end_date": st.sampled_from(["2024-12-24", "2030-01-01"]),
        "min_kwh": amounts,
        "max_power": amounts,
        "min_duration": st.integers(0, 86400),
        "day_of_week": st.lists(st.sampled_from(values(new.DayOfWeek)), max_size=3),
    }
    if full:
        optional |= {
            "min_current": amounts,
            "reservation": st.sampled_from(values(new.ReservationRestrictionType)),
        }
    return st.fixed_dictionaries({}, optional=optional)


def tariff_221(full: bool) -> st.SearchStrategy[new.Tariff]:
    component = st.fixed_dictionaries(
        {
            "type": st.sampled_from(values(new.TariffDimensionType)),
            "price": money,
            "step_size": st.integers(1, 3600),
        },
        optional={"vat": st.just(Decimal("21"))} if full else {},
    )
    element = st.fixed_dictionaries(
        {"price_components": st.lists(component, min_size=1, max_size=3)},
        optional={"restrictions": restrictions(full)},
    )
    optional: dict[str, Any] = {
        "tariff_alt_text": st.lists(display, max_size=2),
        "tariff_alt_url": urls,
        "energy_mix": energy_mix("category"),
    }
    if full:
        optional |= {
            "type": st.sampled_from(values(new.TariffType)),
            "min_price": st.fixed_dictionaries({"excl_vat": money}),
            "start_date_time": timestamps,
            "end_date_time": timestamps,
        }
    else:
        optional["type"] = st.just("REGULAR")
    return st.fixed_dictionaries(
        {
            "country_code": st.just("NL"),
            "party_id": st.just("TNM"),
            "id": ident(),
            "currency": st.sampled_from(["EUR", "SEK"]),
            "elements": st.lists(element, min_size=1, max_size=3),
            "last_updated": timestamps,
        },
        optional=optional,
    ).map(new.Tariff.model_validate)


def charging_periods(full: bool, min_size: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    dimension = st.fixed_dictionaries(
        {
            "type": st.sampled_from(values(new.CdrDimensionType) if full else SHARED["dimensions"]),
            "volume": amounts,
        }
    )
    return st.lists(
        st.fixed_dictionaries(
            {
                "start_date_time": timestamps,
                "dimensions": st.lists(dimension, min_size=1, max_size=3),
            },
            optional={"tariff_id": ident()} if full else {},
        ),
        min_size=min_size,
        max_size=3,
    )


@st.composite
def session_and_location(draw: st.DrawFn, full: bool = False) -> tuple[new.Session, new.Location]:
    location = draw(location_221(False, with_evses=True))
    evse = draw(st.sampled_from(location.evses or []))
    connector = draw(st.sampled_from(evse.connectors))
    token = draw(token_221(False))
    data = {
        "country_code": location.country_code,
        "party_id": location.party_id,
        "id": draw(ident()),
        "start_date_time": draw(timestamps),
        "kwh": draw(amounts),
        "cdr_token": _cdr_token(token).to_wire(),
        "auth_method": draw(
            st.sampled_from(values(new.AuthMethod) if full else ["AUTH_REQUEST", "WHITELIST"])
        ),
        "location_id": location.id,
        "evse_uid": evse.uid,
        "connector_id": connector.id,
        "currency": "EUR",
        "status": draw(
            st.sampled_from(values(new.SessionStatus) if full else ["ACTIVE", "COMPLETED"])
        ),
        "last_updated": draw(timestamps),
    }
    extra = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "end_date_time": timestamps,
                "meter_id": text(20),
                "charging_periods": charging_periods(full, 0),
                "total_cost": st.fixed_dictionaries(
                    {"excl_vat": money}, optional={"incl_vat": money} if full else {}
                ),
                **({"authorization_reference": ident()} if full else {}),
            },
        )
    )
    return new.Session.model_validate(data | extra), location


def _cdr_token(token: new.Token) -> new.CdrToken:
    return new.CdrToken(
        country_code=token.country_code,
        party_id=token.party_id,
        uid=token.uid,
        type=token.type,
        contract_id=token.contract_id,
    )


@st.composite
def cdr_and_location(draw: st.DrawFn, full: bool = False) -> tuple[new.CDR, new.Location]:
    location = draw(location_221(False, with_evses=True))
    evse = draw(st.sampled_from(location.evses or []))
    if evse.evse_id is None:  # a CdrLocation requires one
        evse = evse.model_copy(update={"evse_id": "NL*TNM*E00001"})
        location = location.model_copy(update={"evses": [evse]})
    connector = draw(st.sampled_from(evse.connectors))
    token = draw(token_221(False))
    data = {
        "country_code": location.country_code,
        "party_id": location.party_id,
        "id": draw(ident()),
        "start_date_time": draw(timestamps),
        "end_date_time": draw(timestamps),
        "cdr_token": _cdr_token(token).to_wire(),
        "auth_method": draw(st.sampled_from(["AUTH_REQUEST", "WHITELIST"])),
        "cdr_location": {
            "id": location.id,
            "name": location.name,
            "address": location.address,
            "city": location.city,
            "postal_code": location.postal_code,
            "country": location.country,
            "coordinates": location.coordinates.to_wire(),
            "evse_uid": evse.uid,
            "evse_id": evse.evse_id,
            "connector_id": connector.id,
            "connector_standard": connector.standard,
            "connector_format": connector.format,
            "connector_power_type": connector.power_type,
        },
        "currency": "EUR",
        "charging_periods": draw(charging_periods(full, 1)),
        "total_cost": {"excl_vat": draw(money)},
        "total_energy": draw(amounts),
        "total_time": draw(amounts),
        "last_updated": draw(timestamps),
    }
    data["cdr_location"] = {k: x for k, x in data["cdr_location"].items() if x is not None}
    extra = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "tariffs": st.lists(
                    tariff_221(False).map(
                        lambda t: (
                            t.to_wire()
                            | {"country_code": location.country_code, "party_id": location.party_id}
                        )
                    ),
                    max_size=2,
                ),
                "total_parking_time": amounts,
                "remark": text(255),
                "meter_id": text(20),
            },
        )
    )
    return new.CDR.model_validate(data | extra), location


# -------------------------------------------------- 2.2.1 → 2.1.1 → 2.2.1


@SETTINGS
@given(location_221(False))
def test_location_round_trip_from_2_2_1(location: new.Location) -> None:
    down = conv.location_to_v211(location)
    assert isinstance(down, old.Location)
    back = conv.location_from_v211(
        down, country_code=location.country_code, party_id=location.party_id
    )
    assert back == location


@SETTINGS
@given(token_221(False))
def test_token_round_trip_from_2_2_1(token: new.Token) -> None:
    back = conv.token_from_v211(
        conv.token_to_v211(token), country_code=token.country_code, party_id=token.party_id
    )
    assert back == token


@SETTINGS
@given(tariff_221(False))
def test_tariff_round_trip_from_2_2_1(tariff: new.Tariff) -> None:
    back = conv.tariff_from_v211(
        conv.tariff_to_v211(tariff), country_code=tariff.country_code, party_id=tariff.party_id
    )
    # ``type`` REGULAR is the one 2.1.1 tariffs are; it is not written down
    assert back == tariff.model_copy(update={"type": None})


@SETTINGS
@given(session_and_location())
def test_session_round_trip_from_2_2_1(pair: tuple[new.Session, new.Location]) -> None:
    session, location = pair
    down = conv.session_to_v211(session, location=location)
    assert down.location.evses is not None and len(down.location.evses) == 1
    back = conv.session_from_v211(
        down,
        country_code=session.country_code,
        party_id=session.party_id,
        cdr_token=session.cdr_token,
    )
    assert back == session


@SETTINGS
@given(cdr_and_location())
def test_cdr_round_trip_from_2_2_1(pair: tuple[new.CDR, new.Location]) -> None:
    cdr, location = pair
    down = conv.cdr_to_v211(cdr, location=location)
    back = conv.cdr_from_v211(
        down, country_code=cdr.country_code, party_id=cdr.party_id, cdr_token=cdr.cdr_token
    )
    expected_tariffs = (
        None if cdr.tariffs is None else [t.model_copy(update={"type": None}) for t in cdr.tariffs]
    )
    assert back == cdr.model_copy(update={"tariffs": expected_tariffs})


# -------------------------------------------------- 2.1.1 → 2.2.1 → 2.1.1


@SETTINGS
@given(location_221(False))
def test_location_round_trip_from_2_1_1(location: new.Location) -> None:
    # any 2.1.1 location (with a time zone, twentyfourseven given and a known type)
    y = conv.location_to_v211(location)
    back = conv.location_to_v211(conv.location_from_v211(y, country_code="NL", party_id="TNM"))
    assert back == y


@SETTINGS
@given(
    st.fixed_dictionaries(
        {
            "uid": ident(),
            "type": st.sampled_from(values(old.TokenType)),
            "auth_id": ident(),
            "issuer": text(64),
            "valid": st.booleans(),
            "whitelist": st.sampled_from(values(old.WhitelistType)),
            "last_updated": timestamps,
        },
        optional={"visual_number": text(64), "language": st.just("en")},
    ).map(old.Token.model_validate)
)
def test_token_round_trip_from_2_1_1(token: old.Token) -> None:
    up = conv.token_from_v211(token, country_code="DE", party_id="TNM")
    assert conv.token_to_v211(up) == token


@SETTINGS
@given(tariff_221(False))
def test_tariff_round_trip_from_2_1_1(tariff: new.Tariff) -> None:
    y = conv.tariff_to_v211(tariff)
    back = conv.tariff_to_v211(conv.tariff_from_v211(y, country_code="NL", party_id="TNM"))
    assert back == y


@SETTINGS
@given(cdr_and_location())
def test_cdr_and_session_round_trip_from_2_1_1(pair: tuple[new.CDR, new.Location]) -> None:
    cdr, location = pair
    y = conv.cdr_to_v211(cdr, location=location)
    token = cdr.cdr_token
    up = conv.cdr_from_v211(y, country_code="NL", party_id="TNM", cdr_token=token)
    assert conv.cdr_to_v211(up, location=location) == y


# ------------------------------------------- lossy fields are the documented ones


def _changed(a: Any, b: Any, path: str = "") -> set[str]:
    """Paths (``[]`` for list items) where the wire dicts ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        found: set[str] = set()
        for key in a.keys() | b.keys():
            sub = f"{path}.{key}" if path else key
            if key not in a or key not in b:
                found.add(sub)
            else:
                found |= _changed(a[key], b[key], sub)
        return found
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return {f"{path}[]"}
        found = set()
        for x, y in zip(a, b, strict=True):
            found |= _changed(x, y, f"{path}[]")
        return found
    return set() if a == b else {path}


REFUSED = {
    "Location": {"publish", "address"},
    "Tariff": {"type", "min_price", "elements", "elements[].restrictions.min_current"},
}


def _attempt(convert: Any, *args: Any, **kwargs: Any) -> tuple[Any, NotExpressible | None]:
    try:
        return convert(*args, **kwargs), None
    except NotExpressible as exc:
        return None, exc


def _normalize(field: str) -> str:
    return "".join(
        f"[]{part.split(']', 1)[1]}" if "]" in part else part for part in field.split("[")
    )


@SETTINGS
@given(location_221(True))
def test_location_changes_only_documented_fields(location: new.Location) -> None:
    down, refused = _attempt(conv.location_to_v211, location)
    if refused is not None:
        assert refused.version == "2.1.1"
        assert _normalize(refused.field) in REFUSED["Location"] | {
            "evses[].connectors[].standard",
            "evses[].connectors[].power_type",
        }
        return
    back = conv.location_from_v211(down, country_code="XX", party_id="XXX")
    assert _changed(location.to_wire(), back.to_wire()) <= conv.LOSSY_TO_V211["Location"]


@SETTINGS
@given(tariff_221(True))
def test_tariff_changes_only_documented_fields(tariff: new.Tariff) -> None:
    down, refused = _attempt(conv.tariff_to_v211, tariff)
    if refused is not None:
        assert _normalize(refused.field) in REFUSED["Tariff"] | {"max_price"}
        return
    back = conv.tariff_from_v211(down, country_code="NL", party_id="TNM")
    assert _changed(tariff.to_wire(), back.to_wire()) <= conv.LOSSY_TO_V211["Tariff"]


@SETTINGS
@given(token_221(True))
def test_token_changes_only_documented_fields(token: new.Token) -> None:
    back = conv.token_from_v211(conv.token_to_v211(token), country_code="DE", party_id="TNM")
    assert _changed(token.to_wire(), back.to_wire()) <= conv.LOSSY_TO_V211["Token"]


@SETTINGS
@given(session_and_location(full=True))
def test_session_changes_only_documented_fields(pair: tuple[new.Session, new.Location]) -> None:
    session, location = pair
    back = conv.session_from_v211(
        conv.session_to_v211(session, location=location),
        country_code=session.country_code,
        party_id=session.party_id,
        cdr_token=session.cdr_token,
    )
    assert _changed(session.to_wire(), back.to_wire()) <= conv.LOSSY_TO_V211["Session"]


@SETTINGS
@given(cdr_and_location(full=True))
def test_cdr_changes_only_documented_fields(pair: tuple[new.CDR, new.Location]) -> None:
    cdr, location = pair
    down, refused = _attempt(conv.cdr_to_v211, cdr, location=location)
    if refused is not None:
        assert refused.field == "charging_periods"
        return
    back = conv.cdr_from_v211(
        down, country_code=cdr.country_code, party_id=cdr.party_id, cdr_token=cdr.cdr_token
    )
    assert _changed(cdr.to_wire(), back.to_wire()) <= conv.LOSSY_TO_V211["CDR"]


def test_the_documented_lossy_fields_do_change() -> None:
    """Each documented path is one a real object loses (the table is not padding)."""
    location = new.Location.model_validate(
        {
            "country_code": "NL",
            "party_id": "TNM",
            "id": "L1",
            "publish": True,
            "address": "Main 1",
            "city": "Utrecht",
            "postal_code": "",
            "country": "NLD",
            "state": "Utrecht",
            "coordinates": {"latitude": "52.0907374", "longitude": "5.12142"},
            "related_locations": [{"latitude": "52.0907374", "longitude": "5.12142"}],
            "parking_type": "ALONG_MOTORWAY",
            "facilities": ["BIKE_SHARING", "WIFI"],
            "evses": [
                {
                    "uid": "E1",
                    "status": "AVAILABLE",
                    "capabilities": ["PED_TERMINAL", "RESERVABLE"],
                    "parking_restrictions": ["EV_ONLY", "VENDOR_X"],
                    "coordinates": {"latitude": "52.0907374", "longitude": "5.12142"},
                    "connectors": [
                        {
                            "id": "1",
                            "standard": "IEC_62196_T2",
                            "format": "SOCKET",
                            "power_type": "AC_3_PHASE",
                            "max_voltage": 230,
                            "max_amperage": 32,
                            "max_electric_power": 22000,
                            "tariff_ids": ["REG", "ADHOC"],
                            "last_updated": "2024-01-01T00:00:00Z",
                        }
                    ],
                    "last_updated": "2024-01-01T00:00:00Z",
                }
            ],
            "time_zone": "Europe/Amsterdam",
            "last_updated": "2024-01-01T00:00:00Z",
        }
    )
    down = conv.location_to_v211(location)
    assert down.type is old.LocationType.OTHER
    assert down.postal_code == ""
    assert down.coordinates.latitude == "52.090737" and down.coordinates.longitude == "5.121420"
    back = conv.location_from_v211(down, country_code="BE", party_id="BEC")
    assert _changed(location.to_wire(), back.to_wire()) == conv.LOSSY_TO_V211["Location"]


# ------------------------------------------------------------ refused objects


def _location(**changes: Any) -> new.Location:
    base = {
        "country_code": "NL",
        "party_id": "TNM",
        "id": "L1",
        "publish": True,
        "address": "Main 1",
        "city": "Utrecht",
        "country": "NLD",
        "coordinates": {"latitude": "52.090737", "longitude": "5.121420"},
        "time_zone": "Europe/Amsterdam",
        "last_updated": "2024-01-01T00:00:00Z",
        "evses": [
            {
                "uid": "E1",
                "status": "AVAILABLE",
                "connectors": [
                    {
                        "id": "1",
                        "standard": "IEC_62196_T2",
                        "format": "SOCKET",
                        "power_type": "AC_3_PHASE",
                        "max_voltage": 230,
                        "max_amperage": 32,
                        "last_updated": "2024-01-01T00:00:00Z",
                    }
                ],
                "last_updated": "2024-01-01T00:00:00Z",
            }
        ],
    }
    return new.Location.model_validate(base | changes)


@pytest.mark.parametrize(
    ("location", "field"),
    [
        (_location(publish=False), "publish"),
        (_location(address="x" * 46), "address"),
    ],
)
def test_inexpressible_locations_are_refused_naming_the_field(
    location: new.Location, field: str
) -> None:
    with pytest.raises(NotExpressible) as caught:
        conv.location_to_v211(location)
    assert caught.value.field == field and caught.value.version == "2.1.1"


def test_connector_standard_2_1_1_lacks_is_refused_with_its_path() -> None:
    location = _location()
    assert location.evses is not None
    connector = location.evses[0].connectors[0].model_copy(update={"standard": "GBT_DC"})
    evse = location.evses[0].model_copy(update={"connectors": [connector]})
    with pytest.raises(NotExpressible) as caught:
        conv.location_to_v211(location.model_copy(update={"evses": [evse]}))
    assert caught.value.field == "evses[0].connectors[0].standard"


def test_location_without_time_zone_needs_a_default() -> None:
    y = conv.location_to_v211(_location()).model_copy(update={"time_zone": None})
    with pytest.raises(NotExpressible) as caught:
        conv.location_from_v211(y, country_code="NL", party_id="TNM")
    assert caught.value.field == "time_zone" and caught.value.version == "2.2.1"
    up = conv.location_from_v211(
        y, country_code="NL", party_id="TNM", default_time_zone="Europe/Brussels"
    )
    assert up.time_zone == "Europe/Brussels"
    # The same through from_version and the hub's read (Origin.time_zone): the sending
    # platform's default, where the Location names none.
    party = ("NL", "TNM")
    with pytest.raises(NotExpressible) as caught:
        from_version(y, "2.1.1", party=party)
    assert caught.value.field == "time_zone"
    read_up = from_version(y, "2.1.1", party=party, default_time_zone="Europe/Brussels")
    assert isinstance(read_up, new.Location) and read_up.time_zone == "Europe/Brussels"
    named = y.model_copy(update={"time_zone": "Europe/Amsterdam"})
    kept = from_version(named, "2.1.1", party=party, default_time_zone="Europe/Brussels")
    assert isinstance(kept, new.Location) and kept.time_zone == "Europe/Amsterdam"
    origin = Origin(owner=PartyId("NL", "TNM"), now=datetime.now(UTC))
    with pytest.raises(InvalidParametersError, match="time_zone"):
        read("Location", y.to_wire(), "2.1.1", origin)
    zoned = replace(origin, time_zone="Europe/Brussels")
    hub_up = read("Location", y.to_wire(), "2.1.1", zoned)
    assert isinstance(hub_up, new.Location) and hub_up.time_zone == "Europe/Brussels"


def test_session_needs_its_evse_in_the_location_and_a_matching_token() -> None:
    location = _location()
    token = new.CdrToken(
        country_code="DE", party_id="TNM", uid="04A1", type="RFID", contract_id="DE-TNM-C1"
    )
    session = new.Session.model_validate(
        {
            "country_code": "NL",
            "party_id": "TNM",
            "id": "S1",
            "start_date_time": "2024-01-01T10:00:00Z",
            "kwh": 0,
            "cdr_token": token.to_wire(),
            "auth_method": "COMMAND",
            "location_id": "L1",
            "evse_uid": "E9",
            "connector_id": "1",
            "currency": "EUR",
            "status": "RESERVATION",
            "last_updated": "2024-01-01T10:00:00Z",
        }
    )
    with pytest.raises(NotExpressible) as caught:
        conv.session_to_v211(session, location=location)
    assert caught.value.field == "evse_uid"
    down = conv.session_to_v211(session.model_copy(update={"evse_uid": "e1"}), location=location)
    assert down.auth_method is old.AuthMethod.AUTH_REQUEST
    assert down.status is old.SessionStatus.PENDING
    assert down.auth_id == "DE-TNM-C1"
    other = token.model_copy(update={"contract_id": "DE-TNM-C2"})
    with pytest.raises(ValueError, match="is not the auth_id"):
        conv.session_from_v211(down, country_code="NL", party_id="TNM", cdr_token=other)


def test_a_flat_only_period_cannot_go_up() -> None:
    period = old.ChargingPeriod.model_validate(
        {"start_date_time": "2024-01-01T10:00:00Z", "dimensions": [{"type": "FLAT", "volume": 1}]}
    )
    with pytest.raises(NotExpressible) as caught:
        conv._periods_up([period], "charging_periods")
    assert caught.value.field == "charging_periods[0].dimensions"


# ------------------------------------------------ commands, credentials, versions

TOKEN_211 = old.Token.model_validate(
    {
        "uid": "012345678",
        "type": "RFID",
        "auth_id": "DE8ACC12E46L89",
        "issuer": "TheNewMotion",
        "valid": True,
        "whitelist": "ALLOWED",
        "last_updated": "2015-06-29T22:39:09Z",
    }
)


def test_commands_both_ways() -> None:
    reserve = old.ReserveNow(
        response_url="https://emsp.example/cmd/1",
        token=TOKEN_211,
        expiry_date=datetime(2024, 1, 1, tzinfo=UTC),
        reservation_id=12,
        location_id="L1",
    )
    up = conv.command_from_v211(reserve, country_code="DE", party_id="TNM")
    assert isinstance(up, new.ReserveNow) and up.reservation_id == "12"
    assert up.token.country_code == "DE" and up.token.contract_id == "DE8ACC12E46L89"
    assert conv.command_to_v211(up) == reserve
    with pytest.raises(NotExpressible) as caught:
        conv.command_to_v211(up.model_copy(update={"reservation_id": "012"}))
    assert caught.value.field == "reservation_id"
    cancel = new.CancelReservation(response_url="https://emsp.example/c", reservation_id="12")
    with pytest.raises(NotExpressible):
        conv.command_to_v211(cancel)
    start = new.StartSession(
        response_url="https://emsp.example/cmd/2",
        token=up.token,
        location_id="L1",
        evse_uid="E1",
        connector_id="1",
    )
    down = conv.command_to_v211(start)
    assert isinstance(down, old.StartSession) and "connector_id" not in down.to_wire()
    for stop in (
        old.StopSession(response_url="https://emsp.example/s", session_id="S1"),
        old.UnlockConnector(
            response_url="https://emsp.example/u", location_id="L1", evse_uid="E1", connector_id="1"
        ),
    ):
        assert (
            conv.command_to_v211(conv.command_from_v211(stop, country_code="DE", party_id="TNM"))
            == stop
        )


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ("ACCEPTED", "ACCEPTED"),
        ("TIMEOUT", "TIMEOUT"),
        ("EVSE_OCCUPIED", "REJECTED"),
        ("CANCELED_RESERVATION", "REJECTED"),
        ("NOT_SUPPORTED", "NOT_SUPPORTED"),
    ],
)
def test_command_results_go_to_a_2_1_1_command_response(result: str, expected: str) -> None:
    down = conv.command_result_to_v211(new.CommandResult(result=new.CommandResultType(result)))
    assert down.result.value == expected


def test_command_responses() -> None:
    timeout = old.CommandResponse(result=old.CommandResponseType.TIMEOUT)
    assert conv.command_response_from_v211(timeout, timeout=30).result.value == "REJECTED"
    assert conv.command_result_from_v211(timeout).result.value == "TIMEOUT"
    unknown = old.CommandResponse(result=old.CommandResponseType.UNKNOWN_SESSION)
    assert conv.command_result_from_v211(unknown).result.value == "REJECTED"
    assert conv.command_response_from_v211(unknown, timeout=30).result.value == "UNKNOWN_SESSION"
    accepted = new.CommandResponse(result=new.CommandResponseType.ACCEPTED, timeout=30)
    assert conv.command_response_to_v211(accepted).to_wire() == {"result": "ACCEPTED"}


def test_credentials_one_party_each_way() -> None:
    c211 = old.Credentials.model_validate(
        {
            "token": "ebf3b399",
            "url": "https://emsp.example/versions",
            "business_details": {"name": "eMSP"},
            "party_id": "TNM",
            "country_code": "NL",
        }
    )
    up = conv.credentials_from_v211(c211, role=new.Role.EMSP)
    assert [(r.role, r.party_id, r.country_code) for r in up.roles] == [("EMSP", "TNM", "NL")]
    assert conv.credentials_to_v211(up) == c211
    two = up.model_copy(
        update={
            "roles": [
                *up.roles,
                up.roles[0].model_copy(update={"role": new.Role.CPO, "party_id": "CPO"}),
            ]
        }
    )
    with pytest.raises(NotExpressible) as caught:
        conv.credentials_to_v211(two)
    assert caught.value.field == "roles"
    assert conv.credentials_to_v211(two, role=new.Role.CPO).party_id == "CPO"


def test_version_details_drop_and_give_back_roles() -> None:
    details = old.VersionDetails.model_validate(
        {
            "version": "2.1.1",
            "endpoints": [
                {"identifier": "credentials", "url": "https://e.example/c"},
                {"identifier": "locations", "url": "https://e.example/l"},
                {"identifier": "tokens", "url": "https://e.example/t"},
            ],
        }
    )
    up = conv.version_details_from_v211(details, party_role=new.Role.EMSP)
    assert [(e.identifier, e.role) for e in up.endpoints] == [
        ("credentials", "SENDER"),
        ("locations", "RECEIVER"),
        ("tokens", "SENDER"),
    ]
    assert conv.version_details_to_v211(up) == details
