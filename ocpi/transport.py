"""OCPI transport and format, version-neutral (OCPI 2.2.1 ``transport_and_format`` and
``status_codes``): JSON, timestamps, status codes, the response envelope, the errors a
server answers with, the ``Authorization: Token`` header, request/correlation ids,
message-routing headers and pagination.

Design decisions:

* **JSON numbers are exact.** OCPI money and quantities are JSON numbers; the models hold
  them as :class:`~decimal.Decimal`. :func:`json_loads` reads every non-integer number as a
  ``Decimal`` (so ``0.1`` stays ``0.1``) and :func:`json_dumps` writes a ``Decimal`` as a
  JSON number with exactly its digits (``Decimal("2.50")`` is written ``2.50``, never
  ``"2.50"`` and never through a binary float). Pydantic's own ``model_dump_json`` also
  writes numbers (the models fall back to ``float`` there), but only these two functions
  are exact; everything in ``ocpi`` that talks to the network uses them.
* **Timestamps** are written in UTC with a ``Z`` and at most millisecond precision
  (``2015-06-29T20:39:09Z``, ``2016-12-29T17:45:09.2Z``), which fits OCPI's string(25).
  Read timestamps may carry any RFC 3339 offset (converted to UTC) or none (UTC, as OCPI
  says); sub-millisecond digits are dropped on input so that what is held is exactly
  what is written.
* **HTTP status codes follow status_codes.asciidoc**: a request that is valid JSON, is
  authenticated and addresses an existing resource has reached the OCPI layer and is
  answered with HTTP 200 and the OCPI status code, even for 2xxx/3xxx errors. HTTP errors
  are kept for the transport layer: 400 for a body that is not JSON (or nests deeper than
  :data:`MAX_JSON_DEPTH`), 401 for a missing or unknown credentials token, 404 for an
  unknown object on GET (and an unknown URL), 405, 408 for a body that does not arrive in
  time, and 500 (status 3000) only for an unexpected failure. Each :class:`OcpiError` carries
  its HTTP status, so a caller can override it where a peer needs something else.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum, IntEnum
from itertools import accumulate
from typing import Annotated, Any, ClassVar, Final, Generic, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    StrictInt,
    ValidationError,
)
from yarl import URL

__all__ = [
    "CORRELATION_ID_HEADER",
    "LINK_HEADER",
    "MAX_JSON_DEPTH",
    "REQUEST_ID_HEADER",
    "TOTAL_COUNT_HEADER",
    "X_LIMIT_HEADER",
    "GenericClientError",
    "HubConnectionProblemError",
    "HubError",
    "HubTimeoutError",
    "InvalidParametersError",
    "JsonTooDeepError",
    "MethodNotAllowedError",
    "NoMatchingEndpointsError",
    "NotEnoughInformationError",
    "NotFoundError",
    "OcpiError",
    "OcpiResponse",
    "OcpiStatus",
    "PageRequest",
    "PartyId",
    "RequestIds",
    "ServerError",
    "UnableToUseClientApiError",
    "UnauthorizedError",
    "UnknownLocationError",
    "UnknownReceiverError",
    "UnknownTokenError",
    "UnsupportedVersionError",
    "check_json_depth",
    "encode_authorization",
    "envelope",
    "envelope_json",
    "error_for_status",
    "format_datetime",
    "format_validation_error",
    "is_success",
    "join_url",
    "json_dumps",
    "json_loads",
    "new_request_id",
    "next_link",
    "pagination_headers",
    "parse_authorization",
    "parse_datetime",
    "parse_page_request",
    "parse_routing_headers",
    "routing_headers",
]

REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_ID_HEADER = "X-Correlation-ID"
TOTAL_COUNT_HEADER = "X-Total-Count"
X_LIMIT_HEADER = "X-Limit"
LINK_HEADER = "Link"
TO_COUNTRY_CODE_HEADER = "OCPI-to-country-code"
TO_PARTY_ID_HEADER = "OCPI-to-party-id"
FROM_COUNTRY_CODE_HEADER = "OCPI-from-country-code"
FROM_PARTY_ID_HEADER = "OCPI-from-party-id"


# --------------------------------------------------------------------------- JSON


# Arrays and objects nest at most this deep in what is read. OCPI's own objects nest
# less than ten levels (a tariff's restrictions, a CDR's dimensions); deeper input is
# refused before it is parsed, since the parser, pydantic and json_dumps all recurse.
MAX_JSON_DEPTH = 64


class JsonTooDeepError(ValueError):
    """The JSON text nests arrays and objects deeper than allowed."""


def json_loads(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode JSON with every non-integer number as ``Decimal``.

    Raises ``ValueError`` (``json.JSONDecodeError`` or ``UnicodeDecodeError``) when the
    text is not JSON. ``NaN`` and ``Infinity``, which are not JSON, are refused too, and
    so is nesting deeper than ``max_depth`` (:class:`JsonTooDeepError`).
    """
    check_json_depth(text, max_depth)
    try:
        value = _decimal_json(text)
    except RecursionError:
        # Not reached with a sane max_depth; kept so that no input escapes as a crash.
        raise JsonTooDeepError("nesting too deep for the JSON parser") from None
    check_json_text(text, value)
    return value


