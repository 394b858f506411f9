"""Several real ``ocpi-gateway serve`` processes on one real Redis: any process reaches any
charger, and a process killed with SIGKILL loses nothing.

- A charger connected to A is commanded through B and C (admin API), with the answers a
  local call gives (the charger's answer; 504 when it does not answer in time; 409 only
  when it is connected nowhere), and every process shows the same live state.
- A charger that reconnects to B while its connection to A is still open is taken over:
  A closes the stale connection and records nothing; commands through A reach it at B.
- The eMSP's START_SESSION arrives at B for a charger held by A: the charger starts,
  the CommandResult reaches the eMSP; A is killed with SIGKILL mid-charge, the chargers
  reconnect to B and finish; every session and CDR reaches the eMSP exactly once, and
  the pushes A's outbox worker held are delivered by a survivor.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from ocpp.v16 import call as call16

from gateway.storage.redis_keys import RedisKeys
from tests.conftest import REDIS_URL, _redis_available, drop_redis_prefix, require_redis_or_skip
from tests.roaming.referencing_emsp import ReferencingEmsp
from tests.roaming.test_crash_sessions import (
    Charge,
    _after_restart,
    _before_crash,
    _check,
    _command,
    _connect,
    _delivered,
    _world,
)
from tests.sim import connect
from tests.test_leases_processes import LoggedGateway, cluster_env, until

pytestmark = pytest.mark.slow


async def admin(gw: LoggedGateway, method: str, path: str, body: object = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(
        method, f"{gw.url}/admin{path}", json=body, headers=gw.headers, ssl=gw.ssl_context
    ) as r:
        return r.status, await r.json() if r.content_type == "application/json" else None


class Cluster:
    def __init__(self, tmp_path: Path, prefix: str, env: dict[str, str]) -> None:
        self.prefix = prefix
        self.keys = RedisKeys(prefix)
        self.gateways = {
            name: LoggedGateway(tmp_path / f"data-{name}", env, tmp_path / f"{name}.log")
            for name in "ABC"
        }
        self.redis = aioredis.from_url(REDIS_URL)

    def __getitem__(self, name: str) -> LoggedGateway:
        return self.gateways[name]

    async def holder(self, lease: str) -> str | None:
        value = await self.redis.get(self.keys.lease(lease))
        if value is None:
            return None
        pid = int(value.decode().split(":")[1])  # host:pid:unique id
        return next((n for n, gw in self.gateways.items() if gw.proc and gw.pid == pid), None)

    async def owner(self, cp_id: str) -> str | None:
        value = await self.redis.hget(self.keys.owner(cp_id), "node")
        if value is None:
            return None
        pid = int(value.decode().split(":")[1])
        return next((n for n, gw in self.gateways.items() if gw.proc and gw.pid == pid), None)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    require_redis_or_skip(await _redis_available())
    prefix = f"test:{uuid.uuid4().hex}:"
    env = cluster_env(
        prefix,
        GATEWAY_OUTBOX_POLL_INTERVAL="0.2",
        GATEWAY_SESSION_RETRY_INTERVAL="0.2",
        GATEWAY_CALL_TIMEOUT="2",
        GATEWAY_AUTO_REGISTER="true",
    )
    c = Cluster(tmp_path, prefix, env)
    try:
        yield c
    finally:
        for gw in c.gateways.values():
            if gw.proc is not None and gw.proc.poll() is None:
                gw.kill()
        await c.redis.aclose()
        await drop_redis_prefix(prefix)


def ws(gw: LoggedGateway) -> str:
    return gw.url.replace("http", "ws")


async def test_a_charger_on_a_is_commanded_through_b_and_c(cluster: Cluster) -> None:
    a, b, c = cluster["A"], cluster["B"], cluster["C"]
    await asyncio.gather(a.start(), b.start(), c.start())
    async with connect(ws(a), "CP-1", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await cp.call(call16.Heartbeat())
        assert await cluster.owner("CP-1") == "A"
        for via in (a, b, c):
            status, answer = await admin(via, "POST", "/chargers/CP-1/commands/unlock", {"evse_id": 1})
            assert (status, answer["status"]) == (200, "Accepted"), answer
            assert answer["data"] == {"status": "Unlocked"}
        assert [name for name, _ in cp.received] == ["UnlockConnector"] * 3
        # What the charger answers is what every process answers.
        cp.unlock_status = "UnlockFailed"
        _, answer = await admin(c, "POST", "/chargers/CP-1/commands/unlock", {"evse_id": 1})
        assert answer["data"] == {"status": "UnlockFailed"}
        # The same live state from every process (connected, last heartbeat).
        views = [(await admin(gw, "GET", "/chargers/CP-1"))[1] for gw in (a, b, c)]
        assert {v["connected"] for v in views} == {True}

        async def same_heartbeat() -> bool:
            beats = [(await admin(gw, "GET", "/chargers/CP-1"))[1]["last_heartbeat"] for gw in (a, b, c)]
            return beats[0] is not None and len(set(beats)) == 1

        await until(same_heartbeat)  # written at the next renew (TTL / 3)
        listed = [(await admin(gw, "GET", "/chargers"))[1] for gw in (a, b, c)]
        assert {json.dumps(x, sort_keys=True) for x in listed} == {json.dumps(listed[0], sort_keys=True)}
    # Connected nowhere: 409 everywhere, and recorded offline.
    for via in (a, b, c):
        status, answer = await admin(via, "POST", "/chargers/CP-1/commands/unlock", {"evse_id": 1})
        assert status == 409, answer
    views = [(await admin(gw, "GET", "/chargers/CP-1"))[1] for gw in (a, b, c)]
    assert {v["connected"] for v in views} == {False}
    assert await cluster.owner("CP-1") is None


async def test_a_routed_call_times_out_as_a_local_one(cluster: Cluster) -> None:
    a, b = cluster["A"], cluster["B"]
    await asyncio.gather(a.start(), b.start())
    # A charger that never answers the central system's CALLs (a raw WebSocket).
    async with aiohttp.ClientSession() as s, s.ws_connect(f"{ws(a)}/ocpp/CP-MUTE", protocols=("ocpp1.6",)) as sock:
        await sock.send_str(json.dumps([2, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]))
        await sock.receive(timeout=5)

        async def owned() -> bool:
            return await cluster.owner("CP-MUTE") == "A"

        await until(owned)
        local = await admin(a, "POST", "/chargers/CP-MUTE/commands/reset", {})
        routed = await admin(b, "POST", "/chargers/CP-MUTE/commands/reset", {})
        assert local[0] == routed[0] == 504, (local, routed)


async def test_a_charger_that_reconnects_elsewhere_is_taken_over(cluster: Cluster) -> None:
    a, b = cluster["A"], cluster["B"]
    await asyncio.gather(a.start(), b.start())
    async with connect(ws(a), "CP-2", "1.6") as old:
        await old.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        assert await cluster.owner("CP-2") == "A"
        async with connect(ws(b), "CP-2", "1.6") as new:
            await new.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
            assert await cluster.owner("CP-2") == "B"

            async def closed_at_a() -> bool:
                return old._connection.ws.closed  # type: ignore[no-any-return]

            await until(closed_at_a)
            # Through A, the command reaches the charger at B.
            status, answer = await admin(a, "POST", "/chargers/CP-2/commands/reset", {})
            assert (status, answer["status"]) == (200, "Accepted")
            assert [n for n, _ in new.received] == ["Reset"]
            assert old.received == []
            _, view = await admin(a, "GET", "/chargers/CP-2")
            assert view["connected"] is True  # A's stale connection recorded nothing
    assert "CP-2 reconnected to another process" in a.log()


async def test_start_session_at_b_for_a_charger_on_a_then_a_killed(cluster: Cluster) -> None:
    a, b, c = cluster["A"], cluster["B"], cluster["C"]
    emsp = ReferencingEmsp()
    await emsp.start()
    try:
        # A first: it takes the outbox lease, so that the pushes pending when it is
        # killed are ones a survivor must take over.
        await a.start()

        async def a_holds_outbox() -> bool:
            return await cluster.holder("outbox") == "A"

        await until(a_holds_outbox)
        await _world(a, emsp)
        await asyncio.gather(b.start(), c.start())
        charges = [
            Charge(f"CP-{i}", f"TX-{i}", by_command=i < 2, reference=f"REF-{i}") for i in range(4)
        ]
        for charge in charges:
            body = {"location_id": "LOC1", "evses": [{"ocpp_id": 1, "evse_uid": charge.evse_uid}]}
            assert (await admin(a, "PUT", f"/chargers/{charge.cp_id}", body))[0] == 201
        await asyncio.gather(*(_connect(charge, ws(a)) for charge in charges))
        for charge in charges:
            assert await cluster.owner(charge.cp_id) == "A"
        # START_SESSION through B (and C) for chargers held by A.
        await _command(charges[0], b, emsp)
        await _command(charges[1], c, emsp)
        for charge in charges[:2]:

            async def result_posted(charge: Charge = charge) -> bool:
                return any(r.get("result") == "ACCEPTED" for r in emsp.command_results(charge.reference))

            await until(result_posted)
        # The eMSP is out while the charges run: their pushes wait in the outbox, which
        # A's worker holds when A is killed.
        emsp.outage = True
        await asyncio.gather(*(_before_crash(charge, random.Random(i)) for i, charge in enumerate(charges)))
        status, pending = await admin(b, "GET", "/outbox?status=pending")
        assert status == 200 and pending, "nothing pending: the takeover would prove nothing"
        before_kill = list(emsp.received)
        a.kill()
        emsp.outage = False
        # The chargers notice and reconnect to B; what A had not answered is sent again.
        await asyncio.gather(*(_after_restart(charge, ws(b)) for charge in charges))
        await _delivered(b, emsp, charges)
        for charge in charges:
            _check(emsp, charge)
        assert await cluster.holder("outbox") in ("B", "C")
        # Under normal running (before the kill) no push went twice.
        counted = Counter((m, p, json.dumps(body, sort_keys=True, default=str)) for m, p, body in before_kill)
        assert [k for k, n in counted.items() if n > 1] == []
    finally:
        await emsp.stop()


async def test_requests_and_removal_through_another_process(cluster: Cluster) -> None:
    a, b, c = cluster["A"], cluster["B"], cluster["C"]
    await asyncio.gather(a.start(), b.start(), c.start())
    body = {"evses": [{"ocpp_id": 1, "evse_uid": "CP-3-1"}]}
    assert (await admin(b, "PUT", "/chargers/CP-3", body))[0] == 201
    async with connect(ws(a), "CP-3", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        # A firmware request through C: kept by A (which gets its notifications), shown
        # the same by every process.
        status, answer = await admin(
            c, "POST", "/chargers/CP-3/commands/update-firmware",
            {"location": "https://fw.example.com/v2.bin", "retrieve_at": "2026-12-01T00:00:00Z"},
        )
        assert status == 200, answer
        await cp.call(call16.FirmwareStatusNotification(status="Downloading"))
        views = [(await admin(gw, "GET", "/chargers/CP-3"))[1] for gw in (a, b, c)]
        requests = [v["requests"] for v in views]
        assert requests[0] == requests[1] == requests[2]
        assert [(r["request_id"], r["status"]) for r in requests[0]] == [(answer["request_id"], "Downloading")]
        # Removed through B: its connection at A is closed.
        status, _ = await admin(b, "DELETE", "/chargers/CP-3")
        assert status == 204

        async def closed() -> bool:
            return cp._connection.ws.closed  # type: ignore[no-any-return]

        await until(closed)


async def test_a_charging_profile_set_through_another_process(cluster: Cluster) -> None:
    # Smart charging takes the same command path: a profile PUT through B reaches the
    # charger at A, and its composite schedule is asked through C.
    a, b, c = cluster["A"], cluster["B"], cluster["C"]
    await asyncio.gather(a.start(), b.start(), c.start())
    async with connect(ws(a), "CP-4", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        profile = {
            "evse_id": 1,
            "purpose": "TxDefaultProfile",
            "stack_level": 0,
            "kind": "Absolute",
            "schedule": {"unit": "A", "periods": [{"start_period": 0, "limit": "16"}]},
        }
        status, answer = await admin(b, "PUT", "/chargers/CP-4/charging-profiles/7", profile)
        assert status == 201, answer
        assert answer["charger"]["status"] == "Accepted", answer
        assert cp.limit(1) == 16
        status, answer = await admin(c, "GET", "/chargers/CP-4/composite-schedule?evse_id=1&duration=60&unit=A")
        assert status == 200, answer
        assert [p["limit"] for p in answer["schedule"]["periods"]] in (["16"], ["16.0"], [16])
