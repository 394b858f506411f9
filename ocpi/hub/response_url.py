"""Proxying the ``response_url`` of commands through the hub.

An eMSP's command (``POST .../commands/START_SESSION`` and the others) carries the URL
where the CPO is to POST the CommandResult. The CPO cannot (and must not) call the eMSP
directly, so the hub replaces it with a hub URL ``{base}/{id}``, ``id`` being 256 random
bits (``secrets.token_urlsafe``), and keeps ``id -> (eMSP's URL, eMSP, CPO)`` in a
:class:`ResponseUrlStore`, keyed by the SHA-256 of the id so that a store dump does not
hold live URLs. When the CPO POSTs to the hub URL, :meth:`ResponseUrlProxy.resolve`
gives back where to forward it: the eMSP's URL and party (whose platform's token the
forwarder uses). An entry answers until it expires (``ttl``, one hour by default: a
command's result follows within minutes), so a repeated result is delivered too.

Only the ``response_url`` field of the command body is changed: the rest of the object
is decoded with exact numbers and written back with the same values.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from yarl import URL

from ocpi.transport import (
    InvalidParametersError,
    NotFoundError,
    PartyId,
    json_dumps,
    json_loads,
)

__all__ = [
    "InMemoryResponseUrlStore",
    "ProxiedResponseUrl",
    "ResponseUrlProxy",
    "ResponseUrlStore",
]


@dataclass(frozen=True, slots=True)
class ProxiedResponseUrl:
    """Where a CommandResult posted to the hub goes: ``url`` of ``requester`` (the
    eMSP); ``receiver`` is the party the command was sent to (the only one whose result
    is accepted, when known)."""

    url: str
    requester: PartyId
    receiver: PartyId | None
    expires_at: datetime


class ResponseUrlStore(Protocol):
    async def put(self, key: str, entry: ProxiedResponseUrl) -> None: ...

    async def get(self, key: str) -> ProxiedResponseUrl | None: ...


class InMemoryResponseUrlStore:
    """A dict; expired entries are dropped by :meth:`prune`."""

    def __init__(self) -> None:
        self.entries: dict[str, ProxiedResponseUrl] = {}

    async def put(self, key: str, entry: ProxiedResponseUrl) -> None:
        self.entries[key] = entry

    async def get(self, key: str) -> ProxiedResponseUrl | None:
        return self.entries.get(key)

    def prune(self, now: datetime) -> int:
        expired = [k for k, e in self.entries.items() if e.expires_at <= now]
        for key in expired:
            del self.entries[key]
        return len(expired)


def _key(proxy_id: str) -> str:
    return hashlib.sha256(proxy_id.encode("utf-8")).hexdigest()


class ResponseUrlProxy:
    """Rewrites and resolves proxied response URLs under ``base_url``
    (e.g. ``https://hub.example.com/ocpi/2.2.1/commands/results``)."""

    def __init__(
        self,
        store: ResponseUrlStore,
        base_url: str | URL,
        *,
        ttl: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = lambda: secrets.token_urlsafe(32),
    ) -> None:
        self._store = store
        self.base_url = URL(str(base_url))
        self.ttl = ttl
        self._clock = clock
        self._new_id = new_id

    async def proxy(self, url: str, *, requester: PartyId, receiver: PartyId | None) -> str:
        """A new hub URL standing for ``url``."""
        proxy_id = self._new_id()
        entry = ProxiedResponseUrl(url, requester, receiver, self._clock() + self.ttl)
        await self._store.put(_key(proxy_id), entry)
        return str(self.base_url / proxy_id)

    async def rewrite_command(
        self, body: bytes, *, requester: PartyId, receiver: PartyId | None
    ) -> bytes:
        """The command body with its ``response_url`` replaced by a hub URL.
        :class:`InvalidParametersError` (2001) when the body has no ``response_url``."""
        try:
            command = json_loads(body)
        except ValueError:
            raise InvalidParametersError("body: not JSON") from None
        url = command.get("response_url") if isinstance(command, dict) else None
        if not isinstance(url, str) or not url:
            raise InvalidParametersError("response_url: field required")
        command["response_url"] = await self.proxy(url, requester=requester, receiver=receiver)
        return json_dumps(command).encode("utf-8")

    def proxy_id(self, url: str | URL) -> str | None:
        """The id of a hub response URL, None when ``url`` is not one."""
        target = URL(str(url))
        base = self.base_url.path.rstrip("/") + "/"
        if not target.path.startswith(base):
            return None
        rest = target.path[len(base) :]
        return rest if rest and "/" not in rest else None

    async def resolve(self, proxy_id: str, *, poster: PartyId | None = None) -> ProxiedResponseUrl:
        """Where a result POSTed to ``{base}/{proxy_id}`` goes. :class:`NotFoundError`
        (HTTP 404) when the id is unknown, expired, or ``poster`` is not the party the
        command was sent to."""
        entry = await self._store.get(_key(proxy_id))
        if entry is None or entry.expires_at <= self._clock():
            raise NotFoundError("unknown or expired response URL")
        if poster is not None and entry.receiver is not None and poster != entry.receiver:
            raise NotFoundError("unknown or expired response URL")
        return entry
