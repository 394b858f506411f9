"""The roaming store contract (documents and outbox, gateway.storage.base); both backends."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from gateway.domain.errors import Conflict
from gateway.storage.base import (
    Document,
    DocumentStore,
    OutboxItem,
    OutboxStatus,
    StorageError,
    Store,
)
from gateway.storage.codec import MAX_JSON_DEPTH, NaiveDatetimeError

from .conftest import StoreFactory
from .samples import T0, at, document, outbox_item

NAIVE = datetime(2024, 5, 1, 12, 0)
COLLECTIONS = (
    "locations",
    "tariffs",
    "partners",
    "ocpi_tokens",
    "sessions",
    "cdrs",
    "hub_rules",
    "hub_links",
    "hub_index",
    "hub_statuses",
)

PENDING, DONE, FAILED = OutboxStatus.PENDING, OutboxStatus.DONE, OutboxStatus.FAILED

NESTED: dict[str, Any] = {
    "id": "LOC-1",
    "name": "Zürich Hauptbahnhof ⚡ 充電ステーション 🚗",
    "publish": True,
    "parking_restrictions": [],
    "directions": None,
    "coordinates": {"latitude": "47.378177", "longitude": "8.540192"},
    "evses": [
        {
            "uid": "E1",
            "status": "AVAILABLE",
            "connectors": [{"id": "1", "max_voltage": 400, "max_amperage": 32.5}],
            "capabilities": ["RFID_READER", "REMOTE_START_STOP_CAPABLE"],
        },
        {"uid": "E2", "status": "CHARGING", "connectors": [], "floor_level": ""},
    ],
    "numbers": [0, -1, 2**63, -(2**70), 0.1, -0.0, 1e300, 5e-324, 1.0],
    "escapes": 'quote " backslash \\ newline \n tab \t nul \x00 ctrl \x1f',
    "lone_surrogate": "\ud800",
    "ключ": {"深い": {"deeper": [[[{"x": "y"}]]]}},
    "": "empty key",
}


def nested(depth: int) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for _ in range(depth - 1):
        data = {"a": data}
    return data


async def keys_of(
    docs: DocumentStore, **filters: Any
) -> tuple[list[str], int]:  # (page keys, total)
    page, total = await docs.list(**filters)
    return [doc.key for doc in page], total


# -- documents: round trip, validation -----------------------------------------------------


async def test_document_round_trips_nested_json_and_unicode(store: Store) -> None:
    doc = Document(key="LOC-1 ü/漢字", data=NESTED, last_updated=T0, owner="NL*ABC")
    await store.locations.put(doc)
    got = await store.locations.get(doc.key)
    assert got == doc
    assert got is not None
    assert got.data["numbers"] == NESTED["numbers"]
    assert [type(n) for n in got.data["numbers"]] == [type(n) for n in NESTED["numbers"]]
    assert math.copysign(1.0, got.data["numbers"][5]) == -1.0  # -0.0 stays negative
    assert got.last_updated.tzinfo == UTC
    assert await store.locations.get("LOC-2") is None


async def test_document_without_owner_and_with_empty_data(store: Store) -> None:
    doc = Document(key="T1", data={}, last_updated=T0)
    await store.tariffs.put(doc)
    assert await store.tariffs.get("T1") == doc


async def test_document_times_come_back_as_utc(store: Store) -> None:
    plus2 = timezone(timedelta(hours=2))
    await store.sessions.put(Document("S1", {}, T0.astimezone(plus2)))
    got = await store.sessions.get("S1")
    assert got is not None
    assert got.last_updated == T0
    assert got.last_updated.tzinfo == UTC
    assert got.last_updated.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("data", "error", "where"),
    [
        ({"price": Decimal("0.25")}, TypeError, r"Document\.data\['price'\]: a Decimal"),
        ({"at": T0}, TypeError, r"\['at'\]: a datetime"),
        ({"list": [1, (2, 3)]}, TypeError, r"\['list'\]\[1\]: a tuple"),
        ({"set": {1}}, TypeError, r"\['set'\]: a set"),
        ({"bytes": b"x"}, TypeError, "a bytes"),
        ({"deep": {1: "int key"}}, TypeError, r"\['deep'\]: key 1 is a int"),
        ({"a": [{"b": [None, object()]}]}, TypeError, r"\['a'\]\[0\]\['b'\]\[1\]"),
        ({"nan": math.nan}, ValueError, "nan is not valid JSON"),
        ({"inf": [math.inf]}, ValueError, r"\['inf'\]\[0\]: inf"),
        (nested(MAX_JSON_DEPTH + 1), ValueError, "nested deeper"),
    ],
)
async def test_non_json_data_is_refused_before_writing(
    store: Store, data: dict[str, Any], error: type[Exception], where: str
) -> None:
    with pytest.raises(error, match=where):
        await store.locations.put(Document("LOC-1", data, T0), enqueue=[outbox_item("i1")])
    assert await store.locations.get("LOC-1") is None
    assert await store.locations.list() == ([], 0)
    assert await store.outbox.list() == []


async def test_circular_data_is_refused(store: Store) -> None:
    data: dict[str, Any] = {"id": "x"}
    data["self"] = data
    with pytest.raises(ValueError, match="circular"):
        await store.locations.put(Document("LOC-1", data, T0))
    assert await store.locations.get("LOC-1") is None


async def test_deepest_allowed_nesting_round_trips(store: Store) -> None:
    doc = Document("deep", nested(MAX_JSON_DEPTH), T0)
    await store.locations.put(doc)
    assert await store.locations.get("deep") == doc


async def test_a_bad_document_is_refused(store: Store) -> None:
    with pytest.raises(TypeError, match=r"Document\.data: expected dict"):
        await store.locations.put(Document("LOC-1", [1], T0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Document\.key"):
        await store.locations.put(Document(1, {}, T0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Document\.owner"):
        await store.locations.put(Document("LOC-1", {}, T0, owner=7))  # type: ignore[arg-type]
    with pytest.raises(NaiveDatetimeError, match=r"Document\.last_updated"):
        await store.locations.put(Document("LOC-1", {}, NAIVE))
    assert await store.locations.list() == ([], 0)


async def test_str_and_int_subclasses_come_back_as_plain_values(store: Store) -> None:
    await store.locations.put(Document("LOC-1", {"status": PENDING, "flag": True}, T0))
    got = await store.locations.get("LOC-1")
    assert got is not None
    assert got.data == {"status": "pending", "flag": True}
    assert type(got.data["status"]) is str
    assert got.data["flag"] is True


# -- documents: put replaces, delete ---------------------------------------------------


async def test_put_replaces_data_owner_and_time(store: Store) -> None:
    await store.locations.put(document("L1", 10, owner="A", data={"v": 1}))
    await store.locations.put(document("L2", 20, owner="A"))
    replaced = document("L1", 30, owner="B", data={"v": 2})
    await store.locations.put(replaced)
    assert await store.locations.get("L1") == replaced
    assert await keys_of(store.locations) == (["L2", "L1"], 2)
    assert await keys_of(store.locations, owner="A") == (["L2"], 1)
    assert await keys_of(store.locations, owner="B") == (["L1"], 1)
    assert await keys_of(store.locations, date_to=at(25)) == (["L2"], 1)
    # Dropping the owner takes it out of every owner's listing.
    await store.locations.put(document("L1", 40))
    assert await keys_of(store.locations, owner="B") == ([], 0)
    assert await keys_of(store.locations) == (["L2", "L1"], 2)
    # And giving one back puts it in.
    await store.locations.put(document("L1", 5, owner="A"))
    assert await keys_of(store.locations, owner="A") == (["L1", "L2"], 2)


async def test_delete_reports_whether_it_existed_and_unlists(store: Store) -> None:
    await store.tariffs.put(document("T1", 1, owner="A"))
    await store.tariffs.put(document("T2", 2, owner="A"))
    assert await store.tariffs.delete("T1") is True
    assert await store.tariffs.get("T1") is None
    assert await store.tariffs.delete("T1") is False
    assert await keys_of(store.tariffs) == (["T2"], 1)
    assert await keys_of(store.tariffs, owner="A") == (["T2"], 1)
    await store.tariffs.put(document("T1", 3))  # a deleted key can come back
    assert await keys_of(store.tariffs) == (["T2", "T1"], 2)
    assert await keys_of(store.tariffs, owner="A") == (["T2"], 1)


# -- documents: list -----------------------------------------------------------------------


@pytest.fixture
async def listed(store: Store) -> list[str]:
    """Eight locations of two owners (and none); returns their keys in listing order."""
    specs = [
        ("d", 0, "A"),
        ("c", 10, "B"),
        ("b", 20, None),
        ("t-é", 30, "A"),  # four at the same microsecond: ordered by key (UTF-8 bytes)
        ("t-z", 30, "B"),
        ("t-Z", 30, "A"),
        ("t-😀", 30, "A"),
        ("a", 40, "B"),
    ]
    for key, seconds, owner in reversed(specs):
        await store.locations.put(document(key, seconds, owner))
    return ["d", "c", "b", "t-Z", "t-z", "t-é", "t-😀", "a"]


async def test_list_orders_by_last_updated_then_key(store: Store, listed: list[str]) -> None:
    assert await keys_of(store.locations) == (listed, 8)
    page, _ = await store.locations.list()
    assert page[0] == document("d", 0, "A")


async def test_list_pages_with_offset_and_limit_and_counts_all(
    store: Store, listed: list[str]
) -> None:
    assert await keys_of(store.locations, limit=3) == (listed[:3], 8)
    assert await keys_of(store.locations, offset=3, limit=3) == (listed[3:6], 8)
    assert await keys_of(store.locations, offset=6, limit=3) == (listed[6:], 8)
    assert await keys_of(store.locations, offset=8) == ([], 8)
    assert await keys_of(store.locations, offset=100) == ([], 8)
    assert await keys_of(store.locations, limit=0) == ([], 8)
    # Paging through the tie group at 30 s neither skips nor repeats a document.
    pages = [await keys_of(store.locations, offset=o, limit=1) for o in range(8)]
    assert [keys[0] for keys, _ in pages] == listed
    with pytest.raises(ValueError, match="limit"):
        await store.locations.list(limit=-1)
    with pytest.raises(ValueError, match="offset"):
        await store.locations.list(offset=-1)


async def test_list_date_from_is_inclusive_and_date_to_exclusive(
    store: Store, listed: list[str]
) -> None:
    assert await keys_of(store.locations, date_from=at(30)) == (listed[3:], 5)
    assert await keys_of(store.locations, date_to=at(30)) == (listed[:3], 3)
    assert await keys_of(store.locations, date_from=at(10), date_to=at(40)) == (listed[1:7], 6)
    assert await keys_of(store.locations, date_from=at(30), date_to=at(30)) == ([], 0)
    assert await keys_of(store.locations, date_from=at(50), date_to=at(0)) == ([], 0)
    # A microsecond matters.
    us = timedelta(microseconds=1)
    assert await keys_of(store.locations, date_from=at(30) + us) == (["a"], 1)
    assert await keys_of(store.locations, date_to=at(30) + us) == (listed[:7], 7)
    # With paging: the total is of the whole filtered range.
    assert await keys_of(store.locations, date_from=at(10), offset=1, limit=2) == (
        listed[2:4],
        7,
    )
    # Another time zone is the same instant.
    plus2 = timezone(timedelta(hours=2))
    assert await keys_of(store.locations, date_from=at(30).astimezone(plus2)) == (
        listed[3:],
        5,
    )


async def test_list_filters_by_owner(store: Store, listed: list[str]) -> None:
    assert await keys_of(store.locations, owner="A") == (["d", "t-Z", "t-é", "t-😀"], 4)
    assert await keys_of(store.locations, owner="B") == (["c", "t-z", "a"], 3)
    assert await keys_of(store.locations, owner="A", date_from=at(30), limit=2) == (
        ["t-Z", "t-é"],
        3,
    )
    assert await keys_of(store.locations, owner="B", date_to=at(40), offset=1) == (["t-z"], 2)
    assert await keys_of(store.locations, owner="nobody") == ([], 0)
    assert await keys_of(store.locations, owner="") == ([], 0)


async def test_list_refuses_naive_dates(store: Store) -> None:
    with pytest.raises(NaiveDatetimeError, match="date_from"):
        await store.locations.list(date_from=NAIVE)
    with pytest.raises(NaiveDatetimeError, match="date_to"):
        await store.locations.list(date_to=NAIVE)


async def test_document_list_default_limit_is_100(store: Store) -> None:
    await asyncio.gather(*(store.cdrs.put(document(f"c{i:03d}", i)) for i in range(105)))
    page, total = await store.cdrs.list()
    assert [doc.key for doc in page] == [f"c{i:03d}" for i in range(100)]
    assert total == 105


# -- documents: collections ------------------------------------------------------------


async def test_collections_are_isolated(store: Store) -> None:
    for i, name in enumerate(COLLECTIONS):
        docs: DocumentStore = getattr(store, name)
        await docs.put(document("same-key", i, owner="A", data={"in": name}))
        await docs.put(document(f"only-{name}", i, owner="A"))
    for i, name in enumerate(COLLECTIONS):
        docs = getattr(store, name)
        assert await docs.get("same-key") == document("same-key", i, "A", {"in": name})
        assert await keys_of(docs) == ([f"only-{name}", "same-key"], 2)
        assert await keys_of(docs, owner="A") == ([f"only-{name}", "same-key"], 2)
    assert await store.sessions.delete("same-key") is True
    assert await store.sessions.get("same-key") is None
    assert await store.cdrs.get("same-key") == document("same-key", 5, "A", {"in": "cdrs"})
    assert await keys_of(store.locations, owner="A") == (["only-locations", "same-key"], 2)
    assert await store.tariffs.delete("only-locations") is False
    assert await store.locations.get("only-locations") is not None


# -- documents with outbox items -------------------------------------------------------


async def test_put_with_enqueue_writes_both(store: Store) -> None:
    items = [outbox_item("i1", "location:L1"), outbox_item("i2", "location:L1", "partner-2")]
    await store.locations.put(document("L1"), enqueue=items)
    assert await store.locations.get("L1") == document("L1")
    stored = await store.outbox.list()
    assert [item.id for item in stored] == ["i1", "i2"]
    assert stored[0].seq < stored[1].seq
    assert stored == [replace(item, seq=s.seq) for item, s in zip(items, stored, strict=True)]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: [outbox_item("new"), outbox_item("taken")], id="id-taken"),
        pytest.param(lambda: [outbox_item("new"), outbox_item("new")], id="id-twice"),
        pytest.param(lambda: [outbox_item("new"), outbox_item("n2", due_at=NAIVE)], id="naive"),
        pytest.param(
            lambda: [outbox_item("new"), outbox_item("n2", created_at=NAIVE)], id="naive-created"
        ),
        pytest.param(
            lambda: [outbox_item("new"), outbox_item("n2", body={"x": Decimal(1)})], id="body"
        ),
        pytest.param(lambda: [outbox_item("new"), outbox_item("n2", status=FAILED)], id="status"),
    ],
)
async def test_a_failing_enqueue_leaves_the_document_unwritten(store: Store, bad: Any) -> None:
    await store.outbox.enqueue([outbox_item("taken", "other-key")])
    await store.locations.put(document("OLD", 1, owner="A", data={"v": 1}))
    error = (Conflict, NaiveDatetimeError, TypeError, ValueError)

    with pytest.raises(error):  # a new document
        await store.locations.put(document("NEW", 2, owner="A"), enqueue=bad())
    with pytest.raises(error):  # a replacement
        await store.locations.put(document("OLD", 3, owner="B", data={"v": 2}), enqueue=bad())
    with pytest.raises(error):  # a delete
        await store.locations.delete("OLD", enqueue=bad())

    assert await store.locations.get("NEW") is None
    assert await store.locations.get("OLD") == document("OLD", 1, owner="A", data={"v": 1})
    assert await keys_of(store.locations) == (["OLD"], 1)
    assert await keys_of(store.locations, owner="A") == (["OLD"], 1)
    assert await keys_of(store.locations, owner="B") == ([], 0)
    assert [item.id for item in await store.outbox.list()] == ["taken"]
    assert [item.id for item in await store.outbox.due(at(1000))] == ["taken"]
    # The ids refused with the document are still free.
    assert [i.id for i in await store.outbox.enqueue([outbox_item("new"), outbox_item("n2")])] == [
        "new",
        "n2",
    ]


async def test_delete_with_enqueue_enqueues_only_when_it_existed(store: Store) -> None:
    await store.sessions.put(document("S1"))
    assert await store.sessions.delete("S1", enqueue=[outbox_item("gone")]) is True
    assert await store.sessions.delete("S1", enqueue=[outbox_item("again")]) is False
    assert [item.id for item in await store.outbox.list()] == ["gone"]
    # A missing document enqueues nothing, even items that would be refused.
    assert await store.sessions.delete("S1", enqueue=[outbox_item("gone")]) is False


async def test_concurrent_document_writes_with_items_all_land(store: Store) -> None:
    await asyncio.gather(
        *(
            store.sessions.put(
                document(f"S{i:03d}", i, owner=f"P{i % 3}"),
                enqueue=[outbox_item(f"i{i:03d}", f"session:S{i:03d}")],
            )
            for i in range(150)
        )
    )
    assert (await store.sessions.list(limit=1000))[1] == 150
    assert (await store.sessions.list(owner="P1", limit=1000))[1] == 50
    items = await store.outbox.list(limit=1000)
    assert len(items) == 150
    assert len({item.seq for item in items}) == 150
    assert len(await store.outbox.due(at(1), limit=1000)) == 150


# -- outbox: enqueue, get, list ------------------------------------------------------------


async def test_enqueue_assigns_increasing_seqs_and_round_trips(store: Store) -> None:
    plus2 = timezone(timedelta(hours=2))
    full = outbox_item(
        "full",
        method="PATCH",
        body={"kwh": 1.5, "nested": [{"ü": None}], "ok": True},
        created_at=at(-5).astimezone(plus2),
        attempts=2,
        last_error="earlier: 502",
        module="sessions",
        meta={"kind": "command_result", "response_url": "https://x/y", "n": [1, 2]},
    )
    first = await store.outbox.enqueue([full, outbox_item("b", body=None)])
    second = await store.outbox.enqueue([outbox_item("c", "other")])
    seqs = [item.seq for item in first + second]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3
    assert seqs[0] > 0
    assert first[0] == replace(full, seq=seqs[0])
    assert first[0].created_at.tzinfo == UTC
    for item in first + second:
        assert await store.outbox.get(item.id) == item
    got = await store.outbox.get("full")
    assert got is not None
    assert got.created_at.tzinfo == UTC
    assert got.next_attempt_at.tzinfo == UTC
    assert got.status is PENDING
    assert await store.outbox.get("nope") is None
    assert await store.outbox.enqueue([]) == []


async def test_enqueue_refuses_and_stores_nothing(store: Store) -> None:
    await store.outbox.enqueue([outbox_item("taken")])
    with pytest.raises(Conflict, match="taken"):
        await store.outbox.enqueue([outbox_item("a"), outbox_item("taken")])
    with pytest.raises(Conflict, match="'a'"):
        await store.outbox.enqueue([outbox_item("a"), outbox_item("b"), outbox_item("a")])
    with pytest.raises(ValueError, match="pending"):
        await store.outbox.enqueue([outbox_item("a"), outbox_item("b", status=DONE)])
    with pytest.raises(ValueError, match="attempts"):
        await store.outbox.enqueue([outbox_item("a", attempts=-1)])
    with pytest.raises(NaiveDatetimeError, match=r"OutboxItem\.next_attempt_at"):
        await store.outbox.enqueue([outbox_item("a"), outbox_item("b", due_at=NAIVE)])
    with pytest.raises(TypeError, match=r"OutboxItem\.meta\['x'\]"):
        await store.outbox.enqueue([outbox_item("a", meta={"x": T0})])
    with pytest.raises(TypeError, match=r"OutboxItem\.body: expected dict"):
        await store.outbox.enqueue([outbox_item("a", body=[1])])
    with pytest.raises(TypeError, match=r"OutboxItem\.url"):
        await store.outbox.enqueue([outbox_item("a", url=None)])
    assert [item.id for item in await store.outbox.list()] == ["taken"]


async def test_ids_are_never_reused_even_when_done(store: Store) -> None:
    await store.outbox.enqueue([outbox_item("x")])
    await store.outbox.complete("x")
    with pytest.raises(Conflict):
        await store.outbox.enqueue([outbox_item("x")])
    item = await store.outbox.get("x")
    assert item is not None
    assert item.status is DONE


async def test_list_by_status_and_partner_in_seq_order(store: Store) -> None:
    await store.outbox.enqueue(
        [
            outbox_item("a1", "k1", "A"),
            outbox_item("b1", "k2", "B"),
            outbox_item("a2", "k3", "A"),
            outbox_item("b2", "k4", "B"),
            outbox_item("a3", "k5", "A"),
        ]
    )
    await store.outbox.complete("a2")
    await store.outbox.fail("a3", "404")
    await store.outbox.fail("b2", "404")

    async def listed(**filters: Any) -> list[str]:
        return [item.id for item in await store.outbox.list(**filters)]

    assert await listed() == ["a1", "b1", "a2", "b2", "a3"]
    assert await listed(status=PENDING) == ["a1", "b1"]
    assert await listed(status=DONE) == ["a2"]
    assert await listed(status=FAILED) == ["b2", "a3"]
    assert await listed(partner_id="A") == ["a1", "a2", "a3"]
    assert await listed(partner_id="A", status=FAILED) == ["a3"]
    assert await listed(partner_id="B", status=PENDING) == ["b1"]
    assert await listed(partner_id="C") == []
    assert await listed(offset=1, limit=3) == ["b1", "a2", "b2"]
    assert await listed(partner_id="A", offset=1, limit=1) == ["a2"]
    assert await listed(status=FAILED, offset=1) == ["a3"]
    assert await listed(limit=0) == []
    assert await listed(offset=5) == []
    with pytest.raises(ValueError, match="limit"):
        await store.outbox.list(limit=-1)
    with pytest.raises(ValueError, match="offset"):
        await store.outbox.list(offset=-1)


async def test_outbox_list_and_due_default_limit_is_100(store: Store) -> None:
    await store.outbox.enqueue([outbox_item(f"i{i:03d}", f"k{i}") for i in range(105)])
    assert [item.id for item in await store.outbox.list()] == [f"i{i:03d}" for i in range(100)]
    assert len(await store.outbox.due(at(0))) == 100


# -- outbox: due and the head of each ordering key -------------------------------------


async def due_ids(store: Store, now: datetime, **kwargs: Any) -> list[str]:
    return [item.id for item in await store.outbox.due(now, **kwargs)]


async def test_due_gives_only_the_head_of_each_key(store: Store) -> None:
    await store.outbox.enqueue(
        [
            outbox_item("s1-a", "session:1", due_at=at(0)),
            outbox_item("s1-b", "session:1", due_at=at(-100)),  # earlier, but not the head
            outbox_item("s2-a", "session:2", due_at=at(5)),
            outbox_item("s1-c", "session:1", due_at=at(0)),
        ]
    )
    await store.outbox.enqueue([outbox_item("s3-a", "session:3", due_at=at(-1))])
    assert await due_ids(store, at(0)) == ["s3-a", "s1-a"]
    assert await due_ids(store, at(5)) == ["s3-a", "s1-a", "s2-a"]
    assert await due_ids(store, at(-1)) == ["s3-a"]
    assert await due_ids(store, at(-2)) == []


async def test_due_respects_next_attempt_at_to_the_microsecond(store: Store) -> None:
    await store.outbox.enqueue([outbox_item("x", due_at=at(10))])
    assert await due_ids(store, at(10) - timedelta(microseconds=1)) == []
    assert await due_ids(store, at(10)) == ["x"]  # inclusive
    plus2 = timezone(timedelta(hours=2))
    assert await due_ids(store, at(10).astimezone(plus2)) == ["x"]
    with pytest.raises(NaiveDatetimeError, match="now"):
        await store.outbox.due(NAIVE)


async def test_due_orders_by_time_then_seq_and_honours_limit(store: Store) -> None:
    # Equal times come by seq (not by id): z before a.
    await store.outbox.enqueue(
        [
            outbox_item("z", "k1", due_at=at(1)),
            outbox_item("a", "k2", due_at=at(1)),
            outbox_item("m", "k3", due_at=at(0)),
            outbox_item("b", "k4", due_at=at(1)),
        ]
    )
    assert await due_ids(store, at(1)) == ["m", "z", "a", "b"]
    assert await due_ids(store, at(1), limit=2) == ["m", "z"]
    assert await due_ids(store, at(1), limit=3) == ["m", "z", "a"]
    assert await due_ids(store, at(1), limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        await store.outbox.due(at(1), limit=-1)


async def test_complete_advances_the_head_of_its_key(store: Store) -> None:
    await store.outbox.enqueue(
        [
            outbox_item("a1", "A", due_at=at(0)),
            outbox_item("a2", "A", due_at=at(0)),
            outbox_item("a3", "A", due_at=at(50)),
            outbox_item("b1", "B", due_at=at(0)),
        ]
    )
    assert await due_ids(store, at(10)) == ["a1", "b1"]
    await store.outbox.complete("a1")
    assert await due_ids(store, at(10)) == ["a2", "b1"]
    await store.outbox.complete("a2")
    assert await due_ids(store, at(10)) == ["b1"]  # a3 heads A but is not due yet
    assert await due_ids(store, at(50)) == ["b1", "a3"]
    await store.outbox.complete("a3")
    await store.outbox.complete("b1")
    assert await due_ids(store, at(1000)) == []
    assert [item.status for item in await store.outbox.list()] == [DONE] * 4
    # A new item of a drained key is its head at once.
    await store.outbox.enqueue([outbox_item("a4", "A", due_at=at(0))])
    assert await due_ids(store, at(10)) == ["a4"]


async def test_complete_of_a_non_head_keeps_the_head(store: Store) -> None:
    await store.outbox.enqueue([outbox_item(f"i{n}", "K") for n in range(3)])
    await store.outbox.complete("i1")  # delivered out of band
    assert await due_ids(store, at(0)) == ["i0"]
    await store.outbox.complete("i0")
    assert await due_ids(store, at(0)) == ["i2"]  # i1 is done: skipped


async def test_complete_is_idempotent_and_ignores_unknown_ids(store: Store) -> None:
    await store.outbox.enqueue([outbox_item("x", "K"), outbox_item("y", "K")])
    await store.outbox.complete("x")
    await store.outbox.complete("x")
    await store.outbox.complete("nope")
    assert await due_ids(store, at(0)) == ["y"]
    x = await store.outbox.get("x")
    assert x is not None
    assert x.status is DONE
    assert x.attempts == 0


async def test_retry_later_counts_records_and_reschedules(store: Store) -> None:
    await store.outbox.enqueue(
        [outbox_item("x", "K", due_at=at(0)), outbox_item("y", "K", due_at=at(0))]
    )
    await store.outbox.retry_later("x", at(60), "HTTP 503")
    x = await store.outbox.get("x")
    assert x is not None
    assert (x.status, x.attempts, x.last_error, x.next_attempt_at) == (
        PENDING,
        1,
        "HTTP 503",
        at(60),
    )
    # Still the head: nothing of K is due before then, y included.
    assert await due_ids(store, at(59)) == []
    assert await due_ids(store, at(60)) == ["x"]
    await store.outbox.retry_later("x", at(30), "timeout")  # may move earlier too
    x = await store.outbox.get("x")
    assert x is not None
    assert (x.attempts, x.last_error, x.next_attempt_at) == (2, "timeout", at(30))
    assert await due_ids(store, at(30)) == ["x"]
    # A non-head pending item can be rescheduled; it takes effect once it heads.
    await store.outbox.retry_later("y", at(100), "not yet")
    await store.outbox.complete("x")
    assert await due_ids(store, at(99)) == []
    assert await due_ids(store, at(100)) == ["y"]
    with pytest.raises(NaiveDatetimeError, match="next_attempt_at"):
        await store.outbox.retry_later("y", NAIVE, "x")


async def test_retry_later_and_fail_leave_other_states_alone(store: Store) -> None:
    await store.outbox.enqueue([outbox_item("done"), outbox_item("failed", "F")])
    await store.outbox.complete("done")
    await store.outbox.fail("failed", "gone")
    await store.outbox.retry_later("done", at(60), "late answer")
    await store.outbox.fail("done", "late answer")
    await store.outbox.retry_later("failed", at(60), "late answer")
    await store.outbox.fail("failed", "late answer")
    await store.outbox.retry_later("nope", at(60), "x")
    await store.outbox.fail("nope", "x")
    done = await store.outbox.get("done")
    failed = await store.outbox.get("failed")
    assert done is not None and failed is not None
    assert (done.status, done.attempts, done.last_error, done.next_attempt_at) == (
        DONE,
        0,
        None,
        T0,
    )
    assert (failed.status, failed.attempts, failed.last_error) == (FAILED, 1, "gone")
    assert await store.outbox.get("nope") is None


async def test_fail_blocks_its_key_while_other_keys_flow(store: Store) -> None:
    await store.outbox.enqueue(
        [
            outbox_item("a1", "A"),
            outbox_item("a2", "A"),
            outbox_item("b1", "B"),
            outbox_item("b2", "B"),
        ]
    )
    await store.outbox.fail("a1", "HTTP 400: bad session")
    a1 = await store.outbox.get("a1")
    assert a1 is not None
    assert (a1.status, a1.attempts, a1.last_error) == (FAILED, 1, "HTTP 400: bad session")
    assert await due_ids(store, at(1000)) == ["b1"]
    await store.outbox.complete("b1")
    assert await due_ids(store, at(1000)) == ["b2"]
    # New items of the blocked key wait too.
    await store.outbox.enqueue([outbox_item("a3", "A")])
    assert await due_ids(store, at(1000)) == ["b2"]


async def test_a_failed_non_head_blocks_once_it_heads(store: Store) -> None:
    await store.outbox.enqueue([outbox_item("a1", "A"), outbox_item("a2", "A")])
    await store.outbox.fail("a2", "bad")
    assert await due_ids(store, at(0)) == ["a1"]
    await store.outbox.complete("a1")
    assert await due_ids(store, at(1000)) == []
    assert await store.outbox.discard("a2") is True
    assert await due_ids(store, at(1000)) == []


async def test_replay_makes_a_failed_item_due_again(store: Store) -> None:
    await store.outbox.enqueue([outbox_item("a1", "A", due_at=at(0)), outbox_item("a2", "A")])
    await store.outbox.retry_later("a1", at(10), "503")
    await store.outbox.fail("a1", "too many attempts")
    assert await store.outbox.replay("a1", at(500)) is True
    a1 = await store.outbox.get("a1")
    assert a1 is not None
    assert (a1.status, a1.attempts, a1.last_error, a1.next_attempt_at) == (
        PENDING,
        2,
        "too many attempts",
        at(500),
    )
    assert await due_ids(store, at(499)) == []
    assert await due_ids(store, at(500)) == ["a1"]
    assert await store.outbox.replay("a1", at(600)) is False  # pending: not replayable
    assert await store.outbox.replay("a2", at(600)) is False
    assert await store.outbox.replay("nope", at(600)) is False
    await store.outbox.complete("a1")
    assert await due_ids(store, at(600)) == ["a2"]
    assert await store.outbox.replay("a1", at(600)) is False  # done
    with pytest.raises(NaiveDatetimeError, match="now"):
        await store.outbox.replay("a2", NAIVE)


async def test_replay_of_a_failed_non_head_waits_for_its_turn(store: Store) -> None:
    await store.outbox.enqueue([outbox_item("a1", "A"), outbox_item("a2", "A")])
    await store.outbox.fail("a2", "bad")
    assert await store.outbox.replay("a2", at(5)) is True
    assert await due_ids(store, at(5)) == ["a1"]
    await store.outbox.complete("a1")
    assert await due_ids(store, at(5)) == ["a2"]


async def test_discard_unblocks_the_key(store: Store) -> None:
    await store.outbox.enqueue(
        [outbox_item("a1", "A"), outbox_item("a2", "A", due_at=at(3)), outbox_item("b1", "B")]
    )
    assert await store.outbox.discard("a1") is False  # pending: not discardable
    await store.outbox.fail("a1", "bad")
    assert await due_ids(store, at(5)) == ["b1"]
    assert await store.outbox.discard("a1") is True
    assert await due_ids(store, at(5)) == ["b1", "a2"]
    a1 = await store.outbox.get("a1")
    assert a1 is not None
    assert (a1.status, a1.last_error) == (DONE, "bad")
    assert await store.outbox.discard("a1") is False
    assert await store.outbox.discard("nope") is False


async def test_a_delivery_story_over_many_keys(store: Store) -> None:
    """A worker loop: due -> deliver (complete / retry / fail) until nothing is left;
    every key's items are delivered exactly once and in seq order."""
    keys = [f"session:{k}" for k in range(7)]
    items = [outbox_item(f"i{n:03d}", keys[n % 7], due_at=at(n % 3)) for n in range(70)]
    stored = await store.outbox.enqueue(items)
    delivered: list[OutboxItem] = []
    now = at(0)
    for _ in range(200):
        batch = await store.outbox.due(now, limit=5)
        assert len({item.ordering_key for item in batch}) == len(batch)
        for item in batch:
            n = int(item.id[1:])
            if n % 11 == 0 and item.attempts == 0:
                await store.outbox.retry_later(item.id, now + timedelta(seconds=1), "503")
            elif n % 13 == 0 and item.status is PENDING and item.attempts < 2:
                await store.outbox.fail(item.id, "400")
                assert await store.outbox.replay(item.id, now) is True
            else:
                delivered.append(item)
                await store.outbox.complete(item.id)
        if len(delivered) == 70:
            break
        now += timedelta(seconds=1)
    else:
        pytest.fail(f"only {len(delivered)} delivered after 200 rounds")
    for key in keys:
        seqs = [item.seq for item in delivered if item.ordering_key == key]
        assert seqs == sorted(seqs)
        assert len(seqs) == 10
    assert sorted(item.id for item in delivered) == sorted(item.id for item in stored)
    assert await store.outbox.list(status=PENDING) == []
    assert await store.outbox.due(at(10_000)) == []


