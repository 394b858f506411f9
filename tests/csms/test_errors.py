"""Table tests: every error kind maps to the OCPP-J code of each version."""

from __future__ import annotations

import pytest

from gateway.csms.errors import ErrorKind, error_code
from gateway.domain.models import OcppVersion

# OCPP-J 1.6 section 4.2.3 and OCPP-J 2.0.1 section 4.3, table "ErrorCode".
EXPECTED = [
    (ErrorKind.NOT_IMPLEMENTED, "NotImplemented", "NotImplemented"),
    (ErrorKind.NOT_SUPPORTED, "NotSupported", "NotSupported"),
    (ErrorKind.FORMAT, "FormationViolation", "FormatViolation"),
    (ErrorKind.RPC_FRAMEWORK, "FormationViolation", "RpcFrameworkError"),
    (ErrorKind.MESSAGE_TYPE, "FormationViolation", "MessageTypeNotSupported"),
    (ErrorKind.PROPERTY, "PropertyConstraintViolation", "PropertyConstraintViolation"),
    (ErrorKind.TYPE, "TypeConstraintViolation", "TypeConstraintViolation"),
    (ErrorKind.OCCURRENCE, "OccurenceConstraintViolation", "OccurrenceConstraintViolation"),
    (ErrorKind.PROTOCOL, "ProtocolError", "ProtocolError"),
    (ErrorKind.SECURITY, "SecurityError", "SecurityError"),
    (ErrorKind.INTERNAL, "InternalError", "InternalError"),
    (ErrorKind.GENERIC, "GenericError", "GenericError"),
]

V16_CODES = {
    "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
    "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
    "TypeConstraintViolation", "GenericError",
}
V201_CODES = {
    "FormatViolation", "GenericError", "InternalError", "MessageTypeNotSupported",
    "NotImplemented", "NotSupported", "OccurrenceConstraintViolation",
    "PropertyConstraintViolation", "ProtocolError", "RpcFrameworkError", "SecurityError",
    "TypeConstraintViolation",
}


@pytest.mark.parametrize(("kind", "v16", "v201"), EXPECTED)
def test_error_code_table(kind: ErrorKind, v16: str, v201: str) -> None:
    assert error_code(kind, OcppVersion.V16) == v16
    assert error_code(kind, OcppVersion.V201) == v201
    # Every code we send exists in that version's list.
    assert v16 in V16_CODES
    assert v201 in V201_CODES


def test_table_covers_every_kind() -> None:
    assert {row[0] for row in EXPECTED} == set(ErrorKind)