def _decimal_json(text: str | bytes) -> Any:
    """``json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)`` with a
    decoder built once (json.loads builds one per call when given options): the same
    steps, bytes decoded by their detected encoding, a str's BOM refused."""
    if isinstance(text, str):
        if text.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    else:
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    return _DECIMAL_DECODER.decode(text)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


def check_json_text(text: str | bytes, value: Any) -> None:
    """Raise ``ValueError`` when a string in ``value`` (parsed from ``text``) holds a
    lone UTF-16 surrogate: valid JSON escapes (``"\\ud800"``), but not Unicode text, so
    nothing can store, encode or pass it on (RFC 8259 8.2: unpredictable behaviour).
    Only text that has such an escape at all is walked."""
    pattern = _SURROGATE_ESCAPE if isinstance(text, str) else _SURROGATE_ESCAPE_BYTES
    if pattern.search(text) is not None and _has_lone_surrogate(value):  # type: ignore[arg-type]
        raise ValueError("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(i for i in range(256) if i not in b"[]{}")
_BRACKET_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")  # +1 / -1 as signed bytes


def check_json_depth(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`JsonTooDeepError` when ``text`` nests arrays and objects deeper
    than ``max_depth``, without parsing it: linear in the size of the text and done in
    C (string literals removed by one regular expression, then the running sum of the
    brackets). Text that is not JSON is left for the parser to refuse."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    steps = memoryview(brackets.translate(_BRACKET_STEPS)).cast("b")
    if max(accumulate(steps), default=0) > max_depth:
        raise JsonTooDeepError(f"arrays and objects nested more than {max_depth} levels deep")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# Built once and shared: json_loads's decoder (_decimal_json); it keeps no state between
# calls.
_DECIMAL_DECODER: Final = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)


def json_dumps(value: object) -> str:
    """Encode to compact JSON, ``Decimal`` as a JSON number with exactly its digits.

    Accepts dicts, lists, tuples, strings (and ``StrEnum``), ints, bools, None,
    ``Decimal``, finite floats, aware or naive (= UTC) datetimes, enums and pydantic
    models (dumped with :func:`wire_dict`: unset optional fields are left out).
    """
    out: list[str] = []
    _write(value, out)
    return "".join(out)


_encode_str = json.encoder.encode_basestring_ascii


@dataclass(frozen=True, slots=True)
class RawJson:
    """JSON text written before (by :func:`json_dumps`), put as it is where a value
    goes: objects kept serialized between requests (a page of locations) are not
    written again for each one."""

    text: str


def _write(value: object, out: list[str]) -> None:
    # The commonest exact types first (no ABC check for a plain dict or list); what they
    # write is what the general branches below write for them.
    if type(value) is str:
        out.append(_encode_str(value))
        return
    if type(value) is RawJson:
        out.append(value.text)
        return
    if type(value) is dict:
        _write_object(value, out)
        return
    if type(value) is list:
        _write_array(value, out)
        return
    if isinstance(value, str):
        out.append(_encode_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot write {value} as a JSON number")
        out.append(_decimal_text(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"cannot write {value} as a JSON number")
        out.append(float.__repr__(value))
    elif isinstance(value, Mapping):
        _write_object(value, out)
    elif isinstance(value, list | tuple):
        _write_array(value, out)
    elif isinstance(value, datetime):
        out.append(_encode_str(format_datetime(value)))
    elif isinstance(value, Enum):
        _write(value.value, out)
    elif isinstance(value, RawJson):
        out.append(value.text)
    elif hasattr(value, "model_dump"):
        _write(wire_dict(value), out)
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _write_object(value: Mapping[Any, object], out: list[str]) -> None:
    out.append("{")
    first = True
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
        if not first:
            out.append(",")
        first = False
        out.append(_encode_str(key))
        out.append(":")
        _write(item, out)
    out.append("}")


def _write_array(value: list[object] | tuple[object, ...], out: list[str]) -> None:
    out.append("[")
    for i, item in enumerate(value):
        if i:
            out.append(",")
        _write(item, out)
    out.append("]")


def _decimal_text(value: Decimal) -> str:
    """The digits of ``value`` in plain notation (``Decimal("1E+2")`` is ``100``),
    falling back to exponent notation for absurd exponents rather than writing
    thousands of zeros."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -40 <= exponent <= 40:
        return format(value, "f")
    return str(value).replace("E", "e")


def wire_dict(model: Any) -> dict[str, Any]:
    """The Python-mode dump of a pydantic model as it goes on the wire.

    Models of :mod:`ocpi.v221` define ``to_wire()``; any other pydantic model is dumped
    without its ``None`` fields.
    """
    to_wire = getattr(model, "to_wire", None)
    if callable(to_wire):
        result = to_wire()
    else:
        result = model.model_dump(mode="python", exclude_none=True, by_alias=True)
    if not isinstance(result, dict):
        raise TypeError(f"{type(model).__name__} did not dump to a JSON object")
    return result


# ---------------------------------------------------------------------- DateTime

_DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$"
)


def parse_datetime(value: object) -> datetime:
    """An OCPI DateTime as an aware UTC ``datetime`` with at most millisecond precision.

    Accepts RFC 3339 strings with ``Z``, a numeric offset (converted to UTC) or no zone
    designator (UTC, per OCPI types.asciidoc), and ``datetime`` objects (naive = UTC).
    Raises ``ValueError`` with a message fit for an OCPI ``status_message``.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        match = _DATETIME_RE.match(value)
        if match is None:
            raise ValueError("Input should be an RFC 3339 date-time such as 2015-06-29T20:39:09Z")
        text = value.upper()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        fraction = match.group(7)
        if fraction and len(fraction) > 7:  # fromisoformat wants at most 6 digits
            text = text.replace(fraction, fraction[:7], 1)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"Input should be a valid date-time: {exc}") from None
    else:
        raise ValueError("Input should be an RFC 3339 date-time string")
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return parsed.replace(microsecond=parsed.microsecond - parsed.microsecond % 1000)


def format_datetime(value: datetime) -> str:
    """``2015-06-29T20:39:09Z``; milliseconds without trailing zeros when not whole
    seconds (``...09.2Z``, ``...09.123Z``). Naive datetimes are taken as UTC."""
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    # strftime's text for years from 1000 (strftime does not pad %Y below that on every
    # platform), at a fraction of its cost.
    text = (
        "%04d-%02d-%02dT%02d:%02d:%02d"  # noqa: UP031 (the fastest way to write these)
        % (value.year, value.month, value.day, value.hour, value.minute, value.second)
        if value.year >= 1000
        else value.strftime("%Y-%m-%dT%H:%M:%S")
    )
    millis = value.microsecond // 1000
    if millis:
        text += "." + f"{millis:03d}".rstrip("0")
    return text + "Z"


# ------------------------------------------------------------------ status codes


class OcpiStatus(IntEnum):
    """OCPI status codes (status_codes.asciidoc). 19xx, 29xx, 39xx and 49xx are custom
    ranges; :meth:`describe` names those too."""

    SUCCESS = 1000
    CLIENT_ERROR = 2000
    INVALID_PARAMETERS = 2001
    NOT_ENOUGH_INFORMATION = 2002
    UNKNOWN_LOCATION = 2003
    UNKNOWN_TOKEN = 2004
    SERVER_ERROR = 3000
    UNABLE_TO_USE_CLIENT_API = 3001
    UNSUPPORTED_VERSION = 3002
    NO_MATCHING_ENDPOINTS = 3003
    HUB_ERROR = 4000
    UNKNOWN_RECEIVER = 4001
    HUB_TIMEOUT = 4002
    HUB_CONNECTION_PROBLEM = 4003

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]

    @classmethod
    def describe(cls, code: int) -> str:
        """The spec's meaning of any status code, including the custom ranges."""
        try:
            return cls(code).description
        except ValueError:
            pass
        if 1900 <= code <= 1999:
            return "Custom success"
        if 2900 <= code <= 2999:
            return "Custom client error"
        if 3900 <= code <= 3999:
            return "Custom server error"
        if 4900 <= code <= 4999:
            return "Custom hub error"
        return "Unknown status code"


_DESCRIPTIONS: dict[OcpiStatus, str] = {
    OcpiStatus.SUCCESS: "Generic success code",
    OcpiStatus.CLIENT_ERROR: "Generic client error",
    OcpiStatus.INVALID_PARAMETERS: "Invalid or missing parameters",
    OcpiStatus.NOT_ENOUGH_INFORMATION: "Not enough information",
    OcpiStatus.UNKNOWN_LOCATION: "Unknown Location",
    OcpiStatus.UNKNOWN_TOKEN: "Unknown Token",
    OcpiStatus.SERVER_ERROR: "Generic server error",
    OcpiStatus.UNABLE_TO_USE_CLIENT_API: "Unable to use the client's API",
    OcpiStatus.UNSUPPORTED_VERSION: "Unsupported version",
    OcpiStatus.NO_MATCHING_ENDPOINTS: (
        "No matching endpoints or expected endpoints missing between parties"
    ),
    OcpiStatus.HUB_ERROR: "Generic hub error",
    OcpiStatus.UNKNOWN_RECEIVER: "Unknown receiver (TO address is unknown)",
    OcpiStatus.HUB_TIMEOUT: "Timeout on forwarded request",
    OcpiStatus.HUB_CONNECTION_PROBLEM: "Connection problem (receiving party is not connected)",
}


def is_success(status_code: int) -> bool:
    """1xxx is success (1000 and the custom 19xx range)."""
    return 1000 <= status_code <= 1999


# ------------------------------------------------------------------------ errors


class OcpiError(Exception):
    """An error a server answers with: an OCPI envelope carrying ``status_code`` and
    ``message`` (as ``status_message``), sent with ``http_status``.

    Subclasses fix the status code and the usual HTTP status; both can be overridden per
    instance. ``data`` (optional) goes into the envelope's ``data`` field.
    """

    default_status_code: ClassVar[int] = OcpiStatus.CLIENT_ERROR
    default_http_status: ClassVar[int] = 200

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        http_status: int | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = int(status_code if status_code is not None else self.default_status_code)
        self.http_status = http_status if http_status is not None else self.default_http_status
        self.data = data

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status_code={self.status_code}, "
            f"http_status={self.http_status})"
        )


