"""One charger's OCPP-J connection: framing, dispatch, errors, outgoing calls.

Routing uses the ``ocpp`` library's ChargePoint route map (handlers are
registered with its ``@on`` decorator), but frames are parsed, validated and
answered here, so that:

- malformed frames get the CALLERROR OCPP-J prescribes (the library sends
  nothing), with "-1" as message id when the id cannot be read (OCPP-J 2.0.1 4.2.3);
- schema validation uses compiled validators (``validation``), synchronously;
- CALLRESULT/CALLERROR frames reach a waiting ``call()`` straight from the
  socket's callback (``receive``), while CALLs are handled by a separate worker in
  arrival order,
  so a slow handler (a roaming partner's real-time authorization) never holds
  back the answer to a call the gateway made, and a handler that itself calls
  the charger cannot deadlock. The worker starts in the callback
  (``gateway.csms.eager``): a CALL whose handler waits for nothing (a Heartbeat) is
  answered there, and only one that waits gets a task to go on;
- OCPP-J 2.1's two message types (``rpc_21``), which the library does not parse, are
  handled here: CALLRESULTERROR (5), by which the receiver of a CALLRESULT refuses it,
  and SEND (6), an unconfirmed message. Neither is ever answered (OCPP-J 2.1 4.2.4,
  4.2.5). A 2.1 charger's CALLRESULT that breaks its schema gets a CALLRESULTERROR and
  fails the waiting call at once; 1.6 and 2.0.1 have no such frame (the call fails,
  nothing is sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

import orjson
from ocpp.charge_point import ChargePoint as LibChargePoint
from ocpp.charge_point import remove_nones, snake_to_camel_case
from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError
from ocpp.messages import CallError as LibCallError
from ocpp.messages import CallResult as LibCallResult
from ocpp.routing import create_route_map
from ocpp.routing import on as _lib_on

from gateway import logs
from gateway.csms.core import BootInfo, CentralSystem
from gateway.csms.eager import start_eagerly
from gateway.csms.errors import (
    FormatViolation,
    InternalFailure,
    MessageTypeNotSupported,
    NotImplementedAction,
    NotSupportedAction,
    OcppRequestError,
    RpcFrameworkError,
    error_code,
)
from gateway.csms.locallist import read_result
from gateway.csms.validation import SchemaValidators, check_storable, needs_edge_check
from gateway.csms.wsproto import WebSocket
from gateway.domain.clock import format_timestamp
from gateway.domain.commands import Command, CommandResult, CommandStatus
from gateway.domain.errors import ChargerNotConnected, ChargerRejected, ChargerTimeout
from gateway.domain.models import OcppVersion
from gateway.jsontext import compact
from gateway.storage.base import StorageUnavailable

log = logging.getLogger(__name__)

CALL, CALLRESULT, CALLERROR = 2, 3, 4
# OCPP-J 2.1 only (4.2.4, 4.2.5): to 1.6 and 2.0.1 they are unknown message types.
CALLRESULTERROR, SEND = 5, 6
_UNREADABLE_ID = "-1"
_MAX_PENDING_CALLS = 32
# OCPP-J 1.6 section 4.1.3 / 2.0.1 section 4.2.1: a message id is at most 36 characters.
MAX_MESSAGE_ID = 36
# Every CALLERROR the gateway sends stays under this many bytes (issue 9, point 14):
# OCPP-J 2.0.1 bounds errorDescription to 255 characters; the details carry one field name.
MAX_ERROR_FRAME = 1023
_MAX_DESCRIPTION = 255
_MAX_FIELD = 128


def clip(value: object, limit: int = 40) -> str:
    """A short printable form of untrusted input for descriptions and logs (never whole)."""
    text = repr(value) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Every status value of a 1.6 or 2.0.1 command answer, in domain terms.
_RESULT_STATUS = {
    "Accepted": CommandStatus.ACCEPTED,
    "AcceptedCanceled": CommandStatus.ACCEPTED,
    "RebootRequired": CommandStatus.ACCEPTED,
    "Unlocked": CommandStatus.ACCEPTED,
    "Scheduled": CommandStatus.SCHEDULED,
    "NotSupported": CommandStatus.NOT_SUPPORTED,
    "Rejected": CommandStatus.REJECTED,
    "UnlockFailed": CommandStatus.REJECTED,
    "OngoingAuthorizedTransaction": CommandStatus.REJECTED,
    "UnknownConnector": CommandStatus.REJECTED,
    "Faulted": CommandStatus.REJECTED,
    "Occupied": CommandStatus.REJECTED,
    "Unavailable": CommandStatus.REJECTED,
    # ClearChargingProfile: no profile matched what was to be cleared.
    "Unknown": CommandStatus.UNKNOWN,
    # 2.0.1 GetChargingProfiles: nothing to report (the result lists no profiles).
    "NoProfiles": CommandStatus.ACCEPTED,
}

Handler = Callable[[Any, dict[str, Any]], Awaitable[dict[str, Any]]]
_OCPP_LOG = logging.getLogger("ocpp")


F = TypeVar("F", bound=Callable[..., Any])


def on(action: str) -> Callable[[F], F]:
    """The library's route decorator, typed. Validation happens in ``_dispatch``."""
    return cast(Callable[[F], F], _lib_on(action, skip_schema_validation=True))


