"""Storage hiccups end to end: real chargers, a real eMSP, the gateway on a real Redis
whose connection is killed under load, or which goes away for longer than the bound.

The shared Redis server is never disturbed: the kill test kills only the gateway's
own connection (``CLIENT KILL ID`` of the connection named after the test's unique
key prefix), the outage test puts a TCP proxy between the gateway and Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from ocpp.exceptions import InternalError
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from gateway.domain.models import TransactionStatus
from gateway.storage.base import OutboxStatus
from gateway.storage.redis import default_client_name
from tests.conftest import (
    REDIS_URL,
    Gateway,
    GatewayFactory,
    _redis_available,
    backend_settings,
    require_redis_or_skip,
)
from tests.roaming.emsp import EmspPlatform, token_header
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect
from tests.storage.redis_proxy import RedisProxy

pytestmark = pytest.mark.redis

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
CHARGERS = {"CP-A": "1.6", "CP-B": "1.6", "CP-C": "2.0.1", "CP-D": "2.0.1"}
ROUNDS = 3  # transactions per charger
SAMPLES = 4  # meter readings per transaction


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    require_redis_or_skip(await _redis_available())
    factory = GatewayFactory(tmp_path, "redis")
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


async def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.02)


async def roaming_setup(gateway: Gateway, emsp: EmspPlatform, chargers: list[str]) -> None:
    """The eMSP registered (we register at it), its drivers' tokens pushed, the chargers
    at location LOC1 with a tariff: every transaction becomes a session and a CDR."""
    _, partner = await gateway.admin("POST", "/partners", {"name": "eMSP"})
    status, _ = await gateway.admin(
        "POST",
        f"/partners/{partner['id']}/register",
        {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a},
    )
    assert status == 200
    assert emsp.cpo_token is not None
    async with aiohttp.ClientSession() as http:
        for cp_id in chargers:
            uid = f"DRIVER-{cp_id}"
            async with http.put(
                f"{gateway.url}/ocpi/2.2.1/tokens/NL/EMS/{uid}",
                json=emsp.token(uid),
                headers=token_header(emsp.cpo_token),
            ) as resp:
                assert resp.status in (200, 201), await resp.text()
    assert (await gateway.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gateway.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    for cp_id in chargers:
        status, body = await gateway.admin(
            "PUT",
            f"/chargers/{cp_id}",
            {"location_id": "LOC1", "evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]},
        )
        assert status == 201, body


def evse_patches(emsp: EmspPlatform, cp_id: str, status: str) -> list[Any]:
    return [
        r
        for r in emsp.pushes("locations", "PATCH")
        if r[1].endswith(f"/LOC1/{cp_id}-1") and (r[2] or {}).get("status") == status
    ]


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def boot(cp: Any, version: str) -> None:
    if version == "1.6":
        await cp.call(
            call16.BootNotification(charge_point_vendor="V", charge_point_model="M"),
            suppress=False,
        )
    else:
        await cp.call(
            call201.BootNotification(
                charging_station={"model": "M", "vendorName": "V"}, reason="PowerUp"
            ),
            suppress=False,
        )


async def status_notification(cp: Any, version: str, status: str, at: float) -> None:
    if version == "1.6":
        await cp.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status=status),
            suppress=False,
        )
    else:
        await cp.call(
            call201.StatusNotification(
                timestamp=ts(at), connector_status=status, evse_id=1, connector_id=1
            ),
            suppress=False,
        )


async def one_transaction(cp: Any, version: str, cp_id: str, n: int) -> list[Decimal]:
    """Start, SAMPLES meter values, a Heartbeat, stop; every CALL must get its result
    (``suppress=False``: a CALLERROR raises). Returns the energy values sent."""
    base = n * 3600
    token = f"DRIVER-{cp_id}"
    values = [Decimal(10_000 * (n + 1) + 100 * i) for i in range(1, SAMPLES + 1)]
    if version == "1.6":
        start = await cp.call(
            call16.StartTransaction(
                connector_id=1, id_tag=token, meter_start=10_000 * (n + 1), timestamp=ts(base)
            ),
            suppress=False,
        )
        assert start.id_tag_info["status"] == "Accepted"
        for i, value in enumerate(values, 1):
            await cp.call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=start.transaction_id,
                    meter_value=[
                        {
                            "timestamp": ts(base + 60 * i),
                            "sampledValue": [
                                {"value": str(value), "measurand": "Energy.Active.Import.Register"}
                            ],
                        }
                    ],
                ),
                suppress=False,
            )
        await cp.call(call16.Heartbeat(), suppress=False)
        await cp.call(
            call16.StopTransaction(
                meter_stop=int(values[-1]),
                timestamp=ts(base + 60 * (SAMPLES + 1)),
                transaction_id=start.transaction_id,
            ),
            suppress=False,
        )
        return values
    tx_id = f"{cp_id}-tx{n}"
    started = await cp.call(
        call201.TransactionEvent(
            event_type="Started",
            timestamp=ts(base),
            trigger_reason="Authorized",
            seq_no=0,
            transaction_info={"transactionId": tx_id, "chargingState": "Charging"},
            id_token={"idToken": token, "type": "ISO14443"},
            evse={"id": 1, "connectorId": 1},
        ),
        suppress=False,
    )
    assert started.id_token_info["status"] == "Accepted"
    for i, value in enumerate(values, 1):
        await cp.call(
            call201.TransactionEvent(
                event_type="Updated",
                timestamp=ts(base + 60 * i),
                trigger_reason="MeterValuePeriodic",
                seq_no=i,
                transaction_info={"transactionId": tx_id},
                meter_value=[
                    {
                        "timestamp": ts(base + 60 * i),
                        "sampledValue": [
                            {"value": int(value), "measurand": "Energy.Active.Import.Register"}
                        ],
                    }
                ],
            ),
            suppress=False,
        )
    await cp.call(call201.Heartbeat(), suppress=False)
    await cp.call(
        call201.TransactionEvent(
            event_type="Ended",
            timestamp=ts(base + 60 * (SAMPLES + 1)),
            trigger_reason="StopAuthorized",
            seq_no=SAMPLES + 1,
            transaction_info={"transactionId": tx_id, "stoppedReason": "Local"},
        ),
        suppress=False,
    )
    return values


async def gateway_connections(client: aioredis.Redis, name: str) -> list[str]:
    """The gateway's command connection (its pub/sub subscription, flag P, is another)."""
    return [
        c["id"]
        for c in await client.client_list()
        if c.get("name") == name and "P" not in c.get("flags", "")
    ]


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    with_traceback = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info]
    assert with_traceback == []


