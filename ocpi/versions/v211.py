"""OCPI 2.1.1 <-> the internal form (OCPI 2.2.1 models): pure conversion functions.

``x_to_v211(obj)`` writes an internal (2.2.1) object as 2.1.1; ``x_from_v211(obj, ...)``
reads a 2.1.1 object into the internal form, taking what 2.1.1 does not carry (the owner's
``country_code``/``party_id``, the token of a session...) from keyword arguments. The
mappings follow the 2.2.1 specification's changelog, "Changes between OCPI 2.1.1 and 2.2".
A 2.2.1 object that 2.1.1 cannot express raises :class:`~ocpi.versions.NotExpressible`
naming the field (and so does a 2.1.1 object that 2.2.1 cannot express).

Lossy mappings (``↓`` = 2.2.1 to 2.1.1, ``↑`` = 2.1.1 to 2.2.1):

==============================  =================================================================
Object.field                    Mapping
==============================  =================================================================
Location.country_code,          ↓ dropped. ↑ from the arguments (the 2.1.1 peer's credentials).
party_id
Location.publish                ↓ true: dropped; false raises NotExpressible (2.1.1 has no
                                unpublished locations). ↑ true.
Location.publish_allowed_to     ↓ dropped (only with publish=false, which raises). ↑ absent.
Location.state                  ↓ dropped. ↑ absent.
Location.parking_type           ↓ ``type``: ON_STREET, PARKING_GARAGE, UNDERGROUND_GARAGE,
                                PARKING_LOT as they are; ALONG_MOTORWAY, ON_DRIVEWAY (and
                                unknown values) → OTHER; absent → UNKNOWN. ↑ the four shared
                                values as they are; OTHER, UNKNOWN → absent.
Location.postal_code            ↓ absent → "" (required in 2.1.1). ↑ "" → absent.
Location.address                ↓ longer than 45 characters raises NotExpressible (2.2.1
                                allows 255).
Location.time_zone              ↑ absent → ``default_time_zone`` argument, else NotExpressible
                                (required in 2.2.1).
Location.facilities,            ↓ values 2.1.1 lacks (BIKE_SHARING, PARKING_LOT, TRAM_STOP,
EVSE.capabilities,              METRO_STATION; the 2.2 capabilities; unknown open-enum
EVSE.parking_restrictions       values) are left out of the list.
GeoLocation.latitude,           ↓ rounded half-even to 6 decimals (2.1.1 wants exactly 6; 2.2.1
longitude                       allows 5 to 7): a 7th decimal is lost, 5 decimals gain a 0.
Hours.twentyfourseven           ↑ absent (2.1.1 "choice" with regular_hours) → false.
EnvironmentalImpact.category    renamed ``source`` in 2.1.1 (no loss).
EVSE.uid, Location.id           ↑ longer than 36 characters raises NotExpressible (2.1.1 allows
                                39).
Connector.max_voltage,          renamed ``voltage``/``amperage`` (no loss).
max_amperage
Connector.max_electric_power    ↓ dropped. ↑ absent.
Connector.tariff_ids            ↓ the first id as ``tariff_id`` (the others are lost: put the
                                REGULAR tariff first). ↑ ``[tariff_id]``.
Connector.standard,             ↓ a value 2.1.1 lacks (CHAOJI, GBT_*, NEMA_*, DOMESTIC_M..O,
power_type                      PANTOGRAPH_*; AC_2_PHASE, AC_2_PHASE_SPLIT) raises
                                NotExpressible.
Session.country_code, party_id  ↓ dropped. ↑ from the arguments.
Session.cdr_token               ↓ ``auth_id`` = ``contract_id`` (uid, type and the token owner
                                are lost). ↑ the ``cdr_token`` argument (its contract_id must
                                be the auth_id).
Session.location_id, evse_uid,  ↓ the embedded ``location``: the ``location`` argument with only
connector_id                    that EVSE and connector. ↑ from the embedded location, which
                                must hold exactly one EVSE with one connector.
Session.authorization_reference ↓ dropped. ↑ absent.
Session.auth_method, CDR.       ↓ COMMAND → AUTH_REQUEST (a remote start is authorized by the
auth_method                     eMSP). ↑ as it is.
Session.status                  ↓ RESERVATION → PENDING. ↑ as it is.
Session.total_cost, CDR.        ↓ the number is ``excl_vat`` (2.1.1 totals exclude VAT);
total_cost                      ``incl_vat`` is lost. ↑ Price(excl_vat=number).
Session.start_date_time,        renamed ``start_datetime``/``end_datetime`` (no loss).
end_date_time
ChargingPeriod.tariff_id        ↓ dropped. ↑ absent.
CdrDimension.type               ↓ CURRENT, ENERGY_EXPORT, ENERGY_IMPORT, MAX_POWER, MIN_POWER,
                                POWER, RESERVATION_TIME, STATE_OF_CHARGE (and unknown values)
                                are left out; a period left without dimensions is left out;
                                a CDR left without periods raises NotExpressible. ↑ FLAT is
                                left out (2.2 removed it: "of no use on a CDR"); a period
                                left empty raises NotExpressible.
CDR.country_code, party_id      ↓ dropped. ↑ from the arguments.
CDR.id                          ↓ longer than 36 characters raises NotExpressible (2.2.1
                                allows 39).
CDR.end_date_time               renamed ``stop_date_time`` (no loss).
CDR.cdr_token                   as Session.cdr_token.
CDR.cdr_location                ↓ the embedded ``location``: the ``location`` argument with only
                                that EVSE and connector, its address, coordinates, evse_id and
                                connector standard/format/power type taken from the
                                cdr_location; ``state`` is lost. ↑ from the embedded location
                                (one EVSE with one connector and an ``evse_id``, else
                                NotExpressible).
CDR.session_id, authorization_  ↓ dropped. ↑ absent.
reference, signed_data,
total_fixed_cost,
total_energy_cost,
total_time_cost,
total_parking_cost,
total_reservation_cost,
invoice_reference_id,
home_charging_compensation
CDR.credit, credit_reference_id ↓ credit=true raises NotExpressible (a credit CDR would read as
                                a new charge); credit=false and credit_reference_id dropped.
Tariff.country_code, party_id   ↓ dropped. ↑ from the arguments.
Tariff.type                     ↓ REGULAR or absent: dropped; any other type raises
                                NotExpressible (AD_HOC_PAYMENT and PROFILE_* tariffs are not
                                for 2.1.1 eMSPs). ↑ absent.
Tariff.min_price, max_price     ↓ set raises NotExpressible (the price would read lower/higher).
Tariff.start_date_time,         ↓ dropped (a 2.1.1 eMSP takes the tariff as valid now: send
end_date_time                   2.1.1 partners the tariff in force). ↑ absent.
PriceComponent.vat              ↓ dropped (2.1.1 prices exclude VAT). ↑ absent.
TariffRestrictions.reservation  ↓ the element is left out (2.1.1 tariffs do not price
                                reservations); a tariff left without elements raises
                                NotExpressible.
TariffRestrictions.min_current, ↓ set raises NotExpressible.
max_current
Token.country_code, party_id    ↓ dropped. ↑ from the arguments.
Token.contract_id               renamed ``auth_id`` (no loss).
Token.type                      ↓ AD_HOC_USER, APP_USER (and unknown values) → OTHER. ↑ as it is.
Token.group_id,                 ↓ dropped. ↑ absent.
default_profile_type,
energy_contract
AuthorizationInfo.token,        ↓ dropped. ↑ the ``token`` argument; absent.
authorization_reference
LocationReferences.             ↑ dropped (2.2 removed them).
connector_ids
ReserveNow.reservation_id       ↓ must be a plain decimal integer ("12", not "012" or a UUID),
                                else NotExpressible (2.1.1: int). ↑ its decimal text.
ReserveNow/StartSession.        ↓ dropped. ↑ absent.
authorization_reference
StartSession.connector_id       ↓ dropped (the Charge Point picks the connector). ↑ absent.
CancelReservation               ↓ raises NotExpressible (2.1.1 has no CANCEL_RESERVATION).
CommandResponse.timeout,        ↓ dropped. ↑ ``timeout`` argument; absent.
message
CommandResponse.result          ↑ TIMEOUT → REJECTED (2.2 moved TIMEOUT to CommandResult).
CommandResult.result            ↓ (a CommandResponse to the response_url) ACCEPTED, REJECTED,
                                TIMEOUT, NOT_SUPPORTED as they are; CANCELED_RESERVATION,
                                EVSE_OCCUPIED, EVSE_INOPERATIVE, FAILED, UNKNOWN_RESERVATION →
                                REJECTED; ``message`` dropped. ↑ UNKNOWN_SESSION → REJECTED.
Credentials.roles               ↓ the one role (or the ``role`` argument's) as the 2.1.1 party;
                                the other roles are lost, none matching raises NotExpressible.
                                ↑ one role, of the ``role`` argument (CPO or EMSP).
Endpoint.role                   ↓ dropped; of two endpoints of one module (SENDER and RECEIVER)
                                the first is kept. ↑ the role the peer's party role implies
                                for that module.
(free text)                     2.1.1 strings are ASCII by the spec; non-ASCII text (names,
                                addresses, DisplayText) is passed on unchanged both ways.
==============================  =================================================================

:data:`LOSSY_TO_V211` lists, per object, the field paths that a round trip 2.2.1 → 2.1.1 →
2.2.1 may change (the tests check that no other field changes).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError

import ocpi.v211 as v211
import ocpi.v221 as v221
from ocpi.transport import field_path
from ocpi.versions import NotExpressible

__all__ = [
    "LOSSY_TO_V211",
    "authorization_info_from_v211",
    "authorization_info_to_v211",
    "cdr_from_v211",
    "cdr_to_v211",
    "command_from_v211",
    "command_response_from_v211",
    "command_response_to_v211",
    "command_result_from_v211",
    "command_result_to_v211",
    "command_to_v211",
    "connector_from_v211",
    "connector_to_v211",
    "credentials_from_v211",
    "credentials_to_v211",
    "evse_from_v211",
    "evse_to_v211",
    "location_from_v211",
    "location_references_from_v211",
    "location_references_to_v211",
    "location_to_v211",
    "session_from_v211",
    "session_to_v211",
    "tariff_from_v211",
    "tariff_to_v211",
    "token_from_v211",
    "token_to_v211",
    "version_details_from_v211",
    "version_details_to_v211",
]

M = TypeVar("M", bound=BaseModel)

DOWN = "2.1.1"
UP = "2.2.1"

LOSSY_TO_V211: dict[str, frozenset[str]] = {
    "Location": frozenset(
        {
            "country_code",  # (given back by the caller's arguments)
            "party_id",
            "state",
            "parking_type",
            "postal_code",
            "coordinates.latitude",
            "coordinates.longitude",
            "related_locations[].latitude",
            "related_locations[].longitude",
            "facilities[]",
            "evses[].capabilities[]",
            "evses[].parking_restrictions[]",
            "evses[].coordinates.latitude",
            "evses[].coordinates.longitude",
            "evses[].connectors[].max_electric_power",
            "evses[].connectors[].tariff_ids[]",
        }
    ),
    "Session": frozenset(
        {
            "authorization_reference",
            "auth_method",
            "status",
            "total_cost.incl_vat",
            "charging_periods[].tariff_id",
            "charging_periods[]",
            "charging_periods[].dimensions[]",
        }
    ),
    "CDR": frozenset(
        {
            "session_id",
            "authorization_reference",
            "auth_method",
            "cdr_location.state",
            "cdr_location.coordinates.latitude",
            "cdr_location.coordinates.longitude",
            "cdr_location.postal_code",
            "signed_data",
            "total_cost.incl_vat",
            "total_fixed_cost",
            "total_energy_cost",
            "total_time_cost",
            "total_parking_cost",
            "total_reservation_cost",
            "invoice_reference_id",
            "credit",
            "credit_reference_id",
            "home_charging_compensation",
            "charging_periods[].tariff_id",
            "charging_periods[]",
            "charging_periods[].dimensions[]",
            "tariffs[].type",
            "tariffs[].start_date_time",
            "tariffs[].end_date_time",
            "tariffs[].elements[]",
            "tariffs[].elements[].price_components[].vat",
        }
    ),
    "Tariff": frozenset(
        {
            "type",
            "start_date_time",
            "end_date_time",
            "elements[]",
            "elements[].price_components[].vat",
        }
    ),
    "Token": frozenset({"type", "group_id", "default_profile_type", "energy_contract"}),
}
"""Per object, the field paths (``[]`` for any list index) that may change in a round
trip 2.2.1 → 2.1.1 → 2.2.1; a path ending in ``[]`` means items may be left out."""


# ----------------------------------------------------------------- helpers


def _fail(field: str, reason: str, version: str) -> NoReturn:
    raise NotExpressible(field, reason, version=version)


def _build(model: type[M], data: Mapping[str, Any], path: str, version: str) -> M:
    """``model`` from ``data``; a value the target version refuses (too long, an enum
    value it lacks...) raises NotExpressible naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        reason = str(first["msg"]).removeprefix("Value error, ")
        _fail(field_path(first["loc"], prefix=path) or model.__name__, reason, version)


