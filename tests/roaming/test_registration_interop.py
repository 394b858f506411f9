"""Registering at a strict partner (issue 9, point 3): the partner checks our versions and
version details with the token we just sent before it answers our credentials POST
(credentials.asciidoc, registration). Both URL spaces: a bilateral eMSP at ``/ocpi`` and
a platform the hub registers at, ``/ocpi/hub``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.hub.test_gateway_hub import free_port
from tests.roaming.strict_peer import StrictPeer, routing_headers_of, token_header


@pytest.fixture
async def peer() -> AsyncIterator[StrictPeer]:
    platform = StrictPeer()
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


async def _gateway(gateways: GatewayFactory) -> Gateway:
    # The partner calls back the URLs we give it: the gateway must know its own port.
    return await gateways.start(port=free_port())


async def _get(url: str, token: str) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=token_header(token)) as r:
        await r.read()
        return r.status, dict(r.headers)


@pytest.mark.parametrize(("kind", "mount"), [("PEER", "/ocpi"), ("HUB", "/ocpi/hub")])
async def test_register_at_a_partner_that_checks_us_first(
    gateways: GatewayFactory, peer: StrictPeer, kind: str, mount: str
) -> None:
    gw = await _gateway(gateways)
    _, partner = await gw.admin("POST", "/partners", {"name": "Strict", "kind": kind})
    status, view = await gw.admin(
        "POST",
        f"/partners/{partner['id']}/register",
        {"versions_url": f"{peer.url}/ocpi/versions", "token": peer.token_a},
    )
    assert status == 200, view
    assert view["status"] == "REGISTERED"
    (post,) = peer.posts
    token = post.body["token"]
    assert post.body["url"] == f"{gw.settings.base_url}{mount}/versions"
    # The peer reached our versions and version details with that token before it
    # answered, and got OCPI answers without routing headers (configuration modules).
    assert [(c.url, c.status, c.status_code) for c in peer.checks] == [
        (f"{gw.settings.base_url}{mount}/versions", 200, 1000),
        (f"{gw.settings.base_url}{mount}/2.2.1", 200, 1000),
    ]
    assert [c.routing_headers for c in peer.checks] == [{}, {}]
    # Until the POST was answered, the token opened nothing else.
    assert peer.early_call is not None and peer.early_call[1] == 401
    assert peer.their_token == token
    # Now it is the partner's token: it reaches our credentials (and the rest).
    status, _ = await _get(f"{gw.settings.base_url}{mount}/2.2.1/credentials", token)
    assert status == 200
    # Neither our POST nor our discovery carried routing headers.
    assert routing_headers_of(post.headers) == {}
    assert all(routing_headers_of(r.headers) == {} for r in peer.discovery)
    # The gateway calls the partner with the token the partner answered.
    assert all(r.token in (peer.token_a, peer.token_b) for r in peer.discovery)


@pytest.mark.parametrize(("kind", "mount"), [("PEER", "/ocpi"), ("HUB", "/ocpi/hub")])
async def test_failed_post_forgets_the_token_and_stays_pending(
    gateways: GatewayFactory, peer: StrictPeer, kind: str, mount: str
) -> None:
    gw = await _gateway(gateways)
    _, partner = await gw.admin("POST", "/partners", {"name": "Strict", "kind": kind})
    peer.refuse_post = True
    path = f"/partners/{partner['id']}/register"
    body = {"versions_url": f"{peer.url}/ocpi/versions", "token": peer.token_a}
    status, answer = await gw.admin("POST", path, body)
    assert status == 502, answer
    assert [c.status for c in peer.checks] == [200, 200]  # it was good while in flight
    sent = peer.posts[0].body["token"]
    status, _ = await _get(f"{gw.settings.base_url}{mount}/versions", sent)
    assert status == 401  # and is forgotten now
    _, view = await gw.admin("GET", f"/partners/{partner['id']}")
    assert view["status"] == "PENDING"
    # Our token A for this partner still works (it may still register with us instead).
    assert (await _get(f"{gw.settings.base_url}{mount}/versions", partner["token_a"]))[0] == 200
    # A second attempt, which the partner takes, succeeds with a new token.
    peer.refuse_post = False
    status, view = await gw.admin("POST", path, body)
    assert status == 200 and view["status"] == "REGISTERED", view
    assert peer.their_token is not None and peer.their_token != sent
    assert (await _get(f"{gw.settings.base_url}{mount}/2.2.1/credentials", peer.their_token))[0] == 200
    assert (await _get(f"{gw.settings.base_url}{mount}/versions", sent))[0] == 401