class GenericClientError(OcpiError):
    """2000: generic client error."""


class UnauthorizedError(OcpiError):
    """Missing or unknown credentials token: HTTP 401 (transport_and_format, Authorization
    header), with status 2000 in the envelope."""

    default_http_status = 401


class NotFoundError(OcpiError):
    """An object (or URL) that does not exist: HTTP 404, status 2000 (status_codes: "In
    case of a GET request, when the resource does NOT exist, the server SHOULD return a
    HTTP 404")."""

    default_http_status = 404


class MethodNotAllowedError(OcpiError):
    """HTTP 405 (credentials module: POST when already registered, and so on)."""

    default_http_status = 405


class InvalidParametersError(OcpiError):
    """2001: invalid or missing parameters (the message names the field)."""

    default_status_code = OcpiStatus.INVALID_PARAMETERS


class NotEnoughInformationError(OcpiError):
    """2002: not enough information (e.g. a real-time authorization without location)."""

    default_status_code = OcpiStatus.NOT_ENOUGH_INFORMATION


class UnknownLocationError(OcpiError):
    """2003: unknown Location (HTTP 404 by default, as for a GET of an unknown object;
    a command naming an unknown location is better answered with ``http_status=200``)."""

    default_status_code = OcpiStatus.UNKNOWN_LOCATION
    default_http_status = 404


