"""Lone UTF-16 surrogates: valid JSON escapes, but not text anything can store or pass on.

Found by the fuzz suite: ``{"session_id": "x\\udbff"}`` posted to the hub's commands
receiver reached the storage layer and failed there (HTTP 500).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocpi.transport import check_json_text, json_loads
from tests.conftest import Gateway


@pytest.mark.parametrize(
    "raw",
    [
        b'{"uid": "\\ud800"}',
        b'{"uid": "A\\udfff"}',
        b'["ok", {"deep": ["\\uDBFF"]}]',
        b'{"\\ud83d": 1}',  # in a key
        '{"uid": "\\udc00"}',  # text rather than bytes
    ],
)
def test_lone_surrogates_are_refused(raw: str | bytes) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        json_loads(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"emoji": "\\ud83d\\ude00"}',  # a pair: one character, fine
        b'{"path": "C:\\\\ud800"}',  # an escaped backslash, then plain letters
        '{"name": "\u00e9\u20ac"}'.encode(),
    ],
)
def test_surrogate_pairs_and_lookalikes_pass(raw: bytes) -> None:
    assert json_loads(raw) == json.loads(raw)


@given(st.recursive(st.text() | st.integers(), lambda c: st.lists(c) | st.dictionaries(st.text(), c), max_leaves=20))
def test_agrees_with_utf8_encodability(value: object) -> None:
    text = json.dumps(value)  # ensure_ascii: every non-ASCII character is a \u escape
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(ValueError, match="surrogate"):
            check_json_text(text, json.loads(text))
    else:
        check_json_text(text, json.loads(text))


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_admin_api_refuses_lone_surrogates(gateway: Gateway) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.put(
        f"{gateway.url}/admin/tokens/TOK1",
        data=b'{"valid": true, "contract_id": "NL-ABC-\\ud800"}',
        headers=gateway.admin_headers | {"Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert "surrogate" in body["error"]
    status, _ = await gateway.admin("GET", "/tokens/TOK1")
    assert status == 404
