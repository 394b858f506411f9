"""Conversions between OCPI 2.3.0 (:mod:`ocpi.v230`) and the internal form, the 2.2.1
models (:mod:`ocpi.v221`). Pure functions, both ways, for every object that exists in
both versions; ``*_to_v230`` go from the internal form to 2.3.0, ``*_from_v230`` back.

Sources: the 2.3.0 changelog ("Changes between 2.2.1-d2 and 2.3.0"), the spec text of
branch release-2.3.0-bugfixes and the 2.3.0 OpenAPI files. Everything the table below
does not name is carried over unchanged (same names, same meaning). An object that
cannot be expressed in the target version raises
:class:`~ocpi.versions.NotExpressible` naming the field.

Lossy mappings: "down" is 2.3.0 -> 2.2.1 (``*_from_v230``), "up" is 2.2.1 -> 2.3.0
(``*_to_v230``); NE = raises NotExpressible. Notes after the table.

| 2.3.0 field                     | down (to 2.2.1)                   | up (to 2.3.0)           |
|---------------------------------|-----------------------------------|-------------------------|
| Price.before_taxes              | ``excl_vat``                      | from ``excl_vat``       |
| Price.taxes (1)                 | incl_vat = before_taxes + taxes   | one "VAT" tax           |
| Tariff.tax_included (2)         | YES: NE; NO, N/A: dropped         | NO or N/A, from ``vat`` |
| Tariff.min_price, max_price     | before/after_taxes: excl/incl_vat | renamed back            |
| Tariff.preauthorize_amount      | dropped                           | absent                  |
| TariffRestrictions.booking (3)  | element left out; none left: NE   | absent                  |
| CDR.tariffs                     | tariffs that are NE left out      | each converted          |
| CDR.booking_id                  | dropped                           | absent                  |
| Location.parking_places         | dropped                           | absent                  |
| Location.help_phone             | dropped                           | absent                  |
| EVSE.parking                    | dropped                           | absent                  |
| EVSE.accepted_service_providers | dropped                           | absent                  |
| Connector.capabilities          | dropped                           | absent                  |
| Credentials.hub_party_id (4)    | a HUB role, listed first          | from the HUB role       |
| ClientInfo.role                 | unchanged                         | HUB: NE                 |
| enum values new in 2.3.0 (5)    | kept as strings                   | the 2.3.0 member        |
| CdrDimensionType, TariffType    | unchanged                         | unknown value: NE (6)   |

1. Session.total_cost, SessionPatch.total_cost, CDR.total_*_cost. Each tax's name,
   account_number and percentage are lost; no ``taxes``: no ``incl_vat``. Up: one
   TaxAmount named "VAT" of ``incl_vat - excl_vat`` (no percentage), none without
   ``incl_vat``. So ``taxes`` comes back unchanged only when it was one "VAT" tax.
2. 2.2.1 tariff prices always exclude VAT, so tax-included prices cannot be expressed.
   Up: NO when a PriceComponent has a ``vat``, else N/A (2.2.1: no vat = no VAT applies);
   a 2.3.0 NO tariff without ``vat`` reads in 2.2.1 as "no VAT applies".
3. An element with a booking restriction prices a booking (Bookings module, in the 2.3.0
   OpenAPI files); 2.2.1 would apply it to every session.
4. Down: the HUB role's business details are ``hub_business_details`` when given, else
   a name equal to the hub_party_id; the other roles are kept. Up: the HUB role's business
   details are lost; two HUB roles: NE; a HUB role alone: the parties the hub reaches must
   be given (``reachable``), else NE (a 2.3.0 hub lists them as roles).
5. ConnectorType MCS and SAE_J3400, ParkingRestriction EMPLOYEES, TAXIS and TENANTS,
   TokenType EMAID, CdrDimensionType RESERVATION_EXPIRES and RESERVATION_OVERTIME, and
   custom OpenEnum values: the internal form reads these enums as open (the 2.2.1 OpenAPI
   marks them open-enum), so they are kept; a strict 2.2.1 receiver may refuse them
   (:data:`NEW_ENUM_VALUES` lists them for the caller that must filter).
6. Closed in 2.3.0 (open in the 2.2.1 OpenAPI): a custom value in the internal form.

PATCH bodies (:func:`patch_to_v230`, :func:`patch_from_v230`) follow the same table for
the fields present; a 2.3.0 PATCH of only new fields becomes one of ``last_updated``.
:data:`LOSSY` holds the table's rows as data (the tests check it against the conversions
and this text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

import ocpi.v221 as v221
import ocpi.v230 as v230
from ocpi.transport import field_path
from ocpi.versions import NotExpressible

__all__ = [
    "LOSSY",
    "NEW_ENUM_VALUES",
    "NOT_EXPRESSIBLE",
    "authorization_info_from_v230",
    "authorization_info_to_v230",
    "cdr_from_v230",
    "cdr_to_v230",
    "charging_profile_from_v230",
    "charging_profile_to_v230",
    "client_info_from_v230",
    "client_info_to_v230",
    "command_from_v230",
    "command_to_v230",
    "connector_from_v230",
    "connector_to_v230",
    "credentials_from_v230",
    "credentials_to_v230",
    "evse_from_v230",
    "evse_to_v230",
    "from_v230",
    "location_from_v230",
    "location_to_v230",
    "patch_from_v230",
    "patch_to_v230",
    "session_from_v230",
    "session_to_v230",
    "tariff_from_v230",
    "tariff_to_v230",
    "to_v230",
    "token_from_v230",
    "token_to_v230",
]

V221 = "2.2.1"
V230 = "2.3.0"

M = TypeVar("M", bound=BaseModel)
Data = dict[str, Any]

LOSSY: tuple[tuple[str, str, str], ...] = (
    ("Price", "taxes", "summed into incl_vat; back as one VAT TaxAmount"),
    ("Tariff", "tax_included", "YES not expressible; derived from PriceComponent.vat"),
    ("Tariff", "preauthorize_amount", "dropped"),
    ("Tariff", "elements", "elements with a booking restriction left out"),
    ("CDR", "tariffs", "tariffs that cannot be expressed left out"),
    ("CDR", "booking_id", "dropped"),
    ("Location", "parking_places", "dropped"),
    ("Location", "help_phone", "dropped"),
    ("EVSE", "parking", "dropped"),
    ("EVSE", "accepted_service_providers", "dropped"),
    ("Connector", "capabilities", "dropped"),
)
"""``(2.3.0 object, field, what happens)`` for each field of a 2.3.0 object that does not
come back unchanged from 2.3.0 -> 2.2.1 -> 2.3.0 (patch models: the same fields)."""

NOT_EXPRESSIBLE: tuple[tuple[str, str, str], ...] = (
    ("Tariff", "tax_included", "YES: 2.2.1 tariff prices exclude VAT"),
    ("Tariff", "elements", "every element prices a booking"),
    ("Credentials", "roles", "two HUB roles, or a HUB role and no other party"),
    ("ClientInfo", "role", "HUB"),
    ("CdrDimension", "type", "a value 2.3.0 does not define"),
    ("Tariff", "type", "a value 2.3.0 does not define"),
)
"""``(object, field, when)``: what raises :class:`NotExpressible`."""

NEW_ENUM_VALUES: dict[str, frozenset[str]] = {
    "ConnectorType": frozenset({"MCS", "SAE_J3400"}),
    "ParkingRestriction": frozenset({"EMPLOYEES", "TAXIS", "TENANTS"}),
    "TokenType": frozenset({"EMAID"}),
    "CdrDimensionType": frozenset({"RESERVATION_EXPIRES", "RESERVATION_OVERTIME"}),
}
"""Values 2.3.0 defines and 2.2.1 does not, per enum (all of them enums the internal form
reads as open): what a strict 2.2.1 receiver would refuse."""

_HUB = "HUB"


# ---------------------------------------------------------------- machinery


def _dump(obj: BaseModel) -> Data:
    """Python values (enum members, Decimal, datetime), unset fields left out."""
    return obj.model_dump(mode="python", exclude_none=True)


def _build(model: type[M], data: Data, version: str) -> M:
    """``model`` from ``data``; a value the target version cannot hold (a closed enum's
    unknown value, say) raises NotExpressible naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        field = field_path(first["loc"]) or model.__name__
        message = str(first["msg"]).removeprefix("Value error, ")
        raise NotExpressible(field, message, version=version) from None


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# --------------------------------------------------------------------- Price


