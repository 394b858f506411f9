"""What the processes of a cluster send each other, as JSON: pure functions.

A domain command routed to the process holding the charger travels as
``{"kind": <class name>, "args": {...}}``; its answer as a :class:`CommandResult`
(``{"status", "data", "request_id"}``) or as the domain error the owner's call raised
(``{"error": <name>, ...}``), raised again on the caller's side, so that a routed call
answers exactly as a local one. Round trips are property-tested
(``tests/cluster/test_wire.py``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from datetime import datetime
from decimal import Decimal
from typing import Any, get_args, get_origin, get_type_hints

from gateway.domain import commands as cmd
from gateway.domain.charging import CompositeSchedule, ReportedProfile
from gateway.domain.errors import (
    ChargerNotConnected,
    ChargerRejected,
    ChargerTimeout,
    CommandNotSupported,
    DomainError,
    Unavailable,
)


class WireError(ValueError):
    """A message this version cannot read (a bug, or a newer process in the cluster)."""


COMMAND_KINDS: dict[str, type[Any]] = {kind.__name__: kind for kind in get_args(cmd.Command)}


def encode_command(command: cmd.Command) -> dict[str, Any]:
    return {"kind": type(command).__name__, "args": _plain(command)}


def decode_command(data: Any) -> cmd.Command:
    if not isinstance(data, dict) or not isinstance(data.get("args"), dict):
        raise WireError("a command is an object with kind and args")
    name = data.get("kind")
    kind = COMMAND_KINDS.get(name) if isinstance(name, str) else None  # a list: unhashable
    if kind is None:
        raise WireError(f"unknown command kind {data.get('kind')!r}")
    value: cmd.Command = _build(kind, data["args"])
    return value


def encode_result(result: cmd.CommandResult) -> dict[str, Any]:
    out = {"status": str(result.status), "data": result.data, "request_id": result.request_id}
    if result.schedule is not None:
        out["schedule"] = _plain(result.schedule)
    if result.profiles:
        out["profiles"] = _plain(result.profiles)
    return out


def decode_result(data: Any) -> cmd.CommandResult:
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        raise WireError("a result is an object with status and data")
    try:
        status = cmd.CommandStatus(str(data.get("status")))
    except ValueError:
        raise WireError(f"unknown command status {data.get('status')!r}") from None
    request_id = data.get("request_id")
    if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, int)):
        raise WireError("request_id is an integer")
    schedule = data.get("schedule")
    if schedule is not None:
        if not isinstance(schedule, dict):
            raise WireError("schedule is an object")
        schedule = _build(CompositeSchedule, schedule)
    profiles = _convert(tuple[ReportedProfile, ...], data.get("profiles", []), "profiles")
    return cmd.CommandResult(
        status=status,
        data=data["data"],
        request_id=request_id,
        schedule=schedule,
        profiles=profiles,
    )


def encode_error(exc: BaseException) -> dict[str, Any]:
    """The error a routed call raised on the owner, for the caller to raise again."""
    if isinstance(exc, ChargerNotConnected):
        return {"error": "not_connected", "charger_id": exc.charger_id}
    if isinstance(exc, ChargerRejected):
        return {"error": "rejected", "code": exc.code, "description": exc.description}
    if isinstance(exc, ChargerTimeout):
        return {"error": "timeout", "message": str(exc)}
    if isinstance(exc, CommandNotSupported):
        return {"error": "not_supported", "message": str(exc)}
    if isinstance(exc, Unavailable):
        return {"error": "unavailable", "message": str(exc)}
    # A bug on the owner's side: the caller gets an error of its own kind, not a hang.
    return {"error": "failed", "message": f"{type(exc).__name__} in the process holding it"}


class RemoteFailure(DomainError):
    """The process holding the charger failed on the call (a bug there; see its log)."""


class RemoteUnavailable(Unavailable):
    """The process holding the charger could not reach its storage."""


def decode_error(data: dict[str, Any]) -> Exception:
    kind = data.get("error")
    message = str(data.get("message", ""))
    if kind == "not_connected":
        return ChargerNotConnected(str(data.get("charger_id", "")))
    if kind == "rejected":
        return ChargerRejected(str(data.get("code", "")), str(data.get("description", "")))
    if kind == "timeout":
        return ChargerTimeout(message)
    if kind == "not_supported":
        return CommandNotSupported(message)
    if kind == "unavailable":
        return RemoteUnavailable(message)
    return RemoteFailure(message or "the process holding the charger failed")


def dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


def plain_json(value: Any) -> Any:
    """``value`` with what JSON cannot carry as the admin API writes it: a datetime as
    RFC 3339 (``Z`` for UTC), a Decimal as its string, an enum as its value."""
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def loads(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # too deep: as invalid
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise WireError("a message is a JSON object")
    return value


# -- generic conversion of the command dataclasses ------------------------------------


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _build(kind: type[Any], args: dict[str, Any]) -> Any:
    hints = get_type_hints(kind)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(kind):
        if f.name in args:
            values[f.name] = _convert(hints[f.name], args[f.name], f.name)
    try:
        return kind(**values)
    except TypeError as exc:  # a required field missing
        raise WireError(f"{kind.__name__}: {exc}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where)
            except WireError:
                continue
        raise WireError(f"{where}: {value!r} fits none of {hint}")
    if origin is typing.Literal:
        if value not in get_args(hint):
            raise WireError(f"{where}: {value!r} is not one of {get_args(hint)}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise WireError(f"{where}: a list")
        item = get_args(hint)[0]
        return tuple(_convert(item, v, where) for v in value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise WireError(f"{where}: {value!r} is not a {hint.__name__}") from None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise WireError(f"{where}: an object")
        return _build(hint, value)
    if hint is Decimal:
        if not isinstance(value, str):
            raise WireError(f"{where}: a decimal as a string")
        try:
            number = Decimal(value)
        except ArithmeticError:
            raise WireError(f"{where}: {value!r} is not a decimal") from None
        if not number.is_finite():
            raise WireError(f"{where}: {value!r} is not a finite decimal")
        return number
    if hint is datetime:
        if not isinstance(value, str):
            raise WireError(f"{where}: a time as a string")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise WireError(f"{where}: {value!r} is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise WireError(f"{where}: {value!r} has no time zone")
        return moment
    if hint is bool:
        if not isinstance(value, bool):
            raise WireError(f"{where}: a boolean")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise WireError(f"{where}: an integer")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise WireError(f"{where}: a string")
        return value
    if hint is dict or get_origin(hint) is dict:
        if not isinstance(value, dict):
            raise WireError(f"{where}: an object")
        return value
    raise WireError(f"{where}: cannot read a {hint}")
