"""The Commands Receiver: OCPI commands from eMSPs become domain commands for chargers.

mod_commands: the request is answered at once with a CommandResponse (ACCEPTED
when the gateway will forward it, REJECTED when the charger cannot be reached,
UNKNOWN_SESSION for a session we do not have); the charger's own answer follows
as a CommandResult POSTed to the request's ``response_url``, through the durable
outbox, or TIMEOUT when the charger does not answer in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable
from typing import Any, Protocol

from gateway.domain import commands as cmd
from gateway.domain.errors import (
    ChargerNotConnected,
    ChargerRejected,
    ChargerTimeout,
    CommandNotSupported,
)
from gateway.domain.models import Charger, EvseConfig
from gateway.roaming.outbox import routing_meta
from gateway.roaming.partners import partner_of
from gateway.roaming.pushes import PushPlanner
from gateway.roaming.sessions import RemoteStart, reservation_document
from gateway.roaming.tokens import token_document
from gateway.storage.base import Document, Store
from ocpi.server import OcpiRequestContext
from ocpi.transport import format_datetime
from ocpi.v221 import (
    CancelReservation,
    CommandResponse,
    CommandResult,
    ReserveNow,
    StartSession,
    StopSession,
    Token,
    UnlockConnector,
)
from ocpi.v221.enums import CommandResponseType, CommandResultType

log = logging.getLogger(__name__)

_STATUS = {
    cmd.CommandStatus.ACCEPTED: CommandResultType.ACCEPTED,
    cmd.CommandStatus.SCHEDULED: CommandResultType.ACCEPTED,
    cmd.CommandStatus.REJECTED: CommandResultType.REJECTED,
    cmd.CommandStatus.NOT_SUPPORTED: CommandResultType.NOT_SUPPORTED,
    cmd.CommandStatus.UNKNOWN: CommandResultType.FAILED,
}


def reservation_number(reservation_id: str) -> int:
    """OCPI reservation ids are strings, OCPP's are integers: a stable 31-bit number."""
    if reservation_id.isdigit() and int(reservation_id) < 2**31:
        return int(reservation_id)
    return zlib.crc32(reservation_id.upper().encode()) & 0x7FFFFFFF


class RemoteStarts(Protocol):
    """Where the sessions of START_SESSION commands are made (``SessionService``)."""

    async def remote_start_requested(self, start: RemoteStart) -> None: ...
    async def remote_start_answered(self, start: RemoteStart, accepted: bool) -> None: ...


