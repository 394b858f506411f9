"""Plans pushes to partners as outbox items (delivered later by the outbox worker).

Ordering keys are per partner (per receiving party on a hub platform) and per object,
so a partner that is down delays only its own pushes, and the updates of one object
reach each partner in order.

Partner URLs are used exactly as the partner advertised them (a trailing slash kept);
object URLs append their segments with :func:`ocpi.transport.join_url`.

A bilateral peer gets one copy of a push; a platform connected to the hub gets one per
party that receives the module (its eMSPs, for what the CPO side pushes) and that the
hub's routing rules let the sending party reach (:attr:`PushPlanner.audience`), each
with OCPI-from/to-* routing headers, as the hub would route it.

Every item records the version its partner registered in and what its (2.2.1) body is
(:data:`gateway.roaming.versioning.META_VERSION`, ``META_OBJECT``): the outbox worker
sends it in that version (:mod:`gateway.roaming.versioning`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from gateway.domain.clock import Clock, IdFactory
from gateway.roaming.outbox import make_item, routing_meta
from gateway.roaming.partners import PartnerKind, PartnerRegistry, PartnerStatus
from gateway.roaming.versioning import META_OBJECT, META_VERSION, object_name, version_of
from gateway.storage.base import OutboxItem
from ocpi.transport import PartyId, join_url, json_dumps


def wire_json(value: Any) -> Any:
    """A wire model (or dict of them) as plain JSON for the outbox.

    Decimals become JSON floats: the body is written back with the shortest repr
    of each float, which is the same number the Decimal had for the few digits
    OCPI money and quantities carry.
    """
    return json.loads(json_dumps(value))


@dataclass(frozen=True, slots=True)
class PushTarget:
    partner_id: str
    url: str  # the partner's receiver endpoint, exactly as advertised
    party: PartyId | None = None  # the receiving party (OCPI-to-*), None for a peer

    @property
    def key(self) -> str:
        """Names the receiver in what a producer remembers about it (e.g. which
        objects it has been sent)."""
        return f"{self.partner_id}|{self.party or ''}"


class Audience(Protocol):
    """Which parties of hub platforms a hosted party reaches (the hub's rules and party
    directory)."""

    def reach(
        self, sender: PartyId, module: str, interface: str, partner_id: str
    ) -> Sequence[PartyId]:
        """The parties of platform ``partner_id`` serving the ``interface`` (SENDER or
        RECEIVER) of ``module`` that ``sender`` may address, as the hub would route."""
        ...


class PushPlanner:
    def __init__(self, registry: PartnerRegistry, clock: Clock, ids: IdFactory) -> None:
        self._registry = registry
        self._clock = clock
        self._ids = ids
        self.audience: Audience | None = None  # set when the hub runs

    def targets(
        self, module: str, sender: PartyId | None = None, interface: str = "RECEIVER"
    ) -> list[PushTarget]:
        """Every registered partner implementing ``interface`` of ``module``: the
        receivers of pushes, or (SENDER) whom to ask, e.g. for a token (module doc)."""
        out: list[PushTarget] = []
        for partner in self._registry.registered():
            url = partner.endpoint(module, interface)
            if not url:
                continue
            if partner.kind is PartnerKind.PEER:
                # transport_and_format, Party to Party: OCPI-to-* names the receiving
                # party, when the peer has just one (else the push is for the platform).
                parties = set(partner.parties())
                to = PartyId(*parties.pop()) if len(parties) == 1 else None
                out.append(PushTarget(partner.id, url, to))
            elif self.audience is not None and sender is not None:
                for party in self.audience.reach(sender, module, interface, partner.id):
                    out.append(PushTarget(partner.id, url, party))
        return out

    def receiver_url(self, partner_id: str, module: str) -> str | None:
        """The ``module`` receiver URL of a registered partner, exactly as advertised
        (append object segments with :func:`ocpi.transport.join_url`)."""
        partner = self._registry.get(partner_id)
        if partner is None or partner.status is not PartnerStatus.REGISTERED:
            return None
        return partner.endpoint(module, "RECEIVER") or None

    def item(
        self,
        partner_id: str,
        module: str,
        method: str,
        url: str,
        body: Any,
        object_key: str,
        meta: dict[str, Any] | None = None,
        *,
        from_party: PartyId | None = None,
        to_party: PartyId | None = None,
        object_type: str | None = None,
    ) -> OutboxItem:
        """An item to ``partner_id``; ``body`` a 2.2.1 object (a model, or the JSON of
        the model ``object_type`` names, e.g. ``"SessionPatch"``), sent in the partner's
        version."""
        routing = routing_meta(from_party=from_party, to_party=to_party)
        partner = self._registry.get(partner_id)
        if partner is not None:
            routing[META_VERSION] = version_of(partner)
            kind = object_type or object_name(body)
            if kind is not None:
                routing[META_OBJECT] = kind
        # One sequence per receiving party on a hub platform (its parties are
        # independent); per partner for a peer, as before routing headers were sent.
        per_party = to_party is not None and partner is not None and partner.kind is PartnerKind.HUB
        key = f"{partner_id}|{to_party}|" if per_party else f"{partner_id}|"
        return make_item(
            self._ids,
            self._clock,
            partner_id,
            method,
            url,
            wire_json(body) if body is not None else None,
            ordering_key=f"{key}{module}|{object_key}",
            module=module,
            meta=(meta or {}) | routing or None,
        )

    def item_for(
        self,
        target: PushTarget,
        module: str,
        method: str,
        segments: Sequence[str],
        body: Any,
        object_key: str,
        sender: PartyId | None = None,
        meta: dict[str, Any] | None = None,
        object_type: str | None = None,
    ) -> OutboxItem:
        """An item to one receiver (:meth:`targets`): ``segments`` appended to its
        receiver URL (e.g. ``("NL", "ABC", "LOC1")``); ``sender`` is the hosted party the
        object belongs to."""
        return self.item(
            target.partner_id,
            module,
            method,
            join_url(target.url, *segments),
            body,
            object_key,
            meta,
            from_party=sender,
            to_party=target.party,
            object_type=object_type,
        )

    def broadcast(
        self,
        module: str,
        method: str,
        segments: Sequence[str],
        body: Any,
        object_key: str,
        sender: PartyId | None = None,
    ) -> list[OutboxItem]:
        """One item per receiver of ``module`` pushes (:meth:`targets`), see
        :meth:`item_for`."""
        return [
            self.item_for(t, module, method, segments, body, object_key, sender)
            for t in self.targets(module, sender)
        ]


PLANNER = web.AppKey("push_planner", PushPlanner)
