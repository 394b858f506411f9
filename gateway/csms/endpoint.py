"""The OCPP-J WebSocket endpoint ``/ocpp/{charge_point_id}``.

OCPP-J 1.6, 2.0.1 and 2.1, section 3 (connection set-up).

Everything that can refuse a charger happens before the upgrade, with a plain
HTTP status: invalid id 400, unknown id 404, bad credentials 401, bad client
certificate 403, too many unauthenticated upgrades from one address 429.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import WSMsgType, web

from gateway import logs
from gateway.csms.admission import UnauthenticatedLimiter
from gateway.csms.certificates import expected_cn, revocation_of
from gateway.csms.connection import OcppConnection
from gateway.csms.core import CentralSystem
from gateway.csms.identity import charger_id_problem
from gateway.csms.security import certificate_cn, parse_basic_auth, verify_password
from gateway.csms.v16 import V16Connection
from gateway.csms.v21 import V21Connection
from gateway.csms.v201 import V201Connection
from gateway.csms.validation import SchemaValidators
from gateway.domain.errors import Unavailable
from gateway.domain.models import Charger

log = logging.getLogger(__name__)

# Server preference, newest first: of the versions a charger offers, the first here is
# chosen, whatever the order of its offer (RFC 6455 4.2.2 lets the server pick; OCPP-J
# 3.1.2: the CSMS chooses among the versions the charger lists).
SUBPROTOCOLS: dict[str, type[OcppConnection]] = {
    "ocpp2.1": V21Connection,
    "ocpp2.0.1": V201Connection,
    "ocpp1.6": V16Connection,
}
# RFC 6455 close code 1002: "protocol error"; used when no subprotocol matches.
CLOSE_PROTOCOL_ERROR = 1002


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    auto_register: bool
    require_client_cert: bool
    cn_is_charger_id: bool
    max_frame_bytes: int
    call_timeout: float
    unauthenticated_per_minute: int = 120
    unauthenticated_per_address: int = 100


def choose_subprotocol(offered: str | None) -> str | None:
    names = {p.strip() for p in (offered or "").split(",") if p.strip()}
    for name in SUBPROTOCOLS:
        if name in names:
            return name
    return None


def charge_point_id(request: web.Request) -> str:
    """The id from the raw path, percent-decoded once (OCPP-J: the id is URL-encoded)."""
    raw = request.raw_path.split("?", 1)[0]
    return unquote(raw.rstrip("/").rsplit("/", 1)[-1])


# The subprotocol answered, one tuple per version (not one per connection).
_ANSWERED: dict[str | None, tuple[str, ...]] = {name: (name,) for name in SUBPROTOCOLS}
_ANSWERED[None] = ()

# What ends the receive loop (``async for`` over the WebSocket stops on the same).
_CLOSED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)


class OcppEndpoint:
    def __init__(
        self, csms: CentralSystem, validators: SchemaValidators, config: EndpointConfig
    ) -> None:
        self.csms = csms
        self.validators = validators
        self.config = config
        self.limiter = UnauthenticatedLimiter(
            csms.clock,
            per_minute=config.unauthenticated_per_minute,
            max_open=config.unauthenticated_per_address,
        )
        # aiohttp refuses a message of max_msg_size bytes or more; frames of exactly
        # max_frame_bytes are allowed (README: only larger frames are closed, 1009).
        self._max_msg_size = config.max_frame_bytes + 1

    def _too_many(self, address: str) -> web.HTTPTooManyRequests:
        log.warning("too many unauthenticated WebSocket upgrades from %r", address)
        return web.HTTPTooManyRequests(
            headers={"Retry-After": str(self.limiter.retry_after(address))},
            text="too many unauthenticated connection attempts",
        )

    def _refuse(self, address: str, refusal: web.HTTPException) -> web.HTTPException:
        """``refusal``, or 429 once ``address`` has used up its unauthenticated attempts."""
        return refusal if self.limiter.attempt(address) else self._too_many(address)

    async def _check_client_cert(self, request: web.Request, charger: Charger) -> str | None:
        """The reason to refuse the charger's certificate, or None when it is acceptable."""
        transport = request.transport
        ssl_object: ssl.SSLObject | None = (
            transport.get_extra_info("ssl_object") if transport is not None else None
        )
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return "no client certificate"
        # The TLS layer already checked the chain against the configured CA.
        cn = certificate_cn(der)
        expected = expected_cn(charger, self.config.cn_is_charger_id)
        if expected is None:
            return "no serial number configured for this charger"
        if cn != expected:
            return f"certificate CN {cn!r} does not identify this charger"
        # One the gateway issued and the operator revoked (gateway.csms.certificates):
        # refused here, after the handshake, with a plain 403 like any other refusal.
        revoked = await revocation_of(self.csms.store.certificates, der)
        if revoked is not None:
            return f"certificate {revoked.serial} was revoked"
        return None

    async def _admit(self, request: web.Request, cp_id: str, subprotocol: str | None) -> bool:
        """Refuse (raise) or admit the charger; True when it authenticated.

        Every refusal happens before the upgrade, with a plain HTTP status. Ids are
        logged with ``!r``: nothing about them is trusted before authentication.
        """
        address = request.remote or "unknown"
        charger = await self.csms.store.chargers.get(cp_id)
        if charger is None:
            if not self.config.auto_register or subprotocol is None:
                # A charger that offers no OCPP version we speak is not registered.
                log.info("refused unknown charger %r from %r", cp_id, address)
                raise self._refuse(address, web.HTTPNotFound(text="unknown charge point"))
            if not self.limiter.attempt(address):
                raise self._too_many(address)
            charger = Charger(id=cp_id, created_at=self.csms.clock.now())
            await self.csms.store.chargers.put(charger)
            log.info("charger %r registered automatically (from %r)", cp_id, address)
            return False
        authenticated = False
        if charger.password_hash is not None:
            creds = parse_basic_auth(request.headers.get("Authorization"))
            if (
                creds is None
                or creds[0] != cp_id.encode()
                or not verify_password(creds[1], charger.password_hash)
            ):
                log.warning("charger %r: Basic authentication failed from %r", cp_id, address)
                raise self._refuse(
                    address,
                    web.HTTPUnauthorized(
                        headers={"WWW-Authenticate": 'Basic realm="ocpp"'}, text="unauthorized"
                    ),
                )
            authenticated = True
        if self.config.require_client_cert:
            reason = await self._check_client_cert(request, charger)
            if reason is not None:
                log.warning("charger %r refused: %s", cp_id, reason)
                raise self._refuse(address, web.HTTPForbidden(text="client certificate refused"))
            authenticated = True
        if not authenticated and not self.limiter.attempt(address):
            raise self._too_many(address)
        return authenticated

    async def handle(self, request: web.Request) -> web.StreamResponse:
        cp_id = charge_point_id(request)
        # Every log line of this connection (and of the tasks it starts) names the
        # charger, escaped like the rest of the line (gateway.logs); the request has a
        # task of its own, so nothing leaks to another request.
        logs.charger_id.set(cp_id)
        problem = charger_id_problem(cp_id)
        if problem is not None:
            address = request.remote or "unknown"
            log.info("refused charge point id %r from %r: %s", cp_id, address, problem)
            # An attempt like any other unauthenticated one (a scan of odd ids is bounded).
            raise self._refuse(address, web.HTTPBadRequest(text=problem))
        subprotocol = choose_subprotocol(request.headers.get("Sec-WebSocket-Protocol"))
        authenticated = await self._admit(request, cp_id, subprotocol)
        address = request.remote or "unknown"
        if not authenticated and not self.limiter.open(address):
            raise self._too_many(address)
        # Served in this coroutine, not one it awaits, and read with receive() rather than
        # ``async for``: every coroutine frame waiting here is held by each idle charger
        # (about 0.3 kB each, 3 MB at 10,000 chargers).
        try:
            ws = web.WebSocketResponse(
                protocols=_ANSWERED[subprotocol],
                max_msg_size=self._max_msg_size,
                compress=False,
                autoping=True,
            )
            await ws.prepare(request)
            if subprotocol is None:
                # OCPP-J 2.0.1 section 3.1.2: complete the handshake without a
                # subprotocol, then close at once.
                log.warning(
                    "charger %s offered no supported subprotocol (%r); closing",
                    cp_id,
                    request.headers.get("Sec-WebSocket-Protocol"),
                )
                await ws.close(code=CLOSE_PROTOCOL_ERROR, message=b"unsupported subprotocol")
                return ws
            conn = SUBPROTOCOLS[subprotocol](
                cp_id, ws, self.csms, self.validators, call_timeout=self.config.call_timeout
            )
            await self.csms.connected(conn)
            reason = "connection closed"
            try:
                while True:
                    msg = await ws.receive()
                    kind = msg.type
                    if kind is WSMsgType.TEXT:
                        await conn.handle_frame(msg.data)
                    elif kind is WSMsgType.BINARY:
                        await conn.refuse_binary()
                    elif kind is WSMsgType.ERROR:
                        reason = f"websocket error: {ws.exception()}"
                        break
                    elif kind in _CLOSED:
                        break
                    # The last frame is not kept while the charger is idle.
                    del msg
            finally:
                conn.ended()
                # Answer what was already received before the charger is marked offline.
                await conn.stop_worker(drain=True)
                try:
                    await self.csms.disconnected(conn, reason)
                except Unavailable as exc:
                    # Storage is out: the charger is gone from this process all the same;
                    # its stored state says connected until the next connect or start-up.
                    log.warning("charger %s: offline not recorded: %s", cp_id, exc)
            return ws
        finally:
            if not authenticated:
                self.limiter.closed(address)
