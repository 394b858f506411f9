"""Redis backend (redis.asyncio), used when a Redis URL is configured.

Key names: :mod:`gateway.storage.redis_keys`. Values: the JSON of
:mod:`gateway.storage.codec`, as for SQLite.

Every multi-key write is one Lua script call (atomic, one round trip): creating or
saving a transaction with its readings and index entries; writing a roaming document
with its indexes *and* the outbox items that go with it; every outbox state change.
Listings that return a page and a total, or items from an index, read in one script
too, so that they see one state. Redis does not roll a
script back when a command inside it fails at run time, so the scripts check
everything that can be refused *before* their first write, and the gateway must own
its prefix (a key of an unexpected type is the one thing that could still break a
script half way). Durability is the Redis server's: run it with ``appendonly yes``
(``appendfsync everysec`` loses up to a second of writes on a power loss, ``always``
none).

Each awaited command costs a round trip and ~100 µs of Python CPU, so hot paths
(``create``, ``save``, ``find``) are one call each. No automatic retries: a command
whose answer was lost may have been applied, and retrying a ``save`` would append
its readings twice; callers see :class:`StorageError` instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Any, Final, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, WatchError
from redis.typing import EncodableT, FieldT

from gateway.domain.errors import Conflict
from gateway.domain.models import (
    Charger,
    ChargerState,
    ConnectorState,
    ConnectorStatus,
    LocalToken,
    MeterReading,
    Transaction,
    TransactionStatus,
)
from gateway.storage import codec
from gateway.storage.base import Document, OutboxItem, OutboxStatus, StorageError, Store
from gateway.storage.redis_keys import LAYOUT_VERSION, RedisKeys

# KEYS: 1 tx, 2 tx readings, 3 tx-by-start (all), 4 tx-by-start (charger),
#       5 tx-by-ocpp-id (charger), 6 tx-active (charger)
# ARGV: 1 tx id, 2 ocpp_id, 3 tx JSON, 4 started_at score, 5 "1" if active,
#       6 key prefix of transactions, 7... readings JSON
_WRITE_TX: Final = """
redis.call('SET', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
if ARGV[5] == '1' then
  redis.call('SADD', KEYS[6], ARGV[1])
else
  redis.call('SREM', KEYS[6], ARGV[1])
end
for i = 7, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
"""

# -> {1} created; {0, existing JSON} the (charger_id, ocpp_id) exists; {-1} the id
# exists with another (charger_id, ocpp_id).
_CREATE_TX: Final = (
    """
local existing = redis.call('HGET', KEYS[5], ARGV[2])
if existing then
  return {0, redis.call('GET', ARGV[6] .. existing)}
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {-1}
end
redis.call('HSET', KEYS[5], ARGV[2], ARGV[1])
"""
    + _WRITE_TX
    + "return {1}"
)

# -> 1 saved; -1 the (charger_id, ocpp_id) belongs to another id; -2 the id exists
# with another (charger_id, ocpp_id).
_SAVE_TX: Final = (
    """
local owner = redis.call('HGET', KEYS[5], ARGV[2])
if owner then
  if owner ~= ARGV[1] then
    return -1
  end
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  return -2
else
  redis.call('HSET', KEYS[5], ARGV[2], ARGV[1])
end
"""
    + _WRITE_TX
    + "return 1"
)

# KEYS: 1 tx-by-ocpp-id (charger); ARGV: 1 ocpp_id, 2 key prefix of transactions
_FIND_TX: Final = """
local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then
  return false
end
return redis.call('GET', ARGV[2] .. id)
"""

# KEYS: 1 schema; ARGV: 1 this gateway's layout version. Sets the version unless a
# newer one is there (every upgrade so far only adds keys); returns the one found.
_CLAIM_LAYOUT: Final = """
local found = tonumber(redis.call('GET', KEYS[1]) or '0')
if found < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return found
"""

# -- outbox ----------------------------------------------------------------------------
#
# The part every outbox-writing script shares. KEYS: 1 outbox-seq, 2 outbox-due,
# 3 outbox-all; ARGV: 1 item key prefix, 2 ordering-key set prefix, 3 status set
# prefix, 4 partner set prefix, 5 partner-status set prefix (see redis_keys); the
# script's own KEYS and ARGV follow. An item in ARGV is 7 values (_item_args): id,
# partner_id, ordering_key, next_attempt_at (µs), data JSON, attempts, last_error JSON.
_OUTBOX_LIB: Final = """
local function due_member(seq, id)
  return string.format('%020d', tonumber(seq)) .. ':' .. id
end
local function index_status(id, partner, seq, status)
  redis.call('ZADD', ARGV[3] .. status, seq, id)
  redis.call('ZADD', ARGV[5] .. status .. ':' .. partner, seq, id)
end
local function unindex_status(id, partner, status)
  redis.call('ZREM', ARGV[3] .. status, id)
  redis.call('ZREM', ARGV[5] .. status .. ':' .. partner, id)
end
local function set_status(id, partner, seq, old, new)
  unindex_status(id, partner, old)
  index_status(id, partner, seq, new)
  redis.call('HSET', ARGV[1] .. id, 'status', new)
end
-- The id of the first of the n items from ARGV[at] that is already stored, or nil.
local function first_taken(at, n)
  for i = 0, n - 1 do
    local id = ARGV[at + i * 7]
    if redis.call('EXISTS', ARGV[1] .. id) == 1 then
      return id
    end
  end
  return nil
end
-- Store the n items from ARGV[at] (checked by first_taken); returns their seqs.
local function enqueue(at, n)
  local seqs = {}
  for i = 0, n - 1 do
    local j = at + i * 7
    local id, partner, okey, next_at = ARGV[j], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]
    local seq = redis.call('INCR', KEYS[1])
    local key_set = ARGV[2] .. okey
    if redis.call('EXISTS', key_set) == 0 then  -- nothing undelivered: the new head
      redis.call('ZADD', KEYS[2], next_at, due_member(seq, id))
    end
    redis.call('ZADD', key_set, seq, id)
    redis.call('HSET', ARGV[1] .. id, 'data', ARGV[j + 4], 'partner_id', partner,
      'ordering_key', okey, 'seq', seq, 'status', 'pending', 'attempts', ARGV[j + 5],
      'last_error', ARGV[j + 6], 'next_attempt_at', next_at)
    redis.call('ZADD', KEYS[3], seq, id)
    redis.call('ZADD', ARGV[4] .. partner, seq, id)
    index_status(id, partner, seq, 'pending')
    seqs[#seqs + 1] = seq
  end
  return seqs
end
-- f: the item's status, partner_id, ordering_key, seq. DONE; and if it headed its
-- key, the key's next undelivered item becomes the head (due when pending).
local function mark_done(id, f)
  local key_set = ARGV[2] .. f[3]
  local head = redis.call('ZRANGE', key_set, 0, 0)[1]
  redis.call('ZREM', key_set, id)
  redis.call('ZREM', KEYS[2], due_member(f[4], id))
  set_status(id, f[2], f[4], f[1], 'done')
  if head == id then
    local next_id = redis.call('ZRANGE', key_set, 0, 0)[1]
    if next_id then
      local g = redis.call('HMGET', ARGV[1] .. next_id, 'status', 'next_attempt_at', 'seq')
      if g[1] == 'pending' then
        redis.call('ZADD', KEYS[2], g[2], due_member(g[3], next_id))
      end
    end
  end
end
"""

# ARGV: 6 number of items, 7... items. -> {1, seq...} or {0, id already stored}
_ENQUEUE: Final = (
    _OUTBOX_LIB
    + """
local n = tonumber(ARGV[6])
local taken = first_taken(7, n)
if taken then
  return {0, taken}
end
local seqs = enqueue(7, n)
table.insert(seqs, 1, 1)
return seqs
"""
)

# ARGV: 6 item id. -> 1 done, 0 unknown or already done
_COMPLETE: Final = (
    _OUTBOX_LIB
    + """
local f = redis.call('HMGET', ARGV[1] .. ARGV[6], 'status', 'partner_id', 'ordering_key', 'seq')
if not f[1] or f[1] == 'done' then
  return 0
end
mark_done(ARGV[6], f)
return 1
"""
)

# ARGV: 6 item id. -> 1 discarded, 0 not failed
_DISCARD: Final = (
    _OUTBOX_LIB
    + """
local f = redis.call('HMGET', ARGV[1] .. ARGV[6], 'status', 'partner_id', 'ordering_key', 'seq')
if f[1] ~= 'failed' then
  return 0
end
mark_done(ARGV[6], f)
return 1
"""
)

# ARGV: 6 item id, 7 next_attempt_at (µs), 8 last_error JSON. -> 1, or 0 not pending
_RETRY_LATER: Final = (
    _OUTBOX_LIB
    + """
local id = ARGV[6]
local key = ARGV[1] .. id
local f = redis.call('HMGET', key, 'status', 'seq')
if f[1] ~= 'pending' then
  return 0
end
redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'last_error', ARGV[8], 'next_attempt_at', ARGV[7])
redis.call('ZADD', KEYS[2], 'XX', ARGV[7], due_member(f[2], id))  -- if it is the head
return 1
"""
)

# ARGV: 6 item id, 7 last_error JSON. -> 1, or 0 not pending
_FAIL: Final = (
    _OUTBOX_LIB
    + """
