"""Redis backend, used when a Redis URL is configured.

Key names: :mod:`gateway.storage.redis_keys`. Values: the JSON of
:mod:`gateway.storage.codec`, as for SQLite.

Every multi-key write is one Lua script call (atomic, one round trip): creating or
saving a transaction with its readings and index entries; writing a roaming document
with its indexes *and* the outbox items that go with it; every outbox state change;
setting every connector of a charger (an optimistic compare-and-set). Listings that
return a page and a total, or items from an index, read in one script too, so that
they see one state. Redis does not roll a script back when a command inside it fails
at run time, so the scripts check everything that can be refused *before* their first
write, and the gateway must own its prefix (a key of an unexpected type is the one
thing that could still break a script half way). Durability is the Redis server's:
run it with ``appendonly yes`` (``appendfsync everysec`` loses up to a second of
writes on a power loss, ``always`` none).

Commands go through a :class:`~gateway.storage.redis_batch.CommandBatcher`: one
connection, and the commands that concurrent callers issue in the same event-loop
iteration sent as one pipeline (not a transaction: each script stays atomic on its
own, and commands run in the order they were issued). That costs a few µs of Python
CPU per command instead of a few hundred for a redis-py call, and no caller waits for
a free pooled connection. Hot paths (``create``, ``save``, ``find``) are still one
command each. (A script missing from the server's cache did not run, and is sent
again with its body.)

Storage hiccups. When the connection drops, the batcher reconnects (backoff from
50 ms, doubling, at most 1 s apart) and every command waits up to ``retry_seconds``
(``GATEWAY_STORAGE_RETRY_SECONDS``, 5 s by default: below a charger's call timeout)
for it, then fails with :class:`StorageUnavailable` (a CALL is then answered
InternalError). Commands not yet sent simply wait. A command that was sent and whose
answer was lost may or may not have been applied, so it is sent again only when that
gives the same result as the first time (and is the last write of its record in the
lost batch, see ``redis_batch``); each store method says which kind it is:

==========================================  ===================================================
method (command)                            when its answer was lost
==========================================  ===================================================
every read (GET, HGET, HVALS, HMGET, MGET,  sent again (reads change nothing)
SMEMBERS, LRANGE, ZRANGE, the read scripts
``FIND_TX``, ``DUE``, ``LIST_*``)
``put`` of chargers, charger states,        sent again: the whole record is set, twice the same
tokens, connectors (HSET)                   value is once
``charger_states.delete``,                  sent again: deleting twice is once, and the answer
``connectors.delete`` (HDEL, DEL)           is not used
``chargers.delete``, ``tokens.delete``      checked: a repeat would answer "was not there",
(``DELETE_FIELD``: HDEL, and when it        so a delete that removed something also sets a
removed something a ``deleted`` marker)     marker (a random request id, kept a minute longer
                                            than ``retry_seconds``); ``DELETE_FIELD_AGAIN``
                                            answers "deleted" when it is there
``connectors.set_all`` (HGETALL, then       sent again: a repeat after the first was applied
``SET_ALL_CONNECTORS``, a compare-and-set)  finds the hash changed, and ``set_all`` reads again
                                            and sets the same values
``transactions.create`` (``CREATE_TX``)     checked: sent as ``CREATE_TX_AGAIN``, which answers
                                            "created" when the (charger_id, ocpp_id) index
                                            already names this transaction's id (ids are new
                                            per call), else creates as the first would have
``transactions.save`` (``SAVE_TX``, which   checked: ``SAVE_TX_AGAIN`` answers "saved" without
replaces the transaction and *appends*      writing when the stored transaction is this one and
its readings)                               its readings end with these readings, else saves.
                                            (Were the first not applied but an identical save
                                            just before, same ``updated_at`` and readings, the
                                            readings would not be stored twice: no loss.)
``next_ocpp16_id`` (INCR)                   sent again: a repeat hands out the next number; the
                                            contract promises unique ids, never dense ones, and
                                            a number whose answer was lost is never used
``documents.put`` (``PUT_DOCUMENT``)        without outbox items: sent again (the whole
                                            document); with items: checked, see ``enqueue``
``documents.delete`` (``DELETE_DOCUMENT``)  checked: with items as ``enqueue``, without by a
                                            ``deleted`` marker as ``chargers.delete``
``outbox.enqueue`` (``ENQUEUE``, an INCR    checked: the ``*_AGAIN`` scripts answer the first
of the sequence per item)                   call's seqs when the first item is stored with this
                                            very data (item ids are fresh random ids, and the
                                            script stores all or nothing), else enqueue
``outbox.complete``, ``outbox.fail``        sent again: they act only on a pending item (or
                                            not yet done one), so a repeat changes nothing, and
                                            their answer is not used
``outbox.retry_later`` (counts an attempt)  checked: ``RETRY_LATER_AGAIN`` changes nothing when
                                            the item is pending with this very next attempt
                                            time and error
``outbox.replay``, ``outbox.discard``       not sent again: a repeat would answer False (the
                                            operator's admin call gets an error and can look)
``outbox.purge_done``                       sent again: a repeat deletes what is still due for
                                            deletion, and answers how many that was
opening: layout read, ``INDEX_DONE``,       sent again (idempotent by design)
``MOVE_TOKEN``, layout claim
``leases.acquire``, ``leases.renew``        sent again: each checks the holder in the script
(``ACQUIRE_LEASE``, ``RENEW_LEASE``)        and a repeat by the same holder answers True again
                                            (a plain ``SET NX`` would answer "taken" to a
                                            repeat whose first try went through)
``leases.release`` (``RELEASE_LEASE``)      sent again: deletes only the holder's own lease,
                                            and its answer is not used
``status_history.append``                   sent again: a repeat stores the entries once more
(``APPEND_HISTORY``)                        (new seqs), which repeats states and changes no
                                            report (they read states, not entry counts)
``status_history.purge`` (``PURGE_HISTORY`` sent again: a repeat deletes what is still due
per charger)                                and answers how many that was
==========================================  ===================================================
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

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
    token_key,
)
from gateway.storage import codec, history
from gateway.storage.base import (
    Document,
    Listener,
    OutboxItem,
    OutboxStatus,
    Owner,
    StatusEntry,
    StorageError,
    Store,
    check_lease,
    check_owner,
)
from gateway.storage.redis_batch import (
    DEFAULT_MAX_BATCH,
    Arg,
    CommandBatcher,
    Retry,
    Script,
    SentinelTarget,
)
from gateway.storage.redis_certs import RedisCertificateStore
from gateway.storage.redis_device_model import RedisDeviceModelStore
from gateway.storage.redis_keys import LAYOUT_VERSION, RedisKeys
from gateway.storage.redis_pubsub import RedisSubscription
from gateway.storage.redis_trail import RedisTrailStore

log = logging.getLogger(__name__)

# How long a command waits for a lost connection (GATEWAY_STORAGE_RETRY_SECONDS).
DEFAULT_RETRY_SECONDS: Final = 5.0

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

# The same, sent again after its answer was lost: the index names this very id (new
# per call) only if the first call created it.
_CREATE_TX_AGAIN: Final = (
    """
