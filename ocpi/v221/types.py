"""OCPI 2.2.1 basic types (types.asciidoc) and the base classes of every wire model.

* :data:`DateTime`: aware UTC ``datetime``; read from RFC 3339 (offset converted, none =
  UTC), written ``2015-06-29T20:39:09Z`` (see :mod:`ocpi.transport`).
* :data:`Number`: ``Decimal``; read from JSON numbers only (a string is refused), written
  as a JSON number with exactly its digits by :func:`ocpi.transport.json_dumps`.
* ``string(n)`` is ``Annotated[str, Max(n)]``; ``CiString(n)`` adds :data:`ASCII`
  (printable ASCII only). :data:`URL` is a string(255) with a scheme and host.
* :data:`Int` is a JSON integer and :data:`Bool` a JSON boolean (``"5"`` and ``"true"``
  are refused: OCPI peers send JSON types, and coercing strings hides their bugs).
* Open enums (the OpenAPI description marks them ``open-enum``; the spec lets parties add
  values, e.g. custom module ids) read unknown values as plain strings instead of
  refusing the whole object, so receivers stay forward compatible. Known values become
  the enum member.

Every model ignores unknown fields on input (OCPI: receivers ignore what they do not
know) and never writes them; ``to_wire()`` leaves unset optional fields out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, TypeVar, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StringConstraints,
)

from ocpi.transport import format_datetime, json_dumps, parse_datetime

E = TypeVar("E", bound=StrEnum)


# ------------------------------------------------------------------ scalar types


def _check_printable_ascii(value: str) -> str:
    if any(not ("\x20" <= ch <= "\x7e") for ch in value):
        raise ValueError("CiString should contain printable ASCII characters only")
    return value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        raise ValueError("URL should be absolute (scheme and host)")
    return value


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("Input should be a JSON number")
    if isinstance(value, float):
        value = Decimal(repr(value))
    elif isinstance(value, int):
        value = Decimal(value)
    if not value.is_finite():
        raise ValueError("Input should be a finite number")
    return value


def _to_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("Input should be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        value = Decimal(repr(value))
    if not value.is_finite() or value != int(value):
        raise ValueError("Input should be an integer, got a number with a fractional part")
    return int(value)


def _decimal_to_float(value: Decimal) -> float:
    return float(value)


DateTime = Annotated[
    datetime,
    PlainValidator(parse_datetime, json_schema_input_type=str),
    PlainSerializer(format_datetime, return_type=str, when_used="json"),
]
"""OCPI DateTime: aware UTC datetime, millisecond precision."""

Number = Annotated[
    Decimal,
    PlainValidator(_to_decimal, json_schema_input_type=float),
    PlainSerializer(_decimal_to_float, return_type=float, when_used="json"),
]
"""OCPI number: Decimal, exact on the wire through ocpi.transport.json_dumps."""

Int = Annotated[int, BeforeValidator(_to_int)]
"""OCPI int: a JSON integer (``5.0`` is accepted as 5; ``"5"``, ``true`` and ``5.5`` are not)."""

Bool = StrictBool


def Max(max_length: int, *, min_length: int | None = None) -> StringConstraints:
    """Length limits of ``string(n)`` / ``CiString(n)``: ``Annotated[str, Max(36)]``."""
    return StringConstraints(min_length=min_length, max_length=max_length)


ASCII = AfterValidator(_check_printable_ascii)
"""The character set of a CiString: ``Annotated[str, Max(36), ASCII]``."""

URL = Annotated[str, StringConstraints(max_length=255), AfterValidator(_check_url)]
"""URL: string(255), absolute."""

CountryCode = Annotated[str, Max(2, min_length=2), ASCII]
"""ISO 3166-1 alpha-2 country code of a party: CiString(2)."""

PartyIdStr = Annotated[str, Max(3, min_length=3), ASCII]
"""Party id (ISO 15118): CiString(3)."""

CiString36 = Annotated[str, Max(36), ASCII]
"""The usual object id: CiString(36)."""

CurrencyCode = Annotated[str, Max(3, min_length=3)]
"""ISO 4217 currency code: string(3)."""

LanguageCode = Annotated[str, Max(2, min_length=2)]
"""ISO 639-1 language code: string(2)."""


def open_enum(enum_cls: type[E]) -> PlainValidator:
    """The validator of an open enum field, ``Annotated[X | str, open_enum(X)]``: a known
    value becomes the ``X`` member, an unknown string is kept as it is, anything else is
    refused."""

    def validate(value: object) -> E | str:
        if isinstance(value, enum_cls):
            return value
        if not isinstance(value, str):
            raise ValueError(f"Input should be a string (a {enum_cls.__name__} value)")
        try:
            return enum_cls(value)
        except ValueError:
            return value

    validate.open_enum = enum_cls  # type: ignore[attr-defined]  # see unknown_enum_value
    return PlainValidator(validate, json_schema_input_type=str)


def _is_open_enum(annotation: Any, metadata: Sequence[Any] = ()) -> bool:
    """Whether a field's type (or its items') is an open enum (:func:`open_enum`)."""
    if any(hasattr(getattr(m, "func", None), "open_enum") for m in metadata):
        return True
    if get_origin(annotation) is Annotated:
        _, *extra = get_args(annotation)
        if any(hasattr(getattr(m, "func", None), "open_enum") for m in extra):
            return True
    return any(_is_open_enum(arg) for arg in get_args(annotation))


def unknown_enum_value(obj: BaseModel, path: str = "") -> str | None:
    """The path of the first open-enum field of ``obj`` (nested objects and lists
    included) that holds a value its enum does not know (``connectors[2].standard``),
    None if none. Such a value is kept when read (a newer peer may send it), but a
    receiver that checks the official schemas refuses it: a hub that must answer for
    every receiver before any sees the object (a broadcast) refuses it instead."""
    for name, info in type(obj).model_fields.items():
        value = getattr(obj, name, None)
        if value is None:
            continue
        where = f"{path}.{name}" if path else name
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        open_field = _is_open_enum(info.annotation, info.metadata)
        for index, item in items:
            at = where if index is None else f"{where}[{index}]"
            if isinstance(item, BaseModel):
                found = unknown_enum_value(item, at)
                if found is not None:
                    return found
            elif open_field and isinstance(item, str) and not isinstance(item, StrEnum):
                return at
    return None


# ------------------------------------------------------------------ base models


class OcpiModel(BaseModel):
    """Base of every OCPI 2.2.1 object."""

    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=False,
        validate_default=False,
        use_enum_values=False,
        ser_json_inf_nan="strings",
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as it goes on the wire (Python values; ``Decimal`` and
        ``datetime`` are written by :func:`ocpi.transport.json_dumps`): fields that are
        None are left out."""
        return self.model_dump(mode="python", exclude_none=True)

    def to_json(self) -> str:
        """Compact JSON, numbers exact (see :func:`ocpi.transport.json_dumps`)."""
        return json_dumps(self)


