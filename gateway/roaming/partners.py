"""Roaming partners and the OCPI credentials handshake (credentials.asciidoc), in OCPI
2.1.1, 2.2.1 and 2.3.0.

Each partner is served and called in one version (``Partner.version``; records of
earlier releases have none and are 2.2.1): when we register at a partner, the highest
version both sides support; when a partner registers with us, the version whose
credentials URL it POSTs to; a PUT on another version's credentials URL switches to that
version ("A PUT will switch to the version that contains this credentials endpoint",
credentials, PUT Method, in every version), fetching the partner's endpoints of that
version. Credentials, versions and endpoints are kept in the internal form (the 2.2.1
models): a 2.1.1 credentials object (one party, no roles) is read as one EMSP role, a
2.3.0 ``hub_party_id`` as a HUB role (:mod:`ocpi.versions`). The token goes in the
Authorization header as it is to a 2.1.1 partner, Base64-encoded to the others.

Token names follow the direction of each call rather than the spec's A/B/C letters,
which depend on who started the registration:

- ``token_a``: the registration token we issue to a partner (valid only for the
  versions and credentials modules, until it has registered; then discarded);
- ``our_token``: what the partner sends to call us (its TOKEN_C when it registered
  with us, our TOKEN_B when we registered with it);
- ``their_token``: what we send to call the partner.

Our tokens are random 256-bit values. At rest (and in memory) the first two are only
SHA-256 digests (``token_a_hash``, ``our_token_hash``, :func:`gateway.roaming.vault.
hash_token`): the clear token A is handed to the operator once, when the partner is
created, and ours once, in the credentials answer. ``their_token`` is stored encrypted
under the operator's secret key (:class:`~gateway.roaming.vault.TokenVault`). Records
written in clear by earlier releases are converted when loaded.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
from pydantic import BaseModel

import ocpi.v211 as v211
import ocpi.v230 as v230
from gateway.domain.clock import Clock, IdFactory
from gateway.roaming.vault import TokenVault, hash_token
from gateway.storage.base import Document, DocumentStore
from ocpi.client import (
    ExchangeObserver,
    OcpiClient,
    OcpiClientError,
    OcpiHttpError,
    OcpiStatusError,
)
from ocpi.transport import (
    MethodNotAllowedError,
    UnsupportedVersionError,
    format_datetime,
    parse_datetime,
)
from ocpi.v221 import Credentials, CredentialsRole, Endpoint, Role, Version, VersionDetails
from ocpi.versions import SUPPORTED_VERSIONS, NotExpressible, version_key
from ocpi.versions import v211 as conv211
from ocpi.versions import v230 as conv230

log = logging.getLogger(__name__)

# Tokens whose digest PartnerRegistry.match keeps.
_DIGESTS_KEPT = 256

OCPI_VERSION = "2.2.1"


class PartnerKind(enum.StrEnum):
    """How a partner is connected (which of the gateway's OCPI URL spaces it uses)."""

    PEER = "PEER"  # bilateral: the gateway is its CPO (``/ocpi``)
    HUB = "HUB"  # a platform on the hub: the gateway routes for it (``/ocpi/hub``)


class PartnerStatus(enum.StrEnum):
    PENDING = "PENDING"  # token A issued, not registered yet
    REGISTERED = "REGISTERED"
    UNREGISTERED = "UNREGISTERED"


@dataclass(frozen=True, slots=True)
class PartnerEndpoint:
    module: str
    role: str  # SENDER / RECEIVER (of the partner)
    url: str


@dataclass(frozen=True, slots=True)
class Partner:
    id: str
    name: str
    status: PartnerStatus
    created_at: datetime
    updated_at: datetime
    token_a_hash: str | None = None  # hash_token(token A), never the token
    our_token_hash: str | None = None  # hash_token(what the partner sends us)
    their_token: str | None = None  # in clear in memory only: encrypted at rest
    versions_url: str | None = None
    version: str | None = None
    endpoints: tuple[PartnerEndpoint, ...] = ()
    roles: tuple[dict[str, Any], ...] = ()  # the partner's CredentialsRole objects, as sent
    kind: PartnerKind = PartnerKind.PEER
    # What the one party of its 2.1.1 credentials is (2.1.1 does not say): the
    # operator's choice for a hub platform (a 2.1.1 CPO platform), else EMSP.
    v211_role: Role = Role.EMSP
    # The IANA time zone of the 2.1.1 Locations a hub platform sends without one (2.1.1
    # makes it optional; 2.2.1 and 2.3.0 require it, and the hub reads every object of
    # a 2.1.1 sender in 2.2.1): the operator's choice. None: such a Location is refused
    # (2001 naming time_zone to the sender).
    default_time_zone: str | None = None

    @property
    def ocpi_version(self) -> str:
        """The OCPI version the partner is served and called in (records of releases
        before 2.1.1 and 2.3.0 were added have none: 2.2.1)."""
        return self.version or OCPI_VERSION

    def endpoint(self, module: str, role: str) -> str | None:
        for ep in self.endpoints:
            if ep.module == module and ep.role == role:
                return ep.url
        return None

    def parties(self, role: str | None = None) -> list[tuple[str, str]]:
        """(country_code, party_id) of the partner's parties, upper-cased."""
        return [
            (str(r["country_code"]).upper(), str(r["party_id"]).upper())
            for r in self.roles
            if role is None or r.get("role") == role
        ]


def partner_to_document(p: Partner, vault: TokenVault) -> Document:
    """The stored record: the tokens partners send us as digests, ours to them
    encrypted (the key names say which, so a record can never be mistaken)."""
    data: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "status": p.status.value,
        "created_at": format_datetime(p.created_at),
        "updated_at": format_datetime(p.updated_at),
        "token_a_sha256": p.token_a_hash,
        "our_token_sha256": p.our_token_hash,
        "their_token_fernet": None if p.their_token is None else vault.encrypt(p.their_token),
        "versions_url": p.versions_url,
        "version": p.version,
        "endpoints": [{"module": e.module, "role": e.role, "url": e.url} for e in p.endpoints],
        "roles": [dict(r) for r in p.roles],
        "kind": p.kind.value,
        "v211_role": p.v211_role.value,
        "default_time_zone": p.default_time_zone,
    }
    return Document(key=p.id, data=data, last_updated=p.updated_at)


