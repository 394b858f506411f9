"""The admin API's routes, declared once: each route is registered and documented by the
same declaration, and the OpenAPI 3.1 document is generated from what is registered.

A route is declared with :func:`get`, :func:`put`, :func:`post` or :func:`delete` instead of
``web.get`` and friends (same path and handler, plus a summary and the pydantic models that
validate its body and query)::

    api.get("/trail", trail, "The message trail", query=TrailQuery, response=list[TrailEntry],
            errors={404: "no such charger"})

and added to the admin application with :func:`add_routes` (``admin_routes`` does). The
document (:func:`openapi_document`) walks the application's router: the schemas of bodies
and queries are those of the models the handlers validate with (``read_body`` /
``read_query``), responses those of the declared types (pydantic models, or the
``TypedDict`` a view function is typed to return, which mypy holds the view to). A route
added with a plain ``web.get`` still works, but shows in the document as
``x-undocumented`` and fails ``tests/test_admin_openapi.py``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired

from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import UrlDispatcher
from pydantic import TypeAdapter
from typing_extensions import TypedDict

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Mode = Literal["validation", "serialization"]

REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


class ErrorView(TypedDict):
    """Every error of the admin API (``gateway.admin.http.error_response``)."""

    error: str
    field: NotRequired[str]


@dataclass(frozen=True, slots=True)
class Derived:
    """A body schema made from a model's schema by ``transform`` (given a deep copy of it
    and the other components, to read): for bodies that a service validates with a model
    after setting fields of its own (an OCPI Tariff without the ``id`` and
    ``last_updated`` the gateway sets)."""

    name: str
    model: Any
    transform: Callable[[dict[str, Any], Mapping[str, Any]], dict[str, Any]]


def referenced(schema: Any, components: Mapping[str, Any]) -> dict[str, Any]:
    """The component the first ``$ref`` within ``schema`` names (for :class:`Derived`
    transforms: a model's component names depend on where else it is used)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            found: dict[str, Any] = components[schema["$ref"].rsplit("/", 1)[1]]
            return found
        values: list[Any] = list(schema.values())
    elif isinstance(schema, list):
        values = schema
    else:
        values = []
    for value in values:
        if isinstance(value, dict | list):
            try:
                return referenced(value, components)
            except LookupError:
                continue
    raise LookupError("no $ref")


# Success statuses that answer no body.
_NO_BODY = {204}

_ERROR_TEXT = {
    400: "bad request: a body that is not JSON, or a bad query parameter or path segment",
    401: "missing or wrong bearer token",
    404: "not found",
    408: "the body did not arrive within GATEWAY_REQUEST_READ_TIMEOUT",
    409: "conflict",
    422: "the body breaks a rule; `field` names the field",
    502: "the charger answered with a CALLERROR",
    503: "the service is not started yet",
    504: "the charger did not answer in time",
}

CHARGER_ERRORS: Mapping[int, str] = {
    404: "no such charger",
    409: "the charger is not connected",
    422: "the charger's OCPP version cannot carry the request",
    502: _ERROR_TEXT[502],
    504: _ERROR_TEXT[504],
}
"""The errors of a request carried to a charger (README "Admin API")."""


@dataclass(frozen=True, slots=True)
class Operation(web.AbstractRouteDef):
    """One admin route and its documentation. ``body``: the model (or models, any of
    which) the handler validates the body with; ``query``: the model of the query;
    ``response``: the type of the answer (None: JSON not described); ``statuses``: the
    success statuses (204 answers no body); ``errors``: the statuses beyond those every
    route has (401; 400, 408 and 422 follow from ``body`` and ``query``)."""

    method: str
    path: str
    handler: Handler
    summary: str
    description: str | None = None
    body: Any = None
    body_required: bool = True
    query: Any = None
    response: Any = None
    statuses: Mapping[int, str] = field(default_factory=lambda: {200: "OK"})
    errors: Mapping[int, str] = field(default_factory=dict)
    path_params: Mapping[str, str] = field(default_factory=dict)
    tag: str | None = None
    public: bool = False
    content_type: str = "application/json"

    def register(self, router: UrlDispatcher) -> list[web.AbstractRoute]:
        if self.method == hdrs.METH_GET:  # as web.get: HEAD too
            return [router.add_get(self.path, self.handler)]
        return [router.add_route(self.method, self.path, self.handler)]


def _declare(method: str) -> Callable[..., Operation]:
    def declare(path: str, handler: Handler, summary: str, **kwargs: Any) -> Operation:
        return Operation(method, path, handler, summary, **kwargs)

    declare.__name__ = method.lower()
    declare.__doc__ = f"Declare ``{method} path``: see :class:`Operation` for the keywords."
    return declare


get = _declare(hdrs.METH_GET)
put = _declare(hdrs.METH_PUT)
post = _declare(hdrs.METH_POST)
delete = _declare(hdrs.METH_DELETE)
patch = _declare(hdrs.METH_PATCH)

OPERATIONS = web.AppKey("admin_operations", dict[web.AbstractRoute, Operation])
_DOCUMENTS = web.AppKey("admin_openapi_documents", dict[str, bytes])


def add_routes(app: web.Application, routes: Iterable[web.AbstractRouteDef]) -> None:
    """Register ``routes`` on ``app`` and remember the declared ones for the document."""
    declared = app.setdefault(OPERATIONS, {})
    app.setdefault(_DOCUMENTS, {})
    for route_def in routes:
        for route in route_def.register(app.router):
            if isinstance(route_def, Operation):
                declared[route] = route_def


# -- the document -----------------------------------------------------------------


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without the ``null`` of an optional field (a query
    parameter is absent or a string, never null)."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1 and len(rest) < len(options):
            merged = {k: v for k, v in schema.items() if k != "anyOf"}
            schema = {**rest[0], **merged}
    if schema.get("default", 0) is None:
        del schema["default"]  # absent, rather
    return schema


class _Schemas:
    """Collects the types a document names and generates their schemas in one pass, so
    that a model used in several places is one component."""

    def __init__(self) -> None:
        self._wanted: dict[tuple[int, Mode], tuple[Any, Mode]] = {}
        self._derived: dict[str, Derived] = {}

    def want(self, tp: Any, mode: Mode) -> Callable[[], dict[str, Any]]:
        if isinstance(tp, Derived):
            self._derived[tp.name] = tp
            self.want(tp.model, "validation")
            return lambda: {"$ref": REF.format(model=tp.name)}
        key = (id(tp), mode)
        self._wanted[key] = (tp, mode)
        return lambda: self._done[key]

    def generate(self) -> dict[str, Any]:
        inputs = [(key, mode, TypeAdapter(tp)) for key, (tp, mode) in self._wanted.items()]
        schemas, defs = TypeAdapter.json_schemas(inputs, ref_template=REF)
        self._done = {key: schema for (key, _mode), schema in schemas.items()}
        components: dict[str, Any] = dict(defs.get("$defs", {}))
        for name, derived in self._derived.items():
            base = self._done[(id(derived.model), "validation")]
            if "$ref" in base:
                base = components[base["$ref"].rsplit("/", 1)[1]]
            components[name] = derived.transform(copy.deepcopy(base), components)
        return components


def _parameters(
    op: Operation,
    path: str,
    query: Callable[[], dict[str, Any]] | None,
    components: Mapping[str, Any],
) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            **({"description": op.path_params[name]} if name in op.path_params else {}),
        }
        for name in _PARAM.findall(path)
    ]
    if query is not None:
        schema = query()
        if "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[1]]
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            prop = _without_null(dict(prop))
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
            if "description" in prop:
                param["description"] = prop["description"]
            param["schema"] = prop
            params.append(param)
    return params


