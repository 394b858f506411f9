"""ocpi.server: the middleware (401, ids, envelopes, never a 500 but as a last resort)
and the CPO module routes against in-memory providers, over real HTTP."""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

import ocpi.v221 as v
from ocpi.server import (
    OcpiRequestContext,
    cdrs_sender_routes,
    commands_receiver_routes,
    locations_sender_routes,
    ocpi_context,
    ocpi_middleware,
    ocpi_response,
    sessions_sender_routes,
    tariffs_sender_routes,
    tokens_receiver_routes,
)
from ocpi.transport import (
    PageRequest,
    PartyId,
    UnknownLocationError,
    encode_authorization,
    json_dumps,
    json_loads,
    next_link,
)
from tests.ocpi.openapi import validate_against_openapi, validate_envelope

EXAMPLES = Path(__file__).parent / "examples"
TOKEN = "emsp-credentials-token"
AUTH = {"Authorization": encode_authorization(TOKEN)}
BASE = "/ocpi/cpo/2.2.1"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def example(name: str) -> Any:
    return json_loads((EXAMPLES / name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Party:
    country_code: str
    party_id: str


EMSP = Party("NL", "TNM")


async def resolve_token(token: str, request: web.Request) -> Party | None:
    return EMSP if token == TOKEN else None


# ------------------------------------------------------------------ providers


def make_locations(count: int) -> list[v.Location]:
    base = example("location_example.json")
    locations = []
    for i in range(count):
        data = copy.deepcopy(base)
        data["id"] = f"LOC{i}"
        data["last_updated"] = (T0 + timedelta(hours=i)).isoformat()
        locations.append(v.Location.model_validate(data))
    return locations


def page_of(items: Sequence[Any], page: PageRequest) -> tuple[list[Any], int]:
    matching = [x for x in items if page.matches(x.last_updated)]
    return matching[page.offset : page.offset + page.limit], len(matching)


@dataclass
class Provider:
    locations: list[v.Location] = field(default_factory=lambda: make_locations(5))
    sessions: list[v.Session] = field(default_factory=list)
    tokens: dict[tuple[str, str, str, str], v.Token] = field(default_factory=dict)
    contexts: list[OcpiRequestContext] = field(default_factory=list)
    commands: list[Any] = field(default_factory=list)

    async def list_locations(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[v.Location], int]:
        self.contexts.append(context)
        return page_of(self.locations, page)

    async def get_location(
        self, context: OcpiRequestContext, location_id: str
    ) -> v.Location | None:
        if location_id == "CRASH":
            raise RuntimeError("database password is hunter2")
        return next((x for x in self.locations if x.id.upper() == location_id.upper()), None)

    async def list_sessions(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[v.Session], int]:
        return page_of(self.sessions, page)

    async def set_charging_preferences(
        self, context: OcpiRequestContext, session_id: str, preferences: v.ChargingPreferences
    ) -> v.ChargingPreferencesResponse | None:
        if session_id != "101":
            return None
        return v.ChargingPreferencesResponse.ACCEPTED

    async def list_cdrs(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[v.CDR], int]:
        return page_of([v.CDR.model_validate(example("cdr_example.json"))], page)

    async def list_tariffs(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[v.Tariff], int]:
        tariffs = [
            v.Tariff.model_validate(example(name))
            for name in sorted(p.name for p in EXAMPLES.glob("tariff_*.json"))
            if name != "tariff_put_example.json"
        ]
        return page_of(tariffs, page)

    @staticmethod
    def key(country_code: str, party_id: str, uid: str, token_type: str) -> tuple[str, ...]:
        return (country_code.upper(), party_id.upper(), uid.upper(), str(token_type))

    async def get_token(
        self, context: OcpiRequestContext, country_code: str, party_id: str, uid: str,
        token_type: str,
    ) -> v.Token | None:  # fmt: skip
        return self.tokens.get(self.key(country_code, party_id, uid, token_type))  # type: ignore[arg-type]

    async def put_token(self, context: OcpiRequestContext, token: v.Token) -> bool:
        key = self.key(token.country_code, token.party_id, token.uid, str(token.type))
        created = key not in self.tokens
        self.tokens[key] = token  # type: ignore[index]
        return created

    async def patch_token(
        self, context: OcpiRequestContext, country_code: str, party_id: str, uid: str,
        token_type: str, patch: v.TokenPatch,
    ) -> v.Token | None:  # fmt: skip
        key = self.key(country_code, party_id, uid, token_type)
        token = self.tokens.get(key)  # type: ignore[arg-type]
        if token is None:
            return None
        self.tokens[key] = v.apply_patch(token, patch)  # type: ignore[index]
        return self.tokens[key]  # type: ignore[index]

    async def _command(self, command: Any) -> v.CommandResponse:
        self.commands.append(command)
        return v.CommandResponse(result=v.CommandResponseType.ACCEPTED, timeout=30)

    async def start_session(
        self, context: OcpiRequestContext, command: v.StartSession
    ) -> v.CommandResponse:
        if command.location_id not in {x.id for x in self.locations}:
            raise UnknownLocationError(
                f"location_id: unknown Location {command.location_id!r}", http_status=200
            )
        return await self._command(command)

    async def stop_session(
        self, context: OcpiRequestContext, command: v.StopSession
    ) -> v.CommandResponse:
        return await self._command(command)

    async def reserve_now(
        self, context: OcpiRequestContext, command: v.ReserveNow
    ) -> v.CommandResponse:
        return await self._command(command)

    async def cancel_reservation(
        self, context: OcpiRequestContext, command: v.CancelReservation
    ) -> v.CommandResponse:
        return await self._command(command)

    async def unlock_connector(
        self, context: OcpiRequestContext, command: v.UnlockConnector
    ) -> v.CommandResponse:
        return await self._command(command)


def build_app(provider: Provider, *, max_limit: int = 2) -> web.Application:
    app = web.Application(middlewares=[ocpi_middleware(resolve_token)])
    app.add_routes(
        locations_sender_routes(provider, prefix=f"{BASE}/locations", max_limit=max_limit)
    )
    app.add_routes(
        sessions_sender_routes(provider, prefix=f"{BASE}/sessions", charging_preferences=provider)
    )
    app.add_routes(cdrs_sender_routes(provider, prefix=f"{BASE}/cdrs"))
    app.add_routes(tariffs_sender_routes(provider, prefix=f"{BASE}/tariffs"))
    app.add_routes(tokens_receiver_routes(provider, prefix=f"{BASE}/tokens"))
    app.add_routes(commands_receiver_routes(provider, prefix=f"{BASE}/commands"))

    async def whoami(request: web.Request) -> web.StreamResponse:
        context = ocpi_context(request)
        return ocpi_response({"party": context.party.party_id})

    app.router.add_get(f"{BASE}/whoami", whoami)
    return app


@pytest.fixture
def provider() -> Provider:
    return Provider()


@pytest.fixture
async def client(provider: Provider) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(build_app(provider))) as test_client:
        yield test_client


Client = TestClient[web.Request, web.Application]


async def call(
    client: Client,
    method: str,
    path: str,
    *,
    body: Any = None,
    raw: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, Any]:
    all_headers = {**AUTH, **(headers or {})}
    data = raw if raw is not None else (json_dumps(body) if body is not None else None)
    if data is not None:
        all_headers.setdefault("Content-Type", "application/json")
    async with client.request(method, path, data=data, headers=all_headers) as response:
        text = await response.text()
        assert response.content_type == "application/json"
        return response.status, json_loads(text), response.headers


# ----------------------------------------------------------------- middleware


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": encode_authorization("wrong")},
        {"Authorization": f"Bearer {TOKEN}"},
        {"Authorization": "Token"},
    ],
    ids=["missing", "unknown", "bearer", "empty"],
)
async def test_missing_or_wrong_token_is_401(client: Client, headers: dict[str, str]) -> None:
    async with client.get(f"{BASE}/locations", headers=headers) as response:
        body = json_loads(await response.text())
        assert response.status == 401
        assert response.headers["X-Request-ID"]
        assert response.headers["X-Correlation-ID"]
    assert body["status_code"] == 2000
    assert "data" not in body
    validate_envelope(body)