def partner_from_document(doc: Document, vault: TokenVault) -> tuple[Partner, bool]:
    """The partner, and whether its record should be written again: it held tokens in
    clear (``token_a``, ``our_token``, ``their_token``: releases before hashing), or
    its token under an older key. :class:`SecretKeyError` when no key decrypts it."""
    d = doc.data
    stale = False
    token_a_hash = d.get("token_a_sha256")
    if token_a_hash is None and d.get("token_a"):
        token_a_hash, stale = hash_token(d["token_a"]), True
    our_token_hash = d.get("our_token_sha256")
    if our_token_hash is None and d.get("our_token"):
        our_token_hash, stale = hash_token(d["our_token"]), True
    their_token: str | None = None
    if d.get("their_token_fernet"):
        their_token, old_key = vault.decrypt(
            d["their_token_fernet"], what=f"the token of partner {d['id']}"
        )
        stale = stale or old_key
    elif d.get("their_token"):
        their_token, stale = d["their_token"], True
    partner = Partner(
        id=d["id"],
        name=d["name"],
        status=PartnerStatus(d["status"]),
        created_at=parse_datetime(d["created_at"]),
        updated_at=parse_datetime(d["updated_at"]),
        token_a_hash=token_a_hash,
        our_token_hash=our_token_hash,
        their_token=their_token,
        versions_url=d.get("versions_url"),
        version=d.get("version"),
        endpoints=tuple(PartnerEndpoint(**e) for e in d.get("endpoints", [])),
        roles=tuple(d.get("roles", [])),
        kind=PartnerKind(d.get("kind", PartnerKind.PEER)),
        v211_role=Role(d.get("v211_role", Role.EMSP)),
        default_time_zone=d.get("default_time_zone"),
    )
    return partner, stale


def default_time_zone_problem(kind: PartnerKind, zone: str | None) -> str | None:
    """Why ``zone`` cannot be the :attr:`Partner.default_time_zone` of a partner of
    ``kind`` (None: it can)."""
    if zone is None:
        return None
    if kind is not PartnerKind.HUB:
        return "default_time_zone: only a hub platform's 2.1.1 Locations can lack a time zone"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"default_time_zone: {zone!r} is not an IANA time zone (such as Europe/Amsterdam)"
    return None