local id = ARGV[6]
local key = ARGV[1] .. id
local f = redis.call('HMGET', key, 'status', 'partner_id', 'seq')
if f[1] ~= 'pending' then
  return 0
end
redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'last_error', ARGV[7])
set_status(id, f[2], f[3], 'pending', 'failed')
redis.call('ZREM', KEYS[2], due_member(f[3], id))
return 1
"""
)

# ARGV: 6 item id, 7 now (µs). -> 1 replayed, 0 not failed
_REPLAY: Final = (
    _OUTBOX_LIB
    + """
local id = ARGV[6]
local key = ARGV[1] .. id
local f = redis.call('HMGET', key, 'status', 'partner_id', 'seq', 'ordering_key')
if f[1] ~= 'failed' then
  return 0
end
redis.call('HSET', key, 'next_attempt_at', ARGV[7])
set_status(id, f[2], f[3], 'failed', 'pending')
if redis.call('ZRANGE', ARGV[2] .. f[4], 0, 0)[1] == id then
  redis.call('ZADD', KEYS[2], ARGV[7], due_member(f[3], id))
end
return 1
"""
)

# The item hash fields a reader decodes, in this order (_decode_item).
_ITEM_FIELDS: Final = ("data", "seq", "status", "attempts", "last_error", "next_attempt_at")
_LOAD_ITEM: Final = (
    "redis.call('HMGET', ARGV[1] .. id, " + ", ".join(f"'{field}'" for field in _ITEM_FIELDS) + ")"
)

# KEYS: 1 outbox-due; ARGV: 1 item key prefix, 2 now (µs), 3 limit. -> items
_DUE: Final = f"""
local out = {{}}
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, member in ipairs(members) do
  local id = string.sub(member, 22)
  out[#out + 1] = {_LOAD_ITEM}
end
return out
"""

# KEYS: 1 an index by seq; ARGV: 1 item key prefix, 2 first rank, 3 last rank. -> items
_LIST_ITEMS: Final = f"""
local out = {{}}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[3])) do
  out[#out + 1] = {_LOAD_ITEM}
end
return out
"""

# -- documents ---------------------------------------------------------------------------
#
# With _OUTBOX_LIB: its KEYS 1-3 and ARGV 1-5, then KEYS: 4 documents, 5 owners,
# 6 by-time; ARGV: 6 document key, 7 owner-set prefix, 8 number of items, 9... items,
# then (put only) JSON, score, '1' if it has an owner, owner.
# -> {1, seq...}; {0, id already stored}; {-1} (delete) the document is not there.
_DOC_TAIL: Final = """
local doc_key, owner_prefix, n = ARGV[6], ARGV[7], tonumber(ARGV[8])
local rest = 9 + n * 7
"""

_PUT_DOCUMENT: Final = (
    _OUTBOX_LIB
    + _DOC_TAIL
    + """
local taken = first_taken(9, n)
if taken then
  return {0, taken}
end
local json, score, has_owner, owner = ARGV[rest], ARGV[rest + 1], ARGV[rest + 2], ARGV[rest + 3]
local old_owner = redis.call('HGET', KEYS[5], doc_key)
if old_owner and (has_owner ~= '1' or old_owner ~= owner) then
  redis.call('ZREM', owner_prefix .. old_owner, doc_key)
end
redis.call('HSET', KEYS[4], doc_key, json)
redis.call('ZADD', KEYS[6], score, doc_key)
if has_owner == '1' then
  redis.call('HSET', KEYS[5], doc_key, owner)
  redis.call('ZADD', owner_prefix .. owner, score, doc_key)
elseif old_owner then
  redis.call('HDEL', KEYS[5], doc_key)
end
local seqs = enqueue(9, n)
table.insert(seqs, 1, 1)
return seqs
"""
)

_DELETE_DOCUMENT: Final = (
    _OUTBOX_LIB
    + _DOC_TAIL
    + """
if redis.call('HEXISTS', KEYS[4], doc_key) == 0 then
  return {-1}
end
local taken = first_taken(9, n)
if taken then
  return {0, taken}
end
redis.call('HDEL', KEYS[4], doc_key)
redis.call('ZREM', KEYS[6], doc_key)
local old_owner = redis.call('HGET', KEYS[5], doc_key)
if old_owner then
  redis.call('ZREM', owner_prefix .. old_owner, doc_key)
  redis.call('HDEL', KEYS[5], doc_key)
end
local seqs = enqueue(9, n)
table.insert(seqs, 1, 1)
return seqs
"""
)

# KEYS: 1 by-time or by-owner set, 2 documents; ARGV: 1 min score, 2 max score,
# 3 offset, 4 limit. -> {total, JSON...}
_LIST_DOCUMENTS: Final = """
local out = {redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[2])}
if tonumber(ARGV[4]) > 0 then
  local keys = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', ARGV[3], ARGV[4])
  for _, key in ipairs(keys) do
    out[#out + 1] = redis.call('HGET', KEYS[2], key)
  end
end
return out
"""


async def open_redis_store(
    url: str, *, prefix: str = "gw:", max_connections: int = 32, socket_timeout: float = 10.0
) -> Store:
    """Connect to the Redis at ``url`` and use the keys under ``prefix``.

    ``max_connections`` bounds the pool; more concurrent commands wait for a free
    connection (up to ``socket_timeout`` seconds, which also bounds every command)
    instead of failing.
    """
    backend = await _RedisBackend.open(url, prefix, max_connections, socket_timeout)
    return Store(
        chargers=RedisChargerStore(backend),
        charger_states=RedisChargerStateStore(backend),
        connectors=RedisConnectorStore(backend),
        transactions=RedisTransactionStore(backend),
        tokens=RedisTokenStore(backend),
        backend=backend,
        locations=RedisDocumentStore(backend, "locations"),
        tariffs=RedisDocumentStore(backend, "tariffs"),
        partners=RedisDocumentStore(backend, "partners"),
        ocpi_tokens=RedisDocumentStore(backend, "ocpi_tokens"),
        sessions=RedisDocumentStore(backend, "sessions"),
        cdrs=RedisDocumentStore(backend, "cdrs"),
        outbox=RedisOutboxStore(backend),
    )


class _Guard:
    """``with guard:`` around every command: refuses use after ``close()`` and turns
    redis-py's errors into :class:`StorageError`. One per backend."""

    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False

    def __enter__(self) -> None:
        if self.closed:
            raise StorageError("the Redis store is closed")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, RedisError):
            raise StorageError(f"Redis: {exc}") from exc


