"""gateway.jsontext writes what json.dumps with compact separators writes, and refuses
what it refuses, with the same error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.jsontext import compact, compact_unicode

keys = st.one_of(
    st.text(max_size=6),
    st.integers(-5, 5),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, width=32),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**80), 2**80),
    st.floats(),  # NaN and the infinities too: json writes them (allow_nan)
    st.text(max_size=10),
)
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=15,
)


@settings(max_examples=400, deadline=None)
@given(value=values)
def test_same_text_as_json_dumps(value: Any) -> None:
    assert compact(value) == json.dumps(value, separators=(",", ":"))
    assert compact_unicode(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    "value",
    [
        {"at": datetime(2026, 1, 1, tzinfo=UTC)},
        [Decimal("1.5")],
        {1, 2},
        {(1, 2): "tuple key"},
        b"bytes",
    ],
)
def test_what_json_cannot_hold_is_refused_alike(value: Any) -> None:
    with pytest.raises(TypeError) as ours:
        compact(value)
    with pytest.raises(TypeError) as theirs:
        json.dumps(value, separators=(",", ":"))
    assert str(ours.value) == str(theirs.value)
