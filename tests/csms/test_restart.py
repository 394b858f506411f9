"""kill -9 mid-transaction, restart, finish the transaction: nothing accepted is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from tests.conftest import (
    ADMIN_TOKEN,
    REDIS_URL,
    SECRET_KEY,
    _redis_available,
    drop_redis_prefix,
    require_redis_or_skip,
)
from tests.sim import connect

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """``ocpi-gateway serve`` as a real child process."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.data_dir = data_dir
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        # Popen only forks; the waiting below is asynchronous.
        self.proc = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # A deadline, not a count of tries: a loaded CI machine (two test workers on two
        # cores) can take well over ten seconds to import and start a gateway.
        deadline = asyncio.get_running_loop().time() + 45
        async with aiohttp.ClientSession() as session:
            while asyncio.get_running_loop().time() < deadline:
                try:
                    async with session.get(f"{self.url}/admin/chargers", headers=self.headers) as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                assert self.proc.poll() is None, "gateway exited during start-up"
                await asyncio.sleep(0.05)
        raise AssertionError("gateway did not start")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    async def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session, session.request(
            method, f"{self.url}/admin{path}", json=body, headers=self.headers
        ) as resp:
            return resp.status, await resp.json() if resp.content_type == "application/json" else None


@pytest.fixture(params=["sqlite", "redis"])
async def process(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GatewayProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= {"GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, "GATEWAY_LOG_LEVEL": "WARNING"}
    prefix = f"test:{uuid.uuid4().hex}:"
    if request.param == "redis":
        require_redis_or_skip(await _redis_available())
        env |= {"GATEWAY_REDIS_URL": REDIS_URL, "GATEWAY_REDIS_PREFIX": prefix, "GATEWAY_SECRET_KEY": SECRET_KEY}
    gw = GatewayProcess(tmp_path / "data", env)
    try:
        yield gw
    finally:
        if gw.proc is not None and gw.proc.poll() is None:
            gw.kill()
        if request.param == "redis":
            await drop_redis_prefix(prefix)


async def _setup(gw: GatewayProcess, cp_id: str) -> None:
    status, _ = await gw.admin("PUT", f"/chargers/{cp_id}", {"evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]})
    assert status == 201
    status, _ = await gw.admin("PUT", "/tokens/TAG-R", {})
    assert status == 201


def _mv(ts: str, wh: str) -> list[dict[str, Any]]:
    return [{"timestamp": ts, "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}]}]


async def test_sigkill_mid_transaction_16(process: GatewayProcess) -> None:
    gw = process
    await gw.start()
    await _setup(gw, "CP-K16")
    async with connect(gw.url.replace("http", "ws"), "CP-K16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        start = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="TAG-R", meter_start=100, timestamp="2026-11-23T08:00:00Z")
        )
        tx_id = start.transaction_id
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=_mv("2026-11-23T08:10:00Z", "2100")))
        gw.kill()  # right after the answer: everything answered must be on disk
    await gw.start()
    _, chargers = await gw.admin("GET", "/chargers")
    assert chargers[0]["connected"] is False  # the previous process's connection is gone
    async with connect(gw.url.replace("http", "ws"), "CP-K16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        await cp.call(
            call16.StopTransaction(
                meter_stop=4100, timestamp="2026-11-23T08:20:00Z", transaction_id=tx_id,
                transaction_data=_mv("2026-11-23T08:20:00Z", "4100"),
            )
        )
        # The transaction-id sequence survived the restart: a new transaction gets a new id.
        new = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="TAG-R", meter_start=4100, timestamp="2026-11-23T09:00:00Z")
        )
        assert new.transaction_id != tx_id
    _, txs = await gw.admin("GET", "/transactions?charger_id=CP-K16")
    done = [t for t in txs if t["ocpp_transaction_id"] == str(tx_id)]
    assert len(done) == 1
    _, tx = await gw.admin("GET", f"/transactions/{done[0]['id']}")
    assert tx["status"] == "Completed"
    assert tx["recovered"] is False
    assert (Decimal(tx["meter_start_wh"]), Decimal(tx["meter_stop_wh"])) == (100, 4100)
    assert tx["started_at"] == "2026-11-23T08:00:00Z"
    assert tx["stopped_at"] == "2026-11-23T08:20:00Z"
    assert sorted(Decimal(r["value"]) for r in tx["meter_readings"]) == [2100, 4100]
    assert gw.terminate() == 0


async def test_sigkill_mid_transaction_201(process: GatewayProcess) -> None:
    gw = process
    await gw.start()
    await _setup(gw, "CP-K201")
    ws_url = gw.url.replace("http", "ws")

    def event(kind: str, seq: int, ts: str, wh: str, **extra: Any) -> Any:
        return call201.TransactionEvent(
            event_type=kind, timestamp=ts, trigger_reason="MeterValuePeriodic", seq_no=seq,
            transaction_info={"transactionId": "TX-K"} | extra.pop("info", {}),
            meter_value=[{"timestamp": ts, "sampledValue": [{"value": float(wh)}]}],
            **extra,
        )

    async with connect(ws_url, "CP-K201", "2.0.1") as cp:
        await cp.call(call201.BootNotification(charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp"))
        await cp.call(event("Started", 0, "2026-11-23T08:00:00Z", "500", evse={"id": 1, "connectorId": 1},
                            id_token={"idToken": "TAG-R", "type": "ISO14443"}))
        await cp.call(event("Updated", 1, "2026-11-23T08:10:00Z", "1500"))
        gw.kill()
    await gw.start()
    async with connect(ws_url, "CP-K201", "2.0.1") as cp:
        await cp.call(call201.BootNotification(charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp"))
        await cp.call(event("Ended", 2, "2026-11-23T08:30:00Z", "3500", info={"stoppedReason": "EVDisconnected"}))
    _, txs = await gw.admin("GET", "/transactions?charger_id=CP-K201")
    assert len(txs) == 1
    _, tx = await gw.admin("GET", f"/transactions/{txs[0]['id']}")
    assert tx["status"] == "Completed"
    assert (Decimal(tx["meter_start_wh"]), Decimal(tx["meter_stop_wh"])) == (500, 3500)
    assert tx["stop_reason"] == "EVDisconnected"
    assert tx["id_token"] == "TAG-R"
    assert sorted(Decimal(r["value"]) for r in tx["meter_readings"]) == [500, 1500, 3500]


async def test_sigterm_sends_close_frames(process: GatewayProcess) -> None:
    gw = process
    await gw.start()
    await _setup(gw, "CP-TERM")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gw.url}/ocpp/CP-TERM", protocols=("ocpp1.6",))
        await ws.send_str('[2,"1","Heartbeat",{}]')
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGTERM)
        msg = await ws.receive(timeout=10)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1001
        await ws.close()
    assert gw.proc.wait(timeout=20) == 0