async def test_unknown_url_needs_a_token_too(client: Client) -> None:
    async with client.get(f"{BASE}/nothing-here") as response:
        assert response.status == 401


async def test_base64_and_raw_tokens_are_accepted(client: Client) -> None:
    for header in (encode_authorization(TOKEN), encode_authorization(TOKEN, base64_encode=False)):
        status, body, _ = await call(
            client, "GET", f"{BASE}/whoami", headers={"Authorization": header}
        )
        assert status == 200
        assert body["data"] == {"party": "TNM"}


async def test_request_and_correlation_ids_are_echoed(client: Client) -> None:
    ids = {"X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"}
    _, _, headers = await call(client, "GET", f"{BASE}/whoami", headers=ids)
    assert headers["X-Request-ID"] == "req-1"
    assert headers["X-Correlation-ID"] == "corr-1"
    _, _, headers = await call(client, "GET", f"{BASE}/nothing-here", headers=ids)
    assert headers["X-Request-ID"] == "req-1"


async def test_routing_headers_are_swapped_on_the_response(
    client: Client, provider: Provider
) -> None:
    routing = {
        "OCPI-from-country-code": "NL",
        "OCPI-from-party-id": "TNM",
        "OCPI-to-country-code": "DE",
        "OCPI-to-party-id": "CPO",
    }
    status, _, headers = await call(client, "GET", f"{BASE}/locations", headers=routing)
    assert status == 200
    assert headers["OCPI-to-country-code"] == "NL"
    assert headers["OCPI-to-party-id"] == "TNM"
    assert headers["OCPI-from-party-id"] == "CPO"
    assert provider.contexts[-1].from_party == PartyId("NL", "TNM")
    status, body, _ = await call(
        client, "GET", f"{BASE}/locations", headers={"OCPI-to-country-code": "DE"}
    )
    assert (status, body["status_code"]) == (200, 2001)
    assert "OCPI-to-party-id" in body["status_message"]


