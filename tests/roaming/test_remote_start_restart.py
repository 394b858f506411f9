"""A START_SESSION to a 1.6 charger survives a restart of the gateway (issue 9, points 5
and 7): a 1.6 StartTransaction carries no remote start id, and the central system's
in-memory match of its token is gone after a restart, so the command is also stored by
charger and token. Against a real eMSP server (tests/roaming/lifecycle_emsp.py), a 1.6
charger over a real WebSocket and both storage backends; the gateway is stopped and a
new one started on the same storage between the command and the transaction.

mod_commands StartSession.authorization_reference: "this reference will be provided in
the relevant Session and/or CDR": the eMSP finds the charge by its reference only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from ocpp.v16 import call as call16

from gateway.roaming.providers import PROVIDERS
from gateway.roaming.sessions import _START_TOKEN, SessionService
from ocpi.transport import format_datetime
from tests.conftest import FakeClock, Gateway, GatewayFactory
from tests.ocpi.openapi import validate_against_openapi
from tests.roaming.lifecycle_emsp import LifecycleEmsp
from tests.roaming.test_session_lifecycle import WINDOW, _boot, _start_session, _world, eventually
from tests.sim import connect


@pytest.fixture
async def emsp() -> AsyncIterator[LifecycleEmsp]:
    platform = LifecycleEmsp()
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


def _sessions(gw: Gateway) -> SessionService:
    service = gw.app[PROVIDERS].sessions
    assert isinstance(service, SessionService)
    return service


async def _command_then_restart(
    gateways: GatewayFactory, emsp: LifecycleEmsp, clock: FakeClock, reference: str, **overrides: Any
) -> tuple[Gateway, str]:
    """START_SESSION accepted by CP16 (a PENDING session), then the gateway goes down
    and a new one starts on the same storage two minutes later; the new gateway and the
    PENDING session's id."""
    gw = await _world(gateways, emsp, clock, **overrides)
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await _boot(cp, "1.6")
        session_id, _ = await _start_session(gw, emsp, cp, "CP16", reference)
    await eventually(lambda: emsp.command_results(reference), "the command result")
    await gateways.stop(gw)
    clock.advance(120)
    return await gateways.start(gw.settings, clock=clock), session_id


async def _charge(cp: Any, at: datetime, meter_start: int = 1000, meter_stop: int = 4000) -> None:
    """The driver plugs in: a 1.6 transaction of DRIVER1 (no remote start id) that
    started at ``at`` by the charger's clock and ends 5 minutes later."""
    start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=meter_start, timestamp=format_datetime(at)))
    assert start.id_tag_info["status"] == "Accepted"
    stop = format_datetime(at + timedelta(minutes=5))
    await cp.call(call16.StopTransaction(meter_stop=meter_stop, timestamp=stop, transaction_id=start.transaction_id))


async def test_transaction_after_a_restart_joins_the_command_session(
    gateways: GatewayFactory, emsp: LifecycleEmsp
) -> None:
    clock = FakeClock()
    gw, session_id = await _command_then_restart(gateways, emsp, clock, "ORDER-R1")
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await _boot(cp, "1.6")
        await _charge(cp, clock.now())
        [cdr] = await eventually(emsp.cdrs, "the CDR")
    # One charge, one session: the command's, found by the eMSP's reference.
    [session] = emsp.sessions_by_reference("ORDER-R1")
    assert session["id"] == session_id
    assert set(emsp.sessions()) == {session_id}
    assert [s["status"] for s in emsp.session_puts(session_id)] == ["PENDING", "ACTIVE", "COMPLETED"]
    assert {s["authorization_reference"] for s in emsp.session_puts(session_id)} == {"ORDER-R1"}
    assert session["auth_method"] == "COMMAND"
    assert (cdr["session_id"], cdr["authorization_reference"], cdr["auth_method"]) == (session_id, "ORDER-R1", "COMMAND")
    validate_against_openapi("cdrs", "CDR", cdr)
    # The window passes (the retry loop checks every 0.05 s): nothing becomes INVALID.
    clock.advance(WINDOW + 1)
    assert await _sessions(gw).expire_pending() == 0
    [pulled] = await emsp.pull(gw.url, "sessions")
    assert (pulled["id"], pulled["status"], pulled["authorization_reference"]) == (session_id, "COMPLETED", "ORDER-R1")
    assert not [s for s in emsp.sessions().values() if s["status"] == "INVALID"]
    assert [c["session_id"] for c in await emsp.pull(gw.url, "cdrs")] == [session_id]


async def test_a_second_transaction_in_the_window_is_a_session_of_its_own(
    gateways: GatewayFactory, emsp: LifecycleEmsp
) -> None:
    clock = FakeClock()
    gw, session_id = await _command_then_restart(gateways, emsp, clock, "ORDER-R2")
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await _boot(cp, "1.6")
        await _charge(cp, clock.now())
        await eventually(lambda: len(emsp.cdrs()) == 1, "the first CDR")
        # The driver plugs in again after that charge, still within the window.
        clock.advance(360)
        await _charge(cp, clock.now(), 5000, 6000)
        cdrs = await eventually(lambda: len(emsp.cdrs()) == 2 and emsp.cdrs(), "both CDRs")
    [first] = emsp.cdrs_by_reference("ORDER-R2")
    [second] = [c for c in cdrs if c is not first and c["id"] != first["id"]]
    assert first["session_id"] == session_id
    assert second["session_id"] != session_id
    assert second.get("authorization_reference") is None
    assert [s["status"] for s in emsp.session_puts(session_id)] == ["PENDING", "ACTIVE", "COMPLETED"]
    assert [s["status"] for s in emsp.session_puts(second["session_id"])] == ["ACTIVE", "COMPLETED"]
    assert [s["id"] for s in emsp.sessions_by_reference("ORDER-R2")] == [session_id]
    assert set(emsp.sessions()) == {session_id, second["session_id"]}


