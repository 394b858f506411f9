"""The admin API answers bad requests with a 4xx and a JSON reason naming the field."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.conftest import Gateway

# (method, path, body (bytes: raw), status, field or None, text in the reason)
CASES: list[tuple[str, str, Any, int, str | None, str]] = [
    ("PUT", "/chargers/CP1", b"{oops", 400, None, "not valid JSON"),
    ("PUT", "/chargers/CP1", b"\xff\xfe", 400, None, ""),
    ("PUT", "/chargers/CP1", {"evses": [{"ocpp_id": 0, "evse_uid": "E"}]}, 422, "evses[0].ocpp_id", "greater than"),
    ("PUT", "/chargers/CP1", {"evses": [{"ocpp_id": "one", "evse_uid": "E"}]}, 422, "evses[0].ocpp_id", ""),
    ("PUT", "/chargers/CP1", {"evses": [{"ocpp_id": 1, "evse_uid": "E"}, {"ocpp_id": 1, "evse_uid": "F"}]}, 422, "evses", "unique"),
    ("PUT", "/chargers/CP1", {"colour": "red"}, 422, "colour", "Extra inputs"),
    ("PUT", "/chargers/" + "X" * 49, {}, 400, "charger_id", "48"),
    ("PUT", "/tokens/T1", {"expiry": "2027-01-01T00:00:00"}, 422, "expiry", "timezone"),
    ("PUT", "/tokens/T1", {"valid": "maybe"}, 422, "valid", ""),
    ("PUT", "/tokens/" + "T" * 37, {}, 400, "uid", "36"),
    ("GET", "/transactions?limit=0", None, 400, "limit", ""),
    ("GET", "/transactions?since=yesterday", None, 400, "since", ""),
    ("GET", "/transactions/nope", None, 404, None, "not found"),
    ("GET", "/chargers/NOPE", None, 404, None, "not found"),
    ("POST", "/chargers/CP-REG/commands/fly", {}, 404, None, "unknown command"),
    ("POST", "/chargers/CP-REG/commands/reset", {"type": "medium"}, 422, "type", ""),
    ("POST", "/chargers/CP-REG/commands/remote-stop", {}, 422, "transaction_id", "required"),
    ("POST", "/chargers/CP-REG/commands/update-firmware", {"location": "x", "retrieve_at": "soon"}, 422, "retrieve_at", ""),
    ("POST", "/partners", {"name": ""}, 422, "name", ""),
    ("PUT", "/locations/L1", [], 400, None, "object"),
    ("PUT", "/tariffs/T1", {"currency": "EURO", "elements": []}, 422, None, ""),
    ("POST", "/outbox/nope/replay", None, 404, None, ""),
]


async def test_admin_bad_input(gateway: Gateway) -> None:
    assert (await gateway.admin("PUT", "/chargers/CP-REG", {}))[0] == 201
    async with aiohttp.ClientSession() as s:
        for method, path, body, status, field, text in CASES:
            kwargs: dict[str, Any] = {"headers": gateway.admin_headers}
            if isinstance(body, bytes):
                kwargs["data"] = body
            elif body is not None:
                kwargs["json"] = body
            async with s.request(method, f"{gateway.url}/admin{path}", **kwargs) as r:
                assert r.content_type == "application/json", (method, path)
                answer = await r.json()
                assert r.status == status, (method, path, answer)
                assert isinstance(answer["error"], str), answer
                assert text in answer["error"], (method, path, answer)
                if field is not None:
                    assert answer["field"] == field, (method, path, answer)


async def test_admin_needs_the_token(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as s:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
            async with s.get(f"{gateway.url}/admin/chargers", headers=headers) as r:
                assert r.status == 401
                assert "token" in (await r.json())["error"]