def _join(path: str, *parts: int | str) -> str:
    """``_join("evses[0]", "connectors", 1)`` is ``evses[0].connectors[1]``."""
    return field_path(parts, prefix=path)


def _values(enum_cls: Any) -> frozenset[str]:
    return frozenset(member.value for member in enum_cls)


_FACILITIES_211 = _values(v211.Facility)
_CAPABILITIES_211 = _values(v211.Capability)
_RESTRICTIONS_211 = _values(v211.ParkingRestriction)
_DIMENSIONS_211 = _values(v211.CdrDimensionType) - {"FLAT"}
_DIMENSIONS_221 = _values(v221.CdrDimensionType)

_PARKING_DOWN = {
    "ON_STREET": v211.LocationType.ON_STREET,
    "PARKING_GARAGE": v211.LocationType.PARKING_GARAGE,
    "UNDERGROUND_GARAGE": v211.LocationType.UNDERGROUND_GARAGE,
    "PARKING_LOT": v211.LocationType.PARKING_LOT,
}
_PARKING_UP = {value: v221.ParkingType(key) for key, value in _PARKING_DOWN.items()}

_SIX_DECIMALS = Decimal("0.000001")


def _coordinate_down(text: str) -> str:
    # 2.2 changelog: GeoLocation "from fixed 6 decimal places, to more flexible 5 to 7".
    whole, _, decimals = text.partition(".")
    if len(decimals) <= 6:
        return f"{whole}.{decimals.ljust(6, '0')}"
    return f"{Decimal(text).quantize(_SIX_DECIMALS, rounding=ROUND_HALF_EVEN):f}"


