"""The hub's direct forwarding follows a receiver's 307/308 as the outbox's OCPI client
does (issue 9, point 2): same method and body, same origin only, a bounded number of hops."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ocpi.hub.forward import Forwarder
from ocpi.hub.http1 import Http1Client
from ocpi.hub.routing import Forward
from ocpi.transport import HubError, PartyId
from tests.hub.servers import running

EM1, CP1 = PartyId("NL", "EM1"), PartyId("NL", "CP1")
OK = b'{"status_code":1000,"timestamp":"2024-01-01T00:00:00Z"}'


class Moved:
    """``/old/...`` answers ``status`` to ``/new/...`` (or to ``elsewhere``); ``/new/``
    answers 1000 and records what it got; ``/loop/`` redirects to itself plus a slash."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.elsewhere: str | None = None
        self.got: list[tuple[str, str, bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        if path.startswith("/old/"):
            location = self.elsewhere or path.replace("/old/", "/new/", 1)
            return web.Response(status=self.status, headers={"Location": location})
        if path.startswith("/loop"):
            return web.Response(status=self.status, headers={"Location": path + "x"})
        self.got.append((request.method, path, await request.read()))
        return web.Response(body=OK, content_type="application/json")


@pytest.fixture
async def session() -> AsyncIterator[Http1Client]:
    async with Http1Client() as s:
        yield s


async def serve(moved: Moved) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", moved.handle)
    async with running(app) as url:
        yield url


async def token(platform_id: str) -> str | None:
    return "t"


@pytest.mark.parametrize("status", [307, 308])
async def test_a_moved_endpoint_is_followed_with_method_and_body(
    session: Http1Client, status: int
) -> None:
    moved = Moved(status)
    async for url in serve(moved):
        answer = await Forwarder(session, token).send(
            Forward(EM1, CP1, "cpo1", f"{url}/old/locations", ("NL", "CP1", "L1")),
            method="PUT",
            correlation_id="c",
            body=b'{"id":"L1"}',
        )
        assert answer.status == 200 and answer.body == OK
        assert moved.got == [("PUT", "/new/locations/NL/CP1/L1", b'{"id":"L1"}')]


async def test_other_origins_loops_and_other_redirects_are_not_followed(
    session: Http1Client,
) -> None:
    moved = Moved(307)
    moved.elsewhere = "http://192.0.2.1:9/new/locations"  # another origin: the token stays
    async for url in serve(moved):
        forward = Forward(EM1, CP1, "cpo1", f"{url}/old/locations", ())
        with pytest.raises(HubError, match="HTTP 307"):
            await Forwarder(session, token).send(forward, method="GET", correlation_id="c")
        loop = Forward(EM1, CP1, "cpo1", f"{url}/loop", ())
        with pytest.raises(HubError, match="HTTP 307"):
            await Forwarder(session, token, max_redirects=3).send(
                loop, method="GET", correlation_id="c"
            )
        moved.status, moved.elsewhere = 302, None
        with pytest.raises(HubError, match="HTTP 302"):
            await Forwarder(session, token).send(forward, method="GET", correlation_id="c")
    assert moved.got == []