class UnknownTokenError(OcpiError):
    """2004: unknown Token (HTTP 404 by default, as mod_tokens asks of a real-time
    authorization of an unknown token)."""

    default_status_code = OcpiStatus.UNKNOWN_TOKEN
    default_http_status = 404


class ServerError(OcpiError):
    """3000: generic server error."""

    default_status_code = OcpiStatus.SERVER_ERROR


class UnableToUseClientApiError(OcpiError):
    """3001: unable to use the client's API (e.g. during credentials registration)."""

    default_status_code = OcpiStatus.UNABLE_TO_USE_CLIENT_API


class UnsupportedVersionError(OcpiError):
    """3002: unsupported version."""

    default_status_code = OcpiStatus.UNSUPPORTED_VERSION


class NoMatchingEndpointsError(OcpiError):
    """3003: no matching endpoints or expected endpoints missing between parties."""

    default_status_code = OcpiStatus.NO_MATCHING_ENDPOINTS


class HubError(OcpiError):
    """4000: generic hub error."""

    default_status_code = OcpiStatus.HUB_ERROR


class UnknownReceiverError(HubError):
    """4001: unknown receiver (the OCPI-to address is unknown)."""

    default_status_code = OcpiStatus.UNKNOWN_RECEIVER


class HubTimeoutError(HubError):
    """4002: timeout on a forwarded request."""

    default_status_code = OcpiStatus.HUB_TIMEOUT


class HubConnectionProblemError(HubError):
    """4003: connection problem (the receiving party is not connected)."""

    default_status_code = OcpiStatus.HUB_CONNECTION_PROBLEM


