"""The durable push outbox: real stores (both backends), a real worker, real partner
servers on loopback, and a fake clock (no real waits for backoff)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pydantic
import pytest
from aiohttp import web

from gateway.admin.http import ApiError, error_response
from gateway.admin.outbox import outbox_routes
from gateway.app import retry_policy
from gateway.roaming.outbox import (
    OUTBOX,
    Delivery,
    Outbox,
    OutboxWorker,
    Outcome,
    RetryPolicy,
    build_outbox,
    is_retryable,
    make_item,
    make_outbox_ctx,
)
from gateway.roaming.partners import (
    OurIdentity,
    Partner,
    PartnerEndpoint,
    PartnerRegistry,
    PartnerStatus,
    partner_to_document,
)
from gateway.roaming.vault import TokenVault, hash_token
from gateway.settings import Settings
from gateway.storage.base import Document, OutboxItem, OutboxStatus, StorageError, Store
from gateway.storage.factory import open_store
from ocpi.client import (
    OcpiClientError,
    OcpiHttpError,
    OcpiInvalidResponseError,
    OcpiReply,
    OcpiStatusError,
    OcpiTimeoutError,
    OcpiTransportError,
)
from ocpi.transport import envelope, json_dumps
from tests.conftest import (
    REDIS_URL,
    FakeClock,
    _redis_available,
    drop_redis_prefix,
    require_redis_or_skip,
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SEED = 20261123
PARTNER = "emsp-1"
VAULT = TokenVault.parse("8PQbVcp1dImfuDdeNmkrxPXNQ7mJ8sYnXx_0dRwD5zk=")
THEIR_TOKEN = "token-we-send-" + "x" * 16
BASE = "/ocpi/2.2.1"


# ------------------------------------------------------------------ a partner platform


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = None  # dict: sent as JSON; str: sent as text/html; None: the OCPI success envelope
    delay: float = 0.0


OK = Answer()


def ocpi_error(code: int, http: int = 200, message: str = "nope") -> Answer:
    return Answer(http, envelope(None, status_code=code, status_message=message))


@dataclass
class Request:
    method: str
    path: str
    body: Any
    correlation_id: str
    accepted: bool = False


@dataclass
class PartnerServer:
    """An eMSP receiving pushes: records each request, answers as scripted per path
    (FIFO; success once the script runs out), and tracks concurrency per path."""

    script: dict[str, list[Answer]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    in_flight: Counter[str] = field(default_factory=Counter)
    max_in_flight: int = 0
    max_per_path: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE}"

    def accepted(self) -> list[Request]:
        return [r for r in self.requests if r.accepted]

    def paths(self) -> list[str]:
        """Paths of the accepted requests, in order, relative to the module base."""
        return [r.path.removeprefix(BASE) for r in self.accepted()]

    def fail(self, path: str, *answers: Answer) -> None:
        self.script.setdefault(BASE + path, []).extend(answers)

    async def _handle(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        expected = "Token " + base64.b64encode(THEIR_TOKEN.encode()).decode()
        raw = await request.read()
        entry = Request(
            request.method,
            request.path,
            json.loads(raw) if raw else None,
            request.headers.get("X-Correlation-ID", ""),
        )
        self.requests.append(entry)
        self.arrived.set()
        queue = self.script.get(request.path)
        answer = queue.pop(0) if queue else OK
        if header != expected:
            answer = Answer(401, "unauthorized")
        self.in_flight[request.path] += 1
        self.max_per_path = max(self.max_per_path, self.in_flight[request.path])
        self.max_in_flight = max(self.max_in_flight, sum(self.in_flight.values()))
        try:
            if answer.delay:
                await asyncio.sleep(answer.delay)
        finally:
            self.in_flight[request.path] -= 1
        if answer.body is None and answer.status == 200:
            entry.accepted = True
            return web.Response(text=json_dumps(envelope(None)), content_type="application/json")
        if isinstance(answer.body, dict):
            return web.Response(text=json_dumps(answer.body), status=answer.status, content_type="application/json")
        headers = {"Location": "http://elsewhere.example/"} if 300 <= answer.status < 400 else None
        return web.Response(text=answer.body or "", status=answer.status, content_type="text/html", headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", BASE + "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# ------------------------------------------------------------------ the pieces under test


class Ids:
    def __init__(self, prefix: str = "item") -> None:
        self.prefix = prefix
        self.n = 0

    def new_id(self) -> str:
        self.n += 1
        return f"{self.prefix}-{self.n:04d}"


@dataclass
class Harness:
    backend: str
    tmp_path: Path
    partner: PartnerServer
    clock: FakeClock = field(default_factory=lambda: FakeClock(T0))
    ids: Ids = field(default_factory=Ids)
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    redis_prefix: str = field(default_factory=lambda: f"test:{uuid.uuid4().hex}:")
    poll_interval: float = 5.0
    # Set by open():
    store: Store = field(init=False)
    registry: PartnerRegistry = field(init=False)
    outbox: Outbox = field(init=False)
    worker: OutboxWorker = field(init=False)
    _http: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Open the store (the storage factory, as the gateway does) and build a registry,
        an outbox and a worker on it, as a (re)started gateway would."""
        self.store = await open_store(
            data_dir=self.tmp_path / "data",
            redis_url=REDIS_URL if self.backend == "redis" else None,
            redis_prefix=self.redis_prefix,
        )
        self._http = aiohttp.ClientSession()
        self.registry = PartnerRegistry(
            self.store.partners,
            self.clock,
            Ids("partner"),
            OurIdentity(versions_url="http://127.0.0.1:1/ocpi/versions", roles=[]),
            self._http,
            vault=VAULT,
        )
        await self.registry.load()
        self.outbox, self.worker = build_outbox(
            self.store.outbox,
            self.registry,
            self.clock,
            self.ids,
            self.rng,
            policy=self.policy,
            poll_interval=self.poll_interval,
            request_timeout=2.0,
        )

    async def close(self) -> None:
        await self.worker.stop()
        if self._http is not None:
            await self._http.close()
            self._http = None
        await self.store.close()

    async def reopen(self) -> None:
        await self.close()
        await self.open()

    async def add_partner(self, partner_id: str = PARTNER, status: PartnerStatus = PartnerStatus.REGISTERED) -> None:
        """Write a partner record, as a completed credentials handshake leaves it."""
        partner = Partner(
            id=partner_id,
            name="eMSP",
            status=status,
            created_at=T0,
            updated_at=T0,
            our_token_hash=hash_token("token-they-send"),
            their_token=THEIR_TOKEN if status is PartnerStatus.REGISTERED else None,
            versions_url=f"http://127.0.0.1:{self.partner.port}/ocpi/versions",
            version="2.2.1",
            endpoints=tuple(PartnerEndpoint(m, "RECEIVER", f"{self.partner.url}/{m}") for m in ("locations", "sessions", "cdrs")),
        )
        await self.store.partners.put(partner_to_document(partner, VAULT))
        await self.registry.load()

    async def push(self, path: str, body: dict[str, Any] | None = None, *, key: str | None = None,
                   method: str = "PATCH", partner_id: str = PARTNER, meta: dict[str, Any] | None = None) -> OutboxItem:
        return await self.outbox.enqueue(
            partner_id, method, self.partner.url + path, body if body is not None else {"p": path},
            ordering_key=key or path, module=path.split("/")[1], meta=meta,
        )

    async def item(self, item_id: str) -> OutboxItem:
        item = await self.store.outbox.get(item_id)
        assert item is not None
        return item

    async def due(self) -> list[OutboxItem]:
        return await self.store.outbox.due(self.clock.now())