def _price_up(price: Data) -> Data:
    out: Data = {"before_taxes": price["excl_vat"]}
    if price.get("incl_vat") is not None:
        out["taxes"] = [{"name": "VAT", "amount": price["incl_vat"] - price["excl_vat"]}]
    return out


def _price_down(price: Data) -> Data:
    out: Data = {"excl_vat": price["before_taxes"]}
    taxes = price.get("taxes")
    if taxes is not None:
        out["incl_vat"] = price["before_taxes"] + sum((tax["amount"] for tax in taxes), Decimal(0))
    return out


def _map_prices(data: Data, names: Sequence[str], convert: Callable[[Data], Data]) -> None:
    for name in names:
        if data.get(name) is not None:
            data[name] = convert(data[name])


_CDR_PRICES = (
    "total_cost", "total_fixed_cost", "total_energy_cost", "total_time_cost",
    "total_parking_cost", "total_reservation_cost",
)  # fmt: skip


# ------------------------------------------------------------------- Tariffs


def _limit_up(price: Data) -> Data:
    out: Data = {"before_taxes": price["excl_vat"]}
    if price.get("incl_vat") is not None:
        out["after_taxes"] = price["incl_vat"]
    return out


def _limit_down(limit: Data) -> Data:
    out: Data = {"excl_vat": limit["before_taxes"]}
    if limit.get("after_taxes") is not None:
        out["incl_vat"] = limit["after_taxes"]
    return out


