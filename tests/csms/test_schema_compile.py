"""The OCPP schemas compiled with string enums as sets (gateway.csms.validation.compile_schema)
give fastjsonschema's own verdicts and errors, on payloads generated from the schemas and
on those payloads with one value changed.

The payloads come from :func:`valid`, written for the keywords the ``ocpp`` package's
schemas use (hypothesis-jsonschema does not run with this hypothesis release); that they
are valid is itself checked against fastjsonschema's validators."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastjsonschema
import ocpp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.csms.validation import compile_schema

SCHEMA_ROOT = Path(ocpp.__file__).parent


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8-sig"))  # type: ignore[no-any-return]


def _string_enums(node: Any) -> list[list[str]]:
    """Every enum of strings in a schema (the part compiled differently)."""
    found: list[list[str]] = []
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
            found.append(enum)
        for value in node.values():
            found.extend(_string_enums(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_string_enums(value))
    return found


# Schemas of every version that have a string enum; 2.0.1 and 2.1 hold hundreds, so the
# messages a charger sends most (and those with the largest enums) stand for them.
ALL_V16 = sorted(p.name for p in (SCHEMA_ROOT / "v16" / "schemas").glob("*.json"))
SAMPLED = [
    f"v16/schemas/{name}"
    for name in ALL_V16
    if _string_enums(_load(SCHEMA_ROOT / "v16" / "schemas" / name))
] + [
    f"{version}/schemas/{name}.json"
    for version in ("v201", "v21")
    for name in (
        "StatusNotificationRequest",
        "MeterValuesRequest",
        "TransactionEventRequest",
        "NotifyEventRequest",
        "BootNotificationRequest",
        "AuthorizeRequest",
        "SetChargingProfileRequest",
    )
]


@functools.cache
def _pair(name: str) -> tuple[Any, Any, dict[str, Any]]:
    schema = _load(SCHEMA_ROOT / name)
    return fastjsonschema.compile(schema, use_formats=False), compile_schema(schema), schema


def valid(node: dict[str, Any], root: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Payloads valid under ``node`` of ``root`` (types, properties, required, items and
    their bounds, lengths, ranges, enums, ``$ref`` to ``definitions``)."""
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/definitions/")
        return valid(root["definitions"][name], root, depth)
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "object":
        properties = node.get("properties", {})
        required = set(node.get("required", ()))
        if depth > 8:  # no OCPP schema nests this deep; a bound all the same
            required_only = {
                k: valid(v, root, depth + 1) for k, v in properties.items() if k in required
            }
            return st.fixed_dictionaries(required_only)
        return st.fixed_dictionaries(
            {k: valid(v, root, depth + 1) for k, v in properties.items() if k in required},
            optional={
                k: valid(v, root, depth + 1) for k, v in properties.items() if k not in required
            },
        )
    if kind == "array":
        low = node.get("minItems", 0)
        high = max(low, min(node.get("maxItems", 3), 3))
        return st.lists(valid(node.get("items", {}), root, depth + 1), min_size=low, max_size=high)
    if kind == "string":
        return st.text(max_size=min(node.get("maxLength", 20), 20))
    if kind in ("integer", "number"):
        low = node.get("minimum", -1000)
        high = node.get("maximum", low + 2000)
        step = node.get("multipleOf")
        if step is not None:
            # As fastjsonschema checks it: through the decimal of the number's repr.
            unit = Decimal(repr(step))
            return st.integers(int(low / step), int(high / step)).map(lambda n: float(n * unit))
        if kind == "integer":
            return st.integers(int(low), int(high))
        return st.integers(int(low), int(high)) | st.floats(low, high)
    if kind == "boolean":
        return st.booleans()
    return st.none() | st.integers() | st.text(max_size=5)


@functools.cache
def _instances(name: str) -> st.SearchStrategy[Any]:
    schema = _pair(name)[2]
    return valid(schema, schema)


def _outcome(validate: Any, payload: Any) -> tuple[str, ...]:
    try:
        validate(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        return ("refused", exc.message, str(exc.rule), str(exc.path), repr(exc.rule_definition))
    return ("accepted",)


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in _leaves(value, (*path, key))]
    if isinstance(node, list):
        return [p for i, value in enumerate(node) for p in _leaves(value, (*path, i))]
    return [path]


