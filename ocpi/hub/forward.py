"""Forwarding a request to the receiving party, byte for byte.

:class:`Forwarder` sends a routed request to the receiver platform's URL with the
credentials token the hub uses towards that platform (an injected lookup), a **new**
``X-Request-ID``, the **same** ``X-Correlation-ID``, the OCPI-from/to headers given and
the body bytes unchanged (never re-serialized: objects and their ``last_updated`` are
passed as they came). The answer comes back as :class:`ForwardedResponse`: HTTP status
and body bytes unchanged, the headers a client needs (``Content-Type``,
``X-Total-Count``, ``X-Limit``, ``Link``, ``OCPI-*``, ``Allow``) with ``Link`` rewritten
into the hub's URL space. A :class:`~ocpi.hub.routing.Local` target is handed to an
injected in-process handler instead, with the same request and response shapes.

A platform registered in OCPI 2.1.1 (``versions``, a lookup by platform) is called with
its token as it is, not Base64-encoded, and without routing headers, which 2.1.1 lacks.

Failures are the hub's OCPI errors: no answer within the timeout -> 4002
(:class:`~ocpi.transport.HubTimeoutError`); connection refused or reset, DNS or TLS
failure, or no credentials for the platform -> 4003
(:class:`~ocpi.transport.HubConnectionProblemError`); an answer that is not an OCPI
envelope (an HTML 502 from a proxy, a plain 404) -> 4000 (:class:`~ocpi.transport.HubError`)
naming the HTTP status. An OCPI envelope is passed through whatever its status code
(2xxx, 3xxx, even 4xxx of a hub behind) and HTTP status.

Link rewrite (reversible). The receiver's next link normally lies below its endpoint
URL ``E`` (``E`` + rest + ``?offset=..&limit=..&filters``): it becomes the hub's URL of the
interface ``H`` + the same rest + the same query. The client calls that link with the
same OCPI-to-* headers (routed requests always carry them), the hub routes it to the same
receiver, and :func:`receiver_url` turns ``H`` + rest + query back into ``E`` + rest +
query: the receiver gets exactly its own link. A link elsewhere (another path or host:
an opaque cursor URL) is carried whole, base64url-encoded, in the ``ocpi_hub_link`` query
parameter of ``H``; :func:`receiver_url` decodes it and refuses it unless it has the
origin of the receiver's endpoint (so a client cannot make the hub call arbitrary URLs).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import orjson
import simdjson
from multidict import CIMultiDict, CIMultiDictProxy, MultiMapping
from yarl import URL

from ocpi.hub.http1 import Http1Client, ResponseTooLargeError
from ocpi.hub.routing import Local, Target
from ocpi.transport import (
    CORRELATION_ID_HEADER,
    LINK_HEADER,
    REQUEST_ID_HEADER,
    TOTAL_COUNT_HEADER,
    X_LIMIT_HEADER,
    HubConnectionProblemError,
    HubError,
    HubTimeoutError,
    InvalidParametersError,
    PartyId,
    RequestIds,
    encode_authorization,
    redirect_target,
    routing_headers,
)

__all__ = [
    "HUB_LINK_PARAM",
    "PASSED_HEADERS",
    "ForwardedResponse",
    "Forwarder",
    "LocalHandler",
    "LocalRequest",
    "SentObserver",
    "TokenLookup",
    "VersionLookup",
    "envelope_status",
    "hub_link",
    "is_envelope",
    "receiver_url",
    "rewrite_links",
]

HUB_LINK_PARAM = "ocpi_hub_link"

PASSED_HEADERS = ("Content-Type", TOTAL_COUNT_HEADER, X_LIMIT_HEADER, "Allow")
"""Response headers passed back as they are (plus ``Link``, rewritten, and ``OCPI-*``)."""

TokenLookup = Callable[[str], Awaitable[str | None]]
"""``async (platform_id) -> credentials token`` the hub uses to call that platform
(None: not registered, answered 4003)."""

SentObserver = Callable[[str, str, str], None]
"""``(method, URL path, HTTP status | "timeout" | "error")``: each request sent (metrics)."""

VersionLookup = Callable[[str], str | None]
"""``(platform_id) -> the OCPI version it registered in``: a 2.1.1 platform gets its token
as it is (not Base64-encoded) and no routing headers, which 2.1.1 does not have."""

QueryLike = Mapping[str, str] | MultiMapping[str] | None


@dataclass(frozen=True, slots=True)
class ForwardedResponse:
    status: int
    headers: CIMultiDict[str]
    body: bytes
    status_code: int | None = None
    """The OCPI ``status_code`` of ``body`` when the forwarder read it (checking the
    envelope); None when not known."""


@dataclass(frozen=True, slots=True)
class LocalRequest:
    """A routed request for a party served in-process; ``target.module``,
    ``target.interface`` and ``target.path`` say which operation it addresses."""

    target: Local
    method: str
    query: MultiMapping[str]
    body: bytes | None
    correlation_id: str
    request_id: str
    from_party: PartyId | None
    to_party: PartyId | None
    headers: Mapping[str, str] = field(default_factory=dict)


LocalHandler = Callable[[LocalRequest], Awaitable[ForwardedResponse]]


# ----------------------------------------------------------------- link rewrite


def _under(url: URL, base: URL) -> str | None:
    """The path of ``url`` below ``base`` ("" or "/..."), or None when not below it."""
    if url.origin() != base.origin():
        return None
    base_path = base.path.rstrip("/")
    if url.path == base_path or url.path == base_path + "/":
        return ""
    if url.path.startswith(base_path + "/"):
        return url.path[len(base_path) :]
    return None


def hub_link(link: str, *, receiver_base: str | URL, hub_base: str | URL) -> str:
    """The hub's URL for a receiver's link (module doc)."""
    target = URL(link)
    receiver = URL(str(receiver_base))
    hub = URL(str(hub_base))
    rest = _under(target, receiver) if target.is_absolute() else None
    if rest is None:
        encoded = base64.urlsafe_b64encode(link.encode("utf-8")).decode("ascii").rstrip("=")
        return str(hub.with_query({HUB_LINK_PARAM: encoded}))
    path = hub.path.rstrip("/") + rest if rest else hub.path
    return str(hub.with_path(path, encoded=False).with_query(target.query))


def receiver_url(endpoint: str | URL, path: tuple[str, ...] = (), query: QueryLike = None) -> URL:
    """The receiver's URL for a request to the hub: ``endpoint`` + ``path`` + ``query``,
    or the receiver link carried in ``ocpi_hub_link`` (checked to be on the endpoint's
    origin; :class:`InvalidParametersError` otherwise)."""
    base = endpoint if isinstance(endpoint, URL) else URL(endpoint)
    carried = query.get(HUB_LINK_PARAM) if query else None
    if carried is not None:
        try:
            raw = base64.urlsafe_b64decode(carried + "=" * (-len(carried) % 4)).decode("utf-8")
            link = URL(raw)
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidParametersError(f"{HUB_LINK_PARAM}: not a link of this hub") from None
        if not link.is_absolute() or link.origin() != base.origin():
            raise InvalidParametersError(f"{HUB_LINK_PARAM}: not a link of this receiver")
        return link
    url = base.joinpath(*path) if path else base  # as base / path[0] / path[1] ...
    if query:
        url = url.with_query(query)
    return url


def rewrite_links(values: list[str], *, receiver_base: str | URL, hub_base: str | URL) -> list[str]:
    """Rewrite every ``<target>`` of ``Link`` header values, keeping the parameters."""
    out: list[str] = []
    for value in values:
        parts: list[str] = []
        rest = value
        while True:
            start = rest.find("<")
            end = rest.find(">", start + 1)
            if start < 0 or end < 0:
                parts.append(rest)
                break
            parts.append(rest[: start + 1])
            parts.append(
                hub_link(rest[start + 1 : end], receiver_base=receiver_base, hub_base=hub_base)
            )
            rest = rest[end:]
        out.append("".join(parts))
    return out


# --------------------------------------------------------------------- envelope


# Below this size (an empty success, a PUT's answer) orjson's objects cost less than
# simdjson's parser: 1.1 against 2.5 µs for 86 bytes, 4.2 against 3.2 for 735.
_SIMDJSON_FROM = 512


def envelope_status(body: bytes) -> int | None:
    """The ``status_code`` of an OCPI response (a JSON object with an integer
    status_code), None when ``body`` is not one: the json module's verdict on it."""
    stripped = body.lstrip()
    if not stripped.startswith(b"{"):
        return None
    if len(body) < _SIMDJSON_FROM:
        return _full_status(body)
    try:
        # simdjson checks the whole document (RFC 8259, UTF-8) without making Python
        # objects of it: a 10-location page in a fifth of orjson's time. Only the top
        # level's keys are read (items() would build every value); a key repeated is
        # left to the general path (json keeps the last). A new parser each time (0.1
        # µs) shares nothing between callers.
        document = simdjson.Parser().parse(body)
        if not isinstance(document, simdjson.Object):
            return None
        found = list(document.keys()).count("status_code")
        code = document["status_code"] if found == 1 else None
        del document
    except (ValueError, RuntimeError):  # not JSON to it (a big integer: RuntimeError)
        return _full_status(body)
    if found > 1 or isinstance(code, float):
        return _full_status(body)  # json reads some numbers apart (1e400: inf)
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _full_status(body: bytes) -> int | None:
    """:func:`envelope_status` by orjson, and the json module for what orjson refuses."""
    try:
        # orjson reads a page in half the time of json; what it refuses and json takes
        # (NaN, lone surrogates, UTF-16, nesting past 1024) is read by json: same verdicts.
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
    code = parsed.get("status_code") if isinstance(parsed, dict) else None
    if isinstance(code, float):
        # orjson reads an integer beyond 64 bits as a float, json as the integer it is.
        with contextlib.suppress(ValueError):
            parsed = json.loads(body)
            code = parsed.get("status_code") if isinstance(parsed, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def is_envelope(body: bytes) -> bool:
    """Whether ``body`` is an OCPI response: a JSON object with an integer status_code."""
    return envelope_status(body) is not None


def _excerpt(body: bytes, limit: int = 200) -> str:
    text = body[:limit].decode("utf-8", errors="replace").replace("\n", " ").strip()
    return text + ("..." if len(body) > limit else "")


# -------------------------------------------------------------------- forwarder


class Forwarder:
    """Sends routed requests; see the module doc.

    ``tokens`` gives the credentials token towards a platform; ``local`` handles
    :class:`~ocpi.hub.routing.Local` targets (without it they are answered 4003).
    ``timeout`` (seconds, per request, from connecting to the last byte) can be
    overridden per call (``request_timeout``). Answers larger than
    ``max_response_bytes`` are a 4000. A 307/308 answer is followed as the OCPI client
    follows it (same method and body, same origin, at most ``max_redirects`` hops): a
    receiver that moved its endpoint is still reached. The requests go out through
    ``client`` (:mod:`ocpi.hub.http1`, which the caller closes); ``on_sent`` is told of
    each: method, URL path and HTTP status, or "timeout" or "error" without an answer.
    """

    def __init__(
        self,
        client: Http1Client,
        tokens: TokenLookup,
        *,
        local: LocalHandler | None = None,
        timeout: float = 30.0,
        encode_token: bool = True,
        request_id_factory: Callable[[], str] | None = None,
        max_response_bytes: int = 64 * 1024 * 1024,
        max_redirects: int = 3,
        versions: VersionLookup | None = None,
        on_sent: SentObserver | None = None,
    ) -> None:
        self._client = client
        self._on_sent = on_sent
        self._versions = versions
        self.max_redirects = max_redirects
        self._tokens = tokens
        self._local = local
        self.timeout = timeout
        self._encode_token = encode_token
        # Fresh UUID4s (ocpi.transport.new_request_id's), the random bytes read in bulk.
        self._new_id = request_id_factory or RequestIds()
        self.max_response_bytes = max_response_bytes
        # Built once and kept (bounded: cleared when full): per token, per party pair, per
        # endpoint, per Link value.
        self._authorizations: dict[tuple[str, bool], str] = {}
        self._endpoints: dict[str, URL] = {}
        self._links: dict[tuple[str, str, str], str] = {}
        self._fixed: dict[
            tuple[bool, PartyId | None, PartyId | None, str | None], dict[str, str]
        ] = {}

    async def send(
        self,
        target: Target,
        *,
        method: str,
        correlation_id: str,
        query: QueryLike = None,
        body: bytes | None = None,
        content_type: str | None = "application/json",
        from_party: PartyId | None = None,
        to_party: PartyId | None = None,
        hub_base: str | URL | None = None,
        request_timeout: float | None = None,
    ) -> ForwardedResponse:
        """Send to a routed target: HTTP for :class:`Forward` (``url`` from the
        endpoint, the target's path and ``query``; ``Link`` rewritten to ``hub_base``
        when given), the local handler for :class:`Local`. ``to_party`` defaults to the
        target party, ``from_party`` to the decision's sender."""
        sender = from_party or target.sender
        receiver = to_party or target.target
        if isinstance(target, Local):
            return await self._send_local(
                target, method, query, body, correlation_id, sender, receiver
            )
        url = receiver_url(self._endpoint_url(target.endpoint), target.path, query)
        response = await self.request(
            target.platform_id,
            method,
            url,
            correlation_id=correlation_id,
            body=body,
            content_type=content_type,
            from_party=sender,
            to_party=receiver,
            request_timeout=request_timeout,
        )
        if hub_base is not None and LINK_HEADER in response.headers:
            links = [
                self._hub_links(value, target.endpoint, str(hub_base))
                for value in response.headers.getall(LINK_HEADER)
            ]
            del response.headers[LINK_HEADER]
            for link in links:
                response.headers.add(LINK_HEADER, link)
        return response

    async def _send_local(
        self,
        target: Local,
        method: str,
        query: QueryLike,
        body: bytes | None,
        correlation_id: str,
        from_party: PartyId,
        to_party: PartyId,
    ) -> ForwardedResponse:
        if self._local is None:
            raise HubConnectionProblemError(f"no in-process handler for {target.target}")
        request = LocalRequest(
            target=target,
            method=method.upper(),
            query=CIMultiDict(query or {}),
            body=body,
            correlation_id=correlation_id,
            request_id=self._new_id(),
            from_party=from_party,
            to_party=to_party,
        )
        return await self._local(request)

    async def request(
        self,
        platform_id: str,
        method: str,
        url: str | URL,
        *,
        correlation_id: str,
        body: bytes | None = None,
        content_type: str | None = "application/json",
        from_party: PartyId | None = None,
        to_party: PartyId | None = None,
        request_timeout: float | None = None,
    ) -> ForwardedResponse:
        """One HTTP request to a platform (any URL of it: a proxied response_url too)."""
        token = await self._tokens(platform_id)
        if token is None:
            raise HubConnectionProblemError(f"no credentials to call platform {platform_id}")
        v211 = self._versions is not None and self._versions(platform_id) == "2.1.1"
        method = method.upper()
        headers = {
            "Authorization": self._authorization(token, self._encode_token and not v211),
            REQUEST_ID_HEADER: self._new_id(),
            CORRELATION_ID_HEADER: correlation_id,
        }
        headers.update(
            self._fixed_headers(
                v211, from_party, to_party, content_type if body is not None else None
            )
        )
        limit = request_timeout if request_timeout is not None else self.timeout
        target = url if isinstance(url, URL) else URL(url)
        sent = self._on_sent
        try:
            # The one deadline for the whole exchange, redirects included.
            async with asyncio.timeout(limit):
                hops = 0
                while True:
                    answer = await self._client.request(
                        method, target, headers, body, max_body=self.max_response_bytes
                    )
                    status = answer.status
                    if sent is not None:
                        sent(method, target.path, _STATUS_TEXT.get(status) or str(status))
                    moved = redirect_target(
                        target, status, answer.headers, hops, self.max_redirects
                    )
                    if moved is None:
                        break
                    target, hops = moved, hops + 1
        except (TimeoutError, OSError) as exc:  # HttpClientError and its kinds are OSErrors
            if sent is not None:
                sent(method, target.path, "timeout" if isinstance(exc, TimeoutError) else "error")
            raise self._failure(exc, limit, method, target) from None
        raw = answer.body
        received = answer.headers
        code = envelope_status(raw)
        if code is None:
            raise HubError(
                f"the receiver answered HTTP {status} without an OCPI response "
                f"({method} {target}): {_excerpt(raw)!r}"
            )
        return ForwardedResponse(status, _passed_headers(received), raw, code)

    def _failure(self, exc: Exception, limit: float, method: str, target: URL) -> HubError:
        """The hub's error for an exchange that got no usable answer (see the module doc)."""
        if isinstance(exc, TimeoutError):
            return HubTimeoutError(
                f"the receiver did not answer within {limit:g} s ({method} {target})"
            )
        if isinstance(exc, ResponseTooLargeError):
            return HubError(
                f"the receiver's answer exceeds {self.max_response_bytes} bytes ({method} {target})"
            )
        # Refused, reset, DNS, TLS, an answer that is not HTTP.
        return HubConnectionProblemError(
            f"cannot reach the receiver ({method} {target}): {type(exc).__name__}: {exc}"
        )

    def _endpoint_url(self, endpoint: str) -> URL:
        """A platform's endpoint URL, parsed once (the same few, request after request)."""
        url = self._endpoints.get(endpoint)
        if url is None:
            if len(self._endpoints) >= _CACHE_SIZE:
                self._endpoints.clear()
            url = self._endpoints[endpoint] = URL(endpoint)
        return url

    def _hub_links(self, value: str, receiver_base: str, hub_base: str) -> str:
        """A ``Link`` header value rewritten into the hub's URL space (:func:`rewrite_links`),
        once per (value, endpoint, hub URL): clients page through the same lists."""
        key = (value, receiver_base, hub_base)
        rewritten = self._links.get(key)
        if rewritten is None:
            if len(self._links) >= _CACHE_SIZE:
                self._links.clear()
            rewritten = rewrite_links([value], receiver_base=receiver_base, hub_base=hub_base)[0]
            self._links[key] = rewritten
        return rewritten

    def _authorization(self, token: str, base64_encode: bool) -> str:
        """The ``Authorization`` value for ``token``, encoded once per token."""
        key = (token, base64_encode)
        value = self._authorizations.get(key)
        if value is None:
            if len(self._authorizations) >= _CACHE_SIZE:
                self._authorizations.clear()
            value = encode_authorization(token, base64_encode=base64_encode)
            self._authorizations[key] = value
        return value

    def _fixed_headers(
        self,
        v211: bool,
        from_party: PartyId | None,
        to_party: PartyId | None,
        content_type: str | None,
    ) -> dict[str, str]:
        """The headers a request shares with every other between the same parties:
        ``Accept``, the routing headers (none to a 2.1.1 platform) and ``Content-Type``
        (``content_type``: None without a body), built once per combination."""
        key = (v211, from_party, to_party, content_type)
        fixed = self._fixed.get(key)
        if fixed is None:
            if len(self._fixed) >= _CACHE_SIZE:
                self._fixed.clear()
            fixed = {"Accept": "application/json"}
            if not v211:
                fixed.update(routing_headers(from_party=from_party, to_party=to_party))
            if content_type:
                fixed["Content-Type"] = content_type
            self._fixed[key] = fixed
        return fixed


_STATUS_TEXT = {code: str(code) for code in range(100, 600)}
"""HTTP statuses as the metrics label them, built once."""

_CACHE_SIZE = 4096
"""Entries kept of each of the forwarder's caches before it is emptied and built anew."""


def _passed_headers(received: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in received.items():
        lower = name.lower()
        if lower.startswith("ocpi-") or lower == "link":
            out.add(name, value)
    for name in PASSED_HEADERS:
        for value in received.getall(name, ()):
            out.add(name, value)
    return out
