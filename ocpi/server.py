"""aiohttp building blocks for OCPI endpoints, and the module routes of a CPO (2.2.1)
written against small provider protocols, so that the gateway and a hub plug in their
own storage.

Use::

    app = web.Application(middlewares=[ocpi_middleware(resolve_token)])
    app.add_routes(locations_sender_routes(my_provider, prefix="/ocpi/cpo/2.2.1/locations"))

:func:`ocpi_middleware` authenticates every request (``Authorization: Token ...``; HTTP
401 when the token is missing or unknown), then reads the body within
:data:`READ_TIMEOUT_KEY` seconds (else HTTP 408, status 2000, and the connection closed)
and refuses JSON nested deeper than ``MAX_JSON_DEPTH`` (HTTP 400, status 2000), before
any handler runs; it echoes ``X-Request-ID``/``X-Correlation-ID``,
answers every error with an OCPI envelope and never lets an exception out: an
:class:`~ocpi.transport.OcpiError` becomes its status code and HTTP status, an aiohttp
HTTP error (404 unknown URL, 405, 413) keeps its HTTP status with status 2000, anything
else is logged and answered 3000 / HTTP 500.

Handlers read their input with :func:`parse_body` / :func:`parse_page` (errors name the
field: ``2001 evses[0].status: Input should be ...``) and answer with
:func:`ocpi_response` / :func:`paginated_response`.

The module logic is written once, transport-neutral: an :class:`Operation` (method, path
template below the module's endpoint, handler) takes an :class:`OcpiCall` (context, path
parameters, query, body bytes). The ``*_operations`` builders give a module's operations;
the ``*_routes`` builders serve them over aiohttp (:func:`operation_routes`), and a hub
hands requests for its in-process parties to the very same operations
(:mod:`ocpi.hub.local`), so both transports answer alike. The input helpers
(:func:`path_id`, :func:`read_json`, :func:`parse_body`, :func:`parse_page`) and
:func:`paginated_response` take either an :class:`OcpiCall` or a ``web.Request``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import MultiMapping
from pydantic import BaseModel, TypeAdapter, ValidationError
from yarl import URL

from ocpi.transport import (
    CORRELATION_ID_HEADER,
    REQUEST_ID_HEADER,
    GenericClientError,
    InvalidParametersError,
    JsonTooDeepError,
    NotFoundError,
    OcpiError,
    OcpiStatus,
    PageRequest,
    PartyId,
    RawJson,
    RequestIds,
    UnauthorizedError,
    UnknownLocationError,
    UnknownTokenError,
    check_json_depth,
    envelope_json,
    format_validation_error,
    json_loads,
    pagination_headers,
    parse_authorization,
    parse_page_request,
    parse_routing_headers,
    routing_headers,
)
from ocpi.v221.cdrs import CDR
from ocpi.v221.chargingprofiles import ChargingProfileResponse, SetChargingProfile
from ocpi.v221.commands import (
    CancelReservation,
    CommandResponse,
    ReserveNow,
    StartSession,
    StopSession,
    UnlockConnector,
)
from ocpi.v221.enums import ChargingPreferencesResponse, CommandType, TokenType
from ocpi.v221.locations import Location, find_connector
from ocpi.v221.sessions import ChargingPreferences, Session
from ocpi.v221.tariffs import Tariff
from ocpi.v221.tokens import Token, TokenPatch
from ocpi.v221.types import URL as UrlType

__all__ = [
    "CONTEXT_KEY",
    "DEFAULT_READ_TIMEOUT",
    "READ_TIMEOUT_KEY",
    "CdrsSenderProvider",
    "ChargingPreferencesProvider",
    "ChargingProfilesReceiverProvider",
    "CommandsReceiverProvider",
    "LocationsSenderProvider",
    "OcpiCall",
    "OcpiRequestContext",
    "Operation",
    "OperationHandler",
    "RequestCheck",
    "SessionsSenderProvider",
    "TariffsSenderProvider",
    "TokenResolver",
    "TokensReceiverProvider",
    "cdrs_sender_operations",
    "cdrs_sender_routes",
    "charging_profiles_receiver_operations",
    "charging_profiles_receiver_routes",
    "commands_receiver_operations",
    "commands_receiver_routes",
    "configuration_module",
    "error_response",
    "is_configuration_module",
    "locations_sender_operations",
    "locations_sender_routes",
    "ocpi_context",
    "ocpi_middleware",
    "ocpi_response",
    "operation_routes",
    "paginated_response",
    "parse_body",
    "parse_page",
    "path_id",
    "read_body_in_time",
    "read_json",
    "send_and_close",
    "sessions_sender_operations",
    "sessions_sender_routes",
    "tariffs_sender_operations",
    "tariffs_sender_routes",
    "tokens_receiver_operations",
    "tokens_receiver_routes",
    "validate_input",
]

log = logging.getLogger("ocpi.server")

M = TypeVar("M", bound=BaseModel)
DEFAULT_MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class OcpiRequestContext:
    """What the middleware learned about a request: the party its credentials token
    belongs to (whatever the :data:`TokenResolver` returned), the ids to echo, the
    message-routing headers and the request's URL as partners see it (for Link
    headers)."""

    party: Any
    request_id: str
    correlation_id: str
    url: URL
    from_party: PartyId | None = None
    to_party: PartyId | None = None


CONTEXT_KEY = web.RequestKey("ocpi.context", OcpiRequestContext)
# The OCPI status_code of a response made by :func:`ocpi_response`, for observers (the
# gateway's message trail) that would otherwise parse the body again.
STATUS_CODE_KEY = web.ResponseKey("ocpi.status_code", int)
"""Where the middleware keeps the :class:`OcpiRequestContext` on the request."""

DEFAULT_READ_TIMEOUT = 30.0
READ_TIMEOUT_KEY = web.AppKey("ocpi.read_timeout", float)
"""Seconds the whole body of an authenticated request may take to arrive, looked up
in the application (or a parent) at request time; :data:`DEFAULT_READ_TIMEOUT` when
unset."""

TokenResolver = Callable[[str, web.Request], Awaitable[Any | None]]
"""``async (credentials_token, request) -> party or None``. The request lets the
resolver limit a token to some modules (``CREDENTIALS_TOKEN_A`` is only good for the
versions and credentials modules); None means HTTP 401."""


@dataclass(frozen=True, slots=True)
class OcpiCall:
    """One request to a module operation, whatever carried it: HTTP
    (:meth:`from_request`) or a hub's in-process hand-over (:mod:`ocpi.hub.local`).

    ``params`` are the path parameters bound by the operation's template (decoded, as
    aiohttp's ``match_info``), ``query`` the query parameters, ``body`` the raw body
    (``b""`` when none): handlers parse it themselves so that errors name the field.
    """

    context: OcpiRequestContext
    params: Mapping[str, str]
    query: MultiMapping[str]
    body: bytes = b""

    @classmethod
    async def from_request(cls, request: web.Request) -> OcpiCall:
        """The call of an aiohttp request behind :func:`ocpi_middleware` (the body is
        read here, once; over ``client_max_size`` aiohttp answers 413)."""
        return cls(
            context=ocpi_context(request),
            params=dict(request.match_info),
            query=request.query,
            body=await request.read() if request.body_exists else b"",
        )


OperationHandler = Callable[[OcpiCall], Awaitable[web.Response]]
"""``async (call) -> response``; raises :class:`~ocpi.transport.OcpiError` for an OCPI
error (each transport turns it into its envelope)."""


@dataclass(frozen=True, slots=True)
class Operation:
    """A module operation: ``method`` on ``path``, a template below the module's
    endpoint URL (``""`` for the endpoint itself, ``"/{location_id}/{evse_uid}"``,
    ``"/START_SESSION"``). A ``{name}`` segment binds one path segment, any other
    segment must match exactly (case-sensitive, as aiohttp's router does)."""

    method: str
    path: str
    handler: OperationHandler

    @property
    def segments(self) -> tuple[str, ...]:
        """The template's segments (empty for the endpoint itself)."""
        stripped = self.path.strip("/")
        return tuple(stripped.split("/")) if stripped else ()

    def bind(self, path: Sequence[str]) -> dict[str, str] | None:
        """The path parameters when the (decoded) segments ``path`` match the template,
        else None."""
        template = self.segments
        if len(template) != len(path):
            return None
        params: dict[str, str] = {}
        for pattern, segment in zip(template, path, strict=True):
            if pattern.startswith("{") and pattern.endswith("}"):
                # An empty segment (".../locations//EVSE") is no id; aiohttp's router
                # does not match it either.
                if not segment:
                    return None
                params[pattern[1:-1]] = segment
            elif pattern != segment:
                return None
        return params


# ------------------------------------------------------------------- middleware


RequestCheck = Callable[[web.Request, Any], None]
"""``(request, party) -> None``: a check of an authenticated request before its handler
runs (after its body was read); raises :class:`~ocpi.transport.OcpiError` to refuse it."""


def ocpi_middleware(
    resolve_token: TokenResolver,
    *,
    public_origin: str | URL | None = None,
    logger: logging.Logger | None = None,
    check: RequestCheck | None = None,
) -> Middleware:
    """The middleware of an OCPI (sub-)application; see the module docstring.

    ``public_origin`` (``https://ocpi.example.com``) replaces the scheme, host and port
    of request URLs in the pagination ``Link`` headers, for a server behind a proxy; the
    path and query are kept. ``check`` runs once the request is authenticated and its
    body read, just before the handler (as a middleware after this one would, without
    the extra layer); its OcpiError is answered like the handler's.
    """
    logger = logger or log
    origin = URL(str(public_origin)).origin() if public_origin is not None else None
    new_id = RequestIds()
    # Authorization header -> its candidate tokens (parse_authorization is pure: the
    # same partners send the same header on every request). Bounded; a header refused
    # (OcpiError) is not kept.
    candidates = functools.lru_cache(maxsize=_HEADERS_KEPT)(parse_authorization)
    # Request path and query as received -> the URL partners see (origin joined), for
    # the pagination Link: partners pull the same pages at every sync. Bounded, emptied
    # when full.
    public_urls: dict[str, URL] = {}

    def public_url(request: web.Request) -> URL:
        if origin is None:
            return request.url
        raw = request.raw_path
        url = public_urls.get(raw)
        if url is None:
            if len(public_urls) >= _PATHS_KEPT:
                public_urls.clear()
            url = public_urls[raw] = origin.join(request.rel_url)
        return url

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        headers = request.headers
        request_id = headers.get(REQUEST_ID_HEADER) or new_id()
        correlation_id = headers.get(CORRELATION_ID_HEADER) or new_id()
        response: web.StreamResponse
        context: OcpiRequestContext | None = None
        try:
            party = await _authenticate(request, resolve_token, candidates)
            from_party, to_party = (
                (None, None) if is_configuration_module(request) else parse_routing_headers(headers)
            )
            context = OcpiRequestContext(
                party=party,
                request_id=request_id,
                correlation_id=correlation_id,
                url=public_url(request),
                from_party=from_party,
                to_party=to_party,
            )
            request[CONTEXT_KEY] = context
            if request.body_exists:  # else nothing to wait for, nothing to check
                await _read_body(request)
            if check is not None:
                check(request, party)
            response = await handler(request)
        except OcpiError as exc:
            response = error_response(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = _http_exception_response(request, exc)
        except Exception:
            logger.exception(
                "OCPI %s %s failed (X-Request-ID %s)", request.method, request.path, request_id
            )
            response = ocpi_response(
                status_code=OcpiStatus.SERVER_ERROR,
                status_message="Internal server error",
                http_status=500,
            )
        if not response.prepared:
            response_headers = response.headers
            response_headers[REQUEST_ID_HEADER] = request_id
            response_headers[CORRELATION_ID_HEADER] = correlation_id
            if context is not None and (
                context.from_party is not None or context.to_party is not None
            ):
                _swap_routing_headers(request, response)
        if response.status == _REQUEST_TIMEOUT:
            return await send_and_close(request, response)
        return response

    return middleware


_REQUEST_TIMEOUT = 408


async def _read_body(request: web.Request) -> None:
    """The body of an authenticated request, read here within the read timeout (a
    client trickling it in does not hold a handler, nor the connection, for longer) and
    kept by aiohttp for the handler's ``request.read()``. Nesting too deep for any
    handler to parse is refused here too, for every route alike."""
    timeout = request.config_dict.get(READ_TIMEOUT_KEY, DEFAULT_READ_TIMEOUT)
    raw = await read_body_in_time(request, timeout)
    if raw is None:
        raise GenericClientError(
            f"Request Timeout: the body did not arrive within {timeout:g} s",
            http_status=_REQUEST_TIMEOUT,
        )
    try:
        check_json_depth(raw)
    except JsonTooDeepError as exc:
        raise _too_deep(exc) from None


def _too_deep(exc: JsonTooDeepError) -> OcpiError:
    # HTTP 400 as for a body that is not JSON (status_codes.asciidoc); 2000 rather than
    # 2001: no parameter is wrong, the server refuses to read the body at all.
    return GenericClientError(f"body: {exc}", http_status=400)


async def read_body_in_time(request: web.BaseRequest, seconds: float) -> bytes | None:
    """The request's body, or None when all of it did not arrive within ``seconds``.
    aiohttp keeps what was read: later ``request.read()`` calls return it. Over the
    application's ``client_max_size``: HTTP 413 (``web.HTTPRequestEntityTooLarge``)."""
    if request.content.is_eof():
        # All of it came with the headers (the usual small body): nothing to wait for,
        # no timer to set and cancel.
        return await request.read()
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        return None


async def send_and_close(
    request: web.BaseRequest, response: web.StreamResponse
) -> web.StreamResponse:
    """Send ``response`` at once and close the connection after it (a request whose
    body is still arriving: aiohttp would otherwise go on reading that body for its
    lingering time before closing)."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


_HEADERS_KEPT = 256
_PATHS_KEPT = 1024


async def _authenticate(
    request: web.Request,
    resolve_token: TokenResolver,
    parse: Callable[[str], tuple[str, ...]] = parse_authorization,
) -> Any:
    header = request.headers.get("Authorization")
    if not header:
        raise UnauthorizedError("Authorization header missing (expected: Token <token>)")
    candidates = parse(header)
    if not candidates:
        raise UnauthorizedError("Authorization header is not of the form: Token <token>")
    for token in candidates:
        party = await resolve_token(token, request)
        if party is not None:
            return party
    raise UnauthorizedError("Unknown credentials token")


def _http_exception_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    message = exc.reason
    if exc.status == 404:
        message = f"Not Found: no OCPI endpoint or object at {request.path}"
    elif exc.status == 405:
        message = f"Method Not Allowed: {request.method} {request.path}"
    response = ocpi_response(
        status_code=OcpiStatus.CLIENT_ERROR, status_message=message, http_status=exc.status
    )
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


_CONFIGURATION_MODULE = "_ocpi_configuration_module"

H = TypeVar("H", bound=Callable[..., Any])


def configuration_module(handler: H) -> H:
    """Mark an aiohttp handler as serving a configuration module (versions, version
    details, credentials, hubclientinfo): transport_and_format, Message Routing, says
    routing headers SHALL NOT be used with these modules, so the middleware ignores any
    OCPI-from/to-* on their requests and puts none on their responses."""
    setattr(handler, _CONFIGURATION_MODULE, True)
    return handler


def is_configuration_module(request: web.Request) -> bool:
    """Whether the request was routed to a :func:`configuration_module` handler."""
    return bool(getattr(request.match_info.handler, _CONFIGURATION_MODULE, False))


def _has_ocpi_header(names: Iterable[str]) -> bool:
    """Whether a header name starts with ``OCPI-`` (any case): ``any(name.lower()
    .startswith("ocpi-") ...)`` in one search of the names joined by newlines (which no
    header name holds: aiohttp refuses to write one), a fraction of its cost on a hub's
    forwarded answer."""
    return "\nocpi-" in ("\n" + "\n".join(names)).lower()


def _swap_routing_headers(request: web.Request, response: web.StreamResponse) -> None:
    """A response goes back to whoever sent the request: its OCPI-to-* are the
    request's OCPI-from-* and the other way round (transport_and_format, Message
    Routing), unless the handler set them itself."""
    context = request.get(CONTEXT_KEY)
    if not isinstance(context, OcpiRequestContext):
        return
    if _has_ocpi_header(response.headers):
        return
    response.headers.update(
        routing_headers(from_party=context.to_party, to_party=context.from_party)
    )


# ---------------------------------------------------------------- request input


def ocpi_context(request: web.Request) -> OcpiRequestContext:
    """The context the middleware stored; raises when the middleware is not installed."""
    try:
        context = request[CONTEXT_KEY]
    except KeyError:
        context = None
    if not isinstance(context, OcpiRequestContext):
        raise RuntimeError("ocpi_middleware is not installed on this application")
    return context


async def read_json(source: OcpiCall | web.Request, *, optional: bool = False) -> Any:
    """The JSON body (numbers exact) of a call or request. Not JSON: HTTP 400 with
    status 2001 (status_codes: "When a message does not contain a valid JSON string, the
    HTTP error 400 - Bad request MUST be returned"). An empty body is None when
    ``optional``, else 2001."""
    raw = source.body if isinstance(source, OcpiCall) else await source.read()
    if not raw.strip():
        if optional:
            return None
        raise InvalidParametersError("body: a JSON object is required", http_status=400)
    try:
        return json_loads(raw)
    except JsonTooDeepError as exc:
        raise _too_deep(exc) from None
    except ValueError as exc:
        raise InvalidParametersError(f"body: not valid JSON ({exc})", http_status=400) from None


async def parse_body(source: OcpiCall | web.Request, model: type[M]) -> M:
    """The body validated as ``model``; invalid: status 2001 naming the field (HTTP 200:
    the request reached the OCPI layer), not JSON: HTTP 400."""
    data = await read_json(source)
    return validate_input(model, data)


def validate_input(model: type[M], data: Any, *, prefix: str = "") -> M:
    """``model.model_validate(data)`` with errors as :class:`InvalidParametersError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidParametersError(format_validation_error(exc, prefix=prefix)) from None


def parse_page(
    source: OcpiCall | web.Request,
    *,
    max_limit: int = DEFAULT_MAX_LIMIT,
    require_date_from: bool = False,
) -> PageRequest:
    """The pagination parameters of the call or request (limit capped at ``max_limit``)."""
    return parse_page_request(
        source.query, max_limit=max_limit, require_date_from=require_date_from
    )


def path_id(
    source: OcpiCall | web.Request, name: str, *, max_length: int = 36, exact: bool = False
) -> str:
    """A CiString URL segment, checked: printable ASCII, at most ``max_length`` (or
    exactly, with ``exact``) characters; else status 2001 naming the segment."""
    value = source.params[name] if isinstance(source, OcpiCall) else source.match_info[name]
    if exact and len(value) != max_length:
        raise InvalidParametersError(f"{name}: should be {max_length} characters, got {value!r}")
    if not value or len(value) > max_length:
        raise InvalidParametersError(
            f"{name}: should be 1 to {max_length} characters, got {len(value)}"
        )
    if not (value.isascii() and value.isprintable()):  # \x20-\x7e only
        raise InvalidParametersError(f"{name}: should contain printable ASCII characters only")
    return value


# --------------------------------------------------------------- responses


def ocpi_response(
    data: Any = None,
    *,
    status_code: int = OcpiStatus.SUCCESS,
    status_message: str | None = None,
    http_status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An OCPI envelope as an aiohttp response. ``data`` may hold wire models (written
    with :func:`~ocpi.transport.json_dumps`: exact numbers, UTC timestamps)."""
    response = web.Response(
        status=http_status,
        text=envelope_json(data, status_code=status_code, status_message=status_message),
        content_type="application/json",
        headers=headers,
    )
    response[STATUS_CODE_KEY] = int(status_code)
    return response


def error_response(error: OcpiError) -> web.Response:
    """The envelope of an :class:`OcpiError`."""
    return ocpi_response(
        error.data,
        status_code=error.status_code,
        status_message=error.message,
        http_status=error.http_status,
    )


def paginated_response(
    source: OcpiCall | web.Request, items: Sequence[Any], total: int, page: PageRequest
) -> web.Response:
    """A page of a GET list: ``data`` is the items (at most ``page.limit``; extra items
    are cut off), with X-Total-Count, X-Limit and Link headers. The Link keeps the
    request's query parameters (filters) and is built on the context's URL (the request
    URL with the middleware's ``public_origin`` when set; for an in-process call, the URL
    its host gave); a bare request without the middleware uses its own URL."""
    items = list(items[: page.limit])
    if isinstance(source, OcpiCall):
        url = source.context.url
    else:
        context = source.get(CONTEXT_KEY)
        url = context.url if context is not None else source.url
    headers = pagination_headers(url, page, total=total, count=len(items))
    return ocpi_response(items, headers=headers)


# ------------------------------------------------------------- provider protocols


class LocationsSenderProvider(Protocol):
    """The Locations Sender interface (CPO side)."""

    async def list_locations(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[Location | RawJson], int]:
        """``(locations of this page, total matching the date filters)``, oldest first,
        skipping ``page.offset`` and at most ``page.limit`` items; each a Location or
        its JSON written before (:class:`~ocpi.transport.RawJson`)."""
        ...

    async def get_location(self, context: OcpiRequestContext, location_id: str) -> Location | None:
        """The location (EVSEs and connectors are taken from it), None if unknown."""
        ...


class SessionsSenderProvider(Protocol):
    async def list_sessions(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[Session], int]: ...


class ChargingPreferencesProvider(Protocol):
    async def set_charging_preferences(
        self, context: OcpiRequestContext, session_id: str, preferences: ChargingPreferences
    ) -> ChargingPreferencesResponse | None:
        """The answer, or None for an unknown session (HTTP 404)."""
        ...


class CdrsSenderProvider(Protocol):
    async def list_cdrs(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[CDR], int]: ...


class TariffsSenderProvider(Protocol):
    async def list_tariffs(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[Tariff], int]: ...


class TokensReceiverProvider(Protocol):
    """The Tokens Receiver interface (CPO side). Tokens are keyed by country_code,
    party_id, uid and type (all compared case-insensitively, as CiStrings)."""

    async def get_token(
        self,
        context: OcpiRequestContext,
        country_code: str,
        party_id: str,
        uid: str,
        token_type: str,
    ) -> Token | None: ...

    async def put_token(self, context: OcpiRequestContext, token: Token) -> bool:
        """Store (create or replace) the token; True if it was new (HTTP 201)."""
        ...

    async def patch_token(
        self,
        context: OcpiRequestContext,
        country_code: str,
        party_id: str,
        uid: str,
        token_type: str,
        patch: TokenPatch,
    ) -> Token | None:
        """Apply the patch atomically (:func:`ocpi.v221.patch.apply_patch` validates the
        merged token and raises 2001 before anything is stored); None if unknown."""
        ...


class CommandsReceiverProvider(Protocol):
    """The Commands Receiver interface (CPO side): each method answers at once with a
    :class:`CommandResponse`; the Charge Point's result goes later, by POST to the
    command's ``response_url`` (see :class:`ocpi.client.OcpiClient`)."""

    async def start_session(
        self, context: OcpiRequestContext, command: StartSession
    ) -> CommandResponse: ...

    async def stop_session(
        self, context: OcpiRequestContext, command: StopSession
    ) -> CommandResponse: ...

    async def reserve_now(
        self, context: OcpiRequestContext, command: ReserveNow
    ) -> CommandResponse: ...

    async def cancel_reservation(
        self, context: OcpiRequestContext, command: CancelReservation
    ) -> CommandResponse: ...

    async def unlock_connector(
        self, context: OcpiRequestContext, command: UnlockConnector
    ) -> CommandResponse: ...


class ChargingProfilesReceiverProvider(Protocol):
    """The ChargingProfiles Receiver interface (CPO side, mod_charging_profiles): each
    method answers at once with a :class:`ChargingProfileResponse` (whether the request
    can go to the Charge Point); the Charge Point's result follows by POST to
    ``response_url`` (ActiveChargingProfileResult, ChargingProfileResult or
    ClearProfileResult)."""

    async def get_active_charging_profile(
        self, context: OcpiRequestContext, session_id: str, duration: int, response_url: str
    ) -> ChargingProfileResponse:
        """GET ``{session_id}?duration=&response_url=``: the ActiveChargingProfile of the
        next ``duration`` seconds."""
        ...

    async def set_charging_profile(
        self, context: OcpiRequestContext, session_id: str, request: SetChargingProfile
    ) -> ChargingProfileResponse:
        """PUT ``{session_id}``: set or replace the Sender's profile on the session."""
        ...

    async def clear_charging_profile(
        self, context: OcpiRequestContext, session_id: str, response_url: str
    ) -> ChargingProfileResponse:
        """DELETE ``{session_id}?response_url=``: remove the Sender's profile."""
        ...


# ------------------------------------------------------------- module operations


def operation_routes(operations: Iterable[Operation], *, prefix: str) -> list[web.RouteDef]:
    """aiohttp routes serving ``operations`` below ``prefix`` (the module's endpoint
    path): each request becomes an :class:`OcpiCall` for the operation's handler. The
    application needs :func:`ocpi_middleware` (the context, and error envelopes)."""
    base = prefix.rstrip("/")
    routes: list[web.RouteDef] = []
    for operation in operations:
        path = base + operation.path or "/"
        if operation.method.upper() == "GET":
            # web.get also answers HEAD (headers only), as a GET route always did here.
            routes.append(web.get(path, _serve(operation)))
        else:
            routes.append(web.route(operation.method.upper(), path, _serve(operation)))
    return routes


def _serve(operation: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await operation.handler(await OcpiCall.from_request(request))

    return handle


def _list_operation(
    lister: Callable[[OcpiRequestContext, PageRequest], Awaitable[tuple[Sequence[Any], int]]],
    *,
    max_limit: int,
    require_date_from: bool = False,
) -> Operation:
    async def handle(call: OcpiCall) -> web.Response:
        page = parse_page(call, max_limit=max_limit, require_date_from=require_date_from)
        items, total = await lister(call.context, page)
        return paginated_response(call, items, total, page)

    return Operation("GET", "", handle)


def locations_sender_operations(
    provider: LocationsSenderProvider, *, max_limit: int = DEFAULT_MAX_LIMIT
) -> list[Operation]:
    """GET list, Location, EVSE and Connector (mod_locations Sender interface). An
    unknown location, EVSE or connector: HTTP 404 with status 2003."""

    async def get_object(call: OcpiCall) -> web.Response:
        location_id = path_id(call, "location_id")
        location = await provider.get_location(call.context, location_id)
        if location is None:
            raise UnknownLocationError(f"location_id: unknown Location {location_id!r}")
        if "evse_uid" not in call.params:
            return ocpi_response(location)
        evse_uid = path_id(call, "evse_uid")
        evse = location.evse(evse_uid)
        if evse is None:
            raise UnknownLocationError(
                f"evse_uid: Location {location_id!r} has no EVSE {evse_uid!r}"
            )
        if "connector_id" not in call.params:
            return ocpi_response(evse)
        connector_id = path_id(call, "connector_id")
        connector = find_connector(evse, connector_id)
        if connector is None:
            raise UnknownLocationError(
                f"connector_id: EVSE {evse_uid!r} has no Connector {connector_id!r}"
            )
        return ocpi_response(connector)

    return [
        _list_operation(provider.list_locations, max_limit=max_limit),
        Operation("GET", "/{location_id}", get_object),
        Operation("GET", "/{location_id}/{evse_uid}", get_object),
        Operation("GET", "/{location_id}/{evse_uid}/{connector_id}", get_object),
    ]


def locations_sender_routes(
    provider: LocationsSenderProvider,
    *,
    prefix: str = "/locations",
    max_limit: int = DEFAULT_MAX_LIMIT,
) -> list[web.RouteDef]:
    """:func:`locations_sender_operations` served below ``prefix``."""
    return operation_routes(
        locations_sender_operations(provider, max_limit=max_limit), prefix=prefix
    )


def sessions_sender_operations(
    provider: SessionsSenderProvider,
    *,
    max_limit: int = DEFAULT_MAX_LIMIT,
    charging_preferences: ChargingPreferencesProvider | None = None,
) -> list[Operation]:
    """GET list (``date_from`` is required, as mod_sessions says) and, with a
    ``charging_preferences`` provider, PUT ``{session_id}/charging_preferences``."""
    operations = [
        _list_operation(provider.list_sessions, max_limit=max_limit, require_date_from=True)
    ]
    if charging_preferences is not None:
        preferences_provider = charging_preferences

        async def put_preferences(call: OcpiCall) -> web.Response:
            session_id = path_id(call, "session_id")
            preferences = await parse_body(call, ChargingPreferences)
            answer = await preferences_provider.set_charging_preferences(
                call.context, session_id, preferences
            )
            if answer is None:
                raise NotFoundError(f"session_id: unknown Session {session_id!r}")
            return ocpi_response(answer)

        operations.append(Operation("PUT", "/{session_id}/charging_preferences", put_preferences))
    return operations


def sessions_sender_routes(
    provider: SessionsSenderProvider,
    *,
    prefix: str = "/sessions",
    max_limit: int = DEFAULT_MAX_LIMIT,
    charging_preferences: ChargingPreferencesProvider | None = None,
) -> list[web.RouteDef]:
    """:func:`sessions_sender_operations` served below ``prefix``."""
    operations = sessions_sender_operations(
        provider, max_limit=max_limit, charging_preferences=charging_preferences
    )
    return operation_routes(operations, prefix=prefix)


def cdrs_sender_operations(
    provider: CdrsSenderProvider, *, max_limit: int = DEFAULT_MAX_LIMIT
) -> list[Operation]:
    """GET list (mod_cdrs Sender interface)."""
    return [_list_operation(provider.list_cdrs, max_limit=max_limit)]


def cdrs_sender_routes(
    provider: CdrsSenderProvider, *, prefix: str = "/cdrs", max_limit: int = DEFAULT_MAX_LIMIT
) -> list[web.RouteDef]:
    """:func:`cdrs_sender_operations` served below ``prefix``."""
    return operation_routes(cdrs_sender_operations(provider, max_limit=max_limit), prefix=prefix)


def tariffs_sender_operations(
    provider: TariffsSenderProvider, *, max_limit: int = DEFAULT_MAX_LIMIT
) -> list[Operation]:
    """GET list (mod_tariffs Sender interface)."""
    return [_list_operation(provider.list_tariffs, max_limit=max_limit)]


def tariffs_sender_routes(
    provider: TariffsSenderProvider,
    *,
    prefix: str = "/tariffs",
    max_limit: int = DEFAULT_MAX_LIMIT,
) -> list[web.RouteDef]:
    """:func:`tariffs_sender_operations` served below ``prefix``."""
    return operation_routes(tariffs_sender_operations(provider, max_limit=max_limit), prefix=prefix)


def _token_key(call: OcpiCall) -> tuple[str, str, str, str | None]:
    """country_code, party_id, token_uid and the ``type`` query parameter (None when
    absent: the caller defaults it to RFID, or to the body's type)."""
    country_code = path_id(call, "country_code", max_length=2, exact=True)
    party_id = path_id(call, "party_id", max_length=3, exact=True)
    uid = path_id(call, "token_uid")
    token_type = call.query.get("type") or None
    if token_type is not None and (
        len(token_type) > 36 or any(not ("\x21" <= ch <= "\x7e") for ch in token_type)
    ):
        raise InvalidParametersError(f"type: not a TokenType: {token_type[:40]!r}")
    return country_code, party_id, uid, token_type


def _check_same(field: str, in_body: object, in_url: str) -> None:
    if in_body is not None and str(in_body).upper() != in_url.upper():
        raise InvalidParametersError(
            f"{field}: {str(in_body)!r} in the body does not match {in_url!r} in the URL"
        )


def tokens_receiver_operations(provider: TokensReceiverProvider) -> list[Operation]:
    """GET, PUT and PATCH ``{country_code}/{party_id}/{token_uid}[?type=]`` (mod_tokens
    Receiver interface). The body's country_code, party_id, uid and type must match the
    URL (status 2001 otherwise); without ``?type=`` GET looks up an RFID token (the
    spec's default) while PUT and PATCH take the body's type, as peers often leave the
    parameter out. PUT answers HTTP 201 for a new token, 200 for a
    replaced one; an unknown token (GET, PATCH): HTTP 404 with status 2004."""
    path = "/{country_code}/{party_id}/{token_uid}"

    async def get_token(call: OcpiCall) -> web.Response:
        country_code, party_id, uid, type_param = _token_key(call)
        token_type = type_param or TokenType.RFID
        token = await provider.get_token(call.context, country_code, party_id, uid, token_type)
        if token is None:
            raise UnknownTokenError(f"token_uid: unknown Token {uid!r} of type {token_type}")
        return ocpi_response(token)

    async def put_token(call: OcpiCall) -> web.Response:
        country_code, party_id, uid, type_param = _token_key(call)
        token = await parse_body(call, Token)
        _check_same("country_code", token.country_code, country_code)
        _check_same("party_id", token.party_id, party_id)
        _check_same("uid", token.uid, uid)
        if type_param is not None:
            _check_same("type", token.type, type_param)
        created = await provider.put_token(call.context, token)
        return ocpi_response(http_status=201 if created else 200)

    async def patch_token(call: OcpiCall) -> web.Response:
        country_code, party_id, uid, type_param = _token_key(call)
        patch = await parse_body(call, TokenPatch)
        _check_same("country_code", patch.country_code, country_code)
        _check_same("party_id", patch.party_id, party_id)
        _check_same("uid", patch.uid, uid)
        if type_param is not None:
            _check_same("type", patch.type, type_param)
        token_type = str(type_param or patch.type or TokenType.RFID)
        token = await provider.patch_token(
            call.context, country_code, party_id, uid, token_type, patch
        )
        if token is None:
            raise UnknownTokenError(f"token_uid: unknown Token {uid!r} of type {token_type}")
        return ocpi_response()

    return [
        Operation("GET", path, get_token),
        Operation("PUT", path, put_token),
        Operation("PATCH", path, patch_token),
    ]


def tokens_receiver_routes(
    provider: TokensReceiverProvider, *, prefix: str = "/tokens"
) -> list[web.RouteDef]:
    """:func:`tokens_receiver_operations` served below ``prefix``."""
    return operation_routes(tokens_receiver_operations(provider), prefix=prefix)


def commands_receiver_operations(provider: CommandsReceiverProvider) -> list[Operation]:
    """POST ``{command}`` for the five commands (mod_commands Receiver interface); the
    answer's ``data`` is the provider's :class:`CommandResponse`. A StartSession with a
    connector_id but no evse_uid is refused with 2001 (the spec requires evse_uid then)."""

    async def start_session(call: OcpiCall) -> web.Response:
        command = await parse_body(call, StartSession)
        if command.connector_id is not None and command.evse_uid is None:
            raise InvalidParametersError("evse_uid: required when connector_id is given")
        return ocpi_response(await provider.start_session(call.context, command))

    async def stop_session(call: OcpiCall) -> web.Response:
        command = await parse_body(call, StopSession)
        return ocpi_response(await provider.stop_session(call.context, command))

    async def reserve_now(call: OcpiCall) -> web.Response:
        command = await parse_body(call, ReserveNow)
        return ocpi_response(await provider.reserve_now(call.context, command))

    async def cancel_reservation(call: OcpiCall) -> web.Response:
        command = await parse_body(call, CancelReservation)
        return ocpi_response(await provider.cancel_reservation(call.context, command))

    async def unlock_connector(call: OcpiCall) -> web.Response:
        command = await parse_body(call, UnlockConnector)
        return ocpi_response(await provider.unlock_connector(call.context, command))

    return [
        Operation("POST", f"/{CommandType.START_SESSION}", start_session),
        Operation("POST", f"/{CommandType.STOP_SESSION}", stop_session),
        Operation("POST", f"/{CommandType.RESERVE_NOW}", reserve_now),
        Operation("POST", f"/{CommandType.CANCEL_RESERVATION}", cancel_reservation),
        Operation("POST", f"/{CommandType.UNLOCK_CONNECTOR}", unlock_connector),
    ]


def commands_receiver_routes(
    provider: CommandsReceiverProvider, *, prefix: str = "/commands"
) -> list[web.RouteDef]:
    """:func:`commands_receiver_operations` served below ``prefix``."""
    return operation_routes(commands_receiver_operations(provider), prefix=prefix)


_URL_ADAPTER: TypeAdapter[str] = TypeAdapter(UrlType)


def _query_url(call: OcpiCall, name: str) -> str:
    """A required URL query parameter (mod_charging_profiles GET and DELETE carry
    ``response_url`` in the query); missing or not an absolute URL: 2001 naming it."""
    value = call.query.get(name)
    if not value:
        raise InvalidParametersError(f"{name}: required query parameter")
    try:
        return _URL_ADAPTER.validate_python(value)
    except ValidationError as exc:
        raise InvalidParametersError(format_validation_error(exc, prefix=name)) from None


def _query_seconds(call: OcpiCall, name: str) -> int:
    """A required query parameter of type int, in seconds: at least 1."""
    value = call.query.get(name)
    if value is None or value == "":
        raise InvalidParametersError(f"{name}: required query parameter")
    if not value.isascii() or not value.isdigit() or len(value) > 9 or int(value) < 1:
        raise InvalidParametersError(f"{name}: should be a whole number of seconds from 1")
    return int(value)


def charging_profiles_receiver_operations(
    provider: ChargingProfilesReceiverProvider,
) -> list[Operation]:
    """GET, PUT and DELETE ``{session_id}`` (mod_charging_profiles Receiver interface);
    the answer's ``data`` is the provider's :class:`ChargingProfileResponse`. GET needs
    ``duration`` and ``response_url``, DELETE ``response_url`` (query parameters: "it
    is not common to add a body to a GET/DELETE request"); missing or invalid: 2001
    naming the parameter."""
    path = "/{session_id}"

    async def get_active(call: OcpiCall) -> web.Response:
        session_id = path_id(call, "session_id")
        duration = _query_seconds(call, "duration")
        response_url = _query_url(call, "response_url")
        answer = await provider.get_active_charging_profile(
            call.context, session_id, duration, response_url
        )
        return ocpi_response(answer)

    async def put_profile(call: OcpiCall) -> web.Response:
        session_id = path_id(call, "session_id")
        request = await parse_body(call, SetChargingProfile)
        return ocpi_response(await provider.set_charging_profile(call.context, session_id, request))

    async def delete_profile(call: OcpiCall) -> web.Response:
        session_id = path_id(call, "session_id")
        response_url = _query_url(call, "response_url")
        answer = await provider.clear_charging_profile(call.context, session_id, response_url)
        return ocpi_response(answer)

    return [
        Operation("GET", path, get_active),
        Operation("PUT", path, put_profile),
        Operation("DELETE", path, delete_profile),
    ]


def charging_profiles_receiver_routes(
    provider: ChargingProfilesReceiverProvider, *, prefix: str = "/chargingprofiles"
) -> list[web.RouteDef]:
    """:func:`charging_profiles_receiver_operations` served below ``prefix``."""
    return operation_routes(charging_profiles_receiver_operations(provider), prefix=prefix)
