"""The lease contract (``LeaseStore``), on both backends: one holder at a time, a holder
never extends or ends another's lease, expiry after the TTL, repeats answer the same.

Expiry is real time here (Redis expires keys by its own clock): short TTLs, and the
expiry polled for with a bound, never timed.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.storage.base import StorageError, Store
from tests.storage.conftest import StoreFactory

LONG = 30.0  # seconds: never expires during a test
SHORT = 0.2


async def _until_free(store: Store, name: str, bound: float = 5.0) -> None:
    deadline = time.monotonic() + bound
    while await store.leases.holder(name) is not None:
        assert time.monotonic() < deadline, f"lease {name} did not expire"
        await asyncio.sleep(0.02)


async def test_one_holder_at_a_time(store: Store) -> None:
    leases = store.leases
    assert await leases.holder("sessions") is None
    assert await leases.acquire("sessions", "A", LONG)
    assert await leases.holder("sessions") == "A"
    assert not await leases.acquire("sessions", "B", LONG)
    assert await leases.holder("sessions") == "A"
    # Names are independent.
    assert await leases.acquire("hub-checks", "B", LONG)
    assert await leases.holder("hub-checks") == "B"
    assert await leases.holder("sessions") == "A"


async def test_acquire_and_renew_are_safe_to_repeat_for_the_same_holder(store: Store) -> None:
    leases = store.leases
    assert await leases.acquire("sessions", "A", LONG)
    assert await leases.acquire("sessions", "A", LONG)  # a repeat: still True
    assert await leases.renew("sessions", "A", LONG)
    assert await leases.renew("sessions", "A", LONG)
    assert await leases.holder("sessions") == "A"


async def test_a_holder_never_renews_nor_releases_anothers_lease(store: Store) -> None:
    leases = store.leases
    assert not await leases.renew("sessions", "A", LONG)  # free: nothing to renew
    assert await leases.holder("sessions") is None  # and renew did not take it
    assert await leases.acquire("sessions", "A", LONG)
    assert not await leases.renew("sessions", "B", LONG)
    await leases.release("sessions", "B")
    assert await leases.holder("sessions") == "A"
    await leases.release("sessions", "A")
    assert await leases.holder("sessions") is None
    await leases.release("sessions", "A")  # releasing twice is once
    assert await leases.acquire("sessions", "B", LONG)
    assert not await leases.renew("sessions", "A", LONG)
    assert await leases.holder("sessions") == "B"


async def test_an_unrenewed_lease_expires_and_is_free(store: Store) -> None:
    leases = store.leases
    assert await leases.acquire("sessions", "A", SHORT)
    assert not await leases.acquire("sessions", "B", LONG)
    await _until_free(store, "sessions")
    assert not await leases.renew("sessions", "A", LONG)  # too late: not A's any more
    assert await leases.acquire("sessions", "B", LONG)
    assert await leases.holder("sessions") == "B"


async def test_renew_extends_the_lease_from_now(store: Store) -> None:
    leases = store.leases
    assert await leases.acquire("sessions", "A", SHORT)
    assert await leases.renew("sessions", "A", LONG)  # now long-lived
    await asyncio.sleep(SHORT * 2)
    assert await leases.holder("sessions") == "A"
    assert not await leases.acquire("sessions", "B", LONG)
    # And a short renew shortens it: the TTL counts from the last renew.
    assert await leases.renew("sessions", "A", SHORT)
    await _until_free(store, "sessions")


async def test_reacquire_by_the_holder_extends(store: Store) -> None:
    leases = store.leases
    assert await leases.acquire("sessions", "A", SHORT)
    assert await leases.acquire("sessions", "A", LONG)
    await asyncio.sleep(SHORT * 2)
    assert await leases.holder("sessions") == "A"


async def test_concurrent_acquires_have_one_winner(store: Store) -> None:
    holders = [f"P{i}" for i in range(10)]
    results = await asyncio.gather(*(store.leases.acquire("sessions", h, LONG) for h in holders))
    assert sum(results) == 1
    assert await store.leases.holder("sessions") == holders[results.index(True)]


@pytest.mark.parametrize(
    ("name", "holder", "ttl"),
    [
        ("", "A", LONG),
        ("Sessions", "A", LONG),
        ("a:b", "A", LONG),
        ("a b", "A", LONG),
        ("sessions", "", LONG),
        ("sessions", "A", 0.0),
        ("sessions", "A", -1.0),
        ("sessions", "A", float("nan")),
        ("sessions", "A", float("inf")),
    ],
)
async def test_bad_arguments_are_refused(store: Store, name: str, holder: str, ttl: float) -> None:
    with pytest.raises(ValueError, match="lease"):
        await store.leases.acquire(name, holder, ttl)
    with pytest.raises(ValueError, match="lease"):
        await store.leases.renew(name, holder, ttl)
    if ttl == LONG:  # the name or holder is what is wrong
        with pytest.raises(ValueError, match="lease"):
            await store.leases.release(name, holder)
    assert await store.leases.holder("sessions") is None


async def test_use_after_close_raises_storage_error(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.close()
    with pytest.raises(StorageError, match="closed"):
        await store.leases.acquire("sessions", "A", LONG)
    with pytest.raises(StorageError, match="closed"):
        await store.leases.renew("sessions", "A", LONG)
    with pytest.raises(StorageError, match="closed"):
        await store.leases.release("sessions", "A")
    with pytest.raises(StorageError, match="closed"):
        await store.leases.holder("sessions")