# -- reopen, concurrency, close --------------------------------------------------------


async def test_documents_and_outbox_survive_reopen(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.locations.put(
        Document("L1", NESTED, T0, owner="A"), enqueue=[outbox_item("a1", "A")]
    )
    await store.sessions.put(document("S1", 5, owner="A"))
    first = await store.outbox.enqueue(
        [outbox_item("a2", "A"), outbox_item("b1", "B"), outbox_item("c1", "C")]
    )
    await store.outbox.fail("b1", "bad")
    await store.outbox.retry_later("c1", at(30), "503")
    before = await store.outbox.list()
    await store.close()

    again = await store_factory()
    assert await again.locations.get("L1") == Document("L1", NESTED, T0, owner="A")
    assert await again.locations.list(owner="A") == ([Document("L1", NESTED, T0, "A")], 1)
    assert await again.sessions.list(date_from=at(5)) == ([document("S1", 5, "A")], 1)
    assert await again.outbox.list() == before
    assert await due_ids(again, at(29)) == ["a1"]
    await again.outbox.complete("a1")
    assert await due_ids(again, at(30)) == ["a2", "c1"]
    later = await again.outbox.enqueue([outbox_item("d1", "D")])
    assert later[0].seq > max(item.seq for item in first)
    assert await again.outbox.discard("b1") is True


async def test_concurrent_enqueues_get_distinct_seqs(store: Store) -> None:
    results = await asyncio.gather(
        *(store.outbox.enqueue([outbox_item(f"i{n:03d}", f"k{n % 10}")]) for n in range(200))
    )
    seqs = [items[0].seq for items in results]
    assert len(set(seqs)) == 200
    assert min(seqs) > 0
    listed = await store.outbox.list(limit=1000)
    assert [item.seq for item in listed] == sorted(seqs)
    # Per key, the head is the one with the lowest seq.
    heads = await store.outbox.due(at(0), limit=1000)
    assert len(heads) == 10
    for head in heads:
        assert head.seq == min(i.seq for i in listed if i.ordering_key == head.ordering_key)


async def test_concurrent_completes_of_one_key_leave_a_consistent_head(store: Store) -> None:
    await store.outbox.enqueue([outbox_item(f"i{n:03d}", "K") for n in range(50)])
    await asyncio.gather(*(store.outbox.complete(f"i{n:03d}") for n in range(0, 50, 2)))
    assert await due_ids(store, at(0)) == ["i001"]
    await asyncio.gather(*(store.outbox.complete(f"i{n:03d}") for n in range(1, 49, 2)))
    assert await due_ids(store, at(0)) == ["i049"]


async def test_roaming_use_after_close_raises_storage_error(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.close()
    with pytest.raises(StorageError, match="closed"):
        await store.locations.put(document())
    with pytest.raises(StorageError, match="closed"):
        await store.cdrs.list()
    with pytest.raises(StorageError, match="closed"):
        await store.outbox.enqueue([outbox_item()])
    with pytest.raises(StorageError, match="closed"):
        await store.outbox.due(at(0))


# -- outbox: completion times and purging DONE items -------------------------------------


async def test_complete_and_discard_record_the_completion_time(store: Store) -> None:
    await store.outbox.enqueue(
        [
            outbox_item("given", "A"),
            outbox_item("default", "B", due_at=at(7)),
            outbox_item("discarded", "C"),
            outbox_item("pending", "D"),
        ]
    )
    cet = timezone(timedelta(hours=1))
    await store.outbox.complete("given", at=at(60).astimezone(cet))
    await store.outbox.complete("given", at=at(90))  # already done: nothing changes
    await store.outbox.complete("default")  # no time given: its next_attempt_at
    await store.outbox.fail("discarded", "400")
    assert (await store.outbox.get("discarded")).completed_at is None  # type: ignore[union-attr]
    assert await store.outbox.discard("discarded", at=at(120)) is True
    got = {item.id: item.completed_at for item in await store.outbox.list()}
    assert got == {"given": at(60), "default": at(7), "discarded": at(120), "pending": None}
    assert got["given"] is not None and got["given"].tzinfo is UTC
    with pytest.raises(NaiveDatetimeError, match="at"):
        await store.outbox.complete("pending", at=NAIVE)
    with pytest.raises(NaiveDatetimeError, match="at"):
        await store.outbox.discard("pending", at=NAIVE)
    pending = await store.outbox.get("pending")
    assert pending is not None and (pending.status, pending.completed_at) == (PENDING, None)
    with pytest.raises(ValueError, match="completed_at"):
        await store.outbox.enqueue([outbox_item("new", completed_at=at(0))])


async def done_at(store: Store, times: dict[str, float]) -> None:
    """Enqueue one item per key (in the given order) and complete each at its time."""
    await store.outbox.enqueue([outbox_item(item_id, f"k-{item_id}") for item_id in times])
    for item_id, seconds in times.items():
        await store.outbox.complete(item_id, at=at(seconds))


async def test_purge_done_respects_before_and_limit_oldest_first(store: Store) -> None:
    await done_at(store, {"d30": 30, "d10": 10, "d20": 20, "d20b": 20, "d40": 40})
    assert await store.outbox.purge_done(at(10)) == 0  # before is exclusive
    assert await store.outbox.purge_done(at(100), limit=0) == 0
    assert await store.outbox.purge_done(at(100), limit=2) == 2  # the oldest two
    assert [item.id for item in await store.outbox.list()] == ["d30", "d20b", "d40"]
    assert await store.outbox.purge_done(at(30)) == 1
    assert [item.id for item in await store.outbox.list()] == ["d30", "d40"]
    assert await store.outbox.purge_done(at(30)) == 0
    assert await store.outbox.purge_done(at(40).astimezone(timezone(timedelta(hours=-5)))) == 1
    assert [item.id for item in await store.outbox.list()] == ["d40"]
    with pytest.raises(ValueError, match="limit"):
        await store.outbox.purge_done(at(100), limit=-1)
    with pytest.raises(NaiveDatetimeError, match="before"):
        await store.outbox.purge_done(NAIVE)
    assert await store.outbox.purge_done(at(1000)) == 1
    assert await store.outbox.list() == []


async def test_purge_done_spares_pending_and_failed_and_keeps_order_and_due(
    store: Store,
) -> None:
    await store.outbox.enqueue(
        [
            outbox_item("a1", "A", "P"),
            outbox_item("a2", "A", "P"),
            outbox_item("a3", "A", "Q"),
            outbox_item("b1", "B", "Q"),
            outbox_item("b2", "B", "P", due_at=at(5)),
            outbox_item("b3", "B", "P"),
            outbox_item("c1", "C", "Q"),
            outbox_item("c2", "C", "Q"),
        ]
    )
    await store.outbox.complete("a1", at=at(1))
    await store.outbox.fail("a2", "400")  # blocks A (a3 waits behind it)
    await store.outbox.complete("b1", at=at(1))
    await store.outbox.complete("b3", at=at(1))  # out of band, behind the head b2
    await store.outbox.retry_later("c1", at(8), "503")
    before_items = await store.outbox.list()
    before_due = {t: await due_ids(store, at(t)) for t in (0, 5, 8)}
    assert before_due == {0: [], 5: ["b2"], 8: ["b2", "c1"]}

    assert await store.outbox.purge_done(at(1000)) == 3
    kept = [item for item in before_items if item.status is not DONE]
    assert await store.outbox.list() == kept
    assert [item.id for item in kept] == ["a2", "a3", "b2", "c1", "c2"]
    assert {t: await due_ids(store, at(t)) for t in (0, 5, 8)} == before_due
    assert await store.outbox.list(status=DONE) == []
    assert [i.id for i in await store.outbox.list(status=PENDING)] == ["a3", "b2", "c1", "c2"]
    assert [i.id for i in await store.outbox.list(status=FAILED)] == ["a2"]
    assert [i.id for i in await store.outbox.list(partner_id="P")] == ["a2", "b2"]
    assert [i.id for i in await store.outbox.list(partner_id="Q", offset=1)] == ["c1", "c2"]
    assert [i.id for i in await store.outbox.list(status=DONE, partner_id="Q")] == []
    assert await store.outbox.get("a1") is None
    # Late calls about purged items are no-ops, as for unknown ids: nothing comes back.
    await store.outbox.complete("b1", at=at(2000))
    await store.outbox.fail("a1", "late")
    assert await store.outbox.discard("a1") is False
    assert await store.outbox.replay("b3", at(0)) is False
    assert [item.id for item in await store.outbox.list()] == ["a2", "a3", "b2", "c1", "c2"]
    # The keys go on in order.
    await store.outbox.complete("b2", at=at(10))
    assert await due_ids(store, at(10)) == ["c1"]  # b3 was done already: B is drained
    assert await store.outbox.discard("a2", at=at(10)) is True
    assert await due_ids(store, at(10)) == ["a3", "c1"]
    assert await store.outbox.purge_done(at(10)) == 0
    assert await store.outbox.purge_done(at(11)) == 2
    assert [item.id for item in await store.outbox.list()] == ["a3", "c1", "c2"]
    # A new item of a key whose done items were purged heads it, after the survivors.
    (b4,) = await store.outbox.enqueue([outbox_item("b4", "B")])
    (a4,) = await store.outbox.enqueue([outbox_item("a4", "A")])
    assert b4.seq > max(item.seq for item in before_items)
    assert await due_ids(store, at(10)) == ["a3", "b4", "c1"]
    await store.outbox.complete("a3", at=at(11))
    assert await due_ids(store, at(10)) == ["b4", "a4", "c1"]  # by (time, seq)
    assert a4.seq > b4.seq


async def test_a_purged_id_is_forgotten(store: Store) -> None:
    """The contract keeps no tombstone: ids are unique while stored (see enqueue)."""
    (first,) = await store.outbox.enqueue([outbox_item("x", "K")])
    await store.outbox.complete("x", at=at(1))
    with pytest.raises(Conflict):
        await store.outbox.enqueue([outbox_item("x", "K")])  # done, still stored
    assert await store.outbox.purge_done(at(2)) == 1
    (again,) = await store.outbox.enqueue([outbox_item("x", "K")])
    assert again.seq > first.seq  # seqs are never reused
    got = await store.outbox.get("x")
    assert got is not None and (got.status, got.completed_at) == (PENDING, None)
    assert await due_ids(store, at(0)) == ["x"]


async def test_purge_done_over_many_items_in_batches(store: Store) -> None:
    await store.outbox.enqueue([outbox_item(f"i{n:03d}", f"k{n % 7}") for n in range(250)])
    await asyncio.gather(
        *(store.outbox.complete(f"i{n:03d}", at=at(n)) for n in range(250) if n % 5)
    )
    purged = []
    while (n := await store.outbox.purge_done(at(300), limit=64)) > 0:
        purged.append(n)
    assert purged == [64, 64, 64, 8]
    left = await store.outbox.list(limit=1000)
    assert [item.id for item in left] == [f"i{n:03d}" for n in range(0, 250, 5)]
    assert len(await store.outbox.due(at(0), limit=1000)) == 7


async def test_completion_times_and_purges_survive_reopen(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await done_at(store, {"old": 10, "new": 20})
    await store.outbox.enqueue([outbox_item("p1", "P"), outbox_item("p2", "P")])
    assert await store.outbox.purge_done(at(15)) == 1
    before = await store.outbox.list()
    await store.close()

    again = await store_factory()
    assert await again.outbox.list() == before
    assert [(item.id, item.completed_at) for item in before] == [
        ("new", at(20)),
        ("p1", None),
        ("p2", None),
    ]
    assert await again.outbox.get("old") is None
    assert await due_ids(again, at(0)) == ["p1"]
    assert await again.outbox.purge_done(at(21)) == 1
    await again.outbox.complete("p1", at=at(30))
    assert await due_ids(again, at(0)) == ["p2"]
    later = await again.outbox.enqueue([outbox_item("q1", "Q")])
    assert later[0].seq > max(item.seq for item in before)
