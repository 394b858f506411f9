"""Device models, report states and alerts on Redis (key names:
:mod:`gateway.storage.redis_keys`). Every write is one script, so atomic: a NotifyReport
part (its attributes and the report's state), a request noted, values updated, alerts
added (with the clearings they bring and the trim to the newest ``keep``). Scripts that
drop old reports name their keys from the prefixes they are given (as the transaction
scripts of :mod:`gateway.storage.redis` do).

Listings read the charger's whole device model (three hashes) and filter and order it
here: a charger has at most a few thousand attributes, read in one pipelined round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from gateway.domain.device_model import (
    Alert,
    DeviceModelQuery,
    DeviceVariable,
    ReportStatus,
    ValueUpdate,
)
from gateway.storage import codec
from gateway.storage import device_model as dm
from gateway.storage.redis_batch import CommandBatcher, Script
from gateway.storage.redis_keys import RedisKeys

# Shared by the report scripts: KEYS[1] the charger's report index; ARGV[1] the request
# id, ARGV[2] first news (µs), ARGV[3] the report hash prefix, ARGV[4] the seq set
# prefix, ARGV[5] ":" .. charger id, ARGV[6] how many reports to keep.
_INDEX_AND_TRIM: Final = """
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[6])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[1], 0, extra - 1)
  for _, rid in ipairs(old) do
    redis.call('DEL', ARGV[3] .. rid .. ARGV[5], ARGV[4] .. rid .. ARGV[5])
    redis.call('ZREM', KEYS[1], rid)
  end
end
"""

# KEYS: index, report hash, seqs, dm, dm-val. ARGV: the six above, then seqNo, "1" when
# tbc, the update time (text), the number of attributes, then key, meta, value of each.
APPLY_REPORT: Final = Script(
    """
redis.call('SADD', KEYS[3], ARGV[7])
if ARGV[8] ~= '1' then redis.call('HSET', KEYS[2], 'last', ARGV[7]) end
redis.call('HSET', KEYS[2], 'upd', ARGV[9])
redis.call('HINCRBY', KEYS[2], 'n', ARGV[10])
local i = 11
while i < #ARGV do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 2])
  i = i + 3
end
"""
    + _INDEX_AND_TRIM
    + "return 1\n"
)

# KEYS: index, report hash. ARGV: the six above, then kind ("" none), requested at
# (text), answer ("" none).
NOTE_REQUEST: Final = Script(
    """
if ARGV[7] ~= '' then redis.call('HSET', KEYS[2], 'kind', ARGV[7]) end
redis.call('HSETNX', KEYS[2], 'req', ARGV[8])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[2], 'ans', ARGV[9]) end
"""
    + _INDEX_AND_TRIM
    + "return 1\n"
)

# KEYS: dm, dm-val, dm-reboot. ARGV: key, bare description, value, "1" reboot, per update.
UPDATE_VALUES: Final = Script(
    """
local i = 1
while i < #ARGV do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
  if ARGV[i + 3] == '1' then
    redis.call('SADD', KEYS[3], ARGV[i])
  else
    redis.call('SREM', KEYS[3], ARGV[i])
  end
  i = i + 4
end
return 1
"""
)

# KEYS: alerts, ids, active, cleared, seq. ARGV: keep, then per alert: JSON, match,
# "1" raises, "1" clears, received (µs). Returns {seqs assigned, {seq, cleared at}...
# of the alerts cleared, trimmed seqs}.
ADD_ALERTS: Final = Script(
    """
local seqs, cleared, dropped = {}, {}, {}
local i = 2
while i < #ARGV do
  if ARGV[i + 3] == '1' then
    local active = redis.call('HGETALL', KEYS[3])
    for j = 1, #active, 2 do
      if active[j + 1] == ARGV[i + 1] then
        redis.call('HDEL', KEYS[3], active[j])
        redis.call('HSET', KEYS[4], active[j], ARGV[i + 4])
        table.insert(cleared, active[j])
        table.insert(cleared, ARGV[i + 4])
      end
    end
  end
  local seq = redis.call('INCR', KEYS[5])
  redis.call('HSET', KEYS[1], seq, ARGV[i])
  redis.call('RPUSH', KEYS[2], seq)
  if ARGV[i + 2] == '1' then redis.call('HSET', KEYS[3], seq, ARGV[i + 1]) end
  table.insert(seqs, seq)
  i = i + 5
