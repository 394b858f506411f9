"""ocpi.version_adapters without the gateway: the 2.2.1 providers served in 2.1.1 and
2.3.0, with what cannot be expressed left out of pages (and counted), converted
location pages kept, and bodies converted up before the 2.2.1 operations."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from multidict import MultiDict
from yarl import URL

import ocpi.v211 as v211
import ocpi.v221 as v221
from ocpi import version_adapters
from ocpi.server import OcpiCall, OcpiRequestContext, Operation
from ocpi.transport import PageRequest, RawJson, json_dumps, json_loads
from ocpi.version_adapters import CpoModules, cpo_operations_v211, cpo_operations_v230
from tests.ocpi.openapi import validate_against_openapi

EXAMPLES = Path(__file__).parent / "examples"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def example(name: str) -> dict[str, Any]:
    return dict(json_loads((EXAMPLES / name).read_text()))


class Fake:
    """Every provider protocol, over lists (the 2.2.1 form)."""

    def __init__(self) -> None:
        self.locations: list[v221.Location | RawJson] = []
        self.by_id: dict[str, v221.Location] = {}
        self.tariffs: list[v221.Tariff] = []
        self.sessions: list[v221.Session] = []
        self.cdrs: list[v221.CDR] = []
        self.tokens: list[v221.Token] = []
        self.commands: list[Any] = []

    @staticmethod
    def _page(items: Sequence[Any], page: PageRequest) -> tuple[Sequence[Any], int]:
        return items[page.offset : page.offset + page.limit], len(items)

    async def list_locations(self, context: Any, page: PageRequest) -> tuple[Sequence[Any], int]:
        return self._page(self.locations, page)

    async def get_location(self, context: Any, location_id: str) -> v221.Location | None:
        return self.by_id.get(location_id)

    async def list_tariffs(self, context: Any, page: PageRequest) -> tuple[Sequence[Any], int]:
        return self._page(self.tariffs, page)

    async def list_sessions(self, context: Any, page: PageRequest) -> tuple[Sequence[Any], int]:
        return self._page(self.sessions, page)

    async def list_cdrs(self, context: Any, page: PageRequest) -> tuple[Sequence[Any], int]:
        return self._page(self.cdrs, page)

    async def get_token(self, context: Any, cc: str, pid: str, uid: str, token_type: str) -> v221.Token | None:
        return next((t for t in self.tokens if (t.uid, str(t.type)) == (uid, token_type)), None)

    async def put_token(self, context: Any, token: v221.Token) -> bool:
        self.tokens.append(token)
        return True

    async def patch_token(self, context: Any, *args: Any) -> v221.Token | None:
        return None

    async def _command(self, context: Any, command: Any) -> v221.CommandResponse:
        self.commands.append(command)
        return v221.CommandResponse(result=v221.CommandResponseType.ACCEPTED, timeout=30)

    start_session = stop_session = reserve_now = cancel_reservation = unlock_connector = _command


def modules(fake: Fake) -> CpoModules:
    return CpoModules(fake, fake, fake, fake, fake, fake)


def call(path: str, query: dict[str, str] | None = None, body: Any = None, **params: str) -> OcpiCall:
    context = OcpiRequestContext(
        party=None, request_id="r", correlation_id="c", url=URL(f"http://cpo.example/ocpi{path}").with_query(query or {})
    )
    raw = b"" if body is None else json_dumps(body).encode()
    return OcpiCall(context=context, params=params, query=MultiDict(query or {}), body=raw)


def operation(ops: dict[str, list[Operation]], module: str, method: str, path: str) -> Operation:
    return next(op for op in ops[module] if (op.method, op.path) == (method, path))


def answer(response: Any) -> dict[str, Any]:
    return dict(json_loads(response.text))


def location(location_id: str, standard: str = "IEC_62196_T2") -> v221.Location:
    data = example("location_example.json") | {"id": location_id}
    for evse in data["evses"]:
        for connector in evse["connectors"]:
            connector["standard"] = standard
    return v221.Location.model_validate(data)


async def test_pages_leave_out_what_the_version_cannot_express(caplog: pytest.LogCaptureFixture) -> None:
    fake = Fake()
    regular = v221.Tariff.model_validate(example("tariff_1_simple_2hour.json"))
    with_min = v221.Tariff.model_validate(example("tariff_12_025kwh_min_price.json"))
    fake.tariffs = [regular, with_min, regular]
    ops = cpo_operations_v211(modules(fake), party_of=lambda c: ("NL", "EMS"), now=lambda: NOW)
    with caplog.at_level(logging.WARNING, logger="ocpi.versions"):
        response = await operation(ops, "tariffs", "GET", "").handler(call("/2.1.1/tariffs", {"limit": "2"}))
    body = answer(response)
    assert len(body["data"]) == 1  # the second one (min_price) left out
    for tariff in body["data"]:
        v211.Tariff.model_validate(tariff)
    # The headers count what the provider gave: the next page starts after both.
    assert response.headers["X-Total-Count"] == "3"
    assert "offset=2" in response.headers["Link"]
    assert any("min_price" in r.getMessage() and "2.1.1" in r.getMessage() for r in caplog.records)


async def test_location_pages_converted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Fake()
    fake.locations = [RawJson(json_dumps(location("A"))), RawJson(json_dumps(location("B", "GBT_AC")))]
    calls: list[str] = []
    real = version_adapters.to_version

    def counting(obj: Any, version: str, **kwargs: Any) -> Any:
        calls.append(obj.id)
        return real(obj, version, **kwargs)

    monkeypatch.setattr(version_adapters, "to_version", counting)
    ops = cpo_operations_v211(modules(fake), party_of=lambda c: ("NL", "EMS"), now=lambda: NOW)
    lister = operation(ops, "locations", "GET", "")
    first = answer(await lister.handler(call("/2.1.1/locations")))
    second = answer(await lister.handler(call("/2.1.1/locations")))
    assert [loc["id"] for loc in first["data"]] == ["A"] == [loc["id"] for loc in second["data"]]
    assert calls == ["A", "B"]  # once each, the failure too
    # A location that changed (new JSON) is converted again.
    fake.locations[0] = RawJson(json_dumps(location("A").model_copy(update={"name": "Renamed"})))
    third = answer(await lister.handler(call("/2.1.1/locations")))
    assert third["data"][0]["name"] == "Renamed"
    assert calls == ["A", "B", "A"]


async def test_230_pages_valid_against_openapi() -> None:
    fake = Fake()
    fake.locations = [location("A")]
    fake.by_id = {"A": location("A")}
    fake.tariffs = [v221.Tariff.model_validate(example(n)) for n in ("tariff_1_simple_2hour.json", "tariff_4_complex.json")]
    fake.sessions = [v221.Session.model_validate(example("session_example_2_short_finished.json"))]
    fake.cdrs = [v221.CDR.model_validate(example("cdr_example.json"))]
    ops = cpo_operations_v230(modules(fake))
    for module, schema, query in (
        ("locations", "Location", {}),
        ("tariffs", "Tariff", {}),
        ("sessions", "Session", {"date_from": "2015-01-01T00:00:00Z"}),
        ("cdrs", "CDR", {}),
    ):
        body = answer(await operation(ops, module, "GET", "").handler(call(f"/2.3.0/{module}", query)))
        assert body["data"], module
        for item in body["data"]:
            validate_against_openapi(module, schema, item, version="2.3.0")


async def test_211_sessions_without_their_location_are_left_out() -> None:
    fake = Fake()
    session = v221.Session.model_validate(example("session_example_2_short_finished.json"))
    fake.sessions = [session, session.model_copy(update={"id": "S2", "location_id": "GONE"})]
    fake.by_id = {session.location_id: location(session.location_id)}
    ops = cpo_operations_v211(modules(fake), party_of=lambda c: ("NL", "EMS"), now=lambda: NOW)
    body = answer(await operation(ops, "sessions", "GET", "").handler(call("/2.1.1/sessions", {"date_from": "2015-01-01T00:00:00Z"})))
    assert [s["id"] for s in body["data"]] == [session.id]
    v211.Session.model_validate(body["data"][0])


async def test_211_bodies_converted_up() -> None:
    fake = Fake()
    ops = cpo_operations_v211(modules(fake), party_of=lambda c: ("NL", "EMS"), now=lambda: NOW)
    token = {"uid": "012345678", "type": "RFID", "auth_id": "NL-EMS-C12345", "issuer": "x", "valid": True,
             "whitelist": "ALWAYS", "last_updated": "2026-11-23T08:00:00Z"}  # fmt: skip
    put = operation(ops, "tokens", "PUT", "/{country_code}/{party_id}/{token_uid}")
    response = await put.handler(call("/2.1.1/tokens/NL/EMS/012345678", body=token, country_code="NL", party_id="EMS", token_uid="012345678"))
    assert (response.status, answer(response)["status_code"]) == (201, 1000)
    [stored] = fake.tokens
    assert (stored.country_code, stored.party_id, stored.contract_id) == ("NL", "EMS", "NL-EMS-C12345")
    # A command's token takes the eMSP's party; the answer is 2.1.1's (result only).
    start = {"response_url": "https://emsp.example/r/1", "token": token, "location_id": "LOC1"}
    response = await operation(ops, "commands", "POST", "/START_SESSION").handler(call("/2.1.1/commands/START_SESSION", body=start))
    assert answer(response)["data"] == {"result": "ACCEPTED"}
    [command] = fake.commands
    assert isinstance(command, v221.StartSession)
    assert (command.token.country_code, command.token.party_id) == ("NL", "EMS")
    assert "CANCEL_RESERVATION" not in {op.path.strip("/") for op in ops["commands"]}
    # The token's 2.1.1 form on GET; an unknown one is 2004.
    get = operation(ops, "tokens", "GET", "/{country_code}/{party_id}/{token_uid}")
    response = await get.handler(call("/2.1.1/tokens/NL/EMS/012345678", country_code="NL", party_id="EMS", token_uid="012345678"))
    assert answer(response)["data"] == copy.deepcopy(token)
