"""The operator's JSON admin API under ``/admin`` (bearer token; see README).

Errors are always JSON: ``{"error": reason, "field": name?}`` with a 4xx status
for bad requests, 409 when a charger is not connected, 504 when it does not
answer in time and 502 when it answers with a CALLERROR.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from aiohttp import web

from gateway.admin import openapi as api
from gateway.admin import schemas, session
from gateway.admin.catalog import catalog_routes
from gateway.admin.cdrs import cdr_routes
from gateway.admin.certificates import certificate_routes
from gateway.admin.charging import charging_routes
from gateway.admin.device_model import device_model_routes
from gateway.admin.docs import docs_routes
from gateway.admin.events import event_routes
from gateway.admin.http import (
    ApiError,
    error_response,
    read_body,
    read_query,
    respond,
    respond_items,
)
from gateway.admin.hub import hub_routes
from gateway.admin.listing import ChargerQuery
from gateway.admin.local_lists import local_list_routes
from gateway.admin.outbox import outbox_routes
from gateway.admin.partners import partner_routes
from gateway.admin.payments import payment_routes
from gateway.admin.reports import report_routes
from gateway.admin.sessions import roaming_session_routes
from gateway.admin.sites import site_routes
from gateway.admin.trail import trail_routes
from gateway.admin.views import ChargerView, CommandAnswer, TokenView, TransactionView
from gateway.csms.identity import charger_id_problem
from gateway.csms.security import hash_password
from gateway.domain.errors import (
    ChargerNotConnected,
    ChargerRejected,
    ChargerTimeout,
    CommandNotSupported,
)
from gateway.domain.events import ChargerConfigured
from gateway.domain.models import (
    Charger,
    ChargerState,
    ConnectorState,
    LocalToken,
    MeterReading,
    Transaction,
)
from gateway.keys import ADMIN_TOKEN, BUS, CLOCK, ROUTER, SETTINGS, STORE
from gateway.locallist.service import LOCAL_LISTS
from gateway.storage.base import Store
from ocpi.server import read_body_in_time, send_and_close

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    declared = request.app.get(api.OPERATIONS, {}).get(request.match_info.route)
    if declared is not None and declared.public:
        return await handler(request)  # the docs page: no data (it asks for the token)
    expected = request.config_dict[ADMIN_TOKEN]
    header = request.headers.get("Authorization")
    if header is not None or session.SESSION_COOKIE not in request.cookies:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not session.token_ok(token, expected):
            return error_response(401, "missing or wrong bearer token")
    else:
        # The dashboard's session cookie (gateway.admin.session): changes need its CSRF
        # token too, which only a page of this origin can have read.
        signed_in = session.read_session(
            request.cookies[session.SESSION_COOKIE], expected, request.config_dict[CLOCK].now()
        )
        if signed_in is None:
            return error_response(401, "session expired or not valid: sign in again")
        if request.method not in session.SAFE_METHODS and not session.csrf_ok(
            signed_in, expected, request.headers.get(session.CSRF_HEADER)
        ):
            return error_response(403, f"missing or wrong {session.CSRF_HEADER} header")
    # The body is read here, once, within the read timeout (aiohttp keeps it for the
    # handler): a client trickling it in holds neither a handler nor the connection.
    timeout = request.config_dict[SETTINGS].request_read_timeout
    try:
        if await read_body_in_time(request, timeout) is None:
            reason = f"request timeout: the body did not arrive within {timeout:g} s"
            return await send_and_close(request, error_response(408, reason))
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.reason, exc.field)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, exc.reason)
        raise
    except Exception:
        log.exception("admin API: %s %s failed", request.method, request.path)
        return error_response(500, "internal error; see the gateway log")


# -- views --------------------------------------------------------------------


def charger_view(
    charger: Charger,
    state: ChargerState | None,
    connectors: list[ConnectorState],
    reports: dict[str, Any] | None = None,
) -> ChargerView:
    view: ChargerView = {
        "id": charger.id,
        "location_id": charger.location_id,
        "serial_number": charger.certificate_cn,
        "has_password": charger.password_hash is not None,
        "evses": [
            {
                "ocpp_id": e.ocpp_id,
                "evse_uid": e.evse_uid,
                "evse_id": e.evse_id,
                "connectors": list(e.connectors),
            }
            for e in charger.evses
        ],
        "local_list": charger.local_list,
        "local_list_max_entries": charger.local_list_max_entries,
        "connected": bool(state and state.connected),
        "ocpp_version": state.ocpp_version if state else None,
        "vendor": state.vendor if state else None,
        "model": state.model if state else None,
        "reported_serial_number": state.serial_number if state else None,
        "firmware_version": state.firmware_version if state else None,
        "booted_at": state.booted_at if state else None,
        "last_heartbeat": state.last_heartbeat if state else None,
        "connectors": [
            {
                "evse_id": c.evse_id,
                "connector_id": c.connector_id,
                "status": c.status,
                "error_code": c.error_code,
                "info": c.info,
                "timestamp": c.timestamp,
            }
            for c in sorted(connectors, key=lambda c: (c.evse_id, c.connector_id))
        ],
    }
    if reports is not None:
        view["notifications"] = reports
    return view


def transaction_view(
    tx: Transaction, readings: list[MeterReading] | None = None
) -> TransactionView:
    view: TransactionView = {
        "id": tx.id,
        "charger_id": tx.charger_id,
        "ocpp_transaction_id": tx.ocpp_id,
        "evse_id": tx.evse_id,
        "connector_id": tx.connector_id,
        "status": tx.status,
        "id_token": tx.id_token.uid if tx.id_token else None,
        "id_token_type": tx.id_token.type if tx.id_token else None,
        "started_at": tx.started_at,
        "stopped_at": tx.stopped_at,
        "meter_start_wh": tx.meter_start_wh,
        "meter_stop_wh": tx.meter_stop_wh,
        "energy_wh": tx.energy_wh,
        "stop_reason": tx.stop_reason,
        "remote_start_id": tx.remote_start_id,
        "charging_state": tx.charging_state,
        "recovered": tx.recovered,
    }
    if readings is not None:
        view["meter_readings"] = [
            {
                "timestamp": r.timestamp,
                "measurand": r.measurand,
                "value": r.value,
                "phase": r.phase,
                "context": r.context,
            }
            for r in readings
        ]
    return view


def token_view(token: LocalToken) -> TokenView:
    return {
        "uid": token.uid,
        "valid": token.valid,
        "expiry": token.expiry,
        "parent_id": token.parent_id,
        "type": token.type,
        "contract_id": token.contract_id,
    }


# -- chargers -------------------------------------------------------------------


async def _charger_full(request: web.Request, charger: Charger) -> ChargerView:
    store = request.config_dict[STORE]
    # Connected and last heartbeat as every process reads them (gateway.cluster.router).
    state = await request.config_dict[ROUTER].live_state(charger.id)
    connectors = await store.connectors.list(charger.id)
    # Kept by the process holding the charger (asked of it when that is another).
    reports, requests = await request.config_dict[ROUTER].details(charger.id)
    view = charger_view(charger, state, connectors, reports)
    view["requests"] = requests  # firmware/diagnostics/log, newest first
    return view


# A page's chargers between two turns the event loop gives the chargers' messages: on
# SQLite a charger's connectors are a point read on the loop's own connection, which
# never waits, so a list without a limit of a 10,000-charger fleet held the loop (and
# every charger's answer) for 212 ms (tests/bench/README.md, thirteenth round); 64 reads
# take about a millisecond.
_VIEWS_PER_TURN: Final = 64


async def page_views(
    store: Store, chargers: Sequence[Charger], states: Mapping[str, ChargerState]
) -> list[ChargerView]:
    """The views of a page of chargers, their connectors read for the page only (a page of
    10,000 chargers costs one read each), letting the loop go every ``_VIEWS_PER_TURN``."""
    out: list[ChargerView] = []
    for i, charger in enumerate(chargers):
        if i and not i % _VIEWS_PER_TURN:
            await asyncio.sleep(0)
        connectors = await store.connectors.list(charger.id)
        out.append(charger_view(charger, states.get(charger.id), connectors))
    return out


async def list_chargers(request: web.Request) -> web.Response:
    q: ChargerQuery = read_query(request, ChargerQuery)
    store = request.config_dict[STORE]
    chargers = sorted(await store.chargers.list(), key=lambda c: c.id)
    states = await request.config_dict[ROUTER].live_states([c.id for c in chargers])
    matching = [c for c in chargers if q.matches(c, states.get(c.id))]
    end = None if q.limit is None else q.offset + q.limit
    out = await page_views(store, matching[q.offset : end], states)
    response = await respond_items(out)
    response.headers["X-Total-Count"] = str(len(matching))
    return response


def _charger_id(request: web.Request) -> str:
    cp_id = request.match_info["charger_id"]
    if not 1 <= len(cp_id) <= 48:
        raise ApiError(400, "charger id must be 1 to 48 characters", "charger_id")
    return cp_id


async def get_charger(request: web.Request) -> web.Response:
    cp_id = _charger_id(request)
    charger = await request.config_dict[STORE].chargers.get(cp_id)
    if charger is None:
        raise ApiError(404, f"charger {cp_id!r} not found")
    return respond(await _charger_full(request, charger))


async def put_charger(request: web.Request) -> web.Response:
    cp_id = _charger_id(request)
    problem = charger_id_problem(cp_id)  # the same rule as the WebSocket path
    if problem is not None:
        raise ApiError(400, problem, "charger_id")
    body: schemas.ChargerBody = await read_body(request, schemas.ChargerBody, empty_ok=True)
    store = request.config_dict[STORE]
    if body.location_id is not None and await store.locations.get(body.location_id) is None:
        # A charger bound to nothing would be in no partner's view: create the location
        # first (PUT /admin/locations/{id}).
        raise ApiError(
            404,
            f"location {body.location_id!r} not found: create it first with "
            f"PUT /admin/locations/{body.location_id}",
            "location_id",
        )
    existing = await store.chargers.get(cp_id)
    password = body.password_bytes()
    if password is not None and ":" in cp_id:
        # RFC 7617: the Basic auth user name (the charge point id) cannot hold a colon, so
        # no charger could ever present this password.
        raise ApiError(422, "a charger id with ':' cannot use a password (Basic auth)", "password")
    if password is not None:
        password_hash: str | None = hash_password(password)
    elif "password" in body.model_fields_set or "password_hex" in body.model_fields_set:
        password_hash = None  # explicitly null: remove Basic auth
    else:
        password_hash = existing.password_hash if existing else None
    charger = Charger(
        id=cp_id,
        password_hash=password_hash,
        location_id=body.location_id,
        evses=tuple(e.to_domain() for e in body.evses),
        certificate_cn=body.serial_number,
        created_at=existing.created_at if existing else request.config_dict[CLOCK].now(),
        local_list=body.local_list,
        local_list_max_entries=body.local_list_max_entries,
    )
    await store.chargers.put(charger)
    # Partners learn a new or moved EVSE by a PUT before any PATCH of its status.
    await request.config_dict[BUS].publish(ChargerConfigured(cp_id, existing, charger))
    return respond(await _charger_full(request, charger), 200 if existing else 201)


async def delete_charger(request: web.Request) -> web.Response:
    cp_id = _charger_id(request)
    store = request.config_dict[STORE]
    existing = await store.chargers.get(cp_id)
    if not await store.chargers.delete(cp_id):
        raise ApiError(404, f"charger {cp_id!r} not found")
    await request.config_dict[ROUTER].unregister(cp_id)  # wherever it is connected
    await store.connectors.delete(cp_id)
    await store.charger_states.delete(cp_id)
    await store.device_model.delete(cp_id)
    await request.config_dict[BUS].publish(ChargerConfigured(cp_id, existing, None))
    return web.Response(status=204)


async def charger_command(request: web.Request) -> web.Response:
    cp_id = _charger_id(request)
    name = request.match_info["name"]
    model = schemas.COMMANDS.get(name)
    if model is None:
        known = ", ".join(sorted(schemas.COMMANDS))
        raise ApiError(404, f"unknown command {name!r}; known: {known}")
    if await request.config_dict[STORE].chargers.get(cp_id) is None:
        raise ApiError(404, f"charger {cp_id!r} not found")
    body = await read_body(request, model, empty_ok=True)
    command = body.to_command()
    try:
        # The one command path: a local call, or routed to the process holding it.
        result = await request.config_dict[ROUTER].send(cp_id, command)
    except ChargerNotConnected as exc:
        raise ApiError(409, str(exc)) from None
    except ChargerTimeout as exc:
        raise ApiError(504, str(exc)) from None
    except ChargerRejected as exc:
        raise ApiError(502, f"charger answered with a CALLERROR: {exc}") from None
    except CommandNotSupported as exc:
        raise ApiError(422, str(exc)) from None
    answer: CommandAnswer = {"status": result.status, "data": result.data}
    if result.request_id is not None:
        answer["request_id"] = result.request_id
    return respond(answer)


# -- tokens ---------------------------------------------------------------------


def _uid(request: web.Request) -> str:
    uid = request.match_info["uid"]
    if not 1 <= len(uid) <= 36:  # OCPI Token.uid: string(36)
        raise ApiError(400, "token uid must be 1 to 36 characters", "uid")
    return uid


async def list_tokens(request: web.Request) -> web.Response:
    tokens = await request.config_dict[STORE].tokens.list()
    return respond([token_view(t) for t in sorted(tokens, key=lambda t: t.uid)])


async def get_token(request: web.Request) -> web.Response:
    uid = _uid(request)
    token = await request.config_dict[STORE].tokens.get(uid)
    if token is None:
        raise ApiError(404, f"token {uid!r} not found")
    return respond(token_view(token))


async def put_token(request: web.Request) -> web.Response:
    uid = _uid(request)
    body: schemas.TokenBody = await read_body(request, schemas.TokenBody, empty_ok=True)
    store = request.config_dict[STORE]
    existing = await store.tokens.get(uid)
    token = LocalToken(
        uid=uid,
        valid=body.valid,
        expiry=body.expiry,
        parent_id=body.parent_id,
        type=body.type,
        contract_id=body.contract_id,
        updated_at=request.config_dict[CLOCK].now(),
    )
    await store.tokens.put(token)
    await request.config_dict[LOCAL_LISTS].token_changed(uid)  # chargers' local lists
    return respond(token_view(token), 200 if existing else 201)


async def delete_token(request: web.Request) -> web.Response:
    uid = _uid(request)
    if not await request.config_dict[STORE].tokens.delete(uid):
        raise ApiError(404, f"token {uid!r} not found")
    await request.config_dict[LOCAL_LISTS].token_changed(uid)  # chargers' local lists
    return web.Response(status=204)


# -- transactions ---------------------------------------------------------------


async def list_transactions(request: web.Request) -> web.Response:
    q: schemas.TransactionQuery = read_query(request, schemas.TransactionQuery)
    txs = await request.config_dict[STORE].transactions.list(
        charger_id=q.charger_id, since=q.since, until=q.until, limit=q.limit, offset=q.offset
    )
    return respond([transaction_view(t) for t in txs])


async def get_transaction(request: web.Request) -> web.Response:
    tx_id = request.match_info["tx_id"]
    store = request.config_dict[STORE]
    tx = await store.transactions.get(tx_id)
    if tx is None:
        raise ApiError(404, f"transaction {tx_id!r} not found")
    return respond(transaction_view(tx, await store.transactions.readings(tx.id)))


_COMMANDS = ", ".join(f"`{name}`: {model.__name__}" for name, model in schemas.COMMANDS.items())
_CHARGER_ID = "the charge point id (1 to 48 characters), as in its WebSocket URL"


def _routes() -> list[api.Operation]:
    charger = {"charger_id": _CHARGER_ID}
    token_uid = {
        "uid": "the token's id, matched case-insensitively (ASCII letters), as OCPP"
        " compares id tokens"
    }
    return [
        api.get(
            "/chargers",
            list_chargers,
            "Every charger: configuration and live state",
            description="Filtered by `q`, `connected` and `ocpp_version`, paged by `limit` and"
            " `offset` (ordered by id; no `limit`: every match); `X-Total-Count` counts the"
            " matches.",
            query=ChargerQuery,
            response=list[ChargerView],
        ),
        api.get(
            "/chargers/{charger_id}",
            get_charger,
            "One charger, with its latest notifications and requests",
            path_params=charger,
            response=ChargerView,
            errors={404: "no such charger"},
        ),
        api.put(
            "/chargers/{charger_id}",
            put_charger,
            "Register or replace a charger",
            path_params=charger,
            body=schemas.ChargerBody,
            body_required=False,
            response=ChargerView,
            statuses={200: "replaced", 201: "registered"},
            errors={404: "the location_id names no location"},
        ),
        api.delete(
            "/chargers/{charger_id}",
            delete_charger,
            "Unregister a charger (and disconnect it)",
            path_params=charger,
            statuses={204: "deleted"},
            errors={404: "no such charger"},
        ),
        api.post(
            "/chargers/{charger_id}/commands/{name}",
            charger_command,
            "Send a command to a charger",
            description=f"The body is the command's: {_COMMANDS}.",
            path_params=charger | {"name": ", ".join(schemas.COMMANDS)},
            body=tuple(schemas.COMMANDS.values()),
            body_required=False,
            response=CommandAnswer,
            errors={**api.CHARGER_ERRORS, 404: "no such charger or command"},
        ),
        api.get("/tokens", list_tokens, "The local token list", response=list[TokenView]),
        api.get(
            "/tokens/{uid}",
            get_token,
            "One local token",
            response=TokenView,
            errors={404: "no such token"},
            path_params=token_uid,
        ),
        api.put(
            "/tokens/{uid}",
            put_token,
            "Add or replace a local token",
            description="Replaces the token whose uid differs only in case (the uid keeps"
            " the spelling last put).",
            body=schemas.TokenBody,
            body_required=False,
            response=TokenView,
            statuses={200: "replaced", 201: "added"},
            path_params=token_uid,
        ),
        api.delete(
            "/tokens/{uid}",
            delete_token,
            "Remove a local token",
            statuses={204: "removed"},
            errors={404: "no such token"},
            path_params=token_uid,
        ),
        api.get(
            "/transactions",
            list_transactions,
            "Transactions, newest first",
            query=schemas.TransactionQuery,
            response=list[TransactionView],
        ),
        api.get(
            "/transactions/{tx_id}",
            get_transaction,
            "One transaction with its meter readings",
            response=TransactionView,
            errors={404: "no such transaction"},
        ),
    ]


def admin_routes() -> web.Application:
    admin = web.Application(middlewares=[_errors_and_auth])
    # Each module declares its routes (gateway.admin.openapi): registered and documented
    # by the same declaration.
    for routes in (
        _routes(),
        docs_routes(),
        partner_routes(),
        catalog_routes(),
        outbox_routes(),
        cdr_routes(),
        hub_routes(),
        site_routes(),
        charging_routes(),
        report_routes(),
        trail_routes(),
        event_routes(),
        roaming_session_routes(),
        local_list_routes(),
        device_model_routes(),
        certificate_routes(),
        payment_routes(),
    ):
        api.add_routes(admin, routes)
    return admin
