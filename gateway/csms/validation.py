"""Compiled validators for the OCPP JSON schemas shipped inside the ``ocpp`` package.

The ``ocpp`` library validates with jsonschema's Draft4Validator (no format
checks), about half the CPU of a message. fastjsonschema compiles the same
schemas to Python code; ``use_formats=False`` keeps the library's verdicts
(date-time strings are checked where the converters parse them).

One part of that code is generated differently (:func:`compile_schema`): an ``enum`` of
strings, which fastjsonschema tests value by value (a type check and a comparison per
allowed value: 20 of each for a 1.6 ``measurand`` of ``Power.Active.Import``), is one
set lookup. The verdicts and the errors stay fastjsonschema's
(``tests/csms/test_schema_compile.py`` compares both on generated payloads).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import fastjsonschema
import ocpp
from fastjsonschema import JsonSchemaDefinitionException
from fastjsonschema.draft04 import CodeGeneratorDraft04
from fastjsonschema.draft06 import CodeGeneratorDraft06
from fastjsonschema.draft07 import CodeGeneratorDraft07
from fastjsonschema.draft2019 import CodeGeneratorDraft2019
from fastjsonschema.generator import CodeGenerator
from fastjsonschema.ref_resolver import RefResolver

from gateway.csms.errors import (
    FormatViolation,
    OccurrenceViolation,
    OcppRequestError,
    PropertyViolation,
    TypeViolation,
)
from gateway.domain.models import OcppVersion

Validator = Callable[[Any], Any]

_SCHEMA_DIRS = {OcppVersion.V16: "v16", OcppVersion.V201: "v201", OcppVersion.V21: "v21"}
_RULE_ERRORS: dict[str, type[OcppRequestError]] = {
    "type": TypeViolation,
    "required": OccurrenceViolation,
    "minItems": OccurrenceViolation,
    "maxItems": OccurrenceViolation,
    "additionalProperties": FormatViolation,
}


class _StringEnumsAsSets:
    """Mixed into fastjsonschema's code generator of the schema's draft."""

    _definition: dict[str, Any]

    def generate_enum(self) -> None:
        enum = self._definition["enum"]
        if not isinstance(enum, list) or not enum or not all(type(v) is str for v in enum):
            super().generate_enum()  # type: ignore[misc]
            return
        # A set display after ``in`` is compiled to a frozenset constant. Only a str can
        # equal a str, and the isinstance check keeps unhashable values out of the lookup.
        members = "{" + ", ".join(repr(v) for v in sorted(set(enum))) + "}"
        gen = cast(Any, self)
        with gen.l("if not (isinstance({variable}, str) and {variable} in {}):", members):
            # fastjsonschema's own error: same message, rule and definition.
            gen.exc("{name} must be one of {}", gen.e(enum), rule="enum")


# Keywords whose generated code reads the ``{variable}_keys`` set fastjsonschema makes;
# an object schema with any of them is generated as fastjsonschema generates it.
_READS_KEY_SET = frozenset(
    {
        "patternProperties",
        "dependencies",
        "dependentRequired",
        "dependentSchemas",
        "propertyNames",
        "unevaluatedProperties",
    }
)


class _ObjectsWithoutKeySets:
    """Mixed into fastjsonschema's code generator of the schema's draft.

    For an object, fastjsonschema's code builds a set of the required names at every call
    and subtracts the object's keys from it, then copies the keys into another set and
    removes each property from it as it is checked (the leftovers are the properties no
    schema allows). Here the required names are tested one by one (``"k" in data``) and
    the allowed ones by a loop over the object's keys against a constant frozenset; only
    when a test fails is fastjsonschema's own code run, so the error is its own: the same
    message (the leftover set made as it makes it, so its text lists the names in the same
    order), rule and definition. Most OCPP object schemas have this shape; one that reads
    the key set in other keywords (:data:`_READS_KEY_SET`), or has a property with a
    default (written into the object while it is checked), is left to fastjsonschema.
    """

    _definition: dict[str, Any]

    def _plain_object(self) -> bool:
        definition = self._definition
        additional = definition.get("additionalProperties", True)
        properties = definition.get("properties", {})
        return (
            (additional is True or additional is False)
            and isinstance(properties, dict)
            and _READS_KEY_SET.isdisjoint(definition)
            # A property's default is written into the object when it is missing, after
            # fastjsonschema took its key set: that set cannot be made again after.
            and not (
                cast(Any, self)._use_default
                and any(isinstance(p, dict) and "default" in p for p in properties.values())
            )
        )

    def generate_required(self) -> None:
        required = self._definition.get("required")
        if not (
            self._plain_object()
            and isinstance(required, list)
            and required
            and all(type(name) is str for name in required)
        ):
            super().generate_required()  # type: ignore[misc]
            return
        gen = cast(Any, self)
        gen.create_variable_is_dict()
        present = " and ".join(f'"{gen.e(name)}" in {gen._variable}' for name in required)
        with gen.l("if {variable}_is_dict and not ({}):", present):
            super().generate_required()  # type: ignore[misc]

    def generate_properties(self) -> None:
        if not self._plain_object():
            super().generate_properties()  # type: ignore[misc]
            return
        if not self._definition["properties"]:
            return  # no property: nothing to check here (and no empty block to write)
        gen = cast(Any, self)
        gen.create_variable_is_dict()
        with gen.l("if {variable}_is_dict:"):
            for key, definition in self._definition["properties"].items():
                # As fastjsonschema's generate_properties, without the key set.
                key_name = re.sub(r"($[^a-zA-Z]|[^a-zA-Z0-9])", "", key)
                if not isinstance(definition, dict | bool):
                    raise JsonSchemaDefinitionException(
                        f"{gen._variable}[{key_name}] must be object"
                    )
                with gen.l('if "{}" in {variable}:', gen.e(key)):
                    gen.l('{variable}__{0} = {variable}["{1}"]', key_name, gen.e(key))
                    gen.generate_func_code_block(
                        definition,
                        f"{gen._variable}__{key_name}",
                        "{}.{}".format(
                            gen._variable_name,
                            gen.e(key).replace("{", "{{").replace("}", "}}"),
                        ),
                        clear_variables=True,
                    )

    def generate_additional_properties(self) -> None:
        if not self._plain_object():
            super().generate_additional_properties()  # type: ignore[misc]
            return
        if self._definition.get("additionalProperties", True) is True:
            return  # any other property is allowed: nothing to check
        gen = cast(Any, self)
        gen.create_variable_is_dict()
        names = list(self._definition.get("properties", {}))
        known = "{" + ", ".join(repr(name) for name in names) + "}"
        if names:
            test = gen.l("if {variable}_is_dict:")
            loop = ("for {variable}_key in {variable}:", "if {variable}_key not in {}:")
        else:
            test = gen.l("if {variable}_is_dict and {variable}:")
            loop = None
        with test:
            if loop is None:
                self._refuse_unknown(gen, "")
            else:
                with gen.l(loop[0]), gen.l(loop[1], known):
                    self._refuse_unknown(gen, known)

    @staticmethod
    def _refuse_unknown(gen: Any, known: str) -> None:
        # fastjsonschema's leftover set: the keys, each property removed (discard, like
        # its remove, never resizes the set: the same table, so the same order in str).
        gen.l("{variable}_keys = set({variable}.keys())")
        if known:
            with gen.l("for {variable}_known in {}:", known):
                gen.l("{variable}_keys.discard({variable}_known)")
        gen.exc(
            '{name} must not contain "+str({variable}_keys)+" properties',
            rule="additionalProperties",
        )


# fastjsonschema's generator of each draft, with string enums as sets and objects checked
# without key sets (built once).
_GENERATORS: dict[type[CodeGenerator], type[CodeGenerator]] = {
    base: type(f"Lean{base.__name__}", (_StringEnumsAsSets, _ObjectsWithoutKeySets, base), {})
    for base in (
        CodeGeneratorDraft04,
        CodeGeneratorDraft06,
        CodeGeneratorDraft07,
        CodeGeneratorDraft2019,
    )
}


def compile_schema(schema: dict[str, Any]) -> Validator:
    """``fastjsonschema.compile(schema, use_formats=False)``, string enums as sets."""
    # The draft the schema names, as fastjsonschema.compile picks it.
    generator_class = _GENERATORS[fastjsonschema._get_code_generator_class(schema)]
    resolver = RefResolver.from_schema(schema, handlers={}, store={})
    generator = cast(Any, generator_class)(schema, resolver=resolver, use_formats=False)
    state: dict[str, Any] = generator.global_state
    exec(generator.func_code, state)  # as fastjsonschema.compile does
    return cast(Validator, state[resolver.get_scope_name()])


class SchemaValidators:
    """Compiles each schema on first use and keeps it. One instance per app."""

    def __init__(self) -> None:
        self._root = Path(ocpp.__file__).parent
        self._cache: dict[tuple[OcppVersion, str], Validator | None] = {}
        self._by_call: dict[tuple[OcppVersion, str, bool, bool], Validator | None] = {}

    def _schema_name(self, version: OcppVersion, action: str, response: bool, send: bool) -> str:
        if version is OcppVersion.V16 or send:
            # 2.1 SEND messages (OCPP-J 2.1 4.2.5) have one schema, named after the action
            # alone (NotifyPeriodicEventStream.json): there is no response.
            return f"{action}Response" if response else action
        return f"{action}{'Response' if response else 'Request'}"

    def get(
        self, version: OcppVersion, action: str, *, response: bool = False, send: bool = False
    ) -> Validator | None:
        name = self._schema_name(version, action, response, send)
        key = (version, name)
        if key not in self._cache:
            path = self._root / _SCHEMA_DIRS[version] / "schemas" / f"{name}.json"
            if not path.is_file():
                self._cache[key] = None
            else:
                schema = json.loads(path.read_text(encoding="utf-8-sig"))
                self._cache[key] = compile_schema(schema)
        return self._cache[key]

    def validate(
        self,
        version: OcppVersion,
        action: str,
        payload: Any,
        *,
        response: bool = False,
        send: bool = False,
    ) -> None:
        """Raise the matching :class:`OcppRequestError` when ``payload`` breaks the schema."""
        # Found by what the caller has at hand: the schema's name is made only once.
        key = (version, action, response, send)
        try:
            validator = self._by_call[key]
        except KeyError:
            validator = self._by_call[key] = self.get(version, action, response=response, send=send)
        if validator is None:
            raise FormatViolation(f"no schema for {action}")
        try:
            validator(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            field = _field_path(exc)
            cls = _RULE_ERRORS.get(exc.rule or "", PropertyViolation)
            raise cls(_short_message(exc, field), field=field) from None


def _field_path(exc: fastjsonschema.JsonSchemaValueException) -> str:
    """The field as ``meterValue[0].sampledValue[1].value``, the form the converters and
    the OCPI and admin errors use too."""
    path: list[str | int] = list((exc.path or [])[1:])
    if exc.rule == "required" and isinstance(exc.rule_definition, list):
        # Name the first missing property rather than the parent object.
        value = exc.value if isinstance(exc.value, dict) else {}
        missing = [p for p in exc.rule_definition if p not in value]
        if missing:
            path.append(str(missing[0]))
    return _path_text(path)


def _path_text(path: Sequence[str | int]) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.removeprefix(".") or "payload"


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


# -- what the schemas allow but storage cannot hold --------------------------------

# SQLite integers (and every store's indexes) are signed 64-bit.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# OCPP payloads nest a handful of levels; open ``customData`` objects and 2.0.1
# DataTransfer ``data`` allow any JSON, which is not stored or shown nested deeper.
MAX_DEPTH = 32
# A payload needs the walk below only when its text could hold one of the values
# it looks for: an integer of 19 digits or more (JSON's digits are ASCII), a surrogate
# escape, or more brackets than MAX_DEPTH (nesting deeper needs at least that many).
# C-speed scans decide, so an ordinary frame costs next to nothing: the escape's
# pattern only runs where the text has an escape at all, and a run of 19 digits is
# looked for in the text's UTF-8 bytes with every ASCII digit made "0", "[" and "{" made
# "[" and every other byte "." (a translation table, then a substring search: a fifth of
# the time of the pattern ``[0-9]{19}`` on a MeterValues frame; the UTF-8 of other
# characters has no byte in 0x30 to 0x39, nor a bracket's); one count of the translated
# bytes then counts both kinds of brackets.
_MARKS = bytes(
    0x30 if 0x30 <= b <= 0x39 else 0x5B if b in (0x5B, 0x7B) else 0x2E for b in range(256)
)
_LONG_RUN = b"0" * 19
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_BRACKETS_WITHOUT_WALK = MAX_DEPTH


def _marks(raw: str) -> bytes:
    # surrogatepass: a str built in the process may hold a lone surrogate; a frame's
    # text cannot (it was UTF-8).
    return raw.encode("utf-8", "surrogatepass").translate(_MARKS)


def needs_edge_check(raw: str) -> bool:
    """Whether the frame text could hold a value :func:`check_storable` refuses."""
    marks = _marks(raw)  # one pass for the brackets' count and the digit run
    if marks.count(b"[") > _BRACKETS_WITHOUT_WALK:
        return True
    if "\\u" in raw and _SURROGATE.search(raw) is not None:
        return True
    # 19 ASCII digits in a row. find, not ``in``: bytes' ``in`` first tries its operand as
    # an integer (a byte value) and raises, formats and clears a TypeError before it searches.
    return marks.find(_LONG_RUN) != -1


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON \ud800 escape
        return False
    return True


def check_storable(payload: Any) -> None:
    """Refuse what the schemas allow but no store can hold, naming the field.

    Integers beyond 64 bits and strings with lone surrogates are a
    PropertyConstraintViolation; nesting deeper than :data:`MAX_DEPTH` a
    FormatViolation. Iterative, so that depth itself cannot exhaust the stack.
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(payload, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            field = _path_text(path[:MAX_DEPTH])
            raise FormatViolation(f"nested deeper than {MAX_DEPTH} levels", field=field)
        if isinstance(value, dict):
            for key, item in value.items():
                if not _encodable(key):
                    where = _path_text(path)
                    raise PropertyViolation.at(where, "a property name is not valid Unicode")
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                field = _path_text(path)
                raise PropertyViolation.at(field, "integer out of range")
        elif isinstance(value, str) and not _encodable(value):
            field = _path_text(path)
            raise PropertyViolation.at(field, "not valid Unicode (lone surrogate)")
