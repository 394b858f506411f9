"""The hub's party directory, kept in step with the partner registry.

Every REGISTERED partner of kind HUB is a platform, its credentials roles its parties;
the CPO parties hosted on the gateway are the parties of one in-process platform
(:data:`LOCAL_PLATFORM`). The directory is rebuilt from the registry after each change
(a handful of platforms: cheap), keeping each party's connection status. A party id
belongs to the first platform that claimed it: a hosted party, then partners in order
of creation; a later claim is ignored (logged), so that no platform can take over
another's party by registering it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.roaming.partners import Partner, PartnerKind, PartnerRegistry, PartnerStatus
from ocpi.hub.clientinfo import party_infos
from ocpi.hub.directory import EndpointKey, InMemoryPartyDirectory, Party, Platform
from ocpi.hub.routing import CPO_INTERFACE, serves
from ocpi.hub.rules import RoutingRules, is_allowed
from ocpi.transport import PartyId
from ocpi.v221.enums import ConnectionStatus, InterfaceRole
from ocpi.v221.hubclientinfo import ClientInfo
from ocpi.v221.types import Role

log = logging.getLogger(__name__)

LOCAL_PLATFORM = "local"
"""The platform id of the parties hosted on the gateway."""

LOCAL_INTERFACES: tuple[EndpointKey, ...] = tuple(CPO_INTERFACE.items())
"""What the hosted CPOs serve: the CPO side of every standard module."""


@dataclass(frozen=True, slots=True)
class HostedParty:
    id: PartyId
    name: str


class HubDirectory:
    """An :class:`InMemoryPartyDirectory` (:attr:`view`) rebuilt from the registry."""

    def __init__(self, registry: PartnerRegistry, hosted: Sequence[HostedParty]) -> None:
        self._registry = registry
        self._hosted = list(hosted)
        self.view = InMemoryPartyDirectory()
        # PLANNED / SUSPENDED as the operator set them: they outlast rebuilds (and, kept
        # in the store by the hub, restarts); the still-alive check never touches them.
        self.operator_statuses: dict[PartyId, ConnectionStatus] = {}

    def rebuild(self, now: datetime) -> tuple[list[ClientInfo], list[ClientInfo]]:
        """Rebuild from the registry. Returns the ClientInfo of the parties whose status
        changed (new ones CONNECTED) and of those that left (SUSPENDED: "no longer
        active", mod_hub_client_info ConnectionStatus)."""
        old = self.view
        new = InMemoryPartyDirectory()
        new.add_platform(Platform.in_process(LOCAL_PLATFORM, LOCAL_INTERFACES))
        for hosted in self._hosted:
            status, at = _previous(old, hosted.id, now)
            new.add_party(
                hosted.id, [Role.CPO], LOCAL_PLATFORM, name=hosted.name, status=status, at=at
            )
        for partner in self._registry.registered():
            if partner.kind is not PartnerKind.HUB:
                continue
            new.add_platform(_platform(partner))
            for party_id, roles in _parties(partner):
                owner = new.party(party_id)
                if owner is not None:
                    log.warning(
                        "hub: platform %s claims party %s of platform %s; ignored",
                        partner.id,
                        party_id,
                        owner.platform_id,
                    )
                    continue
                status, at = _previous(old, party_id, now)
                override = self.operator_statuses.get(party_id)
                if override is not None and override is not status:
                    status, at = override, now
                new.add_party(party_id, roles, partner.id, status=status, at=at)
        changed = [
            info
            for party in new.parties()
            if old.party(party.id) is None or old.status(party.id) != new.status(party.id)
            for info in party_infos(party, new.status(party.id), new.status_changed_at(party.id))
        ]
        gone = [
            info
            for party in old.parties()
            if new.party(party.id) is None
            for info in party_infos(party, ConnectionStatus.SUSPENDED, now)
        ]
        self.view = new
        return changed, gone

    # -- MutablePartyDirectory, on the current view ---------------------------------

    def party(self, party_id: PartyId) -> Party | None:
        return self.view.party(party_id)

    def parties(self) -> Sequence[Party]:
        return self.view.parties()

    def platform(self, platform_id: str) -> Platform | None:
        return self.view.platform(platform_id)

    def platforms(self) -> Sequence[Platform]:
        return self.view.platforms()

    def parties_of(self, platform_id: str) -> Sequence[Party]:
        return self.view.parties_of(platform_id)

    def status(self, party_id: PartyId) -> ConnectionStatus:
        return self.view.status(party_id)

    def status_changed_at(self, party_id: PartyId) -> datetime:
        return self.view.status_changed_at(party_id)

    def set_status(self, party_id: PartyId, status: ConnectionStatus, at: datetime) -> bool:
        return self.view.set_status(party_id, status, at)

    def platform_of(self, party_id: PartyId) -> str | None:
        party = self.view.party(party_id)
        return party.platform_id if party is not None else None

    def reach(
        self,
        sender: PartyId,
        module: str,
        interface: InterfaceRole,
        platform_id: str,
        rules: RoutingRules,
    ) -> list[PartyId]:
        """The parties of ``platform_id`` that ``sender`` may address on ``interface``
        of ``module``: they serve it, are CONNECTED and the rules allow the pair (as a
        broadcast by the hub would pick them)."""
        return [
            party.id
            for party in self.view.parties_of(platform_id)
            if serves(party.roles, module, interface)
            and self.view.status(party.id) is ConnectionStatus.CONNECTED
            and is_allowed(rules, sender, party.id)
        ]


def _previous(
    old: InMemoryPartyDirectory, party_id: PartyId, now: datetime
) -> tuple[ConnectionStatus, datetime]:
    if old.party(party_id) is None:
        return ConnectionStatus.CONNECTED, now
    return old.status(party_id), old.status_changed_at(party_id)


def _platform(partner: Partner) -> Platform:
    endpoints: dict[EndpointKey, str] = {}
    for endpoint in partner.endpoints:
        try:
            endpoints[(endpoint.module, InterfaceRole(endpoint.role))] = endpoint.url
        except ValueError:
            continue  # an interface role OCPI does not define: nothing routes to it
    return Platform(partner.id, endpoints, versions_url=partner.versions_url)


def _parties(partner: Partner) -> Iterable[tuple[PartyId, set[Role]]]:
    grouped: dict[PartyId, set[Role]] = {}
    for raw in partner.roles:
        try:
            role = Role(str(raw.get("role")))
            party_id = PartyId(str(raw["country_code"]), str(raw["party_id"]))
        except (KeyError, ValueError):
            continue
        if role is Role.HUB:
            continue  # a hub behind a platform is not a party to route to
        grouped.setdefault(party_id, set()).add(role)
    return grouped.items()


def registered_hub_partner(partner: Partner | None) -> bool:
    return (
        partner is not None
        and partner.kind is PartnerKind.HUB
        and partner.status is PartnerStatus.REGISTERED
    )