class _RedisBackend:
    """The client, the key names and the scripts of one store; the store's ``backend``."""

    def __init__(self, client: Redis, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys
        self.guard = _Guard()
        self.create_tx = client.register_script(_CREATE_TX)
        self.save_tx = client.register_script(_SAVE_TX)
        self.find_tx = client.register_script(_FIND_TX)
        self.enqueue = client.register_script(_ENQUEUE)
        self.complete = client.register_script(_COMPLETE)
        self.discard = client.register_script(_DISCARD)
        self.retry_later = client.register_script(_RETRY_LATER)
        self.fail = client.register_script(_FAIL)
        self.replay = client.register_script(_REPLAY)
        self.due = client.register_script(_DUE)
        self.list_items = client.register_script(_LIST_ITEMS)
        self.put_document = client.register_script(_PUT_DOCUMENT)
        self.delete_document = client.register_script(_DELETE_DOCUMENT)
        self.list_documents = client.register_script(_LIST_DOCUMENTS)
        # The KEYS and ARGV that every outbox-writing script starts with (_OUTBOX_LIB).
        self.outbox_keys = [keys.outbox_seq, keys.outbox_due, keys.outbox_all]
        self.outbox_args = [
            keys.outbox_item_prefix,
            keys.outbox_key_prefix,
            keys.outbox_status_prefix,
            keys.outbox_partner_prefix,
            keys.outbox_partner_status_prefix,
        ]

    @classmethod
    async def open(
        cls, url: str, prefix: str, max_connections: int, socket_timeout: float
    ) -> _RedisBackend:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),  # see the module docstring
        )
        client = Redis.from_pool(pool)
        keys = RedisKeys(prefix)
        try:
            with _Guard():
                version = await client.eval(_CLAIM_LAYOUT, 1, keys.schema, LAYOUT_VERSION)
            if int(version) > LAYOUT_VERSION:
                raise StorageError(
                    f"Redis keyspace {prefix!r} has layout {int(version)}, newer than this"
                    f" gateway's {LAYOUT_VERSION}"
                )
        except BaseException:
            await client.aclose()
            raise
        return cls(client, keys)

    async def close(self) -> None:
        if not self.guard.closed:
            self.guard.closed = True
            await self.client.aclose()


