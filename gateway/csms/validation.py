"""Compiled validators for the OCPP JSON schemas shipped inside the ``ocpp`` package.

The ``ocpp`` library validates with jsonschema's Draft4Validator (no format
checks), about half the CPU of a message. fastjsonschema compiles the same
schemas to Python code; ``use_formats=False`` keeps the library's verdicts
(date-time strings are checked where the converters parse them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
import ocpp

from gateway.csms.errors import (
    FormatViolation,
    OccurrenceViolation,
    OcppRequestError,
    PropertyViolation,
    TypeViolation,
)
from gateway.domain.models import OcppVersion

Validator = Callable[[Any], Any]

_SCHEMA_DIRS = {OcppVersion.V16: "v16", OcppVersion.V201: "v201"}
_RULE_ERRORS: dict[str, type[OcppRequestError]] = {
    "type": TypeViolation,
    "required": OccurrenceViolation,
    "minItems": OccurrenceViolation,
    "maxItems": OccurrenceViolation,
    "additionalProperties": FormatViolation,
}


class SchemaValidators:
    """Compiles each schema on first use and keeps it. One instance per app."""

    def __init__(self) -> None:
        self._root = Path(ocpp.__file__).parent
        self._cache: dict[tuple[OcppVersion, str], Validator | None] = {}

    def _schema_name(self, version: OcppVersion, action: str, response: bool) -> str:
        if version is OcppVersion.V16:
            return f"{action}Response" if response else action
        return f"{action}{'Response' if response else 'Request'}"

    def get(self, version: OcppVersion, action: str, *, response: bool = False) -> Validator | None:
        name = self._schema_name(version, action, response)
        key = (version, name)
        if key not in self._cache:
            path = self._root / _SCHEMA_DIRS[version] / "schemas" / f"{name}.json"
            if not path.is_file():
                self._cache[key] = None
            else:
                schema = json.loads(path.read_text(encoding="utf-8-sig"))
                self._cache[key] = fastjsonschema.compile(schema, use_formats=False)
        return self._cache[key]

    def validate(
        self, version: OcppVersion, action: str, payload: Any, *, response: bool = False
    ) -> None:
        """Raise the matching :class:`OcppRequestError` when ``payload`` breaks the schema."""
        validator = self.get(version, action, response=response)
        if validator is None:
            raise FormatViolation(f"no schema for {action}")
        try:
            validator(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            field = _field_path(exc)
            cls = _RULE_ERRORS.get(exc.rule or "", PropertyViolation)
            raise cls(_short_message(exc, field), field=field) from None


def _field_path(exc: fastjsonschema.JsonSchemaValueException) -> str:
    path = [str(p) for p in (exc.path or [])[1:]]
    if exc.rule == "required" and isinstance(exc.rule_definition, list):
        # Name the first missing property rather than the parent object.
        value = exc.value if isinstance(exc.value, dict) else {}
        missing = [p for p in exc.rule_definition if p not in value]
        if missing:
            path.append(str(missing[0]))
    return ".".join(path) or "payload"


def _short_message(exc: fastjsonschema.JsonSchemaValueException, field: str) -> str:
    rule = exc.rule or "schema"
    if rule == "required":
        return f"{field}: required"
    if rule == "additionalProperties":
        return f"{field}: unknown property"
    if rule == "type":
        return f"{field}: must be {exc.rule_definition}"
    if rule == "enum":
        return f"{field}: not an allowed value"
    if rule in ("maxLength", "minLength", "maximum", "minimum", "maxItems", "minItems"):
        return f"{field}: violates {rule} {exc.rule_definition}"
    return f"{field}: violates {rule}"