_ERROR_BY_STATUS: dict[int, type[OcpiError]] = {
    OcpiStatus.CLIENT_ERROR: GenericClientError,
    OcpiStatus.INVALID_PARAMETERS: InvalidParametersError,
    OcpiStatus.NOT_ENOUGH_INFORMATION: NotEnoughInformationError,
    OcpiStatus.UNKNOWN_LOCATION: UnknownLocationError,
    OcpiStatus.UNKNOWN_TOKEN: UnknownTokenError,
    OcpiStatus.SERVER_ERROR: ServerError,
    OcpiStatus.UNABLE_TO_USE_CLIENT_API: UnableToUseClientApiError,
    OcpiStatus.UNSUPPORTED_VERSION: UnsupportedVersionError,
    OcpiStatus.NO_MATCHING_ENDPOINTS: NoMatchingEndpointsError,
    OcpiStatus.HUB_ERROR: HubError,
    OcpiStatus.UNKNOWN_RECEIVER: UnknownReceiverError,
    OcpiStatus.HUB_TIMEOUT: HubTimeoutError,
    OcpiStatus.HUB_CONNECTION_PROBLEM: HubConnectionProblemError,
}


def error_for_status(
    status_code: int, message: str, *, http_status: int = 200, data: Any = None
) -> OcpiError:
    """The :class:`OcpiError` subclass for a status code (a hub relaying a partner's
    error uses this to answer with the same code)."""
    cls = _ERROR_BY_STATUS.get(status_code, OcpiError)
    return cls(message, status_code=status_code, http_status=http_status, data=data)


