"""The shared at-rest encoding: exact round trips of every entity, and its refusals."""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.models import (
    Charger,
    ChargerState,
    ConnectorState,
    ConnectorStatus,
    EvseConfig,
    IdToken,
    LocalToken,
    Measurand,
    MeterReading,
    OcppVersion,
    TokenType,
    Transaction,
    TransactionStatus,
)
from gateway.storage import codec
from gateway.storage.base import Document, OutboxItem

from .samples import T0, full_transaction

# Aware datetimes in any fixed offset, far enough from the ends of the calendar that
# converting them to UTC cannot overflow.
offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
times = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets
)
opt_times = st.none() | times
decimals = st.decimals(allow_nan=False, allow_infinity=False)
opt_decimals = st.none() | decimals
text = st.text(max_size=20)
opt_text = st.none() | text
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
id_tokens = st.builds(IdToken, uid=text, type=text)

chargers = st.builds(
    Charger,
    id=text,
    password_hash=opt_text,
    location_id=opt_text,
    evses=st.lists(
        st.builds(
            EvseConfig,
            ocpp_id=ints,
            evse_uid=text,
            evse_id=opt_text,
            connectors=st.lists(ints, max_size=4).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
    certificate_cn=opt_text,
    created_at=opt_times,
)
charger_states = st.builds(
    ChargerState,
    id=text,
    connected=st.booleans(),
    ocpp_version=st.none() | st.sampled_from(OcppVersion),
    vendor=opt_text,
    model=opt_text,
    serial_number=opt_text,
    firmware_version=opt_text,
    booted_at=opt_times,
    last_heartbeat=opt_times,
    connected_at=opt_times,
    disconnected_at=opt_times,
)
connectors = st.builds(
    ConnectorState,
    charger_id=text,
    evse_id=ints,
    connector_id=ints,
    status=st.sampled_from(ConnectorStatus),
    timestamp=times,
    error_code=opt_text,
    info=opt_text,
)
readings = st.builds(
    MeterReading,
    timestamp=times,
    measurand=st.sampled_from(Measurand),
    value=decimals,
    phase=opt_text,
    context=opt_text,
)
transactions = st.builds(
    Transaction,
    id=text,
    charger_id=text,
    ocpp_id=text,
    evse_id=ints,
    connector_id=ints,
    started_at=times,
    status=st.sampled_from(TransactionStatus),
    id_token=st.none() | id_tokens,
    meter_start_wh=opt_decimals,
    meter_stop_wh=opt_decimals,
    stopped_at=opt_times,
    stop_reason=opt_text,
    stop_id_token=st.none() | id_tokens,
    remote_start_id=st.none() | ints,
    reservation_id=st.none() | ints,
    charging_state=opt_text,
    recovered=st.booleans(),
    updated_at=opt_times,
)
tokens = st.builds(
    LocalToken,
    uid=text,
    valid=st.booleans(),
    expiry=opt_times,
    parent_id=opt_text,
    type=st.sampled_from(TokenType),
    contract_id=opt_text,
    updated_at=opt_times,
)


def through_json(data: dict[str, Any]) -> dict[str, Any]:
    """What comes back from storage: the encoded dict as JSON text and parsed again."""
    text = codec.dumps(data)
    assert isinstance(text, str)
    return codec.loads(text.encode())


def assert_same(decoded: object, original: object) -> None:
    """Equal, and every Decimal with the very same digits and exponent."""
    assert decoded == original
    assert repr(decoded) == repr(_utc(original))


def _utc(value: object) -> object:
    """``value`` with its datetimes converted to UTC (the form they come back in).

    ``fold`` is dropped too: it only disambiguates a wall time repeated in a local zone,
    which never happens in UTC, and the ISO text does not carry it.
    """
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(fold=0)
    if isinstance(value, tuple):
        return tuple(_utc(item) for item in value)
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: _utc(getattr(value, f.name)) for f in fields(value)})
    return value


@given(chargers)
def test_charger_round_trips(charger: Charger) -> None:
    assert_same(codec.decode_charger(through_json(codec.encode_charger(charger))), charger)


@given(charger_states)
def test_charger_state_round_trips(state: ChargerState) -> None:
    decoded = codec.decode_charger_state(through_json(codec.encode_charger_state(state)))
    assert_same(decoded, state)


@given(connectors)
def test_connector_round_trips(state: ConnectorState) -> None:
    assert_same(codec.decode_connector(through_json(codec.encode_connector(state))), state)


@given(readings)
def test_reading_round_trips(reading: MeterReading) -> None:
    assert_same(codec.decode_reading(through_json(codec.encode_reading(reading))), reading)


@given(transactions)
def test_transaction_round_trips(tx: Transaction) -> None:
    assert_same(codec.decode_transaction(through_json(codec.encode_transaction(tx))), tx)


@given(tokens)
def test_token_round_trips(token: LocalToken) -> None:
    assert_same(codec.decode_token(through_json(codec.encode_token(token))), token)


def test_the_encoding_is_plain_json_with_exact_strings() -> None:
    data = codec.encode_transaction(full_transaction())
    assert json.loads(json.dumps(data)) == data
    assert data["started_at"] == "2024-05-01T12:00:00.123456Z"
    assert data["meter_stop_wh"] == "98765.4321000000000000001"
    assert data["status"] == "Completed"
    assert data["id_token"] == {"uid": "04A2B3C4D5", "type": "ISO14443"}


