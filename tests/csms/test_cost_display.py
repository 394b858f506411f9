"""Costs on the charger's display (OCPP 2.0.1 and 2.1 TariffCostCtrlr; use cases I02 and I03):
a charger that says it displays costs gets the running cost of a session from the tariff
engine (CostUpdated, at most once a minute) and the final cost in the TransactionEvent
Ended answer; one that does not gets neither. A local session (the local list) is priced
with its connector's tariff, VAT included, as a CDR would be.

Tariff (tests/roaming/test_catalog.py): 0.35 EUR/kWh excl. VAT, 21 % VAT.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from ocpp.routing import on
from ocpp.v21 import call as call21
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from tests.conftest import FakeClock, GatewayFactory
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import Charger21, Charger201, WsAdapter


class CostCharger(Charger201):
    """A 2.0.1 charger with TariffCostCtrlr.Enabled[Cost] as configured."""

    def __init__(self, cp_id: str, conn: WsAdapter, displays_cost: bool) -> None:
        super().__init__(cp_id, conn)
        self.displays_cost = displays_cost
        self.costs: list[tuple[str, float]] = []

    @on("GetVariables")
    def on_get_variables(self, **kwargs: Any) -> Any:
        self.received.append(("GetVariables", kwargs))
        return result201.GetVariables(
            get_variable_result=[
                {
                    "attributeStatus": "Accepted",
                    "component": d["component"],
                    "variable": d["variable"],
                    # Enabled[Cost] as the spec names it; anything else is not there.
                    "attributeValue": "true" if self.displays_cost else "false",
                }
                if d["component"] == {"name": "TariffCostCtrlr"}
                and d["variable"] == {"name": "Enabled", "instance": "Cost"}
                else {
                    "attributeStatus": "UnknownComponent",
                    "component": d["component"],
                    "variable": d["variable"],
                }
                for d in kwargs["get_variable_data"]
            ]
        )

    @on("CostUpdated")
    def on_cost_updated(self, total_cost: float, transaction_id: str) -> Any:
        self.costs.append((transaction_id, total_cost))
        return result201.CostUpdated()


class CostCharger21(CostCharger, Charger21):
    """The same, speaking 2.1 (whose CostUpdated and totalCost are 2.0.1's)."""


CHARGER = {"2.0.1": CostCharger, "2.1": CostCharger21}
CALLS = {"2.0.1": call201, "2.1": call21}


def _meter(ts: str, wh: int) -> list[dict[str, Any]]:
    return [{"timestamp": ts, "sampledValue": [{"value": float(wh), "measurand": "Energy.Active.Import.Register"}]}]


def _event(kind: str, seq: int, ts: str, wh: int, version: str = "2.0.1", **extra: Any) -> Any:
    return CALLS[version].TransactionEvent(
        event_type=kind,
        timestamp=ts,
        trigger_reason=extra.pop("trigger", "MeterValuePeriodic"),
        seq_no=seq,
        transaction_info={"transactionId": "T-1"} | extra.pop("info", {}),
        meter_value=_meter(ts, wh),
        **extra,
    )


async def _session(
    gateways: GatewayFactory, displays_cost: bool, version: str = "2.0.1"
) -> tuple[CostCharger, list[Any]]:
    clock = FakeClock()
    gw = await gateways.start(clock=clock)
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    body = {"location_id": "LOC1", "evses": [{"ocpp_id": 1, "evse_uid": "CP1-1"}]}
    assert (await gw.admin("PUT", "/chargers/CP-COST", body))[0] == 201
    assert (await gw.admin("PUT", "/tokens/LOCAL-1", {}))[0] == 201
    answers: list[Any] = []
    async with aiohttp.ClientSession() as s, s.ws_connect(f"{gw.ws_url}/ocpp/CP-COST", protocols=(f"ocpp{version}",)) as ws:
        cp = CHARGER[version]("CP-COST", WsAdapter(ws), displays_cost)
        loop = asyncio.create_task(cp.start())
        try:
            await cp.call(call201.BootNotification(charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp"))
            for _ in range(200):  # the central system asks at boot
                if any(n == "GetVariables" for n, _ in cp.received):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # its answer is read
            token = {"idToken": "LOCAL-1", "type": "ISO14443"}
            answers.append(await cp.call(_event("Started", 0, "2026-11-23T12:00:00Z", 10_000, version, evse={"id": 1, "connectorId": 1}, id_token=token, trigger="Authorized")))
            answers.append(await cp.call(_event("Updated", 1, "2026-11-23T12:10:00Z", 14_000, version)))
            # The CostUpdated goes out after the answer and prices what is stored then:
            # let it go before the next update (else it may show that one's energy).
            for _ in range(200):
                if cp.costs or not displays_cost:
                    break
                await asyncio.sleep(0.01)
            clock.advance(30)  # under a minute: no new cost
            answers.append(await cp.call(_event("Updated", 2, "2026-11-23T12:20:00Z", 18_000, version)))
            clock.advance(40)  # over a minute since the first
            answers.append(await cp.call(_event("Updated", 3, "2026-11-23T12:30:00Z", 20_000, version)))
            await asyncio.sleep(0.3)  # the CostUpdated CALLs go out after the answers
            answers.append(await cp.call(_event("Ended", 4, "2026-11-23T12:40:00Z", 22_000, version, trigger="StopAuthorized", info={"stoppedReason": "Local"})))
        finally:
            loop.cancel()
    return cp, answers


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
async def test_a_charger_that_displays_costs_gets_the_running_and_final_cost(gateways: GatewayFactory, version: str) -> None:
    cp, answers = await _session(gateways, displays_cost=True, version=version)
    # 4 kWh after the first update, 10 kWh after the third: 0.35 x 1.21 per kWh.
    assert cp.costs == [("T-1", 1.69), ("T-1", 4.24)]
    # Ended: 12 kWh in all.
    assert answers[-1].total_cost == 5.08


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
async def test_a_charger_that_does_not_display_costs_gets_none(gateways: GatewayFactory, version: str) -> None:
    cp, answers = await _session(gateways, displays_cost=False, version=version)
    assert cp.costs == []
    assert answers[-1].total_cost is None