class ResultRefused(Exception):
    """A charger's CALLRESULT the gateway refused with a CALLRESULTERROR (2.1)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


class _RefusedResult(LibCallError):  # type: ignore[misc]
    """Put in the response queue in place of a refused CALLRESULT: the library's call()
    raises what ``to_exception`` gives, so the waiting call fails at once."""

    def to_exception(self) -> ResultRefused:
        return ResultRefused(self.error_code, self.error_description)


class _ConnectionEnded(LibCallError):  # type: ignore[misc]
    """Put in the response queue for a CALL still waiting when the connection ends: the
    library's call() raises what ``to_exception`` gives, so the call fails at once rather
    than at its timeout (and the connection is not held until then)."""

    def to_exception(self) -> ConnectionError:
        return ConnectionError("the connection ended")


class OcppConnection(LibChargePoint):  # type: ignore[misc]
    """Base for the version classes; subclasses add ``@on`` handlers."""

    version: OcppVersion
    known_actions: frozenset[str] = frozenset()
    # OCPP-J 2.1 framing: CALLRESULTERROR and SEND frames, and CALLRESULTs checked here.
    rpc_21: bool = False
    # Actions a charger may send as SEND (unconfirmed) messages.
    send_actions: frozenset[str] = frozenset()
    # The SHA-256 fingerprint (hex) of the TLS client certificate the charger connected
    # with, set by the endpoint on those connections only (an idle charger without one
    # holds no attribute for it): what a revocation closes (CentralSystem.certificate_revoked).
    client_certificate: str | None = None

    def __init__(
        self,
        charger_id: str,
        ws: WebSocket,
        csms: CentralSystem,
        validators: SchemaValidators,
        *,
        call_timeout: float,
    ) -> None:
        # The library's ChargePoint.__init__ is not called: it builds a route map of
        # bound methods per instance (about 3 kB per charger at 10,000 chargers) and a
        # response queue that most connections never need. These are its attributes.
        # No ``_connection``: the library's call() sends through ``_send`` below. (An
        # object holding this one would make a reference cycle, and every closed
        # connection, aiohttp's request and transport with it, would wait for a full
        # collection, which start-up's gc settings make rare.)
        self.id = charger_id
        self._response_timeout = call_timeout
        # The library's call() holds it; created by the first call (most chargers get none).
        self._lock: asyncio.Lock | None = None
        self._unique_id_generator = uuid.uuid4
        self.logger = _OCPP_LOG
        self.route_map = self._routes()
        self.charger_id = charger_id
        self.ws = ws
        self.csms = csms
        self.validators = validators
        self.last_seen: datetime = csms.clock.now()
        # CALLs waiting for the worker; the worker (and this queue: an empty deque is
        # 0.7 kB, at 10,000 idle chargers 7 MB) exists only while there are some.
        # (message id, action, payload, edge check needed, transaction id)
        self._pending: deque[tuple[str, str, dict[str, Any], bool, str | None]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._responses: asyncio.Queue[Any] | None = None
        # Ids of our CALLs still waiting for their answer, and their actions (created on
        # the first call).
        self._awaited: dict[str, str] | None = None
        # Not set while a boot's answer has not gone out yet (dropped once it has).
        self._boot_gate: asyncio.Event | None = None

    @classmethod
    def _routes(cls) -> dict[str, dict[str, Any]]:
        """The ``@on`` handlers of the class, unbound, computed once per class."""
        routes = cls.__dict__.get("_route_cache")
        if routes is None:
            routes = create_route_map(cls)
            cls._route_cache = routes
        return routes  # type: ignore[no-any-return]

    @property
    def _call_lock(self) -> asyncio.Lock:
        # Read by the library's call(), which sends one CALL at a time.
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    @property
    def _response_queue(self) -> asyncio.Queue[Any]:
        # Read by the library's call(); created when a first answer or call needs it.
        if self._responses is None:
            self._responses = asyncio.Queue()
        return self._responses

    async def _send(self, message: str) -> None:
        # What the library's call() sends: one of our CALLs, framed by it.
        self.logger.info("%s: send %s", self.id, message)
        self.trail_call_out(message)
        await self.ws.send_str(message)

    # -- lifecycle ---------------------------------------------------------

    def ended(self) -> None:
        """The connection ended: the gateway's CALLs still waiting for an answer fail now
        (``ChargerNotConnected``)."""
        for unique_id in self._awaited or ():
            self._response_queue.put_nowait(
                _ConnectionEnded(unique_id, "GenericError", "connection ended", {})
            )

    async def stop_worker(self, *, drain: bool) -> None:
        """Stop handling CALLs; with ``drain``, finish those already received first."""
        worker = self._worker
        if worker is None:
            return
        if drain:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(worker), timeout=10)
        if not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._pending = None

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=reason.encode()[:120])

    # -- inbound -----------------------------------------------------------

    def receive(self, raw: str) -> Awaitable[None] | None:
        """Take one received text message, synchronously, in the socket's callback (no
        task per message): a CALL is queued for the worker, an answer reaches the call
        waiting for it. What must still be awaited (an error frame to send, a SEND's
        handler, a 2.1 answer's check) is returned, for the caller to await before the
        next message."""
        self.last_seen = self.csms.clock.now()
        # Whether a value storage cannot hold may be there; also whether orjson may read it.
        edge = needs_edge_check(raw)
        try:
            frame = decode_frame(raw, edge)
        except ValueError:
            self._trail_in(raw, None)
            return self._send_error(_UNREADABLE_ID, RpcFrameworkError("frame is not valid JSON"))
        except RecursionError:
            self._trail_in(raw, None)
            # About 1,000 levels of brackets fit in 2 kB; the connection stays.
            return self._send_error(_UNREADABLE_ID, RpcFrameworkError("frame nested too deeply"))
        # A CALL's transaction id, read once for the trail, the log lines and the answer.
        tx = transaction_of(frame[3]) if type(frame) is list and len(frame) == 4 else None
        if self.csms.trail is not None:
            self._trail_in(raw, frame, tx)
        if not isinstance(frame, list) or not frame:
            return self._send_error(_UNREADABLE_ID, RpcFrameworkError("frame is not a JSON array"))
        message_type = frame[0]
        if self.rpc_21 and not isinstance(message_type, bool):
            # Never answered, not even when unreadable (OCPP-J 2.1 4.2.4, 4.2.5).
            if message_type == SEND:
                return self._send_received(frame, edge)
            if message_type == CALLRESULTERROR:
                self._result_error_received(frame)
                return None
        unique_id = frame[1] if len(frame) > 1 and isinstance(frame[1], str) else None
        if unique_id is None:
            return self._send_error(_UNREADABLE_ID, RpcFrameworkError("message id is not readable"))
        if len(unique_id) > MAX_MESSAGE_ID:
            if message_type in (CALLRESULT, CALLERROR):
                # Answers are never answered (OCPP-J); none of our calls has such an id.
                log.warning(
                    "charger %s: answer with an overlong message id %s dropped",
                    self.charger_id,
                    clip(unique_id),
                )
                return None
            return self._send_error(
                _UNREADABLE_ID,
                RpcFrameworkError(f"message id longer than {MAX_MESSAGE_ID} characters"),
            )
        if message_type == CALL and not isinstance(message_type, bool):
            if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
                return self._send_error(
                    unique_id, FormatViolation("a CALL is [2, id, action, {payload}]")
                )
            pending = self._pending
            if pending is None:
                pending = self._pending = deque()
            if len(pending) >= _MAX_PENDING_CALLS:
                return self._send_error(
                    unique_id, InternalFailure("too many CALLs awaiting an answer")
                )
            pending.append((unique_id, frame[2], frame[3], edge, tx))
            if self._worker is None:
                # Handled now, up to its first wait: most CALLs wait for nothing and are
                # answered without a task (a task carries on the others).
                self._worker = start_eagerly(self._work())
        elif message_type in (CALLRESULT, CALLERROR) and unique_id not in (self._awaited or ()):
            # No call of ours waits for this id (never sent, or timed out): the answer can
            # match nothing, and queueing it would let a charger grow our memory.
            log.info("charger %s: unsolicited answer %s dropped", self.charger_id, clip(unique_id))
        elif message_type == CALLRESULT and len(frame) == 3 and isinstance(frame[2], dict):
            if self.rpc_21 and (self._awaited or {}).get(unique_id) is not None:
                return self._checked_result(unique_id, frame[2], edge)
            self._answered(unique_id)
            self._response_queue.put_nowait(LibCallResult(unique_id, frame[2]))
        elif message_type == CALLERROR and len(frame) == 5:
            self._answered(unique_id)
            self._response_queue.put_nowait(LibCallError(*frame[1:]))
        elif message_type == CALLRESULT and self.rpc_21:
            # 2.1: a CALLRESULT the gateway cannot process is refused, and its call fails.
            return self._refuse_result(
                unique_id, FormatViolation("a CALLRESULT is [3, id, {payload}]"), None, None
            )
        elif message_type in (CALLRESULT, CALLERROR):
            # Answers cannot be answered; the waiting call() times out instead.
            log.warning(
                "charger %s: malformed answer frame %s dropped", self.charger_id, clip(unique_id)
            )
        else:
            # The type is not echoed: it may be any JSON value, of any size.
            types = "2 to 6" if self.rpc_21 else "2, 3 or 4"
            return self._send_error(
                unique_id, MessageTypeNotSupported(f"message type must be {types}")
            )
        return None

    def _answered(self, unique_id: str) -> None:
        # A second answer to the same CALL is then dropped as unsolicited.
        if self._awaited is not None:
            self._awaited.pop(unique_id, None)

    # -- OCPP-J 2.1: CALLRESULTERROR and SEND ---------------------------------------

    async def _checked_result(self, unique_id: str, payload: dict[str, Any], edge: bool) -> None:
        """A 2.1 CALLRESULT to one of our CALLs: passed on when valid, else refused."""
        if await self._result_acceptable(unique_id, payload, edge):
            self._answered(unique_id)
            self._response_queue.put_nowait(LibCallResult(unique_id, payload))

    async def _result_acceptable(self, unique_id: str, payload: dict[str, Any], edge: bool) -> bool:
        """Whether a 2.1 CALLRESULT to one of our CALLs is valid; if not, it is refused."""
        action = (self._awaited or {}).get(unique_id)
        if action is None:
            return True
        try:
            self.validators.validate(self.version, action, payload, response=True)
            if edge:  # the frame's pre-check (receive)
                check_storable(payload)
        except OcppRequestError as exc:
            await self._refuse_result(unique_id, exc, action, payload)
            return False
        except RecursionError:
            await self._refuse_result(
                unique_id, FormatViolation("payload nested too deeply"), action, payload
            )
            return False
        return True

    async def _refuse_result(
        self, unique_id: str, exc: OcppRequestError, action: str | None, payload: Any
    ) -> None:
        """OCPP-J 2.1 4.2.4: a CALLRESULTERROR for a charger's CALLRESULT the gateway
        cannot process; the call that waited for it fails now rather than time out."""
        if action is None:
            action = (self._awaited or {}).get(unique_id)
        log.warning(
            "charger %s: answer to %s refused: %s", self.charger_id, action, exc.description
        )
        self._answered(unique_id)
        await self._send_error(unique_id, exc, action, payload, message_type=CALLRESULTERROR)
        code = error_code(exc.kind, self.version)
        self._response_queue.put_nowait(
            _RefusedResult(unique_id, code, exc.description[:_MAX_DESCRIPTION], exc.details())
        )

    def _result_error_received(self, frame: list[Any]) -> None:
        """A charger refused one of the gateway's CALLRESULTs (OCPP-J 2.1 4.2.4): logged and
        counted, never answered. The CALLRESULT it refuses was already sent, so there is
        nothing to undo; were its id one of the gateway's own waiting CALLs (a charger
        refusing a CALL this way), that call fails now rather than time out."""
        unique_id = frame[1] if len(frame) > 1 and isinstance(frame[1], str) else None
        code = frame[2] if len(frame) > 2 and isinstance(frame[2], str) else "other"
        description = frame[3] if len(frame) > 3 and isinstance(frame[3], str) else ""
        self.csms.metrics.callresulterror("received", code)
        log.warning(
            "charger %s: CALLRESULTERROR %s for message %s: %s",
            self.charger_id,
            clip(code),
            clip(unique_id),
            clip(description, 120),
        )
        well_formed = len(frame) == 5 and isinstance(frame[4], dict) and code != "other"
        if well_formed and unique_id is not None and unique_id in (self._awaited or ()):
            self._answered(unique_id)
            self._response_queue.put_nowait(LibCallError(unique_id, code, description, frame[4]))

    async def _send_received(self, frame: list[Any], edge: bool) -> None:
        """A SEND (OCPP-J 2.1 4.2.5): handled when valid, else dropped; never answered."""
        well_formed = (
            len(frame) == 4
            and isinstance(frame[1], str)
            and len(frame[1]) <= MAX_MESSAGE_ID
            and isinstance(frame[2], str)
            and isinstance(frame[3], dict)
        )
        action = frame[2] if well_formed else None
        label = action if action in self.send_actions else "unknown"
        if action is None or label == "unknown":
            reason = "malformed" if action is None else f"unknown action {clip(action)}"
            log.info("charger %s: SEND dropped: %s", self.charger_id, reason)
            self.csms.metrics.send_received(self.version, label, "dropped")
            return
        payload: dict[str, Any] = frame[3]
        try:
            self.validators.validate(self.version, action, payload, send=True)
            if edge:  # the frame's pre-check (receive)
                check_storable(payload)
            await self.on_send(action, payload)
        except OcppRequestError as exc:
            log.info("charger %s: SEND %s dropped: %s", self.charger_id, action, exc.description)
            self.csms.metrics.send_received(self.version, label, "dropped")
            return
        except RecursionError:
            log.info("charger %s: SEND %s dropped: nested too deeply", self.charger_id, action)
            self.csms.metrics.send_received(self.version, label, "dropped")
            return
        except Exception:
            log.exception("charger %s: SEND %s failed", self.charger_id, action)
            self.csms.metrics.send_received(self.version, label, "dropped")
            return
        self.csms.metrics.send_received(self.version, label, "handled")

    async def on_send(self, action: str, payload: dict[str, Any]) -> None:
        """Handle a valid SEND of one of ``send_actions`` (versions with SEND override)."""
        raise NotImplementedError

    # -- the message trail (gateway.trail): each frame as it passes -------------------

    def _trail_in(self, raw: str, frame: Any, tx4: str | None = None) -> None:
        """A received frame, with what can be read of it (``invalid``: not an OCPP-J
        message at all); ``tx4``: the transaction id of its fourth element, when read."""
        trail = self.csms.trail
        if trail is None:
            return
        kind, unique_id, action, status, tx = "invalid", None, None, None, None
        if isinstance(frame, list) and len(frame) > 2 and isinstance(frame[1], str):
            unique_id = frame[1]
            message_type = frame[0]
            if isinstance(message_type, bool):
                pass
            elif message_type == CALL and isinstance(frame[2], str):
                kind, action = "CALL", frame[2]
                tx = tx4
            elif message_type == CALLRESULT:
                kind, action = "CALLRESULT", (self._awaited or {}).get(unique_id)
                tx = transaction_of(frame[2])
            elif message_type == CALLERROR:
                kind, action = "CALLERROR", (self._awaited or {}).get(unique_id)
                status = frame[2] if isinstance(frame[2], str) else None
            elif self.rpc_21 and message_type == SEND and isinstance(frame[2], str):
                kind, action = "SEND", frame[2]
                tx = tx4
            elif self.rpc_21 and message_type == CALLRESULTERROR:
                kind = "CALLRESULTERROR"
                status = frame[2] if isinstance(frame[2], str) else None
        # Its time: the frame's receipt, read by receive (one clock read for both).
        trail.ocpp(self.charger_id, "in", raw, kind, unique_id, action, status, tx, self.last_seen)

    def trail_call_out(self, text: str) -> None:
        """One of our CALLs, as the library framed it (rare: commands; read back here)."""
        trail = self.csms.trail
        if trail is None:
            return
        frame = json.loads(text)
        trail.ocpp(
            self.charger_id,
            "out",
            text,
            "CALL",
            frame[1],
            frame[2],
            None,
            transaction_of(frame[3]),
        )

    async def refuse_binary(self) -> None:
        # OCPP-J sends text frames only; a binary frame's id cannot be trusted.
        await self._send_error(_UNREADABLE_ID, RpcFrameworkError("OCPP-J uses text frames only"))

    async def _work(self) -> None:
        # Handles CALLs in arrival order, apart from the socket's callback, and ends when
        # none is left (no task per idle charger). No await separates the emptiness
        # check from clearing _worker, so a CALL cannot slip in between.
        pending = self._pending
        try:
            while pending:
                unique_id, action, payload, edge, tx = pending.popleft()
                try:
                    await self._dispatch(unique_id, action, payload, edge=edge, tx=tx)
                except Exception:
                    log.exception("charger %s: %s failed", self.charger_id, clip(action))
        finally:
            self._worker = None
            if self._pending is pending and not pending:
                self._pending = None

    async def _dispatch(
        self,
        unique_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        edge: bool = True,
        tx: str | None = None,
    ) -> None:
        route = self.route_map.get(action)
        # Metrics labels: an action of the schemas, never a name the charger made up.
        label = action if route is not None or action in self.known_actions else "unknown"
        ok = False
        gate: asyncio.Event | None = None
        # This CALL's log lines name its transaction, when it carries one (gateway.logs).
        context = logs.transaction_id.set(tx)
        if action in ("BootNotification", "SignCertificate"):
            # The central system's own CALLs that the boot brings (profiles to send again,
            # the site's limit, the cost display probe) wait until the charger has its
            # answer: a charger may refuse requests before its boot is answered. So does
            # the CertificateSigned a SignCertificate brings (A02/A03: answer, then chain).
            gate = self._boot_gate = asyncio.Event()
        try:
            ok = await self._answer(unique_id, action, payload, route, edge, tx)
        finally:
            logs.transaction_id.reset(context)
            if gate is not None:
                gate.set()
                if self._boot_gate is gate:  # a set gate holds nothing back: dropped
                    self._boot_gate = None
            self.csms.metrics.call_received(self.version, label, "result" if ok else "error")

    async def _answer(
        self,
        unique_id: str,
        action: str,
        payload: dict[str, Any],
        route: dict[str, Any] | None,
        edge: bool,
        tx: str | None,
    ) -> bool:
        """Handles the CALL and sends the answer; True for a CALLRESULT (``tx``: the
        payload's transaction id)."""
        try:
            if route is None or "_on_action" not in route:
                if action in self.known_actions:
                    raise NotSupportedAction(f"{action} is not supported by this central system")
                raise NotImplementedAction(f"{clip(action)} is not an OCPP {self.version} action")
            self.validators.validate(self.version, action, payload)
            if edge:
                check_storable(payload)
            handler: Handler = route["_on_action"]
            result = await handler(self, payload)
        except OcppRequestError as exc:
            log.info("charger %s: %s rejected: %s", self.charger_id, clip(action), exc.description)
            await self._send_error(unique_id, exc, action, payload)
            return False
        except RecursionError:
            # Nesting the schemas allow (customData, DataTransfer data) but no
            # handler can walk: refused like any malformed payload.
            await self._send_error(
                unique_id, FormatViolation("payload nested too deeply"), action, payload
            )
            return False
        except StorageUnavailable as exc:
            # A storage outage longer than its retry bound: no bug, so no traceback.
            log.warning("charger %s: %s not handled: %s", self.charger_id, clip(action), exc)
            await self._send_error(
                unique_id, InternalFailure("storage unavailable, try again"), action, payload
            )
            return False
        except Exception:
            log.exception("charger %s: handler for %s failed", self.charger_id, clip(action))
            await self._send_error(
                unique_id, InternalFailure("the central system failed"), action, payload
            )
            return False
        if result:
            text = _encode([CALLRESULT, unique_id, result])
        else:
            # Most answers (StatusNotification, MeterValues) are empty.
            text = f"[3,{_encode(unique_id)},{{}}]"
        trail = self.csms.trail
        if trail is not None:
            if result:  # an answer's transaction id (1.6 StartTransaction's), else the CALL's
                tx = transaction_of(result) or tx
            trail.ocpp(self.charger_id, "out", text, "CALLRESULT", unique_id, action, None, tx)
        await self._send_raw(text)
        return True

    async def _send_error(
        self,
        unique_id: str,
        exc: OcppRequestError,
        action: str | None = None,
        payload: Any = None,
        *,
        message_type: int = CALLERROR,
    ) -> None:
        """A CALLERROR, or (2.1) with ``message_type`` CALLRESULTERROR: same layout."""
        code = error_code(exc.kind, self.version)
        if message_type == CALLRESULTERROR:
            self.csms.metrics.callresulterror("sent", code)
        else:
            self.csms.metrics.callerror("sent", code)
        details = {k: v[:_MAX_FIELD] for k, v in exc.details().items()}
        frame = [message_type, unique_id, code, exc.description[:_MAX_DESCRIPTION], details]
        text = _encode(frame)
        if len(text) > MAX_ERROR_FRAME:
            # Escaped non-ASCII text can grow sixfold: fall back to the kind alone.
            frame = [message_type, unique_id, code, exc.kind.value, {}]
            text = _encode(frame)
        trail = self.csms.trail
        if trail is not None:
            trail.ocpp(
                self.charger_id,
                "out",
                text,
                "CALLRESULTERROR" if message_type == CALLRESULTERROR else "CALLERROR",
                unique_id,
                action,
                code,
                transaction_of(payload),
            )
        await self._send_raw(text)

    async def _send_raw(self, text: str) -> None:
        try:
            await self.ws.send_str(text)
        except ConnectionError:
            log.info("charger %s: connection gone before an answer could be sent", self.charger_id)

    # -- handlers common to both versions ----------------------------------------

    def boot_info(self, payload: dict[str, Any]) -> BootInfo:
        """The version's BootNotification payload in domain terms."""
        raise NotImplementedError

    @on("BootNotification")
    async def on_boot(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.csms.booted(self.charger_id, self.boot_info(payload))
        return {
            "status": "Accepted",
            "currentTime": format_timestamp(self.csms.clock.now()),
            "interval": self.csms.heartbeat_interval,
        }

    @on("Heartbeat")
    async def on_heartbeat(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.csms.heartbeat(self.charger_id)
        return {"currentTime": format_timestamp(self.csms.clock.now())}

    # -- outbound ----------------------------------------------------------

    def to_call(self, command: Command) -> Any:
        """The library payload dataclass for ``command`` (version specific)."""
        raise NotImplementedError

    def from_result(self, command: Command, result: Any) -> CommandResult:
        """Fold the version's many status enums into the domain's few.

        Answers without a status (1.6 GetConfiguration, UpdateFirmware,
        GetDiagnostics; 2.0.1 Get/SetVariables, whose per-variable statuses
        stay in ``data``) mean the charger accepted the request.
        """
        data = result_to_dict(result)
        raw = data.get("status")
        status = CommandStatus.ACCEPTED if raw is None else _RESULT_STATUS.get(str(raw))
        return read_result(command, CommandResult(status or CommandStatus.REJECTED, data))

    async def send_command(self, command: Command) -> CommandResult:
        payload = self.to_call(command)
        gate = self._boot_gate
        if gate is not None and not gate.is_set():
            # The answer to a BootNotification goes out first (bounded: a boot handler that
            # itself awaited a command must not wait for its own answer forever).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._response_timeout):
                    await gate.wait()
        if self.ws.closed:
            raise ChargerNotConnected(self.charger_id)
        call_id = str(uuid.uuid4())
        action = type(payload).__name__  # the library's dataclass: the action's name
        if self._awaited is None:
            self._awaited = {}
        self._awaited[call_id] = action
        outcome = "closed"
        started = time.perf_counter()
        try:
            result = await self.call(payload, suppress=False, unique_id=call_id)
            outcome = "result"
        except TimeoutError:
            outcome = "timeout"
            raise ChargerTimeout(
                f"charger {self.charger_id} did not answer {type(payload).__name__} "
                f"within {self._response_timeout}s"
            ) from None
        except ResultRefused as exc:
            # Its CALLRESULTERROR was counted when sent (2.1).
            outcome = "invalid"
            raise ChargerRejected(exc.code, f"invalid answer: {exc.description}") from None
        except OCPPError as exc:
            outcome = "error"
            code = getattr(exc, "code", "GenericError")
            self.csms.metrics.callerror("received", code)
            raise ChargerRejected(code, exc.description) from None
        except UnknownCallErrorCodeError as exc:
            outcome = "error"
            self.csms.metrics.callerror("received", "other")
            raise ChargerRejected("GenericError", str(exc)) from None
        except ConnectionError:
            raise ChargerNotConnected(self.charger_id) from None
        finally:
            self._awaited.pop(call_id, None)
            self.csms.metrics.call_sent(
                self.version, action, outcome, time.perf_counter() - started
            )
        return self.from_result(command, result)


def transaction_of(payload: Any) -> str | None:
    """The OCPP transaction id a payload carries, as text: 1.6 ``transactionId`` (Stop,
    MeterValues, RemoteStop, StartTransaction's answer), 2.0.1 ``transactionId`` or
    ``transactionInfo.transactionId`` (TransactionEvent); None without one."""
    if not isinstance(payload, dict):
        return None
    tx = payload.get("transactionId")
    if tx is None:
        info = payload.get("transactionInfo")
        if isinstance(info, dict):
            tx = info.get("transactionId")
    if isinstance(tx, str):
        return tx[:64]
    if isinstance(tx, int) and not isinstance(tx, bool):
        return str(tx)[:64]
    return None


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259 6), though Python's parser takes them.
    raise ValueError(f"{name} is not a JSON number")


# Built once: json.loads and json.dumps with options build a new decoder or encoder for
# every call (a few microseconds per frame on the chargers' path). Both are stateless.
_decode = json.JSONDecoder(parse_constant=_refuse_constant).decode
_encode = compact


def decode_frame(raw: str, edge: bool) -> Any:
    """A frame's JSON as the json module reads it (``_decode``: its values, its verdicts),
    in a third of the time for a frame orjson reads alike (tests/csms/test_frame_decode.py).

    ``edge`` is :func:`validation.needs_edge_check` of the text; such a frame is read by
    json: orjson reads an integer beyond 64 bits as a float, where json keeps the integer
    (which the schemas then see as an integer, and storage refuses by name), and it reads
    deeper nesting than json's recursion allows. What orjson refuses (NaN, 1e400, which
    json reads as infinity, a lone surrogate escape) is read again by json, for json's
    value or error.
    """
    if not edge:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return _decode(raw)


def result_to_dict(result: Any) -> dict[str, Any]:
    """A library CALLRESULT dataclass back into its camelCase wire form."""
    if is_dataclass(result) and not isinstance(result, type):
        return cast(dict[str, Any], _plain(snake_to_camel_case(remove_nones(asdict(result)))))
    return {}


def _plain(value: Any) -> Any:
    # The library reads the numbers of some 1.6 answers (GetCompositeSchedule) as
    # Decimal; the answer's data is plain JSON (it crosses the cluster wire as is).
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    return value
