"""The cluster contracts (``OwnershipStore`` and ``MessageStore``), on both backends.

Owner records: a claim always wins and names the previous live owner when it was
another node; renew and release act on the caller's own records only; records expire
after their TTL. Messages: delivered in order to the subscribers of the channel at the
time, counted by ``publish`` and ``subscribers``.

Expiry is real time here (Redis expires keys by its own clock): short TTLs, and the
expiry polled for with a bound, never timed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.storage.base import Owner, StorageError, Store, Subscription
from gateway.storage.codec import NaiveDatetimeError
from gateway.storage.redis import RENEW_CHUNK
from tests.storage.conftest import StoreFactory

LONG = 30.0  # seconds: never expires during a test
SHORT = 0.2
T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5, microseconds=1)
T2 = T0 + timedelta(minutes=10, microseconds=999_999)


async def _until(condition: Callable[[], bool], what: str, bound: float = 5.0) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {bound} s"
        await asyncio.sleep(0.01)


async def _until_expired(store: Store, charger_id: str, bound: float = 5.0) -> None:
    deadline = time.monotonic() + bound
    while (await store.owners.owners([charger_id]))[0] is not None:
        assert time.monotonic() < deadline, f"the record of {charger_id} did not expire"
        await asyncio.sleep(0.02)


class Inbox:
    """A listener that keeps what it is given, and counts the gaps."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.gaps = 0

    def __call__(self, channel: str, message: bytes) -> None:
        self.messages.append((channel, message))

    def gap(self) -> None:
        self.gaps += 1


async def _subscribe(store: Store, channels: list[str], inbox: Inbox) -> Subscription:
    sub = store.messages.subscribe(channels, inbox, inbox.gap)
    await asyncio.wait_for(sub.ready(), 10)
    return sub


# -- ownership ----------------------------------------------------------------------------


async def test_claim_names_the_previous_owner_only_when_it_was_another_node(store: Store) -> None:
    owners = store.owners
    assert await owners.claim("CP-1", "node-a", T0, LONG) is None  # nobody held it
    assert await owners.claim("CP-1", "node-a", T0, LONG) is None  # a repeat by the holder
    assert await owners.owners(["CP-1"]) == [Owner("node-a", T0, T0)]
    # Another node's claim wins (the charger's newest connection counts) and names A.
    assert await owners.claim("CP-1", "node-b", T1, LONG) == "node-a"
    assert await owners.owners(["CP-1"]) == [Owner("node-b", T1, T1)]
    assert await owners.claim("CP-1", "node-b", T1, LONG) is None  # a repeat after a lost answer
    assert await owners.claim("CP-1", "node-a", T2, LONG) == "node-b"
    assert await owners.owners(["CP-1"]) == [Owner("node-a", T2, T2)]
    # Chargers are independent.
    assert await owners.claim("CP-2", "node-b", T0, LONG) is None
    assert await owners.owners(["CP-1", "CP-2", "CP-3"]) == [
        Owner("node-a", T2, T2),
        Owner("node-b", T0, T0),
        None,
    ]


async def test_a_claim_after_the_previous_record_expired_names_nobody(store: Store) -> None:
    owners = store.owners
    assert await owners.claim("CP-1", "node-a", T0, SHORT) is None
    await _until_expired(store, "CP-1")
    assert await owners.claim("CP-1", "node-b", T1, LONG) is None
    assert await owners.owners(["CP-1"]) == [Owner("node-b", T1, T1)]


async def test_an_unrenewed_record_expires(store: Store) -> None:
    owners = store.owners
    assert await owners.claim("CP-1", "node-a", T0, SHORT) is None
    assert await owners.claim("CP-2", "node-a", T0, LONG) is None
    await _until_expired(store, "CP-1")
    assert await owners.owners(["CP-1", "CP-2"]) == [None, Owner("node-a", T0, T0)]
    # Too late for the holder: not its record any more.
    assert await owners.renew("node-a", ["CP-1", "CP-2"], LONG) == ["CP-1"]
    assert not await owners.release("CP-1", "node-a")
    assert await owners.owners(["CP-1"]) == [None]  # renew did not bring it back


async def test_renew_extends_the_record_from_now(store: Store) -> None:
    owners = store.owners
    assert await owners.claim("CP-1", "node-a", T0, SHORT) is None
    assert await owners.renew("node-a", ["CP-1"], LONG) == []  # now long-lived
    await asyncio.sleep(SHORT * 2)
    assert await owners.owners(["CP-1"]) == [Owner("node-a", T0, T0)]
    # And a short renew shortens it: the TTL counts from the last renew.
    assert await owners.renew("node-a", ["CP-1"], SHORT) == []
    await _until_expired(store, "CP-1")


