"""A session or CDR update that fails is stored for the "sessions" lease's holder to
retry, whichever process it failed in; while the store itself is out, the failure is
kept in the process's memory and stored once the store is back.

The failure is simulated (no real store fails on demand for one call): the CDR step
raises once, as a store error would.
"""

from __future__ import annotations

from typing import Any

import pytest
from ocpp.v16 import call as call16

from gateway.roaming.providers import PROVIDERS
from gateway.storage.base import StorageError
from tests.conftest import Gateway, GatewayFactory
from tests.roaming.emsp import EmspPlatform
from tests.roaming.test_e2e_roaming import _setup, fail_cdr_once
from tests.sim import connect


async def _world(
    gateways: GatewayFactory, emsp: EmspPlatform, monkeypatch: pytest.MonkeyPatch
) -> tuple[Gateway, list[str]]:
    """A gateway (retry interval of an hour: nothing retries by itself during the test)
    with the eMSP registered and its driver's token, whose next CDR fails once."""
    gw = await gateways.start(outbox_poll_interval=0.2, session_retry_interval=3600)
    client = await _setup(gw, emsp)
    await client.call("PUT", f"{gw.settings.base_url}/ocpi/2.2.1/tokens/NL/EMS/DRIVER4", emsp.token("DRIVER4"))
    return gw, fail_cdr_once(monkeypatch)


async def _charge(ws_url: str) -> None:
    async with connect(ws_url, "CP16", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER4", meter_start=0, timestamp="2026-11-23T10:00:00Z"))
        await cp.call(call16.StopTransaction(meter_stop=2000, timestamp="2026-11-23T10:20:00Z", transaction_id=start.transaction_id))


async def test_a_failed_update_is_stored_and_retried_by_any_process(
    gateways: GatewayFactory, emsp: EmspPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, failures = await _world(gateways, emsp, monkeypatch)
    await _charge(gw.ws_url)
    store = gw.app[PROVIDERS].sessions
    assert store is not None
    docs, total = await gw.app[PROVIDERS].sessions._store.session_retries.list()  # type: ignore[union-attr]
    assert [d.key for d in docs] == failures and total == 1
    # On Redis another process (a second app on the same keys) retries it: the failure is
    # in the store, not in the memory of the process it failed in.
    other = await gateways.start(gw.settings) if gw.settings.redis_url else gw
    retrier = other.app[PROVIDERS].sessions
    assert retrier is not None
    assert await retrier.retry_failed() == 1
    assert await retrier.retry_failed() == 0  # done: the record is gone
    docs, total = await retrier._store.session_retries.list()
    assert (docs, total) == ([], 0)
    outbox = other.app[PROVIDERS].sessions._store.outbox  # type: ignore[union-attr]
    cdrs = [i for i in await outbox.list(limit=100) if i.module == "cdrs"]
    assert [i.body["id"] for i in cdrs if i.body] == failures


async def test_a_failure_the_store_cannot_take_waits_in_memory(
    gateways: GatewayFactory, emsp: EmspPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, failures = await _world(gateways, emsp, monkeypatch)
    sessions = gw.app[PROVIDERS].sessions
    assert sessions is not None
    retries = sessions._store.session_retries
    real_put = retries.put
    out = [True]

    async def put(*args: Any, **kwargs: Any) -> None:
        if out[0]:
            raise StorageError("the store is out")
        await real_put(*args, **kwargs)

    monkeypatch.setattr(retries, "put", put)  # this collection only
    await _charge(gw.ws_url)
    assert sessions._unsaved == set(failures)
    assert (await retries.list())[1] == 0
    out[0] = False  # the store is back
    assert await sessions.store_unsaved() == 1
    assert sessions._unsaved == set()
    assert [d.key for d in (await retries.list())[0]] == failures
    assert await sessions.retry_failed() == 1
