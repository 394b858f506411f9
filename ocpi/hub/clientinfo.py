"""HubClientInfo (mod_hub_client_info): the hub's ClientInfo objects, the PUTs that tell
platforms about status changes, and the still-alive check.

* One ClientInfo per (party, role) in the directory, ``last_updated`` = when the party's
  status last changed; ordered by (country_code, party_id, role). A platform is told
  only about parties its own parties may exchange messages with (the routing rules),
  never about its own parties.
* :func:`status_changes` diffs a status snapshot against the directory;
  :func:`plan_pushes` turns ClientInfo objects into PUTs
  (``{endpoint}/{country_code}/{party_id}``) to every remote platform implementing the
  hubclientinfo RECEIVER interface that has a CONNECTED party. Nothing is queued for a
  platform whose parties are all offline: when it comes back, :func:`plan_resync` gives
  it the full list instead.
* :class:`StillAliveChecker`: the host reports activity (:meth:`~StillAliveChecker.
  note_activity`) and calls :meth:`~StillAliveChecker.run_once` periodically with the
  time. A platform silent for ``silence`` (5 minutes) is probed (a GET on its versions
  endpoint); no answer turns its CONNECTED parties OFFLINE, an answer or new activity
  turns its OFFLINE parties CONNECTED again. PLANNED and SUSPENDED are the operator's
  and never changed here. The check owns no timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from yarl import URL

from ocpi.hub.directory import MutablePartyDirectory, Party, PartyDirectory, Platform
from ocpi.hub.forward import Forwarder
from ocpi.hub.rules import OPEN, RoutingRules, is_allowed
from ocpi.transport import OcpiError, PageRequest, PartyId, new_request_id
from ocpi.v221.enums import ConnectionStatus, InterfaceRole, ModuleID
from ocpi.v221.hubclientinfo import ClientInfo

__all__ = [
    "AliveReport",
    "ClientInfoPush",
    "Probe",
    "StillAliveChecker",
    "client_info_page",
    "client_infos",
    "forwarder_probe",
    "party_infos",
    "plan_pushes",
    "plan_resync",
    "push_all",
    "status_changes",
]

_MODULE = str(ModuleID.HUB_CLIENT_INFO)


def party_infos(party: Party, status: ConnectionStatus, at: datetime) -> list[ClientInfo]:
    """One ClientInfo per role of ``party``, ordered by role."""
    return [
        ClientInfo(
            country_code=party.id.country_code,
            party_id=party.id.party_id,
            role=role,
            status=status,
            last_updated=at,
        )
        for role in sorted(party.roles)
    ]


def _visible_to(viewer: Sequence[PartyId] | None, party: PartyId, rules: RoutingRules) -> bool:
    if viewer is None:
        return True
    if party in viewer:
        return False
    return any(is_allowed(rules, v, party) for v in viewer)


def client_infos(
    directory: PartyDirectory,
    *,
    viewer: Sequence[PartyId] | None = None,
    rules: RoutingRules = OPEN,
) -> list[ClientInfo]:
    """Every ClientInfo, or those a platform with parties ``viewer`` may see."""
    out: list[ClientInfo] = []
    for party in directory.parties():
        if _visible_to(viewer, party.id, rules):
            out.extend(
                party_infos(
                    party, directory.status(party.id), directory.status_changed_at(party.id)
                )
            )
    return out


def client_info_page(
    directory: PartyDirectory,
    page: PageRequest,
    *,
    viewer: Sequence[PartyId] | None = None,
    rules: RoutingRules = OPEN,
) -> tuple[list[ClientInfo], int]:
    """``(objects, total)`` for the Sender interface's paginated GET (date window on
    ``last_updated``); serve with :func:`ocpi.server.paginated_response`."""
    matching = [
        info
        for info in client_infos(directory, viewer=viewer, rules=rules)
        if page.matches(info.last_updated)
    ]
    return matching[page.offset : page.offset + page.limit], len(matching)


def status_changes(
    before: Mapping[PartyId, ConnectionStatus], directory: PartyDirectory
) -> list[ClientInfo]:
    """ClientInfo of every party whose status differs from ``before`` (new parties
    included)."""
    out: list[ClientInfo] = []
    for party in directory.parties():
        status = directory.status(party.id)
        if before.get(party.id) != status:
            out.extend(party_infos(party, status, directory.status_changed_at(party.id)))
    return out


@dataclass(frozen=True, slots=True)
class ClientInfoPush:
    """A PUT of ``info`` to ``url`` on ``platform_id``."""

    platform_id: str
    url: str
    info: ClientInfo


def _receivers(directory: PartyDirectory) -> Iterable[tuple[Platform, str, list[PartyId]]]:
    for platform in directory.platforms():
        url = platform.endpoint_url(_MODULE, InterfaceRole.RECEIVER)
        if not url:
            continue
        own = [p.id for p in directory.parties_of(platform.id)]
        yield platform, url, own


def _push(platform: Platform, url: str, info: ClientInfo) -> ClientInfoPush:
    target = URL(url) / info.country_code / info.party_id
    return ClientInfoPush(platform.id, str(target), info)


def plan_pushes(
    infos: Sequence[ClientInfo], directory: PartyDirectory, rules: RoutingRules = OPEN
) -> list[ClientInfoPush]:
    """The PUTs telling every reachable platform about ``infos`` (module doc)."""
    pushes: list[ClientInfoPush] = []
    for platform, url, own in _receivers(directory):
        if not any(directory.status(p) is ConnectionStatus.CONNECTED for p in own):
            continue  # not queued: plan_resync when it comes back
        for info in infos:
            party = PartyId(info.country_code, info.party_id)
            if _visible_to(own, party, rules):
                pushes.append(_push(platform, url, info))
    return pushes


def plan_resync(
    platform_id: str, directory: PartyDirectory, rules: RoutingRules = OPEN
) -> list[ClientInfoPush]:
    """Every ClientInfo the platform may see, as PUTs (after it comes back)."""
    for platform, url, own in _receivers(directory):
        if platform.id == platform_id:
            infos = client_infos(directory, viewer=own, rules=rules)
            return [_push(platform, url, info) for info in infos]
    return []


async def push_all(
    pushes: Sequence[ClientInfoPush],
    put: Callable[[ClientInfoPush], Awaitable[None]],
    *,
    concurrency: int = 16,
) -> list[tuple[ClientInfoPush, Exception]]:
    """Run ``put`` for every push, at most ``concurrency`` at once; returns the
    failures (they are not retried: the platform resyncs with GET, or gets a resync
    when it is seen again)."""
    gate = asyncio.Semaphore(concurrency)
    failures: list[tuple[ClientInfoPush, Exception]] = []

    async def one(push: ClientInfoPush) -> None:
        async with gate:
            try:
                await put(push)
            except Exception as exc:
                failures.append((push, exc))

    await asyncio.gather(*(one(p) for p in pushes))
    return failures


# --------------------------------------------------------------- still alive

Probe = Callable[[Platform], Awaitable[bool]]
"""``async (platform) -> alive``: a GET on its versions endpoint answered."""


def forwarder_probe(forwarder: Forwarder, *, request_timeout: float = 10.0) -> Probe:
    """A :data:`Probe` GETting ``versions_url`` with the hub's token for the platform;
    alive when an OCPI response comes back with HTTP 2xx."""

    async def probe(platform: Platform) -> bool:
        if not platform.versions_url:
            return False
        try:
            response = await forwarder.request(
                platform.id,
                "GET",
                platform.versions_url,
                correlation_id=new_request_id(),
                request_timeout=request_timeout,
            )
        except OcpiError:
            return False
        return 200 <= response.status < 300

    return probe


@dataclass(slots=True)
class AliveReport:
    changes: list[ClientInfo] = field(default_factory=list)
    """ClientInfo of every party whose status changed (push with :func:`plan_pushes`)."""
    came_back: list[str] = field(default_factory=list)
    """Platforms whose parties are CONNECTED again (resync with :func:`plan_resync`)."""
    went_offline: list[str] = field(default_factory=list)
    probed: list[str] = field(default_factory=list)


_MANAGED = (ConnectionStatus.CONNECTED, ConnectionStatus.OFFLINE)


class StillAliveChecker:
    """See the module doc. Local platforms are never probed."""

    def __init__(
        self,
        directory: MutablePartyDirectory,
        probe: Probe,
        *,
        silence: timedelta = timedelta(minutes=5),
    ) -> None:
        self._directory = directory
        self._probe = probe
        self.silence = silence
        self._last_seen: dict[str, datetime] = {}

    def note_activity(self, platform_id: str, now: datetime) -> None:
        """A message was received from the platform at ``now``."""
        previous = self._last_seen.get(platform_id)
        if previous is None or now > previous:
            self._last_seen[platform_id] = now

    def last_seen(self, platform_id: str) -> datetime | None:
        return self._last_seen.get(platform_id)

    async def run_once(self, now: datetime) -> AliveReport:
        report = AliveReport()
        silent: list[Platform] = []
        for platform in self._directory.platforms():
            if platform.local:
                continue
            last = self._last_seen.setdefault(platform.id, now)
            if now - last >= self.silence:
                silent.append(platform)
            else:
                self._mark(platform, True, now, report)
        results = await asyncio.gather(*(self._safe_probe(p) for p in silent))
        for platform, alive in zip(silent, results, strict=True):
            report.probed.append(platform.id)
            if alive:
                self._last_seen[platform.id] = now
            self._mark(platform, alive, now, report)
        return report

    async def _safe_probe(self, platform: Platform) -> bool:
        try:
            return await self._probe(platform)
        except Exception:
            return False

    def _mark(self, platform: Platform, alive: bool, now: datetime, report: AliveReport) -> None:
        new = ConnectionStatus.CONNECTED if alive else ConnectionStatus.OFFLINE
        changed = False
        for party in self._directory.parties_of(platform.id):
            if self._directory.status(party.id) not in _MANAGED:
                continue
            if self._directory.set_status(party.id, new, now):
                changed = True
                report.changes.extend(party_infos(party, new, now))
        if changed:
            (report.came_back if alive else report.went_offline).append(platform.id)