@pytest.fixture
async def partner() -> AsyncIterator[PartnerServer]:
    server = PartnerServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def h(backend: str, tmp_path: Path, partner: PartnerServer) -> AsyncIterator[Harness]:
    if backend == "redis":
        require_redis_or_skip(await _redis_available())
    harness = Harness(backend, tmp_path, partner)
    await harness.open()
    await harness.add_partner()
    try:
        yield harness
    finally:
        await harness.close()
        if backend == "redis":
            await drop_redis_prefix(harness.redis_prefix)


def outcomes(deliveries: list[Delivery]) -> list[tuple[str, Outcome]]:
    return [(d.item.url.rsplit(BASE, 1)[1], d.outcome) for d in deliveries]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if await check():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"not within {timeout} s")


# ------------------------------------------------------------------ delivery


async def test_delivers_once_with_its_id_as_correlation_id(h: Harness) -> None:
    item = await h.push("/sessions/NL/GWY/S1", {"kwh": 1.5})
    assert (item.status, item.attempts, item.seq > 0) == (OutboxStatus.PENDING, 0, True)
    assert item.created_at == item.next_attempt_at == T0

    [delivery] = await h.worker.run_once()
    assert delivery.outcome is Outcome.DELIVERED
    assert delivery.reply is not None and delivery.reply.status_code == 1000
    [request] = h.partner.requests
    assert (request.method, request.path, request.body) == ("PATCH", f"{BASE}/sessions/NL/GWY/S1", {"kwh": 1.5})
    assert request.correlation_id == item.id  # stable across attempts: the partner can dedupe
    assert (await h.item(item.id)).status is OutboxStatus.DONE
    assert await h.worker.run_once() == []
    assert len(h.partner.requests) == 1


async def test_partner_down_backs_off_with_jitter_then_delivers_exactly_once(h: Harness) -> None:
    await h.partner.stop()  # the port is known and nothing listens there
    item = await h.push("/cdrs", {"id": "CDR-1"}, method="POST")
    replica = random.Random(SEED)  # the same draws as the worker's rng
    ceilings = []
    for attempt in range(1, 9):
        [d] = await h.worker.run_once()
        assert d.outcome is Outcome.RETRY, d
        assert d.error is not None and "POST" in d.error and "/cdrs" in d.error
        assert d.next_attempt_at is not None
        delay = (d.next_attempt_at - h.clock.now()).total_seconds()
        ceiling = min(600.0, 2.0 * 2 ** (attempt - 1))
        ceilings.append(ceiling)
        assert 1.0 <= delay <= ceiling  # full jitter, floored at min_delay
        assert delay == pytest.approx(h.policy.delay(attempt, replica))
        stored = await h.item(item.id)
        assert (stored.status, stored.attempts, stored.next_attempt_at) == (OutboxStatus.PENDING, attempt, d.next_attempt_at)
        # Not due a moment before its time.
        h.clock.current = d.next_attempt_at - timedelta(milliseconds=1)
        assert await h.worker.run_once() == []
        h.clock.current = d.next_attempt_at
    assert ceilings == [2, 4, 8, 16, 32, 64, 128, 256]

    await h.partner.start()  # back, on the same port
    [d] = await h.worker.run_once()
    assert d.outcome is Outcome.DELIVERED
    h.clock.advance(3600)
    assert await h.worker.run_until_idle() == []
    assert [r.body for r in h.partner.accepted()] == [{"id": "CDR-1"}]
    assert len(h.partner.requests) == 1
    assert (await h.item(item.id)).status is OutboxStatus.DONE


