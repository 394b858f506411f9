"""The message trail on Redis (key names: :mod:`gateway.storage.redis_keys`).

Entries live in one hash (id -> JSON); their ids in sorted sets whose members all have
score 0, so that a set is ordered by the ids' bytes (``{at:016d}{seq:016d}``: time,
then append order) and a time range or a cursor is one ``ZRANGEBYLEX``: ``trail`` (all
entries) and one set per charger, partner and OCPP transaction id. An append is one
script (the sequence, the hash and every index at once); so is a prune, which reads
each entry it deletes to remove it from its indexes too (an index left empty is gone,
as Redis drops empty sets). A query reads the most selective index in chunks and
checks the other filters on the entries; it looks at no more than ``SCAN_BUDGET`` ids
per call, answering a shorter page and a cursor when the filters matched few.

Lost answers (see :mod:`gateway.storage.redis`): ``append_batch`` is not sent again
(a repeat would store the batch twice): it fails with ``StorageUnavailable``, and the
trail counts the batch as dropped. ``prune`` and every read are sent again (a repeat
deletes what is still due, or reads again).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from gateway.storage import trail_codec
from gateway.storage.base import TrailEntry, TrailRecord, trail_record
from gateway.storage.redis_batch import Arg, CommandBatcher, Script
from gateway.storage.redis_keys import RedisKeys

# KEYS: seq, trail, entries. ARGV: the charger, partner and transaction index prefixes,
# then per entry: its 16-digit time, charger id, partner, transaction id ("" for none)
# and JSON.
_APPEND = """
local n = (#ARGV - 3) / 5
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n
for i = 0, n - 1 do
  local b = 4 + i * 5
  local id = ARGV[b] .. string.format('%016d', first + i + 1)
  redis.call('ZADD', KEYS[2], 0, id)
  redis.call('HSET', KEYS[3], id, ARGV[b + 4])
  if ARGV[b + 1] ~= '' then redis.call('ZADD', ARGV[1] .. ARGV[b + 1], 0, id) end
  if ARGV[b + 2] ~= '' then redis.call('ZADD', ARGV[2] .. ARGV[b + 2], 0, id) end
  if ARGV[b + 3] ~= '' then redis.call('ZADD', ARGV[3] .. ARGV[b + 3], 0, id) end
end
return n
"""

# KEYS: trail, entries. ARGV: the index prefixes (3), the exclusive upper bound of the
# ids older than the cutoff ("(" and its 16-digit time), keep, limit.
_PRUNE = """
local limit = tonumber(ARGV[6])
local victims = redis.call('ZRANGEBYLEX', KEYS[1], '-', ARGV[4], 'LIMIT', 0, limit)
local room = limit - #victims
if room > 0 then
  local excess = redis.call('ZCARD', KEYS[1]) - #victims - tonumber(ARGV[5])
  if excess > 0 then
    local more = redis.call('ZRANGE', KEYS[1], #victims, #victims + math.min(room, excess) - 1)
    for _, id in ipairs(more) do victims[#victims + 1] = id end
  end
end
for _, id in ipairs(victims) do
  local data = redis.call('HGET', KEYS[2], id)
  if data then
    -- trail_codec.encode: [at, protocol, direction, charger_id, partner, ..., 15: tx]
    local entry = cjson.decode(data)
    if type(entry[4]) == 'string' then redis.call('ZREM', ARGV[1] .. entry[4], id) end
    if type(entry[5]) == 'string' then redis.call('ZREM', ARGV[2] .. entry[5], id) end
    if type(entry[15]) == 'string' then redis.call('ZREM', ARGV[3] .. entry[15], id) end
    redis.call('HDEL', KEYS[2], id)
  end
  redis.call('ZREM', KEYS[1], id)
end
return #victims
"""

APPEND_TRAIL: Final = Script(_APPEND)
PRUNE_TRAIL: Final = Script(_PRUNE)
# Ids a query looks at per call at most (a page with few matches stops early).
SCAN_BUDGET: Final = 20_000
_CHUNK: Final = 500
# Records per append script (each blocks Redis while it runs): 3 prefixes, 5 per record.
_APPEND_ARGS: Final = 3 + 5 * 500


class RedisTrailStore:
    def __init__(self, db: CommandBatcher, keys: RedisKeys) -> None:
        self._db = db
        self._keys = keys
        self._prefixes: list[Arg] = [
            keys.trail_charger_prefix,
            keys.trail_partner_prefix,
            keys.trail_tx_prefix,
        ]

    async def close(self) -> None:
        return None  # the backend's connection is the store's, closed with it

    async def append_batch(self, entries: Sequence[TrailEntry]) -> None:
        if entries:
            await self.append_records(lambda: [trail_record(e) for e in entries])

    async def append_records(self, make: Callable[[], Iterable[TrailRecord]]) -> None:
        keys = self._keys
        script_keys: list[Arg] = [keys.trail_seq, keys.trail, keys.trail_entries]
        args: list[Arg] = list(self._prefixes)
        micros, clean, encode = trail_codec.micros, trail_codec.clean, trail_codec.encode_record
        for r in make():
            at = micros(r[0])
            charger, partner, tx = r[3], r[4], r[14]
            args += (
                f"{at:016d}",
                "" if charger is None else clean(charger),
                "" if partner is None else clean(partner),
                clean(tx) if tx else "",
                encode(at, r),
            )
            if len(args) >= _APPEND_ARGS:
                await self._db.evalsha(APPEND_TRAIL, script_keys, args, retry=False)
                args = list(self._prefixes)
        if len(args) > len(self._prefixes):
            await self._db.evalsha(APPEND_TRAIL, script_keys, args, retry=False)

    async def query(
        self,
        *,
        charger_id: str | None = None,
        partner: str | None = None,
        transaction_id: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: str | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> tuple[list[TrailEntry], str | None]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        low = "-" if since is None else "[" + trail_codec.time_part(since, "since")
        high = "+" if until is None else "(" + trail_codec.time_part(until, "until")
        if after is not None:
            cursor = "(" + trail_codec.check_cursor(after)
            if newest_first:
                high = cursor if high == "+" or cursor[1:] < high[1:] else high
            else:
                low = cursor if low == "-" or cursor[1:] >= low[1:] else low
        charger_id, partner, transaction_id, action = (
            trail_codec.optional(v) for v in (charger_id, partner, transaction_id, action)
        )
        index = self._keys.trail_index(charger_id, partner, transaction_id)
        wanted: dict[int, str] = {}
        for name, value in (
            ("charger_id", charger_id),
            ("partner", partner),
            ("transaction_id", transaction_id),
            ("action", action),
        ):
            if value is not None:
                wanted[trail_codec.POSITIONS[name]] = value
        found: list[TrailEntry] = []
        scanned = 0
        last: str | None = None
        while scanned < SCAN_BUDGET:
            chunk = min(_CHUNK, SCAN_BUDGET - scanned)
            if newest_first:
                ids = await self._db.command(
                    "ZREVRANGEBYLEX", index, high, low, "LIMIT", 0, chunk, retry=True
                )
            else:
                ids = await self._db.command(
                    "ZRANGEBYLEX", index, low, high, "LIMIT", 0, chunk, retry=True
                )
            if not ids:
                return found, None
            names = [_text(i) for i in ids]
            scanned += len(names)
            values = await self._db.command("HMGET", self._keys.trail_entries, *names, retry=True)
            for entry_id, raw in zip(names, values, strict=True):
                if raw is None:  # pruned between the two reads
                    continue
                data: list[Any] = json.loads(raw)
                if any(data[k] != v for k, v in wanted.items()):
                    continue
                if len(found) == limit:
                    return found, found[-1].id  # one more matches: a next page exists
                found.append(trail_codec.decode(entry_id, raw))
            last = names[-1]
            if len(names) < chunk:
                return found, None
            if newest_first:
                high = "(" + last
            else:
                low = "(" + last
        # Budget spent: the caller goes on from the last id looked at.
        if len(found) == limit:
            return found, found[-1].id
        return found, last

    async def prune(self, *, before: datetime, keep: int, limit: int = 1000) -> int:
        if limit < 0 or keep < 0:
            raise ValueError("limit and keep must not be negative")
        if limit == 0:
            return 0
        keys = self._keys
        cutoff = "(" + trail_codec.time_part(before, "before")
        result = await self._db.evalsha(
            PRUNE_TRAIL,
            [keys.trail, keys.trail_entries],
            [*self._prefixes, cutoff, keep, limit],
            retry=True,
        )
        return int(result)

    async def count(self) -> int:
        return int(await self._db.command("ZCARD", self._keys.trail, retry=True))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
