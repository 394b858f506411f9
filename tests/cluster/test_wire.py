"""The wire form of routed commands (``gateway.cluster.wire``): every command, result and
domain error survives the trip through JSON unchanged, and whatever else arrives (a
bug, or a newer process in the cluster) is refused with ``WireError`` and nothing else.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, get_args, get_origin, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cluster import wire
from gateway.domain import commands as cmd
from gateway.domain.errors import (
    ChargerNotConnected,
    ChargerRejected,
    ChargerTimeout,
    CommandNotSupported,
    Conflict,
    DomainError,
    NotFound,
    Unavailable,
)
from gateway.storage.base import StorageUnavailable

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)

# -- realistic field values ---------------------------------------------------------------

# OCPP identifiers: printable ASCII, at most 36 characters (IdToken of 2.0.1).
identifiers = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=36
)
# Times as the commands carry them: RFC 3339 strings.
rfc3339 = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda t: t.isoformat().replace("+00:00", "Z"))
urls = st.builds(
    "{}://{}/{}".format,
    st.sampled_from(["https", "ftp", "sftp"]),
    st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,12}){0,2}", fullmatch=True),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40),
)
ocpp_ints = st.integers(min_value=0, max_value=2**31 - 1)  # OCPP integers are 32-bit
evse_ids = st.integers(min_value=0, max_value=32)
# Text fields a charger or an operator fills in freely: any Unicode.
any_text = st.text(max_size=60)

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id_token": identifiers,
    "contract_id": st.from_regex(
        r"[A-Z]{2}-?[A-Z0-9]{3}-?[A-Z0-9]{9}(-?[A-Z0-9])?", fullmatch=True
    ),
    "ocpp_transaction_id": st.one_of(st.integers(1, 2**31 - 1).map(str), st.uuids().map(str)),
    "evse_id": evse_ids,
    "connector_id": st.integers(min_value=1, max_value=8),
    "remote_start_id": ocpp_ints,
    "reservation_id": ocpp_ints,
    "request_id": ocpp_ints,
    "retries": st.integers(min_value=0, max_value=10),
    "retry_interval": st.integers(min_value=0, max_value=3600),
    "location": urls,
    "retrieve_at": rfc3339,
    "start_time": rfc3339,
    "stop_time": rfc3339,
    "expiry": rfc3339,
    "message": st.sampled_from(
        [
            "BootNotification",
            "Heartbeat",
            "MeterValues",
            "StatusNotification",
            "LogStatusNotification",
        ]
    ),
    "key": st.sampled_from(
        ["HeartbeatInterval", "MeterValueSampleInterval", "AuthorizeRemoteTxRequests"]
    )
    | identifiers,
    "keys[]": identifiers,  # the items of the tuple
    "value": any_text,
    "component": st.sampled_from(["OCPPCommCtrlr", "EVSE", "Connector", "SecurityCtrlr"]),
    "variable": st.sampled_from(["HeartbeatInterval", "Available", "OfflineThreshold"]),
    "instance": identifiers,
    "attribute_type": st.sampled_from(["Actual", "Target", "MinSet", "MaxSet"]),
}


def _strategy(hint: Any, name: str) -> st.SearchStrategy[Any]:
    """A realistic value for a field ``name`` of type ``hint``."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        inner = st.one_of(*(_strategy(o, name) for o in options))
        return st.none() | inner if type(None) in get_args(hint) else inner
    if origin is tuple:
        return st.lists(_strategy(get_args(hint)[0], f"{name}[]"), max_size=4).map(tuple)
    if origin is typing.Literal:
        return st.sampled_from(get_args(hint))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(list(hint))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _builds(hint)
    if name in FIELDS and hint is not Decimal:  # a Monitor's value is a number
        return FIELDS[name]
    if hint is bool:
        return st.booleans()
    if hint is int:
        return ocpp_ints
    if hint is Decimal:  # charging limits: A or W, OCPP 1.6 multiples of 0.1
        return st.decimals(min_value=0, max_value=1_000_000, places=1)
    if hint is datetime:
        return st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        )
    if hint is str:
        return any_text
    raise AssertionError(f"no strategy for {name}: {hint}")  # a new field type: add one


