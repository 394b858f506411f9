"""The message trail's stored form, shared by both backends.

An entry's id is ``{at:016d}{seq:016d}``: its time in µs since the epoch and the
store's append sequence, both zero-padded, so that ids sort (as text, and as Redis
lexicographic ranges) in (time, append order). The id is the query cursor.
Entries are stored as compact JSON without their id and without absent fields
(Redis scripts read ``charger_id``, ``partner`` and ``transaction_id`` from it).
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from gateway.storage import codec
from gateway.storage.base import TrailEntry

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
ID_LENGTH: Final = 32
_ID: Final = re.compile(r"[0-9]{32}")
_FIELDS: Final = tuple(f.name for f in dataclasses.fields(TrailEntry) if f.name not in ("at", "id"))
# Field types checked when decoding (a broken row must not poison a page's types).
_INT_FIELDS: Final = frozenset({"ocpi_status", "size"})


def time_part(value: datetime, field: str) -> str:
    """The 16-digit time prefix of the ids of entries at ``value`` (clamped to 1970 and
    later: nothing in the trail is older)."""
    return f"{max(0, codec.time_key(value, field)):016d}"


def make_id(at_micros: int, seq: int) -> str:
    return f"{at_micros:016d}{seq:016d}"


def check_cursor(cursor: str) -> str:
    if not _ID.fullmatch(cursor):
        raise ValueError("not a cursor of this trail")
    return cursor


def cursor_parts(cursor: str) -> tuple[int, int]:
    check_cursor(cursor)
    return int(cursor[:16]), int(cursor[16:])


def clean(text: str) -> str:
    """``text`` as storable UTF-8: a lone surrogate (a JSON ``\\ud800`` escape parsed from
    a frame) becomes the visible escape ``\\ud800``; everything else is kept as it is."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def optional(text: str | None) -> str | None:
    return None if text is None else clean(text)


def at_micros(entry: TrailEntry) -> int:
    micros = codec.time_key(entry.at, "TrailEntry.at")
    if micros < 0:
        raise ValueError("a trail entry cannot be older than 1970")
    return micros


def encode(entry: TrailEntry) -> str:
    """The entry's JSON (without ``id``; absent fields left out)."""
    data: dict[str, Any] = {"at": at_micros(entry)}
    for name in _FIELDS:
        value = getattr(entry, name)
        if value is not None and value is not False:
            data[name] = clean(value) if isinstance(value, str) else value
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def decode(entry_id: str, raw: str | bytes) -> TrailEntry:
    data = json.loads(raw)
    values: dict[str, Any] = {}
    for name in _FIELDS:
        if name in data:
            value = data[name]
            if name in _INT_FIELDS:
                value = int(value)
            elif name == "truncated":
                value = bool(value)
            else:
                value = str(value)
            values[name] = value
    at = _EPOCH + timedelta(microseconds=int(data["at"]))
    return TrailEntry(at=at, id=entry_id, **values)
