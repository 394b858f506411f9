"""The central system's exception tree and its one translation to OCPP-J CALLERROR codes.

Handlers and converters raise :class:`OcppRequestError` subclasses; only the
connection edge (``gateway.csms.connection``) turns them into CALLERROR frames,
through :func:`error_code`. Codes follow OCPP-J 1.6 section 4.2.3, OCPP-J
2.0.1 section 4.3 and OCPP-J 2.1 section 4.3 (not the ``ocpp`` library, which swaps
NotImplemented and NotSupported and spells 1.6's FormationViolation as FormatViolation).
"""

from __future__ import annotations

import enum
from typing import Self

from gateway.domain.models import OcppVersion


class ErrorKind(enum.Enum):
    NOT_IMPLEMENTED = "action not known"
    NOT_SUPPORTED = "action known but not supported"
    FORMAT = "frame or payload syntactically wrong"
    RPC_FRAMEWORK = "not a valid RPC request"
    MESSAGE_TYPE = "unknown message type id"
    PROPERTY = "field has an invalid value"
    TYPE = "field has the wrong type"
    OCCURRENCE = "field missing or repeated"
    PROTOCOL = "payload incomplete"
    SECURITY = "security"
    INTERNAL = "internal error"
    GENERIC = "generic"


# One row per kind and version; tests/csms/test_errors.py checks every row. OCPP-J 2.1
# (section 4.3) keeps 2.0.1's table; what it adds are the message types CALLRESULTERROR
# and SEND (gateway.csms.connection), whose errors use these same codes.
_CODES: dict[ErrorKind, tuple[str, str, str]] = {
    #                           OCPP 1.6                       OCPP 2.0.1          OCPP 2.1
    ErrorKind.NOT_IMPLEMENTED: ("NotImplemented", "NotImplemented", "NotImplemented"),
    ErrorKind.NOT_SUPPORTED: ("NotSupported", "NotSupported", "NotSupported"),
    ErrorKind.FORMAT: ("FormationViolation", "FormatViolation", "FormatViolation"),
    # 1.6 has no RpcFrameworkError / MessageTypeNotSupported: its closest is
    # FormationViolation ("syntactically incorrect or not conform the PDU").
    ErrorKind.RPC_FRAMEWORK: ("FormationViolation", "RpcFrameworkError", "RpcFrameworkError"),
    ErrorKind.MESSAGE_TYPE: (
        "FormationViolation",
        "MessageTypeNotSupported",
        "MessageTypeNotSupported",
    ),
    ErrorKind.PROPERTY: (
        "PropertyConstraintViolation",
        "PropertyConstraintViolation",
        "PropertyConstraintViolation",
    ),
    ErrorKind.TYPE: (
        "TypeConstraintViolation",
        "TypeConstraintViolation",
        "TypeConstraintViolation",
    ),
    # 1.6 spells it with one "r" (OCPP-J 1.6 errata, known issue 5.1).
    ErrorKind.OCCURRENCE: (
        "OccurenceConstraintViolation",
        "OccurrenceConstraintViolation",
        "OccurrenceConstraintViolation",
    ),
    ErrorKind.PROTOCOL: ("ProtocolError", "ProtocolError", "ProtocolError"),
    ErrorKind.SECURITY: ("SecurityError", "SecurityError", "SecurityError"),
    ErrorKind.INTERNAL: ("InternalError", "InternalError", "InternalError"),
    ErrorKind.GENERIC: ("GenericError", "GenericError", "GenericError"),
}
_COLUMN = {OcppVersion.V16: 0, OcppVersion.V201: 1, OcppVersion.V21: 2}


def error_code(kind: ErrorKind, version: OcppVersion) -> str:
    return _CODES[kind][_COLUMN[version]]


class OcppRequestError(Exception):
    """A CALL the gateway cannot answer with a CALLRESULT.

    ``description`` is short and never echoes the payload (it may hold secrets
    and makes frames large); ``field`` names the offending field when known.
    """

    kind: ErrorKind = ErrorKind.GENERIC

    def __init__(self, description: str, *, field: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.field = field

    @classmethod
    def at(cls, field: str, problem: object) -> Self:
        """The error of ``field``: its description is the field's name, then ``problem``."""
        return cls(f"{field}: {problem}", field=field)

    def details(self) -> dict[str, str]:
        return {"field": self.field} if self.field else {}


def _kinded(kind: ErrorKind, name: str) -> type[OcppRequestError]:
    return type(name, (OcppRequestError,), {"kind": kind, "__doc__": kind.value})


NotImplementedAction = _kinded(ErrorKind.NOT_IMPLEMENTED, "NotImplementedAction")
NotSupportedAction = _kinded(ErrorKind.NOT_SUPPORTED, "NotSupportedAction")
FormatViolation = _kinded(ErrorKind.FORMAT, "FormatViolation")
RpcFrameworkError = _kinded(ErrorKind.RPC_FRAMEWORK, "RpcFrameworkError")
MessageTypeNotSupported = _kinded(ErrorKind.MESSAGE_TYPE, "MessageTypeNotSupported")
PropertyViolation = _kinded(ErrorKind.PROPERTY, "PropertyViolation")
TypeViolation = _kinded(ErrorKind.TYPE, "TypeViolation")
OccurrenceViolation = _kinded(ErrorKind.OCCURRENCE, "OccurrenceViolation")
SecurityViolation = _kinded(ErrorKind.SECURITY, "SecurityViolation")
InternalFailure = _kinded(ErrorKind.INTERNAL, "InternalFailure")
