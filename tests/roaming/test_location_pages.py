"""The Locations Sender's pages kept serialized (gateway.roaming.location_pages): the same
pages as built from the store, current after every change a charger or the operator
makes, in this process and, through the cluster's notices, in another one on the same
Redis; pages served again without building again."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import timedelta
from typing import Any

import pytest
from ocpp.v16 import call as call16

from gateway.roaming.providers import PROVIDERS
from gateway.storage.base import StorageError
from ocpi.transport import PageRequest, json_dumps
from tests.conftest import REDIS_URL, SECRET_KEY, Gateway, GatewayFactory, backend_settings
from tests.roaming.emsp import EmspPlatform
from tests.roaming.test_catalog import LOCATION, TARIFF, _ocpi_get, _register
from tests.roaming.test_e2e_roaming import eventually
from tests.sim import connect


def charger(location: str, cid: str) -> dict[str, Any]:
    return {
        "location_id": location,
        "evses": [{"ocpp_id": 1, "evse_uid": f"{cid}-1", "evse_id": f"ZZ*GWY*E{cid}"}],
    }


async def fill(gw: Gateway, locations: int, chargers: int) -> None:
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    for i in range(locations):
        assert (await gw.admin("PUT", f"/locations/L{i:02d}", LOCATION))[0] == 201
    for c in range(chargers):
        status, body = await gw.admin("PUT", f"/chargers/C{c:02d}", charger(f"L{c % locations:02d}", f"C{c:02d}"))
        assert status == 201, body


async def same_pages(gw: Gateway, rng: random.Random, rounds: int = 25) -> None:
    """Random pages (offsets, limits, date filters) served from the kept JSON equal the
    pages built from the store, item for item and in total."""
    locations = gw.app[PROVIDERS].locations
    assert locations is not None
    # The store settles first: the admin API answers before a charger's location is
    # synced (the bus), and the two reads below must see the same writes.
    built, total = await locations.page(PageRequest(limit=1000))
    while True:
        await asyncio.sleep(0.2)
        again = await locations.page(PageRequest(limit=1000))
        if again == (built, total):
            break
        built, total = again
    times = sorted({loc.last_updated for loc in built})
    for _ in range(rounds):
        date_from = rng.choice([None, *times])
        date_to = rng.choice([None, *times, times[-1] + timedelta(seconds=1)])
        page = PageRequest(
            offset=rng.randrange(0, total + 2),
            limit=rng.randrange(0, 6),
            date_from=date_from,
            date_to=date_to,
        )
        expected, expected_total = await locations.page(page)
        served, served_total = await locations.page_json(page)
        assert served_total == expected_total, page
        assert [json.loads(raw.text) for raw in served] == [json.loads(json_dumps(x)) for x in expected], page


async def test_pages_equal_the_store_and_follow_every_change(gateway: Gateway, emsp: EmspPlatform) -> None:
    await _register(gateway, emsp)
    assert emsp.cpo_token is not None
    await fill(gateway, 6, 9)
    rng = random.Random(20261203)
    await same_pages(gateway, rng)
    pages = gateway.app[PROVIDERS].locations.pages

    # Served again: nothing built again (once the changes above have all come through).
    for _ in range(2):
        await _ocpi_get(gateway, "/locations?limit=3&offset=2", emsp.cpo_token)
        await asyncio.sleep(0.2)
    builds = pages.builds
    for _ in range(3):
        status, headers, page = await _ocpi_get(gateway, "/locations?limit=3&offset=2", emsp.cpo_token)
        assert (status, page["status_code"], headers["X-Total-Count"]) == (200, 1000, "6")
    assert pages.builds == builds

    async def status(expected: str) -> bool:
        _, _, page = await _ocpi_get(gateway, "/locations?limit=10", emsp.cpo_token or "")
        evses = {e["uid"]: e["status"] for loc in page["data"] for e in loc.get("evses", [])}
        return bool(evses["C00-1"] == expected)

    # A charger reports: the pages show it (the bus carries the change once the charger
    # has its answer, within milliseconds).
    async with connect(gateway.ws_url, "C00", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        await eventually(lambda: status("CHARGING"))
        await same_pages(gateway, rng, 10)
    # Offline: UNKNOWN again.
    await eventually(lambda: status("UNKNOWN"))
    # The operator moves a charger, edits a location, adds one.
    assert (await gateway.admin("PUT", "/chargers/C01", charger("L05", "C01")))[0] == 200
    assert (await gateway.admin("PUT", "/locations/L02", LOCATION | {"name": "Renamed"}))[0] == 200
    assert (await gateway.admin("PUT", "/locations/L06", LOCATION))[0] == 201
    assert (await gateway.admin("DELETE", "/chargers/C02"))[0] == 204
    await same_pages(gateway, rng)
    _, headers, page = await _ocpi_get(gateway, "/locations?limit=10", emsp.cpo_token)
    assert headers["X-Total-Count"] == "7"
    by_id = {loc["id"]: loc for loc in page["data"]}
    assert {e["uid"] for e in by_id["L05"]["evses"]} == {"C05-1", "C01-1"}
    assert by_id["L02"]["name"] == "Renamed"
    # After a full reload (lost messages): the same again.
    pages.reload()
    await same_pages(gateway, rng, 10)


@pytest.mark.parametrize("backend", ["redis"])
async def test_a_change_through_one_process_reaches_the_pages_of_another(
    tmp_path: Any, backend: str, emsp: EmspPlatform
) -> None:
    """Two gateways on one Redis: a status change on a charger held by A, and a charger
    moved through A's admin API, show in B's pages (B built them before)."""
    prefix = f"test:{uuid.uuid4().hex}:"
    shared = {"redis_prefix": prefix, "secret_key": SECRET_KEY, "redis_url": REDIS_URL}
    factory = GatewayFactory(tmp_path, backend)
    try:
        a = await factory.start(backend_settings(backend, tmp_path / "a", **shared))
        b = await factory.start(backend_settings(backend, tmp_path / "b", **shared))
        await _register(a, emsp)
        assert emsp.cpo_token is not None
        await fill(a, 3, 3)

        async def evses_at_b() -> dict[str, tuple[str, str]]:
            _, _, page = await _ocpi_get(b, "/locations?limit=10", emsp.cpo_token or "")
            return {
                e["uid"]: (loc["id"], e["status"]) for loc in page["data"] for e in loc.get("evses", [])
            }

        async def shows(expected: dict[str, tuple[str, str]]) -> bool:
            return await evses_at_b() == expected

        await eventually(lambda: shows({f"C0{i}-1": (f"L0{i}", "UNKNOWN") for i in range(3)}))
        async with connect(a.ws_url, "C00", "1.6") as cp:
            await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
            await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
            await eventually(
                lambda: shows({"C00-1": ("L00", "CHARGING"), "C01-1": ("L01", "UNKNOWN"), "C02-1": ("L02", "UNKNOWN")})
            )
            assert (await a.admin("PUT", "/chargers/C01", charger("L00", "C01")))[0] == 200
            await eventually(
                lambda: shows({"C00-1": ("L00", "CHARGING"), "C01-1": ("L00", "UNKNOWN"), "C02-1": ("L02", "UNKNOWN")})
            )
        await same_pages(b, random.Random(7), 10)
    finally:
        await factory.close()


async def test_a_change_is_not_lost_when_the_store_fails_a_build(
    gateway: Gateway, emsp: EmspPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A location marked changed while the store fails (as a store error would, once) is
    built again at the next page: never served as it was before the change."""
    await _register(gateway, emsp)
    await fill(gateway, 2, 2)
    locations = gateway.app[PROVIDERS].locations
    assert locations is not None
    await locations.page_json(PageRequest(limit=10))
    pages = locations.pages
    real_build = pages._build  # the pages' build (store reads), failing once on demand
    failed: list[str] = []

    async def failing_once(data: dict[str, Any], chargers: list[Any]) -> Any:
        if not failed:
            failed.append(json.loads(data["location"])["id"])
            raise StorageError("the store is briefly unavailable")
        return await real_build(data, chargers)

    monkeypatch.setattr(pages, "_build", failing_once)
    assert (await gateway.admin("PUT", "/locations/L01", LOCATION | {"name": "Changed"}))[0] == 200
    await asyncio.sleep(0.3)  # the background build ran and failed
    served, _ = await locations.page_json(PageRequest(limit=10))
    names = {json.loads(raw.text)["id"]: json.loads(raw.text).get("name") for raw in served}
    assert failed and names["L01"] == "Changed"
