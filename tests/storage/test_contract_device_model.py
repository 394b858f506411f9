"""The device model contract (``DeviceModelStore``), on both backends: report parts upsert
attributes and track the report's completeness, values set keep what a report described,
searches and pages in key order, alerts numbered, cleared and bounded, report states
bounded, delete, reopen, and records no reader could use refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gateway.domain.device_model import (
    Alert,
    AttributeType,
    Characteristics,
    DeviceModelQuery,
    DeviceVariable,
    ValueUpdate,
    VariableKey,
)
from gateway.storage.base import Store
from gateway.storage.codec import NaiveDatetimeError
from tests.storage.conftest import StoreFactory

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ACTUAL = AttributeType.ACTUAL


def row(
    component: str,
    variable: str,
    value: str | None = "1",
    *,
    evse: int | None = None,
    attr: AttributeType = ACTUAL,
    charger: str = "CP-1",
    at: datetime = T0,
    **key: object,
) -> DeviceVariable:
    return DeviceVariable(
        charger_id=charger,
        key=VariableKey(component, variable, evse_id=evse, **key),  # type: ignore[arg-type]
        attribute_type=attr,
        value=value,
        updated_at=at,
        mutability="ReadWrite",
        persistent=True,
        constant=False,
        characteristics=Characteristics(
            data_type="integer",
            supports_monitoring=True,
            unit="s",
            min_limit=Decimal("0"),
            max_limit=Decimal("3600.5"),
            values_list=None,
        ),
    )


def model() -> list[DeviceVariable]:
    return [
        row("OCPPCommCtrlr", "HeartbeatInterval", "300"),
        row("OCPPCommCtrlr", "HeartbeatInterval", "60", attr=AttributeType.MIN_SET),
        row("EVSE", "Power", "22000", evse=2),
        row("EVSE", "Power", "11000", evse=1),
        row("EVSE", "Power", "7400", evse=10),
        row("Connector", "ConnectorType", "cType2", evse=1, connector_id=1),
        row("TariffCostCtrlr", "Enabled", "true", variable_instance="Cost"),
        row("SecurityCtrlr", "Identity", "Straße-7"),
    ]


async def test_report_parts_upsert_and_complete(store: Store) -> None:
    dm = store.device_model
    rows = model()
    first = await dm.apply_report("CP-1", 7, 0, True, rows[:4], T0)
    assert (first.seq_nos, first.last_seq_no, first.complete, first.variables) == (
        frozenset({0}),
        None,
        False,
        4,
    )
    # The last part comes before the middle one: known, not complete.
    third = await dm.apply_report("CP-1", 7, 2, False, rows[6:], T0 + timedelta(seconds=2))
    assert (third.last_seq_no, third.complete, third.missing()) == (2, False, [1])
    second = await dm.apply_report("CP-1", 7, 1, True, rows[4:6], T0 + timedelta(seconds=1))
    assert second.complete and second.variables == len(rows)
    assert second.updated_at == T0 + timedelta(seconds=1)

    found, total = await dm.query("CP-1", DeviceModelQuery(), limit=100)
    assert total == len(rows)
    assert sorted(found, key=lambda r: r.sort_key) == found  # key order
    assert {(r.key, r.attribute_type): r for r in found} == {
        (r.key, r.attribute_type): r for r in rows
    }
    # No EVSE first, then EVSE 1, 2, 10 (numeric, not text order).
    power = [r.key.evse_id for r in found if r.key.variable == "Power"]
    assert power == [1, 2, 10]

    # A later report of the same attribute replaces it (upsert), not adds.
    changed = replace(rows[0], value="600", updated_at=T0 + timedelta(minutes=1))
    await dm.apply_report("CP-1", 8, 0, False, [changed], T0 + timedelta(minutes=1))
    found, total = await dm.query("CP-1", DeviceModelQuery(component="OCPPCommCtrlr"))
    assert total == 2
    assert [(r.attribute_type, r.value) for r in found] == [("Actual", "600"), ("MinSet", "60")]
    # Another charger's model is apart.
    assert await dm.query("CP-2", DeviceModelQuery()) == ([], 0)


async def test_search_filters_and_pages(store: Store) -> None:
    dm = store.device_model
    await dm.apply_report("CP-1", 1, 0, False, model(), T0)
    q = dm.query

    async def names(query: DeviceModelQuery, **page: int) -> tuple[list[str], int]:
        found, total = await q("CP-1", query, **page)
        return [f"{r.key.component}.{r.key.variable}/{r.key.evse_id}" for r in found], total

    assert await names(DeviceModelQuery(variable="Power", evse_id=2)) == (["EVSE.Power/2"], 1)
    assert await names(DeviceModelQuery(evse_id=1)) == (
        ["Connector.ConnectorType/1", "EVSE.Power/1"],
        2,
    )
    # q: a case-insensitive part of a name, an instance or the value (Unicode folding).
    assert (await names(DeviceModelQuery(q="heartbeat")))[1] == 2
    assert await names(DeviceModelQuery(q="COST")) == (["TariffCostCtrlr.Enabled/None"], 1)
    assert await names(DeviceModelQuery(q="ctype2")) == (["Connector.ConnectorType/1"], 1)
    assert await names(DeviceModelQuery(q="STRASSE")) == (["SecurityCtrlr.Identity/None"], 1)
    assert await names(DeviceModelQuery(q="nothing-like-it")) == ([], 0)
    page, total = await names(DeviceModelQuery(), limit=3, offset=2)
    everything, _ = await names(DeviceModelQuery())
    assert (page, total) == (everything[2:5], 8)
    assert (await names(DeviceModelQuery(), limit=3, offset=8)) == ([], 8)
    with pytest.raises(ValueError, match="limit"):
        await q("CP-1", DeviceModelQuery(), limit=-1)


async def test_values_set_keep_the_description_and_mark_reboots(store: Store) -> None:
    dm = store.device_model
    rows = model()
    await dm.apply_report("CP-1", 1, 0, False, rows, T0)
    key = rows[0].key
    t1 = T0 + timedelta(minutes=5)
    await dm.update_values(
        "CP-1",
        [
            ValueUpdate(key, AttributeType.TARGET, "900", t1, "set", reboot_required=True),
            ValueUpdate(key, ACTUAL, "450", t1, "set"),
            # One no report described: stored without a description.
            ValueUpdate(VariableKey("AuthCtrlr", "Enabled"), ACTUAL, "false", t1, "get"),
        ],
    )
    found, _ = await dm.query("CP-1", DeviceModelQuery(variable="HeartbeatInterval"))
    by_type = {r.attribute_type: r for r in found}
    assert by_type[ACTUAL].value == "450" and by_type[ACTUAL].source == "set"
    assert by_type[ACTUAL].characteristics == rows[0].characteristics  # kept
    assert by_type[ACTUAL].mutability == "ReadWrite" and not by_type[ACTUAL].reboot_required
    target = by_type[AttributeType.TARGET]
    assert (target.value, target.reboot_required, target.updated_at) == ("900", True, t1)
    assert target.characteristics is None and target.mutability is None
    auth, _ = await dm.query("CP-1", DeviceModelQuery(component="AuthCtrlr"))
    assert [(r.value, r.source, r.characteristics) for r in auth] == [("false", "get", None)]
    # The value is searchable once set; a report keeps the reboot mark.
    assert (await dm.query("CP-1", DeviceModelQuery(q="900")))[1] == 1
    reported = replace(rows[0], attribute_type=AttributeType.TARGET, value="900")
    await dm.apply_report("CP-1", 2, 0, False, [reported], t1)
    found, _ = await dm.query("CP-1", DeviceModelQuery(variable="HeartbeatInterval"))
    target = {r.attribute_type: r for r in found}[AttributeType.TARGET]
    assert target.reboot_required and target.characteristics == rows[0].characteristics
    # Accepted at once later: the mark goes.
    await dm.update_values("CP-1", [ValueUpdate(key, AttributeType.TARGET, "900", t1, "set")])
    found, _ = await dm.query("CP-1", DeviceModelQuery(variable="HeartbeatInterval"))
    assert not any(r.reboot_required for r in found)


async def test_report_states_requested_answered_and_bounded(store: Store) -> None:
    dm = store.device_model
    await dm.note_request("CP-1", 100, kind="FullInventory", at=T0)
    # A part can come before the answer is noted: both kept.
    await dm.apply_report("CP-1", 100, 0, False, model()[:1], T0 + timedelta(seconds=1))
    await dm.note_request("CP-1", 100, kind=None, at=T0 + timedelta(seconds=2), answer="Accepted")
    (state,) = await dm.reports("CP-1")
    assert (state.kind, state.answer, state.requested_at, state.complete) == (
        "FullInventory",
        "Accepted",
        T0,
        True,
    )
    # Unasked reports count too; the newest 20 by first news are kept.
    for i in range(25):
        at = T0 + timedelta(minutes=i + 1)
        await dm.apply_report("CP-1", 200 + i, 0, False, [], at)
    states = await dm.reports("CP-1")
    assert [s.request_id for s in states] == [200 + i for i in range(24, 4, -1)]
    assert states[0].kind is None and states[0].requested_at is None
    assert await dm.reports("CP-2") == []


def alert(
    event_id: int,
    variable: str = "Temperature",
    *,
    trigger: str = "Alerting",
    cleared: bool = False,
    at: datetime = T0,
    charger: str = "CP-1",
) -> Alert:
    return Alert(
        charger_id=charger,
        event_id=event_id,
        timestamp=at,
        trigger=trigger,
        actual_value="81",
        event_notification_type="CustomMonitor",
        key=VariableKey("Controller", variable, evse_id=1),
        received_at=at,
        cleared=cleared,
        severity=2,
        tech_code="T-HOT",
        tech_info="sensor 3",
        variable_monitoring_id=5,
    )


async def test_alerts_numbered_cleared_and_bounded(store: Store) -> None:
    dm = store.device_model
    stored = await dm.add_alerts(
        "CP-1", [alert(1), alert(2, "Fan"), alert(3, trigger="Periodic")], keep=10
    )
    assert [a.seq for a in stored] == [1, 2, 3]
    assert [a.active for a in stored] == [True, True, False]
    assert stored[0] == replace(alert(1), seq=1)
    t1 = T0 + timedelta(minutes=1)
    # A clearing event clears the active alerts of its component and variable.
    (clearing,) = await dm.add_alerts("CP-1", [alert(4, cleared=True, at=t1)], keep=10)
    assert clearing.seq == 4 and not clearing.active
    active = await dm.alerts("CP-1", active=True)
    assert [a.event_id for a in active] == [2]
    others = await dm.alerts("CP-1", active=False)
    assert [(a.event_id, a.cleared_at) for a in others] == [(4, None), (3, None), (1, t1)]
    assert [a.seq for a in await dm.alerts("CP-1")] == [4, 3, 2, 1]
    assert [a.seq for a in await dm.alerts("CP-1", limit=2, offset=1)] == [3, 2]
    # Raised and cleared in one call: stored cleared.
    both = await dm.add_alerts(
        "CP-1", [alert(5, "Door"), alert(6, "Door", cleared=True, at=t1)], keep=10
    )
    assert [(a.seq, a.cleared_at) for a in both] == [(5, t1), (6, None)]
    # Only the newest `keep` stay; numbering goes on.
    await dm.add_alerts("CP-1", [alert(10 + i) for i in range(5)], keep=4)
    assert [a.seq for a in await dm.alerts("CP-1")] == [11, 10, 9, 8]
    assert [a.seq for a in await dm.alerts("CP-1", active=True)] == [11, 10, 9, 8]
    assert await dm.alerts("CP-2") == []
    assert await dm.add_alerts("CP-1", [], keep=4) == []


async def test_delete_forgets_a_charger_and_nothing_else(store_factory: StoreFactory) -> None:
    store = await store_factory()
    dm = store.device_model
    for charger in ("CP-1", "CP-2"):
        rows = [replace(r, charger_id=charger) for r in model()]
        await dm.apply_report(charger, 1, 0, False, rows, T0)
        await dm.add_alerts(charger, [alert(1, charger=charger)], keep=5)
    await dm.delete("CP-1")
    assert await dm.query("CP-1", DeviceModelQuery()) == ([], 0)
    assert await dm.alerts("CP-1") == [] and await dm.reports("CP-1") == []
    # Kept across a reopen, for the other charger.
    await store.close()
    again = await store_factory()
    assert (await again.device_model.query("CP-2", DeviceModelQuery()))[1] == len(model())
    assert len(await again.device_model.alerts("CP-2")) == 1
    assert [s.complete for s in await again.device_model.reports("CP-2")] == [True]
    # Numbering starts again for a charger forgotten.
    (first,) = await again.device_model.add_alerts("CP-1", [alert(1)], keep=5)
    assert first.seq == 1


async def test_unusable_records_refused_before_writing(store: Store) -> None:
    dm = store.device_model
    with pytest.raises(ValueError, match="CP-2"):
        await dm.apply_report("CP-1", 1, 0, False, [row("A", "B", charger="CP-2")], T0)
    with pytest.raises(ValueError, match="empty"):
        await dm.apply_report("CP-1", 1, 0, False, [row("", "B")], T0)
    with pytest.raises(ValueError, match="seqNo"):
        await dm.apply_report("CP-1", 1, -1, False, [], T0)
    with pytest.raises(NaiveDatetimeError):
        await dm.apply_report("CP-1", 1, 0, False, [row("A", "B", at=T0.replace(tzinfo=None))], T0)
    with pytest.raises(ValueError, match="trigger"):
        await dm.add_alerts("CP-1", [alert(1, trigger="Sometimes")], keep=5)
    with pytest.raises(ValueError, match="keep"):
        await dm.add_alerts("CP-1", [alert(1)], keep=0)
    with pytest.raises(NaiveDatetimeError):
        await dm.update_values(
            "CP-1",
            [ValueUpdate(VariableKey("A", "B"), ACTUAL, "1", T0.replace(tzinfo=None), "set")],
        )
    assert await dm.query("CP-1", DeviceModelQuery()) == ([], 0)
    assert await dm.alerts("CP-1") == [] and await dm.reports("CP-1") == []


async def test_a_large_report_in_parts(store: Store) -> None:
    """A FullInventory of 5,000 attributes in 10 parts: every one stored, pages exact."""
    dm = store.device_model
    rows = [
        row(f"Comp{c:03d}", f"Var{v:02d}", str(c * 100 + v)) for c in range(250) for v in range(20)
    ]
    for part in range(10):
        state = await dm.apply_report(
            "CP-1", 9, part, part < 9, rows[part * 500 : (part + 1) * 500], T0
        )
    assert state.complete and state.variables == 5000
    page, total = await dm.query("CP-1", DeviceModelQuery(), limit=50, offset=4950)
    assert total == 5000
    # The rows were made in key order: the last page is the last 50 of them.
    assert [r.value for r in page] == [r.value for r in rows[4950:]]
    assert page[-1].key.component == "Comp249" and page[-1].key.variable == "Var19"
    found, total = await dm.query("CP-1", DeviceModelQuery(component="Comp123"))
    assert total == 20 and [r.value for r in found] == [str(12300 + v) for v in range(20)]
