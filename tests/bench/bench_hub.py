"""Hub forwarding benchmark: what routing through the hub adds to an OCPI request.

    .venv/bin/python tests/bench/bench_hub.py [--seconds 3] [--requests 5000] [--concurrency 1 16]

Three processes on loopback: a receiver (a CPO's locations Sender and Receiver: a GET
list answers a page of 10 locations, about 6 kB; a PUT answers an empty success), a
minimal hub (an aiohttp app built from :mod:`ocpi.hub`: the routing decision over a
small directory, then :class:`~ocpi.hub.forward.Forwarder` with Link rewrite, one
keep-alive connection pool towards the receiver), and this load generator. For GET
and PUT, the same requests are sent directly to the receiver and through the hub, one
``--concurrency`` level at a time, each run bounded by ``--seconds`` and
``--requests``; figures are requests/s and p50/p99 latency, then the latency the hub
adds (through minus direct). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp
from aiohttp import web

LOCATIONS_PATH = "/ocpi/cpo/2.2.1/locations"


def location(i: int) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "CP1",
        "id": f"LOC{i}",
        "publish": True,
        "address": "Stationsplein 1",
        "city": "Amsterdam",
        "country": "NLD",
        "coordinates": {"latitude": "52.378900", "longitude": "4.900100"},
        "time_zone": "Europe/Amsterdam",
        "evses": [
            {
                "uid": f"EVSE{i}-{j}",
                "status": "AVAILABLE",
                "connectors": [
                    {
                        "id": "1",
                        "standard": "IEC_62196_T2",
                        "format": "SOCKET",
                        "power_type": "AC_3_PHASE",
                        "max_voltage": 230,
                        "max_amperage": 32,
                        "last_updated": "2024-01-01T00:00:00Z",
                    }
                ],
                "last_updated": "2024-01-01T00:00:00Z",
            }
            for j in range(2)
        ],
        "last_updated": "2024-01-01T00:00:00Z",
    }


# ------------------------------------------------------------------ processes


def _serve(build: Callable[..., web.Application], args: tuple[Any, ...], port_out: Any) -> None:
    async def main() -> None:
        app = build(*args)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_out.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


def build_receiver() -> web.Application:
    from ocpi.transport import envelope, json_dumps

    page = json_dumps(envelope([location(i) for i in range(10)])).encode()
    ok = json_dumps(envelope()).encode()

    async def get_list(request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}{LOCATIONS_PATH}"
        return web.Response(
            body=page,
            content_type="application/json",
            headers={
                "X-Total-Count": "1000",
                "X-Limit": "10",
                "Link": f'<{base}?offset=10&limit=10>; rel="next"',
            },
        )

    async def put(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ok, content_type="application/json")

    app = web.Application()
    app.router.add_get(LOCATIONS_PATH, get_list)
    app.router.add_put(LOCATIONS_PATH + "/{cc}/{pid}/{id}", put)
    return app


def build_hub(receiver_base: str) -> web.Application:
    from multidict import CIMultiDict

    from ocpi.hub.directory import InMemoryPartyDirectory, Platform
    from ocpi.hub.forward import Forwarder
    from ocpi.hub.routing import Forward, HubRequest, RouterConfig, route
    from ocpi.transport import (
        CORRELATION_ID_HEADER,
        PartyId,
        new_request_id,
        parse_routing_headers,
    )
    from ocpi.v221.enums import InterfaceRole
    from ocpi.v221.types import Role

    directory = InMemoryPartyDirectory()
    # One receiver process plays both sides: the CPO's locations Sender (GET) and the
    # eMSP's locations Receiver (PUT).
    endpoint = receiver_base + LOCATIONS_PATH
    directory.add_platform(Platform("cpo", {("locations", InterfaceRole.SENDER): endpoint}))
    directory.add_party(PartyId("NL", "CP1"), [Role.CPO], "cpo")
    directory.add_platform(Platform("emsp", {("locations", InterfaceRole.RECEIVER): endpoint}))
    directory.add_party(PartyId("NL", "EM1"), [Role.EMSP], "emsp")
    config = RouterConfig(hub_party=PartyId("NL", "HUB"))
    holder: dict[str, Forwarder] = {}

    async def tokens(platform_id: str) -> str:
        return "hub-token-" + platform_id

    async def on_startup(app: web.Application) -> None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        holder["forwarder"] = Forwarder(session, tokens, timeout=10)
        holder["session"] = session  # type: ignore[assignment]

    async def on_cleanup(app: web.Application) -> None:
        await holder["session"].close()  # type: ignore[attr-defined]

    async def handle(request: web.Request) -> web.StreamResponse:
        module = request.match_info["module"]
        tail = tuple(s for s in request.match_info.get("tail", "").split("/") if s)
        # The hub's Sender interface is .../{module}, its Receiver interface
        # .../{module}/{cc}/{pid}/{id} (enough for this benchmark).
        interface = InterfaceRole.SENDER if request.method == "GET" else InterfaceRole.RECEIVER
        from_party, to_party = parse_routing_headers(request.headers)
        decision = route(
            HubRequest(
                method=request.method,
                module=module,
                interface=interface,
                platform_id="emsp" if interface is InterfaceRole.SENDER else "cpo",
                path=tail,
                from_party=from_party,
                to_party=to_party,
            ),
            directory,
            config,
        )
        assert isinstance(decision, Forward)
        body = await request.read() if request.can_read_body else None
        response = await holder["forwarder"].send(
            decision,
            method=request.method,
            correlation_id=request.headers.get(CORRELATION_ID_HEADER) or new_request_id(),
            query=request.query,
            body=body,
            hub_base=f"{request.scheme}://{request.host}/ocpi/2.2.1/{module}",
        )
        return web.Response(
            status=response.status, body=response.body, headers=CIMultiDict(response.headers)
        )

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_route("*", "/ocpi/2.2.1/{module}", handle)
    app.router.add_route("*", "/ocpi/2.2.1/{module}/{tail:.*}", handle)
    return app


# ------------------------------------------------------------------ load


async def run(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    *,
    seconds: float,
    requests: int,
    concurrency: int,
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    sent = 0

    async def worker() -> None:
        nonlocal sent
        while sent < requests and time.perf_counter() < deadline:
            sent += 1
            start = time.perf_counter()
            async with session.request(method, url, headers=headers, data=body) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{method} {url}: HTTP {response.status}")
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began, latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def bench(receiver: str, hub: str, args: argparse.Namespace) -> None:
    common = {
        "Authorization": "Token x",
        "X-Request-ID": "r",
        "X-Correlation-ID": "c",
        "OCPI-from-country-code": "NL",
        "OCPI-from-party-id": "EM1",
        "OCPI-to-country-code": "NL",
        "OCPI-to-party-id": "CP1",
    }
    put_headers = {
        **common,
        "OCPI-from-party-id": "CP1",
        "OCPI-to-party-id": "EM1",
        "Content-Type": "application/json",
    }
    from ocpi.transport import json_dumps

    put_body = json_dumps(location(1)).encode()
    cases = [
        ("GET list (10 locations)", "GET", LOCATIONS_PATH, "/ocpi/2.2.1/locations", common, None),
        (
            "PUT location",
            "PUT",
            LOCATIONS_PATH + "/NL/CP1/LOC1",
            "/ocpi/2.2.1/locations/NL/CP1/LOC1",
            put_headers,
            put_body,
        ),
    ]
    print(f"{'case':26} {'conc':>4} {'path':7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'n':>6}")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        for name, method, direct_path, hub_path, headers, body in cases:
            for concurrency in args.concurrency:
                figures = {}
                for label, url in (("direct", receiver + direct_path), ("hub", hub + hub_path)):
                    await run(
                        session,
                        method,
                        url,
                        headers,
                        body,
                        seconds=0.3,
                        requests=200,
                        concurrency=concurrency,
                    )
                    elapsed, lat = await run(
                        session,
                        method,
                        url,
                        headers,
                        body,
                        seconds=args.seconds,
                        requests=args.requests,
                        concurrency=concurrency,
                    )
                    figures[label] = (len(lat) / elapsed, pct(lat, 0.5), pct(lat, 0.99), lat)
                    print(
                        f"{name:26} {concurrency:>4} {label:7} {figures[label][0]:>8.0f} {figures[label][1]:>8.3f} {figures[label][2]:>8.3f} {len(lat):>6}"
                    )
                added50 = (
                    statistics.median(figures["hub"][3]) * 1000
                    - statistics.median(figures["direct"][3]) * 1000
                )
                print(
                    f"{'':26} {'':>4} added:  p50 +{added50:.3f} ms, p99 +{figures['hub'][2] - figures['direct'][2]:.3f} ms"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measured run")
    parser.add_argument("--requests", type=int, default=5000, help="per measured run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    ports: Any = ctx.Queue()
    receiver = ctx.Process(target=_serve, args=(build_receiver, (), ports), daemon=True)
    receiver.start()
    receiver_url = f"http://127.0.0.1:{ports.get(timeout=30)}"
    hub = ctx.Process(target=_serve, args=(build_hub, (receiver_url,), ports), daemon=True)
    hub.start()
    hub_url = f"http://127.0.0.1:{ports.get(timeout=30)}"
    try:
        asyncio.run(bench(receiver_url, hub_url, args))
    finally:
        for process in (hub, receiver):
            process.terminate()
            process.join(5)


if __name__ == "__main__":
    main()