def format_validation_error(
    error: ValidationError, *, prefix: str = "", max_errors: int = 5
) -> str:
    """A ``status_message`` naming each invalid field by its path, e.g.
    ``evses[0].status: Input should be 'AVAILABLE', 'BLOCKED', ...``; ``prefix`` is put
    before every path (``"body"``, ``"data[3]"``). At most ``max_errors`` are listed."""
    parts: list[str] = []
    errors = error.errors(include_url=False, include_input=False)
    for item in errors[:max_errors]:
        path = field_path(item["loc"], prefix=prefix) or prefix or "body"
        message = str(item["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        parts.append(f"{path}: {message}")
    if len(errors) > max_errors:
        parts.append(f"and {len(errors) - max_errors} more")
    return "; ".join(parts)


def field_path(loc: Iterable[int | str], *, prefix: str = "") -> str:
    """``("evses", 0, "status")`` as ``evses[0].status``. ``prefix`` may end with a dot
    or not (``"connectors[0]."`` and ``"connectors[0]"`` give the same paths)."""
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text = text.removesuffix(".") + f"[{part}]"
        else:
            text += f".{part}" if text and not text.endswith(".") else str(part)
    return text.removesuffix(".")


# ---------------------------------------------------------------------- envelope


T = TypeVar("T")


class OcpiResponse(BaseModel, Generic[T]):
    """The OCPI response format (transport_and_format, Response format), for reading an
    envelope strictly and typed: ``OcpiResponse[Location].model_validate(json_loads(text))``
    or ``OcpiResponse[list[Token]]``. ``timestamp`` is required as the spec says (the
    client, :mod:`ocpi.client`, is lenient and does not use this model)."""

    model_config = ConfigDict(extra="ignore")

    data: T | None = None
    status_code: StrictInt
    status_message: str | None = None
    timestamp: Annotated[
        datetime,
        PlainValidator(parse_datetime, json_schema_input_type=str),
        PlainSerializer(format_datetime, return_type=str, when_used="json"),
    ]

    @property
    def ok(self) -> bool:
        return is_success(self.status_code)


def envelope(
    data: Any = None,
    *,
    status_code: int = OcpiStatus.SUCCESS,
    status_message: str | None = None,
    timestamp: datetime | None = None,
) -> dict[str, Any]:
    """The OCPI response format as a dict ready for :func:`json_dumps`.

    ``data`` is left out when None (transport_and_format advises leaving it unset where
    the spec names no data); ``status_message`` likewise.
    """
    body: dict[str, Any] = {}
    if data is not None:
        body["data"] = data
    body["status_code"] = int(status_code)
    if status_message is not None:
        body["status_message"] = status_message
    body["timestamp"] = format_datetime(timestamp or datetime.now(UTC))
    return body


def envelope_json(
    data: Any = None,
    *,
    status_code: int = OcpiStatus.SUCCESS,
    status_message: str | None = None,
    timestamp: datetime | None = None,
) -> str:
    """``json_dumps(envelope(...))`` with the same arguments, without building the
    envelope's dict: the text of the answer servers send."""
    out: list[str] = ["{"]
    if type(data) is list and not [item for item in data if type(item) is not RawJson]:
        # A page kept serialized (RawJson items): its texts as they are, as _write puts them.
        out.append('"data":[')
        out.append(",".join([item.text for item in data]))
        out.append("],")
    elif data is not None:
        out.append('"data":')
        _write(data, out)
        out.append(",")
    out.append(f'"status_code":{int(status_code)}')
    if status_message is not None:
        out.append(',"status_message":')
        out.append(_encode_str(status_message))
    out.append(',"timestamp":')
    out.append(_encode_str(format_datetime(timestamp or datetime.now(UTC))))
    out.append("}")
    return "".join(out)


# ------------------------------------------------------------ Authorization header


def encode_authorization(token: str, *, base64_encode: bool = True) -> str:
    """The ``Authorization`` header value for a credentials token: ``Token <base64>``
    (OCPI 2.2.1), or ``Token <token>`` for peers that do not encode (2.1.1 era)."""
    if base64_encode:
        return "Token " + base64.b64encode(token.encode("utf-8")).decode("ascii")
    return "Token " + token


def parse_authorization(header: str | None) -> tuple[str, ...]:
    """The credentials tokens an ``Authorization`` header may carry, best guess first.

    ``Token <x>`` (scheme case-insensitive): when ``x`` is valid Base64 of printable
    ASCII, the decoded token comes first (OCPI 2.2.1; a trailing newline, as in the
    spec's own example, is dropped), then ``x`` itself (peers that send the token
    unencoded, as many 2.1.1 and 2.2 implementations do). Empty when the header is
    missing or not a ``Token`` header. The server tries each against its known tokens.
    """
    if not header:
        return ()
    scheme, _, rest = header.strip().partition(" ")
    raw = rest.strip()
    if scheme.lower() != "token" or not raw:
        return ()
    candidates: list[str] = []
    decoded = _decode_base64_token(raw)
    if decoded is not None and decoded != raw:
        candidates.append(decoded)
    candidates.append(raw)
    return tuple(candidates)


def _decode_base64_token(raw: str) -> str | None:
    try:
        octets = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        text = octets.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if not text or not _is_visible_ascii(text):
        return None
    return text


def _is_visible_ascii(text: str) -> bool:
    """Every character in ``\\x21``-``\\x7e`` (printable ASCII but the space)."""
    return text.isascii() and text.isprintable() and " " not in text


# ------------------------------------------------------------------------ URLs

# RFC 3986 3.3: a path segment may hold sub-delims, ":" and "@" unencoded.
_SEGMENT_SAFE = "!$&'()*+,;=:@"


def join_url(base: str, *segments: str) -> str:
    """``base`` (a partner's endpoint URL, used exactly as it was given) with each of
    ``segments`` appended after exactly one ``/``: ``join_url("https://x/cdrs/")`` is
    ``https://x/cdrs/`` unchanged, ``join_url("https://x/locations", "NL", "ABC", "L1")``
    and ``join_url("https://x/locations/", "NL", "ABC", "L1")`` are both
    ``https://x/locations/NL/ABC/L1``. Each segment is percent-encoded where it holds
    a character a path segment cannot (``/``, ``?``, ``#``, ``%``, space, non-ASCII), and
    a segment that is ``.`` or ``..`` is encoded so that it never becomes a dot segment;
    an empty segment is a ValueError. A query or fragment of ``base`` is kept."""
    if not segments:
        return base
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    for segment in segments:
        if not segment:
            raise ValueError("an empty path segment cannot be appended to a URL")
        encoded = quote(segment, safe=_SEGMENT_SAFE)
        if encoded in (".", ".."):
            encoded = encoded.replace(".", "%2E")
        path += "/" + encoded
    return urlunsplit(parts._replace(path=path))


# ------------------------------------------------------------ ids and routing


# The version (4) and variant (RFC 4122) bits of a UUID4, as uuid.UUID(version=4) sets them.
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def new_request_id() -> str:
    """A fresh UUID4 for X-Request-ID / X-Correlation-ID: ``str(uuid.uuid4())``, written
    without the UUID object (16 bytes from ``os.urandom``, as uuid4 takes them)."""
    return _uuid4_text(os.urandom(16))


def _uuid4_text(random16: bytes) -> str:
    n = (int.from_bytes(random16, "big") & _UUID4_CLEAR) | _UUID4_SET
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# The hex digit of a UUID's variant nibble (8-b: RFC 4122) from a random one, as
# _UUID4_CLEAR and _UUID4_SET set its two high bits.
_VARIANT_DIGIT: Final = {f"{d:x}": f"{8 | (d & 3):x}" for d in range(16)}


def _uuid4_hex(h: str) -> str:
    """:func:`_uuid4_text` of the 16 bytes whose hex is ``h`` (32 digits)."""
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT_DIGIT[h[16]]}{h[17:20]}-{h[20:32]}"


class RequestIds:
    """A source of fresh UUID4s like :func:`new_request_id` for a server's hot path:
    the random bytes are read from ``os.urandom`` 4 KiB at a time (256 ids per system
    call) rather than 16 bytes per id; a forked child reads its own."""

    __slots__ = ("_at", "_pid", "_pool")

    _POOL = 4096

    def __init__(self) -> None:
        self._pool = ""  # the random bytes in hex
        self._at = 0
        self._pid = 0

    def __call__(self) -> str:
        at = self._at
        if at >= len(self._pool) or self._pid != os.getpid():
            self._pool, self._pid, at = os.urandom(self._POOL).hex(), os.getpid(), 0
        self._at = at + 32
        return _uuid4_hex(self._pool[at : at + 32])


@dataclass(frozen=True, slots=True)
class PartyId:
    """A party as OCPI addresses it: ISO 3166 alpha-2 country code and 3-character id.

    Both are CiStrings; equality here is case-insensitive (values are upper-cased).
    """

    country_code: str
    party_id: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "country_code", self.country_code.upper())
        object.__setattr__(self, "party_id", self.party_id.upper())

    def __str__(self) -> str:
        return f"{self.country_code}*{self.party_id}"

    @classmethod
    def parse(cls, text: str) -> PartyId:
        """The party :meth:`__str__` wrote (``NL*ABC``); ValueError for anything else."""
        country_code, star, party_id = text.partition("*")
        if not star or len(country_code) != 2 or len(party_id) != 3:
            raise ValueError(f"{text!r} is not a party: country code * party id, e.g. NL*ABC")
        return cls(country_code, party_id)