async def test_backoff_reaches_the_cap(h: Harness) -> None:
    policy = RetryPolicy(base=2, factor=2, cap=600, max_attempts=None)
    assert [policy.ceiling(n) for n in (1, 2, 9, 10, 11, 500, 10**6)] == [2, 4, 512, 600, 600, 600, 600]
    rng = random.Random(1)
    delays = [policy.delay(30, rng) for _ in range(500)]
    assert all(1.0 <= d <= 600 for d in delays)
    assert min(delays) < 60 and max(delays) > 540  # spread over the whole range
    half = RetryPolicy(jitter=0.5)
    assert all(300 <= half.delay(15, rng) <= 600 for _ in range(200))
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (Answer(503, "<html>maintenance</html>"), "HTTP 503"),
        (Answer(502, "bad gateway"), "HTTP 502"),
        (ocpi_error(3000, http=500, message="database down"), "3000"),
        (ocpi_error(3001, message="cannot reach our own client"), "3001"),
        (ocpi_error(4002, message="hub timeout"), "4002"),
        (Answer(429, "slow down"), "HTTP 429"),
        (Answer(408, "request timeout"), "HTTP 408"),
        (Answer(200, "<html>captive portal</html>"), "not an OCPI response"),
        (Answer(200, "", delay=0.6), "no answer within"),
    ],
    ids=["503", "502", "3000-http500", "3001", "4002", "429", "408", "html-200", "timeout"],
)
async def test_transient_errors_are_retried(h: Harness, answer: Answer, fragment: str) -> None:
    h.worker = OutboxWorker(h.store.outbox, h.registry, h.clock, h.rng, request_timeout=0.2)
    h.partner.fail("/sessions/S1", answer)
    item = await h.push("/sessions/S1")
    [d] = await h.worker.run_once()
    assert d.outcome is Outcome.RETRY
    assert d.error is not None and fragment in d.error
    stored = await h.item(item.id)
    assert (stored.status, stored.attempts, stored.last_error) == (OutboxStatus.PENDING, 1, d.error)
    assert d.next_attempt_at is not None
    h.clock.current = d.next_attempt_at
    [d] = await h.worker.run_once()
    assert d.outcome is Outcome.DELIVERED
    ids = {r.correlation_id for r in h.partner.requests}
    assert ids == {item.id}  # both attempts carry the item's id


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (Answer(400, "bad request"), "HTTP 400"),
        (Answer(404, "<html>not found</html>"), "HTTP 404"),
        (Answer(405, "method not allowed"), "HTTP 405"),
        (ocpi_error(2001, http=400, message="invalid or missing parameters"), "2001"),
        (ocpi_error(2003, message="unknown location"), "2003"),
    ],
    ids=["400", "404-html", "405", "2001", "2003-http200"],
)
async def test_permanent_errors_fail_at_once_and_block_the_key(h: Harness, answer: Answer, fragment: str) -> None:
    h.partner.fail("/sessions/S1", answer)
    first = await h.push("/sessions/S1", {"n": 1}, key="session:S1")
    second = await h.push("/sessions/S1", {"n": 2}, key="session:S1")
    other = await h.push("/sessions/S2", {"n": 1}, key="session:S2")
    deliveries = await h.worker.run_until_idle()
    assert outcomes(deliveries) == [("/sessions/S1", Outcome.FAILED), ("/sessions/S2", Outcome.DELIVERED)]
    failed = await h.item(first.id)
    assert (failed.status, failed.attempts) == (OutboxStatus.FAILED, 1)
    assert failed.last_error is not None and fragment in failed.last_error
    assert deliveries[0].error == failed.last_error
    # It blocks its key, however much time passes; the other key flows.
    h.clock.advance(86400)
    assert await h.worker.run_until_idle() == []
    assert (await h.item(second.id)).status is OutboxStatus.PENDING
    assert (await h.item(other.id)).status is OutboxStatus.DONE
    assert [i.id for i in await h.outbox.list(status=OutboxStatus.FAILED)] == [first.id]


async def test_401_is_retried_and_counted(h: Harness) -> None:
    h.policy = RetryPolicy(max_attempts=3)
    await h.reopen()
    h.partner.fail("/cdrs", Answer(401, "who are you"), ocpi_error(2000, http=401, message="Unauthorized"), Answer(401, ""))
    item = await h.push("/cdrs", method="POST")
    for attempt in (1, 2):
        [d] = await h.worker.run_once()
        assert d.outcome is Outcome.RETRY and d.next_attempt_at is not None
        assert (await h.item(item.id)).attempts == attempt
        h.clock.current = d.next_attempt_at
    [d] = await h.worker.run_once()
    assert d.outcome is Outcome.FAILED
    stored = await h.item(item.id)
    assert (stored.status, stored.attempts) == (OutboxStatus.FAILED, 3)
    assert stored.last_error is not None and stored.last_error.startswith("gave up after 3 attempts: ")
    assert "HTTP 401" in stored.last_error


