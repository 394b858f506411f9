"""OCPI 2.3.0 Locations module objects (mod_locations.asciidoc).

Field lengths follow the release-2.3.0-bugfixes text of the spec: ``Location.address``
is string(255) and ``Location.state`` string(45) (the OpenAPI description in ``../shared``
says 45 and 20; the spec carries an erratum note).

New in 2.3.0: ``Location.parking_places`` (:class:`Parking`, for the EU AFIR reports to
National Access Points) and ``help_phone``; ``EVSE.parking`` (:class:`EVSEParking`
references into ``parking_places``) and ``accepted_service_providers``;
``Connector.capabilities`` (:class:`ConnectorCapability`, Plug & Charge).
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from ocpi.v230.enums import (
    Capability,
    CapabilityValue,
    ConnectorCapability,
    ConnectorCapabilityValue,
    ConnectorFormat,
    ConnectorType,
    ConnectorTypeValue,
    EnergySourceCategory,
    EnvironmentalImpactCategory,
    EnvironmentalImpactCategoryValue,
    EVSEPosition,
    Facility,
    FacilityValue,
    ParkingDirection,
    ParkingRestriction,
    ParkingRestrictionValue,
    ParkingType,
    ParkingTypeValue,
    PowerType,
    Status,
    TokenTypeValue,
    VehicleType,
    VehicleTypeValue,
)
from ocpi.v230.types import (
    ASCII,
    URL,
    Bool,
    BusinessDetails,
    CiString36,
    CountryCode,
    DateTime,
    DisplayText,
    Image,
    ImageCategory,
    Int,
    Max,
    Number,
    OcpiModel,
    OcpiPatch,
    PartyIdStr,
)

__all__ = [
    "EVSE",
    "AdditionalGeoLocation",
    "BusinessDetails",
    "Capability",
    "Connector",
    "ConnectorCapability",
    "ConnectorFormat",
    "ConnectorPatch",
    "ConnectorType",
    "EVSEParking",
    "EVSEPatch",
    "EVSEPosition",
    "EnergyMix",
    "EnergySource",
    "EnergySourceCategory",
    "EnvironmentalImpact",
    "EnvironmentalImpactCategory",
    "ExceptionalPeriod",
    "Facility",
    "GeoLocation",
    "Hours",
    "Image",
    "ImageCategory",
    "Location",
    "LocationPatch",
    "Parking",
    "ParkingDirection",
    "ParkingRestriction",
    "ParkingType",
    "PowerType",
    "PublishTokenType",
    "RegularHours",
    "Status",
    "StatusSchedule",
    "VehicleType",
]

Latitude = Annotated[str, StringConstraints(max_length=10, pattern=r"^-?[0-9]{1,2}\.[0-9]{5,7}$")]
Longitude = Annotated[str, StringConstraints(max_length=11, pattern=r"^-?[0-9]{1,3}\.[0-9]{5,7}$")]
HourMinute = Annotated[str, StringConstraints(pattern=r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")]


class GeoLocation(OcpiModel):
    """WGS 84 coordinates as decimal-degree strings (5 to 7 decimals)."""

    latitude: Latitude
    longitude: Longitude


class AdditionalGeoLocation(OcpiModel):
    latitude: Latitude
    longitude: Longitude
    name: DisplayText | None = None


class PublishTokenType(OcpiModel):
    """A token a non-published Location may be shown to. The spec asks for at least one
    of uid, visual_number or group_id (uid with type, visual_number with issuer); this
    model does not refuse objects that miss those combinations."""

    uid: CiString36 | None = None
    type: TokenTypeValue | None = None
    visual_number: Annotated[str, Max(64)] | None = None
    issuer: Annotated[str, Max(64)] | None = None
    group_id: CiString36 | None = None


class RegularHours(OcpiModel):
    weekday: Annotated[Int, Field(ge=1, le=7)]
    period_begin: HourMinute
    period_end: HourMinute


class ExceptionalPeriod(OcpiModel):
    period_begin: DateTime
    period_end: DateTime


class Hours(OcpiModel):
    twentyfourseven: Bool
    regular_hours: list[RegularHours] | None = None
    exceptional_openings: list[ExceptionalPeriod] | None = None
    exceptional_closings: list[ExceptionalPeriod] | None = None


class EnergySource(OcpiModel):
    source: EnergySourceCategory
    percentage: Number


class EnvironmentalImpact(OcpiModel):
    category: EnvironmentalImpactCategoryValue
    amount: Number


class EnergyMix(OcpiModel):
    is_green_energy: Bool
    energy_sources: list[EnergySource] | None = None
    environ_impact: list[EnvironmentalImpact] | None = None
    supplier_name: Annotated[str, Max(64)] | None = None
    energy_product_name: Annotated[str, Max(64)] | None = None


class StatusSchedule(OcpiModel):
    period_begin: DateTime
    period_end: DateTime | None = None
    status: Status


class Parking(OcpiModel):
    """A parking space a vehicle can use while charging (new in 2.3.0). Lengths and
    heights in centimetres, weight in kilograms, ``time_limit`` in minutes."""

    id: CiString36
    physical_reference: Annotated[str, Max(12)] | None = None
    vehicle_types: Annotated[list[VehicleTypeValue], Field(min_length=1)]
    max_vehicle_weight: Number | None = None
    max_vehicle_height: Number | None = None
    max_vehicle_length: Number | None = None
    max_vehicle_width: Number | None = None
    parking_space_length: Number | None = None
    parking_space_width: Number | None = None
    dangerous_goods_allowed: Bool | None = None
    direction: ParkingDirection | None = None
    drive_through: Bool | None = None
    restricted_to_type: Bool
    reservation_required: Bool
    time_limit: Number | None = None
    roofed: Bool | None = None
    images: list[Image] | None = None
    lighting: Bool | None = None
    refrigeration_outlet: Bool | None = None
    standards: list[CiString36] | None = None
    apds_reference: CiString36 | None = None


class EVSEParking(OcpiModel):
    """An EVSE's reference to one of its Location's ``parking_places`` (new in 2.3.0)."""

    parking_id: CiString36
    evse_position: EVSEPosition | None = None


HelpPhone = Annotated[str, Max(25), ASCII]
ServiceProvider = Annotated[str, Max(50)]


class Connector(OcpiModel):
    id: CiString36
    standard: ConnectorTypeValue
    format: ConnectorFormat
    power_type: PowerType
    max_voltage: Int
    max_amperage: Int
    max_electric_power: Int | None = None
    tariff_ids: list[CiString36] | None = None
    terms_and_conditions: URL | None = None
    capabilities: list[ConnectorCapabilityValue] | None = None
    last_updated: DateTime


class EVSE(OcpiModel):
    uid: CiString36
    evse_id: Annotated[str, Max(48), ASCII] | None = None
    status: Status
    status_schedule: list[StatusSchedule] | None = None
    capabilities: list[CapabilityValue] | None = None
    connectors: Annotated[list[Connector], Field(min_length=1)]
    floor_level: Annotated[str, Max(4)] | None = None
    coordinates: GeoLocation | None = None
    physical_reference: Annotated[str, Max(16)] | None = None
    directions: list[DisplayText] | None = None
    parking_restrictions: list[ParkingRestrictionValue] | None = None
    parking: list[EVSEParking] | None = None
    images: list[Image] | None = None
    accepted_service_providers: list[ServiceProvider] | None = None
    last_updated: DateTime


class Location(OcpiModel):
    country_code: CountryCode
    party_id: PartyIdStr
    id: CiString36
    publish: Bool
    publish_allowed_to: list[PublishTokenType] | None = None
    name: Annotated[str, Max(255)] | None = None
    address: Annotated[str, Max(255)]
    city: Annotated[str, Max(45)]
    postal_code: Annotated[str, Max(10)] | None = None
    state: Annotated[str, Max(45)] | None = None
    country: Annotated[str, Max(3, min_length=3)]
    coordinates: GeoLocation
    related_locations: list[AdditionalGeoLocation] | None = None
    parking_type: ParkingTypeValue | None = None
    evses: list[EVSE] | None = None
    parking_places: list[Parking] | None = None
    help_phone: HelpPhone | None = None
    directions: list[DisplayText] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[FacilityValue] | None = None
    time_zone: Annotated[str, Max(255)]
    opening_times: Hours | None = None
    charging_when_closed: Bool | None = None
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
    last_updated: DateTime

    def evse(self, evse_uid: str) -> EVSE | None:
        """The EVSE with this uid (a CiString: compared case-insensitively)."""
        wanted = evse_uid.upper()
        for evse in self.evses or ():
            if evse.uid.upper() == wanted:
                return evse
        return None


def find_connector(evse: EVSE, connector_id: str) -> Connector | None:
    """The connector of ``evse`` with this id (case-insensitive)."""
    wanted = connector_id.upper()
    for connector in evse.connectors:
        if connector.id.upper() == wanted:
            return connector
    return None


# ------------------------------------------------------------------------ PATCH


class ConnectorPatch(OcpiPatch):
    identity_fields: ClassVar[tuple[str, ...]] = ("id",)

    id: CiString36 | None = None
    standard: ConnectorTypeValue | None = None
    format: ConnectorFormat | None = None
    power_type: PowerType | None = None
    max_voltage: Int | None = None
    max_amperage: Int | None = None
    max_electric_power: Int | None = None
    tariff_ids: list[CiString36] | None = None
    terms_and_conditions: URL | None = None
    capabilities: list[ConnectorCapabilityValue] | None = None


class EVSEPatch(OcpiPatch):
    identity_fields: ClassVar[tuple[str, ...]] = ("uid",)

    uid: CiString36 | None = None
    evse_id: Annotated[str, Max(48), ASCII] | None = None
    status: Status | None = None
    status_schedule: list[StatusSchedule] | None = None
    capabilities: list[CapabilityValue] | None = None
    connectors: Annotated[list[Connector], Field(min_length=1)] | None = None
    floor_level: Annotated[str, Max(4)] | None = None
    coordinates: GeoLocation | None = None
    physical_reference: Annotated[str, Max(16)] | None = None
    directions: list[DisplayText] | None = None
    parking_restrictions: list[ParkingRestrictionValue] | None = None
    parking: list[EVSEParking] | None = None
    images: list[Image] | None = None
    accepted_service_providers: list[ServiceProvider] | None = None


class LocationPatch(OcpiPatch):
    identity_fields: ClassVar[tuple[str, ...]] = ("country_code", "party_id", "id")

    country_code: CountryCode | None = None
    party_id: PartyIdStr | None = None
    id: CiString36 | None = None
    publish: Bool | None = None
    publish_allowed_to: list[PublishTokenType] | None = None
    name: Annotated[str, Max(255)] | None = None
    address: Annotated[str, Max(255)] | None = None
    city: Annotated[str, Max(45)] | None = None
    postal_code: Annotated[str, Max(10)] | None = None
    state: Annotated[str, Max(45)] | None = None
    country: Annotated[str, Max(3, min_length=3)] | None = None
    coordinates: GeoLocation | None = None
    related_locations: list[AdditionalGeoLocation] | None = None
    parking_type: ParkingTypeValue | None = None
    evses: list[EVSE] | None = None
    parking_places: list[Parking] | None = None
    help_phone: HelpPhone | None = None
    directions: list[DisplayText] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[FacilityValue] | None = None
    time_zone: Annotated[str, Max(255)] | None = None
    opening_times: Hours | None = None
    charging_when_closed: Bool | None = None
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