@pytest.mark.parametrize("started", ["after the window", "before the command"])
async def test_a_transaction_outside_the_window_is_a_session_of_its_own(
    gateways: GatewayFactory, emsp: LifecycleEmsp, started: str
) -> None:
    """The charger's own timestamp of the transaction decides (the expiry has not run
    yet: the retry loop sleeps), as the in-memory match decides by the time it hears."""
    clock = FakeClock()
    command_at = clock.now()
    gw, session_id = await _command_then_restart(
        gateways, emsp, clock, "ORDER-R3", session_retry_interval=3600
    )
    if started == "after the window":
        clock.advance(WINDOW - 120 + 1)
        at = clock.now()
    else:  # an older transaction the charger reports only now (clocks differ less than that)
        at = command_at - timedelta(minutes=5)
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await _boot(cp, "1.6")
        await _charge(cp, at)
        [cdr] = await eventually(emsp.cdrs, "the CDR")
    assert cdr["session_id"] != session_id
    assert cdr.get("authorization_reference") is None
    assert [s["status"] for s in emsp.session_puts(cdr["session_id"])] == ["ACTIVE", "COMPLETED"]
    assert [s["status"] for s in emsp.session_puts(session_id)] == ["PENDING"]
    # The command's session will not become active.
    clock.advance(WINDOW)
    assert await _sessions(gw).expire_pending() == 1
    await eventually(lambda: len(emsp.session_puts(session_id)) == 2, "the INVALID session")
    assert [s["status"] for s in emsp.session_puts(session_id)] == ["PENDING", "INVALID"]


async def test_a_later_command_for_the_token_leaves_the_charge_on_its_session(
    gateways: GatewayFactory, emsp: LifecycleEmsp
) -> None:
    """The driver's eMSP sends another START_SESSION for the same token while the first
    one's charge is under way: the charge stays on its session (the claim is stored by
    transaction), the new command's session is its own and expires unused."""
    clock = FakeClock()
    gw, session_id = await _command_then_restart(gateways, emsp, clock, "ORDER-R4")
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await _boot(cp, "1.6")
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=1000, timestamp=format_datetime(clock.now())))
        await eventually(lambda: [s for s in emsp.session_puts(session_id) if s["status"] == "ACTIVE"], "the ACTIVE session")
        clock.advance(30)
        answer = await emsp.start_session(gw.url, "LOC1", "CP16-1", "DRIVER1", "ORDER-R5")
        assert answer["result"] == "ACCEPTED"
        [later] = await eventually(lambda: emsp.sessions_by_reference("ORDER-R5"), "the second PENDING session")
        await cp.call(call16.StopTransaction(meter_stop=4000, timestamp=format_datetime(clock.now()), transaction_id=start.transaction_id))
        [cdr] = await eventually(emsp.cdrs, "the CDR")
    assert (cdr["session_id"], cdr["authorization_reference"]) == (session_id, "ORDER-R4")
    assert [s["status"] for s in emsp.session_puts(session_id)] == ["PENDING", "ACTIVE", "COMPLETED"]
    clock.advance(WINDOW + 1)
    await eventually(lambda: len(emsp.session_puts(later["id"])) == 2, "the INVALID session")
    assert [s["status"] for s in emsp.session_puts(later["id"])] == ["PENDING", "INVALID"]
    assert set(emsp.sessions()) == {session_id, later["id"]}


async def test_a_command_stored_by_the_previous_release(
    gateways: GatewayFactory, emsp: LifecycleEmsp
) -> None:
    """A START_SESSION the previous release stored (no record by token) before it was
    upgraded: the transaction is a session of its own, as then, and the command's
    session expires INVALID; nothing fails."""
    clock = FakeClock()
    gw = await _world(gateways, emsp, clock)
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await _boot(cp, "1.6")
        session_id, _ = await _start_session(gw, emsp, cp, "CP16", "ORDER-R6")
    by_token, _ = await gw.store.sessions.list(owner=_START_TOKEN)
    assert len(by_token) == 1
    assert await gw.store.sessions.delete(by_token[0].key)
    await gateways.stop(gw)
    clock.advance(120)
    gw = await gateways.start(gw.settings, clock=clock)
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await _boot(cp, "1.6")
        await _charge(cp, clock.now())
        [cdr] = await eventually(emsp.cdrs, "the CDR")
    assert cdr["session_id"] != session_id
    assert [s["status"] for s in emsp.session_puts(cdr["session_id"])] == ["ACTIVE", "COMPLETED"]
    clock.advance(WINDOW)
    await eventually(lambda: len(emsp.session_puts(session_id)) == 2, "the INVALID session")
    assert [s["status"] for s in emsp.session_puts(session_id)] == ["PENDING", "INVALID"]
    status, failed = await gw.admin("GET", "/outbox?status=failed")
    assert (status, failed) == (200, [])