def _geo_down(geo: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **geo,
        "latitude": _coordinate_down(geo["latitude"]),
        "longitude": _coordinate_down(geo["longitude"]),
    }


def _energy_mix_down(mix: dict[str, Any]) -> dict[str, Any]:
    # 2.2 renamed EnvironmentalImpact.source to category.
    if "environ_impact" in mix:
        mix["environ_impact"] = [
            {"source": item["category"], "amount": item["amount"]} for item in mix["environ_impact"]
        ]
    return mix


def _energy_mix_up(mix: dict[str, Any]) -> dict[str, Any]:
    if "environ_impact" in mix:
        mix["environ_impact"] = [
            {"category": item["source"], "amount": item["amount"]} for item in mix["environ_impact"]
        ]
    return mix


# --------------------------------------------------------------- locations


def connector_to_v211(connector: v221.Connector, *, path: str = "") -> v211.Connector:
    data = connector.to_wire()
    data["voltage"] = data.pop("max_voltage")
    data["amperage"] = data.pop("max_amperage")
    data.pop("max_electric_power", None)
    tariff_ids = data.pop("tariff_ids", None)
    if tariff_ids:
        data["tariff_id"] = tariff_ids[0]
    return _build(v211.Connector, data, path, DOWN)


def connector_from_v211(connector: v211.Connector, *, path: str = "") -> v221.Connector:
    data = connector.to_wire()
    data["max_voltage"] = data.pop("voltage")
    data["max_amperage"] = data.pop("amperage")
    tariff_id = data.pop("tariff_id", None)
    if tariff_id is not None:
        data["tariff_ids"] = [tariff_id]
    return _build(v221.Connector, data, path, UP)


