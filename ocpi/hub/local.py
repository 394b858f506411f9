"""In-process delivery: the hub hands a request for a party it hosts itself (a
:class:`~ocpi.hub.routing.Local` target) to the same module operations that serve that
party over HTTP (:mod:`ocpi.server`), without an HTTP hop, and answers in the shape a
forwarded HTTP answer has (:class:`~ocpi.hub.forward.ForwardedResponse`).

:func:`local_handler` builds the :data:`~ocpi.hub.forward.LocalHandler` a
:class:`~ocpi.hub.forward.Forwarder` takes. The host gives it the operations of its
providers per ``(module, interface)`` and ``context_for``, which builds each request's
:class:`~ocpi.server.OcpiRequestContext` (which party is addressed, the request and
correlation ids, the URL pagination links are built on, OCPI-from/to): what
:func:`~ocpi.server.ocpi_middleware` learns from an HTTP request.

The answers are those of the HTTP side, so that a client cannot tell where the party
lives:

===================================================== ======================================
an operation's answer                                  its status, headers and body
an :class:`~ocpi.transport.OcpiError` (from an         its envelope (status code, HTTP status)
operation or from ``context_for``)
no operation of (module, interface) at the path        HTTP 404, status 2000 "Not Found: ..."
operations at the path, none for the method            HTTP 405, status 2000, ``Allow``
anything else                                          logged; HTTP 500, status 3000
===================================================== ======================================

The handler never raises (but for cancellation). HEAD is answered as GET without a
body, as aiohttp's GET routes do. The response keeps the headers the
:class:`~ocpi.hub.forward.Forwarder` passes back from a receiver (``Content-Type``,
``X-Total-Count``, ``X-Limit``, ``Link``, ``Allow``, ``OCPI-*``); like the middleware,
it carries OCPI-from/to swapped from the request's (transport_and_format, Message
Routing: the answer goes back to the sender) unless the operation set them.

Imports: :mod:`ocpi` only (the server's operations, the hub's forwarding types, the
transport); never ``gateway``: the host injects its providers through the operations and
``context_for``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiohttp import web
from multidict import CIMultiDict

from ocpi.hub.forward import PASSED_HEADERS, ForwardedResponse, LocalHandler, LocalRequest
from ocpi.server import (
    OcpiCall,
    OcpiRequestContext,
    Operation,
    error_response,
    ocpi_response,
)
from ocpi.transport import LINK_HEADER, OcpiError, OcpiStatus, routing_headers
from ocpi.v221.enums import InterfaceRole

__all__ = ["ContextFactory", "OperationTable", "local_handler"]

log = logging.getLogger("ocpi.hub.local")

ContextFactory = Callable[[LocalRequest], Awaitable[OcpiRequestContext]]
"""``async (request) -> context``: the host's view of who is asking whom (may raise an
:class:`~ocpi.transport.OcpiError`, answered as its envelope)."""

OperationTable = Mapping[tuple[str, InterfaceRole], Sequence[Operation]]
"""The operations of each ``(module, interface)`` served in-process, e.g.
``{("locations", InterfaceRole.SENDER): locations_sender_operations(provider)}``."""


def local_handler(
    operations: OperationTable,
    context_for: ContextFactory,
    *,
    logger: logging.Logger | None = None,
) -> LocalHandler:
    """The in-process handler over ``operations`` (module doc)."""
    logger = logger or log
    # Copied: a host changing its mapping later must not change what is served.
    table = {
        (str(module), InterfaceRole(role)): tuple(ops) for (module, role), ops in operations.items()
    }

    async def handle(request: LocalRequest) -> ForwardedResponse:
        try:
            return _forwarded(request, await _dispatch(request, table, context_for))
        except OcpiError as exc:
            return _forwarded(request, error_response(exc))
        except web.HTTPException as exc:
            # An operation may raise aiohttp's HTTP errors, as the middleware allows:
            # same answer as there (its HTTP status, status 2000).
            if exc.status >= 400:
                return _forwarded(request, _client_error(exc.status, exc.reason))
            logger.exception("in-process %s raised HTTP %s", _describe(request), exc.status)
            return _forwarded(request, _server_error())
        except Exception:
            logger.exception(
                "in-process %s failed (X-Request-ID %s)", _describe(request), request.request_id
            )
            return _forwarded(request, _server_error())

    return handle


async def _dispatch(
    request: LocalRequest,
    table: Mapping[tuple[str, InterfaceRole], tuple[Operation, ...]],
    context_for: ContextFactory,
) -> web.Response:
    # Who is asking comes first, as on the HTTP side (authentication before routing).
    context = await context_for(request)
    target = request.target
    method = request.method.upper()
    # HEAD is GET without the body (RFC 9110 9.3.2), as aiohttp's web.get routes answer.
    wanted = "GET" if method == "HEAD" else method
    allowed: set[str] = set()
    for operation in table.get((target.module, target.interface), ()):
        params = operation.bind(target.path)
        if params is None:
            continue
        if operation.method.upper() != wanted:
            allowed.add(operation.method.upper())
            continue
        call = OcpiCall(
            context=context,
            params=params,
            query=request.query,
            body=request.body or b"",
        )
        return await operation.handler(call)
    where = f"{target.module} {target.interface.value} /{'/'.join(target.path)}"
    if not allowed:
        return _client_error(404, f"Not Found: no OCPI endpoint or object at {where}")
    if "GET" in allowed:
        allowed.add("HEAD")
    response = _client_error(405, f"Method Not Allowed: {method} {where}")
    # RFC 9110 15.5.6: a 405 lists the methods the resource supports.
    response.headers["Allow"] = ",".join(sorted(allowed))
    return response


def _forwarded(request: LocalRequest, response: web.Response) -> ForwardedResponse:
    raw = response.body
    if raw is None:
        body = b""
    elif isinstance(raw, bytes | bytearray):
        body = bytes(raw)
    else:
        # Operations answer with ocpi_response (bytes); a streamed payload has no place
        # in an in-process answer.
        raise TypeError(f"in-process answer body is {type(raw).__name__}, not bytes")
    if request.method.upper() == "HEAD":
        body = b""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in response.headers.items():
        lower = name.lower()
        if lower.startswith("ocpi-") or lower == LINK_HEADER.lower():
            headers.add(name, value)
    for name in PASSED_HEADERS:
        for value in response.headers.getall(name, ()):
            headers.add(name, value)
    if not any(name.lower().startswith("ocpi-") for name in headers):
        headers.update(routing_headers(from_party=request.to_party, to_party=request.from_party))
    return ForwardedResponse(response.status, headers, body)


def _client_error(http_status: int, message: str) -> web.Response:
    return ocpi_response(
        status_code=OcpiStatus.CLIENT_ERROR, status_message=message, http_status=http_status
    )


def _server_error() -> web.Response:
    # No details: the exception may name internals; the log has them.
    return ocpi_response(
        status_code=OcpiStatus.SERVER_ERROR,
        status_message="Internal server error",
        http_status=500,
    )


def _describe(request: LocalRequest) -> str:
    target = request.target
    return (
        f"{request.method} {target.module} {target.interface.value} "
        f"/{'/'.join(target.path)} for {target.target}"
    )