async def test_renew_acts_on_the_callers_records_only(store: Store) -> None:
    owners = store.owners
    assert await owners.claim("CP-1", "node-a", T0, LONG) is None
    assert await owners.claim("CP-2", "node-a", T0, SHORT) is None
    assert await owners.claim("CP-3", "node-b", T0, SHORT) is None
    # CP-3 is B's, CP-4 nobody's: both answered, in the order asked.
    lost = await owners.renew("node-a", ["CP-3", "CP-1", "CP-4", "CP-2"], LONG, [T1, T1, T1, T1])
    assert lost == ["CP-3", "CP-4"]
    assert await owners.owners(["CP-1", "CP-2", "CP-3", "CP-4"]) == [
        Owner("node-a", T0, T1),
        Owner("node-a", T0, T1),
        Owner("node-b", T0, T0),  # neither extended nor given A's heartbeat
        None,  # renew never creates a record
    ]
    # B's record was not extended by A's renew: it expires with its own short TTL,
    # while A's CP-2 (short too, but renewed for long) lives on.
    await _until_expired(store, "CP-3")
    assert await owners.owners(["CP-2"]) == [Owner("node-a", T0, T1)]
    assert await owners.renew("node-a", [], LONG) == []


async def test_renew_writes_the_heartbeats_given(store: Store) -> None:
    owners = store.owners
    ids = ["CP-1", "CP-2", "CP-3", "CP-4"]
    for charger_id in ids:
        assert await owners.claim(charger_id, "node-a", T0, LONG) is None
    assert await owners.renew("node-a", ids, LONG, [T1, None, T2, None]) == []
    assert await owners.owners(ids) == [
        Owner("node-a", T0, T1),
        Owner("node-a", T0, T0),  # None: unchanged
        Owner("node-a", T0, T2),
        Owner("node-a", T0, T0),
    ]
    # Fewer heartbeats than ids: the rest unchanged.
    assert await owners.renew("node-a", ids, LONG, [T2]) == []
    assert await owners.owners(ids) == [
        Owner("node-a", T0, T2),
        Owner("node-a", T0, T0),
        Owner("node-a", T0, T2),
        Owner("node-a", T0, T0),
    ]
    assert await owners.renew("node-a", ids, LONG) == []  # no heartbeats at all
    assert [o.last_heartbeat for o in await owners.owners(ids) if o] == [T2, T0, T2, T0]


async def test_renew_of_more_ids_than_a_chunk(store: Store) -> None:
    owners = store.owners
    count = RENEW_CHUNK * 2 + 7
    ids = [f"CP-{i:05}" for i in range(count)]
    await asyncio.gather(*(owners.claim(c, "node-a", T0, LONG) for c in ids))
    # Taken by B on both sides of each chunk boundary, and at both ends.
    taken = [0, RENEW_CHUNK - 1, RENEW_CHUNK, 2 * RENEW_CHUNK - 1, 2 * RENEW_CHUNK, count - 1]
    for i in taken:
        assert await owners.claim(ids[i], "node-b", T0, LONG) == "node-a"
    beats = [T0 + timedelta(seconds=i, microseconds=i) for i in range(count)]
    lost = await owners.renew("node-a", [*ids, "CP-none"], LONG, beats)
    assert lost == [*(ids[i] for i in taken), "CP-none"]
    expected = [
        Owner("node-b", T0, T0) if i in taken else Owner("node-a", T0, beats[i])
        for i in range(count)
    ]
    assert await owners.owners(ids) == expected


async def test_release_deletes_the_callers_record_only(store: Store) -> None:
    owners = store.owners
    assert not await owners.release("CP-1", "node-a")  # none
    assert await owners.claim("CP-1", "node-a", T0, LONG) is None
    assert not await owners.release("CP-1", "node-b")
    assert await owners.owners(["CP-1"]) == [Owner("node-a", T0, T0)]
    assert await owners.release("CP-1", "node-a")
    assert await owners.owners(["CP-1"]) == [None]
    assert not await owners.release("CP-1", "node-a")  # a repeat: nothing of A's left
    # Released, the charger is free: the next claim names nobody.
    assert await owners.claim("CP-1", "node-b", T1, LONG) is None