def evse_to_v211(evse: v221.EVSE, *, path: str = "") -> v211.EVSE:
    data = evse.to_wire()
    if "capabilities" in data:
        data["capabilities"] = [c for c in data["capabilities"] if c in _CAPABILITIES_211]
    if "parking_restrictions" in data:
        data["parking_restrictions"] = [
            r for r in data["parking_restrictions"] if r in _RESTRICTIONS_211
        ]
    if "coordinates" in data:
        data["coordinates"] = _geo_down(data["coordinates"])
    data["connectors"] = [
        connector_to_v211(c, path=_join(path, "connectors", i)).to_wire()
        for i, c in enumerate(evse.connectors)
    ]
    return _build(v211.EVSE, data, path, DOWN)


def evse_from_v211(evse: v211.EVSE, *, path: str = "") -> v221.EVSE:
    data = evse.to_wire()
    data["connectors"] = [
        connector_from_v211(c, path=_join(path, "connectors", i)).to_wire()
        for i, c in enumerate(evse.connectors)
    ]
    return _build(v221.EVSE, data, path, UP)


def location_to_v211(location: v221.Location) -> v211.Location:
    if not location.publish:
        _fail("publish", "an unpublished Location would be public in 2.1.1", DOWN)
    data = location.to_wire()
    for name in ("country_code", "party_id", "publish", "publish_allowed_to", "state"):
        data.pop(name, None)
    parking = data.pop("parking_type", None)
    data["type"] = (
        v211.LocationType.UNKNOWN
        if parking is None
        else _PARKING_DOWN.get(str(parking), v211.LocationType.OTHER)
    )
    data.setdefault("postal_code", "")
    data["coordinates"] = _geo_down(data["coordinates"])
    if "related_locations" in data:
        data["related_locations"] = [_geo_down(r) for r in data["related_locations"]]
    if "facilities" in data:
        data["facilities"] = [f for f in data["facilities"] if f in _FACILITIES_211]
    if "energy_mix" in data:
        data["energy_mix"] = _energy_mix_down(data["energy_mix"])
    if location.evses is not None:
        data["evses"] = [
            evse_to_v211(e, path=_join("", "evses", i)).to_wire()
            for i, e in enumerate(location.evses)
        ]
    return _build(v211.Location, data, "", DOWN)


def location_from_v211(
    location: v211.Location,
    *,
    country_code: str,
    party_id: str,
    default_time_zone: str | None = None,
) -> v221.Location:
    data = location.to_wire()
    data["country_code"] = country_code
    data["party_id"] = party_id
    data["publish"] = True
    parking = _PARKING_UP.get(data.pop("type"))
    if parking is not None:
        data["parking_type"] = parking
    if data.get("postal_code") == "":
        del data["postal_code"]
    if "time_zone" not in data:
        if default_time_zone is None:
            _fail("time_zone", "2.2.1 requires a time zone and none was given", UP)
        data["time_zone"] = default_time_zone
    hours = data.get("opening_times")
    if hours is not None and "twentyfourseven" not in hours:
        hours["twentyfourseven"] = False
    if "energy_mix" in data:
        data["energy_mix"] = _energy_mix_up(data["energy_mix"])
    if location.evses is not None:
        data["evses"] = [
            evse_from_v211(e, path=_join("", "evses", i)).to_wire()
            for i, e in enumerate(location.evses)
        ]
    return _build(v221.Location, data, "", UP)


# --------------------------------------------------------- sessions, CDRs


