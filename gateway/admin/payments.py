"""Admin API of the OCPI 2.3.0 Payments module (gateway.roaming.payments).

``GET /payments/terminals?partner_id=&offset=&limit=`` lists the PTPs' payment
terminals; ``POST /payments/terminals/{partner_id}/{terminal_id}/assign`` assigns Locations and
EVSEs to one (``{"location_ids": [...], "evse_uids": [...]}``, either or both): stored and
sent to the PTP by PATCH through the outbox (202 with the outbox item's id);
``POST /payments/partners/{partner_id}/terminals/pull`` GETs every terminal of the PTP;
``POST /payments/partners/{partner_id}/terminals/activate`` and
``POST /payments/terminals/{partner_id}/{terminal_id}/deactivate`` ask the PTP to
activate (a TerminalActivation) or deactivate one; ``GET /payments/confirmations``
lists the financial advice confirmations with the session and CDR each was matched to;
``PUT``/``DELETE /payments/tariffs/{tariff_id}`` (``GET /payments/tariffs``) set what a
terminal reserves for a tariff, its ``preauthorize_amount`` in OCPI 2.3.0.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field
from typing_extensions import TypedDict

from gateway.admin import openapi as api
from gateway.admin.http import ApiError, read_body, read_query, respond
from gateway.admin.schemas import _Body
from gateway.roaming.payments import (
    PAYMENTS,
    PaymentError,
    PaymentsService,
    confirmation_of,
    terminal_of,
)
from gateway.storage.payments import StoredConfirmation, StoredTerminal
from ocpi.client import OcpiClientError
from ocpi.transport import json_loads
from ocpi.v230 import FinancialAdviceConfirmation, Terminal, TerminalActivation

Id36 = Annotated[str, Field(min_length=1, max_length=36)]


class PageQuery(_Body):
    partner_id: str | None = None
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)


class AssignBody(_Body):
    location_ids: list[Id36] | None = None
    evse_uids: list[Id36] | None = None


class PreauthorizeBody(_Body):
    preauthorize_amount: Decimal = Field(ge=0, max_digits=12, decimal_places=4)


class Preauthorize(TypedDict):
    tariff_id: str
    preauthorize_amount: Decimal


class TerminalView(TypedDict):
    partner_id: str
    terminal: Terminal
    received_at: str


class ConfirmationView(TypedDict):
    partner_id: str
    confirmation: FinancialAdviceConfirmation
    received_at: str
    session_id: str | None
    cdr_id: str | None


class Assignment(TypedDict):
    terminal: Terminal
    outbox_item_id: str


class Pulled(TypedDict):
    terminals: int


class PtpAnswer(TypedDict):
    data: Any


def _service(request: web.Request) -> PaymentsService:
    service = request.config_dict[PAYMENTS].service
    if service is None:
        raise ApiError(503, "not started")
    return service


def _json(model: Terminal | FinancialAdviceConfirmation) -> Any:
    return json_loads(model.to_json())


def terminal_view(record: StoredTerminal) -> dict[str, Any]:
    return {
        "partner_id": record.partner_id,
        "terminal": _json(terminal_of(record)),
        "received_at": record.received_at.isoformat().replace("+00:00", "Z"),
    }


def confirmation_view(record: StoredConfirmation) -> dict[str, Any]:
    return {
        "partner_id": record.partner_id,
        "confirmation": _json(confirmation_of(record)),
        "received_at": record.received_at.isoformat().replace("+00:00", "Z"),
        "session_id": record.session_id,
        "cdr_id": record.cdr_id,
    }


def _failed(exc: PaymentError) -> ApiError:
    return ApiError(exc.status, exc.reason, exc.field)


@contextmanager
def _asking_the_ptp() -> Iterator[None]:
    """A call to the PTP: a PaymentError as its admin error, the PTP's failure 502."""
    try:
        yield
    except PaymentError as exc:
        raise _failed(exc) from None
    except OcpiClientError as exc:
        raise ApiError(502, f"the PTP: {exc}") from None


