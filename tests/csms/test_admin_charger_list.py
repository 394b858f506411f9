"""The admin API's charger list, without a limit, over a whole fleet: every charger in
order with its connectors, and the chargers' messages let through while it is built (on
SQLite each charger's connectors are a read on the event loop's own connection, which
never waits: 10,000 of them in a row held the loop for 212 ms)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from gateway.admin.api import page_views
from gateway.admin.http import respond, respond_items
from gateway.domain.models import Charger, ChargerState, ConnectorState, ConnectorStatus
from gateway.keys import ROUTER
from tests.conftest import Gateway
from tests.loop_turns import counting_turns, turns_during

AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
CHARGERS = 200


async def test_a_fleet_list_lets_the_loop_go_and_keeps_every_charger(gateway: Gateway) -> None:
    store = gateway.store
    for i in range(CHARGERS):
        await store.chargers.put(Charger(id=f"CP{i:04d}"))
    for i in range(0, CHARGERS, 7):
        await store.connectors.put(ConnectorState(f"CP{i:04d}", 1, 1, ConnectorStatus.CHARGING, AT))
    chargers = sorted(await store.chargers.list(), key=lambda c: c.id)
    views, turns = await turns_during(page_views(store, chargers, {}))
    assert [v["id"] for v in views] == [f"CP{i:04d}" for i in range(CHARGERS)]
    for i, view in enumerate(views):
        statuses = [c["status"] for c in view["connectors"]]
        assert statuses == (["Charging"] if i % 7 == 0 else []), view
    # At least one turn per 64 chargers (a Redis store's reads give more).
    assert turns >= CHARGERS // 64


async def test_the_admin_list_without_a_limit_is_the_same_list(gateway: Gateway) -> None:
    for i in range(70):
        assert (await gateway.admin("PUT", f"/chargers/CP{i:03d}", {}))[0] == 201
    status, body = await gateway.admin("GET", "/chargers")
    assert status == 200
    assert [c["id"] for c in body] == [f"CP{i:03d}" for i in range(70)]


async def test_a_list_encoded_in_turns_is_the_same_text() -> None:
    items: list[Any] = [
        {"id": f"CP{i}", "at": AT, "price": Decimal("0.25"), "status": ConnectorStatus.FAULTED}
        for i in range(150)
    ]
    for chosen in ([], items[:1], items[:64], items[:65], items):
        response, turns = await turns_during(respond_items(chosen))
        expected = respond(chosen)
        assert response.text == expected.text
        assert response.content_type == expected.content_type == "application/json"
        assert response.charset == expected.charset
        assert turns >= (len(chosen) - 1) // 64


async def test_a_fleet_s_live_states_let_the_loop_go(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"CP{i:04d}" for i in range(2500)]
    for charger_id in ids[::500]:
        await gateway.store.charger_states.put(ChargerState(charger_id, vendor="V"))
    # The turns other work had when each charger was merged: the reads before the merge
    # give turns of their own, so only the merge's own are counted.
    seen: list[int] = []
    live_state = gateway.csms.live_state
    async with counting_turns() as turns:

        def counted(charger_id: str) -> ChargerState | None:
            seen.append(turns())
            return live_state(charger_id)  # type: ignore[no-any-return]

        monkeypatch.setattr(gateway.csms, "live_state", counted)
        states = await gateway.app[ROUTER].live_states(ids)
    assert sorted(states) == ids[::500]
    assert all(s.vendor == "V" and not s.connected for s in states.values())
    assert len(seen) == len(ids)
    assert len(set(seen)) >= len(ids) // 1000 + 1
