"""OCPI 2.1.1 Locations module objects (mod_locations.md).

2.1.1 shapes that differ from 2.2.1: ``Location.type`` (LocationType, required) where
2.2.1 has an optional ``parking_type``; no ``country_code``/``party_id``/``publish``/
``state`` on a Location, ``postal_code`` required and ``time_zone`` optional; connector
``voltage``/``amperage`` and a single ``tariff_id``; ``EnvironmentalImpact.source``
(2.2 renamed it ``category``); coordinates with exactly 6 decimals; ``Hours`` is a
choice of ``regular_hours`` or ``twentyfourseven`` (the spec's own example sends both,
so both are accepted; one of them must be there).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from ocpi.v211.enums import (
    Capability,
    ConnectorFormat,
    ConnectorType,
    EnergySourceCategory,
    EnvironmentalImpactCategory,
    Facility,
    LocationType,
    ParkingRestriction,
    PowerType,
    Status,
)
from ocpi.v211.types import (
    ASCII,
    URL,
    Bool,
    BusinessDetails,
    DateTime,
    DisplayText,
    Id36,
    Id39,
    Image,
    ImageCategory,
    Int,
    Max,
    Number,
    OcpiModel,
    OcpiPatch,
)

__all__ = [
    "EVSE",
    "AdditionalGeoLocation",
    "BusinessDetails",
    "Capability",
    "Connector",
    "ConnectorFormat",
    "ConnectorPatch",
    "ConnectorType",
    "EVSEPatch",
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
    "LocationType",
    "ParkingRestriction",
    "PowerType",
    "RegularHours",
    "Status",
    "StatusSchedule",
]

# mod_locations 4.12: "Regex: -?[0-9]{1,2}\.[0-9]{6}" (longitude {1,3}), string(10)/(11).
Latitude = Annotated[str, StringConstraints(max_length=10, pattern=r"^-?[0-9]{1,2}\.[0-9]{6}$")]
Longitude = Annotated[str, StringConstraints(max_length=11, pattern=r"^-?[0-9]{1,3}\.[0-9]{6}$")]
HourMinute = Annotated[
    str, StringConstraints(max_length=5, pattern=r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")
]
CountryAlpha3 = Annotated[str, Max(3, min_length=3), ASCII]


class GeoLocation(OcpiModel):
    latitude: Latitude
    longitude: Longitude


class AdditionalGeoLocation(OcpiModel):
    latitude: Latitude
    longitude: Longitude
    name: DisplayText | None = None


class RegularHours(OcpiModel):
    weekday: Annotated[Int, Field(ge=1, le=7)]
    period_begin: HourMinute
    period_end: HourMinute


class ExceptionalPeriod(OcpiModel):
    period_begin: DateTime
    period_end: DateTime


class Hours(OcpiModel):
    regular_hours: list[RegularHours] | None = None
    twentyfourseven: Bool | None = None
    exceptional_openings: list[ExceptionalPeriod] | None = None
    exceptional_closings: list[ExceptionalPeriod] | None = None

    @model_validator(mode="after")
    def _one_of_two(self) -> Hours:
        # mod_locations 4.13 "Choice: one of two": regular_hours or twentyfourseven.
        if self.regular_hours is None and self.twentyfourseven is None:
            raise ValueError("twentyfourseven: Field required (or regular_hours)")
        return self


class EnergySource(OcpiModel):
    source: EnergySourceCategory
    percentage: Number


class EnvironmentalImpact(OcpiModel):
    """2.1.1 names the category ``source`` (2.2 renamed it ``category``)."""

    source: EnvironmentalImpactCategory
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


class Connector(OcpiModel):
    id: Id36
    standard: ConnectorType
    format: ConnectorFormat
    power_type: PowerType
    voltage: Int
    amperage: Int
    tariff_id: Id36 | None = None
    terms_and_conditions: URL | None = None
    last_updated: DateTime


class EVSE(OcpiModel):
    uid: Id39
    evse_id: Annotated[str, Max(48), ASCII] | None = None
    status: Status
    status_schedule: list[StatusSchedule] | None = None
    capabilities: list[Capability] | None = None
    connectors: Annotated[list[Connector], Field(min_length=1)]
    floor_level: Annotated[str, Max(4)] | None = None
    coordinates: GeoLocation | None = None
    physical_reference: Annotated[str, Max(16)] | None = None
    directions: list[DisplayText] | None = None
    parking_restrictions: list[ParkingRestriction] | None = None
    images: list[Image] | None = None
    last_updated: DateTime


class Location(OcpiModel):
    id: Id39
    type: LocationType
    name: Annotated[str, Max(255)] | None = None
    address: Annotated[str, Max(45)]
    city: Annotated[str, Max(45)]
    postal_code: Annotated[str, Max(10)]
    country: CountryAlpha3
    coordinates: GeoLocation
    related_locations: list[AdditionalGeoLocation] | None = None
    evses: list[EVSE] | None = None
    directions: list[DisplayText] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[Facility] | None = None
    time_zone: Annotated[str, Max(255)] | None = None
    opening_times: Hours | None = None
    charging_when_closed: Bool | None = None
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
    last_updated: DateTime


# ------------------------------------------------------------------------ PATCH
# mod_locations 2.2.3: "only the fields/objects that have to be updated have to be present".


class ConnectorPatch(OcpiPatch):
    id: Id36 | None = None
    standard: ConnectorType | None = None
    format: ConnectorFormat | None = None
    power_type: PowerType | None = None
    voltage: Int | None = None
    amperage: Int | None = None
    tariff_id: Id36 | None = None
    terms_and_conditions: URL | None = None


class EVSEPatch(OcpiPatch):
    uid: Id39 | None = None
    evse_id: Annotated[str, Max(48), ASCII] | None = None
    status: Status | None = None
    status_schedule: list[StatusSchedule] | None = None
    capabilities: list[Capability] | None = None
    connectors: Annotated[list[Connector], Field(min_length=1)] | None = None
    floor_level: Annotated[str, Max(4)] | None = None
    coordinates: GeoLocation | None = None
    physical_reference: Annotated[str, Max(16)] | None = None
    directions: list[DisplayText] | None = None
    parking_restrictions: list[ParkingRestriction] | None = None
    images: list[Image] | None = None


class LocationPatch(OcpiPatch):
    id: Id39 | None = None
    type: LocationType | None = None
    name: Annotated[str, Max(255)] | None = None
    address: Annotated[str, Max(45)] | None = None
    city: Annotated[str, Max(45)] | None = None
    postal_code: Annotated[str, Max(10)] | None = None
    country: CountryAlpha3 | None = None
    coordinates: GeoLocation | None = None
    related_locations: list[AdditionalGeoLocation] | None = None
    evses: list[EVSE] | None = None
    directions: list[DisplayText] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[Facility] | None = None
    time_zone: Annotated[str, Max(255)] | None = None
    opening_times: Hours | None = None
    charging_when_closed: Bool | None = None
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