def _tariff_up(data: Data) -> Data:
    _map_prices(data, ("min_price", "max_price"), _limit_up)
    has_vat = any(
        component.get("vat") is not None
        for element in data["elements"]
        for component in element["price_components"]
    )
    # 2.2.1 prices exclude VAT; a component without vat has none (mod_tariffs PriceComponent).
    data["tax_included"] = v230.TaxIncluded.NO if has_vat else v230.TaxIncluded.NOT_APPLICABLE
    return data


def _tariff_down(data: Data, path: str = "") -> Data:
    if data.get("tax_included") == v230.TaxIncluded.YES:
        raise NotExpressible(
            _at(path, "tax_included"),
            "prices include taxes; 2.2.1 tariff prices are always excluding VAT",
            version=V221,
        )
    data.pop("tax_included", None)
    data.pop("preauthorize_amount", None)
    _map_prices(data, ("min_price", "max_price"), _limit_down)
    # An element with a booking restriction prices a booking (2.3.0 Bookings module):
    # 2.2.1 would apply it to every session, so it is left out.
    elements = [
        element
        for element in data["elements"]
        if (element.get("restrictions") or {}).get("booking") is None
    ]
    if not elements:
        raise NotExpressible(
            _at(path, "elements"),
            "every element prices a booking, which 2.2.1 does not have",
            version=V221,
        )
    data["elements"] = elements
    return data


# ----------------------------------------------------------------- Locations


def _connector_down(data: Data) -> Data:
    data.pop("capabilities", None)
    return data


def _evse_down(data: Data) -> Data:
    data.pop("parking", None)
    data.pop("accepted_service_providers", None)
    if data.get("connectors") is not None:
        data["connectors"] = [_connector_down(c) for c in data["connectors"]]
    return data


def _location_down(data: Data) -> Data:
    data.pop("parking_places", None)
    data.pop("help_phone", None)
    if data.get("evses") is not None:
        data["evses"] = [_evse_down(e) for e in data["evses"]]
    return data


# ------------------------------------------------------------ Sessions, CDRs


def _session_up(data: Data) -> Data:
    _map_prices(data, ("total_cost",), _price_up)
    return data


def _session_down(data: Data) -> Data:
    _map_prices(data, ("total_cost",), _price_down)
    return data


def _cdr_up(data: Data) -> Data:
    _map_prices(data, _CDR_PRICES, _price_up)
    if data.get("tariffs") is not None:
        data["tariffs"] = [_tariff_up(t) for t in data["tariffs"]]
    return data


def _cdr_down(data: Data) -> Data:
    _map_prices(data, _CDR_PRICES, _price_down)
    data.pop("booking_id", None)
    if data.get("tariffs") is not None:
        kept = []
        for tariff in data["tariffs"]:
            try:
                kept.append(_tariff_down(tariff))
            except NotExpressible:
                continue  # CDR.tariffs is informative; the CDR itself is still valid
        if kept or not data["tariffs"]:
            data["tariffs"] = kept
        else:
            del data["tariffs"]  # all left out: no list rather than an empty one
    return data


