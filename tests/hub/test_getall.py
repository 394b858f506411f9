"""GET All via the hub: the offset arithmetic, and three real Senders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from ocpi.hub.forward import Forwarder
from ocpi.hub.getall import (
    CombinedPage,
    Slice,
    TargetPage,
    forwarder_page_fetcher,
    get_all_page,
    locate,
    plan,
)
from ocpi.hub.http1 import Http1Client
from ocpi.hub.routing import Forward, Target
from ocpi.server import paginated_response
from ocpi.transport import (
    OcpiError,
    PartyId,
    json_loads,
    next_link,
    parse_page_request,
)
from tests.hub.servers import refused_url, running

EM1 = PartyId("NL", "EM1")
HUB_URL = URL("https://hub.example.com/ocpi/2.2.1/locations/sender")
T0 = datetime(2024, 1, 1, tzinfo=UTC)

# -------------------------------------------------------------- arithmetic

totals_st = st.lists(st.integers(min_value=0, max_value=12), max_size=6)


@given(totals=totals_st, offset=st.integers(0, 80), limit=st.integers(0, 30))
def test_plan_is_a_slice_of_the_concatenation(totals: list[int], offset: int, limit: int) -> None:
    combined = [(i, j) for i, t in enumerate(totals) for j in range(t)]
    got = [(s.index, s.offset + k) for s in plan(totals, offset, limit) for k in range(s.count)]
    assert got == combined[offset : offset + limit]
    for s in plan(totals, offset, limit):
        assert s.count > 0
    position = locate(totals, offset)
    assert position == (combined[offset] if offset < len(combined) else None)


def test_plan_table() -> None:
    assert plan([3, 0, 5], 2, 4) == [Slice(0, 2, 1), Slice(2, 0, 3)]
    assert plan([3, 0, 5], 8, 4) == []
    assert locate([3, 0, 5], 3) == (2, 0)
    with pytest.raises(ValueError, match="non-negative"):
        plan([1], -1, 1)


# --------------------------------------------------------- three senders


def make_objects(cc: str, pid: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "country_code": cc,
            "party_id": pid,
            "id": f"{pid}-{i}",
            "last_updated": f"2024-01-01T00:{i:02d}:00.5Z",
            "coordinates": {"latitude": "52.1", "longitude": "4.1"},
            "power": Decimal(f"{i}.10"),
        }
        for i in range(n)
    ]


def sender_app(objects: list[dict[str, Any]], max_limit: int, calls: list[str]) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        calls.append(request.path_qs)
        page = parse_page_request(request.query, max_limit=max_limit)
        window = [o for o in objects if page.matches(datetime.fromisoformat(o["last_updated"]))]
        items = window[page.offset : page.offset + page.limit]
        return paginated_response(request, items, len(window), page)

    app = web.Application()
    app.router.add_get("/ocpi/cpo/2.2.1/locations", handle)
    return app


SENDERS = [("BE", "AAA", 7, 3), ("DE", "BBB", 0, 5), ("NL", "CCC", 13, 4)]


@pytest.fixture
async def senders() -> AsyncIterator[tuple[list[Target], list[dict[str, Any]], list[list[str]]]]:
    async with AsyncExitStack() as stack:
        targets: list[Target] = []
        everything: list[dict[str, Any]] = []
        calls: list[list[str]] = []
        for cc, pid, n, cap in SENDERS:
            objects = make_objects(cc, pid, n)
            log: list[str] = []
            url = await stack.enter_async_context(running(sender_app(objects, cap, log)))
            targets.append(
                Forward(EM1, PartyId(cc, pid), f"p-{pid}", f"{url}/ocpi/cpo/2.2.1/locations")
            )
            everything.extend(objects)
            calls.append(log)
        yield targets, everything, calls


async def tokens(platform_id: str) -> str:
    return "t-" + platform_id


async def crawl(
    targets: list[Target], query: dict[str, str], limit: int
) -> tuple[list[CombinedPage], list[dict[str, str]]]:
    """Follow the hub's next links from offset 0, as a client would."""
    pages: list[CombinedPage] = []
    headers: list[dict[str, str]] = []
    url = HUB_URL.with_query({**query, "limit": str(limit)})
    async with Http1Client() as session:
        forwarder = Forwarder(session, tokens)
        for _ in range(100):
            request = parse_page_request(url.query, max_limit=limit)
            fetch = forwarder_page_fetcher(
                forwarder, correlation_id="corr", requester=EM1, query=url.query
            )
            page = await get_all_page(targets, fetch, offset=request.offset, limit=request.limit)
            pages.append(page)
            headers.append(page.headers(url))
            link = next_link([headers[-1].get("Link", "")])
            if link is None:
                break
            url = URL(link)
    return pages, headers


