"""PATCH support: validating partial objects and applying them all-or-nothing.

A PATCH body is validated with the object's patch model (:data:`PATCH_MODELS`): only the
fields present are checked and kept, ``last_updated`` is required (OCPI: "Any request to
the PATCH method SHALL contain the last_updated field"). :func:`apply_patch` merges it
into the stored object and validates the *result* as a full object, so an update is
applied completely or not at all: a PATCH that would leave the object invalid (say,
``"max_voltage": null``) raises :class:`~ocpi.transport.InvalidParametersError` naming
the field and the stored object is untouched.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError

from ocpi.transport import InvalidParametersError, format_validation_error
from ocpi.v230.locations import EVSE, Connector, ConnectorPatch, EVSEPatch, Location, LocationPatch
from ocpi.v230.payments import Terminal, TerminalPatch
from ocpi.v230.sessions import Session, SessionPatch
from ocpi.v230.tokens import Token, TokenPatch
from ocpi.v230.types import OcpiModel, OcpiPatch

__all__ = ["PATCH_MODELS", "apply_patch", "parse_patch"]

M = TypeVar("M", bound=OcpiModel)

PATCH_MODELS: dict[type[OcpiModel], type[OcpiPatch]] = {
    Location: LocationPatch,
    EVSE: EVSEPatch,
    Connector: ConnectorPatch,
    Session: SessionPatch,
    Token: TokenPatch,
    Terminal: TerminalPatch,
}
"""The patch model of each object that OCPI 2.3.0 lets a party PATCH."""

_APPENDED_LISTS: dict[type[OcpiPatch], frozenset[str]] = {
    SessionPatch: frozenset({"charging_periods"}),
}


def parse_patch(model: type[OcpiModel], data: Any) -> OcpiPatch:
    """Validate a PATCH body for ``model``; raises :class:`InvalidParametersError`
    naming the field (``last_updated`` when it is missing)."""
    try:
        return PATCH_MODELS[model].model_validate(data)
    except ValidationError as exc:
        raise InvalidParametersError(format_validation_error(exc)) from None


def apply_patch(obj: M, patch: OcpiPatch) -> M:
    """A new object: ``obj`` with the fields present in ``patch`` replaced (and, for a
    Session, the patch's ``charging_periods`` appended). Identity fields may be repeated
    in the patch but not changed (compared case-insensitively, as CiStrings).

    Raises :class:`InvalidParametersError` naming the field when the patch changes an
    identity field or when the merged object is not valid; ``obj`` is never modified.
    """
    if PATCH_MODELS.get(type(obj)) is not type(patch):
        raise TypeError(f"{type(patch).__name__} does not apply to {type(obj).__name__}")
    present = patch.present_fields()
    for name in patch.identity_fields:
        if name in present:
            new, old = present[name], getattr(obj, name)
            if new is None or str(new).upper() != str(old).upper():
                shown = None if new is None else str(new)
                raise InvalidParametersError(
                    f"{name}: cannot be changed by a PATCH (is {str(old)!r}, PATCH has {shown!r})"
                )
    merged = obj.model_dump(mode="python", exclude_none=True)
    appended = _APPENDED_LISTS.get(type(patch), frozenset())
    for name, value in present.items():
        if name in patch.identity_fields:
            continue
        dumped = _dump(value)
        if name in appended:
            if dumped:
                merged[name] = [*merged.get(name, []), *dumped]
        elif dumped is None:
            merged.pop(name, None)
        else:
            merged[name] = dumped
    try:
        return type(obj).model_validate(merged)
    except ValidationError as exc:
        raise InvalidParametersError(format_validation_error(exc)) from None


def _dump(value: Any) -> Any:
    if isinstance(value, OcpiModel):
        return value.model_dump(mode="python", exclude_none=True)
    if isinstance(value, list):
        return [_dump(item) for item in value]
    return value
