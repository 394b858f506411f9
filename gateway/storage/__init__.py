"""Persistence: narrow store interfaces per entity, bundled in :class:`Store`.

Backends: ``sqlite`` (embedded default, durable, WAL, its own thread so the event
loop never blocks) and ``redis`` (redis.asyncio; all key names in ``redis_keys``).
Both pass the one contract suite in ``tests/storage`` and encode entities with the
shared ``codec``. The OCPI bridge keeps its objects as JSON ``Document``s (one
``DocumentStore`` per collection) and its requests to partners in the ``OutboxStore``;
a document and the outbox items it causes are written in one atomic step.
Open one with ``gateway.storage.factory.open_store``.
Imports: ``gateway.domain`` only.
"""

from gateway.storage.base import (
    ChargerStateStore,
    ChargerStore,
    ConnectorStore,
    Document,
    DocumentStore,
    OutboxItem,
    OutboxStatus,
    OutboxStore,
    StorageError,
    Store,
    TokenStore,
    TransactionStore,
)
from gateway.storage.codec import NaiveDatetimeError

__all__ = [
    "ChargerStateStore",
    "ChargerStore",
    "ConnectorStore",
    "Document",
    "DocumentStore",
    "NaiveDatetimeError",
    "OutboxItem",
    "OutboxStatus",
    "OutboxStore",
    "StorageError",
    "Store",
    "TokenStore",
    "TransactionStore",
]