def _decode_all(values: Iterable[bytes | str | None]) -> list[dict[str, Any]]:
    return [codec.loads(value) for value in values if value is not None]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisChargerStore:
    def __init__(self, backend: _RedisBackend) -> None:
        self._client = backend.client
        self._guard = backend.guard
        self._key = backend.keys.chargers

    async def put(self, charger: Charger) -> None:
        data = codec.dumps(codec.encode_charger(charger))
        with self._guard:
            await self._client.hset(self._key, charger.id, data)

    async def get(self, charger_id: str) -> Charger | None:
        with self._guard:
            data = await self._client.hget(self._key, charger_id)
        return None if data is None else codec.decode_charger(codec.loads(data))

    async def delete(self, charger_id: str) -> bool:
        with self._guard:
            return bool(await self._client.hdel(self._key, charger_id))

    async def list(self) -> list[Charger]:
        with self._guard:
            values = await self._client.hvals(self._key)
        chargers = [codec.decode_charger(data) for data in _decode_all(values)]
        chargers.sort(key=lambda charger: charger.id)
        return chargers


class RedisChargerStateStore:
    def __init__(self, backend: _RedisBackend) -> None:
        self._client = backend.client
        self._guard = backend.guard
        self._key = backend.keys.charger_states

    async def put(self, state: ChargerState) -> None:
        data = codec.dumps(codec.encode_charger_state(state))
        with self._guard:
            await self._client.hset(self._key, state.id, data)

    async def get(self, charger_id: str) -> ChargerState | None:
        with self._guard:
            data = await self._client.hget(self._key, charger_id)
        return None if data is None else codec.decode_charger_state(codec.loads(data))

    async def list(self) -> list[ChargerState]:
        with self._guard:
            values = await self._client.hvals(self._key)
        states = [codec.decode_charger_state(data) for data in _decode_all(values)]
        states.sort(key=lambda state: state.id)
        return states

    async def delete(self, charger_id: str) -> None:
        with self._guard:
            await self._client.hdel(self._key, charger_id)


