"""Admin API for CDRs that could not be built or priced (a CDR is never lost silently).

``GET /cdrs/failed?limit=&offset=`` lists them, oldest failure first, each with its
transaction, session, partner, charger, ``reason`` and ``attempts``;
``GET /cdrs/failed/{tx_id}`` is one; ``POST /cdrs/failed/{tx_id}/retry`` builds it again
once the operator fixed the data (a location's ``time_zone``, a tariff): 200 with the CDR,
now queued for its eMSP, or 422 with the reason it still fails (it stays listed); 404 when
that transaction has no failed CDR.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from typing_extensions import TypedDict

from gateway.admin import openapi as api
from gateway.admin.http import ApiError, read_query, respond
from gateway.admin.schemas import _Body
from gateway.roaming.providers import PROVIDERS
from gateway.roaming.sessions import CdrRetryError, FailedCdr, SessionService
from ocpi.v221 import CDR


class CdrBuilt(TypedDict):
    status: Literal["built"]
    cdr: CDR  # as the eMSP gets it


class FailedQuery(_Body):
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


def _sessions(request: web.Request) -> SessionService:
    service = request.config_dict[PROVIDERS].sessions
    if service is None:
        raise ApiError(503, "not started")
    return service


def failed_view(failure: FailedCdr) -> dict[str, Any]:
    return failure.to_json()


def cdr_routes() -> list[api.Operation]:
    async def list_failed(request: web.Request) -> web.Response:
        q: FailedQuery = read_query(request, FailedQuery)
        failures, _ = await _sessions(request).failed_cdrs(offset=q.offset, limit=q.limit)
        return respond([failed_view(f) for f in failures])

    async def get_failed(request: web.Request) -> web.Response:
        tx_id = request.match_info["tx_id"]
        failure = await _sessions(request).failed_cdr(tx_id)
        if failure is None:
            raise ApiError(404, f"no failed CDR for transaction {tx_id!r}")
        return respond(failed_view(failure))

    async def retry(request: web.Request) -> web.Response:
        tx_id = request.match_info["tx_id"]
        try:
            outcome = await _sessions(request).retry_cdr(tx_id)
        except CdrRetryError as exc:
            raise ApiError(404, str(exc)) from None
        if isinstance(outcome, FailedCdr):
            raise ApiError(422, f"the CDR still cannot be made: {outcome.reason}")
        return respond({"status": "built", "cdr": json.loads(outcome.to_json())})

    tx = {"tx_id": "the gateway's transaction id"}
    return [
        api.get(
            "/cdrs/failed",
            list_failed,
            "CDRs that could not be built or priced, oldest failure first",
            query=FailedQuery,
            response=list[FailedCdr],
            tag="cdrs",
        ),
        api.get(
            "/cdrs/failed/{tx_id}",
            get_failed,
            "One failed CDR",
            path_params=tx,
            response=FailedCdr,
            errors={404: "no failed CDR for that transaction"},
            tag="cdrs",
        ),
        api.post(
            "/cdrs/failed/{tx_id}/retry",
            retry,
            "Build a failed CDR again and queue it for its eMSP",
            path_params=tx,
            response=CdrBuilt,
            errors={
                404: "no failed CDR for that transaction",
                422: "the CDR still cannot be made (it stays listed)",
            },
            tag="cdrs",
        ),
    ]
