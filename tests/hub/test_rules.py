"""Routing rules: precedence table and properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ocpi.hub.rules import OPEN, RoutingRules, is_allowed, visible
from ocpi.transport import PartyId

E1, E2, C1, C2, C3 = (PartyId("NL", x) for x in ("EM1", "EM2", "CP1", "CP2", "CP3"))
PARTIES = [E1, E2, C1, C2, C3]

parties = st.sampled_from(PARTIES)
pairs = st.lists(st.tuples(parties, parties), max_size=8)


def reference(
    allow: list[tuple[PartyId, PartyId]],
    deny: list[tuple[PartyId, PartyId]],
    a: PartyId,
    b: PartyId,
) -> bool:
    """The documented precedence, written naively."""
    if a == b:
        return True
    if (a, b) in deny or (b, a) in deny:
        return False
    for x, y in ((a, b), (b, a)):
        listed = [c for s, c in allow if s == x]
        if listed and y not in listed:
            return False
    return True


def test_table() -> None:
    rules = RoutingRules.of(allow=[(E1, C1), (E1, C2)], deny=[(E1, C2), (C3, E2)])
    assert is_allowed(rules, E1, C1)
    assert not is_allowed(rules, E1, C2)  # explicit deny wins over allow
    assert not is_allowed(rules, E1, C3)  # E1's allow list is exclusive
    assert not is_allowed(rules, C3, E1)  # ... in both directions
    assert not is_allowed(rules, E2, C3)  # denied by C3's rule
    assert is_allowed(rules, E2, C1)  # no rules for E2 nor C1
    assert visible(rules, E1, [C3, C2, C1]) == [C1]
    assert visible(OPEN, E1, [C3, C2]) == [C3, C2]


@given(a=parties, b=parties)
def test_no_rules_everything_allowed(a: PartyId, b: PartyId) -> None:
    assert is_allowed(OPEN, a, b)


@given(allow=pairs, deny=pairs, a=parties, b=parties)
def test_matches_reference_and_symmetric(
    allow: list[tuple[PartyId, PartyId]],
    deny: list[tuple[PartyId, PartyId]],
    a: PartyId,
    b: PartyId,
) -> None:
    rules = RoutingRules.of(allow=allow, deny=deny)
    assert is_allowed(rules, a, b) == reference(allow, deny, a, b)
    assert is_allowed(rules, a, b) == is_allowed(rules, b, a)
    assert is_allowed(rules, a, a)


@given(allow=pairs, deny=pairs, extra=st.tuples(parties, parties), a=parties, b=parties)
def test_deny_wins_and_is_monotonic(
    allow: list[tuple[PartyId, PartyId]],
    deny: list[tuple[PartyId, PartyId]],
    extra: tuple[PartyId, PartyId],
    a: PartyId,
    b: PartyId,
) -> None:
    before = RoutingRules.of(allow=allow, deny=deny)
    after = RoutingRules.of(allow=allow, deny=[*deny, extra])
    if is_allowed(after, a, b):
        assert is_allowed(before, a, b)  # a deny never opens anything
    x, y = extra
    if x != y:
        assert not is_allowed(RoutingRules.of(allow=[*allow, extra], deny=[extra]), x, y)


@given(allow=pairs, a=parties, b=parties)
def test_allow_list_is_exclusive(
    allow: list[tuple[PartyId, PartyId]], a: PartyId, b: PartyId
) -> None:
    rules = RoutingRules.of(allow=allow)
    if a != b and a in rules.allow and b not in rules.allow[a]:
        assert not is_allowed(rules, a, b)


@given(allow=pairs, deny=pairs, a=parties)
def test_visible_is_filter_in_order(
    allow: list[tuple[PartyId, PartyId]], deny: list[tuple[PartyId, PartyId]], a: PartyId
) -> None:
    rules = RoutingRules.of(allow=allow, deny=deny)
    assert visible(rules, a, PARTIES) == [p for p in PARTIES if is_allowed(rules, a, p)]