async def test_killing_the_gateways_redis_connection_under_load_loses_nothing(
    gateways: GatewayFactory,
    emsp: EmspPlatform,
    redis_client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    gateway = await gateways.start(outbox_poll_interval=0.2)
    name = default_client_name(gateway.settings.redis_prefix)
    db = gateway.store.backend.db
    await roaming_setup(gateway, emsp, list(CHARGERS))

    async with contextlib.AsyncExitStack() as stack:
        cps = {
            cp_id: await stack.enter_async_context(connect(gateway.ws_url, cp_id, version))
            for cp_id, version in CHARGERS.items()
        }
        for cp_id, version in CHARGERS.items():
            await boot(cps[cp_id], version)
            await status_notification(cps[cp_id], version, "Available", 0)
        # Pushed before the first kill.
        for cp_id in CHARGERS:
            await until(lambda cp_id=cp_id: evse_patches(emsp, cp_id, "AVAILABLE"))

        sent: dict[str, list[list[Decimal]]] = {cp_id: [] for cp_id in CHARGERS}

        async def charger_load(cp_id: str) -> None:
            version = CHARGERS[cp_id]
            for n in range(ROUNDS):
                sent[cp_id].append(await one_transaction(cps[cp_id], version, cp_id, n))

        load = asyncio.gather(*(charger_load(cp_id) for cp_id in CHARGERS))
        kills = 0
        try:
            while not load.done():
                ids = await gateway_connections(redis_client, name)
                assert len(ids) <= 1, ids  # one connection, or none while reconnecting
                if ids:
                    opened = db.stats.connections
                    kills += await redis_client.client_kill_filter(_id=ids[0])
                    # Until the gateway connected again (or the load is over).
                    await until(lambda opened=opened: db.stats.connections > opened or load.done())
                await asyncio.sleep(0.01)  # pacing: let a few batches through
        finally:
            await asyncio.wait_for(load, timeout=60)  # raises if any CALL got a CALLERROR
        assert kills >= 3, kills
        assert db.stats.connections_lost >= kills
        assert db.stats.resent > 0  # commands in flight were lost, and sent again

        # Nothing accepted is lost, nothing stored twice.
        for cp_id in CHARGERS:
            txs = sorted(
                await gateway.store.transactions.list(charger_id=cp_id), key=lambda t: t.started_at
            )
            assert [tx.status for tx in txs] == [TransactionStatus.COMPLETED] * ROUNDS
            for tx, values in zip(txs, sent[cp_id], strict=True):
                readings = await gateway.store.transactions.readings(tx.id)
                assert [r.value for r in readings] == values, (cp_id, tx.ocpp_id)

        # A push made after the kills is delivered too.
        await status_notification(cps["CP-C"], "2.0.1", "Faulted", 99_999)
        await until(lambda: evse_patches(emsp, "CP-C", "OUTOFORDER"))

    # The outbox delivered everything: one CDR per transaction, nothing pending or failed.
    await until(lambda: len(emsp.pushes("cdrs", "POST")) == ROUNDS * len(CHARGERS))
    pending = await gateway.store.outbox.list(status=OutboxStatus.PENDING)
    failed = await gateway.store.outbox.list(status=OutboxStatus.FAILED)
    assert (pending, failed) == ([], [])
    no_tracebacks(caplog)


async def test_an_outage_longer_than_the_bound_is_internal_error_then_recovers(
    gateways: GatewayFactory,
    emsp: EmspPlatform,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    proxy = RedisProxy(REDIS_URL)
    await proxy.start()
    gateway: Gateway | None = None
    try:
        settings = backend_settings(
            "redis",
            tmp_path,
            redis_url=proxy.url,
            storage_retry_seconds=0.5,
            outbox_poll_interval=0.2,
        )
        gateway = await gateways.start(settings)
        await roaming_setup(gateway, emsp, ["CP-A"])
        async with connect(gateway.ws_url, "CP-A", "1.6") as cp:
            await boot(cp, "1.6")
            await status_notification(cp, "1.6", "Available", 0)
            await until(lambda: evse_patches(emsp, "CP-A", "AVAILABLE"))  # before

            proxy.cut()
            with pytest.raises(InternalError):
                await status_notification(cp, "1.6", "Preparing", 1)
            # The outbox worker met the outage too: a warning, no traceback.
            await until(
                lambda: any(
                    "outbox: taking the due items failed" in r.getMessage() for r in caplog.records
                )
            )
            assert not cp._connection.ws.closed  # the connection stays open

            proxy.restore()
            await status_notification(cp, "1.6", "Charging", 2)  # on the same connection
            await until(lambda: evse_patches(emsp, "CP-A", "CHARGING"))  # after
            start = await cp.call(
                call16.StartTransaction(
                    connector_id=1, id_tag="DRIVER-CP-A", meter_start=0, timestamp=ts(3)
                ),
                suppress=False,
            )
            assert start.id_tag_info["status"] == "Accepted"
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("StatusNotification" in m and "not handled" in m for m in warnings), warnings
        no_tracebacks(caplog)
    finally:
        if gateway is not None:  # first, while its Redis is still there for its shutdown
            await gateways.stop(gateway)
        await proxy.close()


async def test_a_charger_leaving_during_an_outage_leaves_no_traceback(
    gateways: GatewayFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    proxy = RedisProxy(REDIS_URL)
    await proxy.start()
    gateway: Gateway | None = None
    try:
        settings = backend_settings("redis", tmp_path, redis_url=proxy.url, storage_retry_seconds=0.3)
        gateway = await gateways.start(settings)
        status, answer = await gateway.admin("PUT", "/chargers/CP-GONE", {"evses": [{"ocpp_id": 1, "evse_uid": "G1"}]})
        assert status == 201, answer
        async with connect(gateway.ws_url, "CP-GONE", "1.6") as cp:
            await boot(cp, "1.6")
            proxy.cut()
        # The socket closed while storage was out: the offline write fails, one warning.
        await until(lambda: gateway is not None and gateway.csms.connection("CP-GONE") is None)
        await until(lambda: any("offline not recorded" in r.getMessage() for r in caplog.records))
        proxy.restore()
        async with connect(gateway.ws_url, "CP-GONE", "1.6") as cp:
            await boot(cp, "1.6")
            state = await gateway.store.charger_states.get("CP-GONE")
            assert state is not None and state.connected
        no_tracebacks(caplog)
    finally:
        if gateway is not None:
            await gateways.stop(gateway)
        await proxy.close()
