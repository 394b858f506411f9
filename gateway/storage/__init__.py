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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    """The names below, imported when first asked for (PEP 562): a submodule imported
    alone (the writer processes' ``writer_child`` and what it runs) does not import the
    entities' models with them."""
    if name == "NaiveDatetimeError":
        from gateway.storage import codec

        return codec.NaiveDatetimeError
    if name in __all__:
        from gateway.storage import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