async def test_unknown_url_and_wrong_method_get_envelopes(client: Client) -> None:
    status, body, _ = await call(client, "GET", f"{BASE}/nothing-here")
    assert (status, body["status_code"]) == (404, 2000)
    status, body, headers = await call(client, "GET", f"{BASE}/commands/START_SESSION")
    assert (status, body["status_code"]) == (405, 2000)
    assert "POST" in headers["Allow"]
    status, body, _ = await call(client, "POST", f"{BASE}/commands/SELF_DESTRUCT", body={})
    assert status in (404, 405) and body["status_code"] == 2000


async def test_unexpected_failure_is_3000_and_500_without_details(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="ocpi.server"):
        status, body, _ = await call(client, "GET", f"{BASE}/locations/CRASH")
    assert (status, body["status_code"]) == (500, 3000)
    assert "hunter2" not in json_dumps(body)
    assert any("hunter2" in (r.exc_text or "") for r in caplog.records)
    validate_envelope(body)


# ------------------------------------------------------------------ locations


async def test_locations_pagination_headers_and_limit_capping(client: Client) -> None:
    status, body, headers = await call(client, "GET", f"{BASE}/locations?limit=50")
    assert status == 200
    assert headers["X-Total-Count"] == "5"
    assert headers["X-Limit"] == "2"  # capped by the server
    assert [x["id"] for x in body["data"]] == ["LOC0", "LOC1"]
    validate_envelope(body, "locations", "Location", many=True)
    seen = [x["id"] for x in body["data"]]
    link = next_link(headers.getall("Link"))
    while link is not None:
        url = URL(link)
        assert url.query["limit"] == "2"
        status, body, headers = await call(client, "GET", url.path_qs)
        assert status == 200
        seen += [x["id"] for x in body["data"]]
        link = next_link(headers.getall("Link", []))
    assert seen == [f"LOC{i}" for i in range(5)]


async def test_locations_date_filters_are_kept_in_the_link(client: Client) -> None:
    query = "date_from=2024-01-01T01:00:00Z&date_to=2024-01-01T04:00:00Z"
    status, body, headers = await call(client, "GET", f"{BASE}/locations?{query}")
    assert status == 200
    assert headers["X-Total-Count"] == "3"  # LOC1..LOC3: from inclusive, to exclusive
    assert [x["id"] for x in body["data"]] == ["LOC1", "LOC2"]
    url = URL(next_link(headers.getall("Link")) or "")
    assert url.query["date_from"] == "2024-01-01T01:00:00Z"
    assert url.query["date_to"] == "2024-01-01T04:00:00Z"
    assert url.query["offset"] == "2"
    status, body, headers = await call(client, "GET", url.path_qs)
    assert [x["id"] for x in body["data"]] == ["LOC3"]
    assert "Link" not in headers


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("offset=-3", "offset: should be a non-negative integer"),
        ("limit=many", "limit: should be a positive integer"),
        ("date_from=last+week", "date_from: Input should be an RFC 3339 date-time"),
    ],
)
async def test_bad_pagination_parameters_are_2001(client: Client, query: str, message: str) -> None:
    status, body, _ = await call(client, "GET", f"{BASE}/locations?{query}")
    assert (status, body["status_code"]) == (200, 2001)
    assert message in body["status_message"]