@pytest.mark.parametrize(
    "since",
    [
        datetime(2025, 3, 1, 12, 0, 0, 0, tzinfo=UTC),
        datetime(2025, 3, 1, 12, 0, 0, 1, tzinfo=UTC),
        datetime(2025, 3, 1, 12, 0, 0, 999_999, tzinfo=UTC),
        datetime(2038, 1, 19, 3, 14, 8, 654_321, tzinfo=UTC),  # past 32-bit seconds
        datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        # Another offset: the same instant comes back, in UTC.
        datetime(2025, 3, 1, 14, 0, 0, 500_001, tzinfo=timezone(timedelta(hours=2))),
    ],
)
async def test_owner_times_come_back_as_aware_utc_to_the_microsecond(
    store: Store, since: datetime
) -> None:
    owners = store.owners
    beat = since + timedelta(seconds=30, microseconds=7)
    assert await owners.claim("CP-1", "node-a", since, LONG) is None
    assert await owners.claim("CP-2", "node-a", since, LONG) is None
    assert await owners.renew("node-a", ["CP-2"], LONG, [beat]) == []
    first, second = await owners.owners(["CP-1", "CP-2"])
    assert first == Owner("node-a", since, since)
    assert second == Owner("node-a", since, beat)
    for value in (first.since, first.last_heartbeat, second.since, second.last_heartbeat):
        assert value is not None
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
    assert second.last_heartbeat is not None
    assert second.last_heartbeat.microsecond == beat.microsecond


async def test_naive_datetimes_are_refused_before_anything_is_written(store: Store) -> None:
    owners = store.owners
    with pytest.raises(NaiveDatetimeError):
        await owners.claim("CP-1", "node-a", datetime(2025, 3, 1, 12), LONG)
    assert await owners.owners(["CP-1"]) == [None]
    assert await owners.claim("CP-1", "node-a", T0, LONG) is None
    with pytest.raises(NaiveDatetimeError):
        await owners.renew("node-a", ["CP-1"], LONG, [datetime(2025, 3, 1, 12)])
    assert await owners.owners(["CP-1"]) == [Owner("node-a", T0, T0)]


async def test_a_naive_heartbeat_past_the_first_chunk_writes_nothing(
    store: Store, backend: str, request: pytest.FixtureRequest
) -> None:
    owners = store.owners
    ids = [f"CP-{i:05}" for i in range(RENEW_CHUNK + 1)]
    await asyncio.gather(*(owners.claim(c, "node-a", T0, LONG) for c in ids))
    beats: list[datetime | None] = [T1] * RENEW_CHUNK
    beats.append(datetime(2025, 3, 1, 12))
    with pytest.raises(NaiveDatetimeError):
        await owners.renew("node-a", ids, LONG, beats)
    assert await owners.owners(ids[:1]) == [Owner("node-a", T0, T0)]


@pytest.mark.parametrize(
    ("charger_id", "node", "ttl"),
    [
        ("", "node-a", LONG),
        ("CP-1", "", LONG),
        ("CP-1", "node-a", 0.0),
        ("CP-1", "node-a", -1.0),
        ("CP-1", "node-a", 0.0009),
        ("CP-1", "node-a", 86_401.0),
        ("CP-1", "node-a", float("nan")),
        ("CP-1", "node-a", float("inf")),
    ],
)
async def test_bad_ownership_arguments_are_refused(
    store: Store, charger_id: str, node: str, ttl: float
) -> None:
    owners = store.owners
    with pytest.raises(ValueError, match=r"empty|TTL"):
        await owners.claim(charger_id, node, T0, ttl)
    if charger_id:  # renew checks the node and the TTL (the ids are answered as lost)
        with pytest.raises(ValueError, match=r"empty|TTL"):
            await owners.renew(node, [charger_id], ttl)
    if ttl == LONG:  # an id is what is wrong
        with pytest.raises(ValueError, match="empty"):
            await owners.release(charger_id, node)
    assert await owners.owners(["CP-1"]) == [None]


# -- messages -----------------------------------------------------------------------------


async def test_publish_counts_the_subscribers_that_received_it(store: Store) -> None:
    messages = store.messages
    assert await messages.publish("changes", b"nobody") == 0
    assert await messages.subscribers(["changes", "node:a"]) == [0, 0]
    assert await messages.subscribers([]) == []
    first, second = Inbox(), Inbox()
    sub1 = await _subscribe(store, ["node:a", "changes"], first)
    sub2 = await _subscribe(store, ["changes"], second)
    try:
        assert await messages.subscribers(["changes", "node:a", "node:b"]) == [2, 1, 0]
        assert await messages.publish("node:a", b"1") == 1
        assert await messages.publish("changes", b"2") == 2
        assert await messages.publish("node:b", b"3") == 0
        await _until(lambda: len(first.messages) == 2 and len(second.messages) == 1, "delivery")
        assert first.messages == [("node:a", b"1"), ("changes", b"2")]
        assert second.messages == [("changes", b"2")]
    finally:
        await sub1.close()
        await sub2.close()