async def test_age_policy_keeps_trying_through_a_long_outage(h: Harness) -> None:
    # The gateway's policy (Settings.outbox_give_up_hours): no attempt limit, an age one.
    h.policy = retry_policy(Settings(outbox_retry_cap=600, outbox_give_up_hours=72))
    await h.reopen()
    await h.partner.stop()
    item = await h.push("/cdrs", method="POST")
    attempts = 0
    while True:
        [d] = await h.worker.run_once()
        attempts += 1
        if d.outcome is not Outcome.RETRY:
            break
        assert d.next_attempt_at is not None
        assert (d.next_attempt_at - h.clock.now()).total_seconds() <= 600  # the cap
        h.clock.current = d.next_attempt_at
        if h.clock.now() - T0 >= timedelta(hours=24) and h.partner._runner is None:
            await h.partner.start()  # back after a day: delivered, not FAILED
    assert d.outcome is Outcome.DELIVERED and attempts > 100
    # A partner gone for good: FAILED once the item is 72 hours old, not before.
    await h.partner.stop()
    other = await h.push("/cdrs", method="POST")
    while True:
        [d] = await h.worker.run_once()
        if d.outcome is not Outcome.RETRY:
            break
        assert d.next_attempt_at is not None
        h.clock.current = d.next_attempt_at
    stored = await h.item(other.id)
    assert stored.status is OutboxStatus.FAILED
    assert timedelta(hours=72) <= h.clock.now() - stored.created_at <= timedelta(hours=72, minutes=10)
    assert (await h.item(item.id)).status is OutboxStatus.DONE


async def test_exhausted_item_replayed_gets_a_new_series(h: Harness) -> None:
    h.policy = RetryPolicy(max_attempts=3)
    await h.reopen()
    await h.partner.stop()
    item = await h.push("/cdrs", method="POST")
    for _ in range(3):
        [d] = await h.worker.run_once()
        if d.next_attempt_at is not None:
            h.clock.current = d.next_attempt_at
    assert d.outcome is Outcome.FAILED
    assert await h.outbox.replay(item.id)
    [d] = await h.worker.run_once()  # due at once after the replay
    assert d.outcome is Outcome.RETRY  # the 4th attempt starts a new series...
    assert d.next_attempt_at is not None
    assert (d.next_attempt_at - h.clock.now()).total_seconds() <= 2.0  # ...from the base delay
    await h.partner.start()
    h.clock.current = d.next_attempt_at
    assert outcomes(await h.worker.run_once()) == [("/cdrs", Outcome.DELIVERED)]
    assert (await h.item(item.id)).attempts == 4


async def test_unknown_or_unregistered_partner_fails(h: Harness) -> None:
    await h.add_partner("emsp-gone", PartnerStatus.UNREGISTERED)
    await h.add_partner("emsp-new", PartnerStatus.PENDING)
    gone = await h.push("/sessions/S1", partner_id="emsp-gone")
    pending = await h.push("/sessions/S2", partner_id="emsp-new")
    unknown = await h.push("/sessions/S3", partner_id="nobody")
    deliveries = await h.worker.run_until_idle()
    assert {d.outcome for d in deliveries} == {Outcome.FAILED}
    assert (await h.item(gone.id)).last_error == "partner emsp-gone is unregistered (status UNREGISTERED)"
    assert (await h.item(pending.id)).last_error == "partner emsp-new is unregistered (status PENDING)"
    assert (await h.item(unknown.id)).last_error == "partner nobody is unknown"
    assert h.partner.requests == []


# ------------------------------------------------------------------ ordering and concurrency


async def test_order_per_key_under_retries_while_other_keys_flow(h: Harness) -> None:
    h.partner.fail("/sessions/A/1", Answer(503), Answer(503), Answer(503), ocpi_error(3000))
    a = [await h.push(f"/sessions/A/{n}", key="session:A") for n in (1, 2, 3)]
    b = [await h.push(f"/sessions/B/{n}", key="session:B") for n in (1, 2, 3)]
    rounds: list[list[tuple[str, Outcome]]] = []
    for _ in range(30):
        done = outcomes(await h.worker.run_until_idle())
        if done:
            rounds.append(done)
        if all(i.status is OutboxStatus.DONE for i in [await h.item(i.id) for i in a + b]):
            break
        h.clock.advance(60)
    # The first round: A/1 fails and waits; B flows all the way meanwhile, one at a time.
    assert rounds[0] == [
        ("/sessions/A/1", Outcome.RETRY),
        ("/sessions/B/1", Outcome.DELIVERED),
        ("/sessions/B/2", Outcome.DELIVERED),
        ("/sessions/B/3", Outcome.DELIVERED),
    ]
    assert [r for rnd in rounds[1:] for r in rnd] == [
        ("/sessions/A/1", Outcome.RETRY),
        ("/sessions/A/1", Outcome.RETRY),
        ("/sessions/A/1", Outcome.RETRY),
        ("/sessions/A/1", Outcome.DELIVERED),
        ("/sessions/A/2", Outcome.DELIVERED),
        ("/sessions/A/3", Outcome.DELIVERED),
    ]
    assert h.partner.paths() == ["/sessions/B/1", "/sessions/B/2", "/sessions/B/3", "/sessions/A/1", "/sessions/A/2", "/sessions/A/3"]
    assert (await h.item(a[0].id)).attempts == 4


