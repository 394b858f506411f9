"""The nesting bound of JSON input (ocpi.transport.check_json_depth / json_loads) and
field paths in validation messages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from ocpi.transport import (
    MAX_JSON_DEPTH,
    JsonTooDeepError,
    check_json_depth,
    field_path,
    format_validation_error,
    json_loads,
)

# Strings full of what the depth scan must not count: brackets, quotes, backslashes.
_tricky_text = st.text(alphabet='[]{}"\\ab\u00e9\u2028', max_size=12)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | _tricky_text,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(_tricky_text, inner, max_size=3),
    max_leaves=40,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


def _nest(value: Any, levels: int) -> Any:
    for i in range(levels):
        value = [value] if i % 2 else {"k[{": value}
    return value


@given(_json_values, st.integers(min_value=0, max_value=80), st.booleans())
def test_the_bound_is_exact_whatever_the_strings_hold(
    value: Any, extra: int, ascii_only: bool
) -> None:
    nested = _nest(value, extra)
    text = json.dumps(nested, ensure_ascii=ascii_only)
    for limit in (3, 10, MAX_JSON_DEPTH):
        if _depth(nested) > limit:
            with pytest.raises(JsonTooDeepError):
                check_json_depth(text, limit)
            with pytest.raises(JsonTooDeepError):
                check_json_depth(text.encode(), limit)
        else:
            check_json_depth(text, limit)
            check_json_depth(text.encode(), limit)
    if _depth(nested) <= MAX_JSON_DEPTH:
        assert json_loads(text) == json.loads(text)


def test_a_thousand_levels_in_two_kilobytes_is_refused_not_a_crash() -> None:
    for text in (b"[" * 1000 + b"]" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000):
        with pytest.raises(JsonTooDeepError) as caught:
            json_loads(text)
        assert isinstance(caught.value, ValueError)  # every caller of json_loads handles it
    # Exactly at the bound: read.
    assert json_loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None


def test_text_that_is_not_json_is_left_to_the_parser() -> None:
    for text in ("[" * 10, "]]]]", '"unterminated [[[[', "{[}]"):
        with pytest.raises(json.JSONDecodeError):
            json_loads(text)


class _Inner(BaseModel):
    id: str


class _Outer(BaseModel):
    items: list[_Inner]


def test_field_paths_have_no_doubled_dots() -> None:
    assert field_path(("id",), prefix="connectors[0].") == "connectors[0].id"
    assert field_path(("id",), prefix="connectors[0]") == "connectors[0].id"
    assert field_path((2, "id"), prefix="data.") == "data[2].id"
    assert field_path((), prefix="evses.E1.") == "evses.E1"
    assert field_path(("evses", 0, "status")) == "evses[0].status"
    with pytest.raises(ValidationError) as caught:
        _Outer.model_validate({"items": [{"id": 5}]})
    message = format_validation_error(caught.value, prefix="connectors[0].")
    assert message.startswith("connectors[0].items[0].id: ")
    assert ".." not in message
