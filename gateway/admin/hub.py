"""Admin API of the hub: the parties it routes to and the operator's routing rules."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from gateway.admin import openapi as api
from gateway.admin.http import ApiError, read_body, respond
from gateway.admin.schemas import _Body
from gateway.hub.rules import RuleAction, parse_party
from gateway.hub.service import HUB, Hub
from ocpi.transport import PartyId
from ocpi.v221.enums import ConnectionStatus


class RuleBody(_Body):
    action: Literal["allow", "deny"]
    party: str = Field(min_length=5, max_length=7, description="e.g. NL*EM1")
    counterpart: str = Field(min_length=5, max_length=7, description="e.g. DE*CP2")


class StatusBody(_Body):
    status: Literal["CONNECTED", "PLANNED", "SUSPENDED"] = Field(
        description="OFFLINE is the still-alive check's to decide"
    )


def _hub(request: web.Request) -> Hub:
    if HUB not in request.config_dict:
        raise ApiError(503, "the hub is not running yet")
    return request.config_dict[HUB]


def _party(text: str, field: str) -> PartyId:
    try:
        return parse_party(text)
    except ValueError as exc:
        raise ApiError(422, f"{field}: {exc}", field) from None


def hub_routes() -> list[api.Operation]:
    async def parties(request: web.Request) -> web.Response:
        directory = _hub(request).directory
        view: list[dict[str, Any]] = [
            {
                "party": str(p.id),
                "country_code": p.id.country_code,
                "party_id": p.id.party_id,
                "roles": sorted(r.value for r in p.roles),
                "platform": p.platform_id,
                "status": directory.status(p.id).value,
                "status_changed_at": directory.status_changed_at(p.id),
            }
            for p in directory.parties()
        ]
        return respond(view)

    async def list_rules(request: web.Request) -> web.Response:
        return respond([rule.view() for rule in _hub(request).rule_book.all()])

    async def add_rule(request: web.Request) -> web.Response:
        body: RuleBody = await read_body(request, RuleBody)
        party = _party(body.party, "party")
        counterpart = _party(body.counterpart, "counterpart")
        if party == counterpart:
            raise ApiError(422, "counterpart: must differ from party", "counterpart")
        hub = _hub(request)
        rule = await hub.rule_book.add(RuleAction(body.action), party, counterpart)
        await hub.rules_changed()
        return respond(rule.view(), 201)

    async def delete_rule(request: web.Request) -> web.Response:
        hub = _hub(request)
        if not await hub.rule_book.remove(request.match_info["rule_id"]):
            raise ApiError(404, f"rule {request.match_info['rule_id']!r} not found")
        await hub.rules_changed()
        return web.Response(status=204)

    async def set_status(request: web.Request) -> web.Response:
        body: StatusBody = await read_body(request, StatusBody)
        party = _party(request.match_info["party"], "party")
        try:
            changed = await _hub(request).set_status(party, ConnectionStatus(body.status))
        except KeyError:
            raise ApiError(404, f"party {party} is not a party of a hub platform") from None
        return respond({"party": str(party), "status": body.status, "changed": changed})

    async def check_alive(request: web.Request) -> web.Response:
        offline, back = await _hub(request).check_alive()
        return respond({"went_offline": offline, "came_back": back})

    down = {503: "the hub is not running yet"}
    return [
        api.get("/hub/parties", parties, "The parties the hub routes to", errors=down),
        api.get("/hub/rules", list_rules, "The operator's routing rules", errors=down),
        api.post(
            "/hub/rules",
            add_rule,
            "Add a routing rule (allow or deny party -> counterpart)",
            body=RuleBody,
            statuses={201: "added"},
            errors=down,
        ),
        api.delete(
            "/hub/rules/{rule_id}",
            delete_rule,
            "Remove a routing rule",
            statuses={204: "removed"},
            errors={**down, 404: "no such rule"},
        ),
        api.put(
            "/hub/parties/{party}/status",
            set_status,
            "Set a hub party's connection status",
            path_params={"party": "CC*PID, e.g. NL*EM1"},
            body=StatusBody,
            errors={**down, 404: "not a party of a hub platform"},
        ),
        api.post(
            "/hub/check-alive",
            check_alive,
            "Run the still-alive check of the hub's platforms now",
            errors=down,
        ),
    ]
