"""What the gateway sends to a partner, in the OCPI version that partner registered in.

The roaming layer works in the internal form, the OCPI 2.2.1 models; a partner that
registered in 2.1.1 or 2.3.0 (``Partner.version``) gets every push, command result and
request in its own version, through the pure conversions of :mod:`ocpi.versions`
(:mod:`ocpi.versions.objects` picks each object's).

Where pushes are converted: **at delivery**, not when they are planned. The outbox item
keeps the internal (2.2.1) body, and records the partner's version when it was planned
(:data:`META_VERSION`, the version whose endpoint URL the item carries) and what the
body is (:data:`META_OBJECT`, the 2.2.1 model's name, e.g. ``Session``, ``EVSEPatch``);
the outbox worker converts the body to that version for each attempt
(:func:`outgoing`). Why there:

* The "unknown object" fallback (a PATCH the receiver answers 2003/404 becomes a PUT of
  the whole object) builds its object at delivery anyway; converting every body there
  is one path for both.
* A 2.1.1 Session or CDR embeds the Location (with only the EVSE and connector used), read
  when it is sent: the producers stay version-agnostic, and a session PUT made without
  its location at hand (a PENDING session expiring) needs no extra read when planned.
* An object 2.1.1 or 2.3.0 cannot express raises :class:`~ocpi.versions.NotExpressible`
  at delivery, and the item is FAILED at once with that error (the field named), in the
  operator's list of failed items (``/admin/outbox?status=FAILED``), where it can be
  replayed or discarded like any other; a failure when planning would instead abort the
  storage write of the record it belongs to (the session, the location...).
* The operator's outbox view shows one form of an object whatever its receivers' versions.

The version is the one recorded in the item, not the partner's version at delivery: an
item's URL belongs to the endpoints of that version, so a partner that registers again
in another version gets the items planned before in the old version at the old URLs
(consistent, as after a registration with other endpoints), and everything again in its
new version (the initial push). Items without a recorded version (planned by the hub,
which passes bodies on unchanged, or before this release) are sent as stored.

2.1.1 has no routing headers (no ``OCPI-from-*``/``OCPI-to-*``; transport_and_format of
2.2 introduced them): none are sent to a 2.1.1 partner. The URLs have the same shapes in
2.1.1, 2.2.1 and 2.3.0 for everything the CPO side sends (``{endpoint}/{country_code}/
{party_id}/{id}[/{evse_uid}[/{connector_id}]]`` for locations, sessions and tariffs, the
endpoint itself for a CDR POST, ``{endpoint}/{uid}/authorize?type=`` for a real-time
authorization, the ``response_url`` for a command result).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

import ocpi.v221 as v221
from ocpi.transport import field_path
from ocpi.versions import NotExpressible
from ocpi.versions.objects import embedded_location, to_version

__all__ = [
    "LOCATION_KIND",
    "META_OBJECT",
    "META_VERSION",
    "SUPPORTED",
    "V211",
    "V221",
    "V230",
    "LocationLookup",
    "full_object_kind",
    "has_routing_headers",
    "object_name",
    "outgoing",
    "version_of",
]

V211 = "2.1.1"
V221 = "2.2.1"
V230 = "2.3.0"
SUPPORTED = (V211, V221, V230)

# Outbox item meta keys (read by the outbox worker).
META_VERSION = "ocpi_version"  # the version the item is sent in
META_OBJECT = "ocpi_object"  # the 2.2.1 model the stored body is (its class name)

LOCATION_KIND = "location"
"""The outbox builder kind whose builder (``location id -> Location``) also gives the
Location a 2.1.1 Session or CDR embeds."""

LocationLookup = Callable[[str], Awaitable[Any]]

# The 2.2.1 objects the CPO side sends, by class name.
_MODELS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (
        v221.Location,
        v221.EVSE,
        v221.Connector,
        v221.LocationPatch,
        v221.EVSEPatch,
        v221.ConnectorPatch,
        v221.Tariff,
        v221.Session,
        v221.SessionPatch,
        v221.CDR,
        v221.Token,
        v221.TokenPatch,
        v221.LocationReferences,
        v221.AuthorizationInfo,
        v221.CommandResponse,
        v221.CommandResult,
        v221.ActiveChargingProfile,
        v221.ActiveChargingProfileResult,
        v221.ChargingProfileResult,
        v221.ClearProfileResult,
    )
}
# The object a PATCH's "unknown object" fallback builds, by builder kind.
_FULL_OBJECTS = {LOCATION_KIND: "Location", "session": "Session"}


def version_of(partner: Any) -> str:
    """The version a partner registered in (2.2.1 for records without one)."""
    version = getattr(partner, "version", None)
    return str(version) if version else V221


def has_routing_headers(version: str | None) -> bool:
    """Whether requests in ``version`` carry OCPI-from/to-* headers (not 2.1.1)."""
    return version != V211


def object_name(body: Any) -> str | None:
    """The :data:`META_OBJECT` of a body that is a 2.2.1 model (None otherwise)."""
    if isinstance(body, BaseModel) and type(body).__name__ in _MODELS:
        return type(body).__name__
    return None


def full_object_kind(builder_kind: str, body: Any) -> str | None:
    """What the "unknown object" fallback of ``builder_kind`` built."""
    return object_name(body) or _FULL_OBJECTS.get(builder_kind)


async def outgoing(
    version: str, kind: str | None, body: Any, *, locations: LocationLookup | None = None
) -> Any:
    """``body`` (a 2.2.1 ``kind`` object: model or its JSON) as sent in ``version``.

    2.2.1 bodies, and bodies of no known kind, are returned unchanged. Raises
    :class:`NotExpressible` naming the field when ``version`` cannot express it (an
    object of a module the version lacks: the field is the module), and also for a
    version the gateway does not speak (the field is ``version``) and a body that is
    not the ``kind`` it says (never sent as it is). ``locations``: ``location id ->
    Location``, for the Location a 2.1.1 Session or CDR embeds.
    """
    if version == V221 or body is None or kind is None:
        return body
    if version not in SUPPORTED:
        raise NotExpressible("version", "not a version the gateway speaks", version=version)
    model = _MODELS.get(kind)
    if model is None:
        return body
    try:
        obj = body if isinstance(body, model) else model.model_validate(body)
    except ValidationError as exc:  # a stored body that is not what it says it is
        where = field_path(exc.errors()[0]["loc"]) or kind
        raise NotExpressible(where, f"not a valid 2.2.1 {kind}", version=version) from None
    embedded = embedded_location(obj, version)
    found = None
    if embedded is not None and locations is not None:
        found = await locations(embedded.location_id)
    if found is not None and not isinstance(found, v221.Location):
        found = v221.Location.model_validate(found)
    return to_version(obj, version, location=found)
