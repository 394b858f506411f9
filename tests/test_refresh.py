"""gateway.refresh in one test process: two "processes" (each its own registry, hub,
outbox worker, cluster node and refresher, as ``build_app`` wires them) on one SQLite
store and one in-memory message bus. A change made through one is read again by the
other, whose listeners (the side effects) do not run; a full reload (the gap handler)
picks up what no notice announced; outbox wake-ups are coalesced and reach the worker
that delivers; platform activity reaches the other process's still-alive check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.cluster.node import ClusterNode
from gateway.domain.clock import SystemClock, UuidFactory
from gateway.hub.directory import HostedParty
from gateway.hub.rules import RuleAction
from gateway.hub.service import Hub, HubConfig
from gateway.refresh import WAKE_WINDOW, Refresher
from gateway.roaming.outbox import Outbox, OutboxWorker, build_outbox
from gateway.roaming.partners import (
    OurIdentity,
    Partner,
    PartnerKind,
    PartnerRegistry,
    PartnerStatus,
    partner_to_document,
)
from gateway.roaming.vault import TokenVault
from gateway.storage.base import Document, Store
from gateway.storage.factory import open_store
from gateway.storage.local_cluster import LocalMessageStore
from ocpi.hub.http1 import Http1Client
from ocpi.transport import PartyId, envelope, json_dumps, json_loads
from ocpi.v221 import BusinessDetails, CredentialsRole, Role
from ocpi.v221.enums import ConnectionStatus
from tests.roaming.emsp import EmspPlatform
from tests.test_leases_processes import until

CPO = CredentialsRole(
    role=Role.CPO,
    business_details=BusinessDetails(name="Hosted CPO"),
    party_id="GWY",
    country_code="ZZ",
)
VAULT = TokenVault.parse("8PQbVcp1dImfuDdeNmkrxPXNQ7mJ8sYnXx_0dRwD5zk=")
PLATFORM_PARTY = PartyId("NL", "EM1")


@dataclass
class Process:
    node: ClusterNode
    registry: PartnerRegistry
    hub: Hub
    outbox: Outbox
    worker: OutboxWorker
    refresher: Refresher
    changes: list[tuple[Partner | None, Partner | None]] = field(default_factory=list)


@dataclass
class Cluster:
    store: Store
    messages: LocalMessageStore
    http: aiohttp.ClientSession
    hub_client: Http1Client
    processes: list[Process] = field(default_factory=list)

    async def process(self, name: str, *, poll_interval: float = 30.0) -> Process:
        clock, ids = SystemClock(), UuidFactory()
        node = ClusterNode(self.messages, name)
        await node.start()
        registry = PartnerRegistry(
            self.store.partners,
            clock,
            ids,
            OurIdentity(versions_url=f"http://127.0.0.1:1/{name}/ocpi/versions", roles=[CPO]),
            self.http,
            vault=VAULT,
            hub_identity=OurIdentity(versions_url="http://127.0.0.1:1/hub/versions", roles=[]),
        )
        await registry.load()
        outbox, worker = build_outbox(
            self.store.outbox, registry, clock, ids, poll_interval=poll_interval
        )
        hub = Hub(
            HubConfig(party=PartyId("ZZ", "HUB"), base_url="http://127.0.0.1:1/ocpi/hub/2.2.1"),
            registry,
            self.store,
            outbox,
            clock,
            ids,
            self.hub_client,
            [HostedParty(PartyId("ZZ", "GWY"), "Hosted CPO")],
            {},
        )
        await hub.start()
        refresher = Refresher(node, registry, hub, worker, clock, activity_period=0.01)
        refresher.start()
        process = Process(node, registry, hub, outbox, worker, refresher)

        async def listener(before: Partner | None, after: Partner | None) -> None:
            process.changes.append((before, after))

        registry.on_change(listener)
        self.processes.append(process)
        await refresher.settled()
        return process


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    store = await open_store(data_dir=tmp_path / "data", redis_url=None)
    http = aiohttp.ClientSession()
    hub_client = Http1Client()
    cluster = Cluster(store, LocalMessageStore(), http, hub_client)
    try:
        yield cluster
    finally:
        for process in cluster.processes:
            await process.refresher.stop()
            await process.worker.stop()
            await process.node.stop()
        await http.close()
        await hub_client.close()
        await store.close()


async def settled(*processes: Process) -> None:
    for process in processes:
        await process.refresher.settled()


async def test_a_partner_created_and_deleted_through_one_process_is_known_to_the_other(
    cluster: Cluster,
) -> None:
    a = await cluster.process("a")
    b = await cluster.process("b")
    partner, token_a = await a.registry.create("eMSP")
    await settled(a, b)
    known = b.registry.get(partner.id)
    assert known is not None and known.status is PartnerStatus.PENDING
    match = b.registry.match(token_a)  # B serves the partner's registration too
    assert match is not None and match.registration and match.partner.id == partner.id
    # The side effects of the change ran where it was made, once.
    assert [(before, after and after.id) for before, after in a.changes] == [(None, partner.id)]
    assert b.changes == []
    assert b.refresher.reloads == 1
    assert a.refresher.reloads == 0  # its own notice is not read again

    assert await a.registry.delete(partner.id)
    await settled(a, b)
    assert b.registry.get(partner.id) is None
    assert b.registry.match(token_a) is None
    assert b.changes == []


async def test_a_rule_and_a_party_status_set_through_one_process_apply_at_the_other(
    cluster: Cluster,
) -> None:
    a = await cluster.process("a")
    b = await cluster.process("b")
    # A platform registered (its record written as a handshake leaves it), announced.
    now = SystemClock().now()
    platform = Partner(
        id="platform-1",
        name="eMSP One",
        status=PartnerStatus.REGISTERED,
        created_at=now,
        updated_at=now,
        our_token_hash="0" * 64,
        their_token="their-token",
        roles=({"role": "EMSP", "country_code": "NL", "party_id": "EM1"},),
        kind=PartnerKind.HUB,
    )
    await cluster.store.partners.put(partner_to_document(platform, VAULT))
    for process in (a, b):
        process.refresher.reload_everything()
    await settled(a, b)
    assert b.hub.directory.platform_of(PLATFORM_PARTY) == "platform-1"

    rule = await a.hub.rule_book.add(RuleAction.DENY, PartyId("ZZ", "GWY"), PLATFORM_PARTY)
    await settled(a, b)
    assert [r.id for r in b.hub.rule_book.all()] == [rule.id]
    assert b.hub.reach(PartyId("ZZ", "GWY"), "tariffs", "RECEIVER", "platform-1") == []
    assert await a.hub.rule_book.remove(rule.id)
    await settled(a, b)
    assert b.hub.rule_book.all() == []

    assert await a.hub.set_status(PLATFORM_PARTY, ConnectionStatus.SUSPENDED)
    await settled(a, b)
    assert b.hub.directory.status(PLATFORM_PARTY) is ConnectionStatus.SUSPENDED
    assert await a.hub.set_status(PLATFORM_PARTY, ConnectionStatus.CONNECTED)
    await settled(a, b)
    assert b.hub.directory.status(PLATFORM_PARTY) is ConnectionStatus.CONNECTED
    assert b.changes == []


async def test_a_full_reload_reads_what_no_notice_announced(cluster: Cluster) -> None:
    a = await cluster.process("a")
    b = await cluster.process("b")
    gone, _ = await a.registry.create("Leaves")
    await settled(a, b)
    assert b.registry.get(gone.id) is not None
    # Written behind both processes' backs: as if the notices had been lost.
    now = SystemClock().now()
    await cluster.store.partners.delete(gone.id)
    new = Partner("p-new", "New", PartnerStatus.PENDING, now, now, token_a_hash="1" * 64)
    await cluster.store.partners.put(partner_to_document(new, VAULT))
    rule = {"id": "r1", "action": "deny", "party": "NL*EM1", "counterpart": "ZZ*GWY"}
    await cluster.store.hub_rules.put(Document("r1", rule, now))
    await settled(b)
    assert b.registry.get("p-new") is None

    b.refresher.reload_everything()  # what the node's gap handler does
    await settled(b)
    assert b.registry.get("p-new") is not None
    assert b.registry.get(gone.id) is None
    assert [r.id for r in b.hub.rule_book.all()] == ["r1"]
    assert b.changes == []


async def test_outbox_wake_ups_are_coalesced_and_wake_the_worker_that_delivers(
    cluster: Cluster, emsp: EmspPlatform
) -> None:
    a = await cluster.process("a")
    b = await cluster.process("b")
    heard: list[dict[str, Any]] = []
    listener = ClusterNode(cluster.messages, "listener")
    listener.on("outbox", heard.append)
    await listener.start()
    try:
        # B delivers (it holds the lease, in the gateway); its next poll is 30 s away.
        await b.worker.start()
        partner, _ = await a.registry.create("eMSP")
        await a.registry.register_at(partner.id, f"{emsp.url}/ocpi/versions", emsp.token_a)
        await settled(a, b)
        await asyncio.sleep(0.05)  # B's first poll is behind it
        heard.clear()

        # Pushes stored through A, at once: B delivers them promptly.
        await asyncio.gather(
            *(
                a.outbox.enqueue(
                    partner.id,
                    "PUT",
                    f"{emsp.url}/ocpi/2.2.1/tariffs/ZZ/GWY/T{i}",
                    {"id": f"T{i}"},
                    ordering_key=f"{partner.id}|tariffs|T{i}",
                    module="tariffs",
                )
                for i in range(20)
            )
        )

        async def delivered() -> bool:
            return len(emsp.pushes("tariffs", "PUT")) == 20

        await until(delivered, bound=10.0)  # well below the 30 s poll interval
        assert heard

        # A burst of notifications before the message goes out: one message for all.
        await asyncio.sleep(WAKE_WINDOW * 2)
        heard.clear()
        for _ in range(50):
            a.worker.notify()

        async def sent() -> bool:
            return bool(heard)

        await until(sent, bound=5.0)
        await asyncio.sleep(WAKE_WINDOW * 3)  # a trailing message would have come by now
        assert len(heard) == 1

        # Pushes that keep coming after it share one more message at the window's end.
        heard.clear()
        a.worker.notify()
        while not heard:
            await asyncio.sleep(0)
        for _ in range(10):
            a.worker.notify()
        await asyncio.sleep(WAKE_WINDOW * 4)
        assert len(heard) == 2

        # The worker that delivers needs no message for its own pushes.
        heard.clear()
        b.worker.notify()
        await asyncio.sleep(0.05)
        assert heard == []
    finally:
        await listener.stop()


async def test_platform_activity_seen_by_one_process_reaches_the_others_check(
    cluster: Cluster,
) -> None:
    a = await cluster.process("a")
    b = await cluster.process("b")
    assert b.hub.alive.last_seen("platform-x") is None
    a.hub.note_activity("platform-x")
    a.hub.note_activity("platform-y")

    async def heard() -> bool:
        return b.hub.alive.last_seen("platform-y") is not None

    await until(heard, bound=5.0)
    assert b.hub.alive.last_seen("platform-x") == a.hub.alive.last_seen("platform-x")


async def test_the_provisional_token_of_a_credentials_post_works_at_the_other_process(
    cluster: Cluster,
) -> None:
    """credentials.asciidoc: before answering our POST, the partner may call our
    versions with the token in it; behind a load balancer that call may reach B."""
    a = await cluster.process("a")
    b = await cluster.process("b")
    seen_at_b: list[bool] = []
    app = web.Application()

    def ok(data: Any) -> web.Response:
        return web.Response(text=json_dumps(envelope(data)), content_type="application/json")

    async def versions(request: web.Request) -> web.Response:
        return ok([{"version": "2.2.1", "url": str(request.url.with_path("/2.2.1"))}])

    async def details(request: web.Request) -> web.Response:
        url = str(request.url.with_path("/2.2.1/credentials"))
        return ok(
            {
                "version": "2.2.1",
                "endpoints": [{"identifier": "credentials", "role": "RECEIVER", "url": url}],
            }
        )

    async def credentials(request: web.Request) -> web.Response:
        body = json_loads(await request.read())
        await asyncio.sleep(0.05)  # the notice travels meanwhile
        match = b.registry.match(body["token"])
        seen_at_b.append(match is not None and match.provisional)
        return ok(
            {
                "token": "partner-token",
                "url": str(request.url.with_path("/versions")),
                "roles": [
                    {
                        "role": "EMSP",
                        "business_details": {"name": "P"},
                        "country_code": "NL",
                        "party_id": "PRV",
                    }
                ],
            }
        )

    app.router.add_get("/versions", versions)
    app.router.add_get("/2.2.1", details)
    app.router.add_post("/2.2.1/credentials", credentials)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        partner, _ = await a.registry.create("P")
        await settled(a, b)
        await a.registry.register_at(partner.id, f"http://127.0.0.1:{port}/versions", "token-a")
        await settled(a, b)
        assert seen_at_b == [True]
        registered = b.registry.get(partner.id)
        assert registered is not None and registered.status is PartnerStatus.REGISTERED
    finally:
        await runner.cleanup()
