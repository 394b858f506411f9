"""Real eMSP platforms in OCPI 2.1.1 and 2.3.0 for tests: aiohttp servers written from
each version's specification (release-2.1.1-bugfixes, release-2.3.0-bugfixes).

``VersionedEmsp(version="2.1.1")`` / ``VersionedEmsp(version="2.3.0")`` (or
:func:`emsp_v211`, :func:`emsp_v230`); ``async with`` starts and stops it.

* **Registered either way**: by the credentials handshake in its version, both ways
  (:meth:`~VersionedEmsp.register_with`: it registers at a CPO with versions, version
  details, credentials POST with its token B, the CPO's token C kept as ``cpo_token``;
  and its credentials Receiver, where a CPO registers with it using its token A), or
  put straight in a gateway's registry by :func:`register_directly` (REGISTERED in its
  version with its endpoints and party, for the outbound tests). 2.1.1 credentials carry
  one party at the top level; 2.3.0 a ``roles`` list.
* **Strict about the token form**: the token goes in the Authorization header
  unencoded in 2.1.1 (transport_and_format.md "Request format"), Base64-encoded in
  2.3.0; a token in the other form is refused (HTTP 401, counted in ``refused_auth``).
  ``also_offers`` lists more versions in its versions list (whose details it does not
  serve), to test negotiation.
* **Receiver interfaces**: PUT/PATCH of locations (``{cc}/{pid}/{location}[/{evse}
  [/{connector}]]``), PUT/PATCH of sessions, POST of CDRs, PUT/DELETE of tariffs, POST
  of command results at any ``commands/...`` URL (a response_url). Every body is checked
  by :func:`check`: the version's models (:mod:`ocpi.v211`, :mod:`ocpi.v230`), with no
  field the version's object lacks (the models ignore unknown fields: a 2.2.1
  ``country_code`` in a 2.1.1 Location would otherwise pass), and for 2.3.0 the official
  OpenAPI files. A valid request is recorded in ``received`` and kept (``locations``,
  ``sessions``, ``cdrs``, ``tariffs``, ``results``); an invalid one is answered HTTP 400
  with OCPI status 2001 (so the gateway's outbox fails it visibly) and listed in
  ``invalid`` (tests assert it stays empty). With ``forget``, every PATCH is answered
  "unknown object" (HTTP 404, OCPI 2003), as by an eMSP that lost what it was sent.
  ``headers`` keeps every request's headers (:meth:`~VersionedEmsp.routing_headers`).
* **Tokens Sender**: ``GET tokens`` (its ``tokens`` in its version, pages of at most
  ``page_limit``, ``Link`` to the next) and real-time authorization ``POST
  tokens/{uid}/authorize`` (``authorize``: uid -> allowed value; each asked in
  ``authorize_requests``; 2.1.1 answers AuthorizationInfo without token, 2.3.0 with the
  token and an authorization_reference). Both are recorded in ``received`` too.

``received`` holds (method, path with its query, body) of each request it took.

:meth:`~VersionedEmsp.call` calls the CPO with the token in this version's form;
:meth:`~VersionedEmsp.validate` checks an object the CPO served (``"locations",
"Location"``...) the same way.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ValidationError

import ocpi.v211 as v211
import ocpi.v230 as v230
from gateway.roaming.partners import PartnerEndpoint, PartnerStatus
from gateway.roaming.server import REGISTRY
from gateway.roaming.vault import hash_token
from ocpi.transport import format_validation_error, json_dumps, json_loads
from tests.conftest import Gateway
from tests.ocpi.openapi import openapi_errors
from tests.roaming.serving import (
    EMSP_ENDPOINTS,
    Served,
    not_found,
    ocpi_response,
    token_header,
    token_of,
)

ENDPOINTS = EMSP_ENDPOINTS
# The names under which tests/roaming/ptp.py (a subclass) knows them.
_ocpi = ocpi_response
_not_found = not_found

# (module, schema) -> the model of each version that must accept it.
_MODELS: dict[str, dict[tuple[str, str], type[BaseModel]]] = {
    "2.1.1": {
        ("locations", "Location"): v211.Location,
        ("locations", "EVSE"): v211.EVSE,
        ("locations", "Connector"): v211.Connector,
        ("locations", "LocationPatch"): v211.LocationPatch,
        ("locations", "EVSEPatch"): v211.EVSEPatch,
        ("locations", "ConnectorPatch"): v211.ConnectorPatch,
        ("sessions", "Session"): v211.Session,
        ("sessions", "SessionPatch"): v211.SessionPatch,
        ("cdrs", "CDR"): v211.CDR,
        ("tariffs", "Tariff"): v211.Tariff,
        ("tokens", "Token"): v211.Token,
        ("tokens", "LocationReferences"): v211.LocationReferences,
        ("tokens", "AuthorizationInfo"): v211.AuthorizationInfo,
        ("commands", "CommandResponse"): v211.CommandResponse,
        ("credentials", "Credentials"): v211.Credentials,
        ("versions", "VersionDetails"): v211.VersionDetails,
    },
    "2.3.0": {
        ("locations", "Location"): v230.Location,
        ("locations", "EVSE"): v230.EVSE,
        ("locations", "Connector"): v230.Connector,
        ("locations", "LocationPatch"): v230.LocationPatch,
        ("locations", "EVSEPatch"): v230.EVSEPatch,
        ("locations", "ConnectorPatch"): v230.ConnectorPatch,
        ("sessions", "Session"): v230.Session,
        ("sessions", "SessionPatch"): v230.SessionPatch,
        ("cdrs", "CDR"): v230.CDR,
        ("tariffs", "Tariff"): v230.Tariff,
        ("tokens", "Token"): v230.Token,
        ("tokens", "LocationReferences"): v230.LocationReferences,
        ("tokens", "AuthorizationInfo"): v230.AuthorizationInfo,
        ("commands", "CommandResult"): v230.CommandResult,
        ("commands", "CommandResponse"): v230.CommandResponse,
        ("credentials", "Credentials"): v230.Credentials,
        ("versions", "VersionDetails"): v230.VersionDetails,
        ("chargingprofiles", "ChargingProfileResponse"): v230.ChargingProfileResponse,
    },
}

# (module, method, number of path segments after the endpoint) -> the object a
# Receiver request's body is (command results: :func:`schema_of`).
OBJECTS = {
    ("locations", "PUT", 3): "Location",
    ("locations", "PUT", 4): "EVSE",
    ("locations", "PUT", 5): "Connector",
    ("locations", "PATCH", 3): "LocationPatch",
    ("locations", "PATCH", 4): "EVSEPatch",
    ("locations", "PATCH", 5): "ConnectorPatch",
    ("sessions", "PUT", 3): "Session",
    ("sessions", "PATCH", 3): "SessionPatch",
    ("tariffs", "PUT", 3): "Tariff",
    ("cdrs", "POST", 0): "CDR",
}


def schema_of(version: str, module: str, method: str, parts: int) -> str | None:
    """The object the body of a ``method`` request to ``module`` with ``parts`` path
    segments after the endpoint is (None: no body to check)."""
    if module == "commands" and method == "POST":  # a command result at the response_url
        return "CommandResponse" if version == "2.1.1" else "CommandResult"
    return OBJECTS.get((module, method, parts))


def unknown_fields(obj: Any, raw: Any, path: str = "") -> list[str]:
    """Paths of the fields in ``raw`` that the validated ``obj`` has no field for."""
    if isinstance(obj, BaseModel) and isinstance(raw, dict):
        fields = type(obj).model_fields
        found: list[str] = []
        for key, value in raw.items():
            where = f"{path}.{key}" if path else key
            if key not in fields:
                found.append(where)
            else:
                found += unknown_fields(getattr(obj, key), value, where)
        return found
    if isinstance(obj, list) and isinstance(raw, list):
        return [
            p
            for i, (o, r) in enumerate(zip(obj, raw, strict=False))
            for p in unknown_fields(o, r, f"{path}[{i}]")
        ]
    return []


def check(version: str, module: str, name: str, body: Any) -> list[str]:
    """Why ``body`` is not a ``name`` of ``version`` (empty when it is): the version's
    model, no field that object lacks, and for 2.3.0 the official OpenAPI schema."""
    model = _MODELS[version].get((module, name))
    if model is None:
        raise KeyError(f"no {version} model for {module}/{name}")
    try:
        obj = model.model_validate(body)
    except ValidationError as exc:
        return [f"{name}: {format_validation_error(exc)}"]
    problems = [f"{name}: unknown field {p}" for p in unknown_fields(obj, body)]
    if version == "2.3.0":
        problems += [
            f"{name} (OpenAPI): {e}" for e in openapi_errors(module, name, body, version="2.3.0")
        ]
    return problems


class Received(NamedTuple):
    method: str
    path: str
    body: Any


@dataclass
class VersionedEmsp(Served):
    version: str = "2.1.1"
    country_code: str = "NL"
    party_id: str = "EMV"
    name: str = "Versioned eMSP"
    also_offers: tuple[str, ...] = ()
    token_a: str = field(default_factory=lambda: "vemsp-a-" + secrets.token_hex(8))
    # The CPO calls us with token B.
    token_b: str = field(default_factory=lambda: "vemsp-b-" + secrets.token_hex(8))
    cpo_token: str | None = None  # what we use to call the CPO (its token C, or our B's answer)
    cpo_credentials: Any = None  # the CPO's credentials as we got them
    cpo_endpoints: dict[str, str] = field(default_factory=dict)  # module -> URL (CPO's)
    received: list[Received] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)  # of every request
    invalid: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, errors
    refused_auth: int = 0  # requests refused for a token in the wrong form
    # location id -> {"location": last full body, "evses": {uid: EVSE}}
    locations: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, Any] = field(default_factory=dict)
    cdrs: list[Any] = field(default_factory=list)
    tariffs: dict[str, Any] = field(default_factory=dict)
    results: list[tuple[str, Any]] = field(default_factory=list)  # (path, body) at response_urls
    tokens: list[dict[str, Any]] = field(default_factory=list)  # served by GET tokens
    page_limit: int = 2  # the most tokens a GET tokens page has
    authorize: dict[str, str] = field(default_factory=dict)  # uid -> allowed
    authorize_requests: list[tuple[str, Any]] = field(default_factory=list)  # uid, body
    forget: bool = False  # every PATCH answered "unknown object"
    url: str = ""
    # (prefix, replacement) for the URLs it calls: a gateway's advertised base URL
    # (settings) and where it listens in a test differ.
    rewrite: tuple[str, str] | None = None
    _runner: web.AppRunner | None = None

    # -- version specifics -----------------------------------------------------------

    @property
    def base(self) -> str:
        return f"/ocpi/emsp/{self.version}"

    @property
    def encodes(self) -> bool:
        return self.version != "2.1.1"

    def header(self, token: str) -> dict[str, str]:
        """The Authorization header in this version's form."""
        return token_header(token, encoded=self.encodes)

    def errors(self, module: str, schema: str, obj: Any) -> list[str]:
        """What is wrong with ``obj`` as this version's ``schema`` (empty: valid)."""
        return check(self.version, module, schema, obj)

    def validate(self, module: str, schema: str, obj: Any) -> None:
        problems = self.errors(module, schema, obj)
        assert not problems, f"OCPI {self.version} {module}/{schema} invalid: {problems}\n{obj}"

    def role(self) -> dict[str, Any]:
        """Its party as a 2.2+ CredentialsRole."""
        details = {"name": self.name}
        return {
            "role": "EMSP",
            "business_details": details,
            "party_id": self.party_id,
            "country_code": self.country_code,
        }

    def credentials(self, token: str) -> dict[str, Any]:
        url = f"{self.url}/ocpi/emsp/versions"
        if self.version == "2.1.1":
            party = {k: v for k, v in self.role().items() if k != "role"}
            return {"token": token, "url": url, **party}
        return {"token": token, "url": url, "roles": [self.role()]}

    def token(self, uid: str, whitelist: str = "ALWAYS", valid: bool = True) -> dict[str, Any]:
        """A Token of this eMSP in its version."""
        contract = f"{self.country_code}-{self.party_id}-C{uid[-5:]}"
        token: dict[str, Any] = {
            "uid": uid,
            "type": "RFID",
            "issuer": self.name,
            "valid": valid,
            "whitelist": whitelist,
            "last_updated": "2026-11-23T08:00:00Z",
        }
        if self.version == "2.1.1":
            return token | {"auth_id": contract}
        return token | {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "contract_id": contract,
        }

    def endpoints(self) -> tuple[PartnerEndpoint, ...]:
        """Its module endpoints, as the gateway keeps them (credentials aside)."""
        return tuple(
            PartnerEndpoint(m, r, f"{self.url}{self.base}/{m}")
            for m, r in ENDPOINTS
            if m != "credentials"
        )

    # -- what tests read ------------------------------------------------------------------

    def taken(self, module: str, method: str | None = None) -> list[Received]:
        """The requests of ``module`` it took, in order."""
        return [
            r for r in self.received
            if r.path.startswith(f"{self.base}/{module}") and (method is None or r.method == method)
        ]  # fmt: skip

    def evse_status(self, location_id: str, uid: str) -> str | None:
        evse = self.locations.get(location_id, {}).get("evses", {}).get(uid)
        return None if evse is None else str(evse.get("status"))

    def routing_headers(self) -> set[str]:
        """The OCPI-from/to-* header names any request to us carried."""
        return {k for h in self.headers for k in h if re.match(r"(?i)ocpi-(from|to)-", k)}

    # -- the server -------------------------------------------------------------------------

    def _token_of(self, request: web.Request) -> str | None:
        return token_of(request, encoded=self.encodes)

    def _authorized(self, request: web.Request, *tokens: str) -> bool:
        if self._token_of(request) in tokens:
            return True
        self.refused_auth += 1
        return False

    def _reject(self, request: web.Request, problems: list[str]) -> web.Response:
        self.invalid.append((request.method, request.path, "; ".join(problems)))
        return ocpi_response(http=400, code=2001, message="; ".join(problems)[:500])

    async def _versions(self, request: web.Request) -> web.Response:
        if not self._authorized(request, self.token_a, self.token_b):
            return web.Response(status=401)
        offered = sorted({self.version, *self.also_offers})
        return ocpi_response([{"version": v, "url": f"{self.url}/ocpi/emsp/{v}"} for v in offered])

    async def _details(self, request: web.Request) -> web.Response:
        if not self._authorized(request, self.token_a, self.token_b):
            return web.Response(status=401)
        if self.version == "2.1.1":  # one endpoint per module, no role
            modules = dict.fromkeys(m for m, _ in ENDPOINTS)
            endpoints = [{"identifier": m, "url": f"{self.url}{self.base}/{m}"} for m in modules]
        else:
            endpoints = [
                {"identifier": m, "role": r, "url": f"{self.url}{self.base}/{m}"}
                for m, r in ENDPOINTS
            ]
        details = {"version": self.version, "endpoints": endpoints}
        self.validate("versions", "VersionDetails", details)
        return ocpi_response(details)

    async def _post_credentials(self, request: web.Request) -> web.Response:
        # A CPO registers with us using our token A.
        if not self._authorized(request, self.token_a):
            return web.Response(status=401)
        body = json_loads(await request.read())
        problems = self.errors("credentials", "Credentials", body)
        if problems:
            return self._reject(request, problems)
        self.cpo_credentials = body
        self.cpo_token = body["token"]
        return ocpi_response(self.credentials(self.token_b))

    async def _module(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request, self.token_b):
            return web.Response(status=401)
        raw = await request.read()
        body = json_loads(raw) if raw else None
        rest = request.path.removeprefix(self.base + "/")
        module, _, tail = rest.partition("/")
        parts = tail.split("/") if tail else []
        if any(not p for p in parts):
            return not_found()
        if module == "tokens":
            return self._tokens(request, parts, body)
        if not self._serves(request.method, module, parts):
            return not_found()
        schema = schema_of(self.version, module, request.method, len(parts))
        if schema is not None:
            problems = self.errors(module, schema, body)
            if problems:
                return self._reject(request, problems)
        self.received.append(Received(request.method, request.path_qs, body))
        if self.forget and request.method == "PATCH":
            return ocpi_response(http=404, code=2003, message="Unknown object")
        return self._store(request.method, module, parts, body)

    @staticmethod
    def _serves(method: str, module: str, parts: list[str]) -> bool:
        """Whether a Receiver URL of ours takes ``method``."""
        if module == "locations":
            return 3 <= len(parts) <= 5 and method in ("PUT", "PATCH")
        if module == "sessions":
            return len(parts) == 3 and method in ("PUT", "PATCH")
        if module == "cdrs":
            return not parts and method == "POST"
        if module == "tariffs":
            return len(parts) == 3 and method in ("PUT", "DELETE")
        return module == "commands" and method == "POST"

    def _store(self, method: str, module: str, parts: list[str], body: Any) -> web.Response:
        if module == "locations":
            location_id = parts[2]
            held = self.locations.setdefault(location_id, {"location": {}, "evses": {}})
            if len(parts) == 3:
                if method == "PUT":
                    held["location"] = body
                    held["evses"] = {e["uid"]: e for e in body.get("evses") or []}
                else:
                    held["location"] = held["location"] | body
            elif len(parts) == 4:
                uid = parts[3]
                held["evses"][uid] = body if method == "PUT" else held["evses"].get(uid, {}) | body
        elif module == "sessions":
            session_id = parts[2]
            self.sessions[session_id] = (
                body if method == "PUT" else self.sessions.get(session_id, {}) | body
            )
        elif module == "cdrs":
            self.cdrs.append(body)
            return ocpi_response(http=201)
        elif module == "tariffs":
            if method == "PUT":
                self.tariffs[parts[2]] = body
            else:
                self.tariffs.pop(parts[2], None)
        elif module == "commands":
            self.results.append(("/".join(parts), body))
        return ocpi_response()

    def _tokens(self, request: web.Request, parts: list[str], body: Any) -> web.Response:
        if request.method == "GET" and not parts:
            # mod_tokens Sender GET: paginated (offset/limit, Link to the next page).
            offset = int(request.query.get("offset", "0"))
            limit = min(int(request.query.get("limit", str(self.page_limit))), self.page_limit)
            page = [self.token(t["uid"]) | t for t in self.tokens[offset : offset + limit]]
            for token in page:
                self.validate("tokens", "Token", token)
            headers = {"X-Total-Count": str(len(self.tokens)), "X-Limit": str(self.page_limit)}
            if offset + limit < len(self.tokens):
                headers["Link"] = (
                    f'<{self.url}{self.base}/tokens?offset={offset + limit}&limit={limit}>; rel="next"'
                )
            self.received.append(Received("GET", request.path_qs, None))
            return ocpi_response(page, headers=headers)
        if request.method == "POST" and len(parts) == 2 and parts[1] == "authorize":
            uid = parts[0]
            self.received.append(Received("POST", request.path_qs, body))
            self.authorize_requests.append((uid, body))
            if body is not None:
                problems = self.errors("tokens", "LocationReferences", body)
                if problems:
                    return self._reject(request, problems)
            allowed = self.authorize.get(uid, "NOT_ALLOWED")
            info: dict[str, Any] = {"allowed": allowed}
            if self.version == "2.1.1":  # mod_tokens 2.1.1 AuthorizationInfo
                if body is not None:
                    info["location"] = body
            else:
                info |= {
                    "token": self.token(uid, "NEVER"),
                    "authorization_reference": f"AUTH-{uid}",
                }
            self.validate("tokens", "AuthorizationInfo", info)
            return ocpi_response(info)
        return not_found()

    def app(self) -> web.Application:
        # The version in the URL is read at request time: a test may move the platform to
        # another version (``emsp.version = "2.3.0"``) and PUT its credentials there.
        @web.middleware
        async def own_version(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.headers.append(dict(request.headers))
            version = request.match_info.get("version")
            if version is not None and version != self.version:
                return not_found()
            return await handler(request)

        app = web.Application(middlewares=[own_version])
        app.router.add_get("/ocpi/emsp/versions", self._versions)
        app.router.add_get("/ocpi/emsp/{version}", self._details)
        app.router.add_get("/ocpi/emsp/{version}/", self._details)
        app.router.add_post("/ocpi/emsp/{version}/credentials", self._post_credentials)
        app.router.add_route("*", "/ocpi/emsp/{version}/{tail:.+}", self._module)
        return app

    # -- the client side --------------------------------------------------------------------

    async def call(
        self, method: str, url: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """A request to the CPO with ``token`` (default: ``cpo_token``) in this version's
        form: (HTTP status, headers, JSON body)."""
        token = token or self.cpo_token
        assert token is not None, "not registered"
        if self.rewrite is not None:
            url = url.replace(*self.rewrite)
        data = None if body is None else json_dumps(body).encode()
        headers = self.header(token) | ({"Content-Type": "application/json"} if data else {})
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, url, data=data, headers=headers) as r,
        ):
            return r.status, dict(r.headers), await r.json()

    async def register_with(self, versions_url: str, token_a: str) -> dict[str, Any]:
        """Register at a CPO in this version (the CPO's token A): the CPO's credentials."""
        status, _, versions = await self.call("GET", versions_url, token=token_a)
        assert (status, versions["status_code"]) == (200, 1000), versions
        mine = [v for v in versions["data"] if v["version"] == self.version]
        assert mine, f"the CPO offers no {self.version}: {versions['data']}"
        status, _, details = await self.call("GET", mine[0]["url"], token=token_a)
        assert (status, details["status_code"]) == (200, 1000), details
        self.validate("versions", "VersionDetails", details["data"])
        self.cpo_endpoints = {e["identifier"]: e["url"] for e in details["data"]["endpoints"]}
        status, _, answer = await self.call(
            "POST", self.cpo_endpoints["credentials"], self.credentials(self.token_b), token=token_a
        )
        assert (status, answer["status_code"]) == (200, 1000), answer
        self.validate("credentials", "Credentials", answer["data"])
        self.cpo_credentials = answer["data"]
        self.cpo_token = answer["data"]["token"]
        return dict(answer["data"])

    async def get_all(self, url: str) -> list[Any]:
        """Every object of a paginated list, following ``Link`` (each page validated as
        an OCPI envelope)."""
        items: list[Any] = []
        next_url: str | None = url
        while next_url is not None:
            status, headers, body = await self.call("GET", next_url)
            assert (status, body["status_code"]) == (200, 1000), body
            items += body["data"]
            link = headers.get("Link")
            next_url = link.split(";")[0].strip().strip("<>") if link else None
        return items


async def register_directly(gateway: Gateway, emsp: VersionedEmsp) -> str:
    """The partner REGISTERED in ``emsp.version`` straight in the gateway's registry, no
    handshake: its token B, endpoints, party and version set, and the token it calls the
    gateway with as its ``cpo_token``. The partner's id."""
    registry = gateway.app[REGISTRY]
    partner, _ = await registry.create(f"eMSP {emsp.version}")
    emsp.cpo_token = "cpo-" + secrets.token_hex(8)
    registered = replace(
        partner,
        status=PartnerStatus.REGISTERED,
        token_a_hash=None,
        our_token_hash=hash_token(emsp.cpo_token),
        their_token=emsp.token_b,
        versions_url=f"{emsp.url}/ocpi/emsp/versions",
        version=emsp.version,
        endpoints=emsp.endpoints(),
        roles=(emsp.role(),),
    )
    await registry._save(registered)
    return partner.id


def emsp_v211(**kwargs: Any) -> VersionedEmsp:
    return VersionedEmsp(version="2.1.1", **kwargs)


def emsp_v230(**kwargs: Any) -> VersionedEmsp:
    return VersionedEmsp(version="2.3.0", **kwargs)
