"""gateway.csms.connection.decode_frame reads every frame text as the json module does
(``_decode``): the same values (types included: int or float, -0.0) or the same error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.csms.connection import _decode, decode_frame
from gateway.csms.validation import needs_edge_check


def _outcome(read: Any, raw: str) -> tuple[str, str]:
    try:
        value = read(raw)
    except RecursionError:
        return ("error", "RecursionError")
    except ValueError:
        # Both report a JSONDecodeError (orjson's subclasses json's), or json's own
        # ValueError for NaN and Infinity (parse_constant).
        return ("error", "ValueError")
    return ("value", repr(value))


def _by_frame(text: str) -> Any:
    return decode_frame(text, needs_edge_check(text))


# json's reading, from as deep in the stack as decode_frame calls it: near json's
# recursion limit, one frame more or less decides whether a text nests too deeply.
def _by_json(text: str) -> Any:
    return _json_one_frame_down(text)


def _json_one_frame_down(text: str) -> Any:
    return _decode(text)


def _same(raw: str) -> None:
    assert _outcome(_by_frame, raw) == _outcome(_by_json, raw), raw


integers = st.one_of(
    st.integers(-1000, 1000),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**18, 10**19]),
)
floats = st.floats(allow_nan=False, allow_infinity=False)
leaves = st.one_of(st.none(), st.booleans(), integers, floats, st.text(max_size=8))
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)
# Number texts as chargers may write them, beyond what json.dumps writes.
number_texts = st.one_of(
    st.sampled_from(
        [
            "-0",
            "-0.0",
            "1E2",
            "1e400",
            "-1e400",
            "1.7976931348623157e309",
            "0.1e-400",
            "4.9e-324",
            "NaN",
            "Infinity",
            "-Infinity",
            "01",
            "1.",
            ".5",
            "+1",
        ]
    ),
    st.from_regex(r"-?[0-9]{1,25}(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
)


@settings(max_examples=300, deadline=None)
@given(value=values, ascii_only=st.booleans(), spaced=st.booleans())
def test_what_json_dumps_writes_reads_alike(value: Any, ascii_only: bool, spaced: bool) -> None:
    raw = json.dumps(
        value, ensure_ascii=ascii_only, separators=(", ", ": ") if spaced else (",", ":")
    )
    _same(raw)


@settings(max_examples=300, deadline=None)
@given(
    number=number_texts, where=st.sampled_from(["{}", '[2,"id","A",{{"v":{}}}]', "[{}, 1]", " {} "])
)
def test_numbers_as_written_read_alike(number: str, where: str) -> None:
    _same(where.format(number))


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), integers), max_size=6))
def test_repeated_keys_read_alike(pairs: list[tuple[str, int]]) -> None:
    raw = "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}"
    _same(raw)


@pytest.mark.parametrize(
    "raw",
    [
        '"\\ud800"',
        '["\\udfff", 1]',
        '"\\ud83d\\ude00"',
        '"\\u0000"',
        '"tab\there"',
        "[1,]",
        '{"a":1,}',
        "",
        "   ",
        "[1] x",
        "\ufeff[1]",
        "[" * 1100 + "]" * 1100,
        # Deeper than json's recursion allows, not orjson's limit (1,024).
        *("[" * depth + "]" * depth for depth in (900, 950, 980, 1000, 1020)),
        "[" * 5000 + "]" * 5000,
        '{"a":' * 600 + "1" + "}" * 600,
        "18446744073709551616",
        '[2,"id","MeterValues",{"transactionId":123456789012345678901}]',
        '[2,"id","A",{"idTag":"1234567890123456789012"}]',
    ],
)
def test_edge_texts_read_alike(raw: str) -> None:
    _same(raw)
