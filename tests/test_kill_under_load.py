"""``kill -9`` under load loses nothing accepted (the README's durability promise, kept
through issue 15's group-commit window and point reads).

A real ``ocpi-gateway serve`` on the embedded SQLite store takes 1.6 and 2.0.1 chargers
charging as fast as they can (start, meter values, stop, again) over real WebSockets; it
is killed with SIGKILL while they send. Every transaction, meter reading and stop the
gateway answered before it died must be in the store afterwards: an answer is the
gateway's promise that the message is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from gateway.domain.models import TransactionStatus
from gateway.storage.sqlite import open_sqlite_store
from tests.conftest import ADMIN_TOKEN
from tests.sim import boot, connect

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
T0 = "2026-12-03T10:00:00Z"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Answered:
    """What the gateway answered one charger before it died, by OCPP transaction id."""

    started: set[str] = field(default_factory=set)
    readings: dict[str, int] = field(default_factory=dict)  # meter values answered
    last_wh: dict[str, int] = field(default_factory=dict)  # the last energy register answered
    stopped: set[str] = field(default_factory=set)

    def total(self) -> int:
        return len(self.started) + sum(self.readings.values()) + len(self.stopped)


def _sample16(wh: int) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": T0,
            "sampledValue": [{"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}],
        }
    ]


def _sample201(wh: int, context: str) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": T0,
            "sampledValue": [
                {
                    "value": wh,
                    "context": context,
                    "measurand": "Energy.Active.Import.Register",
                    "unitOfMeasure": {"unit": "Wh"},
                }
            ],
        }
    ]


async def _charge16(cp: Any, answered: Answered) -> None:
    wh = 0
    while True:
        start = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=wh, timestamp=T0)
        )
        tx = str(start.transaction_id)
        answered.started.add(tx)
        for _ in range(5):
            wh += 100
            await cp.call(
                call16.MeterValues(connector_id=1, transaction_id=int(tx), meter_value=_sample16(wh))
            )
            answered.readings[tx] = answered.readings.get(tx, 0) + 1
            answered.last_wh[tx] = wh
        await cp.call(
            call16.StopTransaction(meter_stop=wh, timestamp=T0, transaction_id=int(tx), id_tag="TAG-OK")
        )
        answered.stopped.add(tx)


async def _charge201(cp: Any, answered: Answered, prefix: str) -> None:
    wh = 0
    for n in itertools.count():
        tx = f"{prefix}-{n}"
        await cp.call(
            call201.TransactionEvent(
                event_type="Started", timestamp=T0, trigger_reason="Authorized", seq_no=0,
                transaction_info={"transactionId": tx, "chargingState": "Charging"},
                id_token={"idToken": "TAG-OK", "type": "ISO14443"},
                evse={"id": 1, "connectorId": 1},
                meter_value=_sample201(wh, "Transaction.Begin"),
            )
        )  # fmt: skip
        answered.started.add(tx)
        for seq in range(1, 6):
            wh += 100
            await cp.call(
                call201.TransactionEvent(
                    event_type="Updated", timestamp=T0, trigger_reason="MeterValuePeriodic",
                    seq_no=seq, transaction_info={"transactionId": tx},
                    meter_value=_sample201(wh, "Sample.Periodic"),
                )
            )  # fmt: skip
            answered.readings[tx] = answered.readings.get(tx, 0) + 1
            answered.last_wh[tx] = wh
        await cp.call(
            call201.TransactionEvent(
                event_type="Ended", timestamp=T0, trigger_reason="StopAuthorized", seq_no=6,
                transaction_info={"transactionId": tx, "stoppedReason": "Local"},
                meter_value=_sample201(wh, "Transaction.End"),
            )
        )  # fmt: skip
        answered.stopped.add(tx)


async def _charger(url: str, cp_id: str, version: str, answered: Answered, ready: asyncio.Event) -> None:
    """Charges until the gateway dies (the connection's end ends it)."""
    with contextlib.suppress(Exception):
        async with connect(url, cp_id, version) as cp:
            await boot(cp, version)
            ready.set()
            if version == "1.6":
                await _charge16(cp, answered)
            else:
                await _charge201(cp, answered, cp_id)


async def _admin(port: int, method: str, path: str, body: Any = None) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"http://127.0.0.1:{port}/admin{path}", json=body, headers=HEADERS) as resp,
    ):
        return resp.status


@pytest.mark.slow
async def test_kill_9_under_load_loses_nothing_answered(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= {"GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, "GATEWAY_LOG_LEVEL": "WARNING"}
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--data-dir", str(data_dir),
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    chargers = [(f"CP16-{i}", "1.6") for i in range(6)] + [(f"CP201-{i}", "2.0.1") for i in range(6)]
    answered = {cp_id: Answered() for cp_id, _ in chargers}
    tasks: list[asyncio.Task[None]] = []
    try:
        async with asyncio.timeout(60):
            while True:
                assert proc.returncode is None, log.read_text()
                with contextlib.suppress(aiohttp.ClientError):
                    if await _admin(port, "GET", "/chargers") == 200:
                        break
                await asyncio.sleep(0.05)
        assert await _admin(port, "PUT", "/tokens/TAG-OK", {"valid": True}) in (200, 201)
        for cp_id, _ in chargers:
            body = {"evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]}
            assert await _admin(port, "PUT", f"/chargers/{cp_id}", body) == 201
        url = f"ws://127.0.0.1:{port}"
        ready = [asyncio.Event() for _ in chargers]
        tasks = [
            asyncio.create_task(_charger(url, cp_id, version, answered[cp_id], ready[n]))
            for n, (cp_id, version) in enumerate(chargers)
        ]
        async with asyncio.timeout(30):
            await asyncio.gather(*(event.wait() for event in ready))
            # Under load: several complete transactions per charger and some in flight.
            while min(len(a.stopped) for a in answered.values()) < 4:
                await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    # Snapshot what was answered (the chargers have stopped).
    assert sum(a.total() for a in answered.values()) > 300, "too little load to prove anything"

    store = await open_sqlite_store(data_dir / "gateway.sqlite3")
    try:
        missing: list[str] = []
        for cp_id, got in answered.items():
            for ocpp_id in got.started:
                tx = await store.transactions.find(cp_id, ocpp_id)
                if tx is None:
                    missing.append(f"{cp_id} {ocpp_id}: started, answered, not stored")
                    continue
                energy = [
                    r.value
                    for r in await store.transactions.readings(tx.id)
                    if r.measurand == "Energy.Active.Import.Register" and r.context != "Transaction.End"
                ]
                if ocpp_id in got.last_wh and Decimal(got.last_wh[ocpp_id]) not in energy:
                    missing.append(f"{cp_id} {ocpp_id}: reading {got.last_wh[ocpp_id]} Wh answered, not stored")
                if ocpp_id in got.stopped and tx.status is not TransactionStatus.COMPLETED:
                    missing.append(f"{cp_id} {ocpp_id}: stop answered, stored {tx.status}")
        assert missing == []
    finally:
        await store.close()
