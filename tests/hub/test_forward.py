"""The forwarder against real aiohttp receivers on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict
from yarl import URL

from ocpi.hub.forward import (
    HUB_LINK_PARAM,
    ForwardedResponse,
    Forwarder,
    LocalRequest,
    envelope_status,
    hub_link,
    is_envelope,
    receiver_url,
)
from ocpi.hub.http1 import Http1Client
from ocpi.hub.routing import Forward, Local
from ocpi.transport import OcpiError, PartyId, next_link, parse_authorization
from tests.hub.servers import refused_url, running

EM1, CP1 = PartyId("NL", "EM1"), PartyId("NL", "CP1")
TOKEN = "token-hub-to-cpo1"
HUB_BASE = "https://hub.example.com/ocpi/2.2.1/locations/sender"
BODY = '{"id": "L1",  "evses":[{"uid":"E1","status":"AVAILABLE"}], "price": 0.10, "name":"Caf\\u00e9 \u00e9", "last_updated":"2024-01-02T03:04:05.678+01:00"}'.encode()


class Receiver:
    """Records what it gets; answers as the test sets it up."""

    def __init__(self) -> None:
        self.seen: list[tuple[web.Request, bytes]] = []
        self.status = 200
        self.body: bytes = (
            b'{"status_code":1000,"timestamp":"2024-01-01T00:00:00Z","data":{"n":1.50}}'
        )
        self.headers: dict[str, str] = {"Content-Type": "application/json"}
        self.delay = 0.0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request, await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)
        headers = {k: v.replace("{base}", self.url) for k, v in self.headers.items()}
        return web.Response(status=self.status, body=self.body, headers=headers)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    async with running(app) as url:
        rec.url = url
        yield rec


@pytest.fixture
async def session() -> AsyncIterator[Http1Client]:
    async with Http1Client() as s:
        yield s


async def tokens(platform_id: str) -> str | None:
    return TOKEN if platform_id == "cpo1" else None


def target(receiver: Receiver, *path: str, platform: str = "cpo1") -> Forward:
    return Forward(EM1, CP1, platform, f"{receiver.url}/ocpi/cpo/2.2.1/locations", path)


async def test_request_headers_and_exact_bytes_both_ways(
    receiver: Receiver, session: Http1Client
) -> None:
    forwarder = Forwarder(session, tokens)
    receiver.headers["OCPI-from-country-code"] = "NL"
    receiver.headers["OCPI-from-party-id"] = "CP1"
    receiver.headers["X-Request-ID"] = "receivers-own-id"
    receiver.headers["Set-Cookie"] = "a=b"
    response = await forwarder.send(
        target(receiver, "NL", "EM1", "L1"),
        method="PUT",
        correlation_id="corr-123",
        body=BODY,
        query={"x": "1"},
    )
    ((request, got),) = receiver.seen
    assert got == BODY
    assert request.method == "PUT"
    assert request.path_qs == "/ocpi/cpo/2.2.1/locations/NL/EM1/L1?x=1"
    assert request.headers["X-Correlation-ID"] == "corr-123"
    request_id = request.headers["X-Request-ID"]
    assert request_id and request_id != "corr-123"
    assert (
        request.headers["OCPI-from-country-code"] == "NL"
        and request.headers["OCPI-from-party-id"] == "EM1"
    )
    assert (
        request.headers["OCPI-to-country-code"] == "NL"
        and request.headers["OCPI-to-party-id"] == "CP1"
    )
    assert request.headers["Content-Type"] == "application/json"
    assert TOKEN in parse_authorization(request.headers["Authorization"])
    assert response.status == 200
    assert response.body == receiver.body
    assert response.headers["OCPI-from-party-id"] == "CP1"
    assert "X-Request-ID" not in response.headers and "Set-Cookie" not in response.headers
    # a second forward gets another request id
    await forwarder.send(target(receiver), method="GET", correlation_id="corr-123")
    assert receiver.seen[1][0].headers["X-Request-ID"] != request_id


async def test_explicit_routing_headers_for_broadcast(
    receiver: Receiver, session: Http1Client
) -> None:
    hub = PartyId("NL", "HUB")
    await Forwarder(session, tokens).send(
        target(receiver), method="PUT", correlation_id="c", body=b"{}", from_party=hub
    )
    request = receiver.seen[0][0]
    assert (
        request.headers["OCPI-from-party-id"] == "HUB"
        and request.headers["OCPI-to-party-id"] == "CP1"
    )


async def test_link_rewrite_round_trip(receiver: Receiver, session: Http1Client) -> None:
    forwarder = Forwarder(session, tokens)
    own_link = "{base}/ocpi/cpo/2.2.1/locations?offset=2&limit=2&date_from=2024-01-01T00%3A00%3A00Z"
    receiver.headers.update(
        {"Link": f'<{own_link}>; rel="next"', "X-Total-Count": "9", "X-Limit": "2"}
    )
    first = await forwarder.send(
        target(receiver), method="GET", correlation_id="c", hub_base=HUB_BASE, query={"limit": "2"}
    )
    link = next_link(first.headers.getall("Link"))
    assert link is not None
    assert link == f"{HUB_BASE}?offset=2&limit=2&date_from=2024-01-01T00:00:00Z"
    assert first.headers["X-Total-Count"] == "9" and first.headers["X-Limit"] == "2"
    # the client follows the hub link (same OCPI-to): the receiver gets its own link back
    await forwarder.send(target(receiver), method="GET", correlation_id="c", query=URL(link).query)
    expected = URL(own_link.replace("{base}", receiver.url))
    assert URL(str(receiver.seen[1][0].url)) == expected


async def test_opaque_link_round_trip_and_foreign_origin_refused(
    receiver: Receiver, session: Http1Client
) -> None:
    forwarder = Forwarder(session, tokens)
    receiver.headers["Link"] = '<{base}/cursor/abc%2Fdef?c=1>; rel="next"'
    first = await forwarder.send(
        target(receiver), method="GET", correlation_id="c", hub_base=HUB_BASE
    )
    link = next_link(first.headers.getall("Link"))
    assert (
        link is not None
        and URL(link).path == URL(HUB_BASE).path
        and HUB_LINK_PARAM in URL(link).query
    )
    await forwarder.send(target(receiver), method="GET", correlation_id="c", query=URL(link).query)
    assert receiver.seen[1][0].raw_path == "/cursor/abc%2Fdef?c=1"
    evil = base64.urlsafe_b64encode(b"http://169.254.169.254/latest").decode().rstrip("=")
    with pytest.raises(OcpiError) as info:
        await forwarder.send(
            target(receiver), method="GET", correlation_id="c", query={HUB_LINK_PARAM: evil}
        )
    assert info.value.status_code == 2001
    assert len(receiver.seen) == 2


async def test_timeout_is_4002(receiver: Receiver, session: Http1Client) -> None:
    receiver.delay = 2.0
    forwarder = Forwarder(session, tokens, timeout=5)
    with pytest.raises(OcpiError) as info:
        await forwarder.send(
            target(receiver), method="GET", correlation_id="c", request_timeout=0.2
        )
    assert info.value.status_code == 4002 and "0.2 s" in info.value.message


async def test_connection_refused_is_4003(session: Http1Client) -> None:
    forward = Forward(EM1, CP1, "cpo1", refused_url())
    with pytest.raises(OcpiError) as info:
        await Forwarder(session, tokens).send(forward, method="GET", correlation_id="c")
    assert info.value.status_code == 4003


async def test_dns_failure_is_4003(session: Http1Client) -> None:
    forward = Forward(EM1, CP1, "cpo1", "http://no-such-host.invalid/ocpi/locations")
    with pytest.raises(OcpiError) as info:
        await Forwarder(session, tokens).send(
            forward, method="GET", correlation_id="c", request_timeout=5
        )
    assert info.value.status_code in (4002, 4003)


async def test_no_credentials_is_4003(receiver: Receiver, session: Http1Client) -> None:
    with pytest.raises(OcpiError) as info:
        await Forwarder(session, tokens).send(
            target(receiver, platform="unknown"), method="GET", correlation_id="c"
        )
    assert info.value.status_code == 4003 and not receiver.seen


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            200,
            b'{"status_code": 2001, "status_message": "evses[0].status: bad", "timestamp": "2024-01-01T00:00:00Z"}',
        ),
        (
            404,
            b'{"status_code":2003,"status_message":"Unknown Location","timestamp":"2024-01-01T00:00:00Z"}',
        ),
        (500, b'{"status_code":3000,"timestamp":"2024-01-01T00:00:00Z"}'),
        (
            200,
            b'{"status_code":4001,"status_message":"behind another hub","timestamp":"2024-01-01T00:00:00Z"}',
        ),
    ],
)
async def test_receiver_errors_pass_through(
    receiver: Receiver, session: Http1Client, status: int, body: bytes
) -> None:
    receiver.status, receiver.body = status, body
    response = await Forwarder(session, tokens).send(
        target(receiver), method="GET", correlation_id="c"
    )
    assert (response.status, response.body) == (status, body)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (502, b"<html>Bad Gateway</html>"),
        (200, b"[1, 2]"),
        (404, b"Not Found"),
        (200, b'{"status_code": "1000"}'),
        (401, b""),
    ],
)
async def test_non_envelope_answer_is_4000(
    receiver: Receiver, session: Http1Client, status: int, body: bytes
) -> None:
    receiver.status, receiver.body = status, body
    with pytest.raises(OcpiError) as info:
        await Forwarder(session, tokens).send(target(receiver), method="GET", correlation_id="c")
    assert info.value.status_code == 4000 and f"HTTP {status}" in info.value.message


async def test_response_size_cap(receiver: Receiver, session: Http1Client) -> None:
    receiver.body = b'{"status_code":1000,"data":"' + b"x" * 5000 + b'"}'
    with pytest.raises(OcpiError) as info:
        await Forwarder(session, tokens, max_response_bytes=1000).send(
            target(receiver), method="GET", correlation_id="c"
        )
    assert info.value.status_code == 4000


async def test_local_target_uses_in_process_handler(session: Http1Client) -> None:
    got: list[LocalRequest] = []

    async def handler(request: LocalRequest) -> ForwardedResponse:
        got.append(request)
        return ForwardedResponse(
            200, CIMultiDict({"Content-Type": "application/json"}), b'{"status_code":1000}'
        )

    local = Local(EM1, PartyId("NL", "GWY"), "gw", ("START_SESSION",))
    response = await Forwarder(session, tokens, local=handler).send(
        local, method="post", correlation_id="corr", body=BODY, query={"a": "b"}
    )
    assert response.body == b'{"status_code":1000}'
    (request,) = got
    assert request.method == "POST" and request.body == BODY and request.correlation_id == "corr"
    assert (
        request.request_id != "corr"
        and request.from_party == EM1
        and request.to_party == PartyId("NL", "GWY")
    )
    assert request.query["a"] == "b"
    with pytest.raises(OcpiError) as info:
        await Forwarder(session, tokens).send(local, method="POST", correlation_id="c")
    assert info.value.status_code == 4003


# ------------------------------------------------------------- pure helpers

# Path segments as a receiver's URLs have them: never containing "/" (an id with a slash
# would be percent-encoded by its sender), never "." or "..".
segments = st.lists(
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="/"),
        min_size=1,
        max_size=8,
    ).filter(lambda s: s not in (".", "..")),
    max_size=3,
)
queries = st.dictionaries(
    st.text(min_size=1, max_size=6).filter(lambda s: s != HUB_LINK_PARAM),
    st.text(max_size=10),
    max_size=4,
)


@given(rest=segments, query=queries)
def test_hub_link_inverts(rest: list[str], query: dict[str, str]) -> None:
    endpoint = "http://cpo.example:8080/ocpi/cpo/2.2.1/locations"
    link = URL(endpoint)
    for segment in rest:
        link = link / segment
    link = link.with_query(query)
    mapped = URL(hub_link(str(link), receiver_base=endpoint, hub_base=HUB_BASE))
    assert mapped.origin() == URL(HUB_BASE).origin()
    back = receiver_url(endpoint, tuple(mapped.parts[len(URL(HUB_BASE).parts) :]), mapped.query)
    assert back == link


def test_is_envelope() -> None:
    assert is_envelope(b' {"status_code": 1000}')
    assert not is_envelope(b'{"status_code": true}')
    assert not is_envelope(b'{"data": []}')
    assert not is_envelope(b"\xff")
    assert json.loads(BODY)["name"] == "Café é"
    # What orjson refuses and the json module reads: read by json, same verdicts.
    assert envelope_status(b'{"status_code": 2000, "data": NaN}') == 2000
    assert envelope_status(b'{"status_code": 1000, "status_message": "\\ud800"}') == 1000
    assert envelope_status('{"status_code": 3001}'.encode("utf-16-le")) == 3001
    assert envelope_status(b'{"status_code": 1000, "data": [1,]}') is None


def _json_module_status(body: bytes) -> int | None:
    """envelope_status as it was, on the json module alone."""
    if not body.lstrip().startswith(b"{"):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    code = parsed.get("status_code") if isinstance(parsed, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    envelope=st.dictionaries(
        st.sampled_from(["status_code", "data", "status_message", "timestamp"]),
        _json_values,
    ),
    cut=st.integers(min_value=0, max_value=200),
    ascii_only=st.booleans(),
)
def test_envelope_status_gives_the_json_modules_verdict(
    envelope: dict[str, object], cut: int, ascii_only: bool
) -> None:
    whole = json.dumps(envelope, ensure_ascii=ascii_only).encode()  # NaN, lone surrogates too
    for body in (whole, whole[:cut], whole[cut:], b" " + whole):
        assert envelope_status(body) == _json_module_status(body)
        # Large enough for the simdjson path (small answers go to orjson).
        padded = _padded(body)
        assert envelope_status(padded) == _json_module_status(padded)


def _padded(body: bytes) -> bytes:
    """``body`` with JSON whitespace after its first byte: the same JSON (or the same
    non-JSON), over envelope_status's size for simdjson."""
    return body[:1] + b" " * 600 + body[1:]


