"""A location naming a tariff and that tariff's deletion, at the same moment: never a
location left naming a tariff that is gone (its sessions would end in unpriced CDRs)."""

from __future__ import annotations

import asyncio

from tests.conftest import Gateway
from tests.roaming.test_catalog import LOCATION, TARIFF


async def test_location_put_and_tariff_delete_never_leave_a_dangling_tariff(gateway: Gateway) -> None:
    outcomes: set[tuple[int, int]] = set()
    for n in range(25):
        tariff_id, location_id = f"T{n}", f"L{n}"
        assert (await gateway.admin("PUT", f"/tariffs/{tariff_id}", TARIFF))[0] == 201
        body = LOCATION | {"connectors": [connector | {"tariff_ids": [tariff_id]} for connector in LOCATION["connectors"]]}
        (put, _), (delete, _) = await asyncio.gather(
            gateway.admin("PUT", f"/locations/{location_id}", body),
            gateway.admin("DELETE", f"/tariffs/{tariff_id}"),
        )
        outcomes.add((put, delete))
        location_stored = (await gateway.admin("GET", f"/locations/{location_id}"))[0] == 200
        tariff_kept = (await gateway.admin("GET", f"/tariffs/{tariff_id}"))[0] == 200
        assert not location_stored or tariff_kept, (n, put, delete)
        # Either the location won (the delete is refused, 409) or the delete won (the
        # location is refused naming the unknown tariff, 422).
        assert (put, delete) in {(201, 409), (422, 204)}, (n, put, delete)
