"""Who the hub routes to: platforms, their parties and endpoints, connection status.

A *platform* is one OCPI connection (one credentials token, one versions endpoint): it
hosts one or more *parties* ``(country_code, party_id)``, each with one or more roles,
and exposes endpoints per ``(module, interface role)``. A *local* platform is served
in-process by the hub's host (the gateway's own CPO parties): it lists the interfaces it
implements but has no URLs; routing answers :class:`~ocpi.hub.routing.Local` for it.

:class:`PartyDirectory` is what routing reads (synchronous: the host keeps a snapshot in
memory); :class:`InMemoryPartyDirectory` is a complete implementation, also the one the
tests build by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from ocpi.transport import PartyId
from ocpi.v221.enums import ConnectionStatus, InterfaceRole
from ocpi.v221.types import Role

__all__ = [
    "EndpointKey",
    "InMemoryPartyDirectory",
    "MutablePartyDirectory",
    "Party",
    "PartyDirectory",
    "Platform",
]

EndpointKey = tuple[str, InterfaceRole]
"""``(module identifier, interface role)``, e.g. ``("locations", InterfaceRole.SENDER)``."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Platform:
    """One connected platform. ``endpoints`` maps each implemented interface to its URL;
    a ``local`` platform's URLs are meaningless (conventionally empty) and never used.
    ``versions_url`` is what the still-alive check GETs."""

    id: str
    endpoints: Mapping[EndpointKey, str] = field(default_factory=dict)
    local: bool = False
    versions_url: str | None = None

    @classmethod
    def in_process(cls, platform_id: str, interfaces: Iterable[EndpointKey]) -> Platform:
        """A local platform implementing ``interfaces``."""
        return cls(platform_id, {key: "" for key in interfaces}, local=True)

    def implements(self, module: str, role: InterfaceRole) -> bool:
        return (module, role) in self.endpoints

    def endpoint_url(self, module: str, role: InterfaceRole) -> str | None:
        """The URL of an interface; None when not implemented or local."""
        if self.local:
            return None
        return self.endpoints.get((module, role))


@dataclass(frozen=True, slots=True)
class Party:
    """A party on a platform, with its roles (OCPI CredentialsRole entries sharing a
    country_code and party_id)."""

    id: PartyId
    roles: frozenset[Role]
    platform_id: str
    name: str | None = None

    @property
    def sort_key(self) -> tuple[str, str]:
        return (self.id.country_code, self.id.party_id)


class PartyDirectory(Protocol):
    """Read access for routing, GET All and HubClientInfo."""

    def party(self, party_id: PartyId) -> Party | None: ...

    def parties(self) -> Sequence[Party]:
        """Every party, ordered by (country_code, party_id)."""
        ...

    def platform(self, platform_id: str) -> Platform | None: ...

    def platforms(self) -> Sequence[Platform]:
        """Every platform, ordered by id."""
        ...

    def parties_of(self, platform_id: str) -> Sequence[Party]:
        """The parties of a platform, ordered by (country_code, party_id)."""
        ...

    def status(self, party_id: PartyId) -> ConnectionStatus:
        """The party's connection status; OFFLINE for an unknown party."""
        ...

    def status_changed_at(self, party_id: PartyId) -> datetime:
        """When the status last changed (the ClientInfo ``last_updated``)."""
        ...


class MutablePartyDirectory(PartyDirectory, Protocol):
    def set_status(self, party_id: PartyId, status: ConnectionStatus, at: datetime) -> bool:
        """Set a party's status; True when it changed (the time is then recorded)."""
        ...


class InMemoryPartyDirectory:
    """A :class:`MutablePartyDirectory` held in dicts.

    Build it with :meth:`add_platform` then :meth:`add_party`; a party id belongs to one
    platform at a time (adding it again moves it and merges nothing).
    """

    def __init__(self) -> None:
        self._platforms: dict[str, Platform] = {}
        self._parties: dict[PartyId, Party] = {}
        self._status: dict[PartyId, tuple[ConnectionStatus, datetime]] = {}

    # ---------------------------------------------------------------- building

    def add_platform(self, platform: Platform) -> Platform:
        self._platforms[platform.id] = platform
        return platform

    def add_party(
        self,
        party_id: PartyId,
        roles: Iterable[Role],
        platform_id: str,
        *,
        name: str | None = None,
        status: ConnectionStatus = ConnectionStatus.CONNECTED,
        at: datetime = _EPOCH,
    ) -> Party:
        if platform_id not in self._platforms:
            raise KeyError(f"unknown platform {platform_id!r}")
        role_set = frozenset(roles)
        if not role_set:
            raise ValueError("a party needs at least one role")
        party = Party(party_id, role_set, platform_id, name)
        self._parties[party_id] = party
        self._status[party_id] = (status, at)
        return party

    def remove_platform(self, platform_id: str) -> list[Party]:
        """Remove a platform and its parties; returns the parties removed."""
        self._platforms.pop(platform_id, None)
        gone = [p for p in self._parties.values() if p.platform_id == platform_id]
        for party in gone:
            del self._parties[party.id]
            self._status.pop(party.id, None)
        return sorted(gone, key=lambda p: p.sort_key)

    # ----------------------------------------------------------------- reading

    def party(self, party_id: PartyId) -> Party | None:
        return self._parties.get(party_id)

    def parties(self) -> Sequence[Party]:
        return sorted(self._parties.values(), key=lambda p: p.sort_key)

    def platform(self, platform_id: str) -> Platform | None:
        return self._platforms.get(platform_id)

    def platforms(self) -> Sequence[Platform]:
        return [self._platforms[k] for k in sorted(self._platforms)]

    def parties_of(self, platform_id: str) -> Sequence[Party]:
        return [p for p in self.parties() if p.platform_id == platform_id]

    def status(self, party_id: PartyId) -> ConnectionStatus:
        entry = self._status.get(party_id)
        return entry[0] if entry is not None else ConnectionStatus.OFFLINE

    def status_changed_at(self, party_id: PartyId) -> datetime:
        entry = self._status.get(party_id)
        return entry[1] if entry is not None else _EPOCH

    def statuses(self) -> dict[PartyId, ConnectionStatus]:
        """A snapshot of every party's status (for :func:`~ocpi.hub.clientinfo.status_changes`)."""
        return {pid: entry[0] for pid, entry in self._status.items()}

    # ---------------------------------------------------------------- mutating

    def set_status(self, party_id: PartyId, status: ConnectionStatus, at: datetime) -> bool:
        if party_id not in self._parties:
            raise KeyError(f"unknown party {party_id}")
        if self._status[party_id][0] == status:
            return False
        self._status[party_id] = (status, at)
        return True
