"""OCPI 2.1.1 Commands module objects (mod_commands.md).

2.1.1 has four commands (no CANCEL_RESERVATION) and one answer object: the CPO answers
the POST with a CommandResponse (``result`` only) and, when it was ACCEPTED, later POSTs
another CommandResponse with the Charge Point's result to the ``response_url``
(changelog 2.1.1-d2 corrected both to CommandResponse). ``ReserveNow.reservation_id``
is an int; StartSession has no ``connector_id``.
"""

from __future__ import annotations

from ocpi.v211.enums import CommandResponseType, CommandType
from ocpi.v211.tokens import Token
from ocpi.v211.types import URL, DateTime, Id36, Id39, Int, OcpiModel

__all__ = [
    "COMMAND_MODELS",
    "CommandResponse",
    "CommandResponseType",
    "CommandType",
    "ReserveNow",
    "StartSession",
    "StopSession",
    "UnlockConnector",
]


class CommandResponse(OcpiModel):
    result: CommandResponseType


class ReserveNow(OcpiModel):
    response_url: URL
    token: Token
    expiry_date: DateTime
    reservation_id: Int
    location_id: Id39
    evse_uid: Id39 | None = None


class StartSession(OcpiModel):
    response_url: URL
    token: Token
    location_id: Id39
    evse_uid: Id39 | None = None


class StopSession(OcpiModel):
    response_url: URL
    session_id: Id36


class UnlockConnector(OcpiModel):
    response_url: URL
    location_id: Id39
    evse_uid: Id39
    connector_id: Id36


COMMAND_MODELS: dict[
    CommandType, type[ReserveNow | StartSession | StopSession | UnlockConnector]
] = {
    CommandType.RESERVE_NOW: ReserveNow,
    CommandType.START_SESSION: StartSession,
    CommandType.STOP_SESSION: StopSession,
    CommandType.UNLOCK_CONNECTOR: UnlockConnector,
}
"""The request object of each command."""
