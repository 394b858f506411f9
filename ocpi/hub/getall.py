"""GET All via Hubs: one paginated list combined from several Senders.

**Order.** The combined list is the concatenation of the targets' lists, targets in the
order routing gives them (by ``(country_code, party_id)``), each target's objects in its
own order. Objects are included as the target sent them (decoded with exact numbers
and re-encoded: every field, ``country_code``/``party_id`` of its owner and
``last_updated`` included, keeps its value).

**Offsets.** For a page ``(offset, limit)`` with the request's filters (``date_from``,
``date_to``, anything else, passed to every target unchanged), the hub first asks every
target for its total (``offset=0&limit=1``, read from ``X-Total-Count``), concurrently.
With totals ``t0, t1, ...`` combined offset ``N`` is target ``i``'s inner offset
``N - (t0 + ... + t(i-1))`` for the first ``i`` where that is below ``ti``
(:func:`locate`); :func:`plan` splits ``[offset, offset + limit)`` into per-target
slices, fetched concurrently (a target answering fewer objects than asked, because of its
own ``X-Limit``, is asked again from where it stopped). ``X-Total-Count`` is
``t0 + t1 + ...``, ``X-Limit`` the hub's limit, and ``Link`` the hub URL with ``offset``
advanced by the page's count and every other parameter kept.

**Consistency.** As long as no target's total changes between two page requests the
pages are exactly consecutive slices of one list: no gap, no duplicate. When a total
changes (objects added or updated into/out of the window, a target (dis)connecting) the
client sees it, as the spec describes for any server, as a changed ``X-Total-Count``;
only the objects of that target and after it shift. A target that fails to give its
total (timeout, connection problem, error status) is left out of the page (total 0,
listed in :attr:`CombinedPage.failed`) when ``skip_failed`` (default); a target failing
after giving its total fails the whole page (better an error the client retries than a
page with a hole).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from multidict import MultiDict, MultiMapping
from yarl import URL

from ocpi.hub.forward import Forwarder
from ocpi.hub.routing import Target
from ocpi.transport import (
    TOTAL_COUNT_HEADER,
    HubError,
    OcpiError,
    PageRequest,
    PartyId,
    envelope,
    error_for_status,
    is_success,
    json_dumps,
    json_loads,
    next_link,
    pagination_headers,
)

__all__ = [
    "CombinedPage",
    "PageFetcher",
    "Slice",
    "TargetPage",
    "forwarder_page_fetcher",
    "get_all_page",
    "locate",
    "plan",
]


@dataclass(frozen=True, slots=True)
class TargetPage:
    """One page of one target: its objects and its total for the query."""

    objects: list[Any]
    total: int


PageFetcher = Callable[[Target, int, int], Awaitable[TargetPage]]
"""``async (target, offset, limit) -> TargetPage``; the filters are bound in. Raises an
:class:`~ocpi.transport.OcpiError` when the target fails."""


@dataclass(frozen=True, slots=True)
class Slice:
    """Objects ``[offset, offset + count)`` of target number ``index``."""

    index: int
    offset: int
    count: int


def locate(totals: Sequence[int], offset: int) -> tuple[int, int] | None:
    """``(target index, inner offset)`` of combined offset ``offset``; None past the end."""
    if offset < 0:
        raise ValueError("offset must be non-negative")
    remaining = offset
    for index, total in enumerate(totals):
        if remaining < total:
            return index, remaining
        remaining -= total
    return None


def plan(totals: Sequence[int], offset: int, limit: int) -> list[Slice]:
    """The per-target slices making up combined objects ``[offset, offset + limit)``."""
    if offset < 0 or limit < 0:
        raise ValueError("offset and limit must be non-negative")
    slices: list[Slice] = []
    start = 0
    wanted_end = offset + limit
    for index, total in enumerate(totals):
        end = start + total
        lo, hi = max(start, offset), min(end, wanted_end)
        if lo < hi:
            slices.append(Slice(index, lo - start, hi - lo))
        start = end
        if start >= wanted_end:
            break
    return slices


@dataclass(frozen=True, slots=True)
class CombinedPage:
    objects: list[Any]
    offset: int
    limit: int
    total: int
    totals: tuple[int, ...]
    failed: tuple[PartyId, ...] = ()

    def headers(self, url: URL) -> dict[str, str]:
        """X-Total-Count, X-Limit and the next Link (``url``: the hub URL requested)."""
        page = PageRequest(offset=self.offset, limit=self.limit)
        return pagination_headers(url, page, total=self.total, count=len(self.objects))

    def body(self) -> bytes:
        """The OCPI response envelope, numbers exact."""
        return json_dumps(envelope(self.objects)).encode("utf-8")


async def get_all_page(
    targets: Sequence[Target],
    fetch: PageFetcher,
    *,
    offset: int,
    limit: int,
    skip_failed: bool = True,
) -> CombinedPage:
    """One page of the combined list (module doc)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")

    async def probe(target: Target) -> int | OcpiError:
        try:
            return (await fetch(target, 0, 1)).total
        except OcpiError as exc:
            if not skip_failed:
                raise
            return exc

    probed = await asyncio.gather(*(probe(t) for t in targets))
    totals = tuple(t if isinstance(t, int) else 0 for t in probed)
    failed = tuple(
        target.target for target, t in zip(targets, probed, strict=True) if not isinstance(t, int)
    )

    async def fetch_slice(part: Slice) -> list[Any]:
        target = targets[part.index]
        got: list[Any] = []
        while len(got) < part.count:
            page = await fetch(target, part.offset + len(got), part.count - len(got))
            if not page.objects:
                break  # the target shrank since its total was read
            got.extend(page.objects[: part.count - len(got)])
        return got

    parts = await asyncio.gather(*(fetch_slice(p) for p in plan(totals, offset, limit)))
    objects = [obj for part in parts for obj in part]
    return CombinedPage(objects, offset, limit, sum(totals), totals, failed)


