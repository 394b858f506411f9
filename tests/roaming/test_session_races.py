"""The races behind "a second session for the same charge", each played deterministically.

- A charger starts the transaction a START_SESSION asked for before the gateway has
  processed the charger's answer to the command (real chargers do: they start the moment
  they accept), or the gateway dies in between: the transaction must still belong to the
  command's session, never get one of its own.
- The start-up resync and the live TransactionEvents handle the same transaction: one
  session id, never back from COMPLETED to ACTIVE, one final PUT, one CDR.
- The per-session lock is not dropped while someone still waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from ocpp.v201 import call as call201

from gateway.domain.events import TransactionEnded, TransactionUpdated
from gateway.domain.models import IdToken, Transaction, TransactionStatus
from gateway.roaming.providers import PROVIDERS
from gateway.roaming.sessions import KeyedLocks, RemoteStart, SessionService
from ocpi.v221 import Token
from tests.conftest import Gateway, GatewayFactory
from tests.roaming.referencing_emsp import ReferencingEmsp
from tests.roaming.test_authorization_reference import _world
from tests.sim import connect


@pytest.fixture
async def emsp() -> AsyncIterator[ReferencingEmsp]:
    platform = ReferencingEmsp()
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


def _sessions(gw: Gateway) -> SessionService:
    service = gw.app[PROVIDERS].sessions
    assert service is not None
    return service


async def _pushes(gw: Gateway, module: str) -> list[Any]:
    return [i for i in await gw.store.outbox.list(limit=1000) if i.module == module]


def _event(kind: str, seq: int, minute: int, wh: int, **extra: Any) -> Any:
    ts = f"2026-11-23T10:{minute:02d}:00Z"
    return call201.TransactionEvent(
        event_type=kind, timestamp=ts, trigger_reason=extra.pop("trigger", "MeterValuePeriodic"), seq_no=seq,
        transaction_info={"transactionId": extra.pop("tx", "TX-R")} | extra.pop("info", {}),
        meter_value=[{"timestamp": ts, "sampledValue": [{"value": float(wh), "measurand": "Energy.Active.Import.Register"}]}],
        **extra,
    )


def _started(remote_start_id: int | None = None, tx: str = "TX-R") -> Any:
    extra: dict[str, Any] = {"evse": {"id": 1, "connectorId": 1}, "id_token": {"idToken": "DRIVER1", "type": "ISO14443"}, "tx": tx}
    if remote_start_id is not None:
        extra |= {"trigger": "RemoteStart", "info": {"remoteStartId": remote_start_id}}
    return _event("Started", 0, 0, 1000, **extra)


async def _remote_start(gw: Gateway, emsp: ReferencingEmsp, remote_start_id: int, reference: str) -> RemoteStart:
    _, partners = await gw.admin("GET", "/partners")
    return RemoteStart(
        partners[0]["id"], Token.model_validate(emsp.token("DRIVER1")), "CP201", 1, remote_start_id, reference
    )


async def test_transaction_before_the_answer_joins_the_command_session(gateways: GatewayFactory, emsp: ReferencingEmsp) -> None:
    gw = await _world(gateways, emsp)
    sessions = _sessions(gw)
    start = await _remote_start(gw, emsp, 4242, "REF-EARLY")
    await sessions.remote_start_requested(start)  # the command goes out
    async with connect(gw.ws_url, "CP201", "2.0.1") as cp:
        await cp.call(call201.BootNotification(charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp"))
        await cp.call(_started(4242))  # the charger starts before its answer is processed
        await sessions.remote_start_answered(start, True)  # ... which comes now
        await cp.call(_event("Ended", 1, 30, 4000, info={"stoppedReason": "Remote"}))
    pushes = await _pushes(gw, "sessions")
    assert [p.body["status"] for p in pushes] == ["ACTIVE", "COMPLETED"]  # no PENDING after ACTIVE
    [session_id] = {p.body["id"] for p in pushes}
    assert {p.body["authorization_reference"] for p in pushes} == {"REF-EARLY"}
    [cdr] = await _pushes(gw, "cdrs")
    assert (cdr.body["session_id"], cdr.body["authorization_reference"]) == (session_id, "REF-EARLY")


async def test_crash_between_command_and_answer_keeps_the_session(gateways: GatewayFactory, emsp: ReferencingEmsp) -> None:
    gw = await _world(gateways, emsp)
    sessions = _sessions(gw)
    start = await _remote_start(gw, emsp, 4343, "REF-CUT")
    await sessions.remote_start_requested(start)
    # The gateway died before it processed the answer: no remote_start_answered ever.
    async with connect(gw.ws_url, "CP201", "2.0.1") as cp:
        await cp.call(call201.BootNotification(charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp"))
        await cp.call(_started(4343))
        await cp.call(_event("Ended", 1, 30, 4000))
    pushes = await _pushes(gw, "sessions")
    assert [(p.body["status"], p.body["authorization_reference"]) for p in pushes] == [("ACTIVE", "REF-CUT"), ("COMPLETED", "REF-CUT")]
    assert len({p.body["id"] for p in pushes}) == 1


async def test_refused_command_is_not_the_session_of_a_later_transaction(gateways: GatewayFactory, emsp: ReferencingEmsp) -> None:
    gw = await _world(gateways, emsp)
    sessions = _sessions(gw)
    start = await _remote_start(gw, emsp, 4444, "REF-NO")
    await sessions.remote_start_requested(start)
    await sessions.remote_start_answered(start, False)
    async with connect(gw.ws_url, "CP201", "2.0.1") as cp:
        await cp.call(call201.BootNotification(charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp"))
        await cp.call(_started(4444))
    [push] = await _pushes(gw, "sessions")
    tx = await gw.store.transactions.find("CP201", "TX-R")
    assert push.body["id"] == tx.id
    assert "authorization_reference" not in push.body


async def test_stale_copies_never_reopen_a_completed_session(gateways: GatewayFactory, emsp: ReferencingEmsp) -> None:
    gw = await _world(gateways, emsp)
    sessions = _sessions(gw)
    async with connect(gw.ws_url, "CP201", "2.0.1") as cp:
        await cp.call(call201.BootNotification(charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp"))
        await cp.call(_started())
        await cp.call(_event("Updated", 1, 10, 2000))
        stale = await gw.store.transactions.find("CP201", "TX-R")
        await cp.call(_event("Ended", 2, 30, 4000))
    before = [(p.method, p.body) for p in await _pushes(gw, "sessions")]
    assert before[-1][1]["status"] == "COMPLETED"
    # What the resync or a late event may still hold: the transaction before it ended.
    await sessions.on_event(TransactionUpdated(stale, ()))
    await sessions.resync(datetime(2026, 11, 1, tzinfo=UTC))
    await sessions.on_event(TransactionEnded(await gw.store.transactions.get(stale.id)))  # a repeated end
    assert [(p.method, p.body) for p in await _pushes(gw, "sessions")] == before
    assert len(await _pushes(gw, "cdrs")) == 1
    stored = await gw.store.sessions.get(stale.id)
    assert stored.data["status"] == "COMPLETED"


async def test_resync_racing_live_ends_makes_one_session_each(gateways: GatewayFactory, emsp: ReferencingEmsp) -> None:
    gw = await _world(gateways, emsp)
    sessions = _sessions(gw)
    t0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    # Transactions stored by a process that died before its bridge heard of them.
    cut: list[Transaction] = []
    for i in range(8):
        tx = Transaction(
            id=f"tx-cut-{i}", charger_id="CP201", ocpp_id=f"T{i}", evse_id=1, connector_id=1, started_at=t0 + timedelta(minutes=i),
            id_token=IdToken("DRIVER1"), meter_start_wh=Decimal(1000),
        )
        stored, created = await gw.store.transactions.create(tx)
        assert created
        cut.append(stored)

    async def end_live(tx: Transaction) -> None:
        # The charger, reconnected, ends it while the resync runs.
        ended = replace(tx, status=TransactionStatus.COMPLETED, stopped_at=tx.started_at + timedelta(minutes=30), meter_stop_wh=Decimal(4000))
        await gw.store.transactions.save(ended)
        await sessions.on_event(TransactionEnded(ended))

    await asyncio.gather(sessions.resync(t0 - timedelta(days=1)), *(end_live(tx) for tx in cut))
    await sessions.resync(t0 - timedelta(days=1))  # and again, as after another restart
    session_pushes = await _pushes(gw, "sessions")
    cdrs = await _pushes(gw, "cdrs")
    for tx in cut:
        mine = [p for p in session_pushes if p.body["id"] == tx.id]
        statuses = [p.body["status"] for p in mine]
        assert statuses and statuses[-1] == "COMPLETED", (tx.id, statuses)
        assert statuses.count("COMPLETED") == 1, (tx.id, statuses)
        assert [c.body["session_id"] for c in cdrs if c.body["id"] == tx.id] == [tx.id]
    assert {p.body["id"] for p in session_pushes} == {tx.id for tx in cut}
    assert len(cdrs) == len(cut)


async def test_keyed_lock_survives_its_waiters() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    first_in, release_first = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with locks.hold("s"):
            first_in.set()
            await release_first.wait()
            order.append("first")

    async def second() -> None:
        async with locks.hold("s"):
            order.append("second in")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            order.append("second out")

    async def third() -> None:
        async with locks.hold("s"):
            order.append("third")

    a = asyncio.create_task(first())
    await first_in.wait()
    b = asyncio.create_task(second())
    await asyncio.sleep(0)  # second now waits for the lock
    release_first.set()
    await a
    c = asyncio.create_task(third())  # arrives while second holds (or is about to hold) it
    await asyncio.gather(b, c)
    assert order == ["first", "second in", "second out", "third"]
    assert len(locks) == 0  # nothing kept once nobody uses it