class RedisConnectorStore:
    def __init__(self, backend: _RedisBackend) -> None:
        self._client = backend.client
        self._guard = backend.guard
        self._keys = backend.keys

    async def put(self, state: ConnectorState) -> None:
        data = codec.dumps(codec.encode_connector(state))
        field = self._keys.connector_field(state.evse_id, state.connector_id)
        with self._guard:
            await self._client.hset(self._keys.connectors(state.charger_id), field, data)

    async def list(self, charger_id: str) -> list[ConnectorState]:
        with self._guard:
            values = await self._client.hvals(self._keys.connectors(charger_id))
        states = [codec.decode_connector(data) for data in _decode_all(values)]
        states.sort(key=lambda state: (state.evse_id, state.connector_id))
        return states

    async def set_all(self, charger_id: str, status: ConnectorStatus, at: datetime) -> None:
        at = codec.utc(at, "at")
        key = self._keys.connectors(charger_id)
        with self._guard:
            async with self._client.pipeline(transaction=True) as pipe:
                while True:  # optimistic: redo if a put() changed the hash meanwhile
                    try:
                        await pipe.watch(key)
                        values = await pipe.hvals(key)
                        if not values:
                            return
                        mapping: dict[FieldT, EncodableT] = {}
                        for data in _decode_all(values):
                            old = codec.decode_connector(data)
                            new = ConnectorState(
                                charger_id, old.evse_id, old.connector_id, status, at
                            )
                            field = self._keys.connector_field(new.evse_id, new.connector_id)
                            mapping[field] = codec.dumps(codec.encode_connector(new))
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.hset(key, mapping=mapping)
                        await pipe.execute()
                        return
                    except WatchError:
                        continue

    async def delete(self, charger_id: str) -> None:
        with self._guard:
            await self._client.delete(self._keys.connectors(charger_id))