class OcpiPatch(OcpiModel):
    """Base of the partial objects of PATCH requests: every field optional except
    ``last_updated`` (mod_locations/mod_sessions/mod_tokens: "Any request to the PATCH
    method SHALL contain the last_updated field").

    Only the fields present in the request are written back out (``to_wire``), and
    :func:`ocpi.v221.patch.apply_patch` applies only those.
    """

    #: Fields that identify the object; a PATCH may repeat them but never change them.
    identity_fields: ClassVar[tuple[str, ...]] = ()

    last_updated: DateTime

    def to_wire(self) -> dict[str, Any]:
        dumped = self.model_dump(mode="python", exclude_none=True)
        return {
            name: dumped.get(name)
            for name in type(self).model_fields
            if name in self.model_fields_set
        }

    def present_fields(self) -> dict[str, Any]:
        """The fields present in the request, as model values (nested models kept)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


# ------------------------------------------------------------------------- enums


class Role(StrEnum):
    """types.asciidoc Role."""

    CPO = "CPO"
    EMSP = "EMSP"
    HUB = "HUB"
    NAP = "NAP"
    NSP = "NSP"
    OTHER = "OTHER"
    SCSP = "SCSP"


class ImageCategory(StrEnum):
    """mod_locations ImageCategory (open enum)."""

    CHARGER = "CHARGER"
    ENTRANCE = "ENTRANCE"
    LOCATION = "LOCATION"
    NETWORK = "NETWORK"
    OPERATOR = "OPERATOR"
    OTHER = "OTHER"
    OWNER = "OWNER"


ImageCategoryValue = Annotated[ImageCategory | str, open_enum(ImageCategory)]


# ----------------------------------------------------------------------- classes


class DisplayText(OcpiModel):
    """types.asciidoc DisplayText."""

    language: LanguageCode
    text: Annotated[str, Max(512)]


class Price(OcpiModel):
    """types.asciidoc Price."""

    excl_vat: Number
    incl_vat: Number | None = None


class Image(OcpiModel):
    """mod_locations Image."""

    url: URL
    thumbnail: URL | None = None
    category: ImageCategoryValue
    type: Annotated[str, Max(4), ASCII]
    width: Annotated[Int, Field(ge=0, le=99999)] | None = None
    height: Annotated[Int, Field(ge=0, le=99999)] | None = None


class BusinessDetails(OcpiModel):
    """mod_locations BusinessDetails."""

    name: Annotated[str, Max(100)]
    website: URL | None = None
    logo: Image | None = None
