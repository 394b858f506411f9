"""ocpi.client.OcpiClient against real aiohttp servers on loopback: headers, pagination,
timeouts, OCPI and HTTP errors, data validation; and against ocpi.server's routes."""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

import ocpi.v221 as v
from ocpi.client import (
    OcpiClient,
    OcpiHttpError,
    OcpiInvalidResponseError,
    OcpiStatusError,
    OcpiTimeoutError,
    OcpiTransportError,
)
from ocpi.server import locations_sender_routes, ocpi_middleware
from ocpi.transport import (
    PartyId,
    UnknownLocationError,
    envelope,
    json_dumps,
    json_loads,
    parse_authorization,
)

EXAMPLES = Path(__file__).parent / "examples"
TOKEN = "ebf3b399-779f-4497-9b9d-ac6ad3cc44d2"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def example(name: str) -> Any:
    return json_loads((EXAMPLES / name).read_text(encoding="utf-8"))


def ocpi_json(
    data: Any = None,
    *,
    status: int = 200,
    code: int = 1000,
    status_message: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        text=json_dumps(envelope(data, status_code=code, status_message=status_message)),
        content_type="application/json",
        headers=headers,
    )


class Recorder:
    """An aiohttp server whose routes the test sets, remembering every request."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.server: TestServer | None = None

    def route(self, method: str, path: str, handler: Handler) -> None:
        async def recorded(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            self.requests.append(
                (request.method, str(request.rel_url), dict(request.headers), body)
            )
            return await handler(request)

        self.app.router.add_route(method, path, recorded)

    def url(self, path: str) -> URL:
        assert self.server is not None
        return self.server.make_url(path)


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    yield rec
    if rec.server is not None:
        await rec.server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def start(rec: Recorder) -> None:
    rec.server = TestServer(rec.app)
    await rec.server.start_server()


def new_client(session: aiohttp.ClientSession, **kw: Any) -> OcpiClient:
    counter = itertools.count(1)
    return OcpiClient(session, TOKEN, request_id_factory=lambda: f"id-{next(counter)}", **kw)


def tokens(count: int) -> list[dict[str, Any]]:
    base = example("token_put_example.json")
    out = []
    for i in range(count):
        token = copy.deepcopy(base)
        token["uid"] = f"UID{i}"
        out.append(token)
    return out


# ------------------------------------------------------------------ headers


async def test_get_sets_the_ocpi_headers_and_validates_data(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    location = example("location_example.json")

    async def handler(request: web.Request) -> web.StreamResponse:
        return ocpi_json(location)

    recorder.route("GET", "/locations/LOC1", handler)
    await start(recorder)
    client = new_client(session, from_party=PartyId("DE", "CPO"), to_party=PartyId("NL", "TNM"))
    result = await client.get(recorder.url("/locations/LOC1"), v.Location)
    assert isinstance(result, v.Location) and result.id == "LOC1"
    _, _, headers, _ = recorder.requests[0]
    assert headers["Authorization"] == "Token " + base64.b64encode(TOKEN.encode()).decode()
    assert parse_authorization(headers["Authorization"])[0] == TOKEN
    assert headers["X-Request-ID"] == "id-1"
    assert headers["X-Correlation-ID"] == "id-2"
    assert headers["OCPI-from-country-code"] == "DE" and headers["OCPI-from-party-id"] == "CPO"
    assert headers["OCPI-to-country-code"] == "NL" and headers["OCPI-to-party-id"] == "TNM"
    raw = await client.get(recorder.url("/locations/LOC1"), correlation_id="corr-7")
    assert raw["id"] == "LOC1"
    assert recorder.requests[1][2]["X-Correlation-ID"] == "corr-7"
    assert recorder.requests[1][2]["X-Request-ID"] == "id-3"


async def test_unencoded_token_for_old_peers(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return ocpi_json([])

    recorder.route("GET", "/versions", handler)
    await start(recorder)
    client = new_client(session, encode_token=False)
    assert await client.get_list(recorder.url("/versions"), v.Version) == []
    assert recorder.requests[0][2]["Authorization"] == f"Token {TOKEN}"


async def test_put_sends_exact_json(recorder: Recorder, session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return ocpi_json()

    recorder.route("PUT", "/sessions/NL/TNM/1", handler)
    recorder.route("PATCH", "/sessions/NL/TNM/1", handler)
    await start(recorder)
    client = new_client(session)
    session_obj = v.Session.model_validate(example("session_example_1_simple_start.json"))
    assert await client.put(recorder.url("/sessions/NL/TNM/1"), session_obj) is None
    _, _, headers, body = recorder.requests[0]
    assert headers["Content-Type"] == "application/json"
    assert b'"kwh":0.0' in body and b'"excl_vat":2.5' in body
    assert b'"start_date_time":"2020-03-09T10:17:09Z"' in body
    assert json_loads(body) == example("session_example_1_simple_start.json")
    patch = v.SessionPatch(
        total_cost=v.Price(excl_vat=Decimal("0.60")), last_updated=datetime(2020, 1, 1, tzinfo=UTC)
    )
    await client.patch(recorder.url("/sessions/NL/TNM/1"), patch)
    assert json_loads(recorder.requests[1][3]) == {
        "total_cost": {"excl_vat": Decimal("0.60")},
        "last_updated": "2020-01-01T00:00:00Z",
    }


# --------------------------------------------------------------- pagination


async def test_get_all_follows_links_across_three_pages(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    items = tokens(7)

    async def handler(request: web.Request) -> web.StreamResponse:
        offset = int(request.query.get("offset", "0"))
        limit = min(int(request.query.get("limit", "3")), 3)
        page = items[offset : offset + limit]
        headers = {"X-Total-Count": str(len(items)), "X-Limit": str(limit)}
        if offset + len(page) < len(items):
            next_url = request.url.update_query(offset=str(offset + len(page)), limit=str(limit))
            headers["Link"] = f'<{next_url}>; rel="next"'
        return web.Response(
            text=json_dumps(envelope(page)), content_type="application/json", headers=headers
        )

    recorder.route("GET", "/tokens", handler)
    await start(recorder)
    client = new_client(session)
    got = [
        t.uid
        async for t in client.get_all(
            recorder.url("/tokens"), v.Token, date_from=datetime(2015, 1, 1, tzinfo=UTC), limit=10
        )
    ]
    assert got == [f"UID{i}" for i in range(7)]
    assert len(recorder.requests) == 3
    first = URL(recorder.requests[0][1])
    assert first.query["date_from"] == "2015-01-01T00:00:00Z" and first.query["limit"] == "10"
    assert URL(recorder.requests[1][1]).query["offset"] == "3"
    assert URL(recorder.requests[2][1]).query["offset"] == "6"
    assert URL(recorder.requests[2][1]).query["date_from"] == "2015-01-01T00:00:00Z"
    request_ids = [headers["X-Request-ID"] for _, _, headers, _ in recorder.requests]
    assert len(set(request_ids)) == 3
    for _, _, headers, _ in recorder.requests:
        assert parse_authorization(headers["Authorization"])[0] == TOKEN
        assert headers["X-Correlation-ID"]
    page = await client.get_page(recorder.url("/tokens"), v.Token)
    assert (page.total, page.limit, len(page.items)) == (7, 3, 3)
    assert page.next_url is not None and page.next_url.query["offset"] == "3"


async def test_get_all_skips_and_reports_invalid_objects(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    items = tokens(3)
    del items[1]["issuer"]

    async def handler(request: web.Request) -> web.StreamResponse:
        return ocpi_json(items)

    recorder.route("GET", "/tokens", handler)
    await start(recorder)
    reported: list[tuple[int, str]] = []
    got = [
        t.uid
        async for t in new_client(session).get_all(
            recorder.url("/tokens"),
            v.Token,
            on_invalid=lambda _u, i, _r, m: reported.append((i, m)),
        )
    ]
    assert got == ["UID0", "UID2"]
    assert reported == [(1, "data[1].issuer: Field required")]
    page = await new_client(session).get_page(recorder.url("/tokens"), v.Token)
    assert [t.uid for t in page.items] == ["UID0", "UID2"]
    assert page.invalid == [(1, "data[1].issuer: Field required")]


@pytest.mark.parametrize("kind", ["other-origin", "loop", "too-many", "not-a-list"])
async def test_get_all_refuses_broken_pagination(
    recorder: Recorder, session: aiohttp.ClientSession, kind: str
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        offset = int(request.query.get("offset", "0"))
        if kind == "other-origin":
            link = "https://attacker.example/tokens?offset=1"
        elif kind == "loop":
            link = str(request.url)
        else:
            link = str(request.url.update_query(offset=str(offset + 1)))
        data: Any = {"not": "a list"} if kind == "not-a-list" else tokens(1)
        return ocpi_json(data, headers={"Link": f'<{link}>; rel="next"'})

    recorder.route("GET", "/tokens", handler)
    await start(recorder)
    client = new_client(session, max_pages=5)
    with pytest.raises(OcpiInvalidResponseError) as info:
        async for _ in client.get_all(recorder.url("/tokens"), v.Token):
            pass
    expected = {
        "other-origin": "another origin",
        "loop": "repeats a page",
        "too-many": "more than 5 pages",
        "not-a-list": "not a list",
    }[kind]
    assert expected in str(info.value)


async def test_relative_next_link(recorder: Recorder, session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.query.get("offset") == "1":
            return ocpi_json(tokens(1))
        return ocpi_json(tokens(1), headers={"Link": '</tokens?offset=1>; rel="next"'})

    recorder.route("GET", "/tokens", handler)
    await start(recorder)
    got = [t async for t in new_client(session).get_all(recorder.url("/tokens"), v.Token)]
    assert len(got) == 2


# ----------------------------------------------------------------- failures


async def test_timeout(recorder: Recorder, session: aiohttp.ClientSession) -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return ocpi_json()

    recorder.route("GET", "/slow", handler)
    await start(recorder)
    client = new_client(session, timeout=0.2)
    with pytest.raises(OcpiTimeoutError) as info:
        await client.get(recorder.url("/slow"))
    assert "within 0.2 s" in str(info.value)
    with pytest.raises(OcpiTimeoutError):
        await new_client(session).get(recorder.url("/slow"), request_timeout=0.1)
    release.set()


async def test_connection_refused(session: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = new_client(session)
    with pytest.raises(OcpiTransportError) as info:
        await client.get(f"http://127.0.0.1:{port}/versions")
    assert not isinstance(info.value, OcpiTimeoutError)
    assert info.value.method == "GET"


@pytest.mark.parametrize(
    ("http_status", "code", "message"),
    [(200, 2001, "Missing required field: type"), (404, 2003, "unknown location"),
     (401, 2000, None), (500, 3000, "boom")],
)  # fmt: skip
async def test_ocpi_error_envelope_raises_status_error(
    recorder: Recorder,
    session: aiohttp.ClientSession,
    http_status: int,
    code: int,
    message: str | None,
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return ocpi_json(status=http_status, code=code, status_message=message)

    recorder.route("GET", "/locations/X", handler)
    await start(recorder)
    with pytest.raises(OcpiStatusError) as info:
        await new_client(session).get(recorder.url("/locations/X"), v.Location)
    error = info.value
    assert (error.status_code, error.http_status, error.status_message) == (
        code,
        http_status,
        message,
    )
    assert str(code) in str(error)
    if code == 2003:
        relayed = error.to_ocpi_error()
        assert isinstance(relayed, UnknownLocationError)
        assert (relayed.status_code, relayed.http_status) == (2003, 404)


@pytest.mark.parametrize(
    ("http_status", "body", "content_type"),
    [(502, "<html>Bad Gateway</html>", "text/html"), (404, "Not Found", "text/plain"),
     (503, '{"error": "down"}', "application/json"), (302, "", "text/plain")],
)  # fmt: skip
async def test_http_error_without_envelope(
    recorder: Recorder,
    session: aiohttp.ClientSession,
    http_status: int,
    body: str,
    content_type: str,
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"Location": "https://elsewhere.example/"} if http_status == 302 else None
        return web.Response(
            status=http_status, text=body, content_type=content_type, headers=headers
        )

    recorder.route("GET", "/x", handler)
    await start(recorder)
    with pytest.raises(OcpiHttpError) as info:
        await new_client(session).get(recorder.url("/x"))
    assert info.value.http_status == http_status
    assert info.value.body == body


@pytest.mark.parametrize("body", ["[1, 2]", "not json", '{"data": {}}', '{"status_code": "1000"}'])
async def test_2xx_without_envelope_is_invalid_response(
    recorder: Recorder, session: aiohttp.ClientSession, body: str
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=body, content_type="application/json")

    recorder.route("GET", "/x", handler)
    await start(recorder)
    with pytest.raises(OcpiInvalidResponseError, match="not an OCPI response envelope"):
        await new_client(session).get(recorder.url("/x"))


async def test_invalid_data_names_the_field(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    location = example("location_example.json")
    location["evses"][0]["status"] = "EXPLODED"

    async def handler(request: web.Request) -> web.StreamResponse:
        return ocpi_json(location)

    async def empty(request: web.Request) -> web.StreamResponse:
        return ocpi_json()

    recorder.route("GET", "/locations/LOC1", handler)
    recorder.route("GET", "/locations/EMPTY", empty)
    await start(recorder)
    client = new_client(session)
    with pytest.raises(
        OcpiInvalidResponseError, match=r"data\.evses\[0\]\.status: Input should be"
    ):
        await client.get(recorder.url("/locations/LOC1"), v.Location)
    with pytest.raises(OcpiInvalidResponseError, match="no data"):
        await client.get(recorder.url("/locations/EMPTY"), v.Location)


async def test_oversized_answer_is_refused(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return ocpi_json(["x" * 1000] * 10)

    recorder.route("GET", "/big", handler)
    await start(recorder)
    with pytest.raises(OcpiInvalidResponseError, match="larger than 1000 bytes"):
        await new_client(session, max_response_bytes=1000).get(recorder.url("/big"))


# --------------------------------------------------- client against the server


class Locations:
    def __init__(self, count: int) -> None:
        base = example("location_example.json")
        self.items = []
        for i in range(count):
            data = copy.deepcopy(base)
            data["id"] = f"LOC{i}"
            self.items.append(v.Location.model_validate(data))

    async def list_locations(self, context: Any, page: Any) -> tuple[list[v.Location], int]:
        return self.items[page.offset : page.offset + page.limit], len(self.items)

    async def get_location(self, context: Any, location_id: str) -> v.Location | None:
        return next((x for x in self.items if x.id == location_id), None)


async def test_client_and_server_together(session: aiohttp.ClientSession) -> None:
    async def resolve(token: str, request: web.Request) -> str | None:
        return "partner" if token == TOKEN else None

    app = web.Application(middlewares=[ocpi_middleware(resolve)])
    app.add_routes(
        locations_sender_routes(Locations(7), prefix="/ocpi/cpo/2.2.1/locations", max_limit=3)
    )
    server = TestServer(app)
    await server.start_server()
    try:
        client = new_client(session)
        url = server.make_url("/ocpi/cpo/2.2.1/locations")
        got = [x.id async for x in client.get_all(url, v.Location)]
        assert got == [f"LOC{i}" for i in range(7)]
        evse = await client.get(server.make_url("/ocpi/cpo/2.2.1/locations/LOC2/3257"), v.EVSE)
        assert evse.status is v.Status.RESERVED
        with pytest.raises(OcpiStatusError) as info:
            await client.get(server.make_url("/ocpi/cpo/2.2.1/locations/NOPE"), v.Location)
        assert (info.value.status_code, info.value.http_status) == (2003, 404)
        stranger = OcpiClient(session, "not-the-token")
        with pytest.raises(OcpiStatusError) as info:
            await stranger.get(url)
        assert (info.value.status_code, info.value.http_status) == (2000, 401)
    finally:
        await server.close()
