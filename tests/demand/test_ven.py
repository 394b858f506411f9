"""The gateway's VEN (gateway.demand.ven) against a real OpenADR 2.0b VTN on loopback
(openleadr's server): registration, events to site limits, opt answers, cancellation,
telemetry reports. The site load manager is played by a recording sink here; the
end-to-end test with the real manager and chargers is in tests/smart."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gateway.demand.mapping import DemandLimit
from gateway.demand.ven import Ven, VenConfig
from gateway.domain.clock import SystemClock
from tests.demand.vtn import Vtn


class Sites:
    def __init__(self) -> None:
        self.limits: dict[str, tuple[DemandLimit, ...]] = {}
        self.removed: list[str] = []

    async def site_ids(self) -> list[str]:
        return ["depot", "office"]

    async def replace_event_limits(self, event_id: str, limits: Sequence[DemandLimit]) -> None:
        self.limits[event_id] = tuple(limits)

    async def remove_event_limits(self, event_id: str) -> None:
        self.limits.pop(event_id, None)
        self.removed.append(event_id)

    def site_power_watts(self, site_id: str) -> Decimal | None:
        return Decimal(11000) if site_id == "depot" else Decimal(0)


@pytest.fixture
async def vtn() -> AsyncIterator[Vtn]:
    server = Vtn()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def until(check, bound: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + bound
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not in time"
        await asyncio.sleep(0.05)


async def test_events_become_site_limits_and_are_answered(vtn: Vtn) -> None:
    sites = Sites()
    ven = Ven(VenConfig(vtn.url, "gateway-test", report_every=timedelta(seconds=1)), sites, SystemClock(), sites)
    task = asyncio.create_task(ven.run())
    try:
        await until(lambda: vtn.registered == ["gateway-test"])
        start = datetime.now(UTC) + timedelta(minutes=5)
        vtn.add_event(
            "EV-1",
            "LOAD_CONTROL",
            "x-loadControlCapacity",
            [{"dtstart": start, "duration": timedelta(minutes=30), "signal_payload": 0.5}],
            targets_by_type={"resource_id": ["depot"]},
        )
        await until(lambda: ("EV-1", "optIn") in vtn.opts)
        [limit] = sites.limits["EV-1"]
        assert (limit.site_id, limit.fraction, limit.watts) == ("depot", Decimal("0.5"), None)
        assert abs(limit.start - start) < timedelta(seconds=1)  # XML times: whole seconds or so
        assert limit.end - limit.start == timedelta(minutes=30)
        # A signal the gateway does not follow: opted out, nothing applied.
        vtn.add_event("EV-2", "ELECTRICITY_PRICE", "price", [{"dtstart": start, "duration": timedelta(minutes=5), "signal_payload": 0.4}])
        await until(lambda: ("EV-2", "optOut") in vtn.opts)
        assert "EV-2" not in sites.limits
        # Cancelled by the VTN: the limits are lifted.
        vtn.cancel("EV-1")
        await until(lambda: "EV-1" in sites.removed)
        assert "EV-1" not in sites.limits
        # Telemetry: the sites' power, as the site manager reads it.
        await until(lambda: ("depot", 11000.0) in vtn.reports)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_the_openadr_client_imports_without_a_warning() -> None:
    # A fresh interpreter with every warning an error: openleadr's first import (its
    # signxml names cryptography's DSA types, which cryptography 51 warns about) prints
    # nothing into the operator's log.
    code = "from gateway.demand.ven import _openadr_client; print(_openadr_client().__name__)"
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "OpenADRClient"