async def test_concurrent_across_keys_never_two_of_one_key(h: Harness) -> None:
    keys = ["K1", "K2", "K3"]
    for n in (1, 2):
        for k in keys:
            h.partner.fail(f"/sessions/{k}", Answer(delay=0.2))
            await h.push(f"/sessions/{k}", {"n": n}, key=k)
    # Two overlapping polls (as a notify during a slow round would cause) start each head once.
    first, second = await asyncio.gather(h.worker.run_once(), h.worker.run_once())
    assert sorted(outcomes(first + second)) == [(f"/sessions/{k}", Outcome.DELIVERED) for k in keys]
    assert h.partner.max_in_flight == 3  # the three keys at once
    rest = await h.worker.run_until_idle()
    assert len(rest) == 3
    assert h.partner.max_per_path == 1
    assert len(h.partner.requests) == 6
    assert Counter(r.correlation_id for r in h.partner.requests).most_common(1)[0][1] == 1  # no duplicates
    for k in keys:
        assert [r.body for r in h.partner.accepted() if r.path.endswith(k)] == [{"n": 1}, {"n": 2}]


# ------------------------------------------------------------------ the admin API


@web.middleware
async def _api_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    # What the admin API's middleware does with ApiError.
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.reason, exc.field)


@dataclass
class Admin:
    url: str
    http: aiohttp.ClientSession

    async def __call__(self, method: str, path: str) -> tuple[int, Any]:
        async with self.http.request(method, self.url + path) as r:
            return r.status, await r.json()


@pytest.fixture
async def admin(h: Harness) -> AsyncIterator[Admin]:
    app = web.Application(middlewares=[_api_errors])
    app.add_routes(outbox_routes())
    app[OUTBOX] = h.outbox
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    async with aiohttp.ClientSession() as http:
        yield Admin(f"http://127.0.0.1:{runner.addresses[0][1]}", http)
    await runner.cleanup()


async def test_admin_lists_and_replays_a_failed_item(h: Harness, admin: Admin) -> None:
    h.partner.fail("/cdrs", Answer(400, "bad CDR"))
    item = await h.push("/cdrs", {"id": "CDR-9"}, method="POST", key="cdr:CDR-9")
    other = await h.push("/sessions/S1")
    assert outcomes(await h.worker.run_until_idle()) == [("/cdrs", Outcome.FAILED), ("/sessions/S1", Outcome.DELIVERED)]

    status, listed = await admin("GET", "/outbox?status=failed")
    assert status == 200
    assert [i["id"] for i in listed] == [item.id]
    view = listed[0]
    assert "body" not in view
    assert view | {"last_error": None} == {
        "id": item.id, "seq": item.seq, "status": "failed", "partner_id": PARTNER, "module": "cdrs",
        "ordering_key": "cdr:CDR-9", "method": "POST", "url": item.url, "attempts": 1, "last_error": None,
        "created_at": "2026-11-23T12:00:00Z", "next_attempt_at": "2026-11-23T12:00:00Z", "meta": None,
    }
    assert "HTTP 400" in view["last_error"]
    _, listed = await admin("GET", f"/outbox?partner_id={PARTNER}&include_body=true&limit=1&offset=1")
    assert [(i["id"], i["body"]) for i in listed] == [(other.id, {"p": "/sessions/S1"})]
    _, listed = await admin("GET", "/outbox?status=done")
    assert [i["id"] for i in listed] == [other.id]
    status, one = await admin("GET", f"/outbox/{item.id}")
    assert (status, one["body"], one["status"]) == (200, {"id": "CDR-9"}, "failed")
    assert (await admin("GET", "/outbox?status=lost"))[0] == 400
    assert (await admin("GET", "/outbox?limit=0"))[0] == 400
    assert (await admin("GET", "/outbox/nope"))[0] == 404

    # Replay with the background worker running: it is woken at once (the poll
    # interval is far longer than the test's patience).
    h.worker.poll_interval = 300
    await h.worker.start()
    status, body = await admin("POST", f"/outbox/{item.id}/replay")
    assert status == 200 and body["status"] in ("pending", "done")
    await eventually(lambda: _status_is(h, item.id, OutboxStatus.DONE))
    assert [r.body for r in h.partner.accepted() if r.path.endswith("/cdrs")] == [{"id": "CDR-9"}]
    assert (await h.item(item.id)).attempts == 1  # kept over a replay; the success is not counted

    status, body = await admin("POST", f"/outbox/{item.id}/replay")
    assert (status, body["error"]) == (409, f"outbox item {item.id!r} is done, not failed")
    assert (await admin("POST", f"/outbox/{item.id}/discard"))[0] == 409
    assert (await admin("POST", "/outbox/nope/replay"))[0] == 404
    assert (await admin("POST", "/outbox/nope/discard"))[0] == 404


async def _status_is(h: Harness, item_id: str, status: OutboxStatus) -> bool:
    return (await h.item(item_id)).status is status


