"""The lifecycle of roaming sessions as an eMSP expects it (OCPI 2.2.1 mod_sessions,
mod_commands, mod_tokens), against a real eMSP server (tests/roaming/lifecycle_emsp.py),
chargers over real WebSockets and both storage backends, with a FakeClock for time:

1. A START_SESSION whose transaction never starts: the PENDING session becomes INVALID
   once the remote start window has passed (also across a restart); a transaction that
   starts afterwards is a session of its own; an expiry and a transaction that meet at
   the same moment are decided in the order they take the session's lock.
2. authorization_reference from a real-time authorization and from RESERVE_NOW reaches
   the session and the CDR.
3. A session PATCH the eMSP answers "unknown object" becomes a PUT of the full session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from gateway.roaming.providers import PROVIDERS
from gateway.roaming.sessions import SessionService
from tests.conftest import FakeClock, Gateway, GatewayFactory
from tests.ocpi.openapi import validate_against_openapi
from tests.roaming.emsp import token_header
from tests.roaming.lifecycle_emsp import LifecycleEmsp
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect

WINDOW = 600  # seconds: REMOTE_START_WINDOW


@pytest.fixture
async def emsp() -> AsyncIterator[LifecycleEmsp]:
    platform = LifecycleEmsp()
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


async def eventually(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll ``check`` (sync or async) until it is truthy; its value."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = check()
                if isinstance(result, Awaitable):
                    result = await result
                if result:
                    return result
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def _world(
    gateways: GatewayFactory, emsp: LifecycleEmsp, clock: FakeClock, **overrides: Any
) -> Gateway:
    settings: dict[str, Any] = {"session_retry_interval": 0.05, "outbox_poll_interval": 0.05}
    gw = await gateways.start(clock=clock, **(settings | overrides))
    _, partner = await gw.admin("POST", "/partners", {"name": "eMSP"})
    status, _ = await gw.admin(
        "POST", f"/partners/{partner['id']}/register",
        {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a},
    )
    assert status == 200
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    for cp_id in ("CP16", "CP201"):
        status, body = await gw.admin(
            "PUT", f"/chargers/{cp_id}",
            {"location_id": "LOC1", "evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]},
        )
        assert status == 201, body
    assert emsp.cpo_token is not None
    async with aiohttp.ClientSession() as s, s.put(
        f"{gw.url}/ocpi/2.2.1/tokens/NL/EMS/DRIVER1", json=emsp.token("DRIVER1"),
        headers=token_header(emsp.cpo_token),
    ) as r:
        assert r.status == 201
    return gw


def _sessions(gw: Gateway) -> SessionService:
    service = gw.app[PROVIDERS].sessions
    assert isinstance(service, SessionService)
    return service


async def _boot(cp: Any, version: str) -> None:
    if version == "1.6":
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
    else:
        await cp.call(call201.BootNotification(charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp"))


def _event201(kind: str, seq: int, ts: str, wh: str, **extra: Any) -> Any:
    return call201.TransactionEvent(
        event_type=kind, timestamp=ts, trigger_reason=extra.pop("trigger", "MeterValuePeriodic"), seq_no=seq,
        transaction_info={"transactionId": extra.pop("tx", "TX-1")} | extra.pop("info", {}),
        meter_value=[{"timestamp": ts, "sampledValue": [{"value": float(wh), "measurand": "Energy.Active.Import.Register"}]}],
        **extra,
    )


def _meter16(ts: str, wh: str) -> list[dict[str, Any]]:
    return [{"timestamp": ts, "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}]}]


async def _start_session(gw: Gateway, emsp: LifecycleEmsp, cp: Any, cp_id: str, reference: str) -> tuple[str, int]:
    """START_SESSION accepted by the charger; the PENDING session's id and the remote
    start id the charger got (2.0.1; 0 for 1.6)."""
    answer = await emsp.start_session(gw.url, "LOC1", f"{cp_id}-1", "DRIVER1", reference)
    assert answer["result"] == "ACCEPTED"
    name = "RemoteStartTransaction" if cp_id == "CP16" else "RequestStartTransaction"
    [request] = await eventually(lambda: [kw for n, kw in cp.received if n == name], name)
    [pending] = await eventually(lambda: emsp.sessions_by_reference(reference), "the PENDING session")
    assert pending["status"] == "PENDING"
    return str(pending["id"]), int(request.get("remote_start_id", 0))


async def _charge(cp: Any, version: str, remote_start_id: int, tx: str = "TX-1") -> None:
    """The driver plugs in after all (a transaction for DRIVER1 that ends)."""
    if version == "1.6":
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=1000, timestamp="2026-11-23T12:30:00Z"))
        await cp.call(call16.StopTransaction(meter_stop=4000, timestamp="2026-11-23T12:50:00Z", transaction_id=start.transaction_id))
        return
    await cp.call(_event201("Started", 0, "2026-11-23T12:30:00Z", "1000", tx=tx, trigger="RemoteStart",
                            info={"remoteStartId": remote_start_id}, evse={"id": 1, "connectorId": 1},
                            id_token={"idToken": "DRIVER1", "type": "ISO14443"}))
    await cp.call(_event201("Ended", 1, "2026-11-23T12:50:00Z", "4000", tx=tx, info={"stoppedReason": "Local"}))


# ------------------------------------------------------------- 1. PENDING -> INVALID


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_pending_session_that_never_starts_becomes_invalid(
    gateways: GatewayFactory, emsp: LifecycleEmsp, version: str
) -> None:
    clock = FakeClock()
    gw = await _world(gateways, emsp, clock)
    cp_id = "CP16" if version == "1.6" else "CP201"
    async with connect(gw.ws_url, cp_id, version) as cp:
        await _boot(cp, version)
        session_id, remote_start_id = await _start_session(gw, emsp, cp, cp_id, "ORDER-1")

        # Within the window the driver may still plug in: nothing expires.
        clock.advance(WINDOW - 60)
        assert await _sessions(gw).expire_pending() == 0
        assert [s["status"] for s in emsp.session_puts(session_id)] == ["PENDING"]

        # Past it, the retry loop declares the session INVALID (a PUT of the whole session).
        clock.advance(61)
        await eventually(lambda: len(emsp.session_puts(session_id)) == 2, "the INVALID session")
        pending, invalid = emsp.session_puts(session_id)
        assert invalid["status"] == "INVALID"
        assert invalid["authorization_reference"] == "ORDER-1"
        assert {k: v for k, v in invalid.items() if k not in ("status", "last_updated")} == {
            k: v for k, v in pending.items() if k not in ("status", "last_updated")
        }
        validate_against_openapi("sessions", "Session", invalid)
        [pulled] = await emsp.pull(gw.url, "sessions")
        assert (pulled["id"], pulled["status"]) == (session_id, "INVALID")

        # The driver plugs in after all: a session of its own, the INVALID one untouched.
        await _charge(cp, version, remote_start_id)
        [cdr] = await eventually(emsp.cdrs, "the CDR")
    assert cdr["session_id"] != session_id
    assert cdr.get("authorization_reference") is None
    sessions = emsp.sessions()
    assert set(sessions) == {session_id, cdr["session_id"]}
    assert sessions[session_id]["status"] == "INVALID"
    assert len(emsp.session_puts(session_id)) == 2
    assert not [p for m, p, _ in emsp.received if m == "PATCH" and p.endswith(session_id)]
    assert [s["status"] for s in emsp.session_puts(cdr["session_id"])] == ["ACTIVE", "COMPLETED"]
    assert sessions[cdr["session_id"]].get("authorization_reference") is None
    assert emsp.command_results("ORDER-1") == [{"result": "ACCEPTED"}]


async def test_pending_session_expires_after_a_restart(gateways: GatewayFactory, emsp: LifecycleEmsp) -> None:
    clock = FakeClock()
    gw = await _world(gateways, emsp, clock)
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await _boot(cp, "1.6")
        session_id, _ = await _start_session(gw, emsp, cp, "CP16", "ORDER-2")
    await gateways.stop(gw)
    # The window passes while the gateway is down: the restarted one finds it in storage.
    clock.advance(WINDOW + 1)
    await gateways.start(gw.settings, clock=clock)
    await eventually(lambda: len(emsp.session_puts(session_id)) == 2, "the INVALID session")
    assert [s["status"] for s in emsp.session_puts(session_id)] == ["PENDING", "INVALID"]


@pytest.mark.parametrize("first", ["expiry", "transaction"])
async def test_expiry_and_a_transaction_at_the_same_moment(
    gateways: GatewayFactory, emsp: LifecycleEmsp, first: str
) -> None:
    """The expiry and a 2.0.1 transaction echoing the remote start id both wait for the
    session's lock (held here); whichever queued first decides, and the other follows
    from what it stored: never an INVALID session that is charging, nor a transaction
    without a session."""
    clock = FakeClock()
    # The retry loop stays asleep: the expiry runs exactly when the test says.
    gw = await _world(gateways, emsp, clock, session_retry_interval=3600)
    sessions = _sessions(gw)
    async with connect(gw.ws_url, "CP201", "2.0.1") as cp:
        await _boot(cp, "2.0.1")
        session_id, remote_start_id = await _start_session(gw, emsp, cp, "CP201", "ORDER-3")
        clock.advance(WINDOW + 1)

        def waiting() -> int:
            # White-box: how many hold or wait for the session's lock (KeyedLocks).
            entry = sessions._locks._locks.get(session_id)
            return 0 if entry is None else entry[1]

        start = _event201("Started", 0, "2026-11-23T12:30:00Z", "1000", trigger="RemoteStart",
                          info={"remoteStartId": remote_start_id}, evse={"id": 1, "connectorId": 1},
                          id_token={"idToken": "DRIVER1", "type": "ISO14443"})
        async with sessions._locks.hold(session_id):
            if first == "expiry":
                expiry = asyncio.create_task(sessions.expire_pending())
                await eventually(lambda: waiting() == 2, "the expiry at the lock")
                started = asyncio.create_task(cp.call(start))
            else:
                started = asyncio.create_task(cp.call(start))
                await eventually(lambda: waiting() == 2, "the transaction at the lock")
                expiry = asyncio.create_task(sessions.expire_pending())
            await eventually(lambda: waiting() == 3, "both at the lock")
        expired = await expiry
        await started
        await cp.call(_event201("Ended", 1, "2026-11-23T12:50:00Z", "4000", info={"stoppedReason": "Local"}))
        [cdr] = await eventually(emsp.cdrs, "the CDR")
    states = emsp.sessions()
    if first == "expiry":
        assert expired == 1
        assert [s["status"] for s in emsp.session_puts(session_id)] == ["PENDING", "INVALID"]
        assert cdr["session_id"] != session_id
        # The transaction's own session, from its start (not only rebuilt at its end).
        assert [s["status"] for s in emsp.session_puts(cdr["session_id"])] == ["ACTIVE", "COMPLETED"]
        assert set(states) == {session_id, cdr["session_id"]}
    else:
        assert expired == 0
        assert [s["status"] for s in emsp.session_puts(session_id)] == ["PENDING", "ACTIVE", "COMPLETED"]
        assert cdr["session_id"] == session_id
        assert cdr["authorization_reference"] == "ORDER-3"
        assert set(states) == {session_id}
        # Decided: later checks leave it alone.
        assert await sessions.expire_pending() == 0
    assert not [s for s in states.values() if s["status"] == "INVALID" and s["id"] == cdr["session_id"]]


# ------------------------------------------------------ 2. authorization_reference


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_real_time_authorization_reference_reaches_session_and_cdr(
    gateways: GatewayFactory, emsp: LifecycleEmsp, version: str
) -> None:
    clock = FakeClock()
    gw = await _world(gateways, emsp, clock)
    emsp.authorize["ROAMER7"] = "ALLOWED"  # a token the gateway does not have: asked in real time
    cp_id = "CP16" if version == "1.6" else "CP201"
    async with connect(gw.ws_url, cp_id, version) as cp:
        await _boot(cp, version)
        if version == "1.6":
            start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="ROAMER7", meter_start=0, timestamp="2026-11-23T12:00:00Z"))
            assert start.id_tag_info["status"] == "Accepted"
            await cp.call(call16.MeterValues(connector_id=1, transaction_id=start.transaction_id, meter_value=_meter16("2026-11-23T12:10:00Z", "1500")))
            await cp.call(call16.StopTransaction(meter_stop=3000, timestamp="2026-11-23T12:20:00Z", transaction_id=start.transaction_id))
        else:
            started = await cp.call(_event201("Started", 0, "2026-11-23T12:00:00Z", "0", trigger="Authorized",
                                              evse={"id": 1, "connectorId": 1}, id_token={"idToken": "ROAMER7", "type": "ISO14443"}))
            assert started.id_token_info["status"] == "Accepted"
            await cp.call(_event201("Updated", 1, "2026-11-23T12:10:00Z", "1500"))
            await cp.call(_event201("Ended", 2, "2026-11-23T12:20:00Z", "3000", info={"stoppedReason": "EVDisconnected"}))
        [cdr] = await eventually(emsp.cdrs, "the CDR")
    # One authorization was asked, when the transaction started; its reference is the
    # session's and the CDR's (mod_sessions authorization_reference).
    assert emsp.references == ["RT-1"]
    puts = emsp.session_puts(cdr["session_id"])
    assert [(s["status"], s["authorization_reference"]) for s in puts] == [("ACTIVE", "RT-1"), ("COMPLETED", "RT-1")]
    assert puts[-1]["auth_method"] == "AUTH_REQUEST"
    assert cdr["authorization_reference"] == "RT-1"
    validate_against_openapi("cdrs", "CDR", cdr)
    assert [c["authorization_reference"] for c in await emsp.pull(gw.url, "cdrs")] == ["RT-1"]
    assert [s["authorization_reference"] for s in await emsp.pull(gw.url, "sessions")] == ["RT-1"]


async def test_reference_of_a_token_that_comes_after_the_start_201(
    gateways: GatewayFactory, emsp: LifecycleEmsp
) -> None:
    """2.0.1: the driver plugs in first (a transaction without a token), then presents
    the token: its real-time authorization's reference is the session's."""
    clock = FakeClock()
    gw = await _world(gateways, emsp, clock)
    emsp.authorize["ROAMER8"] = "ALLOWED"
    async with connect(gw.ws_url, "CP201", "2.0.1") as cp:
        await _boot(cp, "2.0.1")
        await cp.call(_event201("Started", 0, "2026-11-23T12:00:00Z", "0", trigger="CablePluggedIn", evse={"id": 1, "connectorId": 1}))
        updated = await cp.call(_event201("Updated", 1, "2026-11-23T12:01:00Z", "0", trigger="Authorized",
                                          id_token={"idToken": "ROAMER8", "type": "ISO14443"}))
        assert updated.id_token_info["status"] == "Accepted"
        await cp.call(_event201("Ended", 2, "2026-11-23T12:20:00Z", "3000", info={"stoppedReason": "EVDisconnected"}))
        [cdr] = await eventually(emsp.cdrs, "the CDR")
    assert emsp.references == ["RT-1"]
    assert [s["authorization_reference"] for s in emsp.session_puts(cdr["session_id"])] == ["RT-1", "RT-1"]
    assert cdr["authorization_reference"] == "RT-1"


async def test_reservation_reference_reaches_the_session_that_uses_it(
    gateways: GatewayFactory, emsp: LifecycleEmsp
) -> None:
    clock = FakeClock()
    gw = await _world(gateways, emsp, clock)
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await _boot(cp, "1.6")
        # The same driver without the reservation first: no reference.
        plain = await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=0, timestamp="2026-11-23T11:00:00Z"))
        await cp.call(call16.StopTransaction(meter_stop=500, timestamp="2026-11-23T11:10:00Z", transaction_id=plain.transaction_id))
        answer = await emsp.reserve_now(gw.url, "LOC1", "CP16-1", "DRIVER1", "BOOK-42", "BOOKING-9")
        assert answer["result"] == "ACCEPTED"
        [reserve] = await eventually(lambda: [kw for n, kw in cp.received if n == "ReserveNow"], "ReserveNow")
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=1000, timestamp="2026-11-23T12:00:00Z",
                                                      reservation_id=reserve["reservation_id"]))
        await cp.call(call16.StopTransaction(meter_stop=3000, timestamp="2026-11-23T12:20:00Z", transaction_id=start.transaction_id))
        cdrs = await eventually(lambda: len(emsp.cdrs()) == 2 and emsp.cdrs(), "both CDRs")
    [reserved] = emsp.cdrs_by_reference("BOOKING-9")
    assert Decimal(str(reserved["total_energy"])) == 2
    assert [c.get("authorization_reference") for c in cdrs if c["id"] != reserved["id"]] == [None]
    [session] = emsp.sessions_by_reference("BOOKING-9")
    assert (session["id"], session["status"]) == (reserved["session_id"], "COMPLETED")
    assert [s["authorization_reference"] for s in emsp.session_puts(session["id"])] == ["BOOKING-9", "BOOKING-9"]


# ------------------------------------------------- 3. PATCH of an unknown session


@pytest.mark.parametrize("unknown_answer", [(404, 2001), (200, 2003)])
async def test_session_patch_answered_unknown_becomes_a_put(
    gateways: GatewayFactory, emsp: LifecycleEmsp, unknown_answer: tuple[int, int]
) -> None:
    clock = FakeClock()
    emsp.strict_sessions, emsp.unknown_answer = True, unknown_answer
    gw = await _world(gateways, emsp, clock)
    async with connect(gw.ws_url, "CP16", "1.6") as cp:
        await _boot(cp, "1.6")
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER1", meter_start=1000, timestamp="2026-11-23T12:00:00Z"))
        [session_id] = await eventually(lambda: list(emsp.held), "the ACTIVE session")
        emsp.forget_sessions()  # e.g. restored from a backup: the session is gone there
        clock.advance(61)  # a PATCH is due (at most one a minute)
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=start.transaction_id, meter_value=_meter16("2026-11-23T12:01:00Z", "3000")))
        held = await eventually(lambda: emsp.held.get(session_id), "the session PUT in place of the PATCH")
        assert emsp.refused == [("PATCH", next(p for m, p, _ in emsp.received if m == "PUT" and "/sessions/" in p))]
        assert (held["status"], Decimal(str(held["kwh"]))) == ("ACTIVE", Decimal(2))
        validate_against_openapi("sessions", "Session", held)
        status, failed = await gw.admin("GET", "/outbox?status=failed")
        assert (status, failed) == (200, [])
        await cp.call(call16.StopTransaction(meter_stop=4000, timestamp="2026-11-23T12:20:00Z", transaction_id=start.transaction_id))
        await eventually(emsp.cdrs, "the CDR")
    assert emsp.held[session_id]["status"] == "COMPLETED"
