"""An OCPI client for calling partners, over an aiohttp ``ClientSession``.

Every request carries ``Authorization: Token <base64(token)>`` (or the raw token for a
peer that wants it unencoded), a fresh ``X-Request-ID``, an ``X-Correlation-ID`` (given,
or fresh) and, when configured, the OCPI-from-*/OCPI-to-* routing headers; it has a
timeout. A 307 or 308 answer is followed with the same method and body, on the same
origin only and for at most ``max_redirects`` hops (a partner that moved its endpoint,
e.g. to the form with a trailing slash); any other redirect is an
:class:`OcpiHttpError`. The answer's envelope is checked and ``data`` validated against
a model when one is given.

Failures are typed, all :class:`OcpiClientError`:

* :class:`OcpiTransportError`: no answer (connection refused, reset, DNS, TLS);
  :class:`OcpiTimeoutError` for a timeout.
* :class:`OcpiStatusError`: an OCPI envelope whose ``status_code`` is not 1xxx, with
  the code, message and HTTP status (whatever the HTTP status was).
* :class:`OcpiHttpError`: an HTTP status outside 2xx without an OCPI error envelope
  (a 502 from a proxy, an HTML 404, a redirect that is not followed).
* :class:`OcpiInvalidResponseError`: a 2xx answer that is not an OCPI envelope, or whose
  ``data`` does not validate (the message names the field), or pagination gone wrong.

These are deliberately not :class:`ocpi.transport.OcpiError`: a partner's failure must
not turn into our own answer's status code by accident (a hub that wants to relay it
calls :meth:`OcpiStatusError.to_ocpi_error`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, overload

import aiohttp
from multidict import CIMultiDictProxy
from pydantic import BaseModel, ValidationError
from yarl import URL

from ocpi.transport import (
    CORRELATION_ID_HEADER,
    LINK_HEADER,
    REQUEST_ID_HEADER,
    TOTAL_COUNT_HEADER,
    X_LIMIT_HEADER,
    OcpiError,
    OcpiStatus,
    PartyId,
    encode_authorization,
    error_for_status,
    format_datetime,
    format_validation_error,
    is_success,
    json_dumps,
    json_loads,
    new_request_id,
    next_link,
    parse_datetime,
    redirect_target,
    routing_headers,
)

__all__ = [
    "OcpiClient",
    "OcpiClientError",
    "OcpiHttpError",
    "OcpiInvalidResponseError",
    "OcpiReply",
    "OcpiStatusError",
    "OcpiTimeoutError",
    "OcpiTransportError",
    "Page",
]

log = logging.getLogger("ocpi.client")

M = TypeVar("M", bound=BaseModel)

_BODY_EXCERPT = 200


# ------------------------------------------------------------------------ errors


class OcpiClientError(Exception):
    """A request to a partner failed; ``method`` and ``url`` say which."""

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(f"{method} {url}: {message}")
        self.message = message
        self.method = method
        self.url = url


class OcpiTransportError(OcpiClientError):
    """No HTTP answer: connection refused or reset, DNS or TLS failure."""


class OcpiTimeoutError(OcpiTransportError):
    """No (complete) answer within the timeout."""


class OcpiHttpError(OcpiClientError):
    """An HTTP status outside 2xx without an OCPI error envelope."""

    def __init__(self, message: str, *, method: str, url: str, http_status: int, body: str):
        super().__init__(message, method=method, url=url)
        self.http_status = http_status
        self.body = body


class OcpiStatusError(OcpiClientError):
    """The partner answered with an OCPI error status code (not 1xxx)."""

    def __init__(
        self,
        *,
        method: str,
        url: str,
        status_code: int,
        status_message: str | None,
        http_status: int,
        data: Any = None,
    ) -> None:
        text = status_message or OcpiStatus.describe(status_code)
        super().__init__(
            f"OCPI status {status_code} ({text}), HTTP {http_status}", method=method, url=url
        )
        self.status_code = status_code
        self.status_message = status_message
        self.http_status = http_status
        self.data = data

    @property
    def status(self) -> OcpiStatus | None:
        """The status code as an :class:`OcpiStatus`, None for a custom code."""
        try:
            return OcpiStatus(self.status_code)
        except ValueError:
            return None

    def to_ocpi_error(self) -> OcpiError:
        """The same status code, message and HTTP status as an error our own server
        answers with (a hub forwarding a partner's error)."""
        return error_for_status(
            self.status_code,
            self.status_message or OcpiStatus.describe(self.status_code),
            http_status=self.http_status,
        )


class OcpiInvalidResponseError(OcpiClientError):
    """A 2xx answer that is not a usable OCPI response."""


# ------------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class OcpiReply:
    """A successful OCPI answer (status 1xxx, HTTP 2xx)."""

    http_status: int
    headers: CIMultiDictProxy[str]
    status_code: int
    status_message: str | None
    timestamp: datetime | None
    data: Any
    url: URL
    request_id: str
    correlation_id: str


@dataclass(frozen=True, slots=True)
class Page(Generic[M]):
    """One page of a paginated GET: the valid ``items``, X-Total-Count, X-Limit, the
    ``rel="next"`` URL and the objects that did not validate (index, message)."""

    items: list[M]
    total: int | None
    limit: int | None
    next_url: URL | None
    invalid: list[tuple[int, str]] = field(default_factory=list)


InvalidItemHandler = Callable[[URL, int, Any, str], None]
"""``(page url, index in page, raw object, error message)``, called for each object of
a list that does not validate (transport_and_format: a client "should at least process
the correct OCPI objects")."""


def _log_invalid(url: URL, index: int, raw: Any, message: str) -> None:
    log.warning("skipping invalid object data[%d] from %s: %s", index, url, message)


class ExchangeObserver(Protocol):
    """Told of every request a client sends and of its answer (each redirect hop too):
    a message trail, a debugger. Called synchronously; must not raise or block."""

    def sent(
        self, method: str, url: URL, request_id: str, correlation_id: str, body: bytes | None
    ) -> None: ...

    def answered(
        self,
        method: str,
        url: URL,
        request_id: str,
        correlation_id: str,
        http_status: int | None,
        body: bytes | None,
        error: str | None,
    ) -> None:
        """``http_status`` None (and ``error`` set): no answer (timeout, transport)."""
        ...


# ------------------------------------------------------------------------- client


class OcpiClient:
    """Calls one partner with one credentials token.

    ``encode_token=False`` sends the token unencoded (OCPI 2.1.1-era peers).
    ``timeout`` (seconds) bounds each request, from connecting to the last byte;
    ``max_pages`` bounds :meth:`get_all`; ``max_redirects`` the 307/308 hops a request
    follows. ``request_id_factory`` makes X-Request-ID
    and default X-Correlation-ID values (UUID4 by default).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        token: str,
        *,
        encode_token: bool = True,
        timeout: float = 30.0,
        request_id_factory: Callable[[], str] = new_request_id,
        from_party: PartyId | None = None,
        to_party: PartyId | None = None,
        max_pages: int = 1000,
        max_response_bytes: int = 64 * 1024 * 1024,
        max_redirects: int = 3,
        observer: ExchangeObserver | None = None,
    ) -> None:
        self._session = session
        self.observer = observer
        self._authorization = encode_authorization(token, base64_encode=encode_token)
        self.timeout = timeout
        self._new_id = request_id_factory
        self.from_party = from_party
        self.to_party = to_party
        self.max_pages = max_pages
        self.max_response_bytes = max_response_bytes
        self.max_redirects = max_redirects

    # ------------------------------------------------------------ raw request

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        request_timeout: float | None = None,
        correlation_id: str | None = None,
        to_party: PartyId | None = None,
        from_party: PartyId | None = None,
        raw_body: bytes | None = None,
    ) -> OcpiReply:
        """Send one request and return the successful answer; raise an
        :class:`OcpiClientError` otherwise. ``body`` (a model, dict or list) is sent as
        JSON with exact numbers; None sends no body. ``raw_body`` is sent byte for byte
        instead (a hub passing on what it received)."""
        target = URL(url)
        if params:
            target = target.update_query(params)
        request_id = self._new_id()
        correlation_id = correlation_id or self._new_id()
        headers = {
            "Authorization": self._authorization,
            REQUEST_ID_HEADER: request_id,
            CORRELATION_ID_HEADER: correlation_id,
            "Accept": "application/json",
        }
        headers.update(
            routing_headers(
                from_party=from_party or self.from_party, to_party=to_party or self.to_party
            )
        )
        payload: bytes | None = raw_body
        if payload is None and body is not None:
            payload = json_dumps(body).encode("utf-8")
        if payload is not None:
            headers["Content-Type"] = "application/json"
        where = str(target)
        limit = request_timeout if request_timeout is not None else self.timeout
        log.debug("OCPI %s %s (X-Request-ID %s)", method, where, request_id)
        observer = self.observer
        try:
            async with asyncio.timeout(limit):
                hops = 0
                while True:
                    if observer is not None:
                        observer.sent(method, target, request_id, correlation_id, payload)
                    async with self._session.request(
                        method,
                        target,
                        data=payload,
                        headers=headers,
                        allow_redirects=False,
                        timeout=aiohttp.ClientTimeout(total=limit),
                    ) as response:
                        raw = await self._read_body(response, method, where)
                        http_status = response.status
                        response_headers = response.headers
                    if observer is not None:
                        observer.answered(
                            method, target, request_id, correlation_id, http_status, raw, None
                        )
                    moved = redirect_target(
                        target, http_status, response_headers, hops, self.max_redirects
                    )
                    if moved is None:
                        break
                    log.info("OCPI %s %s: %d, following to %s", method, where, http_status, moved)
                    target, where, hops = moved, str(moved), hops + 1
        except TimeoutError:
            self._unanswered(method, target, request_id, correlation_id, "timeout")
            raise OcpiTimeoutError(
                f"no answer within {limit:g} s", method=method, url=where
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            self._unanswered(method, target, request_id, correlation_id, type(exc).__name__)
            raise OcpiTransportError(
                f"{type(exc).__name__}: {exc}", method=method, url=where
            ) from exc
        except OcpiInvalidResponseError:
            self._unanswered(method, target, request_id, correlation_id, "answer too large")
            raise
        return self._reply(
            method, target, http_status, response_headers, raw, request_id, correlation_id
        )

    def _unanswered(
        self, method: str, url: URL, request_id: str, correlation_id: str, error: str
    ) -> None:
        if self.observer is not None:
            self.observer.answered(method, url, request_id, correlation_id, None, None, error)

    async def _read_body(self, response: aiohttp.ClientResponse, method: str, where: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
            if size > self.max_response_bytes:
                raise OcpiInvalidResponseError(
                    f"answer larger than {self.max_response_bytes} bytes", method=method, url=where
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _reply(
        self,
        method: str,
        target: URL,
        http_status: int,
        headers: CIMultiDictProxy[str],
        raw: bytes,
        request_id: str,
        correlation_id: str,
    ) -> OcpiReply:
        where = str(target)
        try:
            payload = json_loads(raw) if raw.strip() else None
        except ValueError:
            payload = None
        envelope_body = payload if isinstance(payload, dict) else {}
        status_code = envelope_body.get("status_code")
        if isinstance(status_code, int) and not isinstance(status_code, bool):
            payload = envelope_body
            message = payload.get("status_message")
            status_message = message if isinstance(message, str) else None
            if not is_success(status_code):
                raise OcpiStatusError(
                    method=method,
                    url=where,
                    status_code=status_code,
                    status_message=status_message,
                    http_status=http_status,
                    data=payload.get("data"),
                )
            if not 200 <= http_status < 300:
                raise OcpiHttpError(
                    f"HTTP {http_status} with a success envelope ({status_code})",
                    method=method,
                    url=where,
                    http_status=http_status,
                    body=_excerpt(raw),
                )
            return OcpiReply(
                http_status=http_status,
                headers=headers,
                status_code=status_code,
                status_message=status_message,
                timestamp=_lenient_datetime(payload.get("timestamp")),
                data=payload.get("data"),
                url=target,
                request_id=request_id,
                correlation_id=correlation_id,
            )
        if 300 <= http_status < 400:
            raise OcpiHttpError(
                f"HTTP {http_status} redirect to {headers.get('Location')!r} not followed "
                f"(only 307/308 on the same origin, at most {self.max_redirects} hops)",
                method=method,
                url=where,
                http_status=http_status,
                body=_excerpt(raw),
            )
        if not 200 <= http_status < 300:
            raise OcpiHttpError(
                f"HTTP {http_status} without an OCPI envelope",
                method=method,
                url=where,
                http_status=http_status,
                body=_excerpt(raw),
            )
        raise OcpiInvalidResponseError(
            f"HTTP {http_status} but the body is not an OCPI response envelope: {_excerpt(raw)!r}",
            method=method,
            url=where,
        )

    # ------------------------------------------------------------ typed calls

    def _validate(self, reply: OcpiReply, model: type[M], method: str) -> M:
        if reply.data is None:
            raise OcpiInvalidResponseError(
                f"no data in the answer (expected a {model.__name__})",
                method=method,
                url=str(reply.url),
            )
        try:
            return model.model_validate(reply.data)
        except ValidationError as exc:
            raise OcpiInvalidResponseError(
                f"invalid {model.__name__}: {format_validation_error(exc, prefix='data')}",
                method=method,
                url=str(reply.url),
            ) from None

    @overload
    async def get(
        self,
        url: str | URL,
        model: type[M],
        *,
        params: Mapping[str, str] | None = None,
        request_timeout: float | None = None,
        correlation_id: str | None = None,
    ) -> M: ...

    @overload
    async def get(
        self,
        url: str | URL,
        model: None = None,
        *,
        params: Mapping[str, str] | None = None,
        request_timeout: float | None = None,
        correlation_id: str | None = None,
    ) -> Any: ...

    async def get(
        self,
        url: str | URL,
        model: type[M] | None = None,
        *,
        params: Mapping[str, str] | None = None,
        request_timeout: float | None = None,
        correlation_id: str | None = None,
    ) -> M | Any:
        """GET one object; its ``data`` validated as ``model`` (raw when None)."""
        reply = await self.request(
            "GET",
            url,
            params=params,
            request_timeout=request_timeout,
            correlation_id=correlation_id,
        )
        return reply.data if model is None else self._validate(reply, model, "GET")

    async def get_list(
        self,
        url: str | URL,
        model: type[M],
        *,
        params: Mapping[str, str] | None = None,
        request_timeout: float | None = None,
        correlation_id: str | None = None,
    ) -> list[M]:
        """GET a list that is not paginated (the versions endpoint); every item must
        validate."""
        reply = await self.request(
            "GET",
            url,
            params=params,
            request_timeout=request_timeout,
            correlation_id=correlation_id,
        )
        if not isinstance(reply.data, list):
            raise OcpiInvalidResponseError("data is not a list", method="GET", url=str(reply.url))
        items: list[M] = []
        for index, raw in enumerate(reply.data):
            try:
                items.append(model.model_validate(raw))
            except ValidationError as exc:
                message = format_validation_error(exc, prefix=f"data[{index}]")
                raise OcpiInvalidResponseError(
                    f"invalid {model.__name__}: {message}", method="GET", url=str(reply.url)
                ) from None
        return items

    async def get_page(
        self,
        url: str | URL,
        model: type[M],
        *,
        params: Mapping[str, str] | None = None,
        request_timeout: float | None = None,
        correlation_id: str | None = None,
    ) -> Page[M]:
        """GET one page of a paginated list. Objects that do not validate are left out
        of ``items`` and listed in ``invalid``."""
        invalid: list[tuple[int, str]] = []
        target = URL(url).update_query(params) if params else URL(url)
        page = await self._fetch_page(
            target,
            model,
            request_timeout,
            correlation_id,
            lambda _url, index, _raw, message: invalid.append((index, message)),
        )
        page.invalid.extend(invalid)
        return page

    async def get_all(
        self,
        url: str | URL,
        model: type[M],
        *,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        limit: int | None = None,
        params: Mapping[str, str] | None = None,
        max_pages: int | None = None,
        request_timeout: float | None = None,
        on_invalid: InvalidItemHandler | None = None,
    ) -> AsyncIterator[M]:
        """Every object of a paginated list, following ``Link: <...>; rel="next"``.

        ``date_from`` (inclusive), ``date_to`` (exclusive) and ``limit`` go into the
        first request; the next pages are fetched exactly as the server's Link says
        (it carries the filters). Objects that do not validate are skipped and reported
        to ``on_invalid`` (default: logged). Raises :class:`OcpiInvalidResponseError`
        when a Link leaves the first URL's origin, repeats a page or when there are more
        than ``max_pages`` pages.
        """
        query: dict[str, str] = dict(params or {})
        if date_from is not None:
            query["date_from"] = format_datetime(date_from)
        if date_to is not None:
            query["date_to"] = format_datetime(date_to)
        if limit is not None:
            query["limit"] = str(limit)
        first = URL(url)
        if query:
            first = first.update_query(query)
        bound = max_pages if max_pages is not None else self.max_pages
        report = on_invalid or _log_invalid
        seen: set[str] = set()
        current: URL | None = first
        pages = 0
        while current is not None:
            if pages >= bound:
                raise OcpiInvalidResponseError(
                    f"more than {bound} pages; stopped", method="GET", url=str(current)
                )
            if str(current) in seen:
                raise OcpiInvalidResponseError(
                    "the next-page Link repeats a page already fetched",
                    method="GET",
                    url=str(current),
                )
            seen.add(str(current))
            pages += 1
            page = await self._fetch_page(current, model, request_timeout, None, report)
            for item in page.items:
                yield item
            next_url = page.next_url
            if next_url is not None and next_url.origin() != first.origin():
                raise OcpiInvalidResponseError(
                    f"the next-page Link points to another origin: {next_url}",
                    method="GET",
                    url=str(current),
                )
            current = next_url

    async def _fetch_page(
        self,
        url: URL,
        model: type[M],
        request_timeout: float | None,
        correlation_id: str | None,
        report: InvalidItemHandler,
    ) -> Page[M]:
        reply = await self.request(
            "GET", url, request_timeout=request_timeout, correlation_id=correlation_id
        )
        if not isinstance(reply.data, list):
            raise OcpiInvalidResponseError(
                "data of a paginated GET is not a list", method="GET", url=str(url)
            )
        items: list[M] = []
        for index, raw in enumerate(reply.data):
            try:
                items.append(model.model_validate(raw))
            except ValidationError as exc:
                report(url, index, raw, format_validation_error(exc, prefix=f"data[{index}]"))
        link = next_link(reply.headers.getall(LINK_HEADER, []))
        return Page(
            items=items,
            total=_header_int(reply.headers, TOTAL_COUNT_HEADER),
            limit=_header_int(reply.headers, X_LIMIT_HEADER),
            next_url=reply.url.join(URL(link)) if link else None,
        )

    async def _send(
        self,
        method: str,
        url: str | URL,
        body: Any,
        model: type[M] | None,
        *,
        params: Mapping[str, str] | None,
        request_timeout: float | None,
        correlation_id: str | None,
    ) -> Any:
        reply = await self.request(
            method,
            url,
            body=body,
            params=params,
            request_timeout=request_timeout,
            correlation_id=correlation_id,
        )
        return reply.data if model is None else self._validate(reply, model, method)

    async def put(
        self,
        url: str | URL,
        body: Any,
        model: type[M] | None = None,
        *,
        params: Mapping[str, str] | None = None,
        request_timeout: float | None = None,
        correlation_id: str | None = None,
    ) -> Any:
        """PUT ``body``; returns ``data`` (validated as ``model`` when given)."""
        return await self._send(
            "PUT",
            url,
            body,
            model,
            params=params,
            request_timeout=request_timeout,
            correlation_id=correlation_id,
        )

    async def patch(
        self,
        url: str | URL,
        body: Any,
        model: type[M] | None = None,
        *,
        params: Mapping[str, str] | None = None,
        request_timeout: float | None = None,
        correlation_id: str | None = None,
    ) -> Any:
        """PATCH ``body`` (a patch model writes only its present fields)."""
        return await self._send(
            "PATCH",
            url,
            body,
            model,
            params=params,
            request_timeout=request_timeout,
            correlation_id=correlation_id,
        )

    async def post(
        self,
        url: str | URL,
        body: Any = None,
        model: type[M] | None = None,
        *,
        params: Mapping[str, str] | None = None,
        request_timeout: float | None = None,
        correlation_id: str | None = None,
    ) -> Any:
        """POST ``body`` (e.g. a CommandResult to a ``response_url``)."""
        return await self._send(
            "POST",
            url,
            body,
            model,
            params=params,
            request_timeout=request_timeout,
            correlation_id=correlation_id,
        )

    async def delete(
        self,
        url: str | URL,
        model: type[M] | None = None,
        *,
        params: Mapping[str, str] | None = None,
        request_timeout: float | None = None,
        correlation_id: str | None = None,
    ) -> Any:
        """DELETE."""
        return await self._send(
            "DELETE",
            url,
            None,
            model,
            params=params,
            request_timeout=request_timeout,
            correlation_id=correlation_id,
        )


def _excerpt(raw: bytes) -> str:
    text = raw[: _BODY_EXCERPT * 4].decode("utf-8", errors="replace")
    return text[:_BODY_EXCERPT]


def _header_int(headers: CIMultiDictProxy[str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _lenient_datetime(value: object) -> datetime | None:
    try:
        return parse_datetime(value)
    except ValueError:
        return None