def routing_headers(
    *, from_party: PartyId | None = None, to_party: PartyId | None = None
) -> dict[str, str]:
    """The OCPI-from-* / OCPI-to-* message routing headers for the given parties."""
    headers: dict[str, str] = {}
    if from_party is not None:
        headers[FROM_COUNTRY_CODE_HEADER] = from_party.country_code
        headers[FROM_PARTY_ID_HEADER] = from_party.party_id
    if to_party is not None:
        headers[TO_COUNTRY_CODE_HEADER] = to_party.country_code
        headers[TO_PARTY_ID_HEADER] = to_party.party_id
    return headers


def parse_routing_headers(
    headers: Mapping[str, str],
) -> tuple[PartyId | None, PartyId | None]:
    """``(from_party, to_party)`` from a case-insensitive header mapping. A pair is None
    unless both its headers are present with the right lengths (2 and 3 characters);
    raises :class:`InvalidParametersError` when one is present but malformed."""
    return (
        _party_from(headers, FROM_COUNTRY_CODE_HEADER, FROM_PARTY_ID_HEADER),
        _party_from(headers, TO_COUNTRY_CODE_HEADER, TO_PARTY_ID_HEADER),
    )


def _party_from(headers: Mapping[str, str], cc_name: str, pid_name: str) -> PartyId | None:
    country_code = headers.get(cc_name)
    party_id = headers.get(pid_name)
    if country_code is None and party_id is None:
        return None
    if country_code is None or party_id is None:
        missing = cc_name if country_code is None else pid_name
        raise InvalidParametersError(f"{missing}: header missing (both routing headers needed)")
    if len(country_code) != 2 or not _is_printable_ascii(country_code):
        raise InvalidParametersError(f"{cc_name}: should be 2 printable ASCII characters")
    if len(party_id) != 3 or not _is_printable_ascii(party_id):
        raise InvalidParametersError(f"{pid_name}: should be 3 printable ASCII characters")
    return PartyId(country_code, party_id)


def _is_printable_ascii(text: str) -> bool:
    """Every character in ``\\x20``-``\\x7e`` (ASCII's printable ones are exactly those)."""
    return text.isascii() and text.isprintable()


# -------------------------------------------------------------------- pagination


@dataclass(frozen=True, slots=True)
class PageRequest:
    """The pagination parameters of a GET list request (transport_and_format,
    Paginated Request). ``limit`` is already capped by the server; ``date_from`` is
    inclusive and ``date_to`` exclusive on ``last_updated``."""

    offset: int = 0
    limit: int = 100
    date_from: datetime | None = None
    date_to: datetime | None = None

    def matches(self, last_updated: datetime) -> bool:
        """Whether an object updated at ``last_updated`` is inside the date window."""
        if self.date_from is not None and last_updated < self.date_from:
            return False
        return self.date_to is None or last_updated < self.date_to