def _periods_down(periods: list[v221.ChargingPeriod] | None) -> list[dict[str, Any]] | None:
    if periods is None:
        return None
    result = []
    for period in periods:
        dimensions = [d.to_wire() for d in period.dimensions if str(d.type) in _DIMENSIONS_211]
        if dimensions:  # a period of dimensions 2.1.1 lacks only is left out
            result.append({"start_date_time": period.start_date_time, "dimensions": dimensions})
    return result


def _periods_up(
    periods: list[v211.ChargingPeriod] | None, path: str
) -> list[dict[str, Any]] | None:
    if periods is None:
        return None
    result = []
    for i, period in enumerate(periods):
        dimensions = [d.to_wire() for d in period.dimensions if d.type in _DIMENSIONS_221]
        if not dimensions:
            _fail(_join(path, i, "dimensions"), "only FLAT dimensions, which 2.2 removed", UP)
        result.append({"start_date_time": period.start_date_time, "dimensions": dimensions})
    return result


def _auth_method_down(method: v221.AuthMethod) -> v211.AuthMethod:
    if method is v221.AuthMethod.COMMAND:
        return v211.AuthMethod.AUTH_REQUEST
    return v211.AuthMethod(method.value)


def _used_location(
    location: v221.Location, evse_uid: str, connector_id: str, version: str
) -> tuple[v221.Location, v221.EVSE, v221.Connector]:
    """``location`` with only that EVSE and connector (mod_sessions/mod_cdrs 2.1.1:
    "including only the relevant EVSE and connector")."""
    evse = location.evse(evse_uid)
    if evse is None:
        _fail("evse_uid", f"EVSE {evse_uid!r} is not in Location {location.id!r}", version)
    connector = v221.find_connector(evse, connector_id)
    if connector is None:
        _fail("connector_id", f"connector {connector_id!r} is not on EVSE {evse_uid!r}", version)
    only = location.model_copy(
        update={"evses": [evse.model_copy(update={"connectors": [connector]})]}
    )
    return only, evse, connector


def _embedded_evse(location: v211.Location, path: str) -> tuple[v211.EVSE, v211.Connector]:
    evses = location.evses or []
    if len(evses) != 1 or len(evses[0].connectors) != 1:
        _fail(
            f"{path}.evses",
            "the location should hold exactly the EVSE and connector used",
            UP,
        )
    return evses[0], evses[0].connectors[0]


def _check_token(cdr_token: v221.CdrToken, auth_id: str) -> None:
    if cdr_token.contract_id.upper() != auth_id.upper():
        raise ValueError(
            f"cdr_token.contract_id {cdr_token.contract_id!r} is not the auth_id {auth_id!r}"
        )


def session_to_v211(session: v221.Session, *, location: v221.Location) -> v211.Session:
    """``location``: the Location of ``session.location_id``, as the CPO publishes it."""
    used, _, _ = _used_location(location, session.evse_uid, session.connector_id, DOWN)
    data: dict[str, Any] = {
        "id": session.id,
        "start_datetime": session.start_date_time,
        "end_datetime": session.end_date_time,
        "kwh": session.kwh,
        "auth_id": session.cdr_token.contract_id,
        "auth_method": _auth_method_down(session.auth_method),
        "location": location_to_v211(used).to_wire(),
        "meter_id": session.meter_id,
        "currency": session.currency,
        "charging_periods": _periods_down(session.charging_periods),
        "total_cost": None if session.total_cost is None else session.total_cost.excl_vat,
        "status": (
            v211.SessionStatus.PENDING
            if session.status is v221.SessionStatus.RESERVATION
            else session.status.value
        ),
        "last_updated": session.last_updated,
    }
    return _build(v211.Session, _present(data), "", DOWN)


def session_from_v211(
    session: v211.Session,
    *,
    country_code: str,
    party_id: str,
    cdr_token: v221.CdrToken,
) -> v221.Session:
    """``country_code``/``party_id``: the CPO's; ``cdr_token``: the token whose
    ``contract_id`` is the session's ``auth_id`` (ValueError if it is not)."""
    _check_token(cdr_token, session.auth_id)
    evse, connector = _embedded_evse(session.location, "location")
    data: dict[str, Any] = {
        "country_code": country_code,
        "party_id": party_id,
        "id": session.id,
        "start_date_time": session.start_datetime,
        "end_date_time": session.end_datetime,
        "kwh": session.kwh,
        "cdr_token": cdr_token.to_wire(),
        "auth_method": session.auth_method.value,
        "location_id": session.location.id,
        "evse_uid": evse.uid,
        "connector_id": connector.id,
        "meter_id": session.meter_id,
        "currency": session.currency,
        "charging_periods": _periods_up(session.charging_periods, "charging_periods"),
        "total_cost": None if session.total_cost is None else {"excl_vat": session.total_cost},
        "status": session.status.value,
        "last_updated": session.last_updated,
    }
    return _build(v221.Session, _present(data), "", UP)


