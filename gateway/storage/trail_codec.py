"""The message trail's stored form, shared by both backends.

An entry's id is ``{at:016d}{seq:016d}``: its time in µs since the epoch and the
store's append sequence, both zero-padded, so that ids sort (as text, and as Redis
lexicographic ranges) in (time, append order). The id is the query cursor.
Entries are stored as a compact JSON list without their id (see :func:`encode`).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from gateway.jsontext import compact_unicode
from gateway.storage import codec
from gateway.storage.base import TrailEntry, TrailRecord, trail_record

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
ID_LENGTH: Final = 32
_ID: Final = re.compile(r"[0-9]{32}")


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
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def optional(text: str | None) -> str | None:
    return None if text is None else clean(text)


_MICROSECOND: Final = timedelta(microseconds=1)


def micros(at: datetime) -> int:
    """``at`` in µs since the epoch; ``NaiveDatetimeError`` without a zone, ``ValueError``
    before 1970."""
    try:
        value: int = (at - _EPOCH) // _MICROSECOND
    except TypeError:  # a naive datetime
        codec.utc(at, "TrailEntry.at")  # raises NaiveDatetimeError
        raise
    if value < 0:
        raise ValueError("a trail entry cannot be older than 1970")
    return value


def at_micros(entry: TrailEntry) -> int:
    return micros(entry.at)


_dumps = compact_unicode

# The stored JSON is a list, in this order (positions: the Redis scripts read 4, 5 and 15,
# counting from 1 as Lua does): [at µs, protocol, direction, charger_id, partner, action,
# message_type, message_id, correlation_id, status, ocpi_status, method, path, size,
# transaction_id, body, truncated]. A list encodes and decodes faster than an object.
POSITIONS: Final = {
    "charger_id": 3,
    "partner": 4,
    "action": 5,
    "transaction_id": 14,
}


def encode(e: TrailEntry) -> str:
    """The entry's JSON (without ``id``)."""
    return encode_record(at_micros(e), trail_record(e))


def encode_record(at: int, record: TrailRecord) -> str:
    """A record's JSON, its time ``at`` in µs (a record holds the fields in the stored
    order: one C encoder call on the tuple, no list built)."""
    text = _dumps((at, *record[1:]))
    if text.isascii():
        return text
    return _dumps([at, *(clean(v) if isinstance(v, str) else v for v in record[1:])])


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def decode(entry_id: str, raw: str | bytes) -> TrailEntry:
    v = json.loads(raw)
    return TrailEntry(
        _EPOCH + timedelta(microseconds=int(v[0])),
        str(v[1]),
        str(v[2]),
        _text(v[3]),
        _text(v[4]),
        _text(v[5]),
        _text(v[6]),
        _text(v[7]),
        _text(v[8]),
        _text(v[9]),
        None if v[10] is None else int(v[10]),
        _text(v[11]),
        _text(v[12]),
        int(v[13]),
        _text(v[14]),
        _text(v[15]),
        bool(v[16]),
        entry_id,
    )
