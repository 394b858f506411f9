"""OCPI ChargingProfiles through the hub to a hosted CPO, end to end: eMSPs on real
platforms (tests/hub/platform.py) set, read and clear a profile on their driver's
session at the gateway's hosted CPO, whose simulated charger (tests/sim.py) applies it;
each result reaches the eMSP's own response_url, and the ActiveChargingProfile on a
change reaches its Sender interface, with routing headers. Both storage backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from ocpp.v16 import call as call16

from gateway.domain import commands as cmd
from gateway.domain.charging import ProfilePurpose, constant_limit
from gateway.keys import ROUTER
from gateway.roaming.providers import PROVIDERS
from tests.conftest import Gateway, GatewayFactory
from tests.hub.platform import Platform, Received
from tests.hub.test_gateway_hub import (
    HOSTED,
    eventually,
    free_port,
    hosted_location,
    join,
    routed,
    settled,
)
from tests.ocpi.openapi import validate_against_openapi, validate_envelope
from tests.sim import connect

PROFILE = {
    "charging_rate_unit": "A",
    "charging_profile_period": [
        {"start_period": 0, "limit": 16},
        {"start_period": 600, "limit": 8},
    ],
}


@dataclass
class Hub:
    gateway: Gateway
    emsp1: Platform  # two eMSP parties: NL*EM1 and NL*EM3
    emsp2: Platform


@pytest.fixture
async def hub(gateways: GatewayFactory) -> AsyncIterator[Hub]:
    gateway = await gateways.start(port=free_port(), outbox_poll_interval=0.2)
    emsp1 = Platform("eMSP One", "EMSP", [("NL", "EM1"), ("NL", "EM3")])
    emsp2 = Platform("eMSP Two", "EMSP", [("DE", "EM2")])
    for platform in (emsp1, emsp2):
        await platform.start()
    try:
        for platform in (emsp1, emsp2):
            await join(gateway, platform)
        await hosted_location(gateway)
        yield Hub(gateway, emsp1, emsp2)
    finally:
        await gateways.stop(gateway)
        for platform in (emsp1, emsp2):
            await platform.stop()


def answered(reply: Any) -> str:
    """The ChargingProfileResponse the hosted CPO gave, checked against OpenAPI."""
    assert reply.status == 200, reply.body
    validate_envelope(reply.body, "chargingprofiles", "ChargingProfileResponse")
    return str(reply.body["data"]["result"])


def result_at(platform: Platform, uid: str) -> list[Received]:
    return [r for r in platform.got("chargingprofiles", "POST") if r.path.endswith(f"/{uid}")]


async def test_emsp_steers_its_session_at_a_hosted_cpo(hub: Hub) -> None:
    gw, emsp1, emsp2 = hub.gateway, hub.emsp1, hub.emsp2
    emsp1.authorize["RT-1"] = "ALLOWED"
    receiver = emsp1.hub_url("chargingprofiles", "RECEIVER")
    own = emsp1.module_url("chargingprofiles", "SENDER")
    async with connect(gw.ws_url, "CP1", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        cp.plug(1)
        await cp.start_transaction(1, id_tag="RT-1")  # authorized in real time by eMSP One
        (pushed, *_) = await eventually(lambda: emsp1.got("sessions", "PUT"))
        session_id = pushed.body["id"]
        url = f"{receiver}/{session_id}"

        # PUT by open routing: the hub finds the hosted CPO from its session.
        body = {"charging_profile": PROFILE, "response_url": f"{own}/SET-1"}
        assert answered(await emsp1.call("PUT", url, body)) == "ACCEPTED"
        (result,) = await eventually(lambda: result_at(emsp1, "SET-1"))
        assert result.body == {"result": "ACCEPTED"}
        assert routed(result) == ("ZZ*GWY", "NL*EM1")
        validate_against_openapi("chargingprofiles", "ChargingProfileResult", result.body)
        (held,) = cp.profiles.values()
        assert held.purpose == "TxProfile" and cp.limit(1) == 16

        # GET, directed: the active profile at the eMSP's URL.
        query = f"?duration=900&response_url={own}/GET-1"
        assert answered(await emsp1.call("GET", url + query, to=HOSTED)) == "ACCEPTED"
        (result,) = await eventually(lambda: result_at(emsp1, "GET-1"))
        validate_against_openapi("chargingprofiles", "ActiveChargingProfileResult", result.body)
        periods = result.body["profile"]["charging_profile"]["charging_profile_period"]
        assert periods[0] == {"start_period": 0, "limit": 16}
        assert periods[-1]["limit"] == 8

        # The site lowers the station to 10 A: eMSP One hears of it on its Sender interface.
        site = constant_limit(900, ProfilePurpose.STATION_MAX, Decimal(10))
        assert (await gw.app[ROUTER].send("CP1", cmd.SetChargingProfile(0, site))).status is (
            cmd.CommandStatus.ACCEPTED
        )
        profiles = gw.app[PROVIDERS].charging_profiles
        assert profiles is not None
        tx = await gw.store.transactions.get(session_id)
        assert tx is not None
        assert await profiles.active_profile_changed(tx.id, site.schedule)
        (update,) = await eventually(lambda: emsp1.got("chargingprofiles", "PUT"))
        assert update.path == f"/ocpi/2.2.1/chargingprofiles/sender/{session_id}"
        assert routed(update) == ("ZZ*GWY", "NL*EM1")
        validate_against_openapi("chargingprofiles", "ActiveChargingProfile", update.body)
        limits = [p["limit"] for p in update.body["charging_profile"]["charging_profile_period"]]
        assert limits[0] == 10 and max(limits) <= 10

        # Not another eMSP's to steer: the other party of the same platform, or another
        # platform, is told the session is unknown; the charger hears nothing.
        body = {"charging_profile": PROFILE, "response_url": f"{own}/SET-X"}
        reply = await emsp1.call("PUT", url, body, sender=("NL", "EM3"), to=HOSTED)
        assert answered(reply) == "UNKNOWN_SESSION"
        reply = await emsp2.call(
            "PUT", emsp2.hub_url("chargingprofiles", "RECEIVER") + f"/{session_id}", body, to=HOSTED
        )
        assert answered(reply) == "UNKNOWN_SESSION"

        # DELETE: cleared on the charger, ClearProfileResult at the eMSP's URL.
        reply = await emsp1.call("DELETE", f"{url}?response_url={own}/CLEAR-1", to=HOSTED)
        assert answered(reply) == "ACCEPTED"
        (result,) = await eventually(lambda: result_at(emsp1, "CLEAR-1"))
        assert result.body == {"result": "ACCEPTED"}
        validate_against_openapi("chargingprofiles", "ClearProfileResult", result.body)
        assert [p.purpose for p in cp.profiles.values()] == ["ChargePointMaxProfile"]
    await settled(gw)
    assert result_at(emsp1, "SET-X") == [] and emsp2.got("chargingprofiles") == []
