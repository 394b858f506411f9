"""The admin API's OpenAPI document (gateway.admin.openapi): a valid OpenAPI 3.1 document,
every admin route of the running gateway in it and nothing else, its schemas agreeing
with what the routes really accept, refuse and answer, and the docs page."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web
from openapi_spec_validator import validate

from gateway.admin.api import admin_routes
from gateway.admin.openapi import openapi_document
from tests.conftest import Gateway
from tests.roaming.test_catalog import LOCATION, TARIFF

HOW_TO_DECLARE = (
    "declare the route with gateway.admin.openapi (api.get/put/post/delete(path, handler, "
    "summary, body=..., query=..., response=..., errors={...})) and add it with "
    "api.add_routes(admin, routes) in gateway.admin.api.admin_routes"
)


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the document does not depend on the store


async def _document(gateway: Gateway) -> dict[str, Any]:
    status, doc = await gateway.admin("GET", "/openapi.json")
    assert status == 200
    assert isinstance(doc, dict)
    return doc


def _admin_app(app: web.Application) -> tuple[str, web.Application]:
    for resource in app.router.resources():
        info = resource.get_info()
        if "app" in info and info.get("prefix") == "/admin":
            return "/admin", info["app"]
    raise AssertionError("no admin application mounted at /admin")


def _routes(prefix: str, admin: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in admin.router.routes():
        assert route.resource is not None
        found.add((route.method, route.resource.canonical.removeprefix(prefix)))
    # aiohttp answers HEAD beside each GET by itself.
    return {(m, p) for m, p in found if m != "HEAD" or ("GET", p) not in found}


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }


def _undocumented(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(key for key, op in _operations(doc).items() if op.get("x-undocumented"))


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; their $refs point into the components.
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


def _body_schema(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    schema: dict[str, Any] = _operations(doc)[(method, path)]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    return schema


async def test_the_document_is_valid_openapi_3_1(gateway: Gateway) -> None:
    doc = await _document(gateway)
    validate(doc)  # openapi-spec-validator: raises on an invalid document
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"] == [{"url": "/admin"}]
    ops = _operations(doc)
    ids = [op["operationId"] for op in ops.values()]
    assert len(ids) == len(set(ids))
    # The bodies are the validating models' schemas, not copies of them.
    assert _body_schema(doc, "PUT", "/tokens/{uid}") == {"$ref": "#/components/schemas/TokenBody"}
    token_body = doc["components"]["schemas"]["TokenBody"]
    assert token_body["additionalProperties"] is False
    assert token_body["properties"]["parent_id"]["anyOf"][0]["maxLength"] == 36
    # The query of a list is its model's fields.
    params = {p["name"]: p for p in ops[("GET", "/transactions")]["parameters"]}
    assert set(params) == {"charger_id", "since", "until", "limit", "offset"}
    assert params["limit"]["schema"]["minimum"] == 1
    assert params["limit"]["schema"]["maximum"] == 1000
    assert params["since"]["schema"]["format"] == "date-time"
    # Every operation but the docs page needs the bearer token; every error is the one shape.
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert [k for k, op in ops.items() if op.get("security") == []] == [("GET", "/docs")]
    for key, op in ops.items():
        if op.get("x-undocumented"):
            continue  # the next test fails them
        for status, answer in op["responses"].items():
            if status.startswith(("4", "5")):
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorView"}, (key, status)
        if key != ("GET", "/docs"):
            assert "401" in op["responses"], key


async def test_every_admin_route_is_documented_and_every_documented_one_exists(
    gateway: Gateway,
) -> None:
    doc = await _document(gateway)
    assert _undocumented(doc) == [], HOW_TO_DECLARE
    prefix, admin = _admin_app(gateway.app)
    registered = _routes(prefix, admin)
    documented = set(_operations(doc))
    assert registered - documented == set(), HOW_TO_DECLARE
    assert documented - registered == set()
    # And each documented one answers as a route, not as "no such endpoint" (404 from the
    # router) or "method not allowed": its path, with its parameters filled in, is routed.
    async with aiohttp.ClientSession() as s:
        for method, path in sorted(documented):
            if method != "GET":
                continue
            url = gateway.url + prefix + re.sub(r"\{\w+\}", "x", path)
            async with s.request(method, url, headers=gateway.admin_headers) as r:
                assert r.status != 405, (method, path)
                if r.status == 404:  # the handler's "not found", not the router's
                    assert "no such endpoint" not in await r.text(), (method, path)


async def test_a_route_added_without_a_declaration_is_caught() -> None:
    async def extra(request: web.Request) -> web.Response:
        return web.json_response({})

    admin = admin_routes()
    before = set(_undocumented(openapi_document(admin)))
    admin.router.add_get("/extra/{thing}", extra)
    doc = openapi_document(admin)
    assert set(_undocumented(doc)) - before == {("GET", "/extra/{thing}")}
    validate(doc)  # still a valid document (the route shows, marked)


async def test_the_document_needs_the_token_the_docs_page_does_not(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{gateway.url}/admin/openapi.json") as r:
            assert r.status == 401
            assert "token" in (await r.json())["error"]
        async with s.get(f"{gateway.url}/admin/docs") as r:
            assert r.status == 200
            assert r.content_type == "text/html"
            page = await r.text()
            csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "connect-src 'self'" in csp
    # The page's own script and style run under that policy (their hashes are in it) and
    # nothing else is loaded: no src, no href to anywhere.
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        body = re.search(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
        assert body is not None
        digest = base64.b64encode(hashlib.sha256(body.group(1).encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp
    assert not re.search(r"\b(src|href)=", page)
    # The token goes in a header; never in a URL (the page asks for it in a password field).
    assert 'type="password"' in page
    assert '"Authorization": "Bearer " + token' in page
    assert "?token" not in page and "access_token" not in page


# (method, path, body the document says is invalid, field the route names or None)
INVALID: list[tuple[str, str, str, Any, str | None]] = [
    ("PUT", "/tokens/{uid}", "/tokens/T1", {"valid": "maybe"}, "valid"),
    ("PUT", "/tokens/{uid}", "/tokens/T1", {"colour": "red"}, "colour"),
    ("PUT", "/tokens/{uid}", "/tokens/T1", {"type": "BADGE"}, "type"),
    (
        "PUT",
        "/chargers/{charger_id}",
        "/chargers/CP9",
        {"evses": [{"ocpp_id": 0, "evse_uid": "E"}]},
        "evses[0].ocpp_id",
    ),
    ("PUT", "/chargers/{charger_id}", "/chargers/CP9", {"password": "short"}, "password"),
    ("PUT", "/sites/{site_id}", "/sites/S1", {"capacity": -1}, "capacity"),
    ("PUT", "/sites/{site_id}", "/sites/S1", {"capacity": 63, "phases": 2}, "phases"),
    ("POST", "/partners", "/partners", {"name": ""}, "name"),
    ("POST", "/partners", "/partners", {"name": "x", "kind": "FRIEND"}, "kind"),
    (
        "POST",
        "/hub/rules",
        "/hub/rules",
        {"action": "maybe", "party": "NL*EM1", "counterpart": "DE*CP2"},
        "action",
    ),
    ("PUT", "/tariffs/{tariff_id}", "/tariffs/T1", {"elements": TARIFF["elements"]}, None),
    ("PUT", "/locations/{location_id}", "/locations/L1", LOCATION | {"colour": "red"}, "colour"),
    (
        "PUT",
        "/locations/{location_id}",
        "/locations/L1",
        {k: v for k, v in LOCATION.items() if k != "city"},
        None,
    ),
    (
        "POST",
        "/chargers/{charger_id}/commands/{name}",
        "/chargers/CP-REG/commands/reset",
        {"type": "medium"},
        "type",
    ),
    (
        "PUT",
        "/chargers/{charger_id}/charging-profiles/{profile_id}",
        "/chargers/CP-REG/charging-profiles/1",
        {
            "evse_id": 0,
            "purpose": "Everything",
            "schedule": {"unit": "A", "periods": [{"start_period": 0, "limit": 16}]},
        },
        "purpose",
    ),
]
VALID: list[tuple[str, str, str, Any, int]] = [
    ("PUT", "/tariffs/{tariff_id}", "/tariffs/AC-STD", TARIFF, 201),
    ("PUT", "/locations/{location_id}", "/locations/L1", LOCATION, 201),
    ("PUT", "/tokens/{uid}", "/tokens/T1", {"valid": True, "type": "RFID"}, 201),
    (
        "PUT",
        "/chargers/{charger_id}",
        "/chargers/CP9",
        {"evses": [{"ocpp_id": 1, "evse_uid": "E1"}]},
        201,
    ),
    (
        "PUT",
        "/sites/{site_id}",
        "/sites/S1",
        {"capacity": 63, "evses": [{"charger_id": "CP9", "max_current": 32}]},
        201,
    ),
    (
        "POST",
        "/hub/rules",
        "/hub/rules",
        {"action": "deny", "party": "NL*EM1", "counterpart": "DE*CP2"},
        201,
    ),
]


async def test_the_document_and_the_routes_agree_on_bodies(gateway: Gateway) -> None:
    doc = await _document(gateway)
    assert (await gateway.admin("PUT", "/chargers/CP-REG", {}))[0] == 201
    for method, template, path, body, field in INVALID:
        errors = list(_validator(doc, _body_schema(doc, method, template)).iter_errors(body))
        assert errors, (method, path, body, "the document takes it")
        status, answer = await gateway.admin(method, path, body)
        assert status in (400, 422), (method, path, status, answer)
        assert isinstance(answer["error"], str)
        if field is not None:
            assert answer.get("field") == field, (method, path, answer)
    for method, template, path, body, expected in VALID:
        errors = list(_validator(doc, _body_schema(doc, method, template)).iter_errors(body))
        assert errors == [], (method, path, [e.message for e in errors])
        status, answer = await gateway.admin(method, path, body)
        assert status == expected, (method, path, status, answer)
    # A query parameter out of the documented range is refused as well.
    limit = {p["name"]: p for p in _operations(doc)[("GET", "/transactions")]["parameters"]}
    assert list(_validator(doc, limit["limit"]["schema"]).iter_errors(0))
    assert (await gateway.admin("GET", "/transactions?limit=0"))[0] == 400


def _response_schema(doc: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    answer = _operations(doc)[(method, path)]["responses"][str(status)]
    schema: dict[str, Any] = answer["content"]["application/json"]["schema"]
    assert schema != {}, (method, path, "the answer is typed")
    return schema


async def test_the_answers_are_what_the_document_says(gateway: Gateway) -> None:
    doc = await _document(gateway)
    calls: list[tuple[str, str, str, Any, int]] = [
        ("PUT", "/tariffs/{tariff_id}", "/tariffs/AC-STD", TARIFF, 201),
        ("GET", "/tariffs/{tariff_id}", "/tariffs/AC-STD", None, 200),
        ("GET", "/tariffs", "/tariffs", None, 200),
        ("PUT", "/locations/{location_id}", "/locations/LOC1", LOCATION, 201),
        (
            "PUT",
            "/chargers/{charger_id}",
            "/chargers/CP1",
            {
                "location_id": "LOC1",
                "password": "a" * 16,
                "evses": [{"ocpp_id": 1, "evse_uid": "CP1-1", "evse_id": "NL*ABC*E1"}],
            },
            201,
        ),
        ("GET", "/chargers/{charger_id}", "/chargers/CP1", None, 200),
        ("GET", "/chargers", "/chargers", None, 200),
        ("GET", "/locations/{location_id}", "/locations/LOC1", None, 200),
        ("GET", "/locations", "/locations", None, 200),
        (
            "PUT",
            "/tokens/{uid}",
            "/tokens/T1",
            {"expiry": "2027-01-01T00:00:00Z", "parent_id": "FLEET"},
            201,
        ),
        ("GET", "/tokens/{uid}", "/tokens/T1", None, 200),
        ("GET", "/tokens", "/tokens", None, 200),
        ("GET", "/transactions", "/transactions", None, 200),
        ("POST", "/partners", "/partners", {"name": "eMSP"}, 201),
        ("GET", "/partners", "/partners", None, 200),
        ("GET", "/outbox", "/outbox?include_body=true", None, 200),
        ("GET", "/cdrs/failed", "/cdrs/failed", None, 200),
    ]
    for method, template, path, body, expected in calls:
        status, answer = await gateway.admin(method, path, body)
        assert status == expected, (method, path, status, answer)
        schema = _response_schema(doc, method, template, status)
        errors = [e.message for e in _validator(doc, schema).iter_errors(answer)]
        assert errors == [], (method, path, errors)
    # An error answer is the documented shape too.
    status, answer = await gateway.admin("GET", "/chargers/NOPE")
    assert status == 404
    error_schema = _response_schema(doc, "GET", "/chargers/{charger_id}", 404)
    assert list(_validator(doc, error_schema).iter_errors(answer)) == []
    assert list(_validator(doc, error_schema).iter_errors({"error": 1})) != []
