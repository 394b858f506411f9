"""What the hub changes in a routed message when sender and receiver registered in
different OCPI versions (pure; the host does the I/O).

The hub reads the sender's object with the sender's version's model, converts it to the
internal form (OCPI 2.2.1, :mod:`ocpi.v221`) with the conversions of :mod:`ocpi.versions`,
and writes it in the receiver's version; an answer's ``data`` goes the other way. Messages
between platforms of the same version are not touched (the host passes their bytes on).

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
its own charges), and the time a 2.1.1 PATCH (which needs no ``last_updated``) is read.

Lossy mappings are those of :mod:`ocpi.versions.v211`, :mod:`ocpi.versions.v230` and
:mod:`ocpi.versions.patches`; the hub adds :data:`HUB_LOSSY`. Never imports ``gateway``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

import ocpi.v211 as v211
import ocpi.v221 as v221
import ocpi.v230 as v230
from ocpi.server import validate_input
from ocpi.transport import InvalidParametersError, PartyId
from ocpi.v221.enums import InterfaceRole
from ocpi.versions import NotExpressible
from ocpi.versions import v211 as conv211
from ocpi.versions import v230 as conv230
from ocpi.versions.patches import patch_to_v211

__all__ = [
    "HUB_LOSSY",
    "V211",
    "V221",
    "V230",
    "Origin",
    "answer_kind",
    "embedded_location",
    "patch_from_v211",
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


def _model(version: str, kind: str) -> type[BaseModel]:
    module: Any = v211 if version == V211 else v230 if version == V230 else v221
    if version == V211 and kind == "CommandResult":
        return v211.CommandResponse  # 2.1.1 POSTs a CommandResponse to the response_url
    found = getattr(module, kind, None)
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise InvalidParametersError(f"{kind}: there is no such object in OCPI {version}")
    return found


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
    try:
        if version == V230:
            return conv230.from_v230(obj)
        return _from_v211(kind, obj, origin)
    except NotExpressible as exc:
        raise InvalidParametersError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise InvalidParametersError(f"{kind}: {exc}") from None


_COMMANDS_211 = (v211.StartSession, v211.StopSession, v211.ReserveNow, v211.UnlockConnector)


def _from_v211(kind: str, obj: Any, origin: Origin) -> BaseModel:
    if isinstance(obj, v211.Token):
        owner = _owner(origin, kind)
        return conv211.token_from_v211(
            obj, country_code=owner.country_code, party_id=owner.party_id
        )
    if isinstance(obj, v211.TokenPatch):
        data = obj.to_wire()
        if "auth_id" in data:
            data["contract_id"] = data.pop("auth_id")
        data.setdefault("last_updated", origin.now)  # 2.2 made it required
        return validate_input(v221.TokenPatch, data)
    if isinstance(
        obj, v211.StartSession | v211.StopSession | v211.ReserveNow | v211.UnlockConnector
    ):
        owner = _owner(origin, kind)
        return conv211.command_from_v211(
            obj, country_code=owner.country_code, party_id=owner.party_id
        )
    if isinstance(obj, v211.LocationReferences):
        return conv211.location_references_from_v211(obj)
    if isinstance(obj, v211.AuthorizationInfo):
        return conv211.authorization_info_from_v211(obj, token=_made_token(obj, origin))
    if isinstance(obj, v211.CommandResponse):
        if kind == "CommandResult":
            return conv211.command_result_from_v211(obj)
        return conv211.command_response_from_v211(obj, timeout=30)
    if isinstance(obj, v211.Location):
        owner = _owner(origin, kind)
        return conv211.location_from_v211(
            obj, country_code=owner.country_code, party_id=owner.party_id
        )
    if isinstance(obj, v211.EVSE):
        return conv211.evse_from_v211(obj)
    if isinstance(obj, v211.Connector):
        return conv211.connector_from_v211(obj)
    if isinstance(obj, v211.Tariff):
        owner = _owner(origin, kind)
        return conv211.tariff_from_v211(
            obj, country_code=owner.country_code, party_id=owner.party_id
        )
    # Sessions, CDRs and location PATCHes come from 2.1.1 CPO platforms (the operator
    # says a 2.1.1 platform is a CPO: its credentials do not).
    if isinstance(obj, v211.Session | v211.CDR):
        owner = _owner(origin, kind)
        if origin.cdr_token is None:
            raise InvalidParametersError(f"auth_id: {kind}: the token's eMSP is not known")
        if isinstance(obj, v211.Session):
            return conv211.session_from_v211(
                obj,
                country_code=owner.country_code,
                party_id=owner.party_id,
                cdr_token=origin.cdr_token,
            )
        return conv211.cdr_from_v211(
            obj,
            country_code=owner.country_code,
            party_id=owner.party_id,
            cdr_token=origin.cdr_token,
        )
    if isinstance(obj, v211.OcpiPatch):
        return patch_from_v211(obj, origin)
    raise InvalidParametersError(f"{kind}: not taken from OCPI 2.1.1 platforms")


def _connector_patch_up(data: dict[str, Any]) -> dict[str, Any]:
    for old, new in (("voltage", "max_voltage"), ("amperage", "max_amperage")):
        if old in data:
            data[new] = data.pop(old)
    if "tariff_id" in data:
        tariff = data.pop("tariff_id")
        data["tariff_ids"] = [] if tariff is None else [tariff]
    return data


def patch_from_v211(patch: v211.OcpiPatch, origin: Origin) -> v221.OcpiPatch:
    """A 2.1.1 PATCH body of a CPO (LocationPatch, EVSEPatch, ConnectorPatch,
    SessionPatch) in the internal form: renamed fields renamed, embedded objects
    converted, ``last_updated`` (which 2.1.1 does not require) the time it is read when
    absent. A SessionPatch's ``charging_periods`` (a 2.1.1 PATCH replaces them, a 2.2.1
    PATCH adds them) or ``location`` (2.2.1 names the location, EVSE and connector) are
    2001: the CPO sends the whole session."""
    data = patch.to_wire()
    data.setdefault("last_updated", origin.now)
    if isinstance(patch, v211.ConnectorPatch):
        return validate_input(v221.ConnectorPatch, _connector_patch_up(data))
    if isinstance(patch, v211.EVSEPatch):
        if patch.connectors is not None:
            data["connectors"] = [
                conv211.connector_from_v211(c).to_wire() for c in patch.connectors
            ]
        return validate_input(v221.EVSEPatch, data)
    if isinstance(patch, v211.LocationPatch):
        if "type" in data:
            parking = conv211._PARKING_UP.get(data.pop("type"))
            if parking is not None:
                data["parking_type"] = parking
        if data.get("postal_code") == "":
            data["postal_code"] = None
        if data.get("energy_mix") is not None:
            data["energy_mix"] = conv211._energy_mix_up(data["energy_mix"])
        hours = data.get("opening_times")
        if isinstance(hours, dict) and "twentyfourseven" not in hours:
            hours["twentyfourseven"] = False
        if patch.evses is not None:
            data["evses"] = [conv211.evse_from_v211(e).to_wire() for e in patch.evses]
        return validate_input(v221.LocationPatch, data)
    if isinstance(patch, v211.SessionPatch):
        for name in ("charging_periods", "location"):
            if name in data:
                raise InvalidParametersError(
                    f"{name}: a 2.1.1 PATCH of it cannot be given in OCPI 2.2.1 (PUT the"
                    " whole session)"
                )
        for old, new in (("start_datetime", "start_date_time"), ("end_datetime", "end_date_time")):
            if old in data:
                data[new] = data.pop(old)
        if "auth_id" in data:
            data.pop("auth_id")
            if origin.cdr_token is not None:
                data["cdr_token"] = origin.cdr_token.to_wire()
        if data.get("total_cost") is not None:
            data["total_cost"] = {"excl_vat": data["total_cost"]}
        return validate_input(v221.SessionPatch, data)
    raise InvalidParametersError(f"{type(patch).__name__}: not taken from OCPI 2.1.1 platforms")


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
    if version != V211:
        return None
    if isinstance(obj, v221.Session):
        return obj.location_id
    if isinstance(obj, v221.CDR):
        return obj.cdr_location.id
    return None


_DOWN_211: dict[type[BaseModel], Callable[[Any], BaseModel]] = {
    v221.Location: conv211.location_to_v211,
    v221.EVSE: conv211.evse_to_v211,
    v221.Connector: conv211.connector_to_v211,
    v221.Tariff: conv211.tariff_to_v211,
    v221.Token: conv211.token_to_v211,
    v221.LocationReferences: conv211.location_references_to_v211,
    v221.AuthorizationInfo: conv211.authorization_info_to_v211,
    v221.CommandResponse: conv211.command_response_to_v211,
    v221.CommandResult: conv211.command_result_to_v211,
    v221.StartSession: conv211.command_to_v211,
    v221.StopSession: conv211.command_to_v211,
    v221.ReserveNow: conv211.command_to_v211,
    v221.UnlockConnector: conv211.command_to_v211,
    v221.CancelReservation: conv211.command_to_v211,
}


def write(obj: BaseModel, version: str, *, location: v221.Location | None = None) -> BaseModel:
    """The internal ``obj`` as ``version``'s object; NotExpressible naming the field.
    ``location``: the Location a 2.1.1 Session or CDR embeds (:func:`embedded_location`)."""
    if version == V221:
        return obj
    if version == V230:
        try:
            return conv230.to_v230(obj)
        except TypeError:
            raise NotExpressible(type(obj).__name__, "no such object", version=V230) from None
    if version != V211:
        raise NotExpressible("version", "not a version the hub speaks", version=version)
    if isinstance(obj, v221.OcpiPatch):
        return patch_to_v211(obj)
    if isinstance(obj, v221.Session | v221.CDR):
        where = "location_id" if isinstance(obj, v221.Session) else "cdr_location.id"
        if location is None:
            raise NotExpressible(
                where, "the Location 2.1.1 embeds could not be read from the CPO", version=V211
            )
        if isinstance(obj, v221.Session):
            return conv211.session_to_v211(obj, location=location)
        return conv211.cdr_to_v211(obj, location=location)
    convert = _DOWN_211.get(type(obj))
    if convert is None:
        # The ChargingProfiles module, and anything else 2.1.1 lacks.
        raise NotExpressible(type(obj).__name__, "OCPI 2.1.1 has no such object", version=V211)
    return convert(obj)