def _conflict(tx: Transaction, code: int) -> Conflict:
    if code == -1:
        return Conflict(
            f"({tx.charger_id!r}, {tx.ocpp_id!r}) belongs to another transaction than {tx.id!r}"
        )
    return Conflict(
        f"transaction {tx.id!r} exists with another charger_id/ocpp_id (they cannot change)"
    )


class RedisTransactionStore:
    def __init__(self, backend: _RedisBackend) -> None:
        self._backend = backend
        self._client = backend.client
        self._guard = backend.guard
        self._keys = backend.keys

    def _script_input(
        self, tx: Transaction, readings: Sequence[MeterReading]
    ) -> tuple[list[str], list[str | int]]:
        """KEYS and ARGV of the create and save scripts (encoding, hence validation, first)."""
        data = codec.encode_transaction(tx)
        score = codec.time_key(tx.started_at, "Transaction.started_at")
        args: list[str | int] = [
            tx.id,
            tx.ocpp_id,
            codec.dumps(data),
            score,
            1 if data["status"] == TransactionStatus.ACTIVE.value else 0,
            self._keys.tx_prefix,
        ]
        args += [codec.dumps(codec.encode_reading(reading)) for reading in readings]
        keys = self._keys
        return [
            keys.tx(tx.id),
            keys.tx_readings(tx.id),
            keys.tx_by_start_all,
            keys.tx_by_start(tx.charger_id),
            keys.tx_by_ocpp_id(tx.charger_id),
            keys.tx_active(tx.charger_id),
        ], args

    async def create(
        self, tx: Transaction, readings: Sequence[MeterReading] = ()
    ) -> tuple[Transaction, bool]:
        keys, args = self._script_input(tx, readings)
        with self._guard:
            result = await self._backend.create_tx(keys, args)
        if result[0] == 1:
            return tx, True
        if result[0] == 0:
            if result[1] is None:  # the index names a transaction that is not there
                raise StorageError(f"Redis: index entry without transaction for {tx.ocpp_id!r}")
            return codec.decode_transaction(codec.loads(result[1])), False
        raise _conflict(tx, -2)

    async def save(self, tx: Transaction, readings: Sequence[MeterReading] = ()) -> None:
        keys, args = self._script_input(tx, readings)
        with self._guard:
            result = await self._backend.save_tx(keys, args)
        if result != 1:
            raise _conflict(tx, result)

    async def get(self, tx_id: str) -> Transaction | None:
        with self._guard:
            data = await self._client.get(self._keys.tx(tx_id))
        return None if data is None else codec.decode_transaction(codec.loads(data))

    async def find(self, charger_id: str, ocpp_id: str) -> Transaction | None:
        with self._guard:
            data = await self._backend.find_tx(
                [self._keys.tx_by_ocpp_id(charger_id)], [ocpp_id, self._keys.tx_prefix]
            )
        return None if data is None else codec.decode_transaction(codec.loads(data))

    async def readings(self, tx_id: str) -> list[MeterReading]:
        with self._guard:
            values = await self._client.lrange(self._keys.tx_readings(tx_id), 0, -1)
        return [codec.decode_reading(data) for data in _decode_all(values)]

    async def _load(self, ids: Iterable[bytes | str]) -> list[Transaction]:
        keys = [self._keys.tx(_text(tx_id)) for tx_id in ids]
        if not keys:
            return []
        with self._guard:
            values = await self._client.mget(keys)
        return [codec.decode_transaction(data) for data in _decode_all(values)]

    async def active(self, charger_id: str) -> list[Transaction]:
        with self._guard:
            ids = await self._client.smembers(self._keys.tx_active(charger_id))
        # A transaction completed between the two reads is filtered out here.
        found = [tx for tx in await self._load(ids) if tx.status is TransactionStatus.ACTIVE]
        found.sort(key=lambda tx: (tx.started_at, tx.id), reverse=True)
        return found

    async def next_ocpp16_id(self) -> int:
        with self._guard:
            return int(await self._client.incr(self._keys.seq_ocpp16))

    async def list(
        self,
        *,
        charger_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Transaction]:
        codec.check_page(limit, offset)
        keys = self._keys
        key = keys.tx_by_start_all if charger_id is None else keys.tx_by_start(charger_id)
        low = "-inf" if since is None else str(codec.time_key(since, "since"))
        high = "+inf" if until is None else f"({codec.time_key(until, 'until')}"
        if limit == 0:
            return []
        with self._guard:
            # Newest first; equal scores come in reverse byte order of the id, as in SQLite.
            ids = await self._client.zrange(
                key, high, low, desc=True, byscore=True, offset=offset, num=limit
            )
        return await self._load(cast("list[bytes]", ids))  # without scores: members only


