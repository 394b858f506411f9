"""PATCH bodies (partial objects) between the internal form (2.2.1) and OCPI 2.1.1.

A PATCH carries only the fields that change, so it is converted field by field with the
mappings of :mod:`ocpi.versions.v211` (its table applies: renamed fields are renamed,
values 2.1.1 lacks are left out of lists, ``total_cost`` becomes the number excluding
VAT...). A field set to null stays null under its 2.1.1 name (a field 2.1.1 does not have
is left out). 2.3.0 PATCH bodies are :func:`ocpi.versions.v230.patch_to_v230`.

What a 2.1.1 PATCH cannot say raises :class:`~ocpi.versions.NotExpressible` naming the
field, so that the sender sends the whole object (or the operator sees why not):

==============================  =================================================================
2.2.1 PATCH field               2.1.1
==============================  =================================================================
SessionPatch.location_id,       NotExpressible: a 2.1.1 Session embeds the whole Location (with
evse_uid, connector_id          only the EVSE and connector used); PUT the whole session.
SessionPatch.charging_periods   NotExpressible when it holds a period with a dimension 2.1.1
                                knows: a 2.2.1 PATCH *adds* its periods (mod_sessions), a 2.1.1
                                PATCH replaces the field; an empty list (no change) is dropped.
SessionPatch.cdr_token          ``auth_id`` = its ``contract_id``.
LocationPatch.publish           false: NotExpressible (2.1.1 has no unpublished locations);
                                true: dropped.
LocationPatch.parking_type      ``type`` as for a Location; null → ``UNKNOWN`` (``type`` is
                                required in 2.1.1).
LocationPatch.postal_code       null → "" (required in 2.1.1).
ConnectorPatch.tariff_ids       the first as ``tariff_id``; empty or null → ``tariff_id`` null.
==============================  =================================================================

:func:`patch_from_v211` reads a 2.1.1 PATCH body (a CPO's LocationPatch, EVSEPatch,
ConnectorPatch, SessionPatch; an eMSP's TokenPatch) into the internal form: renamed fields
renamed, embedded objects converted, ``last_updated`` (which 2.1.1 does not require, 2.2
made it required) the ``now`` given when absent. A SessionPatch's ``charging_periods`` (a
2.1.1 PATCH replaces them, a 2.2.1 PATCH adds them) or ``location`` (2.2.1 names the
location, EVSE and connector) raise NotExpressible: the CPO sends the whole session. A
SessionPatch's ``auth_id`` becomes the ``cdr_token`` given (left out without one); a
TokenPatch's ``auth_id`` is its ``contract_id``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel

import ocpi.v211 as v211
import ocpi.v221 as v221
from ocpi.versions import NotExpressible
from ocpi.versions.v211 import (
    _CAPABILITIES_211,
    _FACILITIES_211,
    _PARKING_DOWN,
    _PARKING_UP,
    _RESTRICTIONS_211,
    _auth_method_down,
    _build,
    _energy_mix_down,
    _energy_mix_up,
    _geo_down,
    _join,
    _periods_down,
    connector_from_v211,
    connector_to_v211,
    evse_from_v211,
    evse_to_v211,
)

__all__ = ["patch_from_v211", "patch_to_v211"]

V211 = "2.1.1"
V221 = "2.2.1"

Data = dict[str, Any]


def _fail(field: str, reason: str) -> NotExpressible:
    return NotExpressible(field, reason, version=V211)


def _rename(data: Data, old: str, new: str) -> None:
    if old in data:
        data[new] = data.pop(old)


def _drop(data: Data, *names: str) -> None:
    for name in names:
        data.pop(name, None)


def _connector(patch: v221.ConnectorPatch, data: Data) -> Data:
    _rename(data, "max_voltage", "voltage")
    _rename(data, "max_amperage", "amperage")
    _drop(data, "max_electric_power")
    if "tariff_ids" in data:
        ids = data.pop("tariff_ids")
        data["tariff_id"] = ids[0] if ids else None
    return data


def _evse(patch: v221.EVSEPatch, data: Data) -> Data:
    if data.get("capabilities") is not None:
        data["capabilities"] = [c for c in data["capabilities"] if c in _CAPABILITIES_211]
    if data.get("parking_restrictions") is not None:
        data["parking_restrictions"] = [
            r for r in data["parking_restrictions"] if r in _RESTRICTIONS_211
        ]
    if data.get("coordinates") is not None:
        data["coordinates"] = _geo_down(data["coordinates"])
    if patch.connectors is not None:
        data["connectors"] = [
            connector_to_v211(c, path=_join("", "connectors", i)).to_wire()
            for i, c in enumerate(patch.connectors)
        ]
    return data


def _location(patch: v221.LocationPatch, data: Data) -> Data:
    if "publish" in data:
        if data["publish"] is False:
            raise _fail("publish", "an unpublished Location would be public in 2.1.1")
        del data["publish"]
    _drop(data, "country_code", "party_id", "publish_allowed_to", "state")
    if "parking_type" in data:
        parking = data.pop("parking_type")
        data["type"] = (
            v211.LocationType.UNKNOWN
            if parking is None
            else _PARKING_DOWN.get(str(parking), v211.LocationType.OTHER)
        )
    if "postal_code" in data and data["postal_code"] is None:
        data["postal_code"] = ""
    if data.get("coordinates") is not None:
        data["coordinates"] = _geo_down(data["coordinates"])
    if data.get("related_locations") is not None:
        data["related_locations"] = [_geo_down(r) for r in data["related_locations"]]
    if data.get("facilities") is not None:
        data["facilities"] = [f for f in data["facilities"] if f in _FACILITIES_211]
    if data.get("energy_mix") is not None:
        data["energy_mix"] = _energy_mix_down(data["energy_mix"])
    if patch.evses is not None:
        data["evses"] = [
            evse_to_v211(e, path=_join("", "evses", i)).to_wire() for i, e in enumerate(patch.evses)
        ]
    return data


def _session(patch: v221.SessionPatch, data: Data) -> Data:
    for name in ("location_id", "evse_uid", "connector_id"):
        if name in data:
            raise _fail(
                name,
                "a 2.1.1 Session embeds the whole Location: send the whole session by PUT",
            )
    _drop(data, "country_code", "party_id", "authorization_reference")
    _rename(data, "start_date_time", "start_datetime")
    _rename(data, "end_date_time", "end_datetime")
    if "cdr_token" in data:
        del data["cdr_token"]
        data["auth_id"] = None if patch.cdr_token is None else patch.cdr_token.contract_id
    if patch.auth_method is not None:
        data["auth_method"] = _auth_method_down(patch.auth_method)
    if "charging_periods" in data:
        periods = _periods_down(patch.charging_periods)
        if periods:
            raise _fail(
                "charging_periods",
                "a 2.2.1 PATCH adds charging periods, a 2.1.1 PATCH would replace them: "
                "send the whole session by PUT",
            )
        del data["charging_periods"]  # nothing to add: no change
    if "total_cost" in data:
        # 2.1.1 totals are plain numbers excluding VAT.
        data["total_cost"] = None if patch.total_cost is None else patch.total_cost.excl_vat
    if patch.status is v221.SessionStatus.RESERVATION:
        data["status"] = v211.SessionStatus.PENDING
    return data


def _token(patch: v221.TokenPatch, data: Data) -> Data:
    _drop(data, "country_code", "party_id", "group_id", "default_profile_type", "energy_contract")
    _rename(data, "contract_id", "auth_id")
    if data.get("type") is not None and str(data["type"]) not in {t.value for t in v211.TokenType}:
        data["type"] = v211.TokenType.OTHER  # AD_HOC_USER, APP_USER: 2.2 additions
    return data


_Convert = Callable[[Any, Data], Data]
_PATCHES: dict[type[BaseModel], tuple[type[BaseModel], _Convert]] = {
    v221.LocationPatch: (v211.LocationPatch, _location),
    v221.EVSEPatch: (v211.EVSEPatch, _evse),
    v221.ConnectorPatch: (v211.ConnectorPatch, _connector),
    v221.SessionPatch: (v211.SessionPatch, _session),
    v221.TokenPatch: (v211.TokenPatch, _token),
}


def patch_to_v211(patch: v221.OcpiPatch) -> v211.OcpiPatch:
    """A 2.2.1 PATCH body (LocationPatch, EVSEPatch, ConnectorPatch, SessionPatch,
    TokenPatch) in 2.1.1: only its present fields, converted one by one (module doc);
    NotExpressible naming the field that 2.1.1 cannot say in a PATCH."""
    try:
        target, convert = _PATCHES[type(patch)]
    except KeyError:
        raise TypeError(f"no 2.1.1 PATCH for {type(patch).__qualname__}") from None
    data = convert(patch, patch.to_wire())
    # Only the fields the 2.1.1 object has (a null of a field it lacks means nothing).
    kept = {name: value for name, value in data.items() if name in target.model_fields}
    return cast(v211.OcpiPatch, _build(target, kept, "", V211))


# ---------------------------------------------------------------- 2.1.1 to 2.2.1


def _connector_up(data: Data) -> Data:
    _rename(data, "voltage", "max_voltage")
    _rename(data, "amperage", "max_amperage")
    if "tariff_id" in data:
        tariff = data.pop("tariff_id")
        data["tariff_ids"] = [] if tariff is None else [tariff]
    return data


def _evse_up(patch: v211.EVSEPatch, data: Data) -> Data:
    if patch.connectors is not None:
        data["connectors"] = [connector_from_v211(c).to_wire() for c in patch.connectors]
    return data


def _location_up(patch: v211.LocationPatch, data: Data) -> Data:
    if "type" in data:
        parking = _PARKING_UP.get(data.pop("type"))
        if parking is not None:
            data["parking_type"] = parking
    if data.get("postal_code") == "":
        data["postal_code"] = None
    if data.get("energy_mix") is not None:
        data["energy_mix"] = _energy_mix_up(data["energy_mix"])
    hours = data.get("opening_times")
    if isinstance(hours, dict) and "twentyfourseven" not in hours:
        hours["twentyfourseven"] = False
    if patch.evses is not None:
        data["evses"] = [evse_from_v211(e).to_wire() for e in patch.evses]
    return data


def _session_up(data: Data, cdr_token: v221.CdrToken | None) -> Data:
    for name in ("charging_periods", "location"):
        if name in data:
            raise NotExpressible(
                name, "a 2.1.1 PATCH of it cannot be given (PUT the whole session)", version=V221
            )
    _rename(data, "start_datetime", "start_date_time")
    _rename(data, "end_datetime", "end_date_time")
    if "auth_id" in data:
        data.pop("auth_id")
        if cdr_token is not None:
            data["cdr_token"] = cdr_token.to_wire()
    if data.get("total_cost") is not None:
        data["total_cost"] = {"excl_vat": data["total_cost"]}
    return data


def patch_from_v211(
    patch: v211.OcpiPatch, *, now: datetime, cdr_token: v221.CdrToken | None = None
) -> v221.OcpiPatch:
    """A 2.1.1 PATCH body in the internal form (module doc): ``now`` the
    ``last_updated`` of a body without one, ``cdr_token`` what a SessionPatch's
    ``auth_id`` stands for."""
    data = patch.to_wire()
    data.setdefault("last_updated", now)
    target: type[v221.OcpiPatch]
    if isinstance(patch, v211.TokenPatch):
        target = v221.TokenPatch
        _rename(data, "auth_id", "contract_id")
    elif isinstance(patch, v211.ConnectorPatch):
        target, data = v221.ConnectorPatch, _connector_up(data)
    elif isinstance(patch, v211.EVSEPatch):
        target, data = v221.EVSEPatch, _evse_up(patch, data)
    elif isinstance(patch, v211.LocationPatch):
        target, data = v221.LocationPatch, _location_up(patch, data)
    elif isinstance(patch, v211.SessionPatch):
        target, data = v221.SessionPatch, _session_up(data, cdr_token)
    else:
        raise NotExpressible(type(patch).__name__, "2.2.1 has no such PATCH", version=V221)
    return _build(target, data, "", V221)