class CommandsReceiver:
    def __init__(
        self,
        store: Store,
        sender: cmd.CommandSender,
        planner: PushPlanner,
        notify: Callable[[], None],
        *,
        timeout: int,
        next_request_id: Callable[[], int],
        remote_starts: RemoteStarts | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._planner = planner
        self._notify = notify
        self._timeout = timeout
        self._next_request_id = next_request_id
        self._remote_starts = remote_starts
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- answers ------------------------------------------------------------------

    def _response(self, result: CommandResponseType, message: str | None = None) -> CommandResponse:
        return CommandResponse.model_validate(
            {
                "result": result,
                "timeout": self._timeout,
                "message": [{"language": "en", "text": message[:512]}] if message else None,
            }
        )

    def _forward(
        self,
        context: OcpiRequestContext,
        response_url: str,
        charger_id: str,
        command: cmd.Command,
        start: RemoteStart | None = None,
    ) -> CommandResponse:
        partner_id = partner_of(context.party).id
        # The result goes back to whoever sent the command (a hub platform may host
        # several eMSPs): its OCPI-from is the result's OCPI-to.
        routing = routing_meta(from_party=context.to_party, to_party=context.from_party)
        task = asyncio.create_task(
            self._run(partner_id, response_url, charger_id, command, start, routing),
            name=f"ocpi-command-{type(command).__name__}-{charger_id}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self._response(CommandResponseType.ACCEPTED)

    async def _run(
        self,
        partner_id: str,
        response_url: str,
        charger_id: str,
        command: cmd.Command,
        start: RemoteStart | None,
        routing: dict[str, Any],
    ) -> None:
        message = None
        try:
            answer = await self._sender.send(charger_id, command)
            result = _STATUS[answer.status]
            if start is not None and self._remote_starts is not None:
                # A charger that did not answer may still start: only a refusal means
                # that no transaction will come of this command.
                accepted = answer.status is cmd.CommandStatus.ACCEPTED
                await self._remote_starts.remote_start_answered(start, accepted)
        except ChargerTimeout:
            result = CommandResultType.TIMEOUT
        except ChargerNotConnected:
            result, message = CommandResultType.FAILED, "the charger went offline"
        except ChargerRejected as exc:
            result, message = CommandResultType.FAILED, f"the charger refused: {exc.code}"
        except CommandNotSupported as exc:
            result, message = CommandResultType.NOT_SUPPORTED, str(exc)
        except Exception:
            log.exception("command %s to %s failed", type(command).__name__, charger_id)
            result, message = CommandResultType.FAILED, "internal error"
        body = CommandResult.model_validate(
            {
                "result": result,
                "message": [{"language": "en", "text": message}] if message else None,
            }
        )
        item = self._planner.item(
            partner_id,
            "commands",
            "POST",
            response_url,
            body,
            f"{type(command).__name__}:{charger_id}:{self._next_request_id()}",
            meta={"kind": "command_result"} | routing,
        )
        await self._store.outbox.enqueue([item])
        self._notify()

    async def _remember(self, context: OcpiRequestContext, token: Token) -> None:
        partner_id = partner_of(context.party).id
        await self._store.ocpi_tokens.put(token_document(token, partner_id, "command"))

    # -- lookups ---------------------------------------------------------------------

    async def _evse(
        self, location_id: str, evse_uid: str | None
    ) -> tuple[Charger, EvseConfig] | CommandResponse:
        if await self._store.locations.get(location_id) is None:
            return self._response(CommandResponseType.REJECTED, f"unknown location {location_id}")
        for charger in await self._store.chargers.list():
            if charger.location_id != location_id:
                continue
            for evse in charger.evses:
                if evse_uid is None or evse.evse_uid.upper() == evse_uid.upper():
                    state = await self._store.charger_states.get(charger.id)
                    if state is None or not state.connected:
                        if evse_uid is None:
                            continue
                        return self._response(CommandResponseType.REJECTED, "charger offline")
                    return charger, evse
        return self._response(CommandResponseType.REJECTED, f"no such EVSE {evse_uid}")

    # -- the five commands -------------------------------------------------------------

    async def start_session(
        self, context: OcpiRequestContext, command: StartSession
    ) -> CommandResponse:
        found = await self._evse(command.location_id, command.evse_uid)
        if isinstance(found, CommandResponse):
            return found
        charger, evse = found
        # Keep the eMSP's token: the session and CDR need its contract id.
        await self._remember(context, command.token)
        # OCPP starts on the EVSE; the driver picks the connector by plugging in.
        domain = cmd.StartCharging(
            id_token=command.token.uid,
            evse_id=evse.ocpp_id,
            remote_start_id=self._next_request_id(),
            token_type=cmd.token_type_of(str(command.token.type)),
            contract_id=command.token.contract_id,
        )
        start = None
        if self._remote_starts is not None and domain.remote_start_id is not None:
            start = RemoteStart(
                partner_of(context.party).id,
                command.token,
                charger.id,
                evse.ocpp_id,
                domain.remote_start_id,
                command.authorization_reference,
            )
            # Before the charger hears of it: the transaction it starts must find its session.
            await self._remote_starts.remote_start_requested(start)
        return self._forward(context, str(command.response_url), charger.id, domain, start)

    async def stop_session(
        self, context: OcpiRequestContext, command: StopSession
    ) -> CommandResponse:
        doc = await self._store.sessions.get(command.session_id)
        if (
            doc is None
            or "session" not in doc.data  # an index record beside the sessions
            or doc.data.get("partner_id") != partner_of(context.party).id
        ):
            return self._response(CommandResponseType.UNKNOWN_SESSION)
        tx_id = doc.data.get("tx_id")
        tx = await self._store.transactions.get(str(tx_id)) if tx_id else None
        if tx is None:
            return self._response(CommandResponseType.REJECTED, "the session has not started")
        if tx.stopped_at is not None:
            return self._response(CommandResponseType.REJECTED, "the session has ended")
        domain = cmd.StopCharging(tx.ocpp_id)
        return self._forward(context, str(command.response_url), tx.charger_id, domain)

    async def unlock_connector(
        self, context: OcpiRequestContext, command: UnlockConnector
    ) -> CommandResponse:
        found = await self._evse(command.location_id, command.evse_uid)
        if isinstance(found, CommandResponse):
            return found
        charger, evse = found
        connector = int(command.connector_id) if command.connector_id.isdigit() else 1
        if connector not in evse.connectors:
            connector = evse.connectors[0]
        domain = cmd.UnlockConnector(evse.ocpp_id, connector)
        return self._forward(context, str(command.response_url), charger.id, domain)

    async def reserve_now(
        self, context: OcpiRequestContext, command: ReserveNow
    ) -> CommandResponse:
        found = await self._evse(command.location_id, command.evse_uid)
        if isinstance(found, CommandResponse):
            return found
        charger, evse = found
        partner_id = partner_of(context.party).id
        await self._remember(context, command.token)
        # Remember where the reservation was made, for CANCEL_RESERVATION. Reservations
        # live beside sessions (OCPI's session status RESERVATION), under their own
        # owner so that session listings never show them.
        await self._store.sessions.put(
            Document(
                _reservation_key(partner_id, command.reservation_id),
                {"charger_id": charger.id},
                command.expiry_date,
                owner=f"reservation:{partner_id}",
            )
        )
        number = reservation_number(command.reservation_id)
        # By the number the charger reports in the transaction that uses the reservation:
        # its session and CDR carry the eMSP's authorization_reference (mod_sessions).
        await self._store.sessions.put(
            reservation_document(
                charger.id, number, partner_id, command.authorization_reference,
                command.expiry_date,
            )
        )
        domain = cmd.ReserveNow(
            reservation_id=number,
            id_token=command.token.uid,
            expiry=format_datetime(command.expiry_date),
            evse_id=evse.ocpp_id if command.evse_uid else None,
            token_type=cmd.token_type_of(str(command.token.type)),
            contract_id=command.token.contract_id,
        )
        return self._forward(context, str(command.response_url), charger.id, domain)

    async def cancel_reservation(
        self, context: OcpiRequestContext, command: CancelReservation
    ) -> CommandResponse:
        doc = await self._store.sessions.get(
            _reservation_key(partner_of(context.party).id, command.reservation_id)
        )
        if doc is None:
            return self._response(CommandResponseType.REJECTED, "unknown reservation")
        domain = cmd.CancelReservation(reservation_number(command.reservation_id))
        return self._forward(
            context, str(command.response_url), str(doc.data["charger_id"]), domain
        )


def _reservation_key(partner_id: str, reservation_id: str) -> str:
    return f"reservation:{partner_id}:{reservation_id.upper()}"