if redis.call('HGET', KEYS[5], ARGV[2]) == ARGV[1] then
  return {1}
end
"""
    + _CREATE_TX
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

# The same, sent again after its answer was lost: applied already when the stored
# transaction is this one and its readings end with these (then: 1, nothing written).
_SAVE_TX_AGAIN: Final = (
    """
if redis.call('GET', KEYS[1]) == ARGV[3] then
  local n = #ARGV - 6
  if n == 0 then
    return 1
  end
  local tail = redis.call('LRANGE', KEYS[2], -n, -1)
  local same = #tail == n
  for i = 1, n do
    if not same then
      break
    end
    same = tail[i] == ARGV[6 + i]
  end
  if same then
    return 1
  end
end
"""
    + _SAVE_TX
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

# For the scripts sent again after their answer was lost: the first call's answer
# {1, seq...} when the first of the n items from ARGV[at] is stored with this very
# data (item ids are fresh, and the scripts store all their items or none), else nil.
_ENQUEUED_BEFORE: Final = """
local function enqueued_before(at, n)
  if n == 0 or redis.call('HGET', ARGV[1] .. ARGV[at], 'data') ~= ARGV[at + 4] then
    return nil
  end
  local out = {1}
  for i = 0, n - 1 do
    out[#out + 1] = redis.call('HGET', ARGV[1] .. ARGV[at + i * 7], 'seq')
  end
  return out
end
"""

# ARGV: 6 number of items, 7... items. -> {1, seq...} or {0, id already stored}
_ENQUEUE_BODY: Final = """
local n = tonumber(ARGV[6])
local taken = first_taken(7, n)
if taken then
  return {0, taken}
end
local seqs = enqueue(7, n)
table.insert(seqs, 1, 1)
return seqs
"""
_ENQUEUE: Final = _OUTBOX_LIB + _ENQUEUE_BODY
_ENQUEUE_AGAIN: Final = (
    _OUTBOX_LIB
    + _ENQUEUED_BEFORE
    + """
local before = enqueued_before(7, tonumber(ARGV[6]))
if before then
  return before
end
"""
    + _ENQUEUE_BODY
)

# The scripts that make an item DONE: with _OUTBOX_LIB, KEYS: 4 outbox-done; ARGV:
# 6 item id, 7 completion time (µs), or '' for the item's next_attempt_at.
_DONE_LIB: Final = """
local f = redis.call('HMGET', ARGV[1] .. ARGV[6], 'status', 'partner_id', 'ordering_key', 'seq',
  'next_attempt_at')
local function record_done(id)
  local at = ARGV[7]
  if at == '' then
    at = f[5]
  end
  redis.call('HSET', ARGV[1] .. id, 'completed_at', at)
  redis.call('ZADD', KEYS[4], at, id)
end
"""

# -> 1 done, 0 unknown or already done
_COMPLETE: Final = (
    _OUTBOX_LIB
    + _DONE_LIB
    + """
if not f[1] or f[1] == 'done' then
  return 0
end
mark_done(ARGV[6], f)
record_done(ARGV[6])
return 1
"""
)

# -> 1 discarded, 0 not failed
_DISCARD: Final = (
    _OUTBOX_LIB
    + _DONE_LIB
    + """
if f[1] ~= 'failed' then
  return 0
end
mark_done(ARGV[6], f)
record_done(ARGV[6])
return 1
"""
)

# With _OUTBOX_LIB, KEYS: 4 outbox-done; ARGV: 6 before (µs, exclusive), 7 limit (> 0).
# Deletes the item hashes and every index entry of done items completed before then
# (done items are in no ordering-key set and not in outbox-due). -> how many
_PURGE_DONE: Final = (
    _OUTBOX_LIB
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[6], 'LIMIT', 0, ARGV[7])
local n = 0
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  local f = redis.call('HMGET', key, 'status', 'partner_id')
  redis.call('ZREM', KEYS[4], id)
  if f[1] == 'done' then
    unindex_status(id, f[2], 'done')
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZREM', ARGV[4] .. f[2], id)
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""
)

# Layout 2 -> 3: index the done items that are not in outbox-done yet (completed_at:
# the one recorded, else next_attempt_at), in chunks by seq. KEYS: 1 outbox-status:done,
# 2 outbox-done; ARGV: 1 item key prefix, 2 seq after which to go on, 3 chunk size.
# -> {items looked at, last seq looked at}
_INDEX_DONE: Final = """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '+inf', 'WITHSCORES',
  'LIMIT', 0, ARGV[3])
local last = ARGV[2]
for i = 1, #members, 2 do
  local id = members[i]
  last = members[i + 1]
  if not redis.call('ZSCORE', KEYS[2], id) then
    local key = ARGV[1] .. id
    local at = redis.call('HGET', key, 'completed_at') or redis.call('HGET', key, 'next_attempt_at')
    if at then
      redis.call('HSET', key, 'completed_at', at)
      redis.call('ZADD', KEYS[2], at, id)
    end
  end