def cdr_to_v211(cdr: v221.CDR, *, location: v221.Location) -> v211.CDR:
    """``location``: the Location of ``cdr.cdr_location.id`` (for what a CdrLocation
    lacks: the EVSE's status, the connector's voltage...); the CDR's own address,
    coordinates, evse_id and connector description win."""
    if cdr.credit:
        _fail("credit", "a credit CDR would read as a new charge in 2.1.1", DOWN)
    place = cdr.cdr_location
    used, _, _ = _used_location(location, place.evse_uid, place.connector_id, DOWN)
    embedded = location_to_v211(used).to_wire()
    embedded.update(
        id=place.id,
        address=place.address,
        city=place.city,
        postal_code=place.postal_code or "",
        country=place.country,
        coordinates=_geo_down(place.coordinates.to_wire()),
    )
    embedded.pop("name", None)
    if place.name is not None:
        embedded["name"] = place.name
    (evse,) = embedded["evses"]
    evse["evse_id"] = place.evse_id
    (connector,) = evse["connectors"]
    connector.update(
        standard=place.connector_standard,
        format=place.connector_format,
        power_type=place.connector_power_type,
    )
    periods = _periods_down(cdr.charging_periods)
    data: dict[str, Any] = {
        "id": cdr.id,
        "start_date_time": cdr.start_date_time,
        "stop_date_time": cdr.end_date_time,
        "auth_id": cdr.cdr_token.contract_id,
        "auth_method": _auth_method_down(cdr.auth_method),
        "location": embedded,
        "meter_id": cdr.meter_id,
        "currency": cdr.currency,
        "tariffs": None
        if cdr.tariffs is None
        else [
            tariff_to_v211(t, path=_join("", "tariffs", i)).to_wire()
            for i, t in enumerate(cdr.tariffs)
        ],
        "charging_periods": periods,
        "total_cost": cdr.total_cost.excl_vat,
        "total_energy": cdr.total_energy,
        "total_time": cdr.total_time,
        "total_parking_time": cdr.total_parking_time,
        "remark": cdr.remark,
        "last_updated": cdr.last_updated,
    }
    if not periods:
        _fail("charging_periods", "no period has a dimension 2.1.1 knows", DOWN)
    return _build(v211.CDR, _present(data), "", DOWN)


def cdr_from_v211(
    cdr: v211.CDR, *, country_code: str, party_id: str, cdr_token: v221.CdrToken
) -> v221.CDR:
    """As :func:`session_from_v211`; the tariffs get the same ``country_code`` and
    ``party_id``."""
    _check_token(cdr_token, cdr.auth_id)
    evse, connector = _embedded_evse(cdr.location, "location")
    if evse.evse_id is None:
        _fail("location.evses[0].evse_id", "2.2.1 CdrLocation requires an evse_id", UP)
    place = cdr.location
    cdr_location: dict[str, Any] = {
        "id": place.id,
        "name": place.name,
        "address": place.address,
        "city": place.city,
        "postal_code": place.postal_code or None,
        "country": place.country,
        "coordinates": place.coordinates.to_wire(),
        "evse_uid": evse.uid,
        "evse_id": evse.evse_id,
        "connector_id": connector.id,
        "connector_standard": connector.standard.value,
        "connector_format": connector.format.value,
        "connector_power_type": connector.power_type.value,
    }
    data: dict[str, Any] = {
        "country_code": country_code,
        "party_id": party_id,
        "id": cdr.id,
        "start_date_time": cdr.start_date_time,
        "end_date_time": cdr.stop_date_time,
        "cdr_token": cdr_token.to_wire(),
        "auth_method": cdr.auth_method.value,
        "cdr_location": _present(cdr_location),
        "meter_id": cdr.meter_id,
        "currency": cdr.currency,
        "tariffs": None
        if cdr.tariffs is None
        else [
            tariff_from_v211(
                t, country_code=country_code, party_id=party_id, path=_join("", "tariffs", i)
            ).to_wire()
            for i, t in enumerate(cdr.tariffs)
        ],
        "charging_periods": _periods_up(cdr.charging_periods, "charging_periods"),
        "total_cost": {"excl_vat": cdr.total_cost},
        "total_energy": cdr.total_energy,
        "total_time": cdr.total_time,
        "total_parking_time": cdr.total_parking_time,
        "remark": cdr.remark,
        "last_updated": cdr.last_updated,
    }
    return _build(v221.CDR, _present(data), "", UP)