end
local keep = tonumber(ARGV[1])
while redis.call('LLEN', KEYS[2]) > keep do
  local old = redis.call('LPOP', KEYS[2])
  redis.call('HDEL', KEYS[1], old)
  redis.call('HDEL', KEYS[3], old)
  redis.call('HDEL', KEYS[4], old)
  table.insert(dropped, old)
end
return {seqs, cleared, dropped}
"""
)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: Sequence[Any]) -> dict[str, Any]:
    return {_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


class RedisDeviceModelStore:
    def __init__(self, db: CommandBatcher, keys: RedisKeys) -> None:
        self._db = db
        self._keys = keys

    def _report_args(self, charger_id: str, request_id: int, first_at: int) -> list[Any]:
        prefix = self._keys.prefix
        return [
            request_id,
            first_at,
            f"{prefix}dm-report:",
            f"{prefix}dm-report-seqs:",
            f":{charger_id}",
            dm.REPORTS_KEPT,
        ]

    async def apply_report(
        self,
        charger_id: str,
        request_id: int,
        seq_no: int,
        tbc: bool,
        rows: Sequence[DeviceVariable],
        at: datetime,
    ) -> ReportStatus:
        dm.check_charger(charger_id)
        dm.check_report_part(seq_no, request_id)
        args = self._report_args(charger_id, request_id, codec.time_key(at, "at"))
        args += [seq_no, "1" if tbc else "0", codec.encode_time(at, "at"), len(rows)]
        for row in rows:
            dm.check_row(charger_id, row)
            args += [row.sort_key, dm.encode_meta(row), dm.row_value(row)]
        report, seqs = self._keys.device_report(charger_id, request_id)
        described, values, _ = self._keys.device_model(charger_id)
        keys = [self._keys.device_reports(charger_id), report, seqs, described, values]
        # Not retried when the answer is lost: the attribute count would count twice.
        await self._db.evalsha(APPLY_REPORT, keys, args)
        found = await self._report(charger_id, request_id)
        assert found is not None
        return found

    async def note_request(
        self,
        charger_id: str,
        request_id: int,
        *,
        kind: str | None,
        at: datetime,
        answer: str | None = None,
    ) -> None:
        dm.check_charger(charger_id)
        dm.check_report_part(0, request_id)
        args = self._report_args(charger_id, request_id, codec.time_key(at, "at"))
        args += [kind or "", codec.encode_time(at, "at"), answer or ""]
        report, _ = self._keys.device_report(charger_id, request_id)
        keys = [self._keys.device_reports(charger_id), report]
        await self._db.evalsha(NOTE_REQUEST, keys, args, retry=True)

    async def _report(self, charger_id: str, request_id: int) -> ReportStatus | None:
        report, seqs = self._keys.device_report(charger_id, request_id)
        fields_f = self._db.command("HGETALL", report, retry=True)
        seqs_f = self._db.command("SMEMBERS", seqs, retry=True)
        fields, members = _pairs(await fields_f), await seqs_f
        if not fields:
            return None

        def text(name: str) -> str | None:
            value = fields.get(name)
            return None if value is None else _text(value)

        req, upd, last = text("req"), text("upd"), text("last")
        return ReportStatus(
            charger_id=charger_id,
            request_id=request_id,
            kind=text("kind"),
            requested_at=None if req is None else codec.decode_time(req),
            answer=text("ans"),
            seq_nos=frozenset(int(m) for m in members),
            last_seq_no=None if last is None else int(last),
            variables=int(text("n") or 0),
            updated_at=None if upd is None else codec.decode_time(upd),
        )

    async def reports(self, charger_id: str) -> list[ReportStatus]:
        ids = await self._db.command(
            "ZREVRANGE", self._keys.device_reports(charger_id), 0, -1, retry=True
        )
        found = [await self._report(charger_id, int(i)) for i in ids]
        return [r for r in found if r is not None]

    async def update_values(self, charger_id: str, updates: Sequence[ValueUpdate]) -> None:
        dm.check_charger(charger_id)
        args: list[Any] = []
        for u in updates:
            dm.check_update(u)
            args += [
                u.key.text(u.attribute_type),
                dm.bare_meta(u.key, u.attribute_type),
                dm.update_value(u),
                "1" if u.reboot_required else "0",
            ]
        if args:
            await self._db.evalsha(
                UPDATE_VALUES, list(self._keys.device_model(charger_id)), args, retry=True
            )

    async def query(
        self, charger_id: str, query: DeviceModelQuery, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[DeviceVariable], int]:
        codec.check_page(limit, offset)
        described, values, reboot = self._keys.device_model(charger_id)
        metas_f = self._db.command("HGETALL", described, retry=True)
        values_f = self._db.command("HGETALL", values, retry=True)
        reboot_f = self._db.command("SMEMBERS", reboot, retry=True)
        metas, vals = _pairs(await metas_f), _pairs(await values_f)
        marked = {_text(m) for m in await reboot_f}
        rows = [
            dm.decode(charger_id, meta, vals.get(key), key in marked)
            for key, meta in sorted(metas.items())
        ]
        matching = [r for r in rows if query.matches(r)]
        return matching[offset : offset + limit], len(matching)

    async def add_alerts(
        self, charger_id: str, alerts: Sequence[Alert], *, keep: int
    ) -> list[Alert]:
        dm.check_charger(charger_id)
        dm.check_keep(keep)
        args: list[Any] = [keep]
        encoded = []
        for alert in alerts:
            if alert.charger_id != charger_id:
                raise ValueError(f"an alert of charger {alert.charger_id!r} among {charger_id!r}'s")
            data = dm.encode_alert(alert)
            encoded.append(data)
            args += [
                data,
                alert.match,
                "1" if alert.raises else "0",
                "1" if alert.cleared else "0",
                codec.time_key(alert.received_at, "received_at"),
            ]
        if not encoded:
            return []
        # Not retried: a lost answer must not store the alerts twice.
        seqs, cleared, dropped = await self._db.evalsha(
            ADD_ALERTS, list(self._keys.alerts(charger_id)), args
        )
        cleared_at = {int(cleared[i]): int(cleared[i + 1]) for i in range(0, len(cleared), 2)}
        gone = {int(d) for d in dropped}
        return [
            dm.decode_alert(charger_id, int(seq), data, cleared_at.get(int(seq)))
            for seq, data in zip(seqs, encoded, strict=True)
            if int(seq) not in gone
        ]

    async def alerts(
        self,
        charger_id: str,
        *,
        active: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Alert]:
        codec.check_page(limit, offset)
        records, ids, active_key, cleared_key, _ = self._keys.alerts(charger_id)
        all_f = self._db.command("LRANGE", ids, 0, -1, retry=True)
        active_f = self._db.command("HKEYS", active_key, retry=True)
        seqs = [int(s) for s in await all_f]
        live = {int(s) for s in await active_f}
        if active is True:
            seqs = [s for s in seqs if s in live]
        elif active is False:
            seqs = [s for s in seqs if s not in live]
        page = sorted(seqs, reverse=True)[offset : offset + limit]
        if not page:
            return []
        data_f = self._db.command("HMGET", records, *page, retry=True)
        when_f = self._db.command("HMGET", cleared_key, *page, retry=True)
        data, when = await data_f, await when_f
        return [
            dm.decode_alert(charger_id, seq, d, None if w is None else int(w))
            for seq, d, w in zip(page, data, when, strict=True)
            if d is not None
        ]

    async def delete(self, charger_id: str) -> None:
        rids = await self._db.command(
            "ZRANGE", self._keys.device_reports(charger_id), 0, -1, retry=True
        )
        keys: list[str] = [*self._keys.device_model(charger_id), *self._keys.alerts(charger_id)]
        keys.append(self._keys.device_reports(charger_id))
        for rid in rids:
            keys += self._keys.device_report(charger_id, int(rid))
        await self._db.command("DEL", *keys, retry=True)
