"""The central system's side of charger ownership (gateway.cluster.ownership), in one
process on both backends; several real processes: tests/test_cluster_processes.py.

Another process is played by writing its records into the same store (what a second
process's claim writes), which is all this process can see of it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
from ocpp.v16 import call as call16

from gateway.cluster.node import ClusterNode
from gateway.cluster.ownership import RENEW_CHUNK, ChargerRegistry
from gateway.domain.clock import SystemClock
from gateway.keys import CLUSTER
from gateway.storage.base import StorageUnavailable
from gateway.storage.local_cluster import LocalMessageStore, LocalOwnershipStore
from tests.conftest import Gateway
from tests.loop_turns import turns_during
from tests.sim import connect

OTHER = "elsewhere:1:other-process"
SINCE = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
async def _chargers(gateway: Gateway) -> None:
    for cp_id in ("CP-O1", "CP-O2", "CP-O3", "CP-O4"):
        status, _ = await gateway.admin("PUT", f"/chargers/{cp_id}", {"evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]})
        assert status == 201


async def _boot(cp: Any) -> None:
    await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))


async def test_a_charger_is_claimed_renewed_with_its_heartbeat_and_released(gateway: Gateway) -> None:
    node = gateway.app[CLUSTER].id
    registry = gateway.csms.ownership
    async with connect(gateway.ws_url, "CP-O1", "1.6") as cp:
        await _boot(cp)
        [owner] = await gateway.store.owners.owners(["CP-O1"])
        assert owner is not None and owner.node == node
        await cp.call(call16.Heartbeat())
        await registry.renew()
        [owner] = await gateway.store.owners.owners(["CP-O1"])
        assert owner.last_heartbeat == gateway.csms.heartbeat_of("CP-O1")
    for _ in range(200):
        if gateway.csms.connection("CP-O1") is None:
            break
        await asyncio.sleep(0.01)
    assert await gateway.store.owners.owners(["CP-O1"]) == [None]
    state = await gateway.store.charger_states.get("CP-O1")
    assert state is not None and state.connected is False


async def test_a_charger_taken_by_another_process_is_closed_here_without_a_record(gateway: Gateway) -> None:
    registry = gateway.csms.ownership
    async with connect(gateway.ws_url, "CP-O2", "1.6") as cp:
        await _boot(cp)
        # Another process claims it (the charger connected there) and its message is
        # lost: this process finds out at its renew.
        assert await gateway.store.owners.claim("CP-O2", OTHER, SINCE, 60.0) == gateway.app[CLUSTER].id
        await registry.renew()
        assert gateway.csms.connection("CP-O2") is None
        for _ in range(200):
            if cp._connection.ws.closed:
                break
            await asyncio.sleep(0.01)
        assert cp._connection.ws.closed
    [owner] = await gateway.store.owners.owners(["CP-O2"])
    assert owner is not None and owner.node == OTHER  # untouched
    state = await gateway.store.charger_states.get("CP-O2")
    assert state is not None and state.connected is True  # the holder's to record


async def test_an_expired_record_of_an_open_connection_is_claimed_again(gateway: Gateway) -> None:
    node = gateway.app[CLUSTER].id
    registry = gateway.csms.ownership
    async with connect(gateway.ws_url, "CP-O3", "1.6") as cp:
        await _boot(cp)
        # As if this process had been cut from the store for a whole TTL.
        assert await gateway.store.owners.release("CP-O3", node)
        await registry.renew()
        assert gateway.csms.connection("CP-O3") is not None
        [owner] = await gateway.store.owners.owners(["CP-O3"])
        assert owner is not None and owner.node == node
        answer = await cp.call(call16.Heartbeat())  # the connection still works
        assert answer.current_time


async def test_a_connect_the_store_cannot_record_leaves_nothing_behind(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_put = gateway.store.charger_states.put

    async def out(*args: Any, **kwargs: Any) -> None:
        raise StorageUnavailable("the store is out")

    monkeypatch.setattr(gateway.store.charger_states, "put", out)
    async with aiohttp.ClientSession() as s, s.ws_connect(f"{gateway.ws_url}/ocpp/CP-O4", protocols=("ocpp1.6",)) as ws:
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert gateway.csms.connection("CP-O4") is None
    assert await gateway.store.owners.owners(["CP-O4"]) == [None]  # not held: nothing routes here
    monkeypatch.setattr(gateway.store.charger_states, "put", real_put)
    async with connect(gateway.ws_url, "CP-O4", "1.6") as cp:  # and it connects fine later
        await _boot(cp)
        assert gateway.csms.connection("CP-O4") is not None


class _Fleet:
    """The central system's side a renewal reads: the connections and their heartbeats."""

    def __init__(self, ids: list[str], beat: datetime) -> None:
        self._ids, self.beat = ids, beat

    def connections(self) -> list[Any]:
        return [SimpleNamespace(charger_id=cid) for cid in self._ids]

    def heartbeat_of(self, charger_id: str) -> datetime:
        return self.beat

    def connection(self, charger_id: str) -> Any:
        return SimpleNamespace(charger_id=charger_id) if charger_id in self._ids else None


async def test_a_renewal_of_thousands_of_chargers_lets_the_chargers_answers_through() -> None:
    # One renewal of 10,000 records held the event loop for about 20 ms: it goes in
    # chunks, the loop's other work between them, and renews every record all the same.
    async def check() -> None:
        return None

    owners = LocalOwnershipStore(check)
    registry = ChargerRegistry(
        owners, ClusterNode(LocalMessageStore(check), "node-a"), SystemClock(), ttl=30.0
    )
    ids = [f"CP-{i}" for i in range(2 * RENEW_CHUNK + 1)]
    fleet = _Fleet(ids, datetime(2026, 12, 5, 10, 0, tzinfo=UTC))
    registry.attach(cast(Any, fleet))
    for charger_id in ids:
        await registry.claim(charger_id)
    _, turns = await turns_during(registry.renew())
    assert turns >= 2  # three chunks: the other task ran between them
    found = await owners.owners(ids)
    assert all(o is not None and o.last_heartbeat == fleet.beat for o in found)