def _builds(kind: type[Any]) -> st.SearchStrategy[Any]:
    hints = get_type_hints(kind)
    fields = {f.name: _strategy(hints[f.name], f.name) for f in dataclasses.fields(kind)}
    return st.builds(kind, **fields)


KINDS = sorted(wire.COMMAND_KINDS.items())
commands = st.one_of(*(_builds(kind) for _, kind in KINDS))

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
results = st.builds(
    cmd.CommandResult,
    status=st.sampled_from(list(cmd.CommandStatus)),
    data=json_objects,
    request_id=st.none() | ocpp_ints,
)


def _trip(message: dict[str, Any]) -> dict[str, Any]:
    """Through the bytes a message really travels as."""
    return wire.loads(wire.dumps(message))


# -- round trips ------------------------------------------------------------------------


def test_every_command_kind_is_a_dataclass_named_after_its_kind() -> None:
    assert set(wire.COMMAND_KINDS) == {k.__name__ for k in get_args(cmd.Command)}
    assert len(wire.COMMAND_KINDS) >= 14
    for name, kind in KINDS:
        assert kind.__name__ == name
        assert dataclasses.is_dataclass(kind)


@pytest.mark.parametrize(("name", "kind"), KINDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_each_command_kind_round_trips(name: str, kind: type[Any], data: st.DataObject) -> None:
    command = data.draw(_builds(kind))
    encoded = wire.encode_command(command)
    assert encoded["kind"] == name
    decoded = wire.decode_command(_trip(encoded))
    assert decoded == command
    assert type(decoded) is kind
    # Enums come back as enums, tuples as tuples (equality alone would not say so).
    for f in dataclasses.fields(kind):
        assert type(getattr(decoded, f.name)) is type(getattr(command, f.name))


@PROPERTY_SETTINGS
@given(command=commands)
def test_commands_round_trip(command: cmd.Command) -> None:
    assert wire.decode_command(_trip(wire.encode_command(command))) == command


@PROPERTY_SETTINGS
@given(result=results)
def test_results_round_trip(result: cmd.CommandResult) -> None:
    decoded = wire.decode_result(_trip(wire.encode_result(result)))
    assert decoded == result
    assert type(decoded.status) is cmd.CommandStatus


def test_a_command_with_defaults_left_out_of_its_args() -> None:
    # What an older process sends for a field it did not know of: the default.
    assert wire.decode_command({"kind": "Reset", "args": {}}) == cmd.Reset()
    assert wire.decode_command(
        {"kind": "StartCharging", "args": {"id_token": "04A1B2C3"}}
    ) == cmd.StartCharging("04A1B2C3")
    # And a field this version does not know of is ignored (a newer process).
    assert wire.decode_command(
        {"kind": "StopCharging", "args": {"ocpp_transaction_id": "17", "reason": "Remote"}}
    ) == cmd.StopCharging("17")


# -- errors -------------------------------------------------------------------------------


class _Bug(Exception):
    pass


@pytest.mark.parametrize(
    ("raised", "kind", "fields"),
    [
        (ChargerNotConnected("CP-1"), ChargerNotConnected, {"charger_id": "CP-1"}),
        (ChargerNotConnected('CP ü "x"'), ChargerNotConnected, {"charger_id": 'CP ü "x"'}),
        (
            ChargerRejected("NotImplemented", "no such action"),
            ChargerRejected,
            {"code": "NotImplemented", "description": "no such action"},
        ),
        (
            ChargerRejected("InternalError", ""),
            ChargerRejected,
            {"code": "InternalError", "description": ""},
        ),
        (ChargerTimeout("CP-1 did not answer within 30 s"), ChargerTimeout, {}),
        (CommandNotSupported("GetVariables needs OCPP 2.0.1"), CommandNotSupported, {}),
        (Unavailable("Redis: connection refused"), Unavailable, {}),
        (StorageUnavailable("Redis: connection refused"), Unavailable, {}),
        (wire.RemoteUnavailable("again"), Unavailable, {}),
    ],
)
def test_domain_errors_round_trip(
    raised: Exception, kind: type[Exception], fields: dict[str, str]
) -> None:
    decoded = wire.decode_error(_trip(wire.encode_error(raised)))
    assert isinstance(decoded, kind)
    assert str(decoded) == str(raised)
    for name, value in fields.items():
        assert getattr(decoded, name) == value


@pytest.mark.parametrize(
    "raised",
    [
        _Bug("secret detail"),
        KeyError("k"),
        NotFound("charger", "CP-1"),
        Conflict("x"),
        DomainError("y"),
    ],
)
def test_any_other_error_is_a_remote_failure_without_its_detail(raised: Exception) -> None:
    # A bug on the owner's side: the caller gets an error of its own, never a hang, and
    # no internal detail crosses the wire (its log on the owner has it).
    decoded = wire.decode_error(_trip(wire.encode_error(raised)))
    assert type(decoded) is wire.RemoteFailure
    assert str(decoded) == f"{type(raised).__name__} in the process holding it"


@PROPERTY_SETTINGS
@given(charger_id=st.text(), code=st.text(), description=st.text(), message=st.text())
def test_error_fields_round_trip_whatever_their_text(
    charger_id: str, code: str, description: str, message: str
) -> None:
    not_connected = wire.decode_error(_trip(wire.encode_error(ChargerNotConnected(charger_id))))
    assert isinstance(not_connected, ChargerNotConnected)
    assert not_connected.charger_id == charger_id
    rejected = wire.decode_error(_trip(wire.encode_error(ChargerRejected(code, description))))
    assert isinstance(rejected, ChargerRejected)
    assert (rejected.code, rejected.description) == (code, description)
    timeout = wire.decode_error(_trip(wire.encode_error(ChargerTimeout(message))))
    assert isinstance(timeout, ChargerTimeout) and str(timeout) == message


def test_an_unknown_error_kind_is_a_remote_failure() -> None:
    assert (
        type(wire.decode_error({"error": "from-the-future", "message": "m"})) is wire.RemoteFailure
    )
    assert type(wire.decode_error({})) is wire.RemoteFailure


# -- malformed input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "Reset",
        {"kind": "Reset"},  # no args
        {"args": {}},  # no kind
        {"kind": "Reset", "args": []},
        {"kind": "Explode", "args": {}},
        {"kind": "reset", "args": {}},
        {"kind": ["Reset"], "args": {}},  # unhashable kind
        {"kind": {"a": 1}, "args": {}},
        {"kind": 1, "args": {}},
        {"kind": "StopCharging", "args": {}},  # a required field missing
        {"kind": "StopCharging", "args": {"ocpp_transaction_id": 17}},
        {"kind": "Reset", "args": {"hard": 1}},
        {"kind": "Reset", "args": {"hard": "true"}},
        {"kind": "UnlockConnector", "args": {"evse_id": True}},
        {"kind": "UnlockConnector", "args": {"evse_id": 1.0}},
        {"kind": "UnlockConnector", "args": {"evse_id": "1"}},
        {"kind": "StartCharging", "args": {"id_token": "A", "token_type": "BADGE"}},
        {"kind": "StartCharging", "args": {"id_token": "A", "token_type": ["RFID"]}},
        {"kind": "StartCharging", "args": {"id_token": "A", "evse_id": [1]}},
        {"kind": "GetConfiguration", "args": {"keys": "HeartbeatInterval"}},
        {"kind": "GetConfiguration", "args": {"keys": [1]}},
        {"kind": "GetVariables", "args": {"variables": [{"component": "EVSE"}]}},
        {"kind": "GetVariables", "args": {"variables": ["EVSE"]}},
        {"kind": "GetVariables", "args": {"variables": {"component": "EVSE", "variable": "x"}}},
        {"kind": "GetDiagnostics", "args": {"location": "ftp://x", "log_type": "AuditLog"}},
        {"kind": "GetDiagnostics", "args": {"location": "ftp://x", "log_type": ["SecurityLog"]}},
    ],
)
def test_malformed_commands_are_refused(data: Any) -> None:
    with pytest.raises(wire.WireError):
        wire.decode_command(data)


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"status": "Accepted"},  # no data
        {"status": "Accepted", "data": []},
        {"status": "Maybe", "data": {}},
        {"status": None, "data": {}},
        {"status": ["Accepted"], "data": {}},
        {"data": {}},
        {"status": "Accepted", "data": {}, "request_id": "7"},
        {"status": "Accepted", "data": {}, "request_id": 7.0},
        {"status": "Accepted", "data": {}, "request_id": True},
    ],
)
def test_malformed_results_are_refused(data: Any) -> None:
    with pytest.raises(wire.WireError):
        wire.decode_result(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"not json",
        b"\xff\xfe{}",
        b"[1, 2]",
        b'"a string"',
        b"null",
        b"NaN",
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser goes
        b'{"a": ' * 100_000 + b"1" + b"}" * 100_000,
        b"1" * 5000,  # an integer longer than Python converts
    ],
)
def test_what_is_not_a_json_object_is_refused(data: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.loads(data)


def _refused_or_valid(
    decode: Callable[[Any], Any], data: Any, kinds: tuple[type[Any], ...]
) -> None:
    try:
        value = decode(data)
    except wire.WireError:
        return
    assert isinstance(value, kinds)
    # What was accepted is a value of its type: it makes the trip again unchanged.
    if isinstance(value, cmd.CommandResult):
        assert wire.decode_result(_trip(wire.encode_result(value))) == value
    else:
        assert wire.decode_command(_trip(wire.encode_command(value))) == value


@PROPERTY_SETTINGS
@given(data=json_values)
def test_any_json_value_decodes_or_is_refused_with_wire_error(data: Any) -> None:
    _refused_or_valid(wire.decode_command, data, tuple(wire.COMMAND_KINDS.values()))
    _refused_or_valid(wire.decode_result, data, (cmd.CommandResult,))


@PROPERTY_SETTINGS
@given(kind=st.sampled_from(sorted(wire.COMMAND_KINDS)) | json_values, args=json_values)
def test_any_args_of_any_kind_decode_or_are_refused_with_wire_error(kind: Any, args: Any) -> None:
    # The likely shapes (a known kind, args an object of fields) with any values.
    _refused_or_valid(
        wire.decode_command, {"kind": kind, "args": args}, tuple(wire.COMMAND_KINDS.values())
    )


@PROPERTY_SETTINGS
@given(
    kind=st.sampled_from(sorted(wire.COMMAND_KINDS)),
    fields=st.dictionaries(
        st.sampled_from(
            sorted({f.name for k in wire.COMMAND_KINDS.values() for f in dataclasses.fields(k)})
        ),
        json_values,
    ),
)
def test_known_field_names_with_any_values_decode_or_are_refused(
    kind: str, fields: dict[str, Any]
) -> None:
    _refused_or_valid(
        wire.decode_command, {"kind": kind, "args": fields}, (wire.COMMAND_KINDS[kind],)
    )


@PROPERTY_SETTINGS
@given(status=json_values, data=json_values, request_id=json_values)
def test_any_result_fields_decode_or_are_refused(status: Any, data: Any, request_id: Any) -> None:
    _refused_or_valid(
        wire.decode_result,
        {"status": status, "data": data, "request_id": request_id},
        (cmd.CommandResult,),
    )


@PROPERTY_SETTINGS
@given(data=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_load_as_an_object_or_are_refused(data: bytes) -> None:
    try:
        value = wire.loads(data)
    except wire.WireError:
        return
    assert isinstance(value, dict)
