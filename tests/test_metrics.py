"""GET /metrics on the real app (both backends): simulated chargers, a real eMSP, the
scrape parsed with prometheus_client's own text parser; the token; the label sets stay
bounded; two real processes on one Redis serve the cluster-wide gauges once."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (
    Gateway,
    GatewayFactory,
    _redis_available,
    drop_redis_prefix,
    require_redis_or_skip,
)
from tests.roaming.emsp import EmspPlatform
from tests.roaming.test_e2e_roaming import _setup, eventually
from tests.sim import connect
from tests.test_leases_processes import LoggedGateway, cluster_env, until

METRICS_TOKEN = "metrics-token-" + "x" * 16

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.get(f"{url}/metrics", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = await resp.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over the samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def _send_raw(gw: Gateway, charger_id: str, frames: list[str]) -> list[str]:
    answers = []
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(f"{gw.ws_url}/ocpp/{charger_id}", protocols=("ocpp1.6",)) as ws,
    ):
        for frame in frames:
            await ws.send_str(frame)
            answers.append((await ws.receive(timeout=5)).data)
    return answers


async def test_ocpp_messages_errors_round_trips_transactions_and_energy(
    gateway: Gateway,
) -> None:
    await gateway.admin("PUT", "/chargers/CP-M16", {})
    await gateway.admin("PUT", "/chargers/CP-RAW", {})
    async with connect(gateway.ws_url, "CP-M16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await cp.call(call16.Heartbeat())
        await cp.call(call16.Heartbeat())
        # A command of the operator: one round trip of the gateway's own CALLs.
        status, _ = await gateway.admin("POST", "/chargers/CP-M16/commands/reset", {"type": "soft"})
        assert status == 200
        start = await cp.call(
            call16.StartTransaction(
                connector_id=1, id_tag="ANY", meter_start=1000, timestamp="2026-11-23T10:00:00Z"
            )
        )
        during = await scrape(gateway.url)
        await cp.call(
            call16.StopTransaction(
                meter_stop=8500,
                timestamp="2026-11-23T11:00:00Z",
                transaction_id=start.transaction_id,
            )
        )
        # A CALL of an action no OCPP version has: a CALLERROR NotImplemented, counted
        # under "unknown" (never under the name the charger chose).
        answers = await _send_raw(gateway, "CP-RAW", ['[2,"e1","Teleport",{}]'])
        assert '"NotImplemented"' in answers[0]
        after = await scrape(gateway.url)

    received = "ocpigw_ocpp_calls_received_total"
    assert (
        value(after, received, ocpp_version="1.6", action="BootNotification", outcome="result") == 1
    )
    assert value(after, received, ocpp_version="1.6", action="Heartbeat", outcome="result") == 2
    assert value(after, received, ocpp_version="1.6", action="unknown", outcome="error") == 1
    assert not any(dict(ls).get("action") == "Teleport" for _, ls in after)
    assert (
        value(after, "ocpigw_ocpp_callerrors_total", direction="sent", code="NotImplemented") == 1
    )
    sent = "ocpigw_ocpp_calls_sent_total"
    assert value(after, sent, ocpp_version="1.6", action="Reset", outcome="result") == 1
    trip = "ocpigw_ocpp_call_duration_seconds"
    assert value(after, f"{trip}_count", ocpp_version="1.6", action="Reset") == 1
    assert value(after, f"{trip}_bucket", ocpp_version="1.6", action="Reset", le="+Inf") == 1
    assert value(after, f"{trip}_sum", ocpp_version="1.6", action="Reset") > 0
    # Connected while scraped: the two chargers of this test, by version.
    assert value(after, "ocpigw_ocpp_chargers_connected", ocpp_version="1.6") >= 1
    assert value(after, "ocpigw_ocpp_chargers_connected", ocpp_version="2.0.1") == 0
    # One process: it holds the outbox lease, so it serves the cluster-wide gauges.
    assert value(during, "ocpigw_transactions_active") == 1
    assert value(after, "ocpigw_transactions_active") == 0
    assert value(after, "ocpigw_transactions_total", event="started") == 1
    assert value(after, "ocpigw_transactions_total", event="ended") == 1
    assert value(after, "ocpigw_energy_delivered_watt_hours_total") == 7500
    backend = "redis" if gateway.settings.uses_redis else "sqlite"
    writes = value(after, "ocpigw_storage_write_duration_seconds_count", backend=backend)
    assert writes > value(during, "ocpigw_storage_write_duration_seconds_count", backend=backend)


async def test_ocpi_requests_pushes_failures_and_realtime_authorization(
    gateways: GatewayFactory, emsp: EmspPlatform
) -> None:
    gateway = await gateways.start(outbox_poll_interval=0.1)
    client = await _setup(gateway, emsp)
    partner_id = next(p.id for p in _partners(gateway))
    base = f"{gateway.settings.base_url}/ocpi/2.2.1"
    status, _, _ = await client.call("GET", f"{base}/locations?limit=1")
    assert status == 200
    # The locations the operator created were pushed to the eMSP (the outbox).
    await eventually(lambda: _async(emsp.pushes("locations", "PUT")))
    first = await scrape(gateway.url)
    served = "ocpigw_ocpi_requests_served_total"
    assert value(first, served, api="cpo", module="credentials", method="POST", status="200") == 1
    assert value(first, served, api="cpo", module="locations", method="GET", status="200") == 1
    sent = "ocpigw_ocpi_requests_sent_total"
    # Registration: the gateway read the eMSP's versions and their details.
    assert value(first, sent, module="versions", method="GET", status="200") == 1
    assert total(first, sent, module="locations", method="PUT", status="200") >= 1
    pushes = "ocpigw_ocpi_push_attempts_total"
    assert value(first, pushes, module="locations", outcome="delivered") >= 1

    # The eMSP is down: the next push fails (503), is kept and tried again later.
    emsp.outage = True
    await gateway.admin("PUT", "/tariffs/AC-STD", _tariff_changed())

    async def failed() -> bool:
        now = await scrape(gateway.url)
        return total(now, pushes, outcome="retry") >= 1

    await eventually(failed)
    down = await scrape(gateway.url)
    assert total(down, sent, status="503") >= 1
    assert value(down, "ocpigw_outbox_pending_items", partner=partner_id) >= 1
    assert value(down, "ocpigw_outbox_oldest_pending_age_seconds", partner=partner_id) >= 0

    # A token the gateway does not know, authorized in real time at the eMSP.
    emsp.authorize["RT-MET"] = "ALLOWED"
    async with connect(gateway.ws_url, "CP201", "2.0.1") as cp:
        await cp.call(
            call201.BootNotification(
                charging_station={"model": "m", "vendorName": "v"}, reason="PowerUp"
            )
        )
        answer = await cp.call(
            call201.Authorize(id_token={"idToken": "RT-MET", "type": "ISO14443"})
        )
        assert answer.id_token_info["status"] == "Accepted"
    auth = await scrape(gateway.url)
    name = "ocpigw_ocpi_realtime_authorization_duration_seconds_count"
    assert value(auth, name, outcome="answered") == 1
    assert value(auth, sent, module="tokens", method="POST", status="200") == 1
    emsp.outage = False


def _partners(gw: Gateway) -> list[Any]:
    from gateway.roaming.server import REGISTRY

    return list(gw.app[REGISTRY].all())


def _tariff_changed() -> dict[str, Any]:
    from tests.roaming.test_catalog import TARIFF

    changed = dict(TARIFF)
    changed["currency"] = "EUR"
    changed["tariff_alt_text"] = [{"language": "en", "text": "changed"}]
    return changed


async def _async(value: Any) -> Any:
    return value


async def test_metrics_token(gateways: GatewayFactory) -> None:
    gw = await gateways.start(metrics_token=METRICS_TOKEN)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{gw.url}/metrics") as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        bad = {"Authorization": "Bearer " + "y" * 30}
        async with s.get(f"{gw.url}/metrics", headers=bad) as resp:
            assert resp.status == 401
    samples = await scrape(gw.url, METRICS_TOKEN)
    assert ("ocpigw_ocpp_chargers_connected", frozenset({("ocpp_version", "1.6")})) in samples


async def test_a_thousand_chargers_add_no_series(gateways: GatewayFactory) -> None:
    # Many upgrades from one address: the unauthenticated limiter must not refuse them.
    gw = await gateways.start(
        auto_register=True, unauthenticated_per_minute=100_000, unauthenticated_per_address=1000
    )

    async def one(n: int) -> None:
        # Each with its own id, message ids, a made-up action and an unknown token.
        await _send_raw(
            gw,
            f"CP-{uuid.uuid4().hex[:12]}",
            [
                f'[2,"{uuid.uuid4()}","BootNotification",'
                '{"chargePointVendor":"V","chargePointModel":"M"}]',
                f'[2,"{uuid.uuid4()}","Act{uuid.uuid4().hex}",{{}}]',
                f'[2,"{uuid.uuid4()}","Authorize",{{"idTag":"T{n}"}}]',
            ],
        )

    await one(0)
    before = set((await scrape(gw.url)).keys())
    sem = asyncio.Semaphore(50)

    async def bounded(n: int) -> None:
        async with sem:
            await one(n)

    await asyncio.gather(*(bounded(n) for n in range(1, 1000)))
    after = await scrape(gw.url)
    assert set(after.keys()) == before
    received = "ocpigw_ocpp_calls_received_total"
    assert (
        value(after, received, ocpp_version="1.6", action="BootNotification", outcome="result")
        == 1000
    )
    assert value(after, received, ocpp_version="1.6", action="unknown", outcome="error") == 1000


async def test_two_processes_serve_the_cluster_gauges_once(tmp_path: Path) -> None:
    require_redis_or_skip(await _redis_available())
    prefix = f"test:{uuid.uuid4().hex}:"
    env = cluster_env(prefix, GATEWAY_AUTO_REGISTER="true")
    processes = [LoggedGateway(tmp_path / f"data-{n}", env, tmp_path / f"{n}.log") for n in "AB"]
    try:
        await asyncio.gather(*(p.start() for p in processes))
        # A charger on each process, each with a transaction in progress.
        async with (
            connect(processes[0].url.replace("http", "ws"), "CP-A", "1.6") as a,
            connect(processes[1].url.replace("http", "ws"), "CP-B", "1.6") as b,
        ):
            for cp in (a, b):
                await cp.call(
                    call16.BootNotification(charge_point_vendor="V", charge_point_model="M")
                )
                await cp.call(
                    call16.StartTransaction(
                        connector_id=1,
                        id_tag="ANY",
                        meter_start=0,
                        timestamp="2026-11-23T10:00:00Z",
                    )
                )
            scrapes: list[Samples] = []

            async def served_once() -> bool:
                scrapes[:] = [await scrape(p.url) for p in processes]
                found = [("ocpigw_transactions_active", frozenset()) in s for s in scrapes]
                return found.count(True) == 1

            await until(served_once)
            gauges = [
                s[("ocpigw_transactions_active", frozenset())]
                for s in scrapes
                if ("ocpigw_transactions_active", frozenset()) in s
            ]
            assert gauges == [2]  # the cluster's, from the store, served once
            connected = [
                value(s, "ocpigw_ocpp_chargers_connected", ocpp_version="1.6") for s in scrapes
            ]
            assert connected == [1, 1]  # each process its own: the sum is the cluster's
            boots = [
                value(
                    s,
                    "ocpigw_ocpp_calls_received_total",
                    ocpp_version="1.6",
                    action="BootNotification",
                    outcome="result",
                )
                for s in scrapes
            ]
            assert boots == [1, 1]
    finally:
        for p in processes:
            if p.proc is not None and p.proc.poll() is None:
                p.kill()
        await drop_redis_prefix(prefix)
