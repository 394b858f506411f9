"""eMSP tokens: the Tokens Receiver interface and authorization of roaming drivers.

Tokens are kept as documents keyed ``CC*PID*UID*TYPE`` (upper-cased: OCPI ids are
CiStrings) with the UID as ``owner``, so a charger's idTag finds its token with an
indexed lookup whatever eMSP issued it.

Authorization (mod_tokens, "Real-time authorization" and WhitelistType):

- ALWAYS / ALLOWED: the stored token decides (``valid``), no call to the eMSP.
- ALLOWED_OFFLINE: ask the eMSP; when it does not answer within the budget,
  the stored token decides.
- NEVER: ask the eMSP; no answer means no charging (Invalid).
- A token the gateway does not have: every registered eMSP with a Tokens SENDER
  is asked at once; the first ALLOWED wins. No answer from any: Invalid, so a
  driver of an unreachable eMSP is refused rather than charged without a payer.

Each eMSP is asked in the version it registered in (2.1.1, 2.2.1 or 2.3.0: the
LocationReferences sent and the AuthorizationInfo read in that version's shapes, no
routing headers in 2.1.1). A 2.1.1 answer carries no Token: the one we have is used, or,
for a uid we did not have, one made from the eMSP's party with the uid as contract id.

The budget (``GATEWAY_REALTIME_AUTH_TIMEOUT``, 5 s by default) stays well under
the charger's own timeout for its Authorize, so the charger always gets an answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

import ocpi.v211 as v211
from gateway.domain.clock import Clock
from gateway.domain.commands import LocalListEntry, LocalListStatus, token_type_of
from gateway.domain.models import AuthorizationResult, AuthorizationStatus, IdToken
from gateway.roaming.partners import Partner, PartnerRegistry, partner_of
from gateway.roaming.pushes import PushPlanner, PushTarget
from gateway.roaming.versioning import (
    has_routing_headers,
    outgoing,
    version_of,
)
from gateway.storage.base import Document, Store
from ocpi.client import OcpiClientError
from ocpi.server import OcpiRequestContext
from ocpi.transport import InvalidParametersError, PartyId, join_url, json_loads
from ocpi.v221 import AuthorizationInfo, LocationReferences, Token, TokenPatch
from ocpi.v221.enums import AllowedType, WhitelistType
from ocpi.v221.patch import apply_patch
from ocpi.versions import NotExpressible
from ocpi.versions.objects import from_version, model_of

log = logging.getLogger(__name__)

_ALLOWED = {
    AllowedType.ALLOWED: AuthorizationStatus.ACCEPTED,
    AllowedType.BLOCKED: AuthorizationStatus.BLOCKED,
    AllowedType.EXPIRED: AuthorizationStatus.EXPIRED,
    AllowedType.NO_CREDIT: AuthorizationStatus.INVALID,
    AllowedType.NOT_ALLOWED: AuthorizationStatus.INVALID,
}


def token_key(country_code: str, party_id: str, uid: str, token_type: str) -> str:
    return "*".join(part.upper() for part in (country_code, party_id, uid, token_type))


def token_document(token: Token, partner_id: str | None, source: str = "push") -> Document:
    data = {"token": token.to_json(), "partner_id": partner_id, "source": source}
    key = token_key(token.country_code, token.party_id, token.uid, str(token.type))
    return Document(key, data, token.last_updated, owner=token.uid.upper())


def token_from_document(doc: Document) -> Token:
    return Token.model_validate(json_loads(doc.data["token"]))


@dataclass(frozen=True, slots=True)
class RoamingToken:
    token: Token
    partner_id: str | None
    source: str = "push"  # "push" (the eMSP sent it) or "realtime" (its authorization)


def _found(doc: Document) -> RoamingToken:
    return RoamingToken(
        token_from_document(doc), doc.data.get("partner_id"), doc.data.get("source", "push")
    )


class TokenDirectory:
    """Reads tokens; shared by the receiver, the authorizer and the session builder."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def by_uid(self, uid: str) -> list[RoamingToken]:
        docs, _ = await self._store.ocpi_tokens.list(owner=uid.upper(), limit=50)
        return [_found(d) for d in docs]

    async def get(self, cc: str, pid: str, uid: str, token_type: str) -> RoamingToken | None:
        doc = await self._store.ocpi_tokens.get(token_key(cc, pid, uid, token_type))
        if doc is None:
            return None
        return _found(doc)