async def test_location_evse_and_connector_objects(client: Client) -> None:
    status, body, _ = await call(client, "GET", f"{BASE}/locations/loc1")
    assert status == 200 and body["data"]["id"] == "LOC1"
    validate_envelope(body, "locations", "Location")
    status, body, _ = await call(client, "GET", f"{BASE}/locations/LOC1/3257")
    assert status == 200 and body["data"]["uid"] == "3257"
    validate_envelope(body, "locations", "EVSE")
    status, body, _ = await call(client, "GET", f"{BASE}/locations/LOC1/3256/2")
    assert status == 200 and body["data"]["id"] == "2"
    validate_envelope(body, "locations", "Connector")


@pytest.mark.parametrize(
    ("path", "field"),
    [("/locations/NOPE", "location_id"), ("/locations/LOC1/9999", "evse_uid"),
     ("/locations/LOC1/3256/7", "connector_id")],
)  # fmt: skip
async def test_unknown_location_objects_are_404_2003(client: Client, path: str, field: str) -> None:
    status, body, _ = await call(client, "GET", BASE + path)
    assert (status, body["status_code"]) == (404, 2003)
    assert body["status_message"].startswith(field + ":")


async def test_too_long_path_id_is_2001(client: Client) -> None:
    status, body, _ = await call(client, "GET", f"{BASE}/locations/{'x' * 37}")
    assert (status, body["status_code"]) == (200, 2001)
    assert body["status_message"].startswith("location_id:")


# ---------------------------------------------------- sessions, cdrs, tariffs


async def test_sessions_list_requires_date_from(client: Client, provider: Provider) -> None:
    status, body, _ = await call(client, "GET", f"{BASE}/sessions")
    assert (status, body["status_code"]) == (200, 2001)
    assert body["status_message"] == "date_from: query parameter required"
    provider.sessions = [v.Session.model_validate(example("session_example_2_short_finished.json"))]
    status, body, headers = await call(
        client, "GET", f"{BASE}/sessions?date_from=2015-01-01T00:00:00Z"
    )
    assert status == 200 and headers["X-Total-Count"] == "1"
    validate_envelope(body, "sessions", "Session", many=True)


async def test_charging_preferences(client: Client) -> None:
    body_in = {
        "profile_type": "FAST",
        "departure_time": "2024-01-01T18:00:00Z",
        "energy_need": 32.5,
    }
    status, body, _ = await call(
        client, "PUT", f"{BASE}/sessions/101/charging_preferences", body=body_in
    )
    assert (status, body["status_code"], body["data"]) == (200, 1000, "ACCEPTED")
    status, body, _ = await call(
        client, "PUT", f"{BASE}/sessions/999/charging_preferences", body=body_in
    )
    assert status == 404
    status, body, _ = await call(
        client, "PUT", f"{BASE}/sessions/101/charging_preferences", body={"profile_type": "SLOW"}
    )
    assert body["status_code"] == 2001 and body["status_message"].startswith("profile_type:")


async def test_cdrs_and_tariffs_lists_validate_against_openapi(client: Client) -> None:
    status, body, headers = await call(client, "GET", f"{BASE}/cdrs")
    assert status == 200 and headers["X-Total-Count"] == "1"
    validate_envelope(body, "cdrs", "CDR", many=True)
    assert (
        body["data"][0]["total_cost"]["excl_vat"]
        == json_loads((EXAMPLES / "cdr_example.json").read_text())["total_cost"]["excl_vat"]
    )
    status, body, headers = await call(client, "GET", f"{BASE}/tariffs?limit=100")
    assert status == 200 and int(headers["X-Total-Count"]) == len(body["data"]) == 17
    validate_envelope(body, "tariffs", "Tariff", many=True)


# --------------------------------------------------------------------- tokens


