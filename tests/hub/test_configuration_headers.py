"""No routing headers on the configuration modules (issue 9, point 4): credentials,
versions and hubclientinfo requests and responses carry no OCPI-from/to-* headers
(transport_and_format, Message Routing: "routing headers SHALL NOT be used with these
modules"), while routed modules keep them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.hub.platform import Platform, token_header
from tests.hub.test_gateway_hub import eventually, free_port, join
from tests.roaming.strict_peer import routing_headers_of

HOSTED = ("ZZ", "GWY")


@dataclass
class Pair:
    gateway: Gateway
    emsp: Platform
    cpo: Platform


@pytest.fixture
async def pair(gateways: GatewayFactory) -> AsyncIterator[Pair]:
    gateway = await gateways.start(port=free_port())
    emsp = Platform("eMSP One", "EMSP", [("NL", "EM1")])
    cpo = Platform("CPO X", "CPO", [("BE", "CPX")])
    for platform in (emsp, cpo):
        await platform.start()
    try:
        for platform in (emsp, cpo):
            await join(gateway, platform)
        yield Pair(gateway, emsp, cpo)
    finally:
        for platform in (emsp, cpo):
            await platform.stop()


async def test_client_info_pushes_carry_no_routing_headers(pair: Pair) -> None:
    emsp, cpo = pair.emsp, pair.cpo
    # Each platform hears of the hosted CPO and of the other platform.
    for platform, other in ((emsp, cpo), (cpo, emsp)):
        puts = await eventually(lambda p=platform: p.got("hubclientinfo", "PUT") if len(p.got("hubclientinfo", "PUT")) >= 2 else None)
        assert {r.path.rsplit("/", 2)[-2] + "*" + r.path.rsplit("/", 1)[-1] for r in puts} == {
            "ZZ*GWY",
            "*".join(other.party),
        }
        for r in puts:
            assert routing_headers_of(r.headers) == {}, (r.path, dict(r.headers))


async def test_configuration_module_responses_carry_no_routing_headers(pair: Pair) -> None:
    emsp = pair.emsp
    hub = pair.gateway.settings.base_url + "/ocpi/hub"
    # The platform (wrongly) sends routing headers: they are ignored, none come back.
    for url in (
        f"{hub}/versions",
        f"{hub}/2.2.1",
        emsp.hub_url("credentials", "SENDER"),
        emsp.hub_url("hubclientinfo", "SENDER"),
    ):
        reply = await emsp.call("GET", url, to=HOSTED)
        assert (reply.status, reply.body["status_code"]) == (200, 1000), (url, reply.body)
        assert routing_headers_of(reply.headers) == {}, (url, dict(reply.headers))
    # A routed module does carry them, swapped, on its answer (the check above can fail).
    reply = await emsp.call("GET", emsp.hub_url("locations", "SENDER"), to=HOSTED)
    assert reply.body["status_code"] == 1000, reply.body
    assert routing_headers_of(reply.headers) != {}


async def test_bilateral_configuration_modules_carry_no_routing_headers(gateway: Gateway) -> None:
    from tests.roaming.emsp import EmspPlatform

    emsp = EmspPlatform()
    await emsp.start()
    try:
        _, partner = await gateway.admin("POST", "/partners", {"name": "eMSP"})
        base = f"{gateway.url}/ocpi"
        routing = {
            "OCPI-from-country-code": "NL",
            "OCPI-from-party-id": "EMS",
            "OCPI-to-country-code": "ZZ",
            "OCPI-to-party-id": "GWY",
        }
        async with aiohttp.ClientSession() as s:

            async def call(method: str, url: str, token: str, body: object = None) -> dict[str, object]:
                headers = token_header(token) | routing
                async with s.request(method, url, json=body, headers=headers) as r:
                    data = await r.json()
                    assert r.status == 200 and data["status_code"] == 1000, (url, data)
                    assert routing_headers_of(r.headers) == {}, (url, dict(r.headers))
                    assert isinstance(data, dict)
                    return data

            token_a = partner["token_a"]
            await call("GET", f"{base}/versions", token_a)
            await call("GET", f"{base}/2.2.1", token_a)
            answer = await call("POST", f"{base}/2.2.1/credentials", token_a, emsp.credentials(emsp.token_b))
            data = answer["data"]
            assert isinstance(data, dict)
            token_c = str(data["token"])
            await call("GET", f"{base}/2.2.1/credentials", token_c)
            # Malformed routing headers do not matter on a configuration module either.
            async with s.get(
                f"{base}/versions", headers=token_header(token_c) | {"OCPI-from-country-code": "NOT A CODE", "OCPI-from-party-id": "X"}
            ) as r:
                assert r.status == 200 and routing_headers_of(r.headers) == {}
            # Control: a module answer swaps the request's routing headers.
            async with s.get(f"{base}/2.2.1/locations", headers=token_header(token_c) | routing) as r:
                assert r.status == 200
                assert routing_headers_of(r.headers) == {
                    "OCPI-from-country-code": "ZZ",
                    "OCPI-from-party-id": "GWY",
                    "OCPI-to-country-code": "NL",
                    "OCPI-to-party-id": "EMS",
                }
    finally:
        await emsp.stop()