def _present(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


# ----------------------------------------------------------------- tariffs


def tariff_to_v211(tariff: v221.Tariff, *, path: str = "") -> v211.Tariff:
    if tariff.type is not None and tariff.type != v221.TariffType.REGULAR:
        _fail(_join(path, "type"), f"a {tariff.type} tariff is not for 2.1.1 eMSPs", DOWN)
    for name in ("min_price", "max_price"):
        if getattr(tariff, name) is not None:
            _fail(_join(path, name), "2.1.1 tariffs have no minimum or maximum price", DOWN)
    elements = []
    for i, element in enumerate(tariff.elements):
        restrictions = element.restrictions
        if restrictions is not None:
            if restrictions.reservation is not None:
                continue  # prices a reservation, which 2.1.1 tariffs do not
            for name in ("min_current", "max_current"):
                if getattr(restrictions, name) is not None:
                    where = _join(path, "elements", i, "restrictions", name)
                    _fail(where, "2.1.1 tariffs have no current restrictions", DOWN)
        wire = element.to_wire()
        for component in wire["price_components"]:
            component.pop("vat", None)
        elements.append(wire)
    if not elements:
        _fail(_join(path, "elements"), "only reservation elements, which 2.1.1 lacks", DOWN)
    data = tariff.to_wire()
    for name in ("country_code", "party_id", "type", "start_date_time", "end_date_time"):
        data.pop(name, None)
    data["elements"] = elements
    if "energy_mix" in data:
        data["energy_mix"] = _energy_mix_down(data["energy_mix"])
    return _build(v211.Tariff, data, path, DOWN)


def tariff_from_v211(
    tariff: v211.Tariff, *, country_code: str, party_id: str, path: str = ""
) -> v221.Tariff:
    data = tariff.to_wire()
    data["country_code"] = country_code
    data["party_id"] = party_id
    if "energy_mix" in data:
        data["energy_mix"] = _energy_mix_up(data["energy_mix"])
    return _build(v221.Tariff, data, path, UP)


# ------------------------------------------------------------------ tokens


def token_to_v211(token: v221.Token, *, path: str = "") -> v211.Token:
    data = token.to_wire()
    for name in ("country_code", "party_id", "group_id", "default_profile_type", "energy_contract"):
        data.pop(name, None)
    data["auth_id"] = data.pop("contract_id")
    if data["type"] not in _values(v211.TokenType):
        data["type"] = v211.TokenType.OTHER  # AD_HOC_USER, APP_USER: 2.2 additions
    return _build(v211.Token, data, path, DOWN)


def token_from_v211(
    token: v211.Token, *, country_code: str, party_id: str, path: str = ""
) -> v221.Token:
    """``country_code``/``party_id``: the eMSP's (from its 2.1.1 credentials)."""
    data = token.to_wire()
    data["country_code"] = country_code
    data["party_id"] = party_id
    data["contract_id"] = data.pop("auth_id")
    return _build(v221.Token, data, path, UP)


def location_references_to_v211(refs: v221.LocationReferences) -> v211.LocationReferences:
    return _build(v211.LocationReferences, refs.to_wire(), "", DOWN)


def location_references_from_v211(refs: v211.LocationReferences) -> v221.LocationReferences:
    data = refs.to_wire()
    data.pop("connector_ids", None)  # 2.2 removed them
    return _build(v221.LocationReferences, data, "", UP)


def authorization_info_to_v211(info: v221.AuthorizationInfo) -> v211.AuthorizationInfo:
    data = info.to_wire()
    data.pop("token", None)
    data.pop("authorization_reference", None)
    return _build(v211.AuthorizationInfo, data, "", DOWN)


def authorization_info_from_v211(
    info: v211.AuthorizationInfo, *, token: v221.Token
) -> v221.AuthorizationInfo:
    """``token``: the Token the authorization was asked for (2.2.1 echoes it)."""
    data = info.to_wire()
    data["token"] = token.to_wire()
    if info.location is not None:
        data["location"] = location_references_from_v211(info.location).to_wire()
    return _build(v221.AuthorizationInfo, data, "", UP)


# ---------------------------------------------------------------- commands

Command221 = (
    v221.CancelReservation
    | v221.ReserveNow
    | v221.StartSession
    | v221.StopSession
    | v221.UnlockConnector
)
Command211 = v211.ReserveNow | v211.StartSession | v211.StopSession | v211.UnlockConnector


def command_to_v211(command: Command221) -> Command211:
    if isinstance(command, v221.CancelReservation):
        _fail("command", "2.1.1 has no CANCEL_RESERVATION command", DOWN)
    data = command.to_wire()
    data.pop("authorization_reference", None)
    if isinstance(command, v221.ReserveNow | v221.StartSession):
        data["token"] = token_to_v211(command.token, path="token").to_wire()
    if isinstance(command, v221.ReserveNow):
        text = command.reservation_id
        if not text.isdigit() or str(int(text)) != text:
            _fail("reservation_id", f"{text!r} is not a plain integer (2.1.1: int)", DOWN)
        data["reservation_id"] = int(text)
        return _build(v211.ReserveNow, data, "", DOWN)
    if isinstance(command, v221.StartSession):
        data.pop("connector_id", None)
        return _build(v211.StartSession, data, "", DOWN)
    if isinstance(command, v221.StopSession):
        return _build(v211.StopSession, data, "", DOWN)
    return _build(v211.UnlockConnector, data, "", DOWN)


def command_from_v211(command: Command211, *, country_code: str, party_id: str) -> Command221:
    """``country_code``/``party_id``: the eMSP's, for the command's Token."""
    data = command.to_wire()
    if isinstance(command, v211.ReserveNow | v211.StartSession):
        data["token"] = token_from_v211(
            command.token, country_code=country_code, party_id=party_id, path="token"
        ).to_wire()
    if isinstance(command, v211.ReserveNow):
        data["reservation_id"] = str(command.reservation_id)
        return _build(v221.ReserveNow, data, "", UP)
    if isinstance(command, v211.StartSession):
        return _build(v221.StartSession, data, "", UP)
    if isinstance(command, v211.StopSession):
        return _build(v221.StopSession, data, "", UP)
    return _build(v221.UnlockConnector, data, "", UP)


def command_response_to_v211(response: v221.CommandResponse) -> v211.CommandResponse:
    """The CPO's direct answer; ``timeout`` and ``message`` are dropped."""
    return v211.CommandResponse(result=v211.CommandResponseType(response.result.value))


def command_response_from_v211(
    response: v211.CommandResponse, *, timeout: int
) -> v221.CommandResponse:
    """``timeout``: the seconds the sender will wait for the result (2.2.1 requires
    one; 2.1.1 does not say)."""
    result = response.result.value
    if result == "TIMEOUT":
        result = "REJECTED"  # 2.2 moved TIMEOUT to CommandResult
    return v221.CommandResponse(result=v221.CommandResponseType(result), timeout=timeout)


_RESULT_KEPT = frozenset({"ACCEPTED", "REJECTED", "TIMEOUT", "NOT_SUPPORTED"})


def command_result_to_v211(result: v221.CommandResult) -> v211.CommandResponse:
    """The Charge Point's result, POSTed to the response_url: 2.1.1 sends a
    CommandResponse there."""
    value = result.result.value
    return v211.CommandResponse(
        result=v211.CommandResponseType(value if value in _RESULT_KEPT else "REJECTED")
    )


def command_result_from_v211(response: v211.CommandResponse) -> v221.CommandResult:
    value = response.result.value
    return v221.CommandResult(
        result=v221.CommandResultType(value if value in _RESULT_KEPT else "REJECTED")
    )


# ------------------------------------------------------------- credentials


def credentials_to_v211(
    credentials: v221.Credentials, *, role: v221.Role | None = None
) -> v211.Credentials:
    """The party of ``role`` (or of the one role there is) as the 2.1.1 party."""
    roles = [r for r in credentials.roles if role is None or r.role == role]
    if len(roles) != 1:
        wanted = "the one role" if role is None else f"one {role} role"
        _fail("roles", f"2.1.1 credentials carry one party; {wanted} was not found", DOWN)
    (party,) = roles
    data = {
        "token": credentials.token,
        "url": credentials.url,
        "business_details": party.business_details.to_wire(),
        "party_id": party.party_id,
        "country_code": party.country_code,
    }
    return _build(v211.Credentials, data, "", DOWN)


def credentials_from_v211(credentials: v211.Credentials, *, role: v221.Role) -> v221.Credentials:
    """``role``: what the 2.1.1 party is to us (CPO or EMSP: 2.1.1 does not say)."""
    data = {
        "token": credentials.token,
        "url": credentials.url,
        "roles": [
            {
                "role": role,
                "business_details": credentials.business_details.to_wire(),
                "party_id": credentials.party_id,
                "country_code": credentials.country_code,
            }
        ],
    }
    return _build(v221.Credentials, data, "", UP)


# ---------------------------------------------------------------- versions

_SENDER, _RECEIVER = v221.InterfaceRole.SENDER, v221.InterfaceRole.RECEIVER
# The interface a CPO's 2.1.1 endpoint of each module is (2.2.1 version details);
# an eMSP's is the other one, credentials aside.
_CPO_INTERFACES = {
    "cdrs": _SENDER,
    "commands": _RECEIVER,
    "credentials": _SENDER,
    "locations": _SENDER,
    "sessions": _SENDER,
    "tariffs": _SENDER,
    "tokens": _RECEIVER,
}


def version_details_to_v211(details: v221.VersionDetails) -> v211.VersionDetails:
    endpoints: dict[str, dict[str, Any]] = {}
    for endpoint in details.endpoints:
        endpoints.setdefault(
            str(endpoint.identifier), {"identifier": endpoint.identifier, "url": endpoint.url}
        )
    data = {"version": details.version, "endpoints": list(endpoints.values())}
    return _build(v211.VersionDetails, data, "", DOWN)


def version_details_from_v211(
    details: v211.VersionDetails, *, party_role: v221.Role
) -> v221.VersionDetails:
    """``party_role``: CPO or EMSP, the role of the party whose endpoints these are."""
    endpoints = []
    for endpoint in details.endpoints:
        interface = _CPO_INTERFACES.get(str(endpoint.identifier), _SENDER)
        if party_role != v221.Role.CPO and endpoint.identifier != "credentials":
            interface = _RECEIVER if interface is _SENDER else _SENDER
        endpoints.append(
            {"identifier": endpoint.identifier, "role": interface, "url": endpoint.url}
        )
    return _build(v221.VersionDetails, {"version": details.version, "endpoints": endpoints}, "", UP)
