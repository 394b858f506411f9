"""The store contract (gateway.storage.base); every test runs against both backends."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from gateway.domain.errors import Conflict
from gateway.domain.models import (
    Charger,
    ChargerState,
    ConnectorStatus,
    LocalToken,
    Measurand,
    MeterReading,
    TransactionStatus,
)
from gateway.storage.base import StorageError, Store
from gateway.storage.codec import NaiveDatetimeError

from .conftest import StoreFactory
from .samples import (
    T0,
    at,
    connector,
    full_charger,
    full_charger_state,
    full_token,
    full_transaction,
    reading,
    transaction,
)

NAIVE = datetime(2024, 5, 1, 12, 0)

# -- chargers --------------------------------------------------------------------------


async def test_charger_round_trips_every_field(store: Store) -> None:
    charger = full_charger()
    await store.chargers.put(charger)
    assert await store.chargers.get(charger.id) == charger


async def test_charger_with_defaults_round_trips(store: Store) -> None:
    await store.chargers.put(Charger(id="CP-min"))
    assert await store.chargers.get("CP-min") == Charger(id="CP-min")


async def test_charger_put_replaces_and_get_missing_is_none(store: Store) -> None:
    await store.chargers.put(full_charger())
    await store.chargers.put(Charger(id="CP-1", location_id="LOC-2"))
    assert await store.chargers.get("CP-1") == Charger(id="CP-1", location_id="LOC-2")
    assert await store.chargers.get("nope") is None


async def test_charger_delete_reports_whether_it_existed(store: Store) -> None:
    await store.chargers.put(Charger(id="CP-1"))
    assert await store.chargers.delete("CP-1") is True
    assert await store.chargers.get("CP-1") is None
    assert await store.chargers.delete("CP-1") is False


async def test_placed_answers_a_placed_chargers_record_and_follows_it(
    store_factory: StoreFactory,
) -> None:
    # placed() is get() for a charger with a location, None otherwise (SQLite knows which
    # from memory, kept by its own writes).
    store = await store_factory()
    chargers = store.chargers

    async def where(charger_id: str) -> str | None:
        charger = await chargers.placed(charger_id)
        assert charger is None or charger == await chargers.get(charger_id)
        return None if charger is None else charger.location_id

    assert await where("CP-1") is None  # unknown
    await chargers.put(full_charger())
    assert await chargers.placed("CP-1") == full_charger()
    await chargers.put(Charger(id="CP-2"))
    assert await where("CP-2") is None  # placed nowhere
    await chargers.put(replace(full_charger(), location_id="LOC-2"))  # moved
    assert await where("CP-1") == "LOC-2"
    await chargers.put(replace(full_charger("CP-2"), location_id="LOC-3"))  # placed
    assert await where("CP-2") == "LOC-3"
    await chargers.put(replace(full_charger(), location_id=None))  # taken away
    assert await where("CP-1") is None
    assert await chargers.delete("CP-2")
    assert await where("CP-2") is None
    await chargers.put(full_charger("CP-3"))
    await store.close()
    again = await store_factory()  # what was written, read back
    assert [await again.chargers.placed(c) for c in ("CP-1", "CP-2", "CP-3")] == [
        None,
        None,
        full_charger("CP-3"),
    ]


async def test_charger_list_is_sorted_by_id(store: Store) -> None:
    assert await store.chargers.list() == []
    for charger_id in ("b", "c", "a"):
        await store.chargers.put(full_charger(charger_id))
    assert [c.id for c in await store.chargers.list()] == ["a", "b", "c"]
    assert (await store.chargers.list())[0] == full_charger("a")


# -- charger states --------------------------------------------------------------------


async def test_charger_state_round_trips(store: Store) -> None:
    full = full_charger_state("CP-1")
    await store.charger_states.put(full)
    await store.charger_states.put(ChargerState(id="CP-0"))
    assert await store.charger_states.get("CP-1") == full
    assert await store.charger_states.get("CP-0") == ChargerState(id="CP-0")
    assert await store.charger_states.get("nope") is None
    assert await store.charger_states.list() == [ChargerState(id="CP-0"), full]


async def test_charger_state_put_replaces_and_delete_removes(store: Store) -> None:
    await store.charger_states.put(full_charger_state("CP-1"))
    offline = replace(full_charger_state("CP-1"), connected=False, disconnected_at=at(10))
    await store.charger_states.put(offline)
    assert await store.charger_states.get("CP-1") == offline
    await store.charger_states.delete("CP-1")
    await store.charger_states.delete("CP-1")  # deleting again is fine
    assert await store.charger_states.get("CP-1") is None
    assert await store.charger_states.list() == []


# -- connectors ------------------------------------------------------------------------


async def test_connectors_round_trip_sorted_and_per_charger(store: Store) -> None:
    faulted = connector(
        evse_id=2,
        connector_id=1,
        status=ConnectorStatus.FAULTED,
        error_code="GroundFailure",
        info="x",
    )
    states = [connector(evse_id=1, connector_id=2), faulted, connector(evse_id=1, connector_id=1)]
    for state in states:
        await store.connectors.put(state)
    await store.connectors.put(connector("CP-2"))
    assert await store.connectors.list("CP-1") == [states[2], states[0], faulted]
    assert await store.connectors.list("CP-2") == [connector("CP-2")]
    assert await store.connectors.list("nope") == []


async def test_a_charger_with_many_connectors_lists_them_all_in_order(store: Store) -> None:
    """More connectors than SQLite reads on the event loop (64): all of them, sorted."""
    states = [connector(evse_id=e, connector_id=c) for e in (3, 1, 2) for c in range(25, 0, -1)]
    for state in states:
        await store.connectors.put(state)
    await store.connectors.put(connector("CP-2"))
    listed = await store.connectors.list("CP-1")
    assert [(s.evse_id, s.connector_id) for s in listed] == [
        (e, c) for e in (1, 2, 3) for c in range(1, 26)
    ]
    assert await store.connectors.list("CP-2") == [connector("CP-2")]


async def test_connector_put_replaces_same_connector(store: Store) -> None:
    await store.connectors.put(connector(status=ConnectorStatus.AVAILABLE))
    charging = connector(status=ConnectorStatus.CHARGING, ts=at(5))
    await store.connectors.put(charging)
    assert await store.connectors.list("CP-1") == [charging]


async def test_set_all_replaces_every_connector_of_that_charger_only(store: Store) -> None:
    await store.connectors.put(
        connector(evse_id=1, status=ConnectorStatus.FAULTED, error_code="GroundFailure", info="i")
    )
    await store.connectors.put(connector(evse_id=2, status=ConnectorStatus.CHARGING))
    other = connector("CP-2", status=ConnectorStatus.CHARGING)
    await store.connectors.put(other)

    await store.connectors.set_all("CP-1", ConnectorStatus.UNKNOWN, at(60))

    # The status replaces the whole reported state: error_code/info described the old one.
    assert await store.connectors.list("CP-1") == [
        connector(evse_id=1, status=ConnectorStatus.UNKNOWN, ts=at(60)),
        connector(evse_id=2, status=ConnectorStatus.UNKNOWN, ts=at(60)),
    ]
    assert await store.connectors.list("CP-2") == [other]
    await store.connectors.set_all("nope", ConnectorStatus.UNKNOWN, at(60))  # no connectors
    assert await store.connectors.list("nope") == []


async def test_connector_delete_removes_all_of_the_charger(store: Store) -> None:
    await store.connectors.put(connector(evse_id=1))
    await store.connectors.put(connector(evse_id=2))
    await store.connectors.put(connector("CP-2"))
    await store.connectors.delete("CP-1")
    await store.connectors.delete("CP-1")
    assert await store.connectors.list("CP-1") == []
    assert await store.connectors.list("CP-2") == [connector("CP-2")]


# -- transactions: create / save / get / find / readings -------------------------------


async def test_transaction_round_trips_every_field_and_reading(store: Store) -> None:
    tx = full_transaction()
    readings = [
        reading(1, "0.000000000000000000000000001", phase="L1-N", context="Sample.Periodic"),
        reading(2, "12345678901234567890.1234567890", measurand=Measurand.POWER_W),
        reading(3, "-1E+3", measurand=Measurand.CURRENT_A, phase="L2"),
        reading(4, "55.50", measurand=Measurand.SOC_PERCENT),
    ]
    stored, created = await store.transactions.create(tx, readings)
    assert (stored, created) == (tx, True)
    assert await store.transactions.get(tx.id) == tx
    assert await store.transactions.find(tx.charger_id, tx.ocpp_id) == tx
    got = await store.transactions.readings(tx.id)
    assert got == readings
    # Decimal exactness: the same digits and exponent, not just an equal value.
    assert [str(r.value) for r in got] == [str(r.value) for r in readings]
    loaded = await store.transactions.get(tx.id)
    assert loaded is not None
    assert str(loaded.meter_stop_wh) == "98765.4321000000000000001"
    assert str(loaded.meter_start_wh) == "12345.6780"
    assert loaded.started_at.tzinfo is not None
    assert loaded.started_at.utcoffset() == timedelta(0)


async def test_transaction_with_defaults_round_trips(store: Store) -> None:
    tx = transaction()
    await store.transactions.create(tx)
    assert await store.transactions.get(tx.id) == tx
    assert await store.transactions.readings(tx.id) == []


async def test_get_find_readings_of_unknown_are_empty(store: Store) -> None:
    assert await store.transactions.get("nope") is None
    assert await store.transactions.find("CP-1", "nope") is None
    assert await store.transactions.readings("nope") == []


async def test_find_is_per_charger(store: Store) -> None:
    a = transaction("a", charger_id="CP-1", ocpp_id="7")
    b = transaction("b", charger_id="CP-2", ocpp_id="7")
    assert (await store.transactions.create(a))[1] is True
    assert (await store.transactions.create(b))[1] is True
    assert await store.transactions.find("CP-1", "7") == a
    assert await store.transactions.find("CP-2", "7") == b


async def test_create_is_idempotent_per_charger_and_ocpp_id(store: Store) -> None:
    first = transaction("tx-1", ocpp_id="42", meter_start_wh=Decimal("10"))
    await store.transactions.create(first, [reading(1)])
    # The charger repeats the start (its answer was lost); we built a new id for it.
    repeat = transaction("tx-2", ocpp_id="42", meter_start_wh=Decimal("11"))
    stored, created = await store.transactions.create(repeat, [reading(2)])
    assert (stored, created) == (first, False)
    assert await store.transactions.get("tx-2") is None
    assert await store.transactions.readings("tx-1") == [reading(1)]
    assert await store.transactions.readings("tx-2") == []
    assert await store.transactions.list() == [first]
    assert await store.transactions.active("CP-1") == [first]


async def test_create_refuses_an_id_taken_by_another_ocpp_id(store: Store) -> None:
    await store.transactions.create(transaction("tx-1", ocpp_id="1"))
    with pytest.raises(Conflict):
        await store.transactions.create(transaction("tx-1", ocpp_id="2"), [reading(1)])
    assert await store.transactions.find("CP-1", "2") is None
    assert await store.transactions.readings("tx-1") == []


async def test_save_replaces_and_appends_readings(store: Store) -> None:
    tx = transaction(meter_start_wh=Decimal("100"))
    await store.transactions.create(tx, [reading(1)])
    stopped = replace(
        tx,
        status=TransactionStatus.COMPLETED,
        meter_stop_wh=Decimal("2100.5"),
        stopped_at=at(600),
        stop_reason="Local",
        updated_at=at(600),
    )
    await store.transactions.save(stopped, [reading(2), reading(3)])
    assert await store.transactions.get(tx.id) == stopped
    assert await store.transactions.find(tx.charger_id, tx.ocpp_id) == stopped
    assert await store.transactions.readings(tx.id) == [reading(1), reading(2), reading(3)]
    await store.transactions.save(stopped)  # no readings: nothing appended
    assert len(await store.transactions.readings(tx.id)) == 3


async def test_save_of_an_unknown_transaction_stores_it(store: Store) -> None:
    tx = transaction("late", recovered=True)
    await store.transactions.save(tx, [reading(1)])
    assert await store.transactions.get("late") == tx
    assert await store.transactions.find("CP-1", "late") == tx
    assert await store.transactions.list() == [tx]
    assert await store.transactions.readings("late") == [reading(1)]
    # ...after which create() sees it, as for any stored transaction.
    assert await store.transactions.create(transaction("other", ocpp_id="late")) == (tx, False)


async def test_save_refuses_to_change_identity_or_steal_an_ocpp_id(store: Store) -> None:
    a = transaction("a", ocpp_id="1")
    b = transaction("b", ocpp_id="2")
    await store.transactions.create(a, [reading(1)])
    await store.transactions.create(b)
    with pytest.raises(Conflict):
        await store.transactions.save(replace(a, ocpp_id="3"), [reading(2)])
    with pytest.raises(Conflict):
        await store.transactions.save(replace(a, charger_id="CP-9"), [reading(2)])
    with pytest.raises(Conflict):  # a new id with the (charger_id, ocpp_id) of b
        await store.transactions.save(transaction("c", ocpp_id="2"), [reading(2)])
    assert await store.transactions.get("a") == a
    assert await store.transactions.get("c") is None
    assert await store.transactions.find("CP-1", "2") == b
    assert await store.transactions.find("CP-1", "3") is None
    assert await store.transactions.readings("a") == [reading(1)]
    assert await store.transactions.readings("c") == []
    assert await store.transactions.list() == [b, a]
    assert await store.transactions.list(charger_id="CP-9") == []


async def test_save_moves_the_start_time_in_the_listing(store: Store) -> None:
    a = transaction("a", started_at=at(10))
    b = transaction("b", started_at=at(20))
    await store.transactions.create(a)
    await store.transactions.create(b)
    moved = replace(a, started_at=at(30))
    await store.transactions.save(moved)
    assert await store.transactions.list() == [moved, b]
    assert await store.transactions.list(charger_id="CP-1", since=at(25)) == [moved]


async def test_large_reading_batch_round_trips_in_order(store: Store) -> None:
    readings = [reading(i) for i in range(2500)]
    await store.transactions.create(transaction(), readings[:1200])
    await store.transactions.save(transaction(), readings[1200:])
    assert await store.transactions.readings("tx-1") == readings


# -- transactions: list / active -------------------------------------------------------


@pytest.fixture
async def listed(store: Store) -> list[str]:
    """Seven transactions on two chargers; returns their ids newest first."""
    specs = [
        ("t1", "CP-1", 0),
        ("t2", "CP-2", 10),
        ("t3", "CP-1", 20),
        ("t4b", "CP-1", 30),  # t4a and t4b start at the same microsecond
        ("t4a", "CP-2", 30),
        ("t5", "CP-2", 40),
        ("t6", "CP-1", 50),
    ]
    for tx_id, charger_id, seconds in specs:
        await store.transactions.create(transaction(tx_id, charger_id, started_at=at(seconds)))
    return ["t6", "t5", "t4b", "t4a", "t3", "t2", "t1"]


async def ids(store: Store, **filters: Any) -> list[str]:
    return [tx.id for tx in await store.transactions.list(**filters)]


async def test_list_is_newest_first_ties_by_id_descending(store: Store, listed: list[str]) -> None:
    assert await ids(store) == listed


async def test_list_since_is_inclusive_and_until_exclusive(store: Store, listed: list[str]) -> None:
    assert await ids(store, since=at(30)) == ["t6", "t5", "t4b", "t4a"]
    assert await ids(store, until=at(30)) == ["t3", "t2", "t1"]
    assert await ids(store, since=at(10), until=at(40)) == ["t4b", "t4a", "t3", "t2"]
    assert await ids(store, since=at(30), until=at(30)) == []
    # A microsecond matters.
    assert await ids(store, since=at(30) + timedelta(microseconds=1)) == ["t6", "t5"]
    assert await ids(store, until=at(30) + timedelta(microseconds=1)) == listed[2:]


async def test_list_filters_by_charger(store: Store, listed: list[str]) -> None:
    assert await ids(store, charger_id="CP-1") == ["t6", "t4b", "t3", "t1"]
    assert await ids(store, charger_id="CP-2", since=at(30)) == ["t5", "t4a"]
    assert await ids(store, charger_id="CP-1", until=at(20)) == ["t1"]
    assert await ids(store, charger_id="nope") == []


async def test_list_pages_with_limit_and_offset(store: Store, listed: list[str]) -> None:
    assert await ids(store, limit=3) == listed[:3]
    assert await ids(store, limit=3, offset=3) == listed[3:6]
    assert await ids(store, limit=3, offset=6) == listed[6:]
    assert await ids(store, offset=7) == []
    assert await ids(store, limit=0) == []
    assert await ids(store, charger_id="CP-1", limit=2, offset=1) == ["t4b", "t3"]
    assert await ids(store, since=at(10), limit=2, offset=1) == ["t5", "t4b"]
    with pytest.raises(ValueError, match="limit"):
        await store.transactions.list(limit=-1)
    with pytest.raises(ValueError, match="offset"):
        await store.transactions.list(offset=-1)


async def test_list_accepts_other_timezones_as_the_same_instant(
    store: Store, listed: list[str]
) -> None:
    plus2 = timezone(timedelta(hours=2))
    assert await ids(store, since=at(30).astimezone(plus2)) == ["t6", "t5", "t4b", "t4a"]


async def test_list_default_limit_is_100(store: Store) -> None:
    await asyncio.gather(
        *(store.transactions.create(transaction(f"t{i:03d}", started_at=at(i))) for i in range(105))
    )
    listed = await store.transactions.list()
    assert [tx.id for tx in listed] == [f"t{i:03d}" for i in range(104, 4, -1)]


async def test_active_lists_the_chargers_active_transactions_newest_first(store: Store) -> None:
    old = transaction("old", started_at=at(0))
    new = transaction("new", started_at=at(10))
    done = transaction("done", started_at=at(20), status=TransactionStatus.COMPLETED)
    elsewhere = transaction("elsewhere", "CP-2")
    for tx in (old, new, done, elsewhere):
        await store.transactions.create(tx)
    assert await store.transactions.active("CP-1") == [new, old]
    assert await store.transactions.active("CP-2") == [elsewhere]
    assert await store.transactions.active("nope") == []

    stopped = replace(new, status=TransactionStatus.COMPLETED, stopped_at=at(30))
    await store.transactions.save(stopped)
    assert await store.transactions.active("CP-1") == [old]
    # A transaction may come back to Active (a corrected status).
    await store.transactions.save(new)
    assert await store.transactions.active("CP-1") == [new, old]


# -- OCPP 1.6 transaction ids ----------------------------------------------------------


async def test_next_ocpp16_id_is_positive_increasing_and_survives_reopen(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory()
    first = [await store.transactions.next_ocpp16_id() for _ in range(5)]
    assert first[0] > 0
    assert first == sorted(set(first))
    await store.close()

    reopened = await store_factory()
    later = [await reopened.transactions.next_ocpp16_id() for _ in range(3)]
    assert later[0] > first[-1]
    assert later == sorted(set(later))


async def test_concurrent_next_ocpp16_id_are_distinct(store: Store) -> None:
    values = await asyncio.gather(*(store.transactions.next_ocpp16_id() for _ in range(200)))
    assert len(set(values)) == 200
    assert min(values) > 0


# -- tokens ----------------------------------------------------------------------------


async def test_tokens_are_found_case_insensitively(store: Store) -> None:
    """OCPP id tokens are case-insensitive (ASCII): one token per uid whatever its case,
    spelled as it was last put."""
    await store.tokens.put(LocalToken(uid="AbCd01"))
    await store.tokens.put(LocalToken(uid="zz"))
    assert await store.tokens.get("abcd01") == LocalToken(uid="AbCd01")
    assert await store.tokens.get("ABCD01") == LocalToken(uid="AbCd01")
    await store.tokens.put(LocalToken(uid="ABCD01", valid=False))
    assert await store.tokens.get("abcD01") == LocalToken(uid="ABCD01", valid=False)
    assert [t.uid for t in await store.tokens.list()] == ["ABCD01", "zz"]
    # Only ASCII letters fold (1.6 CiString, 2.0.1 identifierString: ASCII text).
    await store.tokens.put(LocalToken(uid="\u00e9t\u00e9"))
    assert await store.tokens.get("\u00e9T\u00e9") == LocalToken(uid="\u00e9t\u00e9")
    assert await store.tokens.get("\u00c9T\u00c9") is None
    assert await store.tokens.delete("Zz") is True
    assert await store.tokens.delete("ZZ") is False
    assert await store.tokens.delete("abcd01") is True
    assert [t.uid for t in await store.tokens.list()] == ["\u00e9t\u00e9"]


async def test_token_round_trips_replaces_deletes_and_lists(store: Store) -> None:
    full = full_token("b")
    await store.tokens.put(full)
    await store.tokens.put(LocalToken(uid="a"))
    await store.tokens.put(LocalToken(uid="c", valid=False))
    assert await store.tokens.get("b") == full
    assert await store.tokens.get("a") == LocalToken(uid="a")
    assert await store.tokens.get("nope") is None
    assert [t.uid for t in await store.tokens.list()] == ["a", "b", "c"]

    await store.tokens.put(LocalToken(uid="b"))
    assert await store.tokens.get("b") == LocalToken(uid="b")
    assert await store.tokens.delete("b") is True
    assert await store.tokens.delete("b") is False
    assert [t.uid for t in await store.tokens.list()] == ["a", "c"]


# -- time zones --------------------------------------------------------------------------


async def test_aware_times_are_stored_as_utc(store: Store) -> None:
    plus2 = timezone(timedelta(hours=2))
    tx = transaction(started_at=T0.astimezone(plus2))
    await store.transactions.create(tx, [reading(1, timestamp=at(1).astimezone(plus2))])
    loaded = await store.transactions.get(tx.id)
    assert loaded is not None
    assert loaded.started_at == T0
    assert loaded.started_at.tzinfo == UTC
    readings = await store.transactions.readings(tx.id)
    assert readings[0].timestamp == at(1)
    assert readings[0].timestamp.tzinfo == UTC


async def test_naive_datetimes_are_refused_and_nothing_is_stored(store: Store) -> None:
    with pytest.raises(NaiveDatetimeError, match=r"Transaction\.started_at"):
        await store.transactions.create(transaction(started_at=NAIVE))
    with pytest.raises(NaiveDatetimeError, match=r"Transaction\.stopped_at"):
        await store.transactions.save(transaction(stopped_at=NAIVE))
    with pytest.raises(NaiveDatetimeError, match="since"):
        await store.transactions.list(since=NAIVE)
    with pytest.raises(NaiveDatetimeError, match="until"):
        await store.transactions.list(until=NAIVE)
    with pytest.raises(NaiveDatetimeError, match=r"Charger\.created_at"):
        await store.chargers.put(Charger(id="CP-1", created_at=NAIVE))
    with pytest.raises(NaiveDatetimeError, match=r"ChargerState\.last_heartbeat"):
        await store.charger_states.put(ChargerState(id="CP-1", last_heartbeat=NAIVE))
    with pytest.raises(NaiveDatetimeError, match=r"ConnectorState\.timestamp"):
        await store.connectors.put(connector(ts=NAIVE))
    with pytest.raises(NaiveDatetimeError, match="at"):
        await store.connectors.set_all("CP-1", ConnectorStatus.UNKNOWN, NAIVE)
    with pytest.raises(NaiveDatetimeError, match=r"LocalToken\.expiry"):
        await store.tokens.put(LocalToken(uid="t", expiry=NAIVE))
    assert await store.transactions.list() == []
    assert await store.chargers.list() == []
    assert await store.charger_states.list() == []
    assert await store.connectors.list("CP-1") == []
    assert await store.tokens.list() == []


async def test_floats_are_refused_where_decimals_belong(store: Store) -> None:
    with pytest.raises(TypeError, match="meter_start_wh"):
        await store.transactions.create(transaction(meter_start_wh=0.1))
    assert await store.transactions.get("tx-1") is None


# -- atomicity ---------------------------------------------------------------------------


async def test_a_bad_reading_leaves_no_partial_create(store: Store) -> None:
    bad = [reading(1), reading(2), MeterReading(NAIVE, Measurand.ENERGY_WH, Decimal(3))]
    with pytest.raises(NaiveDatetimeError, match=r"MeterReading\.timestamp"):
        await store.transactions.create(transaction(), bad)
    assert await store.transactions.get("tx-1") is None
    assert await store.transactions.find("CP-1", "tx-1") is None
    assert await store.transactions.readings("tx-1") == []
    assert await store.transactions.list() == []
    assert await store.transactions.active("CP-1") == []
    # The (charger_id, ocpp_id) is still free.
    assert (await store.transactions.create(transaction()))[1] is True


async def test_a_bad_reading_leaves_no_partial_save(store: Store) -> None:
    tx = transaction()
    await store.transactions.create(tx, [reading(1)])
    stopped = replace(tx, status=TransactionStatus.COMPLETED, stopped_at=at(9))
    bad = [reading(2), MeterReading(at(3), Measurand.ENERGY_WH, 3.0)]  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"MeterReading\.value"):
        await store.transactions.save(stopped, bad)
    assert await store.transactions.get(tx.id) == tx
    assert await store.transactions.readings(tx.id) == [reading(1)]
    assert await store.transactions.active("CP-1") == [tx]


async def test_readers_never_see_a_save_half_applied(store: Store) -> None:
    """Each save sets meter_stop_wh = k and appends 1500 readings (more than one Redis
    RPUSH chunk); a reader that sees version k must see all k * 1500 readings."""
    batch = 1500
    tx = transaction()
    await store.transactions.create(tx)
    rounds = 6
    checks = 0

    async def writer() -> None:
        for k in range(1, rounds + 1):
            readings = [reading(i, f"{k}.{i}") for i in range(batch)]
            await store.transactions.save(replace(tx, meter_stop_wh=Decimal(k)), readings)

    task = asyncio.create_task(writer())
    while True:
        done = task.done()
        seen = await store.transactions.get(tx.id)
        assert seen is not None
        version = int(seen.meter_stop_wh or 0)
        count = len(await store.transactions.readings(tx.id))
        assert count % batch == 0, f"{count} readings: a save was seen half applied"
        assert count >= version * batch
        checks += 1
        if done:
            break
    await task
    assert version == rounds
    assert checks >= 2


# -- concurrency -----------------------------------------------------------------------


async def test_concurrent_creates_and_saves_all_land(store: Store) -> None:
    txs = [transaction(f"tx-{i:03d}", f"CP-{i % 7}", started_at=at(i)) for i in range(200)]
    results = await asyncio.gather(
        *(store.transactions.create(tx, [reading(i)]) for i, tx in enumerate(txs))
    )
    assert all(created for _, created in results)
    saved = [replace(tx, status=TransactionStatus.COMPLETED, stopped_at=at(999)) for tx in txs]
    await asyncio.gather(
        *(store.transactions.save(tx, [reading(1000 + i)]) for i, tx in enumerate(saved))
    )
    assert await store.transactions.list(limit=1000) == saved[::-1]
    for i, tx in enumerate(saved):
        assert await store.transactions.get(tx.id) == tx
        assert await store.transactions.readings(tx.id) == [reading(i), reading(1000 + i)]
    assert all([await store.transactions.active(f"CP-{c}") == [] for c in range(7)])


async def test_concurrent_saves_of_one_transaction_keep_every_reading(store: Store) -> None:
    tx = transaction()
    await store.transactions.create(tx)
    await asyncio.gather(*(store.transactions.save(tx, [reading(i)]) for i in range(200)))
    got = await store.transactions.readings(tx.id)
    assert sorted(r.value for r in got) == sorted(reading(i).value for i in range(200))


async def test_concurrent_repeated_creates_make_one_transaction(store: Store) -> None:
    attempts = [transaction(f"attempt-{i}", ocpp_id="same") for i in range(50)]
    results = await asyncio.gather(*(store.transactions.create(tx) for tx in attempts))
    winners = [tx for tx, created in results if created]
    assert len(winners) == 1
    assert all(tx == winners[0] for tx, _ in results)
    assert await store.transactions.list() == winners


async def test_a_failing_write_does_not_affect_concurrent_ones(store: Store) -> None:
    await store.transactions.create(transaction("taken", ocpp_id="1"))
    good = [transaction(f"good-{i}", started_at=at(i)) for i in range(50)]
    results = await asyncio.gather(
        *(store.transactions.create(tx, [reading(1)]) for tx in good[:25]),
        store.transactions.save(transaction("thief", ocpp_id="1"), [reading(2)]),
        *(store.transactions.create(tx, [reading(1)]) for tx in good[25:]),
        return_exceptions=True,
    )
    assert isinstance(results[25], Conflict)
    assert [r for i, r in enumerate(results) if i != 25] == [(tx, True) for tx in good]
    assert len(await store.transactions.list(limit=1000)) == 51
    assert await store.transactions.get("thief") is None


async def test_concurrent_puts_of_every_entity_land(store: Store) -> None:
    n = 100
    await asyncio.gather(
        *(store.chargers.put(full_charger(f"CP-{i:03d}")) for i in range(n)),
        *(store.charger_states.put(full_charger_state(f"CP-{i:03d}")) for i in range(n)),
        *(store.connectors.put(connector("CP-1", evse_id=i)) for i in range(n)),
        *(store.tokens.put(full_token(f"tok-{i:03d}")) for i in range(n)),
    )
    assert await store.chargers.list() == [full_charger(f"CP-{i:03d}") for i in range(n)]
    assert await store.charger_states.list() == [
        full_charger_state(f"CP-{i:03d}") for i in range(n)
    ]
    assert await store.connectors.list("CP-1") == [connector("CP-1", evse_id=i) for i in range(n)]
    assert await store.tokens.list() == [full_token(f"tok-{i:03d}") for i in range(n)]


async def test_reopened_store_sees_everything(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.chargers.put(full_charger())
    await store.charger_states.put(full_charger_state())
    await store.connectors.put(connector())
    await store.tokens.put(full_token())
    await store.transactions.create(full_transaction(), [reading(1)])
    await store.close()

    again = await store_factory()
    assert await again.chargers.list() == [full_charger()]
    assert await again.charger_states.list() == [full_charger_state()]
    assert await again.connectors.list("CP-1") == [connector()]
    assert await again.tokens.list() == [full_token()]
    assert await again.transactions.list() == [full_transaction()]
    assert await again.transactions.readings("tx-full") == [reading(1)]


async def test_use_after_close_raises_storage_error(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.close()
    await store.close()  # closing twice is fine
    with pytest.raises(StorageError, match="closed"):
        await store.chargers.get("CP-1")
    with pytest.raises(StorageError, match="closed"):
        await store.transactions.save(transaction())
    with pytest.raises(StorageError, match="closed"):
        await store.transactions.next_ocpp16_id()


async def test_release_memory_keeps_every_record_and_fails_after_close(
    store_factory: StoreFactory,
) -> None:
    # Backend.release_memory gives back what is kept only for speed: nothing stored goes,
    # and the store goes on reading and writing after it.
    store = await store_factory()
    await store.chargers.put(full_charger())
    await store.connectors.put(connector())
    await store.backend.release_memory()
    assert await store.chargers.get("CP-1") == full_charger()
    assert await store.connectors.list("CP-1") == [connector()]
    await store.tokens.put(full_token())
    assert await store.tokens.list() == [full_token()]
    await store.close()
    with pytest.raises(StorageError, match="closed"):
        await store.backend.release_memory()
