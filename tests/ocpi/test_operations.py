"""ocpi.server operations: one implementation, two transports. The same requests served
over HTTP (the ``*_routes`` builders behind the middleware) and handed in-process (a
Forwarder's Local target -> ocpi.hub.local) answer alike: HTTP status, OCPI status code
and message, data, pagination and routing headers, and the providers end in the same
state."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import MultiDict
from yarl import URL

import ocpi.v221 as v
from ocpi.hub.forward import Forwarder, LocalRequest
from ocpi.hub.http1 import Http1Client
from ocpi.hub.local import local_handler
from ocpi.hub.routing import CPO_INTERFACE, Local
from ocpi.server import (
    OcpiCall,
    OcpiRequestContext,
    Operation,
    cdrs_sender_operations,
    cdrs_sender_routes,
    commands_receiver_operations,
    commands_receiver_routes,
    locations_sender_operations,
    locations_sender_routes,
    ocpi_middleware,
    paginated_response,
    sessions_sender_operations,
    sessions_sender_routes,
    tariffs_sender_operations,
    tariffs_sender_routes,
    tokens_receiver_operations,
    tokens_receiver_routes,
)
from ocpi.transport import (
    PageRequest,
    PartyId,
    encode_authorization,
    json_dumps,
    json_loads,
    next_link,
    routing_headers,
)

EXAMPLES = Path(__file__).parent / "examples"
TOKEN = "emsp-credentials-token"
ORIGIN = "https://hub.example.com"
BASE = "/ocpi/cpo/2.2.1"
EMSP, CPO = PartyId("NL", "TNM"), PartyId("NL", "CPO")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
MAX_LIMIT = 2
ABSENT = "<absent>"


def example(name: str) -> Any:
    return json_loads((EXAMPLES / name).read_text(encoding="utf-8"))


# ------------------------------------------------------------------- provider


def make_locations(count: int) -> list[v.Location]:
    out = []
    for i in range(count):
        data = copy.deepcopy(example("location_example.json"))
        data["id"] = f"LOC{i}"
        data["last_updated"] = (T0 + timedelta(hours=i)).isoformat()
        out.append(v.Location.model_validate(data))
    return out


def page_of(items: Sequence[Any], page: PageRequest) -> tuple[list[Any], int]:
    matching = [x for x in items if page.matches(x.last_updated)]
    return matching[page.offset : page.offset + page.limit], len(matching)


@dataclass
class Provider:
    """All six module providers, in memory; records the contexts it is called with."""

    locations: list[v.Location] = field(default_factory=lambda: make_locations(3))
    sessions: list[v.Session] = field(
        default_factory=lambda: [
            v.Session.model_validate(example("session_example_2_short_finished.json"))
        ]
    )
    tokens: dict[tuple[str, ...], v.Token] = field(default_factory=dict)
    commands: list[Any] = field(default_factory=list)
    contexts: list[OcpiRequestContext] = field(default_factory=list)

    async def list_locations(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[v.Location], int]:
        self.contexts.append(context)
        return page_of(self.locations, page)

    async def get_location(
        self, context: OcpiRequestContext, location_id: str
    ) -> v.Location | None:
        self.contexts.append(context)
        return next((x for x in self.locations if x.id.upper() == location_id.upper()), None)

    async def list_sessions(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[v.Session], int]:
        return page_of(self.sessions, page)

    async def set_charging_preferences(
        self, context: OcpiRequestContext, session_id: str, preferences: v.ChargingPreferences
    ) -> v.ChargingPreferencesResponse | None:
        return v.ChargingPreferencesResponse.ACCEPTED if session_id == "101" else None

    async def list_cdrs(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[v.CDR], int]:
        return page_of([v.CDR.model_validate(example("cdr_example.json"))], page)

    async def list_tariffs(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[v.Tariff], int]:
        names = (
            "tariff_1_simple_2hour.json",
            "tariff_4_complex.json",
            "tariff_5_free_of_charge.json",
        )
        return page_of([v.Tariff.model_validate(example(n)) for n in names], page)

    @staticmethod
    def key(country_code: str, party_id: str, uid: str, token_type: str) -> tuple[str, ...]:
        return (country_code.upper(), party_id.upper(), uid.upper(), str(token_type))

    async def get_token(
        self,
        context: OcpiRequestContext,
        country_code: str,
        party_id: str,
        uid: str,
        token_type: str,
    ) -> v.Token | None:
        return self.tokens.get(self.key(country_code, party_id, uid, token_type))

    async def put_token(self, context: OcpiRequestContext, token: v.Token) -> bool:
        key = self.key(token.country_code, token.party_id, token.uid, str(token.type))
        created = key not in self.tokens
        self.tokens[key] = token
        return created

    async def patch_token(
        self, context: OcpiRequestContext, country_code: str, party_id: str, uid: str,
        token_type: str, patch: v.TokenPatch,
    ) -> v.Token | None:  # fmt: skip
        key = self.key(country_code, party_id, uid, token_type)
        if key not in self.tokens:
            return None
        self.tokens[key] = v.apply_patch(self.tokens[key], patch)
        return self.tokens[key]

    async def _command(self, command: Any) -> v.CommandResponse:
        self.commands.append(command)
        return v.CommandResponse(result=v.CommandResponseType.ACCEPTED, timeout=30)

    async def start_session(
        self, context: OcpiRequestContext, command: v.StartSession
    ) -> v.CommandResponse:
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


# ------------------------------------------------------------ both transports


def build_app(provider: Provider) -> web.Application:
    async def resolve(token: str, request: web.Request) -> PartyId | None:
        return EMSP if token == TOKEN else None

    app = web.Application(middlewares=[ocpi_middleware(resolve, public_origin=ORIGIN)])
    app.add_routes(
        locations_sender_routes(provider, prefix=f"{BASE}/locations", max_limit=MAX_LIMIT)
    )
    app.add_routes(
        sessions_sender_routes(provider, prefix=f"{BASE}/sessions", charging_preferences=provider)
    )
    app.add_routes(cdrs_sender_routes(provider, prefix=f"{BASE}/cdrs"))
    app.add_routes(tariffs_sender_routes(provider, prefix=f"{BASE}/tariffs"))
    app.add_routes(tokens_receiver_routes(provider, prefix=f"{BASE}/tokens"))
    app.add_routes(commands_receiver_routes(provider, prefix=f"{BASE}/commands"))
    return app


def operations(provider: Provider) -> dict[tuple[str, v.InterfaceRole], list[Operation]]:
    return {
        ("locations", v.InterfaceRole.SENDER): locations_sender_operations(
            provider, max_limit=MAX_LIMIT
        ),
        ("sessions", v.InterfaceRole.SENDER): sessions_sender_operations(
            provider, charging_preferences=provider
        ),
        ("cdrs", v.InterfaceRole.SENDER): cdrs_sender_operations(provider),
        ("tariffs", v.InterfaceRole.SENDER): tariffs_sender_operations(provider),
        ("tokens", v.InterfaceRole.RECEIVER): tokens_receiver_operations(provider),
        ("commands", v.InterfaceRole.RECEIVER): commands_receiver_operations(provider),
    }


async def context_for(request: LocalRequest) -> OcpiRequestContext:
    # What the hub host would do: the URL the client used on the hub, for Link headers.
    url = URL(f"{ORIGIN}{BASE}/{request.target.module}")
    for segment in request.target.path:
        url = url / segment
    return OcpiRequestContext(
        party=EMSP,
        request_id=request.request_id,
        correlation_id=request.correlation_id,
        url=url.with_query(request.query) if request.query else url,
        from_party=request.from_party,
        to_party=request.to_party,
    )


@dataclass(frozen=True)
class Step:
    method: str
    module: str
    path: tuple[str, ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    body: Any = None  # JSON value, or bytes sent as they are
    expect: tuple[int, int] = (200, 1000)  # HTTP status, OCPI status_code
    message: str = ""  # in status_message

    @property
    def raw(self) -> bytes | None:
        if self.body is None or isinstance(self.body, bytes):
            return self.body
        return json_dumps(self.body).encode()


@dataclass(frozen=True)
class Outcome:
    status: int
    status_code: int
    status_message: str | None
    data: Any
    headers: dict[str, tuple[str, ...]]


COMPARED_HEADERS = (
    "Content-Type", "X-Total-Count", "X-Limit", "Link",
    "OCPI-from-country-code", "OCPI-from-party-id", "OCPI-to-country-code", "OCPI-to-party-id",
)  # fmt: skip


def outcome(status: int, headers: Any, body: bytes) -> Outcome:
    parsed = json_loads(body)
    return Outcome(
        status,
        parsed["status_code"],
        parsed.get("status_message"),
        parsed.get("data", ABSENT),
        {name: tuple(headers.getall(name, ())) for name in COMPARED_HEADERS},
    )


async def over_http(steps: Sequence[Step]) -> tuple[list[Outcome], Provider]:
    provider = Provider()
    headers = {
        "Authorization": encode_authorization(TOKEN),
        "Content-Type": "application/json",
        **routing_headers(from_party=EMSP, to_party=CPO),
    }
    outcomes = []
    async with TestClient(TestServer(build_app(provider))) as client:
        for step in steps:
            path = "/".join([f"{BASE}/{step.module}", *(quote(s, safe="") for s in step.path)])
            async with client.request(
                step.method, path, params=MultiDict(step.query), data=step.raw, headers=headers
            ) as response:
                outcomes.append(outcome(response.status, response.headers, await response.read()))
    return outcomes, provider


async def in_process(steps: Sequence[Step]) -> tuple[list[Outcome], Provider]:
    provider = Provider()

    async def no_tokens(platform_id: str) -> str | None:
        return None

    outcomes = []
    async with Http1Client() as session:  # never used: Local targets make no HTTP call
        forwarder = Forwarder(
            session, no_tokens, local=local_handler(operations(provider), context_for)
        )
        for step in steps:
            target = Local(
                EMSP, CPO, "gw", step.path, module=step.module, interface=CPO_INTERFACE[step.module]
            )
            response = await forwarder.send(
                target,
                method=step.method,
                correlation_id="corr-1",
                query=MultiDict(step.query),
                body=step.raw,
            )
            outcomes.append(outcome(response.status, response.headers, response.body))
    return outcomes, provider


async def assert_parity(steps: Sequence[Step]) -> tuple[list[Outcome], Provider, Provider]:
    http, http_provider = await over_http(steps)
    local, local_provider = await in_process(steps)
    for step, a, b in zip(steps, http, local, strict=True):
        assert a == b, step
        assert (a.status, a.status_code) == step.expect, (step, a)
        assert step.message in (a.status_message or ""), (step, a)
        # The answer goes back to the sender, on both transports.
        assert a.headers["OCPI-to-party-id"] == (EMSP.party_id,), step
    assert http_provider.tokens == local_provider.tokens
    assert http_provider.commands == local_provider.commands
    return http, http_provider, local_provider


# ------------------------------------------------------------------ the table


async def test_location_list_pages_and_links_alike() -> None:
    steps = [
        Step("GET", "locations", query=(("limit", "50"),)),
        Step(
            "GET",
            "locations",
            query=(("date_from", "2024-01-01T01:00:00Z"), ("offset", "1"), ("limit", "2")),
        ),
        Step("GET", "locations", query=(("offset", "-1"),), expect=(200, 2001), message="offset:"),
    ]
    (first, last, _), _, local_provider = await assert_parity(steps)
    assert [x["id"] for x in first.data] == ["LOC0", "LOC1"]
    assert first.headers["X-Total-Count"] == ("3",) and first.headers["X-Limit"] == ("2",)
    link = URL(next_link(first.headers["Link"]) or "")
    assert str(link.origin()) == ORIGIN and link.path == f"{BASE}/locations"
    assert (link.query["offset"], link.query["limit"]) == ("2", "2")
    assert [x["id"] for x in last.data] == ["LOC2"] and last.headers["Link"] == ()
    assert last.headers["X-Total-Count"] == ("2",)  # LOC1, LOC2 from date_from on
    # The in-process context is the host's: same party and ids as the middleware gives.
    context = local_provider.contexts[0]
    assert context.party == EMSP and context.correlation_id == "corr-1"
    assert (context.from_party, context.to_party) == (EMSP, CPO)


async def test_location_objects_and_unknown_ones_alike() -> None:
    steps = [
        Step("GET", "locations", ("loc1",)),
        Step("GET", "locations", ("LOC1", "3257")),
        Step("GET", "locations", ("LOC1", "3256", "2")),
        Step(
            "GET",
            "locations",
            ("NOPE",),
            expect=(404, 2003),
            message="location_id: unknown Location",
        ),
        Step("GET", "locations", ("LOC1", "9999"), expect=(404, 2003), message="evse_uid:"),
        Step(
            "GET", "locations", ("LOC1", "3256", "7"), expect=(404, 2003), message="connector_id:"
        ),
        # Decoded segments on both sides: "%20" in the URL is the space handed in-process.
        Step("GET", "locations", ("LOC 1",), expect=(404, 2003), message="'LOC 1'"),
        Step(
            "GET",
            "locations",
            ("x" * 37,),
            expect=(200, 2001),
            message="location_id: should be 1 to 36",
        ),
    ]
    (location, evse, connector, *_), _, _ = await assert_parity(steps)
    assert (
        location.data["id"] == "LOC1" and evse.data["uid"] == "3257" and connector.data["id"] == "2"
    )


async def test_sender_lists_alike() -> None:
    steps = [
        Step("GET", "tariffs"),
        Step("GET", "sessions", expect=(200, 2001), message="date_from: query parameter required"),
        Step("GET", "sessions", query=(("date_from", "2015-01-01T00:00:00Z"),)),
        Step("GET", "cdrs"),
        Step("PUT", "sessions", ("101", "charging_preferences"), body={"profile_type": "FAST"}),
        Step(
            "PUT",
            "sessions",
            ("999", "charging_preferences"),
            body={"profile_type": "FAST"},
            expect=(404, 2000),
        ),
    ]
    (tariffs, _, sessions, cdrs, preferences, _), _, _ = await assert_parity(steps)
    assert [t["id"] for t in tariffs.data] == ["12", "14", "15"] and tariffs.headers[
        "X-Total-Count"
    ] == ("3",)
    assert len(sessions.data) == 1 and sessions.headers["X-Total-Count"] == ("1",)
    assert cdrs.data[0]["id"] == example("cdr_example.json")["id"]
    assert preferences.data == "ACCEPTED"


async def test_tokens_alike() -> None:
    token = example("token_put_example.json")
    key = ("NL", "TNM", "012345678")
    steps = [
        Step("GET", "tokens", key, expect=(404, 2004), message="token_uid: unknown Token"),
        Step("PUT", "tokens", key, body=token, expect=(201, 1000)),
        Step("PUT", "tokens", key, query=(("type", "RFID"),), body=token, expect=(200, 1000)),
        Step("GET", "tokens", key),
        Step("PATCH", "tokens", key, body=example("token_patch_example.json")),
        Step("GET", "tokens", key, query=(("type", "RFID"),)),
        Step("PATCH", "tokens", ("NL", "TNM", "999"), body=example("token_patch_example.json"), expect=(404, 2004)),
        Step("PUT", "tokens", ("NL", "TNM", "999"), body=token, expect=(200, 2001),
             message="uid: '012345678' in the body does not match '999' in the URL"),
        Step("PUT", "tokens", key, body={k: x for k, x in token.items() if k != "whitelist"},
             expect=(200, 2001), message="whitelist: Field required"),
        Step("PUT", "tokens", ("NLD", "TNM", "1"), body=token, expect=(200, 2001), message="country_code: should be 2"),
        Step("PUT", "tokens", key, body=b'{"uid": ', expect=(400, 2001), message="body: not valid JSON"),
    ]  # fmt: skip
    (missing, created, replaced, got, patched, after, *_), provider, _ = await assert_parity(steps)
    assert missing.data == ABSENT and created.data == ABSENT and replaced.data == ABSENT
    assert got.data == token and patched.status_code == 1000
    assert after.data["valid"] is False and after.data["last_updated"] == "2019-06-19T02:11:11Z"
    assert list(provider.tokens) == [("NL", "TNM", "012345678", "RFID")]


async def test_all_five_commands_alike() -> None:
    url = "https://emsp.example.com/ocpi/emsp/2.2.1/commands/x/1"
    rfid = example("token_example_2_full_rfid.json")
    steps = [
        Step("POST", "commands", ("START_SESSION",),
             body={"response_url": url, "token": rfid, "location_id": "LOC1", "evse_uid": "3256"}),
        Step("POST", "commands", ("STOP_SESSION",), body={"response_url": url, "session_id": "101"}),
        Step("POST", "commands", ("RESERVE_NOW",),
             body={"response_url": url, "token": rfid, "expiry_date": "2030-01-01T00:00:00Z",
                   "reservation_id": "9", "location_id": "LOC1"}),
        Step("POST", "commands", ("CANCEL_RESERVATION",), body={"response_url": url, "reservation_id": "9"}),
        Step("POST", "commands", ("UNLOCK_CONNECTOR",),
             body={"response_url": url, "location_id": "LOC1", "evse_uid": "3256", "connector_id": "1"}),
        Step("POST", "commands", ("START_SESSION",),
             body={"response_url": url, "token": rfid, "location_id": "LOC1", "connector_id": "1"},
             expect=(200, 2001), message="evse_uid: required when connector_id is given"),
        Step("POST", "commands", ("UNLOCK_CONNECTOR",), body={"response_url": url},
             expect=(200, 2001), message="location_id: Field required"),
    ]  # fmt: skip
    answers, provider, _ = await assert_parity(steps)
    assert all(a.data == {"result": "ACCEPTED", "timeout": 30} for a in answers[:5])
    assert [type(c).__name__ for c in provider.commands] == [
        "StartSession", "StopSession", "ReserveNow", "CancelReservation", "UnlockConnector",
    ]  # fmt: skip


async def test_unknown_path_and_wrong_method_alike() -> None:
    steps = [
        Step(
            "POST", "commands", ("SELF_DESTRUCT",), body={}, expect=(404, 2000), message="Not Found"
        ),
        Step(
            "GET", "commands", ("START_SESSION",), expect=(405, 2000), message="Method Not Allowed"
        ),
    ]
    http, _ = await over_http(steps)
    local, _ = await in_process(steps)
    for step, a, b in zip(steps, http, local, strict=True):
        # Same statuses; the messages name the URL on one side and the module on the other.
        assert (a.status, a.status_code) == (b.status, b.status_code) == step.expect
        assert step.message in (a.status_message or "") and step.message in (b.status_message or "")


# ------------------------------------------------------------ building blocks


def test_operation_templates_bind_segments() -> None:
    async def handler(call: OcpiCall) -> web.Response:
        raise AssertionError("not called")

    evse = Operation("GET", "/{location_id}/{evse_uid}", handler)
    assert evse.segments == ("{location_id}", "{evse_uid}")
    assert evse.bind(("LOC1", "3256")) == {"location_id": "LOC1", "evse_uid": "3256"}
    assert evse.bind(("LOC1",)) is None and evse.bind(("LOC1", "3256", "1")) is None
    assert evse.bind(("LOC1", "")) is None
    start = Operation("POST", "/START_SESSION", handler)
    assert start.bind(("START_SESSION",)) == {} and start.bind(("start_session",)) is None
    assert Operation("GET", "", handler).bind(()) == {}


def test_routes_keep_their_paths() -> None:
    routes = locations_sender_routes(Provider(), prefix=f"{BASE}/locations/")
    paths = [(r.method, r.path) for r in routes]
    assert paths == [
        ("GET", f"{BASE}/locations"),
        ("GET", f"{BASE}/locations/{{location_id}}"),
        ("GET", f"{BASE}/locations/{{location_id}}/{{evse_uid}}"),
        ("GET", f"{BASE}/locations/{{location_id}}/{{evse_uid}}/{{connector_id}}"),
    ]
    assert [r.path for r in cdrs_sender_routes(Provider(), prefix="/")] == ["/"]


async def test_call_helpers_without_a_request() -> None:
    context = OcpiRequestContext(
        party=EMSP,
        request_id="r",
        correlation_id="c",
        url=URL(f"{ORIGIN}/x?date_from=2020-01-01T00:00:00Z"),
    )
    call = OcpiCall(
        context=context,
        params={},
        query=MultiDict({"limit": "1", "date_from": "2020-01-01T00:00:00Z"}),
    )
    page = PageRequest(offset=0, limit=1)
    response = paginated_response(call, [1, 2], 5, page)
    assert isinstance(response.body, bytes) and json_loads(response.body)["data"] == [1]
    link = URL(next_link(response.headers.getall("Link")) or "")
    assert str(link.origin()) == ORIGIN and link.query["date_from"] == "2020-01-01T00:00:00Z"
    assert link.query["offset"] == "1"
