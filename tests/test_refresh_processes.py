"""Any process serves any request: real ``ocpi-gateway serve`` processes on one real
Redis, with real OCPI partners (tests/roaming/emsp.py, tests/hub/platform.py). What one
process changes (a partner registered, a hub rule, a party status) is known to the
other within moments; a change's side effects (the initial push to a new partner) run
once; a push stored by the process that does not deliver wakes the one that does; the
still-alive check sees the activity of platforms that talk to the other process; and a
process whose subscription was cut reads everything again when it is back."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from gateway.storage.redis_keys import RedisKeys
from tests.conftest import REDIS_URL, _redis_available, drop_redis_prefix, require_redis_or_skip
from tests.hub.platform import Platform
from tests.roaming.emsp import EmspPlatform, token_header
from tests.roaming.test_catalog import TARIFF
from tests.storage.redis_proxy import RedisProxy
from tests.test_leases_processes import LoggedGateway, cluster_env, until
from tests.test_outbox_processes import admin, register

Factory = Callable[..., LoggedGateway]


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[tuple[Factory, str]]:
    """Makes gateways (not started) on one Redis prefix; all killed and cleaned up."""
    require_redis_or_skip(await _redis_available())
    prefix = f"test:{uuid.uuid4().hex}:"
    made: list[LoggedGateway] = []

    def make(name: str, **settings: str) -> LoggedGateway:
        gw = LoggedGateway(
            tmp_path / f"data-{name}", cluster_env(prefix, **settings), tmp_path / f"{name}.log"
        )
        made.append(gw)
        return gw

    try:
        yield make, prefix
    finally:
        for gw in made:
            if gw.proc is not None and gw.proc.poll() is None:
                gw.kill()
        await drop_redis_prefix(prefix)


async def holder_of(lease: str, prefix: str, *gateways: LoggedGateway) -> LoggedGateway | None:
    client = aioredis.from_url(REDIS_URL)
    try:
        value = await client.get(RedisKeys(prefix).lease(lease))
    finally:
        await client.aclose()
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    pid = int(text.split(":")[1])  # host:pid:unique id
    return next((gw for gw in gateways if gw.pid == pid), None)


async def ocpi_get(gw: LoggedGateway, path: str, token: str) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{gw.url}/ocpi/2.2.1/{path}", headers=token_header(token)) as r,
    ):
        return r.status


async def test_a_partner_registered_through_one_process_is_served_and_pushed_to_by_the_other(
    gateways: tuple[Factory, str], emsp: EmspPlatform
) -> None:
    make, _ = gateways
    a, b = (
        make("A", GATEWAY_OUTBOX_POLL_INTERVAL="0.2"),
        make("B", GATEWAY_OUTBOX_POLL_INTERVAL="0.2"),
    )
    await asyncio.gather(a.start(), b.start())
    assert (await admin(a, "PUT", "/tariffs/T0", TARIFF))[0] == 201  # before the partner
    await register(a, emsp)  # the credentials handshake, through A
    assert emsp.cpo_token is not None
    token = emsp.cpo_token

    async def served_by_b() -> bool:
        return await ocpi_get(b, "tariffs", token) == 200

    await until(served_by_b, bound=5.0)
    _, partners = await admin(b, "GET", "/partners")
    assert isinstance(partners, list)
    assert [p["status"] for p in partners] == ["REGISTERED"]

    # B's pushes include it; A's too; the initial push of T0 (a side effect of the
    # registration) went out once, not once per process.
    assert (await admin(b, "PUT", "/tariffs/T1", TARIFF))[0] == 201
    assert (await admin(a, "PUT", "/tariffs/T2", TARIFF))[0] == 201

    async def delivered() -> bool:
        return len({path for _, path, _ in emsp.pushes("tariffs", "PUT")}) == 3

    await until(delivered)

    async def settled() -> bool:
        return (await admin(a, "GET", "/outbox?status=pending"))[1] == []

    await until(settled)
    paths = Counter(path for _, path, _ in emsp.pushes("tariffs", "PUT"))
    assert paths == {f"/ocpi/2.2.1/tariffs/ZZ/GWY/T{i}": 1 for i in range(3)}
    for gw in (a, b):
        assert (await admin(gw, "GET", "/outbox?status=failed"))[1] == []


async def test_a_push_stored_by_the_process_that_does_not_deliver_wakes_the_one_that_does(
    gateways: tuple[Factory, str], emsp: EmspPlatform
) -> None:
    # The poll interval is far longer than the bounds below: only the wake-up can
    # deliver in time.
    make, prefix = gateways
    a, b = (
        make("A", GATEWAY_OUTBOX_POLL_INTERVAL="30"),
        make("B", GATEWAY_OUTBOX_POLL_INTERVAL="30"),
    )
    await b.start()

    async def b_holds() -> bool:
        return await holder_of("outbox", prefix, b) is b

    await until(b_holds)
    await a.start()
    await register(a, emsp)
    for i in range(5):
        assert (await admin(a, "PUT", f"/tariffs/T{i}", TARIFF))[0] == 201

        async def delivered(n: int = i + 1) -> bool:
            return len(emsp.pushes("tariffs", "PUT")) == n

        await until(delivered, bound=10.0)
    assert await b_holds()  # B delivered them


async def join(gw: LoggedGateway, platform: Platform) -> None:
    """The operator creates a hub partner at ``gw``; the platform registers there."""
    status, partner = await admin(gw, "POST", "/partners", {"name": platform.name, "kind": "HUB"})
    assert status == 201 and isinstance(partner, dict), partner
    await platform.register(partner["our_versions_url"], partner["token_a"])


def at(gw: LoggedGateway, url: str) -> str:
    """A hub URL the platform learnt from one process, on process ``gw``."""
    path = url.split("/ocpi/", 1)[1]
    return f"{gw.url}/ocpi/{path}"


LOCATION: dict[str, Any] = {
    "country_code": "BE",
    "party_id": "CPX",
    "id": "L1",
    "publish": True,
    "address": "Street 1",
    "city": "Brussels",
    "country": "BEL",
    "coordinates": {"latitude": "50.85000", "longitude": "4.35000"},  # 5 to 7 decimals
    "time_zone": "Europe/Brussels",
    "last_updated": "2026-11-23T08:00:00Z",
}


async def parties(gw: LoggedGateway) -> dict[str, str]:
    _, view = await admin(gw, "GET", "/hub/parties")
    assert isinstance(view, list)
    return {p["party"]: p["status"] for p in view}


async def test_hub_platforms_rules_and_statuses_changed_through_one_process_apply_at_the_other(
    gateways: tuple[Factory, str],
) -> None:
    make, _ = gateways
    a, b = make("A"), make("B")
    await asyncio.gather(a.start(), b.start())
    emsp = Platform("eMSP One", "EMSP", [("NL", "EM1")])
    cpo = Platform("CPO X", "CPO", [("BE", "CPX")])
    for platform in (emsp, cpo):
        await platform.start()
    try:
        await join(a, emsp)  # through A
        await join(b, cpo)  # through B

        async def push_via_b() -> int:
            url = at(b, cpo.hub_url("locations", "RECEIVER")) + "/BE/CPX/L1"
            reply = await cpo.call("PUT", url, LOCATION, to=("NL", "EM1"))
            return int(reply.body["status_code"])

        async def b_routes() -> bool:
            return await push_via_b() == 1000

        # B routes the CPO's directed push to the platform registered through A.
        await until(b_routes, bound=5.0)
        assert len(emsp.got("locations", "PUT")) == 1

        # A rule added through A applies at B at once after.
        status, rule = await admin(
            a, "POST", "/hub/rules", {"action": "deny", "party": "BE*CPX", "counterpart": "NL*EM1"}
        )
        assert status == 201 and isinstance(rule, dict)

        async def b_has_rule() -> bool:
            _, rules = await admin(b, "GET", "/hub/rules")
            assert isinstance(rules, list)
            return [r["id"] for r in rules] == [rule["id"]]

        await until(b_has_rule, bound=5.0)
        assert await push_via_b() != 1000
        assert len(emsp.got("locations", "PUT")) == 1  # not forwarded
        async with (
            aiohttp.ClientSession() as s,
            s.delete(f"{a.url}/admin/hub/rules/{rule['id']}", headers=a.headers) as r,
        ):
            assert r.status == 204
        await until(b_routes, bound=5.0)

        # The operator suspends the eMSP's party through A: B shows and routes it so.
        status, _ = await admin(a, "PUT", "/hub/parties/NL*EM1/status", {"status": "SUSPENDED"})
        assert status == 200

        async def b_sees(status: str) -> bool:
            return (await parties(b)).get("NL*EM1") == status

        await until(lambda: b_sees("SUSPENDED"), bound=5.0)
        assert await push_via_b() != 1000
        await admin(a, "PUT", "/hub/parties/NL*EM1/status", {"status": "CONNECTED"})
        await until(lambda: b_sees("CONNECTED"), bound=5.0)
        await until(b_routes, bound=5.0)
    finally:
        for gw in (a, b):
            gw.kill()
        for platform in (emsp, cpo):
            await platform.stop()


async def test_the_still_alive_check_sees_activity_at_the_other_process_and_shares_its_verdict(
    gateways: tuple[Factory, str],
) -> None:
    make, prefix = gateways
    settings = {"GATEWAY_HUB_SILENCE": "1.5", "GATEWAY_HUB_CHECK_INTERVAL": "0.2"}
    a, b = make("A", **settings), make("B", **settings)
    await asyncio.gather(a.start(), b.start())

    async def held() -> bool:
        return await holder_of("hub-checks", prefix, a, b) is not None

    await until(held)
    checker = await holder_of("hub-checks", prefix, a, b)
    assert checker is not None
    other = b if checker is a else a
    platform = Platform("eMSP One", "EMSP", [("NL", "EM1")])
    await platform.start()
    try:
        await join(other, platform)

        async def checker_knows_it() -> bool:  # the registration's notice crossed over
            return (await parties(checker)).get("NL*EM1") == "CONNECTED"

        await until(checker_knows_it, bound=5.0)
        # Its server goes away: a probe of it would fail. It keeps calling the process
        # that does not run the check, for longer than the silence that triggers one.
        await platform.stop()
        info_url = at(other, platform.hub_url("hubclientinfo", "SENDER"))
        for _ in range(20):  # 4 s: more than twice the silence
            assert (await platform.call("GET", info_url)).status == 200
            assert (await parties(checker))["NL*EM1"] == "CONNECTED"
            await asyncio.sleep(0.2)

        # Silent now: the check probes it, in vain; both processes see it OFFLINE.
        async def offline_everywhere() -> bool:
            return all([(await parties(gw))["NL*EM1"] == "OFFLINE" for gw in (a, b)])

        await until(offline_everywhere, bound=10.0)
        assert checker.count("does not answer") >= 1
        assert other.count("does not answer") == 0  # the verdict came from the checker
    finally:
        for gw in (a, b):
            gw.kill()
        await platform.stop()


async def test_a_process_whose_subscription_was_cut_reads_everything_again(
    gateways: tuple[Factory, str], emsp: EmspPlatform
) -> None:
    make, _ = gateways
    proxy = RedisProxy(REDIS_URL)
    await proxy.start()
    try:
        a = make("A")
        b = make("B", GATEWAY_REDIS_URL=proxy.url)  # B's Redis connections can be cut
        await asyncio.gather(a.start(), b.start())
        proxy.cut()  # B hears nothing from now on
        await register(a, emsp)  # through A, while B is cut off
        assert emsp.cpo_token is not None
        token = emsp.cpo_token
        await asyncio.sleep(0.5)
        proxy.restore()

        async def served_by_b() -> bool:
            return await ocpi_get(b, "tariffs", token) == 200

        # The notice was lost; B reads the partners again once its subscription is back.
        await until(served_by_b, bound=15.0)
        assert b.count("refresh: messages from other processes may have been lost") >= 1
    finally:
        await proxy.close()