end
return {#members / 2, last}
"""

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

# The same, sent again after its answer was lost: applied already when the item is
# pending with this very next attempt time and error (then: 1, attempts not counted twice).
_RETRY_LATER_AGAIN: Final = (
    """
local g = redis.call('HMGET', ARGV[1] .. ARGV[6], 'status', 'next_attempt_at', 'last_error')
if g[1] == 'pending' and g[2] == ARGV[7] and g[3] == ARGV[8] then
  return 1
end
"""
    + _RETRY_LATER
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
_ITEM_FIELDS: Final = (
    "data",
    "seq",
    "status",
    "attempts",
    "last_error",
    "next_attempt_at",
    "completed_at",
)
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

# The *_AGAIN variants: sent again after the answer was lost (see _ENQUEUED_BEFORE).
_DOC_AGAIN: Final = (
    _ENQUEUED_BEFORE
    + """
local before = enqueued_before(9, n)
if before then
  return before
end
"""
)

_PUT_DOCUMENT_BODY: Final = """
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
_PUT_DOCUMENT: Final = _OUTBOX_LIB + _DOC_TAIL + _PUT_DOCUMENT_BODY
_PUT_DOCUMENT_AGAIN: Final = _OUTBOX_LIB + _DOC_TAIL + _DOC_AGAIN + _PUT_DOCUMENT_BODY

# After the items (delete only): ARGV[rest] a ``deleted`` marker key, or '' (with
# items: those tell), and ARGV[rest + 1] its lifetime (s).
_DELETE_DOCUMENT_BODY: Final = """
if redis.call('HEXISTS', KEYS[4], doc_key) == 0 then
  return {-1}
end
local taken = first_taken(9, n)
if taken then
  return {0, taken}
end
redis.call('HDEL', KEYS[4], doc_key)
if ARGV[rest] ~= '' then
  redis.call('SET', ARGV[rest], '1', 'EX', ARGV[rest + 1])
end
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
_DELETE_DOCUMENT: Final = _OUTBOX_LIB + _DOC_TAIL + _DELETE_DOCUMENT_BODY
_DELETE_DOCUMENT_AGAIN: Final = (
    _OUTBOX_LIB
    + _DOC_TAIL
    + _DOC_AGAIN
    + """
if ARGV[rest] ~= '' and redis.call('EXISTS', ARGV[rest]) == 1 then
  return {1}
end
"""
    + _DELETE_DOCUMENT_BODY
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

# Deletes whose answer (was it there?) matters. KEYS: 1 a hash, 2 a ``deleted`` marker
# key (random per call); ARGV: 1 the field, 2 the marker's lifetime (s). -> 1 or 0
_DELETE_FIELD: Final = """
local n = redis.call('HDEL', KEYS[1], ARGV[1])
if n == 1 then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
end
return n
"""

# The same, sent again after its answer was lost: the marker says the first deleted it.
_DELETE_FIELD_AGAIN: Final = (
    """
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 1
end
"""
    + _DELETE_FIELD
)

# KEYS: 1 a charger's connectors hash; ARGV: (field, value read, new value) triples.
# Writes the new values only if the hash still holds exactly the values read (the
# optimistic check of ``set_all``). -> 1 written, 0 the hash changed meanwhile
_SET_ALL_CONNECTORS: Final = """
if redis.call('HLEN', KEYS[1]) * 3 ~= #ARGV then
  return 0
end
for i = 1, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
    return 0
  end
end
for i = 1, #ARGV, 3 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
end
return 1
"""

# Leases (``gateway.leases``): the holder is checked in the script, so that a process
# never extends or deletes another's lease (a GET then a PEXPIRE or DEL from the client
# could act on a lease that expired and was taken in between). KEYS: 1 the lease;
# ARGV: 1 holder, 2 TTL (ms). -> 1 this holder's now, 0 another holder's
_ACQUIRE_LEASE: Final = """
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RENEW_LEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
# KEYS: 1 the lease; ARGV: 1 holder. -> 1 released, 0 not this holder's
_RELEASE_LEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# Charger ownership (``gateway.cluster``): ``owner:{charger_id}`` hashes with a TTL.
# Claim: KEYS 1 the owner key; ARGV 1 node, 2 since (µs), 3 TTL (ms).
# -> the previous node when it was another one, else false
_CLAIM_OWNER: Final = """
local previous = redis.call('HGET', KEYS[1], 'node')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'since', ARGV[2], 'hb', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if previous and previous ~= ARGV[1] then
  return previous
end
return false
"""
# Renew: KEYS the owner keys; ARGV 1 node, 2 TTL (ms), then one heartbeat (µs, or "")
# per key. -> the 1-based positions of the keys that are not this node's
_RENEW_OWNERS: Final = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('HGET', key, 'node') == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    local beat = ARGV[i + 2]
    if beat and beat ~= '' then
      redis.call('HSET', key, 'hb', beat)
    end
  else
    lost[#lost + 1] = i
  end
end
return lost
"""
# Release: KEYS 1 the owner key; ARGV 1 node. -> 1 released, 0 not this node's
_RELEASE_OWNER: Final = """
if redis.call('HGET', KEYS[1], 'node') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# The scripts as called (EVALSHA; loaded on every new connection and when missing).
# -- status history (reports) ----------------------------------------------------------
#
# KEYS: 1 status-history (charger), 2 status-history-seq, 3 status-history-chargers;
# ARGV: 1 charger id, then per entry: score (at, µs), slot, entry JSON. Members start
# with a per-charger sequence number, so entries at the same time keep their order.
_APPEND_HISTORY: Final = """
local n = (#ARGV - 1) / 3
local seq = redis.call('HINCRBY', KEYS[2], ARGV[1], n) - n
for i = 0, n - 1 do
  seq = seq + 1
  local j = 2 + i * 3
  redis.call('ZADD', KEYS[1], ARGV[j],
    string.format('%012d', seq) .. '|' .. ARGV[j + 1] .. '|' .. ARGV[j + 2])
end
redis.call('SADD', KEYS[3], ARGV[1])
"""

# KEYS: 1 status-history (charger); ARGV: 1 "(" .. cutoff (µs). Deletes the entries
# before the cutoff except the newest of each slot; returns how many it deleted.
_PURGE_HISTORY: Final = """
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local seen, doomed = {}, {}
for i = #old, 1, -1 do
  local slot = string.match(old[i], '^%d+|([^|]*)|')
  if seen[slot] then
    doomed[#doomed + 1] = old[i]
  else
    seen[slot] = true
  end
end
for i = 1, #doomed, 1000 do
  redis.call('ZREM', KEYS[1], unpack(doomed, i, math.min(i + 999, #doomed)))
end
return #doomed
"""

# KEYS: 1 the local tokens' hash; ARGV: 1 a field. Moves a token stored by its uid as it
# came (a gateway of layout 3 wrote them so) to its key (domain.models.token_key: ASCII
# letters upper-cased; a-z by their bytes, not Lua's locale-dependent classes). When a
# token is at that key already, the one updated later stays (updated_at, compared byte by
# byte: Lua's `<` follows the server's collation); on a tie, or without times, the one
# there. Returns 1 when the field was moved or dropped, 0 when it was at its key or gone.
_MOVE_TOKEN: Final = """
local function key(s)
  return (string.gsub(s, '[a-z]', function(c) return string.char(string.byte(c) - 32) end))
end
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function updated(json)
  local ok, token = pcall(cjson.decode, json)
  if ok and type(token) == 'table' and type(token.updated_at) == 'string' then
    return token.updated_at
  end
  return ''
end
local field = ARGV[1]
local k = key(field)
if k == field then return 0 end
local value = redis.call('HGET', KEYS[1], field)
if not value then return 0 end
redis.call('HDEL', KEYS[1], field)
local there = redis.call('HGET', KEYS[1], k)
if there and not before(updated(there), updated(value)) then return 1 end
redis.call('HSET', KEYS[1], k, value)
return 1
"""
CREATE_TX: Final = Script(_CREATE_TX)
CREATE_TX_AGAIN: Final = Script(_CREATE_TX_AGAIN)
SAVE_TX: Final = Script(_SAVE_TX)
SAVE_TX_AGAIN: Final = Script(_SAVE_TX_AGAIN)
FIND_TX: Final = Script(_FIND_TX)
SET_ALL_CONNECTORS: Final = Script(_SET_ALL_CONNECTORS)
DELETE_FIELD: Final = Script(_DELETE_FIELD)
DELETE_FIELD_AGAIN: Final = Script(_DELETE_FIELD_AGAIN)
ENQUEUE: Final = Script(_ENQUEUE)
ENQUEUE_AGAIN: Final = Script(_ENQUEUE_AGAIN)
COMPLETE: Final = Script(_COMPLETE)
DISCARD: Final = Script(_DISCARD)
PURGE_DONE: Final = Script(_PURGE_DONE)
INDEX_DONE: Final = Script(_INDEX_DONE)
RETRY_LATER: Final = Script(_RETRY_LATER)
RETRY_LATER_AGAIN: Final = Script(_RETRY_LATER_AGAIN)
FAIL: Final = Script(_FAIL)
REPLAY: Final = Script(_REPLAY)
DUE: Final = Script(_DUE)
LIST_ITEMS: Final = Script(_LIST_ITEMS)
PUT_DOCUMENT: Final = Script(_PUT_DOCUMENT)
PUT_DOCUMENT_AGAIN: Final = Script(_PUT_DOCUMENT_AGAIN)
DELETE_DOCUMENT: Final = Script(_DELETE_DOCUMENT)
DELETE_DOCUMENT_AGAIN: Final = Script(_DELETE_DOCUMENT_AGAIN)
LIST_DOCUMENTS: Final = Script(_LIST_DOCUMENTS)
ACQUIRE_LEASE: Final = Script(_ACQUIRE_LEASE)
RENEW_LEASE: Final = Script(_RENEW_LEASE)
RELEASE_LEASE: Final = Script(_RELEASE_LEASE)
CLAIM_OWNER: Final = Script(_CLAIM_OWNER)
RENEW_OWNERS: Final = Script(_RENEW_OWNERS)
RELEASE_OWNER: Final = Script(_RELEASE_OWNER)
MOVE_TOKEN: Final = Script(_MOVE_TOKEN)
APPEND_HISTORY: Final = Script(_APPEND_HISTORY)
PURGE_HISTORY: Final = Script(_PURGE_HISTORY)
# Preloaded on each connection, the *_AGAIN ones too: they are needed right after a
# reconnection, when a round trip more (NOSCRIPT, then EVAL) would delay the recovery.
SCRIPTS: Final = (
    CREATE_TX,
    CREATE_TX_AGAIN,
    SAVE_TX,
    SAVE_TX_AGAIN,
    FIND_TX,
    SET_ALL_CONNECTORS,
    DELETE_FIELD,
    DELETE_FIELD_AGAIN,
    ENQUEUE,
    ENQUEUE_AGAIN,
    COMPLETE,
    DISCARD,
    PURGE_DONE,
    INDEX_DONE,
    RETRY_LATER,
    RETRY_LATER_AGAIN,
    FAIL,
    REPLAY,
    DUE,
    LIST_ITEMS,
    PUT_DOCUMENT,
    PUT_DOCUMENT_AGAIN,
    DELETE_DOCUMENT,
    DELETE_DOCUMENT_AGAIN,
    LIST_DOCUMENTS,
    ACQUIRE_LEASE,
    RENEW_LEASE,
    RELEASE_LEASE,
    CLAIM_OWNER,
    RENEW_OWNERS,
    RELEASE_OWNER,
    APPEND_HISTORY,
    PURGE_HISTORY,
)


async def open_redis_store(
    url: str,
    *,
    prefix: str = "gw:",
    max_connections: int | None = None,
    socket_timeout: float = 10.0,
    client_name: str | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    retry_seconds: float = DEFAULT_RETRY_SECONDS,
    sentinel: SentinelTarget | None = None,
) -> Store:
    """Connect to the Redis at ``url`` and use the keys under ``prefix``.

    With ``sentinel``, to the master the Sentinels name (then, and after every failover:
    see :mod:`gateway.storage.redis_batch`), ``url`` giving only the password, database
    and TLS options (it may be empty).

    Every command goes through one :class:`~gateway.storage.redis_batch.CommandBatcher`:
    one connection (named ``client_name``, by default ``ocpi-gateway:`` and the prefix,
    so that ``CLIENT LIST`` tells the gateways apart), the commands of concurrent
    callers pipelined in batches of up to ``max_batch``. ``socket_timeout`` bounds
    connecting and the wait for each batch's answers; ``retry_seconds`` how long a
    command waits for a lost connection to come back (see the module docstring).
    ``max_connections`` is accepted for compatibility and ignored (pipelining on one
    connection replaced the pool).
    """
    del max_connections
    if client_name is None:
        client_name = default_client_name(prefix)
    backend = await _RedisBackend.open(
        url, prefix, socket_timeout, client_name, max_batch, retry_seconds, sentinel
    )
    return Store.assemble(
        chargers=RedisChargerStore(backend),
        charger_states=RedisChargerStateStore(backend),
        connectors=RedisConnectorStore(backend),
        transactions=RedisTransactionStore(backend),
        tokens=RedisTokenStore(backend),
        backend=backend,
        outbox=RedisOutboxStore(backend),
        documents=lambda name: RedisDocumentStore(backend, name),
        leases=RedisLeaseStore(backend),
        owners=RedisOwnershipStore(backend),
        messages=RedisMessageStore(backend),
        trail=RedisTrailStore(backend.db, backend.keys),
        status_history=RedisStatusHistoryStore(backend),
        certificates=RedisCertificateStore(backend.db, backend.keys),
        device_model=RedisDeviceModelStore(backend.db, backend.keys),
    )


def default_client_name(prefix: str) -> str:
    """``ocpi-gateway:{prefix}``, with what ``CLIENT SETNAME`` refuses (spaces, newlines,
    anything outside printable ASCII) replaced by ``_``."""
    cleaned = "".join(c if "!" <= c <= "~" else "_" for c in prefix)
    return f"ocpi-gateway:{cleaned}"


class _RedisBackend:
    """The batcher and the key names of one store; the store's ``backend``."""

    def __init__(self, db: CommandBatcher, keys: RedisKeys, retry_seconds: float) -> None:
        self.db = db
        self.keys = keys
        # A ``deleted`` marker outlives every resend of its delete.
        self.marker_seconds = int(retry_seconds) + 60
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
        cls,
        url: str,
        prefix: str,
        socket_timeout: float,
        client_name: str | None,
        max_batch: int,
        retry_seconds: float,
        sentinel: SentinelTarget | None = None,
    ) -> _RedisBackend:
        db = await CommandBatcher.connect(
            url,
            socket_timeout=socket_timeout,
            client_name=client_name,
            scripts=SCRIPTS,
            max_batch=max_batch,
            retry_seconds=retry_seconds,
            sentinel=sentinel,
        )
        keys = RedisKeys(prefix)
        try:
            found = int(await db.command("GET", keys.schema, retry=True) or 0)
            if found < 3:  # completed_at and outbox-done, for the items already done
                await _index_done_items(db, keys)
            # Layout 4: tokens keyed case-insensitively. At every open, not only from 3:
            # a gateway of layout 3 still running during a rolling upgrade writes tokens
            # by their uid as it came; the next process to start moves them.
            moved = await _move_tokens(db, keys.tokens)
            if moved:
                log.info("local tokens: %d moved to their case-insensitive key", moved)
            version = await db.command(
                "EVAL", _CLAIM_LAYOUT, 1, keys.schema, LAYOUT_VERSION, retry=True
            )
            if max(found, int(version)) > LAYOUT_VERSION:
                raise StorageError(
                    f"Redis keyspace {prefix!r} has layout {max(found, int(version))}, newer"
                    f" than this gateway's {LAYOUT_VERSION}"
                )
        except BaseException:
            await db.close()
            raise
        return cls(db, keys, retry_seconds)

    name = "redis"

    def observe_writes(self, observer: Callable[[float], None] | None) -> None:
        self.db.observe = observer

    async def release_memory(self) -> None:
        """Nothing to give back: the data lives in Redis, the process keeps no cache of
        it (the connections' buffers are the batcher's, sized by what is in flight)."""
        if self.db.closed:
            raise StorageError("the Redis store is closed")

    def deleted_marker(self) -> str:
        """A new ``deleted`` marker key (see ``_DELETE_FIELD``)."""
        return self.keys.deleted(secrets.token_hex(12))

    async def delete_field(self, key: str, field: str) -> bool:
        """HDEL whose answer survives a lost answer (``_DELETE_FIELD``)."""
        result = await self.db.evalsha(
            DELETE_FIELD,
            [key, self.deleted_marker()],
            [field, self.marker_seconds],
            retry=DELETE_FIELD_AGAIN,
            guard=(key, field),
        )
        return bool(result)

    async def ping(self) -> None:
        # Queued like every command (so it waits behind them, and for a lost connection
        # up to retry_seconds): the answer says the store's own connection works.
        await self.db.command("PING", retry=True)

    async def close(self) -> None:
        """Finish the commands already queued, then disconnect (idempotent)."""
        await self.db.close()


async def _move_tokens(db: CommandBatcher, key: str, chunk: int = 1000) -> int:
    """Every local token stored by its uid as it came moved to its key (layout 4), how
    many; read with HSCAN (no long script: the server answers others in between), the
    misplaced ones moved one script each, in byte order, so that of uids that differ only
    in case and have the same ``updated_at`` the first in byte order stays, as the SQLite
    migration keeps. Idempotent: another process doing the same at once moves nothing
    twice."""
    misplaced: list[str] = []
    cursor: bytes | str | int = 0
    while True:
        cursor, flat = await db.command("HSCAN", key, cursor, "COUNT", chunk, retry=True)
        for raw in flat[::2]:
            field = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
            if field != token_key(field):
                misplaced.append(field)
        if int(cursor) == 0:
            break
    moved = 0
    for field in sorted(misplaced, key=lambda f: f.encode("utf-8", "surrogateescape")):
        moved += await db.evalsha(MOVE_TOKEN, [key], [field], retry=True, guard=key)
    return moved


async def _index_done_items(db: CommandBatcher, keys: RedisKeys, chunk: int = 1000) -> None:
    """Layout 2 -> 3, in chunks (no long script on a big outbox); idempotent, so an
    interrupted upgrade is finished by the next open (the layout is claimed after)."""
    after = "0"
    while True:
        scanned, last = await db.evalsha(
            INDEX_DONE,
            [keys.outbox_status(OutboxStatus.DONE.value), keys.outbox_done],
            [keys.outbox_item_prefix, after, chunk],
            retry=True,
        )
        if int(scanned) < chunk:
            return
        after = _text(last)


def _decode_all(values: Iterable[bytes | str | None]) -> list[dict[str, Any]]:
    return [codec.loads(value) for value in values if value is not None]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisChargerStore:
    def __init__(self, backend: _RedisBackend) -> None:
        self._backend = backend
        self._db = backend.db
        self._key = backend.keys.chargers

    async def put(self, charger: Charger) -> None:
        data = codec.dumps(codec.encode_charger(charger))
        await self._db.command(
            "HSET", self._key, charger.id, data, retry=True, guard=(self._key, charger.id)
        )

    async def get(self, charger_id: str) -> Charger | None:
        data = await self._db.command("HGET", self._key, charger_id, retry=True)
        return None if data is None else codec.decode_charger(codec.loads(data))

    async def delete(self, charger_id: str) -> bool:
        return await self._backend.delete_field(self._key, charger_id)

    async def placed(self, charger_id: str) -> Charger | None:
        # Read each time: other processes write the chargers too.
        charger = await self.get(charger_id)
        return None if charger is None or charger.location_id is None else charger

    async def list(self) -> list[Charger]:
        values = await self._db.command("HVALS", self._key, retry=True)
        chargers = [codec.decode_charger(data) for data in _decode_all(values)]
        chargers.sort(key=lambda charger: charger.id)
        return chargers


class RedisChargerStateStore:
    def __init__(self, backend: _RedisBackend) -> None:
        self._db = backend.db
        self._key = backend.keys.charger_states

    async def put(self, state: ChargerState) -> None:
        data = codec.dumps(codec.encode_charger_state(state))
        await self._db.command(
            "HSET", self._key, state.id, data, retry=True, guard=(self._key, state.id)
        )

    async def get(self, charger_id: str) -> ChargerState | None:
        data = await self._db.command("HGET", self._key, charger_id, retry=True)
        return None if data is None else codec.decode_charger_state(codec.loads(data))

    async def list(self) -> list[ChargerState]:
        values = await self._db.command("HVALS", self._key, retry=True)
        states = [codec.decode_charger_state(data) for data in _decode_all(values)]
        states.sort(key=lambda state: state.id)
        return states

    async def delete(self, charger_id: str) -> None:
        await self._db.command(
            "HDEL", self._key, charger_id, retry=True, guard=(self._key, charger_id)
        )


class RedisConnectorStore:
    def __init__(self, backend: _RedisBackend) -> None:
        self._db = backend.db
        self._keys = backend.keys

    async def put(self, state: ConnectorState) -> None:
        data = codec.dumps(codec.encode_connector(state))
        field = self._keys.connector_field(state.evse_id, state.connector_id)
        key = self._keys.connectors(state.charger_id)
        await self._db.command("HSET", key, field, data, retry=True, guard=(key, field))

    async def list(self, charger_id: str) -> list[ConnectorState]:
        values = await self._db.command("HVALS", self._keys.connectors(charger_id), retry=True)
        states = [codec.decode_connector(data) for data in _decode_all(values)]
        states.sort(key=lambda state: (state.evse_id, state.connector_id))
        return states

    async def set_all(self, charger_id: str, status: ConnectorStatus, at: datetime) -> None:
        at = codec.utc(at, "at")
        key = self._keys.connectors(charger_id)
        while True:  # optimistic: redo if a put() changed the hash meanwhile
            flat: list[bytes] = await self._db.command("HGETALL", key, retry=True)
            if not flat:
                return
            args: list[Arg] = []
            for field, value in zip(flat[::2], flat[1::2], strict=True):
                old = codec.decode_connector(codec.loads(value))
                new = ConnectorState(charger_id, old.evse_id, old.connector_id, status, at)
                args += [field, value, codec.dumps(codec.encode_connector(new))]
            # Sent again if its answer is lost: the repeat then finds the values changed
            # (0), and the loop reads them and sets the same ones.
            if await self._db.evalsha(SET_ALL_CONNECTORS, [key], args, retry=True, guard=key) == 1:
                return

    async def delete(self, charger_id: str) -> None:
        key = self._keys.connectors(charger_id)
        await self._db.command("DEL", key, retry=True, guard=key)


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
        self._db = backend.db
        self._keys = backend.keys

    def _script_input(
        self, tx: Transaction, readings: Sequence[MeterReading]
    ) -> tuple[list[Arg], list[Arg]]:
        """KEYS and ARGV of the create and save scripts (encoding, hence validation, first)."""
        data = codec.encode_transaction(tx)
        score = codec.time_key(tx.started_at, "Transaction.started_at")
        args: list[Arg] = [
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
        result = await self._db.evalsha(CREATE_TX, keys, args, retry=CREATE_TX_AGAIN, guard=keys[0])
        if result[0] == 1:
            return tx, True
        if result[0] == 0:
            if len(result) < 2 or result[1] is None:  # the index names a missing transaction
                raise StorageError(f"Redis: index entry without transaction for {tx.ocpp_id!r}")
            return codec.decode_transaction(codec.loads(result[1])), False
        raise _conflict(tx, -2)

    async def save(self, tx: Transaction, readings: Sequence[MeterReading] = ()) -> None:
        keys, args = self._script_input(tx, readings)
        result = await self._db.evalsha(SAVE_TX, keys, args, retry=SAVE_TX_AGAIN, guard=keys[0])
        if result != 1:
            raise _conflict(tx, result)

    async def get(self, tx_id: str) -> Transaction | None:
        data = await self._db.command("GET", self._keys.tx(tx_id), retry=True)
        return None if data is None else codec.decode_transaction(codec.loads(data))

    async def find(self, charger_id: str, ocpp_id: str) -> Transaction | None:
        keys = self._keys
        data = await self._db.evalsha(
            FIND_TX, [keys.tx_by_ocpp_id(charger_id)], [ocpp_id, keys.tx_prefix], retry=True
        )
        return None if data is None else codec.decode_transaction(codec.loads(data))

    async def readings(self, tx_id: str) -> list[MeterReading]:
        values = await self._db.command("LRANGE", self._keys.tx_readings(tx_id), 0, -1, retry=True)
        return [codec.decode_reading(data) for data in _decode_all(values)]

    async def _load(self, ids: Iterable[bytes | str]) -> list[Transaction]:
        keys = [self._keys.tx(_text(tx_id)) for tx_id in ids]
        if not keys:
            return []
        values = await self._db.command("MGET", *keys, retry=True)
        return [codec.decode_transaction(data) for data in _decode_all(values)]

    async def active(self, charger_id: str) -> list[Transaction]:
        ids = await self._db.command("SMEMBERS", self._keys.tx_active(charger_id), retry=True)
        # A transaction completed between the two reads is filtered out here.
        found = [tx for tx in await self._load(ids) if tx.status is TransactionStatus.ACTIVE]
        found.sort(key=lambda tx: (tx.started_at, tx.id), reverse=True)
        return found

    async def count_active(self) -> int:
        # One set per charger with active transactions (an empty set is no key): SCAN
        # walks the keyspace, so this is for the metrics' scrape, not for a hot path.
        pattern = _glob_escape(self._keys.tx_active("")) + "*"
        cursor, total = b"0", 0
        while True:
            cursor, keys = await self._db.command(
                "SCAN", cursor, "MATCH", pattern, "COUNT", 1000, retry=True
            )
            if keys:
                sizes = await asyncio.gather(
                    *(self._db.command("SCARD", key, retry=True) for key in keys)
                )
                total += sum(int(n) for n in sizes)
            if cursor in (b"0", "0", 0):
                return total

    async def next_ocpp16_id(self) -> int:
        # Sent again if its answer is lost: unique, not dense; the lost number is unused.
        return int(await self._db.command("INCR", self._keys.seq_ocpp16, retry=True))

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
        # Newest first; equal scores come in reverse byte order of the id, as in SQLite.
        ids = await self._db.command(
            "ZRANGE", key, high, low, "BYSCORE", "REV", "LIMIT", offset, limit, retry=True
        )
        return await self._load(ids)


class RedisTokenStore:
    """Fields keyed by :func:`~gateway.domain.models.token_key` of the uid: found
    case-insensitively, as OCPP compares id tokens."""

    def __init__(self, backend: _RedisBackend) -> None:
        self._backend = backend
        self._db = backend.db
        self._key = backend.keys.tokens

    async def put(self, token: LocalToken) -> None:
        data = codec.dumps(codec.encode_token(token))
        field = token_key(token.uid)
        await self._db.command("HSET", self._key, field, data, retry=True, guard=(self._key, field))

    async def get(self, uid: str) -> LocalToken | None:
        data = await self._db.command("HGET", self._key, token_key(uid), retry=True)
        return None if data is None else codec.decode_token(codec.loads(data))

    async def delete(self, uid: str) -> bool:
        return await self._backend.delete_field(self._key, token_key(uid))

    async def list(self) -> list[LocalToken]:
        values = await self._db.command("HVALS", self._key, retry=True)
        tokens = [codec.decode_token(data) for data in _decode_all(values)]
        tokens.sort(key=lambda token: token.uid)
        return tokens


# -- roaming: documents and outbox -------------------------------------------------------


def _item_args(items: Sequence[OutboxItem]) -> list[Arg]:
    """Validate and encode new items as the scripts' ARGV (see _OUTBOX_LIB)."""
    args: list[Arg] = []
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
    data, seq, status, attempts, last_error, next_attempt_at, completed_at = values
    if data is None or seq is None or status is None or attempts is None:
        return None
    return codec.decode_outbox_item(
        codec.loads(data),
        seq=int(seq),
        status=_text(status),
        attempts=int(attempts),
        last_error=json.loads(last_error) if last_error is not None else None,
        next_attempt_at=int(next_attempt_at or 0),
        completed_at=None if completed_at is None else int(completed_at),
    )


def _decode_items(rows: Iterable[Sequence[bytes | str | None]]) -> list[OutboxItem]:
    return [item for item in map(_decode_item, rows) if item is not None]


class RedisDocumentStore:
    """One collection: its hash, owner hash and sorted sets (redis_keys ``doc*``)."""

    def __init__(self, backend: _RedisBackend, collection: str) -> None:
        self._backend = backend
        self._db = backend.db
        self._outbox_args = backend.outbox_args
        keys = backend.keys
        self._hash = keys.documents(collection)
        self._by_time = keys.documents_by_time(collection)
        self._owner_prefix = keys.documents_by_owner_prefix(collection)
        self._script_keys: list[Arg] = [
            *backend.outbox_keys,
            self._hash,
            keys.document_owners(collection),
            self._by_time,
        ]

    def _script_args(self, key: str, items: Sequence[OutboxItem]) -> list[Arg]:
        return [
            *self._outbox_args,
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
        result = await self._db.evalsha(
            PUT_DOCUMENT,
            self._script_keys,
            args,
            retry=PUT_DOCUMENT_AGAIN if enqueue else True,
            guard=(self._hash, doc.key),
        )
        _enqueued(enqueue, result)

    async def get(self, key: str) -> Document | None:
        data = await self._db.command("HGET", self._hash, key, retry=True)
        return None if data is None else codec.decode_document(codec.loads(data))

    async def delete(self, key: str, *, enqueue: Sequence[OutboxItem] = ()) -> bool:
        args = self._script_args(key, enqueue)
        # Without items, a marker tells a resend that the first call deleted it.
        args += (
            ["", 0] if enqueue else [self._backend.deleted_marker(), self._backend.marker_seconds]
        )
        result = await self._db.evalsha(
            DELETE_DOCUMENT,
            self._script_keys,
            args,
            retry=DELETE_DOCUMENT_AGAIN,
            guard=(self._hash, key),
        )
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
        result = await self._db.evalsha(
            LIST_DOCUMENTS, [key, self._hash], [low, high, offset, limit], retry=True
        )
        # (A key whose document is missing could only be a broken index: skipped.)
        return [codec.decode_document(data) for data in _decode_all(result[1:])], int(result[0])


_OUTBOX_ITEM: Final = "outbox-item"  # guards: ("outbox-item", item id) is one item


class RedisOutboxStore:
    def __init__(self, backend: _RedisBackend) -> None:
        self._db = backend.db
        self._keys = backend.keys
        self._outbox_keys: list[Arg] = list(backend.outbox_keys)
        self._outbox_args: list[Arg] = list(backend.outbox_args)
        self._done_keys: list[Arg] = [*backend.outbox_keys, backend.keys.outbox_done]

    async def _change(self, script: Script, retry: Retry, item_id: str, *args: Arg) -> int:
        return int(
            await self._db.evalsha(
                script,
                self._outbox_keys,
                [*self._outbox_args, item_id, *args],
                retry=retry,
                guard=(_OUTBOX_ITEM, item_id),
            )
        )

    async def enqueue(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        args = _item_args(items)
        if not items:
            return []
        result = await self._db.evalsha(
            ENQUEUE,
            self._outbox_keys,
            [*self._outbox_args, len(items), *args],
            retry=ENQUEUE_AGAIN,  # new items: no guard (no earlier write of them)
        )
        return _enqueued(items, result)

    async def due(self, now: datetime, *, limit: int = 100) -> list[OutboxItem]:
        codec.check_page(limit, 0)
        at = codec.time_key(now, "now")
        if limit == 0:
            return []
        keys = self._keys
        rows = await self._db.evalsha(
            DUE, [keys.outbox_due], [keys.outbox_item_prefix, at, limit], retry=True
        )
        return _decode_items(rows)

    async def _done(self, script: Script, retry: bool, item_id: str, at: datetime | None) -> int:
        when: Arg = "" if at is None else codec.time_key(at, "at")
        return int(
            await self._db.evalsha(
                script,
                self._done_keys,
                [*self._outbox_args, item_id, when],
                retry=retry,
                guard=(_OUTBOX_ITEM, item_id),
            )
        )

    async def complete(self, item_id: str, *, at: datetime | None = None) -> None:
        await self._done(COMPLETE, True, item_id, at)

    async def retry_later(self, item_id: str, next_attempt_at: datetime, error: str) -> None:
        at = codec.time_key(next_attempt_at, "next_attempt_at")
        await self._change(RETRY_LATER, RETRY_LATER_AGAIN, item_id, at, json.dumps(error))

    async def fail(self, item_id: str, error: str) -> None:
        await self._change(FAIL, True, item_id, json.dumps(error))

    async def replay(self, item_id: str, now: datetime) -> bool:
        at = codec.time_key(now, "now")
        return bool(await self._change(REPLAY, False, item_id, at))

    async def discard(self, item_id: str, *, at: datetime | None = None) -> bool:
        return bool(await self._done(DISCARD, False, item_id, at))

    async def purge_done(self, before: datetime, *, limit: int = 1000) -> int:
        codec.check_page(limit, 0)
        cutoff = codec.time_key(before, "before")
        if limit == 0:
            return 0
        return int(
            await self._db.evalsha(
                PURGE_DONE, self._done_keys, [*self._outbox_args, cutoff, limit], retry=True
            )
        )

    async def get(self, item_id: str) -> OutboxItem | None:
        values = await self._db.command(
            "HMGET", self._keys.outbox_item(item_id), *_ITEM_FIELDS, retry=True
        )
        return _decode_item(values)

    async def pending_count(self, partner_id: str) -> int:
        key = self._keys.outbox_partner_status(OutboxStatus.PENDING.value, partner_id)
        return int(await self._db.command("ZCARD", key, retry=True))

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
        rows = await self._db.evalsha(
            LIST_ITEMS, [index], [keys.outbox_item_prefix, offset, offset + limit - 1], retry=True
        )
        return _decode_items(rows)


class RedisLeaseStore:
    """Leases as ``lease:{name}`` keys holding the holder, expiring by ``PX`` (the Redis
    server's clock; see ``LeaseStore``)."""

    def __init__(self, backend: _RedisBackend) -> None:
        self._db = backend.db
        self._keys = backend.keys

    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        return await self._call(ACQUIRE_LEASE, name, holder, ttl)

    async def renew(self, name: str, holder: str, ttl: float) -> bool:
        return await self._call(RENEW_LEASE, name, holder, ttl)

    async def release(self, name: str, holder: str) -> None:
        check_lease(name, holder)
        key = self._keys.lease(name)
        await self._db.evalsha(RELEASE_LEASE, [key], [holder], retry=True, guard=key)

    async def holder(self, name: str) -> str | None:
        check_lease(name, "-")
        value = await self._db.command("GET", self._keys.lease(name), retry=True)
        return None if value is None else _text(value)

    async def _call(self, script: Script, name: str, holder: str, ttl: float) -> bool:
        check_lease(name, holder, ttl)
        key = self._keys.lease(name)
        ms = max(1, round(ttl * 1000))
        return bool(await self._db.evalsha(script, [key], [holder, ms], retry=True, guard=key))


# Owner records are renewed in chunks of this many keys per script call: one call for a
# few hundred chargers, none long enough to hold the server up.
RENEW_CHUNK: Final = 500


def _micros(value: datetime) -> int:
    return codec.time_key(value, "time")


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _from_micros(value: bytes | str | None) -> datetime | None:
    if value is None or value == b"" or value == "":
        return None
    # Integer arithmetic: a float of the seconds loses microseconds past the year 2300.
    return _EPOCH + timedelta(microseconds=int(value))


class RedisOwnershipStore:
    """Owner records as ``owner:{charger_id}`` hashes expiring by ``PX`` (see
    ``OwnershipStore``); every write a script that checks the node first."""

    def __init__(self, backend: _RedisBackend) -> None:
        self._db = backend.db
        self._keys = backend.keys

    async def claim(self, charger_id: str, node: str, since: datetime, ttl: float) -> str | None:
        check_owner(charger_id, node, ttl)
        key = self._keys.owner(charger_id)
        # Sent again after a lost answer: the repeat finds this node's record and answers
        # None; the old owner then learns it lost the charger at its next renew.
        previous = await self._db.evalsha(
            CLAIM_OWNER, [key], [node, _micros(since), _ms(ttl)], retry=True, guard=key
        )
        return None if previous is None else _text(previous)

    async def renew(
        self,
        node: str,
        charger_ids: Sequence[str],
        ttl: float,
        heartbeats: Sequence[datetime | None] = (),
    ) -> list[str]:
        check_owner("-", node, ttl)
        self._check_open()
        # Every heartbeat encoded (a naive one refused) before the first chunk is sent.
        encoded: list[str | int] = [
            "" if (b := heartbeats[i] if i < len(heartbeats) else None) is None else _micros(b)
            for i in range(len(charger_ids))
        ]
        lost: list[str] = []
        for start in range(0, len(charger_ids), RENEW_CHUNK):
            ids = charger_ids[start : start + RENEW_CHUNK]
            beats = encoded[start : start + len(ids)]
            keys = [self._keys.owner(c) for c in ids]
            # Sent again after a lost answer: extending twice is extending once.
            positions = await self._db.evalsha(
                RENEW_OWNERS, keys, [node, _ms(ttl), *beats], retry=True
            )
            lost.extend(ids[int(p) - 1] for p in positions)
        return lost

    async def release(self, charger_id: str, node: str) -> bool:
        check_owner(charger_id, node)
        key = self._keys.owner(charger_id)
        # Sent again after a lost answer: a repeat finds nothing of this node's and
        # answers False, which the caller reads as "another process holds it": the
        # offline record is then not written, and the offline sweep writes it.
        return bool(await self._db.evalsha(RELEASE_OWNER, [key], [node], retry=True, guard=key))

    def _check_open(self) -> None:
        # Calls that may send no command at all (empty lists) still say the store is closed.
        if self._db.closed:
            raise StorageError("the Redis store is closed")

    async def owners(self, charger_ids: Sequence[str]) -> list[Owner | None]:
        self._check_open()
        futures = [
            self._db.command("HMGET", self._keys.owner(c), "node", "since", "hb", retry=True)
            for c in charger_ids
        ]
        out: list[Owner | None] = []
        for future in futures:
            node, since, beat = await future
            if node is None or since is None:
                out.append(None)
                continue
            started = _from_micros(since)
            assert started is not None
            out.append(Owner(_text(node), started, _from_micros(beat)))
        return out


def _ms(ttl: float) -> int:
    return max(1, round(ttl * 1000))


class RedisMessageStore:
    """Messages over Redis pub/sub (``channel:{name}``): PUBLISH through the batcher,
    each subscription on a connection of its own (:class:`RedisSubscription`)."""

    def __init__(self, backend: _RedisBackend) -> None:
        self._db = backend.db
        self._keys = backend.keys

    async def publish(self, channel: str, message: bytes) -> int:
        # Not sent again after a lost answer: the message may have gone out, and a
        # receiver must not get it twice (the caller sees StorageUnavailable).
        return int(await self._db.command("PUBLISH", self._keys.channel(channel), message))

    async def subscribers(self, channels: Sequence[str]) -> list[int]:
        if self._db.closed:
            raise StorageError("the Redis store is closed")
        if not channels:
            return []
        names = [self._keys.channel(c) for c in channels]
        reply = await self._db.command("PUBSUB", "NUMSUB", *names, retry=True)
        counts = dict(zip(reply[0::2], reply[1::2], strict=True))  # RESP2: name, count, ...
        return [int(counts.get(n.encode(), 0)) for n in names]

    def subscribe(
        self, channels: Sequence[str], listener: Listener, on_gap: Callable[[], None]
    ) -> RedisSubscription:
        if self._db.closed:
            raise StorageError("the Redis store is closed")
        names = {self._keys.channel(c): c for c in channels}
        # With Sentinel, it subscribes again on the new master after a failover.
        watch = self._db.on_master_moved if self._db.sentinel else None
        return RedisSubscription(self._db.pool, names, listener, on_gap, watch)


def _glob_escape(text: str) -> str:
    """``text`` matched literally in a SCAN/KEYS pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisStatusHistoryStore:
    def __init__(self, backend: _RedisBackend) -> None:
        self._db = backend.db
        self._keys = backend.keys

    async def append(self, entries: Sequence[StatusEntry]) -> None:
        by_charger: dict[str, list[Arg]] = {}
        for entry, (score, data) in zip(entries, await history.encode_all(entries), strict=True):
            by_charger.setdefault(entry.charger_id, []).extend((score, entry.slot, data))
        keys = self._keys
        await asyncio.gather(
            *(
                self._db.evalsha(
                    APPEND_HISTORY,
                    [
                        keys.status_history(cid),
                        keys.status_history_seq,
                        keys.status_history_chargers,
                    ],
                    [cid, *args],
                    retry=True,
                    guard=keys.status_history(cid),
                )
                for cid, args in by_charger.items()
            )
        )

    async def list(
        self,
        charger_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        newest_first: bool = False,
        offset: int = 0,
        limit: int = 1000,
    ) -> list[StatusEntry]:
        codec.check_page(limit, offset)
        low = "-inf" if since is None else str(codec.time_key(since, "since"))
        high = "+inf" if until is None else "(" + str(codec.time_key(until, "until"))
        key = self._keys.status_history(charger_id)
        if limit == 0:
            return []
        if newest_first:
            members = await self._db.command(
                "ZREVRANGEBYSCORE", key, high, low, "LIMIT", offset, limit, retry=True
            )
        else:
            members = await self._db.command(
                "ZRANGEBYSCORE", key, low, high, "LIMIT", offset, limit, retry=True
            )
        return [history.decode(codec.loads(_text(m).split("|", 2)[2])) for m in members]

    async def purge(self, before: datetime) -> int:
        cutoff = "(" + str(codec.time_key(before, "before"))
        members = await self._db.command("SMEMBERS", self._keys.status_history_chargers, retry=True)
        chargers = sorted(_text(m) for m in members)
        deleted = 0
        for start in range(0, len(chargers), 500):  # pipelined, a bounded number at once
            counts = await asyncio.gather(
                *(
                    self._db.evalsha(
                        PURGE_HISTORY,
                        [self._keys.status_history(cid)],
                        [cutoff],
                        retry=True,
                        guard=self._keys.status_history(cid),
                    )
                    for cid in chargers[start : start + 500]
                )
            )
            deleted += sum(int(c) for c in counts)
        return deleted
