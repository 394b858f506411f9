"""Real eMSP platforms in OCPI 2.1.1 and 2.3.0 for tests: aiohttp servers written from
each version's specification (release-2.1.1-bugfixes, release-2.3.0-bugfixes).

``VersionedEmsp(version="2.1.1")`` / ``VersionedEmsp(version="2.3.0")`` (or
:func:`emsp_v211`, :func:`emsp_v230`):

* **Handshake in its version**, both ways: :meth:`register_with` (it registers at a
  CPO: versions, version details, credentials POST with its token B, the CPO's token C
  kept as ``cpo_token``) and its credentials Receiver (a CPO registers with it using its
  token A). 2.1.1 credentials carry one party at the top level; 2.3.0 a ``roles`` list.
  The token goes in the Authorization header unencoded in 2.1.1 (transport_and_format.md
  "Request format"), Base64-encoded in 2.3.0; it refuses (HTTP 401) a token in the other
  form, as a strict peer would. ``also_offers`` lists more versions in its versions list
  (whose details it does not serve), to test negotiation.
* **Receiver interfaces**: PUT/PATCH of locations (``{cc}/{pid}/{location}[/{evse}
  [/{connector}]]``), PUT/PATCH of sessions, POST of CDRs, PUT/DELETE of tariffs, POST of
  command results at any ``commands/...`` URL (a response_url): every body is validated
  against the version's models (2.3.0: also the official OpenAPI files); a valid one is
  recorded in ``received`` and kept (``locations``, ``sessions``, ``cdrs``, ``tariffs``,
  ``results``), an invalid one is answered 2001 and listed in ``invalid`` (tests assert
  it stays empty).
* **Tokens Sender**: ``GET tokens`` (paginated, its ``tokens`` in its version) and
  real-time authorization ``POST tokens/{uid}/authorize`` (``authorize``: uid ->
  allowed value; 2.1.1 answers AuthorizationInfo without token, 2.3.0 with the token and
  an authorization_reference).

:meth:`call` calls the CPO with the token in this version's form; :meth:`validate`
checks an object the CPO served (``"locations", "Location"``...) the same way.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ValidationError

import ocpi.v211 as v211
import ocpi.v230 as v230
from ocpi.transport import envelope, json_dumps, json_loads
from tests.ocpi.openapi import openapi_errors

ENDPOINTS = [
    ("credentials", "SENDER"),
    ("credentials", "RECEIVER"),
    ("locations", "RECEIVER"),
    ("tariffs", "RECEIVER"),
    ("sessions", "RECEIVER"),
    ("cdrs", "RECEIVER"),
    ("tokens", "SENDER"),
    ("commands", "SENDER"),
]

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
        ("commands", "CommandResult"): v230.CommandResult,
        ("commands", "CommandResponse"): v230.CommandResponse,
        ("credentials", "Credentials"): v230.Credentials,
        ("versions", "VersionDetails"): v230.VersionDetails,
        ("chargingprofiles", "ChargingProfileResponse"): v230.ChargingProfileResponse,
    },
}


def _ocpi(data: Any = None, *, http: int = 200, code: int = 1000, message: str | None = None,
          headers: dict[str, str] | None = None) -> web.Response:  # fmt: skip
    body = envelope(data, status_code=code, status_message=message)
    return web.Response(text=json_dumps(body), status=http, content_type="application/json", headers=headers)


def _not_found() -> web.Response:
    return web.Response(status=404, text="<html>no such page</html>", content_type="text/html")


@dataclass
class Received:
    method: str
    path: str
    body: Any


@dataclass
class VersionedEmsp:
    version: str = "2.1.1"
    country_code: str = "NL"
    party_id: str = "EMV"
    name: str = "Versioned eMSP"
    also_offers: tuple[str, ...] = ()
    token_a: str = field(default_factory=lambda: "vemsp-a-" + secrets.token_hex(8))
    token_b: str = field(default_factory=lambda: "vemsp-b-" + secrets.token_hex(8))
    cpo_token: str | None = None  # what we use to call the CPO (its token C, or our B's answer)
    cpo_credentials: Any = None  # the CPO's credentials as we got them
    cpo_endpoints: dict[str, str] = field(default_factory=dict)  # module -> URL (CPO's)
    received: list[Received] = field(default_factory=list)
    invalid: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, errors
    refused_auth: int = 0  # requests refused for a token in the wrong form
    locations: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"location", "evses"}
    sessions: dict[str, Any] = field(default_factory=dict)
    cdrs: list[Any] = field(default_factory=list)
    tariffs: dict[str, Any] = field(default_factory=dict)
    results: list[tuple[str, Any]] = field(default_factory=list)  # (path, body) at response_urls
    tokens: list[dict[str, Any]] = field(default_factory=list)  # served by GET tokens
    authorize: dict[str, str] = field(default_factory=dict)  # uid -> allowed
    authorize_requests: list[tuple[str, Any]] = field(default_factory=list)
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
        value = base64.b64encode(token.encode()).decode() if self.encodes else token
        return {"Authorization": f"Token {value}"}

    def errors(self, module: str, schema: str, obj: Any) -> list[str]:
        """What is wrong with ``obj`` as this version's ``schema`` (empty: valid)."""
        problems: list[str] = []
        model = _MODELS[self.version].get((module, schema))
        if model is None:
            raise KeyError(f"no {self.version} model for {module}/{schema}")
        try:
            model.model_validate(obj)
        except ValidationError as exc:
            problems.append(str(exc))
        if self.version == "2.3.0":
            problems += openapi_errors(module, schema, obj, version="2.3.0")
        return problems

    def validate(self, module: str, schema: str, obj: Any) -> None:
        problems = self.errors(module, schema, obj)
        assert not problems, f"OCPI {self.version} {module}/{schema} invalid: {problems}\n{obj}"

    def credentials(self, token: str) -> dict[str, Any]:
        details = {"name": self.name}
        if self.version == "2.1.1":
            return {
                "token": token,
                "url": f"{self.url}/ocpi/emsp/versions",
                "business_details": details,
                "party_id": self.party_id,
                "country_code": self.country_code,
            }
        return {
            "token": token,
            "url": f"{self.url}/ocpi/emsp/versions",
            "roles": [
                {
                    "role": "EMSP",
                    "business_details": details,
                    "party_id": self.party_id,
                    "country_code": self.country_code,
                }
            ],
        }

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
        return token | {"country_code": self.country_code, "party_id": self.party_id, "contract_id": contract}

    # -- what tests read ------------------------------------------------------------------

    def taken(self, module: str, method: str | None = None) -> list[Received]:
        return [
            r for r in self.received
            if r.path.startswith(f"{self.base}/{module}") and (method is None or r.method == method)
        ]  # fmt: skip

    def evse_status(self, location_id: str, uid: str) -> str | None:
        evse = self.locations.get(location_id, {}).get("evses", {}).get(uid)
        return None if evse is None else str(evse.get("status"))

    # -- the server -------------------------------------------------------------------------

    def _token_of(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Token "):
            return None
        value = header[6:]
        if not self.encodes:
            return value
        try:
            return base64.b64decode(value, validate=True).decode()
        except ValueError:
            return None

    def _authorized(self, request: web.Request, *tokens: str) -> bool:
        if self._token_of(request) in tokens:
            return True
        self.refused_auth += 1
        return False

    async def _versions(self, request: web.Request) -> web.Response:
        if not self._authorized(request, self.token_a, self.token_b):
            return web.Response(status=401)
        offered = sorted({self.version, *self.also_offers})
        return _ocpi([{"version": v, "url": f"{self.url}/ocpi/emsp/{v}"} for v in offered])

    async def _details(self, request: web.Request) -> web.Response:
        if not self._authorized(request, self.token_a, self.token_b):
            return web.Response(status=401)
        if self.version == "2.1.1":  # one endpoint per module, no role
            modules = dict.fromkeys(m for m, _ in ENDPOINTS)
            endpoints = [{"identifier": m, "url": f"{self.url}{self.base}/{m}"} for m in modules]
        else:
            endpoints = [{"identifier": m, "role": r, "url": f"{self.url}{self.base}/{m}"} for m, r in ENDPOINTS]
        details = {"version": self.version, "endpoints": endpoints}
        self.validate("versions", "VersionDetails", details)
        return _ocpi(details)

    async def _post_credentials(self, request: web.Request) -> web.Response:
        # A CPO registers with us using our token A.
        if not self._authorized(request, self.token_a):
            return web.Response(status=401)
        body = json_loads(await request.read())
        problems = self.errors("credentials", "Credentials", body)
        if problems:
            self.invalid.append(("POST", request.path, "; ".join(problems)))
            return _ocpi(code=2001, message="; ".join(problems))
        self.cpo_credentials = body
        self.cpo_token = body["token"]
        return _ocpi(self.credentials(self.token_b))

    async def _module(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request, self.token_b):
            return web.Response(status=401)
        raw = await request.read()
        body = json_loads(raw) if raw else None
        rest = request.path.removeprefix(self.base + "/")
        module, _, tail = rest.partition("/")
        parts = tail.split("/") if tail else []
        if any(not p for p in parts):
            return _not_found()
        if module == "tokens":
            return self._tokens(request, parts, body)
        check = self._check(request.method, module, parts, body)
        if check is None:
            return _not_found()
        problems = self.errors(module, check, body)
        if problems:
            self.invalid.append((request.method, request.path, "; ".join(problems)))
            return _ocpi(code=2001, message="; ".join(problems)[:500])
        self.received.append(Received(request.method, request.path, body))
        return self._store(request.method, module, parts, body)

    def _check(self, method: str, module: str, parts: list[str], body: Any) -> str | None:
        """The schema a request's body must be (None: no such URL here)."""
        if module == "locations" and 3 <= len(parts) <= 5 and method in ("PUT", "PATCH"):
            kind = ("Location", "EVSE", "Connector")[len(parts) - 3]
            return kind + ("Patch" if method == "PATCH" else "")
        if module == "sessions" and len(parts) == 3 and method in ("PUT", "PATCH"):
            return "Session" + ("Patch" if method == "PATCH" else "")
        if module == "cdrs" and not parts and method == "POST":
            return "CDR"
        if module == "tariffs" and len(parts) == 3 and method in ("PUT", "DELETE"):
            return "Tariff" if method == "PUT" else None
        if module == "commands" and method == "POST":
            return "CommandResponse" if self.version == "2.1.1" else "CommandResult"
        return None

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
            self.sessions[session_id] = body if method == "PUT" else self.sessions.get(session_id, {}) | body
        elif module == "cdrs":
            self.cdrs.append(body)
            return _ocpi(http=201)
        elif module == "tariffs":
            self.tariffs[parts[2]] = body
        elif module == "commands":
            self.results.append(("/".join(parts), body))
        return _ocpi()

    def _tokens(self, request: web.Request, parts: list[str], body: Any) -> web.Response:
        if request.method == "GET" and not parts:
            offset = int(request.query.get("offset", "0"))
            limit = int(request.query.get("limit", "50"))
            page = [self.token(t["uid"]) | t for t in self.tokens[offset : offset + limit]]
            for token in page:
                self.validate("tokens", "Token", token)
            headers = {"X-Total-Count": str(len(self.tokens)), "X-Limit": str(limit)}
            return _ocpi(page, headers=headers)
        if request.method == "POST" and len(parts) == 2 and parts[1] == "authorize":
            uid = parts[0]
            if body is not None:
                problems = self.errors("tokens", "LocationReferences", body)
                if problems:
                    self.invalid.append(("POST", request.path, "; ".join(problems)))
                    return _ocpi(code=2001, message="; ".join(problems)[:500])
            self.authorize_requests.append((uid, body))
            allowed = self.authorize.get(uid, "NOT_ALLOWED")
            if self.version == "2.1.1":
                return _ocpi({"allowed": allowed})
            info = {"allowed": allowed, "token": self.token(uid, "NEVER"), "authorization_reference": f"AUTH-{uid}"}
            return _ocpi(info)
        return _not_found()

    def app(self) -> web.Application:
        # The version in the URL is read at request time: a test may move the platform to
        # another version (``emsp.version = "2.3.0"``) and PUT its credentials there.
        @web.middleware
        async def own_version(request: web.Request, handler: Any) -> web.StreamResponse:
            version = request.match_info.get("version")
            if version is not None and version != self.version:
                return _not_found()
            return await handler(request)

        app = web.Application(middlewares=[own_version])
        app.router.add_get("/ocpi/emsp/versions", self._versions)
        app.router.add_get("/ocpi/emsp/{version}", self._details)
        app.router.add_get("/ocpi/emsp/{version}/", self._details)
        app.router.add_post("/ocpi/emsp/{version}/credentials", self._post_credentials)
        app.router.add_route("*", "/ocpi/emsp/{version}/{tail:.+}", self._module)
        return app


    async def start(self) -> None:
        self._runner = web.AppRunner(self.app())
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

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
        async with aiohttp.ClientSession() as s, s.request(method, url, data=data, headers=headers) as r:
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


def emsp_v211(**kwargs: Any) -> VersionedEmsp:
    return VersionedEmsp(version="2.1.1", **kwargs)


def emsp_v230(**kwargs: Any) -> VersionedEmsp:
    return VersionedEmsp(version="2.3.0", **kwargs)