async def test_token_put_get_patch(client: Client, provider: Provider) -> None:
    token = example("token_put_example.json")
    path = f"{BASE}/tokens/NL/TNM/012345678"
    status, body, _ = await call(client, "PUT", path, body=token)
    assert (status, body["status_code"]) == (201, 1000)
    assert "data" not in body
    status, body, _ = await call(client, "PUT", path + "?type=RFID", body=token)
    assert status == 200
    status, body, _ = await call(client, "GET", path)
    assert status == 200 and body["data"] == token
    validate_envelope(body, "tokens", "Token")
    status, body, _ = await call(client, "PATCH", path, body=example("token_patch_example.json"))
    assert (status, body["status_code"]) == (200, 1000)
    status, body, _ = await call(client, "GET", path + "?type=RFID")
    assert body["data"]["valid"] is False
    assert body["data"]["last_updated"] == "2019-06-19T02:11:11Z"


async def test_token_put_app_user_without_type_parameter(client: Client) -> None:
    token = example("token_example_1_app_user.json")
    path = f"{BASE}/tokens/DE/TNM/{token['uid']}"
    status, _, _ = await call(client, "PUT", path, body=token)
    assert status == 201
    status, body, _ = await call(client, "GET", path)  # default type: RFID
    assert (status, body["status_code"]) == (404, 2004)
    status, body, _ = await call(client, "GET", path + "?type=APP_USER")
    assert status == 200 and body["data"]["type"] == "APP_USER"


@pytest.mark.parametrize(
    ("path", "mutate", "message"),
    [
        ("/tokens/NL/TNM/012345678", lambda t: t.pop("whitelist"), "whitelist: Field required"),
        ("/tokens/NL/TNM/012345678", lambda t: t.update(valid="no"), "valid: Input should be a valid boolean"),
        ("/tokens/NL/TNM/999", lambda t: None, "uid: '012345678' in the body does not match '999'"),
        ("/tokens/BE/TNM/012345678", lambda t: None, "country_code: 'NL' in the body does not match"),
        ("/tokens/NL/TNM/012345678?type=APP_USER", lambda t: None, "type: 'RFID' in the body"),
        ("/tokens/NLD/TNM/012345678", lambda t: None, "country_code: should be 2 characters"),
        ("/tokens/NL/TNM/012345678", lambda t: t.update(energy_contract={"contract_id": "1"}),
         "energy_contract.supplier_name: Field required"),
    ],
)  # fmt: skip
async def test_token_put_bad_input_is_2001_naming_the_field(
    client: Client, provider: Provider, path: str, mutate: Any, message: str
) -> None:
    token = example("token_put_example.json")
    mutate(token)
    status, body, _ = await call(client, "PUT", BASE + path, body=token)
    assert (status, body["status_code"]) == (200, 2001)
    assert message in body["status_message"]
    assert provider.tokens == {}


async def test_invalid_json_is_400(client: Client) -> None:
    status, body, _ = await call(client, "PUT", f"{BASE}/tokens/NL/TNM/1", raw='{"uid": ')
    assert (status, body["status_code"]) == (400, 2001)
    assert body["status_message"].startswith("body: not valid JSON")
    status, body, _ = await call(client, "PUT", f"{BASE}/tokens/NL/TNM/1", raw="")
    assert (status, body["status_code"]) == (400, 2001)
    status, body, _ = await call(client, "PUT", f"{BASE}/tokens/NL/TNM/1", raw="[1, 2]")
    assert (status, body["status_code"]) == (200, 2001)


async def test_token_patch_errors_and_atomicity(client: Client, provider: Provider) -> None:
    path = f"{BASE}/tokens/NL/TNM/012345678"
    status, body, _ = await call(client, "PATCH", path, body={"valid": False})
    assert (status, body["status_code"]) == (200, 2001)
    assert body["status_message"] == "last_updated: Field required"
    status, body, _ = await call(client, "PATCH", path, body=example("token_patch_example.json"))
    assert (status, body["status_code"]) == (404, 2004)
    await call(client, "PUT", path, body=example("token_put_example.json"))
    stored = dict(provider.tokens)
    status, body, _ = await call(
        client,
        "PATCH",
        path,
        body={"issuer": None, "valid": False, "last_updated": "2020-01-01T00:00:00Z"},
    )
    assert (status, body["status_code"]) == (200, 2001)
    assert body["status_message"] == "issuer: Field required"
    assert provider.tokens == stored  # nothing applied
    status, body, _ = await call(
        client, "PATCH", path, body={"uid": "other", "last_updated": "2020-01-01T00:00:00Z"}
    )
    assert body["status_code"] == 2001 and body["status_message"].startswith("uid:")