async def test_admin_discard_unblocks_the_key(h: Harness, admin: Admin) -> None:
    h.partner.fail("/sessions/S1/1", ocpi_error(2001, message="bad patch"))
    first = await h.push("/sessions/S1/1", key="session:S1")
    second = await h.push("/sessions/S1/2", key="session:S1")
    assert outcomes(await h.worker.run_until_idle()) == [("/sessions/S1/1", Outcome.FAILED)]
    assert (await admin("POST", f"/outbox/{second.id}/discard"))[0] == 409  # pending, not failed
    status, body = await admin("POST", f"/outbox/{first.id}/discard")
    assert (status, body["status"]) == (200, "done")
    assert outcomes(await h.worker.run_until_idle()) == [("/sessions/S1/2", Outcome.DELIVERED)]
    assert h.partner.paths() == ["/sessions/S1/2"]  # the discarded one was never delivered
    assert (await h.item(first.id)).status is OutboxStatus.DONE
    assert (await admin("POST", f"/outbox/{first.id}/replay"))[0] == 409


# ------------------------------------------------------------------ durability


async def test_survives_restarts(h: Harness) -> None:
    await h.partner.stop()
    cdr = await h.push("/cdrs", {"id": "CDR-1", "total_energy": 12.5}, method="POST", key="cdr:CDR-1")
    # Enqueued atomically with a document write, as the bridge does.
    patch = h.outbox.make_item(PARTNER, "patch", h.partner.url + "/sessions/S1", {"kwh": 3}, ordering_key="session:S1", module="sessions")
    await h.store.sessions.put(Document("S1", {"id": "S1"}, T0), enqueue=[patch])
    h.outbox.notify()
    assert outcomes(await h.worker.run_until_idle()) == [("/cdrs", Outcome.RETRY), ("/sessions/S1", Outcome.RETRY)]

    await h.reopen()  # worker stopped, store closed; a new process opens it again
    assert [(i.id, i.status, i.attempts) for i in await h.outbox.list()] == [
        (cdr.id, OutboxStatus.PENDING, 1), (patch.id, OutboxStatus.PENDING, 1)
    ]
    await h.partner.start()
    h.clock.advance(5)
    assert {d.outcome for d in await h.worker.run_until_idle()} == {Outcome.DELIVERED}
    received = sorted(h.partner.accepted(), key=lambda r: r.method)  # concurrent: any order
    assert [(r.method, r.body) for r in received] == [("PATCH", {"kwh": 3}), ("POST", {"id": "CDR-1", "total_energy": 12.5})]

    await h.reopen()
    h.clock.advance(86400)
    assert await h.worker.run_until_idle() == []
    assert len(h.partner.requests) == 2


async def test_stopping_mid_delivery_keeps_the_item(h: Harness) -> None:
    h.partner.fail("/cdrs", Answer(delay=30))  # the partner hangs
    item = await h.push("/cdrs", method="POST")
    h.worker = OutboxWorker(h.store.outbox, h.registry, h.clock, h.rng, stop_timeout=0.1)
    await h.worker.start()
    h.worker.notify()
    await asyncio.wait_for(h.partner.arrived.wait(), 5)
    assert h.worker.in_flight == 1
    await h.worker.stop()  # gives up waiting, cancels the request
    assert h.worker.in_flight == 0
    stored = await h.item(item.id)
    assert (stored.status, stored.attempts) == (OutboxStatus.PENDING, 0)
    await h.reopen()
    assert outcomes(await h.worker.run_once()) == [("/cdrs", Outcome.DELIVERED)]
    # The hung request reached the partner too: at least once, same correlation id.
    assert {r.correlation_id for r in h.partner.requests} == {item.id}


