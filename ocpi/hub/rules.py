"""Operator routing rules: which parties may exchange messages through the hub.

A rule names a *subject* party and a *counterpart* party. Evaluation is symmetric, a
pair ``{a, b}`` either may talk (in both directions) or may not:

1. **An explicit deny wins**: when ``b`` is in ``a``'s deny list, or ``a`` in ``b``'s,
   the pair may not talk, whatever the allow lists say.
2. **An allow list is exclusive**: when ``a`` has an allow list (at least one allow
   rule), only the parties in it are visible to ``a``; likewise for ``b``. Both sides'
   lists are checked.
3. **Otherwise everything is allowed** (no rules: an open hub).

A party is always allowed to address itself. So "eMSP E may only see CPOs C1 and C2" is
``allow E -> {C1, C2}``; "CPO C refuses eMSP E" is ``deny C -> {E}`` (or ``E -> {C}``,
which is the same). The rules apply to directed routing, broadcast push, GET All and
the ClientInfo objects a platform is told about.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ocpi.transport import PartyId

__all__ = ["OPEN", "RoutingRules", "is_allowed", "visible"]


def _freeze(pairs: Iterable[tuple[PartyId, PartyId]]) -> Mapping[PartyId, frozenset[PartyId]]:
    table: dict[PartyId, set[PartyId]] = {}
    for subject, counterpart in pairs:
        table.setdefault(subject, set()).add(counterpart)
    return MappingProxyType({k: frozenset(v) for k, v in table.items()})


@dataclass(frozen=True, slots=True)
class RoutingRules:
    """Allow and deny lists per subject party (immutable; build with :meth:`of`)."""

    allow: Mapping[PartyId, frozenset[PartyId]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    deny: Mapping[PartyId, frozenset[PartyId]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(
        cls,
        *,
        allow: Iterable[tuple[PartyId, PartyId]] = (),
        deny: Iterable[tuple[PartyId, PartyId]] = (),
    ) -> RoutingRules:
        """Rules from ``(subject, counterpart)`` pairs."""
        return cls(allow=_freeze(allow), deny=_freeze(deny))

    @property
    def empty(self) -> bool:
        return not self.allow and not self.deny


OPEN = RoutingRules()


def is_allowed(rules: RoutingRules, a: PartyId, b: PartyId) -> bool:
    """Whether ``a`` and ``b`` may exchange messages (symmetric; see the module doc)."""
    if a == b:
        return True
    if b in rules.deny.get(a, ()) or a in rules.deny.get(b, ()):
        return False
    allowed_a = rules.allow.get(a)
    if allowed_a is not None and b not in allowed_a:
        return False
    allowed_b = rules.allow.get(b)
    return allowed_b is None or a in allowed_b


def visible(rules: RoutingRules, subject: PartyId, candidates: Iterable[PartyId]) -> list[PartyId]:
    """The candidates ``subject`` may exchange messages with, in the given order."""
    if rules.empty:
        return list(candidates)
    return [c for c in candidates if is_allowed(rules, subject, c)]
