"""What the hub changes in a routed message when sender and receiver registered in
different OCPI versions (pure; the host does the I/O).

The hub reads the sender's object with the sender's version's model, converts it to the
internal form (OCPI 2.2.1, :mod:`ocpi.v221`) with the conversions of :mod:`ocpi.versions`
(:mod:`ocpi.versions.objects` picks each object's), and writes it in the receiver's
version; an answer's ``data`` goes the other way. Messages between platforms of the same
version are not touched (the host passes their bytes on).

* :func:`request_kind` / :func:`answer_kind`: which object a request body or an answer's
  ``data`` is, from the module, the interface of the hub that was hit, the method and the
  path below the endpoint (the internal model's name, e.g. ``"EVSEPatch"``).
* :func:`read`: a body of a version as the internal object. A body that is not a valid
  object of its version, or that 2.2.1 cannot hold, is the sender's status 2001
  (:class:`~ocpi.transport.InvalidParametersError`) naming the field in its version's
  terms.
* :func:`write`: an internal object in a version; raises
  :class:`~ocpi.versions.NotExpressible` naming the field when the version cannot say it
  (the host answers the sender with a clear error: the message is never sent malformed).
  A 2.1.1 Session or CDR embeds its Location (:func:`embedded_location` says which one
  the host must fetch from the CPO).

What 2.1.1 does not carry is taken from :class:`Origin`: the owner of an object (a 2.1.1
Token names none: the party of the URL, or the 2.1.1 platform's single party), the uid and
type of a real-time authorization (a 2.1.1 AuthorizationInfo has no Token: the hub makes
one of the eMSP's party, the uid as contract id, whitelist NEVER, as the gateway does for
its own charges), the time a 2.1.1 PATCH (which needs no ``last_updated``) is read, and the
time zone of a 2.1.1 Location that names none (the one the operator set for the sending
platform; without one, 2001 naming ``time_zone``, as 2.2.1 requires it).

Lossy mappings are those of :mod:`ocpi.versions.v211`, :mod:`ocpi.versions.v230` and
:mod:`ocpi.versions.patches`; the hub adds :data:`HUB_LOSSY`. Never imports ``gateway``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

import ocpi.v211 as v211
import ocpi.v221 as v221
from ocpi.server import validate_input
from ocpi.transport import InvalidParametersError, PartyId
from ocpi.v221.enums import InterfaceRole
from ocpi.versions import NotExpressible
from ocpi.versions.objects import embedded_location as embedded_in
from ocpi.versions.objects import from_version, model_of, to_version

__all__ = [
    "HUB_LOSSY",
    "V211",
    "V221",
    "V230",
    "Origin",
    "answer_kind",
    "embedded_location",
    "read",
    "request_kind",
    "write",
]

V211 = "2.1.1"
V221 = "2.2.1"
V230 = "2.3.0"

HUB_LOSSY: tuple[tuple[str, str], ...] = (
    ("2.1.1 Token PATCH to 2.2.1/2.3.0", "no type in the 2.1.1 PATCH: the receiver takes RFID"),
    (
        "2.1.1 AuthorizationInfo to 2.2.1/2.3.0",
        "the Token is made: the eMSP's party, the uid as contract_id, whitelist NEVER",
    ),
    ("2.1.1 PATCH to 2.2.1/2.3.0", "last_updated, when absent, is the time the hub read it"),
    ("2.1.1 Session/CDR", "embeds the Location the hub fetches from the CPO at that moment"),
    (
        "2.1.1 Session/CDR to 2.2.1/2.3.0",
        "cdr_token: the eMSP's party, the auth_id as contract_id, the token's uid and type"
        " as the hub learnt them (else the auth_id, OTHER)",
    ),
    (
        "2.1.1 Session PATCH to 2.2.1/2.3.0",
        "charging_periods and location not expressible (2.2.1 adds periods; PUT the session)",
    ),
)
"""``(message, what the hub does)``: the hub's own lossy mappings, beside the conversions'."""

# -- which object -------------------------------------------------------------------

_PUT_OBJECTS: dict[tuple[str, int], str] = {
    ("locations", 3): "Location",
    ("locations", 4): "EVSE",
    ("locations", 5): "Connector",
    ("tariffs", 3): "Tariff",
    ("sessions", 3): "Session",
    ("tokens", 3): "Token",
}
_COMMANDS: dict[str, str] = {
    "START_SESSION": "StartSession",
    "STOP_SESSION": "StopSession",
    "RESERVE_NOW": "ReserveNow",
    "CANCEL_RESERVATION": "CancelReservation",
    "UNLOCK_CONNECTOR": "UnlockConnector",
}
_LISTS: dict[str, str] = {
    "locations": "Location",
    "tariffs": "Tariff",
    "sessions": "Session",
    "cdrs": "CDR",
    "tokens": "Token",
}
_LOCATION_PARTS = ("Location", "EVSE", "Connector")


def request_kind(
    module: str, interface: InterfaceRole, method: str, path: tuple[str, ...]
) -> str | None:
    """The object a request body is (None: no body of a known object, e.g. a DELETE)."""
    method = method.upper()
    if interface is InterfaceRole.RECEIVER:
        if method == "PUT":
            if module == "chargingprofiles" and len(path) == 1:
                return "SetChargingProfile"
            return _PUT_OBJECTS.get((module, len(path)))
        if method == "PATCH":
            kind = _PUT_OBJECTS.get((module, len(path)))
            return None if kind is None or module == "tariffs" else kind + "Patch"
        if method == "POST" and module == "cdrs" and not path:
            return "CDR"
        if method == "POST" and module == "commands" and len(path) == 1:
            return _COMMANDS.get(path[0])
        return None
    if module == "tokens" and method == "POST" and len(path) == 2 and path[1] == "authorize":
        return "LocationReferences"
    if module == "chargingprofiles" and method == "PUT" and len(path) == 1:
        return "ActiveChargingProfile"
    return None


def answer_kind(
    module: str, interface: InterfaceRole, method: str, path: tuple[str, ...]
) -> tuple[str, bool] | None:
    """``(object, is a list)`` of an answer's ``data`` (None: nothing to convert)."""
    method = method.upper()
    if method in ("GET", "HEAD"):
        if interface is InterfaceRole.SENDER:
            if not path:
                kind = _LISTS.get(module)
                return None if kind is None else (kind, True)
            if module == "locations" and len(path) <= 3:
                return _LOCATION_PARTS[len(path) - 1], False
            if module == "chargingprofiles":
                return None
            return None
        found = _PUT_OBJECTS.get((module, len(path)))
        return None if found is None else (found, False)
    if module == "tokens" and interface is InterfaceRole.SENDER and method == "POST":
        return ("AuthorizationInfo", False) if len(path) == 2 else None
    if module == "commands" and interface is InterfaceRole.RECEIVER and method == "POST":
        return "CommandResponse", False
    if module == "chargingprofiles" and interface is InterfaceRole.RECEIVER:
        return "ChargingProfileResponse", False
    return None


