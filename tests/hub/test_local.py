"""ocpi.hub.local: requests for in-process parties reach the module operations; what
matches nothing is 404 or 405, a crash is 3000 without details, an OcpiError from the
host's context is its envelope, and the handler never raises."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from ocpi.hub.forward import ForwardedResponse, Forwarder, LocalRequest
from ocpi.hub.http1 import Http1Client
from ocpi.hub.local import local_handler
from ocpi.hub.routing import HubRequest, Local, RouterConfig, route
from ocpi.server import OcpiCall, OcpiRequestContext, Operation, ocpi_response
from ocpi.transport import HubConnectionProblemError, PartyId, UnknownLocationError, json_loads
from ocpi.v221.enums import InterfaceRole
from tests.hub.servers import HUB, R, S, sample_directory

EM1, GWY = PartyId("NL", "EM1"), PartyId("NL", "GWY")


class Host:
    """The operations of a tiny locations module and the host's context factory; records
    what the handlers saw."""

    def __init__(self) -> None:
        self.calls: list[OcpiCall] = []
        self.contexts = 0

    async def get_location(self, call: OcpiCall) -> web.Response:
        self.calls.append(call)
        location_id = call.params["location_id"]
        if location_id == "CRASH":
            raise RuntimeError("database password is hunter2")
        if location_id == "TEAPOT":
            raise web.HTTPRequestEntityTooLarge(max_size=1, actual_size=2)
        if location_id != "LOC1":
            raise UnknownLocationError(f"location_id: unknown Location {location_id!r}")
        return ocpi_response(
            {"id": location_id, "query": dict(call.query), "body": call.body.decode()}
        )

    async def start(self, call: OcpiCall) -> web.Response:
        self.calls.append(call)
        return ocpi_response({"result": "ACCEPTED", "timeout": 30})

    def operations(self) -> dict[tuple[str, InterfaceRole], list[Operation]]:
        return {
            ("locations", S): [
                Operation("GET", "/{location_id}", self.get_location),
                Operation("PUT", "/{location_id}", self.get_location),
            ],
            ("commands", R): [Operation("POST", "/START_SESSION", self.start)],
        }

    async def context_for(self, request: LocalRequest) -> OcpiRequestContext:
        self.contexts += 1
        if request.from_party == PartyId("NL", "BAD"):
            raise HubConnectionProblemError("party NL*BAD is suspended")
        if request.from_party == PartyId("NL", "BUG"):
            raise KeyError("no such party")
        return OcpiRequestContext(
            party=request.to_party,
            request_id=request.request_id,
            correlation_id=request.correlation_id,
            url=URL("https://hub.example.com/x"),
            from_party=request.from_party,
            to_party=request.to_party,
        )


@pytest.fixture
def host() -> Host:
    return Host()


def request(
    method: str,
    module: str,
    interface: InterfaceRole,
    *path: str,
    from_party: PartyId = EM1,
    body: bytes | None = None,
) -> LocalRequest:
    target = Local(EM1, GWY, "gw", path, module=module, interface=interface)
    return LocalRequest(
        target=target,
        method=method,
        query=CIMultiDict({"q": "1"}),
        body=body,
        correlation_id="corr",
        request_id="req",
        from_party=from_party,
        to_party=GWY,
    )


async def answer(host: Host, local: LocalRequest) -> tuple[ForwardedResponse, dict[str, Any]]:
    handler = local_handler(host.operations(), host.context_for)
    response = await handler(local)
    return response, json_loads(response.body)


# --------------------------------------------------------------------- matches


async def test_operation_gets_params_query_body_and_context(host: Host) -> None:
    response, body = await answer(host, request("PUT", "locations", S, "LOC1", body=b"{}"))
    assert (response.status, body["status_code"]) == (200, 1000)
    assert body["data"] == {"id": "LOC1", "query": {"q": "1"}, "body": "{}"}
    (call,) = host.calls
    assert call.context.party == GWY and call.context.correlation_id == "corr"
    assert response.headers["Content-Type"].startswith("application/json")
    # Answered back to the sender: OCPI-to is the request's OCPI-from.
    assert (response.headers["OCPI-to-party-id"], response.headers["OCPI-from-party-id"]) == (
        "EM1",
        "GWY",
    )


async def test_ocpi_error_of_an_operation_is_its_envelope(host: Host) -> None:
    response, body = await answer(host, request("GET", "locations", S, "NOPE"))
    assert (response.status, body["status_code"]) == (404, 2003)
    assert body["status_message"] == "location_id: unknown Location 'NOPE'"


async def test_head_is_get_without_body(host: Host) -> None:
    response = await local_handler(host.operations(), host.context_for)(
        request("HEAD", "locations", S, "LOC1")
    )
    assert response.status == 200 and response.body == b""
    assert response.headers["Content-Type"].startswith("application/json")
    assert len(host.calls) == 1


# ------------------------------------------------------------------- 404 / 405


@pytest.mark.parametrize(
    ("module", "interface", "path"),
    [
        ("locations", S, ()),  # no list operation registered
        ("locations", S, ("LOC1", "3256")),  # too many segments
        ("locations", R, ("LOC1",)),  # the interface is not served in-process
        ("tariffs", S, ()),  # nor the module
        ("commands", R, ("start_session",)),  # literal segments match exactly
        ("locations", S, ("",)),  # an empty segment is no id
    ],
)
async def test_no_operation_at_the_path_is_404_2000(
    host: Host, module: str, interface: InterfaceRole, path: tuple[str, ...]
) -> None:
    response, body = await answer(
        host, request("GET" if module != "commands" else "POST", module, interface, *path)
    )
    assert (response.status, body["status_code"]) == (404, 2000)
    assert body["status_message"].startswith("Not Found:")
    assert f"{module} " in body["status_message"]
    assert host.calls == []


async def test_wrong_method_is_405_2000_with_allow(host: Host) -> None:
    response, body = await answer(host, request("DELETE", "locations", S, "LOC1"))
    assert (response.status, body["status_code"]) == (405, 2000)
    assert response.headers["Allow"] == "GET,HEAD,PUT"
    assert body["status_message"].startswith("Method Not Allowed: DELETE locations SENDER /LOC1")
    response, body = await answer(host, request("GET", "commands", R, "START_SESSION"))
    assert (response.status, response.headers["Allow"]) == (405, "POST")
    assert host.calls == []


# ------------------------------------------------------------- failures


async def test_crash_is_3000_500_logged_without_details(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="ocpi.hub.local"):
        response, body = await answer(host, request("GET", "locations", S, "CRASH"))
    assert (response.status, body["status_code"]) == (500, 3000)
    assert body["status_message"] == "Internal server error"
    assert b"hunter2" not in response.body
    (record,) = [r for r in caplog.records if r.name == "ocpi.hub.local"]
    assert "hunter2" in (record.exc_text or "") and "req" in record.getMessage()


async def test_aiohttp_http_error_of_an_operation_keeps_its_status(host: Host) -> None:
    response, body = await answer(host, request("GET", "locations", S, "TEAPOT"))
    assert (response.status, body["status_code"]) == (413, 2000)


async def test_context_for_raising_ocpi_error_is_its_envelope(host: Host) -> None:
    response, body = await answer(
        host, request("GET", "locations", S, "LOC1", from_party=PartyId("NL", "BAD"))
    )
    assert (response.status, body["status_code"]) == (200, 4003)
    assert body["status_message"] == "party NL*BAD is suspended"
    assert host.calls == []


async def test_context_for_crashing_is_3000(host: Host, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="ocpi.hub.local"):
        response, body = await answer(
            host, request("GET", "locations", S, "LOC1", from_party=PartyId("NL", "BUG"))
        )
    assert (response.status, body["status_code"]) == (500, 3000)
    assert any("no such party" in (r.exc_text or "") for r in caplog.records)
    assert host.calls == []


# ------------------------------------------------------------ through routing


@pytest.fixture
async def session() -> AsyncIterator[Http1Client]:
    async with Http1Client() as client_session:
        yield client_session


async def test_routed_local_target_reaches_the_operation(host: Host, session: Http1Client) -> None:
    hub_request = HubRequest(
        method="POST", module="commands", interface=R, platform_id="emsp1",
        path=("START_SESSION",), from_party=EM1, to_party=GWY,
    )  # fmt: skip
    decision = route(hub_request, sample_directory(), RouterConfig(hub_party=HUB))
    assert isinstance(decision, Local)
    assert (decision.module, decision.interface, decision.path) == (
        "commands",
        R,
        ("START_SESSION",),
    )

    async def no_tokens(platform_id: str) -> str | None:
        return None

    handler = local_handler(host.operations(), host.context_for)
    forwarder = Forwarder(session, no_tokens, local=handler)
    response = await forwarder.send(decision, method="post", correlation_id="c-9", body=b"{}")
    body = json_loads(response.body)
    assert (response.status, body["status_code"], body["data"]["result"]) == (200, 1000, "ACCEPTED")
    (call,) = host.calls
    assert call.context.from_party == EM1 and call.context.correlation_id == "c-9"
    assert call.body == b"{}" and host.contexts == 1
