"""The operator's routing rules (:mod:`ocpi.hub.rules`), stored and held in memory.

Each rule is a document of ``Store.hub_rules``: ``{"action": "allow" | "deny",
"party": "NL*EM1", "counterpart": "DE*CP2"}``; :attr:`RuleBook.rules` is the immutable
snapshot routing reads, replaced after every change.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.domain.clock import Clock, IdFactory
from gateway.storage.base import Document, DocumentStore
from ocpi.hub.rules import OPEN, RoutingRules
from ocpi.transport import PartyId

log = logging.getLogger(__name__)

RuleListener = Callable[[str], Awaitable[None]]


class RuleAction(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    action: RuleAction
    party: PartyId
    counterpart: PartyId
    created_at: datetime

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action.value,
            "party": str(self.party),
            "counterpart": str(self.counterpart),
            "created_at": self.created_at,
        }


def parse_party(text: str) -> PartyId:
    """An operator's ``NL*ABC`` (or ``NL-ABC``, ``NLABC``) as a :class:`PartyId`;
    ValueError otherwise. What the gateway stores is ``PartyId.parse``'s to read."""
    compact = text.strip().replace("*", "").replace("-", "")
    if len(compact) != 5 or not compact.isascii() or not compact.isalnum():
        raise ValueError(f"{text!r} is not a party: country code and party id, e.g. NL*ABC")
    return PartyId(compact[:2], compact[2:])


class RuleBook:
    def __init__(self, store: DocumentStore, clock: Clock, ids: IdFactory) -> None:
        self._store = store
        self._clock = clock
        self._ids = ids
        self._rules: dict[str, Rule] = {}
        self.rules: RoutingRules = OPEN
        self._listeners: list[RuleListener] = []

    async def load(self) -> None:
        """Read every rule (again: after messages about changes may have been lost,
        the stored rules replace those in memory)."""
        rules: dict[str, Rule] = {}
        offset = 0
        while True:
            docs, total = await self._store.list(offset=offset, limit=500)
            for doc in docs:
                rule = _from_document(doc)
                rules[rule.id] = rule
            offset += len(docs)
            if not docs or offset >= total:
                break
        self._rules = rules
        self._snapshot()

    async def reload(self, rule_id: str) -> None:
        """Read one rule again after another process sharing the store added or
        removed it; the listeners are not told (that process has)."""
        doc = await self._store.get(rule_id)
        if doc is None:
            self._rules.pop(rule_id, None)
        else:
            self._rules[rule_id] = _from_document(doc)
        self._snapshot()

    def on_change(self, listener: RuleListener) -> None:
        """Call ``await listener(rule_id)`` after a rule was added or removed here
        (stored); errors are logged."""
        self._listeners.append(listener)

    async def _changed(self, rule_id: str) -> None:
        for listener in self._listeners:
            try:
                await listener(rule_id)
            except Exception:
                log.exception("rule change listener failed")

    def all(self) -> list[Rule]:
        return sorted(self._rules.values(), key=lambda r: (r.created_at, r.id))

    async def add(self, action: RuleAction, party: PartyId, counterpart: PartyId) -> Rule:
        if party == counterpart:
            raise ValueError("a rule needs two different parties")
        for rule in self._rules.values():
            if (rule.action, rule.party, rule.counterpart) == (action, party, counterpart):
                return rule
        rule = Rule(self._ids.new_id(), action, party, counterpart, self._clock.now())
        await self._store.put(_to_document(rule))
        self._rules[rule.id] = rule
        self._snapshot()
        await self._changed(rule.id)
        return rule

    async def remove(self, rule_id: str) -> bool:
        if rule_id not in self._rules:
            return False
        await self._store.delete(rule_id)
        self._rules.pop(rule_id, None)
        self._snapshot()
        await self._changed(rule_id)
        return True

    def _snapshot(self) -> None:
        rules = self.all()
        self.rules = RoutingRules.of(
            allow=[(r.party, r.counterpart) for r in rules if r.action is RuleAction.ALLOW],
            deny=[(r.party, r.counterpart) for r in rules if r.action is RuleAction.DENY],
        )


def _to_document(rule: Rule) -> Document:
    data = {
        "id": rule.id,
        "action": rule.action.value,
        "party": str(rule.party),
        "counterpart": str(rule.counterpart),
    }
    return Document(rule.id, data, rule.created_at)


def _from_document(doc: Document) -> Rule:
    d = doc.data
    return Rule(
        id=d["id"],
        action=RuleAction(d["action"]),
        party=PartyId.parse(d["party"]),
        counterpart=PartyId.parse(d["counterpart"]),
        created_at=doc.last_updated,
    )
