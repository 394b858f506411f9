"""Partner URLs used exactly as given: ocpi.transport.join_url, and OcpiClient following
307/308 (same method and body, same origin, bounded hops) against real aiohttp servers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.roaming.outbox import is_retryable
from ocpi.client import OcpiClient, OcpiHttpError
from ocpi.transport import envelope, join_url, json_dumps, json_loads

TOKEN = "redirect-test-token"


@pytest.mark.parametrize(
    ("base", "segments", "expected"),
    [
        ("https://p.example/ocpi/cdrs/", (), "https://p.example/ocpi/cdrs/"),
        ("https://p.example/ocpi/cdrs", (), "https://p.example/ocpi/cdrs"),
        ("https://p.example/locations/", ("NL", "ABC", "L1"), "https://p.example/locations/NL/ABC/L1"),
        ("https://p.example/locations", ("NL", "ABC", "L1"), "https://p.example/locations/NL/ABC/L1"),
        ("https://p.example/locations//", ("NL",), "https://p.example/locations/NL"),
        ("https://p.example", ("x",), "https://p.example/x"),
        ("https://p.example/t/", ("NL*ABC*E1", "authorize"), "https://p.example/t/NL*ABC*E1/authorize"),
        ("https://p.example/t/", ("a/b", "c d", "x?y#z"), "https://p.example/t/a%2Fb/c%20d/x%3Fy%23z"),
        ("https://p.example/t/", ("..", "."), "https://p.example/t/%2E%2E/%2E"),
        ("https://p.example/t/?v=1", ("S1",), "https://p.example/t/S1?v=1"),
    ],
)
def test_join_url_appends_with_exactly_one_slash(base: str, segments: tuple[str, ...], expected: str) -> None:
    assert join_url(base, *segments) == expected


def test_join_url_refuses_an_empty_segment() -> None:
    with pytest.raises(ValueError, match="empty"):
        join_url("https://p.example/t/", "NL", "", "S1")


class Partner:
    """A server whose answers the test scripts per path; remembers every request."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.requests: list[tuple[str, str, bytes]] = []
        self.server: TestServer | None = None
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self.answers: dict[str, web.Response | None] = {}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, await request.read()))
        answer = self.answers.get(request.path)
        if answer is not None:
            return answer
        return web.Response(text=json_dumps(envelope({"seen": request.path})), content_type="application/json")

    def redirect(self, path: str, status: int, location: str) -> None:
        self.answers[path] = web.Response(status=status, headers={"Location": location})

    @property
    def origin(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/")).rstrip("/")


@pytest.fixture
async def partners() -> AsyncIterator[tuple[Partner, Partner]]:
    a, b = Partner(), Partner()
    for p in (a, b):
        p.server = TestServer(p.app)
        await p.server.start_server()
    try:
        yield a, b
    finally:
        for p in (a, b):
            assert p.server is not None
            await p.server.close()


@pytest.fixture
async def client() -> AsyncIterator[OcpiClient]:
    async with aiohttp.ClientSession() as session:
        yield OcpiClient(session, TOKEN)


@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_307_and_308_are_followed_with_the_same_method_and_body(
    partners: tuple[Partner, Partner], client: OcpiClient, status: int, method: str
) -> None:
    partner, _ = partners
    partner.redirect("/ocpi/cdrs", status, "/ocpi/cdrs/")  # relative, as frameworks send it
    reply = await client.request(method, f"{partner.origin}/ocpi/cdrs", body={"id": "CDR1", "kwh": 1.5})
    assert reply.data == {"seen": "/ocpi/cdrs/"}
    assert str(reply.url) == f"{partner.origin}/ocpi/cdrs/"
    assert [(m, p) for m, p, _ in partner.requests] == [(method, "/ocpi/cdrs"), (method, "/ocpi/cdrs/")]
    assert json_loads(partner.requests[0][2]) == json_loads(partner.requests[1][2]) == {"id": "CDR1", "kwh": 1.5}


async def test_hops_are_bounded(partners: tuple[Partner, Partner], client: OcpiClient) -> None:
    partner, _ = partners
    for i in range(1, 6):
        partner.redirect(f"/r{i}", 307, f"{partner.origin}/r{i + 1}")
    with pytest.raises(OcpiHttpError) as info:
        await client.request("PUT", f"{partner.origin}/r1", body={"n": 1})
    assert info.value.http_status == 307
    assert "not followed" in str(info.value)
    # The first request and client.max_redirects (3) hops, no more.
    assert [p for _, p, _ in partner.requests] == ["/r1", "/r2", "/r3", "/r4"]
    assert is_retryable(info.value)


async def test_a_redirect_to_another_origin_is_not_followed(
    partners: tuple[Partner, Partner], client: OcpiClient
) -> None:
    partner, other = partners
    partner.redirect("/cdrs", 307, f"{other.origin}/cdrs/")
    with pytest.raises(OcpiHttpError) as info:
        await client.request("POST", f"{partner.origin}/cdrs", body={"id": "C"})
    assert info.value.http_status == 307
    assert other.requests == []  # the credentials token never went there
    assert is_retryable(info.value)


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_other_redirects_are_errors_that_a_retry_may_cure(
    partners: tuple[Partner, Partner], client: OcpiClient, status: int
) -> None:
    partner, _ = partners
    partner.redirect("/cdrs", status, "/cdrs/")
    with pytest.raises(OcpiHttpError) as info:
        await client.request("POST", f"{partner.origin}/cdrs", body={"id": "C"})
    assert info.value.http_status == status
    assert "'/cdrs/' not followed" in str(info.value)
    assert [p for _, p, _ in partner.requests] == ["/cdrs"]
    assert is_retryable(info.value)