def openapi_document(app: web.Application, prefix: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of the admin application ``app``: every route its router
    holds (HEAD beside GET aside), as declared; ``prefix`` is where it is mounted
    (``/admin``; its routes' paths carry it once it is)."""
    declared = app.get(OPERATIONS, {})
    schemas = _Schemas()
    error = schemas.want(ErrorView, "serialization")
    planned: list[tuple[str, str, Operation | None, dict[str, Any]]] = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None:
            continue
        path = resource.canonical.removeprefix(prefix) or "/"
        op = declared.get(route)
        if route.method == hdrs.METH_HEAD and (op is None or op.method == hdrs.METH_GET):
            continue
        refs: dict[str, Any] = {}
        if op is not None:
            if op.body is not None:
                bodies = op.body if isinstance(op.body, tuple) else (op.body,)
                refs["body"] = [schemas.want(b, "validation") for b in bodies]
            if op.query is not None:
                refs["query"] = schemas.want(op.query, "validation")
            if op.response is not None:
                refs["response"] = schemas.want(op.response, "serialization")
        planned.append((route.method, path, op, refs))
    components = schemas.generate()

    paths: dict[str, dict[str, Any]] = {}
    for method, path, op, refs in planned:
        item = paths.setdefault(path, {})
        if op is None:
            item[method.lower()] = {
                "operationId": _operation_id(method, path),
                "summary": "UNDOCUMENTED: declare it with gateway.admin.openapi",
                "x-undocumented": True,
                "parameters": _parameters(_UNDECLARED, path, None, components),
                "responses": {"default": {"description": "not described"}},
            }
            continue
        item[method.lower()] = _operation(op, path, refs, error, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ocpi-gateway admin API",
            "version": "1",
            "description": (
                'The operator\'s API of the gateway (README "Admin API"). Errors are '
                '`{"error": reason, "field": name?}`.'
            ),
        },
        "servers": [{"url": prefix or "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the admin token (GATEWAY_ADMIN_TOKEN, or data_dir/admin_token)",
                }
            },
        },
    }


