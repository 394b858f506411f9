"""Routing decisions: one table row per branch, plus properties over random statuses
and rules."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpi.hub.directory import InMemoryPartyDirectory
from ocpi.hub.routing import (
    Broadcast,
    Forward,
    GetAll,
    HubRequest,
    Local,
    PartyNotOwnedError,
    RouterConfig,
    route,
    serves,
)
from ocpi.hub.rules import RoutingRules, is_allowed
from ocpi.transport import OcpiError, PartyId
from ocpi.v221.enums import ConnectionStatus
from ocpi.v221.types import Role
from tests.hub.servers import HUB, R, S, sample_directory

CP1, CP2, GWY, BTH, OFF = (
    PartyId(*p.split("*")) for p in ("NL*CP1", "DE*CP2", "NL*GWY", "BE*BTH", "FR*OFF")
)
EM1, EM2, OTH = PartyId("NL", "EM1"), PartyId("NL", "EM2"), PartyId("NL", "OTH")

DIRECTORY = sample_directory()
CONFIG = RouterConfig(hub_party=HUB)


def req(method: str, module: str, interface: Any, platform: str, **kw: Any) -> HubRequest:
    return HubRequest(method=method, module=module, interface=interface, platform_id=platform, **kw)


def parties_of(decision: Broadcast | GetAll) -> list[PartyId]:
    return [t.target for t in decision.targets]


# ------------------------------------------------------------ decisions


def test_directed_forward_to_remote_party() -> None:
    d = route(
        req("GET", "locations", S, "emsp1", path=("LOC1", "EVSE1"), from_party=EM1, to_party=CP1),
        DIRECTORY,
        CONFIG,
    )
    assert d == Forward(EM1, CP1, "cpo1", "http://cpo1/ocpi/cpo/2.2.1/locations", ("LOC1", "EVSE1"))
    assert (
        isinstance(d, Forward) and str(d.url) == "http://cpo1/ocpi/cpo/2.2.1/locations/LOC1/EVSE1"
    )


def test_directed_local_party_without_http() -> None:
    d = route(
        req("POST", "commands", R, "emsp1", path=("START_SESSION",), from_party=EM2, to_party=GWY),
        DIRECTORY,
        CONFIG,
    )
    assert d == Local(EM2, GWY, "gw", ("START_SESSION",))


def test_from_inferred_for_single_party_platform() -> None:
    d = route(
        req("PUT", "locations", R, "cpo1", path=("NL", "CP1", "L1"), to_party=EM1, url_owner=CP1),
        DIRECTORY,
        CONFIG,
    )
    assert isinstance(d, Forward) and d.sender == CP1 and d.target == EM1


def test_case_insensitive_party_ids() -> None:
    d = route(
        req(
            "GET",
            "locations",
            S,
            "emsp1",
            from_party=PartyId("nl", "em1"),
            to_party=PartyId("nl", "cp1"),
            path=("X",),
        ),
        DIRECTORY,
        CONFIG,
    )
    assert isinstance(d, Forward) and d.target == CP1


def test_get_all_targets_ordered_connected_and_serving() -> None:
    d = route(req("GET", "locations", S, "emsp1", from_party=EM1, to_party=HUB), DIRECTORY, CONFIG)
    assert isinstance(d, GetAll)
    # CPO-role parties with a locations SENDER, CONNECTED (not FR*OFF), by (cc, party_id)
    assert parties_of(d) == [BTH, CP2, CP1, GWY]
    assert isinstance(d.targets[3], Local)


def test_get_all_respects_rules() -> None:
    config = replace(
        CONFIG, rules=RoutingRules.of(allow=[(EM1, CP1), (EM1, GWY)], deny=[(CP2, EM2)])
    )
    d1 = route(req("GET", "locations", S, "emsp1", from_party=EM1, to_party=HUB), DIRECTORY, config)
    d2 = route(req("GET", "locations", S, "emsp1", from_party=EM2, to_party=HUB), DIRECTORY, config)
    assert isinstance(d1, GetAll) and parties_of(d1) == [CP1, GWY]
    assert isinstance(d2, GetAll) and parties_of(d2) == [BTH, CP1, GWY]


def test_broadcast_from_cpo_reaches_emsp_type_roles() -> None:
    d = route(
        req(
            "PUT",
            "locations",
            R,
            "cpo1",
            path=("NL", "CP1", "L1"),
            from_party=CP1,
            to_party=HUB,
            url_owner=CP1,
        ),
        DIRECTORY,
        CONFIG,
    )
    assert isinstance(d, Broadcast) and parties_of(d) == [BTH, EM1, EM2, OTH]


def test_broadcast_excludes_the_sender_itself() -> None:
    d = route(
        req(
            "PATCH", "locations", R, "both", path=("BE", "BTH", "L1"), from_party=BTH, to_party=HUB
        ),
        DIRECTORY,
        CONFIG,
    )
    assert isinstance(d, Broadcast) and BTH not in parties_of(d)


def test_broadcast_from_emsp_or_other_reaches_cpos_implementing_the_module() -> None:
    d = route(
        req("PUT", "tokens", R, "other", path=("NL", "OTH", "T1"), from_party=OTH, to_party=HUB),
        DIRECTORY,
        CONFIG,
    )
    assert isinstance(d, Broadcast) and parties_of(d) == [CP1, GWY]


def test_broadcast_respects_rules() -> None:
    config = replace(CONFIG, rules=RoutingRules.of(deny=[(EM1, CP1)]))
    d = route(req("PUT", "tokens", R, "emsp1", from_party=EM1, to_party=HUB), DIRECTORY, config)
    assert isinstance(d, Broadcast) and parties_of(d) == [GWY]


def test_open_routing_with_owner_hint() -> None:
    d = route(
        req(
            "POST", "commands", R, "emsp1", path=("START_SESSION",), from_party=EM1, owner_hint=CP2
        ),
        DIRECTORY,
        CONFIG,
    )
    assert d == Forward(EM1, CP2, "cpo2", "http://cpo2/commands", ("START_SESSION",))
    d = route(
        req("GET", "locations", S, "emsp1", path=("L9",), from_party=EM1, owner_hint=GWY),
        DIRECTORY,
        CONFIG,
    )
    assert isinstance(d, Local)
    d = route(
        req("PUT", "sessions", R, "cpo1", path=("NL", "CP1", "S1"), owner_hint=EM2),
        DIRECTORY,
        CONFIG,
    )
    assert isinstance(d, Forward) and d.target == EM2 and d.endpoint == "http://emsp1/sessions"


def test_open_push_without_hint_is_broadcast_for_broadcastable_modules() -> None:
    d = route(req("PUT", "tariffs", R, "cpo1", path=("NL", "CP1", "T1")), DIRECTORY, CONFIG)
    assert isinstance(d, Broadcast) and parties_of(d) == [EM1, EM2]


def test_lenient_open_get_list_is_get_all() -> None:
    config = replace(CONFIG, open_get_list_is_get_all=True)
    d = route(req("GET", "locations", S, "emsp1", from_party=EM1), DIRECTORY, config)
    assert isinstance(d, GetAll) and len(d.targets) == 4


def test_get_all_of_empty_set_is_fine() -> None:
    d = route(req("GET", "tariffs", S, "emsp1", from_party=EM1, to_party=HUB), DIRECTORY, CONFIG)
    assert isinstance(d, GetAll) and parties_of(d) == [CP1]
    alone = InMemoryPartyDirectory()
    alone.add_platform(replace(DIRECTORY.platform("emsp1")))  # type: ignore[type-var]
    alone.add_party(EM1, [Role.EMSP], "emsp1")
    d = route(req("GET", "locations", S, "emsp1", to_party=HUB), alone, CONFIG)
    assert isinstance(d, GetAll) and d.targets == ()


# ------------------------------------------------------------------- errors

ERRORS = [
    pytest.param(
        req("GET", "locations", S, "emsp1", to_party=CP1, path=("L",)),
        2001,
        "OCPI-from",
        id="from-missing-multi-party",
    ),
    pytest.param(
        req("GET", "locations", S, "emsp1", from_party=CP1, to_party=CP2, path=("L",)),
        4000,
        "not one of",
        id="from-not-owned",
    ),
    pytest.param(
        req("GET", "locations", S, "emsp1", from_party=PartyId("XX", "YYY"), to_party=CP2),
        4000,
        "not one of",
        id="from-unknown",
    ),
    pytest.param(
        req(
            "PUT",
            "tokens",
            R,
            "emsp1",
            from_party=EM1,
            to_party=CP1,
            url_owner=OTH,
            path=("NL", "OTH", "T"),
        ),
        4000,
        "URL names",
        id="url-owner-not-owned",
    ),
    pytest.param(
        req(
            "GET",
            "locations",
            S,
            "emsp1",
            from_party=EM1,
            to_party=PartyId("XX", "NOP"),
            path=("L",),
        ),
        4001,
        "unknown receiver",
        id="to-unknown",
    ),
    pytest.param(
        req("GET", "locations", S, "emsp1", from_party=EM1, to_party=EM2, path=("L",)),
        4001,
        "does not serve",
        id="to-wrong-role",
    ),
    pytest.param(
        req("GET", "sessions", S, "emsp1", from_party=EM1, to_party=CP2),
        4001,
        "does not implement",
        id="to-no-endpoint",
    ),
    pytest.param(
        req("GET", "locations", S, "emsp1", from_party=EM1, to_party=OFF, path=("L",)),
        4003,
        "OFFLINE",
        id="to-offline",
    ),
    pytest.param(
        req("GET", "locations", S, "emsp1", from_party=EM1, to_party=HUB, path=("L1",)),
        2001,
        "never broadcast",
        id="get-one-to-hub",
    ),
    pytest.param(
        req("GET", "locations", R, "cpo1", to_party=HUB, path=("NL", "CP1", "L1")),
        2001,
        "never broadcast",
        id="get-receiver-to-hub",
    ),
    pytest.param(
        req("PUT", "sessions", R, "cpo1", to_party=HUB, path=("NL", "CP1", "S")),
        2001,
        "not allowed for the sessions",
        id="broadcast-sessions",
    ),
    pytest.param(
        req("POST", "commands", R, "emsp1", from_party=EM1, to_party=HUB, path=("START_SESSION",)),
        2001,
        "not allowed for the commands",
        id="broadcast-commands",
    ),
    pytest.param(
        req("GET", "locations", S, "emsp1", from_party=EM1), 2001, "GET All", id="open-get-list"
    ),
    pytest.param(
        req("POST", "cdrs", R, "cpo1"), 4001, "cannot be determined", id="open-no-hint-cdrs"
    ),
    pytest.param(
        req("GET", "locations", S, "emsp1", from_party=EM1, path=("L1",)),
        4001,
        "cannot be determined",
        id="open-get-no-hint",
    ),
    pytest.param(
        req(
            "POST",
            "commands",
            R,
            "emsp1",
            from_party=EM1,
            owner_hint=PartyId("XX", "NOP"),
            path=("STOP_SESSION",),
        ),
        4001,
        "unknown receiver",
        id="open-hint-unknown",
    ),
]


@pytest.mark.parametrize(("request_", "code", "words"), ERRORS)
def test_errors(request_: HubRequest, code: int, words: str) -> None:
    with pytest.raises(OcpiError) as info:
        route(request_, DIRECTORY, CONFIG)
    assert info.value.status_code == code
    assert info.value.http_status == 200
    assert words in info.value.message
    if code == 4000:
        assert isinstance(info.value, PartyNotOwnedError)


def test_denied_pair_looks_unknown() -> None:
    config = replace(CONFIG, rules=RoutingRules.of(deny=[(EM1, CP1)]))
    with pytest.raises(OcpiError) as info:
        route(
            req("GET", "locations", S, "emsp1", from_party=EM1, to_party=CP1, path=("L",)),
            DIRECTORY,
            config,
        )
    assert info.value.status_code == 4001 and info.value.message == "unknown receiver NL*CP1"


@pytest.mark.parametrize("module", ["credentials", "versions", "hubclientinfo"])
def test_configuration_modules_are_not_routed(module: str) -> None:
    with pytest.raises(ValueError, match="not routed"):
        route(req("GET", module, S, "emsp1", from_party=EM1, to_party=CP1), DIRECTORY, CONFIG)


def test_serves_table() -> None:
    cpo, emsp, hub = frozenset({Role.CPO}), frozenset({Role.EMSP}), frozenset({Role.HUB})
    assert serves(cpo, "locations", S) and not serves(cpo, "locations", R)
    assert serves(emsp, "locations", R) and not serves(emsp, "locations", S)
    assert serves(cpo, "commands", R) and serves(emsp, "commands", S)
    assert serves(frozenset({Role.OTHER}), "tokens", S)
    assert serves(cpo, "custommodule", S) and serves(emsp, "custommodule", R)
    assert not serves(hub, "custommodule", S)


# --------------------------------------------------------------- properties

ALL = [p.id for p in DIRECTORY.parties()]
statuses = st.fixed_dictionaries({p: st.sampled_from(list(ConnectionStatus)) for p in ALL})
rule_pairs = st.lists(st.tuples(st.sampled_from(ALL), st.sampled_from(ALL)), max_size=6)
modules = st.sampled_from(["locations", "tariffs", "tokens", "commands", "sessions", "cdrs"])
interfaces = st.sampled_from([S, R])


def with_statuses(status: dict[PartyId, ConnectionStatus]) -> InMemoryPartyDirectory:
    d = sample_directory()
    for pid, value in status.items():
        d.set_status(pid, value, d.status_changed_at(pid))
    return d


@settings(max_examples=150, deadline=None)
@given(
    status=statuses,
    allow=rule_pairs,
    deny=rule_pairs,
    module=modules,
    interface=interfaces,
    sender=st.sampled_from(ALL),
)
def test_fanout_targets_are_exactly_the_eligible_parties(
    status: dict[PartyId, ConnectionStatus],
    allow: list[tuple[PartyId, PartyId]],
    deny: list[tuple[PartyId, PartyId]],
    module: str,
    interface: Any,
    sender: PartyId,
) -> None:
    d = with_statuses(status)
    config = RouterConfig(
        hub_party=HUB,
        rules=RoutingRules.of(allow=allow, deny=deny),
        broadcast_modules=frozenset({module}),
    )
    platform = d.party(sender).platform_id  # type: ignore[union-attr]
    method = "GET" if interface is S else "PUT"
    decision = route(
        req(method, module, interface, platform, from_party=sender, to_party=HUB), d, config
    )
    assert isinstance(decision, GetAll if method == "GET" else Broadcast)
    got = [t.target for t in decision.targets]
    expected = [
        p.id
        for p in d.parties()
        if p.id != sender
        and serves(p.roles, module, interface)
        and d.status(p.id) is ConnectionStatus.CONNECTED
        and is_allowed(config.rules, sender, p.id)
        and d.platform(p.platform_id).implements(module, interface)  # type: ignore[union-attr]
    ]
    assert got == expected
    for target in decision.targets:
        assert target.sender == sender
        assert isinstance(target, Local) == d.platform(target.platform_id).local  # type: ignore[union-attr]


@settings(max_examples=150, deadline=None)
@given(
    status=statuses,
    deny=rule_pairs,
    module=modules,
    interface=interfaces,
    sender=st.sampled_from(ALL),
    to=st.sampled_from(ALL),
)
def test_directed_route_reaches_the_party_or_says_why(
    status: dict[PartyId, ConnectionStatus],
    deny: list[tuple[PartyId, PartyId]],
    module: str,
    interface: Any,
    sender: PartyId,
    to: PartyId,
) -> None:
    d = with_statuses(status)
    config = RouterConfig(hub_party=HUB, rules=RoutingRules.of(deny=deny))
    platform = d.party(sender).platform_id  # type: ignore[union-attr]
    outcome: Any
    try:
        outcome = route(
            req("POST", module, interface, platform, path=("x",), from_party=sender, to_party=to),
            d,
            config,
        )
    except OcpiError as exc:
        outcome = exc
    if isinstance(outcome, OcpiError):
        assert outcome.status_code in (4001, 4003)
        if outcome.status_code == 4003:
            assert d.status(to) is not ConnectionStatus.CONNECTED
        return
    decision = outcome
    assert isinstance(decision, Forward | Local)
    assert decision.target == to and decision.sender == sender
    assert d.status(to) is ConnectionStatus.CONNECTED and is_allowed(config.rules, sender, to)