def parse_page_request(
    query: Mapping[str, str],
    *,
    max_limit: int,
    default_limit: int | None = None,
    require_date_from: bool = False,
) -> PageRequest:
    """Read ``offset``, ``limit``, ``date_from`` and ``date_to`` from a query.

    ``limit`` defaults to ``default_limit`` (else ``max_limit``) and is capped at
    ``max_limit``. Raises :class:`InvalidParametersError` naming the parameter when one
    is not a non-negative integer (``limit``: positive) or not a DateTime, and when
    ``date_from`` is missing but required (Sessions GET list).
    """
    if max_limit < 1:
        raise ValueError("max_limit must be at least 1")
    offset = _query_int(query, "offset", minimum=0, default=0)
    limit = _query_int(query, "limit", minimum=1, default=default_limit or max_limit)
    date_from = _query_datetime(query, "date_from")
    if date_from is None and require_date_from:
        raise InvalidParametersError("date_from: query parameter required")
    return PageRequest(
        offset=offset,
        limit=min(limit, max_limit),
        date_from=date_from,
        date_to=_query_datetime(query, "date_to"),
    )


_DIGITS = re.compile(r"[0-9]{1,18}")


def _query_int(query: Mapping[str, str], name: str, *, minimum: int, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw.strip()):
        kind = "a positive" if minimum >= 1 else "a non-negative"
        raise InvalidParametersError(f"{name}: should be {kind} integer, got {raw[:40]!r}")
    value = int(raw)
    if value < minimum:
        raise InvalidParametersError(f"{name}: should be at least {minimum}, got {value}")
    return value


def _query_datetime(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_datetime(raw.strip())
    except ValueError as exc:
        raise InvalidParametersError(f"{name}: {exc}, got {raw[:40]!r}") from None


def pagination_headers(url: URL, page: PageRequest, *, total: int, count: int) -> dict[str, str]:
    """X-Total-Count, X-Limit and (when this is not the last page) ``Link: <...>;
    rel="next"`` for a page of ``count`` objects out of ``total``.

    The next URL is ``url`` with every query parameter kept (filters included) and
    ``offset``/``limit`` replaced; the next offset is ``page.offset + count``.
    """
    headers = {TOTAL_COUNT_HEADER: str(total), X_LIMIT_HEADER: str(page.limit)}
    next_offset = page.offset + count
    if count > 0 and next_offset < total:
        next_url = next_page_url(url, str(next_offset), str(page.limit))
        headers[LINK_HEADER] = f'<{next_url}>; rel="next"'
    return headers


_PAGE_KEYS: Final = ("offset", "limit")
_PAGE_KEY_SET: Final = frozenset(_PAGE_KEYS)


def next_page_url(url: URL, offset: str, limit: str) -> str:
    """``str(url.update_query(offset=offset, limit=limit))`` (``offset`` and ``limit``
    digits); written directly when the query holds no other parameter, each at most
    once (the usual page request), without yarl's parsing and encoding of the query."""
    if not url.raw_fragment:
        base, _, query = str(url).partition("?")
        keys = [part.partition("=")[0] for part in query.split("&")] if query else []
        found = set(keys)
        if len(found) == len(keys) and found <= _PAGE_KEY_SET:
            values = {"offset": offset, "limit": limit}
            keys += [key for key in _PAGE_KEYS if key not in keys]
            return base + "?" + "&".join([f"{key}={values[key]}" for key in keys])
    return str(url.update_query(offset=offset, limit=limit))


_LINK_RE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")


def next_link(header_values: Iterable[str]) -> str | None:
    """The target of the ``rel="next"`` link among ``Link`` header values (RFC 8288;
    several links may share one header, and ``rel`` may list several relations)."""
    for value in header_values:
        for match in _LINK_RE.finditer(value):
            target, params = match.group(1), match.group(2)
            for param in params.split(";"):
                key, _, val = param.strip().partition("=")
                if key.strip().lower() == "rel":
                    rels = val.strip().strip('"').lower().split()
                    if "next" in rels:
                        return target.strip()
    return None


def redirect_target(
    target: URL, http_status: int, headers: Mapping[str, str], hops: int, max_hops: int
) -> URL | None:
    """Where a 307/308 answer sends a request again (same method and body, RFC 9110
    15.4.8/15.4.9), or None: not such a redirect, no usable ``Location``, another
    scheme, host or port (the credentials token must not leave the partner's origin),
    or already ``max_hops`` hops (the 3xx is then the answer)."""
    if http_status not in (307, 308) or hops >= max_hops:
        return None
    location = headers.get("Location")
    if not location:
        return None
    try:
        moved = target.join(URL(location))
    except ValueError:
        return None
    if moved.origin() != target.origin() or moved == target:
        return None
    return moved
