"""OCPI and admin fuzzing: bodies generated from the official OCPI 2.2.1 OpenAPI
description (and the admin API's own schemas), sent valid and mutated to a real
gateway by real partners:

- a bilateral eMSP (``tests/roaming/emsp.py``, registered through the credentials
  handshake) to the CPO interface's receivers: tokens PUT/PATCH, commands, credentials;
- a CPO and an eMSP platform registered at the hub (``tests/hub/platform.py``) to every
  receiver interface of the hub, with routing headers naming the other platform, the
  hub (broadcast), the hosted CPO, nobody (open routing) or a stranger;
- the operator to ``/admin``: locations and tariffs (OCPI Location and Tariff schemas),
  tokens, chargers and charger commands (the admin API's pydantic models).

Pass: never a 5xx; every answer JSON, an OCPI envelope on OCPI paths (with a
``status_message`` on errors and never 3000), ``{"error": reason}`` on admin errors; a
body that is not a JSON object is refused; nothing logged at ERROR or with a traceback.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.admin import schemas as admin_schemas
from tests.conftest import Gateway, GatewayFactory
from tests.fuzz.conftest import FuzzConfig, LogWatch
from tests.fuzz.http_bodies import (
    RECEIVER_MODULES,
    Body,
    BodyFactory,
    ocpi_schema,
    openapi_valid,
    operations,
    pydantic_schema,
    require_spec,
)
from tests.hub.platform import Platform
from tests.hub.platform import token_header as platform_token
from tests.roaming.emsp import EmspPlatform, token_header

REQUESTS = 2_500  # at the default frame count; scales with GATEWAY_FUZZ_FRAMES
WORKERS = 4
HUB, HOSTED = ("ZZ", "HUB"), ("ZZ", "GWY")
CPO_SIDE = {"locations", "tariffs", "sessions", "cdrs"}  # pushed by CPOs to eMSPs
OFFLINE = "FUZZ-OFFLINE"


def _root_pem() -> str:
    """A self-signed certificate (what install-certificate's body must carry)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fuzz Root")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# Command body fields the generator cannot make valid on its own.
_FIXED: dict[str, dict[str, Any]] = {"install-certificate": {"certificate": _root_pem()}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: Body
    label: str  # operation and mutation, for the report
    ocpi: bool
    # The gateway itself must read the body (it is the receiver, or routes by it); a
    # request the hub forwards to a platform keeps its body bytes unchanged (README).
    parsed: bool = True


@dataclass
class Findings:
    problems: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)

    def fail(self, request: Request, problem: str, status: int, answer: Any) -> None:
        key = f"{request.label}: {problem}"
        self.problems[key] += 1
        if key not in self.examples:
            data = request.body.data or b""
            shown = data if len(data) <= 300 else data[:240] + b"...(%d bytes)" % len(data)
            self.examples[key] = f"{request.method} {request.url[:160]}\n      body {shown!r}\n      -> {status} {str(answer)[:300]!r}"

    def report(self) -> str:
        lines = [f"{sum(self.problems.values())} failures:"]
        for key, count in self.problems.most_common():
            lines.append(f"  {count:5d} x {key}\n      {self.examples[key]}")
        return "\n".join(lines)


@dataclass
class World:
    gateway: Gateway
    emsp: EmspPlatform
    peer_token: str
    cpo: Platform
    msp: Platform


async def _join(gateway: Gateway, platform: Platform) -> None:
    status, partner = await gateway.admin("POST", "/partners", {"name": platform.name, "kind": "HUB"})
    assert status == 201, partner
    await platform.register(partner["our_versions_url"], partner["token_a"])


@pytest.fixture
async def world(gateways: GatewayFactory) -> AsyncIterator[World]:
    require_spec()
    gateway = await gateways.start(port=_free_port())
    emsp = EmspPlatform()
    cpo = Platform("Fuzz CPO", "CPO", [("BE", "CPX")])
    msp = Platform("Fuzz eMSP", "EMSP", [("NL", "EM1")])
    for server in (emsp, cpo, msp):
        await server.start()
    try:
        _, partner = await gateway.admin("POST", "/partners", {"name": "peer eMSP"})
        status, body = await gateway.admin(
            "POST", f"/partners/{partner['id']}/register", {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a}
        )
        assert status == 200, body
        assert emsp.cpo_token is not None
        await _join(gateway, cpo)
        await _join(gateway, msp)
        status, body = await gateway.admin("PUT", f"/chargers/{OFFLINE}", {"evses": [{"ocpp_id": 1, "evse_uid": "OFF-1"}]})
        assert status == 201, body
        yield World(gateway, emsp, emsp.cpo_token, cpo, msp)
    finally:
        for server in (emsp, cpo, msp):
            await server.stop()


_ODD_SEGMENTS = ["X", "NLD", "ü", "%", "..", "a" * 40, "a/b", " ", "\u202e", "0"]


class Planner:
    """Makes the requests, deterministically from ``rng``."""

    def __init__(self, rng: random.Random, world: World) -> None:
        self.rng = rng
        self.world = world
        self.ops: list[tuple[str, Any, BodyFactory]] = []  # (target, operation, factory)
        for module in ("tokens", "commands"):
            for op in operations(module):
                self.ops.append(("peer", op, self._factory(op.schema, op.schema_module, op.schema_name)))
        for module in RECEIVER_MODULES:
            for op in operations(module):
                self.ops.append(("hub", op, self._factory(op.schema, op.schema_module, op.schema_name)))
        self.credentials = [(op, self._factory(op.schema, op.schema_module, op.schema_name)) for op in operations("credentials")]
        self.admin: list[tuple[str, str, BodyFactory]] = [
            ("PUT", "/locations/{id}", self._factory(ocpi_schema("locations", "Location"), "locations", "Location")),
            ("PUT", "/tariffs/{id}", self._factory(ocpi_schema("tariffs", "Tariff"), "tariffs", "Tariff")),
            ("PUT", "/tokens/{id}", self._admin_factory(admin_schemas.TokenBody)),
            ("PUT", "/chargers/{id}", self._admin_factory(admin_schemas.ChargerBody)),
        ]
        for name, model in sorted(admin_schemas.COMMANDS.items()):
            factory = self._admin_factory(model, _FIXED.get(name, {}))
            self.admin.append(("POST", f"/chargers/{OFFLINE}/commands/{name}", factory))

    def _factory(self, schema: Any, module: str, name: str) -> BodyFactory:
        return BodyFactory(self.rng, schema, openapi_valid(module, name), label=f"{module}/{name}")

    def _admin_factory(self, model: Any, fixed: dict[str, Any] | None = None) -> BodyFactory:
        def valid(value: Any) -> bool:
            try:
                model.model_validate(value)
            except ValueError:
                return False
            return True

        schema = pydantic_schema(model)
        for name, value in (fixed or {}).items():
            # A field no schema can describe (a PEM certificate that must parse): the
            # valid bodies carry a real one, the mutations do the rest.
            schema = schema | {"properties": schema["properties"] | {name: {"const": value}}}
        return BodyFactory(self.rng, schema, valid, label=model.__name__)

    def _segment(self, value: Any) -> str:
        rng = self.rng
        if rng.random() < 0.15 or not isinstance(value, str) or not value:
            value = rng.choice([*_ODD_SEGMENTS, f"ID{rng.randint(0, 99)}"])
        if value.strip(".") == "":
            # The client resolves dot segments before sending (yarl): the request would
            # leave the URL space under test (tests/hub covers dot segments on the hub).
            value = "dots" + value
        return quote(value, safe="")

    def _path(self, template: str, body: Any, party: tuple[str, str]) -> str:
        values = body if isinstance(body, dict) else {}
        filled = template
        for name, default in (
            ("country_code", party[0]), ("party_id", party[1]),
            ("location_id", values.get("id")), ("tariff_id", values.get("id")),
            ("session_id", values.get("id")), ("token_uid", values.get("uid")),
            ("evse_uid", values.get("uid")), ("connector_id", values.get("id")),
        ):
            filled = filled.replace("{" + name + "}", self._segment(default))
        return filled

    def _owned(self, value: Any, party: tuple[str, str]) -> Any:
        """Mostly the sender's own objects, so requests get past the ownership checks."""
        if isinstance(value, dict) and "country_code" in value and self.rng.random() < 0.8:
            value = {**value, "country_code": party[0], "party_id": party[1]}
        return value

    def ocpi(self) -> Request:
        rng = self.rng
        target, op, factory = rng.choice(self.ops)
        world = self.world
        to_party: tuple[str, str] | None = None
        if target == "peer":
            party = (world.emsp.country_code, world.emsp.party_id)
            value = self._owned(factory.valid(), party)
            url = f"{world.gateway.url}/ocpi/2.2.1{self._path(op.path, value, party)}"
            headers = token_header(world.peer_token)
        else:
            sender = world.cpo if op.module in CPO_SIDE else world.msp
            other = world.msp if sender is world.cpo else world.cpo
            party = sender.party
            value = self._owned(factory.valid(), party)
            rest = self._path(op.path, value, party).removeprefix("/" + op.module)
            url = f"{sender.hub_url(op.module, 'RECEIVER')}{rest}"
            headers = platform_token(sender.hub_token or "")
            headers |= {"OCPI-from-country-code": party[0], "OCPI-from-party-id": party[1]}
            to = rng.choice([other.party, other.party, HUB, HOSTED, None, ("XX", "NOP")])
            if to is not None:
                headers |= {"OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1]}
            to_party = to
        body = factory.body(value)
        label = f"{target} {op.method} {op.module}/{op.schema_name} [{body.kind}]"
        parsed = target == "peer" or to_party in (HUB, HOSTED, None)
        return Request(op.method, url, headers | {"Content-Type": "application/json"}, body, label, True, parsed)

    def credentials_request(self) -> Request:
        op, factory = self.rng.choice(self.credentials)
        body = factory.body(factory.valid())
        headers = token_header(self.world.peer_token) | {"Content-Type": "application/json"}
        return Request(op.method, f"{self.world.gateway.url}/ocpi/2.2.1/credentials", headers, body, f"peer {op.method} credentials [{body.kind}]", True)

    def admin_request(self) -> Request:
        rng = self.rng
        method, template, factory = rng.choice(self.admin)
        value = factory.valid()
        if template.startswith(("/locations", "/tariffs")) and rng.random() < 0.7:
            value = {k: v for k, v in value.items() if k not in ("country_code", "party_id", "id", "last_updated")}
        ident = value.get("id") if isinstance(value, dict) else None
        path = template.replace("{id}", self._segment(ident or f"F{rng.randint(0, 50)}"))
        body = factory.body(value)
        headers = self.world.gateway.admin_headers | {"Content-Type": "application/json"}
        name = template.split("/")[1] if "{id}" in template else template.rsplit("/", 1)[-1]
        return Request(method, f"{self.world.gateway.url}/admin{path}", headers, body, f"admin {method} {name} [{body.kind}]", False)


def check(request: Request, status: int, raw: bytes, findings: Findings) -> None:
    findings.statuses[f"{'ocpi' if request.ocpi else 'admin'} {status}"] += 1
    if status >= 500:
        findings.fail(request, f"HTTP {status}", status, raw[:300])
    if status == 204 and not request.ocpi:
        return
    try:
        answer = json.loads(raw)
    except ValueError:
        findings.fail(request, "answer is not JSON", status, raw[:300])
        return
    refused: bool
    if request.ocpi:
        if not isinstance(answer, dict) or not isinstance(answer.get("status_code"), int) or "timestamp" not in answer:
            findings.fail(request, "answer is not an OCPI envelope", status, answer)
            return
        code = answer["status_code"]
        findings.statuses[f"ocpi {status}/{code}"] += 1
        refused = status >= 400 or code >= 2000
        if refused and not (isinstance(answer.get("status_message"), str) and answer["status_message"].strip()):
            findings.fail(request, "OCPI error without a status_message", status, answer)
        if code == 3000:
            findings.fail(request, "OCPI 3000 (generic server error)", status, answer)
        if status == 401:
            findings.fail(request, "HTTP 401 with a valid token", status, answer)
    else:
        refused = status >= 400
        if refused and not (isinstance(answer, dict) and isinstance(answer.get("error"), str) and answer["error"].strip()):
            findings.fail(request, "admin error without an error reason", status, answer)
    if request.body.readable is False and request.parsed and not refused:
        findings.fail(request, "accepted a body that is not a JSON object", status, answer)


async def _send(session: aiohttp.ClientSession, request: Request, findings: Findings) -> None:
    data: Any = request.body.data
    if data is not None and len(data) > 512 * 1024:
        data = io.BytesIO(data)  # aiohttp warns about sending large bytes directly
    async with session.request(request.method, request.url, data=data, headers=request.headers) as resp:
        raw = await resp.read()
        check(request, resp.status, raw, findings)


async def test_ocpi_and_admin_fuzz(world: World, fuzz_config: FuzzConfig, log_watch: LogWatch) -> None:
    rng = random.Random(f"{fuzz_config.seed}-http")
    planner = Planner(rng, world)
    total = max(200, round(REQUESTS * fuzz_config.scale))
    plan: list[Request] = []
    for _ in range(total):
        pick = rng.random()
        plan.append(planner.ocpi() if pick < 0.65 else planner.admin_request())
    # Credentials last: a PUT that went through would change the token the rest uses.
    tail = [planner.credentials_request() for _ in range(max(10, total // 100))]
    findings = Findings()
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in plan:
        queue.put_nowait(request)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            await _send(session, queue.get_nowait(), findings)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(WORKERS)))
        for request in tail:
            await _send(session, request, findings)
    assert not findings.problems, findings.report()
    assert not log_watch.records, "logged errors or tracebacks:\n" + log_watch.report()
    # The requests went deep: accepted bodies on both sides, and refusals of each kind.
    seen = set(findings.statuses)
    assert {"ocpi 200/1000", "ocpi 200/2001"} <= seen and any(s.startswith("admin 20") for s in seen), findings.statuses
