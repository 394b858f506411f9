"""OCPI 2.1.1 wire models (pydantic v2), one module per OCPI module, from the 2.1.1
specification text (release-2.1.1-bugfixes branch of the specification repository).

Same style as :mod:`ocpi.v221`: ``Location.model_validate(ocpi.transport.json_loads(t))``
reads, ``location.to_json()`` writes. PATCH bodies: the ``*Patch`` models (every field
optional; 2.1.1 does not require ``last_updated`` in a PATCH).

Imports the standard library, pydantic and :mod:`ocpi.transport` only: never another
version's models. Conversions to and from the internal (2.2.1) form are in
:mod:`ocpi.versions.v211`.
"""

from ocpi.v211.cdrs import CDR, CdrDimension, ChargingPeriod
from ocpi.v211.commands import (
    COMMAND_MODELS,
    CommandResponse,
    ReserveNow,
    StartSession,
    StopSession,
    UnlockConnector,
)
from ocpi.v211.credentials import Credentials, authorization_header
from ocpi.v211.enums import (
    Allowed,
    AuthMethod,
    Capability,
    CdrDimensionType,
    CommandResponseType,
    CommandType,
    ConnectorFormat,
    ConnectorType,
    DayOfWeek,
    EnergySourceCategory,
    EnvironmentalImpactCategory,
    Facility,
    LocationType,
    ModuleID,
    ParkingRestriction,
    PowerType,
    SessionStatus,
    Status,
    TariffDimensionType,
    TokenType,
    VersionNumber,
    WhitelistType,
)
from ocpi.v211.locations import (
    EVSE,
    AdditionalGeoLocation,
    Connector,
    ConnectorPatch,
    EnergyMix,
    EnergySource,
    EnvironmentalImpact,
    EVSEPatch,
    ExceptionalPeriod,
    GeoLocation,
    Hours,
    Location,
    LocationPatch,
    RegularHours,
    StatusSchedule,
)
from ocpi.v211.sessions import Session, SessionPatch
from ocpi.v211.tariffs import (
    PriceComponent,
    Tariff,
    TariffElement,
    TariffPatch,
    TariffRestrictions,
)
from ocpi.v211.tokens import AuthorizationInfo, LocationReferences, Token, TokenPatch
from ocpi.v211.types import (
    BusinessDetails,
    DateTime,
    DisplayText,
    Image,
    ImageCategory,
    Number,
    OcpiModel,
    OcpiPatch,
)
from ocpi.v211.versions import Endpoint, Version, VersionDetails

VERSION = "2.1.1"

__all__ = [
    "CDR",
    "COMMAND_MODELS",
    "EVSE",
    "VERSION",
    "AdditionalGeoLocation",
    "Allowed",
    "AuthMethod",
    "AuthorizationInfo",
    "BusinessDetails",
    "Capability",
    "CdrDimension",
    "CdrDimensionType",
    "ChargingPeriod",
    "CommandResponse",
    "CommandResponseType",
    "CommandType",
    "Connector",
    "ConnectorFormat",
    "ConnectorPatch",
    "ConnectorType",
    "Credentials",
    "DateTime",
    "DayOfWeek",
    "DisplayText",
    "EVSEPatch",
    "Endpoint",
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
    "LocationReferences",
    "LocationType",
    "ModuleID",
    "Number",
    "OcpiModel",
    "OcpiPatch",
    "ParkingRestriction",
    "PowerType",
    "PriceComponent",
    "RegularHours",
    "ReserveNow",
    "Session",
    "SessionPatch",
    "SessionStatus",
    "StartSession",
    "Status",
    "StatusSchedule",
    "StopSession",
    "Tariff",
    "TariffDimensionType",
    "TariffElement",
    "TariffPatch",
    "TariffRestrictions",
    "Token",
    "TokenPatch",
    "TokenType",
    "UnlockConnector",
    "Version",
    "VersionDetails",
    "VersionNumber",
    "WhitelistType",
    "authorization_header",
]
