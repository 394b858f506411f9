"""Table tests: every error kind maps to the OCPP-J code of each version (1.6, 2.0.1, 2.1)."""

from __future__ import annotations

import pytest

from gateway.csms.errors import ErrorKind, error_code
from gateway.domain.models import OcppVersion

# OCPP-J 1.6 section 4.2.3, OCPP-J 2.0.1 section 4.3 and OCPP-J 2.1 section 4.3, table
# "ErrorCode" (2.1 keeps 2.0.1's codes; its CALLRESULTERROR uses them too).
EXPECTED = [
    (ErrorKind.NOT_IMPLEMENTED, "NotImplemented", "NotImplemented", "NotImplemented"),
    (ErrorKind.NOT_SUPPORTED, "NotSupported", "NotSupported", "NotSupported"),
    (ErrorKind.FORMAT, "FormationViolation", "FormatViolation", "FormatViolation"),
    (ErrorKind.RPC_FRAMEWORK, "FormationViolation", "RpcFrameworkError", "RpcFrameworkError"),
    (ErrorKind.MESSAGE_TYPE, "FormationViolation", "MessageTypeNotSupported", "MessageTypeNotSupported"),
    (ErrorKind.PROPERTY, "PropertyConstraintViolation", "PropertyConstraintViolation", "PropertyConstraintViolation"),
    (ErrorKind.TYPE, "TypeConstraintViolation", "TypeConstraintViolation", "TypeConstraintViolation"),
    (ErrorKind.OCCURRENCE, "OccurenceConstraintViolation", "OccurrenceConstraintViolation", "OccurrenceConstraintViolation"),
    (ErrorKind.PROTOCOL, "ProtocolError", "ProtocolError", "ProtocolError"),
    (ErrorKind.SECURITY, "SecurityError", "SecurityError", "SecurityError"),
    (ErrorKind.INTERNAL, "InternalError", "InternalError", "InternalError"),
    (ErrorKind.GENERIC, "GenericError", "GenericError", "GenericError"),
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
# OCPP-J 2.1 4.3: the same twelve codes.
V21_CODES = set(V201_CODES)


@pytest.mark.parametrize(("kind", "v16", "v201", "v21"), EXPECTED)
def test_error_code_table(kind: ErrorKind, v16: str, v201: str, v21: str) -> None:
    assert error_code(kind, OcppVersion.V16) == v16
    assert error_code(kind, OcppVersion.V201) == v201
    assert error_code(kind, OcppVersion.V21) == v21
    # Every code we send exists in that version's list.
    assert v16 in V16_CODES
    assert v201 in V201_CODES
    assert v21 in V21_CODES


def test_every_version_has_a_column() -> None:
    for kind in ErrorKind:
        for version in OcppVersion:
            assert error_code(kind, version)


def test_table_covers_every_kind() -> None:
    assert {row[0] for row in EXPECTED} == set(ErrorKind)


def test_an_error_at_a_field_names_it_in_its_description_and_its_details() -> None:
    from gateway.csms.errors import PropertyViolation

    error = PropertyViolation.at("meterValue[0].sampledValue[1].value", ValueError("not a number"))
    assert type(error) is PropertyViolation
    assert error.description == "meterValue[0].sampledValue[1].value: not a number"
    assert error.details() == {"field": "meterValue[0].sampledValue[1].value"}
    assert error.kind is ErrorKind.PROPERTY