def _check_default_time_zone(kind: PartnerKind, zone: str | None) -> None:
    problem = default_time_zone_problem(kind, zone)
    if problem is not None:
        raise RegistrationError(problem)


def new_token() -> str:
    # 256 bits, URL-safe: printable ASCII as credentials.asciidoc requires.
    return secrets.token_urlsafe(32)


class _Use(enum.Enum):
    """What a token a partner sends us is good for."""

    REGISTRATION = "token A"  # versions and credentials, until registered
    PROVISIONAL = "sent in our credentials POST"  # versions only, while it is in flight
    PARTNER = "registered"


@dataclass(frozen=True, slots=True)
class TokenMatch:
    partner: Partner
    registration: bool  # True when the token is the partner's token A (or provisional)
    token: str | None = None  # the token presented (the request's; never stored)
    # The token we sent in our credentials POST, before the partner answered it: good
    # for our versions and version details only (credentials.asciidoc, registration).
    provisional: bool = False


def partner_of(party: object) -> Partner:
    """The partner an authenticated OCPI request came from (``OcpiRequestContext.party``)."""
    if not isinstance(party, TokenMatch):
        raise TypeError("the OCPI middleware did not authenticate this request")
    return party.partner


PartnerListener = Callable[["Partner | None", "Partner | None"], Awaitable[None]]
ProvisionalListener = Callable[[str, "str | None"], Awaitable[None]]
"""``await listener(partner id, token digest or None)``: see
:meth:`PartnerRegistry.on_provisional`."""


class RegistrationError(Exception):
    """Registering at a partner's platform failed; the message says at which step."""


@dataclass
class OurIdentity:
    """What the gateway says about itself in credentials objects."""

    versions_url: str
    roles: Sequence[CredentialsRole]
    endpoints: Sequence[Endpoint] = field(default_factory=list)


# ------------------------------------------------------------------- versions


def encodes_token(version: str) -> bool:
    """Whether the credentials token is Base64-encoded in the Authorization header:
    from 2.2 on; 2.1.1 sends it as it is (transport_and_format, Authorization)."""
    return version != "2.1.1"


V211_ROLES = (Role.EMSP, Role.CPO)
"""The roles a 2.1.1 partner's party may be given (:attr:`Partner.v211_role`)."""


def v211_party_role(kind: PartnerKind, role: Role = Role.EMSP) -> Role:
    """What the one party of a 2.1.1 credentials object is to us (2.1.1 does not say):
    the partners of the CPO interface are eMSPs; a platform on the hub is what the
    operator said when creating it (``role``, :attr:`Partner.v211_role`: a 2.1.1 CPO
    platform), an eMSP by default."""
    return role if kind is PartnerKind.HUB else Role.EMSP


def credentials_model(version: str) -> type[BaseModel]:
    """The Credentials object of ``version``."""
    if version == "2.1.1":
        return v211.Credentials
    if version == "2.3.0":
        return v230.Credentials
    return Credentials


def credentials_in(
    credentials: BaseModel, kind: PartnerKind, role: Role = Role.EMSP
) -> Credentials:
    """A partner's credentials (of :func:`credentials_model`) in the internal form;
    :class:`~ocpi.versions.NotExpressible` names what 2.2.1 cannot hold. ``role``: the
    partner's :attr:`~Partner.v211_role` (2.1.1 credentials name none)."""
    if isinstance(credentials, v211.Credentials):
        return conv211.credentials_from_v211(credentials, role=v211_party_role(kind, role))
    if isinstance(credentials, v230.Credentials):
        return conv230.credentials_from_v230(credentials)
    if not isinstance(credentials, Credentials):
        raise TypeError(f"not a Credentials object: {type(credentials).__name__}")
    return credentials


def credentials_out(
    version: str, ours: Credentials, *, reachable: Sequence[CredentialsRole] = ()
) -> BaseModel:
    """Our credentials (internal form) in ``version``. 2.1.1 carries one party: our
    first role's. 2.3.0 writes a HUB role as ``hub_party_id`` and lists the parties a
    hub reaches (``reachable``) as its roles."""
    if version == "2.1.1":
        return conv211.credentials_to_v211(ours.model_copy(update={"roles": ours.roles[:1]}))
    if version == "2.3.0":
        parties = [v230.CredentialsRole.model_validate(r.to_wire()) for r in reachable]
        return conv230.credentials_to_v230(ours, reachable=parties)
    return ours


