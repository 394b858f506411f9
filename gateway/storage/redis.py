"""Redis backend (redis.asyncio), used when a Redis URL is configured.

Key names: :mod:`gateway.storage.redis_keys`. Values: the JSON of
:mod:`gateway.storage.codec`, as for SQLite.

Every multi-key write is one Lua script call (atomic, one round trip): creating or
saving a transaction with its readings and index entries. Redis does not roll a
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

from collections.abc import Iterable, Sequence
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
from gateway.storage.base import StorageError, Store
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
                async with client.pipeline(transaction=False) as pipe:
                    pipe.set(keys.schema, LAYOUT_VERSION, nx=True)
                    pipe.get(keys.schema)
                    _, version = await pipe.execute()
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
