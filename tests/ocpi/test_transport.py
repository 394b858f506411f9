"""ocpi.transport: JSON, status codes, errors, envelope, Authorization, routing headers,
pagination."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from ocpi.transport import (
    GenericClientError,
    HubTimeoutError,
    InvalidParametersError,
    OcpiError,
    OcpiStatus,
    PageRequest,
    PartyId,
    ServerError,
    UnauthorizedError,
    UnknownLocationError,
    UnknownTokenError,
    encode_authorization,
    envelope,
    error_for_status,
    is_success,
    json_dumps,
    json_loads,
    next_link,
    next_page_url,
    pagination_headers,
    parse_authorization,
    parse_page_request,
    parse_routing_headers,
    routing_headers,
)
from tests.ocpi.openapi import validate_envelope

# ------------------------------------------------------------------------- JSON


def test_json_round_trip_keeps_decimal_digits() -> None:
    value = {
        "a": Decimal("1.50"),
        "b": [Decimal("-0.0001"), 3, True, None, 'é\n"x"'],
        "c": Decimal("1E+3"),
        "d": Decimal("12345678901234567890.123456789"),
    }
    text = json_dumps(value)
    assert text == (
        '{"a":1.50,"b":[-0.0001,3,true,null,"\\u00e9\\n\\"x\\""],"c":1000,'
        '"d":12345678901234567890.123456789}'
    )
    assert json_loads(text) == value


def test_json_dumps_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(ValueError, match="NaN"):
        json_dumps(Decimal("NaN"))
    with pytest.raises(ValueError, match="inf"):
        json_dumps(float("inf"))
    with pytest.raises(TypeError):
        json_dumps({1: "a"})
    with pytest.raises(TypeError):
        json_dumps(object())


def test_json_dumps_writes_datetimes_in_utc_and_huge_exponents_compactly() -> None:
    assert json_dumps(datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)) == '"2020-01-02T03:04:05Z"'
    assert json_dumps(Decimal("1E+100")) == "1e+100"
    assert json_loads("1e+100") == Decimal("1E+100")


def test_json_loads_refuses_non_json() -> None:
    for text in ("{", "{'a': 1}", "Infinity", b"\xff"):
        with pytest.raises(ValueError):  # noqa: PT011 - JSONDecodeError or UnicodeDecodeError
            json_loads(text)


def _json_module(text: str | bytes) -> tuple[str, object]:
    """What json.loads with json_loads's options makes of ``text``: the value, or the
    exception's type and message."""
    try:
        return "value", json.loads(text, parse_float=Decimal, parse_constant=_refuse)
    except ValueError as exc:
        return type(exc).__name__, str(exc)