@given(
    fields=st.lists(
        st.tuples(
            st.sampled_from(['"status_code"', '"status\\u005fcode"', '"data"', '"status_cod"']),
            st.sampled_from(
                [
                    "1000",
                    "2001",
                    "-0",
                    "1e3",
                    "1000.0",
                    "true",
                    "null",
                    '"1000"',
                    "[1]",
                    "{}",
                    "18446744073709551616",
                    "1e400",
                    "NaN",
                    '"\\ud800"',
                    "01",
                    "1000,",
                ]
            ),
        ),
        max_size=4,
    ),
    tail=st.sampled_from([b"", b" ", b"\n", b" x", b"{}", b"\x00", b"\xff"]),
)
def test_envelope_status_of_raw_fields_is_the_json_modules_verdict(
    fields: list[tuple[str, str]], tail: bytes
) -> None:
    # Written by hand, not by json.dumps: repeated keys (json keeps the last), a key
    # spelled with an escape, numbers each parser reads its own way, text after the end.
    body = ("{" + ",".join(f"{key}:{value}" for key, value in fields) + "}").encode() + tail
    assert envelope_status(body) == _json_module_status(body)
    assert envelope_status(_padded(body)) == _json_module_status(_padded(body))


@pytest.mark.parametrize(
    ("body", "status"),
    [
        # Integers beyond 64 bits: orjson reads them as floats, json as integers.
        (b'{"status_code": -9223372036854775809}', -9223372036854775809),
        (b'{"status_code": 18446744073709551616, "data": []}', 18446744073709551616),
        (b'{"status_code": 1000.0}', None),
        (b'{"status_code": 1e3}', None),
        (b'{"status_code": 1000}', 1000),
        (b'{"status_code": 1000, "status_code": 2001}', 2001),
        (b'{"status_code": 1000, "status\\u005fcode": 3000}', 3000),
        (b'{"status_code": -0}', 0),
    ],
)
def test_envelope_status_of_numbers_orjson_and_json_read_apart(
    body: bytes, status: int | None
) -> None:
    assert envelope_status(body) == status == _json_module_status(body)
    assert envelope_status(_padded(body)) == status
