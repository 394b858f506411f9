"""Site load management end to end: the real app on both storage backends, simulated
1.6 and 2.0.1 chargers (tests/sim.py) over real WebSockets that apply the profiles they
receive, and EVs that draw what their charger allows. The limits are checked at the
chargers' side: a watcher samples what every charger holds all along the test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.smart.manager import SITES
from tests.conftest import Gateway, GatewayFactory, backend_settings
from tests.sim import EV, boot, connect

D = Decimal
CHARGERS = {"LM-A": "1.6", "LM-B": "1.6", "LM-C": "2.0.1"}


async def until(condition: Callable[[], Awaitable[bool] | bool], bound: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + bound
    while True:
        value = condition()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def site_body(capacity: int) -> dict[str, Any]:
    return {
        "capacity": capacity,
        "phases": 3,
        "suspend_after": 1,
        "evses": [{"charger_id": cid, "evse_id": 1, "max_current": 32} for cid in CHARGERS],
    }


class Watcher:
    """Samples the station maximum every charger holds (its rating without one) and
    records any instant their sum is above ``cap``."""

    def __init__(self, chargers: dict[str, Any], cap: Decimal) -> None:
        self.chargers = chargers
        self.cap = cap
        self.violations: list[tuple[Decimal, Decimal]] = []
        self.samples = 0

    def held(self) -> Decimal:
        total = D(0)
        for cp in self.chargers.values():
            limit = cp.station_limit()
            total += cp.rated_current if limit is None else limit
        return total

    async def run(self) -> None:
        while True:
            total = self.held()
            self.samples += 1
            if total > self.cap:
                self.violations.append((total, self.cap))
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def watching(watcher: Watcher) -> AsyncIterator[Watcher]:
    task = asyncio.create_task(watcher.run())
    try:
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_site_shares_its_capacity_safely(gateway: Gateway) -> None:
    for cid in CHARGERS:
        status, body = await gateway.admin(
            "PUT", f"/chargers/{cid}", {"evses": [{"ocpp_id": 1, "evse_uid": f"{cid}-1"}]}
        )
        assert status == 201, body
    status, body = await gateway.admin("PUT", "/tokens/TAG-EV", {"valid": True})
    assert status in (200, 201), body
    status, body = await gateway.admin("PUT", "/sites/S1", site_body(40))
    assert status == 201, body
    assert body["capacity"] == "40"

    async with contextlib.AsyncExitStack() as stack:
        cps: dict[str, Any] = {}
        for cid, version in CHARGERS.items():
            cp = await stack.enter_async_context(connect(gateway.ws_url, cid, version))
            cp.evse_count = 1
            await boot(cp, version)
            cps[cid] = cp
        a, b, c = cps["LM-A"], cps["LM-B"], cps["LM-C"]

        def limits() -> list[Decimal | None]:
            return [cp.station_limit() for cp in (a, b, c)]

        # Every charger holds a station maximum: idle ones the minimum each.
        await until(lambda: limits() == [D(6), D(6), D(6)])
        watcher = Watcher(cps, D(40))
        async with watching(watcher):
            # Arrivals: the first car gets its 32 A (after C's 6 A went), then shares.
            a.plug(1, EV())
            tx_a = await a.start_transaction(1)
            await until(lambda: limits() == [D(32), D(6), D(0)])
            assert a.draw(1) == D(32)
            b.plug(1, EV())
            await b.start_transaction(1)
            await until(lambda: limits() == [D(20), D(20), D(0)])
            c.plug(1, EV())
            await c.start_transaction(1)
            await until(lambda: limits() == [D("13.3")] * 3)
            assert [cp.draw(1) for cp in (a, b, c)] == [D("13.3")] * 3

            # The live view: limits, draws from meter values, totals, headroom.
            for cp in (a, b, c):
                await cp.send_meter_values(1)

            async def drawn() -> bool:
                _, site = await gateway.admin("GET", "/sites/S1")
                view = site["allocation"]
                return view is not None and all(s["draw"] == "13.3" for s in view["sessions"])

            await until(drawn)
            _, site = await gateway.admin("GET", "/sites/S1")
            view = site["allocation"]
            assert view["total_limits"] == "39.9" and view["headroom"] == "0.1"
            assert view["phases"]["L2"]["draw"] == "39.9"
            assert {s["status"] for s in view["sessions"]} == {"charging"}

            # C's car stops drawing: after suspend_after it keeps 6 A, the others share
            # the rest; it draws again and gets its share back.
            c.evs[1].suspended = True

            async def c_suspended() -> bool:
                await c.send_meter_values(1)
                return limits() == [D(17), D(17), D(6)]

            await until(c_suspended)
            c.evs[1].suspended = False

            async def c_back() -> bool:
                await c.send_meter_values(1)
                return limits() == [D("13.3")] * 3

            await until(c_back)

            # A capacity drop: lowered (the watcher allows the old capacity until done).
            status, _ = await gateway.admin("PUT", "/sites/S1", site_body(30))
            assert status == 200
            await until(lambda: limits() == [D(10)] * 3)
            watcher.cap = D(30)

            # A demand-response limit: applied within seconds of its start, lifted at its end.
            start = datetime.now(UTC) + timedelta(seconds=1)
            status, limit = await gateway.admin(
                "POST",
                "/sites/S1/limits",
                {
                    "start": start.isoformat(),
                    "end": (start + timedelta(seconds=3)).isoformat(),
                    "limit": 18,
                },
            )
            assert status == 201, limit
            assert (limit["limit"], limit["unit"], limit["amperes_per_phase"]) == (
                "18",
                "A",
                "18.0",
            )
            await until(lambda: limits() == [D(6)] * 3)
            watcher.cap = D(18)
            _, listed = await gateway.admin("GET", "/sites/S1/limits")
            assert [x["id"] for x in listed] == [limit["id"]] and listed[0]["in_force"]
            watcher.cap = D(30)  # raised only after its end
            await until(lambda: limits() == [D(10)] * 3)

            # Departure.
            await a.stop_transaction(1)
            a.unplug(1)
            await until(lambda: limits() == [D(0), D(15), D(15)])
            assert tx_a

        assert watcher.violations == [], watcher.violations[:5]
        assert watcher.samples > 100

        # C goes offline: it keeps counting at what it holds (15 A).
        await stack.aclose()

    async def c_offline() -> bool:
        _, site = await gateway.admin("GET", "/sites/S1")
        view = site["allocation"]
        charger = {x["charger_id"]: x for x in view["chargers"]}["LM-C"]
        return bool(
            charger["online"] is False and charger["pinned"] and charger["counted"] == "15.0"
        )

    await until(c_offline)


async def test_site_admin_validation(gateway: Gateway) -> None:
    status, body = await gateway.admin("PUT", "/sites/S2", {"capacity": -1})
    assert (status, body["field"]) == (422, "capacity")
    status, body = await gateway.admin(
        "PUT", "/sites/S2", {"capacity": 40, "evses": [{"charger_id": "X", "max_current": 4}]}
    )
    assert (status, body["field"]) == (422, "evses.0.max_current"), body
    status, body = await gateway.admin(
        "PUT",
        "/sites/S2",
        {
            "capacity": 40,
            "phases": 1,
            "evses": [{"charger_id": "X", "max_current": 16, "phase": "L2"}],
        },
    )
    assert (status, body["field"]) == (422, "evses.0.phase"), body
    status, body = await gateway.admin(
        "PUT",
        "/sites/S2",
        {"capacity": 22, "capacity_unit": "kW", "evses": [{"charger_id": "X", "max_current": 16}]},
    )
    assert status == 201, body
    status, body = await gateway.admin(
        "PUT", "/sites/S3", {"capacity": 40, "evses": [{"charger_id": "X", "max_current": 16}]}
    )
    assert (status, body["field"]) == (409, "evses"), body
    now = datetime.now(UTC)
    status, body = await gateway.admin(
        "POST", "/sites/S2/limits", {"start": now.isoformat(), "end": now.isoformat(), "limit": 5}
    )
    assert (status, body["field"]) == (422, "end"), body
    status, body = await gateway.admin(
        "POST",
        "/sites/S2/limits",
        {
            "start": now.isoformat(),
            "end": (now + timedelta(hours=1)).isoformat(),
            "limit": 11,
            "unit": "kW",
        },
    )
    assert status == 201, body
    assert body["amperes_per_phase"] == "15.9"  # 11 kW / (3 x 230 V), rounded down
    status, _ = await gateway.admin("DELETE", f"/sites/S2/limits/{body['id']}")
    assert status == 204
    status, _ = await gateway.admin(
        "POST",
        "/sites/NOPE/limits",
        {"start": now.isoformat(), "end": (now + timedelta(hours=1)).isoformat(), "limit": 1},
    )
    assert status == 404
    status, _ = await gateway.admin("DELETE", "/sites/S2")
    assert status == 204
    status, _ = await gateway.admin("GET", "/sites/S2")
    assert status == 404


async def test_a_charger_that_rejects_or_reboots(gateway: Gateway) -> None:
    """A charger that rejects its limit is pinned at what it holds (its rating, never
    limited) and the others share what is left; once it takes limits, its boot (profiles
    lost) counts it at its rating until it has its share again."""
    for cid in ("RJ-A", "RJ-B"):
        status, body = await gateway.admin(
            "PUT", f"/chargers/{cid}", {"evses": [{"ocpp_id": 1, "evse_uid": f"{cid}-1"}]}
        )
        assert status == 201, body
    status, body = await gateway.admin(
        "PUT",
        "/sites/S4",
        {
            "capacity": 40,
            "evses": [
                {"charger_id": "RJ-A", "max_current": 16},
                {"charger_id": "RJ-B", "max_current": 32},
            ],
        },
    )
    assert status == 201, body
    async with (
        connect(gateway.ws_url, "RJ-A", "1.6") as a,
        connect(gateway.ws_url, "RJ-B", "2.0.1") as b,
    ):
        a.rated_current = D(16)
        a.profile_status = "Rejected"
        await boot(a, "1.6")
        await boot(b, "2.0.1")
        b.plug(1, EV())
        await b.start_transaction(1)
        # A holds no limit (16 A, its rating): B gets 40 - 16 = 24.
        await until(lambda: b.station_limit() == D(24))
        assert a.station_limit() is None
        _, site = await gateway.admin("GET", "/sites/S4")
        pinned = {c["charger_id"]: c["pinned"] for c in site["allocation"]["chargers"]}
        assert pinned == {"RJ-A": True, "RJ-B": False}

        # It takes profiles now (its boot clears the pin): A gets its idle minimum first,
        # then B is raised to 32. A reboot that loses them counts A at 16 again until it
        # has its 6 A back; B is never raised meanwhile.
        a.profile_status = None
        await boot(a, "1.6")
        await until(lambda: a.station_limit() == D(6) and b.station_limit() == D(32))
        a.profiles.clear()  # a reboot that loses its profiles
        await boot(a, "1.6")
        await until(lambda: a.station_limit() == D(6))
        assert (
            b.station_limit() is not None and b.station_limit() + (a.station_limit() or D(16)) <= 40
        )


@pytest.mark.parametrize("backend", ["redis"])  # several processes share a Redis store
async def test_takeover_by_another_process(gateways: GatewayFactory, tmp_path: Path) -> None:
    """Three processes on one Redis: C holds the sites lease, the chargers are on A and B.
    C stops; a survivor takes the allocator over from the stored state and goes on."""
    settings = backend_settings("redis", tmp_path, lease_seconds=1.0)
    c = await gateways.start(settings)
    await until(lambda: _holds(c))
    a = await gateways.start(settings)
    b = await gateways.start(settings)
    for cid in ("TK-X", "TK-Y"):
        status, body = await a.admin(
            "PUT", f"/chargers/{cid}", {"evses": [{"ocpp_id": 1, "evse_uid": f"{cid}-1"}]}
        )
        assert status == 201, body
    status, body = await b.admin(
        "PUT",
        "/sites/S5",
        {
            "capacity": 40,
            "evses": [{"charger_id": cid, "max_current": 32} for cid in ("TK-X", "TK-Y")],
        },
    )
    assert status == 201, body
    async with connect(a.ws_url, "TK-X", "1.6") as x, connect(b.ws_url, "TK-Y", "2.0.1") as y:
        await boot(x, "1.6")
        await boot(y, "2.0.1")
        await until(lambda: (x.station_limit(), y.station_limit()) == (D(6), D(6)))
        watcher = Watcher({"x": x, "y": y}, D(40))
        async with watching(watcher):
            x.plug(1, EV())
            await x.start_transaction(1)
            y.plug(1, EV())
            await y.start_transaction(1)
            await until(lambda: (x.station_limit(), y.station_limit()) == (D(20), D(20)))
            await gateways.stop(c)
            await until(lambda: _holds(a) or _holds(b))
            await y.stop_transaction(1)
            await until(lambda: (x.station_limit(), y.station_limit()) == (D(32), D(6)))
        assert watcher.violations == []
        _, site = await a.admin("GET", "/sites/S5")
        assert [s["limit"] for s in site["allocation"]["sessions"]] == ["32.0"]


def _holds(gw: Gateway) -> bool:
    return gw.app[SITES].holding