def _replaced(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[path[0]] = _replaced(node[path[0]], path[1:], value)
    return copy


def test_the_sample_covers_enums_of_every_version() -> None:
    versions = {name.split("/")[0] for name in SAMPLED if _string_enums(_pair(name)[2])}
    assert versions == {"v16", "v201", "v21"}
    assert len(SAMPLED) > 20


def test_a_string_enum_is_one_set_lookup_in_the_generated_code() -> None:
    schema = _pair("v16/schemas/MeterValues.json")[2]
    generator = fastjsonschema._get_code_generator_class(schema)
    stock_code = fastjsonschema.compile_to_code(schema, use_formats=False)
    assert "== 'Power.Active.Import'" in stock_code
    assert generator is fastjsonschema.CodeGeneratorDraft04
    # The compiled function's constants hold the measurands as one frozenset.
    validate = _pair("v16/schemas/MeterValues.json")[1]
    constants = [c for c in validate.__code__.co_consts if isinstance(c, frozenset)]
    assert any("Power.Active.Import" in c for c in constants)


REPLACEMENTS = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-3, max_value=3),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _generated(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Hypothesis settings for payloads generated from whole schemas (slow, large)."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@_generated(400)
@given(data=st.data(), name=st.sampled_from(SAMPLED))
def test_same_verdicts_as_fastjsonschema(data: st.DataObject, name: str) -> None:
    stock, ours, schema = _pair(name)
    payload = data.draw(_instances(name), label="valid payload")
    assert _outcome(ours, payload) == _outcome(stock, payload) == ("accepted",)
    leaves = [p for p in _leaves(payload) if p]
    if not leaves:
        return
    path = data.draw(st.sampled_from(leaves), label="changed leaf")
    # Often another enum value of the schema, or one of a different case: near misses.
    enum_values = [v for enum in _string_enums(schema) for v in enum]
    near = (
        st.sampled_from(enum_values).flatmap(
            lambda v: st.sampled_from([v, v.lower(), v.upper(), v + " ", v[:-1]])
        )
        if enum_values
        else st.nothing()
    )
    value = data.draw(st.one_of(near, REPLACEMENTS), label="new value")
    changed = _replaced(payload, path, value)
    assert _outcome(ours, changed) == _outcome(stock, changed)


@pytest.mark.parametrize(
    "name", ["v16/schemas/MeterValues.json", "v201/schemas/StatusNotificationRequest.json"]
)
def test_an_unlisted_value_is_refused_with_fastjsonschemas_error(name: str) -> None:
    stock, ours, _ = _pair(name)
    if name.startswith("v16"):
        payload: dict[str, Any] = {
            "connectorId": 1,
            "meterValue": [
                {
                    "timestamp": "2025-01-01T00:00:00Z",
                    "sampledValue": [{"value": "1", "measurand": "Power.Active.import"}],
                }
            ],
        }
    else:
        payload = {
            "timestamp": "2025-01-01T00:00:00Z",
            "connectorStatus": "available",
            "evseId": 1,
            "connectorId": 1,
        }
    refused = _outcome(ours, payload)
    assert refused[0] == "refused" and refused[2] == "enum"
    assert refused == _outcome(stock, payload)


# Every schema of every version: objects are generated without key sets in all of them.
ALL_SCHEMAS = sorted(
    f"{version}/schemas/{path.name}"
    for version in ("v16", "v201", "v21")
    for path in (SCHEMA_ROOT / version / "schemas").glob("*.json")
)


def _dict_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every object in a payload, the payload's own first."""
    found = [path] if isinstance(node, dict) else []
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_dict_paths(value, (*path, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_dict_paths(value, (*path, i)))
    return found


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


def _checked(validate: Any, payload: Any) -> tuple[tuple[str, ...], Any]:
    # On a copy: both validators write a property's schema default into the payload.
    copy = json.loads(json.dumps(payload))
    return _outcome(validate, copy), copy


@_generated(600)
@given(data=st.data(), name=st.sampled_from(ALL_SCHEMAS))
def test_objects_with_properties_missing_or_unknown(data: st.DataObject, name: str) -> None:
    """An object with required properties taken out and unknown ones put in (one to four,
    so that the error's set of names has an order to keep), in any object of a payload:
    the same verdict and error as fastjsonschema's, and the same payload after (defaults
    written in)."""
    stock, ours, _ = _pair(name)
    payload = data.draw(_instances(name), label="valid payload")
    assert _checked(ours, payload) == _checked(stock, payload)
    assert _checked(ours, payload)[0] == ("accepted",)
    path = data.draw(st.sampled_from(_dict_paths(payload)), label="changed object")
    target = _at(payload, path)
    removed = data.draw(
        st.lists(st.sampled_from(sorted(target)), unique=True, max_size=2)
        if target
        else st.just([]),
        label="taken out",
    )
    extra = data.draw(
        st.dictionaries(st.text(min_size=1, max_size=8), REPLACEMENTS, max_size=4),
        label="put in",
    )
    changed = {key: value for key, value in target.items() if key not in removed} | extra
    mutated = _replaced(payload, path, changed)
    assert _checked(ours, mutated) == _checked(stock, mutated)


def test_the_generated_code_keeps_no_key_set_on_the_way_that_passes() -> None:
    schema = _pair("v16/schemas/StatusNotification.json")[2]
    stock_code = fastjsonschema.compile_to_code(schema, use_formats=False)
    assert "data_keys = set(data.keys())" in stock_code
    assert "data__missing_keys = set(" in stock_code
    stock, ours = _pair("v16/schemas/StatusNotification.json")[:2]
    # Only the error branches make the sets: a valid payload builds none of them.
    payload = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    assert ours(payload) == payload
    refused = _outcome(ours, {**payload, "b": 1, "a": 2, "zz": 3})
    assert refused == _outcome(stock, {**payload, "b": 1, "a": 2, "zz": 3})
    assert refused[0] == "refused" and refused[2] == "additionalProperties"
    missing = _outcome(ours, {"connectorId": 1})
    assert missing == _outcome(stock, {"connectorId": 1})
    assert missing[2] == "required" and "['errorCode', 'status']" in missing[1]