async def test_messages_arrive_in_order_on_the_listed_channels_only(store: Store) -> None:
    messages = store.messages
    both, changes, other = Inbox(), Inbox(), Inbox()
    subs = [
        await _subscribe(store, ["node:a", "changes"], both),
        await _subscribe(store, ["changes"], changes),
        await _subscribe(store, ["node:b"], other),
    ]
    try:
        sent: list[tuple[str, bytes]] = []
        for i in range(60):
            channel = ["node:a", "changes", "node:c"][i % 3]
            # Any bytes, not only text: messages are opaque to the store.
            message = f"{i}:".encode() + bytes([i, 0, 255])
            await messages.publish(channel, message)
            sent.append((channel, message))
        await _until(lambda: len(both.messages) == 40 and len(changes.messages) == 20, "delivery")
        assert both.messages == [m for m in sent if m[0] in ("node:a", "changes")]
        assert changes.messages == [m for m in sent if m[0] == "changes"]
        # node:b: a message of its own, sent last, arrives alone (nothing of the others).
        assert await messages.publish("node:b", b"last") == 1
        await _until(lambda: len(other.messages) == 1, "delivery on node:b")
        assert other.messages == [("node:b", b"last")]
    finally:
        for sub in subs:
            await sub.close()
    assert both.gaps == changes.gaps == other.gaps == 0


async def test_a_closed_subscription_receives_nothing_more(store: Store) -> None:
    messages = store.messages
    stays, leaves = Inbox(), Inbox()
    sub1 = await _subscribe(store, ["changes"], stays)
    sub2 = await _subscribe(store, ["changes"], leaves)
    try:
        assert await messages.publish("changes", b"1") == 2
        await _until(lambda: len(leaves.messages) == 1, "delivery")
        await sub2.close()
        await sub2.close()  # closing twice is once
        assert await messages.subscribers(["changes"]) == [1]
        assert await messages.publish("changes", b"2") == 1
        # The one still subscribed got the later message: the other would have by now.
        await _until(lambda: len(stays.messages) == 2, "delivery")
        assert leaves.messages == [("changes", b"1")]
        assert stays.messages == [("changes", b"1"), ("changes", b"2")]
    finally:
        await sub1.close()
    assert await messages.subscribers(["changes"]) == [0]
    assert await messages.publish("changes", b"3") == 0


@pytest.mark.parametrize(
    "channel",
    [
        "",
        "Changes",
        "1node",
        "node_a",
        "node:",
        "node:a b",
        "node:é",
        ":a",
        "node:" + "x" * 201,
    ],
)
async def test_bad_channel_names_are_refused(store: Store, channel: str) -> None:
    messages = store.messages
    with pytest.raises(ValueError, match="channel"):
        await messages.publish(channel, b"x")
    with pytest.raises(ValueError, match="channel"):
        await messages.subscribers(["changes", channel])
    with pytest.raises(ValueError, match="channel"):
        messages.subscribe(["changes", channel], Inbox(), lambda: None)
    assert await messages.subscribers(["changes"]) == [0]  # nothing was subscribed


async def test_good_channel_names(store: Store) -> None:
    inbox = Inbox()
    names = ["changes", "node:a", "node:" + "~" * 200, "node:10.0.0.7:8080/x!"]
    sub = await _subscribe(store, names, inbox)
    try:
        for name in names:
            assert await store.messages.publish(name, name.encode()) == 1
        await _until(lambda: len(inbox.messages) == len(names), "delivery")
        assert inbox.messages == [(n, n.encode()) for n in names]
    finally:
        await sub.close()


# -- after close --------------------------------------------------------------------------


async def test_use_after_close_raises_storage_error(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.close()
    with pytest.raises(StorageError, match="closed"):
        await store.owners.claim("CP-1", "node-a", T0, LONG)
    with pytest.raises(StorageError, match="closed"):
        await store.owners.renew("node-a", ["CP-1"], LONG)
    with pytest.raises(StorageError, match="closed"):
        await store.owners.release("CP-1", "node-a")
    with pytest.raises(StorageError, match="closed"):
        await store.owners.owners(["CP-1"])
    with pytest.raises(StorageError, match="closed"):
        await store.messages.publish("changes", b"x")
    with pytest.raises(StorageError, match="closed"):
        await store.messages.subscribers(["changes"])


async def _subscribe_and_wait(store: Store) -> None:
    sub = store.messages.subscribe(["changes"], Inbox(), lambda: None)
    try:
        await asyncio.wait_for(sub.ready(), 5)
    finally:
        await sub.close()


async def test_subscribe_after_close_raises_storage_error(
    store_factory: StoreFactory, backend: str, request: pytest.FixtureRequest
) -> None:
    store = await store_factory()
    await store.close()
    # Either subscribe or the subscription's ready() says so.
    with pytest.raises(StorageError, match="closed"):
        await _subscribe_and_wait(store)