# ------------------------------------------------------- typed conversions


def location_to_v230(location: v221.Location) -> v230.Location:
    return _build(v230.Location, _dump(location), V230)


def location_from_v230(location: v230.Location) -> v221.Location:
    return _build(v221.Location, _location_down(_dump(location)), V221)


def evse_to_v230(evse: v221.EVSE) -> v230.EVSE:
    return _build(v230.EVSE, _dump(evse), V230)


def evse_from_v230(evse: v230.EVSE) -> v221.EVSE:
    return _build(v221.EVSE, _evse_down(_dump(evse)), V221)


def connector_to_v230(connector: v221.Connector) -> v230.Connector:
    return _build(v230.Connector, _dump(connector), V230)


def connector_from_v230(connector: v230.Connector) -> v221.Connector:
    return _build(v221.Connector, _connector_down(_dump(connector)), V221)


def session_to_v230(session: v221.Session) -> v230.Session:
    return _build(v230.Session, _session_up(_dump(session)), V230)


def session_from_v230(session: v230.Session) -> v221.Session:
    return _build(v221.Session, _session_down(_dump(session)), V221)


def cdr_to_v230(cdr: v221.CDR) -> v230.CDR:
    return _build(v230.CDR, _cdr_up(_dump(cdr)), V230)


def cdr_from_v230(cdr: v230.CDR) -> v221.CDR:
    return _build(v221.CDR, _cdr_down(_dump(cdr)), V221)


def tariff_to_v230(tariff: v221.Tariff) -> v230.Tariff:
    return _build(v230.Tariff, _tariff_up(_dump(tariff)), V230)


def tariff_from_v230(tariff: v230.Tariff) -> v221.Tariff:
    return _build(v221.Tariff, _tariff_down(_dump(tariff)), V221)


def token_to_v230(token: v221.Token) -> v230.Token:
    return _build(v230.Token, _dump(token), V230)


def token_from_v230(token: v230.Token) -> v221.Token:
    return _build(v221.Token, _dump(token), V221)


def authorization_info_to_v230(info: v221.AuthorizationInfo) -> v230.AuthorizationInfo:
    return _build(v230.AuthorizationInfo, _dump(info), V230)


def authorization_info_from_v230(info: v230.AuthorizationInfo) -> v221.AuthorizationInfo:
    return _build(v221.AuthorizationInfo, _dump(info), V221)


def client_info_to_v230(info: v221.ClientInfo) -> v230.ClientInfo:
    if info.role is v221.Role.HUB:
        raise NotExpressible(
            "role", "2.3.0 has no HUB role (a hub is Credentials.hub_party_id)", version=V230
        )
    return _build(v230.ClientInfo, _dump(info), V230)


def client_info_from_v230(info: v230.ClientInfo) -> v221.ClientInfo:
    return _build(v221.ClientInfo, _dump(info), V221)


def credentials_to_v230(
    credentials: v221.Credentials, *, reachable: Sequence[v230.CredentialsRole] = ()
) -> v230.Credentials:
    """The HUB role becomes ``hub_party_id``. A 2.3.0 Hub lists the parties it reaches as
    roles (credentials.asciidoc, 2.3.0 note); a 2.2.1 Hub reported them in HubClientInfo
    only, so they are passed as ``reachable`` (appended after the other roles)."""
    data = _dump(credentials)
    hubs = [role for role in data["roles"] if role["role"] == _HUB]
    if len(hubs) > 1:
        raise NotExpressible(
            "roles", "more than one HUB role; 2.3.0 has a single hub_party_id", version=V230
        )
    roles = [role for role in data["roles"] if role["role"] != _HUB]
    roles += [_dump(role) for role in reachable]
    if not roles:
        raise NotExpressible(
            "roles",
            "only a HUB role; 2.3.0 credentials of a Hub list the parties it reaches "
            "(give them as reachable)",
            version=V230,
        )
    data["roles"] = roles
    if hubs:
        data["hub_party_id"] = hubs[0]["country_code"] + hubs[0]["party_id"]
    return _build(v230.Credentials, data, V230)