def _refuse(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _ours(text: str | bytes) -> tuple[str, object]:
    try:
        return "value", json_loads(text)
    except ValueError as exc:
        return type(exc).__name__, str(exc)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@given(
    value=_JSON_VALUES,
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"]),
    as_bytes=st.booleans(),
    prefix=st.sampled_from(["", " ", "\ufeff", "NaN", "x"]),
)
def test_json_loads_reads_as_the_json_module(
    value: object, encoding: str, as_bytes: bool, prefix: str
) -> None:
    # json_loads keeps one decoder instead of json.loads building one per call: the same
    # values and the same refusals, for text and for bytes in each encoding json detects.
    text = prefix + json.dumps(value)
    raw: str | bytes = text.encode(encoding, "surrogatepass") if as_bytes else text
    assert _ours(raw) == _json_module(raw)


# --------------------------------------------------------- status codes, errors


def test_status_codes_and_meanings() -> None:
    assert OcpiStatus.SUCCESS == 1000
    assert OcpiStatus.INVALID_PARAMETERS.description == "Invalid or missing parameters"
    assert OcpiStatus.describe(2003) == "Unknown Location"
    assert OcpiStatus.describe(2950) == "Custom client error"
    assert OcpiStatus.describe(1234) == "Unknown status code"
    assert is_success(1000) and is_success(1901)
    assert not is_success(2000) and not is_success(3000)


def test_error_classes_carry_status_and_http_status() -> None:
    assert (UnauthorizedError("x").status_code, UnauthorizedError("x").http_status) == (2000, 401)
    assert (UnknownLocationError("x").status_code, UnknownLocationError("x").http_status) == (
        2003,
        404,
    )
    assert UnknownTokenError("x").status_code == 2004
    # a request that reached the OCPI layer is answered with HTTP 200
    assert InvalidParametersError("x").http_status == 200
    assert ServerError("x").http_status == 200
    overridden = UnknownLocationError("x", http_status=200)
    assert overridden.http_status == 200 and overridden.status_code == 2003
    relayed = error_for_status(4002, "partner timed out", http_status=200)
    assert isinstance(relayed, HubTimeoutError)
    custom = error_for_status(2901, "custom")
    assert type(custom) is OcpiError and custom.status_code == 2901
    assert isinstance(error_for_status(2000, "x"), GenericClientError)


def test_envelope() -> None:
    now = datetime(2015, 6, 30, 21, 59, 59, tzinfo=UTC)
    assert envelope({"a": 1}, status_message="Success", timestamp=now) == {
        "data": {"a": 1},
        "status_code": 1000,
        "status_message": "Success",
        "timestamp": "2015-06-30T21:59:59Z",
    }
    error = envelope(status_code=OcpiStatus.INVALID_PARAMETERS, status_message="type: missing")
    assert "data" not in error and error["status_code"] == 2001
    validate_envelope(error)


# ----------------------------------------------------------------- Authorization


def test_encode_authorization() -> None:
    assert encode_authorization("example-token") == "Token ZXhhbXBsZS10b2tlbg=="
    assert encode_authorization("example-token", base64_encode=False) == "Token example-token"


@pytest.mark.parametrize(
    ("header", "candidates"),
    [
        ("Token ZXhhbXBsZS10b2tlbg==", ("example-token", "ZXhhbXBsZS10b2tlbg==")),
        # the spec's own example encodes a trailing newline
        ("Token ZXhhbXBsZS10b2tlbgo=", ("example-token", "ZXhhbXBsZS10b2tlbgo=")),
        ("token   ZXhhbXBsZS10b2tlbg== ", ("example-token", "ZXhhbXBsZS10b2tlbg==")),
        # an unencoded 2.1.1-style token that is not Base64
        (
            "Token ebf3b399-779f-4497-9b9d-ac6ad3cc44d2",
            ("ebf3b399-779f-4497-9b9d-ac6ad3cc44d2",),
        ),
        # valid Base64 whose decoding is not a printable token: only the raw value
        ("Token AAAA", ("AAAA",)),
        (None, ()),
        ("", ()),
        ("Bearer abc", ()),
        ("Token", ()),
        ("Token ", ()),
    ],
)
def test_parse_authorization(header: str | None, candidates: tuple[str, ...]) -> None:
    assert parse_authorization(header) == candidates


def test_parse_authorization_round_trips_any_printable_token() -> None:
    token = "".join(chr(c) for c in range(0x21, 0x7F))
    header = "Token " + base64.b64encode(token.encode()).decode()
    assert parse_authorization(header)[0] == token


# ------------------------------------------------------------------- routing


def test_routing_headers_round_trip() -> None:
    headers = routing_headers(from_party=PartyId("nl", "tnm"), to_party=PartyId("DE", "ALL"))
    assert headers == {
        "OCPI-from-country-code": "NL",
        "OCPI-from-party-id": "TNM",
        "OCPI-to-country-code": "DE",
        "OCPI-to-party-id": "ALL",
    }
    assert parse_routing_headers(headers) == (PartyId("NL", "TNM"), PartyId("DE", "ALL"))
    assert parse_routing_headers({}) == (None, None)


def test_routing_headers_malformed() -> None:
    with pytest.raises(InvalidParametersError, match="OCPI-to-party-id: header missing"):
        parse_routing_headers({"OCPI-to-country-code": "NL"})
    with pytest.raises(InvalidParametersError, match="OCPI-from-party-id: should be 3"):
        parse_routing_headers({"OCPI-from-country-code": "NL", "OCPI-from-party-id": "TOOLONG"})


# ---------------------------------------------------------------- pagination


def test_page_request_defaults_and_cap() -> None:
    assert parse_page_request({}, max_limit=50) == PageRequest(offset=0, limit=50)
    assert parse_page_request({"limit": "2000"}, max_limit=100).limit == 100
    assert parse_page_request({"limit": "10"}, max_limit=100).limit == 10
    assert parse_page_request({}, max_limit=100, default_limit=20).limit == 20
    page = parse_page_request(
        {
            "offset": "20",
            "date_from": "2016-01-01T00:00:00Z",
            "date_to": "2016-12-31T23:59:59",
        },
        max_limit=100,
    )
    assert page.offset == 20
    assert page.date_from == datetime(2016, 1, 1, tzinfo=UTC)
    assert page.date_to == datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert page.matches(datetime(2016, 1, 1, tzinfo=UTC))  # date_from inclusive
    assert not page.matches(datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC))  # date_to exclusive
    assert not page.matches(datetime(2015, 12, 31, 23, 59, 59, tzinfo=UTC))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"offset": "-1"}, "offset: should be a non-negative integer"),
        ({"offset": "abc"}, "offset: should be a non-negative integer, got 'abc'"),
        ({"limit": "0"}, "limit: should be at least 1"),
        ({"limit": "1.5"}, "limit: should be a positive integer"),
        ({"date_from": "yesterday"}, "date_from: Input should be an RFC 3339 date-time"),
        ({"date_to": "2016-13-01T00:00:00Z"}, "date_to: Input should be a valid date-time"),
    ],
)
def test_page_request_errors_name_the_parameter(query: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParametersError) as info:
        parse_page_request(query, max_limit=100)
    assert message in info.value.message
    assert info.value.status_code == 2001