def _details_model(version: str) -> type[BaseModel]:
    if version == "2.1.1":
        return v211.VersionDetails
    if version == "2.3.0":
        return v230.VersionDetails
    return VersionDetails


def _endpoints_in(details: BaseModel, kind: PartnerKind, role: Role = Role.EMSP) -> list[Endpoint]:
    """A partner's version details (of :func:`_details_model`) as internal endpoints
    (``role``: as for :func:`credentials_in`)."""
    if isinstance(details, v211.VersionDetails):
        party_role = v211_party_role(kind, role)
        internal = conv211.version_details_from_v211(details, party_role=party_role)
        return list(internal.endpoints)
    if isinstance(details, v230.VersionDetails):
        return [Endpoint.model_validate(e.to_wire()) for e in details.endpoints]
    if not isinstance(details, VersionDetails):
        raise TypeError(f"not a VersionDetails object: {type(details).__name__}")
    return list(details.endpoints)


class PartnerRegistry:
    """Partners, cached in memory (a handful of records) and written through to the store."""

    def __init__(
        self,
        store: DocumentStore,
        clock: Clock,
        ids: IdFactory,
        identity: OurIdentity,
        http: aiohttp.ClientSession,
        *,
        vault: TokenVault,
        timeout: float = 15.0,
        hub_identity: OurIdentity | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ids = ids
        self.identity = identity
        self.hub_identity = hub_identity
        self._vault = vault
        self._listeners: list[PartnerListener] = []
        self._http = http
        self._timeout = timeout
        self._partners: dict[str, Partner] = {}
        # hash_token(token) -> (partner id, what it is good for)
        self._by_token: dict[str, tuple[str, _Use]] = {}
        # The digest of each token seen (SHA-256 per request otherwise): a pure function
        # of the token, so nothing to invalidate; least recently used dropped first.
        self._digest = functools.lru_cache(maxsize=_DIGESTS_KEPT)(hash_token)
        # partner id -> hash of the token in our credentials POST still in flight
        self._provisional: dict[str, str] = {}
        self._provisional_listeners: list[ProvisionalListener] = []
        self._lock = asyncio.Lock()
        # Each client to a partner reports its requests here (the message trail), given
        # the partner's id: set by the composition root.
        self.observer: Callable[[str], ExchangeObserver] | None = None

    def _client(
        self,
        partner_id: str,
        token: str,
        timeout: float | None = None,
        *,
        version: str = OCPI_VERSION,
    ) -> OcpiClient:
        observer = self.observer(partner_id) if self.observer is not None else None
        return OcpiClient(
            self._http,
            token,
            encode_token=encodes_token(version),
            timeout=timeout or self._timeout,
            observer=observer,
        )

    async def load(self) -> None:
        """Read every partner; records with clear tokens (earlier releases) or a token
        under an older key are written again at once. :class:`SecretKeyError` when a
        stored token cannot be decrypted (a wrong key): the gateway must not run with
        partners it cannot call."""
        offset = 0
        converted = 0
        while True:
            docs, total = await self._store.list(offset=offset, limit=500)
            for doc in docs:
                partner, stale = partner_from_document(doc, self._vault)
                if stale:
                    await self._store.put(partner_to_document(partner, self._vault))
                    converted += 1
                self._index(partner)
            offset += len(docs)
            if not docs or offset >= total:
                break
        if converted:
            log.warning("stored the tokens of %d partners hashed / encrypted again", converted)

    async def refresh(self, partner_id: str) -> Partner | None:
        """Read one partner again from the store (None when it is not there): another
        process sharing the store may have registered it since :meth:`load`. Indexed,
        without telling the listeners (the process that changed it has)."""
        doc = await self._store.get(partner_id)
        if doc is None:
            return None
        partner, _ = partner_from_document(doc, self._vault)
        self._index(partner)
        return partner

    async def reload(self, partner_id: str) -> tuple[Partner | None, Partner | None]:
        """Read one partner again after another process sharing the store changed it
        (or deleted it): ``(before, after)`` as this process knew it and as it is now
        (None: unknown / gone). Without telling the listeners: the process that made
        the change has, once for the cluster. A copy in memory newer than the stored
        one (a change of this process overtaking the notice) is kept."""
        before = self._partners.get(partner_id)
        doc = await self._store.get(partner_id)
        if doc is None:
            if before is not None:
                self._unindex(before)
            return before, None
        partner, _ = partner_from_document(doc, self._vault)
        current = self._partners.get(partner_id)  # may have changed during the read
        if current is not None and current.updated_at > partner.updated_at:
            return before, current
        self._index(partner)
        return before, partner

    async def reload_all(self) -> None:
        """Read every partner again (messages about changes may have been lost): the
        stored ones are indexed, those gone from the store forgotten; no listener is
        told."""
        seen: set[str] = set()
        offset = 0
        while True:
            docs, total = await self._store.list(offset=offset, limit=500)
            for doc in docs:
                partner, _ = partner_from_document(doc, self._vault)
                seen.add(partner.id)
                current = self._partners.get(partner.id)
                if current is None or current.updated_at <= partner.updated_at:
                    self._index(partner)
            offset += len(docs)
            if not docs or offset >= total:
                break
        for partner_id in [p for p in self._partners if p not in seen]:
            # Asked one by one: a partner this process created during the listing is
            # stored, not gone.
            await self.reload(partner_id)

    def _unindex(self, partner: Partner) -> None:
        self._partners.pop(partner.id, None)
        for digest in (partner.token_a_hash, partner.our_token_hash):
            entry = self._by_token.get(digest) if digest else None
            if digest and entry is not None and entry[0] == partner.id:
                del self._by_token[digest]

    def _index(self, partner: Partner) -> None:
        old = self._partners.get(partner.id)
        if old is not None:
            self._unindex(old)
        self._partners[partner.id] = partner
        if partner.token_a_hash and partner.status is PartnerStatus.PENDING:
            self._by_token[partner.token_a_hash] = (partner.id, _Use.REGISTRATION)
        if partner.our_token_hash and partner.status is PartnerStatus.REGISTERED:
            self._by_token[partner.our_token_hash] = (partner.id, _Use.PARTNER)

    async def _save(self, partner: Partner) -> Partner:
        old = self._partners.get(partner.id)
        await self._store.put(partner_to_document(partner, self._vault))
        self._index(partner)
        await self._changed(old, partner)
        return partner

    def on_change(self, listener: PartnerListener) -> None:
        """Call ``await listener(before, after)`` after every change of a partner
        (None: did not exist / deleted); listener errors are logged."""
        self._listeners.append(listener)

    def on_provisional(self, listener: ProvisionalListener) -> None:
        """Call ``await listener(partner_id, digest)`` when the token of our credentials
        POST to a partner becomes good for our versions (its digest) and when it stops
        (None), so that other processes sharing the store answer the partner's check
        too (:meth:`set_provisional`); errors are logged."""
        self._provisional_listeners.append(listener)

    def set_provisional(self, partner_id: str, digest: str | None) -> None:
        """Another process's provisional token for ``partner_id`` (None: no longer)."""
        old = self._provisional.pop(partner_id, None)
        if old is not None and self._by_token.get(old) == (partner_id, _Use.PROVISIONAL):
            del self._by_token[old]
        if digest is not None:
            self._provisional[partner_id] = digest
            self._by_token[digest] = (partner_id, _Use.PROVISIONAL)

    async def _announce_provisional(self, partner_id: str, digest: str | None) -> None:
        for listener in self._provisional_listeners:
            try:
                await listener(partner_id, digest)
            except Exception:
                log.exception("provisional token listener failed")

    async def _changed(self, before: Partner | None, after: Partner | None) -> None:
        for listener in self._listeners:
            try:
                await listener(before, after)
            except Exception:
                log.exception("partner change listener failed")

    def identity_for(self, kind: PartnerKind) -> OurIdentity:
        """What the gateway says about itself to a partner of ``kind``."""
        if kind is PartnerKind.HUB:
            if self.hub_identity is None:
                raise RegistrationError("the hub is not configured")
            return self.hub_identity
        return self.identity

    def all(self) -> list[Partner]:
        return sorted(self._partners.values(), key=lambda p: p.created_at)

    def get(self, partner_id: str) -> Partner | None:
        return self._partners.get(partner_id)

    def registered(self) -> list[Partner]:
        return [p for p in self.all() if p.status is PartnerStatus.REGISTERED]

    def match(self, token: str) -> TokenMatch | None:
        digest = self._digest(token)
        entry = self._by_token.get(digest)
        if entry is None:
            return None
        partner_id, use = entry
        partner = self._partners.get(partner_id)
        if partner is None:
            return None
        # Every OCPI request passes here: no dict of enum keys built per call.
        if use is _Use.PARTNER:
            stored = partner.our_token_hash
        elif use is _Use.REGISTRATION:
            stored = partner.token_a_hash
        else:
            stored = self._provisional.get(partner_id)
        if stored is None or not hmac.compare_digest(stored, digest):
            return None
        return TokenMatch(
            partner,
            registration=use is not _Use.PARTNER,
            token=token,
            provisional=use is _Use.PROVISIONAL,
        )

    # -- operator actions -------------------------------------------------------

    async def create(
        self,
        name: str,
        kind: PartnerKind = PartnerKind.PEER,
        v211_role: Role = Role.EMSP,
        *,
        default_time_zone: str | None = None,
    ) -> tuple[Partner, str]:
        """A PENDING partner and its token A, in clear this once (only its hash is
        kept): the operator hands it to the partner. ``v211_role``: what its party is
        if it registers in OCPI 2.1.1 (:attr:`Partner.v211_role`): EMSP, or CPO for a
        platform on the hub (the gateway's bilateral partners are eMSPs).
        ``default_time_zone``: :attr:`Partner.default_time_zone` (hub platforms only)."""
        self.identity_for(kind)  # refuses a hub partner when there is no hub
        if v211_role not in V211_ROLES or (
            v211_role is not Role.EMSP and kind is not PartnerKind.HUB
        ):
            raise RegistrationError(
                f"role {v211_role}: a bilateral partner of the CPO is an eMSP; a hub "
                "platform's 2.1.1 party is CPO or EMSP"
            )
        _check_default_time_zone(kind, default_time_zone)
        now = self._clock.now()
        token_a = new_token()
        partner = Partner(
            id=self._ids.new_id(),
            name=name,
            status=PartnerStatus.PENDING,
            created_at=now,
            updated_at=now,
            token_a_hash=hash_token(token_a),
            kind=kind,
            v211_role=v211_role,
            default_time_zone=default_time_zone,
        )
        return await self._save(partner), token_a

    async def set_default_time_zone(self, partner_id: str, zone: str | None) -> Partner:
        """Set (None: clear) :attr:`Partner.default_time_zone` of a hub platform, whatever
        its status; KeyError when there is no such partner, RegistrationError when it is
        not a hub platform or ``zone`` is not an IANA time zone."""
        async with self._lock:
            partner = self._partners.get(partner_id)
            if partner is None:
                raise KeyError(partner_id)
            _check_default_time_zone(partner.kind, zone)
            if partner.default_time_zone == zone:
                return partner
            changed = replace(partner, default_time_zone=zone, updated_at=self._clock.now())
            return await self._save(changed)

    async def delete(self, partner_id: str) -> bool:
        async with self._lock:
            partner = self._partners.pop(partner_id, None)
            if partner is None:
                return False
            for digest in (partner.token_a_hash, partner.our_token_hash):
                if digest:
                    self._by_token.pop(digest, None)
            await self._store.delete(partner_id)
        await self._changed(partner, None)
        return True

    def client(self, partner: Partner, *, timeout: float | None = None) -> OcpiClient:
        """A client calling ``partner`` with its token, encoded as its version wants
        (unencoded for 2.1.1)."""
        if partner.their_token is None:
            raise RegistrationError(f"partner {partner.id} has no token to call it with")
        return self._client(partner.id, partner.their_token, timeout, version=partner.ocpi_version)

    async def _versions(
        self, partner_id: str, token: str, versions_url: str, version: str | None
    ) -> list[Version]:
        """The partner's versions list. Before a version is chosen (``version`` None) the
        token goes Base64-encoded, then, when that is refused with HTTP 401, as it is (a
        2.1.1 platform)."""
        encodings = [version or OCPI_VERSION] + (["2.1.1"] if version is None else [])
        for attempt, encoding in enumerate(encodings):
            client = self._client(partner_id, token, version=encoding)
            try:
                return await client.get_list(versions_url, Version)
            except (OcpiHttpError, OcpiStatusError) as exc:
                if exc.http_status != 401 or attempt == len(encodings) - 1:
                    raise RegistrationError(f"GET {versions_url}: {exc}") from exc
            except OcpiClientError as exc:
                raise RegistrationError(f"GET {versions_url}: {exc}") from exc
        raise AssertionError("unreachable")

    async def _discover(
        self,
        partner_id: str,
        token: str,
        versions_url: str,
        kind: PartnerKind,
        version: str | None = None,
        role: Role = Role.EMSP,
    ) -> tuple[str, list[Endpoint]]:
        """The partner's ``version`` (None: the highest both sides support) and its
        endpoints in that version, in the internal form."""
        versions = await self._versions(partner_id, token, versions_url, version)
        offered = {str(v.version): str(v.url) for v in versions}
        if version is None:
            common = [v for v in SUPPORTED_VERSIONS if v in offered]
            chosen = max(common, key=version_key) if common else None
        else:
            chosen = version if version in offered else None
        if chosen is None:
            wanted = version or " or ".join(SUPPORTED_VERSIONS)
            raise UnsupportedVersionError(
                f"the partner offers no OCPI {wanted} (offers: {', '.join(offered) or 'none'})"
            )
        client = self._client(partner_id, token, version=chosen)
        try:
            details = await client.get(offered[chosen], _details_model(chosen))
        except OcpiClientError as exc:
            raise RegistrationError(f"GET {offered[chosen]}: {exc}") from exc
        return chosen, _endpoints_in(details, kind, role)

    def our_credentials(self, token: str, kind: PartnerKind = PartnerKind.PEER) -> Credentials:
        """Ours, in the internal form (:meth:`our_credentials_in` for a version)."""
        identity = self.identity_for(kind)
        return Credentials(token=token, url=identity.versions_url, roles=list(identity.roles))

    def our_credentials_in(self, version: str, token: str, kind: PartnerKind) -> BaseModel:
        """Ours in ``version``. A 2.3.0 hub lists the parties it reaches as roles: the
        CPO parties the gateway hosts."""
        reachable = self.identity.roles if kind is PartnerKind.HUB else ()
        return credentials_out(version, self.our_credentials(token, kind), reachable=reachable)

    async def register_at(self, partner_id: str, versions_url: str, token_a: str) -> Partner:
        """We register at the partner's platform with the token A it gave the operator."""
        async with self._lock:
            partner = self._partners.get(partner_id)
            if partner is None:
                raise KeyError(partner_id)
            if partner.status is PartnerStatus.REGISTERED:
                raise MethodNotAllowedError("already registered; update or unregister first")
            version, endpoints = await self._discover(
                partner.id, token_a, versions_url, partner.kind, role=partner.v211_role
            )
            client = self._client(partner.id, token_a, version=version)
            credentials_url = _find(endpoints, "credentials")
            if credentials_url is None:
                raise RegistrationError("the partner lists no credentials endpoint")
            our_token = new_token()
            digest = hash_token(our_token)
            # credentials.asciidoc (registration): before answering our POST, the
            # partner may check us with the token in it, on our versions and version
            # details. So that token works for those from now on, and is forgotten again
            # if the POST fails (the partner stays PENDING). Only the request handlers
            # read the index: none of them waits for this lock.
            self.set_provisional(partner.id, digest)
            await self._announce_provisional(partner.id, digest)
            try:
                ours = self.our_credentials_in(version, our_token, partner.kind)
                try:
                    answer = await client.post(credentials_url, ours, credentials_model(version))
                    theirs = credentials_in(answer, partner.kind, partner.v211_role)
                except OcpiClientError as exc:
                    raise RegistrationError(f"POST {credentials_url}: {exc}") from exc
                except NotExpressible as exc:
                    raise RegistrationError(f"POST {credentials_url}: {exc}") from exc
                registered = replace(
                    partner,
                    status=PartnerStatus.REGISTERED,
                    token_a_hash=None,
                    our_token_hash=digest,
                    their_token=theirs.token,
                    versions_url=versions_url,
                    version=version,
                    endpoints=_endpoints(endpoints),
                    roles=_wire_roles(theirs, version, partner),
                    updated_at=self._clock.now(),
                )
                saved = await self._save(registered)
            finally:
                self.set_provisional(partner.id, None)
                await self._announce_provisional(partner.id, None)
            log.info("registered at partner %s (%s, OCPI %s)", partner.id, versions_url, version)
            return saved

    # -- the partner's requests to our credentials module -------------------------

    async def accept_registration(
        self, match: TokenMatch, theirs: Credentials, version: str = OCPI_VERSION
    ) -> Credentials:
        """POST credentials: the partner registers with us using its token A, in the
        ``version`` of the credentials URL it called ("A POST initiates the registration
        process for this endpoint's version"). Our answer, in the internal form."""
        async with self._lock:
            partner = self._partners[match.partner.id]
            if (
                not match.registration
                or match.provisional
                or partner.status is PartnerStatus.REGISTERED
            ):
                # credentials.asciidoc: POST on an already registered party is 405.
                raise MethodNotAllowedError("already registered: use PUT to update")
            _, endpoints = await self._discover(
                partner.id, theirs.token, str(theirs.url), partner.kind, version, partner.v211_role
            )
            our_token = new_token()
            registered = replace(
                partner,
                status=PartnerStatus.REGISTERED,
                token_a_hash=None,
                our_token_hash=hash_token(our_token),
                their_token=theirs.token,
                versions_url=str(theirs.url),
                version=version,
                endpoints=_endpoints(endpoints),
                roles=_wire_roles(theirs, version, partner),
                updated_at=self._clock.now(),
            )
            await self._save(registered)
            log.info("partner %s registered (%s, OCPI %s)", partner.id, theirs.url, version)
            return self.our_credentials(our_token, partner.kind)

    async def update_registration(
        self, match: TokenMatch, theirs: Credentials, version: str = OCPI_VERSION
    ) -> Credentials:
        """PUT credentials: new token and/or endpoints; we issue a new token too. The
        partner switches to the ``version`` of the credentials URL it called, whose
        endpoints are fetched again (even if the version has not changed)."""
        async with self._lock:
            partner = self._partners[match.partner.id]
            if match.registration or partner.status is not PartnerStatus.REGISTERED:
                raise MethodNotAllowedError("not registered: use POST to register")
            _, endpoints = await self._discover(
                partner.id, theirs.token, str(theirs.url), partner.kind, version, partner.v211_role
            )
            our_token = new_token()
            if version != partner.ocpi_version:
                log.info("partner %s switches to OCPI %s", partner.id, version)
            updated = replace(
                partner,
                version=version,
                our_token_hash=hash_token(our_token),
                their_token=theirs.token,
                versions_url=str(theirs.url),
                endpoints=_endpoints(endpoints),
                roles=_wire_roles(theirs, version, partner),
                updated_at=self._clock.now(),
            )
            await self._save(updated)
            return self.our_credentials(our_token, partner.kind)

    async def unregister(self, match: TokenMatch) -> None:
        """DELETE credentials: the partner leaves; its tokens stop working at once."""
        async with self._lock:
            partner = self._partners[match.partner.id]
            if match.registration or partner.status is not PartnerStatus.REGISTERED:
                raise MethodNotAllowedError("not registered")
            await self._save(
                replace(
                    partner,
                    status=PartnerStatus.UNREGISTERED,
                    our_token_hash=None,
                    their_token=None,
                    updated_at=self._clock.now(),
                )
            )


def _find(endpoints: Sequence[Endpoint], module: str, role: str | None = None) -> str | None:
    for ep in endpoints:
        if str(ep.identifier) == module and (role is None or str(ep.role) == role):
            return str(ep.url)
    return None


def _wire_roles(theirs: Credentials, version: str, partner: Partner) -> tuple[dict[str, Any], ...]:
    """The partner's roles as kept: a 2.1.1 party has the partner's :attr:`~Partner.v211_role`
    (its credentials, read before the partner was known, say EMSP)."""
    roles = [r.to_wire() for r in theirs.roles]
    if version == "2.1.1":
        role = v211_party_role(partner.kind, partner.v211_role)
        roles = [r | {"role": role.value} for r in roles]
    return tuple(roles)


def _endpoints(endpoints: Sequence[Endpoint]) -> tuple[PartnerEndpoint, ...]:
    return tuple(PartnerEndpoint(str(e.identifier), str(e.role), str(e.url)) for e in endpoints)