async def _undeclared(request: web.Request) -> web.StreamResponse:  # pragma: no cover
    raise web.HTTPNotFound()


_UNDECLARED = Operation(hdrs.METH_GET, "/", _undeclared, "")


def _operation_id(method: str, path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", f"{method} {path}".lower()).strip("_")


def _operation(
    op: Operation,
    path: str,
    refs: dict[str, Any],
    error: Callable[[], dict[str, Any]],
    components: Mapping[str, Any],
) -> dict[str, Any]:
    tag = op.tag or path.strip("/").split("/")[0] or "admin"
    out: dict[str, Any] = {
        "operationId": _operation_id(op.method, path),
        "summary": op.summary,
        "tags": [tag],
    }
    if op.description:
        out["description"] = op.description
    if op.public:
        out["security"] = []
    params = _parameters(op, path, refs.get("query"), components)
    if params:
        out["parameters"] = params
    if "body" in refs:
        schemas = [want() for want in refs["body"]]
        schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": schema}},
        }
    responses: dict[str, Any] = {}
    for status, text in sorted(op.statuses.items()):
        answer: dict[str, Any] = {"description": text}
        if status not in _NO_BODY:
            schema = refs["response"]() if "response" in refs else {}
            answer["content"] = {op.content_type: {"schema": schema}}
        responses[str(status)] = answer
    errors: dict[int, str] = {}
    if not op.public:
        errors[401] = _ERROR_TEXT[401]
    if "body" in refs or "query" in refs or _PARAM.search(path):
        errors[400] = _ERROR_TEXT[400]
    if "body" in refs:
        errors[408] = _ERROR_TEXT[408]
        errors[422] = _ERROR_TEXT[422]
    for status, text in op.errors.items():
        text = text or _ERROR_TEXT.get(status, "error")
        # A route's own reason beside the one its body or query implies.
        errors[status] = f"{errors[status]}; or {text}" if status in errors else text
    for status, text in sorted(errors.items()):
        responses[str(status)] = {
            "description": text,
            "content": {"application/json": {"schema": error()}},
        }
    out["responses"] = responses
    return out


def document_bytes(app: web.Application, prefix: str) -> bytes:
    """The document as JSON, made once per application and prefix (the routes do not
    change once the application runs)."""
    cache = app[_DOCUMENTS]
    if prefix not in cache:
        cache[prefix] = json.dumps(openapi_document(app, prefix), indent=1).encode()
    return cache[prefix]