# -- reading ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Origin:
    """What a 2.1.1 object does not say (module doc): ``owner`` the party the object
    belongs to, ``now`` when it is read, ``uid``/``token_type``/``issuer`` of a real-time
    authorization."""

    owner: PartyId | None
    now: datetime
    uid: str = ""
    token_type: str = "RFID"
    issuer: str = ""
    cdr_token: v221.CdrToken | None = None
    """The token of a 2.1.1 CPO's Session or CDR (2.1.1 names only its ``auth_id``)."""
    time_zone: str | None = None
    """The time zone of a 2.1.1 Location that names none (2.1.1 makes it optional, 2.2.1
    requires it): the one the operator set for the sending platform; None, 2001 naming
    ``time_zone``."""


def _model(version: str, kind: str) -> type[BaseModel]:
    try:
        return model_of(kind, version)
    except NotExpressible:
        raise InvalidParametersError(f"{kind}: there is no such object in OCPI {version}") from None


def _owner(origin: Origin, kind: str) -> PartyId:
    if origin.owner is None:
        raise InvalidParametersError(f"{kind}: its owner is not known (OCPI 2.1.1 names none)")
    return origin.owner


def read(kind: str, data: Any, version: str, origin: Origin) -> BaseModel:
    """``data`` (a ``kind`` of ``version``) as the internal object; 2001 when it is not
    a valid one or 2.2.1 cannot hold it (module doc)."""
    obj = validate_input(_model(version, kind), data)
    if version == V221:
        return obj
    owner = origin.owner
    token = _made_token(obj, origin) if isinstance(obj, v211.AuthorizationInfo) else None
    try:
        return from_version(
            obj,
            version,
            party=None if owner is None else (owner.country_code, owner.party_id),
            now=origin.now,
            cdr_token=origin.cdr_token,
            token=token,
            command_result=kind == "CommandResult",
            default_time_zone=origin.time_zone,
        )
    except NotExpressible as exc:
        raise InvalidParametersError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise InvalidParametersError(f"{kind}: {exc}") from None


def _made_token(info: v211.AuthorizationInfo, origin: Origin) -> v221.Token:
    owner = _owner(origin, "AuthorizationInfo")
    return v221.Token.model_validate(
        {
            "country_code": owner.country_code,
            "party_id": owner.party_id,
            "uid": origin.uid,
            "type": origin.token_type or "RFID",
            "contract_id": origin.uid,
            "issuer": (origin.issuer or str(owner))[:64],
            "valid": info.allowed.value == "ALLOWED",
            "whitelist": "NEVER",
            "last_updated": origin.now,
        }
    )


# -- writing ------------------------------------------------------------------------


def embedded_location(kind: str, obj: BaseModel, version: str) -> str | None:
    """The id of the Location that ``obj`` embeds in ``version`` (2.1.1 Sessions and
    CDRs), which the host fetches from the CPO for :func:`write`; None otherwise."""
    embedded = embedded_in(obj, version)
    return None if embedded is None else embedded.location_id


def write(obj: BaseModel, version: str, *, location: v221.Location | None = None) -> BaseModel:
    """The internal ``obj`` as ``version``'s object; NotExpressible naming the field.
    ``location``: the Location a 2.1.1 Session or CDR embeds (:func:`embedded_location`)."""
    return to_version(obj, version, location=location)
