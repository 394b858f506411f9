"""Property tests: objects survive dump -> parse unchanged (exact numbers, timestamps to
the millisecond, open enums), whatever their values; the JSON codec, Authorization
header and pagination links hold for any input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from yarl import URL

import ocpi.v221 as v
from ocpi.transport import (
    PageRequest,
    encode_authorization,
    json_dumps,
    json_loads,
    next_link,
    pagination_headers,
    parse_authorization,
    parse_page_request,
)

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)

ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def ci(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    return st.text(ASCII, min_size=min_size, max_size=max_size)


def text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(max_size=max_size)


numbers = st.decimals(allow_nan=False, allow_infinity=False)
money = st.decimals(min_value=-(10**9), max_value=10**9, places=4)
timestamps = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9, minutes=-30))]
    ),
)


def open_enum(enum_cls: Any) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(list(enum_cls)), ci(20, 1))


prices = st.fixed_dictionaries({"excl_vat": money}, optional={"incl_vat": money})
display_texts = st.fixed_dictionaries({"language": ci(2, 2), "text": text(512)})
geo = st.fixed_dictionaries(
    {
        "latitude": st.from_regex(r"-?[0-9]{1,2}\.[0-9]{5,7}", fullmatch=True).filter(
            lambda s: len(s) <= 10
        ),
        "longitude": st.from_regex(r"-?[0-9]{1,3}\.[0-9]{5,7}", fullmatch=True).filter(
            lambda s: len(s) <= 11
        ),
    }
)
dimensions = st.fixed_dictionaries({"type": open_enum(v.CdrDimensionType), "volume": numbers})
charging_periods = st.fixed_dictionaries(
    {"start_date_time": timestamps, "dimensions": st.lists(dimensions, min_size=1, max_size=4)},
    optional={"tariff_id": ci(36)},
)
tokens = st.fixed_dictionaries(
    {
        "country_code": ci(2, 2),
        "party_id": ci(3, 3),
        "uid": ci(36),
        "type": open_enum(v.TokenType),
        "contract_id": ci(36),
        "issuer": text(64),
        "valid": st.booleans(),
        "whitelist": st.sampled_from(list(v.WhitelistType)),
        "last_updated": timestamps,
    },
    optional={
        "visual_number": text(64),
        "group_id": ci(36),
        "language": ci(2, 2),
        "default_profile_type": st.sampled_from(list(v.ProfileType)),
        "energy_contract": st.fixed_dictionaries(
            {"supplier_name": text(64)}, optional={"contract_id": text(64)}
        ),
    },
)
hhmm = st.from_regex(r"([0-1][0-9]|2[0-3]):[0-5][0-9]", fullmatch=True)
restrictions = st.fixed_dictionaries(
    {},
    optional={
        "start_time": hhmm,
        "end_time": hhmm,
        "start_date": st.dates().map(lambda d: d.isoformat()).filter(lambda s: len(s) == 10),
        "min_kwh": numbers,
        "max_power": numbers,
        "min_duration": st.integers(min_value=0, max_value=10**9),
        "day_of_week": st.lists(st.sampled_from(list(v.DayOfWeek)), max_size=7),
        "reservation": st.sampled_from(list(v.ReservationRestrictionType)),
    },
)
price_components = st.fixed_dictionaries(
    {
        "type": st.sampled_from(list(v.TariffDimensionType)),
        "price": money,
        "step_size": st.integers(min_value=1, max_value=10**6),
    },
    optional={"vat": money},
)
tariffs = st.fixed_dictionaries(
    {
        "country_code": ci(2, 2),
        "party_id": ci(3, 3),
        "id": ci(36),
        "currency": ci(3, 3),
        "elements": st.lists(
            st.fixed_dictionaries(
                {"price_components": st.lists(price_components, min_size=1, max_size=3)},
                optional={"restrictions": restrictions},
            ),
            min_size=1,
            max_size=3,
        ),
        "last_updated": timestamps,
    },
    optional={
        "type": open_enum(v.TariffType),
        "tariff_alt_text": st.lists(display_texts, max_size=2),
        "min_price": prices,
        "max_price": prices,
        "start_date_time": timestamps,
    },
)
connectors = st.fixed_dictionaries(
    {
        "id": ci(36),
        "standard": open_enum(v.ConnectorType),
        "format": st.sampled_from(list(v.ConnectorFormat)),
        "power_type": st.sampled_from(list(v.PowerType)),
        "max_voltage": st.integers(min_value=0, max_value=2000),
        "max_amperage": st.integers(min_value=0, max_value=1000),
        "last_updated": timestamps,
    },
    optional={
        "max_electric_power": st.integers(min_value=0, max_value=10**6),
        "tariff_ids": st.lists(ci(36), max_size=3),
    },
)


def assert_round_trip(model: type[BaseModel], data: dict[str, Any]) -> None:
    obj = model.model_validate(data)
    text_out = json_dumps(obj)
    again = model.model_validate(json_loads(text_out))
    assert again == obj
    assert json_dumps(again) == text_out


@PROPERTY_SETTINGS
@given(prices)
def test_price_round_trip(data: dict[str, Any]) -> None:
    assert_round_trip(v.Price, data)


@PROPERTY_SETTINGS
@given(display_texts)
def test_display_text_round_trip(data: dict[str, Any]) -> None:
    assert_round_trip(v.DisplayText, data)


@PROPERTY_SETTINGS
@given(geo)
def test_geolocation_round_trip(data: dict[str, Any]) -> None:
    assert_round_trip(v.GeoLocation, data)


@PROPERTY_SETTINGS
@given(charging_periods)
def test_charging_period_round_trip(data: dict[str, Any]) -> None:
    assert_round_trip(v.ChargingPeriod, data)


@PROPERTY_SETTINGS
@given(tokens)
def test_token_round_trip(data: dict[str, Any]) -> None:
    assert_round_trip(v.Token, data)


@PROPERTY_SETTINGS
@given(tariffs)
def test_tariff_round_trip(data: dict[str, Any]) -> None:
    assert_round_trip(v.Tariff, data)


@PROPERTY_SETTINGS
@given(connectors)
def test_connector_round_trip(data: dict[str, Any]) -> None:
    assert_round_trip(v.Connector, data)


@PROPERTY_SETTINGS
@given(timestamps)
def test_timestamps_are_utc_z_millisecond_and_stable(value: datetime) -> None:
    period = v.StatusSchedule(period_begin=value, status=v.Status.AVAILABLE)
    written = json_loads(period.to_json())["period_begin"]
    assert written.endswith("Z") and len(written) <= 25
    assert period.period_begin.tzinfo is UTC
    assert abs(period.period_begin - value) < timedelta(milliseconds=1)
    assert (
        v.StatusSchedule.model_validate({"period_begin": written, "status": "AVAILABLE"}) == period
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | numbers | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@PROPERTY_SETTINGS
@given(json_values)
def test_json_codec_round_trip(value: Any) -> None:
    assert json_loads(json_dumps(value)) == value


@PROPERTY_SETTINGS
@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64))
def test_authorization_round_trip(token: str) -> None:
    assert parse_authorization(encode_authorization(token))[0] == token
    assert token in parse_authorization(encode_authorization(token, base64_encode=False))


@PROPERTY_SETTINGS
@given(
    total=st.integers(min_value=0, max_value=60),
    asked=st.integers(min_value=1, max_value=30),
    cap=st.integers(min_value=1, max_value=20),
)
def test_following_links_visits_every_object_once(total: int, asked: int, cap: int) -> None:
    url = URL(
        f"https://cpo.example/ocpi/cpo/2.2.1/cdrs?limit={asked}&date_from=2020-01-01T00:00:00Z"
    )
    seen: list[int] = []
    pages = 0
    current: URL | None = url
    while current is not None:
        page = parse_page_request(current.query, max_limit=cap)
        assert page.limit == min(asked, cap)
        assert page.date_from == datetime(2020, 1, 1, tzinfo=UTC)
        batch = list(range(total))[page.offset : page.offset + page.limit]
        seen += batch
        headers = pagination_headers(current, page, total=total, count=len(batch))
        assert headers["X-Limit"] == str(page.limit)
        link = next_link([headers["Link"]]) if "Link" in headers else None
        current = URL(link) if link else None
        pages += 1
        assert pages <= total + 1
    assert seen == list(range(total))
    assert isinstance(PageRequest(), PageRequest)


@PROPERTY_SETTINGS
@given(numbers)
def test_number_digits_survive_the_wire(value: Decimal) -> None:
    price = v.Price(excl_vat=value)
    assert v.Price.model_validate(json_loads(price.to_json())).excl_vat == value