def forwarder_page_fetcher(
    forwarder: Forwarder,
    *,
    correlation_id: str,
    requester: PartyId,
    query: Mapping[str, str] | MultiMapping[str] | None = None,
    request_timeout: float | None = None,
) -> PageFetcher:
    """A :data:`PageFetcher` GETting each target's Sender interface through the
    forwarder (or the in-process handler), with OCPI-from = ``requester`` (so a target
    can answer what that party may see), OCPI-to = the target, and ``query`` (the
    client's filters; its ``offset``/``limit`` are replaced)."""
    base: MultiDict[str] = MultiDict(query or {})
    for name in ("offset", "limit"):
        base.popall(name, None)

    async def fetch(target: Target, offset: int, limit: int) -> TargetPage:
        params: MultiDict[str] = MultiDict(base)
        params["offset"] = str(offset)
        params["limit"] = str(limit)
        response = await forwarder.send(
            target,
            method="GET",
            correlation_id=correlation_id,
            query=params,
            from_party=requester,
            request_timeout=request_timeout,
        )
        try:
            parsed = json_loads(response.body)
        except ValueError:
            raise HubError(f"{target.target}: the answer is not JSON") from None
        status = parsed.get("status_code") if isinstance(parsed, dict) else None
        if not isinstance(status, int):
            raise HubError(f"{target.target}: the answer is not an OCPI response")
        if not is_success(status):
            raise error_for_status(
                status, f"{target.target}: {parsed.get('status_message') or 'error'}"
            )
        data = parsed.get("data")
        if data is None:
            data = []
        if not isinstance(data, list):
            raise HubError(f"{target.target}: data is not a list")
        raw_total = response.headers.get(TOTAL_COUNT_HEADER)
        if raw_total is not None and raw_total.strip().isdigit():
            total = int(raw_total)
        elif next_link(response.headers.getall("Link", ())) is None:
            total = offset + len(data)
        else:
            raise HubError(f"{target.target}: paginated answer without {TOTAL_COUNT_HEADER}")
        return TargetPage(data, total)

    return fetch