class TokensReceiver:
    """mod_tokens Receiver interface provider (see ``ocpi.server.tokens_receiver_routes``)."""

    def __init__(
        self,
        store: Store,
        directory: TokenDirectory,
        on_change: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._directory = directory
        self._lock = asyncio.Lock()
        # Told each token uid pushed, once stored (the chargers' local lists).
        self._on_change = on_change

    @staticmethod
    def _partner(context: OcpiRequestContext, country_code: str, party_id: str) -> str:
        partner = partner_of(context.party)
        if (country_code.upper(), party_id.upper()) not in partner.parties():
            # A platform speaks only for the parties its credentials list.
            raise InvalidParametersError(
                f"party_id: {country_code}*{party_id} is not a party of this platform"
            )
        return partner.id

    async def get_token(
        self,
        context: OcpiRequestContext,
        country_code: str,
        party_id: str,
        uid: str,
        token_type: str,
    ) -> Token | None:
        self._partner(context, country_code, party_id)
        found = await self._directory.get(country_code, party_id, uid, token_type)
        return found.token if found else None

    async def put_token(self, context: OcpiRequestContext, token: Token) -> bool:
        partner_id = self._partner(context, token.country_code, token.party_id)
        async with self._lock:
            key = token_key(token.country_code, token.party_id, token.uid, str(token.type))
            existing = await self._store.ocpi_tokens.get(key)
            await self._store.ocpi_tokens.put(token_document(token, partner_id))
        if self._on_change is not None:
            await self._on_change(token.uid)
        return existing is None

    async def patch_token(
        self,
        context: OcpiRequestContext,
        country_code: str,
        party_id: str,
        uid: str,
        token_type: str,
        patch: TokenPatch,
    ) -> Token | None:
        partner_id = self._partner(context, country_code, party_id)
        async with self._lock:
            found = await self._directory.get(country_code, party_id, uid, token_type)
            if found is None:
                return None
            patched = apply_patch(found.token, patch)
            await self._store.ocpi_tokens.put(token_document(patched, partner_id))
        if self._on_change is not None:
            await self._on_change(patched.uid)
        return patched


class TokenPuller:
    """Tokens fetched from an eMSP (mod_tokens Sender interface: ``GET {tokens}`` with
    ``date_from``, paginated), in the version it registered in, and kept as if it had
    pushed them: what a CPO does to get an eMSP's list at start-up or after missing
    pushes (mod_tokens: "the CPO can call the GET on the eMSP's Token endpoint").

    A 2.1.1 Token has no owner: it is the eMSP's party (its 2.1.1 credentials hold one).
    A token of a party that is not the partner's is left out (a platform speaks only for
    its own parties, as for pushes), and so is one its version cannot hold in the
    internal form (logged, naming the field).
    """

    def __init__(
        self,
        store: Store,
        registry: PartnerRegistry,
        on_change: Callable[[str], Awaitable[None]] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._on_change = on_change
        self._timeout = timeout

    async def pull(self, partner_id: str, *, date_from: datetime | None = None) -> int:
        """Fetch and keep the tokens of ``partner_id`` (last updated from ``date_from``);
        returns how many were kept. :class:`OcpiClientError` when the eMSP fails."""
        partner = self._registry.get(partner_id)
        url = partner.endpoint("tokens", "SENDER") if partner else None
        if partner is None or url is None:
            return 0
        version = version_of(partner)
        client = self._registry.client(partner, timeout=self._timeout)
        parties = partner.parties("EMSP") or partner.parties()
        kept = 0
        model = model_of("Token", version)
        async for wire in client.get_all(url, model, date_from=date_from):
            try:
                # A 2.1.1 token names no owner: the eMSP's party.
                token = from_version(wire, version, party=parties[0] if parties else None)
            except NotExpressible as exc:
                log.warning("token pull from %s: a token left out: %s", partner_id, exc)
                continue
            assert isinstance(token, Token)
            if (token.country_code.upper(), token.party_id.upper()) not in partner.parties():
                log.warning(
                    "token pull from %s: token %s of party %s*%s, not the partner's, left out",
                    partner_id,
                    token.uid,
                    token.country_code,
                    token.party_id,
                )
                continue
            await self._store.ocpi_tokens.put(token_document(token, partner.id))
            kept += 1
            if self._on_change is not None:
                await self._on_change(token.uid)
        return kept


def list_entry(found: RoamingToken) -> LocalListEntry | None:
    """A pushed token as a local authorization list entry (``gateway.locallist``); None
    when it may not be on a list: whitelist NEVER (the eMSP must be asked every time)
    or a token kept from a real-time answer rather than pushed."""
    token = found.token
    if found.source != "push" or token.whitelist is WhitelistType.NEVER:
        return None
    # ALWAYS, ALLOWED and ALLOWED_OFFLINE: the pushed token may decide without the eMSP.
    return LocalListEntry(
        id_token=token.uid,
        status=LocalListStatus.ACCEPTED if token.valid else LocalListStatus.BLOCKED,
        parent_id=token.group_id,
        token_type=token_type_of(str(token.type)),
        contract_id=token.contract_id,
    )


class OfflineTokens:
    """The pushed tokens that may be on chargers' local lists (``gateway.locallist``
    ``TokenSource``)."""

    def __init__(self, store: Store, directory: TokenDirectory) -> None:
        self._store = store
        self._directory = directory

    async def entries(self) -> list[LocalListEntry]:
        out: list[LocalListEntry] = []
        offset = 0
        while True:
            docs, total = await self._store.ocpi_tokens.list(offset=offset, limit=500)
            for doc in docs:
                entry = list_entry(_found(doc))
                if entry is not None:
                    out.append(entry)
            offset += len(docs)
            if not docs or offset >= total:
                return out

    async def entry(self, uid: str) -> LocalListEntry | None:
        # Any case: OCPP id tokens and OCPI token uids (CiString) are case-insensitive,
        # and by_uid finds them so (the authorizer takes the same tokens).
        for found in await self._directory.by_uid(uid):
            entry = list_entry(found)
            if entry is not None:
                return entry
        return None


@dataclass(frozen=True, slots=True)
class Where:
    """Where a token is presented: the location references sent to the eMSP and the
    CPO party the location belongs to (OCPI-from of the question)."""

    refs: LocationReferences | None
    cpo: PartyId | None


class RoamingAuthorizer:
    """An :class:`~gateway.domain.authorization.Authorizer` for eMSP tokens."""

    def __init__(
        self,
        store: Store,
        directory: TokenDirectory,
        registry: PartnerRegistry,
        planner: PushPlanner,
        clock: Clock,
        *,
        budget: float,
    ) -> None:
        self._store = store
        self._directory = directory
        self._registry = registry
        self._planner = planner
        self._clock = clock
        self._budget = budget
        # Called with each real-time authorization's duration and whether the eMSP
        # answered (the app's metrics).
        self.observe: Callable[[float, bool], None] | None = None

    async def _location(self, charger_id: str, evse_id: int | None) -> Where:
        charger = await self._store.chargers.get(charger_id)
        if charger is None or charger.location_id is None:
            return Where(None, None)
        uids = [e.evse_uid for e in charger.evses if evse_id is None or e.ocpp_id == evse_id]
        refs = LocationReferences(location_id=charger.location_id, evse_uids=uids or None)
        doc = await self._store.locations.get(charger.location_id)
        # A location's owner is its CPO party (catalog.Party.owner, "CC*PID").
        cpo = PartyId.parse(doc.owner) if doc is not None and doc.owner else None
        return Where(refs, cpo)

    async def _ask(
        self,
        partner_id: str,
        uid: str,
        token_type: str,
        where: Where,
        to_party: PartyId | None = None,
        token: Token | None = None,
    ) -> AuthorizationInfo | None:
        """Ask the eMSP in the version it registered in (mod_tokens real-time
        authorization: ``POST {tokens}/{uid}/authorize?type=`` with the
        LocationReferences); its answer in the internal form. ``token``: the token as we
        have it (2.1.1 answers carry none)."""
        partner = self._registry.get(partner_id)
        url = partner.endpoint("tokens", "SENDER") if partner else None
        if partner is None or url is None:
            return None
        version = version_of(partner)
        client = self._registry.client(partner, timeout=self._budget)
        if has_routing_headers(version):
            # Routing headers: a hub platform may host several eMSPs (none in 2.1.1).
            client.from_party, client.to_party = where.cpo, to_party
        started = time.perf_counter()
        answered = False
        try:
            refs = await outgoing(version, "LocationReferences", where.refs)
            reply = await client.post(
                join_url(url, uid, "authorize"),
                refs,
                model_of("AuthorizationInfo", version),
                params={"type": token_type},
            )
            answered = True
            return self._internal(version, reply, partner, uid, token_type, token)
        except (OcpiClientError, NotExpressible) as exc:
            log.warning("real-time authorization of %s at %s failed: %s", uid, partner_id, exc)
            return None
        finally:
            if self.observe is not None:
                self.observe(time.perf_counter() - started, answered)

    def _internal(
        self,
        version: str,
        reply: BaseModel,
        partner: Partner,
        uid: str,
        token_type: str,
        token: Token | None,
    ) -> AuthorizationInfo:
        """An eMSP's AuthorizationInfo of ``version`` in the internal form."""
        if isinstance(reply, v211.AuthorizationInfo):  # 2.1.1 answers carry no Token
            token = token or self._realtime_token(partner, uid, token_type, reply)
        info = from_version(reply, version, token=token)
        assert isinstance(info, AuthorizationInfo)
        return info

    def _realtime_token(
        self, partner: Partner, uid: str, token_type: str, reply: v211.AuthorizationInfo
    ) -> Token:
        """The Token of a uid a 2.1.1 eMSP authorized without our having it: 2.1.1
        answers carry no Token, so it is the eMSP's party (its 2.1.1 credentials hold
        one), the uid as the contract id (2.1.1 ``auth_id``: we know no other) and
        whitelist NEVER (kept from a real-time answer: the eMSP is asked every time)."""
        parties = partner.parties("EMSP") or partner.parties()
        country_code, party_id = parties[0] if parties else ("ZZ", "ZZZ")
        return Token.model_validate(
            {
                "country_code": country_code,
                "party_id": party_id,
                "uid": uid,
                "type": token_type,
                "contract_id": uid,
                "issuer": partner.name[:64] or partner.id,
                "valid": reply.allowed == "ALLOWED",
                "whitelist": WhitelistType.NEVER,
                "last_updated": self._clock.now(),
            }
        )

    async def authorize(
        self, token: IdToken, *, charger_id: str, evse_id: int | None
    ) -> AuthorizationResult:
        known = await self._directory.by_uid(token.uid)
        where = await self._location(charger_id, evse_id)
        if known:
            return await self._known(known[0], where)
        return await self._unknown(token.uid, where)

    async def _known(self, found: RoamingToken, where: Where) -> AuthorizationResult:
        token = found.token
        local = AuthorizationResult(
            AuthorizationStatus.ACCEPTED if token.valid else AuthorizationStatus.BLOCKED,
            source=f"ocpi:{token.country_code}*{token.party_id}",
            extra=_extra(token, found.partner_id, None),
        )
        if token.whitelist in (WhitelistType.ALWAYS, WhitelistType.ALLOWED) or not token.valid:
            return local
        info = None
        if found.partner_id is not None:
            owner = PartyId(token.country_code, token.party_id)
            info = await self._ask(
                found.partner_id, token.uid, str(token.type), where, owner, token
            )
        if info is None:
            if token.whitelist is WhitelistType.ALLOWED_OFFLINE:
                return local
            return AuthorizationResult(AuthorizationStatus.INVALID, source=local.source)
        return await self._answer(info, found.partner_id)

    async def _unknown(self, uid: str, where: Where) -> AuthorizationResult:
        # Every eMSP that may be asked: each bilateral peer, and each eMSP on a hub
        # platform that the rules let the charger's CPO reach.
        targets = self._planner.targets("tokens", where.cpo, "SENDER")
        if not targets:
            return AuthorizationResult(AuthorizationStatus.UNKNOWN, source="ocpi")

        async def ask(target: PushTarget) -> tuple[str, AuthorizationInfo | None]:
            info = await self._ask(target.partner_id, uid, "RFID", where, target.party)
            return target.partner_id, info

        tasks = [asyncio.ensure_future(ask(t)) for t in targets]
        refused: AuthorizationResult | None = None
        try:
            for next_done in asyncio.as_completed(tasks, timeout=self._budget + 1):
                partner_id, info = await next_done
                if info is None:
                    continue
                # Only the eMSP that allows it keeps the uid: a refusal by another eMSP
                # (of a uid that is not its driver's) must not make the uid its token.
                allowed = AllowedType(info.allowed) is AllowedType.ALLOWED
                result = await self._answer(info, partner_id, keep=allowed)
                if result.status is AuthorizationStatus.ACCEPTED:
                    return result
                refused = refused or result
        except TimeoutError:
            pass
        finally:
            for task in tasks:
                task.cancel()
        return refused or AuthorizationResult(AuthorizationStatus.INVALID, source="ocpi")

    async def _answer(
        self, info: AuthorizationInfo, partner_id: str | None, *, keep: bool = True
    ) -> AuthorizationResult:
        if keep:
            # Keep the token the eMSP returned: sessions and CDRs need its details.
            await self._store.ocpi_tokens.put(token_document(info.token, partner_id, "realtime"))
        return AuthorizationResult(
            _ALLOWED.get(AllowedType(info.allowed), AuthorizationStatus.INVALID),
            source=f"ocpi:{info.token.country_code}*{info.token.party_id}",
            extra=_extra(info.token, partner_id, info.authorization_reference),
            # mod_sessions: the session and CDR of the transaction carry it.
            authorization_reference=info.authorization_reference,
        )


def _extra(token: Token, partner_id: str | None, reference: str | None) -> dict[str, str]:
    extra: dict[str, Any] = {
        "country_code": token.country_code,
        "party_id": token.party_id,
        "token_type": str(token.type),
        "contract_id": token.contract_id,
    }
    if partner_id:
        extra["partner_id"] = partner_id
    if reference:
        extra["authorization_reference"] = reference
    return {k: str(v) for k, v in extra.items()}