@given(times, times)
def test_encoded_times_sort_like_the_instants(a: datetime, b: datetime) -> None:
    ta, tb = codec.encode_time(a, "a"), codec.encode_time(b, "b")
    assert len(ta) == len(tb) == 27
    assert (ta < tb) == (a < b)
    assert (codec.time_key(a, "a") < codec.time_key(b, "b")) == (a < b)


def test_time_key_is_microseconds_since_the_epoch() -> None:
    assert codec.time_key(datetime(1970, 1, 1, tzinfo=UTC), "t") == 0
    assert codec.time_key(T0, "t") == 1_714_564_800_123_456
    assert codec.time_key(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "t") == -1


def test_naive_datetime_is_refused_naming_the_field() -> None:
    naive = datetime(2024, 1, 1)
    with pytest.raises(codec.NaiveDatetimeError, match=r"^Transaction\.stopped_at: naive"):
        codec.encode_transaction(replace(full_transaction(), stopped_at=naive))
    with pytest.raises(ValueError, match="timezone-aware"):
        codec.encode_time(naive, "x")


def test_non_decimal_numbers_are_refused() -> None:
    with pytest.raises(TypeError, match=r"MeterReading\.value: expected Decimal, got float"):
        codec.encode_reading(MeterReading(T0, Measurand.ENERGY_WH, 0.1))  # type: ignore[arg-type]
    # An int is exact: accepted, and read back as a Decimal.
    data = codec.encode_reading(MeterReading(T0, Measurand.ENERGY_WH, 7))  # type: ignore[arg-type]
    assert codec.decode_reading(data).value == Decimal(7)


def test_unknown_enum_values_are_refused_before_storage() -> None:
    state = ConnectorState("CP", 1, 1, "Broken", T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ConnectorState\.status: 'Broken'"):
        codec.encode_connector(state)


def test_an_enum_field_is_stored_as_its_value_from_a_member_or_its_text() -> None:
    # A member takes a shortcut to its value; its text goes through the enum, as before.
    member = codec.encode_connector(ConnectorState("CP", 1, 1, ConnectorStatus.CHARGING, T0))
    text = codec.encode_connector(ConnectorState("CP", 1, 1, "Charging", T0))  # type: ignore[arg-type]
    assert member["status"] == text["status"] == "Charging"
    assert type(member["status"]) is type(text["status"]) is str


def test_records_without_newer_fields_still_decode() -> None:
    minimal = {
        "id": "t",
        "charger_id": "CP",
        "ocpp_id": "1",
        "evse_id": 1,
        "connector_id": 1,
        "started_at": "2024-05-01T12:00:00.123456Z",
        "status": "Active",
    }
    tx = codec.decode_transaction(minimal)
    assert tx == Transaction("t", "CP", "1", 1, 1, T0)
    assert codec.decode_charger({"id": "CP"}) == Charger(id="CP")
    assert codec.decode_token({"uid": "u"}) == LocalToken(uid="u")


# -- roaming: JSON documents and outbox items --------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)

documents = st.builds(Document, key=text, data=json_objects, last_updated=times, owner=opt_text)
outbox_items = st.builds(
    OutboxItem,
    id=text,
    partner_id=text,
    ordering_key=text,
    method=st.sampled_from(["PUT", "PATCH", "POST", "DELETE"]),
    url=text,
    body=st.none() | json_objects,
    created_at=times,
    next_attempt_at=times,
    attempts=st.integers(min_value=0, max_value=1000),
    last_error=opt_text,
    module=opt_text,
    meta=st.none() | json_objects,
)


def same_json(a: object, b: object) -> bool:
    """Equal with the same types all the way down (1 and 1.0 and True differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(map(same_json, a, b))
    return a == b or (isinstance(a, float) and repr(a) == repr(b))


@given(documents)
def test_document_round_trips(doc: Document) -> None:
    decoded = codec.decode_document(through_json(codec.encode_document(doc)))
    assert decoded == doc
    assert same_json(decoded.data, doc.data)
    assert decoded.last_updated.tzinfo == UTC


@given(outbox_items, st.integers(min_value=1, max_value=2**53))
def test_outbox_item_round_trips_with_its_state(item: OutboxItem, seq: int) -> None:
    data = through_json(codec.encode_outbox_item(item))
    decoded = codec.decode_outbox_item(
        data,
        seq=seq,
        status="pending",
        attempts=item.attempts,
        last_error=item.last_error,
        next_attempt_at=codec.time_key(item.next_attempt_at, "t"),
    )
    assert decoded == replace(item, seq=seq)
    assert same_json(decoded.body, item.body)
    assert same_json(decoded.meta, item.meta)


@given(times)
def test_time_from_key_inverts_time_key(value: datetime) -> None:
    back = codec.time_from_key(codec.time_key(value, "t"))
    assert back == value
    assert back.tzinfo == UTC


def test_check_json_names_the_path_of_what_it_refuses() -> None:
    with pytest.raises(TypeError, match=r"^x\['a'\]\[1\]\['b'\]: a Decimal is not JSON"):
        codec.check_json({"a": [0, {"b": Decimal(1)}]}, "x")
    with pytest.raises(TypeError, match=r"^x\[0\]: key \(1, 2\) is a tuple, not a str"):
        codec.check_json([{(1, 2): 3}], "x")
    with pytest.raises(ValueError, match=r"^x\['f'\]: -inf is not valid JSON"):
        codec.check_json({"f": float("-inf")}, "x")
    codec.check_json(None, "x")  # every JSON value passes, not only objects
    codec.check_json([1, 2.5, "s", True, None, [], {}], "x")