def test_page_request_required_date_from() -> None:
    with pytest.raises(InvalidParametersError, match="date_from: query parameter required"):
        parse_page_request({}, max_limit=10, require_date_from=True)


def test_pagination_headers() -> None:
    url = URL(
        "https://www.server.com/ocpi/cpo/2.2.1/cdrs/?date_from=2016-01-01T00:00:00Z&limit=2000"
    )
    page = PageRequest(offset=0, limit=100, date_from=datetime(2016, 1, 1, tzinfo=UTC))
    headers = pagination_headers(url, page, total=250, count=100)
    assert headers["X-Total-Count"] == "250"
    assert headers["X-Limit"] == "100"
    link = next_link([headers["Link"]])
    assert link is not None
    next_url = URL(link)
    assert next_url.path == "/ocpi/cpo/2.2.1/cdrs/"
    assert next_url.query["offset"] == "100"
    assert next_url.query["limit"] == "100"
    assert next_url.query["date_from"] == "2016-01-01T00:00:00Z"
    last = pagination_headers(url, PageRequest(offset=200, limit=100), total=250, count=50)
    assert "Link" not in last and last["X-Limit"] == "100"
    empty = pagination_headers(url, PageRequest(offset=0, limit=100), total=0, count=0)
    assert empty == {"X-Total-Count": "0", "X-Limit": "100"}


@pytest.mark.parametrize(
    "url",
    [
        "http://h:8080/ocpi/2.2.1/locations?offset=500&limit=10",
        "http://h/ocpi/2.2.1/locations",
        "http://h/x?limit=5",
        "http://h/x?limit=5&offset=1",
        "http://h/x?",
        "http://h/x?offset",
        "http://h/x?offset=1&offset=2",
        "http://h/x?date_from=2024-01-01T00:00:00Z&offset=3",
        "http://h/x?offset=1&&limit=2",
        "http://h/x?offset=1;limit=2",
        "https://h/a%20b/c?limit=1",
        "http://h/x?limit=1#frag",
        "http://h/x?%6Fffset=1",
        "http://h/p%3Fq?offset=1",
        "http://h/x?limit=1&a=%C3%A9+b",
    ],
)
def test_next_page_url_is_yarls_update_query(url: str) -> None:
    # Its own writing of the usual page request's query gives yarl's text exactly.
    expected = str(URL(url).update_query(offset="510", limit="10"))
    assert next_page_url(URL(url), "510", "10") == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (['<https://a/b?offset=2>; rel="next"'], "https://a/b?offset=2"),
        (['<https://a/p>; rel="prev", <https://a/n>; rel="next"'], "https://a/n"),
        (["<https://a/p>; rel=prev", "<https://a/n>; rel=next"], "https://a/n"),
        (['<https://a/n>; title="x"; rel="last next"'], "https://a/n"),
        (['<https://a/p>; rel="prev"'], None),
        ([], None),
        (["garbage"], None),
    ],
)
def test_next_link(values: list[str], expected: str | None) -> None:
    assert next_link(values) == expected


def test_response_model_reads_envelopes_typed() -> None:
    from pathlib import Path

    import ocpi.v221 as v
    from ocpi.transport import OcpiResponse

    examples = Path(__file__).parent / "examples"
    text = (examples / "transport_and_format_get_token_list_example.json").read_text()
    body = OcpiResponse[list[v.Token]].model_validate(json_loads(text))
    assert body.ok and body.status_code == 1000
    assert [t.uid for t in body.data or []] == ["100012", "100013", "100014"]
    assert body.timestamp == datetime(2015, 6, 30, 21, 59, 59, tzinfo=UTC)
    assert json_loads(json_dumps(body)) == json_loads(text)
    error = OcpiResponse[v.Token].model_validate(
        {"status_code": 2001, "status_message": "Missing required field: type",
         "timestamp": "2015-06-30T21:59:59Z"}
    )  # fmt: skip
    assert not error.ok and error.data is None
    with pytest.raises(ValueError, match="timestamp"):
        OcpiResponse[v.Token].model_validate({"status_code": 1000})
    with pytest.raises(ValueError, match="status_code"):
        OcpiResponse[v.Token].model_validate(
            {"status_code": "1000", "timestamp": "2015-06-30T21:59:59Z"}
        )