class FlakyOutbox:
    """The real outbox store, whose ``complete`` fails the first ``failures`` times."""

    def __init__(self, inner: Any, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def complete(self, item_id: str, *, at: datetime | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise StorageError("disk full")
        await self.inner.complete(item_id, at=at)


async def test_store_failure_after_delivery_retries_after_a_pause(h: Harness) -> None:
    h.worker = OutboxWorker(FlakyOutbox(h.store.outbox, 1), h.registry, h.clock, h.rng, poll_interval=0.2)  # type: ignore[arg-type]
    item = await h.push("/cdrs", {"id": "CDR-1"}, method="POST")
    [d] = await h.worker.run_once()
    assert d.outcome is Outcome.ERROR and d.error is not None and "disk full" in d.error
    assert (await h.item(item.id)).status is OutboxStatus.PENDING  # not known to be delivered
    assert await h.worker.run_once() == []  # its key rests for a poll interval
    await asyncio.sleep(0.3)
    assert outcomes(await h.worker.run_once()) == [("/cdrs", Outcome.DELIVERED)]
    # At least once: the partner saw it twice, with one correlation id to dedupe on.
    assert [r.correlation_id for r in h.partner.accepted()] == [item.id, item.id]


# ------------------------------------------------------------------ retention


DAY = 86400.0


def retaining_worker(h: Harness, **kwargs: Any) -> OutboxWorker:
    """A worker on the harness's store and clock that purges after one day."""
    options: dict[str, Any] = {"retention": timedelta(days=1), "purge_interval": 3600.0}
    options.update(kwargs)
    h.worker = OutboxWorker(h.store.outbox, h.registry, h.clock, h.rng, **options)
    return h.worker


async def test_completion_times_come_from_the_clock(h: Harness) -> None:
    worker = retaining_worker(h)
    h.partner.fail("/sessions/S1", ocpi_error(2001, message="bad"))
    delivered = await h.push("/sessions/S2")
    failed = await h.push("/sessions/S1")
    h.clock.advance(30)
    assert len(await worker.run_once()) == 2
    assert (await h.item(delivered.id)).completed_at == T0 + timedelta(seconds=30)
    assert (await h.item(failed.id)).completed_at is None
    h.clock.advance(30)
    assert await h.outbox.discard(failed.id) is True
    assert (await h.item(failed.id)).completed_at == T0 + timedelta(seconds=60)


async def test_periodic_purge_of_delivered_items_by_the_clock(h: Harness) -> None:
    worker = retaining_worker(h, purge_batch=2)
    h.partner.fail("/sessions/bad", ocpi_error(2001, message="bad"))
    done = [await h.push(f"/sessions/S{n}") for n in range(3)]
    failed = await h.push("/sessions/bad")
    blocked = await h.push("/sessions/bad/2", key="/sessions/bad")  # waits behind failed
    later = await h.push("/sessions/later", key="/sessions/later")
    await h.store.outbox.retry_later(later.id, T0 + timedelta(days=30), "not yet")
    assert len(await worker.run_until_idle()) == 4  # 3 delivered (at T0), 1 FAILED

    assert await worker.purge_if_due() == 0  # the first check: nothing is a day old
    h.clock.advance(DAY)
    assert await worker.purge_if_due() == 0  # done at T0: not *before* T0 + 1 day - 1 day
    h.clock.advance(1)
    assert await worker.purge_if_due() == 0  # next purge due an hour after the last check
    h.clock.advance(3600)
    assert await worker.purge_if_due() == 2  # a full batch: more may be waiting...
    assert await worker.purge_if_due() == 1  # ...so the next one does not wait an hour
    assert await worker.purge_if_due() == 0  # (nothing left)
    for item in done:
        assert await h.store.outbox.get(item.id) is None
    # PENDING and FAILED items stay, however old, and keep their order.
    remaining = await h.store.outbox.list()
    assert [item.id for item in remaining] == [failed.id, blocked.id, later.id]
    assert [i.status for i in remaining] == [OutboxStatus.FAILED, OutboxStatus.PENDING, OutboxStatus.PENDING]
    assert await h.due() == []  # the blocked key stays blocked
    # Discarded now: kept for a day from now, then purged; the key flows meanwhile.
    assert await h.outbox.discard(failed.id) is True
    assert outcomes(await worker.run_until_idle()) == [("/sessions/bad/2", Outcome.DELIVERED)]
    h.clock.advance(3600)
    assert await worker.purge_if_due() == 0
    h.clock.advance(DAY)
    assert await worker.purge_if_due() == 2
    assert [item.id for item in await h.store.outbox.list()] == [later.id]
    assert h.partner.paths() == ["/sessions/S0", "/sessions/S1", "/sessions/S2", "/sessions/bad/2"]


async def test_the_background_loop_purges(h: Harness) -> None:
    worker = retaining_worker(h, poll_interval=0.05)
    item = await h.push("/cdrs", {"id": "CDR-1"}, method="POST")
    await worker.run_once()
    async with worker:
        await asyncio.sleep(0.2)  # several polls, a purge check: the item is a fresh one
        assert (await h.item(item.id)).status is OutboxStatus.DONE
        h.clock.advance(DAY + 3600)
        await eventually(lambda: _is_gone(h, item.id))


async def _is_gone(h: Harness, item_id: str) -> bool:
    return await h.store.outbox.get(item_id) is None


async def test_no_retention_keeps_delivered_items(h: Harness) -> None:
    worker = retaining_worker(h, retention=None)
    item = await h.push("/cdrs", {"id": "CDR-1"}, method="POST")
    await worker.run_once()
    h.clock.advance(365 * DAY)
    assert await worker.purge_if_due() == 0
    assert (await h.item(item.id)).status is OutboxStatus.DONE


def test_retention_settings_are_validated() -> None:
    store: Any = object()
    with pytest.raises(ValueError, match="retention"):
        OutboxWorker(store, store, FakeClock(), random.Random(), retention=timedelta(0))
    with pytest.raises(ValueError, match="purge"):
        OutboxWorker(store, store, FakeClock(), random.Random(), purge_batch=0)
    with pytest.raises(ValueError, match="retention_days"):
        make_outbox_ctx(web.AppKey("s", Store), web.AppKey("c", FakeClock), web.AppKey("i", Ids), retention_days=0)  # type: ignore[arg-type]
    assert Settings().outbox_retention_days == 7
    with pytest.raises(pydantic.ValidationError):
        Settings(outbox_retention_days=0)


# ------------------------------------------------------------------ the background loop, hooks


async def test_background_loop_wakes_on_enqueue_and_polls_for_retries(h: Harness) -> None:
    worker = OutboxWorker(h.store.outbox, h.registry, h.clock, h.rng, poll_interval=0.05)
    h.worker = worker
    outbox = Outbox(h.store.outbox, h.clock, h.ids, notify=worker.notify)
    async with worker:
        assert worker.running
        item = await outbox.enqueue(PARTNER, "PUT", h.partner.url + "/locations/L1", {"id": "L1"}, ordering_key="location:L1", module="locations")
        await eventually(lambda: _status_is(h, item.id, OutboxStatus.DONE))

        h.partner.fail("/locations/L2", Answer(503))
        item = await outbox.enqueue(PARTNER, "PUT", h.partner.url + "/locations/L2", {"id": "L2"}, ordering_key="location:L2", module="locations")
        await eventually(lambda: _attempts_are(h, item.id, 1))
        await asyncio.sleep(0.2)  # several polls: not due yet by the (fake) clock
        assert (await h.item(item.id)).status is OutboxStatus.PENDING
        h.clock.advance(10)  # the retry becomes due; the periodic poll finds it
        await eventually(lambda: _status_is(h, item.id, OutboxStatus.DONE))
    assert not worker.running
    assert h.partner.paths() == ["/locations/L1", "/locations/L2"]


async def _attempts_are(h: Harness, item_id: str, attempts: int) -> bool:
    return (await h.item(item_id)).attempts == attempts


async def test_notify_after_document_put_wakes_the_worker(h: Harness) -> None:
    h.worker = OutboxWorker(h.store.outbox, h.registry, h.clock, h.rng, poll_interval=300)
    outbox = Outbox(h.store.outbox, h.clock, h.ids, notify=h.worker.notify)
    async with h.worker:
        await asyncio.sleep(0.05)  # the loop's first (empty) poll is over; it now sleeps 300 s
        item = outbox.make_item(PARTNER, "PUT", h.partner.url + "/sessions/S9", {"id": "S9"}, ordering_key="session:S9", module="sessions")
        await h.store.sessions.put(Document("S9", {"id": "S9"}, T0), enqueue=[item])
        outbox.notify()
        await eventually(lambda: _status_is(h, item.id, OutboxStatus.DONE), timeout=2)


async def test_delivery_hooks(h: Harness) -> None:
    seen: list[tuple[str, int, Any]] = []

    async def delivered(item: OutboxItem, reply: OcpiReply) -> None:
        seen.append((item.id, reply.status_code, (item.meta or {}).get("command_id")))

    async def broken(item: OutboxItem, reply: OcpiReply) -> None:
        raise RuntimeError("hook bug")

    h.worker.on_delivered("command_result", delivered)
    h.worker.on_delivered("command_result", broken)
    h.partner.fail("/commands/START_SESSION/c2", Answer(404, "gone"))
    ok = await h.push("/commands/START_SESSION/c1", method="POST", meta={"kind": "command_result", "command_id": "c1"})
    failed = await h.push("/commands/START_SESSION/c2", method="POST", meta={"kind": "command_result", "command_id": "c2"})
    other = await h.push("/sessions/S1", meta={"kind": "something_else"})
    plain = await h.push("/sessions/S2")
    deliveries = await h.worker.run_until_idle()
    assert {d.item.id: d.outcome for d in deliveries} == {
        ok.id: Outcome.DELIVERED, failed.id: Outcome.FAILED, other.id: Outcome.DELIVERED, plain.id: Outcome.DELIVERED
    }
    assert seen == [(ok.id, 1000, "c1")]
    assert (await h.item(ok.id)).status is OutboxStatus.DONE  # a failing hook changes nothing


# ------------------------------------------------------------------ pure parts


def test_make_item_validates() -> None:
    clock, ids = FakeClock(T0), Ids()
    item = make_item(ids, clock, "p", "put", "https://x.example/ocpi/2.2.1/locations/NL/GWY/L1", {"id": "L1"}, ordering_key="location:L1", module="locations")
    assert (item.id, item.method, item.status, item.created_at, item.next_attempt_at) == ("item-0001", "PUT", OutboxStatus.PENDING, T0, T0)
    with pytest.raises(ValueError, match="method"):
        make_item(ids, clock, "p", "TRACE", "https://x.example/", None, ordering_key="k", module=None)
    with pytest.raises(ValueError, match="url"):
        make_item(ids, clock, "p", "PUT", "/relative", None, ordering_key="k", module=None)
    with pytest.raises(ValueError, match="ordering_key"):
        make_item(ids, clock, "p", "PUT", "https://x.example/", None, ordering_key="", module=None)


def _status(code: int, http: int = 200) -> OcpiStatusError:
    return OcpiStatusError(method="PUT", url="u", status_code=code, status_message=None, http_status=http)


def _http(status: int) -> OcpiHttpError:
    return OcpiHttpError("x", method="PUT", url="u", http_status=status, body="")


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (OcpiTransportError("refused", method="PUT", url="u"), True),
        (OcpiTimeoutError("slow", method="PUT", url="u"), True),
        (OcpiInvalidResponseError("html", method="PUT", url="u"), True),
        (_http(500), True), (_http(502), True), (_http(503), True), (_http(504), True),
        (_http(401), True), (_http(408), True), (_http(429), True),
        (_http(400), False), (_http(403), False), (_http(404), False), (_http(405), False),
        (_http(413), False), (_http(301), True), (_http(302), True), (_http(307), True),
        (_status(3000), True), (_status(3001, 500), True), (_status(3004), True), (_status(4001), True),
        (_status(2000), False), (_status(2001, 400), False), (_status(2003, 404), False),
        (_status(2000, 401), True), (_status(2001, 503), False),
    ],
)
def test_retry_classification(exc: OcpiClientError, retry: bool) -> None:
    assert is_retryable(exc) is retry

