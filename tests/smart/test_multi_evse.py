"""Load management of a charger with two EVSEs: besides its station-wide maximum, each
EVSE gets its session's share as a TxDefaultProfile, so the charger shares as the
allocator did (on its own it would share the maximum equally, and a paused session would
draw). Real app, simulated 1.6 and 2.0.1 chargers over real WebSockets (tests/sim.py)."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import pytest

from gateway.smart.manager import EVSE_PROFILE_BASE, SITE_PROFILE_ID
from tests.conftest import Gateway
from tests.sim import EV, boot, connect
from tests.smart.test_sites_e2e import Watcher, until, watching

D = Decimal


def site(capacity: int) -> dict[str, Any]:
    return {
        "capacity": capacity,
        "phases": 3,
        "evses": [{"charger_id": "ME-1", "evse_id": e, "max_current": 32} for e in (1, 2)],
    }


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_each_evse_gets_its_sessions_share(gateway: Gateway, version: str) -> None:
    evses = [{"ocpp_id": e, "evse_uid": f"ME-1-{e}"} for e in (1, 2)]
    assert (await gateway.admin("PUT", "/chargers/ME-1", {"evses": evses}))[0] == 201
    assert (await gateway.admin("PUT", "/tokens/TAG-EV", {"valid": True}))[0] in (200, 201)
    assert (await gateway.admin("PUT", "/sites/ME", site(20)))[0] == 201

    async with contextlib.AsyncExitStack() as stack:
        cp = await stack.enter_async_context(connect(gateway.ws_url, "ME-1", version))
        cp.evse_count = 2
        await boot(cp, version)

        def evse_limits() -> tuple[Decimal | None, ...]:
            return tuple(
                p.limit_at(cp.clock(), None) if p is not None else None
                for p in (cp.profiles.get(EVSE_PROFILE_BASE + e) for e in (1, 2))
            )

        def state() -> tuple[Decimal | None, tuple[Decimal | None, ...]]:
            return cp.station_limit(), evse_limits()

        # Idle: the minimum each, station-wide and per EVSE.
        await until(lambda: state() == (D(12), (D(6), D(6))))
        assert cp.profiles[SITE_PROFILE_ID].evse_id == 0
        assert {cp.profiles[EVSE_PROFILE_BASE + e].evse_id for e in (1, 2)} == {1, 2}
        assert {cp.profiles[EVSE_PROFILE_BASE + e].purpose for e in (1, 2)} == {"TxDefaultProfile"}
        watcher = Watcher({"ME-1": cp}, D(20))
        async with watching(watcher):
            cp.plug(1, EV())
            await cp.start_transaction(1)
            await until(lambda: state() == (D(20), (D(20), D(0))))
            assert cp.draw(1) == D(20)

            cp.plug(2, EV())
            await cp.start_transaction(2)
            await until(lambda: state() == (D(20), (D(10), D(10))))
            assert (cp.draw(1), cp.draw(2)) == (D(10), D(10))

            # Room for one minimum only: the second session is paused and really draws
            # nothing (with the station-wide limit alone the charger would give it 5 A).
            watcher.cap = D(20)
            assert (await gateway.admin("PUT", "/sites/ME", site(10)))[0] == 200
            await until(lambda: state() == (D(10), (D(10), D(0))))
            watcher.cap = D(10)
            assert (cp.draw(1), cp.draw(2)) == (D(10), D(0))

            async def shown() -> bool:
                _, body = await gateway.admin("GET", "/sites/ME")
                view = body["allocation"]
                limits = view["chargers"][0]["evse_limits"]
                return {k: D(v) for k, v in limits.items()} == {"1": D(10), "2": D(0)}

            await until(shown)
            _, body = await gateway.admin("GET", "/sites/ME")
            statuses = {s["evse_id"]: s["status"] for s in body["allocation"]["sessions"]}
            assert statuses == {1: "charging", 2: "paused"}

            # The first leaves: the paused one gets the capacity.
            await cp.stop_transaction(1)
            cp.unplug(1)
            await until(lambda: state() == (D(10), (D(0), D(10))))
            assert cp.draw(2) == D(10)
        assert watcher.violations == [], watcher.violations[:5]

        # Deleting the site clears both kinds of profile.
        assert (await gateway.admin("DELETE", "/sites/ME"))[0] == 204
        await until(lambda: state() == (None, (None, None)))


async def test_a_charger_that_refuses_per_evse_limits_keeps_its_station_limit(
    gateway: Gateway,
) -> None:
    evses = [{"ocpp_id": e, "evse_uid": f"ME-2-{e}"} for e in (1, 2)]
    assert (await gateway.admin("PUT", "/chargers/ME-2", {"evses": evses}))[0] == 201
    body = site(20)
    for e in body["evses"]:
        e["charger_id"] = "ME-2"
    assert (await gateway.admin("PUT", "/sites/ME2", body))[0] == 201
    async with connect(gateway.ws_url, "ME-2", "1.6") as cp:
        cp.evse_count = 2
        original = cp._install

        def no_tx_default(held: Any) -> str:
            return "Rejected" if held.purpose == "TxDefaultProfile" else original(held)

        cp._install = no_tx_default
        await boot(cp, "1.6")
        await until(lambda: cp.station_limit() == D(12))

        async def view() -> dict[str, Any]:
            _, body = await gateway.admin("GET", "/sites/ME2")
            return dict(body["allocation"]["chargers"][0])

        async def settled() -> bool:
            charger = await view()
            return D(charger["limit_in_force"] or -1) == 12 and not charger["pinned"]

        await until(settled)
        assert (await view())["evse_limits"] == {}
        assert not any(p.purpose == "TxDefaultProfile" for p in cp.profiles.values())
