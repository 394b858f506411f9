"""Real aiohttp servers on loopback for the hub tests."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from ocpi.hub.directory import InMemoryPartyDirectory, Platform
from ocpi.transport import PartyId
from ocpi.v221.enums import ConnectionStatus, InterfaceRole
from ocpi.v221.types import Role

S, R = InterfaceRole.SENDER, InterfaceRole.RECEIVER
HUB = PartyId("NL", "HUB")


@asynccontextmanager
async def running(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port); yields the base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def refused_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/ocpi/2.2.1/locations"


def sample_directory() -> InMemoryPartyDirectory:
    """The directory of the routing table tests.

    cpo1: NL*CP1 (CPO), all CPO interfaces.       cpo2: DE*CP2 (CPO), locations, commands.
    emsp1: NL*EM1, NL*EM2 (eMSPs).                gw: NL*GWY (CPO, in-process).
    both: BE*BTH (CPO and eMSP), locations both.  off: FR*OFF (CPO), OFFLINE.
    other: NL*OTH (OTHER), tokens SENDER, locations RECEIVER.
    """
    d = InMemoryPartyDirectory()
    d.add_platform(
        Platform(
            "cpo1",
            {
                ("locations", S): "http://cpo1/ocpi/cpo/2.2.1/locations",
                ("tariffs", S): "http://cpo1/ocpi/cpo/2.2.1/tariffs",
                ("sessions", S): "http://cpo1/ocpi/cpo/2.2.1/sessions",
                ("cdrs", S): "http://cpo1/ocpi/cpo/2.2.1/cdrs",
                ("tokens", R): "http://cpo1/ocpi/cpo/2.2.1/tokens",
                ("commands", R): "http://cpo1/ocpi/cpo/2.2.1/commands",
                ("hubclientinfo", R): "http://cpo1/ocpi/cpo/2.2.1/clientinfo",
            },
            versions_url="http://cpo1/ocpi/versions",
        )
    )
    d.add_party(PartyId("NL", "CP1"), [Role.CPO], "cpo1")
    d.add_platform(
        Platform(
            "cpo2",
            {
                ("locations", S): "http://cpo2/locations",
                ("commands", R): "http://cpo2/commands",
            },
        )
    )
    d.add_party(PartyId("DE", "CP2"), [Role.CPO], "cpo2")
    d.add_platform(
        Platform(
            "emsp1",
            {
                ("locations", R): "http://emsp1/locations",
                ("tariffs", R): "http://emsp1/tariffs",
                ("sessions", R): "http://emsp1/sessions",
                ("cdrs", R): "http://emsp1/cdrs",
                ("tokens", S): "http://emsp1/tokens",
                ("commands", S): "http://emsp1/commands",
                ("hubclientinfo", R): "http://emsp1/clientinfo",
            },
        )
    )
    d.add_party(PartyId("NL", "EM1"), [Role.EMSP], "emsp1")
    d.add_party(PartyId("NL", "EM2"), [Role.EMSP], "emsp1")
    d.add_platform(Platform.in_process("gw", [("locations", S), ("tokens", R), ("commands", R)]))
    d.add_party(PartyId("NL", "GWY"), [Role.CPO], "gw")
    d.add_platform(
        Platform(
            "both",
            {("locations", S): "http://both/loc/sender", ("locations", R): "http://both/loc/recv"},
        )
    )
    d.add_party(PartyId("BE", "BTH"), [Role.CPO, Role.EMSP], "both")
    d.add_platform(Platform("off", {("locations", S): "http://off/locations"}))
    d.add_party(PartyId("FR", "OFF"), [Role.CPO], "off", status=ConnectionStatus.OFFLINE)
    d.add_platform(
        Platform(
            "other",
            {("tokens", S): "http://other/tokens", ("locations", R): "http://other/locations"},
        )
    )
    d.add_party(PartyId("NL", "OTH"), [Role.OTHER], "other")
    return d
