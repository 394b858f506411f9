"""Dashboard sign-in, the session cookie in the admin API, CSRF, the charger list's
paging and filters, and the event stream (one process, and two on one Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
import pytest
from ocpp.v16 import call as call16

from gateway.admin.session import SESSION_SECONDS
from tests.conftest import ADMIN_TOKEN, FakeClock, Gateway, GatewayFactory
from tests.sim import boot, connect


def _client() -> aiohttp.ClientSession:
    # The gateway's address is an IP: aiohttp's jar keeps cookies of IPs only when "unsafe".
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _sign_in(s: aiohttp.ClientSession, gw: Gateway) -> str:
    """Signs in; answers the CSRF token."""
    async with s.post(
        f"{gw.url}/dashboard/sign-in", data={"token": ADMIN_TOKEN}, allow_redirects=False
    ) as r:
        assert r.status == 303 and r.headers["Location"] == "/dashboard/"
    async with s.get(f"{gw.url}/dashboard/session") as r:
        assert r.status == 200
        return str((await r.json())["csrf_token"])


async def test_sign_in_sets_a_strict_http_only_cookie_and_pages_carry_the_csp(
    gateway: Gateway,
) -> None:
    async with _client() as s:
        async with s.get(f"{gateway.url}/", allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (302, "/dashboard/")
        async with s.get(f"{gateway.url}/dashboard/", allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (303, "/dashboard/sign-in")
        async with s.get(f"{gateway.url}/dashboard/sign-in") as r:
            page = await r.text()
            assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
            assert r.headers["X-Frame-Options"] == "DENY"
            # The token goes in a POSTed body, never in a URL.
            assert 'method="post"' in page and 'name="token"' in page
        async with s.post(
            f"{gateway.url}/dashboard/sign-in",
            data={"token": "not-the-token"},
            allow_redirects=False,
        ) as r:
            assert r.status == 401
            assert "not the admin token" in await r.text()
            assert "Set-Cookie" not in r.headers
        async with s.post(
            f"{gateway.url}/dashboard/sign-in", data={"token": ADMIN_TOKEN}, allow_redirects=False
        ) as r:
            assert r.status == 303
            cookie = r.headers["Set-Cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "samesite", "max-age", "path"} <= attributes
        assert "SameSite=Strict" in cookie and f"Max-Age={SESSION_SECONDS}" in cookie
        assert "secure" not in attributes  # plain HTTP here; TLS or an https public URL: Secure
        assert ADMIN_TOKEN not in cookie
        async with s.get(f"{gateway.url}/dashboard/", allow_redirects=False) as r:
            assert r.status == 200
            assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
            assert r.headers["Cache-Control"] == "no-store"
        async with s.get(f"{gateway.url}/dashboard/static/app.js") as r:
            assert r.status == 200 and r.content_type == "text/javascript"
        async with s.get(f"{gateway.url}/dashboard/static/index.html") as r:
            assert r.status == 404  # pages are routes (the index needs a session)


async def test_secure_cookie_behind_an_https_public_url(gateways: GatewayFactory) -> None:
    gw = await gateways.start(public_url="https://gw.example.com")
    async with (
        _client() as s,
        s.post(
            f"{gw.url}/dashboard/sign-in", data={"token": ADMIN_TOKEN}, allow_redirects=False
        ) as r,
    ):
        assert r.status == 303
        assert "Secure" in r.headers["Set-Cookie"]


async def test_the_admin_api_takes_the_cookie_and_changes_need_the_csrf_token(
    gateway: Gateway,
) -> None:
    async with _client() as s:
        async with s.get(f"{gateway.url}/admin/tokens") as r:
            assert r.status == 401
        csrf = await _sign_in(s, gateway)
        async with s.get(f"{gateway.url}/admin/tokens") as r:
            assert r.status == 200
        async with s.put(f"{gateway.url}/admin/tokens/T1", json={"valid": True}) as r:
            assert r.status == 403
            assert (await r.json())["error"] == "missing or wrong X-CSRF-Token header"
        async with s.put(
            f"{gateway.url}/admin/tokens/T1",
            json={"valid": True},
            headers={"X-CSRF-Token": csrf + "x"},
        ) as r:
            assert r.status == 403
        async with s.put(
            f"{gateway.url}/admin/tokens/T1", json={"valid": True}, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert r.status == 201
        # An Authorization header is checked on its own: a wrong one is not saved by the cookie.
        async with s.get(
            f"{gateway.url}/admin/tokens", headers={"Authorization": "Bearer wrong-token-wrong"}
        ) as r:
            assert r.status == 401
        # Sign-out needs the CSRF token too, then the cookie is gone.
        async with s.post(f"{gateway.url}/dashboard/sign-out", allow_redirects=False) as r:
            assert r.status == 403
        async with s.post(
            f"{gateway.url}/dashboard/sign-out",
            headers={"X-CSRF-Token": csrf},
            allow_redirects=False,
        ) as r:
            assert (r.status, r.headers["Location"]) == (303, "/dashboard/sign-in")
        async with s.get(f"{gateway.url}/admin/tokens") as r:
            assert r.status == 401
    # The bearer token works as before.
    status, body = await gateway.admin("GET", "/tokens")
    assert status == 200 and [t["uid"] for t in body] == ["T1"]


async def test_forged_foreign_and_expired_cookies_are_refused(gateways: GatewayFactory) -> None:
    clock = FakeClock()
    gw = await gateways.start(clock=clock)
    async with _client() as s:
        await _sign_in(s, gw)
        [cookie] = [c for c in s.cookie_jar if c.key == "gw_session"]
        value = cookie.value
    version, expires, nonce, mac = value.split(".")
    forged = [
        f"{version}.{int(expires) + 3600}.{nonce}.{mac}",  # a later expiry, same MAC
        f"{version}.{expires}.{nonce}x.{mac}",
        f"{version}.{expires}.{nonce}.{mac[:-2]}",
        "v1.not-a-number.x.y",
        "garbage",
    ]
    for bad in forged:
        async with (
            aiohttp.ClientSession(headers={"Cookie": f"gw_session={bad}"}) as s,
            s.get(f"{gw.url}/admin/tokens") as r,
        ):
            assert r.status == 401, bad
    async with aiohttp.ClientSession(headers={"Cookie": f"gw_session={value}"}) as s:
        async with s.get(f"{gw.url}/admin/tokens") as r:
            assert r.status == 200
        clock.advance(SESSION_SECONDS + 1)
        async with s.get(f"{gw.url}/admin/tokens") as r:
            assert r.status == 401
            assert "sign in again" in (await r.json())["error"]
        async with s.get(f"{gw.url}/dashboard/", allow_redirects=False) as r:
            assert r.status == 303


async def test_a_sign_in_posted_from_another_origin_is_refused(gateway: Gateway) -> None:
    async with (
        _client() as s,
        s.post(
            f"{gateway.url}/dashboard/sign-in",
            data={"token": ADMIN_TOKEN},
            headers={"Origin": "https://evil.example"},
            allow_redirects=False,
        ) as r,
    ):
        assert r.status == 403
        assert "Set-Cookie" not in r.headers


async def test_charger_list_pages_and_filters(gateway: Gateway) -> None:
    for i in range(12):
        status, _ = await gateway.admin(
            "PUT",
            f"/chargers/LIST-{i:02d}",
            {"location_id": None, "evses": [{"ocpp_id": 1, "evse_uid": f"L{i}-1"}]},
        )
        assert status == 201
    async with connect(gateway.ws_url, "LIST-07", "2.0.1") as cp:
        await boot(cp, "2.0.1")
        async with aiohttp.ClientSession(headers=gateway.admin_headers) as s:

            async def page(query: str) -> tuple[int, list[str]]:
                async with s.get(f"{gateway.url}/admin/chargers?{query}") as r:
                    assert r.status == 200, await r.text()
                    return int(r.headers["X-Total-Count"]), [c["id"] for c in await r.json()]

            assert await page("limit=5") == (12, [f"LIST-{i:02d}" for i in range(5)])
            assert await page("limit=5&offset=10") == (12, ["LIST-10", "LIST-11"])
            assert await page("q=list-1") == (2, ["LIST-10", "LIST-11"])
            assert await page("q=acme") == (1, ["LIST-07"])  # the vendor it reported
            assert await page("connected=true") == (1, ["LIST-07"])
            assert (await page("connected=false&limit=1"))[0] == 11
            assert await page("ocpp_version=2.0.1") == (1, ["LIST-07"])
            assert await page("ocpp_version=1.6") == (0, [])
            assert (await page(""))[0] == 12  # no limit: all, as before paging
            for bad in (
                "limit=0",
                "limit=1001",
                "offset=-1",
                "ocpp_version=1.5",
                "connected=maybe",
                "nope=1",
            ):
                async with s.get(f"{gateway.url}/admin/chargers?{bad}") as r:
                    assert r.status == 400, bad
                    assert "field" in await r.json()


class EventReader:
    """Reads ``GET /admin/events`` in a task into a queue (a timeout while waiting for a
    message must not end the stream)."""

    def __init__(self, s: aiohttp.ClientSession, url: str) -> None:
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._task = asyncio.create_task(self._read(s, url))

    async def _read(self, s: aiohttp.ClientSession, url: str) -> None:
        async with s.get(f"{url}/admin/events") as r:
            assert r.status == 200 and r.content_type == "text/event-stream"
            name = None
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name is not None:
                    self.queue.put_nowait((name, json.loads(line[6:])))
                    name = None

    async def next(self, timeout: float = 5) -> tuple[str, Any]:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def change(self, kind: str, timeout: float = 5) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            name, data = await self.next(max(left, 0.001))
            if name == "change" and data["kind"] == kind:
                return dict(data)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def test_event_stream_tells_boots_and_status_changes(gateway: Gateway) -> None:
    await gateway.admin("PUT", "/chargers/EV-1", {"evses": [{"ocpp_id": 1, "evse_uid": "EV-1-1"}]})
    async with aiohttp.ClientSession(headers=gateway.admin_headers) as s:
        stream = EventReader(s, gateway.url)
        assert (await stream.next())[0] == "hello"
        async with connect(gateway.ws_url, "EV-1", "1.6") as cp:
            await boot(cp, "1.6")
            assert (await stream.change("booted"))["charger_id"] == "EV-1"
            await cp.call(
                call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging")
            )
            change = await stream.change("status")
            assert change == {
                "kind": "status",
                "charger_id": "EV-1",
                "evse_id": 1,
                "connector_id": 1,
                "status": "Charging",
            }
        assert (await stream.change("offline"))["charger_id"] == "EV-1"
        await stream.close()


async def test_events_unauthenticated_are_refused(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as s, s.get(f"{gateway.url}/admin/events") as r:
        assert r.status == 401


@pytest.mark.redis
@pytest.mark.parametrize("backend", ["redis"])  # several processes share a store on Redis only
async def test_events_of_a_charger_on_another_process_reach_the_reader(
    gateways: GatewayFactory,
) -> None:
    """Two processes on one Redis (two apps, one store): the reader on B hears a charger
    connected to A."""
    a = await gateways.start()
    b = await gateways.start(a.settings)
    await a.admin("PUT", "/chargers/FAR-1", {"evses": [{"ocpp_id": 1, "evse_uid": "FAR-1-1"}]})
    async with aiohttp.ClientSession(headers=b.admin_headers) as s:
        stream = EventReader(s, b.url)
        assert (await stream.next())[0] == "hello"
        # A learns that B has a reader within its check interval; until then it may not publish.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        async with connect(a.ws_url, "FAR-1", "1.6") as cp:
            await boot(cp, "1.6")
            status = "Available"
            while True:
                await cp.call(
                    call16.StatusNotification(connector_id=1, error_code="NoError", status=status)
                )
                try:
                    change = await stream.change("status", 1)
                    break
                except TimeoutError:
                    assert loop.time() < deadline, "B's reader never heard A's charger"
                    status = "Charging" if status == "Available" else "Available"
            assert change["charger_id"] == "FAR-1"
            # From then on each change arrives.
            await cp.call(
                call16.StatusNotification(connector_id=1, error_code="NoError", status="Faulted")
            )
            change = await stream.change("status")
            assert (change["status"], change["charger_id"]) == ("Faulted", "FAR-1")
        await stream.close()
