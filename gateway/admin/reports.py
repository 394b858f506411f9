"""Admin API for reports (README "Reports"): ``GET /reports`` lists the kinds and their
columns, ``GET /reports/{kind}?from=&to=&by=&period=&tz=&format=json|csv`` makes one.

The answer is streamed as the rows are made (one charger or location at a time, see
``gateway.reports.source``), so a year of a large fleet never sits in memory; a failure
half way ends the stream early (the JSON is then incomplete, and the log says why).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from typing_extensions import TypedDict

from gateway.admin import openapi as api
from gateway.admin.http import ApiError, read_query, respond
from gateway.admin.schemas import _Body
from gateway.keys import CLOCK, STORE
from gateway.reports.compute import ALLOWED_BY, Kind, columns, csv_line, json_row
from gateway.reports.request import ReportInputError, ReportRequest, parse_request
from gateway.reports.source import report_rows

log = logging.getLogger(__name__)

# Bytes gathered before a write to the client.
_CHUNK = 64 * 1024


class ReportQuery(_Body):
    from_: str = Field(
        alias="from",
        description="start, inclusive: an RFC 3339 time, or a date (YYYY-MM-DD) or a time"
        " without offset, read in `tz`",
    )
    to: str = Field(description="end, exclusive (as `from`)")
    by: Literal["charger", "evse", "location", "partner"] = Field(
        default="charger", description="one row per charger, EVSE, location or roaming partner"
    )
    period: Literal["day", "week", "month", "range"] = Field(
        default="range", description="one row per day, ISO week, month, or the whole range"
    )
    tz: str = Field(
        default="UTC", description="IANA time zone of the periods, e.g. Europe/Amsterdam"
    )
    format: Literal["json", "csv"] = Field(default="json", description="JSON or CSV (RFC 4180)")


class ReportKindView(TypedDict):
    by: list[str]
    columns: list[str]


ReportView = TypedDict(
    "ReportView",
    {
        "kind": str,
        "from": str,
        "to": str,
        "by": str,
        "period": str,
        "tz": str,
        "columns": list[str],
        "rows": list[dict[str, Any]],
    },
)


def _time(request: ReportRequest, which: str) -> str:
    value = request.start if which == "from" else request.end
    return value.isoformat().replace("+00:00", "Z")


def report_routes() -> list[api.Operation]:
    async def kinds(request: web.Request) -> web.Response:
        return respond(
            {
                kind.value: {
                    "by": [b.value for b in ALLOWED_BY[kind]],
                    "columns": list(columns(kind, ALLOWED_BY[kind][0])),
                }
                for kind in Kind
            }
        )

    async def report(request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        if kind not in [k.value for k in Kind]:
            known = ", ".join(k.value for k in Kind)
            raise ApiError(404, f"no report {kind[:40]!r}: {known}", "kind")
        query: ReportQuery = read_query(request, ReportQuery)
        try:
            spec = parse_request(
                kind,
                {
                    "from": query.from_,
                    "to": query.to,
                    "by": query.by,
                    "period": query.period,
                    "tz": query.tz,
                },
            )
        except ReportInputError as exc:
            raise ApiError(400, str(exc), exc.field) from None
        store, now = request.config_dict[STORE], request.config_dict[CLOCK].now()
        names = columns(spec.kind, spec.by)
        csv_out = query.format == "csv"
        response = web.StreamResponse(
            headers={"Cache-Control": "no-store"}
            | (
                {
                    "Content-Disposition": f'attachment; filename="{spec.kind.value}-'
                    f'{spec.start:%Y%m%d}-{spec.end:%Y%m%d}.csv"'
                }
                if csv_out
                else {}
            )
        )
        response.content_type = "text/csv" if csv_out else "application/json"
        response.charset = "utf-8"
        await response.prepare(request)
        if csv_out:
            buffer = csv_line(names)
        else:
            head = {
                "kind": spec.kind.value,
                "from": _time(spec, "from"),
                "to": _time(spec, "to"),
                "by": spec.by.value,
                "period": spec.period.value,
                "tz": spec.zone_name,
                "columns": list(names),
            }
            buffer = json.dumps(head, separators=(",", ":"))[:-1] + ',"rows":['
        first = True
        try:
            async for row in report_rows(store, spec, now):
                if csv_out:
                    buffer += csv_line(row.get(n) for n in names)
                else:
                    buffer += ("" if first else ",") + json_row(row)
                first = False
                if len(buffer) >= _CHUNK:
                    await response.write(buffer.encode())
                    buffer = ""
        except Exception:
            # The status is sent already: the answer ends here, incomplete.
            log.exception("report %s failed half way", spec.kind.value)
            await response.write(buffer.encode())
            return response
        if not csv_out:
            buffer += "]}"
        await response.write(buffer.encode())
        await response.write_eof()
        return response

    return [
        api.get(
            "/reports",
            kinds,
            "The report kinds, the groupings each takes and their columns",
            response=dict[str, ReportKindView],
            tag="reports",
        ),
        api.get(
            "/reports/{kind}",
            report,
            "A report (usage, revenue, uptime, faults) per group and period, as JSON or CSV",
            path_params={"kind": "usage, revenue, uptime or faults"},
            query=ReportQuery,
            response=ReportView,
            errors={404: "no such report kind"},
            tag="reports",
        ),
    ]
