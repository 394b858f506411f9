"""Command response_url proxying: rewrite, resolve, and a result delivered for real."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from ocpi.hub.forward import Forwarder
from ocpi.hub.http1 import Http1Client
from ocpi.hub.response_url import InMemoryResponseUrlStore, ResponseUrlProxy
from ocpi.transport import OcpiError, PartyId, json_loads
from tests.hub.servers import running

EM1, CP1, CP2 = PartyId("NL", "EM1"), PartyId("NL", "CP1"), PartyId("DE", "CP2")
BASE = "https://hub.example.com/ocpi/2.2.1/commands/results"
COMMAND = b'{"response_url":"https://emsp.example.com/cmd/42?x=1","token":{"uid":"T1","contract_id":"NL-EM1-1","valid":true,"amount":0.10},"location_id":"L1"}'


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def make() -> tuple[ResponseUrlProxy, InMemoryResponseUrlStore, Clock]:
    store, clock = InMemoryResponseUrlStore(), Clock()
    return ResponseUrlProxy(store, BASE, clock=clock, ttl=timedelta(minutes=10)), store, clock


async def test_round_trip() -> None:
    proxy, store, _ = make()
    rewritten = await proxy.rewrite_command(COMMAND, requester=EM1, receiver=CP1)
    command = json_loads(rewritten)
    hub_url = command["response_url"]
    assert hub_url.startswith(BASE + "/") and "emsp.example.com" not in hub_url
    # everything else unchanged, numbers exact
    assert b'"amount":0.10' in rewritten and command["location_id"] == "L1"
    proxy_id = proxy.proxy_id(hub_url)
    assert proxy_id is not None and len(proxy_id) >= 40
    # the store never holds the id itself
    assert proxy_id not in store.entries and len(store.entries) == 1
    entry = await proxy.resolve(proxy_id, poster=CP1)
    assert entry.url == "https://emsp.example.com/cmd/42?x=1" and entry.requester == EM1
    assert (await proxy.resolve(proxy_id)).receiver == CP1  # repeated results still go


async def test_ids_are_unique_and_unguessable() -> None:
    proxy, _, _ = make()
    urls = {await proxy.proxy("https://e/x", requester=EM1, receiver=None) for _ in range(200)}
    assert len(urls) == 200


async def test_unknown_expired_and_wrong_poster_are_404() -> None:
    proxy, store, clock = make()
    hub_url = await proxy.proxy("https://e/x", requester=EM1, receiver=CP1)
    proxy_id = proxy.proxy_id(hub_url)
    assert proxy_id
    for bad, poster in (("nope", None), (proxy_id, CP2)):
        with pytest.raises(OcpiError) as info:
            await proxy.resolve(bad, poster=poster)
        assert info.value.http_status == 404
    clock.now += timedelta(minutes=10)
    with pytest.raises(OcpiError):
        await proxy.resolve(proxy_id, poster=CP1)
    assert store.prune(clock.now) == 1 and not store.entries


async def test_rewrite_requires_response_url() -> None:
    proxy, _, _ = make()
    for body in (b'{"location_id":"L1"}', b"[]", b"nope", b'{"response_url": 5}'):
        with pytest.raises(OcpiError) as info:
            await proxy.rewrite_command(body, requester=EM1, receiver=CP1)
        assert info.value.status_code == 2001


def test_proxy_id_parsing() -> None:
    proxy, _, _ = make()
    assert proxy.proxy_id(BASE + "/abc") == "abc"
    assert proxy.proxy_id(BASE + "/") is None
    assert proxy.proxy_id(BASE + "/a/b") is None
    assert proxy.proxy_id("https://hub.example.com/other/abc") is None


async def test_command_result_reaches_the_emsp() -> None:
    """The CPO's CommandResult, POSTed to the hub URL, is delivered to the eMSP's own
    response_url byte for byte, with the hub's token for the eMSP platform."""
    received: list[tuple[str, bytes, str]] = []

    async def emsp(request: web.Request) -> web.Response:
        received.append(
            (request.path_qs, await request.read(), request.headers["X-Correlation-ID"])
        )
        return web.json_response({"status_code": 1000, "timestamp": "2024-01-01T00:00:00Z"})

    app = web.Application()
    app.router.add_post("/cmd/{id}", emsp)
    async with running(app) as url:
        proxy, _, _ = make()
        command = COMMAND.replace(b"https://emsp.example.com", url.encode())
        hub_url = json_loads(await proxy.rewrite_command(command, requester=EM1, receiver=CP1))[
            "response_url"
        ]
        # ... the CPO later POSTs the result to hub_url:
        entry = await proxy.resolve(proxy.proxy_id(hub_url) or "", poster=CP1)
        result = b'{"result":"ACCEPTED"}'

        async def tokens(platform_id: str) -> str:
            return "tok"

        async with Http1Client() as session:
            response = await Forwarder(session, tokens).request(
                "emsp1",
                "POST",
                entry.url,
                correlation_id="corr",
                body=result,
                from_party=CP1,
                to_party=entry.requester,
            )
        assert response.status == 200
        assert received == [("/cmd/42?x=1", result, "corr")]
