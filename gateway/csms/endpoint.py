"""The OCPP-J WebSocket endpoint ``/ocpp/{charge_point_id}``.

OCPP-J 1.6, 2.0.1 and 2.1, section 3 (connection set-up).

Everything that can refuse a charger happens before the upgrade, with a plain
HTTP status: invalid id 400, unknown id 404, bad credentials 401, bad client
certificate 403, too many unauthenticated upgrades from one address 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

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
from gateway.csms.wsproto import ChargerSocket
from gateway.domain.errors import Unavailable
from gateway.domain.models import Charger
from gateway.storage.base import StorageError

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
CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL_ERROR = 1011
# The connection could not be recorded (storage out): the charger should come back.
CLOSE_TRY_AGAIN_LATER = 1013
# Seconds a close we start waits for the charger's CLOSE before the connection is aborted.
CLOSE_TIMEOUT = 5.0
# Seconds shutdown waits for the chargers' ends to be recorded (what aiohttp waited for
# the handlers, AppRunner's shutdown_timeout in gateway.app).
SHUTDOWN_TIMEOUT = 15.0
# Chargers whose end is being recorded at once (the storage calls, the events and their
# subscribers); the others wait their turn. 10,000 chargers closing together otherwise had
# all those call chains alive at the same time (30,000 tasks): a peak of memory that the
# allocator does not give back once the objects that outlive it are scattered in it.
ENDS_AT_ONCE = 64
# After this many chargers' ends, once none has ended for TRIM_QUIET seconds, the memory
# they freed is given back to the system (``trim``, gateway.memory.releaser: the store's
# page caches, then the C heap's free pages): a storm of closes otherwise leaves the RSS
# tens of MiB above what the process holds.
TRIM_AFTER_ENDS = 500
TRIM_QUIET = 1.0


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


class _Upgraded(web.StreamResponse):
    """What aiohttp gets back once the connection is a ChargerSocket's: nothing to write
    (the 101 answer is out) and nothing to close."""

    def __init__(self) -> None:
        super().__init__(status=101)

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def _peer_certificate(request: web.Request) -> bytes | None:
    """The TLS client certificate the charger presented (DER); None over plain HTTP or
    without one."""
    transport = request.transport
    ssl_object: ssl.SSLObject | None = (
        transport.get_extra_info("ssl_object") if transport is not None else None
    )
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return der or None


class OcppEndpoint:
    def __init__(
        self,
        csms: CentralSystem,
        validators: SchemaValidators,
        config: EndpointConfig,
        *,
        trim: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.csms = csms
        self.validators = validators
        self.config = config
        self.limiter = UnauthenticatedLimiter(
            csms.clock,
            per_minute=config.unauthenticated_per_minute,
            max_open=config.unauthenticated_per_address,
        )
        # aiohttp's parser refuses a message of max_msg_size bytes or more; frames of
        # exactly max_frame_bytes are allowed (README: only larger frames are closed, 1009).
        self._max_msg_size = config.max_frame_bytes + 1
        # Every charger's connection since its handshake, until its end is recorded:
        # aiohttp no longer knows them, shutdown closes them (close_all).
        self._sockets: set[ChargerSocket] = set()
        self._all_ended: asyncio.Event | None = None
        self._recording = asyncio.Semaphore(ENDS_AT_ONCE)
        self._trim = trim
        self.trim_after_ends = TRIM_AFTER_ENDS
        self.trim_quiet = TRIM_QUIET
        self._ends_since_trim = 0
        self._last_end = 0.0
        self._trimming: asyncio.Task[None] | None = None
        self.trims = 0  # memory trims done (tests)
        self.close_timeout = CLOSE_TIMEOUT
        self.shutdown_timeout = SHUTDOWN_TIMEOUT
        self.shutting_down = False

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
        der = _peer_certificate(request)
        if der is None:
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

    async def _revoked_meanwhile(self, cp_id: str, der: bytes, fingerprint: str) -> None:
        """The certificate checked at the handshake, read again once the connection is
        registered: a revocation stored between the two found no connection to close
        (its close goes to a registered one only), so it is closed here. One after this
        read finds the connection registered and closes it itself."""
        try:
            revoked = await revocation_of(self.csms.store.certificates, der)
        except (StorageError, Unavailable) as exc:
            log.warning("charger %s: certificate not checked again: %s", cp_id, exc)
            return
        if revoked is not None:
            await self.csms.certificate_revoked(cp_id, fingerprint)

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
        # Read before the upgrade, while aiohttp still has the transport.
        peer = _peer_certificate(request)
        # Its SHA-256 fingerprint (as certificates.fingerprint): what a revocation closes.
        client_certificate = hashlib.sha256(peer).hexdigest() if peer is not None else None
        address = request.remote or "unknown"
        if not authenticated and not self.limiter.open(address):
            raise self._too_many(address)
        # Once the handshake is written the connection leaves aiohttp (gateway.csms.wsproto):
        # its request, HTTP protocol and tasks end, and an idle charger holds only the
        # transport, its ChargerSocket and parser, and its OcppConnection (issue 15).
        handed = False
        try:
            ws = web.WebSocketResponse(
                protocols=_ANSWERED[subprotocol],
                max_msg_size=self._max_msg_size,
                compress=False,
                autoping=True,
            )
            sock = await self._upgrade(request, ws, cp_id, None if authenticated else address)
            # The socket does the limiter's bookkeeping from now on, when it ends.
            handed = True
            del ws
            if self.shutting_down:
                # The server is shutting down (its sockets were closed already).
                sock.serve(None)
                await sock.close(code=CLOSE_GOING_AWAY, message=b"server shutting down")
                return _Upgraded()
            if subprotocol is None:
                # OCPP-J 2.0.1 section 3.1.2: complete the handshake without a
                # subprotocol, then close at once.
                log.warning(
                    "charger %s offered no supported subprotocol (%r); closing",
                    cp_id,
                    request.headers.get("Sec-WebSocket-Protocol"),
                )
                sock.serve(None)
                await sock.close(code=CLOSE_PROTOCOL_ERROR, message=b"unsupported subprotocol")
                return _Upgraded()
            try:
                conn = SUBPROTOCOLS[subprotocol](
                    cp_id, sock, self.csms, self.validators, call_timeout=self.config.call_timeout
                )
                if client_certificate is not None:
                    conn.client_certificate = client_certificate
                await self.csms.connected(conn)
            except BaseException as exc:
                # Not connected (the storage is out, the connection is refused): closed,
                # with nothing to record at its end. (aiohttp dropped the connection
                # without a close frame: it could not answer 500 after the 101.)
                sock.serve(None)
                if isinstance(exc, Unavailable):
                    log.warning("charger %s: connection not recorded, closing: %s", cp_id, exc)
                    await sock.close(code=CLOSE_TRY_AGAIN_LATER, message=b"storage unavailable")
                    return _Upgraded()
                await sock.close(code=CLOSE_INTERNAL_ERROR, message=b"")
                if not isinstance(exc, Exception):
                    raise
                log.exception("charger %s: connection not recorded, closing", cp_id)
                return _Upgraded()
            # Messages that arrived meanwhile are handled now.
            sock.serve(conn)
            if peer is not None and client_certificate is not None:
                await self._revoked_meanwhile(cp_id, peer, client_certificate)
            return _Upgraded()
        finally:
            if not handed and not authenticated:
                self.limiter.closed(address)

    async def _upgrade(
        self, request: web.Request, ws: web.WebSocketResponse, cp_id: str, address: str | None
    ) -> ChargerSocket:
        """Write the handshake's answer with ``ws``, then take the connection from aiohttp.

        The socket is the transport's protocol before the 101 answer is written: no
        frame reaches aiohttp's parser, and whatever came with the handshake request
        (aiohttp's unparsed tail) is the socket's to parse.
        """
        transport = request.transport
        handler = request.protocol
        if transport is None or handler.transport is not transport:
            raise ConnectionResetError("Connection lost")
        sock = ChargerSocket(
            transport, self, cp_id, max_msg_size=self._max_msg_size, address=address
        )
        tail, handler._message_tail = handler._message_tail, b""
        transport.set_protocol(sock)
        try:
            await ws.prepare(request)
        except BaseException:
            # Not upgraded (a bad handshake is answered 400): aiohttp keeps the connection.
            transport.set_protocol(handler)
            handler._message_tail = tail + sock.give_back()
            if sock.lost():
                handler.connection_lost(None)
            raise
        # aiohttp lets go of the connection without closing it: with no transport its
        # force_close() leaves the socket alone, and with no task handler the handler's
        # task is not cancelled (handler_cancellation). connection_lost() takes it out of
        # the server's connections; the handler then returns a response aiohttp does
        # not write, and its tasks, the request and the HTTP protocol object end.
        # (Had aiohttp stopped reading for a long tail, prepare() resumed: the tail it
        # then found, empty, was under its limit.)
        handler._task_handler = None
        handler.transport = None
        handler.connection_lost(None)
        sock.start(tail)
        self._sockets.add(sock)
        return sock

    # -- the sockets' side (gateway.csms.wsproto.SocketOwner) ------------------------------

    async def socket_ended(self, sock: ChargerSocket) -> None:
        """A charger's connection ended (closed, or gone) and the messages it brought
        before were handled."""
        conn = sock.conn
        try:
            if conn is not None:
                conn.ended()
                # Answer what was already received before the charger is marked offline.
                await conn.stop_worker(drain=True)
                try:
                    async with self._recording:
                        await self.csms.disconnected(conn, sock.reason)
                except Unavailable as exc:
                    # Storage is out: the charger is gone from this process all the same;
                    # its stored state says connected until the next connect or start-up.
                    log.warning("charger %s: offline not recorded: %s", conn.charger_id, exc)
                except Exception:
                    log.exception("charger %s: offline not recorded", conn.charger_id)
        finally:
            # The connection and its socket hold each other: released here.
            sock.conn = None
            if sock.address is not None:
                self.limiter.closed(sock.address)
            self._sockets.discard(sock)
            if not self._sockets and self._all_ended is not None:
                self._all_ended.set()
            self._ended()

    def _ended(self) -> None:
        """One more end: after a storm of them, a trim once they have stopped."""
        if self._trim is None or self.shutting_down:
            return
        self._ends_since_trim += 1
        self._last_end = asyncio.get_running_loop().time()
        if self._ends_since_trim >= self.trim_after_ends and self._trimming is None:
            self._trimming = asyncio.create_task(self._trim_when_quiet(), name="memory-trim")

    async def _trim_when_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            # Not polling: a debounce, one wake-up per quiet period at most (each end
            # only moves _last_end, at no cost on its path).
            while (wait := self._last_end + self.trim_quiet - loop.time()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait)
            self._ends_since_trim = 0
            trim = self._trim
            if trim is not None:
                await trim()
                self.trims += 1
        except Exception:  # never worth more than a log line
            log.exception("memory trim failed")
        finally:
            self._trimming = None

    async def close_all(self, code: int, reason: str) -> None:
        """Shutting down: close every charger's connection still open and wait, within
        ``shutdown_timeout``, until each one's end is recorded (what aiohttp's shutdown
        waited for, the handlers); those still running then are cancelled. The TCP
        connections close on the chargers' answers (or are aborted after
        ``close_timeout``)."""
        self.shutting_down = True
        if self._trimming is not None:
            self._trimming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._trimming
        message = reason.encode()[:120]
        for sock in list(self._sockets):
            await sock.close(code=code, message=message)
        if not self._sockets:
            return
        self._all_ended = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_ended.wait(), self.shutdown_timeout)
        self._all_ended = None
        tasks = [sock.task for sock in self._sockets if sock.task is not None]
        for sock in self._sockets:
            log.warning("charger %s: its end was not recorded before shutdown", sock.charger_id)
            sock.abort()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sockets.clear()
