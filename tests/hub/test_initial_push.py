"""A platform that joins the hub gets the hosted CPOs' tariffs and locations it may see at
once (issue 9, point 1: an initial push), routed as the hub routes them, and one a rule
hides from them gets none."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import Gateway
from tests.hub.platform import Platform
from tests.hub.test_gateway_hub import (  # noqa: F401
    World,
    eventually,
    hosted_location,
    join,
    routed,
    settled,
    world,
)

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "redis"])


@pytest.fixture
async def newcomer() -> AsyncIterator[Platform]:
    platform = Platform("eMSP Three", "EMSP", [("FR", "EM3")])
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


async def test_a_platform_that_joins_gets_the_hosted_catalogue(
    world: World, newcomer: Platform  # noqa: F811
) -> None:
    gw: Gateway = world.gateway
    await hosted_location(gw)
    await settled(gw)
    await join(gw, newcomer)
    tariffs = await eventually(lambda: newcomer.got("tariffs", "PUT"))
    locations = await eventually(
        lambda: [r for r in newcomer.got("locations", "PUT") if r.body.get("evses")]
    )
    assert [r.path for r in tariffs] == ["/ocpi/2.2.1/tariffs/receiver/ZZ/GWY/AC-STD"]
    assert [r.path for r in locations] == ["/ocpi/2.2.1/locations/receiver/ZZ/GWY/LOC1"]
    assert [e["uid"] for e in locations[0].body["evses"]] == ["CP1-1"]
    assert routed(tariffs[0]) == routed(locations[0]) == ("ZZ*GWY", "FR*EM3")


async def test_a_platform_a_rule_hides_gets_nothing(world: World, newcomer: Platform) -> None:  # noqa: F811
    gw = world.gateway
    await hosted_location(gw)
    status, _ = await gw.admin(
        "POST", "/hub/rules", {"action": "deny", "party": "FR*EM3", "counterpart": "ZZ*GWY"}
    )
    assert status == 201
    await join(gw, newcomer)
    await eventually(lambda: newcomer.got("hubclientinfo", "PUT"))
    await settled(gw)
    assert newcomer.got("locations") == [] and newcomer.got("tariffs") == []