class RedisTokenStore:
    def __init__(self, backend: _RedisBackend) -> None:
        self._client = backend.client
        self._guard = backend.guard
        self._key = backend.keys.tokens

    async def put(self, token: LocalToken) -> None:
        data = codec.dumps(codec.encode_token(token))
        with self._guard:
            await self._client.hset(self._key, token.uid, data)

    async def get(self, uid: str) -> LocalToken | None:
        with self._guard:
            data = await self._client.hget(self._key, uid)
        return None if data is None else codec.decode_token(codec.loads(data))

    async def delete(self, uid: str) -> bool:
        with self._guard:
            return bool(await self._client.hdel(self._key, uid))

    async def list(self) -> list[LocalToken]:
        with self._guard:
            values = await self._client.hvals(self._key)
        tokens = [codec.decode_token(data) for data in _decode_all(values)]
        tokens.sort(key=lambda token: token.uid)
        return tokens


# -- roaming: documents and outbox -------------------------------------------------------


def _item_args(items: Sequence[OutboxItem]) -> list[str | int]:
    """Validate and encode new items as the scripts' ARGV (see _OUTBOX_LIB)."""
    args: list[str | int] = []
    seen: set[str] = set()
    for item in items:
        data = codec.dumps(codec.encode_outbox_item(item))
        if item.id in seen:
            raise Conflict(f"outbox item {item.id!r} is given twice")
        seen.add(item.id)
        args += [
            item.id,
            item.partner_id,
            item.ordering_key,
            codec.time_key(item.next_attempt_at, "OutboxItem.next_attempt_at"),
            data,
            item.attempts,
            json.dumps(item.last_error),
        ]
    return args


def _enqueued(items: Sequence[OutboxItem], result: list[Any]) -> list[OutboxItem]:
    """The items as stored, from a script's ``{1, seq...}``; Conflict for ``{0, id}``."""
    if result[0] == 0:
        raise Conflict(f"outbox item {_text(result[1])!r} already exists")
    return [
        replace(
            item,
            seq=int(seq),
            created_at=codec.utc(item.created_at, "OutboxItem.created_at"),
            next_attempt_at=codec.utc(item.next_attempt_at, "OutboxItem.next_attempt_at"),
        )
        for item, seq in zip(items, result[1:], strict=True)
    ]


def _decode_item(values: Sequence[bytes | str | None]) -> OutboxItem | None:
    """An item from its _ITEM_FIELDS values; None if it is not there (no data)."""
    data, seq, status, attempts, last_error, next_attempt_at = values
    if data is None or seq is None or status is None or attempts is None:
        return None
    return codec.decode_outbox_item(
        codec.loads(data),
        seq=int(seq),
        status=_text(status),
        attempts=int(attempts),
        last_error=json.loads(last_error) if last_error is not None else None,
        next_attempt_at=int(next_attempt_at or 0),
    )


def _decode_items(rows: Iterable[Sequence[bytes | str | None]]) -> list[OutboxItem]:
    return [item for item in map(_decode_item, rows) if item is not None]


