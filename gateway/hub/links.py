"""Durable stores behind the hub: proxied command response URLs and who owns the
objects routed through the hub (for open routing)."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from gateway.storage.base import Document, DocumentStore
from ocpi.hub.response_url import ProxiedResponseUrl
from ocpi.transport import PartyId


class StoredResponseUrls:
    """:class:`ocpi.hub.response_url.ResponseUrlStore` on ``Store.hub_links``: a result
    posted after a restart still reaches the eMSP. ``last_updated`` is the expiry, so
    :meth:`purge` finds the expired entries with a date filter."""

    def __init__(self, store: DocumentStore) -> None:
        self._store = store

    async def put(self, key: str, entry: ProxiedResponseUrl) -> None:
        data = {
            "url": entry.url,
            "requester": str(entry.requester),
            "receiver": str(entry.receiver) if entry.receiver is not None else None,
            "expires_at": entry.expires_at.isoformat(),
        }
        await self._store.put(Document(key, data, entry.expires_at))

    async def get(self, key: str) -> ProxiedResponseUrl | None:
        doc = await self._store.get(key)
        if doc is None:
            return None
        d = doc.data
        return ProxiedResponseUrl(
            url=d["url"],
            requester=PartyId.parse(d["requester"]),
            receiver=PartyId.parse(d["receiver"]) if d.get("receiver") else None,
            expires_at=datetime.fromisoformat(d["expires_at"]),
        )

    async def purge(self, now: datetime, *, batch: int = 500) -> int:
        """Delete the entries expired before ``now``; returns how many."""
        deleted = 0
        while True:
            docs, _ = await self._store.list(date_to=now, limit=batch)
            for doc in docs:
                deleted += await self._store.delete(doc.key)
            if len(docs) < batch:
                return deleted


class OwnerIndex:
    """Who owns an object that went through the hub, by kind and id: the CPO of a
    location (its pushes), the eMSP of a token (its pushes), the eMSP of a session (its
    PUT). Open routing of a request that names the object but no receiver (a command
    for a location, a token's real-time authorization, a session PATCH) uses it. An id
    claimed by two parties has no owner: the request must name its receiver.

    A session's entries (``EXPIRING`` kinds: one or two per session routed, for ever more
    sessions) carry their kind as the document's ``owner`` and are deleted by
    :meth:`purge` once older than the retention; locations, tokens and contracts stay.
    Session entries written before they carried their kind are not purged."""

    EXPIRING = ("session", "session-cpo")

    def __init__(self, store: DocumentStore, *, cache_size: int = 10_000) -> None:
        self._store = store
        # Every push of a location or token notes its owner: the recent keys are kept
        # in memory so that a repeated push costs no storage read (this process is the
        # index's only writer).
        self._cache: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._cache_size = cache_size

    @staticmethod
    def _key(kind: str, object_id: str) -> str:
        return f"{kind}:{object_id.upper()}"

    async def _owners(self, key: str) -> tuple[str, ...]:
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        doc = await self._store.get(key)
        owners = tuple(doc.data.get("owners", [])) if doc is not None else ()
        self._remember(key, owners)
        return owners

    def _remember(self, key: str, owners: tuple[str, ...]) -> None:
        self._cache[key] = owners
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def note(self, kind: str, object_id: str, owner: PartyId, at: datetime) -> None:
        key = self._key(kind, object_id)
        owners = await self._owners(key)
        if str(owner) in owners:
            return
        owners = (*owners, str(owner))
        expiring = kind if kind in self.EXPIRING else None
        await self._store.put(Document(key, {"owners": list(owners)}, at, expiring))
        self._remember(key, owners)

    async def purge(self, before: datetime, *, batch: int = 500) -> int:
        """Delete the session entries noted before ``before``; returns how many."""
        deleted = 0
        for kind in self.EXPIRING:
            while True:
                docs, _ = await self._store.list(owner=kind, date_to=before, limit=batch)
                for doc in docs:
                    deleted += await self._store.delete(doc.key)
                    self._cache.pop(doc.key, None)
                if len(docs) < batch:
                    break
        return deleted

    async def owner(self, kind: str, object_id: str) -> PartyId | None:
        owners = await self._owners(self._key(kind, object_id))
        return PartyId.parse(owners[0]) if len(owners) == 1 else None

    async def note_token(
        self, contract_id: str, owner: PartyId, uid: str, token_type: str, at: datetime
    ) -> None:
        """A token's contract id (a 2.1.1 ``auth_id``) and its eMSP, uid and type: a
        2.1.1 CPO's session or CDR names only the ``auth_id``. Claimed by two eMSPs, it
        has no owner."""
        key = self._key("contract", contract_id)
        doc = await self._store.get(key)
        owners = list(doc.data.get("owners", [])) if doc is not None else []
        if str(owner) not in owners:
            owners.append(str(owner))
        data = {"owners": owners, "uid": uid, "type": token_type}
        if doc is None or doc.data != data:
            await self._store.put(Document(key, data, at))
        self._remember(key, tuple(owners))

    async def token(self, contract_id: str) -> tuple[PartyId, str, str] | None:
        """(eMSP, uid, type) of the token with that contract id, when one eMSP has it."""
        doc = await self._store.get(self._key("contract", contract_id))
        owners = doc.data.get("owners", []) if doc is not None else []
        if doc is None or len(owners) != 1:
            return None
        return PartyId.parse(owners[0]), str(doc.data.get("uid")), str(doc.data.get("type"))
