"""OCPI 2.1.1 basic types (types.md) and the base class of every 2.1.1 wire model.

Same conventions as :mod:`ocpi.v221.types` (this package does not import it: each
version's models stand alone), with the 2.1.1 rules:

* :data:`DateTime`: types.md 1.2 "ISO 8601, UTC, no designator = UTC"; read and written
  by :func:`ocpi.transport.parse_datetime` / :func:`ocpi.transport.format_datetime`
  (an offset is converted to UTC; written ``2015-06-29T20:39:09Z``).
* :data:`Number`: ``Decimal`` from a JSON number only (types.md 1.4), written exactly.
* ``string(n)`` is ``Annotated[str, Max(n)]``. types.md 1.5 says every 2.1.1 string is
  printable ASCII (OCPI 2.2 changed ``string`` to UTF-8). Identifiers (ids, uids,
  country and party codes, enums' neighbours such as ``Image.type``) are checked for
  printable ASCII (:data:`ASCII`); free text (names, addresses, ``DisplayText.text``)
  is read as it comes: refusing a whole Location for an accented street name would help
  no one, and the conversions pass such text on unchanged (a lossy point listed in
  :mod:`ocpi.versions.v211`).
* Enums are closed (2.1.1 has no open enums) except :data:`ModuleIDValue` (custom
  modules, version_information_endpoint.md) and :data:`VersionNumberValue` (a versions
  list names the other versions a party speaks).

Every model ignores unknown fields on input and never writes them; ``to_wire()`` leaves
unset optional fields out.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, TypeVar
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


def _check_printable_ascii(value: str) -> str:
    if any(not ("\x20" <= ch <= "\x7e") for ch in value):
        raise ValueError("should contain printable ASCII characters only (OCPI 2.1.1 string)")
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
"""OCPI DateTime: aware UTC datetime."""

Number = Annotated[
    Decimal,
    PlainValidator(_to_decimal, json_schema_input_type=float),
    PlainSerializer(_decimal_to_float, return_type=float, when_used="json"),
]
"""OCPI number: Decimal, exact on the wire through ocpi.transport.json_dumps."""

Int = Annotated[int, BeforeValidator(_to_int)]
"""OCPI int: a JSON integer (``"5"``, ``true`` and ``5.5`` are refused)."""

Bool = StrictBool


def Max(max_length: int, *, min_length: int | None = None) -> StringConstraints:
    """Length limits of ``string(n)``: ``Annotated[str, Max(36)]``."""
    return StringConstraints(min_length=min_length, max_length=max_length)


ASCII = AfterValidator(_check_printable_ascii)
"""types.md 1.5: printable ASCII (checked on identifiers, see the module docstring)."""

URL = Annotated[str, StringConstraints(max_length=255), AfterValidator(_check_url)]
"""types.md 1.6 URL: string(255), absolute."""

Id36 = Annotated[str, Max(36), ASCII]
"""string(36) identifier (Session.id, Token.uid, Connector.id, Tariff.id...)."""

Id39 = Annotated[str, Max(39), ASCII]
"""string(39) identifier (Location.id, EVSE.uid)."""

CountryCode = Annotated[str, Max(2, min_length=2), ASCII]
"""string(2) country code of a party (ISO 3166-1 alpha-2)."""

PartyIdStr = Annotated[str, Max(3, min_length=3), ASCII]
"""string(3) party id (ISO 15118)."""

CurrencyCode = Annotated[str, Max(3, min_length=3), ASCII]
"""string(3) ISO 4217 currency code."""

LanguageCode = Annotated[str, Max(2, min_length=2), ASCII]
"""string(2) ISO 639-1 language code."""


def open_enum(enum_cls: type[E]) -> PlainValidator:
    """The validator of an open enum field, ``Annotated[X | str, open_enum(X)]``: a known
    value becomes the ``X`` member, an unknown string is kept as it is."""

    def validate(value: object) -> E | str:
        if isinstance(value, enum_cls):
            return value
        if not isinstance(value, str):
            raise ValueError(f"Input should be a string (a {enum_cls.__name__} value)")
        try:
            return enum_cls(value)
        except ValueError:
            return value

    return PlainValidator(validate, json_schema_input_type=str)


class OcpiModel(BaseModel):
    """Base of every OCPI 2.1.1 object."""

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
    """Base of the partial objects of 2.1.1 PATCH requests: every field optional,
    ``last_updated`` included (2.1.1 does not require it; 2.2 made it required).
    Only the fields present in the request are written back out."""

    last_updated: DateTime | None = None

    def to_wire(self) -> dict[str, Any]:
        dumped = self.model_dump(mode="python", exclude_none=True)
        return {
            name: dumped.get(name)
            for name in type(self).model_fields
            if name in self.model_fields_set
        }


class DisplayText(OcpiModel):
    """types.md 1.3 DisplayText."""

    language: LanguageCode
    text: Annotated[str, Max(512)]


class ImageCategory(StrEnum):
    """mod_locations 4.15 ImageCategory."""

    CHARGER = "CHARGER"
    ENTRANCE = "ENTRANCE"
    LOCATION = "LOCATION"
    NETWORK = "NETWORK"
    OPERATOR = "OPERATOR"
    OTHER = "OTHER"
    OWNER = "OWNER"


class Image(OcpiModel):
    """mod_locations 4.14 Image (``width``/``height`` are int(5))."""

    url: URL
    thumbnail: URL | None = None
    category: ImageCategory
    type: Annotated[str, Max(4), ASCII]
    width: Annotated[Int, Field(ge=0, le=99999)] | None = None
    height: Annotated[Int, Field(ge=0, le=99999)] | None = None


class BusinessDetails(OcpiModel):
    """mod_locations 4.1 BusinessDetails."""

    name: Annotated[str, Max(100)]
    website: URL | None = None
    logo: Image | None = None
