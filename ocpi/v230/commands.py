"""OCPI 2.3.0 Commands module objects (mod_commands.asciidoc)."""

from __future__ import annotations

from ocpi.v230.enums import CommandResponseType, CommandResultType, CommandType
from ocpi.v230.tokens import Token
from ocpi.v230.types import URL, CiString36, DateTime, DisplayText, Int, OcpiModel

__all__ = [
    "COMMAND_MODELS",
    "CancelReservation",
    "CommandResponse",
    "CommandResponseType",
    "CommandResult",
    "CommandResultType",
    "CommandType",
    "ReserveNow",
    "StartSession",
    "StopSession",
    "UnlockConnector",
]


class CancelReservation(OcpiModel):
    response_url: URL
    reservation_id: CiString36


class ReserveNow(OcpiModel):
    response_url: URL
    token: Token
    expiry_date: DateTime
    reservation_id: CiString36
    location_id: CiString36
    evse_uid: CiString36 | None = None
    authorization_reference: CiString36 | None = None


class StartSession(OcpiModel):
    """``evse_uid`` is required when ``connector_id`` is set (checked by the
    receiver, which answers 2001)."""

    response_url: URL
    token: Token
    location_id: CiString36
    evse_uid: CiString36 | None = None
    connector_id: CiString36 | None = None
    authorization_reference: CiString36 | None = None


class StopSession(OcpiModel):
    response_url: URL
    session_id: CiString36


class UnlockConnector(OcpiModel):
    response_url: URL
    location_id: CiString36
    evse_uid: CiString36
    connector_id: CiString36


class CommandResponse(OcpiModel):
    """The CPO's direct answer to a command request."""

    result: CommandResponseType
    timeout: Int
    message: list[DisplayText] | None = None


class CommandResult(OcpiModel):
    """The Charge Point's result, POSTed to the command's ``response_url``."""

    result: CommandResultType
    message: list[DisplayText] | None = None


COMMAND_MODELS: dict[
    CommandType,
    type[CancelReservation | ReserveNow | StartSession | StopSession | UnlockConnector],
] = {
    CommandType.CANCEL_RESERVATION: CancelReservation,
    CommandType.RESERVE_NOW: ReserveNow,
    CommandType.START_SESSION: StartSession,
    CommandType.STOP_SESSION: StopSession,
    CommandType.UNLOCK_CONNECTOR: UnlockConnector,
}
"""The request object of each command."""