def credentials_from_v230(
    credentials: v230.Credentials, *, hub_business_details: v221.BusinessDetails | None = None
) -> v221.Credentials:
    """``hub_party_id`` becomes a HUB role, listed first; its business details are
    ``hub_business_details`` when given (2.3.0 does not carry them), else a name equal to
    the hub_party_id. The roles (in 2.3.0 a Hub's are the parties it reaches) are kept."""
    data = _dump(credentials)
    hub = credentials.hub_party()
    data.pop("hub_party_id", None)
    if hub is not None:
        details = (
            _dump(hub_business_details)
            if hub_business_details is not None
            else {"name": credentials.hub_party_id}
        )
        hub_role = {
            "role": _HUB,
            "business_details": details,
            "country_code": hub[0],
            "party_id": hub[1],
        }
        data["roles"] = [hub_role, *data["roles"]]
    return _build(v221.Credentials, data, V221)


# ------------------------------------------- commands, charging profiles, any


_SAME_SHAPE: dict[type[BaseModel], type[BaseModel]] = {
    v221.CancelReservation: v230.CancelReservation,
    v221.ReserveNow: v230.ReserveNow,
    v221.StartSession: v230.StartSession,
    v221.StopSession: v230.StopSession,
    v221.UnlockConnector: v230.UnlockConnector,
    v221.CommandResponse: v230.CommandResponse,
    v221.CommandResult: v230.CommandResult,
    v221.SetChargingProfile: v230.SetChargingProfile,
    v221.ChargingProfile: v230.ChargingProfile,
    v221.ChargingProfilePeriod: v230.ChargingProfilePeriod,
    v221.ActiveChargingProfile: v230.ActiveChargingProfile,
    v221.ChargingProfileResponse: v230.ChargingProfileResponse,
    v221.ActiveChargingProfileResult: v230.ActiveChargingProfileResult,
    v221.ChargingProfileResult: v230.ChargingProfileResult,
    v221.ClearProfileResult: v230.ClearProfileResult,
    v221.ChargingPreferences: v230.ChargingPreferences,
    v221.LocationReferences: v230.LocationReferences,
    v221.CdrToken: v230.CdrToken,
    v221.DisplayText: v230.DisplayText,
    v221.BusinessDetails: v230.BusinessDetails,
}
"""Objects whose 2.2.1 and 2.3.0 shapes are the same (nested objects included)."""

_SAME_SHAPE_BACK = {new: old for old, new in _SAME_SHAPE.items()}

Command221 = (
    v221.CancelReservation | v221.ReserveNow | v221.StartSession | v221.StopSession
    | v221.UnlockConnector | v221.CommandResponse | v221.CommandResult
)  # fmt: skip
Command230 = (
    v230.CancelReservation | v230.ReserveNow | v230.StartSession | v230.StopSession
    | v230.UnlockConnector | v230.CommandResponse | v230.CommandResult
)  # fmt: skip
Profile221 = (
    v221.SetChargingProfile | v221.ChargingProfile | v221.ActiveChargingProfile
    | v221.ChargingProfileResponse | v221.ActiveChargingProfileResult
    | v221.ChargingProfileResult | v221.ClearProfileResult
)  # fmt: skip
Profile230 = (
    v230.SetChargingProfile | v230.ChargingProfile | v230.ActiveChargingProfile
    | v230.ChargingProfileResponse | v230.ActiveChargingProfileResult
    | v230.ChargingProfileResult | v230.ClearProfileResult
)  # fmt: skip


def command_to_v230(command: Command221) -> Command230:
    """A command request (StartSession...), CommandResponse or CommandResult."""
    return cast(Command230, _build(_SAME_SHAPE[type(command)], _dump(command), V230))


def command_from_v230(command: Command230) -> Command221:
    return cast(Command221, _build(_SAME_SHAPE_BACK[type(command)], _dump(command), V221))


def charging_profile_to_v230(obj: Profile221) -> Profile230:
    """Any ChargingProfiles module object."""
    return cast(Profile230, _build(_SAME_SHAPE[type(obj)], _dump(obj), V230))


def charging_profile_from_v230(obj: Profile230) -> Profile221:
    return cast(Profile221, _build(_SAME_SHAPE_BACK[type(obj)], _dump(obj), V221))


