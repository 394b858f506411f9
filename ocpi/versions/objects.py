"""Which conversion an object takes between the internal form (OCPI 2.2.1) and a version.

The one place that maps the kind of an object to its conversion in
:mod:`ocpi.versions.v211`, :mod:`ocpi.versions.v230` and :mod:`ocpi.versions.patches`;
everything that speaks another version than 2.2.1 (pushes, modules served in 2.1.1 or
2.3.0, token pulls, the hub) converts through it.

* :func:`to_version`: an internal object written in a version. A 2.1.1 Session or CDR
  embeds its Location (with only the EVSE and connector used): :func:`embedded_location`
  says which one, the caller reads it and passes it as ``location``.
* :func:`from_version`: an object of a version read into the internal form; what 2.1.1
  does not carry is given as keywords (the owner's party, the token of a session...).
* :func:`model_of`: the model of a version that an object is read with.

What a version lacks raises :class:`~ocpi.versions.NotExpressible` naming the field: an
object the version does not have (the field: the object's name; a ChargingProfiles module
object in 2.1.1: ``chargingprofiles``), a version not spoken here (the field:
``version``), and whatever the conversion functions refuse.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple, cast

from pydantic import BaseModel

import ocpi.v211 as v211
import ocpi.v221 as v221
import ocpi.v230 as v230
from ocpi.versions import SUPPORTED_VERSIONS, NotExpressible
from ocpi.versions import v211 as conv211
from ocpi.versions import v230 as conv230
from ocpi.versions.patches import patch_from_v211, patch_to_v211

__all__ = [
    "COMMAND_TIMEOUT_V211",
    "EmbeddedLocation",
    "Party",
    "embedded_location",
    "from_version",
    "model_of",
    "to_version",
]

V211 = "2.1.1"
V221 = "2.2.1"
V230 = "2.3.0"

Party = tuple[str, str]
"""``(country_code, party_id)``."""

COMMAND_TIMEOUT_V211 = 30
"""The ``timeout`` (seconds) of a 2.1.1 CommandResponse read into 2.2.1, which requires
one (2.1.1 does not say)."""


def _not_spoken(version: str) -> NotExpressible:
    return NotExpressible("version", "not a version spoken here", version=version)


# ------------------------------------------------------------------ models


def model_of(kind: str, version: str) -> type[BaseModel]:
    """The model of ``version`` named ``kind`` (the internal model's name, e.g.
    ``"Token"``); a CommandResult of 2.1.1 is a CommandResponse (2.1.1 POSTs one to the
    response_url). NotExpressible when the version has no such object."""
    if version not in SUPPORTED_VERSIONS:
        raise _not_spoken(version)
    module: Any = v211 if version == V211 else v230 if version == V230 else v221
    if version == V211 and kind == "CommandResult":
        return v211.CommandResponse
    found = getattr(module, kind, None)
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise NotExpressible(kind, f"OCPI {version} has no such object", version=version)
    return found


# ------------------------------------------------------------- to a version


class EmbeddedLocation(NamedTuple):
    """The Location a 2.1.1 Session or CDR embeds: the ``field`` naming it in the
    internal object and its id."""

    field: str
    location_id: str


def embedded_location(obj: BaseModel, version: str) -> EmbeddedLocation | None:
    """The Location ``obj`` embeds in ``version`` (a 2.1.1 Session or CDR); None when it
    embeds none."""
    if version != V211:
        return None
    if isinstance(obj, v221.Session):
        return EmbeddedLocation("location_id", obj.location_id)
    if isinstance(obj, v221.CDR):
        return EmbeddedLocation("cdr_location.id", obj.cdr_location.id)
    return None


_TO_V211: dict[type[BaseModel], Callable[[Any], BaseModel]] = {
    v221.Location: conv211.location_to_v211,
    v221.EVSE: conv211.evse_to_v211,
    v221.Connector: conv211.connector_to_v211,
    v221.Tariff: conv211.tariff_to_v211,
    v221.Token: conv211.token_to_v211,
    v221.LocationReferences: conv211.location_references_to_v211,
    v221.AuthorizationInfo: conv211.authorization_info_to_v211,
    v221.CommandResponse: conv211.command_response_to_v211,
    # 2.1.1 POSTs a CommandResponse to the response_url (mod_commands 2.1.1).
    v221.CommandResult: conv211.command_result_to_v211,
    v221.StartSession: conv211.command_to_v211,
    v221.StopSession: conv211.command_to_v211,
    v221.ReserveNow: conv211.command_to_v211,
    v221.UnlockConnector: conv211.command_to_v211,
    v221.CancelReservation: conv211.command_to_v211,  # NotExpressible: no such command
}

_PROFILES = (
    v221.SetChargingProfile,
    v221.ChargingProfile,
    v221.ActiveChargingProfile,
    v221.ChargingProfileResponse,
    v221.ActiveChargingProfileResult,
    v221.ChargingProfileResult,
    v221.ClearProfileResult,
)


def to_version(obj: BaseModel, version: str, *, location: v221.Location | None = None) -> BaseModel:
    """The internal ``obj`` as ``version``'s object (2.2.1: ``obj`` itself);
    NotExpressible naming the field. ``location``: the Location a 2.1.1 Session or CDR
    embeds (:func:`embedded_location`); without it such an object is NotExpressible."""
    if version == V221:
        return obj
    if version == V230:
        try:
            return conv230.to_v230(obj)
        except TypeError:
            raise NotExpressible(
                type(obj).__name__, "OCPI 2.3.0 has no such object", version=V230
            ) from None
    if version != V211:
        raise _not_spoken(version)
    if isinstance(obj, v221.OcpiPatch):
        return patch_to_v211(obj)
    embedded = embedded_location(obj, V211)
    if embedded is not None:
        if location is None:
            raise NotExpressible(
                embedded.field,
                f"Location {embedded.location_id!r}, which 2.1.1 embeds, could not be read",
                version=V211,
            )
        if isinstance(obj, v221.Session):
            return conv211.session_to_v211(obj, location=location)
        assert isinstance(obj, v221.CDR)
        return conv211.cdr_to_v211(obj, location=location)
    if isinstance(obj, _PROFILES):
        raise NotExpressible(
            "chargingprofiles", "2.1.1 has no ChargingProfiles module", version=V211
        )
    convert = _TO_V211.get(type(obj))
    if convert is None:
        raise NotExpressible(type(obj).__name__, "OCPI 2.1.1 has no such object", version=V211)
    return convert(obj)


# ----------------------------------------------------------- from a version

_OWNED_V211: dict[type[BaseModel], Callable[..., BaseModel]] = {
    v211.Location: conv211.location_from_v211,
    v211.Tariff: conv211.tariff_from_v211,
    v211.Token: conv211.token_from_v211,
    # The command's Token is the eMSP's.
    v211.StartSession: conv211.command_from_v211,
    v211.StopSession: conv211.command_from_v211,
    v211.ReserveNow: conv211.command_from_v211,
    v211.UnlockConnector: conv211.command_from_v211,
}
_TOKENED_V211: dict[type[BaseModel], Callable[..., BaseModel]] = {
    v211.Session: conv211.session_from_v211,
    v211.CDR: conv211.cdr_from_v211,
}
_PLAIN_V211: dict[type[BaseModel], Callable[[Any], BaseModel]] = {
    v211.EVSE: conv211.evse_from_v211,
    v211.Connector: conv211.connector_from_v211,
    v211.LocationReferences: conv211.location_references_from_v211,
}


def from_version(
    obj: BaseModel,
    version: str,
    *,
    party: Party | None = None,
    now: datetime | None = None,
    cdr_token: v221.CdrToken | None = None,
    token: v221.Token | None = None,
    command_result: bool = False,
    default_time_zone: str | None = None,
) -> BaseModel:
    """``obj`` (an object of ``version``) in the internal form (2.2.1: ``obj`` itself);
    NotExpressible naming the field when 2.2.1 cannot hold it.

    What 2.1.1 does not carry: ``party`` the owner of a Location, Tariff, Token, Session
    or CDR (the eMSP's, for a command's Token); ``cdr_token`` the token of a Session or
    CDR (2.1.1 names only its ``auth_id``) and what a SessionPatch's ``auth_id`` stands
    for; ``token`` the Token an AuthorizationInfo answers for (2.2.1 echoes it); ``now``
    the ``last_updated`` of a PATCH without one; ``command_result``: a CommandResponse is
    the result POSTed to a response_url, not the CPO's answer to a command (whose
    ``timeout`` is :data:`COMMAND_TIMEOUT_V211`); ``default_time_zone`` the time zone of
    a Location that names none (2.1.1 makes it optional, 2.2.1 requires it: without one,
    NotExpressible naming ``time_zone``)."""
    if version == V221:
        return obj
    if version == V230:
        try:
            return conv230.from_v230(obj)
        except TypeError:
            raise NotExpressible(
                type(obj).__name__, "OCPI 2.2.1 has no such object", version=V221
            ) from None
    if version != V211:
        raise _not_spoken(version)
    kind = type(obj)
    if isinstance(obj, v211.OcpiPatch):
        if now is None:
            raise NotExpressible("last_updated", "the time it is read is needed", version=V221)
        return patch_from_v211(obj, now=now, cdr_token=cdr_token)
    if kind in _PLAIN_V211:
        return _PLAIN_V211[kind](obj)
    if isinstance(obj, v211.CommandResponse):
        if command_result:
            return conv211.command_result_from_v211(obj)
        return conv211.command_response_from_v211(obj, timeout=COMMAND_TIMEOUT_V211)
    if isinstance(obj, v211.AuthorizationInfo):
        if token is None:
            raise NotExpressible("token", "the Token asked for is not known", version=V221)
        return conv211.authorization_info_from_v211(obj, token=token)
    if kind not in _OWNED_V211 and kind not in _TOKENED_V211:
        raise NotExpressible(kind.__name__, "OCPI 2.2.1 has no such object", version=V221)
    if party is None:
        raise NotExpressible(
            "country_code", "its owner is not known (OCPI 2.1.1 names none)", version=V221
        )
    country_code, party_id = party
    if kind is v211.Location:
        return conv211.location_from_v211(
            cast(v211.Location, obj),
            country_code=country_code,
            party_id=party_id,
            default_time_zone=default_time_zone,
        )
    if kind in _OWNED_V211:
        return _OWNED_V211[kind](obj, country_code=country_code, party_id=party_id)
    if cdr_token is None:
        raise NotExpressible("auth_id", "the token's eMSP is not known", version=V221)
    return _TOKENED_V211[kind](
        obj, country_code=country_code, party_id=party_id, cdr_token=cdr_token
    )