def payment_routes() -> list[api.Operation]:
    async def list_terminals(request: web.Request) -> web.Response:
        q: PageQuery = read_query(request, PageQuery)
        records, _ = await _service(request).terminals(q.partner_id, offset=q.offset, limit=q.limit)
        return respond([terminal_view(r) for r in records])

    async def assign(request: web.Request) -> web.Response:
        body: AssignBody = await read_body(request, AssignBody)
        try:
            done = await _service(request).assign(
                request.match_info["partner_id"],
                request.match_info["terminal_id"],
                body.location_ids,
                body.evse_uids,
            )
        except PaymentError as exc:
            raise _failed(exc) from None
        return respond(
            {"terminal": _json(done.terminal), "outbox_item_id": done.outbox_item_id}, 202
        )

    async def pull(request: web.Request) -> web.Response:
        with _asking_the_ptp():
            count = await _service(request).pull_terminals(request.match_info["partner_id"])
        return respond({"terminals": count})

    async def activate(request: web.Request) -> web.Response:
        body: TerminalActivation = await read_body(request, TerminalActivation)
        with _asking_the_ptp():
            data = await _service(request).activate(request.match_info["partner_id"], body)
        return respond({"data": data})

    async def deactivate(request: web.Request) -> web.Response:
        with _asking_the_ptp():
            data = await _service(request).deactivate(
                request.match_info["partner_id"], request.match_info["terminal_id"]
            )
        return respond({"data": data})

    async def list_confirmations(request: web.Request) -> web.Response:
        q: PageQuery = read_query(request, PageQuery)
        records, _ = await _service(request).confirmations(
            q.partner_id, offset=q.offset, limit=q.limit
        )
        return respond([confirmation_view(r) for r in records])

    async def set_preauthorize(request: web.Request) -> web.Response:
        body: PreauthorizeBody = await read_body(request, PreauthorizeBody)
        tariff_id = request.match_info["tariff_id"]
        try:
            await _service(request).set_preauthorize(tariff_id, body.preauthorize_amount)
        except PaymentError as exc:
            raise _failed(exc) from None
        return respond({"tariff_id": tariff_id, "preauthorize_amount": body.preauthorize_amount})

    async def delete_preauthorize(request: web.Request) -> web.Response:
        tariff_id = request.match_info["tariff_id"]
        if not await _service(request).set_preauthorize(tariff_id, None):
            raise ApiError(404, f"tariff {tariff_id!r} has no preauthorize_amount")
        return web.Response(status=204)

    async def list_preauthorize(request: web.Request) -> web.Response:
        amounts = await _service(request).preauthorize_amounts()
        return respond(
            [{"tariff_id": k, "preauthorize_amount": v} for k, v in sorted(amounts.items())]
        )

    partner = {"partner_id": "the PTP's partner id"}
    terminal = partner | {"terminal_id": "the terminal's id at that PTP"}
    tariff = {"tariff_id": "the tariff's id"}
    ptp_errors = {
        404: "no such partner",
        409: "the partner is not a registered OCPI 2.3.0 PTP",
        502: "the PTP refused or did not answer",
    }
    return [
        api.get(
            "/payments/terminals",
            list_terminals,
            "Payment terminals of the PTPs (OCPI 2.3.0 Payments), oldest update first",
            query=PageQuery,
            response=list[TerminalView],
            tag="payments",
        ),
        api.post(
            "/payments/terminals/{partner_id}/{terminal_id}/assign",
            assign,
            "Assign Locations and EVSEs to a terminal; sent to the PTP by PATCH (outbox)",
            body=AssignBody,
            path_params=terminal,
            response=Assignment,
            statuses={202: "stored, the PATCH queued for the PTP"},
            errors={404: "no such partner or terminal", 409: ptp_errors[409]},
            tag="payments",
        ),
        api.post(
            "/payments/partners/{partner_id}/terminals/pull",
            pull,
            "GET every terminal of the PTP (paginated) and keep them",
            path_params=partner,
            response=Pulled,
            errors=ptp_errors,
            tag="payments",
        ),
        api.post(
            "/payments/partners/{partner_id}/terminals/activate",
            activate,
            "Ask the PTP to activate a terminal (it then POSTs the Terminal)",
            path_params=partner,
            body=TerminalActivation,
            response=PtpAnswer,
            errors=ptp_errors,
            tag="payments",
        ),
        api.post(
            "/payments/terminals/{partner_id}/{terminal_id}/deactivate",
            deactivate,
            "Ask the PTP to deactivate a terminal",
            path_params=terminal,
            response=PtpAnswer,
            errors=ptp_errors,
            tag="payments",
        ),
        api.get(
            "/payments/tariffs",
            list_preauthorize,
            "The preauthorize_amount of each tariff (served in OCPI 2.3.0 tariffs)",
            response=list[Preauthorize],
            tag="payments",
        ),
        api.put(
            "/payments/tariffs/{tariff_id}",
            set_preauthorize,
            "Set what a payment terminal reserves for a tariff (Tariff.preauthorize_amount)",
            path_params=tariff,
            body=PreauthorizeBody,
            response=Preauthorize,
            errors={404: "no such tariff"},
            tag="payments",
        ),
        api.delete(
            "/payments/tariffs/{tariff_id}",
            delete_preauthorize,
            "Remove a tariff's preauthorize_amount",
            path_params=tariff,
            statuses={204: "removed"},
            errors={404: "the tariff has none"},
            tag="payments",
        ),
        api.get(
            "/payments/confirmations",
            list_confirmations,
            "Financial advice confirmations of the PTPs, with the session and CDR matched",
            query=PageQuery,
            response=list[ConfirmationView],
            tag="payments",
        ),
    ]