# ------------------------------------------------------------------- commands


def start_session_body(**changes: Any) -> dict[str, Any]:
    body = {
        "response_url": "https://emsp.example.com/ocpi/emsp/2.2.1/commands/START_SESSION/42",
        "token": example("token_example_2_full_rfid.json"),
        "location_id": "LOC1",
        "evse_uid": "3256",
    }
    body.update(changes)
    return body


async def test_start_session_command(client: Client, provider: Provider) -> None:
    status, body, _ = await call(
        client, "POST", f"{BASE}/commands/START_SESSION", body=start_session_body()
    )
    assert (status, body["status_code"]) == (200, 1000)
    assert body["data"] == {"result": "ACCEPTED", "timeout": 30}
    validate_envelope(body, "commands", "CommandResponse")
    assert isinstance(provider.commands[-1], v.StartSession)
    validate_against_openapi("commands", "StartSession", provider.commands[-1])


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (start_session_body(location_id="NOWHERE"), 2003, "location_id: unknown Location"),
        (start_session_body(evse_uid=None, connector_id="1"), 2001, "evse_uid: required"),
        (
            start_session_body(response_url="not a url"),
            2001,
            "response_url: URL should be absolute",
        ),
        (
            {**start_session_body(), "token": {"uid": "1"}},
            2001,
            "token.country_code: Field required",
        ),
    ],
)
async def test_start_session_bad_input(
    client: Client, provider: Provider, body: Any, code: int, message: str
) -> None:
    body = {k: x for k, x in body.items() if x is not None}
    status, answer, _ = await call(client, "POST", f"{BASE}/commands/START_SESSION", body=body)
    assert (status, answer["status_code"]) == (200, code)
    assert message in answer["status_message"]
    assert provider.commands == []


async def test_other_commands(client: Client, provider: Provider) -> None:
    url = "https://emsp.example.com/r/1"
    bodies = {
        "STOP_SESSION": {"response_url": url, "session_id": "101"},
        "RESERVE_NOW": {"response_url": url, "token": example("token_put_example.json"),
                        "expiry_date": "2030-01-01T00:00:00Z", "reservation_id": "9",
                        "location_id": "LOC1"},
        "CANCEL_RESERVATION": {"response_url": url, "reservation_id": "9"},
        "UNLOCK_CONNECTOR": {"response_url": url, "location_id": "LOC1", "evse_uid": "3256",
                             "connector_id": "1"},
    }  # fmt: skip
    for command, body in bodies.items():
        status, answer, _ = await call(client, "POST", f"{BASE}/commands/{command}", body=body)
        assert (status, answer["status_code"]) == (200, 1000), command
    assert [type(c).__name__ for c in provider.commands] == [
        "StopSession", "ReserveNow", "CancelReservation", "UnlockConnector",
    ]  # fmt: skip
    status, answer, _ = await call(
        client, "POST", f"{BASE}/commands/UNLOCK_CONNECTOR", body={"response_url": url}
    )
    assert answer["status_code"] == 2001
    assert "location_id: Field required" in answer["status_message"]


async def test_public_origin_is_used_in_links_and_auth_comes_first(provider: Provider) -> None:
    app = web.Application(
        middlewares=[ocpi_middleware(resolve_token, public_origin="https://ocpi.example.com/x")]
    )
    app.add_routes(locations_sender_routes(provider, prefix=f"{BASE}/locations", max_limit=2))
    async with TestClient(TestServer(app)) as test_client:
        status, _, headers = await call(
            test_client, "GET", f"{BASE}/locations?date_from=2020-01-01T00:00:00Z"
        )
        assert status == 200
        link = URL(next_link(headers.getall("Link")) or "")
        assert str(link.origin()) == "https://ocpi.example.com"
        assert link.path == f"{BASE}/locations"
        assert link.query["date_from"] == "2020-01-01T00:00:00Z"
        async with test_client.get(
            f"{BASE}/locations", headers={"OCPI-to-country-code": "TOOLONG"}
        ) as response:
            assert response.status == 401