def as_ids(objects: list[Any]) -> list[str]:
    return [o["id"] for o in objects]


@pytest.mark.parametrize("limit", [1, 5, 6, 50])
async def test_pages_are_exactly_the_concatenation(senders: Any, limit: int) -> None:
    targets, everything, _ = senders
    pages, headers = await crawl(targets, {}, limit)
    combined = [o for p in pages for o in p.objects]
    assert as_ids(combined) == as_ids(everything)  # no gap, no duplicate, in order
    assert len(set(as_ids(combined))) == 20
    for page, header in zip(pages, headers, strict=True):
        assert header["X-Total-Count"] == "20" and header["X-Limit"] == str(limit)
        assert page.totals == (7, 0, 13) and page.failed == ()
        assert len(page.objects) == min(limit, 20 - page.offset)
    assert "Link" not in headers[-1]
    # objects unchanged: owner, last_updated string, exact numbers
    first = combined[0]
    assert (first["country_code"], first["party_id"], first["last_updated"]) == (
        "BE",
        "AAA",
        "2024-01-01T00:00:00.5Z",
    )
    assert combined[1]["power"] == Decimal("1.10")
    assert b'"power":1.10' in pages[0].body() or limit == 1


async def test_date_window_and_filters_are_passed_to_every_sender(senders: Any) -> None:
    targets, everything, calls = senders
    query = {"date_from": "2024-01-01T00:02:00Z", "date_to": "2024-01-01T00:09:00Z"}
    pages, headers = await crawl(targets, query, 4)
    window = [o for o in everything if "00:02" <= o["last_updated"][11:16] < "00:09"]
    assert as_ids([o for p in pages for o in p.objects]) == as_ids(window)
    assert headers[0]["X-Total-Count"] == str(len(window)) == "12"
    assert "date_from=2024-01-01T00:02:00Z" in headers[0]["Link"]
    assert all("date_to=" in c for log in calls for c in log)


async def test_failed_sender_is_skipped_or_fails_the_page(senders: Any) -> None:
    targets, everything, _ = senders
    dead = Forward(EM1, PartyId("AT", "DED"), "p-dead", refused_url())
    with_dead = [dead, *targets]
    async with Http1Client() as session:
        fetch = forwarder_page_fetcher(
            Forwarder(session, tokens), correlation_id="c", requester=EM1
        )
        page = await get_all_page(with_dead, fetch, offset=0, limit=100)
        assert as_ids(page.objects) == as_ids(everything)
        assert page.failed == (PartyId("AT", "DED"),) and page.total == 20
        with pytest.raises(OcpiError) as info:
            await get_all_page(with_dead, fetch, offset=0, limit=100, skip_failed=False)
        assert info.value.status_code == 4003


async def test_sender_error_status_counts_as_failure() -> None:
    async def fetch(target: Target, offset: int, limit: int) -> TargetPage:
        if target.target.party_id == "BAD":
            raise OcpiError("nope", status_code=2000)
        return TargetPage([{"id": f"{offset}"}][:limit], 1)

    good = Forward(EM1, PartyId("NL", "GUD"), "p", "http://x")
    bad = Forward(EM1, PartyId("NL", "BAD"), "p", "http://x")
    page = await get_all_page([bad, good], fetch, offset=0, limit=10)
    assert page.objects == [{"id": "0"}] and page.failed == (PartyId("NL", "BAD"),)


async def test_target_shrinking_between_probe_and_fetch_gives_a_short_page() -> None:
    sizes = {"A": 5}

    async def fetch(target: Target, offset: int, limit: int) -> TargetPage:
        n = sizes["A"]
        sizes["A"] = 2  # shrinks after the probe
        return TargetPage([{"i": i} for i in range(n)][offset : offset + limit], n)

    page = await get_all_page(
        [Forward(EM1, PartyId("NL", "AAA"), "p", "http://x")], fetch, offset=1, limit=4
    )
    assert page.objects == [{"i": 1}] and page.total == 5


def test_combined_page_headers() -> None:
    page = CombinedPage([{"a": 1}] * 2, offset=4, limit=2, total=7, totals=(3, 4))
    headers = page.headers(HUB_URL.with_query({"offset": "4", "limit": "2", "date_from": "x"}))
    assert headers["X-Total-Count"] == "7"
    assert next_link([headers["Link"]]) == f"{HUB_URL}?offset=6&limit=2&date_from=x"
    assert json_loads(page.body())["data"] == [{"a": 1}] * 2
