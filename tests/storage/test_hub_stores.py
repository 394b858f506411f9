"""The hub's durable pieces on both backends: the owner index, proxied response URLs and
the routing rules, each read back by a fresh instance over a reopened store."""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.domain.clock import UuidFactory
from gateway.hub.links import OwnerIndex, StoredResponseUrls
from gateway.hub.rules import RuleAction, RuleBook
from ocpi.hub.response_url import ProxiedResponseUrl, ResponseUrlProxy
from ocpi.hub.rules import is_allowed
from ocpi.transport import NotFoundError, PartyId

from .conftest import StoreFactory
from .samples import T0

CPO1, CPO2, EMSP = PartyId("BE", "CP1"), PartyId("DE", "CP2"), PartyId("NL", "EM1")


class Clock:
    def __init__(self) -> None:
        self.current = T0

    def now(self) -> datetime:
        return self.current


async def test_owner_index(store_factory: StoreFactory) -> None:
    store = await store_factory()
    index = OwnerIndex(store.hub_index, cache_size=2)
    await index.note("location", "loc-1", CPO1, T0)
    await index.note("location", "LOC-1", CPO1, T0)  # ids compare as CiStrings
    await index.note("location", "loc-2", CPO2, T0)
    await index.note("token", "T1", EMSP, T0)
    assert await index.owner("location", "LOC-1") == CPO1
    # An id two parties use has no owner: the request must name its receiver.
    await index.note("location", "loc-2", CPO1, T0)
    assert await index.owner("location", "loc-2") is None
    assert await index.owner("location", "unknown") is None
    # A fresh instance (a restart) reads what was noted, past its small cache.
    await store.close()
    again = OwnerIndex((await store_factory()).hub_index)
    assert await again.owner("location", "loc-1") == CPO1
    assert await again.owner("token", "t1") == EMSP
    assert await again.owner("location", "loc-2") is None


async def test_owner_index_forgets_old_sessions_only(store_factory: StoreFactory) -> None:
    """Session entries older than the retention are deleted (one or two per session
    routed, for ever more sessions); locations, tokens and contracts stay however old."""
    store = await store_factory()
    index = OwnerIndex(store.hub_index)
    old, new = T0, T0 + timedelta(days=100)
    await index.note("location", "loc-1", CPO1, old)
    await index.note("token", "T1", EMSP, old)
    await index.note_token("C1", EMSP, "T1", "RFID", old)
    for n in range(3):  # more than a batch of 2
        await index.note("session", f"BE*CP1*S{n}", EMSP, old)
        await index.note("session-cpo", f"S{n}", CPO1, old)
    await index.note("session", "BE*CP1*NEW", EMSP, new)
    await index.note("session-cpo", "NEW", CPO1, new)
    assert await index.owner("session", "BE*CP1*S0") == EMSP  # cached
    assert await index.purge(new - timedelta(days=90), batch=2) == 6
    assert await index.owner("session", "BE*CP1*S0") is None
    assert await index.owner("session-cpo", "S2") is None
    assert await index.purge(new - timedelta(days=90)) == 0
    await store.close()
    store = await store_factory()  # reopened: read back by a fresh instance
    index = OwnerIndex(store.hub_index)
    assert await index.owner("session", "BE*CP1*NEW") == EMSP
    assert await index.owner("session-cpo", "NEW") == CPO1
    assert await index.owner("location", "loc-1") == CPO1
    assert await index.owner("token", "T1") == EMSP
    assert await index.token("C1") == (EMSP, "T1", "RFID")
    assert await index.owner("session", "BE*CP1*S1") is None


async def test_response_urls_survive_and_expire(store_factory: StoreFactory) -> None:
    clock = Clock()
    store = await store_factory()
    proxy = ResponseUrlProxy(
        StoredResponseUrls(store.hub_links), "https://hub/commands/sender", clock=clock.now
    )
    url = await proxy.proxy("https://emsp/results/1", requester=EMSP, receiver=CPO1)
    proxy_id = proxy.proxy_id(url)
    assert proxy_id is not None and len(proxy_id) >= 43  # 256 random bits
    # After a restart the result still finds the eMSP.
    await store.close()
    store = await store_factory()
    reopened = StoredResponseUrls(store.hub_links)
    again = ResponseUrlProxy(reopened, "https://hub/commands/sender", clock=clock.now)
    entry = await again.resolve(proxy_id)
    assert entry == ProxiedResponseUrl(
        "https://emsp/results/1", EMSP, CPO1, T0 + timedelta(hours=1)
    )
    # The store never holds the id itself.
    docs, _ = await store.hub_links.list()
    assert [d.key for d in docs] != [proxy_id] and proxy_id not in str(docs[0].data)
    # Expired: refused, then purged.
    clock.current = T0 + timedelta(hours=1, seconds=1)
    try:
        await again.resolve(proxy_id)
        raise AssertionError("an expired response URL resolved")
    except NotFoundError:
        pass
    assert await reopened.purge(clock.current) == 1
    assert (await store.hub_links.list())[1] == 0


async def test_rules_are_stored(store_factory: StoreFactory) -> None:
    clock = Clock()
    store = await store_factory()
    book = RuleBook(store.hub_rules, clock, UuidFactory())  # type: ignore[arg-type]
    await book.load()
    deny = await book.add(RuleAction.DENY, EMSP, CPO1)
    clock.current += timedelta(seconds=1)  # listed in the order they were made
    await book.add(RuleAction.ALLOW, CPO2, EMSP)
    assert not is_allowed(book.rules, CPO1, EMSP)
    await store.close()
    again = RuleBook((await store_factory()).hub_rules, clock, UuidFactory())  # type: ignore[arg-type]
    await again.load()
    assert [(r.action, r.party, r.counterpart) for r in again.all()] == [
        (RuleAction.DENY, EMSP, CPO1),
        (RuleAction.ALLOW, CPO2, EMSP),
    ]
    assert not is_allowed(again.rules, EMSP, CPO1) and is_allowed(again.rules, CPO2, EMSP)
    assert await again.remove(deny.id) and not await again.remove(deny.id)
    assert is_allowed(again.rules, EMSP, CPO1)