# PATCH bodies: only the fields present, ``None`` (a field set to null) kept.
_PATCHES: dict[type[BaseModel], tuple[type[BaseModel], Callable[[Data], Data]]] = {
    v221.LocationPatch: (v230.LocationPatch, lambda d: d),
    v221.EVSEPatch: (v230.EVSEPatch, lambda d: d),
    v221.ConnectorPatch: (v230.ConnectorPatch, lambda d: d),
    v221.SessionPatch: (v230.SessionPatch, _session_up),
    v221.TokenPatch: (v230.TokenPatch, lambda d: d),
}
_PATCHES_BACK: dict[type[BaseModel], tuple[type[BaseModel], Callable[[Data], Data]]] = {
    v230.LocationPatch: (v221.LocationPatch, _location_down),
    v230.EVSEPatch: (v221.EVSEPatch, _evse_down),
    v230.ConnectorPatch: (v221.ConnectorPatch, _connector_down),
    v230.SessionPatch: (v221.SessionPatch, _session_down),
    v230.TokenPatch: (v221.TokenPatch, lambda d: d),
}


def _convert_patch(
    patch: BaseModel, target: type[BaseModel], convert: Callable[[Data], Data], version: str
) -> BaseModel:
    present = cast(v221.OcpiPatch | v230.OcpiPatch, patch).to_wire()
    # A field set to null clears it; the target ignores nulls of fields it does not have.
    nulls = {name: None for name, value in present.items() if value is None}
    values = convert({name: value for name, value in present.items() if value is not None})
    return _build(target, values | nulls, version)


def patch_to_v230(patch: v221.OcpiPatch) -> v230.OcpiPatch:
    """A 2.2.1 PATCH body (LocationPatch, EVSEPatch, ConnectorPatch, SessionPatch,
    TokenPatch) in 2.3.0: only its present fields, nulls kept."""
    target, convert = _PATCHES[type(patch)]
    return cast(v230.OcpiPatch, _convert_patch(patch, target, convert, V230))


def patch_from_v230(patch: v230.OcpiPatch) -> v221.OcpiPatch:
    """A 2.3.0 PATCH body in 2.2.1; fields new in 2.3.0 are dropped."""
    target, convert = _PATCHES_BACK[type(patch)]
    return cast(v221.OcpiPatch, _convert_patch(patch, target, convert, V221))


_TYPED_UP: dict[type[BaseModel], Callable[[Any], BaseModel]] = {
    v221.Location: location_to_v230,
    v221.EVSE: evse_to_v230,
    v221.Connector: connector_to_v230,
    v221.Session: session_to_v230,
    v221.CDR: cdr_to_v230,
    v221.Tariff: tariff_to_v230,
    v221.Token: token_to_v230,
    v221.AuthorizationInfo: authorization_info_to_v230,
    v221.ClientInfo: client_info_to_v230,
    v221.Credentials: credentials_to_v230,
}
_TYPED_DOWN: dict[type[BaseModel], Callable[[Any], BaseModel]] = {
    v230.Location: location_from_v230,
    v230.EVSE: evse_from_v230,
    v230.Connector: connector_from_v230,
    v230.Session: session_from_v230,
    v230.CDR: cdr_from_v230,
    v230.Tariff: tariff_from_v230,
    v230.Token: token_from_v230,
    v230.AuthorizationInfo: authorization_info_from_v230,
    v230.ClientInfo: client_info_from_v230,
    v230.Credentials: credentials_from_v230,
}


def to_v230(obj: BaseModel) -> BaseModel:
    """Any 2.2.1 object that exists in 2.3.0 (the hub's generic path); raises TypeError
    for an object of another kind."""
    kind = type(obj)
    if kind in _TYPED_UP:
        return _TYPED_UP[kind](obj)
    if kind in _PATCHES:
        return patch_to_v230(cast(v221.OcpiPatch, obj))
    if kind in _SAME_SHAPE:
        return _build(_SAME_SHAPE[kind], _dump(obj), V230)
    raise TypeError(f"no 2.3.0 conversion for {kind.__qualname__}")


def from_v230(obj: BaseModel) -> BaseModel:
    """Any 2.3.0 object that exists in 2.2.1 in the internal form; raises TypeError for
    one that does not (the Payments objects, say)."""
    kind = type(obj)
    if kind in _TYPED_DOWN:
        return _TYPED_DOWN[kind](obj)
    if kind in _PATCHES_BACK:
        return patch_from_v230(cast(v230.OcpiPatch, obj))
    if kind in _SAME_SHAPE_BACK:
        return _build(_SAME_SHAPE_BACK[kind], _dump(obj), V221)
    raise TypeError(f"no 2.2.1 form of {kind.__qualname__}")
