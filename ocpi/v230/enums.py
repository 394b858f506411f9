"""Every OCPI 2.3.0 enum, in one module so that the object modules import each other
without cycles (each object module re-exports its own enums).

Values follow the 2.3.0 OpenAPI files (their order); the spec text (release-2.3.0-bugfixes)
marks which are *OpenEnum*: those are read through :func:`ocpi.v230.types.open_enum` (an
unknown value is kept as a string), the others refuse unknown values. New in 2.3.0:
ConnectorType ``MCS``/``SAE_J3400``, ParkingRestriction ``EMPLOYEES``/``TAXIS``/``TENANTS``,
TokenType ``EMAID``, ConnectorCapability, VehicleType, ParkingDirection, EVSEPosition,
TaxIncluded, the Payments enums, ModuleID ``bookings``/``payments``, VersionNumber ``2.3.0``;
Role lost ``HUB``. CdrDimensionType ``RESERVATION_EXPIRES``/``RESERVATION_OVERTIME`` and
BookingRestrictionType are in the 2.3.0 OpenAPI files (with the Bookings module), not in
the core text. CdrDimensionType and TariffType are closed in 2.3.0 (the 2.2.1 OpenAPI
marked them open).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from ocpi.v230.types import ImageCategory, ImageCategoryValue, Role, open_enum

__all__ = [
    "AllowedType",
    "AuthMethod",
    "BookingRestrictionType",
    "Capability",
    "CapabilityValue",
    "CaptureStatusCode",
    "CdrDimensionType",
    "ChargingPreferencesResponse",
    "ChargingProfileResponseType",
    "ChargingProfileResultType",
    "ChargingRateUnit",
    "CommandResponseType",
    "CommandResultType",
    "CommandType",
    "CommandTypeValue",
    "ConnectionStatus",
    "ConnectorCapability",
    "ConnectorCapabilityValue",
    "ConnectorFormat",
    "ConnectorType",
    "ConnectorTypeValue",
    "DayOfWeek",
    "EVSEPosition",
    "EnergySourceCategory",
    "EnvironmentalImpactCategory",
    "EnvironmentalImpactCategoryValue",
    "Facility",
    "FacilityValue",
    "ImageCategory",
    "ImageCategoryValue",
    "InterfaceRole",
    "InvoiceCreator",
    "ModuleID",
    "ModuleIDValue",
    "ParkingDirection",
    "ParkingRestriction",
    "ParkingRestrictionValue",
    "ParkingType",
    "ParkingTypeValue",
    "PowerType",
    "ProfileType",
    "ReservationRestrictionType",
    "Role",
    "SessionStatus",
    "Status",
    "TariffDimensionType",
    "TariffType",
    "TaxIncluded",
    "TokenType",
    "TokenTypeValue",
    "VehicleType",
    "VehicleTypeValue",
    "VersionNumber",
    "VersionNumberValue",
    "WhitelistType",
]


# ----------------------------------------------------------------- mod_locations


class Status(StrEnum):
    """EVSE status."""

    AVAILABLE = "AVAILABLE"
    BLOCKED = "BLOCKED"
    CHARGING = "CHARGING"
    INOPERATIVE = "INOPERATIVE"
    OUTOFORDER = "OUTOFORDER"
    PLANNED = "PLANNED"
    REMOVED = "REMOVED"
    RESERVED = "RESERVED"
    UNKNOWN = "UNKNOWN"


class Capability(StrEnum):
    """EVSE capabilities (open enum)."""

    CHARGING_PROFILE_CAPABLE = "CHARGING_PROFILE_CAPABLE"
    CHARGING_PREFERENCES_CAPABLE = "CHARGING_PREFERENCES_CAPABLE"
    CHIP_CARD_SUPPORT = "CHIP_CARD_SUPPORT"
    CONTACTLESS_CARD_SUPPORT = "CONTACTLESS_CARD_SUPPORT"
    CREDIT_CARD_PAYABLE = "CREDIT_CARD_PAYABLE"
    DEBIT_CARD_PAYABLE = "DEBIT_CARD_PAYABLE"
    PED_TERMINAL = "PED_TERMINAL"
    REMOTE_START_STOP_CAPABLE = "REMOTE_START_STOP_CAPABLE"
    RESERVABLE = "RESERVABLE"
    RFID_READER = "RFID_READER"
    START_SESSION_CONNECTOR_REQUIRED = "START_SESSION_CONNECTOR_REQUIRED"
    TOKEN_GROUP_CAPABLE = "TOKEN_GROUP_CAPABLE"
    UNLOCK_CAPABLE = "UNLOCK_CAPABLE"


class ConnectorFormat(StrEnum):
    SOCKET = "SOCKET"
    CABLE = "CABLE"


class ConnectorType(StrEnum):
    """Socket or plug standard (open enum)."""

    CHADEMO = "CHADEMO"
    CHAOJI = "CHAOJI"
    DOMESTIC_A = "DOMESTIC_A"
    DOMESTIC_B = "DOMESTIC_B"
    DOMESTIC_C = "DOMESTIC_C"
    DOMESTIC_D = "DOMESTIC_D"
    DOMESTIC_E = "DOMESTIC_E"
    DOMESTIC_F = "DOMESTIC_F"
    DOMESTIC_G = "DOMESTIC_G"
    DOMESTIC_H = "DOMESTIC_H"
    DOMESTIC_I = "DOMESTIC_I"
    DOMESTIC_J = "DOMESTIC_J"
    DOMESTIC_K = "DOMESTIC_K"
    DOMESTIC_L = "DOMESTIC_L"
    DOMESTIC_M = "DOMESTIC_M"
    DOMESTIC_N = "DOMESTIC_N"
    DOMESTIC_O = "DOMESTIC_O"
    GBT_AC = "GBT_AC"
    GBT_DC = "GBT_DC"
    IEC_60309_2_single_16 = "IEC_60309_2_single_16"
    IEC_60309_2_three_16 = "IEC_60309_2_three_16"
    IEC_60309_2_three_32 = "IEC_60309_2_three_32"
    IEC_60309_2_three_64 = "IEC_60309_2_three_64"
    IEC_62196_T1 = "IEC_62196_T1"
    IEC_62196_T1_COMBO = "IEC_62196_T1_COMBO"
    IEC_62196_T2 = "IEC_62196_T2"
    IEC_62196_T2_COMBO = "IEC_62196_T2_COMBO"
    IEC_62196_T3A = "IEC_62196_T3A"
    IEC_62196_T3C = "IEC_62196_T3C"
    NEMA_5_20 = "NEMA_5_20"
    NEMA_6_30 = "NEMA_6_30"
    NEMA_6_50 = "NEMA_6_50"
    NEMA_10_30 = "NEMA_10_30"
    NEMA_10_50 = "NEMA_10_50"
    NEMA_14_30 = "NEMA_14_30"
    NEMA_14_50 = "NEMA_14_50"
    PANTOGRAPH_BOTTOM_UP = "PANTOGRAPH_BOTTOM_UP"
    PANTOGRAPH_TOP_DOWN = "PANTOGRAPH_TOP_DOWN"
    MCS = "MCS"
    SAE_J3400 = "SAE_J3400"
    TESLA_R = "TESLA_R"
    TESLA_S = "TESLA_S"


class PowerType(StrEnum):
    AC_1_PHASE = "AC_1_PHASE"
    AC_2_PHASE = "AC_2_PHASE"
    AC_2_PHASE_SPLIT = "AC_2_PHASE_SPLIT"
    AC_3_PHASE = "AC_3_PHASE"
    DC = "DC"


class ParkingType(StrEnum):
    """General type of parking (open enum)."""

    ALONG_MOTORWAY = "ALONG_MOTORWAY"
    PARKING_GARAGE = "PARKING_GARAGE"
    PARKING_LOT = "PARKING_LOT"
    ON_DRIVEWAY = "ON_DRIVEWAY"
    ON_STREET = "ON_STREET"
    UNDERGROUND_GARAGE = "UNDERGROUND_GARAGE"


class ParkingRestriction(StrEnum):
    """Parking spot restrictions (open enum)."""

    EV_ONLY = "EV_ONLY"
    PLUGGED = "PLUGGED"
    DISABLED = "DISABLED"
    CUSTOMERS = "CUSTOMERS"
    MOTORCYCLES = "MOTORCYCLES"
    EMPLOYEES = "EMPLOYEES"
    TAXIS = "TAXIS"
    TENANTS = "TENANTS"


class Facility(StrEnum):
    """Facilities at or near the location (open enum)."""

    HOTEL = "HOTEL"
    RESTAURANT = "RESTAURANT"
    CAFE = "CAFE"
    MALL = "MALL"
    SUPERMARKET = "SUPERMARKET"
    SPORT = "SPORT"
    RECREATION_AREA = "RECREATION_AREA"
    NATURE = "NATURE"
    MUSEUM = "MUSEUM"
    BIKE_SHARING = "BIKE_SHARING"
    BUS_STOP = "BUS_STOP"
    TAXI_STAND = "TAXI_STAND"
    TRAM_STOP = "TRAM_STOP"
    METRO_STATION = "METRO_STATION"
    TRAIN_STATION = "TRAIN_STATION"
    AIRPORT = "AIRPORT"
    PARKING_LOT = "PARKING_LOT"
    CARPOOL_PARKING = "CARPOOL_PARKING"
    FUEL_STATION = "FUEL_STATION"
    WIFI = "WIFI"


class EnergySourceCategory(StrEnum):
    NUCLEAR = "NUCLEAR"
    GENERAL_FOSSIL = "GENERAL_FOSSIL"
    COAL = "COAL"
    GAS = "GAS"
    GENERAL_GREEN = "GENERAL_GREEN"
    SOLAR = "SOLAR"
    WIND = "WIND"
    WATER = "WATER"


class ConnectorCapability(StrEnum):
    """Functionalities a Connector offers to Drivers (open enum, new in 2.3.0)."""

    ISO_15118_2_PLUG_AND_CHARGE = "ISO_15118_2_PLUG_AND_CHARGE"
    ISO_15118_20_PLUG_AND_CHARGE = "ISO_15118_20_PLUG_AND_CHARGE"


class VehicleType(StrEnum):
    """Vehicles a Parking is designed for (open enum, new in 2.3.0)."""

    MOTORCYCLE = "MOTORCYCLE"
    PERSONAL_VEHICLE = "PERSONAL_VEHICLE"
    PERSONAL_VEHICLE_WITH_TRAILER = "PERSONAL_VEHICLE_WITH_TRAILER"
    VAN = "VAN"
    SEMI_TRACTOR = "SEMI_TRACTOR"
    RIGID = "RIGID"
    TRUCK_WITH_TRAILER = "TRUCK_WITH_TRAILER"
    BUS = "BUS"
    DISABLED = "DISABLED"


class ParkingDirection(StrEnum):
    """How a vehicle parks relative to the roadway (new in 2.3.0)."""

    PARALLEL = "PARALLEL"
    PERPENDICULAR = "PERPENDICULAR"
    ANGLE = "ANGLE"


class EVSEPosition(StrEnum):
    """Where the EVSE is relative to its parking space (new in 2.3.0)."""

    LEFT = "LEFT"
    RIGHT = "RIGHT"
    CENTER = "CENTER"


class EnvironmentalImpactCategory(StrEnum):
    """Environmental impact categories (open enum)."""

    NUCLEAR_WASTE = "NUCLEAR_WASTE"
    CARBON_DIOXIDE = "CARBON_DIOXIDE"


# ------------------------------------------------------------------ mod_sessions


class SessionStatus(StrEnum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    INVALID = "INVALID"
    PENDING = "PENDING"
    RESERVATION = "RESERVATION"


class ProfileType(StrEnum):
    CHEAP = "CHEAP"
    FAST = "FAST"
    GREEN = "GREEN"
    REGULAR = "REGULAR"


class ChargingPreferencesResponse(StrEnum):
    ACCEPTED = "ACCEPTED"
    DEPARTURE_REQUIRED = "DEPARTURE_REQUIRED"
    ENERGY_NEED_REQUIRED = "ENERGY_NEED_REQUIRED"
    NOT_POSSIBLE = "NOT_POSSIBLE"
    PROFILE_TYPE_NOT_SUPPORTED = "PROFILE_TYPE_NOT_SUPPORTED"


# ---------------------------------------------------------------------- mod_cdrs


class AuthMethod(StrEnum):
    AUTH_REQUEST = "AUTH_REQUEST"
    COMMAND = "COMMAND"
    WHITELIST = "WHITELIST"


class CdrDimensionType(StrEnum):
    """CDR/Session dimension types (closed in 2.3.0). CURRENT, ENERGY_EXPORT, ENERGY_IMPORT,
    POWER and STATE_OF_CHARGE are for Sessions only."""

    CURRENT = "CURRENT"
    ENERGY = "ENERGY"
    ENERGY_EXPORT = "ENERGY_EXPORT"
    ENERGY_IMPORT = "ENERGY_IMPORT"
    MAX_CURRENT = "MAX_CURRENT"
    MIN_CURRENT = "MIN_CURRENT"
    MAX_POWER = "MAX_POWER"
    MIN_POWER = "MIN_POWER"
    PARKING_TIME = "PARKING_TIME"
    POWER = "POWER"
    RESERVATION_TIME = "RESERVATION_TIME"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"
    RESERVATION_OVERTIME = "RESERVATION_OVERTIME"
    STATE_OF_CHARGE = "STATE_OF_CHARGE"
    TIME = "TIME"


# ------------------------------------------------------------------- mod_tariffs


class TariffType(StrEnum):
    """Tariff types (closed in 2.3.0)."""

    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"


class TariffDimensionType(StrEnum):
    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


class DayOfWeek(StrEnum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"


class ReservationRestrictionType(StrEnum):
    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


class BookingRestrictionType(StrEnum):
    """A TariffElement that prices a booking (2.3.0 OpenAPI, Bookings module)."""

    BOOKING = "BOOKING"
    BOOKING_EXPIRES = "BOOKING_EXPIRES"
    BOOKING_CANCELLATION_FEES = "BOOKING_CANCELLATION_FEES"
    BOOKING_OVERTIME = "BOOKING_OVERTIME"


class TaxIncluded(StrEnum):
    """Whether the amounts of a Tariff include taxes (mod_tariffs TaxIncluded)."""

    YES = "YES"
    NO = "NO"
    NOT_APPLICABLE = "N/A"


# -------------------------------------------------------------------- mod_tokens


class AllowedType(StrEnum):
    ALLOWED = "ALLOWED"
    BLOCKED = "BLOCKED"
    EXPIRED = "EXPIRED"
    NO_CREDIT = "NO_CREDIT"
    NOT_ALLOWED = "NOT_ALLOWED"


class TokenType(StrEnum):
    """Token types (open enum)."""

    AD_HOC_USER = "AD_HOC_USER"
    APP_USER = "APP_USER"
    EMAID = "EMAID"
    OTHER = "OTHER"
    RFID = "RFID"


class WhitelistType(StrEnum):
    ALWAYS = "ALWAYS"
    ALLOWED = "ALLOWED"
    ALLOWED_OFFLINE = "ALLOWED_OFFLINE"
    NEVER = "NEVER"


# ------------------------------------------------------------------ mod_commands


class CommandResponseType(StrEnum):
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    ACCEPTED = "ACCEPTED"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class CommandResultType(StrEnum):
    ACCEPTED = "ACCEPTED"
    CANCELED_RESERVATION = "CANCELED_RESERVATION"
    EVSE_OCCUPIED = "EVSE_OCCUPIED"
    EVSE_INOPERATIVE = "EVSE_INOPERATIVE"
    FAILED = "FAILED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"


class CommandType(StrEnum):
    """Commands (open enum in 2.3.0)."""

    CANCEL_RESERVATION = "CANCEL_RESERVATION"
    RESERVE_NOW = "RESERVE_NOW"
    START_SESSION = "START_SESSION"
    STOP_SESSION = "STOP_SESSION"
    UNLOCK_CONNECTOR = "UNLOCK_CONNECTOR"


# ------------------------------------------------------- versions / hubclientinfo


class VersionNumber(StrEnum):
    """Known OCPI versions (open enum: a peer may list versions newer than this code)."""

    V2_0 = "2.0"
    V2_1 = "2.1"
    V2_1_1 = "2.1.1"
    V2_2 = "2.2"
    V2_2_1 = "2.2.1"
    V2_3_0 = "2.3.0"


class InterfaceRole(StrEnum):
    SENDER = "SENDER"
    RECEIVER = "RECEIVER"


class ModuleID(StrEnum):
    """Module identifiers (open enum: parties may add custom modules)."""

    CDRS = "cdrs"
    CHARGING_PROFILES = "chargingprofiles"
    COMMANDS = "commands"
    CREDENTIALS = "credentials"
    HUB_CLIENT_INFO = "hubclientinfo"
    LOCATIONS = "locations"
    SESSIONS = "sessions"
    TARIFFS = "tariffs"
    TOKENS = "tokens"
    BOOKINGS = "bookings"
    PAYMENTS = "payments"


class ConnectionStatus(StrEnum):
    CONNECTED = "CONNECTED"
    OFFLINE = "OFFLINE"
    PLANNED = "PLANNED"
    SUSPENDED = "SUSPENDED"


# ------------------------------------------------------------------ mod_payments


class InvoiceCreator(StrEnum):
    """Who issues the invoice of an ad-hoc payment (mod_payments)."""

    CPO = "CPO"
    PTP = "PTP"


class CaptureStatusCode(StrEnum):
    """Outcome of a payment capture at the PSP (mod_payments)."""

    SUCCESS = "SUCCESS"
    PARTIAL_SUCCESS = "PARTIAL_SUCCESS"
    FAILED = "FAILED"


# ---------------------------------------------------------- mod_charging_profiles


class ChargingRateUnit(StrEnum):
    W = "W"
    A = "A"


class ChargingProfileResponseType(StrEnum):
    ACCEPTED = "ACCEPTED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TOO_OFTEN = "TOO_OFTEN"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class ChargingProfileResultType(StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


# ------------------------------------------------------ open-enum field types

CapabilityValue = Annotated[Capability | str, open_enum(Capability)]
ConnectorTypeValue = Annotated[ConnectorType | str, open_enum(ConnectorType)]
ParkingTypeValue = Annotated[ParkingType | str, open_enum(ParkingType)]
ParkingRestrictionValue = Annotated[ParkingRestriction | str, open_enum(ParkingRestriction)]
FacilityValue = Annotated[Facility | str, open_enum(Facility)]
EnvironmentalImpactCategoryValue = Annotated[
    EnvironmentalImpactCategory | str, open_enum(EnvironmentalImpactCategory)
]
ConnectorCapabilityValue = Annotated[ConnectorCapability | str, open_enum(ConnectorCapability)]
VehicleTypeValue = Annotated[VehicleType | str, open_enum(VehicleType)]
CommandTypeValue = Annotated[CommandType | str, open_enum(CommandType)]
TokenTypeValue = Annotated[TokenType | str, open_enum(TokenType)]
VersionNumberValue = Annotated[VersionNumber | str, open_enum(VersionNumber)]
ModuleIDValue = Annotated[ModuleID | str, open_enum(ModuleID)]
