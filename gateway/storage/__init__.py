"""Persistence: narrow store interfaces per entity, bundled in :class:`Store`.

Backends: ``sqlite`` (embedded default, durable, WAL, its own thread so the event
loop never blocks) and ``redis`` (redis.asyncio; all key names in ``redis_keys``).
Both pass the one contract suite in ``tests/storage``.
Imports: ``gateway.domain`` only.
"""

from gateway.storage.base import (
    ChargerStateStore,
    ChargerStore,
    ConnectorStore,
    Store,
    TokenStore,
    TransactionStore,
)

__all__ = [
    "ChargerStateStore",
    "ChargerStore",
    "ConnectorStore",
    "Store",
    "TokenStore",
    "TransactionStore",
]