class RedisDocumentStore:
    """One collection: its hash, owner hash and sorted sets (redis_keys ``doc*``)."""

    def __init__(self, backend: _RedisBackend, collection: str) -> None:
        self._backend = backend
        self._client = backend.client
        self._guard = backend.guard
        keys = backend.keys
        self._hash = keys.documents(collection)
        self._by_time = keys.documents_by_time(collection)
        self._owner_prefix = keys.documents_by_owner_prefix(collection)
        self._script_keys = [
            *backend.outbox_keys,
            self._hash,
            keys.document_owners(collection),
            self._by_time,
        ]

    def _script_args(self, key: str, items: Sequence[OutboxItem]) -> list[str | int]:
        return [
            *self._backend.outbox_args,
            key,
            self._owner_prefix,
            len(items),
            *_item_args(items),
        ]

    async def put(self, doc: Document, *, enqueue: Sequence[OutboxItem] = ()) -> None:
        data = codec.dumps(codec.encode_document(doc))
        score = codec.time_key(doc.last_updated, "Document.last_updated")
        args = self._script_args(doc.key, enqueue)
        args += [data, score, "0" if doc.owner is None else "1", doc.owner or ""]
        with self._guard:
            result = await self._backend.put_document(self._script_keys, args)
        _enqueued(enqueue, result)

    async def get(self, key: str) -> Document | None:
        with self._guard:
            data = await self._client.hget(self._hash, key)
        return None if data is None else codec.decode_document(codec.loads(data))

    async def delete(self, key: str, *, enqueue: Sequence[OutboxItem] = ()) -> bool:
        args = self._script_args(key, enqueue)
        with self._guard:
            result = await self._backend.delete_document(self._script_keys, args)
        if result[0] == -1:
            return False
        _enqueued(enqueue, result)
        return True

    async def list(
        self,
        *,
        owner: str | None = None,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[Document], int]:
        codec.check_page(limit, offset)
        key = self._by_time if owner is None else self._owner_prefix + owner
        low = "-inf" if date_from is None else str(codec.time_key(date_from, "date_from"))
        high = "+inf" if date_to is None else f"({codec.time_key(date_to, 'date_to')}"
        with self._guard:
            result = await self._backend.list_documents(
                [key, self._hash], [low, high, offset, limit]
            )
        # (A key whose document is missing could only be a broken index: skipped.)
        return [codec.decode_document(data) for data in _decode_all(result[1:])], int(result[0])


class RedisOutboxStore:
    def __init__(self, backend: _RedisBackend) -> None:
        self._backend = backend
        self._client = backend.client
        self._guard = backend.guard
        self._keys = backend.keys

    async def _change(self, script: Any, *args: str | int) -> int:
        backend = self._backend
        with self._guard:
            return int(await script(backend.outbox_keys, [*backend.outbox_args, *args]))

    async def enqueue(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        args = _item_args(items)
        if not items:
            return []
        backend = self._backend
        with self._guard:
            result = await backend.enqueue(
                backend.outbox_keys, [*backend.outbox_args, len(items), *args]
            )
        return _enqueued(items, result)

    async def due(self, now: datetime, *, limit: int = 100) -> list[OutboxItem]:
        codec.check_page(limit, 0)
        at = codec.time_key(now, "now")
        if limit == 0:
            return []
        keys = self._keys
        with self._guard:
            rows = await self._backend.due([keys.outbox_due], [keys.outbox_item_prefix, at, limit])
        return _decode_items(rows)

    async def complete(self, item_id: str) -> None:
        await self._change(self._backend.complete, item_id)

    async def retry_later(self, item_id: str, next_attempt_at: datetime, error: str) -> None:
        at = codec.time_key(next_attempt_at, "next_attempt_at")
        await self._change(self._backend.retry_later, item_id, at, json.dumps(error))

    async def fail(self, item_id: str, error: str) -> None:
        await self._change(self._backend.fail, item_id, json.dumps(error))

    async def replay(self, item_id: str, now: datetime) -> bool:
        at = codec.time_key(now, "now")
        return bool(await self._change(self._backend.replay, item_id, at))

    async def discard(self, item_id: str) -> bool:
        return bool(await self._change(self._backend.discard, item_id))

    async def get(self, item_id: str) -> OutboxItem | None:
        with self._guard:
            values = await self._client.hmget(self._keys.outbox_item(item_id), _ITEM_FIELDS)
        return _decode_item(values)

    async def list(
        self,
        *,
        status: OutboxStatus | None = None,
        partner_id: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[OutboxItem]:
        codec.check_page(limit, offset)
        keys = self._keys
        if status is None:
            index = keys.outbox_all if partner_id is None else keys.outbox_partner(partner_id)
        else:
            value = OutboxStatus(status).value
            index = (
                keys.outbox_status(value)
                if partner_id is None
                else keys.outbox_partner_status(value, partner_id)
            )
        if limit == 0:
            return []
        with self._guard:
            rows = await self._backend.list_items(
                [index], [keys.outbox_item_prefix, offset, offset + limit - 1]
            )
        return _decode_items(rows)
