"""The key local tokens are found by is the same in the three places that compute it:
``domain.models.token_key`` (Python), SQLite's ``upper()`` (the schema 7 migration) and
the Lua of Redis's ``MOVE_TOKEN``; and it folds ASCII letters, nothing else."""

from __future__ import annotations

import sqlite3
import string

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.models import token_key
from gateway.storage.redis import _MOVE_TOKEN

# The Lua of MOVE_TOKEN's key function alone, on each argument.
_LUA_KEYS = (
    _MOVE_TOKEN.split("local function before")[0]
    + "local out = {}\nfor i = 1, #ARGV do out[i] = key(ARGV[i]) end\nreturn out\n"
)
UIDS = st.lists(st.text(max_size=30), min_size=1, max_size=20)


@given(st.text(max_size=40))
def test_it_folds_ascii_letters_only(uid: str) -> None:
    key = token_key(uid)
    assert len(key) == len(uid)
    for a, b in zip(uid, key, strict=True):
        assert b == (a.upper() if a in string.ascii_lowercase else a)
    assert token_key(key) == key
    if uid.isascii():
        assert token_key(uid.lower()) == token_key(uid.swapcase()) == uid.upper()


@given(UIDS)
def test_sqlite_upper_is_the_same_key(uids: list[str]) -> None:
    conn = sqlite3.connect(":memory:")
    try:
        for uid in uids:
            uid = uid.replace("\x00", "")  # a NUL ends SQLite's text
            assert conn.execute("SELECT upper(?)", (uid,)).fetchone()[0] == token_key(uid)
    finally:
        conn.close()


@pytest.mark.redis
@settings(max_examples=50)
@given(UIDS)
def test_redis_lua_key_is_the_same_key(redis_url: str, uids: list[str]) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        got = client.eval(_LUA_KEYS, 0, *uids)
    finally:
        client.close()
    assert [g.decode() for g in got] == [token_key(uid) for uid in uids]
